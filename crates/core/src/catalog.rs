//! A validated set of definitions, looked up by name. Built from repo files (at apply time) or from
//! the registry (everywhere else), so every command resolves names the same way.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::keys::KeyType;
use crate::spec::{DocumentIndex, Entity, FeatureService, FeatureView, Source};

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Catalog {
    pub entities: BTreeMap<String, Entity>,
    pub sources: BTreeMap<String, Source>,
    pub feature_views: BTreeMap<String, FeatureView>,
    pub feature_services: BTreeMap<String, FeatureService>,
    #[serde(default)]
    pub document_indexes: BTreeMap<String, DocumentIndex>,
    /// Per view, the type of each join key as its source holds it (recorded by `apply` when the
    /// source data exists), so serving can reject a request key of the wrong type by name.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub key_types: BTreeMap<String, BTreeMap<String, KeyType>>,
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
