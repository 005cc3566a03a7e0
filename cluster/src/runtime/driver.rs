//! The node task: the single owner of the [`Node`], driving it with tokio.
//!
//! Everything that touches the node goes through one of two bounded queues: client
//! commands ([`Cmd`], full → `Busy` → `RESOURCE_EXHAUSTED`) and peer events ([`PeerEvent`],
//! full → dropped, which Raft recovers from by retransmitting). The loop wakes on a tick or
//! on any input, drains what else is queued (group commit: one durable write for all of it),
//! polls the node, answers completions and hands messages to the transport.
//!
//! After every poll the node task publishes the current configuration's members to the
//! peer service's [`PeerGate`] (lock-free, `arc-swap`): who may send Raft messages here.
//!
//! `Node::poll` does synchronous fsyncs, so it runs under `block_in_place`: the runtime moves
//! the gRPC tasks to another worker while the disk works.

use super::peer_service::{Members, PeerGate};
use super::transport::{Faults, GrpcTransport};
use crate::engine_sm::{EngineMachine, QueryResult};
use crate::eraftpb::Message;
use crate::error::{Error, RequestError};
use crate::node::{config::TICK_INTERVAL_MS, Input, MembershipChange, Node, Reply};
use crate::storage::SledStore;
use crate::{Clock, StateMachine};
use raft::StateRole;
use std::collections::HashMap;
use std::sync::Arc;
use tokio::sync::{mpsc, oneshot};

/// Client commands waiting for the node task (default; `max_queued_commands` in the node's
/// TOML). A `ProposeMany` takes one slot for all of its items.
pub const COMMAND_QUEUE_MAX: usize = 4096;
/// Peer messages waiting for the node task; more are dropped (Raft retransmits).
pub const EVENT_QUEUE_MAX: usize = 4096;
/// Inputs taken per wake-up before polling, so one poll (one fsync) covers a burst while a
/// flood cannot delay ticks indefinitely.
const DRAIN_MAX: usize = 1024;

/// The node's answer to one request.
pub type Answer = Result<Reply, RequestError>;

/// A request from the API layer.
#[derive(Debug)]
pub enum Cmd {
    Propose {
        command: Vec<u8>,
        reply: oneshot::Sender<Answer>,
    },
    /// Several commands proposed together: one queue slot, admitted all or none by the
    /// pending-proposal bound, answered together once every item is, in their order.
    ProposeMany {
        commands: Vec<Vec<u8>>,
        reply: oneshot::Sender<Vec<Answer>>,
    },
    Read {
        query: Vec<u8>,
        reply: oneshot::Sender<Answer>,
    },
    /// Answered from the local state as it is (may lag the leader), with the applied index
    /// it was read at.
    LocalQuery {
        query: Vec<u8>,
        reply: oneshot::Sender<(u64, Vec<u8>)>,
    },
    ChangeMembership {
        change: MembershipChange,
        reply: oneshot::Sender<Answer>,
    },
    TransferLeader {
        to: u64,
        reply: oneshot::Sender<Answer>,
    },
    Status {
        reply: oneshot::Sender<StatusInfo>,
    },
    SnapshotNow {
        reply: oneshot::Sender<Result<SnapshotInfo, String>>,
    },
}

/// What arrives from peers (or from the transport's own tasks).
#[derive(Debug)]
pub enum PeerEvent {
    Message(Message),
    Unreachable(u64),
    SnapshotStatus {
        peer: u64,
        delivered: bool,
    },
    /// A member presented an incarnation the registry does not record (the peer gate saw
    /// it): the leader registers it.
    Incarnation {
        node: u64,
        incarnation: u64,
    },
}

/// A node's status, as the API reports it.
#[derive(Debug, Clone)]
pub struct StatusInfo {
    pub id: u64,
    pub role: StateRole,
    pub term: u64,
    pub leader_id: u64,
    pub commit_index: u64,
    pub applied_index: u64,
    pub last_index: u64,
    pub snapshot_index: u64,
    pub applied_log_time_ms: u64,
    pub state_hash: [u8; 32],
    pub voters: Vec<u64>,
    pub learners: Vec<u64>,
    /// As leader: (peer, matched index, recently active).
    pub progress: Vec<(u64, u64, bool)>,
}

