//! The offline store: point-in-time correct training sets, and the latest row per key for
//! materialization. Both run the same plan: the entity rows and a scan of the view's source, joined
//! by [`PitJoinExec`].

use std::path::{Path, PathBuf};
use std::sync::Arc;

use asof_core::error::did_you_mean;
use asof_core::refs::event_timestamp_column_name;
use asof_core::{FeatureRequest, ResolvedView, pit};
use datafusion::arrow::array::{Array, ArrayRef, AsArray, Int64Array, RecordBatch};
use datafusion::arrow::compute::{cast, concat_batches};
use datafusion::arrow::datatypes::{DataType, Field, Int64Type, Schema, SchemaRef, TimeUnit};
use datafusion::common::DataFusionError;
use datafusion::execution::SessionStateBuilder;
use datafusion::execution::runtime_env::RuntimeEnvBuilder;
use datafusion::logical_expr::ident;
use datafusion::physical_plan::{ExecutionPlan, collect, displayable, execute_stream};
use datafusion::prelude::{SessionConfig, SessionContext};
use futures::{StreamExt, TryStreamExt};

use crate::entity_table::EntityTable;
use crate::error::{OfflineError, OfflineResult};
use crate::input_order::{INPUT_ORDER, InputOrderExec};
use crate::keyed_inputs::{Inputs, key_columns};
use crate::memory::MemoryLimit;
use crate::pit_join::{PitJoinExec, PitJoinOptions};
use crate::source::{
    FEATURE_CREATED, FEATURE_DELETED, FEATURE_ORDINAL, FEATURE_TS, TimeBounds, scan_view,
    source_error,
};
use crate::timestamps::{from_nanos, to_nanos};
use crate::types::{arrow_type, keys_compatible, plain_type, to_plain};
use crate::window_agg::{WindowAggExec, WindowAggOptions, WindowAggregate};

const ENTITY_TS: &str = "__asof_entity_ts";
/// The entity row's position, carried through a key-partitioned plan to restore entity order.
pub const ENTITY_ROW: &str = "__asof_entity_row";

/// Removes round-robin repartitions (which the optimizer adds under filters for parallelism):
/// they deal batches to partitions in arrival order, and windowed `last` needs the events' input
/// order, partition by partition.
fn without_round_robin(
    plan: Arc<dyn ExecutionPlan>,
) -> datafusion::common::Result<Arc<dyn ExecutionPlan>> {
    use datafusion::common::tree_node::{Transformed, TreeNode};
    use datafusion::physical_plan::repartition::RepartitionExec;
    plan.transform_up(|node| {
        if let Some(r) = node.downcast_ref::<RepartitionExec>()
            && matches!(
                r.partitioning(),
                datafusion::physical_plan::Partitioning::RoundRobinBatch(_)
            )
        {
            return Ok(Transformed::yes(Arc::clone(r.input())));
        }
        Ok(Transformed::no(node))
    })
    .map(|t| t.data)
}

/// The views' join outputs read side by side: each step yields the same entity rows from every
/// view, as many as the shortest pending batch holds, wherever the inputs cut their batches (a
/// cluster's results arrive batched by its shuffle, not by the entity table).
struct Aligned {
    streams: Vec<datafusion::physical_plan::SendableRecordBatchStream>,
    /// Per stream, its current batch and how many of its rows were already used.
    pending: Vec<Option<(RecordBatch, usize)>>,
    offset: usize,
    rows: usize,
}

impl Aligned {
    fn new(
        streams: Vec<datafusion::physical_plan::SendableRecordBatchStream>,
        rows: usize,
    ) -> Self {
        let pending = streams.iter().map(|_| None).collect();
        Aligned {
            streams,
            pending,
            offset: 0,
            rows,
        }
    }

