//! Console commands: one line from a client, parsed into a [`Command`].
//!
//! Grammar: `VERB` then arguments separated by one or more spaces. Verbs are
//! upper case and case-sensitive, as upstream: `ls /` is an unknown verb, so
//! a client that works here works against an upstream hive too. The one
//! exception to space splitting is `ECHO <path> <text>`, whose text is the
//! rest of the line after the single space that follows the path, kept
//! byte for byte (JSON, spaces and all).
//!
//! Parsing says nothing about whether a command is allowed: the hive checks
//! authentication, attachment, role and paths.

use std::fmt;

/// A credential read from the wire: an auth token or a ticket.
///
/// Its `Debug` output is redacted so that logging a [`Command`] never logs
/// a secret. Comparing with `==` is not constant-time: the hive compares
/// credentials with a constant-time function on [`Secret::expose`].
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Secret {
        Secret(value.into())
    }

    /// The secret itself, for the check that needs it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(..)")
    }
}

/// One parsed console line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Command {
    /// `AUTH <token>`: must be the first frame of a connection.
    Auth { token: Secret },
    /// `ATTACH <role> [ticket]`: the role is not checked here.
    Attach {
        role: String,
        ticket: Option<Secret>,
    },
    /// `PING`: answered `OK PING reply=pong` then `PONG`.
    Ping,
    /// `LS <path>`.
    Ls { path: String },
    /// `CAT <path>`.
    Cat { path: String },
    /// `TAIL <path>`.
    Tail { path: String },
    /// `ECHO <path> <text>`: appends `text`, exactly as sent, to `path`.
    Echo { path: String, text: String },
    /// `LOG`: streams `/log/queen.log`.
    Log,
    /// `SPAWN <role> [key=value ...]`, keys unique, in the order given.
    Spawn {
        role: String,
        args: Vec<(String, String)>,
    },
    /// `KILL <worker-id>`.
    Kill { id: String },
    /// `QUIT`: the hive closes the connection.
    Quit,
    /// `HELP`.
    Help,
    /// One of upstream's diagnostics verbs (`BI CAPS MEM TEST NETTEST
    /// NETSTATS CACHELOG`), whatever its arguments; the hive answers
    /// `ERR <VERB> reason=policy detail=unsupported`.
    Unsupported(&'static str),
}

impl Command {
    /// The verb as written on the wire, for the ack (`OK <VERB>`).
    pub fn verb(&self) -> &'static str {
        match self {
            Command::Auth { .. } => "AUTH",
            Command::Attach { .. } => "ATTACH",
            Command::Ping => "PING",
            Command::Ls { .. } => "LS",
            Command::Cat { .. } => "CAT",
            Command::Tail { .. } => "TAIL",
            Command::Echo { .. } => "ECHO",
            Command::Log => "LOG",
            Command::Spawn { .. } => "SPAWN",
            Command::Kill { .. } => "KILL",
            Command::Quit => "QUIT",
            Command::Help => "HELP",
            Command::Unsupported(verb) => verb,
        }
    }
}

/// Upstream's diagnostics verbs, recognised so they get a precise refusal.
const DIAGNOSTICS: [&str; 7] = [
    "BI", "CAPS", "MEM", "TEST", "NETTEST", "NETSTATS", "CACHELOG",
];

/// Why a line is not a command.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    /// The line holds nothing but spaces.
    #[error("empty command")]
    Empty,

    /// The first word is not a verb (lowercase verbs included).
    #[error("unknown verb {0:?}")]
    UnknownVerb(String),

    /// The verb is known but its arguments are missing or too many.
    #[error("usage: {usage}")]
    Usage {
        verb: &'static str,
        usage: &'static str,
    },

    /// A `SPAWN` argument is not `key=value`, or repeats a key.
    #[error("{verb} argument {reason}")]
    BadArgument {
        verb: &'static str,
        reason: &'static str,
    },
}

impl ParseError {
    /// The longest verb kept in [`ParseError::UnknownVerb`]; longer ones are cut.
    pub const MAX_VERB: usize = 32;

