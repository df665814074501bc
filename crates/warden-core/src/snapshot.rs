//! The snapshot format: the whole [`State`](crate::State) in one deterministic byte string.
//!
//! Layout: the magic `WDNS`, then a bincode (standard config) encoded format enum, whose
//! variant is the format version. All maps in the state are ordered, so equal states
//! encode to equal bytes. Indexes derived from the tree are not stored; restoring rebuilds
//! them.
//!
//! Versions: 1, the namespace and sessions; 2 (written now), with per-lock statistics
//! after them ([`crate::lock_stats`]). A version 1 snapshot is still read: its state has
//! no statistics yet, so they start empty.

use serde::{Deserialize, Serialize};

use crate::error::CoreError;

const MAGIC: &[u8; 4] = b"WDNS";

/// The versions of the snapshot format, borrowed for encoding: only the current one is
/// written, but the variants keep their places (a variant's index is its tag).
#[derive(Serialize)]
enum SnapshotRef<'a, S> {
    /// Version 1 is only read.
    #[allow(dead_code)]
    V1(()),
    V2(&'a S),
}

/// The versions of the snapshot format, as decoded: `O` is the state of version 1, `S`
/// the current state.
#[derive(Deserialize)]
pub(crate) enum Snapshot<O, S> {
    /// A version 1 snapshot (no lock statistics).
    V1(O),
    /// A version 2 snapshot.
    V2(S),
}

pub(crate) fn encode<S: Serialize>(state: &S) -> Result<Vec<u8>, CoreError> {
    let mut out = MAGIC.to_vec();
    bincode::serde::encode_into_std_write(
        SnapshotRef::V2(state),
        &mut out,
        bincode::config::standard(),
    )
    .map_err(|e| CoreError::Decode {
        what: "snapshot (encoding)".to_owned(),
        reason: e.to_string(),
    })?;
    Ok(out)
}

pub(crate) fn decode<O, S>(bytes: &[u8]) -> Result<Snapshot<O, S>, CoreError>
where
    O: serde::de::DeserializeOwned,
    S: serde::de::DeserializeOwned,
{
    let err = |reason: String| CoreError::Decode { what: "snapshot".to_owned(), reason };
    let body = bytes.strip_prefix(MAGIC).ok_or_else(|| {
        err("it does not start with the warden snapshot magic \"WDNS\"".to_owned())
    })?;
    let (format, used): (Snapshot<O, S>, usize) =
        crate::codec::decode_from_slice(body).map_err(|e| err(e.to_string()))?;
    if used != body.len() {
        return Err(err(format!("{} trailing bytes", body.len() - used)));
    }
    Ok(format)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::StateV1;
    use crate::{ApplyContext, Command, HoldRef, Request, State};

    /// The only variant there was in version 1.
    #[derive(Serialize)]
    enum FormatV1<'a> {
        V1(&'a StateV1),
    }

    fn busy_state() -> State {
        let mut state = State::default();
        let ctx = |index| ApplyContext { index, time_ms: 1_000 * index, term: 1 };
        let open = Command::OpenSession { ttl_ms: 5_000, identity: "a".into() };
        let id = match state.apply(Request::new(open), &ctx(1)).response.outcome {
            Ok(crate::Output::SessionOpened { id, .. }) => id,
            other => panic!("{other:?}"),
        };
        let acquire = Command::Acquire {
            path: "/l".into(),
            kind: crate::queue::QueueKind::Mutex,
            mode: crate::queue::WaitMode::Exclusive,
            delay_ms: 0,
            options: Default::default(),
        };
        state.apply(Request::in_session(id, acquire), &ctx(2));
        let release = Command::Release { path: "/l".into(), hold: HoldRef::Any };
        state.apply(Request::in_session(id, release), &ctx(3));
        state
    }

    #[test]
    fn a_version_1_snapshot_restores_with_no_lock_statistics() {
        let state = busy_state();
        assert_eq!(state.lock_stats_table().len(), 1);
        let v1 = StateV1 {
            limits: state.limits().clone(),
            revision: state.revision(),
            tree: state.tree().clone(),
            sessions: crate::SessionTable::from_sessions(
                state.meta().last_session_id,
                state.sessions().cloned(),
            ),
        };
        let mut bytes = MAGIC.to_vec();
        let written = bincode::serde::encode_into_std_write(
            FormatV1::V1(&v1),
            &mut bytes,
            bincode::config::standard(),
        );
        assert!(written.is_ok(), "{written:?}");
        let restored = State::restore(&bytes).unwrap_or_else(|e| panic!("{e}"));
        assert!(restored.lock_stats_table().is_empty());
        assert_eq!(restored.revision(), state.revision());
        assert_eq!(restored.tree().len(), state.tree().len());
        // Written again, it is a version 2 snapshot, and restores as itself.
        let again = restored.snapshot().unwrap_or_default();
        assert_ne!(again, bytes);
        let twice = State::restore(&again).map(|s| s.snapshot().unwrap_or_default());
        assert_eq!(twice.ok(), Some(again));
    }

    #[test]
    fn a_snapshot_keeps_the_lock_statistics() {
        let state = busy_state();
        let bytes = state.snapshot().unwrap_or_default();
        assert_eq!(bytes.get(4), Some(&1), "the variant tag of version 2");
        let restored = State::restore(&bytes).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(restored.lock_stats_table().get("/l"), state.lock_stats_table().get("/l"));
        assert_eq!(restored.lock_stats_table().get("/l").map(|s| s.acquisitions), Some(1));
    }

    #[test]
    fn an_unknown_version_is_refused() {
        let mut bytes = MAGIC.to_vec();
        bytes.push(7);
        let e = State::restore(&bytes).err().map(|e| e.to_string()).unwrap_or_default();
        assert!(e.contains("snapshot"), "{e}");
    }
}
