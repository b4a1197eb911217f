//! A brute-force point-in-time join, written from the rule's statement and nothing else: for each
//! entity row, scan every feature row. Test-only; O(entities × features).

/// A feature row as the oracle sees it: keys, event time, created time, and an id naming the row.
#[derive(Debug, Clone)]
pub(crate) struct FRow {
    pub keys: Vec<Option<String>>,
    pub ts: Option<i64>,
    pub created: Option<i64>,
    pub id: i64,
}

/// The ids of rows that may answer an entity row (ties on `(ts, created)` allow several), or empty
/// when none may.
pub(crate) fn expected(
    rows: &[FRow],
    keys: &[Option<String>],
    t: i64,
    ttl: Option<i64>,
    filter_by_created: bool,
) -> Vec<i64> {
    if keys.iter().any(Option::is_none) {
        return vec![];
    }
    let eligible: Vec<&FRow> = rows
        .iter()
        .filter(|r| r.keys.iter().all(Option::is_some) && r.keys == keys)
        .filter(|r| {
            r.ts.is_some_and(|ts| ts <= t && ttl.is_none_or(|ttl| ts >= t - ttl))
        })
        .filter(|r| !filter_by_created || r.created.is_none_or(|c| c <= t))
        .collect();
    let key = |r: &FRow| (r.ts.unwrap(), r.created.unwrap_or(i64::MIN));
    let Some(best) = eligible.iter().map(|r| key(r)).max() else {
        return vec![];
    };
    eligible
        .iter()
        .filter(|r| key(r) == best)
        .map(|r| r.id)
        .collect()
}
