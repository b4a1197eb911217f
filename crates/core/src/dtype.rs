//! Feature data types as declared in repo files. The offline, online and serving paths all map from
//! this one enum, so a feature has the same type everywhere.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum DType {
    Bool,
    Int32,
    Int64,
    Float32,
    Float64,
    String,
    Bytes,
    Timestamp,
    List(Box<DType>),
}

const SCALARS: [&str; 8] = [
    "bool",
    "int32",
    "int64",
    "float32",
    "float64",
    "string",
    "bytes",
    "timestamp",
];

impl FromStr for DType {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let t = s.trim();
        if let Some(inner) = t.strip_prefix("list<").and_then(|r| r.strip_suffix('>')) {
            let inner: DType = inner.parse()?;
            if matches!(inner, DType::List(_)) {
                return Err(format!(
                    "unknown dtype `{s}`: lists of lists are not supported"
                ));
            }
            return Ok(DType::List(Box::new(inner)));
        }
        Ok(match t {
            "bool" => DType::Bool,
            "int32" => DType::Int32,
            "int64" => DType::Int64,
            "float32" => DType::Float32,
            "float64" => DType::Float64,
            "string" => DType::String,
            "bytes" => DType::Bytes,
            "timestamp" => DType::Timestamp,
            other => {
                let hint = crate::error::did_you_mean(other, SCALARS)
                    .map(|h| format!("; {h}"))
                    .unwrap_or_default();
                return Err(format!(
                    "unknown dtype `{other}`{hint} (one of {} or list<T>)",
                    SCALARS.join(", ")
                ));
            }
        })
    }
}

impl fmt::Display for DType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DType::List(inner) => write!(f, "list<{inner}>"),
            other => f.write_str(SCALARS[other.scalar_index()]),
        }
    }
}

impl DType {
    fn scalar_index(&self) -> usize {
        match self {
            DType::Bool => 0,
            DType::Int32 => 1,
            DType::Int64 => 2,
            DType::Float32 => 3,
            DType::Float64 => 4,
            DType::String => 5,
            DType::Bytes => 6,
            DType::Timestamp => 7,
            DType::List(_) => unreachable!("lists are formatted by Display"),
        }
    }
}

impl Serialize for DType {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_string())
    }
}

impl<'de> Deserialize<'de> for DType {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_every_dtype() {
        for s in SCALARS
            .iter()
            .map(|s| s.to_string())
            .chain(SCALARS.iter().map(|s| format!("list<{s}>")))
        {
            let d: DType = s.parse().unwrap();
            assert_eq!(d.to_string(), s);
        }
    }

    #[test]
    fn suggests_near_match() {
        let err = "flaot32".parse::<DType>().unwrap_err();
        assert!(err.contains("did you mean `float32`"), "{err}");
    }
}
