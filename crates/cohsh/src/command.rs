//! The shell's command language (SURFACES §10): one line in, one
//! [`ShellCommand`] out, checked before anything is sent.
//!
//! Words are split on whitespace, except for `echo <text> > <path>`, whose
//! text is everything before the last `>`, trimmed; a text wrapped whole in
//! single or double quotes loses them (`echo 'a b' > /log/queen.log`).
//! Paths are absolute. This module knows nothing of transports: it does
//! not decide what a command does on the wire.

use cohesix_console::ctl;

/// One parsed shell command.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ShellCommand {
    Attach {
        role: String,
        ticket: Option<String>,
    },
    Detach,
    Ping,
    Ls {
        path: String,
    },
    Cat {
        path: String,
    },
    Tail {
        path: String,
    },
    Log,
    Echo {
        text: String,
        path: String,
    },
    Spawn {
        kind: String,
        args: Vec<(String, String)>,
    },
    Kill {
        id: String,
    },
    Bind {
        from: String,
        to: String,
    },
    Mount {
        service: String,
        at: String,
    },
    Lifecycle {
        action: &'static str,
    },
    TelemetryPush {
        file: String,
        device: String,
        /// Stream as an artifact even when the file is small text.
        artifact: bool,
    },
    TelemetryPull {
        device: String,
        out: String,
    },
    Help {
        topic: Option<String>,
    },
    Quit,
}

/// Why a line is not a command.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum CommandError {
    #[error("unknown command '{0}' (try help)")]
    Unknown(String),
    #[error("usage: {0}")]
    Usage(&'static str),
    #[error("{what} must be an absolute path, not '{path}'")]
    NotAbsolute { what: &'static str, path: String },
    #[error("{0}")]
    Invalid(String),
}

/// A command's name, usage line and one-line description, for `help` and
/// completion.
#[derive(Clone, Copy, Debug)]
pub struct Spec {
    pub name: &'static str,
    pub usage: &'static str,
    pub about: &'static str,
}

/// Every command, in the order `help` lists them.
pub const COMMANDS: &[Spec] = &[
    spec(
        "attach",
        "attach <role> [ticket]",
        "start a session as a role",
    ),
    spec(
        "detach",
        "detach",
        "end the session (QUIT); attach again to go on",
    ),
    spec("ping", "ping", "check the hive answers"),
    spec("ls", "ls [path]", "list a directory (default /)"),
    spec("cat", "cat <path>", "print a file"),
    spec(
        "tail",
        "tail <path>",
        "print the newest records of a telemetry ring",
    ),
    spec("log", "log", "print the newest lines of /log/queen.log"),
    spec("echo", "echo <text> > <path>", "append one line to a file"),
    spec(
        "spawn",
        "spawn heartbeat ticks=N [ttl_s=S] [ops=N] | spawn gpu gpu_id=ID mem_mb=N \
         streams=N ttl_s=S [priority=N]",
        "start a worker",
    ),
    spec(
        "kill",
        "kill <worker-id>",
        "stop a worker and revoke its sessions",
    ),
    spec(
        "bind",
        "bind <from> <to>",
        "show <from> at <to> in this session",
    ),
    spec(
        "mount",
        "mount <service> <at>",
        "mount a service at a path in this session",
    ),
    spec(
        "lifecycle",
        "lifecycle cordon|drain|resume|quiesce|reset",
        "change the hive's lifecycle state",
    ),
    spec(
        "telemetry",
        "telemetry push <file> --device <id> [--artifact] | telemetry pull --device <id> \
         --out <dir>",
        "push a file as records or an artifact; pull segments and artifacts (9p, rest)",
    ),
    spec("help", "help [command]", "list commands or explain one"),
    spec("quit", "quit", "leave cohsh"),
];

const fn spec(name: &'static str, usage: &'static str, about: &'static str) -> Spec {
    Spec { name, usage, about }
}

/// The spec of a command name.
pub fn find(name: &str) -> Option<&'static Spec> {
    COMMANDS.iter().find(|s| s.name == name)
}

/// The lifecycle words `/queen/lifecycle/ctl` takes.
pub const LIFECYCLE: [&str; 5] = ["cordon", "drain", "resume", "quiesce", "reset"];

