//! A small HTTP/1.1 client of `hive-gateway`'s REST routes.
//!
//! Pooled keep-alive connections (hyper-util's client), a bearer token on
//! every request and a deadline per request. Every answer is classified
//! into ok or one error kind, the key the summary counts failures under:
//! `<reason>/<detail>` for a hive refusal (`quota/buffer-full`),
//! `http-<code>` for a gateway status, `timeout`, `transport`, `bad-reply`.
//! It speaks only the public routes; it knows nothing of the hive inside.

use super::artifact::{verify_at, ArtifactBody};
use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::header::{HeaderValue, AUTHORIZATION, CONTENT_TYPE};
use hyper::{Method, Request, StatusCode};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use serde::Deserialize;
use std::time::Duration;

/// Largest response body read (an `ls` of 100k workers fits).
const MAX_RESPONSE_BYTES: usize = 16 << 20;
/// Idle connections kept per host; above the largest `max-inflight`.
const MAX_IDLE_PER_HOST: usize = 1024;

/// How one request failed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RestError {
    /// The key failures are counted under.
    pub kind: String,
    /// Worth one retry: back-pressure, unreachable hive, timeouts.
    pub retryable: bool,
    /// What the gateway said, for the log.
    pub detail: String,
}

impl RestError {
    fn new(kind: impl Into<String>, retryable: bool, detail: impl Into<String>) -> RestError {
        RestError {
            kind: kind.into(),
            retryable,
            detail: detail.into(),
        }
    }

    /// A refusal that means "no room for more workers" (BENCHMARKS.md §2:
    /// buffer full or a timeout on spawn).
    pub fn is_capacity(&self) -> bool {
        self.kind.starts_with("quota/")
            || self.kind.contains("buffer-full")
            || self.kind == "timeout"
            || self.kind == "http-504"
    }
}

/// The body of every fs answer.
#[derive(Clone, Debug, Default, Deserialize)]
pub struct FsReply {
    pub status: String,
    #[serde(default)]
    pub lines: Vec<String>,
    #[serde(default)]
    pub error: Option<String>,
}

/// Deadline of one artifact upload or read-back (1 GiB on a slow disk).
const ARTIFACT_TIMEOUT: Duration = Duration::from_secs(600);

/// A gateway at `base` (`http://127.0.0.1:8080`).
#[derive(Clone)]
pub struct Rest {
    client: Client<HttpConnector, Full<Bytes>>,
    uploads: Client<HttpConnector, ArtifactBody>,
    base: String,
    auth: HeaderValue,
    timeout: Duration,
}

impl Rest {
    pub fn new(base: &str, token: &str, timeout: Duration) -> Result<Rest, RestError> {
        let auth = HeaderValue::from_str(&format!("Bearer {token}"))
            .map_err(|_| RestError::new("bad-token", false, "token is not a header value"))?;
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        connector.set_connect_timeout(Some(timeout));
        let client = Client::builder(TokioExecutor::new())
            .pool_max_idle_per_host(MAX_IDLE_PER_HOST)
            .pool_idle_timeout(Duration::from_secs(5))
            .build(connector.clone());
        let uploads = Client::builder(TokioExecutor::new()).build(connector);
        Ok(Rest {
            client,
            uploads,
            base: base.trim_end_matches('/').to_string(),
            auth,
            timeout,
        })
    }

    /// GET `route` and parse the JSON answer (for `/v1/meta/*`).
    pub async fn get_json(&self, route: &str) -> Result<serde_json::Value, RestError> {
        let (code, body) = self.send(Method::GET, route, None).await?;
        if code != StatusCode::OK {
            return Err(status_error(code, &body));
        }
        serde_json::from_slice(&body).map_err(|e| RestError::new("bad-reply", false, e.to_string()))
    }

    pub async fn ls(&self, path: &str) -> Result<Vec<String>, RestError> {
        self.fs(&format!("/v1/fs/ls?path={}", encode(path))).await
    }

    pub async fn cat(&self, path: &str, max_bytes: usize) -> Result<Vec<String>, RestError> {
        let route = format!("/v1/fs/cat?path={}&max_bytes={max_bytes}", encode(path));
        self.fs(&route).await
    }

    pub async fn tail(&self, path: &str, max_bytes: usize, lines: usize) -> Result<(), RestError> {
        let route = format!(
            "/v1/fs/tail?path={}&max_bytes={max_bytes}&lines={lines}",
            encode(path)
        );
        self.fs(&route).await.map(drop)
    }

    /// Appends `line` to `path`; the reply lines (a control file's result).
    pub async fn echo(&self, path: &str, line: &str) -> Result<Vec<String>, RestError> {
        let body = serde_json::json!({ "path": path, "line": line }).to_string();
        let (code, reply) = self
            .send(Method::POST, "/v1/fs/echo", Some(Bytes::from(body)))
            .await?;
        fs_answer(code, &reply)
    }

