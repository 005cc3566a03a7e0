//! The history checker, run after every simulated run.
//!
//! All writes go through one Raft log, so the history is linearizable (for every ward,
//! slot and hold at once) iff there is one sequential execution that explains every
//! acknowledged reply and respects real time. The checker builds it: it replays the
//! committed log, as the replicas applied it (recorded by index; the replicas were
//! already checked to agree on it entry by entry), on a fresh engine, and then checks:
//!
//! * every acknowledged reply equals the reply of that sequential execution for that
//!   request at the index the node reported (so nothing was applied twice or out of
//!   order), and every successful answer to a request id is its first successful answer
//!   (the engine remembers successes only: a refused request changed nothing and a retry
//!   is evaluated afresh, so it may succeed later);
//! * the entry was first applied between the operation's invocation and its
//!   acknowledgement (real-time order);
//! * a retry answered without an entry of its own (from the dedup table, after a
//!   ReadIndex: `StateMachine::replay`; reported at index 0) names the entry that first
//!   applied the request successfully and gets its first answer;
//! * a refusal answered without an entry (`StateMachine::replay`, index 0, not a replay)
//!   is checked as a read of the command: its answer equals what the sequential execution
//!   would have answered for it (`replay` on the replay's state) at some index within its
//!   real-time window, as below;
//! * every acknowledged operation is durable and visible after recovery: each final replica
//!   has applied past it, and each final replica's state hash equals the replay's hash at
//!   its applied index; created holds, seats and consultations (allocated ones included)
//!   exist on every final replica;
//! * every linearizable read is explained by that sequential execution within real time:
//!   its answer equals the replay's answer to the same query at some log index `i` with
//!   `after_index <= i <= before_index`, where `after_index` is the highest index
//!   acknowledged to any client before the read was invoked (so every write acknowledged
//!   before the read began is visible to it) and `before_index` the highest index any
//!   replica had applied when the answer arrived (so it saw nothing from the future);
//! * the rules of schedules and referrals across entries ([`crate::rules`]: withdrawn slots
//!   stay empty, seat numbers are what was published or amended, publications and template
//!   rolls are explained and never doubled, closed referrals never move) hold after every
//!   entry of the replay, over the whole history.

use crate::machine::{check_rules, Recorder};
use crate::rules::Rules;
use ninety_cluster::engine_sm::{
    decode_applied, decode_log_command, decode_query_result, Applied, EngineMachine, Query,
};
use ninety_cluster::{ApplyContext, StateMachine};
use ninety_engine::{
    BedId, Command, Engine, HoldId, Reply, Request, RequestId, RequestKey, SlotId, WardId,
};
use std::collections::{BTreeMap, BTreeSet};

/// One acknowledged reply as a client received it.
#[derive(Debug, Clone)]
pub struct Ack {
    pub request: RequestId,
    pub index: u64,
    pub applied: Applied,
    /// When the operation was invoked (None: the ack arrived after the client moved on).
    pub invoked_us: Option<u64>,
    pub acked_us: u64,
}

/// One answered linearizable read as a client received it: a query, or a command the
/// node answered as a read (a refusal).
#[derive(Debug, Clone)]
pub struct ReadObs {
    /// Whether `query` is an encoded command (answered by `StateMachine::replay`) rather
    /// than an encoded `engine_sm::Query`.
    pub command: bool,
    /// The encoded `engine_sm::Query`, or the command.
    pub query: Vec<u8>,
    /// The encoded answer.
    pub result: Vec<u8>,
    /// The read index the node reported.
    pub read_index: u64,
    /// Highest index acknowledged to any client when the read was invoked.
    pub after_index: u64,
    /// Highest index applied by any replica when the answer arrived.
    pub before_index: u64,
    pub invoked_us: u64,
    pub acked_us: u64,
}

/// Matches reads against the replay's states: the state after applying the log through
/// index `a` stands for every index in `[a, b]` (no entry in between changes the engine).
struct ReadCheck<'r> {
    reads: &'r [ReadObs],
    /// Read positions by `after_index`.
    order: Vec<usize>,
    next: usize,
    /// Reads whose window has begun, not yet explained: (position, answer at `after_index`).
    active: Vec<(usize, Vec<u8>)>,
}

impl<'r> ReadCheck<'r> {
    fn new(reads: &'r [ReadObs]) -> Self {
        let mut order: Vec<usize> = (0..reads.len()).collect();
        order.sort_by_key(|&i| reads[i].after_index);
        ReadCheck {
            reads,
            order,
            next: 0,
            active: Vec::new(),
        }
    }

