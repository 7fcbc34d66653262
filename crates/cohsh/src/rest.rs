//! The `rest` transport: the shell's requests as calls to `hive-gateway`
//! (SURFACES §9), answered with the same console-style acks as `tcp`.
//!
//! `LS`/`CAT`/`TAIL`/`LOG` are `GET /v1/fs/{ls,cat,tail}`; `ECHO`, `SPAWN`
//! and `KILL` are `POST /v1/fs/echo` (to `/queen/ctl` for the last two,
//! whose reply line is the new worker id); `PING` is `GET /v1/meta/status`.
//! A refusal keeps the gateway's console-shaped `error` text as the ack
//! (`ERR ECHO ...` is renamed `ERR SPAWN ...`/`ERR KILL ...`); HTTP 429, 503
//! and 504 carry such a text too, so they print as `ERR` acks. A 401 is an
//! [`TransportError::AuthRefused`].
//!
//! # Limitations
//!
//! Plain `http://` only (no TLS): run the gateway on loopback or behind a
//! TLS-terminating proxy. The gateway attaches as queen with its own
//! ticket, so `attach` accepts only the `queen` role and ignores a ticket.
//! One keep-alive connection is reused and reopened when it closes; nothing
//! is retried.

use crate::transport::{Reply, Request, TransportError};
use cohesix_console::{ack, ctl, Reason};
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use serde::Deserialize;
use std::time::Duration;

/// Where the gateway listens by default.
pub const DEFAULT_URL: &str = "http://127.0.0.1:8080";
/// Most bytes `CAT` accepts and `TAIL`/`LOG` show (the newest).
pub const MAX_BYTES: usize = 64 * 1024;
/// Bound on one HTTP exchange (the gateway's own deadline is shorter).
const TIMEOUT: Duration = Duration::from_secs(15);
const QUEEN_LOG: &str = "/log/queen.log";
const QUEEN_CTL: &str = "/queen/ctl";

/// The fs answer of the gateway (extra fields are ignored).
#[derive(Debug, Deserialize)]
struct FsAnswer {
    status: String,
    #[serde(default)]
    lines: Vec<String>,
    #[serde(default)]
    bytes: Option<u64>,
    #[serde(default)]
    error: Option<String>,
}

/// A gateway and the token to present.
pub struct RestConsole {
    /// `host:port` of the gateway, or why the URL was refused.
    authority: Result<String, String>,
    /// Path prefix before `/v1/...` (empty for a gateway at the root).
    prefix: String,
    token: Option<String>,
    sender: Option<SendRequest<Full<Bytes>>>,
}

impl RestConsole {
    /// `url` is `http://host:port[/prefix]`; `None` means [`DEFAULT_URL`].
    pub fn new(url: Option<&str>, token: Option<String>) -> RestConsole {
        let (authority, prefix) = match parse_url(url.unwrap_or(DEFAULT_URL)) {
            Ok((a, p)) => (Ok(a), p),
            Err(e) => (Err(e), String::new()),
        };
        RestConsole {
            authority,
            prefix,
            token,
            sender: None,
        }
    }

    pub async fn request(&mut self, request: &Request) -> Result<Reply, TransportError> {
        let verb = request.verb();
        match request {
            Request::Attach { role, .. } if role != "queen" => {
                let why = "the gateway attaches as queen only";
                let line = ack::err(
                    verb,
                    Reason::Policy,
                    Some("unsupported-role"),
                    None,
                    Some(why),
                );
                Ok(Reply::ack(line))
            }
            Request::Attach { role, .. } => {
                self.get("/v1/meta/status").await?;
                Ok(Reply::ack(ack::ok(verb, Some(&format!("role={role}")))))
            }
            Request::Ping => {
                self.get("/v1/meta/status").await?;
                Ok(Reply::ack(ack::ok(verb, Some("reply=pong"))))
            }
            Request::Quit => {
                self.sender = None;
                Ok(Reply::ack(ack::ok(verb, None)))
            }
            Request::Ls(path) => {
                let a = self.fs_get("ls", path, None).await?;
                let detail = format!("path={path} entries={}", a.lines.len());
                Ok(answer(verb, a, |_| ack::ok(verb, Some(&detail)), a_lines))
            }
            Request::Cat(path) => {
                let a = self.fs_get("cat", path, Some(MAX_BYTES)).await?;
                let cat = |a: &FsAnswer| ack::cat_ok(path, &a.lines.join("\n"));
                Ok(answer(verb, a, cat, a_lines))
            }
            Request::Tail(path) => self.tail(verb, path).await,
            Request::Log => self.tail(verb, QUEEN_LOG).await,
            Request::Echo { path, text } => {
                let a = self.echo(path, text).await?;
                let ok = |a: &FsAnswer| {
                    let mut detail = format!("path={path} bytes={}", a.bytes.unwrap_or(0));
                    if let Some(seg) = a.lines.first().filter(|_| path.ends_with("/ctl")) {
                        detail.push_str(&format!(" seg_id={seg}"));
                    }
                    ack::ok(verb, Some(&detail))
                };
                Ok(answer(verb, a, ok, no_lines))
            }
            Request::Spawn { kind, args } => {
                let json = match ctl::spawn_json(kind, args) {
                    Ok(json) => json,
                    Err(why) => {
                        let detail = Some("invalid-args");
                        let line = ack::err(verb, Reason::Policy, detail, None, Some(why));
                        return Ok(Reply::ack(line));
                    }
                };
                let a = self.echo(QUEEN_CTL, &json).await?;
                let ok = |a: &FsAnswer| {
                    let id = a.lines.first().map(|id| format!("id={id}"));
                    ack::ok(verb, id.as_deref())
                };
                Ok(answer(verb, a, ok, no_lines))
            }
            Request::Kill(id) => {
                let a = self.echo(QUEEN_CTL, &ctl::kill_json(id)).await?;
                let ok = |_: &FsAnswer| ack::ok(verb, Some(&format!("id={id}")));
                Ok(answer(verb, a, ok, no_lines))
            }
        }
    }

