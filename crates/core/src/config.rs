//! `feature_store.yaml`: the project name, where the registry lives and which stores to use.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::duration::Ttl;

pub const CONFIG_FILE: &str = "feature_store.yaml";

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RepoConfig {
    pub project: String,
    /// Registry file, relative to the repo folder.
    #[serde(default = "default_registry")]
    pub registry: String,
    #[serde(default)]
    pub offline_store: OfflineStoreConfig,
    #[serde(default)]
    pub online_store: OnlineStoreConfig,
    #[serde(default)]
    pub index_store: IndexStoreConfig,
    #[serde(default)]
    pub serving: ServingConfig,
}

/// How `asof serve` admits requests.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServingConfig {
    /// Bearer-token authentication; absent: every request is admitted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth: Option<AuthConfig>,
    #[serde(default)]
    pub limits: Limits,
}

/// Where the accepted tokens come from. Never from this file: a token in a repo file ends up in
/// version control.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthConfig {
    /// An environment variable holding the tokens, separated by commas or newlines.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tokens_env: Option<String>,
    /// A file (relative to the repo folder) with one token per line; `#` starts a comment.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tokens_file: Option<String>,
}

/// Per-request caps: a request beyond one gets INVALID_ARGUMENT, not a slow or dead server.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Limits {
    /// Entity rows in one `GetOnlineFeatures` or `PushFeatures` request.
    #[serde(default = "default_max_entity_rows")]
    pub max_entity_rows: usize,
    /// Encoded size of one request, in bytes.
    #[serde(default = "default_max_request_bytes")]
    pub max_request_bytes: usize,
}

fn default_max_entity_rows() -> usize {
    10_000
}

fn default_max_request_bytes() -> usize {
    16 * 1024 * 1024
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_entity_rows: default_max_entity_rows(),
            max_request_bytes: default_max_request_bytes(),
        }
    }
}

/// Where document indexes (versions, graphs, the embedding cache) live.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IndexStoreConfig {
    /// A folder, relative to the repo folder.
    #[serde(default = "default_index_path")]
    pub path: String,
}

fn default_index_path() -> String {
    "data/indexes".into()
}

impl Default for IndexStoreConfig {
    fn default() -> Self {
        IndexStoreConfig {
            path: default_index_path(),
        }
    }
}

fn default_registry() -> String {
    "data/registry.json".into()
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase", deny_unknown_fields)]
pub enum OfflineStoreConfig {
    Parquet {
        /// Where pushed rows are appended, one folder per view, partitioned by day; relative to
        /// the repo folder. Training sets and materialization read it beside each view's source.
        #[serde(default = "default_push_log")]
        push_log: String,
    },
}

fn default_push_log() -> String {
    "data/push_log".into()
}

impl Default for OfflineStoreConfig {
    fn default() -> Self {
        OfflineStoreConfig::Parquet {
            push_log: default_push_log(),
        }
    }
}

impl OfflineStoreConfig {
    /// The folder holding every view's push log.
    pub fn push_log_root(&self, repo_dir: &Path) -> PathBuf {
        match self {
            OfflineStoreConfig::Parquet { push_log } => repo_dir.join(push_log),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase", deny_unknown_fields)]
pub enum OnlineStoreConfig {
    /// A file-backed store inside the repo: no server needed.
    Embedded {
        #[serde(default = "default_online_path")]
        path: String,
    },
    /// Redis or Redis Cluster. `connection_string` may list several comma-separated cluster nodes.
    Redis {
        connection_string: String,
        /// Expire an entity's online data this long after its last write (0: never).
        #[serde(default)]
        key_ttl: Ttl,
        /// An environment variable holding the password (instead of one in the URL).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        password_env: Option<String>,
        /// TLS settings for `rediss://` URLs; paths relative to the repo folder.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        tls: Option<RedisTls>,
    },
}

/// Certificates for a Redis that does not use a public CA, or that wants client certificates.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RedisTls {
    /// PEM file of the CA that signed the server's certificate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_cert: Option<String>,
    /// PEM files of the client's certificate and key, for `tls-auth-clients yes`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_cert: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_key: Option<String>,
}

fn default_online_path() -> String {
    "data/online".into()
}

impl Default for OnlineStoreConfig {
    fn default() -> Self {
        OnlineStoreConfig::Embedded {
            path: default_online_path(),
        }
    }
}

impl RepoConfig {
    pub fn registry_path(&self, repo_dir: &Path) -> PathBuf {
        repo_dir.join(&self.registry)
    }

    pub fn index_path(&self, repo_dir: &Path) -> PathBuf {
        repo_dir.join(&self.index_store.path)
    }
}
