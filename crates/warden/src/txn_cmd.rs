//! `warden txn [FILE]`: a transaction described in JSON, run with one `KV.Txn` call.
//!
//! The document (docs/cli.md has it in full):
//!
//! ```json
//! {"compare": [{"path": "/a", "target": "version", "op": "=", "value": 2},
//!              {"path": "/b", "target": "exists", "value": false}],
//!  "success": [{"create": {"path": "/b", "value": "x"}},
//!              {"set": {"path": "/a", "value": "y", "version": 2}},
//!              {"delete": {"path": "/c", "recursive": true}}]}
//! ```
//!
//! Every field is checked, and a bad one is named by its JSON path (`$.success[1].set.value`).
//! There is no `failure` branch: warden's `Txn` applies nothing when a compare fails and
//! says which one; a document with one is refused rather than half understood.

use std::io::Read;
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use serde_json::{Map, Value, json};
use warden_client::{Check, Client, Compare, CompareOp, CreateMode, NodeKind, TxnOp, TxnOpResult};

use crate::cli::Output;
use crate::output::{emit, stat};

/// Runs the transaction in `file` (standard input when absent or `-`).
pub(crate) async fn run(client: &Client, out: Output, file: Option<String>) -> Result<ExitCode> {
    let text = match file.as_deref() {
        None | Some("-") => {
            let mut text = String::new();
            std::io::stdin()
                .read_to_string(&mut text)
                .context("cannot read the transaction from standard input")?;
            text
        }
        Some(path) => std::fs::read_to_string(path)
            .with_context(|| format!("cannot read the transaction from {path}"))?,
    };
    let (compares, ops) = parse(&text)?;
    let result = client.txn(compares, ops).await?;
    if !result.succeeded {
        let index = result.failed_compare.unwrap_or(0);
        let text = format!(
            "FAILURE: compare $.compare[{index}] did not hold (revision {}); nothing was applied",
            result.revision
        );
        let object = json!({
            "succeeded": false,
            "failed_compare": index,
            "revision": result.revision,
        });
        emit(out, &text, &object)?;
        return Ok(ExitCode::from(crate::exit::CONFLICT));
    }
    let mut lines = vec![format!("SUCCESS (revision {})", result.revision)];
    let mut results = Vec::new();
    for r in &result.results {
        let (line, object) = match r {
            TxnOpResult::Created { path, stat: s } => (
                format!("created {path} version {}", s.version),
                json!({ "op": "create", "path": path, "stat": stat(s) }),
            ),
            TxnOpResult::Set { stat: s } => {
                (format!("set version {}", s.version), json!({ "op": "set", "stat": stat(s) }))
            }
            TxnOpResult::Deleted(d) => (
                format!("deleted {} node(s)", d.deleted),
                json!({ "op": "delete", "deleted": d.deleted, "revoked": d.revoked, "kept": d.kept }),
            ),
        };
        lines.push(line);
        results.push(object);
    }
    let object = json!({ "succeeded": true, "revision": result.revision, "results": results });
    emit(out, &lines.join("\n"), &object)?;
    Ok(ExitCode::SUCCESS)
}

/// A JSON value and where it is in the document.
struct At<'a> {
    value: &'a Value,
    path: String,
}

impl<'a> At<'a> {
    fn object(&self) -> Result<&'a Map<String, Value>> {
        self.value.as_object().with_context(|| format!("{}: expected an object", self.path))
    }

    /// The fields of an object, refusing any but `known`.
    fn fields(&self, known: &[&str]) -> Result<&'a Map<String, Value>> {
        let object = self.object()?;
        if let Some(other) = object.keys().find(|k| !known.contains(&k.as_str())) {
            bail!("{}.{other}: unknown field; expected one of {}", self.path, known.join(", "));
        }
        Ok(object)
    }

    fn field(&self, name: &str) -> Option<At<'a>> {
        self.value.get(name).map(|value| At { value, path: format!("{}.{name}", self.path) })
    }

    fn required(&self, name: &str) -> Result<At<'a>> {
        self.field(name).with_context(|| format!("{}.{name}: missing", self.path))
    }

    fn array(&self) -> Result<Vec<At<'a>>> {
        let items =
            self.value.as_array().with_context(|| format!("{}: expected an array", self.path))?;
        Ok(items
            .iter()
            .enumerate()
            .map(|(i, value)| At { value, path: format!("{}[{i}]", self.path) })
            .collect())
    }

    fn string(&self) -> Result<String> {
        let s = self.value.as_str().with_context(|| format!("{}: expected a string", self.path))?;
        Ok(s.to_owned())
    }

    fn number(&self) -> Result<u64> {
        self.value
            .as_u64()
            .with_context(|| format!("{}: expected a whole number (0 or more)", self.path))
    }

    fn boolean(&self) -> Result<bool> {
        self.value.as_bool().with_context(|| format!("{}: expected true or false", self.path))
    }

    fn flag(&self, name: &str) -> Result<bool> {
        self.field(name).map_or(Ok(false), |f| f.boolean())
    }

    fn optional_number(&self, name: &str) -> Result<Option<u64>> {
        self.field(name).map(|f| f.number()).transpose()
    }
}

