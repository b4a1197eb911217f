//! The one write path for changes to a view: rows (and delete events) go to the offline push log
//! and to the online store, in that order. `PushFeatures` and the PostgreSQL stream both call
//! [`write_rows`], so what training reads and what serving answers come from the same events.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;

use asof_core::ResolvedView;
use asof_core::keys::{KeyValue, encode_entity_key, events_key, store_key};
use asof_core::value::{StoredEvent, StoredRow, Value, encode_delete};
use asof_online::OnlineStore;
use datafusion::arrow::array::ArrayRef;

use crate::error::{ServerError, ServerResult};

/// One view's changes, column by column: one entry per row in each.
#[derive(Debug, Default, Clone)]
pub struct ViewRows {
    /// Per join key (the view's order): the key's values.
    pub keys: Vec<Vec<KeyValue>>,
    pub event_ts: Vec<i64>,
    pub created_ts: Vec<Option<i64>>,
    /// Per event column (`FeatureView::event_columns`: a plain view's features in order, an
    /// aggregated view's input columns): its values; a delete event's are null.
    pub features: Vec<Vec<Value>>,
    /// Which rows are delete events.
    pub deleted: Vec<bool>,
}

impl ViewRows {
    /// Empty columns shaped for `view`, with room for `rows`.
    pub fn for_view(view: &ResolvedView, rows: usize) -> Self {
        ViewRows {
            keys: vec![Vec::with_capacity(rows); view.join_keys.len()],
            event_ts: Vec::with_capacity(rows),
            created_ts: Vec::with_capacity(rows),
            features: vec![Vec::with_capacity(rows); view.view.event_columns().len()],
            deleted: Vec::with_capacity(rows),
        }
    }

    pub fn len(&self) -> usize {
        self.event_ts.len()
    }

    /// Moves `other`'s rows to the end of these.
    pub fn append(&mut self, other: ViewRows) {
        for (c, o) in self.keys.iter_mut().zip(other.keys) {
            c.extend(o);
        }
        for (c, o) in self.features.iter_mut().zip(other.features) {
            c.extend(o);
        }
        self.event_ts.extend(other.event_ts);
        self.created_ts.extend(other.created_ts);
        self.deleted.extend(other.deleted);
    }

    /// Keeps the value rows only.
    fn drop_deletes(&mut self) {
        if !self.deleted.iter().any(|d| *d) {
            return;
        }
        let keep: Vec<bool> = self.deleted.iter().map(|d| !d).collect();
        fn retain<T>(column: &mut Vec<T>, keep: &[bool]) {
            let mut i = 0;
            column.retain(|_| {
                i += 1;
                keep[i - 1]
            });
        }
        for c in &mut self.keys {
            retain(c, &keep);
        }
        for c in &mut self.features {
            retain(c, &keep);
        }
        retain(&mut self.event_ts, &keep);
        retain(&mut self.created_ts, &keep);
        retain(&mut self.deleted, &keep);
    }

    pub fn is_empty(&self) -> bool {
        self.event_ts.is_empty()
    }

    /// Appends a value row (`features` in the view's order) or, with `features: None`, a delete
    /// event.
    pub fn push(
        &mut self,
        keys: Vec<KeyValue>,
        event_ts: i64,
        created_ts: Option<i64>,
        features: Option<Vec<Value>>,
    ) {
        for (column, k) in self.keys.iter_mut().zip(keys) {
            column.push(k);
        }
        self.event_ts.push(event_ts);
        self.created_ts.push(created_ts);
        self.deleted.push(features.is_none());
        match features {
            Some(values) => {
                for (column, v) in self.features.iter_mut().zip(values) {
                    column.push(v);
                }
            }
            None => {
                for column in &mut self.features {
                    column.push(Value::Null);
                }
            }
        }
    }
}

/// Where a write goes.
#[derive(Debug, Clone)]
pub struct Targets {
    /// The push log's root folder, when the write goes offline.
    pub push_log: Option<PathBuf>,
    pub online: bool,
    /// The push log file's name (per event day), for writers that replay: see
    /// `asof_offline::push_log::append_named`. `None`: a unique name.
    pub log_name: Option<String>,
}

/// What a write did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Written {
    /// Rows the online store took; the rest were not newer than what it holds.
    pub online: usize,
    pub skipped: usize,
    /// Rows appended to the push log, durably.
    pub logged: usize,
    /// The newest event time among the rows (for freshness).
    pub newest_event: Option<i64>,
}

