//! Aggregated views online equal the training set: events pushed live (and materialized from the
//! batch source) are aggregated at read time by the rule the offline operator slides, at every
//! `as_of` (between events, on an event, at a window's edge, after the last event aged out), on
//! Redis and on the embedded store. Replayed pushes change nothing.

use std::collections::HashMap;
use std::sync::Arc;

use asof_core::FeatureRequest;
use asof_offline::{OfflineStore, TrainingSetOptions};
use asof_server::convert::{from_proto, timestamp};
use asof_server::proto::v1::{PushFeaturesRequest, PushTarget, RepeatedValue, value};
use asof_server::service::Serving;
use datafusion::arrow::array::StringArray;

use crate::robustness::{request, v};
use crate::setup::{Fixture, entity_table};

const SEC: i64 = 1_000_000_000;
const HOUR: i64 = 3_600 * SEC;
const FEATURES: [&str; 4] = [
    "document_clicks:clicks_7d",
    "document_clicks:clicks_1h",
    "document_clicks:dwell_mean_1d",
    "document_clicks:dwell_max_1d",
];

fn push(events: &[(&str, i64, Option<f64>)]) -> PushFeaturesRequest {
    PushFeaturesRequest {
        feature_view: "document_clicks".into(),
        columns: HashMap::from([
            (
                "doc_id".into(),
                RepeatedValue {
                    values: events
                        .iter()
                        .map(|e| v(value::Kind::StringVal(e.0.into())))
                        .collect(),
                },
            ),
            (
                "ts".into(),
                RepeatedValue {
                    values: events
                        .iter()
                        .map(|e| v(value::Kind::TimestampVal(timestamp(e.1))))
                        .collect(),
                },
            ),
            (
                "dwell_s".into(),
                RepeatedValue {
                    values: events
                        .iter()
                        .map(|e| match e.2 {
                            Some(d) => v(value::Kind::DoubleVal(d)),
                            None => Default::default(),
                        })
                        .collect(),
                },
            ),
        ]),
        to: PushTarget::OnlineAndOffline as i32,
        deleted: Vec::new(),
    }
}

async fn online_equals_offline(fx: Fixture) {
    let store = fx.store().await;
    let serving =
        Serving::new(fx.registry(), Arc::clone(&store)).with_push_log(fx.dir.join("data/push_log"));
    let t0 = fx.data_end + HOUR;
    // Documents the batch source never clicked, so every event below comes from a push: ties,
    // a null dwell, an event exactly a window before a read, and equal events twice in one push.
    let a = "live-a";
    let b = "live-b";
    let events = [
        (a, t0, Some(10.0)),
        (a, t0, Some(30.0)),
        (a, t0 + 10 * SEC, None),
        (a, t0 + HOUR, Some(5.0)),
        (b, t0 + 30 * SEC, Some(7.5)),
        (b, t0 + 30 * SEC, Some(7.5)),
    ];
    let r = serving.push_features(push(&events)).await.unwrap();
    assert_eq!(
        (r.written, r.logged),
        (6, 6),
        "equal events of one push both count"
    );
    let r = serving.push_features(push(&events[..2])).await.unwrap();
    assert_eq!(r.written, 0, "a replayed push adds nothing online");
    // A batch-source document too: its history comes online through materialization.
    let history = "payments-000";
    fx.materialize(store.as_ref(), fx.data_end - 3 * 24 * HOUR, fx.data_end)
        .await;

    let reads = [
        t0 - 1,
        t0,
        t0 + 5 * SEC,
        t0 + HOUR,
        t0 + HOUR + 10 * SEC,
        t0 + 2 * HOUR,
        t0 + 24 * HOUR,
        t0 + HOUR + 24 * HOUR,
        t0 + 8 * 24 * HOUR,
    ];
    let docs = [a, b, history, "never-clicked"];
    let mut keys = Vec::new();
    let mut times = Vec::new();
    for &t in &reads {
        for d in docs {
            keys.push(d.to_string());
            times.push(t);
        }
    }
    let entities = entity_table(
        vec![("doc_id", Arc::new(StringArray::from(keys.clone())))],
        times.clone(),
    );
    let catalog = fx.registry().catalog();
    let refs: Vec<String> = FEATURES.iter().map(|s| s.to_string()).collect();
    let req = FeatureRequest::resolve(&catalog, &refs, false).unwrap();
    let offline = OfflineStore::new(&fx.dir)
        .with_push_log(fx.dir.join("data/push_log"))
        .training_set(&entities, &req, &TrainingSetOptions::default())
        .await
        .unwrap();

    let mut checked_nonzero = 0;
    for (i, (doc, t)) in keys.iter().zip(&times).enumerate() {
        let mut online = request(
            &FEATURES,
            &[("doc_id", vec![v(value::Kind::StringVal(doc.clone()))])],
        );
        online.as_of = Some(timestamp(*t));
        let got = serving.get_online_features(online).await.unwrap();
        for (j, f) in FEATURES.iter().enumerate() {
            let name = f.split_once(':').unwrap().1;
            let column = offline.column_by_name(name).unwrap();
            let want = asof_offline::types::value_at(column, i);
            let served = from_proto(&got.results[1 + j].values[0]);
            assert_eq!(
                served,
                want,
                "{name} of {doc} as of t0{:+}s: online {served:?}, training set {want:?}",
                (t - t0) / SEC
            );
            if name == "clicks_7d" && served != asof_core::value::Value::Int64(0) {
                checked_nonzero += 1;
            }
        }
    }
    assert!(
        checked_nonzero >= 10,
        "the comparison covered windows with events"
    );

    // Spot checks of the rule itself, beside the equality.
    let mut online = request(
        &FEATURES,
        &[("doc_id", vec![v(value::Kind::StringVal(a.into()))])],
    );
    online.as_of = Some(timestamp(t0 + HOUR));
    let got = serving.get_online_features(online).await.unwrap();
    let vals: Vec<_> = got.results[1..]
        .iter()
        .map(|r| from_proto(&r.values[0]))
        .collect();
    use asof_core::value::Value;
    assert_eq!(
        vals,
        [
            Value::Int64(4),
            Value::Int64(2),
            Value::Float64(15.0),
            Value::Float64(30.0)
        ],
        "at t0+1h: 4 events in 7d; (t-1h, t] holds t0+10s and t0+1h only (t0 is exactly 1h old)"
    );

    // Status counts the entity logs and their size.
    let views = asof_server::status::views(&fx.registry(), store.as_ref(), chrono::Utc::now())
        .await
        .unwrap();
    let clicks = views.iter().find(|v| v.view == "document_clicks").unwrap();
    assert!(clicks.rows >= 3, "{clicks:?}");
    assert!(clicks.event_log_bytes.is_some_and(|b| b > 0), "{clicks:?}");
    assert_eq!(
        views
            .iter()
            .find(|v| v.view == "document_stats")
            .unwrap()
            .event_log_bytes,
        None
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aggregated_views_online_equal_the_training_set_on_the_embedded_store() {
    online_equals_offline(Fixture::new(
        "online_store: {type: embedded, path: data/online}",
    ))
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aggregated_views_online_equal_the_training_set_on_redis() {
    let redis = crate::redis_server::RedisServer::start();
    online_equals_offline(Fixture::on_redis(&redis)).await;
}
