//! The sans-I/O Raft node core.
//!
//! [`Node`] wraps raft-rs `RawNode` and owns the state machine. It never reads a clock,
//! touches the network or spawns anything: the driver (tokio runtime or simulator) feeds
//! [`Input`]s with [`Node::step`], then calls [`Node::poll_sending`] (or [`Node::poll`]),
//! which runs the Ready loop, hands each Ready's write to the store, applies committed
//! entries, and returns an [`Output`]: request completions (and, from `poll`, the messages
//! to send).
//!
//! **The commit round** is pipelined (raft-rs asynchronous Ready: `advance_append_async`,
//! `on_persist_ready`). Each Ready's messages go to the driver's [`Transport`] as soon as
//! they may leave, in this order:
//!
//! 1. a leader's messages (raft-rs `Ready::messages`: appends, heartbeats, snapshots) go
//!    *before* this node's write of the same Ready, so the followers write in parallel
//!    with the leader (Raft thesis §10.2.1);
//! 2. the write (entries + hard state, one atomic write) is handed to the store
//!    (`RaftStore::write_async`): a store with a persistence worker queues it and returns
//!    at once (`Durability::Queued`; the poll reports the Ready in `Output::persist`), and
//!    the node goes on: it takes new proposals, processes acknowledgements and answers
//!    reads while the worker fsyncs (one fdatasync for every write queued meanwhile);
//! 3. when the write is durable (at once for a synchronous store, or when the driver steps
//!    `Input::Persisted { number }`), raft-rs learns it (`on_persist_ready`): only then does
//!    a leader's own copy count towards the commit quorum, and only entries durable here
//!    are applied (raft-rs bounds them by the persisted index). The messages that depend on
//!    the write (raft-rs `Ready::persisted_messages`: a follower's append
//!    acknowledgements, votes) are held until then, with those of any later Ready that
//!    wrote nothing.
//!
//! So any acknowledgement that leaves a node is backed by a durable write, a leader's
//! fsync overlaps the followers' instead of preceding it, and the node task never waits on
//! an fsync. A received snapshot is installed synchronously, ordered after every queued
//! write (the store drains its queue first). [`Node::poll`] hands the same messages back
//! in its `Output` instead, all to be sent after the poll (correct, without the overlap).
//!
//! **Snapshots** are encoded and written off the driver's thread when
//! `NodeConfig::background_snapshots` is on: the poll hands out an image of the state as a
//! [`SnapshotJob`] (`Output::snapshot`) and records it once `Input::SnapshotWritten` says
//! it is durable (`snapshots`).
//!
//! Group commit: proposals stepped between two polls are packed into as few Raft entries as
//! the batch limits allow, and one Ready (one write) carries them all.

mod apply;
pub mod config;
mod guard;
pub mod members;
pub mod membership;
pub mod payload;
mod persist;
mod proposals;
mod reads;
mod snapshots;
pub mod startup;

pub use config::NodeConfig;
pub use guard::{
    bounded, catch_panic, debug_prefix, panic_is_caught, ApplyPanic, POISON_COMMANDS_NAMED_MAX,
    POISON_TEST_ENV, POISON_TEST_REQUEST_ID, POISON_TEXT_CHARS_MAX,
};
pub use membership::MembershipChange;
pub use snapshots::SnapshotJob;

use crate::error::{Error, RequestError};
use crate::io::{Clock, RaftStore, Transport};
use crate::state_machine::StateMachine;
use members::{ChangeContext, MembershipRequest};
use proposals::{Failure, Proposals, Waiter};
use raft::eraftpb::{ConfState, Message, MessageType, Snapshot};
use raft::{RawNode, SnapshotStatus, StateRole};
use reads::Reads;

/// Driver-chosen id of a client request, echoed in its [`Completion`].
pub type RequestId = u64;

