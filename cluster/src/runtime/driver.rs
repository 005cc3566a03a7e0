//! The node task: the single owner of the [`Node`], driving it with tokio.
//!
//! Everything that touches the node goes through one of two bounded queues: client
//! commands ([`Cmd`], full → `Busy` → `RESOURCE_EXHAUSTED`) and peer events ([`PeerEvent`],
//! full → dropped, which Raft recovers from by retransmitting). The loop wakes on a tick or
//! on any input, drains what else is queued (group commit: one durable write for all of it),
//! polls the node (which hands its messages to the transport as soon as each may leave: a
//! leader's appends before its own fsync) and answers completions.
//!
//! After every poll the node task publishes the current configuration's members to the
//! peer service's [`PeerGate`] (lock-free, `arc-swap`): who may send Raft messages here;
//! and its [`Summary`] (role, term, leader, indexes, members, removed): what
//! [`NodeHandle::summary`] reads from any task without waiting for the node task, so "who
//! leads" stays cheap while the node task is busy.
//!
//! **The state hash** ([`NodeHandle::status`]) encodes and digests the whole state (0.8 s
//! with 8.19 M beds): the node task only takes an image of the state
//! (`StateMachine::image`: the engine's small records copied, its beds' chunks shared) and
//! the digest runs on a blocking thread, at most [`HASHES_INFLIGHT_MAX`] at a time (each
//! holds an image).
//!
//! **Snapshots** are written by the snapshot writer ([`super::snapshot_writer`]), a thread:
//! a poll that takes one hands out its job (an image, no encoding), the writer encodes and
//! writes the file, its report comes back as `Input::SnapshotWritten` (one more input of
//! the loop) and the node records it at the next poll. `SnapshotNow` asks the node for one
//! and is answered once it is recorded.
//!
//! **Pipelined writes.** The node's writes go to the persistence worker
//! ([`super::persist`]): a poll only queues them, and the node task goes on taking
//! proposals, acknowledgements and reads while the worker fdatasyncs; the worker's reports
//! come back as `Input::Persisted` (one more input of the loop), after which the node sends
//! what waited for the write. A poll can still wait on the disk (a received snapshot, a
//! local snapshot or a configuration change first waits for the queued writes), so it runs
//! under `block_in_place`: the runtime moves the gRPC tasks to another worker meanwhile.

use super::peer_service::{Members, PeerGate};
use super::persist::{Report, Worker};
use super::snapshot_writer::{self, Writer, Written};
use super::transport::{Faults, GrpcTransport};
use crate::engine_sm::EngineMachine;
use crate::eraftpb::Message;
use crate::error::{Error, RequestError};
use crate::metrics::NodeCounters;
use crate::node::{config::TICK_INTERVAL_MS, Input, MembershipChange, Node, Reply};
use crate::storage::LogStore;
use crate::{Clock, StateMachine};
use arc_swap::ArcSwap;
use raft::StateRole;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;
use tokio::sync::{mpsc, oneshot};

