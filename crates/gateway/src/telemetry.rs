//! The telemetry ingest routes (`/v1/telemetry/{device}/...`): segments,
//! records and the newest segment over the shared pool, and artifacts
//! streamed in and out over a 9P session of their own.
//!
//! An artifact stream never holds a pool slot: each upload or read-back
//! connects its own session (asking for `artifact_msize`, granted at most
//! the hive's msize), so a gigabyte in flight does not starve small
//! requests. At most `artifact_streams` run at once; more are answered 429.
//!
//! Upload: the request body is streamed straight into sequential `Twrite`s
//! on one fid, buffering at most one iounit; the commit read returns the
//! artifact id. If the body fails (client gone, too slow) or the hive
//! refuses a write, the session is closed before the commit read, which
//! discards the upload: nothing is published.
//!
//! Read-back: the first block is read (and so the first chunk verified)
//! before the status line is sent, so a missing or corrupt first chunk is
//! a clean JSON error. The response carries `Content-Length` (the sum of
//! the artifact's reference records); a chunk found corrupt later aborts
//! the response, so the client sees fewer bytes than announced (curl:
//! exit 18) and never a byte that failed verification.

use crate::api::{RecordsRequest, SegmentRequest, Status, TelemetryResponse};
use crate::app::App;
use crate::error::FsError;
use crate::ops::{self, OpError};
use crate::routes::{problem_outcome, read_body};
use crate::validate::Invalid;
use axum::body::{Body, Bytes, HttpBody};
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use cohesix_client::{Client, ClientConfig, File, OpenMode};
use http_body_util::BodyExt;
use hyper::body::Frame;
use std::pin::Pin;
use std::task::{Context, Poll};
use tokio::sync::{mpsc, OwnedSemaphorePermit};

/// Most records one `records` request may carry.
pub const MAX_RECORDS_PER_REQUEST: usize = 256;

/// Largest segment scanned for an artifact's reference records (the
/// largest `max_segment_bytes` a manifest allows).
const SEGMENT_SCAN_BYTES: u64 = 4 << 30;

/// Longest line in a segment the scan accepts (the largest record bound).
const MAX_RECORD_LINE: usize = 65_536 + 1;

/// Blocks of a read-back queued between the 9P reader and HTTP.
const READ_AHEAD: usize = 2;

/// Creates the next segment of a device.
#[utoipa::path(
    post, path = "/v1/telemetry/{device}/segment", tag = "telemetry",
    summary = "Create the next segment of a device",
    description = "Writes `{\"new\":\"segment\",\"mime\":...}` to \
                   `/queen/telemetry/<device>/ctl` and returns the new segment id. Creates \
                   the device on first use; closes its previous segment.",
    params(("device" = String, Path, description = "1–64 bytes of `A-Z a-z 0-9 _ - .`")),
    request_body(content = SegmentRequest, content_type = "application/json"),
    responses(
        (status = 200, description = "Created, or refused by the hive (`status: ERR`)",
            body = TelemetryResponse, example = json!({"status": "OK", "device": "cam-1",
            "segment": "seg-000003"})),
        (status = 400, description = "Invalid device id or body", body = TelemetryResponse),
        (status = 401, description = "Missing or wrong token", body = crate::api::Problem),
        (status = 413, description = "Body larger than the gateway accepts",
            body = TelemetryResponse),
        (status = 429, description = "Back-pressure", body = TelemetryResponse),
        (status = 503, description = "Hive unreachable", body = TelemetryResponse),
        (status = 504, description = "Request timed out", body = TelemetryResponse),
    ),
    security(("bearer" = []), ("x-cohesix-auth" = []))
)]
pub async fn segment(
    State(app): State<App>,
    Path(device): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let path = ctl_path(&device);
    let result = async {
        check_device(&device)?;
        let bytes = read_body(&app, &headers, body).await?;
        let req: SegmentRequest = parse_json(&bytes, "segment request")?;
        let line = serde_json::json!({"new": "segment", "mime": req.mime}).to_string();
        let (p, l) = (&path, line.as_bytes());
        let (_, reply) = app
            .run(false, |c| async move { ops::echo(&c, p, l, true).await })
            .await?;
        let id = String::from_utf8_lossy(&reply).trim().to_string();
        Ok(TelemetryResponse {
            segment: Some(id),
            ..ok(&device)
        })
    }
    .await;
    answer(&device, &path, result)
}

