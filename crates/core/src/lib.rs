//! The hive core: the Cohesix namespace as a deterministic state machine.
//!
//! Fed requests and a clock by the edge (sockets, timers, disk live in
//! `cohesix-hive`), it owns workers, sessions, role policy, the lifecycle,
//! the audit stream and every refusal counter. It does no I/O of its own:
//! durable effects go through the [`Store`] trait.

pub mod audit;
pub mod backend;
pub mod ctl;
pub mod hive;
pub mod ingest;
pub mod lifecycle;
pub mod node;
pub mod ring;

pub use hive::{
    AppendOutcome, Credential, Hive, HiveInit, NullStore, OpenFile, Pressure, Secrets, SessionId,
    Store, Transport,
};
