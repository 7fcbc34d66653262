//! GPU lease workers: bookkeeping against the manifest's `[gpu]` inventory,
//! the `/gpu` namespace and what a `worker-gpu` session may touch.

use cohesix_core::{Credential, Hive, HiveInit, NullStore, Secrets, SessionId, Transport};
use cohesix_manifest::{GpuDevice, Manifest};
use cohesix_ninep::{ErrorClass, NsError};
use cohesix_ticket::{Claims, Role};

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

fn gpu(id: &str, mem_mb: u32, streams: u32) -> GpuDevice {
    GpuDevice {
        id: id.into(),
        mem_mb,
        streams,
    }
}

/// GPU-0 (1000 MiB, 4 streams) and GPU-1 (500 MiB, 2 streams).
fn manifest() -> Manifest {
    let mut m = Manifest::default();
    m.gpu.devices = vec![gpu("GPU-0", 1000, 4), gpu("GPU-1", 500, 2)];
    m.gpu.max_leases_per_gpu = 3;
    assert_eq!(m.problems(), vec![]);
    m
}

fn hive_with(manifest: Manifest) -> Hive {
    Hive::new(HiveInit {
        manifest,
        manifest_name: "test".into(),
        secrets: secrets(),
        next_worker_id: 1,
        store: Box::new(NullStore),
        now_ms: T0,
    })
}

fn attach(h: &mut Hive, role: Role, subject: Option<&str>) -> Result<SessionId, NsError> {
    let mut claims = Claims::new(role, T0, T0 + 3_600_000);
    claims.subject = subject.map(str::to_string);
    let secret = format!("secret-for-{}", role.as_str());
    let t = cohesix_ticket::mint(&claims, secret.as_bytes()).expect("mint");
    h.attach(role.as_str(), Credential::Ticket(&t), Transport::NineP)
}

fn queen(h: &mut Hive) -> SessionId {
    attach(h, Role::Queen, None).expect("queen attaches")
}

fn lease(gpu_id: &str, mem_mb: u32, streams: u32, ttl_s: u32) -> String {
    format!(
        "{{\"spawn\":\"gpu\",\"lease\":{{\"gpu_id\":\"{gpu_id}\",\"mem_mb\":{mem_mb},\
         \"streams\":{streams},\"ttl_s\":{ttl_s},\"priority\":2}}}}"
    )
}

fn ctl(h: &mut Hive, q: SessionId, line: &str) -> Result<Option<String>, NsError> {
    h.append(q, "/queen/ctl", line.as_bytes()).map(|o| o.reply)
}

fn text(h: &mut Hive, sid: SessionId, path: &str) -> String {
    String::from_utf8(h.read_path(sid, path, 1 << 20).expect("read")).expect("utf8")
}

fn names(h: &mut Hive, sid: SessionId, path: &str) -> Vec<String> {
    let list = h.list(sid, path).expect("list");
    list.into_iter().map(|(name, _)| name).collect()
}

#[test]
fn a_lease_within_capacity_spawns_a_gpu_worker_without_heartbeats() {
    let mut h = hive_with(manifest());
    let q = queen(&mut h);
    let id = ctl(&mut h, q, &lease("GPU-0", 600, 2, 60)).unwrap();
    assert_eq!(id.as_deref(), Some("worker-1"));
    assert_eq!(
        ctl(&mut h, q, &lease("GPU-0", 400, 2, 60))
            .unwrap()
            .as_deref(),
        Some("worker-2")
    );
    assert_eq!(h.live_workers(), 2);
    assert_eq!(
        text(&mut h, q, "/gpu/GPU-0/info"),
        "id=GPU-0 mem_mb=1000 streams=4\n"
    );
    let expires = T0 + 60_000;
    assert_eq!(
        text(&mut h, q, "/gpu/GPU-0/lease"),
        format!(
            "worker=worker-1 mem_mb=600 streams=2 priority=2 expires_ms={expires}\n\
             worker=worker-2 mem_mb=400 streams=2 priority=2 expires_ms={expires}\n"
        )
    );
    assert_eq!(text(&mut h, q, "/gpu/GPU-1/lease"), "");
    let log = text(&mut h, q, "/log/queen.log");
    assert!(log.contains("spawned worker-1 kind=gpu gpu=GPU-0 mem_mb=600 streams=2 ttl_s=60"));

    // No heartbeats: the telemetry ring stays empty as time passes.
    h.advance(T0 + 10_000);
    assert_eq!(text(&mut h, q, "/worker/worker-1/telemetry"), "");
    assert_eq!(h.live_workers(), 2);
    assert_eq!(names(&mut h, q, "/gpu"), ["GPU-0", "GPU-1"]);
    assert_eq!(names(&mut h, q, "/gpu/GPU-0"), ["info", "lease", "job"]);
    assert!(names(&mut h, q, "/").contains(&"gpu".to_string()));
}