    /// The entity row offset of the next rows and one batch of them per view, or `None` at the
    /// end; an error when the views answer unevenly.
    async fn next(
        &mut self,
        names: &[String],
    ) -> datafusion::common::Result<Option<(usize, Vec<RecordBatch>)>> {
        for (stream, pending) in self.streams.iter_mut().zip(&mut self.pending) {
            while pending.is_none() {
                match stream.next().await.transpose()? {
                    Some(b) if b.num_rows() == 0 => {}
                    Some(b) => *pending = Some((b, 0)),
                    None => break,
                }
            }
        }
        let done = self.pending.iter().filter(|p| p.is_none()).count();
        if done == self.pending.len() {
            if self.offset != self.rows {
                return Err(DataFusionError::Internal(format!(
                    "the views' joins answered {} of {} entity rows",
                    self.offset, self.rows
                )));
            }
            return Ok(None);
        }
        if done > 0 {
            let ended = names
                .iter()
                .zip(&self.pending)
                .find(|(_, p)| p.is_none())
                .map_or("?", |(n, _)| n.as_str());
            return Err(DataFusionError::Internal(format!(
                "view `{ended}`'s join ended at entity row {} of {} while others went on",
                self.offset, self.rows
            )));
        }
        let take = self
            .pending
            .iter()
            .flatten()
            .map(|(b, used)| b.num_rows() - used)
            .min()
            .expect("every stream has a batch");
        let mut batches = Vec::with_capacity(self.pending.len());
        for pending in &mut self.pending {
            let (b, used) = pending.as_mut().expect("every stream has a batch");
            batches.push(b.slice(*used, take));
            *used += take;
            if *used == b.num_rows() {
                *pending = None;
            }
        }
        let offset = self.offset;
        self.offset += take;
        if self.offset > self.rows {
            return Err(DataFusionError::Internal(format!(
                "the views' joins answered more than the {} entity rows",
                self.rows
            )));
        }
        Ok(Some((offset, batches)))
    }
}

/// `plan` hash-partitioned by its first `key_count` columns into `partitions`.
fn by_keys(
    plan: Arc<dyn ExecutionPlan>,
    key_count: usize,
    partitions: usize,
) -> datafusion::common::Result<Arc<dyn ExecutionPlan>> {
    use datafusion::physical_plan::Partitioning;
    use datafusion::physical_plan::repartition::RepartitionExec;
    let keys = key_columns(&plan.schema(), key_count);
    Ok(Arc::new(RepartitionExec::try_new(
        plan,
        Partitioning::Hash(keys, partitions),
    )?))
}

/// A key-partitioned join's partitions, each sorted by [`ENTITY_ROW`] and merged into one stream
/// in entity row order.
fn in_entity_order(
    join: Arc<dyn ExecutionPlan>,
) -> datafusion::common::Result<Arc<dyn ExecutionPlan>> {
    use datafusion::physical_expr::{LexOrdering, PhysicalSortExpr};
    use datafusion::physical_plan::expressions::col;
    use datafusion::physical_plan::sorts::sort::SortExec;
    use datafusion::physical_plan::sorts::sort_preserving_merge::SortPreservingMergeExec;
    let row = PhysicalSortExpr::new_default(col(ENTITY_ROW, &join.schema())?);
    let ordering = LexOrdering::new([row]).expect("one sort expression");
    let sorted = SortExec::new(ordering.clone(), join).with_preserve_partitioning(true);
    Ok(Arc::new(SortPreservingMergeExec::new(
        ordering,
        Arc::new(sorted),
    )))
}

/// How [`OfflineStore::distributed_plans`] lays a training set out for a cluster.
#[derive(Debug, Clone)]
pub struct KeyPartitioning {
    /// The partitions both sides are hash-partitioned into by key: the join stage's tasks.
    pub partitions: usize,
    /// A folder or object store prefix every executor reads, where each view's entity rows are
    /// staged as Parquet. `None` ships them inside the plan, which only suits small tables (and
    /// one machine): Ballista caps a plan message at 16 MiB.
    pub stage: Option<String>,
}

/// Options of a training-set request (the CLI flags of `asof training-set`).
#[derive(Debug, Clone)]
pub struct TrainingSetOptions {
    pub timestamp_column: String,
    /// Add `view__event_timestamp` per view: the matched row's event time.
    pub with_timestamps: bool,
    /// Also require `created <= entity timestamp`.
    pub filter_by_created: bool,
}

impl Default for TrainingSetOptions {
    fn default() -> Self {
        TrainingSetOptions {
            timestamp_column: "event_timestamp".into(),
            with_timestamps: false,
            filter_by_created: false,
        }
    }
}

/// A view's rows as materialization writes them: the latest row per entity key
/// ([`OfflineStore::latest_rows`]) or an aggregated view's events ([`OfflineStore::events`]).
#[derive(Debug)]
pub struct ScannedRows {
    /// `keys..., __asof_feature_ts, [__asof_feature_created], columns...`.
    pub batches: Vec<RecordBatch>,
    pub key_count: usize,
    pub has_created: bool,
}