/// Everything that can happen to a node.
#[derive(Debug)]
pub enum Input {
    /// One logical clock tick (every `config::TICK_INTERVAL_MS`).
    Tick,
    /// A Raft message from a peer.
    Message(Message),
    /// A client command to replicate (leader only).
    Propose { id: RequestId, command: Vec<u8> },
    /// Client commands to replicate together (leader only): admitted all or none (`Busy`
    /// when the pending-proposal bound has no room for all of them); each is answered on
    /// its own id. A command over the size limit is refused alone (`TooLarge`).
    ProposeMany { items: Vec<(RequestId, Vec<u8>)> },
    /// A linearizable read; answered with `StateMachine::query(query)` (any member).
    Read { id: RequestId, query: Vec<u8> },
    /// A ReadIndex round and nothing else (any member): answered [`Reply::ReadIndex`] once
    /// the read index is applied, without touching the state machine. For reads served
    /// off the node task from what the state machine publishes (the availability view).
    ReadIndex { id: RequestId },
    /// A membership change (leader only, one at a time).
    /// `request` is the client's request key (`request_id`), when it named one: a retry of
    /// an applied request is answered without a second change.
    ChangeMembership {
        id: RequestId,
        change: MembershipChange,
        request: Option<u128>,
    },
    /// Asks the leader to hand leadership to voter `to`.
    TransferLeader { id: RequestId, to: u64 },
    /// The transport could not reach `peer` (raft then probes it instead of streaming).
    Unreachable { peer: u64 },
    /// The transport finished (or failed) streaming a snapshot to `peer`.
    SnapshotStatus { peer: u64, delivered: bool },
    /// Starts an election now (operator or test use).
    Campaign,
    /// A member presented `incarnation` and the registry records none for it: as leader,
    /// propose its registration (`members::SystemEntry::RegisterIncarnation`).
    RegisterIncarnation { node: u64, incarnation: u64 },
    /// The writes the store queued (`Durability::Queued`) up to raft-rs Ready `number` are
    /// durable: the persistence worker's report (see [`Output::persist`]).
    Persisted { number: u64 },
    /// The snapshot writer made the [`Output::snapshot`] job's file durable: `snapshot` is
    /// its metadata (and data, for a store that keeps data itself); the next poll records
    /// it in the store and compacts the log (`node::snapshots`).
    SnapshotWritten { snapshot: Snapshot },
}

/// The successful result of a request.
#[derive(Debug, Clone, PartialEq)]
pub enum Reply {
    /// The command was applied at `index`; `outcome` is what the state machine returned.
    /// `index` is 0 when no entry of its own applied it: a retry or a refusal answered from
    /// the state after a ReadIndex (`StateMachine::replay`; a retry's outcome names the
    /// entry that first applied it, a refusal's names none).
    Applied { index: u64, outcome: Vec<u8> },
    /// The read was answered at an applied index >= its read index.
    Read { index: u64, result: Vec<u8> },
    /// [`Input::ReadIndex`]: the read index, applied on this node. Every write
    /// acknowledged before the request is at or below it.
    ReadIndex { index: u64 },
    /// The membership change was applied; the new configuration.
    Membership(ConfState),
    /// The leadership transfer was started (watch `status()` for the result).
    TransferStarted,
}

/// The end of one request.
#[derive(Debug, Clone, PartialEq)]
pub struct Completion {
    pub id: RequestId,
    pub result: Result<Reply, RequestError>,
}

/// What the driver must do after a poll.
#[derive(Debug, Default)]
pub struct Output {
    /// Raft messages to send (any order per peer is tolerated; keep it anyway). Always
    /// empty from [`Node::poll_sending`], which hands them to its transport.
    pub messages: Vec<Message>,
    /// `MsgSnapshot` messages: stream them, then report with `Input::SnapshotStatus`.
    /// Always empty from [`Node::poll_sending`].
    pub snapshots: Vec<Message>,
    /// Finished requests.
    pub completions: Vec<Completion>,
    /// The newest raft-rs Ready whose write the store queued during this poll
    /// (`RaftStore::write_async` returned `Durability::Queued`): once it is durable, step
    /// `Input::Persisted { number }`. The messages that depend on it wait in the node.
    pub persist: Option<u64>,
    /// A snapshot to write off the driver's thread (`NodeConfig::background_snapshots`):
    /// encode it ([`SnapshotJob::encode`]), write it durably, then step
    /// `Input::SnapshotWritten`. No other job comes until then.
    pub snapshot: Option<SnapshotJob>,
}

/// `Output` collects what [`Node::poll`] would have sent (all of it sent after the poll).
impl Transport for Output {
    fn send(&mut self, _to: u64, messages: Vec<Message>) {
        self.messages.extend(messages);
    }

    fn send_snapshot(&mut self, _to: u64, message: Message) {
        self.snapshots.push(message);
    }
}

/// Hands `msgs` to `transport`: ordinary messages grouped per peer in order, snapshots one
/// by one.
fn send_all(transport: &mut dyn Transport, msgs: Vec<Message>) {
    if msgs.is_empty() {
        return;
    }
    let mut by_peer: std::collections::BTreeMap<u64, Vec<Message>> = Default::default();
    let mut snapshots = Vec::new();
    for m in msgs {
        if m.get_msg_type() == MessageType::MsgSnapshot {
            snapshots.push(m);
        } else {
            by_peer.entry(m.to).or_default().push(m);
        }
    }
    for (to, msgs) in by_peer {
        transport.send(to, msgs);
    }
    for m in snapshots {
        transport.send_snapshot(m.to, m);
    }
}

impl Output {
    fn fail(&mut self, failures: Vec<Failure>) {
        self.completions.extend(
            failures
                .into_iter()
                .map(|(id, e)| Completion { id, result: Err(e) }),
        );
    }

    fn reply(&mut self, id: RequestId, result: Result<Reply, RequestError>) {
        self.completions.push(Completion { id, result });
    }

