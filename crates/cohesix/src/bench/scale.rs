//! `cohesix bench scale`: does a hive hold N heartbeat workers with flat
//! memory while every one of them keeps ticking?
//!
//! The bench starts a hive as a child process, reads its resident memory
//! before any worker exists, spawns the workers through `/queen/ctl` over
//! Secure9P (many spawn lines per write, several connections), then samples
//! for the requested duration: resident memory, memory per worker, the
//! live count, the hive's CPU time and the newest tick of a few workers
//! picked at random. The hive is only ever driven as a queen client would.
//!
//! # Limitations
//!
//! - The bench and the hive share the machine; the bench's own CPU is
//!   reported beside the hive's so the reader can subtract it.
//! - "Flat" compares the last sample with the first one after spawning
//!   (every worker's ring is allocated on its first tick, so the first
//!   sample is taken two heartbeat intervals after the last spawn). It does
//!   not prove the absence of a slow leak longer than the run.

use super::child::{start_hive, HiveChild};
use super::evidence::{self, csv, Evidence, RunInfo};
use super::procfs::{self, Pid};
use anyhow::{bail, Context};
use clap::Args;
use cohesix_client::{Client, ClientConfig, OpenMode};
use indicatif::{ProgressBar, ProgressStyle};
use serde::Serialize;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// The hive's heartbeat interval under this bench (the manifest default).
const HEARTBEAT_INTERVAL_MS: u64 = 1000;
/// Bytes of one ctl reply (`worker-N` lines) read back after a spawn write.
const MAX_CTL_REPLY: usize = 64 * 1024;
/// Bytes of a worker's telemetry ring read by a probe (the ring is 1 KiB).
const MAX_TELEMETRY: usize = 16 * 1024;
/// Bytes of a Twrite frame that are not data, with room to spare.
const MSG_OVERHEAD: usize = 64;
/// Most probes: each is one read per sample.
const MAX_PROBES: usize = 64;

#[derive(Args, Debug)]
pub struct ScaleArgs {
    /// Heartbeat workers to spawn.
    #[arg(long, default_value_t = 100_000, value_parser = worker_count())]
    workers: u32,
    /// How long to sample after spawning, in minutes (fractions allowed).
    #[arg(long, default_value_t = 10.0)]
    minutes: f64,
    /// Seconds between samples.
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..=3600))]
    sample_secs: u64,
    /// Queen connections spawning in parallel.
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u64).range(1..=64))]
    connections: u64,
    /// Spawn lines per write to /queen/ctl (each line is ~90 bytes; a
    /// write must fit the 8 KiB msize).
    #[arg(long, default_value_t = 80, value_parser = clap::value_parser!(u64).range(1..=88))]
    batch: u64,
    /// Workers whose telemetry is read at every sample.
    #[arg(long, default_value_t = 8)]
    probes: usize,
    /// Largest drift between the first and last sample still called flat, in %.
    #[arg(long, default_value_t = 5.0)]
    flat_pct: f64,
    /// Folder that receives the dated evidence folder.
    #[arg(long, default_value = "bench/results")]
    results: PathBuf,
}

/// One row of the sampling CSV.
#[derive(Clone, Debug, Serialize)]
struct Sample {
    t_s: f64,
    rss_kib: u64,
    bytes_per_worker: f64,
    live: u64,
    hive_cpu_s: f64,
    hive_cpu_pct: f64,
    bench_cpu_s: f64,
    probe_min_tick: u64,
    probe_max_tick: u64,
    probe_max_age_ms: u64,
    load1: String,
}

/// The newest record of one probed worker.
#[derive(Clone, Copy, Debug, Default, Serialize)]
struct Tick {
    tick: u64,
    ts_ms: u64,
}

#[derive(Debug, Serialize)]
struct Probe {
    worker: String,
    first: Tick,
    last: Tick,
    advanced: bool,
}

#[derive(Debug, Serialize)]
struct SpawnPhase {
    workers: usize,
    /// Spawn lines per ctl write actually used (--batch, capped by msize).
    lines_per_write: usize,
    seconds: f64,
    rate_per_s: f64,
    hive_cpu_s: f64,
    bench_cpu_s: f64,
    rss_after_kib: u64,
}

