//! The console's verbs against a live hive: spawn, tail, kill, log, help,
//! quit, lifecycle refusals and the worker cap, with their exact acks.

mod common;

use common::Console;
use std::time::Duration;

fn fast_manifest() -> cohesix_manifest::Manifest {
    let mut manifest = common::manifest();
    manifest.workers.heartbeat_interval_ms = 10;
    manifest
}

/// TAILs `path` until a record containing `needle` shows up.
async fn tail_until(c: &mut Console, path: &str, needle: &str) -> Vec<String> {
    for _ in 0..200 {
        let frames = c.request(&format!("TAIL {path}")).await;
        if frames.iter().any(|f| f.contains(needle)) {
            return frames;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("{needle} never appeared in {path}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spawn_tail_and_kill_a_heartbeat_worker() {
    let dir = tempfile::tempdir().unwrap();
    let hive = common::start(&dir, fast_manifest()).await;
    let mut c = Console::queen(&hive).await;

    c.expect(
        "SPAWN heartbeat ticks=2 ttl_s=60 ops=100",
        &["OK SPAWN id=worker-1"],
    )
    .await;
    let frames = tail_until(&mut c, "/worker/worker-1/telemetry", "\"tick\":2").await;
    assert_eq!(frames[0], "OK TAIL path=/worker/worker-1/telemetry");
    assert!(
        frames[1].starts_with("{\"tick\":1,\"ts_ms\":"),
        "{frames:?}"
    );
    assert_eq!(frames.last().map(String::as_str), Some("END"));
    c.expect(
        "LS /worker",
        &["OK LS path=/worker entries=1", "worker-1", "END"],
    )
    .await;

    c.expect("KILL worker-1", &["OK KILL id=worker-1"]).await;
    c.expect(
        "KILL worker-1",
        &["ERR KILL reason=policy detail=unknown-worker error=unknown worker"],
    )
    .await;
    c.expect(
        "TAIL /worker/worker-1/telemetry",
        &[
            "ERR TAIL reason=policy detail=invalid-path path=/worker/worker-1/telemetry \
           error=invalid path",
        ],
    )
    .await;

    let log = c.request("LOG").await;
    assert_eq!(log[0], "OK LOG path=/log/queen.log");
    assert!(
        log.iter().any(|l| l.contains("spawned worker-1")),
        "{log:?}"
    );
    assert!(log.iter().any(|l| l.contains("killed worker-1")), "{log:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_workers_session_is_cut() {
    let dir = tempfile::tempdir().unwrap();
    let hive = common::start(&dir, common::manifest()).await;
    let mut queen = Console::queen(&hive).await;
    queen
        .expect("SPAWN heartbeat ticks=5", &["OK SPAWN id=worker-1"])
        .await;

    let mut worker = Console::queen(&hive).await;
    let ticket = common::worker_ticket(&hive, "worker-1");
    worker
        .expect(
            &format!("ATTACH worker-heartbeat {ticket}"),
            &["OK ATTACH role=worker-heartbeat"],
        )
        .await;
    worker
        .expect(
            "ECHO /worker/worker-1/telemetry {\"ok\":true}",
            &["OK ECHO path=/worker/worker-1/telemetry bytes=11"],
        )
        .await;
    worker
        .expect(
            "CAT /queen/ctl",
            &["ERR CAT reason=policy detail=invalid-path path=/queen/ctl error=invalid path"],
        )
        .await;

    queen
        .expect("KILL worker-1", &["OK KILL id=worker-1"])
        .await;
    worker
        .expect(
            "CAT /proc/boot",
            &["ERR CAT reason=cut detail=revoked path=/proc/boot error=revoked"],
        )
        .await;
    // The connection lives and may attach again.
    worker
        .expect("ATTACH queen", &["OK ATTACH role=queen"])
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn new_work_is_refused_while_cordoned() {
    let dir = tempfile::tempdir().unwrap();
    let hive = common::start(&dir, common::manifest()).await;
    let mut c = Console::queen(&hive).await;

    c.expect(
        "ECHO /queen/lifecycle/ctl cordon",
        &["OK ECHO path=/queen/lifecycle/ctl bytes=6"],
    )
    .await;
    c.expect(
        "SPAWN heartbeat ticks=1",
        &["ERR SPAWN reason=busy detail=lifecycle error=lifecycle"],
    )
    .await;
    c.expect(
        "ECHO /queen/lifecycle/ctl cordon",
        &[
            "ERR ECHO reason=policy detail=invalid-transition path=/queen/lifecycle/ctl \
           error=invalid transition",
        ],
    )
    .await;
    c.expect(
        "ECHO /queen/lifecycle/ctl resume",
        &["OK ECHO path=/queen/lifecycle/ctl bytes=6"],
    )
    .await;
    c.expect("SPAWN heartbeat ticks=1", &["OK SPAWN id=worker-1"])
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn worker_cap_answers_buffer_full_as_upstream() {
    let dir = tempfile::tempdir().unwrap();
    let mut manifest = common::manifest();
    manifest.workers.max_workers = 8;
    let hive = common::start(&dir, manifest).await;
    let mut c = Console::queen(&hive).await;

    let spawn = r#"ECHO /queen/ctl {"spawn":"heartbeat","ticks":3}"#;
    for _ in 0..8 {
        c.expect(spawn, &["OK ECHO path=/queen/ctl bytes=31"]).await;
    }
    c.expect(
        spawn,
        &["ERR ECHO reason=quota detail=buffer-full path=/queen/ctl error=buffer full"],
    )
    .await;
    c.expect(
        "SPAWN heartbeat ticks=3",
        &["ERR SPAWN reason=quota detail=buffer-full error=buffer full"],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn help_lists_the_verbs_and_quit_ends_the_session() {
    let dir = tempfile::tempdir().unwrap();
    let hive = common::start(&dir, common::manifest()).await;
    let mut c = Console::queen(&hive).await;

    let help = c.request("HELP").await;
    assert_eq!(help[0], "OK HELP");
    for verb in [
        "AUTH", "ATTACH", "PING", "LS", "CAT", "TAIL", "ECHO", "LOG", "SPAWN", "KILL",
    ] {
        assert!(
            help.iter().any(|l| l.starts_with(verb)),
            "{verb} in {help:?}"
        );
    }
    c.expect("QUIT", &["OK QUIT"]).await;
    c.expect_close(0).await;

    // The session is gone from /proc/9p/session/active.
    let mut other = Console::queen(&hive).await;
    let mut active = String::new();
    for _ in 0..100 {
        let frames = other.request("CAT /proc/9p/session/active").await;
        active = frames[1].clone();
        if active == "active=1 draining=0" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(active, "active=1 draining=0");
}
