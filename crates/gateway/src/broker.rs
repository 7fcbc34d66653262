//! The broker: a pool of Secure9P sessions shared by every HTTP request.
//!
//! The pool keeps `connections` attached queen sessions. Each session
//! pipelines up to `cap` requests (the hive's tags-in-flight bound: past it
//! the hive answers EBUSY, so the broker never hands out more). A request
//! checks out a [`Lease`] on the least-loaded live session; when every
//! session is full it waits in a bounded queue (full queue: refused at once
//! as back-pressure) until a lease is returned or its deadline passes.
//! Waiters are served first come, first served: a returned lease wakes the
//! oldest waiter, and newcomers do not take slots while others wait.
//!
//! One supervisor task per slot connects, reads `/proc/boot` to learn the
//! hive's bounds, watches the session and reconnects with exponential
//! back-off when it dies. While no session is live, checkouts fail at once
//! as unavailable rather than queueing: nothing waits on a hive that is not
//! there. When a session dies, the client wakes every request pending on it
//! with a transport error, so in-flight work fails promptly.
//!
//! There is no global lock on the request path: slot selection is a scan of
//! atomics, and a slot's client handle sits behind its own short read lock.
//!
//! # Limitations
//! A hive that accepts TCP but never answers is only detected by request
//! time-outs; the session is not recycled for it (TODO-hardening: close a
//! session after a run of time-outs with no reply at all).

use crate::boot::BootInfo;
use crate::config::PoolConfig;
use cohesix_client::{Client, ClientConfig, Error as ClientError};
use std::sync::atomic::{AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;
use tokio::sync::{watch, Notify};
use tokio::time::Instant;

/// How long a waiter sleeps without a wake-up before it looks at the pool
/// again: a backstop only (a cancelled waiter forwards its wake-up), kept
/// long so that waiters do not steal slots from the one that was woken.
const WAIT_BACKSTOP: Duration = Duration::from_millis(250);

/// How often a supervisor looks at an idle session's health.
const HEALTH_PERIOD: Duration = Duration::from_millis(250);

/// Why no lease was handed out.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CheckoutError {
    /// No session to the hive is live.
    #[error("hive unreachable")]
    Unavailable,
    /// Every session is full and the wait queue too.
    #[error("wait queue full")]
    QueueFull,
    /// The deadline passed while waiting for a free slot.
    #[error("timed out waiting for a session")]
    Timeout,
}

/// The broker's counters, as `/v1/meta/status` and `/metrics` show them.
#[derive(Debug, Default)]
pub struct BrokerStats {
    pub connects: AtomicU64,
    pub reconnects: AtomicU64,
    pub connect_failures: AtomicU64,
    pub checkouts: AtomicU64,
    pub waiters: AtomicUsize,
    pub waiters_high_water: AtomicUsize,
    pub in_flight: AtomicUsize,
    pub in_flight_high_water: AtomicUsize,
    /// Checkouts refused because the wait queue was full.
    pub exhausted: AtomicU64,
    /// Checkouts that waited past their deadline.
    pub timeouts: AtomicU64,
    /// Checkouts refused because no session was live.
    pub unavailable: AtomicU64,
    /// Idempotent operations run again after a transport failure.
    pub retries: AtomicU64,
}

struct Slot {
    client: RwLock<Option<Client>>,
    in_use: AtomicU32,
    /// Poked by a request that saw a transport error on this slot.
    suspect: Notify,
}

struct Inner {
    cfg: PoolConfig,
    slots: Box<[Slot]>,
    /// Leases per session: the configured tags, or fewer if the hive's
    /// bound is lower.
    cap: AtomicU32,
    wake: Notify,
    next: AtomicUsize,
    stats: BrokerStats,
    last_error: Mutex<Option<String>>,
    boot: RwLock<Option<Arc<BootInfo>>>,
    shutdown: watch::Sender<bool>,
}

/// The pool; clones share it. Dropping the last clone does not stop the
/// supervisors: call [`Broker::shutdown`].
#[derive(Clone)]
pub struct Broker {
    inner: Arc<Inner>,
}

/// One checked-out slot of one session. Returned to the pool on drop.
pub struct Lease {
    inner: Arc<Inner>,
    slot: usize,
    client: Client,
}

