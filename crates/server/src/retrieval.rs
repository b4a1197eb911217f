//! `SearchDocuments` and `RetrieveAndRank`: vector search over the live index version, and the
//! reranker-feature path that joins hits with document features through `GetOnlineFeatures`'
//! own code, so serving and training read features by one definition.

use std::collections::BTreeMap;
use std::sync::Arc;

use asof_core::error::did_you_mean;
use asof_core::spec::{Contract, DocumentIndex, SearchMode};
use asof_core::time;
use asof_retrieval::{
    Answer, Hit, LiveIndexes, LoadedVersion, Query, RetrievalError, SearchOptions,
};

use crate::convert::{from_proto, timestamp};
use crate::error::{ServerError, ServerResult};
use crate::proto::v1::{
    DocumentHit, QueryVector, RepeatedValue, RetrieveAndRankRequest, RetrieveAndRankResponse,
    SearchDocumentsRequest, SearchDocumentsResponse, retrieve_and_rank_request,
    search_documents_request,
};
use crate::request_cache::ShapeRef;
use crate::retrieval_log::{LoggedHit, LoggedRequest};
use crate::service::Serving;
use crate::snapshot::Snapshot;

/// Chunks returned when a request leaves `k` at 0.
pub const DEFAULT_K: usize = 10;
/// Largest `k` a request may ask for.
pub const MAX_K: usize = 1_000;

/// A query as received, before it is embedded.
enum OwnedQuery {
    Text(String),
    Vector(QueryVector),
}

impl From<search_documents_request::Query> for OwnedQuery {
    fn from(q: search_documents_request::Query) -> Self {
        match q {
            search_documents_request::Query::Text(t) => OwnedQuery::Text(t),
            search_documents_request::Query::Vector(v) => OwnedQuery::Vector(v),
        }
    }
}

impl From<retrieve_and_rank_request::Query> for OwnedQuery {
    fn from(q: retrieve_and_rank_request::Query) -> Self {
        match q {
            retrieve_and_rank_request::Query::Text(t) => OwnedQuery::Text(t),
            retrieve_and_rank_request::Query::Vector(v) => OwnedQuery::Vector(v),
        }
    }
}

impl OwnedQuery {
    /// The request's query, which both RPCs require.
    fn required(q: Option<impl Into<OwnedQuery>>) -> ServerResult<OwnedQuery> {
        q.map(Into::into)
            .ok_or_else(|| ServerError::InvalidArgument("give query `text` or a `vector`".into()))
    }

    fn as_query(&self) -> Query<'_> {
        match self {
            OwnedQuery::Text(t) => Query::Text(t),
            OwnedQuery::Vector(v) => Query::Vector {
                values: &v.values,
                model: &v.model,
            },
        }
    }

    fn text(&self) -> String {
        match self {
            OwnedQuery::Text(t) => t.clone(),
            OwnedQuery::Vector(_) => String::new(),
        }
    }
}

fn k_of(k: u32) -> ServerResult<usize> {
    match k as usize {
        0 => Ok(DEFAULT_K),
        k if k > MAX_K => Err(ServerError::InvalidArgument(format!(
            "k = {k} is more than {MAX_K}"
        ))),
        k => Ok(k),
    }
}

fn hit_to_proto(h: Hit) -> DocumentHit {
    DocumentHit {
        doc_id: h.doc_id,
        chunk_id: h.chunk_id,
        score: h.score,
        text: h.text,
        metadata: h
            .metadata
            .into_iter()
            .map(|(k, v)| {
                let s = match v {
                    serde_json::Value::String(s) => s,
                    other => other.to_string(),
                };
                (k, s)
            })
            .collect(),
        doc_version: h.doc_version,
        indexed_at: Some(timestamp(time::to_nanos(h.indexed_at))),
        dense_rank: h.dense.map_or(0, |(r, _)| r),
        dense_score: h.dense.map_or(0.0, |(_, s)| s),
        sparse_rank: h.sparse.map_or(0, |(r, _)| r),
        sparse_score: h.sparse.map_or(0.0, |(_, s)| s),
    }
}

