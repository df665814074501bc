//! What a member reads back from disk or takes from its leader: log commands and
//! snapshots, in the core's formats.

use warden_core::{LogCommand, State};

use crate::replica::apply_checked;

/// A log entry's command: decoded, re-encoded to the same value, and applied to a
/// replica, which must keep its invariants whatever the command.
pub fn log_command(data: &[u8]) {
    let Ok(command) = LogCommand::decode(data) else { return };
    let again = command.encode().and_then(|bytes| LogCommand::decode(&bytes));
    assert!(again.as_ref() == Ok(&command), "{command:?} does not survive a round trip: {again:?}");
    apply_checked(command.into_requests());
}

/// A snapshot: restored, and if it restores, its re-encoding restores to the same bytes.
pub fn snapshot(data: &[u8]) {
    let Ok(state) = State::restore(data) else { return };
    let first = match state.snapshot() {
        Ok(b) => b,
        Err(e) => panic!("a restored state does not snapshot: {e}"),
    };
    let second = State::restore(&first).and_then(|s| s.snapshot());
    assert!(second.as_ref() == Ok(&first), "a snapshot does not survive a round trip");
}
