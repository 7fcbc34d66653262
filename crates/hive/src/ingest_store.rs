//! Telemetry ingest on disk: the edge's [`IngestStore`].
//!
//! Layout under `<data-dir>/telemetry/`:
//! - `devices/<device>/seg-000001.log`: one file per segment. It starts
//!   with the 8-byte magic `COHSEG1\n`, then frames. A frame is a 17-byte
//!   header — payload length (u32 LE), kind (u8), seq (u64 LE), CRC-32 of
//!   kind, seq and payload (u32 LE) — then the payload. Kinds: `META` (first
//!   frame: mime and creation time), `RECORD` (one record), `GROUP` (one
//!   record of an artifact commit, valid only once its `COMMIT` follows),
//!   `COMMIT` (the group's record count), `CLOSE` (trailer written when the
//!   next segment is created: records, bytes, next seq, artifact bytes).
//! - `chunks/<sha256 hex>`: artifact chunks, content-addressed.
//! - `chunks.redb`: how many committed reference records name each chunk.
//! - `uploads/<id>.part`, `<id>.refs`: what an upload staged; discarded at
//!   start.
//!
//! Durability: every acknowledged write is synced before the core sees
//! `Ok` — one `fdatasync` per record append, per artifact commit (the whole
//! group), per sealed chunk; segment creation writes a temporary file,
//! syncs it, renames it and syncs the directory. Nothing is group-committed
//! across requests.
//!
//! Recovery derives everything from the files: device and segment lists
//! from the directory, next segment number from the newest file, closed
//! segments' summaries from their `CLOSE` trailer, and the newest segment's
//! state (records, bytes, next seq) from a full scan that cuts a torn tail
//! (an incomplete frame, a CRC mismatch, or a `GROUP` run without its
//! `COMMIT`) and strips an unacknowledged `CLOSE`.
//!
//! Chunk lifetime: a commit counts its chunks up *before* it writes its
//! records, an eviction counts them down *after* the segment file is gone,
//! so a crash can only over-count (a chunk kept too long), never delete a
//! chunk a record still names. A chunk is deleted when its count reaches
//! zero and no live upload has staged it; at start, chunks with no count
//! (staged by uploads that never committed) are deleted.
//!
//! # Limitations
//!
//! - Only the hive's own commits count: a client that appends its own
//!   `coh-ref-c/v1` record naming a stored chunk does not keep it alive.
//! - TODO-hardening: the I/O runs under the hive lock on the runtime's
//!   threads; a slow disk stalls every session while a sync is in flight.

