//! Several asof processes on one repo at once, as in real use: `serve` running while `apply`,
//! `materialize` and `index sync` write beside it, commands racing each other, and commands killed
//! mid-write. Every test here runs real processes of the release-under-test binary.

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::security::redis_server::RedisServer;
use crate::server::Server;
use crate::util::{TestRepo, stdout_of};

/// `asof query` for one driver; `Ok(json)` or `Err(stderr)`.
fn query(r: &TestRepo, server: &Server, features: &str) -> Result<serde_json::Value, String> {
    let out = r
        .run(&[
            "query",
            "--server",
            &server.url(),
            "--features",
            features,
            "--entity",
            "driver_id=1001",
            "--output",
            "json",
        ])
        .output()
        .unwrap();
    if out.status.success() {
        Ok(serde_json::from_slice(&out.stdout).unwrap())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).into_owned())
    }
}

fn status_of(v: &serde_json::Value, feature: &str) -> String {
    v[0][feature]["status"].as_str().unwrap_or("?").to_string()
}

const COPY_VIEW: &str = "feature_views:
  - name: driver_copy
    entities: [driver]
    source: driver_stats_source
    ttl: 1d
    features:
      - {name: conv_rate, dtype: float32}
";

#[test]
fn serve_follows_apply_and_sees_materialize_from_other_processes_on_the_embedded_store() {
    serve_follows_apply_and_sees_materialize(&TestRepo::applied());
}

#[test]
fn serve_follows_apply_and_sees_materialize_from_other_processes_on_redis() {
    let redis = RedisServer::start();
    let r = TestRepo::applied();
    let config = r.read("feature_store.yaml");
    let start = config.find("online_store:").unwrap();
    let end = start + config[start..].find('\n').unwrap();
    r.write(
        "feature_store.yaml",
        &format!(
            "{}online_store: {{type: redis, connection_string: \"{}\"}}{}",
            &config[..start],
            redis.url(),
            &config[end..]
        ),
    );
    serve_follows_apply_and_sees_materialize(&r);
}