/// An aggregated view's events as its scan produces them ([`OfflineStore::events`]).
pub struct ScannedEvents {
    stream: datafusion::physical_plan::SendableRecordBatchStream,
    view: ResolvedView,
    pub key_count: usize,
    pub has_created: bool,
}

impl std::fmt::Debug for ScannedEvents {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ScannedEvents")
            .field("view", &self.view.view.name)
            .finish_non_exhaustive()
    }
}

impl ScannedEvents {
    /// The next batch; an error names the view's source.
    pub async fn next_batch(&mut self) -> OfflineResult<Option<RecordBatch>> {
        match self.stream.next().await {
            None => Ok(None),
            Some(Ok(b)) => Ok(Some(b)),
            Some(Err(e)) => Err(source_error(
                &self.view,
                &self.view.source.path,
                e.strip_backtrace(),
            )),
        }
    }
}

#[derive(Clone)]
pub struct OfflineStore {
    ctx: SessionContext,
    repo_dir: PathBuf,
    /// Where pushed rows are logged (`offline_store.push_log`); read beside every source.
    push_log: PathBuf,
}

impl std::fmt::Debug for OfflineStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OfflineStore")
            .field("repo_dir", &self.repo_dir)
            .finish_non_exhaustive()
    }
}

impl OfflineStore {
    pub fn new(repo_dir: &Path) -> Self {
        Self::with_batch_size(repo_dir, 8192)
    }

    /// A store whose operators work on batches of `batch_size` rows (tests use tiny batches to cross
    /// batch boundaries everywhere).
    pub fn with_batch_size(repo_dir: &Path, batch_size: usize) -> Self {
        Self::with_tuning(repo_dir, batch_size, None)
    }

    /// Reads pushed rows from `root` (the repo's `offline_store.push_log`) instead of the default.
    pub fn with_push_log(mut self, root: PathBuf) -> Self {
        self.push_log = root;
        self
    }

    /// A store whose queries may hold at most `limit` bytes (reserved through DataFusion's memory
    /// pool); past it a query fails with [`crate::OfflineError::MemoryLimit`].
    pub fn with_memory_limit(repo_dir: &Path, limit: MemoryLimit) -> Self {
        Self::build(repo_dir, 8192, None, Some(limit))
    }

    /// [`Self::with_batch_size`], also setting how many partitions a source is scanned in (the
    /// join's parallelism; default: one per core).
    pub fn with_tuning(repo_dir: &Path, batch_size: usize, partitions: Option<usize>) -> Self {
        Self::build(repo_dir, batch_size, partitions, None)
    }

    fn build(
        repo_dir: &Path,
        batch_size: usize,
        partitions: Option<usize>,
        limit: Option<MemoryLimit>,
    ) -> Self {
        let mut config = SessionConfig::new()
            .with_batch_size(batch_size)
            .with_parquet_pruning(true)
            .set_bool(crate::types::FORCE_VIEW_TYPES, false);
        if let Some(p) = partitions {
            config = config.with_target_partitions(p.max(1));
        }
        let mut state = SessionStateBuilder::new()
            .with_config(config)
            .with_default_features();
        if let Some(limit) = limit {
            // The pool names the largest consumers in its error, so "needs N" is in the message.
            let runtime = RuntimeEnvBuilder::new()
                .with_memory_limit(limit.0, 1.0)
                .build_arc()
                .expect("a memory-limited runtime needs no I/O to build");
            state = state.with_runtime_env(runtime);
        }
        let state = state.build();
        OfflineStore {
            ctx: SessionContext::new_with_state(state),
            repo_dir: repo_dir.to_path_buf(),
            push_log: asof_core::config::OfflineStoreConfig::default().push_log_root(repo_dir),
        }
    }

