//! The storage contract behind telemetry ingest, and an in-memory store.
//!
//! [`IngestStore`] is what the core asks of the edge: create and close
//! segments, append records durably, read them back, stage artifact chunks
//! and commit their reference records. The core decides *what* happens
//! (names, sequence numbers, quotas, evictions); a store only makes it
//! durable and reports how long that took. A method that returns `Ok` for a
//! durable write has synced it: the core acknowledges only after that.
//!
//! [`MemIngestStore`] keeps everything in memory for core tests and
//! diskless runs; clones share one state, so a test can "restart" a hive on
//! the same data or damage a chunk. It is not durable and not bounded.

use super::record::{self, ChunkRef};
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};

/// A position at a record boundary of a segment: `view` is the offset in
/// the bytes a reader sees (records joined by newlines), `pos` is
/// store-defined (a file offset, an index). [`SegCursor::START`] is the
/// first record.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SegCursor {
    pub view: u64,
    pub pos: u64,
}

impl SegCursor {
    pub const START: SegCursor = SegCursor { view: 0, pos: 0 };
}

/// Proof that a write reached stable storage, with the time it took
/// (write plus sync), for `/proc/ingest`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Durable {
    pub micros: u32,
}

/// Why a store could not do what was asked.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IngestFault {
    /// The segment, chunk or upload is not there.
    #[error("not found")]
    NotFound,
    /// Stored bytes fail their checksum or hash.
    #[error("corrupt: {0}")]
    Corrupt(&'static str),
    /// An I/O operation failed; `detail` is for the operator's log only.
    #[error("{op} failed: {detail}")]
    Io { op: &'static str, detail: String },
}

/// How a segment ended when it was closed (written into its trailer, so
/// a restart need not rescan closed segments).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SegmentSummary {
    pub records: u64,
    /// Bytes a reader sees: records plus one newline each.
    pub bytes: u64,
    pub next_seq: u64,
    /// Bytes of the artifacts the hive committed into the segment (its
    /// `coh-ref-c/v1` records' lengths), charged to the device's quota.
    pub artifact_bytes: u64,
}

/// One segment as found at recovery.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SegmentImage {
    pub seg: u64,
    pub mime: String,
    pub created_ms: u64,
    pub summary: SegmentSummary,
}

/// One device as found at recovery; segments in ascending order, the last
/// is the open one.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeviceImage {
    pub device: String,
    pub segments: Vec<SegmentImage>,
}

/// Durable effects of telemetry ingest. Device ids and segment numbers are
/// already validated by the core.
pub trait IngestStore: Send {
    /// Everything stored, after cutting torn tails and discarding
    /// unfinished uploads. Called once, before any other method.
    fn recover(&mut self) -> Result<Vec<DeviceImage>, IngestFault>;

    /// Closes segment `close` (when given) with its summary and creates
    /// segment `seg` of `device` (creating the device when it is new).
    /// Either both happen durably or, on error, neither is visible.
    fn roll_segment(
        &mut self,
        device: &str,
        close: Option<(u64, SegmentSummary)>,
        seg: u64,
        mime: &str,
        created_ms: u64,
    ) -> Result<Durable, IngestFault>;

    /// Appends one record durably (all or nothing across a crash).
    fn append(
        &mut self,
        device: &str,
        seg: u64,
        seq: u64,
        record: &[u8],
    ) -> Result<Durable, IngestFault>;

    /// Deletes a closed segment.
    fn delete_segment(&mut self, device: &str, seg: u64) -> Result<(), IngestFault>;

    /// The record at `at` and the cursor after it; `None` past the last.
    fn read_record(
        &mut self,
        device: &str,
        seg: u64,
        at: SegCursor,
    ) -> Result<Option<(Vec<u8>, SegCursor)>, IngestFault>;

    /// Starts staging artifact bytes under `upload`.
    fn upload_begin(&mut self, upload: u64) -> Result<(), IngestFault>;

    /// Adds bytes to the upload's current chunk.
    fn upload_write(&mut self, upload: u64, data: &[u8]) -> Result<(), IngestFault>;

    /// Ends the current chunk (at offset `off` of the artifact), stores it
    /// content-addressed and durably, and names it.
    fn upload_seal(&mut self, upload: u64, off: u64) -> Result<ChunkRef, IngestFault>;

