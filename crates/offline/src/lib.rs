//! asof's offline store: point-in-time correct training sets over Parquet, on DataFusion.
//!
//! The join is [`pit_join::PitJoinExec`], a custom `ExecutionPlan` (DataFusion 55 has no ASOF join);
//! [`store::OfflineStore`] plans it per feature view and assembles the views' columns.

pub mod audit;
pub mod entity_table;
pub mod error;
pub mod input_order;
pub mod keyed_inputs;
pub mod listing;
pub mod memory;
pub mod output;
pub mod pit_join;
pub mod probe;
pub mod push_log;
pub mod quickstart;
pub mod remote;
pub mod source;
pub mod store;
pub mod timestamps;
pub mod types;
pub mod window_agg;

pub use entity_table::EntityTable;
pub use error::{OfflineError, OfflineResult};
pub use store::{KeyPartitioning, OfflineStore, ScannedEvents, ScannedRows, TrainingSetOptions};
