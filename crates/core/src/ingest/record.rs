//! The text formats of telemetry ingest: device `ctl` commands, the two
//! record schemas of SURFACES §7, segment and artifact names, and the
//! base64url form of a sha256.
//!
//! Everything here is a pure function over bytes. It does not know about
//! devices, quotas or storage; [`super::Ingest`] applies what it parses.

use cohesix_ninep::NsError;
use serde::Deserialize;

/// Schema of a pushed telemetry record.
pub const PUSH_SCHEMA: &str = "cohsh-telemetry-push/v1";
/// Schema of a reference to artifact bytes stored in the hive.
pub const REF_SCHEMA: &str = "coh-ref-c/v1";
/// Longest `mime` accepted in a ctl command or a pushed record.
pub const MAX_MIME_BYTES: usize = 127;
/// Length of a sha256 in unpadded base64url.
pub const SHA256_B64_LEN: usize = 43;

/// `{"new":"segment","mime":"text/plain"}`: the only device ctl command.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct NewSegment {
    new: String,
    mime: String,
}

/// Parses one write to a device's `ctl`: one strict JSON object, at most
/// one trailing newline. Returns the new segment's mime type.
pub fn parse_ctl(data: &[u8]) -> Result<String, NsError> {
    let line = data.strip_suffix(b"\n").unwrap_or(data);
    let cmd: NewSegment =
        serde_json::from_slice(line).map_err(|_| NsError::invalid("invalid-payload"))?;
    if cmd.new != "segment" || !valid_mime(&cmd.mime) {
        return Err(NsError::invalid("invalid-payload"));
    }
    Ok(cmd.mime)
}

/// A mime type: 1..=127 printable ASCII bytes with a `/`, no surrounding
/// space, no quote or backslash (it is echoed into JSON headers).
pub fn valid_mime(mime: &str) -> bool {
    let printable = |b: u8| (0x20..0x7f).contains(&b) && b != b'"' && b != b'\\';
    (1..=MAX_MIME_BYTES).contains(&mime.len())
        && mime.contains('/')
        && mime.trim() == mime
        && mime.bytes().all(printable)
}

#[derive(Deserialize)]
struct SchemaOnly {
    schema: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)] // fields are checked by deserialising, then dropped
struct PushV1 {
    schema: String,
    seq: u64,
    mime: String,
    payload: serde_json::Value,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RefV1 {
    #[allow(dead_code)]
    schema: String,
    seq: u64,
    off: u64,
    len: u64,
    sha256: String,
}

/// A chunk of artifact bytes named by a `coh-ref-c/v1` record.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ChunkRef {
    /// Offset of the chunk in its artifact.
    pub off: u64,
    pub len: u64,
    pub sha256: [u8; 32],
}

/// A record that passed its schema.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Record {
    Push { seq: u64 },
    Ref { seq: u64, chunk: ChunkRef },
}

impl Record {
    pub fn seq(&self) -> u64 {
        match self {
            Record::Push { seq } | Record::Ref { seq, .. } => *seq,
        }
    }
}

/// Validates one record against the schema it names. Unknown schemas,
/// unknown or duplicate fields and wrong types are `Invalid`.
pub fn parse_record(record: &[u8]) -> Result<Record, NsError> {
    let invalid = NsError::invalid("invalid-record");
    let head: SchemaOnly = serde_json::from_slice(record).map_err(|_| invalid.clone())?;
    match head.schema.as_str() {
        PUSH_SCHEMA => {
            let r: PushV1 = serde_json::from_slice(record).map_err(|_| invalid.clone())?;
            if !valid_mime(&r.mime) {
                return Err(invalid);
            }
            Ok(Record::Push { seq: r.seq })
        }
        REF_SCHEMA => {
            let r: RefV1 = serde_json::from_slice(record).map_err(|_| invalid.clone())?;
            let sha256 = decode_sha256(&r.sha256).ok_or(invalid.clone())?;
            if r.len == 0 || r.off.checked_add(r.len).is_none() {
                return Err(invalid);
            }
            let chunk = ChunkRef {
                off: r.off,
                len: r.len,
                sha256,
            };
            Ok(Record::Ref { seq: r.seq, chunk })
        }
        _ => Err(NsError::invalid("unknown-schema")),
    }
}

