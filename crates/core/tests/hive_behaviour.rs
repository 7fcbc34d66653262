//! Behaviour of the hive core, driven deterministically: requests in, a
//! clock advanced by hand, no sockets.

use cohesix_core::{Credential, Hive, HiveInit, NullStore, Secrets, SessionId, Store, Transport};
use cohesix_manifest::Manifest;
use cohesix_ninep::{ErrorClass, OpenMode};
use cohesix_ticket::{Claims, Role};
use std::sync::{Arc, Mutex};

const T0: u64 = 1_700_000_000_000;

fn secrets() -> Secrets {
    let mut s = Secrets::default();
    for role in Role::ALL {
        s.roles.insert(
            role.as_str().into(),
            format!("secret-for-{}", role.as_str()).into_bytes(),
        );
    }
    s
}

fn hive_with(manifest: Manifest, store: Box<dyn Store>, next: u64) -> Hive {
    Hive::new(HiveInit {
        manifest,
        manifest_name: "test".into(),
        secrets: secrets(),
        next_worker_id: next,
        store,
        now_ms: T0,
    })
}

fn hive() -> Hive {
    hive_with(Manifest::default(), Box::new(NullStore), 1)
}

fn ticket(role: Role, subject: Option<&str>, expires_at_ms: u64) -> String {
    let mut claims = Claims::new(role, T0, expires_at_ms);
    claims.subject = subject.map(str::to_string);
    let secret = format!("secret-for-{}", role.as_str());
    cohesix_ticket::mint(&claims, secret.as_bytes()).expect("mint")
}

fn queen(h: &mut Hive) -> SessionId {
    let t = ticket(Role::Queen, None, T0 + 3_600_000);
    h.attach("queen", Credential::Ticket(&t), Transport::NineP)
        .expect("queen attaches")
}

fn worker_session(h: &mut Hive, id: &str) -> Result<SessionId, cohesix_ninep::NsError> {
    let t = ticket(Role::WorkerHeartbeat, Some(id), T0 + 3_600_000);
    h.attach("worker-heartbeat", Credential::Ticket(&t), Transport::NineP)
}

fn spawn(h: &mut Hive, q: SessionId, line: &str) -> String {
    let out = h.append(q, "/queen/ctl", line.as_bytes()).expect("spawn");
    out.reply.expect("spawn names the worker")
}

fn text(h: &mut Hive, sid: SessionId, path: &str) -> String {
    String::from_utf8(h.read_path(sid, path, 1 << 20).expect("read")).expect("utf8")
}

fn pressure_total(h: &Hive) -> u64 {
    let p = h.pressure();
    p.busy + p.quota + p.cut + p.policy
}

