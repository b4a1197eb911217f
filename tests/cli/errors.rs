//! One test per class of repo error: each message names the file and line (and column where YAML
//! gives one), and suggests the near match where one exists. Nothing is written on error.

use crate::util::{TestRepo, stderr_of};

/// Runs `apply` expecting failure; checks the registry was not written and returns stderr.
fn apply_fails(r: &TestRepo) -> String {
    let err = stderr_of(&mut r.run(&["apply"]));
    assert!(
        !r.path("data/registry.json").exists(),
        "a failed apply wrote the registry"
    );
    assert!(err.starts_with("error: "), "{err}");
    err
}

#[test]
fn yaml_syntax_error() {
    let r = TestRepo::init();
    r.edit(
        "drivers.yaml",
        "join_keys: [driver_id]",
        "join_keys: [driver_id",
    );
    let err = apply_fails(&r);
    assert!(err.contains("drivers.yaml:"), "{err}");
}

#[test]
fn unknown_field_suggests_the_field() {
    let r = TestRepo::init();
    r.edit("drivers.yaml", "    ttl: 1d", "    ttll: 1d");
    let line = r.line_of("drivers.yaml", "ttll");
    let err = apply_fails(&r);
    assert!(err.contains(&format!("drivers.yaml:{line}:")), "{err}");
    assert!(
        err.contains("unknown field `ttll`") && err.contains("did you mean `ttl`?"),
        "{err}"
    );
}

#[test]
fn duplicate_names_across_files() {
    let r = TestRepo::init();
    r.write(
        "more/extra.yaml",
        "entities:\n  - name: driver\n    join_keys: [driver_id]\n",
    );
    let err = apply_fails(&r);
    assert!(
        err.contains("more/extra.yaml:2:11: duplicate entity `driver`"),
        "{err}"
    );
    assert!(err.contains("also defined at drivers.yaml:2"), "{err}");
}

#[test]
fn unknown_entity_suggests_the_near_match() {
    let r = TestRepo::init();
    r.edit("drivers.yaml", "entities: [driver]", "entities: [drivr]");
    let line = r.line_of("drivers.yaml", "[drivr]");
    let err = apply_fails(&r);
    assert!(err.contains(&format!("drivers.yaml:{line}:16: feature view `driver_hourly_stats` names unknown entity `drivr`; did you mean `driver`?")), "{err}");
}

#[test]
fn unknown_source_and_unknown_feature_in_a_service() {
    let r = TestRepo::init();
    r.edit(
        "drivers.yaml",
        "source: driver_stats_source",
        "source: driver_stat_source",
    );
    r.edit(
        "services.yaml",
        "driver_hourly_stats:acc_rate",
        "driver_hourly_stats:acc_rat",
    );
    let err = apply_fails(&r);
    let src_line = r.line_of("drivers.yaml", "source: driver_stat_source");
    let svc_line = r.line_of("services.yaml", "acc_rat");
    assert!(
        err.contains(&format!("drivers.yaml:{src_line}:"))
            && err.contains("did you mean `driver_stats_source`?"),
        "{err}"
    );
    assert!(
        err.contains(&format!("services.yaml:{svc_line}:"))
            && err.contains("has no feature `acc_rat`; did you mean `acc_rate`?"),
        "{err}"
    );
    assert!(err.contains("2 errors in the feature repository"), "{err}");
}

#[test]
fn bad_duration() {
    let r = TestRepo::init();
    r.edit("drivers.yaml", "ttl: 1d", "ttl: 1y");
    let line = r.line_of("drivers.yaml", "ttl: 1y");
    let err = apply_fails(&r);
    assert!(
        err.contains(&format!("drivers.yaml:{line}:")) && err.contains("bad duration `1y`"),
        "{err}"
    );
}

#[test]
fn unknown_dtype() {
    let r = TestRepo::init();
    r.edit(
        "drivers.yaml",
        "{name: acc_rate, dtype: float32}",
        "{name: acc_rate, dtype: flaot32}",
    );
    let line = r.line_of("drivers.yaml", "flaot32");
    let err = apply_fails(&r);
    assert!(
        err.contains(&format!("drivers.yaml:{line}:")) && err.contains("did you mean `float32`"),
        "{err}"
    );
}

#[test]
fn schema_checks_against_the_parquet() {
    let r = TestRepo::init();
    // A join key the source lacks, a feature column of another type, a timestamp that is no timestamp.
    r.edit(
        "drivers.yaml",
        "join_keys: [driver_id]",
        "join_keys: [driver_key]",
    );
    r.edit(
        "drivers.yaml",
        "{name: avg_daily_trips, dtype: int64}",
        "{name: avg_daily_trips, dtype: float64}",
    );
    r.edit(
        "customers.yaml",
        "timestamp_field: event_timestamp",
        "timestamp_field: lifetime_trip_count",
    );
    let err = apply_fails(&r);
    assert!(
        err.contains("join key `driver_key` is not a column of source `driver_stats_source`")
            && err.contains("did you mean `driver_id`?"),
        "{err}"
    );
    let line = r.line_of("drivers.yaml", "avg_daily_trips, dtype: float64");
    assert!(
        err.contains(&format!("drivers.yaml:{line}:"))
            && err.contains("is declared `float64` but column `trips_today`")
            && err.contains("declare it `dtype: int64`"),
        "{err}"
    );
    let line = r.line_of("customers.yaml", "timestamp_field: lifetime_trip_count");
    assert!(
        err.contains(&format!("customers.yaml:{line}:"))
            && err.contains("must be a timestamp column, but it is Int64"),
        "{err}"
    );
}

