//! Training sets on a real Apache DataFusion Ballista cluster on loopback: `asof scheduler` and two
//! `asof executor` processes, sources on a real S3-compatible server (moto), shuffle reads forced
//! remote so every partition crosses Arrow Flight and asof's operators cross the codec. The
//! answers must equal the single-process ones row for row.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use datafusion::arrow::array::{Array, RecordBatch, TimestampNanosecondArray};
use datafusion::arrow::compute::concat_batches;
use datafusion::arrow::datatypes::{DataType, Field, Schema, TimeUnit};

use crate::object_stores::{Moto, with_s3};
use crate::util::{TestRepo, read_parquet};

/// `asof training-set` of the quickstart's service on its entity table (add `--output`).
const DRIVER_ACTIVITY: [&str; 5] = [
    "training-set",
    "--entities",
    "data/entities.parquet",
    "--service",
    "driver_activity",
];

const AWS_ENV: [(&str, &str); 3] = [
    ("AWS_ACCESS_KEY_ID", "testing"),
    ("AWS_SECRET_ACCESS_KEY", "testing"),
    ("AWS_REGION", "us-east-1"),
];

/// A child process killed when dropped.
struct Node(Child);

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A port `p` with `p + 1` free too (an executor serves Flight on one and keeps the next for its
/// task service).
fn free_port_pair() -> u16 {
    loop {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let p = l.local_addr().unwrap().port();
        if p < u16::MAX && std::net::TcpListener::bind(("127.0.0.1", p + 1)).is_ok() {
            return p;
        }
    }
}

fn wait_for_port(port: u16, what: &str) {
    let start = Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "{what} did not start"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

struct LoopbackCluster {
    address: String,
    executors: Vec<Node>,
    work_dirs: Vec<PathBuf>,
    _scheduler: Node,
    _dir: tempfile::TempDir,
}

impl LoopbackCluster {
    /// A scheduler and `executors` executors (one task slot each), reading S3 at `endpoint`.
    fn start(endpoint: Option<&str>, executors: usize) -> LoopbackCluster {
        let dir = tempfile::tempdir().unwrap();
        let log = |name: &str| Stdio::from(std::fs::File::create(dir.path().join(name)).unwrap());
        let mut scheduler = Command::new(env!("CARGO_BIN_EXE_asof"));
        scheduler
            .args([
                "scheduler",
                "--bind",
                "127.0.0.1:0",
                "--executor-timeout",
                "6",
            ])
            .stdout(Stdio::piped())
            .stderr(log("scheduler.log"));
        let mut scheduler = scheduler.spawn().unwrap();
        // The first line names the port the scheduler got; the rest is drained so it never blocks.
        let stdout = scheduler.stdout.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            use std::io::BufRead;
            let mut lines = std::io::BufReader::new(stdout).lines();
            if let Some(Ok(first)) = lines.next() {
                let _ = tx.send(first);
            }
            for _ in lines {}
        });
        let first = rx
            .recv_timeout(Duration::from_secs(60))
            .expect("the scheduler prints its address");
        let address = first
            .strip_prefix("asof scheduler on ")
            .unwrap_or_else(|| panic!("unexpected first line: {first}"))
            .to_string();
        let scheduler_addr = address.trim_start_matches("df://").to_string();
        let scheduler = Node(scheduler);
        let mut nodes = Vec::new();
        let mut work_dirs = Vec::new();
        for i in 0..executors {
            let port = free_port_pair();
            let work_dir = dir.path().join(format!("executor-{i}"));
            let mut c = Command::new(env!("CARGO_BIN_EXE_asof"));
            c.args(["executor", "--scheduler", &scheduler_addr, "--slots", "1"])
                .args(["--heartbeat", "2", "--bind", &format!("127.0.0.1:{port}")])
                .arg("--work-dir")
                .arg(&work_dir)
                .envs(AWS_ENV)
                .stdout(Stdio::null())
                .stderr(log(&format!("executor-{i}.log")));
            if let Some(endpoint) = endpoint {
                c.env("AWS_ENDPOINT_URL", endpoint);
            }
            nodes.push(Node(c.spawn().unwrap()));
            wait_for_port(port, "an executor's Flight service");
            work_dirs.push(work_dir);
        }
        LoopbackCluster {
            address,
            executors: nodes,
            work_dirs,
            _scheduler: scheduler,
            _dir: dir,
        }
    }

    /// The nodes' logs, for a failing assertion.
    fn logs(&self) -> String {
        let mut out = String::new();
        for entry in std::fs::read_dir(self._dir.path()).unwrap() {
            let p = entry.unwrap().path();
            if p.extension().is_some_and(|e| e == "log") {
                let text = std::fs::read_to_string(&p).unwrap_or_default();
                let tail: Vec<&str> = text.lines().rev().take(30).collect();
                out.push_str(&format!("--- {}\n", p.display()));
                for line in tail.into_iter().rev() {
                    out.push_str(line);
                    out.push('\n');
                }
            }
        }
        out
    }
}

