//! `asof init DIR`: a runnable quickstart repository.

use std::time::Instant;

use anyhow::{Result, bail};
use asof_offline::quickstart::{REPO_FILES, generate_data};

use crate::cli::InitArgs;
use crate::progress::{rate, thousands};

pub fn run(args: &InitArgs, quiet: bool) -> Result<()> {
    let started = Instant::now();
    let dir = &args.dir;
    let config = dir.join(asof_core::config::CONFIG_FILE);
    if args.data_only {
        if !config.exists() {
            bail!(
                "{} is not a feature repository (no feature_store.yaml); run `asof init {}` without --data-only",
                dir.display(),
                dir.display()
            );
        }
    } else {
        if config.exists() {
            bail!(
                "{} is already a feature repository; pass --data-only to regenerate its sample data",
                dir.display()
            );
        }
        for (name, text) in REPO_FILES {
            asof_core::atomic::write_atomic(&dir.join(name), |w| w.write_all(text.as_bytes()))?;
        }
    }
    let now_us = chrono::Utc::now().timestamp_micros();
    let data = generate_data(dir, now_us, args.seed)?;
    if !quiet {
        if !args.data_only {
            println!("Created feature repository {}", dir.display());
            for (name, _) in REPO_FILES {
                println!("  {name}");
            }
        }
        let mut rows = 0;
        for (file, n) in &data.files {
            println!("  {file} ({} rows)", thousands(*n as u64));
            rows += n;
        }
        println!(
            "Generated {} up to {}",
            rate(rows, "rows", started),
            asof_core::time::format_nanos(now_us * 1000)
        );
        println!("Next: asof --repo {} apply", dir.display());
    }
    Ok(())
}