#[derive(Debug, Serialize)]
struct Summary {
    bench: &'static str,
    run: RunInfo,
    finished_utc: String,
    load_avg_end: String,
    settings: Settings,
    baseline_rss_kib: u64,
    spawn: SpawnPhase,
    samples: usize,
    rss_first_kib: u64,
    rss_last_kib: u64,
    rss_min_kib: u64,
    rss_max_kib: u64,
    rss_drift_pct: f64,
    rss_flat: bool,
    bytes_per_worker_first: f64,
    bytes_per_worker_last: f64,
    live_min: u64,
    live_last: u64,
    ticks_advanced: bool,
    tick_rate_per_s: f64,
    probe_max_age_ms: u64,
    probes: Vec<Probe>,
    hive_cpu_sampling_pct: f64,
    bench_cpu_sampling_pct: f64,
    hive_stop: String,
    verdict: String,
    /// The rows, written to `scale.csv` rather than into the summary.
    #[serde(skip)]
    rows: Vec<Sample>,
}

#[derive(Clone, Debug, Serialize)]
struct Settings {
    workers: u32,
    minutes: f64,
    sample_secs: u64,
    connections: u64,
    batch: u64,
    probes: usize,
    flat_pct: f64,
    heartbeat_interval_ms: u64,
    ring_bytes: u32,
    worker_ticks: u64,
    worker_ttl_s: u64,
    probe_seed: u64,
    manifest: String,
}

/// 1 ..= the manifest's ceiling on `workers.max_workers`.
fn worker_count() -> clap::builder::RangedI64ValueParser<u32> {
    clap::value_parser!(u32).range(1..=2_000_000)
}

pub fn run(args: ScaleArgs) -> anyhow::Result<()> {
    if !(args.minutes > 0.0 && args.minutes <= 24.0 * 60.0) {
        bail!("--minutes must be in (0, 1440]");
    }
    let info = evidence::run_info();
    let evidence = Evidence::create(&args.results, "scale")?;
    eprintln!("evidence: {}", evidence.dir().display());
    eprintln!(
        "machine: {}  load: {}",
        info.machine.line(),
        info.load_avg_start
    );

    let settings = settings(&args);
    let mut hive = start_hive(&settings.manifest)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let outcome = runtime.block_on(measure(&args, &settings, &mut hive));
    let hive_stop = hive.guard.stop();
    evidence.write("hive.log.tail", hive.log_tail())?;

    let measured = match outcome {
        Ok(m) => m,
        Err(e) => {
            evidence.write("error.txt", format!("{e:#}\n"))?;
            evidence.write_run_info(&info, &evidence::load_average())?;
            return Err(e);
        }
    };
    let summary = summarise(&args, info, settings, measured, hive_stop);
    write_evidence(&evidence, &summary)?;
    print_table(&summary);
    eprintln!("evidence: {}", evidence.dir().display());
    if summary.verdict != "ok" {
        bail!("scale run failed: {}", summary.verdict);
    }
    Ok(())
}

fn settings(args: &ScaleArgs) -> Settings {
    let sampling_s = (args.minutes * 60.0).ceil() as u64;
    // Spawning must fit in the allowance, or workers expire mid-run (the
    // live count then shows it): a minute plus 1 ms per worker.
    let spawn_allowance_s = 60 + u64::from(args.workers) / 1000;
    let worker_ticks = sampling_s + spawn_allowance_s + 60;
    let worker_ttl_s = worker_ticks + 60;
    let ring_bytes = 1024;
    let manifest = format!(
        "# cohesix bench scale: room for the workers, defaults otherwise\n\
         [workers]\nmax_workers = {}\nheartbeat_interval_ms = {HEARTBEAT_INTERVAL_MS}\n\
         ring_bytes = {ring_bytes}\ndefault_ttl_s = {worker_ttl_s}\n",
        args.workers.max(16),
    );
    Settings {
        workers: args.workers,
        minutes: args.minutes,
        sample_secs: args.sample_secs,
        connections: args.connections,
        batch: args.batch,
        probes: args.probes.clamp(1, MAX_PROBES),
        flat_pct: args.flat_pct,
        heartbeat_interval_ms: HEARTBEAT_INTERVAL_MS,
        ring_bytes,
        worker_ticks,
        worker_ttl_s,
        probe_seed: seed(),
        manifest,
    }
}

