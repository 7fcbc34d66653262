//! Loading, checking, writing and fingerprinting a manifest.
//!
//! Every numeric key has one allowed range, kept in the table [`BOUNDS`] and
//! repeated in the field's doc comment and in `default.toml`; a test holds
//! the three together. A few keys must also stay below another key. A
//! failure names the key as it is written in TOML, the value and what was
//! allowed, so the operator can fix the file without reading code.
//!
//! This module reads no files: callers hand it text.

use std::net::SocketAddr;
use std::ops::RangeInclusive;

use sha2::{Digest, Sha256};

use crate::Manifest;

/// Why a manifest was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ManifestError {
    /// The text is not TOML, has an unknown key or a value of the wrong type.
    #[error(
        "manifest does not parse (bad TOML, an unknown key or a value of the wrong type): {0}"
    )]
    Parse(String),

    /// A numeric key is outside its allowed range.
    #[error("{key} = {value}: must be in {min}..={max}")]
    OutOfRange {
        key: &'static str,
        value: u64,
        min: u64,
        max: u64,
    },

    /// A key is larger than another key that must bound it.
    #[error("{key} = {value}: must be at most {bound} ({limit})")]
    AboveOther {
        key: &'static str,
        value: u64,
        bound: &'static str,
        limit: u64,
    },

    /// A text key (a name or an address) does not have the required form.
    #[error("{key} = {value:?}: {reason}")]
    Invalid {
        key: &'static str,
        value: String,
        reason: &'static str,
    },

    /// The manifest could not be written as TOML (only for values no
    /// validated manifest holds, such as integers above `i64::MAX`).
    #[error("manifest cannot be written as TOML: {0}")]
    Serialize(String),
}

/// One numeric key and the values it may take.
struct Bound {
    key: &'static str,
    min: u64,
    max: u64,
    value: fn(&Manifest) -> u64,
}

const KIB: u64 = 1024;
const MIB: u64 = 1024 * KIB;
const GIB: u64 = 1024 * MIB;

macro_rules! bound {
    ($section:ident . $field:ident, $min:expr, $max:expr) => {
        Bound {
            key: concat!(stringify!($section), ".", stringify!($field)),
            min: $min,
            max: $max,
            value: |m| u64::from(m.$section.$field),
        }
    };
}

/// The allowed range of every numeric key, in manifest order.
const BOUNDS: &[Bound] = &[
    bound!(ninep.msize, 4096, 1_048_576),
    bound!(ninep.max_sessions, 1, 65_536),
    bound!(ninep.max_fids_per_session, 4, 65_536),
    bound!(ninep.max_tags_in_flight, 1, 1024),
    bound!(ninep.walk_depth, 1, 16),
    bound!(ninep.max_component_bytes, 1, 255),
    bound!(console.max_line_bytes, 256, 1_048_576),
    bound!(console.max_clients, 1, 65_536),
    bound!(console.auth_timeout_ms, 100, 60_000),
    bound!(console.attach_failures_before_lockout, 1, 100),
    bound!(console.attach_failure_window_s, 1, 86_400),
    bound!(console.lockout_s, 1, 86_400),
    bound!(workers.max_workers, 1, 2_000_000),
    bound!(workers.heartbeat_interval_ms, 10, 3_600_000),
    bound!(workers.ring_bytes, 256, 1_048_576),
    bound!(workers.max_record_bytes, 64, 65_536),
    bound!(workers.default_ticks, 1, 1_000_000_000),
    bound!(workers.default_ops, 1, 1_000_000_000),
    bound!(workers.default_ttl_s, 1, 31_536_000),
    bound!(workers.shard_bits, 1, 8),
    bound!(tickets.max_ttl_s, 1, 31_536_000),
    bound!(tickets.max_scopes, 0, 8),
    bound!(tickets.max_scope_rate_per_s, 0, 64),
    bound!(tickets.max_bandwidth_bytes, 0, 128 * KIB),
    bound!(tickets.max_cursor_resumes, 0, 16),
    bound!(tickets.max_cursor_advances, 0, 256),
    bound!(telemetry.record_bytes, 256, 64 * KIB),
    bound!(telemetry.max_devices, 1, 65_536),
    bound!(telemetry.max_segments_per_device, 1, 65_536),
    bound!(telemetry.max_segment_bytes, 4 * KIB, 4 * GIB),
    bound!(telemetry.max_device_bytes, 64 * KIB, 1024 * GIB),
    bound!(telemetry.max_artifact_bytes, GIB, 64 * GIB),
    bound!(telemetry.chunk_bytes, 64 * KIB, 64 * MIB),
    bound!(telemetry.max_uploads, 1, 256),
    bound!(audit.log_ring_bytes, 4 * KIB, 64 * MIB),
    bound!(audit.max_line_bytes, 64, 64 * KIB),
    bound!(gpu.max_leases_per_gpu, 1, 1024),
];

