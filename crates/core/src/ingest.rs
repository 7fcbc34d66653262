//! Telemetry ingest under `/queen/telemetry/<device>/` (SURFACES §7):
//! devices, segments, records, quotas, evictions and artifact uploads.
//!
//! This module decides everything and stores nothing itself: names,
//! sequence numbers, quota checks and evictions happen here, and every
//! durable effect goes through an [`IngestStore`] (the edge's disk store,
//! or [`MemIngestStore`]). A change is applied to this state only after the
//! store reported it durable, so a refusal or a store failure changes
//! nothing. Role policy is the hive's business, not this module's.
//!
//! The rules, in brief (the full protocol is `docs/telemetry.md`):
//! - a device appears on its first valid `ctl` write, which creates its
//!   first segment; segment numbers count from 1 per device, never reused;
//! - only the newest segment takes appends; its records carry `seq`
//!   numbers 1, 2, 3… with no gap and no repeat;
//! - an artifact is streamed into `<device>/artifact`, cut into chunks that
//!   are stored content-addressed, and becomes visible only at commit, as
//!   one atomic run of `coh-ref-c/v1` records in the newest segment.

pub mod record;
pub mod store;

use crate::node::{Dir, File, Node};
use cohesix_manifest::{QuotaPolicy, TelemetrySection};
use cohesix_ninep::{ErrorClass, NsError, OpenMode};
use record::{ChunkRef, Record};
use std::collections::{BTreeMap, HashMap, VecDeque};

pub use store::{
    DeviceImage, Durable, IngestFault, IngestStore, MemIngestStore, SegCursor, SegmentImage,
    SegmentSummary,
};

/// Durable-append latencies kept for `/proc/ingest/p50_ms` and `p95_ms`.
const LATENCY_WINDOW: usize = 1024;

#[derive(Debug)]
struct Segment {
    mime: String,
    created_ms: u64,
    records: u64,
    /// Bytes a reader sees: records plus one newline each.
    bytes: u64,
    next_seq: u64,
    /// Bytes of the artifacts the hive committed into this segment.
    artifact_bytes: u64,
}

impl Segment {
    fn summary(&self) -> SegmentSummary {
        SegmentSummary {
            records: self.records,
            bytes: self.bytes,
            next_seq: self.next_seq,
            artifact_bytes: self.artifact_bytes,
        }
    }

    /// What the segment counts against its device's byte quota.
    fn charged(&self) -> u64 {
        self.bytes + self.artifact_bytes
    }
}

#[derive(Debug, Default)]
struct Device {
    segments: BTreeMap<u64, Segment>,
    next_seg: u64,
    bytes: u64,
}

impl Device {
    fn newest(&self) -> Option<u64> {
        self.segments.keys().next_back().copied()
    }
}

#[derive(Debug)]
enum UploadState {
    Receiving,
    /// A write was refused; the upload can only be clunked.
    Failed,
    /// Committed; reads return the artifact id line.
    Committed(Vec<u8>),
}

#[derive(Debug)]
struct Upload {
    device: String,
    received: u64,
    chunk_fill: u64,
    chunks: u64,
    /// Bytes of the reference records so far, without their `seq` digits
    /// (those are known only at commit) and newlines.
    ref_bytes: u64,
    state: UploadState,
}

/// An artifact being read back: one chunk at a time, each verified before
/// any of its bytes is served.
#[derive(Debug)]
pub struct ArtifactReader {
    device: String,
    seg: u64,
    first: ChunkRef,
    after_first: SegCursor,
    chunk: Option<ChunkRef>,
    next: SegCursor,
    verified: bool,
}

/// What an open ingest fid holds.
#[derive(Debug)]
pub enum IngestOpen {
    /// A segment; `cursor` is a record boundary at or before the last read.
    Segment {
        device: String,
        seg: u64,
        cursor: SegCursor,
    },
    /// An artifact upload (released on clunk).
    Upload {
        id: u64,
    },
    Artifact(Box<ArtifactReader>),
}

/// Ingest state and counters shown under `/proc/ingest`.
pub struct Ingest {
    limits: TelemetrySection,
    store: Box<dyn IngestStore>,
    devices: BTreeMap<String, Device>,
    uploads: HashMap<u64, Upload>,
    next_upload: u64,
    latencies: VecDeque<u32>,
    /// Ingest refusals for capacity (quota, size, busy).
    pub backpressure: u64,
    /// Records lost to evictions.
    pub dropped: u64,
    /// Audit lines for the hive to write (evictions, artifacts).
    events: Vec<String>,
}

