//! The `FeatureServing` gRPC service: a thin adapter from protobuf to the online store, with the
//! point-in-time rule (`asof_core::pit`) applied at read time so served values obey each view's TTL
//! exactly as training sets do.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;

use asof_core::config::Limits;
use asof_core::keys::{KeyValue, encode_entity_key, events_key, store_key};
use asof_core::pit::{self, Freshness};
use asof_core::value::{RowReader, Value};
use asof_core::{FeatureRequest, Registry, time};
use asof_online::OnlineStore;
use asof_retrieval::LiveIndexes;
use tonic::{Request, Response, Status};

use crate::aggregate::Aggregator;
use crate::convert::{from_proto, nanos, timestamp, to_proto};
use crate::error::{ServerError, ServerResult};
use crate::ingest::{Targets, ViewRows, write_rows};
use crate::metrics::Metrics;
use crate::proto::v1::feature_serving_server::{FeatureServing, FeatureServingServer};
use crate::proto::v1::get_online_features_request::Kind as RequestKind;
use crate::proto::v1::{
    FeatureSpec, FeatureVector, FeatureViewInfo, FieldStatus, GetOnlineFeaturesRequest,
    GetOnlineFeaturesResponse, GetOnlineFeaturesResponseMetadata, ListFeatureViewsRequest,
    ListFeatureViewsResponse, PushFeaturesRequest, PushFeaturesResponse, PushTarget,
    RetrieveAndRankRequest, RetrieveAndRankResponse, SearchDocumentsRequest,
    SearchDocumentsResponse,
};
use crate::request_cache::ShapeRef;
use crate::retrieval_log::RetrievalLog;
use crate::snapshot::{FollowedRegistry, Snapshot};

/// A request's entity rows: the row count, the join keys in response order, and each key's values
/// (`None` for nulls, which never match).
type EntityColumns = (usize, Vec<String>, HashMap<String, Vec<Option<KeyValue>>>);

/// Largest request or response, either way.
pub const MAX_MESSAGE_BYTES: usize = 64 * 1024 * 1024;

/// The service's state: the registry it serves and the store it reads.
#[derive(Debug, Clone)]
pub struct Serving {
    registry: Arc<FollowedRegistry>,
    store: Arc<dyn OnlineStore>,
    metrics: Metrics,
    indexes: Option<Arc<LiveIndexes>>,
    retrieval_log: Option<RetrievalLog>,
    limits: Limits,
    /// The offline push log's folder (`offline_store.push_log`); pushes that target offline
    /// append there.
    push_log: Option<std::path::PathBuf>,
}

impl Serving {
    /// Serves a fixed registry.
    pub fn new(registry: Registry, store: Arc<dyn OnlineStore>) -> Self {
        Self::following(FollowedRegistry::fixed(registry), store)
    }

    /// Serves a registry that may change while the server runs (`asof serve` follows the file).
    pub fn following(registry: FollowedRegistry, store: Arc<dyn OnlineStore>) -> Self {
        let registry = Arc::new(registry);
        Serving {
            metrics: Metrics::new(Arc::clone(&registry)),
            registry,
            store,
            indexes: None,
            retrieval_log: None,
            limits: Limits::default(),
            push_log: None,
        }
    }

    /// Serves more metrics beside the server's own (a stream's, with `asof serve --stream`).
    pub fn with_extra_metrics(
        mut self,
        extra: impl FnOnce(&mut prometheus_client::registry::Registry),
    ) -> Self {
        self.metrics = Metrics::new_with(Arc::clone(&self.registry), extra);
        self
    }

    /// Appends pushes that target the offline store to the push log under `root`.
    pub fn with_push_log(mut self, root: std::path::PathBuf) -> Self {
        self.push_log = Some(root);
        self
    }

    /// Caps entity rows and request sizes (`serving.limits`).
    pub fn with_limits(mut self, limits: Limits) -> Self {
        self.limits = limits;
        self
    }

    /// Rejects a request larger than `serving.limits.max_request_bytes`. tonic's own cap (far
    /// larger) only protects memory and answers OUT_OF_RANGE; this one is the user's contract.
    fn check_size(&self, rpc: &str, message: &impl prost::Message) -> Result<(), Status> {
        let size = message.encoded_len();
        if size > self.limits.max_request_bytes {
            return Err(Status::invalid_argument(format!(
                "{rpc} request is {size} bytes, over this server's limit of {} (serving.limits.max_request_bytes); split it",
                self.limits.max_request_bytes
            )));
        }
        Ok(())
    }

