//! The four file operations the REST routes offer, as 9P over one lease.
//!
//! `ls` lists, `cat` reads a whole file within a bound, `tail` keeps the
//! newest bytes of a file within a bound, `echo` appends one record and,
//! for control files, reads back what the write produced (the hive answers
//! a read of a control fid with the result of the last write on it, e.g.
//! the new worker id after a spawn).
//!
//! Append-only files (qid type APPEND: rings, logs) ignore read offsets and
//! return data from the reader's cursor, so they are read until an empty
//! read; other files end at the first short read.
//!
//! This module does no validation of paths or sizes beyond its bounds: the
//! routes do that before a lease is taken.

use cohesix_client::{Client, Error as ClientError, File, OpenMode};
use cohesix_ninep::backend::qid_type;

/// Why an operation failed.
#[derive(Debug, thiserror::Error)]
pub enum OpError {
    #[error(transparent)]
    Client(#[from] ClientError),
    /// The file holds more than the caller's bound.
    #[error("result larger than {limit} bytes")]
    TooLarge { limit: usize },
}

/// Names in a directory.
pub async fn ls(client: &Client, path: &str) -> Result<Vec<String>, OpError> {
    Ok(client.ls(path).await?)
}

/// The whole file; [`OpError::TooLarge`] when it holds more than `limit`.
pub async fn cat(client: &Client, path: &str, limit: usize) -> Result<Vec<u8>, OpError> {
    let file = client.open(path, OpenMode::Read).await?;
    let ring = is_append_only(&file);
    let read = read_upto(&file, ring, limit.saturating_add(1)).await;
    close(file).await;
    let data = read?;
    if data.len() > limit {
        return Err(OpError::TooLarge { limit });
    }
    Ok(data)
}

/// The newest whole lines of a file that fit in `window` bytes, after
/// scanning at most `scan_cap` bytes of it.
pub async fn tail(
    client: &Client,
    path: &str,
    window: usize,
    scan_cap: usize,
) -> Result<Vec<u8>, OpError> {
    let file = client.open(path, OpenMode::Read).await?;
    let ring = is_append_only(&file);
    let read = read_tail(&file, ring, window, scan_cap).await;
    close(file).await;
    Ok(read?)
}

/// Appends `line` as one record. With `read_back`, the fid is opened
/// read-write and the write's result read back from it.
pub async fn echo(
    client: &Client,
    path: &str,
    line: &[u8],
    read_back: bool,
) -> Result<(u32, Vec<u8>), OpError> {
    let mode = if read_back {
        OpenMode::ReadWrite
    } else {
        OpenMode::Write
    };
    let file = client.open(path, mode).await?;
    let written = match file.write_at(0, line).await {
        Ok(n) => n,
        Err(e) => {
            close(file).await;
            return Err(e.into());
        }
    };
    let reply = if read_back {
        // The write landed; a failed read-back only loses its result.
        file.read_at(0, file.iounit()).await.unwrap_or_else(|e| {
            tracing::debug!(error = %e, "read-back after a control write failed");
            Vec::new()
        })
    } else {
        Vec::new()
    };
    close(file).await;
    Ok((written, reply))
}

fn is_append_only(file: &File) -> bool {
    file.qid().ty & qid_type::APPEND != 0
}

async fn read_upto(file: &File, ring: bool, max: usize) -> Result<Vec<u8>, ClientError> {
    let mut out = Vec::new();
    let mut offset = 0u64;
    // Every pass adds at least one byte or ends: at most `max` passes.
    while out.len() < max {
        let want = (max - out.len()).min(file.iounit() as usize) as u32;
        let data = file.read_at(offset, want).await?;
        if data.is_empty() {
            break;
        }
        let short = data.len() < want as usize;
        offset += data.len() as u64;
        out.extend_from_slice(&data);
        if short && !ring {
            break;
        }
    }
    out.truncate(max);
    Ok(out)
}

async fn read_tail(
    file: &File,
    ring: bool,
    window: usize,
    scan_cap: usize,
) -> Result<Vec<u8>, ClientError> {
    let mut buf: Vec<u8> = Vec::new();
    let mut offset = 0u64;
    let mut cut = false;
    // Every pass adds at least one byte or ends: at most `scan_cap` passes.
    while (offset as usize) < scan_cap {
        let want = file.iounit();
        let data = file.read_at(offset, want).await?;
        if data.is_empty() {
            break;
        }
        let short = data.len() < want as usize;
        offset += data.len() as u64;
        buf.extend_from_slice(&data);
        // Keep memory near the window: trim once the buffer doubles it.
        if buf.len() > window.saturating_mul(2) {
            buf.drain(..buf.len() - window);
            cut = true;
        }
        if short && !ring {
            break;
        }
    }
    if buf.len() > window {
        buf.drain(..buf.len() - window);
        cut = true;
    }
    if cut {
        // The first line lost its head; drop what is left of it.
        let keep_from = buf
            .iter()
            .position(|&b| b == b'\n')
            .map_or(buf.len(), |i| i + 1);
        buf.drain(..keep_from);
    }
    Ok(buf)
}

async fn close(file: File) {
    if let Err(e) = file.close().await {
        tracing::debug!(error = %e, "clunk failed");
    }
}
