//! Training sets computed on a cluster: the client plans, Ballista runs, the client assembles.

use std::sync::Arc;

use asof_core::FeatureRequest;
use asof_offline::remote;
use asof_offline::{EntityTable, KeyPartitioning, OfflineStore, TrainingSetOptions};
use ballista_core::config::BallistaConfig;
use ballista_core::execution_plans::execute_physical_plan;
use ballista_core::extension::SessionConfigExt;
use datafusion::physical_plan::SendableRecordBatchStream;
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::prelude::SessionConfig;
use datafusion_proto::protobuf::PhysicalPlanNode;
use url::Url;

use crate::codec::AsofCodec;
use crate::error::{ClusterError, ClusterResult};

/// A job's staged entity rows, removed when dropped.
struct Staged(String);

impl Drop for Staged {
    fn drop(&mut self) {
        let removed = match remote::url_of(&self.0) {
            Some(url) => remote::block_on(remote::delete_prefix(&url)),
            None => match std::fs::remove_dir_all(&self.0) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e.to_string()),
                _ => Ok(()),
            },
        };
        if let Err(e) = removed {
            tracing::warn!("could not remove the staged entity rows at {}: {e}", self.0);
        }
    }
}

/// The port Ballista's scheduler listens on unless told otherwise.
const DEFAULT_SCHEDULER_PORT: u16 = 50050;

/// A Ballista cluster to run training sets on, by its scheduler's `df://HOST:PORT` address.
#[derive(Debug, Clone)]
pub struct Cluster {
    address: String,
    scheduler: String,
    partitions: usize,
    settings: Vec<(String, String)>,
    stage: Option<String>,
}

impl Cluster {
    /// The cluster whose scheduler is at `address` (`df://HOST[:PORT]`, as Ballista's own
    /// clients name it).
    pub fn new(address: &str) -> ClusterResult<Self> {
        let bad = |why: &str| {
            ClusterError::Address(format!(
                "--cluster {address}: {why}; give the scheduler as df://HOST:PORT (e.g. df://127.0.0.1:{DEFAULT_SCHEDULER_PORT})"
            ))
        };
        let url = Url::parse(address).map_err(|e| bad(&e.to_string()))?;
        if url.scheme() != "df" {
            return Err(bad(&format!(
                "`{}://` is not a cluster address",
                url.scheme()
            )));
        }
        let host = url
            .host_str()
            .filter(|h| !h.is_empty())
            .ok_or_else(|| bad("no host"))?;
        if !(url.path().is_empty() || url.path() == "/") {
            return Err(bad(&format!("unexpected path `{}`", url.path())));
        }
        let port = url.port().unwrap_or(DEFAULT_SCHEDULER_PORT);
        Ok(Cluster {
            address: format!("df://{host}:{port}"),
            scheduler: format!("http://{host}:{port}"),
            partitions: 8,
            settings: Vec::new(),
            stage: None,
        })
    }

    /// How many partitions each side is hash-partitioned into: the tasks of the join stage.
    pub fn with_partitions(mut self, partitions: usize) -> Self {
        self.partitions = partitions.max(1);
        self
    }

    /// Where jobs stage their entity rows for the executors: a folder they all see, or an object
    /// store prefix (`s3://bucket/tmp/`). Default: this machine's temporary folder, which only
    /// executors on this machine see.
    pub fn with_stage(mut self, stage: &str) -> Self {
        self.stage = Some(stage.to_string());
        self
    }

    /// A Ballista or DataFusion setting for the jobs (`ballista.shuffle.force_remote_read`),
    /// checked now: building the jobs' configuration names a setting it does not know.
    pub fn with_setting(mut self, key: &str, value: &str) -> ClusterResult<Self> {
        self.settings.push((key.to_string(), value.to_string()));
        self.session_config()?;
        Ok(self)
    }

    fn session_config(&self) -> ClusterResult<SessionConfig> {
        let mut config = SessionConfig::new_with_ballista()
            .with_ballista_physical_extension_codec(Arc::new(AsofCodec::default()));
        for (k, v) in &self.settings {
            config.options_mut().set(k, v).map_err(|e| {
                ClusterError::Address(format!("cluster setting {k}={v}: {}", e.strip_backtrace()))
            })?;
        }
        Ok(config)
    }

