//! Behaviour of minted tickets at verification: round trips, every refusal, tampering.

use cohesix_ticket::{
    mint, peek_role, verify, verify_for, Claims, Limits, Mount, Role, Scope, TicketError, Verb,
    MAX_TICKET_LEN,
};

const SECRET: &[u8] = b"hb-secret-never-logged";
const NOW: u64 = 1_733_300_000_000;
const MINUTE: u64 = 60_000;

/// A change applied to a fixture in a table of cases.
type Edit<T> = fn(&mut T);

fn worker(subject: &str) -> Claims {
    let mut claims = Claims::new(Role::WorkerHeartbeat, NOW, NOW + 5 * MINUTE);
    claims.subject = Some(subject.to_string());
    claims.budget.ticks = Some(1000);
    claims.budget.ops = Some(10_000);
    claims.budget.ttl_s = Some(300);
    claims.scopes = vec![
        Scope {
            path: format!("/worker/{subject}/telemetry"),
            verb: Verb::Write,
            rate_per_s: 64,
        },
        Scope {
            path: "/log/queen.log".into(),
            verb: Verb::Read,
            rate_per_s: 8,
        },
    ];
    claims
}

fn minted(claims: &Claims) -> String {
    mint(claims, SECRET).unwrap()
}

fn check(ticket: &str) -> Result<Claims, TicketError> {
    verify(ticket, SECRET, NOW + 1, &Limits::default())
}

#[test]
fn worker_ticket_round_trips() {
    let claims = worker("worker-7");
    assert_eq!(check(&minted(&claims)), Ok(claims));
}

#[test]
fn queen_ticket_with_everything_round_trips() {
    let mut claims = Claims::new(Role::Queen, NOW, NOW + 30 * 24 * 60 * MINUTE);
    claims.mounts.push(Mount {
        service: "logs".into(),
        at: "/log".into(),
    });
    claims.scopes.push(Scope {
        path: "/".into(),
        verb: Verb::ReadWrite,
        rate_per_s: 0,
    });
    claims.quotas.bandwidth_bytes = Some(128 * 1024);
    claims.quotas.cursor_resumes = Some(16);
    claims.quotas.cursor_advances = Some(256);
    let ticket = minted(&claims);
    assert_eq!(check(&ticket), Ok(claims));
    assert_eq!(peek_role(&ticket), Ok(Role::Queen));
}

#[test]
fn largest_worker_id_with_two_scopes_fits() {
    let ticket = minted(&worker("worker-999999"));
    assert!(ticket.len() <= MAX_TICKET_LEN, "{} chars", ticket.len());
    assert!(ticket.starts_with("cohesix-ticket-"));
    assert_eq!(
        check(&ticket).unwrap().subject.as_deref(),
        Some("worker-999999")
    );
}

#[test]
fn minting_too_much_is_refused_not_truncated() {
    let mut claims = worker("worker-1");
    for index in 0..6 {
        let path = format!("/gpu/GPU-{index}/some-long-component-name");
        claims.scopes.push(Scope {
            path,
            verb: Verb::Read,
            rate_per_s: 1,
        });
    }
    let err = mint(&claims, SECRET).unwrap_err();
    assert!(
        matches!(err, TicketError::TooLong { len, max: 224 } if len > 224),
        "{err:?}"
    );
}

#[test]
fn overlong_text_is_refused_before_decoding() {
    let text = format!("cohesix-ticket-{}", "zz".repeat(200));
    assert_eq!(
        check(&text),
        Err(TicketError::TooLong { len: 415, max: 224 })
    );
}

#[test]
fn malformed_texts_are_refused() {
    let good = minted(&worker("worker-7"));
    let (payload, mac) = good["cohesix-ticket-".len()..].split_once('.').unwrap();
    let cases = [
        (String::new(), "missing cohesix-ticket- prefix"),
        (
            good.replacen("cohesix", "Cohesix", 1),
            "missing cohesix-ticket- prefix",
        ),
        (good.replace('.', ""), "missing MAC"),
        (
            format!("cohesix-ticket-.{mac}"),
            "payload is not whole hex bytes",
        ),
        (
            format!("cohesix-ticket-{payload}0.{mac}"),
            "payload is not whole hex bytes",
        ),
        (
            format!("cohesix-ticket-{payload}.{}", &mac[2..]),
            "MAC is not 64 hex digits",
        ),
        (
            good.to_uppercase()
                .replacen("COHESIX-TICKET-", "cohesix-ticket-", 1),
            "not lowercase hex",
        ),
        (
            format!(
                "cohesix-ticket-{payload}.{}",
                mac.replacen(|_| true, "g", 1)
            ),
            "not lowercase hex",
        ),
        ("cohesix-ticket-01.".to_string() + mac, "payload too short"),
    ];
    for (text, reason) in cases {
        assert_eq!(
            check(&text),
            Err(TicketError::Malformed { reason }),
            "{text}"
        );
    }
}

