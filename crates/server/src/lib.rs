//! asof's server side: materialization (offline store -> online store) and the gRPC feature server,
//! including document search and the reranker-feature path.
//! This crate composes the offline and online crates; the semantics it relies on (PIT rule, key
//! encoding, feature naming) all live in `asof_core`.

pub mod aggregate;
pub mod auth;
pub mod codec;
pub mod convert;
pub mod deadline;
pub mod error;
pub mod ingest;
pub mod materialize;
pub mod metrics;
pub mod proto;
mod request_cache;
pub mod retrieval;
pub mod retrieval_log;
pub mod service;
pub mod snapshot;
pub mod status;

pub use error::{ServerError, ServerResult};
