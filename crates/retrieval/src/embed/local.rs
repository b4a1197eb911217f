//! A sentence-transformers model in-process (candle, CPU): BERT over WordPiece tokens, mean pooled
//! over the attention mask and L2-normalised, as sentence-transformers' all-MiniLM-L6-v2 does. The
//! vector space's id carries a hash of the weights, so other weights under the same name are another
//! space (a new index version), never mixed vectors.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use asof_core::spec::Embedding;
use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;
use candle_transformers::models::bert::{BertModel, Config};
use tokenizers::{PaddingParams, PaddingStrategy, Tokenizer, TruncationParams};

use super::Embedder;
use crate::error::{RetrievalError, RetrievalResult};

/// Tokens per text the model reads (all-MiniLM-L6-v2 was trained on 256); the rest is cut.
const MAX_TOKENS: usize = 256;

struct Loaded {
    model: BertModel,
    tokenizer: Tokenizer,
    /// `local/NAME@WEIGHTS_HASH/DIMS`.
    model_id: String,
    dims: usize,
}

/// Models loaded by this process, by folder: a sync and a server load each once.
static LOADED: Mutex<Option<HashMap<std::path::PathBuf, Arc<Loaded>>>> = Mutex::new(None);

pub struct LocalEmbedder {
    loaded: Arc<Loaded>,
    batch_size: usize,
}

impl std::fmt::Debug for LocalEmbedder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalEmbedder")
            .field("model", &self.loaded.model_id)
            .finish()
    }
}

impl LocalEmbedder {
    pub fn new(spec: &Embedding) -> RetrievalResult<Self> {
        let dir = crate::models::installed(&spec.model)?;
        let mut cache = LOADED.lock().unwrap_or_else(|p| p.into_inner());
        let loaded = match cache.get_or_insert_with(HashMap::new).get(&dir) {
            Some(l) => Arc::clone(l),
            None => {
                let l = Arc::new(load(&dir, &spec.model)?);
                cache
                    .get_or_insert_with(HashMap::new)
                    .insert(dir.clone(), Arc::clone(&l));
                l
            }
        };
        if loaded.dims != spec.dims {
            return Err(RetrievalError::Embedder {
                model: loaded.model_id.clone(),
                message: format!(
                    "the index declares dims {} but the model makes {}-dimensional vectors; set `dims: {}`",
                    spec.dims, loaded.dims, loaded.dims
                ),
            });
        }
        Ok(LocalEmbedder {
            loaded,
            batch_size: spec.batch_size.unwrap_or(32).max(1),
        })
    }
}

fn load(dir: &std::path::Path, name: &str) -> RetrievalResult<Loaded> {
    let bad = |message: String| RetrievalError::Model {
        model: name.to_string(),
        message,
        fix: format!("asof models fetch {name}   (reinstalls it)"),
    };
    let read = |file: &str| {
        let p = dir.join(file);
        std::fs::read(&p).map_err(|e| RetrievalError::io(&p, e))
    };
    let weights = read("model.safetensors")?;
    let hash = blake3::hash(&weights).to_hex()[..12].to_string();
    let config: Config = serde_json::from_slice(&read("config.json")?)
        .map_err(|e| bad(format!("config.json: {e}")))?;
    let vb = VarBuilder::from_buffered_safetensors(weights, DType::F32, &Device::Cpu)
        .map_err(|e| bad(format!("model.safetensors: {e}")))?;
    let model = BertModel::load(vb, &config).map_err(|e| bad(format!("weights: {e}")))?;
    let mut tokenizer = Tokenizer::from_file(dir.join("tokenizer.json"))
        .map_err(|e| bad(format!("tokenizer.json: {e}")))?;
    tokenizer.with_padding(Some(PaddingParams {
        strategy: PaddingStrategy::BatchLongest,
        ..Default::default()
    }));
    tokenizer
        .with_truncation(Some(TruncationParams {
            max_length: MAX_TOKENS,
            ..Default::default()
        }))
        .map_err(|e| bad(format!("tokenizer: {e}")))?;
    Ok(Loaded {
        model,
        tokenizer,
        model_id: format!("local/{name}@{hash}/{}", config.hidden_size),
        dims: config.hidden_size,
    })
}

impl Embedder for LocalEmbedder {
    fn model_id(&self) -> &str {
        &self.loaded.model_id
    }

    fn dims(&self) -> usize {
        self.loaded.dims
    }

    fn batch_size(&self) -> usize {
        self.batch_size
    }

    /// One call at a time: the matrix products already use every core.
    fn concurrency(&self) -> usize {
        1
    }

    fn embed(&self, texts: &[&str]) -> RetrievalResult<Vec<Vec<f32>>> {
        if texts.is_empty() {
            return Ok(Vec::new());
        }
        let l = &self.loaded;
        let fail = |e: &dyn std::fmt::Display| RetrievalError::Embedder {
            model: l.model_id.clone(),
            message: e.to_string(),
        };
        let encodings = l
            .tokenizer
            .encode_batch(texts.to_vec(), true)
            .map_err(|e| fail(&e))?;
        let n = encodings.len();
        let len = encodings.first().map_or(0, |e| e.get_ids().len());
        let mut ids = Vec::with_capacity(n * len);
        let mut mask = Vec::with_capacity(n * len);
        for e in &encodings {
            ids.extend_from_slice(e.get_ids());
            mask.extend_from_slice(e.get_attention_mask());
        }
        let run = || -> candle_core::Result<Vec<Vec<f32>>> {
            let ids = Tensor::from_vec(ids, (n, len), &Device::Cpu)?;
            let mask = Tensor::from_vec(mask, (n, len), &Device::Cpu)?;
            let types = ids.zeros_like()?;
            let out = l.model.forward(&ids, &types, Some(&mask))?;
            // Mean over the real tokens only: padding must not pull short texts together.
            let weights = mask.to_dtype(DType::F32)?.unsqueeze(2)?;
            let summed = out.broadcast_mul(&weights)?.sum(1)?;
            let counts = weights.sum(1)?;
            let mean = summed.broadcast_div(&counts)?;
            let norms = mean.sqr()?.sum_keepdim(1)?.sqrt()?;
            mean.broadcast_div(&norms)?.to_vec2::<f32>()
        };
        run().map_err(|e| fail(&e))
    }
}
