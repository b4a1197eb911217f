//! `asof status`: one screen of views, indexes and streams, exit 3 past a freshness bound.

use crate::util::TestRepo;

#[test]
fn status_names_what_is_past_its_freshness_bound_and_exits_3() {
    let repo = TestRepo::init();
    // The quickstart's newest driver rows are up to an hour old: a one-minute bound is broken,
    // a two-day one is not.
    repo.edit(
        "drivers.yaml",
        "    tags: {team: drivers}",
        "    tags: {team: drivers}\n    freshness: {max_lag: 1m}",
    );
    repo.run(&["apply"]).assert().success();
    repo.run(&["materialize-incremental", "now"])
        .assert()
        .success();
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
    assert_eq!(view["max_lag_seconds"], 60);
    assert!(view["rows"].as_u64().unwrap() > 0);
    assert!(view["lag_seconds"].as_f64().unwrap() > 60.0);
    assert_eq!(status["stale"][0], "view `driver_hourly_stats`");

    repo.edit("drivers.yaml", "max_lag: 1m", "max_lag: 2d");
    repo.run(&["apply"]).assert().success();
    repo.run(&["status"]).assert().success();
}
