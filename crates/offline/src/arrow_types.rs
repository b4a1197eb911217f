//! The mapping between asof dtypes and Arrow types, used by the scan (to cast features to their
//! declared types), the schema probe, and the server (to build typed values).

use std::sync::Arc;

use asof_core::DType;
use asof_core::value::Value;
use datafusion::arrow::array::ArrayRef;
use datafusion::arrow::datatypes::{DataType, Field, TimeUnit};
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

/// Whether a join key of type `entity` can be compared with one of type `source` (after a cast).
pub fn keys_compatible(entity: &DataType, source: &DataType) -> bool {
    let int = |d: &DataType| d.is_integer();
    let string =
        |d: &DataType| matches!(d, DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View);
    let bytes = |d: &DataType| {
        matches!(
            d,
            DataType::Binary | DataType::LargeBinary | DataType::BinaryView
        )
    };
    (int(entity) && int(source))
        || (string(entity) && string(source))
        || (bytes(entity) && bytes(source))
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
