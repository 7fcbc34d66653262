//! What a simulate run measured: latency histograms per operation, per
//! ramp step and per second, and the rows the summary and graph are made
//! of.
//!
//! Latencies go into HDR histograms (microseconds, three significant
//! digits, 1 µs to 1 h), so percentiles come from every sample, not from a
//! reservoir. Failed operations are recorded too: a p95 "over all samples"
//! includes the slow failures. This module keeps numbers; it does not
//! decide whether a run passed.

use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::time::Duration;

/// Largest latency a histogram holds (longer samples are clamped to it).
const MAX_LATENCY_US: u64 = 3_600_000_000;

/// Counts and latencies of one kind of operation (or of all of them).
#[derive(Clone, Debug)]
pub struct OpStats {
    hist: Histogram<u64>,
    ok: u64,
    err: u64,
    sum_us: u128,
    min_us: u64,
    max_us: u64,
    errors: BTreeMap<String, u64>,
}

/// The summary of one [`OpStats`], in seconds.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct OpSummary {
    pub count: u64,
    pub ok: u64,
    pub err: u64,
    pub avg_s: f64,
    pub min_s: f64,
    pub max_s: f64,
    pub p50_s: f64,
    pub p95_s: f64,
    pub p99_s: f64,
    /// Failures by kind (`quota/buffer-full`, `http-429`, `timeout`, ...).
    pub errors: BTreeMap<String, u64>,
}

fn histogram() -> Histogram<u64> {
    // 1 µs .. 1 h at 3 significant digits: low ≥ 1, high ≥ 2 × low and
    // sigfig ≤ 5, the only conditions under which construction fails.
    Histogram::new_with_bounds(1, MAX_LATENCY_US, 3)
        .expect("1..=3.6e9 at 3 significant digits is a valid histogram")
}

impl Default for OpStats {
    fn default() -> Self {
        OpStats {
            hist: histogram(),
            ok: 0,
            err: 0,
            sum_us: 0,
            min_us: u64::MAX,
            max_us: 0,
            errors: BTreeMap::new(),
        }
    }
}

impl OpStats {
    /// One finished operation; `error` names the failure.
    pub fn record(&mut self, latency: Duration, error: Option<&str>) {
        let us = u64::try_from(latency.as_micros())
            .unwrap_or(MAX_LATENCY_US)
            .clamp(1, MAX_LATENCY_US);
        self.hist.saturating_record(us);
        self.sum_us += u128::from(us);
        self.min_us = self.min_us.min(us);
        self.max_us = self.max_us.max(us);
        match error {
            None => self.ok += 1,
            Some(kind) => {
                self.err += 1;
                *self.errors.entry(kind.to_string()).or_insert(0) += 1;
            }
        }
    }

    pub fn count(&self) -> u64 {
        self.ok + self.err
    }

    pub fn err(&self) -> u64 {
        self.err
    }

    /// The `q` quantile (0..=1) in seconds; 0 with no samples.
    pub fn quantile_s(&self, q: f64) -> f64 {
        if self.count() == 0 {
            return 0.0;
        }
        // The histogram answers with its bucket's highest value, which may
        // pass the largest sample by a bucket width: clamp to what was seen.
        let v = self
            .hist
            .value_at_quantile(q)
            .clamp(self.min_us, self.max_us);
        us_to_s(v)
    }

    pub fn summary(&self) -> OpSummary {
        let count = self.count();
        if count == 0 {
            return OpSummary::default();
        }
        OpSummary {
            count,
            ok: self.ok,
            err: self.err,
            avg_s: self.sum_us as f64 / count as f64 / 1e6,
            min_s: us_to_s(self.min_us),
            max_s: us_to_s(self.max_us),
            p50_s: self.quantile_s(0.50),
            p95_s: self.quantile_s(0.95),
            p99_s: self.quantile_s(0.99),
            errors: self.errors.clone(),
        }
    }
}

fn us_to_s(us: u64) -> f64 {
    us as f64 / 1e6
}