struct Measured {
    baseline_rss_kib: u64,
    spawn: SpawnPhase,
    samples: Vec<Sample>,
    probes: Vec<Probe>,
}

async fn measure(
    args: &ScaleArgs,
    settings: &Settings,
    hive: &mut HiveChild,
) -> anyhow::Result<Measured> {
    let pid = Pid::Other(hive.guard.pid());
    // Let the hive finish starting before the baseline is read.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let baseline_rss_kib = procfs::rss_kib(pid)?;
    eprintln!(
        "hive pid {} on {}: baseline RSS {baseline_rss_kib} KiB",
        pid_of(pid),
        hive.addr
    );

    let mut config = ClientConfig::new("queen", hive.ticket.clone());
    config.timeout = Duration::from_secs(30);
    let mut clients = Vec::new();
    for _ in 0..args.connections {
        let client = Client::connect(hive.addr, config.clone())
            .await
            .context("queen cannot attach to the bench hive")?;
        clients.push(client);
    }

    let (ids, spawn) = spawn_all(&clients, settings, pid).await?;
    hive.guard.check_alive()?;
    let probe_ids = pick_probes(&ids, settings.probes, settings.probe_seed);
    drop(ids);

    // Every ring is allocated on its worker's first tick.
    tokio::time::sleep(Duration::from_millis(2 * HEARTBEAT_INTERVAL_MS)).await;
    let (samples, probes) =
        sample(&clients[0], settings, pid, baseline_rss_kib, &probe_ids).await?;
    hive.guard.check_alive()?;
    for c in &clients {
        c.close();
    }
    Ok(Measured {
        baseline_rss_kib,
        spawn,
        samples,
        probes,
    })
}

fn pid_of(pid: Pid) -> String {
    match pid {
        Pid::Current => "self".to_string(),
        Pid::Other(p) => p.to_string(),
    }
}

/// Spawns every worker; returns their ids in spawn order.
async fn spawn_all(
    clients: &[Client],
    settings: &Settings,
    pid: Pid,
) -> anyhow::Result<(Vec<String>, SpawnPhase)> {
    let total = settings.workers as usize;
    let line = format!(
        "{{\"spawn\":\"heartbeat\",\"ticks\":{t},\"budget\":{{\"ticks\":{t},\"ttl_s\":{},\
         \"ops\":500}}}}\n",
        settings.worker_ttl_s,
        t = settings.worker_ticks,
    );
    // A write must fit the granted msize, whatever --batch asked for.
    let room = (clients[0].msize() as usize).saturating_sub(MSG_OVERHEAD);
    let batch = (settings.batch as usize).min(room / line.len()).max(1);
    let batches = total.div_ceil(batch);
    let next = Arc::new(AtomicUsize::new(0));
    let bar = progress(total as u64, "spawning");

    let hive_cpu0 = procfs::cpu_seconds(pid)?;
    let bench_cpu0 = procfs::cpu_seconds(Pid::Current)?;
    let started = Instant::now();
    let mut tasks = Vec::new();
    for client in clients {
        let (client, next, bar, line) = (client.clone(), next.clone(), bar.clone(), line.clone());
        tasks.push(tokio::spawn(async move {
            spawn_batches(&client, &line, total, batch, batches, &next, &bar).await
        }));
    }
    let mut numbered = Vec::with_capacity(total);
    for task in tasks {
        numbered.extend(task.await.context("a spawn task panicked")??);
    }
    let seconds = started.elapsed().as_secs_f64();
    bar.finish_and_clear();

    numbered.sort_unstable_by_key(|(batch, _)| *batch);
    let ids: Vec<String> = numbered.into_iter().flat_map(|(_, ids)| ids).collect();
    if ids.len() != total {
        bail!(
            "asked for {total} workers, the hive answered {} ids",
            ids.len()
        );
    }
    let spawn = SpawnPhase {
        workers: total,
        lines_per_write: batch,
        seconds,
        rate_per_s: total as f64 / seconds.max(1e-9),
        hive_cpu_s: procfs::cpu_seconds(pid)? - hive_cpu0,
        bench_cpu_s: procfs::cpu_seconds(Pid::Current)? - bench_cpu0,
        rss_after_kib: procfs::rss_kib(pid)?,
    };
    eprintln!(
        "spawned {total} workers in {seconds:.3} s ({:.0}/s); RSS {} KiB",
        spawn.rate_per_s, spawn.rss_after_kib
    );
    Ok((ids, spawn))
}