    /// Appends one `coh-ref-c/v1` record per sealed chunk to the segment,
    /// with sequence numbers from `first_seq`, atomically and durably, and
    /// forgets the upload.
    fn upload_commit(
        &mut self,
        upload: u64,
        device: &str,
        seg: u64,
        first_seq: u64,
    ) -> Result<Durable, IngestFault>;

    /// Forgets an upload and whatever it staged that no record names.
    fn upload_abort(&mut self, upload: u64);

    /// Checks a stored chunk against its length and sha256.
    fn chunk_verify(&mut self, chunk: &ChunkRef) -> Result<(), IngestFault>;

    /// Reads `count` bytes of a chunk from `at` (within the chunk).
    fn chunk_read(
        &mut self,
        chunk: &ChunkRef,
        at: u64,
        count: usize,
        out: &mut Vec<u8>,
    ) -> Result<(), IngestFault>;
}

#[derive(Debug, Default)]
struct MemSegment {
    mime: String,
    created_ms: u64,
    records: Vec<Vec<u8>>,
    next_seq: u64,
    artifact_bytes: u64,
    closed: Option<SegmentSummary>,
}

#[derive(Debug, Default)]
struct MemUpload {
    chunk: Vec<u8>,
    sealed: Vec<ChunkRef>,
}

#[derive(Debug, Default)]
struct MemState {
    segments: BTreeMap<(String, u64), MemSegment>,
    chunks: HashMap<[u8; 32], Vec<u8>>,
    uploads: HashMap<u64, MemUpload>,
}

/// An in-memory [`IngestStore`]; clones share one state.
#[derive(Clone, Debug, Default)]
pub struct MemIngestStore {
    state: Arc<Mutex<MemState>>,
}

impl MemIngestStore {
    pub fn new() -> MemIngestStore {
        MemIngestStore::default()
    }

    fn lock(&self) -> MutexGuard<'_, MemState> {
        // A panic elsewhere while holding the lock leaves plain data behind.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Flips one byte of a stored chunk (tests of verified reads).
    pub fn corrupt_chunk(&self, sha256: &[u8; 32]) -> bool {
        let mut s = self.lock();
        match s.chunks.get_mut(sha256).and_then(|c| c.first_mut()) {
            Some(b) => {
                *b ^= 0xff;
                true
            }
            None => false,
        }
    }

    /// Chunks stored, for tests.
    pub fn chunk_count(&self) -> usize {
        self.lock().chunks.len()
    }
}

fn image(seg: u64, s: &MemSegment) -> SegmentImage {
    let bytes = s.records.iter().map(|r| r.len() as u64 + 1).sum();
    SegmentImage {
        seg,
        mime: s.mime.clone(),
        created_ms: s.created_ms,
        summary: s.closed.unwrap_or(SegmentSummary {
            records: s.records.len() as u64,
            bytes,
            next_seq: s.next_seq,
            artifact_bytes: s.artifact_bytes,
        }),
    }
}

impl IngestStore for MemIngestStore {
    fn recover(&mut self) -> Result<Vec<DeviceImage>, IngestFault> {
        let mut s = self.lock();
        s.uploads.clear();
        let mut out: Vec<DeviceImage> = Vec::new();
        let keys: Vec<(String, u64)> = s.segments.keys().cloned().collect();
        for (i, (device, seg)) in keys.iter().enumerate() {
            let newest = match keys.get(i + 1) {
                Some((d, _)) => d != device,
                None => true,
            };
            let m = s
                .segments
                .get_mut(&(device.clone(), *seg))
                .ok_or(IngestFault::NotFound)?;
            if newest {
                m.closed = None; // a restart reopens the newest segment
            }
            let img = image(*seg, m);
            match out.last_mut() {
                Some(d) if d.device == *device => d.segments.push(img),
                _ => out.push(DeviceImage {
                    device: device.clone(),
                    segments: vec![img],
                }),
            }
        }
        Ok(out)
    }

    fn roll_segment(
        &mut self,
        device: &str,
        close: Option<(u64, SegmentSummary)>,
        seg: u64,
        mime: &str,
        created_ms: u64,
    ) -> Result<Durable, IngestFault> {
        let mut s = self.lock();
        if let Some((prev, summary)) = close {
            let p = s
                .segments
                .get_mut(&(device.to_string(), prev))
                .ok_or(IngestFault::NotFound)?;
            p.closed = Some(summary);
        }
        let fresh = MemSegment {
            mime: mime.to_string(),
            created_ms,
            next_seq: 1,
            ..MemSegment::default()
        };
        s.segments.insert((device.to_string(), seg), fresh);
        Ok(Durable::default())
    }

