//! Writes the hand-made seeds of every fuzz corpus into `fuzz/corpus/<target>/seed-*`:
//! valid inputs of each kind, so the fuzzer starts from messages a member really takes.
//! Run once per new target, naming it
//! (`cargo run -p warden-fuzz --example seed_corpus -- my_target`; no name: every target),
//! then fuzz and `cargo fuzz cmin` (see `fuzz/README.md`); rerunning rewrites the same
//! files, and puts the seeds back into corpora that `cmin` had folded them into.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use openraft::raft::{AppendEntriesRequest, VoteRequest};
use openraft::{CommittedLeaderId, EntryPayload, LogId, Membership, Vote};
use prost::Message;
use serde::Serialize;
use warden_core::queue::{LockKind, Scope, WaitMode};
use warden_core::{
    AcquireOptions, ApplyContext, Check, Command, Compare, CompareOp, CreateMode, HoldRef,
    LogCommand, Request, State, TxnOp,
};
use warden_proto::raft::{RaftMessage, SnapshotChunk, snapshot_chunk};
use warden_proto::v1 as pb;
use warden_storage::{Entry, Proposal, SnapshotMeta, StoredMembership, TypeConfig, WardenNode};

type Seeds = Vec<Vec<u8>>;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/corpus");
    let all: Vec<(&str, Seeds)> = vec![
        ("kv_request", kv()),
        ("lock_request", lock()),
        ("semaphore_request", semaphore()),
        ("session_request", session()),
        ("watch_request", watch()),
        ("cluster_request", vec![vec![0], vec![1]]),
        ("election_request", election()),
        ("barrier_request", barrier()),
        ("resource_request", resource()),
        ("raft_append", raft_append()?),
        ("raft_vote", raft_vote()?),
        ("raft_snapshot", raft_snapshot()?),
        ("log_command", log_commands()?),
        ("snapshot", snapshots()?),
        ("config_toml", configs()?),
        ("path", texts(&["/", "/a", "/a/b/c", "/ünï/cödé", "/a/./b", "//", "/a/", "a", "/.."])),
        (
            "watch_glob",
            texts(&["/locks/*/holder", "/config/**", "/a/{b,c}", "/[a-z]?", "/a/[!x]/*", "/a\\*"]),
        ),
    ];
    let named: Vec<String> = std::env::args().skip(1).collect();
    if let Some(unknown) = named.iter().find(|n| !all.iter().any(|(t, _)| t == n)) {
        return Err(format!(
            "no target named {unknown:?}; the targets are in warden_fuzz::TARGETS"
        )
        .into());
    }
    for (target, seeds) in all {
        if !named.is_empty() && !named.iter().any(|n| n == target) {
            continue;
        }
        let dir: PathBuf = root.join(target);
        std::fs::create_dir_all(&dir)?;
        for (i, seed) in seeds.iter().enumerate() {
            std::fs::write(dir.join(format!("seed-{i:02}")), seed)?;
        }
    }
    Ok(())
}

fn rpc(which: u8, message: &impl Message) -> Vec<u8> {
    let mut out = vec![which];
    out.extend(message.encode_to_vec());
    out
}

fn origin() -> Option<pb::Origin> {
    Some(pb::Origin {
        session_id: 1,
        request_id: Some(pb::RequestId { seq: 3, lowest_pending: 2 }),
    })
}

