//! `asof status`: one screen of views, indexes and streams, exit 3 past a freshness bound.

use crate::util::TestRepo;

#[test]
fn status_names_what_is_past_its_freshness_bound_and_exits_3() {
    let repo = TestRepo::init();
    // Materialized up to two days ago: the newest online event is at least two days old, so a
    // one-hour bound is broken and a thirty-day one is not, whatever the time of day.
    repo.edit(
        "drivers.yaml",
        "    tags: {team: drivers}",
        "    tags: {team: drivers}\n    freshness: {max_lag: 1h}",
    );
    repo.run(&["apply"]).assert().success();
    let day = chrono::Duration::days(1);
    let fmt = |t: chrono::DateTime<chrono::Utc>| t.format("%Y-%m-%dT%H:%M:%S").to_string();
    let (start, end) = (
        fmt(chrono::Utc::now() - day * 29),
        fmt(chrono::Utc::now() - day * 2),
    );
    repo.run(&["materialize", &start, &end]).assert().success();
    let out = repo.run(&["status"]).assert().code(3).get_output().clone();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("view `driver_hourly_stats`"), "{stderr}");
    assert!(
        !stderr.contains("customer_profile"),
        "no bound, never stale: {stderr}"
    );
    let line = stdout
        .lines()
        .find(|l| l.starts_with("driver_hourly_stats"))
        .unwrap();
    assert!(line.ends_with("STALE"), "{line}");

    let out = repo
        .run(&["status", "--output", "json"])
        .assert()
        .code(3)
        .get_output()
        .clone();
    let status: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let view = status["views"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["view"] == "driver_hourly_stats")
        .unwrap();
    assert_eq!(view["stale"], true);
    assert_eq!(view["max_lag_seconds"], 3600);
    assert!(view["rows"].as_u64().unwrap() > 0);
    assert!(view["lag_seconds"].as_f64().unwrap() > 2.0 * 86_400.0);
    assert_eq!(status["stale"][0], "view `driver_hourly_stats`");

    repo.edit("drivers.yaml", "max_lag: 1h", "max_lag: 30d");
    repo.run(&["apply"]).assert().success();
    repo.run(&["status"]).assert().success();
}
