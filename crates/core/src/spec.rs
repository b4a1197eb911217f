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

/// What kind of store a source reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SourceType {
    /// Parquet or CSV files under the repo.
    #[default]
    File,
    /// A PostgreSQL table followed by logical replication (`asof stream`); its rows reach the
    /// offline store through the push log.
    Postgres,
}

impl SourceType {
    pub fn is_file(&self) -> bool {
        *self == SourceType::File
    }
}

/// The column a PostgreSQL source's rows carry their transaction's commit time in: the event time
/// when the source names no `timestamp_field`, else the created time (later commits win ties).
pub const COMMIT_TIME_COLUMN: &str = "_asof_commit_time";

/// A PostgreSQL table to follow: where it is and how to log in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PostgresTable<'a> {
    /// `postgresql://user@host:port/database` (no password: it comes from `password_env`).
    pub connection: &'a str,
    pub password_env: Option<&'a str>,
    /// `schema.table` or `table` (schema `public`).
    pub table: &'a str,
}

impl<'a> PostgresTable<'a> {
    fn of(
        kind: SourceType,
        connection: &'a Option<String>,
        password_env: &'a Option<String>,
        table: &'a Option<String>,
    ) -> Option<Self> {
        match (kind, connection, table) {
            (SourceType::Postgres, Some(connection), Some(table)) => Some(PostgresTable {
                connection,
                password_env: password_env.as_deref(),
                table,
            }),
            _ => None,
        }
    }
}

/// Where a view's rows come from: files with an event timestamp per row, or a PostgreSQL table.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Source {
    pub name: String,
    #[serde(rename = "type", default, skip_serializing_if = "SourceType::is_file")]
    pub kind: SourceType,
    /// A Parquet file, a directory of Parquet files, or a glob; relative to the repo folder.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub path: String,
    /// Required for files. For PostgreSQL: optional, defaulting to the commit time.
    #[serde(default)]
    pub timestamp_field: String,
    /// Breaks ties between rows with equal event timestamps (the later-created row wins).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_timestamp_field: Option<String>,
    /// Source column -> feature name.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub field_mapping: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub description: String,
    /// PostgreSQL: the connection URL (no password in it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connection: Option<String>,
    /// PostgreSQL: the environment variable holding the password.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password_env: Option<String>,
    /// PostgreSQL: the table, `schema.table` or `table`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub table: Option<String>,
}

impl Source {
    /// The table a PostgreSQL source follows (validation guarantees connection and table).
    pub fn postgres(&self) -> Option<PostgresTable<'_>> {
        PostgresTable::of(self.kind, &self.connection, &self.password_env, &self.table)
    }

    /// Fills what a PostgreSQL source leaves implicit: its event time is the commit time unless it
    /// names a column, and then the commit time breaks ties.
    pub fn normalize(&mut self) {
        if self.kind == SourceType::Postgres {
            if self.timestamp_field.is_empty() {
                self.timestamp_field = COMMIT_TIME_COLUMN.into();
            } else if self.created_timestamp_field.is_none() {
                self.created_timestamp_field = Some(COMMIT_TIME_COLUMN.into());
            }
        }
    }

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
    /// Declared for plain views; an aggregated view's are its aggregations' outputs, filled in
    /// by validation.
    #[serde(default)]
    pub features: Vec<Feature>,
    /// Windowed aggregations over the source's events ([`crate::window`]): when present, the view
    /// serves these instead of the latest row.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub aggregations: Vec<Aggregation>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub tags: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub description: String,
    /// How stale the view's newest online event may be before `asof status` says so.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub freshness: Option<Freshness>,
}

/// A staleness bound: `asof status` exits 3 and names what is past it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Freshness {
    /// `30s`, `5m`, `2h`, `1d`.
    pub max_lag: Ttl,
}

fn yes() -> bool {
    true
}

impl FeatureView {
    pub fn feature(&self, name: &str) -> Option<&Feature> {
        self.features.iter().find(|f| f.name == name)
    }

