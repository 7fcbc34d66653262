//! Test harness: a real hive in-process, a gateway in front of it, and a
//! small HTTP client that never waits longer than [`REQUEST_BOUND`].

use axum::body::Bytes;
use cohesix_hive::{HiveConfig, RunningHive};
use cohesix_manifest::Manifest;
use cohesix_ticket::{Claims, Role};
use hive_gateway::{Gateway, GatewayConfig};
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;
use tokio::net::{TcpListener, TcpStream};

/// The request token every harness uses.
pub const TOKEN: &str = "test-request-token-4f1c";

/// No test request may take longer than this.
pub const REQUEST_BOUND: Duration = Duration::from_secs(20);

pub struct Harness {
    pub hive: Option<RunningHive>,
    pub hive_addr: SocketAddr,
    pub data_dir: tempfile::TempDir,
    pub gateway: Gateway,
}

impl Harness {
    pub fn addr(&self) -> SocketAddr {
        self.gateway.addr
    }

    pub async fn get(&self, uri: &str) -> Reply {
        get(self.addr(), uri).await
    }

    pub async fn echo(&self, path: &str, line: &str) -> Reply {
        let body = serde_json::json!({"path": path, "line": line}).to_string();
        post(self.addr(), "/v1/fs/echo", body.into_bytes()).await
    }
}

/// Starts a hive listening on `listen` with its data in `dir`; workers
/// tick once a minute, so rings hold only what a test appends.
pub async fn start_hive(dir: &Path, listen: &str) -> anyhow::Result<RunningHive> {
    start_hive_ticking(dir, listen, 60_000).await
}

/// Starts a hive whose heartbeat workers tick every `tick_ms`.
pub async fn start_hive_ticking(
    dir: &Path,
    listen: &str,
    tick_ms: u32,
) -> anyhow::Result<RunningHive> {
    start_hive_tuned(dir, listen, tick_ms, |_| {}).await
}

/// Starts a hive whose manifest `tune` adjusts.
pub async fn start_hive_tuned(
    dir: &Path,
    listen: &str,
    tick_ms: u32,
    tune: impl FnOnce(&mut Manifest),
) -> anyhow::Result<RunningHive> {
    let mut manifest = Manifest::default();
    tune(&mut manifest);
    manifest.ninep.listen = listen.to_string();
    manifest.console.listen = String::new();
    manifest.workers.heartbeat_interval_ms = tick_ms;
    cohesix_hive::start(HiveConfig {
        manifest,
        manifest_name: String::from("gateway-tests"),
        data_dir: dir.to_path_buf(),
    })
    .await
}

pub fn queen_ticket(hive: &RunningHive) -> String {
    let now = cohesix_hive::now_ms();
    let claims = Claims::new(Role::Queen, now, now + 3_600_000);
    cohesix_ticket::mint(&claims, hive.secrets.roles["queen"].as_bytes()).expect("mint")
}

/// A hive and a gateway with default settings.
pub async fn harness() -> Harness {
    harness_with(|_| {}).await
}

/// A hive and a gateway whose settings `tune` adjusts.
pub async fn harness_with(tune: impl FnOnce(&mut GatewayConfig)) -> Harness {
    harness_ticking(60_000, tune).await
}

/// Like [`harness_with`], with workers ticking every `tick_ms`.
pub async fn harness_ticking(tick_ms: u32, tune: impl FnOnce(&mut GatewayConfig)) -> Harness {
    harness_tuned(tick_ms, |_| {}, tune).await
}

/// A hive whose manifest `hive_tune` adjusts, and a gateway `tune` adjusts.
pub async fn harness_tuned(
    tick_ms: u32,
    hive_tune: impl FnOnce(&mut Manifest),
    tune: impl FnOnce(&mut GatewayConfig),
) -> Harness {
    let data_dir = tempfile::tempdir().expect("tempdir");
    let hive = start_hive_tuned(data_dir.path(), "127.0.0.1:0", tick_ms, hive_tune)
        .await
        .expect("hive");
    let hive_addr = hive.ninep_addr;
    let mut cfg = GatewayConfig::new(hive_addr.to_string(), queen_ticket(&hive), TOKEN);
    cfg.pool.connections = 2;
    tune(&mut cfg);
    let gateway = start_gateway(cfg).await;
    assert!(
        gateway
            .broker()
            .wait_connected(Duration::from_secs(10))
            .await,
        "gateway never attached to the hive"
    );
    Harness {
        hive: Some(hive),
        hive_addr,
        data_dir,
        gateway,
    }
}

