//! Input checks made before a request costs the hive anything.
//!
//! Paths follow the namespace's rules (SURFACES §2): absolute, UTF-8, no
//! NUL, no empty, `.` or `..` component, components of at most 255 bytes,
//! at most 8 of them, and at most [`MAX_PATH_BYTES`] in all. `max_bytes` is
//! required and at least 1; values above the gateway's read bound are
//! clamped. An echo line is one record: non-empty, no line break, at most
//! [`MAX_ECHO_LINE_BYTES`].

use crate::config::{MAX_COMPONENT_BYTES, MAX_PATH_BYTES, MAX_PATH_DEPTH, MAX_TAIL_LINES};

/// Longest echo line. Telemetry records are bounded by 4096 bytes on the
/// hive, and a line this long fits one 9P write at the smallest msize the
/// hive accepts less its overhead only just; the hive refuses what it must.
pub const MAX_ECHO_LINE_BYTES: usize = 4096;

/// An input the gateway refuses with 400.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{why}")]
pub struct Invalid {
    /// The console-style detail tag (`invalid-path`, `invalid-max-bytes`, ...).
    pub detail: &'static str,
    pub why: String,
}

fn invalid(detail: &'static str, why: impl Into<String>) -> Invalid {
    Invalid {
        detail,
        why: why.into(),
    }
}

/// Checks a namespace path; `/` itself is valid.
pub fn path(path: &str) -> Result<(), Invalid> {
    let bad = |why: &str| invalid("invalid-path", why);
    if path.is_empty() {
        return Err(bad("path is missing"));
    }
    if path.len() > MAX_PATH_BYTES {
        return Err(bad(&format!("path longer than {MAX_PATH_BYTES} bytes")));
    }
    if path.contains('\0') {
        return Err(bad("path contains NUL"));
    }
    let Some(rest) = path.strip_prefix('/') else {
        return Err(bad("path is not absolute"));
    };
    if rest.is_empty() {
        return Ok(());
    }
    let mut depth = 0;
    for component in rest.split('/') {
        depth += 1;
        if depth > MAX_PATH_DEPTH {
            return Err(bad(&format!("more than {MAX_PATH_DEPTH} components")));
        }
        match component {
            "" => return Err(bad("empty component")),
            "." | ".." => return Err(bad("`.` and `..` are not allowed")),
            c if c.len() > MAX_COMPONENT_BYTES => {
                return Err(bad(&format!(
                    "component longer than {MAX_COMPONENT_BYTES} bytes"
                )))
            }
            _ => {}
        }
    }
    Ok(())
}

/// Parses `max_bytes`: required, an integer of at least 1, clamped to
/// `ceiling`.
pub fn max_bytes(raw: Option<&str>, ceiling: usize) -> Result<usize, Invalid> {
    let bad = |why: &str| invalid("invalid-max-bytes", why);
    let Some(raw) = raw else {
        return Err(bad("max_bytes is required"));
    };
    let raw = raw.trim();
    if raw.is_empty() || !raw.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad("max_bytes must be a positive integer"));
    }
    // Digits only: a parse failure can only be overflow, which clamps.
    let n = raw.parse::<u64>().unwrap_or(u64::MAX);
    if n == 0 {
        return Err(bad("max_bytes must be at least 1"));
    }
    Ok(usize::try_from(n).unwrap_or(usize::MAX).min(ceiling))
}

/// Parses `lines` for tail: absent, or 1..=256.
pub fn tail_lines(raw: Option<&str>) -> Result<Option<usize>, Invalid> {
    let Some(raw) = raw else {
        return Ok(None);
    };
    match raw.trim().parse::<usize>() {
        Ok(n) if (1..=MAX_TAIL_LINES).contains(&n) => Ok(Some(n)),
        _ => Err(invalid(
            "invalid-lines",
            format!("lines must be an integer in 1..={MAX_TAIL_LINES}"),
        )),
    }
}

/// Checks an echo line: one non-empty record without line breaks.
pub fn echo_line(line: &str) -> Result<(), Invalid> {
    if line.is_empty() {
        return Err(invalid("invalid-line", "line is empty"));
    }
    if line.contains(['\n', '\r']) {
        return Err(invalid("multi-line", "line must be a single line"));
    }
    if line.len() > MAX_ECHO_LINE_BYTES {
        return Err(invalid(
            "line-too-long",
            format!("line longer than {MAX_ECHO_LINE_BYTES} bytes"),
        ));
    }
    if line.contains('\0') {
        return Err(invalid("invalid-line", "line contains NUL"));
    }
    Ok(())
}

