//! The definitions users write in repo files. Field names are a user-facing contract (Feast users
//! recognise them); unknown fields are rejected so that a typo can never silently pass.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::dtype::DType;
use crate::duration::Ttl;

/// A definitions file: any of these top-level lists may appear in any `*.yaml` under the repo.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DefinitionsFile {
    #[serde(default)]
    pub entities: Vec<Entity>,
    #[serde(default)]
    pub sources: Vec<Source>,
    #[serde(default)]
    pub feature_views: Vec<FeatureView>,
    #[serde(default)]
    pub feature_services: Vec<FeatureService>,
    #[serde(default)]
    pub document_indexes: Vec<DocumentIndex>,
}

/// Something features describe (a driver, a customer); its join keys identify one instance.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Entity {
    pub name: String,
    pub join_keys: Vec<String>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub description: String,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub tags: BTreeMap<String, String>,
}

/// Where a view's rows come from: Parquet with an event timestamp per row.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Source {
    pub name: String,
    /// A Parquet file, a directory of Parquet files, or a glob; relative to the repo folder.
    pub path: String,
    pub timestamp_field: String,
    /// Breaks ties between rows with equal event timestamps (the later-created row wins).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_timestamp_field: Option<String>,
    /// Source column -> feature name.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub field_mapping: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub description: String,
}

impl Source {
    /// The source column that holds feature `feature` (the reverse of `field_mapping`).
    pub fn column_for_feature<'a>(&'a self, feature: &'a str) -> &'a str {
        self.field_mapping
            .iter()
            .find(|(_, to)| to.as_str() == feature)
            .map(|(from, _)| from.as_str())
            .unwrap_or(feature)
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Feature {
    pub name: String,
    pub dtype: DType,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub description: String,
}

/// A group of features of the same entities from one source, with a TTL that bounds how stale a
/// served or joined value may be.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FeatureView {
    pub name: String,
    pub entities: Vec<String>,
    pub source: String,
    #[serde(default)]
    pub ttl: Ttl,
    #[serde(default = "yes")]
    pub online: bool,
    pub features: Vec<Feature>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub tags: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub description: String,
}

fn yes() -> bool {
    true
}

impl FeatureView {
    pub fn feature(&self, name: &str) -> Option<&Feature> {
        self.features.iter().find(|f| f.name == name)
    }
}

/// A named set of features a model consumes: `view:feature` refs or whole views.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FeatureService {
    pub name: String,
    pub features: Vec<String>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub description: String,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub tags: BTreeMap<String, String>,
}

/// A vector index over a document corpus. Its documents are instances of `entity` (doc ids are the
/// entity's join key values), so document features join on them in serving and in training sets.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DocumentIndex {
    pub name: String,
    pub entity: String,
    pub source: DocumentSource,
    #[serde(default)]
    pub chunking: Chunking,
    pub embedding: Embedding,
    #[serde(default)]
    pub metric: Metric,
    /// Feature refs served beside search results (`RetrieveAndRank`); their views must be keyed by
    /// `entity` alone.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub reranker_features: Vec<String>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub description: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DocumentSource {
    /// A JSON-lines file or a directory of them (`jsonl`), or a directory of `.md` files
    /// (`markdown`); relative to the repo folder.
    pub path: String,
    pub format: DocumentFormat,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DocumentFormat {
    /// One object per line: `doc_id`, `text`, `updated_at`, and any other fields as metadata.
    Jsonl,
    /// One document per `.md` file: the doc id is the path without extension, the version its mtime.
    Markdown,
}

/// How documents are cut into chunks. `version` names the algorithm: a new version builds a new
/// index version, since the same text chunked differently is a different index.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Chunking {
    #[serde(default = "default_max_tokens")]
    pub max_tokens: usize,
    #[serde(default)]
    pub overlap: usize,
    #[serde(default = "default_chunker_version")]
    pub version: String,
}

fn default_max_tokens() -> usize {
    300
}

fn default_chunker_version() -> String {
    "v1".into()
}

impl Default for Chunking {
    fn default() -> Self {
        Chunking {
            max_tokens: default_max_tokens(),
            overlap: 0,
            version: default_chunker_version(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EmbeddingProvider {
    /// Local, deterministic feature hashing: no network, no model download.
    Hashing,
    /// Any OpenAI-compatible `/v1/embeddings` endpoint (OpenAI, Ollama, vLLM, TEI).
    Openai,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Embedding {
    pub provider: EmbeddingProvider,
    pub model: String,
    pub dims: usize,
    /// Base URL of the API, up to and including `/v1`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// The environment variable holding the API key (never the key itself).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_key_env: Option<String>,
    /// Texts per embedder call.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub batch_size: Option<usize>,
    /// Embedder calls in flight at once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub concurrency: Option<usize>,
}

impl Embedding {
    /// The identity of the vector space: vectors compare only within one model id. The endpoint is
    /// left out on purpose (the same model served elsewhere gives the same space).
    pub fn model_id(&self) -> String {
        let provider = match self.provider {
            EmbeddingProvider::Hashing => "hashing",
            EmbeddingProvider::Openai => "openai",
        };
        format!("{provider}/{}/{}", self.model, self.dims)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Metric {
    #[default]
    Cosine,
    L2,
}