    /// The training set of [`OfflineStore::training_set_stream`], computed on the cluster: one
    /// job per view, all submitted at once; the result streams back in entity row order.
    /// Sources must be readable from the executors (object store URLs, or paths they share).
    pub async fn training_set_stream(
        &self,
        store: &OfflineStore,
        entities: &EntityTable,
        request: &FeatureRequest,
        opts: &TrainingSetOptions,
    ) -> ClusterResult<SendableRecordBatchStream> {
        let root = self
            .stage
            .clone()
            .unwrap_or_else(|| std::env::temp_dir().to_string_lossy().into_owned());
        let staged = Staged(format!(
            "{}/asof-stage-{}",
            root.trim_end_matches('/'),
            uuid::Uuid::new_v4()
        ));
        let layout = KeyPartitioning {
            partitions: self.partitions,
            stage: Some(staged.0.clone()),
        };
        let plans = store
            .distributed_plans(entities, request, opts, &layout)
            .await?;
        let session_id = uuid::Uuid::new_v4().to_string();
        let codec = AsofCodec::default();
        let jobs = plans.into_iter().map(|(view, plan)| {
            let config = self.session_config().map(|c| {
                c.with_ballista_job_name(&format!("asof training set: {}", view.view.name))
            });
            let session_id = session_id.clone();
            let codec = &codec;
            async move {
                let name = view.view.name.clone();
                let stream = execute_physical_plan::<PhysicalPlanNode>(
                    self.scheduler.clone(),
                    &BallistaConfig::default(),
                    plan,
                    codec,
                    session_id,
                    config?,
                )
                .await
                .map_err(|e| self.job_error(&name, e))?;
                Ok::<_, ClusterError>((view, stream))
            }
        });
        let joined = futures::future::try_join_all(jobs).await?;
        let stream = OfflineStore::assemble(entities, request, opts, joined);
        // The staged rows live until the result has been read (or dropped).
        let schema = stream.schema();
        let stream = futures::StreamExt::map(stream, move |batch| {
            let _ = &staged;
            batch
        });
        Ok(Box::pin(RecordBatchStreamAdapter::new(schema, stream)))
    }

    /// Says which view's job failed on which cluster, with what would fix it when that is known.
    fn job_error(&self, view: &str, e: datafusion::common::DataFusionError) -> ClusterError {
        let message = e.strip_backtrace();
        let hint = if message.contains("onnect") || message.contains("transport error") {
            format!(
                "; is a scheduler running there? Start one with `asof scheduler`, and executors with `asof executor --scheduler {}`",
                &self.address["df://".len()..]
            )
        } else {
            String::new()
        };
        ClusterError::Job(format!(
            "the cluster at {} failed view `{view}`'s join: {message}{hint}",
            self.address
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_are_df_urls_with_a_default_port() {
        let c = Cluster::new("df://127.0.0.1:6000").unwrap();
        assert_eq!(c.scheduler, "http://127.0.0.1:6000");
        let c = Cluster::new("df://scheduler.internal").unwrap();
        assert_eq!(c.scheduler, "http://scheduler.internal:50050");
        for bad in [
            "http://127.0.0.1:50050",
            "127.0.0.1:50050",
            "df://",
            "df://h:1/path",
        ] {
            let e = Cluster::new(bad).unwrap_err().to_string();
            assert!(
                e.contains(bad) && e.contains("df://HOST:PORT"),
                "{bad}: {e}"
            );
        }
    }

    #[test]
    fn settings_are_checked_when_given() {
        let c = Cluster::new("df://127.0.0.1:6000").unwrap();
        c.clone()
            .with_setting("ballista.shuffle.force_remote_read", "true")
            .unwrap();
        let e = c.with_setting("ballista.no_such_thing", "1").unwrap_err();
        assert!(e.to_string().contains("ballista.no_such_thing"), "{e}");
    }
}