impl Lease {
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// Tells the slot's supervisor that a request saw the transport fail,
    /// so it looks at the session now instead of at its next tick.
    pub fn report_transport_failure(&self) {
        self.inner.slots[self.slot].suspect.notify_one();
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        self.inner.slots[self.slot]
            .in_use
            .fetch_sub(1, Ordering::AcqRel);
        self.inner.stats.in_flight.fetch_sub(1, Ordering::Relaxed);
        self.inner.wake.notify_one();
    }
}

/// Decrements the waiter count however the wait ends.
struct Waiting<'a>(&'a BrokerStats);

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0.waiters.fetch_sub(1, Ordering::Relaxed);
    }
}

impl Broker {
    /// Starts one supervisor per slot; sessions come up in the background.
    pub fn start(cfg: PoolConfig) -> Broker {
        let slots = (0..cfg.connections)
            .map(|_| Slot {
                client: RwLock::new(None),
                in_use: AtomicU32::new(0),
                suspect: Notify::new(),
            })
            .collect();
        let (shutdown, _) = watch::channel(false);
        let inner = Arc::new(Inner {
            cap: AtomicU32::new(u32::from(cfg.tags_per_connection)),
            cfg,
            slots,
            wake: Notify::new(),
            next: AtomicUsize::new(0),
            stats: BrokerStats::default(),
            last_error: Mutex::new(None),
            boot: RwLock::new(None),
            shutdown,
        });
        for slot in 0..inner.slots.len() {
            tokio::spawn(supervise(inner.clone(), slot));
        }
        Broker { inner }
    }

    /// Stops the supervisors and closes every session.
    pub fn shutdown(&self) {
        let _ = self.inner.shutdown.send(true);
        for slot in self.inner.slots.iter() {
            if let Some(client) = write_lock(&slot.client).take() {
                client.close();
            }
        }
        self.inner.wake.notify_waiters();
    }

    pub fn stats(&self) -> &BrokerStats {
        &self.inner.stats
    }

    /// Sessions attached and alive right now (a session whose connection
    /// died counts as gone before its supervisor has noticed).
    pub fn connected(&self) -> usize {
        self.inner.slots.iter().filter(|s| slot_live(s)).count()
    }

    /// Leases each session may hand out.
    pub fn cap(&self) -> u32 {
        self.inner.cap.load(Ordering::Relaxed)
    }

    pub fn config(&self) -> &PoolConfig {
        &self.inner.cfg
    }

    /// The last connect or session failure, for operators.
    pub fn last_error(&self) -> Option<String> {
        lock(&self.inner.last_error).clone()
    }

    /// What the hive's `/proc/boot` said at the last connect.
    pub fn boot(&self) -> Option<Arc<BootInfo>> {
        read_lock(&self.inner.boot).clone()
    }

    /// Counts an idempotent operation run again after a transport failure.
    pub fn count_retry(&self) {
        self.inner.stats.retries.fetch_add(1, Ordering::Relaxed);
    }

