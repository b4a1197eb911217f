//! Following one table: set up, take the initial snapshot (consistent with the slot), then apply
//! committed transactions in commit order, in batches, each batch durable in both stores before its
//! LSN is checkpointed and only then confirmed to PostgreSQL.
//!
//! Exactly-once in effect: push log files are named after the first commit LSN they hold, so a
//! restart removes those past the checkpoint before replaying them; online writes of a replay carry
//! the same (event, created) header and the store's never-regress rule skips them.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use asof_core::ResolvedView;
use asof_core::keys::{KeyValue, encode_entity_key, store_key};
use asof_core::spec::DocumentIndex;
use asof_core::value::{RowReader, Value};
use asof_online::OnlineStore;
use asof_retrieval::document::Document;
use asof_retrieval::{DocumentChanges, IndexStore};
use asof_server::ingest::{Targets, ViewRows, write_rows};
use pgwire_replication::{Lsn, ReplicationClient, ReplicationEvent};
use tokio::sync::watch;

use crate::checkpoint::{self, Checkpoint};
use crate::connect::{Server, quote_ident, quote_table};
use crate::error::{StreamError, StreamResult};
use crate::metrics::{IndexMetrics, OnWritten, SourceMetrics};
use crate::pgoutput::{self, Cell, Message, Tuple};
use crate::plan::{Column, DocChange, IndexPlan, ViewChange, ViewPlan};
use crate::setup::Sql;

/// A batch is applied once it holds this many row changes...
const MAX_BATCH_CHANGES: usize = 50_000;
/// ...or its first commit has waited this long: the bound on commit-to-visible latency that
/// batching adds, small beside the fsyncs a batch pays once.
const LINGER: Duration = Duration::from_millis(20);
/// Document indexes write a generation per batch: they batch for longer.
const INDEX_LINGER: Duration = Duration::from_millis(200);
/// Snapshot rows per cursor fetch, and per write.
const SNAPSHOT_FETCH: usize = 10_000;
const SNAPSHOT_WRITE: usize = 100_000;
/// An idle stream checkpoints the server's position this often, so WAL of other tables is freed.
const IDLE_CHECKPOINT: Duration = Duration::from_secs(5);

/// What a followed table feeds. (One per stream: the variants' sizes do not matter.)
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone)]
pub enum Target {
    /// Every view reading the source.
    Views(Vec<ResolvedView>),
    Index(DocumentIndex),
}

/// One followed table and everything its changes go to.
pub struct Follower {
    /// The source's (or index's) name.
    pub name: String,
    pub project: String,
    pub table: String,
    pub server: Server,
    /// The slot and publication name.
    pub slot: String,
    pub target: Target,
    pub registry_path: PathBuf,
    pub push_log: PathBuf,
    pub store: Arc<dyn OnlineStore>,
    pub indexes: IndexStore,
    pub(crate) metrics: SourceMetrics,
    pub(crate) index_metrics: Option<IndexMetrics>,
    pub(crate) on_written: Option<OnWritten>,
}

impl std::fmt::Debug for Follower {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Follower")
            .field("name", &self.name)
            .field("table", &self.table)
            .field("slot", &self.slot)
            .finish_non_exhaustive()
    }
}

/// The plans of a target, rebuilt whenever the table's shape is announced. (One per stream.)
#[allow(clippy::large_enum_variant)]
enum Plans {
    Views(Vec<ViewPlan>),
    Index(IndexPlan),
}

/// A transaction being received.
struct Txn {
    commit_ns: i64,
    views: Vec<Vec<ViewChange>>,
    docs: Vec<(DocChange, i64)>,
}

/// Committed transactions not yet applied.
#[derive(Default)]
struct Batch {
    views: Vec<ViewRows>,
    docs: Vec<(DocChange, i64)>,
    /// Commit times, for commit-to-visible latency.
    commits: Vec<i64>,
    first_lsn: Option<Lsn>,
    last_lsn: Lsn,
    last_commit_ns: i64,
    changes: usize,
    since: Option<Instant>,
}

impl Follower {
    fn what(&self) -> String {
        match self.target {
            Target::Views(_) => format!("source `{}` ({})", self.name, self.table),
            Target::Index(_) => format!("document index `{}` ({})", self.name, self.table),
        }
    }