fn table(path: &Path) -> RecordBatch {
    let batches = read_parquet(path);
    concat_batches(&batches[0].schema(), &batches).unwrap()
}

/// An entity table of documents: every 7th click's document, at the click's own time (a window's
/// inclusive end) or half an hour after it, so the windows of `document_clicks` hold several
/// events each.
fn document_entities(repo: &TestRepo) -> PathBuf {
    let clicks = table(&repo.path("data/click_events.parquet"));
    let ids = clicks.column_by_name("doc_id").unwrap();
    let ts = asof_offline::timestamps::to_nanos(clicks.column_by_name("ts").unwrap()).unwrap();
    let rows: Vec<usize> = (0..clicks.num_rows()).step_by(7).collect();
    let take = datafusion::arrow::array::UInt32Array::from(
        rows.iter().map(|&r| r as u32).collect::<Vec<_>>(),
    );
    let ids = datafusion::arrow::compute::take(ids, &take, None).unwrap();
    let times = TimestampNanosecondArray::from(
        rows.iter()
            .map(|&r| ts.value(r) + if r % 2 == 0 { 0 } else { 1_800_000_000_000 })
            .collect::<Vec<_>>(),
    )
    .with_timezone("UTC");
    let schema = Arc::new(Schema::new(vec![
        Field::new("doc_id", ids.data_type().clone(), true),
        Field::new(
            "event_timestamp",
            DataType::Timestamp(TimeUnit::Nanosecond, Some("UTC".into())),
            false,
        ),
    ]));
    let batch = RecordBatch::try_new(schema, vec![ids, Arc::new(times)]).unwrap();
    let path = repo.path("document_entities.parquet");
    let mut w = datafusion::parquet::arrow::ArrowWriter::try_new(
        std::fs::File::create(&path).unwrap(),
        batch.schema(),
        None,
    )
    .unwrap();
    w.write(&batch).unwrap();
    w.close().unwrap();
    path
}

/// The training sets both paths must agree on: a service with TTLs, late rows and corrections;
/// the same with every option; and a windowed aggregation beside a plain view.
fn cases(documents: &Path) -> Vec<(&'static str, Vec<String>)> {
    let args = |a: &[&str]| a.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    let docs = documents.to_str().unwrap();
    vec![
        (
            "service",
            args(&[
                "--entities",
                "data/entities.parquet",
                "--service",
                "driver_activity",
            ]),
        ),
        (
            "options",
            args(&[
                "--entities",
                "data/entities.parquet",
                "--service",
                "driver_activity",
                "--with-timestamps",
                "--filter-by-created-timestamp",
                "--full-feature-names",
            ]),
        ),
        (
            "windows",
            args(&[
                "--entities",
                docs,
                "--features",
                "document_clicks,document_stats:popularity",
                "--with-timestamps",
            ]),
        ),
    ]
}

