//! Writing tables: Parquet or CSV by extension, always atomically (temp file + rename), so a failed
//! run never leaves a partial file where a good one is expected.

use std::path::Path;

use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::csv::WriterBuilder;
use datafusion::parquet::arrow::ArrowWriter;
use datafusion::parquet::basic::Compression;
use datafusion::parquet::file::properties::WriterProperties;

use crate::error::{OfflineError, OfflineResult};

/// Rows per Parquet row group: small enough for time-range pruning, large enough to compress.
const ROW_GROUP_ROWS: usize = 128 * 1024;

/// Table formats by file extension.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Parquet,
    Csv,
}

impl Format {
    pub fn of(path: &Path) -> OfflineResult<Format> {
        match path
            .extension()
            .map(|e| e.to_string_lossy().to_ascii_lowercase())
            .as_deref()
        {
            Some("parquet") | Some("pq") => Ok(Format::Parquet),
            Some("csv") => Ok(Format::Csv),
            _ => Err(OfflineError::File {
                path: path.to_path_buf(),
                message: "unknown output format: name the file .parquet or .csv".into(),
            }),
        }
    }
}

/// Writes `batches` (all of one schema) to `path` atomically.
pub fn write_table(path: &Path, batches: &[RecordBatch]) -> OfflineResult<()> {
    let format = Format::of(path)?;
    let Some(first) = batches.first() else {
        return Err(OfflineError::File {
            path: path.to_path_buf(),
            message: "nothing to write".into(),
        });
    };
    let schema = first.schema();
    asof_core::atomic::write_atomic(path, |w| match format {
        Format::Parquet => {
            let props = WriterProperties::builder()
                .set_compression(Compression::SNAPPY)
                .set_max_row_group_row_count(Some(ROW_GROUP_ROWS))
                .build();
            let mut writer =
                ArrowWriter::try_new(w, schema, Some(props)).map_err(std::io::Error::other)?;
            for b in batches {
                writer.write(b).map_err(std::io::Error::other)?;
            }
            writer.close().map_err(std::io::Error::other)?;
            Ok(())
        }
        Format::Csv => {
            let mut writer = WriterBuilder::new().with_header(true).build(w);
            for b in batches {
                writer.write(b).map_err(std::io::Error::other)?;
            }
            Ok(())
        }
    })?;
    Ok(())
}
