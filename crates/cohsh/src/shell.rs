//! Runs shell commands against a transport and prints what came back:
//! acks as `[console] <ack>`, content lines raw, failures as `Error: <msg>`.
//!
//! `bind`, `mount` and `lifecycle` are appends to `/queen/ctl` and
//! `/queen/lifecycle/ctl`; `detach` is `QUIT`; `help` never leaves the
//! shell. The shell remembers the worker id of the last successful `spawn`
//! (scripts may write it as `$WORKER`) and the last lines it printed, for
//! failure reports.

use crate::command::{self, ShellCommand, COMMANDS};
use crate::transport::{Reply, Request, Transport, TransportError};
use cohesix_console::ctl;
use std::collections::VecDeque;
use std::io::Write;

/// Printed lines kept for failure reports.
const RECENT_LINES: usize = 8;

/// What a command led to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// The hive answered (`OK` or `ERR`).
    Reply(Reply),
    /// Handled inside the shell (`help`).
    Local,
    /// `quit`: leave the shell.
    Quit,
}

/// Why a command got no answer.
#[derive(Debug, thiserror::Error)]
pub enum ShellError {
    #[error(transparent)]
    Transport(#[from] TransportError),
}

/// The shell: a transport plus what it prints.
pub struct Shell {
    pub transport: Transport,
    out: Box<dyn Write + Send>,
    err: Box<dyn Write + Send>,
    last_worker: Option<String>,
    recent: VecDeque<String>,
}

impl Shell {
    pub fn new(transport: Transport) -> Shell {
        Shell::with_output(
            transport,
            Box::new(std::io::stdout()),
            Box::new(std::io::stderr()),
        )
    }

    pub fn with_output(
        transport: Transport,
        out: Box<dyn Write + Send>,
        err: Box<dyn Write + Send>,
    ) -> Shell {
        Shell {
            transport,
            out,
            err,
            last_worker: None,
            recent: VecDeque::new(),
        }
    }

    /// The worker id from the last successful `spawn`.
    pub fn last_worker(&self) -> Option<&str> {
        self.last_worker.as_deref()
    }

    /// The last lines printed, oldest first.
    pub fn recent(&self) -> impl Iterator<Item = &String> {
        self.recent.iter()
    }

    /// Runs one command and prints its answer or its error.
    pub async fn execute(&mut self, command: &ShellCommand) -> Result<Outcome, ShellError> {
        let result = self.execute_quietly(command).await;
        match &result {
            Ok(Outcome::Reply(reply)) => self.print_reply(reply),
            Ok(_) => {}
            Err(e) => self.print_error(&e.to_string()),
        }
        result
    }

    async fn execute_quietly(&mut self, command: &ShellCommand) -> Result<Outcome, ShellError> {
        if let Some(request) = request_for(command) {
            let reply = self.transport.request(&request).await?;
            if let (Request::Spawn { .. }, Some(id)) = (&request, reply.field("id")) {
                self.last_worker = Some(id.to_string());
            }
            return Ok(Outcome::Reply(reply));
        }
        match command {
            ShellCommand::Quit => {
                // Best effort: the hive ends the session either way.
                let _ = self.transport.request(&Request::Quit).await;
                Ok(Outcome::Quit)
            }
            ShellCommand::TelemetryPush {
                file,
                device,
                artifact,
            } => {
                let reply =
                    crate::telemetry::push(&mut self.transport, file, device, *artifact).await?;
                Ok(Outcome::Reply(reply))
            }
            ShellCommand::TelemetryPull { device, out } => {
                let reply = crate::telemetry::pull(&mut self.transport, device, out).await?;
                Ok(Outcome::Reply(reply))
            }
            ShellCommand::Help { topic } => {
                let text = help(topic.as_deref());
                for line in text.lines() {
                    self.print(line);
                }
                Ok(Outcome::Local)
            }
            _ => Ok(Outcome::Local),
        }
    }

    fn print_reply(&mut self, reply: &Reply) {
        self.print(&format!("[console] {}", reply.ack));
        for line in &reply.lines {
            self.print(line);
        }
    }

