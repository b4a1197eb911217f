//! `WindowAggExec`: windowed aggregations of a view's events for every entity row, point in time.
//!
//! # Semantics
//! For every left (entity) row `(k, t)` it emits exactly one row, in the left's order: the left
//! row's columns, the time of the newest event of `k` in the longest window (null when none), then
//! each aggregate over the events of `k` with `t - window < ts <= t`. The rule, including nulls,
//! types and tie-breaks, is [`asof_core::window`]; this operator only feeds it.
//!
//! # Algorithm
//! It shares the PIT join's shape (see [`crate::pit_join`]): the entity rows are indexed by key and
//! time, and the event side streams through once, one task per partition, never sorted as a whole
//! and never joined row by row against the entity rows.
//!
//! 1. **Build.** Group entity rows by key, each group ordered by time (slots).
//! 2. **Probe.** An event of key `k` at `ts` is kept only if some slot of `k` sees it: the first
//!    slot at or after `ts` is within the longest window of it. Only the key group, times (and
//!    created times and push ordinals, when the events have them) and the requested aggregations'
//!    columns of kept events are held, in input order.
//! 3. **Slide.** Kept events are bucketed by key (a counting sort that keeps input order), each
//!    key's run ordered by `(ts, created, ordinal, input order)`, and
//!    [`asof_core::window::slide`] walks each run once against the key's slots: running sums,
//!    monotonic queues for `min`/`max`. Runs are sorted, and aggregates slid, on all cores.
//!
//! Work is O(events + entity rows + kept events * log(run length)); memory grows with the entity
//! table and the events in reach, not with the whole history.

use std::fmt;
use std::sync::Arc;

use asof_core::DType;
use asof_core::window::{self, Function, Output};
use datafusion::arrow::array::{
    Array, ArrayRef, AsArray, Float64Array, Int64Array, RecordBatch, UInt32Array,
};
use datafusion::arrow::compute::{concat, concat_batches, take};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef, UInt32Type, UInt64Type};
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

use crate::keyed_inputs::{Inputs, execute_inputs, keyed_left, nanos, output_properties};
use crate::pit_join::entity_index::EntityIndex;

mod values;

use values::Column;

/// The name of the output column holding the newest event time in the longest window.
pub const NEWEST_EVENT: &str = crate::source::FEATURE_TS;

/// One aggregate the operator computes.
#[derive(Debug, Clone)]
pub struct WindowAggregate {
    /// The output column's name.
    pub name: String,
    pub function: Function,
    /// In nanoseconds, positive.
    pub window: i64,
    /// The right's column it aggregates (`None`: `count` of events).
    pub column: Option<usize>,
    /// That column's declared type (decides integer or float sums).
    pub column_type: Option<DType>,
    /// The output column's type.
    pub output: DataType,
}

/// How the operator reads its inputs.
#[derive(Debug, Clone)]
pub struct WindowAggOptions {
    /// The first `key_count` columns of both inputs are the keys.
    pub key_count: usize,
    /// Index of the left's timestamp column (Int64 ns).
    pub left_ts: usize,
    /// Index of the right's event time (Int64 ns).
    pub right_ts: usize,
    /// Index of the right's created time (Int64 ns), which orders events with equal times.
    pub right_created: Option<usize>,
    /// Index of the right's delete flag: a delete event is not an event of any window.
    pub right_deleted: Option<usize>,
    /// Index of the right's event ordinal (UInt32): equal `(ts, created)` order by it, then by
    /// input order.
    pub right_ordinal: Option<usize>,
    /// Index of the right's input order ([`crate::input_order`], UInt64), when the events were
    /// shuffled on their way here: it stands in for the arrival order, which a shuffle loses.
    pub right_input_order: Option<usize>,
    /// The view's longest window: the newest-event output looks this far back, and events older
    /// than this before every entity row are dropped. At least each aggregate's window.
    pub horizon: i64,
    pub aggregates: Vec<WindowAggregate>,
}

