//! Where a stream is: the last commit whose changes are durable in both stores, beside the
//! registry (`<registry folder>/streams/<slot>.json`). It is written after the writes and before
//! PostgreSQL is told, so after a crash the stream resumes from here and PostgreSQL still holds
//! everything after it.

use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use pgwire_replication::Lsn;
use serde::{Deserialize, Serialize};

use crate::error::{StreamError, StreamResult};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Checkpoint {
    pub slot: String,
    /// The source (view source or document index) the slot feeds.
    pub source: String,
    pub table: String,
    /// The end LSN of the last applied commit (PostgreSQL's `X/Y` form).
    pub lsn: String,
    /// The initial snapshot is in both stores. Without it, a restart starts over from a new slot.
    pub snapshot_done: bool,
    pub updated_at: DateTime<Utc>,
    /// Commit time of the last applied transaction.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_commit_at: Option<DateTime<Utc>>,
}

impl Checkpoint {
    pub fn lsn(&self) -> Lsn {
        Lsn::parse(&self.lsn).unwrap_or(Lsn::ZERO)
    }
}

/// The folder of a repo's stream checkpoints.
pub fn dir(registry_path: &Path) -> PathBuf {
    registry_path
        .parent()
        .unwrap_or(Path::new("."))
        .join("streams")
}

pub fn path(registry_path: &Path, slot: &str) -> PathBuf {
    dir(registry_path).join(format!("{slot}.json"))
}

pub fn load(path: &Path) -> StreamResult<Option<Checkpoint>> {
    match std::fs::read(path) {
        Ok(bytes) => serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| StreamError::io(path, format!("not a stream checkpoint: {e}"))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(StreamError::io(path, e)),
    }
}

/// Every checkpoint of a repo, by slot.
pub fn load_all(registry_path: &Path) -> StreamResult<Vec<Checkpoint>> {
    let dir = dir(registry_path);
    let Ok(entries) = std::fs::read_dir(&dir) else {
        return Ok(Vec::new());
    };
    let mut out = Vec::new();
    for e in entries.flatten() {
        let p = e.path();
        if p.extension().is_some_and(|x| x == "json")
            && !e.file_name().to_string_lossy().starts_with('.')
            && let Some(c) = load(&p)?
        {
            out.push(c);
        }
    }
    out.sort_by(|a, b| a.slot.cmp(&b.slot));
    Ok(out)
}

/// Replaces the checkpoint atomically and durably (file and folder synced).
pub fn save(path: &Path, c: &Checkpoint) -> StreamResult<()> {
    let bytes = serde_json::to_vec_pretty(c).map_err(|e| StreamError::io(path, e))?;
    asof_core::atomic::write_atomic(path, |w| w.write_all(&bytes))?;
    if let Some(dir) = path.parent() {
        std::fs::File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(|e| StreamError::io(dir, e))?;
    }
    Ok(())
}

pub fn remove(path: &Path) -> StreamResult<()> {
    match std::fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(StreamError::io(path, e)),
    }
}
