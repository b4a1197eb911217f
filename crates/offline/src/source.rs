//! Reading a view's source: only the columns it needs, rows with a key and a timestamp, timestamps
//! normalised to UTC nanoseconds, features cast to their declared types, and a time-range filter
//! that DataFusion turns into Parquet row-group pruning.

use std::path::Path;

use asof_core::ResolvedView;
use datafusion::arrow::datatypes::DataType;
use datafusion::common::ScalarValue;
use datafusion::dataframe::DataFrame;
use datafusion::logical_expr::{Expr, cast, ident, lit};
use datafusion::prelude::{CsvReadOptions, ParquetReadOptions, SessionContext};

use crate::error::{OfflineError, OfflineResult};
use crate::listing::{TableFormat, list, list_local};
use crate::timestamps::nanos_expr;
use crate::types::arrow_type;

/// Internal column names of a scanned view; chosen not to collide with identifiers users declare.
pub const FEATURE_TS: &str = "__asof_feature_ts";
pub const FEATURE_CREATED: &str = "__asof_feature_created";
/// An aggregated view's event ordinal among equal events of one push (0 for source files' rows).
pub const FEATURE_ORDINAL: &str = "__asof_ordinal";
/// Whether a row is a delete event (from the files' `asof_core::pit::DELETED_COLUMN`; false when
/// they have none). Always the last column.
pub const FEATURE_DELETED: &str = "__asof_deleted";

pub(crate) fn source_error(
    view: &ResolvedView,
    path: &str,
    message: impl Into<String>,
) -> OfflineError {
    OfflineError::Source {
        view: view.view.name.clone(),
        source_name: view.source.name.clone(),
        path: path.to_string(),
        message: message.into(),
    }
}

/// Inclusive event-time bounds (UTC ns) beyond which no row can be used.
#[derive(Debug, Clone, Copy, Default)]
pub struct TimeBounds {
    pub min: Option<i64>,
    pub max: Option<i64>,
}

/// Scans a view's rows: its source's files and, when `push_log` is given, the rows pushed to it
/// (`crate::push_log`), as one table:
/// `keys..., __asof_feature_ts, [__asof_feature_created], features..., __asof_deleted`; an
/// aggregated view has its aggregations' input columns for features, and `__asof_ordinal` before
/// the delete flag.
pub async fn scan_view(
    ctx: &SessionContext,
    repo_dir: &Path,
    view: &ResolvedView,
    bounds: TimeBounds,
    push_log: Option<&Path>,
) -> OfflineResult<DataFrame> {
    // The files `apply` probed: one listing for both. A PostgreSQL source has none: the stream
    // writes its rows to the push log.
    let source = if view.source.kind.is_file() {
        if let Some(url) = crate::remote::url_of(&view.source.path) {
            crate::remote::register(ctx, &url)
                .map_err(|e| source_error(view, &view.source.path, e))?;
        }
        list(repo_dir, &view.source.path)
            .await
            .map_err(|e| source_error(view, &view.source.path, e))?
    } else {
        None
    };
    let pushed_dir = push_log.map(|root| crate::push_log::view_dir(root, &view.view.name));
    let pushed = match &pushed_dir {
        Some(dir) => list_local(repo_dir, &dir.to_string_lossy())
            .map_err(|e| source_error(view, &dir.to_string_lossy(), e))?,
        None => None,
    };
    let mut out: Option<DataFrame> = None;
    if let Some(files) = source {
        let df = read_files(ctx, view, &view.source.path, &files).await?;
        out = Some(project(df, view, bounds, None, false, &view.source.path)?);
    }
    if let (Some(files), Some(dir)) = (pushed, &pushed_dir) {
        let origin = dir.to_string_lossy().into_owned();
        let df = read_files(ctx, view, &origin, &files).await?;
        // Pushed keys take the source's key types, so the two halves union.
        let key_types: Option<Vec<DataType>> = out.as_ref().map(|o| {
            (0..view.join_keys.len())
                .map(|i| o.schema().field(i).data_type().clone())
                .collect()
        });
        let mut df = project(df, view, bounds, key_types.as_deref(), true, &origin)?;
        if view.view.is_aggregated() {
            // A replayed push wrote the same events again; its ordinals tell equal events of one
            // push apart, so only replays collapse.
            df = df.distinct()?;
        }
        out = Some(match out {
            Some(o) => o.union(df)?,
            None => df,
        });
    }
    out.ok_or_else(|| {
        source_error(
            view,
            &view.source.path,
            "no data files there yet (looked for .parquet, .pq and .csv files), and nothing was pushed",
        )
    })
}

/// Reads the listed files as one table. An aggregated view's `last` breaks ties by input order,
/// which must then be the files' listed order: each file is read on its own and the reads are
/// unioned in order (one multi-file scan may deal files to partitions in any order).
async fn read_files(
    ctx: &SessionContext,
    view: &ResolvedView,
    origin: &str,
    listed: &crate::listing::SourceFiles,
) -> OfflineResult<DataFrame> {
    let files = listed.files.clone();
    if view.view.is_aggregated() && files.len() > 1 {
        let mut out: Option<DataFrame> = None;
        for f in files {
            let df = read_paths(ctx, view, origin, listed.format, vec![f]).await?;
            out = Some(match out {
                Some(o) => o.union(df)?,
                None => df,
            });
        }
        return Ok(out.expect("more than one file"));
    }
    read_paths(ctx, view, origin, listed.format, files).await
}

