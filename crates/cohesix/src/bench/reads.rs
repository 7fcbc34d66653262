//! `cohesix bench reads`: small 9P reads from many sessions, against a hive
//! and against diod, by the same client code in the same run.
//!
//! Every session is its own connection and does one operation at a time:
//! walk a fresh fid to a small file, open it, read it, clunk it (four round
//! trips, what `cat` of a /proc file costs a 9P client). The latency of each
//! whole operation goes into an HDR histogram; the bench reports operations
//! per second, p50/p95/p99, and the CPU used by itself and by the server.
//!
//! The hive is read at `/proc/lifecycle/state` (`state=online`, 12 bytes);
//! diod, Debian's 9P2000.L server, at `version` of its synthetic `ctl`
//! tree (`diod-1.0.24\n`, 12 bytes), attached with uname `root` and aname
//! `ctl`. Rounds alternate which server goes first.
//!
//! # Limitations
//!
//! - The generator and the server share the machine's cores; both CPU
//!   figures are reported so the reader can see who used what.
//! - diod answers from a thread pool and the hive from one async task per
//!   connection; this measures the whole server as shipped, not the codec.

use super::child::{start_diod, start_hive, DiodChild, HiveChild};
use super::evidence::{self, csv, Evidence, RunInfo};
use super::procfs::{self, Pid};
use anyhow::{bail, Context};
use clap::{Args, ValueEnum};
use cohesix_client::{Client, ClientConfig};
use hdrhistogram::Histogram;
use serde::Serialize;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::{Duration, SystemTime};
use tokio::time::Instant;

/// Largest answer one read operation accepts; both files are ~12 bytes.
const MAX_READ: usize = 4096;
/// Latencies are recorded in nanoseconds between 1 µs and 60 s.
const LOWEST_NS: u64 = 1_000;
const HIGHEST_NS: u64 = 60_000_000_000;
/// Percentiles written to each round's latency CSV.
const PERCENTILES: [f64; 16] = [
    0.0, 10.0, 20.0, 30.0, 40.0, 50.0, 60.0, 70.0, 80.0, 90.0, 95.0, 99.0, 99.9, 99.99, 99.999,
    100.0,
];

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Target {
    Hive,
    Diod,
    Both,
}

#[derive(Args, Debug)]
pub struct ReadsArgs {
    /// Concurrent sessions (connections), each with one read in flight.
    #[arg(long, default_value_t = 16, value_parser = clap::value_parser!(u64).range(1..=512))]
    sessions: u64,
    /// Measured seconds per server per round.
    #[arg(long, default_value_t = 30, value_parser = clap::value_parser!(u64).range(1..=3600))]
    seconds: u64,
    /// Which server(s) to read.
    #[arg(long, value_enum, default_value_t = Target::Both)]
    target: Target,
    /// Rounds; each round measures every target once.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=20))]
    rounds: u32,
    /// Unmeasured seconds of the same load before each measurement.
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u64).range(0..=60))]
    warmup_secs: u64,
    /// The diod executable.
    #[arg(long, default_value = "diod")]
    diod: PathBuf,
    /// The hive file read by every operation.
    #[arg(long, default_value = "/proc/lifecycle/state")]
    hive_path: String,
    /// The diod ctl file read by every operation.
    #[arg(long, default_value = "version")]
    diod_path: String,
    /// Folder that receives the dated evidence folder.
    #[arg(long, default_value = "bench/results")]
    results: PathBuf,
}

/// One server measured once.
#[derive(Clone, Debug, Serialize)]
struct Round {
    target: &'static str,
    round: u32,
    path: String,
    /// What one read returned, to show the files are comparable.
    sample: String,
    ops: u64,
    /// Failed operations, warm-up included.
    errors: u64,
    first_error: Option<String>,
    wall_s: f64,
    ops_per_s: f64,
    mean_us: f64,
    p50_us: f64,
    p95_us: f64,
    p99_us: f64,
    p999_us: f64,
    max_us: f64,
    client_cpu_s: f64,
    client_cpu_pct: f64,
    client_cpu_us_per_op: f64,
    server_cpu_s: f64,
    server_cpu_pct: f64,
    server_cpu_us_per_op: f64,
    load1_start: String,
    load1_end: String,
    #[serde(skip)]
    quantiles: Vec<(f64, f64)>,
}

