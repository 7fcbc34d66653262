//! A bare hive for crash tests and the ingest benchmark.
//!
//! `hive-fixture --data-dir DIR [--manifest FILE]` starts a hive with no
//! console and Secure9P on 127.0.0.1 at a port the OS picks, writes a queen
//! ticket to `DIR/queen.ticket`, prints one line
//! `ready ninep=<addr> ticket=<path>` and serves until it is killed, gets
//! SIGINT, or its standard input closes (so a test that dies does not
//! leave it behind). It is not the product's `cohesix up`: no workers, no
//! banner, nothing but what a test needs.

use anyhow::Context;
use cohesix_hive::HiveConfig;
use cohesix_manifest::Manifest;
use cohesix_ticket::{Claims, Role};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::PathBuf;
use tokio::io::AsyncReadExt;

fn arg_value(args: &[String], name: &str) -> Option<String> {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1).cloned())
}

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let data_dir = PathBuf::from(arg_value(&args, "--data-dir").context("--data-dir is required")?);
    let mut manifest = match arg_value(&args, "--manifest") {
        Some(path) => {
            let text = std::fs::read_to_string(&path).with_context(|| format!("read {path}"))?;
            Manifest::from_toml(&text).map_err(|e| anyhow::anyhow!("{path}: {e}"))?
        }
        None => Manifest::default(),
    };
    manifest.ninep.listen = "127.0.0.1:0".to_string();
    manifest.console.listen = String::new();

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        let config = HiveConfig {
            manifest,
            manifest_name: "hive-fixture".to_string(),
            data_dir: data_dir.clone(),
        };
        let hive = cohesix_hive::start(config).await?;
        let secret = hive
            .secrets
            .roles
            .get(Role::Queen.as_str())
            .context("no queen secret")?;
        let now = cohesix_hive::now_ms();
        let claims = Claims::new(Role::Queen, now, now + 24 * 3600 * 1000);
        let ticket =
            cohesix_ticket::mint(&claims, secret.as_bytes()).map_err(|e| anyhow::anyhow!("{e}"))?;
        let ticket_path = data_dir.join("queen.ticket");
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&ticket_path)?;
        f.write_all(ticket.as_bytes())?;
        println!(
            "ready ninep={} ticket={}",
            hive.ninep_addr,
            ticket_path.display()
        );
        std::io::stdout().flush()?;

        let mut stdin = tokio::io::stdin();
        let mut buf = [0u8; 64];
        loop {
            tokio::select! {
                r = stdin.read(&mut buf) => if matches!(r, Ok(0) | Err(_)) { break },
                _ = tokio::signal::ctrl_c() => break,
            }
        }
        hive.shutdown().await;
        Ok(())
    })
}
