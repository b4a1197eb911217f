//! Conversions between Arrow columns, asof values and protobuf values. Entity keys from every
//! source (Parquet columns, gRPC requests) end in `asof_core::keys::encode_entity_key`.

use asof_core::keys::KeyValue;
use asof_core::value::Value;
use datafusion::arrow::array::{Array, ArrayRef, AsArray};
use datafusion::arrow::datatypes::{
    DataType, Float32Type, Float64Type, Int8Type, Int16Type, Int32Type, Int64Type, UInt8Type,
    UInt16Type, UInt32Type, UInt64Type,
};
use prost_types::Timestamp;

use crate::proto::v1::{self, value::Kind};

/// The value at `row`, typed as the column's asof dtype. Types the scan never produces map to null.
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
        DataType::Timestamp(_, _) => match asof_offline::timestamps::to_nanos(&array.slice(row, 1))
        {
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

/// The join-key value at `row`, or `None` for nulls (which never match).
pub fn key_at(array: &ArrayRef, row: usize) -> Option<KeyValue> {
    if array.is_null(row) {
        return None;
    }
    let int = |v: i64| Some(KeyValue::Int(v));
    match array.data_type() {
        DataType::Int8 => int(array.as_primitive::<Int8Type>().value(row).into()),
        DataType::Int16 => int(array.as_primitive::<Int16Type>().value(row).into()),
        DataType::Int32 => int(array.as_primitive::<Int32Type>().value(row).into()),
        DataType::Int64 => int(array.as_primitive::<Int64Type>().value(row)),
        DataType::UInt8 => int(array.as_primitive::<UInt8Type>().value(row).into()),
        DataType::UInt16 => int(array.as_primitive::<UInt16Type>().value(row).into()),
        DataType::UInt32 => int(array.as_primitive::<UInt32Type>().value(row).into()),
        DataType::UInt64 => i64::try_from(array.as_primitive::<UInt64Type>().value(row))
            .ok()
            .map(KeyValue::Int),
        _ => match value_at(array, row) {
            Value::String(s) => Some(KeyValue::Str(s)),
            Value::Bytes(b) => Some(KeyValue::Bytes(b)),
            _ => None,
        },
    }
}

pub fn timestamp(ns: i64) -> Timestamp {
    Timestamp {
        seconds: ns.div_euclid(1_000_000_000),
        nanos: ns.rem_euclid(1_000_000_000) as i32,
    }
}

pub fn nanos(ts: &Timestamp) -> i64 {
    ts.seconds
        .saturating_mul(1_000_000_000)
        .saturating_add(i64::from(ts.nanos))
}

pub fn to_proto(v: &Value) -> v1::Value {
    let kind = match v {
        Value::Null => None,
        Value::Bool(b) => Some(Kind::BoolVal(*b)),
        Value::Int32(i) => Some(Kind::Int32Val(*i)),
        Value::Int64(i) => Some(Kind::Int64Val(*i)),
        Value::Float32(f) => Some(Kind::FloatVal(*f)),
        Value::Float64(f) => Some(Kind::DoubleVal(*f)),
        Value::String(s) => Some(Kind::StringVal(s.clone())),
        Value::Bytes(b) => Some(Kind::BytesVal(b.clone())),
        Value::Timestamp(t) => Some(Kind::TimestampVal(timestamp(*t))),
        Value::List(items) => Some(Kind::ListVal(v1::ValueList {
            values: items.iter().map(to_proto).collect(),
        })),
    };
    v1::Value { kind }
}

pub fn from_proto(v: &v1::Value) -> Value {
    match &v.kind {
        None => Value::Null,
        Some(Kind::BoolVal(b)) => Value::Bool(*b),
        Some(Kind::Int32Val(i)) => Value::Int32(*i),
        Some(Kind::Int64Val(i)) => Value::Int64(*i),
        Some(Kind::FloatVal(f)) => Value::Float32(*f),
        Some(Kind::DoubleVal(f)) => Value::Float64(*f),
        Some(Kind::StringVal(s)) => Value::String(s.clone()),
        Some(Kind::BytesVal(b)) => Value::Bytes(b.clone()),
        Some(Kind::TimestampVal(t)) => Value::Timestamp(nanos(t)),
        Some(Kind::ListVal(l)) => Value::List(l.values.iter().map(from_proto).collect()),
    }
}
