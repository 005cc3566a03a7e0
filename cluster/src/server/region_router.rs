//! The client listener's router: every call names its region in the `ninety-region`
//! metadata header and goes to that region group's services (`runtime::group`). A call
//! without the header goes to the node's default (first) region, so a client of a node
//! with one region needs no header. A region the node does not host is `NOT_FOUND`, naming
//! it and the regions the node serves. A region the node hosts but has stopped (a panic in
//! its apply, `runtime::poison`: the other regions keep serving) is `FAILED_PRECONDITION`,
//! naming why and what the operator must do.
//!
//! The router sits inside the server's layers: the metrics layer, the authentication layer
//! (`security::auth`: credentials and roles) and the decode-error layer run before it,
//! exactly as with one region.

use arc_swap::ArcSwap;
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

/// Regions this node hosts but no longer serves, each with why: shared by the router and
/// the groups' watchers (`runtime::group`), which stop a region whose apply panicked.
#[derive(Clone, Debug, Default)]
pub struct StoppedRegions(Arc<ArcSwap<BTreeMap<String, String>>>);

impl StoppedRegions {
    /// Stops serving `region`, for `why` (kept; a second stop keeps the first reason).
    pub fn stop(&self, region: &str, why: String) {
        self.0.rcu(|m| {
            let mut m = BTreeMap::clone(m);
            m.entry(region.to_string()).or_insert_with(|| why.clone());
            m
        });
    }

    /// Why `region` is stopped, if it is.
    pub fn why(&self, region: &str) -> Option<String> {
        let m = self.0.load();
        if m.is_empty() {
            return None;
        }
        m.get(region).cloned()
    }
}

/// Region id → the region group's client routes.
#[derive(Clone)]
pub struct RegionRouter {
    groups: Arc<BTreeMap<String, Routes>>,
    /// Region ids in config order; the first is the default.
    order: Arc<Vec<String>>,
    stopped: StoppedRegions,
}

impl RegionRouter {
    /// A router over `groups` (region id, routes), the default region first.
    pub fn new(groups: Vec<(String, Routes)>) -> RegionRouter {
        let order = groups.iter().map(|(id, _)| id.clone()).collect();
        RegionRouter {
            groups: Arc::new(groups.into_iter().collect()),
            order: Arc::new(order),
            stopped: StoppedRegions::default(),
        }
    }

    /// The same routes on a node that hosts `hosted` (config order, the default first;
    /// some may have no routes: stopped at start) and answers for the `stopped` ones.
    pub fn with_stopped(mut self, hosted: Vec<String>, stopped: StoppedRegions) -> RegionRouter {
        self.order = Arc::new(hosted);
        self.stopped = stopped;
        self
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
        if let Some(why) = self.stopped.why(id) {
            return Err(Status::failed_precondition(format!(
                "region {id} is stopped on this node (it keeps serving {}): {why}",
                self.serving().join(", ")
            )));
        }
        self.groups.get(id).ok_or_else(|| self.unknown(id))
    }

    /// The hosted regions not stopped, in config order.
    fn serving(&self) -> Vec<&str> {
        self.order
            .iter()
            .filter(|id| self.stopped.why(id).is_none())
            .map(String::as_str)
            .collect()
    }

    fn unknown(&self, id: &str) -> Status {
        Status::not_found(format!(
            "{REGION_HEADER}: region {} is not served by this node; it serves {}",
            crate::server::convert::echo(id),
            self.serving().join(", ")
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

    #[test]
    fn a_stopped_region_is_failed_precondition_and_keeps_its_place_as_default() {
        let stopped = StoppedRegions::default();
        let r = RegionRouter::new(vec![("yunnan".into(), Routes::default())])
            .with_stopped(vec!["gba".into(), "yunnan".into()], stopped.clone());
        stopped.stop("gba", "a panic in apply".into());
        stopped.stop("gba", "a second reason".into());
        for h in [headers(None), headers(Some("gba"))] {
            let e = r.pick(&h).err().unwrap();
            assert_eq!(e.code(), tonic::Code::FailedPrecondition, "{e:?}");
            assert!(
                e.message().contains("region gba is stopped")
                    && e.message().contains("a panic in apply")
                    && e.message().contains("keeps serving yunnan"),
                "{e:?}"
            );
        }
        assert!(r.pick(&headers(Some("yunnan"))).is_ok());
        let e = r.pick(&headers(Some("mars"))).err().unwrap();
        assert!(e.message().ends_with("it serves yunnan"), "{e:?}");
    }
}
