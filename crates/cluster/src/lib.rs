//! asof on Apache DataFusion Ballista: training sets past one machine.
//!
//! Ballista 55 runs DataFusion 55 plans across executors and cuts them into stages at hash
//! repartitions. asof's plan for a cluster ([`asof_offline::OfflineStore::distributed_plans`])
//! hash-partitions the entity rows and the feature rows by join key, so every partition joins
//! alone on some executor, then merges the partitions back into entity row order on the row ids
//! it carried. Its operators are not DataFusion's, so they travel through [`AsofCodec`], which
//! the client, the scheduler and every executor must share: hence [`nodes`], which run Ballista's
//! scheduler and executor with it.

mod codec;
mod error;
pub mod nodes;
mod submit;

/// The operator messages, generated from `proto/asof/cluster/v1/operators.proto`.
#[allow(unreachable_pub, missing_debug_implementations, clippy::all)]
mod proto {
    include!(concat!(env!("OUT_DIR"), "/asof.cluster.v1.rs"));
}

pub use codec::AsofCodec;
pub use error::{ClusterError, ClusterResult};
pub use submit::Cluster;
