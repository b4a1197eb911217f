//! Property tests: the training set equals the brute-force oracle on random tables with ties at the
//! entity time, ties on event time broken by created time, rows exactly `ttl` old, absent keys, null
//! features, null keys and timestamps, duplicate and unsorted entity rows, two views with different
//! (and composite) keys, mixed timestamp units and zones, tiny batches, and empty inputs.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use asof_core::spec::{Entity, Feature, FeatureView, Source};
use asof_core::{Catalog, DType, FeatureRequest, Ttl};
use asof_offline::output::write_table;
use asof_offline::{EntityTable, OfflineStore, TrainingSetOptions};

use crate::training_set;
use datafusion::arrow::array::{
    Array, ArrayRef, AsArray, Float64Array, Int32Array, Int64Array, RecordBatch, StringArray,
    TimestampMicrosecondArray, TimestampMillisecondArray, TimestampNanosecondArray,
    TimestampSecondArray,
};
use datafusion::arrow::datatypes::{DataType, Field, Float64Type, Int64Type, Schema};
use proptest::prelude::*;

use crate::oracle::{FRow, expected};

const SEC: i64 = 1_000_000_000;

#[derive(Debug, Clone)]
pub(crate) struct Row {
    k1: Option<i64>,
    k2: Option<String>,
    ts: Option<i64>,
    created: Option<i64>,
    maybe: Option<f64>,
}

fn feature_rows() -> impl Strategy<Value = Vec<Row>> {
    prop::collection::vec(
        (
            prop::option::weighted(0.9, 0i64..4),
            prop::option::weighted(
                0.9,
                prop::sample::select(vec!["x".to_string(), "y".to_string()]),
            ),
            prop::option::weighted(0.95, 0i64..20),
            prop::option::weighted(0.8, 0i64..25),
            prop::option::weighted(0.8, -5.0f64..5.0),
        )
            .prop_map(|(k1, k2, ts, created, maybe)| Row {
                k1,
                k2,
                ts,
                created,
                maybe,
            }),
        0..40,
    )
}

fn entity_rows() -> impl Strategy<Value = Vec<(Option<i32>, Option<String>, i64)>> {
    prop::collection::vec(
        (
            prop::option::weighted(0.95, 0i32..5),
            prop::option::weighted(
                0.95,
                prop::sample::select(vec!["x".to_string(), "y".to_string(), "z".to_string()]),
            ),
            0i64..25,
        ),
        0..30,
    )
}

/// A timestamp column of seconds in one of several units and zones.
fn ts_array(secs: &[Option<i64>], unit: u8, tz: Option<&str>) -> ArrayRef {
    let scaled = |m: i64| secs.iter().map(|s| s.map(|s| s * m)).collect::<Vec<_>>();
    let a: ArrayRef = match unit % 4 {
        0 => Arc::new(TimestampSecondArray::from(scaled(1)).with_timezone_opt(tz)),
        1 => Arc::new(TimestampMillisecondArray::from(scaled(1_000)).with_timezone_opt(tz)),
        2 => Arc::new(TimestampMicrosecondArray::from(scaled(1_000_000)).with_timezone_opt(tz)),
        _ => Arc::new(TimestampNanosecondArray::from(scaled(1_000_000_000)).with_timezone_opt(tz)),
    };
    a
}

fn zone(z: u8) -> Option<&'static str> {
    [None, Some("UTC"), Some("+02:00"), Some("America/New_York")][z as usize % 4]
}