#[test]
fn a_lease_over_capacity_is_refused_and_changes_nothing() {
    let mut h = hive_with(manifest());
    let q = queen(&mut h);
    ctl(&mut h, q, &lease("GPU-0", 600, 2, 60)).unwrap();
    let leases = text(&mut h, q, "/gpu/GPU-0/lease");
    let next = text(&mut h, q, "/proc/workers/next_id");
    let quota = h.pressure().quota;
    let over = [
        lease("GPU-0", 401, 1, 60), // memory
        lease("GPU-0", 1, 3, 60),   // streams
        // two lines that fit alone but not together: neither runs
        format!(
            "{}\n{}",
            lease("GPU-0", 300, 1, 60),
            lease("GPU-0", 300, 1, 60)
        ),
    ];
    for (i, write) in over.iter().enumerate() {
        let err = ctl(&mut h, q, write).unwrap_err();
        assert_eq!(err, NsError::quota("gpu-capacity"), "{write}");
        assert_eq!(h.pressure().quota, quota + i as u64 + 1, "counted: {write}");
    }
    assert_eq!(h.live_workers(), 1);
    assert_eq!(text(&mut h, q, "/gpu/GPU-0/lease"), leases);
    assert_eq!(text(&mut h, q, "/proc/workers/next_id"), next);

    // The lease count is bounded too (max_leases_per_gpu = 3).
    ctl(&mut h, q, &lease("GPU-0", 1, 1, 60)).unwrap();
    ctl(&mut h, q, &lease("GPU-0", 1, 1, 60)).unwrap();
    let err = ctl(&mut h, q, &lease("GPU-0", 1, 1, 60)).unwrap_err();
    assert_eq!(err, NsError::quota("gpu-capacity"));

    // A lease of nothing or for no time is malformed.
    for bad in [
        lease("GPU-1", 1, 1, 0),
        lease("GPU-1", 0, 1, 5),
        lease("GPU-1", 1, 0, 5),
    ] {
        assert_eq!(ctl(&mut h, q, &bad).unwrap_err().class, ErrorClass::Invalid);
    }
    assert_eq!(h.live_workers(), 3);
}

#[test]
fn a_lease_on_an_undeclared_gpu_is_not_found() {
    let mut h = hive_with(manifest());
    let q = queen(&mut h);
    let err = ctl(&mut h, q, &lease("GPU-9", 1, 1, 60)).unwrap_err();
    assert_eq!(err, NsError::not_found("unknown-gpu"));
    let mut bare = hive_with(Manifest::default());
    let q = queen(&mut bare);
    let err = ctl(&mut bare, q, &lease("GPU-0", 1, 1, 60)).unwrap_err();
    assert_eq!(err, NsError::not_found("unknown-gpu"));
    assert_eq!(bare.live_workers(), 0);
    assert_eq!(bare.pressure().policy, 1);
}

#[test]
fn an_expired_lease_revokes_its_worker_and_frees_the_gpu() {
    let mut h = hive_with(manifest());
    let q = queen(&mut h);
    ctl(&mut h, q, &lease("GPU-1", 500, 2, 2)).unwrap();
    let w = attach(&mut h, Role::WorkerGpu, Some("worker-1")).expect("worker attaches");
    h.advance(T0 + 1_999);
    assert_eq!(h.live_workers(), 1);
    h.advance(T0 + 2_000);
    assert_eq!(h.live_workers(), 0);
    assert!(text(&mut h, q, "/log/queen.log").contains("revoked worker-1: lease expired"));
    assert_eq!(text(&mut h, q, "/proc/workers/revoked"), "revoked=1\n");
    assert_eq!(text(&mut h, q, "/gpu/GPU-1/lease"), "");
    let err = h.read_path(w, "/gpu/GPU-1/info", 64).unwrap_err();
    assert_eq!(err.class, ErrorClass::Closed);
    assert!(
        ctl(&mut h, q, &lease("GPU-1", 500, 2, 2)).is_ok(),
        "capacity is free again"
    );
}

