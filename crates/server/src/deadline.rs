//! The deadline of the request being served: the server's own limit ([`REQUEST_TIMEOUT`]) or the
//! client's `grpc-timeout`, whichever ends first. tonic drops a request's future at that moment,
//! but work handed to a blocking thread (a remote embedder's retries) runs on unless it is told
//! the deadline, so handlers that block read it from here.

use std::time::{Duration, Instant};

/// The longest any request may take on this server.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

tokio::task_local! {
    static DEADLINE: Instant;
}

/// The current request's deadline; outside a request, [`REQUEST_TIMEOUT`] from now.
pub fn current() -> Instant {
    DEADLINE
        .try_with(|d| *d)
        .unwrap_or_else(|_| Instant::now() + REQUEST_TIMEOUT)
}

/// Runs `f` with the deadline a request's metadata implies.
pub async fn scope<F: std::future::Future>(
    metadata: &tonic::metadata::MetadataMap,
    f: F,
) -> F::Output {
    let mut limit = REQUEST_TIMEOUT;
    if let Some(t) = metadata
        .get("grpc-timeout")
        .and_then(|v| v.to_str().ok())
        .and_then(parse_grpc_timeout)
    {
        limit = limit.min(t);
    }
    DEADLINE.scope(Instant::now() + limit, f).await
}

/// `grpc-timeout` is digits and a unit: `H`, `M`, `S`, `m` (ms), `u` (µs) or `n` (ns).
fn parse_grpc_timeout(v: &str) -> Option<Duration> {
    if v.len() < 2 || v.len() > 9 {
        return None;
    }
    let (digits, unit) = v.split_at(v.len() - 1);
    let n: u64 = digits.parse().ok()?;
    Some(match unit {
        "H" => Duration::from_secs(n.checked_mul(3600)?),
        "M" => Duration::from_secs(n.checked_mul(60)?),
        "S" => Duration::from_secs(n),
        "m" => Duration::from_millis(n),
        "u" => Duration::from_micros(n),
        "n" => Duration::from_nanos(n),
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grpc_timeouts_parse() {
        assert_eq!(parse_grpc_timeout("250m"), Some(Duration::from_millis(250)));
        assert_eq!(parse_grpc_timeout("2S"), Some(Duration::from_secs(2)));
        assert_eq!(parse_grpc_timeout("1H"), Some(Duration::from_secs(3600)));
        assert_eq!(parse_grpc_timeout("12"), None);
        assert_eq!(parse_grpc_timeout("m"), None);
        assert_eq!(parse_grpc_timeout("1234567890S"), None);
    }
}