use cohesix_core::ingest::record::{self, ChunkRef};
use cohesix_core::ingest::{
    DeviceImage, Durable, IngestFault, IngestStore, SegCursor, SegmentImage, SegmentSummary,
};
use redb::{Database, ReadableTable, TableDefinition};
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::fs::{self, File, OpenOptions};
use std::io::{BufReader, BufWriter, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::time::Instant;

/// First bytes of every segment file.
pub const MAGIC: &[u8; 8] = b"COHSEG1\n";
/// Frame header: len u32, kind u8, seq u64, crc u32.
pub const HEADER: usize = 17;
/// Largest frame payload accepted when reading: above any record bound,
/// so a larger length can only be damage.
const MAX_PAYLOAD: u32 = 1 << 20;
/// Segment files kept open at once.
const OPEN_FILES: usize = 64;
/// Read buffer for hashing chunks and scanning segments.
const IO_BUF: usize = 256 * 1024;

/// Frame kinds.
pub mod kind {
    pub const META: u8 = 1;
    pub const RECORD: u8 = 2;
    pub const GROUP: u8 = 3;
    pub const COMMIT: u8 = 4;
    pub const CLOSE: u8 = 5;
}

/// Length of a `CLOSE` frame: header plus four u64.
const CLOSE_FRAME: u64 = HEADER as u64 + 32;
/// Committed reference records per chunk, keyed by sha256.
const CHUNK_REFS: TableDefinition<&[u8], u64> = TableDefinition::new("chunk_refs");

/// Errors opening the telemetry directory.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    #[error("cannot prepare telemetry directory {path}: {source}")]
    Dir {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot open chunk index {path}: {detail}")]
    Index { path: PathBuf, detail: String },
}

struct Upload {
    part: File,
    part_path: PathBuf,
    refs: BufWriter<File>,
    refs_path: PathBuf,
    hasher: Sha256,
    fill: u64,
}

/// The on-disk ingest store.
pub struct DiskIngest {
    devices: PathBuf,
    chunks: PathBuf,
    uploads_dir: PathBuf,
    /// Valid length of every known segment file.
    ends: HashMap<(String, u64), u64>,
    files: HashMap<(String, u64), File>,
    uploads: HashMap<u64, Upload>,
    /// The chunk file read last (read-back is sequential).
    chunk_file: Option<([u8; 32], File)>,
    /// Reference counts of chunks (`chunks.redb`).
    index: Database,
    /// Chunks staged by live uploads, not yet committed: never deleted.
    pending: HashMap<[u8; 32], u32>,
}

fn io(op: &'static str) -> impl Fn(std::io::Error) -> IngestFault {
    move |e| IngestFault::Io {
        op,
        detail: e.to_string(),
    }
}

fn micros(start: Instant) -> Durable {
    Durable {
        micros: u32::try_from(start.elapsed().as_micros()).unwrap_or(u32::MAX),
    }
}

impl DiskIngest {
    /// Opens (creating when missing) the store under `root`.
    pub fn open(root: &Path) -> Result<DiskIngest, OpenError> {
        let (devices, chunks, uploads_dir) = (
            root.join("devices"),
            root.join("chunks"),
            root.join("uploads"),
        );
        for dir in [&devices, &chunks, &uploads_dir] {
            fs::create_dir_all(dir).map_err(|source| OpenError::Dir {
                path: dir.clone(),
                source,
            })?;
        }
        let path = root.join("chunks.redb");
        let index = Database::create(&path).map_err(|e| OpenError::Index {
            path: path.clone(),
            detail: e.to_string(),
        })?;
        Ok(DiskIngest {
            devices,
            chunks,
            uploads_dir,
            ends: HashMap::new(),
            files: HashMap::new(),
            uploads: HashMap::new(),
            chunk_file: None,
            index,
            pending: HashMap::new(),
        })
    }

    fn seg_path(&self, device: &str, seg: u64) -> PathBuf {
        self.devices
            .join(device)
            .join(format!("{}.log", record::segment_name(seg)))
    }

    fn chunk_path(&self, sha256: &[u8; 32]) -> PathBuf {
        self.chunks.join(hex::encode(sha256))
    }

    fn file(&mut self, device: &str, seg: u64) -> Result<&File, IngestFault> {
        let key = (device.to_string(), seg);
        if !self.files.contains_key(&key) {
            if !self.ends.contains_key(&key) {
                return Err(IngestFault::NotFound);
            }
            let f = OpenOptions::new()
                .read(true)
                .write(true)
                .open(self.seg_path(device, seg))
                .map_err(|e| match e.kind() {
                    std::io::ErrorKind::NotFound => IngestFault::NotFound,
                    _ => io("open segment")(e),
                })?;
            if self.files.len() >= OPEN_FILES {
                self.files.clear();
            }
            self.files.insert(key.clone(), f);
        }
        self.files.get(&key).ok_or(IngestFault::NotFound)
    }

    fn end(&self, device: &str, seg: u64) -> Result<u64, IngestFault> {
        self.ends
            .get(&(device.to_string(), seg))
            .copied()
            .ok_or(IngestFault::NotFound)
    }

    /// Writes `bytes` at the segment's end and syncs; on failure cuts the
    /// file back so nothing partial stays behind.
    fn write_synced(&mut self, device: &str, seg: u64, bytes: &[u8]) -> Result<(), IngestFault> {
        let end = self.end(device, seg)?;
        let f = self.file(device, seg)?;
        let written = f.write_all_at(bytes, end).and_then(|()| f.sync_data());
        if let Err(e) = written {
            let _ = f.set_len(end);
            return Err(io("append")(e));
        }
        self.ends
            .insert((device.to_string(), seg), end + bytes.len() as u64);
        Ok(())
    }

    fn create_segment(
        &mut self,
        device: &str,
        seg: u64,
        mime: &str,
        created_ms: u64,
    ) -> Result<u64, IngestFault> {
        let dir = self.devices.join(device);
        if !dir.exists() {
            fs::create_dir(&dir).map_err(io("create device"))?;
            sync_dir(&self.devices)?;
        }
        let path = self.seg_path(device, seg);
        let tmp = path.with_extension("log.tmp");
        let meta = serde_json::json!({ "mime": mime, "created_ms": created_ms }).to_string();
        let mut bytes = MAGIC.to_vec();
        frame(kind::META, 0, meta.as_bytes(), &mut bytes);
        let written = (|| {
            let mut f = File::create(&tmp)?;
            f.write_all(&bytes)?;
            f.sync_data()?;
            fs::rename(&tmp, &path)
        })();
        if let Err(e) = written {
            let _ = fs::remove_file(&tmp);
            return Err(io("create segment")(e));
        }
        sync_dir(&dir)?;
        Ok(bytes.len() as u64)
    }

    fn recover_device(&mut self, device: &str) -> Result<Option<DeviceImage>, IngestFault> {
        let dir = self.devices.join(device);
        let mut nums = Vec::new();
        for entry in fs::read_dir(&dir).map_err(io("list device"))? {
            let name = entry.map_err(io("list device"))?.file_name();
            let name = name.to_string_lossy();
            if name.ends_with(".tmp") || name.ends_with(".evicted") {
                let _ = fs::remove_file(dir.join(name.as_ref()));
                continue;
            }
            if let Some(n) = name
                .strip_suffix(".log")
                .and_then(record::parse_segment_name)
            {
                nums.push(n);
            }
        }
        nums.sort_unstable();
        let Some(&newest) = nums.last() else {
            // Created by a first ctl write that never completed.
            let _ = fs::remove_dir(&dir);
            return Ok(None);
        };
        let mut segments = Vec::with_capacity(nums.len());
        for n in nums {
            match self.recover_segment(device, n, n == newest) {
                Ok(img) => segments.push(img),
                Err(e) => tracing::error!(device, seg = n, error = %e, "segment skipped"),
            }
        }
        Ok(Some(DeviceImage {
            device: device.to_string(),
            segments,
        }))
    }

    fn recover_segment(
        &mut self,
        device: &str,
        seg: u64,
        newest: bool,
    ) -> Result<SegmentImage, IngestFault> {
        let path = self.seg_path(device, seg);
        let f = OpenOptions::new()
            .read(true)
            .write(true)
            .open(&path)
            .map_err(io("open segment"))?;
        let len = f.metadata().map_err(io("stat segment"))?.len();
        let (mime, created_ms, meta_end) = read_meta(&f)?;
        let trailer = if newest { None } else { read_close(&f, len) };
        let (summary, end) = match trailer {
            Some(summary) => (summary, len),
            None => {
                let scan = scan(&f, meta_end, len)?;
                if scan.end < len {
                    tracing::warn!(device, seg, cut = len - scan.end, "segment tail cut");
                    f.set_len(scan.end).map_err(io("cut segment"))?;
                    f.sync_all().map_err(io("cut segment"))?;
                }
                (scan.summary, scan.end)
            }
        };
        self.ends.insert((device.to_string(), seg), end);
        Ok(SegmentImage {
            seg,
            mime,
            created_ms,
            summary,
        })
    }
}

fn sync_dir(dir: &Path) -> Result<(), IngestFault> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io("sync directory"))
}

