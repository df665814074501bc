//! Leader election with a fenced store: why a leader's writes carry its token.
//!
//! Two candidates, A and B, campaign in one election. A leads and writes to a store. Then A
//! stalls (a long GC pause, a partition: here its session simply stops its keepalives), the
//! cluster expires its session, and B is elected with a higher token. When A wakes up it
//! still holds its `Leadership` and believes it leads; without fencing its next write
//! would silently replace B's, two leaders writing at once. The store refuses it: every
//! write says its token, and the store accepts only a token at least as high as any it has
//! seen.
//!
//! The store here is two warden nodes: `fence` holds the highest token seen, `data` the
//! value. A write reads the fence, gives up if it holds a higher token, and otherwise sets
//! both in a transaction that applies only if the fence has not changed since it was read.
//!
//! Run it against `cargo run --release -- dev`: `cargo run --example leader`
//! (WARDEN_ENDPOINTS, comma-separated, names the members; default 127.0.0.1:7400).

#![allow(clippy::print_stdout)]

use std::time::Duration;

use anyhow::{Context, Result, bail};
use warden_client::{Check, Client, Code, Compare, CompareOp, CreateMode, TxnOp};

/// The election the candidates campaign in.
const ELECTION: &str = "/examples/leader/election";
/// The store's highest token seen.
const FENCE: &str = "/examples/leader/fence";
/// The store's value.
const DATA: &str = "/examples/leader/data";

/// What happened, for the test to check.
#[derive(Debug)]
pub struct Outcome {
    /// A's token, then B's.
    pub tokens: (u64, u64),
    /// The fenced store took A's write with A's token once B led.
    pub stale_write_accepted: bool,
    /// The store's value at the end.
    pub data: String,
}

/// What the store did with a write.
#[derive(Debug, PartialEq, Eq)]
pub enum Write {
    /// Written: the token was the highest the store had seen.
    Accepted,
    /// Refused: the store had seen this higher token.
    Refused(u64),
}

/// Runs the story: A leads and writes, stalls, B leads and writes, A writes again.
pub async fn run(client: &Client) -> Result<Outcome> {
    create_if_missing(client, "/examples", "").await?;
    create_if_missing(client, "/examples/leader", "").await?;
    create_if_missing(client, FENCE, "0").await?;
    create_if_missing(client, DATA, "").await?;

    // A campaigns with a short ttl (2 s): when it stops renewing, it is out soon.
    let session_a = client.open_session(Duration::from_secs(2)).await?;
    let a =
        client.election(&session_a, ELECTION).campaign("A", Some(Duration::from_secs(30))).await?;
    println!("A leads with token {}", a.token());
    let write = fenced_write(client, a.token(), "from A").await?;
    println!("A writes with token {}: {write:?}", a.token());

    // B campaigns too, and waits in line behind A.
    let session_b = client.open_session(Duration::from_secs(10)).await?;
    let election_b = client.election(&session_b, ELECTION);
    let campaign_b =
        tokio::spawn(async move { election_b.campaign("B", Some(Duration::from_secs(30))).await });

    // A stalls: its keepalives stop, as in a long pause. The cluster expires its session
    // after the ttl, and B is elected.
    session_a.abandon();
    println!("A stalls; its session will expire in 2 s");
    let b = campaign_b.await.context("B's campaign panicked")??;
    println!("B leads with token {}", b.token());
    let write = fenced_write(client, b.token(), "from B").await?;
    println!("B writes with token {}: {write:?}", b.token());

    // A wakes up. Nothing has told it (its guard still says lost = false), so it writes
    // with its old token: the store refuses it, and B's value stays.
    println!(
        "A wakes up (its guard says lost = {}) and writes with token {}",
        a.is_lost(),
        a.token()
    );
    let stale = fenced_write(client, a.token(), "from A, after its pause").await?;
    match stale {
        Write::Refused(highest) => println!("  refused: the store has seen token {highest}"),
        Write::Accepted => println!("  accepted: B's value is lost!"),
    }
    let data = String::from_utf8_lossy(&client.get(DATA).await?.data).into_owned();
    println!("the store holds {data:?}");

    let tokens = (a.token(), b.token());
    b.resign().await?;
    session_b.close().await?;
    Ok(Outcome { tokens, stale_write_accepted: stale == Write::Accepted, data })
}

/// Writes `value` to the store with `token`, unless the store has seen a higher token.
pub async fn fenced_write(client: &Client, token: u64, value: &str) -> Result<Write> {
    // Each try fails only if another write came between the read and the transaction.
    for _ in 0..10 {
        let fence = client.get(FENCE).await?;
        let highest: u64 = std::str::from_utf8(&fence.data)
            .ok()
            .and_then(|text| text.parse().ok())
            .with_context(|| format!("{FENCE} does not hold a token: delete it and run again"))?;
        if highest > token {
            return Ok(Write::Refused(highest));
        }
        // Applies only if the fence is still what was read (its version is unchanged).
        let unchanged = Compare {
            path: FENCE.into(),
            check: Check::Version(CompareOp::Equal, fence.stat.version),
        };
        let ops = vec![
            TxnOp::Set {
                path: FENCE.into(),
                data: token.to_string().into(),
                expected_version: None,
            },
            TxnOp::Set { path: DATA.into(), data: value.to_owned().into(), expected_version: None },
        ];
        if client.txn(vec![unchanged], ops).await?.succeeded {
            return Ok(Write::Accepted);
        }
    }
    bail!("the store changed under 10 writes in a row")
}

/// Creates a persistent node unless it exists.
async fn create_if_missing(client: &Client, path: &str, value: &'static str) -> Result<()> {
    match client.create(path, value, CreateMode::PERSISTENT).await {
        Err(e) if e.code() != Some(Code::AlreadyExists) => Err(e.into()),
        _ => Ok(()),
    }
}

/// The client of the members WARDEN_ENDPOINTS names (default: `warden dev`'s first member).
fn client_from_env() -> Result<Client> {
    let endpoints = std::env::var("WARDEN_ENDPOINTS").unwrap_or_else(|_| "127.0.0.1:7400".into());
    let endpoints = endpoints.split(',').map(|e| e.trim().to_owned()).filter(|e| !e.is_empty());
    Ok(Client::new(endpoints.collect())?)
}

#[tokio::main]
async fn main() -> Result<()> {
    let outcome = run(&client_from_env()?).await?;
    if outcome.stale_write_accepted {
        bail!("the store took a deposed leader's write");
    }
    Ok(())
}
