//! Many idle connections and the connection cap: other clients are still
//! served, and connections past the cap are closed at once.

use crate::common::{harness, harness_with, rss_kib};
use std::time::Duration;
use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_idle_connections_do_not_stop_other_clients() {
    let h = harness().await;
    let before = rss_kib();
    let mut idle = Vec::with_capacity(1000);
    for _ in 0..1000 {
        idle.push(TcpStream::connect(h.addr()).await.expect("connect"));
    }
    for _ in 0..20 {
        let r = h
            .get("/v1/fs/cat?path=/proc/lifecycle/state&max_bytes=64")
            .await;
        assert_eq!(r.status, 200);
    }
    let t = h.get("/metrics").await.text();
    let open = t
        .lines()
        .find_map(|l| l.strip_prefix("hive_gateway_http_connections_open "))
        .and_then(|n| n.parse::<u64>().ok())
        .unwrap_or(0);
    assert!(open >= 900, "open connections {open}");
    let grown = rss_kib().saturating_sub(before);
    // Generous: both ends of 1000 sockets live in this process.
    assert!(grown < 128 * 1024, "memory grew by {grown} KiB");
    drop(idle);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_past_the_cap_are_closed_at_once() {
    let h = harness_with(|c| c.http.max_connections = 20).await;
    let mut held = Vec::new();
    for _ in 0..20 {
        held.push(TcpStream::connect(h.addr()).await.expect("connect"));
    }
    // Let the accept loop take all twenty.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut extra = TcpStream::connect(h.addr()).await.expect("connect");
    let mut buf = [0u8; 16];
    let read = tokio::time::timeout(Duration::from_secs(5), extra.read(&mut buf)).await;
    assert!(
        matches!(read, Ok(Ok(0)) | Ok(Err(_))),
        "a connection past the cap was kept open"
    );
    drop(held);
    let served = crate::common::eventually(Duration::from_secs(5), || async {
        let r = crate::common::try_get(h.addr(), "/v1/meta/status").await;
        r.is_some_and(|r| r.status == 200)
    })
    .await;
    assert!(served);
    let t = h.get("/metrics").await.text();
    assert!(
        !t.contains("hive_gateway_http_connections_refused_total 0\n"),
        "{t}"
    );
}
