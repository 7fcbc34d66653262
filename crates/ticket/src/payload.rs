//! The ticket payload: a compact binary encoding of [`Claims`], version 1.
//!
//! A ticket must fit in 224 characters, of which 80 go to the prefix, the dot
//! and the hex MAC, and the payload is hex-encoded, so the payload has at most
//! 72 bytes. The layout spends them carefully:
//!
//! | bytes | field |
//! |---|---|
//! | 1 | version, `1` |
//! | 1 | role: 0 queen, 1 worker-heartbeat, 2 worker-gpu, 3 worker-bus, 4 worker-lora |
//! | 1 | presence flags, see below |
//! | 1 | counts: mounts in the high nibble, scopes in the low nibble (0..=15 each) |
//! | varint | `issued_at_ms` |
//! | varint | lifetime in ms: `expires_at_ms - issued_at_ms`, at least 1 |
//! | 1 + n | subject, if flag bit 0: length byte (1..=64), then the bytes |
//! | varint | `budget.ticks`, `budget.ops`, `budget.ttl_s`, if flag bits 1, 2, 3 |
//! | varint | `quotas.bandwidth_bytes`, `.cursor_resumes`, `.cursor_advances`, bits 4, 5, 6 |
//! | … | each mount: service (length byte 1..=32, then the bytes), then `at` as a path |
//! | … | each scope: `path` as a path, then varint `rate_per_s << 2 \| verb` |
//!
//! Flag bit 7 is reserved and must be clear. Verb codes are 1 read, 2 write,
//! 3 readwrite. A *varint* is unsigned LEB128: seven bits per byte, least
//! significant group first (so little-endian), high bit set on every byte but
//! the last; at most 10 bytes, and no redundant trailing zero groups.
//!
//! A *path* is a component count byte (0..=16; 0 is `/`) followed by one tag
//! byte per component:
//!
//! - `0x01..=0x7f`: a literal component of that many bytes, which follow;
//! - `0x80`: the ticket's subject (so `/worker/worker-7/telemetry` costs no
//!   more than `/worker/x/telemetry`);
//! - `0x81 + i`: word `i` of the fixed dictionary [`WORDS`].
//!
//! The encoding is canonical: the encoder always uses the subject tag, then a
//! dictionary tag, before a literal, and the decoder refuses any other choice,
//! redundant varint bytes, unknown codes and trailing bytes. So one set of
//! claims has exactly one payload.
//!
//! # Limitations
//!
//! The dictionary is part of version 1: changing it, even appending a word,
//! needs a new version byte, or old hives would misread new tickets.

use crate::claims::{components, Budget, Claims, Mount, Quotas, Role, Scope, Verb, MAX_ENTRIES};
use crate::error::TicketError;

/// The payload version this build writes and reads.
pub const VERSION: u8 = 1;

/// Path components that cost one byte in a version 1 payload, by index.
pub const WORDS: [&str; 30] = [
    "proc",
    "queen",
    "worker",
    "shard",
    "telemetry",
    "log",
    "queen.log",
    "ctl",
    "gpu",
    "job",
    "lifecycle",
    "seg",
    "latest",
    "boot",
    "host",
    "trace",
    "kmesg",
    "updates",
    "policy",
    "actions",
    "audit",
    "replay",
    "models",
    "schedule",
    "lease",
    "export",
    "9p",
    "ingest",
    "root",
    "pressure",
];

const SUBJECT_TAG: u8 = 0x80;
const WORD_TAG: u8 = 0x81;

const HAS_SUBJECT: u8 = 1 << 0;
const HAS_TICKS: u8 = 1 << 1;
const HAS_OPS: u8 = 1 << 2;
const HAS_TTL: u8 = 1 << 3;
const HAS_BANDWIDTH: u8 = 1 << 4;
const HAS_RESUMES: u8 = 1 << 5;
const HAS_ADVANCES: u8 = 1 << 6;
const RESERVED: u8 = 1 << 7;

