//! What the server serves: the registry as of the last `apply` or `materialize`, followed while the
//! server runs.
//!
//! Every request takes the current [`Snapshot`] once and uses it to the end, so a request in
//! flight never sees half of an `apply`. Before handing one out, [`FollowedRegistry`] compares the
//! registry file's identity (inode, mtime, size: one `stat`) with the one it loaded; writers
//! replace the file atomically, so a changed identity means a new registry, which is loaded and
//! swapped in. A registry that fails to load keeps the previous snapshot serving, and the error is
//! logged once per file version.
//!
//! Under load the `stat` is made at most once per [`CHECK_EVERY`]: at 30k requests/s a `stat`
//! per request cost 5-10% of the throughput (serving bench), and an `apply` finishing is seen by
//! the first request that starts a millisecond after it, not by every one.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use asof_core::atomic::{FileVersion as Signature, file_version as signature};
use asof_core::{Catalog, FeatureRequest, Registry};

use crate::error::{ServerError, ServerResult};
use crate::request_cache::{RequestCache, ShapeRef};

/// One registry, with what is derived from it. Immutable: a new registry makes a new snapshot.
#[derive(Debug)]
pub struct Snapshot {
    pub registry: Registry,
    pub catalog: Catalog,
    /// Resolutions are only valid for this catalog, so they live and die with it.
    requests: RequestCache,
}

impl Snapshot {
    pub fn new(registry: Registry) -> Self {
        Snapshot {
            catalog: registry.catalog(),
            registry,
            requests: RequestCache::default(),
        }
    }

    /// Resolves the features a request names, remembered per request shape. Only online views
    /// can be served: an `online: false` view has nothing in the online store.
    pub(crate) fn resolve(&self, shape: ShapeRef<'_>) -> ServerResult<Arc<FeatureRequest>> {
        let request = self.requests.resolve(&self.catalog, shape)?;
        if let Some(v) = request.views.iter().find(|v| !v.view.online) {
            return Err(ServerError::InvalidArgument(format!(
                "feature view `{}` is not served online (`online: false`); read it with `asof training-set`, or set `online: true` and run `asof apply` and `asof materialize`",
                v.view.name
            )));
        }
        Ok(request)
    }
}

#[derive(Debug)]
struct Current {
    /// The file version `snapshot` was loaded from (or last failed to load from).
    signature: Option<Signature>,
    snapshot: Arc<Snapshot>,
}

/// The registry a server follows: a file on disk, or (in tests and embedders) a fixed registry.
#[derive(Debug)]
pub struct FollowedRegistry {
    path: Option<PathBuf>,
    current: RwLock<Current>,
    /// When the file was last checked, in ns since `epoch`.
    checked: AtomicU64,
    epoch: Instant,
}

/// The longest a changed registry can go unnoticed while requests keep arriving.
pub const CHECK_EVERY: Duration = Duration::from_millis(1);

impl FollowedRegistry {
    /// Serves `registry` and never reloads it.
    pub fn fixed(registry: Registry) -> Self {
        FollowedRegistry {
            path: None,
            current: RwLock::new(Current {
                signature: None,
                snapshot: Arc::new(Snapshot::new(registry)),
            }),
            checked: AtomicU64::new(0),
            epoch: Instant::now(),
        }
    }

    /// Follows the registry file at `path`, which must exist now.
    pub fn follow(path: &Path) -> ServerResult<Self> {
        let signature = signature(path);
        let registry = Registry::load_required(path)?;
        Ok(FollowedRegistry {
            path: Some(path.to_path_buf()),
            current: RwLock::new(Current {
                signature,
                snapshot: Arc::new(Snapshot::new(registry)),
            }),
            checked: AtomicU64::new(0),
            epoch: Instant::now(),
        })
    }

    /// The registry as of now.
    pub fn snapshot(&self) -> Arc<Snapshot> {
        let Some(path) = &self.path else {
            return Arc::clone(&self.read().snapshot);
        };
        let elapsed = self.epoch.elapsed().as_nanos() as u64;
        let last = self.checked.load(Ordering::Relaxed);
        if elapsed.saturating_sub(last) < CHECK_EVERY.as_nanos() as u64
            || self
                .checked
                .compare_exchange(last, elapsed, Ordering::Relaxed, Ordering::Relaxed)
                .is_err()
        {
            // Checked a moment ago, or another request is checking right now.
            return Arc::clone(&self.read().snapshot);
        }
        let now = signature(path);
        {
            let current = self.read();
            if current.signature == now || now.is_none() {
                return Arc::clone(&current.snapshot);
            }
        }
        let mut current = self.current.write().unwrap_or_else(|p| p.into_inner());
        if current.signature != now {
            // Recorded even on failure, so a bad file is reported once, not on every request.
            current.signature = now;
            match Registry::load_required(path) {
                Ok(registry) => {
                    tracing::info!(
                        views = registry.feature_views.len(),
                        indexes = registry.document_indexes.len(),
                        "registry changed; serving the new one"
                    );
                    current.snapshot = Arc::new(Snapshot::new(registry));
                }
                Err(e) => {
                    tracing::error!(error = %e, "registry changed but cannot be read; still serving the previous one")
                }
            }
        }
        Arc::clone(&current.snapshot)
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Current> {
        self.current.read().unwrap_or_else(|p| p.into_inner())
    }
}
