//! The client listener's router: every call names its region in the `ninety-region`
//! metadata header and goes to that region group's services (`runtime::group`). A call
//! without the header goes to the node's default (first) region, so a client of a node
//! with one region needs no header. A region the node does not host is `NOT_FOUND`, naming
//! it and the regions the node serves.
//!
//! The router sits inside the server's layers: the metrics layer, the authentication layer
//! (`security::auth`: credentials and roles) and the decode-error layer run before it,
//! exactly as with one region.

use axum::body::Body as AxumBody;
use std::collections::BTreeMap;
use std::convert::Infallible;
use std::sync::Arc;
use std::task::{Context, Poll};
use tonic::body::Body;
use tonic::codegen::{http, BoxFuture, Service};
use tonic::service::Routes;
use tonic::Status;

/// The metadata header naming a call's region.
pub const REGION_HEADER: &str = "ninety-region";

/// Region id → the region group's client routes.
#[derive(Clone)]
pub struct RegionRouter {
    groups: Arc<BTreeMap<String, Routes>>,
    /// Region ids in config order; the first is the default.
    order: Arc<Vec<String>>,
}

impl RegionRouter {
    /// A router over `groups` (region id, routes), the default region first.
    pub fn new(groups: Vec<(String, Routes)>) -> RegionRouter {
        let order = groups.iter().map(|(id, _)| id.clone()).collect();
        RegionRouter {
            groups: Arc::new(groups.into_iter().collect()),
            order: Arc::new(order),
        }
    }

    /// The routes of the region `headers` name (none: the default region).
    pub fn pick(&self, headers: &http::HeaderMap) -> Result<&Routes, Status> {
        let named = match headers.get(REGION_HEADER) {
            None => None,
            Some(v) => Some(v.to_str().map_err(|_| {
                Status::invalid_argument(format!(
                    "{REGION_HEADER}: not a region id (visible ASCII expected)"
                ))
            })?),
        };
        let id = match named {
            Some(id) => id,
            None => self.order.first().map(String::as_str).unwrap_or_default(),
        };
        self.groups.get(id).ok_or_else(|| self.unknown(id))
    }

    fn unknown(&self, id: &str) -> Status {
        Status::not_found(format!(
            "{REGION_HEADER}: region {} is not served by this node; it serves {}",
            crate::server::convert::echo(id),
            self.order.join(", ")
        ))
    }

    /// The routes as one tonic `Routes` (an axum router whose fallback is this router).
    pub fn into_routes(self) -> Routes {
        Routes::from(axum::Router::new().fallback_service(self)).prepare()
    }
}

impl Service<http::Request<AxumBody>> for RegionRouter {
    type Response = http::Response<Body>;
    type Error = Infallible;
    type Future = BoxFuture<Self::Response, Infallible>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        // Every group's routes are an axum router, always ready.
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: http::Request<AxumBody>) -> Self::Future {
        match self.pick(req.headers()) {
            Ok(routes) => {
                let mut routes = routes.clone();
                Box::pin(async move { routes.call(req).await })
            }
            Err(status) => {
                let response = status.into_http::<Body>();
                Box::pin(async move { Ok(response) })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn router() -> RegionRouter {
        RegionRouter::new(vec![
            ("gba".into(), Routes::default()),
            ("yunnan".into(), Routes::default()),
        ])
    }

    fn headers(region: Option<&str>) -> http::HeaderMap {
        let mut h = http::HeaderMap::new();
        if let Some(r) = region {
            h.insert(REGION_HEADER, r.parse().unwrap());
        }
        h
    }

    #[test]
    fn a_missing_header_is_the_default_region_and_an_unknown_one_not_found() {
        let r = router();
        assert!(r.pick(&headers(None)).is_ok());
        assert!(r.pick(&headers(Some("yunnan"))).is_ok());
        let e = r.pick(&headers(Some("mars"))).err().unwrap();
        assert_eq!(e.code(), tonic::Code::NotFound);
        assert!(
            e.message().contains("region \"mars\"") && e.message().contains("gba, yunnan"),
            "{e:?}"
        );
        let none = RegionRouter::new(Vec::new());
        assert_eq!(
            none.pick(&headers(None)).err().map(|s| s.code()),
            Some(tonic::Code::NotFound)
        );
    }
}
