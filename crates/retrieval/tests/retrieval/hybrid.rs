//! Dense, sparse (BM25) and hybrid search over the same generations: both arms see the same
//! tombstones, filters apply inside each arm, and fusion reports each arm's rank.

use std::collections::BTreeMap;

use asof_core::spec::{Retrieval, SearchMode};
use asof_retrieval::{Hit, IndexStore, LiveIndexes, Query, SearchOptions};

use crate::{corpus, spec, write_docs};

const T0: &str = "2026-01-01T00:00:00Z";

fn search(
    live: &LiveIndexes,
    text: &str,
    mode: SearchMode,
    k: usize,
    filters: &BTreeMap<String, String>,
) -> Vec<Hit> {
    live.get("help", None)
        .unwrap()
        .search_with(
            Query::Text(text),
            &SearchOptions {
                k,
                filters,
                ef: 64,
                mode,
                fusion: &Retrieval::default(),
                deadline: None,
                contract: None,
                as_of: None,
            },
        )
        .unwrap()
}

const MODES: [SearchMode; 3] = [SearchMode::Dense, SearchMode::Sparse, SearchMode::Hybrid];

#[test]
fn sparse_finds_exact_tokens_hybrid_fuses_both_arms_and_filters_apply_inside_each() {
    let dir = tempfile::tempdir().unwrap();
    let mut docs = corpus(60);
    docs.push((
        "code".into(),
        "error ZX4471 means the card was declined".into(),
    ));
    write_docs(dir.path(), &docs, T0);
    let store = IndexStore::new(dir.path().join("data/indexes"));
    store.sync(dir.path(), &spec("hashing-v1")).unwrap();
    let live = LiveIndexes::new(store);
    let none = BTreeMap::new();

    let sparse = search(&live, "ZX4471", SearchMode::Sparse, 5, &none);
    assert_eq!(
        sparse[0].doc_id, "code",
        "an exact token is BM25's strength"
    );
    assert_eq!(sparse.len(), 1, "only chunks holding a query term match");
    assert!(sparse[0].sparse.is_some() && sparse[0].dense.is_none());

    // Hybrid: reciprocal rank fusion of both arms, each hit with the ranks it got.
    let text = "refund payment card declined";
    let dense = search(&live, text, SearchMode::Dense, 200, &none);
    let sparse = search(&live, text, SearchMode::Sparse, 200, &none);
    let hybrid = search(&live, text, SearchMode::Hybrid, 10, &none);
    assert_eq!(hybrid.len(), 10);
    for h in &hybrid {
        let d = dense.iter().position(|x| x.chunk_id == h.chunk_id);
        let s = sparse.iter().position(|x| x.chunk_id == h.chunk_id);
        let expect =
            d.map_or(0.0, |r| 1.0 / (61.0 + r as f32)) + s.map_or(0.0, |r| 1.0 / (61.0 + r as f32));
        assert!((h.score - expect).abs() < 1e-6, "{h:?}: RRF {expect}");
        assert_eq!(h.dense.map(|(r, _)| r as usize), d.map(|r| r + 1));
        assert_eq!(h.sparse.map(|(r, _)| r as usize), s.map(|r| r + 1));
    }
    assert!(hybrid.windows(2).all(|w| w[0].score >= w[1].score));

    // A filter that leaves one document: every arm returns it and only it, never fewer.
    let one: BTreeMap<String, String> = [("doc_id".to_string(), "doc007".to_string())].into();
    for mode in MODES {
        let hits = search(&live, "billing refund driver trip", mode, 5, &one);
        assert!(!hits.is_empty(), "{mode}: the filter starved the results");
        assert!(
            hits.iter().all(|h| h.doc_id == "doc007"),
            "{mode}: {hits:?}"
        );
    }
}

#[test]
fn tombstones_hold_in_both_arms_across_syncs() {
    let dir = tempfile::tempdir().unwrap();
    let mut docs = corpus(30);
    docs.push(("gone".into(), "quasar nebula telescope observatory".into()));
    docs.push(("edited".into(), "old wording about walrus migration".into()));
    write_docs(dir.path(), &docs, T0);
    let store = IndexStore::new(dir.path().join("data/indexes"));
    store.sync(dir.path(), &spec("hashing-v1")).unwrap();
    let live = LiveIndexes::new(store.clone());
    let none = BTreeMap::new();
    assert!(
        search(&live, "quasar nebula", SearchMode::Sparse, 3, &none)
            .iter()
            .any(|h| h.doc_id == "gone")
    );

    docs.retain(|(id, _)| id != "gone");
    docs.last_mut().unwrap().1 = "new wording about penguin colonies".into();
    write_docs(dir.path(), &docs, T0);
    for round in 0..2 {
        // A second sync of the same corpus keeps them gone (a generation built on the last).
        store.sync(dir.path(), &spec("hashing-v1")).unwrap();
        for mode in MODES {
            let hits = search(
                &live,
                "quasar nebula telescope observatory",
                mode,
                40,
                &none,
            );
            assert!(
                !hits.iter().any(|h| h.doc_id == "gone"),
                "round {round}, {mode}"
            );
            let old = search(&live, "walrus migration", mode, 40, &none);
            assert!(
                !old.iter().any(|h| h.text.contains("walrus")),
                "round {round}, {mode}: the edited chunk's old text came back"
            );
        }
        let new = search(&live, "penguin colonies", SearchMode::Sparse, 3, &none);
        assert_eq!(new[0].doc_id, "edited");
    }
}

