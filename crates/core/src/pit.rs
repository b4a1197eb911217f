//! The point-in-time rule, once, for every path. A feature row with event time `ts` (and created time
//! `created`) may answer a read "as of" `as_of` when:
//!
//! * `ts <= as_of` (never a value from the future; inclusive, as in Feast),
//! * `ts >= as_of - ttl` when the view has a TTL (inclusive),
//! * with `filter_by_created`, also `created <= as_of` (only what was known then).
//!
//! Among eligible rows the latest `(ts, created)` wins. A delete event ("this entity has no value
//! from `ts` on") is a row like any other in that choice: when it wins, the read has no value
//! (training sets: nulls; online: NOT_FOUND), and no older value shows through it. The offline ASOF
//! operator and the online read path both call these functions; neither re-derives the rule.

use crate::duration::Ttl;
use crate::time::Nanos;

/// The boolean column that marks delete events in a source's files and in the push log (absent:
/// no row is a delete).
pub const DELETED_COLUMN: &str = "_asof_deleted";

/// Whether the winning row answers with its values: a delete event answers "no value".
#[inline]
pub fn has_value(winner_deleted: bool) -> bool {
    !winner_deleted
}

/// Whether a value with event time `ts` is not in the future of `as_of`.
#[inline]
pub fn is_known_at(ts: Nanos, as_of: Nanos) -> bool {
    ts <= as_of
}

/// The earliest read time a row can answer (TTL aside): its event time or, with
/// `filter_by_created`, the later of its event and created times (absent created: event time).
/// A row is eligible as of `as_of` exactly when `is_known_at(known_from(..), as_of)`.
#[inline]
pub fn known_from(ts: Nanos, created: Option<Nanos>, filter_by_created: bool) -> Nanos {
    match created {
        Some(c) if filter_by_created => ts.max(c),
        _ => ts,
    }
}

/// Whether a value with event time `ts` is fresh enough for a read as of `as_of` (TTL, inclusive).
/// The latest eligible value is checked: if it is too old, every older one is too.
#[inline]
pub fn within_ttl(ts: Nanos, as_of: Nanos, ttl: Ttl) -> bool {
    match ttl.as_nanos() {
        None => true,
        Some(t) => ts >= as_of.saturating_sub(t),
    }
}

/// The earliest event time a read as of `as_of` can use: for pruning scans.
pub fn oldest_useful(as_of: Nanos, ttl: Ttl) -> Option<Nanos> {
    ttl.as_nanos().map(|t| as_of.saturating_sub(t))
}

/// How a stored value relates to a read as of `as_of`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Freshness {
    Fresh,
    /// Newer than the read's time: invisible at `as_of`.
    Future,
    /// Older than the view's TTL allows.
    Expired,
}

pub fn classify(ts: Nanos, as_of: Nanos, ttl: Ttl) -> Freshness {
    if !is_known_at(ts, as_of) {
        Freshness::Future
    } else if !within_ttl(ts, as_of, ttl) {
        Freshness::Expired
    } else {
        Freshness::Fresh
    }
}

/// Orders candidate rows: later event time wins, then later created time (absent = earliest).
#[inline]
pub fn newer(a: (Nanos, Option<Nanos>), b: (Nanos, Option<Nanos>)) -> bool {
    (a.0, a.1.unwrap_or(i64::MIN)) > (b.0, b.1.unwrap_or(i64::MIN))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounds_are_inclusive() {
        let day = Ttl::parse("1d").unwrap();
        let d = 86_400_000_000_000i64;
        assert_eq!(classify(100, 100, day), Freshness::Fresh);
        assert_eq!(classify(101, 100, day), Freshness::Future);
        assert_eq!(
            classify(0, d, day),
            Freshness::Fresh,
            "exactly ttl old is still fresh"
        );
        assert_eq!(classify(-1, d, day), Freshness::Expired);
        assert_eq!(classify(i64::MIN + 1, 0, Ttl::UNLIMITED), Freshness::Fresh);
    }

    #[test]
    fn later_created_breaks_ties() {
        assert!(newer((5, Some(2)), (5, Some(1))));
        assert!(newer((5, Some(1)), (5, None)));
        assert!(!newer((5, Some(1)), (5, Some(1))));
        assert!(newer((6, None), (5, Some(9))));
    }

    #[test]
    fn a_row_is_known_from_its_event_or_created_time() {
        assert_eq!(known_from(5, Some(9), false), 5);
        assert_eq!(known_from(5, Some(9), true), 9, "written after the event");
        assert_eq!(known_from(5, Some(3), true), 5, "created before the event");
        assert_eq!(known_from(5, None, true), 5);
    }
}
