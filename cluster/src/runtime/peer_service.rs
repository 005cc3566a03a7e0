//! The `ninety.peer.v1.Peer` service: what a node serves to the other nodes.
//!
//! Incoming Raft batches are decoded (rust-protobuf 2 inside prost) and queued to the node
//! task without waiting: a full queue drops them, which Raft tolerates. Snapshots arrive as
//! a client stream of chunks, bounded and validated by `snapshot_intake` (size, streams,
//! timeouts, SHA-256, format and decoding) and only then stepped.
//! `Forward` lets a follower hand a client's command to this node when it leads.
//!
//! **Who may call** ([`PeerGate`]): every RPC is authorised before anything is decoded into
//! Raft. The sender's node id is the one its TLS client certificate names
//! (`security::identity`; without `[tls]`, the claimed `from_node`); the claimed
//! `from_node`, the `from` of every Raft message and a snapshot's `from` must be that id,
//! every `to` this node, and the id must be a member (see [`Members`]). A refusal is
//! counted (`NodeStatus.refused_peer_messages`), logged at WARN (at most once per
//! [`REFUSAL_WARN_INTERVAL`]) and answered `UNAUTHENTICATED` or `PERMISSION_DENIED`.
//! Then the call's stamp ([`PeerGate::check_stamp`]): `Send`, `Forward` and
//! `InstallSnapshot` (the first chunk's stamp; every chunk must state the same) of another
//! cluster, or presenting an incarnation other than the member registry's record for the
//! sender, are refused `FAILED_PRECONDITION` the same way; an incarnation the registry
//! lacks is reported to the node task, which registers it as leader. While the node is
//! deciding how to start an empty store, Raft traffic is refused `UNAVAILABLE` and
//! `Status` answers `starting = true`.

use super::driver::{NodeHandle, PeerEvent};
use super::snapshot_intake::SnapshotIntake;
use super::transport::{Faults, PeerBook};
use crate::eraftpb::{Message, MessageType};
use crate::node::Reply;
use crate::RequestError;
use arc_swap::ArcSwap;
use ninety_proto::peer::v1::{
    peer_server::Peer, ForwardOutcome, ForwardReply, ForwardRequest, NodeStatus, RaftBatch, Role,
    SendAck, SnapshotAck, SnapshotChunk, StatusRequest,
};
use protobuf::Message as _;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tonic::{Request, Response, Status, Streaming};

/// How long a forwarded proposal may wait for its outcome when the caller gives no timeout.
pub const FORWARD_TIMEOUT_DEFAULT: Duration = Duration::from_secs(5);

/// A node's view of the current Raft configuration, published by the node task after
/// every change and read lock-free by the peer service.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Members {
    /// Voters (incoming and, in a joint configuration, outgoing), learners and learners
    /// to be: everyone Raft may exchange messages with.
    pub ids: BTreeSet<u64>,
}

impl Members {
    /// The members of a configuration (`ConfState`).
    pub fn of(cs: &crate::eraftpb::ConfState) -> Members {
        let lists = [
            &cs.voters,
            &cs.voters_outgoing,
            &cs.learners,
            &cs.learners_next,
        ];
        Members {
            ids: lists.into_iter().flatten().copied().collect(),
        }
    }
}

/// At most one WARN per this interval about refused peer messages (each is still counted).
pub const REFUSAL_WARN_INTERVAL: Duration = Duration::from_secs(1);

/// The peer authorisation of one node: who is a member, whether identities come from
/// certificates, and the count of refusals.
#[derive(Debug)]
pub struct PeerGate {
    me: u64,
    /// True when `[tls]` is configured: the certificate names the sender.
    tls: bool,
    members: ArcSwap<Members>,
    /// Used while this node has no configuration (joining): its address book.
    book: Arc<PeerBook>,
    refused: AtomicU64,
    last_warn: Mutex<Option<Instant>>,
    /// Node id → incarnation, from the applied member registry (published by the node task).
    incarnations: ArcSwap<BTreeMap<u64, u64>>,
    /// When each unregistered incarnation was last reported to the node task.
    reported: Mutex<BTreeMap<u64, Instant>>,
    /// True until the node has decided how to start (an empty store asks its peers first):
    /// Raft traffic is refused `UNAVAILABLE`, `Status` answers with an empty state.
    starting: AtomicBool,
}

