//! Bytes to [`Message`]s and back: the 9P2000.L wire format.
//!
//! A frame is `size[4] type[1] tag[2] body`, little-endian, with `size`
//! counting itself. Decoding is bounded: every length read from the peer is
//! checked against the bytes that remain before anything is allocated, and
//! nothing here panics on any input. A frame must be consumed exactly;
//! trailing bytes are an error, so what decodes re-encodes to the same frame
//! (the one exception is `Tfsync`, whose `datasync` field may be absent).
//!
//! This module does no I/O and does not enforce session bounds such as the
//! negotiated msize; the session engine and the transports do.

use crate::backend::Qid;
use crate::msg::{ty, Attr, Body, Dirent, Message, StatFs, HEADER_LEN, MAX_WELEM};
use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;

/// The fixed part of every frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Header {
    /// Total frame length in bytes, the size field included.
    pub size: u32,
    pub ty: u8,
    pub tag: u16,
}

/// Reads the header at the start of `buf`, if seven bytes are there.
pub fn peek_header(buf: &[u8]) -> Option<Header> {
    let head = buf.get(..HEADER_LEN)?;
    Some(Header {
        size: u32::from_le_bytes([head[0], head[1], head[2], head[3]]),
        ty: head[4],
        tag: u16::from_le_bytes([head[5], head[6]]),
    })
}

/// The tag of a frame, if its header is readable.
pub fn peek_tag(buf: &[u8]) -> Option<u16> {
    peek_header(buf).map(|h| h.tag)
}

/// Why a frame did not decode, with the tag and type when the header was
/// readable so that a server can still answer the request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DecodeError {
    pub tag: Option<u16>,
    pub ty: Option<u8>,
    pub kind: DecodeErrorKind,
}

/// The ways a frame can be malformed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DecodeErrorKind {
    /// Fewer than the seven header bytes.
    ShortHeader { len: usize },
    /// The size field disagrees with the length of the frame handed in.
    SizeMismatch { declared: u32, actual: usize },
    /// A field runs past the end of the frame.
    Truncated { field: &'static str },
    /// Bytes are left after the last field.
    TrailingBytes { extra: usize },
    /// A string field is not UTF-8.
    BadUtf8 { field: &'static str },
    /// A walk carries more than [`MAX_WELEM`] names or qids.
    TooManyWalkElements { count: u16 },
}

impl fmt::Display for DecodeErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DecodeErrorKind::ShortHeader { len } => write!(f, "frame of {len} bytes has no header"),
            DecodeErrorKind::SizeMismatch { declared, actual } => {
                write!(f, "size field says {declared} bytes, frame has {actual}")
            }
            DecodeErrorKind::Truncated { field } => write!(f, "{field} runs past the frame"),
            DecodeErrorKind::TrailingBytes { extra } => write!(f, "{extra} bytes after the body"),
            DecodeErrorKind::BadUtf8 { field } => write!(f, "{field} is not UTF-8"),
            DecodeErrorKind::TooManyWalkElements { count } => {
                write!(f, "walk of {count} elements (at most {MAX_WELEM})")
            }
        }
    }
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.kind.fmt(f)
    }
}

/// Why a message could not be put on the wire.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum EncodeError {
    /// A string is longer than the 65535 bytes a length prefix can say.
    StringTooLong { field: &'static str, len: usize },
    /// A walk with more than [`MAX_WELEM`] names or qids.
    TooManyWalkElements { count: usize },
    /// The frame would be longer than a `u32` can say.
    FrameTooLong { len: usize },
}

impl fmt::Display for EncodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EncodeError::StringTooLong { field, len } => write!(f, "{field} of {len} bytes"),
            EncodeError::TooManyWalkElements { count } => write!(f, "walk of {count} elements"),
            EncodeError::FrameTooLong { len } => write!(f, "frame of {len} bytes"),
        }
    }
}

/// Appends one frame for `msg` to `out`. On error `out` is left as it was.
pub fn encode(msg: &Message, out: &mut Vec<u8>) -> Result<(), EncodeError> {
    let start = out.len();
    let result = encode_frame(msg, out);
    if result.is_err() {
        out.truncate(start);
    }
    result
}

fn encode_frame(msg: &Message, out: &mut Vec<u8>) -> Result<(), EncodeError> {
    let start = out.len();
    out.extend_from_slice(&[0; 4]);
    out.push(msg.body.ty());
    put_u16(out, msg.tag);
    encode_body(&msg.body, out)?;

    let len = out.len() - start;
    let size = u32::try_from(len).map_err(|_| EncodeError::FrameTooLong { len })?;
    out[start..start + 4].copy_from_slice(&size.to_le_bytes());
    Ok(())
}

