//! The line console (SURFACES §8): length-prefixed lines over TCP, one hive
//! session per client, upstream's acks byte for byte.
//!
//! # A connection's life
//!
//! 1. The first frame must be `AUTH <token>` and arrive within
//!    `console.auth_timeout_ms`; it is answered `OK AUTH`. Anything else is
//!    answered with an `ERR AUTH` (table below) and the connection closed.
//! 2. `ATTACH <role> [ticket]` starts a hive session ([`Transport::Console`]):
//!    the queen may attach without a ticket ([`Credential::ConsoleOperator`]),
//!    worker roles need one. A new `ATTACH` replaces the session; when it
//!    fails, the connection is left unattached.
//! 3. Then any number of commands, each answered by one ack, content verbs
//!    (`LS CAT TAIL LOG HELP`) by the ack, one frame per line and `END`.
//! 4. `QUIT`, end of stream, a write time-out, an idle time-out or the hive
//!    shutting down end the connection and its session.
//!
//! # Bounds
//!
//! - Clients: at most `console.max_clients` connections; one more is
//!   answered `ERR AUTH reason=busy detail=too-many-clients`, closed and
//!   counted as busy.
//! - Lines: `console.max_line_bytes` each way. An oversized frame after
//!   `AUTH` is answered `ERR FRAME reason=invalid-length` and its payload is
//!   skipped as it arrives, never buffered; the session lives. Outgoing
//!   lines longer than the bound are cut at a character boundary.
//! - Output: replies are gathered in a buffer that is written out before
//!   the next read and whenever it passes [`ConsoleOptions::output_high_water`],
//!   so a client that pipelines without reading stops being read once the
//!   socket is full: the server never holds more than the high-water mark
//!   plus one reply. A write that does not complete within
//!   [`ConsoleOptions::write_timeout`] cuts the client.
//! - Failed attaches: each one is answered after a doubling delay (from
//!   100 ms, at most 2 s); the `console.attach_failures_before_lockout`-th
//!   within `console.attach_failure_window_s` locks the source address out
//!   for `console.lockout_s`, shared across connections (see [`lockout`]).
//!
//! The hive lock is taken for one call at a time and never across an await.
//!
//! # Ack mapping
//!
//! A hive refusal is an [`NsError`] `{class, detail}`; the console answers
//! `ERR <VERB> reason=<reason> detail=<detail> [path=<path>] error=<words>`
//! where `<detail>` is the hive's tag as is and `<words>` is the same tag
//! with dashes read as spaces. `path=` is present for the verbs that name a
//! path (`LS CAT TAIL ECHO`, and `LOG` with `/log/queen.log`).
//!
//! | Error class | reason | Typical details |
//! |---|---|---|
//! | `Permission` | `policy` | `invalid-path`, `ticket-required`, `invalid-ticket`, `wrong-role` |
//! | `NotFound` | `policy` | `invalid-path`, `unknown-worker`, `unknown-gpu` |
//! | `Invalid` | `policy` | `invalid-payload`, `is-a-directory`, `invalid-transition` |
//! | `Unsupported` | `policy` | `unsupported` |
//! | `Quota` | `quota` | `buffer-full` (worker cap), `gpu-capacity`, `ticket-ops`, `scope-rate` |
//! | `TooBig` | `quota` | `record-too-large`, `ctl-write` |
//! | `RateLimited` | `quota` | `rate-limited` |
//! | `Busy` | `busy` | `lifecycle` (new work while not ONLINE), `too-many-sessions` |
//! | `Closed` | `cut` | `revoked`, `worker-gone`, `no-session` |
//!
//! `invalid-path` covers a path that does not exist and one the role may
//! not see, read or append to, as upstream does; `invalid-payload` covers
//! bad JSON, unknown fields and unknown lifecycle words. So the observed
//! refusals come out exactly as upstream's, e.g.
//! `ERR CAT reason=policy detail=invalid-path path=/nope error=invalid path` and
//! `ERR ECHO reason=quota detail=buffer-full path=/queen/ctl error=buffer full`.
//!
//! Refusals made by the console itself, counted with [`Hive::count_refusal`]
//! under the class given; "closes" means the connection is closed after
//! the answer, otherwise the session lives on:
//!
//! - first frame is not `AUTH`:
//!   `ERR AUTH reason=policy detail=auth-required` (Permission), closes;
//! - wrong token: `ERR AUTH reason=policy detail=invalid-token` (Permission), closes;
//! - bad frame before `AUTH` (garbage, any length error):
//!   `ERR AUTH reason=policy detail=invalid-frame` (Invalid), closes;
//! - no `AUTH` within the time-out: `ERR AUTH reason=cut detail=timeout` (Closed), closes;
//! - more than `console.max_clients`:
//!   `ERR AUTH reason=busy detail=too-many-clients` (Busy), closes;
//! - `AUTH` again: `ERR AUTH reason=policy detail=already-authenticated` (Permission);
//! - `ATTACH` from a locked-out source:
//!   `ERR ATTACH reason=quota detail=rate-limited delay_ms=<ms left>` (RateLimited);
//!   the failure that triggers the lockout gets `delay_ms=<console.lockout_s in ms>`;
//! - a verb that needs a session before `ATTACH`:
//!   `ERR <VERB> reason=policy detail=not-attached [path=<p>] error=not attached`
//!   (Permission);
//! - unknown verb or empty line:
//!   `ERR PARSE reason=policy detail=unsupported console command` (Invalid);
//! - bad arguments: `ERR <VERB> reason=policy detail=invalid-args error=<usage>` (Invalid);
//! - a diagnostics verb (`BI CAPS MEM TEST NETTEST NETSTATS CACHELOG`):
//!   `ERR <VERB> reason=policy detail=unsupported` (Unsupported);
//! - a frame longer than `console.max_line_bytes`: `ERR FRAME reason=invalid-length`
//!   (TooBig);
//! - a frame length of 0 to 3: `ERR FRAME reason=invalid-length detail=below-header`
//!   (Invalid), closes, since the stream cannot be resynchronised;
//! - a line that is not UTF-8: `ERR FRAME reason=policy detail=invalid-utf8` (Invalid);
//! - a line holding `\n` or `\r`: `ERR FRAME reason=policy detail=line-break` (Invalid).
//!
//! Successful acks: `OK AUTH`, `OK ATTACH role=<role>`, `OK PING reply=pong`
//! then `PONG`, `OK LS path=<p> entries=<n>`, `OK CAT path=<p> data=<summary>`,
//! `OK TAIL path=<p>`, `OK LOG path=/log/queen.log`, `OK ECHO path=<p>
//! bytes=<n>` (with ` seg_id=<id>` added for a telemetry `ctl`), `OK SPAWN
//! id=<worker>`, `OK KILL id=<worker>`, `OK HELP`, `OK QUIT`. `bytes=`
//! counts the text after the path as sent; no line break is added.
//!
//! # Limitations
//!
//! `CAT`, `TAIL` and `LOG` return at most [`STREAM_MAX_BYTES`] of content
//! (the newest, for rings). The console does not stream a ring as it grows;
//! a later `TAIL` shows what arrived since.

