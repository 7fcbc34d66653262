//! `telemetry push` and `telemetry pull`: files into a device's telemetry
//! and back out (docs/telemetry.md), over the `9p` and `rest` transports.
//!
//! Push: a small UTF-8 file (at most [`TEXT_MAX_BYTES`]) becomes a new
//! segment of `cohsh-telemetry-push/v1` records, its text cut into payloads
//! that keep each record within [`RECORD_BYTES`]; anything else, or any file
//! with `--artifact`, is streamed as an artifact into a new segment, with a
//! progress bar when the file is large. Pull: every segment's records go to
//! `<out>/<segment>.jsonl`, the text of its push records to
//! `<out>/<segment>.txt`, and every artifact its `coh-ref-c/v1` records name
//! to `<out>/<artifact-id>.bin`, each chunk checked against the record's
//! sha256 as it is written (the hive verifies too).
//!
//! Memory stays bounded: files are read and written in blocks of at most
//! [`BLOCK_BYTES`]; a segment is read whole, up to [`SEGMENT_MAX_BYTES`]
//! (over REST, up to the gateway's read bound). The `tcp` console cannot
//! carry artifacts; it answers "use --transport 9p or rest".

use crate::ninep::NinePConsole;
use crate::rest::RestConsole;
use crate::transport::{Reply, Transport, TransportError};
use base64::Engine as _;
use cohesix_client::{Client, Error as ClientError, OpenMode};
use cohesix_console::{ack, Reason};
use http_body_util::BodyExt;
use hyper::body::{Bytes, Frame};
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::mpsc;

/// The verb in acks.
const VERB: &str = "TELEMETRY";
/// Largest file pushed as records (unless `--artifact`).
pub const TEXT_MAX_BYTES: u64 = 1 << 20;
/// The hive's default record bound; records are kept within it.
pub const RECORD_BYTES: usize = 4096;
/// Most records per REST request (the gateway's bound).
const REST_BATCH: usize = 256;
/// Most bytes of records per REST request (under the 64 KiB body bound).
const REST_BATCH_BYTES: usize = 48 << 10;
/// File I/O block; also the msize asked for on artifact sessions.
pub const BLOCK_BYTES: usize = 1 << 20;
/// Largest segment read by a pull.
pub const SEGMENT_MAX_BYTES: usize = 64 << 20;
/// Files larger than this get a progress bar.
const PROGRESS_MIN_BYTES: u64 = 8 << 20;
/// Bound on each request of an artifact stream.
const IO_TIMEOUT: Duration = Duration::from_secs(60);

/// A failure, as the ack it becomes.
#[derive(Debug)]
pub struct Fail {
    reason: Reason,
    detail: String,
    why: String,
}

impl Fail {
    fn new(reason: Reason, detail: &str, why: impl Into<String>) -> Fail {
        Fail {
            reason,
            detail: detail.to_string(),
            why: why.into(),
        }
    }

    fn io(what: &str, e: std::io::Error) -> Fail {
        Fail::new(Reason::Policy, "io", format!("{what}: {e}"))
    }

    fn reply(&self) -> Reply {
        let why = self.why.replace('\n', " ");
        Reply::ack(ack::err(
            VERB,
            self.reason,
            Some(&self.detail),
            None,
            Some(&why),
        ))
    }
}

impl From<ClientError> for Fail {
    fn from(e: ClientError) -> Fail {
        let (reason, detail) = match e.class() {
            Some(class) => {
                let reason = match class.name() {
                    "busy" => Reason::Busy,
                    "quota" | "too-big" | "rate-limited" => Reason::Quota,
                    "closed" => Reason::Cut,
                    _ => Reason::Policy,
                };
                (reason, class.name().to_string())
            }
            None => (Reason::Cut, String::from("transport")),
        };
        Fail {
            reason,
            detail,
            why: e.to_string(),
        }
    }
}

impl From<TransportError> for Fail {
    fn from(e: TransportError) -> Fail {
        Fail::new(Reason::Cut, "transport", e.to_string())
    }
}