/// Writes a source: `k1, [k2], ts, created, id, maybe`, split into two files to cross file and
/// row-group boundaries.
fn write_source(dir: &Path, name: &str, rows: &[Row], composite: bool, unit: u8, z: u8) {
    let folder = dir.join(name);
    std::fs::create_dir_all(&folder).unwrap();
    let half = rows.len() / 2;
    for (part, chunk) in [&rows[..half], &rows[half..]].iter().enumerate() {
        let offset = if part == 0 { 0 } else { half as i64 };
        let mut fields = vec![Field::new("k1", DataType::Int64, true)];
        let mut cols: Vec<ArrayRef> = vec![Arc::new(Int64Array::from(
            chunk.iter().map(|r| r.k1).collect::<Vec<_>>(),
        ))];
        if composite {
            fields.push(Field::new("k2", DataType::Utf8, true));
            cols.push(Arc::new(StringArray::from(
                chunk.iter().map(|r| r.k2.clone()).collect::<Vec<_>>(),
            )));
        }
        let ts = ts_array(
            &chunk.iter().map(|r| r.ts).collect::<Vec<_>>(),
            unit,
            zone(z),
        );
        fields.push(Field::new("ts", ts.data_type().clone(), true));
        cols.push(ts);
        let created = ts_array(
            &chunk.iter().map(|r| r.created).collect::<Vec<_>>(),
            unit + 1,
            zone(z + 1),
        );
        fields.push(Field::new("created", created.data_type().clone(), true));
        cols.push(created);
        fields.push(Field::new("id", DataType::Int64, false));
        cols.push(Arc::new(Int64Array::from_iter_values(
            (0..chunk.len() as i64).map(|i| i + offset),
        )));
        fields.push(Field::new("maybe", DataType::Float64, true));
        cols.push(Arc::new(Float64Array::from(
            chunk.iter().map(|r| r.maybe).collect::<Vec<_>>(),
        )));
        let batch = RecordBatch::try_new(Arc::new(Schema::new(fields)), cols).unwrap();
        if batch.num_rows() > 0 || part == 0 {
            write_table(&folder.join(format!("part-{part}.parquet")), &[batch]).unwrap();
        }
    }
}

fn catalog(ttl_a: Ttl, ttl_b: Ttl) -> Catalog {
    let mut c = Catalog::default();
    for (name, key) in [("a", "k1"), ("b", "k2")] {
        c.entities.insert(
            name.into(),
            Entity {
                name: name.into(),
                join_keys: vec![key.into()],
                description: String::new(),
                tags: BTreeMap::new(),
            },
        );
    }
    for (view, entities, ttl) in [("va", vec!["a"], ttl_a), ("vb", vec!["a", "b"], ttl_b)] {
        let source = format!("{view}_src");
        c.sources.insert(
            source.clone(),
            Source {
                name: source.clone(),
                path: format!("{view}/"),
                timestamp_field: "ts".into(),
                created_timestamp_field: Some("created".into()),
                field_mapping: BTreeMap::new(),
                description: String::new(),
                ..Default::default()
            },
        );
        c.feature_views.insert(
            view.into(),
            FeatureView {
                name: view.into(),
                entities: entities.into_iter().map(String::from).collect(),
                source,
                ttl,
                online: true,
                features: vec![
                    Feature {
                        name: "id".into(),
                        dtype: DType::Int64,
                        description: String::new(),
                    },
                    Feature {
                        name: "maybe".into(),
                        dtype: DType::Float64,
                        description: String::new(),
                    },
                ],
                tags: BTreeMap::new(),
                description: String::new(),
                aggregations: Vec::new(),
                freshness: None,
            },
        );
    }
    c
}

fn oracle_rows(rows: &[Row], composite: bool) -> Vec<FRow> {
    rows.iter()
        .enumerate()
        .map(|(i, r)| {
            let mut keys = vec![r.k1.map(|k| k.to_string())];
            if composite {
                keys.push(r.k2.clone());
            }
            FRow {
                keys,
                ts: r.ts.map(|t| t * SEC),
                created: r.created.map(|c| c * SEC),
                id: i as i64,
            }
        })
        .collect()
}

