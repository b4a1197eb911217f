//! What asof's two-input operators ([`crate::pit_join::PitJoinExec`],
//! [`crate::window_agg::WindowAggExec`]) share about their inputs: entity rows on the left, read
//! whole, feature rows on the right, the first `key_count` columns of each the keys, times as
//! Int64 nanoseconds, and output in the left's order.
//!
//! They split their work in one of two ways ([`Inputs`]). On one machine the entity table is read
//! whole and every feature partition probes it. On a cluster both sides are hash-partitioned by
//! the keys first, so that every partition holds all rows of its keys on both sides and joins
//! alone; the answer for an entity row depends only on rows of its key, so both ways give the same
//! rows.

use std::sync::Arc;

use datafusion::arrow::array::{ArrayRef, AsArray, Int64Array, RecordBatch};
use datafusion::arrow::datatypes::{Int64Type, SchemaRef};
use datafusion::common::{DataFusionError, Result, internal_err};
use datafusion::execution::TaskContext;
use datafusion::physical_expr::EquivalenceProperties;
use datafusion::physical_expr::expressions::Column;
use datafusion::physical_plan::coalesce_partitions::CoalescePartitionsExec;
use datafusion::physical_plan::execution_plan::{Boundedness, EmissionType};
use datafusion::physical_plan::{
    Distribution, ExecutionPlan, ExecutionPlanProperties, Partitioning, PhysicalExpr,
    PlanProperties, SendableRecordBatchStream,
};

/// How a two-input operator reads its inputs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Inputs {
    /// The left is read whole (coalesced to one partition), every right partition probes it, and
    /// there is one output partition in the left's order.
    Collected,
    /// Both inputs are hash-partitioned by the keys into the same number of partitions, and
    /// output partition `i` joins left partition `i` with right partition `i`, in that left
    /// partition's order. Restoring the entity order is the plan's job (see
    /// `OfflineStore::distributed_plans`).
    KeyPartitioned,
}

impl Inputs {
    /// The distribution each input must have.
    pub(crate) fn required(
        self,
        key_count: usize,
        left: &SchemaRef,
        right: &SchemaRef,
    ) -> Vec<Distribution> {
        match self {
            Inputs::Collected => vec![
                Distribution::SinglePartition,
                Distribution::UnspecifiedDistribution,
            ],
            Inputs::KeyPartitioned => vec![
                Distribution::KeyPartitioned(key_columns(left, key_count)),
                Distribution::KeyPartitioned(key_columns(right, key_count)),
            ],
        }
    }
}

/// The first `key_count` columns of `schema`, as hash-partitioning expressions.
pub fn key_columns(schema: &SchemaRef, key_count: usize) -> Vec<Arc<dyn PhysicalExpr>> {
    schema
        .fields()
        .iter()
        .take(key_count)
        .enumerate()
        .map(|(i, f)| Arc::new(Column::new(f.name(), i)) as Arc<dyn PhysicalExpr>)
        .collect()
}

/// Checks that both inputs lead with `key_count` key columns of equal types, and returns the left
/// as [`Inputs`] needs it: one partition (coalesced when it has several), or as it is when key
/// partitioned (with as many partitions as the right).
pub(crate) fn keyed_left(
    operator: &str,
    left: Arc<dyn ExecutionPlan>,
    right: &Arc<dyn ExecutionPlan>,
    key_count: usize,
    inputs: Inputs,
) -> Result<Arc<dyn ExecutionPlan>> {
    let (ls, rs) = (left.schema(), right.schema());
    if key_count == 0 || ls.fields().len() < key_count || rs.fields().len() < key_count {
        return internal_err!("{operator} needs at least one key column on both sides");
    }
    for i in 0..key_count {
        if ls.field(i).data_type() != rs.field(i).data_type() {
            return internal_err!(
                "{operator} key {i} has type {} on the left and {} on the right",
                ls.field(i).data_type(),
                rs.field(i).data_type()
            );
        }
    }
    let (lp, rp) = (
        left.output_partitioning().partition_count(),
        right.output_partitioning().partition_count(),
    );
    if inputs == Inputs::KeyPartitioned {
        if lp != rp {
            return internal_err!(
                "{operator} with key-partitioned inputs needs as many partitions on both sides, got {lp} and {rp}"
            );
        }
        return Ok(left);
    }
    Ok(if lp == 1 {
        left
    } else {
        Arc::new(CoalescePartitionsExec::new(left))
    })
}

/// The bounded output partitions of `schema` (one per left partition), each emitted when its
/// join is done.
pub(crate) fn output_properties(
    schema: &SchemaRef,
    left: &Arc<dyn ExecutionPlan>,
) -> Arc<PlanProperties> {
    Arc::new(PlanProperties::new(
        EquivalenceProperties::new(Arc::clone(schema)),
        Partitioning::UnknownPartitioning(left.output_partitioning().partition_count()),
        EmissionType::Final,
        Boundedness::Bounded,
    ))
}

/// Column `col` of `batch` as Int64 nanoseconds, or an internal error naming `operator`.
pub(crate) fn nanos(operator: &str, batch: &RecordBatch, col: usize) -> Result<Int64Array> {
    let c: &ArrayRef = batch.column(col);
    c.as_primitive_opt::<Int64Type>().cloned().ok_or_else(|| {
        DataFusionError::Internal(format!(
            "{operator} expects Int64 nanosecond timestamps, got {}",
            c.data_type()
        ))
    })
}

/// Starts the inputs of output `partition`: collected, the left's single partition and every
/// partition of the right; key-partitioned, partition `partition` of each.
pub(crate) fn execute_inputs(
    operator: &str,
    partition: usize,
    left: &Arc<dyn ExecutionPlan>,
    right: &Arc<dyn ExecutionPlan>,
    context: &Arc<TaskContext>,
    inputs: Inputs,
) -> Result<(SendableRecordBatchStream, Vec<SendableRecordBatchStream>)> {
    let partitions = left.output_partitioning().partition_count();
    if partition >= partitions {
        return internal_err!(
            "{operator} has {partitions} output partition(s), asked for {partition}"
        );
    }
    if inputs == Inputs::KeyPartitioned {
        let left = left.execute(partition, Arc::clone(context))?;
        let right = right.execute(partition, Arc::clone(context))?;
        return Ok((left, vec![right]));
    }
    let left = left.execute(0, Arc::clone(context))?;
    let rights = (0..right.output_partitioning().partition_count())
        .map(|p| right.execute(p, Arc::clone(context)))
        .collect::<Result<Vec<_>>>()?;
    Ok((left, rights))
}
