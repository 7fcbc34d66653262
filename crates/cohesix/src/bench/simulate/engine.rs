//! The load of a simulate run: start checks, the worker pool, the paced
//! operations and the per-second monitor.
//!
//! Three tasks share one [`Shared`]:
//!
//! - the **pacer** issues operations at `base_rps × intensity × live
//!   workers`, at most `max_inflight` at once; a slot that finds every
//!   permit taken is counted as lagged, not queued, so a saturated system
//!   shows as achieved < offered instead of a growing backlog;
//! - the **reconciler** keeps the live workers at the step's target:
//!   spawns through `/queen/ctl`, kills newest first when the target drops,
//!   and retires workers shortly before their TTL (the hive would revoke
//!   them) so that no operation is aimed at a worker that is going away;
//!   the first spawn refused for capacity sets the worker cap and ends
//!   spawning;
//! - the **monitor** closes one timeline row per second and draws the
//!   progress line.
//!
//! Every decision the run makes (which worker, which operation, how many
//! ticks) comes from RNGs seeded with `--seed`. Every loop is bounded by
//! the run's deadline; nothing here waits without a timeout.

use super::artifact::{self, ArtifactTotals, Devices};
use super::mix::{self, Mix, OpKind, Trees};
use super::plan::{offered_rps, Ramp, Scenario};
use super::rest::{Rest, RestError};
use super::stats::{RampRow, Recorder};
use cohesix_client::Client;
use indicatif::ProgressBar;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::Serialize;
use std::collections::BTreeMap;
use std::io::Write;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};
use tokio::sync::{OwnedMutexGuard, Semaphore};

/// The spawn line's budget (BENCHMARKS.md §2).
pub const WORKER_TTL_S: u64 = 300;
const WORKER_OPS: u32 = 500;
const TICKS_MIN: u32 = 50;
const TICKS_MAX: u32 = 200;
/// A worker leaves the pool this long before the hive's TTL revokes it.
const RETIRE_MARGIN: Duration = Duration::from_secs(20);
/// How long a worker taken out of the pool waits before it is killed, so
/// operations already aimed at it finish first.
const KILL_GRACE: Duration = Duration::from_secs(1);
/// How often the reconciler looks at the pool.
const RECONCILE_EVERY: Duration = Duration::from_millis(200);
/// Spawns issued per reconciler pass, at most.
const SPAWNS_PER_PASS: usize = 2048;
/// Pause before the one retry of a failed read.
const RETRY_PAUSE: Duration = Duration::from_millis(100);
/// Bytes asked of `cat` and `tail`.
const READ_BYTES: usize = 4096;
const TAIL_LINES: usize = 16;
/// Rejection-sampling tries when drawing a worker by load factor.
const PICK_TRIES: usize = 16;
/// Other workers' devices tried when the drawn one is busy.
const DEVICE_TRIES: usize = 64;
/// The statistics name of spawns and kills.
pub const OP_SPAWN: &str = "worker.spawn";
pub const OP_KILL: &str = "worker.kill";
/// The step index that warm-up operations are recorded under.
pub const WARMUP_STEP: usize = usize::MAX;

/// What the run does, resolved from flags and preset.
#[derive(Clone, Debug)]
pub struct Settings {
    pub ramp: Ramp,
    pub max_inflight: usize,
    pub spawn_concurrency: usize,
    pub no_retries: bool,
    pub seed: u64,
    pub scenario: Option<Scenario>,
    pub real_bytes: bool,
    pub chunk_bytes: u64,
    /// Kill the workers this run spawned when it ends (running hives).
    pub cleanup_workers: bool,
}

/// A live worker as the run knows it.
#[derive(Clone, Debug)]
struct Worker {
    id: String,
    n: u64,
    born: Instant,
    load: f64,
}

#[derive(Default)]
struct Pool {
    live: Vec<Worker>,
    leaving: Vec<(Worker, Instant)>,
    cap: Option<(u32, String)>,
    spawned: u64,
    killed: u64,
    retired: u64,
    peak: u32,
}

impl Pool {
    /// A live worker, drawn in proportion to its load factor.
    fn pick<R: Rng>(&self, rng: &mut R) -> Option<&Worker> {
        if self.live.is_empty() {
            return None;
        }
        let mut w = &self.live[0];
        for _ in 0..PICK_TRIES {
            w = &self.live[rng.gen_range(0..self.live.len())];
            if rng.gen::<f64>() * mix::LOAD_MAX < w.load {
                break;
            }
        }
        Some(w)
    }

