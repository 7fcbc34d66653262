//! `.coh` scripts: one shell command per line, checked expectations, waits.
//!
//! ```text
//! # a comment (only at the start of a line: texts may hold '#')
//! spawn heartbeat ticks=3
//! EXPECT OK
//! EXPECT SUBSTR id=worker-
//! WAIT 1500
//! tail /worker/$WORKER/telemetry
//! EXPECT SUBSTR tick
//! cat /nope
//! EXPECT ERR
//! ```
//!
//! `EXPECT OK`, `EXPECT ERR`, `EXPECT SUBSTR <text>` and `EXPECT NOT <text>`
//! test the ack of the command before them. `WAIT <ms>` sleeps, at most
//! [`MAX_WAIT_MS`]. A command answered `ERR` fails the script unless
//! `EXPECT` lines follow it, which then decide; a command that gets no
//! answer at all (connection, time-out) always fails it. `quit` ends the
//! script successfully.
//!
//! Beyond upstream: `$WORKER` in a command stands for the worker id of the
//! last successful `spawn`, so a script does not depend on which ids a
//! long-running hive hands out.

use crate::command;
use crate::shell::{Outcome, Shell};
use std::fmt;
use std::time::Duration;

/// The longest `WAIT`.
pub const MAX_WAIT_MS: u64 = 2000;

/// Stands for the last spawned worker's id.
pub const WORKER_VAR: &str = "$WORKER";

/// One meaningful line of a script.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Step {
    /// 1-based line number in the file.
    pub line: usize,
    pub text: String,
    pub kind: StepKind,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StepKind {
    Command,
    Expect(Expect),
    Wait(Duration),
}

/// A test of the previous command's ack.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Expect {
    Ok,
    Err,
    Substr(String),
    Not(String),
}

impl Expect {
    fn holds(&self, ack: &str) -> bool {
        let is_ok = ack == "OK" || ack.starts_with("OK ");
        match self {
            Expect::Ok => is_ok,
            Expect::Err => !is_ok,
            Expect::Substr(text) => ack.contains(text.as_str()),
            Expect::Not(text) => !ack.contains(text.as_str()),
        }
    }
}

/// A parsed script.
#[derive(Clone, Debug, Default)]
pub struct Script {
    pub steps: Vec<Step>,
}

impl Script {
    pub fn commands(&self) -> usize {
        self.steps
            .iter()
            .filter(|s| s.kind == StepKind::Command)
            .count()
    }
}

/// A line that is not valid script.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SyntaxError {
    pub line: usize,
    pub text: String,
    pub message: String,
}

impl fmt::Display for SyntaxError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "line {}: {}: `{}`", self.line, self.message, self.text)
    }
}

/// Parses a whole script, collecting every syntax error.
pub fn parse(text: &str) -> Result<Script, Vec<SyntaxError>> {
    let mut script = Script::default();
    let mut errors = Vec::new();
    for (index, raw) in text.lines().enumerate() {
        let line = index + 1;
        let text = raw.trim();
        if text.is_empty() || text.starts_with('#') {
            continue;
        }
        let seen_command = script.commands() > 0;
        match parse_step(text, seen_command) {
            Ok(kind) => script.steps.push(Step {
                line,
                text: text.to_string(),
                kind,
            }),
            Err(message) => errors.push(SyntaxError {
                line,
                text: text.to_string(),
                message,
            }),
        }
    }
    if errors.is_empty() {
        Ok(script)
    } else {
        Err(errors)
    }
}

fn parse_step(text: &str, seen_command: bool) -> Result<StepKind, String> {
    let (word, rest) = text.split_once(' ').unwrap_or((text, ""));
    let rest = rest.trim();
    match word {
        "EXPECT" => {
            if !seen_command {
                return Err("EXPECT before any command".into());
            }
            parse_expect(rest).map(StepKind::Expect)
        }
        "WAIT" => {
            let ms: u64 = rest
                .parse()
                .map_err(|_| "WAIT takes milliseconds".to_string())?;
            if ms > MAX_WAIT_MS {
                return Err(format!("WAIT is at most {MAX_WAIT_MS} ms"));
            }
            Ok(StepKind::Wait(Duration::from_millis(ms)))
        }
        _ => {
            let text = text.replace(WORKER_VAR, "worker-1");
            match command::parse(&text) {
                Ok(Some(_)) => Ok(StepKind::Command),
                Ok(None) => Err("empty command".into()),
                Err(e) => Err(e.to_string()),
            }
        }
    }
}

fn parse_expect(rest: &str) -> Result<Expect, String> {
    let (kind, text) = rest.split_once(' ').unwrap_or((rest, ""));
    let text = text.trim();
    let needs_text = |make: fn(String) -> Expect| {
        if text.is_empty() {
            Err(format!("EXPECT {kind} needs a text"))
        } else {
            Ok(make(text.to_string()))
        }
    };
    match kind {
        "OK" if text.is_empty() => Ok(Expect::Ok),
        "ERR" if text.is_empty() => Ok(Expect::Err),
        "SUBSTR" => needs_text(Expect::Substr),
        "NOT" => needs_text(Expect::Not),
        _ => Err("EXPECT takes OK, ERR, SUBSTR <text> or NOT <text>".into()),
    }
}

/// Why a script stopped.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Failure {
    /// The line that failed (the command, or the `EXPECT` that did not hold).
    pub line: usize,
    /// The command concerned and its line.
    pub command: Option<(usize, String)>,
    pub why: String,
}

