//! Subcommands. Each module turns parsed arguments into library calls and prints the result.

mod audit;
mod cluster;
mod index;
mod init;
mod models;
mod online;
mod registry;
mod status;
mod stream;
mod training_set;

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use asof_core::{Registry, RepoConfig};

use crate::cli::{Cli, Command};

/// What every command needs: the repo folder and its config.
pub struct Ctx {
    pub repo: PathBuf,
    pub quiet: bool,
}

impl Ctx {
    pub fn config(&self) -> Result<RepoConfig> {
        Ok(asof_core::Repo::load(&self.repo)?.config)
    }

    pub fn registry(&self) -> Result<Registry> {
        self.registry_of(&self.config()?)
    }

    /// The registry `config` points at, for commands that loaded the config already.
    pub fn registry_of(&self, config: &RepoConfig) -> Result<Registry> {
        Ok(Registry::load_required(&config.registry_path(&self.repo))?)
    }
}

/// An error that ends the process with its own exit code (after its message), for results a
/// script branches on: `asof status` exits 3 when something is stale.
#[derive(Debug)]
pub struct Exit(pub u8, pub String);

impl std::fmt::Display for Exit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.1)
    }
}

impl std::error::Error for Exit {}

pub fn runtime() -> Result<tokio::runtime::Runtime> {
    runtime_with_workers(None)
}

/// A runtime with `workers` threads (default: one per core).
///
/// One worker gets tokio's single-threaded scheduler, not a one-thread work-stealing pool: it
/// runs ready tasks in arrival order, where the pool runs a woken task right after its waker. So
/// the responses finished in one turn leave in one write per connection instead of one each:
/// about 1.1x the requests per second at 1-row requests, the same at 100 rows (`serving_load`
/// bench, four alternating runs each).
pub fn runtime_with_workers(workers: Option<u16>) -> Result<tokio::runtime::Runtime> {
    let mut builder = match workers {
        Some(1) => tokio::runtime::Builder::new_current_thread(),
        Some(n) => {
            let mut b = tokio::runtime::Builder::new_multi_thread();
            b.worker_threads(usize::from(n));
            b
        }
        None => tokio::runtime::Builder::new_multi_thread(),
    };
    builder
        .enable_all()
        .build()
        .context("cannot start the async runtime")
}

pub fn run(cli: Cli) -> Result<()> {
    let ctx = Ctx {
        repo: cli.repo.clone(),
        quiet: cli.quiet,
    };
    match cli.command {
        Command::Init(args) => init::run(&args, cli.quiet),
        Command::Plan(f) => registry::plan(&ctx, f.output, false),
        Command::Apply(f) => registry::plan(&ctx, f.output, true),
        Command::Ls { kind, format } => registry::ls(&ctx, kind, format.output),
        Command::Describe { kind, name, format } => {
            registry::describe(&ctx, kind, &name, format.output)
        }
        Command::TrainingSet(args) => runtime()?.block_on(training_set::run(&ctx, &args)),
        Command::Audit {
            table,
            timestamp_column,
            format,
        } => runtime()?.block_on(audit::run(&table, &timestamp_column, format.output)),
        Command::Materialize {
            start,
            end,
            views,
            format,
        } => runtime()?.block_on(online::materialize(
            &ctx,
            Some(&start),
            &end,
            &views,
            format.output,
        )),
        Command::MaterializeIncremental { end, views, format } => {
            runtime()?.block_on(online::materialize(&ctx, None, &end, &views, format.output))
        }
        Command::Serve {
            grpc,
            metrics,
            log_retrievals,
            workers,
            tls_cert,
            tls_key,
            stream,
            http,
            flight,
            mcp,
            allow_push,
        } => runtime_with_workers(workers)?.block_on(online::serve(
            &ctx,
            online::ServeArgs {
                grpc,
                metrics,
                log_retrievals,
                tls: tls_cert.zip(tls_key),
                stream,
                http,
                flight,
                mcp: mcp.then_some(allow_push),
            },
        )),
        Command::Mcp { allow_push } => runtime()?.block_on(online::mcp(&ctx, allow_push)),
        Command::Scheduler {
            bind,
            executor_timeout,
        } => runtime()?.block_on(cluster::scheduler(bind, executor_timeout)),
        Command::Executor {
            scheduler,
            bind,
            work_dir,
            slots,
            heartbeat,
        } => runtime()?.block_on(cluster::executor(
            &scheduler, bind, work_dir, slots, heartbeat,
        )),
        Command::Stream { sources } => runtime()?.block_on(stream::run(&ctx, &sources)),
        Command::Status(f) => runtime()?.block_on(status::run(&ctx, f.output)),
        Command::Query(args) => runtime()?.block_on(online::query(&args)),
        Command::Push {
            view,
            input,
            to,
            format,
        } => runtime()?.block_on(online::push(&ctx, &view, &input, to, format.output)),
        Command::Index { command } => index::run(&ctx, command),
        Command::Models { command } => models::run(command, ctx.quiet),
    }
}

/// Paths in messages: relative to the current folder when possible.
pub fn display_path(p: &Path) -> String {
    std::env::current_dir()
        .ok()
        .and_then(|cwd| p.strip_prefix(&cwd).ok().map(|r| r.display().to_string()))
        .unwrap_or_else(|| p.display().to_string())
}
