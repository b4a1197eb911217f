//! PostgreSQL column types into asof's one type model: which declared dtypes and key kinds a column
//! can feed, and its text-format values as `asof_core` values. Checked once per table when a
//! stream starts, so a mismatch is a start-up error naming the column, not a bad row later.
//!
//! `numeric` reads as float64 (or float32): exact decimals past 15-17 significant digits round.
//! `timestamp` without time zone reads as UTC; `date` as its midnight, UTC.

use asof_core::DType;
use asof_core::keys::KeyValue;
use asof_core::value::Value;

/// The PostgreSQL type families a stream reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PgKind {
    Bool,
    Int,
    Float,
    Text,
    Json,
    Bytea,
    Timestamp,
    TimestampTz,
    Date,
}

/// The family of type `oid`, or `None` for one asof does not read.
pub fn kind_of(oid: u32) -> Option<PgKind> {
    Some(match oid {
        16 => PgKind::Bool,
        20 | 21 | 23 => PgKind::Int,
        700 | 701 | 1700 => PgKind::Float,
        25 | 19 | 1042 | 1043 | 2950 => PgKind::Text,
        114 | 3802 => PgKind::Json,
        17 => PgKind::Bytea,
        1114 => PgKind::Timestamp,
        1184 => PgKind::TimestampTz,
        1082 => PgKind::Date,
        _ => return None,
    })
}

/// Why a column of PostgreSQL type `pg_type` cannot feed `dtype`, or `None` if it can.
pub fn feature_problem(kind: Option<PgKind>, pg_type: &str, dtype: &DType) -> Option<String> {
    let Some(kind) = kind else {
        return Some(format!(
            "PostgreSQL type `{pg_type}` is not one asof reads (bool, integers, real/double/numeric, text/varchar/uuid, json/jsonb, bytea, timestamp/timestamptz/date)"
        ));
    };
    let ok = match dtype {
        DType::Bool => kind == PgKind::Bool,
        DType::Int32 | DType::Int64 => kind == PgKind::Int,
        DType::Float32 | DType::Float64 => matches!(kind, PgKind::Float | PgKind::Int),
        DType::String => matches!(kind, PgKind::Text | PgKind::Json),
        DType::Bytes => kind == PgKind::Bytea,
        DType::Timestamp => matches!(kind, PgKind::Timestamp | PgKind::TimestampTz | PgKind::Date),
        DType::List(_) => false,
    };
    (!ok).then(|| format!("PostgreSQL type `{pg_type}` cannot be read as {dtype}"))
}

/// Why a column of PostgreSQL type `pg_type` cannot be a join key or doc id, or `None`.
pub fn key_problem(kind: Option<PgKind>, pg_type: &str) -> Option<String> {
    match kind {
        Some(PgKind::Int | PgKind::Text | PgKind::Bytea) => None,
        _ => Some(format!(
            "PostgreSQL type `{pg_type}` cannot be a key (integers, text/varchar/uuid or bytea can)"
        )),
    }
}

/// A key value from its text form.
pub fn parse_key(kind: PgKind, text: &str) -> Result<KeyValue, String> {
    match kind {
        PgKind::Int => text
            .parse::<i64>()
            .map(KeyValue::Int)
            .map_err(|e| format!("`{text}`: {e}")),
        PgKind::Bytea => parse_bytea(text).map(KeyValue::Bytes),
        _ => Ok(KeyValue::Str(text.to_string())),
    }
}

/// A value of `dtype` from its text form in a column of `kind` (a pair [`feature_problem`] allowed).
pub fn parse_value(kind: PgKind, dtype: &DType, text: &str) -> Result<Value, String> {
    let bad = |e: &dyn std::fmt::Display| format!("`{text}` as {dtype}: {e}");
    Ok(match dtype {
        DType::Bool => match text {
            "t" => Value::Bool(true),
            "f" => Value::Bool(false),
            _ => return Err(bad(&"not t or f")),
        },
        DType::Int32 => Value::Int32(text.parse().map_err(|e| bad(&e))?),
        DType::Int64 => Value::Int64(text.parse().map_err(|e| bad(&e))?),
        DType::Float32 => Value::Float32(text.parse().map_err(|e| bad(&e))?),
        DType::Float64 => Value::Float64(text.parse().map_err(|e| bad(&e))?),
        DType::String => Value::String(text.to_string()),
        DType::Bytes => Value::Bytes(parse_bytea(text)?),
        DType::Timestamp => Value::Timestamp(parse_time(kind, text)?),
        DType::List(_) => return Err(bad(&"lists are not read from PostgreSQL")),
    })
}

