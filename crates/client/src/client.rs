//! The client itself: connect, attach, and path operations over fids.
//!
//! Each path operation walks a fresh fid from the attach root, does its
//! work and clunks the fid again, so operations are independent and may run
//! concurrently on one connection. Every request has its own timeout, so an
//! operation of n requests is bounded by n timeouts.
//!
//! It does not reconnect, retry or cache: a dead connection stays dead and
//! the caller decides what to do next.

use crate::conn::{read_frame, Conn};
use crate::error::Error;
use cohesix_ninep::codec::{decode, encode};
use cohesix_ninep::msg::{
    GETATTR_BASIC, IOHDRSZ, MAX_WELEM, NOFID, NOTAG, RREAD_OVERHEAD, TWRITE_OVERHEAD,
    VERSION_9P2000_L,
};
use cohesix_ninep::{Attr, Body, Message, NodeStat, OpenMode, Qid};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpStream, ToSocketAddrs};
use tokio::sync::Semaphore;

/// Linux open flags the client sends in `Tlopen`.
const O_WRONLY: u32 = 0o1;
const O_RDWR: u32 = 0o2;
const O_APPEND: u32 = 0o2000;

/// The fid the attach root lives on.
const ROOT_FID: u32 = 0;

/// Most directory entries `ls` collects before it gives up.
pub const MAX_LS_ENTRIES: usize = 65_536;

/// How to connect and who to be.
#[derive(Clone, Debug)]
pub struct ClientConfig {
    /// The msize to ask for; the server may grant less.
    pub msize: u32,
    /// Sent as the attach `uname` (`queen`, `worker-heartbeat`, ...).
    pub role: String,
    /// Sent as the attach `aname`; empty when the role needs none.
    pub ticket: String,
    /// Bound on every single request, the TCP connect included.
    pub timeout: Duration,
    /// Requests in flight at once (tags); more callers wait for a tag.
    pub max_in_flight: u16,
    /// Fids held at once, the attach root not counted; more operations
    /// wait for one. Keep it below the server's per-session fid cap, or
    /// bursts of operations are refused with `Busy`.
    pub max_fids: u32,
}

impl ClientConfig {
    /// Defaults sized for a hive: msize 8192, 5 s per request, the
    /// server's default cap of 16 tags in flight and half its 64 fids.
    pub fn new(role: impl Into<String>, ticket: impl Into<String>) -> ClientConfig {
        ClientConfig {
            msize: 8192,
            role: role.into(),
            ticket: ticket.into(),
            timeout: Duration::from_secs(5),
            max_in_flight: 16,
            max_fids: 32,
        }
    }
}

/// Fid numbers in use on one connection.
struct Fids {
    next: u32,
    free: Vec<u32>,
}

impl Fids {
    fn take(&mut self) -> Result<u32, Error> {
        if let Some(fid) = self.free.pop() {
            return Ok(fid);
        }
        if self.next == NOFID {
            return Err(Error::FidsExhausted);
        }
        let fid = self.next;
        self.next += 1;
        Ok(fid)
    }
}

struct Inner {
    conn: Conn,
    fids: Mutex<Fids>,
    /// One permit per fid that may still be taken. A fid whose clunk got
    /// no answer keeps its permit: the server may still count it.
    fid_permits: Semaphore,
    root: Qid,
    timeout: Duration,
}

/// An attached 9P2000.L client; clones share one connection.
#[derive(Clone)]
pub struct Client {
    inner: Arc<Inner>,
}

/// A fid opened by [`Client::open`]; clunked by [`File::close`] or, best
/// effort, when dropped inside a tokio runtime.
pub struct File {
    client: Client,
    fid: u32,
    qid: Qid,
    iounit: u32,
    closed: bool,
}

