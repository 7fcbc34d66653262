//! The shapes on the wire: request and response bodies of every route,
//! with their OpenAPI schemas.
//!
//! The fs response object is the contract of SURFACES §9: `status`,
//! `verb`, `path`, `end`, and `lines`, `bytes`, `error` only when they carry
//! something. Nothing here talks to the hive.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use utoipa::{IntoParams, ToSchema};

/// Outcome of a request: `OK`, or `ERR` with an `error` text.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub enum Status {
    #[serde(rename = "OK")]
    Ok,
    #[serde(rename = "ERR")]
    Err,
}

/// The console verb a route stands for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "UPPERCASE")]
pub enum Verb {
    Ls,
    Cat,
    Tail,
    Echo,
}

impl Verb {
    pub fn as_str(self) -> &'static str {
        match self {
            Verb::Ls => "LS",
            Verb::Cat => "CAT",
            Verb::Tail => "TAIL",
            Verb::Echo => "ECHO",
        }
    }
}

/// Every `/v1/fs/*` answer, success or failure.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[schema(example = json!({
    "status": "OK", "verb": "CAT", "path": "/proc/lifecycle/state",
    "end": true, "lines": ["state=ONLINE"], "bytes": 13
}))]
pub struct FsResponse {
    pub status: Status,
    pub verb: Verb,
    /// The path asked for (cut to 1024 bytes when longer).
    pub path: String,
    /// Always true: a response carries the whole answer.
    pub end: bool,
    /// Directory entries, file lines, or what a control write produced
    /// (e.g. the new worker id); omitted when empty.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub lines: Vec<String>,
    /// Bytes read (cat, tail) or written (echo); omitted when 0.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bytes: Option<u64>,
    /// Console-shaped error:
    /// `ERR <VERB> reason=<busy|quota|cut|policy> detail=<tag> path=<p> error=<text>`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// Body of `POST /v1/fs/echo`. Unknown fields are ignored.
#[derive(Clone, Debug, Deserialize, Serialize, ToSchema)]
#[schema(example = json!({
    "path": "/queen/ctl", "line": "{\"spawn\":\"heartbeat\",\"ticks\":100}"
}))]
pub struct EchoRequest {
    /// Absolute path of an append-only file.
    pub path: String,
    /// One record: no newline, 1..=4096 bytes.
    pub line: String,
}

/// A failure outside the fs routes (auth, unknown route, body too large).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[schema(example = json!({
    "status": "ERR", "error": "ERR AUTH reason=policy detail=missing-token"
}))]
pub struct Problem {
    pub status: Status,
    pub error: String,
}

/// Query of `GET /v1/fs/ls`.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)] // documents the query; parsing reads the raw strings
pub struct LsParams {
    /// Absolute path of a directory: no `.`, `..` or empty components,
    /// no NUL, at most 8 components of at most 255 bytes, 1024 bytes in all.
    #[param(example = "/proc")]
    pub path: String,
}

/// Query of `GET /v1/fs/cat`.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)]
pub struct CatParams {
    /// Absolute path of a file (same rules as for `ls`).
    #[param(example = "/proc/boot")]
    pub path: String,
    /// Largest result accepted, in bytes; required, at least 1. Values
    /// above the gateway's read bound (`/v1/meta/bounds`) are clamped to
    /// it. A file larger than this is answered 400 `result-too-large`.
    #[param(minimum = 1, example = 4096)]
    pub max_bytes: u64,
}

/// Query of `GET /v1/fs/tail`.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)]
pub struct TailParams {
    /// Absolute path of a file, typically a telemetry ring or the audit log.
    #[param(example = "/log/queen.log")]
    pub path: String,
    /// Most bytes returned, at least 1 (clamped like `cat`); the newest
    /// whole lines that fit are returned, never a 400 for size.
    #[param(minimum = 1, example = 1024)]
    pub max_bytes: u64,
    /// Most lines returned, 1..=256; all that fit when absent.
    #[param(minimum = 1, maximum = 256, example = 10)]
    pub lines: Option<u32>,
}

/// The query as received: every field optional and a string, so each
/// problem gets its own 400 answer.
#[derive(Debug, Default, Deserialize)]
pub struct RawQuery {
    pub path: Option<String>,
    pub max_bytes: Option<String>,
    pub lines: Option<String>,
}

