//! Locks that several asof processes on one repo take around a read-modify-write of shared
//! metadata (the registry, an index manifest) or around a long job (an index sync).
//!
//! They are OS advisory locks (`flock` on Unix, `LockFileEx` on Windows) on a lock file that is
//! never deleted. The kernel releases a lock when its process exits, however it exits, so a
//! `SIGKILL` mid-write can never leave a stale lock behind, and no pid files need cleaning up.

use std::fs::{File, OpenOptions, TryLockError};
use std::path::{Path, PathBuf};

use crate::error::{CoreError, CoreResult};

/// An exclusive lock, held until dropped (or until the process dies).
#[derive(Debug)]
pub struct FileLock {
    file: File,
    path: PathBuf,
}

fn open(path: &Path) -> CoreResult<File> {
    if let Some(dir) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|e| CoreError::io(dir, e))?;
    }
    OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(path)
        .map_err(|e| CoreError::io(path, e))
}

impl FileLock {
    /// Waits for the lock on `path` (created if missing). Use for short critical sections.
    pub fn exclusive(path: &Path) -> CoreResult<FileLock> {
        let file = open(path)?;
        file.lock().map_err(|e| CoreError::io(path, e))?;
        Ok(FileLock {
            file,
            path: path.to_path_buf(),
        })
    }

    /// Takes the lock on `path` if no other process (or handle) holds it; `Ok(None)` if one does.
    /// Use for long jobs, where waiting behind another run would only repeat its work.
    pub fn try_exclusive(path: &Path) -> CoreResult<Option<FileLock>> {
        let file = open(path)?;
        match file.try_lock() {
            Ok(()) => Ok(Some(FileLock {
                file,
                path: path.to_path_buf(),
            })),
            Err(TryLockError::WouldBlock) => Ok(None),
            Err(TryLockError::Error(e)) => Err(CoreError::io(path, e)),
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for FileLock {
    fn drop(&mut self) {
        // Closing the file releases the lock too; unlocking first makes the release explicit.
        let _ = self.file.unlock();
    }
}

/// The lock file that guards `path` (a registry or a manifest): `path` with `.lock` appended.
pub fn lock_path_for(path: &Path) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(".lock");
    path.with_file_name(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_held_lock_excludes_others_and_is_released_on_drop() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.lock");
        let held = FileLock::exclusive(&path).unwrap();
        assert!(FileLock::try_exclusive(&path).unwrap().is_none());
        drop(held);
        assert!(FileLock::try_exclusive(&path).unwrap().is_some());
        assert!(path.exists(), "the lock file stays; only the lock goes");
    }

    #[test]
    fn lock_path_appends_a_suffix() {
        assert_eq!(
            lock_path_for(Path::new("data/registry.json")),
            Path::new("data/registry.json.lock")
        );
    }
}
