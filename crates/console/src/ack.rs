//! The hive's answers on the console, byte for byte as upstream writes them.
//!
//! Every command is answered by one ack line: `OK <VERB>[ <detail>]` or
//! `ERR <VERB> reason=<busy|quota|cut|policy>[ detail=<tag>][ path=<p>][
//! error=<text>]`. Commands that return content follow the ack with one
//! frame per content line and a final [`END`]. The helpers here only format;
//! they do not escape, so the hive passes values it has already validated
//! (paths and tags hold no spaces; `error=` comes last because its text may).

use std::fmt;

use crate::command::cut;

/// Ends a stream of content lines (`LS`, `CAT`, `TAIL`, `LOG`).
pub const END: &str = "END";

/// Follows `OK PING reply=pong`.
pub const PONG: &str = "PONG";

/// The answer to a line whose verb is unknown.
pub const PARSE_UNSUPPORTED: &str = "ERR PARSE reason=policy detail=unsupported console command";

/// The answer to an oversized or malformed frame after `AUTH`; the session stays open.
pub const FRAME_INVALID_LENGTH: &str = "ERR FRAME reason=invalid-length";

/// The most bytes of content summarised in a `CAT` ack's `data=` field.
///
/// Upstream caps whole lines at 256 bytes; 128 leaves room for the rest of
/// the ack and a path of typical length. The content lines follow the ack in
/// full, so nothing is lost by the cut.
pub const CAT_DATA_MAX_BYTES: usize = 128;

/// The refusal class of an `ERR` ack; `/proc/pressure` counts each.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Reason {
    /// A bound on work in progress was hit; retrying later may succeed.
    Busy,
    /// A budget, quota or rate limit was used up.
    Quota,
    /// The peer or path is cut off (revoked, drained, unreachable).
    Cut,
    /// The request is not allowed or not valid; retrying will not help.
    Policy,
}

impl Reason {
    /// The wire word: `busy`, `quota`, `cut` or `policy`.
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::Busy => "busy",
            Reason::Quota => "quota",
            Reason::Cut => "cut",
            Reason::Policy => "policy",
        }
    }
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// `OK <VERB>` or `OK <VERB> <detail>`, e.g. `OK LS path=/proc/lifecycle entries=3`.
pub fn ok(verb: &str, detail: Option<&str>) -> String {
    match detail {
        Some(detail) if !detail.is_empty() => format!("OK {verb} {detail}"),
        _ => format!("OK {verb}"),
    }
}

/// `ERR <VERB> reason=<reason>` followed by whichever of `detail=`, `path=`
/// and `error=` are given, in that order.
pub fn err(
    verb: &str,
    reason: Reason,
    detail: Option<&str>,
    path: Option<&str>,
    error: Option<&str>,
) -> String {
    let mut line = format!("ERR {verb} reason={reason}");
    for (key, value) in [("detail", detail), ("path", path), ("error", error)] {
        if let Some(value) = value {
            line.push(' ');
            line.push_str(key);
            line.push('=');
            line.push_str(value);
        }
    }
    line
}

/// The refusal of an upstream diagnostics verb: `ERR <VERB> reason=policy detail=unsupported`.
pub fn unsupported(verb: &str) -> String {
    err(verb, Reason::Policy, Some("unsupported"), None, None)
}

/// A rate-limit refusal that says when to retry, e.g.
/// `ERR ATTACH reason=quota detail=rate-limited delay_ms=90000`.
pub fn rate_limited(verb: &str, delay_ms: u64) -> String {
    let line = err(verb, Reason::Quota, Some("rate-limited"), None, None);
    format!("{line} delay_ms={delay_ms}")
}

/// The `data=` summary of a `CAT`: the content's lines joined with `|`, cut
/// to at most [`CAT_DATA_MAX_BYTES`] bytes at a character boundary.
pub fn cat_data(content: &str) -> String {
    let mut data = String::with_capacity(CAT_DATA_MAX_BYTES.min(content.len()));
    for (index, line) in content.lines().enumerate() {
        if index > 0 {
            data.push('|');
        }
        data.push_str(line);
        if data.len() >= CAT_DATA_MAX_BYTES {
            break;
        }
    }
    cut(&data, CAT_DATA_MAX_BYTES).to_string()
}

