//! asof's server side: materialization (offline store -> online store) and the feature server,
//! including document search and the reranker-feature path. The domain code lives in
//! [`service::Serving`] and [`training`]; gRPC (`service`), Arrow Flight (`flight`), Feast's HTTP
//! (`http`) and MCP (`mcp`) are thin front ends over it.
//! This crate composes the offline and online crates; the semantics it relies on (PIT rule, key
//! encoding, feature naming) all live in `asof_core`.

pub mod aggregate;
pub mod auth;
pub mod codec;
pub mod convert;
pub mod deadline;
pub mod error;
pub mod flight;
pub mod http;
pub mod ingest;
pub mod json;
pub mod materialize;
pub mod mcp;
pub mod metrics;
pub mod proto;
mod request_cache;
pub mod retrieval;
pub mod retrieval_log;
pub mod service;
pub mod snapshot;
pub mod status;
pub mod training;

pub use error::{ServerError, ServerResult};
