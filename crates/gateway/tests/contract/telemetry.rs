//! The telemetry routes: segments, records, latest, and artifacts streamed
//! in and out (a few MiB over several chunks), with their refusals: bad
//! device ids, devices never created, oversize records and bodies, a
//! corrupt chunk on read-back, a client gone mid-upload, too many streams.

use crate::common::{self, harness_tuned, Harness, Reply, TOKEN};
use cohesix_manifest::Manifest;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Chunks of 1 MiB and 64 KiB messages, so a few MiB make several chunks.
fn small_chunks(m: &mut Manifest) {
    m.telemetry.chunk_bytes = 1 << 20;
    m.ninep.msize = 65_536;
}

async fn telemetry_harness() -> Harness {
    harness_tuned(60_000, small_chunks, |_| {}).await
}

fn pattern(len: usize) -> Vec<u8> {
    // Every 1 MiB chunk differs, so chunks are not stored once for all.
    (0..len)
        .map(|i| ((i * 31) ^ ((i >> 20) * 7) ^ (i >> 9)) as u8)
        .collect()
}

async fn post_json(h: &Harness, uri: &str, body: serde_json::Value) -> Reply {
    common::post(h.addr(), uri, body.to_string().into_bytes()).await
}

async fn put(h: &Harness, uri: &str, body: Vec<u8>) -> Reply {
    let auth = format!("Bearer {TOKEN}");
    let headers = [
        ("authorization", auth.as_str()),
        ("content-type", "application/octet-stream"),
    ];
    common::request(h.addr(), "PUT", uri, &headers, body).await
}

async fn new_segment(h: &Harness, device: &str) -> String {
    let r = post_json(
        h,
        &format!("/v1/telemetry/{device}/segment"),
        serde_json::json!({"mime": "text/plain"}),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
    r.json()["segment"].as_str().unwrap_or("").to_string()
}

fn push(seq: u64, payload: &str) -> serde_json::Value {
    serde_json::json!({"schema": "cohsh-telemetry-push/v1", "seq": seq,
        "mime": "text/plain", "payload": payload})
}

/// A raw HTTP/1.1 exchange read to EOF: (head, body bytes).
async fn raw(h: &Harness, head: &str, body: &[u8]) -> (String, Vec<u8>) {
    let exchange = async {
        let mut s = TcpStream::connect(h.addr()).await.expect("connect");
        s.write_all(head.as_bytes()).await.expect("head");
        s.write_all(body).await.expect("body");
        let mut out = Vec::new();
        let _ = s.read_to_end(&mut out).await;
        out
    };
    let out = tokio::time::timeout(common::REQUEST_BOUND, exchange)
        .await
        .expect("raw exchange hung");
    let split = out
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("no header end");
    let head = String::from_utf8_lossy(&out[..split]).into_owned();
    (head, out[split + 4..].to_vec())
}

fn content_length(head: &str) -> Option<usize> {
    head.lines()
        .find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case("content-length")
                .then(|| v.trim().to_string())
        })?
        .parse()
        .ok()
}

async fn queued(h: &Harness) -> String {
    let r = h
        .get("/v1/fs/cat?path=/proc/ingest/queued&max_bytes=64")
        .await;
    r.lines().join("")
}

#[tokio::test]
async fn segment_records_and_latest_round_trip() {
    let h = telemetry_harness().await;
    assert_eq!(new_segment(&h, "cam-1").await, "seg-000001");
    let r = post_json(
        &h,
        "/v1/telemetry/cam-1/records",
        serde_json::json!({"records": [push(1, "one"), push(2, "two")]}),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["count"], 2);
    assert_eq!(r.json()["segment"], "seg-000001");
    let r = h.get("/v1/telemetry/cam-1/latest").await;
    assert_eq!(r.json()["segment"], "seg-000001");
    let r = h
        .get("/v1/fs/cat?path=/queen/telemetry/cam-1/seg/seg-000001&max_bytes=4096")
        .await;
    let lines = r.lines();
    assert_eq!(lines.len(), 2, "{lines:?}");
    assert!(lines[1].contains("\"two\""));
    // A retried record (same seq) is refused by the hive: 200 ERR, none added.
    let r = post_json(
        &h,
        "/v1/telemetry/cam-1/records",
        serde_json::json!({"records": [push(2, "two")]}),
    )
    .await;
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["status"], "ERR");
    assert_eq!(r.json()["count"], 0);
    assert_eq!(new_segment(&h, "cam-1").await, "seg-000002");
}

