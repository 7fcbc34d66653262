//! Capability tickets: what a session may do, signed by the hive, checked at attach.
//!
//! A ticket is a short string a client presents with `ATTACH <role> <ticket>`
//! (or the 9P attach `aname`). It carries [`Claims`]: the role, the worker it
//! is for, a budget, mounts, path scopes and quotas. [`mint`] encodes and
//! signs claims under the role's secret; [`verify`] parses a presented ticket,
//! checks its MAC in constant time, its expiry and its claims against the
//! manifest's [`Limits`], and returns the claims.
//!
//! The text form is `cohesix-ticket-<hex payload>.<hex 32-byte MAC>`, at most
//! [`MAX_TICKET_LEN`] characters. The payload layout is described in the
//! [`payload`] module.
//!
//! This crate does no I/O, keeps no state and knows nothing of the manifest
//! file: the caller passes the clock, the secrets and the limits. It does not
//! decide whether the worker named by a ticket still exists, nor does it
//! enforce budgets, scopes or quotas at run time; the hive does.

mod claims;
mod error;
pub mod payload;
mod ticket;

pub use claims::{Budget, Claims, Limits, Mount, Quotas, Role, Scope, Verb};
pub use error::{ParseNameError, TicketError};
pub use ticket::{mint, peek_role, verify, verify_for, SecretSource};

/// Every ticket starts with this prefix.
pub const PREFIX: &str = "cohesix-ticket-";

/// The longest ticket, in characters, that [`mint`] produces and [`verify`] reads.
pub const MAX_TICKET_LEN: usize = 224;

/// Bytes in the MAC (BLAKE3 output); 64 hex characters in the ticket.
pub const MAC_LEN: usize = 32;
