//! Stats, a request's origin, node kinds, and the create, set and delete requests.

use warden_core::{Command, CreateMode, NodeKind, RequestId, Stat};

use super::ConvertError;
use crate::v1 as pb;

/// What a node kind field accepts.
pub const NODE_KINDS: &str =
    "use NODE_KIND_PERSISTENT (0), NODE_KIND_EPHEMERAL (1) or NODE_KIND_CONTAINER (2)";

/// A stat as protobuf.
pub fn stat(s: &Stat) -> pb::Stat {
    pb::Stat {
        create_revision: s.create_revision,
        mod_revision: s.mod_revision,
        version: s.version,
        cversion: s.cversion,
        ephemeral_owner: s.ephemeral_owner,
        num_children: s.num_children,
        ctime_ms: s.ctime_ms,
        mtime_ms: s.mtime_ms,
        data_length: s.data_length,
    }
}

/// A stat from protobuf; an answer without one (which a member never sends) reads as the
/// zero stat, as protobuf reads every absent scalar.
pub fn core_stat(s: Option<pb::Stat>) -> Stat {
    let s = s.unwrap_or_default();
    Stat {
        create_revision: s.create_revision,
        mod_revision: s.mod_revision,
        version: s.version,
        cversion: s.cversion,
        ephemeral_owner: s.ephemeral_owner,
        num_children: s.num_children,
        ctime_ms: s.ctime_ms,
        mtime_ms: s.mtime_ms,
        data_length: s.data_length,
    }
}

/// The session and request id of a request's origin (session 0 is none).
pub fn origin(origin: Option<&pb::Origin>) -> (Option<u64>, Option<RequestId>) {
    let Some(o) = origin else { return (None, None) };
    let session = (o.session_id != 0).then_some(o.session_id);
    (session, request_id(o.request_id.as_ref()))
}

/// A request id field (of an origin, a lock acquire or release).
pub fn request_id(id: Option<&pb::RequestId>) -> Option<RequestId> {
    id.map(|r| RequestId { seq: r.seq, lowest_pending: r.lowest_pending })
}

/// A node kind field of a create in `within`; an error for a kind this side does not know
/// (taking it as persistent would keep a node the caller meant to go away).
pub fn node_kind(kind: i32, within: impl FnOnce() -> String) -> Result<NodeKind, ConvertError> {
    match pb::NodeKind::try_from(kind) {
        Ok(pb::NodeKind::Persistent) => Ok(NodeKind::Persistent),
        Ok(pb::NodeKind::Ephemeral) => Ok(NodeKind::Ephemeral),
        Ok(pb::NodeKind::Container) => Ok(NodeKind::Container),
        Err(_) => Err(ConvertError::unknown("kind", "node kind", kind, within(), NODE_KINDS)),
    }
}

/// The wire kind of a node to create; a recipe's queue node and a resource kind have none
/// (they are made by acquiring a lock, campaigning, setting a barrier or making a kind,
/// not by a create), which is an error naming the field.
pub fn pb_node_kind(kind: NodeKind) -> Result<pb::NodeKind, ConvertError> {
    match kind {
        NodeKind::Persistent => Ok(pb::NodeKind::Persistent),
        NodeKind::Ephemeral => Ok(pb::NodeKind::Ephemeral),
        NodeKind::Container => Ok(pb::NodeKind::Container),
        NodeKind::Queue => Err(ConvertError::unknown(
            "kind",
            "node kind",
            "queue",
            "a create",
            "queue nodes are made by the recipes (acquiring a lock, campaigning, setting a barrier), not by create",
        )),
        NodeKind::Resource => Err(ConvertError::unknown(
            "kind",
            "node kind",
            "resource",
            "a create",
            "resource kinds are made by `warden resource init` (Resource.Init), not by create",
        )),
    }
}

fn create_of(path: &str) -> impl FnOnce() -> String + '_ {
    move || format!("the create of {path:?}")
}

/// A create request as a command; an error for an unknown node kind.
pub fn create(r: pb::CreateRequest) -> Result<Command, ConvertError> {
    let kind = node_kind(r.kind, create_of(&r.path))?;
    Ok(Command::Create {
        path: r.path,
        data: r.data,
        mode: CreateMode { kind, sequential: r.sequential },
    })
}

/// A create as a request (without origin); an error for a lock node.
pub fn create_request(
    path: String,
    data: prost::bytes::Bytes,
    mode: CreateMode,
    origin: Option<pb::Origin>,
) -> Result<pb::CreateRequest, ConvertError> {
    let kind = pb_node_kind(mode.kind)
        .map_err(|e| ConvertError { within: format!("the create of {path:?}"), ..e })?;
    Ok(pb::CreateRequest { path, data, kind: kind.into(), sequential: mode.sequential, origin })
}