impl Client {
    /// Connects, negotiates 9P2000.L and attaches as `config.role`.
    pub async fn connect(addr: impl ToSocketAddrs, config: ClientConfig) -> Result<Client, Error> {
        let stream = bounded(&config, "connect", TcpStream::connect(addr)).await??;
        stream.set_nodelay(true)?;
        let (mut read, mut write) = stream.into_split();

        let msize = bounded(&config, "version", async {
            negotiate(&mut read, &mut write, config.msize).await
        })
        .await??;
        let max_in_flight = config.max_in_flight.clamp(1, NOTAG - 1);
        let conn = Conn::start(read, write, msize, max_in_flight, config.timeout);

        let attach = Body::Tattach {
            fid: ROOT_FID,
            afid: NOFID,
            uname: config.role.clone(),
            aname: config.ticket.clone(),
            n_uname: NOFID,
        };
        let root = match conn.rpc(attach).await? {
            Body::Rattach { qid } => qid,
            other => return Err(unexpected("attach", &other)),
        };

        let fids = Mutex::new(Fids {
            next: ROOT_FID + 1,
            free: Vec::new(),
        });
        let fid_permits = Semaphore::new(config.max_fids.max(1) as usize);
        let timeout = config.timeout;
        Ok(Client {
            inner: Arc::new(Inner {
                conn,
                fids,
                fid_permits,
                root,
                timeout,
            }),
        })
    }

    /// The msize the server granted.
    pub fn msize(&self) -> u32 {
        self.inner.conn.msize()
    }

    /// The qid of the attach root.
    pub fn root_qid(&self) -> Qid {
        self.inner.root
    }

    /// False once the connection died or was closed.
    pub fn is_connected(&self) -> bool {
        self.inner.conn.is_alive()
    }

    /// Closes the connection now; pending and later requests fail with
    /// [`Error::Disconnected`].
    pub fn close(&self) {
        self.inner.conn.close("closed by the client");
    }

    /// Names in a directory, in the server's order.
    pub async fn ls(&self, path: &str) -> Result<Vec<String>, Error> {
        let fid = self.walk(path).await?;
        let listed = self.list(fid).await;
        self.clunk_quietly(fid).await;
        listed
    }

    /// Reads a file from offset 0 until a short or empty read, or until
    /// `max_bytes` bytes are in hand. To learn whether a file is larger than
    /// a bound, ask for one byte more than the bound.
    pub async fn read_all(&self, path: &str, max_bytes: usize) -> Result<Vec<u8>, Error> {
        let file = self.open(path, OpenMode::Read).await?;
        let read = file.read_to_end(max_bytes).await;
        file.close_quietly().await;
        read
    }

    /// Appends `data` as one write (one record) and returns the bytes the
    /// server took. Data that does not fit one write is refused here.
    pub async fn append(&self, path: &str, data: &[u8]) -> Result<u32, Error> {
        let limit = self.msize().saturating_sub(TWRITE_OVERHEAD) as usize;
        if data.len() > limit {
            return Err(Error::TooBig {
                what: "append",
                len: data.len(),
                limit,
            });
        }
        let file = self.open(path, OpenMode::Write).await?;
        let written = file.write_at(0, data).await;
        file.close_quietly().await;
        written
    }

    /// What the server says about a path.
    pub async fn stat(&self, path: &str) -> Result<NodeStat, Error> {
        let fid = self.walk(path).await?;
        let stat = self.getattr(fid).await;
        self.clunk_quietly(fid).await;
        stat
    }

    /// Opens a path; appends go to the end whatever the offset.
    pub async fn open(&self, path: &str, mode: OpenMode) -> Result<File, Error> {
        let fid = self.walk(path).await?;
        let flags = match mode {
            OpenMode::Read => 0,
            OpenMode::Write => O_WRONLY | O_APPEND,
            OpenMode::ReadWrite => O_RDWR | O_APPEND,
        };
        match self.inner.conn.rpc(Body::Tlopen { fid, flags }).await {
            Ok(Body::Rlopen { qid, iounit }) => Ok(File {
                client: self.clone(),
                fid,
                qid,
                iounit,
                closed: false,
            }),
            Ok(other) => {
                self.clunk_quietly(fid).await;
                Err(unexpected("lopen", &other))
            }
            Err(e) => {
                self.clunk_quietly(fid).await;
                Err(e)
            }
        }
    }

