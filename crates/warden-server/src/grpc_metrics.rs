//! Counts and times the client port's gRPC requests: a tower layer, outermost on the
//! client port, so it sees every answer as the client gets it (a refusal of the caller
//! layer, a rewritten too-large request, a handler's status).
//!
//! A gRPC status is in the response headers when the call fails before any message
//! ("trailers-only"), otherwise in the trailers at the end of the body: the layer wraps
//! the body to read them. A call whose body is dropped before its trailers (the client
//! went away) counts as `Canceled`. The time is from the request to its status: for a
//! stream (Watch, KeepAlive, Observe) that is its whole life.
//!
//! The method label is the request's path only if it is one of the public API's
//! ([`warden_proto::CLIENT_METHODS`]); any other is `unknown`, so a client sending made-up
//! paths cannot grow the series without bound.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

use http_body::{Body, Frame, SizeHint};
use tonic::Code;
use tonic::codegen::http;

use crate::metrics::Metrics;

/// The label of a path that is not a public method.
const UNKNOWN: &str = "unknown";

/// The method label of a request path.
fn method_label(path: &str) -> &'static str {
    warden_proto::CLIENT_METHODS.iter().find(|m| **m == path).copied().unwrap_or(UNKNOWN)
}

/// The status code in `headers` (response headers or trailers), if there is one.
fn code_in(headers: &http::HeaderMap) -> Option<Code> {
    let value = headers.get(tonic::Status::GRPC_STATUS)?;
    let number = value.to_str().ok()?.trim().parse::<i32>().ok()?;
    Some(Code::from_i32(number))
}

/// One call being served: counted and timed once, when its status is known or when it is
/// dropped without one.
struct Call {
    metrics: Arc<Metrics>,
    method: &'static str,
    started: Instant,
    done: bool,
}

impl Call {
    fn finish(&mut self, code: Code) {
        if std::mem::replace(&mut self.done, true) {
            return;
        }
        let m = &self.metrics;
        m.grpc_requests.with_label_values(&[self.method, warden_proto::grpc_code_name(code)]).inc();
        m.grpc_seconds
            .with_label_values(&[self.method])
            .observe(self.started.elapsed().as_secs_f64());
    }
}

impl Drop for Call {
    fn drop(&mut self) {
        self.finish(Code::Cancelled);
    }
}

/// The layer (see the module docs).
#[derive(Clone)]
pub(crate) struct GrpcMetricsLayer {
    metrics: Arc<Metrics>,
}

impl GrpcMetricsLayer {
    pub(crate) fn new(metrics: Arc<Metrics>) -> GrpcMetricsLayer {
        GrpcMetricsLayer { metrics }
    }
}

impl<S> tower::Layer<S> for GrpcMetricsLayer {
    type Service = GrpcMetrics<S>;

    fn layer(&self, inner: S) -> GrpcMetrics<S> {
        GrpcMetrics { inner, metrics: Arc::clone(&self.metrics) }
    }
}

/// The service the layer wraps around the client port's.
#[derive(Clone)]
pub(crate) struct GrpcMetrics<S> {
    inner: S,
    metrics: Arc<Metrics>,
}

type Answer<B, E> = Pin<Box<dyn Future<Output = Result<http::Response<Counted<B>>, E>> + Send>>;

impl<S, ReqBody, ResBody> tower::Service<http::Request<ReqBody>> for GrpcMetrics<S>
where
    S: tower::Service<http::Request<ReqBody>, Response = http::Response<ResBody>>,
    S::Future: Send + 'static,
    S::Error: 'static,
    ResBody: Body + Unpin + Send + 'static,
{
    type Response = http::Response<Counted<ResBody>>;
    type Error = S::Error;
    type Future = Answer<ResBody, S::Error>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<ReqBody>) -> Self::Future {
        let mut call = Call {
            metrics: Arc::clone(&self.metrics),
            method: method_label(request.uri().path()),
            started: Instant::now(),
            done: false,
        };
        let answer = self.inner.call(request);
        Box::pin(async move {
            let response = match answer.await {
                Ok(response) => response,
                Err(e) => {
                    call.finish(Code::Unknown);
                    return Err(e);
                }
            };
            // Trailers-only: the status is in the headers, the body is empty.
            let call = match code_in(response.headers()) {
                Some(code) => {
                    call.finish(code);
                    None
                }
                None => Some(call),
            };
            Ok(response.map(|body| Counted { body, call }))
        })
    }
}

/// A response body that counts its call when its trailers go by (or when it ends or is
/// dropped without them).
pub(crate) struct Counted<B> {
    body: B,
    call: Option<Call>,
}

impl<B: Body + Unpin> Body for Counted<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<B::Data>, B::Error>>> {
        let polled = Pin::new(&mut self.body).poll_frame(cx);
        let code = match &polled {
            Poll::Ready(Some(Ok(frame))) => {
                frame.trailers_ref().map(|t| code_in(t).unwrap_or(Code::Unknown))
            }
            // A body that ends without trailers, or fails, did not end the call well.
            Poll::Ready(None) | Poll::Ready(Some(Err(_))) => Some(Code::Unknown),
            Poll::Pending => None,
        };
        if let (Some(code), Some(call)) = (code, self.call.as_mut()) {
            call.finish(code);
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_public_methods_are_labels() {
        assert_eq!(method_label("/warden.v1.KV/Get"), "/warden.v1.KV/Get");
        assert_eq!(method_label("/warden.v1.KV/Nope"), UNKNOWN);
        assert_eq!(method_label("/warden.raft.v1.Raft/Append"), UNKNOWN);
        assert_eq!(method_label(""), UNKNOWN);
    }

    #[test]
    fn codes_are_named_as_grpc_names_them() {
        let mut headers = http::HeaderMap::new();
        assert_eq!(code_in(&headers), None);
        headers.insert(tonic::Status::GRPC_STATUS, http::HeaderValue::from_static("14"));
        assert_eq!(code_in(&headers).map(warden_proto::grpc_code_name), Some("Unavailable"));
        headers.insert(tonic::Status::GRPC_STATUS, http::HeaderValue::from_static("99"));
        assert_eq!(code_in(&headers).map(warden_proto::grpc_code_name), Some("Unknown"));
        assert_eq!(warden_proto::grpc_code_name(Code::Ok), "OK");
        assert_eq!(warden_proto::grpc_code_name(Code::Cancelled), "Canceled");
    }
}