/// A set request as a command.
pub fn set(r: pb::SetRequest) -> Command {
    Command::Set { path: r.path, data: r.data, expected_version: r.expected_version }
}

/// A delete request as a command.
pub fn delete(r: pb::DeleteRequest) -> Command {
    Command::Delete {
        path: r.path,
        expected_version: r.expected_version,
        recursive: r.recursive,
        revoke_locks: r.revoke_locks,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn a_stat() -> Stat {
        Stat {
            create_revision: 1,
            mod_revision: 2,
            version: 3,
            cversion: 4,
            ephemeral_owner: 5,
            num_children: 6,
            ctime_ms: 7,
            mtime_ms: 8,
            data_length: 9,
        }
    }

    #[test]
    fn a_stat_goes_there_and_back() {
        let s = a_stat();
        assert_eq!(core_stat(Some(stat(&s))), s);
        assert_eq!(core_stat(None), core_stat(Some(pb::Stat::default())));
    }

    #[test]
    fn an_origin_gives_its_session_and_request_id() {
        assert_eq!(origin(None), (None, None));
        let o = pb::Origin {
            session_id: 4,
            request_id: Some(pb::RequestId { seq: 7, lowest_pending: 5 }),
        };
        assert_eq!(origin(Some(&o)), (Some(4), Some(RequestId { seq: 7, lowest_pending: 5 })));
        let admin = pb::Origin { session_id: 0, request_id: None };
        assert_eq!(origin(Some(&admin)), (None, None));
    }

    #[test]
    fn every_node_kind_goes_there_and_back() {
        for kind in [NodeKind::Persistent, NodeKind::Ephemeral, NodeKind::Container] {
            let wire = pb_node_kind(kind).map(i32::from);
            assert_eq!(wire.and_then(|k| node_kind(k, String::new)), Ok(kind));
        }
    }

    #[test]
    fn every_wire_node_kind_is_known_and_named_in_the_hint() {
        for n in 0..64 {
            if let Ok(k) = pb::NodeKind::try_from(n) {
                assert!(node_kind(n, String::new).is_ok(), "{k:?}");
                assert!(NODE_KINDS.contains(k.as_str_name()), "{k:?}");
            }
        }
    }

    #[test]
    fn an_unknown_node_kind_is_refused_by_field_and_value() {
        let odd = pb::CreateRequest { path: "/n".into(), kind: 7, ..Default::default() };
        let e = create(odd).err();
        assert_eq!(e.as_ref().map(|e| (e.field, e.value.as_deref())), Some(("kind", Some("7"))));
        let text = e.map(|e| e.to_string()).unwrap_or_default();
        assert!(
            text.contains("unknown node kind 7 in field `kind` of the create of \"/n\""),
            "{text}"
        );
        assert!(text.contains("NODE_KIND_CONTAINER (2)"), "{text}");
    }

    #[test]
    fn a_lock_node_has_no_wire_kind() {
        let mode = CreateMode { kind: NodeKind::Queue, sequential: false };
        let e = create_request("/l".into(), prost::bytes::Bytes::new(), mode, None).err();
        let text = e.map(|e| e.to_string()).unwrap_or_default();
        assert!(text.contains("field `kind` of the create of \"/l\""), "{text}");
        assert!(text.contains("acquiring a lock"), "{text}");
    }

    #[test]
    fn create_set_and_delete_go_there_and_back() {
        let mode = CreateMode { kind: NodeKind::Ephemeral, sequential: true };
        let request = create_request("/a".into(), "v".into(), mode, None);
        assert_eq!(
            request.and_then(create),
            Ok(Command::Create { path: "/a".into(), data: "v".into(), mode })
        );
        let r = pb::SetRequest {
            path: "/a".into(),
            data: "w".into(),
            expected_version: Some(3),
            origin: None,
        };
        assert_eq!(
            set(r),
            Command::Set { path: "/a".into(), data: "w".into(), expected_version: Some(3) }
        );
        let r = pb::DeleteRequest {
            path: "/a".into(),
            expected_version: None,
            recursive: true,
            origin: None,
            revoke_locks: true,
        };
        assert_eq!(
            delete(r),
            Command::Delete {
                path: "/a".into(),
                expected_version: None,
                recursive: true,
                revoke_locks: true
            }
        );
    }
}
