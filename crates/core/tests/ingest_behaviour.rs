//! Telemetry ingest in the core, on the in-memory store: segment naming,
//! quotas under both policies, schema and size refusals, closed and
//! evicted segments, role policy, restarts, and artifact round trips.
//! Every refusal is checked for its class and for leaving nothing changed.

use cohesix_core::ingest::record::{self, ChunkRef, Record};
use cohesix_core::ingest::MemIngestStore;
use cohesix_core::{
    Credential, Hive, HiveInit, NullStore, OpenFile, Secrets, SessionId, Transport,
};
use cohesix_manifest::{Manifest, QuotaPolicy};
use cohesix_ninep::{ErrorClass, OpenMode};
use cohesix_ticket::{Claims, Role};

const T0: u64 = 1_700_000_000_000;
const DEV: &str = "/queen/telemetry/cam-1";
const NEW: &[u8] = br#"{"new":"segment","mime":"text/plain"}"#;

fn secrets() -> Secrets {
    let mut s = Secrets::default();
    for role in Role::ALL {
        let secret = format!("secret-for-{}", role.as_str()).into_bytes();
        s.roles.insert(role.as_str().into(), secret);
    }
    s
}

fn hive_on(manifest: Manifest, store: &MemIngestStore) -> Hive {
    let mut h = Hive::new(HiveInit {
        manifest,
        manifest_name: "test".into(),
        secrets: secrets(),
        next_worker_id: 1,
        store: Box::new(NullStore),
        now_ms: T0,
    });
    h.set_ingest_store(Box::new(store.clone()))
        .expect("recover");
    h
}

fn hive(manifest: Manifest) -> (Hive, SessionId) {
    let mut h = hive_on(manifest, &MemIngestStore::new());
    let q = queen(&mut h);
    (h, q)
}

fn ticket(role: Role, subject: Option<&str>) -> String {
    let mut claims = Claims::new(role, T0, T0 + 3_600_000);
    claims.subject = subject.map(str::to_string);
    let secret = format!("secret-for-{}", role.as_str());
    cohesix_ticket::mint(&claims, secret.as_bytes()).expect("mint")
}

fn queen(h: &mut Hive) -> SessionId {
    let t = ticket(Role::Queen, None);
    h.attach("queen", Credential::Ticket(&t), Transport::NineP)
        .expect("queen attaches")
}