/// Appends records to the newest segment.
#[utoipa::path(
    post, path = "/v1/telemetry/{device}/records", tag = "telemetry",
    summary = "Append records to the newest segment",
    description = "Appends each record, in order, as one write to the device's newest \
                   segment. Every record must be a JSON object in one of the schemas of \
                   SURFACES §7 (`cohsh-telemetry-push/v1`, `coh-ref-c/v1`), with `seq` \
                   continuing the segment's. Records are checked for shape before any is \
                   sent; the hive checks the rest. When the hive refuses a record, the \
                   records before it stay appended and `count` says how many.",
    params(("device" = String, Path, description = "1–64 bytes of `A-Z a-z 0-9 _ - .`")),
    request_body(content = RecordsRequest, content_type = "application/json"),
    responses(
        (status = 200, description = "Appended, or refused by the hive (`status: ERR`, \
            `count` appended before the refusal)", body = TelemetryResponse,
            example = json!({"status": "OK", "device": "cam-1", "segment": "seg-000003",
            "count": 2})),
        (status = 400, description = "Invalid device id, body, or record shape; more than \
            256 records", body = TelemetryResponse),
        (status = 401, description = "Missing or wrong token", body = crate::api::Problem),
        (status = 413, description = "Body larger than the gateway accepts",
            body = TelemetryResponse),
        (status = 429, description = "Back-pressure", body = TelemetryResponse),
        (status = 503, description = "Hive unreachable", body = TelemetryResponse),
        (status = 504, description = "Request timed out", body = TelemetryResponse),
    ),
    security(("bearer" = []), ("x-cohesix-auth" = []))
)]
pub async fn records(
    State(app): State<App>,
    Path(device): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let path = format!("/queen/telemetry/{device}/seg");
    let mut appended = None;
    let result = async {
        check_device(&device)?;
        let bytes = read_body(&app, &headers, body).await?;
        let req: RecordsRequest = parse_json(&bytes, "records request")?;
        let lines = record_lines(&req.records)?;
        let dev = &device;
        let lines = &lines;
        let (segment, count, refused) = app
            .run(
                false,
                |c| async move { append_records(&c, dev, lines).await },
            )
            .await?;
        appended = Some(count);
        if let Some(e) = refused {
            return Err(FsError::from(&e));
        }
        Ok(TelemetryResponse {
            segment: Some(segment),
            count: Some(count),
            ..ok(&device)
        })
    }
    .await;
    let mut response = answer_with(&device, &path, result, |r| r.count = appended);
    if let Some(n) = appended {
        if let Ok(v) = HeaderValue::from_str(&n.to_string()) {
            response.headers_mut().insert("x-cohesix-appended", v);
        }
    }
    response
}

