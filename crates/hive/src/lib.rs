//! The hive's edge: sockets, the clock, the data directory.
//!
//! Everything with I/O that the core must not have lives here: the
//! Secure9P listener, the line console, the timer that advances the core's
//! clock, the durable store and the secrets file. The core itself sits
//! behind one mutex; every transport drives it through the same calls.

pub mod console;
pub mod ingest_store;
pub mod ninep;
pub mod secrets;
pub mod store;

use anyhow::Context;
use cohesix_core::{Hive, HiveInit};
use cohesix_manifest::Manifest;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::AtomicU64;
use std::sync::atomic::AtomicUsize;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::net::TcpListener;
use tokio::sync::watch;

/// How often the edge advances the core's clock.
pub const CLOCK_PERIOD: Duration = Duration::from_millis(20);

/// What a hive needs to start.
#[derive(Debug, Clone)]
pub struct HiveConfig {
    pub manifest: Manifest,
    /// `embedded-defaults` or the manifest's path.
    pub manifest_name: String,
    pub data_dir: PathBuf,
}

/// State shared by every connection task.
pub struct Shared {
    hive: Mutex<Hive>,
    pub manifest: Manifest,
    /// The token console clients present with `AUTH`.
    console_token: String,
    pub ninep_connections: AtomicUsize,
    pub console_connections: AtomicUsize,
    pub outstanding: AtomicU64,
    pub shutdown: watch::Sender<bool>,
}

impl Shared {
    /// Runs `f` with the hive locked. A poisoned lock (a panic while held)
    /// is recovered: the core's state is still consistent between calls.
    pub fn with_hive<T>(&self, f: impl FnOnce(&mut Hive) -> T) -> T {
        let mut guard = match self.hive.lock() {
            Ok(g) => g,
            Err(poisoned) => poisoned.into_inner(),
        };
        f(&mut guard)
    }

    /// Compares a presented console token in constant time.
    pub fn console_token_matches(&self, presented: &str) -> bool {
        use subtle_eq::ct_eq;
        ct_eq(presented.as_bytes(), self.console_token.as_bytes())
    }
}

mod subtle_eq {
    /// Constant-time equality for secrets of possibly different lengths.
    pub fn ct_eq(a: &[u8], b: &[u8]) -> bool {
        let a = blake(a);
        let b = blake(b);
        a.iter()
            .zip(b.iter())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
    }

    fn blake(x: &[u8]) -> [u8; 32] {
        // Hashing first makes the comparison length-independent.
        let mut out = [0u8; 32];
        let digest = <sha2::Sha256 as sha2::Digest>::digest(x);
        out.copy_from_slice(&digest);
        out
    }
}

/// A running hive.
pub struct RunningHive {
    pub ninep_addr: SocketAddr,
    pub console_addr: Option<SocketAddr>,
    pub shared: Arc<Shared>,
    pub secrets: secrets::SecretsFile,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl RunningHive {
    /// Asks every task to stop and waits for them.
    pub async fn shutdown(self) {
        let _ = self.shared.shutdown.send(true);
        for t in self.tasks {
            let _ = t.await;
        }
        // Connection tasks hold the shared state, and with it the data
        // directory's database lock, until they see the shutdown: wait for
        // them (bounded), so a hive restarted on the same directory opens.
        for _ in 0..500 {
            if Arc::strong_count(&self.shared) == 1 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        self.shared.with_hive(|h| h.shutdown_note());
    }
}

/// Milliseconds since the Unix epoch (tickets carry absolute times).
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// Validates the manifest, opens the data directory, binds the listeners
/// and starts serving.
pub async fn start(config: HiveConfig) -> anyhow::Result<RunningHive> {
    config.manifest.validate().context("manifest refused")?;
    let dev = config.manifest.hive.dev_mode;
    create_private_dir(&config.data_dir)?;
    let secrets = secrets::load_or_create(&config.data_dir, dev).context("secrets refused")?;
    let store = store::DiskStore::open(&config.data_dir)?;
    let next_worker_id = store
        .next_worker_id()
        .map_err(|e| anyhow::anyhow!("cannot read worker id reservation: {e}"))?;

    let ninep_listener = TcpListener::bind(&config.manifest.ninep.listen)
        .await
        .with_context(|| {
            format!(
                "cannot listen on ninep.listen={} (another hive on this port? \
                 pick a free one: `cohesix up --ninep-listen 127.0.0.1:PORT`)",
                config.manifest.ninep.listen
            )
        })?;
    let console_listener = match config.manifest.console.listen.as_str() {
        "" => None,
        addr => Some(TcpListener::bind(addr).await.with_context(|| {
            format!(
                "cannot listen on console.listen={addr} (another hive on this port? \
                 pick a free one: `cohesix up --console-listen 127.0.0.1:PORT`)"
            )
        })?),
    };

    let mut hive = Hive::new(HiveInit {
        manifest: config.manifest.clone(),
        manifest_name: config.manifest_name.clone(),
        secrets: secrets.to_core(),
        next_worker_id,
        store: Box::new(store),
        now_ms: now_ms(),
    });
    let telemetry_dir = config.data_dir.join("telemetry");
    let ingest = ingest_store::DiskIngest::open(&telemetry_dir)?;
    hive.set_ingest_store(Box::new(ingest))
        .map_err(|e| anyhow::anyhow!("cannot recover telemetry: {e}"))?;
    let (shutdown, _) = watch::channel(false);
    let shared = Arc::new(Shared {
        hive: Mutex::new(hive),
        manifest: config.manifest.clone(),
        console_token: secrets.console_token.clone(),
        ninep_connections: AtomicUsize::new(0),
        console_connections: AtomicUsize::new(0),
        outstanding: AtomicU64::new(0),
        shutdown,
    });

    let ninep_addr = ninep_listener.local_addr()?;
    let mut tasks = vec![
        tokio::spawn(ninep::serve(ninep_listener, shared.clone())),
        tokio::spawn(clock(shared.clone())),
    ];
    let console_addr = match console_listener {
        Some(l) => {
            let addr = l.local_addr()?;
            tasks.push(tokio::spawn(console::serve(l, shared.clone())));
            Some(addr)
        }
        None => None,
    };
    tracing::info!(%ninep_addr, console = ?console_addr, data_dir = %config.data_dir.display(), "hive online");
    Ok(RunningHive {
        ninep_addr,
        console_addr,
        shared,
        secrets,
        tasks,
    })
}

/// Creates the data directory with mode 0700 when it is missing.
fn create_private_dir(dir: &std::path::Path) -> anyhow::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    if dir.is_dir() {
        return Ok(());
    }
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .with_context(|| format!("cannot create data directory {}", dir.display()))
}

/// Advances the core's clock every [`CLOCK_PERIOD`].
async fn clock(shared: Arc<Shared>) {
    let mut tick = tokio::time::interval(CLOCK_PERIOD);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let mut shutdown = shared.shutdown.subscribe();
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = shutdown.changed() => return,
        }
        let now = now_ms();
        shared.with_hive(|h| h.advance(now));
    }
}