impl std::fmt::Debug for Ingest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ingest")
            .field("devices", &self.devices.len())
            .field("uploads", &self.uploads.len())
            .finish_non_exhaustive()
    }
}

impl Default for Ingest {
    fn default() -> Ingest {
        Ingest::new(
            &TelemetrySection::default(),
            Box::new(MemIngestStore::new()),
        )
    }
}

impl Ingest {
    /// Ingest with nothing recovered yet; see [`Ingest::recover`].
    pub fn new(limits: &TelemetrySection, store: Box<dyn IngestStore>) -> Ingest {
        Ingest {
            limits: limits.clone(),
            store,
            devices: BTreeMap::new(),
            uploads: HashMap::new(),
            next_upload: 1,
            latencies: VecDeque::with_capacity(LATENCY_WINDOW),
            backpressure: 0,
            dropped: 0,
            events: Vec::new(),
        }
    }

    /// Replaces the store and loads what it holds. Returns the number of
    /// devices recovered.
    pub fn recover(&mut self, store: Box<dyn IngestStore>) -> Result<usize, IngestFault> {
        self.store = store;
        self.uploads.clear();
        self.devices.clear();
        for image in self.store.recover()? {
            let mut dev = Device::default();
            for s in image.segments {
                dev.bytes += s.summary.bytes + s.summary.artifact_bytes;
                dev.next_seg = dev.next_seg.max(s.seg + 1);
                let seg = Segment {
                    mime: s.mime,
                    created_ms: s.created_ms,
                    records: s.summary.records,
                    bytes: s.summary.bytes,
                    next_seq: s.summary.next_seq.max(1),
                    artifact_bytes: s.summary.artifact_bytes,
                };
                dev.segments.insert(s.seg, seg);
            }
            if !dev.segments.is_empty() {
                self.devices.insert(image.device, dev);
            }
        }
        Ok(self.devices.len())
    }

    /// Audit lines produced since the last call.
    pub fn take_events(&mut self) -> Vec<String> {
        std::mem::take(&mut self.events)
    }

    pub fn devices(&self) -> Vec<String> {
        self.devices.keys().cloned().collect()
    }

    pub fn unknown_device(&self) -> NsError {
        NsError::not_found("no-such-device")
    }

    /// Uploads open now.
    pub fn queued(&self) -> u64 {
        self.uploads.len() as u64
    }

    pub fn p50_ms(&self) -> u32 {
        self.percentile_ms(50)
    }

    pub fn p95_ms(&self) -> u32 {
        self.percentile_ms(95)
    }

    /// The `pct`th percentile of the recent durable-append latencies, in
    /// whole milliseconds rounded up (0 when nothing was appended).
    fn percentile_ms(&self, pct: usize) -> u32 {
        if self.latencies.is_empty() {
            return 0;
        }
        let mut v: Vec<u32> = self.latencies.iter().copied().collect();
        v.sort_unstable();
        let rank = (v.len() * pct).div_ceil(100).clamp(1, v.len());
        v[rank - 1].div_ceil(1000)
    }

    fn note_latency(&mut self, d: Durable) {
        if self.latencies.len() == LATENCY_WINDOW {
            self.latencies.pop_front();
        }
        self.latencies.push_back(d.micros);
    }

    /// Counts capacity refusals; passes the result through.
    fn counted<T>(&mut self, r: Result<T, NsError>) -> Result<T, NsError> {
        if let Err(e) = &r {
            if matches!(
                e.class,
                ErrorClass::Quota | ErrorClass::Busy | ErrorClass::TooBig
            ) {
                self.backpressure += 1;
            }
        }
        r
    }

    // ---- the namespace ----------------------------------------------------

    fn segment(&self, device: &str, name: &str) -> Option<(u64, &Segment)> {
        let n = record::parse_segment_name(name)?;
        self.devices.get(device)?.segments.get(&n).map(|s| (n, s))
    }

