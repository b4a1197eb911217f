//! `asof init`: a runnable quickstart repository. The definitions are the files of the project's
//! `feature_repo/` (compiled in, so they cannot drift); the Parquet data is generated, covering the
//! 30 days up to the moment of `init`, with nulls, late-arriving rows and corrections (equal event
//! times, later created times), plus an entity table with labels.

use std::path::Path;
use std::sync::Arc;

use datafusion::arrow::array::{
    ArrayRef, BooleanArray, Float32Array, Float64Array, Int64Array, RecordBatch, StringArray,
    TimestampMicrosecondArray,
};
use datafusion::arrow::datatypes::{DataType, Field, Schema, TimeUnit};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::error::{OfflineError, OfflineResult};
use crate::output::write_table;

/// The repo files `init` writes, by path.
pub const REPO_FILES: [(&str, &str); 5] = [
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
    (
        "documents.yaml",
        include_str!("../../../feature_repo/documents.yaml"),
    ),
];

pub const DRIVERS: i64 = 50;

/// The id of the quickstart's `i`-th document (`0..DOCUMENTS`): its topic and number.
pub fn doc_id(i: usize) -> String {
    format!("{}-{i:03}", TOPICS[i % TOPICS.len()].0)
}
pub const CUSTOMERS: i64 = 30;
pub const DOCUMENTS: usize = 120;
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
    files.extend(generate_documents(&data, start, now_hour, &mut rng)?);
    Ok(GeneratedData { files, now_us })
}

const TOPICS: [(&str, &[&str]); 6] = [
    (
        "payments",
        &[
            "payment", "card", "refund", "invoice", "charge", "receipt", "billing", "wallet",
        ],
    ),
    (
        "account",
        &[
            "account",
            "password",
            "login",
            "email",
            "verification",
            "profile",
            "locked",
            "reset",
        ],
    ),
    (
        "trips",
        &[
            "trip",
            "driver",
            "pickup",
            "route",
            "cancel",
            "fare",
            "rating",
            "destination",
        ],
    ),
    (
        "safety",
        &[
            "safety",
            "emergency",
            "report",
            "incident",
            "insurance",
            "support",
            "share",
            "contact",
        ],
    ),
    (
        "app",
        &[
            "app",
            "update",
            "crash",
            "notification",
            "location",
            "gps",
            "battery",
            "settings",
        ],
    ),
    (
        "business",
        &[
            "business", "team", "expense", "policy", "admin", "report", "travel", "budget",
        ],
    ),
];
const FILLER: [&str; 16] = [
    "the", "to", "your", "you", "can", "if", "in", "and", "a", "of", "for", "is", "when", "then",
    "open", "tap",
];

