//! `--mint-ticket`: signs a ticket with a role secret from the hive's data
//! directory (`<data-dir>/secrets.toml`, the file the hive writes on first
//! start), and finds the console token there when none was given.
//!
//! This only reads the file; it never prints or logs a secret other than
//! the ticket asked for.

use cohesix_ticket::{Claims, Role};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

/// The parts of `secrets.toml` the shell reads.
#[derive(Deserialize)]
struct SecretsFile {
    console_token: String,
    roles: BTreeMap<String, String>,
}

/// Why a ticket could not be minted.
#[derive(Debug, thiserror::Error)]
pub enum MintError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path} is not a hive secrets file: {detail}")]
    Parse { path: PathBuf, detail: String },
    #[error("unknown role '{0}' (queen, worker-heartbeat, worker-gpu, worker-bus, worker-lora)")]
    UnknownRole(String),
    #[error("{path} holds no secret for role {role}")]
    NoSecret { path: PathBuf, role: &'static str },
    #[error("role {0} needs --ticket-subject <worker-id>")]
    NeedSubject(&'static str),
    #[error("cannot mint: {0}")]
    Ticket(#[from] cohesix_ticket::TicketError),
}

fn load(dir: &Path) -> Result<(PathBuf, SecretsFile), MintError> {
    let path = dir.join("secrets.toml");
    let text = std::fs::read_to_string(&path).map_err(|source| MintError::Read {
        path: path.clone(),
        source,
    })?;
    let file = toml::from_str(&text).map_err(|e: toml::de::Error| MintError::Parse {
        path: path.clone(),
        detail: e.message().to_string(),
    })?;
    Ok((path, file))
}

/// The console token in `<dir>/secrets.toml`, if the file can be read.
pub fn console_token(dir: &Path) -> Option<String> {
    load(dir).ok().map(|(_, file)| file.console_token)
}

/// A ticket for `role` (and `subject`, required for worker roles), valid
/// for `ttl_s` seconds from now.
pub fn mint(
    dir: &Path,
    role: &str,
    subject: Option<&str>,
    ttl_s: u64,
) -> Result<String, MintError> {
    let role: Role = role
        .parse()
        .map_err(|_| MintError::UnknownRole(role.to_string()))?;
    if role.is_worker() && subject.is_none() {
        return Err(MintError::NeedSubject(role.as_str()));
    }
    let (path, file) = load(dir)?;
    let secret = file.roles.get(role.as_str()).ok_or(MintError::NoSecret {
        path,
        role: role.as_str(),
    })?;
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64);
    let mut claims = Claims::new(role, now, now.saturating_add(ttl_s.saturating_mul(1000)));
    claims.subject = subject.map(str::to_string);
    Ok(cohesix_ticket::mint(&claims, secret.as_bytes())?)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dir_with_secrets() -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        let text = "console_token = \"tok\"\n[roles]\nqueen = \"q-secret\"\n\
                    worker-heartbeat = \"w-secret\"\n";
        std::fs::write(dir.path().join("secrets.toml"), text).unwrap();
        dir
    }

    #[test]
    fn mints_a_ticket_the_role_secret_verifies() {
        let dir = dir_with_secrets();
        let ticket = mint(dir.path(), "worker-heartbeat", Some("worker-3"), 60).unwrap();
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_millis() as u64;
        let limits = cohesix_ticket::Limits::default();
        let claims = cohesix_ticket::verify(&ticket, b"w-secret", now, &limits).unwrap();
        assert_eq!(claims.role, Role::WorkerHeartbeat);
        assert_eq!(claims.subject.as_deref(), Some("worker-3"));
        assert_eq!(console_token(dir.path()).as_deref(), Some("tok"));
    }

    #[test]
    fn refuses_what_no_hive_would_accept() {
        let dir = dir_with_secrets();
        assert!(matches!(
            mint(dir.path(), "worker-heartbeat", None, 60),
            Err(MintError::NeedSubject(_))
        ));
        assert!(matches!(
            mint(dir.path(), "king", None, 60),
            Err(MintError::UnknownRole(_))
        ));
        assert!(matches!(
            mint(dir.path(), "worker-gpu", Some("worker-1"), 60),
            Err(MintError::NoSecret { .. })
        ));
        let empty = tempfile::tempdir().unwrap();
        assert!(matches!(
            mint(empty.path(), "queen", None, 60),
            Err(MintError::Read { .. })
        ));
    }
}