pub mod lockout;
mod reply;

use crate::Shared;
use cohesix_console::{ack, ctl, parse, Command, FrameDecoder, FrameError, Secret};
use cohesix_core::{Credential, SessionId, Transport};
use cohesix_ninep::{ErrorClass, NsError};
use lockout::{Failure, Lockouts, Policy};
use reply::{refusal, Replies};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::time::Instant;

#[cfg(doc)]
use cohesix_core::Hive;

/// Most content bytes one `CAT`, `TAIL` or `LOG` returns.
pub const STREAM_MAX_BYTES: usize = 64 * 1024;

/// Bytes read from the socket at a time.
const READ_CHUNK: usize = 16 * 1024;

/// The audit stream `LOG` shows.
const QUEEN_LOG: &str = "/log/queen.log";

/// The control file `SPAWN` and `KILL` write to.
const QUEEN_CTL: &str = "/queen/ctl";

/// The largest reply buffer any console connection in this process has
/// held, in bytes; see [`buffered_peak`].
static BUFFERED_PEAK: AtomicUsize = AtomicUsize::new(0);

/// The most bytes of unwritten replies any console connection in this
/// process has held at once. Tests use it to check the output bound.
pub fn buffered_peak() -> usize {
    BUFFERED_PEAK.load(Ordering::Relaxed)
}

