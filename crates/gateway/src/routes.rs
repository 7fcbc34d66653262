//! The HTTP handlers. Each fs handler validates its input, runs one
//! operation through [`App::run`], and answers with an [`FsResponse`]; the
//! `#[utoipa::path]` attributes here are the only source of the OpenAPI
//! document and of `/docs`.
//!
//! Handlers never see tokens: authentication is a middleware in front of
//! them (see `server`).

use crate::api::{
    BoundsResponse, BrokerCounters, CatParams, EchoRequest, FsResponse, GatewayBounds, LsParams,
    Problem, RawQuery, Status, StatusResponse, TailParams, Verb,
};
use crate::app::{ms, App};
use crate::config::{MAX_COMPONENT_BYTES, MAX_PATH_BYTES, MAX_PATH_DEPTH, MAX_TAIL_LINES};
use crate::error::FsError;
use crate::validate::{self, Invalid, MAX_ECHO_LINE_BYTES};
use crate::{docs, metrics, openapi, ops};
use axum::body::Body;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use http_body_util::{BodyExt, LengthLimitError, Limited};
use std::sync::atomic::Ordering;
use std::sync::OnceLock;

/// Bytes a tail may scan in an append-only file before it stops (the
/// largest audit ring a manifest allows).
const TAIL_SCAN_BYTES: usize = 64 << 20;

/// What the request log line reports about an fs request.
#[derive(Clone, Debug)]
pub struct Outcome {
    pub path: String,
    pub error: Option<String>,
}

/// Lists a directory.
#[utoipa::path(
    get, path = "/v1/fs/ls", tag = "fs",
    summary = "List a directory (LS)",
    description = "Names in a directory of the hive's namespace, one per line.",
    params(LsParams),
    responses(
        (status = 200, description = "Listed, or refused by the hive (`status: ERR`)",
            body = FsResponse, example = json!({"status": "OK", "verb": "LS",
            "path": "/proc/lifecycle", "end": true, "lines": ["state", "reason", "since"]})),
        (status = 400, description = "Invalid path", body = FsResponse,
            example = json!({"status": "ERR", "verb": "LS", "path": "/proc/../x", "end": true,
            "error": "ERR LS reason=policy detail=invalid-path path=/proc/../x \
                      error=`.` and `..` are not allowed"})),
        (status = 401, description = "Missing or wrong token", body = Problem),
        (status = 429, description = "Back-pressure: the hive or the gateway is full",
            body = FsResponse),
        (status = 503, description = "Hive unreachable", body = FsResponse),
        (status = 504, description = "Request timed out", body = FsResponse),
    ),
    security(("bearer" = []), ("x-cohesix-auth" = []))
)]
pub async fn ls(
    State(app): State<App>,
    query: Result<Query<RawQuery>, QueryRejection>,
) -> Response {
    let verb = Verb::Ls;
    let q = match query {
        Ok(Query(q)) => q,
        Err(e) => return answer(verb, "", Err(bad_query(&e))),
    };
    let path = q.path.unwrap_or_default();
    let result = async {
        validate::path(&path)?;
        let p = &path;
        let names = app
            .run(true, |c| async move { ops::ls(&c, p).await })
            .await?;
        Ok((names, None))
    }
    .await;
    answer(verb, &path, result)
}

