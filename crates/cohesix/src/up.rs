//! `cohesix up`: one command from nothing to a running hive.

use crate::{load_manifest, mint_ticket};
use anyhow::Context;
use clap::Args;
use cohesix_core::{Credential, Transport};
use cohesix_hive::{HiveConfig, RunningHive};
use cohesix_ticket::Role;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::PathBuf;

#[derive(Args)]
pub struct UpArgs {
    /// Manifest file (TOML); without it the embedded defaults are used.
    #[arg(long, env = "COHESIX_MANIFEST")]
    manifest: Option<PathBuf>,
    /// Data directory: secrets, state, audit log, telemetry.
    #[arg(long, default_value = ".cohesix", env = "COHESIX_DATA_DIR")]
    data_dir: PathBuf,
    /// Override the manifest's Secure9P listen address.
    #[arg(long)]
    ninep_listen: Option<String>,
    /// Override the manifest's console listen address ("" disables it).
    #[arg(long)]
    console_listen: Option<String>,
    /// Heartbeat workers to spawn at start so there is something to see.
    #[arg(long, default_value_t = 4)]
    workers: u32,
    /// Ticks each of those workers runs for.
    #[arg(long, default_value_t = 600)]
    ticks: u32,
    /// Accept the placeholder secret `changeme` (development only).
    #[arg(long)]
    dev: bool,
}

pub fn run(args: UpArgs) -> anyhow::Result<()> {
    let (mut manifest, manifest_name) = load_manifest(args.manifest.as_deref())?;
    if let Some(addr) = &args.ninep_listen {
        manifest.ninep.listen = addr.clone();
    }
    if let Some(addr) = &args.console_listen {
        manifest.console.listen = addr.clone();
    }
    manifest.hive.dev_mode |= args.dev;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(async move {
        let config = HiveConfig {
            manifest,
            manifest_name,
            data_dir: args.data_dir.clone(),
        };
        let hive = cohesix_hive::start(config).await?;
        let ticket = mint_ticket(&hive.secrets, Role::Queen, None, 24 * 3600)?;
        let ticket_path = args.data_dir.join("queen.ticket");
        write_private(&ticket_path, &ticket)?;
        let spawned = spawn_demo_workers(&hive, &ticket, args.workers, args.ticks)?;
        print_banner(&hive, &args.data_dir, &ticket, &spawned);
        wait_for_signal().await;
        eprintln!("shutting down");
        hive.shutdown().await;
        Ok(())
    })
}

fn write_private(path: &std::path::Path, text: &str) -> anyhow::Result<()> {
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("cannot write {}", path.display()))?;
    writeln!(f, "{text}")?;
    Ok(())
}

/// Spawns demo workers through `/queen/ctl` as a queen session, exactly as
/// any client would.
fn spawn_demo_workers(
    hive: &RunningHive,
    ticket: &str,
    n: u32,
    ticks: u32,
) -> anyhow::Result<Vec<String>> {
    if n == 0 {
        return Ok(Vec::new());
    }
    hive.shared.with_hive(|h| {
        let sid = h
            .attach("queen", Credential::Ticket(ticket), Transport::NineP)
            .map_err(|e| anyhow::anyhow!("demo session refused: {e}"))?;
        // Live long enough to run every tick, with a minute to spare.
        let interval_ms = u64::from(h.manifest().workers.heartbeat_interval_ms);
        let ttl_s = u64::from(ticks) * interval_ms / 1000 + 60;
        let line = format!(
            "{{\"spawn\":\"heartbeat\",\"ticks\":{ticks},\"budget\":{{\"ttl_s\":{ttl_s}}}}}"
        );
        let mut ids = Vec::new();
        for _ in 0..n {
            let out = h.append(sid, "/queen/ctl", line.as_bytes());
            match out {
                Ok(o) => ids.extend(o.reply),
                Err(e) => {
                    h.detach(sid);
                    anyhow::bail!("demo spawn refused: {e}");
                }
            }
        }
        h.detach(sid);
        Ok(ids)
    })
}

fn print_banner(hive: &RunningHive, data_dir: &std::path::Path, ticket: &str, spawned: &[String]) {
    let m = &hive.shared.manifest;
    println!("cohesix hive online ({})", m.hive.name);
    println!(
        "  secure9p  {}  (9P2000.L: uname=<role> aname=<ticket>)",
        hive.ninep_addr
    );
    match hive.console_addr {
        Some(a) => println!(
            "  console   {a}  (AUTH token: console_token in {})",
            data_dir.join("secrets.toml").display()
        ),
        None => println!("  console   disabled"),
    }
    println!("  data      {}", data_dir.display());
    println!(
        "  queen ticket ({}):",
        data_dir.join("queen.ticket").display()
    );
    println!("    {ticket}");
    if let (Some(first), Some(last)) = (spawned.first(), spawned.last()) {
        println!(
            "  spawned   {} heartbeat workers ({first} .. {last}), one record every {} ms",
            spawned.len(),
            m.workers.heartbeat_interval_ms
        );
    }
    println!("Press Ctrl-C to stop.");
}

async fn wait_for_signal() {
    let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(s) => s,
        Err(_) => {
            let _ = tokio::signal::ctrl_c().await;
            return;
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}
