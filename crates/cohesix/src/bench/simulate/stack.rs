//! The system under load: a hive and a gateway, started here or found
//! running.
//!
//! By default a run starts both as children on free loopback ports: the
//! hive is this binary (`cohesix up`, same build) with a manifest sized for
//! the run and a throw-away data directory; the gateway is the
//! `hive-gateway` binary next to this one, attached with the hive's queen
//! ticket and a fresh random request token. A run can instead start only
//! the gateway against a running hive (`--hive`), or use a running gateway
//! (`--gateway-url`). Children are stopped when the [`Stack`] is dropped
//! and killed by the kernel if this process dies. Everything binds
//! 127.0.0.1.

use super::rest::Rest;
use crate::bench::child::{self, start_hive, ChildGuard, HiveChild};
use anyhow::{bail, Context};
use rand::Rng;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// How long the gateway has to answer `/v1/meta/status`.
const GATEWAY_START: Duration = Duration::from_secs(30);
const POLL: Duration = Duration::from_millis(100);

/// Where the load goes.
pub enum Target {
    /// Start a hive with this manifest, and a gateway in front of it.
    Spawn { manifest: String },
    /// Start a gateway in front of a running hive.
    Hive { addr: SocketAddr, ticket: String },
    /// Use a running gateway; `hive` only for real-bytes mode.
    Gateway {
        url: String,
        token: String,
        hive: Option<(SocketAddr, String)>,
    },
}

/// Knobs of a gateway this run starts.
#[derive(Clone, Debug)]
pub struct GatewayOptions {
    pub binary: Option<PathBuf>,
    pub connections: u32,
    pub request_timeout_ms: u64,
}

/// A running hive-and-gateway pair.
pub struct Stack {
    pub gateway_url: String,
    pub token: String,
    /// Secure9P address and queen ticket, when known.
    pub hive: Option<(SocketAddr, String)>,
    /// In words, for the summary.
    pub description: String,
    // Field order: the gateway stops before the hive.
    gateway: Option<GatewayChild>,
    hive_child: Option<HiveChild>,
}

struct GatewayChild {
    guard: ChildGuard,
    log: PathBuf,
    _dir: tempfile::TempDir,
}

impl Stack {
    pub async fn start(target: Target, opts: &GatewayOptions) -> anyhow::Result<Stack> {
        match target {
            Target::Gateway { url, token, hive } => Ok(Stack {
                description: format!("running gateway {url}"),
                gateway_url: url,
                token,
                hive,
                gateway: None,
                hive_child: None,
            }),
            Target::Hive { addr, ticket } => {
                let (gateway, url, token) = start_gateway(addr, &ticket, opts).await?;
                Ok(Stack {
                    description: format!("running hive {addr}, gateway started at {url}"),
                    gateway_url: url,
                    token,
                    hive: Some((addr, ticket)),
                    gateway: Some(gateway),
                    hive_child: None,
                })
            }
            Target::Spawn { manifest } => {
                let hive = start_hive(&manifest)?;
                let (addr, ticket) = (hive.addr, hive.ticket.clone());
                let (gateway, url, token) = start_gateway(addr, &ticket, opts).await?;
                Ok(Stack {
                    description: format!("hive started at {addr}, gateway started at {url}"),
                    gateway_url: url,
                    token,
                    hive: Some((addr, ticket)),
                    gateway: Some(gateway),
                    hive_child: Some(hive),
                })
            }
        }
    }

    pub fn hive_pid(&self) -> Option<u32> {
        self.hive_child.as_ref().map(|h| h.guard.pid())
    }

    pub fn gateway_pid(&self) -> Option<u32> {
        self.gateway.as_ref().map(|g| g.guard.pid())
    }

    /// Fails if a child this run started has died.
    pub fn check_alive(&mut self) -> anyhow::Result<()> {
        if let Some(g) = &mut self.gateway {
            g.guard.check_alive()?;
        }
        if let Some(h) = &mut self.hive_child {
            h.guard.check_alive()?;
        }
        Ok(())
    }

    /// Stops the children (gateway first) and returns their log tails.
    pub fn stop(&mut self) -> Vec<(&'static str, String, String)> {
        let mut out = Vec::new();
        if let Some(g) = &mut self.gateway {
            let how = g.guard.stop();
            out.push(("hive-gateway", how, child::log_tail(&g.log)));
        }
        if let Some(h) = &mut self.hive_child {
            let how = h.guard.stop();
            out.push(("hive", how, h.log_tail()));
        }
        out
    }
}