/// Appends one frame to `out`.
pub fn frame(kind: u8, seq: u64, payload: &[u8], out: &mut Vec<u8>) {
    out.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    out.push(kind);
    out.extend_from_slice(&seq.to_le_bytes());
    out.extend_from_slice(&frame_crc(kind, seq, payload).to_le_bytes());
    out.extend_from_slice(payload);
}

fn frame_crc(kind: u8, seq: u64, payload: &[u8]) -> u32 {
    let mut c = Crc32::new();
    c.update(&[kind]);
    c.update(&seq.to_le_bytes());
    c.update(payload);
    c.finish()
}

struct Header {
    len: u32,
    kind: u8,
    seq: u64,
    crc: u32,
}

fn parse_header(b: &[u8; HEADER]) -> Header {
    let u32_at = |i: usize| u32::from_le_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]]);
    let mut seq = [0u8; 8];
    seq.copy_from_slice(&b[5..13]);
    Header {
        len: u32_at(0),
        kind: b[4],
        seq: u64::from_le_bytes(seq),
        crc: u32_at(13),
    }
}

/// Reads the frame at `pos` (within `end`); `None` when it is incomplete,
/// oversized or fails its CRC.
fn read_frame(f: &File, pos: u64, end: u64) -> Option<(Header, Vec<u8>)> {
    if pos + HEADER as u64 > end {
        return None;
    }
    let mut hb = [0u8; HEADER];
    f.read_exact_at(&mut hb, pos).ok()?;
    let h = parse_header(&hb);
    if h.len > MAX_PAYLOAD || pos + HEADER as u64 + u64::from(h.len) > end {
        return None;
    }
    let mut payload = vec![0u8; h.len as usize];
    f.read_exact_at(&mut payload, pos + HEADER as u64).ok()?;
    (frame_crc(h.kind, h.seq, &payload) == h.crc).then_some((h, payload))
}

#[derive(serde::Deserialize)]
struct Meta {
    mime: String,
    created_ms: u64,
}

fn read_meta(f: &File) -> Result<(String, u64, u64), IngestFault> {
    let mut magic = [0u8; 8];
    f.read_exact_at(&mut magic, 0)
        .map_err(|_| IngestFault::Corrupt("segment-magic"))?;
    if &magic != MAGIC {
        return Err(IngestFault::Corrupt("segment-magic"));
    }
    let len = f.metadata().map_err(io("stat segment"))?.len();
    let (h, payload) = read_frame(f, 8, len).ok_or(IngestFault::Corrupt("segment-meta"))?;
    let meta: Meta = serde_json::from_slice(&payload)
        .ok()
        .filter(|_| h.kind == kind::META)
        .ok_or(IngestFault::Corrupt("segment-meta"))?;
    Ok((
        meta.mime,
        meta.created_ms,
        8 + HEADER as u64 + u64::from(h.len),
    ))
}

