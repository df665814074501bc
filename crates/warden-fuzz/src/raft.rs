//! Peer messages: the payloads of the raft service's RPCs, decoded into openraft's types
//! with [`warden_core::codec::decode_from_slice`], as `warden-server`'s raft service
//! decodes them (its decoder is private to it; this is the same call on the same types).

use openraft::Vote;
use openraft::raft::{AppendEntriesRequest, VoteRequest};
use prost::Message;
use serde::Serialize;
use serde::de::DeserializeOwned;
use warden_proto::raft::{RaftMessage, SnapshotChunk};
use warden_storage::{NodeId, SnapshotMeta, TypeConfig};

/// Decodes as the raft service does (trailing bytes ignored) and, if that succeeds,
/// checks that re-encoding is stable: encode, decode, encode gives the same bytes.
fn bincode_round_trip<T: Serialize + DeserializeOwned>(bytes: &[u8]) {
    let config = bincode::config::standard();
    let Ok((value, _)) = warden_core::codec::decode_from_slice::<T>(bytes) else {
        return;
    };
    let first = match bincode::serde::encode_to_vec(&value, config) {
        Ok(b) => b,
        Err(e) => panic!("a decoded raft message does not encode: {e}"),
    };
    let second = warden_core::codec::decode_from_slice::<T>(&first)
        .map_err(|e| e.to_string())
        .and_then(|(v, _)| bincode::serde::encode_to_vec(&v, config).map_err(|e| e.to_string()));
    assert_eq!(second.as_ref(), Ok(&first), "a raft message does not survive a round trip");
}

/// The protobuf envelope of Append and Vote, then its payload.
fn raft_message<T: Serialize + DeserializeOwned>(data: &[u8]) {
    let Ok(message) = RaftMessage::decode(data) else { return };
    bincode_round_trip::<T>(&message.payload);
}

/// `Raft.Append`: a RaftMessage carrying an AppendEntriesRequest (log entries and all).
pub fn raft_append(data: &[u8]) {
    raft_message::<AppendEntriesRequest<TypeConfig>>(data);
}

/// `Raft.Vote`: a RaftMessage carrying a VoteRequest.
pub fn raft_vote(data: &[u8]) {
    raft_message::<VoteRequest<NodeId>>(data);
}

/// `Raft.InstallSnapshot`: one chunk of the stream; a header chunk's bytes are the
/// (Vote, SnapshotMeta) the service decodes. The snapshot data itself is the
/// [`snapshot`](crate::snapshot) target's.
pub fn raft_snapshot(data: &[u8]) {
    let Ok(chunk) = SnapshotChunk::decode(data) else { return };
    if let Some(warden_proto::raft::snapshot_chunk::Chunk::Header(header)) = chunk.chunk {
        bincode_round_trip::<(Vote<NodeId>, SnapshotMeta)>(&header);
    }
}
