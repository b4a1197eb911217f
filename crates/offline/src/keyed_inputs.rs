//! What asof's two-input operators ([`crate::pit_join::PitJoinExec`],
//! [`crate::window_agg::WindowAggExec`]) share about their inputs: entity rows on the left, read
//! whole, feature rows on the right, the first `key_count` columns of each the keys, times as
//! Int64 nanoseconds, and one output partition in the left's order.

use std::sync::Arc;

use datafusion::arrow::array::{ArrayRef, AsArray, Int64Array, RecordBatch};
use datafusion::arrow::datatypes::{Int64Type, SchemaRef};
use datafusion::common::{DataFusionError, Result, internal_err};
use datafusion::execution::TaskContext;
use datafusion::physical_expr::EquivalenceProperties;
use datafusion::physical_plan::coalesce_partitions::CoalescePartitionsExec;
use datafusion::physical_plan::execution_plan::{Boundedness, EmissionType};
use datafusion::physical_plan::{
    ExecutionPlan, ExecutionPlanProperties, Partitioning, PlanProperties, SendableRecordBatchStream,
};

/// Checks that both inputs lead with `key_count` key columns of equal types, and returns the left
/// as one partition (coalesced when it has several).
pub(crate) fn keyed_left(
    operator: &str,
    left: Arc<dyn ExecutionPlan>,
    right: &Arc<dyn ExecutionPlan>,
    key_count: usize,
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
    Ok(if left.output_partitioning().partition_count() == 1 {
        left
    } else {
        Arc::new(CoalescePartitionsExec::new(left))
    })
}

/// One bounded output partition of `schema`, emitted when the operator is done.
pub(crate) fn single_output(schema: &SchemaRef) -> Arc<PlanProperties> {
    Arc::new(PlanProperties::new(
        EquivalenceProperties::new(Arc::clone(schema)),
        Partitioning::UnknownPartitioning(1),
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

/// Starts the inputs of the operator's one output `partition`: the left's single partition and
/// every partition of the right.
pub(crate) fn execute_inputs(
    operator: &str,
    partition: usize,
    left: &Arc<dyn ExecutionPlan>,
    right: &Arc<dyn ExecutionPlan>,
    context: &Arc<TaskContext>,
) -> Result<(SendableRecordBatchStream, Vec<SendableRecordBatchStream>)> {
    if partition != 0 {
        return internal_err!("{operator} has one output partition, asked for {partition}");
    }
    let left = left.execute(0, Arc::clone(context))?;
    let rights = (0..right.output_partitioning().partition_count())
        .map(|p| right.execute(p, Arc::clone(context)))
        .collect::<Result<Vec<_>>>()?;
    Ok((left, rights))
}
