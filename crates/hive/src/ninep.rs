//! The Secure9P listener: TCP framing, tags in flight, and the session
//! engine run against the shared hive.
//!
//! One task per connection. It reads whatever bytes arrived, cuts them into
//! frames, and answers the whole batch under one lock of the hive, then
//! writes the replies in one go. Requests received but not yet answered are
//! the connection's tags in flight: past the manifest's cap a request is
//! answered `Rlerror(EBUSY)` at once and counted, never queued.
//!
//! Framing rules enforced here (the engine checks everything inside):
//! a size below 7 closes the connection (it cannot be answered); a size
//! above the negotiated msize is answered `EMSGSIZE` and the connection is
//! closed, since the stream cannot be trusted to resynchronise.
//!
//! A connection that holds no attached session for [`ATTACH_TIMEOUT`]
//! (from its start, or since its last session ended) is cut and counted as
//! `cut`: without it, idle unauthenticated connections could hold every
//! one of the manifest's `ninep.max_sessions` slots forever.

use crate::Shared;
use cohesix_core::Hive;
use cohesix_ninep::msg::Body;
use cohesix_ninep::session::Limits;
use cohesix_ninep::{encode, peek_header, ErrorClass, Message, RefusedBy, Session};
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Instant;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// Smallest frame: size[4] type[1] tag[2].
const HEADER: usize = 7;

/// Longest time a connection may go without an attached session. Long
/// enough for any client's version + auth + attach round trips.
pub const ATTACH_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// Longest a batch of replies may take to be written. A peer that stops
/// reading is cut after it, so it can neither hold its connection past
/// [`ATTACH_TIMEOUT`] unattached nor park megabytes in socket buffers.
pub const WRITE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// Writes `out` within [`WRITE_TIMEOUT`]; false when it failed or timed out.
async fn write_out(stream: &mut TcpStream, out: &[u8]) -> bool {
    matches!(
        tokio::time::timeout(WRITE_TIMEOUT, stream.write_all(out)).await,
        Ok(Ok(()))
    )
}

/// Accepts connections until the listener fails or the hive shuts down.
pub async fn serve(listener: TcpListener, shared: Arc<Shared>) {
    let mut shutdown = shared.shutdown.subscribe();
    loop {
        let accepted = tokio::select! {
            a = listener.accept() => a,
            _ = shutdown.changed() => return,
        };
        let (stream, peer) = match accepted {
            Ok(a) => a,
            Err(e) => {
                tracing::warn!(error = %e, "9p accept failed");
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                continue;
            }
        };
        let max = shared.manifest.ninep.max_sessions as usize;
        // Taken here, in the accept loop, not in the task: a burst of
        // connects would otherwise all pass the check before any task ran.
        if shared.ninep_connections.fetch_add(1, Ordering::AcqRel) >= max {
            shared.ninep_connections.fetch_sub(1, Ordering::AcqRel);
            shared.with_hive(|h| h.count_refusal(ErrorClass::Busy));
            tracing::warn!(%peer, limit = max, "9p connection refused: session limit");
            continue;
        }
        let _ = stream.set_nodelay(true);
        let shared = shared.clone();
        tokio::spawn(async move {
            let started = Instant::now();
            let stats = connection(stream, peer, &shared).await;
            shared.ninep_connections.fetch_sub(1, Ordering::AcqRel);
            tracing::info!(
                %peer,
                requests = stats.requests,
                refused = stats.refused,
                reason = stats.end,
                ms = started.elapsed().as_millis() as u64,
                "9p connection closed"
            );
        });
    }
}

#[derive(Default)]
struct ConnStats {
    requests: u64,
    refused: u64,
    end: &'static str,
}

