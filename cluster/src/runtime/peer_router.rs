//! The node's one `ninety.peer.v1.Peer` service: every call names its region (`region`;
//! empty for the node's default region, as a node with one region sends), and goes to that
//! region group's [`PeerService`] with its own gate, queues and snapshot intake. A region
//! this node does not host is refused `NOT_FOUND`, naming it and the regions it hosts.
//! A snapshot stream is routed by its first chunk; a later chunk naming another region
//! ends the stream `INVALID_ARGUMENT`.

use super::peer_service::PeerService;
use ninety_proto::peer::v1::{
    peer_server::Peer, ForwardReply, ForwardRequest, NodeStatus, RaftBatch, SendAck,
    SnapshotAck, SnapshotChunk, StatusRequest,
};
use std::collections::BTreeMap;
use std::sync::Arc;
use tokio_stream::StreamExt;
use tonic::{Request, Response, Status, Streaming};

/// Region id → its group's peer service; the default region first in `order`.
pub struct PeerRouter {
    groups: BTreeMap<String, Arc<PeerService>>,
    /// The region ids in config order; the first is the default.
    order: Vec<String>,
    me: u64,
}

impl PeerRouter {
    /// A router over `groups` (region id, service), the default region first. Panics
    /// never: an empty list routes every call to `NOT_FOUND`.
    pub fn new(me: u64, groups: Vec<(String, PeerService)>) -> PeerRouter {
        let order = groups.iter().map(|(id, _)| id.clone()).collect();
        PeerRouter {
            groups: groups
                .into_iter()
                .map(|(id, s)| (id, Arc::new(s)))
                .collect(),
            order,
            me,
        }
    }

    /// The group of `region` (empty: the default region).
    pub fn group(&self, region: &str) -> Result<Arc<PeerService>, Status> {
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
        let group = self.group(&request.get_ref().region)?;
        group.send(request).await
    }

    async fn install_snapshot(
        &self,
        request: Request<Streaming<SnapshotChunk>>,
    ) -> Result<Response<SnapshotAck>, Status> {
        // The certificate check needs the request; it is the same for every group.
        let certified = self.group("")?.gate.certified(&request)?;
        let mut stream = request.into_inner();
        let head = match stream.message().await? {
            Some(chunk) => chunk,
            None => return Err(Status::invalid_argument("an empty snapshot stream")),
        };
        let region = head.region.clone();
        let group = self.group(&region)?;
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
        group.receive_snapshot(certified, chunks).await
    }

    async fn forward(
        &self,
        request: Request<ForwardRequest>,
    ) -> Result<Response<ForwardReply>, Status> {
        let group = self.group(&request.get_ref().region)?;
        group.forward(request).await
    }

    async fn status(
        &self,
        request: Request<StatusRequest>,
    ) -> Result<Response<NodeStatus>, Status> {
        let group = self.group(&request.get_ref().region)?;
        group.status(request).await
    }
}
