//! `asof stream` and `asof serve --stream` against a real PostgreSQL: changes reach serving,
//! training sets and indexes; a killed stream resumes exactly; bad setups fail with their fix.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use datafusion::arrow::array::{Array, AsArray};
use datafusion::arrow::datatypes::{DataType, Int64Type, TimestampNanosecondType};

use crate::postgres_server::{PASSWORD, Postgres, parse_lsn};
use crate::server::Server;
use crate::util::{TestRepo, read_parquet};

const PASSWORD_ENV: (&str, &str) = ("ASOF_PG_PASSWORD", PASSWORD);

fn view_defs(url: &str, table: &str) -> String {
    format!(
        "sources:\n  - name: live_src\n    type: postgres\n    connection: {url}\n    password_env: ASOF_PG_PASSWORD\n    table: {table}\n\
         feature_views:\n  - name: driver_live\n    entities: [driver]\n    source: live_src\n    features:\n\
         \x20     - {{name: conv_rate, dtype: float32}}\n      - {{name: trips, dtype: int64}}\n"
    )
}

/// A repo whose `driver_live` view follows `table` on `pg`'s `rides` database.
fn live_repo(pg: &Postgres, table: &str) -> TestRepo {
    let repo = TestRepo::init();
    repo.write("live.yaml", &view_defs(&pg.url("rides"), table));
    repo.run(&["apply"]).assert().success();
    repo
}

fn rides(pg: &Postgres, setup: &str) {
    pg.psql("postgres", "CREATE DATABASE rides");
    pg.psql("rides", setup);
}

/// A running `asof stream`, killed when dropped.
struct Stream {
    child: Child,
}

impl Stream {
    fn start(repo: &TestRepo, env: &[(&str, &str)]) -> Stream {
        let mut child = Command::new(env!("CARGO_BIN_EXE_asof"))
            .args(["--repo", repo.dir.to_str().unwrap(), "stream"])
            .envs(env.iter().copied())
            .env_remove("ASOF_REPO")
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut banner = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut banner)
            .unwrap();
        assert!(banner.starts_with("asof streaming"), "{banner:?}");
        Stream { child }
    }

    fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    fn running(&mut self) -> bool {
        self.child.try_wait().unwrap().is_none()
    }
}

impl Drop for Stream {
    fn drop(&mut self) {
        self.kill();
    }
}

