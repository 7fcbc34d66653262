//! The client against a real TCP server on 127.0.0.1.
//!
//! The server is a test fixture: a tokio accept loop that runs the ninep
//! session engine over the in-memory backend, plus misbehaving variants
//! (replies reversed in pairs, silence after attach, hang-up after attach)
//! for the pipelining, timeout and dead-connection paths.

use cohesix_client::{Client, ClientConfig, Error, ErrorClass, OpenMode};
use cohesix_ninep::codec::encode;
use cohesix_ninep::mem::MemBackend;
use cohesix_ninep::{Limits, Message, Session};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

/// How the fixture treats requests after the version and attach.
#[derive(Clone, Copy)]
enum Mode {
    /// Answer each request in turn.
    Serve,
    /// Read two requests, answer the second first.
    ReversePairs,
    /// Read and count requests, never answer.
    Silent,
    /// Hang up on the first request.
    HangUp,
}

struct Fixture {
    addr: SocketAddr,
    backend: Arc<Mutex<MemBackend>>,
    /// Requests seen after the handshake, over all connections.
    seen: Arc<AtomicUsize>,
    server: JoinHandle<()>,
}

impl Drop for Fixture {
    fn drop(&mut self) {
        self.server.abort();
    }
}

fn tree() -> MemBackend {
    let mut b = MemBackend::new();
    b.file("/proc/boot", b"cohesix boot ok\n")
        .file("/proc/big", &[b'z'; 20_000])
        .append_file("/log/queen.log")
        .dir("/log/hidden")
        .deny("/log/hidden")
        .dir("/secret")
        .deny("/secret");
    for i in 0..40 {
        b.file(&format!("/many/entry-{i:02}"), b"x");
    }
    b
}

async fn fixture(mode: Mode, backend: MemBackend) -> Fixture {
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind loopback");
    let addr = listener.local_addr().expect("local addr");
    let backend = Arc::new(Mutex::new(backend));
    let seen = Arc::new(AtomicUsize::new(0));

    let (b, s) = (backend.clone(), seen.clone());
    let server = tokio::spawn(async move {
        // A test opens a handful of connections at most.
        for _ in 0..16 {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            tokio::spawn(serve(stream, mode, b.clone(), s.clone()));
        }
    });
    Fixture {
        addr,
        backend,
        seen,
        server,
    }
}

async fn read_frame(stream: &mut TcpStream) -> Option<Vec<u8>> {
    let mut size = [0u8; 4];
    stream.read_exact(&mut size).await.ok()?;
    let size = u32::from_le_bytes(size) as usize;
    if !(7..=65_536).contains(&size) {
        return None;
    }
    let mut frame = vec![0u8; size];
    frame[..4].copy_from_slice(&(size as u32).to_le_bytes());
    stream.read_exact(&mut frame[4..]).await.ok()?;
    Some(frame)
}

async fn serve(mut stream: TcpStream, mode: Mode, b: Arc<Mutex<MemBackend>>, s: Arc<AtomicUsize>) {
    let mut session = Session::new(Limits::default());
    let answer = |session: &mut Session<MemBackend>, frame: &[u8]| {
        let mut out = Vec::new();
        session.handle(&mut b.lock().unwrap(), frame, &mut out);
        out
    };

    let mut handshake = 0;
    let mut held: Option<Vec<u8>> = None;
    while let Some(frame) = read_frame(&mut stream).await {
        if handshake < 2 {
            handshake += 1;
            let out = answer(&mut session, &frame);
            let _ = stream.write_all(&out).await;
            continue;
        }
        s.fetch_add(1, Ordering::SeqCst);
        match mode {
            Mode::Serve => {
                let out = answer(&mut session, &frame);
                let _ = stream.write_all(&out).await;
            }
            Mode::ReversePairs => match held.take() {
                None => held = Some(frame),
                Some(first) => {
                    let second = answer(&mut session, &frame);
                    let first = answer(&mut session, &first);
                    let _ = stream.write_all(&second).await;
                    let _ = stream.write_all(&first).await;
                }
            },
            Mode::Silent => {}
            Mode::HangUp => break,
        }
    }
    session.shutdown(&mut b.lock().unwrap());
}

