//! Incremental sync against a full rebuild: a seeded corpus of N documents is synced, 1% of the
//! documents are edited (one sentence appended) and a few deleted, then (a) an incremental sync
//! of the same index and (b) a full rebuild (a fresh index and an empty embedding cache) run on
//! the same files. Prints time and embedder calls/texts of each, and their ratios.
//!
//!     cargo bench -p asof-retrieval --bench sync_incremental [-- DOCS]
//!
//! The embedder is `hashing` (local, fast), so the time ratio understates the saving with a
//! remote model; the embedded-text counts are what a paid API would bill.

use std::time::Instant;

use asof_core::spec::{
    Chunking, DocumentFormat, DocumentIndex, DocumentSource, Embedding, EmbeddingProvider, Metric,
};
use asof_retrieval::{IndexStore, VersionSync};

const WORDS: [&str; 24] = [
    "account", "payment", "refund", "driver", "route", "card", "login", "reset", "invoice",
    "rating", "trip", "cancel", "fee", "app", "update", "crash", "privacy", "export", "team",
    "policy", "budget", "travel", "safety", "report",
];

/// A small deterministic generator (xorshift), so the corpus is the same on every run.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

fn corpus(n: usize, rng: &mut Rng) -> Vec<(String, String)> {
    (0..n)
        .map(|i| {
            let len = 150 + (rng.next() % 300) as usize;
            let text: Vec<String> = (0..len)
                .map(|j| {
                    if j % 17 == 0 {
                        format!("doc{i}w{j}")
                    } else {
                        WORDS[(rng.next() % WORDS.len() as u64) as usize].to_string()
                    }
                })
                .collect();
            (format!("doc{i:06}"), text.join(" "))
        })
        .collect()
}

fn write(dir: &std::path::Path, docs: &[(String, String)]) {
    std::fs::create_dir_all(dir.join("docs")).unwrap();
    let lines: Vec<String> = docs
        .iter()
        .map(|(id, t)| {
            serde_json::json!({"doc_id": id, "text": t, "updated_at": "2026-01-01T00:00:00Z"})
                .to_string()
        })
        .collect();
    std::fs::write(dir.join("docs/corpus.jsonl"), lines.join("\n") + "\n").unwrap();
}

fn spec() -> DocumentIndex {
    DocumentIndex {
        name: "bench".into(),
        entity: "document".into(),
        source: DocumentSource::files("docs", DocumentFormat::Jsonl),
        chunking: Chunking {
            max_tokens: 120,
            overlap: 20,
            version: "v1".into(),
        },
        embedding: Embedding {
            provider: EmbeddingProvider::Hashing,
            model: "hashing-v1".into(),
            dims: 256,
            url: None,
            api_key_env: None,
            batch_size: Some(64),
            concurrency: None,
        },
        metric: Metric::Cosine,
        reranker_features: vec![],
        description: String::new(),
        freshness: None,
        retrieval: Default::default(),
        eval: None,
        contract: None,
    }
}

fn timed(store: &IndexStore, dir: &std::path::Path) -> (f64, VersionSync) {
    let started = Instant::now();
    let r = store.sync(dir, &spec()).unwrap();
    (
        started.elapsed().as_secs_f64(),
        r.versions.into_iter().next().unwrap(),
    )
}

fn main() {
    let n: usize = std::env::args()
        .skip(1)
        .find(|a| a != "--bench")
        .map(|a| a.parse().expect("DOCS is a number"))
        .unwrap_or(10_000);
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let mut docs = corpus(n, &mut rng);
    write(dir, &docs);
    let store = IndexStore::new(dir.join("indexes"));
    let (t0, first) = timed(&store, dir);
    println!(
        "initial sync: {n} documents, {} chunks, {} texts embedded in {} calls, {t0:.2} s",
        first.chunks, first.embedded, first.embedder_calls
    );

    // 1% of documents edited at the end, 0.1% deleted.
    let edits = (n / 100).max(1);
    for d in docs.iter_mut().step_by(n / edits).take(edits) {
        d.1.push_str(" and one more sentence about refunds");
    }
    let deletes = (n / 1000).max(1);
    for _ in 0..deletes {
        docs.remove(docs.len() / 2);
    }
    write(dir, &docs);

    let (t_inc, inc) = timed(&store, dir);
    let fresh = IndexStore::new(dir.join("indexes-rebuild"));
    let (t_full, full) = timed(&fresh, dir);
    println!(
        "incremental: {} changed, {} added, {} deleted chunks; {} texts embedded in {} calls; {t_inc:.3} s",
        inc.changed, inc.added, inc.deleted, inc.embedded, inc.embedder_calls
    );
    println!(
        "full rebuild: {} chunks; {} texts embedded in {} calls; {t_full:.3} s",
        full.chunks, full.embedded, full.embedder_calls
    );
    println!(
        "incremental vs full rebuild: {:.1}x faster, {:.0}x fewer texts embedded, {:.0}x fewer embedder calls",
        t_full / t_inc,
        full.embedded as f64 / inc.embedded.max(1) as f64,
        full.embedder_calls as f64 / inc.embedder_calls.max(1) as f64
    );
}