/// `telemetry push`.
pub async fn push(
    transport: &mut Transport,
    file: &str,
    device: &str,
    artifact: bool,
) -> Result<Reply, TransportError> {
    let mut link = match Link::of(transport).await {
        Ok(link) => link,
        Err(fail) => return Ok(fail.reply()),
    };
    match push_on(&mut link, Path::new(file), device, artifact).await {
        Ok(detail) => Ok(Reply::ack(ack::ok(VERB, Some(&detail)))),
        Err(fail) => Ok(fail.reply()),
    }
}

/// `telemetry pull`.
pub async fn pull(
    transport: &mut Transport,
    device: &str,
    out: &str,
) -> Result<Reply, TransportError> {
    let mut link = match Link::of(transport).await {
        Ok(link) => link,
        Err(fail) => return Ok(fail.reply()),
    };
    match pull_on(&mut link, device, Path::new(out)).await {
        Ok((detail, lines)) => Ok(Reply {
            ack: ack::ok(VERB, Some(&detail)),
            lines,
        }),
        Err(fail) => Ok(fail.reply()),
    }
}

async fn push_on(
    link: &mut Link<'_>,
    file: &Path,
    device: &str,
    artifact: bool,
) -> Result<String, Fail> {
    let meta = tokio::fs::metadata(file)
        .await
        .map_err(|e| Fail::io(&file.display().to_string(), e))?;
    let size = meta.len();
    if !artifact && size <= TEXT_MAX_BYTES {
        let bytes = tokio::fs::read(file)
            .await
            .map_err(|e| Fail::io(&file.display().to_string(), e))?;
        if let Ok(text) = String::from_utf8(bytes) {
            let segment = link.new_segment(device, "text/plain").await?;
            let records = text_records(&text)?;
            let n = link.append(device, &records).await?;
            return Ok(format!(
                "push device={device} segment={segment} records={n} bytes={size}"
            ));
        }
    }
    let segment = link.new_segment(device, "application/octet-stream").await?;
    let bar = progress(size, "push");
    let result = link.push_artifact(device, file, size, bar.as_ref()).await;
    if let Some(bar) = bar {
        bar.finish_and_clear();
    }
    let (id, bytes) = result?;
    Ok(format!(
        "push device={device} segment={segment} artifact={id} bytes={bytes}"
    ))
}

async fn pull_on(
    link: &mut Link<'_>,
    device: &str,
    out: &Path,
) -> Result<(String, Vec<String>), Fail> {
    tokio::fs::create_dir_all(out)
        .await
        .map_err(|e| Fail::io(&out.display().to_string(), e))?;
    let segments = link.segments(device).await?;
    let mut lines = Vec::new();
    let mut artifacts = 0usize;
    let mut records = 0usize;
    for segment in &segments {
        let data = link.read_segment(device, segment).await?;
        let jsonl = out.join(format!("{segment}.jsonl"));
        write_file(&jsonl, &data).await?;
        lines.push(jsonl.display().to_string());
        let parsed = parse_segment(&data);
        records += parsed.records;
        if let Some(text) = parsed.text {
            let txt = out.join(format!("{segment}.txt"));
            write_file(&txt, text.as_bytes()).await?;
            lines.push(txt.display().to_string());
        }
        for art in parsed.artifacts {
            let id = format!("{segment}.{}", art.seq);
            let path = out.join(format!("{id}.bin"));
            let total: u64 = art.chunks.iter().map(|c| c.len).sum();
            let bar = progress(total, "pull");
            let got = link
                .pull_artifact(device, &id, &path, &art, bar.as_ref())
                .await;
            if let Some(bar) = bar {
                bar.finish_and_clear();
            }
            if let Err(fail) = got {
                let _ = tokio::fs::remove_file(&path).await;
                return Err(fail);
            }
            artifacts += 1;
            lines.push(path.display().to_string());
        }
    }
    let detail = format!(
        "pull device={device} segments={} records={records} artifacts={artifacts} out={}",
        segments.len(),
        out.display()
    );
    Ok((detail, lines))
}

