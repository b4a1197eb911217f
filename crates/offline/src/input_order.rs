//! `InputOrderExec`: tags every row with its place in the input, `(partition << 40) | row`, so
//! that an order defined by arrival survives a shuffle.
//!
//! A windowed `last` breaks ties on `(ts, created, ordinal)` by input order: partition by
//! partition, row by row, as the events leave their scan. On one machine that is the order the
//! operator receives them in; on a cluster a hash shuffle interleaves them. The tag, taken right
//! after the scan, carries the single-machine order across the shuffle, so both give the same row.

use std::fmt;
use std::sync::Arc;

use datafusion::arrow::array::{RecordBatch, UInt64Array};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::common::tree_node::TreeNodeRecursion;
use datafusion::common::{Result, internal_err};
use datafusion::execution::TaskContext;
use datafusion::physical_expr::EquivalenceProperties;
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::{
    DisplayAs, DisplayFormatType, ExecutionPlan, ExecutionPlanProperties, PhysicalExpr,
    PlanProperties, ReplaceChildrenOptions, SendableRecordBatchStream,
};
use futures::StreamExt;

/// The tag column's name.
pub const INPUT_ORDER: &str = "__asof_input_order";

/// Rows per partition the tag can number (2^40); partitions take the 24 bits above.
const ROW_BITS: u32 = 40;

#[derive(Debug)]
pub struct InputOrderExec {
    input: Arc<dyn ExecutionPlan>,
    schema: SchemaRef,
    cache: Arc<PlanProperties>,
}

impl InputOrderExec {
    pub fn new(input: Arc<dyn ExecutionPlan>) -> Self {
        let mut fields: Vec<Field> = input
            .schema()
            .fields()
            .iter()
            .map(|f| f.as_ref().clone())
            .collect();
        fields.push(Field::new(INPUT_ORDER, DataType::UInt64, false));
        let schema = Arc::new(Schema::new(fields));
        let cache = Arc::new(PlanProperties::new(
            EquivalenceProperties::new(Arc::clone(&schema)),
            input.output_partitioning().clone(),
            input.pipeline_behavior(),
            input.boundedness(),
        ));
        InputOrderExec {
            input,
            schema,
            cache,
        }
    }
}

impl DisplayAs for InputOrderExec {
    fn fmt_as(&self, _t: DisplayFormatType, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "InputOrderExec: {INPUT_ORDER}")
    }
}

impl ExecutionPlan for InputOrderExec {
    fn name(&self) -> &'static str {
        "InputOrderExec"
    }

    fn properties(&self) -> &Arc<PlanProperties> {
        &self.cache
    }

    fn maintains_input_order(&self) -> Vec<bool> {
        vec![true]
    }

    /// A repartition below would change the order this tags.
    fn benefits_from_input_partitioning(&self) -> Vec<bool> {
        vec![false]
    }

    fn children(&self) -> Vec<&Arc<dyn ExecutionPlan>> {
        vec![&self.input]
    }

    fn apply_expressions(
        &self,
        _f: &mut dyn FnMut(&Arc<dyn PhysicalExpr>) -> Result<TreeNodeRecursion>,
    ) -> Result<TreeNodeRecursion> {
        Ok(TreeNodeRecursion::Continue)
    }

    fn replace_children(
        self: Arc<Self>,
        mut children: Vec<Arc<dyn ExecutionPlan>>,
        _options: ReplaceChildrenOptions,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        match (children.pop(), children.is_empty()) {
            (Some(input), true) => Ok(Arc::new(InputOrderExec::new(input))),
            _ => internal_err!("InputOrderExec takes one child"),
        }
    }

    #[allow(deprecated)]
    fn with_new_children(
        self: Arc<Self>,
        children: Vec<Arc<dyn ExecutionPlan>>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        self.replace_children(
            children,
            ReplaceChildrenOptions::new(
                datafusion::physical_plan::ChildrenPropertiesMode::Recompute,
            ),
        )
    }

    fn execute(
        &self,
        partition: usize,
        context: Arc<TaskContext>,
    ) -> Result<SendableRecordBatchStream> {
        if partition as u64 >= 1 << (64 - ROW_BITS) {
            return internal_err!("InputOrderExec numbers at most 2^24 partitions");
        }
        let schema = Arc::clone(&self.schema);
        let base = (partition as u64) << ROW_BITS;
        let mut next = 0u64;
        let stream = self.input.execute(partition, context)?.map(move |batch| {
            let batch = batch?;
            let n = batch.num_rows() as u64;
            if next + n > 1 << ROW_BITS {
                return internal_err!("InputOrderExec numbers at most 2^40 rows per partition");
            }
            let tags = UInt64Array::from_iter_values((next..next + n).map(|r| base | r));
            next += n;
            let mut columns = batch.columns().to_vec();
            columns.push(Arc::new(tags));
            Ok(RecordBatch::try_new(Arc::clone(&schema), columns)?)
        });
        Ok(Box::pin(RecordBatchStreamAdapter::new(
            Arc::clone(&self.schema),
            stream,
        )))
    }
}
