//! Generates the operator messages from `proto/` with protox (pure Rust): no system `protoc`.

use std::path::PathBuf;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../proto");
    let file = root.join("asof/cluster/v1/operators.proto");
    println!("cargo:rerun-if-changed=../../proto/asof/cluster/v1/operators.proto");
    println!("cargo:rerun-if-changed=build.rs");
    let fds = protox::compile([&file], [&root])?;
    tonic_prost_build::configure()
        .build_client(false)
        .build_server(false)
        .compile_fds(fds)?;
    Ok(())
}