/// One connection's share of the spawning: takes batch numbers until none
/// is left. Each batch is one write of `count` lines to a fresh ctl fid,
/// then one read of the same fid for the new ids.
async fn spawn_batches(
    client: &Client,
    line: &str,
    total: usize,
    batch: usize,
    batches: usize,
    next: &AtomicUsize,
    bar: &ProgressBar,
) -> anyhow::Result<Vec<(usize, Vec<String>)>> {
    let mut done = Vec::new();
    // Each pass claims a distinct batch number, so at most `batches` passes.
    loop {
        let n = next.fetch_add(1, Ordering::Relaxed);
        if n >= batches {
            return Ok(done);
        }
        let count = batch.min(total - n * batch);
        let ids = spawn_batch(client, &line.repeat(count))
            .await
            .with_context(|| format!("spawn batch {n} ({} workers spawned so far)", n * batch))?;
        if ids.len() != count {
            bail!(
                "spawn batch {n}: wrote {count} lines, got {} ids",
                ids.len()
            );
        }
        bar.inc(count as u64);
        done.push((n, ids));
    }
}

async fn spawn_batch(client: &Client, payload: &str) -> anyhow::Result<Vec<String>> {
    let file = client.open("/queen/ctl", OpenMode::ReadWrite).await?;
    let written = file.write_at(0, payload.as_bytes()).await;
    let reply = match written {
        Ok(_) => file.read_to_end(MAX_CTL_REPLY).await,
        Err(e) => Err(e),
    };
    // The answer is in hand; a failed clunk only costs the fid.
    let _ = file.close().await;
    let reply = String::from_utf8(reply?).context("ctl reply is not UTF-8")?;
    Ok(reply
        .lines()
        .filter(|l| l.starts_with("worker-"))
        .map(str::to_string)
        .collect())
}

/// Samples until the duration has passed; returns the rows and what the
/// probes saw at the first and last sample.
async fn sample(
    client: &Client,
    settings: &Settings,
    pid: Pid,
    baseline_rss_kib: u64,
    probe_ids: &[String],
) -> anyhow::Result<(Vec<Sample>, Vec<Probe>)> {
    let duration = Duration::from_secs_f64(settings.minutes * 60.0);
    let every = Duration::from_secs(settings.sample_secs);
    let count = (duration.as_secs_f64() / every.as_secs_f64()).ceil() as u64 + 1;
    let bar = progress(count, "sampling");
    let started = tokio::time::Instant::now();
    let mut prev: Option<(f64, f64)> = None;
    let mut rows = Vec::new();
    let mut first_ticks = Vec::new();
    let mut last_ticks = Vec::new();

    for i in 0..count {
        let due = started + (every * i as u32).min(duration);
        tokio::time::sleep_until(due).await;
        let t_s = started.elapsed().as_secs_f64();
        let ticks = read_probes(client, probe_ids).await?;
        let row = sample_row(client, pid, baseline_rss_kib, settings, t_s, &ticks, prev).await?;
        prev = Some((t_s, row.hive_cpu_s));
        bar.set_message(format!("RSS {} MiB live {}", row.rss_kib / 1024, row.live));
        bar.inc(1);
        if i == 0 {
            first_ticks = ticks.clone();
        }
        last_ticks = ticks;
        rows.push(row);
    }
    bar.finish_and_clear();

    let probes = probe_ids
        .iter()
        .zip(first_ticks.iter().zip(&last_ticks))
        .map(|(id, (first, last))| Probe {
            worker: id.clone(),
            first: *first,
            last: *last,
            advanced: last.tick > first.tick,
        })
        .collect();
    Ok((rows, probes))
}

