//! Behaviour of the session engine against the in-memory backend.

use super::*;
use crate::mem::MemBackend;
use crate::msg::{MAX_WELEM, NOTAG};
use alloc::borrow::ToOwned;
use alloc::string::ToString;
use alloc::vec;

const ROOT: u32 = 1;

struct Rig {
    session: Session<MemBackend>,
    backend: MemBackend,
}

fn tree() -> MemBackend {
    let mut b = MemBackend::new();
    b.file("/proc/boot", b"cohesix boot ok\n")
        .append_file("/log/queen.log")
        .dir("/a/b/c/d/e/f/g/h")
        .file("/a/b/c/d/e/f/g/h/leaf", b"deep")
        .dir("/secret")
        .deny("/secret");
    for i in 0..40 {
        b.file(&alloc::format!("/many/entry-{i:02}"), b"x");
    }
    b
}

impl Rig {
    /// Versioned and attached as `queen` on fid [`ROOT`].
    fn new() -> Rig {
        let mut rig = Rig::bare(Limits::default());
        rig.version(8192);
        rig.ok(attach(ROOT, NOFID, "queen", ""));
        rig
    }

    fn bare(limits: Limits) -> Rig {
        Rig {
            session: Session::new(limits),
            backend: tree(),
        }
    }

    fn version(&mut self, msize: u32) -> Body {
        self.call(Body::Tversion {
            msize,
            version: "9P2000.L".to_owned(),
        })
        .0
    }

    fn raw(&mut self, frame: &[u8]) -> (Option<Message>, Outcome) {
        let mut out = Vec::new();
        let outcome = self.session.handle(&mut self.backend, frame, &mut out);
        if out.is_empty() {
            return (None, outcome);
        }
        let reply = decode(&out).expect("the engine's reply decodes");
        assert_eq!(Some(reply.tag), outcome.tag);
        (Some(reply), outcome)
    }

    fn call(&mut self, body: Body) -> (Body, Outcome) {
        let mut frame = Vec::new();
        encode(&Message::new(7, body), &mut frame).expect("test frame encodes");
        let (reply, outcome) = self.raw(&frame);
        (reply.expect("a reply").body, outcome)
    }

    #[track_caller]
    fn ok(&mut self, body: Body) -> Body {
        let (reply, outcome) = self.call(body);
        assert_eq!(outcome.refusal, None, "unexpected refusal, reply {reply:?}");
        reply
    }

    #[track_caller]
    fn refused(&mut self, body: Body) -> Refusal {
        let (reply, outcome) = self.call(body);
        let refusal = outcome.refusal.expect("a refusal");
        assert_eq!(
            reply,
            Body::Rlerror {
                ecode: refusal.errno
            }
        );
        refusal
    }

    fn walk(&mut self, fid: u32, newfid: u32, names: &[&str]) -> (Body, Outcome) {
        let wnames = names.iter().map(|n| n.to_string()).collect();
        self.call(Body::Twalk {
            fid,
            newfid,
            wnames,
        })
    }

    #[track_caller]
    fn open(&mut self, newfid: u32, names: &[&str], flags: u32) {
        let (_, outcome) = self.walk(ROOT, newfid, names);
        assert_eq!(outcome.refusal, None);
        self.ok(Body::Tlopen { fid: newfid, flags });
    }
}

fn attach(fid: u32, afid: u32, uname: &str, aname: &str) -> Body {
    Body::Tattach {
        fid,
        afid,
        uname: uname.into(),
        aname: aname.into(),
        n_uname: NOFID,
    }
}

fn engine(class: ErrorClass, errno: u32, detail: &'static str) -> Refusal {
    Refusal {
        class,
        errno,
        detail,
        by: RefusedBy::Engine,
    }
}

fn names(body: &Body) -> Vec<String> {
    match body {
        Body::Rreaddir { entries } => entries.iter().map(|e| e.name.clone()).collect(),
        other => panic!("not an Rreaddir: {other:?}"),
    }
}

#[test]
fn version_caps_msize_at_the_limit() {
    let mut rig = Rig::bare(Limits::default());
    let reply = rig.version(65536);
    assert_eq!(
        reply,
        Body::Rversion {
            msize: 8192,
            version: "9P2000.L".into()
        }
    );
    assert_eq!(rig.session.msize(), Some(8192));

    assert_eq!(
        rig.version(4096),
        Body::Rversion {
            msize: 4096,
            version: "9P2000.L".into()
        }
    );
}

#[test]
fn other_versions_answer_unknown() {
    let mut rig = Rig::bare(Limits::default());
    for version in ["9P2000", "9P2000.u", "9P2000.L.x", ""] {
        let body = Body::Tversion {
            msize: 8192,
            version: version.into(),
        };
        let (reply, outcome) = rig.call(body);
        assert_eq!(
            reply,
            Body::Rversion {
                msize: 8192,
                version: "unknown".into()
            }
        );
        assert_eq!(outcome.refusal.map(|r| r.detail), Some("unknown-version"));
        assert_eq!(rig.session.msize(), None);
    }
}

