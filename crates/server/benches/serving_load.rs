//! Serving load generator: the quickstart data materialized into a real redis-server on loopback and
//! served by the `asof serve` binary (set `ASOF_BIN`, default `target/release/asof`), hit over gRPC
//! by a tonic client with a bounded request count. Reports throughput and p50/p99/p999 for 1 entity
//! row and 100 entity rows (5 features, 2 views) at concurrency 1/16/64, beside `redis-benchmark`
//! sending the same MGETs (same keys, same stored values) to the same Redis in the same run, and
//! beside the same server's health check: the rate of a gRPC call that does no work at all.
//!
//!     cargo build --release --bin asof && cargo bench -p asof-server --bench serving_load
//!
//! Then the aggregated view `document_clicks` (4 windowed aggregations computed at read time
//! from each document's event log) beside the plain `document_stats` at 1 and 100 entity rows,
//! and events pushed to it per second.
//!
//! To measure a secured server: `-- --token T` starts it with `serving.auth` and sends the token
//! with every request; `-- --tls-cert F --tls-key F --ca F` serves TLS and trusts the CA in `F`.

#![allow(unreachable_pub)]

// The tests' Redis helpers; the cluster one is not used by the benches.
#[allow(dead_code)]
#[path = "../tests/serving/redis_server.rs"]
mod redis_server;

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use asof_core::keys::{KeyValue, encode_entity_key, store_key};
use asof_offline::quickstart::{CUSTOMERS, DRIVERS, REPO_FILES, generate_data};
use asof_server::proto::v1::feature_serving_client::FeatureServingClient;
use asof_server::proto::v1::{
    FeatureList, GetOnlineFeaturesRequest, RepeatedValue, Value, get_online_features_request::Kind,
    value,
};

use redis_server::free_port;

/// HTTP/2 connections the load generator spreads its concurrent requests over.
const CONNECTIONS: usize = 4;

/// The load generator shares the two cores with the server and Redis; the allocator the server
/// uses keeps the client's share of the CPU down too.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

const FEATURES: [&str; 5] = [
    "driver_hourly_stats:conv_rate",
    "driver_hourly_stats:acc_rate",
    "driver_hourly_stats:avg_daily_trips",
    "customer_profile:current_balance",
    "customer_profile:lifetime_trip_count",
];

/// The project name the bench's repo is applied under.
const PROJECT: &str = "rideshare";

/// What a request for entity rows `seed..seed + rows` reads: per view, its join key and one
/// quickstart id per row (drivers from 1001, customers from 201, cycling). The load and the raw
/// Redis comparison both take their keys from here.
fn entity_ids(rows: usize, seed: usize) -> [(&'static str, &'static str, Vec<i64>); 2] {
    let ids = |first: i64, count: i64| {
        (0..rows)
            .map(|i| first + (seed + i) as i64 % count)
            .collect()
    };
    [
        ("driver_hourly_stats", "driver_id", ids(1001, DRIVERS)),
        ("customer_profile", "customer_id", ids(201, CUSTOMERS)),
    ]
}

fn request(rows: usize, seed: usize) -> GetOnlineFeaturesRequest {
    let entities = entity_ids(rows, seed)
        .into_iter()
        .map(|(_, key, ids)| {
            let values = ids
                .into_iter()
                .map(|v| Value {
                    kind: Some(value::Kind::Int64Val(v)),
                })
                .collect();
            (key.to_string(), RepeatedValue { values })
        })
        .collect();
    GetOnlineFeaturesRequest {
        kind: Some(Kind::Features(FeatureList {
            features: FEATURES.iter().map(|s| s.to_string()).collect(),
        })),
        entities,
        full_feature_names: false,
        as_of: None,
    }
}