    /// Rejects a request with more entity rows than `serving.limits.max_entity_rows`.
    pub(crate) fn check_rows(&self, rows: usize) -> ServerResult<()> {
        if rows > self.limits.max_entity_rows {
            return Err(Self::invalid(format!(
                "{rows} entity rows in one request, over this server's limit of {} (serving.limits.max_entity_rows); split the request",
                self.limits.max_entity_rows
            )));
        }
        Ok(())
    }

    /// Serves the document indexes of `indexes` (`SearchDocuments`, `RetrieveAndRank`).
    pub fn with_indexes(mut self, indexes: LiveIndexes) -> Self {
        self.indexes = Some(Arc::new(indexes));
        self
    }

    /// Logs every `RetrieveAndRank` answer to `log`.
    pub fn with_retrieval_log(mut self, log: RetrievalLog) -> Self {
        self.retrieval_log = Some(log);
        self
    }

    /// The registry as of now; a request uses one snapshot from start to end.
    pub fn snapshot(&self) -> Arc<Snapshot> {
        self.registry.snapshot()
    }

    pub fn live_indexes(&self) -> Option<&Arc<LiveIndexes>> {
        self.indexes.as_ref()
    }

    pub fn retrieval_log(&self) -> Option<&RetrievalLog> {
        self.retrieval_log.as_ref()
    }

    pub fn metrics(&self) -> Metrics {
        self.metrics.clone()
    }

    /// The request caps this server applies (`serving.limits`).
    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// The online store this server reads (for `status` over MCP).
    pub fn online_store(&self) -> &Arc<dyn OnlineStore> {
        &self.store
    }

    /// Runs an RPC body, recording its latency and outcome.
    async fn observed<T>(
        &self,
        rpc: &'static str,
        body: impl std::future::Future<Output = ServerResult<T>>,
    ) -> Result<Response<T>, Status> {
        let started = std::time::Instant::now();
        let result = body.await;
        let unavailable = matches!(result, Err(ServerError::Online(_)));
        let result = result.map(Response::new).map_err(Status::from);
        let code = result.as_ref().err().map_or(tonic::Code::Ok, |s| s.code());
        self.metrics.observe(rpc, started, code, unavailable);
        result
    }

    fn invalid(msg: impl Into<String>) -> ServerError {
        ServerError::InvalidArgument(msg.into())
    }

    /// Checks the columnar entity map: every needed key present, none unknown, all the same length,
    /// every value a valid key type.
    fn entity_columns(
        req: &FeatureRequest,
        entities: &HashMap<String, crate::proto::v1::RepeatedValue>,
    ) -> ServerResult<EntityColumns> {
        let mut needed: Vec<String> = Vec::new();
        for v in &req.views {
            for k in &v.join_keys {
                if !needed.contains(k) {
                    needed.push(k.clone());
                }
            }
        }
        for k in &needed {
            if !entities.contains_key(k) {
                let view = req
                    .views
                    .iter()
                    .find(|v| v.join_keys.contains(k))
                    .map(|v| v.view.name.as_str())
                    .unwrap_or("");
                return Err(Self::invalid(format!(
                    "missing entity key `{k}` (the join key of view `{view}`)"
                )));
            }
        }
        let mut n = None;
        let mut cols = HashMap::new();
        let mut sorted: Vec<&String> = entities.keys().collect();
        sorted.sort();
        for name in sorted {
            if !needed.contains(name) {
                return Err(Self::invalid(format!(
                    "unknown entity key `{name}`: the requested views key on {}",
                    needed.join(", ")
                )));
            }
            let values = &entities[name].values;
            match n {
                None => n = Some((name.clone(), values.len())),
                Some((ref first, len)) if len != values.len() => {
                    return Err(Self::invalid(format!(
                        "entity key `{name}` has {} values but `{first}` has {len}: give one value per row for every key",
                        values.len()
                    )));
                }
                Some(_) => {}
            }
            // The type the source holds this key as (recorded by `apply`), and a view keyed by it.
            let expected = req.views.iter().find_map(|v| {
                let i = v.join_keys.iter().position(|k| k == name)?;
                Some((v.key_types[i]?, v.view.name.as_str()))
            });
            let mut keys = Vec::with_capacity(values.len());
            for (i, v) in values.iter().enumerate() {
                let value = from_proto(v);
                match (&value, KeyValue::from_value(&value)) {
                    (Value::Null, _) => keys.push(None),
                    (_, Some(k)) => {
                        check_key_type(name, i, &k, expected)?;
                        keys.push(Some(k))
                    }
                    (other, None) => {
                        return Err(Self::invalid(format!(
                            "entity key `{name}` row {i}: {other:?} is not a valid key; use int32, int64, string or bytes values"
                        )));
                    }
                }
            }
            cols.insert(name.clone(), keys);
        }
        Ok((n.map_or(0, |(_, len)| len), needed, cols))
    }

