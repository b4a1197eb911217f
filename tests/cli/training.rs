//! Training sets from the CLI on the quickstart data, and the leakage audit.

use std::sync::Arc;

use datafusion::arrow::array::{Array, AsArray, RecordBatch};
use datafusion::arrow::datatypes::{Int64Type, TimestampMicrosecondType};
use datafusion::parquet::arrow::ArrowWriter;
use datafusion::parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

use crate::util::{TestRepo, stderr_of, stdout_of};

fn read(path: &std::path::Path) -> RecordBatch {
    let f = std::fs::File::open(path).unwrap();
    let reader = ParquetRecordBatchReaderBuilder::try_new(f)
        .unwrap()
        .build()
        .unwrap();
    let batches: Vec<RecordBatch> = reader.map(|b| b.unwrap()).collect();
    datafusion::arrow::compute::concat_batches(&batches[0].schema(), &batches).unwrap()
}

#[test]
fn quickstart_training_set_passes_the_audit_and_an_as_of_now_join_fails_it() {
    let r = TestRepo::applied();
    let out = r.path("train.parquet");
    let summary = stdout_of(&mut r.run(&[
        "training-set",
        "--entities",
        "data/entities.parquet",
        "--service",
        "driver_activity",
        "--output",
        "train.parquet",
        "--with-timestamps",
    ]));
    assert!(summary.contains("1,000 rows"), "{summary}");
    let t = read(&out);
    assert_eq!(t.num_rows(), 1000);
    let names: Vec<String> = t
        .schema()
        .fields()
        .iter()
        .map(|f| f.name().clone())
        .collect();
    assert_eq!(
        names,
        [
            "driver_id",
            "customer_id",
            "event_timestamp",
            "trip_completed",
            "conv_rate",
            "acc_rate",
            "current_balance",
            "avg_passenger_count",
            "lifetime_trip_count",
            "segment",
            "driver_hourly_stats__event_timestamp",
            "customer_profile__event_timestamp"
        ]
    );
    // Unknown drivers (9999) get nulls; most known ones get a value.
    let ids = t.column(0).as_primitive::<Int64Type>();
    let conv = t
        .column_by_name("driver_hourly_stats__event_timestamp")
        .unwrap();
    let unknown_matched = (0..t.num_rows())
        .filter(|&i| ids.value(i) == 9999 && conv.is_valid(i))
        .count();
    assert_eq!(unknown_matched, 0);
    assert!(
        conv.null_count() < 200,
        "{} of 1000 rows unmatched",
        conv.null_count()
    );

    let ok = stdout_of(&mut r.run(&["audit", "train.parquet"]));
    assert!(ok.starts_with("OK train.parquet: 1000 rows"), "{ok}");

    // The classic leak: every row gets the newest feature value "as of now".
    let event = t
        .column_by_name("event_timestamp")
        .unwrap()
        .as_primitive::<TimestampMicrosecondType>();
    let newest = (0..t.num_rows()).map(|i| event.value(i)).max().unwrap();
    let leaked_ts =
        datafusion::arrow::array::TimestampMicrosecondArray::from(vec![newest; t.num_rows()])
            .with_timezone("UTC");
    let mut cols = t.columns().to_vec();
    let idx = t
        .schema()
        .index_of("driver_hourly_stats__event_timestamp")
        .unwrap();
    cols[idx] = Arc::new(leaked_ts);
    let fields: Vec<_> = t
        .schema()
        .fields()
        .iter()
        .map(|f| {
            f.as_ref().clone().with_data_type(
                if f.name() == "driver_hourly_stats__event_timestamp" {
                    cols[idx].data_type().clone()
                } else {
                    f.data_type().clone()
                },
            )
        })
        .collect();
    let leaked = RecordBatch::try_new(
        Arc::new(datafusion::arrow::datatypes::Schema::new(fields)),
        cols,
    )
    .unwrap();
    let f = std::fs::File::create(r.path("leaky.parquet")).unwrap();
    let mut w = ArrowWriter::try_new(f, leaked.schema(), None).unwrap();
    w.write(&leaked).unwrap();
    w.close().unwrap();
    let err = stderr_of(&mut r.run(&["audit", "leaky.parquet"]));
    assert!(
        err.contains("feature value(s) from the future in 1 column(s)"),
        "{err}"
    );
}

#[test]
fn training_set_errors_write_nothing() {
    let r = TestRepo::applied();
    let err = stderr_of(&mut r.run(&[
        "training-set",
        "--entities",
        "data/entities.parquet",
        "--features",
        "driver_hourly_stats:conv_rat",
        "--output",
        "t.parquet",
    ]));
    assert!(
        err.contains("has no feature `conv_rat`; did you mean `conv_rate`?"),
        "{err}"
    );
    let err = stderr_of(&mut r.run(&[
        "training-set",
        "--entities",
        "missing.parquet",
        "--features",
        "driver_hourly_stats",
        "--output",
        "t.parquet",
    ]));
    assert!(
        err.contains("entity table missing.parquet: no such file"),
        "{err}"
    );
    let err = stderr_of(&mut r.run(&[
        "training-set",
        "--entities",
        "data/entities.parquet",
        "--features",
        "customer_profile",
        "--output",
        "t.parquet",
        "--timestamp-column",
        "ts",
    ]));
    assert!(err.contains("no timestamp column `ts`"), "{err}");
    assert!(!r.path("t.parquet").exists());
    let leftovers: Vec<_> = std::fs::read_dir(&r.dir)
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().ends_with(".tmp"))
        .collect();
    assert!(leftovers.is_empty());
}

