//! The HTTP edge: router, authentication, the per-request log line and
//! metrics, and an accept loop that bounds connections and slow clients.
//!
//! Connections are served by hyper's HTTP/1 server with a header read
//! timeout (which also ends idle keep-alive connections, since the wait for
//! the next request's headers starts when a response is written). Past
//! `max_connections`, new connections are accepted and closed at once, so
//! a flood of idle sockets cannot take memory without bound. Request bodies
//! are bounded by the handlers themselves, before anything is buffered;
//! an artifact upload is streamed, never buffered, so it has no body limit.

use crate::app::App;
use crate::broker::Broker;
use crate::config::{ConfigError, GatewayConfig};
use crate::metrics::Route;
use crate::routes::{self, Outcome};
use crate::telemetry;
use axum::extract::{Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::Response;
use axum::routing::{get, post, put};
use axum::Router;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};
use subtle::ConstantTimeEq;
use tokio::net::TcpListener;
use tokio::sync::{watch, Semaphore};

/// A running gateway.
pub struct Gateway {
    pub addr: SocketAddr,
    app: App,
    stop: watch::Sender<bool>,
    accept: tokio::task::JoinHandle<()>,
}

impl Gateway {
    /// Checks the configuration, starts the broker and serves on
    /// `listener`. The hive need not be up: routes answer 503 until a
    /// session attaches.
    pub async fn start(cfg: GatewayConfig, listener: TcpListener) -> Result<Gateway, StartError> {
        cfg.check()?;
        let addr = listener.local_addr().map_err(StartError::Listen)?;
        let broker = Broker::start(cfg.pool.clone());
        let app = App::new(cfg, broker);
        let (stop, stopped) = watch::channel(false);
        let accept = tokio::spawn(accept_loop(listener, app.clone(), stopped));
        tracing::info!(%addr, hive = %app.cfg.pool.hive_addr, "hive-gateway listening");
        Ok(Gateway {
            addr,
            app,
            stop,
            accept,
        })
    }

    pub fn broker(&self) -> &Broker {
        &self.app.broker
    }

    /// Stops accepting, lets open connections finish their current
    /// request (bounded by the request timeout), and closes the sessions.
    pub async fn shutdown(self) {
        let _ = self.stop.send(true);
        let _ = self.accept.await;
        self.app.broker.shutdown();
    }
}

/// Why a gateway did not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("cannot read the listener's address: {0}")]
    Listen(std::io::Error),
}

/// The routes, with auth on everything but the documentation.
pub fn router(app: App) -> Router {
    let protected = Router::new()
        .route("/v1/fs/ls", get(routes::ls))
        .route("/v1/fs/cat", get(routes::cat))
        .route("/v1/fs/tail", get(routes::tail))
        .route("/v1/fs/echo", post(routes::echo))
        .route("/v1/telemetry/:device/segment", post(telemetry::segment))
        .route("/v1/telemetry/:device/records", post(telemetry::records))
        .route("/v1/telemetry/:device/latest", get(telemetry::latest))
        .route(
            "/v1/telemetry/:device/artifact",
            put(telemetry::put_artifact),
        )
        .route(
            "/v1/telemetry/:device/artifacts/:id",
            get(telemetry::get_artifact),
        )
        .route("/v1/meta/bounds", get(routes::bounds))
        .route("/v1/meta/status", get(routes::status))
        .route("/metrics", get(routes::metrics))
        .route_layer(middleware::from_fn_with_state(app.clone(), authenticate));
    Router::new()
        .merge(protected)
        .route("/v1/openapi.yaml", get(routes::openapi_yaml))
        .route("/docs", get(routes::docs_page))
        .fallback(routes::not_found)
        .layer(middleware::from_fn_with_state(app.clone(), observe))
        .with_state(app)
}

/// Accepts `Authorization: Bearer <token>` or `x-cohesix-auth: <token>`.
async fn authenticate(State(app): State<App>, req: Request, next: Next) -> Response {
    let headers = req.headers();
    let bearer = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(bearer_token);
    let presented = bearer.or_else(|| headers.get("x-cohesix-auth").and_then(|v| v.to_str().ok()));
    let Some(presented) = presented else {
        return unauthorized(
            "missing-token",
            "no Authorization: Bearer or x-cohesix-auth",
        );
    };
    // Hashing first makes the comparison independent of the lengths.
    let hash = blake3::hash(presented.trim().as_bytes());
    if !bool::from(hash.as_bytes().ct_eq(&app.token_hash)) {
        return unauthorized("invalid-token", "token does not match");
    }
    next.run(req).await
}