/// The newest segment of a device.
#[utoipa::path(
    get, path = "/v1/telemetry/{device}/latest", tag = "telemetry",
    summary = "The newest segment of a device",
    params(("device" = String, Path, description = "1–64 bytes of `A-Z a-z 0-9 _ - .`")),
    responses(
        (status = 200, description = "The id, or refused by the hive (`status: ERR`, e.g. \
            not-found for a device never created)", body = TelemetryResponse,
            example = json!({"status": "OK", "device": "cam-1", "segment": "seg-000003"})),
        (status = 400, description = "Invalid device id", body = TelemetryResponse),
        (status = 401, description = "Missing or wrong token", body = crate::api::Problem),
        (status = 429, description = "Back-pressure", body = TelemetryResponse),
        (status = 503, description = "Hive unreachable", body = TelemetryResponse),
        (status = 504, description = "Request timed out", body = TelemetryResponse),
    ),
    security(("bearer" = []), ("x-cohesix-auth" = []))
)]
pub async fn latest(State(app): State<App>, Path(device): Path<String>) -> Response {
    let path = format!("/queen/telemetry/{device}/latest");
    let result = async {
        check_device(&device)?;
        let p = &path;
        let data = app
            .run(true, |c| async move { ops::cat(&c, p, 256).await })
            .await?;
        Ok(TelemetryResponse {
            segment: Some(String::from_utf8_lossy(&data).trim().to_string()),
            ..ok(&device)
        })
    }
    .await;
    answer(&device, &path, result)
}

/// Streams an artifact in.
#[utoipa::path(
    put, path = "/v1/telemetry/{device}/artifact", tag = "telemetry",
    summary = "Stream an artifact in",
    description = "The request body, of any length up to the hive's `max_artifact_bytes` \
                   (the gateway's body limit does not apply), is streamed into \
                   `/queen/telemetry/<device>/artifact` over a 9P session of its own and \
                   committed when it ends; the artifact is recorded as `coh-ref-c/v1` \
                   records in the device's newest segment. A body that breaks off, stalls \
                   past the body timeout, or is refused by the hive is discarded: nothing \
                   is committed.",
    params(("device" = String, Path, description = "1–64 bytes of `A-Z a-z 0-9 _ - .`")),
    request_body(content = Vec<u8>, content_type = "application/octet-stream"),
    responses(
        (status = 200, description = "Committed, or refused by the hive (`status: ERR`: \
            not-found for a device without a segment, too-big past max_artifact_bytes, \
            invalid for an empty body)", body = TelemetryResponse,
            example = json!({"status": "OK", "device": "cam-1",
            "artifact": "seg-000004.17", "bytes": 4194304, "chunks": 1})),
        (status = 400, description = "Invalid device id, or the body broke off",
            body = TelemetryResponse),
        (status = 401, description = "Missing or wrong token", body = crate::api::Problem),
        (status = 408, description = "Body stalled past the body timeout",
            body = TelemetryResponse),
        (status = 429, description = "Too many artifact streams, or the hive's upload \
            slots are full", body = TelemetryResponse),
        (status = 503, description = "Hive unreachable", body = TelemetryResponse),
        (status = 504, description = "A 9P request timed out", body = TelemetryResponse),
    ),
    security(("bearer" = []), ("x-cohesix-auth" = []))
)]
pub async fn put_artifact(
    State(app): State<App>,
    Path(device): Path<String>,
    body: Body,
) -> Response {
    let path = format!("/queen/telemetry/{device}/artifact");
    let result = async {
        check_device(&device)?;
        let _permit = stream_permit(&app)?;
        let session = Session::connect(&app).await?;
        let file = session
            .client
            .open(&path, OpenMode::ReadWrite)
            .await
            .map_err(|e| FsError::from(&e))?;
        let (bytes, id) = match upload(&app, &file, body).await {
            Ok(done) => done,
            Err(e) => {
                // Closing the session before the commit read discards it.
                session.client.close();
                return Err(e);
            }
        };
        let _ = file.close().await;
        let refs = artifact_extent(&session.client, &device, &id)
            .await
            .map_err(|e| FsError::from(&e))?;
        Ok(TelemetryResponse {
            artifact: Some(id),
            bytes: Some(bytes),
            chunks: Some(refs.chunks),
            ..ok(&device)
        })
    }
    .await;
    answer(&device, &path, result)
}