    /// Walks a new fid from the root to `path`.
    async fn walk(&self, path: &str) -> Result<u32, Error> {
        let names = components(path)?;
        let fid = self.take_fid().await?;
        let wnames: Vec<String> = names.iter().map(|s| String::from(*s)).collect();
        let body = Body::Twalk {
            fid: ROOT_FID,
            newfid: fid,
            wnames,
        };

        let reply = self.inner.conn.rpc(body).await;
        let walked = match reply {
            Ok(Body::Rwalk { wqids }) => wqids.len(),
            Ok(other) => return Err(unexpected("walk", &other)),
            Err(e) => {
                // Refused: the server made no fid. Timed out: the fid's fate
                // is unknown, so its number is never used again.
                if matches!(e, Error::Server { .. }) {
                    self.give_back(fid);
                }
                return Err(e);
            }
        };
        if walked == names.len() {
            return Ok(fid);
        }

        // A partial walk created no fid; ask again for the step that failed
        // to learn the server's real reason.
        self.give_back(fid);
        if walked > names.len() {
            return Err(Error::Protocol(format!("walk answered {walked} qids")));
        }
        Err(self.why_walk_stopped(&names, walked).await)
    }

    async fn why_walk_stopped(&self, names: &[&str], walked: usize) -> Error {
        let fid = match self.take_fid().await {
            Ok(fid) => fid,
            Err(e) => return e,
        };
        let prefix = names[..walked].iter().map(|s| String::from(*s)).collect();
        let to_prefix = Body::Twalk {
            fid: ROOT_FID,
            newfid: fid,
            wnames: prefix,
        };
        if let Err(e) = self.inner.conn.rpc(to_prefix).await {
            if matches!(e, Error::Server { .. }) {
                self.give_back(fid);
            }
            return e;
        }

        let step = Body::Twalk {
            fid,
            newfid: fid,
            wnames: vec![String::from(names[walked])],
        };
        let error = match self.inner.conn.rpc(step).await {
            Err(e) => e,
            // It exists after all (the namespace changed): report what the
            // first walk saw.
            Ok(_) => Error::server("walk", cohesix_ninep::error::errno::ENOENT),
        };
        self.clunk_quietly(fid).await;
        error
    }

    async fn list(&self, fid: u32) -> Result<Vec<String>, Error> {
        match self.inner.conn.rpc(Body::Tlopen { fid, flags: 0 }).await? {
            Body::Rlopen { .. } => {}
            other => return Err(unexpected("lopen", &other)),
        }

        let count = self.msize().saturating_sub(RREAD_OVERHEAD);
        let mut names = Vec::new();
        let mut offset = 0u64;
        // Each page moves the cookie forward or ends the loop; the entry
        // bound ends it on a server that pages forever.
        while names.len() <= MAX_LS_ENTRIES {
            let entries = match self
                .inner
                .conn
                .rpc(Body::Treaddir { fid, offset, count })
                .await?
            {
                Body::Rreaddir { entries } => entries,
                other => return Err(unexpected("readdir", &other)),
            };
            let Some(last) = entries.last() else {
                return Ok(names);
            };
            if last.offset <= offset {
                return Err(Error::Protocol(String::from(
                    "readdir cookie did not advance",
                )));
            }
            offset = last.offset;
            names.extend(entries.into_iter().map(|e| e.name));
        }
        let len = names.len();
        Err(Error::TooBig {
            what: "directory listing",
            len,
            limit: MAX_LS_ENTRIES,
        })
    }

    async fn getattr(&self, fid: u32) -> Result<NodeStat, Error> {
        let body = Body::Tgetattr {
            fid,
            request_mask: GETATTR_BASIC,
        };
        match self.inner.conn.rpc(body).await? {
            Body::Rgetattr { attr } => Ok(node_stat(&attr)),
            other => Err(unexpected("getattr", &other)),
        }
    }

