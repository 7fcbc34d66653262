//! The contract between the session engine and whatever serves the files.
//!
//! The engine owns everything that is pure protocol: version and msize
//! negotiation, fids, walk rules, auth fids, readdir cookies. A [`Backend`]
//! owns the meaning of paths: who may see them, what reading yields and what
//! an append does. Paths handed to a backend are absolute, canonical and
//! already validated (UTF-8, no NUL, no empty, `.` or `..` component, each
//! component within bounds, depth within bounds).
//!
//! The backend never sees a fid or a tag and the engine never sees a role.

use crate::error::NsError;
use alloc::string::String;
use alloc::vec::Vec;

/// 9P qid type bits.
pub mod qid_type {
    pub const DIR: u8 = 0x80;
    pub const APPEND: u8 = 0x40;
    pub const AUTH: u8 = 0x08;
    pub const FILE: u8 = 0x00;
}

/// A server's unique identity for a file.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Qid {
    pub ty: u8,
    pub version: u32,
    pub path: u64,
}

/// What `Tgetattr` and every walk step learn about a node.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct NodeStat {
    pub qid: Qid,
    /// Unix mode including the file type bits (`0o040000` dir, `0o100000` file).
    pub mode: u32,
    /// Size in bytes as far as it is known without generating content (0 for
    /// generated files and rings).
    pub size: u64,
    /// Last modification, milliseconds since the Unix epoch.
    pub mtime_ms: u64,
}

impl NodeStat {
    pub fn is_dir(&self) -> bool {
        self.qid.ty & qid_type::DIR != 0
    }
}

/// One directory entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DirEntry {
    pub name: String,
    pub qid: Qid,
}

/// How a fid is being opened (from `Tlopen` flags).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OpenMode {
    Read,
    Write,
    ReadWrite,
}

impl OpenMode {
    /// Linux open flags as carried by `Tlopen` (`O_ACCMODE` bits).
    pub fn from_lopen_flags(flags: u32) -> OpenMode {
        match flags & 0o3 {
            0 => OpenMode::Read,
            1 => OpenMode::Write,
            _ => OpenMode::ReadWrite,
        }
    }
    pub fn reads(self) -> bool {
        matches!(self, OpenMode::Read | OpenMode::ReadWrite)
    }
    pub fn writes(self) -> bool {
        matches!(self, OpenMode::Write | OpenMode::ReadWrite)
    }
}

/// What a client presented at `Tattach`.
#[derive(Clone, Copy, Debug)]
pub struct AttachRequest<'a> {
    /// The role the session claims (`queen`, `worker-heartbeat`, ...).
    pub uname: &'a str,
    /// Either empty, or the ticket when no auth fid was used.
    pub aname: &'a str,
    /// Bytes written to the auth fid named in `Tattach`, if any.
    pub auth: Option<&'a [u8]>,
    pub n_uname: u32,
}

/// The namespace as the session engine sees it.
///
/// Every method may refuse with an [`NsError`]; the engine turns it into an
/// `Rlerror` and leaves its own state as it was.
pub trait Backend {
    /// A handle naming one attached session (cheap to copy).
    type Session: Copy;
    /// State kept for one open fid (a content snapshot, a ring cursor, ...).
    type Open;

    /// Verifies the role and ticket and starts a session.
    fn attach(&mut self, req: AttachRequest<'_>) -> Result<Self::Session, NsError>;

    /// Ends a session (all its fids are already clunked).
    fn detach(&mut self, session: Self::Session);

    /// Looks up one path; used for each walk step and for `Tgetattr`.
    fn stat(&mut self, session: Self::Session, path: &str) -> Result<NodeStat, NsError>;

    /// Opens a path for reading or appending.
    fn open(
        &mut self,
        session: Self::Session,
        path: &str,
        mode: OpenMode,
    ) -> Result<Self::Open, NsError>;

    /// Reads at most `count` bytes at `offset` into `out` (which is empty).
    fn read(
        &mut self,
        session: Self::Session,
        open: &mut Self::Open,
        offset: u64,
        count: u32,
        out: &mut Vec<u8>,
    ) -> Result<(), NsError>;

    /// Appends `data`; returns the number of bytes taken.
    fn write(
        &mut self,
        session: Self::Session,
        open: &mut Self::Open,
        offset: u64,
        data: &[u8],
    ) -> Result<u32, NsError>;

    /// Lists a directory the session may list.
    fn readdir(&mut self, session: Self::Session, path: &str) -> Result<Vec<DirEntry>, NsError>;

    /// Releases an open fid.
    fn clunk(&mut self, session: Self::Session, open: Self::Open);
}