async fn sample_row(
    client: &Client,
    pid: Pid,
    baseline_rss_kib: u64,
    settings: &Settings,
    t_s: f64,
    ticks: &[Tick],
    prev: Option<(f64, f64)>,
) -> anyhow::Result<Sample> {
    let rss_kib = procfs::rss_kib(pid)?;
    let hive_cpu_s = procfs::cpu_seconds(pid)?;
    let live = read_live(client).await?;
    let now = unix_ms();
    let hive_cpu_pct = match prev {
        Some((t0, c0)) if t_s > t0 => (hive_cpu_s - c0) / (t_s - t0) * 100.0,
        _ => 0.0,
    };
    let grown = rss_kib.saturating_sub(baseline_rss_kib) as f64 * 1024.0;
    Ok(Sample {
        t_s,
        rss_kib,
        bytes_per_worker: grown / f64::from(settings.workers),
        live,
        hive_cpu_s,
        hive_cpu_pct,
        bench_cpu_s: procfs::cpu_seconds(Pid::Current)?,
        probe_min_tick: ticks.iter().map(|t| t.tick).min().unwrap_or(0),
        probe_max_tick: ticks.iter().map(|t| t.tick).max().unwrap_or(0),
        probe_max_age_ms: ticks
            .iter()
            .map(|t| now.saturating_sub(t.ts_ms))
            .max()
            .unwrap_or(0),
        load1: evidence::load_average(),
    })
}

/// `/proc/workers/live` reads `live=N`.
async fn read_live(client: &Client) -> anyhow::Result<u64> {
    let bytes = client.read_all("/proc/workers/live", 256).await?;
    let text = String::from_utf8_lossy(&bytes);
    text.trim()
        .strip_prefix("live=")
        .and_then(|n| n.parse().ok())
        .with_context(|| format!("unexpected /proc/workers/live: {text:?}"))
}

async fn read_probes(client: &Client, ids: &[String]) -> anyhow::Result<Vec<Tick>> {
    let mut ticks = Vec::with_capacity(ids.len());
    for id in ids {
        let path = format!("/worker/{id}/telemetry");
        let bytes = client
            .read_all(&path, MAX_TELEMETRY)
            .await
            .with_context(|| format!("cannot read {path}"))?;
        ticks.push(newest_tick(&bytes).unwrap_or_default());
    }
    Ok(ticks)
}

/// The last `{"tick":N,"ts_ms":T}` record of a telemetry read; other lines
/// (such as `{"lagged_bytes":N}`) are skipped.
fn newest_tick(bytes: &[u8]) -> Option<Tick> {
    #[derive(serde::Deserialize)]
    struct Record {
        tick: u64,
        ts_ms: u64,
    }
    let text = std::str::from_utf8(bytes).ok()?;
    text.lines().rev().find_map(|line| {
        let r: Record = serde_json::from_str(line).ok()?;
        Some(Tick {
            tick: r.tick,
            ts_ms: r.ts_ms,
        })
    })
}

/// Picks `n` distinct ids with a small xorshift generator, so a run's
/// probes can be reproduced from the seed in its summary.
fn pick_probes(ids: &[String], n: usize, seed: u64) -> Vec<String> {
    let n = n.min(ids.len());
    let mut state = seed | 1;
    let mut picked: Vec<usize> = Vec::with_capacity(n);
    // Collisions are retried; the bound keeps a degenerate generator finite.
    for _ in 0..n.saturating_mul(64) {
        if picked.len() == n {
            break;
        }
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        let i = (state % ids.len() as u64) as usize;
        if !picked.contains(&i) {
            picked.push(i);
        }
    }
    picked.into_iter().map(|i| ids[i].clone()).collect()
}

