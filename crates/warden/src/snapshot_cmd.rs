//! `warden snapshot save|restore|status`: backups of the cluster's state. The format and
//! the restore are `warden-storage`'s (`backup`); this downloads, writes files and prints.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use serde_json::json;
use warden_client::{Client, Consistency, SnapshotPart};
use warden_storage::WardenNode;
use warden_storage::backup::{self, BackupInfo, Checksum, RestoreTarget, hex};

use crate::cli::{Output, SnapshotCommand};
use crate::output::emit;

/// Runs one `warden snapshot` command.
pub(crate) async fn run(
    client: &Client,
    out: Output,
    command: SnapshotCommand,
) -> Result<ExitCode> {
    match command {
        SnapshotCommand::Save { file, serializable } => {
            save(client, out, &file, serializable).await?
        }
        SnapshotCommand::Restore { file, config, data_dir, node_id, initial_members } => {
            let target = match config {
                Some(config) => {
                    let config = crate::run::load_config(&config)?;
                    let members = config
                        .initial_members
                        .iter()
                        .map(|m| (m.id, node(&m.peer_addr, &m.client_addr)))
                        .collect();
                    (config.data_dir, RestoreTarget { node_id: config.node_id, members })
                }
                None => {
                    let (Some(dir), Some(node_id), Some(members)) =
                        (data_dir, node_id, initial_members)
                    else {
                        bail!(
                            "give --config FILE, or all of --data-dir, --node-id and --initial-members"
                        );
                    };
                    (dir, RestoreTarget { node_id, members: parse_members(&members)? })
                }
            };
            restore(out, &file, &target.0, &target.1).await?
        }
        SnapshotCommand::Status { file } => status(out, &file)?,
    }
    Ok(ExitCode::SUCCESS)
}

fn node(peer: &str, client: &str) -> WardenNode {
    WardenNode { raft_addr: peer.to_owned(), client_addr: client.to_owned() }
}

/// `ID=PEER_ADDR@CLIENT_ADDR,...`, as `initial_members` in a config file.
pub(crate) fn parse_members(text: &str) -> Result<BTreeMap<u64, WardenNode>> {
    let mut members = BTreeMap::new();
    for entry in text.split(',').map(str::trim).filter(|e| !e.is_empty()) {
        let form = "each member is ID=PEER_ADDR@CLIENT_ADDR, as in 1=127.0.0.1:7401@127.0.0.1:7400";
        let (id, addrs) = entry
            .split_once('=')
            .with_context(|| format!("--initial-members: {entry:?}: {form}"))?;
        let id: u64 = id.trim().parse().with_context(|| {
            format!("--initial-members: {entry:?}: the id is not a number; {form}")
        })?;
        let (peer, client) = addrs
            .split_once('@')
            .with_context(|| format!("--initial-members: {entry:?}: {form}"))?;
        for (what, addr) in [("peer", peer), ("client", client)] {
            if addr.rsplit_once(':').and_then(|(_, port)| port.parse::<u16>().ok()).is_none() {
                bail!("--initial-members: {entry:?}: the {what} address {addr:?} is not host:port");
            }
        }
        if members.insert(id, node(peer, client)).is_some() {
            bail!("--initial-members lists member {id} twice");
        }
    }
    if members.is_empty() {
        bail!("--initial-members is empty: list every member of the new cluster");
    }
    Ok(members)
}

fn described(info: &BackupInfo, sha256: &[u8]) -> serde_json::Value {
    json!({
        "format_version": info.format_version,
        "revision": info.revision,
        "applied_index": info.applied_index,
        "applied_term": info.applied_term,
        "bytes": info.total_bytes() + backup::CHECKSUM_BYTES as u64,
        "sha256": hex(sha256),
    })
}