/// Most GPUs one manifest may declare.
pub const MAX_GPU_DEVICES: usize = 64;
/// Most streams one GPU may declare.
pub const MAX_GPU_STREAMS: u32 = 64;

/// Pairs `(key, bound)` where `key` must not exceed `bound`.
const ORDERED: &[(usize, usize)] = &[
    (
        index("workers.max_record_bytes"),
        index("workers.ring_bytes"),
    ),
    (
        index("telemetry.record_bytes"),
        index("telemetry.max_segment_bytes"),
    ),
    (
        index("telemetry.max_segment_bytes"),
        index("telemetry.max_device_bytes"),
    ),
    (index("audit.max_line_bytes"), index("audit.log_ring_bytes")),
];

/// The position of `key` in [`BOUNDS`]; a typo fails the build.
const fn index(key: &str) -> usize {
    let mut i = 0;
    while i < BOUNDS.len() {
        if const_eq(BOUNDS[i].key, key) {
            return i;
        }
        i += 1;
    }
    panic!("unknown manifest key in ORDERED")
}

const fn const_eq(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    if a.len() != b.len() {
        return false;
    }
    let mut i = 0;
    while i < a.len() {
        if a[i] != b[i] {
            return false;
        }
        i += 1;
    }
    true
}

/// Every numeric key (`section.field`) with its allowed range, in manifest order.
pub fn bounds() -> impl Iterator<Item = (&'static str, RangeInclusive<u64>)> {
    BOUNDS.iter().map(|b| (b.key, b.min..=b.max))
}

impl Manifest {
    /// Parses manifest text. Missing keys keep their defaults; unknown keys
    /// and wrongly typed values are errors. The values are not range-checked:
    /// call [`Manifest::validate`], or use [`Manifest::load`].
    pub fn from_toml(text: &str) -> Result<Manifest, ManifestError> {
        toml::from_str(text).map_err(|e| ManifestError::Parse(e.to_string()))
    }

    /// [`Manifest::from_toml`], then [`Manifest::validate`].
    pub fn load(text: &str) -> Result<Manifest, ManifestError> {
        let manifest = Manifest::from_toml(text)?;
        manifest.validate()?;
        Ok(manifest)
    }

    /// Checks every bound; returns the first problem in manifest order.
    pub fn validate(&self) -> Result<(), ManifestError> {
        match self.problems().into_iter().next() {
            Some(problem) => Err(problem),
            None => Ok(()),
        }
    }

    /// Every problem with this manifest, in manifest order; empty when valid.
    pub fn problems(&self) -> Vec<ManifestError> {
        let mut problems = Vec::new();
        problems.extend(check_name("hive.name", &self.hive.name).err());
        problems.extend(check_listen("ninep.listen", &self.ninep.listen, false).err());
        problems.extend(check_listen("console.listen", &self.console.listen, true).err());
        for bound in BOUNDS {
            let value = (bound.value)(self);
            if !(bound.min..=bound.max).contains(&value) {
                let (key, min, max) = (bound.key, bound.min, bound.max);
                problems.push(ManifestError::OutOfRange {
                    key,
                    value,
                    min,
                    max,
                });
            }
        }
        for &(small, large) in ORDERED {
            let (value, limit) = ((BOUNDS[small].value)(self), (BOUNDS[large].value)(self));
            if value > limit {
                let (key, bound) = (BOUNDS[small].key, BOUNDS[large].key);
                problems.push(ManifestError::AboveOther {
                    key,
                    value,
                    bound,
                    limit,
                });
            }
        }
        problems.extend(self.gpu_problems());
        problems
    }