/// Knobs the manifest does not carry; [`serve`] uses the defaults.
#[derive(Clone, Debug)]
pub struct ConsoleOptions {
    /// How long one write of pending replies may take before the client is cut.
    pub write_timeout: Duration,
    /// How long an authenticated client may send nothing before it is cut.
    pub idle_timeout: Duration,
    /// Unwritten reply bytes past which the connection stops reading and writes.
    pub output_high_water: usize,
    /// Source addresses the failed-attach table tracks at once.
    pub lockout_capacity: usize,
}

impl Default for ConsoleOptions {
    fn default() -> ConsoleOptions {
        ConsoleOptions {
            write_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(300),
            output_high_water: 64 * 1024,
            lockout_capacity: lockout::DEFAULT_CAPACITY,
        }
    }
}

/// Accepts console clients until the hive shuts down.
pub async fn serve(listener: TcpListener, shared: Arc<Shared>) {
    serve_with(listener, shared, ConsoleOptions::default()).await;
}

/// [`serve`] with explicit options.
pub async fn serve_with(listener: TcpListener, shared: Arc<Shared>, options: ConsoleOptions) {
    let mut shutdown = shared.shutdown.subscribe();
    let listener_state = Arc::new(ListenerState {
        lockouts: Mutex::new(Lockouts::new(options.lockout_capacity)),
        policy: Policy::from_manifest(&shared.manifest.console),
        options,
    });
    loop {
        let accepted = tokio::select! {
            a = listener.accept() => a,
            _ = shutdown.changed() => return,
        };
        let (stream, peer) = match accepted {
            Ok(a) => a,
            Err(e) => {
                tracing::warn!(error = %e, "console accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let Some(slot) = ClientSlot::take(&shared) else {
            refuse_client(&shared, stream, peer);
            continue;
        };
        let _ = stream.set_nodelay(true);
        let shared = shared.clone();
        let state = listener_state.clone();
        tokio::spawn(async move {
            let started = Instant::now();
            let mut conn = Connection::new(&shared, &state, peer);
            let end = conn.run(stream).await;
            conn.close();
            drop(slot);
            tracing::info!(
                %peer,
                role = conn.role.as_deref().unwrap_or("-"),
                verbs = conn.verbs,
                refusals = conn.refusals,
                truncated = conn.replies.truncated,
                end = end.as_str(),
                ms = started.elapsed().as_millis() as u64,
                "console connection closed"
            );
        });
    }
}

/// What every connection of one listener shares.
struct ListenerState {
    lockouts: Mutex<Lockouts>,
    policy: Policy,
    options: ConsoleOptions,
}

/// One of the `console.max_clients` connection slots; freed on drop.
struct ClientSlot(Arc<Shared>);

impl ClientSlot {
    fn take(shared: &Arc<Shared>) -> Option<ClientSlot> {
        let max = shared.manifest.console.max_clients as usize;
        let before = shared.console_connections.fetch_add(1, Ordering::AcqRel);
        if before >= max {
            shared.console_connections.fetch_sub(1, Ordering::AcqRel);
            return None;
        }
        Some(ClientSlot(shared.clone()))
    }
}

impl Drop for ClientSlot {
    fn drop(&mut self) {
        self.0.console_connections.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Answers a client beyond `console.max_clients` without waiting on it.
fn refuse_client(shared: &Shared, stream: TcpStream, peer: SocketAddr) {
    shared.with_hive(|h| h.count_refusal(ErrorClass::Busy));
    let mut replies = Replies::new(usize::MAX);
    replies.line(&ack::err(
        "AUTH",
        cohesix_console::Reason::Busy,
        Some("too-many-clients"),
        None,
        None,
    ));
    // A fresh socket's send buffer is empty, so this does not block; if it
    // fails the client learns from the close instead.
    let _ = stream.try_write(replies.bytes());
    tracing::warn!(
        %peer,
        limit = shared.manifest.console.max_clients,
        "console client refused: client limit"
    );
}

/// Why a connection ended (logged).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum End {
    Quit,
    Eof,
    ReadError,
    WriteError,
    WriteTimeout,
    IdleTimeout,
    AuthTimeout,
    AuthRefused,
    FrameLost,
    Shutdown,
}

impl End {
    fn as_str(self) -> &'static str {
        match self {
            End::Quit => "quit",
            End::Eof => "eof",
            End::ReadError => "read-error",
            End::WriteError => "write-error",
            End::WriteTimeout => "write-timeout",
            End::IdleTimeout => "idle-timeout",
            End::AuthTimeout => "auth-timeout",
            End::AuthRefused => "auth-refused",
            End::FrameLost => "frame-lost",
            End::Shutdown => "shutdown",
        }
    }
}

/// One console client: its session, its pending replies, its counters.
struct Connection<'a> {
    shared: &'a Shared,
    state: &'a ListenerState,
    peer: SocketAddr,
    session: Option<SessionId>,
    role: Option<String>,
    replies: Replies,
    decoder: FrameDecoder,
    verbs: u64,
    refusals: u64,
}

impl<'a> Connection<'a> {
    fn new(shared: &'a Shared, state: &'a ListenerState, peer: SocketAddr) -> Connection<'a> {
        let max_line = shared.manifest.console.max_line_bytes as usize;
        Connection {
            shared,
            state,
            peer,
            session: None,
            role: None,
            replies: Replies::new(max_line),
            decoder: FrameDecoder::new(max_line),
            verbs: 0,
            refusals: 0,
        }
    }

    async fn run(&mut self, mut stream: TcpStream) -> End {
        let mut shutdown = self.shared.shutdown.subscribe();
        let mut chunk = vec![0u8; READ_CHUNK];
        if let Err(end) = self
            .authenticate(&mut stream, &mut chunk, &mut shutdown)
            .await
        {
            return end;
        }
        loop {
            if let Err(end) = self.answer_buffered(&mut stream).await {
                return end;
            }
            if let Err(end) = self.flush(&mut stream).await {
                return end;
            }
            let idle = self.state.options.idle_timeout;
            let read = tokio::select! {
                r = tokio::time::timeout(idle, stream.read(&mut chunk)) => r,
                _ = shutdown.changed() => return End::Shutdown,
            };
            match read {
                Err(_) => return End::IdleTimeout,
                Ok(Ok(0)) => return End::Eof,
                Ok(Ok(n)) => self.decoder.push(&chunk[..n]),
                Ok(Err(_)) => return End::ReadError,
            }
        }
    }

    /// Ends the hive session, if any.
    fn close(&mut self) {
        if let Some(sid) = self.session.take() {
            self.shared.with_hive(|h| h.detach(sid));
        }
    }

    /// Waits for the `AUTH` frame and answers it.
    async fn authenticate(
        &mut self,
        stream: &mut TcpStream,
        chunk: &mut [u8],
        shutdown: &mut watch::Receiver<bool>,
    ) -> Result<(), End> {
        let timeout = u64::from(self.shared.manifest.console.auth_timeout_ms);
        let deadline = Instant::now() + Duration::from_millis(timeout);
        loop {
            match self.decoder.next_frame() {
                Ok(Some(line)) => return self.check_auth(stream, &line).await,
                Ok(None) => {}
                Err(_) => {
                    self.refuse_auth("invalid-frame", ErrorClass::Invalid);
                    let _ = self.flush(stream).await;
                    return Err(End::AuthRefused);
                }
            }
            let read = tokio::select! {
                r = tokio::time::timeout_at(deadline, stream.read(chunk)) => r,
                _ = shutdown.changed() => return Err(End::Shutdown),
            };
            match read {
                Err(_) => {
                    let line = ack::err(
                        "AUTH",
                        cohesix_console::Reason::Cut,
                        Some("timeout"),
                        None,
                        None,
                    );
                    self.refuse(&line, ErrorClass::Closed);
                    let _ = self.flush(stream).await;
                    return Err(End::AuthTimeout);
                }
                Ok(Ok(0)) => return Err(End::Eof),
                Ok(Ok(n)) => self.decoder.push(&chunk[..n]),
                Ok(Err(_)) => return Err(End::ReadError),
            }
        }
    }

    async fn check_auth(&mut self, stream: &mut TcpStream, line: &str) -> Result<(), End> {
        self.verbs += 1;
        let refused = match parse(line) {
            Ok(Command::Auth { token }) if self.shared.console_token_matches(token.expose()) => {
                None
            }
            Ok(Command::Auth { .. }) => Some("invalid-token"),
            _ => Some("auth-required"),
        };
        match refused {
            None => {
                self.replies.line(&ack::ok("AUTH", None));
                Ok(())
            }
            Some(detail) => {
                self.refuse_auth(detail, ErrorClass::Permission);
                let _ = self.flush(stream).await;
                Err(End::AuthRefused)
            }
        }
    }

    fn refuse_auth(&mut self, detail: &str, class: ErrorClass) {
        let reason = reply::reason_of(class);
        let line = ack::err("AUTH", reason, Some(detail), None, None);
        self.refuse(&line, class);
    }

    /// Answers every complete frame already received, writing out the
    /// replies whenever they pass the high-water mark.
    async fn answer_buffered(&mut self, stream: &mut TcpStream) -> Result<(), End> {
        loop {
            let frame = self.decoder.next_frame();
            let outcome = match frame {
                Ok(None) => return Ok(()),
                Ok(Some(line)) => self.command(&line).await,
                Err(e) => self.frame_error(&e),
            };
            if let Err(end) = outcome {
                let _ = self.flush(stream).await;
                return Err(end);
            }
            if self.replies.len() >= self.state.options.output_high_water {
                self.flush(stream).await?;
            }
        }
    }

    /// Writes every pending reply, within the write time-out.
    async fn flush(&mut self, stream: &mut TcpStream) -> Result<(), End> {
        if self.replies.is_empty() {
            return Ok(());
        }
        BUFFERED_PEAK.fetch_max(self.replies.len(), Ordering::Relaxed);
        let timeout = self.state.options.write_timeout;
        let written = tokio::time::timeout(timeout, stream.write_all(self.replies.bytes())).await;
        self.replies.clear(self.state.options.output_high_water);
        match written {
            Ok(Ok(())) => Ok(()),
            Ok(Err(_)) => Err(End::WriteError),
            Err(_) => {
                self.shared
                    .with_hive(|h| h.count_refusal(ErrorClass::Closed));
                Err(End::WriteTimeout)
            }
        }
    }

    fn frame_error(&mut self, error: &FrameError) -> Result<(), End> {
        let (line, class) = match error {
            FrameError::TooLong { .. } => {
                (ack::FRAME_INVALID_LENGTH.to_string(), ErrorClass::TooBig)
            }
            FrameError::InvalidLength { .. } => (
                format!("{} detail=below-header", ack::FRAME_INVALID_LENGTH),
                ErrorClass::Invalid,
            ),
            FrameError::EmptyLine => (ack::PARSE_UNSUPPORTED.to_string(), ErrorClass::Invalid),
            FrameError::BadUtf8 => (frame_policy("invalid-utf8"), ErrorClass::Invalid),
            FrameError::LineBreak => (frame_policy("line-break"), ErrorClass::Invalid),
        };
        self.refuse(&line, class);
        if error.is_fatal() {
            return Err(End::FrameLost);
        }
        Ok(())
    }

    /// Sends a console-made refusal and counts it.
    fn refuse(&mut self, line: &str, class: ErrorClass) {
        self.refusals += 1;
        self.shared.with_hive(|h| h.count_refusal(class));
        self.replies.line(line);
    }

    /// Sends the hive's refusal (already counted by the hive).
    fn refuse_ns(&mut self, verb: &str, error: &NsError, path: Option<&str>) {
        self.refusals += 1;
        self.replies.line(&refusal(verb, error, path));
    }

    async fn command(&mut self, line: &str) -> Result<(), End> {
        self.verbs += 1;
        let command = match parse(line) {
            Ok(c) => c,
            Err(e) => {
                self.refuse(&e.ack(), ErrorClass::Invalid);
                return Ok(());
            }
        };
        match command {
            Command::Auth { .. } => {
                let line = ack::err(
                    "AUTH",
                    cohesix_console::Reason::Policy,
                    Some("already-authenticated"),
                    None,
                    None,
                );
                self.refuse(&line, ErrorClass::Permission);
            }
            Command::Attach { role, ticket } => self.attach(&role, ticket.as_ref()).await,
            Command::Ping => {
                self.replies.line(&ack::ok("PING", Some("reply=pong")));
                self.replies.line(ack::PONG);
            }
            Command::Help => {
                self.replies.line(&ack::ok("HELP", None));
                self.replies.content(HELP);
            }
            Command::Quit => {
                self.replies.line(&ack::ok("QUIT", None));
                return Err(End::Quit);
            }
            Command::Unsupported(verb) => {
                self.refuse(&ack::unsupported(verb), ErrorClass::Unsupported);
            }
            other => self.session_command(other),
        }
        Ok(())
    }

    /// Commands that act on the hive through the session.
    fn session_command(&mut self, command: Command) {
        let verb = command.verb();
        let path = match &command {
            Command::Ls { path }
            | Command::Cat { path }
            | Command::Tail { path }
            | Command::Echo { path, .. } => Some(path.as_str()),
            Command::Log => Some(QUEEN_LOG),
            _ => None,
        };
        let Some(sid) = self.session else {
            let error = NsError::permission("not-attached");
            self.refusals += 1;
            self.shared.with_hive(|h| h.count_refusal(error.class));
            self.replies.line(&refusal(verb, &error, path));
            return;
        };
        match command {
            Command::Ls { path } => self.ls(sid, &path),
            Command::Cat { path } => self.cat(sid, &path),
            Command::Tail { path } => self.tail(sid, "TAIL", &path),
            Command::Log => self.tail(sid, "LOG", QUEEN_LOG),
            Command::Echo { path, text } => self.echo(sid, &path, &text),
            Command::Spawn { role, args } => self.spawn(sid, &role, &args),
            Command::Kill { id } => self.kill(sid, &id),
            _ => {}
        }
    }

    async fn attach(&mut self, role: &str, ticket: Option<&Secret>) {
        let ip = self.peer.ip();
        let locked = self.lockouts().locked(ip, Instant::now());
        if let Some(left) = locked {
            let line = ack::rate_limited("ATTACH", left.as_millis() as u64);
            self.refuse(&line, ErrorClass::RateLimited);
            return;
        }
        self.close();
        self.role = None;
        let credential = match ticket {
            Some(t) => Credential::Ticket(t.expose()),
            None => Credential::ConsoleOperator,
        };
        let attached = self
            .shared
            .with_hive(|h| h.attach(role, credential, Transport::Console));
        let error = match attached {
            Ok(sid) => {
                self.session = Some(sid);
                self.role = Some(role.to_string());
                self.lockouts().forgive(ip);
                self.replies
                    .line(&ack::ok("ATTACH", Some(&format!("role={role}"))));
                return;
            }
            Err(e) => e,
        };
        tracing::debug!(peer = %self.peer, role, detail = error.detail, "console attach refused");
        if error.class != ErrorClass::Permission {
            self.refuse_ns("ATTACH", &error, None);
            return;
        }
        let failure = self.lockouts().fail(ip, Instant::now(), &self.state.policy);
        match failure {
            Failure::LockedOut(for_how_long) => {
                tracing::warn!(peer = %self.peer, "console source locked out: failed attaches");
                let line = ack::rate_limited("ATTACH", for_how_long.as_millis() as u64);
                self.refuse(&line, ErrorClass::RateLimited);
            }
            Failure::Throttle(delay) => {
                tokio::time::sleep(delay).await;
                self.refuse_ns("ATTACH", &error, None);
            }
        }
    }

    fn lockouts(&self) -> std::sync::MutexGuard<'_, Lockouts> {
        match self.state.lockouts.lock() {
            Ok(g) => g,
            Err(poisoned) => poisoned.into_inner(),
        }
    }

    fn ls(&mut self, sid: SessionId, path: &str) {
        match self.shared.with_hive(|h| h.list(sid, path)) {
            Ok(entries) => {
                let detail = format!("path={path} entries={}", entries.len());
                self.replies.line(&ack::ok("LS", Some(&detail)));
                for (name, _) in &entries {
                    self.replies.line(name);
                }
                self.replies.line(ack::END);
            }
            Err(e) => self.refuse_ns("LS", &e, Some(path)),
        }
    }

    fn cat(&mut self, sid: SessionId, path: &str) {
        let read = self
            .shared
            .with_hive(|h| h.read_path(sid, path, STREAM_MAX_BYTES));
        match read {
            Ok(bytes) => {
                let text = String::from_utf8_lossy(&bytes);
                self.replies.line(&ack::cat_ok(path, &text));
                self.replies.content(&text);
            }
            Err(e) => self.refuse_ns("CAT", &e, Some(path)),
        }
    }

    fn tail(&mut self, sid: SessionId, verb: &str, path: &str) {
        let read = self
            .shared
            .with_hive(|h| h.tail_path(sid, path, STREAM_MAX_BYTES));
        match read {
            Ok(bytes) => {
                let text = String::from_utf8_lossy(&bytes);
                self.replies
                    .line(&ack::ok(verb, Some(&format!("path={path}"))));
                self.replies.content(&text);
            }
            Err(e) => self.refuse_ns(verb, &e, Some(path)),
        }
    }

    fn echo(&mut self, sid: SessionId, path: &str, text: &str) {
        let appended = self
            .shared
            .with_hive(|h| h.append(sid, path, text.as_bytes()));
        match appended {
            Ok(outcome) => {
                let mut detail = format!("path={path} bytes={}", outcome.bytes);
                if let (true, Some(seg)) = (is_telemetry_ctl(path), &outcome.reply) {
                    detail.push_str(&format!(" seg_id={seg}"));
                }
                self.replies.line(&ack::ok("ECHO", Some(&detail)));
            }
            Err(e) => self.refuse_ns("ECHO", &e, Some(path)),
        }
    }

    fn spawn(&mut self, sid: SessionId, kind: &str, args: &[(String, String)]) {
        let json = match ctl::spawn_json(kind, args) {
            Ok(json) => json,
            Err(why) => {
                let line = ack::err(
                    "SPAWN",
                    cohesix_console::Reason::Policy,
                    Some("invalid-args"),
                    None,
                    Some(why),
                );
                self.refuse(&line, ErrorClass::Invalid);
                return;
            }
        };
        let appended = self
            .shared
            .with_hive(|h| h.append(sid, QUEEN_CTL, json.as_bytes()));
        match appended {
            Ok(outcome) => {
                let id = outcome.reply.map(|id| format!("id={id}"));
                self.replies.line(&ack::ok("SPAWN", id.as_deref()));
            }
            Err(e) => self.refuse_ns("SPAWN", &e, None),
        }
    }

    fn kill(&mut self, sid: SessionId, id: &str) {
        let json = ctl::kill_json(id);
        let appended = self
            .shared
            .with_hive(|h| h.append(sid, QUEEN_CTL, json.as_bytes()));
        match appended {
            Ok(_) => self
                .replies
                .line(&ack::ok("KILL", Some(&format!("id={id}")))),
            Err(e) => self.refuse_ns("KILL", &e, None),
        }
    }
}