    /// Hands the messages to a transport, grouped per peer in order.
    pub fn dispatch(&mut self, transport: &mut impl Transport) {
        let mut msgs = std::mem::take(&mut self.messages);
        msgs.append(&mut self.snapshots);
        send_all(transport, msgs);
    }
}

/// A summary of the node's Raft state.
#[derive(Debug, Clone, PartialEq)]
pub struct NodeStatus {
    pub id: u64,
    pub role: StateRole,
    pub term: u64,
    /// 0 when unknown.
    pub leader_id: u64,
    pub commit_index: u64,
    pub applied_index: u64,
    pub conf_state: ConfState,
    /// This node applied a configuration without itself (see [`Node::removed`]).
    pub removed: bool,
}

/// The Raft node core over store `S` and state machine `M`.
pub struct Node<S: RaftStore, M: StateMachine> {
    raw: RawNode<S>,
    sm: M,
    cfg: NodeConfig,
    proposals: Proposals,
    reads: Reads,
    out: Output,
    ticks: u64,
    was_leader: bool,
    applied_index: u64,
    applied_term: u64,
    /// Monotonic log time of the last applied batch (part of the snapshot envelope).
    applied_log_time_ms: u64,
    last_proposed_log_time_ms: u64,
    /// Configuration as of `applied_index` (what a snapshot at that index must carry).
    conf_state: ConfState,
    snapshot_index: u64,
    /// Bytes of the entries applied since the last snapshot job (`snapshot_log_bytes_max`).
    log_bytes_since_snapshot: u64,
    /// Configuration carried by the latest stored snapshot.
    snapshot_conf: ConfState,
    /// Set when the state machine panicked: the node never polls, applies or snapshots
    /// again (its state may be half-changed); every poll returns this error.
    poisoned: Option<Box<ApplyPanic>>,
    /// Reads that are commands the state machine answers from its state (retries and
    /// refusals: `StateMachine::replay`): their query bytes are the command.
    replays: std::collections::BTreeSet<RequestId>,
    /// Reads that want their read index only (`Input::ReadIndex`); their query is empty.
    index_reads: std::collections::BTreeSet<RequestId>,
    /// The member registry as of `applied_index` (part of the snapshot envelope).
    members: members::Registry,
    /// Registrations found at start in log entries not applied yet; see
    /// [`Node::known_incarnations`]. Dropped once the log is applied.
    unapplied_members: Option<members::Registry>,
    /// This node's incarnation (from the runtime's IDENTITY file; `None` in tests that do
    /// not care): registered by itself when it leads.
    incarnation: Option<u64>,
    /// Registrations proposed as leader and not applied yet: node → index of the entry.
    registering: std::collections::BTreeMap<u64, u64>,
    /// Set when a leader showed that this node lost entries it had acknowledged: the node
    /// stops (every poll returns this), instead of raft-rs panicking.
    lost_data: Option<String>,
    /// Queued writes not reported durable yet, and the messages waiting for them.
    unsynced: persist::Unsynced,
    /// The number of the last raft-rs Ready handled.
    last_ready: u64,
    /// The snapshot job in flight, a written one to record, an operator's request.
    snapshots: snapshots::Snapshots,
}

/// Whether `m` asks for a vote (a removed node never gives one).
fn is_vote_request(m: &Message) -> bool {
    matches!(
        m.get_msg_type(),
        MessageType::MsgRequestVote | MessageType::MsgRequestPreVote
    )
}

/// Most log entries read at start for [`Node::known_incarnations`] (bounded memory; the
/// log between snapshots is shorter than this by configuration in practice).
const UNAPPLIED_SCAN_ENTRIES_MAX: u64 = 1_000_000;

/// The registry of the log entries after `applied` that `store` holds.
fn unapplied_registry<S: RaftStore>(
    store: &S,
    applied: u64,
) -> Result<Option<members::Registry>, Error> {
    let (first, last) = (store.first_index()?, store.last_index()?);
    let low = applied.saturating_add(1).max(first);
    if low > last {
        return Ok(None);
    }
    let high = last.min(low.saturating_add(UNAPPLIED_SCAN_ENTRIES_MAX)) + 1;
    let entries = store.entries(low, high, None, raft::GetEntriesContext::empty(false))?;
    Ok(Some(apply::registry_of_log(&entries)))
}

/// Index and term of the initial snapshot [`bootstrap`] writes: the log starts after it.
pub const BOOTSTRAP_INDEX: u64 = 1;
pub const BOOTSTRAP_TERM: u64 = 1;