/// The `coh-ref-c/v1` record the hive writes for one stored chunk.
pub fn ref_record(seq: u64, chunk: &ChunkRef) -> String {
    format!(
        "{{\"schema\":\"{REF_SCHEMA}\",\"seq\":{seq},\"off\":{},\"len\":{},\"sha256\":\"{}\"}}",
        chunk.off,
        chunk.len,
        encode_sha256(&chunk.sha256)
    )
}

/// Length of [`ref_record`] without the digits of its `seq`.
pub fn ref_record_len_without_seq(chunk: &ChunkRef) -> u64 {
    ref_record(0, chunk).len() as u64 - 1
}

/// Decimal digits of `seq` summed over `first..first + n`.
pub fn seq_digits(first: u64, n: u64) -> u64 {
    let mut total = 0u64;
    let mut at = first;
    let end = first.saturating_add(n);
    while at < end {
        let digits = decimal_digits(at);
        let next_width = 10u64.checked_pow(digits).unwrap_or(u64::MAX);
        let stop = end.min(next_width);
        total += (stop - at) * u64::from(digits);
        at = stop;
    }
    total
}

fn decimal_digits(n: u64) -> u32 {
    n.checked_ilog10().map_or(1, |d| d + 1)
}

/// `seg-000001`: at least six digits, counting from 1.
pub fn segment_name(n: u64) -> String {
    format!("seg-{n:06}")
}

/// Parses a segment name in exactly the form [`segment_name`] writes.
pub fn parse_segment_name(name: &str) -> Option<u64> {
    let digits = name.strip_prefix("seg-")?;
    if digits.len() < 6 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let n: u64 = digits.parse().ok()?;
    (n >= 1 && segment_name(n) == name).then_some(n)
}

/// An artifact id: `<segment>.<seq of its first reference record>`.
pub fn artifact_name(seg: u64, first_seq: u64) -> String {
    format!("{}.{first_seq}", segment_name(seg))
}

pub fn parse_artifact_name(name: &str) -> Option<(u64, u64)> {
    let (seg, seq) = name.split_once('.')?;
    let seg = parse_segment_name(seg)?;
    if seq.is_empty() || seq.starts_with('0') || !seq.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some((seg, seq.parse().ok()?))
}

const B64URL: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/// Unpadded base64url of 32 bytes (43 characters).
pub fn encode_sha256(bytes: &[u8; 32]) -> String {
    let mut out = String::with_capacity(SHA256_B64_LEN);
    for group in bytes.chunks(3) {
        let mut n = 0u32;
        for (i, b) in group.iter().enumerate() {
            n |= u32::from(*b) << (16 - 8 * i);
        }
        for i in 0..=group.len() {
            out.push(char::from(B64URL[(n >> (18 - 6 * i)) as usize & 63]));
        }
    }
    out
}

