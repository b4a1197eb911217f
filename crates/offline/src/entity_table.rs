//! The entity table of a training-set request: join keys, an event timestamp per row, and any other
//! columns (labels, request ids), which pass through unchanged.

use std::path::{Path, PathBuf};

use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::compute::concat_batches;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::prelude::{CsvReadOptions, ParquetReadOptions, SessionConfig, SessionContext};

use crate::error::{OfflineError, OfflineResult};
use crate::listing::TableFormat;

/// An entity table held in memory as one batch (its rows are the output's rows, in order).
#[derive(Debug, Clone)]
pub struct EntityTable {
    /// Where it came from, for messages.
    pub origin: PathBuf,
    pub batch: RecordBatch,
}

impl EntityTable {
    pub fn from_batches(
        origin: impl Into<PathBuf>,
        schema: SchemaRef,
        batches: &[RecordBatch],
    ) -> OfflineResult<Self> {
        Ok(EntityTable {
            origin: origin.into(),
            batch: concat_batches(&schema, batches)?,
        })
    }

    /// Reads Parquet or CSV, by extension, keeping the file's row order: the output's rows are
    /// these rows, in this order. (A parallel scan would split the file into ranges and merge them
    /// in arrival order, so this reads with one partition.)
    pub async fn read(path: &Path) -> OfflineResult<Self> {
        let config = SessionConfig::new()
            .with_target_partitions(1)
            .with_repartition_file_scans(false)
            .set_bool(crate::types::FORCE_VIEW_TYPES, false);
        let ctx = SessionContext::new_with_config(config);
        let err = |message: String| OfflineError::EntityTable {
            path: path.to_path_buf(),
            message,
        };
        let s = path.to_string_lossy().into_owned();
        match crate::remote::url_of(&s) {
            Some(url) => {
                // Listing first turns a missing bucket or object, denied access or an unreachable
                // store into a message that names the URL.
                if crate::remote::list(&url)
                    .await
                    .map_err(OfflineError::Remote)?
                    .is_none()
                {
                    return Err(OfflineError::Remote(format!("{url}: no such object")));
                }
                crate::remote::register(&ctx, &url).map_err(OfflineError::Remote)?
            }
            None if !path.exists() => return Err(err("no such file".into())),
            None => {}
        }
        // Any extension the format rule accepts (`.pq` as well as `.parquet`).
        let ext = path
            .extension()
            .map(|e| format!(".{}", e.to_string_lossy()))
            .unwrap_or_default();
        let df = match TableFormat::of(path) {
            Some(TableFormat::Parquet) => {
                ctx.read_parquet(s, ParquetReadOptions::default().file_extension(&ext))
                    .await
            }
            Some(TableFormat::Csv) => {
                ctx.read_csv(s, CsvReadOptions::new().file_extension(&ext))
                    .await
            }
            None => {
                return Err(err(format!(
                    "unsupported extension `{ext}`: use .parquet, .pq or .csv"
                )));
            }
        }
        .map_err(|e| err(format!("cannot read: {}", e.strip_backtrace())))?;
        let schema = SchemaRef::new(df.schema().as_arrow().clone());
        let batches = df
            .collect()
            .await
            .map_err(|e| err(format!("cannot read: {}", e.strip_backtrace())))?;
        Self::from_batches(path, schema, &batches)
    }

    pub fn num_rows(&self) -> usize {
        self.batch.num_rows()
    }

    pub(crate) fn error(&self, message: impl Into<String>) -> OfflineError {
        OfflineError::EntityTable {
            path: self.origin.clone(),
            message: message.into(),
        }
    }

    pub(crate) fn column_names(&self) -> String {
        self.batch
            .schema()
            .fields()
            .iter()
            .map(|f| f.name().as_str())
            .collect::<Vec<_>>()
            .join(", ")
    }
}