fn percentile(sorted: &[Duration], p: f64) -> f64 {
    let i = ((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len()) - 1;
    sorted[i].as_secs_f64() * 1e3
}

/// Copies the stored rows one `rows`-row request reads (same keys, same values) to printable key
/// names, which `redis-benchmark` can take on its command line; returns those names.
fn stage_raw_lookups(url: &str, rows: usize) -> Vec<String> {
    let mut conn = redis::Client::open(url).unwrap().get_connection().unwrap();
    let views = entity_ids(rows, 0);
    let mut names = Vec::new();
    for i in 0..rows {
        for (view, key, ids) in &views {
            let k = KeyValue::Int(ids[i]);
            let stored = store_key(PROJECT, view, &encode_entity_key(&[key], &[&k]));
            let value: Option<Vec<u8>> = redis::cmd("GET").arg(&stored).query(&mut conn).unwrap();
            let name = format!("bench:{rows}:{}", names.len());
            // A key the quickstart has no row for stays absent here too.
            let write = match value {
                Some(v) => redis::cmd("SET").arg(&name).arg(v).clone(),
                None => redis::cmd("DEL").arg(&name).clone(),
            };
            write.query::<()>(&mut conn).unwrap();
            names.push(name);
        }
    }
    names
}

fn redis_benchmark(port: u16, clients: usize, requests: usize, args: &[String]) -> f64 {
    let out = Command::new("redis-benchmark")
        .args([
            "-p",
            &port.to_string(),
            "-n",
            &requests.to_string(),
            "-c",
            &clients.to_string(),
            "-q",
        ])
        .args(args)
        .output()
        .expect("redis-benchmark (Debian's redis-tools)");
    let text = String::from_utf8_lossy(&out.stdout);
    // "...: 123456.79 requests per second, p50=..."
    text.rsplit(':')
        .next()
        .and_then(|t| t.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(f64::NAN)
}

/// `ASOF_BENCH_ONLY=ROWSxCONCURRENCY` (e.g. `100x16`) runs that one case, for profiling.
fn selected(rows: usize, concurrency: usize) -> bool {
    std::env::var("ASOF_BENCH_ONLY").map_or(true, |only| only == format!("{rows}x{concurrency}"))
}

/// The push measurement runs unless `ASOF_BENCH_ONLY` names another case (`push` runs it alone).
fn push_selected() -> bool {
    std::env::var("ASOF_BENCH_ONLY").map_or(true, |only| only == "push")
}

/// The aggregated-view measurement runs unless `ASOF_BENCH_ONLY` names another case
/// (`aggregated` runs it alone).
fn aggregated_selected() -> bool {
    std::env::var("ASOF_BENCH_ONLY").map_or(true, |only| only == "aggregated")
}

/// Pushes of 100 rows each at concurrency 16, online only and then online and offline (each
/// acknowledged after its push log file is synced): the cost of offline durability, in rows/s.
async fn push_load(grpc_port: u16) {
    use asof_server::proto::v1::{PushFeaturesRequest, PushTarget};
    const ROWS: usize = 100;
    let pool = channels(grpc_port).await;
    println!();
    println!("| push target | rows per push | concurrency | pushes | rows/s | p50 ms | p99 ms |");
    println!("|---|---|---|---|---|---|---|");
    for (target, label) in [
        (PushTarget::Online, "online"),
        (PushTarget::OnlineAndOffline, "online_and_offline"),
    ] {
        let total = 2_000 * scale();
        let pool = pool.clone();
        let (all, secs) = drive(16, total, move |t, i| {
            let mut c = FeatureServingClient::new(pool[t % pool.len()].clone());
            // Distinct (key, time) per row, so every row is newer than the stored one.
            let base = asof_core::time::to_nanos(chrono::Utc::now());
            let column = |values: Vec<Value>| RepeatedValue { values };
            let ids = (0..ROWS).map(|r| 900_000 + ((t * 7919 + i * 31 + r) % 50_000) as i64);
            let req = PushFeaturesRequest {
                feature_view: "driver_hourly_stats".into(),
                columns: [
                    (
                        "driver_id".to_string(),
                        column(
                            ids.map(|id| Value {
                                kind: Some(value::Kind::Int64Val(id)),
                            })
                            .collect(),
                        ),
                    ),
                    (
                        "event_timestamp".to_string(),
                        column(
                            (0..ROWS)
                                .map(|r| Value {
                                    kind: Some(value::Kind::TimestampVal(
                                        asof_server::convert::timestamp(base + r as i64),
                                    )),
                                })
                                .collect(),
                        ),
                    ),
                    (
                        "conv_rate".to_string(),
                        column(
                            (0..ROWS)
                                .map(|r| Value {
                                    kind: Some(value::Kind::FloatVal(r as f32)),
                                })
                                .collect(),
                        ),
                    ),
                ]
                .into(),
                to: target as i32,
                deleted: Vec::new(),
            };
            async move {
                c.push_features(authorized(req)).await.unwrap();
            }
        })
        .await;
        println!(
            "| {label} | {ROWS} | 16 | {} | {:.0} | {:.3} | {:.3} |",
            all.len(),
            (all.len() * ROWS) as f64 / secs,
            percentile(&all, 0.5),
            percentile(&all, 0.99)
        );
    }
}

/// Lookups of an aggregated view beside a plain one keyed by the same documents, then pushes of
/// events into the aggregated one (100 events per push, each to a random document, at the current
/// time), at concurrency 16.
async fn aggregated_load(grpc_port: u16) {
    use asof_offline::quickstart::{DOCUMENTS, doc_id};
    use asof_server::proto::v1::{PushFeaturesRequest, PushTarget};
    let pool = channels(grpc_port).await;
    println!();
    println!(
        "| view | entity rows x features | concurrency | requests | req/s | rows/s | p50 ms | p99 ms |"
    );
    println!("|---|---|---|---|---|---|---|---|");
    let views: [(&str, &[&str]); 2] = [
        ("document_stats (plain)", &["document_stats:popularity"]),
        (
            "document_clicks (aggregated)",
            &[
                "document_clicks:clicks_7d",
                "document_clicks:clicks_1h",
                "document_clicks:dwell_mean_1d",
                "document_clicks:dwell_max_1d",
            ],
        ),
    ];
    for (label, features) in views {
        for rows in [1usize, 100] {
            let total = if rows == 1 { 20_000 } else { 4_000 } * scale();
            let pool = pool.clone();
            let features: Vec<String> = features.iter().map(|f| f.to_string()).collect();
            let width = features.len();
            let (all, secs) = drive(16, total, move |t, i| {
                let mut c = FeatureServingClient::new(pool[t % pool.len()].clone());
                let ids = (0..rows)
                    .map(|r| Value {
                        kind: Some(value::Kind::StringVal(doc_id(
                            (t * 7919 + i + r) % DOCUMENTS,
                        ))),
                    })
                    .collect();
                let req = GetOnlineFeaturesRequest {
                    kind: Some(Kind::Features(FeatureList {
                        features: features.clone(),
                    })),
                    entities: [("doc_id".to_string(), RepeatedValue { values: ids })].into(),
                    full_feature_names: false,
                    as_of: None,
                };
                async move {
                    c.get_online_features(authorized(req)).await.unwrap();
                }
            })
            .await;
            let n = all.len();
            println!(
                "| {label} | {rows} x {width} | 16 | {n} | {:.0} | {:.0} | {:.3} | {:.3} |",
                n as f64 / secs,
                (n * rows) as f64 / secs,
                percentile(&all, 0.5),
                percentile(&all, 0.99)
            );
        }
    }
    const EVENTS: usize = 100;
    println!();
    println!(
        "| push target | events per push | concurrency | pushes | events/s | p50 ms | p99 ms |"
    );
    println!("|---|---|---|---|---|---|---|");
    for (target, label) in [
        (PushTarget::Online, "online"),
        (PushTarget::OnlineAndOffline, "online_and_offline"),
    ] {
        let pool = pool.clone();
        let (all, secs) = drive(16, 2_000 * scale(), move |t, i| {
            let mut c = FeatureServingClient::new(pool[t % pool.len()].clone());
            let now = asof_core::time::to_nanos(chrono::Utc::now());
            let column = |values: Vec<Value>| RepeatedValue { values };
            let values = |f: &dyn Fn(usize) -> value::Kind| {
                column((0..EVENTS).map(|r| Value { kind: Some(f(r)) }).collect())
            };
            let req = PushFeaturesRequest {
                feature_view: "document_clicks".into(),
                columns: [
                    (
                        "doc_id".to_string(),
                        values(&|r| {
                            value::Kind::StringVal(doc_id((t * 7919 + i * 31 + r) % DOCUMENTS))
                        }),
                    ),
                    (
                        "ts".to_string(),
                        values(&|r| {
                            value::Kind::TimestampVal(asof_server::convert::timestamp(
                                now + r as i64,
                            ))
                        }),
                    ),
                    (
                        "dwell_s".to_string(),
                        values(&|r| value::Kind::DoubleVal(r as f64)),
                    ),
                ]
                .into(),
                to: target as i32,
                deleted: Vec::new(),
            };
            async move {
                c.push_features(authorized(req)).await.unwrap();
            }
        })
        .await;
        println!(
            "| {label} | {EVENTS} | 16 | {} | {:.0} | {:.3} | {:.3} |",
            all.len(),
            (all.len() * EVENTS) as f64 / secs,
            percentile(&all, 0.5),
            percentile(&all, 0.99)
        );
    }
}

/// `ASOF_BENCH_SCALE=N` sends N times the default request counts (longer runs to profile).
fn scale() -> usize {
    std::env::var("ASOF_BENCH_SCALE")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1)
}

/// A running `asof serve`, stopped when dropped (also when the bench panics).
struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `--token`, `--tls-cert`, `--tls-key` and `--ca` from the bench's arguments.
#[derive(Debug, Default)]
struct Secure {
    token: Option<String>,
    tls: Option<(String, String)>,
    ca: Option<Vec<u8>>,
}

fn secure() -> &'static Secure {
    static SECURE: std::sync::OnceLock<Secure> = std::sync::OnceLock::new();
    SECURE.get_or_init(|| {
        let args: Vec<String> = std::env::args().collect();
        let arg = |name: &str| {
            args.iter()
                .position(|a| a == name)
                .and_then(|i| args.get(i + 1).cloned())
        };
        let tls = arg("--tls-cert").zip(arg("--tls-key"));
        let ca = arg("--ca").map(|p| std::fs::read(&p).expect("--ca file"));
        assert!(
            tls.is_some() == ca.is_some(),
            "give --tls-cert, --tls-key and --ca together"
        );
        Secure {
            token: arg("--token"),
            tls,
            ca,
        }
    })
}

