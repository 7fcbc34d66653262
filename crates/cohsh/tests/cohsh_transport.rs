//! The shell's transports against a live hive: the console client heals a
//! dropped connection (reconnect, AUTH, re-attach) without repeating a
//! write, keeps an idle connection alive, and stops at a refused AUTH; the
//! 9P transport answers with the same acks as the console.

use cohesix_hive::console::{serve_with, ConsoleOptions};
use cohesix_hive::{HiveConfig, RunningHive};
use cohesix_manifest::Manifest;
use cohsh::ninep::NinePConsole;
use cohsh::tcp::{TcpConsole, TcpOptions};
use cohsh::transport::{Request, TransportError};
use std::net::SocketAddr;
use std::time::Duration;
use tokio::net::TcpListener;

async fn hive(dir: &tempfile::TempDir, console: bool) -> RunningHive {
    let mut manifest = Manifest::default();
    manifest.ninep.listen = "127.0.0.1:0".into();
    manifest.console.listen = if console { "127.0.0.1:0" } else { "" }.into();
    let config = HiveConfig {
        manifest,
        manifest_name: "test".into(),
        data_dir: dir.path().to_path_buf(),
    };
    cohesix_hive::start(config).await.unwrap()
}

/// A console on the hive that cuts clients idle for `idle`.
async fn console_cutting_idle(hive: &RunningHive, idle: Duration) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let options = ConsoleOptions {
        idle_timeout: idle,
        ..ConsoleOptions::default()
    };
    tokio::spawn(serve_with(listener, hive.shared.clone(), options));
    addr
}

fn console(hive: &RunningHive, addr: SocketAddr) -> TcpConsole {
    let token = Some(hive.secrets.console_token.clone());
    TcpConsole::new(TcpOptions::new("127.0.0.1", addr.port(), token))
}

fn queen() -> Request {
    Request::Attach {
        role: "queen".into(),
        ticket: None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropped_console_is_reopened_and_reattached() {
    let dir = tempfile::tempdir().unwrap();
    let hive = hive(&dir, false).await;
    let addr = console_cutting_idle(&hive, Duration::from_millis(300)).await;
    let mut t = console(&hive, addr);

    assert_eq!(
        t.request(&queen()).await.unwrap().ack,
        "OK ATTACH role=queen"
    );
    let spawn = Request::Spawn {
        kind: "heartbeat".into(),
        args: vec![("ticks".into(), "100".into())],
    };
    assert_eq!(t.request(&spawn).await.unwrap().ack, "OK SPAWN id=worker-1");

    // The hive cuts the idle connection; a read is healed and retried.
    tokio::time::sleep(Duration::from_millis(700)).await;
    let reply = t.request(&Request::Ls("/worker".into())).await.unwrap();
    assert_eq!(reply.ack, "OK LS path=/worker entries=1");
    assert_eq!(reply.lines, ["worker-1"]);
    assert_eq!(t.reconnects, 1);

    // A write that meets the drop is reported, not repeated.
    tokio::time::sleep(Duration::from_millis(700)).await;
    let kill = t.request(&Request::Kill("worker-1".into())).await;
    assert!(
        matches!(kill, Err(TransportError::NotRetried { verb: "KILL" })),
        "{kill:?}"
    );
    assert_eq!(t.reconnects, 2);
    // Re-attached as the queen: the worker is still there and can be killed.
    let reply = t.request(&Request::Kill("worker-1".into())).await.unwrap();
    assert_eq!(reply.ack, "OK KILL id=worker-1");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keep_alive_holds_an_idle_connection() {
    let dir = tempfile::tempdir().unwrap();
    let hive = hive(&dir, false).await;
    let addr = console_cutting_idle(&hive, Duration::from_millis(400)).await;
    let mut t = console(&hive, addr);
    t.request(&queen()).await.unwrap();

    for _ in 0..10 {
        tokio::time::sleep(Duration::from_millis(150)).await;
        t.keep_alive(Duration::from_millis(100)).await;
    }
    let reply = t.request(&Request::Ping).await.unwrap();
    assert_eq!(reply.ack, "OK PING reply=pong");
    assert_eq!(t.reconnects, 0, "the connection was never cut");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_auth_is_reported_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let hive = hive(&dir, true).await;
    let addr = hive.console_addr.unwrap();
    let options = TcpOptions::new("127.0.0.1", addr.port(), Some("wrong".into()));
    let mut t = TcpConsole::new(options);
    let err = t.request(&Request::Ping).await.unwrap_err();
    assert!(
        matches!(&err, TransportError::AuthRefused(ack) if ack.contains("invalid-token")),
        "{err}"
    );

    let mut none = TcpConsole::new(TcpOptions::new("127.0.0.1", addr.port(), None));
    assert!(matches!(
        none.request(&Request::Ping).await,
        Err(TransportError::NoToken)
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nine_p_answers_like_the_console() {
    let dir = tempfile::tempdir().unwrap();
    let hive = hive(&dir, true).await;
    let now = cohesix_hive::now_ms();
    let claims = cohesix_ticket::Claims::new(cohesix_ticket::Role::Queen, now, now + 600_000);
    let ticket = cohesix_ticket::mint(&claims, hive.secrets.roles["queen"].as_bytes()).unwrap();

    let mut tcp = console(&hive, hive.console_addr.unwrap());
    let mut ninep = NinePConsole::new(hive.ninep_addr.to_string());
    let attach = |ticket: Option<String>| Request::Attach {
        role: "queen".into(),
        ticket,
    };
    tcp.request(&attach(None)).await.unwrap();
    ninep.request(&attach(Some(ticket))).await.unwrap();

    let same = [
        Request::Ping,
        Request::Ls("/proc/lifecycle".into()),
        Request::Cat("/proc/lifecycle/state".into()),
        Request::Cat("/nope".into()),
        Request::Echo {
            path: "/proc/boot".into(),
            text: "x".into(),
        },
        Request::Echo {
            path: "/queen/ctl".into(),
            text: "{\"bogus\":1}".into(),
        },
        Request::Kill("worker-404".into()),
    ];
    for request in &same {
        let a = tcp.request(request).await.unwrap();
        let b = ninep.request(request).await.unwrap();
        assert_eq!(a, b, "{request:?}");
    }

    // State changes: one transport changes, the other changes back.
    let lifecycle = |word: &str| Request::Echo {
        path: "/queen/lifecycle/ctl".into(),
        text: word.into(),
    };
    let cordoned = tcp.request(&lifecycle("cordon")).await.unwrap();
    let resumed = ninep.request(&lifecycle("resume")).await.unwrap();
    assert_eq!(cordoned.ack, "OK ECHO path=/queen/lifecycle/ctl bytes=6");
    assert_eq!(resumed.ack, cordoned.ack);

    let spawn = Request::Spawn {
        kind: "heartbeat".into(),
        args: vec![("ticks".into(), "5".into())],
    };
    assert_eq!(
        tcp.request(&spawn).await.unwrap().ack,
        "OK SPAWN id=worker-1"
    );
    assert_eq!(
        ninep.request(&spawn).await.unwrap().ack,
        "OK SPAWN id=worker-2"
    );
    let segment = Request::Echo {
        path: "/queen/telemetry/dev-1/ctl".into(),
        text: r#"{"new":"segment","mime":"text/plain"}"#.into(),
    };
    let a = tcp.request(&segment).await.unwrap();
    let b = ninep.request(&segment).await.unwrap();
    assert_eq!(a.field("seg_id"), Some("seg-000001"), "{a:?}");
    assert_eq!(b.field("seg_id"), Some("seg-000002"), "{b:?}");
}
