//! A local, deterministic embedder: signed feature hashing of word unigrams and bigrams. No network
//! and no model files, so tests and the quickstart run anywhere; texts sharing words land close.
//! The model name seeds the hash, so two hashing models are genuinely different spaces.

use asof_core::spec::Embedding;

use super::{Embedder, normalize};
use crate::error::RetrievalResult;

#[derive(Debug, Clone)]
pub struct HashingEmbedder {
    model_id: String,
    dims: usize,
    key: [u8; 32],
    batch_size: usize,
}

impl HashingEmbedder {
    pub fn new(spec: &Embedding) -> Self {
        HashingEmbedder {
            model_id: spec.model_id(),
            dims: spec.dims,
            key: *blake3::hash(spec.model.as_bytes()).as_bytes(),
            batch_size: spec.batch_size.unwrap_or(256),
        }
    }

    fn add(&self, v: &mut [f32], feature: &str, weight: f32) {
        let h = blake3::keyed_hash(&self.key, feature.as_bytes());
        let b = h.as_bytes();
        let idx = u64::from_le_bytes(b[..8].try_into().expect("8 bytes")) as usize % self.dims;
        let sign = if b[8] & 1 == 0 { 1.0 } else { -1.0 };
        v[idx] += sign * weight;
    }

    pub fn embed_one(&self, text: &str) -> Vec<f32> {
        let mut v = vec![0.0; self.dims];
        let words: Vec<String> = text
            .split(|c: char| !c.is_alphanumeric())
            .filter(|w| !w.is_empty())
            .map(str::to_lowercase)
            .collect();
        for w in &words {
            self.add(&mut v, w, 1.0);
        }
        for pair in words.windows(2) {
            self.add(&mut v, &format!("{} {}", pair[0], pair[1]), 0.5);
        }
        normalize(&mut v);
        v
    }
}

impl Embedder for HashingEmbedder {
    fn model_id(&self) -> &str {
        &self.model_id
    }

    fn dims(&self) -> usize {
        self.dims
    }

    fn batch_size(&self) -> usize {
        self.batch_size
    }

    fn concurrency(&self) -> usize {
        2
    }

    fn embed(&self, texts: &[&str]) -> RetrievalResult<Vec<Vec<f32>>> {
        Ok(texts.iter().map(|t| self.embed_one(t)).collect())
    }
}