    fn checkpoint_path(&self) -> PathBuf {
        checkpoint::path(&self.registry_path, &self.slot)
    }

    /// The push log file prefix of this stream's writes.
    fn log_prefix(&self) -> String {
        format!("cdc-{}-", self.slot)
    }

    /// The columns a row change must identify its row by: a plain view's join keys. Aggregated
    /// views take only inserts (events), so a table feeding nothing else needs no row identity.
    fn key_columns(&self) -> Vec<String> {
        match &self.target {
            Target::Views(views) => views
                .iter()
                .find(|v| !v.view.is_aggregated())
                .map(|v| v.join_keys.clone())
                .unwrap_or_default(),
            Target::Index(ix) => vec![ix.source.id_column().to_string()],
        }
    }

    /// Follows the table until `shutdown` turns true. Connection failures after the first start
    /// (the database restarting) are retried with backoff; anything else stops the stream.
    pub async fn run(self, mut shutdown: watch::Receiver<bool>) -> StreamResult<()> {
        let lock_path = checkpoint::dir(&self.registry_path).join(format!("{}.lock", self.slot));
        std::fs::create_dir_all(checkpoint::dir(&self.registry_path))
            .map_err(|e| StreamError::io(checkpoint::dir(&self.registry_path), e))?;
        let Some(_lock) = asof_core::lock::FileLock::try_exclusive(&lock_path)? else {
            return Err(StreamError::Config {
                what: self.what(),
                message: format!(
                    "another process of this repo streams it (it holds {})",
                    lock_path.display()
                ),
                fix: "stop the other `asof stream` (or `asof serve --stream`)".into(),
            });
        };
        let mut started = false;
        let mut backoff = Duration::from_millis(100);
        loop {
            let result = self.session(&mut shutdown, &mut started).await;
            self.metrics.up.set(0);
            match result {
                Ok(()) => return Ok(()),
                Err(e) if e.is_transient() && started => {
                    tracing::warn!(source = %self.name, error = %e, "stream disconnected; reconnecting in {backoff:?}");
                    tokio::select! {
                        _ = tokio::time::sleep(backoff) => {}
                        _ = stopped(&mut shutdown) => return Ok(()),
                    }
                    backoff = (backoff * 2).min(Duration::from_secs(5));
                }
                Err(e) => return Err(e),
            }
        }
    }

    async fn session(
        &self,
        shutdown: &mut watch::Receiver<bool>,
        started: &mut bool,
    ) -> StreamResult<()> {
        let what = self.what();
        let ck = checkpoint::load(&self.checkpoint_path())?;
        let resume = ck.as_ref().filter(|c| c.snapshot_done).map(Checkpoint::lsn);
        let mut client = self
            .server
            .session(&what, &self.slot, &self.slot, resume)
            .await?;
        let mut sql = Sql {
            client: &mut client,
            server: &self.server,
            what: &what,
        };
        sql.settings().await?;
        sql.check_wal_level().await?;
        let keys = self.key_columns();
        let key_refs: Vec<&str> = keys.iter().map(String::as_str).collect();
        let columns = sql.describe(&self.table, &key_refs).await?;
        let mut plans = self.plans(&columns)?;
        sql.ensure_publication(&self.slot, &self.table).await?;
        let slot_exists = sql.slot_exists(&self.slot).await?;
        let applied = match (&ck, resume) {
            (Some(ck), Some(lsn)) if slot_exists => {
                let removed = self.remove_logged_after(Some(lsn))?;
                if removed > 0 {
                    tracing::info!(source = %self.name, files = removed, "removed push log files past the checkpoint; replaying them");
                }
                tracing::info!(source = %self.name, lsn = %ck.lsn, "resuming");
                lsn
            }
            (Some(ck), Some(_)) => {
                return Err(StreamError::Config {
                    what,
                    message: format!(
                        "replication slot `{}` is gone, so the changes after {} cannot be read",
                        self.slot, ck.lsn
                    ),
                    fix: format!(
                        "remove {} to take a new snapshot (rows deleted meanwhile are not deleted from the stores)",
                        self.checkpoint_path().display()
                    ),
                });
            }
            _ => {
                if slot_exists {
                    // A snapshot that never finished: start over from a new slot.
                    sql.drop_slot(&self.slot).await?;
                }
                self.remove_logged_after(None)?;
                self.snapshot(&mut sql, &columns, &plans).await?
            }
        };
        client
            .start()
            .await
            .map_err(|e| self.server.error(&what, e))?;
        client
            .wait_started()
            .await
            .map_err(|e| self.server.error(&what, e))?;
        // What PostgreSQL hears as confirmed: a new slot's snapshot point, or the checkpoint. (A
        // server shutting down waits until the stream confirms all it sent.)
        client.update_applied_lsn(applied);
        *started = true;
        self.metrics.up.set(1);
        self.stream(&mut client, &mut plans, applied, shutdown)
            .await
    }

