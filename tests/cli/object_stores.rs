//! Sources, entity tables and training-set outputs on S3: a real S3-compatible server (PyPI
//! `moto[server]`, from the test venv) on a free loopback port, reached with credentials and the
//! endpoint from the environment only; the data goes up with boto3, another real client.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use datafusion::arrow::array::RecordBatch;

use crate::util::{TestRepo, read_parquet, stdout_of};

/// `<workspace>/target/test-venv` (made by `scripts/test.sh`), with moto[server] and boto3.
pub(crate) fn venv() -> PathBuf {
    std::env::var_os("ASOF_TEST_VENV")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/test-venv"))
}

pub(crate) struct Moto {
    child: Child,
    pub(crate) endpoint: String,
}

impl Moto {
    pub(crate) fn start() -> Moto {
        let server = venv().join("bin/moto_server");
        assert!(
            server.exists(),
            "{} is missing: run scripts/test.sh (it installs moto[server] into the test venv)",
            server.display()
        );
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = Command::new(server)
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let start = std::time::Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(start.elapsed().as_secs() < 60, "moto_server did not start");
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        Moto {
            child,
            endpoint: format!("http://127.0.0.1:{port}"),
        }
    }

    /// Runs boto3 against the server: `script` sees `s3`, a client.
    pub(crate) fn boto3(&self, script: &str) {
        let prelude = format!(
            "import boto3\ns3 = boto3.client('s3', endpoint_url='{}', aws_access_key_id='testing', aws_secret_access_key='testing', region_name='us-east-1')\n",
            self.endpoint
        );
        let out = Command::new(venv().join("bin/python"))
            .args(["-c", &(prelude + script)])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "boto3: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    pub(crate) fn upload(&self, local: &Path, bucket: &str, key: &str) {
        self.boto3(&format!(
            "s3.upload_file({:?}, {bucket:?}, {key:?})",
            local.to_str().unwrap()
        ));
    }