/// The compares and operations of a transaction document.
pub(crate) fn parse(text: &str) -> Result<(Vec<Compare>, Vec<TxnOp>)> {
    let value: Value =
        serde_json::from_str(text).context("$: the transaction is not valid JSON")?;
    let root = At { value: &value, path: "$".into() };
    let fields = root.object()?;
    if fields.contains_key("failure") {
        bail!(
            "$.failure: warden's transactions have no failure branch: when a compare does not hold nothing is applied, and warden txn names the compare (exit 6); read what you need with warden get"
        );
    }
    root.fields(&["compare", "success"])?;
    let compares = match root.field("compare") {
        Some(list) => list.array()?.iter().map(compare).collect::<Result<_>>()?,
        None => Vec::new(),
    };
    let ops = root.required("success")?.array()?.iter().map(op).collect::<Result<_>>()?;
    Ok((compares, ops))
}

fn compare(at: &At<'_>) -> Result<Compare> {
    at.fields(&["path", "target", "op", "value"])?;
    let path = at.required("path")?.string()?;
    let target = at.required("target")?;
    let value = at.required("value")?;
    let op = at.field("op");
    let check = match target.string()?.as_str() {
        "exists" => {
            if let Some(op) = &op
                && op.string()? != "="
            {
                bail!("{}: an exists compare takes only \"=\" (or no op)", op.path);
            }
            Check::Exists(value.boolean()?)
        }
        numeric @ ("version" | "mod_revision" | "create_revision") => {
            let op = op.with_context(|| format!("{}.op: missing (=, !=, < or >)", at.path))?;
            let compare_op = match op.string()?.as_str() {
                "=" | "==" => CompareOp::Equal,
                "!=" => CompareOp::NotEqual,
                "<" => CompareOp::Less,
                ">" => CompareOp::Greater,
                other => bail!("{}: unknown op {other:?}; expected =, !=, < or >", op.path),
            };
            let n = value.number()?;
            match numeric {
                "version" => Check::Version(compare_op, n),
                "mod_revision" => Check::ModRevision(compare_op, n),
                _ => Check::CreateRevision(compare_op, n),
            }
        }
        other => bail!(
            "{}: unknown target {other:?}; expected exists, version, mod_revision or create_revision",
            target.path
        ),
    };
    Ok(Compare { path, check })
}

/// A value given as `value` (UTF-8 text) or `value_base64` (any bytes), or empty.
fn data(at: &At<'_>) -> Result<Vec<u8>> {
    use base64::Engine;
    match (at.field("value"), at.field("value_base64")) {
        (Some(_), Some(b)) => bail!("{}: give value or value_base64, not both", b.path),
        (Some(v), None) => Ok(v.string()?.into_bytes()),
        (None, Some(b)) => base64::engine::general_purpose::STANDARD
            .decode(b.string()?)
            .with_context(|| format!("{}: not base64", b.path)),
        (None, None) => Ok(Vec::new()),
    }
}

