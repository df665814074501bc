//! Lock holders that are real processes (`warden lock ... -- COMMAND`), killed with SIGKILL
//! or paused with SIGSTOP past their session's ttl, against a fenced resource: a TCP
//! service in the test that accepts a write only with a token at least as high as any it
//! has seen. With `WARDEN_TEST_TLS=1` the members and the holders speak mutual TLS.

use std::os::unix::process::CommandExt;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;
use tokio::time::Instant;

use crate::processes::{ProcessCluster, exit_within, wait_for_holder};

/// One write the fenced resource saw.
#[derive(Debug, Clone)]
struct Write {
    who: String,
    token: u64,
    accepted: bool,
}

/// The fenced resource: every write it saw, in order.
#[derive(Default)]
struct Fenced {
    highest: u64,
    writes: Vec<Write>,
}

impl Fenced {
    fn write(&mut self, who: &str, token: u64) -> bool {
        let accepted = token >= self.highest;
        self.highest = self.highest.max(token);
        self.writes.push(Write { who: who.to_owned(), token, accepted });
        accepted
    }
}

/// Serves the fenced resource on loopback: a line `TOKEN WHO` is answered `ok` or
/// `rejected`. Returns its port.
async fn serve(fenced: Arc<Mutex<Fenced>>) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let fenced = Arc::clone(&fenced);
            tokio::spawn(async move {
                let (read, mut write) = stream.into_split();
                let mut lines = BufReader::new(read).lines();
                while let Ok(Some(line)) = lines.next_line().await {
                    let mut words = line.split_whitespace();
                    let token = words.next().and_then(|t| t.parse::<u64>().ok()).unwrap_or(0);
                    let who = words.next().unwrap_or("?").to_owned();
                    let accepted = fenced.lock().unwrap().write(&who, token);
                    let reply: &[u8] = if accepted { b"ok\n" } else { b"rejected\n" };
                    if write.write_all(reply).await.is_err() {
                        break;
                    }
                }
            });
        }
    });
    port
}

/// `warden lock PATH --ttl TTL --delay DELAY -- bash -c SCRIPT` in its own process group.
fn holder(connect: &[String], path: &str, ttl: &str, delay: &str, script: &str) -> Child {
    Command::new(env!("CARGO_BIN_EXE_warden"))
        .args(connect)
        .args(["lock", path, "--ttl", ttl, "--delay", delay, "--"])
        .args(["bash", "-c", script])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .process_group(0)
        .spawn()
        .unwrap()
}

/// A holder's command: write its token to the fenced resource every 50 ms, forever.
fn writer_script(port: u16) -> String {
    format!(
        "while true; do exec 3<>/dev/tcp/127.0.0.1/{port} || exit 9; \
         echo \"$WARDEN_FENCING_TOKEN holder\" >&3; read -r reply <&3; exec 3<&-; sleep 0.05; done"
    )
}

/// Sends `signal` to every process of the group `pgid` but `except`.
fn signal_group(pgid: u32, signal: &str, except: Option<u32>) {
    let listed = Command::new("pgrep").args(["-g", &pgid.to_string()]).output().unwrap();
    for pid in String::from_utf8_lossy(&listed.stdout).split_whitespace() {
        if Some(pid) == except.map(|p| p.to_string()).as_deref() {
            continue;
        }
        Command::new("kill").arg(format!("-{signal}")).arg(pid).status().unwrap();
    }
}

