//! The operation mix of a simulate run and how each operation is drawn.
//!
//! BENCHMARKS.md §2 gives relative weights; which entries exist depends on
//! what the hive serves (discovered at start). Each worker perturbs the
//! weights by a factor in [0.5, 1.5] and carries a load factor in
//! [0.6, 1.4]; both come from a hash of the run's seed and the worker's
//! number, so a worker keeps its character for the whole run without a
//! table per worker. Draws use rejection sampling against the base
//! weights, bounded to a few tries.
//!
//! Control files that this hive does not serve yet (`/queen/schedule/ctl`,
//! `/queen/lease/ctl`) are listed with their weights but never drawn: the
//! lines they take are defined by surfaces that do not exist here.

use rand::Rng;
use serde::Serialize;

pub const W_META_BOUNDS: f64 = 0.4;
pub const W_LS_TREE: f64 = 1.0;
pub const W_CAT_STATUS: f64 = 1.0;
pub const W_TAIL_LOG: f64 = 0.6;
pub const W_TAIL_TELEMETRY: f64 = 1.2;
pub const W_CAT_HOST: f64 = 0.5;
pub const W_TELEMETRY_SEGMENT: f64 = 0.3;
pub const W_TELEMETRY_APPEND: f64 = 0.4;
/// Weights of the entries for surfaces this hive does not serve yet.
pub const W_NOT_SERVED: [(&str, f64); 4] = [
    ("schedule write", 0.6),
    ("lease grant", 0.4),
    ("lease preempt", 0.3),
    ("lease quota", 0.2),
];

/// Most status files catted (the 12 of upstream's mix).
pub const MAX_STATUS_FILES: usize = 12;
/// Most `/host` and `/gpu` files catted.
pub const MAX_HOST_FILES: usize = 8;
/// Status files known by name; `/proc/schedule` and `/proc/lease` add what
/// they list.
pub const STATUS_FILES: [&str; 8] = [
    "/proc/root/reachable",
    "/proc/root/last_seen_ms",
    "/proc/root/cut_reason",
    "/proc/9p/session/active",
    "/proc/pressure/busy",
    "/proc/pressure/quota",
    "/proc/pressure/cut",
    "/proc/pressure/policy",
];

/// Rejection-sampling tries before the last candidate is taken as is.
const MAX_TRIES: usize = 16;
const PERTURB_MIN: f64 = 0.5;
const PERTURB_MAX: f64 = 1.5;
pub const LOAD_MIN: f64 = 0.6;
pub const LOAD_MAX: f64 = 1.4;

/// One kind of operation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum OpKind {
    MetaBounds,
    Ls(String),
    CatStatus(String),
    TailLog,
    TailTelemetry,
    CatHost(String),
    TelemetrySegment,
    TelemetryAppend,
    /// A large-telemetry scenario operation (segment, latest, artifact).
    Artifact,
}

impl OpKind {
    /// The name its statistics are kept under.
    pub fn stat_name(&self) -> &'static str {
        match self {
            OpKind::MetaBounds => "meta.bounds",
            OpKind::Ls(_) => "fs.ls",
            OpKind::CatStatus(_) => "fs.cat.status",
            OpKind::TailLog => "fs.tail.log",
            OpKind::TailTelemetry => "fs.tail.telemetry",
            OpKind::CatHost(_) => "fs.cat.host",
            OpKind::TelemetrySegment => "telemetry.segment",
            OpKind::TelemetryAppend => "telemetry.append",
            OpKind::Artifact => "telemetry.artifact",
        }
    }
}

/// One entry of the mix.
#[derive(Clone, Debug, PartialEq)]
pub struct Entry {
    pub kind: OpKind,
    pub weight: f64,
}

/// What the start checks found on the hive.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Trees {
    /// Names listed at `/`.
    pub root: Vec<String>,
    /// Status files that exist, at most [`MAX_STATUS_FILES`].
    pub status_files: Vec<String>,
    /// `/host` and `/gpu` files, at most [`MAX_HOST_FILES`].
    pub host_files: Vec<String>,
    /// `/queen/telemetry` exists.
    pub ingest: bool,
    /// `/worker/<id>` aliases exist.
    pub worker_alias: bool,
    /// Control files of later waves that exist (never drawn; see module).
    pub not_served: Vec<String>,
}

