//! Atomic file writes: a temp file in the target's folder, flushed, then renamed over the target, so
//! readers see the old file or the new one, never a half-written one.

use std::io::Write;
use std::path::Path;

use crate::error::{CoreError, CoreResult};

/// Identifies one version of a file that is only ever replaced by [`write_atomic`] or
/// [`AtomicFile`]: each replacement renames a new file in, so its inode changes (and mtime and
/// size usually do). Readers that follow such a file (the server, with the registry and the index
/// manifests) compare this with one `stat` instead of re-reading it. `None` if it cannot be read.
pub type FileVersion = (u64, std::time::SystemTime, u64);

pub fn file_version(path: &Path) -> Option<FileVersion> {
    let m = std::fs::metadata(path).ok()?;
    #[cfg(unix)]
    let ino = std::os::unix::fs::MetadataExt::ino(&m);
    #[cfg(not(unix))]
    let ino = 0;
    Some((ino, m.modified().ok()?, m.len()))
}

/// A file being written in place of `path`: a temp file beside it, renamed over `path` by
/// [`AtomicFile::commit`] once complete and synced. Dropped uncommitted (an error, a panic), it is
/// removed and `path` is untouched; a killed process leaves only a `.tmp` file nothing reads.
#[derive(Debug)]
pub struct AtomicFile {
    tmp: tempfile::NamedTempFile,
    path: std::path::PathBuf,
}

impl AtomicFile {
    pub fn create(path: &Path) -> CoreResult<AtomicFile> {
        let dir = path
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        std::fs::create_dir_all(dir).map_err(|e| CoreError::io(dir, e))?;
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let tmp = tempfile::Builder::new()
            .prefix(&format!(".{name}."))
            .suffix(".tmp")
            .tempfile_in(dir)
            .map_err(|e| CoreError::io(dir, e))?;
        Ok(AtomicFile {
            tmp,
            path: path.to_path_buf(),
        })
    }

    /// The file this one will replace.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The temp file, to write into.
    pub fn file(&mut self) -> &mut std::fs::File {
        self.tmp.as_file_mut()
    }

    /// Syncs the temp file and renames it over the target.
    pub fn commit(self) -> CoreResult<()> {
        self.tmp
            .as_file()
            .sync_all()
            .map_err(|e| CoreError::io(&self.path, e))?;
        self.tmp
            .persist(&self.path)
            .map_err(|e| CoreError::io(&self.path, e.error))?;
        Ok(())
    }
}

/// Writes `path` atomically with `write`, which receives the temp file. If `write` fails (or the
/// process dies), the old file is untouched and the temp file is removed (or left with a `.tmp` name
/// that nothing reads).
pub fn write_atomic(
    path: &Path,
    write: impl FnOnce(&mut (dyn Write + Send)) -> std::io::Result<()>,
) -> CoreResult<()> {
    let mut file = AtomicFile::create(path)?;
    {
        let mut buf = std::io::BufWriter::new(file.file());
        write(&mut buf).map_err(|e| CoreError::io(path, e))?;
        buf.flush().map_err(|e| CoreError::io(path, e))?;
    }
    file.commit()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failed_write_leaves_the_old_file_and_no_temp() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("registry.json");
        write_atomic(&path, |w| w.write_all(b"old")).unwrap();
        let err = write_atomic(&path, |w| {
            w.write_all(b"half of the new")?;
            Err(std::io::Error::other("disk full"))
        });
        assert!(err.is_err());
        assert_eq!(std::fs::read(&path).unwrap(), b"old");
        let names: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names.len(), 1, "temp file left behind: {names:?}");
    }
}
