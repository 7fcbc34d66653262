//! The hive: one state machine holding workers, sessions, the lifecycle,
//! the audit stream and every counter, driven by requests and a clock.
//!
//! Nothing here opens a socket, spawns a thread or reads the wall clock.
//! The edge feeds requests (through [`cohesix_ninep::Backend`] or the
//! path-level methods the console uses) and calls [`Hive::advance`] with the
//! current time. Durable effects go through the [`Store`] the edge supplies.
//!
//! Every refusal passes through [`Hive::refuse`], which counts it under
//! `/proc/pressure` and audits policy denials (rate-limited).

use crate::audit::Audit;
use crate::ctl::{self, BudgetSpec, CtlCommand, LeaseSpec};
use crate::ingest::{Ingest, IngestFault, IngestOpen, IngestStore, MemIngestStore};
use crate::lifecycle::{self, Lifecycle, State};
use crate::node::{self, Dir, File, Node, ProcFile, SessionFile};
use crate::ring::{Cursor, Ring};
use cohesix_manifest::Manifest;
use cohesix_ninep::backend::qid_type;
use cohesix_ninep::{ErrorClass, NodeStat, NsError, OpenMode, Qid};
use cohesix_ticket::{Claims, Role};
use sha2::{Digest, Sha256};
use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet, BinaryHeap, HashMap};
use std::fmt::Write as _;

/// Worker ids are reserved durably in blocks of this size, so a restart
/// never hands out an id that was used before.
const WORKER_ID_BLOCK: u64 = 1024;
/// Most timer events handled by one [`Hive::advance`] call, so the core
/// never holds its caller for long; the rest are handled on the next call.
const MAX_EVENTS_PER_ADVANCE: usize = 50_000;
/// Most sessions one worker's tickets may hold at once (all transports).
/// Without it one worker could take every one of `ninep.max_sessions`
/// and lock the queen (and the gateway's reconnects) out of 9P.
const MAX_SESSIONS_PER_WORKER: u32 = 16;

/// Most binds or mounts per session.
const MAX_BINDS_PER_SESSION: usize = 16;
/// Bytes a write to `/queen/ctl` may carry.
const MAX_CTL_WRITE: usize = 64 * 1024;

/// Durable effects the core asks of the edge.
pub trait Store: Send {
    /// Records that worker ids below `upto` may have been handed out.
    fn reserve_worker_ids(&mut self, upto: u64) -> Result<(), String>;
    /// Appends one audit line to the durable audit log.
    fn audit(&mut self, line: &str);
}

/// A store that keeps nothing, for tests and diskless runs.
#[derive(Debug, Default)]
pub struct NullStore;

impl Store for NullStore {
    fn reserve_worker_ids(&mut self, _upto: u64) -> Result<(), String> {
        Ok(())
    }
    fn audit(&mut self, _line: &str) {}
}

/// The per-role secrets tickets are checked against.
#[derive(Clone, Default)]
pub struct Secrets {
    pub roles: BTreeMap<String, Vec<u8>>,
}

impl Secrets {
    pub fn for_role(&self, role: Role) -> Option<&[u8]> {
        self.roles.get(role.as_str()).map(Vec::as_slice)
    }
}

impl std::fmt::Debug for Secrets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Secrets({} roles, redacted)", self.roles.len())
    }
}

/// What the hive needs to start.
pub struct HiveInit {
    pub manifest: Manifest,
    /// Where the manifest came from (`embedded-defaults` or a file path).
    pub manifest_name: String,
    pub secrets: Secrets,
    /// First worker id that was never reserved (from the store).
    pub next_worker_id: u64,
    pub store: Box<dyn Store>,
    pub now_ms: u64,
}

/// How a session proved who it is.
#[derive(Clone, Copy, Debug)]
pub enum Credential<'a> {
    /// A ticket string.
    Ticket(&'a str),
    /// A console client that passed the console's `AUTH` token; it may
    /// attach as queen without a ticket, as upstream consoles do.
    ConsoleOperator,
}

/// Which edge a session arrived on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Transport {
    NineP,
    Console,
}

/// Handle of an attached session.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SessionId(pub u64);

#[derive(Debug)]
struct Session {
    role: Role,
    subject: Option<String>,
    worker: Option<u64>,
    /// The shard label of the session's worker.
    shard: Option<u8>,
    since_ms: u64,
    transport: Transport,
    revoked: Option<&'static str>,
    /// (visible prefix, real prefix) pairs from bind and mount.
    binds: Vec<(String, String)>,
    claims: Option<Claims>,
    bytes_moved: u64,
    ops: u64,
    /// Per scope: (second, operations in that second).
    scope_windows: Vec<(u64, u32)>,
    ring_opens: u32,
    ring_reads: u32,
    /// The GPU a `worker-gpu` session's worker holds a lease on.
    gpu: Option<String>,
}

impl Session {
    fn owner(&self) -> String {
        match &self.subject {
            Some(s) => format!("{}:{}", self.role.as_str(), s),
            None => self.role.as_str().to_string(),
        }
    }
}

#[derive(Debug)]
struct Worker {
    shard: u8,
    ring: Ring,
    ticks_total: u32,
    ticks_done: u32,
    tick_budget: u32,
    ops_budget: u32,
    ops_used: u32,
    expires_ms: u64,
    next_tick_ms: u64,
    sessions: u32,
    /// The lease of a GPU worker; `None` for heartbeat workers.
    lease: Option<GpuLease>,
}

/// One GPU lease: bookkeeping against the manifest's declared capacity.
#[derive(Debug, Clone, Copy)]
struct GpuLease {
    /// Index of the device in `manifest.gpu.devices`.
    device: usize,
    mem_mb: u32,
    streams: u32,
    priority: u32,
}

/// The lease booked against one GPU by the lines of a ctl write so far.
#[derive(Debug, Default, Clone, Copy)]
struct Booked {
    mem_mb: i64,
    streams: i64,
    leases: i64,
}

impl Worker {
    fn next_event(&self) -> u64 {
        if self.ticks_done < self.ticks_total.min(self.tick_budget.saturating_add(1)) {
            self.next_tick_ms.min(self.expires_ms)
        } else {
            self.expires_ms
        }
    }
}

/// Refusal counters shown under `/proc/pressure`.
#[derive(Debug, Default, Clone, Copy)]
pub struct Pressure {
    pub busy: u64,
    pub quota: u64,
    pub cut: u64,
    pub policy: u64,
}

impl Pressure {
    fn count(&mut self, class: ErrorClass) {
        let slot = match class {
            ErrorClass::Busy => &mut self.busy,
            ErrorClass::Quota | ErrorClass::TooBig | ErrorClass::RateLimited => &mut self.quota,
            ErrorClass::Closed => &mut self.cut,
            _ => &mut self.policy,
        };
        *slot += 1;
    }
}

/// What an open fid (or a console read) holds.
#[derive(Debug)]
pub enum OpenFile {
    /// Content generated at open; reads slice it.
    Snapshot(Vec<u8>),
    /// A ring read through a cursor; the client's offset is ignored.
    Ring {
        target: RingTarget,
        cursor: Cursor,
    },
    /// A control file; reading returns what the last write produced.
    Ctl {
        path: String,
        reply: Vec<u8>,
    },
    Dir,
    /// A telemetry segment, artifact upload or artifact read-back.
    Ingest(IngestOpen),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RingTarget {
    Worker(u64),
    QueenLog,
    /// The job ring of the GPU at this index of `manifest.gpu.devices`.
    GpuJob(usize),
}

/// What an append produced.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct AppendOutcome {
    pub bytes: u32,
    /// A line for the writer: the new worker id or segment id, if any.
    pub reply: Option<String>,
}

/// The hive state machine.
pub struct Hive {
    manifest: Manifest,
    manifest_name: String,
    manifest_sha256: String,
    secrets: Secrets,
    store: Box<dyn Store>,
    started_ms: u64,
    now_ms: u64,
    lifecycle: Lifecycle,
    workers: HashMap<u64, Worker>,
    shards: Vec<BTreeSet<u64>>,
    next_worker: u64,
    reserved_worker: u64,
    timers: BinaryHeap<Reverse<(u64, u64)>>,
    sessions: BTreeMap<SessionId, Session>,
    next_session: u64,
    audit: Audit,
    pressure: Pressure,
    spawned: u64,
    revoked: u64,
    outstanding: u64,
    /// Per declared GPU (manifest order): the workers leasing it.
    gpu_leases: Vec<BTreeSet<u64>>,
    /// Per declared GPU (manifest order): its job ring.
    gpu_jobs: Vec<Ring>,
    pub ingest: Ingest,
}

