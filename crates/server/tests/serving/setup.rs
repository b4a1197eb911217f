//! A quickstart repo with generated data, applied, and a server over it.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use asof_core::{Registry, Repo};
use asof_offline::probe::ParquetProbe;
use asof_offline::quickstart::{REPO_FILES, generate_data};
use asof_server::proto::v1::feature_serving_client::FeatureServingClient;
use asof_server::service::{Serving, serve};
use tonic::transport::Channel;

pub struct Fixture {
    _tmp: tempfile::TempDir,
    pub dir: PathBuf,
    /// The instant the generated data ends at (ns).
    pub data_end: i64,
}

impl Fixture {
    /// The quickstart repo, with `online_store` replaced by `online_store_yaml`.
    pub fn new(online_store_yaml: &str) -> Fixture {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().to_path_buf();
        for (name, text) in REPO_FILES {
            let text = if name == "feature_store.yaml" {
                text.lines()
                    .filter(|l| !l.trim_start().starts_with("online_store"))
                    .collect::<Vec<_>>()
                    .join("\n")
                    + "\n"
                    + online_store_yaml
                    + "\n"
            } else {
                text.to_string()
            };
            std::fs::write(dir.join(name), text).unwrap();
        }
        let now_us = chrono::Utc::now().timestamp_micros();
        generate_data(&dir, now_us, 7).unwrap();
        let repo = Repo::load(&dir).unwrap();
        let catalog = asof_core::validate::validate(&repo, &ParquetProbe).unwrap();
        let (registry, _) =
            Registry::apply(None, &repo.config.project, &catalog, chrono::Utc::now());
        registry.save(&repo.config.registry_path(&dir)).unwrap();
        Fixture {
            _tmp: tmp,
            dir,
            data_end: now_us * 1000,
        }
    }

    /// The quickstart repo on the Redis of `redis`.
    pub fn on_redis(redis: &crate::redis_server::RedisServer) -> Fixture {
        Fixture::new(&format!(
            "online_store: {{type: redis, connection_string: \"{}\"}}",
            redis.url()
        ))
    }

    pub fn repo(&self) -> Repo {
        Repo::load(&self.dir).unwrap()
    }

    pub fn registry_path(&self) -> PathBuf {
        self.repo().config.registry_path(&self.dir)
    }

    pub fn registry(&self) -> Registry {
        Registry::load_required(&self.registry_path()).unwrap()
    }

    pub async fn store(&self) -> Arc<dyn asof_online::OnlineStore> {
        asof_online::open(&self.repo().config.online_store, &self.dir)
            .await
            .unwrap()
    }

    /// Materializes every online view over `[start, end]`.
    pub async fn materialize(
        &self,
        store: &dyn asof_online::OnlineStore,
        start: i64,
        end: i64,
    ) -> Vec<asof_server::materialize::ViewReport> {
        let views = asof_server::materialize::select_views(&self.registry(), &[]).unwrap();
        asof_server::materialize::materialize(
            &self.dir,
            &self.registry_path(),
            store,
            &views,
            |_, _| (start, end),
            &|_, _| {},
        )
        .await
        .unwrap()
    }
}

/// Starts a server on a free loopback port; returns a connected client.
pub async fn start_server(
    registry: Registry,
    store: Arc<dyn asof_online::OnlineStore>,
) -> FeatureServingClient<Channel> {
    start_serving(Serving::new(registry, store)).await
}

/// Serves `serving` on a free loopback port; returns a connected client.
pub async fn start_serving(serving: Serving) -> FeatureServingClient<Channel> {
    let (tx, rx) = tokio::sync::oneshot::channel::<SocketAddr>();
    tokio::spawn(async move {
        serve(
            serving,
            "127.0.0.1:0".parse().unwrap(),
            std::future::pending(),
            move |addr| {
                let _ = tx.send(addr);
            },
        )
        .await
        .unwrap();
    });
    let addr = rx.await.unwrap();
    FeatureServingClient::connect(format!("http://{addr}"))
        .await
        .unwrap()
}

/// An entity table of `keys` (name and column each) and an `event_timestamp` per row (UTC ns).
pub fn entity_table(
    keys: Vec<(&str, datafusion::arrow::array::ArrayRef)>,
    times: Vec<i64>,
) -> asof_offline::EntityTable {
    use datafusion::arrow::array::{RecordBatch, TimestampNanosecondArray};
    use datafusion::arrow::datatypes::{DataType, Field, Schema, TimeUnit};
    let mut fields: Vec<Field> = keys
        .iter()
        .map(|(name, column)| Field::new(*name, column.data_type().clone(), false))
        .collect();
    fields.push(Field::new(
        "event_timestamp",
        DataType::Timestamp(TimeUnit::Nanosecond, Some("UTC".into())),
        false,
    ));
    let mut columns: Vec<_> = keys.into_iter().map(|(_, c)| c).collect();
    columns.push(Arc::new(
        TimestampNanosecondArray::from(times).with_timezone("UTC"),
    ));
    let schema = Arc::new(Schema::new(fields));
    let batch = RecordBatch::try_new(Arc::clone(&schema), columns).unwrap();
    asof_offline::EntityTable::from_batches("entities", schema, &[batch]).unwrap()
}
