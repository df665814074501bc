//! The state machine: `warden-core`'s [`State`] in memory, persisted piece by piece.
//!
//! Applying a batch of entries calls the core for each, then writes what the core reports
//! changed (nodes by path, sessions by id, lock statistics by lock path), the state's scalars, the last applied log id and
//! the membership in **one** fjall batch, so the state on disk always matches one applied
//! log id and a restart resumes from it without replaying the log from the start. These
//! writes are not fsynced on their own: the log is (fjall has one journal, so the next log
//! fsync covers them), and a state machine that lost its tail re-applies it from the log.
//!
//! Installing a snapshot replaces everything. It first writes the snapshot file durably and
//! an `installing` marker, then rewrites the keyspaces, then removes the marker; a node that
//! crashes in between finishes the install from the file when it starts again.

use std::io::Cursor;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::Instant;

use fjall::{Database, Keyspace, PersistMode, Readable};
use openraft::storage::RaftStateMachine;
use openraft::{
    EntryPayload, ErrorSubject, ErrorVerb, OptionalSend, RaftSnapshotBuilder, Snapshot,
};
use tracing::info;
use warden_core::lock_stats::LockStats;
use warden_core::{ApplyContext, Event, Limits, Node, Output, Session, State, StateMeta};

use crate::codec::{decode, encode};
use crate::error::StorageError;
use crate::observer::ObserverSlot;
use crate::snapshot_file::{Replace, SnapshotFile};
use crate::types::{
    Entry, LogId, RaftStorageError, Reply, SnapshotMeta, StoredMembership, TypeConfig,
};

const STATE_META: &str = "state";
const APPLIED: &str = "applied";
const MEMBERSHIP: &str = "membership";
const INSTALLING: &str = "installing";
/// Nodes written per batch when a whole state is rewritten.
const REWRITE_BATCH: usize = 10_000;

/// The applied state: the core's state, and where in the log it is.
#[derive(Debug, Clone)]
pub struct Applied {
    /// The namespace and sessions.
    pub core: State,
    /// The last log id applied to `core`.
    pub last_applied: Option<LogId>,
    /// The last membership applied.
    pub membership: StoredMembership,
}

/// The state machine store. Cheap to clone: clones share the state and the database.
#[derive(Clone)]
pub struct StateMachineStore {
    inner: Arc<Inner>,
}

struct Inner {
    db: Database,
    nodes: Keyspace,
    sessions: Keyspace,
    lock_stats: Keyspace,
    meta: Keyspace,
    snapshots: SnapshotFile,
    applied: RwLock<Applied>,
    /// Snapshots installed from a leader since this store was opened.
    installed: AtomicU64,
    /// Where change events go (the watch hub).
    sink: RwLock<Option<Arc<dyn EventSink>>>,
    /// Told how long snapshots take.
    observer: ObserverSlot,
}

/// Entries applied on the calling thread rather than the blocking pool, at most.
const INLINE_APPLY: usize = 8;

/// Receives the changes of applied commands, in log order.
pub trait EventSink: Send + Sync {
    /// The command that made `revision` changed these nodes. Must not block.
    fn applied(&self, revision: u64, events: &[Event]);
    /// The state was replaced by a snapshot at `revision`: events before it were skipped.
    fn reset(&self, revision: u64);
    /// The same command as [`EventSink::applied`] will receive, seen earlier: under the
    /// state machine's lock, right after its log entry was applied, with the state after
    /// that entry, the leader's time and the command's output. For sinks that need more
    /// than the events (the audit log: who held a lock, which sessions expired). Called
    /// while applies wait: it must be quick and must not block. Does nothing by default.
    fn inspect(&self, _state: &State, _command: &AppliedCommand<'_>) {}
}

/// One applied command that changed something, as [`EventSink::inspect`] sees it.
#[derive(Debug, Clone, Copy)]
pub struct AppliedCommand<'a> {
    /// The revision it made.
    pub revision: u64,
    /// The leader's clock when it proposed the entry (the entry's
    /// [`ApplyContext::time_ms`]), ms since the Unix epoch: the same on every member.
    pub time_ms: u64,
    /// Its changes.
    pub events: &'a [Event],
    /// Its output (a command that changed something succeeded).
    pub output: Option<&'a Output>,
}

