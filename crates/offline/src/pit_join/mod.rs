//! `PitJoinExec`: a point-in-time (ASOF) join operator for DataFusion 55, which has none.
//!
//! # Semantics
//! For every left (entity) row `(k, t)` it emits exactly one row, in the left's order: the left
//! row's columns, then the payload of the right (feature) row with key `k` that is the latest by
//! `(ts, created)` among rows eligible as of `t`, or nulls when there is none or when it is older
//! than the TTL allows. The rule itself is [`asof_core::pit`]; this operator only finds the
//! candidate efficiently.
//!
//! # Algorithm
//! The entity side is small next to feature history (it is already one in-memory table), so the
//! operator builds on it, like a hash join in `CollectLeft` mode, and never sorts the feature side:
//!
//! 1. **Build.** Group the entity rows by key and order each group by time (`EntityIndex`). Each
//!    entity row is a *slot*.
//! 2. **Probe**, one task per feature partition, on all cores. A feature row is eligible for every
//!    slot of its key at or after the time it became known ([`asof_core::pit::known_from`]), so it is offered
//!    only to the *first* such slot (one hash lookup, one binary search), which keeps the latest
//!    row offered. Only the payload of rows that still hold a slot is kept. Each task has its own
//!    slot array, so for a huge entity table fewer tasks each read several partitions.
//! 3. **Finish.** Per key, a running maximum over its slots in time order gives each slot the latest
//!    row eligible for it; partitions merge in the same pass. The TTL check of that row decides
//!    between it and nulls: when the latest eligible row is too old, every other one is too.
//!
//! Work is O(right * log(rows per key) + left) and memory grows with the entity table (slots and
//! their held rows), not with the feature history, which streams through once.
//!
//! # Contract with its inputs
//! * The first `key_count` columns of each input are the keys, with equal types on both sides.
//! * Timestamps are `Int64` nanoseconds (UTC). Rows with a null key or timestamp never match.

use std::fmt;
use std::sync::Arc;

use asof_core::Ttl;
use datafusion::arrow::array::AsArray;
use datafusion::arrow::array::{ArrayRef, RecordBatch, new_null_array};
use datafusion::arrow::compute::{concat_batches, interleave, nullif};
use datafusion::arrow::datatypes::{Field, Schema, SchemaRef};
use datafusion::common::runtime::JoinSet;
use datafusion::common::tree_node::TreeNodeRecursion;
use datafusion::common::{DataFusionError, Result, internal_err};
use datafusion::execution::TaskContext;
use datafusion::execution::memory_pool::{MemoryConsumer, MemoryReservation};
use datafusion::physical_plan::metrics::{
    BaselineMetrics, Count, ExecutionPlanMetricsSet, MetricBuilder, MetricsSet,
};
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::{
    ChildrenPropertiesMode, DisplayAs, DisplayFormatType, Distribution, ExecutionPlan,
    PhysicalExpr, PlanProperties, ReplaceChildrenOptions, SendableRecordBatchStream,
};
use futures::{StreamExt, TryStreamExt};

mod candidates;
pub(crate) mod entity_index;

use candidates::{Candidates, Held};
use entity_index::EntityIndex;

use crate::keyed_inputs::{Inputs, execute_inputs, keyed_left, output_properties};

/// Memory the probe tasks' slot arrays may take together before tasks start sharing partitions
/// (one task always runs).
const PROBE_SLOT_BUDGET: usize = 1 << 30;

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
    /// Index of the right's delete flag (Boolean), if it has one: a winning delete event answers
    /// with null values (`asof_core::pit::has_value`), its timestamps kept.
    pub right_deleted: Option<usize>,
    pub ttl: Ttl,
    /// Also require `created <= t`: only rows known at the entity's time.
    pub filter_by_created: bool,
}

/// The point-in-time join. See the module docs for its algorithm and contract.
#[derive(Debug)]
pub struct PitJoinExec {
    left: Arc<dyn ExecutionPlan>,
    right: Arc<dyn ExecutionPlan>,
    options: PitJoinOptions,
    inputs: Inputs,
    schema: SchemaRef,
    cache: Arc<PlanProperties>,
    metrics: ExecutionPlanMetricsSet,
}