    fn plans(&self, columns: &[Column]) -> StreamResult<Plans> {
        let config = |message: String| StreamError::Config {
            what: self.what(),
            message,
            fix: "change the table or the definition so they agree, then `asof apply`".into(),
        };
        Ok(match &self.target {
            Target::Views(views) => Plans::Views(
                views
                    .iter()
                    .map(|v| ViewPlan::build(v, columns))
                    .collect::<Result<_, _>>()
                    .map_err(config)?,
            ),
            Target::Index(ix) => Plans::Index(IndexPlan::build(ix, columns).map_err(config)?),
        })
    }

    /// Removes this stream's push log files written after `lsn` (all of them with `None`).
    fn remove_logged_after(&self, lsn: Option<Lsn>) -> StreamResult<usize> {
        let Target::Views(views) = &self.target else {
            return Ok(0);
        };
        let mut removed = 0;
        for v in views {
            removed += asof_offline::push_log::remove_named(
                &self.push_log,
                &v.view.name,
                &self.log_prefix(),
                |rest| {
                    let first = rest.split('-').next().unwrap_or_default();
                    match (lsn, u64::from_str_radix(first, 16)) {
                        (Some(lsn), Ok(at)) => at > lsn.as_u64(),
                        _ => true,
                    }
                },
            )?;
        }
        Ok(removed)
    }

    /// Creates the slot inside a repeatable-read transaction that uses its snapshot, reads the
    /// table as of that snapshot into both stores, and checkpoints the slot's consistent point:
    /// the stream continues exactly where the snapshot ends.
    async fn snapshot(
        &self,
        sql: &mut Sql<'_>,
        columns: &[Column],
        plans: &Plans,
    ) -> StreamResult<Lsn> {
        let started = Instant::now();
        sql.query("BEGIN READ ONLY ISOLATION LEVEL REPEATABLE READ", "")
            .await?;
        let rows = sql
            .query(
                &format!(
                    "CREATE_REPLICATION_SLOT {} LOGICAL pgoutput USE_SNAPSHOT",
                    quote_ident(&self.slot)
                ),
                "check max_replication_slots and that the role has REPLICATION",
            )
            .await?;
        let lsn = rows
            .first()
            .and_then(|r| r.get(1).cloned().flatten())
            .and_then(|s| Lsn::parse(&s).ok())
            .ok_or_else(|| StreamError::Connection {
                what: self.what(),
                server: self.server.display(),
                message: "CREATE_REPLICATION_SLOT returned no consistent point".into(),
            })?;
        let select: Vec<String> = columns.iter().map(|c| quote_ident(&c.name)).collect();
        sql.query(
            &format!(
                "DECLARE asof_snapshot NO SCROLL CURSOR FOR SELECT {} FROM {}",
                select.join(", "),
                quote_table(&self.table)
            ),
            "grant the role SELECT on the table",
        )
        .await?;
        let snapshot_ns = chrono::Utc::now().timestamp_nanos_opt().unwrap_or_default();
        let mut batch = self.empty_batch(plans);
        let mut docs: Vec<Document> = Vec::new();
        let (mut total, mut part) = (0usize, 0usize);
        loop {
            let rows = sql
                .query(
                    &format!("FETCH FORWARD {SNAPSHOT_FETCH} FROM asof_snapshot"),
                    "",
                )
                .await?;
            let done = rows.is_empty();
            for row in rows {
                let tuple: Tuple = row
                    .into_iter()
                    .map(|c| c.map_or(Cell::Null, Cell::Text))
                    .collect();
                total += 1;
                match plans {
                    Plans::Views(vp) => {
                        for (i, p) in vp.iter().enumerate() {
                            for change in p
                                .upsert(&tuple, None, snapshot_ns)
                                .map_err(|m| self.change_error(m))?
                            {
                                push_change(&mut batch.views[i], change);
                            }
                        }
                        batch.changes += 1;
                    }
                    Plans::Index(ip) => match ip
                        .upsert(&tuple, snapshot_ns)
                        .map_err(|m| self.change_error(m))?
                    {
                        DocChange::Upsert(d) | DocChange::Refresh(d) => docs.push(d),
                        DocChange::Delete(_) => {}
                    },
                }
            }
            if batch.changes >= SNAPSHOT_WRITE || (done && batch.changes > 0) {
                let name = format!("{}{:016X}-s{part}", self.log_prefix(), lsn.as_u64());
                self.write_views(plans, &mut batch, &name).await?;
                part += 1;
            }
            if done {
                break;
            }
        }
        sql.query("CLOSE asof_snapshot", "").await?;
        sql.query("COMMIT", "").await?;
        if let (Target::Index(ix), Plans::Index(_)) = (&self.target, plans) {
            let store = self.indexes.clone();
            let spec = ix.clone();
            let report = tokio::task::spawn_blocking(move || {
                store.sync_corpus(&spec, asof_retrieval::Corpus::Full(&docs))
            })
            .await
            .map_err(|e| self.change_error(e.to_string()))??;
            self.count_embedded(&report);
        }
        self.save_checkpoint(lsn, None)?;
        let secs = started.elapsed().as_secs_f64();
        tracing::info!(
            source = %self.name,
            rows = total,
            seconds = secs,
            rows_per_second = (total as f64 / secs.max(1e-9)) as u64,
            lsn = %lsn,
            "initial snapshot applied"
        );
        Ok(lsn)
    }

