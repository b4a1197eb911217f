//! Feature references (`view:feature`, or a bare `view` for all its features), their resolution
//! against a [`Catalog`], and the one function that names output columns.

use crate::catalog::Catalog;
use crate::error::{CoreError, CoreResult, did_you_mean};
use crate::spec::{Feature, FeatureView, Source};

/// The column name of a feature in training sets and serving responses: `feature`, or
/// `view__feature` with full feature names. Every path names features through this function.
pub fn feature_column_name(view: &str, feature: &str, full_feature_names: bool) -> String {
    if full_feature_names {
        format!("{view}__{feature}")
    } else {
        feature.to_string()
    }
}

/// The column holding the matched row's event timestamp for a view (`--with-timestamps`).
pub fn event_timestamp_column_name(view: &str) -> String {
    format!("{view}__event_timestamp")
}

/// One view of a request, with the features asked of it.
#[derive(Debug, Clone)]
pub struct ResolvedView {
    pub view: FeatureView,
    pub source: Source,
    pub join_keys: Vec<String>,
    /// The type of each join key in the source, where `apply` could read it.
    pub key_types: Vec<Option<crate::keys::KeyType>>,
    /// The requested features of this view, in first-request order, without repeats.
    pub features: Vec<Feature>,
}

impl ResolvedView {
    /// The requested aggregations of an aggregated view (empty for a plain one).
    pub fn aggregations(&self) -> impl Iterator<Item = &crate::spec::Aggregation> + '_ {
        self.view
            .aggregations
            .iter()
            .filter(|a| self.features.iter().any(|f| f.name == a.name))
    }

    /// The columns a read of the requested features needs from each event: the requested
    /// features of a plain view, or the input columns of the requested aggregations.
    pub fn read_columns(&self) -> Vec<Feature> {
        if !self.view.is_aggregated() {
            return self.features.clone();
        }
        self.view
            .event_columns()
            .into_iter()
            .filter(|c| {
                self.aggregations()
                    .any(|a| a.column.as_ref() == Some(&c.name))
            })
            .collect()
    }
}

/// A resolved request: the views to read and the output columns in request order.
#[derive(Debug, Clone)]
pub struct FeatureRequest {
    pub views: Vec<ResolvedView>,
    /// (index into `views`, feature name, output column name), in request order.
    pub columns: Vec<(usize, String, String)>,
    pub full_feature_names: bool,
}

impl FeatureRequest {
    /// Resolves refs (or a service's refs), checking every name and that output names are unique.
    pub fn resolve(
        catalog: &Catalog,
        refs: &[String],
        full_feature_names: bool,
    ) -> CoreResult<FeatureRequest> {
        if refs.is_empty() {
            return Err(CoreError::Request(
                "no features requested: pass feature refs (`view:feature`) or a feature service"
                    .into(),
            ));
        }
        let mut req = FeatureRequest {
            views: Vec::new(),
            columns: Vec::new(),
            full_feature_names,
        };
        for r in refs {
            let (view_name, feature) = match r.split_once(':') {
                Some((v, f)) => (v.trim(), Some(f.trim())),
                None => (r.trim(), None),
            };
            let view = catalog.feature_views.get(view_name).ok_or_else(|| {
                let hint =
                    did_you_mean(view_name, catalog.feature_views.keys().map(String::as_str))
                        .map(|h| format!("; {h}"))
                        .unwrap_or_default();
                CoreError::Request(format!("unknown feature view `{view_name}` in `{r}`{hint}"))
            })?;
            let idx = match req.views.iter().position(|v| v.view.name == view.name) {
                Some(i) => i,
                None => {
                    let source = catalog.sources.get(&view.source).cloned().ok_or_else(|| {
                        CoreError::Request(format!(
                            "feature view `{}` names source `{}`, which is not registered",
                            view.name, view.source
                        ))
                    })?;
                    let join_keys = catalog.join_keys(view);
                    let types = catalog.key_types.get(&view.name);
                    req.views.push(ResolvedView {
                        key_types: join_keys
                            .iter()
                            .map(|k| types.and_then(|t| t.get(k)).copied())
                            .collect(),
                        join_keys,
                        view: view.clone(),
                        source,
                        features: Vec::new(),
                    });
                    req.views.len() - 1
                }
            };
            let wanted: Vec<&Feature> = match feature {
                Some(f) => vec![view.feature(f).ok_or_else(|| {
                    let hint = did_you_mean(f, view.features.iter().map(|x| x.name.as_str()))
                        .map(|h| format!("; {h}"))
                        .unwrap_or_default();
                    CoreError::Request(format!(
                        "feature view `{view_name}` has no feature `{f}`{hint}"
                    ))
                })?],
                None => view.features.iter().collect(),
            };
            for f in wanted {
                let rv = &mut req.views[idx];
                if rv.features.iter().any(|x| x.name == f.name) {
                    continue;
                }
                rv.features.push(f.clone());
                req.columns.push((
                    idx,
                    f.name.clone(),
                    feature_column_name(view_name, &f.name, full_feature_names),
                ));
            }
        }
        let mut seen = std::collections::HashMap::new();
        for (idx, feature, out) in &req.columns {
            let view = &req.views[*idx].view.name;
            if let Some(other) = seen.insert(out.clone(), view.clone()) {
                return Err(CoreError::Request(format!(
                    "feature name `{out}` is requested from both `{other}` and `{view}`{}",
                    if full_feature_names {
                        String::new()
                    } else {
                        format!(
                            "; pass --full-feature-names to name them `{other}__{feature}` and `{view}__{feature}`"
                        )
                    }
                )));
            }
        }
        Ok(req)
    }

    /// Resolves a feature service by name.
    pub fn resolve_service(
        catalog: &Catalog,
        service: &str,
        full_feature_names: bool,
    ) -> CoreResult<FeatureRequest> {
        let svc = catalog.feature_services.get(service).ok_or_else(|| {
            let hint = did_you_mean(service, catalog.feature_services.keys().map(String::as_str))
                .map(|h| format!("; {h}"))
                .unwrap_or_default();
            CoreError::Request(format!("unknown feature service `{service}`{hint}"))
        })?;
        Self::resolve(catalog, &svc.features, full_feature_names)
    }

    /// Output column names in request order.
    pub fn output_names(&self) -> Vec<String> {
        self.columns.iter().map(|(_, _, n)| n.clone()).collect()
    }
}
