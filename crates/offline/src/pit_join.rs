//! `PitJoinExec`: a point-in-time (ASOF) join operator for DataFusion 55, which has none.
//!
//! # Semantics
//! For every left (entity) row `(k, t)` it emits exactly one row: the left row's columns, then the
//! payload of the right (feature) row with key `k` that is the latest by `(ts, created)` among rows
//! with `ts <= t` (and, with `filter_by_created`, `created <= t`), or nulls when there is none or when
//! it is older than the TTL allows. The rule itself is [`asof_core::pit`]; this operator only finds
//! the candidate efficiently.
//!
//! # Contract with its inputs
//! * Both inputs are hash-partitioned on the key columns with the same partition count and the same
//!   key types (so equal keys meet in the same partition).
//! * Both sides are sorted by `(keys, ts)` (rows with equal `ts` in any order), ascending with nulls
//!   first, within each partition.
//! * The first `key_count` columns of each input are the keys. Timestamps are `Int64` nanoseconds
//!   (UTC). Right rows with a null key or timestamp must be filtered out before (they never match).
//!
//! # Algorithm
//! A merge: one forward cursor over the right per partition, a retained candidate per left key. The
//! cursor never rewinds, so the work is O(left + right) after the sorts, and memory holds only the
//! right batches that a pending output row still references.

use std::collections::VecDeque;
use std::fmt;
use std::sync::Arc;

use asof_core::Ttl;
use asof_core::pit;
use datafusion::arrow::array::{Array, ArrayRef, AsArray, Int64Array, RecordBatch, new_null_array};
use datafusion::arrow::compute::interleave;
use datafusion::arrow::datatypes::{Field, Int64Type, Schema, SchemaRef};
use datafusion::arrow::row::{OwnedRow, RowConverter, Rows, SortField};
use datafusion::common::tree_node::TreeNodeRecursion;
use datafusion::common::{DataFusionError, Result, internal_err};
use datafusion::execution::TaskContext;
use datafusion::physical_expr::EquivalenceProperties;
use datafusion::physical_expr::expressions::Column;
use datafusion::physical_plan::execution_plan::{Boundedness, EmissionType};
use datafusion::physical_plan::metrics::{BaselineMetrics, ExecutionPlanMetricsSet, MetricsSet};
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::{
    ChildrenPropertiesMode, DisplayAs, DisplayFormatType, Distribution, ExecutionPlan,
    ExecutionPlanProperties, PhysicalExpr, PlanProperties, ReplaceChildrenOptions,
    SendableRecordBatchStream,
};
use futures::StreamExt;

/// How the join reads its inputs: which columns are keys and timestamps, and the PIT options.
#[derive(Debug, Clone)]
pub struct PitJoinOptions {
    /// The first `key_count` columns of both inputs are the join keys.
    pub key_count: usize,
    /// Index of the left's timestamp column (Int64 ns).
    pub left_ts: usize,
    /// Index of the right's event timestamp column (Int64 ns).
    pub right_ts: usize,
    /// Index of the right's created timestamp column (Int64 ns), if the source has one.
    pub right_created: Option<usize>,
    pub ttl: Ttl,
    /// Also require `created <= t`: only rows known at the entity's time.
    pub filter_by_created: bool,
}

/// The point-in-time join. See the module docs for its contract.
#[derive(Debug)]
pub struct PitJoinExec {
    left: Arc<dyn ExecutionPlan>,
    right: Arc<dyn ExecutionPlan>,
    options: PitJoinOptions,
    schema: SchemaRef,
    cache: Arc<PlanProperties>,
    metrics: ExecutionPlanMetricsSet,
}

impl PitJoinExec {
    pub fn try_new(
        left: Arc<dyn ExecutionPlan>,
        right: Arc<dyn ExecutionPlan>,
        options: PitJoinOptions,
    ) -> Result<Self> {
        let (ls, rs) = (left.schema(), right.schema());
        let k = options.key_count;
        if k == 0 || ls.fields().len() < k || rs.fields().len() < k {
            return internal_err!("PitJoinExec needs at least one key column on both sides");
        }
        for i in 0..k {
            if ls.field(i).data_type() != rs.field(i).data_type() {
                return internal_err!(
                    "PitJoinExec key {i} has type {} on the left and {} on the right",
                    ls.field(i).data_type(),
                    rs.field(i).data_type()
                );
            }
        }
        let lp = left.output_partitioning().partition_count();
        let rp = right.output_partitioning().partition_count();
        if lp != rp {
            return internal_err!(
                "PitJoinExec inputs have {lp} and {rp} partitions; they must be co-partitioned"
            );
        }
        let schema = output_schema(&ls, &rs, k);
        let cache = Arc::new(PlanProperties::new(
            EquivalenceProperties::new(Arc::clone(&schema)),
            left.output_partitioning().clone(),
            EmissionType::Incremental,
            Boundedness::Bounded,
        ));
        Ok(PitJoinExec {
            left,
            right,
            options,
            schema,
            cache,
            metrics: ExecutionPlanMetricsSet::new(),
        })
    }

