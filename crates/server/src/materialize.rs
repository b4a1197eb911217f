//! Materialization: the latest row per entity key of each online view, picked by the offline store's
//! point-in-time join (the same code as training sets), written to the online store. Watermarks
//! move in the registry only after the rows are written, so an interrupted run loses nothing and a
//! re-run writes nothing new (rows not newer than the stored ones are skipped by the store).

use std::path::Path;

use asof_core::keys::{encode_entity_key, store_key};
use asof_core::registry::Materialization;
use asof_core::value::StoredRow;
use asof_core::{FeatureRequest, Registry, pit, time};
use asof_offline::OfflineStore;
use asof_online::OnlineStore;
use datafusion::arrow::array::{Array, AsArray, RecordBatch};
use datafusion::arrow::datatypes::Int64Type;
use serde::Serialize;

use crate::convert::{key_at, value_at};
use crate::error::{ServerError, ServerResult};

/// What one view's materialization did.
#[derive(Debug, Clone, Serialize)]
pub struct ViewReport {
    pub view: String,
    pub start: String,
    pub end: String,
    /// Keys with a row in the window (one row each); for an aggregated view, events read.
    pub keys: usize,
    /// An aggregated view: `keys` counts events, and `written` those its logs did not hold.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub aggregated: bool,
    /// Rows written; the rest were not newer than what the store held.
    pub written: usize,
    pub feature_values: usize,
}

/// Rows encoded per store write.
const CHUNK: usize = 20_000;

/// The views to materialize: the named ones (which must be online), or all online views.
pub fn select_views(registry: &Registry, names: &[String]) -> ServerResult<Vec<String>> {
    let catalog = registry.catalog();
    if names.is_empty() {
        return Ok(catalog
            .feature_views
            .values()
            .filter(|v| v.online)
            .map(|v| v.name.clone())
            .collect());
    }
    for n in names {
        match catalog.feature_views.get(n) {
            None => {
                let hint = asof_core::error::did_you_mean(
                    n,
                    catalog.feature_views.keys().map(String::as_str),
                )
                .map(|h| format!("; {h}"))
                .unwrap_or_default();
                return Err(ServerError::InvalidArgument(format!(
                    "unknown feature view `{n}`{hint}"
                )));
            }
            Some(v) if !v.online => {
                return Err(ServerError::InvalidArgument(format!(
                    "feature view `{n}` is not online (`online: false`)"
                )));
            }
            Some(_) => {}
        }
    }
    Ok(names.to_vec())
}

/// The window of `materialize-incremental`: from the view's watermark, or (first time) from
/// `end - ttl`, or `end - 52 weeks` for views without a TTL (Feast's defaults).
pub fn incremental_start(registry: &Registry, view: &str, end: i64) -> i64 {
    if let Some(m) = registry.materialization.get(view) {
        return time::to_nanos(m.watermark);
    }
    let ttl = registry
        .feature_views
        .get(view)
        .map(|v| v.spec.ttl)
        .unwrap_or_default();
    pit::oldest_useful(end, ttl).unwrap_or(end - 52 * 7 * 86_400 * 1_000_000_000)
}

/// Encodes a batch of latest rows. A key the encoding cannot hold fails the run, naming the view
/// and key: no row is dropped silently. (Rows with a null key never get here: the scan drops them,
/// as a null key never matches.)
fn encode(
    project: &str,
    view: &asof_core::ResolvedView,
    batch: &RecordBatch,
    k: usize,
    has_created: bool,
) -> ServerResult<Vec<(Vec<u8>, Vec<u8>)>> {
    let ts = batch.column(k).as_primitive::<Int64Type>();
    let created = has_created.then(|| batch.column(k + 1).as_primitive::<Int64Type>());
    let first_feature = k + 1 + usize::from(has_created);
    let deleted = batch
        .schema()
        .index_of(asof_offline::source::FEATURE_DELETED)
        .ok()
        .map(|i| batch.column(i).as_boolean().clone());
    let names: Vec<&str> = view.join_keys.iter().map(String::as_str).collect();
    let mut out = Vec::with_capacity(batch.num_rows());
    for row in 0..batch.num_rows() {
        let Some(keys) = row_keys(view, batch, row)? else {
            continue;
        };
        let key_refs: Vec<_> = keys.iter().collect();
        let entity = encode_entity_key(&names, &key_refs);
        let event_ts = ts.value(row);
        let created_ts = created.and_then(|c| c.is_valid(row).then(|| c.value(row)));
        if deleted
            .as_ref()
            .is_some_and(|d| !pit::has_value(d.value(row)))
        {
            out.push((
                store_key(project, &view.view.name, &entity),
                asof_core::value::encode_delete(event_ts, created_ts),
            ));
            continue;
        }
        let stored = StoredRow {
            event_ts,
            created_ts,
            features: view
                .features
                .iter()
                .enumerate()
                .map(|(j, f)| {
                    (
                        f.name.clone(),
                        value_at(batch.column(first_feature + j), row),
                    )
                })
                .collect(),
        };
        out.push((
            store_key(project, &view.view.name, &entity),
            stored.encode(),
        ));
    }
    Ok(out)
}

