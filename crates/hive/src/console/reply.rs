//! What the console sends back: framed reply lines in a bounded buffer, and
//! the mapping from a hive refusal ([`NsError`]) to an `ERR` ack.
//!
//! The mapping table itself is documented on the parent module.

use cohesix_console::{ack, encode_frame, Reason};
use cohesix_ninep::{ErrorClass, NsError};

/// The refusal class an error class is answered and counted under.
pub fn reason_of(class: ErrorClass) -> Reason {
    match class {
        ErrorClass::Busy => Reason::Busy,
        ErrorClass::Quota | ErrorClass::TooBig | ErrorClass::RateLimited => Reason::Quota,
        ErrorClass::Closed => Reason::Cut,
        ErrorClass::Permission
        | ErrorClass::NotFound
        | ErrorClass::Invalid
        | ErrorClass::Unsupported => Reason::Policy,
    }
}

/// `ERR <VERB> reason=<r> detail=<tag> [path=<p>] error=<tag in words>`.
///
/// The detail is the hive's tag as is; the error text is the same tag with
/// its dashes read as spaces (`invalid-path` → `invalid path`), which is
/// what upstream prints for every refusal observed.
pub fn refusal(verb: &str, error: &NsError, path: Option<&str>) -> String {
    let words = error.detail.replace('-', " ");
    ack::err(
        verb,
        reason_of(error.class),
        Some(error.detail),
        path,
        Some(&words),
    )
}

/// Framed lines waiting to be written to one connection.
#[derive(Debug)]
pub struct Replies {
    frames: Vec<u8>,
    max_line: usize,
    /// Lines cut to `max_line` since the connection opened.
    pub truncated: u64,
}

impl Replies {
    pub fn new(max_line: usize) -> Replies {
        Replies {
            frames: Vec::new(),
            max_line,
            truncated: 0,
        }
    }

    /// Frames one line, cut to the console's line bound at a char boundary.
    pub fn line(&mut self, line: &str) {
        let mut end = line.len().min(self.max_line);
        while !line.is_char_boundary(end) {
            end -= 1;
        }
        if end < line.len() {
            self.truncated += 1;
        }
        encode_frame(&line[..end], &mut self.frames);
    }

    /// One frame per line of `content`, then `END`.
    pub fn content(&mut self, content: &str) {
        for line in content.lines() {
            self.line(line);
        }
        self.line(ack::END);
    }

    pub fn len(&self) -> usize {
        self.frames.len()
    }

    pub fn is_empty(&self) -> bool {
        self.frames.is_empty()
    }

    pub fn bytes(&self) -> &[u8] {
        &self.frames
    }

    /// Forgets what was written, giving back memory a burst left behind.
    pub fn clear(&mut self, keep_capacity: usize) {
        self.frames.clear();
        if self.frames.capacity() > keep_capacity.saturating_mul(2) {
            self.frames.shrink_to(keep_capacity);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn observed_refusals_are_byte_exact() {
        let cases = [
            (
                refusal("CAT", &NsError::not_found("invalid-path"), Some("/nope")),
                "ERR CAT reason=policy detail=invalid-path path=/nope error=invalid path",
            ),
            (
                refusal(
                    "ECHO",
                    &NsError::permission("invalid-path"),
                    Some("/proc/boot"),
                ),
                "ERR ECHO reason=policy detail=invalid-path path=/proc/boot error=invalid path",
            ),
            (
                refusal(
                    "ECHO",
                    &NsError::invalid("invalid-payload"),
                    Some("/queen/ctl"),
                ),
                "ERR ECHO reason=policy detail=invalid-payload path=/queen/ctl \
                 error=invalid payload",
            ),
            (
                refusal("ECHO", &NsError::quota("buffer-full"), Some("/queen/ctl")),
                "ERR ECHO reason=quota detail=buffer-full path=/queen/ctl error=buffer full",
            ),
            (
                refusal("TAIL", &NsError::closed("revoked"), None),
                "ERR TAIL reason=cut detail=revoked error=revoked",
            ),
            (
                refusal("SPAWN", &NsError::busy("lifecycle"), None),
                "ERR SPAWN reason=busy detail=lifecycle error=lifecycle",
            ),
        ];
        for (made, expected) in cases {
            assert_eq!(made, expected);
        }
    }

    #[test]
    fn long_lines_are_cut_at_a_char_boundary() {
        let mut r = Replies::new(5);
        r.line("abcdéf");
        assert_eq!(r.bytes(), b"\x08\x00\x00\x00abcd");
        assert_eq!(r.truncated, 1);
    }

    #[test]
    fn content_ends_with_end() {
        let mut r = Replies::new(64);
        r.content("a\nb\n");
        let mut expected = Vec::new();
        for l in ["a", "b", "END"] {
            encode_frame(l, &mut expected);
        }
        assert_eq!(r.bytes(), expected.as_slice());
    }
}
