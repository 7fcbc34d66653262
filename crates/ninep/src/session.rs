//! The per-connection 9P2000.L session engine: frames in, frames out.
//!
//! A [`Session`] owns everything that is pure protocol for one connection:
//! version and msize negotiation, the fid table, walk rules, auth fids and
//! readdir cookies. It asks a [`Backend`] about paths and never decides what
//! a path means. Every refusal it answers is reported in the [`Outcome`] so
//! the caller can count and log it.
//!
//! It does no I/O, keeps no clock and does not bound the tags in flight:
//! the transport reads whole frames, caps concurrent tags and writes the
//! replies. Requests are answered one at a time and in full, so `Tflush`
//! never has anything to cancel.

use crate::backend::{qid_type, AttachRequest, Backend, DirEntry, NodeStat, OpenMode, Qid};
use crate::codec::{decode, encode, peek_header, DecodeErrorKind};
use crate::error::{errno, ErrorClass, NsError};
use crate::msg::{
    dt, op_name, ty, Attr, Body, Dirent, Message, StatFs, GETATTR_BASIC, IOHDRSZ, NOFID,
    RREAD_OVERHEAD, V9FS_MAGIC, VERSION_9P2000_L, VERSION_UNKNOWN,
};
use alloc::collections::BTreeMap;
use alloc::string::String;
use alloc::vec::Vec;

/// The smallest msize the engine agrees to: below it, a walk reply or a
/// directory entry with a full-length name may not fit.
pub const MIN_MSIZE: u32 = 256;

/// Most bytes an auth fid collects; a ticket is far shorter.
pub const MAX_AUTH_BYTES: usize = 512;

/// Per-session bounds, taken from the manifest by the caller.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Largest frame either side may send; the client may ask for less.
    pub msize: u32,
    /// Live fids (auth fids included) one session may hold.
    pub max_fids: usize,
    /// Most path components below the root a fid may reach.
    pub walk_depth: usize,
    /// Longest path component in bytes.
    pub max_component_bytes: usize,
}

impl Default for Limits {
    /// The upstream defaults of SURFACES §2.
    fn default() -> Limits {
        Limits {
            msize: 8192,
            max_fids: 64,
            walk_depth: 8,
            max_component_bytes: 255,
        }
    }
}

/// Who decided to refuse a request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RefusedBy {
    /// The engine itself: protocol rules and session bounds.
    Engine,
    /// The backend: policy, missing paths, quotas.
    Backend,
}

/// A request that was answered with an error.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Refusal {
    pub class: ErrorClass,
    /// The errno sent in `Rlerror` (for a refused version, which answers
    /// `Rversion "unknown"`, the errno it stands for).
    pub errno: u32,
    /// A short stable tag for logs (`walk-too-deep`, `fid-in-use`, ...).
    pub detail: &'static str,
    pub by: RefusedBy,
}

impl Refusal {
    fn engine(class: ErrorClass, errno: u32, detail: &'static str) -> Refusal {
        Refusal {
            class,
            errno,
            detail,
            by: RefusedBy::Engine,
        }
    }

    /// A refusal whose errno is the class's usual one.
    fn of(class: ErrorClass, detail: &'static str) -> Refusal {
        Refusal::engine(class, class.errno(), detail)
    }

    fn backend(e: NsError) -> Refusal {
        Refusal {
            class: e.class,
            errno: e.class.errno(),
            detail: e.detail,
            by: RefusedBy::Backend,
        }
    }

    fn invalid(detail: &'static str) -> Refusal {
        Refusal::of(ErrorClass::Invalid, detail)
    }

    fn bad_fid() -> Refusal {
        Refusal::of(ErrorClass::Closed, "unknown-fid")
    }

    fn is_dir() -> Refusal {
        Refusal::engine(ErrorClass::Invalid, errno::EISDIR, "is-a-directory")
    }

    fn not_dir() -> Refusal {
        Refusal::engine(ErrorClass::Invalid, errno::ENOTDIR, "not-a-directory")
    }
}

