//! The broker's bounds against a scripted 9P server: requests that never
//! answer give 504, a full wait queue 429, hive EBUSY 429, and a session
//! never carries more requests than the hive's tags-in-flight bound.

use crate::common::{get, start_gateway, TOKEN};
use crate::fake_hive;
use hive_gateway::GatewayConfig;
use std::sync::atomic::Ordering;
use std::time::Duration;

fn config(addr: std::net::SocketAddr, tune: impl FnOnce(&mut GatewayConfig)) -> GatewayConfig {
    let mut cfg = GatewayConfig::new(addr.to_string(), "fake-ticket", TOKEN);
    cfg.pool.connections = 1;
    cfg.http.request_timeout = Duration::from_millis(800);
    cfg.pool.request_timeout = Duration::from_millis(800);
    tune(&mut cfg);
    cfg
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_the_hive_never_answers_is_504() {
    let hive = fake_hive::start(16).await;
    let gw = start_gateway(config(hive.addr, |_| {})).await;
    assert!(gw.broker().wait_connected(Duration::from_secs(5)).await);
    let started = std::time::Instant::now();
    let r = get(gw.addr, "/v1/fs/cat?path=/hang/x&max_bytes=9").await;
    assert_eq!(r.status, 504, "{}", r.text());
    assert!(
        r.error().starts_with("ERR CAT reason=busy detail=timeout"),
        "{}",
        r.error()
    );
    assert!(started.elapsed() < Duration::from_secs(5));
    // The session is still usable for requests that are answered.
    let r = get(gw.addr, "/v1/fs/cat?path=/ok&max_bytes=9").await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.lines(), ["hello"]);
}

/// Polls `/v1/meta/status` until `broker.<key>` equals `want` (5 s at most).
async fn broker_shows(addr: std::net::SocketAddr, key: &str, want: u64) -> bool {
    crate::common::eventually(Duration::from_secs(5), || async {
        let s = get(addr, "/v1/meta/status").await.json();
        s["broker"][key].as_u64() == Some(want)
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_wait_queue_is_429_busy() {
    let hive = fake_hive::start(1).await;
    let gw = start_gateway(config(hive.addr, |c| {
        c.pool.queue_depth = 1;
        c.http.request_timeout = Duration::from_millis(3000);
    }))
    .await;
    assert!(gw.broker().wait_connected(Duration::from_secs(5)).await);
    assert_eq!(
        gw.broker().cap(),
        1,
        "the hive's tags_in_flight=1 was not honoured"
    );
    let addr = gw.addr;
    let holder =
        tokio::spawn(async move { get(addr, "/v1/fs/cat?path=/hang/a&max_bytes=9").await });
    assert!(
        broker_shows(addr, "in_flight", 1).await,
        "the holder never took the slot"
    );
    let waiter = tokio::spawn(async move { get(addr, "/v1/fs/cat?path=/ok&max_bytes=9").await });
    assert!(
        broker_shows(addr, "waiters", 1).await,
        "the waiter never queued"
    );
    let r = get(addr, "/v1/fs/cat?path=/ok&max_bytes=9").await;
    assert_eq!(r.status, 429, "{}", r.text());
    assert!(
        r.error().contains("reason=busy detail=queue-full"),
        "{}",
        r.error()
    );
    assert!(r.headers.contains_key("retry-after"));
    assert_eq!(holder.await.expect("holder").status, 504);
    assert_eq!(waiter.await.expect("waiter").status, 504);
    let s = get(addr, "/v1/meta/status").await.json();
    assert!(s["broker"]["exhausted"].as_u64().unwrap_or(0) >= 1);
    assert!(s["broker"]["waiters_high_water"].as_u64().unwrap_or(0) >= 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hive_ebusy_is_429_busy() {
    let hive = fake_hive::start(16).await;
    let gw = start_gateway(config(hive.addr, |_| {})).await;
    assert!(gw.broker().wait_connected(Duration::from_secs(5)).await);
    let r = get(gw.addr, "/v1/fs/ls?path=/busy").await;
    assert_eq!(r.status, 429, "{}", r.text());
    assert!(
        r.error().starts_with("ERR LS reason=busy detail=busy"),
        "{}",
        r.error()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_never_exceeds_the_hives_tags_in_flight() {
    let hive = fake_hive::start(4).await;
    let gw = start_gateway(config(hive.addr, |c| {
        c.pool.connections = 2;
        c.http.request_timeout = Duration::from_secs(10);
        c.pool.request_timeout = Duration::from_secs(10);
    }))
    .await;
    assert!(gw.broker().wait_connected(Duration::from_secs(5)).await);
    let mut tasks = Vec::new();
    for _ in 0..64 {
        let addr = gw.addr;
        tasks.push(tokio::spawn(async move {
            get(addr, "/v1/fs/cat?path=/slow/x&max_bytes=9")
                .await
                .status
        }));
    }
    for t in tasks {
        assert_eq!(t.await.expect("task"), 200);
    }
    let max = hive.max_outstanding.load(Ordering::SeqCst);
    assert!(
        max <= 4,
        "{max} requests in flight on one session; the hive allows 4"
    );
    assert!(max >= 2, "requests were not pipelined ({max})");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_hive_is_503_with_retry_after_and_status_says_why() {
    // Bind and drop a listener to get a port nothing listens on.
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        l.local_addr().expect("addr").port()
    };
    let addr: std::net::SocketAddr = ([127, 0, 0, 1], port).into();
    let gw = start_gateway(config(addr, |_| {})).await;
    let r = get(gw.addr, "/v1/fs/ls?path=/").await;
    assert_eq!(r.status, 503, "{}", r.text());
    assert!(
        r.error()
            .starts_with("ERR LS reason=cut detail=hive-unreachable"),
        "{}",
        r.error()
    );
    assert_eq!(r.headers["retry-after"], "1");
    let r = get(gw.addr, "/v1/meta/bounds").await;
    assert_eq!(r.status, 503);
    let ok = crate::common::eventually(Duration::from_secs(5), || async {
        let s = get(gw.addr, "/v1/meta/status").await.json();
        s["connected"] == false
            && s["last_error"]
                .as_str()
                .is_some_and(|e| e.contains("connect"))
    })
    .await;
    assert!(ok, "status does not report the connect failure");
    let m = get(gw.addr, "/metrics").await.text();
    assert!(m.contains("cohesix_hive_up 0"), "{m}");
}
