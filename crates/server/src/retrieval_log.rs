//! The retrieval log: every `RetrieveAndRank` answer as rows (one per hit) with the feature values
//! served, in Parquet. Each row has the document join key and `event_timestamp` (the request's
//! as-of time), so the file is directly an entity table for `asof training-set`: rebuilding the
//! same features offline for the logged rows is a reranker's training set and a skew check.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use asof_core::DType;
use asof_core::value::Value;
use asof_offline::output::write_table;
use asof_offline::types::values_to_array;
use datafusion::arrow::array::TimestampNanosecondArray;
use datafusion::arrow::array::{ArrayRef, Float32Array, Int32Array, RecordBatch, StringArray};

use crate::error::{ServerError, ServerResult};

/// Rows kept in memory before a file is written.
const FLUSH_ROWS: usize = 10_000;

/// One logged hit.
#[derive(Debug, Clone)]
pub struct LoggedHit {
    pub doc_id: String,
    pub chunk_id: String,
    pub rank: i32,
    pub score: f32,
    /// In the order of the batch's feature columns.
    pub features: Vec<Value>,
}

/// One request's rows.
#[derive(Debug, Clone)]
pub struct LoggedRequest {
    pub request_id: String,
    pub as_of: i64,
    pub index: String,
    pub version: String,
    pub model: String,
    pub query: String,
    /// The document entity's join key: the column the doc ids go in.
    pub join_key: String,
    /// Output feature names and dtypes, in response order.
    pub features: Vec<(String, DType)>,
    pub hits: Vec<LoggedHit>,
    /// The index's contract left too few hits: the request is logged as one row with rank 0 and
    /// an empty doc id (which joins no features), so abstentions are counted too.
    pub abstained: bool,
    /// What the contract kept out, by reason, as JSON (`{}` when nothing).
    pub excluded: String,
}

/// Requests with the same columns are written to the same files.
type Shape = (String, String, Vec<(String, DType)>);

#[derive(Debug, Default)]
struct Buffer {
    requests: HashMap<Shape, Vec<LoggedRequest>>,
    rows: usize,
}

#[derive(Debug, Clone)]
pub struct RetrievalLog {
    dir: PathBuf,
    buffer: Arc<Mutex<Buffer>>,
    seq: Arc<AtomicU64>,
}

impl RetrievalLog {
    pub fn new(dir: &Path) -> ServerResult<Self> {
        std::fs::create_dir_all(dir).map_err(|e| {
            ServerError::Transport(format!("cannot create log folder {}: {e}", dir.display()))
        })?;
        Ok(RetrievalLog {
            dir: dir.to_path_buf(),
            buffer: Arc::default(),
            seq: Arc::default(),
        })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Adds a request; writes files once enough rows are buffered.
    pub fn record(&self, req: LoggedRequest) -> ServerResult<()> {
        let full = {
            let mut b = self.buffer.lock().unwrap_or_else(|p| p.into_inner());
            b.rows += req.hits.len();
            let shape = (
                req.index.clone(),
                req.join_key.clone(),
                req.features.clone(),
            );
            b.requests.entry(shape).or_default().push(req);
            b.rows >= FLUSH_ROWS
        };
        if full {
            self.flush()?;
        }
        Ok(())
    }

    /// Writes everything buffered, one Parquet file per index and column set. Returns the files.
    pub fn flush(&self) -> ServerResult<Vec<PathBuf>> {
        let taken = std::mem::take(&mut *self.buffer.lock().unwrap_or_else(|p| p.into_inner()));
        let mut files = Vec::new();
        for ((index, join_key, features), requests) in taken.requests {
            let rows: usize = requests.iter().map(|r| r.hits.len()).sum();
            if rows == 0 {
                continue;
            }
            let batch = to_batch(&join_key, &features, &requests)?;
            let seq = self.seq.fetch_add(1, Ordering::Relaxed);
            let stamp = chrono::Utc::now().format("%Y%m%dT%H%M%S%.3fZ");
            let path = self.dir.join(format!(
                "retrievals-{index}-{stamp}-{}-{seq}.parquet",
                std::process::id()
            ));
            write_table(&path, &[batch])?;
            tracing::info!(path = %path.display(), rows, "wrote retrieval log");
            files.push(path);
        }
        Ok(files)
    }
}

fn to_batch(
    join_key: &str,
    features: &[(String, DType)],
    requests: &[LoggedRequest],
) -> ServerResult<RecordBatch> {
    let hits = || {
        requests
            .iter()
            .flat_map(|r| r.hits.iter().map(move |h| (r, h)))
    };
    let strings = |f: &dyn Fn(&LoggedRequest, &LoggedHit) -> String| -> ArrayRef {
        Arc::new(StringArray::from(
            hits().map(|(r, h)| f(r, h)).collect::<Vec<_>>(),
        ))
    };
    // Each column beside its name; types come from the arrays (features: their dtype's type).
    let mut columns: Vec<(&str, ArrayRef, bool)> = vec![
        ("request_id", strings(&|r, _| r.request_id.clone()), false),
        (
            "event_timestamp",
            Arc::new(
                TimestampNanosecondArray::from(hits().map(|(r, _)| r.as_of).collect::<Vec<_>>())
                    .with_timezone("UTC"),
            ),
            false,
        ),
        (join_key, strings(&|_, h| h.doc_id.clone()), false),
        (
            "rank",
            Arc::new(Int32Array::from(
                hits().map(|(_, h)| h.rank).collect::<Vec<_>>(),
            )),
            false,
        ),
        (
            "score",
            Arc::new(Float32Array::from(
                hits().map(|(_, h)| h.score).collect::<Vec<_>>(),
            )),
            false,
        ),
        ("chunk_id", strings(&|_, h| h.chunk_id.clone()), false),
        ("index", strings(&|r, _| r.index.clone()), false),
        ("version", strings(&|r, _| r.version.clone()), false),
        ("model", strings(&|r, _| r.model.clone()), false),
        ("query", strings(&|r, _| r.query.clone()), false),
        (
            "abstained",
            Arc::new(datafusion::arrow::array::BooleanArray::from(
                hits().map(|(r, _)| r.abstained).collect::<Vec<_>>(),
            )),
            false,
        ),
        ("excluded", strings(&|r, _| r.excluded.clone()), false),
    ];
    for (i, (name, dtype)) in features.iter().enumerate() {
        let values: Vec<Value> = hits()
            .map(|(_, h)| h.features.get(i).cloned().unwrap_or(Value::Null))
            .collect();
        columns.push((name, values_to_array(dtype, &values)?, true));
    }
    RecordBatch::try_from_iter_with_nullable(columns)
        .map_err(|e| ServerError::Transport(format!("building the retrieval log: {e}")))
}
