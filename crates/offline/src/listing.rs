//! Which files a source path means. `apply`'s schema probe and every scan call [`list`], so both
//! see the same files: what one checks is what the other reads.
//!
//! A path is a file, a directory (read recursively, as Spark and Hive write them), or a glob with
//! `*` in its last component. In a directory, names starting with `.` or `_` are skipped (Spark's
//! `_SUCCESS`, `_committed_*`, `.crc` files, hidden folders), and so is any file that is not a
//! table by its extension (`.parquet`, `.pq` or `.csv`). All files of a source must share one
//! format.

use std::path::{Path, PathBuf};

/// The table formats asof reads, by file extension.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TableFormat {
    Parquet,
    Csv,
}

impl TableFormat {
    /// The format of a file by its extension, if it is a table asof reads.
    pub fn of(path: &Path) -> Option<TableFormat> {
        match path
            .extension()?
            .to_string_lossy()
            .to_ascii_lowercase()
            .as_str()
        {
            "parquet" | "pq" => Some(TableFormat::Parquet),
            "csv" => Some(TableFormat::Csv),
            _ => None,
        }
    }
}

/// The files of a source, sorted, and their one format: absolute paths, or object store URLs.
#[derive(Debug, Clone)]
pub struct SourceFiles {
    pub files: Vec<String>,
    pub format: TableFormat,
}

/// The files `path` means: an object store URL (see [`crate::remote`]), or a path relative to
/// `repo_dir` unless absolute. `Ok(None)` when there are none yet (a path to be written later).
/// An error names what is wrong and how to fix it.
pub async fn list(repo_dir: &Path, path: &str) -> Result<Option<SourceFiles>, String> {
    match crate::remote::url_of(path) {
        Some(url) => crate::remote::list(&url).await,
        None => list_local(repo_dir, path),
    }
}

/// [`list`] for a local path.
pub fn list_local(repo_dir: &Path, path: &str) -> Result<Option<SourceFiles>, String> {
    let p = Path::new(path);
    let full = if p.is_absolute() {
        p.to_path_buf()
    } else {
        repo_dir.join(p)
    };
    let mut files = Vec::new();
    if full.is_file() {
        if TableFormat::of(&full).is_none() {
            return Err(format!(
                "{} is not a table asof reads: name it .parquet, .pq or .csv",
                full.display()
            ));
        }
        files.push(full.clone());
    } else if full.is_dir() {
        walk(&full, &mut files).map_err(|e| format!("{}: {e}", full.display()))?;
    } else {
        let Some(pattern) = full
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .filter(|n| n.contains('*'))
        else {
            return Ok(None);
        };
        let Some(dir) = full.parent().filter(|d| d.is_dir()) else {
            return Ok(None);
        };
        let entries = std::fs::read_dir(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        for e in entries.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            let path = e.path();
            if path.is_file() && wildcard_match(&pattern, &name) && TableFormat::of(&path).is_some()
            {
                files.push(path);
            }
        }
    }
    files.sort();
    let Some(first) = files.first() else {
        return Ok(None);
    };
    let format = TableFormat::of(first).expect("only tables are listed");
    if let Some(other) = files.iter().find(|f| TableFormat::of(f) != Some(format)) {
        return Err(format!(
            "{} mixes formats ({} and {}); keep one format per source",
            full.display(),
            first.display(),
            other.display()
        ));
    }
    let files = files
        .into_iter()
        .map(|f| f.to_string_lossy().into_owned())
        .collect();
    Ok(Some(SourceFiles { files, format }))
}

fn walk(dir: &Path, out: &mut Vec<PathBuf>) -> std::io::Result<()> {
    for e in std::fs::read_dir(dir)? {
        let e = e?;
        let name = e.file_name();
        let name = name.to_string_lossy();
        if name.starts_with('.') || name.starts_with('_') {
            continue;
        }
        let path = e.path();
        if path.is_dir() {
            walk(&path, out)?;
        } else if TableFormat::of(&path).is_some() {
            out.push(path);
        }
    }
    Ok(())
}

pub(crate) fn wildcard_match(pattern: &str, name: &str) -> bool {
    let parts: Vec<&str> = pattern.split('*').collect();
    if parts.len() == 1 {
        return pattern == name;
    }
    let (first, last) = (parts[0], parts[parts.len() - 1]);
    if !name.starts_with(first) || !name.ends_with(last) || name.len() < first.len() + last.len() {
        return false;
    }
    let mut rest = &name[first.len()..name.len() - last.len()];
    for mid in &parts[1..parts.len() - 1] {
        match rest.find(mid) {
            Some(p) => rest = &rest[p + mid.len()..],
            None => return false,
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wildcards() {
        assert!(wildcard_match("*.parquet", "a.parquet"));
        assert!(wildcard_match("part-*-x.parquet", "part-1-x.parquet"));
        assert!(!wildcard_match("*.parquet", "a.csv"));
        assert!(!wildcard_match("ab*ba", "aba"));
    }

    #[test]
    fn directories_skip_markers_hidden_and_non_table_files() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        for f in [
            "part-0.parquet",
            "day=2/part-1.pq",
            "_SUCCESS",
            ".part-0.parquet.crc",
            "_temporary/part-9.parquet",
            "README.md",
        ] {
            std::fs::create_dir_all(d.join(f).parent().unwrap()).unwrap();
            std::fs::write(d.join(f), b"x").unwrap();
        }
        let abs = d.to_str().unwrap();
        let got = list_local(Path::new("/"), abs).unwrap().unwrap();
        let names: Vec<String> = got
            .files
            .iter()
            .map(|f| Path::new(f).strip_prefix(d).unwrap().display().to_string())
            .collect();
        assert_eq!(names, ["day=2/part-1.pq", "part-0.parquet"]);
        std::fs::write(d.join("extra.csv"), b"a\n1\n").unwrap();
        assert!(
            list_local(Path::new("/"), abs)
                .unwrap_err()
                .contains("mixes formats")
        );
        assert!(list_local(d, "missing/*.parquet").unwrap().is_none());
        assert!(
            list_local(d, "README.md")
                .unwrap_err()
                .contains(".parquet, .pq or .csv")
        );
    }
}