impl WindowAggOptions {
    fn longest_window(&self) -> i64 {
        self.aggregates
            .iter()
            .map(|a| a.window)
            .max()
            .unwrap_or(0)
            .max(self.horizon)
    }

    /// The distinct right columns the aggregates read, in first-use order.
    fn inputs(&self) -> Vec<usize> {
        let mut out: Vec<usize> = Vec::new();
        for c in self.aggregates.iter().filter_map(|a| a.column) {
            if !out.contains(&c) {
                out.push(c);
            }
        }
        out
    }
}

/// The windowed aggregation operator. See the module docs for its algorithm.
#[derive(Debug)]
pub struct WindowAggExec {
    left: Arc<dyn ExecutionPlan>,
    right: Arc<dyn ExecutionPlan>,
    options: WindowAggOptions,
    inputs: Inputs,
    schema: SchemaRef,
    cache: Arc<PlanProperties>,
    metrics: ExecutionPlanMetricsSet,
}

impl WindowAggExec {
    pub fn try_new(
        left: Arc<dyn ExecutionPlan>,
        right: Arc<dyn ExecutionPlan>,
        options: WindowAggOptions,
    ) -> Result<Self> {
        Self::with_inputs(left, right, options, Inputs::Collected)
    }

    /// An operator that reads its inputs as `inputs` says (see [`Inputs`]).
    pub fn with_inputs(
        left: Arc<dyn ExecutionPlan>,
        right: Arc<dyn ExecutionPlan>,
        options: WindowAggOptions,
        inputs: Inputs,
    ) -> Result<Self> {
        let left = keyed_left("WindowAggExec", left, &right, options.key_count, inputs)?;
        if options.horizon <= 0 || options.aggregates.iter().any(|a| a.window <= 0) {
            return internal_err!("WindowAggExec windows must be positive");
        }
        let mut fields: Vec<Field> = left
            .schema()
            .fields()
            .iter()
            .map(|f| f.as_ref().clone())
            .collect();
        fields.push(Field::new(NEWEST_EVENT, DataType::Int64, true));
        for a in &options.aggregates {
            fields.push(Field::new(&a.name, a.output.clone(), true));
        }
        let schema = Arc::new(Schema::new(fields));
        let cache = output_properties(&schema, &left);
        Ok(WindowAggExec {
            left,
            right,
            options,
            inputs,
            schema,
            cache,
            metrics: ExecutionPlanMetricsSet::new(),
        })
    }

    pub fn options(&self) -> &WindowAggOptions {
        &self.options
    }

    pub fn inputs(&self) -> Inputs {
        self.inputs
    }
}

impl DisplayAs for WindowAggExec {
    fn fmt_as(&self, _t: DisplayFormatType, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let aggs: Vec<String> = self
            .options
            .aggregates
            .iter()
            .map(|a| {
                format!(
                    "{}={}({}s)",
                    a.name,
                    a.function.name(),
                    a.window / 1_000_000_000
                )
            })
            .collect();
        write!(f, "WindowAggExec: aggregates=[{}]", aggs.join(", "))?;
        if self.inputs == Inputs::KeyPartitioned {
            write!(f, ", inputs=key_partitioned")?;
        }
        Ok(())
    }
}

impl ExecutionPlan for WindowAggExec {
    fn name(&self) -> &'static str {
        "WindowAggExec"
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