/// The `CLOSE` trailer, when the file ends with a valid one.
fn read_close(f: &File, len: u64) -> Option<SegmentSummary> {
    let pos = len.checked_sub(CLOSE_FRAME)?;
    let (h, p) = read_frame(f, pos, len)?;
    if h.kind != kind::CLOSE || p.len() != 32 {
        return None;
    }
    let u64_at = |i: usize| {
        let mut b = [0u8; 8];
        b.copy_from_slice(&p[i..i + 8]);
        u64::from_le_bytes(b)
    };
    Some(SegmentSummary {
        records: u64_at(0),
        bytes: u64_at(8),
        next_seq: u64_at(16),
        artifact_bytes: u64_at(24),
    })
}

fn close_payload(s: &SegmentSummary) -> Vec<u8> {
    [s.records, s.bytes, s.next_seq, s.artifact_bytes]
        .iter()
        .flat_map(|v| v.to_le_bytes())
        .collect()
}

struct Scan {
    summary: SegmentSummary,
    /// Length of the valid prefix: whole frames, committed groups, no
    /// trailing `CLOSE`.
    end: u64,
}

/// Walks every frame after the meta frame, in one buffered pass.
fn scan(f: &File, start: u64, len: u64) -> Result<Scan, IngestFault> {
    let mut reader = BufReader::with_capacity(IO_BUF, f);
    reader
        .seek(SeekFrom::Start(start))
        .map_err(io("scan segment"))?;
    let mut s = SegmentSummary {
        next_seq: 1,
        ..SegmentSummary::default()
    };
    let mut pos = start;
    let mut end = start;
    // A group in progress: (records, bytes, last seq, artifact bytes).
    let mut group: Option<(u64, u64, u64, u64)> = None;
    let mut payload = Vec::new();
    while pos + HEADER as u64 <= len {
        let mut hb = [0u8; HEADER];
        if reader.read_exact(&mut hb).is_err() {
            break;
        }
        let h = parse_header(&hb);
        if h.len > MAX_PAYLOAD || pos + HEADER as u64 + u64::from(h.len) > len {
            break;
        }
        payload.resize(h.len as usize, 0);
        if reader.read_exact(&mut payload).is_err() || frame_crc(h.kind, h.seq, &payload) != h.crc {
            break;
        }
        pos += HEADER as u64 + u64::from(h.len);
        let line = u64::from(h.len) + 1;
        let chunk_len = || match record::parse_record(&payload) {
            Ok(record::Record::Ref { chunk, .. }) => chunk.len,
            _ => 0,
        };
        match (h.kind, group) {
            (kind::RECORD, None) => {
                s.records += 1;
                s.bytes += line;
                s.next_seq = h.seq + 1;
                end = pos;
            }
            (kind::GROUP, None) => group = Some((1, line, h.seq, chunk_len())),
            (kind::GROUP, Some((n, b, _, a))) => {
                group = Some((n + 1, b + line, h.seq, a + chunk_len()));
            }
            (kind::COMMIT, Some((n, b, last, a))) if payload == n.to_le_bytes() => {
                s.records += n;
                s.bytes += b;
                s.next_seq = last + 1;
                s.artifact_bytes += a;
                group = None;
                end = pos;
            }
            // A trailer, if it is the last frame, is dropped: the segment
            // is the newest, so its closing was never acknowledged.
            (kind::CLOSE, None) => {}
            _ => break,
        }
    }
    Ok(Scan { summary: s, end })
}

impl IngestStore for DiskIngest {
    fn recover(&mut self) -> Result<Vec<DeviceImage>, IngestFault> {
        self.ends.clear();
        self.files.clear();
        self.uploads.clear();
        for entry in fs::read_dir(&self.uploads_dir).map_err(io("list uploads"))? {
            let path = entry.map_err(io("list uploads"))?.path();
            let _ = fs::remove_file(path);
        }
        let mut names = Vec::new();
        for entry in fs::read_dir(&self.devices).map_err(io("list devices"))? {
            let entry = entry.map_err(io("list devices"))?;
            let name = entry.file_name().to_string_lossy().into_owned();
            if cohesix_core::node::valid_device_id(&name) {
                names.push(name);
            }
        }
        names.sort();
        let mut out = Vec::with_capacity(names.len());
        for name in names {
            out.extend(self.recover_device(&name)?);
        }
        self.pending.clear();
        self.collect_unreferenced_chunks()?;
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
        let start = Instant::now();
        let mut closed = None;
        if let Some((prev, summary)) = close {
            let mut bytes = Vec::with_capacity(CLOSE_FRAME as usize);
            debug_assert_eq!(
                close_payload(&summary).len() as u64 + HEADER as u64,
                CLOSE_FRAME
            );
            frame(kind::CLOSE, 0, &close_payload(&summary), &mut bytes);
            let end = self.end(device, prev)?;
            self.write_synced(device, prev, &bytes)?;
            closed = Some((prev, end));
        }
        match self.create_segment(device, seg, mime, created_ms) {
            Ok(end) => {
                self.ends.insert((device.to_string(), seg), end);
                Ok(micros(start))
            }
            Err(e) => {
                if let Some((prev, end)) = closed {
                    // Reopen the previous segment: drop its trailer.
                    if let Ok(f) = self.file(device, prev) {
                        let _ = f.set_len(end).and_then(|()| f.sync_data());
                    }
                    self.ends.insert((device.to_string(), prev), end);
                }
                Err(e)
            }
        }
    }