/// What handling one frame did, for the caller's counters and logs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Outcome {
    /// The request's tag, when its header was readable.
    pub tag: Option<u16>,
    /// The operation named by the frame's type (`walk`, `read`, ...).
    pub op: &'static str,
    /// Set when the answer was an error (or a partial walk).
    pub refusal: Option<Refusal>,
    /// The frame could not be answered; the connection must be closed.
    pub close: bool,
}

/// A fid and what it names.
enum Fid<O> {
    /// Collects ticket bytes until a `Tattach` names it.
    Auth {
        ticket: Vec<u8>,
    },
    Node(Node<O>),
}

struct Node<O> {
    /// Index into `Session::attached`.
    slot: usize,
    path: String,
    qid: Qid,
    open: Opened<O>,
}

enum Opened<O> {
    No,
    File {
        open: O,
        mode: OpenMode,
    },
    /// Directories are listed by the engine from one backend snapshot.
    /// `Tlopen` takes the first one, so a directory the session may walk
    /// but not list is refused at open(2), where every tool reports it,
    /// and not at getdents(2), where some (busybox `ls`) print nothing.
    Dir {
        listing: Option<Vec<DirEntry>>,
        /// The snapshot is the one `Tlopen` took and no readdir used yet.
        from_open: bool,
    },
}

/// One backend session and how many fids still name it.
struct Attached<S> {
    session: S,
    fids: usize,
}

/// The state of one 9P connection.
pub struct Session<B: Backend> {
    limits: Limits,
    /// Set by a successful `Tversion`; nothing else is answered before.
    msize: Option<u32>,
    fids: BTreeMap<u32, Fid<B::Open>>,
    attached: Vec<Option<Attached<B::Session>>>,
}

type Reply = Result<Body, Refusal>;

impl<B: Backend> Session<B> {
    pub fn new(limits: Limits) -> Session<B> {
        Session {
            limits,
            msize: None,
            fids: BTreeMap::new(),
            attached: Vec::new(),
        }
    }

    /// The negotiated msize, once `Tversion` succeeded.
    pub fn msize(&self) -> Option<u32> {
        self.msize
    }

    /// Live fids, auth fids included.
    pub fn fid_count(&self) -> usize {
        self.fids.len()
    }

    /// Backend sessions still attached.
    pub fn attached_count(&self) -> usize {
        self.attached.iter().filter(|a| a.is_some()).count()
    }

    /// Answers one whole frame, appending the reply frame (if any) to `out`.
    pub fn handle(&mut self, backend: &mut B, frame: &[u8], out: &mut Vec<u8>) -> Outcome {
        let Some(header) = peek_header(frame) else {
            return Outcome {
                tag: None,
                op: "unknown",
                refusal: Some(Refusal::invalid("short-frame")),
                close: true,
            };
        };
        let op = op_name(header.ty);

        let cap = self.msize.unwrap_or(self.limits.msize);
        let too_big = u32::try_from(frame.len()).map_or(true, |len| len > cap);
        let (body, refusal) = if too_big {
            refuse(Refusal::of(ErrorClass::TooBig, "frame-too-big"))
        } else {
            match decode(frame) {
                Ok(msg) => self.dispatch(backend, msg.body),
                Err(e) if e.tag.is_some() => refuse(Refusal::invalid(decode_detail(&e.kind))),
                Err(_) => {
                    let refusal = Some(Refusal::invalid("broken-framing"));
                    return Outcome {
                        tag: None,
                        op,
                        refusal,
                        close: true,
                    };
                }
            }
        };

        let refusal = put_reply(out, header.tag, body, refusal);
        Outcome {
            tag: Some(header.tag),
            op,
            refusal,
            close: false,
        }
    }

    /// Clunks every fid and detaches every backend session; call it when
    /// the connection ends. The session is unversioned afterwards.
    pub fn shutdown(&mut self, backend: &mut B) {
        self.reset(backend);
        self.msize = None;
    }

    fn reset(&mut self, b: &mut B) {
        let fids = core::mem::take(&mut self.fids);
        for fid in fids.into_values() {
            if let Fid::Node(Node {
                slot,
                open: Opened::File { open, .. },
                ..
            }) = fid
            {
                if let Some(Some(a)) = self.attached.get(slot) {
                    b.clunk(a.session, open);
                }
            }
        }
        for a in core::mem::take(&mut self.attached).into_iter().flatten() {
            b.detach(a.session);
        }
    }

