//! `asof index eval`: nDCG@10, recall@k and MRR of every version and search mode on labelled
//! queries, and the promote gate that compares a version with the live one, so a promote is a
//! measured decision. Scored per document (a document's best chunk stands for it), with binary
//! relevance.

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

use asof_core::spec::{DocumentIndex, EvalMetric, Retrieval, SearchMode};

use crate::error::{RetrievalError, RetrievalResult};
use crate::search::{DEFAULT_EF, LoadedVersion, Query, SearchOptions};
use crate::store::IndexStore;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LabeledQuery {
    /// An optional label for the query (test collections number theirs).
    #[serde(default)]
    pub id: Option<serde_json::Value>,
    pub query: String,
    /// Doc ids that answer the query.
    pub relevant: Vec<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct VersionEval {
    pub version: String,
    pub model_id: String,
    pub live: bool,
    pub mode: SearchMode,
    pub queries: usize,
    pub k: usize,
    pub ndcg_at_10: f64,
    pub recall_at_k: f64,
    pub mrr: f64,
}

impl VersionEval {
    pub fn metric(&self, metric: EvalMetric) -> f64 {
        match metric {
            EvalMetric::Ndcg10 => self.ndcg_at_10,
            // The gate's recall is at 10 whatever k the report used.
            EvalMetric::Recall10 => self.recall_at_k,
            EvalMetric::Mrr => self.mrr,
        }
    }
}

/// Reads `{"query": ..., "relevant": [doc ids]}` lines.
pub fn read_queries(path: &Path) -> RetrievalResult<Vec<LabeledQuery>> {
    let text = std::fs::read_to_string(path).map_err(|e| RetrievalError::io(path, e))?;
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let q: LabeledQuery = serde_json::from_str(line).map_err(|e| RetrievalError::Document {
            path: path.to_path_buf(),
            line: Some(i + 1),
            message: format!(
                "{e} (expected {{\"query\": \"...\", \"relevant\": [\"doc_id\", ...]}})"
            ),
        })?;
        if q.relevant.is_empty() {
            return Err(RetrievalError::Document {
                path: path.to_path_buf(),
                line: Some(i + 1),
                message: "`relevant` is empty: a query needs at least one relevant doc id".into(),
            });
        }
        out.push(q);
    }
    if out.is_empty() {
        return Err(RetrievalError::Document {
            path: path.to_path_buf(),
            line: None,
            message: "no queries".into(),
        });
    }
    Ok(out)
}

/// The first `k` distinct documents for `query` in `mode`, best first.
pub fn top_documents(
    v: &LoadedVersion,
    query: &str,
    k: usize,
    mode: SearchMode,
    fusion: &Retrieval,
) -> RetrievalResult<Vec<String>> {
    let none = BTreeMap::new();
    let hits = v.search_with(
        Query::Text(query),
        &SearchOptions {
            k: k * 4,
            filters: &none,
            ef: DEFAULT_EF.max(k * 8),
            mode,
            fusion,
            deadline: None,
            contract: None,
            as_of: None,
        },
    )?;
    let mut docs: Vec<String> = Vec::with_capacity(k);
    for h in hits {
        if !docs.contains(&h.doc_id) {
            docs.push(h.doc_id);
            if docs.len() == k {
                break;
            }
        }
    }
    Ok(docs)
}

/// nDCG@n of a ranking with binary relevance.
pub fn ndcg(ranked: &[String], relevant: &[String], n: usize) -> f64 {
    let gain = |i: usize| 1.0 / ((i + 2) as f64).log2();
    let dcg: f64 = ranked
        .iter()
        .take(n)
        .enumerate()
        .filter(|(_, d)| relevant.contains(d))
        .map(|(i, _)| gain(i))
        .sum();
    let ideal: f64 = (0..relevant.len().min(n)).map(gain).sum();
    if ideal == 0.0 { 0.0 } else { dcg / ideal }
}