    /// Clunks a fid; failures are only logged because the caller already
    /// has its answer (and an append must not look failed after it landed).
    async fn clunk_quietly(&self, fid: u32) {
        match self.inner.conn.rpc(Body::Tclunk { fid }).await {
            // A refused clunk still frees the fid, per 9P.
            Ok(_) | Err(Error::Server { .. }) => self.give_back(fid),
            Err(e) => tracing::debug!(fid, error = %e, "clunk failed; fid number retired"),
        }
    }

    async fn take_fid(&self) -> Result<u32, Error> {
        let after = self.inner.timeout;
        let permit = tokio::time::timeout(after, self.inner.fid_permits.acquire())
            .await
            .map_err(|_| Error::Timeout { op: "fid", after })?;
        // The semaphore is never closed, so acquiring cannot fail.
        let Ok(permit) = permit else {
            return Err(Error::FidsExhausted);
        };
        let fid = self.fids().take()?;
        // The permit now belongs to the fid; give_back returns it.
        permit.forget();
        Ok(fid)
    }

    fn give_back(&self, fid: u32) {
        self.fids().free.push(fid);
        self.inner.fid_permits.add_permits(1);
    }

    fn fids(&self) -> std::sync::MutexGuard<'_, Fids> {
        // Poisoning cannot leave the pool inconsistent: each update is one
        // push or pop.
        self.inner
            .fids
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl File {
    pub fn qid(&self) -> Qid {
        self.qid
    }

    /// The server's advice for the largest read or write; never 0.
    pub fn iounit(&self) -> u32 {
        let fallback = self.client.msize().saturating_sub(IOHDRSZ);
        if self.iounit == 0 {
            fallback
        } else {
            self.iounit.min(fallback)
        }
    }

    /// One read of at most `count` bytes (capped at the iounit).
    pub async fn read_at(&self, offset: u64, count: u32) -> Result<Vec<u8>, Error> {
        let count = count.min(self.iounit());
        let body = Body::Tread {
            fid: self.fid,
            offset,
            count,
        };
        match self.client.inner.conn.rpc(body).await? {
            Body::Rread { data } if data.len() <= count as usize => Ok(data),
            Body::Rread { data } => Err(Error::Protocol(format!(
                "read of {count} answered {} bytes",
                data.len()
            ))),
            other => Err(unexpected("read", &other)),
        }
    }

    /// One write; returns the bytes the server took.
    pub async fn write_at(&self, offset: u64, data: &[u8]) -> Result<u32, Error> {
        let body = Body::Twrite {
            fid: self.fid,
            offset,
            data: data.to_vec(),
        };
        match self.client.inner.conn.rpc(body).await? {
            Body::Rwrite { count } => Ok(count),
            other => Err(unexpected("write", &other)),
        }
    }

    /// Reads from offset 0 until a short or empty read or `max_bytes`.
    pub async fn read_to_end(&self, max_bytes: usize) -> Result<Vec<u8>, Error> {
        let mut out = Vec::new();
        // Every pass adds at least one byte or ends, so at most max_bytes
        // passes.
        while out.len() < max_bytes {
            let want = (max_bytes - out.len()).min(self.iounit() as usize) as u32;
            let data = self.read_at(out.len() as u64, want).await?;
            let short = data.len() < want as usize;
            out.extend_from_slice(&data);
            if short {
                break;
            }
        }
        Ok(out)
    }

    /// Clunks the fid.
    pub async fn close(mut self) -> Result<(), Error> {
        self.closed = true;
        let result = self
            .client
            .inner
            .conn
            .rpc(Body::Tclunk { fid: self.fid })
            .await;
        if matches!(result, Ok(_) | Err(Error::Server { .. })) {
            self.client.give_back(self.fid);
        }
        result.map(drop)
    }

    async fn close_quietly(mut self) {
        self.closed = true;
        self.client.clunk_quietly(self.fid).await;
    }
}

impl Drop for File {
    fn drop(&mut self) {
        if self.closed {
            return;
        }
        // Without a runtime there is no way to send the clunk; the fid
        // then lives until the connection ends.
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            let client = self.client.clone();
            let fid = self.fid;
            runtime.spawn(async move { client.clunk_quietly(fid).await });
        }
    }
}

