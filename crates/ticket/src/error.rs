//! Why minting or verifying a ticket failed: one variant per failed step.
//!
//! Messages are short and lowercase. They may name the role, the subject,
//! the offending claim and its value, but never a secret, a key or a MAC, so
//! they are safe to log. They are not meant to be sent to a peer verbatim:
//! the hive maps them onto its own refusal classes.

use crate::claims::Role;

/// A ticket could not be minted or was refused at verification.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum TicketError {
    /// The ticket text (or, at mint, the encoded claims) is longer than allowed.
    #[error("ticket is {len} characters, the limit is {max}")]
    TooLong { len: usize, max: usize },

    /// The ticket text or its payload does not follow the layout.
    #[error("malformed ticket: {reason}")]
    Malformed { reason: &'static str },

    /// The payload starts with a version this build does not read.
    #[error("unsupported ticket version {version}")]
    UnsupportedVersion { version: u8 },

    /// The hive holds no secret for the ticket's role, so it cannot be checked.
    #[error("no secret configured for role {role}")]
    NoSecret { role: Role },

    /// An empty secret was offered; it would make every ticket forgeable.
    #[error("ticket secret is empty")]
    EmptySecret,

    /// The MAC does not match the payload under the role's secret.
    #[error("ticket signature does not match")]
    BadMac,

    /// The ticket's lifetime has ended.
    #[error("ticket expired at {expires_at_ms} ms (now {now_ms} ms)")]
    Expired { expires_at_ms: u64, now_ms: u64 },

    /// The ticket is for another role than the one the session attaches as.
    #[error("ticket is for role {found}, not {expected}")]
    WrongRole { expected: Role, found: Role },

    /// A worker ticket carries no subject (worker id).
    #[error("ticket for role {role} has no subject")]
    MissingSubject { role: Role },

    /// The ticket's subject is not the identity the session attaches as.
    #[error("ticket subject {found:?} does not match {expected:?}")]
    SubjectMismatch { expected: String, found: String },

    /// A claim has a shape the hive never accepts (bad subject, path, expiry ...).
    #[error("invalid claim {field}: {reason}")]
    InvalidClaim {
        field: &'static str,
        reason: &'static str,
    },

    /// A claim is above the manifest's limit.
    #[error("ticket claim {what} is {value}, the limit is {max}")]
    LimitExceeded {
        what: &'static str,
        value: u64,
        max: u64,
    },
}

/// A role or verb name that is not one of the known ones.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("unknown {kind} {name:?}")]
pub struct ParseNameError {
    /// What was being parsed: `role` or `verb`.
    pub kind: &'static str,
    /// The offending name, cut to at most [`ParseNameError::MAX_NAME`] bytes.
    pub name: String,
}

impl ParseNameError {
    /// Names longer than this are cut before they are kept, so a peer cannot
    /// make the error (and a log line) arbitrarily large.
    pub const MAX_NAME: usize = 32;

    pub(crate) fn new(kind: &'static str, name: &str) -> ParseNameError {
        let mut end = name.len().min(Self::MAX_NAME);
        while !name.is_char_boundary(end) {
            end -= 1;
        }
        ParseNameError {
            kind,
            name: name[..end].to_string(),
        }
    }
}
