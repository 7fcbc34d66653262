//! Hostile and broken console clients: each gets its documented answer,
//! the refusal is counted, and the hive keeps serving everyone else.

mod common;

use cohesix_hive::console::{self, ConsoleOptions};
use common::Console;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpSocket};

fn header(len: u32) -> [u8; 4] {
    len.to_le_bytes()
}

async fn authed(hive: &cohesix_hive::RunningHive) -> Console {
    let mut c = Console::connect(common::console_addr(hive)).await;
    c.expect(&format!("AUTH {}", common::token(hive)), &["OK AUTH"])
        .await;
    c
}

/// Checks the hive still serves a fresh client.
async fn still_serving(hive: &cohesix_hive::RunningHive) {
    let mut c = Console::queen(hive).await;
    c.expect("PING", &["OK PING reply=pong", "PONG"]).await;
}

fn rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_before_auth_is_refused_and_closed() {
    let dir = tempfile::tempdir().unwrap();
    let hive = common::start(&dir, common::manifest()).await;

    let mut c = Console::connect(common::console_addr(&hive)).await;
    c.send_raw(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").await;
    assert_eq!(
        c.recv().await.as_deref(),
        Some("ERR AUTH reason=policy detail=invalid-frame")
    );
    c.expect_close(0).await;

    let policy = hive.shared.with_hive(|h| h.pressure().policy);
    assert!(policy >= 1, "the refusal is counted");
    still_serving(&hive).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_token_or_no_auth_first_is_refused_and_closed() {
    let dir = tempfile::tempdir().unwrap();
    let hive = common::start(&dir, common::manifest()).await;
    let addr = common::console_addr(&hive);

    let mut c = Console::connect(addr).await;
    c.send("AUTH not-the-token").await;
    assert_eq!(
        c.recv().await.as_deref(),
        Some("ERR AUTH reason=policy detail=invalid-token")
    );
    c.expect_close(0).await;

    let mut c = Console::connect(addr).await;
    c.send("ATTACH queen").await;
    assert_eq!(
        c.recv().await.as_deref(),
        Some("ERR AUTH reason=policy detail=auth-required")
    );
    c.expect_close(0).await;

    let mut c = Console::connect(addr).await;
    c.send("AUTH").await;
    assert_eq!(
        c.recv().await.as_deref(),
        Some("ERR AUTH reason=policy detail=auth-required")
    );
    c.expect_close(0).await;
    still_serving(&hive).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silent_client_is_cut_after_the_auth_timeout() {
    let dir = tempfile::tempdir().unwrap();
    let mut manifest = common::manifest();
    manifest.console.auth_timeout_ms = 100;
    let hive = common::start(&dir, manifest).await;

    let mut c = Console::connect(common::console_addr(&hive)).await;
    assert_eq!(
        c.recv().await.as_deref(),
        Some("ERR AUTH reason=cut detail=timeout")
    );
    c.expect_close(0).await;
    still_serving(&hive).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lengths_below_the_header_are_answered_and_close() {
    let dir = tempfile::tempdir().unwrap();
    let hive = common::start(&dir, common::manifest()).await;

    for len in [0, 3] {
        let mut c = authed(&hive).await;
        c.send_raw(&header(len)).await;
        assert_eq!(
            c.recv().await.as_deref(),
            Some("ERR FRAME reason=invalid-length detail=below-header"),
            "length {len}"
        );
        c.expect_close(0).await;

        let mut c = Console::connect(common::console_addr(&hive)).await;
        c.send_raw(&header(len)).await;
        assert_eq!(
            c.recv().await.as_deref(),
            Some("ERR AUTH reason=policy detail=invalid-frame"),
            "length {len} before AUTH"
        );
        c.expect_close(0).await;
    }
    still_serving(&hive).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_frame_is_skipped_and_the_session_lives() {
    let dir = tempfile::tempdir().unwrap();
    let hive = common::start(&dir, common::manifest()).await;
    let max = hive.shared.manifest.console.max_line_bytes;

    let mut c = Console::queen(&hive).await;
    let mut big = header(max + 5).to_vec();
    big.extend(std::iter::repeat_n(b'x', max as usize + 1));
    c.send_raw(&big).await;
    assert_eq!(
        c.recv().await.as_deref(),
        Some("ERR FRAME reason=invalid-length")
    );
    c.expect("PING", &["OK PING reply=pong", "PONG"]).await;

    // A line of exactly the bound is a line.
    let line = format!("ECHO /log/queen.log {}", "y".repeat(max as usize - 20));
    assert_eq!(line.len(), max as usize);
    c.send(&line).await;
    let ack = c.recv_some().await;
    assert!(ack.starts_with("ERR ECHO reason=quota") || ack.starts_with("OK ECHO"));
    c.expect("PING", &["OK PING reply=pong", "PONG"]).await;

    let quota = hive.shared.with_hive(|h| h.pressure().quota);
    assert!(quota >= 1, "the oversized frame is counted");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_gib_header_is_answered_without_buffering() {
    let dir = tempfile::tempdir().unwrap();
    let hive = common::start(&dir, common::manifest()).await;
    let before = rss_kib();

    let mut c = Console::queen(&hive).await;
    c.send_raw(&header(1 << 31)).await;
    assert_eq!(
        c.recv().await.as_deref(),
        Some("ERR FRAME reason=invalid-length")
    );
    // 8 MiB of the announced payload: dropped as it arrives.
    let chunk = vec![b'z'; 1 << 20];
    for _ in 0..8 {
        c.send_raw(&chunk).await;
    }
    still_serving(&hive).await;
    let grown = rss_kib().saturating_sub(before);
    assert!(grown < 64 * 1024, "rss grew by {grown} KiB");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_utf8_line_breaks_and_empty_lines_are_refused_and_the_session_lives() {
    let dir = tempfile::tempdir().unwrap();
    let hive = common::start(&dir, common::manifest()).await;
    let mut c = Console::queen(&hive).await;

    let mut bad = header(7).to_vec();
    bad.extend_from_slice(&[b'L', 0xff, 0xfe]);
    c.send_raw(&bad).await;
    assert_eq!(
        c.recv().await.as_deref(),
        Some("ERR FRAME reason=policy detail=invalid-utf8")
    );
    c.expect(
        "CAT /proc/boot\nCAT /x",
        &["ERR FRAME reason=policy detail=line-break"],
    )
    .await;
    c.send_raw(&header(4)).await;
    assert_eq!(
        c.recv().await.as_deref(),
        Some("ERR PARSE reason=policy detail=unsupported console command")
    );
    c.expect("PING", &["OK PING reply=pong", "PONG"]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_verbs_diagnostics_and_bad_arguments() {
    let dir = tempfile::tempdir().unwrap();
    let hive = common::start(&dir, common::manifest()).await;
    let mut c = Console::queen(&hive).await;

    c.expect(
        "FOO",
        &["ERR PARSE reason=policy detail=unsupported console command"],
    )
    .await;
    c.expect(
        "ping",
        &["ERR PARSE reason=policy detail=unsupported console command"],
    )
    .await;
    for verb in [
        "BI", "CAPS", "MEM", "TEST", "NETTEST", "NETSTATS", "CACHELOG",
    ] {
        let expected = format!("ERR {verb} reason=policy detail=unsupported");
        c.expect(verb, &[expected.as_str()]).await;
    }
    c.expect(
        "LS",
        &["ERR LS reason=policy detail=invalid-args error=usage: LS <path>"],
    )
    .await;
    c.expect(
        "SPAWN heartbeat",
        &["ERR SPAWN reason=policy detail=invalid-args error=heartbeat needs ticks="],
    )
    .await;
    c.expect(
        "AUTH again",
        &["ERR AUTH reason=policy detail=already-authenticated"],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn commands_before_attach_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let hive = common::start(&dir, common::manifest()).await;
    let mut c = authed(&hive).await;

    c.expect("PING", &["OK PING reply=pong", "PONG"]).await;
    c.expect(
        "LS /",
        &["ERR LS reason=policy detail=not-attached path=/ error=not attached"],
    )
    .await;
    c.expect(
        "KILL worker-1",
        &["ERR KILL reason=policy detail=not-attached error=not attached"],
    )
    .await;
    c.expect(
        "LOG",
        &["ERR LOG reason=policy detail=not-attached path=/log/queen.log error=not attached"],
    )
    .await;
    c.expect("ATTACH queen", &["OK ATTACH role=queen"]).await;
    c.expect(
        "LS /queen/lifecycle",
        &["OK LS path=/queen/lifecycle entries=1", "ctl", "END"],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn third_failed_attach_locks_the_source_out() {
    let dir = tempfile::tempdir().unwrap();
    let hive = common::start(&dir, common::manifest()).await;
    let mut c = authed(&hive).await;

    let refused = "ERR ATTACH reason=policy detail=ticket-required error=ticket required";
    c.expect("ATTACH worker-heartbeat", &[refused]).await;
    c.expect(
        "ATTACH worker-heartbeat cohesix-ticket-00.00",
        &["ERR ATTACH reason=policy detail=invalid-ticket error=invalid ticket"],
    )
    .await;
    c.expect(
        "ATTACH worker-heartbeat",
        &["ERR ATTACH reason=quota detail=rate-limited delay_ms=90000"],
    )
    .await;

    // Locked out: even a valid attach, on this or a new connection.
    c.send("ATTACH queen").await;
    let ack = c.recv_some().await;
    let delay: u64 = ack
        .strip_prefix("ERR ATTACH reason=quota detail=rate-limited delay_ms=")
        .and_then(|d| d.parse().ok())
        .unwrap_or_else(|| panic!("{ack}"));
    assert!(delay > 0 && delay <= 90_000);
    let mut other = authed(&hive).await;
    other.send("ATTACH queen").await;
    assert!(other
        .recv_some()
        .await
        .starts_with("ERR ATTACH reason=quota detail=rate-limited"));

    let quota = hive.shared.with_hive(|h| h.pressure().quota);
    assert!(quota >= 3, "lockout refusals are counted: {quota}");
    // The session lives on, unattached.
    c.expect("PING", &["OK PING reply=pong", "PONG"]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clients_beyond_the_limit_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let mut manifest = common::manifest();
    manifest.console.max_clients = 2;
    let hive = common::start(&dir, manifest).await;

    let a = Console::queen(&hive).await;
    let _b = Console::queen(&hive).await;
    let mut c = Console::connect(common::console_addr(&hive)).await;
    assert_eq!(
        c.recv().await.as_deref(),
        Some("ERR AUTH reason=busy detail=too-many-clients")
    );
    c.expect_close(0).await;
    assert!(hive.shared.with_hive(|h| h.pressure().busy) >= 1);

    // A freed slot is usable again (the close is noticed asynchronously).
    drop(a);
    let mut served = false;
    for _ in 0..100 {
        let mut c = Console::connect(common::console_addr(&hive)).await;
        c.send(&format!("AUTH {}", common::token(&hive))).await;
        if c.recv().await.as_deref() == Some("OK AUTH") {
            served = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(served, "a slot came free");
}

/// Fills `/log/queen.log` so that each `LOG` answers about 64 KiB.
async fn fill_log(c: &mut Console) {
    let note = "n".repeat(900);
    for _ in 0..80 {
        let ack = c.request(&format!("ECHO /log/queen.log {note}")).await;
        assert!(ack[0].starts_with("OK ECHO"), "{ack:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pipeline_of_ten_thousand_lines_without_reading_stays_bounded() {
    let dir = tempfile::tempdir().unwrap();
    let hive = common::start(&dir, common::manifest()).await;
    let mut queen = Console::queen(&hive).await;
    fill_log(&mut queen).await;
    let before = rss_kib();

    // A client with a small receive window that pipelines 10,000 LOGs
    // (about 640 MB of answers) and never reads one.
    let socket = TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    let stream = socket.connect(common::console_addr(&hive)).await.unwrap();
    let mut hog = Console::over(stream);
    hog.send(&format!("AUTH {}", common::token(&hive))).await;
    hog.send("ATTACH queen").await;
    let mut pipeline = Vec::new();
    for _ in 0..10_000 {
        cohesix_console::encode_frame("LOG", &mut pipeline);
    }
    let (mut reader, mut writer) = hog.stream.into_split();
    let sender = tokio::spawn(async move {
        let _ = writer.write_all(&pipeline).await;
        writer
    });

    // Everyone else is still served while the hog's answers pile up.
    tokio::time::sleep(Duration::from_millis(500)).await;
    for _ in 0..20 {
        queen
            .expect(
                "CAT /proc/lifecycle/state",
                &[
                    "OK CAT path=/proc/lifecycle/state data=state=ONLINE",
                    "state=ONLINE",
                    "END",
                ],
            )
            .await;
    }
    still_serving(&hive).await;

    let high_water = ConsoleOptions::default().output_high_water;
    let bound = high_water + console::STREAM_MAX_BYTES + 16 * 1024;
    let peak = console::buffered_peak();
    assert!(
        peak <= bound,
        "a connection buffered {peak} bytes (bound {bound})"
    );
    let grown = rss_kib().saturating_sub(before);
    assert!(grown < 64 * 1024, "rss grew by {grown} KiB");

    // Reading the first answers shows the hog was served in order.
    let mut first = [0u8; 4];
    reader.read_exact(&mut first).await.unwrap();
    assert_eq!(u32::from_le_bytes(first), 4 + "OK AUTH".len() as u32);
    sender.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_that_stops_reading_is_cut_after_the_write_timeout() {
    let dir = tempfile::tempdir().unwrap();
    let mut manifest = common::manifest();
    manifest.console.listen = String::new();
    let hive = common::start(&dir, manifest).await;
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let options = ConsoleOptions {
        write_timeout: Duration::from_millis(500),
        ..ConsoleOptions::default()
    };
    tokio::spawn(console::serve_with(listener, hive.shared.clone(), options));

    let mut queen = Console::connect(addr).await;
    queen
        .expect(&format!("AUTH {}", common::token(&hive)), &["OK AUTH"])
        .await;
    queen
        .expect("ATTACH queen", &["OK ATTACH role=queen"])
        .await;
    fill_log(&mut queen).await;

    let socket = TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    let mut stalled = Console::over(socket.connect(addr).await.unwrap());
    stalled
        .expect(&format!("AUTH {}", common::token(&hive)), &["OK AUTH"])
        .await;
    stalled
        .expect("ATTACH queen", &["OK ATTACH role=queen"])
        .await;
    // Mid-stream: ask for far more than the socket buffers hold, read nothing.
    let mut pipeline = Vec::new();
    for _ in 0..2_000 {
        cohesix_console::encode_frame("LOG", &mut pipeline);
    }
    let (mut reader, mut writer) = stalled.stream.into_split();
    let sender = tokio::spawn(async move { writer.write_all(&pipeline).await });

    // The hive cuts it: its slot is freed and the cut is counted.
    let mut cut = false;
    for _ in 0..300 {
        if hive.shared.with_hive(|h| h.pressure().cut) >= 1 {
            cut = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(cut, "the stalled client was cut");
    // Draining what reached the socket ends in a close, not more data.
    let mut sink = vec![0u8; 1 << 16];
    let mut total = 0usize;
    loop {
        let read = tokio::time::timeout(common::READ_TIMEOUT, reader.read(&mut sink)).await;
        match read.expect("the close arrives") {
            Ok(0) | Err(_) => break,
            Ok(n) => total += n,
        }
        assert!(total < 256 << 20, "the hive kept writing");
    }
    sender.abort();
    queen.expect("PING", &["OK PING reply=pong", "PONG"]).await;
}