impl Hive {
    /// Starts a hive and moves it from BOOTING to ONLINE.
    pub fn new(init: HiveInit) -> Hive {
        let manifest_sha256 = manifest_fingerprint(&init.manifest);
        let shard_count = 1usize << init.manifest.workers.shard_bits.clamp(1, 8);
        let audit = Audit::new(init.manifest.audit.log_ring_bytes as usize);
        let next = init.next_worker_id.max(1);
        let gpus = init.manifest.gpu.devices.len();
        let job_ring = init.manifest.workers.ring_bytes as usize;
        let mut hive = Hive {
            manifest_name: init.manifest_name,
            manifest_sha256,
            secrets: init.secrets,
            store: init.store,
            started_ms: init.now_ms,
            now_ms: init.now_ms,
            lifecycle: Lifecycle::booting(init.now_ms),
            workers: HashMap::new(),
            shards: vec![BTreeSet::new(); shard_count],
            next_worker: next,
            reserved_worker: next,
            timers: BinaryHeap::new(),
            sessions: BTreeMap::new(),
            next_session: 1,
            audit,
            pressure: Pressure::default(),
            spawned: 0,
            revoked: 0,
            outstanding: 0,
            gpu_leases: vec![BTreeSet::new(); gpus],
            gpu_jobs: (0..gpus).map(|_| Ring::new(job_ring)).collect(),
            ingest: Ingest::new(&init.manifest.telemetry, Box::new(MemIngestStore::new())),
            manifest: init.manifest,
        };
        hive.lifecycle.online(init.now_ms);
        let line = format!("lifecycle BOOTING -> ONLINE reason=boot-complete first_worker={next}");
        hive.audit_line(&line);
        hive
    }

    /// Records an orderly shutdown in the audit stream.
    pub fn shutdown_note(&mut self) {
        let line = format!(
            "hive shutting down live_workers={} sessions={}",
            self.workers.len(),
            self.sessions.len()
        );
        self.audit_line(&line);
    }

    /// Puts telemetry ingest on `store` and loads what it holds (the edge
    /// calls this once at start; until then ingest lives in memory).
    pub fn set_ingest_store(&mut self, store: Box<dyn IngestStore>) -> Result<(), IngestFault> {
        let devices = self.ingest.recover(store)?;
        self.audit_line(&format!("telemetry recovered devices={devices}"));
        Ok(())
    }

    /// Writes the audit lines ingest produced (evictions, artifacts).
    fn flush_ingest_events(&mut self) {
        for line in self.ingest.take_events() {
            self.audit_line(&line);
        }
    }

    pub fn manifest(&self) -> &Manifest {
        &self.manifest
    }

    pub fn now_ms(&self) -> u64 {
        self.now_ms
    }

    pub fn lifecycle_state(&self) -> State {
        self.lifecycle.state
    }

    pub fn live_workers(&self) -> usize {
        self.workers.len()
    }

    pub fn pressure(&self) -> Pressure {
        self.pressure
    }

    /// Counts a refusal made at the edge or by the session engine.
    pub fn count_refusal(&mut self, class: ErrorClass) {
        self.pressure.count(class);
    }

    /// The edge reports requests it has accepted but not yet answered.
    pub fn set_outstanding(&mut self, n: u64) {
        self.outstanding = n;
    }

    fn refuse(&mut self, sid: Option<SessionId>, op: &str, path: &str, err: NsError) -> NsError {
        self.pressure.count(err.class);
        if err.class == ErrorClass::Permission {
            let who = sid
                .and_then(|s| self.sessions.get(&s))
                .map_or("none".into(), Session::owner);
            let line = format!(
                "denied op={op} path={path} owner={who} detail={}",
                err.detail
            );
            self.audit.note_limited(self.now_ms, line, &mut *self.store);
        }
        err
    }

    fn audit_line(&mut self, line: &str) {
        self.audit.note(self.now_ms, line, &mut *self.store);
    }

    // ---- sessions -------------------------------------------------------

    /// Verifies a role and credential and starts a session.
    pub fn attach(
        &mut self,
        role: &str,
        cred: Credential<'_>,
        transport: Transport,
    ) -> Result<SessionId, NsError> {
        let result = self.check_attach(role, cred, transport);
        let (role, claims) = match result {
            Ok(ok) => ok,
            Err(e) => return Err(self.refuse(None, "attach", "/", e)),
        };
        let subject = claims.as_ref().and_then(|c| c.subject.clone());
        let worker = subject
            .as_deref()
            .and_then(node::parse_worker_id)
            .filter(|_| role.is_worker());
        let mut shard = None;
        let mut gpu = None;
        if let Some(w) = worker.and_then(|n| self.workers.get_mut(&n)) {
            w.sessions += 1;
            shard = Some(w.shard);
            if role == Role::WorkerGpu {
                gpu = w.lease.map(|l| l.device);
            }
        }
        let gpu = gpu
            .and_then(|i| self.manifest.gpu.devices.get(i))
            .map(|d| d.id.clone());
        let sid = SessionId(self.next_session);
        self.next_session += 1;
        let session = Session {
            role,
            subject,
            worker,
            shard,
            since_ms: self.now_ms,
            transport,
            revoked: None,
            binds: Vec::new(),
            claims,
            bytes_moved: 0,
            ops: 0,
            scope_windows: Vec::new(),
            ring_opens: 0,
            ring_reads: 0,
            gpu,
        };
        self.sessions.insert(sid, session);
        Ok(sid)
    }

    fn check_attach(
        &self,
        role: &str,
        cred: Credential<'_>,
        transport: Transport,
    ) -> Result<(Role, Option<Claims>), NsError> {
        let role: Role = role
            .parse()
            .map_err(|_| NsError::permission("unknown-role"))?;
        let limit = match transport {
            Transport::NineP => self.manifest.ninep.max_sessions,
            Transport::Console => self.manifest.console.max_clients,
        } as usize;
        if self
            .sessions
            .values()
            .filter(|s| s.transport == transport)
            .count()
            >= limit
        {
            return Err(NsError::busy("too-many-sessions"));
        }
        let ticket = match cred {
            Credential::ConsoleOperator if role == Role::Queen => return Ok((role, None)),
            Credential::ConsoleOperator => return Err(NsError::permission("ticket-required")),
            Credential::Ticket(t) => t.trim(),
        };
        let claims = self.verify_ticket(ticket, role)?;
        if let Some(n) = claims.subject.as_deref().and_then(node::parse_worker_id) {
            if role.is_worker() {
                let Some(w) = self.workers.get(&n) else {
                    return Err(NsError::permission("worker-gone"));
                };
                if w.sessions >= MAX_SESSIONS_PER_WORKER {
                    return Err(NsError::busy("too-many-sessions"));
                }
            }
        }
        Ok((role, Some(claims)))
    }

    fn verify_ticket(&self, ticket: &str, role: Role) -> Result<Claims, NsError> {
        let denied = NsError::permission("invalid-ticket");
        let claimed = cohesix_ticket::peek_role(ticket).map_err(|_| denied.clone())?;
        if claimed != role {
            return Err(NsError::permission("wrong-role"));
        }
        let secret = self.secrets.for_role(role).ok_or_else(|| denied.clone())?;
        let limits = ticket_limits(&self.manifest);
        let claims = cohesix_ticket::verify(ticket, secret, self.now_ms, &limits).map_err(|e| {
            tracing::debug!(error = %e, role = role.as_str(), "ticket refused");
            match e {
                cohesix_ticket::TicketError::Expired { .. } => {
                    NsError::permission("ticket-expired")
                }
                _ => denied.clone(),
            }
        })?;
        if claims.role != role {
            return Err(NsError::permission("wrong-role"));
        }
        if claims.ttl_ms() > u64::from(self.manifest.tickets.max_ttl_s) * 1000 {
            return Err(NsError::permission("ticket-ttl"));
        }
        if role.is_worker()
            && claims
                .subject
                .as_deref()
                .and_then(node::parse_worker_id)
                .is_none()
        {
            return Err(NsError::permission("bad-subject"));
        }
        Ok(claims)
    }

    /// Ends a session.
    pub fn detach(&mut self, sid: SessionId) {
        if let Some(s) = self.sessions.remove(&sid) {
            if let Some(w) = s.worker.and_then(|n| self.workers.get_mut(&n)) {
                w.sessions = w.sessions.saturating_sub(1);
            }
        }
    }

    pub fn session_role(&self, sid: SessionId) -> Option<Role> {
        self.sessions.get(&sid).map(|s| s.role)
    }