/// Medians over the rounds of one target.
#[derive(Debug, Default, Serialize)]
struct Medians {
    rounds: usize,
    ops_per_s: f64,
    p50_us: f64,
    p95_us: f64,
    p99_us: f64,
    client_cpu_pct: f64,
    server_cpu_pct: f64,
    server_cpu_us_per_op: f64,
    errors: u64,
}

#[derive(Debug, Serialize)]
struct Summary {
    bench: &'static str,
    run: RunInfo,
    finished_utc: String,
    load_avg_end: String,
    settings: Settings,
    hive: Option<Medians>,
    diod: Option<Medians>,
    /// hive ÷ diod, from the medians; absent unless both ran.
    hive_over_diod_ops_per_s: Option<f64>,
    hive_over_diod_p99: Option<f64>,
    /// Why a target could not be measured, in the words of the failure.
    failures: Vec<String>,
    rounds: Vec<Round>,
}

#[derive(Debug, Serialize)]
struct Settings {
    sessions: u64,
    seconds: u64,
    rounds: u32,
    warmup_secs: u64,
    target: String,
    hive_path: String,
    diod_path: String,
    diod_attach: &'static str,
    msize: u32,
}

/// A server under test and how to reach it.
struct Server {
    name: &'static str,
    addr: SocketAddr,
    pid: u32,
    config: ClientConfig,
    path: String,
}

pub fn run(args: ReadsArgs) -> anyhow::Result<()> {
    let info = evidence::run_info();
    let evidence = Evidence::create(&args.results, "reads")?;
    eprintln!("evidence: {}", evidence.dir().display());
    eprintln!(
        "machine: {}  load: {}",
        info.machine.line(),
        info.load_avg_start
    );

    let mut failures = Vec::new();
    let hive = want(args.target, Target::Hive)
        .then(|| start_hive(""))
        .transpose()
        .context("cannot start the hive")?;
    let diod = match want(args.target, Target::Diod).then(|| start_diod(&args.diod)) {
        Some(Ok(d)) => Some(d),
        Some(Err(e)) => {
            failures.push(format!("diod: {e:#}"));
            None
        }
        None => None,
    };
    let servers = servers(&args, hive.as_ref(), diod.as_ref());

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let rounds = runtime.block_on(all_rounds(&args, &servers, &mut failures));
    drop(servers);
    write_logs(&evidence, hive, diod)?;

    let summary = summarise(&args, info, rounds, failures);
    evidence.write_json("summary.json", &summary)?;
    evidence.write_run_info(&summary.run, &summary.load_avg_end)?;
    evidence.write("reads.csv", rounds_csv(&summary.rounds))?;
    for r in &summary.rounds {
        let name = format!("latency-{}-r{}.csv", r.target, r.round);
        evidence.write(&name, quantiles_csv(&r.quantiles))?;
    }
    print_table(&summary);
    eprintln!("evidence: {}", evidence.dir().display());
    if !summary.failures.is_empty() {
        bail!("reads run incomplete: {}", summary.failures.join("; "));
    }
    Ok(())
}

fn want(asked: Target, which: Target) -> bool {
    asked == which || asked == Target::Both
}

fn servers(args: &ReadsArgs, hive: Option<&HiveChild>, diod: Option<&DiodChild>) -> Vec<Server> {
    let mut out = Vec::new();
    if let Some(h) = hive {
        out.push(Server {
            name: "hive",
            addr: h.addr,
            pid: h.guard.pid(),
            config: ClientConfig::new("queen", h.ticket.clone()),
            path: args.hive_path.clone(),
        });
    }
    if let Some(d) = diod {
        // diod maps uname `root` to uid 0 (n_uname is sent as "none",
        // which tells it to look the name up) and aname `ctl` to its
        // synthetic tree.
        out.push(Server {
            name: "diod",
            addr: d.addr,
            pid: d.guard.pid(),
            config: ClientConfig::new("root", "ctl"),
            path: args.diod_path.clone(),
        });
    }
    out
}