#[test]
fn msize_below_256_is_refused() {
    let mut rig = Rig::bare(Limits::default());
    let refusal = rig.refused(Body::Tversion {
        msize: 255,
        version: "9P2000.L".into(),
    });
    assert_eq!(
        refusal,
        engine(ErrorClass::Invalid, errno::EINVAL, "msize-too-small")
    );
    assert_eq!(
        rig.version(256),
        Body::Rversion {
            msize: 256,
            version: "9P2000.L".into()
        }
    );
}

#[test]
fn requests_before_version_are_invalid() {
    let mut rig = Rig::bare(Limits::default());
    let refusal = rig.refused(attach(ROOT, NOFID, "queen", ""));
    assert_eq!(
        refusal,
        engine(ErrorClass::Invalid, errno::EPROTO, "version-first")
    );
    assert_eq!(rig.backend.stats().attaches, 0);
}

#[test]
fn version_resets_the_session() {
    let mut rig = Rig::new();
    rig.open(2, &["proc", "boot"], 0);
    assert_eq!(rig.session.fid_count(), 2);

    rig.version(8192);
    assert_eq!(rig.session.fid_count(), 0);
    assert_eq!(rig.session.attached_count(), 0);
    assert_eq!(rig.backend.stats().clunks, 1);
    assert_eq!(rig.backend.stats().detaches, 1);
    assert_eq!(
        rig.refused(Body::Tclunk { fid: ROOT }).class,
        ErrorClass::Closed
    );
}

#[test]
fn attach_passes_role_and_ticket_as_uname_and_aname() {
    let mut rig = Rig::bare(Limits::default());
    rig.backend.require_ticket("tkt");
    rig.version(8192);

    let refusal = rig.refused(attach(ROOT, NOFID, "queen", "wrong"));
    assert_eq!(refusal.by, RefusedBy::Backend);
    assert_eq!(refusal.class, ErrorClass::Permission);
    assert_eq!(rig.session.fid_count(), 0);

    let reply = rig.ok(attach(ROOT, NOFID, "worker-heartbeat", "tkt"));
    assert!(matches!(reply, Body::Rattach { qid } if qid.ty == qid_type::DIR));
    let seen = rig.backend.last_attach().expect("attach seen");
    assert_eq!(
        (seen.uname.as_str(), seen.aname.as_str()),
        ("worker-heartbeat", "tkt")
    );
}

#[test]
fn attach_with_auth_fid_presents_its_bytes() {
    let mut rig = Rig::bare(Limits::default());
    rig.backend.require_ticket("cohesix-ticket-ab.cd");
    rig.version(8192);

    let reply = rig.ok(Body::Tauth {
        afid: 9,
        uname: "queen".into(),
        aname: "".into(),
        n_uname: 0,
    });
    assert!(matches!(reply, Body::Rauth { aqid } if aqid.ty == qid_type::AUTH));
    rig.ok(Body::Twrite {
        fid: 9,
        offset: 0,
        data: b"cohesix-ticket-".to_vec(),
    });
    rig.ok(Body::Twrite {
        fid: 9,
        offset: 15,
        data: b"ab.cd".to_vec(),
    });
    assert_eq!(
        rig.ok(Body::Tread {
            fid: 9,
            offset: 0,
            count: 100
        }),
        Body::Rread { data: vec![] }
    );

    rig.ok(attach(ROOT, 9, "queen", ""));
    let seen = rig.backend.last_attach().expect("attach seen");
    assert_eq!(seen.auth.as_deref(), Some(&b"cohesix-ticket-ab.cd"[..]));
}

#[test]
fn auth_fid_refuses_more_than_512_bytes() {
    let mut rig = Rig::new();
    rig.ok(Body::Tauth {
        afid: 9,
        uname: "queen".into(),
        aname: "".into(),
        n_uname: 0,
    });
    rig.ok(Body::Twrite {
        fid: 9,
        offset: 0,
        data: vec![b'a'; 500],
    });

    let refusal = rig.refused(Body::Twrite {
        fid: 9,
        offset: 0,
        data: vec![b'a'; 13],
    });
    assert_eq!(
        refusal,
        engine(ErrorClass::TooBig, errno::EMSGSIZE, "ticket-too-long")
    );
    rig.ok(Body::Twrite {
        fid: 9,
        offset: 0,
        data: vec![b'a'; 12],
    });
}

#[test]
fn attach_through_a_non_auth_fid_is_refused() {
    let mut rig = Rig::new();
    let refusal = rig.refused(attach(2, ROOT, "queen", ""));
    assert_eq!(refusal.detail, "not-an-auth-fid");
    assert_eq!(
        rig.refused(attach(2, 77, "queen", "")).class,
        ErrorClass::Closed
    );
}

