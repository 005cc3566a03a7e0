//! The engine adapter: [`EngineMachine`] makes `ninety_engine::Engine` the replicated
//! [`StateMachine`], and defines the byte formats the Raft log and reads carry for it.
//!
//! * Command bytes: a postcard-encoded [`ninety_engine::Request`] (see [`encode_request`]).
//! * Outcome bytes: a postcard-encoded [`Applied`]: the engine's [`Outcome`] plus what the
//!   API needs to answer without a second read (log time, whether the answer was a dedup
//!   replay, the bed hold as it stands after the command). Every field is a deterministic
//!   function of the log, so every replica computes the same bytes; only the proposer uses
//!   them.
//! * Query bytes: a postcard-encoded [`Query`], answered by a [`QueryResult`].
//!
//! Nothing here panics on bad bytes: an undecodable command becomes a rejection outcome
//! (and changes nothing), an undecodable query becomes [`QueryResult::Invalid`].

use crate::state_machine::{ApplyContext, StateMachine};
use ninety_engine::beds::BedHold;
use ninety_engine::{
    BedTarget, Command, Engine, HoldId, HospitalId, LogTime, Outcome, Rejection, Request,
    RequestId, WardCounts, WardId,
};
use serde::{Deserialize, Serialize};

/// Request ids from here up to `BOOTSTRAP_REQUEST_BASE` are reserved for the log-time ticks
/// the adapter applies for empty batches (`TICK_REQUEST_BASE | index`). Client ids are
/// mapped below it (see `server::request_id`).
pub const TICK_REQUEST_BASE: u128 = 1 << 126;

/// What applying one command produced, as returned to the proposer.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Applied {
    /// Log time the command was applied at (the leader's stamp, clamped monotonic).
    pub log_time_ms: u64,
    /// True when the request id had been applied before: the outcome is the stored first
    /// answer and nothing changed now.
    pub replayed: bool,
    /// The engine's answer.
    pub outcome: Outcome,
    /// For bed-hold commands: the hold after the command, and its ward's hospital.
    pub hold: Option<(BedHold, HospitalId)>,
}

/// Read-only questions for linearizable (ReadIndex) or local reads.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Query {
    /// One bed hold.
    Hold(HoldId),
    /// Bed counts of wards of a hospital; empty `wards` means all of them.
    Wards {
        hospital: HospitalId,
        wards: Vec<WardId>,
    },
    /// Summary of the engine: for status pages and tests.
    Summary,
}

/// One ward's counts with the ward's descriptive fields.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct WardInfo {
    pub ward: WardId,
    pub hospital: HospitalId,
    pub specialty: String,
    pub counts: WardCounts,
}

/// The answer to a [`Query`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum QueryResult {
    Hold(Option<(BedHold, HospitalId)>),
    /// `None` when the hospital is unknown.
    Wards(Option<Vec<WardInfo>>),
    Summary {
        state_hash: [u8; 32],
        log_time_ms: u64,
        hospitals: u32,
        wards: u32,
    },
    /// The query bytes did not decode.
    Invalid(String),
}

/// Encodes a request for the log. Postcard cannot fail for these in-memory types; the
/// `Result` is kept so callers never need to unwrap.
pub fn encode_request(request: &Request) -> Result<Vec<u8>, String> {
    postcard::to_stdvec(request).map_err(|e| e.to_string())
}

/// Decodes outcome bytes produced by [`EngineMachine::apply`].
pub fn decode_applied(bytes: &[u8]) -> Result<Applied, String> {
    postcard::from_bytes(bytes).map_err(|e| format!("undecodable outcome: {e}"))
}

/// Encodes a query.
pub fn encode_query(query: &Query) -> Result<Vec<u8>, String> {
    postcard::to_stdvec(query).map_err(|e| e.to_string())
}

/// Decodes a query answer.
pub fn decode_query_result(bytes: &[u8]) -> Result<QueryResult, String> {
    postcard::from_bytes(bytes).map_err(|e| format!("undecodable query result: {e}"))
}

/// `ninety_engine::Engine` as a Raft state machine.
#[derive(Debug, Default)]
pub struct EngineMachine {
    engine: Engine,
}

impl EngineMachine {
    /// An empty engine: the region arrives through the log (`ImportRegion`).
    pub fn new() -> Self {
        EngineMachine::default()
    }

    /// The engine, for local (possibly stale) inspection.
    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    fn hold_with_hospital(&self, id: HoldId) -> Option<(BedHold, HospitalId)> {
        let hold = self.engine.beds().hold(id)?.clone();
        let hospital = self.engine.beds().ward(hold.ward)?.hospital;
        Some((hold, hospital))
    }

    fn apply_one(&mut self, bytes: &[u8], at: LogTime) -> Applied {
        let request: Request = match postcard::from_bytes(bytes) {
            Ok(r) => r,
            Err(e) => {
                return Applied {
                    log_time_ms: at.0,
                    replayed: false,
                    outcome: Err(Rejection::invalid("command", format!("undecodable: {e}"))),
                    hold: None,
                }
            }
        };
        let replayed = self.engine.dedup().get(request.id).is_some();
        let outcome = self.engine.apply(&request, at);
        let hold_id = match (&request.command, &outcome) {
            (_, Ok(ninety_engine::Reply::BedHeld { hold, .. })) => Some(*hold),
            (Command::ConfirmHold { hold } | Command::ReleaseHold { hold }, _) => Some(*hold),
            _ => None,
        };
        Applied {
            log_time_ms: self.engine.now().0.max(at.0),
            replayed,
            outcome,
            hold: hold_id.and_then(|h| self.hold_with_hospital(h)),
        }
    }