#[test]
fn parent_documents_group_chunks_and_return_whole_documents() {
    let dir = tempfile::tempdir().unwrap();
    let docs = corpus(40);
    write_docs(dir.path(), &docs, T0);
    let store = IndexStore::new(dir.path().join("data/indexes"));
    // Chunks of 8 tokens with an overlap of 2: every document spans several.
    let mut s = spec("hashing-v1");
    s.chunking.overlap = 2;
    store.sync(dir.path(), &s).unwrap();
    let live = LiveIndexes::new(store);
    let v = live.get("help", None).unwrap();
    let (parent_k, child_k) = (3, 2);
    let chunks = asof_retrieval::LoadedVersion::chunks_for_documents(parent_k, child_k);
    for mode in MODES {
        let hits = search(
            &live,
            "billing refund payment",
            mode,
            chunks,
            &BTreeMap::new(),
        );
        let groups = v.group_documents(hits.clone(), parent_k, child_k, true);
        assert_eq!(groups.len(), parent_k, "{mode}: k counts documents");
        let mut seen = std::collections::HashSet::new();
        for g in &groups {
            assert!(seen.insert(g.doc_id.clone()), "{mode}: a document twice");
            assert!(!g.chunks.is_empty() && g.chunks.len() <= child_k);
            assert!(g.chunks.iter().all(|c| c.doc_id == g.doc_id));
            assert_eq!(
                g.score, g.chunks[0].score,
                "a document scores as its best chunk"
            );
            let original = &docs.iter().find(|(id, _)| *id == g.doc_id).unwrap().1;
            let normalized: Vec<&str> = original.split_whitespace().collect();
            assert_eq!(g.text.as_deref(), Some(normalized.join(" ").as_str()));
        }
        // Documents come in the order of their best chunks.
        let firsts: Vec<&str> =
            hits.iter()
                .map(|h| h.doc_id.as_str())
                .fold(Vec::new(), |mut acc, d| {
                    if !acc.contains(&d) {
                        acc.push(d);
                    }
                    acc
                });
        let order: Vec<&str> = groups.iter().map(|g| g.doc_id.as_str()).collect();
        assert_eq!(order, firsts[..parent_k]);
    }
}

#[test]
fn a_selective_filter_gets_the_exact_nearest_chunks() {
    use asof_retrieval::embed::{Embedder, HashingEmbedder};
    let dir = tempfile::tempdir().unwrap();
    // 3,000 one-chunk documents in 100 buckets: a bucket is 1% of the index.
    let lines: Vec<String> = (0..3000)
        .map(|i| {
            serde_json::json!({"doc_id": format!("d{i}"), "text": format!("topic{} word{} item{}", i % 37, i % 11, i), "updated_at": T0, "bucket": (i % 100).to_string()})
                .to_string()
        })
        .collect();
    std::fs::create_dir_all(dir.path().join("docs")).unwrap();
    std::fs::write(dir.path().join("docs/c.jsonl"), lines.join("\n")).unwrap();
    let s = spec("hashing-v1");
    let store = IndexStore::new(dir.path().join("data/indexes"));
    store.sync(dir.path(), &s).unwrap();
    let live = LiveIndexes::new(store);
    let filter: BTreeMap<String, String> = [("bucket".to_string(), "42".to_string())].into();
    let query = "topic5 word3";
    let got: Vec<String> = search(&live, query, SearchMode::Dense, 10, &filter)
        .into_iter()
        .map(|h| h.doc_id)
        .collect();
    // The truth: every document of the bucket, by cosine with the query.
    let e = HashingEmbedder::new(&s.embedding);
    let ids: Vec<usize> = (0..3000).filter(|i| i % 100 == 42).collect();
    let texts: Vec<String> = ids
        .iter()
        .map(|i| format!("topic{} word{} item{}", i % 37, i % 11, i))
        .collect();
    let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
    let mut vs = e.embed(&refs).unwrap();
    let mut q = e.embed(&[query]).unwrap().pop().unwrap();
    asof_retrieval::embed::normalize(&mut q);
    let mut truth: Vec<(f32, String)> = ids
        .iter()
        .zip(vs.iter_mut())
        .map(|(i, v)| {
            asof_retrieval::embed::normalize(v);
            (v.iter().zip(&q).map(|(a, b)| a * b).sum(), format!("d{i}"))
        })
        .collect();
    truth.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
    let want: Vec<String> = truth.into_iter().take(10).map(|(_, d)| d).collect();
    let recall = got.iter().filter(|d| want.contains(d)).count();
    assert_eq!(got.len(), 10);
    assert!(
        recall >= 9,
        "recall@10 {recall}/10 at 1% selectivity: {got:?} vs {want:?}"
    );
}