/// Parses one line; `Ok(None)` for a blank line.
pub fn parse(line: &str) -> Result<Option<ShellCommand>, CommandError> {
    let line = line.trim();
    let Some(name) = line.split_whitespace().next() else {
        return Ok(None);
    };
    let rest = line[name.len()..].trim_start();
    let args: Vec<&str> = rest.split_whitespace().collect();
    let usage = |name: &str| CommandError::Usage(find(name).map_or("", |s| s.usage));
    let exact = |n: usize| {
        if args.len() == n {
            Ok(())
        } else {
            Err(usage(name))
        }
    };
    let command = match name {
        "attach" => match args.as_slice() {
            [role] => ShellCommand::Attach {
                role: role.to_string(),
                ticket: None,
            },
            [role, ticket] => ShellCommand::Attach {
                role: role.to_string(),
                ticket: Some(ticket.to_string()),
            },
            _ => return Err(usage(name)),
        },
        "detach" => exact(0).map(|_| ShellCommand::Detach)?,
        "ping" => exact(0).map(|_| ShellCommand::Ping)?,
        "log" => exact(0).map(|_| ShellCommand::Log)?,
        "quit" | "exit" => exact(0).map(|_| ShellCommand::Quit)?,
        "ls" => match args.as_slice() {
            [] => ShellCommand::Ls { path: "/".into() },
            [path] => ShellCommand::Ls {
                path: absolute("path", path)?,
            },
            _ => return Err(usage(name)),
        },
        "cat" => {
            exact(1)?;
            ShellCommand::Cat {
                path: absolute("path", args[0])?,
            }
        }
        "tail" => {
            exact(1)?;
            ShellCommand::Tail {
                path: absolute("path", args[0])?,
            }
        }
        "echo" => parse_echo(rest)?,
        "spawn" => parse_spawn(&args)?,
        "kill" => {
            exact(1)?;
            ShellCommand::Kill {
                id: args[0].to_string(),
            }
        }
        "bind" => {
            exact(2)?;
            ShellCommand::Bind {
                from: absolute("from", args[0])?,
                to: absolute("to", args[1])?,
            }
        }
        "mount" => {
            exact(2)?;
            ShellCommand::Mount {
                service: args[0].to_string(),
                at: absolute("at", args[1])?,
            }
        }
        "lifecycle" => {
            exact(1)?;
            let action = LIFECYCLE
                .iter()
                .find(|a| **a == args[0])
                .ok_or_else(|| usage(name))?;
            ShellCommand::Lifecycle { action }
        }
        "telemetry" => parse_telemetry(&args)?,
        "help" => match args.as_slice() {
            [] => ShellCommand::Help { topic: None },
            [topic] => ShellCommand::Help {
                topic: Some(topic.to_string()),
            },
            _ => return Err(usage(name)),
        },
        other => return Err(CommandError::Unknown(other.to_string())),
    };
    Ok(Some(command))
}

fn absolute(what: &'static str, path: &str) -> Result<String, CommandError> {
    if path.starts_with('/') {
        Ok(path.to_string())
    } else {
        Err(CommandError::NotAbsolute {
            what,
            path: path.to_string(),
        })
    }
}

fn parse_echo(rest: &str) -> Result<ShellCommand, CommandError> {
    let usage = CommandError::Usage("echo <text> > <path>");
    let (text, path) = rest.rsplit_once('>').ok_or(usage.clone())?;
    let path = path.trim();
    let text = unquote(text.trim());
    if text.is_empty() || path.is_empty() || path.contains(char::is_whitespace) {
        return Err(usage);
    }
    Ok(ShellCommand::Echo {
        text: text.to_string(),
        path: absolute("path", path)?,
    })
}

/// Drops one pair of matching quotes around the whole text.
fn unquote(text: &str) -> &str {
    for q in ['\'', '"'] {
        if let Some(inner) = text.strip_prefix(q).and_then(|t| t.strip_suffix(q)) {
            return inner;
        }
    }
    text
}

fn parse_spawn(args: &[&str]) -> Result<ShellCommand, CommandError> {
    let Some((kind, pairs)) = args.split_first() else {
        return Err(CommandError::Usage(find("spawn").map_or("", |s| s.usage)));
    };
    let mut parsed: Vec<(String, String)> = Vec::new();
    for pair in pairs {
        let (key, value) = pair
            .split_once('=')
            .filter(|(k, v)| !k.is_empty() && !v.is_empty())
            .ok_or_else(|| CommandError::Invalid(format!("spawn: '{pair}' is not key=value")))?;
        if parsed.iter().any(|(k, _)| k == key) {
            return Err(CommandError::Invalid(format!("spawn: {key} given twice")));
        }
        parsed.push((key.to_string(), value.to_string()));
    }
    // The same check the hive makes, so a script fails at --check time.
    ctl::spawn_json(kind, &parsed).map_err(|e| CommandError::Invalid(format!("spawn: {e}")))?;
    Ok(ShellCommand::Spawn {
        kind: kind.to_string(),
        args: parsed,
    })
}

const TELEMETRY_USAGE: &str =
    "telemetry push <file> --device <id> [--artifact] | telemetry pull --device <id> --out <dir>";

