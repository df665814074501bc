//! The snapshot format: the whole [`State`](crate::State) in one deterministic byte string.
//!
//! Layout: the magic `WDNS`, then a bincode (standard config) encoded [`SnapshotFormat`],
//! whose variant is the format version. All maps in the state are ordered, so equal states
//! encode to equal bytes. Indexes derived from the tree are not stored; restoring rebuilds
//! them.

use serde::{Deserialize, Serialize};

use crate::error::CoreError;

const MAGIC: &[u8; 4] = b"WDNS";

/// The versions of the snapshot format, borrowed for encoding.
#[derive(Serialize)]
enum SnapshotRef<'a, S> {
    V1(&'a S),
}

/// The versions of the snapshot format, owned for decoding. Same shape as [`SnapshotRef`].
#[derive(Deserialize)]
enum SnapshotFormat<S> {
    V1(S),
}

pub(crate) fn encode<S: Serialize>(state: &S) -> Result<Vec<u8>, CoreError> {
    let mut out = MAGIC.to_vec();
    bincode::serde::encode_into_std_write(
        SnapshotRef::V1(state),
        &mut out,
        bincode::config::standard(),
    )
    .map_err(|e| CoreError::Decode {
        what: "snapshot (encoding)".to_owned(),
        reason: e.to_string(),
    })?;
    Ok(out)
}

pub(crate) fn decode<S: serde::de::DeserializeOwned>(bytes: &[u8]) -> Result<S, CoreError> {
    let err = |reason: String| CoreError::Decode { what: "snapshot".to_owned(), reason };
    let body = bytes.strip_prefix(MAGIC).ok_or_else(|| {
        err("it does not start with the warden snapshot magic \"WDNS\"".to_owned())
    })?;
    let (format, used): (SnapshotFormat<S>, usize) =
        crate::codec::decode_from_slice(body).map_err(|e| err(e.to_string()))?;
    if used != body.len() {
        return Err(err(format!("{} trailing bytes", body.len() - used)));
    }
    match format {
        SnapshotFormat::V1(state) => Ok(state),
    }
}
