//! Property tests: claims round-trip through a ticket; no text or payload makes verify panic.

use cohesix_ticket::payload::WORDS;
use cohesix_ticket::{
    mint, verify, Budget, Claims, Limits, Mount, Quotas, Role, Scope, TicketError, Verb,
    MAX_TICKET_LEN,
};
use proptest::prelude::*;

const SECRET: &[u8] = b"proptest-secret";

const OPEN: Limits = Limits {
    max_scopes: u32::MAX,
    max_scope_rate_per_s: u32::MAX,
    max_bandwidth_bytes: u32::MAX,
    max_cursor_resumes: u32::MAX,
    max_cursor_advances: u32::MAX,
};

fn name() -> impl Strategy<Value = String> {
    "[A-Za-z0-9_.-]{1,10}".prop_filter("not . or ..", |n| n != "." && n != "..")
}

/// A path component: a dictionary word, the subject (`None`), or a literal.
fn component() -> impl Strategy<Value = Option<String>> {
    prop_oneof![
        prop::sample::select(WORDS.to_vec()).prop_map(|w| Some(w.to_string())),
        Just(None),
        name().prop_map(Some),
    ]
}

fn path(subject: Option<String>, min: usize) -> impl Strategy<Value = String> {
    prop::collection::vec(component(), min..5).prop_map(move |parts| {
        let parts: Vec<String> = parts
            .into_iter()
            .map(|part| {
                part.or_else(|| subject.clone())
                    .unwrap_or_else(|| "x".into())
            })
            .collect();
        format!("/{}", parts.join("/"))
    })
}

fn verb() -> impl Strategy<Value = Verb> {
    prop::sample::select(vec![Verb::Read, Verb::Write, Verb::ReadWrite])
}

fn claims() -> impl Strategy<Value = Claims> {
    let head = (
        prop::sample::select(Role::ALL.to_vec()),
        prop::option::of(name()),
        0..u64::MAX / 2,
        1..u64::MAX / 2,
    );
    let numbers = prop::array::uniform6(prop::option::of(any::<u32>()));
    (head, numbers).prop_flat_map(|((role, subject, issued, ttl), n)| {
        let subject = if role.is_worker() {
            subject.or(Some("worker-1".into()))
        } else {
            subject
        };
        let mount =
            (name(), path(subject.clone(), 1)).prop_map(|(service, at)| Mount { service, at });
        let scope = (path(subject.clone(), 0), verb(), any::<u32>()).prop_map(
            |(path, verb, rate_per_s)| Scope {
                path,
                verb,
                rate_per_s,
            },
        );
        (
            prop::collection::vec(mount, 0..2),
            prop::collection::vec(scope, 0..3),
        )
            .prop_map(move |(mounts, scopes)| Claims {
                role,
                subject: subject.clone(),
                issued_at_ms: issued,
                expires_at_ms: issued + ttl,
                budget: Budget {
                    ticks: n[0],
                    ops: n[1],
                    ttl_s: n[2],
                },
                mounts,
                scopes,
                quotas: Quotas {
                    bandwidth_bytes: n[3],
                    cursor_resumes: n[4],
                    cursor_advances: n[5],
                },
            })
    })
}

fn sign(payload: &[u8]) -> String {
    let key = blake3::hash(SECRET);
    let mac = blake3::keyed_hash(key.as_bytes(), payload);
    format!("cohesix-ticket-{}.{}", hex::encode(payload), mac.to_hex())
}

proptest! {
    #[test]
    fn claims_round_trip_or_are_refused_as_too_long(claims in claims()) {
        match mint(&claims, SECRET) {
            Ok(ticket) => {
                prop_assert!(ticket.len() <= MAX_TICKET_LEN);
                prop_assert_eq!(verify(&ticket, SECRET, claims.issued_at_ms, &OPEN), Ok(claims));
            }
            Err(TicketError::TooLong { len, max }) => prop_assert!(len > max),
            Err(other) => prop_assert!(false, "unexpected {other:?}"),
        }
    }

    #[test]
    fn arbitrary_text_never_panics(text in "\\PC{0,300}") {
        let _ = verify(&text, SECRET, 0, &OPEN);
    }

    #[test]
    fn arbitrary_hex_never_panics(payload in "[0-9a-f]{0,150}", mac in "[0-9a-f]{0,70}") {
        let _ = verify(&format!("cohesix-ticket-{payload}.{mac}"), SECRET, 0, &OPEN);
    }

    /// A signed payload that verifies is the one canonical encoding of its claims.
    #[test]
    fn signed_garbage_is_refused_or_canonical(
        role in 0u8..6,
        flags in any::<u8>(),
        counts in any::<u8>(),
        tail in prop::collection::vec(any::<u8>(), 0..68),
    ) {
        let mut payload = vec![1, role, flags, counts];
        payload.extend_from_slice(&tail);
        let ticket = sign(&payload);
        if let Ok(claims) = verify(&ticket, SECRET, 0, &OPEN) {
            prop_assert_eq!(mint(&claims, SECRET), Ok(ticket));
        }
    }
}

proptest! {
    /// Re-signing a valid payload with one byte changed never yields a second encoding.
    #[test]
    fn re_signed_mutations_are_refused_or_canonical(
        claims in claims(),
        index in any::<prop::sample::Index>(),
        byte in any::<u8>(),
    ) {
        let Ok(ticket) = mint(&claims, SECRET) else { return Ok(()) };
        let (payload_hex, _) = ticket["cohesix-ticket-".len()..].split_once('.').unwrap();
        let mut payload = hex::decode(payload_hex).unwrap();
        let at = index.index(payload.len());
        payload[at] = byte;
        let mutated = sign(&payload);
        if let Ok(decoded) = verify(&mutated, SECRET, 0, &OPEN) {
            prop_assert_eq!(mint(&decoded, SECRET), Ok(mutated));
        }
    }
}