    /// Whether a telemetry node exists. A device directory and its `ctl`
    /// exist for every valid id, so a client can walk to `ctl` to create
    /// the device; everything else exists only once the device does.
    pub fn node_exists(&self, node: &Node) -> bool {
        match node {
            Node::Dir(Dir::Device(_)) | Node::File(File::DeviceCtl(_)) => true,
            Node::Dir(Dir::DeviceSegs(d) | Dir::DeviceArtifacts(d))
            | Node::File(File::DeviceLatest(d) | File::ArtifactUpload(d)) => {
                self.devices.contains_key(d)
            }
            Node::File(File::Segment(d, s)) => self.segment(d, s).is_some(),
            Node::File(File::Artifact(d, id)) => record::parse_artifact_name(id)
                .and_then(|(seg, _)| self.devices.get(d)?.segments.get(&seg))
                .is_some(),
            _ => false,
        }
    }

    pub fn children(&self, dir: &Dir) -> Vec<String> {
        let names = |v: &[&str]| v.iter().map(|s| s.to_string()).collect();
        match dir {
            Dir::Device(d) if self.devices.contains_key(d) => {
                names(&["ctl", "latest", "seg", "artifact", "artifacts"])
            }
            Dir::Device(_) => names(&["ctl"]),
            Dir::DeviceSegs(d) => self.devices.get(d).map_or_else(Vec::new, |dev| {
                dev.segments
                    .keys()
                    .map(|&n| record::segment_name(n))
                    .collect()
            }),
            // TODO-hardening: artifacts are found by id only; listing them
            // would need an index of every segment's reference records.
            _ => Vec::new(),
        }
    }

    /// Size shown by getattr: a segment's readable bytes, `latest`'s line.
    pub fn size_of(&self, file: &File) -> u64 {
        match file {
            File::Segment(d, s) => self.segment(d, s).map_or(0, |(_, s)| s.bytes),
            File::DeviceLatest(d) => self.latest(d).map_or(0, |l| l.len() as u64),
            _ => 0,
        }
    }

    /// `latest`: the newest segment id and a newline.
    pub fn latest(&self, device: &str) -> Result<Vec<u8>, NsError> {
        let n = self
            .devices
            .get(device)
            .and_then(Device::newest)
            .ok_or(NsError::not_found("no-such-device"))?;
        Ok(format!("{}\n", record::segment_name(n)).into_bytes())
    }

    // ---- ctl ----------------------------------------------------------------

    /// A write to `<device>/ctl`: creates the next segment and returns its
    /// id. The device is created when this is its first segment.
    pub fn ctl(&mut self, device: &str, data: &[u8], now_ms: u64) -> Result<String, NsError> {
        let r = self.new_segment(device, data, now_ms);
        self.counted(r)
    }

    fn new_segment(&mut self, device: &str, data: &[u8], now_ms: u64) -> Result<String, NsError> {
        let mime = record::parse_ctl(data)?;
        let evict = self.limits.quota_policy == QuotaPolicy::EvictOldest;
        let max_segments = self.limits.max_segments_per_device as usize;
        let (close, n) = match self.devices.get(device) {
            None if self.devices.len() >= self.limits.max_devices as usize => {
                return Err(NsError::quota("too-many-devices"));
            }
            None => (None, 1),
            Some(dev) if dev.segments.len() >= max_segments && !evict => {
                return Err(NsError::quota("too-many-segments"));
            }
            Some(dev) => {
                let close = dev
                    .newest()
                    .and_then(|p| dev.segments.get(&p).map(|s| (p, s.summary())));
                (close, dev.next_seg.max(1))
            }
        };
        let durable = self
            .store
            .roll_segment(device, close, n, &mime, now_ms)
            .map_err(store_error)?;
        self.note_latency(durable);
        let dev = self.devices.entry(device.to_string()).or_default();
        dev.next_seg = n + 1;
        let seg = Segment {
            mime,
            created_ms: now_ms,
            records: 0,
            bytes: 0,
            next_seq: 1,
            artifact_bytes: 0,
        };
        dev.segments.insert(n, seg);
        while self.segment_count(device) > max_segments {
            if self.evict_oldest(device, "segments").is_err() {
                break; // logged; the next ctl write tries again
            }
        }
        Ok(record::segment_name(n))
    }

    fn segment_count(&self, device: &str) -> usize {
        self.devices.get(device).map_or(0, |d| d.segments.len())
    }

