//! A double barrier of worker tasks: they start together and finish together.
//!
//! N workers, each with a session of its own (as N processes would have), arrive at
//! different times. Each enters the double barrier and waits until all N are in, works for
//! a different time, then leaves and waits until all N are done. A worker whose session
//! ends (it crashed) leaves by itself, so the others are not held for ever.
//!
//! Each worker notes how many workers had arrived when it got in, and how many had
//! finished when it got out: with the barrier, always N.
//!
//! Run it against `cargo run --release -- dev`: `cargo run --example workers`
//! (WARDEN_ENDPOINTS, comma-separated, names the members; default 127.0.0.1:7400).

#![allow(clippy::print_stdout)]

use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use anyhow::Result;
use futures::future::try_join_all;
use tokio::time::sleep;
use warden_client::Client;

/// The double barrier.
const BARRIER: &str = "/examples/workers/round";

/// What one worker saw.
#[derive(Debug, Clone, Copy)]
pub struct Seen {
    /// How many workers had arrived when it got through `enter`.
    pub arrived: u32,
    /// How many workers had finished their work when it got through `leave`.
    pub finished: u32,
}

/// Runs `workers` workers through the double barrier; returns what each saw.
pub async fn run(client: &Client, workers: u32) -> Result<Vec<Seen>> {
    let arrived = AtomicU32::new(0);
    let finished = AtomicU32::new(0);
    let worker = |i: u32| {
        let (arrived, finished) = (&arrived, &finished);
        async move {
            let session = client.open_session(Duration::from_secs(10)).await?;
            let barrier = client.double_barrier(&session, BARRIER, workers);
            let timeout = Some(Duration::from_secs(30));

            // Workers arrive one after another ...
            sleep(Duration::from_millis(300) * i).await;
            arrived.fetch_add(1, Ordering::SeqCst);
            println!("worker {i}: arrived, waiting for the others to enter");
            // ... and enter returns only once all of them are in.
            let entered = barrier.enter(timeout).await?;
            let arrived_now = arrived.load(Ordering::SeqCst);
            println!("worker {i}: all in ({arrived_now} arrived), working");

            sleep(Duration::from_millis(200) * (workers - i)).await;
            finished.fetch_add(1, Ordering::SeqCst);
            println!("worker {i}: done, waiting for the others to finish");
            // leave returns only once all of them have left.
            entered.leave(timeout).await?;
            let finished_now = finished.load(Ordering::SeqCst);
            println!("worker {i}: all done ({finished_now} finished)");

            session.close().await?;
            anyhow::Ok(Seen { arrived: arrived_now, finished: finished_now })
        }
    };
    // The workers run concurrently (as separate processes would).
    try_join_all((0..workers).map(worker)).await
}

/// The client of the members WARDEN_ENDPOINTS names (default: `warden dev`'s first member).
fn client_from_env() -> Result<Client> {
    let endpoints = std::env::var("WARDEN_ENDPOINTS").unwrap_or_else(|_| "127.0.0.1:7400".into());
    let endpoints = endpoints.split(',').map(|e| e.trim().to_owned()).filter(|e| !e.is_empty());
    Ok(Client::new(endpoints.collect())?)
}

#[tokio::main]
async fn main() -> Result<()> {
    run(&client_from_env()?, 4).await?;
    Ok(())
}