/// Materializes `views` over `[start, end]` (UTC ns), then records the watermarks in the registry
/// at `registry_path`. `progress` is told rows written as they go.
pub async fn materialize(
    repo_dir: &Path,
    registry_path: &Path,
    store: &dyn OnlineStore,
    views: &[String],
    window: impl Fn(&Registry, &str) -> (i64, i64),
    progress: &(dyn Fn(&str, usize) + Sync),
) -> ServerResult<Vec<ViewReport>> {
    let registry = Registry::load_required(registry_path)?;
    let catalog = registry.catalog();
    let config = asof_core::Repo::load_config(repo_dir)?;
    let offline =
        OfflineStore::new(repo_dir).with_push_log(config.offline_store.push_log_root(repo_dir));
    let mut reports = Vec::new();
    for name in views {
        let (start, end) = window(&registry, name);
        if start > end {
            return Err(ServerError::InvalidArgument(format!(
                "view `{name}`: start {} is after end {}",
                time::format_nanos(start),
                time::format_nanos(end)
            )));
        }
        let request = FeatureRequest::resolve(&catalog, std::slice::from_ref(name), false)?;
        let view = &request.views[0];
        if view.view.is_aggregated() {
            let (report, newest) = materialize_events(
                &offline,
                store,
                &registry.project,
                view,
                start,
                end,
                progress,
            )
            .await?;
            record_watermark(registry_path, name, end, newest)?;
            reports.push(report);
            continue;
        }
        let latest = offline.latest_rows(view, start, end).await?;
        let mut report = ViewReport {
            view: name.clone(),
            start: time::format_nanos(start),
            end: time::format_nanos(end),
            keys: 0,
            written: 0,
            feature_values: 0,
            aggregated: false,
        };
        let mut newest: Option<i64> = None;
        let mut pending: Vec<(Vec<u8>, Vec<u8>)> = Vec::new();
        for batch in &latest.batches {
            let ts = batch.column(latest.key_count).as_primitive::<Int64Type>();
            if let Some(m) = datafusion::arrow::compute::max(ts) {
                newest = Some(newest.map_or(m, |n| n.max(m)));
            }
            pending.extend(encode(
                &registry.project,
                view,
                batch,
                latest.key_count,
                latest.has_created,
            )?);
            while pending.len() >= CHUNK {
                let rest = pending.split_off(CHUNK);
                let chunk = std::mem::replace(&mut pending, rest);
                report.keys += chunk.len();
                report.written += store.write(chunk).await?;
                progress(name, report.keys);
            }
        }
        report.keys += pending.len();
        report.written += store.write(pending).await?;
        progress(name, report.keys);
        report.feature_values = report.keys * view.features.len();
        // Only now, with the rows in the store, does the watermark move.
        record_watermark(registry_path, name, end, newest)?;
        reports.push(report);
    }
    Ok(reports)
}

/// Moves a view's watermark to `end`. The registry is read again under its lock: an `apply` made
/// while the view was written stays applied.
fn record_watermark(
    registry_path: &Path,
    name: &str,
    end: i64,
    newest: Option<i64>,
) -> ServerResult<()> {
    let end_at = time::from_nanos(end);
    let newest = newest.map(time::from_nanos);
    Registry::update(registry_path, |current| {
        if !current.feature_views.contains_key(name) {
            tracing::warn!(view = %name, "the view was deleted while it was materialized; its watermark is not recorded");
            return Ok((false, ()));
        }
        let prev = current.materialization.get(name);
        let merged = Materialization {
            watermark: prev.map_or(end_at, |m| m.watermark.max(end_at)),
            newest_event_timestamp: newest
                .into_iter()
                .chain(prev.and_then(|m| m.newest_event_timestamp))
                .max(),
            updated_at: chrono::Utc::now(),
        };
        current.materialization.insert(name.to_string(), merged);
        Ok((true, ()))
    })?;
    Ok(())
}