#[test]
fn a_session_may_attach_twice() {
    let mut rig = Rig::new();
    rig.ok(attach(2, NOFID, "worker-heartbeat", ""));
    assert_eq!(rig.session.attached_count(), 2);
    assert_eq!(
        rig.refused(attach(2, NOFID, "queen", "")).detail,
        "fid-in-use"
    );
}

#[test]
fn walk_refuses_dotdot() {
    let mut rig = Rig::new();
    let (_, outcome) = rig.walk(ROOT, 2, &["proc", ".."]);
    assert_eq!(
        outcome.refusal,
        Some(engine(ErrorClass::Invalid, errno::EINVAL, "invalid-name"))
    );
    assert_eq!(rig.session.fid_count(), 1);
}

#[test]
fn walk_refuses_bad_components() {
    let mut rig = Rig::new();
    let before = rig.backend.stats();
    for bad in [".", "", "a/b", "nul\0", "/"] {
        let (_, outcome) = rig.walk(ROOT, 2, &[bad]);
        assert_eq!(
            outcome.refusal.map(|r| r.detail),
            Some("invalid-name"),
            "{bad:?}"
        );
    }
    let long = "x".repeat(256);
    let (_, outcome) = rig.walk(ROOT, 2, &[&long]);
    let expected = engine(ErrorClass::Invalid, errno::ENAMETOOLONG, "name-too-long");
    assert_eq!(outcome.refusal, Some(expected));
    assert_eq!(
        rig.backend.stats(),
        before,
        "no backend call for a bad name"
    );
}

#[test]
fn walk_with_bad_utf8_is_answered_with_its_tag() {
    let mut rig = Rig::new();
    let mut frame = Vec::new();
    let body = Body::Twalk {
        fid: ROOT,
        newfid: 2,
        wnames: vec!["ab".into()],
    };
    encode(&Message::new(42, body), &mut frame).unwrap();
    let at = frame.len() - 2;
    frame[at] = 0xff;

    let (reply, outcome) = rig.raw(&frame);
    assert_eq!(reply.map(|m| m.tag), Some(42));
    assert_eq!(outcome.refusal.map(|r| r.detail), Some("bad-utf8"));
    assert!(!outcome.close);
}

#[test]
fn depth_eight_is_walked() {
    let mut rig = Rig::new();
    let (reply, outcome) = rig.walk(ROOT, 2, &["a", "b", "c", "d", "e", "f", "g", "h"]);
    assert_eq!(outcome.refusal, None);
    assert!(matches!(reply, Body::Rwalk { wqids } if wqids.len() == 8));
}

#[test]
fn depth_nine_is_refused() {
    let mut rig = Rig::new();
    let (_, outcome) = rig.walk(ROOT, 2, &["a", "b", "c", "d", "e", "f", "g", "h", "leaf"]);
    assert_eq!(outcome.refusal.map(|r| r.detail), Some("walk-too-deep"));

    // Depth counts from the root, not from the fid walked from.
    rig.walk(ROOT, 3, &["a", "b", "c", "d", "e", "f", "g", "h"]);
    let (_, outcome) = rig.walk(3, 4, &["leaf"]);
    assert_eq!(outcome.refusal.map(|r| r.detail), Some("walk-too-deep"));
}

#[test]
fn walks_of_more_than_sixteen_names_are_refused() {
    let mut rig = Rig::bare(Limits {
        walk_depth: 64,
        ..Limits::default()
    });
    rig.version(8192);
    rig.ok(attach(ROOT, NOFID, "queen", ""));

    let mut frame = Vec::new();
    let body = Body::Twalk {
        fid: ROOT,
        newfid: 2,
        wnames: vec!["a".into(); MAX_WELEM],
    };
    encode(&Message::new(5, body), &mut frame).unwrap();
    // Patch nwname to 17 and add one more name.
    frame[15..17].copy_from_slice(&17u16.to_le_bytes());
    frame.extend_from_slice(&[1, 0, b'a']);
    let size = u32::try_from(frame.len()).unwrap();
    frame[..4].copy_from_slice(&size.to_le_bytes());

    let (reply, outcome) = rig.raw(&frame);
    assert_eq!(
        reply.map(|m| m.body),
        Some(Body::Rlerror {
            ecode: errno::EINVAL
        })
    );
    assert_eq!(outcome.refusal.map(|r| r.detail), Some("walk-too-long"));
}

#[test]
fn walk_first_step_failure_is_an_error() {
    let mut rig = Rig::new();
    let (reply, outcome) = rig.walk(ROOT, 2, &["nope", "x"]);
    assert_eq!(
        reply,
        Body::Rlerror {
            ecode: errno::ENOENT
        }
    );
    assert_eq!(outcome.refusal.map(|r| r.by), Some(RefusedBy::Backend));
    assert_eq!(rig.session.fid_count(), 1);
}

