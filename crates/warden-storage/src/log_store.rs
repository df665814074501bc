//! The raft log, vote and committed index on fjall.
//!
//! Entries live in the `raft_log` keyspace under their big-endian index, so key order is
//! log order. The vote, the committed log id and the last purged log id live in
//! `raft_meta`. Appends and votes are fsynced before openraft is told they are done.
//!
//! Appends are group-committed: `append` writes its entries to fjall (buffered, so they
//! can be read back at once) and hands openraft's callback to a flusher thread, which
//! fsyncs once for every append queued behind the one it is syncing and then completes
//! their callbacks in order. Many concurrent writes thus share one fsync instead of
//! queueing one each. (openraft 0.9's core waits for the leader's own flush before it
//! sends the entries to followers, so the leader's and the followers' fsyncs are in
//! series; see `bench/openraft-0.10.md`.) Buffered writes
//! (the append itself, the committed index) run inline; every write that syncs runs on
//! tokio's blocking pool.

use std::fmt::Debug;
use std::ops::{Bound, RangeBounds};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::time::Instant;

use fjall::{Database, Keyspace, PersistMode};
use openraft::storage::{LogFlushed, RaftLogStorage};
use openraft::{ErrorSubject, ErrorVerb, LogState, OptionalSend, RaftLogReader, Vote};

use crate::codec::{decode, encode};
use crate::error::StorageError;
use crate::observer::ObserverSlot;
use crate::types::{Entry, LogId, NodeId, RaftStorageError, TypeConfig};

/// An entry's key (big-endian index) and encoded value.
type KeyValue = ([u8; 8], Vec<u8>);

const VOTE: &str = "vote";
const COMMITTED: &str = "committed";
const LAST_PURGED: &str = "last_purged";

/// The raft log store. Cheap to clone: clones share the database.
#[derive(Clone)]
pub struct LogStore {
    inner: Arc<Inner>,
}

struct Inner {
    db: Database,
    log: Keyspace,
    meta: Keyspace,
    /// Fault injection: when set, every write fails as a failed fsync would.
    fail_writes: AtomicBool,
    /// Callbacks of appends written but not yet fsynced, to the flusher thread.
    flusher: mpsc::Sender<LogFlushed<TypeConfig>>,
    /// Told how long each durable write took.
    observer: ObserverSlot,
}

/// The flusher thread: waits for an append's callback, takes every callback queued behind
/// it, fsyncs the journal once, and completes them all in order. Ends when the store is
/// dropped.
fn flush_appends(
    db: Database,
    callbacks: mpsc::Receiver<LogFlushed<TypeConfig>>,
    observer: ObserverSlot,
) {
    while let Ok(first) = callbacks.recv() {
        let mut batch = vec![first];
        batch.extend(callbacks.try_iter());
        let started = Instant::now();
        let synced = db.persist(PersistMode::SyncData).map_err(|e| e.to_string());
        if let Some(observer) = observer.get() {
            observer.log_synced(started.elapsed());
        }
        for callback in batch {
            let result = synced
                .clone()
                .map_err(|e| std::io::Error::other(format!("fsync of the raft log failed: {e}")));
            callback.log_io_completed(result);
        }
    }
}

fn fail(
    subject: ErrorSubject<NodeId>,
    verb: ErrorVerb,
) -> impl FnOnce(StorageError) -> RaftStorageError {
    move |e| e.into_raft(subject, verb)
}

impl LogStore {
    pub(crate) fn new(
        db: Database,
        log: Keyspace,
        meta: Keyspace,
        observer: ObserverSlot,
    ) -> Result<LogStore, StorageError> {
        let (flusher, callbacks) = mpsc::channel();
        let flushing = db.clone();
        let told = observer.clone();
        std::thread::Builder::new()
            .name("raft-log-flush".into())
            .spawn(move || flush_appends(flushing, callbacks, told))
            .map_err(|source| StorageError::Io { context: "starting the log flusher", source })?;
        let fail_writes = AtomicBool::new(false);
        Ok(LogStore { inner: Arc::new(Inner { db, log, meta, fail_writes, flusher, observer }) })
    }

    /// Fault injection for tests: from now on every log or vote write fails with an I/O
    /// error, as a failed fsync would. openraft then stops the node.
    pub fn inject_write_failure(&self) {
        self.inner.fail_writes.store(true, Ordering::SeqCst);
    }

    fn read_meta<T: serde::de::DeserializeOwned>(
        &self,
        key: &'static str,
    ) -> Result<Option<T>, StorageError> {
        match self.inner.meta.get(key).map_err(StorageError::fjall("reading raft metadata"))? {
            Some(bytes) => decode(key, &bytes).map(Some),
            None => Ok(None),
        }
    }