fn parse_telemetry(args: &[&str]) -> Result<ShellCommand, CommandError> {
    let usage = || CommandError::Usage(TELEMETRY_USAGE);
    let (verb, rest) = args.split_first().ok_or_else(usage)?;
    let mut device = None;
    let mut out = None;
    let mut file = None;
    let mut artifact = false;
    let mut words = rest.iter();
    // Each pass takes one or two words; bounded by the line's words.
    while let Some(word) = words.next() {
        match *word {
            "--device" => device = Some(words.next().ok_or_else(usage)?.to_string()),
            "--out" => out = Some(words.next().ok_or_else(usage)?.to_string()),
            "--artifact" => artifact = true,
            w if w.starts_with("--") => return Err(usage()),
            w if file.is_none() => file = Some(w.to_string()),
            _ => return Err(usage()),
        }
    }
    match (*verb, device, file, out) {
        ("push", Some(device), Some(file), None) => Ok(ShellCommand::TelemetryPush {
            file,
            device,
            artifact,
        }),
        ("pull", Some(device), None, Some(out)) if !artifact => {
            Ok(ShellCommand::TelemetryPull { device, out })
        }
        _ => Err(usage()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(line: &str) -> ShellCommand {
        parse(line)
            .unwrap_or_else(|e| panic!("{line}: {e}"))
            .unwrap_or_else(|| panic!("{line}: blank"))
    }

    #[test]
    fn echo_splits_at_the_last_arrow() {
        assert_eq!(
            ok(r#"echo {"spawn":"heartbeat","ticks":3} > /queen/ctl"#),
            ShellCommand::Echo {
                text: r#"{"spawn":"heartbeat","ticks":3}"#.into(),
                path: "/queen/ctl".into()
            }
        );
        assert_eq!(
            ok("echo 'a > b' > /log/queen.log"),
            ShellCommand::Echo {
                text: "a > b".into(),
                path: "/log/queen.log".into()
            }
        );
        assert!(parse("echo hello").is_err());
        assert!(parse("echo > /x").is_err());
        assert!(parse("echo x > relative").is_err());
    }

    #[test]
    fn spawn_is_checked_like_the_hive_does() {
        assert_eq!(
            ok("spawn heartbeat ticks=3 ttl_s=60"),
            ShellCommand::Spawn {
                kind: "heartbeat".into(),
                args: vec![("ticks".into(), "3".into()), ("ttl_s".into(), "60".into())]
            }
        );
        assert!(parse("spawn heartbeat").is_err());
        assert!(parse("spawn heartbeat ticks=x").is_err());
        assert!(parse("spawn heartbeat ticks=1 ticks=2").is_err());
        assert!(parse("spawn lora ticks=1").is_err());
        assert!(parse("spawn").is_err());
    }

    #[test]
    fn argument_counts_and_paths() {
        assert_eq!(ok("ls"), ShellCommand::Ls { path: "/".into() });
        assert_eq!(
            ok("  cat   /proc/boot "),
            ShellCommand::Cat {
                path: "/proc/boot".into()
            }
        );
        assert!(matches!(parse("cat"), Err(CommandError::Usage(_))));
        assert!(matches!(
            parse("cat proc"),
            Err(CommandError::NotAbsolute { .. })
        ));
        assert!(parse("ping now").is_err());
        assert_eq!(
            ok("lifecycle cordon"),
            ShellCommand::Lifecycle { action: "cordon" }
        );
        assert!(parse("lifecycle nap").is_err());
        assert_eq!(
            ok("mount logs /l"),
            ShellCommand::Mount {
                service: "logs".into(),
                at: "/l".into()
            }
        );
        assert_eq!(
            ok("telemetry push f.txt --device d1"),
            ShellCommand::TelemetryPush {
                file: "f.txt".into(),
                device: "d1".into(),
                artifact: false,
            }
        );
        assert_eq!(
            ok("telemetry push --artifact big.bin --device d1"),
            ShellCommand::TelemetryPush {
                file: "big.bin".into(),
                device: "d1".into(),
                artifact: true,
            }
        );
        assert_eq!(
            ok("telemetry pull --device d1 --out /tmp/x"),
            ShellCommand::TelemetryPull {
                device: "d1".into(),
                out: "/tmp/x".into(),
            }
        );
        assert!(parse("telemetry pull --device d1").is_err());
        assert!(parse("telemetry push a b --device d1").is_err());
    }

    #[test]
    fn blank_and_unknown() {
        assert_eq!(parse("   "), Ok(None));
        assert_eq!(parse("FOO"), Err(CommandError::Unknown("FOO".into())));
    }

    #[test]
    fn every_command_has_a_spec() {
        for name in [
            "attach",
            "detach",
            "ping",
            "ls",
            "cat",
            "tail",
            "log",
            "echo",
            "spawn",
            "kill",
            "bind",
            "mount",
            "lifecycle",
            "telemetry",
            "help",
            "quit",
        ] {
            assert!(find(name).is_some(), "{name}");
        }
    }
}