fn encode_body(body: &Body, out: &mut Vec<u8>) -> Result<(), EncodeError> {
    match body {
        Body::Tversion { msize, version } | Body::Rversion { msize, version } => {
            put_u32(out, *msize);
            put_str(out, "version", version)?;
        }
        Body::Tauth {
            afid,
            uname,
            aname,
            n_uname,
        } => {
            put_u32(out, *afid);
            put_str(out, "uname", uname)?;
            put_str(out, "aname", aname)?;
            put_u32(out, *n_uname);
        }
        Body::Rauth { aqid: qid } | Body::Rattach { qid } => put_qid(out, qid),
        Body::Tattach {
            fid,
            afid,
            uname,
            aname,
            n_uname,
        } => {
            put_u32(out, *fid);
            put_u32(out, *afid);
            put_str(out, "uname", uname)?;
            put_str(out, "aname", aname)?;
            put_u32(out, *n_uname);
        }
        Body::Rlerror { ecode } => put_u32(out, *ecode),
        Body::Tflush { oldtag } => put_u16(out, *oldtag),
        Body::Twalk {
            fid,
            newfid,
            wnames,
        } => encode_twalk(out, *fid, *newfid, wnames)?,
        Body::Rwalk { wqids } => {
            put_u16(out, walk_len(wqids.len())?);
            wqids.iter().for_each(|q| put_qid(out, q));
        }
        Body::Tlopen { fid, flags } => {
            put_u32(out, *fid);
            put_u32(out, *flags);
        }
        Body::Rlopen { qid, iounit } => {
            put_qid(out, qid);
            put_u32(out, *iounit);
        }
        Body::Tread { fid, offset, count } | Body::Treaddir { fid, offset, count } => {
            put_u32(out, *fid);
            put_u64(out, *offset);
            put_u32(out, *count);
        }
        Body::Rread { data } => put_data(out, data)?,
        Body::Twrite { fid, offset, data } => {
            put_u32(out, *fid);
            put_u64(out, *offset);
            put_data(out, data)?;
        }
        Body::Rwrite { count } => put_u32(out, *count),
        Body::Tclunk { fid } | Body::Tremove { fid } | Body::Tstatfs { fid } => put_u32(out, *fid),
        Body::Tgetattr { fid, request_mask } => {
            put_u32(out, *fid);
            put_u64(out, *request_mask);
        }
        Body::Rgetattr { attr } => put_attr(out, attr),
        Body::Rreaddir { entries } => encode_rreaddir(out, entries)?,
        Body::Rstatfs { statfs } => put_statfs(out, statfs),
        Body::Tfsync { fid, datasync } => {
            put_u32(out, *fid);
            put_u32(out, *datasync);
        }
        Body::Tsetattr {
            fid,
            valid,
            mode,
            uid,
            gid,
            size,
            atime_sec,
            atime_nsec,
            mtime_sec,
            mtime_nsec,
        } => {
            for v in [fid, valid, mode, uid, gid] {
                put_u32(out, *v);
            }
            for v in [size, atime_sec, atime_nsec, mtime_sec, mtime_nsec] {
                put_u64(out, *v);
            }
        }
        Body::Rflush | Body::Rclunk | Body::Rremove | Body::Rfsync | Body::Rsetattr => {}
        Body::Unsupported { .. } => {}
    }
    Ok(())
}

fn encode_twalk(
    out: &mut Vec<u8>,
    fid: u32,
    newfid: u32,
    wnames: &[String],
) -> Result<(), EncodeError> {
    put_u32(out, fid);
    put_u32(out, newfid);
    put_u16(out, walk_len(wnames.len())?);
    for name in wnames {
        put_str(out, "wname", name)?;
    }
    Ok(())
}

fn encode_rreaddir(out: &mut Vec<u8>, entries: &[Dirent]) -> Result<(), EncodeError> {
    let count_at = out.len();
    put_u32(out, 0);
    for entry in entries {
        put_qid(out, &entry.qid);
        put_u64(out, entry.offset);
        out.push(entry.kind);
        put_str(out, "dirent name", &entry.name)?;
    }

    let len = out.len() - count_at - 4;
    let count = u32::try_from(len).map_err(|_| EncodeError::FrameTooLong { len })?;
    out[count_at..count_at + 4].copy_from_slice(&count.to_le_bytes());
    Ok(())
}

