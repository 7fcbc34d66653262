//! Minting and verifying the text form `cohesix-ticket-<hex payload>.<hex MAC>`.
//!
//! The MAC is BLAKE3 in keyed mode over the payload bytes, keyed with the
//! BLAKE3 hash of the role's secret, so each role's tickets stand or fall with
//! that role's secret alone. Verification checks, in order: the length (before
//! any decoding), the prefix and the hex, the version, the MAC (in constant
//! time, before the payload is decoded), the payload layout, the claims'
//! shape, the expiry, and the manifest limits. The first failure is returned.
//!
//! Nothing here reads a clock or a file, and nothing here logs.
//!
//! # Limitations
//!
//! A ticket stays valid until it expires: there is no revocation list here.
//! The hive revokes by refusing subjects it no longer knows.

use subtle::ConstantTimeEq;

use crate::claims::{Claims, Limits, Role};
use crate::error::TicketError;
use crate::{payload, MAC_LEN, MAX_TICKET_LEN, PREFIX};

/// Where [`verify`] finds the secret for a ticket's role.
///
/// Implemented for a single secret shared by every role (`[u8]`, `[u8; N]`,
/// `Vec<u8>`, `str`, `String`) and for closures `Fn(Role) -> Option<Vec<u8>>`
/// that hold one secret per role. `None` refuses the ticket with
/// [`TicketError::NoSecret`].
pub trait SecretSource {
    /// The secret for `role`, if the hive has one.
    fn secret_for(&self, role: Role) -> Option<Vec<u8>>;
}

impl SecretSource for [u8] {
    fn secret_for(&self, _role: Role) -> Option<Vec<u8>> {
        Some(self.to_vec())
    }
}

impl<const N: usize> SecretSource for [u8; N] {
    fn secret_for(&self, _role: Role) -> Option<Vec<u8>> {
        Some(self.to_vec())
    }
}

impl SecretSource for Vec<u8> {
    fn secret_for(&self, _role: Role) -> Option<Vec<u8>> {
        Some(self.clone())
    }
}

impl SecretSource for str {
    fn secret_for(&self, _role: Role) -> Option<Vec<u8>> {
        Some(self.as_bytes().to_vec())
    }
}

impl SecretSource for String {
    fn secret_for(&self, _role: Role) -> Option<Vec<u8>> {
        Some(self.as_bytes().to_vec())
    }
}

impl<F> SecretSource for F
where
    F: Fn(Role) -> Option<Vec<u8>>,
{
    fn secret_for(&self, role: Role) -> Option<Vec<u8>> {
        self(role)
    }
}

/// Encodes and signs `claims` under `secret`, the secret of `claims.role`.
///
/// Fails with [`TicketError::InvalidClaim`] or [`TicketError::MissingSubject`]
/// for claims no hive would accept, and with [`TicketError::TooLong`] when
/// the ticket would exceed [`MAX_TICKET_LEN`] characters; it never truncates.
/// Manifest limits are not checked here: the hive checks them at verify.
pub fn mint(claims: &Claims, secret: &[u8]) -> Result<String, TicketError> {
    if secret.is_empty() {
        return Err(TicketError::EmptySecret);
    }
    claims.check_shape()?;
    let payload = payload::encode(claims)?;

    let len = PREFIX.len() + 2 * payload.len() + 1 + 2 * MAC_LEN;
    if len > MAX_TICKET_LEN {
        return Err(TicketError::TooLong {
            len,
            max: MAX_TICKET_LEN,
        });
    }
    let mac = blake3::keyed_hash(&key(secret), &payload);

    let mut ticket = String::with_capacity(len);
    ticket.push_str(PREFIX);
    ticket.push_str(&hex::encode(&payload));
    ticket.push('.');
    ticket.push_str(&mac.to_hex());
    Ok(ticket)
}