/// Streams a committed artifact back, verified.
#[utoipa::path(
    get, path = "/v1/telemetry/{device}/artifacts/{id}", tag = "telemetry",
    summary = "Stream an artifact back, verified",
    description = "The artifact's bytes (`application/octet-stream`, with `Content-Length`). \
                   The hive verifies each chunk's length and sha256 before serving it. The \
                   first block is read before the status line, so a corrupt or missing \
                   first chunk is a JSON error; a chunk found corrupt later aborts the \
                   response: the client receives fewer bytes than `Content-Length` and must \
                   treat the transfer as failed (curl exits 18).",
    params(
        ("device" = String, Path, description = "1–64 bytes of `A-Z a-z 0-9 _ - .`"),
        ("id" = String, Path, description = "The id the commit returned, `seg-NNNNNN.S`"),
    ),
    responses(
        (status = 200, description = "The bytes; or a JSON refusal (`status: ERR`: \
            not-found, invalid for a corrupt first chunk)",
            content_type = "application/octet-stream", body = Vec<u8>),
        (status = 400, description = "Invalid device or artifact id",
            body = TelemetryResponse),
        (status = 401, description = "Missing or wrong token", body = crate::api::Problem),
        (status = 429, description = "Too many artifact streams", body = TelemetryResponse),
        (status = 503, description = "Hive unreachable", body = TelemetryResponse),
        (status = 504, description = "A 9P request timed out", body = TelemetryResponse),
    ),
    security(("bearer" = []), ("x-cohesix-auth" = []))
)]
pub async fn get_artifact(
    State(app): State<App>,
    Path((device, id)): Path<(String, String)>,
) -> Response {
    let path = format!("/queen/telemetry/{device}/artifacts/{id}");
    let result = async {
        check_device(&device)?;
        check_artifact_id(&id)?;
        let permit = stream_permit(&app)?;
        let session = Session::connect(&app).await?;
        let extent = artifact_extent(&session.client, &device, &id)
            .await
            .map_err(|e| FsError::from(&e))?;
        let file = session
            .client
            .open(&path, OpenMode::Read)
            .await
            .map_err(|e| FsError::from(&e))?;
        let block = file.iounit();
        let first = file
            .read_at(0, block)
            .await
            .map_err(|e| FsError::from(&e))?;
        Ok((session, file, first, extent, permit))
    }
    .await;
    let (session, file, first, extent, permit) = match result {
        Ok(v) => v,
        Err(e) => return answer(&device, &path, Err(e)),
    };
    let (tx, rx) = mpsc::channel(READ_AHEAD);
    let total = extent.bytes;
    tokio::spawn(stream_out(session, file, first, total, tx, permit));
    let mut response = Body::new(ChannelBody { rx }).into_response();
    let h = response.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/octet-stream"),
    );
    if let Ok(v) = HeaderValue::from_str(&total.to_string()) {
        h.insert(header::CONTENT_LENGTH, v);
    }
    if let Ok(v) = HeaderValue::from_str(&extent.chunks.to_string()) {
        h.insert("x-cohesix-artifact-chunks", v);
    }
    response.extensions_mut().insert(crate::routes::Outcome {
        path: crate::error::printable(&path, 256),
        error: None,
    });
    response
}

/// A 9P session of one artifact stream; closed when dropped, so a stream
/// cut anywhere (a cancelled handler included) ends its upload uncommitted.
struct Session {
    client: Client,
}

impl Session {
    async fn connect(app: &App) -> Result<Session, FsError> {
        let pool = app.broker.config();
        let mut cfg = ClientConfig::new(pool.role.clone(), pool.ticket.clone());
        cfg.msize = app.cfg.http.artifact_msize;
        cfg.timeout = app.cfg.http.artifact_io_timeout;
        cfg.max_in_flight = 4;
        cfg.max_fids = 4;
        match Client::connect(&pool.hive_addr, cfg).await {
            Ok(client) => Ok(Session { client }),
            Err(e) if e.class().is_some() => Err(FsError::from(&e)),
            Err(e) => {
                tracing::debug!(error = %e, "artifact session connect failed");
                Err(FsError::Unavailable {
                    detail: "hive-unreachable",
                })
            }
        }
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        self.client.close();
    }
}