    fn key_exprs(schema: &SchemaRef, k: usize) -> Vec<Arc<dyn PhysicalExpr>> {
        (0..k)
            .map(|i| Arc::new(Column::new(schema.field(i).name(), i)) as Arc<dyn PhysicalExpr>)
            .collect()
    }
}

/// Left columns, then the right's non-key columns made nullable (a row may have no match).
fn output_schema(left: &Schema, right: &Schema, k: usize) -> SchemaRef {
    let mut fields: Vec<Field> = left.fields().iter().map(|f| f.as_ref().clone()).collect();
    fields.extend(
        right
            .fields()
            .iter()
            .skip(k)
            .map(|f| f.as_ref().clone().with_nullable(true)),
    );
    Arc::new(Schema::new(fields))
}

impl DisplayAs for PitJoinExec {
    fn fmt_as(&self, t: DisplayFormatType, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let keys: Vec<String> = self
            .left
            .schema()
            .fields()
            .iter()
            .take(self.options.key_count)
            .map(|f| f.name().clone())
            .collect();
        match t {
            DisplayFormatType::Default | DisplayFormatType::Verbose => write!(
                f,
                "PitJoinExec: on=[{}], ttl={}, created_tiebreak={}, filter_by_created={}",
                keys.join(", "),
                self.options.ttl,
                self.options.right_created.is_some(),
                self.options.filter_by_created
            ),
            DisplayFormatType::TreeRender => {
                write!(f, "on={}\nttl={}", keys.join(", "), self.options.ttl)
            }
        }
    }
}

impl ExecutionPlan for PitJoinExec {
    fn name(&self) -> &'static str {
        "PitJoinExec"
    }

    fn properties(&self) -> &Arc<PlanProperties> {
        &self.cache
    }

    fn required_input_distribution(&self) -> Vec<Distribution> {
        let k = self.options.key_count;
        vec![
            Distribution::KeyPartitioned(Self::key_exprs(&self.left.schema(), k)),
            Distribution::KeyPartitioned(Self::key_exprs(&self.right.schema(), k)),
        ]
    }

    fn maintains_input_order(&self) -> Vec<bool> {
        vec![true, false]
    }

    fn children(&self) -> Vec<&Arc<dyn ExecutionPlan>> {
        vec![&self.left, &self.right]
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
        options: ReplaceChildrenOptions,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        if children.len() != 2 {
            return internal_err!("PitJoinExec takes two children, got {}", children.len());
        }
        let right = children.pop().expect("two children");
        let left = children.pop().expect("two children");
        match options.children_properties {
            ChildrenPropertiesMode::Keep => Ok(Arc::new(PitJoinExec {
                left,
                right,
                options: self.options.clone(),
                schema: Arc::clone(&self.schema),
                cache: Arc::clone(&self.cache),
                metrics: ExecutionPlanMetricsSet::new(),
            })),
            ChildrenPropertiesMode::Recompute => Ok(Arc::new(PitJoinExec::try_new(
                left,
                right,
                self.options.clone(),
            )?)),
        }
    }

    #[allow(deprecated)]
    fn with_new_children(
        self: Arc<Self>,
        children: Vec<Arc<dyn ExecutionPlan>>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        self.replace_children(
            children,
            ReplaceChildrenOptions::new(ChildrenPropertiesMode::Recompute),
        )
    }

    fn execute(
        &self,
        partition: usize,
        context: Arc<TaskContext>,
    ) -> Result<SendableRecordBatchStream> {
        let left = self.left.execute(partition, Arc::clone(&context))?;
        let right = self.right.execute(partition, context)?;
        let key_fields = (0..self.options.key_count)
            .map(|i| SortField::new(self.left.schema().field(i).data_type().clone()))
            .collect();
        let state = JoinState {
            converter: RowConverter::new(key_fields)?,
            options: self.options.clone(),
            right: RightCursor {
                stream: right,
                batches: VecDeque::new(),
                base_id: 0,
                row: 0,
                done: false,
            },
            null_payload: null_payload(&self.right.schema(), self.options.key_count),
            candidate: None,
            pending: Vec::new(),
            schema: Arc::clone(&self.schema),
            metrics: BaselineMetrics::new(&self.metrics, partition),
        };
        let stream = futures::stream::unfold((state, left), |(mut state, mut left)| async move {
            loop {
                let batch = match left.next().await? {
                    Ok(b) => b,
                    Err(e) => return Some((Err(e), (state, left))),
                };
                if batch.num_rows() == 0 {
                    continue;
                }
                let timer = state.metrics.elapsed_compute().clone();
                let out = state.join_batch(&batch).await;
                drop(timer);
                if let Ok(b) = &out {
                    state.metrics.record_output(b.num_rows());
                }
                return Some((out, (state, left)));
            }
        });
        Ok(Box::pin(RecordBatchStreamAdapter::new(
            Arc::clone(&self.schema),
            stream,
        )))
    }

    fn metrics(&self) -> Option<MetricsSet> {
        Some(self.metrics.clone_inner())
    }
}

