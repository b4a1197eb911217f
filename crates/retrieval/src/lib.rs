//! asof's document indexes. A vector index is derived data with the same rigour as features:
//! chunks are content-addressed (an unchanged chunk is never re-embedded), deletions are
//! tombstoned at once, every vector records the model that made it (a query from another model is
//! an error), and model or chunker changes build a new version beside the live one, promoted
//! atomically after `eval` says it is better.
//!
//! Embedding runs on threads (the embedders are blocking HTTP or CPU work); the server calls in
//! through `spawn_blocking`.

pub mod cache;
pub mod chunker;
pub mod distance;
pub mod document;
pub mod embed;
pub mod error;
pub mod eval;
pub mod frozen;
pub mod graph;
pub mod layout;
pub mod live;
pub mod models;
pub mod search;
pub mod sparse;
pub mod store;
pub mod sync;

pub use error::{RetrievalError, RetrievalResult};
pub use live::LiveIndexes;
pub use search::{Answer, DocumentResult, Exclusion, Hit, LoadedVersion, Query, SearchOptions};
pub use store::IndexStore;
pub use sync::{Corpus, DocumentChanges, SyncReport, VersionSync};