    /// Runs a read on the blocking pool (fjall reads may hit the disk).
    async fn read<R: Send + 'static>(
        &self,
        f: impl FnOnce(&Inner) -> Result<R, StorageError> + Send + 'static,
    ) -> Result<R, StorageError> {
        let inner = Arc::clone(&self.inner);
        tokio::task::spawn_blocking(move || f(&inner))
            .await
            .map_err(|e| StorageError::Task(e.to_string()))?
    }

    /// Runs a write batch on the blocking pool with the given durability.
    async fn write(
        &self,
        durability: PersistMode,
        fill: impl FnOnce(&Inner, &mut fjall::OwnedWriteBatch) -> Result<(), StorageError>
        + Send
        + 'static,
    ) -> Result<(), StorageError> {
        let store = self.clone();
        tokio::task::spawn_blocking(move || store.write_now(durability, fill))
            .await
            .map_err(|e| StorageError::Task(e.to_string()))?
    }

    /// Runs a write batch on the calling thread: for buffered writes, which do not wait
    /// for the disk.
    fn write_now(
        &self,
        durability: PersistMode,
        fill: impl FnOnce(&Inner, &mut fjall::OwnedWriteBatch) -> Result<(), StorageError>,
    ) -> Result<(), StorageError> {
        if self.inner.fail_writes.load(Ordering::SeqCst) {
            return Err(StorageError::Io {
                context: "writing the raft log",
                source: std::io::Error::other("injected write failure"),
            });
        }
        let mut batch = self.inner.db.batch().durability(Some(durability));
        fill(&self.inner, &mut batch)?;
        if durability == PersistMode::Buffer {
            return batch.commit().map_err(StorageError::fjall("committing a raft log batch"));
        }
        let started = Instant::now();
        let committed = batch.commit().map_err(StorageError::fjall("committing a raft log batch"));
        if let Some(observer) = self.inner.observer.get() {
            observer.log_synced(started.elapsed());
        }
        committed
    }

    /// Writes log entries without syncing (the flusher syncs them).
    fn write_buffered(&self, entries: Vec<KeyValue>) -> Result<(), StorageError> {
        self.write_now(PersistMode::Buffer, |inner, batch| {
            for (key, value) in entries {
                batch.insert(&inner.log, key, value);
            }
            Ok(())
        })
    }

    fn keys_in(
        &self,
        range: (Bound<[u8; 8]>, Bound<[u8; 8]>),
    ) -> Result<Vec<fjall::UserKey>, StorageError> {
        self.inner
            .log
            .range(range)
            .map(|g| g.key().map_err(StorageError::fjall("scanning the raft log")))
            .collect()
    }
}

fn bound(b: Bound<&u64>) -> Bound<[u8; 8]> {
    match b {
        Bound::Included(i) => Bound::Included(i.to_be_bytes()),
        Bound::Excluded(i) => Bound::Excluded(i.to_be_bytes()),
        Bound::Unbounded => Bound::Unbounded,
    }
}

impl RaftLogReader<TypeConfig> for LogStore {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + OptionalSend>(
        &mut self,
        range: RB,
    ) -> Result<Vec<Entry>, RaftStorageError> {
        let range = (bound(range.start_bound()), bound(range.end_bound()));
        let read = move |inner: &Inner| {
            let mut entries = Vec::new();
            for guard in inner.log.range(range) {
                let (_, value) =
                    guard.into_inner().map_err(StorageError::fjall("reading the raft log"))?;
                entries.push(decode("raft log entry", &value)?);
            }
            Ok(entries)
        };
        // The entries a leader just appended are in the memtable: read them inline. Older
        // ones (a follower catching up) may need the disk: the blocking pool.
        let recent =
            self.inner.log.last_key_value().and_then(|g| g.key().ok()).is_some_and(|last| {
                let last = u64::from_be_bytes(last.as_ref().try_into().unwrap_or([0; 8]));
                match range.0 {
                    Bound::Included(first) => last.saturating_sub(u64::from_be_bytes(first)) < 64,
                    _ => false,
                }
            });
        let entries = if recent { read(&self.inner) } else { self.read(read).await };
        entries.map_err(fail(ErrorSubject::Logs, ErrorVerb::Read))
    }
}

impl RaftLogStorage<TypeConfig> for LogStore {
    type LogReader = LogStore;

    async fn get_log_state(&mut self) -> Result<LogState<TypeConfig>, RaftStorageError> {
        let read = || -> Result<LogState<TypeConfig>, StorageError> {
            let last_purged_log_id: Option<LogId> = self.read_meta(LAST_PURGED)?;
            let last = match self.inner.log.last_key_value() {
                Some(guard) => {
                    let (_, value) =
                        guard.into_inner().map_err(StorageError::fjall("reading the raft log"))?;
                    Some(decode::<Entry>("raft log entry", &value)?.log_id)
                }
                None => None,
            };
            Ok(LogState { last_purged_log_id, last_log_id: last.or(last_purged_log_id) })
        };
        read().map_err(fail(ErrorSubject::Logs, ErrorVerb::Read))
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        self.clone()
    }