/// Encodes claims whose shape has already been checked.
pub(crate) fn encode(claims: &Claims) -> Result<Vec<u8>, TicketError> {
    let mut out = Vec::with_capacity(72);
    let optional = optional_fields(claims);
    let flags = optional
        .iter()
        .filter(|(_, value)| value.is_some())
        .fold(subject_flag(claims), |flags, (bit, _)| flags | bit);
    let counts = (count(claims.mounts.len())? << 4) | count(claims.scopes.len())?;

    out.extend_from_slice(&[VERSION, claims.role.code(), flags, counts]);
    put_varint(&mut out, claims.issued_at_ms);
    put_varint(&mut out, claims.ttl_ms());
    if let Some(subject) = &claims.subject {
        put_bytes(&mut out, subject)?;
    }
    for value in optional.iter().filter_map(|(_, value)| *value) {
        put_varint(&mut out, value.into());
    }
    let subject = claims.subject.as_deref();
    for mount in &claims.mounts {
        put_bytes(&mut out, &mount.service)?;
        put_path(&mut out, &mount.at, subject)?;
    }
    for scope in &claims.scopes {
        put_path(&mut out, &scope.path, subject)?;
        put_varint(
            &mut out,
            (u64::from(scope.rate_per_s) << 2) | u64::from(scope.verb.code()),
        );
    }
    Ok(out)
}

/// Decodes a payload; the caller still checks the claims' shape.
pub(crate) fn decode(payload: &[u8]) -> Result<Claims, TicketError> {
    let mut r = Reader {
        bytes: payload,
        pos: 0,
    };
    let version = r.byte()?;
    if version != VERSION {
        return Err(TicketError::UnsupportedVersion { version });
    }
    let role = Role::from_code(r.byte()?).ok_or(malformed("unknown role code"))?;
    let flags = r.byte()?;
    if flags & RESERVED != 0 {
        return Err(malformed("reserved flag set"));
    }
    let counts = r.byte()?;

    let issued_at_ms = r.varint()?;
    let ttl_ms = r.varint()?;
    let expires_at_ms = issued_at_ms
        .checked_add(ttl_ms)
        .ok_or(malformed("expiry overflows"))?;
    let mut claims = Claims::new(role, issued_at_ms, expires_at_ms);
    if flags & HAS_SUBJECT != 0 {
        claims.subject = Some(r.string()?);
    }
    claims.budget = Budget {
        ticks: r.optional_u32(flags, HAS_TICKS)?,
        ops: r.optional_u32(flags, HAS_OPS)?,
        ttl_s: r.optional_u32(flags, HAS_TTL)?,
    };
    claims.quotas = Quotas {
        bandwidth_bytes: r.optional_u32(flags, HAS_BANDWIDTH)?,
        cursor_resumes: r.optional_u32(flags, HAS_RESUMES)?,
        cursor_advances: r.optional_u32(flags, HAS_ADVANCES)?,
    };
    for _ in 0..counts >> 4 {
        let service = r.string()?;
        let at = r.path(claims.subject.as_deref())?;
        claims.mounts.push(Mount { service, at });
    }
    for _ in 0..counts & 0x0f {
        let path = r.path(claims.subject.as_deref())?;
        let packed = r.varint()?;
        let verb = Verb::from_code((packed & 3) as u8).ok_or(malformed("unknown verb code"))?;
        let rate_per_s = u32::try_from(packed >> 2).map_err(|_| malformed("rate overflows"))?;
        claims.scopes.push(Scope {
            path,
            verb,
            rate_per_s,
        });
    }
    if r.pos != payload.len() {
        return Err(malformed("trailing bytes"));
    }
    Ok(claims)
}

/// The role of a payload, read without decoding (or trusting) the rest.
pub(crate) fn role(payload: &[u8]) -> Result<Role, TicketError> {
    match payload {
        [VERSION, code, ..] => Role::from_code(*code).ok_or(malformed("unknown role code")),
        [version, _, ..] => Err(TicketError::UnsupportedVersion { version: *version }),
        _ => Err(malformed("payload too short")),
    }
}

fn malformed(reason: &'static str) -> TicketError {
    TicketError::Malformed { reason }
}

fn subject_flag(claims: &Claims) -> u8 {
    if claims.subject.is_some() {
        HAS_SUBJECT
    } else {
        0
    }
}

/// The optional numbers in payload order, each with its presence flag.
fn optional_fields(claims: &Claims) -> [(u8, Option<u32>); 6] {
    [
        (HAS_TICKS, claims.budget.ticks),
        (HAS_OPS, claims.budget.ops),
        (HAS_TTL, claims.budget.ttl_s),
        (HAS_BANDWIDTH, claims.quotas.bandwidth_bytes),
        (HAS_RESUMES, claims.quotas.cursor_resumes),
        (HAS_ADVANCES, claims.quotas.cursor_advances),
    ]
}

