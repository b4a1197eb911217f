//! Searching one loaded index version: tombstones and metadata filters applied inside the graph
//! walk, so a deleted chunk can never come back and a filter never starves the top k.

use std::collections::BTreeMap;
use std::sync::OnceLock;

use asof_core::spec::{Contract, Metric, OnViolation, Retrieval, SearchMode};
use serde::Serialize;
use serde_json::Value as Json;

use crate::embed::{Embedder, embedder_for, normalize};
use crate::error::{RetrievalError, RetrievalResult};
use crate::frozen::FrozenGraph;
use crate::graph::Graph;
use crate::layout::{PointRecord, VersionMeta, read_points};
use crate::sparse::SparseIndex;
use crate::store::IndexStore;

/// Candidates examined per search, at least: recall@10 stays high on clustered data.
pub const DEFAULT_EF: usize = 64;

/// A filtered dense search scans the passing points exactly when there are at most this many
/// (a walk through a graph of mostly filtered-out points finds too few of them).
pub const EXACT_BELOW: usize = 2_000;

/// What to search for.
#[derive(Debug, Clone, Copy)]
pub enum Query<'a> {
    /// Embedded by the version's own model, so it always lands in the right space.
    Text(&'a str),
    /// A vector the caller embedded; `model` must be the version's model id.
    Vector { values: &'a [f32], model: &'a str },
}

#[derive(Debug, Clone, Serialize)]
pub struct Hit {
    pub doc_id: String,
    pub chunk_id: String,
    /// Higher is better. Dense: cosine similarity, or minus the squared L2 distance. Sparse: BM25.
    /// Hybrid: the reciprocal rank fusion score (a ranking, not a threshold).
    pub score: f32,
    /// Each arm's rank (from 1) and score for this chunk, when the arm ran and found it.
    pub dense: Option<(u32, f32)>,
    pub sparse: Option<(u32, f32)>,
    pub text: String,
    pub doc_version: String,
    pub indexed_at: chrono::DateTime<chrono::Utc>,
    pub metadata: BTreeMap<String, Json>,
}

/// A version in memory, ready to answer queries. Immutable: a newer generation is loaded beside it
/// and swapped in.
pub struct LoadedVersion {
    pub index: String,
    pub meta: VersionMeta,
    points: Vec<PointRecord>,
    /// Point id -> position in `points`; `u32::MAX` for tombstoned ids.
    slot: Vec<u32>,
    graph: Option<FrozenGraph>,
    /// BM25 over the same chunks (`None` for generations written before asof had it).
    sparse: Option<SparseIndex>,
    embedder: OnceLock<Result<Box<dyn Embedder>, String>>,
}

/// How one search runs.
#[derive(Debug, Clone, Copy)]
pub struct SearchOptions<'a> {
    pub k: usize,
    pub filters: &'a BTreeMap<String, String>,
    /// Graph candidates examined, at least [`DEFAULT_EF`].
    pub ef: usize,
    pub mode: SearchMode,
    /// RRF constant and arm weights (hybrid).
    pub fusion: &'a Retrieval,
    /// Embed the query by then (the server's request deadline).
    pub deadline: Option<std::time::Instant>,
    /// The contract chunks must meet (the index's, narrowed by the request).
    pub contract: Option<&'a Contract>,
    /// Point-in-time retrieval: documents updated after this instant (UTC ns) are not returned,
    /// and the contract's `max_age` counts back from it.
    pub as_of: Option<i64>,
}

/// A document among the results: its best chunks, scored by the best of them (LangChain's
/// parent-document retriever: chunks are searched, documents returned).
#[derive(Debug, Clone, Serialize)]
pub struct DocumentResult {
    pub doc_id: String,
    pub score: f32,
    /// Its best `child_k` chunks, best first.
    pub chunks: Vec<Hit>,
    /// The whole document, rebuilt from its chunks, when asked for.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
}

/// Why a chunk was kept out of an answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Exclusion {
    /// Its document was updated after the request's `as_of`.
    UpdatedAfterAsOf,
    TooOld,
    Type,
    MissingMetadata,
    BelowScore,
}

