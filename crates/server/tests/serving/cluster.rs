//! The Redis store on a real three-primary Redis Cluster: serving equals the offline store, pushes
//! never regress, and deleting a view's keys reaches every primary.

use asof_offline::quickstart::DRIVERS;
use asof_server::proto::v1::{FieldStatus, value};

use crate::consistency::check_consistency;
use crate::redis_server::RedisCluster;
use crate::robustness::{pushes_never_regress, request, v};
use crate::setup::{Fixture, start_server};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_redis_store_works_on_a_cluster() {
    let cluster = RedisCluster::start();
    let fx = Fixture::new(&format!(
        "online_store: {{type: redis, connection_string: \"{}\"}}",
        cluster.connection_string()
    ));
    check_consistency(&fx).await;
    pushes_never_regress(&fx).await;
    let counts = cluster.key_counts();
    assert!(
        counts.iter().filter(|&&n| n > 0).count() >= 2,
        "keys spread over the primaries: {counts:?}"
    );

    // Deleting the view (as `apply` does) finds its keys on every primary.
    let store = fx.store().await;
    let prefix = asof_core::keys::view_prefix(&fx.registry().project, "driver_hourly_stats");
    let deleted = store.delete_prefix(prefix.clone()).await.unwrap();
    assert_eq!(
        deleted as i64,
        DRIVERS + 1,
        "the quickstart drivers and the pushed one"
    );
    let after = cluster.key_counts();
    assert_eq!(
        counts.iter().sum::<u64>() - after.iter().sum::<u64>(),
        deleted as u64
    );
    assert_eq!(store.delete_prefix(prefix).await.unwrap(), 0);

    let mut client = start_server(fx.registry(), store).await;
    let drivers: Vec<_> = (0..DRIVERS)
        .map(|i| v(value::Kind::Int64Val(1001 + i)))
        .collect();
    let got = client
        .get_online_features(request(
            &["driver_hourly_stats:conv_rate"],
            &[("driver_id", drivers)],
        ))
        .await
        .unwrap()
        .into_inner();
    assert!(
        got.results[1]
            .statuses
            .iter()
            .all(|s| *s == FieldStatus::NotFound as i32)
    );
}