fn config() -> ClientConfig {
    ClientConfig::new("queen", "")
}

async fn connect(f: &Fixture, config: ClientConfig) -> Client {
    Client::connect(f.addr, config).await.expect("connect")
}

#[tokio::test]
async fn connect_attaches_with_role_and_ticket() {
    let mut backend = tree();
    backend.require_ticket("cohesix-ticket-00.11");
    let f = fixture(Mode::Serve, backend).await;

    let client = connect(
        &f,
        ClientConfig::new("worker-heartbeat", "cohesix-ticket-00.11"),
    )
    .await;
    assert_eq!(client.msize(), 8192);
    let backend = f.backend.lock().unwrap();
    let seen = backend.last_attach().expect("attached");
    assert_eq!(seen.uname, "worker-heartbeat");
    assert_eq!(seen.aname, "cohesix-ticket-00.11");
}

#[tokio::test]
async fn a_wrong_ticket_is_a_permission_refusal() {
    let mut backend = tree();
    backend.require_ticket("right");
    let f = fixture(Mode::Serve, backend).await;

    let err = Client::connect(f.addr, ClientConfig::new("queen", "wrong"))
        .await
        .err();
    assert_eq!(err.and_then(|e| e.class()), Some(ErrorClass::Permission));
}

#[tokio::test]
async fn msize_is_the_smaller_of_both_sides() {
    let f = fixture(Mode::Serve, tree()).await;
    let client = connect(
        &f,
        ClientConfig {
            msize: 1024,
            ..config()
        },
    )
    .await;
    assert_eq!(client.msize(), 1024);
}

#[tokio::test]
async fn ls_lists_a_directory() {
    let f = fixture(Mode::Serve, tree()).await;
    let client = connect(&f, config()).await;
    assert_eq!(
        client.ls("/").await.unwrap(),
        ["log", "many", "proc", "secret"]
    );
    assert_eq!(client.ls("/proc").await.unwrap(), ["big", "boot"]);
}

#[tokio::test]
async fn ls_pages_through_a_long_directory() {
    let f = fixture(Mode::Serve, tree()).await;
    // 245 bytes a page hold seven 32-byte entries: six pages for forty.
    let client = connect(
        &f,
        ClientConfig {
            msize: 256,
            ..config()
        },
    )
    .await;
    let names = client.ls("/many").await.unwrap();
    let expected: Vec<String> = (0..40).map(|i| format!("entry-{i:02}")).collect();
    assert_eq!(names, expected);
}

#[tokio::test]
async fn read_all_reads_a_file() {
    let f = fixture(Mode::Serve, tree()).await;
    let client = connect(&f, config()).await;
    assert_eq!(
        client.read_all("/proc/boot", 4096).await.unwrap(),
        b"cohesix boot ok\n"
    );
}

#[tokio::test]
async fn read_all_spans_many_reads_and_stops_at_max_bytes() {
    let f = fixture(Mode::Serve, tree()).await;
    let client = connect(&f, config()).await;
    assert_eq!(
        client.read_all("/proc/big", 1 << 20).await.unwrap().len(),
        20_000
    );
    assert_eq!(
        client.read_all("/proc/big", 10_001).await.unwrap().len(),
        10_001
    );
    assert_eq!(client.read_all("/proc/big", 0).await.unwrap().len(), 0);
}

#[tokio::test]
async fn append_lands_and_returns_the_count() {
    let f = fixture(Mode::Serve, tree()).await;
    let client = connect(&f, config()).await;
    assert_eq!(client.append("/log/queen.log", b"one\n").await.unwrap(), 4);
    assert_eq!(client.append("/log/queen.log", b"two\n").await.unwrap(), 4);
    assert_eq!(
        client.read_all("/log/queen.log", 100).await.unwrap(),
        b"one\ntwo\n"
    );
}