/// A request carrying the bench's token, if it has one.
fn authorized<T>(message: T) -> tonic::Request<T> {
    let mut req = tonic::Request::new(message);
    if let Some(t) = &secure().token {
        req.metadata_mut()
            .insert("authorization", format!("Bearer {t}").parse().unwrap());
    }
    req
}

/// Starts `asof serve` with `workers` threads (`None`: its default, one per core) and waits for
/// its ready line; returns the process and its gRPC port.
fn start_server(bin: &str, repo: &str, workers: Option<usize>) -> (Server, u16) {
    let grpc_port = free_port();
    let mut cmd = Command::new(bin);
    cmd.args([
        "--repo",
        repo,
        "serve",
        "--grpc",
        &format!("127.0.0.1:{grpc_port}"),
        "--metrics",
        &format!("127.0.0.1:{}", free_port()),
    ]);
    if let Some(n) = workers {
        cmd.args(["--workers", &n.to_string()]);
    }
    if let Some((cert, key)) = &secure().tls {
        cmd.args(["--tls-cert", cert, "--tls-key", key]);
    }
    if let Some(t) = &secure().token {
        cmd.env("ASOF_BENCH_TOKENS", t);
    }
    let mut server = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut ready = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(server.stdout.take().unwrap()),
        &mut ready,
    )
    .unwrap();
    (Server(server), grpc_port)
}

