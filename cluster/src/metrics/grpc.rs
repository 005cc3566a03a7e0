//! Requests and latency of the client listener's gRPC calls: a tower layer outermost on the
//! client server, so refusals by the authentication layer count too.
//!
//! The status code is read from the response's headers: tonic sends a failure before any
//! message as a trailers-only response (status in the headers), and a response without a
//! status there went on to send messages, counted `OK`. A stream that fails after its first
//! message (`Watch` cut, `BedHolds.Stream` ending on a bad frame) counts as `OK` here; its
//! latency is the time to its response headers. Labels come from a fixed table (every
//! `ninety.v1` method of `security::roles::METHODS`, health and reflection), so a client
//! cannot grow the label sets by calling made-up paths: those count as `other`.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;
use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;
use tonic::codegen::{http, Service};
use tonic::{Code, Status};

/// Smallest latency bucket, seconds (100 µs), doubling over [`LATENCY_BUCKETS`] buckets
/// (to 3.3 s).
const LATENCY_BUCKET_MIN_SECONDS: f64 = 0.000_1;
const LATENCY_BUCKETS: u16 = 16;

/// The methods served besides `ninety.v1`'s, as their paths name them.
const OTHER_METHODS: [&str; 4] = [
    "grpc.health.v1.Health/Check",
    "grpc.health.v1.Health/Watch",
    "grpc.reflection.v1.ServerReflection/ServerReflectionInfo",
    "grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo",
];

/// One method.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct MethodLabels {
    service: &'static str,
    method: &'static str,
}

/// One method and the status code it answered.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CodeLabels {
    service: &'static str,
    method: &'static str,
    code: &'static str,
}

/// The gRPC metrics and the table of known methods (module doc).
#[derive(Clone, Debug)]
pub struct GrpcMetrics {
    requests: Family<CodeLabels, Counter>,
    latency: Family<MethodLabels, Histogram>,
    /// Path without its leading `/` (and `ninety.v1.`) → labels.
    known: Arc<HashMap<&'static str, MethodLabels>>,
}

impl Default for GrpcMetrics {
    fn default() -> Self {
        let mut known = HashMap::new();
        let methods = crate::security::roles::METHODS.iter().map(|(m, _)| *m);
        for path in methods.chain(OTHER_METHODS) {
            if let Some((service, method)) = path.split_once('/') {
                known.insert(path, MethodLabels { service, method });
            }
        }
        let histogram: fn() -> Histogram = || {
            Histogram::new(exponential_buckets(
                LATENCY_BUCKET_MIN_SECONDS,
                2.0,
                LATENCY_BUCKETS,
            ))
        };
        GrpcMetrics {
            requests: Family::default(),
            latency: Family::new_with_constructor(histogram),
            known: Arc::new(known),
        }
    }
}

/// The name of a status code as gRPC spells it.
pub fn code_name(code: Code) -> &'static str {
    match code {
        Code::Ok => "OK",
        Code::Cancelled => "CANCELLED",
        Code::Unknown => "UNKNOWN",
        Code::InvalidArgument => "INVALID_ARGUMENT",
        Code::DeadlineExceeded => "DEADLINE_EXCEEDED",
        Code::NotFound => "NOT_FOUND",
        Code::AlreadyExists => "ALREADY_EXISTS",
        Code::PermissionDenied => "PERMISSION_DENIED",
        Code::ResourceExhausted => "RESOURCE_EXHAUSTED",
        Code::FailedPrecondition => "FAILED_PRECONDITION",
        Code::Aborted => "ABORTED",
        Code::OutOfRange => "OUT_OF_RANGE",
        Code::Unimplemented => "UNIMPLEMENTED",
        Code::Internal => "INTERNAL",
        Code::Unavailable => "UNAVAILABLE",
        Code::DataLoss => "DATA_LOSS",
        Code::Unauthenticated => "UNAUTHENTICATED",
    }
}

impl GrpcMetrics {
    pub(super) fn register(&self, r: &mut Registry) {
        r.register(
            "grpc_requests",
            "Client gRPC calls answered, by service, method and status code",
            self.requests.clone(),
        );
        r.register(
            "grpc_request_duration_seconds",
            "Client gRPC calls: time to the response headers, by service and method",
            self.latency.clone(),
        );
    }

    /// The labels of a request path (`/package.Service/Method`).
    fn method(&self, path: &str) -> MethodLabels {
        let path = path.strip_prefix('/').unwrap_or(path);
        let short = path.strip_prefix("ninety.v1.").unwrap_or(path);
        self.known.get(short).cloned().unwrap_or(MethodLabels {
            service: "other",
            method: "other",
        })
    }

    /// Counts one answered call.
    fn observe(&self, m: MethodLabels, code: &'static str, started: Instant) {
        self.latency
            .get_or_create(&m)
            .observe(started.elapsed().as_secs_f64());
        let labels = CodeLabels {
            service: m.service,
            method: m.method,
            code,
        };
        self.requests.get_or_create(&labels).inc();
    }
}

/// The tower layer of [`GrpcMetricsService`] (for `Server::builder().layer`); `None`
/// (metrics off) passes every call through untouched.
#[derive(Clone, Debug)]
pub struct GrpcMetricsLayer(pub Option<GrpcMetrics>);

impl<S> tower_layer::Layer<S> for GrpcMetricsLayer {
    type Service = GrpcMetricsService<S>;

    fn layer(&self, inner: S) -> GrpcMetricsService<S> {
        GrpcMetricsService {
            inner,
            metrics: self.0.clone(),
        }
    }
}

/// Counts and times every call (module doc).
#[derive(Clone, Debug)]
pub struct GrpcMetricsService<S> {
    inner: S,
    metrics: Option<GrpcMetrics>,
}

type BoxFuture<T, E> = Pin<Box<dyn Future<Output = Result<T, E>> + Send>>;

impl<S, B, R> Service<http::Request<B>> for GrpcMetricsService<S>
where
    S: Service<http::Request<B>, Response = http::Response<R>>,
    S::Future: Send + 'static,
{
    type Response = http::Response<R>;
    type Error = S::Error;
    type Future = BoxFuture<http::Response<R>, S::Error>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        let Some(metrics) = self.metrics.clone() else {
            return Box::pin(self.inner.call(request));
        };
        let started = Instant::now();
        let method = metrics.method(request.uri().path());
        let answer = self.inner.call(request);
        Box::pin(async move {
            let answer = answer.await;
            let code = match &answer {
                Ok(response) => Status::from_header_map(response.headers())
                    .map_or("OK", |s| code_name(s.code())),
                // The server could not answer at all (the connection's fault).
                Err(_) => code_name(Code::Unavailable),
            };
            metrics.observe(method, code, started);
            answer
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_map_to_a_fixed_set_of_labels() {
        let m = GrpcMetrics::default();
        let hold = m.method("/ninety.v1.BedHolds/HoldBed");
        assert_eq!((hold.service, hold.method), ("BedHolds", "HoldBed"));
        let health = m.method("/grpc.health.v1.Health/Check");
        assert_eq!(health.method, "Check");
        for junk in ["/ninety.v1.BedHolds/Nope", "/x", "", "/ninety.v1.BedHolds/"] {
            let l = m.method(junk);
            assert_eq!((l.service, l.method), ("other", "other"), "{junk}");
        }
    }
}
