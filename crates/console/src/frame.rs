//! Console framing: a `u32` LE length that includes its own 4 bytes, then one line.
//!
//! [`FrameDecoder`] is fed bytes as they arrive and yields one line per
//! frame. It checks the announced length before it keeps any payload, so a
//! header announcing 2 GiB costs nothing: an oversized frame is reported as
//! [`FrameError::TooLong`] at once and its payload is then dropped as it
//! arrives, never buffered. The stream stays usable afterwards, which lets
//! the hive answer `ERR FRAME reason=invalid-length` and keep the session.
//!
//! Decisions (upstream is silent on them):
//!
//! - a length below 4 cannot be a frame, so the stream position is lost:
//!   [`FrameError::InvalidLength`] is fatal and repeats on every later call;
//! - a length of exactly 4 is a well-framed empty line: [`FrameError::EmptyLine`];
//! - a line holding `\n` or `\r` is refused ([`FrameError::LineBreak`]) so
//!   that one frame can never become two lines in an append-only file.
//!
//! The decoder does no I/O and has no timers; the caller bounds how long it
//! waits for a frame to complete.

use std::collections::VecDeque;

/// Bytes in the length prefix.
pub const HEADER_LEN: usize = 4;

/// Why a frame was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    /// The length is shorter than the header itself; the stream cannot be
    /// resynchronised and the connection should be closed.
    #[error("frame length {len} is shorter than its 4-byte header")]
    InvalidLength { len: u32 },

    /// A frame with no line in it.
    #[error("empty frame")]
    EmptyLine,

    /// The line is longer than the decoder's limit. Its payload is skipped.
    #[error("frame of {len} bytes exceeds the line limit")]
    TooLong { len: u32 },

    /// The line is not UTF-8. The frame was consumed.
    #[error("frame is not UTF-8")]
    BadUtf8,

    /// The line holds a `\n` or `\r`. The frame was consumed.
    #[error("frame holds a line break")]
    LineBreak,
}

impl FrameError {
    /// Whether the stream is lost and the connection must be closed.
    ///
    /// Every other error consumed exactly one frame; decoding goes on.
    pub fn is_fatal(&self) -> bool {
        matches!(self, FrameError::InvalidLength { .. })
    }
}

/// Incremental decoder for one direction of one console connection.
///
/// Feed received bytes with [`push`](FrameDecoder::push), then call
/// [`next_frame`](FrameDecoder::next_frame) until it returns `Ok(None)`.
///
/// # Limitations
///
/// The decoder keeps every byte pushed and not yet decoded, so memory is
/// bounded by the caller: drained after every read, it holds at most one
/// frame (`4 + max_line` bytes) plus one read's worth.
#[derive(Clone, Debug)]
pub struct FrameDecoder {
    max_line: usize,
    buf: VecDeque<u8>,
    /// Payload bytes of an oversized frame still to drop as they arrive.
    discard: u64,
    /// Set once the stream is lost; repeated on every later call.
    fatal: Option<FrameError>,
}

impl FrameDecoder {
    /// A decoder that accepts lines of at most `max_line` bytes.
    pub fn new(max_line: usize) -> FrameDecoder {
        FrameDecoder {
            max_line,
            buf: VecDeque::new(),
            discard: 0,
            fatal: None,
        }
    }

    /// The longest line this decoder accepts, in bytes.
    pub fn max_line(&self) -> usize {
        self.max_line
    }

    /// Bytes held and not yet decoded.
    pub fn buffered(&self) -> usize {
        self.buf.len()
    }

    /// Whether an oversized frame's payload is still being skipped.
    pub fn is_discarding(&self) -> bool {
        self.discard > 0
    }

    /// Adds received bytes. Payload of a skipped frame, and anything after a
    /// fatal error, is dropped here rather than kept.
    pub fn push(&mut self, bytes: &[u8]) {
        if self.fatal.is_some() {
            return;
        }
        let skip = clamp(self.discard, bytes.len());
        self.discard -= skip as u64;
        self.buf.extend(&bytes[skip..]);
    }

