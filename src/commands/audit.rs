//! `asof audit`: leakage check of a training set.

use std::path::Path;

use anyhow::{Result, bail};
use asof_offline::audit::audit;

use super::display_path;
use crate::cli::OutputFormat;

pub async fn run(table: &Path, timestamp_column: &str, format: OutputFormat) -> Result<()> {
    let report = audit(table, timestamp_column).await?;
    match format {
        OutputFormat::Json => println!("{}", serde_json::to_string_pretty(&report)?),
        OutputFormat::Text => {
            for v in &report.violations {
                println!(
                    "LEAK {}: {} row(s) use a feature from after the row's time; first at row {} ({} > {})",
                    v.column,
                    v.rows,
                    v.first_row,
                    v.first_row_feature_timestamp,
                    v.first_row_event_timestamp
                );
            }
        }
    }
    if !report.passed() {
        let total: usize = report.violations.iter().map(|v| v.rows).sum();
        bail!(
            "{}: {total} feature value(s) from the future in {} column(s)",
            display_path(table),
            report.violations.len()
        );
    }
    if format == OutputFormat::Text {
        println!(
            "OK {}: {} rows, no feature later than its row's {timestamp_column} ({} checked)",
            display_path(table),
            report.rows,
            report.checked_columns.join(", ")
        );
    }
    Ok(())
}