/// The mix of a worker-capacity run for what the hive serves.
pub fn capacity_mix(trees: &Trees) -> Vec<Entry> {
    let mut mix = vec![Entry {
        kind: OpKind::MetaBounds,
        weight: W_META_BOUNDS,
    }];
    for name in &trees.root {
        mix.push(Entry {
            kind: OpKind::Ls(format!("/{name}")),
            weight: W_LS_TREE,
        });
    }
    for path in &trees.status_files {
        mix.push(Entry {
            kind: OpKind::CatStatus(path.clone()),
            weight: W_CAT_STATUS,
        });
    }
    if trees.root.iter().any(|n| n == "log") {
        mix.push(Entry {
            kind: OpKind::TailLog,
            weight: W_TAIL_LOG,
        });
    }
    if trees.worker_alias {
        mix.push(Entry {
            kind: OpKind::TailTelemetry,
            weight: W_TAIL_TELEMETRY,
        });
    }
    for path in &trees.host_files {
        mix.push(Entry {
            kind: OpKind::CatHost(path.clone()),
            weight: W_CAT_HOST,
        });
    }
    if trees.ingest {
        mix.push(Entry {
            kind: OpKind::TelemetrySegment,
            weight: W_TELEMETRY_SEGMENT,
        });
        mix.push(Entry {
            kind: OpKind::TelemetryAppend,
            weight: W_TELEMETRY_APPEND,
        });
    }
    mix
}

/// The weighted entries with their running sums.
#[derive(Clone, Debug)]
pub struct Mix {
    entries: Vec<Entry>,
    cumulative: Vec<f64>,
    seed: u64,
}

impl Mix {
    /// Entries with a weight ≤ 0 (or not finite) are dropped.
    pub fn new(entries: Vec<Entry>, seed: u64) -> Mix {
        let entries: Vec<Entry> = entries
            .into_iter()
            .filter(|e| e.weight.is_finite() && e.weight > 0.0)
            .collect();
        let mut sum = 0.0;
        let cumulative = entries
            .iter()
            .map(|e| {
                sum += e.weight;
                sum
            })
            .collect();
        Mix {
            entries,
            cumulative,
            seed,
        }
    }