/// Refuses `bind` and `mount` lines for `/queen/ctl`. Binds and mounts
/// belong to the one hive session that writes them, and every gateway
/// request runs on whichever pooled session is free: a bind would change
/// the namespace of one pooled session for every later client (1 request
/// in `--connections`), and could hide `/queen/ctl` from it for good.
pub fn no_session_state(path: &str, line: &str) -> Result<(), Invalid> {
    if path != "/queen/ctl" {
        return Ok(());
    }
    let Ok(serde_json::Value::Object(map)) = serde_json::from_str::<serde_json::Value>(line) else {
        return Ok(()); // not a ctl object: the hive refuses it
    };
    if map.contains_key("bind") || map.contains_key("mount") {
        return Err(invalid(
            "session-state",
            "bind and mount are per session; the gateway's sessions are shared",
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bind_and_mount_cannot_change_a_pooled_session() {
        for line in [
            r#"{"bind":{"from":"/shard","to":"/proc"}}"#,
            r#"{"mount":{"service":"logs","at":"/x"}}"#,
            r#"{"b\u0069nd":{"from":"/shard","to":"/proc"}}"#,
        ] {
            let e = no_session_state("/queen/ctl", line).unwrap_err();
            assert_eq!(e.detail, "session-state", "{line}");
        }
        assert_eq!(
            no_session_state("/queen/ctl", r#"{"spawn":"heartbeat","ticks":3}"#),
            Ok(())
        );
        assert_eq!(
            no_session_state("/worker/worker-1/telemetry", r#"{"bind":1}"#),
            Ok(())
        );
    }

    #[test]
    fn good_paths_pass() {
        for p in [
            "/",
            "/proc",
            "/proc/boot",
            "/a/b/c/d/e/f/g/h",
            "/with space",
        ] {
            assert_eq!(path(p), Ok(()), "{p}");
        }
        assert_eq!(path(&format!("/{}", "x".repeat(255))), Ok(()));
    }

    #[test]
    fn bad_paths_are_refused_with_invalid_path() {
        let deep = "/a".repeat(9);
        let long_component = format!("/{}", "x".repeat(256));
        let huge = format!("/{}", "ab/".repeat(1400));
        for p in [
            "",
            "proc",
            "/proc/",
            "//",
            "/proc//boot",
            "/proc/../x",
            "/./x",
            "/..",
            "/a\0b",
            &deep,
            &long_component,
            &huge,
        ] {
            let e = path(p).expect_err(p);
            assert_eq!(e.detail, "invalid-path", "{p}");
        }
    }

    #[test]
    fn max_bytes_is_required_positive_and_clamped() {
        assert!(max_bytes(None, 100).is_err());
        assert!(max_bytes(Some("0"), 100).is_err());
        assert!(max_bytes(Some("-1"), 100).is_err());
        assert!(max_bytes(Some("1e3"), 100).is_err());
        assert!(max_bytes(Some(""), 100).is_err());
        assert_eq!(max_bytes(Some("7"), 100), Ok(7));
        assert_eq!(max_bytes(Some("1000"), 100), Ok(100));
        assert_eq!(max_bytes(Some(&"9".repeat(40)), 100), Ok(100));
    }

    #[test]
    fn tail_lines_range() {
        assert_eq!(tail_lines(None), Ok(None));
        assert_eq!(tail_lines(Some("1")), Ok(Some(1)));
        assert_eq!(tail_lines(Some("256")), Ok(Some(256)));
        assert!(tail_lines(Some("0")).is_err());
        assert!(tail_lines(Some("257")).is_err());
        assert!(tail_lines(Some("x")).is_err());
    }

    #[test]
    fn echo_lines_are_single_bounded_records() {
        assert_eq!(echo_line("{\"spawn\":\"heartbeat\",\"ticks\":3}"), Ok(()));
        assert_eq!(echo_line("a\nb").unwrap_err().detail, "multi-line");
        assert_eq!(echo_line("a\r").unwrap_err().detail, "multi-line");
        assert_eq!(echo_line("").unwrap_err().detail, "invalid-line");
        let long = "x".repeat(MAX_ECHO_LINE_BYTES + 1);
        assert_eq!(echo_line(&long).unwrap_err().detail, "line-too-long");
        assert_eq!(echo_line(&"x".repeat(MAX_ECHO_LINE_BYTES)), Ok(()));
    }
}
