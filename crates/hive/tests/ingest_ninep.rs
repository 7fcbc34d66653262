//! Telemetry ingest over real Secure9P traffic, on the disk store: segment
//! creation with the reply read from the same fid, appends, restarts, torn
//! tails, artifact round trips with on-disk chunks, and damaged chunks.

use cohesix_client::{Client, ClientConfig, ErrorClass, OpenMode};
use cohesix_hive::ingest_store::{frame, kind};
use cohesix_hive::{HiveConfig, RunningHive};
use cohesix_manifest::Manifest;
use cohesix_ticket::{Claims, Role};
use sha2::{Digest, Sha256};
use std::io::Write;
use std::path::Path;

const DEV: &str = "/queen/telemetry/probe-7";
const NEW: &[u8] = br#"{"new":"segment","mime":"text/plain"}"#;

fn manifest() -> Manifest {
    let mut m = Manifest::default();
    m.ninep.listen = "127.0.0.1:0".into();
    m.ninep.msize = 65_536;
    m.console.listen = String::new();
    m.telemetry.chunk_bytes = 1024 * 1024;
    m
}

async fn start(dir: &Path) -> RunningHive {
    let config = HiveConfig {
        manifest: manifest(),
        manifest_name: "test".into(),
        data_dir: dir.to_path_buf(),
    };
    cohesix_hive::start(config).await.expect("hive starts")
}

fn ticket(h: &RunningHive, role: Role, subject: Option<&str>) -> String {
    let now = cohesix_hive::now_ms();
    let mut claims = Claims::new(role, now, now + 600_000);
    claims.subject = subject.map(str::to_string);
    let secret = &h.secrets.roles[role.as_str()];
    cohesix_ticket::mint(&claims, secret.as_bytes()).expect("mint")
}

async fn queen(h: &RunningHive) -> Client {
    let mut config = ClientConfig::new("queen", ticket(h, Role::Queen, None));
    config.msize = 65_536;
    Client::connect(h.ninep_addr, config)
        .await
        .expect("queen attaches")
}

async fn text(c: &Client, path: &str) -> String {
    String::from_utf8(c.read_all(path, 1 << 20).await.expect(path)).expect("utf8")
}

/// Writes the ctl command and reads the new segment id from the same fid.
async fn new_segment(c: &Client) -> String {
    let f = c
        .open(&format!("{DEV}/ctl"), OpenMode::ReadWrite)
        .await
        .unwrap();
    f.write_at(0, NEW).await.unwrap();
    let reply = f.read_at(0, 64).await.unwrap();
    f.close().await.unwrap();
    String::from_utf8(reply).unwrap().trim_end().to_string()
}