/// A one-row batch of nulls: the source `interleave` takes for left rows without a match.
fn null_payload(right: &Schema, k: usize) -> Vec<ArrayRef> {
    right
        .fields()
        .iter()
        .skip(k)
        .map(|f| new_null_array(f.data_type(), 1))
        .collect()
}

/// A right batch with its keys converted to comparable rows and its timestamps typed once.
struct RightBatch {
    batch: RecordBatch,
    keys: Rows,
    ts: Int64Array,
    created: Option<Int64Array>,
}

/// A forward cursor over the right input. Batches are numbered by a global id; the deque holds the
/// ones from the oldest still referenced up to the current one (the last).
struct RightCursor {
    stream: SendableRecordBatchStream,
    batches: VecDeque<RightBatch>,
    base_id: usize,
    row: usize,
    done: bool,
}

/// A reference to one right row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct RowRef {
    batch_id: usize,
    row: usize,
    ts: i64,
    created: Option<i64>,
}

struct Candidate {
    key: OwnedRow,
    best: Option<RowRef>,
}

struct JoinState {
    converter: RowConverter,
    options: PitJoinOptions,
    right: RightCursor,
    null_payload: Vec<ArrayRef>,
    candidate: Option<Candidate>,
    /// With `filter_by_created`: rows passed by the cursor for the current key that were not yet
    /// known at the previous entity time, newer than the candidate.
    pending: Vec<RowRef>,
    schema: SchemaRef,
    metrics: BaselineMetrics,
}

impl RightCursor {
    fn current(&self) -> Option<&RightBatch> {
        self.batches.back()
    }

    fn current_id(&self) -> usize {
        self.base_id + self.batches.len() - 1
    }

    /// Makes sure the cursor points at a row, loading batches as needed; false at the end.
    async fn ensure_row(
        &mut self,
        converter: &RowConverter,
        options: &PitJoinOptions,
    ) -> Result<bool> {
        let k = options.key_count;
        loop {
            if let Some(b) = self.current()
                && self.row < b.batch.num_rows()
            {
                return Ok(true);
            }
            if self.done {
                return Ok(false);
            }
            match self.stream.next().await {
                None => {
                    self.done = true;
                    return Ok(false);
                }
                Some(Err(e)) => return Err(e),
                Some(Ok(batch)) if batch.num_rows() == 0 => continue,
                Some(Ok(batch)) => {
                    let keys = converter.convert_columns(&batch.columns()[..k])?;
                    let ts = int64(&batch, options.right_ts)?;
                    let created = options
                        .right_created
                        .map(|c| int64(&batch, c))
                        .transpose()?;
                    self.batches.push_back(RightBatch {
                        batch,
                        keys,
                        ts,
                        created,
                    });
                    self.row = 0;
                }
            }
        }
    }

    /// Forgets batches older than `keep_from` (but always keeps the current one).
    fn release_before(&mut self, keep_from: usize) {
        while self.batches.len() > 1 && self.base_id < keep_from {
            self.batches.pop_front();
            self.base_id += 1;
        }
    }

    fn batch(&self, id: usize) -> &RightBatch {
        &self.batches[id - self.base_id]
    }
}

fn int64(batch: &RecordBatch, col: usize) -> Result<Int64Array> {
    batch
        .column(col)
        .as_primitive_opt::<Int64Type>()
        .cloned()
        .ok_or_else(|| {
            DataFusionError::Internal(format!(
                "PitJoinExec expects Int64 nanosecond timestamps, got {}",
                batch.column(col).data_type()
            ))
        })
}

