//! Printing results: text for people, one JSON object per result for programs.

use std::io::Write;

use anyhow::Result;
use serde_json::{Value, json};
use warden_core::Stat;

use crate::cli::Output;

/// Standard output was closed by its reader (`warden ls / | head -1`): warden stops
/// quietly, with the status a shell gives a process killed by SIGPIPE.
#[derive(Debug)]
pub(crate) struct StdoutClosed;

impl std::fmt::Display for StdoutClosed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("standard output was closed by its reader")
    }
}

impl std::error::Error for StdoutClosed {}

/// A stat as JSON.
pub(crate) fn stat(s: &Stat) -> Value {
    json!({
        "create_revision": s.create_revision,
        "mod_revision": s.mod_revision,
        "version": s.version,
        "cversion": s.cversion,
        "ephemeral_owner": s.ephemeral_owner,
        "num_children": s.num_children,
        "ctime_ms": s.ctime_ms,
        "mtime_ms": s.mtime_ms,
        "data_length": s.data_length,
    })
}

/// Adds a value as `value` (UTF-8) or `value_base64` (anything else).
pub(crate) fn value(object: &mut Value, data: &[u8]) {
    use base64::Engine;
    if let Value::Object(map) = object {
        match std::str::from_utf8(data) {
            Ok(s) => map.insert("value".into(), Value::String(s.to_owned())),
            Err(_) => map.insert(
                "value_base64".into(),
                Value::String(base64::engine::general_purpose::STANDARD.encode(data)),
            ),
        };
    }
}

/// Prints one result: `text` in text mode, `object` in JSON mode. Fails with
/// [`StdoutClosed`] once the reader of standard output is gone.
pub(crate) fn emit(mode: Output, text: &str, object: &Value) -> Result<()> {
    let mut out = std::io::stdout().lock();
    let written = match mode {
        Output::Text => writeln!(out, "{text}"),
        Output::Json => writeln!(out, "{object}"),
    };
    match written.and_then(|()| out.flush()) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Err(StdoutClosed.into()),
        Err(e) => Err(anyhow::Error::new(e).context("cannot write to standard output")),
    }
}
