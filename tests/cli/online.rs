//! The quickstart's online half from the CLI: materialize, serve, query, and a graceful SIGTERM.

use crate::server::Server;
use crate::util::{TestRepo, stdout_of};

#[test]
fn materialize_serve_query_and_shut_down_on_sigterm() {
    let r = TestRepo::applied();
    let mat = stdout_of(&mut r.run(&["materialize-incremental", "now"]));
    assert!(
        mat.contains("driver_hourly_stats: [") && mat.contains("50 keys, 50 written"),
        "{mat}"
    );
    let again = stdout_of(&mut r.run(&["materialize-incremental", "now"]));
    assert!(
        again.contains("0 written"),
        "a re-run from the watermark writes nothing new: {again}"
    );

    let server = Server::start(&r, &[], &[]);
    assert!(
        server
            .banner
            .contains(&format!("on grpc://127.0.0.1:{}", server.port)),
        "{}",
        server.banner
    );

    let server_url = server.url();
    let out = stdout_of(&mut r.run(&[
        "query",
        "--server",
        &server_url,
        "--service",
        "driver_activity",
        "--entity",
        "driver_id=1001,9999",
        "--entity",
        "customer_id=201,202",
        "--output",
        "json",
    ]));
    let rows: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(rows.as_array().unwrap().len(), 2);
    assert_eq!(rows[0]["conv_rate"]["status"], "PRESENT", "{out}");
    assert_eq!(rows[1]["conv_rate"]["status"], "NOT_FOUND", "{out}");

    let bad = r
        .run(&[
            "query",
            "--server",
            &server_url,
            "--features",
            "nope",
            "--entity",
            "driver_id=1",
        ])
        .assert()
        .failure()
        .get_output()
        .stderr
        .clone();
    assert!(
        String::from_utf8_lossy(&bad).contains("InvalidArgument")
            || String::from_utf8_lossy(&bad).contains("invalid argument"),
        "{}",
        String::from_utf8_lossy(&bad)
    );

    // A string for an integer key is named, not a silent NOT_FOUND.
    let err = r
        .run(&[
            "query",
            "--server",
            &server_url,
            "--features",
            "driver_hourly_stats:conv_rate",
            "--entity",
            "driver_id=abc",
        ])
        .assert()
        .failure()
        .get_output()
        .stderr
        .clone();
    let err = String::from_utf8_lossy(&err);
    assert!(
        err.contains("InvalidArgument")
            && err.contains(
                "entity key `driver_id` row 0 is a string (\"abc\"), but view `driver_hourly_stats` keys on an integer"
            ),
        "{err}"
    );

    let body = server.metrics();
    assert!(
        body.contains(r#"asof_requests_total{rpc="GetOnlineFeatures",code="Ok"} 1"#),
        "{body}"
    );
    assert!(
        body.contains(r#"asof_requests_total{rpc="GetOnlineFeatures",code="InvalidArgument"} 2"#),
        "{body}"
    );
    assert!(body.contains("asof_entity_rows_served_total 2"), "{body}");
    assert!(
        body.contains(r#"asof_view_freshness_seconds{view="driver_hourly_stats"}"#),
        "{body}"
    );

    let status = server.terminate();
    assert!(status.success(), "graceful shutdown exits 0, got {status}");
}

#[test]
fn pushed_rows_reach_the_online_store_and_the_training_set() {
    let r = TestRepo::applied();
    // Driver 5001 is not in the batch data: every value below comes from the push.
    r.write(
        "push.csv",
        "driver_id,event_timestamp,created,conv_rate,acc_rate\n5001,2030-01-01T00:00:00,2030-01-01T00:00:01,0.75,0.5\n",
    );
    let out = stdout_of(&mut r.run(&[
        "push",
        "driver_hourly_stats",
        "--input",
        "push.csv",
        "--output",
        "json",
    ]));
    let report: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(report["written_online"], 1, "{report}");
    assert_eq!(report["logged_offline"], 1, "{report}");
    r.write(
        "entities.csv",
        "driver_id,event_timestamp\n5001,2029-12-31T23:59:59\n5001,2030-01-01T00:00:00\n",
    );
    stdout_of(&mut r.run(&[
        "training-set",
        "--entities",
        "entities.csv",
        "--features",
        "driver_hourly_stats:conv_rate",
        "--output",
        "t.csv",
    ]));
    let t = r.read("t.csv");
    let rows: Vec<&str> = t.lines().collect();
    assert!(
        rows[1].ends_with(','),
        "before its timestamp the push is invisible: {t}"
    );
    assert!(
        rows[2].ends_with(",0.75"),
        "from its timestamp on it is there: {t}"
    );

    // A push that cannot mean anything is refused with the column named; nothing is logged.
    r.write(
        "bad.csv",
        "driver_id,event_timestamp,conv_rate\n5002,2030-01-01T00:00:00,fast\n",
    );
    let err =
        crate::util::stderr_of(&mut r.run(&["push", "driver_hourly_stats", "--input", "bad.csv"]));
    assert!(
        err.contains("column `conv_rate`") && err.contains("float32"),
        "{err}"
    );
}