/// Bootstraps a fresh store of a founding member, the raft-rs way: applies an initial
/// snapshot at index 1 (term 1) whose metadata carries the founding voters and whose data is
/// `empty`'s state (a fresh state machine, log time 0). The log then starts at index 2, so
/// a node that joins later can never replay the log from index 1 without the configuration:
/// the leader must send it a snapshot, and a snapshot always carries the configuration.
/// Nodes that join later start from an empty store and learn everything from the leader.
pub fn bootstrap<S: RaftStore, M: StateMachine>(
    store: &mut S,
    voters: &[u64],
    empty: &M,
) -> Result<(), Error> {
    let state = store.initial_state()?;
    if state.initialized() || store.last_index()? > 0 {
        return Err(Error::Config("store is already initialized".into()));
    }
    if voters.is_empty() {
        return Err(Error::Config("bootstrap needs at least one voter".into()));
    }
    let mut snap = Snapshot {
        data: payload::encode_snapshot(0, &empty.snapshot()).into(),
        ..Default::default()
    };
    let meta = snap.mut_metadata();
    meta.index = BOOTSTRAP_INDEX;
    meta.term = BOOTSTRAP_TERM;
    meta.set_conf_state(ConfState {
        voters: voters.to_vec(),
        ..Default::default()
    });
    store.apply_snapshot(&snap)
}

impl<S: RaftStore, M: StateMachine> Node<S, M> {
    /// Starts (or restarts) a node: restores `sm` from the stored snapshot, if any, and
    /// restarts Raft at the applied index that snapshot reflects.
    pub fn new(cfg: NodeConfig, store: S, mut sm: M, logger: &slog::Logger) -> Result<Self, Error> {
        let snapshot = store.stored_snapshot()?;
        let (mut index, mut term, mut log_time) = (0, 0, 0);
        let mut snapshot_conf = ConfState::default();
        let mut members = members::Registry::default();
        if let Some(snap) = &snapshot {
            (log_time, members) = apply::restore_state(&mut sm, snap.get_data())?;
            (index, term) = (snap.get_metadata().index, snap.get_metadata().term);
            snapshot_conf = snap.get_metadata().get_conf_state().clone();
        }
        let conf_state = store.initial_state()?.conf_state;
        let unapplied_members = unapplied_registry(&store, index)?;
        let raft_cfg = cfg.raft_config(store.applied_index())?;
        let raw = RawNode::new(&raft_cfg, store, logger)?;
        Ok(Node {
            raw,
            sm,
            proposals: Proposals::new(cfg.proposal_queue_max),
            reads: Reads::new(
                cfg.id,
                cfg.read_queue_max,
                cfg.read_timeout_ticks,
                cfg.read_attempts_max,
            ),
            cfg,
            out: Output::default(),
            ticks: 0,
            was_leader: false,
            applied_index: index,
            applied_term: term,
            applied_log_time_ms: log_time,
            last_proposed_log_time_ms: 0,
            conf_state,
            snapshot_index: index,
            log_bytes_since_snapshot: 0,
            snapshot_conf,
            poisoned: None,
            replays: Default::default(),
            index_reads: Default::default(),
            members,
            unapplied_members,
            incarnation: None,
            registering: Default::default(),
            lost_data: None,
            unsynced: Default::default(),
            last_ready: 0,
            snapshots: Default::default(),
        })
    }

    /// Sets this node's incarnation (the runtime's IDENTITY file): the node registers it
    /// whenever it leads and the registry has none for it.
    pub fn set_incarnation(&mut self, incarnation: u64) {
        self.incarnation = Some(incarnation);
    }

    /// The member registry as of the applied index.
    pub fn members(&self) -> &members::Registry {
        &self.members
    }

    /// Node → incarnation: the applied registry's, and for nodes it lacks, the ones
    /// registered in log entries this node holds but has not applied again since its start
    /// (it re-applies only up to the commit index it knows). Both are evidence that the node
    /// took part: the peer gate and `Status` answer with this.
    pub fn known_incarnations(&mut self) -> std::collections::BTreeMap<u64, u64> {
        let mut known = self.members.incarnations();
        if self.applied_index >= self.last_index() {
            self.unapplied_members = None;
        }
        if let Some(pending) = &self.unapplied_members {
            for (node, incarnation) in pending.incarnations() {
                known.entry(node).or_insert(incarnation);
            }
        }
        known
    }

    pub fn id(&self) -> u64 {
        self.cfg.id
    }

    pub fn state_machine(&self) -> &M {
        &self.sm
    }

    pub fn store(&self) -> &S {
        self.raw.store()
    }

    pub fn is_leader(&self) -> bool {
        self.raw.raft.state == StateRole::Leader
    }

    pub fn status(&self) -> NodeStatus {
        NodeStatus {
            id: self.cfg.id,
            role: self.raw.raft.state,
            term: self.raw.raft.term,
            leader_id: self.raw.raft.leader_id,
            commit_index: self.raw.raft.raft_log.committed,
            applied_index: self.applied_index,
            conf_state: self.raw.raft.prs().conf().to_conf_state(),
            removed: self.removed(),
        }
    }