    async fn tail(&mut self, verb: &str, path: &str) -> Result<Reply, TransportError> {
        let a = self.fs_get("tail", path, Some(MAX_BYTES)).await?;
        let ok = |_: &FsAnswer| ack::ok(verb, Some(&format!("path={path}")));
        Ok(answer(verb, a, ok, a_lines))
    }

    async fn fs_get(
        &mut self,
        route: &str,
        path: &str,
        max_bytes: Option<usize>,
    ) -> Result<FsAnswer, TransportError> {
        let mut uri = format!("/v1/fs/{route}?path={}", query_value(path));
        if let Some(n) = max_bytes {
            uri.push_str(&format!("&max_bytes={n}"));
        }
        let (status, body) = self.exchange("GET", &uri, Vec::new()).await?;
        fs_answer(status, &body)
    }

    async fn echo(&mut self, path: &str, line: &str) -> Result<FsAnswer, TransportError> {
        let body = serde_json::json!({ "path": path, "line": line }).to_string();
        let (status, body) = self
            .exchange("POST", "/v1/fs/echo", body.into_bytes())
            .await?;
        fs_answer(status, &body)
    }

    /// The gateway's `host:port`, path prefix and token, for requests
    /// made on connections of their own (artifact streams).
    pub(crate) fn endpoint(&self) -> Result<(String, String, String), TransportError> {
        let authority = self.authority.clone().map_err(TransportError::Protocol)?;
        let token = self
            .token
            .clone()
            .ok_or_else(|| TransportError::AuthRefused(String::from(NO_TOKEN)))?;
        Ok((authority, self.prefix.clone(), token))
    }

    /// One JSON request on the kept connection: status and body.
    pub(crate) async fn exchange_raw(
        &mut self,
        method: &str,
        uri: &str,
        body: Vec<u8>,
    ) -> Result<(u16, Vec<u8>), TransportError> {
        self.exchange(method, uri, body).await
    }

    async fn get(&mut self, uri: &str) -> Result<Vec<u8>, TransportError> {
        let (status, body) = self.exchange("GET", uri, Vec::new()).await?;
        match status {
            200 => Ok(body),
            401 => Err(TransportError::AuthRefused(error_text(&body))),
            other => Err(TransportError::Protocol(format!(
                "gateway answered {other}: {}",
                error_text(&body)
            ))),
        }
    }

    /// One request on the kept connection (opened or reopened as needed).
    async fn exchange(
        &mut self,
        method: &str,
        uri: &str,
        body: Vec<u8>,
    ) -> Result<(u16, Vec<u8>), TransportError> {
        let authority = self.authority.clone().map_err(TransportError::Protocol)?;
        let token = self
            .token
            .clone()
            .ok_or_else(|| TransportError::AuthRefused(String::from(NO_TOKEN)))?;
        let uri = format!("{}{uri}", self.prefix);
        let request = hyper::Request::builder()
            .method(method)
            .uri(&uri)
            .header("host", &authority)
            .header("authorization", format!("Bearer {token}"))
            .header("content-type", "application/json")
            .body(Full::new(Bytes::from(body)))
            .map_err(|e| TransportError::Protocol(e.to_string()))?;

        let exchange = async {
            let sender = self.sender(&authority).await?;
            let response =
                sender
                    .send_request(request)
                    .await
                    .map_err(|e| TransportError::Lost {
                        addr: authority.clone(),
                        why: e.to_string(),
                    })?;
            let status = response.status().as_u16();
            let body = response
                .into_body()
                .collect()
                .await
                .map_err(|e| TransportError::Lost {
                    addr: authority.clone(),
                    why: e.to_string(),
                })?;
            Ok((status, body.to_bytes().to_vec()))
        };
        let result = match tokio::time::timeout(TIMEOUT, exchange).await {
            Ok(result) => result,
            Err(_) => Err(TransportError::Timeout {
                addr: authority.clone(),
                after: TIMEOUT,
            }),
        };
        if result.is_err() {
            // The connection's state is unknown; the next request opens a new one.
            self.sender = None;
        }
        result
    }

