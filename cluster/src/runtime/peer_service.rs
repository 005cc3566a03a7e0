//! The `ninety.peer.v1.Peer` service: what a node serves to the other nodes.
//!
//! Incoming Raft batches are decoded (rust-protobuf 2 inside prost) and queued to the node
//! task without waiting: a full queue drops them, which Raft tolerates. Snapshots arrive as
//! a client stream of chunks, bounded and validated by `snapshot_intake` (size, streams,
//! timeouts, SHA-256, format and decoding) and only then stepped.
//! `Forward` lets a follower hand a client's command to this node when it leads.

use super::driver::{NodeHandle, PeerEvent};
use super::snapshot_intake::SnapshotIntake;
use super::transport::Faults;
use crate::eraftpb::{Message, MessageType};
use crate::node::Reply;
use crate::RequestError;
use ninety_proto::peer::v1::{
    peer_server::Peer, ForwardOutcome, ForwardReply, ForwardRequest, NodeStatus, RaftBatch, Role,
    SendAck, SnapshotAck, SnapshotChunk, StatusRequest,
};
use protobuf::Message as _;
use std::sync::Arc;
use std::time::Duration;
use tonic::{Request, Response, Status, Streaming};

/// How long a forwarded proposal may wait for its outcome when the caller gives no timeout.
pub const FORWARD_TIMEOUT_DEFAULT: Duration = Duration::from_secs(5);

/// The Peer service of one node.
pub struct PeerService {
    pub handle: NodeHandle,
    pub faults: Arc<Faults>,
    /// Limits and checks for received snapshots.
    pub intake: SnapshotIntake,
}

impl PeerService {
    fn check(&self, from: u64, to: u64) -> Result<(), Status> {
        if from != 0 && self.faults.is_blocked(from) {
            return Err(Status::unavailable(
                "fault injection: partitioned from caller",
            ));
        }
        if to != self.handle.id {
            return Err(Status::failed_precondition(format!(
                "this is node {}, not node {to}",
                self.handle.id
            )));
        }
        Ok(())
    }
}

/// Logs a snapshot the intake refused. The sender check's own refusals (not a member,
/// fault injection) are left to it: they are counted and rate-limited there.
fn log_refused_snapshot(s: &Status) {
    use tonic::Code;
    if !matches!(
        s.code(),
        Code::Unauthenticated | Code::PermissionDenied | Code::Unavailable
    ) {
        tracing::warn!(code = ?s.code(), why = s.message(), "refused a snapshot");
    }
}

pub(crate) fn role_of(role: raft::StateRole, learner: bool) -> Role {
    match role {
        raft::StateRole::Leader => Role::Leader,
        raft::StateRole::Candidate => Role::Candidate,
        raft::StateRole::PreCandidate => Role::PreCandidate,
        raft::StateRole::Follower if learner => Role::Learner,
        raft::StateRole::Follower => Role::Follower,
    }
}

#[tonic::async_trait]
impl Peer for PeerService {
    async fn send(&self, request: Request<RaftBatch>) -> Result<Response<SendAck>, Status> {
        let batch = request.into_inner();
        self.check(batch.from_node, batch.to_node)?;
        let mut stepped = 0;
        for bytes in &batch.messages {
            let Ok(m) = Message::parse_from_bytes(bytes) else {
                continue;
            };
            // Snapshots only travel through InstallSnapshot, where they are checked.
            if m.get_msg_type() == MessageType::MsgSnapshot {
                continue;
            }
            if self.handle.peer_event(PeerEvent::Message(m)) {
                stepped += 1;
            }
        }
        Ok(Response::new(SendAck {
            node_id: self.handle.id,
            stepped_messages: stepped,
        }))
    }

    async fn install_snapshot(
        &self,
        request: Request<Streaming<SnapshotChunk>>,
    ) -> Result<Response<SnapshotAck>, Status> {
        // Bounded and validated in `snapshot_intake`; only a snapshot that passed every
        // check is stepped. Its stream permit is held until the node has it.
        let received = self
            .intake
            .receive(request.into_inner(), |from, to| self.check(from, to))
            .await
            .inspect_err(log_refused_snapshot)?;
        let accepted = self
            .handle
            .peer_event_wait(PeerEvent::Message(received.message))
            .await;
        drop(received.permit);
        Ok(Response::new(SnapshotAck {
            node_id: self.handle.id,
            received_bytes: received.bytes,
            accepted,
        }))
    }

    async fn forward(
        &self,
        request: Request<ForwardRequest>,
    ) -> Result<Response<ForwardReply>, Status> {
        let req = request.into_inner();
        self.check(req.from_node, self.handle.id)?;
        let wait = match req.timeout_ms {
            0 => FORWARD_TIMEOUT_DEFAULT,
            ms => Duration::from_millis(ms),
        };
        let answer = tokio::time::timeout(wait, self.handle.propose(req.payload)).await;
        let reply = |outcome: ForwardOutcome, result: Vec<u8>, log_index, leader_id| {
            Ok(Response::new(ForwardReply {
                outcome: outcome as i32,
                result,
                log_index,
                leader_id,
            }))
        };
        match answer {
            Ok(Ok(Reply::Applied { index, outcome })) => {
                reply(ForwardOutcome::Applied, outcome, index, self.handle.id)
            }
            Ok(Err(RequestError::NotLeader { leader })) => reply(
                ForwardOutcome::NotLeader,
                Vec::new(),
                0,
                leader.unwrap_or(0),
            ),
            Ok(Err(RequestError::Busy { queue })) => {
                Err(Status::resource_exhausted(format!("{queue} is full")))
            }
            Ok(Err(e)) if !e.is_retryable() => Err(Status::invalid_argument(e.to_string())),
            Ok(Ok(_)) | Ok(Err(_)) | Err(_) => reply(ForwardOutcome::Unknown, Vec::new(), 0, 0),
        }
    }

    async fn status(
        &self,
        request: Request<StatusRequest>,
    ) -> Result<Response<NodeStatus>, Status> {
        let from = request.into_inner().from_node;
        self.check(from, self.handle.id)?;
        let st = self
            .handle
            .status()
            .await
            .map_err(|e| Status::unavailable(e.to_string()))?;
        let learner = st.learners.contains(&st.id);
        Ok(Response::new(NodeStatus {
            node_id: st.id,
            term: st.term,
            leader_id: st.leader_id,
            applied_index: st.applied_index,
            commit_index: st.commit_index,
            state_hash: st.state_hash.to_vec(),
            role: role_of(st.role, learner) as i32,
            last_index: st.last_index,
            snapshot_index: st.snapshot_index,
            applied_log_time_ms: st.applied_log_time_ms,
        }))
    }
}
