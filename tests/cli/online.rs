//! The quickstart's online half from the CLI: materialize, serve, query, and a graceful SIGTERM.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

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

    let free_port = || {
        std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port()
    };
    let (port, metrics_port) = (free_port(), free_port());
    let mut server = Command::new(env!("CARGO_BIN_EXE_asof"))
        .args([
            "--repo",
            r.dir.to_str().unwrap(),
            "serve",
            "--grpc",
            &format!("127.0.0.1:{port}"),
            "--metrics",
            &format!("127.0.0.1:{metrics_port}"),
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(server.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    assert!(
        line.contains(&format!("on grpc://127.0.0.1:{port}")),
        "{line}"
    );

    let server_url = format!("http://127.0.0.1:{port}");
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

    let mut http = std::net::TcpStream::connect(("127.0.0.1", metrics_port)).unwrap();
    std::io::Write::write_all(
        &mut http,
        b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    )
    .unwrap();
    let mut body = String::new();
    std::io::Read::read_to_string(&mut http, &mut body).unwrap();
    assert!(
        body.contains(r#"asof_requests_total{rpc="GetOnlineFeatures",code="Ok"} 1"#),
        "{body}"
    );
    assert!(
        body.contains(r#"asof_requests_total{rpc="GetOnlineFeatures",code="InvalidArgument"} 1"#),
        "{body}"
    );
    assert!(body.contains("asof_entity_rows_served_total 2"), "{body}");
    assert!(
        body.contains(r#"asof_view_freshness_seconds{view="driver_hourly_stats"}"#),
        "{body}"
    );

    Command::new("kill")
        .args(["-TERM", &server.id().to_string()])
        .status()
        .unwrap();
    let status = server.wait().unwrap();
    assert!(status.success(), "graceful shutdown exits 0, got {status}");
}