    fn dispatch(&mut self, b: &mut B, body: Body) -> (Body, Option<Refusal>) {
        if let Body::Tversion { msize, version } = body {
            return self.version(b, msize, &version);
        }
        let Some(msize) = self.msize else {
            let r = Refusal::engine(ErrorClass::Invalid, errno::EPROTO, "version-first");
            return refuse(r);
        };

        let reply = match body {
            Body::Tauth { afid, .. } => self.auth(afid),
            Body::Tattach {
                fid,
                afid,
                uname,
                aname,
                n_uname,
            } => self.attach(b, fid, afid, &uname, &aname, n_uname),
            Body::Twalk {
                fid,
                newfid,
                wnames,
            } => return self.walk(b, fid, newfid, &wnames),
            Body::Tlopen { fid, flags } => self.lopen(b, fid, flags, msize),
            Body::Tread { fid, offset, count } => self.read(
                b,
                fid,
                offset,
                count.min(msize.saturating_sub(RREAD_OVERHEAD)),
            ),
            Body::Twrite { fid, offset, data } => self.write(b, fid, offset, &data),
            Body::Treaddir { fid, offset, count } => self.readdir(
                b,
                fid,
                offset,
                count.min(msize.saturating_sub(RREAD_OVERHEAD)),
            ),
            Body::Tgetattr { fid, .. } => self.getattr(b, fid),
            Body::Tstatfs { fid } => self.statfs(fid),
            Body::Tflush { .. } => Ok(Body::Rflush),
            Body::Tclunk { fid } => self.clunk(b, fid).map(|()| Body::Rclunk),
            Body::Tremove { fid } => self.remove(b, fid),
            Body::Tfsync { fid, .. } => self.fsync(fid),
            Body::Tsetattr {
                fid, valid, size, ..
            } => self.setattr(fid, valid, size),
            other => Err(refuse_type(other.ty())),
        };
        match reply {
            Ok(body) => (body, None),
            Err(r) => refuse(r),
        }
    }

    fn version(&mut self, b: &mut B, client_msize: u32, version: &str) -> (Body, Option<Refusal>) {
        // Tversion aborts everything the connection had, whatever it asks.
        self.reset(b);
        self.msize = None;

        let msize = client_msize.min(self.limits.msize);
        if msize < MIN_MSIZE {
            return refuse(Refusal::invalid("msize-too-small"));
        }
        if version != VERSION_9P2000_L {
            let refusal = Refusal::engine(ErrorClass::Invalid, errno::EPROTO, "unknown-version");
            let body = Body::Rversion {
                msize,
                version: String::from(VERSION_UNKNOWN),
            };
            return (body, Some(refusal));
        }

        self.msize = Some(msize);
        (
            Body::Rversion {
                msize,
                version: String::from(VERSION_9P2000_L),
            },
            None,
        )
    }

    fn auth(&mut self, afid: u32) -> Reply {
        self.check_new_fid(afid)?;
        self.fids.insert(afid, Fid::Auth { ticket: Vec::new() });
        Ok(Body::Rauth {
            aqid: Qid {
                ty: qid_type::AUTH,
                version: 0,
                path: 0,
            },
        })
    }

    fn attach(
        &mut self,
        b: &mut B,
        fid: u32,
        afid: u32,
        uname: &str,
        aname: &str,
        n_uname: u32,
    ) -> Reply {
        self.check_new_fid(fid)?;
        let auth = match afid {
            NOFID => None,
            afid => match self.fids.get(&afid) {
                Some(Fid::Auth { ticket }) => Some(ticket.as_slice()),
                Some(Fid::Node(_)) => return Err(Refusal::invalid("not-an-auth-fid")),
                None => return Err(Refusal::bad_fid()),
            },
        };

        let req = AttachRequest {
            uname,
            aname,
            auth,
            n_uname,
        };
        let session = b.attach(req).map_err(Refusal::backend)?;
        let root = match b.stat(session, "/") {
            Ok(root) => root,
            Err(e) => {
                b.detach(session);
                return Err(Refusal::backend(e));
            }
        };

        let slot = self.add_attached(session);
        let node = Node {
            slot,
            path: String::from("/"),
            qid: root.qid,
            open: Opened::No,
        };
        self.fids.insert(fid, Fid::Node(node));
        Ok(Body::Rattach { qid: root.qid })
    }