impl PitJoinExec {
    /// A join of `left` (entity rows, any partitioning: it is coalesced) with `right` (feature
    /// rows; each of its partitions is probed by its own task).
    pub fn try_new(
        left: Arc<dyn ExecutionPlan>,
        right: Arc<dyn ExecutionPlan>,
        options: PitJoinOptions,
    ) -> Result<Self> {
        Self::with_inputs(left, right, options, Inputs::Collected)
    }

    /// A join that reads its inputs as `inputs` says: [`Inputs::KeyPartitioned`] inputs must both
    /// be hash-partitioned by the keys into as many partitions.
    pub fn with_inputs(
        left: Arc<dyn ExecutionPlan>,
        right: Arc<dyn ExecutionPlan>,
        options: PitJoinOptions,
        inputs: Inputs,
    ) -> Result<Self> {
        let k = options.key_count;
        let left = keyed_left("PitJoinExec", left, &right, k, inputs)?;
        let schema = output_schema(&left.schema(), &right.schema(), k);
        let cache = output_properties(&schema, &left);
        Ok(PitJoinExec {
            left,
            right,
            options,
            inputs,
            schema,
            cache,
            metrics: ExecutionPlanMetricsSet::new(),
        })
    }

    pub fn options(&self) -> &PitJoinOptions {
        &self.options
    }

