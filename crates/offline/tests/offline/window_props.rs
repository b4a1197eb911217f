//! Property tests of windowed aggregations: every function over several windows equals a
//! brute-force oracle written from the rule's text (`t - window < ts <= t`, nulls skipped, `last` by
//! `(ts, created, input order)`), on random events with ties, nulls, events exactly `window` old,
//! unsorted input, keys with no events, duplicate and unsorted entity rows, tiny and large batches
//! and several partition counts.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use asof_core::spec::{Aggregation, Entity, Feature, FeatureView, Source};
use asof_core::window::Function;
use asof_core::{Catalog, DType, FeatureRequest, Ttl};
use asof_offline::output::write_table;
use asof_offline::{EntityTable, OfflineStore, TrainingSetOptions};

use crate::training_set;
use datafusion::arrow::array::{
    Array, ArrayRef, AsArray, Float64Array, Int64Array, RecordBatch, StringArray,
    TimestampNanosecondArray,
};
use datafusion::arrow::datatypes::{DataType, Field, Float64Type, Int64Type, Schema, TimeUnit};
use proptest::prelude::*;

const SEC: i64 = 1_000_000_000;

#[derive(Debug, Clone)]
struct Event {
    key: Option<i64>,
    ts: Option<i64>,
    created: Option<i64>,
    dwell: Option<f64>,
    n: Option<i64>,
    page: Option<String>,
}

fn events() -> impl Strategy<Value = Vec<Event>> {
    prop::collection::vec(
        (
            prop::option::weighted(0.95, 0i64..4),
            prop::option::weighted(0.97, 0i64..30),
            prop::option::weighted(0.5, 0i64..3),
            // Quarter steps: every sum is exact in f64, so the oracle may add naively.
            prop::option::weighted(0.8, (-20i32..20).prop_map(|q| f64::from(q) * 0.25)),
            prop::option::weighted(0.8, -50i64..50),
            prop::option::weighted(
                0.8,
                prop::sample::select(vec!["a".to_string(), "b".into(), "c".into()]),
            ),
        )
            .prop_map(|(key, ts, created, dwell, n, page)| Event {
                key,
                ts,
                created,
                dwell,
                n,
                page,
            }),
        0..60,
    )
}

/// (name, function, column, window seconds)
const AGGS: &[(&str, Function, Option<&str>, i64)] = &[
    ("events_5s", Function::Count, None, 5),
    ("dwell_count_10s", Function::Count, Some("dwell"), 10),
    ("dwell_sum_5s", Function::Sum, Some("dwell"), 5),
    ("n_sum_10s", Function::Sum, Some("n"), 10),
    ("dwell_mean_10s", Function::Mean, Some("dwell"), 10),
    ("n_mean_5s", Function::Mean, Some("n"), 5),
    ("dwell_min_7s", Function::Min, Some("dwell"), 7),
    ("n_max_3s", Function::Max, Some("n"), 3),
    ("page_min_10s", Function::Min, Some("page"), 10),
    ("page_max_5s", Function::Max, Some("page"), 5),
    ("page_last_5s", Function::Last, Some("page"), 5),
    ("dwell_last_10s", Function::Last, Some("dwell"), 10),
];

fn column_type(c: &str) -> DType {
    match c {
        "dwell" => DType::Float64,
        "n" => DType::Int64,
        _ => DType::String,
    }
}

fn catalog() -> Catalog {
    let mut c = Catalog::default();
    c.entities.insert(
        "user".into(),
        Entity {
            name: "user".into(),
            join_keys: vec!["k".into()],
            description: String::new(),
            tags: BTreeMap::new(),
        },
    );
    c.sources.insert(
        "clicks".into(),
        Source {
            name: "clicks".into(),
            path: "clicks/".into(),
            timestamp_field: "ts".into(),
            created_timestamp_field: Some("created".into()),
            ..Default::default()
        },
    );
    let aggregations: Vec<Aggregation> = AGGS
        .iter()
        .map(|(name, f, col, w)| Aggregation {
            name: (*name).into(),
            column: col.map(String::from),
            function: *f,
            window: Ttl::from_seconds(*w as u64),
            dtype: col.map(column_type),
        })
        .collect();
    let features = aggregations
        .iter()
        .map(|a| Feature {
            name: a.name.clone(),
            dtype: a.output_type().unwrap(),
            description: String::new(),
        })
        .collect();
    c.feature_views.insert(
        "activity".into(),
        FeatureView {
            name: "activity".into(),
            entities: vec!["user".into()],
            source: "clicks".into(),
            ttl: Ttl::UNLIMITED,
            online: true,
            features,
            aggregations,
            tags: BTreeMap::new(),
            description: String::new(),
            freshness: None,
        },
    );
    c
}

