//! Error classes shared by every layer that answers a 9P request.
//!
//! A class is what a peer learns (an errno in `Rlerror`) and what operators
//! see in logs and `/proc/pressure` (a stable lowercase name). The detail
//! string is for the console and the audit log; it never carries secrets.

use core::fmt;

/// Linux errno values used on the wire (9P2000.L carries Linux numbers).
pub mod errno {
    pub const EPERM: u32 = 1;
    pub const ENOENT: u32 = 2;
    pub const EIO: u32 = 5;
    pub const E2BIG: u32 = 7;
    pub const EBADF: u32 = 9;
    pub const EAGAIN: u32 = 11;
    pub const EACCES: u32 = 13;
    pub const EBUSY: u32 = 16;
    pub const EEXIST: u32 = 17;
    pub const ENOTDIR: u32 = 20;
    pub const EISDIR: u32 = 21;
    pub const EINVAL: u32 = 22;
    pub const ENOSPC: u32 = 28;
    pub const EROFS: u32 = 30;
    pub const ENAMETOOLONG: u32 = 36;
    pub const ENOSYS: u32 = 38;
    pub const ENOTEMPTY: u32 = 39;
    pub const EPROTO: u32 = 71;
    pub const EMSGSIZE: u32 = 90;
    pub const EOPNOTSUPP: u32 = 95;
    pub const EDQUOT: u32 = 122;
}

/// The error classes of SURFACES §2.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ErrorClass {
    /// The role, ticket or policy forbids the operation (EPERM/EACCES).
    Permission,
    /// The path or id does not exist (ENOENT).
    NotFound,
    /// A bound on in-flight work was hit; retry later (EBUSY).
    Busy,
    /// Malformed input: bad path, bad JSON, wrong state (EINVAL).
    Invalid,
    /// A size bound was exceeded (EMSGSIZE/E2BIG).
    TooBig,
    /// The fid, session or worker is gone (EBADF).
    Closed,
    /// Too many attempts in a window (console only).
    RateLimited,
    /// A quota (bytes, segments, workers) is exhausted (EDQUOT).
    Quota,
    /// The request type is not supported by this server (EOPNOTSUPP).
    Unsupported,
}

impl ErrorClass {
    /// Stable lowercase name used in logs and counters.
    pub fn name(self) -> &'static str {
        match self {
            ErrorClass::Permission => "permission",
            ErrorClass::NotFound => "not-found",
            ErrorClass::Busy => "busy",
            ErrorClass::Invalid => "invalid",
            ErrorClass::TooBig => "too-big",
            ErrorClass::Closed => "closed",
            ErrorClass::RateLimited => "rate-limited",
            ErrorClass::Quota => "quota",
            ErrorClass::Unsupported => "unsupported",
        }
    }

    /// The errno carried in `Rlerror`.
    pub fn errno(self) -> u32 {
        match self {
            ErrorClass::Permission => errno::EACCES,
            ErrorClass::NotFound => errno::ENOENT,
            ErrorClass::Busy => errno::EBUSY,
            ErrorClass::Invalid => errno::EINVAL,
            ErrorClass::TooBig => errno::EMSGSIZE,
            ErrorClass::Closed => errno::EBADF,
            ErrorClass::RateLimited => errno::EAGAIN,
            ErrorClass::Quota => errno::EDQUOT,
            ErrorClass::Unsupported => errno::EOPNOTSUPP,
        }
    }

    /// Best-effort inverse of [`ErrorClass::errno`], for clients.
    pub fn from_errno(code: u32) -> ErrorClass {
        match code {
            // A read-only namespace refuses creation as a permission matter.
            errno::EACCES | errno::EPERM | errno::EROFS => ErrorClass::Permission,
            errno::ENOENT => ErrorClass::NotFound,
            errno::EBUSY => ErrorClass::Busy,
            errno::EMSGSIZE | errno::E2BIG => ErrorClass::TooBig,
            errno::EBADF => ErrorClass::Closed,
            errno::EAGAIN => ErrorClass::RateLimited,
            errno::EDQUOT | errno::ENOSPC => ErrorClass::Quota,
            errno::EOPNOTSUPP | errno::ENOSYS => ErrorClass::Unsupported,
            _ => ErrorClass::Invalid,
        }
    }
}

impl fmt::Display for ErrorClass {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// An error answered to a peer: its class plus a short detail tag
/// (e.g. `invalid-path`, `buffer-full`) that the console prints as
/// `detail=` and the audit log records.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NsError {
    pub class: ErrorClass,
    pub detail: &'static str,
}

impl NsError {
    pub const fn new(class: ErrorClass, detail: &'static str) -> NsError {
        NsError { class, detail }
    }
    pub const fn permission(detail: &'static str) -> NsError {
        NsError::new(ErrorClass::Permission, detail)
    }
    pub const fn not_found(detail: &'static str) -> NsError {
        NsError::new(ErrorClass::NotFound, detail)
    }
    pub const fn busy(detail: &'static str) -> NsError {
        NsError::new(ErrorClass::Busy, detail)
    }
    pub const fn invalid(detail: &'static str) -> NsError {
        NsError::new(ErrorClass::Invalid, detail)
    }
    pub const fn too_big(detail: &'static str) -> NsError {
        NsError::new(ErrorClass::TooBig, detail)
    }
    pub const fn closed(detail: &'static str) -> NsError {
        NsError::new(ErrorClass::Closed, detail)
    }
    pub const fn quota(detail: &'static str) -> NsError {
        NsError::new(ErrorClass::Quota, detail)
    }
}

impl fmt::Display for NsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.class, self.detail)
    }
}