impl Exclusion {
    pub fn name(self) -> &'static str {
        match self {
            Exclusion::UpdatedAfterAsOf => "updated_after_as_of",
            Exclusion::TooOld => "too_old",
            Exclusion::Type => "type",
            Exclusion::MissingMetadata => "missing_metadata",
            Exclusion::BelowScore => "below_score",
        }
    }
}

/// A search's answer under a contract.
#[derive(Debug, Clone, Serialize)]
pub struct Answer {
    pub hits: Vec<Hit>,
    /// Fewer than `min_results` chunks qualified and the contract says abstain: no hits.
    pub abstained: bool,
    /// Among the chunks the query would have returned without the contract (and `as_of`), how
    /// many each reason kept out.
    pub excluded: BTreeMap<Exclusion, usize>,
}

/// Why `p` may not be returned under `contract` as of `as_of`, if it may not.
pub fn exclusion(
    p: &PointRecord,
    contract: Option<&Contract>,
    as_of: Option<i64>,
) -> Option<Exclusion> {
    let updated = chrono::DateTime::parse_from_rfc3339(&p.doc_version)
        .ok()
        .and_then(|t| t.timestamp_nanos_opt());
    if let (Some(as_of), Some(u)) = (as_of, updated)
        && u > as_of
    {
        return Some(Exclusion::UpdatedAfterAsOf);
    }
    let c = contract?;
    if let Some(max) = c.max_age.and_then(|t| t.as_nanos()) {
        let now =
            as_of.unwrap_or_else(|| chrono::Utc::now().timestamp_nanos_opt().unwrap_or(i64::MAX));
        // A version that is not a time cannot be shown to be fresh.
        if updated.is_none_or(|u| u < now.saturating_sub(max)) {
            return Some(Exclusion::TooOld);
        }
    }
    if let Some(types) = &c.allowed_types {
        let ok = matches!(p.metadata.get("type"), Some(Json::String(t)) if types.contains(t));
        if !ok {
            return Some(Exclusion::Type);
        }
    }
    if c.required_metadata
        .iter()
        .any(|m| p.metadata.get(m).is_none_or(Json::is_null))
    {
        return Some(Exclusion::MissingMetadata);
    }
    None
}

impl<'a> SearchOptions<'a> {
    /// A plain dense search: no contract, no `as_of`, no deadline.
    pub fn dense(
        k: usize,
        filters: &'a BTreeMap<String, String>,
        ef: usize,
        fusion: &'a Retrieval,
    ) -> Self {
        SearchOptions {
            k,
            filters,
            ef,
            mode: SearchMode::Dense,
            fusion,
            deadline: None,
            contract: None,
            as_of: None,
        }
    }
}

/// Candidates each arm contributes to a hybrid search: deeper than k, so that a chunk ranked
/// modestly by both arms can still win.
fn candidates(k: usize) -> usize {
    (5 * k).max(50)
}

impl std::fmt::Debug for LoadedVersion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoadedVersion")
            .field("index", &self.index)
            .field("version", &self.meta.id)
            .field("generation", &self.meta.generation)
            .field("points", &self.points.len())
            .finish()
    }
}

const TOMBSTONE: u32 = u32::MAX;

impl LoadedVersion {
    pub fn load(store: &IndexStore, index: &str, meta: &VersionMeta) -> RetrievalResult<Self> {
        let (points, graph, sparse) = if meta.generation == 0 || meta.graph_points == 0 {
            (Vec::new(), None, None)
        } else {
            let gdir = store
                .index_dir(index)
                .generation_dir(&meta.id, meta.generation);
            let graph = Graph::load(&gdir, meta.metric)?;
            let frozen = FrozenGraph::freeze(&graph, meta.embedding.dims);
            (read_points(&gdir)?, Some(frozen), SparseIndex::open(&gdir)?)
        };
        let mut slot = vec![TOMBSTONE; meta.next_id];
        for (i, p) in points.iter().enumerate() {
            let s = slot.get_mut(p.id).ok_or_else(|| {
                RetrievalError::corrupt(
                    store.index_dir(index).dir,
                    format!("point id {} beyond next_id", p.id),
                )
            })?;
            *s = i as u32;
        }
        Ok(LoadedVersion {
            index: index.to_string(),
            meta: meta.clone(),
            points,
            slot,
            graph,
            sparse,
            embedder: OnceLock::new(),
        })
    }

