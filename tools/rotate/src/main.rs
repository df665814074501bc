//! `warden-rotate KIND --to V [--dry-run] [--timeout D] [--force-after D] [-o json]`: the
//! rotate tool on its own (`warden rotate` runs the same code). See the crate's README.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use warden_client::{Client, TlsFiles};
use warden_rotate::{RotateArgs, exit};

/// Rotates a warden resource kind to a new version: no id is ever held under two versions.
#[derive(Debug, Parser)]
#[command(name = "warden-rotate", version, after_help = AFTER_HELP)]
struct Cli {
    #[command(flatten)]
    rotate: RotateArgs,
    /// Client addresses of the members, comma-separated.
    #[arg(long, env = "WARDEN_ENDPOINTS", default_value = "127.0.0.1:7400", value_delimiter = ',')]
    endpoints: Vec<String>,
    /// Output format: text (for people) or json (one object per line).
    #[arg(short = 'o', long = "output", default_value = "text", value_parser = ["text", "json"])]
    output: String,
    /// Speak TLS, trusting this CA (PEM) for the members' certificates.
    #[arg(long, env = "WARDEN_CACERT", value_name = "FILE")]
    cacert: Option<PathBuf>,
    /// This client's certificate (PEM), for a cluster that asks for one.
    #[arg(long, env = "WARDEN_CERT", value_name = "FILE", requires = "cacert")]
    cert: Option<PathBuf>,
    /// The key of --cert (PEM).
    #[arg(long, env = "WARDEN_KEY", value_name = "FILE", requires = "cert")]
    key: Option<PathBuf>,
}

const AFTER_HELP: &str = "\
Exit status:
  0    done: the kind is at the target (or --dry-run printed the plan)
  1    refused (another rotation under way, a bad version) or any other error
  2    usage error
  3    --timeout ran out with holders left; the rotation stays begun: run again to pick up
  5    no such resource kind (see warden resource init)
  7    unavailable: no member reachable, or no quorum
  8    permission denied (a rotation needs admin on the kind)
  130  interrupted by Ctrl-C (the rotation stays begun)
  141  standard output closed by its reader";

fn connect(cli: &Cli) -> Result<Client, warden_client::ClientError> {
    match &cli.cacert {
        None => Client::new(cli.endpoints.clone()),
        Some(ca) => {
            let files = TlsFiles { ca: ca.clone(), cert: cli.cert.clone(), key: cli.key.clone() };
            Client::with_tls(cli.endpoints.clone(), &files)
        }
    }
}

/// Says `text` on standard error (a closed one is no reason to panic).
fn say(text: &str) {
    writeln!(std::io::stderr(), "{text}").ok();
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let client = match connect(&cli) {
        Ok(client) => client,
        Err(e) => {
            say(&format!("error: {e}"));
            return ExitCode::from(exit::of_client_error(&e));
        }
    };
    let json = cli.output == "json";
    let outcome = tokio::select! {
        outcome = warden_rotate::rotate(&client, &cli.rotate, json) => outcome,
        _ = tokio::signal::ctrl_c() => {
            say("interrupted: the rotation stays as it is (begun, if it was); run again to pick it up");
            return ExitCode::from(exit::INTERRUPTED);
        }
    };
    match outcome {
        Ok(outcome) => {
            if outcome == warden_rotate::Outcome::TimedOut {
                say("error: the rotation did not finish in time; run again to pick it up");
            }
            ExitCode::from(exit::of_outcome(&outcome))
        }
        Err(e) => {
            let code = exit::of_error(&e);
            if code != exit::CLOSED_PIPE {
                say(&format!("error: {e}"));
            }
            ExitCode::from(code)
        }
    }
}
