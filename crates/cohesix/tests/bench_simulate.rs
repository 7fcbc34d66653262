//! `cohesix bench simulate` end to end: a few seconds of the REST workload
//! against a hive and a gateway the bench starts itself, then
//! `cohesix bench report` over the evidence it left.
//!
//! This asserts behaviour and schema (zero errors, every field of the
//! summary, every evidence file), never speed: timings belong to the
//! benchmark runs kept under bench/results/.

use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

/// A smoke run that takes longer than this has hung.
const RUN_LIMIT: Duration = Duration::from_secs(180);

/// `hive-gateway` of the same profile: next to the cohesix binary (a
/// workspace test run builds it), else built here.
fn gateway_bin() -> PathBuf {
    let cohesix = PathBuf::from(env!("CARGO_BIN_EXE_cohesix"));
    let dir = cohesix.parent().expect("the binary lives in a folder");
    let gateway = dir.join("hive-gateway");
    if gateway.is_file() {
        return gateway;
    }
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_string());
    let mut cmd = Command::new(cargo);
    cmd.args(["build", "-p", "hive-gateway", "--bin", "hive-gateway"]);
    if dir.file_name().is_some_and(|n| n == "release") {
        cmd.arg("--release");
    }
    let status = cmd.status().expect("cargo runs");
    assert!(status.success(), "building hive-gateway failed");
    assert!(
        gateway.is_file(),
        "no {} after the build",
        gateway.display()
    );
    gateway
}

/// Runs `cohesix` with `args`, killed after [`RUN_LIMIT`].
fn cohesix(args: &[&str]) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_cohesix"))
        .args(args)
        .env("COHESIX_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("cohesix starts");
    let deadline = Instant::now() + RUN_LIMIT;
    while child.try_wait().expect("wait works").is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("cohesix {args:?} ran past {RUN_LIMIT:?}");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    child.wait_with_output().expect("output is collected")
}

fn only_folder(root: &Path) -> PathBuf {
    let dirs: Vec<PathBuf> = std::fs::read_dir(root)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(dirs.len(), 1, "one evidence folder: {dirs:?}");
    dirs.into_iter().next().unwrap()
}

fn assert_op_fields(name: &str, op: &Value) {
    for key in [
        "count", "ok", "err", "avg_s", "min_s", "max_s", "p95_s", "errors",
    ] {
        assert!(!op[key].is_null(), "{name} has no {key}: {op}");
    }
    assert_eq!(op["err"], 0, "{name} failed: {op}");
    let (min, p95, max) = (
        op["min_s"].as_f64(),
        op["p95_s"].as_f64(),
        op["max_s"].as_f64(),
    );
    assert!(min <= p95 && p95 <= max, "{name}: min ≤ p95 ≤ max: {op}");
}

#[test]
fn simulate_smoke_run_leaves_a_complete_summary_with_zero_errors() {
    let gateway = gateway_bin();
    let results = tempfile::tempdir().unwrap();
    let out = cohesix(&[
        "bench",
        "simulate",
        "--preset",
        "ramp-1k",
        "--min-workers",
        "4",
        "--max-workers",
        "8",
        "--intensity-from",
        "10",
        "--intensity-to",
        "20",
        "--duration-secs",
        "5",
        "--ramp-step-secs",
        "2.5",
        "--p95-budget-ms",
        "60000",
        "--seed",
        "7",
        "--gateway-bin",
        gateway.to_str().unwrap(),
        "--results",
        results.path().to_str().unwrap(),
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "simulate failed:\n{stderr}");

    let dir = only_folder(results.path());
    assert!(
        dir.to_string_lossy().ends_with("Z-ramp-1k"),
        "{}",
        dir.display()
    );
    for file in [
        "run.log",
        "summary.json",
        "steps.csv",
        "timeline.csv",
        "graph.svg",
        "graph.png",
        "run.txt",
    ] {
        assert!(dir.join(file).is_file(), "no {file} in {}", dir.display());
    }
    let s: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("summary.json")).unwrap()).unwrap();

    assert_eq!(s["bench"], "simulate");
    assert_eq!(s["pass"], true);
    assert!(s["run_error"].is_null());
    assert_eq!(s["error_rate"], 0.0);
    assert_eq!(s["error_budget_pass"], true);
    assert!(s["worker_cap"].is_null(), "no cap with 8 workers");
    assert_eq!(s["workers"]["peak"], 8);
    for key in ["command", "commit", "machine", "started_utc"] {
        assert!(!s["run"][key].is_null(), "run.{key}");
    }
    assert!(s["cpu"]["generator_s"].as_f64().unwrap() > 0.0);
    assert!(s["gateway_status_before"]["connected"].as_bool().unwrap());
    assert!(s["gateway_status_after"].is_object());
    assert_eq!(s["settings"]["max_workers"], 8);
    assert_eq!(s["settings"]["seed"], 7);

    let overall = &s["overall"];
    assert_op_fields("overall", overall);
    assert!(overall["count"].as_u64().unwrap() >= 20, "{overall}");
    let ops = s["operations"].as_object().unwrap();
    for (name, op) in ops {
        assert_op_fields(name, op);
    }
    for name in ["worker.spawn", "fs.ls", "fs.cat.status"] {
        assert!(ops.contains_key(name), "no {name} in {:?}", ops.keys());
    }

    let ramp = s["ramp"].as_array().unwrap();
    assert_eq!(ramp.len(), 2);
    assert_eq!(ramp[0]["workers"], 4);
    assert_eq!(ramp[1]["workers"], 8);
    for row in ramp {
        for key in [
            "step",
            "workers",
            "intensity",
            "rps",
            "ops",
            "ok",
            "err",
            "err_rate",
        ] {
            assert!(!row[key].is_null(), "ramp row has no {key}: {row}");
        }
    }
    let steps = std::fs::read_to_string(dir.join("steps.csv")).unwrap();
    assert_eq!(steps.lines().count(), 3);
    let log = std::fs::read_to_string(dir.join("run.log")).unwrap();
    assert!(log.contains("start checks ok"), "{log}");

    // The report puts the run beside the published row.
    let md = results.path().join("B.md");
    let begin =
        "<!-- bench-report:begin (generated by `cohesix bench report`; edits here are lost) -->";
    std::fs::write(
        &md,
        format!("# B\n{begin}\n<!-- bench-report:end -->\ntail\n"),
    )
    .unwrap();
    let out = cohesix(&[
        "bench",
        "report",
        "--results",
        results.path().to_str().unwrap(),
        "--file",
        md.to_str().unwrap(),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = std::fs::read_to_string(&md).unwrap();
    let row = text
        .lines()
        .find(|l| l.starts_with("| RAMP-1K |"))
        .expect("RAMP-1K row");
    assert!(row.contains("61,293") && row.contains("4 → 8"), "{row}");
    assert!(text.ends_with("<!-- bench-report:end -->\ntail\n"));
}
