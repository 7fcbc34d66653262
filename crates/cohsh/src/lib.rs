//! `cohsh`, the operator's shell for a Cohesix hive (SURFACES §10).
//!
//! The binary is thin: [`run`] picks the mode from the [`cli::Cli`]:
//! `--check` (validate a script offline), `--mint-ticket`, `--script`, a
//! script on a non-terminal standard input, or the interactive prompt
//! ([`repl`]). Commands are parsed by [`command`], executed by [`shell`]
//! over a [`transport`]: the TCP console ([`tcp`]), Secure9P ([`ninep`]) or
//! REST through `hive-gateway` ([`rest`]). `.coh` scripts are [`script`].
//!
//! Exit codes: [`exit::OK`] on success, [`exit::FAILED`] when a command or
//! script failed, [`exit::USAGE`] for a bad command line.

pub mod cli;
pub mod command;
pub mod mint;
pub mod ninep;
pub mod repl;
pub mod rest;
pub mod script;
pub mod shell;
pub mod tcp;
pub mod telemetry;
pub mod transport;

use cli::{Cli, TransportKind};
use command::ShellCommand;
use shell::{Outcome, Shell};
use std::io::{IsTerminal, Read};
use std::path::Path;
use transport::Transport;

/// Process exit codes.
pub mod exit {
    pub const OK: u8 = 0;
    /// A command, an `EXPECT` or the script's syntax failed.
    pub const FAILED: u8 = 1;
    /// The command line was wrong (clap exits with this code too).
    pub const USAGE: u8 = 2;
}

/// Runs cohsh; returns the exit code.
pub fn run(cli: Cli) -> u8 {
    if let Some(path) = &cli.check {
        return check(path);
    }
    if cli.mint_ticket {
        return mint(&cli);
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("Error: cannot start the runtime: {e}");
            return exit::FAILED;
        }
    };
    let mut shell = Shell::new(transport(&cli));
    if let Some(path) = &cli.script {
        let name = path.display().to_string();
        return match std::fs::read_to_string(path) {
            Ok(text) => runtime.block_on(run_script(&mut shell, &cli, &name, &text)),
            Err(e) => {
                eprintln!("Error: cannot read {name}: {e}");
                exit::FAILED
            }
        };
    }
    if !std::io::stdin().is_terminal() {
        let mut text = String::new();
        if let Err(e) = std::io::stdin().read_to_string(&mut text) {
            eprintln!("Error: cannot read standard input: {e}");
            return exit::FAILED;
        }
        return runtime.block_on(run_script(&mut shell, &cli, "<stdin>", &text));
    }
    // Interactive: a failed first attach is reported; `attach` can retry.
    runtime.block_on(attach(&mut shell, &cli));
    repl::run(&runtime, shell)
}

/// The transport the command line asks for; nothing is connected yet.
pub fn transport(cli: &Cli) -> Transport {
    match cli.transport {
        TransportKind::Tcp => {
            let token = cli
                .auth_token
                .clone()
                .or_else(|| mint::console_token(&cli.data_dir));
            let options = tcp::TcpOptions::new(cli.tcp_host.clone(), cli.tcp_port, token);
            Transport::Tcp(tcp::TcpConsole::new(options))
        }
        TransportKind::NineP => Transport::NineP(ninep::NinePConsole::new(cli.ninep_addr.clone())),
        TransportKind::Rest => Transport::Rest(rest::RestConsole::new(
            cli.rest_url.as_deref(),
            cli.rest_auth_token.clone(),
        )),
    }
}

/// Attaches with `--role` and `--ticket`; true when the hive said OK.
async fn attach(shell: &mut Shell, cli: &Cli) -> bool {
    let command = ShellCommand::Attach {
        role: cli.role.clone(),
        ticket: cli.ticket.clone(),
    };
    match shell.execute(&command).await {
        Ok(Outcome::Reply(r)) if r.is_ok() => true,
        Ok(Outcome::Reply(r)) if r.ack.contains("detail=rate-limited") => {
            shell.report(
                "Error: too many failed attaches from this address: the hive refuses \
                 every attach from it, valid ones too, until delay_ms has passed",
            );
            false
        }
        _ => false,
    }
}

async fn run_script(shell: &mut Shell, cli: &Cli, name: &str, text: &str) -> u8 {
    let script = match script::parse(text) {
        Ok(script) => script,
        Err(errors) => {
            for e in errors {
                eprintln!("Error: {name}:{}: {}: `{}`", e.line, e.message, e.text);
            }
            return exit::FAILED;
        }
    };
    if !attach(shell, cli).await {
        shell.report(&format!("Error: {name}: could not attach as {}", cli.role));
        return exit::FAILED;
    }
    match script::run(&script, shell).await {
        Ok(()) => exit::OK,
        Err(failure) => {
            script::report(shell, name, &failure);
            exit::FAILED
        }
    }
}

/// `--check`: parses a script without connecting.
fn check(path: &Path) -> u8 {
    let name = path.display().to_string();
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) => {
            eprintln!("Error: cannot read {name}: {e}");
            return exit::FAILED;
        }
    };
    match script::parse(&text) {
        Ok(script) => {
            println!(
                "{name}: ok ({} commands, {} steps)",
                script.commands(),
                script.steps.len()
            );
            exit::OK
        }
        Err(errors) => {
            for e in errors {
                eprintln!("Error: {name}:{}: {}: `{}`", e.line, e.message, e.text);
            }
            exit::FAILED
        }
    }
}

/// `--mint-ticket`: prints the ticket alone on standard output.
fn mint(cli: &Cli) -> u8 {
    let subject = cli.ticket_subject.as_deref();
    match mint::mint(&cli.data_dir, &cli.role, subject, cli.ticket_ttl_s) {
        Ok(ticket) => {
            println!("{ticket}");
            exit::OK
        }
        Err(e) => {
            eprintln!("Error: {e}");
            exit::FAILED
        }
    }
}