fn push(seq: u64) -> Vec<u8> {
    let head = r#"{"schema":"cohsh-telemetry-push/v1","mime":"text/plain""#;
    format!(r#"{head},"seq":{seq},"payload":"value {seq}"}}"#).into_bytes()
}

fn pattern(len: usize, salt: u8) -> Vec<u8> {
    // Not periodic at any chunk size, so no two chunks share a hash.
    (0..len as u64)
        .map(|i| (i.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 56) as u8 ^ salt)
        .collect()
}

/// Streams an artifact in iounit-sized writes and commits it by reading.
async fn upload(c: &Client, data: &[u8]) -> Result<String, cohesix_client::Error> {
    let f = c
        .open(&format!("{DEV}/artifact"), OpenMode::ReadWrite)
        .await?;
    let step = f.iounit() as usize;
    for (i, piece) in data.chunks(step).enumerate() {
        f.write_at((i * step) as u64, piece).await?;
    }
    let reply = f.read_at(0, 128).await?;
    f.close().await?;
    Ok(String::from_utf8(reply).unwrap().trim_end().to_string())
}

fn chunk_files(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut v: Vec<_> = std::fs::read_dir(dir.join("telemetry/chunks"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    v.sort();
    v
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn segments_are_created_appended_and_read_over_9p() {
    let dir = tempfile::tempdir().unwrap();
    let hive = start(dir.path()).await;
    let c = queen(&hive).await;
    assert_eq!(new_segment(&c).await, "seg-000001");
    assert_eq!(new_segment(&c).await, "seg-000002");
    assert_eq!(text(&c, &format!("{DEV}/latest")).await, "seg-000002\n");
    let seg = format!("{DEV}/seg/seg-000002");
    let mut expect = Vec::new();
    for seq in 1..=20 {
        c.append(&seg, &push(seq)).await.unwrap();
        expect.extend_from_slice(&push(seq));
        expect.push(b'\n');
    }
    assert_eq!(c.read_all(&seg, 1 << 20).await.unwrap(), expect);
    assert_eq!(c.stat(&seg).await.unwrap().size, expect.len() as u64);
    assert_eq!(
        c.ls(&format!("{DEV}/seg")).await.unwrap(),
        ["seg-000001", "seg-000002"]
    );

    // Appends ignore the offset a client sends.
    let f = c.open(&seg, OpenMode::Write).await.unwrap();
    f.write_at(1 << 40, &push(21)).await.unwrap();
    f.close().await.unwrap();
    assert!(text(&c, &seg).await.ends_with("\"value 21\"}\n"));

    // Closed segments refuse appends.
    let err = c.append(&format!("{DEV}/seg/seg-000001"), &push(1)).await;
    assert_eq!(err.unwrap_err().class(), Some(ErrorClass::Closed));
    let p95 = text(&c, "/proc/ingest/p95_ms").await;
    assert!(p95.starts_with("p95_ms="), "{p95}");
    hive.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_keeps_segments_latest_and_sequence_numbers() {
    let dir = tempfile::tempdir().unwrap();
    let hive = start(dir.path()).await;
    let c = queen(&hive).await;
    new_segment(&c).await;
    new_segment(&c).await;
    let seg = format!("{DEV}/seg/seg-000002");
    for seq in 1..=3 {
        c.append(&seg, &push(seq)).await.unwrap();
    }
    let first = text(&c, &format!("{DEV}/seg/seg-000001")).await;
    let before = text(&c, &seg).await;
    c.close();
    hive.shutdown().await;

    let hive = start(dir.path()).await;
    let c = queen(&hive).await;
    assert_eq!(text(&c, &format!("{DEV}/latest")).await, "seg-000002\n");
    assert_eq!(text(&c, &seg).await, before);
    assert_eq!(text(&c, &format!("{DEV}/seg/seg-000001")).await, first);
    let dup = c.append(&seg, &push(3)).await.unwrap_err();
    assert_eq!(dup.class(), Some(ErrorClass::Invalid));
    c.append(&seg, &push(4)).await.unwrap();
    assert_eq!(new_segment(&c).await, "seg-000003");
    hive.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_torn_tail_is_cut_at_start_and_never_served() {
    let dir = tempfile::tempdir().unwrap();
    let hive = start(dir.path()).await;
    let c = queen(&hive).await;
    new_segment(&c).await;
    let seg = format!("{DEV}/seg/seg-000001");
    for seq in 1..=3 {
        c.append(&seg, &push(seq)).await.unwrap();
    }
    let before = text(&c, &seg).await;
    c.close();
    hive.shutdown().await;

    // What a crash can leave: an artifact group without its commit, then
    // half a record frame.
    let path = dir.path().join("telemetry/devices/probe-7/seg-000001.log");
    let clean_len = std::fs::metadata(&path).unwrap().len();
    let mut tail = Vec::new();
    frame(kind::GROUP, 4, b"{\"schema\":\"coh-ref-c/v1\"}", &mut tail);
    let mut torn = Vec::new();
    frame(kind::RECORD, 5, &push(5), &mut torn);
    tail.extend_from_slice(&torn[..torn.len() - 3]);
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(&path)
        .unwrap();
    f.write_all(&tail).unwrap();
    drop(f);

    let hive = start(dir.path()).await;
    let c = queen(&hive).await;
    assert_eq!(std::fs::metadata(&path).unwrap().len(), clean_len);
    assert_eq!(text(&c, &seg).await, before);
    c.append(&seg, &push(4)).await.expect("seq 4 is next");
    hive.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_artifact_of_a_few_mib_round_trips_with_chunks_on_disk() {
    let dir = tempfile::tempdir().unwrap();
    let hive = start(dir.path()).await;
    let c = queen(&hive).await;
    new_segment(&c).await;
    let data = pattern(5 * 1024 * 1024 + 1234, 3);
    let id = upload(&c, &data).await.unwrap();
    assert_eq!(id, "seg-000001.1");
    assert_eq!(chunk_files(dir.path()).len(), 6);

    let back = c
        .read_all(&format!("{DEV}/artifacts/{id}"), data.len() + 1)
        .await
        .unwrap();
    assert_eq!(back.len(), data.len());
    assert_eq!(Sha256::digest(&back), Sha256::digest(&data));
    let records = text(&c, &format!("{DEV}/seg/seg-000001")).await;
    assert_eq!(records.lines().count(), 6);
    assert!(records
        .lines()
        .all(|l| l.contains("\"schema\":\"coh-ref-c/v1\"")));
    assert_eq!(text(&c, "/proc/ingest/queued").await, "queued=0\n");

    // The artifact survives a restart.
    c.close();
    hive.shutdown().await;
    let hive = start(dir.path()).await;
    let c = queen(&hive).await;
    let back = c
        .read_all(&format!("{DEV}/artifacts/{id}"), data.len() + 1)
        .await
        .unwrap();
    assert_eq!(Sha256::digest(&back), Sha256::digest(&data));
    hive.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_corrupted_chunk_is_reported_and_never_served() {
    let dir = tempfile::tempdir().unwrap();
    let hive = start(dir.path()).await;
    let c = queen(&hive).await;
    new_segment(&c).await;
    let data = pattern(3 * 1024 * 1024, 9);
    let id = upload(&c, &data).await.unwrap();

    // Damage the second chunk (offset 1 MiB) on disk.
    let second = Sha256::digest(&data[1024 * 1024..2 * 1024 * 1024]);
    let path = dir
        .path()
        .join("telemetry/chunks")
        .join(hex::encode(second));
    let mut bytes = std::fs::read(&path).unwrap();
    bytes[4096] ^= 0x40;
    std::fs::write(&path, &bytes).unwrap();

    let f = c
        .open(&format!("{DEV}/artifacts/{id}"), OpenMode::Read)
        .await
        .unwrap();
    let head = f.read_at(0, 4096).await.unwrap();
    assert_eq!(head, data[..4096]);
    let err = f.read_at(1024 * 1024, 4096).await.unwrap_err();
    assert_eq!(err.class(), Some(ErrorClass::Invalid));
    let err = f.read_at(1024 * 1024 + 8192, 4096).await.unwrap_err();
    assert_eq!(err.class(), Some(ErrorClass::Invalid));
    f.close().await.unwrap();
    hive.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_clunk_before_commit_discards_the_upload() {
    let dir = tempfile::tempdir().unwrap();
    let hive = start(dir.path()).await;
    let c = queen(&hive).await;
    new_segment(&c).await;
    let f = c
        .open(&format!("{DEV}/artifact"), OpenMode::Write)
        .await
        .unwrap();
    f.write_at(0, &pattern(10_000, 1)).await.unwrap();
    assert_eq!(text(&c, "/proc/ingest/queued").await, "queued=1\n");
    let err = f.write_at(5, b"out of order").await.unwrap_err();
    assert_eq!(err.class(), Some(ErrorClass::Invalid));
    f.close().await.unwrap();
    assert_eq!(text(&c, "/proc/ingest/queued").await, "queued=0\n");
    assert_eq!(text(&c, &format!("{DEV}/seg/seg-000001")).await, "");
    let staged = std::fs::read_dir(dir.path().join("telemetry/uploads")).unwrap();
    assert_eq!(staged.count(), 0);
    hive.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_cannot_ingest_over_9p() {
    let dir = tempfile::tempdir().unwrap();
    let hive = start(dir.path()).await;
    let c = queen(&hive).await;
    new_segment(&c).await;
    let spawn = br#"{"spawn":"heartbeat","ticks":50}"#;
    let f = c.open("/queen/ctl", OpenMode::ReadWrite).await.unwrap();
    f.write_at(0, spawn).await.unwrap();
    let id = String::from_utf8(f.read_at(0, 64).await.unwrap()).unwrap();
    f.close().await.unwrap();
    let id = id.trim_end();

    let config = ClientConfig::new(
        "worker-heartbeat",
        ticket(&hive, Role::WorkerHeartbeat, Some(id)),
    );
    let w = Client::connect(hive.ninep_addr, config).await.unwrap();
    for path in [
        format!("{DEV}/ctl"),
        format!("{DEV}/seg/seg-000001"),
        format!("{DEV}/artifact"),
        "/queen/telemetry/new-device/ctl".to_string(),
    ] {
        let err = w.append(&path, NEW).await.unwrap_err();
        assert_eq!(err.class(), Some(ErrorClass::Permission), "{path}");
    }
    assert_eq!(c.ls("/queen/telemetry").await.unwrap(), ["probe-7"]);
    assert_eq!(text(&c, &format!("{DEV}/seg/seg-000001")).await, "");
    hive.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chunks_live_as_long_as_a_committed_record_names_them() {
    let dir = tempfile::tempdir().unwrap();
    let mut m = manifest();
    m.telemetry.max_segments_per_device = 2;
    let config = HiveConfig {
        manifest: m.clone(),
        manifest_name: "test".into(),
        data_dir: dir.path().to_path_buf(),
    };
    let hive = cohesix_hive::start(config).await.unwrap();
    let c = queen(&hive).await;

    // seg-000001: artifacts A and S; seg-000002: S again (same chunks).
    new_segment(&c).await;
    let a = pattern(2 * 1024 * 1024, 1);
    let shared = pattern(1024 * 1024 + 10, 2);
    upload(&c, &a).await.unwrap();
    upload(&c, &shared).await.unwrap();
    new_segment(&c).await;
    let s2 = upload(&c, &shared).await.unwrap();
    assert_eq!(chunk_files(dir.path()).len(), 4);

    // An upload clunked before its commit leaves no chunk behind.
    let f = c
        .open(&format!("{DEV}/artifact"), OpenMode::Write)
        .await
        .unwrap();
    let step = f.iounit() as usize;
    for (i, piece) in pattern(3 * 1024 * 1024, 3).chunks(step).enumerate() {
        f.write_at((i * step) as u64, piece).await.unwrap();
    }
    assert_eq!(chunk_files(dir.path()).len(), 7);
    f.close().await.unwrap();
    assert_eq!(chunk_files(dir.path()).len(), 4);

    // Evicting seg-000001 drops A's chunks and keeps the shared ones.
    new_segment(&c).await;
    assert_eq!(
        c.ls(&format!("{DEV}/seg")).await.unwrap(),
        ["seg-000002", "seg-000003"]
    );
    assert_eq!(chunk_files(dir.path()).len(), 2);
    let back = c
        .read_all(&format!("{DEV}/artifacts/{s2}"), shared.len() + 1)
        .await
        .unwrap();
    assert_eq!(back, shared);

    // At start, a chunk nothing counts (an upload cut by a crash) goes.
    c.close();
    hive.shutdown().await;
    let stray = dir.path().join("telemetry/chunks").join("ab".repeat(32));
    std::fs::write(&stray, b"staged, never committed").unwrap();
    let config = HiveConfig {
        manifest: m,
        manifest_name: "test".into(),
        data_dir: dir.path().to_path_buf(),
    };
    let hive = cohesix_hive::start(config).await.unwrap();
    assert!(!stray.exists());
    assert_eq!(chunk_files(dir.path()).len(), 2);
    let c = queen(&hive).await;
    let back = c
        .read_all(&format!("{DEV}/artifacts/{s2}"), shared.len() + 1)
        .await
        .unwrap();
    assert_eq!(back, shared);
    hive.shutdown().await;
}