#[test]
fn partial_walk_answers_qids_and_creates_no_fid() {
    let mut rig = Rig::new();
    let (reply, outcome) = rig.walk(ROOT, 2, &["proc", "nope", "x"]);
    assert!(matches!(reply, Body::Rwalk { wqids } if wqids.len() == 1));
    assert_eq!(outcome.refusal.map(|r| r.class), Some(ErrorClass::NotFound));
    assert_eq!(
        rig.refused(Body::Tclunk { fid: 2 }).class,
        ErrorClass::Closed
    );
}

#[test]
fn walking_through_a_file_is_not_a_directory() {
    let mut rig = Rig::new();
    let (reply, outcome) = rig.walk(ROOT, 2, &["proc", "boot", "x"]);
    assert!(matches!(reply, Body::Rwalk { wqids } if wqids.len() == 2));
    assert_eq!(outcome.refusal.map(|r| r.errno), Some(errno::ENOTDIR));
}

#[test]
fn denied_paths_are_refused_by_the_backend() {
    let mut rig = Rig::new();
    let (reply, outcome) = rig.walk(ROOT, 2, &["secret"]);
    assert_eq!(
        reply,
        Body::Rlerror {
            ecode: errno::EACCES
        }
    );
    assert_eq!(
        outcome.refusal.map(|r| (r.by, r.detail)),
        Some((RefusedBy::Backend, "denied"))
    );
}

#[test]
fn walk_of_no_names_clones_the_fid() {
    let mut rig = Rig::new();
    let (reply, _) = rig.walk(ROOT, 2, &[]);
    assert_eq!(reply, Body::Rwalk { wqids: vec![] });
    rig.walk(2, 2, &["proc"]);
    let reply = rig.ok(Body::Tgetattr {
        fid: 2,
        request_mask: GETATTR_BASIC,
    });
    assert!(matches!(reply, Body::Rgetattr { attr } if attr.qid.ty == qid_type::DIR));
    // The clone is its own fid: clunking it leaves the root alive.
    rig.ok(Body::Tclunk { fid: 2 });
    rig.walk(ROOT, 3, &["proc"]);
}

#[test]
fn walk_onto_a_live_newfid_is_refused() {
    let mut rig = Rig::new();
    rig.walk(ROOT, 2, &["proc"]);
    let (_, outcome) = rig.walk(ROOT, 2, &["log"]);
    assert_eq!(outcome.refusal.map(|r| r.detail), Some("fid-in-use"));
}

#[test]
fn walk_from_an_open_fid_is_refused() {
    let mut rig = Rig::new();
    rig.open(2, &["proc", "boot"], 0);
    let (_, outcome) = rig.walk(2, 3, &[]);
    assert_eq!(outcome.refusal.map(|r| r.detail), Some("fid-open"));
}

#[test]
fn fid_reuse_after_clunk_is_closed() {
    let mut rig = Rig::new();
    rig.open(2, &["proc", "boot"], 0);
    rig.ok(Body::Tclunk { fid: 2 });

    let refusal = rig.refused(Body::Tread {
        fid: 2,
        offset: 0,
        count: 10,
    });
    assert_eq!(
        refusal,
        engine(ErrorClass::Closed, errno::EBADF, "unknown-fid")
    );
    assert_eq!(
        rig.refused(Body::Tclunk { fid: 2 }).class,
        ErrorClass::Closed
    );
    // The number itself may name a new fid.
    rig.walk(ROOT, 2, &["proc"]);
    assert_eq!(rig.session.fid_count(), 2);
}

#[test]
fn fid_limit_is_busy() {
    let mut rig = Rig::bare(Limits {
        max_fids: 3,
        ..Limits::default()
    });
    rig.version(8192);
    rig.ok(attach(ROOT, NOFID, "queen", ""));
    rig.walk(ROOT, 2, &[]);
    rig.walk(ROOT, 3, &[]);

    let (_, outcome) = rig.walk(ROOT, 4, &[]);
    assert_eq!(
        outcome.refusal,
        Some(engine(ErrorClass::Busy, errno::EBUSY, "too-many-fids"))
    );
    let auth = Body::Tauth {
        afid: 5,
        uname: "queen".into(),
        aname: "".into(),
        n_uname: 0,
    };
    assert_eq!(rig.refused(auth).class, ErrorClass::Busy);

    rig.ok(Body::Tclunk { fid: 3 });
    rig.walk(ROOT, 4, &[]);
}

#[test]
fn read_answers_file_content() {
    let mut rig = Rig::new();
    rig.open(2, &["proc", "boot"], 0);
    let reply = rig.ok(Body::Tread {
        fid: 2,
        offset: 8,
        count: 100,
    });
    assert_eq!(
        reply,
        Body::Rread {
            data: b"boot ok\n".to_vec()
        }
    );
}

