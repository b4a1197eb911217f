//! Pushes land where their target says, and what lands offline is read by training sets and
//! materialization under the same point-in-time rule as the batch source.

use std::collections::HashMap;
use std::sync::Arc;

use asof_core::FeatureRequest;
use asof_offline::{OfflineStore, TrainingSetOptions};
use asof_server::convert::timestamp;
use asof_server::proto::v1::{FieldStatus, PushFeaturesRequest, PushTarget, RepeatedValue, value};
use asof_server::service::Serving;
use datafusion::arrow::array::{AsArray, Int64Array};
use datafusion::arrow::datatypes::Float32Type;

use crate::robustness::{request, v};
use crate::setup::{Fixture, entity_table};

fn push(driver: i64, ts: i64, rate: f32, to: PushTarget) -> PushFeaturesRequest {
    let column = |v| RepeatedValue { values: vec![v] };
    PushFeaturesRequest {
        feature_view: "driver_hourly_stats".into(),
        columns: HashMap::from([
            ("driver_id".into(), column(v(value::Kind::Int64Val(driver)))),
            (
                "event_timestamp".into(),
                column(v(value::Kind::TimestampVal(timestamp(ts)))),
            ),
            ("conv_rate".into(), column(v(value::Kind::FloatVal(rate)))),
        ]),
        to: to as i32,
        deleted: Vec::new(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pushes_reach_the_stores_their_target_names_and_training_sets_read_the_log() {
    let fx = Fixture::new("online_store: {type: embedded, path: data/online}");
    let store = fx.store().await;
    let serving =
        Serving::new(fx.registry(), Arc::clone(&store)).with_push_log(fx.dir.join("data/push_log"));
    let hour = 3_600_000_000_000i64;
    let t = fx.data_end + hour;
    // Keys the batch source never had, so every value below comes from a push.
    let r = serving
        .push_features(push(777, t, 0.125, PushTarget::OnlineAndOffline))
        .await
        .unwrap();
    assert_eq!((r.written, r.logged), (1, 1));
    let r = serving
        .push_features(push(778, t, 0.25, PushTarget::Online))
        .await
        .unwrap();
    assert_eq!((r.written, r.logged), (1, 0));
    let r = serving
        .push_features(push(779, t, 0.5, PushTarget::Offline))
        .await
        .unwrap();
    assert_eq!((r.written, r.logged), (0, 1));

    let mut online = request(
        &["driver_hourly_stats:conv_rate"],
        &[(
            "driver_id",
            [777, 778, 779]
                .map(|d| v(value::Kind::Int64Val(d)))
                .to_vec(),
        )],
    );
    online.as_of = Some(timestamp(t + 1_000_000_000));
    let got = serving.get_online_features(online.clone()).await.unwrap();
    assert_eq!(
        got.results[1].statuses,
        [
            FieldStatus::Present,
            FieldStatus::Present,
            FieldStatus::NotFound
        ]
        .map(|s| s as i32)
    );

    // The training set: a pushed row counts from its own timestamp on, never before.
    let entities = entity_table(
        vec![(
            "driver_id",
            Arc::new(Int64Array::from(vec![777, 777, 778, 779])),
        )],
        vec![t - 1, t, t, t + 1],
    );
    let catalog = fx.registry().catalog();
    let req = FeatureRequest::resolve(&catalog, &["driver_hourly_stats:conv_rate".into()], false)
        .unwrap();
    let table = OfflineStore::new(&fx.dir)
        .training_set(&entities, &req, &TrainingSetOptions::default())
        .await
        .unwrap();
    let rate = table
        .column_by_name("conv_rate")
        .unwrap()
        .as_primitive::<Float32Type>();
    let got: Vec<Option<f32>> = rate.iter().collect();
    assert_eq!(got, [None, Some(0.125), None, Some(0.5)]);

    // Materialization reads the log too: the offline-only push reaches the online store.
    fx.materialize(store.as_ref(), t - hour, t + 1).await;
    let got = serving.get_online_features(online).await.unwrap();
    assert_eq!(got.results[1].statuses[2], FieldStatus::Present as i32);
    assert_eq!(got.results[1].values[2], v(value::Kind::FloatVal(0.5)));
}

fn delete(driver: i64, ts: i64, to: PushTarget) -> PushFeaturesRequest {
    let mut req = push(driver, ts, 0.0, to);
    req.columns.remove("conv_rate");
    req.deleted = vec![true];
    req
}

/// A delete is an event: from its time on the entity has no value, in training sets (null) and
/// online (NOT_FOUND); before it the older value still answers; a late push of an older value does
/// not bring the entity back; materialization carries the delete from the log to the online store.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_delete_event_hides_older_values_from_its_time_on_in_every_path() {
    let fx = Fixture::new("online_store: {type: embedded, path: data/online}");
    let store = fx.store().await;
    let serving =
        Serving::new(fx.registry(), Arc::clone(&store)).with_push_log(fx.dir.join("data/push_log"));
    let hour = 3_600_000_000_000i64;
    let t = fx.data_end + hour;
    for (driver, to) in [
        (901, PushTarget::OnlineAndOffline),
        (902, PushTarget::Offline),
    ] {
        serving
            .push_features(push(driver, t, 0.75, to))
            .await
            .unwrap();
        let r = serving
            .push_features(delete(driver, t + hour, to))
            .await
            .unwrap();
        assert_eq!(r.logged, 1);
    }
    // Older than the delete: the store keeps the delete.
    let late = serving
        .push_features(push(901, t + hour / 2, 0.5, PushTarget::Online))
        .await
        .unwrap();
    assert_eq!((late.written, late.skipped), (0, 1));

    let read = |as_of: i64| {
        let mut r = request(
            &["driver_hourly_stats:conv_rate"],
            &[(
                "driver_id",
                vec![v(value::Kind::Int64Val(901)), v(value::Kind::Int64Val(902))],
            )],
        );
        r.as_of = Some(timestamp(as_of));
        r
    };
    let got = serving
        .get_online_features(read(t + 2 * hour))
        .await
        .unwrap();
    assert_eq!(got.results[1].statuses[0], FieldStatus::NotFound as i32);

    let times = [t, t + hour - 1, t + hour, t + 3 * hour];
    let entities = entity_table(
        vec![("driver_id", Arc::new(Int64Array::from(vec![901; 4])))],
        times.to_vec(),
    );
    let catalog = fx.registry().catalog();
    let req = FeatureRequest::resolve(&catalog, &["driver_hourly_stats:conv_rate".into()], false)
        .unwrap();
    let table = OfflineStore::new(&fx.dir)
        .training_set(&entities, &req, &TrainingSetOptions::default())
        .await
        .unwrap();
    let rate: Vec<Option<f32>> = table
        .column_by_name("conv_rate")
        .unwrap()
        .as_primitive::<Float32Type>()
        .iter()
        .collect();
    assert_eq!(rate, [Some(0.75), Some(0.75), None, None]);

    // 902 was pushed offline only: materializing the window with its value and its delete leaves
    // it NOT_FOUND online; a window ending before the delete makes its value visible.
    fx.materialize(store.as_ref(), t - hour, t + 1).await;
    let got = serving.get_online_features(read(t + 1)).await.unwrap();
    assert_eq!(got.results[1].values[1], v(value::Kind::FloatVal(0.75)));
    fx.materialize(store.as_ref(), t, t + 2 * hour).await;
    let got = serving
        .get_online_features(read(t + 2 * hour))
        .await
        .unwrap();
    assert_eq!(got.results[1].statuses[1], FieldStatus::NotFound as i32);
}
