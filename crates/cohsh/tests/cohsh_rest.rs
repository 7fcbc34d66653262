//! The `rest` transport against a live hive behind an in-process
//! hive-gateway: the same console-style acks as the other transports, the
//! gateway's refusals as `ERR` acks, and a wrong token as an auth failure.

use cohesix_hive::{HiveConfig, RunningHive};
use cohesix_manifest::Manifest;
use cohesix_ticket::{Claims, Role};
use cohsh::rest::RestConsole;
use cohsh::transport::{Request, TransportError};
use hive_gateway::{Gateway, GatewayConfig};
use std::time::Duration;

const TOKEN: &str = "rest-transport-test-token";

async fn hive(dir: &tempfile::TempDir) -> RunningHive {
    let mut manifest = Manifest::default();
    manifest.ninep.listen = "127.0.0.1:0".into();
    manifest.console.listen = String::new();
    let config = HiveConfig {
        manifest,
        manifest_name: "test".into(),
        data_dir: dir.path().to_path_buf(),
    };
    cohesix_hive::start(config).await.unwrap()
}

async fn gateway(hive: &RunningHive) -> Gateway {
    let now = cohesix_hive::now_ms();
    let claims = Claims::new(Role::Queen, now, now + 3_600_000);
    let ticket = cohesix_ticket::mint(&claims, hive.secrets.roles["queen"].as_bytes()).unwrap();
    let cfg = GatewayConfig::new(hive.ninep_addr.to_string(), ticket, TOKEN);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let gw = Gateway::start(cfg, listener).await.unwrap();
    assert!(gw.broker().wait_connected(Duration::from_secs(10)).await);
    gw
}

fn console(gw: &Gateway, token: &str) -> RestConsole {
    let url = format!("http://{}", gw.addr);
    RestConsole::new(Some(&url), Some(token.to_string()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rest_transport_answers_like_the_console() {
    let dir = tempfile::tempdir().unwrap();
    let hive = hive(&dir).await;
    let gw = gateway(&hive).await;
    let mut t = console(&gw, TOKEN);

    let queen = Request::Attach {
        role: "queen".into(),
        ticket: None,
    };
    assert_eq!(t.request(&queen).await.unwrap().ack, "OK ATTACH role=queen");
    assert_eq!(
        t.request(&Request::Ping).await.unwrap().ack,
        "OK PING reply=pong"
    );

    let r = t
        .request(&Request::Ls("/proc/lifecycle".into()))
        .await
        .unwrap();
    assert_eq!(r.ack, "OK LS path=/proc/lifecycle entries=3");
    assert_eq!(r.lines, ["state", "reason", "since"]);

    let r = t
        .request(&Request::Cat("/proc/lifecycle/state".into()))
        .await
        .unwrap();
    assert_eq!(r.ack, "OK CAT path=/proc/lifecycle/state data=state=ONLINE");
    assert_eq!(r.lines, ["state=ONLINE"]);

    let spawn = Request::Spawn {
        kind: "heartbeat".into(),
        args: vec![("ticks".into(), "3".into())],
    };
    assert_eq!(t.request(&spawn).await.unwrap().ack, "OK SPAWN id=worker-1");

    let echo = Request::Echo {
        path: "/log/queen.log".into(),
        text: "hello over rest".into(),
    };
    let r = t.request(&echo).await.unwrap();
    assert_eq!(r.ack, "OK ECHO path=/log/queen.log bytes=15");
    let r = t.request(&Request::Log).await.unwrap();
    assert!(
        r.lines.iter().any(|l| l.contains("hello over rest")),
        "{:?}",
        r.lines
    );

    let r = t.request(&Request::Kill("worker-1".into())).await.unwrap();
    assert_eq!(r.ack, "OK KILL id=worker-1");
    let r = t.request(&Request::Kill("worker-1".into())).await.unwrap();
    assert!(r.ack.starts_with("ERR KILL reason=policy"), "{}", r.ack);

    let r = t.request(&Request::Cat("/nope".into())).await.unwrap();
    assert!(
        r.ack
            .starts_with("ERR CAT reason=policy detail=not-found path=/nope"),
        "{}",
        r.ack
    );
    let r = t.request(&Request::Cat("/a/../b".into())).await.unwrap();
    assert!(
        r.ack
            .starts_with("ERR CAT reason=policy detail=invalid-path"),
        "{}",
        r.ack
    );

    let worker = Request::Attach {
        role: "worker-heartbeat".into(),
        ticket: Some("t".into()),
    };
    let r = t.request(&worker).await.unwrap();
    assert!(r
        .ack
        .starts_with("ERR ATTACH reason=policy detail=unsupported-role"));
    gw.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_gateway_token_is_an_auth_failure() {
    let dir = tempfile::tempdir().unwrap();
    let hive = hive(&dir).await;
    let gw = gateway(&hive).await;
    let mut t = console(&gw, "wrong");
    let err = t.request(&Request::Ping).await.unwrap_err();
    assert!(matches!(err, TransportError::AuthRefused(_)), "{err}");
    let err = t.request(&Request::Ls("/".into())).await.unwrap_err();
    assert!(matches!(err, TransportError::AuthRefused(_)), "{err}");
    gw.shutdown().await;
}