fn wait_until(what: &str, timeout: Duration, mut ok: impl FnMut() -> bool) {
    let start = Instant::now();
    while !ok() {
        assert!(start.elapsed() < timeout, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The stream's checkpointed LSN.
fn checkpoint_lsn(repo: &TestRepo, slot: &str) -> Option<u64> {
    let text = std::fs::read_to_string(repo.path(&format!("data/streams/{slot}.json"))).ok()?;
    let v: serde_json::Value = serde_json::from_str(&text).ok()?;
    Some(parse_lsn(v["lsn"].as_str()?))
}

type Row = (f32, Option<i64>);

/// The table: driver id -> (conv_rate, trips).
fn table(pg: &Postgres, table: &str) -> BTreeMap<i64, Row> {
    pg.psql(
        "rides",
        &format!("SELECT driver_id, conv_rate, trips FROM {table}"),
    )
    .lines()
    .filter(|l| !l.is_empty())
    .map(|l| {
        let f: Vec<&str> = l.split('|').collect();
        (
            f[0].parse().unwrap(),
            (f[1].parse().unwrap(), f[2].parse().ok()),
        )
    })
    .collect()
}

/// What the server answers for `ids` as of `as_of` (RFC 3339); absent ids are NOT_FOUND.
fn online(server: &Server, ids: &[i64], as_of: Option<&str>) -> BTreeMap<i64, Row> {
    let list: Vec<String> = ids.iter().map(i64::to_string).collect();
    let entity = format!("driver_id={}", list.join(","));
    let url = server.url();
    let mut args = vec![
        "query",
        "--server",
        &url,
        "--features",
        "driver_live:conv_rate,driver_live:trips",
        "--entity",
        &entity,
        "--output",
        "json",
    ];
    if let Some(t) = as_of {
        args.extend(["--as-of", t]);
    }
    let out = crate::util::asof().args(&args).output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let rows: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout).unwrap();
    let mut got = BTreeMap::new();
    for r in rows {
        if r["conv_rate"]["status"] != "PRESENT" {
            continue;
        }
        let id: i64 = r["driver_id"]["value"].as_str().unwrap().parse().unwrap();
        let rate: f32 = r["conv_rate"]["value"].as_str().unwrap().parse().unwrap();
        let trips = r["trips"]["value"].as_str().unwrap().parse().ok();
        got.insert(id, (rate, trips));
    }
    got
}

/// The training set (CSV) of `features` for every id in `ids` at each of `instants` (RFC 3339,
/// UTC), in that order.
fn training_set_at<'a>(
    repo: &TestRepo,
    ids: &[i64],
    instants: impl Iterator<Item = &'a str>,
    features: &str,
) -> String {
    let mut csv = String::from("driver_id,event_timestamp\n");
    for at in instants {
        for id in ids {
            csv.push_str(&format!("{id},{}\n", at.trim_end_matches('Z')));
        }
    }
    repo.write("entities.csv", &csv);
    repo.run(&[
        "training-set",
        "--entities",
        "entities.csv",
        "--features",
        features,
        "--output",
        "out.csv",
    ])
    .assert()
    .success();
    repo.read("out.csv")
}

/// Every push log file of `view`.
fn push_log_files(repo: &TestRepo, view: &str) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    let root = repo.path(&format!("data/push_log/{view}"));
    for day in std::fs::read_dir(root).unwrap().flatten() {
        for f in std::fs::read_dir(day.path()).unwrap().flatten() {
            if f.file_name().to_string_lossy().ends_with(".parquet") {
                out.push(f.path());
            }
        }
    }
    out
}

#[test]
fn online_follows_the_table_and_training_sets_match_what_serving_answered() {
    let pg = Postgres::start();
    rides(
        &pg,
        "CREATE TABLE driver_live (driver_id bigint PRIMARY KEY, conv_rate real NOT NULL, trips bigint);\
         INSERT INTO driver_live SELECT i, i / 10.0, i FROM generate_series(1, 5) i",
    );
    let repo = live_repo(&pg, "public.driver_live");
    let server = Server::start(&repo, &["--stream"], &[PASSWORD_ENV]);
    let ids = [1, 2, 3, 4, 5, 6, 40];
    let steps = [
        "UPDATE driver_live SET conv_rate = 0.95, trips = 11 WHERE driver_id = 1",
        "INSERT INTO driver_live VALUES (6, 0.6, 6)",
        "DELETE FROM driver_live WHERE driver_id = 2",
        "BEGIN; UPDATE driver_live SET trips = 30 WHERE driver_id = 3; UPDATE driver_live SET trips = 31, conv_rate = 0.33 WHERE driver_id = 3; COMMIT",
        "UPDATE driver_live SET driver_id = 40 WHERE driver_id = 4",
        "DELETE FROM driver_live WHERE driver_id = 6",
        "INSERT INTO driver_live VALUES (2, 0.22, 22)",
        "UPDATE driver_live SET trips = NULL WHERE driver_id = 5",
    ];
    // After the snapshot and after each change: wait until serving equals the table, then
    // record what serving answers as of a moment after.
    let mut recorded: Vec<(String, BTreeMap<i64, Row>)> = Vec::new();
    for step in std::iter::once(None).chain(steps.iter().map(Some)) {
        if let Some(sql) = step {
            pg.psql("rides", sql);
        }
        let want = table(&pg, "driver_live");
        wait_until(
            &format!("serving to show {step:?}"),
            Duration::from_secs(30),
            || online(&server, &ids, None) == want,
        );
        std::thread::sleep(Duration::from_millis(5));
        let at = chrono::Utc::now()
            .format("%Y-%m-%dT%H:%M:%S%.6fZ")
            .to_string();
        let answered = online(&server, &ids, Some(&at));
        assert_eq!(answered, want, "as of {at}, after {step:?}");
        recorded.push((at, answered));
    }

    // The training set at each recorded instant equals what serving answered then.
    let out = training_set_at(
        &repo,
        &ids,
        recorded.iter().map(|(at, _)| at.as_str()),
        "driver_live:conv_rate,driver_live:trips",
    );
    let mut lines = out.lines();
    assert_eq!(
        lines.next(),
        Some("driver_id,event_timestamp,conv_rate,trips")
    );
    for (at, answered) in &recorded {
        for id in ids {
            let line = lines.next().unwrap();
            let f: Vec<&str> = line.split(',').collect();
            assert_eq!(f[0], id.to_string());
            let got = (!f[2].is_empty()).then(|| (f[2].parse::<f32>().unwrap(), f[3].parse().ok()));
            assert_eq!(
                got.as_ref(),
                answered.get(&id),
                "driver {id} as of {at}: the training set says {line}"
            );
        }
    }
    assert!(
        server
            .metrics()
            .contains("asof_stream_commit_to_visible_seconds_count{source=\"live_src\"}"),
        "commit-to-visible latency is measured"
    );
}

