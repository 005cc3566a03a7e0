//! The simulator proper: one seeded, single-threaded discrete-event loop that runs the real
//! node core (`ninety_cluster::Node` over [`SimStore`] and [`SimMachine`]) for every
//! replica, with a simulated network, disks, clocks, crashes, partitions, membership changes
//! and clients. Time is simulated (µs); nothing here reads a real clock or does I/O.
//!
//! Phases: **setup** (no faults: elect, load the region through the log), **safety**
//! (faults on, the client workload runs until `Options::ops` operations finished),
//! **liveness** (faults off: crashed nodes restart, partitions heal, failed disks are
//! replaced; every client must then get answers and all replicas converge within
//! `Options::liveness_budget_ms`). Then the history is checked (see `check`).

use crate::check::{self, Ack, ReadObs};
use crate::disk::{Disk, DiskHandle, SimStore};
use crate::machine::{Recorder, RecorderHandle, SimMachine};
use crate::options::{Faults, Options};
use crate::region::{self, RegionInfo};
use crate::rng::Rng;
use crate::rules::Rules;
use crate::workload::{self, ClientOp, Owned};
use ninety_cluster::engine_sm::EngineMachine;
use ninety_cluster::engine_sm::{decode_applied, encode_query, encode_request, Query};
use ninety_cluster::eraftpb::{Message, Snapshot};
use ninety_cluster::node::{bootstrap, MembershipChange};
use ninety_cluster::test_support::discard_logger;
use ninety_cluster::{
    Clock, Input, Node, NodeConfig, Reply, RequestError, StateMachine, Transport,
};
use ninety_engine::{LogTime, Request, RequestId};
use std::cell::{Cell, RefCell};
use std::cmp::Ordering;
use std::collections::{BTreeMap, BTreeSet, BinaryHeap};
use std::rc::Rc;

mod external;
mod persist;
mod snapshot;
mod wipe;

pub use external::{External, LeaderId};

/// Unix ms at true simulated time zero: 2026-11-22 23:59 UTC, a minute before midnight, so
/// a run's log time crosses into a new UTC day and its ticks roll the doctors' weekly
/// templates (`SetWeeklyTemplate`) one day further.
pub const EPOCH_MS: u64 = 1_795_391_940_000;
const US: u64 = 1000;
/// Client attempts per operation in the safety phase before it gives up (outcome unknown).
const ATTEMPTS_MAX: u32 = 12;
/// Replacements (failed disk or retirement) per run.
const REPLACEMENTS_MAX: u64 = 3;
/// Operations each client must complete after faults stop.
const LIVENESS_OPS: u64 = 3;
/// Setup (election and region load) must finish within this, ms.
const SETUP_BUDGET_MS: u64 = 60_000;
/// Operator period, ms.
const OPERATOR_MS: u64 = 500;

/// Counts describing one run.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Stats {
    pub ops_acked: u64,
    pub ops_refused: u64,
    pub ops_failed: u64,
    pub ops_gave_up: u64,
    /// Of the acknowledged operations: allocations (`AllocateBed`/`AllocateSlot`) that
    /// placed a hold.
    pub allocations: u64,
    /// Of the acknowledged operations: referral-channel seats (`HoldSlot`, `AllocateSlot`)
    /// granted, and refused for their referral (none named, or not triaged any more).
    pub referral_seats: u64,
    pub referral_seats_refused: u64,
    /// Linearizable reads answered (each checked against the history).
    pub reads: u64,
    /// Of the refused operations: answered as reads, without a log entry (each checked
    /// against the history like a read).
    pub refusals_as_reads: u64,
    pub retries: u64,
    pub events: u64,
    pub sim_ms: u64,
    pub liveness_ms: u64,
    pub messages: u64,
    pub dropped: u64,
    pub duplicated: u64,
    pub crashes: u64,
    /// Of the crashes: in the middle of a write (a poll's, or the persistence worker's fsync; see
    /// `Faults::crash_in_write_per_mille`).
    pub crashes_in_write: u64,
    pub torn_writes: u64,
    pub corruptions_detected: u64,
    pub replacements: u64,
    pub partitions: u64,
    pub snapshots_sent: u64,
    pub max_term: u64,
    pub final_index: u64,
    pub applies: u64,
    pub hash_checks: u64,
    /// Crashes that also lost the node's whole data directory.
    pub wipes: u64,
    /// Wiped nodes that refused to start (or stopped) instead of rejoining under their id.
    pub wiped_refused: u64,
    /// Messages the receiving gate refused: from an incarnation it does not record.
    pub refused_incarnation: u64,
    /// Snapshot files the simulated writer wrote (`sim::snapshot`).
    pub snapshots_written: u64,
    /// Crashes between a snapshot file and its record (`Faults::crash_in_snapshot_per_mille`).
    pub crashes_in_snapshot: u64,
    /// The schedule and referral-lifecycle commands of the workload, by name: how many
    /// were acknowledged successful and refused (`workload::lifecycle_name`).
    pub lifecycle: BTreeMap<&'static str, [u64; 2]>,
    /// Of the successful `ReportNoCapacity`: on a referral that was MATCHED (from the
    /// replay's rules).
    pub no_capacity_on_matched: u64,
    /// Seats that ended with their withdrawn slot (`SlotsWithdrawn::cancelled`), as
    /// acknowledged.
    pub seats_withdrawn: u64,
    /// Slots a tick rolled from a doctor's weekly template, and slots whose taken seats went
    /// beyond their capacity into overbooking (both from the replay's rules).
    pub rolled_slots: u64,
    pub overbooked_slots: u64,
    /// Cross-region steps (multi-region runs: the origin's driver).
    pub remote: crate::cross_region::RemoteStats,
}

impl Stats {
    /// Adds another region's counts of the same run (multi-region runs).
    pub fn absorb(&mut self, o: &Stats) {
        self.ops_acked += o.ops_acked;
        self.ops_refused += o.ops_refused;
        self.ops_failed += o.ops_failed;
        self.ops_gave_up += o.ops_gave_up;
        self.allocations += o.allocations;
        self.reads += o.reads;
        self.events += o.events;
        self.crashes += o.crashes;
        self.partitions += o.partitions;
        self.corruptions_detected += o.corruptions_detected;
        self.replacements += o.replacements;
        self.wipes += o.wipes;
        self.wiped_refused += o.wiped_refused;
        self.snapshots_written += o.snapshots_written;
        self.crashes_in_snapshot += o.crashes_in_snapshot;
        for (name, [ok, refused]) in &o.lifecycle {
            let n = self.lifecycle.entry(name).or_default();
            n[0] += ok;
            n[1] += refused;
        }
        self.no_capacity_on_matched += o.no_capacity_on_matched;
        self.seats_withdrawn += o.seats_withdrawn;
        self.rolled_slots += o.rolled_slots;
        self.overbooked_slots += o.overbooked_slots;
        self.remote.add(&o.remote);
    }
}

