//! The hive manifest: every bound and switch the hive obeys, in one TOML file.
//!
//! The manifest has embedded defaults, so a hive starts without a file. A
//! file only needs the keys it changes. [`Manifest::validate`] checks every
//! bound at start and names the offending key with its allowed range.
//!
//! This crate does no I/O beyond what the caller hands it as text.

use serde::{Deserialize, Serialize};

mod validate;

pub use validate::{bounds, ManifestError};

/// The defaults as a commented TOML file: a starting point for operators.
/// Parsing it gives [`Manifest::default`].
pub const DEFAULT_TOML: &str = include_str!("../default.toml");

/// The schema identifier shown in `/proc/boot`.
pub const SCHEMA: &str = "cohesix-manifest/v1";

/// Every bound and switch of one hive. Sections map to TOML tables.
///
/// Numeric fields document their allowed range as `Allowed: min..=max`;
/// [`Manifest::validate`] enforces exactly those ranges.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Manifest {
    pub hive: HiveSection,
    pub ninep: NinepSection,
    pub console: ConsoleSection,
    pub workers: WorkersSection,
    pub tickets: TicketsSection,
    pub telemetry: TelemetrySection,
    pub audit: AuditSection,
    pub gpu: GpuSection,
}

/// `[hive]`: identity and mode.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HiveSection {
    /// Shown in `/proc/boot`. 1..=64 bytes of `A-Z a-z 0-9 . _ -`.
    pub name: String,
    /// Accept the placeholder secret `changeme` (never in production).
    pub dev_mode: bool,
}

/// `[ninep]`: the Secure9P server.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct NinepSection {
    /// Secure9P listen address, `host:port`; required.
    pub listen: String,
    /// Largest msize the hive negotiates, in bytes. Allowed: 4096..=1048576.
    pub msize: u32,
    /// Concurrent 9P sessions. Allowed: 1..=65536.
    pub max_sessions: u32,
    /// Live fids per session. Allowed: 4..=65536 (a client needs a few to walk at all).
    pub max_fids_per_session: u32,
    /// Requests in flight per session. Allowed: 1..=1024.
    pub max_tags_in_flight: u32,
    /// Most components in one walk or path. Allowed: 1..=16.
    pub walk_depth: u32,
    /// Longest path component in bytes. Allowed: 1..=255.
    pub max_component_bytes: u32,
}

/// `[console]`: the TCP line console.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ConsoleSection {
    /// Line console listen address, `host:port`; empty disables the console.
    pub listen: String,
    /// Largest console line (frame payload) in bytes. Allowed: 256..=1048576;
    /// 256 is the upstream cap: anything smaller refuses lines upstream tools send.
    pub max_line_bytes: u32,
    /// Concurrent console clients. Allowed: 1..=65536.
    pub max_clients: u32,
    /// Time a new connection has to send `AUTH`, in ms. Allowed: 100..=60000.
    pub auth_timeout_ms: u32,
    /// Failed attaches within the window that lock a source out. Allowed: 1..=100.
    pub attach_failures_before_lockout: u32,
    /// Window over which failed attaches are counted, in s. Allowed: 1..=86400.
    pub attach_failure_window_s: u32,
    /// How long a locked-out source is refused, in s. Allowed: 1..=86400.
    pub lockout_s: u32,
}

/// `[workers]`: worker population, heartbeats and telemetry rings.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WorkersSection {
    /// Live workers. Allowed: 1..=2000000.
    pub max_workers: u32,
    /// Time between heartbeat ticks, in ms. Allowed: 10..=3600000.
    pub heartbeat_interval_ms: u32,
    /// Bytes kept per worker telemetry ring; oldest records are overwritten.
    /// Allowed: 256..=1048576.
    pub ring_bytes: u32,
    /// Largest single record appended to a worker ring; at most `ring_bytes`
    /// (a record and its newline must fit the ring). Allowed: 64..=65536.
    pub max_record_bytes: u32,
    /// Heartbeat ticks when a spawn gives no budget. Allowed: 1..=1000000000.
    pub default_ticks: u32,
    /// Operations when a spawn gives no budget. Allowed: 1..=1000000000.
    pub default_ops: u32,
    /// Worker lifetime when a spawn gives no budget, in s. Allowed: 1..=31536000 (a year).
    pub default_ttl_s: u32,
    /// Shard label width in bits. Allowed: 1..=8.
    pub shard_bits: u32,
    /// Serve `/worker/<id>` as an alias of the shard path.
    pub worker_alias: bool,
}

/// `[tickets]`: ceilings on what a ticket may claim.
///
/// The upper ends are the operator surface's maxima; 0 forbids the claim.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TicketsSection {
    /// Longest ticket lifetime, in s. Allowed: 1..=31536000 (a year).
    pub max_ttl_s: u32,
    /// Scopes in one ticket. Allowed: 0..=8.
    pub max_scopes: u32,
    /// Operations per second one scope may grant. Allowed: 0..=64.
    pub max_scope_rate_per_s: u32,
    /// Stream bandwidth quota, in bytes. Allowed: 0..=131072 (128 KiB).
    pub max_bandwidth_bytes: u32,
    /// Cursor resumes a ticket may grant. Allowed: 0..=16.
    pub max_cursor_resumes: u32,
    /// Cursor advances a ticket may grant. Allowed: 0..=256.
    pub max_cursor_advances: u32,
}

