//! Integration tests of the offline store on real Parquet files: the ASOF operator against a
//! brute-force oracle on random tables (proptest), golden cases, and bad input. The property tests
//! also run the plans a cluster runs (key-partitioned), here, against the same oracle.

mod golden;
mod oracle;
mod pit_props;
mod window_props;

use asof_core::FeatureRequest;
use asof_offline::{EntityTable, OfflineResult, OfflineStore, TrainingSetOptions};
use datafusion::arrow::array::RecordBatch;
use futures::TryStreamExt;

/// The training set as one batch: planned for one machine, or with `key_partitions` as for a
/// cluster (hash-partitioned by key, merged back by row id).
async fn training_set(
    store: &OfflineStore,
    entities: &EntityTable,
    request: &FeatureRequest,
    opts: &TrainingSetOptions,
    key_partitions: Option<usize>,
) -> OfflineResult<RecordBatch> {
    let stream = store
        .training_set_stream_with(entities, request, opts, key_partitions)
        .await?;
    let schema = stream.schema();
    let batches: Vec<RecordBatch> = stream.try_collect().await?;
    Ok(datafusion::arrow::compute::concat_batches(
        &schema, &batches,
    )?)
}