/// Reads a whole file.
#[utoipa::path(
    get, path = "/v1/fs/cat", tag = "fs",
    summary = "Read a file (CAT)",
    description = "The whole file, split into lines. A file larger than `max_bytes` is \
                   refused with 400 `result-too-large` rather than cut.",
    params(CatParams),
    responses(
        (status = 200, description = "Read, or refused by the hive (`status: ERR`)",
            body = FsResponse, example = json!({"status": "OK", "verb": "CAT",
            "path": "/proc/lifecycle/state", "end": true, "lines": ["state=ONLINE"],
            "bytes": 13})),
        (status = 400, description = "Invalid path or max_bytes, or result larger than \
            max_bytes", body = FsResponse, example = json!({"status": "ERR", "verb": "CAT",
            "path": "/proc/boot", "end": true, "error": "ERR CAT reason=policy \
            detail=invalid-max-bytes path=/proc/boot error=max_bytes is required"})),
        (status = 401, description = "Missing or wrong token", body = Problem),
        (status = 429, description = "Back-pressure", body = FsResponse),
        (status = 503, description = "Hive unreachable", body = FsResponse),
        (status = 504, description = "Request timed out", body = FsResponse),
    ),
    security(("bearer" = []), ("x-cohesix-auth" = []))
)]
pub async fn cat(
    State(app): State<App>,
    query: Result<Query<RawQuery>, QueryRejection>,
) -> Response {
    let verb = Verb::Cat;
    let q = match query {
        Ok(Query(q)) => q,
        Err(e) => return answer(verb, "", Err(bad_query(&e))),
    };
    let path = q.path.unwrap_or_default();
    let result = async {
        validate::path(&path)?;
        let limit = validate::max_bytes(q.max_bytes.as_deref(), app.cfg.http.max_read_bytes)?;
        let p = &path;
        let data = app
            .run(true, |c| async move { ops::cat(&c, p, limit).await })
            .await?;
        Ok((to_lines(&data), Some(data.len() as u64)))
    }
    .await;
    answer(verb, &path, result)
}

/// Reads the newest lines of a file.
#[utoipa::path(
    get, path = "/v1/fs/tail", tag = "fs",
    summary = "Read the newest lines of a file (TAIL)",
    description = "The newest whole lines that fit in `max_bytes`, at most `lines` of them. \
                   For telemetry rings and `/log/queen.log`.",
    params(TailParams),
    responses(
        (status = 200, description = "Read, or refused by the hive (`status: ERR`)",
            body = FsResponse, example = json!({"status": "OK", "verb": "TAIL",
            "path": "/worker/worker-1/telemetry", "end": true,
            "lines": ["{\"tick\":41,\"ts_ms\":1733300000000}",
                      "{\"tick\":42,\"ts_ms\":1733300001000}"], "bytes": 72})),
        (status = 400, description = "Invalid path, max_bytes or lines", body = FsResponse),
        (status = 401, description = "Missing or wrong token", body = Problem),
        (status = 429, description = "Back-pressure", body = FsResponse),
        (status = 503, description = "Hive unreachable", body = FsResponse),
        (status = 504, description = "Request timed out", body = FsResponse),
    ),
    security(("bearer" = []), ("x-cohesix-auth" = []))
)]
pub async fn tail(
    State(app): State<App>,
    query: Result<Query<RawQuery>, QueryRejection>,
) -> Response {
    let verb = Verb::Tail;
    let q = match query {
        Ok(Query(q)) => q,
        Err(e) => return answer(verb, "", Err(bad_query(&e))),
    };
    let path = q.path.unwrap_or_default();
    let result = async {
        validate::path(&path)?;
        let window = validate::max_bytes(q.max_bytes.as_deref(), app.cfg.http.max_read_bytes)?;
        let keep = validate::tail_lines(q.lines.as_deref())?;
        let p = &path;
        let data = app
            .run(true, |c| async move {
                ops::tail(&c, p, window, TAIL_SCAN_BYTES).await
            })
            .await?;
        let mut lines = to_lines(&data);
        if let Some(keep) = keep {
            let drop = lines.len().saturating_sub(keep);
            lines.drain(..drop);
        }
        let bytes: usize = lines.iter().map(|l| l.len() + 1).sum();
        Ok((lines, Some(bytes as u64)))
    }
    .await;
    answer(verb, &path, result)
}

