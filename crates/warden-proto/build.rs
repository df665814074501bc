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
    let public = [
        "../../proto/warden/v1/kv.proto",
        "../../proto/warden/v1/cluster.proto",
        "../../proto/warden/v1/watch.proto",
        "../../proto/warden/v1/session.proto",
        "../../proto/warden/v1/lock.proto",
        "../../proto/warden/v1/election.proto",
        "../../proto/warden/v1/barrier.proto",
        "../../proto/warden/v1/resource.proto",
        "../../proto/warden/v1/maintenance.proto",
    ];
    let mut protos = public.to_vec();
    protos.push("../../proto/warden/raft/v1/raft.proto");
    tonic_prost_build::configure().build_server(true).build_client(true).compile_with_config(
        config,
        &protos,
        &["../../proto"],
    )?;
    write_methods(&public)?;
    Ok(())
}

/// Writes `methods.rs`: the gRPC paths of the public API's methods
/// (`/warden.v1.KV/Get`), read from the protos' `package`, `service` and `rpc` lines.
fn write_methods(protos: &[&str]) -> Result<(), Box<dyn std::error::Error>> {
    let mut methods = Vec::new();
    for proto in protos {
        let text = std::fs::read_to_string(proto)?;
        let mut package = None;
        let mut service = None;
        for line in text.lines().map(str::trim) {
            if let Some(rest) = line.strip_prefix("package ") {
                package = Some(rest.trim_end_matches(';').trim().to_owned());
            } else if let Some(rest) = line.strip_prefix("service ") {
                service = rest.split_whitespace().next().map(str::to_owned);
            } else if let Some(rest) = line.strip_prefix("rpc ") {
                let (Some(package), Some(service)) = (&package, &service) else {
                    return Err(format!("{proto}: an rpc outside a service: {line}").into());
                };
                let name = rest.split('(').next().unwrap_or_default().trim();
                methods.push(format!("/{package}.{service}/{name}"));
            }
        }
    }
    let list: String = methods.iter().map(|m| format!("    {m:?},\n")).collect();
    let out = std::path::PathBuf::from(std::env::var("OUT_DIR")?).join("methods.rs");
    std::fs::write(out, format!("&[\n{list}]\n"))?;
    Ok(())
}
