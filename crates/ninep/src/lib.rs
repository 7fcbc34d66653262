//! Secure9P: the 9P2000.L wire codec and the bounded session engine.
//!
//! No I/O, no threads, no clock: bytes in, bytes out. `no_std` + `alloc`.
#![no_std]
extern crate alloc;

pub mod backend;
pub mod error;

pub use backend::{AttachRequest, Backend, DirEntry, NodeStat, OpenMode, Qid};
pub use error::{ErrorClass, NsError};