async fn connection(mut stream: TcpStream, peer: SocketAddr, shared: &Shared) -> ConnStats {
    let m = &shared.manifest.ninep;
    let limits = Limits {
        msize: m.msize,
        max_fids: m.max_fids_per_session as usize,
        walk_depth: m.walk_depth as usize,
        max_component_bytes: m.max_component_bytes as usize,
    };
    let max_tags = m.max_tags_in_flight as usize;
    let mut session: Session<Hive> = Session::new(limits);
    let mut stats = ConnStats::default();
    let mut inbuf: Vec<u8> = Vec::with_capacity(16 * 1024);
    let mut out: Vec<u8> = Vec::with_capacity(16 * 1024);
    let mut chunk = vec![0u8; 64 * 1024];
    let mut shutdown = shared.shutdown.subscribe();
    tracing::debug!(%peer, "9p connection opened");
    // Set while no session is attached: the instant the wait began.
    let mut unattached_since = Some(Instant::now());

    stats.end = loop {
        let attach_deadline =
            unattached_since.map(|t| tokio::time::Instant::from_std(t + ATTACH_TIMEOUT));
        let n = tokio::select! {
            r = stream.read(&mut chunk) => match r {
                Ok(0) => break "eof",
                Ok(n) => n,
                Err(_) => break "read-error",
            },
            _ = shutdown.changed() => break "shutdown",
            _ = async {
                match attach_deadline {
                    Some(d) => tokio::time::sleep_until(d).await,
                    None => std::future::pending().await,
                }
            } => {
                shared.with_hive(|h| h.count_refusal(ErrorClass::Closed));
                stats.refused += 1;
                break "attach-timeout";
            }
        };
        inbuf.extend_from_slice(&chunk[..n]);
        let msize = session.msize().unwrap_or(limits.msize) as usize;
        let (frames, verdict) = split_frames(&inbuf, msize);
        let close = answer_batch(
            shared,
            &mut session,
            &inbuf,
            &frames,
            max_tags,
            &mut out,
            &mut stats,
        );
        let consumed = frames.last().map_or(0, |f| f.end);
        inbuf.drain(..consumed);
        let too_big = match verdict {
            Framing::Ok => None,
            Framing::TooBig { tag } => Some(tag),
            Framing::Broken => {
                let _ = write_out(&mut stream, &out).await;
                break "broken-frame";
            }
        };
        if let Some(tag) = too_big {
            shared.with_hive(|h| h.count_refusal(ErrorClass::TooBig));
            stats.refused += 1;
            lerror(tag, ErrorClass::TooBig.errno(), &mut out);
        }
        if !out.is_empty() && !write_out(&mut stream, &out).await {
            break "write-error";
        }
        out.clear();
        if too_big.is_some() {
            break "frame-too-big";
        }
        if close {
            break "protocol-close";
        }
        unattached_since = match session.attached_count() {
            0 => unattached_since.or_else(|| Some(Instant::now())),
            _ => None,
        };
    };
    shared.with_hive(|h| session.shutdown(h));
    stats
}

struct Frame {
    start: usize,
    end: usize,
}

enum Framing {
    /// Every complete frame was cut; any rest is an incomplete frame.
    Ok,
    /// The next frame claims more than msize.
    TooBig { tag: u16 },
    /// The next frame's size cannot even hold a header.
    Broken,
}

fn split_frames(buf: &[u8], msize: usize) -> (Vec<Frame>, Framing) {
    let mut frames = Vec::new();
    let mut at = 0;
    while buf.len() - at >= 4 {
        let size = u32::from_le_bytes([buf[at], buf[at + 1], buf[at + 2], buf[at + 3]]) as usize;
        if size < HEADER {
            return (frames, Framing::Broken);
        }
        if size > msize {
            let tag = peek_header(&buf[at..]).map_or(cohesix_ninep::msg::NOTAG, |h| h.tag);
            return (frames, Framing::TooBig { tag });
        }
        if buf.len() - at < size {
            break;
        }
        frames.push(Frame {
            start: at,
            end: at + size,
        });
        at += size;
    }
    (frames, Framing::Ok)
}

/// Answers a batch of frames under one lock. Returns true when the engine
/// asked for the connection to be closed.
fn answer_batch(
    shared: &Shared,
    session: &mut Session<Hive>,
    buf: &[u8],
    frames: &[Frame],
    max_tags: usize,
    out: &mut Vec<u8>,
    stats: &mut ConnStats,
) -> bool {
    if frames.is_empty() {
        return false;
    }
    let in_flight = frames.len() as u64;
    shared.outstanding.fetch_add(in_flight, Ordering::Relaxed);
    let mut close = false;
    shared.with_hive(|hive| {
        hive.set_outstanding(shared.outstanding.load(Ordering::Relaxed));
        for (i, f) in frames.iter().enumerate() {
            let frame = &buf[f.start..f.end];
            stats.requests += 1;
            if i >= max_tags {
                // Received while `max_tags` earlier requests were unanswered.
                let tag = peek_header(frame).map_or(cohesix_ninep::msg::NOTAG, |h| h.tag);
                hive.count_refusal(ErrorClass::Busy);
                stats.refused += 1;
                lerror(tag, ErrorClass::Busy.errno(), out);
                continue;
            }
            let outcome = session.handle(hive, frame, out);
            if let Some(r) = outcome.refusal {
                stats.refused += 1;
                if r.by == RefusedBy::Engine {
                    hive.count_refusal(r.class);
                }
            }
            if outcome.close {
                close = true;
                break;
            }
        }
    });
    shared.outstanding.fetch_sub(in_flight, Ordering::Relaxed);
    close
}

fn lerror(tag: u16, ecode: u32, out: &mut Vec<u8>) {
    let msg = Message::new(tag, Body::Rlerror { ecode });
    if encode(&msg, out).is_err() {
        tracing::error!("cannot encode Rlerror");
    }
}
