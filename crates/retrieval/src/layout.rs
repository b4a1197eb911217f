//! What an index looks like on disk, and the only code that reads or writes it.
//!
//! ```text
//! <indexes>/<index>/manifest.json        live alias, previous alias, versions (atomic rewrite)
//! <indexes>/<index>/sync.lock            OS-locked while a sync runs (the file itself stays)
//! <indexes>/<index>/manifest.json.lock   OS-locked around every manifest read-modify-write
//! <indexes>/<index>/<version>/g<N>/      one immutable generation per sync that changed something:
//!     points.jsonl                       live points (chunk metadata, text, content hash)
//!     vectors.f32                        their vectors, little-endian, in points order
//!     graph.hnsw.graph, graph.hnsw.data  the HNSW graph, tombstoned points included
//! <indexes>/embedding_cache.sqlite       the content-addressed embedding cache (SQLite, WAL)
//! ```
//!
//! A generation folder is written under a temporary name and renamed into place before the
//! manifest points at it, so readers only ever see complete generations.

use std::collections::BTreeMap;
use std::io::{BufRead, BufWriter, Write};
use std::path::{Path, PathBuf};

use asof_core::atomic::write_atomic;
use asof_core::lock::{FileLock, lock_path_for};
use asof_core::spec::{Chunking, Embedding, Metric};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value as Json;

use crate::error::{RetrievalError, RetrievalResult};

pub const MANIFEST_FORMAT_VERSION: u32 = 1;

/// An index's versions and which one serves.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    pub format_version: u32,
    pub index: String,
    /// The version queries go to unless they name another.
    pub live: Option<String>,
    /// The version `rollback` returns to.
    pub previous: Option<String>,
    pub versions: BTreeMap<String, VersionMeta>,
    pub updated_at: DateTime<Utc>,
}

/// One version: a vector space (model, dims, metric) over one chunking of the corpus.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VersionMeta {
    pub id: String,
    pub embedding: Embedding,
    /// The vector space's identity; a query vector must carry the same.
    pub model_id: String,
    pub chunking: Chunking,
    pub metric: Metric,
    pub created_at: DateTime<Utc>,
    /// When the current graph was built from scratch.
    pub built_at: DateTime<Utc>,
    pub synced_at: DateTime<Utc>,
    /// The generation folder holding this version's data.
    pub generation: u64,
    pub documents: usize,
    /// Live chunks.
    pub points: usize,
    /// Points in the graph, tombstoned ones included.
    pub graph_points: usize,
    /// The next point id to hand out (ids are never reused, so a tombstone never aliases).
    pub next_id: usize,
}

impl VersionMeta {
    pub fn tombstones(&self) -> usize {
        self.graph_points.saturating_sub(self.points)
    }

    /// Whether this version was built with the vector space `model_id` (an embedder's), `chunking`
    /// and `metric`.
    pub fn built_from(&self, model_id: &str, chunking: &Chunking, metric: Metric) -> bool {
        self.model_id == model_id && &self.chunking == chunking && self.metric == metric
    }
}

/// One indexed chunk.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PointRecord {
    /// The point's id in the graph.
    pub id: usize,
    pub chunk_id: String,
    pub doc_id: String,
    /// The document's `updated_at` when this chunk was last refreshed.
    pub doc_version: String,
    /// blake3 of the chunk text: a different hash means a changed chunk.
    pub content_hash: String,
    pub indexed_at: DateTime<Utc>,
    pub text: String,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub metadata: BTreeMap<String, Json>,
}

/// Paths of one index.
#[derive(Debug, Clone)]
pub struct IndexDir {
    pub dir: PathBuf,
}

impl IndexDir {
    pub fn manifest_path(&self) -> PathBuf {
        self.dir.join("manifest.json")
    }

    pub fn lock_path(&self) -> PathBuf {
        self.dir.join("sync.lock")
    }

    pub fn generation_dir(&self, version: &str, generation: u64) -> PathBuf {
        self.dir.join(version).join(format!("g{generation}"))
    }

