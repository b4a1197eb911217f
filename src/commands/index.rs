//! `asof index ...`: document indexes from the command line.

use std::collections::BTreeMap;
use std::time::Instant;

use anyhow::{Result, bail};
use asof_core::spec::{DocumentIndex, SearchMode};
use asof_retrieval::eval::{evaluate, read_queries};
use asof_retrieval::layout::Manifest;
use asof_retrieval::search::DEFAULT_EF;
use asof_retrieval::{IndexStore, LiveIndexes, Query, SearchOptions, VersionSync};

use super::Ctx;
use crate::cli::{IndexCommand, OutputFormat};
use crate::progress::{rate, spinner, thousands};

fn store(ctx: &Ctx) -> Result<IndexStore> {
    Ok(IndexStore::new(ctx.config()?.index_path(&ctx.repo)))
}

/// The index's applied definition: sync works from the registry, like every other command.
fn spec(ctx: &Ctx, name: &str) -> Result<DocumentIndex> {
    let reg = ctx.registry()?;
    match reg.document_indexes.get(name) {
        Some(r) => Ok(r.spec.clone()),
        None => {
            let hint = asof_core::error::did_you_mean(
                name,
                reg.document_indexes.keys().map(String::as_str),
            )
            .map(|h| format!("; {h}"))
            .unwrap_or_else(|| {
                " (declare it under `document_indexes:` in a repo file and run `asof apply`)".into()
            });
            bail!("no document index named `{name}` in the registry{hint}")
        }
    }
}

fn print_json<T: serde::Serialize>(value: &T) -> Result<()> {
    println!("{}", serde_json::to_string_pretty(value)?);
    Ok(())
}

pub fn run(ctx: &Ctx, command: IndexCommand) -> Result<()> {
    match command {
        IndexCommand::Sync { name, format } => sync(ctx, &name, format.output),
        IndexCommand::Status { name, format } => {
            let m = store(ctx)?.manifest(&spec(ctx, &name)?.name)?;
            status(&m, format.output)
        }
        IndexCommand::Search {
            name,
            query,
            k,
            version,
            filters,
            mode,
            as_of,
            documents,
            child_k,
            whole,
            format,
        } => search(
            ctx,
            SearchArgs {
                name: &name,
                query: &query,
                k,
                mode: mode.map(Into::into),
                version: version.as_deref(),
                filters: &filters,
                as_of: as_of.as_deref(),
                documents: documents.then_some((child_k, whole)),
                format: format.output,
            },
        ),
        IndexCommand::Eval {
            name,
            queries,
            k,
            format,
        } => {
            let spec = spec(ctx, &name)?;
            let queries = read_queries(&queries)?;
            let modes = [SearchMode::Dense, SearchMode::Sparse, SearchMode::Hybrid];
            let evals = evaluate(
                &store(ctx)?,
                &spec.name,
                &queries,
                k,
                &modes,
                &spec.retrieval,
            )?;
            if format.output == OutputFormat::Json {
                return print_json(&evals);
            }
            println!(
                "{:<8} {:<40} {:>5} {:<7} {:>8} {:>10} {:>7}",
                "version",
                "model",
                "live",
                "mode",
                "nDCG@10",
                format!("recall@{k}"),
                "MRR"
            );
            for e in &evals {
                println!(
                    "{:<8} {:<40} {:>5} {:<7} {:>8.3} {:>10.3} {:>7.3}",
                    e.version,
                    e.model_id,
                    if e.live { "yes" } else { "" },
                    e.mode.to_string(),
                    e.ndcg_at_10,
                    e.recall_at_k,
                    e.mrr
                );
            }
            println!("{} labelled queries", queries.len());
            Ok(())
        }
        IndexCommand::Promote {
            name,
            version,
            force,
            format,
        } => {
            let spec = spec(ctx, &name)?;
            let store = store(ctx)?;
            if let Some(g) = asof_retrieval::eval::gate(&store, &ctx.repo, &spec, &version)? {
                let live = g
                    .live
                    .as_ref()
                    .map(|(v, s)| format!("live `{v}` {}: {s:.4}", g.metric))
                    .unwrap_or_else(|| "no live version".into());
                let line = format!(
                    "{} gate ({} search, max regression {}): `{version}` {}: {:.4}; {live}",
                    name, g.mode, g.max_regression, g.metric, g.candidate_score
                );
                if !g.passed && !force {
                    bail!(
                        "{line}\nrefusing to promote `{version}`: it is worse than the live version by more than {}; pass --force to promote it anyway",
                        g.max_regression
                    );
                }
                if !ctx.quiet {
                    eprintln!("{line}{}", if g.passed { "" } else { " (forced)" });
                }
            }
            let m = store.promote(&spec.name, &version)?;
            if format.output == OutputFormat::Text {
                println!(
                    "{name}: `{version}` is live (rollback returns to `{}`)",
                    m.previous.as_deref().unwrap_or("-")
                );
                return Ok(());
            }
            status(&m, format.output)
        }
        IndexCommand::Rollback { name, format } => {
            let m = store(ctx)?.rollback(&spec(ctx, &name)?.name)?;
            if format.output == OutputFormat::Text {
                println!(
                    "{name}: `{}` is live again",
                    m.live.as_deref().unwrap_or("-")
                );
                return Ok(());
            }
            status(&m, format.output)
        }
        IndexCommand::Drop {
            name,
            version,
            format,
        } => {
            let m = store(ctx)?.drop_version(&spec(ctx, &name)?.name, &version)?;
            if format.output == OutputFormat::Text {
                println!("{name}: dropped `{version}`");
                return Ok(());
            }
            status(&m, format.output)
        }
    }
}

