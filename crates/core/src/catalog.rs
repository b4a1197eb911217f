//! A validated set of definitions, looked up by name. Built from repo files (at apply time) or from
//! the registry (everywhere else), so every command resolves names the same way.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::spec::{DocumentIndex, Entity, FeatureService, FeatureView, Source};

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Catalog {
    pub entities: BTreeMap<String, Entity>,
    pub sources: BTreeMap<String, Source>,
    pub feature_views: BTreeMap<String, FeatureView>,
    pub feature_services: BTreeMap<String, FeatureService>,
    #[serde(default)]
    pub document_indexes: BTreeMap<String, DocumentIndex>,
}

impl Catalog {
    /// The join keys of a view, in the order of its entities and then of each entity's keys.
    /// Every path (offline join, online key encoding, serving) takes keys in this order.
    pub fn join_keys(&self, view: &FeatureView) -> Vec<String> {
        view.entities
            .iter()
            .filter_map(|e| self.entities.get(e))
            .flat_map(|e| e.join_keys.iter().cloned())
            .collect()
    }
}