/// The events of one command, with its revision.
type RevisionEvents = (u64, Vec<Event>);

/// One write of the state machine keyspaces: a key and its new value, or a deletion.
type Write = (&'static str, Vec<u8>, Option<Vec<u8>>);

impl StateMachineStore {
    pub(crate) fn open(
        db: Database,
        keyspaces: [Keyspace; 4],
        snapshots: SnapshotFile,
        limits: Limits,
        observer: ObserverSlot,
    ) -> Result<StateMachineStore, StorageError> {
        let [nodes, sessions, lock_stats, meta] = keyspaces;
        let inner = Inner {
            db,
            nodes,
            sessions,
            lock_stats,
            meta,
            snapshots,
            applied: RwLock::new(Applied {
                core: State::new(limits.clone()),
                last_applied: None,
                membership: StoredMembership::default(),
            }),
            installed: AtomicU64::new(0),
            sink: RwLock::new(None),
            observer,
        };
        let applied = inner.load(limits)?;
        *inner.write_state() = applied;
        Ok(StateMachineStore { inner: Arc::new(inner) })
    }

    /// Sends the changes of every applied command to `sink` from now on.
    pub fn set_event_sink(&self, sink: Arc<dyn EventSink>) {
        *self.inner.sink.write().unwrap_or_else(PoisonError::into_inner) = Some(sink);
    }

    fn sink(&self) -> Option<Arc<dyn EventSink>> {
        self.inner.sink.read().unwrap_or_else(PoisonError::into_inner).clone()
    }

    /// How many snapshots were installed from a leader since the store was opened.
    pub fn installed_snapshots(&self) -> u64 {
        self.inner.installed.load(Ordering::Relaxed)
    }

    /// Reads the applied state. Keep `f` short: applies wait for it.
    pub fn read<R>(&self, f: impl FnOnce(&Applied) -> R) -> R {
        f(&self.inner.read_state())
    }

    async fn blocking<R: Send + 'static>(
        &self,
        f: impl FnOnce(&Inner) -> Result<R, StorageError> + Send + 'static,
    ) -> Result<R, StorageError> {
        let inner = Arc::clone(&self.inner);
        tokio::task::spawn_blocking(move || f(&inner))
            .await
            .map_err(|e| StorageError::Task(e.to_string()))?
    }
}

