//! The mapping between asof dtypes and Arrow types, used by the scan (to cast features to their
//! declared types), the schema probe, and the server (to build typed values).

use std::sync::Arc;

use asof_core::DType;
use datafusion::arrow::datatypes::{DataType, Field, TimeUnit};

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