/// Writes the events in two files (input order: the first file, then the second).
fn write_events(dir: &Path, events: &[Event]) {
    let folder = dir.join("clicks");
    std::fs::create_dir_all(&folder).unwrap();
    let half = events.len() / 2;
    let ts_type = DataType::Timestamp(TimeUnit::Nanosecond, Some("UTC".into()));
    for (part, chunk) in [&events[..half], &events[half..]].iter().enumerate() {
        let nanos = |f: &dyn Fn(&Event) -> Option<i64>| -> ArrayRef {
            Arc::new(
                TimestampNanosecondArray::from(
                    chunk
                        .iter()
                        .map(|e| f(e).map(|s| s * SEC))
                        .collect::<Vec<_>>(),
                )
                .with_timezone("UTC"),
            )
        };
        let schema = Arc::new(Schema::new(vec![
            Field::new("k", DataType::Int64, true),
            Field::new("ts", ts_type.clone(), true),
            Field::new("created", ts_type.clone(), true),
            Field::new("dwell", DataType::Float64, true),
            Field::new("n", DataType::Int64, true),
            Field::new("page", DataType::Utf8, true),
        ]));
        let batch = RecordBatch::try_new(
            schema,
            vec![
                Arc::new(Int64Array::from(
                    chunk.iter().map(|e| e.key).collect::<Vec<_>>(),
                )),
                nanos(&|e| e.ts),
                nanos(&|e| e.created),
                Arc::new(Float64Array::from(
                    chunk.iter().map(|e| e.dwell).collect::<Vec<_>>(),
                )),
                Arc::new(Int64Array::from(
                    chunk.iter().map(|e| e.n).collect::<Vec<_>>(),
                )),
                Arc::new(StringArray::from(
                    chunk.iter().map(|e| e.page.clone()).collect::<Vec<_>>(),
                )),
            ],
        )
        .unwrap();
        if batch.num_rows() > 0 || part == 0 {
            write_table(&folder.join(format!("part-{part}.parquet")), &[batch]).unwrap();
        }
    }
}

/// What one aggregate is, by the rule's text, for a read of `key` at `t` (seconds).
#[derive(Debug, Clone, PartialEq)]
enum Want {
    Int(Option<i64>),
    Float(Option<f64>),
    Text(Option<String>),
}

fn oracle(events: &[Event], agg: (&str, Function, Option<&str>, i64), key: i64, t: i64) -> Want {
    let (_, f, col, w) = agg;
    // In the window, in (ts, created, input order).
    let mut inside: Vec<(usize, &Event)> = events
        .iter()
        .enumerate()
        .filter(|(_, e)| e.key == Some(key) && e.ts.is_some_and(|ts| ts <= t && ts > t - w))
        .collect();
    inside.sort_by_key(|(i, e)| (e.ts, e.created.unwrap_or(i64::MIN), *i));
    let Some(col) = col else {
        return Want::Int(Some(inside.len() as i64));
    };
    match col {
        "dwell" => {
            let vals: Vec<f64> = inside.iter().filter_map(|(_, e)| e.dwell).collect();
            match f {
                Function::Count => Want::Int(Some(vals.len() as i64)),
                Function::Sum => Want::Float((!vals.is_empty()).then(|| vals.iter().sum())),
                Function::Mean => Want::Float(
                    (!vals.is_empty()).then(|| vals.iter().sum::<f64>() / vals.len() as f64),
                ),
                Function::Min => Want::Float(vals.iter().copied().reduce(f64::min)),
                Function::Max => Want::Float(vals.iter().copied().reduce(f64::max)),
                Function::Last => Want::Float(vals.last().copied()),
            }
        }
        "n" => {
            let vals: Vec<i64> = inside.iter().filter_map(|(_, e)| e.n).collect();
            match f {
                Function::Count => Want::Int(Some(vals.len() as i64)),
                Function::Sum => Want::Int((!vals.is_empty()).then(|| vals.iter().sum())),
                Function::Mean => Want::Float(
                    (!vals.is_empty()).then(|| vals.iter().sum::<i64>() as f64 / vals.len() as f64),
                ),
                Function::Min => Want::Int(vals.iter().copied().min()),
                Function::Max => Want::Int(vals.iter().copied().max()),
                Function::Last => Want::Int(vals.last().copied()),
            }
        }
        _ => {
            let vals: Vec<&String> = inside.iter().filter_map(|(_, e)| e.page.as_ref()).collect();
            let pick = match f {
                Function::Min => vals.iter().min().copied(),
                Function::Max => vals.iter().max().copied(),
                Function::Last => vals.last().copied(),
                _ => unreachable!("only min, max and last of text"),
            };
            Want::Text(pick.cloned())
        }
    }
}