    fn count_embedded(&self, report: &asof_retrieval::SyncReport) {
        let embedded: usize = report.versions.iter().map(|v| v.embedded).sum();
        tracing::debug!(index = %self.name, embedded, "index changes applied");
        if let Some(m) = &self.index_metrics {
            m.embedded.inc_by(embedded as u64);
        }
    }

    fn change_error(&self, message: String) -> StreamError {
        StreamError::Change {
            what: self.what(),
            message,
        }
    }

    fn empty_batch(&self, plans: &Plans) -> Batch {
        let views = match plans {
            Plans::Views(vp) => vp.iter().map(|p| ViewRows::for_view(&p.view, 0)).collect(),
            Plans::Index(_) => Vec::new(),
        };
        Batch {
            views,
            ..Batch::default()
        }
    }

    /// Applies committed transactions as they come, until shutdown or a connection error.
    async fn stream(
        &self,
        client: &mut ReplicationClient,
        plans: &mut Plans,
        mut applied: Lsn,
        shutdown: &mut watch::Receiver<bool>,
    ) -> StreamResult<()> {
        let linger = match plans {
            Plans::Views(_) => LINGER,
            Plans::Index(_) => INDEX_LINGER,
        };
        let mut batch = self.empty_batch(plans);
        let mut txn: Option<Txn> = None;
        let mut wal_end = applied;
        let mut last_idle_checkpoint = Instant::now();
        loop {
            let wait = match batch.since {
                Some(since) => linger.saturating_sub(since.elapsed()),
                None => Duration::from_secs(1),
            };
            let event = tokio::select! {
                r = tokio::time::timeout(wait, client.recv()) => r,
                _ = stopped(shutdown) => {
                    self.flush(client, plans, &mut batch, applied).await?;
                    client.stop();
                    return Ok(());
                }
            };
            match event {
                Err(_elapsed) => {}
                Ok(Ok(None)) => return Ok(()),
                Ok(Err(e)) => {
                    // Committed changes already here are complete: apply them before reconnecting.
                    self.flush(client, plans, &mut batch, applied).await?;
                    return Err(self.server.error(&self.what(), e));
                }
                Ok(Ok(Some(ev))) => match ev {
                    ReplicationEvent::Begin {
                        commit_time_micros, ..
                    } => {
                        txn = Some(Txn {
                            commit_ns: pg_micros_to_unix_nanos(commit_time_micros),
                            views: match plans {
                                Plans::Views(vp) => vec![Vec::new(); vp.len()],
                                Plans::Index(_) => Vec::new(),
                            },
                            docs: Vec::new(),
                        });
                    }
                    ReplicationEvent::XLogData {
                        data, wal_end: w, ..
                    } => {
                        wal_end = wal_end.max(w);
                        let message = pgoutput::decode(&data)
                            .map_err(|e| self.change_error(e.to_string()))?;
                        self.receive(message, plans, txn.as_mut())?;
                    }
                    ReplicationEvent::Commit {
                        end_lsn,
                        commit_time_micros,
                        ..
                    } => {
                        wal_end = wal_end.max(end_lsn);
                        if let Some(t) = txn.take()
                            && end_lsn > applied
                        {
                            let commit_ns = pg_micros_to_unix_nanos(commit_time_micros);
                            self.commit(t, plans, &mut batch, end_lsn, commit_ns)
                                .await?;
                        }
                    }
                    ReplicationEvent::KeepAlive {
                        wal_end: w,
                        reply_requested,
                        ..
                    } => {
                        wal_end = wal_end.max(w);
                        // Nothing in flight: everything before the server's position is applied.
                        // A server asking for a reply may be shutting down, waiting for the
                        // stream to confirm all it sent: confirm at once.
                        if txn.is_none()
                            && batch.first_lsn.is_none()
                            && w > applied
                            && (reply_requested
                                || last_idle_checkpoint.elapsed() >= IDLE_CHECKPOINT)
                        {
                            self.save_checkpoint(w, None)?;
                            client.update_applied_lsn(w);
                            applied = w;
                            last_idle_checkpoint = Instant::now();
                        }
                    }
                    _ => {}
                },
            }
            let due = batch
                .since
                .is_some_and(|s| s.elapsed() >= linger || batch.changes >= MAX_BATCH_CHANGES);
            if due {
                applied = self.flush(client, plans, &mut batch, applied).await?;
            }
            self.metrics
                .lag_bytes
                .set(wal_end.as_u64().saturating_sub(applied.as_u64()) as i64);
            let oldest = batch
                .commits
                .first()
                .copied()
                .or(txn.as_ref().map(|t| t.commit_ns));
            self.metrics
                .lag_seconds
                .set(oldest.map_or(0.0, |c| (now_ns() - c).max(0) as f64 / 1e9));
        }
    }