    pub async fn get_online_features(
        &self,
        req: GetOnlineFeaturesRequest,
    ) -> ServerResult<GetOnlineFeaturesResponse> {
        let shape = match &req.kind {
            Some(RequestKind::Features(list)) => {
                ShapeRef::Features(&list.features, req.full_feature_names)
            }
            Some(RequestKind::FeatureService(s)) => ShapeRef::Service(s, req.full_feature_names),
            None => return Err(Self::invalid("name `features` or a `feature_service`")),
        };
        let snap = self.snapshot();
        let request = snap.resolve(shape)?;
        let as_of = req
            .as_of
            .as_ref()
            .map(nanos)
            .unwrap_or_else(|| time::to_nanos(chrono::Utc::now()));
        self.online_features(&snap.registry.project, &request, req.entities, as_of)
            .await
    }

    /// `GetOnlineFeatures` for a request already resolved (`RetrieveAndRank` resolves its features
    /// before searching, to reject bad ones without embedding).
    pub(crate) async fn online_features(
        &self,
        project: &str,
        request: &FeatureRequest,
        mut entities: HashMap<String, crate::proto::v1::RepeatedValue>,
        as_of: i64,
    ) -> ServerResult<GetOnlineFeaturesResponse> {
        let (n, key_names, keys) = Self::entity_columns(request, &entities)?;
        self.check_rows(n)?;

        // One store key per (view, row); absent keys (null entity values) are never looked up.
        // Aggregated views read a range of each entity's event log instead, in the same round
        // trip's time (both reads run at once).
        let mut lookups: Vec<Vec<u8>> = Vec::with_capacity(n * request.views.len());
        let mut lookup_view: Vec<usize> = Vec::with_capacity(n * request.views.len());
        let mut ranges: Vec<(Vec<u8>, Vec<u8>, Vec<u8>)> = Vec::new();
        let mut range_view: Vec<usize> = Vec::new();
        let mut slots: Vec<Vec<Option<usize>>> = Vec::with_capacity(request.views.len());
        // Per view: its aggregator when it is aggregated, prepared once for all entities.
        let aggregators: Vec<Option<Aggregator<'_>>> = request
            .views
            .iter()
            .map(|v| v.view.is_aggregated().then(|| Aggregator::new(v, as_of)))
            .collect();
        for (vidx, v) in request.views.iter().enumerate() {
            let names: Vec<&str> = v.join_keys.iter().map(String::as_str).collect();
            let aggregator = aggregators[vidx].as_ref();
            let mut view_slots = Vec::with_capacity(n);
            #[allow(clippy::needless_range_loop)] // `row` indexes every key column
            for row in 0..n {
                let row_keys: Option<Vec<&KeyValue>> =
                    v.join_keys.iter().map(|k| keys[k][row].as_ref()).collect();
                view_slots.push(row_keys.map(|ks| {
                    let entity = encode_entity_key(&names, &ks);
                    if let Some(a) = aggregator {
                        ranges.push((
                            events_key(project, &v.view.name, &entity),
                            a.from.clone(),
                            a.to.clone(),
                        ));
                        range_view.push(vidx);
                        ranges.len() - 1
                    } else {
                        lookups.push(store_key(project, &v.view.name, &entity));
                        lookup_view.push(vidx);
                        lookups.len() - 1
                    }
                }));
            }
            slots.push(view_slots);
        }
        // A request of only plain (or only aggregated) views makes no call for the other kind.
        let (raw, logs) = tokio::try_join!(
            async {
                if lookups.is_empty() {
                    Ok(Vec::new())
                } else {
                    self.store.read(lookups).await
                }
            },
            async {
                if ranges.is_empty() {
                    Ok(Vec::new())
                } else {
                    self.store.read_events(ranges).await
                }
            }
        )?;
        let aggregated: Vec<crate::aggregate::Aggregated> = logs
            .iter()
            .zip(range_view)
            .map(|(members, vidx)| {
                aggregators[vidx]
                    .as_ref()
                    .expect("ranges are read for aggregated views")
                    .aggregate(members)
            })
            .collect::<ServerResult<_>>()?;
        // Each found row keeps only its view's requested features, in the view's request order.
        let mut rows: Vec<Option<(i64, Vec<Value>)>> = Vec::with_capacity(raw.len());
        for (r, vidx) in raw.into_iter().zip(lookup_view) {
            rows.push(match r {
                Some(bytes) => requested_features(&bytes, &request.views[vidx].features)?,
                None => None,
            });
        }

        let mut names = key_names.clone();
        let mut results = Vec::with_capacity(key_names.len() + request.columns.len());
        for k in &key_names {
            // The request's own key values go back as they came.
            let values = entities.remove(k).map(|r| r.values).unwrap_or_default();
            results.push(FeatureVector {
                statuses: vec![FieldStatus::Present as i32; values.len()],
                event_timestamps: vec![Default::default(); values.len()],
                values,
            });
        }
        for (vidx, feature, out_name) in &request.columns {
            let view = &request.views[*vidx];
            let fidx = view
                .features
                .iter()
                .position(|f| &f.name == feature)
                .expect("a resolved column names one of its view's features");
            let mut fv = FeatureVector {
                values: Vec::with_capacity(n),
                statuses: Vec::with_capacity(n),
                event_timestamps: Vec::with_capacity(n),
            };
            if let Some(aggregator) = &aggregators[*vidx] {
                for slot in &slots[*vidx] {
                    // An entity with no events in a window answers like the training set: a
                    // count of 0, nulls elsewhere.
                    let (value, newest) = match slot.map(|s| &aggregated[s]) {
                        Some(a) => (a.values[fidx].clone(), a.newest),
                        None => (aggregator.empty_value(fidx), None),
                    };
                    // A count is always a value (0 over no events); the rest are null when no
                    // event is in the window (NOT_FOUND) or none has a value (NULL_VALUE).
                    let status = match (&value, newest) {
                        (Value::Null, None) => FieldStatus::NotFound,
                        (Value::Null, Some(_)) => FieldStatus::NullValue,
                        _ => FieldStatus::Present,
                    };
                    fv.values.push(to_proto(&value));
                    fv.statuses.push(status as i32);
                    fv.event_timestamps
                        .push(newest.map(timestamp).unwrap_or_default());
                }
                names.push(out_name.clone());
                results.push(fv);
                continue;
            }
            for slot in &slots[*vidx] {
                let stored = slot.and_then(|s| rows[s].as_ref());
                let (value, status, ts) = match stored {
                    None => (&Value::Null, FieldStatus::NotFound, None),
                    Some((event_ts, values)) => {
                        match pit::classify(*event_ts, as_of, view.view.ttl) {
                            Freshness::Future => (&Value::Null, FieldStatus::NotFound, None),
                            Freshness::Expired => {
                                (&Value::Null, FieldStatus::OutsideMaxAge, Some(*event_ts))
                            }
                            Freshness::Fresh => {
                                let v = &values[fidx];
                                let status = if *v == Value::Null {
                                    FieldStatus::NullValue
                                } else {
                                    FieldStatus::Present
                                };
                                (v, status, Some(*event_ts))
                            }
                        }
                    }
                };
                fv.values.push(to_proto(value));
                fv.statuses.push(status as i32);
                fv.event_timestamps
                    .push(ts.map(timestamp).unwrap_or_default());
            }
            names.push(out_name.clone());
            results.push(fv);
        }
        let mut counts = [0u64; 5];
        for r in &results[key_names.len()..] {
            for s in &r.statuses {
                counts[(*s as usize).min(4)] += 1;
            }
        }
        self.metrics.served(
            n,
            [
                ("PRESENT", counts[1]),
                ("NULL_VALUE", counts[2]),
                ("NOT_FOUND", counts[3]),
                ("OUTSIDE_MAX_AGE", counts[4]),
            ],
        );
        Ok(GetOnlineFeaturesResponse {
            metadata: Some(GetOnlineFeaturesResponseMetadata {
                feature_names: names,
            }),
            results,
            as_of: Some(timestamp(as_of)),
        })
    }

