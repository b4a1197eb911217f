//! Bad requests get INVALID_ARGUMENT and the server keeps serving; pushes never regress data; Redis
//! going away gives UNAVAILABLE (not a hang) and serving recovers when it returns; deleting a view's
//! keys removes its online data; reads sharing one Redis round trip each get their own rows.

use std::collections::HashMap;
use std::time::Duration;

use asof_server::convert::timestamp;
use asof_server::proto::v1::feature_serving_client::FeatureServingClient;
use asof_server::proto::v1::{
    FeatureList, FieldStatus, GetOnlineFeaturesRequest, ListFeatureViewsRequest,
    PushFeaturesRequest, PushTarget, RepeatedValue, Value, get_online_features_request::Kind,
    value,
};
use tonic::Code;
use tonic::transport::Channel;

use crate::redis_server::RedisServer;
use crate::setup::{Fixture, start_server};

pub(crate) fn v(kind: value::Kind) -> Value {
    Value { kind: Some(kind) }
}

pub(crate) fn request(
    features: &[&str],
    entities: &[(&str, Vec<Value>)],
) -> GetOnlineFeaturesRequest {
    GetOnlineFeaturesRequest {
        kind: Some(Kind::Features(FeatureList {
            features: features.iter().map(|s| s.to_string()).collect(),
        })),
        entities: entities
            .iter()
            .map(|(k, vals)| {
                (
                    k.to_string(),
                    RepeatedValue {
                        values: vals.clone(),
                    },
                )
            })
            .collect(),
        full_feature_names: false,
        as_of: None,
    }
}