    fn live(&self) -> u32 {
        u32::try_from(self.live.len()).unwrap_or(u32::MAX)
    }
}

/// What the start checks saw.
#[derive(Clone, Debug, Default, Serialize)]
pub struct StartChecks {
    pub bounds: serde_json::Value,
    pub status: serde_json::Value,
    pub trees: Trees,
    pub marker: String,
}

/// Everything a finished run hands to the summary.
pub struct Outcome {
    pub recorder: Recorder,
    pub ramp: Vec<RampRow>,
    pub worker_cap: Option<u32>,
    pub worker_cap_reason: Option<String>,
    pub workers_peak: u32,
    pub spawned: u64,
    pub killed: u64,
    pub retired: u64,
    pub retries: u64,
    pub warmup_s: f64,
    pub measured_s: f64,
    pub mix: Vec<(String, String, f64)>,
    pub artifact: ArtifactTotals,
    pub status_after: serde_json::Value,
    /// Why the run could not finish as planned.
    pub run_error: Option<String>,
}

/// The run's log: a file in the evidence folder plus the terminal.
pub struct RunLog {
    file: Mutex<std::fs::File>,
    bar: ProgressBar,
    started: Instant,
}

impl RunLog {
    pub fn new(file: std::fs::File, bar: ProgressBar) -> RunLog {
        RunLog {
            file: Mutex::new(file),
            bar,
            started: Instant::now(),
        }
    }

    pub fn line(&self, text: &str) {
        let line = format!("[{:8.2}s] {text}", self.started.elapsed().as_secs_f64());
        if let Ok(mut f) = self.file.lock() {
            let _ = writeln!(f, "{line}");
        }
        if self.bar.is_hidden() {
            eprintln!("{line}");
        } else {
            self.bar.println(&line);
        }
    }

    pub fn bar(&self) -> &ProgressBar {
        &self.bar
    }
}

struct Shared {
    rest: Rest,
    nine: Option<Client>,
    settings: Settings,
    mix: Mix,
    pool: Mutex<Pool>,
    rec: Mutex<Recorder>,
    devices: Devices,
    artifact: Mutex<ArtifactTotals>,
    retries: AtomicU64,
    in_flight: AtomicU64,
    step: AtomicU64,
    stop: AtomicBool,
    log: Arc<RunLog>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    match m.lock() {
        Ok(g) => g,
        // A panicking operation task leaves numbers, not broken state.
        Err(poisoned) => poisoned.into_inner(),
    }
}

/// Start checks (BENCHMARKS.md §2): bounds, status, `LS /`, discovery and
/// the start marker. Any failure ends the run before load starts.
pub async fn start_checks(rest: &Rest, marker: &str) -> Result<StartChecks, RestError> {
    let bounds = rest.get_json("/v1/meta/bounds").await?;
    let status = rest.get_json("/v1/meta/status").await?;
    let root = rest.ls("/").await?;
    let trees = discover(rest, root).await;
    rest.echo("/log/queen.log", marker).await?;
    Ok(StartChecks {
        bounds,
        status,
        trees,
        marker: marker.to_string(),
    })
}

async fn discover(rest: &Rest, root: Vec<String>) -> Trees {
    let has = |name: &str| root.iter().any(|n| n == name);
    let mut status_files = Vec::new();
    for dir in ["/proc/root", "/proc/9p/session", "/proc/pressure"] {
        let Ok(names) = rest.ls(dir).await else {
            continue;
        };
        for known in mix::STATUS_FILES.iter().filter(|p| p.starts_with(dir)) {
            let leaf = known.rsplit('/').next().unwrap_or_default();
            if names.iter().any(|n| n == leaf) {
                status_files.push(known.to_string());
            }
        }
    }
    let proc_names = rest.ls("/proc").await.unwrap_or_default();
    for leaf in ["schedule", "lease"] {
        if !proc_names.iter().any(|n| n == leaf) {
            continue;
        }
        let dir = format!("/proc/{leaf}");
        let Ok(names) = rest.ls(&dir).await else {
            continue;
        };
        status_files.extend(names.iter().map(|n| format!("{dir}/{n}")));
    }
    status_files.truncate(mix::MAX_STATUS_FILES);

    let mut host_files = Vec::new();
    for tree in ["host", "gpu"].into_iter().filter(|t| has(t)) {
        let Ok(names) = rest.ls(&format!("/{tree}")).await else {
            continue;
        };
        for name in names {
            let path = format!("/{tree}/{name}");
            if host_files.len() < mix::MAX_HOST_FILES && rest.cat(&path, READ_BYTES).await.is_ok() {
                host_files.push(path);
            }
        }
    }

    let queen = if has("queen") {
        rest.ls("/queen").await.unwrap_or_default()
    } else {
        Vec::new()
    };
    let not_served = ["schedule", "lease"]
        .into_iter()
        .filter(|n| queen.iter().any(|q| q == n))
        .map(|n| format!("/queen/{n}/ctl"))
        .collect();
    Trees {
        ingest: queen.iter().any(|q| q == "telemetry"),
        worker_alias: has("worker"),
        root,
        status_files,
        host_files,
        not_served,
    }
}

