//! The REST API's errors: a gRPC status as JSON, with the HTTP status that means the same.
//!
//! Every error answer is `{"error": kind, "message": ..., "code": CODE}`: `error` is the
//! member's error kind (the `warden-error` a gRPC client reads), `code` the gRPC code as
//! gRPC's specification spells it, and `leader` the leader's client address when a member
//! that is not the leader refused (gRPC's `warden-leader`). The HTTP status follows the
//! gRPC code ([`http_status`]), as grpc-gateway maps them, with four changes a curl user
//! expects: FAILED_PRECONDITION is 409 Conflict (the state of the lock or session forbids
//! it, as ABORTED and ALREADY_EXISTS), a session that does not exist (`SessionExpired`)
//! is 404, a body over `limits.max_request_bytes` (`RequestTooLarge`) is 413, and a lock
//! wait or campaign that ran out of its `timeout_ms` (`Timeout`, DEADLINE_EXCEEDED) is 409
//! like a failed try, not grpc-gateway's 504: it is the outcome the caller asked for when
//! the lock stays held, not a fault of the member, and monitoring counts 5xx as faults.

use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use tonic::{Code, Status};
use warden_proto::{ErrorKind, LEADER_METADATA, grpc_code_constant};

/// An error answer of the REST API.
#[derive(Debug, Clone)]
pub(crate) struct ApiError {
    code: Code,
    /// The member's error kind; None for a status made by the transport.
    kind: Option<ErrorKind>,
    message: String,
    leader: Option<String>,
}

/// The JSON of an error answer.
#[derive(Serialize)]
struct ErrorJson<'a> {
    error: &'a str,
    message: &'a str,
    code: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    leader: Option<&'a str>,
}

impl ApiError {
    /// An error of the REST layer itself.
    pub(crate) fn new(code: Code, kind: ErrorKind, message: impl Into<String>) -> ApiError {
        ApiError { code, kind: Some(kind), message: message.into(), leader: None }
    }

    /// INVALID_ARGUMENT: the request cannot be read.
    pub(crate) fn invalid(message: impl Into<String>) -> ApiError {
        ApiError::new(Code::InvalidArgument, ErrorKind::InvalidArgument, message)
    }

    /// The HTTP status of this error.
    pub(crate) fn http_status(&self) -> StatusCode {
        http_status(self.code, self.kind)
    }

    /// The gRPC code.
    #[cfg(test)]
    pub(crate) fn code(&self) -> Code {
        self.code
    }
}

impl From<Status> for ApiError {
    fn from(status: Status) -> ApiError {
        let kind = crate::status::kind(&status);
        let leader = status
            .metadata()
            .get(LEADER_METADATA)
            .and_then(|v| v.to_str().ok())
            .filter(|v| !v.is_empty())
            .map(str::to_owned);
        ApiError { code: status.code(), kind, message: status.message().to_owned(), leader }
    }
}

/// The HTTP status for a gRPC `code` of error `kind` (see the module docs).
pub(crate) fn http_status(code: Code, kind: Option<ErrorKind>) -> StatusCode {
    match kind {
        Some(ErrorKind::SessionExpired) => return StatusCode::NOT_FOUND,
        Some(ErrorKind::RequestTooLarge) => return StatusCode::PAYLOAD_TOO_LARGE,
        // A wait the caller bounded ran out: the lock is still another's, as for a try.
        // A 5xx would count normal contention as a failure of the member.
        Some(ErrorKind::Timeout) => return StatusCode::CONFLICT,
        Some(ErrorKind::NoEndpoint) if code == Code::Unimplemented => {
            return StatusCode::METHOD_NOT_ALLOWED;
        }
        _ => {}
    }
    match code {
        Code::Ok => StatusCode::OK,
        // What grpc-gateway answers for a call its client gave up (nginx's 499).
        Code::Cancelled => StatusCode::from_u16(499).unwrap_or(StatusCode::BAD_REQUEST),
        Code::InvalidArgument | Code::OutOfRange => StatusCode::BAD_REQUEST,
        Code::DeadlineExceeded => StatusCode::GATEWAY_TIMEOUT,
        Code::NotFound => StatusCode::NOT_FOUND,
        Code::AlreadyExists | Code::Aborted | Code::FailedPrecondition => StatusCode::CONFLICT,
        Code::PermissionDenied => StatusCode::FORBIDDEN,
        Code::Unauthenticated => StatusCode::UNAUTHORIZED,
        Code::ResourceExhausted => StatusCode::TOO_MANY_REQUESTS,
        Code::Unimplemented => StatusCode::NOT_IMPLEMENTED,
        Code::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
        Code::Unknown | Code::Internal | Code::DataLoss => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let code = grpc_code_constant(self.code);
        let body = ErrorJson {
            // A status the transport made has no kind: its code stands for it.
            error: self.kind.map_or(code, ErrorKind::as_str),
            message: &self.message,
            code,
            leader: self.leader.as_deref(),
        };
        let mut body = serde_json::to_vec(&body).unwrap_or_else(|_| b"{}".to_vec());
        body.push(b'\n');
        (self.http_status(), [(header::CONTENT_TYPE, "application/json")], body).into_response()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_map_to_the_http_statuses_of_their_meaning() {
        let cases = [
            (Code::NotFound, None, 404),
            (Code::PermissionDenied, None, 403),
            (Code::Unauthenticated, None, 401),
            (Code::InvalidArgument, None, 400),
            (Code::AlreadyExists, None, 409),
            (Code::Aborted, Some(ErrorKind::Deadlock), 409),
            (Code::FailedPrecondition, Some(ErrorKind::AlreadyLocked), 409),
            (Code::FailedPrecondition, Some(ErrorKind::SessionExpired), 404),
            (Code::ResourceExhausted, Some(ErrorKind::TooManyWaiters), 429),
            (Code::ResourceExhausted, Some(ErrorKind::RequestTooLarge), 413),
            (Code::Unavailable, Some(ErrorKind::NotLeader), 503),
            (Code::DeadlineExceeded, Some(ErrorKind::Timeout), 409),
            (Code::DeadlineExceeded, None, 504),
            (Code::Internal, None, 500),
            (Code::Unimplemented, Some(ErrorKind::NoEndpoint), 405),
        ];
        for (code, kind, http) in cases {
            assert_eq!(http_status(code, kind).as_u16(), http, "{code:?} {kind:?}");
        }
    }

    #[tokio::test]
    async fn an_error_answer_names_kind_message_code_and_leader() {
        let mut status = crate::status::server(Code::Unavailable, ErrorKind::NotLeader, "go there");
        let leader = tonic::metadata::MetadataValue::from_static("127.0.0.1:7400");
        status.metadata_mut().insert(LEADER_METADATA, leader);
        let error = ApiError::from(status);
        assert_eq!(error.code(), Code::Unavailable);
        let response = error.into_response();
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
        let body = axum::body::to_bytes(response.into_body(), 1 << 16).await.unwrap_or_default();
        let body: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
        assert_eq!(body["error"], ErrorKind::NotLeader.as_str());
        assert_eq!(body["code"], "UNAVAILABLE");
        assert_eq!(body["message"], "go there");
        assert_eq!(body["leader"], "127.0.0.1:7400");
        // A status the transport made has no kind: its code stands in.
        let bare = ApiError::from(Status::internal("boom")).into_response();
        let body = axum::body::to_bytes(bare.into_body(), 1 << 16).await.unwrap_or_default();
        let body: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
        assert_eq!(body["error"], "INTERNAL");
        assert!(body.get("leader").is_none(), "{body}");
    }
}
