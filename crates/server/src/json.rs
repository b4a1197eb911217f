//! Protobuf values as JSON and back, for the HTTP and MCP front ends. JSON has one number type and
//! no timestamps, so values going in are typed by the column they fill (a view's feature type, a
//! source's key type); values coming out follow Feast's feature server: native JSON scalars,
//! RFC 3339 timestamps, base64 bytes, non-finite floats as the strings protobuf JSON uses.

use asof_core::DType;
use asof_core::keys::KeyType;
use asof_core::time;
use base64::Engine;
use serde_json::{Number, Value as Json};

use std::collections::HashMap;

use crate::convert::{nanos, timestamp};
use crate::error::{ServerError, ServerResult};
use crate::proto::v1::{self, PushFeaturesRequest, PushTarget, RepeatedValue, value::Kind};
use crate::snapshot::Snapshot;

/// A served value as Feast's feature server writes it.
pub fn to_json(v: &v1::Value) -> Json {
    match &v.kind {
        None => Json::Null,
        Some(Kind::BoolVal(b)) => Json::Bool(*b),
        Some(Kind::Int32Val(i)) => Json::from(*i),
        Some(Kind::Int64Val(i)) => Json::from(*i),
        Some(Kind::FloatVal(f)) => float(f64::from(*f)),
        Some(Kind::DoubleVal(f)) => float(*f),
        Some(Kind::StringVal(s)) => Json::String(s.clone()),
        Some(Kind::BytesVal(b)) => {
            Json::String(base64::engine::general_purpose::STANDARD.encode(b))
        }
        Some(Kind::TimestampVal(t)) => Json::String(time::format_nanos(nanos(t))),
        Some(Kind::ListVal(l)) => Json::Array(l.values.iter().map(to_json).collect()),
    }
}

fn float(f: f64) -> Json {
    match Number::from_f64(f) {
        Some(n) => Json::Number(n),
        None if f.is_nan() => Json::String("NaN".into()),
        None if f > 0.0 => Json::String("Infinity".into()),
        None => Json::String("-Infinity".into()),
    }
}

/// An event time as Feast writes it: RFC 3339, `1970-01-01T00:00:00Z` when there is none.
pub fn timestamp_json(ts: &prost_types::Timestamp) -> Json {
    Json::String(time::format_nanos(nanos(ts)))
}

/// An entity key from JSON: whole numbers are integer keys, strings are string keys. The key's
/// type is checked against its view downstream, with the view named in the message.
pub fn key_from_json(j: &Json) -> Result<v1::Value, String> {
    let kind = match j {
        Json::Null => None,
        Json::Number(n) => match n.as_i64() {
            Some(i) => Some(Kind::Int64Val(i)),
            None => {
                return Err(format!(
                    "{n} is not a whole number; keys are integers or strings"
                ));
            }
        },
        Json::String(s) => Some(Kind::StringVal(s.clone())),
        other => {
            return Err(format!(
                "{other} is not a key; keys are integers or strings"
            ));
        }
    };
    Ok(v1::Value { kind })
}

/// A key column's value from JSON, typed as its source holds the key when that is known.
pub fn typed_key_from_json(j: &Json, key_type: Option<KeyType>) -> Result<v1::Value, String> {
    match (key_type, j) {
        (Some(KeyType::String), Json::Number(n)) => Ok(v1::Value {
            kind: Some(Kind::StringVal(n.to_string())),
        }),
        _ => key_from_json(j),
    }
}

/// A timestamp from JSON: RFC 3339 or a naive ISO 8601 time (read as UTC, as Feast's clients
/// send them), or a number of seconds since the epoch.
pub fn timestamp_from_json(j: &Json) -> Result<v1::Value, String> {
    let ns = match j {
        Json::Null => return Ok(v1::Value { kind: None }),
        Json::String(s) => time::to_nanos(time::parse_instant(s)?),
        Json::Number(n) => match n.as_f64() {
            Some(secs) if secs.is_finite() => (secs * 1e9).round() as i64,
            _ => return Err(format!("{n} is not a time")),
        },
        other => {
            return Err(format!(
                "{other} is not a time; send RFC 3339 (`2024-05-01T12:00:00Z`) or epoch seconds"
            ));
        }
    };
    Ok(v1::Value {
        kind: Some(Kind::TimestampVal(timestamp(ns))),
    })
}