/// Latencies and wall time of `total` calls spread over `concurrency` tasks, each task awaiting
/// `call(task, i)` for its i-th request in turn. The latency clock starts after `call` returns its
/// future, so work `call` does up front (building the request) is not counted.
async fn drive<F, Fut>(concurrency: usize, total: usize, call: F) -> (Vec<Duration>, f64)
where
    F: Fn(usize, usize) -> Fut + Clone + Send + 'static,
    Fut: std::future::Future<Output = ()> + Send,
{
    let per_task = total / concurrency;
    let started = Instant::now();
    let mut tasks = Vec::new();
    for t in 0..concurrency {
        let call = call.clone();
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::with_capacity(per_task);
            for i in 0..per_task {
                let request = call(t, i);
                let s = Instant::now();
                request.await;
                lat.push(s.elapsed());
            }
            lat
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.unwrap());
    }
    let secs = started.elapsed().as_secs_f64();
    all.sort();
    (all, secs)
}

/// A small pool of HTTP/2 connections, as a production client keeps: one connection's frames are
/// read and written by one task on each side, whatever its stream count.
async fn channels(grpc_port: u16) -> Vec<tonic::transport::Channel> {
    let mut pool = Vec::new();
    for _ in 0..CONNECTIONS {
        let scheme = if secure().tls.is_some() {
            "https"
        } else {
            "http"
        };
        let mut endpoint =
            tonic::transport::Endpoint::from_shared(format!("{scheme}://127.0.0.1:{grpc_port}"))
                .unwrap()
                .tcp_nodelay(true);
        if let Some(ca) = &secure().ca {
            endpoint = endpoint
                .tls_config(
                    tonic::transport::ClientTlsConfig::new()
                        .ca_certificate(tonic::transport::Certificate::from_pem(ca))
                        .domain_name("localhost"),
                )
                .unwrap();
        }
        pool.push(endpoint.connect().await.unwrap());
    }
    pool
}

