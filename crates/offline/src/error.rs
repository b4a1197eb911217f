//! Errors of the offline store. Each names the file, column or view it is about.

use std::path::PathBuf;

use datafusion::error::DataFusionError;

pub type OfflineResult<T> = Result<T, OfflineError>;

#[derive(Debug, thiserror::Error)]
pub enum OfflineError {
    /// The entity table is unusable: a missing column, a wrong type, null timestamps.
    #[error("entity table {path}: {message}")]
    EntityTable { path: PathBuf, message: String },
    /// A view's source data cannot be read or does not match the definitions.
    #[error("source `{source_name}` ({path}) of view `{view}`: {message}")]
    Source {
        view: String,
        source_name: String,
        path: String,
        message: String,
    },
    #[error("{path}: {message}")]
    File { path: PathBuf, message: String },
    #[error(transparent)]
    Core(#[from] asof_core::CoreError),
    #[error("query engine: {0}")]
    Engine(DataFusionError),
    /// The query needs more memory than its pool allows (`--memory-limit`).
    #[error(
        "out of memory budget: {detail}; raise --memory-limit (e.g. `--memory-limit 90%`) or split the entity table into smaller time ranges"
    )]
    MemoryLimit { detail: String },
    #[error("{0}")]
    Request(String),
    /// An object store failed; the message names the URL and the likely fix.
    #[error("{0}")]
    Remote(String),
}

impl From<DataFusionError> for OfflineError {
    fn from(e: DataFusionError) -> Self {
        match e.find_root() {
            DataFusionError::ResourcesExhausted(detail) => OfflineError::MemoryLimit {
                detail: detail.clone(),
            },
            _ => OfflineError::Engine(e),
        }
    }
}

impl From<datafusion::arrow::error::ArrowError> for OfflineError {
    fn from(e: datafusion::arrow::error::ArrowError) -> Self {
        OfflineError::Engine(e.into())
    }
}
