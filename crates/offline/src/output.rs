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

/// Writes a stream of batches to `path` as they arrive (Parquet row groups or CSV rows), into a
/// temp file renamed over `path` only when the stream ended without error. Returns the rows
/// written. `progress` is told the rows so far after each batch.
pub async fn write_stream(
    path: &Path,
    mut stream: datafusion::physical_plan::SendableRecordBatchStream,
    progress: &(dyn Fn(usize) + Sync),
) -> OfflineResult<usize> {
    use futures::StreamExt;
    let format = Format::of(path)?;
    let io = |e: std::io::Error| OfflineError::File {
        path: path.to_path_buf(),
        message: e.to_string(),
    };
    let mut file = asof_core::atomic::AtomicFile::create(path)?;
    let mut rows = 0;
    {
        let out = std::io::BufWriter::new(file.file());
        enum Sink<W: std::io::Write + Send> {
            Parquet(ArrowWriter<W>),
            Csv(datafusion::arrow::csv::Writer<W>),
        }
        let mut sink = match format {
            Format::Parquet => {
                let props = WriterProperties::builder()
                    .set_compression(Compression::SNAPPY)
                    .set_max_row_group_row_count(Some(ROW_GROUP_ROWS))
                    .build();
                Sink::Parquet(
                    ArrowWriter::try_new(out, stream.schema(), Some(props))
                        .map_err(|e| io(std::io::Error::other(e)))?,
                )
            }
            Format::Csv => Sink::Csv(WriterBuilder::new().with_header(true).build(out)),
        };
        while let Some(batch) = stream.next().await {
            let batch = batch?;
            rows += batch.num_rows();
            match &mut sink {
                Sink::Parquet(w) => w.write(&batch).map_err(|e| io(std::io::Error::other(e)))?,
                Sink::Csv(w) => w.write(&batch).map_err(|e| io(std::io::Error::other(e)))?,
            }
            progress(rows);
        }
        match sink {
            Sink::Parquet(w) => {
                let mut inner = w.into_inner().map_err(|e| io(std::io::Error::other(e)))?;
                std::io::Write::flush(&mut inner).map_err(io)?;
            }
            Sink::Csv(w) => {
                let mut inner = w.into_inner();
                std::io::Write::flush(&mut inner).map_err(io)?;
            }
        }
    }
    file.commit()?;
    Ok(rows)
}