fn walk_len(n: usize) -> Result<u16, EncodeError> {
    if n > MAX_WELEM {
        return Err(EncodeError::TooManyWalkElements { count: n });
    }
    // MAX_WELEM fits in a u16, so this cannot fail once the check passed.
    u16::try_from(n).map_err(|_| EncodeError::TooManyWalkElements { count: n })
}

fn put_u16(out: &mut Vec<u8>, v: u16) {
    out.extend_from_slice(&v.to_le_bytes());
}

fn put_u32(out: &mut Vec<u8>, v: u32) {
    out.extend_from_slice(&v.to_le_bytes());
}

fn put_u64(out: &mut Vec<u8>, v: u64) {
    out.extend_from_slice(&v.to_le_bytes());
}

fn put_qid(out: &mut Vec<u8>, qid: &Qid) {
    out.push(qid.ty);
    put_u32(out, qid.version);
    put_u64(out, qid.path);
}

fn put_str(out: &mut Vec<u8>, field: &'static str, s: &str) -> Result<(), EncodeError> {
    let len = u16::try_from(s.len()).map_err(|_| EncodeError::StringTooLong {
        field,
        len: s.len(),
    })?;
    put_u16(out, len);
    out.extend_from_slice(s.as_bytes());
    Ok(())
}

fn put_data(out: &mut Vec<u8>, data: &[u8]) -> Result<(), EncodeError> {
    let len =
        u32::try_from(data.len()).map_err(|_| EncodeError::FrameTooLong { len: data.len() })?;
    put_u32(out, len);
    out.extend_from_slice(data);
    Ok(())
}

fn put_attr(out: &mut Vec<u8>, a: &Attr) {
    put_u64(out, a.valid);
    put_qid(out, &a.qid);
    put_u32(out, a.mode);
    put_u32(out, a.uid);
    put_u32(out, a.gid);
    for v in [a.nlink, a.rdev, a.size, a.blksize, a.blocks] {
        put_u64(out, v);
    }
    for v in [
        a.atime_sec,
        a.atime_nsec,
        a.mtime_sec,
        a.mtime_nsec,
        a.ctime_sec,
        a.ctime_nsec,
    ] {
        put_u64(out, v);
    }
    for v in [a.btime_sec, a.btime_nsec, a.gen, a.data_version] {
        put_u64(out, v);
    }
}

fn put_statfs(out: &mut Vec<u8>, s: &StatFs) {
    put_u32(out, s.fs_type);
    put_u32(out, s.bsize);
    for v in [s.blocks, s.bfree, s.bavail, s.files, s.ffree, s.fsid] {
        put_u64(out, v);
    }
    put_u32(out, s.namelen);
}

/// Decodes exactly one frame; `buf` must be the whole frame and nothing more.
pub fn decode(buf: &[u8]) -> Result<Message, DecodeError> {
    let header = peek_header(buf).ok_or(DecodeError {
        tag: None,
        ty: None,
        kind: DecodeErrorKind::ShortHeader { len: buf.len() },
    })?;
    let fail = |kind| DecodeError {
        tag: Some(header.tag),
        ty: Some(header.ty),
        kind,
    };

    // A size that disagrees with the frame means the framing is broken, so
    // the tag cannot be trusted to belong to this request.
    if usize::try_from(header.size).ok() != Some(buf.len()) {
        let kind = DecodeErrorKind::SizeMismatch {
            declared: header.size,
            actual: buf.len(),
        };
        return Err(DecodeError {
            tag: None,
            ty: Some(header.ty),
            kind,
        });
    }

    let mut r = Reader {
        rest: &buf[HEADER_LEN..],
    };
    let body = decode_body(header.ty, &mut r).map_err(fail)?;
    if !r.rest.is_empty() {
        return Err(fail(DecodeErrorKind::TrailingBytes {
            extra: r.rest.len(),
        }));
    }
    Ok(Message {
        tag: header.tag,
        body,
    })
}