/// A feature value from JSON, as the view declares the feature.
pub fn value_from_json(j: &Json, dtype: &DType) -> Result<v1::Value, String> {
    let wrong = || format!("{j} is not a {dtype}");
    let kind = match (dtype, j) {
        (_, Json::Null) => None,
        (DType::Bool, Json::Bool(b)) => Some(Kind::BoolVal(*b)),
        (DType::Int32, Json::Number(n)) => Some(Kind::Int32Val(
            n.as_i64()
                .and_then(|i| i32::try_from(i).ok())
                .ok_or_else(wrong)?,
        )),
        (DType::Int64, Json::Number(n)) => Some(Kind::Int64Val(n.as_i64().ok_or_else(wrong)?)),
        (DType::Float32, Json::Number(n)) => {
            Some(Kind::FloatVal(n.as_f64().ok_or_else(wrong)? as f32))
        }
        (DType::Float64, Json::Number(n)) => Some(Kind::DoubleVal(n.as_f64().ok_or_else(wrong)?)),
        (DType::Float32 | DType::Float64, Json::String(s)) => {
            let f = match s.as_str() {
                "NaN" => f64::NAN,
                "Infinity" => f64::INFINITY,
                "-Infinity" => f64::NEG_INFINITY,
                _ => return Err(wrong()),
            };
            if *dtype == DType::Float32 {
                Some(Kind::FloatVal(f as f32))
            } else {
                Some(Kind::DoubleVal(f))
            }
        }
        (DType::String, Json::String(s)) => Some(Kind::StringVal(s.clone())),
        (DType::Bytes, Json::String(s)) => Some(Kind::BytesVal(
            base64::engine::general_purpose::STANDARD
                .decode(s)
                .map_err(|e| format!("{j} is not base64 bytes: {e}"))?,
        )),
        (DType::Timestamp, _) => return timestamp_from_json(j),
        (DType::List(inner), Json::Array(items)) => Some(Kind::ListVal(v1::ValueList {
            values: items
                .iter()
                .map(|i| value_from_json(i, inner))
                .collect::<Result<_, _>>()?,
        })),
        _ => return Err(wrong()),
    };
    Ok(v1::Value { kind })
}

/// A `GetOnlineFeatures` request in JSON: Feast's `/get-online-features` body, and the MCP
/// tool's arguments (one shape, one conversion).
#[derive(Debug, serde::Deserialize, schemars::JsonSchema)]
pub struct OnlineFeaturesJson {
    /// Join key -> one value per entity row, e.g. {"driver_id": [1001, 1002]}.
    pub entities: HashMap<String, Vec<Json>>,
    /// Feature references `view:feature` (or a bare `view` for all its features).
    #[serde(default)]
    pub features: Vec<String>,
    /// A feature service to read instead of `features`.
    #[serde(default)]
    pub feature_service: Option<String>,
    /// Name columns `view__feature` instead of `feature`.
    #[serde(default)]
    pub full_feature_names: bool,
    /// Feast's versioned views; asof keeps one definition per name, so there is nothing to add.
    #[serde(default)]
    #[schemars(skip)]
    pub include_feature_view_version_metadata: bool,
    /// asof's addition: read as of this instant (RFC 3339) instead of now.
    #[serde(default)]
    pub as_of: Option<String>,
}

impl OnlineFeaturesJson {
    pub fn into_request(self) -> ServerResult<v1::GetOnlineFeaturesRequest> {
        use v1::get_online_features_request::Kind as RequestKind;
        let invalid = ServerError::InvalidArgument;
        let mut entities = HashMap::with_capacity(self.entities.len());
        for (key, values) in self.entities {
            let values = values
                .iter()
                .enumerate()
                .map(|(row, v)| {
                    key_from_json(v).map_err(|e| invalid(format!("entity `{key}` row {row}: {e}")))
                })
                .collect::<ServerResult<Vec<_>>>()?;
            entities.insert(key, RepeatedValue { values });
        }
        let kind = match (self.feature_service, self.features.is_empty()) {
            (Some(s), true) => RequestKind::FeatureService(s),
            (None, false) => RequestKind::Features(v1::FeatureList {
                features: self.features,
            }),
            (Some(_), false) => {
                return Err(invalid(
                    "name `features` or a `feature_service`, not both".into(),
                ));
            }
            (None, true) => {
                return Err(invalid(
                    "name the `features` (e.g. [\"driver_hourly_stats:conv_rate\"]) or a `feature_service`".into(),
                ));
            }
        };
        Ok(v1::GetOnlineFeaturesRequest {
            kind: Some(kind),
            entities,
            full_feature_names: self.full_feature_names,
            as_of: as_of_from_json(self.as_of.as_deref())?,
        })
    }
}

