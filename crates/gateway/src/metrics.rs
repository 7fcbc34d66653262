//! `/metrics`: Prometheus text for the gateway's routes, its broker, and the
//! hive's own counters read from `/proc`.
//!
//! Route counters are plain atomics (no lock on the request path): one
//! counter per status code, one error counter, and a latency histogram per
//! route. The hive's `/proc` files are read over one lease and the rendered
//! text is cached for `metrics_cache`, so scrapes cost the hive at most one
//! read of each file per period however often they come.
//!
//! Every `key=value` word on the first line of a `/proc` file becomes
//! `cohesix_hive_<group>_<key>`: numbers as they are, words as a
//! `{value="<word>"} 1` sample.

use crate::broker::Broker;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// The routes metrics are kept for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Route {
    Ls,
    Cat,
    Tail,
    Echo,
    TelemetrySegment,
    TelemetryRecords,
    TelemetryLatest,
    TelemetryArtifact,
    TelemetryArtifacts,
    Bounds,
    Status,
    OpenApi,
    Docs,
    Metrics,
    Other,
}

impl Route {
    pub const ALL: [Route; 15] = [
        Route::Ls,
        Route::Cat,
        Route::Tail,
        Route::Echo,
        Route::TelemetrySegment,
        Route::TelemetryRecords,
        Route::TelemetryLatest,
        Route::TelemetryArtifact,
        Route::TelemetryArtifacts,
        Route::Bounds,
        Route::Status,
        Route::OpenApi,
        Route::Docs,
        Route::Metrics,
        Route::Other,
    ];

    pub fn of(path: &str) -> Route {
        match path {
            "/v1/fs/ls" => Route::Ls,
            "/v1/fs/cat" => Route::Cat,
            "/v1/fs/tail" => Route::Tail,
            "/v1/fs/echo" => Route::Echo,
            "/v1/meta/bounds" => Route::Bounds,
            "/v1/meta/status" => Route::Status,
            "/v1/openapi.yaml" => Route::OpenApi,
            "/docs" => Route::Docs,
            "/metrics" => Route::Metrics,
            p => Route::of_telemetry(p),
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Route::Ls => "/v1/fs/ls",
            Route::Cat => "/v1/fs/cat",
            Route::Tail => "/v1/fs/tail",
            Route::Echo => "/v1/fs/echo",
            Route::TelemetrySegment => "/v1/telemetry/{device}/segment",
            Route::TelemetryRecords => "/v1/telemetry/{device}/records",
            Route::TelemetryLatest => "/v1/telemetry/{device}/latest",
            Route::TelemetryArtifact => "/v1/telemetry/{device}/artifact",
            Route::TelemetryArtifacts => "/v1/telemetry/{device}/artifacts/{id}",
            Route::Bounds => "/v1/meta/bounds",
            Route::Status => "/v1/meta/status",
            Route::OpenApi => "/v1/openapi.yaml",
            Route::Docs => "/docs",
            Route::Metrics => "/metrics",
            Route::Other => "other",
        }
    }

    /// The telemetry routes, by shape: `/v1/telemetry/<one>/<tail>`.
    fn of_telemetry(path: &str) -> Route {
        let Some(rest) = path.strip_prefix("/v1/telemetry/") else {
            return Route::Other;
        };
        let mut parts = rest.split('/');
        let (Some(_device), Some(what)) = (parts.next(), parts.next()) else {
            return Route::Other;
        };
        let id = parts.next();
        if parts.next().is_some() {
            return Route::Other;
        }
        match (what, id) {
            ("segment", None) => Route::TelemetrySegment,
            ("records", None) => Route::TelemetryRecords,
            ("latest", None) => Route::TelemetryLatest,
            ("artifact", None) => Route::TelemetryArtifact,
            ("artifacts", Some(_)) => Route::TelemetryArtifacts,
            _ => Route::Other,
        }
    }

    fn index(self) -> usize {
        Route::ALL
            .iter()
            .position(|r| *r == self)
            .unwrap_or(Route::ALL.len() - 1)
    }
}

/// Status codes counted one by one; the rest are counted as `other`.
const CODES: [u16; 11] = [200, 400, 401, 404, 405, 408, 413, 429, 500, 503, 504];

/// Histogram bucket bounds, in microseconds.
const BUCKETS_US: [u64; 14] = [
    250, 500, 1_000, 2_500, 5_000, 10_000, 25_000, 50_000, 100_000, 250_000, 500_000, 1_000_000,
    5_000_000, 10_000_000,
];

#[derive(Default)]
struct RouteStats {
    /// One per entry of `CODES`, then `other`.
    codes: [AtomicU64; CODES.len() + 1],
    errors: AtomicU64,
    /// One per bucket, then `+Inf`; not cumulative.
    buckets: [AtomicU64; BUCKETS_US.len() + 1],
    sum_us: AtomicU64,
}

