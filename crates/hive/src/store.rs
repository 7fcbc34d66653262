//! The hive's durable state in its data directory.
//!
//! - `state.redb`: an embedded transactional store holding the worker-id
//!   reservation (so ids are never reused across restarts).
//! - `audit.log`: the append-only audit stream, one line per event, rotated
//!   to `audit.log.1` when it reaches [`AUDIT_ROTATE_BYTES`].
//!
//! Telemetry segments live beside these (see the ingest store).

use cohesix_core::Store;
use redb::{Database, TableDefinition};
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

const META: TableDefinition<&str, u64> = TableDefinition::new("meta");
const WORKER_IDS_RESERVED: &str = "worker_ids_reserved";
/// The audit log is rotated once it reaches this size.
pub const AUDIT_ROTATE_BYTES: u64 = 64 * 1024 * 1024;

/// Errors opening the data directory.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("cannot create data directory {path}")]
    DataDir {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot open state database {path}: {detail}")]
    Database { path: PathBuf, detail: String },
    #[error("cannot open audit log {path}")]
    Audit {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// The durable store behind one hive.
pub struct DiskStore {
    db: Database,
    audit_path: PathBuf,
    audit: File,
    audit_bytes: u64,
}

impl DiskStore {
    /// Opens (creating when missing) the store in `dir`.
    pub fn open(dir: &Path) -> Result<DiskStore, StoreError> {
        std::fs::create_dir_all(dir).map_err(|source| StoreError::DataDir {
            path: dir.to_path_buf(),
            source,
        })?;
        let db_path = dir.join("state.redb");
        let db = Database::create(&db_path).map_err(|e| {
            let hint = match e {
                redb::DatabaseError::DatabaseAlreadyOpen => {
                    " (another hive is running on this data directory; stop it or pass another --data-dir)"
                }
                _ => "",
            };
            StoreError::Database {
                path: db_path.clone(),
                detail: format!("{e}{hint}"),
            }
        })?;
        let audit_path = dir.join("audit.log");
        let audit = open_append(&audit_path)?;
        let audit_bytes = audit.metadata().map(|m| m.len()).unwrap_or(0);
        Ok(DiskStore {
            db,
            audit_path,
            audit,
            audit_bytes,
        })
    }

    /// The first worker id that was never reserved.
    pub fn next_worker_id(&self) -> Result<u64, String> {
        let txn = self.db.begin_read().map_err(|e| e.to_string())?;
        let table = match txn.open_table(META) {
            Ok(t) => t,
            Err(redb::TableError::TableDoesNotExist(_)) => return Ok(1),
            Err(e) => return Err(e.to_string()),
        };
        let value = table.get(WORKER_IDS_RESERVED).map_err(|e| e.to_string())?;
        Ok(value.map_or(1, |v| v.value()).max(1))
    }

    fn rotate_audit(&mut self) {
        let rotated = self.audit_path.with_extension("log.1");
        if let Err(e) = std::fs::rename(&self.audit_path, &rotated) {
            tracing::warn!(error = %e, "audit log rotation failed");
            return;
        }
        match open_append(&self.audit_path) {
            Ok(f) => {
                self.audit = f;
                self.audit_bytes = 0;
            }
            Err(e) => tracing::error!(error = %e, "cannot reopen audit log"),
        }
    }
}

fn open_append(path: &Path) -> Result<File, StoreError> {
    OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map_err(|source| StoreError::Audit {
            path: path.to_path_buf(),
            source,
        })
}

impl Store for DiskStore {
    fn reserve_worker_ids(&mut self, upto: u64) -> Result<(), String> {
        let txn = self.db.begin_write().map_err(|e| e.to_string())?;
        {
            let mut table = txn.open_table(META).map_err(|e| e.to_string())?;
            table
                .insert(WORKER_IDS_RESERVED, upto)
                .map_err(|e| e.to_string())?;
        }
        txn.commit().map_err(|e| e.to_string())
    }

    fn audit(&mut self, line: &str) {
        if self.audit_bytes >= AUDIT_ROTATE_BYTES {
            self.rotate_audit();
        }
        let mut buf = Vec::with_capacity(line.len() + 1);
        buf.extend_from_slice(line.as_bytes());
        buf.push(b'\n');
        match self.audit.write_all(&buf) {
            Ok(()) => self.audit_bytes += buf.len() as u64,
            Err(e) => tracing::error!(error = %e, "audit write failed"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reservation_survives_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = DiskStore::open(dir.path()).unwrap();
        assert_eq!(s.next_worker_id().unwrap(), 1);
        s.reserve_worker_ids(1025).unwrap();
        drop(s);
        let s = DiskStore::open(dir.path()).unwrap();
        assert_eq!(s.next_worker_id().unwrap(), 1025);
    }

    #[test]
    fn audit_lines_are_appended() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = DiskStore::open(dir.path()).unwrap();
        s.audit("one");
        s.audit("two");
        let text = std::fs::read_to_string(dir.path().join("audit.log")).unwrap();
        assert_eq!(text, "one\ntwo\n");
    }
}
