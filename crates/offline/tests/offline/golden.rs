//! Golden cases with hand-computed answers, and bad input that must fail clearly and write nothing.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use asof_core::spec::{Entity, Feature, FeatureView, Source};
use asof_core::{Catalog, DType, FeatureRequest, Ttl};
use asof_offline::output::write_table;
use asof_offline::{EntityTable, OfflineStore, TrainingSetOptions};
use datafusion::arrow::array::{
    Array, AsArray, Float32Array, Int64Array, RecordBatch, StringArray, TimestampSecondArray,
};
use datafusion::arrow::datatypes::{DataType, Field, Float32Type, Schema, TimeUnit};

fn ts_type() -> DataType {
    DataType::Timestamp(TimeUnit::Second, None)
}

/// A driver view over `rows` of (driver_id, ts, created, conv_rate).
fn setup(dir: &Path, rows: &[(i64, i64, i64, Option<f32>)], ttl: &str) -> Catalog {
    let schema = Arc::new(Schema::new(vec![
        Field::new("driver_id", DataType::Int64, false),
        Field::new("event_timestamp", ts_type(), false),
        Field::new("created", ts_type(), false),
        Field::new("rate", DataType::Float32, true),
    ]));
    let batch = RecordBatch::try_new(
        schema,
        vec![
            Arc::new(Int64Array::from_iter_values(rows.iter().map(|r| r.0))),
            Arc::new(TimestampSecondArray::from_iter_values(
                rows.iter().map(|r| r.1),
            )),
            Arc::new(TimestampSecondArray::from_iter_values(
                rows.iter().map(|r| r.2),
            )),
            Arc::new(Float32Array::from(
                rows.iter().map(|r| r.3).collect::<Vec<_>>(),
            )),
        ],
    )
    .unwrap();
    write_table(&dir.join("stats.parquet"), &[batch]).unwrap();
    let mut c = Catalog::default();
    c.entities.insert(
        "driver".into(),
        Entity {
            name: "driver".into(),
            join_keys: vec!["driver_id".into()],
            description: String::new(),
            tags: BTreeMap::new(),
        },
    );
    c.sources.insert(
        "stats".into(),
        Source {
            name: "stats".into(),
            path: "stats.parquet".into(),
            timestamp_field: "event_timestamp".into(),
            created_timestamp_field: Some("created".into()),
            field_mapping: [("rate".to_string(), "conv_rate".to_string())].into(),
            description: String::new(),
            ..Default::default()
        },
    );
    c.feature_views.insert(
        "driver_stats".into(),
        FeatureView {
            name: "driver_stats".into(),
            entities: vec!["driver".into()],
            source: "stats".into(),
            ttl: Ttl::parse(ttl).unwrap(),
            online: true,
            features: vec![Feature {
                name: "conv_rate".into(),
                dtype: DType::Float32,
                description: String::new(),
            }],
            tags: BTreeMap::new(),
            description: String::new(),
            aggregations: Vec::new(),
            freshness: None,
        },
    );
    c
}

fn entities(rows: &[(i64, i64)]) -> EntityTable {
    let schema = Arc::new(Schema::new(vec![
        Field::new("driver_id", DataType::Int64, false),
        Field::new("event_timestamp", ts_type(), false),
        Field::new("request_id", DataType::Utf8, false),
    ]));
    let batch = RecordBatch::try_new(
        Arc::clone(&schema),
        vec![
            Arc::new(Int64Array::from_iter_values(rows.iter().map(|r| r.0))),
            Arc::new(TimestampSecondArray::from_iter_values(
                rows.iter().map(|r| r.1),
            )),
            Arc::new(StringArray::from_iter_values(
                (0..rows.len()).map(|i| format!("req-{i}")),
            )),
        ],
    )
    .unwrap();
    EntityTable::from_batches("entities.parquet", schema, &[batch]).unwrap()
}

fn run(
    dir: &Path,
    cat: &Catalog,
    e: &EntityTable,
    opts: &TrainingSetOptions,
) -> Result<RecordBatch, asof_offline::OfflineError> {
    let req = FeatureRequest::resolve(cat, &["driver_stats:conv_rate".to_string()], false)?;
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(OfflineStore::new(dir).training_set(e, &req, opts))
}

fn rates(b: &RecordBatch) -> Vec<Option<f32>> {
    let a = b
        .column_by_name("conv_rate")
        .unwrap()
        .as_primitive::<Float32Type>();
    (0..a.len())
        .map(|i| a.is_valid(i).then(|| a.value(i)))
        .collect()
}

#[test]
fn feast_rule_inclusive_bounds_ties_and_created_filter() {
    let dir = tempfile::tempdir().unwrap();
    // driver 1: value 0.1 at t=100 (known at 100), a correction at t=100 known at 150 (0.2), 0.3 at t=200.
    let cat = setup(
        dir.path(),
        &[
            (1, 100, 100, Some(0.1)),
            (1, 100, 150, Some(0.2)),
            (1, 200, 200, Some(0.3)),
            (2, 50, 50, None),
        ],
        "100s",
    );
    let e = entities(&[
        (1, 99),
        (1, 100),
        (1, 199),
        (1, 200),
        (1, 300),
        (1, 301),
        (2, 60),
        (3, 100),
        (1, 100),
    ]);
    let out = run(dir.path(), &cat, &e, &TrainingSetOptions::default()).unwrap();
    assert_eq!(
        rates(&out),
        vec![
            None,
            Some(0.2),
            Some(0.2),
            Some(0.3),
            Some(0.3),
            None,
            None,
            None,
            Some(0.2)
        ],
        "before any row; tie at entity time (later created wins); latest before; exactly ttl old; ttl+1s old; null feature; absent key; duplicate row"
    );
    let ids = out.column_by_name("request_id").unwrap().as_string::<i32>();
    assert_eq!(
        ids.value(8),
        "req-8",
        "pass-through columns keep input order"
    );

    let opts = TrainingSetOptions {
        filter_by_created: true,
        ..Default::default()
    };
    let out = run(dir.path(), &cat, &e, &opts).unwrap();
    assert_eq!(
        rates(&out)[1],
        Some(0.1),
        "at t=100 the correction (created 150) was not yet known"
    );
    assert_eq!(rates(&out)[2], Some(0.2), "by t=199 it was");
}

