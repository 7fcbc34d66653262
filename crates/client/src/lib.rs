//! An async 9P2000.L client for a Cohesix hive, on the `cohesix-ninep` codec.
//!
//! [`Client::connect`] negotiates the version, attaches with a role and a
//! ticket, and then serves path operations (`ls`, `read_all`, `append`,
//! `stat`, `open`) that may run concurrently over one TCP connection: each
//! request carries its own tag and replies are matched by tag. Every
//! request is bounded by a timeout and errors keep the server's
//! [`cohesix_ninep::ErrorClass`].
//!
//! It speaks only TCP, and it does not reconnect, retry or cache; the
//! gateway and the shell build those policies on top.

mod client;
mod conn;
mod error;

pub use client::{Client, ClientConfig, File, MAX_LS_ENTRIES};
pub use cohesix_ninep::{ErrorClass, NodeStat, OpenMode, Qid};
pub use error::Error;