/// A snapshot taken on request.
#[derive(Debug, Clone)]
pub struct SnapshotInfo {
    pub index: u64,
    pub term: u64,
    pub bytes: u64,
    pub state_hash: [u8; 32],
}

/// A cheap, cloneable way to talk to the node task.
#[derive(Clone, Debug)]
pub struct NodeHandle {
    pub id: u64,
    cmds: mpsc::Sender<Cmd>,
    events: mpsc::Sender<PeerEvent>,
}

fn stopped() -> RequestError {
    RequestError::Busy {
        queue: "node (stopping)",
    }
}

impl NodeHandle {
    fn submit(&self, cmd: Cmd) -> Result<(), RequestError> {
        self.cmds.try_send(cmd).map_err(|e| match e {
            mpsc::error::TrySendError::Full(_) => RequestError::Busy {
                queue: "node command queue",
            },
            mpsc::error::TrySendError::Closed(_) => stopped(),
        })
    }

    async fn ask(&self, make: impl FnOnce(oneshot::Sender<Answer>) -> Cmd) -> Answer {
        let (tx, rx) = oneshot::channel();
        self.submit(make(tx))?;
        rx.await.unwrap_or_else(|_| Err(stopped()))
    }

    /// Proposes a command; resolves once it is applied on this node (or failed).
    pub async fn propose(&self, command: Vec<u8>) -> Answer {
        self.ask(|reply| Cmd::Propose { command, reply }).await
    }

    /// Proposes several commands through one command-queue slot; resolves once every one
    /// is applied on this node (or failed), with their answers in order. When the
    /// pending-proposal bound has no room for all of them, every item is `Busy`.
    pub async fn propose_many(&self, commands: Vec<Vec<u8>>) -> Vec<Answer> {
        let n = commands.len();
        if n == 0 {
            return Vec::new();
        }
        let (tx, rx) = oneshot::channel();
        let failed = |e: RequestError| (0..n).map(|_| Err(e.clone())).collect();
        if let Err(e) = self.submit(Cmd::ProposeMany {
            commands,
            reply: tx,
        }) {
            return failed(e);
        }
        rx.await.unwrap_or_else(|_| failed(stopped()))
    }

    /// A linearizable read (ReadIndex), on any member.
    pub async fn read(&self, query: Vec<u8>) -> Answer {
        self.ask(|reply| Cmd::Read { query, reply }).await
    }

    pub async fn change_membership(&self, change: MembershipChange) -> Answer {
        self.ask(|reply| Cmd::ChangeMembership { change, reply })
            .await
    }

    pub async fn transfer_leader(&self, to: u64) -> Answer {
        self.ask(|reply| Cmd::TransferLeader { to, reply }).await
    }

    /// A read of the local state without any Raft round: the applied index it was read at
    /// and the answer.
    pub async fn local_query(&self, query: Vec<u8>) -> Result<(u64, Vec<u8>), RequestError> {
        let (tx, rx) = oneshot::channel();
        self.submit(Cmd::LocalQuery { query, reply: tx })?;
        rx.await.map_err(|_| stopped())
    }

    pub async fn status(&self) -> Result<StatusInfo, RequestError> {
        let (tx, rx) = oneshot::channel();
        self.submit(Cmd::Status { reply: tx })?;
        rx.await.map_err(|_| stopped())
    }

    pub async fn snapshot_now(&self) -> Result<SnapshotInfo, RequestError> {
        let (tx, rx) = oneshot::channel();
        self.submit(Cmd::SnapshotNow { reply: tx })?;
        rx.await
            .map_err(|_| stopped())?
            .map_err(RequestError::Internal)
    }

    /// Hands a peer event to the node; dropped when the queue is full (Raft recovers).
    pub fn peer_event(&self, event: PeerEvent) -> bool {
        self.events.try_send(event).is_ok()
    }

    /// Hands a peer event to the node, waiting for room (for snapshots, too costly to drop).
    pub async fn peer_event_wait(&self, event: PeerEvent) -> bool {
        self.events.send(event).await.is_ok()
    }
}

/// The queues' receiving ends, consumed by [`run`].
pub struct Inbox {
    cmds: mpsc::Receiver<Cmd>,
    events: mpsc::Receiver<PeerEvent>,
}

