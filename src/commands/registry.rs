//! `asof plan`, `apply`, `ls` and `describe`: the registry's commands.

use anyhow::{Context, Result, bail};
use asof_core::registry::{Action, Plan};
use asof_core::{Registry, Repo};
use asof_offline::probe::ParquetProbe;
use serde_json::json;

use super::{Ctx, display_path};
use crate::cli::{Kind, OutputFormat};

fn print_plan(project: &str, plan: &Plan, applied: bool, format: OutputFormat) -> Result<()> {
    if format == OutputFormat::Json {
        println!(
            "{}",
            serde_json::to_string_pretty(
                &json!({"project": project, "applied": applied, "changes": plan.changes, "unchanged": plan.unchanged})
            )?
        );
        return Ok(());
    }
    if plan.is_empty() {
        println!(
            "No changes: {} objects of project {project} are up to date.",
            plan.unchanged
        );
        return Ok(());
    }
    println!(
        "{} project {project}:",
        if applied { "Applied to" } else { "Plan for" }
    );
    for c in &plan.changes {
        match &c.action {
            Action::Create => println!("  + {} {} (create)", c.kind, c.name),
            Action::Update { fields } => {
                println!("  ~ {} {} (update: {})", c.kind, c.name, fields.join(", "))
            }
            Action::Delete => println!("  - {} {} (delete)", c.kind, c.name),
        }
    }
    println!(
        "{} to create, {} to update, {} to delete, {} unchanged.",
        plan.count(|a| *a == Action::Create),
        plan.count(|a| matches!(a, Action::Update { .. })),
        plan.count(|a| *a == Action::Delete),
        plan.unchanged
    );
    Ok(())
}

/// `plan` (apply = false) or `apply`.
pub fn plan(ctx: &Ctx, format: OutputFormat, apply: bool) -> Result<()> {
    let repo = Repo::load(&ctx.repo)?;
    let catalog = asof_core::validate::validate(&repo, &ParquetProbe)?;
    let path = repo.config.registry_path(&ctx.repo);
    // `apply` holds the registry lock from its read to its write: a materialize recording a
    // watermark, or another apply, waits and then sees this one's result. `plan` writes nothing
    // and takes no lock.
    let _lock = if apply {
        Some(Registry::lock(&path)?)
    } else {
        None
    };
    let old = Registry::load(&path)?;
    if let Some(o) = &old
        && o.project != repo.config.project
    {
        bail!(
            "registry {} belongs to project `{}`, not `{}`; point `registry:` in feature_store.yaml elsewhere or remove the old registry",
            display_path(&path),
            o.project,
            repo.config.project
        );
    }
    let (registry, plan) = Registry::apply(
        old.as_ref(),
        &repo.config.project,
        &catalog,
        chrono::Utc::now(),
    );
    let deleted_views: Vec<&str> = plan
        .changes
        .iter()
        .filter(|c| c.kind == "feature_view" && c.action == Action::Delete)
        .map(|c| c.name.as_str())
        .collect();
    if apply && !deleted_views.is_empty() {
        // Remove the online data first: if the store is unreachable, the registry stays as it was
        // and a later apply retries.
        super::runtime()?.block_on(async {
            let store = asof_online::open(&repo.config.online_store, &ctx.repo).await?;
            for view in &deleted_views {
                let n = store.delete_prefix(asof_core::keys::view_keys_prefix(&repo.config.project, view)).await.with_context(|| {
                    format!("removing the online data of deleted view `{view}` (the registry was not changed)")
                })?;
                if format == OutputFormat::Text && !ctx.quiet {
                    println!("Removed {n} online rows of deleted view {view} from {}", store.describe());
                }
            }
            anyhow::Ok(())
        })?;
    }
    if apply && (!plan.is_empty() || old.is_none()) {
        registry
            .save(&path)
            .with_context(|| format!("writing registry {}", display_path(&path)))?;
    }
    if ctx.quiet {
        return Ok(());
    }
    print_plan(&repo.config.project, &plan, apply, format)?;
    if apply && !plan.is_empty() && format == OutputFormat::Text {
        println!("Registry written to {}", display_path(&path));
    }
    Ok(())
}