    /// Checks the session is alive and charges one operation to it.
    fn charge(&mut self, sid: SessionId, bytes: u64) -> Result<(), NsError> {
        let s = self
            .sessions
            .get_mut(&sid)
            .ok_or(NsError::closed("no-session"))?;
        if s.revoked.is_some() {
            return Err(NsError::closed("revoked"));
        }
        s.ops += 1;
        s.bytes_moved += bytes;
        if let Some(claims) = &s.claims {
            if claims.budget.ops.is_some_and(|max| s.ops > u64::from(max)) {
                return Err(NsError::quota("ticket-ops"));
            }
            if claims
                .quotas
                .bandwidth_bytes
                .is_some_and(|max| s.bytes_moved > u64::from(max))
            {
                return Err(NsError::quota("bandwidth"));
            }
        }
        let Some(n) = s.worker else { return Ok(()) };
        let exhausted = match self.workers.get_mut(&n) {
            Some(w) => {
                w.ops_used = w.ops_used.saturating_add(1);
                w.ops_used > w.ops_budget
            }
            None => return Err(NsError::closed("worker-gone")),
        };
        if exhausted {
            self.revoke_worker(n, "ops budget exhausted");
            return Err(NsError::closed("revoked"));
        }
        Ok(())
    }

    /// Refuses, before an append runs, what [`Hive::charge`] would refuse
    /// after it (ticket ops or bandwidth, the worker's ops budget), so that
    /// a refused append stores nothing. The refusal itself is charged as
    /// `charge` always did (counters, revocation).
    fn precharge(&mut self, sid: SessionId, bytes: u64) -> Result<(), NsError> {
        let s = self
            .sessions
            .get(&sid)
            .ok_or(NsError::closed("no-session"))?;
        let over_ticket = s.claims.as_ref().is_some_and(|c| {
            c.budget.ops.is_some_and(|max| s.ops + 1 > u64::from(max))
                || c.quotas
                    .bandwidth_bytes
                    .is_some_and(|max| s.bytes_moved + bytes > u64::from(max))
        });
        let over_worker = s
            .worker
            .and_then(|n| self.workers.get(&n))
            .is_some_and(|w| w.ops_used.saturating_add(1) > w.ops_budget);
        if over_ticket || over_worker {
            self.charge(sid, bytes)?;
        }
        Ok(())
    }

    /// Enforces the ticket's scopes (path prefix, verb, rate) and cursor
    /// quotas. A ticket without scopes is limited by role policy alone.
    fn check_scopes(
        &mut self,
        sid: SessionId,
        path: &str,
        mode: OpenMode,
        ring: bool,
    ) -> Result<(), NsError> {
        let now_s = self.now_ms / 1000;
        let s = self
            .sessions
            .get_mut(&sid)
            .ok_or(NsError::closed("no-session"))?;
        let Some(claims) = &s.claims else {
            return Ok(());
        };
        if ring {
            s.ring_opens += 1;
            if claims
                .quotas
                .cursor_resumes
                .is_some_and(|max| s.ring_opens > max)
            {
                return Err(NsError::quota("cursor-resumes"));
            }
        }
        if claims.scopes.is_empty() {
            return Ok(());
        }
        let under = |scope: &str| {
            path == scope
                || path.strip_prefix(scope).is_some_and(|r| r.starts_with('/'))
                || scope == "/"
        };
        let hit = claims.scopes.iter().position(|sc| {
            under(&sc.path)
                && (!mode.reads() || sc.verb.reads())
                && (!mode.writes() || sc.verb.writes())
        });
        let Some(i) = hit else {
            return Err(NsError::permission("out-of-scope"));
        };
        let rate = claims.scopes[i].rate_per_s;
        s.scope_windows.resize(claims.scopes.len(), (0, 0));
        let window = &mut s.scope_windows[i];
        if window.0 != now_s {
            *window = (now_s, 0);
        }
        window.1 += 1;
        if rate > 0 && window.1 > rate {
            return Err(NsError::quota("scope-rate"));
        }
        Ok(())
    }

    fn alive(&self, sid: SessionId) -> Result<&Session, NsError> {
        let s = self
            .sessions
            .get(&sid)
            .ok_or(NsError::closed("no-session"))?;
        match s.revoked {
            Some(_) => Err(NsError::closed("revoked")),
            None => Ok(s),
        }
    }

    // ---- paths and policy -----------------------------------------------

    /// Applies the session's binds and mounts to a visible path.
    fn translate(&self, sid: SessionId, path: &str) -> String {
        let Some(s) = self.sessions.get(&sid) else {
            return path.to_string();
        };
        let hit = s
            .binds
            .iter()
            .filter(|(to, _)| {
                path == to
                    || path
                        .strip_prefix(to.as_str())
                        .is_some_and(|r| r.starts_with('/'))
            })
            .max_by_key(|(to, _)| to.len());
        match hit {
            Some((to, from)) => format!("{from}{}", &path[to.len()..]),
            None => path.to_string(),
        }
    }

    /// Resolves a visible path to an existing node the session may see.
    fn resolve(&self, sid: SessionId, path: &str) -> Result<(String, Node), NsError> {
        let real = self.translate(sid, path);
        let node = node::parse(&real).ok_or(NsError::not_found("invalid-path"))?;
        if !self.exists(&node, &real) {
            if self.bind_parent(sid, path) {
                return Ok((real, Node::Dir(Dir::Fixed("/"))));
            }
            return Err(NsError::not_found("invalid-path"));
        }
        let session = self.alive(sid)?;
        if !may_see(session, &node) {
            return Err(NsError::permission("invalid-path"));
        }
        Ok((real, node))
    }

    /// True when `path` is a strict ancestor of a bind target (so the
    /// directories leading to a bind can be walked).
    fn bind_parent(&self, sid: SessionId, path: &str) -> bool {
        let Some(s) = self.sessions.get(&sid) else {
            return false;
        };
        s.binds
            .iter()
            .any(|(to, _)| to.strip_prefix(path).is_some_and(|r| r.starts_with('/')))
    }

    fn exists(&self, node: &Node, real: &str) -> bool {
        match node {
            Node::Dir(Dir::Session(id)) | Node::File(File::Session(id, _)) => {
                self.sessions.contains_key(&SessionId(*id))
            }
            Node::Dir(Dir::ShardLabel(l)) | Node::Dir(Dir::ShardWorkers(l)) => {
                usize::from(*l) < self.shards.len()
            }
            Node::Dir(Dir::Worker(n)) | Node::File(File::Telemetry(n)) => {
                let in_shard = match node::shard_label_in(real) {
                    Some(label) => self.workers.get(n).is_some_and(|w| w.shard == label),
                    None => self.manifest.workers.worker_alias,
                };
                in_shard && self.workers.contains_key(n)
            }
            Node::Dir(Dir::WorkerAlias) => self.manifest.workers.worker_alias,
            Node::Dir(Dir::Device(_) | Dir::DeviceSegs(_) | Dir::DeviceArtifacts(_))
            | Node::File(
                File::DeviceCtl(_)
                | File::DeviceLatest(_)
                | File::Segment(..)
                | File::ArtifactUpload(_)
                | File::Artifact(..),
            ) => self.ingest.node_exists(node),
            Node::Dir(Dir::Gpu) => !self.manifest.gpu.devices.is_empty(),
            Node::Dir(Dir::GpuDevice(id))
            | Node::File(File::GpuInfo(id) | File::GpuLease(id) | File::GpuJob(id)) => {
                self.gpu_index(id).is_some()
            }
            _ => true,
        }
    }

    // ---- namespace operations -------------------------------------------

    /// Looks up one path (walk steps and getattr).
    pub fn stat_path(&mut self, sid: SessionId, path: &str) -> Result<NodeStat, NsError> {
        let result = self
            .resolve(sid, path)
            .map(|(real, node)| self.node_stat(sid, &real, &node));
        result.map_err(|e| self.refuse(Some(sid), "stat", path, e))
    }

    fn node_stat(&self, sid: SessionId, real: &str, node: &Node) -> NodeStat {
        let (ty, mode, size) = match node {
            Node::Dir(_) => (qid_type::DIR, 0o040_555, 0),
            Node::File(f) => match f {
                File::QueenCtl | File::LifecycleCtl | File::DeviceCtl(_) => {
                    (qid_type::APPEND, 0o100_644, 0)
                }
                File::Telemetry(n) => {
                    let len = self.workers.get(n).map_or(0, |w| w.ring.len());
                    (qid_type::APPEND, 0o100_644, len as u64)
                }
                File::QueenLog => (qid_type::APPEND, 0o100_644, self.audit.ring().len() as u64),
                File::GpuJob(id) => {
                    let len = self
                        .gpu_index(id)
                        .and_then(|i| self.gpu_jobs.get(i))
                        .map_or(0, Ring::len);
                    (qid_type::APPEND, 0o100_644, len as u64)
                }
                File::Segment(..) | File::ArtifactUpload(_) => {
                    (qid_type::APPEND, 0o100_644, self.ingest.size_of(f))
                }
                File::DeviceLatest(_) | File::Artifact(..) => {
                    (qid_type::FILE, 0o100_444, self.ingest.size_of(f))
                }
                _ => {
                    let len = self.generate(sid, f).map_or(0, |d| d.len());
                    (qid_type::FILE, 0o100_444, len as u64)
                }
            },
        };
        let qid = Qid {
            ty,
            version: 0,
            path: node::qid_path(real),
        };
        NodeStat {
            qid,
            mode,
            size,
            mtime_ms: self.now_ms,
        }
    }