/// Runs the load after the start checks; always returns the numbers it
/// has, with `run_error` set when it had to stop early.
pub async fn run(
    rest: Rest,
    nine: Option<Client>,
    settings: Settings,
    trees: &Trees,
    log: Arc<RunLog>,
    deadline_check: impl Fn() -> Option<String>,
) -> Outcome {
    let entries = match settings.scenario {
        Some(_) => vec![mix::Entry {
            kind: OpKind::Artifact,
            weight: 1.0,
        }],
        None => mix::capacity_mix(trees),
    };
    let mix = Mix::new(entries, settings.seed);
    let mut mix_rows: Vec<(String, String, f64)> = mix
        .entries()
        .iter()
        .map(|e| (e.kind.stat_name().to_string(), target_of(&e.kind), e.weight))
        .collect();
    if settings.scenario.is_none() {
        for (name, weight) in mix::W_NOT_SERVED {
            let why = "not served by this hive: never drawn".to_string();
            mix_rows.push((name.to_string(), why, weight));
        }
    }
    let shared = Arc::new(Shared {
        rest,
        nine,
        mix,
        pool: Mutex::new(Pool::default()),
        rec: Mutex::new(Recorder::default()),
        devices: Devices::default(),
        artifact: Mutex::new(ArtifactTotals::default()),
        retries: AtomicU64::new(0),
        in_flight: AtomicU64::new(0),
        step: AtomicU64::new(WARMUP_STEP as u64),
        stop: AtomicBool::new(false),
        settings,
        log,
    });
    let ramp = shared.settings.ramp.clone();
    let mut run_error = None;

    // Warm-up: the first step's workers exist before the clock starts.
    let warm = Instant::now();
    let initial = ramp.initial_workers();
    shared
        .log
        .line(&format!("warm-up: spawning {initial} workers"));
    let warm_limit = Duration::from_secs(600);
    while lock(&shared.pool).live() < initial && lock(&shared.pool).cap.is_none() {
        if warm.elapsed() > warm_limit {
            run_error = Some(format!("warm-up did not reach {initial} workers in 600 s"));
            break;
        }
        if let Some(e) = deadline_check() {
            run_error = Some(e);
            break;
        }
        reconcile(&shared, initial).await;
    }
    let warmup_s = warm.elapsed().as_secs_f64();
    shared.log.line(&format!(
        "warm-up done in {warmup_s:.1} s: {} workers live",
        lock(&shared.pool).live()
    ));

    let t0 = Instant::now();
    lock(&shared.rec).start_clock();
    let end = t0 + Duration::from_secs_f64(ramp.duration_secs);
    let (live_at_step, drained) = if run_error.is_none() {
        shared.step.store(0, Ordering::Relaxed);
        let reconciler = tokio::spawn(reconciler(shared.clone(), t0, end));
        let monitor = tokio::spawn(monitor(shared.clone(), t0, end));
        let error = pace(&shared, t0, end, &deadline_check).await;
        run_error = run_error.or(error);
        shared.stop.store(true, Ordering::Relaxed);
        let drained = drain(&shared).await;
        let _ = reconciler.await;
        let live_at_step = monitor.await.unwrap_or_default();
        (live_at_step, drained)
    } else {
        (BTreeMap::new(), true)
    };
    if !drained {
        run_error.get_or_insert_with(|| "operations still running after the drain".into());
    }
    let measured_s = t0.elapsed().as_secs_f64().min(ramp.duration_secs);
    let status_after = shared
        .rest
        .get_json("/v1/meta/status")
        .await
        .unwrap_or_else(|e| serde_json::json!({ "error": e.detail }));
    if shared.settings.cleanup_workers {
        cleanup(&shared).await;
    }

    let rec = std::mem::take(&mut *lock(&shared.rec));
    let mut rows = Vec::new();
    for i in 0..ramp.steps() {
        let step = ramp.step(i);
        if step.start_s >= measured_s {
            break;
        }
        let secs = step.end_s.min(measured_s) - step.start_s;
        let live = live_at_step.get(&i).copied().unwrap_or(0);
        rows.push(rec.ramp_row(&step, secs, live));
    }
    let pool = std::mem::take(&mut *lock(&shared.pool));
    let artifact = lock(&shared.artifact).clone();
    let (cap, cap_reason) = pool.cap.map_or((None, None), |(n, r)| (Some(n), Some(r)));
    Outcome {
        recorder: rec,
        ramp: rows,
        worker_cap: cap,
        worker_cap_reason: cap_reason,
        workers_peak: pool.peak,
        spawned: pool.spawned,
        killed: pool.killed,
        retired: pool.retired,
        retries: shared.retries.load(Ordering::Relaxed),
        warmup_s,
        measured_s,
        mix: mix_rows,
        artifact,
        status_after,
        run_error,
    }
}