/// A member presenting an incarnation the registry does not record yet is reported to the
/// node task (which proposes its registration as leader) at most once per this interval.
pub const REGISTRATION_REPORT_INTERVAL: Duration = Duration::from_secs(1);

/// A refused peer call.
type Refusal = Status;

impl PeerGate {
    pub fn new(me: u64, tls: bool, book: Arc<PeerBook>) -> Self {
        PeerGate {
            me,
            tls,
            members: ArcSwap::from_pointee(Members::default()),
            book,
            refused: AtomicU64::new(0),
            last_warn: Mutex::new(None),
            incarnations: ArcSwap::from_pointee(BTreeMap::new()),
            reported: Mutex::new(BTreeMap::new()),
            starting: AtomicBool::new(false),
        }
    }

    /// Marks the node as starting (true) or started (false); see [`PeerGate::is_starting`].
    pub fn set_starting(&self, starting: bool) {
        self.starting.store(starting, Ordering::SeqCst);
    }

    /// Whether the node is still deciding how to start.
    pub fn is_starting(&self) -> bool {
        self.starting.load(Ordering::SeqCst)
    }

    /// Publishes the registry's incarnations (from the node task; cheap when unchanged).
    pub fn publish_incarnations(&self, incarnations: BTreeMap<u64, u64>) {
        if **self.incarnations.load() != incarnations {
            self.incarnations.store(Arc::new(incarnations));
        }
    }

    /// The incarnation the registry records for `node`.
    pub fn recorded_incarnation(&self, node: u64) -> Option<u64> {
        self.incarnations.load().get(&node).copied()
    }

    /// Checks the cluster id and incarnation an authorised call from `from` states, for
    /// `procedure` (the RPC). Returns `Some(incarnation)` when the registry records none for
    /// `from` yet and it is due to be reported (the node task registers it as leader).
    /// Empty / 0 means "not stated" (a build before identities, a tool) and is not checked.
    pub fn check_stamp(
        &self,
        from: u64,
        cluster_id: &str,
        incarnation: u64,
        procedure: &str,
    ) -> Result<Option<u64>, Refusal> {
        let mine = self.book.stamp().cluster_id;
        if !cluster_id.is_empty() && !mine.is_empty() && cluster_id != mine {
            let why = format!(
                "{procedure} from node {from} of cluster {cluster_id}: this is node {} of                  cluster {mine}",
                self.me
            );
            return Err(self.refuse(Status::failed_precondition(why), Some(from), Some(from)));
        }
        if incarnation == 0 {
            return Ok(None);
        }
        match self.recorded_incarnation(from) {
            Some(recorded) if recorded != incarnation => {
                let why = format!(
                    "{procedure} from node {from} presenting incarnation {incarnation:016x},                      but the member registry records {recorded:016x}: node {from} lost its                      data and must be replaced ({})",
                    crate::node::startup::REPLACE_PROCEDURE
                );
                Err(self.refuse(Status::failed_precondition(why), Some(from), Some(from)))
            }
            Some(_) => Ok(None),
            None => Ok(self.report_due(from).then_some(incarnation)),
        }
    }

    fn report_due(&self, node: u64) -> bool {
        let Ok(mut reported) = self.reported.lock() else {
            return false;
        };
        let now = Instant::now();
        let due = reported
            .get(&node)
            .is_none_or(|t| now.duration_since(*t) >= REGISTRATION_REPORT_INTERVAL);
        if due {
            reported.insert(node, now);
        }
        due
    }

    /// Refuses Raft traffic while the node is still deciding how to start.
    pub fn check_started(&self) -> Result<(), Status> {
        if self.is_starting() {
            return Err(Status::unavailable(format!(
                "node {} is starting (asking its peers how to start an empty data directory)",
                self.me
            )));
        }
        Ok(())
    }

    /// Publishes the current configuration (from the node task; cheap when unchanged).
    pub fn publish(&self, members: Members) {
        if **self.members.load() != members {
            self.members.store(Arc::new(members));
        }
    }

    /// Peer calls refused since start.
    pub fn refused(&self) -> u64 {
        self.refused.load(Ordering::Relaxed)
    }

    fn is_member(&self, id: u64) -> bool {
        let m = self.members.load();
        if m.ids.is_empty() {
            // A node being added has no configuration until the leader's snapshot: it
            // hears from the nodes of its address book.
            return self.book.peer(id).is_some();
        }
        m.ids.contains(&id)
    }

