//! `cohesix bench simulate`: the worker-capacity and large-telemetry
//! workloads of BENCHMARKS.md §2, driven through the REST gateway.
//!
//! A run resolves its shape (a preset, a telemetry scenario, flags on top,
//! `--duration-scale` to shorten), brings up the system under load
//! ([`stack`]), makes the start checks and runs the load ([`engine`]), then
//! leaves its evidence in `bench/results/<UTC stamp>-<name>/`: `run.log`,
//! `summary.json`, `steps.csv`, `timeline.csv`, `graph.svg`, `graph.png`
//! and `run.txt`. It exits non-zero when the run failed, a child died, or
//! an error or p95 budget was blown.
//!
//! # Limitations
//!
//! - The load generator, the gateway and the hive share the machine's
//!   cores; the summary reports the CPU time of each so a reader can tell
//!   whose limit a number is.
//! - Real-bytes mode streams the artifact through the gateway's artifact
//!   routes; against a gateway without them it falls back to Secure9P (see
//!   [`artifact`]), and the summary's `telemetry.transport` says which.
//! - Schedule and lease control files are not served by this hive, so
//!   their mix entries are never drawn (see [`mix`]).

mod artifact;
mod engine;
mod graph;
mod mix;
pub mod plan;
mod rest;
mod stack;
pub mod stats;

