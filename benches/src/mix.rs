//! The hold/confirm/release/tick mix on a generated region.
//!
//! Per ten commands: four bed holds on wards in turn, three releases and one confirm of
//! earlier holds, one discharge and one clean of earlier admissions; a tick every
//! `TICK_EVERY` commands. Log time advances one millisecond per command, so at a million
//! commands per second of log time the dedup table runs at its size limit, as it would.

use ninety_engine::generate::{self, Preset};
use ninety_engine::*;
use std::collections::VecDeque;

/// A tick every this many commands.
pub const TICK_EVERY: u64 = 1_000;

/// An engine loaded with a preset region and today's schedules, with a policy that keeps
/// long runs bounded in memory (resolved records kept ten minutes of log time).
pub fn engine(preset: Preset, with_schedules: bool) -> Engine {
    let file = generate::region(preset, generate::DEFAULT_SEED);
    let schedules = if with_schedules {
        generate::schedules(&file, generate::DEFAULT_DAY_START, 1)
    } else {
        Vec::new()
    };
    let at = generate::DEFAULT_DAY_START.minus_ms(time::MS_PER_DAY);
    let mut engine = load(&file, &schedules, at).expect("generated regions load");
    let mut policy = engine.policy().clone();
    policy.resolved_retention_ms = 10 * time::MS_PER_MINUTE;
    let r = engine.apply(
        &Request {
            id: RequestId(u128::MAX),
            command: Command::SetPolicy(policy),
        },
        at,
    );
    assert!(r.is_ok(), "{r:?}");
    engine
}

/// Generates the mix against a live engine: each command may depend on earlier replies.
pub struct Mix {
    wards: Vec<WardId>,
    next_ward: usize,
    pending: VecDeque<HoldId>,
    occupied: VecDeque<BedId>,
    to_clean: VecDeque<BedId>,
    /// Commands issued so far.
    pub issued: u64,
    next_request: u128,
    /// The current log time.
    pub now: LogTime,
}

impl Mix {
    /// A mix over every ward of `engine`.
    pub fn new(engine: &Engine) -> Mix {
        Mix {
            wards: engine.beds().wards().map(|w| w.id).collect(),
            next_ward: 0,
            pending: VecDeque::new(),
            occupied: VecDeque::new(),
            to_clean: VecDeque::new(),
            issued: 0,
            next_request: 1,
            now: engine.now(),
        }
    }

    /// The next request.
    pub fn next_request(&mut self) -> Request {
        self.issued += 1;
        self.now = self.now.plus_ms(1);
        self.next_request += 1;
        let command = self.next_command();
        Request {
            id: RequestId(self.next_request),
            command,
        }
    }

    fn next_command(&mut self) -> Command {
        if self.issued.is_multiple_of(TICK_EVERY) {
            return Command::Tick;
        }
        match self.issued % 10 {
            0 | 2 | 4 | 6 => self.hold(),
            1 | 5 | 9 if self.pending.len() > 8 => self
                .pending
                .pop_front()
                .map_or_else(|| self.hold(), |hold| Command::ReleaseHold { hold }),
            3 if self.pending.len() > 8 => self
                .pending
                .pop_front()
                .map_or_else(|| self.hold(), |hold| Command::ConfirmHold { hold }),
            7 if !self.occupied.is_empty() => self
                .occupied
                .pop_front()
                .map_or_else(|| self.hold(), |bed| Command::Discharge { bed }),
            8 if !self.to_clean.is_empty() => self
                .to_clean
                .pop_front()
                .map_or_else(|| self.hold(), |bed| Command::MarkBedClean { bed }),
            _ => self.hold(),
        }
    }

    fn hold(&mut self) -> Command {
        let ward = self.wards[self.next_ward % self.wards.len().max(1)];
        self.next_ward += 1;
        Command::HoldBed {
            target: BedTarget::Ward(ward),
            patient: PatientRef(u128::from(self.issued)),
            ttl_ms: 30 * time::MS_PER_MINUTE,
        }
    }

    /// Learns from a command's outcome (the ids it handed out).
    pub fn observe(&mut self, request: &Request, outcome: &Outcome) {
        match (&request.command, outcome) {
            (_, Ok(Reply::BedHeld { hold, .. })) => self.pending.push_back(*hold),
            (_, Ok(Reply::HoldConfirmed { bed, .. })) => self.occupied.push_back(*bed),
            (Command::Discharge { bed }, Ok(_)) => self.to_clean.push_back(*bed),
            _ => {}
        }
    }

    /// Applies `n` commands of the mix to `engine`; returns how many were refused.
    pub fn run(&mut self, engine: &mut Engine, n: u64) -> u64 {
        let mut refused = 0;
        for _ in 0..n {
            let request = self.next_request();
            let outcome = engine.apply(&request, self.now);
            refused += u64::from(outcome.is_err());
            self.observe(&request, &outcome);
        }
        refused
    }
}
