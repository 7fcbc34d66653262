//! The shape of a simulate run: presets, ramp steps and the offered rate.
//!
//! Pure arithmetic (BENCHMARKS.md §2): a run is cut into steps of
//! `step_secs`; at step `i` of `n` the progress is `i / (n - 1)`, the worker
//! target is `min + (max - min) × progress` (rounded) and the intensity
//! moves from `intensity_from` to `intensity_to` the same way. The offered
//! rate is `base_rps × intensity × workers`. Nothing here sleeps or talks
//! to a hive; the engine asks this module what the current step wants.

use serde::Serialize;

/// Requests per second one worker offers at intensity 1 (as upstream).
pub const BASE_RPS: f64 = 0.1;

/// The published run shapes and ours (BENCHMARKS.md §1), before scaling.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Preset {
    /// 8 → 1000 workers, intensity 4, 8 min.
    #[value(name = "ramp-1k")]
    Ramp1k,
    /// 1000 workers, intensity 1, 1 min.
    #[value(name = "fixed-1k")]
    Fixed1k,
    /// 8 → 1500 workers, intensity 4, 8 min.
    #[value(name = "ramp-1p5k")]
    Ramp1p5k,
    /// 1500 workers, intensity 1, 1 min.
    #[value(name = "fixed-1p5k")]
    Fixed1p5k,
    /// 1200 workers, intensity 4, 2 min.
    #[value(name = "fixed-1200-i4")]
    Fixed1200I4,
    /// 10,000 workers, intensity 4, 2 min (ours; bar: error rate < 0.1%).
    #[value(name = "fixed-10k-i4")]
    Fixed10kI4,
    /// 8 → 100,000 workers, intensity 1, 10 min (ours: find the knee).
    #[value(name = "ramp-100k")]
    Ramp100k,
}

/// The large-telemetry scenarios: what one operation appends.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Scenario {
    #[value(name = "telemetry-1mb")]
    Telemetry1mb,
    #[value(name = "telemetry-10mb")]
    Telemetry10mb,
    #[value(name = "telemetry-100mb")]
    Telemetry100mb,
    #[value(name = "telemetry-1gb")]
    Telemetry1gb,
}

/// What a preset or scenario fixes unless a flag overrides it.
#[derive(Clone, Debug, PartialEq)]
pub struct Shape {
    pub name: &'static str,
    pub min_workers: u32,
    pub max_workers: u32,
    pub intensity_from: f64,
    pub intensity_to: f64,
    pub duration_secs: f64,
    pub step_secs: f64,
    pub fast_ramp: bool,
    pub no_retries: bool,
    /// Largest error rate (a fraction) that still passes; `None`: report only.
    pub error_budget_rate: Option<f64>,
    /// Largest overall p95 that still passes, in ms; `None`: report only.
    pub p95_budget_ms: Option<f64>,
}

impl Preset {
    pub fn shape(self) -> Shape {
        let (name, min, max, intensity, minutes) = match self {
            Preset::Ramp1k => ("ramp-1k", 8, 1000, 4.0, 8.0),
            Preset::Fixed1k => ("fixed-1k", 1000, 1000, 1.0, 1.0),
            Preset::Ramp1p5k => ("ramp-1p5k", 8, 1500, 4.0, 8.0),
            Preset::Fixed1p5k => ("fixed-1p5k", 1500, 1500, 1.0, 1.0),
            Preset::Fixed1200I4 => ("fixed-1200-i4", 1200, 1200, 4.0, 2.0),
            Preset::Fixed10kI4 => ("fixed-10k-i4", 10_000, 10_000, 4.0, 2.0),
            Preset::Ramp100k => ("ramp-100k", 8, 100_000, 1.0, 10.0),
        };
        let ramp = min != max;
        // The published rows are held to "no errors, p95 under 10 ms"; the
        // new rows to their own bars (ramp-100k only reports).
        let (errors, p95) = match self {
            Preset::Fixed10kI4 => (Some(0.001), None),
            Preset::Ramp100k => (None, None),
            _ => (Some(0.0), Some(10.0)),
        };
        Shape {
            name,
            min_workers: min,
            max_workers: max,
            intensity_from: intensity,
            intensity_to: intensity,
            duration_secs: minutes * 60.0,
            step_secs: if ramp { 30.0 } else { 10.0 },
            fast_ramp: false,
            no_retries: false,
            error_budget_rate: errors,
            p95_budget_ms: p95,
        }
    }
}

