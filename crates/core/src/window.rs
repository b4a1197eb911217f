//! The windowed aggregation rule, once, for every path. A read of entity `k` at time `t` aggregates
//! the events of `k` with `t - window < ts <= t` ([`in_window`]):
//!
//! * `count` counts events (with a `column`: its non-null values), 0 when there are none;
//! * `sum`, `mean`, `min`, `max` and `last` skip null values and are null when the window holds no
//!   non-null value;
//! * `last` takes the latest event by `(ts, created, input order)`: callers hand events sorted so;
//! * events are never deduplicated: two identical events count twice.
//!
//! The offline operator slides one [`slide`] call over each key's events for all of the key's
//! entity rows; the online store calls the same [`slide`] with one read time over the events it
//! kept. Float sums are exact ([`ExactSum`]) and rounded once, so the running sum offline, which adds
//! and removes events as the window moves, and the online sum, which adds the window's events from
//! scratch, are the same number bit for bit.

use std::cmp::Ordering;
use std::collections::VecDeque;

use serde::{Deserialize, Serialize};

use crate::dtype::DType;
use crate::time::Nanos;

/// The push log column holding each event's ordinal among equal events of its write
/// ([`crate::value::StoredEvent`]): a replayed push is the same event, not a second one.
pub const ORDINAL_COLUMN: &str = "_asof_ordinal";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Function {
    Count,
    Sum,
    Mean,
    Min,
    Max,
    Last,
}

impl Function {
    pub fn name(&self) -> &'static str {
        match self {
            Function::Count => "count",
            Function::Sum => "sum",
            Function::Mean => "mean",
            Function::Min => "min",
            Function::Max => "max",
            Function::Last => "last",
        }
    }

    /// Whether the function reads a column (only `count` can count events without one).
    pub fn needs_column(&self) -> bool {
        *self != Function::Count
    }
}

/// Whether an event at `ts` is in the window of a read at `t`: `t - window < ts <= t`.
#[inline]
pub fn in_window(ts: Nanos, t: Nanos, window: i64) -> bool {
    ts <= t && ts > t.saturating_sub(window)
}

/// The oldest event time a read at `t` can use (inclusive): for range reads and pruning.
#[inline]
pub fn oldest_in_window(t: Nanos, window: i64) -> Nanos {
    t.saturating_sub(window).saturating_add(1)
}

fn is_integer(d: &DType) -> bool {
    matches!(d, DType::Int32 | DType::Int64)
}

fn is_float(d: &DType) -> bool {
    matches!(d, DType::Float32 | DType::Float64)
}

/// Why `function` cannot aggregate a column of type `dtype`, with what would fit; `None` if it can.
pub fn unfit(function: Function, dtype: &DType) -> Option<String> {
    match function {
        Function::Count | Function::Last => None,
        Function::Sum | Function::Mean if is_integer(dtype) || is_float(dtype) => None,
        Function::Sum | Function::Mean => Some(format!(
            "{} needs a numeric column (int32, int64, float32, float64), not {dtype}",
            function.name()
        )),
        Function::Min | Function::Max => match dtype {
            DType::List(_) => Some(format!(
                "{} needs an ordered column, not {dtype}",
                function.name()
            )),
            _ => None,
        },
    }
}

/// The result type: `count` int64; `sum` int64 of integers and float64 of floats; `mean` float64;
/// `min`, `max` and `last` the column's type. `None` when the column's type is unknown.
pub fn output_type(function: Function, input: Option<&DType>) -> Option<DType> {
    match function {
        Function::Count => Some(DType::Int64),
        Function::Mean => Some(DType::Float64),
        Function::Sum => input.map(|d| {
            if is_integer(d) {
                DType::Int64
            } else {
                DType::Float64
            }
        }),
        Function::Min | Function::Max | Function::Last => input.cloned(),
    }
}

