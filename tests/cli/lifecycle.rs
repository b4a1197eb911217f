//! init → plan → apply → plan (no changes) → edit → plan (update) → delete a view → apply (deletion).

use crate::util::{TestRepo, asof, stdout_of};

#[test]
fn repo_lifecycle_shows_every_change() {
    let r = TestRepo::init();
    let registry = r.path("data/registry.json");

    let plan = stdout_of(&mut r.run(&["plan"]));
    assert!(
        plan.contains("+ feature_view driver_hourly_stats (create)"),
        "{plan}"
    );
    assert!(
        plan.contains("+ feature_service driver_activity (create)"),
        "{plan}"
    );
    assert!(!registry.exists(), "plan writes nothing");

    let apply = stdout_of(&mut r.run(&["apply"]));
    assert!(
        apply.contains("13 to create, 0 to update, 0 to delete"),
        "{apply}"
    );
    let mat = stdout_of(&mut r.run(&["materialize", "2000-01-01", "now"]));
    assert!(mat.contains("Materialized into embedded"), "{mat}");
    let first = std::fs::read_to_string(&registry).unwrap();

    let plan = stdout_of(&mut r.run(&["plan"]));
    assert!(plan.contains("No changes: 13 objects"), "{plan}");
    stdout_of(&mut r.run(&["apply"]));
    assert_eq!(
        std::fs::read_to_string(&registry).unwrap(),
        first,
        "an apply without changes rewrites nothing"
    );

    r.edit("drivers.yaml", "ttl: 1d", "ttl: 2d");
    let plan = stdout_of(&mut r.run(&["plan"]));
    assert!(
        plan.contains("~ feature_view driver_hourly_stats (update: ttl)"),
        "{plan}"
    );
    assert!(
        plan.contains("0 to create, 1 to update, 0 to delete, 12 unchanged"),
        "{plan}"
    );

    // Delete the customer view (and the service that uses it).
    let customers = r.read("customers.yaml");
    let without_view = &customers[..customers.find("feature_views:").unwrap()];
    r.write("customers.yaml", without_view);
    r.edit("services.yaml", r#", "customer_profile""#, "");
    let apply = stdout_of(&mut r.run(&["apply"]));
    assert!(
        apply.contains("- feature_view customer_profile (delete)"),
        "{apply}"
    );
    let removed: usize = apply
        .lines()
        .filter(|l| l.contains("online rows of deleted view customer_profile"))
        .find_map(|l| l.strip_prefix("Removed ")?.split(' ').next()?.parse().ok())
        .unwrap_or_else(|| panic!("no removal line in {apply}"));
    assert!(removed > 0, "{apply}");
    assert!(
        apply.contains("~ feature_service driver_activity (update: features)"),
        "{apply}"
    );

    let json = stdout_of(&mut r.run(&["ls", "views", "--output", "json"]));
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    let views = v["feature_views"].as_array().unwrap();
    assert_eq!(
        views.len(),
        3,
        "driver_hourly_stats, document_stats and document_clicks remain"
    );
    let driver = views
        .iter()
        .find(|v| v["spec"]["name"] == "driver_hourly_stats")
        .unwrap();
    assert_eq!(driver["spec"]["ttl"], "2d");
    assert!(driver["created_at"].as_str().unwrap() < driver["updated_at"].as_str().unwrap());

    let described = stdout_of(&mut r.run(&[
        "describe",
        "view",
        "driver_hourly_stats",
        "--output",
        "json",
    ]));
    let d: serde_json::Value = serde_json::from_str(&described).unwrap();
    assert_eq!(d["spec"]["features"].as_array().unwrap().len(), 3);
    assert_eq!(d["definition_hash"].as_str().unwrap().len(), 64);
}

#[test]
fn usage_errors_exit_2_and_failures_exit_1() {
    asof().arg("training-set").assert().code(2);
    asof()
        .args(["--repo", "/nonexistent/asof-repo", "plan"])
        .assert()
        .code(1);
}

#[test]
fn init_refuses_an_existing_repo() {
    let r = TestRepo::init();
    let err = crate::util::stderr_of(asof().arg("init").arg(&r.dir));
    assert!(
        err.contains("already a feature repository; pass --data-only"),
        "{err}"
    );
    asof()
        .arg("init")
        .arg("--data-only")
        .arg(&r.dir)
        .assert()
        .success();
}