    pub fn len(&self) -> usize {
        self.points.len()
    }

    pub fn is_empty(&self) -> bool {
        self.points.is_empty()
    }

    fn embedder(&self) -> RetrievalResult<&dyn Embedder> {
        match self
            .embedder
            .get_or_init(|| embedder_for(&self.meta.embedding).map_err(|e| e.to_string()))
        {
            Ok(e) => Ok(e.as_ref()),
            Err(message) => Err(RetrievalError::Embedder {
                model: self.meta.model_id.clone(),
                message: message.clone(),
            }),
        }
    }

    /// The query as a vector of this version's space.
    pub fn query_vector(&self, query: Query<'_>) -> RetrievalResult<Vec<f32>> {
        self.query_vector_within(query, None)
    }

    /// [`Self::query_vector`], embedding text by `deadline` when there is one.
    pub fn query_vector_within(
        &self,
        query: Query<'_>,
        deadline: Option<std::time::Instant>,
    ) -> RetrievalResult<Vec<f32>> {
        let mut v = match query {
            Query::Text(text) => {
                if text.trim().is_empty() {
                    return Err(RetrievalError::Query("query text is empty".into()));
                }
                let embedder = self.embedder()?;
                match deadline {
                    Some(d) => embedder.embed_within(&[text], d)?,
                    None => embedder.embed(&[text])?,
                }
                .pop()
                .unwrap_or_default()
            }
            Query::Vector { values, model } => {
                if model != self.meta.model_id {
                    return Err(RetrievalError::ModelMismatch {
                        index: self.index.clone(),
                        version: self.meta.id.clone(),
                        query: model.to_string(),
                        expected: self.meta.model_id.clone(),
                    });
                }
                values.to_vec()
            }
        };
        if v.len() != self.meta.embedding.dims {
            return Err(RetrievalError::Query(format!(
                "query vector has {} dims; `{}` has {}",
                v.len(),
                self.meta.model_id,
                self.meta.embedding.dims
            )));
        }
        if v.iter().any(|x| !x.is_finite()) {
            return Err(RetrievalError::Query(
                "query vector holds NaN or infinity".into(),
            ));
        }
        if self.meta.metric == Metric::Cosine {
            normalize(&mut v);
        }
        Ok(v)
    }

    /// The `k` best chunks passing `filters` (metadata field -> required value; `doc_id` filters
    /// on the document id), best first, by dense search (see [`Self::search_with`] for modes).
    pub fn search(
        &self,
        query: Query<'_>,
        k: usize,
        filters: &BTreeMap<String, String>,
        ef: usize,
    ) -> RetrievalResult<Vec<Hit>> {
        self.search_within(query, k, filters, ef, None)
    }

    /// Whether this version can answer sparse (BM25) searches.
    pub fn has_sparse(&self) -> bool {
        self.sparse.is_some()
    }

    /// The `k` best chunks in `opts.mode`. Filters (and tombstones) apply inside each arm, never
    /// after it, so a selective filter still gets k hits when k exist. Sparse needs query text; a
    /// hybrid search with a vector runs the dense arm alone, and so does a hybrid search of a
    /// version written before it had a BM25 index.
    pub fn search_with(
        &self,
        query: Query<'_>,
        opts: &SearchOptions<'_>,
    ) -> RetrievalResult<Vec<Hit>> {
        Ok(self.answer(query, opts)?.hits)
    }