    /// `last` breaks ties on `(ts, created)` by input order, which is partition order then row
    /// order: a round-robin repartition of the events would shuffle it.
    fn benefits_from_input_partitioning(&self) -> Vec<bool> {
        vec![false, false]
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
        _options: ReplaceChildrenOptions,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        if children.len() != 2 {
            return internal_err!("WindowAggExec takes two children, got {}", children.len());
        }
        let right = children.pop().expect("two children");
        let left = children.pop().expect("two children");
        Ok(Arc::new(WindowAggExec::with_inputs(
            left,
            right,
            self.options.clone(),
            self.inputs,
        )?))
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
            "WindowAggExec",
            partition,
            &self.left,
            &self.right,
            &context,
            self.inputs,
        )?;
        let reservation = MemoryConsumer::new("WindowAggExec").register(context.memory_pool());
        let run = AggRun {
            options: self.options.clone(),
            left_schema: self.left.schema(),
            schema: Arc::clone(&self.schema),
            batch_size: context.session_config().batch_size().max(1),
            baseline: BaselineMetrics::new(&self.metrics, partition),
            rows_in: MetricBuilder::new(&self.metrics).counter("events", partition),
            rows_kept: MetricBuilder::new(&self.metrics).counter("events_in_reach", partition),
        };
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
struct AggRun {
    options: WindowAggOptions,
    left_schema: SchemaRef,
    schema: SchemaRef,
    batch_size: usize,
    baseline: BaselineMetrics,
    rows_in: Count,
    rows_kept: Count,
}

/// One probe task's kept events: parallel vectors, and the aggregated columns of the kept rows.
/// Their order is the partition's input order.
struct Kept {
    group: Vec<u32>,
    ts: Vec<i64>,
    /// Only when the events have a created time (it orders events of equal `ts`).
    created: Option<Vec<i64>>,
    /// Only when the events carry push ordinals (they order events of equal `(ts, created)`).
    ordinal: Option<Vec<u32>>,
    /// Only when the events carry their input order (after a shuffle).
    input_order: Option<Vec<u64>>,
    /// Per input column, its kept rows of each batch.
    columns: Vec<Vec<ArrayRef>>,
    rows_in: usize,
}

impl Kept {
    fn new(options: &WindowAggOptions, inputs: usize) -> Self {
        Kept {
            group: Vec::new(),
            ts: Vec::new(),
            created: options.right_created.map(|_| Vec::new()),
            ordinal: options.right_ordinal.map(|_| Vec::new()),
            input_order: options.right_input_order.map(|_| Vec::new()),
            columns: vec![Vec::new(); inputs],
            rows_in: 0,
        }
    }

    fn memory_size(&self) -> usize {
        self.group.capacity() * 4
            + self.ts.capacity() * 8
            + self.created.as_ref().map_or(0, |c| c.capacity() * 8)
            + self.ordinal.as_ref().map_or(0, |o| o.capacity() * 4)
            + self.input_order.as_ref().map_or(0, |o| o.capacity() * 8)
            + self
                .columns
                .iter()
                .flatten()
                .map(|a| a.get_array_memory_size())
                .sum::<usize>()
    }
}

impl AggRun {
    async fn run(
        self,
        left: SendableRecordBatchStream,
        rights: Vec<SendableRecordBatchStream>,
        reservation: MemoryReservation,
    ) -> Result<Vec<Result<RecordBatch>>> {
        let left_batches: Vec<RecordBatch> = left.try_collect().await?;
        let entities = concat_batches(&self.left_schema, &left_batches)?;
        drop(left_batches);
        let index = Arc::new(EntityIndex::build(
            &entities,
            self.options.key_count,
            self.options.left_ts,
        )?);
        reservation.try_grow(entities.get_array_memory_size() + index.memory_size())?;

        let inputs = Arc::new(self.options.inputs());
        let mut probes = JoinSet::new();
        for (p, stream) in rights.into_iter().enumerate() {
            let index = Arc::clone(&index);
            let options = self.options.clone();
            let inputs = Arc::clone(&inputs);
            let reservation = reservation.new_empty();
            let compute = self.baseline.elapsed_compute().clone();
            probes.spawn(async move {
                let kept = probe(stream, &index, &options, &inputs, &reservation, compute).await;
                (p, kept.map(|k| (k, reservation)))
            });
        }
        let mut parts: Vec<Option<Kept>> = Vec::new();
        parts.resize_with(probes.len(), || None);
        let mut reservations = Vec::new();
        while let Some(joined) = probes.join_next().await {
            let (p, result) = joined.map_err(|e| DataFusionError::ExecutionJoin(Box::new(e)))?;
            let (kept, reservation) = result?;
            self.rows_in.add(kept.rows_in);
            self.rows_kept.add(kept.ts.len());
            reservations.push(reservation);
            parts[p] = Some(kept);
        }
        let parts: Vec<Kept> = parts.into_iter().flatten().collect();
        let _timer = self.baseline.elapsed_compute().timer();
        let columns = self.slide_all(&index, parts, &inputs, entities.num_rows(), &reservation)?;
        drop(index);
        let mut all: Vec<ArrayRef> = entities.columns().to_vec();
        all.extend(columns);
        let out = RecordBatch::try_new(Arc::clone(&self.schema), all)?;
        drop(reservations);
        let n = out.num_rows();
        let batches: Vec<Result<RecordBatch>> = (0..n)
            .step_by(self.batch_size)
            .map(|start| Ok(out.slice(start, self.batch_size.min(n - start))))
            .collect();
        self.baseline.record_output(n);
        Ok(batches)
    }