/// One column of a key's events, as each path holds it (arrow arrays offline, decoded values
/// online). Index `i` is the `i`-th event in `(ts, created, input order)`.
pub trait EventValues {
    fn is_valid(&self, i: usize) -> bool;
    /// The value as an integer (integer columns only).
    fn int(&self, i: usize) -> i64;
    /// The value as a float (numeric columns).
    fn float(&self, i: usize) -> f64;
    /// Orders two non-null values: floats by IEEE total order, strings and bytes by bytes.
    fn compare(&self, i: usize, j: usize) -> Ordering;
}

/// One aggregate's answer for one read.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Output {
    Count(i64),
    /// An integer sum; null when no value, or when it does not fit in int64.
    Int(Option<i64>),
    Float(Option<f64>),
    /// `min`, `max`, `last`: the index of the chosen event, whose value the caller takes.
    Pick(Option<usize>),
}

/// The running state of one aggregate over a window that gains events at its end and loses them at
/// its start, in event order. One lives on the stack per [`slide`]; boxing the exact sum would
/// allocate on every online read instead.
#[allow(clippy::large_enum_variant)]
enum State {
    Count(i64),
    IntSum {
        sum: i128,
        n: i64,
    },
    FloatSum {
        sum: ExactSum,
        n: i64,
    },
    /// Candidate indices, best at the front; each later one is worse than the one before it.
    Extreme {
        deque: VecDeque<usize>,
        max: bool,
    },
    Last(Option<usize>),
}

impl State {
    fn new(function: Function, dtype: Option<&DType>) -> Self {
        let integer = dtype.is_some_and(is_integer);
        match function {
            Function::Count => State::Count(0),
            Function::Sum | Function::Mean if integer => State::IntSum { sum: 0, n: 0 },
            Function::Sum | Function::Mean => State::FloatSum {
                sum: ExactSum::default(),
                n: 0,
            },
            Function::Min => State::Extreme {
                deque: VecDeque::new(),
                max: false,
            },
            Function::Max => State::Extreme {
                deque: VecDeque::new(),
                max: true,
            },
            Function::Last => State::Last(None),
        }
    }

    fn add<V: EventValues + ?Sized>(&mut self, i: usize, v: Option<&V>) {
        match self {
            State::Count(n) => *n += 1,
            State::IntSum { sum, n } => {
                *sum += i128::from(v.expect("sum reads a column").int(i));
                *n += 1;
            }
            State::FloatSum { sum, n } => {
                sum.add(v.expect("sum reads a column").float(i));
                *n += 1;
            }
            State::Extreme { deque, max } => {
                let v = v.expect("min and max read a column");
                // A later value at least as good makes every earlier one useless: it outlives them.
                while let Some(&back) = deque.back() {
                    let c = v.compare(back, i);
                    let dominated = if *max { c.is_le() } else { c.is_ge() };
                    if !dominated {
                        break;
                    }
                    deque.pop_back();
                }
                deque.push_back(i);
            }
            State::Last(last) => *last = Some(i),
        }
    }

    fn remove<V: EventValues + ?Sized>(&mut self, i: usize, v: Option<&V>) {
        match self {
            State::Count(n) => *n -= 1,
            State::IntSum { sum, n } => {
                *sum -= i128::from(v.expect("sum reads a column").int(i));
                *n -= 1;
            }
            State::FloatSum { sum, n } => {
                sum.sub(v.expect("sum reads a column").float(i));
                *n -= 1;
            }
            State::Extreme { deque, .. } => {
                if deque.front() == Some(&i) {
                    deque.pop_front();
                }
            }
            State::Last(last) => {
                if *last == Some(i) {
                    *last = None;
                }
            }
        }
    }