    /// Lists a directory.
    pub fn list(&mut self, sid: SessionId, path: &str) -> Result<Vec<(String, NodeStat)>, NsError> {
        let result = self.list_inner(sid, path);
        result.map_err(|e| self.refuse(Some(sid), "list", path, e))
    }

    fn list_inner(
        &mut self,
        sid: SessionId,
        path: &str,
    ) -> Result<Vec<(String, NodeStat)>, NsError> {
        let (real, node) = self.resolve(sid, path)?;
        let Node::Dir(dir) = &node else {
            return Err(NsError::invalid("not-a-directory"));
        };
        let session = self.alive(sid)?;
        if !may_list(session, dir) {
            return Err(NsError::permission("invalid-path"));
        }
        self.charge(sid, 0)?;
        let mut names = self.children(dir);
        for (to, _) in &self.sessions[&sid].binds {
            if let Some((parent, name)) = to.rsplit_once('/') {
                let parent = if parent.is_empty() { "/" } else { parent };
                if parent == path && !names.iter().any(|n| n == name) {
                    names.push(name.to_string());
                }
            }
        }
        let base = if path == "/" { "" } else { path };
        let mut out = Vec::with_capacity(names.len());
        for name in names {
            let child = format!("{base}/{name}");
            if let Ok((creal, cnode)) = self.resolve(sid, &child) {
                out.push((name, self.node_stat(sid, &creal, &cnode)));
            }
        }
        let _ = real;
        Ok(out)
    }

    fn children(&self, dir: &Dir) -> Vec<String> {
        let own = |names: &[&str]| names.iter().map(|s| s.to_string()).collect();
        match dir {
            Dir::Root => {
                let mut v = vec!["proc", "queen", "shard", "log"];
                if self.manifest.workers.worker_alias {
                    v.insert(3, "worker");
                }
                if !self.manifest.gpu.devices.is_empty() {
                    v.push("gpu");
                }
                own(&v)
            }
            Dir::Fixed("/proc/9p/session") => {
                let mut v = vec!["active".to_string()];
                v.extend(self.sessions.keys().map(|s| s.0.to_string()));
                v
            }
            Dir::Fixed("/queen/telemetry") => self.ingest.devices(),
            Dir::Fixed(p) => node::FIXED_DIRS
                .iter()
                .find(|(d, _)| d == p)
                .map_or_else(Vec::new, |(_, names)| own(names)),
            Dir::Session(_) => own(&["state", "since_ms", "owner"]),
            Dir::Shard => (0..self.shards.len())
                .filter(|&l| !self.shards[l].is_empty())
                .map(|l| format!("{l:02x}"))
                .collect(),
            Dir::ShardLabel(_) => own(&["worker"]),
            Dir::ShardWorkers(l) => self.shards[usize::from(*l)]
                .iter()
                .map(|&n| node::worker_name(n))
                .collect(),
            Dir::Worker(_) => own(&["telemetry"]),
            // TODO-performance: listing /worker is O(live workers) under the hive
            // lock (sort, then a stat per entry). With tens of thousands of workers
            // each listing holds the lock for milliseconds; this is the suspected
            // (not yet profiled) reason RAMP-100K's achieved rate falls as workers
            // grow (BENCHMARKS.md). An ordered index and paged readdir would fix it.
            Dir::WorkerAlias => {
                let mut ids: Vec<u64> = self.workers.keys().copied().collect();
                ids.sort_unstable();
                ids.into_iter().map(node::worker_name).collect()
            }
            Dir::Device(_) | Dir::DeviceSegs(_) | Dir::DeviceArtifacts(_) => {
                self.ingest.children(dir)
            }
            Dir::Gpu => self
                .manifest
                .gpu
                .devices
                .iter()
                .map(|d| d.id.clone())
                .collect(),
            Dir::GpuDevice(_) => own(&["info", "lease", "job"]),
        }
    }

    /// Opens a path.
    pub fn open_path(
        &mut self,
        sid: SessionId,
        path: &str,
        mode: OpenMode,
    ) -> Result<OpenFile, NsError> {
        let result = self.open_inner(sid, path, mode);
        result.map_err(|e| self.refuse(Some(sid), "open", path, e))
    }

    fn open_inner(
        &mut self,
        sid: SessionId,
        path: &str,
        mode: OpenMode,
    ) -> Result<OpenFile, NsError> {
        let (real, node) = self.resolve(sid, path)?;
        let session = self.alive(sid)?;
        let file = match &node {
            Node::Dir(_) if mode.writes() => return Err(NsError::invalid("is-a-directory")),
            Node::Dir(_) => {
                self.charge(sid, 0)?;
                return Ok(OpenFile::Dir);
            }
            Node::File(f) => f.clone(),
        };
        if mode.reads() && !may_read(session, &file) {
            return Err(NsError::permission("invalid-path"));
        }
        if mode.writes() && !may_append(session, &file) {
            return Err(NsError::permission("invalid-path"));
        }
        let is_ring = matches!(file, File::Telemetry(_) | File::QueenLog | File::GpuJob(_));
        self.check_scopes(sid, path, mode, is_ring)?;
        self.charge(sid, 0)?;
        let open = match file {
            File::Telemetry(n) => {
                let cursor = self
                    .workers
                    .get(&n)
                    .map(|w| w.ring.oldest())
                    .unwrap_or_default();
                OpenFile::Ring {
                    target: RingTarget::Worker(n),
                    cursor,
                }
            }
            File::QueenLog => OpenFile::Ring {
                target: RingTarget::QueenLog,
                cursor: self.audit.ring().oldest(),
            },
            File::GpuJob(id) => {
                let i = self
                    .gpu_index(&id)
                    .ok_or(NsError::not_found("invalid-path"))?;
                let cursor = self.gpu_jobs.get(i).map(Ring::oldest).unwrap_or_default();
                OpenFile::Ring {
                    target: RingTarget::GpuJob(i),
                    cursor,
                }
            }
            File::QueenCtl | File::LifecycleCtl | File::DeviceCtl(_) => OpenFile::Ctl {
                path: real,
                reply: Vec::new(),
            },
            File::DeviceLatest(d) => OpenFile::Snapshot(self.ingest.latest(&d)?),
            f @ (File::Segment(..) | File::ArtifactUpload(_) | File::Artifact(..)) => {
                OpenFile::Ingest(self.ingest.open(&f, mode)?)
            }
            f => OpenFile::Snapshot(
                self.generate(sid, &f)
                    .ok_or(NsError::not_found("invalid-path"))?,
            ),
        };
        Ok(open)
    }

    /// Reads from an open file.
    pub fn read_open(
        &mut self,
        sid: SessionId,
        open: &mut OpenFile,
        offset: u64,
        count: u32,
        out: &mut Vec<u8>,
    ) -> Result<(), NsError> {
        let result = self.read_inner(sid, open, offset, count, out);
        self.flush_ingest_events();
        result.map_err(|e| self.refuse(Some(sid), "read", "-", e))
    }

    fn read_inner(
        &mut self,
        sid: SessionId,
        open: &mut OpenFile,
        offset: u64,
        count: u32,
        out: &mut Vec<u8>,
    ) -> Result<(), NsError> {
        self.alive(sid)?;
        let count = count as usize;
        match open {
            OpenFile::Snapshot(data) | OpenFile::Ctl { reply: data, .. } => {
                let start = usize::try_from(offset)
                    .unwrap_or(usize::MAX)
                    .min(data.len());
                let end = start.saturating_add(count).min(data.len());
                self.charge(sid, (end - start) as u64)?;
                out.extend_from_slice(&data[start..end]);
            }
            OpenFile::Ring { target, cursor } => {
                self.count_ring_read(sid)?;
                let ring = match target {
                    RingTarget::Worker(n) => {
                        &self
                            .workers
                            .get(n)
                            .ok_or(NsError::closed("worker-gone"))?
                            .ring
                    }
                    RingTarget::QueenLog => self.audit.ring(),
                    RingTarget::GpuJob(i) => self
                        .gpu_jobs
                        .get(*i)
                        .ok_or(NsError::not_found("invalid-path"))?,
                };
                let marker_room = 64;
                let before = *cursor;
                let read = ring.read(cursor, count.saturating_sub(marker_room).max(1));
                if read.lagged > 0 {
                    let marker = format!("{{\"lagged_bytes\":{}}}\n", read.lagged);
                    if marker.len() + read.data.len() > count {
                        // The reply would be cut inside the marker and the
                        // bytes read past lost: keep the reader's place.
                        *cursor = before;
                        return Err(NsError::invalid("count-too-small"));
                    }
                    out.extend_from_slice(marker.as_bytes());
                }
                out.extend_from_slice(&read.data);
                let moved = out.len() as u64;
                self.charge(sid, moved)?;
            }
            OpenFile::Dir => return Err(NsError::invalid("is-a-directory")),
            OpenFile::Ingest(o) => {
                self.ingest.read(o, offset, count, out)?;
                self.charge(sid, out.len() as u64)?;
            }
        }
        Ok(())
    }