    async fn sender(
        &mut self,
        authority: &str,
    ) -> Result<&mut SendRequest<Full<Bytes>>, TransportError> {
        let alive = match self.sender.as_mut() {
            Some(s) => s.ready().await.is_ok(),
            None => false,
        };
        if !alive {
            self.sender = Some(connect(authority).await?);
        }
        self.sender
            .as_mut()
            .ok_or_else(|| TransportError::Protocol(String::from("no connection")))
    }
}

const NO_TOKEN: &str = "no gateway token: pass --rest-auth-token or set COHSH_REST_AUTH_TOKEN";

/// A fresh HTTP/1 connection to the gateway, for any body type.
pub(crate) async fn connect<B>(authority: &str) -> Result<SendRequest<B>, TransportError>
where
    B: hyper::body::Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let failed = |why: String| TransportError::Connect {
        addr: authority.to_string(),
        why,
    };
    let stream = tokio::net::TcpStream::connect(authority)
        .await
        .map_err(|e| failed(e.to_string()))?;
    let _ = stream.set_nodelay(true);
    let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| failed(e.to_string()))?;
    tokio::spawn(async move {
        // Ends when the gateway closes or the sender is dropped.
        let _ = conn.await;
    });
    Ok(sender)
}

/// Builds the reply: `ok` and `lines` for `status: OK`, else the gateway's
/// error text as the ack, renamed to this verb.
fn answer(
    verb: &str,
    a: FsAnswer,
    ok: impl FnOnce(&FsAnswer) -> String,
    lines: fn(FsAnswer) -> Vec<String>,
) -> Reply {
    if a.status == "OK" {
        let ack = ok(&a);
        return Reply {
            ack,
            lines: lines(a),
        };
    }
    let text = a
        .error
        .unwrap_or_else(|| format!("ERR {verb} reason=policy"));
    let renamed = match text.split_once(' ') {
        Some(("ERR", rest)) => match rest.split_once(' ') {
            Some((_, tail)) => format!("ERR {verb} {tail}"),
            None => format!("ERR {verb}"),
        },
        _ => text,
    };
    Reply::ack(renamed)
}

fn a_lines(a: FsAnswer) -> Vec<String> {
    a.lines
}

fn no_lines(_: FsAnswer) -> Vec<String> {
    Vec::new()
}

/// The fs answer of any status but 401, which is an auth failure.
fn fs_answer(status: u16, body: &[u8]) -> Result<FsAnswer, TransportError> {
    if status == 401 {
        return Err(TransportError::AuthRefused(error_text(body)));
    }
    serde_json::from_slice(body).map_err(|e| {
        TransportError::Protocol(format!(
            "gateway answered {status} without an fs object: {e}"
        ))
    })
}

fn error_text(body: &[u8]) -> String {
    serde_json::from_slice::<serde_json::Value>(body)
        .ok()
        .and_then(|v| v["error"].as_str().map(str::to_string))
        .unwrap_or_else(|| String::from_utf8_lossy(body).chars().take(200).collect())
}

/// `http://host:port[/prefix]` → (`host:port`, `/prefix`).
fn parse_url(url: &str) -> Result<(String, String), String> {
    let Some(rest) = url.strip_prefix("http://") else {
        return Err(format!(
            "rest url {url:?}: only http://host:port is supported"
        ));
    };
    let (authority, prefix) = match rest.find('/') {
        Some(i) => (&rest[..i], rest[i..].trim_end_matches('/')),
        None => (rest, ""),
    };
    if authority.is_empty() {
        return Err(format!("rest url {url:?} names no host"));
    }
    let authority = if authority.contains(':') && !authority.ends_with(']') {
        authority.to_string()
    } else {
        format!("{authority}:80")
    };
    Ok((authority, prefix.to_string()))
}

/// Percent-encodes a query value; `/` is kept for readability.
fn query_value(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for b in value.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~' | b'/') {
            out.push(b as char);
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
    fn urls_split_into_authority_and_prefix() {
        let ok = |a: &str, p: &str| Ok((a.to_string(), p.to_string()));
        assert_eq!(parse_url("http://127.0.0.1:8080"), ok("127.0.0.1:8080", ""));
        assert_eq!(parse_url("http://gw:9/api/"), ok("gw:9", "/api"));
        assert_eq!(parse_url("http://gw"), ok("gw:80", ""));
        assert!(parse_url("https://gw:443").is_err());
        assert!(parse_url("http:///x").is_err());
    }

    #[test]
    fn query_values_are_encoded() {
        assert_eq!(query_value("/proc/boot"), "/proc/boot");
        assert_eq!(query_value("/a b&c"), "/a%20b%26c");
    }

    #[test]
    fn refusals_are_renamed_to_the_shell_verb() {
        let a = FsAnswer {
            status: String::from("ERR"),
            lines: Vec::new(),
            bytes: None,
            error: Some(String::from(
                "ERR ECHO reason=quota detail=quota path=/queen/ctl",
            )),
        };
        let r = answer("SPAWN", a, |_| String::new(), no_lines);
        assert_eq!(r.ack, "ERR SPAWN reason=quota detail=quota path=/queen/ctl");
    }
}
