//! One pipelined 9P connection: tags, a writer task and a reader task.
//!
//! Requests take a tag from a bounded pool, queue their frame for the
//! writer task and wait on a oneshot that the reader task completes when
//! the reply with that tag arrives, so replies may come in any order. A
//! request that times out or is dropped keeps its tag out of the pool until
//! the server answers it, so a late reply can never reach a newer request.
//! When either task fails the connection is dead: every pending request is
//! woken with [`Error::Disconnected`] and later ones fail at once.
//!
//! This module knows nothing of fids or paths; `client` does.

use crate::error::Error;
use cohesix_ninep::codec::{decode, encode};
use cohesix_ninep::msg::HEADER_LEN;
use cohesix_ninep::{Body, Message};
use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::sync::{mpsc, oneshot, Semaphore};
use tokio::task::AbortHandle;

/// Reads one whole frame of at most `msize` bytes.
pub(crate) async fn read_frame<R>(reader: &mut R, msize: u32) -> Result<Vec<u8>, String>
where
    R: AsyncRead + Unpin,
{
    let mut size = [0u8; 4];
    reader
        .read_exact(&mut size)
        .await
        .map_err(|e| format!("read: {e}"))?;
    let size = u32::from_le_bytes(size);
    if size > msize || (size as usize) < HEADER_LEN {
        return Err(format!("frame of {size} bytes (msize {msize})"));
    }

    let mut frame = vec![0u8; size as usize];
    frame[..4].copy_from_slice(&size.to_le_bytes());
    reader
        .read_exact(&mut frame[4..])
        .await
        .map_err(|e| format!("read: {e}"))?;
    Ok(frame)
}

struct State {
    waiting: HashMap<u16, oneshot::Sender<Message>>,
    free_tags: Vec<u16>,
    dead: Option<Arc<str>>,
}

struct Shared {
    state: Mutex<State>,
    /// One permit per free tag; closed when the connection dies.
    tags: Semaphore,
    frames: mpsc::Sender<Vec<u8>>,
    msize: u32,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        // A poisoned lock only means another task panicked mid-update of
        // plain maps; the data is still consistent enough to fail cleanly.
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn fail(&self, reason: &str) {
        let mut state = self.lock();
        if state.dead.is_none() {
            tracing::debug!(reason, "9p connection closed");
            state.dead = Some(Arc::from(reason));
        }
        // Dropping the senders wakes every waiter at once.
        state.waiting.clear();
        drop(state);
        self.tags.close();
    }

    fn dead(&self) -> Option<Error> {
        let reason = self.lock().dead.clone()?;
        Some(Error::Disconnected { reason })
    }

    fn release_tag(&self, state: &mut State, tag: u16) {
        state.free_tags.push(tag);
        self.tags.add_permits(1);
    }
}

/// Aborts both tasks when the last handle to the connection goes.
struct Tasks {
    reader: AbortHandle,
    writer: AbortHandle,
}

impl Drop for Tasks {
    fn drop(&mut self) {
        self.reader.abort();
        self.writer.abort();
    }
}

/// The multiplexed connection shared by every clone of a client.
pub(crate) struct Conn {
    shared: Arc<Shared>,
    tasks: Tasks,
    timeout: Duration,
}

impl Conn {
    /// Starts the reader and writer tasks over a versioned connection.
    pub(crate) fn start(
        read: OwnedReadHalf,
        write: OwnedWriteHalf,
        msize: u32,
        max_in_flight: u16,
        timeout: Duration,
    ) -> Conn {
        let (frames, queue) = mpsc::channel(usize::from(max_in_flight));
        let state = State {
            waiting: HashMap::new(),
            free_tags: (0..max_in_flight).rev().collect(),
            dead: None,
        };
        let shared = Arc::new(Shared {
            state: Mutex::new(state),
            tags: Semaphore::new(usize::from(max_in_flight)),
            frames,
            msize,
        });

        let writer = tokio::spawn(write_frames(shared.clone(), write, queue)).abort_handle();
        let reader = tokio::spawn(read_replies(shared.clone(), read)).abort_handle();
        Conn {
            shared,
            tasks: Tasks { reader, writer },
            timeout,
        }
    }