    /// Orders the kept events by key, then by `(ts, created, ordinal, input order)` within each
    /// key, and slides every aggregate over each key's run: the output columns after the entity
    /// columns. Sorting and sliding are spread over the machine's cores.
    fn slide_all(
        &self,
        index: &EntityIndex,
        mut parts: Vec<Kept>,
        inputs: &[usize],
        rows: usize,
        reservation: &MemoryReservation,
    ) -> Result<Vec<ArrayRef>> {
        let total: usize = parts.iter().map(|p| p.ts.len()).sum();
        let groups = index.starts.len() - 1;
        // Counting sort by key group; within a group, events stay in input order (the parts in
        // partition order, each in row order), so their index breaks the last ties.
        let mut estarts = vec![0usize; groups + 1];
        for p in &parts {
            for &g in &p.group {
                estarts[g as usize + 1] += 1;
            }
        }
        for g in 0..groups {
            estarts[g + 1] += estarts[g];
        }
        let mut fill = estarts.clone();
        let mut events: Vec<(i64, u32)> = vec![(0, 0); total];
        let mut base = 0u32;
        for p in &mut parts {
            for (i, (&g, &t)) in p.group.iter().zip(&p.ts).enumerate() {
                events[fill[g as usize]] = (t, base + i as u32);
                fill[g as usize] += 1;
            }
            base += p.ts.len() as u32;
            (p.group, p.ts) = (Vec::new(), Vec::new());
        }
        drop(fill);
        let created: Option<Vec<i64>> = parts
            .iter_mut()
            .map(|p| p.created.take())
            .collect::<Option<Vec<_>>>()
            .map(|c| c.concat());
        let ordinal: Option<Vec<u32>> = parts
            .iter_mut()
            .map(|p| p.ordinal.take())
            .collect::<Option<Vec<_>>>()
            .map(|o| o.concat());
        let input_order: Option<Vec<u64>> = parts
            .iter_mut()
            .map(|p| p.input_order.take())
            .collect::<Option<Vec<_>>>()
            .map(|o| o.concat());
        sort_runs(
            &mut events,
            &estarts,
            created.as_deref(),
            ordinal.as_deref(),
            input_order.as_deref(),
        );
        drop((created, ordinal, input_order));
        let ts: Vec<i64> = events.iter().map(|e| e.0).collect();
        let order = UInt32Array::from_iter_values(events.iter().map(|e| e.1));
        drop(events);
        // Column by column: one column's pieces are freed before the next is gathered, and the
        // gathers run on their own threads.
        let pieces: Vec<Vec<ArrayRef>> = (0..inputs.len())
            .map(|j| {
                parts
                    .iter_mut()
                    .flat_map(|p| std::mem::take(&mut p.columns[j]))
                    .collect()
            })
            .collect();
        let gather = |input: usize, pieces: Vec<ArrayRef>| -> Result<Column> {
            let all = if pieces.is_empty() {
                datafusion::arrow::array::new_empty_array(&self.input_type(input))
            } else {
                concat(&pieces.iter().map(AsRef::as_ref).collect::<Vec<_>>())?
            };
            drop(pieces);
            let ordered = self.options.aggregates.iter().any(|a| {
                a.column == Some(input) && matches!(a.function, Function::Min | Function::Max)
            });
            Column::new(take(&all, &order, None)?, ordered)
        };
        let columns: Vec<Column> = std::thread::scope(|scope| {
            let gathers: Vec<_> = inputs
                .iter()
                .zip(pieces)
                .map(|(&input, pieces)| scope.spawn(move || gather(input, pieces)))
                .collect();
            gathers
                .into_iter()
                .map(|g| g.join().expect("a gather thread panicked"))
                .collect::<Result<_>>()
        })?;
        drop((parts, order));
        reservation.try_grow(
            ts.len() * 8
                + columns
                    .iter()
                    .map(|c| c.array().get_array_memory_size())
                    .sum::<usize>(),
        )?;

        let runs = Runs {
            index,
            slots: index.groups().collect(),
            estarts: &estarts,
            ts: &ts,
        };
        // Output 0 is the newest event in the longest window; output k + 1 is aggregate k.
        let outputs = self.options.aggregates.len() + 1;
        let threads = threads().min(outputs);
        let computed: Vec<Vec<(usize, Result<ArrayRef>)>> = std::thread::scope(|scope| {
            let workers: Vec<_> = (0..threads)
                .map(|w| {
                    let (runs, columns) = (&runs, &columns);
                    scope.spawn(move || {
                        (w..outputs)
                            .step_by(threads)
                            .map(|k| {
                                let out = match k {
                                    0 => Ok(runs.newest(self.options.longest_window(), rows)),
                                    _ => {
                                        let a = &self.options.aggregates[k - 1];
                                        let column = a
                                            .column
                                            .and_then(|c| inputs.iter().position(|&i| i == c))
                                            .map(|j| &columns[j]);
                                        runs.aggregate(a, column, rows)
                                    }
                                };
                                (k, out)
                            })
                            .collect()
                    })
                })
                .collect();
            workers
                .into_iter()
                .map(|w| w.join().expect("an aggregation thread panicked"))
                .collect()
        });
        let mut out: Vec<Option<ArrayRef>> = vec![None; outputs];
        for (k, array) in computed.into_iter().flatten() {
            out[k] = Some(array?);
        }
        Ok(out
            .into_iter()
            .map(|a| a.expect("every output computed"))
            .collect())
    }

