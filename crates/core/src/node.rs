//! Path → node resolution for the synthetic namespace.
//!
//! Paths are interfaces, not storage: a node is a value computed from the
//! path and the hive's state, never a stored tree. This module only names
//! nodes; whether a session may touch one is [`crate::policy`]'s business
//! and what a node yields is [`crate::hive`]'s.

/// Files generated on read under `/proc`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ProcFile {
    Boot,
    LifecycleState,
    LifecycleReason,
    LifecycleSince,
    Sessions,
    Outstanding,
    SessionActive,
    IngestP50,
    IngestP95,
    IngestBackpressure,
    IngestDropped,
    IngestQueued,
    RootReachable,
    RootLastSeen,
    RootCutReason,
    PressureBusy,
    PressureQuota,
    PressureCut,
    PressurePolicy,
    WorkersLive,
    WorkersSpawned,
    WorkersRevoked,
    WorkersNextId,
}

/// Per-session files under `/proc/9p/session/<id>/`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum SessionFile {
    State,
    SinceMs,
    Owner,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Dir {
    Root,
    /// A fixed directory under `/proc` or `/queen`, named by its path.
    Fixed(&'static str),
    Session(u64),
    Shard,
    ShardLabel(u8),
    ShardWorkers(u8),
    /// `/shard/<label>/worker/worker-<n>` or `/worker/worker-<n>`.
    Worker(u64),
    WorkerAlias,
    /// `/queen/telemetry/<device>` and `/queen/telemetry/<device>/seg`.
    Device(String),
    DeviceSegs(String),
    /// `/queen/telemetry/<device>/artifacts` (walk to an artifact id).
    DeviceArtifacts(String),
    /// `/gpu`: the declared GPUs.
    Gpu,
    /// `/gpu/<id>`.
    GpuDevice(String),
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum File {
    Proc(ProcFile),
    Session(u64, SessionFile),
    QueenCtl,
    LifecycleCtl,
    Telemetry(u64),
    QueenLog,
    DeviceCtl(String),
    DeviceLatest(String),
    Segment(String, String),
    /// `/queen/telemetry/<device>/artifact`: streams an artifact in.
    ArtifactUpload(String),
    /// `/queen/telemetry/<device>/artifacts/<id>`: streams it back, verified.
    Artifact(String, String),
    /// `/gpu/<id>/info`: the declared capacity.
    GpuInfo(String),
    /// `/gpu/<id>/lease`: the active leases, one per line.
    GpuLease(String),
    /// `/gpu/<id>/job`: an append-only ring of job records.
    GpuJob(String),
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Node {
    Dir(Dir),
    File(File),
}

/// The children of every fixed directory, in listing order.
pub const FIXED_DIRS: &[(&str, &[&str])] = &[
    (
        "/proc",
        &[
            "boot",
            "lifecycle",
            "9p",
            "ingest",
            "root",
            "pressure",
            "workers",
        ],
    ),
    ("/proc/lifecycle", &["state", "reason", "since"]),
    ("/proc/9p", &["sessions", "outstanding", "session"]),
    (
        "/proc/ingest",
        &["p50_ms", "p95_ms", "backpressure", "dropped", "queued"],
    ),
    ("/proc/root", &["reachable", "last_seen_ms", "cut_reason"]),
    ("/proc/pressure", &["busy", "quota", "cut", "policy"]),
    ("/proc/workers", &["live", "spawned", "revoked", "next_id"]),
    ("/queen", &["ctl", "lifecycle", "telemetry"]),
    ("/queen/lifecycle", &["ctl"]),
    ("/log", &["queen.log"]),
];

fn fixed_dir(path: &str) -> Option<&'static str> {
    FIXED_DIRS.iter().find(|(p, _)| *p == path).map(|(p, _)| *p)
}

fn proc_file(dir: &str, name: &str) -> Option<ProcFile> {
    use ProcFile::*;
    Some(match (dir, name) {
        ("proc", "boot") => Boot,
        ("lifecycle", "state") => LifecycleState,
        ("lifecycle", "reason") => LifecycleReason,
        ("lifecycle", "since") => LifecycleSince,
        ("9p", "sessions") => Sessions,
        ("9p", "outstanding") => Outstanding,
        ("ingest", "p50_ms") => IngestP50,
        ("ingest", "p95_ms") => IngestP95,
        ("ingest", "backpressure") => IngestBackpressure,
        ("ingest", "dropped") => IngestDropped,
        ("ingest", "queued") => IngestQueued,
        ("root", "reachable") => RootReachable,
        ("root", "last_seen_ms") => RootLastSeen,
        ("root", "cut_reason") => RootCutReason,
        ("pressure", "busy") => PressureBusy,
        ("pressure", "quota") => PressureQuota,
        ("pressure", "cut") => PressureCut,
        ("pressure", "policy") => PressurePolicy,
        ("workers", "live") => WorkersLive,
        ("workers", "spawned") => WorkersSpawned,
        ("workers", "revoked") => WorkersRevoked,
        ("workers", "next_id") => WorkersNextId,
        _ => return None,
    })
}

/// Parses `worker-<n>` (n ≥ 1, no leading zeros, no sign).
pub fn parse_worker_id(id: &str) -> Option<u64> {
    let digits = id.strip_prefix("worker-")?;
    if digits.is_empty() || digits.starts_with('0') || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

pub fn worker_name(n: u64) -> String {
    format!("worker-{n}")
}

/// Parses a shard label of exactly two lowercase hex digits.
pub fn parse_shard_label(label: &str) -> Option<u8> {
    let b = label.as_bytes();
    let lower_hex = |c: u8| c.is_ascii_digit() || (b'a'..=b'f').contains(&c);
    if b.len() != 2 || !b.iter().all(|&c| lower_hex(c)) {
        return None;
    }
    u8::from_str_radix(label, 16).ok()
}

/// A telemetry device id: 1..=64 bytes of `[A-Za-z0-9_.-]`, not `.` or `..`.
pub fn valid_device_id(id: &str) -> bool {
    let ok = |c: u8| c.is_ascii_alphanumeric() || matches!(c, b'_' | b'-' | b'.');
    (1..=64).contains(&id.len()) && id != "." && id != ".." && id.bytes().all(ok)
}

/// Names the node at `path` without checking that dynamic parts exist.
/// `path` is absolute and canonical (`/` or `/a/b`).
pub fn parse(path: &str) -> Option<Node> {
    if path == "/" {
        return Some(Node::Dir(Dir::Root));
    }
    if let Some(dir) = fixed_dir(path) {
        return Some(Node::Dir(Dir::Fixed(dir)));
    }
    let comps: Vec<&str> = path.strip_prefix('/')?.split('/').collect();
    let node = match comps.as_slice() {
        ["proc", "boot"] => Node::File(File::Proc(ProcFile::Boot)),
        ["proc", "9p", "session", "active"] => Node::File(File::Proc(ProcFile::SessionActive)),
        ["proc", "9p", "session"] => Node::Dir(Dir::Fixed("/proc/9p/session")),
        ["proc", "9p", "session", id] => Node::Dir(Dir::Session(id.parse().ok()?)),
        ["proc", "9p", "session", id, f] => {
            let file = match *f {
                "state" => SessionFile::State,
                "since_ms" => SessionFile::SinceMs,
                "owner" => SessionFile::Owner,
                _ => return None,
            };
            Node::File(File::Session(id.parse().ok()?, file))
        }
        ["proc", dir, name] => Node::File(File::Proc(proc_file(dir, name)?)),
        ["queen", "ctl"] => Node::File(File::QueenCtl),
        ["queen", "lifecycle", "ctl"] => Node::File(File::LifecycleCtl),
        ["queen", "telemetry"] => Node::Dir(Dir::Fixed("/queen/telemetry")),
        ["queen", "telemetry", dev] if valid_device_id(dev) => {
            Node::Dir(Dir::Device(dev.to_string()))
        }
        ["queen", "telemetry", dev, "ctl"] if valid_device_id(dev) => {
            Node::File(File::DeviceCtl(dev.to_string()))
        }
        ["queen", "telemetry", dev, "latest"] if valid_device_id(dev) => {
            Node::File(File::DeviceLatest(dev.to_string()))
        }
        ["queen", "telemetry", dev, "seg"] if valid_device_id(dev) => {
            Node::Dir(Dir::DeviceSegs(dev.to_string()))
        }
        ["queen", "telemetry", dev, "seg", seg] if valid_device_id(dev) => {
            Node::File(File::Segment(dev.to_string(), seg.to_string()))
        }
        ["queen", "telemetry", dev, "artifact"] if valid_device_id(dev) => {
            Node::File(File::ArtifactUpload(dev.to_string()))
        }
        ["queen", "telemetry", dev, "artifacts"] if valid_device_id(dev) => {
            Node::Dir(Dir::DeviceArtifacts(dev.to_string()))
        }
        ["queen", "telemetry", dev, "artifacts", id] if valid_device_id(dev) => {
            Node::File(File::Artifact(dev.to_string(), id.to_string()))
        }
        ["shard"] => Node::Dir(Dir::Shard),
        ["shard", label] => Node::Dir(Dir::ShardLabel(parse_shard_label(label)?)),
        ["shard", label, "worker"] => Node::Dir(Dir::ShardWorkers(parse_shard_label(label)?)),
        ["shard", label, "worker", id] => {
            parse_shard_label(label)?;
            Node::Dir(Dir::Worker(parse_worker_id(id)?))
        }
        ["shard", label, "worker", id, "telemetry"] => {
            parse_shard_label(label)?;
            Node::File(File::Telemetry(parse_worker_id(id)?))
        }
        ["worker"] => Node::Dir(Dir::WorkerAlias),
        ["worker", id] => Node::Dir(Dir::Worker(parse_worker_id(id)?)),
        ["worker", id, "telemetry"] => Node::File(File::Telemetry(parse_worker_id(id)?)),
        ["log", "queen.log"] => Node::File(File::QueenLog),
        ["gpu"] => Node::Dir(Dir::Gpu),
        ["gpu", id] if valid_device_id(id) => Node::Dir(Dir::GpuDevice(id.to_string())),
        ["gpu", id, f] if valid_device_id(id) => {
            let id = id.to_string();
            Node::File(match *f {
                "info" => File::GpuInfo(id),
                "lease" => File::GpuLease(id),
                "job" => File::GpuJob(id),
                _ => return None,
            })
        }
        _ => return None,
    };
    Some(node)
}

/// The shard label of a worker path, if the path names one.
pub fn shard_label_in(path: &str) -> Option<u8> {
    let rest = path.strip_prefix("/shard/")?;
    parse_shard_label(rest.get(..2)?)
}

/// Validates and canonicalises a path given by a console or REST peer:
/// absolute, UTF-8 (already), no NUL, no empty, `.` or `..` component,
/// components within `max_component`, depth within `max_depth`.
pub fn canonical(path: &str, max_depth: usize, max_component: usize) -> Option<String> {
    if !path.starts_with('/') || path.contains('\0') {
        return None;
    }
    if path == "/" {
        return Some("/".into());
    }
    let body = path.strip_suffix('/').unwrap_or(path);
    let comps: Vec<&str> = body[1..].split('/').collect();
    let bad = |c: &&str| c.is_empty() || *c == "." || *c == ".." || c.len() > max_component;
    if comps.len() > max_depth || comps.iter().any(bad) {
        return None;
    }
    Some(body.to_string())
}

/// 64-bit FNV-1a of a path: the stable qid path of a node.
pub fn qid_path(path: &str) -> u64 {
    path.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn worker_ids_are_strict() {
        assert_eq!(parse_worker_id("worker-7"), Some(7));
        assert_eq!(parse_worker_id("worker-07"), None);
        assert_eq!(parse_worker_id("worker-"), None);
        assert_eq!(parse_worker_id("worker--1"), None);
        assert_eq!(parse_worker_id("worker-99999999999999999999999"), None);
    }

    #[test]
    fn canonical_refuses_traversal_and_depth() {
        assert_eq!(
            canonical("/proc/boot", 8, 255).as_deref(),
            Some("/proc/boot")
        );
        assert_eq!(canonical("/proc/", 8, 255).as_deref(), Some("/proc"));
        assert_eq!(canonical("/proc/../etc", 8, 255), None);
        assert_eq!(canonical("/proc//boot", 8, 255), None);
        assert_eq!(canonical("proc", 8, 255), None);
        assert_eq!(canonical("/a\0b", 8, 255), None);
        assert_eq!(canonical("/1/2/3/4/5/6/7/8", 8, 255).is_some(), true);
        assert_eq!(canonical("/1/2/3/4/5/6/7/8/9", 8, 255), None);
    }

    #[test]
    fn nodes_parse() {
        assert_eq!(
            parse("/proc/lifecycle/state"),
            Some(Node::File(File::Proc(ProcFile::LifecycleState)))
        );
        assert_eq!(
            parse("/shard/13/worker/worker-1/telemetry"),
            Some(Node::File(File::Telemetry(1)))
        );
        assert_eq!(parse("/shard/1G/worker"), None);
        assert_eq!(parse("/queen/telemetry/../ctl"), None);
        assert_eq!(parse("/proc/nope"), None);
        assert_eq!(
            parse("/gpu/GPU-0/job"),
            Some(Node::File(File::GpuJob("GPU-0".into())))
        );
        assert_eq!(parse("/gpu/GPU-0/nope"), None);
        assert_eq!(parse("/gpu/../info"), None);
    }
}