    fn result(&self, function: Function) -> Output {
        match self {
            State::Count(n) => Output::Count(*n),
            State::IntSum { sum, n } => match (function, *n) {
                (_, 0) => match function {
                    Function::Mean => Output::Float(None),
                    _ => Output::Int(None),
                },
                (Function::Mean, n) => Output::Float(Some(*sum as f64 / n as f64)),
                _ => Output::Int(i64::try_from(*sum).ok()),
            },
            State::FloatSum { sum, n } => Output::Float(match (function, *n) {
                (_, 0) => None,
                (Function::Mean, n) => Some(sum.value() / n as f64),
                _ => Some(sum.value()),
            }),
            State::Extreme { deque, .. } => Output::Pick(deque.front().copied()),
            State::Last(last) => Output::Pick(*last),
        }
    }
}

/// Evaluates `function` over one key's events for each read time, calling `out(read, answer)`.
///
/// `ts` holds the events' times sorted by `(ts, created, input order)`; `values` is their column
/// (`None`: `count` of events); `column_type` its type (decides integer or float sums); `reads`
/// are ascending. Each event enters and leaves the window once: O(events + reads).
pub fn slide<V: EventValues + ?Sized>(
    function: Function,
    window: i64,
    column_type: Option<&DType>,
    ts: &[Nanos],
    values: Option<&V>,
    reads: &[Nanos],
    mut out: impl FnMut(usize, Output),
) {
    debug_assert!(ts.is_sorted(), "events must come in time order");
    debug_assert!(reads.is_sorted(), "reads must come in time order");
    let valid = |i: usize| values.is_none_or(|v| v.is_valid(i));
    let mut state = State::new(function, column_type);
    let (mut lo, mut hi) = (0usize, 0usize);
    for (r, &t) in reads.iter().enumerate() {
        while hi < ts.len() && ts[hi] <= t {
            if valid(hi) {
                state.add(hi, values);
            }
            hi += 1;
        }
        while lo < hi && !in_window(ts[lo], t, window) {
            if valid(lo) {
                state.remove(lo, values);
            }
            lo += 1;
        }
        out(r, state.result(function));
    }
}

/// The time of the newest event in the window of each read (the view's "event timestamp" of an
/// aggregated row), `None` when the window is empty.
pub fn newest_in_window(
    ts: &[Nanos],
    window: i64,
    reads: &[Nanos],
    mut out: impl FnMut(usize, Option<Nanos>),
) {
    let mut hi = 0usize;
    for (r, &t) in reads.iter().enumerate() {
        while hi < ts.len() && ts[hi] <= t {
            hi += 1;
        }
        let newest = hi.checked_sub(1).map(|i| ts[i]);
        out(r, newest.filter(|&n| in_window(n, t, window)));
    }
}

/// An exact sum of f64 values: a fixed-point number wide enough for every finite double, so adding
/// and removing values in any order gives the same bits as summing the window afresh. Rounded to
/// the nearest double (ties to even) only when read.
#[derive(Debug, Clone)]
pub struct ExactSum {
    /// Base-2^32 digits of the sum scaled by 2^1074, least significant first, each holding carries
    /// in its upper bits until normalized. Only `lo..=top()` is ever non-zero: values of similar
    /// magnitude touch a few digits, and reads work on those alone.
    limbs: [i64; LIMBS],
    lo: usize,
    hi: usize,
    /// Additions since the last normalization (a limb gains under 2^33 per addition).
    pending: u32,
    nan: u32,
    pos_inf: u32,
    neg_inf: u32,
}

/// 2^1074 * f64::MAX < 2^2098, plus room for sign and carries.
const LIMBS: usize = 68;

impl Default for ExactSum {
    fn default() -> Self {
        ExactSum {
            limbs: [0; LIMBS],
            lo: LIMBS,
            hi: 0,
            pending: 0,
            nan: 0,
            pos_inf: 0,
            neg_inf: 0,
        }
    }
}

impl ExactSum {
    pub fn add(&mut self, x: f64) {
        self.accumulate(x, 1);
    }

    pub fn sub(&mut self, x: f64) {
        self.accumulate(x, -1);
    }

    /// The highest digit that may be non-zero: two above the highest one written, for carries
    /// and the sign.
    fn top(&self) -> usize {
        (self.hi + 2).min(LIMBS - 1)
    }