/// A driver's `(clicks_1h, dwell_sum_1h)`.
type Clicks = (i64, Option<f64>);

/// Per driver: its clicks as the server answers as of `as_of`.
fn online_clicks(server: &Server, ids: &[i64], as_of: Option<&str>) -> BTreeMap<i64, Clicks> {
    let list: Vec<String> = ids.iter().map(i64::to_string).collect();
    let entity = format!("driver_id={}", list.join(","));
    let url = server.url();
    let mut args = vec![
        "query",
        "--server",
        &url,
        "--features",
        "driver_clicks:clicks_1h,driver_clicks:dwell_sum_1h",
        "--entity",
        &entity,
        "--output",
        "json",
    ];
    if let Some(t) = as_of {
        args.extend(["--as-of", t]);
    }
    let out = crate::util::asof().args(&args).output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let rows: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout).unwrap();
    rows.iter()
        .map(|r| {
            let id: i64 = r["driver_id"]["value"].as_str().unwrap().parse().unwrap();
            let count: i64 = r["clicks_1h"]["value"].as_str().unwrap().parse().unwrap();
            let sum = r["dwell_sum_1h"]["value"]
                .as_str()
                .and_then(|v| v.parse().ok());
            (id, (count, sum))
        })
        .collect()
}

#[test]
fn inserts_are_events_of_an_aggregated_view_online_and_offline_alike() {
    let pg = Postgres::start();
    rides(
        &pg,
        "CREATE TABLE clicks (id bigserial PRIMARY KEY, driver_id bigint NOT NULL, dwell double precision);\
         INSERT INTO clicks (driver_id, dwell) VALUES (1, 1.5), (1, 2.5), (2, 4.0)",
    );
    let repo = TestRepo::init();
    repo.write(
        "clicks.yaml",
        &format!(
            "sources:\n  - name: clicks_src\n    type: postgres\n    connection: {}\n    password_env: ASOF_PG_PASSWORD\n    table: public.clicks\n\
             feature_views:\n  - name: driver_clicks\n    entities: [driver]\n    source: clicks_src\n    aggregations:\n\
             \x20     - {{name: clicks_1h, function: count, window: 1h}}\n\
             \x20     - {{name: dwell_sum_1h, column: dwell, function: sum, window: 1h, dtype: float64}}\n",
            pg.url("rides")
        ),
    );
    repo.run(&["apply"]).assert().success();
    let server = Server::start(&repo, &["--stream"], &[PASSWORD_ENV]);
    let ids = [1, 2, 3];
    // Every insert is an event, even two equal ones in one transaction; an update or delete of an
    // event row changes nothing (what happened stays counted).
    let steps: [(&str, [Clicks; 3]); 4] = [
        (
            "BEGIN; INSERT INTO clicks (driver_id, dwell) VALUES (1, 10.0); INSERT INTO clicks (driver_id, dwell) VALUES (1, 10.0); COMMIT",
            [(4, Some(24.0)), (1, Some(4.0)), (0, None)],
        ),
        (
            "UPDATE clicks SET dwell = 99 WHERE driver_id = 2",
            [(4, Some(24.0)), (1, Some(4.0)), (0, None)],
        ),
        (
            "DELETE FROM clicks WHERE driver_id = 2",
            [(4, Some(24.0)), (1, Some(4.0)), (0, None)],
        ),
        (
            "INSERT INTO clicks (driver_id, dwell) VALUES (3, NULL)",
            [(4, Some(24.0)), (1, Some(4.0)), (1, None)],
        ),
    ];
    let snapshot = [(2, Some(4.0)), (1, Some(4.0)), (0, None)];
    let mut recorded = Vec::new();
    for (sql, want) in
        std::iter::once((None, snapshot)).chain(steps.iter().map(|(s, w)| (Some(*s), *w)))
    {
        if let Some(sql) = sql {
            pg.psql("rides", sql);
        }
        let want: BTreeMap<i64, Clicks> = ids.iter().copied().zip(want).collect();
        // The last step is the only one that changes what serving shows; the others are waited
        // for through the stream's checkpoint passing them.
        let lsn = parse_lsn(pg.psql("rides", "SELECT pg_current_wal_lsn()").trim());
        wait_until(
            &format!("the stream to apply {sql:?}"),
            Duration::from_secs(30),
            || {
                checkpoint_lsn(&repo, "asof_rideshare_clicks_src").is_some_and(|c| c >= lsn)
                    && online_clicks(&server, &ids, None) == want
            },
        );
        let at = chrono::Utc::now()
            .format("%Y-%m-%dT%H:%M:%S%.6fZ")
            .to_string();
        assert_eq!(
            online_clicks(&server, &ids, Some(&at)),
            want,
            "after {sql:?}"
        );
        recorded.push((at, want));
    }

    // The training set at each recorded instant equals what serving answered then.
    let out = training_set_at(
        &repo,
        &ids,
        recorded.iter().map(|(at, _)| at.as_str()),
        "driver_clicks:clicks_1h,driver_clicks:dwell_sum_1h",
    );
    let mut lines = out.lines().skip(1);
    for (at, want) in &recorded {
        for id in ids {
            let line = lines.next().unwrap();
            let f: Vec<&str> = line.split(',').collect();
            let got = (f[2].parse::<i64>().unwrap(), f[3].parse::<f64>().ok());
            assert_eq!(Some(&got), want.get(&id), "driver {id} as of {at}: {line}");
        }
    }
}