fn stream_permit(app: &App) -> Result<OwnedSemaphorePermit, FsError> {
    app.artifact_slots
        .clone()
        .try_acquire_owned()
        .map_err(|_| FsError::Busy {
            detail: "artifact-streams-full",
        })
}

/// Writes the body at the running offset, one iounit per `Twrite`, then
/// commits; returns the bytes written and the artifact id. The next block
/// is received while the previous one is written, so at most two blocks
/// (and the rest of one body frame) are held.
async fn upload(app: &App, file: &File, body: Body) -> Result<(u64, String), FsError> {
    let block = file.iounit().max(1) as usize;
    let mut input = Input {
        body,
        carry: Bytes::new(),
        idle: app.cfg.http.body_timeout,
        ended: false,
    };
    let mut offset: u64 = 0;
    let mut current = Vec::with_capacity(block);
    input.fill(&mut current, block).await?;
    // Each pass writes one block while the next arrives; an empty block
    // (the body's end) ends the loop.
    while !current.is_empty() {
        let mut next = Vec::with_capacity(block);
        // The first failure of either ends both.
        tokio::try_join!(
            write_all(file, &mut offset, &current),
            input.fill(&mut next, block)
        )?;
        current = next;
    }
    let reply = file.read_at(0, 64).await.map_err(|e| FsError::from(&e))?;
    let id = String::from_utf8_lossy(&reply).trim().to_string();
    Ok((offset, id))
}

/// The request body, taken a block at a time.
struct Input {
    body: Body,
    /// What the last frame held past the previous block.
    carry: Bytes,
    /// Longest wait for the next frame.
    idle: std::time::Duration,
    ended: bool,
}

impl Input {
    /// Fills `buf` up to `block` bytes; fewer only at the body's end.
    async fn fill(&mut self, buf: &mut Vec<u8>, block: usize) -> Result<(), FsError> {
        // Each pass takes carried bytes or one frame; the block filling or
        // the body's end ends it.
        while buf.len() < block {
            if !self.carry.is_empty() {
                let take = (block - buf.len()).min(self.carry.len());
                let head = self.carry.split_to(take);
                buf.extend_from_slice(&head);
                continue;
            }
            if self.ended {
                break;
            }
            let frame = match tokio::time::timeout(self.idle, self.body.frame()).await {
                Err(_) => return Err(FsError::BodyTimeout),
                Ok(None) => {
                    self.ended = true;
                    break;
                }
                Ok(Some(Err(e))) => {
                    return Err(FsError::Invalid(Invalid {
                        detail: "body-cut",
                        why: format!("body broke off: {e}"),
                    }))
                }
                Ok(Some(Ok(frame))) => frame,
            };
            // Trailers carry nothing to store.
            if let Ok(data) = frame.into_data() {
                self.carry = data;
            }
        }
        Ok(())
    }
}

/// Writes all of `data` at `*offset`, advancing it.
async fn write_all(file: &File, offset: &mut u64, data: &[u8]) -> Result<(), FsError> {
    let mut sent = 0usize;
    // Every pass sends at least one byte or fails, so at most data.len().
    while sent < data.len() {
        let n = file
            .write_at(*offset, &data[sent..])
            .await
            .map_err(|e| FsError::from(&e))? as usize;
        if n == 0 || n > data.len() - sent {
            return Err(FsError::Unavailable {
                detail: "short-write",
            });
        }
        sent += n;
        *offset += n as u64;
    }
    Ok(())
}