    /// Deletes the device's oldest closed segment.
    fn evict_oldest(&mut self, device: &str, reason: &str) -> Result<(), NsError> {
        let dev = self
            .devices
            .get(device)
            .ok_or(NsError::not_found("no-such-device"))?;
        let (oldest, newest) = match (dev.segments.keys().next(), dev.newest()) {
            (Some(&o), Some(n)) if o != n => (o, n),
            _ => return Err(NsError::quota("device-full")),
        };
        let _ = newest;
        if let Err(f) = self.store.delete_segment(device, oldest) {
            tracing::error!(device, seg = oldest, error = %f, "eviction failed");
            return Err(NsError::busy("store"));
        }
        let Some(dev) = self.devices.get_mut(device) else {
            return Ok(());
        };
        if let Some(s) = dev.segments.remove(&oldest) {
            dev.bytes -= s.charged();
            self.dropped += s.records;
            self.events.push(format!(
                "telemetry evicted device={device} segment={} records={} bytes={} \
                 artifact_bytes={} reason={reason}",
                record::segment_name(oldest),
                s.records,
                s.bytes,
                s.artifact_bytes
            ));
        }
        Ok(())
    }

    /// Makes room for `add` more bytes on the device: refuses, or evicts
    /// closed segments, by policy. Refuses without evicting anything when
    /// evicting every closed segment would not be enough.
    fn make_room(&mut self, device: &str, add: u64) -> Result<(), NsError> {
        let max = self.limits.max_device_bytes;
        let dev = self
            .devices
            .get(device)
            .ok_or(NsError::not_found("no-such-device"))?;
        if dev.bytes + add <= max {
            return Ok(());
        }
        if self.limits.quota_policy == QuotaPolicy::Refuse {
            return Err(NsError::quota("device-full"));
        }
        let open_bytes = dev
            .newest()
            .and_then(|n| dev.segments.get(&n))
            .map_or(0, Segment::charged);
        if open_bytes + add > max {
            return Err(NsError::quota("device-full"));
        }
        let bound = dev.segments.len();
        for _ in 0..bound {
            let full = self
                .devices
                .get(device)
                .is_some_and(|d| d.bytes + add > max);
            if !full {
                break;
            }
            self.evict_oldest(device, "bytes")?;
        }
        Ok(())
    }

    // ---- open, read, write --------------------------------------------------

    /// Opens a segment, the upload file or an artifact.
    pub fn open(&mut self, file: &File, mode: OpenMode) -> Result<IngestOpen, NsError> {
        let r = self.open_inner(file, mode);
        self.counted(r)
    }

    fn open_inner(&mut self, file: &File, mode: OpenMode) -> Result<IngestOpen, NsError> {
        match file {
            File::Segment(d, s) => {
                let (n, _) = self
                    .segment(d, s)
                    .ok_or(NsError::not_found("no-such-segment"))?;
                if mode.writes() && self.devices.get(d).and_then(Device::newest) != Some(n) {
                    return Err(NsError::closed("segment-closed"));
                }
                Ok(IngestOpen::Segment {
                    device: d.clone(),
                    seg: n,
                    cursor: SegCursor::START,
                })
            }
            File::ArtifactUpload(d) => self.begin_upload(d, mode),
            File::Artifact(d, id) if !mode.writes() => self.open_artifact(d, id),
            _ => Err(NsError::permission("read-only")),
        }
    }

    /// Reads from an open ingest fid. A read of an upload commits it.
    pub fn read(
        &mut self,
        open: &mut IngestOpen,
        offset: u64,
        count: usize,
        out: &mut Vec<u8>,
    ) -> Result<(), NsError> {
        let r = match open {
            IngestOpen::Segment {
                device,
                seg,
                cursor,
            } => self.read_segment(device, *seg, cursor, offset, count, out),
            IngestOpen::Upload { id } => self.commit_read(*id, offset, count, out),
            IngestOpen::Artifact(reader) => self.read_artifact(reader, offset, count, out),
        };
        self.counted(r)
    }