impl Inner {
    fn read_state(&self) -> RwLockReadGuard<'_, Applied> {
        self.applied.read().unwrap_or_else(PoisonError::into_inner)
    }

    fn write_state(&self) -> RwLockWriteGuard<'_, Applied> {
        self.applied.write().unwrap_or_else(PoisonError::into_inner)
    }

    fn keyspace(&self, name: &str) -> &Keyspace {
        match name {
            "nodes" => &self.nodes,
            "sessions" => &self.sessions,
            "lock_stats" => &self.lock_stats,
            _ => &self.meta,
        }
    }

    /// Loads the state from the keyspaces, finishing an interrupted snapshot install first.
    fn load(&self, limits: Limits) -> Result<Applied, StorageError> {
        let marker =
            self.meta.get(INSTALLING).map_err(StorageError::fjall("reading the install marker"))?;
        if let Some(marker) = marker {
            // The marker is written before the snapshot file. If the file holds that
            // snapshot, the install was interrupted after it: finish it. If not, the crash
            // came before the file was replaced and before anything else changed.
            match self.snapshots.read()? {
                Some((meta, data)) if meta.snapshot_id.as_bytes() == &marker[..] => {
                    info!(snapshot = %meta.snapshot_id, "finishing an interrupted snapshot install");
                    return self.install(&meta, restore(&data)?);
                }
                _ => {
                    info!(
                        "an install was interrupted before its snapshot was stored; nothing changed"
                    );
                    self.commit(vec![("meta", INSTALLING.into(), None)], PersistMode::SyncAll)?;
                }
            }
        }
        let applied = self.read_view(&self.db.snapshot())?.unwrap_or_else(|| Applied {
            core: State::new(limits),
            last_applied: None,
            membership: StoredMembership::default(),
        });
        info!(
            nodes = applied.core.tree().len(),
            revision = applied.core.revision(),
            last_applied = ?applied.last_applied,
            "state machine loaded"
        );
        Ok(applied)
    }

    /// The state persisted in `view` (a point-in-time read of the keyspaces), or `None` if
    /// nothing was ever applied. Each applied batch is one atomic fjall batch, so a view
    /// holds the state after some whole batch; only an install (several batches, between
    /// its `installing` marker and the marker's removal) is seen half-done, and callers
    /// check the marker first.
    fn read_view(&self, view: &fjall::Snapshot) -> Result<Option<Applied>, StorageError> {
        let meta = |key: &'static str| -> Result<Option<fjall::UserValue>, StorageError> {
            view.get(&self.meta, key).map_err(StorageError::fjall("reading state machine metadata"))
        };
        let Some(state_meta) = meta(STATE_META)? else {
            return Ok(None);
        };
        let state_meta: StateMeta = decode(STATE_META, &state_meta)?;
        let mut nodes = Vec::new();
        for guard in view.iter(&self.nodes) {
            let (key, value) = guard.into_inner().map_err(StorageError::fjall("reading nodes"))?;
            let path = String::from_utf8(key.to_vec())
                .map_err(|e| StorageError::Decode { what: "node path", reason: e.to_string() })?;
            nodes.push((path, decode::<Node>("node", &value)?));
        }
        let mut sessions = Vec::new();
        for guard in view.iter(&self.sessions) {
            let (_, value) = guard.into_inner().map_err(StorageError::fjall("reading sessions"))?;
            sessions.push(decode::<Session>("session", &value)?);
        }
        let mut lock_stats = Vec::new();
        for guard in view.iter(&self.lock_stats) {
            let (key, value) =
                guard.into_inner().map_err(StorageError::fjall("reading lock statistics"))?;
            let path = String::from_utf8(key.to_vec()).map_err(|e| StorageError::Decode {
                what: "lock statistics path",
                reason: e.to_string(),
            })?;
            lock_stats.push((path, decode::<LockStats>("lock statistics", &value)?));
        }
        let core = State::from_parts(state_meta, nodes, sessions, lock_stats);
        let last_applied = match meta(APPLIED)? {
            Some(bytes) => decode::<Option<LogId>>(APPLIED, &bytes)?,
            None => None,
        };
        let membership = match meta(MEMBERSHIP)? {
            Some(bytes) => decode::<StoredMembership>(MEMBERSHIP, &bytes)?,
            None => StoredMembership::default(),
        };
        Ok(Some(Applied { core, last_applied, membership }))
    }

    /// The writes that persist what changed in `applied` since the last call.
    fn changed(applied: &mut Applied) -> Result<Vec<Write>, StorageError> {
        let changes = applied.core.take_changes();
        let mut writes = Vec::with_capacity(
            changes.nodes.len() + changes.sessions.len() + changes.lock_stats.len() + 3,
        );
        for path in changes.nodes {
            let value = applied.core.tree().get(&path).map(|n| encode("node", n)).transpose()?;
            writes.push(("nodes", path.into_bytes(), value));
        }
        for id in changes.sessions {
            let value = applied.core.session(id).map(|s| encode("session", s)).transpose()?;
            writes.push(("sessions", id.to_be_bytes().to_vec(), value));
        }
        for path in changes.lock_stats {
            let value = applied
                .core
                .lock_stats_table()
                .get(&path)
                .map(|s| encode("lock statistics", s))
                .transpose()?;
            writes.push(("lock_stats", path.into_bytes(), value));
        }
        writes.extend(Self::scalars(applied)?);
        Ok(writes)
    }

    fn scalars(applied: &Applied) -> Result<Vec<Write>, StorageError> {
        Ok(vec![
            ("meta", STATE_META.into(), Some(encode(STATE_META, &applied.core.meta())?)),
            ("meta", APPLIED.into(), Some(encode(APPLIED, &applied.last_applied)?)),
            ("meta", MEMBERSHIP.into(), Some(encode(MEMBERSHIP, &applied.membership)?)),
        ])
    }

    fn commit(&self, writes: Vec<Write>, durability: PersistMode) -> Result<(), StorageError> {
        let mut batch = self.db.batch().durability(Some(durability));
        for (keyspace, key, value) in writes {
            match value {
                Some(value) => batch.insert(self.keyspace(keyspace), key, value),
                None => batch.remove(self.keyspace(keyspace), key),
            }
        }
        batch.commit().map_err(StorageError::fjall("committing a state machine batch"))
    }

    /// Replaces the persisted state with a snapshot's (already durable in the snapshot
    /// file, written after the `installing` marker); safe to run again after a crash.
    fn install(&self, meta: &SnapshotMeta, core: State) -> Result<Applied, StorageError> {
        let applied = Applied {
            core,
            last_applied: meta.last_log_id,
            membership: meta.last_membership.clone(),
        };
        self.nodes.clear().map_err(StorageError::fjall("clearing nodes"))?;
        self.sessions.clear().map_err(StorageError::fjall("clearing sessions"))?;
        self.lock_stats.clear().map_err(StorageError::fjall("clearing lock statistics"))?;
        let mut writes = Vec::with_capacity(REWRITE_BATCH);
        for (path, node) in applied.core.tree().iter() {
            writes.push(("nodes", path.as_bytes().to_vec(), Some(encode("node", node)?)));
            if writes.len() == REWRITE_BATCH {
                self.commit(std::mem::take(&mut writes), PersistMode::Buffer)?;
            }
        }
        for session in applied.core.sessions() {
            writes.push((
                "sessions",
                session.id.to_be_bytes().to_vec(),
                Some(encode("session", session)?),
            ));
            if writes.len() >= REWRITE_BATCH {
                self.commit(std::mem::take(&mut writes), PersistMode::Buffer)?;
            }
        }
        for (path, stats) in applied.core.lock_stats_table().iter() {
            writes.push((
                "lock_stats",
                path.as_bytes().to_vec(),
                Some(encode("lock statistics", stats)?),
            ));
        }
        writes.extend(Self::scalars(&applied)?);
        writes.push(("meta", INSTALLING.into(), None));
        self.commit(writes, PersistMode::SyncAll)?;
        Ok(applied)
    }

    /// Builds a snapshot of the applied state without holding the state lock while it is
    /// encoded (seconds for millions of nodes, during which applies, and the async threads
    /// that run small applies inline, would wait): the lock is held only to open a fjall
    /// view, which holds exactly the applied state (applies commit under the lock), and the
    /// snapshot is encoded from that view. While a snapshot is being installed the view
    /// may be half-rewritten; then the in-memory state is encoded under the lock instead.
    fn build_snapshot(&self) -> Result<(SnapshotMeta, Vec<u8>), StorageError> {
        let view = {
            let _applied = self.read_state();
            self.db.snapshot()
        };
        let installing = view
            .contains_key(&self.meta, INSTALLING)
            .map_err(StorageError::fjall("reading the install marker"))?;
        let from_view = if installing { None } else { self.read_view(&view)? };
        drop(view);
        let (meta, data) = match from_view {
            Some(applied) => Self::encode_snapshot(&applied)?,
            None => Self::encode_snapshot(&self.read_state())?,
        };
        // Every applied batch up to this state is in the journal (applies commit under the
        // lock); make them durable before a snapshot that claims them, and before the log
        // behind it may be purged.
        self.db
            .persist(PersistMode::SyncAll)
            .map_err(StorageError::fjall("syncing before a snapshot"))?;
        if self.snapshots.write(&meta, &data, Replace::IfNotOlder)? {
            return Ok((meta, data));
        }
        // A later snapshot was installed meanwhile; it is the current one.
        self.snapshots.read()?.ok_or_else(|| StorageError::Decode {
            what: "snapshot file",
            reason: "a later snapshot was reported but none is stored".into(),
        })
    }

    /// A snapshot's metadata and bytes for `applied`.
    fn encode_snapshot(applied: &Applied) -> Result<(SnapshotMeta, Vec<u8>), StorageError> {
        let data = applied
            .core
            .snapshot()
            .map_err(|e| StorageError::Decode { what: "state", reason: e.to_string() })?;
        let id = match applied.last_applied {
            Some(log_id) => {
                format!("{}-{}-{}", log_id.leader_id.term, log_id.index, unique_suffix())
            }
            None => format!("empty-{}", unique_suffix()),
        };
        let meta = SnapshotMeta {
            last_log_id: applied.last_applied,
            last_membership: applied.membership.clone(),
            snapshot_id: id,
        };
        Ok((meta, data))
    }

    /// Applies entries through the core and persists what changed, under the state lock,
    /// so the journal always holds every batch the in-memory state reflects.
    fn apply_batch(
        &self,
        entries: Vec<Entry>,
    ) -> Result<(Vec<Reply>, Vec<RevisionEvents>), StorageError> {
        let sink = self.sink.read().unwrap_or_else(PoisonError::into_inner).clone();
        let mut applied = self.write_state();
        let mut replies = Vec::with_capacity(entries.len());
        let mut changes: Vec<RevisionEvents> = Vec::new();
        for entry in entries {
            applied.last_applied = Some(entry.log_id);
            let responses = match entry.payload {
                EntryPayload::Blank => Vec::new(),
                EntryPayload::Normal(proposal) => {
                    let ctx = ApplyContext {
                        index: entry.log_id.index,
                        time_ms: proposal.time_ms,
                        term: entry.log_id.leader_id.term,
                    };
                    let mut responses = Vec::new();
                    let done = applied.core.apply_entry(proposal.command, &ctx);
                    if let Some(sink) = &sink {
                        for d in done.iter().filter(|d| !d.events.is_empty()) {
                            let command = AppliedCommand {
                                revision: d.response.revision,
                                time_ms: ctx.time_ms,
                                events: &d.events,
                                output: d.response.outcome.as_ref().ok(),
                            };
                            sink.inspect(&applied.core, &command);
                        }
                    }
                    for done in done {
                        if !done.events.is_empty() {
                            changes.push((done.response.revision, done.events));
                        }
                        responses.push(done.response);
                    }
                    responses
                }
                EntryPayload::Membership(m) => {
                    applied.membership = StoredMembership::new(Some(entry.log_id), m);
                    Vec::new()
                }
            };
            replies.push(Reply { revision: applied.core.revision(), responses });
        }
        let writes = Self::changed(&mut applied)?;
        self.commit(writes, PersistMode::Buffer)?;
        Ok((replies, changes))
    }
}

