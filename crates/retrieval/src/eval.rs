//! `asof index eval`: recall@k and MRR of every version on labelled queries, so a promote is a
//! measured decision. Scored per document (a document's best chunk stands for it).

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::error::{RetrievalError, RetrievalResult};
use crate::search::{DEFAULT_EF, LoadedVersion, Query};
use crate::store::IndexStore;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LabeledQuery {
    pub query: String,
    /// Doc ids that answer the query.
    pub relevant: Vec<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct VersionEval {
    pub version: String,
    pub model_id: String,
    pub live: bool,
    pub queries: usize,
    pub k: usize,
    pub recall_at_k: f64,
    pub mrr: f64,
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

/// The first `k` distinct documents for `query`, best first.
pub fn top_documents(v: &LoadedVersion, query: &str, k: usize) -> RetrievalResult<Vec<String>> {
    let hits = v.search(
        Query::Text(query),
        k * 4,
        &BTreeMap::new(),
        DEFAULT_EF.max(k * 8),
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

/// Evaluates every version of `index` that holds data.
pub fn evaluate(
    store: &IndexStore,
    index: &str,
    queries: &[LabeledQuery],
    k: usize,
) -> RetrievalResult<Vec<VersionEval>> {
    if k == 0 {
        return Err(RetrievalError::Query("k must be at least 1".into()));
    }
    let manifest = store.manifest(index)?;
    let mut out = Vec::new();
    for meta in manifest.versions.values().filter(|m| m.generation > 0) {
        let v = LoadedVersion::load(store, index, meta)?;
        let (mut recall, mut rr) = (0.0, 0.0);
        for q in queries {
            let docs = top_documents(&v, &q.query, k)?;
            let found = q.relevant.iter().filter(|d| docs.contains(d)).count();
            recall += found as f64 / q.relevant.len() as f64;
            if let Some(rank) = docs.iter().position(|d| q.relevant.contains(d)) {
                rr += 1.0 / (rank + 1) as f64;
            }
        }
        let n = queries.len() as f64;
        out.push(VersionEval {
            version: meta.id.clone(),
            model_id: meta.model_id.clone(),
            live: manifest.live.as_deref() == Some(meta.id.as_str()),
            queries: queries.len(),
            k,
            recall_at_k: recall / n,
            mrr: rr / n,
        });
    }
    Ok(out)
}