    async fn save_vote(&mut self, vote: &Vote<NodeId>) -> Result<(), RaftStorageError> {
        let bytes = encode(VOTE, vote).map_err(fail(ErrorSubject::Vote, ErrorVerb::Write))?;
        self.write(PersistMode::SyncAll, move |inner, batch| {
            batch.insert(&inner.meta, VOTE, bytes);
            Ok(())
        })
        .await
        .map_err(fail(ErrorSubject::Vote, ErrorVerb::Write))
    }

    async fn read_vote(&mut self) -> Result<Option<Vote<NodeId>>, RaftStorageError> {
        self.read_meta(VOTE).map_err(fail(ErrorSubject::Vote, ErrorVerb::Read))
    }

    async fn save_committed(&mut self, committed: Option<LogId>) -> Result<(), RaftStorageError> {
        // Not fsynced: the committed index is a hint that lets a restarted node apply what
        // it knows was committed before it hears from a leader; losing it is safe. openraft
        // awaits this on every commit before it applies, so it is written here, on this
        // thread (a memtable insert), not on the blocking pool: one thread hop less between
        // a quorum's acknowledgement and the apply.
        let bytes =
            encode(COMMITTED, &committed).map_err(fail(ErrorSubject::Store, ErrorVerb::Write))?;
        self.write_now(PersistMode::Buffer, |inner, batch| {
            batch.insert(&inner.meta, COMMITTED, bytes);
            Ok(())
        })
        .map_err(fail(ErrorSubject::Store, ErrorVerb::Write))
    }

    async fn read_committed(&mut self) -> Result<Option<LogId>, RaftStorageError> {
        let committed: Option<Option<LogId>> =
            self.read_meta(COMMITTED).map_err(fail(ErrorSubject::Store, ErrorVerb::Read))?;
        Ok(committed.flatten())
    }

    async fn append<I>(
        &mut self,
        entries: I,
        callback: LogFlushed<TypeConfig>,
    ) -> Result<(), RaftStorageError>
    where
        I: IntoIterator<Item = Entry> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let encoded: Result<Vec<KeyValue>, StorageError> = entries
            .into_iter()
            .map(|e| Ok((e.log_id.index.to_be_bytes(), encode("raft log entry", &e)?)))
            .collect();
        let encoded = encoded.map_err(fail(ErrorSubject::Logs, ErrorVerb::Write))?;
        // Buffered here, on this thread: a buffered batch is a memtable insert and a write
        // to the OS page cache, shorter than a hop to the blocking pool. The flusher fsyncs
        // it before the callback says it is done.
        let result = self.write_buffered(encoded);
        match result {
            Ok(()) => {
                if let Err(mpsc::SendError(callback)) = self.inner.flusher.send(callback) {
                    let gone = std::io::Error::other("the raft log flusher has stopped");
                    callback.log_io_completed(Err(gone));
                }
                Ok(())
            }
            Err(e) => {
                let message = e.to_string();
                callback.log_io_completed(Err(std::io::Error::other(message)));
                Err(e.into_raft(ErrorSubject::Logs, ErrorVerb::Write))
            }
        }
    }

    async fn truncate(&mut self, log_id: LogId) -> Result<(), RaftStorageError> {
        let keys = self
            .keys_in((Bound::Included(log_id.index.to_be_bytes()), Bound::Unbounded))
            .map_err(fail(ErrorSubject::Logs, ErrorVerb::Write))?;
        self.write(PersistMode::SyncData, move |inner, batch| {
            for key in keys {
                batch.remove(&inner.log, key);
            }
            Ok(())
        })
        .await
        .map_err(fail(ErrorSubject::Logs, ErrorVerb::Write))
    }

    async fn purge(&mut self, log_id: LogId) -> Result<(), RaftStorageError> {
        let keys = self
            .keys_in((Bound::Unbounded, Bound::Included(log_id.index.to_be_bytes())))
            .map_err(fail(ErrorSubject::Logs, ErrorVerb::Write))?;
        let purged =
            encode(LAST_PURGED, &log_id).map_err(fail(ErrorSubject::Logs, ErrorVerb::Write))?;
        // SyncAll: fjall has one journal for all keyspaces, so this also makes every state
        // machine write before it durable; the state machine then never lags behind the
        // log it was purged from.
        self.write(PersistMode::SyncAll, move |inner, batch| {
            batch.insert(&inner.meta, LAST_PURGED, purged);
            for key in keys {
                batch.remove(&inner.log, key);
            }
            Ok(())
        })
        .await
        .map_err(fail(ErrorSubject::Logs, ErrorVerb::Write))
    }
}