fn restore(data: &[u8]) -> Result<State, StorageError> {
    State::restore(data)
        .map_err(|e| StorageError::Decode { what: "snapshot", reason: e.to_string() })
}

/// Distinguishes snapshots built at the same log id (before and after a restart).
fn unique_suffix() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0)
}

fn fail(
    subject: ErrorSubject<u64>,
    verb: ErrorVerb,
) -> impl FnOnce(StorageError) -> RaftStorageError {
    move |e| e.into_raft(subject, verb)
}

fn snapshot(meta: SnapshotMeta, data: Vec<u8>) -> Snapshot<TypeConfig> {
    Snapshot { meta, snapshot: Box::new(Cursor::new(data)) }
}

impl RaftSnapshotBuilder<TypeConfig> for StateMachineStore {
    async fn build_snapshot(&mut self) -> Result<Snapshot<TypeConfig>, RaftStorageError> {
        let started = Instant::now();
        let (meta, data) = self
            .blocking(|inner| inner.build_snapshot())
            .await
            .map_err(fail(ErrorSubject::Snapshot(None), ErrorVerb::Write))?;
        info!(snapshot = %meta.snapshot_id, bytes = data.len(), "snapshot built");
        if let Some(observer) = self.inner.observer.get() {
            observer.snapshot_built(started.elapsed(), data.len());
        }
        Ok(snapshot(meta, data))
    }
}

