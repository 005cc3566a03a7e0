//! The state machine under test, wrapped: [`SimMachine`] is the cluster's own
//! `EngineMachine` adapter plus a [`Recorder`] shared by all replicas, which after every
//! apply checks the engine invariants on that replica and checks that every replica applied
//! the same commands, got the same outcomes and (at sampled indexes) reached the same state
//! hash at the same index. The recorder's log (index → log time, commands) is what the
//! history checker replays on a fresh engine at the end.
//!
//! It also runs the rules of schedules and referrals across entries on every replica
//! ([`crate::rules`]), and hosts three deliberate bugs (see [`crate::Bugs`]): applying each
//! batch twice, running the engine on the node's local clock instead of the log time, and
//! reading `AmendSlot`'s seat numbers in the wrong field order.

use crate::cross_region::check::no_hold_past_expiry;
use crate::cross_region::stages::Stages;
use crate::disk::checksum;
use crate::options::Bugs;
use crate::rules::{Rules, Step};
use ninety_cluster::engine_sm::{
    decode_applied, decode_log_command, encode_request, EngineMachine,
};
use ninety_cluster::{ApplyContext, StateMachine};
use ninety_engine::{Command, Engine, HoldId, HoldState, Request, RequestKey, SeatLimits};
use std::cell::{Cell, RefCell};
use std::collections::{BTreeMap, BTreeSet};
use std::rc::Rc;

/// One applied log entry as first seen by any replica.
#[derive(Debug, Clone)]
pub struct LoggedBatch {
    pub term: u64,
    pub log_time_ms: u64,
    pub commands: Vec<Vec<u8>>,
    /// Digest of the outcomes the first replica produced.
    pub outcomes_digest: u64,
    /// True simulated time (µs) when the first replica applied it.
    pub first_applied_us: u64,
    /// Which node applied it first.
    pub first_node: u64,
}

/// Observations shared by every replica of one run.
#[derive(Debug, Default)]
pub struct Recorder {
    /// The committed batches by index.
    pub log: BTreeMap<u64, LoggedBatch>,
    /// Sampled state hashes by index (first replica's).
    pub hashes: BTreeMap<u64, ([u8; 32], u64)>,
    /// Safety violations found (the run stops at the first).
    pub violations: Vec<String>,
    /// True simulated time, µs (set by the simulator before each poll).
    pub now_us: u64,
    /// Applies performed (all replicas).
    pub applies: u64,
    /// State hash comparisons performed.
    pub hash_checks: u64,
}

impl Recorder {
    fn violation(&mut self, v: String) {
        if self.violations.len() < 16 {
            self.violations.push(v);
        }
    }
}

/// Shared handle on the recorder.
pub type RecorderHandle = Rc<RefCell<Recorder>>;

/// Each ward's held + occupied beds and staffed count after the previous apply.
pub type WardLoads = BTreeMap<ninety_engine::WardId, (u32, u32)>;

/// Checks the engine invariants that must hold after every apply; `deep` adds the slower
/// per-seat checks. `loads` is each ward's load and staffed count after the previous apply
/// (updated here): a ward may be over its staffed beds only because they were cut
/// (`SetStaffedBeds`, `UpsertWard` admit no one), never because a hold was admitted over
/// them, so held + occupied above staffed must not have grown unless staffed shrank.
pub fn check_invariants(engine: &Engine, deep: bool, loads: &mut WardLoads) -> Result<(), String> {
    let beds = engine.beds();
    for w in beds.wards() {
        let c = beds
            .counts(w.id)
            .ok_or_else(|| format!("ward {} has no counts", w.id))?;
        let load = c.held + c.occupied;
        let (before, staffed_before) = loads.get(&w.id).copied().unwrap_or((load, c.staffed));
        loads.insert(w.id, (load, c.staffed));
        if load > c.staffed && load > before && c.staffed >= staffed_before {
            return Err(format!(
                "ward {}: held {} + occupied {} > staffed {}, up from {before}",
                w.id, c.held, c.occupied, c.staffed
            ));
        }
    }
    let mut held_beds = BTreeSet::new();
    for h in beds.pending_holds() {
        if !held_beds.insert(h.bed) {
            return Err(format!("bed {} is held twice (hold {})", h.bed, h.id));
        }
        match beds.bed(h.bed).map(|b| b.state) {
            Some(ninety_engine::BedState::Held { hold }) if hold == h.id => {}
            other => {
                return Err(format!(
                    "hold {} on bed {} but bed is {other:?}",
                    h.id, h.bed
                ))
            }
        }
    }
    let slots = engine.slots();
    let mut taken: BTreeMap<ninety_engine::SlotId, u32> = BTreeMap::new();
    for s in slots.slots() {
        let max = u32::from(s.spec.capacity) + u32::from(s.spec.overbook);
        if u32::from(s.taken()) > max {
            return Err(format!(
                "slot {}: {} seats taken > capacity {} + overbook {}",
                s.id,
                s.taken(),
                s.spec.capacity,
                s.spec.overbook
            ));
        }
        if deep {
            taken.insert(s.id, 0);
        }
    }
    if deep {
        // Every seat that takes a place is counted by its slot, and the counts agree.
        for id in 1..engine.counters().next_hold {
            if let Some(seat) = slots.seat(HoldId(id)) {
                if seat.state.takes_seat() {
                    *taken.entry(seat.slot).or_default() += 1;
                }
            }
            if let Some(h) = beds.hold(HoldId(id)) {
                if h.state == HoldState::Pending && !held_beds.contains(&h.bed) {
                    return Err(format!("pending hold {id} missing from the pending index"));
                }
            }
        }
        for s in slots.slots() {
            let n = taken.get(&s.id).copied().unwrap_or(0);
            if n != u32::from(s.taken()) {
                return Err(format!(
                    "slot {}: {n} live seats but taken={}",
                    s.id,
                    s.taken()
                ));
            }
        }
    }
    Ok(())
}

