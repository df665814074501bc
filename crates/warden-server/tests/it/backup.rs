//! Backup and restore over real sockets: a backup taken from a three-member cluster under
//! a write and lock load holds every write acknowledged before it, arrives in bounded
//! chunks with a matching checksum, and seeds a fresh three-member cluster whose members
//! start with exactly the backup's state and revision, and go on taking writes.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use warden_client::{Client, Consistency, SnapshotPart};
use warden_core::Limits;
use warden_storage::WardenNode;
use warden_storage::backup::{self, Checksum, RestoreTarget};

use crate::cluster::{FAST_TIMING, TestCluster, no_snapshots};

/// A backup as `warden snapshot save` writes it (its bytes, then their SHA-256), checked
/// against the stream's trailer; with the sizes of its chunks.
async fn download(client: &Client) -> (warden_client::proto::SnapshotHeader, Vec<u8>, Vec<usize>) {
    let mut download = client.snapshot(Consistency::Linearizable).await.unwrap();
    let mut bytes = Vec::new();
    let mut chunks = Vec::new();
    let sent = loop {
        match download.next().await.unwrap() {
            Some(SnapshotPart::Chunk(chunk)) => {
                chunks.push(chunk.len());
                bytes.extend_from_slice(&chunk);
            }
            Some(SnapshotPart::Trailer { sha256 }) => break sha256,
            None => panic!("the stream ended without a trailer"),
        }
    };
    assert_eq!(bytes.len() as u64, download.header.total_bytes);
    let mut sum = Checksum::default();
    sum.update(&bytes);
    assert_eq!(sum.finish(), sent.to_vec(), "the trailer's checksum is that of the bytes");
    bytes.extend_from_slice(&sent);
    (download.header, bytes, chunks)
}