    pub(crate) fn download(&self, bucket: &str, key: &str, local: &Path) {
        self.boto3(&format!(
            "s3.download_file({bucket:?}, {key:?}, {:?})",
            local.to_str().unwrap()
        ));
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `asof` in `repo` with S3 credentials and the endpoint in the environment, as a user sets them.
pub(crate) fn with_s3(repo: &TestRepo, endpoint: &str, args: &[&str]) -> assert_cmd::Command {
    let mut c = repo.run(args);
    c.env("AWS_ACCESS_KEY_ID", "testing")
        .env("AWS_SECRET_ACCESS_KEY", "testing")
        .env("AWS_REGION", "us-east-1")
        .env("AWS_ENDPOINT_URL", endpoint);
    c
}

/// One row count per view, from `asof status --output json`.
fn online_rows(repo: &TestRepo, endpoint: &str) -> Vec<(String, u64)> {
    let out = stdout_of(&mut with_s3(
        repo,
        endpoint,
        &["status", "--output", "json"],
    ));
    let json: serde_json::Value = serde_json::from_str(&out).unwrap();
    let mut rows: Vec<(String, u64)> = json["views"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| {
            (
                v["view"].as_str().unwrap().to_string(),
                v["rows"].as_u64().unwrap(),
            )
        })
        .collect();
    rows.sort();
    rows
}

#[test]
fn sources_entity_tables_and_outputs_on_s3_give_the_local_results() {
    let moto = Moto::start();
    let repo = TestRepo::applied();
    // The same training set and materialization from local files, first.
    let end = "2100-01-01T00:00:00Z";
    let local = TestRepo::init();
    for rel in [
        "data/driver_stats.parquet",
        "data/customer_profile.parquet",
        "data/entities.parquet",
    ] {
        std::fs::copy(repo.path(rel), local.path(rel)).unwrap();
    }
    local.run(&["apply"]).assert().success();
    local
        .run(&[
            "training-set",
            "--entities",
            "data/entities.parquet",
            "--service",
            "driver_activity",
            "--output",
            "expected.parquet",
        ])
        .assert()
        .success();
    local
        .run(&["materialize", "2000-01-01", end])
        .assert()
        .success();

    moto.boto3("s3.create_bucket(Bucket='asof-test')");
    moto.upload(
        &repo.path("data/driver_stats.parquet"),
        "asof-test",
        "drivers/driver_stats.parquet",
    );
    // A prefix as Spark writes it: a part file and markers that are skipped.
    moto.upload(
        &repo.path("data/customer_profile.parquet"),
        "asof-test",
        "customers/day=1/part-0.parquet",
    );
    moto.boto3("s3.put_object(Bucket='asof-test', Key='customers/_SUCCESS', Body=b'')");
    moto.upload(
        &repo.path("data/entities.parquet"),
        "asof-test",
        "entities.parquet",
    );
    repo.edit(
        "drivers.yaml",
        "path: data/driver_stats.parquet",
        "path: s3://asof-test/drivers/*.parquet",
    );
    repo.edit(
        "customers.yaml",
        "path: data/customer_profile.parquet",
        "path: s3://asof-test/customers/",
    );
    for rel in ["data/driver_stats.parquet", "data/customer_profile.parquet"] {
        std::fs::remove_file(repo.path(rel)).unwrap();
    }

    // apply probes the sources' schemas on S3.
    with_s3(&repo, &moto.endpoint, &["apply"])
        .assert()
        .success();
    with_s3(
        &repo,
        &moto.endpoint,
        &[
            "training-set",
            "--entities",
            "s3://asof-test/entities.parquet",
            "--service",
            "driver_activity",
            "--output",
            "s3://asof-test/out/training.parquet",
        ],
    )
    .assert()
    .success();
    let got = repo.path("got.parquet");
    moto.download("asof-test", "out/training.parquet", &got);
    let (got, expected) = (
        read_parquet(&got),
        read_parquet(&local.path("expected.parquet")),
    );
    assert!(expected.iter().map(RecordBatch::num_rows).sum::<usize>() > 100);
    assert_eq!(
        got, expected,
        "the training set from S3 differs from the local one"
    );

    with_s3(&repo, &moto.endpoint, &["materialize", "2000-01-01", end])
        .assert()
        .success();
    let rows = online_rows(&repo, &moto.endpoint);
    assert!(rows.iter().any(|(_, n)| *n > 0));
    assert_eq!(rows, online_rows(&local, &moto.endpoint));
}

/// The error of a training set from `entities` to `output` against the store at `endpoint`.
fn training_set_error(repo: &TestRepo, endpoint: &str, entities: &str, output: &str) -> String {
    crate::util::stderr_of(&mut with_s3(
        repo,
        endpoint,
        &[
            "training-set",
            "--entities",
            entities,
            "--service",
            "driver_activity",
            "--output",
            output,
        ],
    ))
}

#[test]
fn object_store_errors_name_the_url_and_the_fix() {
    let moto = Moto::start();
    let repo = TestRepo::applied();
    moto.boto3("s3.create_bucket(Bucket='present')");

    let err = training_set_error(
        &repo,
        &moto.endpoint,
        "s3://no-such-bucket/entities.parquet",
        "out.parquet",
    );
    assert!(
        err.contains("s3://no-such-bucket/entities.parquet") && err.contains("no such bucket"),
        "{err}"
    );

    let err = training_set_error(
        &repo,
        &moto.endpoint,
        "s3://present/missing.parquet",
        "out.parquet",
    );
    assert!(
        err.contains("s3://present/missing.parquet") && err.contains("no such"),
        "{err}"
    );

    // An output to a bucket that does not exist: the error names it, and nothing is left behind.
    let err = training_set_error(
        &repo,
        &moto.endpoint,
        "data/entities.parquet",
        "s3://no-such-bucket/out.parquet",
    );
    assert!(
        err.contains("s3://no-such-bucket/out.parquet") && err.contains("no such bucket"),
        "{err}"
    );
    assert!(!repo.path("s3:").exists());

    // Nothing listening: unreachable, with the endpoint that was tried.
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://{}", l.local_addr().unwrap())
    };
    let err = training_set_error(
        &repo,
        &closed,
        "s3://present/entities.parquet",
        "out.parquet",
    );
    assert!(
        err.contains("s3://present/entities.parquet")
            && err.contains("unreachable")
            && err.contains(&closed),
        "{err}"
    );

    // A source on S3 that apply cannot reach is named with its view and URL.
    repo.edit(
        "drivers.yaml",
        "path: data/driver_stats.parquet",
        "path: s3://no-such-bucket/drivers/",
    );
    let err = crate::util::stderr_of(&mut with_s3(&repo, &moto.endpoint, &["apply"]));
    assert!(
        err.contains("s3://no-such-bucket/drivers/") && err.contains("no such bucket"),
        "{err}"
    );
}