fn write_logs(
    evidence: &Evidence,
    hive: Option<HiveChild>,
    diod: Option<DiodChild>,
) -> anyhow::Result<()> {
    if let Some(mut h) = hive {
        let how = h.guard.stop();
        evidence.write(
            "hive.log.tail",
            format!("{}\n[bench] hive {how}\n", h.log_tail()),
        )?;
    }
    if let Some(mut d) = diod {
        let how = d.guard.stop();
        evidence.write(
            "diod.log.tail",
            format!("{}\n[bench] diod {how}\n", d.log_tail()),
        )?;
    }
    Ok(())
}

async fn all_rounds(
    args: &ReadsArgs,
    servers: &[Server],
    failures: &mut Vec<String>,
) -> Vec<Round> {
    let mut rounds = Vec::new();
    let mut broken: Vec<&str> = Vec::new();
    for round in 1..=args.rounds {
        // Alternate the order so neither server always runs on a machine
        // the other just warmed (or heated).
        let order: Vec<&Server> = if round % 2 == 1 {
            servers.iter().collect()
        } else {
            servers.iter().rev().collect()
        };
        for server in order {
            if broken.contains(&server.name) {
                continue;
            }
            eprintln!(
                "round {round}: {} ({} sessions, {} s)",
                server.name, args.sessions, args.seconds
            );
            match measure(args, server, round).await {
                Ok(r) => {
                    eprintln!(
                        "  {:.0} ops/s, p50 {:.0} us, p99 {:.0} us, {} errors",
                        r.ops_per_s, r.p50_us, r.p99_us, r.errors
                    );
                    rounds.push(r);
                }
                Err(e) => {
                    eprintln!("  {}: {e:#}", server.name);
                    failures.push(format!("{} round {round}: {e:#}", server.name));
                    broken.push(server.name);
                }
            }
        }
    }
    rounds
}

/// What one session did in the measured window.
struct SessionTally {
    hist: Histogram<u64>,
    errors: u64,
    first_error: Option<String>,
}

async fn measure(args: &ReadsArgs, server: &Server, round: u32) -> anyhow::Result<Round> {
    let mut clients = Vec::new();
    for _ in 0..args.sessions {
        let client = Client::connect(server.addr, server.config.clone())
            .await
            .with_context(|| format!("attach to {} at {}", server.name, server.addr))?;
        clients.push(client);
    }
    let sample = clients[0]
        .read_all(&server.path, MAX_READ)
        .await
        .with_context(|| format!("read {} on {}", server.path, server.name))?;

    let warm = Instant::now();
    let start = warm + Duration::from_secs(args.warmup_secs);
    let end = start + Duration::from_secs(args.seconds);
    let mut tasks = Vec::new();
    for client in &clients {
        let (client, path) = (client.clone(), server.path.clone());
        tasks.push(tokio::spawn(async move {
            session(client, path, start, end).await
        }));
    }

    tokio::time::sleep_until(start).await;
    let load1_start = first_field(&evidence::load_average());
    let client_cpu0 = procfs::cpu_seconds(Pid::Current)?;
    let server_cpu0 = procfs::cpu_seconds(Pid::Other(server.pid))?;
    let mut tallies = Vec::new();
    for task in tasks {
        tallies.push(task.await.context("a session task panicked")??);
    }
    let wall_s = (Instant::now() - start).as_secs_f64();
    let client_cpu_s = procfs::cpu_seconds(Pid::Current)? - client_cpu0;
    let server_cpu_s = procfs::cpu_seconds(Pid::Other(server.pid))? - server_cpu0;
    for c in &clients {
        c.close();
    }

    let mut hist = new_histogram()?;
    let mut errors = 0;
    let mut first_error = None;
    for t in tallies {
        hist.add(&t.hist)
            .context("histograms of different bounds")?;
        errors += t.errors;
        first_error = first_error.or(t.first_error);
    }
    let ops = hist.len();
    let us = |ns: u64| ns as f64 / 1000.0;
    let per_op = |cpu: f64| cpu * 1e6 / (ops.max(1) as f64);
    Ok(Round {
        target: server.name,
        round,
        path: server.path.clone(),
        sample: String::from_utf8_lossy(&sample).trim_end().to_string(),
        ops,
        errors,
        first_error,
        wall_s,
        ops_per_s: ops as f64 / wall_s.max(1e-9),
        mean_us: hist.mean() / 1000.0,
        p50_us: us(hist.value_at_quantile(0.50)),
        p95_us: us(hist.value_at_quantile(0.95)),
        p99_us: us(hist.value_at_quantile(0.99)),
        p999_us: us(hist.value_at_quantile(0.999)),
        max_us: us(hist.max()),
        client_cpu_s,
        client_cpu_pct: client_cpu_s / wall_s.max(1e-9) * 100.0,
        client_cpu_us_per_op: per_op(client_cpu_s),
        server_cpu_s,
        server_cpu_pct: server_cpu_s / wall_s.max(1e-9) * 100.0,
        server_cpu_us_per_op: per_op(server_cpu_s),
        load1_start,
        load1_end: first_field(&evidence::load_average()),
        quantiles: PERCENTILES
            .iter()
            .map(|p| (*p, us(hist.value_at_percentile(*p))))
            .collect(),
    })
}

