//! End-to-end tests of the `asof` binary on real repo folders and Parquet files.

#![allow(unreachable_pub)]

#[cfg(feature = "cluster")]
mod cluster;
mod errors;
mod index;
mod lifecycle;
mod object_stores;
mod online;
mod postgres_server;
mod processes;
mod security;
mod server;
mod status;
mod stream;
mod training;
mod util;
