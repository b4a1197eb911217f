//! The core promise: what `GetOnlineFeatures` returns for key k as of time t equals the training-set
//! row for (k, t): the same values and types, NOT_FOUND / OUTSIDE_MAX_AGE where the offline row is
//! null, and the same event timestamps. On Redis and on the embedded store.

use std::collections::HashMap;
use std::sync::Arc;

use asof_core::FeatureRequest;
use asof_offline::quickstart::{CUSTOMERS, DRIVERS};
use asof_offline::{OfflineStore, TrainingSetOptions};
use asof_server::convert::{nanos, timestamp, to_proto, value_at};
use asof_server::proto::v1::{
    FeatureList, FieldStatus, GetOnlineFeaturesRequest, RepeatedValue, Value,
    get_online_features_request::Kind, value,
};
use datafusion::arrow::array::{Array, ArrayRef, Int64Array};

use crate::redis_server::RedisServer;
use crate::setup::{Fixture, entity_table, start_server};

const DAY: i64 = 86_400_000_000_000;

fn int(v: i64) -> Value {
    Value {
        kind: Some(value::Kind::Int64Val(v)),
    }
}

pub(crate) async fn check_consistency(fx: &Fixture) {
    let store = fx.store().await;
    let end = fx.data_end + 1;
    let reports = fx
        .materialize(store.as_ref(), fx.data_end - 60 * DAY, end)
        .await;
    // A plain view writes a row per key; an aggregated one the events within its longest
    // window of each key's newest.
    assert!(
        reports
            .iter()
            .all(|r| r.keys > 0
                && (r.written == r.keys || r.view == "document_clicks" && r.written > 0)),
        "{reports:?}"
    );
    // Materializing the same window again writes nothing new.
    let again = fx
        .materialize(store.as_ref(), fx.data_end - 60 * DAY, end)
        .await;
    assert!(again.iter().all(|r| r.written == 0), "{again:?}");

    let registry = fx.registry();
    let catalog = registry.catalog();
    let mut client = start_server(registry, Arc::clone(&store)).await;

    // Every driver and customer key, plus keys that never had data.
    let drivers: Vec<i64> = (0..DRIVERS).map(|i| 1001 + i).chain([9999]).collect();
    let customers: Vec<i64> = (0..drivers.len() as i64)
        .map(|i| {
            if i as usize == drivers.len() - 1 {
                999
            } else {
                201 + i % CUSTOMERS
            }
        })
        .collect();
    let refs = vec![
        "driver_hourly_stats".to_string(),
        "customer_profile".to_string(),
    ];
    let request = FeatureRequest::resolve(&catalog, &refs, true).unwrap();
    let offline = OfflineStore::new(&fx.dir);

    // As of just after the data, a day and a half later (the driver view's 1d TTL has passed, the
    // customer view's 7d has not), and ten days later (both passed).
    for t in [end, end + DAY + DAY / 2, end + 10 * DAY] {
        let n = drivers.len();
        let entities = entity_table(
            vec![
                ("driver_id", Arc::new(Int64Array::from(drivers.clone()))),
                ("customer_id", Arc::new(Int64Array::from(customers.clone()))),
            ],
            vec![t; n],
        );
        let opts = TrainingSetOptions {
            with_timestamps: true,
            ..Default::default()
        };
        let table = offline
            .training_set(&entities, &request, &opts)
            .await
            .unwrap();

        let mut entity_map = HashMap::new();
        entity_map.insert(
            "driver_id".to_string(),
            RepeatedValue {
                values: drivers.iter().map(|d| int(*d)).collect(),
            },
        );
        entity_map.insert(
            "customer_id".to_string(),
            RepeatedValue {
                values: customers.iter().map(|c| int(*c)).collect(),
            },
        );
        let resp = client
            .get_online_features(GetOnlineFeaturesRequest {
                kind: Some(Kind::Features(FeatureList {
                    features: refs.clone(),
                })),
                entities: entity_map,
                full_feature_names: true,
                as_of: Some(timestamp(t)),
            })
            .await
            .unwrap()
            .into_inner();
        let names = resp.metadata.unwrap().feature_names;
        assert_eq!(&names[..2], ["driver_id", "customer_id"]);
        assert_eq!(&names[2..], request.output_names().as_slice());

        let mut present = 0;
        for (j, name) in names.iter().enumerate().skip(2) {
            let view = name.split("__").next().unwrap();
            let offline_col: &ArrayRef = table.column_by_name(name).unwrap();
            let offline_ts = asof_offline::timestamps::to_nanos(
                table
                    .column_by_name(&format!("{view}__event_timestamp"))
                    .unwrap(),
            )
            .unwrap();
            let online = &resp.results[j];
            for row in 0..n {
                let status = FieldStatus::try_from(online.statuses[row]).unwrap();
                let ctx = format!(
                    "{name} row {row} (driver {}, customer {}) as of {t}",
                    drivers[row], customers[row]
                );
                if offline_ts.is_null(row) {
                    assert!(
                        matches!(status, FieldStatus::NotFound | FieldStatus::OutsideMaxAge),
                        "{ctx}: offline has no row, online says {status:?}"
                    );
                    assert_eq!(online.values[row].kind, None, "{ctx}");
                } else {
                    let want = to_proto(&value_at(offline_col, row));
                    assert_eq!(online.values[row], want, "{ctx}");
                    let want_status = if want.kind.is_none() {
                        FieldStatus::NullValue
                    } else {
                        FieldStatus::Present
                    };
                    assert_eq!(status, want_status, "{ctx}");
                    assert_eq!(
                        nanos(&online.event_timestamps[row]),
                        offline_ts.value(row),
                        "{ctx}"
                    );
                    present += usize::from(status == FieldStatus::Present);
                }
            }
        }
        if t == end {
            assert!(
                present > 200,
                "the comparison must cover real values, got {present}"
            );
        } else if t == end + DAY + DAY / 2 {
            let driver = &resp.results[names
                .iter()
                .position(|n| n == "driver_hourly_stats__conv_rate")
                .unwrap()];
            assert!(
                driver.statuses[..n - 1]
                    .iter()
                    .all(|s| *s == FieldStatus::OutsideMaxAge as i32),
                "driver TTL (1d) passed"
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn online_equals_offline_on_redis() {
    let redis = RedisServer::start();
    let fx = Fixture::on_redis(&redis);
    check_consistency(&fx).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn online_equals_offline_on_the_embedded_store() {
    let fx = Fixture::new("online_store: {type: embedded, path: data/online}");
    check_consistency(&fx).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn empty_entity_lists_are_fine() {
    let fx = Fixture::new("online_store: {type: embedded, path: data/online}");
    let store = fx.store().await;
    let mut client = start_server(fx.registry(), store).await;
    let mut entities = HashMap::new();
    entities.insert("driver_id".to_string(), RepeatedValue { values: vec![] });
    let resp = client
        .get_online_features(GetOnlineFeaturesRequest {
            kind: Some(Kind::Features(FeatureList {
                features: vec!["driver_hourly_stats:conv_rate".into()],
            })),
            entities,
            full_feature_names: false,
            as_of: None,
        })
        .await
        .unwrap()
        .into_inner();
    assert!(resp.results.iter().all(|r| r.values.is_empty()));
}
