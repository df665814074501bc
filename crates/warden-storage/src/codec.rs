//! bincode (2, standard config) for everything the store writes: one format, chosen once.

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::error::StorageError;

pub(crate) fn encode<T: Serialize>(what: &'static str, value: &T) -> Result<Vec<u8>, StorageError> {
    bincode::serde::encode_to_vec(value, bincode::config::standard())
        .map_err(|e| StorageError::Decode { what, reason: format!("encoding failed: {e}") })
}

pub(crate) fn decode<T: DeserializeOwned>(
    what: &'static str,
    bytes: &[u8],
) -> Result<T, StorageError> {
    let (value, used) = warden_core::codec::decode_from_slice(bytes)
        .map_err(|e| StorageError::Decode { what, reason: e.to_string() })?;
    if used != bytes.len() {
        return Err(StorageError::Decode {
            what,
            reason: format!("{} trailing bytes", bytes.len() - used),
        });
    }
    Ok(value)
}
