//! Conversions between Arrow columns, asof values and protobuf values. Entity keys from every
//! source (Parquet columns, gRPC requests) end in `asof_core::keys::encode_entity_key`.

use asof_core::value::Value;
/// Arrow to asof conversions belong to the type model; re-exported for this crate's callers.
pub use asof_offline::types::{key_at, value_at};
use prost_types::Timestamp;

use crate::proto::v1::{self, value::Kind};

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
