//! The client commands: each is a call to `warden-client` and a print.

use std::io::Read;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use serde_json::json;
use tonic::Code;
use warden_client::{Client, Consistency, Event, EventKind, Scope, TlsFiles};
use warden_core::{CreateMode, NodeKind};

use warden_server::cluster_status::{ClusterStatus, Known};

use crate::cli::{ClientCommand as Command, ClientOptions, ClusterCommand};
use crate::output::{emit, stat, value};

fn consistency(serializable: bool) -> Consistency {
    if serializable { Consistency::Serializable } else { Consistency::Linearizable }
}

/// A client of the endpoints, over TLS when --cacert is given.
fn connect(options: &ClientOptions) -> Result<Client> {
    let endpoints = options.endpoints.clone();
    match (&options.cacert, &options.cert, &options.key) {
        (None, None, None) => Ok(Client::new(endpoints)?),
        (None, _, _) => bail!(
            "--cert and --key need --cacert: the CA (PEM) that signed the members' certificates"
        ),
        (Some(_), Some(_), None) | (Some(_), None, Some(_)) => {
            bail!(
                "--cert and --key go together: give both (this client's certificate and its key) or neither"
            )
        }
        (Some(ca), cert, key) => {
            let files = TlsFiles { ca: ca.clone(), cert: cert.clone(), key: key.clone() };
            Ok(Client::with_tls(endpoints, &files)?)
        }
    }
}