    fn input_type(&self, column: usize) -> DataType {
        let a = self
            .options
            .aggregates
            .iter()
            .find(|a| a.column == Some(column))
            .expect("inputs come from aggregates");
        crate::types::arrow_type(a.column_type.as_ref().unwrap_or(&DType::Int64))
    }
}

/// Threads the sort and the slide use: the machine's cores.
fn threads() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// Sorts each key's run of `events` (`(ts, index)`; run `g` is `estarts[g]..estarts[g + 1]`) by
/// `(ts, created, ordinal, input order, index)`, the runs split over threads at key boundaries.
/// The index is arrival order, so the unstable sort orders ties exactly as a stable one would;
/// after a shuffle the carried input order decides first, as arrival did before it.
fn sort_runs(
    events: &mut [(i64, u32)],
    estarts: &[usize],
    created: Option<&[i64]>,
    ordinal: Option<&[u32]>,
    input_order: Option<&[u64]>,
) {
    let by = |a: &(i64, u32), b: &(i64, u32)| {
        a.0.cmp(&b.0).then_with(|| {
            let (i, j) = (a.1 as usize, b.1 as usize);
            created
                .map_or(std::cmp::Ordering::Equal, |c| c[i].cmp(&c[j]))
                .then_with(|| ordinal.map_or(std::cmp::Ordering::Equal, |o| o[i].cmp(&o[j])))
                .then_with(|| input_order.map_or(std::cmp::Ordering::Equal, |o| o[i].cmp(&o[j])))
                .then(a.1.cmp(&b.1))
        })
    };
    let sort = |events: &mut [(i64, u32)], bounds: &[usize]| {
        let first = bounds[0];
        for w in bounds.windows(2) {
            events[w[0] - first..w[1] - first].sort_unstable_by(by);
        }
    };
    let threads = threads();
    if threads == 1 || events.len() < 1 << 16 {
        sort(events, estarts);
        return;
    }
    // Cut at the key boundaries nearest to equal shares of events.
    let mut cuts = vec![0usize];
    for t in 1..threads {
        let target = events.len() * t / threads;
        let g = estarts
            .partition_point(|&s| s < target)
            .min(estarts.len() - 1);
        if g > *cuts.last().expect("starts at 0") {
            cuts.push(g);
        }
    }
    cuts.push(estarts.len() - 1);
    std::thread::scope(|scope| {
        let mut rest = events;
        for w in cuts.windows(2) {
            let bounds = &estarts[w[0]..=w[1]];
            let (mine, others) = rest.split_at_mut(bounds[bounds.len() - 1] - bounds[0]);
            rest = others;
            scope.spawn(move || sort(mine, bounds));
        }
    });
}

/// The sorted events beside the entity index: per key group, its events' range and its slots.
struct Runs<'a> {
    index: &'a EntityIndex,
    slots: Vec<std::ops::Range<usize>>,
    estarts: &'a [usize],
    ts: &'a [i64],
}