/// Runs the request matrix against one server, prints its rows and returns (rows, req/s) at
/// concurrency 16.
async fn load(grpc_port: u16, label: &str) -> Vec<(usize, f64)> {
    let pool = channels(grpc_port).await;
    let mut c16 = Vec::new();
    for rows in [1usize, 100] {
        for concurrency in [1usize, 16, 64] {
            if !selected(rows, concurrency) {
                continue;
            }
            let total = if rows == 1 { 20_000 } else { 4_000 } * scale();
            let pool = pool.clone();
            let (all, secs) = drive(concurrency, total, move |t, i| {
                let mut c = FeatureServingClient::new(pool[t % pool.len()].clone());
                let req = request(rows, t * 7919 + i);
                async move {
                    c.get_online_features(authorized(req)).await.unwrap();
                }
            })
            .await;
            let n = all.len();
            if concurrency == 16 {
                c16.push((rows, n as f64 / secs));
            }
            println!(
                "| {label} | {rows} x 5 | {concurrency} | {n} | {:.0} | {:.0} | {:.3} | {:.3} | {:.3} |",
                n as f64 / secs,
                (n * rows) as f64 / secs,
                percentile(&all, 0.5),
                percentile(&all, 0.99),
                percentile(&all, 0.999)
            );
        }
    }
    c16
}

/// The same server's `grpc.health.v1.Health/Check` at concurrency 16, through the same client
/// pool: a unary RPC that reads nothing and answers a few bytes, so its rate is the most any RPC
/// of this gRPC stack reaches on this machine, whatever its handler does.
async fn transport_floor(grpc_port: u16) -> f64 {
    use tonic_health::pb::HealthCheckRequest;
    use tonic_health::pb::health_client::HealthClient;
    let pool = channels(grpc_port).await;
    let (all, secs) = drive(16, 20_000 * scale(), move |t, _| {
        let mut c = HealthClient::new(pool[t % pool.len()].clone());
        async move {
            c.check(HealthCheckRequest::default()).await.unwrap();
        }
    })
    .await;
    all.len() as f64 / secs
}