    pub async fn push_features(
        &self,
        req: PushFeaturesRequest,
    ) -> ServerResult<PushFeaturesResponse> {
        let snap = self.snapshot();
        let request = snap.resolve(ShapeRef::Features(
            std::slice::from_ref(&req.feature_view),
            false,
        ))?;
        let view = &request.views[0];
        // Pushed rows are rows of the view's source, named as the source names its columns.
        let ts_name = view.source.timestamp_field.as_str();
        let created_name = view.source.created_timestamp_field.as_deref();
        let col = |name: &str| req.columns.get(name).map(|c| &c.values);
        let ts = col(ts_name).ok_or_else(|| {
            Self::invalid(format!(
                "push to `{}` needs its source's timestamp column `{ts_name}`",
                view.view.name
            ))
        })?;
        let n = ts.len();
        self.check_rows(n)?;
        // An aggregated view takes events: its aggregations' input columns, not their outputs.
        let event_columns = view.view.event_columns();
        for (name, c) in &req.columns {
            if c.values.len() != n {
                return Err(Self::invalid(format!(
                    "column `{name}` has {} values but `{ts_name}` has {n}",
                    c.values.len()
                )));
            }
            let known = name == ts_name
                || Some(name.as_str()) == created_name
                || view.join_keys.contains(name)
                || event_columns.iter().any(|f| &f.name == name);
            if !known {
                let mut columns: Vec<&str> = vec![ts_name];
                columns.extend(created_name);
                columns.extend(view.join_keys.iter().map(String::as_str));
                columns.extend(event_columns.iter().map(|f| f.name.as_str()));
                let hint = asof_core::error::did_you_mean(name, columns.iter().copied())
                    .map(|h| format!("; {h}"))
                    .unwrap_or_default();
                return Err(Self::invalid(format!(
                    "view `{}` has no column `{name}`{hint} (its columns: {})",
                    view.view.name,
                    columns.join(", ")
                )));
            }
        }
        let target = PushTarget::try_from(req.to).map_err(|_| {
            Self::invalid(format!(
                "push target {} is not one of ONLINE_AND_OFFLINE (0), ONLINE (1), OFFLINE (2)",
                req.to
            ))
        })?;
        let offline = target != PushTarget::Online;
        let online = target != PushTarget::Offline;
        let push_log = match (&self.push_log, offline) {
            (Some(root), true) => Some(root.clone()),
            (None, true) => {
                return Err(ServerError::FailedPrecondition(
                    "this server has no offline push log; push with `to: ONLINE`, or serve a repo with `asof serve`".into(),
                ));
            }
            (_, false) => None,
        };
        let deleted = match req.deleted.len() {
            0 => None,
            _ if view.view.is_aggregated() && req.deleted.iter().any(|d| *d) => {
                return Err(Self::invalid(format!(
                    "view `{}` aggregates events, and an event that happened is not deleted; push no `deleted` flags to it",
                    view.view.name
                )));
            }
            len if len == n => Some(&req.deleted),
            len => {
                return Err(Self::invalid(format!(
                    "`deleted` has {len} flags but `{ts_name}` has {n} rows; send one per row or none"
                )));
            }
        };
        let names: Vec<&str> = view.join_keys.iter().map(String::as_str).collect();
        let mut rows = ViewRows::for_view(view, n);
        // Per join key, once: its pushed column (if sent) and the type its source holds it as.
        let key_inputs: Vec<_> = names
            .iter()
            .zip(&view.key_types)
            .map(|(k, t)| (*k, col(k), t.map(|t| (t, view.view.name.as_str()))))
            .collect();
        for row in 0..n {
            let mut keys = Vec::with_capacity(names.len());
            for &(k, column, expected) in &key_inputs {
                let v = column.ok_or_else(|| {
                    Self::invalid(format!(
                        "push to `{}` needs join key column `{k}`",
                        view.view.name
                    ))
                })?;
                let key = KeyValue::from_value(&from_proto(&v[row])).ok_or_else(|| {
                    Self::invalid(format!("column `{k}` row {row}: not a valid key"))
                })?;
                check_key_type(k, row, &key, expected)?;
                keys.push(key);
            }
            let event_ts = match from_proto(&ts[row]) {
                Value::Timestamp(t) => t,
                other => {
                    return Err(Self::invalid(format!(
                        "`{ts_name}` row {row}: {other:?} is not a timestamp"
                    )));
                }
            };
            let created_ts = match created_name.and_then(col).map(|c| from_proto(&c[row])) {
                Some(Value::Timestamp(t)) => Some(t),
                None | Some(Value::Null) => None,
                Some(other) => {
                    return Err(Self::invalid(format!(
                        "`{}` row {row}: {other:?} is not a timestamp",
                        created_name.unwrap_or_default()
                    )));
                }
            };
            if deleted.is_some_and(|d| d[row]) {
                rows.push(keys, event_ts, created_ts, None);
                continue;
            }
            let mut features = Vec::with_capacity(event_columns.len());
            for f in &event_columns {
                let v = col(&f.name)
                    .map(|c| from_proto(&c[row]))
                    .unwrap_or(Value::Null);
                if !value_matches(&v, &f.dtype) {
                    return Err(Self::invalid(format!(
                        "column `{}` row {row}: {v:?} is not a {}",
                        f.name, f.dtype
                    )));
                }
                features.push(v);
            }
            rows.push(keys, event_ts, created_ts, Some(features));
        }
        let targets = Targets {
            push_log,
            online,
            log_name: None,
        };
        let written = write_rows(
            self.store.as_ref(),
            &snap.registry.project,
            view,
            rows,
            &targets,
        )
        .await?;
        if let (true, Some(newest)) = (online, written.newest_event) {
            self.metrics.saw_event(&view.view.name, newest);
        }
        Ok(PushFeaturesResponse {
            written: written.online as u64,
            skipped: written.skipped as u64,
            logged: written.logged as u64,
        })
    }

