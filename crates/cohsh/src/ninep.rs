//! The `9p` transport: the shell's requests as Secure9P operations through
//! `cohesix-client`, answered with the same console-style acks as `tcp`.
//!
//! `ATTACH` connects and attaches with the role and ticket (9P has no
//! operator token, so even the queen needs a ticket). `LS`/`CAT`/`TAIL` are
//! walk+readdir and walk+open+read; `ECHO` is one append; `SPAWN` and
//! telemetry `ctl` writes open the file read-write so the hive's reply (the
//! worker or segment id) can be read back; `PING` is a `getattr` of `/`.
//!
//! # Limitations
//!
//! 9P carries an errno, not the hive's detail tag, so refusals are mapped
//! back by class: `Permission` and `NotFound` become `detail=invalid-path`
//! (`unknown-worker` for `KILL`), `Invalid` becomes `invalid-payload` for
//! writes and `invalid-path` for reads, any other class its own name
//! (`busy`, `quota`, `closed`, ...).
//! `TAIL` and `LOG` read the ring from its oldest record and keep the newest
//! [`TAIL_MAX_BYTES`]. A dropped connection is reopened on the next request;
//! nothing is retried.

use crate::transport::{Reply, Request, TransportError};
use cohesix_client::{Client, ClientConfig, ErrorClass, OpenMode};
use cohesix_console::{ack, ctl, Reason};

/// Most bytes `CAT` reads.
pub const CAT_MAX_BYTES: usize = 64 * 1024;
/// Most bytes `TAIL` and `LOG` show (the newest).
pub const TAIL_MAX_BYTES: usize = 64 * 1024;
/// Most bytes read from a ring before keeping its tail.
const RING_READ_MAX: usize = 1 << 20;
const QUEEN_LOG: &str = "/log/queen.log";
const QUEEN_CTL: &str = "/queen/ctl";

/// A 9P session on a hive.
pub struct NinePConsole {
    addr: String,
    role: String,
    ticket: Option<String>,
    client: Option<Client>,
}

impl NinePConsole {
    pub fn new(addr: impl Into<String>) -> NinePConsole {
        NinePConsole {
            addr: addr.into(),
            role: String::new(),
            ticket: None,
            client: None,
        }
    }

    pub async fn request(&mut self, request: &Request) -> Result<Reply, TransportError> {
        match request {
            Request::Attach { role, ticket } => self.attach(role, ticket.as_deref()).await,
            Request::Quit => {
                if let Some(client) = self.client.take() {
                    client.close();
                }
                Ok(Reply::ack(ack::ok("QUIT", None)))
            }
            other => {
                let client = self.client().await?;
                run(&client, other).await
            }
        }
    }

    async fn attach(&mut self, role: &str, ticket: Option<&str>) -> Result<Reply, TransportError> {
        if let Some(old) = self.client.take() {
            old.close();
        }
        self.role = role.to_string();
        self.ticket = ticket.map(str::to_string);
        match self.connect().await {
            Ok(client) => {
                self.client = Some(client);
                Ok(Reply::ack(ack::ok("ATTACH", Some(&format!("role={role}")))))
            }
            Err(TransportError::Client(e)) => refusal("ATTACH", e, None, Op::Read),
            Err(e) => Err(e),
        }
    }

    /// The live client, reconnecting once if the connection died.
    pub(crate) async fn client(&mut self) -> Result<Client, TransportError> {
        if let Some(c) = self.client.as_ref().filter(|c| c.is_connected()) {
            return Ok(c.clone());
        }
        if self.role.is_empty() {
            return Err(TransportError::NeedTicket);
        }
        let client = self.connect().await?;
        self.client = Some(client.clone());
        Ok(client)
    }

    /// A session of its own with the same role and ticket, for an artifact
    /// stream: asks for `msize` (the hive grants at most its own).
    pub(crate) async fn dedicated(
        &self,
        msize: u32,
        timeout: std::time::Duration,
    ) -> Result<Client, TransportError> {
        if self.role.is_empty() {
            return Err(TransportError::NeedTicket);
        }
        let ticket = self.ticket.clone().ok_or(TransportError::NeedTicket)?;
        let mut config = ClientConfig::new(self.role.clone(), ticket);
        config.msize = msize;
        config.timeout = timeout;
        config.max_in_flight = 4;
        config.max_fids = 4;
        Ok(Client::connect(self.addr.as_str(), config).await?)
    }

    async fn connect(&self) -> Result<Client, TransportError> {
        let ticket = self.ticket.clone().ok_or(TransportError::NeedTicket)?;
        let config = ClientConfig::new(self.role.clone(), ticket);
        Ok(Client::connect(self.addr.as_str(), config).await?)
    }
}