impl Scenario {
    pub fn name(self) -> &'static str {
        match self {
            Scenario::Telemetry1mb => "telemetry-1mb",
            Scenario::Telemetry10mb => "telemetry-10mb",
            Scenario::Telemetry100mb => "telemetry-100mb",
            Scenario::Telemetry1gb => "telemetry-1gb",
        }
    }

    /// Bytes of the artifact one operation carries.
    pub fn artifact_bytes(self) -> u64 {
        const MIB: u64 = 1 << 20;
        match self {
            Scenario::Telemetry1mb => MIB,
            Scenario::Telemetry10mb => 10 * MIB,
            Scenario::Telemetry100mb => 100 * MIB,
            Scenario::Telemetry1gb => 1024 * MIB,
        }
    }

    /// As upstream ran them: no retries, fast ramp, error budget 1%.
    /// Real-bytes mode moves the artifact itself, so it runs two workers
    /// at a time for 90 s instead of 8 → 64 workers for 2 min.
    pub fn shape(self, real_bytes: bool) -> Shape {
        let (min, max, intensity, secs) = if real_bytes {
            (2, 2, 1.0, 90.0)
        } else {
            (8, 64, 4.0, 120.0)
        };
        Shape {
            name: self.name(),
            min_workers: min,
            max_workers: max,
            intensity_from: intensity,
            intensity_to: intensity,
            duration_secs: secs,
            step_secs: 10.0,
            fast_ramp: true,
            no_retries: true,
            error_budget_rate: Some(0.01),
            p95_budget_ms: None,
        }
    }
}

/// Byte ranges of an artifact cut into chunks of `chunk` bytes: one
/// `coh-ref-c/v1` record each (1 GiB at 16 MiB: 64 records).
pub fn chunks(total: u64, chunk: u64) -> Vec<(u64, u64)> {
    let chunk = chunk.max(1);
    let mut out = Vec::new();
    let mut off = 0;
    while off < total {
        let len = chunk.min(total - off);
        out.push((off, len));
        off += len;
    }
    out
}

/// One ramp step: its time window and what it asks for.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct Step {
    pub index: usize,
    pub start_s: f64,
    pub end_s: f64,
    pub workers: u32,
    pub intensity: f64,
}

/// The ramp of one run, after scaling.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Ramp {
    pub min_workers: u32,
    pub max_workers: u32,
    pub intensity_from: f64,
    pub intensity_to: f64,
    pub duration_secs: f64,
    pub step_secs: f64,
    /// Reach the maximum in the first step (spawned before the clock
    /// starts) and hold it.
    pub fast: bool,
}

impl Ramp {
    /// Steps in the run; the last one may be shorter than `step_secs`.
    pub fn steps(&self) -> usize {
        let step = self.step_secs.max(0.001);
        let n = (self.duration_secs / step - 1e-9).ceil();
        if n.is_finite() && n >= 1.0 {
            n as usize
        } else {
            1
        }
    }

    /// Step `index` (clamped to the last step).
    pub fn step(&self, index: usize) -> Step {
        let n = self.steps();
        let index = index.min(n - 1);
        let progress = if self.fast || n == 1 {
            1.0
        } else {
            index as f64 / (n - 1) as f64
        };
        let span = f64::from(self.max_workers) - f64::from(self.min_workers);
        let workers = (f64::from(self.min_workers) + span * progress).round();
        let intensity = self.intensity_from + (self.intensity_to - self.intensity_from) * progress;
        let start_s = index as f64 * self.step_secs;
        Step {
            index,
            start_s,
            end_s: (start_s + self.step_secs).min(self.duration_secs),
            // Rounded between two u32 bounds, so it fits.
            workers: workers as u32,
            intensity,
        }
    }

    /// The step that holds second `t` of the run.
    pub fn step_at(&self, t: f64) -> Step {
        let index = (t.max(0.0) / self.step_secs.max(0.001)).floor();
        self.step(if index.is_finite() { index as usize } else { 0 })
    }

    /// Workers to have before the clock starts.
    pub fn initial_workers(&self) -> u32 {
        self.step(0).workers
    }
}

/// Operations per second offered by `workers` at `intensity`.
pub fn offered_rps(workers: u32, intensity: f64) -> f64 {
    BASE_RPS * intensity * f64::from(workers)
}

