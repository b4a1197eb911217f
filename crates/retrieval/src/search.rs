//! Searching one loaded index version: tombstones and metadata filters applied inside the graph
//! walk, so a deleted chunk can never come back and a filter never starves the top k.

use std::collections::BTreeMap;
use std::sync::OnceLock;

use asof_core::spec::Metric;
use serde::Serialize;
use serde_json::Value as Json;

use crate::embed::{Embedder, embedder_for, normalize};
use crate::error::{RetrievalError, RetrievalResult};
use crate::frozen::FrozenGraph;
use crate::graph::Graph;
use crate::layout::{PointRecord, VersionMeta, read_points};
use crate::store::IndexStore;

/// Candidates examined per search, at least: recall@10 stays high on clustered data.
pub const DEFAULT_EF: usize = 64;

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
    /// Higher is closer: cosine similarity, or minus the squared L2 distance.
    pub score: f32,
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
    embedder: OnceLock<Result<Box<dyn Embedder>, String>>,
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
        let (points, graph) = if meta.generation == 0 || meta.graph_points == 0 {
            (Vec::new(), None)
        } else {
            let gdir = store
                .index_dir(index)
                .generation_dir(&meta.id, meta.generation);
            let graph = Graph::load(&gdir, meta.metric)?;
            let frozen = FrozenGraph::freeze(&graph, meta.embedding.dims);
            (read_points(&gdir)?, Some(frozen))
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
    /// on the document id), best first.
    pub fn search(
        &self,
        query: Query<'_>,
        k: usize,
        filters: &BTreeMap<String, String>,
        ef: usize,
    ) -> RetrievalResult<Vec<Hit>> {
        self.search_within(query, k, filters, ef, None)
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
        if k == 0 {
            return Err(RetrievalError::Query("k must be at least 1".into()));
        }
        let v = self.query_vector_within(query, deadline)?;
        Ok(self.search_vector(&v, k, filters, ef))
    }

    /// Search with a vector already in this version's space (see [`Self::query_vector`]).
    pub fn search_vector(
        &self,
        v: &[f32],
        k: usize,
        filters: &BTreeMap<String, String>,
        ef: usize,
    ) -> Vec<Hit> {
        let Some(graph) = &self.graph else {
            return Vec::new();
        };
        let keep = |id: usize| {
            let Some(&s) = self.slot.get(id) else {
                return false;
            };
            s != TOMBSTONE && matches(&self.points[s as usize], filters)
        };
        // Every graph point is live and nothing is filtered: the plain (fastest) search.
        let everything = filters.is_empty() && graph.len() == self.points.len();
        let keep: Option<&dyn Fn(usize) -> bool> = if everything { None } else { Some(&keep) };
        graph
            .search(v, k, ef.max(DEFAULT_EF), keep)
            .into_iter()
            .map(|(id, d)| {
                let p = &self.points[self.slot[id] as usize];
                Hit {
                    doc_id: p.doc_id.clone(),
                    chunk_id: p.chunk_id.clone(),
                    score: match self.meta.metric {
                        Metric::Cosine => 1.0 - d,
                        Metric::L2 => -d,
                    },
                    text: p.text.clone(),
                    doc_version: p.doc_version.clone(),
                    indexed_at: p.indexed_at,
                    metadata: p.metadata.clone(),
                }
            })
            .collect()
    }
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