/// Runs one client command.
pub(crate) async fn run(before: &ClientOptions, command: Command) -> Result<ExitCode> {
    let options = command.flags().over(before);
    let client = connect(&options)?;
    let out = options.output;
    match command {
        Command::Create { path, value: v, file, ephemeral, sequential, container, .. } => {
            let kind = match (ephemeral, container) {
                (true, _) => NodeKind::Ephemeral,
                (_, true) => NodeKind::Container,
                _ => NodeKind::Persistent,
            };
            let data = read_value(v, file)?;
            let (created, s) = client.create(&path, data, CreateMode { kind, sequential }).await?;
            emit(out, &created, &json!({ "path": created, "stat": stat(&s) }))?;
        }
        Command::Put { path, value: v, file, version, .. } => {
            let data = read_value(v, file)?;
            let s = match version {
                Some(n) => client.set(&path, data, Some(n)).await?,
                None => client.put(&path, data).await?,
            };
            emit(
                out,
                &format!("{path} version {}", s.version),
                &json!({ "path": path, "stat": stat(&s) }),
            )?;
        }
        Command::Get { path, prefix: true, serializable, .. } => {
            get_tree(&client, out, &path, consistency(serializable)).await?
        }
        Command::Get { path, prefix: false, serializable, .. } => {
            let node = client.get_with(&path, consistency(serializable)).await?;
            let mut object =
                json!({ "path": path, "stat": stat(&node.stat), "revision": node.revision });
            value(&mut object, &node.data);
            let text = String::from_utf8_lossy(&node.data).into_owned();
            emit(out, &text, &object)?;
        }
        Command::Ls { path, serializable, limit, .. } => {
            ls(&client, out, &path, consistency(serializable), limit).await?
        }
        Command::Rm { path, recursive, version, revoke_locks: false, .. } => {
            let deleted = client.delete(&path, version, recursive).await?;
            emit(
                out,
                &format!("deleted {deleted} node(s)"),
                &json!({ "path": path, "deleted": deleted }),
            )?;
        }
        Command::Rm { path, recursive, version, revoke_locks: true, .. } => {
            let d = client.delete_revoking_locks(&path, version, recursive).await?;
            let mut text = format!(
                "deleted {} node(s), revoked {} lock hold(s) or wait(s)",
                d.deleted, d.revoked
            );
            if d.kept > 0 {
                text.push_str(&format!(
                    "; {} lock(s) in their lock-delay are kept until it ends, then go with the nodes above them",
                    d.kept
                ));
            }
            emit(
                out,
                &text,
                &json!({ "path": path, "deleted": d.deleted, "revoked": d.revoked, "kept": d.kept }),
            )?;
        }
        Command::Cluster { command: ClusterCommand::Status, .. } => {
            cluster_status(&client, out).await?
        }
        Command::WhoAmI { .. } => {
            let identity = client.whoami().await?;
            let text = if identity.is_empty() {
                "anonymous (no client certificate)"
            } else {
                identity.as_str()
            };
            emit(out, text, &json!({ "identity": identity }))?;
        }
        Command::Lock {
            target,
            status_path,
            limit,
            session,
            timeout,
            shared,
            subtree,
            priority,
            ttl,
            delay,
            resource,
            no_wait_while_draining,
            command,
            ..
        } => {
            if let Some(kind) = resource {
                if session.is_some() {
                    bail!("--session goes with revoke, not with --resource");
                }
                if let Some(extra) = status_path {
                    bail!(
                        "unexpected {extra:?}: with --resource give the id, then the command after --, as in: warden lock --resource {kind} {target} -- ./run.sh"
                    );
                }
                let how = crate::lock_cmd::How { timeout, shared, subtree, priority, ttl, delay };
                let target = crate::lock_cmd::Target::Resource {
                    kind: &kind,
                    id: &target,
                    no_wait_while_draining,
                };
                return crate::lock_cmd::run(&client, target, how, &command).await;
            }
            if limit.is_some() && target != "stats" {
                bail!("--limit goes with stats: warden lock stats PREFIX --limit N");
            }
            if target == "stats" {
                let prefix = status_path.unwrap_or_else(|| "/".to_owned());
                crate::lock_stats_cmd::stats(&client, out, &prefix, limit.unwrap_or(0)).await?;
            } else if target == "status" {
                let path = status_path.context("give the lock's path: warden lock status PATH")?;
                crate::lock_cmd::status(&client, out, &path).await?;
            } else if target == "revoke" {
                let path = status_path
                    .context("give the lock's path: warden lock revoke PATH --session ID")?;
                let session = session.context(
                    "give the session to take out: warden lock revoke PATH --session ID (ids are in warden lock status PATH)",
                )?;
                let held = client.revoke_lock(&path, session).await?;
                let what = if held { "its hold" } else { "its wait" };
                emit(
                    out,
                    &format!("revoked session {session} from {path} ({what})"),
                    &json!({ "path": path, "session": session, "held": held }),
                )?;
            } else {
                if session.is_some() {
                    bail!("--session goes with revoke: warden lock revoke PATH --session ID");
                }
                if let Some(extra) = status_path {
                    bail!(
                        "unexpected {extra:?}: put the command after --, as in: warden lock {target} -- {extra}"
                    );
                }
                let how = crate::lock_cmd::How { timeout, shared, subtree, priority, ttl, delay };
                let target = crate::lock_cmd::Target::Path(&target);
                return crate::lock_cmd::run(&client, target, how, &command).await;
            }
        }
        Command::Elect { target, name, value, timeout, ttl, command, .. } => {
            let how = crate::elect_cmd::How {
                value: value.unwrap_or_default().into_bytes(),
                timeout,
                ttl,
            };
            let action = crate::elect_cmd::action(target, name, how, command)?;
            return crate::elect_cmd::run_action(&client, out, action).await;
        }
        Command::Barrier { target, name, count, timeout, ttl, command, .. } => {
            let action =
                crate::barrier_cmd::action(target, name, count, timeout.is_some(), command)?;
            return crate::barrier_cmd::run(&client, out, action, timeout, ttl).await;
        }
        Command::Resource { command, .. } => {
            crate::resource_cmd::run(&client, out, command).await?
        }
        Command::Rotate { args, .. } => {
            return crate::resource_cmd::rotate(&client, out, &args).await;
        }
        Command::Session { command, .. } => crate::session_cmd::run(&client, out, command).await?,
        Command::Acl { command, .. } => crate::acl_cmd::run(&client, out, command).await?,
        Command::Member { command, .. } => crate::member_cmd::run(&client, out, command).await?,
        Command::Leader { command, .. } => crate::member_cmd::leader(&client, out, command).await?,
        Command::Snapshot { command, .. } => {
            return crate::snapshot_cmd::run(&client, out, command).await;
        }
        Command::Txn { file, .. } => return crate::txn_cmd::run(&client, out, file).await,
        Command::Endpoint { command, .. } => {
            return crate::endpoint_cmd::run(&client, &options, out, command).await;
        }
        Command::Watch { path, prefix, glob, from_revision, .. } => {
            let scope = match (prefix, glob) {
                (_, true) => Scope::Glob,
                (true, _) => Scope::Prefix,
                _ => Scope::Key,
            };
            let mut watcher = client.watch(&path, scope, from_revision, false).await?;
            loop {
                let batch = tokio::select! {
                    batch = watcher.next() => batch?,
                    _ = tokio::signal::ctrl_c() => return Ok(ExitCode::SUCCESS),
                };
                for event in batch.events {
                    print_event(out, &event)?;
                }
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// The value given on the command line: the argument, standard input for `-`, or the
/// file; empty if none.
fn read_value(value: Option<String>, file: Option<PathBuf>) -> Result<Vec<u8>> {
    match (value, file) {
        (_, Some(file)) => std::fs::read(&file)
            .with_context(|| format!("cannot read the value from {}", file.display())),
        (Some(v), None) if v == "-" => {
            let mut data = Vec::new();
            std::io::stdin()
                .read_to_end(&mut data)
                .context("cannot read the value from standard input")?;
            Ok(data)
        }
        (Some(v), None) => Ok(v.into_bytes()),
        (None, None) => Ok(Vec::new()),
    }
}

/// `path` joined with a child's `name`.
fn child_path(path: &str, name: &str) -> String {
    if path == "/" { format!("/{name}") } else { format!("{path}/{name}") }
}

/// Prints `root` and every node under it, depth-first by name, each with its value. Each
/// node is read on its own (`Client::children`, `Client::get`), so the walk is not one
/// snapshot: a node deleted after its parent was listed is skipped.
async fn get_tree(
    client: &Client,
    out: crate::cli::Output,
    root: &str,
    consistency: Consistency,
) -> Result<()> {
    let mut pending = vec![root.to_owned()];
    while let Some(path) = pending.pop() {
        let node = match client.get_with(&path, consistency).await {
            Ok(node) => node,
            Err(e) if path != root && e.code() == Some(Code::NotFound) => continue,
            Err(e) => return Err(e.into()),
        };
        let text = if node.data.is_empty() {
            path.clone()
        } else {
            format!("{path} {}", String::from_utf8_lossy(&node.data))
        };
        let mut object =
            json!({ "path": path, "stat": stat(&node.stat), "revision": node.revision });
        value(&mut object, &node.data);
        emit(out, &text, &object)?;
        if node.stat.num_children == 0 {
            continue;
        }
        let children = match client.children(&path, consistency).await {
            Ok(children) => children,
            Err(e) if e.code() == Some(Code::NotFound) => continue,
            Err(e) => return Err(e.into()),
        };
        // Last pushed, first printed: the children come out in name order.
        pending.extend(children.iter().rev().map(|(name, _)| child_path(&path, name)));
    }
    Ok(())
}

/// Prints the children of `path` page by page, at most `limit` of them.
async fn ls(
    client: &Client,
    out: crate::cli::Output,
    path: &str,
    consistency: Consistency,
    limit: Option<u64>,
) -> Result<()> {
    let mut left = limit.unwrap_or(u64::MAX);
    let mut after = String::new();
    while left > 0 {
        let ask = u32::try_from(left).unwrap_or(0);
        let page = client.children_page(path, consistency, &after, ask).await?;
        for (name, s) in page.children.iter().take(usize::try_from(left).unwrap_or(usize::MAX)) {
            let full = child_path(path, name);
            emit(out, name, &json!({ "name": name, "path": full, "stat": stat(s) }))?;
            left -= 1;
        }
        match page.children.last() {
            Some((last, _)) if page.more => after.clone_from(last),
            _ => break,
        }
    }
    Ok(())
}

fn print_event(out: crate::cli::Output, event: &Event) -> Result<()> {
    let kind = match event.kind {
        EventKind::Created => "created",
        EventKind::Data => "data",
        EventKind::Deleted => "deleted",
        EventKind::Children => "children",
    };
    let mut object = json!({ "revision": event.revision, "kind": kind, "path": event.path, "stat": stat(&event.stat) });
    let mut text = format!("{} {kind} {}", event.revision, event.path);
    if let Some(data) = &event.data {
        value(&mut object, data);
        text.push(' ');
        text.push_str(&String::from_utf8_lossy(data));
    }
    emit(out, &text, &object)
}

/// Asks every member for its own status; the document is built where the HTTP port's
/// `/cluster/status` is ([`ClusterStatus`]).
async fn cluster_status(client: &Client, out: crate::cli::Output) -> Result<()> {
    let status = client.status().await?;
    let mut answers = std::collections::BTreeMap::new();
    for m in &status.members {
        answers.insert(m.id, client.member_status(&m.client_addr).await.ok());
    }
    let document = ClusterStatus::new(&status, |m| match answers.get(&m.id) {
        Some(Some(answer)) => Known::Answered(answer),
        _ => Known::Unreachable,
    });
    emit(out, &document.text(), &document.json())
}