fn records(reg: &Registry, kind: Kind) -> Vec<(String, serde_json::Value)> {
    fn to_json<T: serde::Serialize>(
        m: &std::collections::BTreeMap<String, asof_core::registry::Record<T>>,
    ) -> Vec<(String, serde_json::Value)> {
        m.iter()
            .map(|(k, r)| (k.clone(), serde_json::to_value(r).unwrap_or_default()))
            .collect()
    }
    match kind {
        Kind::Entities => to_json(&reg.entities),
        Kind::Sources => to_json(&reg.sources),
        Kind::Views => to_json(&reg.feature_views),
        Kind::Services => to_json(&reg.feature_services),
        Kind::Indexes => to_json(&reg.document_indexes),
    }
}

fn kind_name(kind: Kind) -> &'static str {
    match kind {
        Kind::Entities => "entities",
        Kind::Sources => "sources",
        Kind::Views => "feature_views",
        Kind::Services => "feature_services",
        Kind::Indexes => "document_indexes",
    }
}

/// A one-line summary of an object for `ls`.
fn summary(kind: Kind, reg: &Registry, name: &str) -> String {
    match kind {
        Kind::Entities => format!(
            "join_keys: {}",
            reg.entities[name].spec.join_keys.join(", ")
        ),
        Kind::Sources => format!("path: {}", reg.sources[name].spec.path),
        Kind::Views => {
            let v = &reg.feature_views[name].spec;
            let wm = reg
                .materialization
                .get(name)
                .map(|m| format!(", materialized to {}", m.watermark.to_rfc3339()))
                .unwrap_or_default();
            format!(
                "entities: {}, features: {}, ttl: {}{wm}",
                v.entities.join(", "),
                v.features.len(),
                v.ttl
            )
        }
        Kind::Services => format!(
            "features: {}",
            reg.feature_services[name].spec.features.join(", ")
        ),
        Kind::Indexes => {
            let d = &reg.document_indexes[name].spec;
            format!(
                "entity: {}, model: {}, source: {}",
                d.entity,
                d.embedding.model_id(),
                d.source.path
            )
        }
    }
}

pub fn ls(ctx: &Ctx, kind: Option<Kind>, format: OutputFormat) -> Result<()> {
    let reg = ctx.registry()?;
    let kinds = kind.map(|k| vec![k]).unwrap_or_else(|| {
        vec![
            Kind::Entities,
            Kind::Sources,
            Kind::Views,
            Kind::Services,
            Kind::Indexes,
        ]
    });
    if format == OutputFormat::Json {
        let mut out = serde_json::Map::new();
        for k in kinds {
            let names: Vec<serde_json::Value> =
                records(&reg, k).into_iter().map(|(_, v)| v).collect();
            out.insert(kind_name(k).into(), names.into());
        }
        println!("{}", serde_json::to_string_pretty(&out)?);
        return Ok(());
    }
    for k in kinds {
        let recs = records(&reg, k);
        println!("{} ({}):", kind_name(k), recs.len());
        for (name, _) in recs {
            println!("  {name:<28} {}", summary(k, &reg, &name));
        }
    }
    Ok(())
}

pub fn describe(ctx: &Ctx, kind: Kind, name: &str, format: OutputFormat) -> Result<()> {
    let reg = ctx.registry()?;
    let recs = records(&reg, kind);
    let Some((_, value)) = recs.iter().find(|(n, _)| n == name) else {
        let hint = asof_core::error::did_you_mean(name, recs.iter().map(|(n, _)| n.as_str()))
            .map(|h| format!("; {h}"))
            .unwrap_or_default();
        bail!(
            "no {} named `{name}` in the registry{hint}",
            match kind {
                Kind::Indexes => "document_index",
                Kind::Entities => "entity",
                k => kind_name(k).trim_end_matches('s'),
            }
        );
    };
    let mut value = value.clone();
    if kind == Kind::Views
        && let Some(m) = reg.materialization.get(name)
    {
        value["materialization"] = serde_json::to_value(m)?;
    }
    match format {
        OutputFormat::Json => println!("{}", serde_json::to_string_pretty(&value)?),
        OutputFormat::Text => print!("{}", serde_yaml_ng::to_string(&value)?),
    }
    Ok(())
}
