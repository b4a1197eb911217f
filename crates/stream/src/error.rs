use std::path::PathBuf;

/// Why a stream stopped or could not start. Configuration problems carry the fix in their text:
/// they need a person, and retrying them would only repeat the message.
#[derive(Debug, thiserror::Error)]
pub enum StreamError {
    /// The source's definition, the database's settings or the table do not allow streaming.
    #[error("{what}: {message}\n  fix: {fix}")]
    Config {
        what: String,
        message: String,
        fix: String,
    },
    /// The connection to PostgreSQL failed or broke: retried while the stream runs.
    #[error("{what}: PostgreSQL at {server}: {message}")]
    Connection {
        what: String,
        server: String,
        message: String,
    },
    /// A change the stream cannot apply: it stops rather than skip it.
    #[error("{what}: {message}")]
    Change { what: String, message: String },
    #[error("{}: {message}", path.display())]
    Io { path: PathBuf, message: String },
    #[error(transparent)]
    Core(#[from] asof_core::CoreError),
    #[error(transparent)]
    Offline(#[from] asof_offline::OfflineError),
    #[error(transparent)]
    Server(#[from] asof_server::ServerError),
    #[error(transparent)]
    Retrieval(#[from] asof_retrieval::RetrievalError),
}

impl StreamError {
    /// Whether reconnecting may cure it (the database restarting, a network blip).
    pub fn is_transient(&self) -> bool {
        matches!(self, StreamError::Connection { .. })
    }

    pub(crate) fn io(path: impl Into<PathBuf>, e: impl std::fmt::Display) -> Self {
        StreamError::Io {
            path: path.into(),
            message: e.to_string(),
        }
    }
}

pub type StreamResult<T> = Result<T, StreamError>;
