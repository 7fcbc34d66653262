//! Property tests of the wire codec: every message round-trips, and no
//! input, truncated or garbage, makes decoding (or a session) panic.

use cohesix_ninep::codec::{decode, encode, peek_header, DecodeErrorKind};
use cohesix_ninep::mem::MemBackend;
use cohesix_ninep::msg::{op_name, MAX_WELEM};
use cohesix_ninep::{Attr, Body, Dirent, Limits, Message, Qid, Session, StatFs};
use proptest::collection::vec;
use proptest::prelude::*;

fn qid() -> impl Strategy<Value = Qid> {
    (any::<u8>(), any::<u32>(), any::<u64>()).prop_map(|(ty, version, path)| Qid {
        ty,
        version,
        path,
    })
}

fn name() -> impl Strategy<Value = String> {
    // Any UTF-8, short enough to keep cases quick; the engine, not the
    // codec, decides which names are acceptable.
    ".{0,24}"
}

fn bytes() -> impl Strategy<Value = Vec<u8>> {
    vec(any::<u8>(), 0..300)
}

fn attr() -> impl Strategy<Value = Attr> {
    (qid(), any::<[u64; 18]>(), any::<[u32; 3]>()).prop_map(|(qid, w, n)| Attr {
        valid: w[0],
        qid,
        mode: n[0],
        uid: n[1],
        gid: n[2],
        nlink: w[1],
        rdev: w[2],
        size: w[3],
        blksize: w[4],
        blocks: w[5],
        atime_sec: w[6],
        atime_nsec: w[7],
        mtime_sec: w[8],
        mtime_nsec: w[9],
        ctime_sec: w[10],
        ctime_nsec: w[11],
        btime_sec: w[12],
        btime_nsec: w[13],
        gen: w[14],
        data_version: w[15] ^ w[16] ^ w[17],
    })
}

fn statfs() -> impl Strategy<Value = StatFs> {
    (any::<[u32; 3]>(), any::<[u64; 6]>()).prop_map(|(n, w)| StatFs {
        fs_type: n[0],
        bsize: n[1],
        blocks: w[0],
        bfree: w[1],
        bavail: w[2],
        files: w[3],
        ffree: w[4],
        fsid: w[5],
        namelen: n[2],
    })
}

fn dirent() -> impl Strategy<Value = Dirent> {
    (qid(), any::<u64>(), any::<u8>(), name()).prop_map(|(qid, offset, kind, name)| Dirent {
        qid,
        offset,
        kind,
        name,
    })
}

/// Type numbers that the codec keeps as `Unsupported`.
fn unsupported_ty() -> impl Strategy<Value = u8> {
    any::<u8>().prop_filter("a modelled type", |t| {
        let frame = [7, 0, 0, 0, *t, 0, 0];
        matches!(
            decode(&frame),
            Ok(Message {
                body: Body::Unsupported { .. },
                ..
            })
        )
    })
}

fn body() -> impl Strategy<Value = Body> {
    let u = any::<u32>;
    prop_oneof![
        (u(), name()).prop_map(|(msize, version)| Body::Tversion { msize, version }),
        (u(), name()).prop_map(|(msize, version)| Body::Rversion { msize, version }),
        (u(), name(), name(), u()).prop_map(|(afid, uname, aname, n_uname)| Body::Tauth {
            afid,
            uname,
            aname,
            n_uname
        }),
        qid().prop_map(|aqid| Body::Rauth { aqid }),
        (u(), u(), name(), name(), u()).prop_map(|(fid, afid, uname, aname, n_uname)| {
            Body::Tattach {
                fid,
                afid,
                uname,
                aname,
                n_uname,
            }
        }),
        qid().prop_map(|qid| Body::Rattach { qid }),
        u().prop_map(|ecode| Body::Rlerror { ecode }),
        any::<u16>().prop_map(|oldtag| Body::Tflush { oldtag }),
        Just(Body::Rflush),
        (u(), u(), vec(name(), 0..=MAX_WELEM)).prop_map(|(fid, newfid, wnames)| Body::Twalk {
            fid,
            newfid,
            wnames
        }),
        vec(qid(), 0..=MAX_WELEM).prop_map(|wqids| Body::Rwalk { wqids }),
        (u(), u()).prop_map(|(fid, flags)| Body::Tlopen { fid, flags }),
        (qid(), u()).prop_map(|(qid, iounit)| Body::Rlopen { qid, iounit }),
        (u(), any::<u64>(), u()).prop_map(|(fid, offset, count)| Body::Tread {
            fid,
            offset,
            count
        }),
        bytes().prop_map(|data| Body::Rread { data }),
        (u(), any::<u64>(), bytes()).prop_map(|(fid, offset, data)| Body::Twrite {
            fid,
            offset,
            data
        }),
        u().prop_map(|count| Body::Rwrite { count }),
        u().prop_map(|fid| Body::Tclunk { fid }),
        Just(Body::Rclunk),
        u().prop_map(|fid| Body::Tremove { fid }),
        Just(Body::Rremove),
        (u(), any::<u64>()).prop_map(|(fid, request_mask)| Body::Tgetattr { fid, request_mask }),
        attr().prop_map(|attr| Body::Rgetattr { attr }),
        (u(), any::<u64>(), u()).prop_map(|(fid, offset, count)| Body::Treaddir {
            fid,
            offset,
            count
        }),
        vec(dirent(), 0..8).prop_map(|entries| Body::Rreaddir { entries }),
        u().prop_map(|fid| Body::Tstatfs { fid }),
        statfs().prop_map(|statfs| Body::Rstatfs { statfs }),
        (u(), u()).prop_map(|(fid, datasync)| Body::Tfsync { fid, datasync }),
        Just(Body::Rfsync),
        (
            u(),
            u(),
            u(),
            u(),
            u(),
            any::<u64>(),
            any::<u64>(),
            any::<u64>(),
            any::<u64>()
        )
            .prop_map(
                |(fid, valid, mode, uid, gid, size, a, b, c)| Body::Tsetattr {
                    fid,
                    valid,
                    mode,
                    uid,
                    gid,
                    size,
                    atime_sec: a,
                    atime_nsec: b,
                    mtime_sec: c,
                    mtime_nsec: a ^ c,
                }
            ),
        Just(Body::Rsetattr),
        unsupported_ty().prop_map(|ty| Body::Unsupported { ty }),
    ]
}

