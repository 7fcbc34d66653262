//! Crash safety of telemetry ingest with a real process: a hive
//! (`hive-fixture`) takes a stream of appends and segment creations over
//! Secure9P and is killed with SIGKILL at a random moment, twenty times on
//! one data directory. After every restart each acknowledged record is
//! present, in order, exactly once, and every visible record is whole and
//! exactly what was sent for its sequence number (a write that was not
//! acknowledged may be there in full, never in part).

use cohesix_client::{Client, ClientConfig, OpenMode};
use rand::{Rng, SeedableRng};
use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

const ROUNDS: usize = 20;
/// Most appends one round sends before the kill lands.
const MAX_APPENDS_PER_ROUND: u64 = 5_000;
const DEV: &str = "/queen/telemetry/crash-probe";
const ART: &str = "/queen/telemetry/crash-artifacts";
/// Most artifacts one round uploads before the kill lands.
const MAX_ARTIFACTS_PER_ROUND: usize = 50;
const NEW: &[u8] = br#"{"new":"segment","mime":"text/plain"}"#;

struct Fixture {
    child: Arc<Mutex<Child>>,
    addr: SocketAddr,
    ticket: String,
}

fn spawn(dir: &Path) -> Fixture {
    let manifest = dir.join("manifest.toml");
    let text = "[telemetry]\nmax_segments_per_device = 65536\nchunk_bytes = 65536\n";
    std::fs::write(&manifest, text).unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_hive-fixture"))
        .arg("--data-dir")
        .arg(dir.join("data"))
        .arg("--manifest")
        .arg(&manifest)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("hive-fixture starts");
    let stdout = child.stdout.take().expect("stdout");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut line = String::new();
        let _ = BufReader::new(stdout).read_line(&mut line);
        let _ = tx.send(line);
    });
    let line = rx
        .recv_timeout(Duration::from_secs(30))
        .expect("hive-fixture is ready within 30 s");
    let mut addr = None;
    let mut ticket_path = None;
    for word in line.split_whitespace() {
        if let Some(a) = word.strip_prefix("ninep=") {
            addr = a.parse().ok();
        }
        if let Some(p) = word.strip_prefix("ticket=") {
            ticket_path = Some(p.to_string());
        }
    }
    let ticket = std::fs::read_to_string(ticket_path.expect("ticket path")).unwrap();
    Fixture {
        child: Arc::new(Mutex::new(child)),
        addr: addr.unwrap_or_else(|| panic!("no address in {line:?}")),
        ticket,
    }
}

impl Fixture {
    async fn client(&self) -> Client {
        let config = ClientConfig::new("queen", self.ticket.trim());
        Client::connect(self.addr, config).await.expect("attach")
    }

    fn kill(&self) {
        let mut child = self.child.lock().unwrap_or_else(|p| p.into_inner());
        let _ = child.kill(); // SIGKILL
        let _ = child.wait();
    }
}

impl Drop for Fixture {
    fn drop(&mut self) {
        self.kill();
    }
}