/// Shortens a shape's time by `scale` (0 < scale ≤ 1 in practice). The
/// step length shrinks with it, so a scaled ramp keeps its number of steps.
pub fn scaled(duration_secs: f64, step_secs: f64, scale: f64) -> (f64, f64) {
    let scale = if scale.is_finite() && scale > 0.0 {
        scale
    } else {
        1.0
    };
    (
        (duration_secs * scale).max(1.0),
        (step_secs * scale).max(1.0),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ramp(min: u32, max: u32, secs: f64, step: f64) -> Ramp {
        Ramp {
            min_workers: min,
            max_workers: max,
            intensity_from: 1.0,
            intensity_to: 4.0,
            duration_secs: secs,
            step_secs: step,
            fast: false,
        }
    }

    #[test]
    fn ramp_goes_from_min_to_max_over_its_steps() {
        let r = ramp(8, 1000, 480.0, 30.0);
        assert_eq!(r.steps(), 16);
        assert_eq!(r.step(0).workers, 8);
        assert_eq!(r.step(0).intensity, 1.0);
        assert_eq!(r.step(15).workers, 1000);
        assert_eq!(r.step(15).intensity, 4.0);
        // Step 5 of 16: 8 + 992 × 5/15 = 338.67 → 339.
        assert_eq!(r.step(5).workers, 339);
        assert_eq!(r.step(5).start_s, 150.0);
        assert_eq!(r.step(5).end_s, 180.0);
        assert_eq!(r.step(99), r.step(15));
    }

    #[test]
    fn a_short_last_step_ends_with_the_run() {
        let r = ramp(8, 100, 65.0, 30.0);
        assert_eq!(r.steps(), 3);
        assert_eq!(r.step(2).start_s, 60.0);
        assert_eq!(r.step(2).end_s, 65.0);
        assert_eq!(r.step_at(61.0).index, 2);
        assert_eq!(r.step_at(0.0).index, 0);
        assert_eq!(r.step_at(29.99).index, 0);
    }

    #[test]
    fn fixed_and_fast_ramps_hold_the_maximum_from_the_start() {
        let mut r = ramp(1000, 1000, 60.0, 10.0);
        assert_eq!(r.steps(), 6);
        assert!((0..6).all(|i| r.step(i).workers == 1000));
        r = ramp(8, 64, 120.0, 10.0);
        r.fast = true;
        assert_eq!(r.initial_workers(), 64);
        assert_eq!(r.step(3).intensity, 4.0);
    }

    #[test]
    fn offered_rate_is_base_times_intensity_times_workers() {
        assert_eq!(offered_rps(1000, 1.0), 100.0);
        assert!((offered_rps(1200, 4.0) - 480.0).abs() < 1e-9);
        assert_eq!(offered_rps(0, 4.0), 0.0);
    }

    #[test]
    fn scaling_keeps_the_number_of_steps() {
        let (d, s) = scaled(480.0, 30.0, 0.25);
        assert_eq!((d, s), (120.0, 7.5));
        let r = Ramp {
            duration_secs: d,
            step_secs: s,
            ..ramp(8, 1000, 480.0, 30.0)
        };
        assert_eq!(r.steps(), 16);
        assert_eq!(scaled(60.0, 10.0, f64::NAN), (60.0, 10.0));
    }

    #[test]
    fn artifacts_cut_into_16_mib_reference_records() {
        let chunk = 16 << 20;
        assert_eq!(
            chunks(Scenario::Telemetry1gb.artifact_bytes(), chunk).len(),
            64
        );
        assert_eq!(
            chunks(Scenario::Telemetry1mb.artifact_bytes(), chunk),
            [(0, 1 << 20)]
        );
        let hundred = chunks(Scenario::Telemetry100mb.artifact_bytes(), chunk);
        assert_eq!(hundred.len(), 7);
        assert_eq!(hundred[6], (96 << 20, 4 << 20));
    }

    #[test]
    fn presets_mirror_the_published_shapes() {
        let s = Preset::Ramp1p5k.shape();
        assert_eq!(
            (s.min_workers, s.max_workers, s.intensity_to),
            (8, 1500, 4.0)
        );
        assert_eq!(s.duration_secs, 480.0);
        let s = Preset::Fixed1200I4.shape();
        assert_eq!(
            (s.min_workers, s.max_workers, s.duration_secs),
            (1200, 1200, 120.0)
        );
        let s = Scenario::Telemetry1gb.shape(false);
        assert!(s.fast_ramp && s.no_retries);
        assert_eq!(s.error_budget_rate, Some(0.01));
    }
}