    /// Writes to an open ingest fid. Segment appends ignore `offset`; an
    /// upload requires it to equal the bytes received so far (`None`, from
    /// the console, means "at the end").
    pub fn write(
        &mut self,
        open: &mut IngestOpen,
        offset: Option<u64>,
        data: &[u8],
    ) -> Result<u32, NsError> {
        let r = match open {
            IngestOpen::Segment { device, seg, .. } => self.append(device, *seg, data),
            IngestOpen::Upload { id } => self.upload_write(*id, offset, data),
            IngestOpen::Artifact(_) => Err(NsError::permission("read-only")),
        };
        self.counted(r).map(|()| data.len() as u32)
    }

    /// Releases an open fid: an upload not committed is discarded.
    pub fn release(&mut self, open: IngestOpen) {
        let IngestOpen::Upload { id } = open else {
            return;
        };
        let Some(u) = self.uploads.remove(&id) else {
            return;
        };
        if !matches!(u.state, UploadState::Committed(_)) {
            self.store.upload_abort(id);
            self.events.push(format!(
                "telemetry artifact discarded device={} bytes={} reason=clunk-before-commit",
                u.device, u.received
            ));
        }
    }

    fn append(&mut self, device: &str, seg: u64, data: &[u8]) -> Result<(), NsError> {
        let record = single_record(data, self.limits.record_bytes as usize)?;
        let parsed = record::parse_record(record)?;
        let dev = self
            .devices
            .get(device)
            .ok_or(NsError::not_found("no-such-device"))?;
        let s = dev
            .segments
            .get(&seg)
            .ok_or(NsError::not_found("no-such-segment"))?;
        if dev.newest() != Some(seg) {
            return Err(NsError::closed("segment-closed"));
        }
        let seq = parsed.seq();
        if seq < s.next_seq {
            return Err(NsError::invalid("seq-duplicate"));
        }
        if seq > s.next_seq {
            return Err(NsError::invalid("seq-gap"));
        }
        let add = record.len() as u64 + 1;
        if s.bytes + add > self.limits.max_segment_bytes {
            return Err(NsError::quota("segment-full"));
        }
        self.make_room(device, add)?;
        let durable = self
            .store
            .append(device, seg, seq, record)
            .map_err(store_error)?;
        self.note_latency(durable);
        self.grow(device, seg, 1, add, 0);
        Ok(())
    }

    /// Accounts `records` new records of `bytes`, naming `artifact`
    /// bytes of chunks, on a segment.
    fn grow(&mut self, device: &str, seg: u64, records: u64, bytes: u64, artifact: u64) {
        if let Some(dev) = self.devices.get_mut(device) {
            dev.bytes += bytes + artifact;
            if let Some(s) = dev.segments.get_mut(&seg) {
                s.records += records;
                s.bytes += bytes;
                s.next_seq += records;
                s.artifact_bytes += artifact;
            }
        }
    }

    /// Serves the segment's records, joined by newlines, from `offset`.
    /// The cursor remembers the record boundary reached, so sequential
    /// reads do not rescan; a read behind it starts over from the first
    /// record.
    fn read_segment(
        &mut self,
        device: &str,
        seg: u64,
        cursor: &mut SegCursor,
        mut offset: u64,
        count: usize,
        out: &mut Vec<u8>,
    ) -> Result<(), NsError> {
        let records = self
            .devices
            .get(device)
            .and_then(|d| d.segments.get(&seg))
            .map(|s| s.records)
            .ok_or(NsError::not_found("no-such-segment"))?;
        if offset < cursor.view {
            *cursor = SegCursor::START;
        }
        // Each pass consumes one record, so the record count bounds it.
        for _ in 0..=records {
            if out.len() >= count {
                break;
            }
            let Some((mut line, next)) = self
                .store
                .read_record(device, seg, *cursor)
                .map_err(store_error)?
            else {
                break;
            };
            if next.view <= offset {
                *cursor = next;
                continue;
            }
            line.push(b'\n');
            let skip = (offset.saturating_sub(cursor.view) as usize).min(line.len());
            let avail = line.len() - skip;
            let take = avail.min(count - out.len());
            out.extend_from_slice(&line[skip..skip + take]);
            if take < avail {
                break; // the rest of this record goes to the next read
            }
            *cursor = next;
            offset = next.view;
        }
        Ok(())
    }

    // ---- artifact upload ------------------------------------------------------