impl JoinState {
    fn consider(&mut self, r: RowRef, as_of: i64) {
        let known =
            !self.options.filter_by_created || r.created.is_none_or(|c| pit::is_known_at(c, as_of));
        let cand = self
            .candidate
            .as_mut()
            .expect("a candidate exists while its key is scanned");
        if known {
            if cand
                .best
                .is_none_or(|b| pit::newer((r.ts, r.created), (b.ts, b.created)))
            {
                cand.best = Some(r);
            }
            let best = cand.best.expect("just set");
            self.pending
                .retain(|p| pit::newer((p.ts, p.created), (best.ts, best.created)));
        } else {
            self.pending.push(r);
        }
    }

    async fn join_batch(&mut self, left: &RecordBatch) -> Result<RecordBatch> {
        let k = self.options.key_count;
        let left_keys = self.converter.convert_columns(&left.columns()[..k])?;
        let left_ts = left
            .column(self.options.left_ts)
            .as_primitive_opt::<Int64Type>()
            .ok_or_else(|| {
                DataFusionError::Internal(
                    "PitJoinExec expects an Int64 nanosecond timestamp on the left".into(),
                )
            })?;
        let mut matches: Vec<Option<RowRef>> = Vec::with_capacity(left.num_rows());
        for i in 0..left.num_rows() {
            let key = left_keys.row(i);
            if left_ts.is_null(i) || (0..k).any(|c| left.column(c).is_null(i)) {
                matches.push(None);
                continue;
            }
            let t = left_ts.value(i);
            if self.candidate.as_ref().is_none_or(|c| c.key.row() != key) {
                self.candidate = Some(Candidate {
                    key: key.owned(),
                    best: None,
                });
                self.pending.clear();
            }
            // Rows passed earlier that are known by now.
            if !self.pending.is_empty() {
                let pending = std::mem::take(&mut self.pending);
                for p in pending {
                    self.consider(p, t);
                }
            }
            while self
                .right
                .ensure_row(&self.converter, &self.options)
                .await?
            {
                let rb = self.right.current().expect("ensure_row found a row");
                let row = self.right.row;
                match rb.keys.row(row).cmp(&key) {
                    std::cmp::Ordering::Less => self.right.row += 1,
                    std::cmp::Ordering::Greater => break,
                    std::cmp::Ordering::Equal => {
                        let ts = rb.ts.value(row);
                        if !pit::is_known_at(ts, t) {
                            break;
                        }
                        let created = rb
                            .created
                            .as_ref()
                            .and_then(|c| c.is_valid(row).then(|| c.value(row)));
                        let r = RowRef {
                            batch_id: self.right.current_id(),
                            row,
                            ts,
                            created,
                        };
                        self.right.row += 1;
                        self.consider(r, t);
                    }
                }
            }
            let best = self.candidate.as_ref().and_then(|c| c.best);
            matches.push(best.filter(|b| pit::within_ttl(b.ts, t, self.options.ttl)));
        }
        let out = self.materialize(left, &matches)?;
        // Keep only what the candidate and pending rows still reference.
        let mut keep = self
            .right
            .current()
            .map_or(self.right.base_id, |_| self.right.current_id());
        if let Some(b) = self.candidate.as_ref().and_then(|c| c.best) {
            keep = keep.min(b.batch_id);
        }
        for p in &self.pending {
            keep = keep.min(p.batch_id);
        }
        self.right.release_before(keep);
        Ok(out)
    }

    fn materialize(&self, left: &RecordBatch, matches: &[Option<RowRef>]) -> Result<RecordBatch> {
        let k = self.options.key_count;
        let base = self.right.base_id;
        let n_batches = self.right.batches.len();
        let indices: Vec<(usize, usize)> = matches
            .iter()
            .map(|m| match m {
                Some(r) => (r.batch_id - base + 1, r.row),
                None => (0, 0),
            })
            .collect();
        let mut columns: Vec<ArrayRef> = left.columns().to_vec();
        for (j, null) in self.null_payload.iter().enumerate() {
            let mut sources: Vec<&dyn Array> = Vec::with_capacity(n_batches + 1);
            sources.push(null.as_ref());
            for id in base..base + n_batches {
                sources.push(self.right.batch(id).batch.column(k + j).as_ref());
            }
            columns.push(interleave(&sources, &indices)?);
        }
        Ok(RecordBatch::try_new(Arc::clone(&self.schema), columns)?)
    }
}