fn target_of(kind: &OpKind) -> String {
    match kind {
        OpKind::Ls(p) | OpKind::CatStatus(p) | OpKind::CatHost(p) => p.clone(),
        OpKind::MetaBounds => "/v1/meta/bounds".into(),
        OpKind::TailLog => "/log/queen.log".into(),
        OpKind::TailTelemetry => "/worker/<id>/telemetry".into(),
        OpKind::TelemetrySegment => "/queen/telemetry/bench-<worker>/ctl".into(),
        OpKind::TelemetryAppend => "/queen/telemetry/bench-<worker>/seg/<seg>".into(),
        OpKind::Artifact => "/queen/telemetry/bench-<worker>/".into(),
    }
}

/// Issues operations until `end`; returns why it stopped early, if it did.
async fn pace(
    shared: &Arc<Shared>,
    t0: Instant,
    end: Instant,
    deadline_check: &impl Fn() -> Option<String>,
) -> Option<String> {
    let permits = Arc::new(Semaphore::new(shared.settings.max_inflight));
    let mut rng = StdRng::seed_from_u64(shared.settings.seed);
    let mut next = t0;
    let mut checked = Instant::now();
    loop {
        let now = Instant::now();
        if now >= end {
            return None;
        }
        if now.duration_since(checked) >= Duration::from_secs(1) {
            checked = now;
            if let Some(e) = deadline_check() {
                return Some(e);
            }
        }
        let step = shared
            .settings
            .ramp
            .step_at(now.duration_since(t0).as_secs_f64());
        shared.step.store(step.index as u64, Ordering::Relaxed);
        let live = lock(&shared.pool).live();
        let rate = offered_rps(live, step.intensity);
        if rate <= 0.0 || shared.mix.is_empty() {
            tokio::time::sleep(Duration::from_millis(20)).await;
            next = Instant::now();
            continue;
        }
        let interval = Duration::from_secs_f64(1.0 / rate);
        if next > now {
            tokio::time::sleep_until(next.min(end).into()).await;
            continue;
        }
        // Far behind (a stall of the generator itself): count the missed
        // slots as lagged and catch up to now rather than bursting.
        let behind = now.duration_since(next);
        if behind > Duration::from_secs(1) {
            let missed = (behind.as_secs_f64() * rate).floor() as u64;
            let mut rec = lock(&shared.rec);
            rec.offer(step.index, missed as f64);
            for _ in 0..missed.min(1_000_000) {
                rec.lag(step.index);
            }
            next = now;
            continue;
        }
        next += interval;
        lock(&shared.rec).offer(step.index, 1.0);
        let Ok(permit) = permits.clone().try_acquire_owned() else {
            lock(&shared.rec).lag(step.index);
            continue;
        };
        let picked = {
            let pool = lock(&shared.pool);
            pool.pick(&mut rng).map(|w| (w.id.clone(), w.n))
        };
        let Some((worker, n)) = picked else { continue };
        let Some(entry) = shared.mix.pick(&mut rng, n) else {
            continue;
        };
        let kind = entry.kind.clone();
        let op_seed = rng.gen::<u64>();
        let shared = shared.clone();
        shared.in_flight.fetch_add(1, Ordering::Relaxed);
        tokio::spawn(async move {
            let started = Instant::now();
            let result = run_op(&shared, &kind, &worker, op_seed).await;
            let lat = started.elapsed();
            let err = result.as_ref().err();
            if let Some(e) = err {
                note_error(&shared, kind.stat_name(), e);
            }
            let kind_name = err.map(|e| e.kind.as_str());
            lock(&shared.rec).record(kind.stat_name(), step.index, lat, kind_name);
            shared.in_flight.fetch_sub(1, Ordering::Relaxed);
            drop(permit);
        });
    }
}