    fn walk(
        &mut self,
        b: &mut B,
        fid: u32,
        newfid: u32,
        wnames: &[String],
    ) -> (Body, Option<Refusal>) {
        let plan = match self.plan_walk(fid, newfid, wnames) {
            Ok(plan) => plan,
            Err(r) => return refuse(r),
        };
        let (slot, mut path, mut qid) = plan;
        let session = match self.session_at(slot) {
            Ok(s) => s,
            Err(r) => return refuse(r),
        };

        let mut wqids = Vec::with_capacity(wnames.len());
        let mut failure = None;
        for name in wnames {
            if qid.ty & qid_type::DIR == 0 {
                failure = Some(Refusal::not_dir());
                break;
            }
            let child = join(&path, name);
            match b.stat(session, &child) {
                Ok(stat) => {
                    path = child;
                    qid = stat.qid;
                    wqids.push(qid);
                }
                Err(e) => {
                    failure = Some(Refusal::backend(e));
                    break;
                }
            }
        }

        // A failure at the first step is an error; later ones answer the
        // qids walked so far and create no fid, as 9P requires.
        match failure {
            Some(r) if wqids.is_empty() => return refuse(r),
            Some(r) => return (Body::Rwalk { wqids }, Some(r)),
            None => {}
        }
        self.place_walked(fid, newfid, slot, path, qid);
        (Body::Rwalk { wqids }, None)
    }

    /// Checks a walk before any backend call: returns where it starts.
    fn plan_walk(
        &self,
        fid: u32,
        newfid: u32,
        wnames: &[String],
    ) -> Result<(usize, String, Qid), Refusal> {
        let node = self.node(fid)?;
        if !matches!(node.open, Opened::No) {
            return Err(Refusal::invalid("fid-open"));
        }
        if newfid != fid {
            self.check_new_fid(newfid)?;
        }
        for name in wnames {
            self.check_name(name)?;
        }
        if depth(&node.path).saturating_add(wnames.len()) > self.limits.walk_depth {
            return Err(Refusal::invalid("walk-too-deep"));
        }
        Ok((node.slot, node.path.clone(), node.qid))
    }

    fn place_walked(&mut self, fid: u32, newfid: u32, slot: usize, path: String, qid: Qid) {
        if newfid == fid {
            if let Some(Fid::Node(node)) = self.fids.get_mut(&fid) {
                node.path = path;
                node.qid = qid;
            }
            return;
        }
        self.fids.insert(
            newfid,
            Fid::Node(Node {
                slot,
                path,
                qid,
                open: Opened::No,
            }),
        );
        if let Some(Some(a)) = self.attached.get_mut(slot) {
            a.fids = a.fids.saturating_add(1);
        }
    }

    fn check_name(&self, name: &str) -> Result<(), Refusal> {
        if name.len() > self.limits.max_component_bytes {
            let r = Refusal::engine(ErrorClass::Invalid, errno::ENAMETOOLONG, "name-too-long");
            return Err(r);
        }
        let bad = name.is_empty() || name == "." || name == ".." || name.contains(['/', '\0']);
        if bad {
            return Err(Refusal::invalid("invalid-name"));
        }
        Ok(())
    }

    fn lopen(&mut self, b: &mut B, fid: u32, flags: u32, msize: u32) -> Reply {
        let session = self.session_of(fid)?;
        let node = self.node_mut(fid)?;
        if !matches!(node.open, Opened::No) {
            return Err(Refusal::invalid("already-open"));
        }

        let mode = OpenMode::from_lopen_flags(flags);
        node.open = if node.qid.ty & qid_type::DIR != 0 {
            if mode.writes() {
                return Err(Refusal::is_dir());
            }
            let listing = b.readdir(session, &node.path).map_err(Refusal::backend)?;
            Opened::Dir {
                listing: Some(listing),
                from_open: true,
            }
        } else {
            let open = b
                .open(session, &node.path, mode)
                .map_err(Refusal::backend)?;
            Opened::File { open, mode }
        };
        Ok(Body::Rlopen {
            qid: node.qid,
            iounit: msize.saturating_sub(IOHDRSZ),
        })
    }