#[test]
fn unknown_version_is_refused() {
    let good = minted(&worker("worker-7"));
    let bumped = good.replacen("cohesix-ticket-01", "cohesix-ticket-02", 1);
    assert_eq!(
        check(&bumped),
        Err(TicketError::UnsupportedVersion { version: 2 })
    );
    assert_eq!(
        peek_role(&bumped),
        Err(TicketError::UnsupportedVersion { version: 2 })
    );
}

#[test]
fn another_roles_secret_does_not_verify() {
    let ticket = minted(&worker("worker-7"));
    let secrets = |role: Role| match role {
        Role::Queen => Some(b"queen-secret".to_vec()),
        Role::WorkerHeartbeat => Some(b"other-secret".to_vec()),
        _ => None,
    };
    assert_eq!(
        verify(&ticket, &secrets, NOW, &Limits::default()),
        Err(TicketError::BadMac)
    );
}

#[test]
fn per_role_secrets_are_looked_up_by_the_tickets_role() {
    let ticket = minted(&worker("worker-7"));
    let secrets = |role: Role| (role == Role::WorkerHeartbeat).then(|| SECRET.to_vec());
    assert!(verify(&ticket, &secrets, NOW, &Limits::default()).is_ok());
    let none = |_: Role| None;
    assert_eq!(
        verify(&ticket, &none, NOW, &Limits::default()),
        Err(TicketError::NoSecret {
            role: Role::WorkerHeartbeat
        })
    );
}

#[test]
fn empty_secrets_are_refused() {
    let claims = worker("worker-7");
    assert_eq!(mint(&claims, b""), Err(TicketError::EmptySecret));
    let ticket = minted(&claims);
    assert_eq!(
        verify(&ticket, "", NOW, &Limits::default()),
        Err(TicketError::EmptySecret)
    );
}

#[test]
fn expired_tickets_are_refused_from_their_expiry_on() {
    let claims = worker("worker-7");
    let ticket = minted(&claims);
    let limits = Limits::default();
    assert!(verify(&ticket, SECRET, claims.expires_at_ms - 1, &limits).is_ok());
    assert_eq!(
        verify(&ticket, SECRET, claims.expires_at_ms, &limits),
        Err(TicketError::Expired {
            expires_at_ms: claims.expires_at_ms,
            now_ms: claims.expires_at_ms
        })
    );
}

#[test]
fn attach_checks_role_and_subject() {
    let ticket = minted(&worker("worker-7"));
    let limits = Limits::default();
    let attach = |role, subject| verify_for(&ticket, role, subject, SECRET, NOW, &limits);
    assert!(attach(Role::WorkerHeartbeat, Some("worker-7")).is_ok());
    assert_eq!(
        attach(Role::WorkerGpu, Some("worker-7")),
        Err(TicketError::WrongRole {
            expected: Role::WorkerGpu,
            found: Role::WorkerHeartbeat
        })
    );
    assert_eq!(
        attach(Role::WorkerHeartbeat, Some("worker-8")),
        Err(TicketError::SubjectMismatch {
            expected: "worker-8".into(),
            found: "worker-7".into()
        })
    );
}

#[test]
fn worker_tickets_need_a_subject() {
    let mut claims = worker("worker-7");
    claims.subject = None;
    claims.scopes.clear();
    assert_eq!(
        mint(&claims, SECRET),
        Err(TicketError::MissingSubject {
            role: Role::WorkerHeartbeat
        })
    );
}

#[test]
fn claims_of_the_wrong_shape_are_not_minted() {
    let cases: [(Edit<Claims>, &str); 6] = [
        (|c| c.subject = Some("../queen".into()), "subject"),
        (|c| c.subject = Some("worker/7".into()), "subject"),
        (|c| c.expires_at_ms = c.issued_at_ms, "expires_at_ms"),
        (|c| c.scopes[0].path = "worker/x".into(), "scope.path"),
        (
            |c| {
                c.mounts.push(Mount {
                    service: "logs".into(),
                    at: "/".into(),
                })
            },
            "mount.at",
        ),
        (
            |c| {
                c.mounts.push(Mount {
                    service: "a b".into(),
                    at: "/x".into(),
                })
            },
            "mount.service",
        ),
    ];
    for (change, field) in cases {
        let mut claims = worker("worker-7");
        change(&mut claims);
        let err = mint(&claims, SECRET).unwrap_err();
        assert!(
            matches!(err, TicketError::InvalidClaim { field: f, .. } if f == field),
            "{err}"
        );
    }
}