    fn count_ring_read(&mut self, sid: SessionId) -> Result<(), NsError> {
        let s = self
            .sessions
            .get_mut(&sid)
            .ok_or(NsError::closed("no-session"))?;
        s.ring_reads += 1;
        let max = s.claims.as_ref().and_then(|c| c.quotas.cursor_advances);
        if max.is_some_and(|max| s.ring_reads > max) {
            return Err(NsError::quota("cursor-advances"));
        }
        Ok(())
    }

    /// Appends to an open file.
    pub fn write_open(
        &mut self,
        sid: SessionId,
        open: &mut OpenFile,
        data: &[u8],
    ) -> Result<AppendOutcome, NsError> {
        let result = self.write_inner(sid, open, None, data);
        self.flush_ingest_events();
        result.map_err(|e| self.refuse(Some(sid), "append", "-", e))
    }

    /// Writes at a client's offset (9P `Twrite`). Append-only files ignore
    /// it; an artifact upload requires it to be the bytes received so far.
    pub fn write_open_at(
        &mut self,
        sid: SessionId,
        open: &mut OpenFile,
        offset: u64,
        data: &[u8],
    ) -> Result<AppendOutcome, NsError> {
        let result = self.write_inner(sid, open, Some(offset), data);
        self.flush_ingest_events();
        result.map_err(|e| self.refuse(Some(sid), "append", "-", e))
    }

    /// Releases an open file (9P `Tclunk`, or the end of a path-level
    /// operation): an artifact upload that was not committed is discarded.
    pub fn release_open(&mut self, _sid: SessionId, open: OpenFile) {
        if let OpenFile::Ingest(o) = open {
            self.ingest.release(o);
            self.flush_ingest_events();
        }
    }

    fn write_inner(
        &mut self,
        sid: SessionId,
        open: &mut OpenFile,
        offset: Option<u64>,
        data: &[u8],
    ) -> Result<AppendOutcome, NsError> {
        self.alive(sid)?;
        self.precharge(sid, data.len() as u64)?;
        let outcome = match open {
            OpenFile::Ring {
                target: RingTarget::Worker(n),
                ..
            } => self.append_telemetry(sid, *n, data)?,
            OpenFile::Ring {
                target: RingTarget::QueenLog,
                ..
            } => self.append_log(sid, data)?,
            OpenFile::Ring {
                target: RingTarget::GpuJob(i),
                ..
            } => self.append_job(*i, data)?,
            OpenFile::Ctl { path, reply } => {
                let path = path.clone();
                let outcome = self.append_ctl(sid, &path, data)?;
                reply.clear();
                if let Some(r) = &outcome.reply {
                    reply.extend_from_slice(r.as_bytes());
                    reply.push(b'\n');
                }
                outcome
            }
            OpenFile::Ingest(o) => AppendOutcome {
                bytes: self.ingest.write(o, offset, data)?,
                reply: None,
            },
            _ => return Err(NsError::permission("read-only")),
        };
        self.charge(sid, data.len() as u64)?;
        Ok(outcome)
    }

    /// Path-level append (console, REST): open, write, drop.
    pub fn append(
        &mut self,
        sid: SessionId,
        path: &str,
        data: &[u8],
    ) -> Result<AppendOutcome, NsError> {
        let mut open = self.open_path(sid, path, OpenMode::Write)?;
        let outcome = self.write_open(sid, &mut open, data);
        self.release_open(sid, open);
        outcome
    }

    /// Path-level read of a whole file, at most `max` bytes.
    pub fn read_path(
        &mut self,
        sid: SessionId,
        path: &str,
        max: usize,
    ) -> Result<Vec<u8>, NsError> {
        let mut open = self.open_path(sid, path, OpenMode::Read)?;
        let mut out = Vec::new();
        let count = u32::try_from(max).unwrap_or(u32::MAX);
        self.read_open(sid, &mut open, 0, count, &mut out)?;
        Ok(out)
    }

    /// The newest records of a ring file (or the whole of any other file),
    /// at most `max` bytes.
    pub fn tail_path(
        &mut self,
        sid: SessionId,
        path: &str,
        max: usize,
    ) -> Result<Vec<u8>, NsError> {
        let open = self.open_path(sid, path, OpenMode::Read)?;
        let data = match &open {
            OpenFile::Ring {
                target: RingTarget::Worker(n),
                ..
            } => self
                .workers
                .get(n)
                .map_or_else(Vec::new, |w| w.ring.tail(max)),
            OpenFile::Ring {
                target: RingTarget::QueenLog,
                ..
            } => self.audit.ring().tail(max),
            OpenFile::Ring {
                target: RingTarget::GpuJob(i),
                ..
            } => self.gpu_jobs.get(*i).map_or_else(Vec::new, |r| r.tail(max)),
            _ => return self.read_path(sid, path, max),
        };
        self.charge(sid, data.len() as u64)
            .map_err(|e| self.refuse(Some(sid), "tail", path, e))?;
        Ok(data)
    }

    // ---- appends ----------------------------------------------------------

    fn append_telemetry(
        &mut self,
        _sid: SessionId,
        n: u64,
        data: &[u8],
    ) -> Result<AppendOutcome, NsError> {
        let w_cfg = &self.manifest.workers;
        let max = (w_cfg.max_record_bytes as usize).min(w_cfg.ring_bytes as usize - 1);
        let record = single_record(data, max)?;
        let w = self
            .workers
            .get_mut(&n)
            .ok_or(NsError::closed("worker-gone"))?;
        w.ring.push(record);
        Ok(AppendOutcome {
            bytes: data.len() as u32,
            reply: None,
        })
    }

    fn append_job(&mut self, i: usize, data: &[u8]) -> Result<AppendOutcome, NsError> {
        let w_cfg = &self.manifest.workers;
        let max = (w_cfg.max_record_bytes as usize).min(w_cfg.ring_bytes as usize - 1);
        let record = single_record(data, max)?;
        let ring = self
            .gpu_jobs
            .get_mut(i)
            .ok_or(NsError::not_found("invalid-path"))?;
        ring.push(record);
        Ok(AppendOutcome {
            bytes: data.len() as u32,
            reply: None,
        })
    }

    fn append_log(&mut self, sid: SessionId, data: &[u8]) -> Result<AppendOutcome, NsError> {
        let record = single_record(data, self.manifest.audit.max_line_bytes as usize)?;
        let text = std::str::from_utf8(record).map_err(|_| NsError::invalid("invalid-payload"))?;
        let owner = self
            .sessions
            .get(&sid)
            .map_or_else(String::new, Session::owner);
        self.audit_line(&format!("note by={owner}: {text}"));
        Ok(AppendOutcome {
            bytes: data.len() as u32,
            reply: None,
        })
    }

    fn append_ctl(
        &mut self,
        sid: SessionId,
        path: &str,
        data: &[u8],
    ) -> Result<AppendOutcome, NsError> {
        if data.len() > MAX_CTL_WRITE {
            return Err(NsError::too_big("ctl-write"));
        }
        let bytes = data.len() as u32;
        match path {
            "/queen/ctl" => {
                let commands = ctl::parse_write(data)?;
                self.check_ctl(sid, &commands)?;
                let mut replies = Vec::new();
                for cmd in commands {
                    if let Some(r) = self.execute(sid, cmd)? {
                        replies.push(r);
                    }
                }
                let reply = (!replies.is_empty()).then(|| replies.join("\n"));
                Ok(AppendOutcome { bytes, reply })
            }
            "/queen/lifecycle/ctl" => {
                let text =
                    std::str::from_utf8(data).map_err(|_| NsError::invalid("invalid-payload"))?;
                let cmd = lifecycle::Command::parse(text)?;
                let live = self.workers.len();
                let from = self.lifecycle.apply(cmd, live, self.now_ms)?;
                let to = self.lifecycle.state;
                self.audit_line(&format!("lifecycle {from} -> {to} cmd={}", cmd.as_str()));
                Ok(AppendOutcome {
                    bytes,
                    reply: Some(format!("state={to}")),
                })
            }
            _ => {
                let Some(Node::File(File::DeviceCtl(device))) = node::parse(path) else {
                    return Err(self.ingest.unknown_device());
                };
                let seg = self.ingest.ctl(&device, data, self.now_ms)?;
                Ok(AppendOutcome {
                    bytes,
                    reply: Some(seg),
                })
            }
        }
    }