#[test]
fn a_missing_column_suggests_field_mapping() {
    let r = TestRepo::init();
    r.edit(
        "drivers.yaml",
        "field_mapping: {trips_today: avg_daily_trips}",
        "field_mapping: {}",
    );
    let err = apply_fails(&r);
    assert!(
        err.contains("column `avg_daily_trips` is not in source") && err.contains("field_mapping"),
        "{err}"
    );
}

#[test]
fn document_index_errors_name_the_line_and_suggest() {
    let r = TestRepo::init();
    r.edit(
        "documents.yaml",
        "\"document_clicks:clicks_7d\"",
        "\"document_clicks:click_7d\"",
    );
    r.edit("documents.yaml", "overlap: 20", "overlap: 200");
    r.edit("documents.yaml", "entity: document ", "entity: documents ");
    let err = apply_fails(&r);
    let line = r.line_of("documents.yaml", "click_7d");
    assert!(
        err.contains(&format!("documents.yaml:{line}:"))
            && err.contains(
                "view `document_clicks` has no feature `click_7d`; did you mean `clicks_7d`?"
            ),
        "{err}"
    );
    assert!(
        err.contains("chunking.overlap (200) must be smaller than max_tokens (120)"),
        "{err}"
    );
    assert!(
        err.contains("names unknown entity `documents`; did you mean `document`?"),
        "{err}"
    );
}

#[test]
fn definitions_that_cannot_mean_anything_are_errors_with_their_line() {
    let r = TestRepo::init();
    // A float join key, a key listed twice, and a project name with a glob character.
    r.write(
        "odd.yaml",
        "entities:\n  - name: rating\n    join_keys: [conv_rate]\n  - name: twice\n    join_keys: [a, a]\nfeature_views:\n  - name: by_rating\n    entities: [rating]\n    source: driver_stats_source\n    features:\n      - {name: acc_rate, dtype: float32}\n",
    );
    r.edit(
        "feature_store.yaml",
        "project: rideshare",
        "project: ride*share",
    );
    let err = apply_fails(&r);
    assert!(
        err.contains("odd.yaml:8:")
            && err.contains("join key `conv_rate` of source `driver_stats_source`")
            && err.contains("Float32 cannot be a join key")
            && err.contains("cast the column to int64 or string"),
        "{err}"
    );
    assert!(
        err.contains("odd.yaml:5:") && err.contains("entity `twice` lists join key `a` twice"),
        "{err}"
    );
    assert!(
        err.contains("feature_store.yaml:2:")
            && err.contains("project name `ride*share` may hold only")
            && err.contains("e.g. `project: ride_share`"),
        "{err}"
    );
}

#[test]
fn aggregation_errors_name_the_line_and_suggest() {
    let r = TestRepo::init();
    let f = "documents.yaml";
    r.edit(
        f,
        "    source: click_events\n",
        "    source: click_events\n    ttl: 2d\n",
    );
    r.edit(
        f,
        "{name: clicks_1h, function: count, window: 1h}",
        "{name: clicks_7d, function: count, window: 0}",
    );
    r.edit(
        f,
        "{name: dwell_max_1d, column: dwell_s, function: max,",
        "{name: dwell_max_1d, column: dwell_z, function: max,",
    );
    r.edit(
        f,
        "    tags: {team: search}\n\ndocument_indexes:",
        "      - {name: ts_sum, column: ts, function: sum, window: 1d}\n    tags: {team: search}\n\ndocument_indexes:",
    );
    let err = apply_fails(&r);
    let at = |needle: &str| format!("{f}:{}:", r.line_of(f, needle));
    for (needle, message) in [
        (
            "ttl: 2d\n",
            "feature view `document_clicks` has a `ttl` and `aggregations`",
        ),
        ("window: 0}", "has two aggregations named `clicks_7d`"),
        ("window: 0}", "the window must be a positive duration"),
        (
            "dwell_z",
            "column `dwell_z` is not in source `click_events`; did you mean `dwell_s`?",
        ),
        (
            "ts_sum",
            "sum needs a numeric column (int32, int64, float32, float64), not timestamp",
        ),
    ] {
        let line = if needle == "ttl: 2d\n" {
            // The document_stats view has a `ttl: 2d` of its own; the aggregated view's is the
            // line after its source.
            format!("{f}:{}:", r.line_of(f, "source: click_events") + 1)
        } else {
            at(needle)
        };
        assert!(
            err.lines()
                .any(|l| l.contains(&line) && l.contains(message)),
            "expected `{message}` at {line} in:\n{err}"
        );
    }
}
