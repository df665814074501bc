//! `warden session list|info ID|close ID`.
//!
//! warden-client closes only a session it opened (`Session::close`), so `session close ID`
//! calls the Session service's Close on the leader itself, with a channel of its own.

use std::time::Duration;

use anyhow::{Context, Result, bail};
use serde_json::json;
use warden_client::{Client, ClientError, ErrorKind};
use warden_proto::ERROR_METADATA;
use warden_proto::v1 as pb;

use crate::cli::{Output, SessionCommand};
use crate::output::emit;

/// Runs one session command.
pub(crate) async fn run(client: &Client, out: Output, command: SessionCommand) -> Result<()> {
    let id = match command {
        SessionCommand::List => 0,
        SessionCommand::Info { id } => id,
        SessionCommand::Close { id } => {
            let deleted = close(client, id).await?;
            let text = format!("closed session {id}; {deleted} ephemeral node(s) deleted");
            return emit(out, &text, &json!({ "id": id, "deleted": deleted }));
        }
    };
    for s in client.sessions(id).await? {
        let text = format!(
            "{}  ttl {} ms  remaining {} ms  identity {:?}  ephemerals {}",
            s.session_id,
            s.ttl_ms,
            s.remaining_ms,
            s.identity,
            s.ephemerals.join(",")
        );
        let object = json!({
            "id": s.session_id,
            "ttl_ms": s.ttl_ms,
            "remaining_ms": s.remaining_ms,
            "identity": s.identity,
            "opened_ms": s.opened_ms,
            "ephemerals": s.ephemerals,
        });
        emit(out, &text, &object)?;
    }
    Ok(())
}

/// Closes session `id` on the leader; returns how many ephemeral nodes went. A leader
/// that stepped down before proposing anything is asked again, once, after a new status.
async fn close(client: &Client, id: u64) -> Result<u64> {
    let mut attempts = 0;
    loop {
        attempts += 1;
        match close_on_leader(client, id).await? {
            Ok(deleted) => return Ok(deleted),
            Err(ClientError::Server { kind, .. })
                if attempts < 3
                    && matches!(kind, Some(ErrorKind::NotLeader | ErrorKind::MemberStopped)) =>
            {
                tokio::time::sleep(Duration::from_millis(300)).await;
            }
            Err(e) => return Err(e.into()),
        }
    }
}

/// One Close call to the member the cluster names as leader: its answer as a client error,
/// or an error finding or reaching the leader.
async fn close_on_leader(client: &Client, id: u64) -> Result<Result<u64, ClientError>> {
    let status = client.status().await?;
    let Some(leader) = status.members.iter().find(|m| m.id == status.leader_id) else {
        bail!("no leader is known (an election may be running); retry shortly");
    };
    let addr = &leader.client_addr;
    let channel = client
        .endpoint_to(addr)
        .with_context(|| format!("the leader's address {addr:?} is not valid"))?
        .connect_timeout(Duration::from_secs(2))
        .timeout(Duration::from_secs(10))
        .connect()
        .await
        .map_err(|e| ClientError::Unavailable { endpoints: addr.clone(), last: e.to_string() })?;
    let answer = pb::session_client::SessionClient::new(channel)
        .close(pb::CloseSessionRequest { session_id: id })
        .await;
    Ok(answer.map(|r| r.into_inner().deleted).map_err(|s| {
        let kind =
            s.metadata().get(ERROR_METADATA).and_then(|v| ErrorKind::parse(v.to_str().ok()?));
        ClientError::Server { code: s.code(), message: s.message().to_owned(), kind }
    }))
}
