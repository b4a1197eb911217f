//! The memory budget of a query: a DataFusion memory pool with a limit, which the PIT operator
//! reserves against (entity table, entity index, slot arrays, held rows), so a training set that
//! does not fit fails with "needs N, limit M" instead of being killed by the OS.

use std::fmt;
use std::str::FromStr;

/// Share of the machine's memory a query may use when no limit is given.
pub const DEFAULT_FRACTION: f64 = 0.7;

/// A memory limit in bytes, parsed from `4GiB`, `512MiB`, `2G`, `1000000` or `60%` (of RAM).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MemoryLimit(pub usize);

impl MemoryLimit {
    /// [`DEFAULT_FRACTION`] of the machine's memory, or `None` where it cannot be read.
    pub fn default_for_machine() -> Option<MemoryLimit> {
        total_memory().map(|t| MemoryLimit((t as f64 * DEFAULT_FRACTION) as usize))
    }
}

impl fmt::Display for MemoryLimit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", human_bytes(self.0))
    }
}

/// `1536 MiB`, `3.0 GiB`: sizes as people read them.
pub fn human_bytes(n: usize) -> String {
    const MIB: f64 = 1024.0 * 1024.0;
    let mib = n as f64 / MIB;
    if mib >= 1024.0 {
        format!("{:.1} GiB", mib / 1024.0)
    } else if mib >= 1.0 {
        format!("{mib:.0} MiB")
    } else {
        format!("{:.0} KiB", n as f64 / 1024.0)
    }
}

impl FromStr for MemoryLimit {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let t = s.trim();
        let bad = || {
            format!(
                "bad memory limit `{s}`: write a size such as `4GiB`, `512MiB` or `60%` (of this machine's memory)"
            )
        };
        if let Some(pct) = t.strip_suffix('%') {
            let p: f64 = pct.trim().parse().map_err(|_| bad())?;
            if !(p > 0.0 && p <= 100.0) {
                return Err(format!(
                    "bad memory limit `{s}`: a share is between 0% and 100%"
                ));
            }
            let total = total_memory().ok_or_else(|| {
                format!("memory limit `{s}`: this machine's memory size is unknown; give a size such as `4GiB`")
            })?;
            return Ok(MemoryLimit((total as f64 * p / 100.0) as usize));
        }
        let split = t
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(t.len());
        let (num, unit) = t.split_at(split);
        let num: f64 = num.parse().map_err(|_| bad())?;
        let mult: f64 = match unit.trim().to_ascii_lowercase().as_str() {
            "" | "b" => 1.0,
            "k" | "kb" | "kib" => 1024.0,
            "m" | "mb" | "mib" => 1024.0 * 1024.0,
            "g" | "gb" | "gib" => 1024.0 * 1024.0 * 1024.0,
            "t" | "tb" | "tib" => 1024.0_f64.powi(4),
            _ => return Err(bad()),
        };
        let bytes = num * mult;
        if bytes < 1.0 {
            return Err(bad());
        }
        Ok(MemoryLimit(bytes as usize))
    }
}

/// The machine's physical memory in bytes (Linux: `/proc/meminfo`).
fn total_memory() -> Option<usize> {
    let text = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = text.lines().find(|l| l.starts_with("MemTotal:"))?;
    let kib: usize = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_parse_in_binary_units() {
        assert_eq!("4GiB".parse(), Ok(MemoryLimit(4 << 30)));
        assert_eq!("512 MiB".parse(), Ok(MemoryLimit(512 << 20)));
        assert_eq!("1.5g".parse(), Ok(MemoryLimit(3 << 29)));
        assert_eq!("1000".parse(), Ok(MemoryLimit(1000)));
        assert!(
            "4 parsecs"
                .parse::<MemoryLimit>()
                .unwrap_err()
                .contains("`4GiB`")
        );
        assert!("0%".parse::<MemoryLimit>().is_err());
        assert_eq!(human_bytes(3 << 30), "3.0 GiB");
    }
}