#[test]
fn csv_in_and_out() {
    let r = TestRepo::applied();
    let now = chrono::Utc::now().format("%Y-%m-%dT%H:%M:%S");
    r.write(
        "entities.csv",
        &format!("driver_id,event_timestamp,label\n1001,{now},1\n9999,{now},0\n"),
    );
    stdout_of(&mut r.run(&[
        "training-set",
        "--entities",
        "entities.csv",
        "--features",
        "driver_hourly_stats:acc_rate",
        "--output",
        "out.csv",
    ]));
    let text = r.read("out.csv");
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines[0], "driver_id,event_timestamp,label,acc_rate");
    assert_eq!(lines.len(), 3);
    assert!(
        !lines[1].ends_with(','),
        "driver 1001 has a value within the 1d TTL: {}",
        lines[1]
    );
    assert!(
        lines[2].ends_with(",0,"),
        "unknown driver gets an empty value: {}",
        lines[2]
    );
}

#[test]
fn outputs_hold_plain_strings_and_pq_inputs_are_read() {
    let r = TestRepo::applied();
    std::fs::copy(r.path("data/entities.parquet"), r.path("entities.pq")).unwrap();
    stdout_of(&mut r.run(&[
        "training-set",
        "--entities",
        "entities.pq",
        "--service",
        "driver_activity",
        "--output",
        "train.pq",
    ]));
    let t = read(&r.path("train.pq"));
    assert_eq!(t.num_rows(), 1000);
    let segment = t.schema().field_with_name("segment").unwrap().clone();
    assert_eq!(
        segment.data_type(),
        &datafusion::arrow::datatypes::DataType::Utf8,
        "strings are written as plain Utf8, never DataFusion's Utf8View"
    );
}

/// `training-set` of the quickstart's driver_activity service into `output`, with `extra` flags.
fn driver_activity(r: &TestRepo, output: &str, extra: &[&str]) -> assert_cmd::Command {
    let args = [
        &[
            "training-set",
            "--entities",
            "data/entities.parquet",
            "--service",
            "driver_activity",
            "--output",
            output,
        ][..],
        extra,
    ]
    .concat();
    r.run(&args)
}

#[test]
fn a_memory_limit_too_small_fails_with_what_was_needed_and_writes_nothing() {
    let r = TestRepo::applied();
    let err = stderr_of(&mut driver_activity(
        &r,
        "train.parquet",
        &["--memory-limit", "4KiB"],
    ));
    assert!(
        err.contains("out of memory budget")
            && err.contains("memory limit 4 KiB")
            && err.contains("PitJoinExec")
            && err.contains("--memory-limit"),
        "{err}"
    );
    assert!(!r.path("train.parquet").exists());
    let leftovers: Vec<_> = std::fs::read_dir(&r.dir)
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().ends_with(".tmp"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
    let bad = driver_activity(&r, "t.parquet", &["--memory-limit", "lots"])
        .assert()
        .failure()
        .code(2)
        .get_output()
        .stderr
        .clone();
    assert!(String::from_utf8_lossy(&bad).contains("`4GiB`"));
}

#[test]
fn sources_as_spark_writes_them_and_csv_sources() {
    let r = TestRepo::init();
    // A Spark-style folder: data files beside `_SUCCESS`, checksum and temporary files.
    let dir = r.path("data/driver_stats");
    std::fs::create_dir_all(dir.join("_temporary")).unwrap();
    std::fs::rename(
        r.path("data/driver_stats.parquet"),
        dir.join("part-00000.pq"),
    )
    .unwrap();
    std::fs::write(dir.join("_SUCCESS"), b"").unwrap();
    std::fs::write(dir.join(".part-00000.pq.crc"), b"junk").unwrap();
    std::fs::write(dir.join("_temporary/part-00001.parquet"), b"half-written").unwrap();
    r.edit(
        "drivers.yaml",
        "path: data/driver_stats.parquet",
        "path: data/driver_stats",
    );
    // A CSV source with naive timestamps (read as UTC).
    r.write(
        "data/ratings.csv",
        "driver_id,event_timestamp,stars\n1001,2024-05-01T00:00:00,4.5\n1001,2024-05-03T00:00:00,3.0\n1002,2024-05-02T12:00:00,5.0\n",
    );
    r.write(
        "ratings.yaml",
        "sources:\n  - {name: ratings_src, path: data/ratings.csv, timestamp_field: event_timestamp}\nfeature_views:\n  - name: ratings\n    entities: [driver]\n    source: ratings_src\n    features:\n      - {name: stars, dtype: float64}\n",
    );
    r.write(
        "entities.csv",
        "driver_id,event_timestamp\n1001,2024-05-02T00:00:00\n1001,2024-05-04T00:00:00\n1002,2024-05-02T00:00:00\n",
    );
    stdout_of(&mut r.run(&["apply"]));
    stdout_of(&mut r.run(&[
        "training-set",
        "--entities",
        "entities.csv",
        "--features",
        "ratings:stars",
        "--output",
        "t.parquet",
    ]));
    let t = read(&r.path("t.parquet"));
    let stars = t
        .column_by_name("stars")
        .unwrap()
        .as_primitive::<datafusion::arrow::datatypes::Float64Type>();
    assert_eq!(
        (0..3)
            .map(|i| stars.is_valid(i).then(|| stars.value(i)))
            .collect::<Vec<_>>(),
        [Some(4.5), Some(3.0), None],
        "as of each row's time: the May 1 rating, the May 3 one, and none yet for 1002"
    );
    let summary = stdout_of(&mut driver_activity(&r, "train.parquet", &[]));
    assert!(summary.contains("1,000 rows"), "{summary}");
}
