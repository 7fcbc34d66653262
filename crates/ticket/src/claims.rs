//! What a ticket grants: the [`Claims`] types, their shape rules and the limit checks.
//!
//! Shape rules (a worker needs a subject, paths are absolute and clean, the
//! ticket expires after it was issued) hold for every ticket and are checked
//! both at mint and at verify. Limits come from the hive's manifest and are
//! checked at verify only. Nothing here looks at the clock or the namespace.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::error::{ParseNameError, TicketError};

/// Longest subject (worker id) in bytes.
pub(crate) const MAX_SUBJECT: usize = 64;
/// Longest mount service name in bytes.
pub(crate) const MAX_SERVICE: usize = 32;
/// Longest path component the payload can carry (its length byte is < 0x80).
pub(crate) const MAX_COMPONENT: usize = 127;
/// Most components in one path; twice the default walk depth.
pub(crate) const MAX_COMPONENTS: usize = 16;
/// Most mounts, and most scopes, one ticket can carry (a 4-bit count each).
pub(crate) const MAX_ENTRIES: usize = 15;

/// The role a session attaches as; each role has its own ticket secret.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Role {
    Queen,
    WorkerHeartbeat,
    WorkerGpu,
    WorkerBus,
    WorkerLora,
}

impl Role {
    /// Every role, in the order of their payload codes.
    pub const ALL: [Role; 5] = [
        Role::Queen,
        Role::WorkerHeartbeat,
        Role::WorkerGpu,
        Role::WorkerBus,
        Role::WorkerLora,
    ];

    /// The wire name: `queen`, `worker-heartbeat`, `worker-gpu`, `worker-bus`, `worker-lora`.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Queen => "queen",
            Role::WorkerHeartbeat => "worker-heartbeat",
            Role::WorkerGpu => "worker-gpu",
            Role::WorkerBus => "worker-bus",
            Role::WorkerLora => "worker-lora",
        }
    }

    /// Every role but the queen is a worker role; worker tickets need a subject.
    pub fn is_worker(self) -> bool {
        self != Role::Queen
    }

    pub(crate) fn code(self) -> u8 {
        match self {
            Role::Queen => 0,
            Role::WorkerHeartbeat => 1,
            Role::WorkerGpu => 2,
            Role::WorkerBus => 3,
            Role::WorkerLora => 4,
        }
    }

    pub(crate) fn from_code(code: u8) -> Option<Role> {
        Role::ALL.get(usize::from(code)).copied()
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Role {
    type Err = ParseNameError;

    /// Accepts exactly the wire names of [`Role::as_str`] (lowercase, no aliases).
    fn from_str(name: &str) -> Result<Role, ParseNameError> {
        Role::ALL
            .into_iter()
            .find(|role| role.as_str() == name)
            .ok_or_else(|| ParseNameError::new("role", name))
    }
}

/// What a scope allows on its path.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Verb {
    Read,
    Write,
    ReadWrite,
}

impl Verb {
    /// The wire name: `read`, `write` or `readwrite`.
    pub fn as_str(self) -> &'static str {
        match self {
            Verb::Read => "read",
            Verb::Write => "write",
            Verb::ReadWrite => "readwrite",
        }
    }

    /// Whether the verb allows reading.
    pub fn reads(self) -> bool {
        self != Verb::Write
    }

    /// Whether the verb allows writing (appending).
    pub fn writes(self) -> bool {
        self != Verb::Read
    }

    /// Payload code: bit 0 read, bit 1 write.
    pub(crate) fn code(self) -> u8 {
        match self {
            Verb::Read => 1,
            Verb::Write => 2,
            Verb::ReadWrite => 3,
        }
    }

    pub(crate) fn from_code(code: u8) -> Option<Verb> {
        match code {
            1 => Some(Verb::Read),
            2 => Some(Verb::Write),
            3 => Some(Verb::ReadWrite),
            _ => None,
        }
    }
}

impl fmt::Display for Verb {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Verb {
    type Err = ParseNameError;