/// Runs a parsed script; the shell prints as it goes.
pub async fn run(script: &Script, shell: &mut Shell) -> Result<(), Failure> {
    // The last command (line, text) and its ack, if it had one.
    let mut last: Option<(usize, String, Option<String>)> = None;
    for (index, step) in script.steps.iter().enumerate() {
        let failure = |why: String, last: &Option<(usize, String, Option<String>)>| Failure {
            line: step.line,
            command: last.as_ref().map(|(l, t, _)| (*l, t.clone())),
            why,
        };
        match &step.kind {
            StepKind::Wait(d) => tokio::time::sleep(*d).await,
            StepKind::Expect(expect) => {
                let Some((_, _, ack)) = &last else {
                    return Err(failure("EXPECT before any command".into(), &last));
                };
                let Some(ack) = ack else {
                    return Err(failure(
                        "the command before has no ack to test".into(),
                        &last,
                    ));
                };
                if !expect.holds(ack) {
                    return Err(failure(format!("`{}` failed", step.text), &last));
                }
            }
            StepKind::Command => {
                let text = substitute(&step.text, shell.last_worker()).map_err(|why| Failure {
                    line: step.line,
                    command: Some((step.line, step.text.clone())),
                    why,
                })?;
                let this = Some((step.line, step.text.clone(), None));
                let Ok(Some(command)) = command::parse(&text) else {
                    return Err(failure("not a command".into(), &this));
                };
                let expectations_follow = script
                    .steps
                    .get(index + 1)
                    .is_some_and(|next| matches!(next.kind, StepKind::Expect(_)));
                match shell.execute(&command).await {
                    Ok(Outcome::Quit) => return Ok(()),
                    Ok(Outcome::Local) => last = this,
                    Ok(Outcome::Reply(reply)) => {
                        let ok = reply.is_ok();
                        last = Some((step.line, step.text.clone(), Some(reply.ack)));
                        if !ok && !expectations_follow {
                            return Err(failure("the hive refused it".into(), &last));
                        }
                    }
                    Err(e) => return Err(failure(e.to_string(), &this)),
                }
            }
        }
    }
    Ok(())
}

/// Replaces `$WORKER` with the last spawned worker's id.
fn substitute(text: &str, worker: Option<&str>) -> Result<String, String> {
    if !text.contains(WORKER_VAR) {
        return Ok(text.to_string());
    }
    match worker {
        Some(id) => Ok(text.replace(WORKER_VAR, id)),
        None => Err(format!("{WORKER_VAR} used before any successful spawn")),
    }
}

/// Prints a failure report: where, which command, what the hive said last.
pub fn report(shell: &mut Shell, name: &str, failure: &Failure) {
    shell.report(&format!("Error: {name}:{}: {}", failure.line, failure.why));
    if let Some((line, text)) = &failure.command {
        shell.report(&format!("  command (line {line}): {text}"));
    }
    let recent: Vec<String> = shell.recent().cloned().collect();
    if !recent.is_empty() {
        shell.report("  last responses:");
        for line in recent {
            shell.report(&format!("    {line}"));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn steps_comments_and_expectations() {
        let script = parse(
            "# hello\n\nping\nEXPECT OK\n  EXPECT SUBSTR reply=pong \nWAIT 10\n\
             cat /nope\nEXPECT ERR\nEXPECT NOT OK CAT\n",
        )
        .unwrap();
        let kinds: Vec<_> = script
            .steps
            .iter()
            .map(|s| (s.line, s.kind.clone()))
            .collect();
        assert_eq!(
            kinds,
            [
                (3, StepKind::Command),
                (4, StepKind::Expect(Expect::Ok)),
                (5, StepKind::Expect(Expect::Substr("reply=pong".into()))),
                (6, StepKind::Wait(Duration::from_millis(10))),
                (7, StepKind::Command),
                (8, StepKind::Expect(Expect::Err)),
                (9, StepKind::Expect(Expect::Not("OK CAT".into()))),
            ]
        );
        assert_eq!(script.commands(), 2);
    }

    #[test]
    fn every_error_is_reported_with_its_line() {
        let errors =
            parse("EXPECT OK\nping\nWAIT 2001\nWAIT soon\nfrobnicate\nEXPECT MAYBE\n").unwrap_err();
        let lines: Vec<usize> = errors.iter().map(|e| e.line).collect();
        assert_eq!(lines, [1, 3, 4, 5, 6]);
        assert!(errors[3].to_string().contains("frobnicate"));
    }

    #[test]
    fn worker_variable_parses_and_substitutes() {
        assert!(parse("tail /worker/$WORKER/telemetry\n").is_ok());
        assert_eq!(
            substitute("kill $WORKER", Some("worker-9")).as_deref(),
            Ok("kill worker-9")
        );
        assert!(substitute("kill $WORKER", None).is_err());
    }

    #[test]
    fn expectations_hold_on_acks() {
        assert!(Expect::Ok.holds("OK PING reply=pong"));
        assert!(!Expect::Ok.holds("ERR CAT reason=policy"));
        assert!(Expect::Err.holds("ERR CAT reason=policy"));
        assert!(Expect::Substr("policy".into()).holds("ERR CAT reason=policy"));
        assert!(Expect::Not("quota".into()).holds("ERR CAT reason=policy"));
    }
}