/// Logs the first few failures of each kind.
fn note_error(shared: &Shared, op: &str, e: &RestError) {
    static LOGGED: AtomicU64 = AtomicU64::new(0);
    if LOGGED.fetch_add(1, Ordering::Relaxed) < 50 {
        let detail: String = e.detail.chars().take(300).collect();
        shared
            .log
            .line(&format!("error {op}: {} ({detail})", e.kind));
    }
}

/// One operation, with one retry of a failed read unless `--no-retries`.
async fn run_op(shared: &Shared, kind: &OpKind, worker: &str, seed: u64) -> Result<(), RestError> {
    let idempotent = !matches!(
        kind,
        OpKind::TelemetrySegment | OpKind::TelemetryAppend | OpKind::Artifact
    );
    let first = op_once(shared, kind, worker, seed).await;
    match first {
        Err(e) if e.retryable && idempotent && !shared.settings.no_retries => {
            shared.retries.fetch_add(1, Ordering::Relaxed);
            tokio::time::sleep(RETRY_PAUSE).await;
            op_once(shared, kind, worker, seed).await
        }
        other => other,
    }
}

async fn op_once(shared: &Shared, kind: &OpKind, worker: &str, seed: u64) -> Result<(), RestError> {
    let rest = &shared.rest;
    match kind {
        OpKind::MetaBounds => rest.get_json("/v1/meta/bounds").await.map(drop),
        OpKind::Ls(path) => rest.ls(path).await.map(drop),
        OpKind::CatStatus(path) | OpKind::CatHost(path) => {
            rest.cat(path, READ_BYTES).await.map(drop)
        }
        OpKind::TailLog => rest.tail("/log/queen.log", READ_BYTES, TAIL_LINES).await,
        OpKind::TailTelemetry => {
            let path = format!("/worker/{worker}/telemetry");
            rest.tail(&path, READ_BYTES, TAIL_LINES).await
        }
        OpKind::TelemetrySegment => {
            let (device, mut dev) = device_of(shared, worker).await;
            artifact::new_segment(rest, &device, &mut dev)
                .await
                .map(drop)
        }
        OpKind::TelemetryAppend => {
            let (device, mut dev) = device_of(shared, worker).await;
            artifact::append(rest, &device, &mut dev).await
        }
        OpKind::Artifact => artifact_op(shared, worker, seed).await,
    }
}

async fn artifact_op(shared: &Shared, worker: &str, seed: u64) -> Result<(), RestError> {
    let Some(scenario) = shared.settings.scenario else {
        return Ok(());
    };
    let (device, mut dev) = device_of(shared, worker).await;
    let bytes = scenario.artifact_bytes();
    if shared.settings.real_bytes {
        let nine = shared.nine.as_ref();
        let totals = &shared.artifact;
        artifact::real_op(&shared.rest, nine, &device, &mut dev, bytes, seed, totals).await
    } else {
        let chunks = super::plan::chunks(bytes, shared.settings.chunk_bytes);
        artifact::reference_op(&shared.rest, &device, &mut dev, &chunks).await
    }
}

/// The device `bench-<worker>` for an operation. A device takes one
/// operation at a time; when the drawn worker's device is busy, another
/// live worker's free device is used rather than queueing behind it (only
/// when all are busy does the operation wait).
async fn device_of(shared: &Shared, worker: &str) -> (String, OwnedMutexGuard<artifact::Device>) {
    let first = format!("bench-{worker}");
    let wanted = shared.devices.get(&first);
    if let Ok(guard) = wanted.clone().try_lock_owned() {
        return (first, guard);
    }
    let others: Vec<String> = {
        let pool = lock(&shared.pool);
        pool.live
            .iter()
            .take(DEVICE_TRIES)
            .map(|w| w.id.clone())
            .collect()
    };
    for id in others {
        let device = format!("bench-{id}");
        if let Ok(guard) = shared.devices.get(&device).try_lock_owned() {
            return (device, guard);
        }
    }
    (first, wanted.lock_owned().await)
}