#[test]
fn oversized_count_is_capped() {
    let mut rig = Rig::new();
    rig.backend.file("/big", &[7u8; 20_000]);
    rig.open(2, &["big"], 0);

    let reply = rig.ok(Body::Tread {
        fid: 2,
        offset: 0,
        count: u32::MAX,
    });
    assert!(matches!(reply, Body::Rread { data } if data.len() == 8192 - 11));
}

#[test]
fn read_on_a_directory_is_eisdir() {
    let mut rig = Rig::new();
    rig.open(2, &["proc"], 0);
    let refusal = rig.refused(Body::Tread {
        fid: 2,
        offset: 0,
        count: 10,
    });
    assert_eq!(refusal.errno, errno::EISDIR);
}

#[test]
fn read_needs_an_open_fid_opened_for_reading() {
    let mut rig = Rig::new();
    rig.walk(ROOT, 2, &["proc", "boot"]);
    assert_eq!(
        rig.refused(Body::Tread {
            fid: 2,
            offset: 0,
            count: 1
        })
        .detail,
        "not-open"
    );

    rig.open(3, &["log", "queen.log"], 1);
    let refusal = rig.refused(Body::Tread {
        fid: 3,
        offset: 0,
        count: 1,
    });
    assert_eq!(refusal.detail, "not-open-for-read");
}

#[test]
fn open_gives_qid_and_iounit() {
    let mut rig = Rig::new();
    rig.walk(ROOT, 2, &["proc", "boot"]);
    let reply = rig.ok(Body::Tlopen { fid: 2, flags: 0 });
    assert!(matches!(reply, Body::Rlopen { iounit: 8168, qid } if qid.ty == qid_type::FILE));
    assert_eq!(
        rig.refused(Body::Tlopen { fid: 2, flags: 0 }).detail,
        "already-open"
    );
}

#[test]
fn opening_a_directory_for_writing_is_eisdir() {
    let mut rig = Rig::new();
    rig.walk(ROOT, 2, &["proc"]);
    assert_eq!(
        rig.refused(Body::Tlopen { fid: 2, flags: 1 }).errno,
        errno::EISDIR
    );
}

#[test]
fn append_reaches_the_backend() {
    let mut rig = Rig::new();
    rig.open(2, &["log", "queen.log"], 1);
    let reply = rig.ok(Body::Twrite {
        fid: 2,
        offset: 0,
        data: b"line\n".to_vec(),
    });
    assert_eq!(reply, Body::Rwrite { count: 5 });
    assert_eq!(rig.backend.contents("/log/queen.log"), Some(&b"line\n"[..]));
}

#[test]
fn write_to_a_read_only_open_is_refused() {
    let mut rig = Rig::new();
    rig.open(2, &["log", "queen.log"], 0);
    let refusal = rig.refused(Body::Twrite {
        fid: 2,
        offset: 0,
        data: b"x".to_vec(),
    });
    assert_eq!(refusal.detail, "not-open-for-write");

    rig.walk(ROOT, 3, &["proc", "boot"]);
    let refusal = rig.refused(Body::Tlopen { fid: 3, flags: 1 });
    assert_eq!(
        (refusal.by, refusal.class),
        (RefusedBy::Backend, ErrorClass::Permission)
    );
}

#[test]
fn frames_over_msize_are_too_big() {
    let mut rig = Rig::new();
    rig.version(512);
    rig.ok(attach(ROOT, NOFID, "queen", ""));
    rig.open(2, &["log", "queen.log"], 1);

    let data = vec![b'x'; 512 - 23 + 1];
    let refusal = rig.refused(Body::Twrite {
        fid: 2,
        offset: 0,
        data,
    });
    assert_eq!(
        refusal,
        engine(ErrorClass::TooBig, errno::EMSGSIZE, "frame-too-big")
    );
    let reply = rig.ok(Body::Twrite {
        fid: 2,
        offset: 0,
        data: vec![b'x'; 512 - 23],
    });
    assert_eq!(reply, Body::Rwrite { count: 489 });
}

#[test]
fn readdir_lists_a_directory() {
    let mut rig = Rig::new();
    rig.open(2, &[], 0);
    let reply = rig.ok(Body::Treaddir {
        fid: 2,
        offset: 0,
        count: 8192,
    });
    assert_eq!(names(&reply), ["a", "log", "many", "proc", "secret"]);
    let Body::Rreaddir { entries } = reply else {
        unreachable!()
    };
    assert_eq!(entries[1].offset, 2);
    assert_eq!(entries[1].kind, dt::DIR);
}