/// Writes `rows` of `view` (of `project`) where `targets` say: the push log first, synced, then the
/// online store, whose never-regress rule makes a retried or replayed write harmless. Returns once
/// both are durable.
pub async fn write_rows(
    store: &dyn OnlineStore,
    project: &str,
    view: &ResolvedView,
    rows: ViewRows,
    targets: &Targets,
) -> ServerResult<Written> {
    if view.view.is_aggregated() {
        return write_events(
            store,
            project,
            view,
            rows,
            targets,
            &mut Ordinals::default(),
        )
        .await;
    }
    let n = rows.len();
    if n == 0 {
        return Ok(Written::default());
    }
    let online_rows = if targets.online {
        online_rows(project, view, &rows)
    } else {
        Vec::new()
    };
    let mut written = Written {
        newest_event: rows.event_ts.iter().copied().max(),
        ..Written::default()
    };
    if let Some(root) = &targets.push_log {
        let batch = log_batch(view, rows)?;
        append_log(root, view, batch, targets.log_name.clone()).await?;
        written.logged = n;
    }
    if targets.online {
        written.online = store.write(online_rows).await?;
        written.skipped = n - written.online;
    }
    Ok(written)
}

/// How many events of one write had each `(entity key, ts, created)` so far: equal events of one
/// write count once each, told apart by their ordinal (see `asof_core::value::StoredEvent`), while
/// the same event written again (a replay) is the same member. A write split into batches (a
/// materialization) shares one across its batches.
#[derive(Debug, Default)]
pub struct Ordinals(HashMap<(Vec<u8>, i64, Option<i64>), u32>);

/// [`write_rows`] for an aggregated view: its rows are events, appended to the push log and to
/// each entity's online event log. A delete is no event of a window (what happened stays
/// counted), so delete rows are dropped here, on every path alike.
pub async fn write_events(
    store: &dyn OnlineStore,
    project: &str,
    view: &ResolvedView,
    mut rows: ViewRows,
    targets: &Targets,
    seen: &mut Ordinals,
) -> ServerResult<Written> {
    rows.drop_deletes();
    let n = rows.len();
    if n == 0 {
        return Ok(Written::default());
    }
    let names: Vec<&str> = view.join_keys.iter().map(String::as_str).collect();
    let columns = view.view.event_columns();
    let longest = view.view.longest_window().unwrap_or(i64::MAX);
    let mut ordinals = Vec::with_capacity(n);
    let mut logs: HashMap<Vec<u8>, Vec<Vec<u8>>> = HashMap::new();
    for row in 0..n {
        let keys: Vec<&KeyValue> = rows.keys.iter().map(|c| &c[row]).collect();
        let entity = encode_entity_key(&names, &keys);
        let (ts, created) = (rows.event_ts[row], rows.created_ts[row]);
        let ordinal = seen.0.entry((entity.clone(), ts, created)).or_insert(0);
        ordinals.push(*ordinal);
        let member = StoredEvent {
            row: StoredRow {
                event_ts: ts,
                created_ts: created,
                features: columns
                    .iter()
                    .zip(&rows.features)
                    .map(|(f, column)| (f.name.clone(), column[row].clone()))
                    .collect(),
            },
            ordinal: *ordinal,
        };
        *ordinal += 1;
        if targets.online {
            logs.entry(events_key(project, &view.view.name, &entity))
                .or_default()
                .push(member.encode());
        }
    }
    let mut written = Written {
        newest_event: rows.event_ts.iter().copied().max(),
        ..Written::default()
    };
    if let Some(root) = &targets.push_log {
        let batch = log_batch(view, rows)?;
        let batch = with_ordinals(batch, ordinals)?;
        append_log(root, view, batch, targets.log_name.clone()).await?;
        written.logged = n;
    }
    if targets.online {
        written.online = store
            .append_events(logs.into_iter().collect(), longest)
            .await?;
        written.skipped = n - written.online;
    }
    Ok(written)
}