/// `GET /v1/meta/bounds`.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct BoundsResponse {
    /// Numeric bounds from the hive's `/proc/boot` (msize, walk_depth,
    /// component_bytes, sessions, tags_in_flight, fids, workers,
    /// ring_bytes, record_bytes, console_line_bytes, ...).
    pub hive: BTreeMap<String, u64>,
    /// Other facts from `/proc/boot` (version, hive name, manifest, sha256).
    pub hive_info: BTreeMap<String, String>,
    pub gateway: GatewayBounds,
    /// Files whose writes produce a result readable as `lines`.
    pub control_paths: Vec<String>,
    /// Surfaces this gateway serves.
    pub surfaces: Vec<String>,
}

/// The gateway's own limits.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct GatewayBounds {
    /// msize granted on the gateway's sessions.
    pub msize: u64,
    pub path_bytes: u64,
    pub walk_depth: u64,
    pub component_bytes: u64,
    /// Largest `max_bytes` honoured.
    pub max_bytes: u64,
    pub echo_line_bytes: u64,
    pub tail_lines: u64,
    pub body_bytes: u64,
    pub request_timeout_ms: u64,
    pub connections: u64,
    pub tags_per_connection: u64,
    pub queue_depth: u64,
}

/// `GET /v1/meta/status`.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct StatusResponse {
    /// True when at least one session to the hive is live.
    pub connected: bool,
    /// The hive's Secure9P address.
    pub hive: String,
    /// Sessions configured and live.
    pub connections: u64,
    pub live_connections: u64,
    /// Successful attaches since start, and those after a loss.
    pub connects: u64,
    pub reconnects: u64,
    /// The last connect or session failure, if any.
    pub last_error: Option<String>,
    pub broker: BrokerCounters,
}

/// The broker's counters.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct BrokerCounters {
    /// Requests waiting for a session slot now, and the most ever.
    pub waiters: u64,
    pub waiters_high_water: u64,
    /// Requests holding a slot now, and the most ever.
    pub in_flight: u64,
    pub in_flight_high_water: u64,
    pub checkouts: u64,
    /// Refused because the wait queue was full (429).
    pub exhausted: u64,
    /// Waited past the request deadline (504).
    pub timeouts: u64,
    /// Refused because no session was live (503).
    pub unavailable: u64,
    /// Reads run again on another session after a transport failure.
    pub retries: u64,
    pub connect_failures: u64,
    /// Slots per session (the hive's tags-in-flight bound).
    pub slots_per_connection: u64,
}

/// Every `/v1/telemetry/*` JSON answer, success or failure. Fields other
/// than `status` and `device` appear only when they carry something.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[schema(example = json!({
    "status": "OK", "device": "cam-1", "artifact": "seg-000004.17",
    "bytes": 4194304, "chunks": 1
}))]
pub struct TelemetryResponse {
    pub status: Status,
    /// The device id asked for (cut to 64 bytes when longer).
    pub device: String,
    /// The segment created (`segment`) or the newest one (`latest`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub segment: Option<String>,
    /// Records appended (`records`), also when a later one was refused.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub count: Option<u64>,
    /// The id an artifact commit returned, e.g. `seg-000004.17`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub artifact: Option<String>,
    /// Artifact bytes stored.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bytes: Option<u64>,
    /// Content chunks (`coh-ref-c/v1` records) the artifact was stored as.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub chunks: Option<u64>,
    /// Console-shaped error:
    /// `ERR TELEMETRY reason=<busy|quota|cut|policy> detail=<tag> path=<p> error=<text>`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// Body of `POST /v1/telemetry/{device}/segment`.
#[derive(Clone, Debug, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"mime": "text/plain"}))]
pub struct SegmentRequest {
    /// 1–127 printable ASCII bytes with a `/`, no quotes or backslashes.
    pub mime: String,
}

/// Body of `POST /v1/telemetry/{device}/records`.
#[derive(Clone, Debug, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"records": [
    {"schema": "cohsh-telemetry-push/v1", "seq": 1, "mime": "text/plain", "payload": "hello"}
]}))]
pub struct RecordsRequest {
    /// 1..=256 records, each a `cohsh-telemetry-push/v1` or `coh-ref-c/v1`
    /// object (SURFACES §7), appended in order to the newest segment.
    #[schema(value_type = Vec<Object>)]
    pub records: Vec<serde_json::Value>,
}