async fn code_of(
    client: &mut FeatureServingClient<Channel>,
    req: GetOnlineFeaturesRequest,
) -> (Code, String) {
    let s = client.get_online_features(req).await.unwrap_err();
    (s.code(), s.message().to_string())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_requests_are_invalid_argument_and_serving_goes_on() {
    let fx = Fixture::new("online_store: {type: embedded, path: data/online}");
    let store = fx.store().await;
    let mut client = start_server(fx.registry(), store).await;
    let one = || vec![v(value::Kind::Int64Val(1001))];
    let cases = [
        (
            request(&["driver_hourly_stat:conv_rate"], &[("driver_id", one())]),
            "did you mean `driver_hourly_stats`",
        ),
        (
            request(&["driver_hourly_stats:conv"], &[("driver_id", one())]),
            "has no feature `conv`",
        ),
        (
            request(&["driver_hourly_stats:conv_rate"], &[]),
            "missing entity key `driver_id`",
        ),
        (
            request(
                &["driver_hourly_stats:conv_rate"],
                &[("driver_id", one()), ("rider_id", one())],
            ),
            "unknown entity key `rider_id`",
        ),
        (
            request(
                &["driver_hourly_stats", "customer_profile"],
                &[("driver_id", one()), ("customer_id", vec![])],
            ),
            "values but `customer_id` has 0",
        ),
        (
            request(
                &["driver_hourly_stats:conv_rate"],
                &[("driver_id", vec![v(value::Kind::DoubleVal(1.5))])],
            ),
            "is not a valid key",
        ),
    ];
    for (req, needle) in cases {
        let (code, msg) = code_of(&mut client, req).await;
        assert_eq!(code, Code::InvalidArgument, "{msg}");
        assert!(msg.contains(needle), "{msg} should contain {needle}");
    }
    let ok = client
        .get_online_features(request(
            &["driver_hourly_stats:conv_rate"],
            &[("driver_id", one())],
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        ok.results[1].statuses,
        vec![FieldStatus::NotFound as i32],
        "nothing materialized yet"
    );
    let views = client
        .list_feature_views(ListFeatureViewsRequest {})
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        views.feature_views.len(),
        4,
        "drivers, customers and documents"
    );
}

fn push(ts_ns: i64, rate: f32) -> PushFeaturesRequest {
    let mut columns = HashMap::new();
    columns.insert(
        "driver_id".to_string(),
        RepeatedValue {
            values: vec![v(value::Kind::Int64Val(4242))],
        },
    );
    columns.insert(
        "event_timestamp".to_string(),
        RepeatedValue {
            values: vec![v(value::Kind::TimestampVal(timestamp(ts_ns)))],
        },
    );
    columns.insert(
        "conv_rate".to_string(),
        RepeatedValue {
            values: vec![v(value::Kind::FloatVal(rate))],
        },
    );
    PushFeaturesRequest {
        feature_view: "driver_hourly_stats".into(),
        columns,
        to: PushTarget::Online as i32,
        deleted: Vec::new(),
    }
}

pub(crate) async fn pushes_never_regress(fx: &Fixture) {
    let store = fx.store().await;
    let mut client = start_server(fx.registry(), store).await;
    let now = asof_core::time::to_nanos(chrono::Utc::now());
    let r = client
        .push_features(push(now - 1000, 0.5))
        .await
        .unwrap()
        .into_inner();
    assert_eq!((r.written, r.skipped), (1, 0));
    let r = client
        .push_features(push(now - 5000, 0.1))
        .await
        .unwrap()
        .into_inner();
    assert_eq!((r.written, r.skipped), (0, 1), "an older row is skipped");
    let r = client
        .push_features(push(now - 1000, 0.9))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        (r.written, r.skipped),
        (0, 1),
        "a replay of the same time is skipped"
    );
    let got = client
        .get_online_features(request(
            &["driver_hourly_stats:conv_rate"],
            &[("driver_id", vec![v(value::Kind::Int64Val(4242))])],
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(got.results[1].values[0], v(value::Kind::FloatVal(0.5)));
    let bad = client
        .push_features(PushFeaturesRequest {
            feature_view: "driver_hourly_stats".into(),
            columns: HashMap::new(),
            to: PushTarget::Online as i32,
            deleted: Vec::new(),
        })
        .await
        .unwrap_err();
    assert_eq!(bad.code(), Code::InvalidArgument);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pushes_never_regress_on_redis() {
    let redis = RedisServer::start();
    let fx = Fixture::on_redis(&redis);
    pushes_never_regress(&fx).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pushes_never_regress_on_the_embedded_store() {
    let fx = Fixture::new("online_store: {type: embedded, path: data/online}");
    pushes_never_regress(&fx).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_outage_is_unavailable_then_recovers_and_view_data_can_be_deleted() {
    let mut redis = RedisServer::start();
    let port = redis.port;
    let fx = Fixture::on_redis(&redis);
    let store = fx.store().await;
    fx.materialize(
        store.as_ref(),
        fx.data_end - 30 * 86_400_000_000_000,
        fx.data_end,
    )
    .await;
    let mut client = start_server(fx.registry(), store.clone()).await;
    let req = || {
        request(
            &["driver_hourly_stats:conv_rate"],
            &[("driver_id", vec![v(value::Kind::Int64Val(1001))])],
        )
    };
    client.get_online_features(req()).await.unwrap();

    redis.stop();
    // A guard against hangs only: the server answers on its own (Redis timeouts are 2 s).
    let status = tokio::time::timeout(Duration::from_secs(60), client.get_online_features(req()))
        .await
        .expect("no hang")
        .unwrap_err();
    assert_eq!(status.code(), Code::Unavailable, "{}", status.message());

    let _redis = RedisServer::start_on(port);
    // The data is gone with that Redis (no persistence), but serving must recover by itself.
    let mut recovered = false;
    for _ in 0..100 {
        if let Ok(r) = client.get_online_features(req()).await {
            assert_eq!(
                r.into_inner().results[1].statuses,
                vec![FieldStatus::NotFound as i32]
            );
            recovered = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(recovered, "serving did not recover after Redis came back");

    // Re-materialize, then delete the view's keys as `apply` does for a deleted view.
    fx.materialize(
        store.as_ref(),
        fx.data_end - 30 * 86_400_000_000_000,
        fx.data_end + 1,
    )
    .await;
    let prefix = asof_core::keys::view_prefix(&fx.registry().project, "driver_hourly_stats");
    let deleted = store.delete_prefix(prefix).await.unwrap();
    assert_eq!(deleted as i64, asof_offline::quickstart::DRIVERS);
    let r = client
        .get_online_features(req())
        .await
        .unwrap()
        .into_inner();
    assert_eq!(r.results[1].statuses, vec![FieldStatus::NotFound as i32]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_write_call_mixes_newer_older_and_new_keys_on_redis() {
    use asof_core::value::{StoredRow, Value as V};
    let redis = RedisServer::start();
    let fx = Fixture::on_redis(&redis);
    let store = fx.store().await;
    let row = |ts: i64, created: Option<i64>| {
        StoredRow {
            event_ts: ts,
            created_ts: created,
            features: vec![("x".into(), V::Int64(ts))],
        }
        .encode()
    };
    assert_eq!(
        store
            .write(vec![
                (b"a".to_vec(), row(10, None)),
                (b"b".to_vec(), row(10, Some(5)))
            ])
            .await
            .unwrap(),
        2
    );
    let n = store
        .write(vec![
            (b"a".to_vec(), row(9, None)),     // older: skipped
            (b"b".to_vec(), row(10, Some(6))), // same time, later created: written
            (b"c".to_vec(), row(1, None)),     // new key: written
            (b"a".to_vec(), row(10, None)),    // replay: skipped
        ])
        .await
        .unwrap();
    assert_eq!(n, 2);
    let got = store
        .read(vec![b"a".to_vec(), b"b".to_vec(), b"c".to_vec()])
        .await
        .unwrap();
    let decoded: Vec<StoredRow> = got
        .into_iter()
        .map(|r| StoredRow::decode(&r.unwrap()).unwrap())
        .collect();
    assert_eq!(
        (
            decoded[0].event_ts,
            decoded[1].created_ts,
            decoded[2].event_ts
        ),
        (10, Some(6), 1)
    );
}

/// Reads issued together share one Redis round trip; each must still get exactly its own rows, in
/// its own key order, absent keys included.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_reads_each_get_their_own_rows_on_redis() {
    use asof_core::value::{StoredRow, Value as V};
    let redis = RedisServer::start();
    let fx = Fixture::on_redis(&redis);
    let store = fx.store().await;
    fn key(i: i64) -> Vec<u8> {
        format!("k{i}").into_bytes()
    }
    let rows = (0..100)
        .map(|i| {
            let row = StoredRow {
                event_ts: i,
                created_ts: None,
                features: vec![("x".into(), V::Int64(i))],
            };
            (key(i), row.encode())
        })
        .collect();
    assert_eq!(store.write(rows).await.unwrap(), 100);

    let wanted = |r: i64| vec![key(r % 100), b"absent".to_vec(), key(r * 7 % 100)];
    let reads = (0..300).map(|r| {
        let store = store.clone();
        // Half from one task (polled in one turn), half from tasks of their own.
        let read = async move { store.read(wanted(r)).await.unwrap() };
        async move {
            if r % 2 == 0 {
                read.await
            } else {
                tokio::spawn(read).await.unwrap()
            }
        }
    });
    let answers = futures::future::join_all(reads).await;
    for (r, got) in (0..).zip(answers) {
        let ts: Vec<Option<i64>> = got
            .iter()
            .map(|row| row.as_ref().map(|b| StoredRow::decode(b).unwrap().event_ts))
            .collect();
        assert_eq!(ts, [Some(r % 100), None, Some(r * 7 % 100)], "read {r}");
    }
}