    fn append(
        &mut self,
        device: &str,
        seg: u64,
        seq: u64,
        record: &[u8],
    ) -> Result<Durable, IngestFault> {
        let mut s = self.lock();
        let m = s
            .segments
            .get_mut(&(device.to_string(), seg))
            .ok_or(IngestFault::NotFound)?;
        m.records.push(record.to_vec());
        m.next_seq = seq + 1;
        Ok(Durable::default())
    }

    fn delete_segment(&mut self, device: &str, seg: u64) -> Result<(), IngestFault> {
        let mut s = self.lock();
        s.segments
            .remove(&(device.to_string(), seg))
            .map(|_| ())
            .ok_or(IngestFault::NotFound)
    }

    fn read_record(
        &mut self,
        device: &str,
        seg: u64,
        at: SegCursor,
    ) -> Result<Option<(Vec<u8>, SegCursor)>, IngestFault> {
        let s = self.lock();
        let m = s
            .segments
            .get(&(device.to_string(), seg))
            .ok_or(IngestFault::NotFound)?;
        let Some(r) = usize::try_from(at.pos).ok().and_then(|i| m.records.get(i)) else {
            return Ok(None);
        };
        let next = SegCursor {
            view: at.view + r.len() as u64 + 1,
            pos: at.pos + 1,
        };
        Ok(Some((r.clone(), next)))
    }

    fn upload_begin(&mut self, upload: u64) -> Result<(), IngestFault> {
        self.lock().uploads.insert(upload, MemUpload::default());
        Ok(())
    }

    fn upload_write(&mut self, upload: u64, data: &[u8]) -> Result<(), IngestFault> {
        let mut s = self.lock();
        let u = s.uploads.get_mut(&upload).ok_or(IngestFault::NotFound)?;
        u.chunk.extend_from_slice(data);
        Ok(())
    }

    fn upload_seal(&mut self, upload: u64, off: u64) -> Result<ChunkRef, IngestFault> {
        let mut s = self.lock();
        let u = s.uploads.get_mut(&upload).ok_or(IngestFault::NotFound)?;
        let bytes = std::mem::take(&mut u.chunk);
        let chunk = ChunkRef {
            off,
            len: bytes.len() as u64,
            sha256: Sha256::digest(&bytes).into(),
        };
        u.sealed.push(chunk);
        s.chunks.insert(chunk.sha256, bytes);
        Ok(chunk)
    }

    fn upload_commit(
        &mut self,
        upload: u64,
        device: &str,
        seg: u64,
        first_seq: u64,
    ) -> Result<Durable, IngestFault> {
        let mut s = self.lock();
        let u = s.uploads.remove(&upload).ok_or(IngestFault::NotFound)?;
        let m = s
            .segments
            .get_mut(&(device.to_string(), seg))
            .ok_or(IngestFault::NotFound)?;
        for (i, chunk) in u.sealed.iter().enumerate() {
            let seq = first_seq + i as u64;
            m.records.push(record::ref_record(seq, chunk).into_bytes());
            m.next_seq = seq + 1;
            m.artifact_bytes += chunk.len;
        }
        Ok(Durable::default())
    }

    fn upload_abort(&mut self, upload: u64) {
        self.lock().uploads.remove(&upload);
    }

    fn chunk_verify(&mut self, chunk: &ChunkRef) -> Result<(), IngestFault> {
        let s = self.lock();
        let bytes = s.chunks.get(&chunk.sha256).ok_or(IngestFault::NotFound)?;
        let digest: [u8; 32] = Sha256::digest(bytes).into();
        if bytes.len() as u64 != chunk.len || digest != chunk.sha256 {
            return Err(IngestFault::Corrupt("chunk-hash"));
        }
        Ok(())
    }

    fn chunk_read(
        &mut self,
        chunk: &ChunkRef,
        at: u64,
        count: usize,
        out: &mut Vec<u8>,
    ) -> Result<(), IngestFault> {
        let s = self.lock();
        let bytes = s.chunks.get(&chunk.sha256).ok_or(IngestFault::NotFound)?;
        let start = usize::try_from(at).unwrap_or(usize::MAX).min(bytes.len());
        let end = start.saturating_add(count).min(bytes.len());
        out.extend_from_slice(&bytes[start..end]);
        Ok(())
    }
}