/// One session's loop: reads until `end`, recording only operations that
/// began at or after `start` (the warm-up is not counted). Each operation
/// is bounded by the client's per-request timeout, so the loop ends at most
/// four timeouts after `end`.
async fn session(
    client: Client,
    path: String,
    start: Instant,
    end: Instant,
) -> anyhow::Result<SessionTally> {
    let mut tally = SessionTally {
        hist: new_histogram()?,
        errors: 0,
        first_error: None,
    };
    loop {
        let began = Instant::now();
        if began >= end {
            return Ok(tally);
        }
        let result = client.read_all(&path, MAX_READ).await;
        let counted = began >= start;
        match result {
            Ok(_) if counted => {
                let ns = u64::try_from(began.elapsed().as_nanos()).unwrap_or(u64::MAX);
                tally.hist.saturating_record(ns);
            }
            Ok(_) => {}
            Err(e) => {
                tally.errors += 1;
                tally.first_error.get_or_insert_with(|| e.to_string());
                if !client.is_connected() {
                    return Ok(tally);
                }
            }
        }
    }
}

fn new_histogram() -> anyhow::Result<Histogram<u64>> {
    Histogram::new_with_bounds(LOWEST_NS, HIGHEST_NS, 3).context("histogram bounds")
}

fn summarise(args: &ReadsArgs, run: RunInfo, rounds: Vec<Round>, failures: Vec<String>) -> Summary {
    let hive = medians(&rounds, "hive");
    let diod = medians(&rounds, "diod");
    let ratio = |f: fn(&Medians) -> f64| match (&hive, &diod) {
        (Some(h), Some(d)) if f(d) > 0.0 => Some(f(h) / f(d)),
        _ => None,
    };
    Summary {
        bench: "reads",
        run,
        finished_utc: evidence::iso_utc(SystemTime::now()),
        load_avg_end: evidence::load_average(),
        settings: Settings {
            sessions: args.sessions,
            seconds: args.seconds,
            rounds: args.rounds,
            warmup_secs: args.warmup_secs,
            target: format!("{:?}", args.target).to_lowercase(),
            hive_path: args.hive_path.clone(),
            diod_path: args.diod_path.clone(),
            diod_attach: "uname=root aname=ctl n_uname=none (-1), diod -n (no auth)",
            msize: ClientConfig::new("", "").msize,
        },
        hive_over_diod_ops_per_s: ratio(|m| m.ops_per_s),
        hive_over_diod_p99: ratio(|m| m.p99_us),
        hive,
        diod,
        failures,
        rounds,
    }
}