    /// `reference` is the state at every index in `[a, b]`.
    fn state(&mut self, reference: &EngineMachine, a: u64, b: u64, out: &mut Vec<String>) {
        while let Some(&i) = self.order.get(self.next) {
            if self.reads[i].after_index > b {
                break;
            }
            self.next += 1;
            self.active.push((i, Vec::new()));
        }
        let reads = self.reads;
        self.active.retain_mut(|(i, first)| {
            let r = &reads[*i];
            if r.before_index < a {
                out.push(describe_stale(r, first));
                return false;
            }
            let answer = if r.command {
                reference.replay(&r.query).unwrap_or_default()
            } else {
                reference.query(&r.query)
            };
            let explained = answer == r.result;
            if first.is_empty() {
                *first = answer;
            }
            !explained
        });
    }

    fn finish(&mut self, out: &mut Vec<String>) {
        for (i, first) in std::mem::take(&mut self.active) {
            out.push(describe_stale(&self.reads[i], &first));
        }
    }
}

fn describe_stale(r: &ReadObs, expected: &[u8]) -> String {
    let (q, got, want) = if r.command {
        let answer = |b: &[u8]| decode_applied(b).map_or_else(|e| e, |x| format!("{x:?}"));
        let q = decode_log_command(&r.query).map_or_else(|e| e, |c| format!("{c:?}"));
        (q, answer(&r.result), answer(expected))
    } else {
        let answer = |b: &[u8]| decode_query_result(b).map_or_else(|e| e, |x| format!("{x:?}"));
        let q = postcard::from_bytes::<Query>(&r.query)
            .map_or_else(|e| e.to_string(), |q| format!("{q:?}"));
        (q, answer(&r.result), answer(expected))
    };
    format!(
        "read {q} (invoked at {} µs, answered at {} µs, read index {}) is not linearizable: \
         its answer matches no state between index {} (acknowledged before it began) and {} \
         (applied when it returned): got {got}, at index {} the answer was {want}",
        r.invoked_us, r.acked_us, r.read_index, r.after_index, r.before_index, r.after_index
    )
}

/// What one successful reply placed: a bed hold (with its bed and ward), a seat (with its
/// slot) or new beds (`AddBeds`: the first id and how many, in a ward), checked against the
/// engine after the entry.
enum Placed {
    Bed(HoldId, BedId, WardId),
    Seat(HoldId, SlotId),
    Beds(WardId, BedId, u32),
}

/// The beds of one entry, as its replies tell: which hold each bed was given to, and which
/// beds were blocked (and not unblocked since).
#[derive(Default)]
struct EntryBeds {
    given: BTreeMap<BedId, HoldId>,
    blocked: BTreeSet<BedId>,
}

/// Tracks, inside one entry, which bed each hold placed in it was given: a bed given to a
/// second hold while the first still has it (not released or discharged in between) is
/// a double give the end-of-entry invariants would not see if the first hold were
/// released later in the same entry. Covers `HoldBed`, `HoldBedForReferral` and
/// `AllocateBed` alike. Likewise a bed blocked while a hold of the entry has it, or given
/// while blocked (no `UnblockBed` in between).
fn give(
    index: u64,
    command: &Command,
    outcome: &ninety_engine::Outcome,
    beds: &mut EntryBeds,
    placed: &mut Vec<Placed>,
    out: &mut Vec<String>,
) {
    let given = &mut beds.given;
    match (command, outcome) {
        (
            _,
            Ok(
                Reply::BedHeld {
                    hold, bed, ward, ..
                }
                | Reply::BedAllocated {
                    hold, bed, ward, ..
                },
            ),
        ) => {
            if let Some(prev) = given.insert(*bed, *hold) {
                out.push(format!(
                    "bed {bed} given twice in entry {index}: to hold {prev}, then to hold {hold}"
                ));
            }
            if beds.blocked.contains(bed) {
                out.push(format!(
                    "bed {bed} given to hold {hold} in entry {index} while blocked"
                ));
            }
            placed.push(Placed::Bed(*hold, *bed, *ward));
        }
        (Command::BlockBed { bed, .. }, Ok(_)) => {
            if let Some(hold) = given.get(bed) {
                out.push(format!(
                    "bed {bed} blocked in entry {index} while hold {hold} has it"
                ));
            }
            beds.blocked.insert(*bed);
        }
        (Command::UnblockBed { bed }, Ok(_)) => {
            beds.blocked.remove(bed);
        }
        (Command::AddBeds { ward, .. }, Ok(Reply::BedsAdded { first, count })) => {
            placed.push(Placed::Beds(*ward, *first, *count))
        }
        (_, Ok(Reply::SlotHeld { hold, slot, .. } | Reply::SlotAllocated { hold, slot, .. })) => {
            placed.push(Placed::Seat(*hold, *slot))
        }
        (Command::ReleaseHold { hold }, Ok(_)) => given.retain(|_, h| h != hold),
        (Command::Discharge { bed }, Ok(_)) => {
            given.remove(bed);
        }
        _ => {}
    }
}