fn message() -> impl Strategy<Value = Message> {
    (any::<u16>(), body()).prop_map(|(tag, body)| Message { tag, body })
}

fn encoded(msg: &Message) -> Vec<u8> {
    let mut frame = Vec::new();
    encode(msg, &mut frame).expect("generated messages are encodable");
    frame
}

proptest! {
    // About thirty variants share these cases; ask for enough to see each
    // one many times.
    #![proptest_config(ProptestConfig::with_cases(2048))]

    #[test]
    fn every_message_round_trips(msg in message()) {
        let frame = encoded(&msg);
        let header = peek_header(&frame).expect("a header");
        prop_assert_eq!(header.size as usize, frame.len());
        prop_assert_eq!(header.ty, msg.body.ty());
        prop_assert_eq!(header.tag, msg.tag);
        prop_assert_eq!(decode(&frame), Ok(msg));
    }
}

proptest! {
    #[test]
    fn truncated_frames_are_errors(msg in message(), cut in any::<prop::sample::Index>()) {
        let frame = encoded(&msg);
        let len = cut.index(frame.len());
        // Re-stamp the size so the cut is seen as a short body, not as
        // broken framing.
        let mut short = frame[..len].to_vec();
        if short.len() >= 4 {
            let size = short.len() as u32;
            short[..4].copy_from_slice(&size.to_le_bytes());
        }
        if let Ok(decoded) = decode(&short) {
            // Only bodies with nothing to cut (or an optional tail) survive.
            prop_assert!(len >= 7);
            let cuttable = matches!(
                decoded.body,
                Body::Rflush | Body::Rclunk | Body::Rremove | Body::Rfsync | Body::Rsetattr
                    | Body::Unsupported { .. } | Body::Tfsync { datasync: 0, .. }
            );
            prop_assert!(cuttable, "{:?}", decoded);
        }
    }

    #[test]
    fn garbage_never_panics(frame in vec(any::<u8>(), 0..200)) {
        if let Ok(msg) = decode(&frame) {
            let again = encoded(&msg);
            prop_assert_eq!(decode(&again), Ok(msg));
        }
    }

    #[test]
    fn garbage_with_a_valid_header_never_panics(
        ty in any::<u8>(),
        tag in any::<u16>(),
        body in vec(any::<u8>(), 0..200),
    ) {
        let mut frame = ((body.len() + 7) as u32).to_le_bytes().to_vec();
        frame.push(ty);
        frame.extend_from_slice(&tag.to_le_bytes());
        frame.extend_from_slice(&body);
        match decode(&frame) {
            Ok(msg) => prop_assert_eq!(decode(&encoded(&msg)), Ok(msg)),
            Err(e) => {
                prop_assert_eq!(e.tag, Some(tag));
                let framing = matches!(e.kind, DecodeErrorKind::SizeMismatch { .. });
                prop_assert!(!framing);
            }
        }
    }

    #[test]
    fn a_session_survives_any_requests(
        requests in vec((message(), 0u32..4, 0u32..4, any::<bool>()), 0..32),
    ) {
        let mut backend = MemBackend::new();
        backend.file("/proc/boot", b"ok").append_file("/log/queen.log");
        let mut session = Session::new(Limits { max_fids: 3, ..Limits::default() });
        let mut out = Vec::new();
        let hello = Body::Tversion { msize: 8192, version: "9P2000.L".into() };
        let attach = Body::Tattach {
            fid: 0,
            afid: u32::MAX,
            uname: "queen".into(),
            aname: String::new(),
            n_uname: 0,
        };
        for body in [hello, attach] {
            session.handle(&mut backend, &encoded(&Message::new(1, body)), &mut out);
        }

        for (msg, fid, newfid, garble) in requests {
            // Aim the generated request at the few fids that may exist.
            let mut frame = encoded(&msg);
            if frame.len() >= 15 {
                frame[7..11].copy_from_slice(&fid.to_le_bytes());
                frame[11..15].copy_from_slice(&newfid.to_le_bytes());
            }
            if garble && frame.len() > 7 {
                let at = frame.len() - 1;
                frame[at] ^= 0x80;
            }
            out.clear();
            let outcome = session.handle(&mut backend, &frame, &mut out);
            prop_assert_eq!(out.is_empty(), outcome.close);
            if !out.is_empty() {
                let reply = decode(&out).expect("replies decode");
                prop_assert!(out.len() <= 8192);
                prop_assert_eq!(Some(reply.tag), outcome.tag);
            }
            prop_assert!(session.fid_count() <= 3);
        }
        session.shutdown(&mut backend);
        let stats = backend.stats();
        prop_assert_eq!(stats.attaches, stats.detaches);
        prop_assert_eq!(stats.opens, stats.clunks);
    }
}

#[test]
fn op_names_pair_requests_and_replies() {
    assert_eq!(op_name(110), "walk");
    assert_eq!(op_name(111), "walk");
    assert_eq!(op_name(200), "unknown");
}