    pub fn list_feature_views(&self) -> ListFeatureViewsResponse {
        let snap = self.snapshot();
        let feature_views = snap
            .catalog
            .feature_views
            .values()
            .map(|v| FeatureViewInfo {
                name: v.name.clone(),
                join_keys: snap.catalog.join_keys(v),
                features: v
                    .features
                    .iter()
                    .map(|f| FeatureSpec {
                        name: f.name.clone(),
                        dtype: f.dtype.to_string(),
                    })
                    .collect(),
                ttl_seconds: v.ttl.as_seconds(),
                online: v.online,
                materialized_until: snap
                    .registry
                    .materialization
                    .get(&v.name)
                    .map(|m| timestamp(time::to_nanos(m.watermark))),
            })
            .collect();
        ListFeatureViewsResponse { feature_views }
    }
}

/// A request's key value must have the type its view's source holds the key as (`expected`:
/// the type and a view keyed by it): a string for an integer key would otherwise never match and
/// read as a silent NOT_FOUND.
fn check_key_type(
    name: &str,
    row: usize,
    k: &KeyValue,
    expected: Option<(asof_core::keys::KeyType, &str)>,
) -> ServerResult<()> {
    let Some((want, view)) = expected else {
        return Ok(());
    };
    if k.key_type() == want {
        return Ok(());
    }
    let shown = match k {
        KeyValue::Int(i) => i.to_string(),
        KeyValue::Str(s) => format!("{s:?}"),
        KeyValue::Bytes(b) => format!("{} bytes", b.len()),
    };
    Err(ServerError::InvalidArgument(format!(
        "entity key `{name}` row {row} is {} ({shown}), but view `{view}` keys on {}; send {} value",
        k.key_type().described(),
        want.described(),
        want.described(),
    )))
}

