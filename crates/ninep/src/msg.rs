//! The 9P2000.L messages the hive speaks, as plain data.
//!
//! A [`Message`] is one frame: a tag plus a [`Body`]. Only the messages the
//! session engine answers (and their replies) have a typed body; every other
//! type number, known to 9P2000.L or not, is kept as [`Body::Unsupported`]
//! so the engine can refuse it with the right errno. This module knows
//! nothing about bytes; [`crate::codec`] does.

use crate::backend::Qid;
use alloc::string::String;
use alloc::vec::Vec;

/// The tag `Tversion` travels with.
pub const NOTAG: u16 = 0xFFFF;

/// "No fid", e.g. `Tattach` without an auth fid.
pub const NOFID: u32 = 0xFFFF_FFFF;

/// The only protocol version the hive speaks.
pub const VERSION_9P2000_L: &str = "9P2000.L";

/// What a server answers to a version it does not speak.
pub const VERSION_UNKNOWN: &str = "unknown";

/// Most names one `Twalk` may carry (and qids one `Rwalk` may return).
pub const MAX_WELEM: usize = 16;

/// Bytes of every frame header: size[4] type[1] tag[2].
pub const HEADER_LEN: usize = 7;

/// Bytes in front of `Rread` data: header plus count[4].
pub const RREAD_OVERHEAD: u32 = 11;

/// Bytes in front of `Twrite` data: header, fid[4], offset[8], count[4].
pub const TWRITE_OVERHEAD: u32 = 23;

/// The I/O header size Linux subtracts from msize to get an iounit.
pub const IOHDRSZ: u32 = 24;

/// `Rgetattr.valid` bits for the basic stat fields (mode through blocks).
pub const GETATTR_BASIC: u64 = 0x0000_07ff;

/// The magic Linux reports for a v9fs mount in `statfs.f_type`.
pub const V9FS_MAGIC: u32 = 0x0102_1997;

/// Message type numbers of 9P2000.L (plus the 9P2000 ones it keeps).
pub mod ty {
    pub const TLERROR: u8 = 6;
    pub const RLERROR: u8 = 7;
    pub const TSTATFS: u8 = 8;
    pub const RSTATFS: u8 = 9;
    pub const TLOPEN: u8 = 12;
    pub const RLOPEN: u8 = 13;
    pub const TLCREATE: u8 = 14;
    pub const TSYMLINK: u8 = 16;
    pub const TMKNOD: u8 = 18;
    pub const TRENAME: u8 = 20;
    pub const TREADLINK: u8 = 22;
    pub const TGETATTR: u8 = 24;
    pub const RGETATTR: u8 = 25;
    pub const TSETATTR: u8 = 26;
    pub const RSETATTR: u8 = 27;
    pub const TXATTRWALK: u8 = 30;
    pub const TXATTRCREATE: u8 = 32;
    pub const TREADDIR: u8 = 40;
    pub const RREADDIR: u8 = 41;
    pub const TFSYNC: u8 = 50;
    pub const RFSYNC: u8 = 51;
    pub const TLOCK: u8 = 52;
    pub const TGETLOCK: u8 = 54;
    pub const TLINK: u8 = 70;
    pub const TMKDIR: u8 = 72;
    pub const TRENAMEAT: u8 = 74;
    pub const TUNLINKAT: u8 = 76;
    pub const TVERSION: u8 = 100;
    pub const RVERSION: u8 = 101;
    pub const TAUTH: u8 = 102;
    pub const RAUTH: u8 = 103;
    pub const TATTACH: u8 = 104;
    pub const RATTACH: u8 = 105;
    pub const TFLUSH: u8 = 108;
    pub const RFLUSH: u8 = 109;
    pub const TWALK: u8 = 110;
    pub const RWALK: u8 = 111;
    pub const TREAD: u8 = 116;
    pub const RREAD: u8 = 117;
    pub const TWRITE: u8 = 118;
    pub const RWRITE: u8 = 119;
    pub const TCLUNK: u8 = 120;
    pub const RCLUNK: u8 = 121;
    pub const TREMOVE: u8 = 122;
    pub const RREMOVE: u8 = 123;
}