#[tokio::test]
async fn append_to_a_read_only_file_is_refused() {
    let f = fixture(Mode::Serve, tree()).await;
    let client = connect(&f, config()).await;
    let err = client.append("/proc/boot", b"x").await.unwrap_err();
    assert_eq!(err.class(), Some(ErrorClass::Permission));
}

#[tokio::test]
async fn an_append_larger_than_one_write_is_refused_locally() {
    let f = fixture(Mode::Serve, tree()).await;
    let client = connect(&f, config()).await;
    let err = client
        .append("/log/queen.log", &[b'x'; 8192 - 22])
        .await
        .unwrap_err();
    assert!(matches!(err, Error::TooBig { limit: 8169, .. }), "{err}");
    assert_eq!(f.seen.load(Ordering::SeqCst), 0, "nothing was sent");
    assert_eq!(
        client
            .append("/log/queen.log", &[b'x'; 8169])
            .await
            .unwrap(),
        8169
    );
}

#[tokio::test]
async fn stat_reports_size_and_kind() {
    let f = fixture(Mode::Serve, tree()).await;
    let client = connect(&f, config()).await;
    let boot = client.stat("/proc/boot").await.unwrap();
    assert_eq!(boot.size, 16);
    assert!(!boot.is_dir());
    assert!(client.stat("/proc").await.unwrap().is_dir());
}

#[tokio::test]
async fn refusals_keep_the_servers_class() {
    let f = fixture(Mode::Serve, tree()).await;
    let client = connect(&f, config()).await;
    let class = |r: Result<Vec<String>, Error>| r.unwrap_err().class();

    assert_eq!(class(client.ls("/nope").await), Some(ErrorClass::NotFound));
    assert_eq!(
        class(client.ls("/secret").await),
        Some(ErrorClass::Permission)
    );
    // Partial walks: the client asks again for the step that failed.
    assert_eq!(
        class(client.ls("/proc/nope").await),
        Some(ErrorClass::NotFound)
    );
    assert_eq!(
        class(client.ls("/log/hidden").await),
        Some(ErrorClass::Permission)
    );
    assert_eq!(
        class(client.ls("/proc/boot").await),
        Some(ErrorClass::Invalid)
    );
}

