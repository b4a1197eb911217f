//! asof's one type model over Arrow: which Arrow types can be join keys, timestamps and feature
//! values, and how each converts. Validation (through the schema probe), the PIT join, training
//! sets, materialization, pushes and serving all decide types here, so no path can accept a
//! column that another path then drops.
//!
//! - **Join keys** are integers (any width, signed or unsigned, held as i64), strings or bytes.
//!   Floats, dates, booleans and the like are rejected at `apply`: equality on them is either
//!   ill-defined (floats) or a sign of a modelling mistake. A `uint64` key above `i64::MAX` has no
//!   i64 and is an error where it is met, never a silently dropped row.
//! - **Timestamps** are Arrow timestamps of any unit and zone, compared as UTC instants
//!   ([`crate::timestamps`]).
//! - **Feature values** are the dtypes of [`DType`], mapped strictly (an `int16` column is no
//!   `int32` feature).

use std::sync::Arc;

use asof_core::DType;
use asof_core::keys::KeyValue;
use asof_core::value::Value;
use datafusion::arrow::array::{Array, ArrayRef, AsArray};
use datafusion::arrow::datatypes::{
    DataType, Field, Float32Type, Float64Type, Int8Type, Int16Type, Int32Type, Int64Type, TimeUnit,
    UInt8Type, UInt16Type, UInt32Type, UInt64Type,
};
use datafusion::common::ScalarValue;

use crate::error::OfflineResult;

/// The Arrow type a feature of this dtype has in training sets.
pub fn arrow_type(d: &DType) -> DataType {
    match d {
        DType::Bool => DataType::Boolean,
        DType::Int32 => DataType::Int32,
        DType::Int64 => DataType::Int64,
        DType::Float32 => DataType::Float32,
        DType::Float64 => DataType::Float64,
        DType::String => DataType::Utf8,
        DType::Bytes => DataType::Binary,
        DType::Timestamp => DataType::Timestamp(TimeUnit::Nanosecond, Some("UTC".into())),
        DType::List(inner) => DataType::List(Arc::new(Field::new("item", arrow_type(inner), true))),
    }
}

/// The dtype an Arrow column maps to, if any. Strict: an `int16` column is no `int32` feature.
pub fn dtype_of(dt: &DataType) -> Option<DType> {
    Some(match dt {
        DataType::Boolean => DType::Bool,
        DataType::Int32 => DType::Int32,
        DataType::Int64 => DType::Int64,
        DataType::Float32 => DType::Float32,
        DataType::Float64 => DType::Float64,
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => DType::String,
        DataType::Binary | DataType::LargeBinary | DataType::BinaryView => DType::Bytes,
        DataType::Timestamp(_, _) => DType::Timestamp,
        DataType::List(f) | DataType::LargeList(f) | DataType::FixedSizeList(f, _) => {
            let inner = dtype_of(f.data_type())?;
            if matches!(inner, DType::List(_)) {
                return None;
            }
            DType::List(Box::new(inner))
        }
        _ => return None,
    })
}

/// What a join key column holds, as the online key encoding sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyKind {
    Int,
    String,
    Bytes,
}

impl KeyKind {
    /// The core's name for this kind (what the registry records and serving checks).
    pub fn key_type(self) -> asof_core::keys::KeyType {
        match self {
            KeyKind::Int => asof_core::keys::KeyType::Int,
            KeyKind::String => asof_core::keys::KeyType::String,
            KeyKind::Bytes => asof_core::keys::KeyType::Bytes,
        }
    }
}

/// The key kind of an Arrow type, or `None` if a column of this type cannot be a join key.
pub fn key_kind(dt: &DataType) -> Option<KeyKind> {
    match dt {
        d if d.is_integer() => Some(KeyKind::Int),
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => Some(KeyKind::String),
        DataType::Binary | DataType::LargeBinary | DataType::BinaryView => Some(KeyKind::Bytes),
        _ => None,
    }
}