/// Feeds a read-back into the response body until the end, an error (the
/// response is then aborted) or the client going away.
async fn stream_out(
    session: Session,
    file: File,
    first: Vec<u8>,
    total: u64,
    tx: mpsc::Sender<Result<Bytes, std::io::Error>>,
    _permit: OwnedSemaphorePermit,
) {
    let block = file.iounit();
    let mut offset = first.len() as u64;
    let mut next = first;
    // Each pass sends one block; bounded by the artifact's length (an
    // empty read ends it) and by the receiver going away.
    loop {
        if next.is_empty() {
            break;
        }
        if tx.send(Ok(Bytes::from(next))).await.is_err() {
            break; // the client went away
        }
        if offset >= total {
            break;
        }
        next = match file.read_at(offset, block).await {
            Ok(data) => data,
            Err(e) => {
                tracing::warn!(error = %e, offset, "artifact read-back aborted");
                let _ = tx.send(Err(std::io::Error::other(e.to_string()))).await;
                break;
            }
        };
        offset += next.len() as u64;
    }
    let _ = file.close().await;
    drop(session);
}

/// A response body fed by a bounded channel; an `Err` aborts it.
struct ChannelBody {
    rx: mpsc::Receiver<Result<Bytes, std::io::Error>>,
}

impl HttpBody for ChannelBody {
    type Data = Bytes;
    type Error = std::io::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, std::io::Error>>> {
        self.rx
            .poll_recv(cx)
            .map(|item| item.map(|r| r.map(Frame::data)))
    }
}

/// Where an artifact lies: its total length and its number of chunks.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Extent {
    pub bytes: u64,
    pub chunks: u64,
}

/// Reads the artifact's reference records from its segment: the run of
/// `coh-ref-c/v1` records starting at the id's `seq` with `off` 0, each
/// continuing at the previous `off + len`. Reads line by line with a
/// bounded carry; stops at the first record past the run.
pub async fn artifact_extent(client: &Client, device: &str, id: &str) -> Result<Extent, OpError> {
    let not_found = || {
        OpError::Client(cohesix_client::Error::Server {
            op: "read",
            class: cohesix_client::ErrorClass::NotFound,
            errno: 2,
        })
    };
    let Some((segment, seq)) = split_artifact_id(id) else {
        return Err(not_found());
    };
    let path = format!("/queen/telemetry/{device}/seg/{segment}");
    let file = client.open(&path, OpenMode::Read).await?;
    let block = file.iounit();
    let mut carry: Vec<u8> = Vec::new();
    let mut offset = 0u64;
    let mut extent = Extent::default();
    let mut done = false;
    // Bounded by SEGMENT_SCAN_BYTES; each pass reads one block.
    while !done && offset < SEGMENT_SCAN_BYTES {
        let data = match file.read_at(offset, block).await {
            Ok(d) => d,
            Err(e) => {
                let _ = file.close().await;
                return Err(e.into());
            }
        };
        if data.is_empty() {
            break;
        }
        offset += data.len() as u64;
        carry.extend_from_slice(&data);
        let mut start = 0;
        while let Some(nl) = carry[start..].iter().position(|b| *b == b'\n') {
            let line = &carry[start..start + nl];
            start += nl + 1;
            if !take_ref(line, seq, &mut extent) {
                done = true;
                break;
            }
        }
        carry.drain(..start);
        if carry.len() > MAX_RECORD_LINE {
            break;
        }
    }
    let _ = file.close().await;
    if extent.chunks == 0 {
        return Err(not_found());
    }
    Ok(extent)
}

/// Folds one segment line into the run; false once the run has ended.
fn take_ref(line: &[u8], seq: u64, extent: &mut Extent) -> bool {
    #[derive(serde::Deserialize)]
    struct Ref {
        schema: String,
        seq: u64,
        #[serde(default)]
        off: Option<u64>,
        #[serde(default)]
        len: Option<u64>,
    }
    let Ok(r) = serde_json::from_slice::<Ref>(line) else {
        return extent.chunks == 0;
    };
    if r.seq < seq {
        return true;
    }
    let continues = r.schema == "coh-ref-c/v1"
        && r.seq == seq + extent.chunks
        && r.off == Some(extent.bytes)
        && r.len.is_some_and(|l| l > 0);
    if !continues {
        return false;
    }
    extent.bytes += r.len.unwrap_or(0);
    extent.chunks += 1;
    true
}