/// Help-center articles (JSON lines), their daily stats (Parquet), and labelled queries for
/// `asof index eval`: each query uses words of one article and names it as the relevant one.
fn generate_documents(
    data: &Path,
    start: i64,
    now_hour: i64,
    rng: &mut StdRng,
) -> OfflineResult<Vec<(String, usize)>> {
    let io = |path: &Path, e: std::io::Error| OfflineError::File {
        path: path.to_path_buf(),
        message: e.to_string(),
    };
    let docs_dir = data.join("docs");
    std::fs::create_dir_all(&docs_dir).map_err(|e| io(&docs_dir, e))?;
    let mut lines = Vec::with_capacity(DOCUMENTS);
    let mut queries = Vec::new();
    for i in 0..DOCUMENTS {
        let (topic, words) = TOPICS[i % TOPICS.len()];
        let doc_id = doc_id(i);
        let key = [
            words[rng.random_range(0..words.len())],
            words[rng.random_range(0..words.len())],
        ];
        let title = format!("How to handle {} {} issues (article {i})", key[0], key[1]);
        let mut body = vec![title.clone()];
        for _ in 0..rng.random_range(80..260) {
            body.push(if rng.random_bool(0.45) {
                words[rng.random_range(0..words.len())].to_string()
            } else if rng.random_bool(0.08) {
                format!("{topic}{i}")
            } else {
                FILLER[rng.random_range(0..FILLER.len())].to_string()
            });
        }
        let updated = start + rng.random_range(0..(now_hour - start).max(1));
        lines.push(
            serde_json::json!({
                "doc_id": doc_id,
                "text": body.join(" "),
                "updated_at": asof_core::time::format_nanos(updated * 1000),
                "title": title,
                "topic": topic,
            })
            .to_string(),
        );
        if i % 4 == 0 {
            queries.push(
                serde_json::json!({
                    "query": format!("{} {} {topic}{i}", key[0], key[1]),
                    "relevant": [doc_id],
                })
                .to_string(),
            );
        }
    }
    let path = docs_dir.join("help_articles.jsonl");
    asof_core::atomic::write_atomic(&path, |w| w.write_all((lines.join("\n") + "\n").as_bytes()))?;
    let qpath = data.join("queries.jsonl");
    asof_core::atomic::write_atomic(&qpath, |w| {
        w.write_all((queries.join("\n") + "\n").as_bytes())
    })?;

    // Daily stats per document; popularity drifts, clicks are a rolling count.
    let (mut id, mut ts, mut created, mut pop, mut clicks) =
        (vec![], vec![], vec![], vec![], vec![]);
    for i in 0..DOCUMENTS {
        let mut p: f64 = rng.random_range(0.0..1.0);
        let mut t = start + rng.random_range(0..24) * HOUR_US;
        while t <= now_hour {
            p = (p + rng.random_range(-0.05..0.05)).clamp(0.0, 1.0);
            id.push(doc_id(i));
            ts.push(t);
            created.push(t + rng.random_range(0..1800) * 1_000_000);
            pop.push(Some(p));
            clicks.push(Some(rng.random_range(0i64..5000)));
            t += 24 * HOUR_US;
        }
    }
    let schema = Arc::new(Schema::new(vec![
        Field::new("doc_id", DataType::Utf8, false),
        ts_field("event_timestamp", false),
        ts_field("created", false),
        Field::new("popularity", DataType::Float64, true),
        Field::new("clicks_7d", DataType::Int64, true),
    ]));
    let n = id.len();
    let batch = RecordBatch::try_new(
        schema,
        vec![
            Arc::new(StringArray::from(id)),
            ts_array(ts),
            ts_array(created),
            Arc::new(Float64Array::from(pop)),
            Arc::new(Int64Array::from(clicks)),
        ],
    )?;
    write_table(&data.join("document_stats.parquet"), &[batch])?;

    // Raw click events: a few per document per day, each with a dwell time.
    let (mut id, mut ts, mut dwell) = (vec![], vec![], vec![]);
    for i in 0..DOCUMENTS {
        let rate = rng.random_range(1..12);
        let mut t = start;
        while t <= now_hour {
            for _ in 0..rng.random_range(0..rate) {
                let at = t + rng.random_range(0..24 * HOUR_US);
                if at > now_hour {
                    continue;
                }
                id.push(doc_id(i));
                ts.push(at);
                dwell.push(
                    (rng.random_range(0.0..1.0) < 0.95).then(|| rng.random_range(1.0..300.0)),
                );
            }
            t += 24 * HOUR_US;
        }
    }
    let clicks_n = id.len();
    let schema = Arc::new(Schema::new(vec![
        Field::new("doc_id", DataType::Utf8, false),
        ts_field("ts", false),
        Field::new("dwell_s", DataType::Float64, true),
    ]));
    let batch = RecordBatch::try_new(
        schema,
        vec![
            Arc::new(StringArray::from(id)),
            ts_array(ts),
            Arc::new(Float64Array::from(dwell)),
        ],
    )?;
    write_table(&data.join("click_events.parquet"), &[batch])?;
    Ok(vec![
        ("data/docs/help_articles.jsonl".to_string(), DOCUMENTS),
        ("data/document_stats.parquet".to_string(), n),
        ("data/click_events.parquet".to_string(), clicks_n),
        ("data/queries.jsonl".to_string(), queries.len()),
    ])
}