/// Inverse of [`encode_sha256`]; `None` for anything not in that form
/// (padding, the standard alphabet, non-zero spare bits).
pub fn decode_sha256(text: &str) -> Option<[u8; 32]> {
    let t = text.as_bytes();
    if t.len() != SHA256_B64_LEN {
        return None;
    }
    let value = |c: u8| B64URL.iter().position(|&x| x == c).map(|v| v as u32);
    let mut out = [0u8; 32];
    let mut at = 0;
    for group in t.chunks(4) {
        let mut n = 0u32;
        for (i, c) in group.iter().enumerate() {
            n |= value(*c)? << (18 - 6 * i);
        }
        for i in 0..group.len() - 1 {
            out[at] = (n >> (16 - 8 * i)) as u8;
            at += 1;
        }
    }
    (encode_sha256(&out) == text).then_some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sha256_base64url_round_trips_and_is_strict() {
        let mut bytes = [0u8; 32];
        for (i, b) in bytes.iter_mut().enumerate() {
            *b = (i as u8).wrapping_mul(37).wrapping_add(250);
        }
        let text = encode_sha256(&bytes);
        assert_eq!(text.len(), SHA256_B64_LEN);
        assert_eq!(decode_sha256(&text), Some(bytes));
        assert_eq!(encode_sha256(&[0; 32]), "A".repeat(43));
        assert_eq!(decode_sha256(&format!("{text}=")), None);
        assert_eq!(decode_sha256(&text.replace('-', "+")), None);
        // The last character carries 2 spare bits that must be zero.
        assert_eq!(decode_sha256(&format!("{}B", &"A".repeat(42))), None);
    }

    #[test]
    fn segment_and_artifact_names_are_canonical() {
        assert_eq!(segment_name(1), "seg-000001");
        assert_eq!(segment_name(1_234_567), "seg-1234567");
        assert_eq!(parse_segment_name("seg-000042"), Some(42));
        assert_eq!(parse_segment_name("seg-1234567"), Some(1_234_567));
        for bad in [
            "seg-42",
            "seg-0000042",
            "seg-000000",
            "seg-+00042",
            "SEG-000042",
        ] {
            assert_eq!(parse_segment_name(bad), None, "{bad}");
        }
        assert_eq!(parse_artifact_name("seg-000003.17"), Some((3, 17)));
        assert_eq!(parse_artifact_name("seg-000003.017"), None);
        assert_eq!(parse_artifact_name("seg-000003."), None);
    }

    #[test]
    fn seq_digits_matches_counting_by_hand() {
        for (first, n) in [(1, 9), (1, 10), (5, 200), (99, 3), (999_990, 30)] {
            let by_hand: u64 = (first..first + n)
                .map(|s: u64| s.to_string().len() as u64)
                .sum();
            assert_eq!(seq_digits(first, n), by_hand, "{first} {n}");
        }
    }

    #[test]
    fn ref_record_parses_back() {
        let chunk = ChunkRef {
            off: 65_536,
            len: 4096,
            sha256: [7; 32],
        };
        let text = ref_record(12, &chunk);
        assert_eq!(
            parse_record(text.as_bytes()),
            Ok(Record::Ref { seq: 12, chunk })
        );
        assert_eq!(ref_record_len_without_seq(&chunk) + 2, text.len() as u64);
    }

    #[test]
    fn records_are_checked_against_their_schema() {
        let push =
            br#"{"schema":"cohsh-telemetry-push/v1","seq":1,"mime":"text/plain","payload":"hi"}"#;
        assert_eq!(parse_record(push), Ok(Record::Push { seq: 1 }));
        let bad: &[&[u8]] = &[
            br#"{"schema":"cohsh-telemetry-push/v1","seq":1,"mime":"text/plain"}"#,
            br#"{"schema":"cohsh-telemetry-push/v1","seq":-1,"mime":"text/plain","payload":1}"#,
            br#"{"schema":"cohsh-telemetry-push/v1","seq":1,"mime":"t","payload":1,"x":2}"#,
            br#"{"schema":"coh-ref-c/v1","seq":1,"off":0,"len":0,"sha256":"AAAA"}"#,
            br#"{"schema":"coh-ref-c/v1","seq":1,"off":0,"len":5}"#,
            br#"{"schema":"nope/v1","seq":1}"#,
            b"not json",
        ];
        for b in bad {
            assert!(parse_record(b).is_err(), "{}", String::from_utf8_lossy(b));
        }
    }

    #[test]
    fn ctl_accepts_only_new_segment() {
        assert_eq!(
            parse_ctl(b"{\"new\":\"segment\",\"mime\":\"text/plain\"}\n").unwrap(),
            "text/plain"
        );
        assert!(parse_ctl(br#"{"new":"segment","mime":"text/plain","x":1}"#).is_err());
        assert!(parse_ctl(br#"{"new":"device","mime":"text/plain"}"#).is_err());
        assert!(parse_ctl(br#"{"new":"segment","mime":"plain"}"#).is_err());
        assert!(parse_ctl(br#"{"new":"segment"}"#).is_err());
    }
}
