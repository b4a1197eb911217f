//! `asof scheduler`, `asof executor` and the cluster half of `asof training-set --cluster`: thin
//! over `asof-cluster`, which only a build with the `cluster` feature has.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Result;

#[cfg(not(feature = "cluster"))]
fn not_built() -> anyhow::Error {
    anyhow::anyhow!(
        "this asof was built without cluster support; rebuild it with `cargo build --release --features cluster`"
    )
}

#[cfg(feature = "cluster")]
pub async fn scheduler(bind: SocketAddr, executor_timeout: u64) -> Result<()> {
    use asof_cluster::nodes::{SchedulerOptions, run_scheduler};
    let options = SchedulerOptions {
        bind,
        executor_timeout: std::time::Duration::from_secs(executor_timeout),
    };
    run_scheduler(options, |addr| {
        // Tests and scripts wait for this line; it names the port when --bind gave port 0.
        println!("asof scheduler on df://{addr}");
    })
    .await?;
    Ok(())
}

#[cfg(feature = "cluster")]
pub async fn executor(
    scheduler: &str,
    bind: SocketAddr,
    work_dir: Option<PathBuf>,
    slots: usize,
    heartbeat: u64,
) -> Result<()> {
    use anyhow::Context;
    use asof_cluster::nodes::{ExecutorOptions, run_executor};
    let scheduler = scheduler.strip_prefix("df://").unwrap_or(scheduler);
    let (host, port) = scheduler
        .rsplit_once(':')
        .and_then(|(h, p)| Some((h.to_string(), p.parse::<u16>().ok()?)))
        .with_context(|| {
            format!(
                "--scheduler {scheduler}: give the scheduler as HOST:PORT (e.g. 127.0.0.1:50050)"
            )
        })?;
    println!(
        "asof executor on {bind} (shuffle over Arrow Flight), pulling tasks from {host}:{port}"
    );
    run_executor(ExecutorOptions {
        scheduler: (host, port),
        bind,
        work_dir,
        slots,
        heartbeat: std::time::Duration::from_secs(heartbeat),
    })
    .await?;
    Ok(())
}

#[cfg(not(feature = "cluster"))]
pub async fn scheduler(_bind: SocketAddr, _executor_timeout: u64) -> Result<()> {
    Err(not_built())
}

#[cfg(not(feature = "cluster"))]
pub async fn executor(
    _scheduler: &str,
    _bind: SocketAddr,
    _work_dir: Option<PathBuf>,
    _slots: usize,
    _heartbeat: u64,
) -> Result<()> {
    Err(not_built())
}

/// The training set of `asof training-set --cluster`, streamed from the cluster.
#[cfg(feature = "cluster")]
pub async fn training_set_stream(
    args: &crate::cli::TrainingSetArgs,
    address: &str,
    store: &asof_offline::OfflineStore,
    entities: &asof_offline::EntityTable,
    request: &asof_core::FeatureRequest,
    opts: &asof_offline::TrainingSetOptions,
) -> Result<datafusion::physical_plan::SendableRecordBatchStream> {
    let mut cluster = asof_cluster::Cluster::new(address)?.with_partitions(args.cluster_partitions);
    for setting in &args.cluster_setting {
        let (k, v) = setting
            .split_once('=')
            .ok_or_else(|| anyhow::anyhow!("--cluster-setting {setting}: give it as KEY=VALUE"))?;
        cluster = cluster.with_setting(k.trim(), v.trim())?;
    }
    Ok(cluster
        .training_set_stream(store, entities, request, opts)
        .await?)
}

#[cfg(not(feature = "cluster"))]
pub async fn training_set_stream(
    _args: &crate::cli::TrainingSetArgs,
    _address: &str,
    _store: &asof_offline::OfflineStore,
    _entities: &asof_offline::EntityTable,
    _request: &asof_core::FeatureRequest,
    _opts: &asof_offline::TrainingSetOptions,
) -> Result<datafusion::physical_plan::SendableRecordBatchStream> {
    Err(not_built())
}