/// Whether a pushed value has the view's declared type (so pushes and materialization store alike).
fn value_matches(v: &Value, d: &asof_core::DType) -> bool {
    use asof_core::DType as D;
    match (v, d) {
        (Value::Null, _) => true,
        (Value::Bool(_), D::Bool) | (Value::Int32(_), D::Int32) | (Value::Int64(_), D::Int64) => {
            true
        }
        (Value::Float32(_), D::Float32) | (Value::Float64(_), D::Float64) => true,
        (Value::String(_), D::String)
        | (Value::Bytes(_), D::Bytes)
        | (Value::Timestamp(_), D::Timestamp) => true,
        (Value::List(items), D::List(inner)) => items.iter().all(|i| value_matches(i, inner)),
        _ => false,
    }
}

#[tonic::async_trait]
impl FeatureServing for Serving {
    async fn get_online_features(
        &self,
        request: Request<GetOnlineFeaturesRequest>,
    ) -> Result<Response<GetOnlineFeaturesResponse>, Status> {
        self.check_size("GetOnlineFeatures", request.get_ref())?;
        self.observed(
            "GetOnlineFeatures",
            Serving::get_online_features(self, request.into_inner()),
        )
        .await
    }

    async fn push_features(
        &self,
        request: Request<PushFeaturesRequest>,
    ) -> Result<Response<PushFeaturesResponse>, Status> {
        self.check_size("PushFeatures", request.get_ref())?;
        self.observed(
            "PushFeatures",
            Serving::push_features(self, request.into_inner()),
        )
        .await
    }