    fn from_str(name: &str) -> Result<Verb, ParseNameError> {
        [Verb::Read, Verb::Write, Verb::ReadWrite]
            .into_iter()
            .find(|verb| verb.as_str() == name)
            .ok_or_else(|| ParseNameError::new("verb", name))
    }
}

/// How much work a session may do; `None` leaves the hive's default in force.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Budget {
    pub ticks: Option<u32>,
    pub ops: Option<u32>,
    pub ttl_s: Option<u32>,
}

/// A service mounted into the session's namespace at an absolute path.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Mount {
    /// Service name: 1..=32 bytes of `A-Z a-z 0-9 . _ -`.
    pub service: String,
    /// Absolute path, never `/`.
    pub at: String,
}

/// Access to one path (and what lies below it, as the hive decides).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Scope {
    /// Absolute path; `/` is allowed.
    pub path: String,
    pub verb: Verb,
    /// Operations per second the hive allows on this scope.
    pub rate_per_s: u32,
}

/// Stream quotas; `None` leaves the hive's default in force.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Quotas {
    pub bandwidth_bytes: Option<u32>,
    pub cursor_resumes: Option<u32>,
    pub cursor_advances: Option<u32>,
}

/// Everything a ticket grants.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    pub role: Role,
    /// The worker id for worker roles (required); optional for the queen.
    /// 1..=64 bytes of `A-Z a-z 0-9 . _ -`, never `.` or `..`.
    pub subject: Option<String>,
    pub issued_at_ms: u64,
    /// Strictly after `issued_at_ms`.
    pub expires_at_ms: u64,
    pub budget: Budget,
    pub mounts: Vec<Mount>,
    pub scopes: Vec<Scope>,
    pub quotas: Quotas,
}

/// The manifest's ceilings on ticket claims (the `[tickets]` section).
///
/// This is a plain struct so that this crate does not depend on the manifest.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    pub max_scopes: u32,
    pub max_scope_rate_per_s: u32,
    pub max_bandwidth_bytes: u32,
    pub max_cursor_resumes: u32,
    pub max_cursor_advances: u32,
}

impl Default for Limits {
    /// The ceilings of the operator surface: 8 scopes, 64/s, 128 KiB, 16 resumes, 256 advances.
    fn default() -> Limits {
        Limits {
            max_scopes: 8,
            max_scope_rate_per_s: 64,
            max_bandwidth_bytes: 128 * 1024,
            max_cursor_resumes: 16,
            max_cursor_advances: 256,
        }
    }
}

impl Claims {
    /// Claims for `role` with no subject, budget, mounts, scopes or quotas.
    pub fn new(role: Role, issued_at_ms: u64, expires_at_ms: u64) -> Claims {
        Claims {
            role,
            subject: None,
            issued_at_ms,
            expires_at_ms,
            budget: Budget::default(),
            mounts: Vec::new(),
            scopes: Vec::new(),
            quotas: Quotas::default(),
        }
    }

    /// How long the ticket lives, in milliseconds.
    pub fn ttl_ms(&self) -> u64 {
        self.expires_at_ms.saturating_sub(self.issued_at_ms)
    }

    /// Whether the ticket has expired at `now_ms` (expiry is exclusive).
    pub fn is_expired(&self, now_ms: u64) -> bool {
        now_ms >= self.expires_at_ms
    }

    /// Checks that verified claims are for the role and identity a session attaches as.
    ///
    /// `subject` is the identity the session claims (the worker id); `None`
    /// accepts any subject, which only makes sense for the queen.
    pub fn ensure_bound_to(&self, role: Role, subject: Option<&str>) -> Result<(), TicketError> {
        if self.role != role {
            return Err(TicketError::WrongRole {
                expected: role,
                found: self.role,
            });
        }
        let Some(expected) = subject else {
            return Ok(());
        };
        match self.subject.as_deref() {
            Some(found) if found == expected => Ok(()),
            Some(found) => Err(TicketError::SubjectMismatch {
                expected: expected.to_string(),
                found: found.to_string(),
            }),
            None => Err(TicketError::MissingSubject { role: self.role }),
        }
    }