    /// Waits until every configured session is live or `within` passes;
    /// true when they all are. For start-up and tests.
    pub async fn wait_connected(&self, within: Duration) -> bool {
        let deadline = Instant::now() + within;
        // Polls every 10 ms until the deadline: bounded by `within`.
        while Instant::now() < deadline {
            if self.connected() == self.inner.slots.len() {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        self.connected() == self.inner.slots.len()
    }

    /// Hands out a lease on the least-loaded live session, waiting in the
    /// bounded queue until `deadline` when all are full.
    pub async fn checkout(&self, deadline: Instant) -> Result<Lease, CheckoutError> {
        let stats = &self.inner.stats;
        // No barging: while others wait, a newcomer queues behind them, so
        // a returned slot goes to the longest waiter (Notify wakes FIFO).
        let ahead = stats.waiters.load(Ordering::Relaxed);
        if ahead == 0 {
            if let Some(lease) = self.try_lease() {
                return Ok(lease);
            }
        }
        if !self.any_live() {
            stats.unavailable.fetch_add(1, Ordering::Relaxed);
            return Err(CheckoutError::Unavailable);
        }

        let waiting = stats.waiters.fetch_add(1, Ordering::Relaxed) + 1;
        let _guard = Waiting(stats);
        if waiting > self.inner.cfg.queue_depth {
            stats.exhausted.fetch_add(1, Ordering::Relaxed);
            return Err(CheckoutError::QueueFull);
        }
        stats
            .waiters_high_water
            .fetch_max(waiting, Ordering::Relaxed);

        let mut wait_first = ahead > 0;
        // Each pass either returns or sleeps until a wake-up, the backstop
        // or the deadline; the deadline ends the loop.
        loop {
            let notified = self.inner.wake.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if !wait_first {
                if let Some(lease) = self.try_lease() {
                    return Ok(lease);
                }
            }
            wait_first = false;
            if !self.any_live() {
                stats.unavailable.fetch_add(1, Ordering::Relaxed);
                return Err(CheckoutError::Unavailable);
            }
            let now = Instant::now();
            if now >= deadline {
                stats.timeouts.fetch_add(1, Ordering::Relaxed);
                return Err(CheckoutError::Timeout);
            }
            let wake_at = deadline.min(now + WAIT_BACKSTOP);
            tokio::select! {
                _ = &mut notified => {}
                _ = tokio::time::sleep_until(wake_at) => {}
            }
        }
    }

    /// True when some session is attached and its connection alive; a
    /// dead one counts as gone before its supervisor has noticed.
    fn any_live(&self) -> bool {
        self.inner.slots.iter().any(slot_live)
    }

    /// A lease on the live slot with the fewest leases out, if any slot
    /// has room.
    fn try_lease(&self) -> Option<Lease> {
        let inner = &self.inner;
        let n = inner.slots.len();
        let cap = inner.cap.load(Ordering::Relaxed);
        let start = inner.next.fetch_add(1, Ordering::Relaxed) % n;
        // A lost race on the chosen slot rescans; three scans are plenty
        // before the caller falls back to waiting.
        for _ in 0..3 {
            let mut best: Option<(usize, u32)> = None;
            for k in 0..n {
                let i = (start + k) % n;
                let used = inner.slots[i].in_use.load(Ordering::Acquire);
                if used >= cap || !slot_live(&inner.slots[i]) {
                    continue;
                }
                match best {
                    Some((_, fewest)) if fewest <= used => {}
                    _ => best = Some((i, used)),
                }
            }
            let (i, used) = best?;
            let slot = &inner.slots[i];
            if slot
                .in_use
                .compare_exchange(used, used + 1, Ordering::AcqRel, Ordering::Acquire)
                .is_err()
            {
                continue;
            }
            let Some(client) = read_lock(&slot.client).clone() else {
                slot.in_use.fetch_sub(1, Ordering::AcqRel);
                continue;
            };
            let stats = &inner.stats;
            stats.checkouts.fetch_add(1, Ordering::Relaxed);
            let now = stats.in_flight.fetch_add(1, Ordering::Relaxed) + 1;
            stats.in_flight_high_water.fetch_max(now, Ordering::Relaxed);
            return Some(Lease {
                inner: inner.clone(),
                slot: i,
                client,
            });
        }
        None
    }
}

fn slot_live(slot: &Slot) -> bool {
    read_lock(&slot.client)
        .as_ref()
        .is_some_and(Client::is_connected)
}

/// Keeps one slot connected until shutdown.
async fn supervise(inner: Arc<Inner>, slot: usize) {
    let mut shutdown = inner.shutdown.subscribe();
    let mut backoff = inner.cfg.reconnect_min;
    let mut attached_before = false;
    // Runs until shutdown: each pass connects and serves, or backs off.
    while !*shutdown.borrow() {
        let client = match connect(&inner).await {
            Ok(client) => client,
            Err(e) => {
                inner.stats.connect_failures.fetch_add(1, Ordering::Relaxed);
                // Once per failure streak, so a wrong --tcp-port or ticket is
                // visible in the log without a line per retry.
                if backoff == inner.cfg.reconnect_min {
                    tracing::warn!(
                        slot,
                        hive = %inner.cfg.hive_addr,
                        error = %e,
                        "cannot attach to the hive (is --tcp-port its Secure9P port, and the ticket its queen ticket?); retrying with back-off"
                    );
                }
                note_error(&inner, format!("connect to {}: {e}", inner.cfg.hive_addr));
                tokio::select! {
                    _ = tokio::time::sleep(backoff) => {}
                    _ = shutdown.changed() => {}
                }
                backoff = (backoff * 2).min(inner.cfg.reconnect_max);
                continue;
            }
        };
        backoff = inner.cfg.reconnect_min;
        install(&inner, slot, client.clone(), attached_before);
        attached_before = true;

        let reason = watch_session(&inner.slots[slot], &client, &mut shutdown).await;
        *write_lock(&inner.slots[slot].client) = None;
        client.close();
        inner.wake.notify_waiters();
        if let Some(reason) = reason {
            tracing::warn!(slot, hive = %inner.cfg.hive_addr, %reason, "hive session lost");
            note_error(&inner, format!("session lost: {reason}"));
        }
    }
}

/// Puts a fresh session in its slot; `again` when the slot had one before.
fn install(inner: &Inner, slot: usize, client: Client, again: bool) {
    let stats = &inner.stats;
    stats.connects.fetch_add(1, Ordering::Relaxed);
    if again {
        stats.reconnects.fetch_add(1, Ordering::Relaxed);
    }
    *write_lock(&inner.slots[slot].client) = Some(client);
    tracing::info!(slot, hive = %inner.cfg.hive_addr, "hive session attached");
    inner.wake.notify_waiters();
}

/// Waits until the session dies (returns why) or shutdown (returns None).
async fn watch_session(
    slot: &Slot,
    client: &Client,
    shutdown: &mut watch::Receiver<bool>,
) -> Option<String> {
    // Ends when the client reports the connection dead or on shutdown.
    loop {
        tokio::select! {
            _ = slot.suspect.notified() => {}
            _ = tokio::time::sleep(HEALTH_PERIOD) => {}
            _ = shutdown.changed() => return None,
        }
        if *shutdown.borrow() {
            return None;
        }
        if !client.is_connected() {
            return Some(String::from("connection closed"));
        }
    }
}

/// Connects, attaches and learns the hive's bounds; reconnects once with
/// fewer tags when the hive allows fewer than configured.
async fn connect(inner: &Inner) -> Result<Client, ClientError> {
    let tags = inner.cap.load(Ordering::Relaxed) as u16;
    let client = Client::connect(&inner.cfg.hive_addr, client_config(&inner.cfg, tags)).await?;
    let boot = match crate::boot::read(&client).await {
        Ok(boot) => boot,
        Err(e) => {
            client.close();
            return Err(e);
        }
    };
    let hive_tags = boot.bound("tags_in_flight").unwrap_or(u64::from(tags));
    let allowed = u64::from(tags).min(hive_tags).max(1) as u16;
    *write_lock(&inner.boot) = Some(Arc::new(boot));
    if allowed == tags {
        return Ok(client);
    }
    tracing::info!(
        configured = tags,
        hive = allowed,
        "hive allows fewer tags; reconnecting"
    );
    client.close();
    inner.cap.store(u32::from(allowed), Ordering::Relaxed);
    Client::connect(&inner.cfg.hive_addr, client_config(&inner.cfg, allowed)).await
}

fn client_config(cfg: &PoolConfig, tags: u16) -> ClientConfig {
    let mut c = ClientConfig::new(cfg.role.clone(), cfg.ticket.clone());
    c.msize = cfg.msize;
    c.timeout = cfg.request_timeout;
    c.max_in_flight = tags;
    // An operation holds at most two fids at once (a walk and its retry).
    c.max_fids = u32::from(tags) * 2 + 2;
    c
}

fn note_error(inner: &Inner, error: String) {
    *lock(&inner.last_error) = Some(error);
}

// Poisoning only means a panic elsewhere while a plain value was being
// replaced; the value is still whole, so recover it.
fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

fn read_lock<T>(m: &RwLock<T>) -> std::sync::RwLockReadGuard<'_, T> {
    m.read().unwrap_or_else(|p| p.into_inner())
}

fn write_lock<T>(m: &RwLock<T>) -> std::sync::RwLockWriteGuard<'_, T> {
    m.write().unwrap_or_else(|p| p.into_inner())
}
