//! The `/queen/ctl` language: one strict JSON object per line.
//!
//! Parsing is separate from execution so that a multi-line write can be
//! validated whole before any line changes state. Unknown fields, missing
//! fields and mixed commands are all `Invalid` with `detail=invalid-payload`.

use cohesix_ninep::NsError;
use serde::Deserialize;

/// Budget overrides carried by a spawn.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BudgetSpec {
    pub ticks: Option<u32>,
    pub ops: Option<u32>,
    pub ttl_s: Option<u32>,
}

/// A GPU lease request (bookkeeping only on hosts without a GPU inventory).
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LeaseSpec {
    pub gpu_id: String,
    pub mem_mb: u32,
    pub streams: u32,
    pub ttl_s: u32,
    #[serde(default)]
    pub priority: u32,
}

#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BindSpec {
    pub from: String,
    pub to: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MountSpec {
    pub service: String,
    pub at: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Line {
    spawn: Option<String>,
    ticks: Option<u32>,
    budget: Option<BudgetSpec>,
    lease: Option<LeaseSpec>,
    kill: Option<String>,
    bind: Option<BindSpec>,
    mount: Option<MountSpec>,
}

/// One parsed control command.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CtlCommand {
    SpawnHeartbeat {
        ticks: u32,
        budget: BudgetSpec,
    },
    SpawnGpu {
        lease: LeaseSpec,
        budget: BudgetSpec,
    },
    Kill {
        worker: String,
    },
    Bind(BindSpec),
    Mount(MountSpec),
}

const INVALID: NsError = NsError::invalid("invalid-payload");

/// Parses one line of `/queen/ctl`.
pub fn parse_line(line: &str) -> Result<CtlCommand, NsError> {
    let line: Line = serde_json::from_str(line.trim()).map_err(|_| INVALID)?;
    let verbs = [
        line.spawn.is_some(),
        line.kill.is_some(),
        line.bind.is_some(),
        line.mount.is_some(),
    ];
    if verbs.iter().filter(|v| **v).count() != 1 {
        return Err(INVALID);
    }
    let spawn_only = line.ticks.is_some() || line.budget.is_some() || line.lease.is_some();
    if line.spawn.is_none() && spawn_only {
        return Err(INVALID);
    }
    if let Some(kind) = line.spawn {
        return parse_spawn(
            &kind,
            line.ticks,
            line.budget.unwrap_or_default(),
            line.lease,
        );
    }
    if let Some(worker) = line.kill {
        return Ok(CtlCommand::Kill { worker });
    }
    if let Some(bind) = line.bind {
        return Ok(CtlCommand::Bind(bind));
    }
    match line.mount {
        Some(mount) => Ok(CtlCommand::Mount(mount)),
        None => Err(INVALID),
    }
}

fn parse_spawn(
    kind: &str,
    ticks: Option<u32>,
    budget: BudgetSpec,
    lease: Option<LeaseSpec>,
) -> Result<CtlCommand, NsError> {
    match (kind, ticks, lease) {
        ("heartbeat", Some(ticks), None) if ticks > 0 => {
            Ok(CtlCommand::SpawnHeartbeat { ticks, budget })
        }
        ("gpu", None, Some(lease)) => Ok(CtlCommand::SpawnGpu { lease, budget }),
        _ => Err(INVALID),
    }
}

/// Parses every non-empty line of a write; nothing is executed if any line
/// is invalid.
pub fn parse_write(data: &[u8]) -> Result<Vec<CtlCommand>, NsError> {
    let text = std::str::from_utf8(data).map_err(|_| INVALID)?;
    let commands: Result<Vec<_>, _> = text
        .split('\n')
        .filter(|l| !l.trim().is_empty())
        .map(parse_line)
        .collect();
    match commands {
        Ok(c) if c.is_empty() => Err(INVALID),
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spawn_heartbeat_with_budget() {
        let cmd =
            parse_line(r#"{"spawn":"heartbeat","ticks":100,"budget":{"ttl_s":120,"ops":500}}"#);
        let budget = BudgetSpec {
            ticks: None,
            ops: Some(500),
            ttl_s: Some(120),
        };
        assert_eq!(cmd, Ok(CtlCommand::SpawnHeartbeat { ticks: 100, budget }));
    }

    #[test]
    fn unknown_fields_are_invalid() {
        assert_eq!(parse_line(r#"{"bogus":1}"#), Err(INVALID));
        assert_eq!(
            parse_line(r#"{"spawn":"heartbeat","ticks":3,"x":1}"#),
            Err(INVALID)
        );
        assert_eq!(
            parse_line(r#"{"kill":"worker-1","budget":{"ops":1}}"#),
            Err(INVALID)
        );
        assert_eq!(parse_line("notjson"), Err(INVALID));
    }

    #[test]
    fn heartbeat_needs_ticks() {
        assert_eq!(parse_line(r#"{"spawn":"heartbeat"}"#), Err(INVALID));
        assert_eq!(
            parse_line(r#"{"spawn":"heartbeat","ticks":0}"#),
            Err(INVALID)
        );
    }

    #[test]
    fn two_commands_in_one_object_are_invalid() {
        assert_eq!(
            parse_line(r#"{"kill":"worker-1","spawn":"heartbeat"}"#),
            Err(INVALID)
        );
    }

    #[test]
    fn a_bad_line_rejects_the_whole_write() {
        let data = b"{\"kill\":\"worker-1\"}\n{\"nope\":1}\n";
        assert_eq!(parse_write(data), Err(INVALID));
        assert_eq!(parse_write(b"\n\n"), Err(INVALID));
    }
}