    fn execute(&mut self, sid: SessionId, cmd: CtlCommand) -> Result<Option<String>, NsError> {
        match cmd {
            CtlCommand::SpawnHeartbeat { ticks, budget } => self.spawn(ticks, budget).map(Some),
            // Leases are bookkeeping against the manifest's `[gpu]` inventory:
            // the hive neither discovers nor drives GPUs.
            CtlCommand::SpawnGpu { lease, budget } => self.spawn_gpu(&lease, budget).map(Some),
            CtlCommand::Kill { worker } => {
                let n =
                    node::parse_worker_id(&worker).ok_or(NsError::not_found("unknown-worker"))?;
                if !self.workers.contains_key(&n) {
                    return Err(NsError::not_found("unknown-worker"));
                }
                self.remove_worker(n, None);
                let owner = self
                    .sessions
                    .get(&sid)
                    .map_or_else(String::new, Session::owner);
                self.audit_line(&format!("killed {worker} by={owner}"));
                Ok(None)
            }
            CtlCommand::Bind(b) => self.bind(sid, &b.from, &b.to, "bind").map(|_| None),
            CtlCommand::Mount(m) => {
                let from = service_root(&m.service).ok_or(NsError::not_found("unknown-service"))?;
                self.bind(sid, from, &m.at, "mount").map(|_| None)
            }
        }
    }

    /// Checks a `/queen/ctl` write of several lines before any of them runs,
    /// so that a refused line leaves the effects of the lines before it
    /// undone (invariant 4): spawns and kills are checked against the
    /// worker set the earlier lines would leave, binds and mounts are
    /// applied to the session and taken back. A kill of a worker spawned
    /// in the same write is refused (its id is not known yet).
    fn check_ctl(&mut self, sid: SessionId, commands: &[CtlCommand]) -> Result<(), NsError> {
        if commands.len() < 2 {
            return Ok(()); // one line is checked as it runs
        }
        let saved = self.sessions.get(&sid).map(|s| s.binds.clone());
        let result = self.check_ctl_lines(sid, commands);
        if let (Some(saved), Some(s)) = (saved, self.sessions.get_mut(&sid)) {
            s.binds = saved;
        }
        result
    }

    fn check_ctl_lines(&mut self, sid: SessionId, commands: &[CtlCommand]) -> Result<(), NsError> {
        // Kills and spawns of the lines so far: O(lines), whatever the
        // number of workers (the scale bench spawns in large writes).
        let mut killed: BTreeSet<u64> = BTreeSet::new();
        let mut spawned = 0usize;
        let mut booked: BTreeMap<usize, Booked> = BTreeMap::new();
        for cmd in commands {
            match cmd {
                CtlCommand::SpawnHeartbeat { budget, .. } => {
                    self.require_new_work()?;
                    let live = self.workers.len() - killed.len() + spawned;
                    if live >= self.manifest.workers.max_workers as usize {
                        return Err(NsError::quota("buffer-full"));
                    }
                    self.budget_of(*budget)?;
                    spawned += 1;
                }
                CtlCommand::SpawnGpu { lease, budget } => {
                    self.require_new_work()?;
                    let live = self.workers.len() - killed.len() + spawned;
                    if live >= self.manifest.workers.max_workers as usize {
                        return Err(NsError::quota("buffer-full"));
                    }
                    self.budget_of(*budget)?;
                    let i = self.lease_fits(lease, &booked)?;
                    let b = booked.entry(i).or_default();
                    b.mem_mb += i64::from(lease.mem_mb);
                    b.streams += i64::from(lease.streams);
                    b.leases += 1;
                    spawned += 1;
                }
                CtlCommand::Kill { worker } => {
                    let n = node::parse_worker_id(worker)
                        .ok_or(NsError::not_found("unknown-worker"))?;
                    if !self.workers.contains_key(&n) || !killed.insert(n) {
                        return Err(NsError::not_found("unknown-worker"));
                    }
                    // A killed lease frees its capacity for later lines.
                    if let Some(l) = self.workers.get(&n).and_then(|w| w.lease) {
                        let b = booked.entry(l.device).or_default();
                        b.mem_mb -= i64::from(l.mem_mb);
                        b.streams -= i64::from(l.streams);
                        b.leases -= 1;
                    }
                }
                CtlCommand::Bind(b) => {
                    self.bind_apply(sid, &b.from, &b.to)?;
                }
                CtlCommand::Mount(m) => {
                    let from =
                        service_root(&m.service).ok_or(NsError::not_found("unknown-service"))?;
                    self.bind_apply(sid, from, &m.at)?;
                }
            }
        }
        Ok(())
    }

    /// The budget a spawn gets: the manifest's defaults, overridden.
    fn budget_of(&self, budget: BudgetSpec) -> Result<(u32, u32, u32), NsError> {
        let defaults = &self.manifest.workers;
        let tick_budget = budget.ticks.unwrap_or(defaults.default_ticks);
        let ops_budget = budget.ops.unwrap_or(defaults.default_ops);
        let ttl_s = budget.ttl_s.unwrap_or(defaults.default_ttl_s);
        if tick_budget == 0 || ops_budget == 0 || ttl_s == 0 {
            return Err(NsError::invalid("invalid-payload"));
        }
        Ok((tick_budget, ops_budget, ttl_s))
    }

    fn bind(&mut self, sid: SessionId, from: &str, to: &str, verb: &str) -> Result<(), NsError> {
        let (from, to) = self.bind_apply(sid, from, to)?;
        let owner = self
            .sessions
            .get(&sid)
            .map_or_else(String::new, Session::owner);
        self.audit_line(&format!(
            "{verb} {from} -> {to} by={owner} session={}",
            sid.0
        ));
        Ok(())
    }

    /// Adds a bind to the session (no audit line); returns the canonical
    /// (from, to).
    fn bind_apply(
        &mut self,
        sid: SessionId,
        from: &str,
        to: &str,
    ) -> Result<(String, String), NsError> {
        self.require_new_work()?;
        let depth = self.manifest.ninep.walk_depth as usize;
        let comp = self.manifest.ninep.max_component_bytes as usize;
        let from = node::canonical(from, depth, comp).ok_or(NsError::invalid("invalid-path"))?;
        let to = node::canonical(to, depth, comp).ok_or(NsError::invalid("invalid-path"))?;
        if to == "/" || from == "/" {
            return Err(NsError::invalid("invalid-path"));
        }
        // There is no unbind: a bind over /queen/ctl would take the
        // session's only way to bind, spawn or kill for good.
        if to == "/queen" || to == "/queen/ctl" {
            return Err(NsError::invalid("shadows-ctl"));
        }
        // The bind keeps the real path `from` names now: binding a bind's
        // target follows it, and no chain of binds can loop.
        let (real, node) = self.resolve(sid, &from)?;
        if !matches!(node, Node::Dir(_)) {
            return Err(NsError::invalid("not-a-directory"));
        }
        if node::parse(&real).is_none() {
            // only a directory leading to a bind target: nothing to bind
            return Err(NsError::not_found("invalid-path"));
        }
        let s = self
            .sessions
            .get_mut(&sid)
            .ok_or(NsError::closed("no-session"))?;
        s.binds.retain(|(t, _)| *t != to);
        if s.binds.len() >= MAX_BINDS_PER_SESSION {
            return Err(NsError::quota("too-many-binds"));
        }
        s.binds.push((to.clone(), real));
        Ok((from, to))
    }

    fn require_new_work(&self) -> Result<(), NsError> {
        if self.lifecycle.state.accepts_new_work() {
            Ok(())
        } else {
            Err(NsError::busy("lifecycle"))
        }
    }