async fn write_file(path: &Path, data: &[u8]) -> Result<(), Fail> {
    tokio::fs::write(path, data)
        .await
        .map_err(|e| Fail::io(&path.display().to_string(), e))
}

fn progress(total: u64, what: &str) -> Option<indicatif::ProgressBar> {
    if total < PROGRESS_MIN_BYTES {
        return None;
    }
    let bar = indicatif::ProgressBar::new(total);
    let style = indicatif::ProgressStyle::with_template(
        "{msg} [{bar:40}] {bytes}/{total_bytes} {bytes_per_sec} eta {eta}",
    )
    .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar());
    bar.set_style(style);
    bar.set_message(what.to_string());
    Some(bar)
}

/// The text as push records, each within [`RECORD_BYTES`].
fn text_records(text: &str) -> Result<Vec<Vec<u8>>, Fail> {
    let mut out = Vec::new();
    let mut rest = text;
    let mut seq = 1u64;
    // Each pass takes at least one character off `rest`.
    while let Some(first) = rest.chars().next().map(char::len_utf8) {
        let mut take = rest.len().min(RECORD_BYTES - 256);
        // Halve until the encoded record fits; one character always does.
        let line = loop {
            while !rest.is_char_boundary(take) {
                take -= 1;
            }
            take = take.max(first);
            let record = serde_json::json!({
                "schema": "cohsh-telemetry-push/v1", "seq": seq,
                "mime": "text/plain", "payload": &rest[..take],
            });
            let line = serde_json::to_vec(&record)
                .map_err(|e| Fail::new(Reason::Policy, "invalid-record", e.to_string()))?;
            if line.len() <= RECORD_BYTES || take == first {
                break line;
            }
            take /= 2;
        };
        rest = &rest[take..];
        out.push(line);
        seq += 1;
    }
    Ok(out)
}

/// One chunk of an artifact, as its reference record names it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChunkRef {
    pub off: u64,
    pub len: u64,
    pub sha256: String,
}

/// An artifact found in a segment: the `seq` of its first record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ArtifactRef {
    pub seq: u64,
    pub chunks: Vec<ChunkRef>,
}

/// What a segment holds, as a pull sees it.
#[derive(Debug, Default)]
pub struct ParsedSegment {
    pub records: usize,
    /// The push records' payloads joined, when there are any.
    pub text: Option<String>,
    pub artifacts: Vec<ArtifactRef>,
}

/// Splits a segment's records into push text and artifact runs.
pub fn parse_segment(data: &[u8]) -> ParsedSegment {
    #[derive(serde::Deserialize)]
    struct Rec {
        schema: String,
        seq: u64,
        #[serde(default)]
        payload: Option<serde_json::Value>,
        #[serde(default)]
        off: Option<u64>,
        #[serde(default)]
        len: Option<u64>,
        #[serde(default)]
        sha256: Option<String>,
    }
    let mut parsed = ParsedSegment::default();
    let mut text: Option<String> = None;
    for line in data.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
        parsed.records += 1;
        let Ok(r) = serde_json::from_slice::<Rec>(line) else {
            continue;
        };
        match r.schema.as_str() {
            "cohsh-telemetry-push/v1" => {
                let t = text.get_or_insert_with(String::new);
                match r.payload {
                    Some(serde_json::Value::String(s)) => t.push_str(&s),
                    Some(other) => t.push_str(&other.to_string()),
                    None => {}
                }
            }
            "coh-ref-c/v1" => {
                let (Some(off), Some(len), Some(sha256)) = (r.off, r.len, r.sha256) else {
                    continue;
                };
                let chunk = ChunkRef { off, len, sha256 };
                let continues = parsed.artifacts.last().is_some_and(|a| {
                    let end = a.chunks.last().map_or(0, |c| c.off + c.len);
                    a.seq + a.chunks.len() as u64 == r.seq && end == off && off > 0
                });
                if continues {
                    if let Some(a) = parsed.artifacts.last_mut() {
                        a.chunks.push(chunk);
                    }
                } else if off == 0 {
                    parsed.artifacts.push(ArtifactRef {
                        seq: r.seq,
                        chunks: vec![chunk],
                    });
                }
            }
            _ => {}
        }
    }
    parsed.text = text;
    parsed
}

