//! Replays the exchanges observed on a live upstream hive
//! (`tests/fixtures/console-transcript.txt`) against ours, frame by frame.

mod common;

use common::Console;

const TRANSCRIPT: &str = include_str!("../../../tests/fixtures/console-transcript.txt");

/// One sent line and the frames upstream answered, in order.
struct Exchange {
    line: usize,
    send: String,
    answers: Vec<String>,
}

fn exchanges(token: &str) -> Vec<Exchange> {
    let mut out: Vec<Exchange> = Vec::new();
    for (n, text) in TRANSCRIPT.lines().enumerate() {
        if let Some(sent) = text.strip_prefix("> ") {
            out.push(Exchange {
                line: n + 1,
                send: sent.replace("<token>", token),
                answers: Vec::new(),
            });
        } else if let Some(answer) = text.strip_prefix("< ") {
            let last = out.last_mut().expect("an answer follows a request");
            last.answers.push(answer.to_string());
        } else {
            assert!(text.is_empty() || text.starts_with('#'), "line {}", n + 1);
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn observed_transcript_replays_byte_for_byte() {
    let dir = tempfile::tempdir().unwrap();
    let hive = common::start(&dir, common::manifest()).await;
    let token = common::token(&hive);
    let mut console = Console::connect(common::console_addr(&hive)).await;

    let script = exchanges(&token);
    assert_eq!(script.len(), 17, "the fixture holds the whole transcript");
    for exchange in &script {
        console.send(&exchange.send).await;
        for expected in &exchange.answers {
            let got = console.recv_some().await;
            assert_eq!(
                &got, expected,
                "transcript line {}: {:?}",
                exchange.line, exchange.send
            );
        }
    }

    // Nothing more was sent than the transcript shows.
    console.send("PING").await;
    assert_eq!(console.recv_some().await, "OK PING reply=pong");
    hive.shutdown().await;
}