use super::evidence::{self, csv, Evidence, RunInfo};
use super::procfs::{self, Pid};
use anyhow::{bail, Context};
use clap::Args;
use cohesix_client::{Client, ClientConfig};
use engine::{Outcome, RunLog, Settings, StartChecks};
use indicatif::{ProgressBar, ProgressStyle};
use plan::{Preset, Ramp, Scenario, Shape};
use rest::Rest;
use serde::Serialize;
use stack::{GatewayOptions, Stack, Target};
use stats::{OpSummary, RampRow};
use std::cell::RefCell;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The chunk size of the reference records (the hive's default).
const CHUNK_BYTES: u64 = 16 << 20;
/// Artifact uploads in flight at most (the hive's default `max_uploads`).
const REAL_BYTES_INFLIGHT: usize = 8;
/// The error rate that marks a ramp step as "the knee".
const KNEE_ERROR_RATE: f64 = 0.01;

#[derive(Args, Debug, Clone)]
pub struct SimulateArgs {
    /// A published run shape (BENCHMARKS.md §1) or one of ours.
    #[arg(long, value_enum)]
    preset: Option<Preset>,
    /// A large-telemetry scenario instead of the capacity mix.
    #[arg(long, value_enum, conflicts_with = "preset")]
    scenario: Option<Scenario>,
    /// Telemetry scenarios: stream the artifact's bytes and read them back
    /// verified, instead of appending reference records only.
    #[arg(long, requires = "scenario")]
    real_bytes: bool,
    /// Multiply the shape's duration (and step length) by this, e.g. 0.25.
    #[arg(long, default_value_t = 1.0)]
    duration_scale: f64,
    /// Run length in seconds (overrides the shape and the scale).
    #[arg(long)]
    duration_secs: Option<f64>,
    /// Length of one ramp step in seconds (overrides the shape and scale).
    #[arg(long)]
    ramp_step_secs: Option<f64>,
    /// Workers at the start of the ramp (overrides the shape).
    #[arg(long)]
    min_workers: Option<u32>,
    /// Workers at the end of the ramp (overrides the shape).
    #[arg(long)]
    max_workers: Option<u32>,
    /// Intensity at the start of the ramp: a multiplier of each worker's
    /// base request rate (overrides the shape).
    #[arg(long)]
    intensity_from: Option<f64>,
    /// Intensity at the end of the ramp (overrides the shape).
    #[arg(long)]
    intensity_to: Option<f64>,
    /// Operations in flight at most.
    #[arg(long, default_value_t = 64, value_parser = clap::value_parser!(u64).range(1..=4096))]
    max_inflight: u64,
    /// Spawns in flight at most.
    #[arg(long, default_value_t = 16, value_parser = clap::value_parser!(u64).range(1..=256))]
    spawn_concurrency: u64,
    /// Never retry a failed read (the first failure counts).
    #[arg(long)]
    no_retries: bool,
    /// Reach the maximum workers and intensity before the clock starts.
    #[arg(long)]
    fast_ramp: bool,
    /// Largest error rate (fraction, 0.01 = 1%) that passes.
    #[arg(long)]
    error_budget_rate: Option<f64>,
    /// Largest overall p95 in ms that passes.
    #[arg(long)]
    p95_budget_ms: Option<f64>,
    /// Seed of every random choice of the run.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Deadline of one REST request, in ms.
    #[arg(long, default_value_t = 10_000)]
    op_timeout_ms: u64,
    /// Start a hive and a gateway for the run (the default when neither
    /// --gateway-url nor --hive is given).
    #[arg(long, conflicts_with_all = ["gateway_url", "hive"])]
    spawn_stack: bool,
    /// Use a running gateway.
    #[arg(long, requires = "token")]
    gateway_url: Option<String>,
    /// Request token of the running gateway.
    #[arg(long, env = "HIVE_GATEWAY_REQUEST_AUTH_TOKEN", hide_env_values = true)]
    token: Option<String>,
    /// Start a gateway in front of a running hive at this Secure9P address
    /// (its queen ticket is read from --data-dir).
    #[arg(long)]
    hive: Option<SocketAddr>,
    /// Data directory of the running hive (holds queen.ticket).
    #[arg(long, default_value = ".cohesix")]
    data_dir: PathBuf,
    /// The hive-gateway binary (default: next to this executable).
    #[arg(long)]
    gateway_bin: Option<PathBuf>,
    /// Secure9P connections of a gateway this run starts.
    #[arg(long, default_value_t = 4)]
    gateway_connections: u32,
    /// Folder that receives the dated evidence folder.
    #[arg(long, default_value = "bench/results")]
    results: PathBuf,
}

/// The settings as run, in the summary.
#[derive(Debug, Serialize)]
struct SettingsOut {
    base_rps: f64,
    min_workers: u32,
    max_workers: u32,
    intensity_from: f64,
    intensity_to: f64,
    duration_secs: f64,
    /// The shape's duration before `duration_scale`.
    shape_duration_secs: f64,
    duration_scale: f64,
    ramp_step_secs: f64,
    steps: usize,
    max_inflight: usize,
    spawn_concurrency: usize,
    seed: u64,
    no_retries: bool,
    fast_ramp: bool,
    real_bytes: bool,
    op_timeout_ms: u64,
    error_budget_rate: Option<f64>,
    p95_budget_ms: Option<f64>,
    gateway_connections: u32,
    target: String,
}

#[derive(Debug, Serialize)]
struct MixRow {
    op: String,
    target: String,
    weight: f64,
}

#[derive(Debug, Serialize)]
struct Workers {
    peak: u32,
    spawned: u64,
    killed: u64,
    retired: u64,
}

#[derive(Debug, Serialize)]
struct Knee {
    step: usize,
    workers: u32,
    workers_live: u32,
    err_rate: f64,
}

#[derive(Debug, Serialize)]
struct Cpu {
    wall_s: f64,
    nproc: usize,
    generator_s: f64,
    /// Generator CPU seconds per wall second (1.0 = one core busy).
    generator_cores: f64,
    hive_s: Option<f64>,
    gateway_s: Option<f64>,
}

#[derive(Debug, Serialize)]
struct Telemetry {
    mode: &'static str,
    /// How artifact bytes travel in real-bytes mode: `rest` or `secure9p`.
    transport: Option<&'static str>,
    artifact_bytes: u64,
    chunk_bytes: u64,
    records_per_op: usize,
    #[serde(flatten)]
    totals: artifact::ArtifactTotals,
    stream_mib_s: f64,
    read_back_mib_s: f64,
}

/// `summary.json` (BENCHMARKS.md §2).
#[derive(Debug, Serialize)]
struct Summary {
    bench: &'static str,
    schema: u32,
    name: String,
    preset: Option<String>,
    scenario: Option<String>,
    settings: SettingsOut,
    run: RunInfo,
    machine_line: String,
    finished_utc: String,
    start_checks: StartChecks,
    mix: Vec<MixRow>,
    worker_cap: Option<u32>,
    worker_cap_reason: Option<String>,
    workers: Workers,
    warmup_s: f64,
    measured_s: f64,
    overall: OpSummary,
    operations: BTreeMap<String, OpSummary>,
    ramp: Vec<RampRow>,
    error_rate: f64,
    achieved_rps: f64,
    first_step_err_rate_ge_1pct: Option<Knee>,
    error_budget_pass: Option<bool>,
    p95_budget_pass: Option<bool>,
    retries: u64,
    gateway_status_before: serde_json::Value,
    gateway_status_after: serde_json::Value,
    cpu: Cpu,
    telemetry: Option<Telemetry>,
    run_error: Option<String>,
    pass: bool,
}

pub fn run(args: SimulateArgs) -> anyhow::Result<()> {
    let (shape, name) = resolve_shape(&args);
    let ramp = ramp_of(&shape, &args);
    check_args(&args, &ramp)?;
    let evidence = Evidence::create(&args.results, &name)?;
    let info = evidence::run_info();
    let log_file =
        std::fs::File::create(evidence.dir().join("run.log")).context("cannot create run.log")?;
    let bar = progress_bar();
    let log = Arc::new(RunLog::new(log_file, bar.clone()));
    log.line(&format!("cohesix bench simulate {name}: {}", info.command));
    log.line(&format!(
        "commit {} | machine {}",
        info.commit,
        info.machine.line()
    ));
    log.line(&format!(
        "shape: {}..{} workers, intensity {}..{}, {:.0} s in {} steps of {:.1} s (scale {})",
        ramp.min_workers,
        ramp.max_workers,
        ramp.intensity_from,
        ramp.intensity_to,
        ramp.duration_secs,
        ramp.steps(),
        ramp.step_secs,
        args.duration_scale
    ));

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("cannot start the runtime")?;
    let started = Instant::now();
    let cpu_start = procfs::cpu_seconds(Pid::Current).unwrap_or(0.0);
    let result = runtime.block_on(drive(&args, &shape, ramp.clone(), &name, log.clone()));
    let wall_s = started.elapsed().as_secs_f64();
    let generator_s = procfs::cpu_seconds(Pid::Current).unwrap_or(0.0) - cpu_start;
    bar.finish_and_clear();
    let driven = result?;

    let timeline = driven
        .outcome
        .as_ref()
        .map(|o| o.recorder.timeline().to_vec())
        .unwrap_or_default();
    let summary = summarise(
        &args,
        &shape,
        &ramp,
        &name,
        info.clone(),
        driven,
        wall_s,
        generator_s,
    );
    write_evidence(&evidence, &summary, &timeline, &info, &log)?;
    log.line(&format!(
        "ops {} errors {} ({:.4}%) p95 {:.2} ms achieved {:.1}/s worker cap {} -> {}",
        summary.overall.count,
        summary.overall.err,
        summary.error_rate * 100.0,
        summary.overall.p95_s * 1000.0,
        summary.achieved_rps,
        summary
            .worker_cap
            .map_or_else(|| "none".to_string(), |c| c.to_string()),
        evidence.dir().display()
    ));
    println!("{}", evidence.dir().display());
    if let Some(e) = &summary.run_error {
        bail!("the run failed: {e}");
    }
    if summary.error_budget_pass == Some(false) {
        bail!(
            "error budget blown: {:.4}% > {:.4}%",
            summary.error_rate * 100.0,
            summary.settings.error_budget_rate.unwrap_or(0.0) * 100.0
        );
    }
    if summary.p95_budget_pass == Some(false) {
        bail!(
            "p95 budget blown: {:.2} ms > {} ms",
            summary.overall.p95_s * 1000.0,
            summary.settings.p95_budget_ms.unwrap_or(0.0)
        );
    }
    Ok(())
}

fn resolve_shape(args: &SimulateArgs) -> (Shape, String) {
    let mut shape = match (args.scenario, args.preset) {
        (Some(s), _) => s.shape(args.real_bytes),
        (None, Some(p)) => p.shape(),
        (None, None) => Preset::Fixed1k.shape(),
    };
    shape.fast_ramp |= args.fast_ramp;
    shape.no_retries |= args.no_retries;
    if args.error_budget_rate.is_some() {
        shape.error_budget_rate = args.error_budget_rate;
    }
    if args.p95_budget_ms.is_some() {
        shape.p95_budget_ms = args.p95_budget_ms;
    }
    let mut name = shape.name.to_string();
    if args.real_bytes {
        name.push_str("-real");
    }
    (shape, name)
}

fn ramp_of(shape: &Shape, args: &SimulateArgs) -> Ramp {
    let (duration, step) = plan::scaled(shape.duration_secs, shape.step_secs, args.duration_scale);
    Ramp {
        min_workers: args.min_workers.unwrap_or(shape.min_workers),
        max_workers: args.max_workers.unwrap_or(shape.max_workers),
        intensity_from: args.intensity_from.unwrap_or(shape.intensity_from),
        intensity_to: args.intensity_to.unwrap_or(shape.intensity_to),
        duration_secs: args.duration_secs.unwrap_or(duration),
        step_secs: args.ramp_step_secs.unwrap_or(step),
        fast: shape.fast_ramp,
    }
}

fn check_args(args: &SimulateArgs, ramp: &Ramp) -> anyhow::Result<()> {
    if !(ramp.duration_secs > 0.0 && ramp.duration_secs <= 86_400.0) {
        bail!("the run must last between 0 and 86400 s");
    }
    if ramp.step_secs.is_nan() || ramp.step_secs < 0.1 {
        bail!("--ramp-step-secs must be at least 0.1");
    }
    if ramp.min_workers > ramp.max_workers || ramp.max_workers > 2_000_000 {
        bail!("need min-workers <= max-workers <= 2000000");
    }
    let ok = |x: f64| x.is_finite() && (0.0..=1000.0).contains(&x);
    if !ok(ramp.intensity_from) || !ok(ramp.intensity_to) {
        bail!("intensity must be within 0..=1000");
    }
    if !(args.duration_scale > 0.0 && args.duration_scale <= 100.0) {
        bail!("--duration-scale must be within (0, 100]");
    }
    Ok(())
}

/// Whether the gateway serves the artifact routes (`telemetry` surface).
fn artifact_routes(bounds: &serde_json::Value) -> bool {
    bounds["surfaces"]
        .as_array()
        .is_some_and(|s| s.iter().any(|v| v == "telemetry"))
}

/// In real-bytes mode each operation holds an upload slot (the hive
/// allows 8) and a device: no more in flight than workers, nor than 8.
fn max_inflight(args: &SimulateArgs, ramp: &Ramp) -> usize {
    let n = args.max_inflight as usize;
    if args.real_bytes {
        n.min(ramp.max_workers.max(1) as usize)
            .min(REAL_BYTES_INFLIGHT)
    } else {
        n
    }
}

fn progress_bar() -> ProgressBar {
    let bar = ProgressBar::new_spinner();
    let style = ProgressStyle::with_template("{spinner} [{elapsed_precise}] {msg}")
        .unwrap_or_else(|_| ProgressStyle::default_spinner());
    bar.set_style(style);
    bar.enable_steady_tick(Duration::from_millis(250));
    bar
}

/// What the async part hands back.
struct Driven {
    outcome: Option<Outcome>,
    checks: StartChecks,
    target: String,
    hive_s: Option<f64>,
    gateway_s: Option<f64>,
    run_error: Option<String>,
}

async fn drive(
    args: &SimulateArgs,
    shape: &Shape,
    ramp: Ramp,
    name: &str,
    log: Arc<RunLog>,
) -> anyhow::Result<Driven> {
    let target = target_of(args, &ramp)?;
    let opts = GatewayOptions {
        binary: args.gateway_bin.clone(),
        connections: args.gateway_connections,
        request_timeout_ms: 5000,
    };
    let mut stack = Stack::start(target, &opts).await?;
    log.line(&format!("target: {}", stack.description));
    let rest = Rest::new(
        &stack.gateway_url,
        &stack.token,
        Duration::from_millis(args.op_timeout_ms.max(1)),
    )
    .map_err(|e| anyhow::anyhow!(e.detail))?;

    let marker = format!(
        "bench simulate start name={name} seed={} workers={}..{}",
        args.seed, ramp.min_workers, ramp.max_workers
    );
    let mut driven = Driven {
        outcome: None,
        checks: StartChecks::default(),
        target: stack.description.clone(),
        hive_s: None,
        gateway_s: None,
        run_error: None,
    };
    match engine::start_checks(&rest, &marker).await {
        Ok(checks) => {
            log.line(&format!(
                "start checks ok: / = {:?}; status files {}; ingest {}; worker alias {}",
                checks.trees.root,
                checks.trees.status_files.len(),
                checks.trees.ingest,
                checks.trees.worker_alias
            ));
            driven.checks = checks;
        }
        Err(e) => driven.run_error = Some(format!("start checks failed: {} {}", e.kind, e.detail)),
    }

    // The gateway's own artifact routes when it has them; else Secure9P.
    let rest_artifacts = artifact_routes(&driven.checks.bounds);
    if args.real_bytes {
        let via = if rest_artifacts {
            "the gateway"
        } else {
            "Secure9P"
        };
        log.line(&format!("real-bytes mode: artifacts stream through {via}"));
    }
    let nine = if args.real_bytes && !rest_artifacts && driven.run_error.is_none() {
        match connect_nine(&stack).await {
            Ok(c) => Some(c),
            Err(e) => {
                driven.run_error = Some(format!("real-bytes mode: {e:#}"));
                None
            }
        }
    } else {
        None
    };

    if driven.run_error.is_none() {
        let settings = Settings {
            max_inflight: max_inflight(args, &ramp),
            ramp,
            spawn_concurrency: args.spawn_concurrency as usize,
            no_retries: shape.no_retries,
            seed: args.seed,
            scenario: args.scenario,
            real_bytes: args.real_bytes,
            chunk_bytes: CHUNK_BYTES,
            cleanup_workers: args.gateway_url.is_some() || args.hive.is_some(),
        };
        let alive = RefCell::new(&mut stack);
        let check = || {
            alive
                .borrow_mut()
                .check_alive()
                .err()
                .map(|e| format!("{e:#}"))
        };
        let outcome = engine::run(
            rest,
            nine,
            settings,
            &driven.checks.trees,
            log.clone(),
            check,
        )
        .await;
        driven.run_error = outcome.run_error.clone();
        driven.outcome = Some(outcome);
    }

    driven.hive_s = stack
        .hive_pid()
        .and_then(|p| procfs::cpu_seconds(Pid::Other(p)).ok());
    driven.gateway_s = stack
        .gateway_pid()
        .and_then(|p| procfs::cpu_seconds(Pid::Other(p)).ok());
    for (who, how, tail) in stack.stop() {
        log.line(&format!("{who} stopped: {how}"));
        if !tail.trim().is_empty() {
            let lines: Vec<String> = tail.lines().rev().take(40).map(strip_ansi).collect();
            let tail = lines.join("\n");
            log.line(&format!("{who} log (newest first, last 40 lines):\n{tail}"));
        }
    }
    Ok(driven)
}

fn target_of(args: &SimulateArgs, ramp: &Ramp) -> anyhow::Result<Target> {
    let ticket = || -> anyhow::Result<String> {
        let path = args.data_dir.join("queen.ticket");
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("cannot read the queen ticket {}", path.display()))?;
        Ok(text.trim().to_string())
    };
    if let Some(url) = &args.gateway_url {
        let token = args.token.clone().context("--gateway-url needs --token")?;
        let hive = match args.hive {
            Some(addr) if args.real_bytes => Some((addr, ticket()?)),
            _ => None,
        };
        return Ok(Target::Gateway {
            url: url.clone(),
            token,
            hive,
        });
    }
    if let Some(addr) = args.hive {
        return Ok(Target::Hive {
            addr,
            ticket: ticket()?,
        });
    }
    Ok(Target::Spawn {
        manifest: stack::manifest_for(ramp.max_workers),
    })
}