/// Appends one line.
#[utoipa::path(
    post, path = "/v1/fs/echo", tag = "fs",
    summary = "Append one line to a file (ECHO)",
    description = "Appends `line` as one record. For a control file (a path ending in \
                   `ctl`) the write's result is read back from the same fid and returned as \
                   `lines`: the new worker id after a spawn, the new segment id after a \
                   telemetry `{\"new\":\"segment\"}`, the new state after a lifecycle command.",
    request_body(content = EchoRequest, content_type = "application/json",
        example = json!({"path": "/queen/ctl", "line": "{\"spawn\":\"heartbeat\",\"ticks\":100}"})),
    responses(
        (status = 200, description = "Appended, or refused by the hive (`status: ERR`)",
            body = FsResponse, example = json!({"status": "OK", "verb": "ECHO",
            "path": "/queen/ctl", "end": true, "lines": ["worker-7"], "bytes": 33})),
        (status = 400, description = "Invalid JSON, path, or line (empty, multi-line, over \
            4096 bytes)", body = FsResponse, example = json!({"status": "ERR", "verb": "ECHO",
            "path": "/queen/ctl", "end": true, "error": "ERR ECHO reason=policy \
            detail=multi-line path=/queen/ctl error=line must be a single line"})),
        (status = 401, description = "Missing or wrong token", body = Problem),
        (status = 408, description = "Body not received in time", body = FsResponse),
        (status = 413, description = "Body larger than the gateway accepts", body = FsResponse),
        (status = 429, description = "Back-pressure", body = FsResponse),
        (status = 503, description = "Hive unreachable", body = FsResponse),
        (status = 504, description = "Request timed out", body = FsResponse),
    ),
    security(("bearer" = []), ("x-cohesix-auth" = []))
)]
pub async fn echo(State(app): State<App>, headers: HeaderMap, body: Body) -> Response {
    let verb = Verb::Echo;
    let bytes = match read_body(&app, &headers, body).await {
        Ok(b) => b,
        Err(e) => return answer(verb, "", Err(e)),
    };
    let req: EchoRequest = match serde_json::from_slice(&bytes) {
        Ok(r) => r,
        Err(e) => {
            let why = format!("body is not an echo request: {e}");
            let e = Invalid {
                detail: "invalid-json",
                why,
            };
            return answer(verb, "", Err(e.into()));
        }
    };
    let path = req.path;
    let result = async {
        validate::path(&path)?;
        validate::echo_line(&req.line)?;
        validate::no_session_state(&path, &req.line)?;
        let read_back = is_control(&path);
        let (p, line) = (&path, req.line.as_bytes());
        let (written, reply) = app
            .run(
                false,
                |c| async move { ops::echo(&c, p, line, read_back).await },
            )
            .await?;
        Ok((to_lines(&reply), Some(u64::from(written))))
    }
    .await;
    answer(verb, &path, result)
}

/// The hive's bounds and the gateway's own.
#[utoipa::path(
    get, path = "/v1/meta/bounds", tag = "meta",
    summary = "Bounds of the hive and the gateway",
    description = "Numeric bounds from the hive's `/proc/boot` (read at each attach) and the \
                   gateway's own limits, control paths and surfaces.",
    responses(
        (status = 200, description = "Bounds", body = BoundsResponse),
        (status = 401, description = "Missing or wrong token", body = Problem),
        (status = 503, description = "The hive was never reached", body = Problem),
    ),
    security(("bearer" = []), ("x-cohesix-auth" = []))
)]
pub async fn bounds(State(app): State<App>) -> Response {
    let Some(boot) = app.broker.boot() else {
        let text = "ERR BOUNDS reason=cut detail=hive-unreachable error=hive never reached";
        return problem(StatusCode::SERVICE_UNAVAILABLE, text);
    };
    let pool = app.broker.config();
    let hive_msize = boot.bound("msize").unwrap_or(u64::from(pool.msize));
    let gateway = GatewayBounds {
        msize: hive_msize.min(u64::from(pool.msize)),
        path_bytes: MAX_PATH_BYTES as u64,
        walk_depth: boot
            .bound("walk_depth")
            .map_or(MAX_PATH_DEPTH as u64, |d| d.min(MAX_PATH_DEPTH as u64)),
        component_bytes: MAX_COMPONENT_BYTES as u64,
        max_bytes: app.cfg.http.max_read_bytes as u64,
        echo_line_bytes: MAX_ECHO_LINE_BYTES as u64,
        tail_lines: MAX_TAIL_LINES as u64,
        body_bytes: app.cfg.http.max_body_bytes as u64,
        request_timeout_ms: ms(app.cfg.http.request_timeout),
        connections: pool.connections as u64,
        tags_per_connection: u64::from(app.broker.cap()),
        queue_depth: pool.queue_depth as u64,
    };
    let body = BoundsResponse {
        hive: boot.bounds.clone(),
        hive_info: boot.info.clone(),
        gateway,
        control_paths: vec![
            String::from("/queen/ctl"),
            String::from("/queen/lifecycle/ctl"),
            String::from("/queen/telemetry/<device>/ctl"),
        ],
        surfaces: ["fs", "telemetry", "meta", "metrics", "openapi", "docs"]
            .map(String::from)
            .to_vec(),
    };
    Json(body).into_response()
}