    /// Whether this node was removed from the cluster: its applied configuration is known
    /// and does not name it (`membership::is_removed`). A removed node stops acting
    /// ([`Node::step`]): it steps down if it leads, never campaigns, ignores vote requests,
    /// and refuses client requests with `RequestError::Removed`. It still steps the other
    /// Raft messages, so a node added back under its id (with its data) catches up and
    /// acts again once it applies a configuration that names it.
    pub fn removed(&self) -> bool {
        membership::is_removed(&self.conf_state, self.cfg.id)
    }

    /// Screens `input` for a removed node (see [`Node::removed`]); returns it when it must
    /// be stepped as usual. A leader that applied its own removal steps down here, before
    /// its next tick could send another heartbeat: raft-rs would keep it leading a group it
    /// is not in (`membership` module doc).
    fn screen_if_removed(&mut self, input: Input) -> Option<Input> {
        if !self.removed() {
            return Some(input);
        }
        if self.is_leader() {
            let term = self.raw.raft.term;
            self.raw.raft.become_follower(term, raft::INVALID_ID);
        }
        let refused = Err(RequestError::Removed { id: self.cfg.id });
        match input {
            Input::Propose { id, .. }
            | Input::Read { id, .. }
            | Input::ReadIndex { id }
            | Input::ChangeMembership { id, .. }
            | Input::TransferLeader { id, .. } => self.out.reply(id, refused),
            Input::ProposeMany { items } => {
                for (id, _) in items {
                    self.out.reply(id, refused.clone());
                }
            }
            Input::Campaign => {}
            Input::Message(m) if is_vote_request(&m) => {}
            other => return Some(other),
        }
        None
    }

    /// The panic that stopped this node, if its state machine panicked.
    pub fn poisoned(&self) -> Option<&ApplyPanic> {
        self.poisoned.as_deref()
    }

    fn check_poisoned(&self) -> Result<(), Error> {
        if let Some(why) = &self.lost_data {
            return Err(Error::Startup(why.clone()));
        }
        match &self.poisoned {
            Some(p) => Err(Error::ApplyPanicked(p.clone())),
            None => Ok(()),
        }
    }

    /// The last index of the local log.
    pub fn last_index(&self) -> u64 {
        self.raw.raft.raft_log.last_index()
    }

    /// Whether the next poll installs a snapshot received from the leader: it writes and
    /// syncs the whole state and may take seconds. Every other write of a node whose store
    /// queues its writes (`Durability::Queued`, the runtime's) is made durable by the
    /// persistence worker, so such a poll is CPU work only.
    pub fn installs_snapshot(&self) -> bool {
        self.raw.raft.raft_log.unstable.snapshot.is_some()
    }

    /// Index of the latest local snapshot (0 if none).
    pub fn snapshot_index(&self) -> u64 {
        self.snapshot_index
    }

    /// Log time of the last applied entry, Unix ms.
    pub fn applied_log_time_ms(&self) -> u64 {
        self.applied_log_time_ms
    }

    /// As leader: (peer, highest index known replicated to it, recently active) for every
    /// member; empty on other nodes (they do not track progress).
    pub fn progress(&self) -> Vec<(u64, u64, bool)> {
        if !self.is_leader() {
            return Vec::new();
        }
        let mut out: Vec<_> = self
            .raw
            .raft
            .prs()
            .iter()
            .map(|(id, pr)| (*id, pr.matched, pr.recent_active))
            .collect();
        out.sort_unstable();
        out
    }

    /// Takes a snapshot at the applied index now and compacts the log (operator request);
    /// returns (index, term, snapshot bytes). An `Err` is fatal, as for [`Node::poll`].
    pub fn snapshot_now(&mut self) -> Result<(u64, u64, usize), Error> {
        self.check_poisoned()?;
        if self.applied_index == 0 {
            return Ok((0, 0, 0));
        }
        self.take_snapshot()
    }

    fn not_leader(&self) -> RequestError {
        let leader = self.raw.raft.leader_id;
        RequestError::NotLeader {
            leader: (leader != 0 && leader != self.cfg.id).then_some(leader),
        }
    }