    pub fn entries(&self) -> &[Entry] {
        &self.entries
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Draws an entry for `worker`: base weight × that worker's
    /// perturbation of the entry. `None` only for an empty mix.
    pub fn pick<R: Rng>(&self, rng: &mut R, worker: u64) -> Option<&Entry> {
        let total = *self.cumulative.last()?;
        let mut index = 0;
        for _ in 0..MAX_TRIES {
            let x = rng.gen::<f64>() * total;
            index = self.cumulative.partition_point(|&c| c <= x);
            index = index.min(self.entries.len() - 1);
            let keep = perturbation(self.seed, worker, index) / PERTURB_MAX;
            if rng.gen::<f64>() < keep {
                break;
            }
        }
        self.entries.get(index)
    }
}

/// Worker `worker`'s factor on entry `index`, in [0.5, 1.5].
pub fn perturbation(seed: u64, worker: u64, index: usize) -> f64 {
    let h = splitmix64(seed ^ splitmix64(worker) ^ splitmix64(0x5EED_0000 + index as u64));
    PERTURB_MIN + unit(h) * (PERTURB_MAX - PERTURB_MIN)
}

/// Worker `worker`'s share of the offered load, in [0.6, 1.4].
pub fn load_factor(seed: u64, worker: u64) -> f64 {
    let h = splitmix64(seed.rotate_left(17) ^ splitmix64(worker));
    LOAD_MIN + unit(h) * (LOAD_MAX - LOAD_MIN)
}

/// A hash → [0, 1).
fn unit(h: u64) -> f64 {
    (h >> 11) as f64 / (1u64 << 53) as f64
}

/// The splitmix64 finaliser: a cheap, well-mixed 64-bit hash.
fn splitmix64(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::rngs::StdRng;
    use rand::SeedableRng;

    fn trees() -> Trees {
        Trees {
            root: ["proc", "queen", "shard", "log", "worker"]
                .map(String::from)
                .to_vec(),
            status_files: STATUS_FILES.map(String::from).to_vec(),
            host_files: Vec::new(),
            ingest: true,
            worker_alias: true,
            not_served: Vec::new(),
        }
    }

    #[test]
    fn capacity_mix_has_the_published_weights_for_what_exists() {
        let mix = capacity_mix(&trees());
        let weight = |k: &OpKind| mix.iter().find(|e| &e.kind == k).map(|e| e.weight);
        assert_eq!(weight(&OpKind::MetaBounds), Some(0.4));
        assert_eq!(weight(&OpKind::Ls("/worker".into())), Some(1.0));
        assert_eq!(
            weight(&OpKind::CatStatus("/proc/pressure/cut".into())),
            Some(1.0)
        );
        assert_eq!(weight(&OpKind::TailLog), Some(0.6));
        assert_eq!(weight(&OpKind::TailTelemetry), Some(1.2));
        assert_eq!(weight(&OpKind::TelemetrySegment), Some(0.3));
        assert_eq!(weight(&OpKind::TelemetryAppend), Some(0.4));
        // 1 bounds + 5 trees + 8 status + log + telemetry + 2 ingest.
        assert_eq!(mix.len(), 18);
        let total: f64 = mix.iter().map(|e| e.weight).sum();
        assert!((total - 15.9).abs() < 1e-9);
    }

    #[test]
    fn absent_trees_drop_their_entries() {
        let t = Trees {
            root: vec!["proc".into()],
            ..Trees::default()
        };
        let mix = capacity_mix(&t);
        assert_eq!(mix.len(), 2);
        assert!(mix.iter().all(|e| e.kind != OpKind::TailLog));
    }

    #[test]
    fn draws_follow_the_weights_averaged_over_workers() {
        let entries = vec![
            Entry {
                kind: OpKind::MetaBounds,
                weight: 1.0,
            },
            Entry {
                kind: OpKind::TailLog,
                weight: 3.0,
            },
            Entry {
                kind: OpKind::TailTelemetry,
                weight: 0.0,
            },
        ];
        let mix = Mix::new(entries, 7);
        assert_eq!(mix.entries().len(), 2, "zero weights are dropped");
        let mut rng = StdRng::seed_from_u64(1);
        let mut tail = 0u32;
        let n: u32 = 40_000;
        for i in 0..n {
            let e = mix.pick(&mut rng, u64::from(i % 1000)).unwrap();
            tail += u32::from(e.kind == OpKind::TailLog);
        }
        let share = f64::from(tail) / f64::from(n);
        assert!((share - 0.75).abs() < 0.03, "tail share {share}");
    }

    #[test]
    fn a_worker_keeps_its_perturbation_and_load_factor() {
        for w in 0..2000 {
            let p = perturbation(3, w, 4);
            assert!((PERTURB_MIN..=PERTURB_MAX).contains(&p));
            assert_eq!(p, perturbation(3, w, 4));
            let l = load_factor(3, w);
            assert!((LOAD_MIN..=LOAD_MAX).contains(&l));
        }
        let mean: f64 = (0..10_000).map(|w| load_factor(9, w)).sum::<f64>() / 10_000.0;
        assert!((mean - 1.0).abs() < 0.02, "mean load factor {mean}");
        assert_ne!(load_factor(1, 5), load_factor(2, 5));
    }

    #[test]
    fn empty_mix_draws_nothing() {
        let mix = Mix::new(Vec::new(), 0);
        assert!(mix.is_empty());
        assert!(mix.pick(&mut StdRng::seed_from_u64(0), 1).is_none());
    }
}