/// Creates the queues of node `id`, the command queue holding `command_queue_max`.
pub fn channels(id: u64, command_queue_max: usize) -> (NodeHandle, Inbox) {
    let (ctx, crx) = mpsc::channel(command_queue_max.max(1));
    let (etx, erx) = mpsc::channel(EVENT_QUEUE_MAX);
    (
        NodeHandle {
            id,
            cmds: ctx,
            events: etx,
        },
        Inbox {
            cmds: crx,
            events: erx,
        },
    )
}

/// Wall time from the system clock: the only clock of a real node.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_ms(&self) -> u64 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or(0)
    }
}

type EngineNode = Node<SledStore, EngineMachine>;

/// Who waits for a request id.
enum Waiting {
    One(oneshot::Sender<Answer>),
    /// Item `slot` of group `group`.
    Item {
        group: u64,
        slot: usize,
    },
}

/// A `ProposeMany` collecting its items' answers.
struct Group {
    answers: Vec<Option<Answer>>,
    left: usize,
    reply: oneshot::Sender<Vec<Answer>>,
}

struct Driver {
    node: EngineNode,
    transport: GrpcTransport,
    gate: Arc<PeerGate>,
    next_id: u64,
    pending: HashMap<u64, Waiting>,
    groups: HashMap<u64, Group>,
}

impl Driver {
    fn register(&mut self, reply: oneshot::Sender<Answer>) -> u64 {
        self.next_id += 1;
        self.pending.insert(self.next_id, Waiting::One(reply));
        self.next_id
    }

    fn register_group(&mut self, n: usize, reply: oneshot::Sender<Vec<Answer>>) -> Vec<u64> {
        self.next_id += 1;
        let group = self.next_id;
        self.groups.insert(
            group,
            Group {
                answers: (0..n).map(|_| None).collect(),
                left: n,
                reply,
            },
        );
        (0..n)
            .map(|slot| {
                self.next_id += 1;
                self.pending
                    .insert(self.next_id, Waiting::Item { group, slot });
                self.next_id
            })
            .collect()
    }

    fn complete(&mut self, id: u64, result: Answer) {
        match self.pending.remove(&id) {
            None => {}
            Some(Waiting::One(tx)) => {
                let _ = tx.send(result);
            }
            Some(Waiting::Item { group, slot }) => {
                let Some(g) = self.groups.get_mut(&group) else {
                    return;
                };
                if let Some(a) = g.answers.get_mut(slot) {
                    if a.is_none() {
                        g.left -= 1;
                    }
                    *a = Some(result);
                }
                if g.left == 0 {
                    if let Some(g) = self.groups.remove(&group) {
                        let answers = g
                            .answers
                            .into_iter()
                            .map(|a| a.unwrap_or_else(|| Err(stopped())))
                            .collect();
                        let _ = g.reply.send(answers);
                    }
                }
            }
        }
    }

    fn status(&self) -> StatusInfo {
        let st = self.node.status();
        StatusInfo {
            id: st.id,
            role: st.role,
            term: st.term,
            leader_id: st.leader_id,
            commit_index: st.commit_index,
            applied_index: st.applied_index,
            last_index: self.node.last_index(),
            snapshot_index: self.node.snapshot_index(),
            applied_log_time_ms: self.node.applied_log_time_ms(),
            state_hash: self.node.state_machine().state_hash(),
            voters: st.conf_state.voters.clone(),
            learners: st.conf_state.learners.clone(),
            progress: self.node.progress(),
        }
    }

    fn on_cmd(&mut self, cmd: Cmd) -> Result<(), Error> {
        match cmd {
            Cmd::Propose { command, reply } => {
                let id = self.register(reply);
                self.node.step(Input::Propose { id, command });
            }
            Cmd::ProposeMany { commands, reply } => {
                let ids = self.register_group(commands.len(), reply);
                let items = ids.into_iter().zip(commands).collect();
                self.node.step(Input::ProposeMany { items });
            }
            Cmd::Read { query, reply } => {
                let id = self.register(reply);
                self.node.step(Input::Read { id, query });
            }
            Cmd::LocalQuery { query, reply } => {
                // The caller may have given up; nothing to do then.
                let index = self.node.status().applied_index;
                let _ = reply.send((index, self.local_query(&query)));
            }
            Cmd::ChangeMembership { change, reply } => {
                let id = self.register(reply);
                self.node.step(Input::ChangeMembership { id, change });
            }
            Cmd::TransferLeader { to, reply } => {
                let id = self.register(reply);
                self.node.step(Input::TransferLeader { id, to });
            }
            Cmd::Status { reply } => {
                let _ = reply.send(self.status());
            }
            Cmd::SnapshotNow { reply } => {
                let (index, term, bytes) =
                    tokio::task::block_in_place(|| self.node.snapshot_now())?;
                let info = SnapshotInfo {
                    index,
                    term,
                    bytes: bytes as u64,
                    state_hash: self.node.state_machine().state_hash(),
                };
                let _ = reply.send(Ok(info));
            }
        }
        Ok(())
    }