    /// Builds the join plan of one view: `left` is `keys..., __asof_entity_ts` with key types
    /// already equal to the source's. The plan's output keeps `left`'s row order.
    ///
    /// With `partitions`, the plan is the one a cluster runs: `left` also carries
    /// [`ENTITY_ROW`], both sides are hash-partitioned by the keys into that many partitions, each
    /// partition joins alone, and a merge on the row ids restores the entity order. Ballista cuts
    /// its stages at those repartitions and at the merge.
    async fn view_plan(
        &self,
        view: &ResolvedView,
        right: datafusion::dataframe::DataFrame,
        left: Arc<dyn ExecutionPlan>,
        filter_by_created: bool,
        partitions: Option<usize>,
    ) -> OfflineResult<Arc<dyn ExecutionPlan>> {
        let k = view.join_keys.len();
        let has_created = right
            .schema()
            .has_column_with_unqualified_name(FEATURE_CREATED);
        let right = right.create_physical_plan().await?;
        let deleted = right.schema().index_of(FEATURE_DELETED).ok();
        let right = match (view.view.is_aggregated(), partitions) {
            (false, _) => right,
            (true, None) => without_round_robin(right)?,
            // The shuffle interleaves the events: tag their scan order first (see
            // `crate::input_order`), so that ties break as they do on one machine.
            (true, Some(_)) => Arc::new(InputOrderExec::new(without_round_robin(right)?)),
        };
        let (left, right, inputs) = match partitions {
            None => (left, right, Inputs::Collected),
            Some(n) => (
                by_keys(left, k, n)?,
                by_keys(right, k, n)?,
                Inputs::KeyPartitioned,
            ),
        };
        let join: Arc<dyn ExecutionPlan> = if view.view.is_aggregated() {
            let schema = right.schema();
            let aggregates = view
                .aggregations()
                .map(|a| {
                    let column = a.column.as_ref().map(|c| schema.index_of(c)).transpose()?;
                    Ok(WindowAggregate {
                        name: a.name.clone(),
                        function: a.function,
                        window: a.window_nanos(),
                        column,
                        column_type: a.dtype.clone(),
                        output: arrow_type(&a.output_type().unwrap_or(asof_core::DType::Int64)),
                    })
                })
                .collect::<datafusion::common::Result<Vec<_>>>()?;
            let options = WindowAggOptions {
                key_count: k,
                left_ts: k,
                right_ts: k,
                right_created: has_created.then_some(k + 1),
                right_deleted: deleted,
                right_ordinal: schema.index_of(FEATURE_ORDINAL).ok(),
                right_input_order: schema.index_of(INPUT_ORDER).ok(),
                horizon: view.view.longest_window().unwrap_or(i64::MAX),
                aggregates,
            };
            Arc::new(WindowAggExec::with_inputs(left, right, options, inputs)?)
        } else {
            let options = PitJoinOptions {
                key_count: k,
                left_ts: k,
                right_ts: k,
                right_created: has_created.then_some(k + 1),
                right_deleted: deleted,
                ttl: view.view.ttl,
                filter_by_created,
            };
            Arc::new(PitJoinExec::with_inputs(left, right, options, inputs)?)
        };
        Ok(match partitions {
            None => join,
            Some(_) => in_entity_order(join)?,
        })
    }

    /// The left side of a view's join: the entity keys (cast to the source's key types) and the
    /// entity timestamp in ns.
    fn left_batch(
        entities: &EntityTable,
        view: &ResolvedView,
        right_schema: &datafusion::common::DFSchema,
        ts: &Int64Array,
        with_row_ids: bool,
    ) -> OfflineResult<RecordBatch> {
        let mut fields = Vec::new();
        let mut columns: Vec<ArrayRef> = Vec::new();
        for key in &view.join_keys {
            let col = entities.batch.column_by_name(key).expect("checked before");
            let want = right_schema
                .field_with_unqualified_name(key)
                .expect("scan selects keys")
                .data_type()
                .clone();
            if !keys_compatible(col.data_type(), &want) {
                return Err(entities.error(format!(
                    "column `{key}` is {} but view `{}` keys on {want} in its source; convert the column",
                    col.data_type(),
                    view.view.name
                )));
            }
            let cast_col = if *col.data_type() == want {
                Arc::clone(col)
            } else {
                cast(col, &want)?
            };
            fields.push(Field::new(key, want, true));
            columns.push(cast_col);
        }
        fields.push(Field::new(ENTITY_TS, DataType::Int64, false));
        columns.push(Arc::new(ts.clone()));
        if with_row_ids {
            fields.push(Field::new(ENTITY_ROW, DataType::Int64, false));
            columns.push(Arc::new(Int64Array::from_iter_values(0..ts.len() as i64)));
        }
        Ok(RecordBatch::try_new(
            Arc::new(Schema::new(fields)),
            columns,
        )?)
    }