/// A row of the ramp table (summary `ramp`, `steps.csv`).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct RampRow {
    pub step: usize,
    pub t_start_s: f64,
    pub t_end_s: f64,
    /// The step's worker target.
    pub workers: u32,
    /// Workers live when the step ended.
    pub workers_live: u32,
    pub intensity: f64,
    /// Offered rate, averaged over the step (ops/s).
    pub rps: f64,
    /// Operations finished per second of the step.
    pub achieved_rps: f64,
    pub ops: u64,
    pub ok: u64,
    pub err: u64,
    pub err_rate: f64,
    pub p95_s: f64,
    /// Paced slots skipped because `max-inflight` operations were running.
    pub lagged: u64,
}

/// One second of the run, for the graph (`timeline.csv`).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct TimelineRow {
    pub t_s: f64,
    pub workers: u32,
    pub offered_rps: f64,
    pub achieved_rps: f64,
    pub err_rate: f64,
    pub p95_ms: f64,
}

/// A ramp step or a one-second window being filled.
#[derive(Clone, Debug, Default)]
struct Window {
    stats: OpStats,
    offered: f64,
    lagged: u64,
}

/// Everything recorded during a run.
#[derive(Debug, Default)]
pub struct Recorder {
    ops: BTreeMap<&'static str, OpStats>,
    overall: OpStats,
    steps: BTreeMap<usize, Window>,
    second: Window,
    timeline: Vec<TimelineRow>,
}

impl Recorder {
    /// A finished operation of kind `name`, issued during `step`.
    pub fn record(&mut self, name: &'static str, step: usize, lat: Duration, err: Option<&str>) {
        self.ops.entry(name).or_default().record(lat, err);
        self.overall.record(lat, err);
        self.steps.entry(step).or_default().stats.record(lat, err);
        self.second.stats.record(lat, err);
    }

    /// Offered operations (rate × time) that belong to `step`.
    pub fn offer(&mut self, step: usize, ops: f64) {
        self.steps.entry(step).or_default().offered += ops;
        self.second.offered += ops;
    }

    /// A paced slot skipped because the in-flight bound was reached.
    pub fn lag(&mut self, step: usize) {
        self.steps.entry(step).or_default().lagged += 1;
        self.second.lagged += 1;
    }

    /// Starts the timeline: what came before (warm-up) is not a second of it.
    pub fn start_clock(&mut self) {
        self.second = Window::default();
    }

    /// Closes the current window as a timeline row ending at `t_s`.
    pub fn close_second(&mut self, t_s: f64, secs: f64, workers: u32) {
        let w = std::mem::take(&mut self.second);
        let secs = secs.max(1e-3);
        let n = w.stats.count();
        self.timeline.push(TimelineRow {
            t_s,
            workers,
            offered_rps: w.offered / secs,
            achieved_rps: n as f64 / secs,
            err_rate: ratio(w.stats.err(), n),
            p95_ms: w.stats.quantile_s(0.95) * 1000.0,
        });
    }

    /// The ramp row of a finished step.
    pub fn ramp_row(&self, step: &super::plan::Step, secs: f64, live: u32) -> RampRow {
        let empty = Window::default();
        let w = self.steps.get(&step.index).unwrap_or(&empty);
        let secs = secs.max(1e-3);
        let ops = w.stats.count();
        RampRow {
            step: step.index,
            t_start_s: step.start_s,
            t_end_s: step.start_s + secs,
            workers: step.workers,
            workers_live: live,
            intensity: step.intensity,
            rps: w.offered / secs,
            achieved_rps: ops as f64 / secs,
            ops,
            ok: ops - w.stats.err(),
            err: w.stats.err(),
            err_rate: ratio(w.stats.err(), ops),
            p95_s: w.stats.quantile_s(0.95),
            lagged: w.lagged,
        }
    }

    pub fn overall(&self) -> &OpStats {
        &self.overall
    }

    pub fn operations(&self) -> BTreeMap<String, OpSummary> {
        self.ops
            .iter()
            .map(|(k, v)| (k.to_string(), v.summary()))
            .collect()
    }