    fn begin_upload(&mut self, device: &str, mode: OpenMode) -> Result<IngestOpen, NsError> {
        if !mode.writes() {
            return Err(NsError::invalid("upload-needs-write"));
        }
        if !self.devices.contains_key(device) {
            return Err(NsError::not_found("no-such-device"));
        }
        if self.uploads.len() >= self.limits.max_uploads as usize {
            return Err(NsError::busy("uploads-full"));
        }
        let id = self.next_upload;
        self.store.upload_begin(id).map_err(store_error)?;
        self.next_upload += 1;
        let upload = Upload {
            device: device.to_string(),
            received: 0,
            chunk_fill: 0,
            chunks: 0,
            ref_bytes: 0,
            state: UploadState::Receiving,
        };
        self.uploads.insert(id, upload);
        Ok(IngestOpen::Upload { id })
    }

    fn upload_write(&mut self, id: u64, offset: Option<u64>, data: &[u8]) -> Result<(), NsError> {
        let u = self
            .uploads
            .get(&id)
            .ok_or(NsError::closed("upload-gone"))?;
        match u.state {
            UploadState::Receiving => {}
            UploadState::Failed => return Err(NsError::invalid("upload-failed")),
            UploadState::Committed(_) => return Err(NsError::closed("upload-committed")),
        }
        if offset.is_some_and(|o| o != u.received) {
            return Err(NsError::invalid("offset-not-sequential"));
        }
        let r = self.feed(id, data);
        if r.is_err() {
            self.fail_upload(id);
        }
        r
    }

    /// Marks an upload failed and drops what it staged.
    fn fail_upload(&mut self, id: u64) {
        if let Some(u) = self.uploads.get_mut(&id) {
            u.state = UploadState::Failed;
            self.store.upload_abort(id);
        }
    }

    /// Stages bytes, sealing a chunk each time one fills.
    fn feed(&mut self, id: u64, mut data: &[u8]) -> Result<(), NsError> {
        let chunk_bytes = u64::from(self.limits.chunk_bytes.max(1));
        let max = self.limits.max_artifact_bytes;
        let u = self
            .uploads
            .get(&id)
            .ok_or(NsError::closed("upload-gone"))?;
        let total = u.received + data.len() as u64;
        if total > max {
            return Err(NsError::too_big("artifact-too-large"));
        }
        self.may_fit(&u.device.clone(), total)?;
        while !data.is_empty() {
            let fill = self.uploads.get(&id).map_or(0, |u| u.chunk_fill);
            let room = (chunk_bytes - fill).min(data.len() as u64) as usize;
            self.store
                .upload_write(id, &data[..room])
                .map_err(store_error)?;
            if let Some(u) = self.uploads.get_mut(&id) {
                u.received += room as u64;
                u.chunk_fill += room as u64;
            }
            data = &data[room..];
            if fill + room as u64 == chunk_bytes {
                self.seal(id)?;
            }
        }
        Ok(())
    }

    /// Seals the upload's current chunk and checks that its reference
    /// records still fit the device's open segment.
    fn seal(&mut self, id: u64) -> Result<(), NsError> {
        let u = self
            .uploads
            .get(&id)
            .ok_or(NsError::closed("upload-gone"))?;
        let off = u.received - u.chunk_fill;
        let chunk = self.store.upload_seal(id, off).map_err(store_error)?;
        let Some(u) = self.uploads.get_mut(&id) else {
            return Err(NsError::closed("upload-gone"));
        };
        u.chunk_fill = 0;
        u.chunks += 1;
        u.ref_bytes += record::ref_record_len_without_seq(&chunk);
        let (device, chunks, ref_bytes) = (u.device.clone(), u.chunks, u.ref_bytes);
        let (open_bytes, next_seq) = self.open_segment_state(&device)?;
        let need = ref_bytes + record::seq_digits(next_seq, chunks) + chunks;
        if open_bytes + need > self.limits.max_segment_bytes {
            return Err(NsError::quota("segment-full"));
        }
        Ok(())
    }

    /// Whether `add` more bytes could ever fit the device: under `refuse`
    /// its free room, under `evict-oldest` all but its open segment. Fails
    /// an upload early instead of at its commit.
    fn may_fit(&self, device: &str, add: u64) -> Result<(), NsError> {
        let dev = self
            .devices
            .get(device)
            .ok_or(NsError::not_found("no-such-device"))?;
        let kept = match self.limits.quota_policy {
            QuotaPolicy::Refuse => dev.bytes,
            QuotaPolicy::EvictOldest => dev
                .newest()
                .and_then(|n| dev.segments.get(&n))
                .map_or(0, Segment::charged),
        };
        if kept + add > self.limits.max_device_bytes {
            return Err(NsError::quota("device-full"));
        }
        Ok(())
    }