/// The one record ever sent for (segment, seq); lengths vary.
fn record(seg: &str, seq: u64) -> String {
    let pad = "z".repeat((seq * 37 % 300) as usize);
    let head = r#"{"schema":"cohsh-telemetry-push/v1","mime":"text/plain""#;
    format!(r#"{head},"seq":{seq},"payload":"{seg}/{seq}/{pad}"}}"#)
}

async fn new_segment(c: &Client) -> Result<String, cohesix_client::Error> {
    new_segment_on(c, DEV).await
}

async fn new_segment_on(c: &Client, dev: &str) -> Result<String, cohesix_client::Error> {
    let f = c.open(&format!("{dev}/ctl"), OpenMode::ReadWrite).await?;
    f.write_at(0, NEW).await?;
    let reply = f.read_at(0, 64).await?;
    let _ = f.close().await;
    Ok(String::from_utf8_lossy(&reply).trim_end().to_string())
}

/// The bytes of artifact `seed`: deterministic, not periodic.
fn artifact(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

async fn upload(c: &Client, data: &[u8]) -> Result<String, cohesix_client::Error> {
    let f = c
        .open(&format!("{ART}/artifact"), OpenMode::ReadWrite)
        .await?;
    let step = f.iounit() as usize;
    for (i, piece) in data.chunks(step).enumerate() {
        f.write_at((i * step) as u64, piece).await?;
    }
    let reply = f.read_at(0, 64).await?;
    let _ = f.close().await;
    Ok(String::from_utf8_lossy(&reply).trim_end().to_string())
}

/// Committed artifacts read back exact; every reference record in the
/// segment is whole and in `seq` order; with `read_all_present`, every
/// artifact the segment starts (a reference at offset 0, acknowledged or
/// not) reads back without error.
async fn verify_artifacts(c: &Client, committed: &[(String, u64, usize)], read_all_present: bool) {
    for (id, seed, len) in committed {
        let back = c
            .read_all(&format!("{ART}/artifacts/{id}"), len + 1)
            .await
            .unwrap_or_else(|e| panic!("committed artifact {id}: {e}"));
        assert!(back == artifact(*seed, *len), "artifact {id} differs");
    }
    let seg = "seg-000001";
    let text = String::from_utf8(
        c.read_all(&format!("{ART}/seg/{seg}"), 64 << 20)
            .await
            .unwrap(),
    )
    .unwrap();
    for (i, line) in text.lines().enumerate() {
        let seq = i + 1;
        assert!(
            line.starts_with(r#"{"schema":"coh-ref-c/v1","seq":"#),
            "{line}"
        );
        assert!(
            line.contains(&format!(r#""seq":{seq},"#)),
            "{line} is not seq {seq}"
        );
        if read_all_present && line.contains(r#""off":0,"#) {
            let id = format!("{seg}.{seq}");
            let r = c.read_all(&format!("{ART}/artifacts/{id}"), 64 << 20).await;
            assert!(r.is_ok(), "artifact {id} present but unreadable: {r:?}");
        }
    }
}

/// Checks every segment against what was acknowledged; returns the
/// newest segment and how many records it holds.
async fn verify(c: &Client, acked: &BTreeMap<String, u64>) -> (String, u64) {
    let latest = String::from_utf8(c.read_all(&format!("{DEV}/latest"), 64).await.unwrap())
        .unwrap()
        .trim_end()
        .to_string();
    if let Some(last) = acked.keys().next_back() {
        assert!(latest >= *last, "latest {latest} is behind acked {last}");
    }
    let mut newest_count = 0;
    for seg in c.ls(&format!("{DEV}/seg")).await.unwrap() {
        let data = c
            .read_all(&format!("{DEV}/seg/{seg}"), 64 << 20)
            .await
            .unwrap();
        let text = String::from_utf8(data).expect("records are whole UTF-8");
        assert!(
            text.is_empty() || text.ends_with('\n'),
            "{seg}: partial line"
        );
        let mut n = 0u64;
        for (i, line) in text.lines().enumerate() {
            let seq = i as u64 + 1;
            assert_eq!(line, record(&seg, seq), "{seg} line {seq}");
            n = seq;
        }
        let want = acked.get(&seg).copied().unwrap_or(0);
        assert!(n >= want, "{seg}: {n} records, {want} acknowledged");
        if seg == latest {
            newest_count = n;
        }
    }
    for seg in acked.keys() {
        let found = c.stat(&format!("{DEV}/seg/{seg}")).await;
        assert!(found.is_ok(), "acknowledged segment {seg} is gone");
    }
    (latest, newest_count)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_appends_survive_sigkill_twenty_times() {
    let seed: u64 = rand::random();
    println!("crash test seed {seed}");
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let dir = tempfile::tempdir().unwrap();
    // Highest acknowledged seq per segment.
    let mut acked: BTreeMap<String, u64> = BTreeMap::new();
    let mut total_acked = 0u64;
    // Committed artifacts: (id, seed, length).
    let mut committed: Vec<(String, u64, usize)> = Vec::new();

    let mut last_round = 0;
    for round in 0..ROUNDS {
        let hive = spawn(dir.path());
        let c = hive.client().await;
        let (mut seg, mut next) = if round == 0 {
            new_segment_on(&c, ART).await.unwrap();
            let seg = new_segment(&c).await.unwrap();
            acked.insert(seg.clone(), 0);
            (seg, 1)
        } else {
            verify_artifacts(&c, &committed[last_round..], false).await;
            let (seg, count) = verify(&c, &acked).await;
            (seg, count + 1)
        };
        last_round = committed.len();

        let delay = Duration::from_millis(rng.gen_range(20..400));
        let roll_every = rng.gen_range(20..120);
        let uploads: Vec<(u64, usize)> = (0..MAX_ARTIFACTS_PER_ROUND)
            .map(|_| (rng.gen(), rng.gen_range(1..300_000)))
            .collect();
        let killer = {
            let child = hive.child.clone();
            tokio::spawn(async move {
                tokio::time::sleep(delay).await;
                let _ = child.lock().unwrap_or_else(|p| p.into_inner()).kill();
            })
        };
        let appends = async {
            for i in 0..MAX_APPENDS_PER_ROUND {
                if i > 0 && i % roll_every == 0 {
                    match new_segment(&c).await {
                        Ok(s) if s.starts_with("seg-") => {
                            acked.insert(s.clone(), 0);
                            seg = s;
                            next = 1;
                        }
                        _ => break,
                    }
                }
                let path = format!("{DEV}/seg/{seg}");
                if c.append(&path, record(&seg, next).as_bytes())
                    .await
                    .is_err()
                {
                    break;
                }
                acked.insert(seg.clone(), next);
                total_acked += 1;
                next += 1;
            }
        };
        let artifacts = async {
            for (seed, len) in uploads {
                match upload(&c, &artifact(seed, len)).await {
                    Ok(id) if id.starts_with("seg-") => committed.push((id, seed, len)),
                    _ => break,
                }
            }
        };
        tokio::join!(appends, artifacts);
        killer.await.unwrap();
        hive.kill();
    }

    let hive = spawn(dir.path());
    let c = hive.client().await;
    verify(&c, &acked).await;
    verify_artifacts(&c, &committed, true).await;
    let staged = std::fs::read_dir(dir.path().join("data/telemetry/uploads")).unwrap();
    assert_eq!(
        staged.count(),
        0,
        "unfinished uploads are discarded at start"
    );
    println!(
        "{total_acked} acknowledged appends and {} committed artifacts over {ROUNDS} kills, \
         all present",
        committed.len()
    );
    assert!(total_acked > 0);
}
