//! The offline push log: rows pushed to a view, appended as Parquet so that training sets and
//! materialization see what serving was sent. A pushed row that reached only the online store would
//! be training-serving skew by construction.
//!
//! Layout: `<push_log>/<view>/date=YYYY-MM-DD/part-<nanos>-<pid>-<n>.parquet`, one file per push
//! and event day, in the source's own column names (join keys, `timestamp_field`,
//! `created_timestamp_field`, feature columns through `field_mapping`). Each file is written to a
//! temp name, synced and renamed, and its folder synced, before the push is acknowledged; readers
//! list only complete files (temp names start with `.`). Files are never rewritten, so appends by
//! several processes never conflict.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use asof_core::ResolvedView;
use datafusion::arrow::array::{ArrayRef, AsArray, RecordBatch, UInt32Array};
use datafusion::arrow::compute::take_record_batch;
use datafusion::arrow::datatypes::{DataType, Field, Int64Type, Schema, TimeUnit};

use crate::error::{OfflineError, OfflineResult};
use crate::output::file_error;

/// Distinguishes files written by one process in the same nanosecond.
static SEQ: AtomicU64 = AtomicU64::new(0);

const DAY_NS: i64 = 86_400 * 1_000_000_000;

/// The type the push log stores event and created timestamps as.
pub fn timestamp_type() -> DataType {
    DataType::Timestamp(TimeUnit::Nanosecond, Some("UTC".into()))
}

/// The folder of `view`'s push log under `root`.
pub fn view_dir(root: &Path, view: &str) -> PathBuf {
    root.join(view)
}

/// Appends `batch` (a view's rows in its source's column names; the timestamp column of type
/// [`timestamp_type`]) to `view`'s push log under `root`, one durable file per event day.
/// Returns the files written.
pub fn append(
    root: &Path,
    view: &ResolvedView,
    batch: &RecordBatch,
) -> OfflineResult<Vec<PathBuf>> {
    append_named(root, view, batch, None)
}

/// [`append`], naming each day's file `<name>.parquet` when `name` is given: a writer that may
/// replay what it wrote (a stream after a crash) names files after what they hold, so that it can
/// find and remove them ([`remove_named`]) before writing them again.
pub fn append_named(
    root: &Path,
    view: &ResolvedView,
    batch: &RecordBatch,
    name: Option<&str>,
) -> OfflineResult<Vec<PathBuf>> {
    if batch.num_rows() == 0 {
        return Ok(Vec::new());
    }
    let ts_name = &view.source.timestamp_field;
    let ts = batch.column_by_name(ts_name).ok_or_else(|| {
        OfflineError::Request(format!(
            "push to `{}` has no `{ts_name}` column",
            view.view.name
        ))
    })?;
    let ts = datafusion::arrow::compute::cast(ts, &DataType::Int64)?;
    let ts = ts.as_primitive::<Int64Type>();
    // Rows grouped by event day, in their order within each day.
    let mut days: std::collections::BTreeMap<i64, Vec<u32>> = Default::default();
    for (i, t) in ts.iter().enumerate() {
        let t = t.ok_or_else(|| {
            OfflineError::Request(format!(
                "push to `{}`: row {i} has no `{ts_name}`",
                view.view.name
            ))
        })?;
        days.entry(t.div_euclid(DAY_NS)).or_default().push(i as u32);
    }
    let dir = view_dir(root, &view.view.name);
    let mut written = Vec::with_capacity(days.len());
    for (day, rows) in days {
        let date = chrono::DateTime::from_timestamp(day * 86_400, 0)
            .map(|d| d.format("%Y-%m-%d").to_string())
            .unwrap_or_else(|| format!("day{day}"));
        let part_dir = dir.join(format!("date={date}"));
        let part = if rows.len() == batch.num_rows() {
            batch.clone()
        } else {
            take_record_batch(batch, &UInt32Array::from(rows))?
        };
        let file = match name {
            Some(name) => format!("{name}.parquet"),
            None => format!(
                "part-{}-{}-{}.parquet",
                chrono::Utc::now().timestamp_nanos_opt().unwrap_or_default(),
                std::process::id(),
                SEQ.fetch_add(1, Ordering::Relaxed)
            ),
        };
        let path = part_dir.join(file);
        crate::output::write_table(&path, std::slice::from_ref(&part))?;
        // The rename is durable only once the folder is.
        std::fs::File::open(&part_dir)
            .and_then(|d| d.sync_all())
            .map_err(|e| file_error(&part_dir, e))?;
        written.push(path);
    }
    Ok(written)
}

/// Removes the files of `view`'s log whose names start with `prefix` and whose rest of the name
/// (without `.parquet`) `remove` picks. Returns how many went.
pub fn remove_named(
    root: &Path,
    view: &str,
    prefix: &str,
    remove: impl Fn(&str) -> bool,
) -> OfflineResult<usize> {
    let dir = view_dir(root, view);
    let Ok(days) = std::fs::read_dir(&dir) else {
        return Ok(0);
    };
    let mut removed = 0;
    for day in days.flatten() {
        let Ok(files) = std::fs::read_dir(day.path()) else {
            continue;
        };
        for f in files.flatten() {
            let name = f.file_name().to_string_lossy().into_owned();
            if let Some(rest) = name
                .strip_prefix(prefix)
                .and_then(|r| r.strip_suffix(".parquet"))
                && remove(rest)
            {
                std::fs::remove_file(f.path()).map_err(|e| file_error(&f.path(), e))?;
                removed += 1;
            }
        }
        std::fs::File::open(day.path())
            .and_then(|d| d.sync_all())
            .map_err(|e| file_error(&day.path(), e))?;
    }
    Ok(removed)
}

/// A push's columns as a batch in the source's names: `keys` (name, array), the event timestamps
/// and created timestamps (ns, UTC), `features` (feature name, array), renamed through the
/// source's `field_mapping`, and which rows are delete events (`asof_core::pit::DELETED_COLUMN`).
pub fn batch(
    view: &ResolvedView,
    keys: Vec<(String, ArrayRef)>,
    event_ts: Vec<i64>,
    created_ts: Option<Vec<Option<i64>>>,
    features: Vec<(String, ArrayRef)>,
    deleted: Vec<bool>,
) -> OfflineResult<RecordBatch> {
    use datafusion::arrow::array::{BooleanArray, TimestampNanosecondArray};
    let mut fields = Vec::new();
    let mut columns: Vec<ArrayRef> = Vec::new();
    for (name, array) in keys {
        fields.push(Field::new(name, array.data_type().clone(), false));
        columns.push(array);
    }
    fields.push(Field::new(
        &view.source.timestamp_field,
        timestamp_type(),
        false,
    ));
    columns.push(Arc::new(
        TimestampNanosecondArray::from(event_ts).with_timezone("UTC"),
    ));
    if let (Some(name), Some(created)) = (&view.source.created_timestamp_field, created_ts) {
        fields.push(Field::new(name, timestamp_type(), true));
        columns.push(Arc::new(
            TimestampNanosecondArray::from(created).with_timezone("UTC"),
        ));
    }
    for (feature, array) in features {
        let column = view.source.column_for_feature(&feature).to_string();
        fields.push(Field::new(column, array.data_type().clone(), true));
        columns.push(array);
    }
    fields.push(Field::new(
        asof_core::pit::DELETED_COLUMN,
        DataType::Boolean,
        false,
    ));
    columns.push(Arc::new(BooleanArray::from(deleted)));
    Ok(RecordBatch::try_new(
        Arc::new(Schema::new(fields)),
        columns,
    )?)
}