    /// Checks the entity table against the request before any data is read.
    fn check_entities(
        entities: &EntityTable,
        request: &FeatureRequest,
        opts: &TrainingSetOptions,
    ) -> OfflineResult<Int64Array> {
        let schema = entities.batch.schema();
        let names: Vec<&str> = schema.fields().iter().map(|f| f.name().as_str()).collect();
        let ts_col = entities
            .batch
            .column_by_name(&opts.timestamp_column)
            .ok_or_else(|| {
                let hint = did_you_mean(&opts.timestamp_column, names.iter().copied())
                    .map(|h| format!("; {h} (pass --timestamp-column)"))
                    .unwrap_or_else(|| "; name the column with --timestamp-column".into());
                entities.error(format!(
                    "no timestamp column `{}` (columns: {}){hint}",
                    opts.timestamp_column,
                    entities.column_names()
                ))
            })?;
        let ts = to_nanos(ts_col).map_err(|e| {
            entities.error(format!(
                "timestamp column `{}` ({}) cannot be read as timestamps: {e}",
                opts.timestamp_column,
                ts_col.data_type()
            ))
        })?;
        if ts.null_count() > 0 {
            let first = (0..ts.len()).find(|i| ts.is_null(*i)).unwrap_or(0);
            return Err(entities.error(format!(
                "timestamp column `{}` has {} null value(s), the first in row {}; every entity row needs a timestamp",
                opts.timestamp_column,
                ts.null_count(),
                first + 1
            )));
        }
        for v in &request.views {
            for key in &v.join_keys {
                if entities.batch.column_by_name(key).is_none() {
                    return Err(entities.error(format!(
                        "no column `{key}`, the join key of view `{}` (columns: {})",
                        v.view.name,
                        entities.column_names()
                    )));
                }
            }
        }
        let mut out_names: Vec<String> = request.output_names();
        if opts.with_timestamps {
            out_names.extend(
                request
                    .views
                    .iter()
                    .map(|v| event_timestamp_column_name(&v.view.name)),
            );
        }
        for n in &out_names {
            if names.contains(&n.as_str()) {
                let fix = if request.full_feature_names {
                    "rename the entity table's column"
                } else {
                    "pass --full-feature-names"
                };
                return Err(entities.error(format!(
                    "feature column `{n}` would collide with the entity table's column `{n}`; {fix}"
                )));
            }
        }
        Ok(ts)
    }

    /// Joins each view's features onto the entity table's rows, as of each row's timestamp. The
    /// result has the entity table's columns, then the features in request order, row for row.
    /// Collects [`Self::training_set_stream`]; writers should consume the stream instead.
    pub async fn training_set(
        &self,
        entities: &EntityTable,
        request: &FeatureRequest,
        opts: &TrainingSetOptions,
    ) -> OfflineResult<RecordBatch> {
        let stream = self.training_set_stream(entities, request, opts).await?;
        let schema = stream.schema();
        let batches: Vec<RecordBatch> = stream.try_collect().await?;
        Ok(concat_batches(&schema, &batches)?)
    }

    /// The training set as a stream of batches in entity row order, produced as the consumer
    /// reads: each view's join emits its rows in entity row order, and each output batch is
    /// assembled from the next rows of every view, so the whole table never exists in memory at
    /// once.
    pub async fn training_set_stream(
        &self,
        entities: &EntityTable,
        request: &FeatureRequest,
        opts: &TrainingSetOptions,
    ) -> OfflineResult<datafusion::physical_plan::SendableRecordBatchStream> {
        self.training_set_stream_with(entities, request, opts, None)
            .await
    }

    /// [`Self::training_set_stream`] with the plans a cluster runs when `key_partitions` is set
    /// ([`Self::distributed_plans`]), executed here: the same rows, partitioned by key.
    pub async fn training_set_stream_with(
        &self,
        entities: &EntityTable,
        request: &FeatureRequest,
        opts: &TrainingSetOptions,
        key_partitions: Option<usize>,
    ) -> OfflineResult<datafusion::physical_plan::SendableRecordBatchStream> {
        let layout = key_partitions.map(|partitions| KeyPartitioning {
            partitions,
            stage: None,
        });
        let plans = self
            .plans_with(entities, request, opts, layout.as_ref())
            .await?;
        let mut joined = Vec::with_capacity(plans.len());
        for (view, plan) in plans {
            joined.push((view, execute_stream(plan, self.ctx.task_ctx())?));
        }
        Ok(Self::assemble(entities, request, opts, joined))
    }