/// `ERR FRAME reason=policy detail=<detail>`.
fn frame_policy(detail: &str) -> String {
    ack::err(
        "FRAME",
        cohesix_console::Reason::Policy,
        Some(detail),
        None,
        None,
    )
}

/// `/queen/telemetry/<device>/ctl`, whose append reply is a segment id.
fn is_telemetry_ctl(path: &str) -> bool {
    path.strip_prefix("/queen/telemetry/")
        .and_then(|rest| rest.strip_suffix("/ctl"))
        .is_some_and(|device| !device.is_empty() && !device.contains('/'))
}

/// The `HELP` listing, one verb per line.
const HELP: &str = "\
AUTH <token>
ATTACH <role> [ticket]
PING
LS <path>
CAT <path>
TAIL <path>
ECHO <path> <text>
LOG
SPAWN heartbeat ticks=<n> [ttl_s=<s>] [ops=<n>]
SPAWN gpu gpu_id=<id> mem_mb=<n> streams=<n> ttl_s=<s> [priority=<n>]
KILL <worker-id>
QUIT
HELP
";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn telemetry_ctl_paths_are_recognised() {
        assert!(is_telemetry_ctl("/queen/telemetry/dev-1/ctl"));
        assert!(!is_telemetry_ctl("/queen/ctl"));
        assert!(!is_telemetry_ctl("/queen/telemetry//ctl"));
        assert!(!is_telemetry_ctl("/queen/telemetry/a/b/ctl"));
    }
}
