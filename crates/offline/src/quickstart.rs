//! `asof init`: a runnable quickstart repository. The definitions are the files of the project's
//! `feature_repo/` (compiled in, so they cannot drift); the Parquet data is generated, covering the
//! 30 days up to the moment of `init`, with nulls, late-arriving rows and corrections (equal event
//! times, later created times), plus an entity table with labels.

use std::path::Path;
use std::sync::Arc;

use datafusion::arrow::array::{
    ArrayRef, BooleanArray, Float32Array, Int64Array, RecordBatch, StringArray,
    TimestampMicrosecondArray,
};
use datafusion::arrow::datatypes::{DataType, Field, Schema, TimeUnit};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::error::{OfflineError, OfflineResult};
use crate::output::write_table;

/// The repo files `init` writes, by path.
pub const REPO_FILES: [(&str, &str); 4] = [
    (
        "feature_store.yaml",
        include_str!("../../../feature_repo/feature_store.yaml"),
    ),
    (
        "drivers.yaml",
        include_str!("../../../feature_repo/drivers.yaml"),
    ),
    (
        "customers.yaml",
        include_str!("../../../feature_repo/customers.yaml"),
    ),
    (
        "services.yaml",
        include_str!("../../../feature_repo/services.yaml"),
    ),
];

pub const DRIVERS: i64 = 50;
pub const CUSTOMERS: i64 = 30;
const DAYS: i64 = 30;
const ENTITY_ROWS: usize = 1000;
const HOUR_US: i64 = 3_600_000_000;

/// What `generate_data` wrote.
#[derive(Debug, Clone)]
pub struct GeneratedData {
    pub files: Vec<(String, usize)>,
    /// The instant the data ends at (the moment of `init`, rounded down to the second).
    pub now_us: i64,
}

fn ts_field(name: &str, nullable: bool) -> Field {
    Field::new(
        name,
        DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
        nullable,
    )
}

fn ts_array(v: Vec<i64>) -> ArrayRef {
    Arc::new(TimestampMicrosecondArray::from(v).with_timezone("UTC"))
}