/// The result of one seed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunReport {
    pub seed: u64,
    pub faults: Faults,
    /// Empty when every check passed.
    pub violations: Vec<String>,
    pub stats: Stats,
}

impl RunReport {
    /// Whether every check passed.
    pub fn ok(&self) -> bool {
        self.violations.is_empty()
    }

    /// The command that replays this run.
    pub fn replay_command(&self) -> String {
        format!("cargo run --release -- sim faults --seed {}", self.seed)
    }
}

struct FixedClock(u64);

/// What a node handed to the network during one poll, in order, each hand-over with the
/// number of durable disk records at that moment: the crash points of a crash in the write.
struct Wire {
    disk: DiskHandle,
    /// (durable records, messages, whether it is a snapshot).
    calls: Vec<(usize, Vec<Message>, bool)>,
}

impl Transport for Wire {
    fn send(&mut self, _to: u64, messages: Vec<Message>) {
        let durable = self.disk.borrow().durable_len();
        self.calls.push((durable, messages, false));
    }

    fn send_snapshot(&mut self, _to: u64, message: Message) {
        let durable = self.disk.borrow().durable_len();
        self.calls.push((durable, vec![message], true));
    }
}

/// A crash waiting for the node's next write (a poll's, or its persistence worker's fsync).
#[derive(Clone, Copy, Debug)]
struct CrashInWrite {
    torn: bool,
    down_us: u64,
}

