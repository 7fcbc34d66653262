//! Interactive mode: the `coh> ` prompt with history and completion of
//! commands and hive paths, and a `PING` after [`IDLE_PING`] without
//! traffic so a console connection stays up (or is noticed dead and
//! reopened) while the operator thinks.
//!
//! The line editor runs on the main thread; the shell runs on the tokio
//! runtime behind a mutex it shares with the keep-alive task and with
//! completion, which lists directories on the hive (bounded by
//! [`COMPLETION_TIMEOUT`]).

use crate::command::{self, COMMANDS, LIFECYCLE};
use crate::shell::{Outcome, Shell};
use rustyline::completion::{Completer, Pair};
use rustyline::error::ReadlineError;
use rustyline::highlight::Highlighter;
use rustyline::hint::Hinter;
use rustyline::history::DefaultHistory;
use rustyline::validate::Validator;
use rustyline::{Context, Editor};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio::runtime::Runtime;
use tokio::sync::Mutex;

/// Idle time after which the shell pings the hive.
pub const IDLE_PING: Duration = Duration::from_secs(15);
/// The longest a completion waits for the hive.
pub const COMPLETION_TIMEOUT: Duration = Duration::from_secs(1);
/// Lines of history kept in `~/.cohsh_history`.
const HISTORY_FILE: &str = ".cohsh_history";

/// Runs the prompt until `quit` or end of input; returns the exit code.
pub fn run(runtime: &Runtime, shell: Shell) -> u8 {
    let shell = Arc::new(Mutex::new(shell));
    let mut editor: Editor<Completion, DefaultHistory> = match Editor::new() {
        Ok(editor) => editor,
        Err(e) => {
            eprintln!("Error: cannot start the line editor: {e}");
            return crate::exit::FAILED;
        }
    };
    editor.set_helper(Some(Completion {
        shell: shell.clone(),
        runtime: runtime.handle().clone(),
    }));
    let history = history_path();
    if let Some(path) = &history {
        let _ = editor.load_history(path);
    }
    let keep_alive = runtime.spawn(keep_alive(shell.clone()));

    loop {
        let line = match editor.readline("coh> ") {
            Ok(line) => line,
            Err(ReadlineError::Interrupted) => continue,
            Err(ReadlineError::Eof) => {
                runtime.block_on(async {
                    let mut shell = shell.lock().await;
                    let _ = shell.execute(&command::ShellCommand::Quit).await;
                });
                break;
            }
            Err(e) => {
                eprintln!("Error: {e}");
                break;
            }
        };
        if line.trim().is_empty() {
            continue;
        }
        let _ = editor.add_history_entry(line.as_str());
        let outcome = runtime.block_on(async {
            let mut shell = shell.lock().await;
            match command::parse(&line) {
                Ok(Some(command)) => shell.execute(&command).await.ok(),
                Ok(None) => None,
                Err(e) => {
                    shell.print_error(&e.to_string());
                    None
                }
            }
        });
        if outcome == Some(Outcome::Quit) {
            break;
        }
    }
    keep_alive.abort();
    if let Some(path) = &history {
        let _ = editor.save_history(path);
    }
    crate::exit::OK
}

async fn keep_alive(shell: Arc<Mutex<Shell>>) {
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    loop {
        tick.tick().await;
        if let Ok(mut shell) = shell.try_lock() {
            shell.transport.keep_alive(IDLE_PING).await;
        }
    }
}

fn history_path() -> Option<PathBuf> {
    std::env::var_os("HOME").map(|home| PathBuf::from(home).join(HISTORY_FILE))
}

/// Completes command names, lifecycle words and hive paths.
struct Completion {
    shell: Arc<Mutex<Shell>>,
    runtime: tokio::runtime::Handle,
}

impl Completion {
    fn names(&self, dir: &str) -> Vec<String> {
        let listing = async {
            let mut shell = self.shell.lock().await;
            shell.transport.names(dir).await
        };
        // The timer must be made inside the runtime, hence the async block.
        let bounded = async { tokio::time::timeout(COMPLETION_TIMEOUT, listing).await };
        self.runtime.block_on(bounded).unwrap_or_default()
    }
}

fn pairs(words: impl Iterator<Item = String>, prefix: &str) -> Vec<Pair> {
    words
        .filter(|w| w.starts_with(prefix))
        .map(|w| Pair {
            display: w.clone(),
            replacement: w,
        })
        .collect()
}

/// Splits a path being typed into the directory to list and the text
/// its entries follow: `/proc/li` → (`/proc`, `/proc/`).
fn split_path(word: &str) -> (&str, &str) {
    match word.rfind('/') {
        Some(0) | None => ("/", "/"),
        Some(i) => (&word[..i], &word[..=i]),
    }
}

impl Completer for Completion {
    type Candidate = Pair;

    fn complete(
        &self,
        line: &str,
        pos: usize,
        _ctx: &Context<'_>,
    ) -> rustyline::Result<(usize, Vec<Pair>)> {
        let before = &line[..pos];
        let start = before.rfind(char::is_whitespace).map_or(0, |i| i + 1);
        let word = &before[start..];
        let first = before.split_whitespace().next().unwrap_or("");
        let names = || COMMANDS.iter().map(|s| s.name.to_string());
        let candidates = if start == 0 {
            pairs(names(), word)
        } else if word.starts_with('/') {
            let (dir, shown) = split_path(word);
            let found = self.names(dir).into_iter().map(|n| format!("{shown}{n}"));
            pairs(found, word)
        } else if first == "lifecycle" {
            pairs(LIFECYCLE.iter().map(|w| w.to_string()), word)
        } else if first == "help" {
            pairs(names(), word)
        } else {
            Vec::new()
        };
        Ok((start, candidates))
    }
}

impl Hinter for Completion {
    type Hint = String;
}

impl Highlighter for Completion {}

impl Validator for Completion {}

impl rustyline::Helper for Completion {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_split_into_directory_and_prefix() {
        assert_eq!(split_path("/"), ("/", "/"));
        assert_eq!(split_path("/pr"), ("/", "/"));
        assert_eq!(split_path("/proc/li"), ("/proc", "/proc/"));
        assert_eq!(split_path("/proc/"), ("/proc", "/proc/"));
    }
}