    /// Its feature names as declared: a plain view's features, an aggregated view's outputs
    /// (before validation fills `features` in).
    pub fn feature_names(&self) -> impl Iterator<Item = &str> + '_ {
        self.features
            .iter()
            .map(|f| f.name.as_str())
            .chain(self.aggregations.iter().map(|a| a.name.as_str()))
    }

    pub fn is_aggregated(&self) -> bool {
        !self.aggregations.is_empty()
    }

    /// The columns each stored event of this view carries, besides keys and timestamps: a plain
    /// view's features, or the distinct input columns of an aggregated view's aggregations. Every
    /// write path (push, stream, materialize) and the push log store exactly these.
    pub fn event_columns(&self) -> Vec<Feature> {
        if !self.is_aggregated() {
            return self.features.clone();
        }
        let mut out: Vec<Feature> = Vec::new();
        for a in &self.aggregations {
            if let (Some(column), Some(dtype)) = (&a.column, &a.dtype)
                && !out.iter().any(|f| &f.name == column)
            {
                out.push(Feature {
                    name: column.clone(),
                    dtype: dtype.clone(),
                    description: String::new(),
                });
            }
        }
        out
    }

    /// The longest window of an aggregated view: how far back a read needs events.
    pub fn longest_window(&self) -> Option<i64> {
        self.aggregations
            .iter()
            .map(Aggregation::window_nanos)
            .max()
    }
}

/// One windowed aggregate: `function` over `column` of the events in the `window` before a read.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Aggregation {
    /// The output feature's name.
    pub name: String,
    /// The source column aggregated; `count` without one counts events.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub column: Option<String>,
    pub function: crate::window::Function,
    /// `7d`, `1h`, ...: events with `t - window < ts <= t` count for a read at `t`.
    pub window: Ttl,
    /// The column's type. Read from the source's data at `apply`; declare it for a source whose
    /// schema `apply` cannot read (PostgreSQL, or files not written yet).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dtype: Option<DType>,
}

impl Aggregation {
    pub fn window_nanos(&self) -> i64 {
        self.window.as_nanos().unwrap_or(i64::MAX)
    }

    /// The output type ([`crate::window::output_type`]), once the column's type is known.
    pub fn output_type(&self) -> Option<DType> {
        crate::window::output_type(self.function, self.dtype.as_ref())
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
    /// How far the index may fall behind its source before `asof status` says so.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub freshness: Option<Freshness>,
    /// How requests search by default: dense, sparse (BM25) or hybrid.
    #[serde(default, skip_serializing_if = "Retrieval::is_default")]
    pub retrieval: Retrieval,
    /// The quality gate of `asof index promote`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub eval: Option<EvalGate>,
    /// What a chunk must be to reach a caller, enforced in the retrieval layer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub contract: Option<Contract>,
}

/// A retrieval data contract: chunks that break it are never returned, and when fewer than
/// `min_results` qualify the answer abstains (or, with `on_violation: partial`, returns what
/// qualifies). A request may narrow it, never widen it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct Contract {
    /// On the document's `updated_at`, relative to the request's `as_of`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_age: Option<Ttl>,
    /// Values the metadata field `type` may take.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allowed_types: Option<Vec<String>>,
    /// Metadata fields every document must have.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub required_metadata: Vec<String>,
    /// The least dense (cosine) score a hit may have.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_score: Option<f32>,
    #[serde(default = "one_result")]
    pub min_results: usize,
    #[serde(default)]
    pub on_violation: OnViolation,
}

fn one_result() -> usize {
    1
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OnViolation {
    /// No hits, an `abstained` flag and the reasons.
    #[default]
    Abstain,
    /// The hits that qualify, however few.
    Partial,
}

impl Contract {
    /// The stricter of `self` and `request` on every term: a request narrows, never widens.
    pub fn narrowed(&self, request: &Contract) -> Contract {
        let max_age = match (self.max_age, request.max_age) {
            (Some(a), Some(b)) => {
                let span = |t: Ttl| t.as_nanos().unwrap_or(i64::MAX);
                Some(if span(a) <= span(b) { a } else { b })
            }
            (a, b) => a.or(b),
        };
        let allowed_types = match (&self.allowed_types, &request.allowed_types) {
            (Some(a), Some(b)) => Some(a.iter().filter(|t| b.contains(t)).cloned().collect()),
            (a, b) => a.clone().or_else(|| b.clone()),
        };
        let mut required_metadata = self.required_metadata.clone();
        for m in &request.required_metadata {
            if !required_metadata.contains(m) {
                required_metadata.push(m.clone());
            }
        }
        let min_score = match (self.min_score, request.min_score) {
            (Some(a), Some(b)) => Some(a.max(b)),
            (a, b) => a.or(b),
        };
        Contract {
            max_age,
            allowed_types,
            required_metadata,
            min_score,
            min_results: self.min_results.max(request.min_results),
            on_violation: if self.on_violation == OnViolation::Abstain {
                OnViolation::Abstain
            } else {
                request.on_violation
            },
        }
    }
}

/// `asof index promote` refuses a version that scores worse than the live one by more than
/// `max_regression` on `queries` (unless `--force`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EvalGate {
    /// Labelled queries (JSON lines `{"query": ..., "relevant": [doc ids]}`), relative to the repo.
    pub queries: String,
    #[serde(default)]
    pub metric: EvalMetric,
    #[serde(default = "default_max_regression")]
    pub max_regression: f64,
}