    /// Streams the artifact `(seed, bytes)` to `PUT
    /// /v1/telemetry/<device>/artifact`; the artifact id.
    pub async fn put_artifact(
        &self,
        device: &str,
        bytes: u64,
        seed: u64,
    ) -> Result<String, RestError> {
        let req = Request::builder()
            .method(Method::PUT)
            .uri(format!("{}/v1/telemetry/{device}/artifact", self.base))
            .header(AUTHORIZATION, self.auth.clone())
            .header(
                CONTENT_TYPE,
                HeaderValue::from_static("application/octet-stream"),
            )
            .body(ArtifactBody::new(seed, bytes))
            .map_err(|e| RestError::new("bad-request", false, e.to_string()))?;
        let exchange = async {
            let resp = self
                .uploads
                .request(req)
                .await
                .map_err(|e| RestError::new("transport", false, e.to_string()))?;
            let code = resp.status();
            let body = Limited::new(resp.into_body(), MAX_RESPONSE_BYTES)
                .collect()
                .await
                .map_err(|e| RestError::new("transport", false, e.to_string()))?
                .to_bytes();
            Ok::<_, RestError>((code, body))
        };
        let (code, body) = tokio::time::timeout(ARTIFACT_TIMEOUT, exchange)
            .await
            .map_err(|_| RestError::new("timeout", false, "artifact upload timed out"))??;
        if code != StatusCode::OK {
            return Err(status_error(code, &body));
        }
        let reply: serde_json::Value = serde_json::from_slice(&body)
            .map_err(|e| RestError::new("bad-reply", false, e.to_string()))?;
        if reply["status"] != "OK" {
            let text = reply["error"].as_str().unwrap_or_default().to_string();
            return Err(RestError::new(refusal_kind(&text), false, text));
        }
        if reply["bytes"].as_u64() != Some(bytes) {
            let detail = format!("the gateway stored {} of {bytes} bytes", reply["bytes"]);
            return Err(RestError::new("verify-mismatch", false, detail));
        }
        reply["artifact"]
            .as_str()
            .map(str::to_string)
            .ok_or_else(|| RestError::new("bad-reply", false, format!("no artifact id: {reply}")))
    }

