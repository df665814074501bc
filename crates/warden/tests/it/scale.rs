//! Many sessions held with keepalives on a three-member cluster of real processes: all stay
//! alive, and the leader's CPU and memory are reported (a benchmark scenario: no figure is
//! asserted). CI runs a short version; the full one (10,000 sessions for a minute) runs
//! with `cargo test -p warden --test it -- --ignored sessions_10k --nocapture`.

use std::time::{Duration, Instant};

use warden_client::{Client, SessionState};

use crate::processes::ProcessCluster;

/// CPU seconds (user + system) used so far by a process, from /proc.
fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command name (which may contain spaces) start after ") ".
    let after = stat.rsplit_once(") ").map(|(_, rest)| rest).unwrap_or("");
    let fields: Vec<&str> = after.split_whitespace().collect();
    let ticks = |i: usize| fields.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    // utime and stime are fields 14 and 15 of the whole line: 11 and 12 after the name.
    (ticks(11) + ticks(12)) / 100.0
}

fn rss_mib(pid: u32) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse::<f64>().ok())
        .map(|kib| kib / 1024.0)
        .unwrap_or(0.0)
}

async fn hold_sessions(count: usize, ttl: Duration, hold: Duration) {
    let cluster = ProcessCluster::start(3);
    let leader = cluster.leader().await as usize;
    let pid = cluster.pid(leader);
    // Clients share connections by hundreds, as many processes would each have their own.
    let clients: Vec<Client> = (0..count.div_ceil(100)).map(|_| cluster.client()).collect();
    let opened = Instant::now();
    let mut sessions = Vec::with_capacity(count);
    for chunk in (0..count).collect::<Vec<_>>().chunks(200) {
        let opens = chunk.iter().map(|i| clients[i / 100].open_session(ttl));
        for session in futures::future::join_all(opens).await {
            sessions.push(session.expect("open a session"));
        }
    }
    let open_time = opened.elapsed();
    let (cpu_before, started) = (cpu_seconds(pid), Instant::now());
    tokio::time::sleep(hold).await;
    let cpu = cpu_seconds(pid) - cpu_before;
    let elapsed = started.elapsed().as_secs_f64();
    let alive = sessions.iter().filter(|s| s.state() != SessionState::Lost).count();
    let tracked = clients[0].sessions(0).await.expect("list sessions").len();
    eprintln!(
        "sessions: {count} opened in {open_time:?}; held {hold:?} with ttl {ttl:?}: leader CPU {:.1}% of one core ({cpu:.2} s), leader RSS {:.0} MiB; {alive} alive, {tracked} tracked",
        100.0 * cpu / elapsed,
        rss_mib(pid),
    );
    assert_eq!(alive, count, "sessions were lost while held");
    assert_eq!(tracked, count, "the leader does not track every session");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_held_short() {
    hold_sessions(500, Duration::from_secs(6), Duration::from_secs(8)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a benchmark scenario: 10,000 sessions for a minute"]
async fn sessions_10k() {
    hold_sessions(10_000, Duration::from_secs(30), Duration::from_secs(60)).await;
}
