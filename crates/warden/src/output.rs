//! Printing results: text for people, one JSON object per result for programs.

use serde_json::{Value, json};
use warden_core::Stat;

use crate::cli::Output;

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

/// Prints one result: `text` in text mode, `object` in JSON mode.
#[allow(clippy::print_stdout)]
pub(crate) fn emit(mode: Output, text: &str, object: &Value) {
    match mode {
        Output::Text => println!("{text}"),
        Output::Json => println!("{object}"),
    }
}