    /// Assembles the training set from each view's join output (in request order, as
    /// [`Self::plans`] or [`Self::distributed_plans`] produce it, executed here or on a cluster):
    /// the entity table's columns, then the features in request order. Every join must answer
    /// every entity row in entity row order; their batches may be cut anywhere.
    pub fn assemble(
        entities: &EntityTable,
        request: &FeatureRequest,
        opts: &TrainingSetOptions,
        joined: Vec<(
            ResolvedView,
            datafusion::physical_plan::SendableRecordBatchStream,
        )>,
    ) -> datafusion::physical_plan::SendableRecordBatchStream {
        let mut fields: Vec<Field> = entities
            .batch
            .schema()
            .fields()
            .iter()
            .map(|f| Field::new(f.name(), plain_type(f.data_type()), f.is_nullable()))
            .collect();
        // Where each output feature column comes from: (view, column index in its join output).
        let mut picks: Vec<(usize, usize)> = Vec::new();
        for (vidx, feature, out_name) in &request.columns {
            let schema = joined[*vidx].1.schema();
            let (i, f) = schema
                .column_with_name(feature)
                .expect("scan selects every requested feature");
            fields.push(Field::new(out_name, plain_type(f.data_type()), true));
            picks.push((*vidx, i));
        }
        let mut ts_picks = Vec::new();
        if opts.with_timestamps {
            for (vidx, (view, stream)) in joined.iter().enumerate() {
                let (i, _) = stream
                    .schema()
                    .column_with_name(FEATURE_TS)
                    .expect("feature ts passes through");
                fields.push(Field::new(
                    event_timestamp_column_name(&view.view.name),
                    DataType::Timestamp(TimeUnit::Nanosecond, Some("UTC".into())),
                    true,
                ));
                ts_picks.push((vidx, i));
            }
        }
        let schema: SchemaRef = Arc::new(Schema::new(fields));
        let entity_batch = entities.batch.clone();
        let names: Vec<String> = joined.iter().map(|(v, _)| v.view.name.clone()).collect();
        let streams = joined.into_iter().map(|(_, s)| s).collect();
        let out_schema = Arc::clone(&schema);
        let stream = futures::stream::try_unfold(
            Aligned::new(streams, entity_batch.num_rows()),
            move |mut aligned| {
                let schema = Arc::clone(&out_schema);
                let entity_batch = entity_batch.clone();
                let names = names.clone();
                let picks = picks.clone();
                let ts_picks = ts_picks.clone();
                async move {
                    let Some((offset, batches)) = aligned.next(&names).await? else {
                        return Ok(None);
                    };
                    let rows = batches[0].num_rows();
                    let mut columns: Vec<ArrayRef> = entity_batch
                        .slice(offset, rows)
                        .columns()
                        .iter()
                        .map(to_plain)
                        .collect::<datafusion::common::Result<_>>()?;
                    for &(v, i) in &picks {
                        columns.push(to_plain(batches[v].column(i))?);
                    }
                    for &(v, i) in &ts_picks {
                        columns.push(from_nanos(batches[v].column(i).as_primitive::<Int64Type>()));
                    }
                    let batch = RecordBatch::try_new(schema, columns)?;
                    Ok(Some((batch, aligned)))
                }
            },
        );
        Box::pin(datafusion::physical_plan::stream::RecordBatchStreamAdapter::new(schema, stream))
    }

    /// The physical plan of each view of the request (for `--explain` and for execution).
    pub async fn plans(
        &self,
        entities: &EntityTable,
        request: &FeatureRequest,
        opts: &TrainingSetOptions,
    ) -> OfflineResult<Vec<(ResolvedView, Arc<dyn ExecutionPlan>)>> {
        self.plans_with(entities, request, opts, None).await
    }

    /// The plans a cluster runs: each view's rows hash-partitioned by its keys into
    /// `partitions`, joined partition by partition, and merged back into entity order (see
    /// [`Self::view_plan`]). Their output equals [`Self::plans`]' and carries [`ENTITY_ROW`].
    pub async fn distributed_plans(
        &self,
        entities: &EntityTable,
        request: &FeatureRequest,
        opts: &TrainingSetOptions,
        layout: &KeyPartitioning,
    ) -> OfflineResult<Vec<(ResolvedView, Arc<dyn ExecutionPlan>)>> {
        self.plans_with(entities, request, opts, Some(layout)).await
    }