async fn connect_nine(stack: &Stack) -> anyhow::Result<Client> {
    let (addr, ticket) = stack
        .hive
        .clone()
        .context("needs the hive's Secure9P address (--hive) and ticket")?;
    let mut config = ClientConfig::new("queen", ticket);
    config.msize = 1 << 20;
    config.timeout = Duration::from_secs(120);
    Client::connect(addr, config)
        .await
        .with_context(|| format!("cannot attach to {addr} over Secure9P"))
}

#[allow(clippy::too_many_arguments)]
fn summarise(
    args: &SimulateArgs,
    shape: &Shape,
    ramp: &Ramp,
    name: &str,
    info: RunInfo,
    driven: Driven,
    wall_s: f64,
    generator_s: f64,
) -> Summary {
    let Driven {
        outcome,
        checks,
        target,
        hive_s,
        gateway_s,
        run_error,
    } = driven;
    let rest_artifacts = artifact_routes(&checks.bounds);
    let empty = OpSummary::default();
    let (overall, operations, rows) = match &outcome {
        Some(o) => (
            o.recorder.overall().summary(),
            o.recorder.operations(),
            o.ramp.clone(),
        ),
        None => (empty, BTreeMap::new(), Vec::new()),
    };
    let error_rate = stats::ratio(overall.err, overall.count);
    let measured_ops: u64 = rows.iter().map(|r| r.ops).sum();
    let measured_s = outcome.as_ref().map_or(0.0, |o| o.measured_s);
    let knee = stats::first_step_at_or_above(&rows, KNEE_ERROR_RATE).map(|r| Knee {
        step: r.step,
        workers: r.workers,
        workers_live: r.workers_live,
        err_rate: r.err_rate,
    });
    let error_budget_pass = shape.error_budget_rate.map(|b| error_rate <= b);
    let p95_budget_pass = shape.p95_budget_ms.map(|b| overall.p95_s * 1000.0 < b);
    let telemetry = args.scenario.map(|s| {
        let totals = outcome
            .as_ref()
            .map(|o| o.artifact.clone())
            .unwrap_or_default();
        let mib = |b: u64, s: f64| {
            if s > 0.0 {
                b as f64 / 1048576.0 / s
            } else {
                0.0
            }
        };
        Telemetry {
            mode: if args.real_bytes {
                "real-bytes"
            } else {
                "reference"
            },
            transport: args
                .real_bytes
                .then_some(if rest_artifacts { "rest" } else { "secure9p" }),
            artifact_bytes: s.artifact_bytes(),
            chunk_bytes: CHUNK_BYTES,
            records_per_op: plan::chunks(s.artifact_bytes(), CHUNK_BYTES).len(),
            stream_mib_s: mib(totals.bytes_streamed, totals.stream_s),
            read_back_mib_s: mib(totals.bytes_read_back, totals.read_back_s),
            totals,
        }
    });
    let pass =
        run_error.is_none() && error_budget_pass != Some(false) && p95_budget_pass != Some(false);
    let o = outcome.as_ref();
    Summary {
        bench: "simulate",
        schema: 1,
        name: name.to_string(),
        preset: args.preset.map(|p| p.shape().name.to_string()),
        scenario: args.scenario.map(|s| s.name().to_string()),
        settings: SettingsOut {
            base_rps: plan::BASE_RPS,
            min_workers: ramp.min_workers,
            max_workers: ramp.max_workers,
            intensity_from: ramp.intensity_from,
            intensity_to: ramp.intensity_to,
            duration_secs: ramp.duration_secs,
            shape_duration_secs: shape.duration_secs,
            duration_scale: args.duration_scale,
            ramp_step_secs: ramp.step_secs,
            steps: ramp.steps(),
            max_inflight: max_inflight(args, ramp),
            spawn_concurrency: args.spawn_concurrency as usize,
            seed: args.seed,
            no_retries: shape.no_retries,
            fast_ramp: ramp.fast,
            real_bytes: args.real_bytes,
            op_timeout_ms: args.op_timeout_ms,
            error_budget_rate: shape.error_budget_rate,
            p95_budget_ms: shape.p95_budget_ms,
            gateway_connections: args.gateway_connections,
            target,
        },
        machine_line: info.machine.line(),
        run: info,
        finished_utc: evidence::iso_utc(std::time::SystemTime::now()),
        gateway_status_before: checks.status.clone(),
        start_checks: checks,
        mix: o.map_or_else(Vec::new, |o| {
            o.mix
                .iter()
                .map(|(op, target, weight)| MixRow {
                    op: op.clone(),
                    target: target.clone(),
                    weight: *weight,
                })
                .collect()
        }),
        worker_cap: o.and_then(|o| o.worker_cap),
        worker_cap_reason: o.and_then(|o| o.worker_cap_reason.clone()),
        workers: Workers {
            peak: o.map_or(0, |o| o.workers_peak),
            spawned: o.map_or(0, |o| o.spawned),
            killed: o.map_or(0, |o| o.killed),
            retired: o.map_or(0, |o| o.retired),
        },
        warmup_s: o.map_or(0.0, |o| o.warmup_s),
        measured_s,
        overall,
        operations,
        ramp: rows,
        error_rate,
        achieved_rps: if measured_s > 0.0 {
            measured_ops as f64 / measured_s
        } else {
            0.0
        },
        first_step_err_rate_ge_1pct: knee,
        error_budget_pass,
        p95_budget_pass,
        retries: o.map_or(0, |o| o.retries),
        gateway_status_after: o.map_or(serde_json::Value::Null, |o| o.status_after.clone()),
        cpu: Cpu {
            wall_s,
            nproc: std::thread::available_parallelism().map_or(0, usize::from),
            generator_s,
            generator_cores: if wall_s > 0.0 {
                generator_s / wall_s
            } else {
                0.0
            },
            hive_s,
            gateway_s,
        },
        telemetry,
        run_error,
        pass,
    }
}