#[tokio::test]
async fn bad_paths_are_refused_before_sending() {
    let f = fixture(Mode::Serve, tree()).await;
    let client = connect(&f, config()).await;
    let err = client.ls("/proc/..").await.unwrap_err();
    assert!(matches!(err, Error::BadPath { .. }), "{err}");
    assert_eq!(f.seen.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn fids_are_returned_after_each_operation() {
    let f = fixture(Mode::Serve, tree()).await;
    let client = connect(&f, config()).await;
    // Far more operations than the server's fid cap: each one clunks.
    assert!(Limits::default().max_fids < 100);
    for _ in 0..100 {
        client.stat("/proc/boot").await.unwrap();
        let _ = client.ls("/nope").await;
    }
    let file = client.open("/proc/boot", OpenMode::Read).await.unwrap();
    assert_eq!(file.read_at(8, 4).await.unwrap(), b"boot");
    file.close().await.unwrap();
}

#[tokio::test]
async fn many_requests_share_one_connection() {
    let f = fixture(Mode::Serve, tree()).await;
    let client = connect(
        &f,
        ClientConfig {
            max_in_flight: 4,
            ..config()
        },
    )
    .await;
    let mut tasks = Vec::new();
    for i in 0..64 {
        let client = client.clone();
        tasks.push(tokio::spawn(async move {
            if i % 2 == 0 {
                client.read_all("/proc/boot", 100).await.map(|d| d.len())
            } else {
                client.ls("/many").await.map(|n| n.len())
            }
        }));
    }
    for (i, task) in tasks.into_iter().enumerate() {
        let expected = if i % 2 == 0 { 16 } else { 40 };
        assert_eq!(task.await.unwrap().unwrap(), expected);
    }
}

#[tokio::test]
async fn replies_out_of_order_reach_their_callers() {
    let f = fixture(Mode::ReversePairs, tree()).await;
    let client = connect(&f, config()).await;
    let (boot, proc) = tokio::join!(client.stat("/proc/boot"), client.stat("/proc"));
    assert_eq!(boot.unwrap().size, 16);
    assert!(proc.unwrap().is_dir());
}

#[tokio::test]
async fn a_silent_server_times_out() {
    let f = fixture(Mode::Silent, tree()).await;
    let timeout = Duration::from_millis(200);
    let client = connect(
        &f,
        ClientConfig {
            timeout,
            ..config()
        },
    )
    .await;

    let started = Instant::now();
    let err = client.stat("/proc/boot").await.unwrap_err();
    assert!(matches!(err, Error::Timeout { op: "walk", .. }), "{err}");
    assert!(started.elapsed() < Duration::from_secs(2));
}

#[tokio::test]
async fn in_flight_requests_never_exceed_the_tag_cap() {
    let f = fixture(Mode::Silent, tree()).await;
    let timeout = Duration::from_millis(300);
    let client = connect(
        &f,
        ClientConfig {
            timeout,
            max_in_flight: 2,
            ..config()
        },
    )
    .await;

    let results = tokio::join!(client.stat("/a"), client.stat("/b"), client.stat("/c"));
    for r in [results.0, results.1, results.2] {
        assert!(matches!(r, Err(Error::Timeout { .. })));
    }
    assert_eq!(f.seen.load(Ordering::SeqCst), 2);

    // Timed-out tags stay reserved until answered: nothing more is sent.
    assert!(matches!(
        client.stat("/d").await,
        Err(Error::Timeout { .. })
    ));
    assert_eq!(f.seen.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn a_dead_connection_fails_pending_requests_promptly() {
    let f = fixture(Mode::HangUp, tree()).await;
    let timeout = Duration::from_secs(30);
    let client = connect(
        &f,
        ClientConfig {
            timeout,
            ..config()
        },
    )
    .await;

    let started = Instant::now();
    let results = tokio::join!(
        client.read_all("/proc/boot", 10),
        client.read_all("/proc/big", 10),
        client.ls("/many"),
    );
    assert!(matches!(results.0, Err(Error::Disconnected { .. })));
    assert!(matches!(results.1, Err(Error::Disconnected { .. })));
    assert!(matches!(results.2, Err(Error::Disconnected { .. })));
    assert!(started.elapsed() < Duration::from_secs(5));

    assert!(!client.is_connected());
    let later = client.stat("/proc").await.unwrap_err();
    assert!(later.is_transport(), "{later}");
}

#[tokio::test]
async fn close_fails_later_requests() {
    let f = fixture(Mode::Serve, tree()).await;
    let client = connect(&f, config()).await;
    client.close();
    assert!(matches!(
        client.stat("/proc").await,
        Err(Error::Disconnected { .. })
    ));
}

#[tokio::test]
async fn a_server_speaking_another_version_is_refused() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = tokio::spawn(async move {
        let (mut stream, _) = listener.accept().await.unwrap();
        let _ = read_frame(&mut stream).await;
        let reply = cohesix_ninep::Body::Rversion {
            msize: 8192,
            version: "9P2000.u".into(),
        };
        let mut out = Vec::new();
        encode(&Message::new(0xFFFF, reply), &mut out).unwrap();
        let _ = stream.write_all(&out).await;
    });

    let err = Client::connect(addr, config())
        .await
        .err()
        .expect("refused");
    assert!(matches!(err, Error::Protocol(_)), "{err}");
    server.abort();
}
