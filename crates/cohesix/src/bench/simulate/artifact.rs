//! Telemetry operations: segments, records and large artifacts.
//!
//! Each worker `worker-N` owns the device `bench-worker-N` under
//! `/queen/telemetry/`. A device's operations run one at a time (its
//! segment takes records in `seq` order), so each device has its own lock.
//!
//! A scenario operation (BENCHMARKS.md §2) creates a segment, reads
//! `latest` back, then carries the artifact:
//!
//! - reference mode (upstream's): one `coh-ref-c/v1` record per 16 MiB
//!   chunk, appended through the gateway; no artifact bytes move;
//! - real-bytes mode: the artifact's bytes are streamed in and read back,
//!   compared byte for byte. Through the gateway's artifact routes
//!   (`PUT /v1/telemetry/<device>/artifact`, `GET .../artifacts/<id>`) when
//!   it serves them (its bounds list the `telemetry` surface); against an
//!   older gateway, over Secure9P directly as queen (`<device>/artifact`
//!   and `artifacts/<id>`, as `docs/telemetry.md` describes). Segment and
//!   `latest` always go through the gateway.
//!
//! The artifact is a pure function of (seed, offset), so neither side holds
//! it in memory and a read of any size at any offset can be checked.

use super::rest::{Rest, RestError};
use base64::Engine as _;
use cohesix_client::{Client, OpenMode};
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Instant;

/// A device's open segment and the `seq` its next record takes.
#[derive(Debug, Default)]
pub struct Device {
    seg: Option<String>,
    next_seq: u64,
}

/// Per-device locks, created on first use.
#[derive(Default)]
pub struct Devices {
    map: Mutex<HashMap<String, Arc<tokio::sync::Mutex<Device>>>>,
}

impl Devices {
    pub fn get(&self, device: &str) -> Arc<tokio::sync::Mutex<Device>> {
        let mut map = match self.map.lock() {
            Ok(m) => m,
            Err(poisoned) => poisoned.into_inner(),
        };
        map.entry(device.to_string()).or_default().clone()
    }
}

/// Bytes moved in real-bytes mode.
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct ArtifactTotals {
    pub verified_ops: u64,
    pub bytes_streamed: u64,
    pub bytes_read_back: u64,
    pub stream_s: f64,
    pub read_back_s: f64,
}

fn device_dir(device: &str) -> String {
    format!("/queen/telemetry/{device}")
}

