//! Role secrets and the console token, kept in `secrets.toml` (mode 0600).
//!
//! Generated with 32 random bytes per role on first start. The placeholder
//! `changeme` is refused unless the manifest enables dev mode. Nothing in
//! this module logs a secret's value.

use cohesix_core::Secrets;
use cohesix_ticket::Role;
use rand::RngCore;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::Path;

/// The upstream default secret; accepted only in dev mode.
pub const PLACEHOLDER: &str = "changeme";

#[derive(Debug, thiserror::Error)]
pub enum SecretsError {
    #[error("cannot read {path}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("cannot write {path}")]
    Write {
        path: String,
        source: std::io::Error,
    },
    #[error("{path} is not valid: {detail}")]
    Parse { path: String, detail: String },
    #[error("{path} is readable by group or others (mode {mode:o}); run chmod 600 on it")]
    Mode { path: String, mode: u32 },
    #[error(
        "{what} is the placeholder '{PLACEHOLDER}'; set a real secret or enable hive.dev_mode"
    )]
    Placeholder { what: String },
    #[error("{what} is empty")]
    Empty { what: String },
}

/// The file's shape.
#[derive(Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SecretsFile {
    /// Token every console client presents with `AUTH`.
    pub console_token: String,
    /// Role name → secret (hex of random bytes, or any string).
    pub roles: BTreeMap<String, String>,
}

impl std::fmt::Debug for SecretsFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SecretsFile(redacted)")
    }
}

impl SecretsFile {
    fn generate() -> SecretsFile {
        let roles = Role::ALL
            .iter()
            .map(|r| (r.as_str().to_string(), random_hex()))
            .collect();
        SecretsFile {
            console_token: random_hex(),
            roles,
        }
    }

    /// The secrets as the core wants them.
    pub fn to_core(&self) -> Secrets {
        let roles = self
            .roles
            .iter()
            .map(|(k, v)| (k.clone(), v.as_bytes().to_vec()))
            .collect();
        Secrets { roles }
    }

    fn check(&self, dev_mode: bool) -> Result<(), SecretsError> {
        let named = std::iter::once(("console_token".to_string(), &self.console_token))
            .chain(self.roles.iter().map(|(k, v)| (format!("roles.{k}"), v)));
        for (what, value) in named {
            if value.is_empty() {
                return Err(SecretsError::Empty { what });
            }
            if value == PLACEHOLDER && !dev_mode {
                return Err(SecretsError::Placeholder { what });
            }
        }
        Ok(())
    }
}

fn random_hex() -> String {
    let mut bytes = [0u8; 32];
    rand::thread_rng().fill_bytes(&mut bytes);
    hex::encode(bytes)
}

/// Loads `dir/secrets.toml`, creating it (mode 0600) when missing.
pub fn load_or_create(dir: &Path, dev_mode: bool) -> Result<SecretsFile, SecretsError> {
    let path = dir.join("secrets.toml");
    let shown = path.display().to_string();
    if !path.exists() {
        let file = SecretsFile::generate();
        let text = toml::to_string(&file).map_err(|e| SecretsError::Parse {
            path: shown.clone(),
            detail: e.to_string(),
        })?;
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&path)
            .map_err(|source| SecretsError::Write {
                path: shown.clone(),
                source,
            })?;
        f.write_all(text.as_bytes())
            .map_err(|source| SecretsError::Write {
                path: shown.clone(),
                source,
            })?;
        tracing::info!(path = %shown, "generated new role secrets");
        return Ok(file);
    }
    let mode = std::fs::metadata(&path)
        .map_err(|source| SecretsError::Read {
            path: shown.clone(),
            source,
        })?
        .permissions()
        .mode();
    if mode & 0o077 != 0 {
        return Err(SecretsError::Mode {
            path: shown,
            mode: mode & 0o777,
        });
    }
    let text = std::fs::read_to_string(&path).map_err(|source| SecretsError::Read {
        path: shown.clone(),
        source,
    })?;
    let file: SecretsFile = toml::from_str(&text).map_err(|e| SecretsError::Parse {
        path: shown.clone(),
        detail: e.message().to_string(),
    })?;
    file.check(dev_mode)?;
    Ok(file)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_start_writes_a_private_file_and_reloads_it() {
        let dir = tempfile::tempdir().unwrap();
        let a = load_or_create(dir.path(), false).unwrap();
        let mode = std::fs::metadata(dir.path().join("secrets.toml"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        let b = load_or_create(dir.path(), false).unwrap();
        assert_eq!(a.console_token, b.console_token);
        assert_eq!(a.roles.len(), Role::ALL.len());
    }

    #[test]
    fn placeholder_is_refused_outside_dev_mode() {
        let dir = tempfile::tempdir().unwrap();
        let mut file = SecretsFile::generate();
        file.console_token = PLACEHOLDER.into();
        let path = dir.path().join("secrets.toml");
        std::fs::write(&path, toml::to_string(&file).unwrap()).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        let err = load_or_create(dir.path(), false).unwrap_err();
        assert!(matches!(err, SecretsError::Placeholder { .. }), "{err}");
        assert!(!err.to_string().contains(&file.roles["queen"]));
        assert!(load_or_create(dir.path(), true).is_ok());
    }

    #[test]
    fn world_readable_file_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        load_or_create(dir.path(), false).unwrap();
        let path = dir.path().join("secrets.toml");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        assert!(matches!(
            load_or_create(dir.path(), false),
            Err(SecretsError::Mode { .. })
        ));
    }
}
