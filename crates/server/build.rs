//! Generates the gRPC code from `proto/` with protox (pure Rust): no system `protoc` needed.

use std::path::PathBuf;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../proto");
    let file = root.join("asof/serving/v1/serving.proto");
    // Relative to the package: an absolute path would tie the build cache to one checkout.
    println!("cargo:rerun-if-changed=../../proto/asof/serving/v1/serving.proto");
    println!("cargo:rerun-if-changed=build.rs");
    let fds = protox::compile([&file], [&root])?;
    let out = PathBuf::from(std::env::var("OUT_DIR")?);
    std::fs::write(
        out.join("serving_descriptor.bin"),
        prost::Message::encode_to_vec(&fds),
    )?;
    tonic_prost_build::configure()
        .build_client(true)
        .build_server(true)
        .codec_path("crate::codec::StagedProstCodec")
        .compile_fds(fds)?;
    Ok(())
}
