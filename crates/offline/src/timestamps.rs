//! Timestamps of any unit, with or without a zone, compared as UTC instants. Naive timestamps are
//! read as UTC. Everything is normalised to `Int64` nanoseconds before it reaches the join.

use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, Int64Array, TimestampNanosecondArray};
use datafusion::arrow::compute::{CastOptions, cast_with_options};
use datafusion::arrow::datatypes::{DataType, TimeUnit};
use datafusion::logical_expr::{Expr, cast};

/// The type strings are parsed as: an offset in the text is honoured, a naive value read as UTC.
fn utc_nanos_type() -> DataType {
    DataType::Timestamp(TimeUnit::Nanosecond, Some("UTC".into()))
}

/// The type a temporal column is cast to on its way to `Int64`: nanoseconds in the column's own
/// zone. Arrow stores a zoned timestamp as its UTC instant and a naive one as UTC wall-clock time, so
/// the integer is the UTC instant either way; keeping the zone avoids a per-value zone conversion
/// (which profiled at 7% of a training set).
fn nanos_type(dt: &DataType) -> DataType {
    match dt {
        DataType::Timestamp(_, tz) => DataType::Timestamp(TimeUnit::Nanosecond, tz.clone()),
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => utc_nanos_type(),
        _ => DataType::Timestamp(TimeUnit::Nanosecond, None),
    }
}

/// Whether a column of this type can be read as an instant.
pub fn is_timestamp_like(dt: &DataType) -> bool {
    matches!(
        dt,
        DataType::Timestamp(_, _) | DataType::Date32 | DataType::Date64
    )
}

/// An expression yielding a column of type `dt` as `Int64` UTC nanoseconds.
pub fn nanos_expr(e: Expr, dt: &DataType) -> Expr {
    cast(cast(e, nanos_type(dt)), DataType::Int64)
}

/// The array as `Int64` UTC nanoseconds; strings are parsed (CSV inputs).
pub fn to_nanos(array: &ArrayRef) -> Result<Int64Array, String> {
    let opts = CastOptions {
        safe: false,
        ..Default::default()
    };
    let ts = cast_with_options(array, &nanos_type(array.data_type()), &opts)
        .map_err(|e| e.to_string())?;
    let ints = cast_with_options(&ts, &DataType::Int64, &opts).map_err(|e| e.to_string())?;
    Ok(ints
        .as_any()
        .downcast_ref::<Int64Array>()
        .expect("cast to Int64")
        .clone())
}

/// `Int64` nanoseconds back to a UTC timestamp column, for output.
pub fn from_nanos(array: &Int64Array) -> ArrayRef {
    Arc::new(
        TimestampNanosecondArray::new(array.values().clone(), array.nulls().cloned())
            .with_timezone("UTC"),
    )
}