/// The attributes `Rgetattr` carries, in wire order.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Attr {
    pub valid: u64,
    pub qid: Qid,
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    pub nlink: u64,
    pub rdev: u64,
    pub size: u64,
    pub blksize: u64,
    pub blocks: u64,
    pub atime_sec: u64,
    pub atime_nsec: u64,
    pub mtime_sec: u64,
    pub mtime_nsec: u64,
    pub ctime_sec: u64,
    pub ctime_nsec: u64,
    pub btime_sec: u64,
    pub btime_nsec: u64,
    pub gen: u64,
    pub data_version: u64,
}

/// The answer to `Tstatfs`, in wire order.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct StatFs {
    pub fs_type: u32,
    pub bsize: u32,
    pub blocks: u64,
    pub bfree: u64,
    pub bavail: u64,
    pub files: u64,
    pub ffree: u64,
    pub fsid: u64,
    pub namelen: u32,
}

/// One `Rreaddir` entry in the Linux dirent layout.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Dirent {
    pub qid: Qid,
    /// The cookie to pass as `Treaddir.offset` to continue after this entry.
    pub offset: u64,
    /// `DT_*` type (4 directory, 8 regular file).
    pub kind: u8,
    pub name: String,
}

impl Dirent {
    /// Bytes this entry takes inside `Rreaddir` data.
    pub fn wire_len(&self) -> usize {
        13 + 8 + 1 + 2 + self.name.len()
    }
}

/// Linux `DT_*` directory entry types.
pub mod dt {
    pub const DIR: u8 = 4;
    pub const REG: u8 = 8;
}

/// One 9P frame: its tag and what it says.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Message {
    pub tag: u16,
    pub body: Body,
}

impl Message {
    pub fn new(tag: u16, body: Body) -> Message {
        Message { tag, body }
    }
}

/// The body of a frame, one variant per message type the hive handles.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Body {
    Tversion {
        msize: u32,
        version: String,
    },
    Rversion {
        msize: u32,
        version: String,
    },
    Tauth {
        afid: u32,
        uname: String,
        aname: String,
        n_uname: u32,
    },
    Rauth {
        aqid: Qid,
    },
    Tattach {
        fid: u32,
        afid: u32,
        uname: String,
        aname: String,
        n_uname: u32,
    },
    Rattach {
        qid: Qid,
    },
    Rlerror {
        ecode: u32,
    },
    Tflush {
        oldtag: u16,
    },
    Rflush,
    Twalk {
        fid: u32,
        newfid: u32,
        wnames: Vec<String>,
    },
    Rwalk {
        wqids: Vec<Qid>,
    },
    Tlopen {
        fid: u32,
        flags: u32,
    },
    Rlopen {
        qid: Qid,
        iounit: u32,
    },
    Tread {
        fid: u32,
        offset: u64,
        count: u32,
    },
    Rread {
        data: Vec<u8>,
    },
    Twrite {
        fid: u32,
        offset: u64,
        data: Vec<u8>,
    },
    Rwrite {
        count: u32,
    },
    Tclunk {
        fid: u32,
    },
    Rclunk,
    Tremove {
        fid: u32,
    },
    Rremove,
    Tgetattr {
        fid: u32,
        request_mask: u64,
    },
    Rgetattr {
        attr: Attr,
    },
    Treaddir {
        fid: u32,
        offset: u64,
        count: u32,
    },
    Rreaddir {
        entries: Vec<Dirent>,
    },
    Tstatfs {
        fid: u32,
    },
    Rstatfs {
        statfs: StatFs,
    },
    /// `datasync` is absent in the original 9P2000.L text and sent by Linux;
    /// a frame without it decodes as 0.
    Tfsync {
        fid: u32,
        datasync: u32,
    },
    Rfsync,
    /// Only `valid` and `size` matter to the hive: the engine accepts a
    /// truncate-to-zero of an append-only file (what `echo x > ctl` sends)
    /// as a no-op and refuses every other change.
    Tsetattr {
        fid: u32,
        valid: u32,
        mode: u32,
        uid: u32,
        gid: u32,
        size: u64,
        atime_sec: u64,
        atime_nsec: u64,
        mtime_sec: u64,
        mtime_nsec: u64,
    },
    Rsetattr,
    /// Any other type number; the body was skipped, not parsed.
    Unsupported {
        ty: u8,
    },
}

