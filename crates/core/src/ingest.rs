//! Telemetry ingest under `/queen/telemetry/<device>/` (SURFACES §7).
//!
//! TODO-correctness: placeholder until the durable segment store lands;
//! every device path answers `NotFound` and the directory lists empty.

use cohesix_ninep::NsError;

/// Ingest state and counters shown under `/proc/ingest`.
#[derive(Debug, Default)]
pub struct Ingest {
    pub backpressure: u64,
    pub dropped: u64,
    pub queued: u64,
    pub p50_ms: u32,
    pub p95_ms: u32,
}

impl Ingest {
    pub fn devices(&self) -> Vec<String> {
        Vec::new()
    }

    pub fn unknown_device(&self) -> NsError {
        NsError::not_found("no-such-device")
    }
}
