//! The quota rule, case by case.

use bytes::Bytes;

use super::*;
use crate::{ApplyContext, CoreError, CreateMode, Output, Request, State};

fn ctx(index: u64) -> ApplyContext {
    ApplyContext { index, time_ms: 1_000 * index, term: 1 }
}

fn create(path: &str, len: usize) -> Command {
    Command::Create {
        path: path.into(),
        data: Bytes::from(vec![b'x'; len]),
        mode: CreateMode::PERSISTENT,
    }
}

/// A state with a quota that leaves room for `room` more bytes.
fn with_room(room: u64) -> State {
    let mut state = State::default();
    // The quota node counts too, and its size is the number of digits of the quota: set
    // a placeholder with as many digits as the quota will have, then the quota.
    let mut placeholder = 1;
    for index in 1..=4 {
        state.apply(Request::new(Command::SetQuota { bytes: placeholder }), &ctx(index));
        let target = state.data_bytes() + room;
        if target.to_string().len() == placeholder.to_string().len() {
            let set = state.apply(Request::new(Command::SetQuota { bytes: target }), &ctx(10));
            assert!(set.response.outcome.is_ok());
            assert_eq!(state.data_bytes() + room, target);
            return state;
        }
        placeholder = 10u64.pow(target.to_string().len() as u32 - 1);
    }
    panic!("no quota leaves {room} bytes of room");
}

#[test]
fn a_create_that_fits_exactly_passes_and_one_byte_more_is_refused() {
    let need = node_bytes("/a", &Node { data: Bytes::from(vec![0; 10]), ..Node::root() });
    let mut state = with_room(need);
    let before = state.data_bytes();
    let refused = state.apply(Request::new(create("/a", 11)), &ctx(3));
    assert_eq!(
        refused.response.outcome,
        Err(CoreError::QuotaExceeded { used: before, needed: need + 1, quota: before + need })
    );
    assert!(refused.events.is_empty());
    assert!(state.tree().get("/a").is_none());
    assert!(state.usage().alarm);
    let fits = state.apply(Request::new(create("/a", 10)), &ctx(4));
    assert!(matches!(fits.response.outcome, Ok(Output::Created { .. })), "{fits:?}");
    assert_eq!(state.data_bytes(), state.usage().quota);
    assert!(state.usage().alarm, "the refused write fits even less now");
    let delete = Command::Delete {
        path: "/a".into(),
        expected_version: None,
        recursive: false,
        revoke_locks: false,
    };
    assert!(state.apply(Request::new(delete), &ctx(5)).response.outcome.is_ok());
    assert!(state.usage().alarm, "back where it was refused: it would still not fit");
    let raise = Command::SetQuota { bytes: state.usage().quota + 1 };
    assert!(state.apply(Request::new(raise), &ctx(6)).response.outcome.is_ok());
    assert!(!state.usage().alarm, "the alarm clears once the refused write would fit");
}

#[test]
fn the_message_says_the_usage_the_quota_and_what_to_do() {
    let mut state = with_room(0);
    let refused = state.apply(Request::new(create("/a", 1)), &ctx(3));
    let text = match refused.response.outcome {
        Err(e) => e.to_string(),
        Ok(o) => panic!("{o:?}"),
    };
    assert!(text.contains("quota_backend_bytes"), "{text}");
    assert!(text.contains("delete data"), "{text}");
    assert!(text.contains(&format!("is {}", state.usage().quota)), "{text}");
}

#[test]
fn a_smaller_value_may_be_set_over_the_quota_and_a_larger_one_may_not() {
    let mut state = with_room(200);
    assert!(state.apply(Request::new(create("/a", 50)), &ctx(3)).response.outcome.is_ok());
    // Lower the quota under the size: shrinking writes still pass.
    let used = state.data_bytes();
    state.apply(Request::new(Command::SetQuota { bytes: used - 40 }), &ctx(4));
    let set = |len: usize| Command::Set {
        path: "/a".into(),
        data: Bytes::from(vec![b'y'; len]),
        expected_version: None,
    };
    assert!(state.apply(Request::new(set(20)), &ctx(5)).response.outcome.is_ok());
    let grow = state.apply(Request::new(set(30)), &ctx(6)).response.outcome;
    assert!(matches!(grow, Err(CoreError::QuotaExceeded { .. })), "{grow:?}");
}

#[test]
fn sessions_count_and_closing_one_is_never_refused() {
    let mut state = with_room(session_bytes("alice") - 1);
    let open = |identity: &str| Command::OpenSession { ttl_ms: 5_000, identity: identity.into() };
    let refused = state.apply(Request::new(open("alice")), &ctx(3)).response.outcome;
    assert!(matches!(refused, Err(CoreError::QuotaExceeded { .. })), "{refused:?}");
    assert_eq!(state.sessions().count(), 0);
    let id = match state.apply(Request::new(open("al")), &ctx(4)).response.outcome {
        Ok(Output::SessionOpened { id, .. }) => id,
        other => panic!("{other:?}"),
    };
    state.apply(Request::new(Command::SetQuota { bytes: 1 }), &ctx(5));
    let before = state.data_bytes();
    let closed = state.apply(Request::new(Command::CloseSession { id }), &ctx(6));
    assert!(closed.response.outcome.is_ok(), "{closed:?}");
    assert_eq!(state.data_bytes(), before - session_bytes("al"));
}

#[test]
fn the_default_quota_writes_no_node_and_zero_refuses_nothing() {
    let mut state = State::default();
    assert_eq!(state.usage().quota, DEFAULT_QUOTA_BYTES);
    let set = state.apply(Request::new(Command::SetQuota { bytes: DEFAULT_QUOTA_BYTES }), &ctx(1));
    assert_eq!(set.response.outcome, Ok(Output::QuotaSet { bytes: DEFAULT_QUOTA_BYTES }));
    assert!(set.events.is_empty() && state.tree().get(QUOTA_PATH).is_none());
    state.apply(Request::new(Command::SetQuota { bytes: 0 }), &ctx(2));
    assert_eq!(state.usage().quota, 0);
    let done = state.apply(Request::new(create("/big", 100_000)), &ctx(1));
    assert!(done.response.outcome.is_ok());
    assert!(!state.usage().alarm);
}

#[test]
fn the_quota_node_is_reserved_and_survives_a_restore() {
    let mut state = with_room(1_000);
    let quota = state.usage().quota;
    let write =
        Command::Set { path: QUOTA_PATH.into(), data: Bytes::from("9"), expected_version: None };
    let refused = state.apply(Request::new(write), &ctx(3)).response.outcome;
    assert!(matches!(refused, Err(CoreError::Reserved { .. })), "{refused:?}");
    let restored =
        State::restore(&state.snapshot().unwrap_or_default()).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(restored.usage().quota, quota);
    assert_eq!(restored.data_bytes(), state.data_bytes());
}

#[test]
fn unparsable_quota_text_is_no_quota() {
    assert_eq!(parse(b"12"), 12);
    assert_eq!(parse(b"x"), 0);
    assert_eq!(parse(&[0xff]), 0);
}