/// The engine adapter with checks (and optional bugs) around it.
pub struct SimMachine {
    inner: EngineMachine,
    node: u64,
    rec: RecorderHandle,
    bugs: Bugs,
    /// The node's local clock, ms (for the local-clock bug).
    local_ms: Rc<Cell<u64>>,
    hash_every: u64,
    /// Ward loads after the previous apply ([`check_invariants`]); forgotten on restore.
    loads: RefCell<WardLoads>,
    /// The schedule and referral rules' model of this replica; learnt afresh on restore.
    rules: RefCell<Rules>,
    /// The cross-region stages this replica saw last; learnt afresh on restore.
    stages: RefCell<Stages>,
}

impl SimMachine {
    /// A fresh machine for `node`.
    pub fn new(
        node: u64,
        rec: RecorderHandle,
        bugs: Bugs,
        local_ms: Rc<Cell<u64>>,
        hash_every: u64,
    ) -> Self {
        SimMachine {
            inner: EngineMachine::new(),
            node,
            rec,
            bugs,
            local_ms,
            hash_every: hash_every.max(1),
            loads: RefCell::default(),
            rules: RefCell::default(),
            stages: RefCell::default(),
        }
    }

    /// The engine of this replica.
    pub fn engine(&self) -> &Engine {
        self.inner.engine()
    }

    fn observe(&self, ctx: &ApplyContext, commands: &[&[u8]], outcomes: &[Vec<u8>]) {
        let mut rec = self.rec.borrow_mut();
        rec.applies += 1;
        let mut all = Vec::new();
        for o in outcomes {
            all.extend_from_slice(&(o.len() as u32).to_le_bytes());
            all.extend_from_slice(o);
        }
        let digest = checksum(&all);
        let now = rec.now_us;
        let node = self.node;
        let mismatch = match rec.log.get(&ctx.index) {
            None => {
                rec.log.insert(
                    ctx.index,
                    LoggedBatch {
                        term: ctx.term,
                        log_time_ms: ctx.log_time_ms,
                        commands: commands.iter().map(|c| c.to_vec()).collect(),
                        outcomes_digest: digest,
                        first_applied_us: now,
                        first_node: node,
                    },
                );
                None
            }
            Some(b) if b.term != ctx.term || b.commands.len() != commands.len() => Some(format!(
                "log mismatch at index {}: node {} applied term {} ({} commands), node {} \
                 applied term {} ({} commands)",
                ctx.index,
                b.first_node,
                b.term,
                b.commands.len(),
                node,
                ctx.term,
                commands.len()
            )),
            Some(b) if b.commands.iter().zip(commands).any(|(a, c)| a != c) => Some(format!(
                "log mismatch at index {}: nodes {} and {node} applied different commands",
                ctx.index, b.first_node
            )),
            Some(b) if b.log_time_ms != ctx.log_time_ms => Some(format!(
                "log time mismatch at index {}: node {} {} ms, node {node} {} ms",
                ctx.index, b.first_node, b.log_time_ms, ctx.log_time_ms
            )),
            Some(b) if b.outcomes_digest != digest => Some(format!(
                "outcome mismatch at index {}: node {} and node {node} answered differently",
                ctx.index, b.first_node
            )),
            Some(_) => None,
        };
        if let Some(m) = mismatch {
            rec.violation(m);
        }
        // The per-seat invariants every quarter of the hash cadence (as dense as before the
        // cadence was widened), the full state hash (serialises the whole engine: the
        // simulator's largest cost) at the cadence itself.
        let deep = ctx.index.is_multiple_of((self.hash_every / 4).max(1));
        let hashed = ctx.index.is_multiple_of(self.hash_every);
        let mut loads = self.loads.borrow_mut();
        if let Err(e) = check_invariants(self.inner.engine(), deep, &mut loads) {
            rec.violation(format!(
                "engine invariant broken on node {node} after index {}: {e}",
                ctx.index
            ));
        }
        let mut broken = Vec::new();
        let mut rules = self.rules.borrow_mut();
        let ticked = check_rules(
            &mut rules,
            ctx.index,
            self.inner.engine(),
            commands,
            outcomes,
            &mut broken,
        );
        if ticked {
            if let Err(e) = no_hold_past_expiry(self.inner.engine(), ctx.log_time_ms) {
                broken.push(format!("after index {}: {e}", ctx.index));
            }
        }
        let mut stages = self.stages.borrow_mut();
        stages.entry(ctx.index, self.inner.engine(), &mut broken);
        for e in broken {
            rec.violation(format!("rule broken on node {node}: {e}"));
        }

        if hashed {
            rec.hash_checks += 1;
            let hash = self.inner.state_hash();
            match rec.hashes.get(&ctx.index) {
                None => {
                    rec.hashes.insert(ctx.index, (hash, node));
                }
                Some((h, first)) if *h != hash => {
                    let first = *first;
                    rec.violation(format!(
                        "state hash mismatch at index {}: node {first} and node {node}",
                        ctx.index
                    ));
                }
                Some(_) => {}
            }
        }
    }
}