    /// Checks the rules every ticket obeys, whatever the manifest says.
    pub(crate) fn check_shape(&self) -> Result<(), TicketError> {
        if self.expires_at_ms <= self.issued_at_ms {
            return Err(invalid("expires_at_ms", "must be after issued_at_ms"));
        }
        match &self.subject {
            Some(subject) => check_name(subject, MAX_SUBJECT).map_err(|r| invalid("subject", r))?,
            None if self.role.is_worker() => {
                return Err(TicketError::MissingSubject { role: self.role })
            }
            None => {}
        }
        if self.mounts.len() > MAX_ENTRIES {
            return Err(invalid("mounts", "more than 15 mounts"));
        }
        for mount in &self.mounts {
            check_name(&mount.service, MAX_SERVICE).map_err(|r| invalid("mount.service", r))?;
            let parts = components(&mount.at).map_err(|r| invalid("mount.at", r))?;
            if parts.is_empty() {
                return Err(invalid("mount.at", "must not be /"));
            }
        }
        if self.scopes.len() > MAX_ENTRIES {
            return Err(invalid("scopes", "more than 15 scopes"));
        }
        for scope in &self.scopes {
            components(&scope.path).map_err(|r| invalid("scope.path", r))?;
        }
        Ok(())
    }

    /// Checks the claims against the manifest's ceilings.
    pub(crate) fn check_limits(&self, limits: &Limits) -> Result<(), TicketError> {
        at_most("scopes", self.scopes.len() as u64, limits.max_scopes)?;
        for scope in &self.scopes {
            at_most(
                "scope.rate_per_s",
                scope.rate_per_s.into(),
                limits.max_scope_rate_per_s,
            )?;
        }
        let quotas = [
            (
                "bandwidth_bytes",
                self.quotas.bandwidth_bytes,
                limits.max_bandwidth_bytes,
            ),
            (
                "cursor_resumes",
                self.quotas.cursor_resumes,
                limits.max_cursor_resumes,
            ),
            (
                "cursor_advances",
                self.quotas.cursor_advances,
                limits.max_cursor_advances,
            ),
        ];
        for (what, value, max) in quotas {
            if let Some(value) = value {
                at_most(what, value.into(), max)?;
            }
        }
        Ok(())
    }
}

fn invalid(field: &'static str, reason: &'static str) -> TicketError {
    TicketError::InvalidClaim { field, reason }
}

fn at_most(what: &'static str, value: u64, max: u32) -> Result<(), TicketError> {
    if value > u64::from(max) {
        return Err(TicketError::LimitExceeded {
            what,
            value,
            max: max.into(),
        });
    }
    Ok(())
}

/// A subject or service name: one safe path component.
fn check_name(name: &str, max: usize) -> Result<(), &'static str> {
    if name.is_empty() {
        return Err("is empty");
    }
    if name.len() > max {
        return Err("is too long");
    }
    if name == "." || name == ".." {
        return Err("must not be . or ..");
    }
    let allowed = |b: u8| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-');
    if !name.bytes().all(allowed) {
        return Err("may hold only A-Z a-z 0-9 . _ -");
    }
    Ok(())
}

