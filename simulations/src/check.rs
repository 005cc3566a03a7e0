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
//! * every acknowledged operation is durable and visible after recovery: each final replica
//!   has applied past it, and each final replica's state hash equals the replay's hash at
//!   its applied index; created holds, seats and consultations exist on every final replica.

use crate::machine::Recorder;
use ninety_cluster::engine_sm::{Applied, EngineMachine};
use ninety_cluster::{ApplyContext, StateMachine};
use ninety_engine::{Engine, Reply, Request, RequestId};
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

/// A replica at the end of the run.
pub struct Replica<'a> {
    pub node: u64,
    pub applied_index: u64,
    pub engine: &'a Engine,
}

/// Checks the history; returns the violations found.
pub fn history(rec: &Recorder, acks: &[Ack], finals: &[Replica<'_>]) -> Vec<String> {
    let mut out = Vec::new();
    let acked_at: BTreeSet<u64> = acks.iter().map(|a| a.index).collect();
    let final_at: BTreeSet<u64> = finals.iter().map(|r| r.applied_index).collect();
    let mut reference = EngineMachine::new();
    let mut answers: BTreeMap<(u64, RequestId), Vec<Applied>> = BTreeMap::new();
    let mut first_answer: BTreeMap<RequestId, ninety_engine::Outcome> = BTreeMap::new();
    let mut hashes: BTreeMap<u64, [u8; 32]> = BTreeMap::new();
    if final_at.contains(&0) {
        hashes.insert(0, reference.state_hash());
    }
    for (&index, batch) in &rec.log {
        let ctx = ApplyContext {
            index,
            term: batch.term,
            log_time_ms: batch.log_time_ms,
        };
        let cmds: Vec<&[u8]> = batch.commands.iter().map(Vec::as_slice).collect();
        let outcomes = reference.apply(&ctx, &cmds);
        for (cmd, outcome) in batch.commands.iter().zip(&outcomes) {
            let (Ok(req), Ok(applied)) = (
                postcard::from_bytes::<Request>(cmd),
                ninety_cluster::engine_sm::decode_applied(outcome),
            ) else {
                continue;
            };
            // Refusals change nothing and are not remembered (engine `dedup`): a retry of a
            // refused request is evaluated again. Only successes must happen once.
            if !applied.replayed && applied.outcome.is_ok() {
                if first_answer.contains_key(&req.id) {
                    out.push(format!("request {:?} was executed twice", req.id));
                }
                first_answer.insert(req.id, applied.outcome.clone());
            }
            if acked_at.contains(&index) {
                answers.entry((index, req.id)).or_default().push(applied);
            }
        }
        if final_at.contains(&index) {
            hashes.insert(index, reference.state_hash());
        }
        if out.len() > 8 {
            return out;
        }
    }
    let max_acked = acks.iter().map(|a| a.index).max().unwrap_or(0);
    for a in acks {
        match answers.get(&(a.index, a.request)) {
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
        if let (Some(inv), Some(b)) = (a.invoked_us, rec.log.get(&a.index)) {
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
                Ok(Reply::BedHeld { hold, .. }) => r.engine.beds().hold(*hold).is_none(),
                Ok(Reply::SlotHeld { hold, .. }) => r.engine.slots().seat(*hold).is_none(),
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