    fn read(&mut self, b: &mut B, fid: u32, offset: u64, count: u32) -> Reply {
        if let Some(Fid::Auth { .. }) = self.fids.get(&fid) {
            // The ticket travels in, never out.
            return Ok(Body::Rread { data: Vec::new() });
        }
        let session = self.session_of(fid)?;
        let node = self.node_mut(fid)?;
        let open = match &mut node.open {
            Opened::No => return Err(Refusal::invalid("not-open")),
            Opened::Dir { .. } => return Err(Refusal::is_dir()),
            Opened::File { mode, .. } if !mode.reads() => {
                return Err(Refusal::invalid("not-open-for-read"))
            }
            Opened::File { open, .. } => open,
        };

        let mut data = Vec::new();
        b.read(session, open, offset, count, &mut data)
            .map_err(Refusal::backend)?;
        // A backend that overfills must not push the reply past msize.
        data.truncate(usize::try_from(count).unwrap_or(usize::MAX));
        Ok(Body::Rread { data })
    }

    fn write(&mut self, b: &mut B, fid: u32, offset: u64, data: &[u8]) -> Reply {
        let taken = u32::try_from(data.len())
            .map_err(|_| Refusal::of(ErrorClass::TooBig, "write-too-big"))?;
        if let Some(Fid::Auth { ticket }) = self.fids.get_mut(&fid) {
            if ticket.len().saturating_add(data.len()) > MAX_AUTH_BYTES {
                return Err(Refusal::of(ErrorClass::TooBig, "ticket-too-long"));
            }
            ticket.extend_from_slice(data);
            return Ok(Body::Rwrite { count: taken });
        }
        let session = self.session_of(fid)?;
        let node = self.node_mut(fid)?;
        let open = match &mut node.open {
            Opened::No => return Err(Refusal::invalid("not-open")),
            Opened::Dir { .. } => return Err(Refusal::is_dir()),
            Opened::File { mode, .. } if !mode.writes() => {
                return Err(Refusal::invalid("not-open-for-write"))
            }
            Opened::File { open, .. } => open,
        };

        let count = b
            .write(session, open, offset, data)
            .map_err(Refusal::backend)?;
        Ok(Body::Rwrite {
            count: count.min(taken),
        })
    }

    fn readdir(&mut self, b: &mut B, fid: u32, offset: u64, count: u32) -> Reply {
        let session = self.session_of(fid)?;
        let node = self.node_mut(fid)?;
        let (listing, from_open) = match &mut node.open {
            Opened::No => return Err(Refusal::invalid("not-open")),
            Opened::File { .. } => return Err(Refusal::not_dir()),
            Opened::Dir { listing, from_open } => (listing, core::mem::take(from_open)),
        };

        // Offset 0 starts a fresh listing (the first one reuses the snapshot
        // `Tlopen` just took); later cookies page through the snapshot taken
        // then, so entries never shift under a reader.
        if (offset == 0 && !from_open) || listing.is_none() {
            *listing = Some(b.readdir(session, &node.path).map_err(Refusal::backend)?);
        }
        let entries = listing.as_deref().unwrap_or(&[]);
        let start = usize::try_from(offset).unwrap_or(usize::MAX);
        let packed = pack_dirents(entries, start, usize::try_from(count).unwrap_or(usize::MAX));

        if packed.is_empty() && start < entries.len() {
            return Err(Refusal::invalid("count-too-small"));
        }
        Ok(Body::Rreaddir { entries: packed })
    }

    fn getattr(&mut self, b: &mut B, fid: u32) -> Reply {
        let session = self.session_of(fid)?;
        let node = self.node(fid)?;
        let stat = b.stat(session, &node.path).map_err(Refusal::backend)?;
        Ok(Body::Rgetattr {
            attr: attr_of(&stat),
        })
    }

    fn statfs(&self, fid: u32) -> Reply {
        if !self.fids.contains_key(&fid) {
            return Err(Refusal::bad_fid());
        }
        let namelen = u32::try_from(self.limits.max_component_bytes).unwrap_or(u32::MAX);
        let statfs = StatFs {
            fs_type: V9FS_MAGIC,
            bsize: 4096,
            namelen,
            ..StatFs::default()
        };
        Ok(Body::Rstatfs { statfs })
    }