fn serve_follows_apply_and_sees_materialize(r: &TestRepo) {
    let server = Server::start(r, &[], &[]);

    let before = query(r, &server, "driver_hourly_stats:conv_rate").unwrap();
    assert_eq!(status_of(&before, "conv_rate"), "NOT_FOUND", "{before}");

    // Another process writes the embedded store while the server has it open.
    stdout_of(&mut r.run(&["materialize-incremental", "now"]));
    let after = query(r, &server, "driver_hourly_stats:conv_rate").unwrap();
    assert_eq!(status_of(&after, "conv_rate"), "PRESENT", "{after}");

    // A view applied while the server runs is served without a restart.
    let err = query(r, &server, "driver_copy:conv_rate").unwrap_err();
    assert!(err.contains("unknown feature view `driver_copy`"), "{err}");
    r.write("copy.yaml", COPY_VIEW);
    stdout_of(&mut r.run(&["apply"]));
    let new = query(r, &server, "driver_copy:conv_rate").unwrap();
    assert_eq!(status_of(&new, "conv_rate"), "NOT_FOUND", "{new}");
    stdout_of(&mut r.run(&["materialize-incremental", "now", "--views", "driver_copy"]));
    let new = query(r, &server, "driver_copy:conv_rate").unwrap();
    assert_eq!(status_of(&new, "conv_rate"), "PRESENT", "{new}");
    let metrics = server.metrics();
    assert!(
        metrics.contains(r#"asof_view_freshness_seconds{view="driver_copy"}"#),
        "the freshness gauge follows materialize: {metrics}"
    );

    // `online: false` views are refused, naming the view.
    r.edit(
        "copy.yaml",
        "    ttl: 1d\n",
        "    ttl: 1d\n    online: false\n",
    );
    stdout_of(&mut r.run(&["apply"]));
    let err = query(r, &server, "driver_copy:conv_rate").unwrap_err();
    assert!(
        err.contains("driver_copy") && err.contains("online: false"),
        "{err}"
    );

    // Deleting the view removes its online rows (the server keeps the store open meanwhile) and
    // the server stops serving it.
    std::fs::remove_file(r.path("copy.yaml")).unwrap();
    let applied = stdout_of(&mut r.run(&["apply"]));
    assert!(
        applied.contains("Removed 50 online rows of deleted view driver_copy"),
        "{applied}"
    );
    let err = query(r, &server, "driver_copy:conv_rate").unwrap_err();
    assert!(err.contains("unknown feature view `driver_copy`"), "{err}");
    let metrics = server.metrics();
    assert!(
        !metrics.contains(r#"view="driver_copy""#),
        "a deleted view's gauge goes away: {metrics}"
    );
    let still = query(r, &server, "driver_hourly_stats:conv_rate").unwrap();
    assert_eq!(status_of(&still, "conv_rate"), "PRESENT", "{still}");
    assert!(server.terminate().success());
}

fn spawn(r: &TestRepo, args: &[&str]) -> Child {
    Command::new(env!("CARGO_BIN_EXE_asof"))
        .arg("--repo")
        .arg(&r.dir)
        .args(args)
        .env_remove("ASOF_REPO")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

fn wait_ok(child: Child, what: &str) {
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{what} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn racing_apply_and_materialize_never_lose_a_change() {
    let r = TestRepo::applied();
    let rounds = 4;
    for round in 0..rounds {
        r.write(
            &format!("extra_{round}.yaml"),
            &COPY_VIEW.replace("driver_copy", &format!("extra_{round}")),
        );
        // Each of these reads the registry, works, and writes it back.
        let a = spawn(
            &r,
            &[
                "materialize-incremental",
                "now",
                "--views",
                "driver_hourly_stats",
            ],
        );
        let b = spawn(
            &r,
            &[
                "materialize-incremental",
                "now",
                "--views",
                "customer_profile",
            ],
        );
        let c = spawn(&r, &["apply"]);
        wait_ok(a, "materialize driver_hourly_stats");
        wait_ok(b, "materialize customer_profile");
        wait_ok(c, "apply");
    }
    let registry: serde_json::Value = serde_json::from_str(&r.read("data/registry.json")).unwrap();
    for view in ["driver_hourly_stats", "customer_profile"] {
        assert!(
            registry["materialization"][view]["watermark"].is_string(),
            "the watermark of {view} was lost: {}",
            registry["materialization"]
        );
    }
    for round in 0..rounds {
        assert!(
            registry["feature_views"][format!("extra_{round}")].is_object(),
            "view extra_{round} was applied but is not in the registry"
        );
    }
}

/// Writes a corpus big enough that a sync takes seconds, so a test can act while it runs.
fn big_corpus(r: &TestRepo, docs: usize, tag: &str) {
    let mut out = String::new();
    for d in 0..docs {
        let words: Vec<String> = (0..360)
            .map(|w| format!("w{}{tag}", (d * 7919 + w * 104_729) % 5003))
            .collect();
        out.push_str(
            &serde_json::json!({
                "doc_id": format!("doc-{d}"),
                "text": words.join(" "),
                "updated_at": "2024-05-01T00:00:00Z",
            })
            .to_string(),
        );
        out.push('\n');
    }
    r.write("data/docs/help_articles.jsonl", &out);
}

/// Waits until `child` has run for `d`, asserting it is still running (the test would be vacuous
/// otherwise).
fn still_running_after(child: &mut Child, d: Duration, what: &str) {
    std::thread::sleep(d);
    assert!(
        child.try_wait().unwrap().is_none(),
        "{what} finished too soon for this test; make its corpus bigger"
    );
}

#[test]
fn a_sync_killed_mid_write_leaves_no_lock_and_a_readable_index() {
    let r = TestRepo::applied();
    stdout_of(&mut r.run(&["index", "sync", "help_articles"]));
    big_corpus(&r, 1500, "a");
    let mut sync = spawn(&r, &["index", "sync", "help_articles"]);
    still_running_after(&mut sync, Duration::from_millis(800), "the sync");
    sync.kill().unwrap(); // SIGKILL: no destructor, no cleanup
    sync.wait().unwrap();

    // The index still answers from its last complete generation, and a new sync is not locked out.
    let status = stdout_of(&mut r.run(&["index", "status", "help_articles"]));
    assert!(status.contains("live v1"), "{status}");
    let out = stdout_of(&mut r.run(&["index", "sync", "help_articles", "--output", "json"]));
    let report: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(report["versions"][0]["documents"], 1500, "{report}");
    let leftovers: Vec<String> = walk(&r.path("data/indexes"))
        .into_iter()
        .filter(|p| p.ends_with(".tmp"))
        .collect();
    assert!(leftovers.is_empty(), "half-written files: {leftovers:?}");
}

fn walk(dir: &std::path::Path) -> Vec<String> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let p = e.path();
        out.push(p.display().to_string());
        if p.is_dir() {
            out.extend(walk(&p));
        }
    }
    out
}

#[test]
fn a_rollback_during_a_sync_stays_rolled_back_and_a_drop_waits_for_the_sync() {
    let r = TestRepo::applied();
    stdout_of(&mut r.run(&["index", "sync", "help_articles"]));
    r.edit("documents.yaml", "model: hashing-v1", "model: hashing-v2");
    stdout_of(&mut r.run(&["apply"]));
    stdout_of(&mut r.run(&["index", "sync", "help_articles"]));
    stdout_of(&mut r.run(&["index", "promote", "help_articles", "v2"]));

    big_corpus(&r, 1500, "b");
    let mut sync = spawn(&r, &["index", "sync", "help_articles"]);
    still_running_after(&mut sync, Duration::from_millis(500), "the sync");
    let out = r
        .run(&["index", "drop", "help_articles", "v1"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && err.contains("another process is syncing `help_articles`"),
        "{err}"
    );
    stdout_of(&mut r.run(&["index", "rollback", "help_articles"]));
    assert!(
        sync.try_wait().unwrap().is_none(),
        "the sync finished before the rollback; make its corpus bigger"
    );
    wait_ok(sync, "the sync");
    let status = stdout_of(&mut r.run(&["index", "status", "help_articles", "--output", "json"]));
    let m: serde_json::Value = serde_json::from_str(&status).unwrap();
    assert_eq!(m["live"], "v1", "the sync undid the rollback: {m}");
    assert_eq!(m["previous"], "v2", "{m}");
    assert_eq!(m["versions"]["v2"]["documents"], 1500, "{m}");
}

#[test]
fn two_indexes_sync_at_once_sharing_the_embedding_cache() {
    let r = TestRepo::init();
    // A second index over the same documents: the two syncs share one cache file.
    let defs = r.read("documents.yaml");
    let index = &defs[defs.find("document_indexes:").unwrap()..];
    r.write(
        "more_documents.yaml",
        &index.replace("name: help_articles", "name: help_articles_copy"),
    );
    stdout_of(&mut r.run(&["apply"]));
    big_corpus(&r, 600, "c");
    let a = spawn(&r, &["index", "sync", "help_articles"]);
    let b = spawn(&r, &["index", "sync", "help_articles_copy"]);
    wait_ok(a, "the first sync");
    wait_ok(b, "the second sync");
    for name in ["help_articles", "help_articles_copy"] {
        let out = stdout_of(&mut r.run(&["index", "sync", name, "--output", "json"]));
        let report: serde_json::Value = serde_json::from_str(&out).unwrap();
        assert_eq!(report["versions"][0]["documents"], 600, "{report}");
        assert_eq!(
            report["versions"][0]["embedder_calls"], 0,
            "both syncs completed and cached: {report}"
        );
    }
}