#[test]
fn killing_a_gpu_worker_releases_its_capacity() {
    let mut h = hive_with(manifest());
    let q = queen(&mut h);
    ctl(&mut h, q, &lease("GPU-1", 500, 2, 60)).unwrap();
    let err = ctl(&mut h, q, &lease("GPU-1", 1, 1, 60)).unwrap_err();
    assert_eq!(err, NsError::quota("gpu-capacity"));
    ctl(&mut h, q, "{\"kill\":\"worker-1\"}").unwrap();
    assert_eq!(text(&mut h, q, "/gpu/GPU-1/lease"), "");
    assert_eq!(
        ctl(&mut h, q, &lease("GPU-1", 500, 2, 60))
            .unwrap()
            .as_deref(),
        Some("worker-2")
    );
    // A kill and a spawn in one write: the kill frees what the spawn books.
    let write = format!("{{\"kill\":\"worker-2\"}}\n{}", lease("GPU-1", 500, 2, 60));
    assert_eq!(ctl(&mut h, q, &write).unwrap().as_deref(), Some("worker-3"));
    assert_eq!(h.live_workers(), 1);
}

#[test]
fn a_gpu_worker_reads_its_gpu_and_appends_jobs_but_is_refused_the_rest() {
    let mut h = hive_with(manifest());
    let q = queen(&mut h);
    ctl(&mut h, q, &lease("GPU-0", 100, 1, 60)).unwrap();
    ctl(&mut h, q, &lease("GPU-1", 100, 1, 60)).unwrap();
    let w = attach(&mut h, Role::WorkerGpu, Some("worker-1")).expect("worker attaches");

    for path in ["/", "/gpu", "/gpu/GPU-0", "/gpu/GPU-0/info", "/proc/boot"] {
        assert!(h.stat_path(w, path).is_ok(), "{path}");
    }
    assert_eq!(names(&mut h, w, "/gpu"), ["GPU-0"]);
    assert_eq!(
        text(&mut h, w, "/gpu/GPU-0/info"),
        "id=GPU-0 mem_mb=1000 streams=4\n"
    );
    assert!(text(&mut h, w, "/gpu/GPU-0/lease").starts_with("worker=worker-1 mem_mb=100"));
    h.append(w, "/gpu/GPU-0/job", b"{\"job\":\"matmul\"}\n")
        .expect("job appended");
    assert_eq!(text(&mut h, w, "/gpu/GPU-0/job"), "{\"job\":\"matmul\"}\n");
    assert_eq!(text(&mut h, q, "/gpu/GPU-0/job"), "{\"job\":\"matmul\"}\n");
    h.append(w, "/worker/worker-1/telemetry", b"{\"util\":0.5}")
        .expect("own telemetry");
    assert!(!text(&mut h, w, "/log/queen.log").is_empty());

    let big = vec![b'x'; 2048];
    let err = h.append(w, "/gpu/GPU-0/job", &big).unwrap_err();
    assert_eq!(err.class, ErrorClass::TooBig);

    let policy = h.pressure().policy;
    let refused: [(&str, Option<&[u8]>); 6] = [
        ("/gpu/GPU-1", None),
        ("/gpu/GPU-1/info", None),
        ("/gpu/GPU-1/lease", None),
        ("/gpu/GPU-1/job", Some(b"x")),
        ("/queen/ctl", Some(b"{\"kill\":\"worker-2\"}")),
        ("/gpu/GPU-0/info", Some(b"x")),
    ];
    for (path, write) in refused {
        let err = match write {
            None => h.stat_path(w, path).unwrap_err(),
            Some(data) => h.append(w, path, data).unwrap_err(),
        };
        assert_eq!(err.class, ErrorClass::Permission, "{path}");
    }
    assert_eq!(h.pressure().policy, policy + 6, "each refusal counted");
    assert_eq!(h.live_workers(), 2);

    // A heartbeat-role ticket for the same worker gets no GPU files.
    let hb = attach(&mut h, Role::WorkerHeartbeat, Some("worker-1")).expect("attaches");
    assert_eq!(
        h.stat_path(hb, "/gpu/GPU-0/info").unwrap_err().class,
        ErrorClass::Permission
    );
}

#[test]
fn gpu_is_absent_from_the_root_without_declared_devices() {
    let mut h = hive_with(Manifest::default());
    let q = queen(&mut h);
    assert!(!names(&mut h, q, "/").contains(&"gpu".to_string()));
    assert_eq!(
        h.stat_path(q, "/gpu").unwrap_err().class,
        ErrorClass::NotFound
    );
    assert_eq!(
        h.stat_path(q, "/gpu/GPU-0/info").unwrap_err().class,
        ErrorClass::NotFound
    );
}
