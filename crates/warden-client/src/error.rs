//! The client's error type.

use tonic::Code;
use warden_proto::ErrorKind;
use warden_proto::convert::ConvertError;

/// What a client call can fail with.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// No endpoint was given or one is malformed.
    #[error("invalid endpoint {endpoint:?}: {reason}")]
    InvalidEndpoint {
        /// The endpoint.
        endpoint: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A TLS file cannot be used.
    #[error("TLS file {}: {reason}", file.display())]
    Tls {
        /// The file.
        file: std::path::PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// No member could serve the request before the deadline.
    #[error("no warden member could serve the request (tried {endpoints}): {last}")]
    Unavailable {
        /// The endpoints tried.
        endpoints: String,
        /// The last failure.
        last: String,
    },
    /// A write without a request id was sent and no answer came back (the connection
    /// broke, or the member failed): it may or may not have been applied. Writes made in a
    /// session ([`Client::create_in`](crate::Client::create_in) and its siblings) carry a
    /// request id and are retried instead.
    #[error(
        "the write sent to {endpoint} may or may not have been applied (no answer came back): {message}"
    )]
    OutcomeUnknown {
        /// The member the write was sent to.
        endpoint: String,
        /// What went wrong.
        message: String,
    },
    /// A request, or its answer, is larger than the gRPC message limit (the client port's
    /// [`MAX_CLIENT_MESSAGE_BYTES`](warden_proto::MAX_CLIENT_MESSAGE_BYTES) unless a member
    /// says otherwise: a member refuses a request over its `limits.max_request_bytes` as
    /// RESOURCE_EXHAUSTED, kind `RequestTooLarge`, with its limit in `warden-limit`). It
    /// would fail the same way on any member, so it is not retried.
    /// Nothing was applied: a request over the limit is refused before it is sent (or by
    /// the member before it is read), and only reads have answers that can grow this large.
    #[error(
        "a message of this call is over the {limit}-byte gRPC message limit ({message}); it was not applied and is not retried: send less in one request (fewer ops in a transaction, smaller values) or read less at once"
    )]
    MessageTooLarge {
        /// The limit that was hit, in bytes.
        limit: usize,
        /// The size found (tonic's message, when a member or the decoder refused it).
        message: String,
    },
    /// A watch cannot start or resume: the revisions it needs are no longer in history.
    #[error("{message}")]
    Compacted {
        /// The oldest revision a watch can start from (0 if unknown).
        oldest: u64,
        /// The server's message.
        message: String,
    },
    /// A member answered something this client cannot read (a kind of result or a name
    /// it does not know): the member is probably newer than the client.
    #[error(
        "a member's answer could not be read ({message}); the member may be newer than this client: upgrade the client"
    )]
    UnexpectedResponse {
        /// What could not be read.
        message: String,
    },
    /// The server refused the request.
    #[error("{message}")]
    Server {
        /// The gRPC code.
        code: Code,
        /// The server's message.
        message: String,
        /// The error kind (`warden-error` metadata), e.g. [`ErrorKind::NoNode`]; None when
        /// the status carries none, or a kind this client does not know (from a newer
        /// member: the code and message still say what went wrong).
        kind: Option<ErrorKind>,
    },
}

impl ClientError {
    /// A request this client cannot put on the wire (a create of a lock node): refused
    /// before it is sent, as a member would refuse it.
    pub(crate) fn unsendable(e: ConvertError) -> ClientError {
        ClientError::Server {
            code: Code::InvalidArgument,
            message: e.to_string(),
            kind: Some(ErrorKind::InvalidCreateMode),
        }
    }

    /// An answer with a value this client does not know (an event kind, a lock type from
    /// a newer member): an error naming the field and value, never a default in its place.
    pub(crate) fn unreadable(e: ConvertError) -> ClientError {
        ClientError::UnexpectedResponse { message: e.to_string() }
    }

    /// The gRPC code of a server error, if this is one.
    pub fn code(&self) -> Option<Code> {
        match self {
            ClientError::Server { code, .. } => Some(*code),
            _ => None,
        }
    }

    /// The kind of a server error, if this is one and its kind is known.
    pub fn kind(&self) -> Option<ErrorKind> {
        match self {
            ClientError::Server { kind, .. } => *kind,
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use warden_core::queue::LockKind;
    use warden_core::{CreateMode, NodeKind};
    use warden_proto::convert::{kv, lock};

    use super::*;

    #[test]
    fn a_lock_node_create_is_refused_before_sending_as_a_member_would() {
        let mode = CreateMode { kind: NodeKind::Queue, sequential: false };
        let refused = kv::create_request("/l".into(), Default::default(), mode, None)
            .map_err(ClientError::unsendable);
        match refused {
            Err(e) => {
                assert_eq!(e.code(), Some(Code::InvalidArgument));
                assert_eq!(e.kind(), Some(ErrorKind::InvalidCreateMode));
                assert!(e.to_string().contains("field `kind` of the create of \"/l\""), "{e}");
            }
            Ok(r) => panic!("sent: {r:?}"),
        }
    }

    #[test]
    fn an_unknown_name_from_a_member_is_unreadable_and_says_so() {
        let e = lock::lock_kind_named("turnstile", 0).map_err(ClientError::unreadable);
        match e {
            Err(e @ ClientError::UnexpectedResponse { .. }) => {
                let text = e.to_string();
                assert!(text.contains("\"turnstile\" in field `type`"), "{text}");
                assert!(text.contains("upgrade the client"), "{text}");
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(lock::lock_kind_named(lock::MUTEX_NAME, 1).ok(), Some(LockKind::Mutex));
    }
}