/// One version in one mode.
fn score(
    v: &LoadedVersion,
    queries: &[LabeledQuery],
    k: usize,
    mode: SearchMode,
    fusion: &Retrieval,
) -> RetrievalResult<(f64, f64, f64)> {
    let (mut n10, mut recall, mut rr) = (0.0, 0.0, 0.0);
    let depth = k.max(10);
    for q in queries {
        let docs = top_documents(v, &q.query, depth, mode, fusion)?;
        n10 += ndcg(&docs, &q.relevant, 10);
        let top_k = &docs[..docs.len().min(k)];
        let found = q.relevant.iter().filter(|d| top_k.contains(d)).count();
        recall += found as f64 / q.relevant.len() as f64;
        if let Some(rank) = top_k.iter().position(|d| q.relevant.contains(d)) {
            rr += 1.0 / (rank + 1) as f64;
        }
    }
    let n = queries.len() as f64;
    Ok((n10 / n, recall / n, rr / n))
}

/// Evaluates every version of `index` that holds data, in each of `modes` it supports.
pub fn evaluate(
    store: &IndexStore,
    index: &str,
    queries: &[LabeledQuery],
    k: usize,
    modes: &[SearchMode],
    fusion: &Retrieval,
) -> RetrievalResult<Vec<VersionEval>> {
    if k == 0 {
        return Err(RetrievalError::Query("k must be at least 1".into()));
    }
    let manifest = store.manifest(index)?;
    let mut out = Vec::new();
    for meta in manifest.versions.values().filter(|m| m.generation > 0) {
        let v = LoadedVersion::load(store, index, meta)?;
        for &mode in modes {
            if mode != SearchMode::Dense && !v.has_sparse() {
                continue;
            }
            let (ndcg_at_10, recall_at_k, mrr) = score(&v, queries, k, mode, fusion)?;
            out.push(VersionEval {
                version: meta.id.clone(),
                model_id: meta.model_id.clone(),
                live: manifest.live.as_deref() == Some(meta.id.as_str()),
                mode,
                queries: queries.len(),
                k,
                ndcg_at_10,
                recall_at_k,
                mrr,
            });
        }
    }
    Ok(out)
}

/// What the promote gate found.
#[derive(Debug, Clone, Serialize)]
pub struct GateOutcome {
    pub metric: EvalMetric,
    pub mode: SearchMode,
    pub max_regression: f64,
    pub candidate: String,
    pub candidate_score: f64,
    /// The live version and its score (none before the first promote).
    pub live: Option<(String, f64)>,
    pub passed: bool,
}

/// Scores `candidate` against the live version on the index's `eval` queries (paths relative to
/// `repo_dir`), in the index's default mode. `None` when the index declares no gate.
pub fn gate(
    store: &IndexStore,
    repo_dir: &Path,
    spec: &DocumentIndex,
    candidate: &str,
) -> RetrievalResult<Option<GateOutcome>> {
    let Some(gate) = &spec.eval else {
        return Ok(None);
    };
    let queries = read_queries(&repo_dir.join(&gate.queries))?;
    let manifest = store.manifest(&spec.name)?;
    let mode = spec.retrieval.mode;
    let k = 10;
    let score_of = |version: &str| -> RetrievalResult<f64> {
        let meta =
            manifest
                .versions
                .get(version)
                .ok_or_else(|| RetrievalError::UnknownVersion {
                    index: spec.name.clone(),
                    version: version.to_string(),
                    hint: String::new(),
                })?;
        let v = LoadedVersion::load(store, &spec.name, meta)?;
        let mode = if v.has_sparse() {
            mode
        } else {
            SearchMode::Dense
        };
        let (n10, recall, mrr) = score(&v, &queries, k, mode, &spec.retrieval)?;
        Ok(match gate.metric {
            EvalMetric::Ndcg10 => n10,
            EvalMetric::Recall10 => recall,
            EvalMetric::Mrr => mrr,
        })
    };
    let candidate_score = score_of(candidate)?;
    let live = match manifest.live.as_deref() {
        Some(l) if l != candidate => Some((l.to_string(), score_of(l)?)),
        _ => None,
    };
    let passed = live
        .as_ref()
        .is_none_or(|(_, l)| candidate_score >= l - gate.max_regression);
    Ok(Some(GateOutcome {
        metric: gate.metric,
        mode,
        max_regression: gate.max_regression,
        candidate: candidate.to_string(),
        candidate_score,
        live,
        passed,
    }))
}