    async fn plans_with(
        &self,
        entities: &EntityTable,
        request: &FeatureRequest,
        opts: &TrainingSetOptions,
        layout: Option<&KeyPartitioning>,
    ) -> OfflineResult<Vec<(ResolvedView, Arc<dyn ExecutionPlan>)>> {
        let partitions = layout.map(|l| l.partitions.max(1));
        let ts = Self::check_entities(entities, request, opts)?;
        let (min_t, max_t) = (
            datafusion::arrow::compute::min(&ts),
            datafusion::arrow::compute::max(&ts),
        );
        let mut plans = Vec::with_capacity(request.views.len());
        for view in &request.views {
            let bounds = match (min_t, max_t) {
                (Some(lo), Some(hi)) => TimeBounds {
                    min: match view.view.longest_window() {
                        Some(w) => Some(asof_core::window::oldest_in_window(lo, w)),
                        None => pit::oldest_useful(lo, view.view.ttl),
                    },
                    max: Some(hi),
                },
                // No entity rows: an empty time range reads nothing.
                _ => TimeBounds {
                    min: Some(1),
                    max: Some(0),
                },
            };
            let right = self.scan(view, bounds).await?;
            let left = Self::left_batch(entities, view, right.schema(), &ts, partitions.is_some())?;
            let left = self
                .left_plan(left, layout.and_then(|l| l.stage.as_deref()), view)
                .await?;
            let plan = self
                .view_plan(view, right, left, opts.filter_by_created, partitions)
                .await?;
            plans.push((view.clone(), plan));
        }
        Ok(plans)
    }

    /// The plan that reads a view's entity rows: from memory, or from `stage`, where they are
    /// written first as `<stage>/<view>.parquet` (a folder or an object store prefix), so that a
    /// cluster's executors read them from there instead of from a plan too large to ship.
    async fn left_plan(
        &self,
        left: RecordBatch,
        stage: Option<&str>,
        view: &ResolvedView,
    ) -> OfflineResult<Arc<dyn ExecutionPlan>> {
        let Some(stage) = stage else {
            return Ok(self.ctx.read_batch(left)?.create_physical_plan().await?);
        };
        let location = format!("{}/{}.parquet", stage.trim_end_matches('/'), view.view.name);
        let staging_error = |message: String| OfflineError::File {
            path: PathBuf::from(&location),
            message: format!(
                "cannot stage the entity rows of view `{}` there: {message}",
                view.view.name
            ),
        };
        match crate::remote::url_of(&location) {
            Some(url) => {
                let local = tempfile::Builder::new()
                    .suffix(".parquet")
                    .tempfile()
                    .map_err(|e| staging_error(e.to_string()))?;
                crate::output::write_table(local.path(), &[left])?;
                crate::remote::upload(local.path(), &url)
                    .await
                    .map_err(staging_error)?;
                crate::remote::register(&self.ctx, &url).map_err(staging_error)?;
            }
            None => {
                std::fs::create_dir_all(stage).map_err(|e| staging_error(e.to_string()))?;
                crate::output::write_table(Path::new(&location), &[left])?;
            }
        }
        let scan = self
            .ctx
            .read_parquet(
                location.as_str(),
                datafusion::prelude::ParquetReadOptions::default(),
            )
            .await?;
        Ok(scan.create_physical_plan().await?)
    }

    /// A view's rows within `bounds`: its source and its push log, as one table.
    async fn scan(
        &self,
        view: &ResolvedView,
        bounds: TimeBounds,
    ) -> OfflineResult<datafusion::dataframe::DataFrame> {
        scan_view(
            &self.ctx,
            &self.repo_dir,
            view,
            bounds,
            Some(&self.push_log),
        )
        .await
    }

    /// `EXPLAIN` of the plans, one section per view.
    pub async fn explain(
        &self,
        entities: &EntityTable,
        request: &FeatureRequest,
        opts: &TrainingSetOptions,
    ) -> OfflineResult<String> {
        Self::explained(self.plans(entities, request, opts).await?)
    }