    fn append(
        &mut self,
        device: &str,
        seg: u64,
        seq: u64,
        record: &[u8],
    ) -> Result<Durable, IngestFault> {
        let start = Instant::now();
        let mut bytes = Vec::with_capacity(HEADER + record.len());
        frame(kind::RECORD, seq, record, &mut bytes);
        self.write_synced(device, seg, &bytes)?;
        Ok(micros(start))
    }

    /// Evicts a segment: renamed aside first (durably), so the segment is
    /// gone before its chunks are counted down; then counted down in one
    /// transaction; then deleted. A crash leaves at most an `.evicted`
    /// file, deleted at start without counting down (chunks kept too long,
    /// never lost).
    fn delete_segment(&mut self, device: &str, seg: u64) -> Result<(), IngestFault> {
        let key = (device.to_string(), seg);
        let path = self.seg_path(device, seg);
        let aside = path.with_extension("log.evicted");
        self.files.remove(&key);
        fs::rename(&path, &aside).map_err(io("evict segment"))?;
        self.ends.remove(&key);
        sync_dir(&self.devices.join(device))?;
        let released = self.count_down_segment(&aside);
        let _ = fs::remove_file(&aside);
        if let Err(e) = released {
            tracing::warn!(device, seg, error = %e, "chunks of an evicted segment kept");
        }
        Ok(())
    }

    fn read_record(
        &mut self,
        device: &str,
        seg: u64,
        at: SegCursor,
    ) -> Result<Option<(Vec<u8>, SegCursor)>, IngestFault> {
        let end = self.end(device, seg)?;
        let f = self.file(device, seg)?;
        let mut pos = if at.pos == 0 {
            let (_, _, meta_end) = read_meta(f)?;
            meta_end
        } else {
            at.pos
        };
        while pos < end {
            let (h, payload) =
                read_frame(f, pos, end).ok_or(IngestFault::Corrupt("segment-frame"))?;
            pos += HEADER as u64 + u64::from(h.len);
            if h.kind == kind::RECORD || h.kind == kind::GROUP {
                let next = SegCursor {
                    view: at.view + payload.len() as u64 + 1,
                    pos,
                };
                return Ok(Some((payload, next)));
            }
        }
        Ok(None)
    }

    fn upload_begin(&mut self, upload: u64) -> Result<(), IngestFault> {
        let part_path = self.uploads_dir.join(format!("{upload}.part"));
        let refs_path = self.uploads_dir.join(format!("{upload}.refs"));
        let part = File::create(&part_path).map_err(io("create upload"))?;
        let refs = File::create(&refs_path).map_err(io("create upload"))?;
        let up = Upload {
            part,
            part_path,
            refs: BufWriter::new(refs),
            refs_path,
            hasher: Sha256::new(),
            fill: 0,
        };
        self.uploads.insert(upload, up);
        Ok(())
    }

    fn upload_write(&mut self, upload: u64, data: &[u8]) -> Result<(), IngestFault> {
        let up = self.uploads.get_mut(&upload).ok_or(IngestFault::NotFound)?;
        up.part.write_all(data).map_err(io("write upload"))?;
        up.hasher.update(data);
        up.fill += data.len() as u64;
        Ok(())
    }

    fn upload_seal(&mut self, upload: u64, off: u64) -> Result<ChunkRef, IngestFault> {
        let chunks = self.chunks.clone();
        let up = self.uploads.get_mut(&upload).ok_or(IngestFault::NotFound)?;
        up.part.sync_data().map_err(io("sync chunk"))?;
        let sha256: [u8; 32] = up.hasher.finalize_reset().into();
        let chunk = ChunkRef {
            off,
            len: up.fill,
            sha256,
        };
        // Same bytes, same name: replacing an existing chunk is harmless.
        fs::rename(&up.part_path, chunks.join(hex::encode(sha256))).map_err(io("store chunk"))?;
        up.part = File::create(&up.part_path).map_err(io("create upload"))?;
        up.fill = 0;
        let mut entry = Vec::with_capacity(48);
        entry.extend_from_slice(&chunk.off.to_le_bytes());
        entry.extend_from_slice(&chunk.len.to_le_bytes());
        entry.extend_from_slice(&chunk.sha256);
        up.refs.write_all(&entry).map_err(io("stage chunk"))?;
        *self.pending.entry(sha256).or_insert(0) += 1;
        Ok(chunk)
    }

