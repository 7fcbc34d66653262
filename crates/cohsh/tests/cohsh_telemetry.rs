//! `telemetry push` and `telemetry pull` against a live hive, over 9P and
//! over REST through an in-process hive-gateway: a text file comes back as
//! the same text, a few-MiB binary file as the same bytes (sha256), and the
//! tcp console answers that it cannot carry them.

use cohesix_hive::{HiveConfig, RunningHive};
use cohesix_manifest::Manifest;
use cohesix_ticket::{Claims, Role};
use cohsh::ninep::NinePConsole;
use cohsh::rest::RestConsole;
use cohsh::tcp::{TcpConsole, TcpOptions};
use cohsh::telemetry;
use cohsh::transport::{Request, Transport};
use hive_gateway::{Gateway, GatewayConfig};
use sha2::{Digest, Sha256};
use std::path::Path;
use std::time::Duration;

const TOKEN: &str = "telemetry-transport-test-token";

async fn hive(dir: &Path) -> RunningHive {
    let mut manifest = Manifest::default();
    manifest.ninep.listen = "127.0.0.1:0".into();
    manifest.ninep.msize = 65_536;
    manifest.console.listen = String::new();
    manifest.telemetry.chunk_bytes = 1 << 20;
    let config = HiveConfig {
        manifest,
        manifest_name: "test".into(),
        data_dir: dir.to_path_buf(),
    };
    cohesix_hive::start(config).await.unwrap()
}

fn ticket(hive: &RunningHive) -> String {
    let now = cohesix_hive::now_ms();
    let claims = Claims::new(Role::Queen, now, now + 3_600_000);
    cohesix_ticket::mint(&claims, hive.secrets.roles["queen"].as_bytes()).unwrap()
}

async fn gateway(hive: &RunningHive) -> Gateway {
    let cfg = GatewayConfig::new(hive.ninep_addr.to_string(), ticket(hive), TOKEN);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let gw = Gateway::start(cfg, listener).await.unwrap();
    assert!(gw.broker().wait_connected(Duration::from_secs(10)).await);
    gw
}

fn sha(path: &Path) -> Vec<u8> {
    Sha256::digest(std::fs::read(path).unwrap()).to_vec()
}

/// Pushes a text file and a binary file to `device`, pulls them back, and
/// checks both byte for byte.
async fn round_trip(t: &mut Transport, device: &str, work: &Path) {
    let text: String = (0..800)
        .map(|i| {
            format!(
                "line {i}: température \"quoted\" \\ tab\t{}\n",
                "x".repeat(i % 50)
            )
        })
        .collect();
    let text_file = work.join(format!("{device}.txt"));
    std::fs::write(&text_file, &text).unwrap();
    let bin: Vec<u8> = (0..(3 << 20) + 777)
        .map(|i: usize| (i.wrapping_mul(2_654_435_761) >> 13) as u8 | 0x80)
        .collect();
    let bin_file = work.join(format!("{device}.bin"));
    std::fs::write(&bin_file, &bin).unwrap();

    let r = telemetry::push(t, text_file.to_str().unwrap(), device, false)
        .await
        .unwrap();
    assert!(r.ack.starts_with("OK TELEMETRY push"), "{}", r.ack);
    assert!(r.ack.contains("segment=seg-000001"), "{}", r.ack);
    let r = telemetry::push(t, bin_file.to_str().unwrap(), device, false)
        .await
        .unwrap();
    assert!(r.ack.contains("artifact=seg-000002.1"), "{}", r.ack);
    assert!(r.ack.contains(&format!("bytes={}", bin.len())), "{}", r.ack);
    // The text file again, forced through the artifact path.
    let r = telemetry::push(t, text_file.to_str().unwrap(), device, true)
        .await
        .unwrap();
    assert!(r.ack.contains("artifact=seg-000003.1"), "{}", r.ack);

    let out = work.join(format!("{device}-out"));
    let r = telemetry::pull(t, device, out.to_str().unwrap())
        .await
        .unwrap();
    assert!(
        r.ack.contains("segments=3") && r.ack.contains("artifacts=2"),
        "{}",
        r.ack
    );
    assert_eq!(sha(&out.join("seg-000001.txt")), sha(&text_file));
    assert_eq!(sha(&out.join("seg-000002.1.bin")), sha(&bin_file));
    assert_eq!(sha(&out.join("seg-000003.1.bin")), sha(&text_file));
    assert!(out.join("seg-000002.jsonl").exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn push_and_pull_round_trip_over_9p() {
    let dir = tempfile::tempdir().unwrap();
    let work = tempfile::tempdir().unwrap();
    let hive = hive(dir.path()).await;
    let mut t = Transport::NineP(NinePConsole::new(hive.ninep_addr.to_string()));
    let attach = Request::Attach {
        role: "queen".into(),
        ticket: Some(ticket(&hive)),
    };
    assert!(t.request(&attach).await.unwrap().is_ok());
    round_trip(&mut t, "dev-9p", work.path()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn push_and_pull_round_trip_over_rest() {
    let dir = tempfile::tempdir().unwrap();
    let work = tempfile::tempdir().unwrap();
    let hive = hive(dir.path()).await;
    let gw = gateway(&hive).await;
    let url = format!("http://{}", gw.addr);
    let mut t = Transport::Rest(RestConsole::new(Some(&url), Some(TOKEN.to_string())));
    round_trip(&mut t, "dev-rest", work.path()).await;
    gw.shutdown().await;
}

#[tokio::test]
async fn the_tcp_console_points_to_the_other_transports() {
    let options = TcpOptions::new("127.0.0.1", 1, Some("t".into()));
    let mut t = Transport::Tcp(TcpConsole::new(options));
    let r = telemetry::push(&mut t, "/nonexistent", "d", false)
        .await
        .unwrap();
    assert!(r
        .ack
        .starts_with("ERR TELEMETRY reason=policy detail=unsupported-transport"));
    assert!(r.ack.contains("use --transport 9p or rest"), "{}", r.ack);
}