impl RaftStateMachine<TypeConfig> for StateMachineStore {
    type SnapshotBuilder = StateMachineStore;

    async fn applied_state(
        &mut self,
    ) -> Result<(Option<LogId>, StoredMembership), RaftStorageError> {
        Ok(self.read(|a| (a.last_applied, a.membership.clone())))
    }

    async fn apply<I>(&mut self, entries: I) -> Result<Vec<Reply>, RaftStorageError>
    where
        I: IntoIterator<Item = Entry> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let entries: Vec<Entry> = entries.into_iter().collect();
        // A few entries apply in microseconds: inline, without a hop to the blocking pool.
        // A long run (catching up) goes to the pool so it does not hold an async thread.
        let applied = if entries.len() <= INLINE_APPLY {
            self.inner.apply_batch(entries)
        } else {
            self.blocking(move |inner| inner.apply_batch(entries)).await
        };
        let (replies, changes) =
            applied.map_err(fail(ErrorSubject::StateMachine, ErrorVerb::Write))?;
        if let Some(sink) = self.sink() {
            for (revision, events) in &changes {
                sink.applied(*revision, events);
            }
        }
        Ok(replies)
    }

    async fn get_snapshot_builder(&mut self) -> Self::SnapshotBuilder {
        self.clone()
    }

    async fn begin_receiving_snapshot(&mut self) -> Result<Box<Cursor<Vec<u8>>>, RaftStorageError> {
        Ok(Box::new(Cursor::new(Vec::new())))
    }

    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMeta,
        snapshot: Box<Cursor<Vec<u8>>>,
    ) -> Result<(), RaftStorageError> {
        let started = Instant::now();
        let meta = meta.clone();
        let data = snapshot.into_inner();
        let bytes = data.len();
        let subject = ErrorSubject::Snapshot(Some(meta.signature()));
        let applied = self
            .blocking(move |inner| {
                // Decode first: bytes that do not decode must not replace anything on disk.
                let core = restore(&data)?;
                let marker = meta.snapshot_id.clone().into_bytes();
                inner.commit(vec![("meta", INSTALLING.into(), Some(marker))], PersistMode::SyncAll)?;
                inner.snapshots.write(&meta, &data, Replace::Always)?;
                let applied = inner.install(&meta, core)?;
                info!(snapshot = %meta.snapshot_id, nodes = applied.core.tree().len(), "snapshot installed");
                Ok(applied)
            })
            .await
            .map_err(fail(subject, ErrorVerb::Write))?;
        let revision = applied.core.revision();
        let old = std::mem::replace(&mut *self.inner.write_state(), applied);
        // Dropping a large state takes time: not under the lock, not on this thread.
        tokio::task::spawn_blocking(move || drop(old));
        self.inner.installed.fetch_add(1, Ordering::Relaxed);
        if let Some(sink) = self.sink() {
            sink.reset(revision);
        }
        if let Some(observer) = self.inner.observer.get() {
            observer.snapshot_installed(started.elapsed(), bytes);
        }
        Ok(())
    }

    async fn get_current_snapshot(
        &mut self,
    ) -> Result<Option<Snapshot<TypeConfig>>, RaftStorageError> {
        let current = self
            .blocking(|inner| inner.snapshots.read())
            .await
            .map_err(fail(ErrorSubject::Snapshot(None), ErrorVerb::Read))?;
        Ok(current.map(|(meta, data)| snapshot(meta, data)))
    }
}
