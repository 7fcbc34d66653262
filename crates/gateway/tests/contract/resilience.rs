//! The hive restarting under the gateway: in-flight and new requests get
//! 503/504 promptly, and the gateway reattaches by itself.

use crate::common::{eventually, get, harness_with, start_hive, Reply};
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hive_restart_gives_503_then_200_again_without_help() {
    let mut h = harness_with(|c| {
        c.pool.connections = 3;
        c.pool.reconnect_max = Duration::from_millis(200);
        c.http.request_timeout = Duration::from_secs(2);
        c.pool.request_timeout = Duration::from_secs(2);
    })
    .await;
    let uri = "/v1/fs/cat?path=/proc/lifecycle/state&max_bytes=64";
    assert_eq!(h.get(uri).await.status, 200);

    // Requests in flight while the hive goes away.
    let addr = h.addr();
    let mut in_flight = Vec::new();
    for _ in 0..40 {
        in_flight.push(tokio::spawn(async move { get(addr, uri).await.status }));
    }
    let hive = h.hive.take().expect("hive");
    hive.shutdown().await;
    for t in in_flight {
        let code = t.await.expect("request task");
        assert!(
            [200, 503, 504].contains(&code),
            "in-flight request answered {code}"
        );
    }

    let down = eventually(Duration::from_secs(5), || async {
        h.get(uri).await.status == 503
    })
    .await;
    assert!(down, "no 503 while the hive is down");
    let r: Reply = h.get(uri).await;
    assert!(r.error().contains("reason=cut"), "{}", r.error());
    let s = h.get("/v1/meta/status").await.json();
    assert_eq!(s["connected"], false);

    // Same address, same data directory: the ticket stays valid.
    let listen = h.hive_addr.to_string();
    let mut restarted = None;
    for _ in 0..50 {
        match start_hive(h.data_dir.path(), &listen).await {
            Ok(hive) => {
                restarted = Some(hive);
                break;
            }
            // The old hive's store or port may take a moment to be released.
            Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
    h.hive = Some(restarted.expect("hive restarts on the same address"));

    let up = eventually(Duration::from_secs(10), || async {
        h.get(uri).await.status == 200
    })
    .await;
    assert!(up, "the gateway did not reattach within 10 s");
    let s = h.get("/v1/meta/status").await.json();
    assert!(s["reconnects"].as_u64().unwrap_or(0) >= 1, "{s}");
    assert_eq!(s["connected"], true);
}