/// Why a column of type `dt` cannot be a join key, with the fix; `None` if it can.
pub fn key_type_problem(dt: &DataType) -> Option<String> {
    key_kind(dt).is_none().then(|| {
        format!("{dt} cannot be a join key (join keys are integers, strings or bytes); cast the column to int64 or string in the source")
    })
}

/// Whether a join key of type `entity` can be compared with one of type `source` (after a cast).
pub fn keys_compatible(entity: &DataType, source: &DataType) -> bool {
    key_kind(entity).is_some() && key_kind(entity) == key_kind(source)
}

/// The value at `row`, typed as the column's asof dtype. Types outside the model map to null;
/// the scan casts every feature to its declared dtype first, so none reach here from a source.
pub fn value_at(array: &ArrayRef, row: usize) -> Value {
    if array.is_null(row) {
        return Value::Null;
    }
    match array.data_type() {
        DataType::Boolean => Value::Bool(array.as_boolean().value(row)),
        DataType::Int32 => Value::Int32(array.as_primitive::<Int32Type>().value(row)),
        DataType::Int64 => Value::Int64(array.as_primitive::<Int64Type>().value(row)),
        DataType::Float32 => Value::Float32(array.as_primitive::<Float32Type>().value(row)),
        DataType::Float64 => Value::Float64(array.as_primitive::<Float64Type>().value(row)),
        DataType::Utf8 => Value::String(array.as_string::<i32>().value(row).to_string()),
        DataType::LargeUtf8 => Value::String(array.as_string::<i64>().value(row).to_string()),
        DataType::Utf8View => Value::String(array.as_string_view().value(row).to_string()),
        DataType::Binary => Value::Bytes(array.as_binary::<i32>().value(row).to_vec()),
        DataType::LargeBinary => Value::Bytes(array.as_binary::<i64>().value(row).to_vec()),
        DataType::BinaryView => Value::Bytes(array.as_binary_view().value(row).to_vec()),
        DataType::Timestamp(_, _) => match crate::timestamps::to_nanos(&array.slice(row, 1)) {
            Ok(ns) => Value::Timestamp(ns.value(0)),
            Err(_) => Value::Null,
        },
        DataType::List(_) => {
            let list = array.as_list::<i32>().value(row);
            Value::List((0..list.len()).map(|i| value_at(&list, i)).collect())
        }
        _ => Value::Null,
    }
}

/// The join-key value at `row`: `Ok(None)` for a null (which never matches), an error naming the
/// reason for a value the key encoding cannot hold.
pub fn key_at(array: &ArrayRef, row: usize) -> Result<Option<KeyValue>, String> {
    if array.is_null(row) {
        return Ok(None);
    }
    let int = |v: i64| Ok(Some(KeyValue::Int(v)));
    match array.data_type() {
        DataType::Int8 => int(array.as_primitive::<Int8Type>().value(row).into()),
        DataType::Int16 => int(array.as_primitive::<Int16Type>().value(row).into()),
        DataType::Int32 => int(array.as_primitive::<Int32Type>().value(row).into()),
        DataType::Int64 => int(array.as_primitive::<Int64Type>().value(row)),
        DataType::UInt8 => int(array.as_primitive::<UInt8Type>().value(row).into()),
        DataType::UInt16 => int(array.as_primitive::<UInt16Type>().value(row).into()),
        DataType::UInt32 => int(array.as_primitive::<UInt32Type>().value(row).into()),
        DataType::UInt64 => {
            let v = array.as_primitive::<UInt64Type>().value(row);
            i64::try_from(v)
                .map(|v| Some(KeyValue::Int(v)))
                .map_err(|_| {
                    format!("uint64 key {v} is above the largest int64, which online keys hold")
                })
        }
        dt => match value_at(array, row) {
            Value::String(s) => Ok(Some(KeyValue::Str(s))),
            Value::Bytes(b) => Ok(Some(KeyValue::Bytes(b))),
            _ => Err(key_type_problem(dt).unwrap_or_else(|| format!("{dt} is not a key type"))),
        },
    }
}