/// What a telemetry device does when its quota is reached.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum QuotaPolicy {
    /// Refuse the new segment or record.
    Refuse,
    /// Drop the device's oldest segment to make room.
    EvictOldest,
}

/// `[telemetry]`: segment ingest under `/queen/telemetry/<device>/`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TelemetrySection {
    /// Largest record appended to a segment. Allowed: 256..=65536; at most
    /// `max_segment_bytes`.
    pub record_bytes: u32,
    /// Devices with telemetry. Allowed: 1..=65536.
    pub max_devices: u32,
    /// Segments kept per device. Allowed: 1..=65536.
    pub max_segments_per_device: u32,
    /// Bytes per segment. Allowed: 4096..=4294967296 (4 GiB); at most `max_device_bytes`.
    pub max_segment_bytes: u64,
    /// Bytes per device, all segments. Allowed: 65536..=1099511627776 (1 TiB).
    pub max_device_bytes: u64,
    pub quota_policy: QuotaPolicy,
    /// Largest artifact streamed into the hive.
    /// Allowed: 1073741824..=68719476736 (1 GiB to 64 GiB).
    pub max_artifact_bytes: u64,
    /// Artifact chunk size (one `coh-ref-c/v1` record per chunk).
    /// Allowed: 65536..=67108864 (64 KiB to 64 MiB).
    pub chunk_bytes: u32,
    /// Artifact uploads open at once, over all sessions. Allowed: 1..=256.
    pub max_uploads: u32,
}

/// `[audit]`: the `/log/queen.log` stream.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuditSection {
    /// Bytes of `/log/queen.log` kept readable in memory.
    /// Allowed: 4096..=67108864 (4 KiB to 64 MiB).
    pub log_ring_bytes: u32,
    /// Largest line appended to `/log/queen.log` by a client. Allowed: 64..=65536;
    /// at most `log_ring_bytes`.
    pub max_line_bytes: u32,
}

/// `[gpu]`: the GPU inventory GPU lease workers are booked against.
///
/// Leases are bookkeeping: the hive does not discover or drive GPUs. With no
/// device declared (the default) every GPU spawn is refused.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct GpuSection {
    /// Active leases on one GPU. Allowed: 1..=1024.
    pub max_leases_per_gpu: u32,
    /// Declared devices: at most 64, ids unique.
    pub devices: Vec<GpuDevice>,
}

/// One declared GPU.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GpuDevice {
    /// 1..=64 bytes of `A-Z a-z 0-9 . _ -`, not `.` or `..`; unique.
    pub id: String,
    /// Memory that leases may book, in MiB; at least 1.
    pub mem_mb: u32,
    /// Streams that leases may book. 1..=64.
    pub streams: u32,
}

impl Default for GpuSection {
    fn default() -> GpuSection {
        GpuSection {
            max_leases_per_gpu: 8,
            devices: Vec::new(),
        }
    }
}

impl Default for HiveSection {
    fn default() -> HiveSection {
        HiveSection {
            name: "cohesix-host".to_string(),
            dev_mode: false,
        }
    }
}

impl Default for NinepSection {
    fn default() -> NinepSection {
        NinepSection {
            listen: "127.0.0.1:5640".to_string(),
            msize: 8192,
            max_sessions: 1024,
            max_fids_per_session: 256,
            max_tags_in_flight: 16,
            walk_depth: 8,
            max_component_bytes: 255,
        }
    }
}

impl Default for ConsoleSection {
    fn default() -> ConsoleSection {
        ConsoleSection {
            listen: "127.0.0.1:31337".to_string(),
            max_line_bytes: 8192,
            max_clients: 512,
            auth_timeout_ms: 5000,
            attach_failures_before_lockout: 3,
            attach_failure_window_s: 60,
            lockout_s: 90,
        }
    }
}

impl Default for WorkersSection {
    fn default() -> WorkersSection {
        WorkersSection {
            max_workers: 200_000,
            heartbeat_interval_ms: 1000,
            ring_bytes: 1024,
            max_record_bytes: 1023,
            default_ticks: 1000,
            default_ops: 10_000,
            default_ttl_s: 300,
            shard_bits: 8,
            worker_alias: true,
        }
    }
}

impl Default for TicketsSection {
    fn default() -> TicketsSection {
        TicketsSection {
            max_ttl_s: 30 * 24 * 3600,
            max_scopes: 8,
            max_scope_rate_per_s: 64,
            max_bandwidth_bytes: 128 * 1024,
            max_cursor_resumes: 16,
            max_cursor_advances: 256,
        }
    }
}

impl Default for TelemetrySection {
    fn default() -> TelemetrySection {
        TelemetrySection {
            record_bytes: 4096,
            max_devices: 1024,
            max_segments_per_device: 64,
            max_segment_bytes: 16 * 1024 * 1024,
            max_device_bytes: 8 * 1024 * 1024 * 1024,
            quota_policy: QuotaPolicy::EvictOldest,
            max_artifact_bytes: 4 * 1024 * 1024 * 1024,
            chunk_bytes: 16 * 1024 * 1024,
            max_uploads: 8,
        }
    }
}

impl Default for AuditSection {
    fn default() -> AuditSection {
        AuditSection {
            log_ring_bytes: 1024 * 1024,
            max_line_bytes: 1024,
        }
    }
}