#[tokio::test]
async fn bad_device_ids_are_400_before_the_hive_is_asked() {
    let h = telemetry_harness().await;
    let body = serde_json::json!({"mime": "text/plain"});
    for device in ["a%20b", "..", "x%2Fy", &"d".repeat(65)] {
        let r = post_json(&h, &format!("/v1/telemetry/{device}/segment"), body.clone()).await;
        assert_eq!(r.status, 400, "{device}: {}", r.text());
        assert!(r.json()["error"]
            .as_str()
            .unwrap_or("")
            .contains("detail=invalid-device"));
        let r = h.get(&format!("/v1/telemetry/{device}/latest")).await;
        assert_eq!(r.status, 400, "{device}");
        let r = put(&h, &format!("/v1/telemetry/{device}/artifact"), vec![1; 10]).await;
        assert_eq!(r.status, 400, "{device}");
    }
    let r = h.get("/v1/telemetry/cam-1/artifacts/not-an-id").await;
    assert_eq!(r.status, 400);
    assert!(r.text().contains("invalid-artifact-id"));
}

#[tokio::test]
async fn a_device_never_created_is_not_found() {
    let h = telemetry_harness().await;
    let r = h.get("/v1/telemetry/ghost/latest").await;
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["status"], "ERR");
    assert!(r.text().contains("detail=not-found"), "{}", r.text());
    let r = post_json(
        &h,
        "/v1/telemetry/ghost/records",
        serde_json::json!({"records": [push(1, "x")]}),
    )
    .await;
    assert!(r.text().contains("detail=not-found"), "{}", r.text());
    let r = put(&h, "/v1/telemetry/ghost/artifact", vec![7; 1000]).await;
    assert_eq!(r.json()["status"], "ERR");
    assert!(r.text().contains("detail=not-found"), "{}", r.text());
    let r = h.get("/v1/telemetry/ghost/artifacts/seg-000001.1").await;
    assert!(r.text().contains("detail=not-found"), "{}", r.text());
}

#[tokio::test]
async fn oversize_records_and_bodies_are_refused() {
    let h = telemetry_harness().await;
    new_segment(&h, "cam-2").await;
    // The hive's record bound (4096): the first record lands, the second not.
    let big = "x".repeat(5000);
    let r = post_json(
        &h,
        "/v1/telemetry/cam-2/records",
        serde_json::json!({"records": [push(1, "ok"), push(2, &big), push(3, "never")]}),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["status"], "ERR");
    assert_eq!(r.json()["count"], 1);
    assert!(r.text().contains("detail=too-big"), "{}", r.text());
    // More records than one request may carry.
    let many: Vec<_> = (1..=257).map(|i| push(i, "x")).collect();
    let r = post_json(
        &h,
        "/v1/telemetry/cam-2/records",
        serde_json::json!({ "records": many }),
    )
    .await;
    assert_eq!(r.status, 400);
    assert!(r.text().contains("invalid-record"));
    // A record of an unknown schema is refused before anything is sent.
    let r = post_json(
        &h,
        "/v1/telemetry/cam-2/records",
        serde_json::json!({"records": [push(2, "a"), {"schema": "other/v1", "seq": 3}]}),
    )
    .await;
    assert_eq!(r.status, 400);
    // A body over the gateway's 64 KiB.
    let huge: Vec<_> = (2..40).map(|i| push(i, &"y".repeat(3000))).collect();
    let r = post_json(
        &h,
        "/v1/telemetry/cam-2/records",
        serde_json::json!({ "records": huge }),
    )
    .await;
    assert_eq!(r.status, 413);
    let r = h
        .get("/v1/fs/cat?path=/queen/telemetry/cam-2/seg/seg-000001&max_bytes=65536")
        .await;
    assert_eq!(r.lines().len(), 1, "only the first record landed");
}

#[tokio::test]
async fn an_artifact_of_a_few_mib_streams_in_and_back_exactly() {
    let h = telemetry_harness().await;
    new_segment(&h, "cam-3").await;
    let data = pattern(3 * (1 << 20) + 12_345);
    let r = put(&h, "/v1/telemetry/cam-3/artifact", data.clone()).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let v = r.json();
    assert_eq!(v["artifact"], "seg-000001.1");
    assert_eq!(v["bytes"], data.len() as u64);
    assert_eq!(v["chunks"], 4);
    let r = h.get("/v1/telemetry/cam-3/artifacts/seg-000001.1").await;
    assert_eq!(r.status, 200);
    assert_eq!(
        r.headers.get("content-type").and_then(|v| v.to_str().ok()),
        Some("application/octet-stream")
    );
    assert_eq!(
        r.headers
            .get("x-cohesix-artifact-chunks")
            .map(|v| v.as_bytes()),
        Some(&b"4"[..])
    );
    assert!(r.body == data, "read-back differs");
    // Empty bodies are refused by the hive and commit nothing.
    let r = put(&h, "/v1/telemetry/cam-3/artifact", Vec::new()).await;
    assert_eq!(r.json()["status"], "ERR");
    assert_eq!(queued(&h).await, "queued=0");
}

