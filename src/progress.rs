//! Progress on a terminal (hidden otherwise) and the one-line summaries long operations print.

use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressStyle};

/// A spinner for an operation of unknown length; hidden when stderr is not a terminal or with -q.
pub fn spinner(message: &str, quiet: bool) -> ProgressBar {
    let pb = if quiet {
        ProgressBar::hidden()
    } else {
        ProgressBar::new_spinner()
    };
    pb.set_style(
        ProgressStyle::with_template("{spinner} {msg} [{elapsed}]").expect("valid template"),
    );
    pb.set_message(message.to_string());
    pb.enable_steady_tick(Duration::from_millis(120));
    pb
}

/// "1,234 rows in 0.52 s (2,373 rows/s)".
pub fn rate(rows: usize, unit: &str, started: Instant) -> String {
    let secs = started.elapsed().as_secs_f64();
    let per_sec = if secs > 0.0 { rows as f64 / secs } else { 0.0 };
    format!(
        "{} {unit} in {secs:.2} s ({} {unit}/s)",
        thousands(rows as u64),
        thousands(per_sec as u64)
    )
}

pub fn thousands(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}