    /// Counts a refusal and logs it (rate limited); `claimed` is `None` when the call's
    /// claim was not read yet.
    fn refuse(&self, status: Status, claimed: Option<u64>, proven: Option<u64>) -> Refusal {
        self.refused.fetch_add(1, Ordering::Relaxed);
        let now = Instant::now();
        let warn = match self.last_warn.lock() {
            Ok(mut last) => {
                let due = last.is_none_or(|t| now.duration_since(t) >= REFUSAL_WARN_INTERVAL);
                if due {
                    *last = Some(now);
                }
                due
            }
            Err(_) => false,
        };
        if warn {
            tracing::warn!(
                claimed = ?claimed,
                proven = ?proven,
                refused_total = self.refused(),
                reason = %status.message(),
                "refused a peer message"
            );
        }
        status
    }

    /// The node id the caller's certificate names: `None` without TLS (the claim then
    /// stands for the identity). `Err` when there is no certificate or it names no node.
    pub fn certified<T>(&self, request: &Request<T>) -> Result<Option<u64>, Refusal> {
        if !self.tls {
            return Ok(None);
        }
        let certs = request.peer_certs();
        let Some(der) = certs.as_ref().and_then(|c| c.first()) else {
            return Err(self.refuse(
                Status::unauthenticated("no client certificate on the peer connection"),
                None,
                None,
            ));
        };
        match &crate::security::identity::named(der).node {
            Ok(Some(id)) => Ok(Some(*id)),
            Ok(None) => Err(self.refuse(
                Status::permission_denied("the client certificate names no node"),
                None,
                None,
            )),
            Err(e) => Err(self.refuse(
                Status::permission_denied(format!("client certificate: {e}")),
                None,
                None,
            )),
        }
    }

    /// Authorises a call from `proven` claiming `claimed`, addressed to `to`.
    pub fn authorize(&self, proven: u64, claimed: u64, to: u64) -> Result<(), Refusal> {
        if proven == 0 {
            return Err(self.refuse(
                Status::unauthenticated("no sender identity (from_node 0 without TLS)"),
                Some(claimed),
                None,
            ));
        }
        let deny =
            |why: String| self.refuse(Status::permission_denied(why), Some(claimed), Some(proven));
        if claimed != proven {
            return Err(deny(format!(
                "from_node {claimed} is not the sender, node {proven}"
            )));
        }
        if to != self.me {
            return Err(deny(format!("this is node {}, not node {to}", self.me)));
        }
        if !self.is_member(proven) {
            return Err(deny(format!("node {proven} is not a member")));
        }
        Ok(())
    }

    /// Authorises one Raft message of an authorised call from `proven`.
    pub fn authorize_message(&self, proven: u64, m: &Message) -> Result<(), Refusal> {
        if m.get_from() != proven || m.get_to() != self.me {
            return Err(self.refuse(
                Status::permission_denied(format!(
                    "a {:?} from {} to {} in a call from node {proven} to node {}",
                    m.get_msg_type(),
                    m.get_from(),
                    m.get_to(),
                    self.me
                )),
                Some(m.get_from()),
                Some(proven),
            ));
        }
        Ok(())
    }
}

/// The Peer service of one node.
pub struct PeerService {
    pub handle: NodeHandle,
    pub faults: Arc<Faults>,
    pub gate: Arc<PeerGate>,
    /// Limits and checks for received snapshots.
    pub intake: SnapshotIntake,
}

impl PeerService {
    /// Authorises a call whose certificate named `certified` (see
    /// [`PeerGate::certified`]) and applies fault injection; returns the sender's node id.
    fn check(&self, certified: Option<u64>, claimed: u64, to: u64) -> Result<u64, Status> {
        let proven = certified.unwrap_or(claimed);
        self.gate.authorize(proven, claimed, to)?;
        self.fault_check(proven)?;
        Ok(proven)
    }

