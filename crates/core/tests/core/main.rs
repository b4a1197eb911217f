//! The repo loader and validation never panic or hang on bad input: arbitrary bytes and arbitrary
//! YAML trees in a definitions file and in `feature_store.yaml` give an error (or a repo), nothing
//! else. These run the real loader on real files in a temp folder.

use asof_core::Repo;
use asof_core::validate::{NoProbe, validate};
use proptest::prelude::*;

const CONFIG: &str = "project: fuzz\n";

/// Loads and validates a repo with `config` and one definitions file `defs`.
fn load(config: &[u8], defs: &[u8]) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("feature_store.yaml"), config).unwrap();
    std::fs::write(dir.path().join("defs.yaml"), defs).unwrap();
    if let Ok(repo) = Repo::load(dir.path()) {
        let _ = validate(&repo, &NoProbe);
    }
}

/// YAML trees whose keys are mostly the repo format's own, so that parsing gets deep.
fn yaml_tree() -> impl Strategy<Value = serde_yaml_ng::Value> {
    use serde_yaml_ng::Value;
    let key = prop_oneof![
        Just("entities"),
        Just("sources"),
        Just("feature_views"),
        Just("feature_services"),
        Just("document_indexes"),
        Just("name"),
        Just("join_keys"),
        Just("entities"),
        Just("source"),
        Just("path"),
        Just("timestamp_field"),
        Just("features"),
        Just("dtype"),
        Just("ttl"),
        Just("online"),
        Just("field_mapping"),
        Just("entity"),
        Just("embedding"),
        Just("chunking"),
        Just("provider"),
        Just("dims"),
        Just("x"),
    ];
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|i| Value::Number(i.into())),
        any::<f64>().prop_map(|f| Value::Number(f.into())),
        "[a-z_:<>0-9 ]{0,12}".prop_map(Value::String),
        prop_oneof![
            Just("driver"),
            Just("1d"),
            Just("0"),
            Just("list<int64>"),
            Just("float32"),
            Just("hashing"),
            Just("v1:f"),
            Just("-5s"),
            Just("99999999999999999999w")
        ]
        .prop_map(|s| Value::String(s.to_string())),
    ];
    leaf.prop_recursive(5, 64, 6, move |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Sequence),
            prop::collection::vec((key.clone(), inner), 0..6).prop_map(|kv| {
                Value::Mapping(
                    kv.into_iter()
                        .map(|(k, v)| (Value::String(k.to_string()), v))
                        .collect(),
                )
            }),
        ]
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_bytes_in_a_definitions_file(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
        load(CONFIG.as_bytes(), &bytes);
    }

    #[test]
    fn arbitrary_bytes_in_the_config(bytes in prop::collection::vec(any::<u8>(), 0..256)) {
        load(&bytes, b"");
    }

    #[test]
    fn arbitrary_yaml_trees(tree in yaml_tree(), config in yaml_tree()) {
        let defs = serde_yaml_ng::to_string(&tree).unwrap();
        load(CONFIG.as_bytes(), defs.as_bytes());
        let config = serde_yaml_ng::to_string(&config).unwrap();
        load(config.as_bytes(), defs.as_bytes());
    }

    #[test]
    fn quickstart_files_with_lines_cut_and_swapped(cut in 0usize..60, keep in 0usize..60, swap in 0usize..60) {
        // Near-valid files reach validation and the locator, where panics hide.
        let text = asof_core_quickstart_drivers();
        let mut lines: Vec<&str> = text.lines().collect();
        if cut < lines.len() {
            let end = (cut + keep % 4).min(lines.len());
            lines.drain(cut..end);
        }
        if swap + 1 < lines.len() {
            lines.swap(swap, swap + 1);
        }
        load(CONFIG.as_bytes(), lines.join("\n").as_bytes());
    }
}

fn asof_core_quickstart_drivers() -> &'static str {
    "entities:
  - name: driver
    join_keys: [driver_id]
    description: A driver on the platform

sources:
  - name: driver_stats_source
    path: data/driver_stats.parquet
    timestamp_field: event_timestamp
    created_timestamp_field: created
    field_mapping: {trips_today: avg_daily_trips}

feature_views:
  - name: driver_hourly_stats
    entities: [driver]
    source: driver_stats_source
    ttl: 1d
    online: true
    features:
      - {name: conv_rate, dtype: float32}
      - {name: acc_rate, dtype: float32}
      - {name: avg_daily_trips, dtype: int64}
    tags: {team: drivers}

feature_services:
  - name: driver_activity
    features: [\"driver_hourly_stats:conv_rate\", driver_hourly_stats]

document_indexes:
  - name: docs
    entity: driver
    source: {path: data/docs, format: jsonl}
    embedding: {provider: hashing, model: hashing-v1, dims: 8}
"
}