/// Puts the repo's sources on S3 and points its views there.
fn move_sources_to_s3(repo: &TestRepo, moto: &Moto) {
    moto.boto3("s3.create_bucket(Bucket='asof-cluster')");
    for (file, yaml) in [
        ("driver_stats", "drivers.yaml"),
        ("customer_profile", "customers.yaml"),
        ("click_events", "documents.yaml"),
        ("document_stats", "documents.yaml"),
    ] {
        let rel = format!("data/{file}.parquet");
        moto.upload(
            &repo.path(&rel),
            "asof-cluster",
            &format!("{file}/part-0.parquet"),
        );
        repo.edit(
            yaml,
            &format!("path: {rel}"),
            &format!("path: s3://asof-cluster/{file}/"),
        );
        std::fs::remove_file(repo.path(&rel)).unwrap();
    }
    with_s3(repo, &moto.endpoint, &["apply"]).assert().success();
}

#[test]
fn training_sets_on_a_loopback_cluster_equal_the_single_process_ones() {
    let moto = Moto::start();
    let repo = TestRepo::applied();
    let documents = document_entities(&repo);
    let cases = cases(&documents);
    for (name, args) in &cases {
        let mut c = repo.run(&["training-set", "--output", &format!("{name}.local.parquet")]);
        c.args(args).assert().success();
    }
    move_sources_to_s3(&repo, &moto);
    let cluster = LoopbackCluster::start(Some(&moto.endpoint), 2);

    // Entity rows are staged for the executors in a folder, then under an S3 prefix.
    let local_stage = repo.path("stage");
    let stages = [
        ("3", local_stage.to_str().unwrap().to_string()),
        ("8", "s3://asof-cluster/stage/".to_string()),
    ];
    for (name, args) in &cases {
        for (partitions, stage) in &stages {
            let out = format!("{name}.cluster{partitions}.parquet");
            let mut c = with_s3(
                &repo,
                &moto.endpoint,
                &[
                    "training-set",
                    "--output",
                    &out,
                    "--cluster",
                    &cluster.address,
                ],
            );
            c.args(args)
                .args(["--cluster-partitions", partitions, "--cluster-stage", stage])
                .args([
                    "--cluster-setting",
                    "ballista.shuffle.force_remote_read=true",
                ]);
            let result = c.output().unwrap();
            assert!(
                result.status.success(),
                "{name} on the cluster: {}\n{}",
                String::from_utf8_lossy(&result.stderr),
                cluster.logs()
            );
            let stdout = String::from_utf8_lossy(&result.stdout);
            assert!(stdout.contains(&format!("Wrote {out}")), "{stdout}");
            let (got, want) = (
                table(&repo.path(&out)),
                table(&repo.path(&format!("{name}.local.parquet"))),
            );
            assert!(want.num_rows() > 100, "{name}: a vacuous case");
            let matched = want
                .columns()
                .iter()
                .skip(2)
                .map(|c| c.len() - c.null_count())
                .sum::<usize>();
            assert!(matched > 0, "{name}: no feature matched at all");
            assert_eq!(
                got, want,
                "{name} with {partitions} partitions differs on the cluster"
            );
        }
    }

    // Nothing staged is left behind.
    let left: Vec<_> = std::fs::read_dir(&local_stage)
        .map(|d| d.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    assert!(left.is_empty(), "staged files left: {left:?}");
    moto.boto3(
        "r = s3.list_objects_v2(Bucket='asof-cluster', Prefix='stage/')\nassert r['KeyCount'] == 0, r.get('Contents')",
    );

    // The plan a cluster runs: both sides hash-partitioned by key, merged back by row id.
    let mut explain = with_s3(&repo, &moto.endpoint, &DRIVER_ACTIVITY);
    let explain = explain
        .args([
            "--output",
            "unused.parquet",
            "--explain",
            "--cluster",
            &cluster.address,
        ])
        .output()
        .unwrap();
    let explain = String::from_utf8_lossy(&explain.stdout);
    assert!(
        explain.contains("inputs=key_partitioned")
            && explain.contains("Hash(")
            && explain.contains("SortPreservingMergeExec"),
        "{explain}"
    );
}

#[test]
fn cluster_errors_name_the_address_and_the_fix() {
    let repo = TestRepo::applied();
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let address = format!("df://127.0.0.1:{closed}");
    let mut base = DRIVER_ACTIVITY.to_vec();
    base.extend(["--output", "out.parquet"]);
    let mut c = repo.run(&base);
    c.args(["--cluster", &address]);
    let err = crate::util::stderr_of(&mut c);
    assert!(
        err.contains(&address) && err.contains("asof scheduler"),
        "{err}"
    );
    assert!(!repo.path("out.parquet").exists());

    let mut c = repo.run(&base);
    c.args(["--cluster", "http://127.0.0.1:50050"]);
    let err = crate::util::stderr_of(&mut c);
    assert!(err.contains("df://HOST:PORT"), "{err}");

    let mut c = repo.run(&base);
    c.args([
        "--cluster",
        &address,
        "--cluster-setting",
        "ballista.nope=1",
    ]);
    let err = crate::util::stderr_of(&mut c);
    assert!(err.contains("ballista.nope"), "{err}");
}

/// Whether `dir` holds any file yet (an executor's shuffle output).
fn has_files(dir: &Path) -> bool {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return false;
    };
    entries.flatten().any(|e| {
        let p = e.path();
        if p.is_dir() { has_files(&p) } else { true }
    })
}

