//! Reading a source's schema from its Parquet footer (no data), for `asof apply`'s checks.

use std::path::{Path, PathBuf};

use asof_core::spec::Source;
use asof_core::{ColumnInfo, SchemaProbe};
use datafusion::parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

use crate::types::{KeyKind, dtype_of, key_kind, key_type_problem};

/// A [`SchemaProbe`] over local Parquet files: a file, a directory (its first Parquet file), or a
/// glob with `*` in the last path component.
#[derive(Debug, Default, Clone, Copy)]
pub struct ParquetProbe;

fn wildcard_match(pattern: &str, name: &str) -> bool {
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

/// The first Parquet file of a source path, if any exists.
pub fn first_parquet_file(full: &Path) -> Option<PathBuf> {
    if full.is_file() {
        return Some(full.to_path_buf());
    }
    let (dir, pattern) = if full.is_dir() {
        (full.to_path_buf(), "*.parquet".to_string())
    } else {
        let name = full.file_name()?.to_string_lossy().into_owned();
        if !name.contains('*') {
            return None;
        }
        (full.parent()?.to_path_buf(), name)
    };
    let mut found: Vec<PathBuf> = std::fs::read_dir(&dir)
        .ok()?
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .filter(|p| {
            p.file_name()
                .is_some_and(|n| !n.to_string_lossy().starts_with('.'))
        })
        .collect();
    found.sort();
    for p in found {
        let name = p
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        if p.is_file() && wildcard_match(&pattern, &name) {
            return Some(p);
        }
        if p.is_dir()
            && full.is_dir()
            && let Some(f) = first_parquet_file(&p)
        {
            return Some(f);
        }
    }
    None
}

impl SchemaProbe for ParquetProbe {
    fn columns(&self, repo_dir: &Path, source: &Source) -> Result<Option<Vec<ColumnInfo>>, String> {
        let full = repo_dir.join(&source.path);
        let Some(file) = first_parquet_file(&full) else {
            return Ok(None);
        };
        let f = std::fs::File::open(&file).map_err(|e| format!("{}: {e}", file.display()))?;
        let builder = ParquetRecordBatchReaderBuilder::try_new(f)
            .map_err(|e| format!("{} is not readable Parquet: {e}", file.display()))?;
        Ok(Some(
            builder
                .schema()
                .fields()
                .iter()
                .map(|f| ColumnInfo {
                    name: f.name().clone(),
                    dtype: dtype_of(f.data_type()),
                    type_name: f.data_type().to_string(),
                    key_problem: key_type_problem(f.data_type()),
                    key_type: key_kind(f.data_type()).map(KeyKind::key_type),
                })
                .collect(),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::wildcard_match;

    #[test]
    fn wildcards() {
        assert!(wildcard_match("*.parquet", "a.parquet"));
        assert!(wildcard_match("part-*-x.parquet", "part-1-x.parquet"));
        assert!(!wildcard_match("*.parquet", "a.csv"));
        assert!(!wildcard_match("ab*ba", "aba"));
    }
}