/// Splits an absolute path into its components, refusing anything unclean.
///
/// `/` yields no components. Components are 1..=127 bytes, never `.` or
/// `..`, and hold no NUL; there are at most 16 of them.
pub(crate) fn components(path: &str) -> Result<Vec<&str>, &'static str> {
    let Some(rest) = path.strip_prefix('/') else {
        return Err("must be absolute");
    };
    if rest.is_empty() {
        return Ok(Vec::new());
    }
    let parts: Vec<&str> = rest.split('/').collect();
    if parts.len() > MAX_COMPONENTS {
        return Err("has more than 16 components");
    }
    for part in &parts {
        if part.is_empty() {
            return Err("has an empty component");
        }
        if *part == "." || *part == ".." {
            return Err("has a . or .. component");
        }
        if part.len() > MAX_COMPONENT {
            return Err("has a component over 127 bytes");
        }
        if part.contains('\0') {
            return Err("contains NUL");
        }
    }
    Ok(parts)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn role_names_round_trip() {
        for role in Role::ALL {
            assert_eq!(role.as_str().parse::<Role>(), Ok(role));
            assert_eq!(Role::from_code(role.code()), Some(role));
        }
        assert_eq!(Role::from_code(5), None);
    }

    #[test]
    fn role_parse_is_exact() {
        let err = "Queen".parse::<Role>().unwrap_err();
        assert_eq!(err.to_string(), "unknown role \"Queen\"");
        assert!("worker".parse::<Role>().is_err());
    }

    #[test]
    fn unknown_name_is_cut_in_the_error() {
        let long = "é".repeat(40);
        let err = long.parse::<Role>().unwrap_err();
        assert!(err.name.len() <= ParseNameError::MAX_NAME);
        assert!(long.starts_with(&err.name));
    }

    #[test]
    fn only_the_queen_is_not_a_worker() {
        let workers: Vec<Role> = Role::ALL.into_iter().filter(|r| r.is_worker()).collect();
        assert_eq!(workers.len(), 4);
        assert!(!Role::Queen.is_worker());
    }

    #[test]
    fn verb_names_and_rights() {
        for verb in [Verb::Read, Verb::Write, Verb::ReadWrite] {
            assert_eq!(verb.as_str().parse::<Verb>(), Ok(verb));
            assert_eq!(Verb::from_code(verb.code()), Some(verb));
        }
        assert!(Verb::Read.reads() && !Verb::Read.writes());
        assert!(!Verb::Write.reads() && Verb::Write.writes());
        assert!(Verb::ReadWrite.reads() && Verb::ReadWrite.writes());
        assert!("rw".parse::<Verb>().is_err());
    }

    #[test]
    fn paths_must_be_clean_and_absolute() {
        assert_eq!(components("/"), Ok(vec![]));
        assert_eq!(components("/log/queen.log"), Ok(vec!["log", "queen.log"]));
        for bad in ["", "log", "/a//b", "/a/", "/a/../b", "/./a", "/a\0b"] {
            assert!(components(bad).is_err(), "{bad:?}");
        }
        let deep = "/a".repeat(17);
        assert_eq!(components(&deep), Err("has more than 16 components"));
        let wide = format!("/{}", "x".repeat(128));
        assert_eq!(components(&wide), Err("has a component over 127 bytes"));
    }

    #[test]
    fn names_refuse_slashes_and_dots() {
        assert_eq!(check_name("worker-7", 64), Ok(()));
        assert!(check_name("a/b", 64).is_err());
        assert!(check_name("..", 64).is_err());
        assert!(check_name("", 64).is_err());
        assert!(check_name("a b", 64).is_err());
        assert!(check_name(&"a".repeat(65), 64).is_err());
    }

    #[test]
    fn binding_checks_role_then_subject() {
        let mut claims = Claims::new(Role::WorkerGpu, 1, 2);
        claims.subject = Some("worker-3".into());
        assert_eq!(
            claims.ensure_bound_to(Role::WorkerGpu, Some("worker-3")),
            Ok(())
        );
        assert_eq!(
            claims.ensure_bound_to(Role::Queen, Some("worker-3")),
            Err(TicketError::WrongRole {
                expected: Role::Queen,
                found: Role::WorkerGpu
            })
        );
        assert!(matches!(
            claims.ensure_bound_to(Role::WorkerGpu, Some("worker-4")),
            Err(TicketError::SubjectMismatch { .. })
        ));
        claims.subject = None;
        assert_eq!(
            claims.ensure_bound_to(Role::WorkerGpu, Some("worker-3")),
            Err(TicketError::MissingSubject {
                role: Role::WorkerGpu
            })
        );
    }

    #[test]
    fn expiry_is_exclusive() {
        let claims = Claims::new(Role::Queen, 10, 20);
        assert_eq!(claims.ttl_ms(), 10);
        assert!(!claims.is_expired(19));
        assert!(claims.is_expired(20));
    }
}