#[test]
fn a_killed_stream_resumes_without_losing_or_repeating_a_change() {
    let pg = Postgres::start();
    rides(
        &pg,
        "CREATE TABLE driver_live (driver_id bigint PRIMARY KEY, conv_rate real NOT NULL, trips bigint NOT NULL);\
         INSERT INTO driver_live SELECT i, 0, 0 FROM generate_series(1, 1000) i",
    );
    let repo = live_repo(&pg, "public.driver_live");
    let slot = "asof_rideshare_live_src";
    let mut stream = Stream::start(&repo, &[PASSWORD_ENV]);
    wait_until("the snapshot", Duration::from_secs(30), || {
        checkpoint_lsn(&repo, slot).is_some()
    });
    let snapshot_lsn = checkpoint_lsn(&repo, slot).unwrap();

    // 100 transactions of 500 changes each (every row of one half of the table, once).
    let mut script = String::new();
    for t in 0..100 {
        let lo = (t % 2) * 500 + 1;
        script.push_str(&format!(
            "BEGIN; UPDATE driver_live SET trips = trips + 1, conv_rate = {t} WHERE driver_id BETWEEN {lo} AND {}; COMMIT;\n",
            lo + 499
        ));
    }
    let mut burst = pg.spawn_psql("rides", &script);
    // Kill it mid-burst: after it applied something, before the burst ends.
    wait_until("a first batch", Duration::from_secs(60), || {
        checkpoint_lsn(&repo, slot).is_some_and(|l| l > snapshot_lsn)
    });
    stream.kill();
    let mut stream = Stream::start(&repo, &[PASSWORD_ENV]);
    assert!(burst.wait().unwrap().success());
    let end = pg.current_lsn("rides");
    wait_until("the stream to catch up", Duration::from_secs(120), || {
        checkpoint_lsn(&repo, slot).is_some_and(|l| l >= end)
    });
    assert!(stream.running());
    drop(stream);

    // Online equals the table.
    let server = Server::start(&repo, &[], &[]);
    let want = table(&pg, "driver_live");
    let ids: Vec<i64> = want.keys().copied().collect();
    assert_eq!(online(&server, &ids, None), want);

    // The push log holds the snapshot and each of the 50,000 changes exactly once.
    let mut seen = std::collections::HashSet::new();
    let mut rows = 0;
    for file in push_log_files(&repo, "driver_live") {
        for b in read_parquet(&file) {
            let id = b
                .column_by_name("driver_id")
                .unwrap()
                .as_primitive::<Int64Type>();
            let commit = b.column_by_name("_asof_commit_time").unwrap();
            assert!(matches!(commit.data_type(), DataType::Timestamp(_, _)));
            let commit = commit.as_primitive::<TimestampNanosecondType>();
            for i in 0..b.num_rows() {
                rows += 1;
                assert!(
                    seen.insert((id.value(i), commit.value(i))),
                    "driver {} at {} logged twice ({})",
                    id.value(i),
                    commit.value(i),
                    file.display()
                );
            }
        }
    }
    assert_eq!(rows, 1000 + 50_000);
}

