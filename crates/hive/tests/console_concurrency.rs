//! Many console clients at once: each spawns its own worker, attaches to it
//! with a worker ticket, appends and reads back its telemetry, and never
//! sees another client's records.
//!
//! The same test is the 256-client benchmark of the console issue:
//! `COHESIX_CONSOLE_CLIENTS=256 COHESIX_CONSOLE_SECS=60 cargo test -p cohesix-hive \
//!  --test console_concurrency -- --nocapture` runs every client for a minute.

mod common;

use common::Console;

use std::time::{Duration, Instant};

/// Clients and rounds in CI; the environment can raise both.
const CLIENTS: usize = 32;
const ROUNDS: usize = 150;

fn knob(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Runs one client; returns its worker and the rounds it completed.
async fn client(
    hive: &cohesix_hive::RunningHive,
    n: usize,
    rounds: usize,
    until: Option<Instant>,
) -> (String, usize) {
    let mut c = Console::queen(hive).await;
    let ack = c.request("SPAWN heartbeat ticks=1000 ops=1000000000").await;
    let worker = ack[0]
        .strip_prefix("OK SPAWN id=")
        .unwrap_or_else(|| panic!("client {n}: {ack:?}"))
        .to_string();

    let ticket = common::worker_ticket(hive, &worker);
    c.expect(
        &format!("ATTACH worker-heartbeat {ticket}"),
        &["OK ATTACH role=worker-heartbeat"],
    )
    .await;
    let telemetry = format!("/worker/{worker}/telemetry");
    let mut done = 0;
    for round in 0..rounds {
        if until.is_some_and(|t| Instant::now() >= t) {
            break;
        }
        done += 1;
        let record = format!("{{\"client\":{n},\"round\":{round}}}");
        let ack = c.request(&format!("ECHO {telemetry} {record}")).await;
        let expected = format!("OK ECHO path={telemetry} bytes={}", record.len());
        assert_eq!(ack, [expected], "client {n} round {round}");

        let frames = c.request(&format!("TAIL {telemetry}")).await;
        assert_eq!(frames[0], format!("OK TAIL path={telemetry}"));
        assert_eq!(frames.last().map(String::as_str), Some("END"));
        let records = &frames[1..frames.len() - 1];
        assert!(
            records.contains(&record),
            "client {n} reads back its own record: {records:?}"
        );
        let mine = format!("{{\"client\":{n},");
        for r in records {
            assert!(
                r.starts_with(&mine) || r.starts_with("{\"tick\":"),
                "client {n} saw someone else's record {r}"
            );
        }
        if round % 10 == 0 {
            let boot = c.request("CAT /proc/boot").await;
            assert!(boot[0].starts_with("OK CAT path=/proc/boot data=cohesix-hive"));
        }
    }
    (worker, done)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thirty_two_clients_work_at_once_without_cross_talk() {
    let dir = tempfile::tempdir().unwrap();
    let hive = std::sync::Arc::new(common::start(&dir, common::manifest()).await);

    let clients = knob("COHESIX_CONSOLE_CLIENTS", CLIENTS);
    let secs = knob("COHESIX_CONSOLE_SECS", 0);
    let (rounds, until) = match secs {
        0 => (ROUNDS, None),
        s => (
            usize::MAX,
            Some(Instant::now() + Duration::from_secs(s as u64)),
        ),
    };
    let started = Instant::now();
    let mut tasks = Vec::new();
    for n in 0..clients {
        let hive = hive.clone();
        tasks.push(tokio::spawn(async move {
            client(&hive, n, rounds, until).await
        }));
    }
    let mut workers = Vec::new();
    let mut total_rounds = 0;
    for task in tasks {
        let (worker, done) = task.await.expect("client task");
        workers.push(worker);
        total_rounds += done;
    }
    eprintln!(
        "console concurrency: {clients} clients, {total_rounds} rounds (ECHO + TAIL each) in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    workers.sort();
    workers.dedup();
    assert_eq!(workers.len(), clients, "every client got its own worker");

    let pressure = hive.shared.with_hive(|h| h.pressure());
    assert_eq!(
        (pressure.busy, pressure.quota, pressure.cut, pressure.policy),
        (0, 0, 0, 0),
        "no refusals"
    );

    // A worker may not touch another worker's telemetry.
    let mut c = Console::queen(&hive).await;
    let ticket = common::worker_ticket(&hive, &workers[0]);
    c.expect(
        &format!("ATTACH worker-heartbeat {ticket}"),
        &["OK ATTACH role=worker-heartbeat"],
    )
    .await;
    let other = format!("/worker/{}/telemetry", workers[1]);
    let expected =
        format!("ERR ECHO reason=policy detail=invalid-path path={other} error=invalid path");
    c.expect(&format!("ECHO {other} {{\"x\":1}}"), &[expected.as_str()])
        .await;
}