/// Client commands waiting for the node task (default; `max_queued_commands` in the node's
/// TOML). A `ProposeMany` takes one slot for all of its items.
pub const COMMAND_QUEUE_MAX: usize = 4096;
/// Peer messages waiting for the node task; more are dropped (Raft retransmits).
pub const EVENT_QUEUE_MAX: usize = 4096;
/// State hashes computed at once (each on a blocking thread with its own copy of the state);
/// more are refused `Busy`.
pub const HASHES_INFLIGHT_MAX: usize = 2;
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
    /// A ReadIndex round only: answered `Reply::ReadIndex` once the index is applied.
    ReadIndex { reply: oneshot::Sender<Answer> },
    /// Answered from the local state as it is (may lag the leader), with the applied index
    /// it was read at.
    LocalQuery {
        query: Vec<u8>,
        reply: oneshot::Sender<(u64, Vec<u8>)>,
    },
    ChangeMembership {
        change: MembershipChange,
        request: Option<u128>,
        reply: oneshot::Sender<Answer>,
    },
    TransferLeader {
        to: u64,
        reply: oneshot::Sender<Answer>,
    },
    /// The summary as of now, from the node task (after what was queued before it).
    Summary { reply: oneshot::Sender<Summary> },
    /// The status with the state hash (computed off the node task).
    Status {
        reply: oneshot::Sender<Result<StatusInfo, RequestError>>,
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

/// A node's status without the state hash, published by the node task after every poll
/// (module doc).
#[derive(Debug, Clone)]
pub struct Summary {
    pub id: u64,
    pub role: StateRole,
    pub term: u64,
    pub leader_id: u64,
    pub commit_index: u64,
    pub applied_index: u64,
    pub last_index: u64,
    pub snapshot_index: u64,
    pub applied_log_time_ms: u64,
    pub voters: Vec<u64>,
    pub learners: Vec<u64>,
    /// As leader: (peer, matched index, recently active).
    pub progress: Vec<(u64, u64, bool)>,
    /// This node applied a configuration without itself (`Node::removed`).
    pub removed: bool,
}

impl Summary {
    /// What is known of node `id` before its first poll: nothing.
    fn unknown(id: u64) -> Summary {
        Summary {
            id,
            role: StateRole::Follower,
            term: 0,
            leader_id: 0,
            commit_index: 0,
            applied_index: 0,
            last_index: 0,
            snapshot_index: 0,
            applied_log_time_ms: 0,
            voters: Vec::new(),
            learners: Vec::new(),
            progress: Vec::new(),
            removed: false,
        }
    }
}

/// A node's [`Summary`] and the hash of its state at the summary's `applied_index`.
#[derive(Debug, Clone)]
pub struct StatusInfo {
    pub summary: Summary,
    pub state_hash: [u8; 32],
}

impl std::ops::Deref for StatusInfo {
    type Target = Summary;

    fn deref(&self) -> &Summary {
        &self.summary
    }
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
    /// The node task's latest [`Summary`].
    board: Arc<ArcSwap<Summary>>,
    /// The node's event metrics (`metrics::node`).
    counters: NodeCounters,
}

fn stopped() -> RequestError {
    RequestError::Busy {
        queue: "node (stopping)",
    }
}

impl NodeHandle {
    fn submit(&self, cmd: Cmd) -> Result<(), RequestError> {
        self.cmds.try_send(cmd).map_err(|e| match e {
            mpsc::error::TrySendError::Full(_) => {
                self.counters.command_refused();
                RequestError::Busy {
                    queue: "node command queue",
                }
            }
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

    /// A ReadIndex round, on any member: the read index, once this node has applied it
    /// (every write acknowledged before the call is at or below it). For reads answered
    /// from the published view (`ViewCell::wait_for`), off the node task.
    pub async fn read_index(&self) -> Result<u64, RequestError> {
        match self.ask(|reply| Cmd::ReadIndex { reply }).await? {
            Reply::ReadIndex { index } => Ok(index),
            other => Err(RequestError::Internal(format!(
                "unexpected reply to a read index: {other:?}"
            ))),
        }
    }

    /// `request` is the client's request key, when the call named a `request_id`.
    pub async fn change_membership(
        &self,
        change: MembershipChange,
        request: Option<u128>,
    ) -> Answer {
        self.ask(|reply| Cmd::ChangeMembership {
            change,
            request,
            reply,
        })
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

    /// The node's status as of its last poll, without the state hash: read from what the
    /// node task published, never waiting for it.
    pub fn summary(&self) -> Arc<Summary> {
        self.board.load_full()
    }

    /// The node's summary from the node task itself: it reflects everything the node
    /// answered before (a membership change just applied included), which the published
    /// one may not yet (it is published after the answers of a poll go out).
    pub async fn current_summary(&self) -> Result<Summary, RequestError> {
        let (tx, rx) = oneshot::channel();
        self.submit(Cmd::Summary { reply: tx })?;
        rx.await.map_err(|_| stopped())
    }

    /// The node's status with the hash of its state (module doc: the digest runs off the
    /// node task); `Busy` when [`HASHES_INFLIGHT_MAX`] are being computed.
    pub async fn status(&self) -> Result<StatusInfo, RequestError> {
        let (tx, rx) = oneshot::channel();
        self.submit(Cmd::Status { reply: tx })?;
        rx.await.map_err(|_| stopped())?
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
        let sent = self.events.try_send(event);
        if matches!(sent, Err(mpsc::error::TrySendError::Full(_))) {
            self.counters.peer_event_dropped();
        }
        sent.is_ok()
    }

    /// The node's event metrics.
    pub fn counters(&self) -> &NodeCounters {
        &self.counters
    }

    /// Each queue's name, items waiting and capacity, read from the senders (for metrics).
    pub fn queue_depths(&self) -> [(&'static str, usize, usize); 2] {
        let depth = |max: usize, free: usize| max.saturating_sub(free);
        let (c, e) = (&self.cmds, &self.events);
        [
            (
                "commands",
                depth(c.max_capacity(), c.capacity()),
                c.max_capacity(),
            ),
            (
                "peer_events",
                depth(e.max_capacity(), e.capacity()),
                e.max_capacity(),
            ),
        ]
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
    board: Arc<ArcSwap<Summary>>,
    counters: NodeCounters,
}

/// Creates the queues of node `id`, the command queue holding `command_queue_max`.
pub fn channels(id: u64, command_queue_max: usize) -> (NodeHandle, Inbox) {
    let (ctx, crx) = mpsc::channel(command_queue_max.max(1));
    let (etx, erx) = mpsc::channel(EVENT_QUEUE_MAX);
    let board = Arc::new(ArcSwap::from_pointee(Summary::unknown(id)));
    let counters = NodeCounters::default();
    (
        NodeHandle {
            id,
            cmds: ctx,
            events: etx,
            board: board.clone(),
            counters: counters.clone(),
        },
        Inbox {
            cmds: crx,
            events: erx,
            board,
            counters,
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

type EngineNode = Node<LogStore, EngineMachine>;

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
    /// Where the node's [`Summary`] is published.
    board: Arc<ArcSwap<Summary>>,
    /// Permits for state hashes being computed.
    hashes: Arc<tokio::sync::Semaphore>,
    /// Whether the node's removal was logged (once).
    removal_logged: bool,
    /// The snapshot writer: encodes and writes the node's snapshot jobs off this task.
    writer: Writer,
    /// `SnapshotNow` callers: (applied index when they asked, reply); answered by the next
    /// requested snapshot at or past it once recorded.
    snapshot_waiters: Vec<(u64, oneshot::Sender<Result<SnapshotInfo, String>>)>,
    /// The last snapshot the writer reported, until the node recorded it (next poll).
    written: Option<Written>,
    /// The node's event metrics.
    counters: NodeCounters,
    /// When each proposal (a `Propose` id, a `ProposeMany` group id) reached the node task,
    /// for the commit-round histogram.
    proposed_at: HashMap<u64, Instant>,
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

    /// Observes a proposal's commit round, if `id` is one.
    fn observe_commit_round(&mut self, id: u64) {
        if let Some(at) = self.proposed_at.remove(&id) {
            self.counters.observe_commit_round(at.elapsed());
        }
    }

    fn complete(&mut self, id: u64, result: Answer) {
        match self.pending.remove(&id) {
            None => {}
            Some(Waiting::One(tx)) => {
                self.observe_commit_round(id);
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
                    self.observe_commit_round(group);
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

    fn summary(&self) -> Summary {
        let st = self.node.status();
        Summary {
            id: st.id,
            role: st.role,
            term: st.term,
            leader_id: st.leader_id,
            commit_index: st.commit_index,
            applied_index: st.applied_index,
            last_index: self.node.last_index(),
            snapshot_index: self.node.snapshot_index(),
            applied_log_time_ms: self.node.applied_log_time_ms(),
            voters: st.conf_state.voters.clone(),
            learners: st.conf_state.learners.clone(),
            progress: self.node.progress(),
            removed: st.removed,
        }
    }

    /// Answers with the status and the state hash: copies the state here, digests it on a
    /// blocking thread (module doc).
    fn status_with_hash(&self, reply: oneshot::Sender<Result<StatusInfo, RequestError>>) {
        let Ok(permit) = self.hashes.clone().try_acquire_owned() else {
            let busy = RequestError::Busy {
                queue: "state hash computations",
            };
            let _ = reply.send(Err(busy));
            return;
        };
        let summary = self.summary();
        let image = self.node.state_machine().image();
        tokio::task::spawn_blocking(move || {
            let state_hash = image.state_hash();
            drop(permit);
            let _ = reply.send(Ok(StatusInfo {
                summary,
                state_hash,
            }));
        });
    }

    fn on_cmd(&mut self, cmd: Cmd) -> Result<(), Error> {
        match cmd {
            Cmd::Propose { command, reply } => {
                let id = self.register(reply);
                self.proposed_at.insert(id, Instant::now());
                self.node.step(Input::Propose { id, command });
            }
            Cmd::ProposeMany { commands, reply } => {
                let ids = self.register_group(commands.len(), reply);
                // The group's id is the one before its first item's.
                if let Some(first) = ids.first() {
                    self.proposed_at.insert(first - 1, Instant::now());
                }
                let items = ids.into_iter().zip(commands).collect();
                self.node.step(Input::ProposeMany { items });
            }
            Cmd::Read { query, reply } => {
                let id = self.register(reply);
                self.node.step(Input::Read { id, query });
            }
            Cmd::ReadIndex { reply } => {
                let id = self.register(reply);
                self.node.step(Input::ReadIndex { id });
            }
            Cmd::LocalQuery { query, reply } => {
                // The caller may have given up; nothing to do then.
                let index = self.node.status().applied_index;
                let _ = reply.send((index, self.local_query(&query)));
            }
            Cmd::ChangeMembership {
                change,
                request,
                reply,
            } => {
                let id = self.register(reply);
                self.node.step(Input::ChangeMembership {
                    id,
                    change,
                    request,
                });
            }
            Cmd::TransferLeader { to, reply } => {
                let id = self.register(reply);
                self.node.step(Input::TransferLeader { id, to });
            }
            Cmd::Summary { reply } => {
                let _ = reply.send(self.summary());
            }
            Cmd::Status { reply } => self.status_with_hash(reply),
            Cmd::SnapshotNow { reply } => self.snapshot_now(reply),
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
            let answer = ninety_engine::Answer::Invalid(format!("the read panicked: {message}"));
            // Empty bytes, if even this failed to encode, are an undecodable answer too.
            postcard::to_stdvec(&answer).unwrap_or_default()
        })
    }

    /// The persistence worker made the writes up to a Ready durable (or stopped: fatal).
    fn on_persisted(&mut self, report: Report) -> Result<(), Error> {
        let number = report.map_err(Error::Storage)?;
        self.node.step(Input::Persisted { number });
        Ok(())
    }

    /// `SnapshotNow`: written off this task like every snapshot (`snapshot_writer`), the
    /// caller answered once it is recorded (`answer_snapshot_waiters`).
    fn snapshot_now(&mut self, reply: oneshot::Sender<Result<SnapshotInfo, String>>) {
        let applied = self.node.status().applied_index;
        if applied == 0 {
            // Nothing applied: no snapshot to take.
            let info = SnapshotInfo {
                index: 0,
                term: 0,
                bytes: 0,
                state_hash: self.node.state_machine().state_hash(),
            };
            let _ = reply.send(Ok(info));
            return;
        }
        self.node.request_snapshot();
        self.snapshot_waiters.push((applied, reply));
    }

    /// The snapshot writer wrote a job's file (or stopped: fatal): the node records it at
    /// its next poll.
    fn on_snapshot_written(&mut self, report: snapshot_writer::Report) -> Result<(), Error> {
        let written = report.map_err(Error::Storage)?;
        let snapshot = written.snapshot.clone();
        self.node.step(Input::SnapshotWritten { snapshot });
        self.written = Some(written);
        Ok(())
    }

    /// Answers the `SnapshotNow` callers that the last written snapshot serves, once the
    /// node recorded it (or a newer one): a requested snapshot at or past the applied index
    /// they saw.
    fn answer_snapshot_waiters(&mut self) {
        let Some(w) = &self.written else {
            return;
        };
        let meta = w.snapshot.get_metadata();
        if self.node.snapshot_index() < meta.index {
            return;
        }
        let Some(w) = self.written.take() else {
            return;
        };
        // Only a requested snapshot carries the hash; a periodic one answers nobody.
        let Some(state_hash) = w.state_hash else {
            return;
        };
        let meta = w.snapshot.get_metadata();
        let info = SnapshotInfo {
            index: meta.index,
            term: meta.term,
            bytes: w.bytes,
            state_hash,
        };
        let (served, waiting) = std::mem::take(&mut self.snapshot_waiters)
            .into_iter()
            .partition(|(asked_at, _)| *asked_at <= info.index);
        self.snapshot_waiters = waiting;
        for (_, reply) in served {
            let _ = reply.send(Ok(info.clone()));
        }
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
        // The node hands its messages to the transport during the poll (a leader's appends
        // before its own fsync: the followers write while it does); sending only queues them
        // for the peer tasks, and the entries go to the persistence worker, so a poll is CPU
        // work (at most a short wait for the log's write lock, behind one fdatasync) and
        // runs here, on the runtime's worker. Only installing a received snapshot writes
        // and syncs much: that poll hands the worker's other tasks to another thread
        // (`block_in_place`). Not every poll: each such call moves the worker to a new
        // thread, and on every commit round that was most of a follower's context switches
        // (docs/performance.md, "Wake-ups per commit round").
        let (node, transport) = (&mut self.node, &mut self.transport);
        let started = std::time::Instant::now();
        let mut out = if node.installs_snapshot() {
            tokio::task::block_in_place(|| node.poll_sending(&SystemClock, transport))?
        } else {
            node.poll_sending(&SystemClock, transport)?
        };
        if let Some(job) = out.snapshot.take() {
            self.writer.write(job, started.elapsed().as_micros());
        }
        self.answer_snapshot_waiters();
        // Completions come from applied entries, which are committed (durable on a quorum).
        for c in out.completions {
            self.complete(c.id, c.result);
        }
        for peer in self.transport.take_unreachable() {
            self.node.step(Input::Unreachable { peer });
        }
        self.publish_members();
        Ok(())
    }

    /// Tells the peer service who the members are now (a membership change applied in
    /// this poll takes effect for the next peer call), and publishes the [`Summary`].
    fn publish_members(&mut self) {
        self.gate
            .publish(Members::of(&self.node.status().conf_state));
        self.gate
            .publish_incarnations(self.node.known_incarnations());
        self.publish_summary();
    }

    /// Publishes the node's [`Summary`]; says once, at WARN, that the node was removed;
    /// logs and counts what changed since the last one (`super::events`).
    fn publish_summary(&mut self) {
        let summary = self.summary();
        let before = self.board.load();
        super::events::changes(&before, &summary, &self.counters);
        self.counters
            .requests_pending
            .set(i64::try_from(self.pending.len()).unwrap_or(i64::MAX));
        if summary.removed && !self.removal_logged {
            self.removal_logged = true;
            tracing::warn!(
                id = summary.id,
                voters = ?summary.voters,
                learners = ?summary.learners,
                "this node was removed from the cluster: it no longer campaigns, votes or \
                 serves clients; stop it, or add it back (docs/operations.md, membership)"
            );
        }
        self.board.store(Arc::new(summary));
    }
}

/// Runs the node until `stop` fires (or every handle is gone). An `Err` is fatal.
pub async fn run(
    node: EngineNode,
    worker: Worker,
    inbox: Inbox,
    transport: GrpcTransport,
    faults: Arc<Faults>,
    gate: Arc<PeerGate>,
    mut stop: oneshot::Receiver<()>,
) -> Result<(), Error> {
    let Inbox {
        mut cmds,
        mut events,
        board,
        counters,
    } = inbox;
    let Worker {
        mut reports,
        finished,
    } = worker;
    let (writer, mut written) = Writer::start(node.store().snapshot_files().clone())?;
    let mut d = Driver {
        node,
        transport,
        gate,
        next_id: 0,
        pending: HashMap::new(),
        groups: HashMap::new(),
        board,
        hashes: Arc::new(tokio::sync::Semaphore::new(HASHES_INFLIGHT_MAX)),
        removal_logged: false,
        writer,
        snapshot_waiters: Vec::new(),
        written: None,
        counters,
        proposed_at: HashMap::new(),
    };
    d.publish_members();
    let mut tick = tokio::time::interval(std::time::Duration::from_millis(TICK_INTERVAL_MS));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let served: Result<(), Error> = async {
        loop {
            tokio::select! {
                biased;
                _ = &mut stop => break,
                _ = tick.tick() => {
                    d.node.step(Input::Tick);
                    faults.reload();
                }
                Some(report) = reports.recv() => d.on_persisted(report)?,
                Some(report) = written.recv() => d.on_snapshot_written(report)?,
                Some(ev) = events.recv() => d.on_event(ev),
                Some(cmd) = cmds.recv() => d.on_cmd(cmd)?,
                else => break,
            }
            while let Ok(report) = reports.try_recv() {
                d.on_persisted(report)?;
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
    .await;
    // The store (the queue's only sender) goes with the node: the worker writes what was
    // queued and ends.
    let Driver { node, writer, .. } = d;
    // A job in hand is finished first (a file never recorded is deleted at the next open).
    tokio::task::block_in_place(|| writer.stop());
    drop(node);
    tokio::task::block_in_place(|| finished.wait());
    served
}
