//! The `asof` command line. Parsing and printing only: the work is done by the library crates.

// A binary exports nothing; `pub` here only means "used by sibling modules".
#![allow(unreachable_pub)]

mod cli;
mod commands;
mod progress;

use std::process::ExitCode;

use clap::Parser;

/// The server allocates per request (decoded protobuf, keys, response vectors) on every worker
/// thread; mimalloc's thread-local free lists make that measurably cheaper than glibc's malloc.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let cli = cli::Cli::parse();
    let level = match (cli.quiet, cli.verbose) {
        (true, _) => "error",
        (_, 0) => "warn",
        (_, 1) => "debug",
        _ => "trace",
    };
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("ASOF_LOG").unwrap_or_else(
                |_| match level {
                    // A stream's progress (snapshot taken, resumed at an LSN) is worth a line;
                    // the replication client's own error lines repeat what asof reports.
                    "warn" => "warn,asof_stream=info,pgwire_replication=off".into(),
                    other => other.into(),
                },
            ),
        )
        .with_writer(std::io::stderr)
        .init();
    match commands::run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) if e.downcast_ref::<commands::Exit>().is_some() => {
            let exit = e.downcast_ref::<commands::Exit>().expect("checked");
            eprintln!("{}", exit.1);
            ExitCode::from(exit.0)
        }
        Err(e) => {
            // One line with the cause chain; validation errors list one problem per line.
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
