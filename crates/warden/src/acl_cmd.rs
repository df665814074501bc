//! `warden acl apply FILE|-` and `warden acl get`.
//!
//! The file is checked here first, so a mistake is reported with the file's name and line
//! before anything is sent; the cluster checks it again (every member applies the same
//! text) and refuses a policy that would take `admin` from the one applying it.

use std::io::Read;

use anyhow::{Context, Result};
use serde_json::json;
use warden_client::Client;
use warden_core::acl::Policy;

use crate::cli::{AclCommand, Output};
use crate::output::emit;

/// Runs one `warden acl` command.
pub(crate) async fn run(client: &Client, out: Output, command: AclCommand) -> Result<()> {
    match command {
        AclCommand::Apply { file } => {
            let (name, text) = read(&file)?;
            let policy = Policy::parse(&text)
                .with_context(|| format!("{name} is not a valid ACL file; nothing was applied"))?;
            let rules = client.apply_acl(&text).await?;
            debug_assert_eq!(rules as usize, policy.rules());
            emit(
                out,
                &format!("applied {name}: {rules} rule(s) in force on every member"),
                &json!({ "file": name, "rules": rules }),
            )?;
        }
        AclCommand::Get => {
            let acl = client.acl().await?;
            let json = json!({ "enabled": acl.enabled, "text": acl.text, "mod_revision": acl.mod_revision });
            if acl.enabled {
                let text = format!(
                    "# in force since revision {}\n{}",
                    acl.mod_revision,
                    acl.text.trim_end()
                );
                emit(out, &text, &json)?;
            } else {
                emit(out, "# no access policy: ACLs are off and every request is allowed", &json)?;
            }
        }
    }
    Ok(())
}

/// The file's name as shown and its text (`-`: standard input).
fn read(file: &str) -> Result<(String, String)> {
    if file == "-" {
        let mut text = String::new();
        std::io::stdin()
            .read_to_string(&mut text)
            .context("cannot read the ACL file from standard input")?;
        return Ok(("standard input".to_owned(), text));
    }
    let text = std::fs::read_to_string(file)
        .with_context(|| format!("cannot read the ACL file {file}"))?;
    Ok((file.to_owned(), text))
}