#[allow(clippy::too_many_arguments)]
fn check_case(
    rows_a: Vec<Row>,
    rows_b: Vec<Row>,
    entities: Vec<(Option<i32>, Option<String>, i64)>,
    ttl_a: u64,
    ttl_b: u64,
    units: (u8, u8, u8),
    filter_by_created: bool,
    batch_size: usize,
    key_partitions: Option<usize>,
) -> Result<(), TestCaseError> {
    let dir = tempfile::tempdir().unwrap();
    write_source(dir.path(), "va", &rows_a, false, units.0, units.1);
    write_source(dir.path(), "vb", &rows_b, true, units.1, units.2);
    let ttl = |s: u64| Ttl::from_seconds(s);
    let cat = catalog(ttl(ttl_a), ttl(ttl_b));
    let refs = vec!["va".to_string(), "vb".to_string()];
    let request = FeatureRequest::resolve(&cat, &refs, true).unwrap();

    let secs: Vec<Option<i64>> = entities.iter().map(|e| Some(e.2)).collect();
    let ets = ts_array(&secs, units.2, zone(units.0));
    let schema = Arc::new(Schema::new(vec![
        Field::new("k1", DataType::Int32, true),
        Field::new("k2", DataType::Utf8, true),
        Field::new("event_timestamp", ets.data_type().clone(), false),
        Field::new("label", DataType::Int64, false),
    ]));
    let batch = RecordBatch::try_new(
        Arc::clone(&schema),
        vec![
            Arc::new(Int32Array::from(
                entities.iter().map(|e| e.0).collect::<Vec<_>>(),
            )),
            Arc::new(StringArray::from(
                entities.iter().map(|e| e.1.clone()).collect::<Vec<_>>(),
            )),
            ets,
            Arc::new(Int64Array::from_iter_values(0..entities.len() as i64)),
        ],
    )
    .unwrap();
    let table = EntityTable::from_batches("entities", schema, &[batch]).unwrap();
    // Three partitions: the two source files are probed by separate tasks and merged.
    let store = OfflineStore::with_tuning(dir.path(), batch_size, Some(3));
    let opts = TrainingSetOptions {
        with_timestamps: true,
        filter_by_created,
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
    let names: Vec<String> = out
        .schema()
        .fields()
        .iter()
        .map(|f| f.name().clone())
        .collect();
    prop_assert_eq!(
        names,
        vec![
            "k1",
            "k2",
            "event_timestamp",
            "label",
            "va__id",
            "va__maybe",
            "vb__id",
            "vb__maybe",
            "va__event_timestamp",
            "vb__event_timestamp"
        ]
    );
    let labels = out.column(3).as_primitive::<Int64Type>();
    for (view, rows, composite, ttl_s) in
        [("va", &rows_a, false, ttl_a), ("vb", &rows_b, true, ttl_b)]
    {
        let frows = oracle_rows(rows, composite);
        let ids = out
            .column_by_name(&format!("{view}__id"))
            .unwrap()
            .as_primitive::<Int64Type>()
            .clone();
        let maybes = out
            .column_by_name(&format!("{view}__maybe"))
            .unwrap()
            .as_primitive::<Float64Type>()
            .clone();
        let tss = asof_offline::timestamps::to_nanos(
            out.column_by_name(&format!("{view}__event_timestamp"))
                .unwrap(),
        )
        .unwrap();
        for (i, e) in entities.iter().enumerate() {
            prop_assert_eq!(labels.value(i), i as i64, "row order is the input order");
            let mut keys = vec![e.0.map(|k| k.to_string())];
            if composite {
                keys.push(e.1.clone());
            }
            let ttl_ns = (ttl_s > 0).then(|| ttl_s as i64 * SEC);
            let want = expected(&frows, &keys, e.2 * SEC, ttl_ns, filter_by_created);
            if want.is_empty() {
                prop_assert!(
                    ids.is_null(i),
                    "{view} row {i} {e:?}: expected no match, got id {}",
                    ids.value(i)
                );
                prop_assert!(tss.is_null(i));
            } else {
                prop_assert!(
                    ids.is_valid(i),
                    "{view} row {i} {e:?}: expected one of {want:?}, got null"
                );
                let id = ids.value(i);
                prop_assert!(
                    want.contains(&id),
                    "{view} row {i} {e:?}: expected one of {want:?}, got {id}"
                );
                let r = &rows[id as usize];
                prop_assert_eq!(maybes.is_valid(i).then(|| maybes.value(i)), r.maybe);
                prop_assert_eq!(tss.value(i), r.ts.unwrap() * SEC);
            }
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 96, ..ProptestConfig::default() })]

    #[test]
    fn training_set_matches_the_oracle(
        rows_a in feature_rows(),
        rows_b in feature_rows(),
        entities in entity_rows(),
        ttl_a in prop::sample::select(vec![0u64, 3, 7]),
        ttl_b in prop::sample::select(vec![0u64, 5]),
        units in (0u8..4, 0u8..4, 0u8..4),
        filter_by_created in any::<bool>(),
        batch_size in prop::sample::select(vec![1usize, 3, 8192]),
        key_partitions in prop::sample::select(vec![None, Some(1), Some(4)]),
    ) {
        check_case(rows_a, rows_b, entities, ttl_a, ttl_b, units, filter_by_created, batch_size, key_partitions)?;
    }
}