    async fn list_feature_views(
        &self,
        _: Request<ListFeatureViewsRequest>,
    ) -> Result<Response<ListFeatureViewsResponse>, Status> {
        self.observed("ListFeatureViews", async {
            Ok(Serving::list_feature_views(self))
        })
        .await
    }

    async fn search_documents(
        &self,
        request: Request<SearchDocumentsRequest>,
    ) -> Result<Response<SearchDocumentsResponse>, Status> {
        self.check_size("SearchDocuments", request.get_ref())?;
        let metadata = request.metadata().clone();
        let body = Serving::search_documents(self, request.into_inner());
        crate::deadline::scope(&metadata, self.observed("SearchDocuments", body)).await
    }

    async fn retrieve_and_rank(
        &self,
        request: Request<RetrieveAndRankRequest>,
    ) -> Result<Response<RetrieveAndRankResponse>, Status> {
        self.check_size("RetrieveAndRank", request.get_ref())?;
        let metadata = request.metadata().clone();
        let body = Serving::retrieve_and_rank(self, request.into_inner());
        crate::deadline::scope(&metadata, self.observed("RetrieveAndRank", body)).await
    }
}

/// A stored row's event time and the values of `features` (null for one the row predates), in that
/// order; `None` when the entity's latest event is a delete.
fn requested_features(
    bytes: &[u8],
    features: &[asof_core::spec::Feature],
) -> ServerResult<Option<(i64, Vec<Value>)>> {
    let corrupt = |e: asof_core::value::DecodeError| ServerError::Transport(e.to_string());
    let row = RowReader::new(bytes).map_err(corrupt)?;
    if !pit::has_value(row.deleted) {
        return Ok(None);
    }
    let event_ts = row.event_ts;
    let mut values = vec![Value::Null; features.len()];
    for field in row {
        let field = field.map_err(corrupt)?;
        if let Some(i) = features
            .iter()
            .position(|f| f.name.as_bytes() == field.name)
        {
            values[i] = field.value().map_err(corrupt)?;
        }
    }
    Ok(Some((event_ts, values)))
}

/// Accepted connections with TCP_NODELAY: the server builder's own `tcp_nodelay` only applies to
/// listeners it binds itself, and Nagle would hold each response for the peer's delayed ACK (~40 ms).
fn nodelay_incoming(
    listener: tokio::net::TcpListener,
) -> impl tokio_stream::Stream<Item = std::io::Result<tokio::net::TcpStream>> {
    use tokio_stream::StreamExt;
    tokio_stream::wrappers::TcpListenerStream::new(listener).map(|conn| {
        conn.and_then(|stream| {
            stream.set_nodelay(true)?;
            Ok(stream)
        })
    })
}

/// How the gRPC endpoint is secured.
#[derive(Debug, Clone, Default)]
pub struct Security {
    /// PEM certificate chain and private key: serve TLS (rustls) instead of plaintext.
    pub tls: Option<(Vec<u8>, Vec<u8>)>,
    /// Accept only requests that carry one of these bearer tokens (health and reflection stay open).
    pub tokens: Option<crate::auth::Tokens>,
}

/// Bearer-token checks on a tonic service, when the server has tokens.
type Guarded<S> = tonic::service::interceptor::InterceptedService<S, crate::auth::Tokens>;