    /// `InstallSnapshot` after the certificate and start checks: the stream through the
    /// intake (sender check per chunk, the stamp check as for `Send`, limits, validation),
    /// then the snapshot stepped.
    pub(crate) async fn receive_snapshot<S>(
        &self,
        certified: Option<u64>,
        stream: S,
    ) -> Result<Response<SnapshotAck>, Status>
    where
        S: tokio_stream::Stream<Item = Result<SnapshotChunk, Status>>,
    {
        let sender = |from, to| self.check(certified, from, to).map(drop);
        let stamp = |from, cluster_id: &str, incarnation| {
            self.gate
                .check_stamp(from, cluster_id, incarnation, "InstallSnapshot")
                .map(drop)
        };
        let received = self
            .intake
            .receive(stream, sender, stamp)
            .await
            .inspect_err(log_refused_snapshot)?;
        let meta = received.message.get_snapshot().get_metadata();
        let (index, term) = (meta.index, meta.term);
        let accepted = self
            .handle
            .peer_event_wait(PeerEvent::Message(received.message))
            .await;
        drop(received.permit);
        if accepted {
            self.handle.counters().snapshots_received.inc();
            tracing::info!(
                index,
                term,
                bytes = received.bytes,
                "snapshot received and handed to Raft"
            );
        }
        Ok(Response::new(SnapshotAck {
            node_id: self.handle.id,
            received_bytes: received.bytes,
            accepted,
        }))
    }

    fn fault_check(&self, from: u64) -> Result<(), Status> {
        if self.faults.is_blocked(from) {
            return Err(Status::unavailable(
                "fault injection: partitioned from caller",
            ));
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
        Code::Unauthenticated
            | Code::PermissionDenied
            | Code::Unavailable
            | Code::FailedPrecondition
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
        let certified = self.gate.certified(&request)?;
        let batch = request.into_inner();
        let from = self.check(certified, batch.from_node, batch.to_node)?;
        self.gate.check_started()?;
        let unregistered =
            self.gate
                .check_stamp(from, &batch.cluster_id, batch.incarnation, "Send")?;
        if let Some(incarnation) = unregistered {
            self.handle.peer_event(PeerEvent::Incarnation {
                node: from,
                incarnation,
            });
        }
        // Every message is checked before any is stepped: one forged message refuses the
        // whole batch.
        let mut messages = Vec::with_capacity(batch.messages.len());
        for bytes in &batch.messages {
            let Ok(m) = Message::parse_from_bytes(bytes) else {
                continue;
            };
            self.gate.authorize_message(from, &m)?;
            // Snapshots only travel through InstallSnapshot, where they are checked.
            if m.get_msg_type() != MessageType::MsgSnapshot {
                messages.push(m);
            }
        }
        let mut stepped = 0;
        for m in messages {
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
        // Authorised chunk by chunk (the head's `from`/`to` must equal the chunk's), bounded
        // and validated in `snapshot_intake`; only a snapshot that passed every check is
        // stepped. Its stream permit is held until the node has it.
        let certified = self.gate.certified(&request)?;
        self.gate.check_started()?;
        self.receive_snapshot(certified, request.into_inner()).await
    }

    async fn forward(
        &self,
        request: Request<ForwardRequest>,
    ) -> Result<Response<ForwardReply>, Status> {
        let certified = self.gate.certified(&request)?;
        let req = request.into_inner();
        let from = self.check(certified, req.from_node, self.handle.id)?;
        self.gate.check_started()?;
        self.gate
            .check_stamp(from, &req.cluster_id, req.incarnation, "Forward")?;
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
        let certified = self.gate.certified(&request)?;
        // 0 asks the certificate to name the caller. No fault injection here: Status is
        // not Raft traffic, and tests read it from partitioned nodes.
        let claimed = match request.into_inner().from_node {
            0 => certified.unwrap_or(0),
            n => n,
        };
        self.gate
            .authorize(certified.unwrap_or(claimed), claimed, self.handle.id)?;
        if self.gate.is_starting() {
            return Ok(Response::new(self.starting_status()));
        }
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
            refused_peer_messages: self.gate.refused(),
            cluster_id: self.gate.book.stamp().cluster_id,
            asker_incarnation: self.gate.recorded_incarnation(claimed),
            voters: st.voters.clone(),
            starting: false,
        }))
    }
}