    fn clunk(&mut self, b: &mut B, fid: u32) -> Result<(), Refusal> {
        let node = match self.fids.remove(&fid) {
            None => return Err(Refusal::bad_fid()),
            Some(Fid::Auth { .. }) => return Ok(()),
            Some(Fid::Node(node)) => node,
        };
        let Some(Some(attached)) = self.attached.get_mut(node.slot) else {
            return Ok(());
        };

        if let Opened::File { open, .. } = node.open {
            b.clunk(attached.session, open);
        }
        attached.fids = attached.fids.saturating_sub(1);
        // No fid can reach a backend session any more: end it now, so that
        // attach-clunk loops cannot pile up sessions.
        if attached.fids == 0 {
            b.detach(attached.session);
            self.attached[node.slot] = None;
        }
        Ok(())
    }

    fn remove(&mut self, b: &mut B, fid: u32) -> Reply {
        // 9P clunks the fid even when the remove fails.
        self.clunk(b, fid)?;
        Err(Refusal::engine(
            ErrorClass::Permission,
            errno::EPERM,
            "remove-refused",
        ))
    }

    fn fsync(&self, fid: u32) -> Reply {
        match self.node(fid)?.open {
            Opened::No => Err(Refusal::invalid("not-open")),
            _ => Ok(Body::Rfsync),
        }
    }

    /// Accepts only a truncate-to-zero (with time updates) of an append-only
    /// file: shells send it for `echo x > ctl`, and an append-only file has
    /// nothing to truncate. Every other attribute change is refused.
    fn setattr(&self, fid: u32, valid: u32, size: u64) -> Reply {
        const SIZE: u32 = 0x8;
        const TIMES: u32 = 0x10 | 0x20 | 0x40 | 0x80 | 0x100;
        let node = self.node(fid)?;
        let truncate_only = valid & !(SIZE | TIMES) == 0 && (valid & SIZE == 0 || size == 0);
        if node.qid.ty & qid_type::APPEND != 0 && truncate_only {
            return Ok(Body::Rsetattr);
        }
        Err(Refusal::engine(
            ErrorClass::Permission,
            errno::EPERM,
            "setattr-refused",
        ))
    }

    fn check_new_fid(&self, fid: u32) -> Result<(), Refusal> {
        if fid == NOFID {
            return Err(Refusal::invalid("nofid"));
        }
        if self.fids.contains_key(&fid) {
            return Err(Refusal::invalid("fid-in-use"));
        }
        if self.fids.len() >= self.limits.max_fids {
            return Err(Refusal::of(ErrorClass::Busy, "too-many-fids"));
        }
        Ok(())
    }

    fn node(&self, fid: u32) -> Result<&Node<B::Open>, Refusal> {
        match self.fids.get(&fid) {
            Some(Fid::Node(node)) => Ok(node),
            Some(Fid::Auth { .. }) => Err(Refusal::invalid("auth-fid")),
            None => Err(Refusal::bad_fid()),
        }
    }

    fn node_mut(&mut self, fid: u32) -> Result<&mut Node<B::Open>, Refusal> {
        match self.fids.get_mut(&fid) {
            Some(Fid::Node(node)) => Ok(node),
            Some(Fid::Auth { .. }) => Err(Refusal::invalid("auth-fid")),
            None => Err(Refusal::bad_fid()),
        }
    }

    fn session_of(&self, fid: u32) -> Result<B::Session, Refusal> {
        self.session_at(self.node(fid)?.slot)
    }

    fn session_at(&self, slot: usize) -> Result<B::Session, Refusal> {
        match self.attached.get(slot) {
            Some(Some(a)) => Ok(a.session),
            // Unreachable while the fid counts are right; answer as a dead fid.
            _ => Err(Refusal::of(ErrorClass::Closed, "session-gone")),
        }
    }

    fn add_attached(&mut self, session: B::Session) -> usize {
        let entry = Some(Attached { session, fids: 1 });
        match self.attached.iter().position(Option::is_none) {
            Some(slot) => {
                self.attached[slot] = entry;
                slot
            }
            None => {
                self.attached.push(entry);
                self.attached.len() - 1
            }
        }
    }
}