#[test]
fn document_changes_reembed_only_what_changed_and_deletes_never_come_back() {
    let pg = Postgres::start();
    rides(
        &pg,
        "CREATE TABLE policies (doc_id text PRIMARY KEY, body text NOT NULL, team text, updated_at timestamptz NOT NULL DEFAULT now());\
         INSERT INTO policies (doc_id, body, team) SELECT 'p' || i, 'Policy ' || i || ' covers refunds for ride type ' || i || ' within ' || i || ' days.', 'support' FROM generate_series(1, 100) i;\
         ALTER TABLE policies ALTER COLUMN body SET STORAGE EXTERNAL;\
         INSERT INTO policies (doc_id, body, team) SELECT 'big', string_agg(md5(i::text), ' '), 'support' FROM generate_series(1, 200) i",
    );
    let repo = TestRepo::init();
    repo.write(
        "policies.yaml",
        &format!(
            "document_indexes:\n  - name: policies\n    entity: document\n    source: {{type: postgres, connection: \"{}\", password_env: ASOF_PG_PASSWORD, table: public.policies, id_column: doc_id, text_column: body, updated_at_column: updated_at}}\n    embedding: {{provider: hashing, model: hashing-v1, dims: 64}}\n    reranker_features: [\"document_stats:popularity\"]\n",
            pg.url("rides")
        ),
    );
    repo.run(&["apply"]).assert().success();
    let server = Server::start(&repo, &["--stream"], &[PASSWORD_ENV]);
    let embedded = || {
        server
            .metrics()
            .lines()
            .find(|l| l.starts_with("asof_index_texts_embedded_total{index=\"policies\"}"))
            .and_then(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
    };
    // 101 documents of one chunk each; the big one's 6 KB body is stored out of line (TOASTed).
    wait_until("the snapshot", Duration::from_secs(30), || {
        checkpoint_lsn(&repo, "asof_rideshare_policies").is_some()
    });
    let before = embedded().unwrap();
    assert_eq!(before, 101, "chunks embedded by the snapshot");

    pg.psql(
        "rides",
        "UPDATE policies SET body = 'Policy ' || doc_id || ' was rewritten: scooters get no refunds.', updated_at = now() WHERE doc_id IN ('p10', 'p20', 'p30');\
         UPDATE policies SET team = 'legal' WHERE doc_id = 'p40';\
         UPDATE policies SET team = 'archive' WHERE doc_id = 'big';\
         DELETE FROM policies WHERE doc_id IN ('p7', 'p8')",
    );
    let end = pg.current_lsn("rides");
    wait_until("the changes", Duration::from_secs(30), || {
        checkpoint_lsn(&repo, "asof_rideshare_policies").is_some_and(|l| l >= end)
    });
    assert_eq!(
        embedded(),
        Some(before + 3),
        "only the 3 edited chunks were embedded again (not the unchanged TOASTed text)"
    );

    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        use asof_server::proto::v1::feature_serving_client::FeatureServingClient;
        use asof_server::proto::v1::search_documents_request::Query;
        use asof_server::proto::v1::{
            DocumentHit, QueryVector, RetrieveAndRankRequest, SearchDocumentsRequest,
            retrieve_and_rank_request,
        };
        let client = FeatureServingClient::connect(server.url()).await.unwrap();
        let search = |query: Query, k: u32, filter: Option<(&str, &str)>| {
            let mut client = client.clone();
            let filters = filter
                .map(|(f, v)| [(f.to_string(), v.to_string())].into())
                .unwrap_or_default();
            async move {
                let request = SearchDocumentsRequest {
                    index: "policies".into(),
                    query: Some(query),
                    k,
                    filters,
                    ..Default::default()
                };
                client
                    .search_documents(request)
                    .await
                    .unwrap()
                    .into_inner()
                    .hits
            }
        };
        let ids = |hits: &[DocumentHit]| -> Vec<String> {
            let mut ids: Vec<String> = hits.iter().map(|h| h.doc_id.clone()).collect();
            ids.sort_unstable();
            ids
        };
        let deleted =
            |hits: &[DocumentHit]| hits.iter().any(|h| h.doc_id == "p7" || h.doc_id == "p8");
        for text in [
            "Policy 7 covers refunds for ride type 7 within 7 days.",
            "Policy 8 covers refunds",
        ] {
            let hits = search(Query::Text(text.into()), 200, None).await;
            assert!(
                hits.len() >= 99,
                "every live document's chunks: {}",
                hits.len()
            );
            assert!(!deleted(&hits), "text search returned a deleted document");
            let ranked = client
                .clone()
                .retrieve_and_rank(RetrieveAndRankRequest {
                    index: "policies".into(),
                    query: Some(retrieve_and_rank_request::Query::Text(text.into())),
                    k: 200,
                    ..Default::default()
                })
                .await
                .unwrap()
                .into_inner()
                .hits;
            assert!(
                !deleted(&ranked),
                "RetrieveAndRank returned a deleted document"
            );
        }
        let by_id = search(Query::Text("refunds".into()), 10, Some(("doc_id", "p7"))).await;
        assert!(by_id.is_empty(), "a doc_id filter found a deleted document");
        let vector = Query::Vector(QueryVector {
            values: vec![0.125; 64],
            model: "hashing/hashing-v1/64".into(),
        });
        assert!(
            !deleted(&search(vector, 200, None).await),
            "vector search returned a deleted document"
        );
        let edited = search(Query::Text("scooters get no refunds".into()), 3, None).await;
        assert_eq!(
            ids(&edited),
            ["p10", "p20", "p30"],
            "the edited text is what is indexed"
        );
        let legal = search(Query::Text("refunds".into()), 10, Some(("team", "legal"))).await;
        assert_eq!(
            ids(&legal),
            ["p40"],
            "a metadata-only change refreshes the metadata"
        );
    });
}

