//! Contract tests of `hive-gateway` against a real hive started in-process
//! (and, for timing-dependent cases, a scripted 9P server): every route
//! (telemetry ingest and artifact streams included),
//! every documented status code, both auth headers, bad input, connection
//! bounds, the hive restarting underneath, and the OpenAPI snapshot.

mod auth;
mod bad_input;
mod broker;
mod common;
mod connections;
mod fake_hive;
mod openapi_snapshot;
mod resilience;
mod routes;
mod telemetry;