/// Downloads a backup into `file` through a temporary file beside it; nothing is left
/// at `file` unless the whole stream arrived and matched its checksum.
async fn save(client: &Client, out: Output, file: &Path, serializable: bool) -> Result<()> {
    let consistency =
        if serializable { Consistency::Serializable } else { Consistency::Linearizable };
    let mut download = client.snapshot(consistency).await?;
    let header = download.header;
    let dir = match file.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_owned(),
        _ => PathBuf::from("."),
    };
    let mut temp = tempfile::Builder::new()
        .prefix(".warden-snapshot-")
        .tempfile_in(&dir)
        .with_context(|| format!("cannot create a temporary file in {}", dir.display()))?;
    let mut sum = Checksum::default();
    let mut written = 0u64;
    let lost = |written: u64| {
        format!(
            "the snapshot stream broke after {written} of {} bytes; no file was written",
            header.total_bytes
        )
    };
    let sent = loop {
        match download.next().await.with_context(|| lost(written))? {
            Some(SnapshotPart::Chunk(bytes)) => {
                sum.update(&bytes);
                temp.write_all(&bytes)
                    .with_context(|| format!("cannot write to {}", dir.display()))?;
                written += bytes.len() as u64;
            }
            Some(SnapshotPart::Trailer { sha256 }) => break sha256,
            None => bail!("{}", lost(written)),
        }
    };
    if written != header.total_bytes {
        bail!(
            "the snapshot stream carried {written} bytes and its header announced {}; no file was written",
            header.total_bytes
        );
    }
    let computed = sum.finish();
    if computed != sent.as_ref() {
        bail!(
            "the snapshot's checksum does not match: received {}, the member sent {}; no file was written",
            hex(&computed),
            hex(&sent)
        );
    }
    temp.write_all(&computed)
        .and_then(|()| temp.as_file().sync_all())
        .with_context(|| format!("cannot write to {}", dir.display()))?;
    temp.persist(file)
        .with_context(|| format!("cannot rename the backup to {}", file.display()))?;
    std::fs::File::open(&dir)
        .and_then(|d| d.sync_all())
        .with_context(|| format!("cannot sync the directory {}", dir.display()))?;
    let bytes = written + backup::CHECKSUM_BYTES as u64;
    let object = json!({
        "file": file.display().to_string(),
        "format_version": header.format_version,
        "revision": header.revision,
        "applied_index": header.applied_index,
        "applied_term": header.applied_term,
        "bytes": bytes,
        "sha256": hex(&computed),
    });
    let text = format!(
        "saved {}: revision {}, applied index {} (term {}), {} bytes, sha256 {}",
        file.display(),
        header.revision,
        header.applied_index,
        header.applied_term,
        bytes,
        hex(&computed)
    );
    emit(out, &text, &object)
}

async fn restore(out: Output, file: &Path, dir: &Path, target: &RestoreTarget) -> Result<()> {
    let info = backup::restore_backup(file, dir, target).await?;
    let members = target.members.keys().map(u64::to_string).collect::<Vec<_>>().join(", ");
    let text = format!(
        "restored {} into {} for member {} of a new cluster of members {members}: revision {}, applied index {}; start this member on it, and every other member on its own restore of the same file",
        file.display(),
        dir.display(),
        target.node_id,
        info.revision,
        info.applied_index,
    );
    let object = json!({
        "file": file.display().to_string(),
        "data_dir": dir.display().to_string(),
        "node_id": target.node_id,
        "members": target.members.keys().collect::<Vec<_>>(),
        "revision": info.revision,
        "applied_index": info.applied_index,
    });
    emit(out, &text, &object)
}

fn status(out: Output, file: &Path) -> Result<()> {
    let checked = backup::read_backup(file)?;
    let state = warden_core::State::restore(&checked.state).with_context(|| {
        format!("{} passed its checksum, but its state does not decode", file.display())
    })?;
    let (nodes, sessions) = (state.tree().len(), state.sessions().count());
    let mut object = described(&checked.info, &checked.sha256);
    object["file"] = json!(file.display().to_string());
    object["checksum_ok"] = json!(true);
    object["nodes"] = json!(nodes);
    object["sessions"] = json!(sessions);
    let text = format!(
        "{}: format version {}, revision {}, applied index {} (term {}), {} bytes, {nodes} nodes, {sessions} sessions, sha256 {} (ok)",
        file.display(),
        checked.info.format_version,
        checked.info.revision,
        checked.info.applied_index,
        checked.info.applied_term,
        checked.info.total_bytes() + backup::CHECKSUM_BYTES as u64,
        hex(&checked.sha256)
    );
    emit(out, &text, &object)
}
