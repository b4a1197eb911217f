//! A stream's live numbers: how long a commit takes to become visible, how far behind the database
//! the stream is, and how far behind their source rows the indexes are. Registered into the
//! server's Prometheus registry when the stream runs inside `asof serve --stream`.

use std::sync::Arc;
use std::sync::atomic::AtomicU64;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct SourceLabel {
    source: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct IndexLabel {
    index: String,
}

type FloatGauge = Gauge<f64, AtomicU64>;

/// Called with (view, newest event time in ns) after rows of a view become visible online.
pub type OnWritten = Arc<dyn Fn(&str, i64) + Send + Sync>;

/// The streams' metrics. Cheap to clone (shared state).
#[derive(Clone)]
pub struct StreamMetrics {
    commit_to_visible: Family<SourceLabel, Histogram>,
    lag_bytes: Family<SourceLabel, Gauge>,
    lag_seconds: Family<SourceLabel, FloatGauge>,
    changes: Family<SourceLabel, Counter>,
    up: Family<SourceLabel, Gauge>,
    index_lag_seconds: Family<IndexLabel, FloatGauge>,
    index_behind: Family<IndexLabel, Gauge>,
    index_embedded: Family<IndexLabel, Counter>,
    pub(crate) on_written: Option<OnWritten>,
}

impl std::fmt::Debug for StreamMetrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StreamMetrics").finish_non_exhaustive()
    }
}

impl Default for StreamMetrics {
    fn default() -> Self {
        StreamMetrics {
            commit_to_visible: Family::new_with_constructor(|| {
                Histogram::new([
                    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
                ])
            }),
            lag_bytes: Family::default(),
            lag_seconds: Family::default(),
            changes: Family::default(),
            up: Family::default(),
            index_lag_seconds: Family::default(),
            index_behind: Family::default(),
            index_embedded: Family::default(),
            on_written: None,
        }
    }
}

impl StreamMetrics {
    /// Also tell `on_written` about each view's newest visible event.
    pub fn with_on_written(mut self, on_written: OnWritten) -> Self {
        self.on_written = Some(on_written);
        self
    }

    /// Adds the metrics to `registry` (prefix included by the registry).
    pub fn register(&self, registry: &mut Registry) {
        registry.register(
            "stream_commit_to_visible_seconds",
            "From a PostgreSQL commit to its changes being readable online, per source",
            self.commit_to_visible.clone(),
        );
        registry.register(
            "stream_lag_bytes",
            "WAL the server has written past what the stream has applied, per source",
            self.lag_bytes.clone(),
        );
        registry.register(
            "stream_lag_seconds",
            "Age of the oldest commit received but not yet applied (0 when caught up), per source",
            self.lag_seconds.clone(),
        );
        registry.register(
            "stream_changes_applied",
            "Row changes applied to both stores, per source",
            self.changes.clone(),
        );
        registry.register(
            "stream_up",
            "1 while the stream is connected and applying, per source",
            self.up.clone(),
        );
        registry.register(
            "index_source_lag_seconds",
            "Age of the oldest document change received but not yet indexed, per index",
            self.index_lag_seconds.clone(),
        );
        registry.register(
            "index_documents_behind",
            "Documents whose source version is newer than the indexed one, per index",
            self.index_behind.clone(),
        );
        registry.register(
            "index_texts_embedded",
            "Chunk texts sent to the embedder by the stream (cache misses), per index",
            self.index_embedded.clone(),
        );
    }

    pub(crate) fn source(&self, source: &str) -> SourceMetrics {
        let l = SourceLabel {
            source: source.to_string(),
        };
        SourceMetrics {
            commit_to_visible: self.commit_to_visible.get_or_create(&l).clone(),
            lag_bytes: self.lag_bytes.get_or_create(&l).clone(),
            lag_seconds: self.lag_seconds.get_or_create(&l).clone(),
            changes: self.changes.get_or_create(&l).clone(),
            up: self.up.get_or_create(&l).clone(),
        }
    }

    pub(crate) fn index(&self, index: &str) -> IndexMetrics {
        let l = IndexLabel {
            index: index.to_string(),
        };
        IndexMetrics {
            lag_seconds: self.index_lag_seconds.get_or_create(&l).clone(),
            behind: self.index_behind.get_or_create(&l).clone(),
            embedded: self.index_embedded.get_or_create(&l).clone(),
        }
    }
}

/// One source's handles.
#[derive(Clone, Debug)]
pub(crate) struct SourceMetrics {
    pub commit_to_visible: Histogram,
    pub lag_bytes: Gauge,
    pub lag_seconds: FloatGauge,
    pub changes: Counter,
    pub up: Gauge,
}

#[derive(Clone, Debug)]
pub(crate) struct IndexMetrics {
    pub lag_seconds: FloatGauge,
    pub behind: Gauge,
    pub embedded: Counter,
}
