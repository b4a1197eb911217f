//! `asof stream`: follow the repo's PostgreSQL tables until interrupted.

use std::sync::Arc;

use anyhow::{Context, Result, bail};
use asof_stream::StreamMetrics;
use tokio::sync::watch;

use super::Ctx;

pub async fn run(ctx: &Ctx, sources: &[String]) -> Result<()> {
    let config = ctx.config()?;
    let registry = ctx.registry_of(&config)?;
    let store = asof_online::open(&config.online_store, &ctx.repo)
        .await
        .context("opening the online store")?;
    let metrics = StreamMetrics::default();
    let followers =
        asof_stream::followers(&ctx.repo, &config, &registry, store, sources, &metrics)?;
    if followers.is_empty() {
        bail!(
            "nothing to stream: no source or document index has `type: postgres`; declare one and run `asof apply`"
        );
    }
    let names: Vec<String> = followers
        .iter()
        .map(|f| format!("{} ({} via slot {})", f.name, f.table, f.slot))
        .collect();
    // Tests and scripts wait for this line.
    println!("asof streaming {}", names.join(", "));
    let (stop, stopped) = watch::channel(false);
    tokio::spawn(async move {
        super::online::shutdown_signal().await;
        eprintln!("stopping: applying what has been received");
        let _ = stop.send(true);
    });
    asof_stream::run(followers, stopped).await?;
    Ok(())
}

/// Starts the repo's streams beside the server: their metrics go to `serving`'s endpoint and
/// their writes move its freshness gauges. Returns the stop switch and the task, or `None` when
/// the repo has nothing to stream.
pub fn start_beside_server(
    ctx: &Ctx,
    config: &asof_core::RepoConfig,
    registry: &asof_core::Registry,
    store: Arc<dyn asof_online::OnlineStore>,
    metrics: StreamMetrics,
) -> Result<Option<(watch::Sender<bool>, tokio::task::JoinHandle<()>)>> {
    let followers = asof_stream::followers(&ctx.repo, config, registry, store, &[], &metrics)?;
    if followers.is_empty() {
        eprintln!("--stream: no source or document index has `type: postgres`; nothing to follow");
        return Ok(None);
    }
    for f in &followers {
        eprintln!("streaming {} ({} via slot {})", f.name, f.table, f.slot);
    }
    let (stop, stopped) = watch::channel(false);
    let task = tokio::spawn(async move {
        if let Err(e) = asof_stream::run(followers, stopped).await {
            // The server keeps serving; `asof_stream_up` says the stream is down.
            eprintln!("error: stream stopped: {e}");
        }
    });
    Ok(Some((stop, task)))
}