pub async fn start_gateway(cfg: GatewayConfig) -> Gateway {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    Gateway::start(cfg, listener).await.expect("gateway")
}

/// An HTTP answer.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub headers: axum::http::HeaderMap,
    pub body: Vec<u8>,
}

impl Reply {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&self.body)))
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    pub fn lines(&self) -> Vec<String> {
        let v = self.json();
        v["lines"]
            .as_array()
            .map(|a| {
                a.iter()
                    .map(|l| l.as_str().unwrap_or("").to_string())
                    .collect()
            })
            .unwrap_or_default()
    }

    pub fn error(&self) -> String {
        self.json()["error"].as_str().unwrap_or("").to_string()
    }
}

/// GET with the bearer token.
pub async fn get(addr: SocketAddr, uri: &str) -> Reply {
    let auth = format!("Bearer {TOKEN}");
    request(addr, "GET", uri, &[("authorization", &auth)], Vec::new()).await
}

/// POST with the bearer token.
pub async fn post(addr: SocketAddr, uri: &str, body: Vec<u8>) -> Reply {
    let auth = format!("Bearer {TOKEN}");
    let headers = [
        ("authorization", auth.as_str()),
        ("content-type", "application/json"),
    ];
    request(addr, "POST", uri, &headers, body).await
}

/// One request on a fresh connection, bounded by [`REQUEST_BOUND`].
pub async fn request(
    addr: SocketAddr,
    method: &str,
    uri: &str,
    headers: &[(&str, &str)],
    body: Vec<u8>,
) -> Reply {
    tokio::time::timeout(REQUEST_BOUND, exchange(addr, method, uri, headers, body))
        .await
        .unwrap_or_else(|_| panic!("{method} {uri} hung"))
        .unwrap_or_else(|e| panic!("{method} {uri}: {e}"))
}

/// GET with the token; None when the connection fails (for polling).
pub async fn try_get(addr: SocketAddr, uri: &str) -> Option<Reply> {
    let auth = format!("Bearer {TOKEN}");
    let headers = [("authorization", auth.as_str())];
    let sent = exchange(addr, "GET", uri, &headers, Vec::new());
    tokio::time::timeout(REQUEST_BOUND, sent).await.ok()?.ok()
}

async fn exchange(
    addr: SocketAddr,
    method: &str,
    uri: &str,
    headers: &[(&str, &str)],
    body: Vec<u8>,
) -> Result<Reply, String> {
    let stream = TcpStream::connect(addr)
        .await
        .map_err(|e| format!("connect: {e}"))?;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| format!("handshake: {e}"))?;
    tokio::spawn(conn);
    let mut req = hyper::Request::builder()
        .method(method)
        .uri(uri)
        .header("host", "gateway.test");
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let req = req
        .body(Full::new(Bytes::from(body)))
        .map_err(|e| e.to_string())?;
    let resp = sender
        .send_request(req)
        .await
        .map_err(|e| format!("send: {e}"))?;
    let (parts, body) = resp.into_parts();
    let body = body.collect().await.map_err(|e| format!("body: {e}"))?;
    Ok(Reply {
        status: parts.status.as_u16(),
        headers: parts.headers,
        body: body.to_bytes().to_vec(),
    })
}

/// Percent-encodes a query value (everything but unreserved characters).
pub fn q(value: &str) -> String {
    let mut out = String::new();
    for b in value.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~' | b'/') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Polls `check` every 20 ms until it is true or `within` passes.
pub async fn eventually<F, Fut>(within: Duration, mut check: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + within;
    while tokio::time::Instant::now() < deadline {
        if check().await {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    false
}

/// Resident memory of this process, in KiB (Linux).
pub fn rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}