impl Runs<'_> {
    /// The newest event in `window` before each entity row.
    fn newest(&self, window: i64, rows: usize) -> ArrayRef {
        let mut newest: Vec<Option<i64>> = vec![None; rows];
        for (g, slots) in self.slots.iter().enumerate() {
            let events = self.estarts[g]..self.estarts[g + 1];
            let reads = &self.index.times[slots.clone()];
            window::newest_in_window(&self.ts[events], window, reads, |r, t| {
                newest[self.index.rows[slots.start + r] as usize] = t;
            });
        }
        Arc::new(Int64Array::from(newest))
    }

    /// Aggregate `a` for each entity row, over `column` (when it reads one).
    fn aggregate(
        &self,
        a: &WindowAggregate,
        column: Option<&Column>,
        rows: usize,
    ) -> Result<ArrayRef> {
        let mut answers = Answers::new(a.function, a.column_type.as_ref(), rows);
        for (g, slots) in self.slots.iter().enumerate() {
            let events = self.estarts[g]..self.estarts[g + 1];
            let run = column.map(|c| c.from(events.start));
            window::slide(
                a.function,
                a.window,
                a.column_type.as_ref(),
                &self.ts[events.clone()],
                run.as_ref(),
                &self.index.times[slots.clone()],
                |r, o| answers.set(self.index.rows[slots.start + r] as usize, o, events.start),
            );
        }
        answers.finish(column.map(Column::array), &a.output)
    }
}

/// One aggregate's answers, per entity row (rows with no key or no events keep the empty answer).
enum Answers {
    Count(Vec<i64>),
    Int(Vec<Option<i64>>),
    Float(Vec<Option<f64>>),
    /// Global indices into the sorted column.
    Pick(Vec<Option<u32>>),
}

impl Answers {
    fn new(function: Function, column_type: Option<&DType>, rows: usize) -> Self {
        match (function, window::output_type(function, column_type)) {
            (Function::Count, _) => Answers::Count(vec![0; rows]),
            (Function::Min | Function::Max | Function::Last, _) => Answers::Pick(vec![None; rows]),
            (_, Some(DType::Int64)) => Answers::Int(vec![None; rows]),
            _ => Answers::Float(vec![None; rows]),
        }
    }