    /// The next complete line, `Ok(None)` when more bytes are needed.
    pub fn next_frame(&mut self) -> Result<Option<String>, FrameError> {
        if let Some(fatal) = &self.fatal {
            return Err(fatal.clone());
        }
        if self.discard > 0 || self.buf.len() < HEADER_LEN {
            return Ok(None);
        }
        let len = self.peek_len();
        let total = usize::try_from(len).unwrap_or(usize::MAX);

        if total < HEADER_LEN {
            let error = FrameError::InvalidLength { len };
            self.fatal = Some(error.clone());
            self.buf = VecDeque::new();
            return Err(error);
        }
        if total - HEADER_LEN > self.max_line {
            self.skip_oversized(len);
            return Err(FrameError::TooLong { len });
        }
        if self.buf.len() < total {
            return Ok(None);
        }

        self.buf.drain(..HEADER_LEN);
        let payload: Vec<u8> = self.buf.drain(..total - HEADER_LEN).collect();
        let line = String::from_utf8(payload).map_err(|_| FrameError::BadUtf8)?;
        if line.is_empty() {
            return Err(FrameError::EmptyLine);
        }
        if line.contains(['\n', '\r']) {
            return Err(FrameError::LineBreak);
        }
        Ok(Some(line))
    }

    fn peek_len(&self) -> u32 {
        let mut header = [0u8; HEADER_LEN];
        for (slot, byte) in header.iter_mut().zip(&self.buf) {
            *slot = *byte;
        }
        u32::from_le_bytes(header)
    }

    /// Drops the header and whatever of the payload is already here, and
    /// arranges for the rest to be dropped by `push`.
    fn skip_oversized(&mut self, len: u32) {
        self.buf.drain(..HEADER_LEN);
        let payload = u64::from(len) - HEADER_LEN as u64;
        let here = clamp(payload, self.buf.len());
        self.buf.drain(..here);
        self.discard = payload - here as u64;
    }
}

/// `min(wanted, available)` without truncating casts.
fn clamp(wanted: u64, available: usize) -> usize {
    usize::try_from(wanted).map_or(available, |wanted| wanted.min(available))
}

