//! Durations as users write them in repo files (`90s`, `15m`, `2h`, `1d`, `1w`; `0` = unlimited).

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A feature view's time-to-live: how old a feature value may be, relative to the time it is read
/// "as of", and still be served. `Ttl::UNLIMITED` (written `0`) never expires.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, PartialOrd, Ord)]
pub struct Ttl {
    seconds: u64,
}

impl Ttl {
    pub const UNLIMITED: Ttl = Ttl { seconds: 0 };

    pub fn from_seconds(seconds: u64) -> Self {
        Ttl { seconds }
    }

    pub fn is_unlimited(&self) -> bool {
        self.seconds == 0
    }

    /// The TTL in nanoseconds, or `None` when unlimited.
    pub fn as_nanos(&self) -> Option<i64> {
        (!self.is_unlimited()).then(|| (self.seconds as i64).saturating_mul(1_000_000_000))
    }

    pub fn as_seconds(&self) -> u64 {
        self.seconds
    }

    /// Parses `90s`, `15m`, `2h`, `1d`, `7d`, `1w` or `0`.
    pub fn parse(text: &str) -> Result<Ttl, String> {
        let t = text.trim();
        if t == "0" {
            return Ok(Ttl::UNLIMITED);
        }
        let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
        let (num, unit) = t.split_at(split);
        let bad = || {
            format!(
                "bad duration `{text}`: write a number and a unit, e.g. `90s`, `15m`, `2h`, `1d`, `1w` (or `0` for no limit)"
            )
        };
        let n: u64 = num.parse().map_err(|_| bad())?;
        let mult = match unit {
            "s" => 1,
            "m" => 60,
            "h" => 3600,
            "d" => 86_400,
            "w" => 604_800,
            _ => return Err(bad()),
        };
        n.checked_mul(mult).map(Ttl::from_seconds).ok_or_else(bad)
    }
}

impl fmt::Display for Ttl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = self.seconds;
        if s == 0 {
            return write!(f, "0");
        }
        for (unit, mult) in [("w", 604_800), ("d", 86_400), ("h", 3600), ("m", 60)] {
            if s.is_multiple_of(mult) {
                return write!(f, "{}{unit}", s / mult);
            }
        }
        write!(f, "{s}s")
    }
}

impl Serialize for Ttl {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_string())
    }
}

impl<'de> Deserialize<'de> for Ttl {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Int(u64),
            Text(String),
        }
        match Raw::deserialize(d)? {
            Raw::Int(0) => Ok(Ttl::UNLIMITED),
            Raw::Int(n) => Err(serde::de::Error::custom(format!(
                "bad duration `{n}`: give a unit, e.g. `{n}s` or `{n}d` (only `0` may stand alone)"
            ))),
            Raw::Text(t) => Ttl::parse(&t).map_err(serde::de::Error::custom),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_unit_and_round_trips() {
        for (text, secs) in [
            ("90s", 90),
            ("15m", 900),
            ("2h", 7200),
            ("1d", 86_400),
            ("7d", 604_800),
            ("1w", 604_800),
            ("0", 0),
        ] {
            let ttl = Ttl::parse(text).unwrap();
            assert_eq!(ttl.as_seconds(), secs, "{text}");
            assert_eq!(Ttl::parse(&ttl.to_string()).unwrap(), ttl);
        }
    }

    #[test]
    fn rejects_bad_input_with_an_example() {
        for bad in ["1y", "d", "", "-1d", "1.5h", "10"] {
            let err = Ttl::parse(bad).unwrap_err();
            assert!(err.contains("e.g."), "{bad}: {err}");
        }
    }
}