    pub fn timeline(&self) -> &[TimelineRow] {
        &self.timeline
    }
}

/// `part / whole`, 0 when `whole` is 0.
pub fn ratio(part: u64, whole: u64) -> f64 {
    if whole == 0 {
        0.0
    } else {
        part as f64 / whole as f64
    }
}

/// The first ramp row whose error rate reaches `rate`.
pub fn first_step_at_or_above(rows: &[RampRow], rate: f64) -> Option<&RampRow> {
    rows.iter().find(|r| r.ops > 0 && r.err_rate >= rate)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bench::simulate::plan::Step;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn percentiles_come_from_every_sample() {
        let mut s = OpStats::default();
        for n in 1..=1000 {
            s.record(ms(n), None);
        }
        let sum = s.summary();
        assert_eq!(sum.count, 1000);
        // Three significant digits: within 0.1% of the exact rank.
        assert!((sum.p95_s - 0.950).abs() <= 0.001, "p95 {}", sum.p95_s);
        assert!((sum.p50_s - 0.500).abs() <= 0.001, "p50 {}", sum.p50_s);
        assert!((sum.p99_s - 0.990).abs() <= 0.001, "p99 {}", sum.p99_s);
        assert!((sum.avg_s - 0.5005).abs() < 1e-9);
        assert_eq!((sum.min_s, sum.max_s), (0.001, 1.0));
    }

    #[test]
    fn a_slow_tail_moves_p95_but_not_p50() {
        let mut s = OpStats::default();
        for _ in 0..940 {
            s.record(ms(2), None);
        }
        for _ in 0..60 {
            s.record(ms(300), Some("timeout"));
        }
        let sum = s.summary();
        assert!((sum.p50_s - 0.002).abs() < 1e-5);
        assert!((sum.p95_s - 0.300).abs() < 0.001);
        assert_eq!(sum.errors.get("timeout"), Some(&60));
        assert_eq!((sum.ok, sum.err), (940, 60));
    }

    #[test]
    fn empty_stats_summarise_to_zeroes() {
        assert_eq!(OpStats::default().summary(), OpSummary::default());
        assert_eq!(ratio(3, 0), 0.0);
    }

    #[test]
    fn steps_and_seconds_collect_their_own_operations() {
        let mut r = Recorder::default();
        r.offer(0, 10.0);
        for _ in 0..8 {
            r.record("fs.ls", 0, ms(1), None);
        }
        r.record("fs.ls", 0, ms(1), Some("http-429"));
        r.lag(0);
        r.close_second(1.0, 1.0, 100);
        r.record("meta.bounds", 1, ms(4), None);
        let step = Step {
            index: 0,
            start_s: 0.0,
            end_s: 2.0,
            workers: 100,
            intensity: 1.0,
        };
        let row = r.ramp_row(&step, 2.0, 100);
        assert_eq!((row.ops, row.ok, row.err, row.lagged), (9, 8, 1, 1));
        assert!((row.rps - 5.0).abs() < 1e-9);
        assert!((row.achieved_rps - 4.5).abs() < 1e-9);
        assert!((row.err_rate - 1.0 / 9.0).abs() < 1e-9);
        let t = &r.timeline()[0];
        assert_eq!((t.workers, t.offered_rps, t.achieved_rps), (100, 10.0, 9.0));
        assert_eq!(r.overall().count(), 10);
        assert_eq!(r.operations().len(), 2);
    }

    #[test]
    fn the_first_step_over_one_percent_is_found() {
        let row = |step, ops, err| RampRow {
            step,
            ops,
            err,
            err_rate: ratio(err, ops),
            ..RampRow::default()
        };
        let rows = [row(0, 100, 0), row(1, 0, 0), row(2, 200, 1), row(3, 300, 3)];
        assert_eq!(first_step_at_or_above(&rows, 0.01).map(|r| r.step), Some(3));
        assert!(first_step_at_or_above(&rows[..3], 0.01).is_none());
    }
}