    pub fn inputs(&self) -> Inputs {
        self.inputs
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

/// The right's non-key columns, as the probe keeps them.
fn payload_schema(right: &Schema, k: usize) -> SchemaRef {
    Arc::new(Schema::new(
        right.fields().iter().skip(k).cloned().collect::<Vec<_>>(),
    ))
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
                "PitJoinExec: on=[{}], ttl={}, created_tiebreak={}, filter_by_created={}{}",
                keys.join(", "),
                self.options.ttl,
                self.options.right_created.is_some(),
                self.options.filter_by_created,
                match self.inputs {
                    Inputs::Collected => "",
                    Inputs::KeyPartitioned => ", inputs=key_partitioned",
                }
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
        self.inputs.required(
            self.options.key_count,
            &self.left.schema(),
            &self.right.schema(),
        )
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
                inputs: self.inputs,
                schema: Arc::clone(&self.schema),
                cache: Arc::clone(&self.cache),
                metrics: ExecutionPlanMetricsSet::new(),
            })),
            ChildrenPropertiesMode::Recompute => Ok(Arc::new(PitJoinExec::with_inputs(
                left,
                right,
                self.options.clone(),
                self.inputs,
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
        let (left, rights) = execute_inputs(
            "PitJoinExec",
            partition,
            &self.left,
            &self.right,
            &context,
            self.inputs,
        )?;
        let reservation = MemoryConsumer::new("PitJoinExec").register(context.memory_pool());
        let run = JoinRun {
            options: self.options.clone(),
            left_schema: self.left.schema(),
            payload_schema: payload_schema(&self.right.schema(), self.options.key_count),
            schema: Arc::clone(&self.schema),
            batch_size: context.session_config().batch_size().max(1),
            baseline: BaselineMetrics::new(&self.metrics, partition),
            rows_in: MetricBuilder::new(&self.metrics).counter("feature_rows", partition),
            rows_used: MetricBuilder::new(&self.metrics)
                .counter("feature_rows_in_reach", partition),
        };
        // The join runs on the first poll; its output is then gathered one batch at a time, as
        // the consumer asks, so a training set is never held twice (joined and written).
        let batches = futures::stream::once(run.run(left, rights, reservation))
            .map_ok(futures::stream::iter)
            .try_flatten();
        Ok(Box::pin(RecordBatchStreamAdapter::new(
            Arc::clone(&self.schema),
            batches,
        )))
    }

    fn metrics(&self) -> Option<MetricsSet> {
        Some(self.metrics.clone_inner())
    }
}

/// Everything one execution needs, moved into its future.
struct JoinRun {
    options: PitJoinOptions,
    left_schema: SchemaRef,
    payload_schema: SchemaRef,
    schema: SchemaRef,
    batch_size: usize,
    baseline: BaselineMetrics,
    rows_in: Count,
    rows_used: Count,
}

impl JoinRun {
    async fn run(
        self,
        left: SendableRecordBatchStream,
        rights: Vec<SendableRecordBatchStream>,
        reservation: MemoryReservation,
    ) -> Result<Gather> {
        let left_batches: Vec<RecordBatch> = left.try_collect().await?;
        let entities = concat_batches(&self.left_schema, &left_batches)?;
        drop(left_batches);
        let index = {
            let _timer = self.baseline.elapsed_compute().timer();
            Arc::new(EntityIndex::build(
                &entities,
                self.options.key_count,
                self.options.left_ts,
            )?)
        };
        reservation.try_grow(entities.get_array_memory_size() + index.memory_size())?;

        // Each probe task holds a slot array as large as the entity table: bound their number so
        // that a huge entity table on a many-core machine reads several partitions per task
        // instead of multiplying that memory by the core count.
        let tasks = probe_tasks(rights.len(), index.slot_count(), PROBE_SLOT_BUDGET);
        let mut groups: Vec<Vec<SendableRecordBatchStream>> =
            (0..tasks).map(|_| Vec::new()).collect();
        for (i, stream) in rights.into_iter().enumerate() {
            groups[i % tasks].push(stream);
        }
        let mut probes = JoinSet::new();
        for (p, streams) in groups.into_iter().enumerate() {
            let index = Arc::clone(&index);
            let options = self.options.clone();
            let payload_schema = Arc::clone(&self.payload_schema);
            let reservation = reservation.new_empty();
            let compute = self.baseline.elapsed_compute().clone();
            probes.spawn(async move {
                let part = probe(
                    streams,
                    index,
                    options,
                    payload_schema,
                    reservation,
                    compute,
                );
                (p, part.await)
            });
        }
        // In task order, so that ties on (ts, created) across tasks resolve the same way on every
        // run. The tasks' reservations stay alive until the gather is done.
        let mut parts: Vec<Option<Candidates>> = Vec::new();
        parts.resize_with(probes.len(), || None);
        let mut reservations = Vec::new();
        while let Some(joined) = probes.join_next().await {
            let (p, result) = joined.map_err(|e| DataFusionError::ExecutionJoin(Box::new(e)))?;
            let (part, reservation) = result?;
            reservations.push(reservation);
            self.rows_in.add(part.rows_in);
            self.rows_used.add(part.rows_used);
            parts[p] = Some(part);
        }
        let parts: Vec<Candidates> = parts.into_iter().flatten().collect();
        let matched = {
            let _timer = self.baseline.elapsed_compute().timer();
            self.finish(&index, &parts, entities.num_rows())
        };
        drop(index);
        reservation.try_grow(std::mem::size_of_val(matched.as_slice()))?;
        // What the gather holds (entities, matches, held payload) stays reserved until its last
        // batch is out.
        reservations.push(reservation);
        let k = self.options.key_count;
        let nulled = match self.options.right_deleted {
            Some(d) => {
                let kept = [
                    Some(self.options.right_ts),
                    self.options.right_created,
                    Some(d),
                ];
                let values = (k..k + self.payload_schema.fields().len())
                    .filter(|i| !kept.contains(&Some(*i)))
                    .map(|i| i - k)
                    .collect();
                Some((d - k, values))
            }
            None => None,
        };
        Ok(Gather {
            entities,
            matched,
            parts,
            nulled,
            nulls: self
                .payload_schema
                .fields()
                .iter()
                .map(|f| new_null_array(f.data_type(), 1))
                .collect(),
            schema: Arc::clone(&self.schema),
            batch_size: self.batch_size,
            next_row: 0,
            baseline: self.baseline.clone(),
            _reservations: reservations,
        })
    }

    /// Gives each slot the latest row among its own and its key's earlier slots (across all
    /// partitions) and applies the TTL: per entity row, the (gather source, row) of its match,
    /// where source 0 is a row of nulls and the parts' payload batches follow in order.
    fn finish(
        &self,
        index: &EntityIndex,
        parts: &[Candidates],
        rows: usize,
    ) -> Vec<(usize, usize)> {
        let mut first_source = Vec::with_capacity(parts.len());
        let mut next = 1;
        for p in parts {
            first_source.push(next);
            next += p.payload().len();
        }
        let mut matched: Vec<(usize, usize)> = vec![(0, 0); rows];
        for group in index.groups() {
            let mut running: Option<(Held, usize)> = None;
            for slot in group {
                for (pi, part) in parts.iter().enumerate() {
                    if let Some(h) = part.best[slot]
                        && running.is_none_or(|(r, _)| h.newer_than(&r))
                    {
                        running = Some((h, pi));
                    }
                }
                if let Some((h, pi)) = running
                    && asof_core::pit::within_ttl(h.ts, index.times[slot], self.options.ttl)
                {
                    let (b, row) = h.location();
                    matched[index.rows[slot] as usize] = (first_source[pi] + b, row);
                }
            }
        }
        matched
    }
}

/// The join's answer, gathered into output batches in entity row order one at a time.
struct Gather {
    entities: RecordBatch,
    matched: Vec<(usize, usize)>,
    parts: Vec<Candidates>,
    /// With delete events: the payload index of the delete flag and of the value columns a
    /// winning delete nulls.
    nulled: Option<(usize, Vec<usize>)>,
    /// One-row null arrays, one per payload column: gather source 0.
    nulls: Vec<ArrayRef>,
    schema: SchemaRef,
    batch_size: usize,
    next_row: usize,
    baseline: BaselineMetrics,
    _reservations: Vec<MemoryReservation>,
}

impl Gather {
    fn batch(&self, start: usize, end: usize) -> Result<RecordBatch> {
        let mut columns: Vec<ArrayRef> = self.entities.slice(start, end - start).columns().to_vec();
        for (j, null) in self.nulls.iter().enumerate() {
            let mut sources: Vec<&dyn datafusion::arrow::array::Array> = vec![null.as_ref()];
            for p in &self.parts {
                sources.extend(p.payload().iter().map(|b| b.column(j).as_ref()));
            }
            columns.push(interleave(&sources, &self.matched[start..end])?);
        }
        if let Some((flag, values)) = &self.nulled {
            let base = self.entities.num_columns();
            // Unmatched rows have a null flag: they are null already.
            let deleted = columns[base + flag].as_boolean().clone();
            if deleted.true_count() > 0 {
                for &v in values {
                    columns[base + v] = nullif(&columns[base + v], &deleted)?;
                }
            }
        }
        Ok(RecordBatch::try_new(Arc::clone(&self.schema), columns)?)
    }
}

impl Iterator for Gather {
    type Item = Result<RecordBatch>;

    fn next(&mut self) -> Option<Self::Item> {
        let rows = self.entities.num_rows();
        if self.next_row >= rows {
            return None;
        }
        let start = self.next_row;
        let end = (start + self.batch_size).min(rows);
        self.next_row = end;
        let batch = {
            let _timer = self.baseline.elapsed_compute().timer();
            self.batch(start, end)
        };
        if let Ok(b) = &batch {
            self.baseline.record_output(b.num_rows());
        }
        Some(batch)
    }
}

/// How many probe tasks read `partitions` feature partitions: one per partition, unless their slot
/// arrays (`slots` each) would take more than `budget` bytes together; at least one.
fn probe_tasks(partitions: usize, slots: usize, budget: usize) -> usize {
    let per_task = slots.max(1) * Candidates::BYTES_PER_SLOT;
    partitions.min((budget / per_task).max(1))
}

/// Streams feature partitions, one after the other, through one slot array. The reservation comes
/// back with the result: the held rows stay in memory until the join has gathered them.
async fn probe(
    streams: Vec<SendableRecordBatchStream>,
    index: Arc<EntityIndex>,
    options: PitJoinOptions,
    payload_schema: SchemaRef,
    reservation: MemoryReservation,
    compute: datafusion::physical_plan::metrics::Time,
) -> Result<(Candidates, MemoryReservation)> {
    let mut part = Candidates::new(index.slot_count(), payload_schema);
    reservation.try_resize(part.memory_size())?;
    for mut stream in streams {
        while let Some(batch) = stream.next().await {
            let batch = batch?;
            let _timer = compute.timer();
            part.add_batch(&batch, &index, &options)?;
            reservation.try_resize(part.memory_size())?;
        }
    }
    Ok((part, reservation))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn probe_tasks_stay_within_the_slot_budget() {
        let slot = Candidates::BYTES_PER_SLOT;
        assert_eq!(
            probe_tasks(2, 1_000, 1 << 30),
            2,
            "small tables: a task per partition"
        );
        assert_eq!(probe_tasks(32, 1_000, 4 * 1_000 * slot), 4);
        assert_eq!(probe_tasks(32, 10_000, 1), 1, "always one task");
        assert_eq!(probe_tasks(0, 0, 1 << 30), 0, "no partitions, no tasks");
    }
}