    /// Turns one row message into the open transaction's changes.
    fn receive(
        &self,
        message: Message,
        plans: &mut Plans,
        txn: Option<&mut Txn>,
    ) -> StreamResult<()> {
        let commit_ns = txn.as_ref().map_or_else(now_ns, |t| t.commit_ns);
        match message {
            Message::Relation(rel) => {
                let columns: Vec<Column> = rel
                    .columns
                    .iter()
                    .map(|c| Column {
                        name: c.name.clone(),
                        type_oid: c.type_oid,
                        type_name: format!("type oid {}", c.type_oid),
                    })
                    .collect();
                *plans = self.plans(&columns)?;
            }
            Message::Insert { new, .. } => {
                let txn = txn.ok_or_else(|| {
                    self.change_error("a row change outside a transaction".into())
                })?;
                self.upsert(plans, txn, &new, None, commit_ns, true)?;
            }
            Message::Update { new, old, .. } => {
                let txn = txn.ok_or_else(|| {
                    self.change_error("a row change outside a transaction".into())
                })?;
                self.upsert(plans, txn, &new, old.as_ref(), commit_ns, false)?;
            }
            Message::Delete { old, .. } => {
                let txn = txn.ok_or_else(|| {
                    self.change_error("a row change outside a transaction".into())
                })?;
                match plans {
                    Plans::Views(vp) => {
                        for (i, p) in vp.iter().enumerate() {
                            if p.takes_events() {
                                // An event that happened stays counted.
                                continue;
                            }
                            txn.views[i].push(
                                p.delete(&old, commit_ns)
                                    .map_err(|m| self.change_error(m))?,
                            );
                        }
                    }
                    Plans::Index(ip) => txn.docs.push((
                        ip.delete(&old).map_err(|m| self.change_error(m))?,
                        commit_ns,
                    )),
                }
            }
            Message::Truncate { .. } => {
                return Err(self.change_error(format!(
                    "TRUNCATE of `{}` has no per-row delete events to apply; the stores still hold its rows",
                    self.table
                )));
            }
            Message::Other(_) => {}
        }
        Ok(())
    }