    /// A local read. A panic in it (a bug in a read) is answered as an undecodable query
    /// (`INTERNAL` at the API) instead of taking the node down: a read takes the state by
    /// shared reference, so the state is as it was.
    fn local_query(&self, query: &[u8]) -> Vec<u8> {
        let sm = self.node.state_machine();
        crate::node::catch_panic(|| sm.query(query)).unwrap_or_else(|message| {
            tracing::error!(%message, "the state machine panicked answering a local read");
            let answer = QueryResult::Invalid(format!("the read panicked: {message}"));
            // Empty bytes, if even this failed to encode, are an undecodable answer too.
            postcard::to_stdvec(&answer).unwrap_or_default()
        })
    }

    fn on_event(&mut self, event: PeerEvent) {
        let input = match event {
            PeerEvent::Message(m) => Input::Message(m),
            PeerEvent::Unreachable(peer) => Input::Unreachable { peer },
            PeerEvent::SnapshotStatus { peer, delivered } => {
                Input::SnapshotStatus { peer, delivered }
            }
            PeerEvent::Incarnation { node, incarnation } => {
                Input::RegisterIncarnation { node, incarnation }
            }
        };
        self.node.step(input);
    }

    fn poll(&mut self) -> Result<(), Error> {
        let mut out = tokio::task::block_in_place(|| self.node.poll(&SystemClock))?;
        // Completions come from applied entries, which are committed (durable on a quorum),
        // so answering before sending this round's messages is safe.
        for c in out.completions.drain(..) {
            self.complete(c.id, c.result);
        }
        out.dispatch(&mut self.transport);
        for peer in self.transport.take_unreachable() {
            self.node.step(Input::Unreachable { peer });
        }
        self.publish_members();
        Ok(())
    }

    /// Tells the peer service who the members are now (a membership change applied in
    /// this poll takes effect for the next peer call).
    fn publish_members(&mut self) {
        self.gate
            .publish(Members::of(&self.node.status().conf_state));
        self.gate
            .publish_incarnations(self.node.known_incarnations());
    }
}

/// Runs the node until `stop` fires (or every handle is gone). An `Err` is fatal.
pub async fn run(
    node: EngineNode,
    inbox: Inbox,
    transport: GrpcTransport,
    faults: Arc<Faults>,
    gate: Arc<PeerGate>,
    mut stop: oneshot::Receiver<()>,
) -> Result<(), Error> {
    let Inbox {
        mut cmds,
        mut events,
    } = inbox;
    let mut d = Driver {
        node,
        transport,
        gate,
        next_id: 0,
        pending: HashMap::new(),
        groups: HashMap::new(),
    };
    d.publish_members();
    let mut tick = tokio::time::interval(std::time::Duration::from_millis(TICK_INTERVAL_MS));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            biased;
            _ = &mut stop => break,
            _ = tick.tick() => {
                d.node.step(Input::Tick);
                faults.reload();
            }
            Some(ev) = events.recv() => d.on_event(ev),
            Some(cmd) = cmds.recv() => d.on_cmd(cmd)?,
            else => break,
        }
        for _ in 0..DRAIN_MAX {
            match events.try_recv() {
                Ok(ev) => d.on_event(ev),
                Err(_) => break,
            }
        }
        for _ in 0..DRAIN_MAX {
            match cmds.try_recv() {
                Ok(cmd) => d.on_cmd(cmd)?,
                Err(_) => break,
            }
        }
        d.poll()?;
    }
    Ok(())
}
