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
#[derive(Default)]
pub enum OfflineStoreConfig {
    #[default]
    Parquet,
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
    },
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
