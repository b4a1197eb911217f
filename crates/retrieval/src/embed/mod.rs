//! Embedders: text in, vectors out, one model id per vector space.

mod hashing;
mod local;
mod openai;

use std::sync::atomic::{AtomicUsize, Ordering};

use asof_core::spec::{Embedding, EmbeddingProvider};

pub use hashing::HashingEmbedder;
pub use local::LocalEmbedder;
pub use openai::OpenAiEmbedder;

use crate::error::RetrievalResult;

pub trait Embedder: Send + Sync {
    /// The vector space's identity: [`Embedding::model_id`], with the weights' hash for a local
    /// model. Versions record it; a query vector must carry it.
    fn model_id(&self) -> &str;
    fn dims(&self) -> usize;
    /// Texts per call the embedder prefers.
    fn batch_size(&self) -> usize;
    /// Calls the embedder can take at once.
    fn concurrency(&self) -> usize;
    /// One call: a vector of `dims()` per text, in order.
    fn embed(&self, texts: &[&str]) -> RetrievalResult<Vec<Vec<f32>>>;
    /// [`Embedder::embed`] for a caller that must answer by `deadline` (a query on the request
    /// path): a remote embedder stops retrying, and times its calls out, at the deadline. Local
    /// embedders take no time worth bounding.
    fn embed_within(
        &self,
        texts: &[&str],
        deadline: std::time::Instant,
    ) -> RetrievalResult<Vec<Vec<f32>>> {
        let _ = deadline;
        self.embed(texts)
    }
}

/// The embedder an index's definition names.
pub fn embedder_for(spec: &Embedding) -> RetrievalResult<Box<dyn Embedder>> {
    Ok(match spec.provider {
        EmbeddingProvider::Local => Box::new(LocalEmbedder::new(spec)?),
        EmbeddingProvider::Hashing => Box::new(HashingEmbedder::new(spec)),
        EmbeddingProvider::Openai => Box::new(OpenAiEmbedder::new(spec)?),
    })
}

/// Wraps an embedder to count its calls: the sync report's "embedder calls" is this count, so
/// "zero calls on an unchanged corpus" is observed, not inferred.
pub struct Counting<'a> {
    inner: &'a dyn Embedder,
    calls: AtomicUsize,
}

impl std::fmt::Debug for Counting<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Counting")
            .field("model", &self.inner.model_id())
            .field("calls", &self.calls())
            .finish()
    }
}

impl<'a> Counting<'a> {
    pub fn new(inner: &'a dyn Embedder) -> Self {
        Counting {
            inner,
            calls: AtomicUsize::new(0),
        }
    }

    pub fn calls(&self) -> usize {
        self.calls.load(Ordering::Relaxed)
    }

    pub fn inner(&self) -> &dyn Embedder {
        self.inner
    }

    pub fn embed(&self, texts: &[&str]) -> RetrievalResult<Vec<Vec<f32>>> {
        self.calls.fetch_add(1, Ordering::Relaxed);
        self.inner.embed(texts)
    }
}

/// Scales a vector to unit length (leaves a zero vector alone): cosine search runs as a dot product
/// over unit vectors.
pub fn normalize(v: &mut [f32]) {
    let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    if norm > 0.0 {
        v.iter_mut().for_each(|x| *x /= norm);
    }
}