/// Appends `line` as one frame to `out`.
///
/// The hive frames only lines it built itself; it does not check them for
/// line breaks, which the caller must not put there.
///
/// # Panics
///
/// If `line` is longer than `u32::MAX - 4` bytes, which no console line
/// bounded by the manifest (at most 1 MiB) can be.
pub fn encode_frame(line: &str, out: &mut Vec<u8>) {
    let len = u32::try_from(line.len() + HEADER_LEN)
        .expect("console lines are bounded far below 4 GiB by the manifest");
    out.reserve(line.len() + HEADER_LEN);
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(line.as_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;

    fn framed(line: &str) -> Vec<u8> {
        let mut out = Vec::new();
        encode_frame(line, &mut out);
        out
    }

    fn header(len: u32) -> [u8; 4] {
        len.to_le_bytes()
    }

    #[test]
    fn encodes_length_including_header() {
        assert_eq!(framed("PING"), b"\x08\x00\x00\x00PING");
        assert_eq!(framed(""), b"\x04\x00\x00\x00");
    }

    #[test]
    fn decodes_byte_by_byte() {
        let mut decoder = FrameDecoder::new(256);
        let bytes = [framed("AUTH changeme"), framed("ATTACH queen")].concat();
        let mut lines = Vec::new();
        for byte in bytes {
            decoder.push(&[byte]);
            while let Some(line) = decoder.next_frame().unwrap() {
                lines.push(line);
            }
        }
        assert_eq!(lines, ["AUTH changeme", "ATTACH queen"]);
        assert_eq!(decoder.buffered(), 0);
    }

    #[test]
    fn line_of_exactly_max_is_accepted_one_more_is_too_long() {
        let mut decoder = FrameDecoder::new(4);
        decoder.push(&framed("abcd"));
        assert_eq!(decoder.next_frame(), Ok(Some("abcd".into())));
        decoder.push(&framed("abcde"));
        assert_eq!(decoder.next_frame(), Err(FrameError::TooLong { len: 9 }));
        assert_eq!(decoder.next_frame(), Ok(None));
    }

    #[test]
    fn huge_length_is_skipped_without_buffering() {
        let mut decoder = FrameDecoder::new(256);
        let len = 1u32 << 31;
        decoder.push(&header(len));
        decoder.push(&[b'x'; 100]);
        assert_eq!(decoder.next_frame(), Err(FrameError::TooLong { len }));
        assert_eq!(decoder.buffered(), 0);
        assert!(decoder.is_discarding());

        let mut left = u64::from(len) - 4 - 100;
        let chunk = vec![b'y'; 1 << 20];
        while left > 0 {
            let n = left.min(chunk.len() as u64) as usize;
            decoder.push(&chunk[..n]);
            left -= n as u64;
            assert_eq!(decoder.buffered(), 0);
            assert_eq!(decoder.next_frame(), Ok(None));
        }
        decoder.push(&framed("PING"));
        assert_eq!(decoder.next_frame(), Ok(Some("PING".into())));
    }

    #[test]
    fn oversized_payload_already_buffered_is_dropped_too() {
        let mut decoder = FrameDecoder::new(4);
        let bytes = [framed("too long for four"), framed("LOG")].concat();
        decoder.push(&bytes);
        assert_eq!(decoder.next_frame(), Err(FrameError::TooLong { len: 21 }));
        assert_eq!(decoder.next_frame(), Ok(Some("LOG".into())));
    }

    #[test]
    fn lengths_below_the_header_are_fatal_and_stay_fatal() {
        for len in 0..4 {
            let mut decoder = FrameDecoder::new(256);
            decoder.push(&header(len));
            decoder.push(&framed("PING"));
            let error = FrameError::InvalidLength { len };
            assert_eq!(decoder.next_frame(), Err(error.clone()));
            assert!(error.is_fatal());
            decoder.push(&framed("PING"));
            assert_eq!(decoder.next_frame(), Err(error));
            assert_eq!(decoder.buffered(), 0);
        }
    }

    #[test]
    fn empty_bad_utf8_and_line_breaks_consume_one_frame() {
        let mut decoder = FrameDecoder::new(256);
        let mut bytes = framed("");
        bytes.extend_from_slice(&header(6));
        bytes.extend_from_slice(&[0xff, 0xfe]);
        bytes.extend(framed("LS /\nCAT /x"));
        bytes.extend(framed("PING\r"));
        bytes.extend(framed("QUIT"));
        decoder.push(&bytes);
        for error in [
            FrameError::EmptyLine,
            FrameError::BadUtf8,
            FrameError::LineBreak,
        ] {
            assert_eq!(decoder.next_frame(), Err(error.clone()));
            assert!(!error.is_fatal());
        }
        assert_eq!(decoder.next_frame(), Err(FrameError::LineBreak));
        assert_eq!(decoder.next_frame(), Ok(Some("QUIT".into())));
        assert_eq!(decoder.next_frame(), Ok(None));
    }

    #[test]
    fn partial_header_and_partial_payload_wait_for_more() {
        let mut decoder = FrameDecoder::new(256);
        let bytes = framed("CAT /proc/boot");
        decoder.push(&bytes[..2]);
        assert_eq!(decoder.next_frame(), Ok(None));
        decoder.push(&bytes[2..10]);
        assert_eq!(decoder.next_frame(), Ok(None));
        decoder.push(&bytes[10..]);
        assert_eq!(decoder.next_frame(), Ok(Some("CAT /proc/boot".into())));
    }
}
