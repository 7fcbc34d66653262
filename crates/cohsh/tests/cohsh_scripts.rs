//! The built `cohsh` binary against a live hive on loopback: the shipped
//! scripts over the console and over 9P, failure reports, `--check`,
//! `--mint-ticket`, standard-input scripts and exit codes.

use cohesix_hive::{HiveConfig, RunningHive};
use cohesix_manifest::Manifest;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

const COHSH: &str = env!("CARGO_BIN_EXE_cohsh");
const SCRIPTS: [&str; 4] = [
    "spawn_kill.coh",
    "lifecycle.coh",
    "telemetry_tail.coh",
    "policy_refusals.coh",
];

fn script(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../scripts/coh")
        .join(name)
}

/// A hive in its own runtime, alive as long as the returned values.
struct Live {
    hive: RunningHive,
    dir: tempfile::TempDir,
    _runtime: tokio::runtime::Runtime,
}

impl Live {
    fn start() -> Live {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let dir = tempfile::tempdir().unwrap();
        let mut manifest = Manifest::default();
        manifest.ninep.listen = "127.0.0.1:0".into();
        manifest.console.listen = "127.0.0.1:0".into();
        let config = HiveConfig {
            manifest,
            manifest_name: "test".into(),
            data_dir: dir.path().to_path_buf(),
        };
        let hive = runtime.block_on(cohesix_hive::start(config)).unwrap();
        Live {
            hive,
            dir,
            _runtime: runtime,
        }
    }

    /// `cohsh` over the console, token from the command line.
    fn tcp(&self) -> Command {
        let mut c = Command::new(COHSH);
        let port = self.hive.console_addr.unwrap().port().to_string();
        c.args(["--tcp-port", &port]);
        c.args(["--auth-token", &self.hive.secrets.console_token]);
        c.args(["--data-dir", "/nonexistent"]);
        c
    }

    fn ninep(&self, ticket: &str) -> Command {
        let mut c = Command::new(COHSH);
        c.args(["--transport", "9p"]);
        c.args(["--9p-addr", &self.hive.ninep_addr.to_string()]);
        c.args(["--ticket", ticket]);
        c
    }

    fn mint(&self, role: &str, subject: Option<&str>) -> String {
        let mut c = Command::new(COHSH);
        c.args(["--mint-ticket", "--role", role]);
        c.arg("--data-dir").arg(self.dir.path());
        if let Some(s) = subject {
            c.args(["--ticket-subject", s]);
        }
        let out = c.output().unwrap();
        assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
        text(&out.stdout).trim().to_string()
    }
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn run(mut command: Command) -> Output {
    command.stdin(Stdio::null());
    command.output().expect("cohsh runs")
}

fn assert_success(out: &Output, what: &str) {
    assert_eq!(
        out.status.code(),
        Some(0),
        "{what}\nstdout:\n{}\nstderr:\n{}",
        text(&out.stdout),
        text(&out.stderr)
    );
}

#[test]
fn shipped_scripts_pass_over_the_console() {
    let live = Live::start();
    for name in SCRIPTS {
        let mut c = live.tcp();
        c.arg("--script").arg(script(name));
        let out = run(c);
        assert_success(&out, name);
        let stdout = text(&out.stdout);
        assert!(
            stdout.starts_with("[console] OK ATTACH role=queen\n"),
            "{stdout}"
        );
    }
}

#[test]
fn shipped_scripts_pass_over_9p_with_a_minted_ticket() {
    let live = Live::start();
    let ticket = live.mint("queen", None);
    assert!(ticket.starts_with("cohesix-ticket-"), "{ticket}");
    for name in SCRIPTS {
        let mut c = live.ninep(&ticket);
        c.arg("--script").arg(script(name));
        let out = run(c);
        assert_success(&out, name);
    }
}

#[test]
fn telemetry_script_prints_the_workers_records() {
    let live = Live::start();
    let mut c = live.tcp();
    c.arg("--script").arg(script("telemetry_tail.coh"));
    let out = run(c);
    assert_success(&out, "telemetry_tail.coh");
    let stdout = text(&out.stdout);
    assert!(
        stdout.contains("[console] OK SPAWN id=worker-1"),
        "{stdout}"
    );
    assert!(stdout.contains("{\"tick\":1,"), "{stdout}");
    assert!(stdout.contains("{\"note\":\"from cohsh\"}"), "{stdout}");
}

#[test]
fn a_failed_expectation_names_the_line_the_command_and_the_responses() {
    let live = Live::start();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("fails.coh");
    std::fs::write(&path, "# comment\nping\ncat /nope\nEXPECT OK\nping\n").unwrap();
    let mut c = live.tcp();
    c.arg("--script").arg(&path);
    let out = run(c);
    assert_eq!(out.status.code(), Some(1));
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("fails.coh:4: `EXPECT OK` failed"),
        "{stderr}"
    );
    assert!(stderr.contains("command (line 3): cat /nope"), "{stderr}");
    assert!(
        stderr.contains(
            "[console] ERR CAT reason=policy detail=invalid-path path=/nope error=invalid path"
        ),
        "{stderr}"
    );
    // The script stopped at the failure: the last ping never ran.
    assert_eq!(text(&out.stdout).matches("OK PING").count(), 1);
}

