//! Secure9P: the 9P2000.L wire codec and the bounded session engine.
//!
//! No I/O, no threads, no clock: bytes in, bytes out. `no_std` + `alloc`.
//! [`codec`] turns frames into [`Message`]s and back, [`session`] answers a
//! connection's requests against a [`Backend`], which owns what paths mean.
//! Sockets, tag caps and time-outs belong to the transports that use this.
#![no_std]
extern crate alloc;

pub mod backend;
pub mod codec;
pub mod error;
#[cfg(any(test, feature = "mem-backend"))]
pub mod mem;
pub mod msg;
pub mod session;

pub use backend::{AttachRequest, Backend, DirEntry, NodeStat, OpenMode, Qid};
pub use codec::{decode, encode, peek_header, peek_tag, DecodeError, EncodeError, Header};
pub use error::{ErrorClass, NsError};
pub use msg::{Attr, Body, Dirent, Message, StatFs};
pub use session::{Limits, Outcome, Refusal, RefusedBy, Session};