/// A timestamp, timestamptz or date in PostgreSQL's ISO output, as UTC nanoseconds.
pub fn parse_time(kind: PgKind, text: &str) -> Result<i64, String> {
    use chrono::{DateTime, NaiveDate, NaiveDateTime};
    let bad = |e: &dyn std::fmt::Display| {
        format!("`{text}` is not a timestamp asof can hold ({e}); set the session DateStyle to ISO")
    };
    let t = match kind {
        PgKind::TimestampTz => DateTime::parse_from_str(text, "%Y-%m-%d %H:%M:%S%.f%#z")
            .map_err(|e| bad(&e))?
            .to_utc(),
        PgKind::Timestamp => NaiveDateTime::parse_from_str(text, "%Y-%m-%d %H:%M:%S%.f")
            .map_err(|e| bad(&e))?
            .and_utc(),
        PgKind::Date => NaiveDate::parse_from_str(text, "%Y-%m-%d")
            .map_err(|e| bad(&e))?
            .and_hms_opt(0, 0, 0)
            .expect("midnight exists")
            .and_utc(),
        _ => return Err(bad(&"not a time column")),
    };
    t.timestamp_nanos_opt()
        .ok_or_else(|| bad(&"outside the nanosecond range, 1677-2262"))
}

/// `bytea` in hex output format (`\x0a1b`).
fn parse_bytea(text: &str) -> Result<Vec<u8>, String> {
    let hex = text
        .strip_prefix("\\x")
        .ok_or_else(|| format!("bytea `{text}` is not in hex format (set bytea_output = 'hex')"))?;
    if hex.len() % 2 != 0 {
        return Err(format!("bytea `{text}` has an odd number of hex digits"));
    }
    (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).map_err(|e| format!("bytea `{text}`: {e}")))
        .collect()
}

/// A text value as JSON metadata: numbers, booleans and JSON as themselves, the rest as strings.
pub fn to_json(kind: Option<PgKind>, text: &str) -> serde_json::Value {
    use serde_json::Value as J;
    match kind {
        Some(PgKind::Json) => serde_json::from_str(text).unwrap_or_else(|_| J::String(text.into())),
        Some(PgKind::Bool) => J::Bool(text == "t"),
        Some(PgKind::Int) => text
            .parse::<i64>()
            .map(J::from)
            .unwrap_or_else(|_| J::String(text.into())),
        Some(PgKind::Float) => text
            .parse::<f64>()
            .ok()
            .and_then(serde_json::Number::from_f64)
            .map(J::Number)
            .unwrap_or_else(|| J::String(text.into())),
        _ => J::String(text.into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_parse_from_text_output() {
        let ts = |k, s| parse_time(k, s).unwrap();
        assert_eq!(
            ts(PgKind::TimestampTz, "1970-01-01 00:00:01+00"),
            1_000_000_000
        );
        assert_eq!(
            ts(PgKind::TimestampTz, "1970-01-01 05:30:01.5+05:30"),
            1_500_000_000
        );
        assert_eq!(
            ts(PgKind::Timestamp, "1970-01-02 00:00:00"),
            86_400 * 1_000_000_000
        );
        assert_eq!(ts(PgKind::Date, "1970-01-02"), 86_400 * 1_000_000_000);
        assert!(parse_time(PgKind::TimestampTz, "infinity").is_err());
        assert_eq!(
            parse_value(PgKind::Float, &DType::Float64, "12.50").unwrap(),
            Value::Float64(12.5)
        );
        assert_eq!(
            parse_value(PgKind::Bool, &DType::Bool, "t").unwrap(),
            Value::Bool(true)
        );
        assert_eq!(
            parse_value(PgKind::Bytea, &DType::Bytes, "\\x0aff").unwrap(),
            Value::Bytes(vec![10, 255])
        );
        assert!(parse_value(PgKind::Int, &DType::Int32, "3000000000").is_err());
        assert_eq!(parse_key(PgKind::Int, "42").unwrap(), KeyValue::Int(42));
    }

    #[test]
    fn only_readable_pairs_pass() {
        assert!(feature_problem(Some(PgKind::Int), "bigint", &DType::Float32).is_none());
        assert!(feature_problem(Some(PgKind::Float), "numeric", &DType::Int64).is_some());
        assert!(feature_problem(None, "interval", &DType::String).is_some());
        assert!(key_problem(Some(PgKind::Float), "double precision").is_some());
        assert!(key_problem(kind_of(2950), "uuid").is_none());
    }
}