    fn upload_commit(
        &mut self,
        upload: u64,
        device: &str,
        seg: u64,
        first_seq: u64,
    ) -> Result<Durable, IngestFault> {
        let start = Instant::now();
        let mut up = self.uploads.remove(&upload).ok_or(IngestFault::NotFound)?;
        let result = self.write_group(&mut up, device, seg, first_seq);
        let _ = fs::remove_file(&up.part_path);
        let _ = fs::remove_file(&up.refs_path);
        result.map(|()| micros(start))
    }

    fn upload_abort(&mut self, upload: u64) {
        let Some(mut up) = self.uploads.remove(&upload) else {
            return;
        };
        let staged = up.refs.flush().map_err(io("stage chunk"));
        let unstaged = staged.and_then(|()| {
            for_each_staged(&up.refs_path, |c| {
                self.unstage(&c.sha256);
                Ok(())
            })?;
            // Second pass: only now is every chunk of this upload unstaged.
            for_each_staged(&up.refs_path, |c| {
                self.delete_if_unreferenced(&c.sha256);
                Ok(())
            })
        });
        if let Err(e) = unstaged {
            tracing::warn!(error = %e, "staged chunks of an aborted upload kept");
        }
        let _ = fs::remove_file(&up.part_path);
        let _ = fs::remove_file(&up.refs_path);
    }

    fn chunk_verify(&mut self, chunk: &ChunkRef) -> Result<(), IngestFault> {
        let path = self.chunk_path(&chunk.sha256);
        let f = File::open(&path).map_err(|_| IngestFault::NotFound)?;
        if f.metadata().map_err(io("stat chunk"))?.len() != chunk.len {
            return Err(IngestFault::Corrupt("chunk-length"));
        }
        let mut hasher = Sha256::new();
        let mut reader = BufReader::with_capacity(IO_BUF, &f);
        let mut buf = vec![0u8; IO_BUF];
        loop {
            let n = reader.read(&mut buf).map_err(io("read chunk"))?;
            if n == 0 {
                break;
            }
            hasher.update(&buf[..n]);
        }
        let digest: [u8; 32] = hasher.finalize().into();
        if digest != chunk.sha256 {
            return Err(IngestFault::Corrupt("chunk-hash"));
        }
        self.chunk_file = Some((chunk.sha256, f));
        Ok(())
    }

    fn chunk_read(
        &mut self,
        chunk: &ChunkRef,
        at: u64,
        count: usize,
        out: &mut Vec<u8>,
    ) -> Result<(), IngestFault> {
        let cached = matches!(&self.chunk_file, Some((sha, _)) if *sha == chunk.sha256);
        if !cached {
            let f =
                File::open(self.chunk_path(&chunk.sha256)).map_err(|_| IngestFault::NotFound)?;
            self.chunk_file = Some((chunk.sha256, f));
        }
        let Some((_, f)) = &self.chunk_file else {
            return Err(IngestFault::NotFound);
        };
        let n = count.min(chunk.len.saturating_sub(at) as usize);
        let start = out.len();
        out.resize(start + n, 0);
        if let Err(e) = f.read_exact_at(&mut out[start..], at) {
            out.truncate(start);
            return Err(io("read chunk")(e));
        }
        Ok(())
    }
}

impl DiskIngest {
    /// Writes one `GROUP` frame per staged chunk and the `COMMIT` frame,
    /// then syncs once. On failure the segment is cut back.
    fn write_group(
        &mut self,
        up: &mut Upload,
        device: &str,
        seg: u64,
        first_seq: u64,
    ) -> Result<(), IngestFault> {
        up.refs.flush().map_err(io("stage chunk"))?;
        sync_dir(&self.chunks)?;
        // Count first: a crash after this and before the records only
        // keeps chunks too long.
        self.count_up_staged(&up.refs_path)?;
        let end = self.end(device, seg)?;
        let f = self
            .file(device, seg)?
            .try_clone()
            .map_err(io("open segment"))?;
        let written = (|| -> std::io::Result<u64> {
            let mut staged = BufReader::new(File::open(&up.refs_path)?);
            let mut out = BufWriter::with_capacity(IO_BUF, &f);
            out.seek(SeekFrom::Start(end))?;
            let mut entry = [0u8; 48];
            let mut count = 0u64;
            let mut total = 0u64;
            let mut buf = Vec::new();
            while staged.read_exact(&mut entry).is_ok() {
                let chunk = staged_chunk(&entry);
                let seq = first_seq + count;
                buf.clear();
                frame(
                    kind::GROUP,
                    seq,
                    record::ref_record(seq, &chunk).as_bytes(),
                    &mut buf,
                );
                out.write_all(&buf)?;
                total += buf.len() as u64;
                count += 1;
            }
            buf.clear();
            frame(kind::COMMIT, 0, &count.to_le_bytes(), &mut buf);
            out.write_all(&buf)?;
            out.flush()?;
            f.sync_data()?;
            Ok(total + buf.len() as u64)
        })();
        match written {
            Ok(len) => {
                self.ends.insert((device.to_string(), seg), end + len);
                Ok(())
            }
            Err(e) => {
                let _ = f.set_len(end);
                Err(io("commit artifact")(e))
            }
        }
    }
}