#[test]
fn readdir_pages_by_cookie() {
    let mut rig = Rig::new();
    rig.open(2, &["many"], 0);
    // Each entry is 13 + 8 + 1 + 2 + 8 = 32 bytes; 90 bytes hold two.
    let first = rig.ok(Body::Treaddir {
        fid: 2,
        offset: 0,
        count: 90,
    });
    assert_eq!(names(&first), ["entry-00", "entry-01"]);

    let mut seen = 2;
    let mut offset = 2;
    for _ in 0..40 {
        let reply = rig.ok(Body::Treaddir {
            fid: 2,
            offset,
            count: 90,
        });
        let Body::Rreaddir { entries } = reply else {
            unreachable!()
        };
        let Some(last) = entries.last() else { break };
        offset = last.offset;
        seen += entries.len();
    }
    assert_eq!(seen, 40);
    assert_eq!(
        rig.backend.stats().readdirs,
        1,
        "later pages come from the snapshot"
    );
}

#[test]
fn readdir_count_smaller_than_one_entry_is_refused() {
    let mut rig = Rig::new();
    rig.open(2, &["many"], 0);
    let refusal = rig.refused(Body::Treaddir {
        fid: 2,
        offset: 0,
        count: 10,
    });
    assert_eq!(refusal.detail, "count-too-small");
}

#[test]
fn readdir_of_a_file_is_not_a_directory() {
    let mut rig = Rig::new();
    rig.open(2, &["proc", "boot"], 0);
    let refusal = rig.refused(Body::Treaddir {
        fid: 2,
        offset: 0,
        count: 100,
    });
    assert_eq!(refusal.errno, errno::ENOTDIR);
}

#[test]
fn getattr_reports_the_backend_stat() {
    let mut rig = Rig::new();
    rig.walk(ROOT, 2, &["proc", "boot"]);
    let Body::Rgetattr { attr } = rig.ok(Body::Tgetattr {
        fid: 2,
        request_mask: !0,
    }) else {
        panic!("not an Rgetattr");
    };
    assert_eq!(attr.valid, GETATTR_BASIC);
    assert_eq!(attr.size, 16);
    assert_eq!(attr.mode, 0o100_444);
    assert_eq!(attr.nlink, 1);
}

#[test]
fn statfs_answers_constants() {
    let mut rig = Rig::new();
    let Body::Rstatfs { statfs } = rig.ok(Body::Tstatfs { fid: ROOT }) else {
        panic!("not an Rstatfs");
    };
    assert_eq!(
        (statfs.fs_type, statfs.bsize, statfs.namelen),
        (V9FS_MAGIC, 4096, 255)
    );
}

#[test]
fn flush_of_an_unknown_tag_answers_rflush() {
    let mut rig = Rig::new();
    assert_eq!(rig.ok(Body::Tflush { oldtag: 999 }), Body::Rflush);
}

#[test]
fn fsync_needs_an_open_fid() {
    let mut rig = Rig::new();
    rig.walk(ROOT, 2, &["log", "queen.log"]);
    assert_eq!(
        rig.refused(Body::Tfsync {
            fid: 2,
            datasync: 0
        })
        .detail,
        "not-open"
    );
    rig.ok(Body::Tlopen { fid: 2, flags: 1 });
    assert_eq!(
        rig.ok(Body::Tfsync {
            fid: 2,
            datasync: 0
        }),
        Body::Rfsync
    );
}

#[test]
fn remove_is_refused_and_clunks_the_fid() {
    let mut rig = Rig::new();
    rig.walk(ROOT, 2, &["proc", "boot"]);
    let refusal = rig.refused(Body::Tremove { fid: 2 });
    assert_eq!(
        refusal,
        engine(ErrorClass::Permission, errno::EPERM, "remove-refused")
    );
    assert_eq!(
        rig.refused(Body::Tclunk { fid: 2 }).class,
        ErrorClass::Closed
    );
}

#[test]
fn unserved_types_get_their_errno() {
    let cases = [
        (ty::TXATTRWALK, errno::EOPNOTSUPP),
        (ty::TXATTRCREATE, errno::EOPNOTSUPP),
        (ty::TLOCK, errno::EOPNOTSUPP),
        (ty::TGETLOCK, errno::EOPNOTSUPP),
        (ty::TLCREATE, errno::EROFS),
        (ty::TSYMLINK, errno::EROFS),
        (ty::TMKNOD, errno::EROFS),
        (ty::TRENAME, errno::EROFS),
        (ty::TLINK, errno::EROFS),
        (ty::TMKDIR, errno::EROFS),
        (ty::TRENAMEAT, errno::EROFS),
        (ty::TUNLINKAT, errno::EROFS),
        (ty::TREADLINK, errno::EINVAL),
        (112, errno::EOPNOTSUPP),
        (0, errno::EOPNOTSUPP),
        (255, errno::EOPNOTSUPP),
    ];
    let mut rig = Rig::new();
    for (t, expected) in cases {
        // Any body: unserved types are refused by their number alone.
        let frame = [11, 0, 0, 0, t, 3, 0, 1, 2, 3, 4];
        let (reply, outcome) = rig.raw(&frame);
        assert_eq!(
            reply.map(|m| m.body),
            Some(Body::Rlerror { ecode: expected }),
            "type {t}"
        );
        let refusal = outcome.refusal.expect("refused");
        assert_eq!(refusal.by, RefusedBy::Engine);
    }

    // A well-formed reply sent to the server is not a request either.
    let (reply, _) = rig.raw(&[7, 0, 0, 0, ty::RCLUNK, 3, 0]);
    assert_eq!(
        reply.map(|m| m.body),
        Some(Body::Rlerror {
            ecode: errno::EOPNOTSUPP
        })
    );
}