    fn accumulate(&mut self, x: f64, sign: i32) {
        if x.is_nan() {
            self.nan = self.nan.wrapping_add_signed(sign);
            return;
        }
        if x.is_infinite() {
            let counter = if x > 0.0 {
                &mut self.pos_inf
            } else {
                &mut self.neg_inf
            };
            *counter = counter.wrapping_add_signed(sign);
            return;
        }
        let bits = x.to_bits();
        let exp = ((bits >> 52) & 0x7ff) as i64;
        let frac = bits & ((1u64 << 52) - 1);
        // x = mantissa * 2^(shift - 1074), shift >= 0.
        let (mantissa, shift) = if exp == 0 {
            (frac, 0)
        } else {
            (frac | (1u64 << 52), exp - 1)
        };
        if mantissa == 0 {
            return;
        }
        let negative = (bits >> 63 == 1) != (sign < 0);
        let limb = (shift / 32) as usize;
        let v = u128::from(mantissa) << (shift % 32);
        for d in 0..3 {
            let digit = ((v >> (32 * d)) & 0xffff_ffff) as i64;
            if digit != 0 {
                if negative {
                    self.limbs[limb + d] -= digit;
                } else {
                    self.limbs[limb + d] += digit;
                }
            }
        }
        self.lo = self.lo.min(limb);
        self.hi = self.hi.max(limb + 2);
        self.pending += 1;
        if self.pending >= 1 << 28 {
            let (lo, top) = (self.lo, self.top());
            normalize(&mut self.limbs, lo, top);
            self.pending = 0;
        }
    }

    /// The sum rounded to the nearest double.
    pub fn value(&self) -> f64 {
        if self.nan != 0 || (self.pos_inf != 0 && self.neg_inf != 0) {
            return f64::NAN;
        }
        if self.pos_inf != 0 {
            return f64::INFINITY;
        }
        if self.neg_inf != 0 {
            return f64::NEG_INFINITY;
        }
        if self.lo > self.hi {
            return 0.0;
        }
        let (lo, top) = (self.lo, self.top());
        let mut n = self.limbs;
        normalize(&mut n, lo, top);
        let negative = n[top] < 0;
        if negative {
            // Two's complement over the digits: invert and add one.
            let mut carry = 1i64;
            for (i, d) in n.iter_mut().enumerate().take(top + 1).skip(lo) {
                let s = if i == top { !*d } else { (!*d) & 0xffff_ffff } + carry;
                if i < top {
                    *d = s & 0xffff_ffff;
                    carry = s >> 32;
                } else {
                    *d = s;
                }
            }
        }
        let Some(high) = (lo..=top).rev().find(|&i| n[i] != 0) else {
            return 0.0;
        };
        // The top three digits carry at least 65 significant bits; anything below only decides
        // rounding, so it folds into a sticky bit.
        let low = high.saturating_sub(2).max(lo);
        let mut m: u128 = 0;
        for &d in n[low..=high].iter().rev() {
            m = (m << 32) | d as u128;
        }
        if n[lo..low].iter().any(|&d| d != 0) {
            m |= 1;
        }
        let magnitude = scale_by_power_of_two(m, 32 * low as i32 - 1074);
        if negative { -magnitude } else { magnitude }
    }
}

/// Moves carries up so every digit in `lo..top` is in `0..2^32`; `limbs[top]` keeps the rest,
/// signed.
fn normalize(limbs: &mut [i64; LIMBS], lo: usize, top: usize) {
    for i in lo..top {
        let carry = limbs[i] >> 32;
        limbs[i] -= carry << 32;
        limbs[i + 1] += carry;
    }
}

/// `m * 2^exp` rounded to a double: exact scaling of the correctly rounded `m`, except where the
/// result is subnormal (rounded twice there, identically on every path).
fn scale_by_power_of_two(m: u128, exp: i32) -> f64 {
    let mut x = m as f64;
    let mut e = exp;
    while e > 0 {
        let step = e.min(1000);
        x *= 2f64.powi(step);
        e -= step;
    }
    while e < 0 {
        let step = (-e).min(1000);
        x *= 2f64.powi(-step);
        e += step;
    }
    x
}