/// The gateway's connection and broker state.
#[utoipa::path(
    get, path = "/v1/meta/status", tag = "meta",
    summary = "Connection and broker state",
    responses(
        (status = 200, description = "State, also while the hive is unreachable",
            body = StatusResponse),
        (status = 401, description = "Missing or wrong token", body = Problem),
    ),
    security(("bearer" = []), ("x-cohesix-auth" = []))
)]
pub async fn status(State(app): State<App>) -> Response {
    let b = &app.broker;
    let s = b.stats();
    let n = |a: &std::sync::atomic::AtomicU64| a.load(Ordering::Relaxed);
    let u = |a: &std::sync::atomic::AtomicUsize| a.load(Ordering::Relaxed) as u64;
    let body = StatusResponse {
        connected: b.connected() > 0,
        hive: b.config().hive_addr.clone(),
        connections: b.config().connections as u64,
        live_connections: b.connected() as u64,
        connects: n(&s.connects),
        reconnects: n(&s.reconnects),
        last_error: b.last_error(),
        broker: BrokerCounters {
            waiters: u(&s.waiters),
            waiters_high_water: u(&s.waiters_high_water),
            in_flight: u(&s.in_flight),
            in_flight_high_water: u(&s.in_flight_high_water),
            checkouts: n(&s.checkouts),
            exhausted: n(&s.exhausted),
            timeouts: n(&s.timeouts),
            unavailable: n(&s.unavailable),
            retries: n(&s.retries),
            connect_failures: n(&s.connect_failures),
            slots_per_connection: u64::from(b.cap()),
        },
    };
    Json(body).into_response()
}

/// Prometheus metrics.
#[utoipa::path(
    get, path = "/metrics", tag = "meta",
    summary = "Prometheus metrics",
    description = "Request counts, error counts and latency histograms per route, the \
                   broker's counters, and the hive's `/proc` counters (pressure, sessions, \
                   outstanding, workers, ingest), cached briefly.",
    responses(
        (status = 200, description = "Prometheus text format 0.0.4", content_type = "text/plain",
            body = String),
        (status = 401, description = "Missing or wrong token", body = Problem),
    ),
    security(("bearer" = []), ("x-cohesix-auth" = []))
)]
pub async fn metrics(State(app): State<App>) -> Response {
    let mut out = String::with_capacity(16 * 1024);
    app.metrics.render(&mut out);
    metrics::render_broker(&app.broker, &mut out);
    out.push_str(&app.hive_metrics().await);
    let kind = HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8");
    ([(header::CONTENT_TYPE, kind)], out).into_response()
}

/// The OpenAPI document.
#[utoipa::path(
    get, path = "/v1/openapi.yaml", tag = "docs",
    summary = "This API as OpenAPI 3.1 (YAML)",
    responses((status = 200, description = "The document", content_type = "application/yaml",
        body = String)),
)]
pub async fn openapi_yaml() -> Response {
    static YAML: OnceLock<String> = OnceLock::new();
    let yaml = YAML.get_or_init(openapi::yaml);
    let kind = HeaderValue::from_static("application/yaml; charset=utf-8");
    ([(header::CONTENT_TYPE, kind)], yaml.clone()).into_response()
}

/// The human API page.
#[utoipa::path(
    get, path = "/docs", tag = "docs",
    summary = "This API as a page (offline, no scripts)",
    responses((status = 200, description = "HTML", content_type = "text/html", body = String)),
)]
pub async fn docs_page() -> Response {
    static HTML: OnceLock<String> = OnceLock::new();
    let html = HTML.get_or_init(|| docs::render(&openapi::document()));
    let kind = HeaderValue::from_static("text/html; charset=utf-8");
    ([(header::CONTENT_TYPE, kind)], html.clone()).into_response()
}

/// Anything else.
pub async fn not_found() -> Response {
    let text = "ERR ROUTE reason=policy detail=not-found error=no such route";
    problem(StatusCode::NOT_FOUND, text)
}

