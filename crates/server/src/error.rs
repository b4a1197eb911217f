use asof_online::OnlineError;

pub type ServerResult<T> = Result<T, ServerError>;

#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error(transparent)]
    Core(#[from] asof_core::CoreError),
    #[error(transparent)]
    Offline(#[from] asof_offline::OfflineError),
    #[error(transparent)]
    Online(#[from] OnlineError),
    #[error(transparent)]
    Retrieval(#[from] asof_retrieval::RetrievalError),
    /// A request that cannot be served as asked.
    #[error("{0}")]
    InvalidArgument(String),
    #[error("{0}")]
    Transport(String),
    /// The request is valid but this server cannot serve it as configured.
    #[error("{0}")]
    FailedPrecondition(String),
    /// The server cannot start as configured (auth, TLS files).
    #[error("{0}")]
    Config(String),
}

/// The one place errors become gRPC statuses.
impl From<ServerError> for tonic::Status {
    fn from(e: ServerError) -> Self {
        match &e {
            ServerError::InvalidArgument(m) => tonic::Status::invalid_argument(m.clone()),
            ServerError::FailedPrecondition(m) => tonic::Status::failed_precondition(m.clone()),
            ServerError::Core(asof_core::CoreError::Request(m)) => {
                tonic::Status::invalid_argument(m.clone())
            }
            ServerError::Offline(o) => {
                use asof_offline::OfflineError as O;
                match o {
                    O::EntityTable { .. }
                    | O::Request(_)
                    | O::Core(asof_core::CoreError::Request(_)) => {
                        tonic::Status::invalid_argument(e.to_string())
                    }
                    O::MemoryLimit { .. } => tonic::Status::resource_exhausted(e.to_string()),
                    _ => tonic::Status::internal(e.to_string()),
                }
            }
            ServerError::Online(OnlineError::Unavailable { .. }) => {
                tonic::Status::unavailable(e.to_string())
            }
            ServerError::Retrieval(r) => {
                use asof_retrieval::RetrievalError as R;
                match r {
                    R::ModelMismatch { .. } | R::Query(_) | R::UnknownVersion { .. } => {
                        tonic::Status::invalid_argument(e.to_string())
                    }
                    R::NotSynced(_) => tonic::Status::failed_precondition(e.to_string()),
                    // A remote embedder that failed after its retries: try again later.
                    R::Embedder { .. } => tonic::Status::unavailable(e.to_string()),
                    _ => tonic::Status::internal(e.to_string()),
                }
            }
            _ => tonic::Status::internal(e.to_string()),
        }
    }
}
