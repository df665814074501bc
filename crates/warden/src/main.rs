//! The `warden` binary: `server`, `dev`, and the client commands (DESIGN §9).

/// mimalloc rather than glibc's malloc: a member allocates and frees per request (h2
/// frames, protobuf and bincode buffers, tree nodes); with mimalloc a 3-member cluster on
/// two cores did 7-13 % more writes and 25 % more lock cycles per second (warden-bench,
/// same run, A/B).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

mod acl_cmd;
mod barrier_cmd;
mod certs;
mod cli;
mod commands;
mod elect_cmd;
mod endpoint_cmd;
mod exit;
mod join;
mod lock_cmd;
mod lock_stats_cmd;
mod logs;
mod member_cmd;
mod output;
mod resource_cmd;
mod run;
mod session_cmd;
mod snapshot_cmd;
mod txn_cmd;

use std::io::Write;
use std::process::ExitCode;

use clap::parser::ValueSource;
use clap::{CommandFactory, FromArgMatches};

use crate::cli::{Cli, Command};

/// Parses the command line; a client option given before `server` or `dev` is a usage
/// error, not silently ignored.
fn parse() -> Cli {
    let matches = Cli::command().get_matches();
    let cli = Cli::from_arg_matches(&matches).unwrap_or_else(|e| e.exit());
    let name = match cli.command {
        Command::Server { .. } => "server",
        Command::Dev { .. } => "dev",
        Command::Certs { .. } => "certs",
        Command::Client(_) => return cli,
    };
    let flags = [
        ("endpoints", "--endpoints"),
        ("output", "--output/-o"),
        ("cacert", "--cacert"),
        ("cert", "--cert"),
        ("key", "--key"),
    ];
    for (id, flag) in flags {
        if matches.value_source(id) == Some(ValueSource::CommandLine) {
            Cli::command()
                .error(
                    clap::error::ErrorKind::ArgumentConflict,
                    format!(
                        "{flag} is an option of the client commands; warden {name} does not take it"
                    ),
                )
                .exit();
        }
    }
    cli
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = parse();
    match &cli.command {
        Command::Server { log_format, .. } | Command::Dev { log_format, .. } => {
            logs::init(*log_format, logs::MEMBER_FILTER);
        }
        Command::Client(_) | Command::Certs { .. } => {
            logs::init(logs::LogFormat::Text, logs::CLIENT_FILTER);
        }
    }
    let result = match cli.command {
        Command::Server { config, join, .. } => {
            let config = match config {
                Some(path) => run::load_config(&path),
                None => Ok(warden_server::Config::default()),
            };
            match config {
                Ok(mut config) => {
                    if !join.is_empty() {
                        config.join = join;
                    }
                    run::server(config).await
                }
                Err(e) => Err(e),
            }
        }
        Command::Dev { nodes, base_port, secure, certs, .. } => {
            run::dev(nodes, base_port, secure.then_some(certs.as_path())).await
        }
        Command::Certs {
            command: cli::CertsCommand::Dev { out, nodes, clients, sans, force, keep_existing },
        } => {
            let existing = match (force, keep_existing) {
                (true, _) => certs::Existing::Replace,
                (false, true) => certs::Existing::Keep,
                (false, false) => certs::Existing::Refuse,
            };
            certs::dev(&out, nodes, &clients, &sans, existing)
        }
        Command::Client(command) => match commands::run(&cli.client, *command).await {
            Ok(code) => return code,
            Err(e) => Err(e),
        },
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) if e.is::<output::StdoutClosed>() => ExitCode::from(exit::CLOSED_PIPE),
        Err(e) => {
            // A closed standard error must not turn the error into a panic.
            writeln!(std::io::stderr(), "error: {e:#}").ok();
            ExitCode::from(exit::code(&e))
        }
    }
}
