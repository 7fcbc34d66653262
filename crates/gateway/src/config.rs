//! What a gateway needs to start, and the checks an operator's settings
//! must pass before anything listens.
//!
//! Parsing flags and environment variables is the binary's job; this module
//! holds the validated values and the refusals (empty or placeholder token,
//! a role other than queen, a missing ticket, a non-loopback bind without
//! the explicit switch). It does no I/O besides resolving the bind address.

use std::net::{SocketAddr, ToSocketAddrs};
use std::time::Duration;

/// The token the upstream examples ship with; never accepted.
pub const PLACEHOLDER_TOKEN: &str = "changeme";

/// Longest path the gateway forwards, in bytes (8 components of 255 bytes
/// fit well below it; anything longer is refused before the hive sees it).
pub const MAX_PATH_BYTES: usize = 1024;

/// Most components in a path (the hive's default walk depth).
pub const MAX_PATH_DEPTH: usize = 8;

/// Longest path component, in bytes.
pub const MAX_COMPONENT_BYTES: usize = 255;

/// Most lines `tail` may ask for.
pub const MAX_TAIL_LINES: usize = 256;

/// How the gateway reaches the hive and how many sessions it keeps.
#[derive(Clone, Debug)]
pub struct PoolConfig {
    /// The hive's Secure9P address, `host:port`.
    pub hive_addr: String,
    /// Attach role; only `queen` is accepted.
    pub role: String,
    /// The queen ticket sent as the attach `aname`.
    pub ticket: String,
    /// Secure9P connections kept open.
    pub connections: usize,
    /// Requests pipelined per connection; lowered to the hive's
    /// tags-in-flight bound when `/proc/boot` says it is smaller.
    pub tags_per_connection: u16,
    /// Requests that may wait for a free slot before new ones get 429.
    pub queue_depth: usize,
    /// The msize asked for; the hive grants at most its own.
    pub msize: u32,
    /// First and longest pause between reconnect attempts.
    pub reconnect_min: Duration,
    pub reconnect_max: Duration,
    /// Bound on every single 9P request (and on connect).
    pub request_timeout: Duration,
}

/// Bounds on what HTTP clients may ask for and hold.
#[derive(Clone, Debug)]
pub struct HttpLimits {
    /// Whole-request deadline: queue wait plus every 9P round trip.
    pub request_timeout: Duration,
    /// Largest `max_bytes` honoured; larger values are clamped to it.
    pub max_read_bytes: usize,
    /// Largest request body (echo), in bytes; more is answered 413.
    pub max_body_bytes: usize,
    /// Time a client has to send a request's headers (also the idle
    /// keep-alive timeout, since the wait for the next request's headers
    /// starts when the previous response is written).
    pub header_timeout: Duration,
    /// Time a client has to send a request's body.
    pub body_timeout: Duration,
    /// Concurrent HTTP connections; more are accepted and closed at once.
    pub max_connections: usize,
    /// How long `/metrics` reuses the hive counters it read.
    pub metrics_cache: Duration,
    /// Artifact streams (uploads and read-backs) at once; more get 429.
    /// Each has its own 9P session, so they never hold pool slots.
    pub artifact_streams: usize,
    /// msize asked for on an artifact stream's session (the hive grants
    /// at most its manifest's `ninep.msize`).
    pub artifact_msize: u32,
    /// Bound on each 9P request of an artifact stream (a chunk seal syncs
    /// up to `chunk_bytes` before its write is answered).
    pub artifact_io_timeout: Duration,
}

/// Everything a gateway needs.
#[derive(Clone)]
pub struct GatewayConfig {
    /// Token HTTP clients present (`Authorization: Bearer` or
    /// `x-cohesix-auth`).
    pub request_token: String,
    pub pool: PoolConfig,
    pub http: HttpLimits,
}

impl std::fmt::Debug for GatewayConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Tokens and tickets never reach a log, even through Debug.
        f.debug_struct("GatewayConfig")
            .field("hive_addr", &self.pool.hive_addr)
            .field("connections", &self.pool.connections)
            .field("http", &self.http)
            .finish_non_exhaustive()
    }
}

impl GatewayConfig {
    /// Defaults for a hive at `hive_addr`: 4 connections of 16 tags, a
    /// queue of 1024 waiters, 5 s per request, 1 MiB reads, 64 KiB bodies.
    pub fn new(
        hive_addr: impl Into<String>,
        ticket: impl Into<String>,
        request_token: impl Into<String>,
    ) -> GatewayConfig {
        let request_timeout = Duration::from_secs(5);
        GatewayConfig {
            request_token: request_token.into(),
            pool: PoolConfig {
                hive_addr: hive_addr.into(),
                role: String::from("queen"),
                ticket: ticket.into(),
                connections: 4,
                tags_per_connection: 16,
                queue_depth: 1024,
                msize: 65_536,
                reconnect_min: Duration::from_millis(100),
                reconnect_max: Duration::from_secs(5),
                request_timeout,
            },
            http: HttpLimits {
                request_timeout,
                max_read_bytes: 1 << 20,
                max_body_bytes: 64 << 10,
                header_timeout: Duration::from_secs(10),
                body_timeout: Duration::from_secs(10),
                max_connections: 16_384,
                metrics_cache: Duration::from_secs(1),
                artifact_streams: 4,
                artifact_msize: 1 << 20,
                artifact_io_timeout: Duration::from_secs(60),
            },
        }
    }

