//! Serving tests over real gRPC on loopback, against a real `redis-server` (started here) and the
//! embedded store.

#![allow(unreachable_pub)]

mod admission;
mod aggregations;
mod cluster;
mod consistency;
mod decode_props;
mod push_log;
mod redis_server;
mod retrieval;
mod robustness;
mod setup;