/// The index's contract narrowed by the request's terms (a request alone cannot add a contract
/// that loosens nothing: its terms apply on their own when the index has none).
fn contract_of(
    spec: &DocumentIndex,
    request: Option<&crate::proto::v1::Contract>,
) -> Option<Contract> {
    let request = request.map(|c| Contract {
        max_age: (c.max_age_seconds > 0).then(|| asof_core::Ttl::from_seconds(c.max_age_seconds)),
        allowed_types: (!c.allowed_types.is_empty()).then(|| c.allowed_types.clone()),
        required_metadata: c.required_metadata.clone(),
        min_score: c.min_score,
        min_results: c.min_results as usize,
        on_violation: Default::default(),
    });
    match (&spec.contract, request) {
        (Some(index), Some(r)) => Some(index.narrowed(&r)),
        (Some(index), None) => Some(index.clone()),
        (None, r) => r,
    }
}

/// A request's mode, or the index's default.
fn mode_of(mode: i32, spec: &DocumentIndex) -> ServerResult<SearchMode> {
    use crate::proto::v1::SearchMode as P;
    Ok(match P::try_from(mode) {
        Ok(P::Unspecified) => spec.retrieval.mode,
        Ok(P::Dense) => SearchMode::Dense,
        Ok(P::Sparse) => SearchMode::Sparse,
        Ok(P::Hybrid) => SearchMode::Hybrid,
        Err(_) => {
            return Err(ServerError::InvalidArgument(format!(
                "search mode {mode} is not one of DENSE (1), SPARSE (2), HYBRID (3)"
            )));
        }
    })
}