/// A [`Problem`] answer.
pub fn problem(code: StatusCode, text: &str) -> Response {
    let body = Problem {
        status: Status::Err,
        error: text.to_string(),
    };
    (code, Json(body)).into_response()
}

/// Builds the fs answer and notes the outcome for the request log.
fn answer(verb: Verb, path: &str, result: Result<(Vec<String>, Option<u64>), FsError>) -> Response {
    let shown = cut(path, MAX_PATH_BYTES);
    let (code, body, retry) = match result {
        Ok((lines, bytes)) => {
            let body = FsResponse {
                status: Status::Ok,
                verb,
                path: shown,
                end: true,
                lines,
                bytes: bytes.filter(|b| *b > 0),
                error: None,
            };
            (StatusCode::OK, body, false)
        }
        Err(e) => {
            let body = FsResponse {
                status: Status::Err,
                verb,
                path: shown,
                end: true,
                lines: Vec::new(),
                bytes: None,
                error: Some(e.console_text(verb.as_str(), path)),
            };
            (e.status(), body, e.retry_after())
        }
    };
    let outcome = Outcome {
        path: crate::error::printable(path, 256),
        error: body.error.clone(),
    };
    let mut response = (code, Json(body)).into_response();
    if retry {
        let one = HeaderValue::from_static("1");
        response.headers_mut().insert(header::RETRY_AFTER, one);
    }
    response.extensions_mut().insert(outcome);
    response
}

/// Reads a request body within the size and time bounds; a declared
/// length over the bound is refused before a byte is read.
pub(crate) async fn read_body(
    app: &App,
    headers: &HeaderMap,
    body: Body,
) -> Result<Vec<u8>, FsError> {
    let limit = app.cfg.http.max_body_bytes;
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit as u64) {
        return Err(FsError::BodyTooLarge { limit });
    }
    let collect = Limited::new(body, limit).collect();
    match tokio::time::timeout(app.cfg.http.body_timeout, collect).await {
        Err(_) => Err(FsError::BodyTimeout),
        Ok(Ok(collected)) => Ok(collected.to_bytes().to_vec()),
        Ok(Err(e)) if e.downcast_ref::<LengthLimitError>().is_some() => {
            Err(FsError::BodyTooLarge { limit })
        }
        Ok(Err(e)) => Err(FsError::Invalid(Invalid {
            detail: "invalid-body",
            why: format!("body could not be read: {e}"),
        })),
    }
}

/// Notes a non-fs answer's outcome for the request log line.
pub(crate) fn problem_outcome(response: &mut Response, path: &str, error: Option<String>) {
    let outcome = Outcome {
        path: crate::error::printable(path, 256),
        error,
    };
    response.extensions_mut().insert(outcome);
}

fn bad_query(e: &QueryRejection) -> FsError {
    FsError::Invalid(Invalid {
        detail: "invalid-query",
        why: e.body_text(),
    })
}

/// Control files answer a read of the written fid with the write's result.
fn is_control(path: &str) -> bool {
    path.rsplit('/').next() == Some("ctl")
}

/// File content as lines; a final newline does not make an empty line.
fn to_lines(data: &[u8]) -> Vec<String> {
    let text = String::from_utf8_lossy(data);
    let text = text.strip_suffix('\n').unwrap_or(&text);
    if text.is_empty() {
        return Vec::new();
    }
    text.split('\n').map(String::from).collect()
}

fn cut(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_string();
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s[..end].to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_drop_only_the_final_newline() {
        assert_eq!(to_lines(b"a\nb\n"), ["a", "b"]);
        assert_eq!(to_lines(b"a\n\nb"), ["a", "", "b"]);
        assert!(to_lines(b"").is_empty());
        assert!(to_lines(b"\n").is_empty());
    }

    #[test]
    fn control_files_end_in_ctl() {
        assert!(is_control("/queen/ctl"));
        assert!(is_control("/queen/telemetry/dev-1/ctl"));
        assert!(!is_control("/worker/worker-1/telemetry"));
        assert!(!is_control("/queen/ctlx"));
    }

    #[test]
    fn cut_respects_char_boundaries() {
        assert_eq!(cut("/ééé", 4), "/é");
        assert_eq!(cut("/ab", 10), "/ab");
    }
}
