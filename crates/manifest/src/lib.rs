//! The hive manifest: every bound and switch the hive obeys, in one TOML file.
//!
//! The manifest has embedded defaults, so a hive starts without a file. A
//! file only needs the keys it changes. [`Manifest::validate`] checks every
//! bound at start and names the offending key with its allowed range.
//!
//! This crate does no I/O beyond what the caller hands it as text.

use serde::{Deserialize, Serialize};

mod validate;

pub use validate::ManifestError;

/// The schema identifier shown in `/proc/boot`.
pub const SCHEMA: &str = "cohesix-manifest/v1";

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Manifest {
    pub hive: HiveSection,
    pub ninep: NinepSection,
    pub console: ConsoleSection,
    pub workers: WorkersSection,
    pub tickets: TicketsSection,
    pub telemetry: TelemetrySection,
    pub audit: AuditSection,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HiveSection {
    /// Shown in `/proc/boot`.
    pub name: String,
    /// Accept the placeholder secret `changeme` (never in production).
    pub dev_mode: bool,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct NinepSection {
    /// Secure9P listen address.
    pub listen: String,
    /// Largest msize the hive negotiates.
    pub msize: u32,
    pub max_sessions: u32,
    pub max_fids_per_session: u32,
    pub max_tags_in_flight: u32,
    pub walk_depth: u32,
    pub max_component_bytes: u32,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ConsoleSection {
    /// Line console listen address; empty disables the console.
    pub listen: String,
    /// Largest console line (frame payload) in bytes.
    pub max_line_bytes: u32,
    pub max_clients: u32,
    pub auth_timeout_ms: u32,
    pub attach_failures_before_lockout: u32,
    pub attach_failure_window_s: u32,
    pub lockout_s: u32,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WorkersSection {
    pub max_workers: u32,
    pub heartbeat_interval_ms: u32,
    /// Bytes kept per worker telemetry ring; oldest records are overwritten.
    pub ring_bytes: u32,
    /// Largest single record appended to a worker ring.
    pub max_record_bytes: u32,
    pub default_ticks: u32,
    pub default_ops: u32,
    pub default_ttl_s: u32,
    /// Shard label width (1..=8 bits).
    pub shard_bits: u32,
    /// Serve `/worker/<id>` as an alias of the shard path.
    pub worker_alias: bool,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TicketsSection {
    pub max_ttl_s: u32,
    pub max_scopes: u32,
    pub max_scope_rate_per_s: u32,
    pub max_bandwidth_bytes: u32,
    pub max_cursor_resumes: u32,
    pub max_cursor_advances: u32,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum QuotaPolicy {
    Refuse,
    EvictOldest,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TelemetrySection {
    /// Largest record appended to a segment.
    pub record_bytes: u32,
    pub max_devices: u32,
    pub max_segments_per_device: u32,
    pub max_segment_bytes: u64,
    pub max_device_bytes: u64,
    pub quota_policy: QuotaPolicy,
    /// Largest artifact streamed into the hive.
    pub max_artifact_bytes: u64,
    /// Artifact chunk size (one `coh-ref-c/v1` record per chunk).
    pub chunk_bytes: u32,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuditSection {
    /// Bytes of `/log/queen.log` kept readable in memory.
    pub log_ring_bytes: u32,
    /// Largest line appended to `/log/queen.log` by a client.
    pub max_line_bytes: u32,
}

impl Default for Manifest {
    fn default() -> Manifest {
        Manifest {
            hive: HiveSection::default(),
            ninep: NinepSection::default(),
            console: ConsoleSection::default(),
            workers: WorkersSection::default(),
            tickets: TicketsSection::default(),
            telemetry: TelemetrySection::default(),
            audit: AuditSection::default(),
        }
    }
}

impl Default for HiveSection {
    fn default() -> HiveSection {
        HiveSection { name: "cohesix-host".to_string(), dev_mode: false }
    }
}

impl Default for NinepSection {
    fn default() -> NinepSection {
        NinepSection {
            listen: "127.0.0.1:5640".to_string(),
            msize: 8192,
            max_sessions: 1024,
            max_fids_per_session: 256,
            max_tags_in_flight: 16,
            walk_depth: 8,
            max_component_bytes: 255,
        }
    }
}

impl Default for ConsoleSection {
    fn default() -> ConsoleSection {
        ConsoleSection {
            listen: "127.0.0.1:31337".to_string(),
            max_line_bytes: 8192,
            max_clients: 512,
            auth_timeout_ms: 5000,
            attach_failures_before_lockout: 3,
            attach_failure_window_s: 60,
            lockout_s: 90,
        }
    }
}

impl Default for WorkersSection {
    fn default() -> WorkersSection {
        WorkersSection {
            max_workers: 200_000,
            heartbeat_interval_ms: 1000,
            ring_bytes: 1024,
            max_record_bytes: 4096,
            default_ticks: 1000,
            default_ops: 10_000,
            default_ttl_s: 300,
            shard_bits: 8,
            worker_alias: true,
        }
    }
}

impl Default for TicketsSection {
    fn default() -> TicketsSection {
        TicketsSection {
            max_ttl_s: 30 * 24 * 3600,
            max_scopes: 8,
            max_scope_rate_per_s: 64,
            max_bandwidth_bytes: 128 * 1024,
            max_cursor_resumes: 16,
            max_cursor_advances: 256,
        }
    }
}

impl Default for TelemetrySection {
    fn default() -> TelemetrySection {
        TelemetrySection {
            record_bytes: 4096,
            max_devices: 1024,
            max_segments_per_device: 64,
            max_segment_bytes: 16 * 1024 * 1024,
            max_device_bytes: 8 * 1024 * 1024 * 1024,
            quota_policy: QuotaPolicy::EvictOldest,
            max_artifact_bytes: 4 * 1024 * 1024 * 1024,
            chunk_bytes: 16 * 1024 * 1024,
        }
    }
}

impl Default for AuditSection {
    fn default() -> AuditSection {
        AuditSection { log_ring_bytes: 1024 * 1024, max_line_bytes: 1024 }
    }
}
