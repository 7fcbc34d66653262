//! `hive-gateway`: the hive's REST surface (SURFACES §9), served over a
//! pool of pipelined Secure9P sessions attached as queen.
//!
//! The gateway sits outside the hive's trust boundary: it links only the
//! 9P client and wire crates and reaches the hive exactly as any client
//! does, with a queen ticket. Module map:
//!
//! - [`config`]: settings and the refusals checked before start.
//! - [`broker`]: the session pool, its bounded wait queue and reconnects.
//! - [`ops`]: ls, cat, tail, echo as 9P over one leased session.
//! - [`telemetry`]: the ingest routes; artifacts streamed over their own
//!   sessions.
//! - [`app`]: shared state; deadline, checkout and retry around an op.
//! - [`routes`]: the handlers (and, by annotation, the OpenAPI document).
//! - [`server`]: router, auth, request log, metrics, the accept loop.
//! - [`api`], [`error`], [`validate`]: wire types, error mapping, input checks.
//! - [`openapi`], [`docs`], [`metrics`], [`boot`]: document, page, counters,
//!   and the hive's `/proc/boot`.

pub mod api;
pub mod app;
pub mod boot;
pub mod broker;
pub mod config;
pub mod docs;
pub mod error;
pub mod metrics;
pub mod openapi;
pub mod ops;
pub mod routes;
pub mod server;
pub mod telemetry;
pub mod validate;

pub use config::GatewayConfig;
pub use server::{Gateway, StartError};