fn kv() -> Seeds {
    let create = |path: &str, kind: pb::NodeKind, sequential| pb::CreateRequest {
        path: path.into(),
        data: "value".into(),
        kind: kind.into(),
        sequential,
        origin: origin(),
    };
    let compare = |target| pb::Compare {
        path: "/a".into(),
        op: pb::CompareOp::Greater.into(),
        target: Some(target),
    };
    let txn = pb::TxnRequest {
        compares: vec![
            compare(pb::compare::Target::Exists(true)),
            compare(pb::compare::Target::Version(0)),
            compare(pb::compare::Target::ModRevision(1)),
            compare(pb::compare::Target::CreateRevision(1)),
        ],
        ops: vec![
            pb::TxnOp {
                op: Some(pb::txn_op::Op::Create(create("/a/t", pb::NodeKind::Container, false))),
            },
            pb::TxnOp {
                op: Some(pb::txn_op::Op::Set(pb::SetRequest {
                    path: "/a/b".into(),
                    data: "new".into(),
                    ..Default::default()
                })),
            },
            pb::TxnOp {
                op: Some(pb::txn_op::Op::Delete(pb::DeleteRequest {
                    path: "/e".into(),
                    ..Default::default()
                })),
            },
        ],
        origin: None,
    };
    vec![
        rpc(0, &pb::GetRequest { path: "/a".into(), serializable: true }),
        rpc(1, &pb::ChildrenRequest { path: "/a".into(), limit: 1, ..Default::default() }),
        rpc(2, &create("/a/c", pb::NodeKind::Ephemeral, false)),
        rpc(2, &create("/a/s-", pb::NodeKind::Persistent, true)),
        rpc(
            3,
            &pb::SetRequest {
                path: "/a".into(),
                data: "v2".into(),
                expected_version: Some(0),
                origin: origin(),
            },
        ),
        rpc(
            4,
            &pb::DeleteRequest {
                path: "/a".into(),
                recursive: true,
                revoke_locks: true,
                ..Default::default()
            },
        ),
        rpc(5, &txn),
    ]
}

fn acquire(r#type: pb::LockType, shared: bool) -> pb::AcquireRequest {
    pb::AcquireRequest {
        path: "/l".into(),
        session_id: 1,
        r#type: r#type.into(),
        shared,
        permits: 3,
        weight: 2,
        delay_ms: 10,
        timeout_ms: 100,
        ..Default::default()
    }
}

fn lock() -> Seeds {
    vec![
        rpc(0, &acquire(pb::LockType::Mutex, false)),
        rpc(0, &acquire(pb::LockType::Rwlock, true)),
        rpc(0, &acquire(pb::LockType::Semaphore, false)),
        // A subtree hold at a priority, reentrant under an owner, with a request id.
        rpc(
            0,
            &pb::AcquireRequest {
                scope: pb::LockScope::Subtree.into(),
                priority: 7,
                owner: "task-7".into(),
                request_id: Some(pb::RequestId { seq: 1, lowest_pending: 1 }),
                ..acquire(pb::LockType::Rwlock, false)
            },
        ),
        rpc(
            1,
            &pb::ReleaseRequest {
                path: "/l".into(),
                session_id: 1,
                token: Some(5),
                request_id: None,
            },
        ),
        rpc(
            1,
            &pb::ReleaseRequest { path: "/l".into(), session_id: 1, token: None, request_id: None },
        ),
        rpc(2, &pb::RevokeRequest { path: "/l".into(), session_id: 1 }),
        rpc(3, &pb::LockStatusRequest { path: "/l".into() }),
        rpc(4, &pb::CheckSequencerRequest { path: "/l".into(), token: 5 }),
        rpc(5, &pb::LockStatsRequest { prefix: "/".into(), limit: 3 }),
    ]
}

fn semaphore() -> Seeds {
    let r = pb::SemaphoreAcquireRequest {
        path: "/sem".into(),
        session_id: 1,
        permits: 4,
        weight: 2,
        delay_ms: 0,
        timeout_ms: 50,
    };
    vec![r.encode_to_vec()]
}

fn session() -> Seeds {
    let hold = pb::Hold { path: "/l".into(), token: 5 };
    vec![
        rpc(0, &pb::OpenSessionRequest { ttl_ms: 5_000 }),
        rpc(1, &pb::KeepAliveRequest { session_id: 1, held: vec![hold] }),
        rpc(2, &pb::CloseSessionRequest { session_id: 1 }),
        rpc(3, &pb::SessionInfoRequest { session_id: 1 }),
    ]
}

