//! Property tests: the frame decoder never panics and round-trips lines; parse never panics.

use cohesix_console::{encode_frame, parse, Command, FrameDecoder, FrameError};
use proptest::prelude::*;

const MAX_LINE: usize = 64;

/// Feeds `bytes` in chunks cut at `cuts`, draining after each push.
fn decode(bytes: &[u8], cuts: &[usize], max_line: usize) -> Vec<Result<String, FrameError>> {
    let mut decoder = FrameDecoder::new(max_line);
    let mut points: Vec<usize> = cuts.iter().map(|c| c % (bytes.len() + 1)).collect();
    points.push(bytes.len());
    points.sort_unstable();

    let mut out = Vec::new();
    let mut start = 0;
    for end in points {
        decoder.push(&bytes[start..end]);
        start = end;
        loop {
            match decoder.next_frame() {
                Ok(Some(line)) => out.push(Ok(line)),
                Ok(None) => break,
                Err(error) => {
                    let fatal = error.is_fatal();
                    out.push(Err(error));
                    if fatal {
                        return out;
                    }
                }
            }
            assert!(decoder.buffered() <= bytes.len());
        }
    }
    out
}

fn line(max: usize) -> impl Strategy<Value = String> {
    prop::collection::vec(
        any::<char>().prop_filter("no line breaks", |c| *c != '\n' && *c != '\r'),
        1..max,
    )
    .prop_map(|chars| chars.into_iter().collect::<String>())
    .prop_filter("fits", move |l| l.len() <= max)
}

proptest! {
    #[test]
    fn arbitrary_bytes_in_arbitrary_chunks_never_panic(
        bytes in prop::collection::vec(any::<u8>(), 0..512),
        cuts in prop::collection::vec(any::<usize>(), 0..16),
        max_line in 0usize..128,
    ) {
        let results = decode(&bytes, &cuts, max_line);
        for line in results.into_iter().flatten() {
            prop_assert!(!line.is_empty() && line.len() <= max_line);
        }
    }

    #[test]
    fn encoded_lines_decode_unchanged(
        lines in prop::collection::vec(line(MAX_LINE), 0..8),
        cuts in prop::collection::vec(any::<usize>(), 0..16),
    ) {
        let mut bytes = Vec::new();
        for line in &lines {
            encode_frame(line, &mut bytes);
        }
        let decoded: Vec<String> =
            decode(&bytes, &cuts, MAX_LINE).into_iter().collect::<Result<_, _>>().unwrap();
        prop_assert_eq!(decoded, lines);
    }

    #[test]
    fn oversized_frames_are_skipped_and_the_stream_goes_on(
        before in line(MAX_LINE),
        big in prop::collection::vec(any::<u8>(), MAX_LINE + 1..4 * MAX_LINE),
        after in line(MAX_LINE),
        cuts in prop::collection::vec(any::<usize>(), 0..16),
    ) {
        let mut bytes = Vec::new();
        encode_frame(&before, &mut bytes);
        let len = u32::try_from(big.len() + 4).unwrap();
        bytes.extend_from_slice(&len.to_le_bytes());
        bytes.extend_from_slice(&big);
        encode_frame(&after, &mut bytes);
        let results = decode(&bytes, &cuts, MAX_LINE);
        prop_assert_eq!(results, vec![Ok(before), Err(FrameError::TooLong { len }), Ok(after)]);
    }

    #[test]
    fn parse_never_panics(line in "\\PC{0,200}") {
        let _ = parse(&line);
    }

    #[test]
    fn echo_keeps_any_text(path in "/[a-z/]{0,20}", text in "[^\n\r]{1,80}") {
        let line = format!("ECHO {path} {text}");
        prop_assert_eq!(parse(&line), Ok(Command::Echo { path, text }));
    }
}