fn seed() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0x9e37_79b9, |d| d.as_nanos() as u64)
}

fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

fn progress(len: u64, what: &'static str) -> ProgressBar {
    let bar = ProgressBar::new(len);
    let style = ProgressStyle::with_template(
        "{prefix} [{elapsed_precise}] {wide_bar} {pos}/{len} {per_sec} {msg}",
    )
    .unwrap_or_else(|_| ProgressStyle::default_bar());
    bar.set_style(style);
    bar.set_prefix(what);
    bar
}

fn summarise(
    args: &ScaleArgs,
    run: RunInfo,
    settings: Settings,
    m: Measured,
    hive_stop: String,
) -> Summary {
    let first = m.samples.first().cloned();
    let last = m.samples.last().cloned();
    let rss_first = first.as_ref().map_or(0, |s| s.rss_kib);
    let rss_last = last.as_ref().map_or(0, |s| s.rss_kib);
    let drift = (rss_last as f64 - rss_first as f64) / (rss_first.max(1) as f64) * 100.0;
    let rss_flat = drift.abs() <= args.flat_pct;
    let live_min = m.samples.iter().map(|s| s.live).min().unwrap_or(0);
    let live_last = last.as_ref().map_or(0, |s| s.live);
    let ticks_advanced = !m.probes.is_empty() && m.probes.iter().all(|p| p.advanced);
    let span_s = match (&first, &last) {
        (Some(f), Some(l)) => l.t_s - f.t_s,
        _ => 0.0,
    };
    let advanced: u64 = m
        .probes
        .iter()
        .map(|p| p.last.tick.saturating_sub(p.first.tick))
        .sum();
    let tick_rate = advanced as f64 / (m.probes.len().max(1) as f64) / span_s.max(1e-9);
    let cpu_pct = |a: Option<f64>, b: Option<f64>| match (a, b) {
        (Some(a), Some(b)) if span_s > 0.0 => (b - a) / span_s * 100.0,
        _ => 0.0,
    };

    let workers = u64::from(settings.workers);
    let mut failures = Vec::new();
    if !rss_flat {
        failures.push(format!("RSS drifted {drift:.1}% (> {}%)", args.flat_pct));
    }
    if live_min < workers {
        failures.push(format!("live workers fell to {live_min} of {workers}"));
    }
    if !ticks_advanced {
        failures.push("a probed worker stopped ticking".to_string());
    }
    let verdict = if failures.is_empty() {
        "ok".to_string()
    } else {
        failures.join("; ")
    };

    Summary {
        bench: "scale",
        run,
        finished_utc: evidence::iso_utc(SystemTime::now()),
        load_avg_end: evidence::load_average(),
        baseline_rss_kib: m.baseline_rss_kib,
        spawn: m.spawn,
        samples: m.samples.len(),
        rss_first_kib: rss_first,
        rss_last_kib: rss_last,
        rss_min_kib: m.samples.iter().map(|s| s.rss_kib).min().unwrap_or(0),
        rss_max_kib: m.samples.iter().map(|s| s.rss_kib).max().unwrap_or(0),
        rss_drift_pct: drift,
        rss_flat,
        bytes_per_worker_first: first.as_ref().map_or(0.0, |s| s.bytes_per_worker),
        bytes_per_worker_last: last.as_ref().map_or(0.0, |s| s.bytes_per_worker),
        live_min,
        live_last,
        ticks_advanced,
        tick_rate_per_s: tick_rate,
        probe_max_age_ms: m
            .samples
            .iter()
            .map(|s| s.probe_max_age_ms)
            .max()
            .unwrap_or(0),
        probes: m.probes,
        hive_cpu_sampling_pct: cpu_pct(
            first.as_ref().map(|s| s.hive_cpu_s),
            last.as_ref().map(|s| s.hive_cpu_s),
        ),
        bench_cpu_sampling_pct: cpu_pct(
            first.as_ref().map(|s| s.bench_cpu_s),
            last.as_ref().map(|s| s.bench_cpu_s),
        ),
        hive_stop,
        verdict,
        settings,
        rows: m.samples,
    }
}