/// Calls `f` on every chunk an upload staged, in order, from its file.
fn for_each_staged(
    path: &Path,
    mut f: impl FnMut(ChunkRef) -> Result<(), IngestFault>,
) -> Result<(), IngestFault> {
    let mut staged = BufReader::new(File::open(path).map_err(io("read staged chunks"))?);
    let mut entry = [0u8; 48];
    while staged.read_exact(&mut entry).is_ok() {
        f(staged_chunk(&entry))?;
    }
    Ok(())
}

fn index_error(e: impl std::fmt::Display) -> IngestFault {
    IngestFault::Io {
        op: "chunk index",
        detail: e.to_string(),
    }
}

impl DiskIngest {
    fn unstage(&mut self, sha256: &[u8; 32]) {
        if let Some(n) = self.pending.get_mut(sha256) {
            *n -= 1;
            if *n == 0 {
                self.pending.remove(sha256);
            }
        }
    }

    /// Counts every staged chunk up by one (one transaction) and unstages
    /// it.
    fn count_up_staged(&mut self, refs: &Path) -> Result<(), IngestFault> {
        let txn = self.index.begin_write().map_err(index_error)?;
        {
            let mut table = txn.open_table(CHUNK_REFS).map_err(index_error)?;
            for_each_staged(refs, |c| {
                let key: &[u8] = &c.sha256;
                let n = table
                    .get(key)
                    .map_err(index_error)?
                    .map_or(0, |v| v.value());
                table.insert(key, n + 1).map_err(index_error)?;
                Ok(())
            })?;
        }
        txn.commit().map_err(index_error)?;
        for_each_staged(refs, |c| {
            self.unstage(&c.sha256);
            Ok(())
        })
    }

    /// Counts down the chunks named by a segment's committed artifact
    /// records (one transaction), then deletes those no longer named.
    fn count_down_segment(&mut self, path: &Path) -> Result<(), IngestFault> {
        let txn = self.index.begin_write().map_err(index_error)?;
        {
            let mut table = txn.open_table(CHUNK_REFS).map_err(index_error)?;
            for_each_committed_chunk(path, |sha| {
                let key: &[u8] = &sha;
                let n = table
                    .get(key)
                    .map_err(index_error)?
                    .map_or(0, |v| v.value());
                if n <= 1 {
                    table.remove(key).map_err(index_error)?;
                } else {
                    table.insert(key, n - 1).map_err(index_error)?;
                }
                Ok(())
            })?;
        }
        txn.commit().map_err(index_error)?;
        for_each_committed_chunk(path, |sha| {
            self.delete_if_unreferenced(&sha);
            Ok(())
        })
    }

    /// Deletes a chunk that no committed record counts and no live upload
    /// staged.
    fn delete_if_unreferenced(&mut self, sha256: &[u8; 32]) {
        if self.pending.contains_key(sha256) {
            return;
        }
        let counted = self
            .index
            .begin_read()
            .ok()
            .and_then(|t| t.open_table(CHUNK_REFS).ok())
            .and_then(|t| t.get(sha256.as_slice()).ok().flatten().map(|v| v.value()));
        if counted.is_none() {
            if matches!(&self.chunk_file, Some((sha, _)) if sha == sha256) {
                self.chunk_file = None;
            }
            let _ = fs::remove_file(self.chunk_path(sha256));
        }
    }

    /// At start: deletes every chunk no committed record counts (staged by
    /// uploads that never committed).
    fn collect_unreferenced_chunks(&mut self) -> Result<(), IngestFault> {
        let read = self.index.begin_read().map_err(index_error)?;
        let table = match read.open_table(CHUNK_REFS) {
            Ok(t) => Some(t),
            Err(redb::TableError::TableDoesNotExist(_)) => None,
            Err(e) => return Err(index_error(e)),
        };
        let mut removed = 0u64;
        for entry in fs::read_dir(&self.chunks).map_err(io("list chunks"))? {
            let path = entry.map_err(io("list chunks"))?.path();
            let name = path.file_name().map(|n| n.to_string_lossy().into_owned());
            let Some(sha) = name.and_then(|n| hex::decode(n).ok()) else {
                continue;
            };
            let counted = match &table {
                Some(t) => t.get(sha.as_slice()).map_err(index_error)?.is_some(),
                None => false,
            };
            if !counted && fs::remove_file(&path).is_ok() {
                removed += 1;
            }
        }
        if removed > 0 {
            tracing::info!(removed, "unreferenced chunks deleted");
        }
        Ok(())
    }
}