/// Counters of the HTTP side.
#[derive(Default)]
pub struct HttpMetrics {
    routes: [RouteStats; Route::ALL.len()],
    pub connections_open: AtomicU64,
    pub connections_total: AtomicU64,
    /// Connections closed at once because the connection cap was reached.
    pub connections_refused: AtomicU64,
}

impl HttpMetrics {
    /// Counts one answered request; `failed` is any non-OK answer.
    pub fn record(&self, route: Route, code: u16, latency: Duration, failed: bool) {
        let r = &self.routes[route.index()];
        let slot = CODES.iter().position(|c| *c == code).unwrap_or(CODES.len());
        r.codes[slot].fetch_add(1, Ordering::Relaxed);
        if failed {
            r.errors.fetch_add(1, Ordering::Relaxed);
        }
        let us = u64::try_from(latency.as_micros()).unwrap_or(u64::MAX);
        let bucket = BUCKETS_US
            .iter()
            .position(|b| us <= *b)
            .unwrap_or(BUCKETS_US.len());
        r.buckets[bucket].fetch_add(1, Ordering::Relaxed);
        r.sum_us.fetch_add(us, Ordering::Relaxed);
    }

    /// Appends the HTTP metrics in Prometheus text format.
    pub fn render(&self, out: &mut String) {
        header(
            out,
            "hive_gateway_requests_total",
            "counter",
            "HTTP requests by route and code",
        );
        for route in Route::ALL {
            let r = &self.routes[route.index()];
            for (i, n) in r.codes.iter().enumerate() {
                let n = n.load(Ordering::Relaxed);
                if n == 0 {
                    continue;
                }
                let code = CODES.get(i).map_or(String::from("other"), u16::to_string);
                let name = route.name();
                let _ = writeln!(
                    out,
                    "hive_gateway_requests_total{{route=\"{name}\",code=\"{code}\"}} {n}"
                );
            }
        }
        header(
            out,
            "hive_gateway_request_errors_total",
            "counter",
            "non-OK answers by route",
        );
        for route in Route::ALL {
            let n = self.routes[route.index()].errors.load(Ordering::Relaxed);
            let name = route.name();
            let _ = writeln!(
                out,
                "hive_gateway_request_errors_total{{route=\"{name}\"}} {n}"
            );
        }
        let hist = "hive_gateway_request_duration_seconds";
        header(out, hist, "histogram", "request latency by route");
        for route in Route::ALL {
            self.render_histogram(route, out);
        }
        let conns = [
            (
                "hive_gateway_http_connections_open",
                "gauge",
                &self.connections_open,
            ),
            (
                "hive_gateway_http_connections_total",
                "counter",
                &self.connections_total,
            ),
            (
                "hive_gateway_http_connections_refused_total",
                "counter",
                &self.connections_refused,
            ),
        ];
        for (name, kind, v) in conns {
            header(out, name, kind, "HTTP connections");
            let _ = writeln!(out, "{name} {}", v.load(Ordering::Relaxed));
        }
    }

    fn render_histogram(&self, route: Route, out: &mut String) {
        let r = &self.routes[route.index()];
        let name = route.name();
        let mut cumulative = 0u64;
        for (i, bound) in BUCKETS_US.iter().enumerate() {
            cumulative += r.buckets[i].load(Ordering::Relaxed);
            let le = *bound as f64 / 1e6;
            let _ = writeln!(
                out,
                "hive_gateway_request_duration_seconds_bucket{{route=\"{name}\",le=\"{le}\"}} \
                 {cumulative}"
            );
        }
        cumulative += r.buckets[BUCKETS_US.len()].load(Ordering::Relaxed);
        let sum = r.sum_us.load(Ordering::Relaxed) as f64 / 1e6;
        let _ = writeln!(
            out,
            "hive_gateway_request_duration_seconds_bucket{{route=\"{name}\",le=\"+Inf\"}} \
             {cumulative}\n\
             hive_gateway_request_duration_seconds_sum{{route=\"{name}\"}} {sum}\n\
             hive_gateway_request_duration_seconds_count{{route=\"{name}\"}} {cumulative}"
        );
    }
}