    /// Refuses settings an operator must not run with.
    pub fn check(&self) -> Result<(), ConfigError> {
        check_token(&self.request_token)?;
        if self.pool.role != "queen" {
            return Err(ConfigError::Role(self.pool.role.clone()));
        }
        if self.pool.ticket.trim().is_empty() {
            return Err(ConfigError::NoTicket);
        }
        if self.pool.connections == 0 || self.pool.connections > 1024 {
            return Err(ConfigError::Range {
                what: "pool connections",
                allowed: "1..=1024",
            });
        }
        if self.pool.tags_per_connection == 0 {
            return Err(ConfigError::Range {
                what: "tags per connection",
                allowed: "1..=1024",
            });
        }
        if self.http.artifact_streams == 0 || self.http.artifact_streams > 1024 {
            return Err(ConfigError::Range {
                what: "artifact streams",
                allowed: "1..=1024",
            });
        }
        if self.http.max_connections == 0 || self.http.max_read_bytes == 0 {
            return Err(ConfigError::Range {
                what: "HTTP connections and read bytes",
                allowed: "at least 1",
            });
        }
        Ok(())
    }
}

/// Refuses an empty request token or the upstream placeholder.
pub fn check_token(token: &str) -> Result<(), ConfigError> {
    if token.trim().is_empty() {
        return Err(ConfigError::EmptyToken);
    }
    if token == PLACEHOLDER_TOKEN {
        return Err(ConfigError::PlaceholderToken);
    }
    Ok(())
}

/// Resolves the bind address; every address it names must be loopback
/// unless `allow_non_loopback`.
pub fn resolve_bind(bind: &str, allow_non_loopback: bool) -> Result<SocketAddr, ConfigError> {
    let addrs: Vec<SocketAddr> = bind
        .to_socket_addrs()
        .map_err(|e| ConfigError::Bind {
            bind: bind.to_string(),
            why: e.to_string(),
        })?
        .collect();
    let Some(first) = addrs.first().copied() else {
        return Err(ConfigError::Bind {
            bind: bind.to_string(),
            why: String::from("resolves to no address"),
        });
    };
    if !allow_non_loopback && !addrs.iter().all(|a| a.ip().is_loopback()) {
        return Err(ConfigError::NonLoopback(bind.to_string()));
    }
    Ok(first)
}

/// A setting the gateway refuses to start with.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error(
        "the request auth token is empty; \
         set --request-auth-token or HIVE_GATEWAY_REQUEST_AUTH_TOKEN"
    )]
    EmptyToken,
    #[error(
        "the request auth token is the placeholder '{PLACEHOLDER_TOKEN}'; choose a real secret"
    )]
    PlaceholderToken,
    #[error("COH_ROLE is {0:?}; the gateway attaches only as queen")]
    Role(String),
    #[error(
        "no queen ticket; set COH_TICKET or --ticket-file \
         (mint one with `cohesix ticket --role queen`)"
    )]
    NoTicket,
    #[error("cannot use bind address {bind:?}: {why}")]
    Bind { bind: String, why: String },
    #[error("bind address {0:?} is not loopback; pass --allow-non-loopback to serve other hosts")]
    NonLoopback(String),
    #[error("{what} out of range (allowed {allowed})")]
    Range {
        what: &'static str,
        allowed: &'static str,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_and_placeholder_tokens_are_refused() {
        assert!(matches!(check_token(""), Err(ConfigError::EmptyToken)));
        assert!(matches!(check_token("  "), Err(ConfigError::EmptyToken)));
        assert!(matches!(
            check_token("changeme"),
            Err(ConfigError::PlaceholderToken)
        ));
        assert!(check_token("s3cret-token").is_ok());
    }

    #[test]
    fn non_loopback_bind_needs_the_switch() {
        assert!(resolve_bind("127.0.0.1:8080", false).is_ok());
        assert!(resolve_bind("[::1]:8080", false).is_ok());
        assert!(matches!(
            resolve_bind("0.0.0.0:8080", false),
            Err(ConfigError::NonLoopback(_))
        ));
        assert!(resolve_bind("0.0.0.0:8080", true).is_ok());
        assert!(matches!(
            resolve_bind("not an address", false),
            Err(ConfigError::Bind { .. })
        ));
    }

    #[test]
    fn only_the_queen_role_is_accepted() {
        let mut c = GatewayConfig::new("127.0.0.1:5640", "t", "token");
        assert!(c.check().is_ok());
        c.pool.role = String::from("worker-heartbeat");
        assert!(matches!(c.check(), Err(ConfigError::Role(_))));
        c.pool.role = String::from("queen");
        c.pool.ticket = String::new();
        assert!(matches!(c.check(), Err(ConfigError::NoTicket)));
    }

    #[test]
    fn debug_output_hides_secrets() {
        let c = GatewayConfig::new("127.0.0.1:5640", "ticket-secret", "token-secret");
        let shown = format!("{c:?}");
        assert!(!shown.contains("ticket-secret"));
        assert!(!shown.contains("token-secret"));
    }
}