    fn upsert(
        &self,
        plans: &Plans,
        txn: &mut Txn,
        new: &Tuple,
        old: Option<&Tuple>,
        commit_ns: i64,
        insert: bool,
    ) -> StreamResult<()> {
        match plans {
            Plans::Views(vp) => {
                for (i, p) in vp.iter().enumerate() {
                    if p.takes_events() && !insert {
                        // Only an insert is a new event; an update of an event row is not.
                        continue;
                    }
                    txn.views[i].extend(
                        p.upsert(new, old, commit_ns)
                            .map_err(|m| self.change_error(m))?,
                    );
                }
            }
            Plans::Index(ip) => {
                if let Some(old) = old {
                    // The doc id changed: the old document goes.
                    if let (
                        Ok(DocChange::Delete(old_id)),
                        Ok(DocChange::Upsert(d) | DocChange::Refresh(d)),
                    ) = (ip.delete(old), ip.upsert(new, commit_ns))
                        && old_id != d.doc_id
                    {
                        txn.docs.push((DocChange::Delete(old_id), commit_ns));
                    }
                }
                let version = ip.version_ns(new, commit_ns);
                txn.docs.push((
                    ip.upsert(new, commit_ns)
                        .map_err(|m| self.change_error(m))?,
                    version,
                ));
            }
        }
        Ok(())
    }

    /// Moves a committed transaction into the batch: per plain view, the last change of each key
    /// (its intermediate states were never visible outside the transaction); per aggregated view,
    /// every event.
    async fn commit(
        &self,
        txn: Txn,
        plans: &Plans,
        batch: &mut Batch,
        end_lsn: Lsn,
        commit_ns: i64,
    ) -> StreamResult<()> {
        let mut changes = 0;
        if let Plans::Views(vp) = plans {
            for (i, (plan, view_changes)) in vp.iter().zip(txn.views).enumerate() {
                if plan.takes_events() {
                    // Every insert is an event: two clicks in one transaction are two.
                    changes += view_changes.len();
                    for change in view_changes {
                        push_change(&mut batch.views[i], change);
                    }
                    continue;
                }
                let mut last: HashMap<Vec<KeyValue>, usize> = HashMap::new();
                for (j, c) in view_changes.iter().enumerate() {
                    last.insert(c.keys().to_vec(), j);
                }
                for (j, mut change) in view_changes.iter().cloned().enumerate() {
                    if last.get(change.keys()) != Some(&j) {
                        continue;
                    }
                    if let ViewChange::Upsert { keys, features, .. } = &mut change
                        && features.iter().any(Option::is_none)
                    {
                        let earlier = view_changes[..j]
                            .iter()
                            .rev()
                            .find(|c| c.keys() == keys.as_slice());
                        self.fill_unchanged(plan, &batch.views[i], earlier, keys, features)
                            .await?;
                    }
                    push_change(&mut batch.views[i], change);
                    changes += 1;
                }
            }
        }
        for d in txn.docs {
            batch.docs.push(d);
            changes += 1;
        }
        batch.first_lsn.get_or_insert(end_lsn);
        batch.last_lsn = end_lsn;
        batch.last_commit_ns = commit_ns;
        batch.commits.push(commit_ns);
        batch.changes += changes;
        batch.since.get_or_insert_with(Instant::now);
        Ok(())
    }

