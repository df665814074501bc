//! A lock: acquire, use the fencing token, release.
//!
//! A few tasks, each with a session of its own (as separate processes would have), add 1
//! to a counter node several times. Each addition is a plain read then write, which would
//! lose updates if two ran at once; the mutex makes them take turns, so the counter ends
//! at tasks × rounds.
//!
//! Every grant comes with a fencing token, higher than any before it. Before writing, the
//! holder asks the cluster whether its token still holds the lock (Chubby's
//! CheckSequencer); a resource that cannot ask can keep the highest token it has seen and
//! refuse lower ones (see the `leader` example). After the release the token is refused.
//!
//! Run it against `cargo run --release -- dev`: `cargo run --example lock`
//! (WARDEN_ENDPOINTS, comma-separated, names the members; default 127.0.0.1:7400).

#![allow(clippy::print_stdout)]

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use futures::future::try_join_all;
use tokio::sync::Mutex;
use warden_client::{Client, Code, CreateMode};

/// The mutex.
const LOCK: &str = "/examples/lock/mutex";
/// The counter it protects.
const COUNTER: &str = "/examples/lock/counter";

/// What happened, for the test to check.
#[derive(Debug)]
pub struct Outcome {
    /// How much the counter grew.
    pub added: u64,
    /// The tokens, in the order the lock was granted.
    pub tokens: Vec<u64>,
    /// CheckSequencer still accepted a token after its release.
    pub released_token_accepted: bool,
}

/// Runs `tasks` tasks, each adding 1 to the counter `rounds` times under the lock.
pub async fn run(client: &Client, tasks: u32, rounds: u32) -> Result<Outcome> {
    for path in ["/examples", "/examples/lock"] {
        match client.create(path, "", CreateMode::PERSISTENT).await {
            Err(e) if e.code() != Some(Code::AlreadyExists) => return Err(e.into()),
            _ => {}
        }
    }
    client.put(COUNTER, "0").await?;
    let tokens = Mutex::new(Vec::new());
    let released_token_accepted = AtomicBool::new(false);

    let task = |t: u32| {
        let (tokens, released_token_accepted) = (&tokens, &released_token_accepted);
        async move {
            let session = client.open_session(Duration::from_secs(10)).await?;
            let lock = client.mutex(&session, LOCK);
            for _ in 0..rounds {
                // Wait for the lock (up to 30 s).
                let guard = lock.acquire_timeout(Duration::from_secs(30)).await?;
                let token = guard.token();
                tokens.lock().await.push(token);

                // Use the token: check that it still holds the lock, then write.
                if !client.check_sequencer(LOCK, token).await? {
                    bail!("task {t}: token {token} no longer holds the lock");
                }
                let count = read_counter(client).await?;
                // Real work takes a while: without the lock, another task would read the
                // same count meanwhile, and one of the two additions would be lost.
                tokio::time::sleep(Duration::from_millis(20)).await;
                client.set(COUNTER, (count + 1).to_string(), None).await?;
                println!("task {t}: token {token}: counter {count} -> {}", count + 1);

                guard.release().await?;
                // A released token is refused: a late write with it would be caught.
                let accepted = client.check_sequencer(LOCK, token).await?;
                println!("task {t}: released; token {token} accepted now: {accepted}");
                released_token_accepted.fetch_or(accepted, Ordering::SeqCst);
            }
            session.close().await?;
            anyhow::Ok(())
        }
    };
    try_join_all((0..tasks).map(task)).await?;

    let added = read_counter(client).await?;
    println!("counter: {added} (expected {})", u64::from(tasks) * u64::from(rounds));
    Ok(Outcome {
        added,
        tokens: tokens.into_inner(),
        released_token_accepted: released_token_accepted.into_inner(),
    })
}

/// The counter's value.
async fn read_counter(client: &Client) -> Result<u64> {
    let node = client.get(COUNTER).await?;
    std::str::from_utf8(&node.data)
        .ok()
        .and_then(|text| text.parse().ok())
        .with_context(|| format!("{COUNTER} does not hold a number: delete it and run again"))
}

/// The client of the members WARDEN_ENDPOINTS names (default: `warden dev`'s first member).
fn client_from_env() -> Result<Client> {
    let endpoints = std::env::var("WARDEN_ENDPOINTS").unwrap_or_else(|_| "127.0.0.1:7400".into());
    let endpoints = endpoints.split(',').map(|e| e.trim().to_owned()).filter(|e| !e.is_empty());
    Ok(Client::new(endpoints.collect())?)
}

#[tokio::main]
async fn main() -> Result<()> {
    run(&client_from_env()?, 3, 2).await?;
    Ok(())
}
