//! Both auth headers, 401 on every protected route, and the start-up
//! refusals of bad tokens and roles.

use crate::common::{harness, request, start_gateway, TOKEN};
use hive_gateway::config::ConfigError;
use hive_gateway::{Gateway, GatewayConfig, StartError};

const PROTECTED: [(&str, &str); 7] = [
    ("GET", "/v1/fs/ls?path=/"),
    ("GET", "/v1/fs/cat?path=/proc/boot&max_bytes=9999"),
    ("GET", "/v1/fs/tail?path=/log/queen.log&max_bytes=99"),
    ("POST", "/v1/fs/echo"),
    ("GET", "/v1/meta/bounds"),
    ("GET", "/v1/meta/status"),
    ("GET", "/metrics"),
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_token_is_401_on_every_protected_route() {
    let h = harness().await;
    for (method, uri) in PROTECTED {
        let r = request(h.addr(), method, uri, &[], Vec::new()).await;
        assert_eq!(r.status, 401, "{method} {uri}");
        assert_eq!(r.json()["status"], "ERR");
        assert!(r.error().contains("detail=missing-token"), "{}", r.error());
        assert!(r.headers.contains_key("www-authenticate"));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_token_is_401_in_either_header() {
    let h = harness().await;
    let wrong = [
        ("authorization", "Bearer nope"),
        ("authorization", "Basic dGVzdA=="),
        ("x-cohesix-auth", "nope"),
        ("x-cohesix-auth", ""),
    ];
    for (method, uri) in PROTECTED {
        for header in wrong {
            let r = request(h.addr(), method, uri, &[header], Vec::new()).await;
            assert_eq!(r.status, 401, "{method} {uri} {header:?}");
        }
    }
    let prefix = format!("Bearer {}", &TOKEN[..TOKEN.len() - 1]);
    let r = request(
        h.addr(),
        "GET",
        "/v1/meta/status",
        &[("authorization", &prefix)],
        vec![],
    )
    .await;
    assert_eq!(r.status, 401, "a prefix of the token must not pass");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn both_headers_are_accepted() {
    let h = harness().await;
    let bearer = format!("Bearer {TOKEN}");
    let uri = "/v1/fs/ls?path=/proc";
    let r = request(h.addr(), "GET", uri, &[("authorization", &bearer)], vec![]).await;
    assert_eq!(r.status, 200);
    let r = request(h.addr(), "GET", uri, &[("x-cohesix-auth", TOKEN)], vec![]).await;
    assert_eq!(r.status, 200);
    let body = br#"{"path":"/log/queen.log","line":"hello from rest"}"#.to_vec();
    let r = request(
        h.addr(),
        "POST",
        "/v1/fs/echo",
        &[("x-cohesix-auth", TOKEN)],
        body,
    )
    .await;
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["status"], "OK", "{}", r.text());
}

async fn refused(cfg: GatewayConfig) -> StartError {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    match Gateway::start(cfg, listener).await {
        Ok(_) => panic!("gateway started with a bad configuration"),
        Err(e) => e,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn empty_placeholder_tokens_and_non_queen_roles_are_refused_at_start() {
    let cfg = GatewayConfig::new("127.0.0.1:1", "ticket", "");
    assert!(matches!(
        refused(cfg).await,
        StartError::Config(ConfigError::EmptyToken)
    ));
    let cfg = GatewayConfig::new("127.0.0.1:1", "ticket", "changeme");
    assert!(matches!(
        refused(cfg).await,
        StartError::Config(ConfigError::PlaceholderToken)
    ));
    let mut cfg = GatewayConfig::new("127.0.0.1:1", "ticket", TOKEN);
    cfg.pool.role = String::from("worker-gpu");
    assert!(matches!(
        refused(cfg).await,
        StartError::Config(ConfigError::Role(_))
    ));
    let cfg = GatewayConfig::new("127.0.0.1:1", "", TOKEN);
    assert!(matches!(
        refused(cfg).await,
        StartError::Config(ConfigError::NoTicket)
    ));
    // A good configuration starts even with no hive behind it.
    let ok = start_gateway(GatewayConfig::new("127.0.0.1:1", "ticket", TOKEN)).await;
    ok.shutdown().await;
}
