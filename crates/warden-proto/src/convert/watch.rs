//! Watch scopes and events.

use warden_core::{CoreError, Event, EventKind, Limits, WatchFilter};

use super::ConvertError;
use super::kv::{core_stat, stat};
use crate::v1 as pb;

/// What a watch scope field accepts.
pub const WATCH_SCOPES: &str =
    "use WATCH_SCOPE_KEY (0), WATCH_SCOPE_PREFIX (1) or WATCH_SCOPE_GLOB (2)";

/// What an event kind field can hold.
pub const EVENT_KINDS: &str = "this side knows EVENT_KIND_CREATED (0), EVENT_KIND_DATA (1), EVENT_KIND_DELETED (2) and EVENT_KIND_CHILDREN (3)";

/// A watch request's scope; an error for one this side does not know (taking it as a key
/// watch would silently miss events).
pub fn watch_scope(r: &pb::WatchRequest) -> Result<pb::WatchScope, ConvertError> {
    pb::WatchScope::try_from(r.scope).map_err(|_| {
        ConvertError::unknown(
            "scope",
            "watch scope",
            r.scope,
            format!("the watch of {:?}", r.path),
            WATCH_SCOPES,
        )
    })
}

/// A watch request's filter, as the core makes it from the scope and path: an error for
/// an unknown scope, and inside, the core's refusal of a path or pattern over `limits`.
pub fn watch_filter(
    r: &pb::WatchRequest,
    limits: &Limits,
) -> Result<Result<WatchFilter, CoreError>, ConvertError> {
    Ok(match watch_scope(r)? {
        pb::WatchScope::Key => WatchFilter::key(&r.path, limits),
        pb::WatchScope::Prefix => WatchFilter::prefix(&r.path, limits),
        pb::WatchScope::Glob => WatchFilter::glob(&r.path, limits),
    })
}

/// An event kind field in `within`; an error for one this side does not know.
pub fn event_kind(kind: i32, within: impl FnOnce() -> String) -> Result<EventKind, ConvertError> {
    match pb::EventKind::try_from(kind) {
        Ok(pb::EventKind::Created) => Ok(EventKind::Created),
        Ok(pb::EventKind::Data) => Ok(EventKind::Data),
        Ok(pb::EventKind::Deleted) => Ok(EventKind::Deleted),
        Ok(pb::EventKind::Children) => Ok(EventKind::Children),
        Err(_) => Err(ConvertError::unknown("kind", "event kind", kind, within(), EVENT_KINDS)),
    }
}

/// An event kind as protobuf.
pub fn pb_event_kind(kind: EventKind) -> pb::EventKind {
    match kind {
        EventKind::Created => pb::EventKind::Created,
        EventKind::Data => pb::EventKind::Data,
        EventKind::Deleted => pb::EventKind::Deleted,
        EventKind::Children => pb::EventKind::Children,
    }
}

/// An event as protobuf, with `owner` the identity of the node's ephemeral owner.
pub fn pb_event(e: Event, owner: String) -> pb::Event {
    pb::Event {
        revision: e.revision,
        kind: pb_event_kind(e.kind).into(),
        path: e.path,
        stat: Some(stat(&e.stat)),
        data: e.data,
        owner,
    }
}

/// An event as the core's; an error for an event kind this side does not know (from a
/// newer member), not a made-up `Created`.
pub fn event(e: pb::Event) -> Result<Event, ConvertError> {
    let kind =
        event_kind(e.kind, || format!("an event on {:?} at revision {}", e.path, e.revision))?;
    Ok(Event { revision: e.revision, kind, path: e.path, stat: core_stat(e.stat), data: e.data })
}

#[cfg(test)]
mod tests {
    use warden_core::Stat;

    use super::*;

    #[test]
    fn every_event_kind_goes_there_and_back_and_is_named_in_the_hint() {
        let kinds = [EventKind::Created, EventKind::Data, EventKind::Deleted, EventKind::Children];
        for kind in kinds {
            assert_eq!(event_kind(pb_event_kind(kind).into(), String::new), Ok(kind));
        }
        for n in 0..64 {
            if let Ok(k) = pb::EventKind::try_from(n) {
                assert!(event_kind(n, String::new).is_ok(), "{k:?}");
                assert!(EVENT_KINDS.contains(k.as_str_name()), "{k:?}");
            }
        }
    }

    #[test]
    fn an_event_goes_there_and_back() {
        let e = Event {
            revision: 9,
            kind: EventKind::Data,
            path: "/e".into(),
            stat: Stat { version: 3, ..Stat::default() },
            data: Some("v".into()),
        };
        let pb = pb_event(e.clone(), "bob".into());
        assert_eq!(pb.owner, "bob");
        assert_eq!(event(pb), Ok(e));
    }

    #[test]
    fn an_unknown_event_kind_is_an_error_not_a_create() {
        let odd = pb::Event { path: "/e".into(), revision: 4, kind: 9, ..Default::default() };
        let e = event(odd).err();
        assert_eq!(e.as_ref().map(|e| (e.field, e.value.as_deref())), Some(("kind", Some("9"))));
        let text = e.map(|e| e.to_string()).unwrap_or_default();
        assert!(text.contains("9 in field `kind` of an event on \"/e\" at revision 4"), "{text}");
    }

    #[test]
    fn each_scope_makes_its_filter() {
        let limits = Limits::default();
        let matches = |scope: pb::WatchScope, path: &str, other: &str| {
            let scope = scope.into();
            let r = pb::WatchRequest { path: path.into(), scope, ..Default::default() };
            match watch_filter(&r, &limits) {
                Ok(Ok(filter)) => filter.matches(other),
                other => panic!("{other:?}"),
            }
        };
        assert!(matches(pb::WatchScope::Key, "/a", "/a"));
        assert!(!matches(pb::WatchScope::Key, "/a", "/a/b"));
        assert!(matches(pb::WatchScope::Prefix, "/a", "/a/b"));
        assert!(!matches(pb::WatchScope::Glob, "/a/*", "/a"));
        assert!(matches(pb::WatchScope::Glob, "/a/*", "/a/x"));
        let odd = pb::WatchRequest { path: "/a".into(), scope: 7, ..Default::default() };
        assert_eq!(watch_filter(&odd, &limits).err().map(|e| e.field), Some("scope"));
    }

    #[test]
    fn every_watch_scope_is_known_and_an_unknown_one_is_refused() {
        for n in 0..64 {
            let r = pb::WatchRequest { path: "/w".into(), scope: n, ..Default::default() };
            match pb::WatchScope::try_from(n) {
                Ok(s) => {
                    assert_eq!(watch_scope(&r), Ok(s));
                    assert!(WATCH_SCOPES.contains(s.as_str_name()), "{s:?}");
                }
                Err(_) => {
                    let e = watch_scope(&r).err();
                    assert_eq!(e.as_ref().map(|e| e.field), Some("scope"));
                    let text = e.map(|e| e.to_string()).unwrap_or_default();
                    assert!(text.contains(&format!("{n} in field `scope` of the watch of \"/w\"")));
                }
            }
        }
    }
}