    /// [`Self::search_with`] under the options' contract and `as_of`: the chunks that break
    /// them are kept out inside both arms (so they never starve k), hits below `min_score`
    /// (dense) are dropped, and with fewer than `min_results` left the answer abstains. The
    /// reasons are counted over what an unconstrained search would have returned.
    pub fn answer(&self, query: Query<'_>, opts: &SearchOptions<'_>) -> RetrievalResult<Answer> {
        if opts.contract.is_none() && opts.as_of.is_none() {
            return Ok(Answer {
                hits: self.ranked(query, opts)?,
                abstained: false,
                excluded: BTreeMap::new(),
            });
        }
        let min_score = opts.contract.and_then(|c| c.min_score);
        let below = |h: &Hit| match (min_score, h.dense) {
            (Some(min), Some((_, score))) => score < min,
            (Some(_), None) => opts.mode != SearchMode::Sparse,
            (None, _) => false,
        };
        let mut excluded = BTreeMap::new();
        let open = SearchOptions {
            k: candidates(opts.k),
            contract: None,
            as_of: None,
            ..*opts
        };
        for h in self.ranked(query, &open)? {
            let reason = self
                .point_of(&h.chunk_id)
                .and_then(|p| exclusion(p, opts.contract, opts.as_of))
                .or_else(|| below(&h).then_some(Exclusion::BelowScore));
            if let Some(r) = reason {
                *excluded.entry(r).or_insert(0) += 1;
            }
        }
        let mut hits = self.ranked(query, opts)?;
        hits.retain(|h| !below(h));
        let abstained = opts
            .contract
            .is_some_and(|c| hits.len() < c.min_results && c.on_violation == OnViolation::Abstain);
        if abstained {
            hits.clear();
        }
        Ok(Answer {
            hits,
            abstained,
            excluded,
        })
    }

    /// Groups ranked chunks into the `parent_k` best documents (in order of their best chunk),
    /// each with its `child_k` best chunks and, with `whole`, its full text. Search with enough
    /// chunks for this: [`Self::chunks_for_documents`].
    pub fn group_documents(
        &self,
        hits: Vec<Hit>,
        parent_k: usize,
        child_k: usize,
        whole: bool,
    ) -> Vec<DocumentResult> {
        let mut out: Vec<DocumentResult> = Vec::new();
        for h in hits {
            match out.iter().position(|d| d.doc_id == h.doc_id) {
                Some(i) if out[i].chunks.len() < child_k.max(1) => out[i].chunks.push(h),
                Some(_) => {}
                None if out.len() < parent_k => out.push(DocumentResult {
                    doc_id: h.doc_id.clone(),
                    score: h.score,
                    chunks: vec![h],
                    text: None,
                }),
                None => {}
            }
        }
        if whole {
            for d in &mut out {
                d.text = Some(self.document_text(&d.doc_id));
            }
        }
        out
    }

    /// Chunks to ask for so that `parent_k` documents are likely to fill: documents have several
    /// chunks each.
    pub fn chunks_for_documents(parent_k: usize, child_k: usize) -> usize {
        (parent_k * child_k.max(1) * 4).max(parent_k * 8)
    }

    /// A document's text, rebuilt from its live chunks.
    pub fn document_text(&self, doc_id: &str) -> String {
        let mut parts: Vec<(usize, &str)> = self
            .points
            .iter()
            .filter(|p| p.doc_id == doc_id)
            .map(|p| {
                let ordinal = p
                    .chunk_id
                    .rsplit_once('#')
                    .and_then(|(_, n)| n.parse().ok())
                    .unwrap_or(0);
                (ordinal, p.text.as_str())
            })
            .collect();
        crate::chunker::join_chunks(&mut parts, &self.meta.chunking)
    }

    fn point_of(&self, chunk_id: &str) -> Option<&PointRecord> {
        self.points.iter().find(|p| p.chunk_id == chunk_id)
    }