fn decode_body(t: u8, r: &mut Reader<'_>) -> Result<Body, DecodeErrorKind> {
    let body = match t {
        ty::TVERSION => Body::Tversion {
            msize: r.u32("msize")?,
            version: r.string("version")?,
        },
        ty::RVERSION => Body::Rversion {
            msize: r.u32("msize")?,
            version: r.string("version")?,
        },
        ty::TAUTH => Body::Tauth {
            afid: r.u32("afid")?,
            uname: r.string("uname")?,
            aname: r.string("aname")?,
            n_uname: r.u32("n_uname")?,
        },
        ty::RAUTH => Body::Rauth {
            aqid: r.qid("aqid")?,
        },
        ty::TATTACH => Body::Tattach {
            fid: r.u32("fid")?,
            afid: r.u32("afid")?,
            uname: r.string("uname")?,
            aname: r.string("aname")?,
            n_uname: r.u32("n_uname")?,
        },
        ty::RATTACH => Body::Rattach { qid: r.qid("qid")? },
        ty::RLERROR => Body::Rlerror {
            ecode: r.u32("ecode")?,
        },
        ty::TFLUSH => Body::Tflush {
            oldtag: r.u16("oldtag")?,
        },
        ty::RFLUSH => Body::Rflush,
        ty::TWALK => decode_twalk(r)?,
        ty::RWALK => decode_rwalk(r)?,
        ty::TLOPEN => Body::Tlopen {
            fid: r.u32("fid")?,
            flags: r.u32("flags")?,
        },
        ty::RLOPEN => Body::Rlopen {
            qid: r.qid("qid")?,
            iounit: r.u32("iounit")?,
        },
        ty::TREAD => Body::Tread {
            fid: r.u32("fid")?,
            offset: r.u64("offset")?,
            count: r.u32("count")?,
        },
        ty::RREAD => Body::Rread {
            data: r.data("data")?.to_vec(),
        },
        ty::TWRITE => Body::Twrite {
            fid: r.u32("fid")?,
            offset: r.u64("offset")?,
            data: r.data("data")?.to_vec(),
        },
        ty::RWRITE => Body::Rwrite {
            count: r.u32("count")?,
        },
        ty::TCLUNK => Body::Tclunk { fid: r.u32("fid")? },
        ty::RCLUNK => Body::Rclunk,
        ty::TREMOVE => Body::Tremove { fid: r.u32("fid")? },
        ty::RREMOVE => Body::Rremove,
        ty::TGETATTR => Body::Tgetattr {
            fid: r.u32("fid")?,
            request_mask: r.u64("mask")?,
        },
        ty::RGETATTR => Body::Rgetattr { attr: r.attr()? },
        ty::TREADDIR => Body::Treaddir {
            fid: r.u32("fid")?,
            offset: r.u64("offset")?,
            count: r.u32("count")?,
        },
        ty::RREADDIR => Body::Rreaddir {
            entries: decode_dirents(r.data("data")?)?,
        },
        ty::TSTATFS => Body::Tstatfs { fid: r.u32("fid")? },
        ty::RSTATFS => Body::Rstatfs {
            statfs: r.statfs()?,
        },
        ty::TFSYNC => Body::Tfsync {
            fid: r.u32("fid")?,
            datasync: r.optional_u32(),
        },
        ty::RFSYNC => Body::Rfsync,
        ty::TSETATTR => Body::Tsetattr {
            fid: r.u32("fid")?,
            valid: r.u32("valid")?,
            mode: r.u32("mode")?,
            uid: r.u32("uid")?,
            gid: r.u32("gid")?,
            size: r.u64("size")?,
            atime_sec: r.u64("atime_sec")?,
            atime_nsec: r.u64("atime_nsec")?,
            mtime_sec: r.u64("mtime_sec")?,
            mtime_nsec: r.u64("mtime_nsec")?,
        },
        ty::RSETATTR => Body::Rsetattr,
        other => {
            // Refused by type alone, so the body is never looked at.
            r.rest = &[];
            Body::Unsupported { ty: other }
        }
    };
    Ok(body)
}

fn decode_twalk(r: &mut Reader<'_>) -> Result<Body, DecodeErrorKind> {
    let fid = r.u32("fid")?;
    let newfid = r.u32("newfid")?;
    let count = r.u16("nwname")?;
    if usize::from(count) > MAX_WELEM {
        return Err(DecodeErrorKind::TooManyWalkElements { count });
    }

    let mut wnames = Vec::with_capacity(usize::from(count));
    for _ in 0..count {
        wnames.push(r.string("wname")?);
    }
    Ok(Body::Twalk {
        fid,
        newfid,
        wnames,
    })
}

fn decode_rwalk(r: &mut Reader<'_>) -> Result<Body, DecodeErrorKind> {
    let count = r.u16("nwqid")?;
    if usize::from(count) > MAX_WELEM {
        return Err(DecodeErrorKind::TooManyWalkElements { count });
    }

    let mut wqids = Vec::with_capacity(usize::from(count));
    for _ in 0..count {
        wqids.push(r.qid("wqid")?);
    }
    Ok(Body::Rwalk { wqids })
}

