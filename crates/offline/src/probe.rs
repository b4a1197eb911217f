//! Reading a source's schema from its Parquet footer (no data), for `asof apply`'s checks.

use std::path::Path;

use asof_core::spec::Source;
use asof_core::{ColumnInfo, SchemaProbe};
use datafusion::parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

use crate::listing::{TableFormat, list_local};
use crate::types::{KeyKind, dtype_of, key_kind, key_type_problem};

/// Rows a CSV schema is inferred from, here and in the scan.
pub const CSV_INFER_ROWS: usize = 1000;

/// A [`SchemaProbe`] over a source's files as [`crate::listing::list`] finds them (Parquet or
/// CSV): the schema of the first file.
#[derive(Debug, Default, Clone, Copy)]
pub struct ParquetProbe;

impl SchemaProbe for ParquetProbe {
    fn columns(&self, repo_dir: &Path, source: &Source) -> Result<Option<Vec<ColumnInfo>>, String> {
        // The same listing the scan reads, so the checked file is one the scan reads. An object
        // store's first file is fetched whole (sources are split into many files; one is small).
        let (listed, remote) = match crate::remote::url_of(&source.path) {
            Some(url) => {
                let found = crate::remote::block_on(async {
                    let Some(listed) = crate::remote::list(&url).await? else {
                        return Ok(None);
                    };
                    let file = url::Url::parse(&listed.files[0]).map_err(|e| e.to_string())?;
                    let bytes = crate::remote::read(&file).await?;
                    Ok::<_, String>(Some((listed, bytes)))
                })?;
                match found {
                    Some((listed, bytes)) => (listed, Some(bytes)),
                    None => return Ok(None),
                }
            }
            None => match list_local(repo_dir, &source.path)? {
                Some(listed) => (listed, None),
                None => return Ok(None),
            },
        };
        let file = &listed.files[0];
        let schema = match (listed.format, remote) {
            (TableFormat::Parquet, Some(bytes)) => parquet_schema(file, bytes)?,
            (TableFormat::Parquet, None) => parquet_schema(file, open(file)?)?,
            // DataFusion's CSV scan infers types with the same arrow-csv code.
            (TableFormat::Csv, Some(bytes)) => csv_schema(file, std::io::Cursor::new(bytes))?,
            (TableFormat::Csv, None) => csv_schema(file, open(file)?)?,
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

fn open(file: &str) -> Result<std::fs::File, String> {
    std::fs::File::open(file).map_err(|e| format!("{file}: {e}"))
}

fn parquet_schema(
    file: &str,
    data: impl datafusion::parquet::file::reader::ChunkReader + 'static,
) -> Result<datafusion::arrow::datatypes::Schema, String> {
    Ok(ParquetRecordBatchReaderBuilder::try_new(data)
        .map_err(|e| format!("{file} is not readable Parquet: {e}"))?
        .schema()
        .as_ref()
        .clone())
}

fn csv_schema(
    file: &str,
    data: impl std::io::Read,
) -> Result<datafusion::arrow::datatypes::Schema, String> {
    Ok(datafusion::arrow::csv::reader::Format::default()
        .with_header(true)
        .infer_schema(data, Some(CSV_INFER_ROWS))
        .map_err(|e| format!("{file} is not readable CSV: {e}"))?
        .0)
}