fn medians(rounds: &[Round], target: &str) -> Option<Medians> {
    let mine: Vec<&Round> = rounds.iter().filter(|r| r.target == target).collect();
    if mine.is_empty() {
        return None;
    }
    let med = |f: fn(&Round) -> f64| median(mine.iter().map(|r| f(r)).collect());
    Some(Medians {
        rounds: mine.len(),
        ops_per_s: med(|r| r.ops_per_s),
        p50_us: med(|r| r.p50_us),
        p95_us: med(|r| r.p95_us),
        p99_us: med(|r| r.p99_us),
        client_cpu_pct: med(|r| r.client_cpu_pct),
        server_cpu_pct: med(|r| r.server_cpu_pct),
        server_cpu_us_per_op: med(|r| r.server_cpu_us_per_op),
        errors: mine.iter().map(|r| r.errors).sum(),
    })
}

/// The median; the mean of the middle two for an even count.
fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    let n = values.len();
    match n {
        0 => 0.0,
        _ if n % 2 == 1 => values[n / 2],
        _ => (values[n / 2 - 1] + values[n / 2]) / 2.0,
    }
}

fn rounds_csv(rounds: &[Round]) -> String {
    let header = [
        "target",
        "round",
        "ops",
        "errors",
        "wall_s",
        "ops_per_s",
        "mean_us",
        "p50_us",
        "p95_us",
        "p99_us",
        "p999_us",
        "max_us",
        "client_cpu_pct",
        "client_cpu_us_per_op",
        "server_cpu_pct",
        "server_cpu_us_per_op",
        "load1_start",
        "load1_end",
    ];
    let rows: Vec<Vec<String>> = rounds
        .iter()
        .map(|r| {
            vec![
                r.target.to_string(),
                r.round.to_string(),
                r.ops.to_string(),
                r.errors.to_string(),
                format!("{:.3}", r.wall_s),
                format!("{:.1}", r.ops_per_s),
                format!("{:.1}", r.mean_us),
                format!("{:.1}", r.p50_us),
                format!("{:.1}", r.p95_us),
                format!("{:.1}", r.p99_us),
                format!("{:.1}", r.p999_us),
                format!("{:.1}", r.max_us),
                format!("{:.1}", r.client_cpu_pct),
                format!("{:.2}", r.client_cpu_us_per_op),
                format!("{:.1}", r.server_cpu_pct),
                format!("{:.2}", r.server_cpu_us_per_op),
                r.load1_start.clone(),
                r.load1_end.clone(),
            ]
        })
        .collect();
    csv(&header, &rows)
}

fn first_field(s: &str) -> String {
    s.split_whitespace().next().unwrap_or("").to_string()
}

fn quantiles_csv(q: &[(f64, f64)]) -> String {
    let rows: Vec<Vec<String>> = q
        .iter()
        .map(|(p, us)| vec![format!("{p}"), format!("{us:.1}")])
        .collect();
    csv(&["percentile", "latency_us"], &rows)
}

fn print_table(s: &Summary) {
    println!(
        "reads: {} sessions x {} s, {} round(s); walk+open+read+clunk per op",
        s.settings.sessions, s.settings.seconds, s.settings.rounds
    );
    println!(
        "{:<6} {:>5} {:>10} {:>9} {:>9} {:>9} {:>7} {:>9} {:>9}",
        "target", "round", "ops/s", "p50_us", "p95_us", "p99_us", "errors", "client%", "server%"
    );
    for r in &s.rounds {
        println!(
            "{:<6} {:>5} {:>10.0} {:>9.1} {:>9.1} {:>9.1} {:>7} {:>9.1} {:>9.1}",
            r.target,
            r.round,
            r.ops_per_s,
            r.p50_us,
            r.p95_us,
            r.p99_us,
            r.errors,
            r.client_cpu_pct,
            r.server_cpu_pct
        );
    }
    if let (Some(ops), Some(p99)) = (s.hive_over_diod_ops_per_s, s.hive_over_diod_p99) {
        println!("hive/diod (medians): ops/s x{ops:.2}, p99 x{p99:.2}");
    }
    for f in &s.failures {
        println!("FAILED {f}");
    }
}

#[cfg(test)]
mod tests {
    use super::median;

    #[test]
    fn median_of_odd_and_even_counts() {
        assert_eq!(median(vec![3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(vec![4.0, 1.0, 2.0, 3.0]), 2.5);
        assert_eq!(median(Vec::new()), 0.0);
    }
}
