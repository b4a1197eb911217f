use thiserror::Error;

pub type ClusterResult<T> = Result<T, ClusterError>;

#[derive(Debug, Error)]
pub enum ClusterError {
    /// A `--cluster` address that is not `df://HOST:PORT`.
    #[error("{0}")]
    Address(String),
    #[error(transparent)]
    Offline(#[from] asof_offline::OfflineError),
    /// The cluster refused or failed the job; the message says which part and why.
    #[error("{0}")]
    Job(String),
    /// A scheduler or executor could not start or stopped with an error.
    #[error("{0}")]
    Node(String),
}