    /// The verb to answer with: `PARSE` for lines without a known verb.
    pub fn verb(&self) -> &'static str {
        match self {
            ParseError::Empty | ParseError::UnknownVerb(_) => "PARSE",
            ParseError::Usage { verb, .. } | ParseError::BadArgument { verb, .. } => verb,
        }
    }

    /// The ack line the hive sends for this error.
    ///
    /// Unknown verbs get upstream's exact `ERR PARSE reason=policy
    /// detail=unsupported console command`. Bad arguments, which upstream
    /// does not document, get `ERR <VERB> reason=policy detail=invalid-args
    /// error=<message>`.
    pub fn ack(&self) -> String {
        match self {
            ParseError::Empty | ParseError::UnknownVerb(_) => crate::ack::PARSE_UNSUPPORTED.into(),
            _ => {
                let error = self.to_string();
                crate::ack::err(
                    self.verb(),
                    crate::Reason::Policy,
                    Some("invalid-args"),
                    None,
                    Some(&error),
                )
            }
        }
    }
}

/// Parses one console line (without its frame).
pub fn parse(line: &str) -> Result<Command, ParseError> {
    let line = line.trim_start_matches(' ');
    let (verb, rest) = line.split_once(' ').unwrap_or((line, ""));
    if verb.is_empty() {
        return Err(ParseError::Empty);
    }
    if let Some(diagnostic) = DIAGNOSTICS.iter().find(|d| **d == verb) {
        return Ok(Command::Unsupported(diagnostic));
    }
    if verb == "ECHO" {
        return parse_echo(rest);
    }

    let args: Vec<&str> = rest.split(' ').filter(|arg| !arg.is_empty()).collect();
    let one = |verb, usage| match args.as_slice() {
        [arg] => Ok(arg.to_string()),
        _ => Err(ParseError::Usage { verb, usage }),
    };
    let none = |command: Command, usage| match args.as_slice() {
        [] => Ok(command),
        _ => Err(ParseError::Usage {
            verb: command.verb(),
            usage,
        }),
    };
    match verb {
        "AUTH" => one("AUTH", "AUTH <token>").map(|token| Command::Auth {
            token: Secret(token),
        }),
        "ATTACH" => parse_attach(&args),
        "PING" => none(Command::Ping, "PING"),
        "LS" => one("LS", "LS <path>").map(|path| Command::Ls { path }),
        "CAT" => one("CAT", "CAT <path>").map(|path| Command::Cat { path }),
        "TAIL" => one("TAIL", "TAIL <path>").map(|path| Command::Tail { path }),
        "LOG" => none(Command::Log, "LOG"),
        "SPAWN" => parse_spawn(&args),
        "KILL" => one("KILL", "KILL <worker-id>").map(|id| Command::Kill { id }),
        "QUIT" => none(Command::Quit, "QUIT"),
        "HELP" => none(Command::Help, "HELP"),
        _ => Err(ParseError::UnknownVerb(
            cut(verb, ParseError::MAX_VERB).to_string(),
        )),
    }
}

fn parse_echo(rest: &str) -> Result<Command, ParseError> {
    let usage = ParseError::Usage {
        verb: "ECHO",
        usage: "ECHO <path> <text>",
    };
    let rest = rest.trim_start_matches(' ');
    let Some((path, text)) = rest.split_once(' ') else {
        return Err(usage);
    };
    if path.is_empty() || text.is_empty() {
        return Err(usage);
    }
    Ok(Command::Echo {
        path: path.to_string(),
        text: text.to_string(),
    })
}

fn parse_attach(args: &[&str]) -> Result<Command, ParseError> {
    match args {
        [role] => Ok(Command::Attach {
            role: role.to_string(),
            ticket: None,
        }),
        [role, ticket] => Ok(Command::Attach {
            role: role.to_string(),
            ticket: Some(Secret(ticket.to_string())),
        }),
        _ => Err(ParseError::Usage {
            verb: "ATTACH",
            usage: "ATTACH <role> [ticket]",
        }),
    }
}