impl StateMachine for SimMachine {
    fn apply(&mut self, ctx: &ApplyContext, commands: &[&[u8]]) -> Vec<Vec<u8>> {
        let mut used = *ctx;
        if self.bugs.local_clock_time {
            used.log_time_ms = self.local_ms.get();
        }
        let swapped;
        let applied = if self.bugs.amend_fields_swapped {
            swapped = commands
                .iter()
                .map(|c| swap_amend_fields(c))
                .collect::<Vec<_>>();
            swapped.iter().map(Vec::as_slice).collect()
        } else {
            commands.to_vec()
        };
        let mut outcomes = self.inner.apply(&used, &applied);
        if self.bugs.apply_twice {
            outcomes = self.inner.apply(&used, &applied);
        }
        self.observe(ctx, commands, &outcomes);
        outcomes
    }

    fn query(&self, query: &[u8]) -> Vec<u8> {
        self.inner.query(query)
    }

    fn replay(&self, command: &[u8]) -> Option<Vec<u8>> {
        self.inner.replay(command)
    }

    fn snapshot(&self) -> Vec<u8> {
        self.inner.snapshot()
    }

    /// The engine's own image (shared bed chunks), as the runtime's writer gets it.
    fn image(&self) -> Box<dyn ninety_cluster::state_machine::StateImage> {
        self.inner.image()
    }

    fn restore(&mut self, data: &[u8]) -> Result<(), String> {
        self.loads.borrow_mut().clear();
        let restored = self.inner.restore(data);
        let mut rules = Rules::default();
        rules.learn(self.inner.engine());
        *self.rules.borrow_mut() = rules;
        self.stages.borrow_mut().learn(self.inner.engine());
        restored
    }

    fn state_hash(&self) -> [u8; 32] {
        self.inner.state_hash()
    }
}

/// Runs the rules of schedules and referrals over one applied entry: its commands and
/// outcomes as the log and this replica have them (undecodable ones are skipped: the
/// adapter refused them, nothing changed). Returns whether the entry had a tick.
pub fn check_rules(
    rules: &mut Rules,
    index: u64,
    engine: &Engine,
    commands: &[&[u8]],
    outcomes: &[Vec<u8>],
    out: &mut Vec<String>,
) -> bool {
    let decoded: Vec<(Command, ninety_cluster::engine_sm::Applied)> = commands
        .iter()
        .zip(outcomes)
        .filter_map(|(c, o)| Some((decode_log_command(c).ok()?.command, decode_applied(o).ok()?)))
        .collect();
    let steps: Vec<Step<'_>> = decoded
        .iter()
        .map(|(command, a)| Step {
            command,
            outcome: &a.outcome,
            replayed: a.replayed,
        })
        .collect();
    rules.entry(index, engine, &steps, out);
    steps.iter().any(|s| matches!(s.command, Command::Tick))
}

/// The `amend_fields_swapped` bug: a client's `AmendSlot` as a replica with the old field
/// order reads it (overbooking and the referral quota swapped); every other command as is.
fn swap_amend_fields(bytes: &[u8]) -> Vec<u8> {
    let Ok(logged) = decode_log_command(bytes) else {
        return bytes.to_vec();
    };
    let (RequestKey::Client(id), Command::AmendSlot { slot, seats }) =
        (logged.key, &logged.command)
    else {
        return bytes.to_vec();
    };
    let command = Command::AmendSlot {
        slot: *slot,
        seats: SeatLimits {
            capacity: seats.capacity,
            overbook: seats.referral_quota,
            referral_quota: seats.overbook,
        },
    };
    encode_request(&Request { id, command }).unwrap_or_else(|_| bytes.to_vec())
}
