//! Console read latency: N sequential small reads per client (`CAT
//! /proc/boot`, `LS /`, `LS /proc`, `CAT /proc/lifecycle/state` in turn)
//! through cohsh's console client, for 1 client and for many at once.
//!
//! Prints ops/s and p50/p95/p99/max latency per run. The upstream figure to
//! compare with (BENCHMARKS.md §3): one client, 2000 reads, 558 ops/s,
//! p50 1.52 ms, p95 3.07 ms, p99 5.0 ms.
//!
//! ```text
//! cargo run --release -p cohsh --example console_bench -- \
//!     [--addr 127.0.0.1:31337] [--data-dir .cohesix | --token T] \
//!     [--ops 2000] [--clients 1,64] [--in-process]
//! ```
//!
//! `--in-process` starts a hive inside the benchmark (temporary data
//! directory) instead of using a running `cohesix up`.

use cohsh::tcp::{TcpConsole, TcpOptions};
use cohsh::transport::Request;
use hdrhistogram::Histogram;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

/// The reads, in the order each client repeats them.
fn reads() -> [Request; 4] {
    [
        Request::Cat("/proc/boot".into()),
        Request::Ls("/".into()),
        Request::Ls("/proc".into()),
        Request::Cat("/proc/lifecycle/state".into()),
    ]
}

struct Args {
    addr: SocketAddr,
    token: Option<String>,
    data_dir: String,
    ops: u64,
    clients: Vec<usize>,
    in_process: bool,
}

fn args() -> Result<Args, String> {
    let mut parsed = Args {
        addr: "127.0.0.1:31337".parse().map_err(|e| format!("{e}"))?,
        token: None,
        data_dir: ".cohesix".into(),
        ops: 2000,
        clients: vec![1, 64],
        in_process: false,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().ok_or(format!("{flag} needs a value"));
        match flag.as_str() {
            "--addr" => parsed.addr = value()?.parse().map_err(|e| format!("--addr: {e}"))?,
            "--token" => parsed.token = Some(value()?),
            "--data-dir" => parsed.data_dir = value()?,
            "--ops" => parsed.ops = value()?.parse().map_err(|e| format!("--ops: {e}"))?,
            "--clients" => {
                parsed.clients = value()?
                    .split(',')
                    .map(|c| c.parse().map_err(|e| format!("--clients: {e}")))
                    .collect::<Result<_, _>>()?;
            }
            "--in-process" => parsed.in_process = true,
            other => return Err(format!("unknown flag {other}")),
        }
    }
    Ok(parsed)
}

/// One client's run: its latencies and its errors.
async fn client(addr: SocketAddr, token: String, ops: u64) -> (Histogram<u64>, u64) {
    let mut histogram = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).expect("bounds");
    let options = TcpOptions::new(addr.ip().to_string(), addr.port(), Some(token));
    let mut console = TcpConsole::new(options);
    let attach = Request::Attach {
        role: "queen".into(),
        ticket: None,
    };
    let mut errors = 0;
    if !console.request(&attach).await.is_ok_and(|r| r.is_ok()) {
        return (histogram, ops);
    }
    let reads = reads();
    for i in 0..ops {
        let request = &reads[(i % reads.len() as u64) as usize];
        let started = Instant::now();
        let ok = console.request(request).await.is_ok_and(|r| r.is_ok());
        let micros = started.elapsed().as_micros() as u64;
        histogram.saturating_record(micros.max(1));
        errors += u64::from(!ok);
    }
    let _ = console.request(&Request::Quit).await;
    (histogram, errors)
}

async fn run(addr: SocketAddr, token: &str, clients: usize, ops: u64) {
    let started = Instant::now();
    let tasks: Vec<_> = (0..clients)
        .map(|_| tokio::spawn(client(addr, token.to_string(), ops)))
        .collect();
    let mut all = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).expect("bounds");
    let mut errors = 0;
    for task in tasks {
        match task.await {
            Ok((h, e)) => {
                let _ = all.add(&h);
                errors += e;
            }
            Err(_) => errors += ops,
        }
    }
    let wall = started.elapsed();
    let total = clients as u64 * ops;
    let ms = |q: f64| all.value_at_quantile(q) as f64 / 1000.0;
    println!(
        "clients={clients} ops={total} errors={errors} wall_s={:.3} ops_per_s={:.0} \
         p50_ms={:.3} p95_ms={:.3} p99_ms={:.3} max_ms={:.3}",
        wall.as_secs_f64(),
        total as f64 / wall.as_secs_f64().max(1e-9),
        ms(0.50),
        ms(0.95),
        ms(0.99),
        all.max() as f64 / 1000.0,
    );
}

fn main() {
    let args = match args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("Error: {e}");
            std::process::exit(2);
        }
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        let (addr, token, _hive, _dir) = if args.in_process {
            let (hive, dir) = in_process().await;
            let addr = hive.console_addr.expect("console");
            let token = hive.secrets.console_token.clone();
            (addr, token, Some(hive), Some(dir))
        } else {
            let token = args
                .token
                .clone()
                .or_else(|| cohsh::mint::console_token(args.data_dir.as_ref()));
            let Some(token) = token else {
                eprintln!("Error: no token: pass --token or --data-dir");
                std::process::exit(2);
            };
            (args.addr, token, None, None)
        };
        println!(
            "machine: nproc={} arch={} target={} hive={}",
            std::thread::available_parallelism().map_or(0, |n| n.get()),
            std::env::consts::ARCH,
            if cfg!(debug_assertions) {
                "debug"
            } else {
                "release"
            },
            if args.in_process {
                "in-process"
            } else {
                "external"
            },
        );
        for clients in &args.clients {
            run(addr, &token, *clients, args.ops).await;
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    });
}

async fn in_process() -> (cohesix_hive::RunningHive, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut manifest = cohesix_manifest::Manifest::default();
    manifest.ninep.listen = "127.0.0.1:0".into();
    manifest.console.listen = "127.0.0.1:0".into();
    let config = cohesix_hive::HiveConfig {
        manifest,
        manifest_name: "bench".into(),
        data_dir: dir.path().to_path_buf(),
    };
    let hive = cohesix_hive::start(config).await.expect("hive starts");
    (hive, dir)
}
