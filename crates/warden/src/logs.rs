//! Logs for operators, on stderr: `RUST_LOG` chooses what is logged (default: info for
//! warden, warnings and errors of the storage engine, nothing from openraft, whose errors and
//! warnings report every retried RPC and ignored vote; the member logs leadership changes
//! and unreachable peers itself, and a raft failure stops it with the reason), colours
//! only on a terminal, and one JSON object per line with `--log-format json`.

use std::io::IsTerminal;

use clap::ValueEnum;
use tracing_subscriber::EnvFilter;

/// The default filter of a member (`warden server`, `warden dev`). The storage engine's
/// tables (lsm_tree) warn when a background clean-up finds its files gone, which is what
/// `warden dev` does to its data at Ctrl-C; its errors still show.
pub(crate) const MEMBER_FILTER: &str = "info,fjall=warn,lsm_tree=error,openraft=off";
/// The default filter of a client command.
pub(crate) const CLIENT_FILTER: &str = "warn";

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, ValueEnum)]
pub(crate) enum LogFormat {
    /// For people: time, level, the member's span, message, fields.
    #[default]
    Text,
    /// One JSON object per line, for log collectors.
    Json,
}

/// Installs the global subscriber.
pub(crate) fn init(format: LogFormat, default_filter: &str) {
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default_filter));
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.with_ansi(std::io::stderr().is_terminal()).init(),
        LogFormat::Json => builder.json().with_current_span(true).with_span_list(false).init(),
    }
}