async fn run(client: &Client, request: &Request) -> Result<Reply, TransportError> {
    let verb = request.verb();
    match request {
        Request::Ping => match client.stat("/").await {
            Ok(_) => Ok(Reply::ack(ack::ok("PING", Some("reply=pong")))),
            Err(e) => refusal(verb, e, None, Op::Read),
        },
        Request::Ls(path) => match client.ls(path).await {
            Ok(names) => Ok(Reply {
                ack: ack::ok("LS", Some(&format!("path={path} entries={}", names.len()))),
                lines: names,
            }),
            Err(e) => refusal(verb, e, Some(path), Op::Read),
        },
        Request::Cat(path) => match client.read_all(path, CAT_MAX_BYTES).await {
            Ok(bytes) => {
                let text = String::from_utf8_lossy(&bytes);
                Ok(Reply {
                    ack: ack::cat_ok(path, &text),
                    lines: text.lines().map(str::to_string).collect(),
                })
            }
            Err(e) => refusal(verb, e, Some(path), Op::Read),
        },
        Request::Tail(path) => tail(client, verb, path).await,
        Request::Log => tail(client, verb, QUEEN_LOG).await,
        Request::Echo { path, text } => echo(client, path, text).await,
        Request::Spawn { kind, args } => {
            let json = match ctl::spawn_json(kind, args) {
                Ok(json) => json,
                Err(why) => {
                    let line =
                        ack::err(verb, Reason::Policy, Some("invalid-args"), None, Some(why));
                    return Ok(Reply::ack(line));
                }
            };
            match write_and_read_reply(client, QUEEN_CTL, &json).await {
                Ok((_, id)) => {
                    let id = id.map(|id| format!("id={id}"));
                    Ok(Reply::ack(ack::ok("SPAWN", id.as_deref())))
                }
                Err(e) => refusal(verb, e, None, Op::Write),
            }
        }
        Request::Kill(id) => match client
            .append(QUEEN_CTL, ctl::kill_json(id).as_bytes())
            .await
        {
            Ok(_) => Ok(Reply::ack(ack::ok("KILL", Some(&format!("id={id}"))))),
            Err(e) => refusal(verb, e, None, Op::Kill),
        },
        Request::Attach { .. } | Request::Quit => Ok(Reply::ack(ack::ok(verb, None))),
    }
}

async fn tail(client: &Client, verb: &str, path: &str) -> Result<Reply, TransportError> {
    match client.read_all(path, RING_READ_MAX).await {
        Ok(bytes) => {
            let text = String::from_utf8_lossy(&bytes);
            let mut lines: Vec<String> = Vec::new();
            let mut kept = 0;
            for line in text.lines().rev() {
                kept += line.len() + 1;
                if kept > TAIL_MAX_BYTES {
                    break;
                }
                lines.push(line.to_string());
            }
            lines.reverse();
            Ok(Reply {
                ack: ack::ok(verb, Some(&format!("path={path}"))),
                lines,
            })
        }
        Err(e) => refusal(verb, e, Some(path), Op::Read),
    }
}

async fn echo(client: &Client, path: &str, text: &str) -> Result<Reply, TransportError> {
    let telemetry_ctl = path.starts_with("/queen/telemetry/") && path.ends_with("/ctl");
    let written = if telemetry_ctl {
        write_and_read_reply(client, path, text).await
    } else {
        client
            .append(path, text.as_bytes())
            .await
            .map(|n| (n, None))
    };
    match written {
        Ok((bytes, seg)) => {
            let mut detail = format!("path={path} bytes={bytes}");
            if let Some(seg) = seg {
                detail.push_str(&format!(" seg_id={seg}"));
            }
            Ok(Reply::ack(ack::ok("ECHO", Some(&detail))))
        }
        Err(e) => refusal("ECHO", e, Some(path), Op::Write),
    }
}

/// Writes a control line and reads the hive's reply to it from the same fid.
async fn write_and_read_reply(
    client: &Client,
    path: &str,
    text: &str,
) -> Result<(u32, Option<String>), cohesix_client::Error> {
    let file = client.open(path, OpenMode::ReadWrite).await?;
    let exchanged = async {
        let bytes = file.write_at(0, text.as_bytes()).await?;
        let reply = file.read_at(0, 256).await?;
        Ok::<_, cohesix_client::Error>((bytes, reply))
    }
    .await;
    let _ = file.close().await;
    let (bytes, reply) = exchanged?;
    let reply = String::from_utf8_lossy(&reply).trim().to_string();
    Ok((bytes, (!reply.is_empty()).then_some(reply)))
}

/// What a refused operation was, to choose the detail tag.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Op {
    Read,
    Write,
    Kill,
}

/// A server refusal as a console `ERR` ack; other failures stay errors.
fn refusal(
    verb: &str,
    error: cohesix_client::Error,
    path: Option<&str>,
    op: Op,
) -> Result<Reply, TransportError> {
    let class = match &error {
        cohesix_client::Error::BadPath { .. } => ErrorClass::NotFound,
        cohesix_client::Error::TooBig { .. } => ErrorClass::TooBig,
        other => match other.class() {
            Some(class) => class,
            None => return Err(TransportError::Client(error)),
        },
    };
    let detail = match class {
        ErrorClass::NotFound if op == Op::Kill => "unknown-worker",
        ErrorClass::Permission | ErrorClass::NotFound => "invalid-path",
        ErrorClass::Invalid if op != Op::Read => "invalid-payload",
        ErrorClass::Invalid => "invalid-path",
        other => other.name(),
    };
    let words = detail.replace('-', " ");
    let line = ack::err(verb, reason_of(class), Some(detail), path, Some(&words));
    Ok(Reply::ack(line))
}

fn reason_of(class: ErrorClass) -> Reason {
    match class {
        ErrorClass::Busy => Reason::Busy,
        ErrorClass::Quota | ErrorClass::TooBig | ErrorClass::RateLimited => Reason::Quota,
        ErrorClass::Closed => Reason::Cut,
        _ => Reason::Policy,
    }
}
