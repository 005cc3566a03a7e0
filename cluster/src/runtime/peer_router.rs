//! The node's one `ninety.peer.v1.Peer` service: every call names its region (`region`;
//! empty for the node's default region, as a node with one region sends), and goes to that
//! region group's [`PeerService`] with its own gate, queues and snapshot intake. A region
//! this node does not host is refused `NOT_FOUND`, naming it and the regions it hosts.
//! A snapshot stream is routed by its first chunk; a later chunk naming another region
//! ends the stream `INVALID_ARGUMENT`.

use super::peer_service::PeerService;
use super::snapshot_intake::SNAPSHOT_CHUNK_IDLE_TIMEOUT;
use ninety_proto::peer::v1::{
    peer_server::Peer, ForwardReply, ForwardRequest, NodeStatus, RaftBatch, SendAck, SnapshotAck,
    SnapshotChunk, StatusRequest,
};
use std::collections::BTreeMap;
use std::sync::Arc;
use tokio_stream::StreamExt;
use tonic::{Request, Response, Status, Streaming};
use tracing::Instrument;

/// Region id → its group's peer service (and the span its calls log in); the default
/// region first in `order`.
pub struct PeerRouter {
    groups: BTreeMap<String, (Arc<PeerService>, tracing::Span)>,
    /// The region ids in config order; the first is the default.
    order: Vec<String>,
    me: u64,
}

impl PeerRouter {
    /// A router over `groups` (region id, service, span), the default region first. An
    /// empty list routes every call to `NOT_FOUND`.
    pub fn new(me: u64, groups: Vec<(String, PeerService, tracing::Span)>) -> PeerRouter {
        let order = groups.iter().map(|(id, _, _)| id.clone()).collect();
        PeerRouter {
            groups: groups
                .into_iter()
                .map(|(id, s, span)| (id, (Arc::new(s), span)))
                .collect(),
            order,
            me,
        }
    }

    /// The group of `region` (empty: the default region) and its span.
    pub fn group(&self, region: &str) -> Result<(Arc<PeerService>, tracing::Span), Status> {
        let id = match region {
            "" => self.order.first().map(String::as_str).unwrap_or_default(),
            named => named,
        };
        self.groups.get(id).cloned().ok_or_else(|| {
            Status::not_found(format!(
                "region {}: node {} does not host it (it hosts {})",
                crate::server::convert::echo(region),
                self.me,
                self.order.join(", ")
            ))
        })
    }
}

#[tonic::async_trait]
impl Peer for PeerRouter {
    async fn send(&self, request: Request<RaftBatch>) -> Result<Response<SendAck>, Status> {
        let (group, span) = self.group(&request.get_ref().region)?;
        group.send(request).instrument(span).await
    }

    async fn install_snapshot(
        &self,
        request: Request<Streaming<SnapshotChunk>>,
    ) -> Result<Response<SnapshotAck>, Status> {
        // The certificate check needs the request; it is the same for every group.
        let certified = self.group("")?.0.gate.certified(&request)?;
        let mut stream = request.into_inner();
        // Bounded as the intake bounds every later chunk: a stalled sender holds nothing.
        let first = tokio::time::timeout(SNAPSHOT_CHUNK_IDLE_TIMEOUT, stream.message()).await;
        let head = match first {
            Ok(Ok(Some(chunk))) => chunk,
            Ok(Ok(None)) => {
                return Err(Status::aborted(
                    "snapshot stream ended before its first chunk",
                ))
            }
            Ok(Err(s)) => return Err(s),
            Err(_) => {
                return Err(Status::deadline_exceeded(format!(
                    "no first snapshot chunk within {SNAPSHOT_CHUNK_IDLE_TIMEOUT:?}"
                )))
            }
        };
        let region = head.region.clone();
        let (group, span) = self.group(&region)?;
        group.gate.check_started()?;
        let rest = stream.map(move |chunk| match chunk {
            Ok(c) if c.region != region => Err(Status::invalid_argument(format!(
                "region: a chunk of region {} in a snapshot stream of region {}",
                crate::server::convert::echo(&c.region),
                crate::server::convert::echo(&region)
            ))),
            other => other,
        });
        let chunks = tokio_stream::once(Ok(head)).chain(rest);
        group
            .receive_snapshot(certified, chunks)
            .instrument(span)
            .await
    }

    async fn forward(
        &self,
        request: Request<ForwardRequest>,
    ) -> Result<Response<ForwardReply>, Status> {
        let (group, span) = self.group(&request.get_ref().region)?;
        group.forward(request).instrument(span).await
    }

    async fn status(
        &self,
        request: Request<StatusRequest>,
    ) -> Result<Response<NodeStatus>, Status> {
        let (group, span) = self.group(&request.get_ref().region)?;
        group.status(request).instrument(span).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::config::NodeAddrs;
    use crate::runtime::peer_service::PeerGate;
    use crate::runtime::snapshot_intake::{IntakeLimits, SnapshotIntake};
    use crate::runtime::transport::{Faults, PeerBook};
    use tonic::Code;

    /// A group of node 1 whose address book knows nodes 1 and 2.
    fn group() -> PeerService {
        let addr = |p: u16| NodeAddrs {
            peer: format!("127.0.0.1:{p}"),
            client: format!("127.0.0.1:{}", p + 1),
        };
        let book = Arc::new(PeerBook::new([(1, addr(10)), (2, addr(20))].into()));
        let (handle, _inbox) = crate::runtime::driver::channels(1, 16);
        PeerService {
            handle,
            faults: Arc::new(Faults::new(None)),
            gate: Arc::new(PeerGate::new(1, false, book)),
            intake: SnapshotIntake::new(IntakeLimits::default()),
        }
    }

    fn batch(region: &str) -> Request<RaftBatch> {
        Request::new(RaftBatch {
            from_node: 2,
            to_node: 1,
            region: region.into(),
            ..Default::default()
        })
    }

    #[tokio::test]
    async fn calls_go_to_their_region_and_an_unknown_one_is_not_found() {
        let span = tracing::Span::none;
        let router = PeerRouter::new(
            1,
            vec![
                ("gba".into(), group(), span()),
                ("yunnan".into(), group(), span()),
            ],
        );
        for region in ["", "gba", "yunnan"] {
            let ack = router.send(batch(region)).await.expect(region);
            assert_eq!(ack.get_ref().node_id, 1);
        }
        let e = router.send(batch("mars")).await.unwrap_err();
        assert_eq!(e.code(), Code::NotFound);
        assert!(
            e.message().contains("region \"mars\"") && e.message().contains("gba, yunnan"),
            "{e:?}"
        );
        let status = Request::new(StatusRequest {
            from_node: 2,
            region: "mars".into(),
        });
        assert_eq!(
            router.status(status).await.unwrap_err().code(),
            Code::NotFound
        );
    }
}