    pub fn load_manifest(&self) -> RetrievalResult<Option<Manifest>> {
        let path = self.manifest_path();
        let bytes = match std::fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(RetrievalError::io(&path, e)),
        };
        let m: Manifest =
            serde_json::from_slice(&bytes).map_err(|e| RetrievalError::corrupt(&path, e))?;
        if m.format_version != MANIFEST_FORMAT_VERSION {
            return Err(RetrievalError::corrupt(
                &path,
                format!(
                    "manifest format {} is not {MANIFEST_FORMAT_VERSION}, which this asof reads",
                    m.format_version
                ),
            ));
        }
        Ok(Some(m))
    }

    /// A read-modify-write of the manifest under its OS lock: `change` sees the manifest as it is
    /// on disk now, so a promote, a rollback, a drop and the end of a sync never undo each other.
    /// The manifest is saved when `change` returns `true`.
    pub fn update_manifest<T>(
        &self,
        change: impl FnOnce(&mut Option<Manifest>) -> RetrievalResult<(bool, T)>,
    ) -> RetrievalResult<T> {
        let _lock = FileLock::exclusive(&lock_path_for(&self.manifest_path()))?;
        let mut manifest = self.load_manifest()?;
        let (changed, out) = change(&mut manifest)?;
        if changed && let Some(m) = &manifest {
            self.save_manifest(m)?;
        }
        Ok(out)
    }

    /// Holds the index's sync lock, if no other process does: a sync holds it from start to end,
    /// and dropping a version waits for no sync to be writing into it.
    pub fn try_sync_lock(&self, action: &'static str) -> RetrievalResult<FileLock> {
        let path = self.lock_path();
        FileLock::try_exclusive(&path)?.ok_or_else(|| RetrievalError::Locked {
            index: self
                .dir
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default(),
            path,
            action,
        })
    }

    /// Writes the manifest atomically. Callers that read it first go through
    /// [`IndexDir::update_manifest`].
    pub fn save_manifest(&self, m: &Manifest) -> RetrievalResult<()> {
        write_atomic(&self.manifest_path(), |w| {
            serde_json::to_writer_pretty(&mut *w, m).map_err(std::io::Error::other)?;
            w.write_all(b"\n")
        })?;
        Ok(())
    }
}

/// Writes a generation's points and vectors into `dir` (the graph is dumped beside them).
pub fn write_points(dir: &Path, points: &[PointRecord], vectors: &[&[f32]]) -> RetrievalResult<()> {
    let path = dir.join("points.jsonl");
    let file = std::fs::File::create(&path).map_err(|e| RetrievalError::io(&path, e))?;
    let mut w = BufWriter::new(file);
    for p in points {
        serde_json::to_writer(&mut w, p).map_err(|e| RetrievalError::io(&path, e.into()))?;
        w.write_all(b"\n")
            .map_err(|e| RetrievalError::io(&path, e))?;
    }
    w.into_inner()
        .map_err(|e| RetrievalError::io(&path, e.into_error()))?
        .sync_all()
        .map_err(|e| RetrievalError::io(&path, e))?;
    let path = dir.join("vectors.f32");
    let mut bytes = Vec::with_capacity(vectors.iter().map(|v| v.len() * 4).sum());
    for v in vectors {
        for x in *v {
            bytes.extend_from_slice(&x.to_le_bytes());
        }
    }
    std::fs::write(&path, bytes).map_err(|e| RetrievalError::io(&path, e))
}

pub fn read_points(dir: &Path) -> RetrievalResult<Vec<PointRecord>> {
    let path = dir.join("points.jsonl");
    let file = std::fs::File::open(&path).map_err(|e| RetrievalError::io(&path, e))?;
    let mut out = Vec::new();
    for (i, line) in std::io::BufReader::new(file).lines().enumerate() {
        let line = line.map_err(|e| RetrievalError::io(&path, e))?;
        out.push(
            serde_json::from_str(&line)
                .map_err(|e| RetrievalError::corrupt(&path, format!("line {}: {e}", i + 1)))?,
        );
    }
    Ok(out)
}

/// The vectors of a generation, `dims` floats per point in points order.
pub fn read_vectors(dir: &Path, dims: usize, points: usize) -> RetrievalResult<Vec<f32>> {
    let path = dir.join("vectors.f32");
    let bytes = std::fs::read(&path).map_err(|e| RetrievalError::io(&path, e))?;
    if bytes.len() != dims * points * 4 {
        return Err(RetrievalError::corrupt(
            &path,
            format!(
                "{} bytes, expected {points} vectors of {dims} floats",
                bytes.len()
            ),
        ));
    }
    Ok(bytes
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes(c.try_into().expect("4 bytes")))
        .collect())
}
