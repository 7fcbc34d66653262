//! Shared by the console tests: a hive on loopback with its console, and a
//! small framed-line client that reads with a time-out so no test hangs.

#![allow(dead_code)]

use cohesix_console::{encode_frame, FrameDecoder};
use cohesix_hive::{HiveConfig, RunningHive};
use cohesix_manifest::Manifest;
use cohesix_ticket::{Claims, Role};
use std::net::SocketAddr;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// How long any single read may take before the test fails.
pub const READ_TIMEOUT: Duration = Duration::from_secs(20);

/// A manifest listening on ephemeral loopback ports.
pub fn manifest() -> Manifest {
    let mut manifest = Manifest::default();
    manifest.ninep.listen = "127.0.0.1:0".into();
    manifest.console.listen = "127.0.0.1:0".into();
    manifest
}

pub async fn start(dir: &tempfile::TempDir, manifest: Manifest) -> RunningHive {
    let config = HiveConfig {
        manifest,
        manifest_name: "test".into(),
        data_dir: dir.path().to_path_buf(),
    };
    cohesix_hive::start(config).await.expect("hive starts")
}

pub fn console_addr(hive: &RunningHive) -> SocketAddr {
    hive.console_addr.expect("console enabled")
}

pub fn token(hive: &RunningHive) -> String {
    hive.secrets.console_token.clone()
}

/// A worker ticket for `subject`, minted with the hive's own secret.
pub fn worker_ticket(hive: &RunningHive, subject: &str) -> String {
    let role = Role::WorkerHeartbeat;
    let now = cohesix_hive::now_ms();
    let mut claims = Claims::new(role, now, now + 600_000);
    claims.subject = Some(subject.to_string());
    let secret = &hive.secrets.roles[role.as_str()];
    cohesix_ticket::mint(&claims, secret.as_bytes()).expect("mint")
}

/// A console client that speaks frames.
pub struct Console {
    pub stream: TcpStream,
    decoder: FrameDecoder,
}

impl Console {
    pub async fn connect(addr: SocketAddr) -> Console {
        let stream = TcpStream::connect(addr).await.expect("connect");
        Console::over(stream)
    }

    pub fn over(stream: TcpStream) -> Console {
        Console {
            stream,
            decoder: FrameDecoder::new(1 << 20),
        }
    }

    /// Connects, authenticates and attaches as the queen.
    pub async fn queen(hive: &RunningHive) -> Console {
        let mut c = Console::connect(console_addr(hive)).await;
        c.expect(&format!("AUTH {}", token(hive)), &["OK AUTH"])
            .await;
        c.expect("ATTACH queen", &["OK ATTACH role=queen"]).await;
        c
    }

    pub async fn send(&mut self, line: &str) {
        let mut out = Vec::new();
        encode_frame(line, &mut out);
        self.send_raw(&out).await;
    }

    pub async fn send_raw(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).await.expect("send");
    }

    /// The next frame, or `None` once the hive closed the connection.
    pub async fn recv(&mut self) -> Option<String> {
        let mut chunk = [0u8; 4096];
        loop {
            match self.decoder.next_frame() {
                Ok(Some(line)) => return Some(line),
                Ok(None) => {}
                Err(e) => panic!("hive sent a bad frame: {e}"),
            }
            let read = tokio::time::timeout(READ_TIMEOUT, self.stream.read(&mut chunk))
                .await
                .expect("hive answered in time");
            match read {
                Ok(0) | Err(_) => return None,
                Ok(n) => self.decoder.push(&chunk[..n]),
            }
        }
    }

    pub async fn recv_some(&mut self) -> String {
        self.recv().await.expect("a frame, not a close")
    }

    /// Sends `line` and reads the ack plus, for content verbs that
    /// succeeded, every line up to and including `END`.
    pub async fn request(&mut self, line: &str) -> Vec<String> {
        self.send(line).await;
        let ack = self.recv_some().await;
        let verb = line.split(' ').next().unwrap_or("");
        let streams = ["LS", "CAT", "TAIL", "LOG", "HELP"].contains(&verb);
        let mut frames = vec![ack.clone()];
        if ack.starts_with("OK ") && verb == "PING" {
            frames.push(self.recv_some().await);
        } else if ack.starts_with("OK ") && streams {
            loop {
                let next = self.recv_some().await;
                let end = next == "END";
                frames.push(next);
                if end {
                    break;
                }
            }
        }
        frames
    }

    /// Sends `line` and checks the exact frames that come back.
    pub async fn expect(&mut self, line: &str, frames: &[&str]) {
        self.send(line).await;
        for expected in frames {
            let got = self.recv_some().await;
            assert_eq!(&got, expected, "after {line:?}");
        }
    }

    /// Reads until the hive closes; panics if it sends more than `max` frames.
    pub async fn expect_close(&mut self, max: usize) {
        for _ in 0..=max {
            if self.recv().await.is_none() {
                return;
            }
        }
        panic!("hive kept the connection open");
    }
}

/// Reads a `/proc` counter such as `/proc/pressure/quota` over a queen console.
pub async fn counter(c: &mut Console, path: &str) -> u64 {
    let frames = c.request(&format!("CAT {path}")).await;
    let line = frames.get(1).expect("content");
    line.split('=')
        .nth(1)
        .and_then(|v| v.parse().ok())
        .expect("key=number")
}