fn decode_dirents(data: &[u8]) -> Result<Vec<Dirent>, DecodeErrorKind> {
    let mut r = Reader { rest: data };
    let mut entries = Vec::new();
    // Each pass consumes at least 24 bytes or fails, so this ends.
    while !r.rest.is_empty() {
        entries.push(Dirent {
            qid: r.qid("dirent qid")?,
            offset: r.u64("dirent offset")?,
            kind: r.u8("dirent type")?,
            name: r.string("dirent name")?,
        });
    }
    Ok(entries)
}

/// A cursor over the bytes of a frame that are not yet decoded.
struct Reader<'a> {
    rest: &'a [u8],
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize, field: &'static str) -> Result<&'a [u8], DecodeErrorKind> {
        if n > self.rest.len() {
            return Err(DecodeErrorKind::Truncated { field });
        }
        let (head, tail) = self.rest.split_at(n);
        self.rest = tail;
        Ok(head)
    }

    fn array<const N: usize>(&mut self, field: &'static str) -> Result<[u8; N], DecodeErrorKind> {
        let mut a = [0u8; N];
        a.copy_from_slice(self.take(N, field)?);
        Ok(a)
    }

    fn u8(&mut self, field: &'static str) -> Result<u8, DecodeErrorKind> {
        Ok(self.array::<1>(field)?[0])
    }

    fn u16(&mut self, field: &'static str) -> Result<u16, DecodeErrorKind> {
        Ok(u16::from_le_bytes(self.array(field)?))
    }

    fn u32(&mut self, field: &'static str) -> Result<u32, DecodeErrorKind> {
        Ok(u32::from_le_bytes(self.array(field)?))
    }

    fn u64(&mut self, field: &'static str) -> Result<u64, DecodeErrorKind> {
        Ok(u64::from_le_bytes(self.array(field)?))
    }

    /// A trailing `u32` that older peers leave out.
    fn optional_u32(&mut self) -> u32 {
        self.u32("optional").unwrap_or(0)
    }

    fn qid(&mut self, field: &'static str) -> Result<Qid, DecodeErrorKind> {
        Ok(Qid {
            ty: self.u8(field)?,
            version: self.u32(field)?,
            path: self.u64(field)?,
        })
    }

    fn string(&mut self, field: &'static str) -> Result<String, DecodeErrorKind> {
        let len = self.u16(field)?;
        let bytes = self.take(usize::from(len), field)?;
        let s = core::str::from_utf8(bytes).map_err(|_| DecodeErrorKind::BadUtf8 { field })?;
        Ok(String::from(s))
    }

    /// A `count[4]` followed by that many bytes.
    fn data(&mut self, field: &'static str) -> Result<&'a [u8], DecodeErrorKind> {
        let len = self.u32(field)?;
        let len = usize::try_from(len).map_err(|_| DecodeErrorKind::Truncated { field })?;
        self.take(len, field)
    }

    fn attr(&mut self) -> Result<Attr, DecodeErrorKind> {
        let f = "attr";
        Ok(Attr {
            valid: self.u64(f)?,
            qid: self.qid(f)?,
            mode: self.u32(f)?,
            uid: self.u32(f)?,
            gid: self.u32(f)?,
            nlink: self.u64(f)?,
            rdev: self.u64(f)?,
            size: self.u64(f)?,
            blksize: self.u64(f)?,
            blocks: self.u64(f)?,
            atime_sec: self.u64(f)?,
            atime_nsec: self.u64(f)?,
            mtime_sec: self.u64(f)?,
            mtime_nsec: self.u64(f)?,
            ctime_sec: self.u64(f)?,
            ctime_nsec: self.u64(f)?,
            btime_sec: self.u64(f)?,
            btime_nsec: self.u64(f)?,
            gen: self.u64(f)?,
            data_version: self.u64(f)?,
        })
    }

    fn statfs(&mut self) -> Result<StatFs, DecodeErrorKind> {
        let f = "statfs";
        Ok(StatFs {
            fs_type: self.u32(f)?,
            bsize: self.u32(f)?,
            blocks: self.u64(f)?,
            bfree: self.u64(f)?,
            bavail: self.u64(f)?,
            files: self.u64(f)?,
            ffree: self.u64(f)?,
            fsid: self.u64(f)?,
            namelen: self.u32(f)?,
        })
    }
}