/// The Arrow scalar for `v` as a feature of dtype `d` (a typed null for `Value::Null`). Values of
/// another type become nulls: callers check types where values enter (pushes, stored rows).
fn scalar(v: &Value, d: &DType) -> ScalarValue {
    let typed_null = || ScalarValue::try_from(&arrow_type(d)).unwrap_or(ScalarValue::Null);
    match (v, d) {
        (Value::Bool(b), DType::Bool) => ScalarValue::Boolean(Some(*b)),
        (Value::Int32(x), DType::Int32) => ScalarValue::Int32(Some(*x)),
        (Value::Int64(x), DType::Int64) => ScalarValue::Int64(Some(*x)),
        (Value::Float32(x), DType::Float32) => ScalarValue::Float32(Some(*x)),
        (Value::Float64(x), DType::Float64) => ScalarValue::Float64(Some(*x)),
        (Value::String(s), DType::String) => ScalarValue::Utf8(Some(s.clone())),
        (Value::Bytes(b), DType::Bytes) => ScalarValue::Binary(Some(b.clone())),
        (Value::Timestamp(t), DType::Timestamp) => {
            ScalarValue::TimestampNanosecond(Some(*t), Some("UTC".into()))
        }
        (Value::List(items), DType::List(inner)) => {
            let items: Vec<ScalarValue> = items.iter().map(|i| scalar(i, inner)).collect();
            ScalarValue::List(ScalarValue::new_list(&items, &arrow_type(inner), true))
        }
        _ => typed_null(),
    }
}

/// An Arrow column of dtype `d` holding `values` (for logs written from served values).
pub fn values_to_array(d: &DType, values: &[Value]) -> OfflineResult<ArrayRef> {
    if values.is_empty() {
        return Ok(datafusion::arrow::array::new_empty_array(&arrow_type(d)));
    }
    Ok(ScalarValue::iter_to_array(
        values.iter().map(|v| scalar(v, d)),
    )?)
}

/// The DataFusion option that makes Parquet scans yield view types; asof turns it off so that
/// every table it reads holds plain strings and binaries.
pub const FORCE_VIEW_TYPES: &str = "datafusion.execution.parquet.schema_force_view_types";

/// The plain Arrow type of a column in what asof writes: DataFusion reads strings and binaries as
/// its internal view types, which other readers (pyarrow 26's `Table.take`, older Sparks) handle
/// badly or not at all.
pub fn plain_type(dt: &DataType) -> DataType {
    match dt {
        DataType::Utf8View => DataType::Utf8,
        DataType::BinaryView => DataType::Binary,
        DataType::List(f) => DataType::List(Arc::new(Field::new(
            f.name(),
            plain_type(f.data_type()),
            f.is_nullable(),
        ))),
        other => other.clone(),
    }
}

/// `array` cast to its [`plain_type`] (no copy when it already is).
pub fn to_plain(array: &ArrayRef) -> datafusion::common::Result<ArrayRef> {
    let want = plain_type(array.data_type());
    if &want == array.data_type() {
        Ok(Arc::clone(array))
    } else {
        Ok(datafusion::arrow::compute::cast(array, &want)?)
    }
}

/// `array` as a feature of dtype `d` (CSV floats are float64 and integers int64, whatever the
/// declared width); an error names both types when the values do not convert.
pub fn cast_to_dtype(array: &ArrayRef, d: &DType) -> crate::OfflineResult<ArrayRef> {
    let want = arrow_type(d);
    if array.data_type() == &want {
        return Ok(Arc::clone(array));
    }
    let opts = datafusion::arrow::compute::CastOptions {
        safe: false,
        ..Default::default()
    };
    datafusion::arrow::compute::cast_with_options(array, &want, &opts).map_err(|e| {
        crate::OfflineError::Request(format!(
            "a {} column cannot be read as `{d}`: {e}",
            array.data_type()
        ))
    })
}