impl Serving {
    fn index_spec<'s>(snap: &'s Snapshot, name: &str) -> ServerResult<&'s DocumentIndex> {
        snap.catalog.document_indexes.get(name).ok_or_else(|| {
            let hint = did_you_mean(
                name,
                snap.catalog.document_indexes.keys().map(String::as_str),
            )
            .map(|h| format!("; {h}"))
            .unwrap_or_default();
            ServerError::InvalidArgument(if name.is_empty() {
                "name the document `index` to search".to_string()
            } else {
                format!("unknown document index `{name}`{hint}")
            })
        })
    }

    fn indexes(&self) -> ServerResult<&Arc<LiveIndexes>> {
        self.live_indexes().ok_or_else(|| {
            ServerError::InvalidArgument("this server was started without document indexes".into())
        })
    }

    /// Embeds and searches on a blocking thread: embedding may be an HTTP call, and loading a
    /// new generation reads files.
    #[allow(clippy::too_many_arguments)]
    async fn search(
        &self,
        spec: &DocumentIndex,
        version: &str,
        query: OwnedQuery,
        k: usize,
        filters: BTreeMap<String, String>,
        mode: SearchMode,
        contract: Option<Contract>,
        as_of: Option<i64>,
    ) -> ServerResult<(Arc<LoadedVersion>, Answer)> {
        let index = spec.name.as_str();
        let fusion = spec.retrieval.clone();
        let indexes = Arc::clone(self.indexes()?);
        let index = index.to_string();
        let version = (!version.is_empty()).then(|| version.to_string());
        // A blocking thread is not cancelled with its request: the embedder must itself stop at
        // the request's deadline, or retries would outlive the answer nobody waits for.
        let deadline = crate::deadline::current();
        tokio::task::spawn_blocking(move || {
            let v = indexes.get(&index, version.as_deref())?;
            let hits = v.answer(
                query.as_query(),
                &SearchOptions {
                    k,
                    filters: &filters,
                    ef: asof_retrieval::search::DEFAULT_EF,
                    mode,
                    fusion: &fusion,
                    deadline: Some(deadline),
                    contract: contract.as_ref(),
                    as_of,
                },
            )?;
            Ok::<_, RetrievalError>((v, hits))
        })
        .await
        .map_err(|e| ServerError::Transport(e.to_string()))?
        .map_err(ServerError::from)
    }

    pub async fn search_documents(
        &self,
        req: SearchDocumentsRequest,
    ) -> ServerResult<SearchDocumentsResponse> {
        let spec = Self::index_spec(&self.snapshot(), &req.index)?.clone();
        let mode = mode_of(req.mode, &spec)?;
        let query = OwnedQuery::required(req.query)?;
        let filters = req.filters.into_iter().collect();
        let contract = contract_of(&spec, req.contract.as_ref());
        let as_of = req.as_of.as_ref().map(crate::convert::nanos);
        let by_document = req.group_by == crate::proto::v1::GroupBy::Document as i32;
        let k = k_of(req.k)?;
        let child_k = if req.child_k == 0 {
            3
        } else {
            req.child_k as usize
        };
        let chunks = if by_document {
            LoadedVersion::chunks_for_documents(k, child_k).min(MAX_K)
        } else {
            k
        };
        let (v, answer) = self
            .search(
                &spec,
                &req.version,
                query,
                chunks,
                filters,
                mode,
                contract,
                as_of,
            )
            .await?;
        let (hits, documents) = if by_document {
            let groups = v.group_documents(answer.hits, k, child_k, req.return_document);
            let hits = groups
                .iter()
                .flat_map(|g| g.chunks.clone())
                .collect::<Vec<_>>();
            let documents = groups
                .into_iter()
                .map(|g| crate::proto::v1::DocumentGroup {
                    doc_id: g.doc_id,
                    score: g.score,
                    chunks: g.chunks.into_iter().map(hit_to_proto).collect(),
                    text: g.text.unwrap_or_default(),
                })
                .collect();
            (hits, documents)
        } else {
            (answer.hits, Vec::new())
        };
        Ok(SearchDocumentsResponse {
            documents,
            hits: hits.into_iter().map(hit_to_proto).collect(),
            index: req.index,
            version: v.meta.id.clone(),
            model: v.meta.model_id.clone(),
            abstained: answer.abstained,
            excluded: answer
                .excluded
                .into_iter()
                .map(|(r, n)| (r.name().to_string(), n as u32))
                .collect(),
        })
    }

    pub async fn retrieve_and_rank(
        &self,
        req: RetrieveAndRankRequest,
    ) -> ServerResult<RetrieveAndRankResponse> {
        let snap = self.snapshot();
        let spec = Self::index_spec(&snap, &req.index)?.clone();
        let refs = if req.features.is_empty() {
            spec.reranker_features.clone()
        } else {
            req.features.clone()
        };
        if refs.is_empty() {
            return Err(ServerError::InvalidArgument(format!(
                "index `{}` declares no reranker_features; name `features` in the request",
                spec.name
            )));
        }
        // Check the features before searching: a bad request costs no embedding.
        let resolved = snap.resolve(ShapeRef::Features(&refs, req.full_feature_names))?;
        let join_key = snap
            .catalog
            .entities
            .get(&spec.entity)
            .and_then(|e| e.join_keys.first().cloned())
            .ok_or_else(|| {
                ServerError::Transport(format!("entity `{}` is not registered", spec.entity))
            })?;
        if let Some(v) = resolved
            .views
            .iter()
            .find(|v| v.join_keys != [join_key.clone()])
        {
            return Err(ServerError::InvalidArgument(format!(
                "feature view `{}` is keyed by [{}], not by the documents' `{join_key}`",
                v.view.name,
                v.join_keys.join(", ")
            )));
        }
        let query = OwnedQuery::required(req.query)?;
        let query_text = query.text();
        let as_of = req
            .as_of
            .as_ref()
            .map(crate::convert::nanos)
            .unwrap_or_else(|| time::to_nanos(chrono::Utc::now()));
        let mode = mode_of(req.mode, &spec)?;
        let contract = contract_of(&spec, None);
        let by_document = req.group_by == crate::proto::v1::GroupBy::Document as i32;
        let k = k_of(req.k)?;
        let chunks = if by_document {
            LoadedVersion::chunks_for_documents(k, 1).min(MAX_K)
        } else {
            k
        };
        let (v, answer) = self
            .search(
                &spec,
                "",
                query,
                chunks,
                req.filters.into_iter().collect(),
                mode,
                contract,
                req.as_of.is_some().then_some(as_of),
            )
            .await?;
        let abstained = answer.abstained;
        let excluded: std::collections::HashMap<String, u32> = answer
            .excluded
            .iter()
            .map(|(r, n)| (r.name().to_string(), *n as u32))
            .collect();
        // By document: each document's best chunk, so one feature row per document.
        let hits: Vec<Hit> = if by_document {
            v.group_documents(answer.hits, k, 1, false)
                .into_iter()
                .flat_map(|g| g.chunks)
                .collect()
        } else {
            answer.hits
        };

        // One entity row per hit, looked up by the same code as GetOnlineFeatures.
        let doc_ids: Vec<crate::proto::v1::Value> = hits
            .iter()
            .map(|h| crate::convert::to_proto(&asof_core::value::Value::String(h.doc_id.clone())))
            .collect();
        let entities = [(join_key.clone(), RepeatedValue { values: doc_ids })].into();
        let features = self
            .online_features(&snap.registry.project, &resolved, entities, as_of)
            .await?;
        let request_id = if req.request_id.is_empty() {
            new_request_id()
        } else {
            req.request_id
        };
        if let Some(log) = self.retrieval_log() {
            let names: Vec<(String, asof_core::DType)> = resolved
                .columns
                .iter()
                .map(|(vi, f, _)| {
                    let view = &resolved.views[*vi].view;
                    let dtype = view
                        .feature(f)
                        .map(|x| x.dtype.clone())
                        .unwrap_or(asof_core::DType::String);
                    (served_column_name(&view.name, f), dtype)
                })
                .collect();
            let logged_hits: Vec<LoggedHit> = hits
                .iter()
                .enumerate()
                .map(|(row, h)| LoggedHit {
                    doc_id: h.doc_id.clone(),
                    chunk_id: h.chunk_id.clone(),
                    rank: row as i32 + 1,
                    score: h.score,
                    // Feature columns follow the single join key column.
                    features: features.results[1..]
                        .iter()
                        .map(|fv| {
                            fv.values
                                .get(row)
                                .map(from_proto)
                                .unwrap_or(asof_core::value::Value::Null)
                        })
                        .collect(),
                })
                .collect();
            let mut logged_hits = logged_hits;
            if abstained {
                logged_hits.push(LoggedHit {
                    doc_id: String::new(),
                    chunk_id: String::new(),
                    rank: 0,
                    score: 0.0,
                    features: vec![asof_core::value::Value::Null; names.len()],
                });
            }
            let counts: std::collections::BTreeMap<&String, &u32> = excluded.iter().collect();
            log.record(LoggedRequest {
                request_id: request_id.clone(),
                as_of,
                index: spec.name.clone(),
                version: v.meta.id.clone(),
                model: v.meta.model_id.clone(),
                query: query_text,
                join_key,
                features: names,
                hits: logged_hits,
                abstained,
                excluded: serde_json::to_string(&counts).unwrap_or_default(),
            })?;
        }
        Ok(RetrieveAndRankResponse {
            request_id,
            index: spec.name,
            version: v.meta.id.clone(),
            model: v.meta.model_id.clone(),
            hits: hits.into_iter().map(hit_to_proto).collect(),
            features: Some(features),
            abstained,
            excluded,
        })
    }
}

/// A request id unique enough to join logs on: time, process and a counter.
fn new_request_id() -> String {
    static COUNTER: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    format!(
        "{:x}-{:x}-{n:x}",
        chrono::Utc::now().timestamp_micros(),
        std::process::id()
    )
}

/// The retrieval log's column for a served feature: `served__view__feature`. Distinct from the
/// names `asof training-set` gives (`view__feature`), so rebuilding the features offline from the
/// log puts served and recomputed values side by side: a skew check is a column comparison.
pub fn served_column_name(view: &str, feature: &str) -> String {
    format!(
        "served__{}",
        asof_core::refs::feature_column_name(view, feature, true)
    )
}