/// Checks a presented ticket and returns its claims.
///
/// `now_ms` is the hive's clock in Unix milliseconds; the ticket is expired
/// from `expires_at_ms` on. The claims are checked against `limits`. This
/// does not check which role or identity the session attaches as: use
/// [`verify_for`] or [`Claims::ensure_bound_to`] for that.
pub fn verify<S>(
    ticket: &str,
    secrets: &S,
    now_ms: u64,
    limits: &Limits,
) -> Result<Claims, TicketError>
where
    S: SecretSource + ?Sized,
{
    let (payload, mac) = split(ticket)?;
    let role = payload::role(&payload)?;
    let secret = secrets
        .secret_for(role)
        .ok_or(TicketError::NoSecret { role })?;
    if secret.is_empty() {
        return Err(TicketError::EmptySecret);
    }
    let expected = blake3::keyed_hash(&key(&secret), &payload);
    if !bool::from(expected.as_bytes().ct_eq(&mac)) {
        return Err(TicketError::BadMac);
    }

    let claims = payload::decode(&payload)?;
    claims.check_shape()?;
    if claims.is_expired(now_ms) {
        return Err(TicketError::Expired {
            expires_at_ms: claims.expires_at_ms,
            now_ms,
        });
    }
    claims.check_limits(limits)?;
    Ok(claims)
}

/// [`verify`], then checks the claims are for `role` and, when given, `subject`.
///
/// This is the attach-time check: `ATTACH worker-heartbeat <ticket>` from a
/// session that identifies as `worker-7` passes `Role::WorkerHeartbeat` and
/// `Some("worker-7")`.
pub fn verify_for<S>(
    ticket: &str,
    role: Role,
    subject: Option<&str>,
    secrets: &S,
    now_ms: u64,
    limits: &Limits,
) -> Result<Claims, TicketError>
where
    S: SecretSource + ?Sized,
{
    let claims = verify(ticket, secrets, now_ms, limits)?;
    claims.ensure_bound_to(role, subject)?;
    Ok(claims)
}

/// Reads the role of a ticket without verifying it.
///
/// The answer is untrusted: it only tells the hive which role's secret to
/// verify with. The text is checked as strictly as by [`verify`] up to the MAC.
pub fn peek_role(ticket: &str) -> Result<Role, TicketError> {
    let (payload, _mac) = split(ticket)?;
    payload::role(&payload)
}

fn key(secret: &[u8]) -> [u8; 32] {
    *blake3::hash(secret).as_bytes()
}

/// Splits a ticket into payload bytes and MAC, bounded and strict.
///
/// Only lowercase hex is accepted, so that no two texts carry the same bytes:
/// changing any character of a valid ticket makes it invalid.
fn split(ticket: &str) -> Result<(Vec<u8>, [u8; MAC_LEN]), TicketError> {
    if ticket.len() > MAX_TICKET_LEN {
        return Err(TicketError::TooLong {
            len: ticket.len(),
            max: MAX_TICKET_LEN,
        });
    }
    let body = ticket
        .strip_prefix(PREFIX)
        .ok_or(malformed("missing cohesix-ticket- prefix"))?;
    let (payload_hex, mac_hex) = body.split_once('.').ok_or(malformed("missing MAC"))?;
    if payload_hex.is_empty() || payload_hex.len() % 2 != 0 {
        return Err(malformed("payload is not whole hex bytes"));
    }
    if mac_hex.len() != 2 * MAC_LEN {
        return Err(malformed("MAC is not 64 hex digits"));
    }
    if !is_lower_hex(payload_hex) || !is_lower_hex(mac_hex) {
        return Err(malformed("not lowercase hex"));
    }

    let payload = hex::decode(payload_hex).map_err(|_| malformed("not lowercase hex"))?;
    let mut mac = [0u8; MAC_LEN];
    hex::decode_to_slice(mac_hex, &mut mac).map_err(|_| malformed("not lowercase hex"))?;
    Ok((payload, mac))
}

fn is_lower_hex(text: &str) -> bool {
    text.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

fn malformed(reason: &'static str) -> TicketError {
    TicketError::Malformed { reason }
}
