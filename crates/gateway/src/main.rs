//! `hive-gateway`: flags, environment, logging, and signals around
//! [`hive_gateway::Gateway`]. Exit codes: 0 after a clean stop, 1 when the
//! settings are refused or the bind fails, 2 for bad flags (clap).

use anyhow::{bail, Context};
use clap::Parser;
use hive_gateway::config::{resolve_bind, GatewayConfig};
use hive_gateway::Gateway;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

#[derive(Parser)]
#[command(
    name = "hive-gateway",
    version,
    about = "REST gateway of a Cohesix hive, over pooled Secure9P sessions",
    long_about = "REST gateway of a Cohesix hive (routes /v1/fs/{ls,cat,tail,echo}, \
                  /v1/meta/{bounds,status}, /metrics, /v1/openapi.yaml, /docs).\n\n\
                  It attaches to the hive's Secure9P port as queen with a ticket (mint one \
                  with `cohesix ticket --role queen`) and keeps a pool of pipelined \
                  sessions. HTTP clients authenticate with `Authorization: Bearer <token>` \
                  or `x-cohesix-auth: <token>`.\n\n\
                  Upstream's gateway spoke to the hive's TCP console, so its COH_TCP_HOST \
                  and COH_TCP_PORT named the console (port 31337). Here they name the \
                  Secure9P listener (default port 5640)."
)]
struct Args {
    /// Address to serve HTTP on. Must be loopback unless --allow-non-loopback.
    #[arg(long, env = "HIVE_GATEWAY_BIND", default_value = "127.0.0.1:8080")]
    bind: String,

    /// Token HTTP clients must present. Required; empty and `changeme` are refused.
    #[arg(long, env = "HIVE_GATEWAY_REQUEST_AUTH_TOKEN", hide_env_values = true)]
    request_auth_token: Option<String>,

    /// Serve on a non-loopback address (put TLS and a firewall in front).
    #[arg(long)]
    allow_non_loopback: bool,

    /// Host of the hive's Secure9P listener (upstream: the console's host).
    #[arg(long, env = "COH_TCP_HOST", default_value = "127.0.0.1")]
    tcp_host: String,

    /// Port of the hive's Secure9P listener (upstream pointed this at the
    /// console, 31337; here it is the 9P port).
    #[arg(long, env = "COH_TCP_PORT", default_value_t = 5640)]
    tcp_port: u16,

    /// Accepted for compatibility and unused: upstream sent it to the console
    /// with AUTH; a Secure9P attach authenticates with the queen ticket.
    #[arg(long, env = "COH_AUTH_TOKEN", hide_env_values = true)]
    auth_token: Option<String>,

    /// Attach role; must be `queen`.
    #[arg(long, env = "COH_ROLE", default_value = "queen")]
    role: String,

    /// The queen ticket. Prefer the environment or --ticket-file over the
    /// command line, where other local users can read it.
    #[arg(long, env = "COH_TICKET", hide_env_values = true)]
    ticket: Option<String>,

    /// File holding the queen ticket (first line); instead of COH_TICKET.
    #[arg(long, env = "HIVE_GATEWAY_TICKET_FILE")]
    ticket_file: Option<PathBuf>,

    /// Secure9P sessions kept to the hive.
    #[arg(long, env = "HIVE_GATEWAY_CONNECTIONS", default_value_t = 4)]
    connections: usize,

    /// Requests pipelined per session; lowered to the hive's tags_in_flight.
    #[arg(long, default_value_t = 16)]
    tags_per_connection: u16,

    /// Requests that may wait for a session slot; more get 429 reason=busy.
    #[arg(long, default_value_t = 1024)]
    queue_depth: usize,

    /// Deadline of one HTTP request (queue wait plus 9P round trips), in ms.
    #[arg(long, default_value_t = 5000)]
    request_timeout_ms: u64,

    /// Largest `max_bytes` honoured by cat and tail; larger values are clamped.
    #[arg(long, default_value_t = 1 << 20)]
    max_read_bytes: usize,

    /// Largest request body, in bytes; larger bodies get 413 before they are read.
    #[arg(long, default_value_t = 64 << 10)]
    max_body_bytes: usize,