/// The seed replica (crates/warden-fuzz/src/replica.rs) has session 1 leading `/el` with
/// token 5 and session 6 its second candidate; session 6 waits on the set barrier `/bar`;
/// session 1 is alone in the double barrier `/dbar` of 2; session 1 holds `k1` of the
/// resource kind `/res` (at `v1`), session 6 holds `k1` of `/rot` (rotating `v1` to `v2`).
/// Inputs do not see each other's changes: the seeds act on those.
fn election() -> Seeds {
    let campaign = |session_id, name: &str| pb::CampaignRequest {
        name: name.into(),
        session_id,
        value: "me".into(),
        timeout_ms: 100,
    };
    let proclaim = |session_id, token| pb::ProclaimRequest {
        name: "/el".into(),
        session_id,
        token,
        value: "new".into(),
    };
    let resign = |session_id, token| pb::ResignRequest { name: "/el".into(), session_id, token };
    vec![
        rpc(0, &campaign(1, "/el")),
        rpc(0, &campaign(6, "/el")),
        rpc(0, &campaign(1, "/new/el")),
        rpc(0, &campaign(1, "/l")),
        rpc(1, &proclaim(1, 5)),
        rpc(1, &proclaim(6, 5)),
        rpc(1, &proclaim(1, 4)),
        rpc(2, &resign(1, 5)),
        rpc(2, &resign(6, 0)),
        rpc(3, &pb::LeaderRequest { name: "/el".into(), serializable: true }),
        rpc(3, &pb::LeaderRequest { name: "/l".into(), serializable: false }),
        rpc(4, &pb::ObserveRequest { name: "/el".into(), start_revision: 0 }),
        rpc(4, &pb::ObserveRequest { name: "/el".into(), start_revision: 3 }),
    ]
}

fn barrier() -> Seeds {
    let set = |name: &str| pb::BarrierSetRequest { name: name.into() };
    let remove = |name: &str| pb::BarrierRemoveRequest { name: name.into() };
    let wait = |session_id, name: &str| pb::BarrierWaitRequest {
        name: name.into(),
        session_id,
        timeout_ms: 100,
    };
    let enter = |session_id, count| pb::BarrierEnterRequest {
        name: "/dbar".into(),
        session_id,
        count,
        timeout_ms: 100,
    };
    let leave =
        |session_id| pb::BarrierLeaveRequest { name: "/dbar".into(), session_id, timeout_ms: 100 };
    let status = |name: &str| pb::BarrierStatusRequest { name: name.into() };
    vec![
        rpc(0, &set("/bar")),
        rpc(0, &set("/b2")),
        rpc(0, &set("/dbar")),
        rpc(1, &remove("/bar")),
        rpc(1, &remove("/dbar")),
        rpc(2, &wait(1, "/bar")),
        rpc(2, &wait(1, "/nobar")),
        rpc(2, &wait(6, "/bar")),
        rpc(3, &enter(6, 2)),
        rpc(3, &enter(6, 3)),
        rpc(3, &enter(1, 2)),
        rpc(4, &leave(1)),
        rpc(4, &leave(6)),
        rpc(5, &status("/bar")),
        rpc(5, &status("/dbar")),
    ]
}