fn got(column: &ArrayRef, i: usize) -> Want {
    match column.data_type() {
        DataType::Int64 => {
            let a = column.as_primitive::<Int64Type>();
            Want::Int(a.is_valid(i).then(|| a.value(i)))
        }
        DataType::Float64 => {
            let a = column.as_primitive::<Float64Type>();
            Want::Float(a.is_valid(i).then(|| a.value(i)))
        }
        _ => {
            let a = column.as_string::<i32>();
            Want::Text(a.is_valid(i).then(|| a.value(i).to_string()))
        }
    }
}

fn check(
    events: Vec<Event>,
    entities: Vec<(Option<i64>, i64)>,
    batch_size: usize,
    partitions: usize,
    key_partitions: Option<usize>,
) -> Result<(), TestCaseError> {
    let dir = tempfile::tempdir().unwrap();
    write_events(dir.path(), &events);
    let cat = catalog();
    let request = FeatureRequest::resolve(&cat, &["activity".to_string()], false).unwrap();
    let ts_type = DataType::Timestamp(TimeUnit::Nanosecond, Some("UTC".into()));
    let schema = Arc::new(Schema::new(vec![
        Field::new("k", DataType::Int64, true),
        Field::new("event_timestamp", ts_type, false),
    ]));
    let batch = RecordBatch::try_new(
        Arc::clone(&schema),
        vec![
            Arc::new(Int64Array::from(
                entities.iter().map(|e| e.0).collect::<Vec<_>>(),
            )),
            Arc::new(
                TimestampNanosecondArray::from(
                    entities.iter().map(|e| e.1 * SEC).collect::<Vec<_>>(),
                )
                .with_timezone("UTC"),
            ),
        ],
    )
    .unwrap();
    let table = EntityTable::from_batches("entities", schema, &[batch]).unwrap();
    let store = OfflineStore::with_tuning(dir.path(), batch_size, Some(partitions));
    let opts = TrainingSetOptions {
        with_timestamps: true,
        ..Default::default()
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let out = rt
        .block_on(training_set(
            &store,
            &table,
            &request,
            &opts,
            key_partitions,
        ))
        .unwrap();
    prop_assert_eq!(out.num_rows(), entities.len());
    let newest = asof_offline::timestamps::to_nanos(
        out.column_by_name("activity__event_timestamp").unwrap(),
    )
    .unwrap();
    let longest = AGGS.iter().map(|a| a.3).max().unwrap();
    for (i, (key, t)) in entities.iter().enumerate() {
        for agg in AGGS {
            let column = out.column_by_name(agg.0).unwrap();
            let want = match key {
                Some(k) => oracle(&events, *agg, *k, *t),
                // A null key has no events: counts are 0, the rest null.
                None => oracle(&[], *agg, 0, *t),
            };
            prop_assert_eq!(
                got(column, i),
                want,
                "{} for entity row {} (k={:?}, t={}s)",
                agg.0,
                i,
                key,
                t
            );
        }
        let want_newest = events
            .iter()
            .filter(|e| e.key.is_some() && e.key == *key)
            .filter_map(|e| e.ts)
            .filter(|&ts| ts <= *t && ts > t - longest)
            .max()
            .map(|s| s * SEC);
        prop_assert_eq!(newest.is_valid(i).then(|| newest.value(i)), want_newest);
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 96, ..ProptestConfig::default() })]

    #[test]
    fn aggregations_match_the_oracle(
        events in events(),
        entities in prop::collection::vec((prop::option::weighted(0.95, 0i64..5), 0i64..36), 0..30),
        batch_size in prop::sample::select(vec![1usize, 4, 8192]),
        partitions in prop::sample::select(vec![1usize, 2, 3]),
        key_partitions in prop::sample::select(vec![None, Some(1), Some(4)]),
    ) {
        check(events, entities, batch_size, partitions, key_partitions)?;
    }
}
