//! The client's error type: server refusals, transport failures, timeouts.
//!
//! A refusal keeps the server's [`ErrorClass`] so callers (the gateway, the
//! shell) can map it to their own answers; transport errors and timeouts are
//! kept apart because they say nothing about the path asked for.

use cohesix_ninep::ErrorClass;
use std::sync::Arc;
use std::time::Duration;

/// Why a client call failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The server answered `Rlerror`.
    #[error("{op} refused: {class} (errno {errno})")]
    Server {
        op: &'static str,
        class: ErrorClass,
        errno: u32,
    },

    /// No reply (or no free tag) within the request timeout.
    #[error("{op} timed out after {after:?}")]
    Timeout { op: &'static str, after: Duration },

    /// Connecting or the handshake failed at the socket.
    #[error("connect: {0}")]
    Io(#[from] std::io::Error),

    /// The connection is gone; every pending and later request gets this.
    #[error("connection closed: {reason}")]
    Disconnected { reason: Arc<str> },

    /// The server broke the protocol (bad frame, wrong reply, bad version).
    #[error("protocol violation: {0}")]
    Protocol(String),

    /// The path cannot be walked (empty component, `..`, NUL, too deep).
    #[error("invalid path {path:?}: {why}")]
    BadPath { path: String, why: &'static str },

    /// A request larger than the negotiated msize allows, or an answer
    /// larger than the caller's bound.
    #[error("{what} of {len} bytes exceeds {limit}")]
    TooBig {
        what: &'static str,
        len: usize,
        limit: usize,
    },

    /// The client ran out of fid numbers on this connection.
    #[error("no free fid on this connection")]
    FidsExhausted,
}

impl Error {
    /// The server's error class, for refusals only.
    pub fn class(&self) -> Option<ErrorClass> {
        match self {
            Error::Server { class, .. } => Some(*class),
            _ => None,
        }
    }

    /// True when the connection itself failed, so retrying on a new
    /// connection may help.
    pub fn is_transport(&self) -> bool {
        matches!(
            self,
            Error::Io(_) | Error::Disconnected { .. } | Error::Protocol(_)
        )
    }

    pub(crate) fn server(op: &'static str, errno: u32) -> Error {
        Error::Server {
            op,
            class: ErrorClass::from_errno(errno),
            errno,
        }
    }
}
