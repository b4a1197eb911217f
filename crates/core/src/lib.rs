//! asof's core: what users declare in a feature repository, how it is validated, and the registry
//! that records it. Every semantic shared by the offline, online and retrieval paths lives here once
//! (feature naming, reference resolution, entity key encoding, the point-in-time rule on scalars), so
//! no path can drift from another.
//!
//! This crate deliberately has no I/O engine (no DataFusion, Redis or tonic): it reads YAML and writes
//! the registry file, nothing else. Engines plug in through small traits such as [`SchemaProbe`].

pub mod atomic;
pub mod catalog;
pub mod config;
pub mod dtype;
pub mod duration;
pub mod error;
pub mod keys;
pub mod locate;
pub mod lock;
pub mod pit;
pub mod refs;
pub mod registry;
pub mod repo;
pub mod spec;
pub mod time;
pub mod validate;
pub mod value;
pub mod window;

pub use catalog::Catalog;
pub use config::{OnlineStoreConfig, RepoConfig};
pub use dtype::DType;
pub use duration::Ttl;
pub use error::{CoreError, CoreResult, Diagnostic};
pub use refs::{FeatureRequest, ResolvedView};
pub use registry::Registry;
pub use repo::Repo;
pub use validate::{ColumnInfo, SchemaProbe};
