//! Retrieval on real files: documents on disk, the SQLite cache, hnsw_rs graphs dumped and
//! reloaded, and the OpenAI protocol over a real loopback HTTP server.

mod contract;
mod e5_server;
mod hybrid;
mod local_model;
mod openai_server;
mod pipeline;

use std::path::Path;

use asof_core::spec::{
    Chunking, DocumentFormat, DocumentIndex, DocumentSource, Embedding, EmbeddingProvider, Metric,
};

pub fn spec(model: &str) -> DocumentIndex {
    DocumentIndex {
        name: "help".into(),
        entity: "document".into(),
        source: DocumentSource::files("docs", DocumentFormat::Jsonl),
        chunking: Chunking {
            max_tokens: 8,
            overlap: 0,
            version: "v1".into(),
        },
        embedding: Embedding {
            provider: EmbeddingProvider::Hashing,
            model: model.into(),
            dims: 64,
            url: None,
            api_key_env: None,
            batch_size: Some(16),
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

/// A made-up but varied corpus: document `i` talks about topic `i % 7` with its own words.
pub fn corpus(n: usize) -> Vec<(String, String)> {
    const TOPICS: [&str; 7] = [
        "billing invoice refund payment card",
        "login password reset account locked",
        "driver rating trip cancel fee",
        "shipping parcel tracking courier delay",
        "privacy data export delete gdpr",
        "api token rate limit quota",
        "mobile app crash update android",
    ];
    (0..n)
        .map(|i| {
            let topic = TOPICS[i % TOPICS.len()];
            let text = format!(
                "{topic} article{i} explains step{i} and detail{i} for case{i}. \
                 see also note{i} about {topic} with extra{i} words here"
            );
            (format!("doc{i:03}"), text)
        })
        .collect()
}

pub fn write_docs(dir: &Path, docs: &[(String, String)], version: &str) {
    std::fs::create_dir_all(dir.join("docs")).unwrap();
    let lines: Vec<String> = docs
        .iter()
        .map(|(id, text)| {
            serde_json::json!({"doc_id": id, "text": text, "updated_at": version, "lang": "en"})
                .to_string()
        })
        .collect();
    std::fs::write(dir.join("docs/corpus.jsonl"), lines.join("\n") + "\n").unwrap();
}