    /// Values an update left out (unchanged TOAST): the key's latest value in this transaction,
    /// else in the unapplied batch, else online.
    async fn fill_unchanged(
        &self,
        plan: &ViewPlan,
        pending: &ViewRows,
        earlier: Option<&ViewChange>,
        keys: &[KeyValue],
        features: &mut [Option<Value>],
    ) -> StreamResult<()> {
        if let Some(ViewChange::Upsert { features: prev, .. }) = earlier {
            for (f, p) in features.iter_mut().zip(prev) {
                if f.is_none() {
                    f.clone_from(p);
                }
            }
        }
        if let Some(row) = (0..pending.len())
            .rev()
            .find(|&r| pending.keys.iter().zip(keys).all(|(c, k)| &c[r] == k))
        {
            for (j, f) in features.iter_mut().enumerate() {
                if f.is_none() && !pending.deleted[row] {
                    *f = Some(pending.features[j][row].clone());
                }
            }
        }
        if features.iter().any(Option::is_none) {
            let names: Vec<&str> = plan.view.join_keys.iter().map(String::as_str).collect();
            let refs: Vec<&KeyValue> = keys.iter().collect();
            let key = store_key(
                &self.project,
                &plan.view.view.name,
                &encode_entity_key(&names, &refs),
            );
            let stored = self
                .store
                .read(vec![key])
                .await
                .map_err(asof_server::ServerError::from)?;
            if let Some(Some(bytes)) = stored.first()
                && let Ok(row) = RowReader::new(bytes)
            {
                for field in row.flatten() {
                    if let Some(j) = plan
                        .view
                        .view
                        .features
                        .iter()
                        .position(|f| f.name.as_bytes() == field.name)
                        && features[j].is_none()
                    {
                        features[j] = field.value().ok();
                    }
                }
            }
        }
        Ok(())
    }

    /// Writes the batch to both stores, checkpoints its last commit and confirms it to PostgreSQL.
    async fn flush(
        &self,
        client: &ReplicationClient,
        plans: &Plans,
        batch: &mut Batch,
        applied: Lsn,
    ) -> StreamResult<Lsn> {
        let Some(first) = batch.first_lsn else {
            return Ok(applied);
        };
        let changes = batch.changes;
        let name = format!("{}{:016X}", self.log_prefix(), first.as_u64());
        self.write_views(plans, batch, &name).await?;
        if let (Target::Index(ix), Plans::Index(_)) = (&self.target, plans) {
            let docs = std::mem::take(&mut batch.docs);
            if let Some(m) = &self.index_metrics {
                m.behind.set(docs.len() as i64);
            }
            let oldest = docs.iter().map(|(_, v)| *v).min();
            let changes = document_changes(docs);
            let store = self.indexes.clone();
            let spec = ix.clone();
            let report = tokio::task::spawn_blocking(move || store.apply_changes(&spec, &changes))
                .await
                .map_err(|e| self.change_error(e.to_string()))??;
            self.count_embedded(&report);
            if let Some(m) = &self.index_metrics {
                m.behind.set(0);
                m.lag_seconds
                    .set(oldest.map_or(0.0, |v| (now_ns() - v).max(0) as f64 / 1e9));
            }
        }
        let last = batch.last_lsn;
        let last_commit = batch.last_commit_ns;
        self.save_checkpoint(last, Some(last_commit))?;
        client.update_applied_lsn(last);
        let now = now_ns();
        for c in batch.commits.drain(..) {
            self.metrics
                .commit_to_visible
                .observe((now - c).max(0) as f64 / 1e9);
        }
        self.metrics.changes.inc_by(changes as u64);
        *batch = self.empty_batch(plans);
        Ok(last)
    }

    /// Writes the batch's view rows (push log named `name`, then online) and empties them.
    async fn write_views(&self, plans: &Plans, batch: &mut Batch, name: &str) -> StreamResult<()> {
        let Plans::Views(vp) = plans else {
            return Ok(());
        };
        for (plan, rows) in vp.iter().zip(batch.views.iter_mut()) {
            let rows = std::mem::replace(rows, ViewRows::for_view(&plan.view, 0));
            if rows.is_empty() {
                continue;
            }
            let targets = Targets {
                push_log: Some(self.push_log.clone()),
                online: plan.view.view.online,
                log_name: Some(name.to_string()),
            };
            let written = write_rows(
                self.store.as_ref(),
                &self.project,
                &plan.view,
                rows,
                &targets,
            )
            .await?;
            if let (Some(f), Some(newest)) = (&self.on_written, written.newest_event) {
                f(&plan.view.view.name, newest);
            }
        }
        batch.changes = 0;
        Ok(())
    }

