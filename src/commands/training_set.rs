//! `asof training-set`: a point-in-time correct training set.

use std::time::Instant;

use anyhow::{Context, Result};
use asof_core::FeatureRequest;
use asof_offline::output::{Format, write_table};
use asof_offline::{EntityTable, OfflineStore, TrainingSetOptions};

use super::{Ctx, display_path};
use crate::cli::TrainingSetArgs;
use crate::progress::{rate, spinner};

pub async fn run(ctx: &Ctx, args: &TrainingSetArgs) -> Result<()> {
    let started = Instant::now();
    Format::of(&args.output)?;
    let registry = ctx.registry()?;
    let catalog = registry.catalog();
    let request = match &args.selection.service {
        Some(s) => FeatureRequest::resolve_service(&catalog, s, args.full_feature_names)?,
        None => {
            FeatureRequest::resolve(&catalog, &args.selection.features, args.full_feature_names)?
        }
    };
    let store = OfflineStore::new(&ctx.repo);
    let entities = EntityTable::read(&args.entities).await?;
    let opts = TrainingSetOptions {
        timestamp_column: args.timestamp_column.clone(),
        with_timestamps: args.with_timestamps,
        filter_by_created: args.filter_by_created_timestamp,
    };
    if args.explain {
        print!("{}", store.explain(&entities, &request, &opts).await?);
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
    let table = store.training_set(&entities, &request, &opts).await?;
    pb.set_message(format!("writing {}", display_path(&args.output)));
    write_table(&args.output, std::slice::from_ref(&table))
        .with_context(|| format!("writing {}", display_path(&args.output)))?;
    pb.finish_and_clear();
    if !ctx.quiet {
        println!(
            "Wrote {} ({} columns: {} features from {} view(s)): {}",
            display_path(&args.output),
            table.num_columns(),
            request.columns.len(),
            request.views.len(),
            rate(table.num_rows(), "rows", started)
        );
    }
    Ok(())
}
