//! Change streams: PostgreSQL tables followed by logical replication (`pgoutput`), each change
//! applied through the same write path as a push (`asof_server::ingest`) so training sets and
//! serving see the same events, and document changes re-chunked and re-embedded incrementally.
//!
//! One stream per PostgreSQL source or document index, each with its own publication and slot
//! (`asof_<project>_<name>`) and a checkpoint beside the registry.

pub mod checkpoint;
pub mod connect;
pub mod error;
pub mod follow;
pub mod metrics;
pub mod pg_types;
pub mod pgoutput;
pub mod plan;
mod setup;
pub mod status;

use std::path::Path;
use std::sync::Arc;

use asof_core::spec::SourceType;
use asof_core::{FeatureRequest, Registry, RepoConfig};
use asof_online::OnlineStore;
use asof_retrieval::IndexStore;
use tokio::sync::watch;

pub use error::{StreamError, StreamResult};
pub use follow::{Follower, Target};
pub use metrics::StreamMetrics;

/// The slot and publication name of `name` in `project`: PostgreSQL allows lower-case letters,
/// digits and `_`, at most 63 bytes.
pub fn slot_name(project: &str, name: &str) -> String {
    let clean = |s: &str| -> String {
        s.chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() {
                    c.to_ascii_lowercase()
                } else {
                    '_'
                }
            })
            .collect()
    };
    let mut slot = format!("asof_{}_{}", clean(project), clean(name));
    slot.truncate(63);
    slot
}

/// The names of the PostgreSQL sources (with the views reading them) and indexes of a registry.
pub fn streamable(registry: &Registry) -> Vec<String> {
    let mut names: Vec<String> = registry
        .sources
        .values()
        .filter(|s| s.spec.kind == SourceType::Postgres)
        .map(|s| s.spec.name.clone())
        .collect();
    names.extend(
        registry
            .document_indexes
            .values()
            .filter(|d| d.spec.source.kind == SourceType::Postgres)
            .map(|d| d.spec.name.clone()),
    );
    names
}

/// One follower per PostgreSQL source (feeding every view that reads it) and per index with a
/// PostgreSQL source, or only those in `only`.
pub fn followers(
    repo_dir: &Path,
    config: &RepoConfig,
    registry: &Registry,
    store: Arc<dyn OnlineStore>,
    only: &[String],
    metrics: &StreamMetrics,
) -> StreamResult<Vec<Follower>> {
    let all = streamable(registry);
    for name in only {
        if !all.contains(name) {
            let hint = asof_core::error::did_you_mean(name, all.iter().map(String::as_str))
                .map(|h| format!("; {h}"))
                .unwrap_or_default();
            return Err(StreamError::Config {
                what: format!("`--sources {name}`"),
                message: format!("no PostgreSQL source or index is named `{name}`{hint}"),
                fix: if all.is_empty() {
                    "declare a source with `type: postgres` and `asof apply`".into()
                } else {
                    format!("pick from: {}", all.join(", "))
                },
            });
        }
    }
    let catalog = registry.catalog();
    let registry_path = config.registry_path(repo_dir);
    let push_log = config.offline_store.push_log_root(repo_dir);
    let indexes = IndexStore::new(config.index_path(repo_dir));
    let mut out = Vec::new();
    for name in all {
        if !only.is_empty() && !only.contains(&name) {
            continue;
        }
        let (table, target) = if let Some(source) = catalog.sources.get(&name) {
            let views: Vec<String> = catalog
                .feature_views
                .values()
                .filter(|v| v.source == name)
                .map(|v| v.name.clone())
                .collect();
            let mut resolved = Vec::new();
            for v in views {
                let request = FeatureRequest::resolve(&catalog, &[v], false)?;
                resolved.extend(request.views);
            }
            let pg = source
                .postgres()
                .expect("validated: a postgres source has a table");
            (pg, Target::Views(resolved))
        } else {
            let ix = &catalog.document_indexes[&name];
            let pg = ix
                .source
                .postgres()
                .expect("validated: a postgres source has a table");
            (pg, Target::Index(ix.clone()))
        };
        let what = format!("`{name}`");
        let server = connect::Server::from_table(&table, &what)?;
        let index_metrics = matches!(target, Target::Index(_)).then(|| metrics.index(&name));
        out.push(Follower {
            project: registry.project.clone(),
            table: table.table.to_string(),
            server,
            slot: slot_name(&registry.project, &name),
            target,
            registry_path: registry_path.clone(),
            push_log: push_log.clone(),
            store: Arc::clone(&store),
            indexes: indexes.clone(),
            metrics: metrics.source(&name),
            index_metrics,
            on_written: metrics.on_written.clone(),
            name,
        });
    }
    Ok(out)
}

/// Runs `followers` until `shutdown` turns true; the first that fails stops the others and its
/// error is returned.
pub async fn run(followers: Vec<Follower>, shutdown: watch::Receiver<bool>) -> StreamResult<()> {
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut tasks = tokio::task::JoinSet::new();
    for f in followers {
        let stop = stop_rx.clone();
        tasks.spawn(async move {
            let name = f.name.clone();
            (name, f.run(stop).await)
        });
    }
    let mut outer = shutdown;
    tokio::spawn({
        let stop_tx = stop_tx.clone();
        async move {
            let _ = outer.wait_for(|s| *s).await.map(|_| ());
            let _ = stop_tx.send(true);
        }
    });
    let mut first_error = None;
    while let Some(joined) = tasks.join_next().await {
        match joined {
            Ok((_, Ok(()))) => {}
            Ok((name, Err(e))) => {
                tracing::debug!(stream = %name, error = %e, "stream stopped");
                let _ = stop_tx.send(true);
                first_error.get_or_insert(e);
            }
            Err(e) => {
                let _ = stop_tx.send(true);
                first_error.get_or_insert(StreamError::Change {
                    what: "a stream task".into(),
                    message: e.to_string(),
                });
            }
        }
    }
    first_error.map_or(Ok(()), Err)
}
