//! The Secure9P listener against real TCP clients: our client for the
//! happy paths, hand-built frames for hostile ones. Each hostile case checks
//! the documented answer, that the refusal is counted, and that the hive
//! keeps serving others.

use cohesix_client::{Client, ClientConfig};
use cohesix_hive::{HiveConfig, RunningHive};
use cohesix_manifest::Manifest;
use cohesix_ninep::error::errno;
use cohesix_ninep::msg::{Body, NOFID};
use cohesix_ninep::{decode, encode, ErrorClass, Message, OpenMode};
use cohesix_ticket::{Claims, Role};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

async fn hive(dir: &tempfile::TempDir) -> RunningHive {
    let mut manifest = Manifest::default();
    manifest.ninep.listen = "127.0.0.1:0".into();
    manifest.console.listen = String::new();
    let config = HiveConfig {
        manifest,
        manifest_name: "test".into(),
        data_dir: dir.path().to_path_buf(),
    };
    cohesix_hive::start(config).await.expect("hive starts")
}

fn ticket(h: &RunningHive, role: Role, subject: Option<&str>) -> String {
    let now = cohesix_hive::now_ms();
    let mut claims = Claims::new(role, now, now + 600_000);
    claims.subject = subject.map(str::to_string);
    let secret = &h.secrets.roles[role.as_str()];
    cohesix_ticket::mint(&claims, secret.as_bytes()).expect("mint")
}

async fn queen(h: &RunningHive) -> Client {
    let config = ClientConfig::new("queen", ticket(h, Role::Queen, None));
    Client::connect(h.ninep_addr, config)
        .await
        .expect("queen attaches")
}

async fn text(c: &Client, path: &str) -> String {
    String::from_utf8(c.read_all(path, 1 << 16).await.expect(path)).expect("utf8")
}

fn frame(tag: u16, body: Body) -> Vec<u8> {
    let mut out = Vec::new();
    encode(&Message::new(tag, body), &mut out).expect("encode");
    out
}

fn version() -> Vec<u8> {
    frame(
        0xffff,
        Body::Tversion {
            msize: 8192,
            version: "9P2000.L".into(),
        },
    )
}

/// Reads one reply frame.
async fn reply(s: &mut TcpStream) -> Option<Message> {
    let mut size = [0u8; 4];
    tokio::time::timeout(Duration::from_secs(5), s.read_exact(&mut size))
        .await
        .ok()?
        .ok()?;
    let len = u32::from_le_bytes(size) as usize;
    let mut buf = size.to_vec();
    buf.resize(len, 0);
    s.read_exact(&mut buf[4..]).await.ok()?;
    decode(&buf).ok()
}

async fn raw(h: &RunningHive) -> TcpStream {
    let mut s = TcpStream::connect(h.ninep_addr).await.unwrap();
    s.write_all(&version()).await.unwrap();
    assert!(matches!(
        reply(&mut s).await.unwrap().body,
        Body::Rversion { .. }
    ));
    s
}

