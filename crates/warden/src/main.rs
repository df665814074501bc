//! The `warden` binary: `server`, `dev`, and the client commands (DESIGN §9).

/// mimalloc rather than glibc's malloc: a member allocates and frees per request (h2
/// frames, protobuf and bincode buffers, tree nodes); with mimalloc a 3-member cluster on
/// two cores did 7-13 % more writes and 25 % more lock cycles per second (warden-bench,
/// same run, A/B).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

mod cli;
mod commands;
mod lock_cmd;
mod logs;
mod output;
mod run;

use std::process::ExitCode;

use clap::Parser;

use crate::cli::{Cli, Command};

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    match &cli.command {
        Command::Server { log_format, .. } | Command::Dev { log_format, .. } => {
            logs::init(*log_format, logs::MEMBER_FILTER);
        }
        Command::Client(_) => logs::init(logs::LogFormat::Text, logs::CLIENT_FILTER),
    }
    let result = match cli.command {
        Command::Server { config, .. } => match config {
            Some(path) => match run::load_config(&path) {
                Ok(config) => run::server(config).await,
                Err(e) => Err(e),
            },
            None => run::server(warden_server::Config::default()).await,
        },
        Command::Dev { nodes, base_port, .. } => run::dev(nodes, base_port).await,
        Command::Client(command) => match commands::run(&cli.global, command).await {
            Ok(code) => return code,
            Err(e) => Err(e),
        },
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            #[allow(clippy::print_stderr)]
            {
                eprintln!("error: {e:#}");
            }
            ExitCode::FAILURE
        }
    }
}