fn op(at: &At<'_>) -> Result<TxnOp> {
    let fields = at.object()?;
    let mut names = fields.keys();
    let (Some(name), None) = (names.next(), names.next()) else {
        bail!(
            "{}: expected one of {{\"create\": ...}}, {{\"set\": ...}} or {{\"delete\": ...}}",
            at.path
        );
    };
    let body = at.required(name)?;
    match name.as_str() {
        "create" => {
            body.fields(&["path", "value", "value_base64", "sequential", "container"])?;
            let kind =
                if body.flag("container")? { NodeKind::Container } else { NodeKind::Persistent };
            Ok(TxnOp::Create {
                path: body.required("path")?.string()?,
                data: data(&body)?.into(),
                mode: CreateMode { kind, sequential: body.flag("sequential")? },
            })
        }
        "set" => {
            body.fields(&["path", "value", "value_base64", "version"])?;
            Ok(TxnOp::Set {
                path: body.required("path")?.string()?,
                data: data(&body)?.into(),
                expected_version: body.optional_number("version")?,
            })
        }
        "delete" => {
            body.fields(&["path", "version", "recursive", "revoke_locks"])?;
            Ok(TxnOp::Delete {
                path: body.required("path")?.string()?,
                expected_version: body.optional_number("version")?,
                recursive: body.flag("recursive")?,
                revoke_locks: body.flag("revoke_locks")?,
            })
        }
        other => bail!("{}.{other}: unknown operation; expected create, set or delete", at.path),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn problem(text: &str) -> String {
        parse(text).err().map(|e| format!("{e:#}")).unwrap_or_default()
    }

    #[test]
    fn a_document_becomes_compares_and_operations() {
        let text = r#"{
            "compare": [
                {"path": "/a", "target": "version", "op": "=", "value": 2},
                {"path": "/b", "target": "exists", "value": false},
                {"path": "/a", "target": "mod_revision", "op": "<", "value": 9}
            ],
            "success": [
                {"create": {"path": "/b", "value": "x", "sequential": true}},
                {"set": {"path": "/a", "value_base64": "/w==", "version": 2}},
                {"delete": {"path": "/c", "recursive": true}}
            ]
        }"#;
        let (compares, ops) = parse(text).unwrap_or_else(|e| panic!("{e:#}"));
        assert_eq!(compares.len(), 3);
        assert_eq!(compares[0].check, Check::Version(CompareOp::Equal, 2));
        assert_eq!(compares[1].check, Check::Exists(false));
        assert_eq!(compares[2].check, Check::ModRevision(CompareOp::Less, 9));
        match &ops[..] {
            [
                TxnOp::Create { mode, .. },
                TxnOp::Set { data, expected_version, .. },
                TxnOp::Delete { recursive, .. },
            ] => {
                assert!(mode.sequential);
                assert_eq!((&data[..], *expected_version), (&[0xff][..], Some(2)));
                assert!(*recursive);
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_bad_field_is_named_by_its_json_path() {
        for (text, expected) in [
            ("{", "$: the transaction is not valid JSON"),
            ("[]", "$: expected an object"),
            (r#"{"compare": []}"#, "$.success: missing"),
            (r#"{"success": [], "else": []}"#, "$.else: unknown field"),
            (
                r#"{"success": [], "failure": []}"#,
                "$.failure: warden's transactions have no failure branch",
            ),
            (r#"{"success": [{"put": {"path": "/a"}}]}"#, "$.success[0].put: unknown operation"),
            (
                r#"{"success": [{"set": {"path": "/a", "value": 7}}]}"#,
                "$.success[0].set.value: expected a string",
            ),
            (r#"{"success": [{"set": {"value": "x"}}]}"#, "$.success[0].set.path: missing"),
            (
                r#"{"success": [{"delete": {"path": "/a", "force": true}}]}"#,
                "$.success[0].delete.force: unknown field",
            ),
            (
                r#"{"success": [], "compare": [{"path": "/a", "target": "ver", "value": 1}]}"#,
                "$.compare[0].target: unknown target \"ver\"",
            ),
            (
                r#"{"success": [], "compare": [{"path": "/a", "target": "version", "value": 1}]}"#,
                "$.compare[0].op: missing",
            ),
            (
                r#"{"success": [], "compare": [{"path": "/a", "target": "version", "op": "~", "value": 1}]}"#,
                "$.compare[0].op: unknown op",
            ),
            (
                r#"{"success": [], "compare": [{"path": "/a", "target": "version", "op": "=", "value": -1}]}"#,
                "$.compare[0].value: expected a whole number",
            ),
        ] {
            let got = problem(text);
            assert!(got.starts_with(expected), "{text}: {got}");
        }
    }
}