#[test]
fn engine_errnos_map_back_to_their_class() {
    let mut refusals = vec![
        Refusal::not_dir(),
        Refusal::is_dir(),
        Refusal::bad_fid(),
        engine(ErrorClass::Invalid, errno::EPROTO, "version-first"),
        engine(ErrorClass::Invalid, errno::ENAMETOOLONG, "name-too-long"),
        Refusal::of(ErrorClass::TooBig, "frame-too-big"),
        Refusal::of(ErrorClass::Busy, "too-many-fids"),
    ];
    refusals.extend([ty::TSETATTR, ty::TLOCK, ty::TMKDIR, ty::TREADLINK, 0].map(refuse_type));
    for r in refusals {
        assert_eq!(ErrorClass::from_errno(r.errno), r.class, "{r:?}");
    }
}

#[test]
fn truncated_header_closes_the_connection() {
    let mut rig = Rig::new();
    let (reply, outcome) = rig.raw(&[7, 0, 0]);
    assert!(reply.is_none());
    assert!(outcome.close);
    assert_eq!(outcome.refusal.map(|r| r.class), Some(ErrorClass::Invalid));
}

#[test]
fn size_field_disagreeing_with_the_frame_closes_the_connection() {
    let mut rig = Rig::new();
    let (reply, outcome) = rig.raw(&[20, 0, 0, 0, ty::TCLUNK, 1, 0, 1, 0, 0, 0]);
    assert!(reply.is_none());
    assert!(outcome.close);
}

#[test]
fn truncated_body_is_answered() {
    let mut rig = Rig::new();
    let (reply, outcome) = rig.raw(&[9, 0, 0, 0, ty::TCLUNK, 4, 0, 1, 0]);
    assert_eq!(
        reply,
        Some(Message::new(
            4,
            Body::Rlerror {
                ecode: errno::EINVAL
            }
        ))
    );
    assert_eq!(outcome.op, "clunk");
    assert!(!outcome.close);
}

#[test]
fn last_clunk_detaches_the_backend_session() {
    let mut rig = Rig::new();
    rig.walk(ROOT, 2, &["proc"]);
    rig.ok(Body::Tclunk { fid: ROOT });
    assert_eq!(rig.backend.stats().detaches, 0);
    rig.ok(Body::Tclunk { fid: 2 });
    assert_eq!(rig.backend.stats().detaches, 1);
    assert_eq!(rig.session.attached_count(), 0);
}

#[test]
fn shutdown_clunks_and_detaches_everything() {
    let mut rig = Rig::new();
    rig.ok(attach(10, NOFID, "worker-gpu", ""));
    rig.open(2, &["proc", "boot"], 0);
    rig.open(3, &["log", "queen.log"], 1);

    rig.session.shutdown(&mut rig.backend);
    let stats = rig.backend.stats();
    assert_eq!((stats.opens, stats.clunks), (2, 2));
    assert_eq!((stats.attaches, stats.detaches), (2, 2));
    assert_eq!(rig.session.fid_count(), 0);
    assert_eq!(rig.session.msize(), None);
}

#[test]
fn version_tag_is_echoed() {
    let mut rig = Rig::bare(Limits::default());
    let mut frame = Vec::new();
    let body = Body::Tversion {
        msize: 8192,
        version: "9P2000.L".into(),
    };
    encode(&Message::new(NOTAG, body), &mut frame).unwrap();
    let (reply, _) = rig.raw(&frame);
    assert_eq!(reply.map(|m| m.tag), Some(NOTAG));
}

#[test]
fn rewinding_a_directory_takes_a_fresh_listing() {
    let mut rig = Rig::new();
    rig.open(2, &["many"], 0);
    assert_eq!(
        rig.backend.stats().readdirs,
        1,
        "Tlopen takes the first snapshot"
    );
    let page = Body::Treaddir {
        fid: 2,
        offset: 0,
        count: 8192,
    };
    assert_eq!(names(&rig.ok(page.clone())).len(), 40);
    assert_eq!(rig.backend.stats().readdirs, 1, "the first read uses it");
    rig.backend.file("/many/late", b"x");
    assert_eq!(names(&rig.ok(page)).len(), 41);
    assert_eq!(rig.backend.stats().readdirs, 2, "a rewind lists again");
}

/// The in-memory tree, except that `/a` may be walked but not listed (as a
/// hive shows a worker the directories above its own telemetry).
struct WalkOnly(MemBackend);

impl Backend for WalkOnly {
    type Session = u32;
    type Open = crate::mem::MemOpen;

