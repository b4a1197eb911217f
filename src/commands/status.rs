//! `asof status`: views, indexes and streams on one screen, with what is stale.

use std::collections::HashMap;

use anyhow::{Context, Result};
use asof_retrieval::IndexStore;

use super::{Ctx, Exit};
use crate::cli::OutputFormat;

pub async fn run(ctx: &Ctx, format: OutputFormat) -> Result<()> {
    let config = ctx.config()?;
    let registry = ctx.registry_of(&config)?;
    let now = chrono::Utc::now();
    let store = asof_online::open(&config.online_store, &ctx.repo)
        .await
        .context("opening the online store")?;
    let views = asof_server::status::views(&registry, store.as_ref(), now).await?;
    let streams = asof_stream::status::streams(&ctx.repo, &config, &registry, now).await?;
    let stream_lag: HashMap<String, f64> = streams
        .iter()
        .filter_map(|s| Some((s.name.clone(), s.lag_seconds?)))
        .collect();
    let indexes = asof_server::status::indexes(
        &ctx.repo,
        &registry,
        &IndexStore::new(config.index_path(&ctx.repo)),
        &stream_lag,
        now,
    )?;
    let stale: Vec<String> = views
        .iter()
        .filter(|v| v.stale)
        .map(|v| format!("view `{}`", v.view))
        .chain(
            indexes
                .iter()
                .filter(|i| i.stale)
                .map(|i| format!("index `{}`", i.index)),
        )
        .collect();
    if format == OutputFormat::Json {
        println!(
            "{}",
            serde_json::to_string_pretty(&serde_json::json!({
                "project": registry.project,
                "at": now,
                "views": views,
                "indexes": indexes,
                "streams": streams,
                "stale": stale,
            }))?
        );
    } else {
        let time = |t: Option<chrono::DateTime<chrono::Utc>>| {
            t.map_or("-".to_string(), |t| {
                t.format("%Y-%m-%d %H:%M:%S").to_string()
            })
        };
        let lag = |l: Option<f64>, max: Option<u64>| {
            let l = l.map_or("-".to_string(), human);
            match max {
                Some(m) => format!("{l} (max {})", human(m as f64)),
                None => l,
            }
        };
        println!("project {}", registry.project);
        println!(
            "\n{:<28} {:>10} {:>8}  {:<19}  {:<19}  LAG",
            "VIEW", "ROWS", "DELETED", "NEWEST EVENT", "WATERMARK"
        );
        for v in &views {
            println!(
                "{:<28} {:>10} {:>8}  {:<19}  {:<19}  {}{}",
                v.view,
                v.rows,
                v.deleted,
                time(v.newest_event),
                time(v.watermark),
                lag(v.lag_seconds, v.max_lag_seconds),
                if v.stale { "  STALE" } else { "" }
            );
        }
        for v in &views {
            if let Some(bytes) = v.event_log_bytes {
                println!(
                    "{}: {} event logs, {} bytes online ({} per entity)",
                    v.view,
                    v.rows,
                    bytes,
                    bytes / v.rows.max(1) as u64
                );
            }
        }
        if !indexes.is_empty() {
            println!(
                "\n{:<20} {:<6} {:>9} {:>7}  {:<32}  {:<19}  {:>6}  LAG",
                "INDEX",
                "LIVE",
                "DOCUMENTS",
                "CHUNKS",
                "NEWEST SOURCE UPDATE",
                "NEWEST INDEXED",
                "BEHIND"
            );
            for i in &indexes {
                println!(
                    "{:<20} {:<6} {:>9} {:>7}  {:<32}  {:<19}  {:>6}  {}{}",
                    i.index,
                    i.live_version.as_deref().unwrap_or("-"),
                    i.documents,
                    i.chunks,
                    i.newest_source_update.as_deref().unwrap_or("-"),
                    time(i.newest_indexed),
                    i.documents_behind.map_or("-".into(), |b| b.to_string()),
                    lag(i.lag_seconds, i.max_lag_seconds),
                    if i.stale { "  STALE" } else { "" }
                );
            }
        }
        if !streams.is_empty() {
            println!(
                "\n{:<20} {:<36} {:<14} {:<14} {:>12}  {:<19}  STATE",
                "STREAM", "SLOT", "APPLIED LSN", "SERVER LSN", "LAG BYTES", "LAST COMMIT"
            );
            for s in &streams {
                let state = match (&s.error, s.slot_active) {
                    (Some(e), _) => {
                        format!("unreachable: {}", e.lines().next().unwrap_or_default())
                    }
                    (None, Some(true)) => "streaming".into(),
                    (None, _) if !s.snapshot_done => "not started".into(),
                    (None, _) => "stopped".into(),
                };
                println!(
                    "{:<20} {:<36} {:<14} {:<14} {:>12}  {:<19}  {}",
                    s.name,
                    s.slot,
                    s.applied_lsn.as_deref().unwrap_or("-"),
                    s.server_lsn.as_deref().unwrap_or("-"),
                    s.lag_bytes.map_or("-".into(), |b| b.to_string()),
                    time(s.last_commit_at),
                    state
                );
            }
        }
    }
    if !stale.is_empty() {
        return Err(Exit(
            3,
            format!("stale (past freshness.max_lag): {}", stale.join(", ")),
        )
        .into());
    }
    Ok(())
}

/// Seconds as a short duration: `42s`, `3m12s`, `5h04m`, `2d03h`.
fn human(s: f64) -> String {
    let s = s.round() as u64;
    match s {
        0..60 => format!("{s}s"),
        60..3600 => format!("{}m{:02}s", s / 60, s % 60),
        3600..86400 => format!("{}h{:02}m", s / 3600, s % 3600 / 60),
        _ => format!("{}d{:02}h", s / 86400, s % 86400 / 3600),
    }
}