/// An `as_of` argument: RFC 3339, a date, or `now`.
pub fn as_of_from_json(text: Option<&str>) -> ServerResult<Option<prost_types::Timestamp>> {
    text.map(|t| {
        time::parse_instant(t)
            .map(|t| timestamp(time::to_nanos(t)))
            .map_err(|e| ServerError::InvalidArgument(format!("`as_of`: {e}")))
    })
    .transpose()
}

/// Feast's columnar `df` as a push to `view`, each column typed as the view declares it.
/// `feast_names` reads Feast's fixed `event_timestamp`/`created` columns as the source's own.
pub fn push_from_json(
    snap: &Snapshot,
    view: &str,
    df: &serde_json::Map<String, Json>,
    to: PushTarget,
    feast_names: bool,
) -> ServerResult<PushFeaturesRequest> {
    let Some(spec) = snap.catalog.feature_views.get(view) else {
        return Err(ServerError::InvalidArgument(format!(
            "unknown feature view `{view}`"
        )));
    };
    let source = snap.catalog.sources.get(&spec.source);
    let ts_field = source.map(|s| s.timestamp_field.as_str()).unwrap_or("");
    let created_field = source.and_then(|s| s.created_timestamp_field.as_deref());
    let join_keys = snap.catalog.join_keys(spec);
    let key_types = snap.catalog.key_types.get(view);
    let event_columns = spec.event_columns();
    let mut columns = HashMap::with_capacity(df.len());
    for (name, column) in df {
        let name = match name.as_str() {
            "event_timestamp" if feast_names => ts_field,
            "created" if feast_names => match created_field {
                Some(c) => c,
                // The source keeps no creation time: nothing to write it to.
                None => continue,
            },
            n => n,
        };
        let Json::Array(values) = column else {
            return Err(ServerError::InvalidArgument(format!(
                "`df.{name}` must be a list of values (one per row)"
            )));
        };
        let key_type: Option<KeyType> = key_types.and_then(|t| t.get(name).copied());
        let dtype = event_columns
            .iter()
            .find(|f| f.name == name)
            .map(|f| &f.dtype);
        let convert = |v: &Json| -> Result<_, String> {
            if name == ts_field || Some(name) == created_field {
                timestamp_from_json(v)
            } else if join_keys.iter().any(|k| k == name) {
                typed_key_from_json(v, key_type)
            } else if let Some(d) = dtype {
                value_from_json(v, d)
            } else {
                // Not a column of the view: the push itself names the problem.
                key_from_json(v).or_else(|_| Ok(Default::default()))
            }
        };
        let values = values
            .iter()
            .enumerate()
            .map(|(row, v)| {
                convert(v).map_err(|e| {
                    ServerError::InvalidArgument(format!("`df.{name}` row {row}: {e}"))
                })
            })
            .collect::<ServerResult<Vec<_>>>()?;
        columns.insert(name.to_string(), RepeatedValue { values });
    }
    Ok(PushFeaturesRequest {
        feature_view: view.to_string(),
        columns,
        to: to as i32,
        deleted: Vec::new(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_round_trip_through_json_by_their_declared_type() {
        for (dtype, j) in [
            (DType::Int64, serde_json::json!(7)),
            (DType::Int32, serde_json::json!(-3)),
            (DType::Float64, serde_json::json!(0.25)),
            (DType::String, serde_json::json!("a")),
            (DType::Bool, serde_json::json!(true)),
            (DType::Bytes, serde_json::json!("AAE=")),
            (
                DType::Timestamp,
                serde_json::json!("2024-05-01T12:00:00.500Z"),
            ),
            (DType::Float64, serde_json::json!("NaN")),
            (
                DType::List(Box::new(DType::Int64)),
                serde_json::json!([1, 2]),
            ),
        ] {
            let v = value_from_json(&j, &dtype).unwrap();
            assert_eq!(to_json(&v), j, "{dtype}");
        }
        assert!(value_from_json(&serde_json::json!(1.5), &DType::Int64).is_err());
        assert!(value_from_json(&serde_json::json!(3_000_000_000i64), &DType::Int32).is_err());
        assert!(value_from_json(&serde_json::json!("x"), &DType::Float64).is_err());
    }

    #[test]
    fn naive_times_are_utc_and_numbers_are_epoch_seconds() {
        let a = timestamp_from_json(&serde_json::json!("2024-05-01T12:00:00")).unwrap();
        let b = timestamp_from_json(&serde_json::json!(1_714_564_800)).unwrap();
        assert_eq!(a, b);
    }
}