fn count(len: usize) -> Result<u8, TicketError> {
    match u8::try_from(len) {
        Ok(n) if usize::from(n) <= MAX_ENTRIES => Ok(n),
        _ => Err(TicketError::InvalidClaim {
            field: "scopes",
            reason: "more than 15 entries",
        }),
    }
}

fn put_varint(out: &mut Vec<u8>, mut value: u64) {
    while value >= 0x80 {
        out.push((value as u8 & 0x7f) | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

fn put_bytes(out: &mut Vec<u8>, text: &str) -> Result<(), TicketError> {
    let len = u8::try_from(text.len()).map_err(|_| malformed("string over 255 bytes"))?;
    out.push(len);
    out.extend_from_slice(text.as_bytes());
    Ok(())
}

fn put_path(out: &mut Vec<u8>, path: &str, subject: Option<&str>) -> Result<(), TicketError> {
    let parts = components(path).map_err(|reason| TicketError::InvalidClaim {
        field: "path",
        reason,
    })?;
    // components() caps the count at 16 and each literal at 127 bytes.
    out.push(parts.len() as u8);
    for part in parts {
        let tag = tag_for(part, subject);
        out.push(tag);
        if tag < SUBJECT_TAG {
            out.extend_from_slice(part.as_bytes());
        }
    }
    Ok(())
}

/// The canonical tag of a component: subject, then dictionary, then literal length.
///
/// Literals reach here at most 127 bytes long (checked by `components` when
/// encoding, by the tag itself when decoding), so the length cast is exact.
fn tag_for(part: &str, subject: Option<&str>) -> u8 {
    if subject == Some(part) {
        return SUBJECT_TAG;
    }
    match WORDS.iter().position(|word| *word == part) {
        Some(index) => WORD_TAG + index as u8,
        None => part.len() as u8,
    }
}

struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn byte(&mut self) -> Result<u8, TicketError> {
        let byte = *self
            .bytes
            .get(self.pos)
            .ok_or(malformed("payload ends early"))?;
        self.pos += 1;
        Ok(byte)
    }

    fn take(&mut self, len: usize) -> Result<&'a [u8], TicketError> {
        let end = self
            .pos
            .checked_add(len)
            .ok_or(malformed("payload ends early"))?;
        let slice = self
            .bytes
            .get(self.pos..end)
            .ok_or(malformed("payload ends early"))?;
        self.pos = end;
        Ok(slice)
    }

    fn varint(&mut self) -> Result<u64, TicketError> {
        let mut value = 0u64;
        for index in 0..10 {
            let byte = self.byte()?;
            let group = u64::from(byte & 0x7f);
            if index == 9 && group > 1 {
                return Err(malformed("varint overflows"));
            }
            value |= group << (7 * index);
            if byte & 0x80 == 0 {
                if index > 0 && group == 0 {
                    return Err(malformed("varint has redundant bytes"));
                }
                return Ok(value);
            }
        }
        Err(malformed("varint too long"))
    }

    fn optional_u32(&mut self, flags: u8, bit: u8) -> Result<Option<u32>, TicketError> {
        if flags & bit == 0 {
            return Ok(None);
        }
        let value = self.varint()?;
        u32::try_from(value)
            .map(Some)
            .map_err(|_| malformed("number overflows u32"))
    }

    fn string(&mut self) -> Result<String, TicketError> {
        let len = self.byte()?;
        let bytes = self.take(usize::from(len))?;
        let text = std::str::from_utf8(bytes).map_err(|_| malformed("string is not UTF-8"))?;
        Ok(text.to_string())
    }

    fn path(&mut self, subject: Option<&str>) -> Result<String, TicketError> {
        let count = self.byte()?;
        if count == 0 {
            return Ok("/".to_string());
        }
        let mut path = String::new();
        for _ in 0..count {
            let tag = self.byte()?;
            let part = self.component(tag, subject)?;
            if part.contains('/') || tag_for(part, subject) != tag {
                return Err(malformed("path is not canonical"));
            }
            path.push('/');
            path.push_str(part);
        }
        Ok(path)
    }

    fn component<'s>(&mut self, tag: u8, subject: Option<&'s str>) -> Result<&'s str, TicketError>
    where
        'a: 's,
    {
        match tag {
            0 => Err(malformed("empty path component")),
            1..=0x7f => std::str::from_utf8(self.take(usize::from(tag))?)
                .map_err(|_| malformed("path is not UTF-8")),
            SUBJECT_TAG => subject.ok_or(malformed("subject tag without subject")),
            _ => WORDS
                .get(usize::from(tag - WORD_TAG))
                .copied()
                .ok_or(malformed("unknown path word")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn worker_claims() -> Claims {
        let mut claims = Claims::new(Role::WorkerHeartbeat, 1_733_300_000_000, 1_733_300_300_000);
        claims.subject = Some("worker-7".into());
        claims.scopes.push(Scope {
            path: "/worker/worker-7/telemetry".into(),
            verb: Verb::Write,
            rate_per_s: 10,
        });
        claims
    }

    #[test]
    fn subject_and_words_cost_one_byte_each() {
        let payload = encode(&worker_claims()).unwrap();
        // header 4, issued 6, lifetime 3, subject 9, path 4, rate|verb 1.
        assert_eq!(payload.len(), 27);
        assert_eq!(
            &payload[payload.len() - 5..],
            &[3, 0x83, 0x80, 0x85, 10 << 2 | 2]
        );
    }

    #[test]
    fn decode_reverses_encode() {
        let claims = worker_claims();
        assert_eq!(decode(&encode(&claims).unwrap()), Ok(claims));
    }

    #[test]
    fn varints_round_trip_at_the_edges() {
        for value in [
            0,
            1,
            127,
            128,
            16_383,
            16_384,
            u64::from(u32::MAX),
            u64::MAX,
        ] {
            let mut out = Vec::new();
            put_varint(&mut out, value);
            let mut r = Reader {
                bytes: &out,
                pos: 0,
            };
            assert_eq!(r.varint(), Ok(value));
            assert_eq!(r.pos, out.len());
        }
    }

    #[test]
    fn varints_refuse_redundant_and_overflowing_bytes() {
        let cases: [&[u8]; 4] = [
            &[0x80, 0x00],
            &[0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02],
            &[0xff; 11],
            &[0x80],
        ];
        for bytes in cases {
            let mut r = Reader { bytes, pos: 0 };
            assert!(r.varint().is_err(), "{bytes:?}");
        }
    }

    #[test]
    fn a_literal_that_could_be_a_word_is_refused() {
        let mut payload = encode(&Claims::new(Role::Queen, 1, 2)).unwrap();
        payload[3] = 1; // one scope
        payload.extend_from_slice(&[1, 3, b'l', b'o', b'g', 1 << 2 | 1]);
        assert_eq!(decode(&payload), Err(malformed("path is not canonical")));
        let last = payload.len() - 5;
        payload.splice(last.., [0x81 + 5, 1 << 2 | 1]);
        assert_eq!(decode(&payload).unwrap().scopes[0].path, "/log");
    }

    #[test]
    fn a_subject_tag_needs_a_subject() {
        let mut payload = encode(&Claims::new(Role::Queen, 1, 2)).unwrap();
        payload[3] = 1;
        payload.extend_from_slice(&[1, SUBJECT_TAG, 1 << 2 | 1]);
        assert_eq!(
            decode(&payload),
            Err(malformed("subject tag without subject"))
        );
    }

    #[test]
    fn unknown_codes_and_trailing_bytes_are_refused() {
        let good = encode(&worker_claims()).unwrap();
        let cases = [
            (1, 9, "unknown role code"),
            (2, good[2] | RESERVED, "reserved flag set"),
            (good.len() - 1, 10 << 2, "unknown verb code"),
            (good.len() - 2, 0x81 + 30, "unknown path word"),
        ];
        for (index, byte, reason) in cases {
            let mut bad = good.clone();
            bad[index] = byte;
            assert_eq!(decode(&bad), Err(malformed(reason)));
        }
        let mut long = good.clone();
        long.push(0);
        assert_eq!(decode(&long), Err(malformed("trailing bytes")));
        assert_eq!(
            decode(&good[..good.len() - 1]),
            Err(malformed("payload ends early"))
        );
    }

    #[test]
    fn role_is_read_from_the_header_alone() {
        assert_eq!(role(&[VERSION, 2]), Ok(Role::WorkerGpu));
        assert_eq!(
            role(&[9, 0]),
            Err(TicketError::UnsupportedVersion { version: 9 })
        );
        assert_eq!(role(&[VERSION]), Err(malformed("payload too short")));
    }
}