/// The `CAT` ack: `OK CAT path=<path> data=<summary>`.
pub fn cat_ok(path: &str, content: &str) -> String {
    format!("OK CAT path={path} data={}", cat_data(content))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The hive's frames of the observed upstream transcript, in order.
    const TRANSCRIPT_ACKS: &str = "\
OK AUTH
OK ATTACH role=queen
OK PING reply=pong
PONG
OK LS path=/proc/lifecycle entries=3
END
OK CAT path=/proc/lifecycle/state data=state=ONLINE
OK CAT path=/proc/root/reachable data=reachable=yes
OK LS path=/proc/pressure entries=4
OK ECHO path=/queen/ctl bytes=31
ERR ECHO reason=policy detail=invalid-payload path=/queen/ctl error=invalid payload
ERR CAT reason=policy detail=invalid-path path=/nope error=invalid path
ERR ECHO reason=policy detail=invalid-path path=/proc/boot error=invalid path
ERR PARSE reason=policy detail=unsupported console command
OK ECHO path=/queen/lifecycle/ctl bytes=6
OK CAT path=/proc/lifecycle/state data=state=DRAINING
OK ECHO path=/queen/ctl bytes=19";

    #[test]
    fn transcript_acks_are_byte_exact() {
        let refuse = |verb, detail, path, error| {
            err(verb, Reason::Policy, Some(detail), Some(path), Some(error))
        };
        let made = [
            ok("AUTH", None),
            ok("ATTACH", Some("role=queen")),
            ok("PING", Some("reply=pong")),
            PONG.to_string(),
            ok("LS", Some("path=/proc/lifecycle entries=3")),
            END.to_string(),
            cat_ok("/proc/lifecycle/state", "state=ONLINE\n"),
            cat_ok("/proc/root/reachable", "reachable=yes\n"),
            ok("LS", Some("path=/proc/pressure entries=4")),
            ok("ECHO", Some("path=/queen/ctl bytes=31")),
            refuse("ECHO", "invalid-payload", "/queen/ctl", "invalid payload"),
            refuse("CAT", "invalid-path", "/nope", "invalid path"),
            refuse("ECHO", "invalid-path", "/proc/boot", "invalid path"),
            PARSE_UNSUPPORTED.to_string(),
            ok("ECHO", Some("path=/queen/lifecycle/ctl bytes=6")),
            cat_ok("/proc/lifecycle/state", "state=DRAINING\n"),
            ok("ECHO", Some("path=/queen/ctl bytes=19")),
        ];
        let expected: Vec<&str> = TRANSCRIPT_ACKS.lines().collect();
        assert_eq!(made.len(), expected.len());
        for (made, expected) in made.iter().zip(expected) {
            assert_eq!(made, expected);
        }
    }

    #[test]
    fn surface_acks_outside_the_transcript() {
        assert_eq!(
            err(
                "ECHO",
                Reason::Quota,
                Some("buffer-full"),
                Some("/queen/ctl"),
                Some("buffer full")
            ),
            "ERR ECHO reason=quota detail=buffer-full path=/queen/ctl error=buffer full"
        );
        assert_eq!(
            rate_limited("ATTACH", 90_000),
            "ERR ATTACH reason=quota detail=rate-limited delay_ms=90000"
        );
        assert_eq!(FRAME_INVALID_LENGTH, "ERR FRAME reason=invalid-length");
        assert_eq!(
            unsupported("NETSTATS"),
            "ERR NETSTATS reason=policy detail=unsupported"
        );
        assert_eq!(
            ok("TAIL", Some("path=/worker/worker-1/telemetry")),
            "OK TAIL path=/worker/worker-1/telemetry"
        );
    }

    #[test]
    fn absent_fields_are_left_out() {
        assert_eq!(
            err("AUTH", Reason::Policy, None, None, None),
            "ERR AUTH reason=policy"
        );
        assert_eq!(
            err("KILL", Reason::Cut, None, Some("/x"), None),
            "ERR KILL reason=cut path=/x"
        );
        assert_eq!(ok("QUIT", Some("")), "OK QUIT");
    }

    #[test]
    fn reasons_have_their_wire_words() {
        let words: Vec<&str> = [Reason::Busy, Reason::Quota, Reason::Cut, Reason::Policy]
            .into_iter()
            .map(Reason::as_str)
            .collect();
        assert_eq!(words, ["busy", "quota", "cut", "policy"]);
    }

    #[test]
    fn cat_data_joins_lines_with_bars() {
        assert_eq!(cat_data("a\nb\r\nc\n"), "a|b|c");
        assert_eq!(cat_data("a\n\nb"), "a||b");
        assert_eq!(cat_data(""), "");
    }

    #[test]
    fn cat_data_is_cut_at_a_char_boundary() {
        let long = "é".repeat(100); // 200 bytes
        let data = cat_data(&long);
        assert_eq!(data.len(), 128);
        assert!(long.starts_with(&data));

        let odd = format!("x{}", "é".repeat(100));
        assert_eq!(cat_data(&odd).len(), 127);

        let many = "line\n".repeat(1000);
        assert_eq!(cat_data(&many).len(), 128);
    }
}