    fn save_checkpoint(&self, lsn: Lsn, last_commit_ns: Option<i64>) -> StreamResult<()> {
        let path = self.checkpoint_path();
        let previous = checkpoint::load(&path)?;
        checkpoint::save(
            &path,
            &Checkpoint {
                slot: self.slot.clone(),
                source: self.name.clone(),
                table: self.table.clone(),
                lsn: lsn.to_string(),
                snapshot_done: true,
                updated_at: chrono::Utc::now(),
                last_commit_at: last_commit_ns
                    .map(chrono::DateTime::from_timestamp_nanos)
                    .or(previous.and_then(|p| p.last_commit_at)),
            },
        )
    }
}

/// Appends one change to a view's pending rows.
fn push_change(rows: &mut ViewRows, change: ViewChange) {
    match change {
        ViewChange::Upsert {
            keys,
            event_ts,
            created_ts,
            features,
        } => rows.push(
            keys,
            event_ts,
            created_ts,
            Some(
                features
                    .into_iter()
                    .map(|f| f.unwrap_or(Value::Null))
                    .collect(),
            ),
        ),
        ViewChange::Delete {
            keys,
            event_ts,
            created_ts,
        } => rows.push(keys, event_ts, created_ts, None),
    }
}

/// A batch's document changes, each document's last state only.
fn document_changes(docs: Vec<(DocChange, i64)>) -> DocumentChanges {
    let mut last: HashMap<String, DocChange> = HashMap::new();
    let mut order: Vec<String> = Vec::new();
    for (change, _) in docs {
        let id = match &change {
            DocChange::Upsert(d) | DocChange::Refresh(d) => d.doc_id.clone(),
            DocChange::Delete(id) => id.clone(),
        };
        let merged = match (last.remove(&id), change) {
            // A refresh after new text keeps the text.
            (Some(DocChange::Upsert(prev)), DocChange::Refresh(d)) => DocChange::Upsert(Document {
                text: prev.text,
                ..d
            }),
            (_, change) => change,
        };
        if !order.contains(&id) {
            order.push(id.clone());
        }
        last.insert(id, merged);
    }
    let mut out = DocumentChanges::default();
    for id in order {
        match last.remove(&id) {
            Some(DocChange::Upsert(d)) => out.upserts.push(d),
            Some(DocChange::Refresh(d)) => out.refreshed.push(d),
            Some(DocChange::Delete(id)) => out.deletes.push(id),
            None => {}
        }
    }
    out
}

/// Resolves once `shutdown` turns true (or its sender is gone).
async fn stopped(shutdown: &mut watch::Receiver<bool>) {
    let _ = shutdown.wait_for(|s| *s).await.map(|_| ());
}

/// PostgreSQL's commit times count microseconds from 2000-01-01.
fn pg_micros_to_unix_nanos(micros: i64) -> i64 {
    const PG_EPOCH_OFFSET_SECS: i64 = 946_684_800;
    (micros + PG_EPOCH_OFFSET_SECS * 1_000_000).saturating_mul(1_000)
}

fn now_ns() -> i64 {
    chrono::Utc::now().timestamp_nanos_opt().unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_batch_keeps_each_documents_last_state() {
        let doc = |id: &str, text: &str, v: &str| Document {
            doc_id: id.into(),
            text: text.into(),
            version: v.into(),
            metadata: Default::default(),
        };
        let changes = document_changes(vec![
            (DocChange::Upsert(doc("a", "one", "1")), 0),
            (DocChange::Refresh(doc("a", "", "2")), 0),
            (DocChange::Upsert(doc("b", "x", "1")), 0),
            (DocChange::Delete("b".into()), 0),
            (DocChange::Refresh(doc("c", "", "3")), 0),
        ]);
        assert_eq!(changes.upserts, vec![doc("a", "one", "2")]);
        assert_eq!(changes.deletes, vec!["b".to_string()]);
        assert_eq!(changes.refreshed, vec![doc("c", "", "3")]);
    }

    #[test]
    fn commit_times_convert_from_the_postgres_epoch() {
        assert_eq!(pg_micros_to_unix_nanos(0), 946_684_800 * 1_000_000_000);
    }
}