    /// Feeds one input. Cheap: no I/O; results show up in the next [`Node::poll`].
    pub fn step(&mut self, input: Input) {
        let Some(input) = self.screen_if_removed(input) else {
            return;
        };
        match input {
            Input::Tick => self.on_tick(),
            Input::Message(m) => self.step_message(m),
            Input::Propose { id, command } => self.admit_proposal(id, command),
            Input::ProposeMany { items } => self.admit_proposals(items),
            Input::Read { id, query } => {
                let r = self.reads.enqueue(id, query);
                if let Err(e) = r {
                    self.out.reply(id, Err(e));
                }
            }
            Input::ReadIndex { id } => match self.reads.enqueue(id, Vec::new()) {
                Ok(()) => {
                    self.index_reads.insert(id);
                }
                Err(e) => self.out.reply(id, Err(e)),
            },
            Input::ChangeMembership {
                id,
                change,
                request,
            } => self.change_membership(id, change, request),
            Input::TransferLeader { id, to } => self.transfer_leader(id, to),
            Input::Unreachable { peer } => self.raw.report_unreachable(peer),
            Input::SnapshotStatus { peer, delivered } => {
                let status = if delivered {
                    SnapshotStatus::Finish
                } else {
                    SnapshotStatus::Failure
                };
                self.raw.report_snapshot(peer, status);
            }
            Input::Campaign => drop(self.raw.campaign()),
            Input::RegisterIncarnation { node, incarnation } => {
                self.register_incarnation(node, incarnation)
            }
            Input::Persisted { number } => self.persisted(number),
            Input::SnapshotWritten { snapshot } => self.snapshot_written(snapshot),
        }
    }

    fn step_message(&mut self, m: Message) {
        let guard = self.cfg.lost_data_guard;
        if let Some(why) = guard
            .then(|| {
                startup::heartbeat_shows_lost_data(
                    self.cfg.id,
                    self.raw.raft.term,
                    self.last_index(),
                    &m,
                )
            })
            .flatten()
        {
            self.lost_data.get_or_insert(why);
            return;
        }
        // Errors here are stale or foreign messages (unknown peer); Raft ignores them.
        drop(self.raw.step(m))
    }

    /// As leader, proposes `incarnation` for member `node` unless the registry has one or
    /// a registration for it is in flight. Never fails: a dropped proposal is retried on
    /// the member's next message.
    fn register_incarnation(&mut self, node: u64, incarnation: u64) {
        let conf = self.raw.raft.prs().conf().to_conf_state();
        let is_member = crate::storage::conf_names(&conf, node);
        let in_flight = self
            .registering
            .get(&node)
            .is_some_and(|&index| index > self.applied_index);
        if !self.is_leader() || !is_member || in_flight || self.members.incarnation(node).is_some()
        {
            return;
        }
        let entry = members::SystemEntry::RegisterIncarnation { node, incarnation };
        if self
            .raw
            .propose(Vec::new(), payload::encode_system(&entry))
            .is_ok()
        {
            let index = self.raw.raft.raft_log.last_index();
            self.registering.insert(node, index);
        }
    }

    /// As leader, registers this node's own incarnation (called on every poll; cheap when
    /// it is recorded or in flight).
    fn register_self(&mut self) {
        if let Some(incarnation) = self.incarnation {
            if self.is_leader() && self.members.incarnation(self.cfg.id).is_none() {
                self.register_incarnation(self.cfg.id, incarnation);
            }
        }
        if !self.is_leader() {
            self.registering.clear();
        }
    }

    fn on_tick(&mut self) {
        self.raw.tick();
        self.ticks += 1;
        let mut failed = Vec::new();
        for ctx in self.reads.on_tick(self.ticks, &mut failed) {
            self.raw.read_index(ctx);
        }
        for (id, _) in &failed {
            self.replays.remove(id);
            self.index_reads.remove(id);
        }
        self.out.fail(failed);
    }

    fn admit_proposal(&mut self, id: RequestId, command: Vec<u8>) {
        // Saturating: a (misconfigured) tiny batch limit refuses commands, never panics.
        let max = self
            .cfg
            .proposal_batch_bytes_max
            .saturating_sub(payload::BATCH_HEADER_BYTES + payload::BATCH_PER_COMMAND_BYTES);
        let result = if !self.is_leader() {
            Err(self.not_leader())
        } else if command.len() > max {
            Err(RequestError::TooLarge {
                bytes: command.len(),
                max,
            })
        } else if self.try_replay(id, &command) {
            Ok(())
        } else {
            self.proposals.enqueue(id, command)
        };
        if let Err(e) = result {
            self.out.reply(id, Err(e));
        }
    }

    fn admit_proposals(&mut self, items: Vec<(RequestId, Vec<u8>)>) {
        let max = self
            .cfg
            .proposal_batch_bytes_max
            .saturating_sub(payload::BATCH_HEADER_BYTES + payload::BATCH_PER_COMMAND_BYTES);
        if !self.is_leader() {
            let err = self.not_leader();
            for (id, _) in items {
                self.out.reply(id, Err(err.clone()));
            }
            return;
        }
        let mut admitted = Vec::with_capacity(items.len());
        for (id, command) in items {
            if command.len() > max {
                let bytes = command.len();
                self.out
                    .reply(id, Err(RequestError::TooLarge { bytes, max }));
            } else if !self.try_replay(id, &command) {
                admitted.push((id, command));
            }
        }
        let ids: Vec<RequestId> = admitted.iter().map(|(id, _)| *id).collect();
        if let Err(e) = self.proposals.enqueue_all(admitted) {
            for id in ids {
                self.out.reply(id, Err(e.clone()));
            }
        }
    }