impl PeerService {
    /// The status of a node still deciding how to start: no log, no configuration.
    fn starting_status(&self) -> NodeStatus {
        NodeStatus {
            node_id: self.handle.id,
            role: Role::Follower as i32,
            refused_peer_messages: self.gate.refused(),
            cluster_id: self.gate.book.stamp().cluster_id,
            starting: true,
            ..Default::default()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::config::NodeAddrs;
    use tonic::Code;

    fn gate() -> PeerGate {
        let addr = |p: u16| NodeAddrs {
            peer: format!("127.0.0.1:{p}"),
            client: format!("127.0.0.1:{}", p + 1),
        };
        let book = [(1, addr(10)), (2, addr(20)), (4, addr(40))].into();
        PeerGate::new(1, false, Arc::new(PeerBook::new(book)))
    }

    fn code(r: Result<(), Status>) -> Option<Code> {
        r.err().map(|s| s.code())
    }

    #[test]
    fn only_members_speak_for_themselves_to_this_node() {
        let g = gate();
        // No configuration yet (joining): the address book decides.
        assert_eq!(code(g.authorize(4, 4, 1)), None);
        assert_eq!(code(g.authorize(9, 9, 1)), Some(Code::PermissionDenied));
        g.publish(Members {
            ids: [1, 2, 3].into(),
        });
        assert_eq!(code(g.authorize(3, 3, 1)), None);
        assert_eq!(code(g.authorize(4, 4, 1)), Some(Code::PermissionDenied));
        assert_eq!(code(g.authorize(2, 3, 1)), Some(Code::PermissionDenied));
        assert_eq!(code(g.authorize(2, 2, 5)), Some(Code::PermissionDenied));
        assert_eq!(code(g.authorize(0, 0, 1)), Some(Code::Unauthenticated));
        let mut m = Message::default();
        m.set_from(2);
        m.set_to(1);
        assert_eq!(code(g.authorize_message(2, &m)), None);
        assert_eq!(
            code(g.authorize_message(3, &m)),
            Some(Code::PermissionDenied)
        );
        m.set_to(3);
        assert_eq!(
            code(g.authorize_message(2, &m)),
            Some(Code::PermissionDenied)
        );
        assert_eq!(g.refused(), 7);
    }

    /// `InstallSnapshot` passes the same stamp check as `Send`: a stream from another
    /// cluster, or from an incarnation of the sender the registry does not record, is
    /// refused before anything is kept or stepped.
    #[tokio::test]
    async fn a_snapshot_of_another_cluster_or_incarnation_is_refused() {
        use super::super::snapshot_intake::IntakeLimits;
        use super::super::transport::Stamp;
        use sha2::{Digest, Sha256};
        let g = Arc::new(gate());
        g.book.set_stamp(Stamp {
            cluster_id: "c1".into(),
            incarnation: 5,
            ..Default::default()
        });
        g.publish(Members {
            ids: [1, 2, 3].into(),
        });
        g.publish_incarnations([(2, 9)].into());
        let (handle, _inbox) = super::super::driver::channels(1, 16);
        let svc = PeerService {
            handle,
            faults: Arc::new(Faults::new(None)),
            gate: g.clone(),
            intake: SnapshotIntake::new(IntakeLimits::default()),
        };
        let mut head = Message::default();
        head.set_msg_type(MessageType::MsgSnapshot);
        (head.from, head.to) = (2, 1);
        let chunk = |cluster_id: &str, incarnation: u64| SnapshotChunk {
            from_node: 2,
            to_node: 1,
            raft_message: head.write_to_bytes().unwrap(),
            data: b"x".to_vec(),
            offset: 0,
            last: true,
            total_bytes: 1,
            data_sha256: Sha256::digest(b"x").to_vec(),
            cluster_id: cluster_id.into(),
            incarnation,
            region: String::new(),
        };
        let receive = |c: SnapshotChunk| svc.receive_snapshot(None, tokio_stream::iter([Ok(c)]));
        for (cluster, incarnation, says) in [("c2", 9, "of cluster c2"), ("c1", 8, "lost its")] {
            let status = receive(chunk(cluster, incarnation)).await.unwrap_err();
            assert_eq!(status.code(), Code::FailedPrecondition, "{status:?}");
            assert!(status.message().contains(says), "{status:?}");
        }
        assert_eq!(g.refused(), 2);
        // The recorded incarnation passes the stamp check (one byte is no snapshot, though).
        let status = receive(chunk("c1", 9)).await.unwrap_err();
        assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
        assert_eq!(g.refused(), 2);
    }

    #[test]
    fn members_include_outgoing_voters_and_learners() {
        let cs = crate::eraftpb::ConfState {
            voters: vec![1, 2],
            voters_outgoing: vec![3],
            learners: vec![4],
            learners_next: vec![5],
            ..Default::default()
        };
        assert_eq!(Members::of(&cs).ids, [1, 2, 3, 4, 5].into());
    }
}