    /// The arms and their fusion, with the options' filters, contract and `as_of` inside them.
    fn ranked(&self, query: Query<'_>, opts: &SearchOptions<'_>) -> RetrievalResult<Vec<Hit>> {
        if opts.k == 0 {
            return Err(RetrievalError::Query("k must be at least 1".into()));
        }
        let text = match query {
            Query::Text(t) => Some(t),
            Query::Vector { .. } => None,
        };
        let sparse_ready = self.sparse.is_some() && text.is_some();
        match opts.mode {
            SearchMode::Sparse if text.is_none() => {
                return Err(RetrievalError::Query(
                    "sparse search needs query text, not a vector".into(),
                ));
            }
            SearchMode::Sparse if self.sparse.is_none() && !self.points.is_empty() => {
                return Err(RetrievalError::Query(format!(
                    "index `{}` version `{}` has no BM25 index yet; run `asof index sync {}`",
                    self.index, self.meta.id, self.index
                )));
            }
            _ => {}
        }
        let hybrid = opts.mode == SearchMode::Hybrid && sparse_ready;
        let depth = if hybrid { candidates(opts.k) } else { opts.k };
        let dense = match opts.mode {
            SearchMode::Sparse => Vec::new(),
            _ => {
                let v = self.query_vector_within(query, opts.deadline)?;
                self.dense_ids(&v, depth, opts, opts.ef)
            }
        };
        let sparse = match (opts.mode, text) {
            (SearchMode::Dense, _) | (_, None) => Vec::new(),
            (_, Some(t)) if sparse_ready => self.sparse_ids(t, depth, opts)?,
            _ => Vec::new(),
        };
        let ranked = match opts.mode {
            SearchMode::Dense => dense.iter().map(|&(id, s)| (id, s)).collect(),
            SearchMode::Sparse => sparse.iter().map(|&(id, s)| (id, s)).collect(),
            SearchMode::Hybrid if !hybrid => dense.iter().map(|&(id, s)| (id, s)).collect(),
            SearchMode::Hybrid => rrf(&dense, &sparse, opts.fusion),
        };
        let rank_of = |list: &[(usize, f32)], id: usize| {
            list.iter()
                .position(|(i, _)| *i == id)
                .map(|r| (r as u32 + 1, list[r].1))
        };
        Ok(ranked
            .into_iter()
            .take(opts.k)
            .map(|(id, score)| {
                let mut hit = self.hit(id, score);
                hit.dense = rank_of(&dense, id);
                hit.sparse = rank_of(&sparse, id);
                hit
            })
            .collect())
    }

    /// [`Self::search`] that embeds its query by `deadline` (the server's request deadline).
    pub fn search_within(
        &self,
        query: Query<'_>,
        k: usize,
        filters: &BTreeMap<String, String>,
        ef: usize,
        deadline: Option<std::time::Instant>,
    ) -> RetrievalResult<Vec<Hit>> {
        let fusion = Retrieval::default();
        let opts = SearchOptions {
            deadline,
            ..SearchOptions::dense(k, filters, ef, &fusion)
        };
        self.search_with(query, &opts)
    }

    /// Whether point `id` is live and passes the options' filters, contract and `as_of`.
    fn allowed(&self, id: usize, opts: &SearchOptions<'_>) -> bool {
        match self.slot.get(id) {
            Some(&s) if s != TOMBSTONE => {
                let p = &self.points[s as usize];
                matches(p, opts.filters) && exclusion(p, opts.contract, opts.as_of).is_none()
            }
            _ => false,
        }
    }

    fn hit(&self, id: usize, score: f32) -> Hit {
        let p = &self.points[self.slot[id] as usize];
        Hit {
            doc_id: p.doc_id.clone(),
            chunk_id: p.chunk_id.clone(),
            score,
            dense: None,
            sparse: None,
            text: p.text.clone(),
            doc_version: p.doc_version.clone(),
            indexed_at: p.indexed_at,
            metadata: p.metadata.clone(),
        }
    }

    /// The sparse arm: BM25 ids and scores, filtered inside the collector.
    fn sparse_ids(
        &self,
        text: &str,
        n: usize,
        opts: &SearchOptions<'_>,
    ) -> RetrievalResult<Vec<(usize, f32)>> {
        let Some(sparse) = &self.sparse else {
            return Ok(Vec::new());
        };
        // The collector runs on tantivy's threads: it gets its own copy of what it checks.
        let live: std::sync::Arc<Vec<bool>> = std::sync::Arc::new(
            (0..self.slot.len())
                .map(|id| self.allowed(id, opts))
                .collect(),
        );
        sparse.search(text, n, move |id| {
            live.get(id as usize).copied().unwrap_or(false)
        })
    }