/// Calls `f` with the sha256 of every chunk named by a committed artifact
/// record (`GROUP` frames followed by their `COMMIT`) in a segment file.
fn for_each_committed_chunk(
    path: &Path,
    mut f: impl FnMut([u8; 32]) -> Result<(), IngestFault>,
) -> Result<(), IngestFault> {
    let file = File::open(path).map_err(io("read segment"))?;
    let len = file.metadata().map_err(io("stat segment"))?.len();
    let (_, _, mut pos) = read_meta(&file)?;
    while let Some((h, payload)) = read_frame(&file, pos, len) {
        pos += HEADER as u64 + u64::from(h.len);
        if h.kind != kind::GROUP {
            continue;
        }
        if let Ok(record::Record::Ref { chunk, .. }) = record::parse_record(&payload) {
            f(chunk.sha256)?;
        }
    }
    Ok(())
}

fn staged_chunk(entry: &[u8; 48]) -> ChunkRef {
    let mut off = [0u8; 8];
    let mut len = [0u8; 8];
    let mut sha256 = [0u8; 32];
    off.copy_from_slice(&entry[0..8]);
    len.copy_from_slice(&entry[8..16]);
    sha256.copy_from_slice(&entry[16..48]);
    ChunkRef {
        off: u64::from_le_bytes(off),
        len: u64::from_le_bytes(len),
        sha256,
    }
}

/// CRC-32 (IEEE 802.3, reflected, polynomial 0xEDB88320).
struct Crc32(u32);

const CRC_TABLE: [u32; 256] = {
    let mut table = [0u32; 256];
    let mut i = 0;
    while i < 256 {
        let mut c = i as u32;
        let mut k = 0;
        while k < 8 {
            c = if c & 1 != 0 {
                0xEDB8_8320 ^ (c >> 1)
            } else {
                c >> 1
            };
            k += 1;
        }
        table[i] = c;
        i += 1;
    }
    table
};

impl Crc32 {
    fn new() -> Crc32 {
        Crc32(0xFFFF_FFFF)
    }

    fn update(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = CRC_TABLE[((self.0 ^ u32::from(b)) & 0xff) as usize] ^ (self.0 >> 8);
        }
    }

    fn finish(&self) -> u32 {
        !self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc32_matches_the_standard_check_value() {
        let mut c = Crc32::new();
        c.update(b"123456789");
        assert_eq!(c.finish(), 0xCBF4_3926);
    }

    #[test]
    fn frames_round_trip_and_damage_is_detected() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        let mut bytes = Vec::new();
        frame(kind::RECORD, 7, b"hello", &mut bytes);
        fs::write(&path, &bytes).unwrap();
        let f = File::open(&path).unwrap();
        let (h, p) = read_frame(&f, 0, bytes.len() as u64).unwrap();
        assert_eq!(
            (h.kind, h.seq, p.as_slice()),
            (kind::RECORD, 7, &b"hello"[..])
        );
        assert!(read_frame(&f, 0, bytes.len() as u64 - 1).is_none(), "torn");
        bytes[HEADER] ^= 1;
        fs::write(&path, &bytes).unwrap();
        let f = File::open(&path).unwrap();
        assert!(read_frame(&f, 0, bytes.len() as u64).is_none(), "crc");
    }

    #[test]
    fn recovery_reads_trailers_and_scans_the_open_segment() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = DiskIngest::open(dir.path()).unwrap();
        assert!(store.recover().unwrap().is_empty());
        store.roll_segment("d", None, 1, "text/plain", 5).unwrap();
        store.append("d", 1, 1, b"{\"a\":1}").unwrap();
        let closing = SegmentSummary {
            records: 1,
            bytes: 8,
            next_seq: 2,
            artifact_bytes: 777,
        };
        store
            .roll_segment("d", Some((1, closing)), 2, "text/csv", 6)
            .unwrap();
        store.upload_begin(9).unwrap();
        store.upload_write(9, &[5u8; 1000]).unwrap();
        store.upload_seal(9, 0).unwrap();
        store.upload_commit(9, "d", 2, 1).unwrap();
        drop(store);

        let mut store = DiskIngest::open(dir.path()).unwrap();
        let devices = store.recover().unwrap();
        assert_eq!(devices.len(), 1);
        let segs = &devices[0].segments;
        assert_eq!(segs[0].summary, closing);
        assert_eq!((segs[1].mime.as_str(), segs[1].created_ms), ("text/csv", 6));
        assert_eq!(segs[1].summary.records, 1);
        assert_eq!(segs[1].summary.next_seq, 2);
        assert_eq!(segs[1].summary.artifact_bytes, 1000);
        let (rec, _) = store
            .read_record("d", 2, SegCursor::START)
            .unwrap()
            .unwrap();
        assert!(rec.starts_with(b"{\"schema\":\"coh-ref-c/v1\",\"seq\":1,"));
    }
}