    /// `EXPLAIN` of [`Self::distributed_plans`], before a cluster cuts them into stages.
    pub async fn explain_distributed(
        &self,
        entities: &EntityTable,
        request: &FeatureRequest,
        opts: &TrainingSetOptions,
        partitions: usize,
    ) -> OfflineResult<String> {
        let layout = KeyPartitioning {
            partitions,
            stage: None,
        };
        Self::explained(
            self.distributed_plans(entities, request, opts, &layout)
                .await?,
        )
    }

    fn explained(plans: Vec<(ResolvedView, Arc<dyn ExecutionPlan>)>) -> OfflineResult<String> {
        let mut out = String::new();
        for (view, plan) in plans {
            out.push_str(&format!(
                "-- view {}\n{}\n",
                view.view.name,
                displayable(plan.as_ref()).indent(false)
            ));
        }
        Ok(out)
    }

    /// For materializing an aggregated view: its events (source and push log) with event times
    /// in `[start, end]`, streamed as scanned: `keys..., __asof_feature_ts,
    /// [__asof_feature_created], input columns..., __asof_ordinal, __asof_deleted`.
    pub async fn events(
        &self,
        view: &ResolvedView,
        start: i64,
        end: i64,
    ) -> OfflineResult<ScannedEvents> {
        let bounds = TimeBounds {
            min: Some(start),
            max: Some(end),
        };
        let scan = self.scan(view, bounds).await?;
        let has_created = scan
            .schema()
            .has_column_with_unqualified_name(FEATURE_CREATED);
        let stream = scan
            .execute_stream()
            .await
            .map_err(|e| source_error(view, &view.source.path, e.strip_backtrace()))?;
        Ok(ScannedEvents {
            stream,
            view: view.clone(),
            key_count: view.join_keys.len(),
            has_created,
        })
    }

    /// For materialization: per entity key with rows in `[start, end]`, the row the point-in-time
    /// rule picks as of `end` (within the view's TTL of `end`). The same join as training sets, with
    /// one entity row per key at time `end`.
    pub async fn latest_rows(
        &self,
        view: &ResolvedView,
        start: i64,
        end: i64,
    ) -> OfflineResult<ScannedRows> {
        let lo = pit::oldest_useful(end, view.view.ttl).map_or(start, |o| o.max(start));
        let bounds = TimeBounds {
            min: Some(lo),
            max: Some(end),
        };
        let right = self.scan(view, bounds).await?;
        let keys: Vec<_> = view.join_keys.iter().map(ident).collect();
        let key_batches = right.clone().select(keys)?.distinct()?.collect().await?;
        let k = view.join_keys.len();
        let key_schema = Arc::new(Schema::new(
            view.join_keys
                .iter()
                .map(|name| {
                    let f = right
                        .schema()
                        .field_with_unqualified_name(name)
                        .expect("scan selects keys");
                    Field::new(name, f.data_type().clone(), true)
                })
                .collect::<Vec<_>>(),
        ));
        let keys = concat_batches(&key_schema, &key_batches)?;
        let n = keys.num_rows();
        let mut columns = keys.columns().to_vec();
        columns.push(Arc::new(Int64Array::from(vec![end; n])));
        let mut fields: Vec<Field> = key_schema
            .fields()
            .iter()
            .map(|f| f.as_ref().clone())
            .collect();
        fields.push(Field::new(ENTITY_TS, DataType::Int64, false));
        let left = RecordBatch::try_new(Arc::new(Schema::new(fields)), columns)?;
        let has_created = right
            .schema()
            .has_column_with_unqualified_name(FEATURE_CREATED);
        let left = self.ctx.read_batch(left)?.create_physical_plan().await?;
        let plan = self.view_plan(view, right, left, false, None).await?;
        let parts = collect(plan, self.ctx.task_ctx())
            .await
            .map_err(|e| source_error(view, &view.source.path, e.strip_backtrace()))?;
        // Drop the entity ts; keep matched rows only.
        let mut batches = Vec::new();
        for b in parts {
            let ts = b.column(k + 1).as_primitive::<Int64Type>();
            let mask = datafusion::arrow::compute::is_not_null(ts)?;
            let projected: Vec<usize> = (0..k).chain(k + 1..b.num_columns()).collect();
            let b = b.project(&projected)?;
            batches.push(datafusion::arrow::compute::filter_record_batch(&b, &mask)?);
        }
        Ok(ScannedRows {
            batches,
            key_count: k,
            has_created,
        })
    }
}
