//! The registry: the applied definitions, each with a definition hash and its creation and update
//! times, plus per-view materialization watermarks. Stored as JSON and always written atomically.

use std::collections::BTreeMap;
use std::path::Path;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::atomic::write_atomic;
use crate::catalog::Catalog;
use crate::error::{CoreError, CoreResult};
use crate::lock::{FileLock, lock_path_for};

pub const REGISTRY_FORMAT_VERSION: u32 = 1;

/// A registered definition.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Record<T> {
    pub spec: T,
    /// blake3 of the definition's canonical JSON: equal hashes mean equal definitions.
    pub definition_hash: String,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// Where materialization of a view stands.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Materialization {
    /// Everything with event time up to here is in the online store.
    pub watermark: DateTime<Utc>,
    /// The newest event time written to the online store (for freshness).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub newest_event_timestamp: Option<DateTime<Utc>>,
    pub updated_at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Registry {
    pub format_version: u32,
    pub project: String,
    pub updated_at: DateTime<Utc>,
    pub entities: BTreeMap<String, Record<crate::spec::Entity>>,
    pub sources: BTreeMap<String, Record<crate::spec::Source>>,
    pub feature_views: BTreeMap<String, Record<crate::spec::FeatureView>>,
    pub feature_services: BTreeMap<String, Record<crate::spec::FeatureService>>,
    #[serde(default)]
    pub document_indexes: BTreeMap<String, Record<crate::spec::DocumentIndex>>,
    #[serde(default)]
    pub materialization: BTreeMap<String, Materialization>,
    /// Per view, each join key's type in its source (see [`Catalog::key_types`]).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub key_types: BTreeMap<String, BTreeMap<String, crate::keys::KeyType>>,
}

/// What `apply` does to one object.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "action")]
pub enum Action {
    Create,
    /// The top-level fields that differ.
    Update {
        fields: Vec<String>,
    },
    Delete,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Change {
    /// `entity`, `source`, `feature_view`, `feature_service` or `document_index`.
    pub kind: &'static str,
    pub name: String,
    #[serde(flatten)]
    pub action: Action,
}

/// The difference between the registry and the repo files.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Plan {
    pub changes: Vec<Change>,
    pub unchanged: usize,
}

impl Plan {
    pub fn is_empty(&self) -> bool {
        self.changes.is_empty()
    }

    pub fn count(&self, f: impl Fn(&Action) -> bool) -> usize {
        self.changes.iter().filter(|c| f(&c.action)).count()
    }
}

fn hash_of<T: Serialize>(spec: &T) -> String {
    let json = serde_json::to_vec(spec).expect("definitions serialize to JSON");
    blake3::hash(&json).to_hex().to_string()
}

fn changed_fields<T: Serialize>(old: &T, new: &T) -> Vec<String> {
    let (serde_json::Value::Object(a), serde_json::Value::Object(b)) = (
        serde_json::to_value(old).unwrap_or_default(),
        serde_json::to_value(new).unwrap_or_default(),
    ) else {
        return vec![];
    };
    let mut keys: Vec<&String> = a.keys().chain(b.keys()).collect();
    keys.sort();
    keys.dedup();
    keys.into_iter()
        .filter(|k| a.get(*k) != b.get(*k))
        .cloned()
        .collect()
}

/// Merges one kind: new records keep `created_at` of unchanged or updated objects.
fn merge_kind<T: Serialize + Clone>(
    kind: &'static str,
    old: Option<&BTreeMap<String, Record<T>>>,
    new: &BTreeMap<String, T>,
    now: DateTime<Utc>,
    plan: &mut Plan,
) -> BTreeMap<String, Record<T>> {
    let empty = BTreeMap::new();
    let old = old.unwrap_or(&empty);
    let mut out = BTreeMap::new();
    for (name, spec) in new {
        let hash = hash_of(spec);
        let record = match old.get(name) {
            Some(prev) if prev.definition_hash == hash => {
                plan.unchanged += 1;
                prev.clone()
            }
            Some(prev) => {
                plan.changes.push(Change {
                    kind,
                    name: name.clone(),
                    action: Action::Update {
                        fields: changed_fields(&prev.spec, spec),
                    },
                });
                Record {
                    spec: spec.clone(),
                    definition_hash: hash,
                    created_at: prev.created_at,
                    updated_at: now,
                }
            }
            None => {
                plan.changes.push(Change {
                    kind,
                    name: name.clone(),
                    action: Action::Create,
                });
                Record {
                    spec: spec.clone(),
                    definition_hash: hash,
                    created_at: now,
                    updated_at: now,
                }
            }
        };
        out.insert(name.clone(), record);
    }
    for name in old.keys().filter(|n| !new.contains_key(*n)) {
        plan.changes.push(Change {
            kind,
            name: name.clone(),
            action: Action::Delete,
        });
    }
    out
}