/// Writes and lock rounds until told to stop (at most `ROUNDS`), counting the writes
/// acknowledged. The load is the backdrop, not the subject: a call that fails (a slow,
/// shared test machine) is skipped, and the test asks only for some progress.
fn load(
    client: Arc<Client>,
    stop: Arc<AtomicBool>,
    acked: Arc<AtomicU64>,
) -> tokio::task::JoinHandle<()> {
    const ROUNDS: u64 = 2_000;
    tokio::spawn(async move {
        let mut session = None;
        for i in 0..ROUNDS {
            if stop.load(Ordering::SeqCst) {
                break;
            }
            if client.put(&format!("/load-{}", i % 20), i.to_string()).await.is_ok() {
                acked.fetch_add(1, Ordering::SeqCst);
            }
            if session.is_none() {
                session = client.open_session(Duration::from_secs(60)).await.ok();
            }
            let Some(session) = &session else { continue };
            if let Ok(guard) = client.mutex(session, "/job-lock").acquire().await {
                if client.put("/job-counter", i.to_string()).await.is_ok() {
                    acked.fetch_add(1, Ordering::SeqCst);
                }
                guard.release().await.ok();
            }
        }
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backup_under_load_restores_into_a_new_cluster_with_the_same_state() {
    let source = TestCluster::start(3, FAST_TIMING, no_snapshots()).await;
    let client = Arc::new(source.client());
    // More than one chunk's worth of state.
    let big = "x".repeat(600 * 1024);
    for i in 0..3 {
        client.put(&format!("/big-{i}"), big.clone()).await.unwrap();
    }
    let (stop, acked) = (Arc::new(AtomicBool::new(false)), Arc::new(AtomicU64::new(0)));
    let loading = load(Arc::clone(&client), Arc::clone(&stop), Arc::clone(&acked));
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while acked.load(Ordering::SeqCst) < 20 {
        assert!(tokio::time::Instant::now() < deadline, "the load made no progress");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let before = client.put("/before", "acknowledged").await.unwrap();
    let (header, bytes, chunks) = download(&client).await;
    stop.store(true, Ordering::SeqCst);
    loading.await.unwrap();
    assert!(acked.load(Ordering::SeqCst) >= 20);
    assert!(chunks.len() >= 3, "several chunks: {chunks:?}");
    assert!(chunks.iter().all(|c| *c <= 1 << 20), "chunks of at most 1 MiB: {chunks:?}");
    assert!(header.revision >= before.mod_revision, "{header:?} {before:?}");
    assert_eq!(header.format_version, backup::BACKUP_FORMAT_VERSION);
    source.stop().await;

    let dir = tempfile::TempDir::new().unwrap();
    let file = dir.path().join("backup.db");
    std::fs::write(&file, &bytes).unwrap();
    let saved = backup::read_backup(&file).unwrap();
    assert_eq!(
        (saved.info.revision, saved.info.applied_index),
        (header.revision, header.applied_index)
    );

    let restored = TestCluster::start_seeded(
        3,
        FAST_TIMING,
        |_| {},
        async |configs| {
            let members: std::collections::BTreeMap<u64, WardenNode> = configs[0]
                .initial_members
                .iter()
                .map(|m| {
                    let node = WardenNode {
                        raft_addr: m.peer_addr.clone(),
                        client_addr: m.client_addr.clone(),
                    };
                    (m.id, node)
                })
                .collect();
            for config in configs {
                let target = RestoreTarget { node_id: config.node_id, members: members.clone() };
                backup::restore_backup(&file, &config.data_dir, &target).await.unwrap();
                // What the member will start from, read back from its data directory.
                let storage = warden_storage::open(&config.data_dir, Limits::default()).unwrap();
                let state = storage.state_machine.read(|a| a.core.snapshot().unwrap());
                assert!(
                    state == saved.state,
                    "member {}'s restored state is the backup's",
                    config.node_id
                );
            }
        },
    )
    .await;
    for id in 1..=3 {
        let revision = restored.node(id).state_machine().read(|a| a.core.revision());
        assert_eq!(revision, header.revision, "member {id} starts at the backup's revision");
    }
    let client = restored.client();
    let read = client.get("/before").await.unwrap();
    assert_eq!(&read.data[..], b"acknowledged");
    assert_eq!(read.stat, before, "the acknowledged write, as it was");
    // Writes go on from the backup's revision.
    let after = client.put("/after", "restored").await.unwrap();
    assert_eq!(after.mod_revision, header.revision + 1);
    let leader = restored.leader(Duration::from_secs(5)).await;
    restored.wait_applied(restored.applied(leader), Duration::from_secs(10)).await;
    let states: Vec<Vec<u8>> = (1..=3).map(|id| restored.state_bytes(id)).collect();
    assert!(states.iter().all(|s| *s == states[0]), "the members agree after the write");
    restored.stop().await;
}

/// Sessions come back with the state, each with a full ttl from the new cluster's first
/// leader (as after any leader change): one whose client does not come back expires then,
/// and its ephemeral node goes with it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restored_session_expires_unless_its_client_comes_back() {
    let source = TestCluster::start(1, FAST_TIMING, no_snapshots()).await;
    let client = source.client();
    let session = client.open_session(Duration::from_secs(2)).await.unwrap();
    let mode = warden_core::CreateMode::EPHEMERAL;
    client.create_in(&session, "/worker", "w1", mode).await.unwrap();
    let (_, bytes, _) = download(&client).await;
    let id = session.id();
    drop(session);
    source.stop().await;
    let dir = tempfile::TempDir::new().unwrap();
    let file = dir.path().join("backup.db");
    std::fs::write(&file, &bytes).unwrap();

    let restored = TestCluster::start_seeded(
        1,
        FAST_TIMING,
        |_| {},
        async |configs| {
            let m = &configs[0].initial_members[0];
            let node =
                WardenNode { raft_addr: m.peer_addr.clone(), client_addr: m.client_addr.clone() };
            let target = RestoreTarget { node_id: 1, members: [(1, node)].into() };
            backup::restore_backup(&file, &configs[0].data_dir, &target).await.unwrap();
        },
    )
    .await;
    let client = restored.client();
    let sessions = client.sessions(0).await.unwrap();
    assert_eq!(sessions.iter().map(|s| s.session_id).collect::<Vec<_>>(), [id]);
    assert!(client.get("/worker").await.is_ok(), "its ephemeral node is restored with it");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    while client.get("/worker").await.is_ok() {
        assert!(tokio::time::Instant::now() < deadline, "the restored session never expired");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(client.sessions(0).await.unwrap().is_empty());
    restored.stop().await;
}