#[tokio::test]
async fn queen_lists_reads_and_spawns_over_9p() {
    let dir = tempfile::tempdir().unwrap();
    let h = hive(&dir).await;
    let q = queen(&h).await;

    assert_eq!(
        q.ls("/").await.unwrap(),
        ["proc", "queen", "shard", "worker", "log"]
    );
    assert!(text(&q, "/proc/boot")
        .await
        .contains("schema=cohesix-manifest/v1"));

    // Writing a control file then reading the same fid returns the result.
    let ctl = q.open("/queen/ctl", OpenMode::ReadWrite).await.unwrap();
    ctl.write_at(0, br#"{"spawn":"heartbeat","ticks":5}"#)
        .await
        .unwrap();
    assert_eq!(ctl.read_to_end(100).await.unwrap(), b"worker-1\n");
    ctl.close().await.unwrap();

    assert_eq!(q.ls("/worker").await.unwrap(), ["worker-1"]);
    assert_eq!(q.ls("/shard/13/worker").await.unwrap(), ["worker-1"]);
    h.shutdown().await;
}

#[tokio::test]
async fn worker_mount_reads_own_telemetry_and_is_refused_queen_ctl() {
    let dir = tempfile::tempdir().unwrap();
    let h = hive(&dir).await;
    let q = queen(&h).await;
    q.append("/queen/ctl", br#"{"spawn":"heartbeat","ticks":5}"#)
        .await
        .unwrap();
    q.append("/queen/ctl", br#"{"spawn":"heartbeat","ticks":5}"#)
        .await
        .unwrap();

    let t = ticket(&h, Role::WorkerHeartbeat, Some("worker-1"));
    let w = Client::connect(h.ninep_addr, ClientConfig::new("worker-heartbeat", t))
        .await
        .unwrap();
    w.append("/worker/worker-1/telemetry", b"{\"hello\":1}")
        .await
        .unwrap();
    assert!(text(&w, "/worker/worker-1/telemetry")
        .await
        .contains("{\"hello\":1}"));

    let err = w
        .append("/queen/ctl", br#"{"spawn":"heartbeat","ticks":5}"#)
        .await
        .unwrap_err();
    assert_eq!(err.class(), Some(ErrorClass::Permission));
    let err = w
        .append("/worker/worker-2/telemetry", b"{}")
        .await
        .unwrap_err();
    assert_eq!(err.class(), Some(ErrorClass::Permission));
    assert_eq!(q.ls("/worker").await.unwrap().len(), 2);
    // Each refused walk step is counted (a client may re-walk to learn the errno).
    let policy = text(&q, "/proc/pressure/policy").await;
    let count: u64 = policy.trim().trim_start_matches("policy=").parse().unwrap();
    assert!(count >= 2, "{policy}");
    let log = text(&q, "/log/queen.log").await;
    assert!(log.contains("denied op=stat path=/queen owner=worker-heartbeat:worker-1"));
    h.shutdown().await;
}

#[tokio::test]
async fn killing_a_worker_cuts_its_sessions() {
    let dir = tempfile::tempdir().unwrap();
    let h = hive(&dir).await;
    let q = queen(&h).await;
    q.append("/queen/ctl", br#"{"spawn":"heartbeat","ticks":5}"#)
        .await
        .unwrap();
    let t = ticket(&h, Role::WorkerHeartbeat, Some("worker-1"));
    let w = Client::connect(h.ninep_addr, ClientConfig::new("worker-heartbeat", t))
        .await
        .unwrap();
    q.append("/queen/ctl", br#"{"kill":"worker-1"}"#)
        .await
        .unwrap();
    let err = w.read_all("/proc/boot", 100).await.unwrap_err();
    assert_eq!(err.class(), Some(ErrorClass::Closed));
    assert!(text(&q, "/proc/pressure/cut").await.starts_with("cut="));
    h.shutdown().await;
}

#[tokio::test]
async fn oversized_frame_is_refused_counted_and_the_hive_serves_others() {
    let dir = tempfile::tempdir().unwrap();
    let h = hive(&dir).await;
    let mut s = raw(&h).await;
    let mut big = (100_000u32).to_le_bytes().to_vec();
    big.extend_from_slice(&[120, 7, 0]); // Tread, tag 7
    s.write_all(&big).await.unwrap();
    let r = reply(&mut s).await.expect("an answer before the close");
    assert_eq!(
        (r.tag, r.body),
        (
            7,
            Body::Rlerror {
                ecode: errno::EMSGSIZE
            }
        )
    );
    assert!(reply(&mut s).await.is_none(), "connection closed");

    let q = queen(&h).await;
    assert_eq!(text(&q, "/proc/pressure/quota").await, "quota=1\n");
    h.shutdown().await;
}

#[tokio::test]
async fn truncated_body_is_invalid_and_the_session_lives() {
    let dir = tempfile::tempdir().unwrap();
    let h = hive(&dir).await;
    let mut s = raw(&h).await;
    // A Twalk claiming 3 names but carrying none.
    let mut f = Vec::new();
    f.extend_from_slice(&17u32.to_le_bytes());
    f.push(110);
    f.extend_from_slice(&5u16.to_le_bytes());
    f.extend_from_slice(&0u32.to_le_bytes());
    f.extend_from_slice(&1u32.to_le_bytes());
    f.extend_from_slice(&3u16.to_le_bytes());
    s.write_all(&f).await.unwrap();
    let r = reply(&mut s).await.unwrap();
    assert_eq!(
        (r.tag, r.body),
        (
            5,
            Body::Rlerror {
                ecode: errno::EINVAL
            }
        )
    );
    s.write_all(&frame(6, Body::Tflush { oldtag: 99 }))
        .await
        .unwrap();
    assert_eq!(reply(&mut s).await.unwrap().body, Body::Rflush);
    h.shutdown().await;
}

#[tokio::test]
async fn requests_beyond_the_tag_cap_are_busy_and_counted() {
    let dir = tempfile::tempdir().unwrap();
    let h = hive(&dir).await;
    let mut s = raw(&h).await;
    let mut burst = Vec::new();
    for tag in 0..40u16 {
        burst.extend(frame(tag, Body::Tflush { oldtag: 1000 }));
    }
    s.write_all(&burst).await.unwrap();
    let mut busy = 0;
    for _ in 0..40 {
        match reply(&mut s).await.expect("every request is answered").body {
            Body::Rflush => {}
            Body::Rlerror { ecode } if ecode == errno::EBUSY => busy += 1,
            other => panic!("unexpected {other:?}"),
        }
    }
    let q = queen(&h).await;
    assert_eq!(
        text(&q, "/proc/pressure/busy").await,
        format!("busy={busy}\n")
    );
    h.shutdown().await;
}

#[tokio::test]
async fn tauth_then_attach_with_the_auth_fid() {
    let dir = tempfile::tempdir().unwrap();
    let h = hive(&dir).await;
    let mut s = raw(&h).await;
    let t = ticket(&h, Role::Queen, None);
    let auth = Body::Tauth {
        afid: 1,
        uname: "queen".into(),
        aname: String::new(),
        n_uname: 0,
    };
    s.write_all(&frame(1, auth)).await.unwrap();
    assert!(matches!(
        reply(&mut s).await.unwrap().body,
        Body::Rauth { .. }
    ));
    let write = Body::Twrite {
        fid: 1,
        offset: 0,
        data: t.into_bytes(),
    };
    s.write_all(&frame(2, write)).await.unwrap();
    assert!(matches!(
        reply(&mut s).await.unwrap().body,
        Body::Rwrite { .. }
    ));
    let attach = Body::Tattach {
        fid: 2,
        afid: 1,
        uname: "queen".into(),
        aname: String::new(),
        n_uname: 0,
    };
    s.write_all(&frame(3, attach)).await.unwrap();
    assert!(matches!(
        reply(&mut s).await.unwrap().body,
        Body::Rattach { .. }
    ));

    // A forged ticket through the same route is refused.
    let auth = Body::Tauth {
        afid: 5,
        uname: "queen".into(),
        aname: String::new(),
        n_uname: 0,
    };
    s.write_all(&frame(4, auth)).await.unwrap();
    reply(&mut s).await.unwrap();
    let forged = b"cohesix-ticket-0100.00".to_vec();
    s.write_all(&frame(
        5,
        Body::Twrite {
            fid: 5,
            offset: 0,
            data: forged,
        },
    ))
    .await
    .unwrap();
    reply(&mut s).await.unwrap();
    let attach = Body::Tattach {
        fid: 6,
        afid: 5,
        uname: "queen".into(),
        aname: String::new(),
        n_uname: 0,
    };
    s.write_all(&frame(6, attach)).await.unwrap();
    let r = reply(&mut s).await.unwrap();
    assert_eq!(
        r.body,
        Body::Rlerror {
            ecode: ErrorClass::Permission.errno()
        }
    );
    let _ = NOFID;
    h.shutdown().await;
}

#[tokio::test]
async fn worker_ids_survive_a_restart_of_the_hive() {
    let dir = tempfile::tempdir().unwrap();
    let h = hive(&dir).await;
    let q = queen(&h).await;
    q.append("/queen/ctl", br#"{"spawn":"heartbeat","ticks":5}"#)
        .await
        .unwrap();
    drop(q);
    h.shutdown().await;

    let h = hive(&dir).await;
    let q = queen(&h).await;
    let ctl = q.open("/queen/ctl", OpenMode::ReadWrite).await.unwrap();
    ctl.write_at(0, br#"{"spawn":"heartbeat","ticks":5}"#)
        .await
        .unwrap();
    let id = String::from_utf8(ctl.read_to_end(100).await.unwrap()).unwrap();
    assert_ne!(id.trim(), "worker-1");
    h.shutdown().await;
}

#[tokio::test]
async fn unattached_connections_are_cut_after_the_attach_timeout() {
    let dir = tempfile::tempdir().unwrap();
    let h = hive(&dir).await;
    let q = queen(&h).await;
    let cut = |t: String| -> u64 { t.trim().trim_start_matches("cut=").parse().unwrap() };
    let before = cut(text(&q, "/proc/pressure/cut").await);
    // One versioned but never attached, one that sent half a header.
    let mut versioned = raw(&h).await;
    let mut half = TcpStream::connect(h.ninep_addr).await.unwrap();
    half.write_all(&[19, 0]).await.unwrap();
    tokio::time::sleep(cohesix_hive::ninep::ATTACH_TIMEOUT + Duration::from_secs(1)).await;
    let mut byte = [0u8; 1];
    for s in [&mut versioned, &mut half] {
        let n = tokio::time::timeout(Duration::from_secs(2), s.read(&mut byte))
            .await
            .expect("closed, not idle")
            .unwrap_or(0);
        assert_eq!(n, 0, "the hive closed the unattached connection");
    }
    // The attached session, idle just as long, still works.
    assert_eq!(cut(text(&q, "/proc/pressure/cut").await), before + 2);
    h.shutdown().await;
}

#[tokio::test]
async fn a_burst_of_connects_never_passes_the_session_limit() {
    let dir = tempfile::tempdir().unwrap();
    let mut manifest = Manifest::default();
    manifest.ninep.listen = "127.0.0.1:0".into();
    manifest.ninep.max_sessions = 8;
    manifest.console.listen = String::new();
    let config = HiveConfig {
        manifest,
        manifest_name: "test".into(),
        data_dir: dir.path().to_path_buf(),
    };
    let h = cohesix_hive::start(config).await.expect("hive starts");
    // Blocking connects: all 64 wait in the backlog before the accept
    // loop runs, the burst that used to pass the limit.
    let mut socks = Vec::new();
    for _ in 0..64 {
        let s = std::net::TcpStream::connect(h.ninep_addr).unwrap();
        s.set_nonblocking(true).unwrap();
        socks.push(TcpStream::from_std(s).unwrap());
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let mut open = 0;
    let mut byte = [0u8; 1];
    for s in &mut socks {
        match tokio::time::timeout(Duration::from_millis(50), s.read(&mut byte)).await {
            Err(_) => open += 1, // still held by the hive
            Ok(_) => {}          // closed: refused
        }
    }
    assert_eq!(open, 8, "exactly max_sessions connections are served");
    h.shutdown().await;
}

#[tokio::test]
async fn a_peer_that_never_reads_is_cut_and_cannot_outstay_the_attach_timeout() {
    let dir = tempfile::tempdir().unwrap();
    let h = hive(&dir).await;
    let s = TcpStream::connect(h.ninep_addr).await.unwrap();
    let (_read_half, mut write_half) = s.into_split();
    // Tversion after Tversion, never reading a reply: the hive's writes
    // block once the socket buffers fill.
    let one = version();
    let mut burst = Vec::new();
    for _ in 0..1000 {
        burst.extend_from_slice(&one);
    }
    let limit = cohesix_hive::ninep::ATTACH_TIMEOUT + cohesix_hive::ninep::WRITE_TIMEOUT;
    let cut = tokio::time::timeout(limit + Duration::from_secs(10), async {
        loop {
            if write_half.write_all(&burst).await.is_err() {
                return;
            }
        }
    })
    .await;
    assert!(cut.is_ok(), "the hive closed the connection");
    h.shutdown().await;
}