/// `seg-000004.17` → (`seg-000004`, 17).
fn split_artifact_id(id: &str) -> Option<(&str, u64)> {
    let (segment, seq) = id.split_once('.')?;
    let digits = segment.strip_prefix("seg-")?;
    if digits.len() < 6 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    if seq.is_empty() || seq.len() > 19 || !seq.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some((segment, seq.parse().ok()?))
}

fn check_artifact_id(id: &str) -> Result<(), FsError> {
    if split_artifact_id(id).is_none() {
        return Err(FsError::Invalid(Invalid {
            detail: "invalid-artifact-id",
            why: String::from("artifact id must look like seg-000004.17"),
        }));
    }
    Ok(())
}

/// A device id: 1–64 bytes of `A-Z a-z 0-9 _ - .`, not `.` or `..`.
pub fn check_device(device: &str) -> Result<(), FsError> {
    let ok = (1..=64).contains(&device.len())
        && device
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'))
        && device != "."
        && device != "..";
    if !ok {
        return Err(FsError::Invalid(Invalid {
            detail: "invalid-device",
            why: String::from("device id must be 1-64 bytes of A-Z a-z 0-9 _ - ."),
        }));
    }
    Ok(())
}

/// Each record as the line the hive is sent, after a shape check: a JSON
/// object whose `schema` is one of the two ingest schemas, with a `seq`.
fn record_lines(records: &[serde_json::Value]) -> Result<Vec<Vec<u8>>, FsError> {
    let bad = |why: String| {
        FsError::Invalid(Invalid {
            detail: "invalid-record",
            why,
        })
    };
    if records.is_empty() || records.len() > MAX_RECORDS_PER_REQUEST {
        return Err(bad(format!(
            "records must hold 1..={MAX_RECORDS_PER_REQUEST} records"
        )));
    }
    let mut lines = Vec::with_capacity(records.len());
    for (i, r) in records.iter().enumerate() {
        let Some(obj) = r.as_object() else {
            return Err(bad(format!("record {i} is not an object")));
        };
        let schema = obj.get("schema").and_then(|s| s.as_str());
        if !matches!(schema, Some("cohsh-telemetry-push/v1" | "coh-ref-c/v1")) {
            return Err(bad(format!("record {i} has no known schema")));
        }
        if !obj.get("seq").is_some_and(|s| s.is_u64()) {
            return Err(bad(format!("record {i} has no seq")));
        }
        let line = serde_json::to_vec(r).map_err(|e| bad(e.to_string()))?;
        lines.push(line);
    }
    Ok(lines)
}

/// Appends `lines` to the newest segment; returns the segment, how many
/// landed, and the refusal that stopped the rest, if any.
async fn append_records(
    client: &Client,
    device: &str,
    lines: &[Vec<u8>],
) -> Result<(String, u64, Option<OpError>), OpError> {
    let latest = format!("/queen/telemetry/{device}/latest");
    let id = ops::cat(client, &latest, 256).await?;
    let segment = String::from_utf8_lossy(&id).trim().to_string();
    let path = format!("/queen/telemetry/{device}/seg/{segment}");
    let file = client.open(&path, OpenMode::Write).await?;
    let mut count = 0u64;
    let mut refused = None;
    for line in lines {
        match file.write_at(0, line).await {
            Ok(_) => count += 1,
            Err(e) if e.is_transport() && count == 0 => {
                let _ = file.close().await;
                return Err(e.into());
            }
            Err(e) => {
                refused = Some(e.into());
                break;
            }
        }
    }
    let _ = file.close().await;
    Ok((segment, count, refused))
}