fn parse_spawn(args: &[&str]) -> Result<Command, ParseError> {
    let Some((role, pairs)) = args.split_first() else {
        return Err(ParseError::Usage {
            verb: "SPAWN",
            usage: "SPAWN <role> [key=value ...]",
        });
    };
    let mut parsed: Vec<(String, String)> = Vec::with_capacity(pairs.len());
    for pair in pairs {
        let bad = |reason| ParseError::BadArgument {
            verb: "SPAWN",
            reason,
        };
        let (key, value) = pair.split_once('=').ok_or(bad("is not key=value"))?;
        if key.is_empty() || value.is_empty() {
            return Err(bad("has an empty key or value"));
        }
        if parsed.iter().any(|(seen, _)| seen == key) {
            return Err(bad("repeats a key"));
        }
        parsed.push((key.to_string(), value.to_string()));
    }
    Ok(Command::Spawn {
        role: role.to_string(),
        args: parsed,
    })
}

/// `text` cut to at most `max` bytes at a char boundary.
pub(crate) fn cut(text: &str, max: usize) -> &str {
    let mut end = text.len().min(max);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(line: &str) -> Command {
        parse(line).unwrap_or_else(|e| panic!("{line:?}: {e}"))
    }

    #[test]
    fn transcript_lines_parse() {
        assert_eq!(
            ok("AUTH changeme"),
            Command::Auth {
                token: Secret::new("changeme")
            }
        );
        assert_eq!(
            ok("ATTACH queen"),
            Command::Attach {
                role: "queen".into(),
                ticket: None
            }
        );
        assert_eq!(ok("PING"), Command::Ping);
        assert_eq!(
            ok("LS /proc/lifecycle"),
            Command::Ls {
                path: "/proc/lifecycle".into()
            }
        );
        assert_eq!(
            ok("CAT /nope"),
            Command::Cat {
                path: "/nope".into()
            }
        );
        assert_eq!(
            ok("TAIL /worker/worker-1/telemetry"),
            Command::Tail {
                path: "/worker/worker-1/telemetry".into()
            }
        );
        assert_eq!(parse("FOO"), Err(ParseError::UnknownVerb("FOO".into())));
    }

    #[test]
    fn echo_text_is_the_rest_of_the_line_exactly() {
        let Command::Echo { path, text } = ok(r#"ECHO /queen/ctl {"spawn":"heartbeat","ticks":3}"#)
        else {
            panic!("not an echo");
        };
        assert_eq!(path, "/queen/ctl");
        assert_eq!(text, r#"{"spawn":"heartbeat","ticks":3}"#);
        assert_eq!(text.len(), 31, "the transcript acks bytes=31");

        let spaced = ok("ECHO /log/queen.log  two  spaces kept ");
        assert_eq!(
            spaced,
            Command::Echo {
                path: "/log/queen.log".into(),
                text: " two  spaces kept ".into()
            }
        );
    }

    #[test]
    fn echo_needs_a_path_and_text() {
        for line in ["ECHO", "ECHO /queen/ctl", "ECHO /queen/ctl ", "ECHO  "] {
            assert_eq!(parse(line).unwrap_err().verb(), "ECHO", "{line:?}");
        }
    }

    #[test]
    fn attach_takes_an_optional_ticket() {
        let Command::Attach { role, ticket } = ok("ATTACH worker-heartbeat cohesix-ticket-01.ab")
        else {
            panic!("not an attach");
        };
        assert_eq!(role, "worker-heartbeat");
        assert_eq!(
            ticket.map(|t| t.expose().to_string()).as_deref(),
            Some("cohesix-ticket-01.ab")
        );
        assert!(parse("ATTACH").is_err());
        assert!(parse("ATTACH queen t extra").is_err());
    }

    #[test]
    fn secrets_are_not_in_debug_output() {
        let shown = format!("{:?} {:?}", ok("AUTH hunter2"), ok("ATTACH queen tkt-xyz"));
        assert!(
            !shown.contains("hunter2") && !shown.contains("tkt-xyz"),
            "{shown}"
        );
    }

    #[test]
    fn spawn_keeps_key_value_pairs_in_order() {
        assert_eq!(
            ok("SPAWN heartbeat ticks=100 ttl_s=5"),
            Command::Spawn {
                role: "heartbeat".into(),
                args: vec![("ticks".into(), "100".into()), ("ttl_s".into(), "5".into())],
            }
        );
        assert_eq!(
            ok("SPAWN gpu"),
            Command::Spawn {
                role: "gpu".into(),
                args: vec![]
            }
        );
        let bad = |reason| {
            Err(ParseError::BadArgument {
                verb: "SPAWN",
                reason,
            })
        };
        assert_eq!(parse("SPAWN heartbeat ticks"), bad("is not key=value"));
        assert_eq!(
            parse("SPAWN heartbeat =1"),
            bad("has an empty key or value")
        );
        assert_eq!(
            parse("SPAWN heartbeat ticks=1 ticks=2"),
            bad("repeats a key")
        );
        assert!(matches!(
            parse("SPAWN"),
            Err(ParseError::Usage { verb: "SPAWN", .. })
        ));
    }

    #[test]
    fn argument_counts_are_checked() {
        let usage = |verb, usage| Err(ParseError::Usage { verb, usage });
        assert_eq!(parse("PING now"), usage("PING", "PING"));
        assert_eq!(parse("LS"), usage("LS", "LS <path>"));
        assert_eq!(parse("LS /a /b"), usage("LS", "LS <path>"));
        assert_eq!(parse("KILL"), usage("KILL", "KILL <worker-id>"));
        assert_eq!(parse("AUTH"), usage("AUTH", "AUTH <token>"));
        assert_eq!(parse("QUIT x"), usage("QUIT", "QUIT"));
        assert_eq!(
            ok("KILL worker-7"),
            Command::Kill {
                id: "worker-7".into()
            }
        );
        assert_eq!(ok("LOG"), Command::Log);
        assert_eq!(ok("HELP"), Command::Help);
        assert_eq!(ok("QUIT"), Command::Quit);
    }

    #[test]
    fn extra_spaces_between_arguments_are_tolerated() {
        assert_eq!(
            ok("  LS   /proc  "),
            Command::Ls {
                path: "/proc".into()
            }
        );
        assert_eq!(ok("PING "), Command::Ping);
    }

    #[test]
    fn verbs_are_case_sensitive_upper_case() {
        assert_eq!(parse("ping"), Err(ParseError::UnknownVerb("ping".into())));
        assert_eq!(parse("Ls /"), Err(ParseError::UnknownVerb("Ls".into())));
    }

    #[test]
    fn diagnostics_verbs_are_recognised_as_unsupported() {
        for verb in DIAGNOSTICS {
            assert_eq!(ok(verb), Command::Unsupported(verb));
            assert_eq!(ok(&format!("{verb} arg")).verb(), verb);
        }
    }

    #[test]
    fn empty_lines_and_long_unknown_verbs() {
        assert_eq!(parse(""), Err(ParseError::Empty));
        assert_eq!(parse("   "), Err(ParseError::Empty));
        let long = "X".repeat(100);
        assert_eq!(parse(&long), Err(ParseError::UnknownVerb("X".repeat(32))));
    }

    #[test]
    fn parse_errors_become_acks() {
        assert_eq!(
            parse("FOO").unwrap_err().ack(),
            "ERR PARSE reason=policy detail=unsupported console command"
        );
        assert_eq!(
            parse("LS").unwrap_err().ack(),
            "ERR LS reason=policy detail=invalid-args error=usage: LS <path>"
        );
    }

    #[test]
    fn every_command_names_its_verb() {
        for line in [
            "AUTH t",
            "ATTACH queen",
            "ECHO /a b",
            "SPAWN gpu",
            "KILL worker-1",
        ] {
            assert_eq!(ok(line).verb(), line.split(' ').next().unwrap());
        }
    }
}