/// Waits for every operation in flight, bounded.
async fn drain(shared: &Shared) -> bool {
    let limit = Duration::from_secs(if shared.settings.real_bytes { 900 } else { 60 });
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if shared.in_flight.load(Ordering::Relaxed) == 0 {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    false
}

/// Keeps the pool at the current step's target until `end`.
async fn reconciler(shared: Arc<Shared>, t0: Instant, end: Instant) {
    while Instant::now() < end && !shared.stop.load(Ordering::Relaxed) {
        let t = t0.elapsed().as_secs_f64();
        let target = shared.settings.ramp.step_at(t).workers;
        let started = Instant::now();
        reconcile(&shared, target).await;
        if let Some(rest) = RECONCILE_EVERY.checked_sub(started.elapsed()) {
            tokio::time::sleep(rest).await;
        }
    }
}

/// One pass: retire old workers, kill surplus (newest first), spawn the
/// deficit (at most [`SPAWNS_PER_PASS`]).
async fn reconcile(shared: &Arc<Shared>, target: u32) {
    let now = Instant::now();
    let retire_at = Duration::from_secs(WORKER_TTL_S).saturating_sub(RETIRE_MARGIN);
    let (to_kill, deficit) = {
        let mut pool = lock(&shared.pool);
        let before = pool.live.len();
        pool.live.retain(|w| now.duration_since(w.born) < retire_at);
        pool.retired += (before - pool.live.len()) as u64;
        while pool.live() > target {
            if let Some(w) = pool.live.pop() {
                pool.leaving.push((w, now));
            }
        }
        let (due, wait): (Vec<_>, Vec<_>) = std::mem::take(&mut pool.leaving)
            .into_iter()
            .partition(|(_, since)| now.duration_since(*since) >= KILL_GRACE);
        pool.leaving = wait;
        let deficit = if pool.cap.is_some() {
            0
        } else {
            target.saturating_sub(pool.live()) as usize
        };
        (due, deficit.min(SPAWNS_PER_PASS))
    };
    for (w, _) in to_kill {
        kill(shared, &w.id, true).await;
    }
    if deficit > 0 {
        spawn_many(shared, deficit).await;
    }
}

/// Spawns `count` workers, `spawn_concurrency` at a time.
async fn spawn_many(shared: &Arc<Shared>, count: usize) {
    let mut rng = StdRng::seed_from_u64(
        shared.settings.seed ^ lock(&shared.pool).spawned.wrapping_mul(0x9E37),
    );
    let mut set = tokio::task::JoinSet::new();
    let mut issued = 0;
    while issued < count || !set.is_empty() {
        while issued < count && set.len() < shared.settings.spawn_concurrency {
            if lock(&shared.pool).cap.is_some() {
                issued = count;
                break;
            }
            let ticks = rng.gen_range(TICKS_MIN..=TICKS_MAX);
            let shared = shared.clone();
            set.spawn(async move { spawn_one(&shared, ticks).await });
            issued += 1;
        }
        if set.join_next().await.is_none() {
            break;
        }
    }
}

async fn spawn_one(shared: &Shared, ticks: u32) {
    let line = format!(
        concat!(
            r#"{{"spawn":"heartbeat","ticks":{ticks},"#,
            r#""budget":{{"ttl_s":{ttl},"ops":{ops}}}}}"#
        ),
        ticks = ticks,
        ttl = WORKER_TTL_S,
        ops = WORKER_OPS
    );
    let step = shared.step.load(Ordering::Relaxed) as usize;
    let started = Instant::now();
    let result = shared
        .rest
        .echo("/queen/ctl", &line)
        .await
        .and_then(|lines| {
            let id = lines.first().cloned().unwrap_or_default();
            match id
                .strip_prefix("worker-")
                .and_then(|n| n.parse::<u64>().ok())
            {
                Some(n) => Ok((id, n)),
                None => Err(RestError {
                    kind: "bad-reply".into(),
                    retryable: false,
                    detail: format!("spawn answered {lines:?}"),
                }),
            }
        });
    let lat = started.elapsed();
    let err = result.as_ref().err().map(|e| e.kind.clone());
    lock(&shared.rec).record(OP_SPAWN, step, lat, err.as_deref());
    match result {
        Ok((id, n)) => {
            let mut pool = lock(&shared.pool);
            pool.spawned += 1;
            pool.live.push(Worker {
                id,
                n,
                born: Instant::now(),
                load: mix::load_factor(shared.settings.seed, n),
            });
            pool.peak = pool.peak.max(pool.live());
        }
        Err(e) => {
            note_error(shared, OP_SPAWN, &e);
            if e.is_capacity() {
                let mut pool = lock(&shared.pool);
                if pool.cap.is_none() {
                    let live = pool.live();
                    pool.cap = Some((live, e.kind.clone()));
                    drop(pool);
                    shared.log.line(&format!(
                        "worker cap: {live} workers ({}); spawning stops",
                        e.kind
                    ));
                }
            }
        }
    }
}

async fn kill(shared: &Shared, id: &str, record: bool) {
    let step = shared.step.load(Ordering::Relaxed) as usize;
    let started = Instant::now();
    let line = format!(r#"{{"kill":"{id}"}}"#);
    let result = shared.rest.echo("/queen/ctl", &line).await;
    if record {
        let err = result.as_ref().err().map(|e| e.kind.as_str());
        lock(&shared.rec).record(OP_KILL, step, started.elapsed(), err);
    }
    if result.is_ok() {
        lock(&shared.pool).killed += 1;
    }
}

/// Kills the workers this run left on a hive it did not start.
async fn cleanup(shared: &Arc<Shared>) {
    let ids: Vec<String> = {
        let pool = lock(&shared.pool);
        pool.live
            .iter()
            .chain(pool.leaving.iter().map(|(w, _)| w))
            .map(|w| w.id.clone())
            .collect()
    };
    let deadline = Instant::now() + Duration::from_secs(120);
    for batch in ids.chunks(shared.settings.spawn_concurrency.max(1)) {
        if Instant::now() > deadline {
            shared
                .log
                .line("cleanup: gave up after 120 s; the rest expire by TTL");
            break;
        }
        let mut set = tokio::task::JoinSet::new();
        for id in batch {
            let (shared, id) = (shared.clone(), id.clone());
            set.spawn(async move { kill(&shared, &id, false).await });
        }
        while set.join_next().await.is_some() {}
    }
}

/// One timeline row per second and the progress line, until `end`.
/// Returns the live workers seen last in each step.
async fn monitor(shared: Arc<Shared>, t0: Instant, end: Instant) -> BTreeMap<usize, u32> {
    let mut live_at = BTreeMap::new();
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.tick().await;
    let steps = shared.settings.ramp.steps();
    let mut last_step = 0;
    let mut last = t0;
    loop {
        tick.tick().await;
        let now = Instant::now();
        let t = now.duration_since(t0).as_secs_f64();
        let step = shared
            .settings
            .ramp
            .step_at(t.min(shared.settings.ramp.duration_secs - 1e-6));
        let live = lock(&shared.pool).live();
        live_at.insert(step.index, live);
        let row = {
            let mut rec = lock(&shared.rec);
            rec.close_second(t, now.duration_since(last).as_secs_f64(), live);
            let total = rec.overall();
            let row = rec.timeline().last().cloned().unwrap_or_default();
            (row, total.count(), total.err(), total.quantile_s(0.95))
        };
        last = now;
        let (sec, ops, errs, p95) = row;
        shared.log.bar().set_message(format!(
            "step {}/{steps} workers {live}/{} offered {:.0}/s achieved {:.0}/s ops {ops} \
             errors {errs} p95 {:.1} ms",
            step.index + 1,
            step.workers,
            sec.offered_rps,
            sec.achieved_rps,
            p95 * 1000.0
        ));
        if step.index != last_step {
            shared.log.line(&format!(
                "step {}/{steps} begins: target {} workers, intensity {:.2}, live {live}, \
                 ops so far {ops}, errors {errs}",
                step.index + 1,
                step.workers,
                step.intensity
            ));
            last_step = step.index;
        }
        if now >= end || shared.stop.load(Ordering::Relaxed) {
            return live_at;
        }
    }
}