    fn spawn(&mut self, ticks: u32, budget: BudgetSpec) -> Result<String, NsError> {
        self.require_new_work()?;
        if self.workers.len() >= self.manifest.workers.max_workers as usize {
            return Err(NsError::quota("buffer-full"));
        }
        let (tick_budget, ops_budget, ttl_s) = self.budget_of(budget)?;
        let n = self.take_worker_id()?;
        let name = node::worker_name(n);
        let shard = shard_of(&name, self.manifest.workers.shard_bits);
        let interval = u64::from(self.manifest.workers.heartbeat_interval_ms);
        let worker = Worker {
            shard,
            ring: Ring::new(self.manifest.workers.ring_bytes as usize),
            ticks_total: ticks,
            ticks_done: 0,
            tick_budget,
            ops_budget,
            ops_used: 0,
            expires_ms: self.now_ms + u64::from(ttl_s) * 1000,
            next_tick_ms: self.now_ms + interval,
            sessions: 0,
            lease: None,
        };
        self.insert_worker(n, worker);
        self.audit_line(&format!(
            "spawned {name} kind=heartbeat ticks={ticks} budget_ticks={tick_budget} ops={ops_budget} ttl_s={ttl_s}"
        ));
        Ok(name)
    }

    /// Hands out the next worker id, reserving a block durably first when
    /// the reserved ones are used up.
    fn take_worker_id(&mut self) -> Result<u64, NsError> {
        let n = self.next_worker;
        if n >= self.reserved_worker {
            let upto = n + WORKER_ID_BLOCK;
            self.store.reserve_worker_ids(upto).map_err(|e| {
                tracing::error!(error = %e, "cannot reserve worker ids");
                NsError::busy("store")
            })?;
            self.reserved_worker = upto;
        }
        self.next_worker += 1;
        Ok(n)
    }

    fn insert_worker(&mut self, n: u64, worker: Worker) {
        self.timers.push(Reverse((worker.next_event(), n)));
        if let Some(l) = worker.lease {
            if let Some(set) = self.gpu_leases.get_mut(l.device) {
                set.insert(n);
            }
        }
        self.shards[usize::from(worker.shard)].insert(n);
        self.workers.insert(n, worker);
        self.spawned += 1;
    }

    /// The index of a declared GPU in `manifest.gpu.devices`.
    fn gpu_index(&self, id: &str) -> Option<usize> {
        self.manifest.gpu.devices.iter().position(|d| d.id == id)
    }

    /// Checks a lease against its GPU's capacity, counting the active leases
    /// and what earlier lines of the same ctl write `booked`. Returns the
    /// GPU's index.
    fn lease_fits(
        &self,
        lease: &LeaseSpec,
        booked: &BTreeMap<usize, Booked>,
    ) -> Result<usize, NsError> {
        if lease.ttl_s == 0 || lease.mem_mb == 0 || lease.streams == 0 {
            return Err(NsError::invalid("invalid-payload"));
        }
        let i = self
            .gpu_index(&lease.gpu_id)
            .ok_or(NsError::not_found("unknown-gpu"))?;
        let device = &self.manifest.gpu.devices[i];
        let mut used = booked.get(&i).copied().unwrap_or_default();
        for l in self.gpu_leases[i]
            .iter()
            .filter_map(|n| self.workers.get(n).and_then(|w| w.lease))
        {
            used.mem_mb += i64::from(l.mem_mb);
            used.streams += i64::from(l.streams);
            used.leases += 1;
        }
        let fits = used.mem_mb + i64::from(lease.mem_mb) <= i64::from(device.mem_mb)
            && used.streams + i64::from(lease.streams) <= i64::from(device.streams)
            && used.leases < i64::from(self.manifest.gpu.max_leases_per_gpu);
        if !fits {
            return Err(NsError::quota("gpu-capacity"));
        }
        Ok(i)
    }

    /// Spawns a GPU lease worker: no heartbeats, revoked when the lease's
    /// TTL runs out. The budget's `ops` applies; the lease's `ttl_s` is the
    /// worker's lifetime.
    fn spawn_gpu(&mut self, lease: &LeaseSpec, budget: BudgetSpec) -> Result<String, NsError> {
        self.require_new_work()?;
        if self.workers.len() >= self.manifest.workers.max_workers as usize {
            return Err(NsError::quota("buffer-full"));
        }
        let (_, ops_budget, _) = self.budget_of(budget)?;
        let device = self.lease_fits(lease, &BTreeMap::new())?;
        let n = self.take_worker_id()?;
        let name = node::worker_name(n);
        let expires_ms = self.now_ms + u64::from(lease.ttl_s) * 1000;
        let worker = Worker {
            shard: shard_of(&name, self.manifest.workers.shard_bits),
            ring: Ring::new(self.manifest.workers.ring_bytes as usize),
            ticks_total: 0,
            ticks_done: 0,
            tick_budget: 0,
            ops_budget,
            ops_used: 0,
            expires_ms,
            next_tick_ms: expires_ms,
            sessions: 0,
            lease: Some(GpuLease {
                device,
                mem_mb: lease.mem_mb,
                streams: lease.streams,
                priority: lease.priority,
            }),
        };
        self.insert_worker(n, worker);
        self.audit_line(&format!(
            "spawned {name} kind=gpu gpu={} mem_mb={} streams={} ttl_s={}",
            lease.gpu_id, lease.mem_mb, lease.streams, lease.ttl_s
        ));
        Ok(name)
    }

    /// Removes a worker and cuts its sessions. `reason` = revocation.
    fn remove_worker(&mut self, n: u64, reason: Option<&'static str>) {
        let Some(w) = self.workers.remove(&n) else {
            return;
        };
        self.shards[usize::from(w.shard)].remove(&n);
        if let Some(set) = w.lease.and_then(|l| self.gpu_leases.get_mut(l.device)) {
            set.remove(&n);
        }
        for s in self.sessions.values_mut().filter(|s| s.worker == Some(n)) {
            s.revoked = Some(reason.unwrap_or("killed"));
        }
        if let Some(reason) = reason {
            self.revoked += 1;
            self.audit_line(&format!("revoked {}: {reason}", node::worker_name(n)));
        }
        let live = self.workers.len();
        if let Some(from) = self.lifecycle.settle(live, self.now_ms) {
            self.audit_line(&format!(
                "lifecycle {from} -> {} reason=drained",
                self.lifecycle.state
            ));
        }
    }

    fn revoke_worker(&mut self, n: u64, reason: &'static str) {
        self.remove_worker(n, Some(reason));
    }

    // ---- the clock --------------------------------------------------------

    /// Moves the hive's clock to `now_ms` and runs every timer that is due:
    /// heartbeats, TTL expiries. Returns how many events ran.
    pub fn advance(&mut self, now_ms: u64) -> usize {
        self.now_ms = self.now_ms.max(now_ms);
        let now = self.now_ms;
        let interval = u64::from(self.manifest.workers.heartbeat_interval_ms);
        let mut ran = 0;
        while ran < MAX_EVENTS_PER_ADVANCE {
            let Some(&Reverse((due, n))) = self.timers.peek() else {
                break;
            };
            if due > now {
                break;
            }
            self.timers.pop();
            ran += 1;
            let Some(w) = self.workers.get_mut(&n) else {
                continue;
            };
            if w.next_event() != due {
                continue; // a stale entry; the live one is still queued
            }
            if now >= w.expires_ms {
                let reason = if w.lease.is_some() {
                    "lease expired"
                } else {
                    "ttl expired"
                };
                self.revoke_worker(n, reason);
                continue;
            }
            if w.ticks_done >= w.tick_budget {
                self.revoke_worker(n, "tick budget exhausted");
                continue;
            }
            w.ticks_done += 1;
            let record = format!("{{\"tick\":{},\"ts_ms\":{}}}", w.ticks_done, now);
            w.ring.push(record.as_bytes());
            // Keep cadence, but never schedule into the past after a stall.
            w.next_tick_ms = (w.next_tick_ms + interval).max(now + 1);
            self.timers.push(Reverse((w.next_event(), n)));
        }
        ran
    }

    // ---- generated files ----------------------------------------------------

    fn generate(&self, sid: SessionId, file: &File) -> Option<Vec<u8>> {
        let text = match file {
            File::Proc(p) => self.proc_text(*p),
            File::Session(id, f) => {
                let s = self.sessions.get(&SessionId(*id))?;
                match f {
                    SessionFile::State => {
                        format!(
                            "state={}",
                            if s.revoked.is_some() {
                                "REVOKED"
                            } else {
                                "ACTIVE"
                            }
                        )
                    }
                    SessionFile::SinceMs => format!("since_ms={}", s.since_ms),
                    SessionFile::Owner => format!("owner={}", s.owner()),
                }
            }
            File::GpuInfo(id) => {
                let d = &self.manifest.gpu.devices[self.gpu_index(id)?];
                format!("id={} mem_mb={} streams={}", d.id, d.mem_mb, d.streams)
            }
            File::GpuLease(id) => return Some(self.lease_text(self.gpu_index(id)?)),
            _ => return None,
        };
        let _ = sid;
        let mut bytes = text.into_bytes();
        bytes.push(b'\n');
        Some(bytes)
    }