/// Writes the sample Parquet files under `dir/data/`, ending at `now_us` (UTC microseconds).
pub fn generate_data(dir: &Path, now_us: i64, seed: u64) -> OfflineResult<GeneratedData> {
    let data = dir.join("data");
    std::fs::create_dir_all(&data).map_err(|e| OfflineError::File {
        path: data.clone(),
        message: e.to_string(),
    })?;
    let mut rng = StdRng::seed_from_u64(seed);
    let now_hour = now_us - now_us.rem_euclid(HOUR_US);
    let start = now_hour - DAYS * 24 * HOUR_US;
    let mut files = Vec::new();

    // Drivers: hourly stats, some hours missing, ~3% null conversion rates, ~2% late rows (created
    // hours after the event), ~1% corrections (same event time, later created, new values).
    let (mut id, mut ts, mut created, mut conv, mut acc, mut trips) =
        (vec![], vec![], vec![], vec![], vec![], vec![]);
    for d in 0..DRIVERS {
        let mut t = start + rng.random_range(0..6) * HOUR_US;
        while t <= now_hour {
            let late = rng.random_bool(0.02);
            let delay = if late {
                rng.random_range(2..12) * HOUR_US
            } else {
                rng.random_range(0..600) * 1_000_000
            };
            id.push(1001 + d);
            ts.push(t);
            created.push(t + delay);
            conv.push((!rng.random_bool(0.03)).then(|| rng.random_range(0.0f32..1.0)));
            acc.push(Some(rng.random_range(0.5f32..1.0)));
            trips.push(rng.random_range(0i64..40));
            if rng.random_bool(0.01) {
                id.push(1001 + d);
                ts.push(t);
                created.push(t + delay + 3_600_000_000);
                conv.push(Some(rng.random_range(0.0f32..1.0)));
                acc.push(Some(rng.random_range(0.5f32..1.0)));
                trips.push(rng.random_range(0i64..40));
            }
            t += rng.random_range(1..4) * HOUR_US;
        }
    }
    let schema = Arc::new(Schema::new(vec![
        Field::new("driver_id", DataType::Int64, false),
        ts_field("event_timestamp", false),
        ts_field("created", false),
        Field::new("conv_rate", DataType::Float32, true),
        Field::new("acc_rate", DataType::Float32, true),
        Field::new("trips_today", DataType::Int64, true),
    ]));
    let n = id.len();
    let batch = RecordBatch::try_new(
        schema,
        vec![
            Arc::new(Int64Array::from(id)),
            ts_array(ts),
            ts_array(created),
            Arc::new(Float32Array::from(conv)),
            Arc::new(Float32Array::from(acc)),
            Arc::new(Int64Array::from(trips)),
        ],
    )?;
    write_table(&data.join("driver_stats.parquet"), &[batch])?;
    files.push(("data/driver_stats.parquet".to_string(), n));

    // Customers: a daily profile, some days missing (so the 7d TTL matters), a few null segments.
    let segments = ["commuter", "tourist", "business", "student"];
    let (mut id, mut ts, mut created, mut bal, mut pax, mut life, mut seg) =
        (vec![], vec![], vec![], vec![], vec![], vec![], vec![]);
    for c in 0..CUSTOMERS {
        let mut count = rng.random_range(0i64..500);
        let mut t = start + rng.random_range(0..24) * HOUR_US;
        while t <= now_hour {
            count += rng.random_range(0..5);
            id.push(201 + c);
            ts.push(t);
            created.push(t + rng.random_range(0..3600) * 1_000_000);
            bal.push(Some(rng.random_range(0.0f32..500.0)));
            pax.push(Some(rng.random_range(1.0f32..4.0)));
            life.push(count);
            seg.push(
                (!rng.random_bool(0.05)).then(|| segments[rng.random_range(0..segments.len())]),
            );
            // Most days, sometimes a gap of up to 10 days.
            t += if rng.random_bool(0.05) {
                rng.random_range(2..10) * 24 * HOUR_US
            } else {
                24 * HOUR_US
            };
        }
    }
    let schema = Arc::new(Schema::new(vec![
        Field::new("customer_id", DataType::Int64, false),
        ts_field("event_timestamp", false),
        ts_field("created", false),
        Field::new("current_balance", DataType::Float32, true),
        Field::new("avg_passenger_count", DataType::Float32, true),
        Field::new("lifetime_trip_count", DataType::Int64, true),
        Field::new("segment", DataType::Utf8, true),
    ]));
    let n = id.len();
    let batch = RecordBatch::try_new(
        schema,
        vec![
            Arc::new(Int64Array::from(id)),
            ts_array(ts),
            ts_array(created),
            Arc::new(Float32Array::from(bal)),
            Arc::new(Float32Array::from(pax)),
            Arc::new(Int64Array::from(life)),
            Arc::new(StringArray::from(seg)),
        ],
    )?;
    write_table(&data.join("customer_profile.parquet"), &[batch])?;
    files.push(("data/customer_profile.parquet".to_string(), n));

    // Entity table: trips to predict completion of, at random instants (some before any data, and
    // a few unknown drivers, so nulls appear), with a label.
    let (mut did, mut cid, mut ts, mut label) = (vec![], vec![], vec![], vec![]);
    for _ in 0..ENTITY_ROWS {
        did.push(if rng.random_bool(0.02) {
            9999
        } else {
            1001 + rng.random_range(0..DRIVERS)
        });
        cid.push(201 + rng.random_range(0..CUSTOMERS));
        ts.push(start + rng.random_range(0..(now_us - start)));
        label.push(rng.random_bool(0.7));
    }
    let schema = Arc::new(Schema::new(vec![
        Field::new("driver_id", DataType::Int64, false),
        Field::new("customer_id", DataType::Int64, false),
        ts_field("event_timestamp", false),
        Field::new("trip_completed", DataType::Boolean, false),
    ]));
    let batch = RecordBatch::try_new(
        schema,
        vec![
            Arc::new(Int64Array::from(did)),
            Arc::new(Int64Array::from(cid)),
            ts_array(ts),
            Arc::new(BooleanArray::from(label)),
        ],
    )?;
    write_table(&data.join("entities.parquet"), &[batch])?;
    files.push(("data/entities.parquet".to_string(), ENTITY_ROWS));
    Ok(GeneratedData { files, now_us })
}