    fn wards(&self, hospital: HospitalId, wanted: &[WardId]) -> Option<Vec<WardInfo>> {
        self.engine.hospital(hospital)?;
        let beds = self.engine.beds();
        let out = beds
            .wards()
            .filter(|w| w.hospital == hospital && (wanted.is_empty() || wanted.contains(&w.id)))
            .filter_map(|w| {
                Some(WardInfo {
                    ward: w.id,
                    hospital,
                    specialty: format!("{:?}", w.specialty).to_lowercase(),
                    counts: beds.counts(w.id)?,
                })
            })
            .collect();
        Some(out)
    }

    fn answer(&self, query: &[u8]) -> QueryResult {
        let query: Query = match postcard::from_bytes(query) {
            Ok(q) => q,
            Err(e) => return QueryResult::Invalid(e.to_string()),
        };
        match query {
            Query::Hold(id) => QueryResult::Hold(self.hold_with_hospital(id)),
            Query::Wards { hospital, wards } => QueryResult::Wards(self.wards(hospital, &wards)),
            Query::Summary => QueryResult::Summary {
                state_hash: self.state_hash(),
                log_time_ms: self.engine.now().0,
                hospitals: self.engine.hospitals().count() as u32,
                wards: self.engine.beds().wards().count() as u32,
            },
        }
    }
}

/// Used only if postcard ever fails to encode an in-memory value (it does not with the
/// std flavour): a fixed marker the API reports as an internal error instead of panicking.
const ENCODE_FAILED: &[u8] = b"";

impl StateMachine for EngineMachine {
    fn apply(&mut self, ctx: &ApplyContext, commands: &[&[u8]]) -> Vec<Vec<u8>> {
        let at = LogTime(ctx.log_time_ms);
        if commands.is_empty() {
            // A log-time tick: run expiries. The request id is derived from the log index so
            // every replica applies the identical request (and dedups it identically).
            let tick = Request {
                id: RequestId(TICK_REQUEST_BASE | u128::from(ctx.index)),
                command: Command::Tick,
            };
            // A tick cannot be refused for a reason a client could act on; its reply only
            // matters to the engine's own bookkeeping.
            let _ = self.engine.apply(&tick, at);
            return Vec::new();
        }
        commands
            .iter()
            .map(|c| {
                let applied = self.apply_one(c, at);
                postcard::to_stdvec(&applied).unwrap_or_else(|_| ENCODE_FAILED.to_vec())
            })
            .collect()
    }

    fn query(&self, query: &[u8]) -> Vec<u8> {
        postcard::to_stdvec(&self.answer(query)).unwrap_or_else(|_| ENCODE_FAILED.to_vec())
    }

    fn snapshot(&self) -> Vec<u8> {
        // `Engine::snapshot` only fails if postcard cannot encode the state, which the std
        // flavour never does; an empty image would then fail `restore` loudly, not silently.
        self.engine.snapshot().unwrap_or_default()
    }

    fn restore(&mut self, data: &[u8]) -> Result<(), String> {
        if data.is_empty() {
            // A snapshot of a node that never applied anything (empty store image).
            self.engine = Engine::new();
            return Ok(());
        }
        self.engine = Engine::restore(data).map_err(|e| e.to_string())?;
        Ok(())
    }

    fn state_hash(&self) -> [u8; 32] {
        self.engine.state_hash().0
    }
}

/// Builds the request to hold a bed of a ward (or a given bed).
pub fn hold_bed(id: RequestId, target: BedTarget, patient: u128, ttl_ms: u64) -> Request {
    Request {
        id,
        command: Command::HoldBed {
            target,
            patient: ninety_engine::PatientRef(patient),
            ttl_ms,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ctx(index: u64) -> ApplyContext {
        ApplyContext {
            index,
            term: 1,
            log_time_ms: 1_000_000 + index,
        }
    }

    #[test]
    fn garbage_is_a_rejection_and_ticks_are_deterministic() {
        let mut a = EngineMachine::new();
        let out = a.apply(&ctx(1), &[b"\xff\xff\xff"]);
        let applied = decode_applied(&out[0]).unwrap();
        assert!(matches!(applied.outcome, Err(Rejection::Invalid { .. })));
        let mut b = EngineMachine::new();
        b.apply(&ctx(1), &[b"\xff\xff\xff"]);
        assert!(a.apply(&ctx(2), &[]).is_empty());
        b.apply(&ctx(2), &[]);
        assert_eq!(a.state_hash(), b.state_hash());
        let snap = a.snapshot();
        let mut c = EngineMachine::new();
        c.restore(&snap).unwrap();
        assert_eq!(c.state_hash(), a.state_hash());
        let r = decode_query_result(&a.query(b"\xff")).unwrap();
        assert!(matches!(r, QueryResult::Invalid(_)));
    }
}
