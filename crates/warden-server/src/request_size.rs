//! Requests larger than the client port reads (`limits.max_request_bytes`).
//!
//! tonic refuses such a request as soon as it reads the message's length, before reading
//! the message, as OUT_OF_RANGE in its own words ("decoded message length too large"),
//! without the member's error kind. That status is this layer's to rewrite: a request
//! over a member's limit is a quota of the member used up, so it is answered
//! RESOURCE_EXHAUSTED, of kind `RequestTooLarge`, naming the limit and its config key and
//! saying what to do, with the limit in bytes in `warden-limit` for programs.
//!
//! A refusal from tonic is answered trailers-only (the status in the response's
//! headers), so rewriting the headers is enough.

use tonic::Code;
use tonic::Status;
use tonic::body::Body;
use tonic::codegen::http;
use tracing::warn;
use warden_proto::ErrorKind;
use warden_proto::LIMIT_METADATA;

use crate::status;

/// What tonic says when a request's length is over the decoding limit.
const TONIC_TOO_LARGE: &str = "decoded message length too large";

/// The response with tonic's refusal of an oversized request rewritten (see the module
/// docs); any other response as it is.
pub(crate) fn rewrite(limit: usize, mut response: http::Response<Body>) -> http::Response<Body> {
    let Some(refusal) = Status::from_header_map(response.headers()) else {
        return response;
    };
    if refusal.code() != Code::OutOfRange
        || status::has_kind(&refusal)
        || !refusal.message().contains(TONIC_TOO_LARGE)
    {
        return response;
    }
    let found = refusal
        .message()
        .split_once("found ")
        .and_then(|(_, rest)| rest.split_whitespace().next())
        .unwrap_or("more than that");
    warn!(found, limit, "request refused: larger than limits.max_request_bytes");
    let mut answer = too_large(limit, found);
    if let Ok(value) = limit.to_string().parse() {
        answer.metadata_mut().insert(LIMIT_METADATA, value);
    }
    let headers = response.headers_mut();
    headers.remove(Status::GRPC_MESSAGE);
    if answer.add_header(headers).is_err() {
        // The message is ours and plain ASCII; keep tonic's refusal if it ever is not.
        return response;
    }
    response
}

/// The status of a request of `found` bytes over `limit`.
fn too_large(limit: usize, found: &str) -> Status {
    status::server(
        Code::ResourceExhausted,
        ErrorKind::RequestTooLarge,
        format!(
            "the request is {found} bytes, more than this member reads in one request ({limit} bytes, limits.max_request_bytes); nothing was applied: send less in one request (smaller values, fewer operations per transaction)"
        ),
    )
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn refusal(status: &Status) -> http::Response<Body> {
        status.clone().into_http()
    }

    #[test]
    fn rewrites_tonics_refusal_of_a_request_too_large() {
        let tonic = Status::out_of_range(
            "Error, decoded message length too large: found 67108875 bytes, the limit is: 4194304 bytes",
        );
        let response = rewrite(4_194_304, refusal(&tonic));
        let status = Status::from_header_map(response.headers()).unwrap();
        assert_eq!(status.code(), Code::ResourceExhausted);
        assert_eq!(status::kind(&status), Some(ErrorKind::RequestTooLarge));
        assert!(status.message().contains("67108875 bytes"), "{}", status.message());
        assert!(status.message().contains("limits.max_request_bytes"), "{}", status.message());
        assert_eq!(
            status.metadata().get(LIMIT_METADATA).and_then(|v| v.to_str().ok()),
            Some("4194304")
        );
    }

    #[test]
    fn leaves_every_other_answer_alone() {
        for other in [
            Status::out_of_range("the requested start revision is no longer in history"),
            status::server(
                Code::OutOfRange,
                ErrorKind::Compacted,
                "decoded message length too large",
            ),
            Status::invalid_argument("decoded message length too large"),
        ] {
            let response = rewrite(10, refusal(&other));
            let status = Status::from_header_map(response.headers()).unwrap();
            assert_eq!((status.code(), status.message()), (other.code(), other.message()));
        }
        let ok = http::Response::new(Body::empty());
        assert!(Status::from_header_map(rewrite(10, ok).headers()).is_none());
    }
}