    /// Prints a line on standard output and remembers it.
    pub fn print(&mut self, line: &str) {
        let _ = writeln!(self.out, "{line}");
        let _ = self.out.flush();
        self.remember(line);
    }

    /// Prints `Error: <message>` on standard error and remembers it.
    pub fn print_error(&mut self, message: &str) {
        let line = format!("Error: {message}");
        let _ = writeln!(self.err, "{line}");
        let _ = self.err.flush();
        self.remember(&line);
    }

    /// Prints a line on standard error (reports), without remembering it.
    pub fn report(&mut self, line: &str) {
        let _ = writeln!(self.err, "{line}");
        let _ = self.err.flush();
    }

    fn remember(&mut self, line: &str) {
        if self.recent.len() == RECENT_LINES {
            self.recent.pop_front();
        }
        self.recent.push_back(line.to_string());
    }
}

/// The hive request a command becomes; `None` for what the shell handles
/// itself (`help`, `quit`, `telemetry push` and `pull`).
fn request_for(command: &ShellCommand) -> Option<Request> {
    let append = |path: &str, text: String| Request::Echo {
        path: path.to_string(),
        text,
    };
    let request = match command {
        ShellCommand::Attach { role, ticket } => Request::Attach {
            role: role.clone(),
            ticket: ticket.clone(),
        },
        ShellCommand::Detach => Request::Quit,
        ShellCommand::Ping => Request::Ping,
        ShellCommand::Ls { path } => Request::Ls(path.clone()),
        ShellCommand::Cat { path } => Request::Cat(path.clone()),
        ShellCommand::Tail { path } => Request::Tail(path.clone()),
        ShellCommand::Log => Request::Log,
        ShellCommand::Echo { text, path } => append(path, text.clone()),
        ShellCommand::Spawn { kind, args } => Request::Spawn {
            kind: kind.clone(),
            args: args.clone(),
        },
        ShellCommand::Kill { id } => Request::Kill(id.clone()),
        ShellCommand::Bind { from, to } => append("/queen/ctl", ctl::bind_json(from, to)),
        ShellCommand::Mount { service, at } => append("/queen/ctl", ctl::mount_json(service, at)),
        ShellCommand::Lifecycle { action } => append("/queen/lifecycle/ctl", action.to_string()),
        ShellCommand::Help { .. }
        | ShellCommand::Quit
        | ShellCommand::TelemetryPush { .. }
        | ShellCommand::TelemetryPull { .. } => return None,
    };
    Some(request)
}

/// The text of `help` or `help <command>`.
pub fn help(topic: Option<&str>) -> String {
    match topic {
        None => {
            let mut text = String::from("commands:\n");
            for spec in COMMANDS {
                text.push_str(&format!("  {:<10} {}\n", spec.name, spec.about));
            }
            text.push_str("help <command> shows its usage.");
            text
        }
        Some(name) => match command::find(name) {
            Some(spec) => format!("usage: {}\n{}", spec.usage, spec.about),
            None => format!("unknown command '{name}'"),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ctl_commands_become_appends() {
        let bind = ShellCommand::Bind {
            from: "/shard".into(),
            to: "/shadow".into(),
        };
        assert_eq!(
            request_for(&bind),
            Some(Request::Echo {
                path: "/queen/ctl".into(),
                text: r#"{"bind":{"from":"/shard","to":"/shadow"}}"#.into()
            })
        );
        assert_eq!(
            request_for(&ShellCommand::Lifecycle { action: "cordon" }).map(|r| r.console_line()),
            Some("ECHO /queen/lifecycle/ctl cordon".to_string())
        );
        assert_eq!(request_for(&ShellCommand::Detach), Some(Request::Quit));
        assert_eq!(request_for(&ShellCommand::Help { topic: None }), None);
    }

    #[test]
    fn help_lists_every_command_and_explains_one() {
        let all = help(None);
        for spec in COMMANDS {
            assert!(all.contains(spec.name));
        }
        assert!(help(Some("echo")).starts_with("usage: echo <text> > <path>"));
        assert!(help(Some("nope")).contains("unknown"));
    }
}