    fn open_segment_state(&self, device: &str) -> Result<(u64, u64), NsError> {
        let dev = self
            .devices
            .get(device)
            .ok_or(NsError::not_found("no-such-device"))?;
        dev.newest()
            .and_then(|n| dev.segments.get(&n))
            .map(|s| (s.bytes, s.next_seq))
            .ok_or(NsError::not_found("no-such-segment"))
    }

    /// A read of the upload fid: commits on the first read, then serves
    /// the artifact id line.
    fn commit_read(
        &mut self,
        id: u64,
        offset: u64,
        count: usize,
        out: &mut Vec<u8>,
    ) -> Result<(), NsError> {
        let state = &self
            .uploads
            .get(&id)
            .ok_or(NsError::closed("upload-gone"))?
            .state;
        match state {
            UploadState::Failed => return Err(NsError::invalid("upload-failed")),
            UploadState::Receiving => {
                let r = self.commit(id);
                if r.is_err() {
                    self.fail_upload(id);
                }
                r?;
            }
            UploadState::Committed(_) => {}
        }
        if let Some(Upload {
            state: UploadState::Committed(reply),
            ..
        }) = self.uploads.get(&id)
        {
            let start = usize::try_from(offset)
                .unwrap_or(usize::MAX)
                .min(reply.len());
            let end = start.saturating_add(count).min(reply.len());
            out.extend_from_slice(&reply[start..end]);
        }
        Ok(())
    }

    fn commit(&mut self, id: u64) -> Result<(), NsError> {
        if self.uploads.get(&id).is_some_and(|u| u.chunk_fill > 0) {
            self.seal(id)?;
        }
        let u = self
            .uploads
            .get(&id)
            .ok_or(NsError::closed("upload-gone"))?;
        if u.chunks == 0 {
            return Err(NsError::invalid("empty-artifact"));
        }
        let (device, chunks, received) = (u.device.clone(), u.chunks, u.received);
        let (open_bytes, first_seq) = self.open_segment_state(&device)?;
        let bytes = u.ref_bytes + record::seq_digits(first_seq, chunks) + chunks;
        if open_bytes + bytes > self.limits.max_segment_bytes {
            return Err(NsError::quota("segment-full"));
        }
        self.make_room(&device, bytes + received)?;
        let seg = self
            .devices
            .get(&device)
            .and_then(Device::newest)
            .ok_or(NsError::not_found("no-such-segment"))?;
        let durable = self
            .store
            .upload_commit(id, &device, seg, first_seq)
            .map_err(store_error)?;
        self.note_latency(durable);
        self.grow(&device, seg, chunks, bytes, received);
        let name = record::artifact_name(seg, first_seq);
        self.events.push(format!(
            "telemetry artifact committed device={device} id={name} \
             bytes={received} chunks={chunks}"
        ));
        if let Some(u) = self.uploads.get_mut(&id) {
            u.state = UploadState::Committed(format!("{name}\n").into_bytes());
        }
        Ok(())
    }

    // ---- artifact read-back ---------------------------------------------------

    /// Finds the artifact's first reference record: the record with the
    /// id's `seq` in the id's segment, which must be a `coh-ref-c/v1`
    /// record at offset 0.
    fn open_artifact(&mut self, device: &str, id: &str) -> Result<IngestOpen, NsError> {
        let missing = NsError::not_found("no-such-artifact");
        let (seg, seq) = record::parse_artifact_name(id).ok_or(missing.clone())?;
        let records = self
            .devices
            .get(device)
            .and_then(|d| d.segments.get(&seg))
            .map(|s| s.records)
            .ok_or(missing.clone())?;
        let mut cursor = SegCursor::START;
        for _ in 0..records {
            let Some((rec, next)) = self
                .store
                .read_record(device, seg, cursor)
                .map_err(store_error)?
            else {
                break;
            };
            match record::parse_record(&rec) {
                Ok(Record::Ref { seq: s, chunk }) if s == seq && chunk.off == 0 => {
                    let reader = ArtifactReader {
                        device: device.to_string(),
                        seg,
                        first: chunk,
                        after_first: next,
                        chunk: Some(chunk),
                        next,
                        verified: false,
                    };
                    return Ok(IngestOpen::Artifact(Box::new(reader)));
                }
                Ok(r) if r.seq() >= seq => break,
                _ => {}
            }
            cursor = next;
        }
        Err(missing)
    }