#[test]
fn a_stream_reconnects_when_postgres_restarts() {
    let pg = Postgres::start();
    rides(
        &pg,
        "CREATE TABLE driver_live (driver_id bigint PRIMARY KEY, conv_rate real NOT NULL, trips bigint);\
         INSERT INTO driver_live VALUES (1, 0.1, 1)",
    );
    let repo = live_repo(&pg, "public.driver_live");
    let mut stream = Stream::start(&repo, &[PASSWORD_ENV]);
    let slot = "asof_rideshare_live_src";
    wait_until("the snapshot", Duration::from_secs(30), || {
        checkpoint_lsn(&repo, slot).is_some()
    });
    pg.restart();
    pg.psql("rides", "INSERT INTO driver_live VALUES (2, 0.2, 2)");
    // Read what the stream wrote as it writes it (the embedded store takes readers beside it).
    let server = Server::start(&repo, &[], &[]);
    let want = table(&pg, "driver_live");
    wait_until(
        "the change after the restart",
        Duration::from_secs(120),
        || online(&server, &[1, 2], None) == want,
    );
    assert!(stream.running(), "the stream survived the restart");
}

/// `asof stream` on `repo` fails at once with a message that contains each of `needles`.
fn fails_with(repo: &TestRepo, env: &[(&str, &str)], needles: &[&str]) {
    let out = crate::util::asof()
        .args(["--repo", repo.dir.to_str().unwrap(), "stream"])
        .envs(env.iter().copied())
        .timeout(Duration::from_secs(60))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    for n in needles {
        assert!(stderr.contains(n), "`{n}` is not in:\n{stderr}");
    }
}

