//! Who gets in and how much they may ask: bearer tokens (with health checks left open), the entity
//! row and request size limits, and pushes named in the source's own timestamp columns.

use std::collections::HashMap;
use std::net::SocketAddr;

use asof_core::config::Limits;
use asof_server::auth::Tokens;
use asof_server::convert::timestamp;
use asof_server::proto::v1::feature_serving_client::FeatureServingClient;
use asof_server::proto::v1::{FieldStatus, PushFeaturesRequest, PushTarget, RepeatedValue, value};
use asof_server::service::{Security, Serving, serve_secured};
use tonic::Code;

use crate::robustness::{request, v};
use crate::setup::Fixture;

async fn start(serving: Serving, security: Security) -> SocketAddr {
    let (tx, rx) = tokio::sync::oneshot::channel::<SocketAddr>();
    tokio::spawn(async move {
        serve_secured(
            serving,
            "127.0.0.1:0".parse().unwrap(),
            security,
            None,
            std::future::pending(),
            move |addr| {
                let _ = tx.send(addr);
            },
        )
        .await
        .unwrap();
    });
    rx.await.unwrap()
}

fn one_driver() -> asof_server::proto::v1::GetOnlineFeaturesRequest {
    request(
        &["driver_hourly_stats:conv_rate"],
        &[("driver_id", vec![v(value::Kind::Int64Val(1001))])],
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_guard_the_feature_service_and_health_stays_open() {
    let fx = Fixture::new("online_store: {type: embedded, path: data/online}");
    let serving = Serving::new(fx.registry(), fx.store().await);
    let addr = start(
        serving,
        Security {
            tls: None,
            tokens: Some(Tokens::new(["t0ken"])),
        },
    )
    .await;
    let url = format!("http://{addr}");
    let mut client = FeatureServingClient::connect(url.clone()).await.unwrap();
    let denied = client.get_online_features(one_driver()).await.unwrap_err();
    assert_eq!(denied.code(), Code::Unauthenticated, "{denied:?}");

    let mut req = tonic::Request::new(one_driver());
    req.metadata_mut()
        .insert("authorization", "Bearer t0ken".parse().unwrap());
    client.get_online_features(req).await.unwrap();

    let channel = tonic::transport::Endpoint::from_shared(url)
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut health = tonic_health::pb::health_client::HealthClient::new(channel);
    let status = health
        .check(tonic_health::pb::HealthCheckRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        status.status(),
        tonic_health::pb::health_check_response::ServingStatus::Serving
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_over_the_limits_are_invalid_argument() {
    let fx = Fixture::new("online_store: {type: embedded, path: data/online}");
    let serving = Serving::new(fx.registry(), fx.store().await).with_limits(Limits {
        max_entity_rows: 2,
        max_request_bytes: 200,
    });
    let addr = start(serving, Security::default()).await;
    let mut client = FeatureServingClient::connect(format!("http://{addr}"))
        .await
        .unwrap();
    let three = request(
        &["driver_hourly_stats:conv_rate"],
        &[(
            "driver_id",
            (1001..1004).map(|i| v(value::Kind::Int64Val(i))).collect(),
        )],
    );
    let s = client.get_online_features(three).await.unwrap_err();
    assert_eq!(s.code(), Code::InvalidArgument);
    assert!(
        s.message().contains("3 entity rows") && s.message().contains("max_entity_rows"),
        "{}",
        s.message()
    );

    let big = request(
        &["driver_hourly_stats:conv_rate"],
        &[(
            "driver_id",
            vec![v(value::Kind::StringVal("x".repeat(300)))],
        )],
    );
    let s = client.get_online_features(big).await.unwrap_err();
    assert_eq!(s.code(), Code::InvalidArgument);
    assert!(s.message().contains("max_request_bytes"), "{}", s.message());

    // And the server goes on serving requests within the limits.
    client.get_online_features(one_driver()).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pushes_use_the_sources_own_timestamp_columns() {
    let fx = Fixture::new("online_store: {type: embedded, path: data/online}");
    // The quickstart's driver source, with its timestamp columns renamed.
    let defs = fx.dir.join("drivers.yaml");
    let text = std::fs::read_to_string(&defs).unwrap();
    std::fs::write(
        &defs,
        text.replace("timestamp_field: event_timestamp", "timestamp_field: ts")
            .replace(
                "created_timestamp_field: created",
                "created_timestamp_field: loaded_at",
            ),
    )
    .unwrap();
    let repo = fx.repo();
    let catalog = asof_core::validate::validate(&repo, &asof_core::validate::NoProbe).unwrap();
    let (registry, _) =
        asof_core::Registry::apply(None, &repo.config.project, &catalog, chrono::Utc::now());
    let serving = Serving::new(registry, fx.store().await);
    let now = asof_core::time::to_nanos(chrono::Utc::now());
    let column = |v: asof_server::proto::v1::Value| RepeatedValue { values: vec![v] };
    let mut columns = HashMap::from([
        ("driver_id".to_string(), column(v(value::Kind::Int64Val(7)))),
        (
            "conv_rate".to_string(),
            column(v(value::Kind::FloatVal(0.25))),
        ),
    ]);
    let push = |columns: HashMap<String, RepeatedValue>| PushFeaturesRequest {
        feature_view: "driver_hourly_stats".into(),
        columns,
        to: PushTarget::Online as i32,
        deleted: Vec::new(),
    };
    let err = serving
        .push_features(push(columns.clone()))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("timestamp column `ts`"), "{err}");
    columns.insert(
        "ts".into(),
        column(v(value::Kind::TimestampVal(timestamp(now - 1000)))),
    );
    columns.insert(
        "event_timestamp".into(),
        column(v(value::Kind::TimestampVal(timestamp(now)))),
    );
    let err = serving
        .push_features(push(columns.clone()))
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains("no column `event_timestamp`")
            && err.to_string().contains("ts, loaded_at"),
        "{err}"
    );
    columns.remove("event_timestamp");
    columns.insert(
        "loaded_at".into(),
        column(v(value::Kind::TimestampVal(timestamp(now)))),
    );
    let r = serving.push_features(push(columns)).await.unwrap();
    assert_eq!(r.written, 1);
    let got = serving
        .get_online_features(request(
            &["driver_hourly_stats:conv_rate"],
            &[("driver_id", vec![v(value::Kind::Int64Val(7))])],
        ))
        .await
        .unwrap();
    assert_eq!(got.results[1].statuses[0], FieldStatus::Present as i32);
}
