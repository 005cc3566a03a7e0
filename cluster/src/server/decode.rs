//! Requests that do not decode are the client's fault: `INVALID_ARGUMENT`, never `INTERNAL`.
//!
//! Two places see such a request, and between them they cover every call:
//!
//! * the message inside a well-formed gRPC frame (invalid UTF-8 in a string, wire type 7,
//!   field number 0, a truncated or garbage body, nesting past prost's recursion limit):
//!   the generated servers decode with `ninety_proto::codec::RequestCodec`, which answers
//!   `INVALID_ARGUMENT` with prost's description and the field path in the `Rejection`;
//! * the gRPC framing around it, which tonic checks before any handler runs (a body that
//!   ends inside a frame, a unary call without a message, an unknown compression flag) and
//!   answers `INTERNAL`: [`DecodeErrorsLayer`], a tower layer on the node's server, rewrites
//!   exactly those answers (recognised by tonic's own messages, [`TONIC_FRAMING_ERRORS`]) to
//!   `INVALID_ARGUMENT`. On `BedHolds.Stream` the same errors reach the handler, which
//!   answers the ops it accepted before the bad frame and then ends with
//!   `INVALID_ARGUMENT` (`beds::run_stream`).
//!
//! An `INTERNAL` answer the server gives for its own faults is left alone.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use tonic::codegen::{http, Service};
use tonic::{Code, Status};

/// The starts of the messages tonic 0.14 gives its framing errors of a request
/// (`tonic::codec::decode`, `tonic::server::grpc`). A test sends each case through a real
/// node, so a tonic upgrade that rewords one fails there.
pub const TONIC_FRAMING_ERRORS: &[&str] = &[
    "Unexpected EOF decoding stream",
    "Missing request message",
    "protocol error: received message with",
];

/// Whether a status is tonic's answer to a badly framed request.
pub fn is_framing_error(s: &Status) -> bool {
    s.code() == Code::Internal
        && TONIC_FRAMING_ERRORS
            .iter()
            .any(|m| s.message().starts_with(m))
}

/// The `INVALID_ARGUMENT` that replaces a framing error, with the standard details of every
/// refusal (`ninety_proto::status`): the `Rejection` and a `BadRequest` whose violation
/// names the whole request (field `""`: the frame around the message is bad).
pub fn framing_status(s: &Status) -> Status {
    let message = format!(
        "the request does not decode: {}",
        super::refusal_text(s.message())
    );
    let rejection = ninety_proto::v1::Rejection {
        code: ninety_proto::v1::RejectionCode::InvalidArgument as i32,
        field: String::new(),
        message,
        at_ms: 0,
    };
    ninety_proto::status::rejection_status(Code::InvalidArgument, &rejection)
}

/// The tower layer of [`DecodeErrors`] (for `Server::builder().layer`).
#[derive(Clone, Copy, Debug, Default)]
pub struct DecodeErrorsLayer;

impl<S> tower_layer::Layer<S> for DecodeErrorsLayer {
    type Service = DecodeErrors<S>;

    fn layer(&self, inner: S) -> DecodeErrors<S> {
        DecodeErrors { inner }
    }
}

/// Rewrites tonic's `INTERNAL` answers to badly framed requests (module doc).
#[derive(Clone, Debug)]
pub struct DecodeErrors<S> {
    inner: S,
}

type BoxFuture<T, E> = Pin<Box<dyn Future<Output = Result<T, E>> + Send>>;

impl<S, B, R> Service<http::Request<B>> for DecodeErrors<S>
where
    S: Service<http::Request<B>, Response = http::Response<R>>,
    S::Future: Send + 'static,
    R: Default,
{
    type Response = http::Response<R>;
    type Error = S::Error;
    type Future = BoxFuture<http::Response<R>, S::Error>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        let answer = self.inner.call(request);
        Box::pin(async move { answer.await.map(rewrite) })
    }
}

/// A trailers-only answer (status in the headers, as tonic sends a failure before any
/// message) carrying a framing error becomes `INVALID_ARGUMENT`; anything else is kept.
fn rewrite<R: Default>(response: http::Response<R>) -> http::Response<R> {
    match Status::from_header_map(response.headers()) {
        Some(s) if is_framing_error(&s) => framing_status(&s).into_http(),
        _ => response,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_tonic_framing_errors_are_rewritten() {
        let eof = Status::internal("Unexpected EOF decoding stream.");
        let ours = Status::internal("unexpected query result");
        let rewritten = rewrite::<()>(eof.into_http());
        let s = Status::from_header_map(rewritten.headers()).unwrap();
        assert_eq!(s.code(), Code::InvalidArgument);
        assert!(s.message().contains("Unexpected EOF"), "{s:?}");
        let r = ninety_proto::status::rejection(&s).expect("a Rejection in the details");
        assert_eq!(
            r.code,
            ninety_proto::v1::RejectionCode::InvalidArgument as i32
        );
        let kept = rewrite::<()>(ours.into_http());
        let s = Status::from_header_map(kept.headers()).unwrap();
        assert_eq!(s.code(), Code::Internal);
        let ok = rewrite::<()>(http::Response::new(()));
        assert!(Status::from_header_map(ok.headers()).is_none());
    }
}
