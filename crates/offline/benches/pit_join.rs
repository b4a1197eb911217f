//! Criterion: the point-in-time join kernel (Parquet scan + PitJoinExec) on seeded
//! in-memory-sized data written to Parquet once per size.

use std::collections::BTreeMap;
use std::sync::Arc;

use asof_core::spec::{Entity, Feature, FeatureView, Source};
use asof_core::{Catalog, DType, FeatureRequest, Ttl};
use asof_offline::output::write_table;
use asof_offline::{EntityTable, OfflineStore, TrainingSetOptions};
use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use datafusion::arrow::array::{Float64Array, Int64Array, RecordBatch, TimestampSecondArray};
use datafusion::arrow::datatypes::{DataType, Field, Schema, TimeUnit};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

fn ts() -> DataType {
    DataType::Timestamp(TimeUnit::Second, None)
}

fn setup(dir: &std::path::Path, entities: usize, features: usize) -> (Catalog, EntityTable) {
    let mut rng = StdRng::seed_from_u64(7);
    let keys = (features / 100).max(10) as i64;
    let span = 60 * 86_400;
    let schema = Arc::new(Schema::new(vec![
        Field::new("k", DataType::Int64, false),
        Field::new("ts", ts(), false),
        Field::new("created", ts(), false),
        Field::new("x", DataType::Float64, true),
    ]));
    let t: Vec<i64> = (0..features).map(|_| rng.random_range(0..span)).collect();
    let batch = RecordBatch::try_new(
        schema,
        vec![
            Arc::new(Int64Array::from_iter_values(
                (0..features).map(|_| rng.random_range(0..keys)),
            )),
            Arc::new(TimestampSecondArray::from(t.clone())),
            Arc::new(TimestampSecondArray::from(t)),
            Arc::new(Float64Array::from_iter_values(
                (0..features).map(|_| rng.random::<f64>()),
            )),
        ],
    )
    .unwrap();
    write_table(&dir.join("f.parquet"), &[batch]).unwrap();
    let eschema = Arc::new(Schema::new(vec![
        Field::new("k", DataType::Int64, false),
        Field::new("event_timestamp", ts(), false),
    ]));
    let e = RecordBatch::try_new(
        Arc::clone(&eschema),
        vec![
            Arc::new(Int64Array::from_iter_values(
                (0..entities).map(|_| rng.random_range(0..keys)),
            )),
            Arc::new(TimestampSecondArray::from_iter_values(
                (0..entities).map(|_| rng.random_range(0..span)),
            )),
        ],
    )
    .unwrap();
    let mut c = Catalog::default();
    c.entities.insert(
        "e".into(),
        Entity {
            name: "e".into(),
            join_keys: vec!["k".into()],
            description: String::new(),
            tags: BTreeMap::new(),
        },
    );
    c.sources.insert(
        "s".into(),
        Source {
            name: "s".into(),
            path: "f.parquet".into(),
            timestamp_field: "ts".into(),
            created_timestamp_field: Some("created".into()),
            field_mapping: BTreeMap::new(),
            description: String::new(),
            ..Default::default()
        },
    );
    c.feature_views.insert(
        "v".into(),
        FeatureView {
            name: "v".into(),
            entities: vec!["e".into()],
            source: "s".into(),
            ttl: Ttl::parse("2d").unwrap(),
            online: true,
            features: vec![Feature {
                name: "x".into(),
                dtype: DType::Float64,
                description: String::new(),
            }],
            tags: BTreeMap::new(),
            description: String::new(),
            aggregations: Vec::new(),
            freshness: None,
        },
    );
    (
        c,
        EntityTable::from_batches("entities", eschema, &[e]).unwrap(),
    )
}

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let mut group = c.benchmark_group("pit_join");
    group.sample_size(10);
    for (entities, features) in [(10_000usize, 100_000usize), (100_000, 1_000_000)] {
        let dir = tempfile::tempdir().unwrap();
        let (catalog, table) = setup(dir.path(), entities, features);
        let request = FeatureRequest::resolve(&catalog, &["v".to_string()], false).unwrap();
        let store = OfflineStore::new(dir.path());
        let opts = TrainingSetOptions::default();
        group.throughput(criterion::Throughput::Elements(
            (entities + features) as u64,
        ));
        group.bench_with_input(
            BenchmarkId::from_parameter(format!("{entities}x{features}")),
            &(),
            |b, _| {
                b.iter(|| {
                    rt.block_on(store.training_set(&table, &request, &opts))
                        .unwrap()
                })
            },
        );
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