    /// A command the state machine can already answer from its state without changing it
    /// (`StateMachine::replay`: a retry of a request it remembers, or a command it would
    /// refuse) is answered as a linearizable read — after a ReadIndex, from state at or past
    /// the read index — instead of a log entry. The read also waits until the log as it
    /// stands when the read is issued is applied, so an earlier attempt of the same request
    /// already in the log is decided first (its success is then replayed, never
    /// contradicted by a refusal). Returns whether it was taken that way (not when the read
    /// queue is full: then it goes through the log like any command). The check here only
    /// picks the path; `complete_replay` decides on the state at the read.
    fn try_replay(&mut self, id: RequestId, command: &[u8]) -> bool {
        let sm = &self.sm;
        // A panic here is a bug in a read; the log path handles whatever it hides.
        let decided = matches!(guard::catch(|| sm.replay(command)), Ok(Some(_)));
        if !decided || self.reads.enqueue_after_log(id, command.to_vec()).is_err() {
            return false;
        }
        self.replays.insert(id);
        true
    }

    /// Answers a command taken as a read once its read index and floor are applied, from
    /// the state now; if the state no longer decides it (a refused command would now be
    /// accepted, or a dedup entry was evicted meanwhile), it goes through the log after
    /// all. The answer is `Reply::Applied` with index 0: no entry of its own applied it.
    fn complete_replay(&mut self, id: RequestId, command: Vec<u8>) {
        let sm = &self.sm;
        match guard::catch(|| sm.replay(&command)) {
            Ok(Some(outcome)) => {
                self.out.reply(id, Ok(Reply::Applied { index: 0, outcome }));
            }
            _ => {
                if let Err(e) = self.proposals.enqueue(id, command) {
                    self.out.reply(id, Err(e));
                }
            }
        }
    }

    fn change_membership(
        &mut self,
        id: RequestId,
        change: MembershipChange,
        request: Option<u128>,
    ) {
        if let Err(e) = self.try_change_membership(id, change, request) {
            self.out.reply(id, Err(e));
        }
    }

    /// The answer to a membership request whose key the registry remembers: the current
    /// configuration when it asked for the same change (a retry), a refusal otherwise.
    fn membership_retry(
        &self,
        change: MembershipChange,
        key: u128,
    ) -> Option<Result<Reply, RequestError>> {
        let applied = self.members.request(key)?;
        Some(if *applied == MembershipRequest::new(key, change) {
            Ok(Reply::Membership(self.conf_state.clone()))
        } else {
            Err(RequestError::ConfChangeRejected(
                "request_id reused for a different membership change".into(),
            ))
        })
    }

    fn try_change_membership(
        &mut self,
        id: RequestId,
        change: MembershipChange,
        request: Option<u128>,
    ) -> Result<(), RequestError> {
        if !self.is_leader() {
            return Err(self.not_leader());
        }
        if let Some(answer) = request.and_then(|key| self.membership_retry(change, key)) {
            self.out.reply(id, answer);
            return Ok(());
        }
        // raft-rs would silently turn a second pending change into an empty entry.
        if self.raw.raft.has_pending_conf() || self.proposals.has_conf_change() {
            return Err(RequestError::ConfChangeInProgress);
        }
        self.proposals.check_capacity()?;
        let cc = membership::build(
            change,
            &self.raw.raft.prs().conf().to_conf_state(),
            self.id(),
        )?;
        let context = ChangeContext {
            request: request.map(|key| MembershipRequest::new(key, change)),
        };
        self.raw
            .propose_conf_change(context.encode(), cc)
            .map_err(|_| self.drop_reason())?;
        let (index, term) = (self.raw.raft.raft_log.last_index(), self.raw.raft.term);
        self.proposals.register(index, term, Waiter::Conf(id));
        Ok(())
    }

    fn transfer_leader(&mut self, id: RequestId, to: u64) {
        let result = if !self.is_leader() {
            Err(self.not_leader())
        } else if !self.raw.raft.prs().conf().voters().contains(to) {
            Err(RequestError::ConfChangeRejected(format!(
                "transfer target {to} is not a voter"
            )))
        } else {
            self.raw.transfer_leader(to);
            Ok(Reply::TransferStarted)
        };
        self.out.reply(id, result);
    }

    /// Why raft dropped a proposal we made as leader.
    fn drop_reason(&self) -> RequestError {
        if !self.is_leader() {
            self.not_leader()
        } else if self.raw.raft.lead_transferee.is_some() {
            RequestError::TransferInProgress
        } else {
            RequestError::Busy {
                queue: "raft uncommitted log",
            }
        }
    }