fn sync(ctx: &Ctx, name: &str, format: OutputFormat) -> Result<()> {
    let spec = spec(ctx, name)?;
    let store = store(ctx)?;
    let started = Instant::now();
    let pb = spinner(
        &format!("syncing {name} from {}", spec.source.path),
        ctx.quiet || format == OutputFormat::Json,
    );
    let report = store.sync(&ctx.repo, &spec);
    pb.finish_and_clear();
    let report = report?;
    if format == OutputFormat::Json {
        return print_json(&report);
    }
    if ctx.quiet {
        return Ok(());
    }
    for v in &report.versions {
        print_version_sync(name, v);
    }
    let chunks: usize = report.versions.iter().map(|v| v.chunks).sum();
    println!("{}", rate(chunks, "chunks", started));
    if let Some(newer) = report.versions.iter().find(|v| !v.live) {
        println!(
            "`{}` ({}) is built beside the live `{}`: compare with `asof index eval {name} --queries Q.jsonl`, then `asof index promote {name} {}`",
            newer.version,
            newer.model_id,
            report.live.as_deref().unwrap_or("-"),
            newer.version
        );
    }
    Ok(())
}

fn print_version_sync(name: &str, v: &VersionSync) {
    println!(
        "{name} {}{} [{}]: {} documents, {} chunks; {} cache hits, {} embedded in {} embedder calls; \
         {} added, {} changed, {} deleted, {} refreshed, {} unchanged; {} tombstones{}",
        v.version,
        if v.live { " (live)" } else { "" },
        v.model_id,
        thousands(v.documents as u64),
        thousands(v.chunks as u64),
        thousands(v.cache_hits as u64),
        thousands(v.embedded as u64),
        v.embedder_calls,
        v.added,
        v.changed,
        v.deleted,
        v.refreshed,
        v.unchanged,
        v.tombstones,
        if v.rebuilt { "; graph rebuilt" } else { "" },
    );
}

fn status(m: &Manifest, format: OutputFormat) -> Result<()> {
    if format == OutputFormat::Json {
        return print_json(m);
    }
    println!(
        "{}: live {}, rollback to {}",
        m.index,
        m.live.as_deref().unwrap_or("-"),
        m.previous.as_deref().unwrap_or("-")
    );
    for v in m.versions.values() {
        println!(
            "  {:<5} {:<5} {:<36} chunker {} ({} tokens, overlap {}), {}: {} documents, {} chunks, {} tombstones; built {}, synced {}",
            v.id,
            if m.live.as_deref() == Some(v.id.as_str()) {
                "live"
            } else {
                ""
            },
            v.model_id,
            v.chunking.version,
            v.chunking.max_tokens,
            v.chunking.overlap,
            serde_json::to_value(v.metric)?.as_str().unwrap_or("?"),
            thousands(v.documents as u64),
            thousands(v.points as u64),
            v.tombstones(),
            v.built_at.to_rfc3339(),
            v.synced_at.to_rfc3339(),
        );
    }
    Ok(())
}