#[test]
fn spawned_workers_get_sequential_ids_and_upstream_shard_labels() {
    let mut h = hive();
    let q = queen(&mut h);
    assert_eq!(
        spawn(&mut h, q, r#"{"spawn":"heartbeat","ticks":3}"#),
        "worker-1"
    );
    assert_eq!(
        spawn(&mut h, q, r#"{"spawn":"heartbeat","ticks":3}"#),
        "worker-2"
    );
    assert!(h
        .stat_path(q, "/shard/13/worker/worker-1/telemetry")
        .is_ok());
    assert!(h
        .stat_path(q, "/shard/1c/worker/worker-2/telemetry")
        .is_ok());
    assert!(h.stat_path(q, "/shard/1c/worker/worker-1").is_err());
    assert!(h.stat_path(q, "/worker/worker-2/telemetry").is_ok());
}

#[test]
fn heartbeat_worker_appends_one_record_per_tick_then_idles() {
    let mut h = hive();
    let q = queen(&mut h);
    spawn(&mut h, q, r#"{"spawn":"heartbeat","ticks":2}"#);
    for step in 1..=5 {
        h.advance(T0 + step * 1000);
    }
    let records = text(&mut h, q, "/worker/worker-1/telemetry");
    let expected = format!(
        "{{\"tick\":1,\"ts_ms\":{}}}\n{{\"tick\":2,\"ts_ms\":{}}}\n",
        T0 + 1000,
        T0 + 2000
    );
    assert_eq!(records, expected);
    assert_eq!(h.live_workers(), 1);
}

#[test]
fn ttl_expiry_revokes_worker_and_cuts_its_sessions() {
    let mut h = hive();
    let q = queen(&mut h);
    spawn(
        &mut h,
        q,
        r#"{"spawn":"heartbeat","ticks":100,"budget":{"ttl_s":3}}"#,
    );
    let w = worker_session(&mut h, "worker-1").expect("worker attaches");
    h.advance(T0 + 3000);
    assert_eq!(h.live_workers(), 0);
    let err = h.read_path(w, "/proc/boot", 100).unwrap_err();
    assert_eq!(err.class, ErrorClass::Closed);
    assert!(text(&mut h, q, "/log/queen.log").contains("revoked worker-1: ttl expired"));
}

#[test]
fn tick_budget_below_ticks_revokes_worker() {
    let mut h = hive();
    let q = queen(&mut h);
    spawn(
        &mut h,
        q,
        r#"{"spawn":"heartbeat","ticks":10,"budget":{"ticks":2}}"#,
    );
    for step in 1..=3 {
        h.advance(T0 + step * 1000);
    }
    assert_eq!(h.live_workers(), 0);
    assert!(text(&mut h, q, "/log/queen.log").contains("revoked worker-1: tick budget exhausted"));
}

#[test]
fn ops_budget_exhaustion_revokes_worker() {
    let mut h = hive();
    let q = queen(&mut h);
    spawn(
        &mut h,
        q,
        r#"{"spawn":"heartbeat","ticks":10,"budget":{"ops":3}}"#,
    );
    let w = worker_session(&mut h, "worker-1").unwrap();
    for _ in 0..3 {
        let _ = h.append(w, "/worker/worker-1/telemetry", b"{\"x\":1}");
    }
    assert_eq!(h.live_workers(), 0);
    assert!(text(&mut h, q, "/log/queen.log").contains("revoked worker-1: ops budget exhausted"));
}

#[test]
fn kill_of_unknown_worker_is_not_found_and_changes_nothing() {
    let mut h = hive();
    let q = queen(&mut h);
    spawn(&mut h, q, r#"{"spawn":"heartbeat","ticks":3}"#);
    let err = h
        .append(q, "/queen/ctl", br#"{"kill":"worker-9"}"#)
        .unwrap_err();
    assert_eq!(err.class, ErrorClass::NotFound);
    assert_eq!(h.live_workers(), 1);
    h.append(q, "/queen/ctl", br#"{"kill":"worker-1"}"#)
        .unwrap();
    assert_eq!(h.live_workers(), 0);
    assert!(h.stat_path(q, "/worker/worker-1").is_err());
}

#[test]
fn worker_ids_are_never_reused_across_a_restart() {
    #[derive(Clone, Default)]
    struct Shared(Arc<Mutex<u64>>);
    impl Store for Shared {
        fn reserve_worker_ids(&mut self, upto: u64) -> Result<(), String> {
            *self.0.lock().unwrap() = upto;
            Ok(())
        }
        fn audit(&mut self, _line: &str) {}
    }
    let store = Shared::default();
    let mut h = hive_with(Manifest::default(), Box::new(store.clone()), 1);
    let q = queen(&mut h);
    spawn(&mut h, q, r#"{"spawn":"heartbeat","ticks":3}"#);
    drop(h);
    let next = *store.0.lock().unwrap();
    let mut h = hive_with(Manifest::default(), Box::new(store), next);
    let q = queen(&mut h);
    let id = spawn(&mut h, q, r#"{"spawn":"heartbeat","ticks":3}"#);
    assert_ne!(id, "worker-1");
    assert_eq!(id, format!("worker-{next}"));
}

#[test]
fn worker_cannot_append_to_queen_ctl_or_another_workers_telemetry() {
    let mut h = hive();
    let q = queen(&mut h);
    spawn(&mut h, q, r#"{"spawn":"heartbeat","ticks":3}"#);
    spawn(&mut h, q, r#"{"spawn":"heartbeat","ticks":3}"#);
    let w = worker_session(&mut h, "worker-1").unwrap();
    let before = pressure_total(&h);

    let err = h
        .append(w, "/queen/ctl", br#"{"spawn":"heartbeat","ticks":3}"#)
        .unwrap_err();
    assert_eq!(err.class, ErrorClass::Permission);
    let err = h
        .append(w, "/worker/worker-2/telemetry", b"{\"evil\":1}")
        .unwrap_err();
    assert_eq!(err.class, ErrorClass::Permission);

    assert_eq!(h.live_workers(), 2);
    assert_eq!(text(&mut h, q, "/worker/worker-2/telemetry"), "");
    assert_eq!(pressure_total(&h), before + 2);
    assert!(text(&mut h, q, "/log/queen.log").contains("denied op=open path=/queen/ctl"));
}

#[test]
fn worker_reads_its_own_telemetry_and_boot_but_cannot_list() {
    let mut h = hive();
    let q = queen(&mut h);
    spawn(&mut h, q, r#"{"spawn":"heartbeat","ticks":3}"#);
    let w = worker_session(&mut h, "worker-1").unwrap();
    h.append(w, "/shard/13/worker/worker-1/telemetry", b"{\"mine\":1}\n")
        .unwrap();
    assert_eq!(
        text(&mut h, w, "/worker/worker-1/telemetry"),
        "{\"mine\":1}\n"
    );
    assert!(text(&mut h, w, "/proc/boot").contains("schema=cohesix-manifest/v1"));
    assert!(h.stat_path(w, "/shard/13").is_ok());
    assert_eq!(h.list(w, "/").unwrap_err().class, ErrorClass::Permission);
    assert_eq!(
        h.list(w, "/shard/13").unwrap_err().class,
        ErrorClass::Permission
    );
    assert_eq!(
        h.read_path(w, "/proc/lifecycle/state", 10)
            .unwrap_err()
            .class,
        ErrorClass::Permission
    );
}

#[test]
fn writes_to_proc_are_refused() {
    let mut h = hive();
    let q = queen(&mut h);
    let err = h.append(q, "/proc/boot", b"x").unwrap_err();
    assert_eq!(err.class, ErrorClass::Permission);
    assert_eq!(h.pressure().policy, 1);
}

#[test]
fn unknown_ctl_fields_are_invalid_and_counted() {
    let mut h = hive();
    let q = queen(&mut h);
    let err = h.append(q, "/queen/ctl", br#"{"bogus":1}"#).unwrap_err();
    assert_eq!(
        (err.class, err.detail),
        (ErrorClass::Invalid, "invalid-payload")
    );
    let err = h
        .append(q, "/queen/ctl", b"{\"kill\":\"worker-1\"}\n{\"spawn\":1}")
        .unwrap_err();
    assert_eq!(err.class, ErrorClass::Invalid);
    assert_eq!(h.pressure().policy, 2);
    assert_eq!(text(&mut h, q, "/proc/pressure/policy"), "policy=2\n");
}

#[test]
fn forged_expired_and_wrong_role_tickets_are_refused() {
    let mut h = hive();
    let mut forged = ticket(Role::Queen, None, T0 + 1000);
    let last = forged.pop().unwrap();
    forged.push(if last == '0' { '1' } else { '0' });
    let refuse = |h: &mut Hive, role: &str, t: &str| {
        h.attach(role, Credential::Ticket(t), Transport::NineP)
            .unwrap_err()
    };
    assert_eq!(
        refuse(&mut h, "queen", &forged).class,
        ErrorClass::Permission
    );

    let claims = Claims::new(Role::Queen, T0 - 10_000, T0 - 1);
    let expired = cohesix_ticket::mint(&claims, b"secret-for-queen").unwrap();
    assert_eq!(refuse(&mut h, "queen", &expired).detail, "ticket-expired");

    let worker = ticket(Role::WorkerHeartbeat, Some("worker-1"), T0 + 1000);
    assert_eq!(refuse(&mut h, "queen", &worker).detail, "wrong-role");
    assert_eq!(
        refuse(&mut h, "queen", "garbage").class,
        ErrorClass::Permission
    );
    assert_eq!(h.pressure().policy, 4);
}

#[test]
fn worker_ticket_for_a_worker_that_does_not_exist_is_refused() {
    let mut h = hive();
    assert_eq!(
        worker_session(&mut h, "worker-5").unwrap_err().detail,
        "worker-gone"
    );
}

#[test]
fn console_operator_attaches_as_queen_only() {
    let mut h = hive();
    assert!(h
        .attach("queen", Credential::ConsoleOperator, Transport::Console)
        .is_ok());
    let err = h.attach(
        "worker-heartbeat",
        Credential::ConsoleOperator,
        Transport::Console,
    );
    assert_eq!(err.unwrap_err().detail, "ticket-required");
}

#[test]
fn cordon_refuses_new_work_and_resume_restores_it() {
    let mut h = hive();
    let q = queen(&mut h);
    h.append(q, "/queen/lifecycle/ctl", b"cordon").unwrap();
    assert_eq!(text(&mut h, q, "/proc/lifecycle/state"), "state=DRAINING\n");
    let err = h
        .append(q, "/queen/ctl", br#"{"spawn":"heartbeat","ticks":3}"#)
        .unwrap_err();
    assert_eq!(err.class, ErrorClass::Busy);
    h.append(q, "/queen/lifecycle/ctl", b"resume\n").unwrap();
    spawn(&mut h, q, r#"{"spawn":"heartbeat","ticks":3}"#);
    let log = text(&mut h, q, "/log/queen.log");
    assert!(log.contains("lifecycle ONLINE -> DRAINING cmd=cordon"));
    assert!(log.contains("lifecycle DRAINING -> ONLINE cmd=resume"));
}

#[test]
fn worker_cap_answers_buffer_full() {
    let mut m = Manifest::default();
    m.workers.max_workers = 2;
    let mut h = hive_with(m, Box::new(NullStore), 1);
    let q = queen(&mut h);
    spawn(&mut h, q, r#"{"spawn":"heartbeat","ticks":3}"#);
    spawn(&mut h, q, r#"{"spawn":"heartbeat","ticks":3}"#);
    let err = h
        .append(q, "/queen/ctl", br#"{"spawn":"heartbeat","ticks":3}"#)
        .unwrap_err();
    assert_eq!((err.class, err.detail), (ErrorClass::Quota, "buffer-full"));
    assert_eq!(h.pressure().quota, 1);
}

#[test]
fn a_reader_that_falls_behind_is_told() {
    let mut m = Manifest::default();
    m.workers.ring_bytes = 256;
    let mut h = hive_with(m, Box::new(NullStore), 1);
    let q = queen(&mut h);
    spawn(&mut h, q, r#"{"spawn":"heartbeat","ticks":100}"#);
    h.advance(T0 + 1000);
    let mut open = h
        .open_path(q, "/worker/worker-1/telemetry", OpenMode::Read)
        .unwrap();
    for step in 2..=30 {
        h.advance(T0 + step * 1000);
    }
    let mut out = Vec::new();
    h.read_open(q, &mut open, 0, 4096, &mut out).unwrap();
    let text = String::from_utf8(out).unwrap();
    assert!(text.starts_with("{\"lagged_bytes\":"), "{text}");
    assert!(text.ends_with(&format!("\"ts_ms\":{}}}\n", T0 + 30_000)));
}

#[test]
fn proc_files_follow_the_documented_shapes() {
    let mut h = hive();
    let q = queen(&mut h);
    assert_eq!(text(&mut h, q, "/proc/root/reachable"), "reachable=yes\n");
    assert_eq!(
        text(&mut h, q, "/proc/9p/session/active"),
        "active=1 draining=0\n"
    );
    assert!(
        text(&mut h, q, "/proc/9p/sessions").starts_with("sessions total=1 worker=0 shard_bits=8")
    );
    let names: Vec<String> = h
        .list(q, "/proc/pressure")
        .unwrap()
        .into_iter()
        .map(|e| e.0)
        .collect();
    assert_eq!(names, ["busy", "quota", "cut", "policy"]);
    let owner = format!("/proc/9p/session/{}/owner", q.0);
    assert_eq!(text(&mut h, q, &owner), "owner=queen\n");
}

#[test]
fn bind_makes_a_tree_visible_at_a_second_path_for_that_session_only() {
    let mut h = hive();
    let q = queen(&mut h);
    let other = queen(&mut h);
    h.append(
        q,
        "/queen/ctl",
        br#"{"bind":{"from":"/proc","to":"/shadow"}}"#,
    )
    .unwrap();
    assert_eq!(text(&mut h, q, "/shadow/root/reachable"), "reachable=yes\n");
    assert!(h.list(q, "/").unwrap().iter().any(|(n, _)| n == "shadow"));
    assert_eq!(
        h.read_path(other, "/shadow/boot", 10).unwrap_err().class,
        ErrorClass::NotFound
    );
    let err = h
        .append(q, "/queen/ctl", br#"{"bind":{"from":"/proc","to":"/"}}"#)
        .unwrap_err();
    assert_eq!(err.class, ErrorClass::Invalid);
    h.append(
        q,
        "/queen/ctl",
        br#"{"mount":{"service":"logs","at":"/audit"}}"#,
    )
    .unwrap();
    assert!(text(&mut h, q, "/audit/queen.log").contains("bind /proc -> /shadow"));
}

#[test]
fn oversized_and_multiline_records_are_refused() {
    let mut h = hive();
    let q = queen(&mut h);
    spawn(&mut h, q, r#"{"spawn":"heartbeat","ticks":3}"#);
    let big = vec![b'x'; 1024];
    let err = h.append(q, "/worker/worker-1/telemetry", &big).unwrap_err();
    assert_eq!(err.class, ErrorClass::TooBig);
    let err = h
        .append(q, "/worker/worker-1/telemetry", b"a\nb")
        .unwrap_err();
    assert_eq!(err.class, ErrorClass::Invalid);
    let err = h
        .append(q, "/worker/worker-1/telemetry", &[0xff, 0xfe])
        .unwrap_err();
    assert_eq!(err.class, ErrorClass::Invalid);
    assert_eq!(text(&mut h, q, "/worker/worker-1/telemetry"), "");
}

#[test]
fn empty_uname_takes_the_role_from_the_ticket() {
    use cohesix_ninep::{AttachRequest, Backend};
    let mut h = hive();
    let t = ticket(Role::Queen, None, T0 + 1000);
    let req = AttachRequest {
        uname: "",
        aname: &t,
        auth: None,
        n_uname: 0,
    };
    let sid = Backend::attach(&mut h, req).expect("attach");
    assert_eq!(h.session_role(sid), Some(Role::Queen));
}

#[test]
fn a_ctl_write_with_a_refused_line_runs_none_of_its_lines() {
    let mut h = hive();
    let q = queen(&mut h);
    let audit_before = text(&mut h, q, "/log/queen.log");
    let refused = [
        // spawn, then a kill of a worker that does not exist
        "{\"spawn\":\"heartbeat\",\"ticks\":3}\n{\"kill\":\"worker-999\"}",
        // bind, then an unknown service
        "{\"bind\":{\"from\":\"/shard\",\"to\":\"/shadow\"}}\n{\"mount\":{\"service\":\"nope\",\"at\":\"/x\"}}",
        // spawn, then a GPU lease (no GPU declared)
        "{\"spawn\":\"heartbeat\",\"ticks\":3}\n{\"spawn\":\"gpu\",\"lease\":{\"gpu_id\":\"GPU-0\",\"mem_mb\":1,\"streams\":1,\"ttl_s\":1}}",
    ];
    for (i, write) in refused.iter().enumerate() {
        assert!(
            h.append(q, "/queen/ctl", write.as_bytes()).is_err(),
            "{write}"
        );
        assert_eq!(pressure_total(&h), i as u64 + 1, "counted once: {write}");
    }
    assert_eq!(h.live_workers(), 0, "no worker spawned");
    assert!(h.stat_path(q, "/shadow").is_err(), "no bind kept");
    assert_eq!(text(&mut h, q, "/log/queen.log"), audit_before);

    // A kill of a worker killed earlier in the same write is refused too.
    spawn(&mut h, q, r#"{"spawn":"heartbeat","ticks":3}"#);
    let twice = "{\"kill\":\"worker-1\"}\n{\"kill\":\"worker-1\"}";
    assert!(h.append(q, "/queen/ctl", twice.as_bytes()).is_err());
    assert_eq!(h.live_workers(), 1);

    // Lines that are all good still run in order.
    let good = "{\"kill\":\"worker-1\"}\n{\"spawn\":\"heartbeat\",\"ticks\":3}\n{\"bind\":{\"from\":\"/shard\",\"to\":\"/shadow\"}}";
    let out = h
        .append(q, "/queen/ctl", good.as_bytes())
        .expect("good write");
    assert_eq!(out.reply.as_deref(), Some("worker-2"));
    assert_eq!(h.live_workers(), 1);
    assert!(h.stat_path(q, "/shadow").is_ok());
}

#[test]
fn one_worker_cannot_take_every_session() {
    let mut h = hive();
    let q = queen(&mut h);
    spawn(&mut h, q, r#"{"spawn":"heartbeat","ticks":3}"#);
    let busy = h.pressure().busy;
    let mut held = Vec::new();
    for _ in 0..16 {
        held.push(worker_session(&mut h, "worker-1").expect("within the cap"));
    }
    let e = worker_session(&mut h, "worker-1").expect_err("past the cap");
    assert_eq!((e.class, e.detail), (ErrorClass::Busy, "too-many-sessions"));
    assert_eq!(h.pressure().busy, busy + 1, "counted");
    h.detach(held.pop().expect("one"));
    assert!(worker_session(&mut h, "worker-1").is_ok(), "a slot freed");
    queen(&mut h);
}

#[test]
fn bind_cannot_create_a_loop_and_a_bind_of_a_bind_follows_it() {
    let mut h = hive();
    let q = queen(&mut h);
    let bind = |h: &mut Hive, from: &str, to: &str| {
        let line = format!(r#"{{"bind":{{"from":"{from}","to":"{to}"}}}}"#);
        h.append(q, "/queen/ctl", line.as_bytes())
    };
    bind(&mut h, "/proc", "/shadow").unwrap();
    // /shadow/x -> the real /proc, not to /shadow again.
    bind(&mut h, "/shadow", "/shadow/x").unwrap();
    assert_eq!(
        text(&mut h, q, "/shadow/x/root/reachable"),
        "reachable=yes\n"
    );
    // A chain that would loop back lands on real paths too.
    bind(&mut h, "/shadow/x", "/shadow").unwrap();
    assert_eq!(text(&mut h, q, "/shadow/root/reachable"), "reachable=yes\n");
    // A directory that only leads to a bind target is nothing to bind.
    bind(&mut h, "/proc", "/a/b").unwrap();
    let e = bind(&mut h, "/a", "/c").unwrap_err();
    assert_eq!(e.class, ErrorClass::NotFound);
}

#[test]
fn bind_cannot_shadow_queen_ctl() {
    let mut h = hive();
    let q = queen(&mut h);
    for line in [
        r#"{"bind":{"from":"/proc","to":"/queen"}}"#,
        r#"{"bind":{"from":"/proc","to":"/queen/ctl"}}"#,
        r#"{"mount":{"service":"proc","at":"/queen"}}"#,
    ] {
        let e = h.append(q, "/queen/ctl", line.as_bytes()).unwrap_err();
        assert_eq!(
            (e.class, e.detail),
            (ErrorClass::Invalid, "shadows-ctl"),
            "{line}"
        );
    }
    // The session still controls the hive.
    assert_eq!(
        spawn(&mut h, q, r#"{"spawn":"heartbeat","ticks":3}"#),
        "worker-1"
    );
    // Binds below /queen that leave /queen/ctl alone are fine.
    h.append(
        q,
        "/queen/ctl",
        br#"{"bind":{"from":"/proc","to":"/queen/p"}}"#,
    )
    .unwrap();
}

#[test]
fn an_append_refused_by_the_ticket_budget_is_not_stored() {
    let mut h = hive();
    let q = queen(&mut h);
    spawn(&mut h, q, r#"{"spawn":"heartbeat","ticks":1}"#);
    let mut claims = Claims::new(Role::WorkerHeartbeat, T0, T0 + 3_600_000);
    claims.subject = Some("worker-1".into());
    claims.budget.ops = Some(3);
    claims.quotas.bandwidth_bytes = Some(64);
    let t = cohesix_ticket::mint(&claims, b"secret-for-worker-heartbeat").expect("mint");
    let w = h
        .attach("worker-heartbeat", Credential::Ticket(&t), Transport::NineP)
        .expect("worker attaches");
    let path = "/worker/worker-1/telemetry";
    // open + write: ops 1 and 2.
    h.append(w, path, br#"{"n":1}"#).expect("within the budget");
    // open is op 3, the write would be op 4: refused, and not stored.
    let e = h
        .append(w, path, br#"{"n":2}"#)
        .expect_err("past the ops budget");
    assert_eq!((e.class, e.detail), (ErrorClass::Quota, "ticket-ops"));
    assert_eq!(text(&mut h, q, path), "{\"n\":1}\n");
}

#[test]
fn a_lagged_read_too_small_for_the_marker_is_refused_and_keeps_the_place() {
    let mut m = Manifest::default();
    m.workers.ring_bytes = 256;
    let mut h = hive_with(m, Box::new(NullStore), 1);
    let q = queen(&mut h);
    spawn(&mut h, q, r#"{"spawn":"heartbeat","ticks":100}"#);
    h.advance(T0 + 1000);
    let mut open = h
        .open_path(q, "/worker/worker-1/telemetry", OpenMode::Read)
        .unwrap();
    for step in 2..=30 {
        h.advance(T0 + step * 1000);
    }
    let mut out = Vec::new();
    let e = h.read_open(q, &mut open, 0, 10, &mut out).unwrap_err();
    assert_eq!(
        (e.class, e.detail),
        (ErrorClass::Invalid, "count-too-small")
    );
    // A read with room still learns how far it fell behind.
    out.clear();
    h.read_open(q, &mut open, 0, 4096, &mut out).unwrap();
    let text = String::from_utf8(out).unwrap();
    assert!(text.starts_with("{\"lagged_bytes\":"), "{text}");
}

#[test]
fn ticket_scopes_limit_paths_verbs_and_rate() {
    use cohesix_ticket::{Scope, Verb};
    let mut h = hive();
    let mut claims = Claims::new(Role::Queen, T0, T0 + 60_000);
    claims.scopes = vec![Scope {
        path: "/proc".into(),
        verb: Verb::Read,
        rate_per_s: 2,
    }];
    let t = cohesix_ticket::mint(&claims, b"secret-for-queen").unwrap();
    let s = h
        .attach("queen", Credential::Ticket(&t), Transport::NineP)
        .unwrap();

    assert!(h.read_path(s, "/proc/boot", 100).is_ok());
    let err = h
        .append(s, "/queen/ctl", br#"{"spawn":"heartbeat","ticks":3}"#)
        .unwrap_err();
    assert_eq!(
        (err.class, err.detail),
        (ErrorClass::Permission, "out-of-scope")
    );
    assert_eq!(
        h.read_path(s, "/log/queen.log", 100).unwrap_err().detail,
        "out-of-scope"
    );
    assert!(h.read_path(s, "/proc/root/reachable", 100).is_ok());
    let err = h.read_path(s, "/proc/boot", 100).unwrap_err();
    assert_eq!((err.class, err.detail), (ErrorClass::Quota, "scope-rate"));
    assert_eq!(h.live_workers(), 0);

    h.advance(T0 + 1000);
    assert!(
        h.read_path(s, "/proc/boot", 100).is_ok(),
        "a new second, a new allowance"
    );
}

#[test]
fn ticket_bandwidth_quota_is_enforced() {
    let mut h = hive();
    let mut claims = Claims::new(Role::Queen, T0, T0 + 60_000);
    claims.quotas.bandwidth_bytes = Some(300);
    let t = cohesix_ticket::mint(&claims, b"secret-for-queen").unwrap();
    let s = h
        .attach("queen", Credential::Ticket(&t), Transport::NineP)
        .unwrap();
    let mut refused = None;
    for _ in 0..10 {
        if let Err(e) = h.read_path(s, "/proc/boot", 4096) {
            refused = Some(e);
            break;
        }
    }
    let err = refused.expect("the quota stops the session");
    assert_eq!((err.class, err.detail), (ErrorClass::Quota, "bandwidth"));
}