fn parse_json<T: serde::de::DeserializeOwned>(bytes: &[u8], what: &str) -> Result<T, FsError> {
    serde_json::from_slice(bytes).map_err(|e| {
        FsError::Invalid(Invalid {
            detail: "invalid-json",
            why: format!("body is not a {what}: {e}"),
        })
    })
}

fn ctl_path(device: &str) -> String {
    format!("/queen/telemetry/{device}/ctl")
}

fn ok(device: &str) -> TelemetryResponse {
    TelemetryResponse {
        status: Status::Ok,
        device: crate::error::printable(device, 64),
        segment: None,
        count: None,
        artifact: None,
        bytes: None,
        chunks: None,
        error: None,
    }
}

fn answer(device: &str, path: &str, result: Result<TelemetryResponse, FsError>) -> Response {
    answer_with(device, path, result, |_| {})
}

/// Builds the JSON answer; `on_err` may add fields to a failure.
fn answer_with(
    device: &str,
    path: &str,
    result: Result<TelemetryResponse, FsError>,
    on_err: impl FnOnce(&mut TelemetryResponse),
) -> Response {
    match result {
        Ok(body) => {
            let mut r = (StatusCode::OK, Json(body)).into_response();
            problem_outcome(&mut r, path, None);
            r
        }
        Err(e) => {
            let text = e.console_text("TELEMETRY", path);
            let mut body = TelemetryResponse {
                status: Status::Err,
                error: Some(text.clone()),
                ..ok(device)
            };
            on_err(&mut body);
            let mut r = (e.status(), Json(body)).into_response();
            if e.retry_after() {
                r.headers_mut()
                    .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
            }
            problem_outcome(&mut r, path, Some(text));
            r
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn device_ids_follow_the_ingest_rule() {
        assert!(check_device("cam-1").is_ok());
        assert!(check_device("a.b_C-9").is_ok());
        for bad in ["", ".", "..", "a/b", "a b", &"x".repeat(65)] {
            assert!(check_device(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn artifact_ids_split() {
        assert_eq!(split_artifact_id("seg-000004.17"), Some(("seg-000004", 17)));
        assert_eq!(split_artifact_id("seg-04.1"), None);
        assert_eq!(split_artifact_id("seg-000004"), None);
        assert_eq!(split_artifact_id("seg-000004.x"), None);
    }

    #[test]
    fn the_reference_run_ends_at_a_break() {
        let mut e = Extent::default();
        let push = |seq: u64| format!(r#"{{"schema":"cohsh-telemetry-push/v1","seq":{seq}}}"#);
        let r = |seq: u64, off: u64, len: u64| {
            format!(r#"{{"schema":"coh-ref-c/v1","seq":{seq},"off":{off},"len":{len}}}"#)
        };
        assert!(take_ref(push(1).as_bytes(), 2, &mut e));
        assert!(take_ref(r(2, 0, 10).as_bytes(), 2, &mut e));
        assert!(take_ref(r(3, 10, 5).as_bytes(), 2, &mut e));
        assert!(!take_ref(r(4, 0, 7).as_bytes(), 2, &mut e));
        assert_eq!(
            e,
            Extent {
                bytes: 15,
                chunks: 2
            }
        );
    }

    #[test]
    fn record_shapes_are_checked_before_sending() {
        let ok = serde_json::json!({"schema": "cohsh-telemetry-push/v1", "seq": 1});
        assert!(record_lines(std::slice::from_ref(&ok)).is_ok());
        assert!(record_lines(&[]).is_err());
        assert!(record_lines(&[serde_json::json!([1])]).is_err());
        assert!(record_lines(&[serde_json::json!({"schema": "x", "seq": 1})]).is_err());
        assert!(record_lines(&vec![ok; MAX_RECORDS_PER_REQUEST + 1]).is_err());
    }
}