#[test]
fn each_bad_setup_fails_with_its_fix() {
    let pg = Postgres::start();
    rides(
        &pg,
        "CREATE TABLE driver_live (driver_id bigint PRIMARY KEY, conv_rate real NOT NULL, trips bigint);\
         CREATE TABLE no_key (driver_id bigint, conv_rate real, trips bigint);\
         CREATE TABLE odd (driver_id bigint PRIMARY KEY, conv_rate interval, trips bigint);\
         CREATE ROLE reader LOGIN PASSWORD 'reader-pw'",
    );
    let repo = live_repo(&pg, "public.driver_live");
    fails_with(
        &repo,
        &[("ASOF_PG_PASSWORD", "wrong")],
        &["refused the password", "ASOF_PG_PASSWORD"],
    );
    fails_with(&repo, &[], &["ASOF_PG_PASSWORD", "is not set"]);

    let no_key = live_repo(&pg, "public.no_key");
    fails_with(
        &no_key,
        &[PASSWORD_ENV],
        &["no primary key", "ADD PRIMARY KEY (driver_id)"],
    );

    let odd = live_repo(&pg, "public.odd");
    fails_with(
        &odd,
        &[PASSWORD_ENV],
        &["conv_rate", "interval", "declare a matching dtype"],
    );

    let reader = TestRepo::init();
    reader.write(
        "live.yaml",
        &view_defs(
            &pg.url("rides").replace("asof@", "reader@"),
            "public.driver_live",
        ),
    );
    reader.run(&["apply"]).assert().success();
    fails_with(
        &reader,
        &[("ASOF_PG_PASSWORD", "reader-pw")],
        &["REPLICATION", "ALTER ROLE"],
    );

    let replica = Postgres::start_with("replica");
    replica.psql("postgres", "CREATE DATABASE rides");
    replica.psql(
        "rides",
        "CREATE TABLE driver_live (driver_id bigint PRIMARY KEY, conv_rate real, trips bigint)",
    );
    let on_replica = live_repo(&replica, "public.driver_live");
    fails_with(
        &on_replica,
        &[PASSWORD_ENV],
        &["wal_level", "ALTER SYSTEM SET wal_level = logical"],
    );

    // A password in the URL is refused by `apply` already, naming the file.
    let leaky = TestRepo::init();
    leaky.write(
        "live.yaml",
        &view_defs(&pg.url("rides").replace("asof@", "asof:secret@"), "t"),
    );
    let out = leaky
        .run(&["apply"])
        .assert()
        .failure()
        .get_output()
        .clone();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("live.yaml") && stderr.contains("password_env"),
        "{stderr}"
    );
}
