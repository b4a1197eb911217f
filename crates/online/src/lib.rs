//! asof's online stores: the latest row per (view, entity), each stored with its event timestamp;
//! for aggregated views, a log of each entity's events within the view's longest window.
//!
//! Keys and rows are encoded by `asof_core::keys` and `asof_core::value`; a store only moves bytes
//! and enforces one rule: a write never replaces a row with an older one (it compares the rows'
//! byte-ordered timestamp headers atomically, inside the store).

mod embedded;
mod error;
mod redis_store;

use std::path::Path;
use std::sync::Arc;

use asof_core::OnlineStoreConfig;

pub use embedded::EmbeddedStore;
pub use error::{OnlineError, OnlineResult};
pub use redis_store::{RedisStore, TlsFiles};

/// A key-value store of encoded rows.
#[async_trait::async_trait]
pub trait OnlineStore: Send + Sync + std::fmt::Debug {
    /// Writes `(key, row)` pairs; a pair whose row header is not newer than the stored one is
    /// skipped. Returns the number written.
    async fn write(&self, rows: Vec<(Vec<u8>, Vec<u8>)>) -> OnlineResult<usize>;
    /// Reads rows by key in one round trip; `None` where absent.
    async fn read(&self, keys: Vec<Vec<u8>>) -> OnlineResult<Vec<Option<Vec<u8>>>>;
    /// Removes every key starting with `prefix` (a deleted view's data). Returns how many.
    async fn delete_prefix(&self, prefix: Vec<u8>) -> OnlineResult<usize>;
    /// The first `len` bytes of every row under `prefix` (headers, for `asof status`): a full
    /// scan, not for serving paths.
    async fn heads(&self, prefix: Vec<u8>, len: usize) -> OnlineResult<Vec<Vec<u8>>>;
    /// Adds events to per-key logs (aggregated views): `(key, members)`, a member being an
    /// encoded `asof_core::value::StoredEvent`. Each log keeps only the events of the `horizon`
    /// (the view's longest window, ns) before its newest event, stored or new
    /// (`StoredEvent::admit`): older members are neither added nor kept, and a member already
    /// in its log is not added again. Returns how many members were added.
    async fn append_events(
        &self,
        logs: Vec<(Vec<u8>, Vec<Vec<u8>>)>,
        horizon: i64,
    ) -> OnlineResult<usize>;
    /// Per `(key, from, to)`, the members of the key's log with `from <= member < to`, in byte
    /// order; all keys in one round trip.
    async fn read_events(
        &self,
        ranges: Vec<(Vec<u8>, Vec<u8>, Vec<u8>)>,
    ) -> OnlineResult<Vec<Vec<Vec<u8>>>>;
    /// The newest member's first `len` bytes of every event log under `prefix` (for `asof
    /// status`), and the logs' total size in bytes: a full scan, not for serving paths.
    async fn event_heads(&self, prefix: Vec<u8>, len: usize) -> OnlineResult<(Vec<Vec<u8>>, u64)>;
    /// A short description for logs ("redis 127.0.0.1:6379", "embedded data/online").
    fn describe(&self) -> String;
}

/// Opens the store a repo's config names.
pub async fn open(
    config: &OnlineStoreConfig,
    repo_dir: &Path,
) -> OnlineResult<Arc<dyn OnlineStore>> {
    Ok(match config {
        OnlineStoreConfig::Embedded { path } => {
            Arc::new(EmbeddedStore::open(&repo_dir.join(path))?)
        }
        OnlineStoreConfig::Redis {
            connection_string,
            key_ttl,
            password_env,
            tls,
        } => {
            let password = match password_env {
                None => None,
                Some(var) => Some(std::env::var(var).map_err(|_| {
                    OnlineError::Config(format!(
                        "online_store.password_env names `{var}`, which is not set; export it with the Redis password"
                    ))
                })?),
            };
            let tls = tls
                .as_ref()
                .map(|t| TlsFiles::read(t, repo_dir))
                .transpose()?;
            Arc::new(RedisStore::connect_with(connection_string, *key_ttl, password, tls).await?)
        }
    })
}