/// A new segment on `device`; its id.
pub async fn new_segment(rest: &Rest, device: &str, dev: &mut Device) -> Result<String, RestError> {
    dev.seg = None;
    let ctl = format!("{}/ctl", device_dir(device));
    let lines = rest
        .echo(&ctl, r#"{"new":"segment","mime":"text/plain"}"#)
        .await?;
    let seg = lines
        .first()
        .filter(|l| l.starts_with("seg-"))
        .cloned()
        .ok_or_else(|| bad_reply(format!("segment reply {lines:?}")))?;
    dev.seg = Some(seg.clone());
    dev.next_seq = 1;
    Ok(seg)
}

/// Appends one `cohsh-telemetry-push/v1` record (a segment first if the
/// device has none).
pub async fn append(rest: &Rest, device: &str, dev: &mut Device) -> Result<(), RestError> {
    let seg = match &dev.seg {
        Some(s) => s.clone(),
        None => new_segment(rest, device, dev).await?,
    };
    let seq = dev.next_seq;
    let line = format!(
        concat!(
            r#"{{"schema":"cohsh-telemetry-push/v1","seq":{seq},"mime":"text/plain","#,
            r#""payload":"bench sample {seq}"}}"#
        ),
        seq = seq
    );
    let path = format!("{}/seg/{seg}", device_dir(device));
    match rest.echo(&path, &line).await {
        Ok(_) => {
            dev.next_seq += 1;
            Ok(())
        }
        Err(e) => {
            // Full, evicted or unsure: start a fresh segment next time.
            dev.seg = None;
            Err(e)
        }
    }
}

/// Segment, `latest`, and the segment id it must name.
async fn segment_and_latest(
    rest: &Rest,
    device: &str,
    dev: &mut Device,
) -> Result<String, RestError> {
    let seg = new_segment(rest, device, dev).await?;
    let latest = rest
        .cat(&format!("{}/latest", device_dir(device)), 64)
        .await?;
    if latest.first() != Some(&seg) {
        return Err(RestError {
            kind: "latest-mismatch".into(),
            retryable: false,
            detail: format!("latest {latest:?}, created {seg}"),
        });
    }
    Ok(seg)
}

/// Reference mode: segment, `latest`, one reference record per chunk.
pub async fn reference_op(
    rest: &Rest,
    device: &str,
    dev: &mut Device,
    chunks: &[(u64, u64)],
) -> Result<(), RestError> {
    let seg = segment_and_latest(rest, device, dev).await?;
    let path = format!("{}/seg/{seg}", device_dir(device));
    for (i, &(off, len)) in chunks.iter().enumerate() {
        let seq = dev.next_seq;
        let digest = reference_digest(device, &seg, i);
        let line = format!(
            r#"{{"schema":"coh-ref-c/v1","seq":{seq},"off":{off},"len":{len},"sha256":"{digest}"}}"#
        );
        if let Err(e) = rest.echo(&path, &line).await {
            dev.seg = None;
            return Err(e);
        }
        dev.next_seq += 1;
    }
    Ok(())
}

/// The stand-in digest of a reference record: sha256 of its name, as
/// unpadded base64url (43 characters).
pub fn reference_digest(device: &str, seg: &str, chunk: usize) -> String {
    let hash = Sha256::digest(format!("{device}/{seg}/{chunk}").as_bytes());
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(hash)
}

/// Real-bytes mode: segment and `latest` through the gateway, then the
/// artifact streamed in and read back through the gateway's artifact
/// routes, or over Secure9P when `nine` is given.
pub async fn real_op(
    rest: &Rest,
    nine: Option<&Client>,
    device: &str,
    dev: &mut Device,
    bytes: u64,
    seed: u64,
    totals: &Mutex<ArtifactTotals>,
) -> Result<(), RestError> {
    segment_and_latest(rest, device, dev).await?;
    let dir = device_dir(device);

    let started = Instant::now();
    let id = match nine {
        Some(nine) => upload(nine, &format!("{dir}/artifact"), bytes, seed).await?,
        None => rest.put_artifact(device, bytes, seed).await?,
    };
    let streamed = started.elapsed().as_secs_f64();

    let started = Instant::now();
    let got = match nine {
        Some(nine) => read_back(nine, &format!("{dir}/artifacts/{id}"), bytes, seed).await?,
        None => rest.get_artifact(device, &id, bytes, seed).await?,
    };
    let read = started.elapsed().as_secs_f64();

    let mut t = match totals.lock() {
        Ok(t) => t,
        Err(poisoned) => poisoned.into_inner(),
    };
    t.verified_ops += 1;
    t.bytes_streamed += bytes;
    t.bytes_read_back += got;
    t.stream_s += streamed;
    t.read_back_s += read;
    Ok(())
}

async fn upload(nine: &Client, path: &str, bytes: u64, seed: u64) -> Result<String, RestError> {
    let file = nine
        .open(path, OpenMode::ReadWrite)
        .await
        .map_err(nine_error)?;
    let step = u64::from(file.iounit().max(1));
    let mut buf = vec![0u8; step as usize];
    let mut sent = 0u64;
    while sent < bytes {
        let n = (bytes - sent).min(step) as usize;
        fill_at(seed, sent, &mut buf[..n]);
        let wrote = match file.write_at(sent, &buf[..n]).await {
            Ok(w) => u64::from(w),
            Err(e) => {
                let _ = file.close().await;
                return Err(nine_error(e));
            }
        };
        if wrote != n as u64 {
            let _ = file.close().await;
            return Err(bad_reply(format!("short write {wrote} of {n} at {sent}")));
        }
        sent += wrote;
    }
    let reply = file.read_at(0, 128).await;
    let _ = file.close().await;
    let reply = reply.map_err(nine_error)?;
    let id = String::from_utf8_lossy(&reply).trim_end().to_string();
    if id.is_empty() {
        return Err(bad_reply("empty artifact id".into()));
    }
    Ok(id)
}

async fn read_back(nine: &Client, path: &str, bytes: u64, seed: u64) -> Result<u64, RestError> {
    let file = nine.open(path, OpenMode::Read).await.map_err(nine_error)?;
    let step = file.iounit().max(1);
    let mut expect = vec![0u8; step as usize];
    let mut got = 0u64;
    let result = loop {
        let data = match file.read_at(got, step).await {
            Ok(d) => d,
            Err(e) => break Err(nine_error(e)),
        };
        if data.is_empty() {
            break Ok(got);
        }
        if got + data.len() as u64 > bytes {
            break Err(mismatch(format!("more than {bytes} bytes came back")));
        }
        let want = &mut expect[..data.len()];
        fill_at(seed, got, want);
        if data != *want {
            break Err(mismatch(format!(
                "bytes differ in [{got}, +{})",
                data.len()
            )));
        }
        got += data.len() as u64;
    };
    let _ = file.close().await;
    let got = result?;
    if got != bytes {
        return Err(mismatch(format!("read back {got} of {bytes} bytes")));
    }
    Ok(got)
}

/// Bytes per frame of an upload body.
const BODY_FRAME: u64 = 256 << 10;

/// An HTTP request body that is the artifact itself, made frame by frame
/// as the connection takes it (never held whole).
pub struct ArtifactBody {
    seed: u64,
    sent: u64,
    total: u64,
}

impl ArtifactBody {
    pub fn new(seed: u64, total: u64) -> ArtifactBody {
        ArtifactBody {
            seed,
            sent: 0,
            total,
        }
    }
}

impl hyper::body::Body for ArtifactBody {
    type Data = bytes::Bytes;
    type Error = std::convert::Infallible;

    fn poll_frame(
        self: std::pin::Pin<&mut Self>,
        _cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<hyper::body::Frame<Self::Data>, Self::Error>>> {
        let this = self.get_mut();
        if this.sent >= this.total {
            return std::task::Poll::Ready(None);
        }
        // At most BODY_FRAME, so it fits a usize.
        let n = (this.total - this.sent).min(BODY_FRAME) as usize;
        let mut buf = vec![0u8; n];
        fill_at(this.seed, this.sent, &mut buf);
        this.sent += n as u64;
        let frame = hyper::body::Frame::data(bytes::Bytes::from(buf));
        std::task::Poll::Ready(Some(Ok(frame)))
    }

    fn is_end_stream(&self) -> bool {
        self.sent >= self.total
    }

    fn size_hint(&self) -> hyper::body::SizeHint {
        hyper::body::SizeHint::with_exact(self.total - self.sent)
    }
}

/// Checks `data`, which arrived at `offset`, against the artifact.
pub fn verify_at(seed: u64, offset: u64, data: &[u8], scratch: &mut Vec<u8>) -> bool {
    scratch.resize(data.len(), 0);
    fill_at(seed, offset, scratch);
    scratch[..] == *data
}

/// The artifact's bytes at `offset`: little-endian words of
/// splitmix64(seed + word index), so any range can be made on its own.
pub fn fill_at(seed: u64, offset: u64, buf: &mut [u8]) {
    let mut pos = offset;
    let mut i = 0;
    while i < buf.len() {
        let word = pos / 8;
        let skip = (pos % 8) as usize;
        let bytes = splitmix64(seed.wrapping_add(word)).to_le_bytes();
        let take = (8 - skip).min(buf.len() - i);
        buf[i..i + take].copy_from_slice(&bytes[skip..skip + take]);
        i += take;
        pos += take as u64;
    }
}

fn splitmix64(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

fn nine_error(e: cohesix_client::Error) -> RestError {
    let (kind, retryable) = match &e {
        cohesix_client::Error::Server { class, .. } => (format!("9p/{class}"), false),
        cohesix_client::Error::Timeout { .. } => ("timeout".to_string(), true),
        _ => ("9p/transport".to_string(), true),
    };
    RestError {
        kind,
        retryable,
        detail: e.to_string(),
    }
}

fn bad_reply(detail: String) -> RestError {
    RestError {
        kind: "bad-reply".into(),
        retryable: false,
        detail,
    }
}

fn mismatch(detail: String) -> RestError {
    RestError {
        kind: "verify-mismatch".into(),
        retryable: false,
        detail,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn artifact_bytes_depend_only_on_seed_and_offset() {
        let mut whole = vec![0u8; 100];
        fill_at(42, 0, &mut whole);
        for (off, len) in [(0usize, 7usize), (3, 20), (13, 87), (64, 1)] {
            let mut part = vec![0u8; len];
            fill_at(42, off as u64, &mut part);
            assert_eq!(part, whole[off..off + len], "range {off}+{len}");
        }
        let mut scratch = Vec::new();
        assert!(verify_at(42, 13, &whole[13..50], &mut scratch));
        assert!(!verify_at(42, 14, &whole[13..50], &mut scratch));
        let mut other = vec![0u8; 100];
        fill_at(43, 0, &mut other);
        assert_ne!(other, whole);
    }

    #[test]
    fn an_upload_body_is_the_artifact_frame_by_frame() {
        use http_body_util::BodyExt;
        let total = BODY_FRAME * 2 + 5;
        let body = ArtifactBody::new(9, total);
        assert_eq!(hyper::body::Body::size_hint(&body).exact(), Some(total));
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let got = rt.block_on(body.collect()).unwrap().to_bytes();
        let mut want = vec![0u8; total as usize];
        fill_at(9, 0, &mut want);
        assert_eq!(got[..], want[..]);
    }

    #[test]
    fn reference_digests_are_43_base64url_characters() {
        let d = reference_digest("bench-worker-1", "seg-000001", 3);
        assert_eq!(d.len(), 43);
        assert!(d
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'));
        assert_ne!(d, reference_digest("bench-worker-1", "seg-000001", 4));
    }
}