/// Every hold or seat a reply placed in entry `index` is recorded by the engine on the bed
/// (in the ward) or slot the reply named: an allocation answers what it holds.
fn check_placed(engine: &Engine, index: u64, placed: &[Placed], out: &mut Vec<String>) {
    for p in placed {
        let ok = match *p {
            Placed::Beds(ward, first, count) => (0..count).all(|i| {
                let bed = engine.beds().bed(BedId(first.0 + i));
                bed.is_some_and(|b| b.ward == ward)
            }),
            Placed::Bed(hold, bed, ward) => {
                engine
                    .beds()
                    .hold(hold)
                    .is_some_and(|h| h.bed == bed && h.ward == ward)
                    && engine.beds().bed(bed).is_some_and(|b| b.ward == ward)
            }
            Placed::Seat(hold, slot) => engine.slots().seat(hold).is_some_and(|s| s.slot == slot),
        };
        if ok {
            continue;
        }
        match *p {
            Placed::Bed(hold, ..) | Placed::Seat(hold, ..) => out.push(format!(
                "entry {index}: hold {hold} is not where its reply placed it"
            )),
            Placed::Beds(ward, first, count) => out.push(format!(
                "entry {index}: the {count} beds added from bed {first} are not in ward {ward}"
            )),
        }
    }
}

/// A retry answered from the dedup table without an entry of its own: it says it is a
/// replay, and the request was first applied successfully at the index its answer names
/// (the answer itself is checked against the first answer by the caller).
/// Records the reference's state hash for every final index in `[from, to)`: the reference
/// has applied every logged command before `to`, and none at `from..to` but the one at
/// `from` itself (when `from` is a logged index), so that is each such replica's state.
fn hash_finals_before(
    reference: &EngineMachine,
    final_at: &BTreeSet<u64>,
    from: u64,
    to: u64,
    hashes: &mut BTreeMap<u64, [u8; 32]>,
) {
    let mut due = final_at.range(from..to).peekable();
    if due.peek().is_some() {
        let hash = reference.state_hash();
        for &f in due {
            hashes.insert(f, hash);
        }
    }
}

fn check_read_replay(a: &Ack, first_index: &BTreeMap<RequestId, u64>, out: &mut Vec<String>) {
    match first_index.get(&a.request) {
        Some(&i) if i == a.applied.first_index && a.applied.replayed => {}
        other => out.push(format!(
            "retry of {:?} answered without an entry names first index {} (replayed: {}), \
             but the request was first applied at {other:?}",
            a.request, a.applied.first_index, a.applied.replayed
        )),
    }
}

/// A replica at the end of the run.
pub struct Replica<'a> {
    pub node: u64,
    pub applied_index: u64,
    pub engine: &'a Engine,
}

