//! Search cost per mode, and filtered recall.
//!
//! 1. On an index built by `benches/retrieval_vs_bm25s.py --keep DIR` (CISI, local model), every
//!    judged query is searched in each mode (k = 10), one at a time on one thread, `--rounds`
//!    times: queries per second and p50/p99 latency per mode. The local model embeds each query
//!    (sparse mode embeds nothing): that is part of a dense or hybrid search's cost.
//! 2. Filtered dense search on a synthetic index (hashing embedder, 30,000 one-chunk documents in
//!    100 or 10 metadata buckets): recall@10 against an exact scan of the bucket, at 1% and 10%
//!    selectivity, averaged over 200 queries (a hit counts when it is in the bucket and at least
//!    as close as the 10th true neighbour: many chunks tie).
//!
//!     ASOF_CISI_REPO=DIR cargo bench -p asof-retrieval --bench search_modes [-- --rounds 5]

use std::collections::BTreeMap;
use std::time::Instant;

use asof_core::spec::{
    Chunking, DocumentFormat, DocumentIndex, DocumentSource, Embedding, EmbeddingProvider, Metric,
    Retrieval, SearchMode,
};
use asof_retrieval::embed::{Embedder, HashingEmbedder, normalize};
use asof_retrieval::{IndexStore, LiveIndexes, Query, SearchOptions};

fn percentile(sorted: &[f64], q: f64) -> f64 {
    sorted[((sorted.len() as f64 - 1.0) * q).round() as usize]
}

fn modes(repo: &str, rounds: usize) {
    let store = IndexStore::new(std::path::Path::new(repo).join("data/indexes"));
    let live = LiveIndexes::new(store);
    let v = live
        .get("cisi", None)
        .expect("the CISI index (run the Python script with --keep)");
    let queries: Vec<String> = std::fs::read_to_string(format!("{repo}/data/cisi/queries.jsonl"))
        .unwrap()
        .lines()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap()["query"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    let none = BTreeMap::new();
    let fusion = Retrieval::default();
    println!(
        "CISI: {} chunks, {} queries x {rounds} rounds, k = 10, one thread",
        v.len(),
        queries.len()
    );
    println!("{:<8} {:>8} {:>9} {:>9}", "mode", "q/s", "p50 ms", "p99 ms");
    for mode in [SearchMode::Dense, SearchMode::Sparse, SearchMode::Hybrid] {
        let opts = SearchOptions {
            mode,
            ..SearchOptions::dense(10, &none, 64, &fusion)
        };
        let mut lat = Vec::new();
        let start = Instant::now();
        for _ in 0..rounds {
            for q in &queries {
                let t = Instant::now();
                let hits = v.search_with(Query::Text(q), &opts).unwrap();
                lat.push(t.elapsed().as_secs_f64() * 1000.0);
                assert!(!hits.is_empty());
            }
        }
        let qps = lat.len() as f64 / start.elapsed().as_secs_f64();
        lat.sort_by(f64::total_cmp);
        println!(
            "{:<8} {:>8.0} {:>9.2} {:>9.2}",
            mode.to_string(),
            qps,
            percentile(&lat, 0.5),
            percentile(&lat, 0.99)
        );
    }
}

fn filtered() {
    let dir = tempfile::tempdir().unwrap();
    let n = 30_000;
    let text = |i: usize| format!("topic{} word{} term{} item{}", i % 97, i % 13, i % 7, i);
    let lines: Vec<String> = (0..n)
        .map(|i| {
            serde_json::json!({"doc_id": format!("d{i}"), "text": text(i), "updated_at": "2026-01-01T00:00:00Z",
                "b100": (i % 100).to_string(), "b10": (i % 10).to_string()})
            .to_string()
        })
        .collect();
    std::fs::create_dir_all(dir.path().join("docs")).unwrap();
    std::fs::write(dir.path().join("docs/c.jsonl"), lines.join("\n")).unwrap();
    let embedding = Embedding {
        provider: EmbeddingProvider::Hashing,
        model: "bench".into(),
        dims: 64,
        url: None,
        api_key_env: None,
        batch_size: None,
        concurrency: None,
    };
    let spec = DocumentIndex {
        name: "f".into(),
        entity: "document".into(),
        source: DocumentSource::files("docs", DocumentFormat::Jsonl),
        chunking: Chunking::default(),
        embedding: embedding.clone(),
        metric: Metric::Cosine,
        reranker_features: vec![],
        description: String::new(),
        freshness: None,
        retrieval: Default::default(),
        eval: None,
        contract: None,
    };
    let store = IndexStore::new(dir.path().join("data/indexes"));
    store.sync(dir.path(), &spec).unwrap();
    let live = LiveIndexes::new(store);
    let v = live.get("f", None).unwrap();
    let e = HashingEmbedder::new(&embedding);
    let texts: Vec<String> = (0..n).map(text).collect();
    let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
    let mut vectors = e.embed(&refs).unwrap();
    vectors.iter_mut().for_each(|v| normalize(v));
    let fusion = Retrieval::default();
    println!("\nFiltered dense search, {n} chunks, recall@10 against an exact scan of the bucket");
    for (field, buckets) in [("b100", 100usize), ("b10", 10)] {
        let mut recall = 0.0;
        let trials = 200;
        for t in 0..trials {
            let bucket = t % buckets;
            let query = format!("topic{} word{}", t % 97, t % 13);
            let mut q = e.embed(&[&query]).unwrap().pop().unwrap();
            normalize(&mut q);
            let mut truth: Vec<(f32, usize)> = (0..n)
                .filter(|i| i % buckets == bucket)
                .map(|i| (vectors[i].iter().zip(&q).map(|(a, b)| a * b).sum(), i))
                .collect();
            truth.sort_by(|a, b| b.0.total_cmp(&a.0));
            // Many chunks tie on similarity (they share words): a hit counts when it is at least
            // as close as the 10th true neighbour.
            let tenth = truth[9.min(truth.len() - 1)].0;
            let filters: BTreeMap<String, String> =
                [(field.to_string(), bucket.to_string())].into();
            let got = v
                .search_with(
                    Query::Text(&query),
                    &SearchOptions::dense(10, &filters, 64, &fusion),
                )
                .unwrap();
            let close = |doc: &str| {
                let i: usize = doc[1..].parse().unwrap();
                let sim: f32 = vectors[i].iter().zip(&q).map(|(a, b)| a * b).sum();
                i % buckets == bucket && sim >= tenth - 1e-5
            };
            recall += got.iter().filter(|h| close(&h.doc_id)).count() as f64 / 10.0;
        }
        println!(
            "  {:>3}% selectivity ({} chunks pass): recall@10 {:.3}",
            100 / buckets,
            n / buckets,
            recall / trials as f64
        );
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let rounds = args
        .iter()
        .position(|a| a == "--rounds")
        .and_then(|i| args.get(i + 1))
        .and_then(|r| r.parse().ok())
        .unwrap_or(5);
    match std::env::var("ASOF_CISI_REPO") {
        Ok(repo) => modes(&repo, rounds),
        Err(_) => eprintln!("ASOF_CISI_REPO is not set: skipping the per-mode timings"),
    }
    filtered();
}
