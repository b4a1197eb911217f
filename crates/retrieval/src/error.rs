use std::path::PathBuf;

use thiserror::Error;

pub type RetrievalResult<T> = Result<T, RetrievalError>;

#[derive(Debug, Error)]
pub enum RetrievalError {
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    /// A document that cannot be read; `line` is 1-based for JSON-lines files.
    #[error("{}{}: {message}", path.display(), line.map(|l| format!(":{l}")).unwrap_or_default())]
    Document {
        path: PathBuf,
        line: Option<usize>,
        message: String,
    },
    #[error("embedder `{model}`: {message}")]
    Embedder { model: String, message: String },
    #[error("document index `{index}` has no version `{version}`{hint}")]
    UnknownVersion {
        index: String,
        version: String,
        hint: String,
    },
    #[error("document index `{0}` has not been synced yet; run `asof index sync {0}`")]
    NotSynced(String),
    /// Vectors from different models live in different spaces, even with equal dims.
    #[error(
        "query vector is from model `{query}` but index `{index}` version `{version}` holds `{expected}` vectors; embed the query with `{expected}` or send query text"
    )]
    ModelMismatch {
        index: String,
        version: String,
        query: String,
        expected: String,
    },
    #[error("bad query: {0}")]
    Query(String),
    #[error("index files under {} are damaged: {message}", path.display())]
    Corrupt { path: PathBuf, message: String },
    /// Another process runs a sync of the index (the OS lock on `path` is released when that
    /// process ends, however it ends, so there is never a stale lock to delete).
    #[error(
        "another process is syncing `{index}` (it holds the lock on {}); {action} when that sync finishes",
        path.display()
    )]
    Locked {
        index: String,
        path: PathBuf,
        /// What to retry: "run the sync again", "drop the version".
        action: &'static str,
    },
    /// A local model that is not installed (or cannot be installed): `fix` is the command to run.
    #[error("model `{model}`: {message}\n  fix: {fix}")]
    Model {
        model: String,
        message: String,
        fix: String,
    },
    #[error("embedding cache {}: {message}", path.display())]
    Cache { path: PathBuf, message: String },
    #[error(transparent)]
    Core(#[from] asof_core::CoreError),
}

impl RetrievalError {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        RetrievalError::Io {
            path: path.into(),
            source,
        }
    }

    pub(crate) fn corrupt(path: impl Into<PathBuf>, message: impl ToString) -> Self {
        RetrievalError::Corrupt {
            path: path.into(),
            message: message.to_string(),
        }
    }
}