async fn read_paths(
    ctx: &SessionContext,
    view: &ResolvedView,
    origin: &str,
    format: TableFormat,
    files: Vec<String>,
) -> OfflineResult<DataFrame> {
    let read = match format {
        TableFormat::Parquet => {
            let opts = ParquetReadOptions {
                file_extension: "",
                ..Default::default()
            };
            ctx.read_parquet(files, opts).await
        }
        TableFormat::Csv => {
            let opts = CsvReadOptions::new()
                .file_extension("")
                .schema_infer_max_records(crate::probe::CSV_INFER_ROWS);
            ctx.read_csv(files, opts).await
        }
    };
    read.map_err(|e| {
        source_error(
            view,
            origin,
            format!("cannot read it: {}", e.strip_backtrace()),
        )
    })
}

/// Selects, filters and types one half of a view's rows. `key_types` casts the keys (the push
/// log's to the source's). In the `pushed` half, a feature column missing from the files (a
/// feature added after those rows were pushed) reads as null, and events carry their ordinal.
fn project(
    df: DataFrame,
    view: &ResolvedView,
    bounds: TimeBounds,
    key_types: Option<&[DataType]>,
    pushed: bool,
    origin: &str,
) -> OfflineResult<DataFrame> {
    let schema = df.schema().clone();
    let field = |name: &str| {
        schema
            .field_with_unqualified_name(name)
            .map(|f| f.data_type().clone())
            .map_err(|_| {
                source_error(
                    view,
                    origin,
                    format!(
                        "column `{name}` is missing (columns: {})",
                        column_list(&schema)
                    ),
                )
            })
    };
    let ts_col = &view.source.timestamp_field;
    let ts_type = field(ts_col)?;
    if !crate::timestamps::is_timestamp_like(&ts_type) {
        return Err(source_error(
            view,
            origin,
            format!("timestamp_field `{ts_col}` is {ts_type}, not a timestamp"),
        ));
    }
    let mut filter = ident(ts_col).is_not_null();
    for k in &view.join_keys {
        field(k)?;
        filter = filter.and(ident(k).is_not_null());
    }
    if let Some(max) = bounds.max {
        filter = filter.and(ident(ts_col).lt_eq(bound_literal(max, &ts_type)));
    }
    if let Some(min) = bounds.min {
        filter = filter.and(ident(ts_col).gt_eq(bound_literal(min, &ts_type)));
    }
    let mut select: Vec<Expr> = match key_types {
        Some(types) => view
            .join_keys
            .iter()
            .zip(types)
            .map(|(k, t)| cast(ident(k), t.clone()).alias(k))
            .collect(),
        None => view.join_keys.iter().map(ident).collect(),
    };
    select.push(nanos_expr(ident(ts_col), &ts_type).alias(FEATURE_TS));
    if let Some(c) = &view.source.created_timestamp_field {
        let t = field(c)?;
        if !crate::timestamps::is_timestamp_like(&t) {
            return Err(source_error(
                view,
                origin,
                format!("created_timestamp_field `{c}` is {t}, not a timestamp"),
            ));
        }
        select.push(nanos_expr(ident(c), &t).alias(FEATURE_CREATED));
    }
    // An aggregated view reads its aggregations' input columns under their own names.
    let aggregated = view.view.is_aggregated();
    for f in &view.read_columns() {
        let col = if aggregated {
            f.name.as_str()
        } else {
            view.source.column_for_feature(&f.name)
        };
        let want = arrow_type(&f.dtype);
        let e = match field(col) {
            Ok(have) if have == want => ident(col),
            Ok(_) => cast(ident(col), want),
            // Pushed before this feature existed: null, typed.
            Err(_) if pushed => cast(lit(ScalarValue::Null), want),
            Err(e) => return Err(e),
        };
        select.push(e.alias(&f.name));
    }
    if aggregated {
        let ordinal = asof_core::window::ORDINAL_COLUMN;
        select.push(
            match field(ordinal) {
                Ok(_) if pushed => cast(ident(ordinal), DataType::UInt32),
                _ => lit(0u32),
            }
            .alias(FEATURE_ORDINAL),
        );
    }
    let deleted = asof_core::pit::DELETED_COLUMN;
    select.push(
        match field(deleted) {
            Ok(DataType::Boolean) => ident(deleted).is_true(),
            Ok(other) => {
                return Err(source_error(
                    view,
                    origin,
                    format!("`{deleted}` marks delete events and must be boolean, not {other}"),
                ));
            }
            Err(_) => lit(false),
        }
        .alias(FEATURE_DELETED),
    );
    Ok(df.filter(filter)?.select(select)?)
}

/// A literal in the column's own type, so the comparison prunes row groups instead of casting the
/// column. Rounding may loosen the bound by less than a unit, never tighten it.
fn bound_literal(nanos: i64, ts_type: &DataType) -> Expr {
    let v = ScalarValue::TimestampNanosecond(Some(nanos), Some("UTC".into()));
    match v.cast_to(ts_type) {
        Ok(v) => lit(v),
        Err(_) => cast(lit(v), ts_type.clone()),
    }
}

fn column_list(schema: &datafusion::common::DFSchema) -> String {
    schema
        .fields()
        .iter()
        .map(|f| f.name().as_str())
        .collect::<Vec<_>>()
        .join(", ")
}