    fn gpu_problems(&self) -> Vec<ManifestError> {
        let devices = &self.gpu.devices;
        let mut problems = Vec::new();
        if devices.len() > MAX_GPU_DEVICES {
            problems.push(ManifestError::OutOfRange {
                key: "gpu.devices",
                value: devices.len() as u64,
                min: 0,
                max: MAX_GPU_DEVICES as u64,
            });
        }
        for (i, d) in devices.iter().enumerate() {
            if check_name("gpu.devices.id", &d.id).is_err() || d.id == "." || d.id == ".." {
                problems.push(ManifestError::Invalid {
                    key: "gpu.devices.id",
                    value: d.id.clone(),
                    reason: "must be 1..=64 bytes of A-Z a-z 0-9 . _ -, not . or ..",
                });
            }
            if devices[..i].iter().any(|e| e.id == d.id) {
                problems.push(ManifestError::Invalid {
                    key: "gpu.devices.id",
                    value: d.id.clone(),
                    reason: "declared twice",
                });
            }
            if d.mem_mb == 0 {
                problems.push(ManifestError::OutOfRange {
                    key: "gpu.devices.mem_mb",
                    value: 0,
                    min: 1,
                    max: u64::from(u32::MAX),
                });
            }
            if !(1..=MAX_GPU_STREAMS).contains(&d.streams) {
                problems.push(ManifestError::OutOfRange {
                    key: "gpu.devices.streams",
                    value: u64::from(d.streams),
                    min: 1,
                    max: u64::from(MAX_GPU_STREAMS),
                });
            }
        }
        problems
    }

    /// The manifest as TOML with every key, in a stable order and no comments.
    pub fn to_toml(&self) -> Result<String, ManifestError> {
        toml::to_string(self).map_err(|e| ManifestError::Serialize(e.to_string()))
    }

    /// Lowercase hex SHA-256 of [`Manifest::to_toml`], shown in `/proc/boot`.
    ///
    /// Two files that differ only in comments, order or keys left at their
    /// defaults have the same fingerprint; any changed value changes it.
    pub fn fingerprint(&self) -> Result<String, ManifestError> {
        Ok(Manifest::sha256_hex(&self.to_toml()?))
    }

    /// Lowercase hex SHA-256 of some text, such as the manifest file as read.
    pub fn sha256_hex(text: &str) -> String {
        hex::encode(Sha256::digest(text.as_bytes()))
    }
}

fn check_name(key: &'static str, name: &str) -> Result<(), ManifestError> {
    let allowed = |b: u8| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-');
    if name.is_empty() || name.len() > 64 || !name.bytes().all(allowed) {
        let reason = "must be 1..=64 bytes of A-Z a-z 0-9 . _ -";
        return Err(ManifestError::Invalid {
            key,
            value: name.to_string(),
            reason,
        });
    }
    Ok(())
}

fn check_listen(key: &'static str, addr: &str, may_be_empty: bool) -> Result<(), ManifestError> {
    if addr.is_empty() && may_be_empty {
        return Ok(());
    }
    if addr.parse::<SocketAddr>().is_err() {
        let reason = if may_be_empty {
            "must be empty (disabled) or an address like 127.0.0.1:31337"
        } else {
            "must be an address like 127.0.0.1:5640"
        };
        return Err(ManifestError::Invalid {
            key,
            value: addr.to_string(),
            reason,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid() {
        assert_eq!(Manifest::default().problems(), vec![]);
    }

    #[test]
    fn keys_name_real_fields_once() {
        let toml = Manifest::default().to_toml().unwrap();
        let table: toml::Table = toml.parse().unwrap();
        for (i, bound) in BOUNDS.iter().enumerate() {
            let (section, field) = bound.key.split_once('.').unwrap();
            assert!(table[section].get(field).is_some(), "{}", bound.key);
            assert_eq!(BOUNDS.iter().position(|b| b.key == bound.key), Some(i));
        }
    }

    #[test]
    fn every_bound_admits_its_ends_and_refuses_beyond() {
        for bound in BOUNDS {
            let (section, field) = bound.key.split_once('.').unwrap();
            let at = |value: u64| Manifest::from_toml(&format!("[{section}]\n{field} = {value}"));
            assert_eq!(
                (bound.value)(&at(bound.min).unwrap()),
                bound.min,
                "{}",
                bound.key
            );
            assert_eq!(
                (bound.value)(&at(bound.max).unwrap()),
                bound.max,
                "{}",
                bound.key
            );
            let above = at(bound.max + 1).unwrap().problems();
            assert!(above.iter().any(|p| matches!(p,
                ManifestError::OutOfRange { key, .. } if *key == bound.key)));
            if bound.min > 0 {
                let below = at(bound.min - 1).unwrap().problems();
                assert!(below.iter().any(|p| matches!(p,
                    ManifestError::OutOfRange { key, .. } if *key == bound.key)));
            }
        }
    }
}