#[test]
fn bad_input_names_the_column() {
    let dir = tempfile::tempdir().unwrap();
    let cat = setup(dir.path(), &[(1, 100, 100, Some(0.1))], "0");
    let e = entities(&[(1, 100)]);
    let opts = TrainingSetOptions {
        timestamp_column: "event_ts".into(),
        ..Default::default()
    };
    let err = run(dir.path(), &cat, &e, &opts).unwrap_err().to_string();
    assert!(
        err.contains("no timestamp column `event_ts`")
            && err.contains("did you mean `event_timestamp`"),
        "{err}"
    );

    // A string key against an integer source key.
    let schema = Arc::new(Schema::new(vec![
        Field::new("driver_id", DataType::Utf8, false),
        Field::new("event_timestamp", ts_type(), false),
    ]));
    let batch = RecordBatch::try_new(
        Arc::clone(&schema),
        vec![
            Arc::new(StringArray::from(vec!["1"])),
            Arc::new(TimestampSecondArray::from(vec![100])),
        ],
    )
    .unwrap();
    let e = EntityTable::from_batches("e.parquet", schema, &[batch]).unwrap();
    let err = run(dir.path(), &cat, &e, &TrainingSetOptions::default())
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("column `driver_id` is Utf8") && err.contains("Int64"),
        "{err}"
    );

    // Null entity timestamps.
    let schema = Arc::new(Schema::new(vec![
        Field::new("driver_id", DataType::Int64, false),
        Field::new("event_timestamp", ts_type(), true),
    ]));
    let batch = RecordBatch::try_new(
        Arc::clone(&schema),
        vec![
            Arc::new(Int64Array::from(vec![1, 2])),
            Arc::new(TimestampSecondArray::from(vec![Some(100), None])),
        ],
    )
    .unwrap();
    let e = EntityTable::from_batches("e.parquet", schema, &[batch]).unwrap();
    let err = run(dir.path(), &cat, &e, &TrainingSetOptions::default())
        .unwrap_err()
        .to_string();
    assert!(err.contains("1 null value(s), the first in row 2"), "{err}");

    // A corrupt source file.
    std::fs::write(dir.path().join("stats.parquet"), b"not parquet").unwrap();
    let e = entities(&[(1, 100)]);
    let err = run(dir.path(), &cat, &e, &TrainingSetOptions::default())
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("source `stats` (stats.parquet) of view `driver_stats`"),
        "{err}"
    );
}

#[test]
fn a_name_collision_suggests_full_feature_names() {
    let dir = tempfile::tempdir().unwrap();
    let mut cat = setup(dir.path(), &[(1, 100, 100, Some(0.1))], "0");
    let mut other = cat.feature_views["driver_stats"].clone();
    other.name = "driver_stats_copy".into();
    cat.feature_views.insert(other.name.clone(), other);
    let refs = vec![
        "driver_stats:conv_rate".to_string(),
        "driver_stats_copy:conv_rate".to_string(),
    ];
    let err = FeatureRequest::resolve(&cat, &refs, false)
        .unwrap_err()
        .to_string();
    assert!(err.contains("--full-feature-names"), "{err}");
    assert!(FeatureRequest::resolve(&cat, &refs, true).is_ok());
}

#[test]
fn a_large_entity_file_keeps_its_row_order() {
    // Big enough (> DataFusion's 10 MB file-split threshold) that a parallel scan would split it.
    let dir = tempfile::tempdir().unwrap();
    let n = 1_600_000i64;
    let schema = Arc::new(Schema::new(vec![
        Field::new("id", DataType::Int64, false),
        Field::new("noise", DataType::Int64, false),
    ]));
    let mut x: i64 = 0x9E37_79B9;
    let noise: Vec<i64> = (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        })
        .collect();
    let batch = RecordBatch::try_new(
        schema,
        vec![
            Arc::new(Int64Array::from_iter_values(0..n)),
            Arc::new(Int64Array::from(noise)),
        ],
    )
    .unwrap();
    let path = dir.path().join("big.parquet");
    write_table(&path, &[batch]).unwrap();
    assert!(std::fs::metadata(&path).unwrap().len() > 10 * 1024 * 1024);
    let rt = tokio::runtime::Runtime::new().unwrap();
    let table = rt.block_on(EntityTable::read(&path)).unwrap();
    let ids = table
        .batch
        .column(0)
        .as_primitive::<datafusion::arrow::datatypes::Int64Type>();
    assert!(
        ids.values().iter().enumerate().all(|(i, v)| *v == i as i64),
        "rows came back out of order"
    );
}