    /// Proposes what was stepped, runs the Ready loop (writes handed to the store, applies),
    /// and returns what the driver must do, messages included: every message in the
    /// `Output` may be sent at once (what it depends on is durable), but a leader's appends
    /// wait for its own write; [`Node::poll_sending`] overlaps them. An `Err` is fatal.
    pub fn poll(&mut self, clock: &dyn Clock) -> Result<Output, Error> {
        let mut sent = Output::default();
        let mut out = self.poll_sending(clock, &mut sent)?;
        out.messages = sent.messages;
        out.snapshots = sent.snapshots;
        Ok(out)
    }

    /// [`Node::poll`], handing every message to `transport` during the poll as soon as it
    /// may leave (see the module doc: a leader's appends before its own write,
    /// acknowledgements once it is durable, released by `Input::Persisted` when it was
    /// queued); the returned `Output` carries completions and `persist` only.
    /// `transport` must not block: the write waits behind it. An `Err` is fatal.
    pub fn poll_sending(
        &mut self,
        clock: &dyn Clock,
        transport: &mut dyn Transport,
    ) -> Result<Output, Error> {
        self.check_poisoned()?;
        let now_ms = clock.now_ms();
        self.register_self();
        self.propose_batches(now_ms);
        self.maybe_propose_time(now_ms);
        let last_index = self.raw.raft.raft_log.last_index();
        if let Some(ctx) = self.reads.issue_queued(self.ticks, last_index) {
            self.raw.read_index(ctx);
        }
        self.send_released(transport);
        self.run_ready_loop(transport)?;
        self.check_leadership();
        self.maybe_snapshot()?;
        self.complete_reads();
        Ok(std::mem::take(&mut self.out))
    }

    fn next_log_time(&mut self, now_ms: u64) -> u64 {
        let t = now_ms
            .max(self.last_proposed_log_time_ms)
            .max(self.applied_log_time_ms);
        self.last_proposed_log_time_ms = t;
        t
    }

    fn propose_batches(&mut self, now_ms: u64) {
        if !self.proposals.has_queued() {
            return;
        }
        let mut failed = Vec::new();
        if !self.is_leader() {
            self.proposals.fail_queued(&self.not_leader(), &mut failed);
        }
        let (count, bytes) = (
            self.cfg.proposal_batch_count_max,
            self.cfg.proposal_batch_bytes_max,
        );
        for batch in self.proposals.take_batches(count, bytes) {
            let log_time = self.next_log_time(now_ms);
            let data = payload::encode_batch(log_time, batch.iter().map(|(_, c)| c.as_slice()));
            let ids = batch.into_iter().map(|(id, _)| id).collect::<Vec<_>>();
            if self.raw.propose(Vec::new(), data).is_err() {
                let err = self.drop_reason();
                failed.extend(ids.into_iter().map(|id| (id, err.clone())));
                continue;
            }
            let (index, term) = (self.raw.raft.raft_log.last_index(), self.raw.raft.term);
            self.proposals.register(index, term, Waiter::Batch(ids));
        }
        self.out.fail(failed);
    }

    /// As leader, writes an empty batch carrying log time when none did for an interval.
    fn maybe_propose_time(&mut self, now_ms: u64) {
        let due = self
            .last_proposed_log_time_ms
            .saturating_add(self.cfg.log_time_interval_ms);
        if !self.is_leader() || now_ms < due {
            return;
        }
        let log_time = self.next_log_time(now_ms);
        let data = payload::encode_batch(log_time, std::iter::empty());
        // Dropped (transfer in progress, log full): the next poll tries again.
        drop(self.raw.propose(Vec::new(), data));
    }

    /// A leader that stepped down fails everything it was waiting for: queued commands never
    /// reached the log; in-flight ones may still commit under the new leader.
    fn check_leadership(&mut self) {
        let is_leader = self.is_leader();
        if self.was_leader && !is_leader {
            let mut failed = Vec::new();
            self.proposals.fail_all(&self.not_leader(), &mut failed);
            self.out.fail(failed);
        }
        self.was_leader = is_leader;
    }

    /// Answers the reads whose index is applied. A read takes the state machine by shared
    /// reference, so a panic in one (a bug) cannot have changed the state: that read is
    /// answered `Internal` and the node goes on (a poison pill needs the log; a read is not
    /// in it).
    fn complete_reads(&mut self) {
        for (index, (id, query)) in self.reads.take_ready(self.applied_index) {
            if self.replays.remove(&id) {
                self.complete_replay(id, query);
                continue;
            }
            if self.index_reads.remove(&id) {
                self.out.reply(id, Ok(Reply::ReadIndex { index }));
                continue;
            }
            let sm = &self.sm;
            let result = match guard::catch(|| sm.query(&query)) {
                Ok(result) => Ok(Reply::Read { index, result }),
                Err(message) => Err(RequestError::Internal(format!(
                    "the state machine panicked answering this read: {message}"
                ))),
            };
            self.out.reply(id, result);
        }
    }
}