    pub(crate) fn msize(&self) -> u32 {
        self.shared.msize
    }

    pub(crate) fn is_alive(&self) -> bool {
        self.shared.dead().is_none()
    }

    pub(crate) fn close(&self, reason: &str) {
        self.shared.fail(reason);
        self.tasks.reader.abort();
        self.tasks.writer.abort();
    }

    /// Sends one request and waits for its reply; `Rlerror` becomes
    /// [`Error::Server`].
    pub(crate) async fn rpc(&self, body: Body) -> Result<Body, Error> {
        let op = body.op_name();
        let timeout = |_| Error::Timeout {
            op,
            after: self.timeout,
        };
        if let Some(e) = self.shared.dead() {
            return Err(e);
        }

        let permit = tokio::time::timeout(self.timeout, self.shared.tags.acquire())
            .await
            .map_err(timeout)?;
        match permit {
            // The permit now belongs to the tag; the reader gives it back.
            Ok(permit) => permit.forget(),
            Err(_) => return Err(self.disconnected()),
        }
        let reply = self.send(body)?;

        match tokio::time::timeout(self.timeout, reply)
            .await
            .map_err(timeout)?
        {
            Ok(Message {
                body: Body::Rlerror { ecode },
                ..
            }) => Err(Error::server(op, ecode)),
            Ok(msg) => Ok(msg.body),
            Err(_) => Err(self.disconnected()),
        }
    }

    /// Takes a tag and queues the frame; never awaits, so a cancelled
    /// caller cannot leave a tag half-registered.
    fn send(&self, body: Body) -> Result<oneshot::Receiver<Message>, Error> {
        let mut state = self.shared.lock();
        if state.dead.is_some() {
            drop(state);
            return Err(self.disconnected());
        }
        let Some(tag) = state.free_tags.pop() else {
            return Err(Error::Protocol(String::from(
                "tag pool out of step with its permits",
            )));
        };

        let mut frame = Vec::new();
        let encoded = encode(&Message::new(tag, body), &mut frame);
        if let Err(e) = encoded {
            self.shared.release_tag(&mut state, tag);
            return Err(Error::Protocol(format!("request does not encode: {e}")));
        }
        let len = frame.len();
        if len > self.shared.msize as usize {
            self.shared.release_tag(&mut state, tag);
            let limit = self.shared.msize as usize;
            return Err(Error::TooBig {
                what: "request",
                len,
                limit,
            });
        }

        // The queue holds one slot per tag, so it cannot be full while we
        // hold one; it is closed only when the writer died.
        if self.shared.frames.try_send(frame).is_err() {
            self.shared.release_tag(&mut state, tag);
            drop(state);
            self.shared.fail("writer stopped");
            return Err(self.disconnected());
        }
        let (tx, rx) = oneshot::channel();
        state.waiting.insert(tag, tx);
        Ok(rx)
    }

    fn disconnected(&self) -> Error {
        self.shared.dead().unwrap_or_else(|| Error::Disconnected {
            reason: Arc::from("closed"),
        })
    }
}

async fn write_frames(
    shared: Arc<Shared>,
    mut write: OwnedWriteHalf,
    mut queue: mpsc::Receiver<Vec<u8>>,
) {
    while let Some(frame) = queue.recv().await {
        if let Err(e) = write.write_all(&frame).await {
            shared.fail(&format!("write: {e}"));
            return;
        }
    }
}

async fn read_replies(shared: Arc<Shared>, read: OwnedReadHalf) {
    let mut read = BufReader::new(read);
    let reason = loop {
        let frame = match read_frame(&mut read, shared.msize).await {
            Ok(frame) => frame,
            Err(reason) => break reason,
        };
        let msg = match decode(&frame) {
            Ok(msg) => msg,
            Err(e) => break format!("undecodable reply: {e}"),
        };

        let mut state = shared.lock();
        let Some(waiter) = state.waiting.remove(&msg.tag) else {
            break format!("reply for tag {} that is not in flight", msg.tag);
        };
        shared.release_tag(&mut state, msg.tag);
        drop(state);
        // The caller may have timed out and gone; its reply is dropped.
        let _ = waiter.send(msg);
    };
    shared.fail(&reason);
}
