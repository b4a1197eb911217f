//! Timestamps on the command line and in the registry. Internally every instant is an `i64` of
//! nanoseconds since the Unix epoch, UTC; naive inputs are read as UTC.

use chrono::{DateTime, NaiveDate, NaiveDateTime, TimeZone, Utc};

/// Nanoseconds since the epoch, UTC.
pub type Nanos = i64;

/// Parses `now`, RFC 3339 (`2024-05-01T12:00:00Z`, `...+02:00`), `2024-05-01T12:00:00` or
/// `2024-05-01` (both UTC).
pub fn parse_instant(text: &str) -> Result<DateTime<Utc>, String> {
    let t = text.trim();
    if t.eq_ignore_ascii_case("now") {
        return Ok(Utc::now());
    }
    if let Ok(dt) = DateTime::parse_from_rfc3339(t) {
        return Ok(dt.with_timezone(&Utc));
    }
    for fmt in [
        "%Y-%m-%dT%H:%M:%S%.f",
        "%Y-%m-%d %H:%M:%S%.f",
        "%Y-%m-%dT%H:%M",
    ] {
        if let Ok(n) = NaiveDateTime::parse_from_str(t, fmt) {
            return Ok(Utc.from_utc_datetime(&n));
        }
    }
    if let Ok(d) = NaiveDate::parse_from_str(t, "%Y-%m-%d") {
        return Ok(Utc.from_utc_datetime(&d.and_hms_opt(0, 0, 0).expect("midnight exists")));
    }
    Err(format!(
        "bad timestamp `{text}`: use `now`, `2024-05-01`, `2024-05-01T12:00:00` (UTC) or RFC 3339 `2024-05-01T12:00:00+02:00`"
    ))
}

pub fn to_nanos(dt: DateTime<Utc>) -> Nanos {
    dt.timestamp_nanos_opt().unwrap_or(if dt.timestamp() < 0 {
        i64::MIN
    } else {
        i64::MAX
    })
}

pub fn from_nanos(ns: Nanos) -> DateTime<Utc> {
    DateTime::from_timestamp_nanos(ns)
}

/// RFC 3339 with the precision the value needs, for messages and JSON.
pub fn format_nanos(ns: Nanos) -> String {
    from_nanos(ns).to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_documented_forms_as_utc() {
        let a = parse_instant("2024-05-01T12:00:00Z").unwrap();
        assert_eq!(parse_instant("2024-05-01T14:00:00+02:00").unwrap(), a);
        assert_eq!(parse_instant("2024-05-01T12:00:00").unwrap(), a);
        assert_eq!(
            parse_instant("2024-05-01").unwrap() + chrono::Duration::hours(12),
            a
        );
        assert!(parse_instant("yesterday").unwrap_err().contains("RFC 3339"));
        assert_eq!(from_nanos(to_nanos(a)), a);
    }
}
