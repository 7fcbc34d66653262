//! `cohesix ticket` refuses bad input with an error, never a panic.

use std::process::Command;

#[test]
fn ticket_with_a_huge_ttl_is_an_error_not_a_panic() {
    let dir = tempfile::tempdir().expect("temp dir");
    let out = Command::new(env!("CARGO_BIN_EXE_cohesix"))
        .args([
            "ticket",
            "--role",
            "queen",
            "--ttl-s",
            "18446744073709551615",
        ])
        .arg("--data-dir")
        .arg(dir.path())
        .output()
        .expect("cohesix runs");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("too large"), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
}