fn default_max_regression() -> f64 {
    0.01
}

/// What the gate compares.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum EvalMetric {
    #[default]
    #[serde(rename = "ndcg@10")]
    Ndcg10,
    #[serde(rename = "recall@10")]
    Recall10,
    #[serde(rename = "mrr")]
    Mrr,
}

impl std::fmt::Display for EvalMetric {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            EvalMetric::Ndcg10 => "ndcg@10",
            EvalMetric::Recall10 => "recall@10",
            EvalMetric::Mrr => "mrr",
        })
    }
}

/// Which arm answers a search.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SearchMode {
    /// Nearest chunks by embedding.
    Dense,
    /// BM25 over the chunks' words: exact tokens (codes, names) that vectors blur.
    Sparse,
    /// Both, fused by reciprocal rank fusion.
    #[default]
    Hybrid,
}

impl std::fmt::Display for SearchMode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            SearchMode::Dense => "dense",
            SearchMode::Sparse => "sparse",
            SearchMode::Hybrid => "hybrid",
        })
    }
}

/// An index's search defaults.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Retrieval {
    #[serde(default)]
    pub mode: SearchMode,
    /// RRF's constant: a hit at rank r of an arm adds weight / (rrf_k + r).
    #[serde(default = "default_rrf_k")]
    pub rrf_k: u32,
    #[serde(default)]
    pub weights: ArmWeights,
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ArmWeights {
    #[serde(default = "one")]
    pub dense: f32,
    #[serde(default = "one")]
    pub sparse: f32,
}

fn one() -> f32 {
    1.0
}

fn default_rrf_k() -> u32 {
    60
}

impl Default for ArmWeights {
    fn default() -> Self {
        ArmWeights {
            dense: 1.0,
            sparse: 1.0,
        }
    }
}

impl Default for Retrieval {
    fn default() -> Self {
        Retrieval {
            mode: SearchMode::default(),
            rrf_k: default_rrf_k(),
            weights: ArmWeights::default(),
        }
    }
}

impl Retrieval {
    pub fn is_default(&self) -> bool {
        *self == Retrieval::default()
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DocumentSource {
    #[serde(rename = "type", default, skip_serializing_if = "SourceType::is_file")]
    pub kind: SourceType,
    /// A JSON-lines file or a directory of them (`jsonl`), or a directory of `.md` files
    /// (`markdown`); relative to the repo folder.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub path: String,
    /// Required for files.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub format: Option<DocumentFormat>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connection: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password_env: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub table: Option<String>,
    /// PostgreSQL: the column of doc ids (default `doc_id`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id_column: Option<String>,
    /// PostgreSQL: the column of document text (default `text`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text_column: Option<String>,
    /// PostgreSQL: the column of each document's last change (default: the commit time).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub updated_at_column: Option<String>,
}

impl DocumentSource {
    /// Files of `format` at `path`.
    pub fn files(path: impl Into<String>, format: DocumentFormat) -> Self {
        DocumentSource {
            kind: SourceType::File,
            path: path.into(),
            format: Some(format),
            connection: None,
            password_env: None,
            table: None,
            id_column: None,
            text_column: None,
            updated_at_column: None,
        }
    }

    pub fn postgres(&self) -> Option<PostgresTable<'_>> {
        PostgresTable::of(self.kind, &self.connection, &self.password_env, &self.table)
    }

    pub fn id_column(&self) -> &str {
        self.id_column.as_deref().unwrap_or("doc_id")
    }

    pub fn text_column(&self) -> &str {
        self.text_column.as_deref().unwrap_or("text")
    }
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
    /// A sentence-transformers model run in-process (`all-MiniLM-L6-v2`), installed once with
    /// `asof models fetch`.
    Local,
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
            EmbeddingProvider::Local => "local",
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