/// Sends `Tversion` and reads `Rversion` before the tasks start.
async fn negotiate(
    read: &mut tokio::net::tcp::OwnedReadHalf,
    write: &mut tokio::net::tcp::OwnedWriteHalf,
    msize: u32,
) -> Result<u32, Error> {
    let mut frame = Vec::new();
    let hello = Body::Tversion {
        msize,
        version: String::from(VERSION_9P2000_L),
    };
    encode(&Message::new(NOTAG, hello), &mut frame)
        .map_err(|e| Error::Protocol(format!("version: {e}")))?;
    write.write_all(&frame).await?;

    let reply = read_frame(read, msize.max(256))
        .await
        .map_err(Error::Protocol)?;
    match decode(&reply)
        .map_err(|e| Error::Protocol(format!("version reply: {e}")))?
        .body
    {
        Body::Rversion {
            msize: granted,
            version,
        } if version == VERSION_9P2000_L => {
            if granted > msize || granted < 256 {
                return Err(Error::Protocol(format!("server granted msize {granted}")));
            }
            Ok(granted)
        }
        Body::Rversion { version, .. } => Err(Error::Protocol(format!(
            "server speaks {version:?}, not 9P2000.L"
        ))),
        Body::Rlerror { ecode } => Err(Error::server("version", ecode)),
        other => Err(unexpected("version", &other)),
    }
}

async fn bounded<T>(
    config: &ClientConfig,
    op: &'static str,
    fut: impl std::future::Future<Output = T>,
) -> Result<T, Error> {
    tokio::time::timeout(config.timeout, fut)
        .await
        .map_err(|_| Error::Timeout {
            op,
            after: config.timeout,
        })
}

fn unexpected(op: &str, body: &Body) -> Error {
    Error::Protocol(format!("{op} answered with {}", body.op_name()))
}

/// The components of an absolute or root-relative path; empty components
/// (`//`, a trailing `/`) are skipped, `.` and `..` are refused.
pub(crate) fn components(path: &str) -> Result<Vec<&str>, Error> {
    let bad = |why| Error::BadPath {
        path: String::from(path),
        why,
    };
    let names: Vec<&str> = path.split('/').filter(|c| !c.is_empty()).collect();
    if names.len() > MAX_WELEM {
        return Err(bad("more than 16 components"));
    }
    for name in &names {
        if *name == "." || *name == ".." {
            return Err(bad("`.` and `..` are not walked"));
        }
        if name.contains('\0') {
            return Err(bad("NUL in a component"));
        }
    }
    Ok(names)
}

fn node_stat(attr: &Attr) -> NodeStat {
    let mtime_ms = attr
        .mtime_sec
        .saturating_mul(1000)
        .saturating_add(attr.mtime_nsec / 1_000_000);
    NodeStat {
        qid: attr.qid,
        mode: attr.mode,
        size: attr.size,
        mtime_ms,
    }
}

#[cfg(test)]
mod tests {
    use super::components;

    #[test]
    fn paths_split_into_components() {
        assert_eq!(components("/").unwrap(), Vec::<&str>::new());
        assert_eq!(components("/proc/boot").unwrap(), ["proc", "boot"]);
        assert_eq!(components("proc//boot/").unwrap(), ["proc", "boot"]);
    }

    #[test]
    fn dot_dot_and_nul_are_bad_paths() {
        assert!(components("/proc/../x").is_err());
        assert!(components("/./x").is_err());
        assert!(components("/a\0b").is_err());
        assert!(components(&"/a".repeat(17)).is_err());
    }
}
