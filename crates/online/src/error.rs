use std::path::PathBuf;

pub type OnlineResult<T> = Result<T, OnlineError>;

/// `Clone`: one failed round trip is reported to every read that shared it.
#[derive(Debug, Clone, thiserror::Error)]
pub enum OnlineError {
    /// The store cannot be reached (Redis down, timeout): callers may retry.
    #[error("online store {store} is unavailable: {message}")]
    Unavailable { store: String, message: String },
    #[error("online store {store}: {message}")]
    Store { store: String, message: String },
    #[error("embedded online store {path}: {message}")]
    Embedded { path: PathBuf, message: String },
    #[error("bad online store configuration: {0}")]
    Config(String),
}