    fn attach(&mut self, req: AttachRequest<'_>) -> Result<u32, NsError> {
        self.0.attach(req)
    }
    fn detach(&mut self, session: u32) {
        self.0.detach(session)
    }
    fn stat(&mut self, session: u32, path: &str) -> Result<NodeStat, NsError> {
        self.0.stat(session, path)
    }
    fn open(&mut self, session: u32, path: &str, mode: OpenMode) -> Result<Self::Open, NsError> {
        self.0.open(session, path, mode)
    }
    fn read(
        &mut self,
        session: u32,
        open: &mut Self::Open,
        offset: u64,
        count: u32,
        out: &mut Vec<u8>,
    ) -> Result<(), NsError> {
        self.0.read(session, open, offset, count, out)
    }
    fn write(
        &mut self,
        session: u32,
        open: &mut Self::Open,
        offset: u64,
        data: &[u8],
    ) -> Result<u32, NsError> {
        self.0.write(session, open, offset, data)
    }
    fn readdir(&mut self, session: u32, path: &str) -> Result<Vec<DirEntry>, NsError> {
        if path == "/a" {
            return Err(NsError::permission("not-listable"));
        }
        self.0.readdir(session, path)
    }
    fn clunk(&mut self, session: u32, open: Self::Open) {
        self.0.clunk(session, open)
    }
}

/// Regression (tests/v9fs): busybox `ls` of a directory the role may walk
/// but not list printed nothing and exited 0, because `Tlopen` succeeded
/// and only `Treaddir` was refused. The refusal now comes at `Tlopen`.
#[test]
fn a_directory_that_cannot_be_listed_is_refused_at_open() {
    let mut session = Session::new(Limits::default());
    let mut backend = WalkOnly(tree());
    let mut call = |body: Body| {
        let mut frame = Vec::new();
        encode(&Message::new(7, body), &mut frame).expect("test frame encodes");
        let mut out = Vec::new();
        let outcome = session.handle(&mut backend, &frame, &mut out);
        (
            decode(&out).expect("the engine's reply decodes").body,
            outcome,
        )
    };
    call(Body::Tversion {
        msize: 8192,
        version: "9P2000.L".into(),
    });
    let (_, outcome) = call(attach(ROOT, NOFID, "queen", ""));
    assert_eq!(outcome.refusal, None);
    let walk = |newfid: u32, names: &[&str]| Body::Twalk {
        fid: ROOT,
        newfid,
        wnames: names.iter().map(|n| n.to_string()).collect(),
    };

    let (_, outcome) = call(walk(2, &["a"]));
    assert_eq!(outcome.refusal, None, "walking to it is allowed");
    let (reply, outcome) = call(Body::Tlopen { fid: 2, flags: 0 });
    assert_eq!(
        reply,
        Body::Rlerror {
            ecode: errno::EACCES
        }
    );
    let refusal = outcome.refusal.expect("a refusal");
    assert_eq!(
        (refusal.class, refusal.detail),
        (ErrorClass::Permission, "not-listable")
    );
    let (_, outcome) = call(Body::Treaddir {
        fid: 2,
        offset: 0,
        count: 8192,
    });
    assert_eq!(
        outcome.refusal.map(|r| r.detail),
        Some("not-open"),
        "the fid stayed unopened"
    );

    let (_, outcome) = call(walk(3, &["a", "b"]));
    assert_eq!(outcome.refusal, None, "walking through it still works");
    let (_, outcome) = call(Body::Tlopen { fid: 3, flags: 0 });
    assert_eq!(outcome.refusal, None, "a listable directory below it opens");
}

fn setattr(fid: u32, valid: u32, size: u64) -> Body {
    Body::Tsetattr {
        fid,
        valid,
        mode: 0,
        uid: 0,
        gid: 0,
        size,
        atime_sec: 0,
        atime_nsec: 0,
        mtime_sec: 0,
        mtime_nsec: 0,
    }
}

#[test]
fn truncating_an_append_only_file_is_a_no_op() {
    // `echo x > ctl` sends SIZE|MTIME|CTIME with size 0 before writing.
    let mut rig = Rig::new();
    rig.walk(ROOT, 2, &["log", "queen.log"]);
    assert_eq!(rig.ok(setattr(2, 0x8 | 0x20 | 0x40, 0)), Body::Rsetattr);
    let r = rig.refused(setattr(2, 0x8, 5));
    assert_eq!((r.errno, r.detail), (errno::EPERM, "setattr-refused"));
    let r = rig.refused(setattr(2, 0x1, 0));
    assert_eq!(r.errno, errno::EPERM);
}

#[test]
fn setattr_of_a_regular_file_is_refused() {
    let mut rig = Rig::new();
    rig.walk(ROOT, 2, &["proc", "boot"]);
    assert_eq!(rig.refused(setattr(2, 0x8, 0)).errno, errno::EPERM);
}
