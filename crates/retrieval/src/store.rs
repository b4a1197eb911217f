//! The index store of a repo: where indexes live, and the alias operations (promote, rollback,
//! drop) that only ever rewrite a manifest atomically.

use std::path::{Path, PathBuf};

use chrono::Utc;

use crate::error::{RetrievalError, RetrievalResult};
use crate::layout::{IndexDir, Manifest};

#[derive(Debug, Clone)]
pub struct IndexStore {
    root: PathBuf,
}

impl IndexStore {
    /// The store under `root` (the repo's `data/indexes` unless configured otherwise).
    pub fn new(root: impl Into<PathBuf>) -> Self {
        IndexStore { root: root.into() }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn index_dir(&self, index: &str) -> IndexDir {
        IndexDir {
            dir: self.root.join(index),
        }
    }

    pub fn cache_path(&self) -> PathBuf {
        self.root.join("embedding_cache.sqlite")
    }

    /// The manifest of a synced index.
    pub fn manifest(&self, index: &str) -> RetrievalResult<Manifest> {
        self.index_dir(index)
            .load_manifest()?
            .ok_or_else(|| RetrievalError::NotSynced(index.to_string()))
    }

    fn check_version(m: &Manifest, version: &str) -> RetrievalResult<()> {
        if m.versions.contains_key(version) {
            return Ok(());
        }
        let known: Vec<&str> = m.versions.keys().map(String::as_str).collect();
        Err(RetrievalError::UnknownVersion {
            index: m.index.clone(),
            version: version.to_string(),
            hint: format!("; it has {}", known.join(", ")),
        })
    }

    /// Runs `change` on the manifest of a synced index under the manifest lock.
    fn update<T>(
        &self,
        index: &str,
        change: impl FnOnce(&mut Manifest) -> RetrievalResult<T>,
    ) -> RetrievalResult<T> {
        self.index_dir(index).update_manifest(|m| {
            let m = m
                .as_mut()
                .ok_or_else(|| RetrievalError::NotSynced(index.to_string()))?;
            Ok((true, change(m)?))
        })
    }

    /// Makes `version` live; the old live version becomes the rollback target. In-flight queries
    /// finish on the version they started with.
    pub fn promote(&self, index: &str, version: &str) -> RetrievalResult<Manifest> {
        self.update(index, |m| {
            Self::check_version(m, version)?;
            if m.versions[version].generation == 0 {
                return Err(RetrievalError::Query(format!(
                    "version `{version}` of `{index}` has no data yet; run `asof index sync {index}`"
                )));
            }
            if m.live.as_deref() != Some(version) {
                m.previous = m.live.replace(version.to_string());
                m.updated_at = Utc::now();
            }
            Ok(m.clone())
        })
    }

    /// Swaps the live and previous versions back.
    pub fn rollback(&self, index: &str) -> RetrievalResult<Manifest> {
        self.update(index, |m| {
            let Some(prev) = m.previous.clone() else {
                return Err(RetrievalError::Query(format!(
                    "`{index}` has no previous version to roll back to"
                )));
            };
            Self::check_version(m, &prev)?;
            m.previous = m.live.replace(prev);
            m.updated_at = Utc::now();
            Ok(m.clone())
        })
    }

    /// Deletes a version that is neither live nor the rollback target. It waits for no sync: a
    /// sync in progress may be writing the version's next generation, so dropping then fails.
    pub fn drop_version(&self, index: &str, version: &str) -> RetrievalResult<Manifest> {
        let dir = self.index_dir(index);
        let _sync = dir.try_sync_lock("drop the version")?;
        let m = self.update(index, |m| {
            Self::check_version(m, version)?;
            if m.live.as_deref() == Some(version) {
                return Err(RetrievalError::Query(format!(
                    "version `{version}` is live; promote another version first"
                )));
            }
            if m.previous.as_deref() == Some(version) {
                m.previous = None;
            }
            m.versions.remove(version);
            m.updated_at = Utc::now();
            Ok(m.clone())
        })?;
        let vdir = dir.dir.join(version);
        std::fs::remove_dir_all(&vdir).or_else(|e| {
            if e.kind() == std::io::ErrorKind::NotFound {
                Ok(())
            } else {
                Err(RetrievalError::io(&vdir, e))
            }
        })?;
        Ok(m)
    }
}
