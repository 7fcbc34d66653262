//! The hive's lifecycle state machine (`/queen/lifecycle/ctl`).
//!
//! ```text
//!   BOOTING --start--> ONLINE <--resume-- DRAINING, QUIESCED, DEGRADED
//!   ONLINE|DEGRADED --cordon|drain--> DRAINING --quiesce (no live workers)--> QUIESCED
//!   DRAINING (drain requested) --last worker gone--> QUIESCED
//!   QUIESCED|OFFLINE --reset--> ONLINE (every worker already revoked)
//! ```
//!
//! `cordon` stops new work and keeps existing workers; `drain` does the same
//! and moves to QUIESCED by itself once no worker is left. Gates refuse a
//! transition that would strand work (`quiesce` with live workers is
//! `Busy`); any other unlisted transition is `Invalid`.

use cohesix_ninep::NsError;
use std::fmt;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum State {
    Booting,
    Degraded,
    Online,
    Draining,
    Quiesced,
    Offline,
}

impl State {
    pub fn as_str(self) -> &'static str {
        match self {
            State::Booting => "BOOTING",
            State::Degraded => "DEGRADED",
            State::Online => "ONLINE",
            State::Draining => "DRAINING",
            State::Quiesced => "QUIESCED",
            State::Offline => "OFFLINE",
        }
    }

    /// New work (spawn, bind, mount) is accepted only in these states.
    pub fn accepts_new_work(self) -> bool {
        matches!(self, State::Online | State::Degraded)
    }
}

impl fmt::Display for State {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Command {
    Cordon,
    Drain,
    Resume,
    Quiesce,
    Reset,
}

impl Command {
    pub fn parse(text: &str) -> Result<Command, NsError> {
        match text.trim() {
            "cordon" => Ok(Command::Cordon),
            "drain" => Ok(Command::Drain),
            "resume" => Ok(Command::Resume),
            "quiesce" => Ok(Command::Quiesce),
            "reset" => Ok(Command::Reset),
            _ => Err(NsError::invalid("invalid-payload")),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Command::Cordon => "cordon",
            Command::Drain => "drain",
            Command::Resume => "resume",
            Command::Quiesce => "quiesce",
            Command::Reset => "reset",
        }
    }
}

/// The lifecycle as shown under `/proc/lifecycle`.
#[derive(Clone, Debug)]
pub struct Lifecycle {
    pub state: State,
    pub reason: String,
    pub since_ms: u64,
    /// A `drain` waits for the last worker before settling in QUIESCED.
    pub drain_requested: bool,
}

impl Lifecycle {
    pub fn booting(now_ms: u64) -> Lifecycle {
        Lifecycle {
            state: State::Booting,
            reason: "boot".into(),
            since_ms: now_ms,
            drain_requested: false,
        }
    }

    fn enter(&mut self, state: State, reason: &str, now_ms: u64) {
        self.state = state;
        self.reason = reason.to_string();
        self.since_ms = now_ms;
    }

    /// Finishes boot.
    pub fn online(&mut self, now_ms: u64) {
        self.enter(State::Online, "boot-complete", now_ms);
    }

    /// Applies an operator command. `live_workers` feeds the gates.
    /// Returns the previous state on success.
    pub fn apply(
        &mut self,
        cmd: Command,
        live_workers: usize,
        now_ms: u64,
    ) -> Result<State, NsError> {
        let from = self.state;
        let to = match (cmd, from) {
            (Command::Cordon, State::Online | State::Degraded) => State::Draining,
            (Command::Drain, State::Online | State::Degraded | State::Draining) => {
                self.drain_requested = true;
                if live_workers == 0 {
                    State::Quiesced
                } else {
                    State::Draining
                }
            }
            (Command::Resume, State::Draining | State::Quiesced | State::Degraded) => State::Online,
            (Command::Quiesce, State::Draining) if live_workers > 0 => {
                return Err(NsError::busy("workers-active"));
            }
            (Command::Quiesce, State::Draining) => State::Quiesced,
            (Command::Reset, State::Quiesced | State::Offline) => State::Online,
            _ => return Err(NsError::invalid("invalid-transition")),
        };
        if to != State::Draining {
            self.drain_requested = false;
        }
        self.enter(to, cmd.as_str(), now_ms);
        Ok(from)
    }

    /// Called when the worker count changes; settles a requested drain.
    pub fn settle(&mut self, live_workers: usize, now_ms: u64) -> Option<State> {
        if self.state == State::Draining && self.drain_requested && live_workers == 0 {
            self.drain_requested = false;
            self.enter(State::Quiesced, "drained", now_ms);
            return Some(State::Draining);
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn online() -> Lifecycle {
        let mut l = Lifecycle::booting(0);
        l.online(1);
        l
    }

    #[test]
    fn cordon_then_resume() {
        let mut l = online();
        assert_eq!(l.apply(Command::Cordon, 3, 5), Ok(State::Online));
        assert_eq!(l.state, State::Draining);
        assert!(!l.state.accepts_new_work());
        l.apply(Command::Resume, 3, 6).unwrap();
        assert_eq!(l.state, State::Online);
        assert_eq!(l.since_ms, 6);
    }

    #[test]
    fn quiesce_is_gated_on_live_workers() {
        let mut l = online();
        l.apply(Command::Cordon, 2, 5).unwrap();
        assert_eq!(
            l.apply(Command::Quiesce, 2, 6),
            Err(NsError::busy("workers-active"))
        );
        assert_eq!(l.state, State::Draining);
        l.apply(Command::Quiesce, 0, 7).unwrap();
        assert_eq!(l.state, State::Quiesced);
    }

    #[test]
    fn drain_settles_when_last_worker_leaves() {
        let mut l = online();
        l.apply(Command::Drain, 1, 5).unwrap();
        assert_eq!(l.state, State::Draining);
        assert_eq!(l.settle(1, 6), None);
        assert_eq!(l.settle(0, 7), Some(State::Draining));
        assert_eq!(l.state, State::Quiesced);
    }

    #[test]
    fn reset_only_from_quiesced_or_offline() {
        let mut l = online();
        assert_eq!(
            l.apply(Command::Reset, 0, 5),
            Err(NsError::invalid("invalid-transition"))
        );
        assert_eq!(l.state, State::Online);
    }
}
