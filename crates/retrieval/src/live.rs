//! Loaded versions for a long-running reader (the server). Every lookup checks the manifest file
//! first (one `stat`), so a sync's tombstones and a promote take effect on the very next query;
//! queries already running finish on the version they hold.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use asof_core::atomic::{FileVersion as Signature, file_version as signature};

use crate::error::{RetrievalError, RetrievalResult};
use crate::layout::Manifest;
use crate::search::LoadedVersion;
use crate::store::IndexStore;

#[derive(Default)]
struct IndexState {
    signature: Option<Signature>,
    manifest: Option<Manifest>,
    loaded: HashMap<String, Arc<LoadedVersion>>,
}

pub struct LiveIndexes {
    store: IndexStore,
    state: Mutex<HashMap<String, IndexState>>,
}

impl std::fmt::Debug for LiveIndexes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LiveIndexes")
            .field("root", &self.store.root())
            .finish()
    }
}

impl LiveIndexes {
    pub fn new(store: IndexStore) -> Self {
        LiveIndexes {
            store,
            state: Mutex::new(HashMap::new()),
        }
    }

    pub fn store(&self) -> &IndexStore {
        &self.store
    }

    /// The live version of `index`, or the named `version`, as of the manifest on disk now.
    /// Loading a new generation happens here, under a lock: later queries wait for it rather than
    /// read a generation that still holds deleted chunks.
    pub fn get(&self, index: &str, version: Option<&str>) -> RetrievalResult<Arc<LoadedVersion>> {
        let path = self.store.index_dir(index).manifest_path();
        let sig = signature(&path);
        let mut states = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let st = states.entry(index.to_string()).or_default();
        if st.signature != sig || st.manifest.is_none() {
            st.manifest = Some(self.store.manifest(index)?);
            st.signature = sig;
        }
        let manifest = st.manifest.as_ref().expect("loaded above");
        let id = match version {
            Some(v) => v.to_string(),
            None => manifest
                .live
                .clone()
                .ok_or_else(|| RetrievalError::NotSynced(index.to_string()))?,
        };
        let meta = manifest
            .versions
            .get(&id)
            .ok_or_else(|| RetrievalError::UnknownVersion {
                index: index.to_string(),
                version: id.clone(),
                hint: format!(
                    "; it has {}",
                    manifest
                        .versions
                        .keys()
                        .cloned()
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            })?;
        if let Some(v) = st.loaded.get(&id)
            && v.meta.generation == meta.generation
        {
            return Ok(Arc::clone(v));
        }
        let loaded = Arc::new(LoadedVersion::load(&self.store, index, meta)?);
        tracing::info!(index, version = %id, generation = meta.generation, points = loaded.len(), "loaded index version");
        let versions: Vec<String> = manifest.versions.keys().cloned().collect();
        st.loaded.retain(|k, _| versions.contains(k));
        st.loaded.insert(id, Arc::clone(&loaded));
        Ok(loaded)
    }
}
