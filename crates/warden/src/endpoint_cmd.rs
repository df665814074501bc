//! `warden endpoint health`: every member asked alone whether it can serve.
//!
//! The members are those given in --endpoints and every member the cluster lists (asked
//! of any member that answers), so a member missing from --endpoints is not missed;
//! `--listed-only` asks those given alone (a container's health check of its member). Each
//! is asked `Maintenance.Health` directly, with no redirect, and answers with the verdict
//! of its own HTTP `/health` (the membership records no HTTP address to ask it there):
//! ready when it knows a leader and, as the leader, hears from a quorum, or, as a
//! follower, is not too far behind.

use std::io::Write;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::Result;
use serde_json::json;
use warden_client::Client;

use crate::cli::{ClientOptions, EndpointCommand, Output};
use crate::output::emit;

/// Runs one `warden endpoint` command.
pub(crate) async fn run(
    client: &Client,
    options: &ClientOptions,
    out: Output,
    command: EndpointCommand,
) -> Result<ExitCode> {
    let EndpointCommand::Health { timeout, listed_only } = command;
    let mut endpoints: Vec<String> = options.endpoints.iter().map(|e| bare(e)).collect();
    // The cluster's own list, from whichever member answers in time; the given endpoints
    // alone if none does, or if asked for them alone.
    if !listed_only && let Ok(Ok(status)) = tokio::time::timeout(timeout, client.status()).await {
        endpoints.extend(status.members.iter().map(|m| bare(&m.client_addr)));
    }
    let mut seen = std::collections::BTreeSet::new();
    endpoints.retain(|e| seen.insert(e.clone()));
    let probes = endpoints.iter().map(|e| probe(client, e, timeout));
    let answers = futures::future::join_all(probes).await;
    let mut unhealthy = Vec::new();
    for answer in &answers {
        let took_ms = answer.took.as_secs_f64() * 1e3;
        let text = match (&answer.member, answer.healthy) {
            (Some((id, role)), true) => {
                format!("{} is healthy: member {id}, {role}, took {took_ms:.1}ms", answer.endpoint)
            }
            (Some((id, role)), false) => format!(
                "{} is unhealthy: member {id}, {role}, took {took_ms:.1}ms: {}",
                answer.endpoint, answer.reason
            ),
            (None, _) => {
                format!("{} is unhealthy: took {took_ms:.1}ms: {}", answer.endpoint, answer.reason)
            }
        };
        let object = json!({
            "endpoint": answer.endpoint,
            "healthy": answer.healthy,
            "member_id": answer.member.as_ref().map(|m| m.0),
            "role": answer.member.as_ref().map(|m| m.1.clone()),
            "took_ms": took_ms,
            "reason": (!answer.healthy).then_some(answer.reason.clone()),
        });
        emit(out, &text, &object)?;
        if !answer.healthy {
            unhealthy.push(answer.endpoint.clone());
        }
    }
    if unhealthy.is_empty() {
        return Ok(ExitCode::SUCCESS);
    }
    let message = format!(
        "error: {} of {} endpoints unhealthy: {}",
        unhealthy.len(),
        answers.len(),
        unhealthy.join(", ")
    );
    writeln!(std::io::stderr(), "{message}").ok();
    Ok(ExitCode::from(crate::exit::UNAVAILABLE))
}

/// `host:port` without a scheme, so that `http://a:1` and `a:1` are one member.
fn bare(endpoint: &str) -> String {
    let e = endpoint.trim();
    e.strip_prefix("http://").or_else(|| e.strip_prefix("https://")).unwrap_or(e).to_owned()
}

/// One member's answer.
struct Answer {
    endpoint: String,
    healthy: bool,
    /// Its id and role, when it answered.
    member: Option<(u64, String)>,
    reason: String,
    took: Duration,
}

async fn probe(client: &Client, endpoint: &str, timeout: Duration) -> Answer {
    let started = Instant::now();
    let asked = tokio::time::timeout(timeout, client.member_health(endpoint)).await;
    let took = started.elapsed();
    let endpoint = endpoint.to_owned();
    match asked {
        Ok(Ok(h)) => Answer {
            endpoint,
            healthy: h.healthy,
            member: Some((h.header.map_or(0, |h| h.member_id), h.role)),
            reason: h.reason,
            took,
        },
        Ok(Err(e)) => {
            Answer { endpoint, healthy: false, member: None, reason: e.to_string(), took }
        }
        Err(_) => Answer {
            endpoint,
            healthy: false,
            member: None,
            reason: format!("no answer within {}ms", timeout.as_millis()),
            took,
        },
    }
}