fn main() {
    // One client thread: the generator, the server and Redis share two cores.
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    // The tests' RAII redis-server: a free loopback port, stopped on drop.
    let redis = redis_server::RedisServer::start();
    let port = redis.port;
    let url = redis.url();

    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    for (name, text) in REPO_FILES {
        let text = if name == "feature_store.yaml" {
            let auth = if secure().token.is_some() {
                "serving: {auth: {tokens_env: ASOF_BENCH_TOKENS}}\n"
            } else {
                ""
            };
            format!(
                "project: {PROJECT}\nonline_store: {{type: redis, connection_string: \"{url}\"}}\n{auth}"
            )
        } else {
            text.to_string()
        };
        std::fs::write(dir.join(name), text).unwrap();
    }
    generate_data(dir, chrono::Utc::now().timestamp_micros(), 1).unwrap();

    let bin = std::env::var("ASOF_BIN").unwrap_or_else(|_| {
        concat!(env!("CARGO_MANIFEST_DIR"), "/../../target/release/asof").to_string()
    });
    let repo_arg = dir.to_str().unwrap().to_string();
    for args in [&["apply"][..], &["materialize", "2000-01-01", "now"][..]] {
        let status = Command::new(&bin)
            .args(["--repo", &repo_arg, "-q"])
            .args(args)
            .status()
            .expect("the asof binary (ASOF_BIN)");
        assert!(status.success(), "asof {args:?} failed");
    }

    println!(
        "| server workers | entity rows x features | concurrency | requests | req/s | rows/s | p50 ms | p99 ms | p999 ms |"
    );
    println!("|---|---|---|---|---|---|---|---|---|");
    let mut c16 = Vec::new();
    // The server's default is one worker per core: label it with this machine's count.
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let default_label = format!("default ({cores})");
    for (workers, label) in [(None, default_label.as_str()), (Some(1), "1")] {
        let (server, grpc_port) = start_server(&bin, &repo_arg, workers);
        let results = rt.block_on(load(grpc_port, label));
        let floor = rt.block_on(transport_floor(grpc_port));
        c16.push((label, results, floor));
        if workers.is_none() && push_selected() {
            rt.block_on(push_load(grpc_port));
        }
        if workers.is_none() && aggregated_selected() {
            rt.block_on(aggregated_load(grpc_port));
        }
        drop(server);
    }

    // Raw Redis on the same server, the same lookups: the one MGET a request sends (2 keys per
    // entity row, the stored values), from redis-benchmark's C client with as many connections.
    println!();
    println!(
        "| entity rows | keys per MGET | redis-benchmark MGET req/s (16 clients) | server workers | asof req/s (c=16) | asof / raw Redis | gRPC floor req/s (Health/Check, c=16) | floor / raw Redis | asof / floor |"
    );
    println!("|---|---|---|---|---|---|---|---|---|");
    for rows in [1usize, 100] {
        let mut args = vec!["MGET".to_string()];
        args.extend(stage_raw_lookups(&url, rows));
        let raw = redis_benchmark(port, 16, if rows == 1 { 100_000 } else { 20_000 }, &args);
        for (label, results, floor) in &c16 {
            let Some(&(_, asof)) = results.iter().find(|r| r.0 == rows) else {
                continue;
            };
            println!(
                "| {rows} | {} | {raw:.0} | {label} | {asof:.0} | {:.0}% | {floor:.0} | {:.0}% | {:.0}% |",
                args.len() - 1,
                100.0 * asof / raw,
                100.0 * floor / raw,
                100.0 * asof / floor
            );
        }
    }
    drop(redis);
}