/// An aggregated view's materialization: its events in `[start - longest window, end]` go to the
/// entities' online logs, so a read as of any time in `[start, end]` finds its whole window.
/// Events already there are the same members again, so a re-run adds nothing. Returns the
/// report and the newest event time written.
async fn materialize_events(
    offline: &OfflineStore,
    store: &dyn OnlineStore,
    project: &str,
    view: &asof_core::ResolvedView,
    start: i64,
    end: i64,
    progress: &(dyn Fn(&str, usize) + Sync),
) -> ServerResult<(ViewReport, Option<i64>)> {
    let longest = view.view.longest_window().unwrap_or(i64::MAX);
    let from = asof_core::window::oldest_in_window(start, longest);
    let mut events = offline.events(view, from, end).await?;
    let mut report = ViewReport {
        view: view.view.name.clone(),
        start: time::format_nanos(start),
        end: time::format_nanos(end),
        keys: 0,
        written: 0,
        feature_values: 0,
        aggregated: true,
    };
    let mut newest = None;
    let targets = crate::ingest::Targets {
        push_log: None,
        online: true,
        log_name: None,
    };
    let mut ordinals = crate::ingest::Ordinals::default();
    // Streamed from the scan, written [`CHUNK`] events at a time.
    let mut pending = crate::ingest::ViewRows::for_view(view, CHUNK);
    loop {
        let batch = events.next_batch().await?;
        if let Some(batch) = &batch {
            pending.append(event_rows(
                view,
                batch,
                events.key_count,
                events.has_created,
            )?);
        }
        if pending.len() >= CHUNK || (batch.is_none() && !pending.is_empty()) {
            let rows =
                std::mem::replace(&mut pending, crate::ingest::ViewRows::for_view(view, CHUNK));
            report.keys += rows.len();
            let written =
                crate::ingest::write_events(store, project, view, rows, &targets, &mut ordinals)
                    .await?;
            report.written += written.online;
            newest = newest.max(written.newest_event);
            progress(&view.view.name, report.keys);
        }
        if batch.is_none() {
            break;
        }
    }
    report.feature_values = report.keys * view.view.event_columns().len();
    Ok((report, newest))
}

/// The join keys of a scanned row, `None` when one is null (it never matches). A key the
/// encoding cannot hold fails the run, naming the view and key: no row is dropped silently.
fn row_keys(
    view: &asof_core::ResolvedView,
    batch: &RecordBatch,
    row: usize,
) -> ServerResult<Option<Vec<asof_core::keys::KeyValue>>> {
    let mut keys = Vec::with_capacity(view.join_keys.len());
    for (c, name) in view.join_keys.iter().enumerate() {
        match key_at(batch.column(c), row) {
            Ok(Some(key)) => keys.push(key),
            Ok(None) => return Ok(None),
            Err(reason) => {
                return Err(ServerError::InvalidArgument(format!(
                    "view `{}`: join key `{name}` of a source row: {reason}; nothing after this batch was written",
                    view.view.name
                )));
            }
        }
    }
    Ok(Some(keys))
}

/// A batch of scanned events as rows for the write path.
fn event_rows(
    view: &asof_core::ResolvedView,
    batch: &RecordBatch,
    k: usize,
    has_created: bool,
) -> ServerResult<crate::ingest::ViewRows> {
    let ts = batch.column(k).as_primitive::<Int64Type>();
    let created = has_created.then(|| batch.column(k + 1).as_primitive::<Int64Type>());
    let first = k + 1 + usize::from(has_created);
    let columns = view.view.event_columns();
    let mut rows = crate::ingest::ViewRows::for_view(view, batch.num_rows());
    for row in 0..batch.num_rows() {
        let Some(keys) = row_keys(view, batch, row)? else {
            continue;
        };
        let values = (0..columns.len())
            .map(|j| value_at(batch.column(first + j), row))
            .collect();
        let created_ts = created.and_then(|c| c.is_valid(row).then(|| c.value(row)));
        rows.push(keys, ts.value(row), created_ts, Some(values));
    }
    Ok(rows)
}
