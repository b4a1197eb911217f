//! Writing tables: Parquet or CSV by extension, always atomically (temp file + rename), so a failed
//! run never leaves a partial file where a good one is expected.

use std::io::{BufWriter, Write};
use std::path::Path;

use asof_core::atomic::AtomicFile;
use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::csv::WriterBuilder;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::parquet::arrow::ArrowWriter;
use datafusion::parquet::basic::Compression;
use datafusion::parquet::file::properties::WriterProperties;

use crate::error::{OfflineError, OfflineResult};
use crate::listing::TableFormat;

/// Rows per Parquet row group: small enough for time-range pruning, large enough to compress.
const ROW_GROUP_ROWS: usize = 128 * 1024;

/// The format an output at `path` is written in, by its extension (the same rule as every read).
pub fn output_format(path: &Path) -> OfflineResult<TableFormat> {
    TableFormat::of(path).ok_or_else(|| OfflineError::File {
        path: path.to_path_buf(),
        message: "unknown output format: name the file .parquet, .pq or .csv".into(),
    })
}

/// Batches written one after the other into an atomic file, in either format.
struct TableWriter<'f> {
    sink: Sink<BufWriter<&'f mut std::fs::File>>,
}

enum Sink<W: Write + Send> {
    Parquet(ArrowWriter<W>),
    Csv(datafusion::arrow::csv::Writer<W>),
}

impl<'f> TableWriter<'f> {
    fn new(
        file: &'f mut AtomicFile,
        format: TableFormat,
        schema: SchemaRef,
    ) -> OfflineResult<Self> {
        let path = file.path().to_path_buf();
        let out = BufWriter::new(file.file());
        let sink = match format {
            TableFormat::Parquet => {
                let props = WriterProperties::builder()
                    .set_compression(Compression::SNAPPY)
                    .set_max_row_group_row_count(Some(ROW_GROUP_ROWS))
                    .build();
                Sink::Parquet(
                    ArrowWriter::try_new(out, schema, Some(props))
                        .map_err(|e| file_error(&path, e))?,
                )
            }
            TableFormat::Csv => Sink::Csv(WriterBuilder::new().with_header(true).build(out)),
        };
        Ok(TableWriter { sink })
    }

    fn write(&mut self, path: &Path, batch: &RecordBatch) -> OfflineResult<()> {
        match &mut self.sink {
            Sink::Parquet(w) => w.write(batch).map_err(|e| file_error(path, e)),
            Sink::Csv(w) => w.write(batch).map_err(|e| file_error(path, e)),
        }
    }

    /// Flushes everything into the file (the caller then commits it).
    fn finish(self, path: &Path) -> OfflineResult<()> {
        let mut out = match self.sink {
            Sink::Parquet(w) => w.into_inner().map_err(|e| file_error(path, e))?,
            Sink::Csv(w) => w.into_inner(),
        };
        out.flush().map_err(|e| file_error(path, e))
    }
}

pub(crate) fn file_error(path: &Path, e: impl std::fmt::Display) -> OfflineError {
    OfflineError::File {
        path: path.to_path_buf(),
        message: e.to_string(),
    }
}

/// Writes `batches` (all of one schema) to `path` atomically.
pub fn write_table(path: &Path, batches: &[RecordBatch]) -> OfflineResult<()> {
    let format = output_format(path)?;
    let Some(first) = batches.first() else {
        return Err(file_error(path, "nothing to write"));
    };
    let mut file = AtomicFile::create(path)?;
    let mut writer = TableWriter::new(&mut file, format, first.schema())?;
    for b in batches {
        writer.write(path, b)?;
    }
    writer.finish(path)?;
    file.commit()?;
    Ok(())
}

/// Writes a stream of batches to `path` as they arrive (Parquet row groups or CSV rows), into a
/// temp file renamed over `path` only when the stream ended without error. Returns the rows
/// written. `progress` is told the rows so far after each batch.
///
/// An object store URL is written to a local staging file first and then uploaded as one
/// multipart object, which appears only when complete: a failed run leaves nothing there either.
pub async fn write_stream(
    path: &Path,
    stream: datafusion::physical_plan::SendableRecordBatchStream,
    progress: &(dyn Fn(usize) + Sync),
) -> OfflineResult<usize> {
    let Some(url) = path.to_str().and_then(crate::remote::url_of) else {
        return write_local(path, stream, progress).await;
    };
    let format = output_format(path)?;
    let staging = tempfile::tempdir().map_err(|e| file_error(path, e))?;
    let staged = staging.path().join(match format {
        TableFormat::Parquet => "output.parquet",
        TableFormat::Csv => "output.csv",
    });
    let rows = write_local(&staged, stream, progress).await?;
    crate::remote::upload(&staged, &url)
        .await
        .map_err(OfflineError::Remote)?;
    Ok(rows)
}

async fn write_local(
    path: &Path,
    mut stream: datafusion::physical_plan::SendableRecordBatchStream,
    progress: &(dyn Fn(usize) + Sync),
) -> OfflineResult<usize> {
    use futures::StreamExt;
    let format = output_format(path)?;
    let mut file = AtomicFile::create(path)?;
    let mut rows = 0;
    let mut writer = TableWriter::new(&mut file, format, stream.schema())?;
    while let Some(batch) = stream.next().await {
        let batch = batch?;
        rows += batch.num_rows();
        writer.write(path, &batch)?;
        progress(rows);
    }
    writer.finish(path)?;
    file.commit()?;
    Ok(rows)
}