    /// One line per active lease on a GPU, by worker id; empty when none.
    fn lease_text(&self, device: usize) -> Vec<u8> {
        let mut text = String::new();
        let Some(set) = self.gpu_leases.get(device) else {
            return Vec::new();
        };
        for (&n, w) in set.iter().filter_map(|n| self.workers.get_key_value(n)) {
            let Some(l) = w.lease else { continue };
            let _ = writeln!(
                text,
                "worker={} mem_mb={} streams={} priority={} expires_ms={}",
                node::worker_name(n),
                l.mem_mb,
                l.streams,
                l.priority,
                w.expires_ms
            );
        }
        text.into_bytes()
    }

    fn proc_text(&self, p: ProcFile) -> String {
        let m = &self.manifest;
        let pr = &self.pressure;
        match p {
            ProcFile::Boot => format!(
                "cohesix-hive version={} hive={}\nmanifest={} schema={} sha256={}\n\
                 bounds msize={} walk_depth={} component_bytes={} sessions={} tags_in_flight={} \
                 fids={} workers={} ring_bytes={} record_bytes={} console_line_bytes={}\n\
                 started_ms={}",
                env!("CARGO_PKG_VERSION"),
                m.hive.name,
                self.manifest_name,
                cohesix_manifest::SCHEMA,
                self.manifest_sha256,
                m.ninep.msize,
                m.ninep.walk_depth,
                m.ninep.max_component_bytes,
                m.ninep.max_sessions,
                m.ninep.max_tags_in_flight,
                m.ninep.max_fids_per_session,
                m.workers.max_workers,
                m.workers.ring_bytes,
                m.workers.max_record_bytes,
                m.console.max_line_bytes,
                self.started_ms,
            ),
            ProcFile::LifecycleState => format!("state={}", self.lifecycle.state),
            ProcFile::LifecycleReason => format!("reason={}", self.lifecycle.reason),
            ProcFile::LifecycleSince => format!("since_ms={}", self.lifecycle.since_ms),
            ProcFile::Sessions => self.sessions_text(),
            ProcFile::Outstanding => format!(
                "outstanding current={} limit={}",
                self.outstanding,
                u64::from(m.ninep.max_sessions) * u64::from(m.ninep.max_tags_in_flight)
            ),
            ProcFile::SessionActive => {
                let draining = self
                    .sessions
                    .values()
                    .filter(|s| s.revoked.is_some())
                    .count();
                format!(
                    "active={} draining={}",
                    self.sessions.len() - draining,
                    draining
                )
            }
            ProcFile::IngestP50 => format!("p50_ms={}", self.ingest.p50_ms()),
            ProcFile::IngestP95 => format!("p95_ms={}", self.ingest.p95_ms()),
            ProcFile::IngestBackpressure => format!("backpressure={}", self.ingest.backpressure),
            ProcFile::IngestDropped => format!("dropped={}", self.ingest.dropped),
            ProcFile::IngestQueued => format!("queued={}", self.ingest.queued()),
            ProcFile::RootReachable => "reachable=yes".to_string(),
            ProcFile::RootLastSeen => format!("last_seen_ms={}", self.now_ms),
            ProcFile::RootCutReason => "cut_reason=none".to_string(),
            ProcFile::PressureBusy => format!("busy={}", pr.busy),
            ProcFile::PressureQuota => format!("quota={}", pr.quota),
            ProcFile::PressureCut => format!("cut={}", pr.cut),
            ProcFile::PressurePolicy => format!("policy={}", pr.policy),
            ProcFile::WorkersLive => format!("live={}", self.workers.len()),
            ProcFile::WorkersSpawned => format!("spawned={}", self.spawned),
            ProcFile::WorkersRevoked => format!("revoked={}", self.revoked),
            ProcFile::WorkersNextId => format!("next_id={}", node::worker_name(self.next_worker)),
        }
    }

    fn sessions_text(&self) -> String {
        let bits = self.manifest.workers.shard_bits;
        let mut per_shard = vec![0u32; self.shards.len()];
        let mut workers = 0;
        for s in self.sessions.values() {
            if let Some(w) = s.worker.and_then(|n| self.workers.get(&n)) {
                workers += 1;
                per_shard[usize::from(w.shard)] += 1;
            }
        }
        let mut text = format!(
            "sessions total={} worker={} shard_bits={} shard_count={}",
            self.sessions.len(),
            workers,
            bits,
            self.shards.len()
        );
        for (label, count) in per_shard.iter().enumerate().filter(|(_, c)| **c > 0) {
            let _ = write!(text, "\nshard {label:02x} {count}");
        }
        text
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
        return Err(NsError::invalid("invalid-payload"));
    }
    Ok(record)
}

/// The shard label of a worker: the first byte of sha256(id) shifted right
/// by `8 - shard_bits`.
pub fn shard_of(worker: &str, shard_bits: u32) -> u8 {
    let digest = Sha256::digest(worker.as_bytes());
    digest[0] >> (8 - shard_bits.clamp(1, 8))
}

/// Fingerprint of the effective manifest (sha256 of its canonical TOML).
pub fn manifest_fingerprint(m: &Manifest) -> String {
    m.fingerprint()
        .unwrap_or_else(|_| "unavailable".to_string())
}

fn service_root(service: &str) -> Option<&'static str> {
    Some(match service {
        "logs" => "/log",
        "proc" => "/proc",
        "shard" => "/shard",
        "workers" => "/worker",
        "telemetry" => "/queen/telemetry",
        "queen" => "/queen",
        _ => return None,
    })
}

fn ticket_limits(m: &Manifest) -> cohesix_ticket::Limits {
    let t = &m.tickets;
    cohesix_ticket::Limits {
        max_scopes: t.max_scopes,
        max_scope_rate_per_s: t.max_scope_rate_per_s,
        max_bandwidth_bytes: t.max_bandwidth_bytes,
        max_cursor_resumes: t.max_cursor_resumes,
        max_cursor_advances: t.max_cursor_advances,
    }
}

// ---- role policy (SURFACES §5) ------------------------------------------------

fn own_worker(session: &Session, n: u64) -> bool {
    session.worker == Some(n)
}

/// May the session walk to (stat) this node?
fn may_see(session: &Session, node: &Node) -> bool {
    if session.role == Role::Queen {
        return true;
    }
    match node {
        Node::Dir(Dir::Root | Dir::Shard | Dir::WorkerAlias) => true,
        Node::Dir(Dir::Fixed(p)) => matches!(*p, "/proc" | "/log"),
        Node::Dir(Dir::ShardLabel(l) | Dir::ShardWorkers(l)) => session.shard == Some(*l),
        Node::Dir(Dir::Worker(n)) | Node::File(File::Telemetry(n)) => own_worker(session, *n),
        Node::File(File::Proc(ProcFile::Boot) | File::QueenLog) => true,
        Node::Dir(Dir::Gpu) => session.gpu.is_some(),
        Node::Dir(Dir::GpuDevice(id))
        | Node::File(File::GpuInfo(id) | File::GpuLease(id) | File::GpuJob(id)) => {
            own_gpu(session, id)
        }
        _ => false,
    }
}

/// Does the session's worker hold a lease on GPU `id` (role `worker-gpu`)?
fn own_gpu(session: &Session, id: &str) -> bool {
    session.role == Role::WorkerGpu && session.gpu.as_deref() == Some(id)
}

fn may_list(session: &Session, dir: &Dir) -> bool {
    session.role == Role::Queen
        || match dir {
            Dir::Worker(n) => own_worker(session, *n),
            Dir::Gpu => session.gpu.is_some(),
            Dir::GpuDevice(id) => own_gpu(session, id),
            _ => false,
        }
}

fn may_read(session: &Session, file: &File) -> bool {
    match file {
        File::QueenCtl | File::LifecycleCtl | File::DeviceCtl(_) => session.role == Role::Queen,
        File::Telemetry(n) => session.role == Role::Queen || own_worker(session, *n),
        File::Proc(ProcFile::Boot) | File::QueenLog => true,
        File::GpuInfo(id) | File::GpuLease(id) | File::GpuJob(id) => {
            session.role == Role::Queen || own_gpu(session, id)
        }
        _ => session.role == Role::Queen,
    }
}

fn may_append(session: &Session, file: &File) -> bool {
    match file {
        File::Telemetry(n) => session.role == Role::Queen || own_worker(session, *n),
        File::GpuJob(id) => session.role == Role::Queen || own_gpu(session, id),
        File::QueenCtl
        | File::LifecycleCtl
        | File::QueenLog
        | File::DeviceCtl(_)
        | File::Segment(..)
        | File::ArtifactUpload(_) => session.role == Role::Queen,
        _ => false,
    }
}
