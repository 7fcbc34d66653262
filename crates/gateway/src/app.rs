//! The state every handler shares, and the one path every fs request takes
//! to the hive: deadline, checkout, operation, one retry for reads.
//!
//! A request's deadline covers its wait for a session slot and every 9P
//! round trip. Reads (`ls`, `cat`, `tail`) that fail because the session
//! died are run once more on another session; an `echo` never is, since it
//! may have landed.

use crate::broker::Broker;
use crate::config::GatewayConfig;
use crate::error::FsError;
use crate::metrics::{self, HttpMetrics};
use crate::ops::OpError;
use cohesix_client::Client;
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;

/// Shared state; clones are cheap.
#[derive(Clone)]
pub struct App {
    inner: Arc<AppInner>,
}

pub struct AppInner {
    pub cfg: GatewayConfig,
    pub broker: Broker,
    pub metrics: HttpMetrics,
    /// BLAKE3 of the request token, compared in constant time.
    pub token_hash: [u8; 32],
    pub request_ids: AtomicU64,
    pub failure_log: RateLimit,
    /// One permit per artifact stream (upload or read-back) allowed now.
    pub artifact_slots: Arc<tokio::sync::Semaphore>,
    hive_metrics: tokio::sync::Mutex<Option<(Instant, String)>>,
}

impl std::ops::Deref for App {
    type Target = AppInner;
    fn deref(&self) -> &AppInner {
        &self.inner
    }
}

impl App {
    pub fn new(cfg: GatewayConfig, broker: Broker) -> App {
        let token_hash = *blake3::hash(cfg.request_token.as_bytes()).as_bytes();
        let streams = cfg.http.artifact_streams;
        App {
            inner: Arc::new(AppInner {
                cfg,
                broker,
                metrics: HttpMetrics::default(),
                token_hash,
                request_ids: AtomicU64::new(1),
                failure_log: RateLimit::new(20),
                artifact_slots: Arc::new(tokio::sync::Semaphore::new(streams)),
                hive_metrics: tokio::sync::Mutex::new(None),
            }),
        }
    }

    /// Runs `op` on a leased session within the request deadline.
    /// `idempotent` operations get one more try after a transport failure.
    pub async fn run<T, F, Fut>(&self, idempotent: bool, op: F) -> Result<T, FsError>
    where
        F: Fn(Client) -> Fut,
        Fut: Future<Output = Result<T, OpError>>,
    {
        let deadline = Instant::now() + self.cfg.http.request_timeout;
        let attempts = async {
            let mut retried = false;
            // At most two passes: the first, and one retry for reads.
            loop {
                let lease = self.broker.checkout(deadline).await?;
                let result = op(lease.client().clone()).await;
                let e = match result {
                    Ok(v) => return Ok(v),
                    Err(e) => e,
                };
                let transport = matches!(&e, OpError::Client(c) if c.is_transport());
                if !transport {
                    return Err(FsError::from(&e));
                }
                lease.report_transport_failure();
                drop(lease);
                if !idempotent || retried {
                    return Err(FsError::from(&e));
                }
                retried = true;
                self.broker.count_retry();
            }
        };
        match tokio::time::timeout_at(deadline, attempts).await {
            Ok(result) => result,
            Err(_) => {
                self.broker.stats().timeouts.fetch_add(1, Ordering::Relaxed);
                Err(FsError::Timeout)
            }
        }
    }

    /// The hive's `/proc` counters as Prometheus text, read at most once
    /// per `metrics_cache`.
    pub async fn hive_metrics(&self) -> String {
        let mut cached = self.hive_metrics.lock().await;
        if let Some((at, text)) = cached.as_ref() {
            if at.elapsed() < self.cfg.http.metrics_cache {
                return text.clone();
            }
        }
        let text = self.scrape_hive().await;
        *cached = Some((Instant::now(), text.clone()));
        text
    }

    async fn scrape_hive(&self) -> String {
        let read = self
            .run(true, |client| async move {
                let mut out = String::new();
                for (path, group) in metrics::HIVE_FILES {
                    match client.read_all(path, 4096).await {
                        Ok(data) => {
                            let text = String::from_utf8_lossy(&data);
                            metrics::render_proc(group, path, &text, &mut out);
                        }
                        // A file this hive does not have is skipped.
                        Err(e) if e.class().is_some() => {}
                        Err(e) => return Err(OpError::Client(e)),
                    }
                }
                Ok(out)
            })
            .await;
        let up = "# HELP cohesix_hive_up whether the last read of the hive's /proc worked\n\
                  # TYPE cohesix_hive_up gauge\n";
        match read {
            Ok(text) => format!("{up}cohesix_hive_up 1\n{text}"),
            Err(e) => {
                tracing::debug!(detail = e.detail(), "hive metrics unavailable");
                format!("{up}cohesix_hive_up 0\n")
            }
        }
    }
}

/// Lets at most `per_second` events through each second; counts the rest.
pub struct RateLimit {
    per_second: u64,
    window: AtomicU64,
    used: AtomicU64,
    suppressed: AtomicU64,
    epoch: std::time::Instant,
}

impl RateLimit {
    pub fn new(per_second: u64) -> RateLimit {
        RateLimit {
            per_second,
            window: AtomicU64::new(0),
            used: AtomicU64::new(0),
            suppressed: AtomicU64::new(0),
            epoch: std::time::Instant::now(),
        }
    }

    /// `Some(suppressed since the last allowed event)` when allowed.
    pub fn allow(&self) -> Option<u64> {
        let now = self.epoch.elapsed().as_secs();
        if self.window.swap(now, Ordering::Relaxed) != now {
            self.used.store(0, Ordering::Relaxed);
        }
        if self.used.fetch_add(1, Ordering::Relaxed) < self.per_second {
            Some(self.suppressed.swap(0, Ordering::Relaxed))
        } else {
            self.suppressed.fetch_add(1, Ordering::Relaxed);
            None
        }
    }
}

/// Milliseconds of a duration, saturating.
pub fn ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}