impl Clock for FixedClock {
    fn now_ms(&self) -> u64 {
        self.0
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Setup,
    Safety,
    Liveness,
    Done,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum NodeState {
    Up,
    Down,
    /// Refused to start (corrupt disk) or retired: waits for the operator to replace it.
    Failed,
    Removed,
}

type SimNodeCore = Node<SimStore, SimMachine>;

struct SimNode {
    disk: DiskHandle,
    skew_ms: i64,
    drift_ppm: i64,
    local_ms: Rc<Cell<u64>>,
    core: Option<SimNodeCore>,
    incarnation: u64,
    state: NodeState,
    crash_in_write: Option<CrashInWrite>,
    /// The incarnation of its data directory (`runtime::identity`), presented to peers.
    data_incarnation: u64,
    /// A founding voter (its config says `init = true`).
    founder: bool,
    /// It lost its data directory (and was not replaced since).
    wiped: bool,
}

impl SimNode {
    fn local_ms(&self, now_us: u64) -> u64 {
        let scaled = now_us as i128 * (1_000_000 + self.drift_ppm as i128) / 1_000_000;
        let ms = EPOCH_MS as i128 + self.skew_ms as i128 + scaled / 1000;
        ms.max(0) as u64
    }

    fn tick_period_us(&self) -> u64 {
        let p = 100_000i128 * 1_000_000 / (1_000_000 + self.drift_ppm as i128);
        p.max(1) as u64
    }
}

struct Op {
    /// The engine request id (writes) or a read's own id (reads; never in the log).
    id: RequestId,
    /// A write: the request for the log.
    write: Option<Request>,
    /// A read: what it asks (`bytes` is its encoding).
    read: Option<Query>,
    /// Reads: the highest log index acknowledged to any client when the read was invoked.
    after_index: u64,
    bytes: Vec<u8>,
    invoked_us: u64,
    attempts: u32,
    /// The node request id of the current attempt.
    attempt: u64,
}

struct Client {
    owned: Owned,
    seq: u64,
    current: Option<Op>,
    hint: Option<u64>,
    /// Operations finished (acked, refused or given up) since the liveness phase started.
    live_done: u64,
    /// The admin client loads the region; it has a fixed list of commands.
    admin: Option<Vec<ninety_engine::Command>>,
    /// The multi-region driver's client (`sim::external`): it sends only what it is given.
    external: bool,
}

impl Client {
    /// A client with nothing sent yet; `external` for the multi-region driver's.
    fn fresh(external: bool) -> Client {
        Client {
            owned: Owned::default(),
            seq: 0,
            current: None,
            hint: None,
            live_done: 0,
            admin: None,
            external,
        }
    }
}

enum Event {
    Deliver {
        msg: Message,
        snapshot: bool,
    },
    SnapshotStatus {
        to: u64,
        peer: u64,
        delivered: bool,
    },
    Tick {
        node: u64,
        incarnation: u64,
    },
    ClientNext {
        client: usize,
    },
    ClientArrive {
        node: u64,
        id: u64,
        bytes: Vec<u8>,
        read: bool,
    },
    ClientReply {
        id: u64,
        result: Result<Reply, RequestError>,
    },
    ClientTimeout {
        client: usize,
        attempt: u64,
    },
    Crash,
    Restart {
        node: u64,
        incarnation: u64,
    },
    Partition,
    Heal,
    Operator,
    Flush,
    /// Node `node`'s persistence worker made its queued writes up to Ready `number`
    /// durable (`sim::persist`).
    Persisted {
        node: u64,
        incarnation: u64,
        number: u64,
    },
    /// Node `node`'s snapshot writer finished the job that encoded to `snapshot`
    /// (`sim::snapshot`).
    SnapshotWritten {
        node: u64,
        incarnation: u64,
        snapshot: Box<Snapshot>,
    },
}

struct Scheduled {
    at: u64,
    seq: u64,
    event: Event,
}

impl PartialEq for Scheduled {
    fn eq(&self, o: &Self) -> bool {
        (self.at, self.seq) == (o.at, o.seq)
    }
}
impl Eq for Scheduled {}
impl PartialOrd for Scheduled {
    fn partial_cmp(&self, o: &Self) -> Option<Ordering> {
        Some(self.cmp(o))
    }
}
impl Ord for Scheduled {
    fn cmp(&self, o: &Self) -> Ordering {
        (o.at, o.seq).cmp(&(self.at, self.seq))
    }
}

/// One simulated run.
pub struct Sim {
    seed: u64,
    opts: Options,
    faults: Faults,
    now: u64,
    seq: u64,
    queue: BinaryHeap<Scheduled>,
    net_rng: Rng,
    fault_rng: Rng,
    work_rng: Rng,
    /// Election timeouts: one per node start, so a seed replays raft's elections exactly.
    election_rng: Rng,
    /// Crashes in the middle of a write (its own stream, so the other faults of a seed are
    /// drawn as before it existed).
    crash_rng: Rng,
    /// Wiped disks and data-directory incarnations (its own stream, as `crash_rng`).
    wipe_rng: Rng,
    /// How long the persistence worker takes (`sim::persist`; its own stream too).
    persist_rng: Rng,
    /// How long the snapshot writer takes, and crashes before a record (`sim::snapshot`).
    snapshot_rng: Rng,
    nodes: BTreeMap<u64, SimNode>,
    next_node_id: u64,
    rec: RecorderHandle,
    blocked: BTreeSet<(u64, u64)>,
    clients: Vec<Client>,
    /// Node request id → (client, engine request id).
    routes: BTreeMap<u64, (usize, RequestId)>,
    next_req: u64,
    acks: Vec<Ack>,
    reads: Vec<ReadObs>,
    /// The highest log index acknowledged to any client so far.
    max_acked_index: u64,
    phase: Phase,
    phase_started_us: u64,
    ops_done: u64,
    region: RegionInfo,
    replacing: Option<(u64, u64)>,
    leaders: BTreeMap<u64, u64>,
    stats: Stats,
    violations: Vec<String>,
    /// A multi-region run (`crate::multi`) moves this run from safety to liveness and on to
    /// the end; the run does not on its own.
    linked: bool,
    /// The other region the workload asks beds of (`HoldRemoteBed`), in multi-region runs.
    remote_dest: Option<workload::RemoteDest>,
    /// Answers to what the driver `submit`ted, in arrival order (`sim::external`).
    external_done: Vec<External>,
    /// When the driver first sent each request id (a step is sent again by later drivers).
    external_invoked: BTreeMap<RequestId, u64>,
}

impl Sim {
    /// Builds the run of `seed`.
    pub fn new(seed: u64, opts: &Options) -> Result<Sim, String> {
        Sim::new_region(seed, opts, 0)
    }

    /// Builds region `index` of the run of `seed`: region 0 is the run `new` builds; the
    /// others share its fault model (the seed's) and draw everything else from their own
    /// streams.
    pub(crate) fn new_region(seed: u64, opts: &Options, index: u64) -> Result<Sim, String> {
        let faults = Faults::from_seed(seed, opts.fault_scale_per_mille);
        let mut root = match index {
            0 => Rng::new(seed),
            _ => Rng::new(seed).fork(100 + index),
        };
        let first_start = LogTime(EPOCH_MS + ninety_engine::time::MS_PER_DAY);
        let region = region::info(first_start, LogTime(EPOCH_MS))?;
        let mut sim = Sim {
            seed,
            opts: opts.clone(),
            faults: faults.clone(),
            now: 0,
            seq: 0,
            queue: BinaryHeap::new(),
            net_rng: root.fork(2),
            fault_rng: root.fork(3),
            work_rng: root.fork(4),
            election_rng: root.fork(5),
            crash_rng: root.fork(6),
            wipe_rng: root.fork(7),
            persist_rng: root.fork(8),
            snapshot_rng: root.fork(9),
            nodes: BTreeMap::new(),
            next_node_id: faults.nodes + 1,
            rec: Rc::new(RefCell::new(Recorder::default())),
            blocked: BTreeSet::new(),
            clients: Vec::new(),
            routes: BTreeMap::new(),
            next_req: 1,
            acks: Vec::new(),
            reads: Vec::new(),
            max_acked_index: 0,
            phase: Phase::Setup,
            phase_started_us: 0,
            ops_done: 0,
            region,
            replacing: None,
            leaders: BTreeMap::new(),
            stats: Stats::default(),
            violations: Vec::new(),
            linked: false,
            remote_dest: None,
            external_done: Vec::new(),
            external_invoked: BTreeMap::new(),
        };
        let voters: Vec<u64> = (1..=faults.nodes).collect();
        for id in 1..=faults.nodes {
            sim.add_node(id, Some(&voters))?;
        }
        sim.clients.push(Client {
            admin: Some(region::bootstrap(first_start)),
            ..Client::fresh(false)
        });
        sim.schedule(0, Event::ClientNext { client: 0 });
        Ok(sim)
    }

    fn log(&self, what: impl FnOnce() -> String) {
        if self.opts.verbose {
            eprintln!("[{:>9.3}s] {}", self.now as f64 / 1e6, what());
        }
    }

    fn violation(&mut self, v: String) {
        self.log(|| format!("VIOLATION: {v}"));
        if self.violations.len() < 16 {
            self.violations.push(v);
        }
    }

    fn schedule(&mut self, after_us: u64, event: Event) {
        self.seq += 1;
        self.queue.push(Scheduled {
            at: self.now + after_us,
            seq: self.seq,
            event,
        });
    }

    /// The node's config; its election timeout is drawn from the seed (a range of exactly
    /// one value: raft-rs's range is half-open), so raft-rs never draws from `thread_rng`.
    fn node_config(&mut self, id: u64) -> NodeConfig {
        let mut cfg = NodeConfig::new(id);
        let base = cfg.election_ticks;
        cfg.min_election_ticks = base + self.election_rng.below(base as u64) as usize;
        cfg.max_election_ticks = cfg.min_election_ticks + 1;
        cfg.snapshot_interval_entries = self.faults.snapshot_every;
        cfg.log_retain_entries = self.faults.log_retain;
        cfg.lost_data_guard = !self.opts.bugs.wiped_node_rejoins;
        // Snapshots are written by the simulated writer (`sim::snapshot`), as in the runtime.
        cfg.background_snapshots = true;
        cfg
    }

    fn add_node(&mut self, id: u64, voters: Option<&[u64]>) -> Result<(), String> {
        let disk = Disk::new_handle(self.opts.bugs.store_ack_before_durable);
        if let Some(voters) = voters {
            let mut store = SimStore::open(disk.clone()).map_err(|e| e.to_string())?;
            bootstrap(&mut store, voters, &EngineMachine::new()).map_err(|e| e.to_string())?;
        }
        let skew = self.faults.skew_ms as i64;
        let drift = self.faults.drift_ppm as i64;
        let skew_ms = self.fault_rng.range(0, 2 * skew as u64) as i64 - skew;
        let drift_ppm = self.fault_rng.range(0, 2 * drift as u64) as i64 - drift;
        let data_incarnation = self.new_data_incarnation();
        self.nodes.insert(
            id,
            SimNode {
                disk,
                skew_ms,
                drift_ppm,
                local_ms: Rc::new(Cell::new(0)),
                core: None,
                incarnation: 0,
                state: NodeState::Down,
                crash_in_write: None,
                data_incarnation,
                founder: voters.is_some(),
                wiped: false,
            },
        );
        self.log(|| format!("node {id} created: skew {skew_ms} ms, drift {drift_ppm} ppm"));
        self.start_node(id, false);
        Ok(())
    }

    /// Starts (or restarts) a node from its disk; `corrupt` first damages a durable record.
    fn start_node(&mut self, id: u64, corrupt: bool) {
        let cfg = self.node_config(id);
        let (bugs, hash_every, rec) = (self.opts.bugs, self.faults.hash_every, self.rec.clone());
        let Some(n) = self.nodes.get_mut(&id) else {
            return;
        };
        let injected = corrupt && n.disk.borrow_mut().corrupt(&mut self.fault_rng);
        let machine = SimMachine::new(id, rec, bugs, n.local_ms.clone(), hash_every);
        let started = SimStore::open(n.disk.clone())
            .and_then(|store| Node::new(cfg, store, machine, &discard_logger()));
        n.incarnation += 1;
        let inc = n.incarnation;
        match started {
            Ok(mut core) => {
                core.set_incarnation(n.data_incarnation);
                n.core = Some(core);
                n.state = NodeState::Up;
                let period = n.tick_period_us();
                let jitter = self.fault_rng.below(period);
                self.schedule(
                    jitter,
                    Event::Tick {
                        node: id,
                        incarnation: inc,
                    },
                );
                if injected {
                    self.violation(format!("node {id} started on a corrupted disk"));
                } else {
                    self.log(|| format!("node {id} started"));
                }
            }
            Err(e) => {
                n.core = None;
                n.state = NodeState::Failed;
                if injected {
                    self.stats.corruptions_detected += 1;
                    self.log(|| format!("node {id} refused to start: {e}"));
                } else {
                    self.violation(format!("node {id} failed to start: {e}"));
                }
            }
        }
    }

    fn crash_node(&mut self, id: u64, torn: bool) {
        let Some(n) = self.nodes.get_mut(&id) else {
            return;
        };
        n.core = None;
        n.state = NodeState::Down;
        n.incarnation += 1;
        n.crash_in_write = None;
        n.disk.borrow_mut().crash(&mut self.fault_rng, torn);
        self.stats.crashes += 1;
        if torn {
            self.stats.torn_writes += 1;
        }
    }

    fn is_up(&self, id: u64) -> bool {
        self.nodes
            .get(&id)
            .is_some_and(|n| n.state == NodeState::Up)
    }

    fn delay_us(&mut self) -> u64 {
        let (lo, hi) = self.faults.delay_ms;
        self.net_rng.range(lo * US, hi * US)
    }

    fn lossy(&self) -> bool {
        self.phase == Phase::Safety
    }

    fn step(&mut self, id: u64, input: Input) {
        if let Some(core) = self.nodes.get_mut(&id).and_then(|n| n.core.as_mut()) {
            core.step(input);
            self.poll(id);
        }
    }

    fn poll(&mut self, id: u64) {
        let now = self.now;
        let Some(n) = self.nodes.get_mut(&id) else {
            return;
        };
        let local = n.local_ms(now);
        n.local_ms.set(local);
        let Some(core) = n.core.as_mut() else {
            return;
        };
        self.rec.borrow_mut().now_us = now;
        let mut wire = Wire {
            disk: n.disk.clone(),
            calls: Vec::new(),
        };
        let durable_before = n.disk.borrow().durable_len();
        let result = core.poll_sending(&FixedClock(local), &mut wire);
        let (leader, term) = (core.is_leader(), core.status().term);
        let out = match result {
            Ok(out) => out,
            Err(e) => {
                n.core = None;
                n.state = NodeState::Failed;
                let e = e.to_string();
                if !self.stopped_for_lost_data(id, &e) {
                    self.violation(format!("node {id} stopped on a fatal error: {e}"));
                }
                return;
            }
        };
        if leader {
            if let Some(prev) = self.leaders.insert(term, id) {
                if prev != id {
                    self.violation(format!("two leaders in term {term}: {prev} and {id}"));
                }
            }
        }
        self.stats.max_term = self.stats.max_term.max(term);
        if self.crash_in_write(id, &mut wire, durable_before) {
            return;
        }
        self.send_wire(id, wire.calls);
        let (persist, snapshot) = (out.persist, out.snapshot);
        for c in out.completions {
            if self.routes.contains_key(&c.id) {
                if self.lossy() && self.net_rng.chance(self.faults.loss_per_mille) {
                    continue;
                }
                let d = self.delay_us();
                self.schedule(
                    d,
                    Event::ClientReply {
                        id: c.id,
                        result: c.result,
                    },
                );
            }
        }
        if let Some(number) = persist {
            self.queue_persist(id, number);
        }
        if let Some(job) = snapshot {
            self.queue_snapshot(id, job);
        }
    }

    fn send_wire(&mut self, from: u64, calls: Vec<(usize, Vec<Message>, bool)>) {
        for (_, msgs, snapshot) in calls {
            for m in msgs {
                self.stats.snapshots_sent += u64::from(snapshot);
                self.send(from, m, snapshot);
            }
        }
    }

    /// A pending crash in the write hits node `id` if this poll wrote something and sent
    /// something: the process dies right after a hand-over to the network drawn among this
    /// poll's, so what it handed over until then is sent, what it wrote after that is lost
    /// (or, with the `ack_before_write` bug, everything it wrote in this poll), and nothing
    /// else of the poll happens (no more messages, no answers). Returns whether it crashed.
    fn crash_in_write(&mut self, id: u64, wire: &mut Wire, durable_before: usize) -> bool {
        let Some(n) = self.nodes.get_mut(&id) else {
            return false;
        };
        let Some(crash) = n.crash_in_write else {
            return false;
        };
        let wrote = n.disk.borrow().durable_len() > durable_before;
        if !wrote || wire.calls.is_empty() {
            return false;
        }
        let k = self.crash_rng.below(wire.calls.len() as u64) as usize;
        let mut calls = std::mem::take(&mut wire.calls);
        calls.truncate(k + 1);
        let durable = match self.opts.bugs.ack_before_write {
            true => durable_before,
            false => calls[k].0,
        };
        n.core = None;
        n.state = NodeState::Down;
        n.incarnation += 1;
        n.crash_in_write = None;
        let inc = n.incarnation;
        n.disk
            .borrow_mut()
            .crash_at(durable, &mut self.crash_rng, crash.torn);
        self.stats.crashes += 1;
        self.stats.crashes_in_write += 1;
        self.stats.torn_writes += u64::from(crash.torn);
        self.log(|| {
            format!(
                "node {id} crashed in its write after hand-over {} of its poll (torn: {}), \
                 down {} ms",
                k + 1,
                crash.torn,
                crash.down_us / US
            )
        });
        self.send_wire(id, calls);
        let restart = Event::Restart {
            node: id,
            incarnation: inc,
        };
        self.schedule(crash.down_us, restart);
        true
    }

    fn send(&mut self, from: u64, msg: Message, snapshot: bool) {
        self.stats.messages += 1;
        let to = msg.to;
        let cut = self.blocked.contains(&(from, to));
        let lost = self.lossy() && self.net_rng.chance(self.faults.loss_per_mille);
        if cut || lost {
            self.stats.dropped += 1;
            if snapshot {
                let d = self.delay_us();
                self.schedule(
                    d,
                    Event::SnapshotStatus {
                        to: from,
                        peer: to,
                        delivered: false,
                    },
                );
            }
            return;
        }
        if !snapshot && self.lossy() && self.net_rng.chance(self.faults.dup_per_mille) {
            self.stats.duplicated += 1;
            let d = self.delay_us();
            self.schedule(
                d,
                Event::Deliver {
                    msg: msg.clone(),
                    snapshot: false,
                },
            );
        }
        let d = self.delay_us();
        self.schedule(d, Event::Deliver { msg, snapshot });
    }

    fn run_event(&mut self, event: Event) {
        match event {
            Event::Deliver { msg, snapshot } => {
                let (from, to) = (msg.from, msg.to);
                let delivered = self.is_up(to)
                    && !self.blocked.contains(&(from, to))
                    && self.gate_delivery(from, to);
                if delivered {
                    self.step(to, Input::Message(msg));
                }
                if snapshot {
                    let d = self.delay_us();
                    self.schedule(
                        d,
                        Event::SnapshotStatus {
                            to: from,
                            peer: to,
                            delivered,
                        },
                    );
                }
            }
            Event::SnapshotStatus {
                to,
                peer,
                delivered,
            } => self.step(to, Input::SnapshotStatus { peer, delivered }),
            Event::Tick { node, incarnation } => {
                let Some(n) = self.nodes.get(&node) else {
                    return;
                };
                if n.incarnation != incarnation || n.state != NodeState::Up {
                    return;
                }
                let period = n.tick_period_us();
                self.schedule(period, Event::Tick { node, incarnation });
                self.step(node, Input::Tick);
            }
            Event::ClientNext { client } => self.client_next(client),
            Event::ClientArrive {
                node,
                id,
                bytes,
                read: false,
            } => self.step(node, Input::Propose { id, command: bytes }),
            Event::ClientArrive {
                node,
                id,
                bytes,
                read: true,
            } => {
                if self.opts.bugs.stale_reads {
                    self.stale_read(node, id, &bytes);
                } else {
                    self.step(node, Input::Read { id, query: bytes });
                }
            }
            Event::ClientReply { id, result } => self.client_reply(id, result),
            Event::ClientTimeout { client, attempt } => {
                let current = self.clients.get(client).and_then(|c| c.current.as_ref());
                if current.is_some_and(|op| op.attempt == attempt) {
                    if let Some(c) = self.clients.get_mut(client) {
                        c.hint = None;
                    }
                    self.retry(client);
                }
            }
            Event::Crash => self.on_crash(),
            Event::Restart { node, incarnation } => {
                let Some(n) = self.nodes.get(&node) else {
                    return;
                };
                if n.incarnation != incarnation || n.state != NodeState::Down {
                    return;
                }
                let corrupt = self.phase == Phase::Safety
                    && self.stats.replacements < REPLACEMENTS_MAX
                    && !self.a_node_lost_its_data()
                    && self.fault_rng.chance(self.faults.corrupt_per_mille);
                if self.prepare_start(node) {
                    self.start_node(node, corrupt);
                }
            }
            Event::Partition => self.on_partition(),
            Event::Heal => {
                if !self.blocked.is_empty() {
                    self.log(|| "partition healed".into());
                }
                self.blocked.clear();
            }
            Event::Operator => self.on_operator(),
            Event::Persisted {
                node,
                incarnation,
                number,
            } => self.on_persisted(node, incarnation, number),
            Event::SnapshotWritten {
                node,
                incarnation,
                snapshot,
            } => self.on_snapshot_written(node, incarnation, *snapshot),
            Event::Flush => {
                if self.phase != Phase::Done {
                    for n in self.nodes.values() {
                        n.disk.borrow_mut().sync();
                    }
                    self.schedule(1_000 * US, Event::Flush);
                }
            }
        }
    }

    fn every(&mut self, mean_ms: u64) -> u64 {
        self.fault_rng.range(mean_ms / 2, mean_ms * 3 / 2) * US
    }

    fn on_crash(&mut self) {
        if self.phase != Phase::Safety || self.faults.crash_every_ms == 0 {
            return;
        }
        let up: Vec<u64> = self
            .nodes
            .iter()
            .filter(|(_, n)| n.state == NodeState::Up)
            .map(|(id, _)| *id)
            .collect();
        if let Some(&id) = self.fault_rng.pick(&up) {
            let torn = self.fault_rng.chance(self.faults.torn_per_mille);
            if self.crash_rng.chance(self.faults.crash_in_write_per_mille) {
                self.arm_crash_in_write(id, torn);
                let next = self.every(self.faults.crash_every_ms);
                self.schedule(next, Event::Crash);
                return;
            }
            self.crash_node(id, torn);
            self.maybe_wipe(id);
            let (lo, hi) = self.faults.down_ms;
            let down = self.fault_rng.range(lo, hi) * US;
            let inc = self.nodes.get(&id).map_or(0, |n| n.incarnation);
            self.log(|| {
                format!(
                    "node {id} crashed (torn write: {torn}), down {} ms",
                    down / US
                )
            });
            self.schedule(
                down,
                Event::Restart {
                    node: id,
                    incarnation: inc,
                },
            );
        }
        let next = self.every(self.faults.crash_every_ms);
        self.schedule(next, Event::Crash);
    }

    /// Makes node `id` crash in the middle of its next poll that writes (`crash_in_write`).
    fn arm_crash_in_write(&mut self, id: u64, torn: bool) {
        let (lo, hi) = self.faults.down_ms;
        let down_us = self.crash_rng.range(lo, hi) * US;
        if let Some(n) = self.nodes.get_mut(&id) {
            n.crash_in_write = Some(CrashInWrite { torn, down_us });
        }
        self.log(|| format!("node {id} will crash in its next write"));
    }

    fn on_partition(&mut self) {
        if self.phase != Phase::Safety || self.faults.partition_every_ms == 0 {
            return;
        }
        let ids: Vec<u64> = self.nodes.keys().copied().collect();
        self.blocked.clear();
        let kind = self.fault_rng.below(4);
        let cut = |a: u64, b: u64, both: bool, blocked: &mut BTreeSet<(u64, u64)>| {
            blocked.insert((a, b));
            if both {
                blocked.insert((b, a));
            }
        };
        let leader = self.current_leader();
        let victim = match kind {
            0 => leader.or_else(|| self.fault_rng.pick(&ids).copied()),
            _ => self.fault_rng.pick(&ids).copied(),
        };
        let mut desc = String::new();
        match (kind, victim) {
            (0 | 1, Some(v)) => {
                for &o in ids.iter().filter(|o| **o != v) {
                    cut(v, o, true, &mut self.blocked);
                }
                desc = format!("node {v} isolated");
            }
            (2, _) => {
                let side: Vec<u64> = ids
                    .iter()
                    .copied()
                    .filter(|_| self.fault_rng.chance(500))
                    .collect();
                for &a in &side {
                    for &b in ids.iter().filter(|b| !side.contains(b)) {
                        cut(a, b, true, &mut self.blocked);
                    }
                }
                desc = format!("split {side:?} from the rest");
            }
            (_, Some(v)) => {
                if let Some(&o) = self.fault_rng.pick(&ids).filter(|o| **o != v) {
                    cut(v, o, false, &mut self.blocked);
                    desc = format!("one-way link {v} -> {o} cut");
                }
            }
            _ => {}
        }
        self.stats.partitions += 1;
        self.log(|| format!("partition: {desc}"));
        let heal = self.fault_rng.range(300, 8_000) * US;
        self.schedule(heal, Event::Heal);
        let next = self.every(self.faults.partition_every_ms);
        self.schedule(next, Event::Partition);
    }

    fn current_leader(&self) -> Option<u64> {
        self.nodes
            .iter()
            .filter_map(|(id, n)| n.core.as_ref().map(|c| (id, c)))
            .filter(|(_, c)| c.is_leader())
            .max_by_key(|(_, c)| c.status().term)
            .map(|(id, _)| *id)
    }

    fn on_operator(&mut self) {
        if self.phase == Phase::Done {
            return;
        }
        self.schedule(OPERATOR_MS * US, Event::Operator);
        if self.phase == Phase::Safety
            && self.replacing.is_none()
            && self.stats.replacements < REPLACEMENTS_MAX
            && !self.a_node_lost_its_data()
            && self.fault_rng.chance(self.faults.replace_per_mille / 2)
        {
            let up: Vec<u64> = self
                .nodes
                .iter()
                .filter(|(_, n)| n.state == NodeState::Up)
                .map(|(id, _)| *id)
                .collect();
            if let Some(&id) = self.fault_rng.pick(&up) {
                self.log(|| format!("operator retires node {id}"));
                self.crash_node(id, false);
                if let Some(n) = self.nodes.get_mut(&id) {
                    n.state = NodeState::Failed;
                }
            }
        }
        let Some(leader) = self.current_leader() else {
            return;
        };
        if self.replacing.is_none() {
            let failed = self
                .nodes
                .iter()
                .find(|(_, n)| n.state == NodeState::Failed)
                .map(|(id, _)| *id);
            if let Some(old) = failed {
                let new = self.next_node_id;
                self.next_node_id += 1;
                self.stats.replacements += 1;
                self.replacing = Some((old, new));
                self.log(|| format!("operator replaces node {old} with node {new}"));
                if let Err(e) = self.add_node(new, None) {
                    self.violation(format!("cannot create node {new}: {e}"));
                }
            }
        }
        let Some((old, new)) = self.replacing else {
            return;
        };
        let Some(core) = self.nodes.get(&leader).and_then(|n| n.core.as_ref()) else {
            return;
        };
        let status = core.status();
        let conf = &status.conf_state;
        let member = |id: u64| conf.voters.contains(&id) || conf.learners.contains(&id);
        let change = if member(old) {
            Some(MembershipChange::Remove(old))
        } else if !member(new) {
            // Safe at any time: founders bootstrap from a snapshot at index 1, so a joining
            // node always receives a snapshot that carries the configuration.
            Some(MembershipChange::AddLearner(new))
        } else if conf.learners.contains(&new) {
            let caught_up = core
                .progress()
                .iter()
                .any(|(id, matched, _)| *id == new && *matched >= status.commit_index);
            caught_up.then_some(MembershipChange::PromoteVoter(new))
        } else {
            self.log(|| format!("operator: node {new} is a voter, node {old} removed"));
            if let Some(n) = self.nodes.get_mut(&old) {
                n.state = NodeState::Removed;
                n.core = None;
            }
            self.replacing = None;
            None
        };
        if let Some(change) = change {
            let id = self.next_req;
            self.next_req += 1;
            self.log(|| format!("operator asks leader {leader}: {change:?}"));
            self.step(
                leader,
                Input::ChangeMembership {
                    id,
                    change,
                    request: None,
                },
            );
        }
    }

    fn describe_nodes(&self) -> String {
        let mut out = String::new();
        for (id, n) in &self.nodes {
            out.push_str(&format!("\n  node {id} {:?}", n.state));
            if let Some(c) = &n.core {
                let s = c.status();
                out.push_str(&format!(
                    " {:?} term {} commit {} applied {} voters {:?} learners {:?} progress {:?}",
                    s.role,
                    s.term,
                    s.commit_index,
                    s.applied_index,
                    s.conf_state.voters,
                    s.conf_state.learners,
                    c.progress()
                ));
            }
        }
        out
    }

    // ---- clients ----

    fn client_next(&mut self, client: usize) {
        let Some(c) = self.clients.get_mut(client) else {
            return;
        };
        if c.current.is_some() || c.external {
            return;
        }
        let op = if let Some(admin) = c.admin.as_mut() {
            if admin.is_empty() {
                c.admin = None;
                return;
            }
            let command = admin.remove(0);
            c.seq += 1;
            // Admin commands are this client's requests like any other: the client's
            // sequence keeps their ids apart from its workload's.
            (
                workload::request_id(client as u64, c.seq),
                ClientOp::Write(command),
            )
        } else {
            let done = match self.phase {
                Phase::Safety => self.ops_done >= self.opts.ops,
                Phase::Liveness => c.live_done >= LIVENESS_OPS,
                Phase::Setup | Phase::Done => true,
            };
            if done {
                return;
            }
            c.seq += 1;
            let patient = (client as u128) << 32 | u128::from(c.seq % 4);
            let op = match &self.remote_dest {
                Some(dest) => workload::next_op_with_remote(
                    &mut self.work_rng,
                    &self.region,
                    dest,
                    &c.owned,
                    patient,
                ),
                None => workload::next_op(&mut self.work_rng, &self.region, &c.owned, patient),
            };
            (workload::request_id(client as u64, c.seq), op)
        };
        let (id, (write, read)) = match op {
            (id, ClientOp::Write(command)) => (id, (Some(Request { id, command }), None)),
            (id, ClientOp::Read(query)) => (id, (None, Some(query))),
        };
        let bytes = match (&write, &read) {
            (Some(r), _) => encode_request(r),
            (_, Some(q)) => encode_query(q),
            (None, None) => Err("empty operation".into()),
        };
        let bytes = match bytes {
            Ok(b) => b,
            Err(e) => {
                self.violation(format!("cannot encode a request: {e}"));
                return;
            }
        };
        c.current = Some(Op {
            id,
            write,
            read,
            after_index: self.max_acked_index,
            bytes,
            invoked_us: self.now,
            attempts: 0,
            attempt: 0,
        });
        self.send_attempt(client);
    }

    fn send_attempt(&mut self, client: usize) {
        let members: Vec<u64> = self
            .nodes
            .iter()
            .filter(|(_, n)| n.state != NodeState::Removed)
            .map(|(id, _)| *id)
            .collect();
        let id = self.next_req;
        self.next_req += 1;
        let pick = self.net_rng.pick(&members).copied();
        let lost = self.lossy() && self.net_rng.chance(self.faults.loss_per_mille);
        let delay = self.delay_us();
        let timeout = self.faults.client_timeout_ms * US;
        let Some(c) = self.clients.get_mut(client) else {
            return;
        };
        let Some(op) = c.current.as_mut() else {
            return;
        };
        // Reads go to any member half the time (followers and learners serve them through
        // ReadIndex too), writes to the leader hint when there is one.
        let read = op.read.is_some();
        let hint = c
            .hint
            .filter(|h| members.contains(h) && !(read && op.attempts % 2 == 0));
        let node = hint.or(pick).unwrap_or(1);
        op.attempts += 1;
        op.attempt = id;
        let bytes = op.bytes.clone();
        self.routes.insert(id, (client, op.id));
        if !lost {
            self.schedule(
                delay,
                Event::ClientArrive {
                    node,
                    id,
                    bytes,
                    read,
                },
            );
        }
        self.schedule(
            timeout,
            Event::ClientTimeout {
                client,
                attempt: id,
            },
        );
    }

    fn retry(&mut self, client: usize) {
        let give_up = self.phase == Phase::Safety
            && self.clients.get(client).is_some_and(|c| {
                c.admin.is_none()
                    && c.current
                        .as_ref()
                        .is_some_and(|op| op.attempts >= ATTEMPTS_MAX)
            });
        if give_up {
            if self.external_gave_up(client, "gave up after 12 attempts") {
                return;
            }
            self.stats.ops_gave_up += 1;
            self.finish_op(client);
            return;
        }
        self.stats.retries += 1;
        self.send_attempt(client);
    }

    fn finish_op(&mut self, client: usize) {
        if let Some(c) = self.clients.get_mut(client) {
            if c.external {
                c.current = None;
                return;
            }
            c.current = None;
            if c.admin.is_none() {
                self.ops_done += 1;
                if self.phase == Phase::Liveness {
                    c.live_done += 1;
                }
            }
        }
        let think = self.work_rng.range(0, 200) * US;
        self.schedule(think, Event::ClientNext { client });
    }

    fn client_reply(&mut self, id: u64, result: Result<Reply, RequestError>) {
        let Some(&(client, request_id)) = self.routes.get(&id) else {
            return;
        };
        match result {
            Ok(Reply::Read { index, result }) => {
                let Some(op) = self
                    .clients
                    .get(client)
                    .and_then(|c| c.current.as_ref())
                    .filter(|op| op.id == request_id && op.read.is_some())
                else {
                    return;
                };
                let obs = ReadObs {
                    command: false,
                    query: op.bytes.clone(),
                    result,
                    read_index: index,
                    after_index: op.after_index,
                    before_index: self.last_logged_index(),
                    invoked_us: op.invoked_us,
                    acked_us: self.now,
                };
                self.reads.push(obs);
                self.stats.reads += 1;
                self.finish_op(client);
            }
            Ok(Reply::Applied { index, outcome }) => {
                self.max_acked_index = self.max_acked_index.max(index);
                let applied = match decode_applied(&outcome) {
                    Ok(a) => a,
                    Err(e) => {
                        self.violation(format!("undecodable reply to {request_id:?}: {e}"));
                        return;
                    }
                };
                let current = self
                    .clients
                    .get(client)
                    .and_then(|c| c.current.as_ref())
                    .filter(|op| op.id == request_id);
                let invoked_us = current.map(|op| op.invoked_us);
                // A refusal answered as a read (no entry: index 0, not a replay) is checked
                // like a read: against the history's answer at some index in its window.
                if index == 0 && !applied.replayed && applied.outcome.is_err() {
                    if let Some(op) = current.filter(|op| op.write.is_some()) {
                        let obs = ReadObs {
                            command: true,
                            query: op.bytes.clone(),
                            result: outcome.clone(),
                            read_index: 0,
                            after_index: op.after_index,
                            before_index: self.last_logged_index(),
                            invoked_us: op.invoked_us,
                            acked_us: self.now,
                        };
                        self.reads.push(obs);
                        self.stats.refusals_as_reads += 1;
                    }
                }
                let external = self.clients.get(client).is_some_and(|c| c.external);
                if let Some(req) = current.and_then(|op| op.write.clone()).filter(|_| external) {
                    self.external_answered(client, req.id, applied.outcome.clone());
                } else if let Some(req) = current.and_then(|op| op.write.clone()) {
                    let out = applied.outcome.clone();
                    if out.is_ok() {
                        self.stats.ops_acked += 1;
                    } else {
                        self.stats.ops_refused += 1;
                    }
                    if matches!(
                        out,
                        Ok(ninety_engine::Reply::BedAllocated { .. }
                            | ninety_engine::Reply::SlotAllocated { .. })
                    ) {
                        self.stats.allocations += 1;
                    }
                    match (workload::referral_seat_ask(&req.command), &out) {
                        (true, Ok(_)) => self.stats.referral_seats += 1,
                        (true, Err(e)) if workload::refuses_referral(e) => {
                            self.stats.referral_seats_refused += 1
                        }
                        _ => {}
                    }
                    if let Some(c) = self.clients.get_mut(client) {
                        if c.admin.is_none() {
                            count_lifecycle(&mut self.stats, &req, &out);
                        }
                        workload::learn(&mut c.owned, &req, &out);
                    }
                    self.finish_op(client);
                }
                self.acks.push(Ack {
                    request: request_id,
                    index,
                    applied,
                    invoked_us,
                    acked_us: self.now,
                });
            }
            Ok(other) => {
                self.violation(format!("unexpected reply to a proposal: {other:?}"));
            }
            Err(e) => {
                let current = self.clients.get(client).and_then(|c| c.current.as_ref());
                if current.is_none_or(|op| op.attempt != id) {
                    return;
                }
                if !e.is_retryable() {
                    if self.external_gave_up(client, &e.to_string()) {
                        return;
                    }
                    self.stats.ops_failed += 1;
                    self.log(|| format!("request {request_id:?} failed: {e}"));
                    self.finish_op(client);
                    return;
                }
                let (hint, backoff) = match e {
                    RequestError::NotLeader { leader: Some(l) } => (Some(l), 1..=5),
                    _ => (None, 20..=200),
                };
                if let Some(c) = self.clients.get_mut(client) {
                    c.hint = hint;
                }
                // A short backoff, then the same request id again.
                let wait = self.work_rng.range(*backoff.start(), *backoff.end()) * US;
                if let Some(op) = self
                    .clients
                    .get_mut(client)
                    .and_then(|c| c.current.as_mut())
                {
                    op.attempt = 0;
                }
                self.schedule(wait, Event::ClientTimeout { client, attempt: 0 });
            }
        }
    }

    /// The highest index any replica has applied.
    fn last_logged_index(&self) -> u64 {
        let rec = self.rec.borrow();
        rec.log.keys().next_back().copied().unwrap_or(0)
    }

    /// The `stale_reads` bug: the receiving node answers from its local state at once.
    fn stale_read(&mut self, node: u64, id: u64, query: &[u8]) {
        let Some(core) = self.nodes.get(&node).and_then(|n| n.core.as_ref()) else {
            return;
        };
        let result = Ok(Reply::Read {
            index: core.status().applied_index,
            result: core.state_machine().query(query),
        });
        if self.lossy() && self.net_rng.chance(self.faults.loss_per_mille) {
            return;
        }
        let d = self.delay_us();
        self.schedule(d, Event::ClientReply { id, result });
    }

    // ---- phases ----

    fn start_safety(&mut self) {
        self.phase = Phase::Safety;
        self.phase_started_us = self.now;
        self.log(|| "region loaded; safety phase (faults on)".into());
        for i in 0..self.faults.clients {
            self.clients.push(Client::fresh(false));
            let c = self.clients.len() - 1;
            let d = self.work_rng.range(0, 50) * US;
            self.schedule(d + i, Event::ClientNext { client: c });
        }
        if self.faults.crash_every_ms > 0 {
            let d = self.every(self.faults.crash_every_ms);
            self.schedule(d, Event::Crash);
        }
        if self.faults.partition_every_ms > 0 {
            let d = self.every(self.faults.partition_every_ms);
            self.schedule(d, Event::Partition);
        }
        self.schedule(OPERATOR_MS * US, Event::Operator);
        self.schedule(1_000 * US, Event::Flush);
    }

    fn start_liveness(&mut self) {
        self.phase = Phase::Liveness;
        self.phase_started_us = self.now;
        self.log(|| "liveness phase (faults off)".into());
        self.blocked.clear();
        for n in self.nodes.values_mut() {
            n.crash_in_write = None;
        }
        let down: Vec<u64> = self
            .nodes
            .iter()
            .filter(|(_, n)| n.state == NodeState::Down)
            .map(|(id, _)| *id)
            .collect();
        for id in down {
            if self.prepare_start(id) {
                self.start_node(id, false);
            }
        }
        for c in 0..self.clients.len() {
            self.schedule(0, Event::ClientNext { client: c });
        }
    }

    fn converged(&self) -> bool {
        if self.replacing.is_some() || self.nodes.values().any(|n| n.state == NodeState::Failed) {
            return false;
        }
        let Some(leader) = self.current_leader() else {
            return false;
        };
        let Some(ls) = self
            .nodes
            .get(&leader)
            .and_then(|n| n.core.as_ref())
            .map(|c| c.status())
        else {
            return false;
        };
        let members: BTreeSet<u64> = ls
            .conf_state
            .voters
            .iter()
            .chain(&ls.conf_state.learners)
            .copied()
            .collect();
        ls.commit_index == ls.applied_index
            && members.iter().all(|id| {
                self.nodes
                    .get(id)
                    .and_then(|n| n.core.as_ref())
                    .is_some_and(|c| c.status().applied_index == ls.applied_index)
            })
    }

    fn clients_done(&self) -> bool {
        self.clients.iter().all(|c| {
            c.admin.is_some() || c.external || (c.current.is_none() && c.live_done >= LIVENESS_OPS)
        })
    }

    fn advance_phase(&mut self) {
        match self.phase {
            Phase::Setup => {
                let admin_done = self
                    .clients
                    .first()
                    .is_some_and(|c| c.admin.is_none() && c.current.is_none());
                if admin_done {
                    self.start_safety();
                } else if self.now > SETUP_BUDGET_MS * US {
                    self.violation("setup: the region was not loaded within the budget".into());
                    self.phase = Phase::Done;
                }
            }
            Phase::Safety => {
                if self.safety_over() && !self.linked {
                    self.start_liveness();
                }
            }
            Phase::Liveness => {
                let elapsed = self.now - self.phase_started_us;
                let live = self.clients_done() && self.converged();
                if live && !self.linked {
                    self.stats.liveness_ms = elapsed / US;
                    self.phase = Phase::Done;
                } else if !live && elapsed > self.opts.liveness_budget_ms * US {
                    let waiting = self.clients.iter().filter(|c| c.current.is_some()).count();
                    let nodes = self.describe_nodes();
                    self.log(|| format!("nodes at the liveness deadline: {nodes}"));
                    self.violation(format!(
                        "liveness: {} ms after faults stopped: leader {:?}, converged {}, \
                         {waiting} clients still waiting",
                        elapsed / US,
                        self.current_leader(),
                        self.converged()
                    ));
                    self.phase = Phase::Done;
                }
            }
            Phase::Done => {}
        }
    }

    /// Whether the safety phase's work is done (or its budget spent).
    fn safety_over(&self) -> bool {
        let budget = self.now - self.phase_started_us > self.opts.safety_budget_ms * US;
        let work_done = self.ops_done >= self.opts.ops
            && self
                .clients
                .iter()
                .all(|c| c.external || c.current.is_none());
        work_done || budget
    }

    /// Runs to the end and checks the history.
    pub fn run(mut self) -> RunReport {
        self.log(|| format!("seed {} faults: {}", self.seed, self.faults));
        while self.phase != Phase::Done && self.step_event() {}
        self.finish();
        self.into_report()
    }

    /// Runs the next event; `false` when the run must stop (no event, too many, or a
    /// violation found).
    fn step_event(&mut self) -> bool {
        let Some(s) = self.queue.pop() else {
            self.violation("the event queue ran dry".into());
            return false;
        };
        self.stats.events += 1;
        if self.stats.events > self.opts.max_events {
            self.violation(format!("more than {} events", self.opts.max_events));
            return false;
        }
        self.now = s.at;
        self.run_event(s.event);
        let found = std::mem::take(&mut self.rec.borrow_mut().violations);
        for v in found {
            self.violation(v);
        }
        if !self.violations.is_empty() {
            return false;
        }
        self.advance_phase();
        true
    }

    /// The report of a finished run.
    fn into_report(self) -> RunReport {
        RunReport {
            seed: self.seed,
            faults: self.faults,
            violations: self.violations,
            stats: self.stats,
        }
    }

    /// Ends the run: its figures, then (when nothing was found so far) the history check.
    fn finish(&mut self) {
        self.stats.sim_ms = self.now / US;
        {
            let rec = self.rec.borrow();
            self.stats.applies = rec.applies;
            self.stats.hash_checks = rec.hash_checks;
        }
        if self.violations.is_empty() {
            self.final_checks();
        }
    }

    fn final_checks(&mut self) {
        let finals: Vec<check::Replica<'_>> = self
            .nodes
            .iter()
            .filter_map(|(id, n)| {
                n.core
                    .as_ref()
                    .filter(|_| n.state == NodeState::Up)
                    .map(|c| (id, c))
            })
            .map(|(id, c)| check::Replica {
                node: *id,
                applied_index: c.status().applied_index,
                engine: c.state_machine().engine(),
            })
            .collect();
        self.stats.final_index = finals.iter().map(|r| r.applied_index).max().unwrap_or(0);
        let rec = self.rec.borrow();
        let mut rules = Rules::default();
        let found = check::history(&rec, &self.acks, &self.reads, &finals, &mut rules);
        drop(rec);
        self.stats.rolled_slots = rules.rolled.len() as u64;
        self.stats.overbooked_slots = rules.overbooked.len() as u64;
        self.stats.no_capacity_on_matched = rules.reported_matched;
        drop(finals);
        for v in found {
            self.violation(v);
        }
    }
}

/// Counts a schedule or referral-lifecycle command's answer.
fn count_lifecycle(stats: &mut Stats, req: &Request, out: &ninety_engine::Outcome) {
    let Some(name) = workload::lifecycle_name(&req.command) else {
        return;
    };
    let n = stats.lifecycle.entry(name).or_default();
    n[usize::from(out.is_err())] += 1;
    if let Ok(ninety_engine::Reply::SlotsWithdrawn { cancelled, .. }) = out {
        stats.seats_withdrawn += cancelled.len() as u64
    }
}