impl Body {
    /// The type number this body travels as.
    pub fn ty(&self) -> u8 {
        match self {
            Body::Tversion { .. } => ty::TVERSION,
            Body::Rversion { .. } => ty::RVERSION,
            Body::Tauth { .. } => ty::TAUTH,
            Body::Rauth { .. } => ty::RAUTH,
            Body::Tattach { .. } => ty::TATTACH,
            Body::Rattach { .. } => ty::RATTACH,
            Body::Rlerror { .. } => ty::RLERROR,
            Body::Tflush { .. } => ty::TFLUSH,
            Body::Rflush => ty::RFLUSH,
            Body::Twalk { .. } => ty::TWALK,
            Body::Rwalk { .. } => ty::RWALK,
            Body::Tlopen { .. } => ty::TLOPEN,
            Body::Rlopen { .. } => ty::RLOPEN,
            Body::Tread { .. } => ty::TREAD,
            Body::Rread { .. } => ty::RREAD,
            Body::Twrite { .. } => ty::TWRITE,
            Body::Rwrite { .. } => ty::RWRITE,
            Body::Tclunk { .. } => ty::TCLUNK,
            Body::Rclunk => ty::RCLUNK,
            Body::Tremove { .. } => ty::TREMOVE,
            Body::Rremove => ty::RREMOVE,
            Body::Tgetattr { .. } => ty::TGETATTR,
            Body::Rgetattr { .. } => ty::RGETATTR,
            Body::Treaddir { .. } => ty::TREADDIR,
            Body::Rreaddir { .. } => ty::RREADDIR,
            Body::Tstatfs { .. } => ty::TSTATFS,
            Body::Rstatfs { .. } => ty::RSTATFS,
            Body::Tfsync { .. } => ty::TFSYNC,
            Body::Rfsync => ty::RFSYNC,
            Body::Tsetattr { .. } => ty::TSETATTR,
            Body::Rsetattr => ty::RSETATTR,
            Body::Unsupported { ty } => *ty,
        }
    }

    /// A short operation name for logs and counters (`walk`, `read`, ...).
    pub fn op_name(&self) -> &'static str {
        op_name(self.ty())
    }
}

/// The operation a type number names, T and R alike (`Twalk` and `Rwalk`
/// are both `walk`); `unknown` for numbers 9P2000.L does not define.
pub fn op_name(ty: u8) -> &'static str {
    match ty {
        6 | 7 => "lerror",
        8 | 9 => "statfs",
        12 | 13 => "lopen",
        14 | 15 => "lcreate",
        16 | 17 => "symlink",
        18 | 19 => "mknod",
        20 | 21 => "rename",
        22 | 23 => "readlink",
        24 | 25 => "getattr",
        26 | 27 => "setattr",
        30 | 31 => "xattrwalk",
        32 | 33 => "xattrcreate",
        40 | 41 => "readdir",
        50 | 51 => "fsync",
        52 | 53 => "lock",
        54 | 55 => "getlock",
        70 | 71 => "link",
        72 | 73 => "mkdir",
        74 | 75 => "renameat",
        76 | 77 => "unlinkat",
        100 | 101 => "version",
        102 | 103 => "auth",
        104 | 105 => "attach",
        106 | 107 => "error",
        108 | 109 => "flush",
        110 | 111 => "walk",
        112 | 113 => "open",
        114 | 115 => "create",
        116 | 117 => "read",
        118 | 119 => "write",
        120 | 121 => "clunk",
        122 | 123 => "remove",
        124 | 125 => "stat",
        126 | 127 => "wstat",
        _ => "unknown",
    }
}
