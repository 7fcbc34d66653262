//! The hive's `/proc/boot`, read once per session and parsed into bounds.
//!
//! The file's lines are `key=value` words (the first word of a line may be
//! a bare label such as `bounds`); numeric words on the `bounds` line are
//! the hive's manifest bounds (msize, walk depth, tags in flight, ...).
//! Unknown keys are kept, so a newer hive's bounds show up without a
//! gateway change.

use cohesix_client::{Client, Error as ClientError};
use std::collections::BTreeMap;

/// `/proc/boot` is a few hundred bytes; this is a generous ceiling.
const MAX_BOOT_BYTES: usize = 16 * 1024;

/// What `/proc/boot` says.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct BootInfo {
    /// Numeric words of the `bounds` line.
    pub bounds: BTreeMap<String, u64>,
    /// Every other `key=value` word (version, hive name, manifest, ...).
    pub info: BTreeMap<String, String>,
}

impl BootInfo {
    pub fn bound(&self, key: &str) -> Option<u64> {
        self.bounds.get(key).copied()
    }

    /// Parses the file's text; words that are not `key=value` are skipped.
    pub fn parse(text: &str) -> BootInfo {
        let mut boot = BootInfo::default();
        for line in text.lines() {
            let mut words = line.split_whitespace().peekable();
            let is_bounds = words.peek() == Some(&"bounds");
            for word in words {
                let Some((key, value)) = word.split_once('=') else {
                    continue;
                };
                if key.is_empty() {
                    continue;
                }
                match value.parse::<u64>() {
                    Ok(n) if is_bounds => {
                        boot.bounds.insert(key.to_string(), n);
                    }
                    _ => {
                        boot.info.insert(key.to_string(), value.to_string());
                    }
                }
            }
        }
        boot
    }
}

/// Reads and parses `/proc/boot` over an attached session.
pub async fn read(client: &Client) -> Result<BootInfo, ClientError> {
    let data = client.read_all("/proc/boot", MAX_BOOT_BYTES).await?;
    Ok(BootInfo::parse(&String::from_utf8_lossy(&data)))
}

#[cfg(test)]
mod tests {
    use super::BootInfo;

    #[test]
    fn bounds_line_becomes_numbers_and_the_rest_info() {
        let text = "cohesix-hive version=0.1.0 hive=h1\n\
                    manifest=embedded-defaults schema=cohesix-manifest/v1 sha256=ab\n\
                    bounds msize=8192 walk_depth=8 tags_in_flight=16\n\
                    started_ms=17\n";
        let boot = BootInfo::parse(text);
        assert_eq!(boot.bound("msize"), Some(8192));
        assert_eq!(boot.bound("tags_in_flight"), Some(16));
        assert_eq!(boot.bound("started_ms"), None);
        assert_eq!(boot.info["version"], "0.1.0");
        assert_eq!(boot.info["started_ms"], "17");
        assert_eq!(boot.info["schema"], "cohesix-manifest/v1");
    }

    #[test]
    fn garbage_parses_to_nothing() {
        assert_eq!(BootInfo::parse("\u{0}bounds = =x"), BootInfo::default());
    }
}