/// Checks the history; returns the violations found. `rules` runs over the replay (and
/// keeps what it saw: rolled and overbooked slots).
pub fn history(
    rec: &Recorder,
    acks: &[Ack],
    reads: &[ReadObs],
    finals: &[Replica<'_>],
    rules: &mut Rules,
) -> Vec<String> {
    let mut out = Vec::new();
    let mut read_check = ReadCheck::new(reads);
    let mut state_from = 0;
    let mut placed = Vec::new();
    let acked_at: BTreeSet<u64> = acks.iter().map(|a| a.index).collect();
    let final_at: BTreeSet<u64> = finals.iter().map(|r| r.applied_index).collect();
    let mut reference = EngineMachine::new();
    let mut answers: BTreeMap<(u64, RequestId), Vec<Applied>> = BTreeMap::new();
    let mut first_answer: BTreeMap<RequestId, ninety_engine::Outcome> = BTreeMap::new();
    let mut first_index: BTreeMap<RequestId, u64> = BTreeMap::new();
    let mut hashes: BTreeMap<u64, [u8; 32]> = BTreeMap::new();
    for (&index, batch) in &rec.log {
        // A replica may end at an index with no commands (a leader's empty entry, a
        // membership change): its state is the state after the commands before it.
        hash_finals_before(&reference, &final_at, state_from, index, &mut hashes);
        read_check.state(&reference, state_from, index.saturating_sub(1), &mut out);
        state_from = index;
        let ctx = ApplyContext {
            index,
            term: batch.term,
            log_time_ms: batch.log_time_ms,
        };
        let cmds: Vec<&[u8]> = batch.commands.iter().map(Vec::as_slice).collect();
        let outcomes = reference.apply(&ctx, &cmds);
        check_rules(rules, index, reference.engine(), &cmds, &outcomes, &mut out);
        let mut beds = EntryBeds::default();
        placed.clear();
        for (cmd, outcome) in batch.commands.iter().zip(&outcomes) {
            let (Ok(logged), Ok(applied)) = (
                ninety_cluster::engine_sm::decode_log_command(cmd),
                ninety_cluster::engine_sm::decode_applied(outcome),
            ) else {
                continue;
            };
            let RequestKey::Client(id) = logged.key else {
                continue;
            };
            let req = Request {
                id,
                command: logged.command,
            };
            // Refusals change nothing and are not remembered (engine `dedup`): a retry of a
            // refused request is evaluated again. Only successes must happen once.
            if !applied.replayed {
                give(
                    index,
                    &req.command,
                    &applied.outcome,
                    &mut beds,
                    &mut placed,
                    &mut out,
                );
            }
            if !applied.replayed && applied.outcome.is_ok() {
                if first_answer.contains_key(&req.id) {
                    out.push(format!("request {:?} was executed twice", req.id));
                }
                first_answer.insert(req.id, applied.outcome.clone());
                first_index.insert(req.id, index);
            }
            if acked_at.contains(&index) {
                answers.entry((index, req.id)).or_default().push(applied);
            }
        }
        check_placed(reference.engine(), index, &placed, &mut out);
        if out.len() > 8 {
            return out;
        }
    }
    hash_finals_before(&reference, &final_at, state_from, u64::MAX, &mut hashes);
    read_check.state(&reference, state_from, u64::MAX, &mut out);
    read_check.finish(&mut out);
    let max_acked = acks.iter().map(|a| a.index).max().unwrap_or(0);
    for a in acks {
        // Index 0: a retry answered without an entry of its own (`Reply::Applied`), or a
        // refusal answered as a read (checked with the reads).
        let read_replay = a.index == 0;
        let read_refusal = read_replay && !a.applied.replayed && a.applied.outcome.is_err();
        match answers.get(&(a.index, a.request)) {
            None if read_refusal => {}
            None if read_replay => check_read_replay(a, &first_index, &mut out),
            None => out.push(format!(
                "acknowledged request {:?} is not in the committed entry {}",
                a.request, a.index
            )),
            Some(list) if !list.contains(&a.applied) => out.push(format!(
                "acknowledged reply to {:?} at index {} differs from the sequential replay: \
                 got {:?}, replay says {:?}",
                a.request, a.index, a.applied, list
            )),
            Some(_) => {}
        }
        let first = first_answer.get(&a.request);
        if a.applied.outcome.is_ok() && first != Some(&a.applied.outcome) {
            out.push(format!(
                "request {:?} did not get its first answer: got {:?}, first was {:?}",
                a.request, a.applied.outcome, first
            ));
        }
        if let (Some(inv), Some(b), false) = (a.invoked_us, rec.log.get(&a.index), read_replay) {
            if b.first_applied_us < inv || b.first_applied_us > a.acked_us {
                out.push(format!(
                    "request {:?}: entry {} applied at {} µs, outside [{inv}, {}]",
                    a.request, a.index, b.first_applied_us, a.acked_us
                ));
            }
        }
        if out.len() > 8 {
            return out;
        }
    }
    for r in finals {
        if r.applied_index < max_acked {
            out.push(format!(
                "node {} ends at index {} but index {max_acked} was acknowledged",
                r.node, r.applied_index
            ));
        }
        let hash = r.engine.state_hash().0;
        match hashes.get(&r.applied_index) {
            Some(h) if *h == hash => {}
            _ => out.push(format!(
                "node {} state at index {} differs from the sequential replay of the log",
                r.node, r.applied_index
            )),
        }
        for a in acks {
            let missing = match &a.applied.outcome {
                Ok(Reply::BedHeld { hold, .. } | Reply::BedAllocated { hold, .. }) => {
                    r.engine.beds().hold(*hold).is_none()
                }
                Ok(Reply::SlotHeld { hold, .. } | Reply::SlotAllocated { hold, .. }) => {
                    r.engine.slots().seat(*hold).is_none()
                }
                Ok(Reply::ConsultHeld { consult, .. }) => {
                    r.engine.slots().consult(*consult).is_none()
                }
                _ => false,
            };
            if missing {
                out.push(format!(
                    "node {}: the record created by acknowledged {:?} is missing",
                    r.node, a.request
                ));
                break;
            }
        }
    }
    out
}
