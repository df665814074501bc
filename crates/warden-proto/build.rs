//! Generates the gRPC code with the vendored `protoc`, so a fresh machine needs only cargo.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // The protos live outside this package, where cargo does not look for changes.
    println!("cargo:rerun-if-changed=../../proto");
    println!("cargo:rerun-if-changed=build.rs");
    let mut config = tonic_prost_build::Config::new();
    // An explicit PROTOC wins; otherwise the one shipped by protoc-bin-vendored.
    match std::env::var_os("PROTOC") {
        Some(protoc) => config.protoc_executable(protoc),
        None => config.protoc_executable(protoc_bin_vendored::protoc_bin_path()?),
    };
    config.bytes(["."]);
    tonic_prost_build::configure().build_server(true).build_client(true).compile_with_config(
        config,
        &[
            "../../proto/warden/v1/kv.proto",
            "../../proto/warden/v1/cluster.proto",
            "../../proto/warden/v1/watch.proto",
            "../../proto/warden/v1/session.proto",
            "../../proto/warden/v1/lock.proto",
            "../../proto/warden/v1/election.proto",
            "../../proto/warden/v1/barrier.proto",
            "../../proto/warden/v1/resource.proto",
            "../../proto/warden/raft/v1/raft.proto",
        ],
        &["../../proto"],
    )?;
    Ok(())
}