#[test]
fn an_executor_killed_mid_query_is_reported_or_retried_never_a_hang() {
    let repo = TestRepo::applied();
    let mut c = repo.run(&DRIVER_ACTIVITY);
    c.args(["--output", "expected.parquet"]).assert().success();
    let mut cluster = LoopbackCluster::start(None, 2);
    // Many small tasks, so that the job is still running when the first shuffle file appears.
    let mut client = std::process::Command::new(env!("CARGO_BIN_EXE_asof"));
    client
        .arg("--repo")
        .arg(&repo.dir)
        .current_dir(&repo.dir)
        .args(DRIVER_ACTIVITY)
        .args([
            "--output",
            "out.parquet",
            "--cluster",
            &cluster.address,
            "--cluster-partitions",
            "64",
            "--cluster-setting",
            "ballista.shuffle.force_remote_read=true",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut client = client.spawn().unwrap();
    let start = Instant::now();
    while !has_files(&cluster.work_dirs[0]) && client.try_wait().unwrap().is_none() {
        assert!(
            start.elapsed() < Duration::from_secs(120),
            "executor 0 never got a task"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let killed_mid_query = client.try_wait().unwrap().is_none();
    drop(cluster.executors.remove(0));

    // A hang is a failure: the client must finish on its own.
    let start = Instant::now();
    let status = loop {
        if let Some(status) = client.try_wait().unwrap() {
            break status;
        }
        if start.elapsed() > Duration::from_secs(120) {
            let _ = client.kill();
            panic!("the client hung after an executor died\n{}", cluster.logs());
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let output = client.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    if status.success() {
        // Ballista re-ran the lost work on the other executor: the answer is still exact.
        assert_eq!(
            table(&repo.path("out.parquet")),
            table(&repo.path("expected.parquet"))
        );
    } else {
        assert!(
            stderr.contains(&cluster.address) && stderr.contains("driver"),
            "the error should name the cluster and the view: {stderr}"
        );
        assert!(
            !repo.path("out.parquet").exists(),
            "a failed job left a partial output"
        );
        let leftovers: Vec<_> = std::fs::read_dir(&repo.dir)
            .unwrap()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| n.contains("out.parquet"))
            .collect();
        assert!(leftovers.is_empty(), "staging files left: {leftovers:?}");
    }
    eprintln!(
        "executor killed {} the query; the client {}",
        if killed_mid_query { "during" } else { "after" },
        if status.success() {
            "finished with the exact answer"
        } else {
            "failed cleanly"
        }
    );
}