#[test]
fn an_err_ack_without_expect_fails_the_script() {
    let live = Live::start();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("refused.coh");
    std::fs::write(&path, "echo x > /proc/boot\nping\n").unwrap();
    let mut c = live.tcp();
    c.arg("--script").arg(&path);
    let out = run(c);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("refused.coh:1: the hive refused it"));
}

#[test]
fn check_accepts_the_shipped_scripts_and_names_broken_lines() {
    for name in SCRIPTS {
        let out = run({
            let mut c = Command::new(COHSH);
            c.arg("--check").arg(script(name));
            c
        });
        assert_success(&out, name);
    }

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("broken.coh");
    std::fs::write(&path, "ping\nEXPECT MAYBE\nfrobnicate /x\nWAIT 5000\n").unwrap();
    let mut c = Command::new(COHSH);
    c.arg("--check").arg(&path);
    // No hive anywhere: --check must not connect.
    c.args(["--tcp-port", "1"]);
    let out = run(c);
    assert_eq!(out.status.code(), Some(1));
    let stderr = text(&out.stderr);
    assert!(stderr.contains("broken.coh:2:"), "{stderr}");
    assert!(
        stderr.contains("broken.coh:3: unknown command 'frobnicate'"),
        "{stderr}"
    );
    assert!(
        stderr.contains("broken.coh:4: WAIT is at most 2000 ms"),
        "{stderr}"
    );
}

#[test]
fn usage_errors_exit_2_and_an_unreachable_hive_exits_1() {
    let out = run({
        let mut c = Command::new(COHSH);
        c.args(["--transport", "udp"]);
        c
    });
    assert_eq!(out.status.code(), Some(2));

    // No gateway listening: the script cannot attach and exits 1.
    let out = run({
        let mut c = Command::new(COHSH);
        c.args(["--transport", "rest", "--rest-url", "http://127.0.0.1:1"]);
        c.args(["--rest-auth-token", "t", "--script"]);
        c.arg(script("spawn_kill.coh"));
        c
    });
    assert_eq!(out.status.code(), Some(1));
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("Error: cannot connect to 127.0.0.1:1"),
        "{stderr}"
    );
    assert!(stderr.contains("could not attach as queen"), "{stderr}");
}

#[test]
fn a_script_on_standard_input_runs_without_a_prompt() {
    let live = Live::start();
    let mut c = live.tcp();
    c.stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = c.spawn().unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"ping\nEXPECT OK\nls /proc/lifecycle\nquit\n")
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert_success(&out, "stdin");
    let stdout = text(&out.stdout);
    assert!(!stdout.contains("coh> "));
    assert!(
        stdout.contains("[console] OK LS path=/proc/lifecycle entries=3\nstate\nreason\nsince\n")
    );
}

#[test]
fn a_worker_attaches_with_a_minted_ticket_and_is_held_to_its_own_telemetry() {
    let live = Live::start();
    let dir = tempfile::tempdir().unwrap();
    let spawn = dir.path().join("spawn.coh");
    std::fs::write(
        &spawn,
        "spawn heartbeat ticks=100\nEXPECT SUBSTR id=worker-1\n",
    )
    .unwrap();
    let mut c = live.tcp();
    c.arg("--script").arg(&spawn);
    assert_success(&run(c), "spawn");

    let ticket = live.mint("worker-heartbeat", Some("worker-1"));
    let own = dir.path().join("own.coh");
    std::fs::write(
        &own,
        "echo {\"w\":1} > /worker/worker-1/telemetry\nEXPECT OK\n\
         cat /queen/ctl\nEXPECT ERR\n",
    )
    .unwrap();
    let mut c = live.tcp();
    c.args(["--role", "worker-heartbeat", "--ticket", &ticket]);
    c.arg("--script").arg(&own);
    let out = run(c);
    assert_success(&out, "own.coh");
    assert!(text(&out.stdout).starts_with("[console] OK ATTACH role=worker-heartbeat"));
}

#[test]
fn the_console_token_is_found_in_the_data_dir() {
    let live = Live::start();
    let port = live.hive.console_addr.unwrap().port().to_string();
    let mut c = Command::new(COHSH);
    c.args(["--tcp-port", &port]);
    c.arg("--data-dir").arg(live.dir.path());
    c.env_remove("COHSH_AUTH_TOKEN");
    c.arg("--script").arg(script("policy_refusals.coh"));
    assert_success(&run(c), "token from secrets.toml");
}