#[tokio::test]
async fn a_corrupt_chunk_is_never_served() {
    let h = telemetry_harness().await;
    new_segment(&h, "cam-4").await;
    let data = pattern(3 << 20);
    let r = put(&h, "/v1/telemetry/cam-4/artifact", data.clone()).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let chunks = h.data_dir.path().join("telemetry/chunks");
    let find = |part: &[u8]| {
        std::fs::read_dir(&chunks)
            .expect("chunks dir")
            .filter_map(Result::ok)
            .map(|e| e.path())
            .find(|p| std::fs::read(p).is_ok_and(|b| b == part))
            .expect("chunk file")
    };
    let flip = |path: &std::path::Path| {
        let mut b = std::fs::read(path).expect("read chunk");
        b[1000] ^= 0xff;
        std::fs::write(path, b).expect("write chunk");
    };
    // Second chunk corrupt: headers and the first chunk go out, then the
    // response is cut short of its Content-Length.
    let second = find(&data[1 << 20..2 << 20]);
    flip(&second);
    let head = format!(
        "GET /v1/telemetry/cam-4/artifacts/seg-000001.1 HTTP/1.1\r\nhost: t\r\n\
         authorization: Bearer {TOKEN}\r\nconnection: close\r\n\r\n"
    );
    let (status, body) = raw(&h, &head, &[]).await;
    assert!(status.starts_with("HTTP/1.1 200"), "{status}");
    assert_eq!(content_length(&status), Some(data.len()));
    assert!(body.len() < data.len(), "a cut response");
    assert!(body.len() <= 1 << 20, "nothing past the good chunk");
    assert!(body[..] == data[..body.len()]);
    // First chunk corrupt: a clean JSON refusal before any byte.
    let first = find(&data[..1 << 20]);
    flip(&first);
    let r = h.get("/v1/telemetry/cam-4/artifacts/seg-000001.1").await;
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["status"], "ERR");
    assert!(r.text().contains("detail=invalid"), "{}", r.text());
}

#[tokio::test]
async fn a_client_gone_mid_upload_commits_nothing() {
    let h = telemetry_harness().await;
    new_segment(&h, "cam-5").await;
    let data = pattern(2 << 20);
    let head = format!(
        "PUT /v1/telemetry/cam-5/artifact HTTP/1.1\r\nhost: t\r\n\
         authorization: Bearer {TOKEN}\r\ncontent-length: {}\r\n\r\n",
        8 << 20
    );
    {
        let mut s = TcpStream::connect(h.addr()).await.expect("connect");
        s.write_all(head.as_bytes()).await.expect("head");
        s.write_all(&data).await.expect("body");
        tokio::time::sleep(Duration::from_millis(200)).await;
    } // dropped: the connection closes mid-body
    let gone = common::eventually(Duration::from_secs(10), || async {
        queued(&h).await == "queued=0"
    })
    .await;
    assert!(gone, "the upload was not discarded");
    let r = h
        .get("/v1/fs/cat?path=/queen/telemetry/cam-5/seg/seg-000001&max_bytes=4096")
        .await;
    assert!(r.lines().is_empty(), "{:?}", r.lines());
    // The device still takes a whole artifact afterwards.
    let r = put(&h, "/v1/telemetry/cam-5/artifact", data.clone()).await;
    assert_eq!(r.json()["artifact"], "seg-000001.1", "{}", r.text());
}

#[tokio::test]
async fn artifact_streams_past_the_bound_get_429() {
    let h = harness_tuned(60_000, small_chunks, |c| c.http.artifact_streams = 1).await;
    new_segment(&h, "cam-6").await;
    let head = format!(
        "PUT /v1/telemetry/cam-6/artifact HTTP/1.1\r\nhost: t\r\n\
         authorization: Bearer {TOKEN}\r\ncontent-length: 1000000\r\n\r\n"
    );
    let mut holder = TcpStream::connect(h.addr()).await.expect("connect");
    holder.write_all(head.as_bytes()).await.expect("head");
    holder.write_all(&[1; 1000]).await.expect("body");
    let busy = common::eventually(Duration::from_secs(10), || async {
        queued(&h).await == "queued=1"
    })
    .await;
    assert!(busy, "the first upload never opened");
    let r = put(&h, "/v1/telemetry/cam-6/artifact", vec![2; 100]).await;
    assert_eq!(r.status, 429, "{}", r.text());
    assert!(r.text().contains("artifact-streams-full"));
    assert!(r.headers.contains_key("retry-after"));
    // Small requests still go through the pool meanwhile.
    let r = h.get("/v1/telemetry/cam-6/latest").await;
    assert_eq!(r.json()["segment"], "seg-000001");
    drop(holder);
}
