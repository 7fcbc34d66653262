//! `cohesix`: the hive daemon and its operator subcommands.
//!
//! A thin binary: argument parsing, logging set-up and printing. The hive
//! lives in `cohesix-hive` (edge) and `cohesix-core` (state machine).

mod bench;
mod up;

use anyhow::{bail, Context};
use clap::{Args, Parser, Subcommand};
use cohesix_manifest::Manifest;
use cohesix_ticket::{Claims, Role};
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
    let ticket = mint_ticket(&secrets, role, args.subject.clone(), args.ttl_s)?;
    println!("{ticket}");
    Ok(())
}

/// Mints a ticket valid from now for `ttl_s` seconds.
pub fn mint_ticket(
    secrets: &cohesix_hive::secrets::SecretsFile,
    role: Role,
    subject: Option<String>,
    ttl_s: u64,
) -> anyhow::Result<String> {
    let secret = secrets
        .roles
        .get(role.as_str())
        .with_context(|| format!("no secret for role {}", role.as_str()))?;
    let now = cohesix_hive::now_ms();
    let expires = ttl_s
        .max(1)
        .checked_mul(1000)
        .and_then(|ms| now.checked_add(ms))
        .with_context(|| format!("--ttl-s {ttl_s} is too large"))?;
    let mut claims = Claims::new(role, now, expires);
    claims.subject = subject;
    cohesix_ticket::mint(&claims, secret.as_bytes()).map_err(|e| anyhow::anyhow!("{e}"))
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