fn write_evidence(
    evidence: &Evidence,
    summary: &Summary,
    timeline: &[stats::TimelineRow],
    info: &RunInfo,
    log: &RunLog,
) -> anyhow::Result<()> {
    evidence.write_json("summary.json", summary)?;
    let f = |x: f64| format!("{x:.6}");
    let rows: Vec<Vec<String>> = summary
        .ramp
        .iter()
        .map(|r| {
            vec![
                r.step.to_string(),
                f(r.t_start_s),
                f(r.t_end_s),
                r.workers.to_string(),
                r.workers_live.to_string(),
                f(r.intensity),
                f(r.rps),
                f(r.achieved_rps),
                r.ops.to_string(),
                r.ok.to_string(),
                r.err.to_string(),
                f(r.err_rate),
                f(r.p95_s),
                r.lagged.to_string(),
            ]
        })
        .collect();
    let header = [
        "step",
        "t_start_s",
        "t_end_s",
        "workers",
        "workers_live",
        "intensity",
        "rps",
        "achieved_rps",
        "ops",
        "ok",
        "err",
        "err_rate",
        "p95_s",
        "lagged",
    ];
    evidence.write("steps.csv", csv(&header, &rows))?;

    let rows: Vec<Vec<String>> = timeline
        .iter()
        .map(|r| {
            vec![
                f(r.t_s),
                r.workers.to_string(),
                f(r.offered_rps),
                f(r.achieved_rps),
                f(r.err_rate),
                f(r.p95_ms),
            ]
        })
        .collect();
    let header = [
        "t_s",
        "workers",
        "offered_rps",
        "achieved_rps",
        "err_rate",
        "p95_ms",
    ];
    evidence.write("timeline.csv", csv(&header, &rows))?;

    let title = format!(
        "{} - {} ops, error rate {:.4}%, p95 {:.2} ms (commit {})",
        summary.name,
        summary.overall.count,
        summary.error_rate * 100.0,
        summary.overall.p95_s * 1000.0,
        info.commit
    );
    match graph::write(evidence.dir(), "graph", &title, timeline) {
        Ok(true) => {}
        Ok(false) => log.line("graph drawn without text: no font file found"),
        Err(e) => log.line(&format!("graph not drawn: {e}")),
    }
    evidence.write_run_info(info, &evidence::load_average())
}

/// Drops terminal colour sequences (`ESC [ ... m`) from a child's log line.
fn strip_ansi(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn colour_codes_are_stripped_from_child_logs() {
        assert_eq!(
            strip_ansi("\u{1b}[2mts\u{1b}[0m \u{1b}[33m WARN\u{1b}[0m x"),
            "ts  WARN x"
        );
        assert_eq!(strip_ansi("plain"), "plain");
    }
}
