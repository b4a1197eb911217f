//! Generated gRPC types and services of `proto/asof/serving/v1/serving.proto`.

#[allow(clippy::all, missing_docs, unreachable_pub, missing_debug_implementations)]
#[rustfmt::skip]
pub mod v1 {
    tonic::include_proto!("asof.serving.v1");
}

/// The file descriptor set, for gRPC server reflection.
pub const FILE_DESCRIPTOR_SET: &[u8] =
    include_bytes!(concat!(env!("OUT_DIR"), "/serving_descriptor.bin"));