/// `service` as itself without tokens, or behind their check: two optional services keep one
/// router type, and only a server with tokens pays for the interceptor (it converts every
/// request and response between http and tonic types).
fn guard<S>(service: S, tokens: Option<&crate::auth::Tokens>) -> (Option<S>, Option<Guarded<S>>) {
    match tokens.cloned() {
        None => (Some(service), None),
        Some(tokens) => (
            None,
            Some(tonic::service::interceptor::InterceptedService::new(
                service, tokens,
            )),
        ),
    }
}

/// Serves `serving` on `addr` with health checking and reflection until `shutdown` resolves.
pub async fn serve(
    serving: Serving,
    addr: SocketAddr,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    on_ready: impl FnOnce(SocketAddr) + Send + 'static,
) -> ServerResult<()> {
    serve_secured(serving, addr, Security::default(), None, shutdown, on_ready).await
}

/// [`serve`] with TLS and token authentication as `security` says, and Arrow Flight training
/// sets on the same port when `flight` is given.
pub async fn serve_secured(
    serving: Serving,
    addr: SocketAddr,
    security: Security,
    flight: Option<crate::flight::TrainingSetFlight>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    on_ready: impl FnOnce(SocketAddr) + Send + 'static,
) -> ServerResult<()> {
    let (listener, local) = bind(addr).await?;
    let (health_reporter, health_service) = tonic_health::server::health_reporter();
    health_reporter
        .set_serving::<FeatureServingServer<Serving>>()
        .await;
    let reflection = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(crate::proto::FILE_DESCRIPTOR_SET)
        .build_v1()
        .map_err(|e| ServerError::Transport(e.to_string()))?;
    let service = FeatureServingServer::new(serving)
        .max_decoding_message_size(MAX_MESSAGE_BYTES)
        .max_encoding_message_size(MAX_MESSAGE_BYTES);
    let router = builder(&security)?
        .timeout(crate::deadline::REQUEST_TIMEOUT)
        .add_service(health_service)
        .add_service(reflection);
    let (open, guarded) = guard(service, security.tokens.as_ref());
    let (flight_open, flight_guarded) = match flight {
        Some(f) => guard(f.into_server(), security.tokens.as_ref()),
        None => (None, None),
    };
    let router = router
        .add_optional_service(open)
        .add_optional_service(guarded)
        .add_optional_service(flight_open)
        .add_optional_service(flight_guarded);
    on_ready(local);
    router
        .serve_with_incoming_shutdown(nodelay_incoming(listener), shutdown)
        .await
        .map_err(|e| ServerError::Transport(e.to_string()))
}

async fn bind(addr: SocketAddr) -> ServerResult<(tokio::net::TcpListener, SocketAddr)> {
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| ServerError::Transport(format!("cannot listen on {addr}: {e}")))?;
    let local = listener
        .local_addr()
        .map_err(|e| ServerError::Transport(e.to_string()))?;
    Ok((listener, local))
}

/// A tonic server with TLS as `security` says.
fn builder(security: &Security) -> ServerResult<tonic::transport::Server> {
    let mut builder = tonic::transport::Server::builder().tcp_nodelay(true);
    if let Some((cert, key)) = &security.tls {
        let identity = tonic::transport::Identity::from_pem(cert, key);
        builder = builder
            .tls_config(tonic::transport::ServerTlsConfig::new().identity(identity))
            .map_err(|e| ServerError::Config(format!("TLS certificate or key: {e}")))?;
    }
    Ok(builder)
}

/// Serves Arrow Flight training sets alone on `addr` (`asof serve --flight`; Feast's remote
/// offline store expects a port of its own), with the gRPC port's TLS and tokens. No request
/// timeout: a training set streams for as long as it takes.
pub async fn serve_flight(
    flight: crate::flight::TrainingSetFlight,
    addr: SocketAddr,
    security: Security,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    on_ready: impl FnOnce(SocketAddr) + Send + 'static,
) -> ServerResult<()> {
    let (listener, local) = bind(addr).await?;
    let (open, guarded) = guard(flight.into_server(), security.tokens.as_ref());
    let router = builder(&security)?
        .add_optional_service(open)
        .add_optional_service(guarded);
    on_ready(local);
    router
        .serve_with_incoming_shutdown(nodelay_incoming(listener), shutdown)
        .await
        .map_err(|e| ServerError::Transport(e.to_string()))
}
