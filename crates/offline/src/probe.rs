//! Reading a source's schema from its Parquet footer (no data), for `asof apply`'s checks.

use std::path::Path;

use asof_core::spec::Source;
use asof_core::{ColumnInfo, SchemaProbe};
use datafusion::parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

use crate::listing::{TableFormat, list};
use crate::types::{KeyKind, dtype_of, key_kind, key_type_problem};

/// Rows a CSV schema is inferred from, here and in the scan.
pub const CSV_INFER_ROWS: usize = 1000;

/// A [`SchemaProbe`] over a source's files as [`crate::listing::list`] finds them (Parquet or
/// CSV): the schema of the first file.
#[derive(Debug, Default, Clone, Copy)]
pub struct ParquetProbe;

impl SchemaProbe for ParquetProbe {
    fn columns(&self, repo_dir: &Path, source: &Source) -> Result<Option<Vec<ColumnInfo>>, String> {
        // The same listing the scan reads, so the checked file is one the scan reads.
        let Some(listed) = list(repo_dir, &source.path)? else {
            return Ok(None);
        };
        let file = &listed.files[0];
        let f = std::fs::File::open(file).map_err(|e| format!("{}: {e}", file.display()))?;
        let schema = match listed.format {
            TableFormat::Parquet => ParquetRecordBatchReaderBuilder::try_new(f)
                .map_err(|e| format!("{} is not readable Parquet: {e}", file.display()))?
                .schema()
                .as_ref()
                .clone(),
            // DataFusion's CSV scan infers types with the same arrow-csv code.
            TableFormat::Csv => {
                datafusion::arrow::csv::reader::Format::default()
                    .with_header(true)
                    .infer_schema(f, Some(CSV_INFER_ROWS))
                    .map_err(|e| format!("{} is not readable CSV: {e}", file.display()))?
                    .0
            }
        };
        Ok(Some(
            schema
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