fn refuse(r: Refusal) -> (Body, Option<Refusal>) {
    (Body::Rlerror { ecode: r.errno }, Some(r))
}

/// Encodes the reply; a reply that cannot be encoded (only a backend handing
/// out absurd names can cause one) becomes `EIO`.
fn put_reply(out: &mut Vec<u8>, tag: u16, body: Body, r: Option<Refusal>) -> Option<Refusal> {
    if encode(&Message::new(tag, body), out).is_ok() {
        return r;
    }
    let r = Refusal::engine(ErrorClass::Invalid, errno::EIO, "reply-unencodable");
    // An Rlerror always encodes.
    let _ = encode(&Message::new(tag, Body::Rlerror { ecode: r.errno }), out);
    Some(r)
}

/// How the engine refuses a request type it does not serve.
fn refuse_type(t: u8) -> Refusal {
    use ErrorClass::{Invalid, Permission, Unsupported};
    match t {
        ty::TSETATTR => Refusal::engine(Permission, errno::EPERM, "setattr-refused"),
        ty::TXATTRWALK | ty::TXATTRCREATE | ty::TLOCK | ty::TGETLOCK => {
            Refusal::engine(Unsupported, errno::EOPNOTSUPP, "unsupported")
        }
        ty::TLCREATE
        | ty::TSYMLINK
        | ty::TMKNOD
        | ty::TRENAME
        | ty::TLINK
        | ty::TMKDIR
        | ty::TRENAMEAT
        | ty::TUNLINKAT => Refusal::engine(Permission, errno::EROFS, "read-only-namespace"),
        ty::TREADLINK => Refusal::engine(Invalid, errno::EINVAL, "not-a-symlink"),
        _ => Refusal::engine(Unsupported, errno::EOPNOTSUPP, "unknown-type"),
    }
}

fn decode_detail(kind: &DecodeErrorKind) -> &'static str {
    match kind {
        DecodeErrorKind::BadUtf8 { .. } => "bad-utf8",
        DecodeErrorKind::TooManyWalkElements { .. } => "walk-too-long",
        _ => "malformed-frame",
    }
}

/// Components below the root: `/` is 0, `/a/b` is 2.
fn depth(path: &str) -> usize {
    path.split('/').filter(|c| !c.is_empty()).count()
}

fn join(dir: &str, name: &str) -> String {
    let mut path = String::with_capacity(dir.len() + 1 + name.len());
    path.push_str(dir);
    if !dir.ends_with('/') {
        path.push('/');
    }
    path.push_str(name);
    path
}

/// Takes entries from `start` on while they fit in `count` bytes; each
/// entry's cookie is its index plus one.
fn pack_dirents(entries: &[DirEntry], start: usize, count: usize) -> Vec<Dirent> {
    let mut packed = Vec::new();
    let mut used = 0usize;
    for (index, entry) in entries.iter().enumerate().skip(start) {
        let dirent = Dirent {
            qid: entry.qid,
            offset: u64::try_from(index).map_or(u64::MAX, |i| i.saturating_add(1)),
            kind: if entry.qid.ty & qid_type::DIR != 0 {
                dt::DIR
            } else {
                dt::REG
            },
            name: entry.name.clone(),
        };
        let next = used.saturating_add(dirent.wire_len());
        if next > count {
            break;
        }
        used = next;
        packed.push(dirent);
    }
    packed
}

fn attr_of(stat: &NodeStat) -> Attr {
    let sec = stat.mtime_ms / 1000;
    let nsec = (stat.mtime_ms % 1000) * 1_000_000;
    Attr {
        valid: GETATTR_BASIC,
        qid: stat.qid,
        mode: stat.mode,
        nlink: if stat.is_dir() { 2 } else { 1 },
        size: stat.size,
        blksize: 4096,
        blocks: stat.size.div_ceil(512),
        atime_sec: sec,
        atime_nsec: nsec,
        mtime_sec: sec,
        mtime_nsec: nsec,
        ctime_sec: sec,
        ctime_nsec: nsec,
        ..Attr::default()
    }
}

#[cfg(test)]
mod tests;