fn write_evidence(evidence: &Evidence, s: &Summary) -> anyhow::Result<()> {
    evidence.write_json("summary.json", s)?;
    evidence.write_run_info(&s.run, &s.load_avg_end)?;
    evidence.write("manifest.toml", &s.settings.manifest)?;
    evidence.write("scale.csv", sample_csv(&s.rows))?;
    Ok(())
}

/// Writes the per-sample CSV (kept apart so the summary can be rebuilt).
fn sample_csv(samples: &[Sample]) -> String {
    let header = [
        "t_s",
        "rss_kib",
        "bytes_per_worker",
        "live",
        "hive_cpu_s",
        "hive_cpu_pct",
        "bench_cpu_s",
        "probe_min_tick",
        "probe_max_tick",
        "probe_max_age_ms",
        "load1",
    ];
    let rows: Vec<Vec<String>> = samples
        .iter()
        .map(|s| {
            vec![
                format!("{:.1}", s.t_s),
                s.rss_kib.to_string(),
                format!("{:.1}", s.bytes_per_worker),
                s.live.to_string(),
                format!("{:.2}", s.hive_cpu_s),
                format!("{:.1}", s.hive_cpu_pct),
                format!("{:.2}", s.bench_cpu_s),
                s.probe_min_tick.to_string(),
                s.probe_max_tick.to_string(),
                s.probe_max_age_ms.to_string(),
                s.load1.split_whitespace().next().unwrap_or("").to_string(),
            ]
        })
        .collect();
    csv(&header, &rows)
}

fn print_table(s: &Summary) {
    println!(
        "scale: {} workers, baseline RSS {} KiB, spawned in {:.3} s ({:.0}/s)",
        s.settings.workers, s.baseline_rss_kib, s.spawn.seconds, s.spawn.rate_per_s
    );
    println!(
        "{:>8} {:>10} {:>9} {:>8} {:>8} {:>9} {:>9}",
        "t_s", "RSS_MiB", "B/worker", "live", "hive%", "min_tick", "age_ms"
    );
    for r in &s.rows {
        println!(
            "{:>8.1} {:>10.1} {:>9.0} {:>8} {:>8.1} {:>9} {:>9}",
            r.t_s,
            r.rss_kib as f64 / 1024.0,
            r.bytes_per_worker,
            r.live,
            r.hive_cpu_pct,
            r.probe_min_tick,
            r.probe_max_age_ms
        );
    }
    println!(
        "RSS first {} KiB, last {} KiB, drift {:+.2}% -> {}; ticks advancing: {} \
         ({:.2}/s per worker); hive CPU {:.1}% of a core, bench {:.1}%; verdict: {}",
        s.rss_first_kib,
        s.rss_last_kib,
        s.rss_drift_pct,
        if s.rss_flat { "flat" } else { "NOT flat" },
        s.ticks_advanced,
        s.tick_rate_per_s,
        s.hive_cpu_sampling_pct,
        s.bench_cpu_sampling_pct,
        s.verdict
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn newest_tick_is_the_last_tick_record() {
        let ring =
            b"{\"lagged_bytes\":40}\n{\"tick\":7,\"ts_ms\":100}\n{\"tick\":8,\"ts_ms\":1100}\n";
        let t = newest_tick(ring).unwrap();
        assert_eq!((t.tick, t.ts_ms), (8, 1100));
        assert!(newest_tick(b"{\"lagged_bytes\":40}\n").is_none());
        assert!(newest_tick(&[0xff, 0xfe]).is_none());
    }

    #[test]
    fn probes_are_distinct_and_bounded() {
        let ids: Vec<String> = (0..10).map(|i| format!("worker-{i}")).collect();
        let picked = pick_probes(&ids, 8, 42);
        assert_eq!(picked.len(), 8);
        let mut unique = picked.clone();
        unique.sort();
        unique.dedup();
        assert_eq!(unique.len(), 8);
        assert_eq!(pick_probes(&ids[..2], 8, 42).len(), 2);
        assert_eq!(pick_probes(&[], 8, 42).len(), 0);
    }
}
