//! The `tcp` transport: the hive's line console (SURFACES §8).
//!
//! Connecting sends `AUTH <token>`; `attach` sends `ATTACH`. When the
//! connection drops, the next request reconnects with back-off (100 ms,
//! doubling, at most [`TcpOptions::reconnect_attempts`] tries), sends
//! `AUTH` and re-attaches with the role and ticket of the last successful
//! attach. A read-only request that met the drop is sent again; anything
//! else is reported, since it may already have taken effect.

use crate::transport::{Reply, Request, Shape, TransportError};
use cohesix_console::{ack, encode_frame, FrameDecoder};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::Instant;

/// The longest line the shell accepts from a hive (the manifest's upper bound).
const MAX_LINE: usize = 1 << 20;
/// The most content lines one reply may carry.
const MAX_LINES: usize = 1_000_000;
/// The first reconnect delay; it doubles up to [`BACKOFF_MAX`].
const BACKOFF_BASE: Duration = Duration::from_millis(100);
const BACKOFF_MAX: Duration = Duration::from_secs(2);

/// Where the console is and how patient to be.
#[derive(Clone, Debug)]
pub struct TcpOptions {
    pub host: String,
    pub port: u16,
    pub token: Option<String>,
    /// Bound on connecting and on every frame of a reply.
    pub timeout: Duration,
    pub reconnect_attempts: u32,
}

impl TcpOptions {
    pub fn new(host: impl Into<String>, port: u16, token: Option<String>) -> TcpOptions {
        TcpOptions {
            host: host.into(),
            port,
            token,
            timeout: Duration::from_secs(30),
            reconnect_attempts: 5,
        }
    }

    fn addr(&self) -> String {
        format!("{}:{}", self.host, self.port)
    }
}

struct Conn {
    stream: TcpStream,
    decoder: FrameDecoder,
}

/// A console client that reconnects.
pub struct TcpConsole {
    options: TcpOptions,
    conn: Option<Conn>,
    /// Role and ticket of the last successful attach, for re-attaching.
    attached: Option<(String, Option<String>)>,
    last_used: Instant,
    /// Connections made after the first.
    pub reconnects: u64,
    connects: u64,
}

impl TcpConsole {
    /// A console client; nothing is sent until the first request.
    pub fn new(options: TcpOptions) -> TcpConsole {
        TcpConsole {
            options,
            conn: None,
            attached: None,
            last_used: Instant::now(),
            reconnects: 0,
            connects: 0,
        }
    }

    pub async fn request(&mut self, request: &Request) -> Result<Reply, TransportError> {
        self.last_used = Instant::now();
        if let Request::Attach { .. } = request {
            // The new attach replaces the old; do not re-attach the old first.
            self.attached = None;
        }
        if self.conn.is_none() {
            self.reconnect().await?;
        }
        let line = request.console_line();
        let reply = match self.exchange(&line, request.shape()).await {
            Ok(reply) => reply,
            Err(e) if is_connection(&e) && !matches!(request, Request::Quit) => {
                self.conn = None;
                self.reconnect().await?;
                if !request.is_read_only() && !matches!(request, Request::Attach { .. }) {
                    return Err(TransportError::NotRetried {
                        verb: request.verb(),
                    });
                }
                self.exchange(&line, request.shape()).await?
            }
            Err(e) => {
                self.conn = None;
                return Err(e);
            }
        };
        match request {
            Request::Attach { role, ticket } if reply.is_ok() => {
                self.attached = Some((role.clone(), ticket.clone()));
            }
            Request::Attach { .. } => self.attached = None,
            Request::Quit => {
                self.conn = None;
                self.attached = None;
            }
            _ => {}
        }
        Ok(reply)
    }

    /// Sends `PING` if nothing was sent for `idle`; a failure only drops
    /// the connection, to be reopened by the next request.
    pub async fn keep_alive(&mut self, idle: Duration) {
        if self.conn.is_none() || self.last_used.elapsed() < idle {
            return;
        }
        self.last_used = Instant::now();
        if self.exchange("PING", Shape::Pong).await.is_err() {
            self.conn = None;
        }
    }

    /// Connects (with back-off), authenticates and re-attaches.
    async fn reconnect(&mut self) -> Result<(), TransportError> {
        let mut delay = BACKOFF_BASE;
        let mut attempt = 0;
        let conn = loop {
            attempt += 1;
            match self.connect_once().await {
                Ok(conn) => break conn,
                Err(e @ TransportError::AuthRefused(_)) | Err(e @ TransportError::NoToken) => {
                    return Err(e)
                }
                Err(e) if attempt >= self.options.reconnect_attempts.max(1) => return Err(e),
                Err(_) => {
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(BACKOFF_MAX);
                }
            }
        };
        self.conn = Some(conn);
        if self.connects > 0 {
            self.reconnects += 1;
        }
        self.connects += 1;
        if let Some((role, ticket)) = self.attached.clone() {
            let line = Request::Attach { role, ticket }.console_line();
            let reply = self.exchange(&line, Shape::Ack).await?;
            if !reply.is_ok() {
                self.attached = None;
                return Err(TransportError::ReattachRefused(reply.ack));
            }
        }
        Ok(())
    }

