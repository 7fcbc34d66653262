//! `cohesix`: the hive daemon and its operator subcommands.
//!
//! A thin binary: argument parsing, logging set-up and printing. The hive
//! lives in `cohesix-hive` (edge) and `cohesix-core` (state machine).

mod bench;
mod up;

use anyhow::{bail, Context};
use clap::{Args, Parser, Subcommand};
use cohesix_manifest::Manifest;
use cohesix_ticket::{Claims, Role, Scope, Verb};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

#[derive(Parser)]
#[command(
    name = "cohesix",
    version,
    about = "Cohesix for hosts: a queen orchestrating workers over Secure9P",
    long_about = "The Cohesix hive daemon. A hive serves one file-shaped namespace over \
                  Secure9P (9P2000.L on TCP) and a line console, binds every session to a \
                  role with a capability ticket, and keeps an append-only audit log.\n\n\
                  Start here: `cohesix up` runs a hive on embedded defaults."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Start a hive on embedded defaults (or a manifest), print its
    /// addresses and a queen ticket, spawn a few heartbeat workers.
    Up(up::UpArgs),
    /// Mint a capability ticket from the hive's role secrets.
    Ticket(TicketArgs),
    /// Inspect or check a manifest.
    #[command(subcommand)]
    Manifest(ManifestCommand),
    /// Benchmarks that leave dated evidence under bench/results/.
    #[command(subcommand)]
    Bench(bench::BenchCommand),
}

#[derive(Args)]
struct TicketArgs {
    /// Role the ticket binds to: queen, worker-heartbeat, worker-gpu, worker-bus, worker-lora.
    #[arg(long)]
    role: String,
    /// Subject (worker id such as worker-7); required for worker roles.
    #[arg(long)]
    subject: Option<String>,
    /// Lifetime of the ticket in seconds.
    #[arg(long, default_value_t = 3600)]
    ttl_s: u64,
    /// Limit the session to a subtree: PATH:VERB[:RATE_PER_S], VERB one of
    /// read, write, readwrite (repeat for up to 8 scopes; no scope = role policy only).
    #[arg(long = "scope", value_name = "PATH:VERB[:RATE]")]
    scopes: Vec<String>,
    /// Most operations the session may perform.
    #[arg(long)]
    ops: Option<u32>,
    /// Most bytes the session may read and write in total.
    #[arg(long)]
    bandwidth_bytes: Option<u32>,
    /// Most ring (telemetry, audit) opens.
    #[arg(long)]
    cursor_resumes: Option<u32>,
    /// Most ring reads.
    #[arg(long)]
    cursor_advances: Option<u32>,
    /// The hive's data directory (holds secrets.toml).
    #[arg(long, default_value = ".cohesix", env = "COHESIX_DATA_DIR")]
    data_dir: PathBuf,
}

#[derive(Subcommand)]
enum ManifestCommand {
    /// Print the embedded default manifest.
    Defaults,
    /// Validate a manifest file and print its fingerprint.
    Check {
        /// Path of the TOML manifest.
        file: PathBuf,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging();
    let result = match cli.command {
        Command::Up(args) => up::run(args),
        Command::Ticket(args) => mint(&args),
        Command::Manifest(cmd) => manifest(cmd),
        Command::Bench(cmd) => bench::run(cmd),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(1)
        }
    }
}

fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("COHESIX_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
}

/// Loads a manifest file, or the embedded defaults when `path` is None.
pub fn load_manifest(path: Option<&Path>) -> anyhow::Result<(Manifest, String)> {
    let Some(path) = path else {
        return Ok((Manifest::default(), "embedded-defaults".to_string()));
    };
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read manifest {}", path.display()))?;
    let manifest =
        Manifest::load(&text).with_context(|| format!("manifest {} refused", path.display()))?;
    Ok((manifest, path.display().to_string()))
}

fn mint(args: &TicketArgs) -> anyhow::Result<()> {
    let role: Role = args.role.parse().map_err(|e| anyhow::anyhow!("{e}"))?;
    if role.is_worker() && args.subject.is_none() {
        bail!("role {} needs --subject <worker-id>", role.as_str());
    }
    let secrets = cohesix_hive::secrets::load_or_create(&args.data_dir, true)
        .context("cannot read the hive's secrets")?;
    let mut claims = claims_for(role, args.subject.clone(), args.ttl_s)?;
    claims.scopes = args
        .scopes
        .iter()
        .map(|s| parse_scope(s))
        .collect::<anyhow::Result<_>>()?;
    claims.budget.ops = args.ops;
    claims.quotas.bandwidth_bytes = args.bandwidth_bytes;
    claims.quotas.cursor_resumes = args.cursor_resumes;
    claims.quotas.cursor_advances = args.cursor_advances;
    println!("{}", mint_claims(&secrets, &claims)?);
    Ok(())
}

/// Parses `PATH:VERB[:RATE]`.
fn parse_scope(text: &str) -> anyhow::Result<Scope> {
    let mut parts = text.splitn(3, ':');
    let (Some(path), Some(verb)) = (parts.next(), parts.next()) else {
        bail!("--scope {text}: expected PATH:VERB[:RATE_PER_S]");
    };
    if !path.starts_with('/') {
        bail!("--scope {text}: the path must be absolute");
    }
    let verb: Verb = verb
        .parse()
        .map_err(|e| anyhow::anyhow!("--scope {text}: {e}"))?;
    let rate_per_s = match parts.next() {
        Some(r) => r
            .parse()
            .with_context(|| format!("--scope {text}: bad rate"))?,
        None => 0,
    };
    Ok(Scope {
        path: path.to_string(),
        verb,
        rate_per_s,
    })
}

/// Mints a ticket valid from now for `ttl_s` seconds.
pub fn mint_ticket(
    secrets: &cohesix_hive::secrets::SecretsFile,
    role: Role,
    subject: Option<String>,
    ttl_s: u64,
) -> anyhow::Result<String> {
    mint_claims(secrets, &claims_for(role, subject, ttl_s)?)
}

/// Signs claims with the secret of their role.
fn mint_claims(
    secrets: &cohesix_hive::secrets::SecretsFile,
    claims: &Claims,
) -> anyhow::Result<String> {
    let role = claims.role;
    let secret = secrets
        .roles
        .get(role.as_str())
        .with_context(|| format!("no secret for role {}", role.as_str()))?;
    cohesix_ticket::mint(claims, secret.as_bytes()).map_err(|e| anyhow::anyhow!("{e}"))
}

/// Claims for `role`/`subject`, valid from now for `ttl_s` seconds.
fn claims_for(role: Role, subject: Option<String>, ttl_s: u64) -> anyhow::Result<Claims> {
    let now = cohesix_hive::now_ms();
    let expires = ttl_s
        .max(1)
        .checked_mul(1000)
        .and_then(|ms| now.checked_add(ms))
        .with_context(|| format!("--ttl-s {ttl_s} is too large"))?;
    let mut claims = Claims::new(role, now, expires);
    claims.subject = subject;
    Ok(claims)
}

fn manifest(cmd: ManifestCommand) -> anyhow::Result<()> {
    match cmd {
        ManifestCommand::Defaults => {
            print!("{}", cohesix_manifest::DEFAULT_TOML);
            Ok(())
        }
        ManifestCommand::Check { file } => {
            let (m, name) = load_manifest(Some(&file))?;
            let sha = m.fingerprint().map_err(|e| anyhow::anyhow!("{e}"))?;
            println!(
                "{name}: ok (schema {}, sha256 {sha})",
                cohesix_manifest::SCHEMA
            );
            Ok(())
        }
    }
}