/// Appends the broker's counters.
pub fn render_broker(broker: &Broker, out: &mut String) {
    let s = broker.stats();
    let load = |a: &AtomicU64| a.load(Ordering::Relaxed);
    let gauges = [
        (
            "hive_gateway_pool_connections",
            broker.config().connections as u64,
        ),
        (
            "hive_gateway_pool_connections_live",
            broker.connected() as u64,
        ),
        (
            "hive_gateway_pool_slots_per_connection",
            u64::from(broker.cap()),
        ),
        (
            "hive_gateway_broker_waiters",
            s.waiters.load(Ordering::Relaxed) as u64,
        ),
        (
            "hive_gateway_broker_waiters_high_water",
            s.waiters_high_water.load(Ordering::Relaxed) as u64,
        ),
        (
            "hive_gateway_broker_in_flight",
            s.in_flight.load(Ordering::Relaxed) as u64,
        ),
        (
            "hive_gateway_broker_in_flight_high_water",
            s.in_flight_high_water.load(Ordering::Relaxed) as u64,
        ),
    ];
    for (name, v) in gauges {
        header(out, name, "gauge", "broker state");
        let _ = writeln!(out, "{name} {v}");
    }
    let counters = [
        ("hive_gateway_pool_connects_total", load(&s.connects)),
        ("hive_gateway_pool_reconnects_total", load(&s.reconnects)),
        (
            "hive_gateway_pool_connect_failures_total",
            load(&s.connect_failures),
        ),
        ("hive_gateway_broker_checkouts_total", load(&s.checkouts)),
        ("hive_gateway_broker_exhausted_total", load(&s.exhausted)),
        ("hive_gateway_broker_timeouts_total", load(&s.timeouts)),
        (
            "hive_gateway_broker_unavailable_total",
            load(&s.unavailable),
        ),
        ("hive_gateway_broker_retries_total", load(&s.retries)),
    ];
    for (name, v) in counters {
        header(out, name, "counter", "broker events");
        let _ = writeln!(out, "{name} {v}");
    }
}

/// The `/proc` files exported, with the metric group each one feeds.
pub const HIVE_FILES: &[(&str, &str)] = &[
    ("/proc/pressure/busy", "pressure"),
    ("/proc/pressure/quota", "pressure"),
    ("/proc/pressure/cut", "pressure"),
    ("/proc/pressure/policy", "pressure"),
    ("/proc/9p/sessions", "sessions"),
    ("/proc/9p/outstanding", "outstanding"),
    ("/proc/9p/session/active", "session"),
    ("/proc/workers/live", "workers"),
    ("/proc/workers/spawned", "workers"),
    ("/proc/workers/revoked", "workers"),
    ("/proc/ingest/p50_ms", "ingest"),
    ("/proc/ingest/p95_ms", "ingest"),
    ("/proc/ingest/backpressure", "ingest"),
    ("/proc/ingest/dropped", "ingest"),
    ("/proc/ingest/queued", "ingest"),
    ("/proc/lifecycle/state", "lifecycle"),
    ("/proc/root/reachable", "root"),
];

/// Renders the first line of one `/proc` file as metrics.
pub fn render_proc(group: &str, source: &str, text: &str, out: &mut String) {
    let first = text.lines().next().unwrap_or_default();
    for word in first.split_whitespace() {
        let Some((key, value)) = word.split_once('=') else {
            continue;
        };
        let key: String = key
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
            .collect();
        let name = format!("cohesix_hive_{group}_{key}");
        header(out, &name, "gauge", &format!("from the hive's {source}"));
        if value.parse::<u64>().is_ok() {
            let _ = writeln!(out, "{name} {value}");
        } else {
            let value: String = value
                .chars()
                .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
                .collect();
            let _ = writeln!(out, "{name}{{value=\"{value}\"}} 1");
        }
    }
}

fn header(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proc_lines_become_gauges() {
        let mut out = String::new();
        render_proc("pressure", "/proc/pressure/busy", "busy=3\n", &mut out);
        render_proc(
            "sessions",
            "/proc/9p/sessions",
            "sessions total=2 worker=1 shard_bits=8\nshard 13 1",
            &mut out,
        );
        render_proc(
            "lifecycle",
            "/proc/lifecycle/state",
            "state=ONLINE",
            &mut out,
        );
        assert!(out.contains("cohesix_hive_pressure_busy 3\n"));
        assert!(out.contains("cohesix_hive_sessions_total 2\n"));
        assert!(out.contains("cohesix_hive_sessions_worker 1\n"));
        assert!(!out.contains("shard 13"));
        assert!(out.contains("cohesix_hive_lifecycle_state{value=\"ONLINE\"} 1\n"));
    }

    #[test]
    fn histogram_is_cumulative() {
        let m = HttpMetrics::default();
        m.record(Route::Cat, 200, Duration::from_micros(300), false);
        m.record(Route::Cat, 400, Duration::from_secs(60), true);
        let mut out = String::new();
        m.render(&mut out);
        assert!(out.contains("route=\"/v1/fs/cat\",le=\"0.0005\"} 1\n"));
        assert!(out.contains("route=\"/v1/fs/cat\",le=\"+Inf\"} 2\n"));
        assert!(out.contains("hive_gateway_request_errors_total{route=\"/v1/fs/cat\"} 1\n"));
        assert!(out.contains("{route=\"/v1/fs/cat\",code=\"400\"} 1\n"));
    }
}