    async fn connect_once(&mut self) -> Result<Conn, TransportError> {
        let token = self.options.token.clone().ok_or(TransportError::NoToken)?;
        let addr = self.options.addr();
        let connect = TcpStream::connect(&addr);
        let stream = match tokio::time::timeout(self.options.timeout, connect).await {
            Ok(Ok(stream)) => stream,
            Ok(Err(e)) => {
                return Err(TransportError::Connect {
                    addr,
                    why: e.to_string(),
                })
            }
            Err(_) => {
                return Err(TransportError::Timeout {
                    addr,
                    after: self.options.timeout,
                })
            }
        };
        let _ = stream.set_nodelay(true);
        self.conn = Some(Conn {
            stream,
            decoder: FrameDecoder::new(MAX_LINE),
        });
        let reply = self.exchange(&format!("AUTH {token}"), Shape::Ack).await;
        let conn = self.conn.take();
        match (reply, conn) {
            (Ok(reply), Some(conn)) if reply.is_ok() => Ok(conn),
            (Ok(reply), _) => Err(TransportError::AuthRefused(reply.ack)),
            (Err(e), _) => Err(e),
        }
    }

    /// Sends one line and reads its whole reply.
    async fn exchange(&mut self, line: &str, shape: Shape) -> Result<Reply, TransportError> {
        let addr = self.options.addr();
        let timeout = self.options.timeout;
        let conn = self.conn.as_mut().ok_or_else(|| TransportError::Lost {
            addr: addr.clone(),
            why: "not connected".into(),
        })?;
        let mut frame = Vec::with_capacity(line.len() + 4);
        encode_frame(line, &mut frame);
        let lost = |why: String| TransportError::Lost {
            addr: addr.clone(),
            why,
        };
        match tokio::time::timeout(timeout, conn.stream.write_all(&frame)).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => return Err(lost(e.to_string())),
            Err(_) => {
                return Err(TransportError::Timeout {
                    addr,
                    after: timeout,
                })
            }
        }

        let ack = conn.next_line(&addr, timeout).await?;
        if !(ack.starts_with("OK") || ack.starts_with("ERR")) {
            return Err(TransportError::Protocol(format!(
                "expected an ack, got {ack:?}"
            )));
        }
        let mut reply = Reply::ack(ack);
        if !reply.is_ok() {
            return Ok(reply);
        }
        match shape {
            Shape::Ack => {}
            Shape::Pong => {
                let pong = conn.next_line(&addr, timeout).await?;
                if pong != ack::PONG {
                    return Err(TransportError::Protocol(format!(
                        "expected PONG, got {pong:?}"
                    )));
                }
            }
            Shape::Stream => loop {
                let line = conn.next_line(&addr, timeout).await?;
                if line == ack::END {
                    break;
                }
                if reply.lines.len() >= MAX_LINES {
                    return Err(TransportError::Protocol("reply without END".into()));
                }
                reply.lines.push(line);
            },
        }
        Ok(reply)
    }
}

impl Conn {
    async fn next_line(&mut self, addr: &str, timeout: Duration) -> Result<String, TransportError> {
        let mut chunk = [0u8; 8192];
        loop {
            match self.decoder.next_frame() {
                Ok(Some(line)) => return Ok(line),
                Ok(None) => {}
                Err(e) => return Err(TransportError::Protocol(e.to_string())),
            }
            let read = tokio::time::timeout(timeout, self.stream.read(&mut chunk)).await;
            match read {
                Ok(Ok(0)) => {
                    return Err(TransportError::Lost {
                        addr: addr.to_string(),
                        why: "closed by the hive".into(),
                    })
                }
                Ok(Ok(n)) => self.decoder.push(&chunk[..n]),
                Ok(Err(e)) => {
                    return Err(TransportError::Lost {
                        addr: addr.to_string(),
                        why: e.to_string(),
                    })
                }
                Err(_) => {
                    return Err(TransportError::Timeout {
                        addr: addr.to_string(),
                        after: timeout,
                    })
                }
            }
        }
    }
}

/// Whether the connection itself failed (so reconnecting may help).
fn is_connection(e: &TransportError) -> bool {
    matches!(e, TransportError::Lost { .. })
}