impl EventValues for [crate::value::Value] {
    fn is_valid(&self, i: usize) -> bool {
        !matches!(self[i], crate::value::Value::Null)
    }

    fn int(&self, i: usize) -> i64 {
        use crate::value::Value;
        match self[i] {
            Value::Int32(v) => i64::from(v),
            Value::Int64(v) | Value::Timestamp(v) => v,
            _ => 0,
        }
    }

    fn float(&self, i: usize) -> f64 {
        use crate::value::Value;
        match self[i] {
            Value::Float32(v) => f64::from(v),
            Value::Float64(v) => v,
            Value::Int32(v) => f64::from(v),
            Value::Int64(v) => v as f64,
            _ => f64::NAN,
        }
    }

    fn compare(&self, i: usize, j: usize) -> Ordering {
        compare_values(&self[i], &self[j])
    }
}

/// The order `min` and `max` use on decoded values (the offline path orders arrow arrays the same
/// way: integers and times numerically, floats by IEEE total order, text and bytes by bytes,
/// `false < true`).
pub fn compare_values(a: &crate::value::Value, b: &crate::value::Value) -> Ordering {
    use crate::value::Value;
    match (a, b) {
        (Value::Bool(a), Value::Bool(b)) => a.cmp(b),
        (Value::Int32(a), Value::Int32(b)) => a.cmp(b),
        (Value::Int64(a), Value::Int64(b)) | (Value::Timestamp(a), Value::Timestamp(b)) => a.cmp(b),
        (Value::Float32(a), Value::Float32(b)) => a.total_cmp(b),
        (Value::Float64(a), Value::Float64(b)) => a.total_cmp(b),
        (Value::String(a), Value::String(b)) => a.as_bytes().cmp(b.as_bytes()),
        (Value::Bytes(a), Value::Bytes(b)) => a.cmp(b),
        _ => Ordering::Equal,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::value::Value;

    fn run(
        f: Function,
        w: i64,
        ts: &[i64],
        vals: &[Value],
        dtype: &DType,
        reads: &[i64],
    ) -> Vec<Output> {
        let mut out = vec![Output::Count(-1); reads.len()];
        slide(f, w, Some(dtype), ts, Some(vals), reads, |r, o| out[r] = o);
        out
    }

    #[test]
    fn the_window_excludes_its_start_and_includes_its_end() {
        assert!(in_window(10, 10, 5));
        assert!(in_window(6, 10, 5));
        assert!(!in_window(5, 10, 5), "exactly `window` old is out");
        assert!(!in_window(11, 10, 5), "never from the future");
        assert_eq!(oldest_in_window(10, 5), 6);
    }

    #[test]
    fn count_sum_mean_skip_nulls_and_slide() {
        let ts = [1, 2, 2, 5, 9];
        let vals = [
            Value::Int64(1),
            Value::Null,
            Value::Int64(3),
            Value::Int64(4),
            Value::Int64(10),
        ];
        let d = DType::Int64;
        let reads = [0, 2, 5, 6, 12, 20];
        let mut counts = vec![];
        slide::<[Value]>(Function::Count, 4, None, &ts, None, &reads, |_, o| {
            counts.push(o)
        });
        assert_eq!(
            counts,
            [0, 3, 3, 1, 1, 0].map(Output::Count).to_vec(),
            "events, nulls included, in (t-4, t]"
        );
        assert_eq!(
            run(Function::Sum, 4, &ts, &vals, &d, &reads),
            [None, Some(4), Some(7), Some(4), Some(10), None]
                .map(Output::Int)
                .to_vec()
        );
        assert_eq!(
            run(Function::Mean, 4, &ts, &vals, &d, &reads)[2],
            Output::Float(Some(3.5))
        );
        assert_eq!(
            run(Function::Count, 4, &ts, &vals, &d, &reads)[1],
            Output::Count(2),
            "count of a column counts its non-null values"
        );
    }

    #[test]
    fn min_max_last_pick_events() {
        let ts = [1, 2, 3, 4];
        let vals = [
            Value::Float64(5.0),
            Value::Float64(7.0),
            Value::Null,
            Value::Float64(6.0),
        ];
        let d = DType::Float64;
        let reads = [3, 4, 5, 6];
        assert_eq!(
            run(Function::Max, 3, &ts, &vals, &d, &reads),
            [Some(1), Some(1), Some(3), Some(3)]
                .map(Output::Pick)
                .to_vec()
        );
        assert_eq!(
            run(Function::Min, 3, &ts, &vals, &d, &reads),
            [Some(0), Some(3), Some(3), Some(3)]
                .map(Output::Pick)
                .to_vec()
        );
        assert_eq!(
            run(Function::Last, 2, &ts, &vals, &d, &[3, 4, 5, 7]),
            [Some(1), Some(3), Some(3), None].map(Output::Pick).to_vec(),
            "last skips the null at t=3"
        );
    }

    #[test]
    fn exact_sums_do_not_depend_on_order() {
        let xs = [1e308, 1.0, -1e308, 3.5e-300, 0.1, 0.2, -0.3, 5e-324];
        let mut a = ExactSum::default();
        for x in xs {
            a.add(x);
        }
        let mut b = ExactSum::default();
        for x in xs.iter().rev() {
            b.add(*x);
        }
        b.add(42.0);
        b.sub(42.0);
        assert_eq!(a.value().to_bits(), b.value().to_bits());
        let mut c = ExactSum::default();
        c.add(0.1);
        c.add(0.2);
        assert_eq!(
            c.value(),
            0.30000000000000004,
            "rounded once, like IEEE addition here"
        );
        c.sub(0.1);
        assert_eq!(c.value(), 0.2, "and the removal is exact");
        let mut d = ExactSum::default();
        d.add(-2.5);
        d.add(1.0);
        assert_eq!(d.value(), -1.5);
        let mut e = ExactSum::default();
        e.add(f64::INFINITY);
        assert_eq!(e.value(), f64::INFINITY);
        e.add(f64::NEG_INFINITY);
        assert!(e.value().is_nan());
    }

    proptest::proptest! {
        /// Against an exact reference: integers times powers of two small enough that their
        /// exact sum fits an i128 (and `i128 as f64` rounds to nearest, ties to even), added and
        /// removed in any order.
        #[test]
        fn exact_sums_round_once(
            values in proptest::collection::vec((-(1i64 << 53)..(1i64 << 53), 0u32..40), 0..60),
            removed in proptest::collection::vec(proptest::prelude::any::<bool>(), 60),
        ) {
            let mut sum = ExactSum::default();
            let mut exact: i128 = 0;
            for (m, k) in &values {
                sum.add(*m as f64 * f64::from(1u32 << (k % 31)) );
                exact += i128::from(*m) << (k % 31);
            }
            for ((m, k), gone) in values.iter().zip(&removed) {
                if *gone {
                    sum.sub(*m as f64 * f64::from(1u32 << (k % 31)));
                    exact -= i128::from(*m) << (k % 31);
                }
            }
            proptest::prop_assert_eq!(sum.value().to_bits(), (exact as f64).to_bits());
        }
    }

    #[test]
    fn types_follow_the_function() {
        assert_eq!(
            output_type(Function::Sum, Some(&DType::Int32)),
            Some(DType::Int64)
        );
        assert_eq!(
            output_type(Function::Sum, Some(&DType::Float32)),
            Some(DType::Float64)
        );
        assert_eq!(
            output_type(Function::Last, Some(&DType::String)),
            Some(DType::String)
        );
        assert!(unfit(Function::Sum, &DType::String).is_some());
        assert!(unfit(Function::Max, &DType::String).is_none());
    }
}
