//! `asof audit`: checks a training set written with `--with-timestamps` for leakage, i.e. a feature
//! value whose event time is later than its row's event time.

use std::path::Path;

use asof_core::time::format_nanos;
use datafusion::arrow::array::Array;
use serde::Serialize;

use crate::entity_table::EntityTable;
use crate::error::OfflineResult;
use crate::timestamps::to_nanos;

const SUFFIX: &str = "__event_timestamp";

/// Leaks found in one view's timestamp column.
#[derive(Debug, Clone, Serialize)]
pub struct Violation {
    pub column: String,
    pub rows: usize,
    /// 1-based row of the first leak, with its times.
    pub first_row: usize,
    pub first_row_event_timestamp: String,
    pub first_row_feature_timestamp: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct AuditReport {
    pub rows: usize,
    pub checked_columns: Vec<String>,
    pub violations: Vec<Violation>,
}

impl AuditReport {
    pub fn passed(&self) -> bool {
        self.violations.is_empty()
    }
}

pub async fn audit(path: &Path, timestamp_column: &str) -> OfflineResult<AuditReport> {
    let table = EntityTable::read(path).await?;
    let schema = table.batch.schema();
    let entity_ts = table.batch.column_by_name(timestamp_column).ok_or_else(|| {
        table.error(format!("no timestamp column `{timestamp_column}` (columns: {}); name it with --timestamp-column", table.column_names()))
    })?;
    let entity_ts = to_nanos(entity_ts)
        .map_err(|e| table.error(format!("column `{timestamp_column}`: {e}")))?;
    let columns: Vec<String> = schema
        .fields()
        .iter()
        .map(|f| f.name().clone())
        .filter(|n| n.ends_with(SUFFIX) && n != timestamp_column)
        .collect();
    if columns.is_empty() {
        return Err(table.error(format!(
            "no `<view>{SUFFIX}` columns to check; write the training set with --with-timestamps"
        )));
    }
    let mut violations = Vec::new();
    for name in &columns {
        let col = table
            .batch
            .column_by_name(name)
            .expect("listed from the schema");
        let ts = to_nanos(col).map_err(|e| table.error(format!("column `{name}`: {e}")))?;
        let mut count = 0;
        let mut first = None;
        for i in 0..ts.len() {
            if ts.is_valid(i) && entity_ts.is_valid(i) && ts.value(i) > entity_ts.value(i) {
                count += 1;
                first.get_or_insert(i);
            }
        }
        if let Some(i) = first {
            violations.push(Violation {
                column: name.clone(),
                rows: count,
                first_row: i + 1,
                first_row_event_timestamp: format_nanos(entity_ts.value(i)),
                first_row_feature_timestamp: format_nanos(ts.value(i)),
            });
        }
    }
    Ok(AuditReport {
        rows: table.num_rows(),
        checked_columns: columns,
        violations,
    })
}