fn push(seq: u64, payload: &str) -> Vec<u8> {
    let head = r#"{"schema":"cohsh-telemetry-push/v1","mime":"text/plain""#;
    format!(r#"{head},"seq":{seq},"payload":"{payload}"}}"#).into_bytes()
}

fn new_segment(h: &mut Hive, q: SessionId, dev: &str) -> String {
    let out = h
        .append(q, &format!("{dev}/ctl"), NEW)
        .expect("new segment");
    out.reply.expect("segment id")
}

fn class(r: Result<impl std::fmt::Debug, cohesix_ninep::NsError>) -> (ErrorClass, &'static str) {
    let e = r.expect_err("refused");
    (e.class, e.detail)
}

fn read(h: &mut Hive, q: SessionId, path: &str) -> String {
    let data = h.read_path(q, path, 1 << 20).expect("read");
    String::from_utf8(data).expect("utf8")
}

fn refusals(h: &Hive) -> u64 {
    let p = h.pressure();
    p.busy + p.quota + p.cut + p.policy
}

fn small(policy: QuotaPolicy) -> Manifest {
    let mut m = Manifest::default();
    let t = &mut m.telemetry;
    t.quota_policy = policy;
    t.max_segments_per_device = 3;
    t.record_bytes = 256;
    t.max_segment_bytes = 400;
    t.max_device_bytes = 1000;
    m
}

#[test]
fn ctl_names_segments_in_order_and_latest_follows() {
    let (mut h, q) = hive(Manifest::default());
    assert_eq!(h.list(q, "/queen/telemetry").unwrap().len(), 0);
    for n in 1..=3 {
        assert_eq!(new_segment(&mut h, q, DEV), format!("seg-{n:06}"));
    }
    assert_eq!(read(&mut h, q, &format!("{DEV}/latest")), "seg-000003\n");
    let devices: Vec<String> = h
        .list(q, "/queen/telemetry")
        .unwrap()
        .into_iter()
        .map(|e| e.0)
        .collect();
    assert_eq!(devices, ["cam-1"]);
    let segs: Vec<String> = h
        .list(q, &format!("{DEV}/seg"))
        .unwrap()
        .into_iter()
        .map(|e| e.0)
        .collect();
    assert_eq!(segs, ["seg-000001", "seg-000002", "seg-000003"]);
}

#[test]
fn ctl_reply_is_readable_from_the_same_fid() {
    let (mut h, q) = hive(Manifest::default());
    let mut open = h
        .open_path(q, &format!("{DEV}/ctl"), OpenMode::ReadWrite)
        .unwrap();
    h.write_open_at(q, &mut open, 0, NEW).unwrap();
    let mut out = Vec::new();
    h.read_open(q, &mut open, 0, 64, &mut out).unwrap();
    assert_eq!(out, b"seg-000001\n");
}

#[test]
fn bad_ctl_writes_are_invalid_and_create_nothing() {
    let (mut h, q) = hive(Manifest::default());
    let bad: &[&[u8]] = &[
        br#"{"new":"segment","mime":"text/plain","extra":1}"#,
        br#"{"new":"segment"}"#,
        br#"{"new":"stream","mime":"text/plain"}"#,
        b"new segment",
        b"{\"new\":\"segment\",\"mime\":\"text/plain\"}\n{\"new\":\"segment\"}",
    ];
    for (i, data) in bad.iter().enumerate() {
        let before = refusals(&h);
        let r = h.append(q, &format!("{DEV}/ctl"), data);
        assert_eq!(class(r).0, ErrorClass::Invalid, "case {i}");
        assert_eq!(refusals(&h), before + 1, "case {i} is counted");
    }
    assert!(h.list(q, "/queen/telemetry").unwrap().is_empty());
    assert_eq!(
        class(h.read_path(q, &format!("{DEV}/latest"), 64)).0,
        ErrorClass::NotFound
    );
}

#[test]
fn device_ids_with_slash_or_dotdot_are_refused() {
    let (mut h, q) = hive(Manifest::default());
    let long = format!("/queen/telemetry/{}/ctl", "d".repeat(65));
    for path in [
        "/queen/telemetry/../ctl",
        "/queen/telemetry/a/b/ctl",
        "/queen/telemetry/./ctl",
        "/queen/telemetry/a b/ctl",
        long.as_str(),
    ] {
        assert_eq!(
            class(h.append(q, path, NEW)).0,
            ErrorClass::NotFound,
            "{path}"
        );
    }
    assert!(h.list(q, "/queen/telemetry").unwrap().is_empty());
}

#[test]
fn worker_roles_cannot_ingest_or_read_telemetry() {
    let (mut h, q) = hive(Manifest::default());
    new_segment(&mut h, q, DEV);
    let spawn = br#"{"spawn":"heartbeat","ticks":5}"#;
    let id = h.append(q, "/queen/ctl", spawn).unwrap().reply.unwrap();
    let t = ticket(Role::WorkerHeartbeat, Some(&id));
    let w = h
        .attach("worker-heartbeat", Credential::Ticket(&t), Transport::NineP)
        .unwrap();
    let other = "/queen/telemetry/cam-2/ctl";
    assert_eq!(class(h.append(w, other, NEW)).0, ErrorClass::Permission);
    let seg = format!("{DEV}/seg/seg-000001");
    assert_eq!(
        class(h.append(w, &seg, &push(1, "x"))).0,
        ErrorClass::Permission
    );
    assert_eq!(
        class(h.read_path(w, &format!("{DEV}/latest"), 64)).0,
        ErrorClass::Permission
    );
    assert_eq!(
        class(h.open_path(w, &format!("{DEV}/artifact"), OpenMode::Write)).0,
        ErrorClass::Permission
    );
    assert_eq!(h.list(q, "/queen/telemetry").unwrap().len(), 1);
    assert_eq!(read(&mut h, q, &seg), "");
}

#[test]
fn records_append_in_seq_order_and_read_back_as_lines() {
    let (mut h, q) = hive(Manifest::default());
    new_segment(&mut h, q, DEV);
    let seg = format!("{DEV}/seg/seg-000001");
    let mut expect = String::new();
    for seq in 1..=5 {
        let rec = push(seq, &format!("reading {seq}"));
        h.append(q, &seg, &rec).unwrap();
        expect.push_str(std::str::from_utf8(&rec).unwrap());
        expect.push('\n');
    }
    assert_eq!(read(&mut h, q, &seg), expect);
    assert_eq!(h.stat_path(q, &seg).unwrap().size, expect.len() as u64);
    // Small reads at every size reassemble the same bytes.
    for count in [1u32, 7, 50, 200] {
        let mut open = h.open_path(q, &seg, OpenMode::Read).unwrap();
        let mut got = Vec::new();
        for _ in 0..10_000 {
            let mut out = Vec::new();
            h.read_open(q, &mut open, got.len() as u64, count, &mut out)
                .unwrap();
            if out.is_empty() {
                break;
            }
            got.extend_from_slice(&out);
        }
        assert_eq!(String::from_utf8(got).unwrap(), expect, "count {count}");
    }
}

#[test]
fn schema_violations_are_invalid_and_change_nothing() {
    let (mut h, q) = hive(Manifest::default());
    new_segment(&mut h, q, DEV);
    let seg = format!("{DEV}/seg/seg-000001");
    h.append(q, &seg, &push(1, "ok")).unwrap();
    let before = read(&mut h, q, &seg);
    let push2 = r#"{"schema":"cohsh-telemetry-push/v1","seq":2,"mime":"text/plain""#;
    let ref2 = r#"{"schema":"coh-ref-c/v1","seq":2,"off":0,"len":1"#;
    let cases: Vec<(Vec<u8>, &str)> = vec![
        (push(1, "again"), "seq-duplicate"),
        (push(3, "skip"), "seq-gap"),
        (format!("{push2}}}").into_bytes(), "invalid-record"),
        (
            format!(r#"{push2},"payload":1,"x":1}}"#).into_bytes(),
            "invalid-record",
        ),
        (
            format!(r#"{ref2},"sha256":"not-base64"}}"#).into_bytes(),
            "invalid-record",
        ),
        (
            br#"{"schema":"other/v9","seq":2}"#.to_vec(),
            "unknown-schema",
        ),
        (b"plain text".to_vec(), "invalid-record"),
        (b"{\"a\":1}\n{\"b\":2}".to_vec(), "invalid-record"),
    ];
    for (data, detail) in cases {
        let before_refusals = refusals(&h);
        let r = h.append(q, &seg, &data);
        assert_eq!(class(r), (ErrorClass::Invalid, detail));
        assert_eq!(refusals(&h), before_refusals + 1);
    }
    assert_eq!(read(&mut h, q, &seg), before);
    h.append(q, &seg, &push(2, "next"))
        .expect("seq 2 still expected");
}

#[test]
fn a_record_over_the_bound_is_too_big() {
    let (mut h, q) = hive(Manifest::default());
    new_segment(&mut h, q, DEV);
    let seg = format!("{DEV}/seg/seg-000001");
    let big = push(1, &"x".repeat(4096));
    assert_eq!(
        class(h.append(q, &seg, &big)),
        (ErrorClass::TooBig, "record-too-large")
    );
    assert_eq!(read(&mut h, q, &seg), "");
    assert_eq!(
        read(&mut h, q, "/proc/ingest/backpressure"),
        "backpressure=1\n"
    );
}

#[test]
fn appends_ignore_the_clients_offset() {
    let (mut h, q) = hive(Manifest::default());
    new_segment(&mut h, q, DEV);
    let seg = format!("{DEV}/seg/seg-000001");
    let mut open = h.open_path(q, &seg, OpenMode::Write).unwrap();
    h.write_open_at(q, &mut open, 999_999, &push(1, "a"))
        .unwrap();
    h.write_open_at(q, &mut open, 0, &push(2, "b")).unwrap();
    let text = read(&mut h, q, &seg);
    let seqs: Vec<u64> = text
        .lines()
        .map(|l| record::parse_record(l.as_bytes()).unwrap().seq())
        .collect();
    assert_eq!(seqs, [1, 2]);
}

#[test]
fn only_the_newest_segment_takes_appends() {
    let (mut h, q) = hive(Manifest::default());
    new_segment(&mut h, q, DEV);
    let first = format!("{DEV}/seg/seg-000001");
    let mut open = h.open_path(q, &first, OpenMode::Write).unwrap();
    new_segment(&mut h, q, DEV);
    assert_eq!(
        class(h.append(q, &first, &push(1, "late"))),
        (ErrorClass::Closed, "segment-closed")
    );
    let r = h.write_open_at(q, &mut open, 0, &push(1, "late"));
    assert_eq!(class(r), (ErrorClass::Closed, "segment-closed"));
    assert_eq!(read(&mut h, q, &first), "");
    h.append(q, &format!("{DEV}/seg/seg-000002"), &push(1, "ok"))
        .unwrap();
}

#[test]
fn refuse_policy_refuses_segments_and_bytes_past_the_quota() {
    let (mut h, q) = hive(small(QuotaPolicy::Refuse));
    for _ in 0..3 {
        new_segment(&mut h, q, DEV);
    }
    let r = h.append(q, &format!("{DEV}/ctl"), NEW);
    assert_eq!(class(r), (ErrorClass::Quota, "too-many-segments"));
    assert_eq!(read(&mut h, q, &format!("{DEV}/latest")), "seg-000003\n");

    // Fill the open segment up to its byte bound.
    let seg = format!("{DEV}/seg/seg-000003");
    let rec = |seq| push(seq, &"p".repeat(100));
    let mut seq = 1;
    while h.append(q, &seg, &rec(seq)).is_ok() {
        seq += 1;
    }
    let before = read(&mut h, q, &seg);
    assert_eq!(
        class(h.append(q, &seg, &rec(seq))),
        (ErrorClass::Quota, "segment-full")
    );
    assert_eq!(read(&mut h, q, &seg), before);
}

#[test]
fn refuse_policy_refuses_bytes_past_the_device_quota() {
    let mut m = small(QuotaPolicy::Refuse);
    // Records are 178 bytes with their newline: two fill a segment.
    m.telemetry.max_device_bytes = 600;
    let (mut h, q) = hive(m);
    let mut seq = 1;
    new_segment(&mut h, q, DEV);
    let rec = |seq| push(seq, &"p".repeat(100));
    while h
        .append(q, &format!("{DEV}/seg/seg-000001"), &rec(seq))
        .is_ok()
    {
        seq += 1;
    }
    new_segment(&mut h, q, DEV);
    let seg2 = format!("{DEV}/seg/seg-000002");
    h.append(q, &seg2, &rec(1)).unwrap();
    let r = h.append(q, &seg2, &rec(2));
    assert_eq!(class(r), (ErrorClass::Quota, "device-full"));
    assert_eq!(read(&mut h, q, &seg2).lines().count(), 1);
    assert!(!read(&mut h, q, &format!("{DEV}/seg/seg-000001")).is_empty());
}

#[test]
fn evict_oldest_drops_the_oldest_segment_and_audits_it() {
    let (mut h, q) = hive(small(QuotaPolicy::EvictOldest));
    new_segment(&mut h, q, DEV);
    h.append(q, &format!("{DEV}/seg/seg-000001"), &push(1, "old"))
        .unwrap();
    for _ in 0..3 {
        new_segment(&mut h, q, DEV);
    }
    let segs: Vec<String> = h
        .list(q, &format!("{DEV}/seg"))
        .unwrap()
        .into_iter()
        .map(|e| e.0)
        .collect();
    assert_eq!(segs, ["seg-000002", "seg-000003", "seg-000004"]);
    let evicted = format!("{DEV}/seg/seg-000001");
    assert_eq!(class(h.read_path(q, &evicted, 64)).0, ErrorClass::NotFound);
    assert_eq!(
        class(h.append(q, &evicted, &push(2, "x"))).0,
        ErrorClass::NotFound
    );
    let log = String::from_utf8(h.tail_path(q, "/log/queen.log", 1 << 16).unwrap()).unwrap();
    assert!(
        log.contains("telemetry evicted device=cam-1 segment=seg-000001 records=1"),
        "{log}"
    );
    assert_eq!(read(&mut h, q, "/proc/ingest/dropped"), "dropped=1\n");
}

#[test]
fn evict_oldest_makes_room_for_bytes() {
    let (mut h, q) = hive(small(QuotaPolicy::EvictOldest));
    // Records are 178 bytes with their newline: two fill a 400-byte
    // segment, five and a bit fill the 1000-byte device.
    let rec = |seq| push(seq, &"p".repeat(100));
    for n in 1..=2 {
        new_segment(&mut h, q, DEV);
        let seg = format!("{DEV}/seg/seg-{n:06}");
        for seq in 1..=2 {
            h.append(q, &seg, &rec(seq)).unwrap();
        }
    }
    new_segment(&mut h, q, DEV);
    let seg3 = format!("{DEV}/seg/seg-000003");
    h.append(q, &seg3, &rec(1)).unwrap();
    h.append(q, &seg3, &rec(2))
        .expect("room made by evicting seg-000001");
    let segs: Vec<String> = h
        .list(q, &format!("{DEV}/seg"))
        .unwrap()
        .into_iter()
        .map(|e| e.0)
        .collect();
    assert_eq!(segs, ["seg-000002", "seg-000003"]);
    assert_eq!(read(&mut h, q, &seg3).lines().count(), 2);
    let log = String::from_utf8(h.tail_path(q, "/log/queen.log", 1 << 16).unwrap()).unwrap();
    assert!(
        log.contains("segment=seg-000001 records=2 bytes=356 artifact_bytes=0 reason=bytes"),
        "{log}"
    );
}

#[test]
fn too_many_devices_is_quota() {
    let mut m = Manifest::default();
    m.telemetry.max_devices = 2;
    let (mut h, q) = hive(m);
    new_segment(&mut h, q, "/queen/telemetry/a");
    new_segment(&mut h, q, "/queen/telemetry/b");
    let r = h.append(q, "/queen/telemetry/c/ctl", NEW);
    assert_eq!(class(r), (ErrorClass::Quota, "too-many-devices"));
    new_segment(&mut h, q, "/queen/telemetry/a");
    assert_eq!(h.list(q, "/queen/telemetry").unwrap().len(), 2);
}

#[test]
fn a_restart_keeps_devices_segments_latest_and_sequence_numbers() {
    let store = MemIngestStore::new();
    let mut h = hive_on(Manifest::default(), &store);
    let q = queen(&mut h);
    new_segment(&mut h, q, DEV);
    new_segment(&mut h, q, DEV);
    let seg = format!("{DEV}/seg/seg-000002");
    h.append(q, &seg, &push(1, "a")).unwrap();
    h.append(q, &seg, &push(2, "b")).unwrap();
    let before = read(&mut h, q, &seg);
    drop(h);

    let mut h = hive_on(Manifest::default(), &store);
    let q = queen(&mut h);
    assert_eq!(read(&mut h, q, &format!("{DEV}/latest")), "seg-000002\n");
    assert_eq!(read(&mut h, q, &seg), before);
    assert_eq!(
        class(h.append(q, &seg, &push(2, "again"))).1,
        "seq-duplicate"
    );
    h.append(q, &seg, &push(3, "c")).unwrap();
    assert_eq!(new_segment(&mut h, q, DEV), "seg-000003");
}

// ---- artifacts ----------------------------------------------------------------

fn artifact_manifest() -> Manifest {
    let mut m = Manifest::default();
    m.telemetry.chunk_bytes = 64 * 1024;
    m.telemetry.max_uploads = 2;
    m
}

fn pattern(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i * 31 % 251) as u8).collect()
}

/// Streams `data` into the device's artifact file in 8 KiB writes and
/// commits it by reading; returns the artifact id.
fn upload(h: &mut Hive, q: SessionId, data: &[u8]) -> Result<String, cohesix_ninep::NsError> {
    let mut open = h.open_path(q, &format!("{DEV}/artifact"), OpenMode::ReadWrite)?;
    let result = upload_on(h, q, &mut open, data);
    h.release_open(q, open);
    result
}

fn upload_on(
    h: &mut Hive,
    q: SessionId,
    open: &mut OpenFile,
    data: &[u8],
) -> Result<String, cohesix_ninep::NsError> {
    for (i, piece) in data.chunks(8192).enumerate() {
        h.write_open_at(q, open, (i * 8192) as u64, piece)?;
    }
    let mut out = Vec::new();
    h.read_open(q, open, 0, 128, &mut out)?;
    let line = String::from_utf8(out).expect("utf8");
    Ok(line.trim_end().to_string())
}

fn download(h: &mut Hive, q: SessionId, id: &str) -> Result<Vec<u8>, cohesix_ninep::NsError> {
    let mut open = h.open_path(q, &format!("{DEV}/artifacts/{id}"), OpenMode::Read)?;
    let mut got = Vec::new();
    for _ in 0..100_000 {
        let mut out = Vec::new();
        h.read_open(q, &mut open, got.len() as u64, 8192, &mut out)?;
        if out.is_empty() {
            break;
        }
        got.extend_from_slice(&out);
    }
    Ok(got)
}

fn ref_chunks(text: &str) -> Vec<ChunkRef> {
    text.lines()
        .filter_map(|l| match record::parse_record(l.as_bytes()) {
            Ok(Record::Ref { chunk, .. }) => Some(chunk),
            _ => None,
        })
        .collect()
}

#[test]
fn an_artifact_round_trips_through_chunks_and_reference_records() {
    let store = MemIngestStore::new();
    let mut h = hive_on(artifact_manifest(), &store);
    let q = queen(&mut h);
    new_segment(&mut h, q, DEV);
    let seg = format!("{DEV}/seg/seg-000001");
    h.append(q, &seg, &push(1, "before")).unwrap();
    let data = pattern(200 * 1024 + 123);
    let id = upload(&mut h, q, &data).unwrap();
    assert_eq!(id, "seg-000001.2");
    assert_eq!(download(&mut h, q, &id).unwrap(), data);

    let chunks = ref_chunks(&read(&mut h, q, &seg));
    let offs: Vec<(u64, u64)> = chunks.iter().map(|c| (c.off, c.len)).collect();
    assert_eq!(
        offs,
        [(0, 65536), (65536, 65536), (131072, 65536), (196608, 8315)]
    );
    // The segment's sequence continues after the artifact's records.
    h.append(q, &seg, &push(6, "after")).unwrap();
    // A second artifact in the same segment is found by its own id.
    let small = pattern(1000);
    let id2 = upload(&mut h, q, &small).unwrap();
    assert_eq!(id2, "seg-000001.7");
    assert_eq!(download(&mut h, q, &id2).unwrap(), small);
    assert_eq!(download(&mut h, q, &id).unwrap(), data);
    let log = String::from_utf8(h.tail_path(q, "/log/queen.log", 1 << 16).unwrap()).unwrap();
    assert!(log.contains("telemetry artifact committed device=cam-1 id=seg-000001.2"));
}

#[test]
fn a_corrupted_chunk_is_an_error_and_never_served() {
    let store = MemIngestStore::new();
    let mut h = hive_on(artifact_manifest(), &store);
    let q = queen(&mut h);
    new_segment(&mut h, q, DEV);
    let data = pattern(150 * 1024);
    let id = upload(&mut h, q, &data).unwrap();
    let chunks = ref_chunks(&read(&mut h, q, &format!("{DEV}/seg/seg-000001")));
    assert!(store.corrupt_chunk(&chunks[1].sha256));

    let mut open = h
        .open_path(q, &format!("{DEV}/artifacts/{id}"), OpenMode::Read)
        .unwrap();
    let mut out = Vec::new();
    h.read_open(q, &mut open, 0, 8192, &mut out)
        .expect("chunk 0 is intact");
    assert_eq!(out, data[..8192]);
    out.clear();
    let r = h.read_open(q, &mut open, 65536, 8192, &mut out);
    assert_eq!(class(r), (ErrorClass::Invalid, "chunk-corrupt"));
    assert!(out.is_empty());
    let r = h.read_open(q, &mut open, 70000, 8192, &mut out);
    assert_eq!(class(r), (ErrorClass::Invalid, "chunk-corrupt"));
}

#[test]
fn upload_refusals_leave_the_segment_unchanged() {
    let mut m = artifact_manifest();
    m.telemetry.max_artifact_bytes = 100 * 1024;
    let store = MemIngestStore::new();
    let mut h = hive_on(m, &store);
    let q = queen(&mut h);
    let upload_path = format!("{DEV}/artifact");
    // No device yet.
    let r = h.open_path(q, &upload_path, OpenMode::ReadWrite);
    assert_eq!(class(r).0, ErrorClass::NotFound);
    new_segment(&mut h, q, DEV);
    let seg = format!("{DEV}/seg/seg-000001");

    // Offsets must be sequential; a refused write changes nothing.
    let mut open = h.open_path(q, &upload_path, OpenMode::ReadWrite).unwrap();
    h.write_open_at(q, &mut open, 0, &[1; 100]).unwrap();
    let r = h.write_open_at(q, &mut open, 50, &[1; 100]);
    assert_eq!(class(r), (ErrorClass::Invalid, "offset-not-sequential"));
    h.write_open_at(q, &mut open, 100, &[2; 100]).unwrap();
    // A clunk before the commit discards the upload.
    h.release_open(q, open);
    assert_eq!(read(&mut h, q, &seg), "");

    // Past max_artifact_bytes: TooBig, and the upload is dead.
    let mut open = h.open_path(q, &upload_path, OpenMode::ReadWrite).unwrap();
    let r = upload_on(&mut h, q, &mut open, &pattern(101 * 1024));
    assert_eq!(class(r), (ErrorClass::TooBig, "artifact-too-large"));
    let mut out = Vec::new();
    let r = h.read_open(q, &mut open, 0, 64, &mut out);
    assert_eq!(class(r), (ErrorClass::Invalid, "upload-failed"));
    h.release_open(q, open);

    // An empty artifact is refused at commit.
    let r = upload(&mut h, q, b"");
    assert_eq!(class(r), (ErrorClass::Invalid, "empty-artifact"));
    assert_eq!(read(&mut h, q, &seg), "");
    assert_eq!(read(&mut h, q, "/proc/ingest/queued"), "queued=0\n");
}

#[test]
fn concurrent_uploads_are_bounded() {
    let (mut h, q) = hive(artifact_manifest());
    new_segment(&mut h, q, DEV);
    let path = format!("{DEV}/artifact");
    let a = h.open_path(q, &path, OpenMode::Write).unwrap();
    let b = h.open_path(q, &path, OpenMode::Write).unwrap();
    assert_eq!(read(&mut h, q, "/proc/ingest/queued"), "queued=2\n");
    let r = h.open_path(q, &path, OpenMode::Write);
    assert_eq!(class(r), (ErrorClass::Busy, "uploads-full"));
    h.release_open(q, a);
    let c = h
        .open_path(q, &path, OpenMode::Write)
        .expect("a slot was freed");
    h.release_open(q, b);
    h.release_open(q, c);
    assert_eq!(read(&mut h, q, "/proc/ingest/queued"), "queued=0\n");
}

#[test]
fn an_artifact_that_does_not_fit_the_segment_is_quota() {
    let mut m = artifact_manifest();
    m.telemetry.max_segment_bytes = 300;
    let (mut h, q) = hive(m);
    new_segment(&mut h, q, DEV);
    // Three chunks need three ~110-byte records: more than 300 bytes.
    let r = upload(&mut h, q, &pattern(3 * 64 * 1024));
    assert_eq!(class(r), (ErrorClass::Quota, "segment-full"));
    assert_eq!(read(&mut h, q, &format!("{DEV}/seg/seg-000001")), "");
    let id = upload(&mut h, q, &pattern(64 * 1024)).expect("one chunk fits");
    assert_eq!(id, "seg-000001.1");
}

#[test]
fn proc_ingest_files_follow_the_documented_shapes() {
    let (mut h, q) = hive(Manifest::default());
    new_segment(&mut h, q, DEV);
    h.append(q, &format!("{DEV}/seg/seg-000001"), &push(1, "x"))
        .unwrap();
    for (file, key) in [
        ("p50_ms", "p50_ms="),
        ("p95_ms", "p95_ms="),
        ("backpressure", "backpressure="),
        ("dropped", "dropped="),
        ("queued", "queued="),
    ] {
        let text = read(&mut h, q, &format!("/proc/ingest/{file}"));
        let value = text.strip_prefix(key).and_then(|v| v.strip_suffix('\n'));
        assert!(value.is_some_and(|v| v.parse::<u64>().is_ok()), "{text}");
    }
}

#[test]
fn artifact_bytes_count_against_the_device_quota() {
    let mut m = artifact_manifest();
    m.telemetry.max_device_bytes = 100 * 1024;
    m.telemetry.quota_policy = QuotaPolicy::Refuse;
    let (mut h, q) = hive(m.clone());
    new_segment(&mut h, q, DEV);
    let r = upload(&mut h, q, &pattern(150 * 1024));
    assert_eq!(class(r), (ErrorClass::Quota, "device-full"));
    upload(&mut h, q, &pattern(60 * 1024)).expect("fits");
    let r = upload(&mut h, q, &pattern(60 * 1024));
    assert_eq!(class(r), (ErrorClass::Quota, "device-full"));

    m.telemetry.quota_policy = QuotaPolicy::EvictOldest;
    let (mut h, q) = hive(m);
    new_segment(&mut h, q, DEV);
    upload(&mut h, q, &pattern(60 * 1024)).unwrap();
    new_segment(&mut h, q, DEV);
    let id = upload(&mut h, q, &pattern(60 * 1024)).expect("room made by eviction");
    assert_eq!(id, "seg-000002.1");
    let segs: Vec<String> = h
        .list(q, &format!("{DEV}/seg"))
        .unwrap()
        .into_iter()
        .map(|e| e.0)
        .collect();
    assert_eq!(segs, ["seg-000002"]);
    let log = String::from_utf8(h.tail_path(q, "/log/queen.log", 1 << 16).unwrap()).unwrap();
    assert!(log.contains("segment=seg-000001 records=1"), "{log}");
    assert!(log.contains("artifact_bytes=61440 reason=bytes"), "{log}");
}