/// Waits (at most `limit`) until `done` holds.
async fn until(limit: Duration, what: &str, mut done: impl FnMut() -> bool) {
    let started = Instant::now();
    while !done() {
        assert!(started.elapsed() < limit, "{what}: not within {limit:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_holder_killed_with_sigkill_loses_the_lock_after_ttl_plus_lock_delay_never_before() {
    let cluster = ProcessCluster::start_tls_if_asked(3);
    cluster.leader().await;
    let connect = cluster.cli_args();
    let (ttl, delay) = (Duration::from_secs(2), Duration::from_secs(1));
    let mut dead = holder(&connect, "/dead", "2s", "1s", "sleep 60");
    let client = cluster.client();
    wait_for_holder(&client, "/dead").await;
    let first = client.lock_status("/dead").await.unwrap().holders[0].token.unwrap();
    let session = client.open_session(Duration::from_secs(30)).await.unwrap();
    let lock = client.write_lock(&session, "/dead");
    let next = tokio::spawn(async move { lock.acquire().await });
    tokio::time::sleep(Duration::from_millis(200)).await;

    let killed = Instant::now();
    signal_group(dead.id(), "KILL", None);
    dead.wait().unwrap();
    let granted = tokio::time::timeout(Duration::from_secs(20), next).await.unwrap().unwrap();
    let granted = granted.unwrap();
    let after = killed.elapsed();
    eprintln!(
        "holder killed with SIGKILL: lock granted {after:?} later (ttl {ttl:?}, delay {delay:?})"
    );
    // The holder renewed at most ttl/3 before it died, so its session lasts at least
    // 2/3 of the ttl past the kill; the lock-delay follows.
    assert!(after >= ttl * 2 / 3 + delay, "granted {after:?} after the kill: too early");
    assert!(granted.token() > first);
    granted.release().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_holder_paused_past_its_ttl_finds_its_writes_rejected_when_it_resumes() {
    let cluster = ProcessCluster::start_tls_if_asked(3);
    cluster.leader().await;
    let connect = cluster.cli_args();
    let fenced = Arc::new(Mutex::new(Fenced::default()));
    let port = serve(Arc::clone(&fenced)).await;
    let mut paused = holder(&connect, "/fenced", "2s", "0s", &writer_script(port));
    let warden_pid = paused.id();
    let holder_writes =
        || fenced.lock().unwrap().writes.iter().filter(|w| w.who == "holder").count();
    until(Duration::from_secs(10), "the holder writes", || holder_writes() > 0).await;

    // Pause the holder (warden and its command) well past its ttl.
    signal_group(warden_pid, "STOP", None);
    let client = cluster.client();
    let session = client.open_session(Duration::from_secs(30)).await.unwrap();
    let acquired = tokio::time::timeout(
        Duration::from_secs(20),
        client.write_lock(&session, "/fenced").acquire(),
    )
    .await
    .expect("the paused holder's session expired")
    .unwrap();
    let accepted = fenced.lock().unwrap().write("next", acquired.token());
    assert!(accepted, "the new holder's write was rejected");
    let seen = fenced.lock().unwrap().writes.len();

    // The command resumes first and writes with its old token before warden notices the
    // loss: the resource refuses it. Then warden resumes, sees the loss, stops the command
    // and exits 4.
    signal_group(warden_pid, "CONT", Some(warden_pid));
    let rejected_after =
        || fenced.lock().unwrap().writes[seen..].iter().any(|w| w.who == "holder" && !w.accepted);
    until(Duration::from_secs(10), "the resumed holder writes", rejected_after).await;
    signal_group(warden_pid, "CONT", None);
    let (code, err) = exit_within(&mut paused, Duration::from_secs(20)).await;
    assert_eq!(code, Some(4), "{err}");
    assert!(err.contains("was lost"), "{err}");

    let writes = fenced.lock().unwrap().writes.clone();
    let late_accepted = writes[seen..].iter().filter(|w| w.who == "holder" && w.accepted).count();
    assert_eq!(late_accepted, 0, "a stale holder's write was accepted: {writes:?}");
    assert!(writes.iter().all(|w| w.who != "next" || w.accepted));
    let stale = writes[seen..].iter().filter(|w| w.who == "holder");
    assert!(stale.clone().all(|w| w.token < acquired.token()), "{writes:?}");
    eprintln!(
        "paused holder: {} writes before the pause, {} rejected after resuming",
        writes[..seen].iter().filter(|w| w.who == "holder").count(),
        writes[seen..].iter().filter(|w| w.who == "holder").count()
    );
    acquired.release().await.unwrap();
    session.close().await.unwrap();
}
