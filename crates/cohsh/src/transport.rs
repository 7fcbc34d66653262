//! What the shell asks of a hive, whichever way it reaches it: a
//! [`Request`] in, a console-style [`Reply`] out (`OK ...`/`ERR ...` plus
//! content lines), so the shell prints the same thing over every transport.
//!
//! `tcp` is the line console ([`crate::tcp`]), `9p` goes through
//! `cohesix-client` ([`crate::ninep`]) and `rest` through `hive-gateway`
//! ([`crate::rest`]).

use crate::ninep::NinePConsole;
use crate::rest::RestConsole;
use crate::tcp::TcpConsole;
use std::time::Duration;

/// One operation on the hive, in console terms.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Request {
    Attach {
        role: String,
        ticket: Option<String>,
    },
    Ping,
    Ls(String),
    Cat(String),
    Tail(String),
    Log,
    Echo {
        path: String,
        text: String,
    },
    Spawn {
        kind: String,
        args: Vec<(String, String)>,
    },
    Kill(String),
    Quit,
}

/// How the hive follows an `OK` ack for a request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Shape {
    /// The ack alone.
    Ack,
    /// The ack, then `PONG`.
    Pong,
    /// The ack, content lines, then `END`.
    Stream,
}

impl Request {
    /// The console verb.
    pub fn verb(&self) -> &'static str {
        match self {
            Request::Attach { .. } => "ATTACH",
            Request::Ping => "PING",
            Request::Ls(_) => "LS",
            Request::Cat(_) => "CAT",
            Request::Tail(_) => "TAIL",
            Request::Log => "LOG",
            Request::Echo { .. } => "ECHO",
            Request::Spawn { .. } => "SPAWN",
            Request::Kill(_) => "KILL",
            Request::Quit => "QUIT",
        }
    }

    /// The console line, e.g. `ECHO /queen/ctl {...}`.
    pub fn console_line(&self) -> String {
        match self {
            Request::Attach { role, ticket } => match ticket {
                Some(t) => format!("ATTACH {role} {t}"),
                None => format!("ATTACH {role}"),
            },
            Request::Ls(p) => format!("LS {p}"),
            Request::Cat(p) => format!("CAT {p}"),
            Request::Tail(p) => format!("TAIL {p}"),
            Request::Echo { path, text } => format!("ECHO {path} {text}"),
            Request::Spawn { kind, args } => {
                let mut line = format!("SPAWN {kind}");
                for (k, v) in args {
                    line.push_str(&format!(" {k}={v}"));
                }
                line
            }
            Request::Kill(id) => format!("KILL {id}"),
            other => other.verb().to_string(),
        }
    }

    pub fn shape(&self) -> Shape {
        match self {
            Request::Ping => Shape::Pong,
            Request::Ls(_) | Request::Cat(_) | Request::Tail(_) | Request::Log => Shape::Stream,
            _ => Shape::Ack,
        }
    }

    /// Safe to send twice: reads only.
    pub fn is_read_only(&self) -> bool {
        matches!(
            self,
            Request::Ping | Request::Ls(_) | Request::Cat(_) | Request::Tail(_) | Request::Log
        )
    }
}

/// The hive's answer: the ack line and any content lines (without `END`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Reply {
    pub ack: String,
    pub lines: Vec<String>,
}

impl Reply {
    pub fn ack(ack: impl Into<String>) -> Reply {
        Reply {
            ack: ack.into(),
            lines: Vec::new(),
        }
    }

    pub fn is_ok(&self) -> bool {
        self.ack == "OK" || self.ack.starts_with("OK ")
    }

    /// The value of `key=` in the ack, e.g. `id` in `OK SPAWN id=worker-3`.
    pub fn field(&self, key: &str) -> Option<&str> {
        self.ack
            .split(' ')
            .find_map(|word| word.strip_prefix(key)?.strip_prefix('='))
    }
}

/// Why a request got no answer from the hive.
#[derive(Debug, thiserror::Error)]
pub enum TransportError {
    #[error("cannot connect to {addr}: {why}")]
    Connect { addr: String, why: String },
    #[error("connection to {addr} lost: {why}")]
    Lost { addr: String, why: String },
    #[error("no answer from {addr} within {after:?}")]
    Timeout { addr: String, after: Duration },
    #[error("the hive refused AUTH: {0}")]
    AuthRefused(String),
    #[error("re-attach after reconnecting was refused: {0}")]
    ReattachRefused(String),
    #[error("connection lost during {verb}; reconnected, not retried (it may have taken effect)")]
    NotRetried { verb: &'static str },
    #[error("the hive broke the console protocol: {0}")]
    Protocol(String),
    #[error("no auth token: pass --auth-token, set COHSH_AUTH_TOKEN or use --data-dir")]
    NoToken,
    #[error("transport 9p needs a ticket: pass --ticket (the queen's is in <data-dir>/queen.ticket) or `attach <role> <ticket>`")]
    NeedTicket,
    #[error("9p: {0}")]
    Client(#[from] cohesix_client::Error),
}

/// The connection to a hive.
pub enum Transport {
    Tcp(TcpConsole),
    NineP(NinePConsole),
    Rest(RestConsole),
}

impl Transport {
    pub async fn request(&mut self, request: &Request) -> Result<Reply, TransportError> {
        match self {
            Transport::Tcp(t) => t.request(request).await,
            Transport::NineP(t) => t.request(request).await,
            Transport::Rest(t) => t.request(request).await,
        }
    }

    /// Pings when nothing was sent for `idle`, so the connection stays up
    /// (and a dead one is noticed and reopened) while the operator thinks.
    pub async fn keep_alive(&mut self, idle: Duration) {
        if let Transport::Tcp(t) = self {
            t.keep_alive(idle).await;
        }
    }

    /// Names in a directory, for completion; empty on any failure.
    pub async fn names(&mut self, dir: &str) -> Vec<String> {
        match self.request(&Request::Ls(dir.to_string())).await {
            Ok(reply) if reply.is_ok() => reply.lines,
            _ => Vec::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn console_lines() {
        let spawn = Request::Spawn {
            kind: "heartbeat".into(),
            args: vec![("ticks".into(), "3".into())],
        };
        assert_eq!(spawn.console_line(), "SPAWN heartbeat ticks=3");
        assert_eq!(Request::Ping.console_line(), "PING");
        assert_eq!(Request::Log.shape(), Shape::Stream);
        assert_eq!(
            Request::Attach {
                role: "queen".into(),
                ticket: None
            }
            .console_line(),
            "ATTACH queen"
        );
    }

    #[test]
    fn ack_fields() {
        let r = Reply::ack("OK SPAWN id=worker-3");
        assert_eq!(r.field("id"), Some("worker-3"));
        assert_eq!(r.field("i"), None);
        assert!(r.is_ok());
        assert!(!Reply::ack("ERR X reason=policy").is_ok());
    }
}