    /// Serves artifact bytes from `offset`, up to `count`, across chunk
    /// boundaries (a short read means the end). A chunk is verified
    /// (length and sha256) before its first byte is served; a chunk that
    /// fails is an error, every time, and nothing of it is served.
    fn read_artifact(
        &mut self,
        r: &mut ArtifactReader,
        mut offset: u64,
        count: usize,
        out: &mut Vec<u8>,
    ) -> Result<(), NsError> {
        let records = self
            .devices
            .get(&r.device)
            .and_then(|d| d.segments.get(&r.seg))
            .map(|s| s.records)
            .ok_or(NsError::not_found("no-such-artifact"))?;
        let behind = match r.chunk {
            Some(c) => offset < c.off,
            None => true, // past the end: a read behind it starts over
        };
        if behind {
            r.chunk = Some(r.first);
            r.next = r.after_first;
            r.verified = false;
        }
        let start = out.len();
        // Each pass serves from one chunk or moves to the next record.
        for _ in 0..=records.saturating_mul(2) {
            let want = count - (out.len() - start);
            let Some(c) = r.chunk else {
                break; // past the end
            };
            if want == 0 {
                break;
            }
            if offset >= c.off + c.len {
                self.next_chunk(r, c)?;
                continue;
            }
            if !r.verified {
                self.store.chunk_verify(&c).map_err(chunk_error)?;
                r.verified = true;
            }
            let at = offset - c.off;
            let n = (c.len - at).min(want as u64) as usize;
            self.store.chunk_read(&c, at, n, out).map_err(chunk_error)?;
            offset += n as u64;
        }
        Ok(())
    }

    /// Moves a reader to the chunk after `c`: the next record, if it is a
    /// reference that continues the artifact; otherwise the artifact ended.
    fn next_chunk(&mut self, r: &mut ArtifactReader, c: ChunkRef) -> Result<(), NsError> {
        let next = self
            .store
            .read_record(&r.device, r.seg, r.next)
            .map_err(store_error)?;
        r.verified = false;
        r.chunk = None;
        if let Some((rec, after)) = next {
            if let Ok(Record::Ref { chunk, .. }) = record::parse_record(&rec) {
                if chunk.off == c.off + c.len {
                    r.chunk = Some(chunk);
                    r.next = after;
                }
            }
        }
        Ok(())
    }

    /// Mime and creation time of a segment (for diagnostics and tests).
    pub fn segment_info(&self, device: &str, name: &str) -> Option<(String, u64, u64)> {
        self.segment(device, name)
            .map(|(_, s)| (s.mime.clone(), s.created_ms, s.records))
    }
}

/// One record: the write minus one trailing newline; no interior newline,
/// valid UTF-8, within `max` bytes.
fn single_record(data: &[u8], max: usize) -> Result<&[u8], NsError> {
    let record = data.strip_suffix(b"\n").unwrap_or(data);
    if record.len() > max {
        return Err(NsError::too_big("record-too-large"));
    }
    if record.is_empty() || record.contains(&b'\n') || std::str::from_utf8(record).is_err() {
        return Err(NsError::invalid("invalid-record"));
    }
    Ok(record)
}

fn store_error(f: IngestFault) -> NsError {
    match f {
        IngestFault::NotFound => NsError::not_found("no-such-segment"),
        IngestFault::Corrupt(what) => {
            tracing::error!(what, "ingest store found corrupt data");
            NsError::busy("store-corrupt")
        }
        IngestFault::Io { op, detail } => {
            tracing::error!(op, detail, "ingest store failed");
            NsError::busy("store")
        }
    }
}

fn chunk_error(f: IngestFault) -> NsError {
    match f {
        IngestFault::NotFound => NsError::not_found("chunk-missing"),
        IngestFault::Corrupt(_) => NsError::invalid("chunk-corrupt"),
        other => store_error(other),
    }
}