    #[inline]
    fn set(&mut self, row: usize, o: Output, offset: usize) {
        match (self, o) {
            (Answers::Count(v), Output::Count(n)) => v[row] = n,
            (Answers::Int(v), Output::Int(x)) => v[row] = x,
            (Answers::Float(v), Output::Float(x)) => v[row] = x,
            (Answers::Pick(v), Output::Pick(i)) => v[row] = i.map(|i| (offset + i) as u32),
            _ => debug_assert!(false, "the rule answers in its function's kind"),
        }
    }

    fn finish(self, column: Option<&ArrayRef>, output: &DataType) -> Result<ArrayRef> {
        Ok(match self {
            Answers::Count(v) => Arc::new(Int64Array::from(v)),
            Answers::Int(v) => Arc::new(Int64Array::from(v)),
            Answers::Float(v) => Arc::new(Float64Array::from(v)),
            Answers::Pick(v) => match column {
                Some(c) => take(c, &UInt32Array::from(v), None)?,
                None => datafusion::arrow::array::new_null_array(output, v.len()),
            },
        })
    }
}

/// Streams one feature partition, keeping the events some entity row's window sees.
async fn probe(
    mut stream: SendableRecordBatchStream,
    index: &EntityIndex,
    options: &WindowAggOptions,
    inputs: &[usize],
    reservation: &MemoryReservation,
    compute: datafusion::physical_plan::metrics::Time,
) -> Result<Kept> {
    let longest = options.longest_window();
    let mut kept = Kept::new(options, inputs.len());
    while let Some(batch) = stream.next().await {
        let batch = batch?;
        let _timer = compute.timer();
        kept.rows_in += batch.num_rows();
        let groups = index.groups_of(&batch.columns()[..options.key_count])?;
        let ts = nanos("WindowAggExec", &batch, options.right_ts)?;
        let created = options
            .right_created
            .map(|c| nanos("WindowAggExec", &batch, c))
            .transpose()?;
        let deleted = options
            .right_deleted
            .map(|d| batch.column(d).as_boolean().clone());
        let ordinal = options
            .right_ordinal
            .map(|o| batch.column(o).as_primitive::<UInt32Type>().clone());
        let input_order = options
            .right_input_order
            .map(|o| batch.column(o).as_primitive::<UInt64Type>().clone());
        let mut rows: Vec<u32> = Vec::new();
        for (row, group) in groups.into_iter().enumerate() {
            let Some(g) = group else { continue };
            if ts.is_null(row)
                || deleted
                    .as_ref()
                    .is_some_and(|d| d.is_valid(row) && d.value(row))
            {
                continue;
            }
            let t = ts.value(row);
            // The first entity row at or after the event sees it if any does.
            let Some(slot) = index.slot_for(g, t) else {
                continue;
            };
            if !window::in_window(t, index.times[slot], longest) {
                continue;
            }
            kept.group.push(g);
            kept.ts.push(t);
            if let (Some(out), Some(c)) = (kept.created.as_mut(), created.as_ref()) {
                out.push(if c.is_valid(row) {
                    c.value(row)
                } else {
                    i64::MIN
                });
            }
            if let (Some(out), Some(o)) = (kept.ordinal.as_mut(), ordinal.as_ref()) {
                out.push(if o.is_valid(row) { o.value(row) } else { 0 });
            }
            if let (Some(out), Some(o)) = (kept.input_order.as_mut(), input_order.as_ref()) {
                out.push(o.value(row));
            }
            rows.push(row as u32);
        }
        if !rows.is_empty() {
            let rows = UInt32Array::from(rows);
            for (out, &c) in kept.columns.iter_mut().zip(inputs) {
                out.push(take(batch.column(c), &rows, None)?);
            }
        }
        reservation.try_resize(kept.memory_size())?;
    }
    Ok(kept)
}
