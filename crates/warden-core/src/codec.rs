//! bincode decoding bounded by its input, for every byte string warden decodes (log
//! entries, snapshots, raft messages).
//!
//! bincode allocates a string's or byte buffer's declared length before reading it, so
//! without a limit a few bytes declaring a 4 GB string make the decoder allocate 4 GB
//! (found by the `log_command` fuzz target: an 18-byte entry). A limit makes bincode
//! refuse a length past it before allocating. It counts the in-memory size of what is
//! decoded, at most 16 times the encoded size (a `u128` from one varint byte; a string is
//! its own length), so a limit of 16 times the input never refuses a valid input and
//! bounds what any input can allocate. bincode takes the limit as a constant: the input
//! picks the smallest of a few powers of four that fits.

use serde::de::DeserializeOwned;

/// The most bytes decoding may account for per byte of input.
const CLAIMED_PER_INPUT_BYTE: usize = 16;

/// Decodes a `T` (bincode 2, standard config, as everything is encoded) from the front of
/// `bytes`, with the number of bytes used; refuses declared lengths the input cannot hold.
pub fn decode_from_slice<T: DeserializeOwned>(
    bytes: &[u8],
) -> Result<(T, usize), bincode::error::DecodeError> {
    let claim = bytes.len().saturating_mul(CLAIMED_PER_INPUT_BYTE);
    macro_rules! within {
        ($($shift:literal),*) => {
            $(
                if claim <= 1 << $shift {
                    let config = bincode::config::standard().with_limit::<{ 1 << $shift }>();
                    return bincode::serde::decode_from_slice(bytes, config);
                }
            )*
        };
    }
    within!(10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
    #[cfg(target_pointer_width = "64")]
    within!(32, 34, 36, 38, 40);
    // More than a terabyte of input: nothing left to bound.
    bincode::serde::decode_from_slice(bytes, bincode::config::standard())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_declared_length_past_the_input_is_refused_without_allocating_it() {
        // A string declaring 2^32 - 1 bytes (varint 252: a u32 follows) and holding none.
        let bytes = [252, 0xff, 0xff, 0xff, 0xff];
        let decoded = decode_from_slice::<String>(&bytes);
        assert!(matches!(decoded, Err(bincode::error::DecodeError::LimitExceeded)), "{decoded:?}");
    }

    #[test]
    fn values_of_every_size_decode_as_encoded() {
        let config = bincode::config::standard();
        for len in [0, 1, 63, 64, 1_000, 70_000, 5_000_000] {
            let value = (vec![7u8; len], "x".repeat(len / 3), u128::MAX, vec![1u64; len / 8]);
            let bytes = bincode::serde::encode_to_vec(&value, config).unwrap_or_default();
            let decoded = decode_from_slice::<(Vec<u8>, String, u128, Vec<u64>)>(&bytes);
            assert_eq!(decoded.ok(), Some((value, bytes.len())), "length {len}");
        }
    }

    #[test]
    fn small_integers_claim_more_than_they_take_and_still_decode() {
        // 64 one-byte u128s: 64 bytes claiming 1,024, past a limit of the input's length.
        let value = vec![1u128; 64];
        let bytes =
            bincode::serde::encode_to_vec(&value, bincode::config::standard()).unwrap_or_default();
        assert_eq!(decode_from_slice::<Vec<u128>>(&bytes).ok(), Some((value, bytes.len())));
    }
}
