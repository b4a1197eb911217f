//! Ballista's scheduler and executor with asof's codec: the stock binaries cannot decode asof's
//! operators. Both read object stores from their environment, like every asof command.
//!
//! Failure detection is tighter than Ballista's defaults (a heartbeat a minute, three minutes to
//! declare an executor lost): a lost executor's tasks, and the shuffle output it held, are
//! rescheduled on the others within [`SchedulerOptions::executor_timeout`].
//!
//! Executors pull their tasks. With Ballista 55's default, the scheduler pushing tasks, a job
//! hung for good after an executor was killed mid-query: the scheduler cancels the survivors'
//! tasks that read the lost output and never offers their slots again. Pulled, the same job
//! finishes on the survivor (tests/cli/cluster.rs). The cost is latency per task: each executor
//! asks for work on its own schedule.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use asof_offline::remote::StoresFromEnv;
use ballista_core::RuntimeProducer;
use ballista_core::config::TaskSchedulingPolicy;
use ballista_executor::executor_process::{ExecutorProcessConfig, start_executor_process};
use ballista_scheduler::cluster::BallistaCluster;
use ballista_scheduler::config::SchedulerConfig;
use ballista_scheduler::scheduler_process::{create_scheduler, start_grpc_service_with_listener};
use datafusion::execution::SessionStateBuilder;
use datafusion::execution::runtime_env::{RuntimeEnv, RuntimeEnvBuilder};
use datafusion_proto::protobuf::{LogicalPlanNode, PhysicalPlanNode};

use crate::codec::AsofCodec;
use crate::error::{ClusterError, ClusterResult};

#[derive(Debug, Clone)]
pub struct SchedulerOptions {
    pub bind: SocketAddr,
    /// How long an executor may miss heartbeats before its tasks are given to others.
    pub executor_timeout: Duration,
}

#[derive(Debug, Clone)]
pub struct ExecutorOptions {
    /// The scheduler's `HOST:PORT`.
    pub scheduler: (String, u16),
    /// Where the executor serves its shuffle output (Arrow Flight).
    pub bind: SocketAddr,
    /// Shuffle files; a temporary directory when absent.
    pub work_dir: Option<PathBuf>,
    /// Tasks run at once (0: one per core).
    pub slots: usize,
    pub heartbeat: Duration,
}

fn runtime(work_dir: Option<String>) -> datafusion::common::Result<Arc<RuntimeEnv>> {
    let mut builder =
        RuntimeEnvBuilder::new().with_object_store_registry(Arc::new(StoresFromEnv::default()));
    if let Some(dir) = work_dir {
        builder = builder.with_temp_file_path(dir);
    }
    builder.build_arc()
}

/// Runs a scheduler until the process ends; `on_ready` gets the address it listens on.
pub async fn run_scheduler(
    options: SchedulerOptions,
    on_ready: impl FnOnce(SocketAddr),
) -> ClusterResult<()> {
    let timeout = options.executor_timeout.as_secs().max(2);
    let mut config = SchedulerConfig {
        bind_host: options.bind.ip().to_string(),
        bind_port: options.bind.port(),
        external_host: options.bind.ip().to_string(),
        executor_timeout_seconds: timeout,
        expire_dead_executor_interval_seconds: (timeout / 4).max(1),
        no_executors_grace_period_seconds: timeout,
        override_physical_codec: Some(Arc::new(AsofCodec::default())),
        scheduling_policy: TaskSchedulingPolicy::PullStaged,
        ..SchedulerConfig::default()
    }
    .with_override_session_builder(Arc::new(|config| {
        Ok(SessionStateBuilder::new()
            .with_config(config)
            .with_runtime_env(runtime(None)?)
            .with_default_features()
            .build())
    }));
    config.scheduler_id = format!("asof-scheduler-{}", options.bind);
    let node = |e: &dyn std::fmt::Display| ClusterError::Node(format!("scheduler: {e}"));
    let listener = tokio::net::TcpListener::bind(options.bind)
        .await
        .map_err(|e| {
            ClusterError::Node(format!(
                "scheduler: cannot listen on {}: {e}; pick a free address with --bind",
                options.bind
            ))
        })?;
    let bound = listener.local_addr().map_err(|e| node(&e))?;
    config.bind_port = bound.port();
    let config = Arc::new(config);
    let cluster = BallistaCluster::new_from_config(&config)
        .await
        .map_err(|e| node(&e))?;
    let scheduler = create_scheduler::<LogicalPlanNode, PhysicalPlanNode>(cluster, config)
        .await
        .map_err(|e| node(&e))?;
    on_ready(bound);
    start_grpc_service_with_listener(listener, scheduler)
        .await
        .map_err(|e| node(&e))
}

/// Runs an executor until the process ends (or its scheduler stops it).
pub async fn run_executor(options: ExecutorOptions) -> ClusterResult<()> {
    let work_dir = options
        .work_dir
        .as_ref()
        .map(|d| d.to_string_lossy().into_owned());
    if let Some(dir) = &options.work_dir {
        std::fs::create_dir_all(dir).map_err(|e| {
            ClusterError::Node(format!(
                "executor: cannot create its work directory {}: {e}",
                dir.display()
            ))
        })?;
    }
    let producer_dir = work_dir.clone();
    let producer: RuntimeProducer = Arc::new(move |_| runtime(producer_dir.clone()));
    let host = options.bind.ip().to_string();
    // Ballista's task service, which only push scheduling starts: kept off --bind's port.
    let grpc_port = options.bind.port().wrapping_add(1);
    let config = ExecutorProcessConfig {
        bind_host: host.clone(),
        external_host: Some(host),
        port: options.bind.port(),
        grpc_port,
        scheduler_host: options.scheduler.0.clone(),
        scheduler_port: options.scheduler.1,
        scheduler_connect_timeout_seconds: 30,
        vcores: options.slots,
        task_scheduling_policy: TaskSchedulingPolicy::PullStaged,
        work_dir,
        executor_heartbeat_interval_seconds: options.heartbeat.as_secs().max(1),
        override_physical_codec: Some(Arc::new(AsofCodec::default())),
        override_runtime_producer: Some(producer),
        print_thread_info: false,
        ..ExecutorProcessConfig::default()
    };
    start_executor_process(Arc::new(config)).await.map_err(|e| {
        ClusterError::Node(format!(
            "executor ({} with scheduler {}:{}): {e}",
            options.bind, options.scheduler.0, options.scheduler.1
        ))
    })
}