    /// Search with a vector already in this version's space (see [`Self::query_vector`]).
    pub fn search_vector(
        &self,
        v: &[f32],
        k: usize,
        filters: &BTreeMap<String, String>,
        ef: usize,
    ) -> Vec<Hit> {
        let fusion = Retrieval::default();
        let opts = SearchOptions::dense(k, filters, ef, &fusion);
        self.dense_ids(v, k, &opts, ef)
            .into_iter()
            .enumerate()
            .map(|(rank, (id, score))| {
                let mut hit = self.hit(id, score);
                hit.dense = Some((rank as u32 + 1, score));
                hit
            })
            .collect()
    }

    /// The dense arm: graph ids and similarity scores, filtered inside the walk.
    fn dense_ids(
        &self,
        v: &[f32],
        k: usize,
        opts: &SearchOptions<'_>,
        ef: usize,
    ) -> Vec<(usize, f32)> {
        let Some(graph) = &self.graph else {
            return Vec::new();
        };
        let keep = |id: usize| self.allowed(id, opts);
        // Every graph point is live and nothing is filtered: the plain (fastest) search.
        let everything = opts.filters.is_empty()
            && opts.contract.is_none()
            && opts.as_of.is_none()
            && graph.len() == self.points.len();
        let ef = ef.max(DEFAULT_EF);
        let found = if everything {
            graph.search(v, k, ef, None)
        } else {
            // As Lucene does: when no more points pass than the walk would examine, scan them.
            let limit = EXACT_BELOW.max(ef);
            let passing = (0..self.slot.len())
                .filter(|&id| keep(id))
                .take(limit + 1)
                .count();
            if passing <= limit {
                graph.exact(v, k, &keep)
            } else {
                graph.search(v, k, ef, Some(&keep))
            }
        };
        found
            .into_iter()
            .map(|(id, d)| {
                let score = match self.meta.metric {
                    Metric::Cosine => 1.0 - d,
                    Metric::L2 => -d,
                };
                (id, score)
            })
            .collect()
    }
}

/// Reciprocal rank fusion: each arm adds `weight / (rrf_k + rank)` (ranks from 1) to the chunks
/// it found; best first, ties broken by the better dense rank then id, so results are stable.
pub fn rrf(
    dense: &[(usize, f32)],
    sparse: &[(usize, f32)],
    fusion: &Retrieval,
) -> Vec<(usize, f32)> {
    let mut scores: std::collections::HashMap<usize, (f32, usize)> = Default::default();
    let k = fusion.rrf_k as f32;
    for (rank, (id, _)) in dense.iter().enumerate() {
        let e = scores.entry(*id).or_insert((0.0, usize::MAX));
        e.0 += fusion.weights.dense / (k + rank as f32 + 1.0);
        e.1 = rank;
    }
    for (rank, (id, _)) in sparse.iter().enumerate() {
        scores.entry(*id).or_insert((0.0, usize::MAX)).0 +=
            fusion.weights.sparse / (k + rank as f32 + 1.0);
    }
    let mut fused: Vec<(usize, f32, usize)> = scores
        .into_iter()
        .map(|(id, (s, dense_rank))| (id, s, dense_rank))
        .collect();
    fused.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.2.cmp(&b.2)).then(a.0.cmp(&b.0)));
    fused.into_iter().map(|(id, s, _)| (id, s)).collect()
}

fn matches(p: &PointRecord, filters: &BTreeMap<String, String>) -> bool {
    filters.iter().all(|(field, want)| {
        if field == "doc_id" {
            return p.doc_id == *want;
        }
        match p.metadata.get(field) {
            Some(Json::String(s)) => s == want,
            Some(other) => serde_json::from_str::<Json>(want).is_ok_and(|w| w == *other),
            None => false,
        }
    })
}