impl Registry {
    /// The registry that applying `catalog` over `old` yields, and the plan that says how.
    pub fn apply(
        old: Option<&Registry>,
        project: &str,
        catalog: &Catalog,
        now: DateTime<Utc>,
    ) -> (Registry, Plan) {
        let mut plan = Plan::default();
        let registry = Registry {
            format_version: REGISTRY_FORMAT_VERSION,
            project: project.to_string(),
            updated_at: now,
            entities: merge_kind(
                "entity",
                old.map(|o| &o.entities),
                &catalog.entities,
                now,
                &mut plan,
            ),
            sources: merge_kind(
                "source",
                old.map(|o| &o.sources),
                &catalog.sources,
                now,
                &mut plan,
            ),
            feature_views: merge_kind(
                "feature_view",
                old.map(|o| &o.feature_views),
                &catalog.feature_views,
                now,
                &mut plan,
            ),
            feature_services: merge_kind(
                "feature_service",
                old.map(|o| &o.feature_services),
                &catalog.feature_services,
                now,
                &mut plan,
            ),
            document_indexes: merge_kind(
                "document_index",
                old.map(|o| &o.document_indexes),
                &catalog.document_indexes,
                now,
                &mut plan,
            ),
            materialization: old
                .map(|o| {
                    o.materialization
                        .iter()
                        .filter(|(v, _)| catalog.feature_views.contains_key(*v))
                        .map(|(k, v)| (k.clone(), v.clone()))
                        .collect()
                })
                .unwrap_or_default(),
            key_types: catalog.key_types.clone(),
        };
        let registry = match old {
            // Nothing to apply; key types may be learnt now that the data exists.
            Some(o) if plan.is_empty() && o.key_types == catalog.key_types => o.clone(),
            Some(o) if plan.is_empty() => Registry {
                key_types: catalog.key_types.clone(),
                ..o.clone()
            },
            _ => registry,
        };
        (registry, plan)
    }

    pub fn catalog(&self) -> Catalog {
        Catalog {
            entities: self
                .entities
                .iter()
                .map(|(k, r)| (k.clone(), r.spec.clone()))
                .collect(),
            sources: self
                .sources
                .iter()
                .map(|(k, r)| (k.clone(), r.spec.clone()))
                .collect(),
            feature_views: self
                .feature_views
                .iter()
                .map(|(k, r)| (k.clone(), r.spec.clone()))
                .collect(),
            feature_services: self
                .feature_services
                .iter()
                .map(|(k, r)| (k.clone(), r.spec.clone()))
                .collect(),
            document_indexes: self
                .document_indexes
                .iter()
                .map(|(k, r)| (k.clone(), r.spec.clone()))
                .collect(),
            key_types: self.key_types.clone(),
        }
    }

    /// Reads the registry; `Ok(None)` if there is none yet.
    pub fn load(path: &Path) -> CoreResult<Option<Registry>> {
        let bytes = match std::fs::read(path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(CoreError::io(path, e)),
        };
        let reg: Registry =
            serde_json::from_slice(&bytes).map_err(|e| CoreError::CorruptRegistry {
                path: path.to_path_buf(),
                message: e.to_string(),
            })?;
        if reg.format_version != REGISTRY_FORMAT_VERSION {
            return Err(CoreError::CorruptRegistry {
                path: path.to_path_buf(),
                message: format!(
                    "format version {} is not {REGISTRY_FORMAT_VERSION}, which this asof writes",
                    reg.format_version
                ),
            });
        }
        Ok(Some(reg))
    }

    /// Reads the registry, which must exist.
    pub fn load_required(path: &Path) -> CoreResult<Registry> {
        Self::load(path)?.ok_or_else(|| CoreError::NoRegistry(path.to_path_buf()))
    }

    /// Locks the registry at `path` against other processes' read-modify-writes. Every writer
    /// holds it from its read to its write, so two commands racing never lose either's change.
    pub fn lock(path: &Path) -> CoreResult<FileLock> {
        FileLock::exclusive(&lock_path_for(path))
    }

    /// A read-modify-write under [`Registry::lock`]: `change` sees the registry as it is on disk
    /// now (not as this process read it earlier) and edits it; it is saved if `change` returns
    /// `true`. A registry must exist.
    pub fn update<T>(
        path: &Path,
        change: impl FnOnce(&mut Registry) -> CoreResult<(bool, T)>,
    ) -> CoreResult<T> {
        let _lock = Self::lock(path)?;
        let mut registry = Self::load_required(path)?;
        let (changed, out) = change(&mut registry)?;
        if changed {
            registry.save(path)?;
        }
        Ok(out)
    }

    /// Writes the registry atomically. Callers that read it first hold [`Registry::lock`].
    pub fn save(&self, path: &Path) -> CoreResult<()> {
        write_atomic(path, |w| {
            serde_json::to_writer_pretty(&mut *w, self).map_err(std::io::Error::other)?;
            w.write_all(b"\n")
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::Entity;

    fn catalog_with(desc: &str) -> Catalog {
        let mut c = Catalog::default();
        c.entities.insert(
            "driver".into(),
            Entity {
                name: "driver".into(),
                join_keys: vec!["driver_id".into()],
                description: desc.into(),
                tags: Default::default(),
            },
        );
        c
    }

    #[test]
    fn diff_reports_create_update_delete_and_keeps_created_at() {
        let t0 = Utc::now();
        let (r1, p1) = Registry::apply(None, "p", &catalog_with("a"), t0);
        assert_eq!(
            p1.changes,
            vec![Change {
                kind: "entity",
                name: "driver".into(),
                action: Action::Create
            }]
        );
        let (r1b, p) = Registry::apply(
            Some(&r1),
            "p",
            &catalog_with("a"),
            t0 + chrono::Duration::seconds(5),
        );
        assert!(p.is_empty());
        assert_eq!(
            r1b, r1,
            "an empty plan changes nothing, not even timestamps"
        );
        let t1 = t0 + chrono::Duration::seconds(10);
        let (r2, p2) = Registry::apply(Some(&r1), "p", &catalog_with("b"), t1);
        assert_eq!(
            p2.changes[0].action,
            Action::Update {
                fields: vec!["description".into()]
            }
        );
        assert_eq!(r2.entities["driver"].created_at, t0);
        assert_eq!(r2.entities["driver"].updated_at, t1);
        let (_, p3) = Registry::apply(Some(&r2), "p", &Catalog::default(), t1);
        assert_eq!(p3.changes[0].action, Action::Delete);
    }
}