/// The manifest a started hive runs with: room for the run's workers and
/// devices, and 1 MiB frames for artifact streaming.
pub fn manifest_for(max_workers: u32) -> String {
    let workers = (u64::from(max_workers) * 2).clamp(200_000, 2_000_000);
    format!(
        "# Written by `cohesix bench simulate` for one run.\n\
         [hive]\nname = \"bench-simulate\"\n\n\
         [ninep]\nmsize = 1048576\nmax_sessions = 4096\n\n\
         [workers]\nmax_workers = {workers}\n\n\
         [telemetry]\nmax_devices = 65536\n"
    )
}

/// The `hive-gateway` binary: `--gateway-bin`, else next to this one.
pub fn gateway_binary(explicit: Option<&Path>) -> anyhow::Result<PathBuf> {
    if let Some(p) = explicit {
        return Ok(p.to_path_buf());
    }
    let exe = std::env::current_exe().context("cannot find this executable")?;
    let dir = exe.parent().context("this executable has no folder")?;
    // Test binaries live one folder deeper (target/<profile>/deps).
    for candidate in [dir.join("hive-gateway"), dir.join("../hive-gateway")] {
        if candidate.is_file() {
            return Ok(candidate);
        }
    }
    bail!(
        "no hive-gateway next to {} (build it: cargo build --release -p hive-gateway, \
         or pass --gateway-bin)",
        exe.display()
    )
}

async fn start_gateway(
    hive: SocketAddr,
    ticket: &str,
    opts: &GatewayOptions,
) -> anyhow::Result<(GatewayChild, String, String)> {
    let binary = gateway_binary(opts.binary.as_deref())?;
    let dir = tempfile::Builder::new()
        .prefix("cohesix-bench-gateway-")
        .tempdir()
        .context("cannot create a temporary directory")?;
    let log = dir.path().join("gateway.log");
    let log_file = std::fs::File::create(&log).context("cannot create the gateway log")?;
    let addr = child::free_loopback_port()?;
    let token = random_token();

    let mut cmd = Command::new(&binary);
    cmd.arg("--bind")
        .arg(addr.to_string())
        .arg("--connections")
        .arg(opts.connections.to_string())
        .arg("--request-timeout-ms")
        .arg(opts.request_timeout_ms.to_string())
        .env("HIVE_GATEWAY_REQUEST_AUTH_TOKEN", &token)
        .env("COH_TCP_HOST", hive.ip().to_string())
        .env("COH_TCP_PORT", hive.port().to_string())
        .env("COH_TICKET", ticket)
        .env("HIVE_GATEWAY_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log_file);
    let mut guard = child::spawn_guarded("hive-gateway", cmd)?;

    let url = format!("http://{addr}");
    let rest = Rest::new(&url, &token, POLL * 10).map_err(|e| anyhow::anyhow!(e.detail))?;
    let deadline = Instant::now() + GATEWAY_START;
    loop {
        guard
            .check_alive()
            .with_context(|| format!("the gateway's log says:\n{}", child::log_tail(&log)))?;
        if rest.get_json("/v1/meta/bounds").await.is_ok() {
            break;
        }
        if Instant::now() >= deadline {
            bail!(
                "hive-gateway did not answer on {url} within {GATEWAY_START:?}; its log:\n{}",
                child::log_tail(&log)
            );
        }
        tokio::time::sleep(POLL).await;
    }
    let gateway = GatewayChild {
        guard,
        log,
        _dir: dir,
    };
    Ok((gateway, url, token))
}

/// 32 hex digits from the thread RNG: the request token of a gateway this
/// run starts (never printed).
fn random_token() -> String {
    let bytes: [u8; 16] = rand::thread_rng().gen();
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_run_manifest_is_valid_and_sized_for_the_run() {
        for workers in [8, 100_000, 1_500_000] {
            let text = manifest_for(workers);
            let m = cohesix_manifest::Manifest::load(&text).expect("manifest accepted");
            assert!(u64::from(m.workers.max_workers) >= u64::from(workers));
            assert_eq!(m.telemetry.max_devices, 65536);
        }
    }

    #[test]
    fn tokens_are_long_and_fresh() {
        let (a, b) = (random_token(), random_token());
        assert_eq!(a.len(), 32);
        assert_ne!(a, b);
    }
}
