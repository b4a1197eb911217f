//! `asof training-set`: a point-in-time correct training set.

use std::time::Instant;

use anyhow::{Context, Result};
use asof_core::FeatureRequest;
use asof_offline::memory::MemoryLimit;
use asof_offline::output::{output_format, write_stream};
use asof_offline::{EntityTable, OfflineStore, TrainingSetOptions};

use super::{Ctx, display_path};
use crate::cli::TrainingSetArgs;
use crate::progress::{rate, spinner};

pub async fn run(ctx: &Ctx, args: &TrainingSetArgs) -> Result<()> {
    let started = Instant::now();
    output_format(&args.output)?;
    let config = ctx.config()?;
    let registry = ctx.registry_of(&config)?;
    let catalog = registry.catalog();
    let request = match &args.selection.service {
        Some(s) => FeatureRequest::resolve_service(&catalog, s, args.full_feature_names)?,
        None => {
            FeatureRequest::resolve(&catalog, &args.selection.features, args.full_feature_names)?
        }
    };
    let limit = args.memory_limit.or_else(MemoryLimit::default_for_machine);
    let store = match limit {
        Some(l) => OfflineStore::with_memory_limit(&ctx.repo, l),
        None => OfflineStore::new(&ctx.repo),
    }
    .with_push_log(config.offline_store.push_log_root(&ctx.repo));
    let entities = EntityTable::read(&args.entities).await?;
    let opts = TrainingSetOptions {
        timestamp_column: args.timestamp_column.clone(),
        with_timestamps: args.with_timestamps,
        filter_by_created: args.filter_by_created_timestamp,
    };
    if args.explain {
        let plans = match &args.cluster {
            Some(_) => {
                store
                    .explain_distributed(&entities, &request, &opts, args.cluster_partitions)
                    .await?
            }
            None => store.explain(&entities, &request, &opts).await?,
        };
        print!("{plans}");
        return Ok(());
    }
    let pb = spinner(
        &format!(
            "joining {} entity rows with {} view(s)",
            entities.num_rows(),
            request.views.len()
        ),
        ctx.quiet,
    );
    let limit_note = || {
        limit
            .map(|l| format!(" (memory limit {l})"))
            .unwrap_or_default()
    };
    let stream = match &args.cluster {
        Some(address) => {
            pb.set_message(format!(
                "joining {} entity rows with {} view(s) on the cluster at {address}",
                entities.num_rows(),
                request.views.len()
            ));
            super::cluster::training_set_stream(args, address, &store, &entities, &request, &opts)
                .await?
        }
        None => store
            .training_set_stream(&entities, &request, &opts)
            .await
            .with_context(|| format!("building the training set{}", limit_note()))?,
    };
    let columns = stream.schema().fields().len();
    let total = entities.num_rows();
    let progress = |rows: usize| pb.set_message(format!("writing {rows} of {total} rows"));
    // Joined and written batch by batch: the table is never whole in memory.
    let rows = write_stream(&args.output, stream, &progress)
        .await
        .with_context(|| format!("writing {}{}", display_path(&args.output), limit_note()))?;
    pb.finish_and_clear();
    if !ctx.quiet {
        println!(
            "Wrote {} ({columns} columns: {} features from {} view(s)): {}",
            display_path(&args.output),
            request.columns.len(),
            request.views.len(),
            rate(rows, "rows", started)
        );
    }
    Ok(())
}