    /// Time a client has to send request headers (also the keep-alive idle
    /// timeout) and, separately, a request body, in ms.
    #[arg(long, default_value_t = 10_000)]
    client_timeout_ms: u64,

    /// Concurrent HTTP connections; past it new connections are closed at once.
    #[arg(long, default_value_t = 16_384)]
    max_connections: usize,

    /// Artifact streams (telemetry uploads and read-backs) at once; more get 429.
    #[arg(long, default_value_t = 4)]
    artifact_streams: usize,

    /// msize asked for on each artifact stream's own 9P session.
    #[arg(long, default_value_t = 1 << 20)]
    artifact_msize: u32,

    /// Longest pause between reconnect attempts, in ms (back-off starts at 100).
    #[arg(long, default_value_t = 5000)]
    reconnect_max_ms: u64,

    /// Log format: `text` or `json`. Filter with HIVE_GATEWAY_LOG (default info).
    #[arg(long, env = "HIVE_GATEWAY_LOG_FORMAT", default_value = "text")]
    log_format: String,
}

fn main() -> ExitCode {
    let args = Args::parse();
    init_logging(&args.log_format);
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            return ExitCode::from(1);
        }
    };
    match runtime.block_on(run(args)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(1)
        }
    }
}

fn init_logging(format: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("HIVE_GATEWAY_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    if format == "json" {
        builder.json().init();
    } else {
        builder.init();
    }
}

async fn run(args: Args) -> anyhow::Result<()> {
    let cfg = config(&args)?;
    cfg.check()?;
    let addr = resolve_bind(&args.bind, args.allow_non_loopback)?;
    if args.auth_token.is_some() {
        tracing::info!("COH_AUTH_TOKEN is accepted for compatibility and not used");
    }
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("cannot listen on {addr}"))?;
    let gateway = Gateway::start(cfg, listener).await?;
    stop_signal().await;
    tracing::info!("stopping");
    gateway.shutdown().await;
    Ok(())
}

fn config(args: &Args) -> anyhow::Result<GatewayConfig> {
    let ticket = match (&args.ticket, &args.ticket_file) {
        (Some(_), Some(_)) => bail!("give the ticket once: COH_TICKET/--ticket or --ticket-file"),
        (Some(t), None) => t.trim().to_string(),
        (None, Some(path)) => read_ticket(path)?,
        (None, None) => String::new(),
    };
    let hive = format!("{}:{}", args.tcp_host, args.tcp_port);
    let token = args.request_auth_token.clone().unwrap_or_default();
    let mut cfg = GatewayConfig::new(hive, ticket, token);
    let timeout = Duration::from_millis(args.request_timeout_ms.max(1));
    cfg.pool.role = args.role.clone();
    cfg.pool.connections = args.connections;
    cfg.pool.tags_per_connection = args.tags_per_connection;
    cfg.pool.queue_depth = args.queue_depth;
    cfg.pool.request_timeout = timeout;
    cfg.pool.reconnect_max = Duration::from_millis(args.reconnect_max_ms.max(100));
    cfg.http.request_timeout = timeout;
    cfg.http.max_read_bytes = args.max_read_bytes;
    cfg.http.max_body_bytes = args.max_body_bytes;
    cfg.http.header_timeout = Duration::from_millis(args.client_timeout_ms.max(1));
    cfg.http.body_timeout = cfg.http.header_timeout;
    cfg.http.max_connections = args.max_connections;
    cfg.http.artifact_streams = args.artifact_streams;
    cfg.http.artifact_msize = args.artifact_msize;
    Ok(cfg)
}

fn read_ticket(path: &PathBuf) -> anyhow::Result<String> {
    use std::os::unix::fs::PermissionsExt;
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read ticket file {}", path.display()))?;
    let mode = std::fs::metadata(path).map_or(0, |m| m.permissions().mode());
    if mode & 0o077 != 0 {
        tracing::warn!(path = %path.display(), "ticket file is readable by others; chmod 600 it");
    }
    Ok(text.lines().next().unwrap_or_default().trim().to_string())
}

async fn stop_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = ctrl_c => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = ctrl_c.await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = ctrl_c.await;
    }
}