/// What `asof index search` was asked.
pub struct SearchArgs<'a> {
    pub name: &'a str,
    pub query: &'a str,
    pub k: usize,
    pub mode: Option<SearchMode>,
    pub version: Option<&'a str>,
    pub filters: &'a [String],
    pub as_of: Option<&'a str>,
    /// Group by document: (child_k, whole text).
    pub documents: Option<(usize, bool)>,
    pub format: OutputFormat,
}

fn search(ctx: &Ctx, a: SearchArgs<'_>) -> Result<()> {
    let spec = spec(ctx, a.name)?;
    let mode = a.mode.unwrap_or(spec.retrieval.mode);
    let mut parsed = BTreeMap::new();
    for f in a.filters {
        let Some((field, value)) = f.split_once('=') else {
            bail!("bad --filter `{f}`: write `field=value`, e.g. `--filter lang=en`");
        };
        parsed.insert(field.trim().to_string(), value.trim().to_string());
    }
    let as_of = a
        .as_of
        .map(|t| asof_core::time::parse_instant(t).map(asof_core::time::to_nanos))
        .transpose()
        .map_err(|e| anyhow::anyhow!("bad --as-of: {e}"))?;
    let live = LiveIndexes::new(store(ctx)?);
    let v = live.get(&spec.name, a.version)?;
    let chunks = match a.documents {
        Some((child_k, _)) => asof_retrieval::LoadedVersion::chunks_for_documents(a.k, child_k),
        None => a.k,
    };
    let answer = v.answer(
        Query::Text(a.query),
        &SearchOptions {
            k: chunks,
            filters: &parsed,
            ef: DEFAULT_EF,
            mode,
            fusion: &spec.retrieval,
            deadline: None,
            contract: spec.contract.as_ref(),
            as_of,
        },
    )?;
    let excluded: BTreeMap<&str, usize> = answer
        .excluded
        .iter()
        .map(|(r, n)| (r.name(), *n))
        .collect();
    let documents = a
        .documents
        .map(|(child_k, whole)| v.group_documents(answer.hits.clone(), a.k, child_k, whole));
    if a.format == OutputFormat::Json {
        return print_json(&serde_json::json!({
            "index": spec.name,
            "version": v.meta.id,
            "model": v.meta.model_id,
            "mode": mode.to_string(),
            "abstained": answer.abstained,
            "excluded": excluded,
            "hits": if documents.is_some() { Vec::new() } else { answer.hits.clone() },
            "documents": documents,
        }));
    }
    let shown = |text: &str| {
        let t: String = text.chars().take(100).collect();
        if text.chars().count() > 100 {
            format!("{t}...")
        } else {
            t
        }
    };
    if answer.abstained {
        println!(
            "{} {} [{}] {mode}: abstained (the contract's min_results was not met); kept out: {excluded:?}",
            spec.name, v.meta.id, v.meta.model_id
        );
        return Ok(());
    }
    if let Some(docs) = documents {
        println!(
            "{} {} [{}] {mode}: {} documents",
            spec.name,
            v.meta.id,
            v.meta.model_id,
            docs.len()
        );
        for (i, d) in docs.iter().enumerate() {
            println!("{:>3}. {:.4}  {}", i + 1, d.score, d.doc_id);
            for c in &d.chunks {
                println!(
                    "       {:.4}  {:<24} {}",
                    c.score,
                    c.chunk_id,
                    shown(&c.text)
                );
            }
            if let Some(t) = &d.text {
                println!("       document: {}", shown(t));
            }
        }
    } else {
        println!(
            "{} {} [{}] {mode}: {} hits",
            spec.name,
            v.meta.id,
            v.meta.model_id,
            answer.hits.len()
        );
        for (i, h) in answer.hits.iter().enumerate() {
            println!(
                "{:>3}. {:.4}  {:<24} {}",
                i + 1,
                h.score,
                h.chunk_id,
                shown(&h.text)
            );
        }
    }
    if !excluded.is_empty() {
        println!("kept out by the contract or --as-of: {excluded:?}");
    }
    Ok(())
}
