//! Prometheus metrics of the feature server, served as text on `GET /metrics`.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use http_body_util::Full;
use hyper::body::Bytes;
use hyper::service::service_fn;
use hyper::{Response, StatusCode};
use hyper_util::rt::TokioIo;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;

use crate::error::{ServerError, ServerResult};
use crate::snapshot::FollowedRegistry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RpcLabels {
    rpc: &'static str,
    code: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RpcOnly {
    rpc: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StatusLabel {
    status: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ViewLabel {
    view: String,
}

/// A status code's label, as `tonic::Code`'s `Debug` spells it (static: labels are built on every
/// request, and an allocation there showed in profiles).
fn code_name(code: tonic::Code) -> &'static str {
    use tonic::Code;
    match code {
        Code::Ok => "Ok",
        Code::Cancelled => "Cancelled",
        Code::Unknown => "Unknown",
        Code::InvalidArgument => "InvalidArgument",
        Code::DeadlineExceeded => "DeadlineExceeded",
        Code::NotFound => "NotFound",
        Code::AlreadyExists => "AlreadyExists",
        Code::PermissionDenied => "PermissionDenied",
        Code::ResourceExhausted => "ResourceExhausted",
        Code::FailedPrecondition => "FailedPrecondition",
        Code::Aborted => "Aborted",
        Code::OutOfRange => "OutOfRange",
        Code::Unimplemented => "Unimplemented",
        Code::Internal => "Internal",
        Code::Unavailable => "Unavailable",
        Code::DataLoss => "DataLoss",
        Code::Unauthenticated => "Unauthenticated",
    }
}

/// The server's metrics. Cheap to clone (shared state).
#[derive(Debug, Clone)]
pub struct Metrics {
    registry: Arc<prometheus_client::registry::Registry>,
    requests: Family<RpcLabels, Counter>,
    latency: Family<RpcOnly, Histogram>,
    entity_rows: Counter,
    statuses: Family<StatusLabel, Counter>,
    store_errors: Counter,
    /// The served registry: its newest materialized event times give freshness at each scrape.
    served: Arc<FollowedRegistry>,
    freshness: Family<ViewLabel, Gauge<f64, std::sync::atomic::AtomicU64>>,
    /// Per view, the newest event time written online by this process (pushes, streams): with the
    /// registry's materializations, the age of the newest online event at each scrape.
    newest_written: Arc<std::sync::Mutex<std::collections::HashMap<String, i64>>>,
    newest_age: Family<ViewLabel, Gauge<f64, std::sync::atomic::AtomicU64>>,
}

impl Metrics {
    pub fn new(served: Arc<FollowedRegistry>) -> Self {
        Self::new_with(served, |_| {})
    }

    /// [`Metrics::new`], with `extra` registering more metrics (a stream's, when the server runs
    /// one) into the same endpoint.
    pub fn new_with(
        served: Arc<FollowedRegistry>,
        extra: impl FnOnce(&mut prometheus_client::registry::Registry),
    ) -> Self {
        let mut registry = prometheus_client::registry::Registry::with_prefix("asof");
        let requests = Family::<RpcLabels, Counter>::default();
        let latency = Family::<RpcOnly, Histogram>::new_with_constructor(|| {
            Histogram::new([
                0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0,
            ])
        });
        let entity_rows = Counter::default();
        let statuses = Family::<StatusLabel, Counter>::default();
        let store_errors = Counter::default();
        let freshness = Family::<ViewLabel, Gauge<f64, std::sync::atomic::AtomicU64>>::default();
        registry.register(
            "requests",
            "gRPC requests by method and status code",
            requests.clone(),
        );
        registry.register(
            "request_duration_seconds",
            "gRPC request latency by method",
            latency.clone(),
        );
        registry.register(
            "entity_rows_served",
            "Entity rows answered by GetOnlineFeatures",
            entity_rows.clone(),
        );
        registry.register(
            "feature_statuses",
            "Feature values served, by field status",
            statuses.clone(),
        );
        registry.register(
            "online_store_errors",
            "Failed online store calls",
            store_errors.clone(),
        );
        registry.register(
            "view_freshness_seconds",
            "Now minus the newest materialized event time, per view",
            freshness.clone(),
        );
        let newest_age = Family::<ViewLabel, Gauge<f64, std::sync::atomic::AtomicU64>>::default();
        registry.register(
            "view_newest_online_event_age_seconds",
            "Now minus the newest event time written online (materialized, pushed or streamed), per view",
            newest_age.clone(),
        );
        extra(&mut registry);
        Metrics {
            registry: Arc::new(registry),
            requests,
            latency,
            entity_rows,
            statuses,
            store_errors,
            served,
            freshness,
            newest_written: Default::default(),
            newest_age,
        }
    }

    /// Records that rows of `view` up to event time `ts` (ns) are online now.
    pub fn saw_event(&self, view: &str, ts: i64) {
        let mut newest = self
            .newest_written
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        let slot = newest.entry(view.to_string()).or_insert(ts);
        *slot = (*slot).max(ts);
    }

    /// Records one finished RPC.
    pub fn observe(
        &self,
        rpc: &'static str,
        started: Instant,
        code: tonic::Code,
        unavailable: bool,
    ) {
        self.requests
            .get_or_create(&RpcLabels {
                rpc,
                code: code_name(code),
            })
            .inc();
        self.latency
            .get_or_create(&RpcOnly { rpc })
            .observe(started.elapsed().as_secs_f64());
        if unavailable {
            self.store_errors.inc();
        }
    }

    pub fn served(&self, rows: usize, statuses: impl IntoIterator<Item = (&'static str, u64)>) {
        self.entity_rows.inc_by(rows as u64);
        for (s, n) in statuses {
            if n > 0 {
                self.statuses
                    .get_or_create(&StatusLabel { status: s })
                    .inc_by(n);
            }
        }
    }

    pub fn render(&self) -> String {
        // From the registry as of this scrape: a materialize since the last one moves the
        // gauge, and a deleted view's gauge goes away.
        let now = chrono::Utc::now();
        let snap = self.served.snapshot();
        self.freshness.clear();
        self.newest_age.clear();
        let written = self
            .newest_written
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        for view in snap.registry.feature_views.keys() {
            let materialized = snap
                .registry
                .materialization
                .get(view)
                .and_then(|m| m.newest_event_timestamp);
            if let Some(newest) = materialized {
                self.freshness
                    .get_or_create(&ViewLabel { view: view.clone() })
                    .set((now - newest).as_seconds_f64());
            }
            let pushed = written
                .get(view)
                .map(|&ns| chrono::DateTime::from_timestamp_nanos(ns));
            if let Some(newest) = materialized.into_iter().chain(pushed).max() {
                self.newest_age
                    .get_or_create(&ViewLabel { view: view.clone() })
                    .set((now - newest).as_seconds_f64());
            }
        }
        let mut out = String::new();
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }

    /// Binds the metrics endpoint (before serving starts, so a taken port fails fast).
    pub async fn bind(addr: SocketAddr) -> ServerResult<tokio::net::TcpListener> {
        tokio::net::TcpListener::bind(addr).await.map_err(|e| {
            ServerError::Transport(format!("cannot listen on {addr} for metrics: {e}"))
        })
    }

    /// Serves `GET /metrics` on `listener` until the task is dropped.
    pub async fn serve(self, listener: tokio::net::TcpListener) {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let metrics = self.clone();
            tokio::spawn(async move {
                let service = service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
                    let metrics = metrics.clone();
                    async move {
                        let resp = if req.uri().path() == "/metrics" {
                            Response::builder()
                                .header(
                                    "content-type",
                                    "application/openmetrics-text; version=1.0.0; charset=utf-8",
                                )
                                .body(Full::new(Bytes::from(metrics.render())))
                        } else {
                            Response::builder()
                                .status(StatusCode::NOT_FOUND)
                                .body(Full::new(Bytes::from("try /metrics\n")))
                        };
                        Ok::<_, hyper::http::Error>(resp.expect("static response parts"))
                    }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    }
}