/// The token of an `Authorization` value whose scheme is `Bearer`, in any
/// case (RFC 9110 §11.1: the scheme is case-insensitive).
fn bearer_token(value: &str) -> Option<&str> {
    let (scheme, token) = value.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then_some(token)
}

fn unauthorized(detail: &str, why: &str) -> Response {
    let text = format!("ERR AUTH reason=policy detail={detail} error={why}");
    let mut response = routes::problem(StatusCode::UNAUTHORIZED, &text);
    let challenge = HeaderValue::from_static("Bearer realm=\"hive-gateway\"");
    response
        .headers_mut()
        .insert(header::WWW_AUTHENTICATE, challenge);
    response
}

/// Request id, metrics and one log line per request (and a rate-limited
/// warning per failure). Never logs headers, so tokens stay out of logs.
async fn observe(State(app): State<App>, req: Request, next: Next) -> Response {
    let id = app.request_ids.fetch_add(1, Ordering::Relaxed);
    let route = Route::of(req.uri().path());
    let method = req.method().clone();
    let started = Instant::now();

    let mut response = next.run(req).await;

    let latency = started.elapsed();
    let code = response.status().as_u16();
    let outcome = response.extensions_mut().remove::<Outcome>();
    let path = outcome.as_ref().map_or("", |o| o.path.as_str());
    let error = outcome.as_ref().and_then(|o| o.error.as_deref());
    let failed = code >= 400 || error.is_some();
    app.metrics.record(route, code, latency, failed);
    let latency_us = u64::try_from(latency.as_micros()).unwrap_or(u64::MAX);
    tracing::info!(
        request_id = id,
        %method,
        route = route.name(),
        path,
        status = code,
        latency_us,
        "request"
    );
    if failed {
        if let Some(suppressed) = app.failure_log.allow() {
            tracing::warn!(
                request_id = id,
                route = route.name(),
                path,
                status = code,
                error = error.unwrap_or(""),
                suppressed,
                "request failed"
            );
        }
    }
    if let Ok(v) = HeaderValue::from_str(&id.to_string()) {
        response.headers_mut().insert("x-request-id", v);
    }
    response
}

async fn accept_loop(listener: TcpListener, app: App, mut stopped: watch::Receiver<bool>) {
    let limits = app.cfg.http.clone();
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    let service = TowerToHyperService::new(router(app.clone()));
    let refused_logged = crate::app::RateLimit::new(1);
    // Runs until stopped; each pass accepts one connection.
    loop {
        let accepted = tokio::select! {
            a = listener.accept() => a,
            _ = stopped.changed() => break,
        };
        let (stream, peer) = match accepted {
            Ok(a) => a,
            Err(e) => {
                // Out of descriptors or similar: pause instead of spinning.
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let Ok(permit) = slots.clone().try_acquire_owned() else {
            app.metrics
                .connections_refused
                .fetch_add(1, Ordering::Relaxed);
            if let Some(suppressed) = refused_logged.allow() {
                tracing::warn!(%peer, limit = limits.max_connections, suppressed,
                    "connection refused: connection limit");
            }
            drop(stream);
            continue;
        };
        let _ = stream.set_nodelay(true);
        let service = service.clone();
        let app = app.clone();
        let mut stop = stopped.clone();
        let header_timeout = limits.header_timeout;
        tokio::spawn(async move {
            app.metrics.connections_open.fetch_add(1, Ordering::Relaxed);
            app.metrics
                .connections_total
                .fetch_add(1, Ordering::Relaxed);
            let conn = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(header_timeout)
                .max_buf_size(64 * 1024)
                .serve_connection(TokioIo::new(stream), service);
            tokio::pin!(conn);
            let ended = tokio::select! {
                r = conn.as_mut() => r,
                _ = stop.changed() => {
                    conn.as_mut().graceful_shutdown();
                    conn.as_mut().await
                }
            };
            if let Err(e) = ended {
                tracing::debug!(%peer, error = %e, "http connection ended with an error");
            }
            app.metrics.connections_open.fetch_sub(1, Ordering::Relaxed);
            drop(permit);
        });
    }
}

#[cfg(test)]
mod bearer_tests {
    use super::bearer_token;

    #[test]
    fn bearer_scheme_is_case_insensitive() {
        for v in ["Bearer t0k", "bearer t0k", "BEARER t0k"] {
            assert_eq!(bearer_token(v), Some("t0k"), "{v}");
        }
        assert_eq!(bearer_token("Basic t0k"), None);
        assert_eq!(bearer_token("Bearert0k"), None);
    }
}