fn with_ordinals(
    batch: datafusion::arrow::array::RecordBatch,
    ordinals: Vec<u32>,
) -> ServerResult<datafusion::arrow::array::RecordBatch> {
    use datafusion::arrow::array::UInt32Array;
    use datafusion::arrow::datatypes::{DataType, Field, Schema};
    let mut fields: Vec<Field> = batch
        .schema()
        .fields()
        .iter()
        .map(|f| f.as_ref().clone())
        .collect();
    fields.push(Field::new(
        asof_core::window::ORDINAL_COLUMN,
        DataType::UInt32,
        false,
    ));
    let mut columns = batch.columns().to_vec();
    columns.push(Arc::new(UInt32Array::from(ordinals)));
    datafusion::arrow::array::RecordBatch::try_new(Arc::new(Schema::new(fields)), columns)
        .map_err(|e| ServerError::Offline(e.into()))
}

/// Appends a batch to the view's push log on the blocking pool, durably.
async fn append_log(
    root: &std::path::Path,
    view: &ResolvedView,
    batch: datafusion::arrow::array::RecordBatch,
    name: Option<String>,
) -> ServerResult<()> {
    let root = root.to_path_buf();
    let resolved = view.clone();
    tokio::task::spawn_blocking(move || {
        asof_offline::push_log::append_named(&root, &resolved, &batch, name.as_deref())
    })
    .await
    .map_err(|e| ServerError::Transport(e.to_string()))??;
    Ok(())
}

/// The rows as the online store keeps them: key bytes and the stored row or delete event.
fn online_rows(project: &str, view: &ResolvedView, rows: &ViewRows) -> Vec<(Vec<u8>, Vec<u8>)> {
    let names: Vec<&str> = view.join_keys.iter().map(String::as_str).collect();
    let mut out = Vec::with_capacity(rows.len());
    for row in 0..rows.len() {
        let keys: Vec<&KeyValue> = rows.keys.iter().map(|c| &c[row]).collect();
        let key = store_key(project, &view.view.name, &encode_entity_key(&names, &keys));
        let (event_ts, created_ts) = (rows.event_ts[row], rows.created_ts[row]);
        let value = if rows.deleted[row] {
            encode_delete(event_ts, created_ts)
        } else {
            StoredRow {
                event_ts,
                created_ts,
                features: view
                    .view
                    .features
                    .iter()
                    .zip(&rows.features)
                    .map(|(f, column)| (f.name.clone(), column[row].clone()))
                    .collect(),
            }
            .encode()
        };
        out.push((key, value));
    }
    out
}

/// The rows as a push log batch, in the source's column names.
fn log_batch(
    view: &ResolvedView,
    rows: ViewRows,
) -> ServerResult<datafusion::arrow::array::RecordBatch> {
    let mut keys = Vec::with_capacity(rows.keys.len());
    for (name, column) in view.join_keys.iter().zip(rows.keys) {
        keys.push((name.clone(), key_array(name, column)?));
    }
    let mut features = Vec::with_capacity(rows.features.len());
    for (f, column) in view.view.event_columns().iter().zip(rows.features) {
        features.push((
            f.name.clone(),
            asof_offline::types::values_to_array(&f.dtype, &column)?,
        ));
    }
    let created = view
        .source
        .created_timestamp_field
        .is_some()
        .then_some(rows.created_ts);
    Ok(asof_offline::push_log::batch(
        view,
        keys,
        rows.event_ts,
        created,
        features,
        rows.deleted,
    )?)
}

/// A key column as an Arrow array: integers as int64, strings, or bytes, one type for all.
fn key_array(name: &str, values: Vec<KeyValue>) -> ServerResult<ArrayRef> {
    use datafusion::arrow::array::{BinaryArray, Int64Array, StringArray};
    let mixed = || {
        ServerError::InvalidArgument(format!(
            "join key column `{name}` mixes value types; send one type for every row"
        ))
    };
    Ok(match values.first() {
        None | Some(KeyValue::Int(_)) => Arc::new(
            values
                .iter()
                .map(|v| match v {
                    KeyValue::Int(i) => Ok(*i),
                    _ => Err(mixed()),
                })
                .collect::<ServerResult<Int64Array>>()?,
        ),
        Some(KeyValue::Str(_)) => Arc::new(
            values
                .iter()
                .map(|v| match v {
                    KeyValue::Str(s) => Ok(Some(s.as_str())),
                    _ => Err(mixed()),
                })
                .collect::<ServerResult<StringArray>>()?,
        ),
        Some(KeyValue::Bytes(_)) => Arc::new(
            values
                .iter()
                .map(|v| match v {
                    KeyValue::Bytes(b) => Ok(Some(b.as_slice())),
                    _ => Err(mixed()),
                })
                .collect::<ServerResult<BinaryArray>>()?,
        ),
    })
}