/// Checks bytes against an artifact's chunk digests as they stream by.
struct Verifier<'a> {
    chunks: &'a [ChunkRef],
    index: usize,
    in_chunk: u64,
    hasher: Sha256,
}

impl<'a> Verifier<'a> {
    fn new(art: &'a ArtifactRef) -> Verifier<'a> {
        Verifier {
            chunks: &art.chunks,
            index: 0,
            in_chunk: 0,
            hasher: Sha256::new(),
        }
    }

    fn update(&mut self, mut data: &[u8]) -> Result<(), Fail> {
        // Each pass consumes at least one byte or fails.
        while !data.is_empty() {
            let Some(chunk) = self.chunks.get(self.index) else {
                return Err(corrupt("more bytes than the reference records name"));
            };
            let room = (chunk.len - self.in_chunk) as usize;
            let take = room.min(data.len());
            self.hasher.update(&data[..take]);
            self.in_chunk += take as u64;
            data = &data[take..];
            if self.in_chunk == chunk.len {
                let digest = std::mem::take(&mut self.hasher).finalize();
                let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(digest);
                if b64 != chunk.sha256 {
                    return Err(corrupt(&format!("chunk at {} fails its sha256", chunk.off)));
                }
                self.index += 1;
                self.in_chunk = 0;
            }
        }
        Ok(())
    }

    fn finish(&self) -> Result<(), Fail> {
        if self.index != self.chunks.len() {
            return Err(corrupt("artifact ended early"));
        }
        Ok(())
    }
}

fn corrupt(why: &str) -> Fail {
    Fail::new(Reason::Policy, "verify-failed", why)
}

/// Reads a file block by block into `each`.
async fn read_blocks(path: &Path, tx: mpsc::Sender<Bytes>) -> Result<u64, Fail> {
    let mut f = tokio::fs::File::open(path)
        .await
        .map_err(|e| Fail::io(&path.display().to_string(), e))?;
    let mut total = 0u64;
    // Each pass reads one block; the file's end ends it.
    loop {
        let mut buf = vec![0u8; BLOCK_BYTES];
        let mut filled = 0;
        while filled < buf.len() {
            let n = f
                .read(&mut buf[filled..])
                .await
                .map_err(|e| Fail::io(&path.display().to_string(), e))?;
            if n == 0 {
                break;
            }
            filled += n;
        }
        if filled == 0 {
            return Ok(total);
        }
        buf.truncate(filled);
        total += filled as u64;
        if tx.send(Bytes::from(buf)).await.is_err() {
            return Ok(total);
        }
    }
}

/// How telemetry reaches the hive.
enum Link<'a> {
    NineP(&'a mut NinePConsole, Client),
    Rest(&'a mut RestConsole),
}

impl<'a> Link<'a> {
    async fn of(transport: &'a mut Transport) -> Result<Link<'a>, Fail> {
        match transport {
            Transport::Tcp(_) => Err(Fail::new(
                Reason::Policy,
                "unsupported-transport",
                "the tcp console cannot carry telemetry files; use --transport 9p or rest",
            )),
            Transport::NineP(t) => {
                let client = t.client().await?;
                Ok(Link::NineP(t, client))
            }
            Transport::Rest(t) => Ok(Link::Rest(t)),
        }
    }

    async fn new_segment(&mut self, device: &str, mime: &str) -> Result<String, Fail> {
        match self {
            Link::NineP(_, c) => {
                let path = format!("/queen/telemetry/{device}/ctl");
                let f = c.open(&path, OpenMode::ReadWrite).await?;
                let line = serde_json::json!({"new": "segment", "mime": mime}).to_string();
                let written = f.write_at(0, line.as_bytes()).await;
                let id = match written {
                    Ok(_) => f.read_at(0, 64).await,
                    Err(e) => Err(e),
                };
                let _ = f.close().await;
                Ok(String::from_utf8_lossy(&id?).trim().to_string())
            }
            Link::Rest(r) => {
                let body = serde_json::json!({ "mime": mime });
                let uri = format!("/v1/telemetry/{device}/segment");
                let v = rest_json(r, "POST", &uri, body).await?;
                Ok(v["segment"].as_str().unwrap_or("").to_string())
            }
        }
    }

    async fn append(&mut self, device: &str, records: &[Vec<u8>]) -> Result<usize, Fail> {
        match self {
            Link::NineP(_, c) => {
                let latest = c
                    .read_all(&format!("/queen/telemetry/{device}/latest"), 64)
                    .await?;
                let seg = String::from_utf8_lossy(&latest).trim().to_string();
                let path = format!("/queen/telemetry/{device}/seg/{seg}");
                let f = c.open(&path, OpenMode::Write).await?;
                let mut n = 0;
                for r in records {
                    if let Err(e) = f.write_at(0, r).await {
                        let _ = f.close().await;
                        return Err(e.into());
                    }
                    n += 1;
                }
                let _ = f.close().await;
                Ok(n)
            }
            Link::Rest(r) => {
                let mut n = 0;
                let mut batch: Vec<serde_json::Value> = Vec::new();
                let mut bytes = 0;
                for (i, rec) in records.iter().enumerate() {
                    let v: serde_json::Value = serde_json::from_slice(rec)
                        .map_err(|e| Fail::new(Reason::Policy, "invalid-record", e.to_string()))?;
                    bytes += rec.len();
                    batch.push(v);
                    let last = i + 1 == records.len();
                    if last || batch.len() == REST_BATCH || bytes >= REST_BATCH_BYTES {
                        let body = serde_json::json!({ "records": std::mem::take(&mut batch) });
                        let uri = format!("/v1/telemetry/{device}/records");
                        let v = rest_json(r, "POST", &uri, body).await?;
                        n += v["count"].as_u64().unwrap_or(0) as usize;
                        bytes = 0;
                    }
                }
                Ok(n)
            }
        }
    }

    async fn segments(&mut self, device: &str) -> Result<Vec<String>, Fail> {
        let path = format!("/queen/telemetry/{device}/seg");
        match self {
            Link::NineP(_, c) => Ok(c.ls(&path).await?),
            Link::Rest(r) => {
                let uri = format!("/v1/fs/ls?path={path}");
                let v = rest_json(r, "GET", &uri, serde_json::Value::Null).await?;
                Ok(string_lines(&v))
            }
        }
    }

    async fn read_segment(&mut self, device: &str, segment: &str) -> Result<Vec<u8>, Fail> {
        let path = format!("/queen/telemetry/{device}/seg/{segment}");
        match self {
            Link::NineP(_, c) => Ok(c.read_all(&path, SEGMENT_MAX_BYTES).await?),
            Link::Rest(r) => {
                let uri = format!("/v1/fs/cat?path={path}&max_bytes={SEGMENT_MAX_BYTES}");
                let v = rest_json(r, "GET", &uri, serde_json::Value::Null).await?;
                let mut out = Vec::new();
                for line in string_lines(&v) {
                    out.extend_from_slice(line.as_bytes());
                    out.push(b'\n');
                }
                Ok(out)
            }
        }
    }

    async fn push_artifact(
        &mut self,
        device: &str,
        file: &Path,
        size: u64,
        bar: Option<&indicatif::ProgressBar>,
    ) -> Result<(String, u64), Fail> {
        let (tx, mut rx) = mpsc::channel::<Bytes>(2);
        let path: PathBuf = file.to_path_buf();
        let reader = tokio::spawn(async move { read_blocks(&path, tx).await });
        let result = match self {
            Link::NineP(t, _) => {
                let client = t.dedicated(BLOCK_BYTES as u32, IO_TIMEOUT).await?;
                let path = format!("/queen/telemetry/{device}/artifact");
                let result = async {
                    let f = client.open(&path, OpenMode::ReadWrite).await?;
                    let block = f.iounit().max(1) as usize;
                    let mut off = 0u64;
                    // Each pass sends one file block; the reader's end ends it.
                    while let Some(data) = rx.recv().await {
                        for piece in data.chunks(block) {
                            let mut sent = 0;
                            while sent < piece.len() {
                                let n = f.write_at(off, &piece[sent..]).await? as usize;
                                if n == 0 {
                                    return Err(Fail::new(Reason::Cut, "short-write", "0 taken"));
                                }
                                sent += n;
                                off += n as u64;
                            }
                        }
                        if let Some(bar) = bar {
                            bar.set_position(off);
                        }
                    }
                    let id = f.read_at(0, 64).await?;
                    let _ = f.close().await;
                    Ok((String::from_utf8_lossy(&id).trim().to_string(), off))
                }
                .await;
                client.close();
                result
            }
            Link::Rest(r) => {
                let uri = format!("/v1/telemetry/{device}/artifact");
                let body = ChannelBody {
                    rx,
                    sent: 0,
                    bar: bar.cloned(),
                };
                let (status, body) = rest_stream(r, "PUT", &uri, Some((body, size))).await?;
                let v = json_answer(status, &body)?;
                let id = v["artifact"].as_str().unwrap_or("").to_string();
                Ok((id, v["bytes"].as_u64().unwrap_or(0)))
            }
        };
        match reader.await {
            Ok(Ok(_)) => {}
            Ok(Err(fail)) => return Err(fail),
            Err(e) => return Err(Fail::new(Reason::Policy, "io", e.to_string())),
        }
        result
    }

    async fn pull_artifact(
        &mut self,
        device: &str,
        id: &str,
        out: &Path,
        art: &ArtifactRef,
        bar: Option<&indicatif::ProgressBar>,
    ) -> Result<(), Fail> {
        let mut file = tokio::fs::File::create(out)
            .await
            .map_err(|e| Fail::io(&out.display().to_string(), e))?;
        let mut verify = Verifier::new(art);
        let mut written = 0u64;
        match self {
            Link::NineP(t, _) => {
                let client = t.dedicated(BLOCK_BYTES as u32, IO_TIMEOUT).await?;
                let path = format!("/queen/telemetry/{device}/artifacts/{id}");
                let result = async {
                    let f = client.open(&path, OpenMode::Read).await?;
                    let block = f.iounit();
                    // Each pass reads one block; an empty read ends it.
                    loop {
                        let data = f.read_at(written, block).await?;
                        if data.is_empty() {
                            break;
                        }
                        verify.update(&data)?;
                        file.write_all(&data)
                            .await
                            .map_err(|e| Fail::io(&out.display().to_string(), e))?;
                        written += data.len() as u64;
                        if let Some(bar) = bar {
                            bar.set_position(written);
                        }
                    }
                    let _ = f.close().await;
                    Ok::<(), Fail>(())
                }
                .await;
                client.close();
                result?;
            }
            Link::Rest(r) => {
                let uri = format!("/v1/telemetry/{device}/artifacts/{id}");
                let (authority, prefix, token) = r.endpoint().map_err(Fail::from)?;
                let mut sender = crate::rest::connect::<ChannelBody>(&authority).await?;
                let req = hyper::Request::builder()
                    .method("GET")
                    .uri(format!("{prefix}{uri}"))
                    .header("host", &authority)
                    .header("authorization", format!("Bearer {token}"))
                    .body(ChannelBody::empty())
                    .map_err(|e| Fail::new(Reason::Policy, "request", e.to_string()))?;
                let resp = tokio::time::timeout(IO_TIMEOUT, sender.send_request(req))
                    .await
                    .map_err(|_| Fail::new(Reason::Cut, "timeout", "no answer from the gateway"))?
                    .map_err(|e| Fail::new(Reason::Cut, "transport", e.to_string()))?;
                let status = resp.status().as_u16();
                let is_bytes = resp
                    .headers()
                    .get("content-type")
                    .is_some_and(|v| v.as_bytes() == b"application/octet-stream");
                let mut body = resp.into_body();
                if status != 200 || !is_bytes {
                    let b = body
                        .collect()
                        .await
                        .map_err(|e| Fail::new(Reason::Cut, "transport", e.to_string()))?;
                    json_answer(status, &b.to_bytes())?;
                    return Err(Fail::new(Reason::Policy, "protocol", "no artifact bytes"));
                }
                // Each pass takes one frame; the body's end (or a stall of
                // IO_TIMEOUT) ends it.
                while let Some(frame) = tokio::time::timeout(IO_TIMEOUT, body.frame())
                    .await
                    .map_err(|_| Fail::new(Reason::Cut, "stream-cut", "read-back stalled"))?
                {
                    let frame = frame.map_err(|e| {
                        Fail::new(Reason::Cut, "stream-cut", format!("read-back cut: {e}"))
                    })?;
                    let Ok(data) = frame.into_data() else {
                        continue;
                    };
                    verify.update(&data)?;
                    file.write_all(&data)
                        .await
                        .map_err(|e| Fail::io(&out.display().to_string(), e))?;
                    written += data.len() as u64;
                    if let Some(bar) = bar {
                        bar.set_position(written);
                    }
                }
            }
        }
        verify.finish()?;
        file.flush()
            .await
            .map_err(|e| Fail::io(&out.display().to_string(), e))?;
        Ok(())
    }
}

fn string_lines(v: &serde_json::Value) -> Vec<String> {
    v["lines"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|l| l.as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default()
}

/// The gateway's JSON answer, or its error as a [`Fail`].
fn json_answer(status: u16, body: &[u8]) -> Result<serde_json::Value, Fail> {
    let v: serde_json::Value = serde_json::from_slice(body).map_err(|_| {
        Fail::new(
            Reason::Policy,
            "protocol",
            format!("gateway answered {status} without JSON"),
        )
    })?;
    if status == 200 && v["status"] == "OK" {
        return Ok(v);
    }
    let text = v["error"].as_str().unwrap_or("no error text");
    let reason = match status {
        429 => Reason::Busy,
        503 => Reason::Cut,
        _ if text.contains("reason=quota") => Reason::Quota,
        _ if text.contains("reason=cut") => Reason::Cut,
        _ => Reason::Policy,
    };
    let detail = text
        .split(' ')
        .find_map(|w| w.strip_prefix("detail="))
        .unwrap_or("refused");
    Err(Fail::new(
        reason,
        detail,
        format!("gateway answered {status}: {text}"),
    ))
}

async fn rest_json(
    r: &mut RestConsole,
    method: &str,
    uri: &str,
    body: serde_json::Value,
) -> Result<serde_json::Value, Fail> {
    let bytes = if body.is_null() {
        Vec::new()
    } else {
        body.to_string().into_bytes()
    };
    let (status, body) = r.exchange_raw(method, uri, bytes).await?;
    json_answer(status, &body)
}

/// One request with a streamed body on a fresh connection; the answer is
/// read whole (it is a small JSON object).
async fn rest_stream(
    r: &mut RestConsole,
    method: &str,
    uri: &str,
    body: Option<(ChannelBody, u64)>,
) -> Result<(u16, Vec<u8>), Fail> {
    let (authority, prefix, token) = r.endpoint().map_err(Fail::from)?;
    let mut sender = crate::rest::connect::<ChannelBody>(&authority).await?;
    let mut req = hyper::Request::builder()
        .method(method)
        .uri(format!("{prefix}{uri}"))
        .header("host", &authority)
        .header("authorization", format!("Bearer {token}"))
        .header("content-type", "application/octet-stream");
    let body = match body {
        Some((b, len)) => {
            req = req.header("content-length", len.to_string());
            b
        }
        None => ChannelBody::empty(),
    };
    let req = req
        .body(body)
        .map_err(|e| Fail::new(Reason::Policy, "request", e.to_string()))?;
    let resp = sender
        .send_request(req)
        .await
        .map_err(|e| Fail::new(Reason::Cut, "transport", e.to_string()))?;
    let status = resp.status().as_u16();
    let body = resp
        .into_body()
        .collect()
        .await
        .map_err(|e| Fail::new(Reason::Cut, "transport", e.to_string()))?;
    Ok((status, body.to_bytes().to_vec()))
}

/// A request body fed block by block from the file reader.
pub struct ChannelBody {
    rx: mpsc::Receiver<Bytes>,
    sent: u64,
    bar: Option<indicatif::ProgressBar>,
}

impl ChannelBody {
    fn empty() -> ChannelBody {
        let (_, rx) = mpsc::channel(1);
        ChannelBody {
            rx,
            sent: 0,
            bar: None,
        }
    }
}

impl hyper::body::Body for ChannelBody {
    type Data = Bytes;
    type Error = std::io::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, std::io::Error>>> {
        match self.rx.poll_recv(cx) {
            Poll::Ready(Some(data)) => {
                self.sent += data.len() as u64;
                if let Some(bar) = &self.bar {
                    bar.set_position(self.sent);
                }
                Poll::Ready(Some(Ok(Frame::data(data))))
            }
            Poll::Ready(None) => Poll::Ready(None),
            Poll::Pending => Poll::Pending,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_is_cut_into_records_within_the_bound() {
        let text = "line one\n".repeat(2000) + &"\u{1}é".repeat(3000);
        let records = text_records(&text).unwrap();
        assert!(records.len() > 1);
        let mut joined = String::new();
        for (i, r) in records.iter().enumerate() {
            assert!(r.len() <= RECORD_BYTES, "record {i} is {} bytes", r.len());
            let v: serde_json::Value = serde_json::from_slice(r).unwrap();
            assert_eq!(v["seq"], i as u64 + 1);
            joined.push_str(v["payload"].as_str().unwrap());
        }
        assert_eq!(joined, text);
    }

    #[test]
    fn segments_split_into_text_and_artifacts() {
        let lines = [
            r#"{"schema":"cohsh-telemetry-push/v1","seq":1,"mime":"t/p","payload":"ab"}"#,
            r#"{"schema":"coh-ref-c/v1","seq":2,"off":0,"len":3,"sha256":"x"}"#,
            r#"{"schema":"coh-ref-c/v1","seq":3,"off":3,"len":4,"sha256":"y"}"#,
            r#"{"schema":"coh-ref-c/v1","seq":4,"off":0,"len":5,"sha256":"z"}"#,
        ];
        let data = (lines.join("\n") + "\n").into_bytes();
        let data = data.as_slice();
        let p = parse_segment(data);
        assert_eq!(p.records, 4);
        assert_eq!(p.text.as_deref(), Some("ab"));
        assert_eq!(p.artifacts.len(), 2);
        assert_eq!(p.artifacts[0].seq, 2);
        assert_eq!(p.artifacts[0].chunks.len(), 2);
        assert_eq!(p.artifacts[1].seq, 4);
    }

    #[test]
    fn the_verifier_refuses_a_wrong_digest() {
        let good = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(Sha256::digest(b"abc"));
        let art = ArtifactRef {
            seq: 1,
            chunks: vec![ChunkRef {
                off: 0,
                len: 3,
                sha256: good,
            }],
        };
        let mut v = Verifier::new(&art);
        v.update(b"ab").unwrap();
        v.update(b"c").unwrap();
        v.finish().unwrap();
        let mut v = Verifier::new(&art);
        assert!(v.update(b"abd").is_err());
    }
}
