//! Bad input gets its documented answer, the gateway's memory stays
//! bounded, and other clients are still served.

use crate::common::{harness, harness_with, post, q, request, rss_kib, Harness, TOKEN};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

async fn expect_400(h: &Harness, uri: &str, detail: &str) {
    let r = h.get(uri).await;
    assert_eq!(r.status, 400, "{uri}: {}", r.text());
    let v = r.json();
    assert_eq!(v["status"], "ERR");
    assert_eq!(v["end"], true);
    let e = r.error();
    assert!(
        e.contains(&format!("reason=policy detail={detail}")),
        "{uri}: {e}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_paths_are_400_invalid_path() {
    let h = harness().await;
    let depth9 = "/a".repeat(9);
    let long_component = format!("/{}", "c".repeat(256));
    let path_4k = format!("/{}", "abcdefg/".repeat(512));
    let paths = [
        "/proc/../boot",
        "/./proc",
        "/..",
        "proc/boot",
        "/proc//boot",
        "/proc/",
        "/a\0b",
        depth9.as_str(),
        long_component.as_str(),
        path_4k.as_str(),
    ];
    for route in ["ls", "cat", "tail"] {
        for p in paths {
            let uri = format!("/v1/fs/{route}?path={}&max_bytes=64", q(p));
            expect_400(&h, &uri, "invalid-path").await;
        }
        expect_400(&h, &format!("/v1/fs/{route}?max_bytes=64"), "invalid-path").await;
    }
    // Depth 8 is still fine (the hive answers: not found).
    let r = h
        .get(&format!("/v1/fs/cat?path={}&max_bytes=64", "/a".repeat(8)))
        .await;
    assert_eq!(r.status, 200);
    assert!(r.error().contains("detail=not-found"), "{}", r.error());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_path_echoed_back_is_bounded() {
    let h = harness().await;
    let path_4k = format!("/{}", "x/".repeat(2048));
    let r = h.get(&format!("/v1/fs/ls?path={}", q(&path_4k))).await;
    assert_eq!(r.status, 400);
    assert!(r.json()["path"].as_str().is_some_and(|p| p.len() <= 1024));
    assert!(r.error().len() < 600, "{}", r.error().len());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn max_bytes_missing_zero_or_malformed_is_400_and_huge_is_clamped() {
    let h = harness().await;
    for route in ["cat", "tail"] {
        let base = format!("/v1/fs/{route}?path=/proc/lifecycle/state");
        expect_400(&h, &base, "invalid-max-bytes").await;
        for bad in ["0", "-1", "abc", "1.5", "", "1e9"] {
            let uri = format!("{base}&max_bytes={}", q(bad));
            expect_400(&h, &uri, "invalid-max-bytes").await;
        }
        let huge = format!("{base}&max_bytes=99999999999999999999999999999");
        let r = h.get(&huge).await;
        assert_eq!(r.status, 200, "{}", r.text());
        assert_eq!(r.lines(), ["state=ONLINE"]);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tail_lines_out_of_range_is_400() {
    let h = harness().await;
    for bad in ["0", "257", "-3", "many"] {
        let uri = format!("/v1/fs/tail?path=/log/queen.log&max_bytes=100&lines={bad}");
        expect_400(&h, &uri, "invalid-lines").await;
    }
}

async fn echo_raw(h: &Harness, body: &[u8]) -> crate::common::Reply {
    post(h.addr(), "/v1/fs/echo", body.to_vec()).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_echo_bodies_and_lines_are_400() {
    let h = harness().await;
    let cases: [(&[u8], &str); 6] = [
        (b"{not json", "invalid-json"),
        (b"", "invalid-json"),
        (br#"{"path":"/queen/ctl"}"#, "invalid-json"),
        (br#"{"path":"/log/queen.log","line":"a\nb"}"#, "multi-line"),
        (br#"{"path":"/log/queen.log","line":""}"#, "invalid-line"),
        (br#"{"path":"/log/../x","line":"a"}"#, "invalid-path"),
    ];
    for (body, detail) in cases {
        let r = echo_raw(&h, body).await;
        assert_eq!(
            r.status,
            400,
            "{}: {}",
            String::from_utf8_lossy(body),
            r.text()
        );
        assert_eq!(r.json()["verb"], "ECHO");
        assert!(
            r.error().contains(&format!("detail={detail}")),
            "{}",
            r.error()
        );
    }
    let long = "x".repeat(4097);
    let r = h.echo("/log/queen.log", &long).await;
    assert_eq!(r.status, 400);
    assert!(r.error().contains("detail=line-too-long"), "{}", r.error());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_over_the_bound_is_413() {
    let h = harness().await;
    let big = format!(
        r#"{{"path":"/log/queen.log","line":"{}"}}"#,
        "x".repeat(70 * 1024)
    );
    let r = echo_raw(&h, big.as_bytes()).await;
    assert_eq!(r.status, 413, "{}", r.text());
    assert!(r.error().contains("detail=body-too-large"), "{}", r.error());

    // Chunked, so no length is declared: refused once the bound is crossed.
    let mut s = TcpStream::connect(h.addr()).await.expect("connect");
    let head = format!(
        "POST /v1/fs/echo HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer {TOKEN}\r\n\
         Transfer-Encoding: chunked\r\n\r\n"
    );
    s.write_all(head.as_bytes()).await.expect("head");
    let chunk = vec![b'x'; 70 * 1024];
    s.write_all(format!("{:x}\r\n", chunk.len()).as_bytes())
        .await
        .expect("size");
    s.write_all(&chunk).await.expect("chunk");
    s.write_all(b"\r\n").await.expect("crlf");
    let head = read_head(&mut s, Duration::from_secs(5)).await;
    assert!(head.starts_with("HTTP/1.1 413"), "{head}");
}

/// Reads until the end of a response head, the connection closes, or `within`.
async fn read_head(s: &mut TcpStream, within: Duration) -> String {
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    let deadline = tokio::time::Instant::now() + within;
    while !got.windows(4).any(|w| w == b"\r\n\r\n") {
        match tokio::time::timeout_at(deadline, s.read(&mut buf)).await {
            Ok(Ok(n)) if n > 0 => got.extend_from_slice(&buf[..n]),
            _ => break,
        }
    }
    String::from_utf8_lossy(&got).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_1_gib_body_is_refused_before_it_is_read() {
    let h = harness().await;
    let before = rss_kib();
    let s = TcpStream::connect(h.addr()).await.expect("connect");
    let (mut read, mut write) = s.into_split();
    let head = format!(
        "POST /v1/fs/echo HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer {TOKEN}\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        1u64 << 30
    );
    write.write_all(head.as_bytes()).await.expect("head");
    // Keep sending (up to 16 MiB) while the answer comes back.
    let sender = tokio::spawn(async move {
        let chunk = vec![b' '; 64 * 1024];
        for _ in 0..256 {
            if write.write_all(&chunk).await.is_err() {
                return;
            }
        }
    });
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while !got.windows(4).any(|w| w == b"\r\n\r\n") {
        match tokio::time::timeout_at(deadline, read.read(&mut buf)).await {
            Ok(Ok(n)) if n > 0 => got.extend_from_slice(&buf[..n]),
            _ => break,
        }
    }
    let head = String::from_utf8_lossy(&got);
    assert!(head.starts_with("HTTP/1.1 413"), "{head}");
    drop(read);
    let _ = tokio::time::timeout(Duration::from_secs(5), sender).await;
    let grown = rss_kib().saturating_sub(before);
    // Other tests share this process; 256 MiB still catches a buffered GiB.
    assert!(grown < 256 * 1024, "memory grew by {grown} KiB");
    assert_eq!(h.get("/v1/meta/status").await.status, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_headers_are_cut_and_others_still_served() {
    let h = harness_with(|c| c.http.header_timeout = Duration::from_millis(300)).await;
    let mut slow = TcpStream::connect(h.addr()).await.expect("connect");
    slow.write_all(b"GET /v1/meta/status HTTP/1.1\r\nHost: t\r\n")
        .await
        .expect("write");
    assert_eq!(h.get("/v1/fs/ls?path=/").await.status, 200);
    let mut buf = [0u8; 1024];
    let ended = tokio::time::timeout(Duration::from_secs(5), async {
        // The server closes; an answer (if any) is followed by EOF.
        loop {
            match slow.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    })
    .await;
    assert!(
        ended.is_ok(),
        "a client stalling in its headers kept its connection"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_body_is_408() {
    let h = harness_with(|c| c.http.body_timeout = Duration::from_millis(300)).await;
    let mut s = TcpStream::connect(h.addr()).await.expect("connect");
    let head = format!(
        "POST /v1/fs/echo HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer {TOKEN}\r\n\
         Content-Length: 100\r\n\r\n{{\"path\":"
    );
    s.write_all(head.as_bytes()).await.expect("write");
    let head = read_head(&mut s, Duration::from_secs(5)).await;
    assert!(head.starts_with("HTTP/1.1 408"), "{head}");
    assert_eq!(h.get("/v1/fs/ls?path=/").await.status, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_query_strings_are_400() {
    let h = harness().await;
    let r = request(
        h.addr(),
        "GET",
        "/v1/fs/cat?path=%ZZ&max_bytes=1",
        &[("x-cohesix-auth", TOKEN)],
        vec![],
    )
    .await;
    assert_eq!(r.status, 400, "{}", r.text());
    assert_eq!(r.json()["status"], "ERR");
}
