//! `warden member list|add|remove` and `warden leader transfer`.

use anyhow::Result;
use serde_json::{Value, json};
use warden_client::Client;
use warden_client::proto as pb;

use crate::cli::{LeaderCommand, MemberCommand, Output};
use crate::output::emit;

/// The members as a table: id, role, addresses, the leader marked.
fn table(members: &[pb::Member], leader: u64) -> String {
    let mut lines = vec![format!("{:<6} {:<8} {:<22} {}", "ID", "ROLE", "CLIENT", "PEER")];
    for m in members {
        let role = if m.id == leader { "leader" } else { m.membership.as_str() };
        lines.push(format!("{:<6} {:<8} {:<22} {}", m.id, role, m.client_addr, m.raft_addr));
    }
    lines.join("\n")
}

fn member_json(m: &pb::Member, leader: u64) -> Value {
    json!({
        "id": m.id,
        "membership": m.membership,
        "leader": m.id == leader,
        "client_addr": m.client_addr,
        "peer_addr": m.raft_addr,
    })
}

fn members_json(members: &[pb::Member], leader: u64) -> Value {
    Value::Array(members.iter().map(|m| member_json(m, leader)).collect())
}

/// Runs one `warden member` command.
pub(crate) async fn run(client: &Client, out: Output, command: MemberCommand) -> Result<()> {
    match command {
        MemberCommand::List => {
            let list = client.member_list().await?;
            emit(
                out,
                &table(&list.members, list.leader_id),
                &json!({
                    "leader_id": list.leader_id,
                    "members": members_json(&list.members, list.leader_id),
                }),
            )?;
        }
        MemberCommand::Add { id, peer_addr, client_addr } => {
            let answer = client.member_add(id, &peer_addr, &client_addr).await?;
            let text = if answer.added {
                format!("member {id} added: it caught up and is a voter")
            } else {
                format!("member {id} is a voter already (peer {peer_addr}, client {client_addr})")
            };
            emit(
                out,
                &text,
                &json!({ "id": id, "added": answer.added, "members": members_json(&answer.members, 0) }),
            )?;
        }
        MemberCommand::Remove { id } => {
            let members = client.member_remove(id).await?;
            emit(
                out,
                &format!("member {id} removed; {} member(s) left", members.len()),
                &json!({ "id": id, "removed": true, "members": members_json(&members, 0) }),
            )?;
        }
    }
    Ok(())
}

/// Runs one `warden leader` command.
pub(crate) async fn leader(client: &Client, out: Output, command: LeaderCommand) -> Result<()> {
    match command {
        LeaderCommand::Transfer { id } => {
            let term = client.leader_transfer(id).await?;
            emit(
                out,
                &format!("member {id} leads (term {term})"),
                &json!({ "leader_id": id, "term": term }),
            )?;
        }
    }
    Ok(())
}
