//! Ingest benchmark client: small durable appends, then one artifact
//! pushed over Secure9P and read back verified, against a running hive
//! (see `bench/ingest.sh`, which starts `hive-fixture` and records the
//! results). It reports; it asserts only that the bytes came back intact.
//!
//! `ingest_bench --addr A --ticket-file F [--bytes N] [--appends N]
//! [--device D]`
//!
//! The artifact is a deterministic pseudo-random stream, generated while
//! writing and again while reading, so neither side holds it in memory and
//! the client spends no time hashing.

use cohesix_client::{Client, ClientConfig, OpenMode};
use std::time::{Duration, Instant};

fn arg(args: &[String], name: &str) -> Option<String> {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1).cloned())
}

/// xorshift64* filling `buf`; `state` carries over between calls.
fn fill(state: &mut u64, buf: &mut [u8]) {
    for word in buf.chunks_mut(8) {
        let mut x = *state;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        *state = x;
        let v = x.wrapping_mul(0x2545_F491_4F6C_DD1D).to_le_bytes();
        word.copy_from_slice(&v[..word.len()]);
    }
}

fn mbps(bytes: u64, d: Duration) -> f64 {
    bytes as f64 / (1024.0 * 1024.0) / d.as_secs_f64().max(1e-9)
}

fn percentile(sorted: &[f64], pct: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = ((sorted.len() as f64) * pct / 100.0).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let addr = arg(&args, "--addr").ok_or_else(|| anyhow::anyhow!("--addr is required"))?;
    let ticket_file =
        arg(&args, "--ticket-file").ok_or_else(|| anyhow::anyhow!("--ticket-file is required"))?;
    let bytes: u64 = arg(&args, "--bytes").map_or(Ok(1 << 30), |v| v.parse())?;
    let appends: u64 = arg(&args, "--appends").map_or(Ok(2000), |v| v.parse())?;
    let device = arg(&args, "--device").unwrap_or_else(|| "bench-1".to_string());
    let ticket = std::fs::read_to_string(&ticket_file)?;

    let mut config = ClientConfig::new("queen", ticket.trim());
    config.msize = 1 << 20;
    config.timeout = Duration::from_secs(120);
    let c = Client::connect(addr.as_str(), config).await?;
    let dev = format!("/queen/telemetry/{device}");
    println!("client msize={}", c.msize());

    let ctl = c.open(&format!("{dev}/ctl"), OpenMode::ReadWrite).await?;
    ctl.write_at(0, br#"{"new":"segment","mime":"text/plain"}"#)
        .await?;
    let seg = String::from_utf8(ctl.read_at(0, 64).await?)?;
    ctl.close().await?;
    let seg = seg.trim_end().to_string();

    // Small records, one at a time: each is acknowledged after its sync.
    let path = format!("{dev}/seg/{seg}");
    let file = c.open(&path, OpenMode::Write).await?;
    let mut lat = Vec::with_capacity(appends as usize);
    let started = Instant::now();
    for seq in 1..=appends {
        let head = r#"{"schema":"cohsh-telemetry-push/v1","mime":"text/plain""#;
        let rec = format!(r#"{head},"seq":{seq},"payload":"sample {seq}"}}"#);
        let t = Instant::now();
        file.write_at(0, rec.as_bytes()).await?;
        lat.push(t.elapsed().as_secs_f64() * 1000.0);
    }
    let took = started.elapsed();
    file.close().await?;
    lat.sort_by(|a, b| a.total_cmp(b));
    println!(
        "appends n={appends} ops_per_s={:.0} p50_ms={:.3} p95_ms={:.3} p99_ms={:.3} max_ms={:.3}",
        appends as f64 / took.as_secs_f64().max(1e-9),
        percentile(&lat, 50.0),
        percentile(&lat, 95.0),
        percentile(&lat, 99.0),
        percentile(&lat, 100.0)
    );

    // The artifact: sequential writes of one iounit each.
    let up = c
        .open(&format!("{dev}/artifact"), OpenMode::ReadWrite)
        .await?;
    let step = up.iounit() as usize;
    let mut buf = vec![0u8; step];
    let mut state = 0x9E37_79B9_7F4A_7C15u64;
    let started = Instant::now();
    let mut sent = 0u64;
    while sent < bytes {
        let n = (bytes - sent).min(step as u64) as usize;
        fill(&mut state, &mut buf[..n]);
        let took = up.write_at(sent, &buf[..n]).await?;
        anyhow::ensure!(took as usize == n, "short write {took} of {n}");
        sent += n as u64;
    }
    let streamed = started.elapsed();
    let reply = up.read_at(0, 128).await?;
    let pushed = started.elapsed();
    up.close().await?;
    let id = String::from_utf8(reply)?.trim_end().to_string();
    println!(
        "push bytes={bytes} iounit={step} stream_s={:.3} commit_ms={:.1} total_s={:.3} \
         MBps={:.1} id={id}",
        streamed.as_secs_f64(),
        (pushed - streamed).as_secs_f64() * 1000.0,
        pushed.as_secs_f64(),
        mbps(bytes, pushed)
    );

    // Read back, verified by the hive per chunk and by us per byte.
    let rd = c
        .open(&format!("{dev}/artifacts/{id}"), OpenMode::Read)
        .await?;
    let step = rd.iounit();
    let mut state = 0x9E37_79B9_7F4A_7C15u64;
    let mut expect = vec![0u8; step as usize];
    let started = Instant::now();
    let mut got = 0u64;
    loop {
        let data = rd.read_at(got, step).await?;
        if data.is_empty() {
            break;
        }
        fill(&mut state, &mut expect[..data.len()]);
        anyhow::ensure!(data == expect[..data.len()], "mismatch near byte {got}");
        got += data.len() as u64;
        // A short read that is not the end would desynchronise `fill`.
        anyhow::ensure!(
            data.len() % 8 == 0 || got == bytes,
            "odd short read at {got}"
        );
    }
    let took = started.elapsed();
    rd.close().await?;
    anyhow::ensure!(got == bytes, "read back {got} of {bytes} bytes");
    println!(
        "readback bytes={got} s={:.3} MBps={:.1} verified=yes",
        took.as_secs_f64(),
        mbps(got, took)
    );
    let mut line = String::from("proc_ingest");
    for f in ["p50_ms", "p95_ms", "backpressure", "dropped", "queued"] {
        let d = c.read_all(&format!("/proc/ingest/{f}"), 64).await?;
        line.push(' ');
        line.push_str(String::from_utf8_lossy(&d).trim_end());
    }
    println!("{line}");
    Ok(())
}
