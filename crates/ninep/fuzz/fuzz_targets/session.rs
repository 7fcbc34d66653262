//! Fuzz target: a sequence of frames into one session engine.
//!
//! The session is versioned and attached first so the fuzzer spends its
//! time past the handshake. The input is cut into chunks `ctl len bytes`;
//! when `ctl` is odd the chunk's size field is stamped to its real length,
//! so most frames reach the body decoders instead of failing on framing.
//! Checks: no panic, every reply decodes and fits the msize, the engine
//! never holds more fids than its limit, and shutdown balances every
//! attach and open with a detach and a clunk. Backend logic is not tested
//! here (the backend is the crate's in-memory fixture).
#![no_main]

use cohesix_ninep::codec::{decode, encode};
use cohesix_ninep::mem::MemBackend;
use cohesix_ninep::{Body, Limits, Message, Session};
use libfuzzer_sys::fuzz_target;

const LIMITS: Limits = Limits {
    msize: 1024,
    max_fids: 6,
    walk_depth: 8,
    max_component_bytes: 255,
};

fn backend() -> MemBackend {
    let mut b = MemBackend::new();
    b.file("/proc/boot", b"cohesix boot\n")
        .append_file("/log/queen.log")
        .dir("/a/b/c/d/e/f/g/h")
        .dir("/secret")
        .deny("/secret");
    for name in ["one", "two", "three", "a-longer-name-for-paging"] {
        b.file(&format!("/many/{name}"), name.as_bytes());
    }
    b
}

fn frame(body: Body) -> Vec<u8> {
    let mut out = Vec::new();
    encode(&Message::new(1, body), &mut out).expect("handshake encodes");
    out
}

fuzz_target!(|data: &[u8]| {
    let mut backend = backend();
    let mut session = Session::new(LIMITS);
    let mut out = Vec::new();

    let hello = Body::Tversion {
        msize: 1024,
        version: "9P2000.L".into(),
    };
    let attach = Body::Tattach {
        fid: 0,
        afid: u32::MAX,
        uname: "queen".into(),
        aname: String::new(),
        n_uname: 0,
    };
    for body in [hello, attach] {
        session.handle(&mut backend, &frame(body), &mut out);
    }

    let mut rest = data;
    while let [ctl, len, tail @ ..] = rest {
        let take = usize::from(*len).min(tail.len());
        let mut chunk = tail[..take].to_vec();
        rest = &tail[take..];
        if ctl & 1 == 1 && chunk.len() >= 4 {
            let size = chunk.len() as u32;
            chunk[..4].copy_from_slice(&size.to_le_bytes());
        }

        out.clear();
        let outcome = session.handle(&mut backend, &chunk, &mut out);
        assert_eq!(out.is_empty(), outcome.close);
        if !out.is_empty() {
            let reply = decode(&out).expect("the engine's replies decode");
            assert_eq!(Some(reply.tag), outcome.tag);
            assert!(out.len() <= 1024);
        }
        assert!(session.fid_count() <= LIMITS.max_fids);
    }

    session.shutdown(&mut backend);
    let stats = backend.stats();
    assert_eq!(stats.attaches, stats.detaches);
    assert_eq!(stats.opens, stats.clunks);
});