    /// Reads `GET /v1/telemetry/<device>/artifacts/<id>` back and compares
    /// every byte with the artifact `(seed, bytes)`; the bytes received.
    pub async fn get_artifact(
        &self,
        device: &str,
        id: &str,
        bytes: u64,
        seed: u64,
    ) -> Result<u64, RestError> {
        let req = Request::builder()
            .method(Method::GET)
            .uri(format!(
                "{}/v1/telemetry/{device}/artifacts/{}",
                self.base,
                encode(id)
            ))
            .header(AUTHORIZATION, self.auth.clone())
            .body(Full::new(Bytes::new()))
            .map_err(|e| RestError::new("bad-request", false, e.to_string()))?;
        let exchange = async {
            let resp = self
                .client
                .request(req)
                .await
                .map_err(|e| RestError::new("transport", false, e.to_string()))?;
            let code = resp.status();
            let json = resp
                .headers()
                .get(CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .is_some_and(|v| v.starts_with("application/json"));
            if code != StatusCode::OK || json {
                let body = Limited::new(resp.into_body(), MAX_RESPONSE_BYTES)
                    .collect()
                    .await
                    .map_err(|e| RestError::new("transport", false, e.to_string()))?
                    .to_bytes();
                if code != StatusCode::OK {
                    return Err(status_error(code, &body));
                }
                let text = String::from_utf8_lossy(&body).into_owned();
                return Err(RestError::new(refusal_kind(&text), false, text));
            }
            let mut body = resp.into_body();
            let (mut got, mut scratch) = (0u64, Vec::new());
            while let Some(frame) = body.frame().await {
                let frame = frame.map_err(|e| RestError::new("transport", false, e.to_string()))?;
                let Ok(data) = frame.into_data() else {
                    continue;
                };
                if got + data.len() as u64 > bytes || !verify_at(seed, got, &data, &mut scratch) {
                    let detail = format!("bytes differ in [{got}, +{})", data.len());
                    return Err(RestError::new("verify-mismatch", false, detail));
                }
                got += data.len() as u64;
            }
            if got != bytes {
                let detail = format!("read back {got} of {bytes} bytes");
                return Err(RestError::new("verify-mismatch", false, detail));
            }
            Ok(got)
        };
        tokio::time::timeout(ARTIFACT_TIMEOUT, exchange)
            .await
            .map_err(|_| RestError::new("timeout", false, "artifact read-back timed out"))?
    }

    async fn fs(&self, route: &str) -> Result<Vec<String>, RestError> {
        let (code, body) = self.send(Method::GET, route, None).await?;
        fs_answer(code, &body)
    }

    async fn send(
        &self,
        method: Method,
        route: &str,
        body: Option<Bytes>,
    ) -> Result<(StatusCode, Bytes), RestError> {
        let json = body.is_some();
        let mut req = Request::builder()
            .method(method)
            .uri(format!("{}{route}", self.base))
            .header(AUTHORIZATION, self.auth.clone());
        if json {
            req = req.header(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        }
        let req = req
            .body(Full::new(body.unwrap_or_default()))
            .map_err(|e| RestError::new("bad-request", false, e.to_string()))?;
        let exchange = async {
            let resp = self
                .client
                .request(req)
                .await
                .map_err(|e| RestError::new("transport", true, e.to_string()))?;
            let code = resp.status();
            let body = Limited::new(resp.into_body(), MAX_RESPONSE_BYTES)
                .collect()
                .await
                .map_err(|e| RestError::new("transport", true, e.to_string()))?
                .to_bytes();
            Ok((code, body))
        };
        match tokio::time::timeout(self.timeout, exchange).await {
            Ok(result) => result,
            Err(_) => Err(RestError::new(
                "timeout",
                true,
                format!("no answer in {:?}", self.timeout),
            )),
        }
    }
}

/// Classifies an fs answer.
fn fs_answer(code: StatusCode, body: &[u8]) -> Result<Vec<String>, RestError> {
    if code != StatusCode::OK {
        return Err(status_error(code, body));
    }
    let reply: FsReply = serde_json::from_slice(body)
        .map_err(|e| RestError::new("bad-reply", false, e.to_string()))?;
    if reply.status == "OK" {
        return Ok(reply.lines);
    }
    let text = reply.error.unwrap_or_default();
    Err(RestError::new(refusal_kind(&text), false, text))
}

fn status_error(code: StatusCode, body: &[u8]) -> RestError {
    let retryable = matches!(code.as_u16(), 429 | 503 | 504);
    let text = String::from_utf8_lossy(&body[..body.len().min(512)]).into_owned();
    RestError::new(format!("http-{}", code.as_u16()), retryable, text)
}

/// `ERR ECHO reason=quota detail=buffer-full path=...` → `quota/buffer-full`.
pub fn refusal_kind(text: &str) -> String {
    let field = |key: &str| {
        text.split_whitespace()
            .find_map(|w| w.strip_prefix(key))
            .filter(|v| !v.is_empty())
    };
    match (field("reason="), field("detail=")) {
        (Some(r), Some(d)) => format!("{r}/{d}"),
        (Some(r), None) => r.to_string(),
        _ => "refused".to_string(),
    }
}

/// Percent-encodes a query value (RFC 3986 unreserved characters and `/`
/// pass as they are).
pub fn encode(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for b in value.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~/".contains(&b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusals_are_keyed_by_reason_and_detail() {
        let t = "ERR ECHO reason=quota detail=buffer-full path=/queen/ctl error=buffer full";
        assert_eq!(refusal_kind(t), "quota/buffer-full");
        assert_eq!(refusal_kind("ERR CAT reason=policy"), "policy");
        assert_eq!(refusal_kind("weird"), "refused");
    }

    #[test]
    fn capacity_refusals_stop_spawning() {
        let e = |k: &str| RestError::new(k, false, "");
        assert!(e("quota/buffer-full").is_capacity());
        assert!(e("timeout").is_capacity());
        assert!(e("http-504").is_capacity());
        assert!(!e("http-429").is_capacity());
        assert!(!e("policy/invalid-payload").is_capacity());
    }

    #[test]
    fn answers_are_classified() {
        let ok =
            br#"{"status":"OK","verb":"ECHO","path":"/queen/ctl","end":true,"lines":["worker-9"]}"#;
        assert_eq!(fs_answer(StatusCode::OK, ok).unwrap(), ["worker-9"]);
        let err = br#"{"status":"ERR","verb":"CAT","path":"/x","end":true,
                       "error":"ERR CAT reason=policy detail=invalid-path path=/x"}"#;
        let e = fs_answer(StatusCode::OK, err).unwrap_err();
        assert_eq!(
            (e.kind.as_str(), e.retryable),
            ("policy/invalid-path", false)
        );
        let e = fs_answer(StatusCode::TOO_MANY_REQUESTS, b"{}").unwrap_err();
        assert_eq!((e.kind.as_str(), e.retryable), ("http-429", true));
        let e = fs_answer(StatusCode::OK, b"not json").unwrap_err();
        assert_eq!(e.kind, "bad-reply");
    }

    #[test]
    fn query_values_are_percent_encoded() {
        assert_eq!(encode("/proc/9p/session/active"), "/proc/9p/session/active");
        assert_eq!(encode("/a b&c=d"), "/a%20b%26c%3Dd");
    }
}