#[test]
fn claims_above_the_manifest_limits_are_refused() {
    let cases: [(Edit<Limits>, &str, u64, u64); 5] = [
        (|l| l.max_scopes = 1, "scopes", 2, 1),
        (|l| l.max_scope_rate_per_s = 32, "scope.rate_per_s", 64, 32),
        (
            |l| l.max_bandwidth_bytes = 1024,
            "bandwidth_bytes",
            2048,
            1024,
        ),
        (|l| l.max_cursor_resumes = 0, "cursor_resumes", 1, 0),
        (|l| l.max_cursor_advances = 2, "cursor_advances", 3, 2),
    ];
    let mut claims = worker("worker-7");
    claims.quotas.bandwidth_bytes = Some(2048);
    claims.quotas.cursor_resumes = Some(1);
    claims.quotas.cursor_advances = Some(3);
    let ticket = minted(&claims);
    for (tighten, what, value, max) in cases {
        let mut limits = Limits::default();
        tighten(&mut limits);
        assert_eq!(
            verify(&ticket, SECRET, NOW, &limits),
            Err(TicketError::LimitExceeded { what, value, max })
        );
    }
}

#[test]
fn changing_any_single_character_invalidates_the_ticket() {
    let ticket = minted(&worker("worker-7"));
    for index in 0..ticket.len() {
        for replacement in ['0', '1', 'f', 'F', 'g', '.', '-'] {
            let mut bytes = ticket.clone().into_bytes();
            if bytes[index] == replacement as u8 {
                continue;
            }
            bytes[index] = replacement as u8;
            let tampered = String::from_utf8(bytes).unwrap();
            assert!(
                check(&tampered).is_err(),
                "index {index} -> {replacement}: {tampered}"
            );
        }
    }
}

#[test]
fn flipping_any_payload_bit_breaks_the_mac() {
    let ticket = minted(&worker("worker-7"));
    let (payload_hex, mac) = ticket["cohesix-ticket-".len()..].split_once('.').unwrap();
    let payload = hex::decode(payload_hex).unwrap();
    for bit in 0..payload.len() * 8 {
        let mut flipped = payload.clone();
        flipped[bit / 8] ^= 1 << (bit % 8);
        let text = format!("cohesix-ticket-{}.{mac}", hex::encode(&flipped));
        assert!(check(&text).is_err(), "bit {bit}");
    }
}

#[test]
fn messages_never_carry_the_secret_or_the_mac() {
    let claims = worker("worker-7");
    let ticket = minted(&claims);
    let mac = ticket.rsplit_once('.').unwrap().1;
    let secret = std::str::from_utf8(SECRET).unwrap();
    let errors = [
        verify(&ticket, "wrong", NOW, &Limits::default()).unwrap_err(),
        verify(&ticket, SECRET, u64::MAX, &Limits::default()).unwrap_err(),
        verify(&ticket[..ticket.len() - 1], SECRET, NOW, &Limits::default()).unwrap_err(),
        verify_for(&ticket, Role::Queen, None, SECRET, NOW, &Limits::default()).unwrap_err(),
    ];
    for err in errors {
        let shown = format!("{err} {err:?}");
        assert!(!shown.contains(secret) && !shown.contains(mac), "{shown}");
    }
}

#[test]
fn messages_read_as_short_lowercase_sentences() {
    let shown = [
        TicketError::BadMac.to_string(),
        TicketError::Expired {
            expires_at_ms: 5,
            now_ms: 6,
        }
        .to_string(),
        TicketError::LimitExceeded {
            what: "scopes",
            value: 9,
            max: 8,
        }
        .to_string(),
        TicketError::MissingSubject {
            role: Role::WorkerGpu,
        }
        .to_string(),
    ];
    assert_eq!(
        shown,
        [
            "ticket signature does not match",
            "ticket expired at 5 ms (now 6 ms)",
            "ticket claim scopes is 9, the limit is 8",
            "ticket for role worker-gpu has no subject",
        ]
    );
}
