//! A scripted Secure9P server for the cases a real hive cannot be made to
//! show on demand: requests that never answer (timeouts, a full queue),
//! EBUSY, and counting the requests in flight on a connection.
//!
//! Walks whose first name is `hang` are never answered, `busy` are answered
//! EBUSY, `slow` after 30 ms; everything else at once. `/proc/boot` reads
//! as a small boot file declaring `tags_in_flight`.

use cohesix_ninep::backend::qid_type;
use cohesix_ninep::{decode, encode, Body, Message, Qid};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;

pub struct FakeHive {
    pub addr: SocketAddr,
    /// Most requests ever unanswered at once on one connection.
    pub max_outstanding: Arc<AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for FakeHive {
    fn drop(&mut self) {
        self.task.abort();
    }
}

pub async fn start(tags: u32) -> FakeHive {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let max_outstanding = Arc::new(AtomicUsize::new(0));
    let max = max_outstanding.clone();
    let task = tokio::spawn(async move {
        let mut conns = Vec::new();
        while let Ok((stream, _)) = listener.accept().await {
            conns.push(tokio::spawn(serve(stream, tags, max.clone())));
        }
    });
    FakeHive {
        addr,
        max_outstanding,
        task,
    }
}

async fn serve(stream: TcpStream, tags: u32, max: Arc<AtomicUsize>) {
    let (mut read, mut write) = stream.into_split();
    let (tx, mut rx) = mpsc::unbounded_channel::<Vec<u8>>();
    let outstanding = Arc::new(AtomicUsize::new(0));
    let out = outstanding.clone();
    tokio::spawn(async move {
        while let Some(frame) = rx.recv().await {
            out.fetch_sub(1, Ordering::SeqCst);
            if write.write_all(&frame).await.is_err() {
                return;
            }
        }
    });
    let mut paths: HashMap<u32, String> = HashMap::new();
    loop {
        let mut size = [0u8; 4];
        if read.read_exact(&mut size).await.is_err() {
            return;
        }
        let len = u32::from_le_bytes(size) as usize;
        if !(7..=1 << 20).contains(&len) {
            return;
        }
        let mut frame = vec![0u8; len];
        frame[..4].copy_from_slice(&size);
        if read.read_exact(&mut frame[4..]).await.is_err() {
            return;
        }
        let Ok(msg) = decode(&frame) else { return };
        let now = outstanding.fetch_add(1, Ordering::SeqCst) + 1;
        max.fetch_max(now, Ordering::SeqCst);
        let (reply, delay) = answer(msg.body, &mut paths, tags);
        let Some(reply) = reply else { continue };
        let mut bytes = Vec::new();
        encode(&Message::new(msg.tag, reply), &mut bytes).expect("encode");
        let tx = tx.clone();
        match delay {
            None => {
                let _ = tx.send(bytes);
            }
            Some(d) => {
                tokio::spawn(async move {
                    tokio::time::sleep(d).await;
                    let _ = tx.send(bytes);
                });
            }
        }
    }
}

fn qid(ty: u8, path: u64) -> Qid {
    Qid {
        ty,
        version: 0,
        path,
    }
}

/// The reply (None: never answer) and how long to hold it.
fn answer(
    body: Body,
    paths: &mut HashMap<u32, String>,
    tags: u32,
) -> (Option<Body>, Option<Duration>) {
    let reply = match body {
        Body::Tversion { msize, version } => Body::Rversion {
            msize: msize.min(8192),
            version,
        },
        Body::Tattach { .. } => Body::Rattach {
            qid: qid(qid_type::DIR, 1),
        },
        Body::Twalk { newfid, wnames, .. } => {
            let first = wnames.first().cloned().unwrap_or_default();
            match first.as_str() {
                "hang" => return (None, None),
                "busy" => Body::Rlerror { ecode: 16 },
                _ => {
                    let n = wnames.len() as u64;
                    paths.insert(newfid, wnames.join("/"));
                    let wqids = (0..n).map(|i| qid(qid_type::FILE, 10 + i)).collect();
                    let reply = Body::Rwalk { wqids };
                    let delay = (first == "slow").then(|| Duration::from_millis(30));
                    return (Some(reply), delay);
                }
            }
        }
        Body::Tlopen { .. } => Body::Rlopen {
            qid: qid(qid_type::FILE, 10),
            iounit: 8000,
        },
        Body::Tread { fid, offset, .. } => {
            let text = match paths.get(&fid).map(String::as_str) {
                Some("proc/boot") => format!(
                    "cohesix-hive version=fake hive=fake\n\
                     bounds msize=8192 walk_depth=8 tags_in_flight={tags}\n"
                ),
                _ => String::from("hello\n"),
            };
            let bytes = text.into_bytes();
            let start = (offset as usize).min(bytes.len());
            Body::Rread {
                data: bytes[start..].to_vec(),
            }
        }
        Body::Tclunk { fid } => {
            paths.remove(&fid);
            Body::Rclunk
        }
        _ => Body::Rlerror { ecode: 95 },
    };
    (Some(reply), None)
}
