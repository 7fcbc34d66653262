//! The command line (SURFACES §10), parsed by clap. Usage errors exit 2.

use clap::{Parser, ValueEnum};
use std::path::PathBuf;

/// How cohsh reaches the hive.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum TransportKind {
    /// The TCP line console (default port 31337).
    Tcp,
    /// Secure9P through cohesix-client (default port 5640).
    #[value(name = "9p")]
    NineP,
    /// The REST gateway, hive-gateway (--rest-url, --rest-auth-token).
    Rest,
}

/// The Cohesix shell: drive a hive interactively, from a .coh script, or
/// mint a ticket.
#[derive(Debug, Parser)]
#[command(name = "cohsh", version)]
pub struct Cli {
    /// How to reach the hive.
    #[arg(long, value_enum, default_value_t = TransportKind::Tcp)]
    pub transport: TransportKind,

    /// Console host (transport tcp).
    #[arg(long, default_value = "127.0.0.1")]
    pub tcp_host: String,

    /// Console port (transport tcp).
    #[arg(long, default_value_t = cohesix_console::DEFAULT_PORT)]
    pub tcp_port: u16,

    /// Console token sent with AUTH; when absent, read from
    /// <data-dir>/secrets.toml if that file is readable.
    #[arg(long, env = "COHSH_AUTH_TOKEN", hide_env_values = true)]
    pub auth_token: Option<String>,

    /// Role to attach as at start, and the role --mint-ticket signs for.
    #[arg(long, default_value = "queen")]
    pub role: String,

    /// Ticket to attach with (worker roles; every role over 9p).
    #[arg(long, env = "COHSH_TICKET", hide_env_values = true)]
    pub ticket: Option<String>,

    /// Run a .coh script and exit: 0 when every command and EXPECT held, 1 otherwise.
    #[arg(long, value_name = "FILE", conflicts_with_all = ["check", "mint_ticket"])]
    pub script: Option<PathBuf>,

    /// Check a .coh script's syntax without connecting: 0 when valid, 1 otherwise.
    #[arg(long, value_name = "FILE", conflicts_with = "mint_ticket")]
    pub check: Option<PathBuf>,

    /// Print a ticket for --role (and --ticket-subject), signed with the
    /// role secret in <data-dir>/secrets.toml.
    #[arg(long)]
    pub mint_ticket: bool,

    /// The worker id a minted worker ticket is bound to.
    #[arg(long, value_name = "ID", requires = "mint_ticket")]
    pub ticket_subject: Option<String>,

    /// Lifetime of a minted ticket, in seconds.
    #[arg(long, value_name = "S", default_value_t = 86_400)]
    pub ticket_ttl_s: u64,

    /// The hive's data directory (holds secrets.toml).
    #[arg(long, default_value = ".cohesix")]
    pub data_dir: PathBuf,

    /// REST gateway URL (transport rest).
    #[arg(long)]
    pub rest_url: Option<String>,

    /// REST gateway token (transport rest).
    #[arg(long, env = "COHSH_REST_AUTH_TOKEN", hide_env_values = true)]
    pub rest_auth_token: Option<String>,

    /// Secure9P address (transport 9p).
    #[arg(
        long = "9p-addr",
        value_name = "HOST:PORT",
        default_value = "127.0.0.1:5640"
    )]
    pub ninep_addr: String,
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn the_command_line_is_well_formed() {
        Cli::command().debug_assert();
    }

    #[test]
    fn defaults_match_the_surface() {
        let cli = Cli::try_parse_from(["cohsh"]).unwrap();
        assert_eq!(cli.transport, TransportKind::Tcp);
        assert_eq!(cli.tcp_host, "127.0.0.1");
        assert_eq!(cli.tcp_port, 31337);
        assert_eq!(cli.role, "queen");
        assert_eq!(cli.ninep_addr, "127.0.0.1:5640");
        assert_eq!(cli.data_dir, PathBuf::from(".cohesix"));
    }

    #[test]
    fn transports_and_conflicts() {
        let cli = Cli::try_parse_from(["cohsh", "--transport", "9p"]).unwrap();
        assert_eq!(cli.transport, TransportKind::NineP);
        assert!(Cli::try_parse_from(["cohsh", "--transport", "udp"]).is_err());
        assert!(Cli::try_parse_from(["cohsh", "--script", "a", "--check", "b"]).is_err());
        assert!(Cli::try_parse_from(["cohsh", "--ticket-subject", "w"]).is_err());
    }
}
