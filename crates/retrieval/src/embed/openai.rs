//! Any OpenAI-compatible `/v1/embeddings` endpoint (OpenAI, Ollama, vLLM, TEI). Rate limits and
//! server errors are retried with exponential backoff (honouring `Retry-After`); other errors are
//! reported with the server's message, since they will not fix themselves.

use std::time::Duration;

use asof_core::spec::Embedding;
use serde::Deserialize;

use super::Embedder;
use crate::error::{RetrievalError, RetrievalResult};

const DEFAULT_URL: &str = "https://api.openai.com/v1";
const MAX_ATTEMPTS: u32 = 6;

#[derive(Debug)]
pub struct OpenAiEmbedder {
    model_id: String,
    model: String,
    dims: usize,
    endpoint: String,
    api_key: Option<String>,
    batch_size: usize,
    concurrency: usize,
    agent: ureq::Agent,
    /// First backoff; doubled per retry. Short in tests through [`OpenAiEmbedder::with_backoff`].
    backoff: Duration,
}

#[derive(Deserialize)]
struct Response {
    data: Vec<Item>,
}

#[derive(Deserialize)]
struct Item {
    index: usize,
    embedding: Vec<f32>,
}

impl OpenAiEmbedder {
    pub fn new(spec: &Embedding) -> RetrievalResult<Self> {
        let api_key = match &spec.api_key_env {
            Some(var) => Some(std::env::var(var).map_err(|_| RetrievalError::Embedder {
                model: spec.model_id(),
                message: format!(
                    "environment variable `{var}` (the index's api_key_env) is not set"
                ),
            })?),
            None => None,
        };
        let base = spec
            .url
            .as_deref()
            .unwrap_or(DEFAULT_URL)
            .trim_end_matches('/');
        let agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(Duration::from_secs(120)))
            .build()
            .into();
        Ok(OpenAiEmbedder {
            model_id: spec.model_id(),
            model: spec.model.clone(),
            dims: spec.dims,
            endpoint: format!("{base}/embeddings"),
            api_key,
            batch_size: spec.batch_size.unwrap_or(64),
            concurrency: spec.concurrency.unwrap_or(4),
            agent,
            backoff: Duration::from_millis(500),
        })
    }

    pub fn with_backoff(mut self, backoff: Duration) -> Self {
        self.backoff = backoff;
        self
    }

    fn error(&self, message: String) -> RetrievalError {
        RetrievalError::Embedder {
            model: self.model_id.clone(),
            message,
        }
    }

    fn parse(&self, body: &str, n: usize) -> RetrievalResult<Vec<Vec<f32>>> {
        let resp: Response = serde_json::from_str(body)
            .map_err(|e| self.error(format!("unexpected response from {}: {e}", self.endpoint)))?;
        let mut out: Vec<Option<Vec<f32>>> = vec![None; n];
        for item in resp.data {
            if item.embedding.len() != self.dims {
                return Err(self.error(format!(
                    "returned {} dims but the index declares dims: {}",
                    item.embedding.len(),
                    self.dims
                )));
            }
            let slot = out
                .get_mut(item.index)
                .ok_or_else(|| self.error(format!("response index {} out of range", item.index)))?;
            *slot = Some(item.embedding);
        }
        out.into_iter()
            .enumerate()
            .map(|(i, v)| {
                v.ok_or_else(|| self.error(format!("response has no embedding for input {i}")))
            })
            .collect()
    }
}

impl Embedder for OpenAiEmbedder {
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
        self.concurrency
    }

    fn embed(&self, texts: &[&str]) -> RetrievalResult<Vec<Vec<f32>>> {
        self.call(texts, None)
    }

    fn embed_within(
        &self,
        texts: &[&str],
        deadline: std::time::Instant,
    ) -> RetrievalResult<Vec<Vec<f32>>> {
        self.call(texts, Some(deadline))
    }
}

impl OpenAiEmbedder {
    /// One embedding call with its retries, all of it ending by `deadline` when there is one.
    fn call(
        &self,
        texts: &[&str],
        deadline: Option<std::time::Instant>,
    ) -> RetrievalResult<Vec<Vec<f32>>> {
        let body = serde_json::json!({
            "model": self.model,
            "input": texts,
            "encoding_format": "float",
        })
        .to_string();
        let mut delay = self.backoff;
        let mut attempt = 1;
        loop {
            let mut req = self
                .agent
                .post(&self.endpoint)
                .content_type("application/json");
            if let Some(key) = &self.api_key {
                req = req.header("Authorization", format!("Bearer {key}"));
            }
            if let Some(d) = deadline {
                let left = d.saturating_duration_since(std::time::Instant::now());
                if left.is_zero() {
                    return Err(self.deadline_passed(attempt));
                }
                req = req.config().timeout_global(Some(left)).build();
            }
            let outcome = req.send(body.as_str());
            let retry_after = match outcome {
                Ok(mut resp) => {
                    let status = resp.status().as_u16();
                    let retry_after = resp
                        .headers()
                        .get("retry-after")
                        .and_then(|v| v.to_str().ok())
                        .and_then(|v| v.trim().parse::<f64>().ok())
                        .map(|s| Duration::from_secs_f64(s.clamp(0.0, 60.0)));
                    let text = resp.body_mut().read_to_string().unwrap_or_default();
                    match status {
                        200..=299 => return self.parse(&text, texts.len()),
                        429 | 500..=599 if attempt < MAX_ATTEMPTS => retry_after,
                        _ => {
                            let detail: String = text.chars().take(500).collect();
                            return Err(self.error(format!(
                                "{} answered HTTP {status}{}: {detail}",
                                self.endpoint,
                                if attempt > 1 {
                                    format!(" after {attempt} attempts")
                                } else {
                                    String::new()
                                }
                            )));
                        }
                    }
                }
                Err(e) if attempt < MAX_ATTEMPTS => {
                    tracing::warn!(endpoint = %self.endpoint, error = %e, attempt, "embedder call failed; retrying");
                    None
                }
                Err(e) => {
                    return Err(self.error(format!(
                        "{} unreachable after {attempt} attempts: {e}",
                        self.endpoint
                    )));
                }
            };
            let pause = retry_after.unwrap_or(delay);
            if deadline.is_some_and(|d| std::time::Instant::now() + pause >= d) {
                return Err(self.deadline_passed(attempt));
            }
            std::thread::sleep(pause);
            delay = (delay * 2).min(Duration::from_secs(30));
            attempt += 1;
        }
    }

    fn deadline_passed(&self, attempts: u32) -> RetrievalError {
        self.error(format!(
            "{} did not answer within the request's deadline ({attempts} attempt{})",
            self.endpoint,
            if attempts == 1 { "" } else { "s" }
        ))
    }
}
