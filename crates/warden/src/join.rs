//! `warden server --join ENDPOINTS`: a new member asks an existing cluster to add it.
//!
//! The member starts without founding anything (its config's `join` is set), then sends
//! `Cluster.MemberAdd` with its own id and addresses (from its `initial_members` entry) to
//! the given members, which add it as a learner, let it catch up and promote it. Refusals
//! that will not change by asking again (the id taken with other addresses, no
//! permission, a bad address) end the member with the reason; anything else (no leader
//! yet, a learner still catching up) is asked again, for up to [`PATIENCE`]. A member
//! whose membership already lists it (a restart after joining) does not ask.

use std::time::Duration;

use anyhow::{Result, bail};
use tokio::time::{Instant, sleep};
use tonic::Code;
use tracing::{info, warn};
use warden_client::{Client, ClientError, TlsFiles};
use warden_server::{Config, Node};

/// How long a joining member keeps asking.
const PATIENCE: Duration = Duration::from_secs(600);

/// Longest pause between two requests.
const MAX_PAUSE: Duration = Duration::from_secs(5);

/// Whether the node's membership already lists it (it joined before).
fn joined(node: &Node) -> bool {
    let metrics = node.raft().metrics();
    let m = metrics.borrow();
    m.membership_config.membership().get_node(&node.id()).is_some()
}

/// A client of the cluster to join, over TLS with this member's own certificate when the
/// member speaks TLS.
fn client(config: &Config) -> Result<Client> {
    let deadline = Duration::from_secs(10);
    let ca = config.tls.client_ca.clone().or_else(|| config.tls.peer_ca.clone());
    let client = match (&config.tls.cert, ca) {
        (Some(cert), Some(ca)) => Client::with_tls_deadline(
            config.join.clone(),
            &TlsFiles { ca, cert: Some(cert.clone()), key: config.tls.key.clone() },
            deadline,
        )?,
        _ => Client::with_deadline(config.join.clone(), deadline)?,
    };
    Ok(client)
}

/// Whether asking again could succeed.
fn worth_retrying(error: &ClientError) -> bool {
    match error.code() {
        Some(
            Code::AlreadyExists
            | Code::PermissionDenied
            | Code::Unauthenticated
            | Code::InvalidArgument
            | Code::Unimplemented,
        ) => false,
        _ => !matches!(error, ClientError::InvalidEndpoint { .. } | ClientError::Tls { .. }),
    }
}

/// Asks the cluster at `config.join` to add this member, until it is added.
pub(crate) async fn join(config: &Config, node: &Node) -> Result<()> {
    if joined(node) {
        info!("already a member; not asking to join again");
        return Ok(());
    }
    let Some(me) = config.initial_members.iter().find(|m| m.id == config.node_id) else {
        bail!("initial_members does not list this node (node_id = {})", config.node_id);
    };
    let client = client(config)?;
    let endpoints = config.join.join(",");
    info!(%endpoints, id = me.id, peer_addr = %me.peer_addr, client_addr = %me.client_addr, "asking the cluster to add this member");
    let deadline = Instant::now() + PATIENCE;
    let mut pause = Duration::from_millis(500);
    loop {
        match client.member_add(me.id, &me.peer_addr, &me.client_addr).await {
            Ok(answer) => {
                info!(voters = answer.members.len(), "joined the cluster: this member is a voter");
                return Ok(());
            }
            Err(e) if !worth_retrying(&e) => {
                bail!("the cluster at {endpoints} refused to add this member: {e}");
            }
            Err(e) if Instant::now() >= deadline => {
                bail!(
                    "could not join the cluster at {endpoints} within {}s: {e}",
                    PATIENCE.as_secs()
                );
            }
            Err(e) => {
                warn!(error = %e, "not added yet; asking again");
                sleep(pause).await;
                pause = (pause * 2).min(MAX_PAUSE);
            }
        }
    }
}
