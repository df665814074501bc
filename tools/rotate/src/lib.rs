//! # warden-rotate
//!
//! The rotate tool: moves a resource kind of warden (a path whose ids are locked at
//! `KIND/<version>/<id>`) to a new version, with the cluster's guarantee that no id is ever
//! held under two versions at once. The binary `warden-rotate` and `warden rotate` run the
//! same code, this crate's [`rotate`].
//!
//! The rotation itself is replicated state, executed by the cluster: the tool begins it
//! (an idempotent call: a rotation under way is picked up where it is), then watches the
//! old version drain, printing the holders left (session, identity, how long) and the
//! acquisitions queued for the new version, until the cluster switches. It may force the
//! switch after a while (`--force-after`: the holders left are revoked, and told), or give
//! up (`--timeout`: the rotation stays begun, and a re-run picks it up). Interrupting the
//! tool changes nothing on the cluster.
//!
//! It is not a migration runner: what a new version means to the programs that lock ids is
//! theirs to decide; the tool only guarantees the switch is clean.
//!
//! - [`args`]: the command line shared by both binaries, and its duration parser;
//! - [`driver`]: the rotation loop, over a [`driver::Kind`] (the cluster, or a fake);
//! - [`report`]: the plan, progress and outcome, as text (a rewritten line on a terminal)
//!   or JSON lines;
//! - [`exit`]: the exit statuses, which are warden's.

pub mod args;
pub mod driver;
pub mod exit;
pub mod report;

use std::io::IsTerminal;

pub use args::{RotateArgs, parse_duration};
pub use driver::{Error, Outcome};
use warden_client::Client;

/// Runs the rotation `args` asks for against `client`'s cluster, reporting on standard
/// output (JSON lines if `json`; otherwise text, with one rewritten progress line when
/// standard output is a terminal).
pub async fn rotate(client: &Client, args: &RotateArgs, json: bool) -> Result<Outcome, Error> {
    let stdout = std::io::stdout();
    let terminal = !json && stdout.is_terminal();
    let mut printer = report::Printer::new(stdout, json, terminal);
    let kind = client.resource_kind(&args.kind);
    driver::run(&kind, &args.options(), &mut printer).await
}
