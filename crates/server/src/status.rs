//! How fresh a repo's views and indexes are, for `asof status`: computed from the stores as they
//! are now (a full scan of each view's online rows and of each index's live points), so it is a
//! command for people and cron jobs, not for serving paths.

use std::collections::HashMap;
use std::path::Path;

use asof_core::Registry;
use asof_core::keys::{view_events_prefix, view_keys_prefix};
use asof_core::value::{HEADER_LEN, RowReader};
use asof_online::OnlineStore;
use asof_retrieval::IndexStore;
use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::error::ServerResult;

#[derive(Debug, Clone, Serialize)]
pub struct ViewStatus {
    pub view: String,
    pub online: bool,
    /// Entities with a value online.
    pub rows: usize,
    /// Entities whose latest online event is a delete.
    pub deleted: usize,
    /// The newest event time online (values and deletes).
    pub newest_event: Option<DateTime<Utc>>,
    /// Materialized up to here.
    pub watermark: Option<DateTime<Utc>>,
    /// Now minus the newest event.
    pub lag_seconds: Option<f64>,
    pub max_lag_seconds: Option<u64>,
    /// Past `freshness.max_lag` (or nothing online at all, when a bound is declared).
    pub stale: bool,
    /// An aggregated view's event logs: their size in the store, in bytes (`rows` logs).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub event_log_bytes: Option<u64>,
}

#[derive(Debug, Clone, Serialize)]
pub struct IndexStatus {
    pub index: String,
    pub live_version: Option<String>,
    pub documents: usize,
    pub chunks: usize,
    /// The newest document version in the source (file sources).
    pub newest_source_update: Option<String>,
    /// When the newest live chunk was indexed.
    pub newest_indexed: Option<DateTime<Utc>>,
    /// Documents whose source version differs from the indexed one (file sources; a stream's
    /// lag is in its own status).
    pub documents_behind: Option<usize>,
    /// How long the oldest document behind has waited (0 when none is behind).
    pub lag_seconds: Option<f64>,
    pub max_lag_seconds: Option<u64>,
    pub stale: bool,
}

fn seconds(d: chrono::TimeDelta) -> f64 {
    d.as_seconds_f64().max(0.0)
}

/// Every view's online rows, newest event and lag.
pub async fn views(
    registry: &Registry,
    store: &dyn OnlineStore,
    now: DateTime<Utc>,
) -> ServerResult<Vec<ViewStatus>> {
    let mut out = Vec::new();
    for (name, record) in &registry.feature_views {
        let spec = &record.spec;
        let (mut rows, mut deleted, mut newest) = (0, 0, None::<i64>);
        let mut event_log_bytes = None;
        if spec.online {
            // An aggregated view's rows are its entities' event logs, each headed by its newest
            // event.
            let heads = if spec.is_aggregated() {
                let (heads, bytes) = store
                    .event_heads(view_events_prefix(&registry.project, name), HEADER_LEN + 2)
                    .await?;
                event_log_bytes = Some(bytes);
                heads
            } else {
                store
                    .heads(view_keys_prefix(&registry.project, name), HEADER_LEN + 2)
                    .await?
            };
            for head in heads {
                let Ok(row) = RowReader::new(&head) else {
                    continue;
                };
                if row.deleted {
                    deleted += 1;
                } else {
                    rows += 1;
                }
                newest = Some(newest.map_or(row.event_ts, |n| n.max(row.event_ts)));
            }
        }
        let newest_event = newest.map(DateTime::from_timestamp_nanos);
        let lag_seconds = newest_event.map(|n| seconds(now - n));
        let max_lag = spec.freshness.as_ref().map(|f| f.max_lag.as_seconds());
        let stale = match (max_lag, lag_seconds) {
            (Some(max), Some(lag)) => lag > max as f64,
            (Some(_), None) => true,
            (None, _) => false,
        };
        out.push(ViewStatus {
            view: name.clone(),
            online: spec.online,
            rows,
            deleted,
            newest_event,
            watermark: registry.materialization.get(name).map(|m| m.watermark),
            lag_seconds,
            max_lag_seconds: max_lag,
            stale,
            event_log_bytes,
        });
    }
    Ok(out)
}

/// Every index's live version against its source. `stream_lag` gives the lag of indexes fed by
/// a stream (by index name), which the source files cannot tell.
pub fn indexes(
    repo_dir: &Path,
    registry: &Registry,
    store: &IndexStore,
    stream_lag: &HashMap<String, f64>,
    now: DateTime<Utc>,
) -> ServerResult<Vec<IndexStatus>> {
    let mut out = Vec::new();
    for (name, record) in &registry.document_indexes {
        let spec = &record.spec;
        let manifest = store.index_dir(name).load_manifest()?;
        let live = manifest
            .as_ref()
            .and_then(|m| m.live.as_ref().and_then(|l| m.versions.get(l)));
        let points = match live {
            Some(meta) if meta.generation > 0 => asof_retrieval::layout::read_points(
                &store
                    .index_dir(name)
                    .generation_dir(&meta.id, meta.generation),
            )?,
            _ => Vec::new(),
        };
        let newest_indexed = points.iter().map(|p| p.indexed_at).max();
        let mut indexed: HashMap<&str, &str> = HashMap::new();
        for p in &points {
            indexed.insert(p.doc_id.as_str(), p.doc_version.as_str());
        }
        let (mut newest_source_update, mut behind) = (None, None);
        let lag;
        if spec.source.kind.is_file() {
            let docs = asof_retrieval::document::read_documents(repo_dir, &spec.source)?;
            newest_source_update = docs.iter().map(|d| d.version.clone()).max();
            let waiting: Vec<&asof_retrieval::document::Document> = docs
                .iter()
                .filter(|d| indexed.get(d.doc_id.as_str()) != Some(&d.version.as_str()))
                // An empty document has no chunks, so nothing to be behind on.
                .filter(|d| !d.text.trim().is_empty())
                .collect();
            behind = Some(waiting.len());
            lag = Some(
                waiting
                    .iter()
                    .filter_map(|d| DateTime::parse_from_rfc3339(&d.version).ok())
                    .map(|v| seconds(now - v.to_utc()))
                    .fold(0.0, f64::max),
            );
        } else {
            lag = stream_lag.get(name).copied();
        }
        let max_lag = spec.freshness.as_ref().map(|f| f.max_lag.as_seconds());
        let stale = match (max_lag, lag) {
            (Some(max), Some(l)) => l > max as f64 || live.is_none(),
            (Some(_), None) => true,
            (None, _) => false,
        };
        out.push(IndexStatus {
            index: name.clone(),
            live_version: live.map(|m| m.id.clone()),
            documents: live.map_or(0, |m| m.documents),
            chunks: points.len(),
            newest_source_update,
            newest_indexed,
            documents_behind: behind,
            lag_seconds: lag,
            max_lag_seconds: max_lag,
            stale,
        });
    }
    Ok(out)
}
