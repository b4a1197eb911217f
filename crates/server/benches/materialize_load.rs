//! Materialization throughput into a real redis-server on loopback: a seeded source of N rows
//! (N/2 distinct keys, 4 features) materialized by the `asof` binary (set `ASOF_BIN`, default
//! `target/release/asof`) through the PIT join. Reports rows/s and feature values/s per size.
//!
//!     cargo build --release --bin asof && cargo bench -p asof-server --bench materialize_load [-- 1e6,1e7]

#![allow(unreachable_pub)]

// The tests' Redis helpers; the cluster one is not used by the benches.
#[allow(dead_code)]
#[path = "../tests/serving/redis_server.rs"]
mod redis_server;

use std::process::Command;
use std::sync::Arc;
use std::time::Instant;

use asof_offline::output::write_table;
use datafusion::arrow::array::{
    Float32Array, Float64Array, Int64Array, RecordBatch, TimestampMicrosecondArray,
};
use datafusion::arrow::datatypes::{DataType, Field, Schema, TimeUnit};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

const DEFS: &str = "
entities: [{name: user, join_keys: [user_id]}]
sources: [{name: src, path: data/events, timestamp_field: ts}]
feature_views:
  - name: user_stats
    entities: [user]
    source: src
    ttl: 30d
    features:
      - {name: a, dtype: float64}
      - {name: b, dtype: float32}
      - {name: c, dtype: int64}
      - {name: d, dtype: float64}
";

fn write_source(dir: &std::path::Path, n: usize, end_us: i64) {
    let mut rng = StdRng::seed_from_u64(3);
    let keys = (n / 2).max(1) as i64;
    std::fs::create_dir_all(dir.join("data/events")).unwrap();
    let chunk = 1_000_000;
    for (part, start) in (0..n).step_by(chunk).enumerate() {
        let m = chunk.min(n - start);
        let schema = Arc::new(Schema::new(vec![
            Field::new("user_id", DataType::Int64, false),
            Field::new(
                "ts",
                DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
                false,
            ),
            Field::new("a", DataType::Float64, false),
            Field::new("b", DataType::Float32, false),
            Field::new("c", DataType::Int64, false),
            Field::new("d", DataType::Float64, false),
        ]));
        let batch = RecordBatch::try_new(
            schema,
            vec![
                Arc::new(Int64Array::from_iter_values(
                    (0..m).map(|_| rng.random_range(0..keys)),
                )),
                Arc::new(
                    TimestampMicrosecondArray::from_iter_values(
                        (0..m).map(|_| end_us - rng.random_range(0..20 * 86_400_000_000i64)),
                    )
                    .with_timezone("UTC"),
                ),
                Arc::new(Float64Array::from_iter_values((0..m).map(|_| rng.random()))),
                Arc::new(Float32Array::from_iter_values((0..m).map(|_| rng.random()))),
                Arc::new(Int64Array::from_iter_values(
                    (0..m).map(|_| rng.random_range(0..1000)),
                )),
                Arc::new(Float64Array::from_iter_values((0..m).map(|_| rng.random()))),
            ],
        )
        .unwrap();
        write_table(
            &dir.join(format!("data/events/part-{part}.parquet")),
            &[batch],
        )
        .unwrap();
    }
}

fn main() {
    let sizes: Vec<usize> = std::env::args()
        .skip(1)
        .find(|a| !a.starts_with('-'))
        .map(|a| {
            a.split(',')
                .map(|s| s.parse::<f64>().expect("sizes like 1e6,1e7") as usize)
                .collect()
        })
        .unwrap_or_else(|| vec![1_000_000, 10_000_000]);
    println!("| source rows | keys written | seconds | rows/s | feature values/s |");
    println!("|---|---|---|---|---|");
    for n in sizes {
        // The tests' RAII redis-server: a free loopback port, stopped on drop.
        let redis = redis_server::RedisServer::start();
        let url = redis.url();
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path();
        std::fs::write(
            dir.join("feature_store.yaml"),
            format!(
                "project: bench\nonline_store: {{type: redis, connection_string: \"{url}\"}}\n"
            ),
        )
        .unwrap();
        std::fs::write(dir.join("defs.yaml"), DEFS).unwrap();
        let end_us = chrono::Utc::now().timestamp_micros();
        write_source(dir, n, end_us);
        let bin = std::env::var("ASOF_BIN").unwrap_or_else(|_| {
            concat!(env!("CARGO_MANIFEST_DIR"), "/../../target/release/asof").to_string()
        });
        let repo_arg = dir.to_str().unwrap();
        let status = Command::new(&bin)
            .args(["--repo", repo_arg, "-q", "apply"])
            .status()
            .expect("the asof binary (ASOF_BIN)");
        assert!(status.success());
        let started = Instant::now();
        let out = Command::new(&bin)
            .args([
                "--repo",
                repo_arg,
                "materialize",
                "--output",
                "json",
                "2000-01-01",
                "now",
            ])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let secs = started.elapsed().as_secs_f64();
        let reports: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        let keys = reports[0]["keys"].as_u64().unwrap() as f64;
        let values = reports[0]["feature_values"].as_u64().unwrap() as f64;
        println!(
            "| {n} | {keys} | {secs:.2} | {:.0} | {:.0} |",
            keys / secs,
            values / secs
        );
        drop(redis);
    }
}
