//! `warden-bench`: closed-loop load against warden (its own 3-member cluster on loopback,
//! or `--endpoints`), etcd or ZooKeeper, with the same workloads and the same figures.
//!
//! ```text
//! warden-bench --workload lock-uncontended --clients 1,16,64 --duration 10s [--json]
//! ```

/// The allocator of the `warden` binary (see its `main.rs`), for the members this binary
/// runs (`warden-bench serve`) and for the load it generates.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

mod backend;
mod cluster;
mod measure;
#[cfg(feature = "peers")]
mod peers;
mod procstat;
mod report;
mod warden_backend;
mod workloads;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use clap::{Parser, Subcommand, ValueEnum};

use crate::backend::Backend;
use crate::report::RunResult;
use crate::workloads::{Spec, Workload};

#[derive(Debug, Parser)]
#[command(
    name = "warden-bench",
    version,
    about = "Closed-loop load for warden, etcd and ZooKeeper"
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Sub>,
    #[command(flatten)]
    run: RunArgs,
}

#[derive(Debug, Subcommand)]
enum Sub {
    /// Runs one warden member (how the bench starts its own cluster).
    #[command(hide = true)]
    Serve {
        #[arg(long)]
        config: PathBuf,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum System {
    Warden,
    Etcd,
    Zookeeper,
}

#[derive(Debug, clap::Args)]
struct RunArgs {
    /// The system under test.
    #[arg(long, value_enum, default_value = "warden")]
    system: System,
    /// Its client endpoints (host:port, comma-separated). Without them (warden only), a
    /// 3-member cluster is started on loopback.
    #[arg(long, value_delimiter = ',')]
    endpoints: Vec<String>,
    /// Members of the cluster the bench starts (without --endpoints).
    #[arg(long, default_value_t = 3)]
    nodes: usize,
    /// Process ids of the members, for their CPU and memory (found by itself for the
    /// cluster it starts).
    #[arg(long, value_delimiter = ',')]
    pids: Vec<u32>,
    /// Workloads to run, in order (comma-separated).
    #[arg(long, value_enum, value_delimiter = ',', default_value = "lock-uncontended")]
    workload: Vec<Workload>,
    /// Concurrent clients, each with its own connection and session; one run per value.
    #[arg(long, value_delimiter = ',', default_value = "16")]
    clients: Vec<usize>,
    /// Time before the measured window (500ms, 2s, 1m).
    #[arg(long, default_value = "2s", value_parser = parse_duration)]
    warmup: Duration,
    /// The measured window.
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    duration: Duration,
    /// watch-fanout: the number of watchers.
    #[arg(long, default_value_t = 16)]
    watchers: usize,
    /// sessions: the number of sessions held.
    #[arg(long, default_value_t = 10_000)]
    sessions: usize,
    /// held-locks: the number of locks held.
    #[arg(long, default_value_t = 1_000_000)]
    locks: usize,
    /// Session (lease) ttl, seconds.
    #[arg(long, default_value_t = 10)]
    ttl: u64,
    /// One JSON object per run instead of the table.
    #[arg(long)]
    json: bool,
}

/// Parses `500ms`, `10s`, `2m` or a plain number of seconds.
fn parse_duration(text: &str) -> Result<Duration, String> {
    let (number, unit) = match text.find(|c: char| !c.is_ascii_digit()) {
        Some(i) => text.split_at(i),
        None => (text, "s"),
    };
    let n: u64 =
        number.parse().map_err(|_| format!("{text:?} is not a duration such as 500ms or 10s"))?;
    match unit {
        "ms" => Ok(Duration::from_millis(n)),
        "s" => Ok(Duration::from_secs(n)),
        "m" => Ok(Duration::from_secs(n * 60)),
        _ => Err(format!("{text:?} has an unknown unit {unit:?}; use ms, s or m")),
    }
}

fn main() -> std::process::ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(r) => r,
        Err(e) => {
            tracing::error!(error = %e, "cannot start the runtime");
            return std::process::ExitCode::FAILURE;
        }
    };
    let outcome = runtime.block_on(async {
        match cli.command {
            Some(Sub::Serve { config }) => serve(&config).await,
            None => bench(cli.run).await,
        }
    });
    match outcome {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            #[allow(clippy::print_stderr)]
            {
                eprintln!("error: {e:#}");
            }
            std::process::ExitCode::FAILURE
        }
    }
}

/// One warden member until it is killed.
async fn serve(path: &std::path::Path) -> Result<()> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    let config: warden_server::Config =
        toml::from_str(&text).with_context(|| format!("invalid config {}", path.display()))?;
    let node = warden_server::Node::start(config, warden_server::Faults::default()).await?;
    let reason = node.stopped().await;
    bail!("raft stopped: {reason}")
}

async fn bench(args: RunArgs) -> Result<()> {
    let mut own = None;
    let (endpoints, pids) = if args.endpoints.is_empty() {
        if args.system != System::Warden {
            bail!("give --endpoints for etcd and ZooKeeper (bench/compare.sh starts them)");
        }
        let cluster = cluster::LocalCluster::start(args.nodes)?;
        cluster.ready().await?;
        let found = (cluster.endpoints.clone(), cluster.pids());
        own = Some(cluster);
        found
    } else {
        (args.endpoints.clone(), args.pids.clone())
    };
    if !args.json {
        #[allow(clippy::print_stdout)]
        {
            println!("{}", RunResult::header());
        }
    }
    for workload in &args.workload {
        for clients in &args.clients {
            let spec = Spec {
                workload: *workload,
                clients: *clients,
                warmup: args.warmup,
                duration: args.duration,
                watchers: args.watchers,
                sessions: args.sessions,
                locks: args.locks,
                ttl_s: args.ttl,
            };
            let result = match args.system {
                System::Warden => {
                    let backend = warden_backend::Warden::new(endpoints.clone());
                    one(Arc::new(backend), "warden", spec, &pids).await?
                }
                #[cfg(feature = "peers")]
                System::Etcd => {
                    let backend = peers::etcd::Etcd::new(endpoints.clone());
                    one(Arc::new(backend), "etcd", spec, &pids).await?
                }
                #[cfg(feature = "peers")]
                System::Zookeeper => {
                    let backend = peers::zookeeper::ZooKeeper::new(endpoints.clone());
                    one(Arc::new(backend), "zookeeper", spec, &pids).await?
                }
                #[cfg(not(feature = "peers"))]
                System::Etcd | System::Zookeeper => bail!(
                    "this build has no etcd or ZooKeeper adapter: build with --features peers (needs a system protoc; bench/compare.sh installs it)"
                ),
            };
            #[allow(clippy::print_stdout)]
            if args.json {
                println!("{}", serde_json::to_string(&result)?);
            } else {
                println!("{}", result.row());
            }
        }
    }
    drop(own);
    Ok(())
}

/// Runs one workload at one client count, with the CPU of the members sampled over the
/// measured window.
async fn one<B: Backend>(
    backend: Arc<B>,
    system: &str,
    spec: Spec,
    pids: &[u32],
) -> Result<RunResult> {
    let measured = workloads::run(backend, spec, pids).await?;
    let mut result = RunResult::new(
        spec.workload,
        system,
        spec.clients,
        &measured.record,
        measured.window,
        measured.usage,
    );
    match spec.workload {
        Workload::WatchFanout => result.watchers = Some(spec.watchers),
        Workload::Sessions | Workload::HeldLocks => result.sessions = Some(spec.sessions),
        _ => {}
    }
    Ok(result)
}