fn resource() -> Seeds {
    let init = |kind: &str, version: &str| pb::ResourceInitRequest {
        kind: kind.into(),
        version: version.into(),
    };
    let acquire =
        |kind: &str, id: &str, session_id, no_wait_while_draining| pb::ResourceAcquireRequest {
            kind: kind.into(),
            id: id.into(),
            session_id,
            r#type: pb::LockType::Mutex.into(),
            shared: false,
            permits: 0,
            weight: 0,
            delay_ms: 0,
            timeout_ms: 100,
            no_wait_while_draining,
        };
    let shared = pb::ResourceAcquireRequest {
        r#type: pb::LockType::Rwlock.into(),
        shared: true,
        ..acquire("/res", "k2", 6, false)
    };
    let rotate = |kind: &str, to: &str| pb::RotationRequest { kind: kind.into(), to: to.into() };
    let force = |kind: &str| pb::ForceRotationRequest { kind: kind.into() };
    let status = |kind: &str| pb::ResourceStatusRequest { kind: kind.into() };
    vec![
        rpc(0, &init("/res", "v9")),
        rpc(0, &init("/r2", "v1")),
        rpc(1, &acquire("/res", "k1", 6, false)),
        rpc(1, &acquire("/res", "k1", 1, false)),
        rpc(1, &shared),
        rpc(1, &acquire("/rot", "k1", 1, false)),
        rpc(1, &acquire("/rot", "k1", 1, true)),
        rpc(2, &rotate("/res", "v2")),
        rpc(2, &rotate("/rot", "v2")),
        rpc(2, &rotate("/rot", "v3")),
        rpc(3, &force("/rot")),
        rpc(3, &force("/res")),
        rpc(4, &status("/res")),
        rpc(4, &status("/rot")),
    ]
}

fn watch() -> Seeds {
    let w = |path: &str, scope: pb::WatchScope| {
        pb::WatchRequest {
            path: path.into(),
            scope: scope.into(),
            start_revision: 2,
            progress_notify: true,
        }
        .encode_to_vec()
    };
    vec![
        w("/a", pb::WatchScope::Key),
        w("/a", pb::WatchScope::Prefix),
        w("/locks/*/holder", pb::WatchScope::Glob),
    ]
}

fn bincode<T: Serialize>(value: &T) -> Result<Vec<u8>, bincode::error::EncodeError> {
    bincode::serde::encode_to_vec(value, bincode::config::standard())
}

fn raft_message<T: Serialize>(value: &T) -> Result<Vec<u8>, bincode::error::EncodeError> {
    Ok(RaftMessage { payload: bincode(value)?.into() }.encode_to_vec())
}

fn log_id(index: u64) -> LogId<u64> {
    LogId::new(CommittedLeaderId::new(1, 1), index)
}

fn membership() -> Membership<u64, WardenNode> {
    let node = |i| WardenNode {
        raft_addr: format!("127.0.0.1:740{i}"),
        client_addr: format!("127.0.0.1:750{i}"),
    };
    let nodes: BTreeMap<u64, WardenNode> = (1..=3).map(|i| (i, node(i))).collect();
    Membership::new(vec![BTreeSet::from([1, 2, 3])], nodes)
}

fn requests() -> Vec<Request> {
    vec![
        Request::new(Command::OpenSession { ttl_ms: 5_000, identity: "alice".into() }),
        Request::new(Command::Create {
            path: "/a/n".into(),
            data: "v".into(),
            mode: CreateMode::PERSISTENT,
        }),
        Request::in_session(
            1,
            Command::Acquire {
                path: "/q".into(),
                kind: LockKind::ReadWrite,
                mode: WaitMode::Shared,
                delay_ms: 5,
                options: Default::default(),
            },
        )
        .with_id(1, 1),
        Request::in_session(
            1,
            Command::Acquire {
                path: "/q/sub".into(),
                kind: LockKind::Mutex,
                mode: WaitMode::Exclusive,
                delay_ms: 0,
                options: AcquireOptions {
                    scope: Scope::Subtree,
                    priority: 10,
                    owner: Some("t".into()),
                },
            },
        )
        .with_id(1, 2),
        Request::new(Command::Txn {
            compares: vec![Compare {
                path: "/a".into(),
                check: Check::Version(CompareOp::Equal, 0),
            }],
            ops: vec![TxnOp::Delete {
                path: "/a/b".into(),
                expected_version: None,
                recursive: false,
                revoke_locks: false,
            }],
        }),
        Request::in_session(1, Command::Release { path: "/l".into(), hold: HoldRef::Any }),
        Request::new(Command::Revoke { path: "/l".into(), session: 1 }),
        Request::new(Command::ExpireSessions { ids: vec![1], term: 1 }),
        Request::new(Command::CheckpointSessions { remaining: vec![(1, 2_000)] }),
        Request::new(Command::WakeLocks),
        Request::new(Command::CloseSession { id: 1 }),
    ]
}

fn raft_append() -> Result<Seeds, bincode::error::EncodeError> {
    let normal = Entry {
        log_id: log_id(6),
        payload: EntryPayload::Normal(Proposal {
            time_ms: 1_700_000_000_000,
            command: LogCommand::Batch(requests()),
        }),
    };
    let entries = vec![
        Entry { log_id: log_id(5), payload: EntryPayload::Blank },
        normal,
        Entry { log_id: log_id(7), payload: EntryPayload::Membership(membership()) },
    ];
    let request = AppendEntriesRequest::<TypeConfig> {
        vote: Vote::new_committed(1, 1),
        prev_log_id: Some(log_id(4)),
        entries,
        leader_commit: Some(log_id(4)),
    };
    let heartbeat = AppendEntriesRequest::<TypeConfig> {
        vote: Vote::new_committed(1, 1),
        prev_log_id: None,
        entries: Vec::new(),
        leader_commit: None,
    };
    Ok(vec![raft_message(&request)?, raft_message(&heartbeat)?])
}

fn raft_vote() -> Result<Seeds, bincode::error::EncodeError> {
    Ok(vec![
        raft_message(&VoteRequest::new(Vote::new(2, 3), Some(log_id(9))))?,
        raft_message(&VoteRequest::<u64>::new(Vote::new(1, 1), None))?,
    ])
}

fn raft_snapshot() -> Result<Seeds, bincode::error::EncodeError> {
    let meta = SnapshotMeta {
        last_log_id: Some(log_id(7)),
        last_membership: StoredMembership::new(Some(log_id(7)), membership()),
        snapshot_id: "1-1-7".into(),
    };
    let header = bincode(&(Vote::new_committed(1, 1), meta))?;
    let chunk = |c| SnapshotChunk { chunk: Some(c) }.encode_to_vec();
    Ok(vec![
        chunk(snapshot_chunk::Chunk::Header(header.into())),
        chunk(snapshot_chunk::Chunk::Data(b"WDNS\x00".to_vec().into())),
    ])
}

fn log_commands() -> Result<Seeds, warden_core::CoreError> {
    let mut seeds = Vec::new();
    for request in requests() {
        seeds.push(LogCommand::V1(request).encode()?);
    }
    seeds.push(LogCommand::Batch(requests()).encode()?);
    Ok(seeds)
}

fn snapshots() -> Result<Seeds, warden_core::CoreError> {
    let mut state = State::default();
    let mut seeds = vec![state.snapshot()?];
    for (index, request) in (1..).zip(requests().into_iter().take(3)) {
        let ctx = ApplyContext { index, time_ms: 1_700_000_000_000 + index, term: 1 };
        let _ = state.apply(request, &ctx);
    }
    let ctx = ApplyContext { index: 10, time_ms: 1_700_000_000_010, term: 1 };
    let create =
        Command::Create { path: "/a".into(), data: "x".into(), mode: CreateMode::PERSISTENT };
    let _ = state.apply(Request::new(create), &ctx);
    seeds.push(state.snapshot()?);
    Ok(seeds)
}

fn configs() -> Result<Seeds, Box<dyn std::error::Error>> {
    // The files of config/ (not its subdirectories, such as config/secure/).
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../config");
    let mut seeds = vec![toml::to_string(&warden_server::Config::default())?.into_bytes()];
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    for file in files {
        seeds.push(std::fs::read(file)?);
    }
    Ok(seeds)
}

fn texts(all: &[&str]) -> Seeds {
    all.iter().map(|s| s.as_bytes().to_vec()).collect()
}
