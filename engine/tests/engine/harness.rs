//! The totality harness, shared by the property tests (`totality.rs`) and the cargo-fuzz
//! target (`engine/fuzz`, which includes this file and `fixture.rs` by path).
//!
//! A run is a sequence of [`Op`]s on the fixture region loaded at [`EPOCH`]: commands with
//! any field values (applied one by one or as a batch), log time moving forwards, backwards
//! or to the end of time, every read the engine offers with any arguments, and snapshot
//! round trips. Ops decode from raw bytes with postcard ([`ops_from_bytes`]), so random bytes
//! reach every `Command` variant and every field value without a hand-written generator.
//!
//! The oracle, after every step: nothing panicked (the caller sees a panic); a refused
//! command, and a replay of a remembered request, left the state hash unchanged; what
//! `Engine::decided` said before the command (a replay or a refusal, known without
//! applying) is exactly what `apply` answered, and it said something for every refusal of
//! a command the precheck covers (`fixture::prechecked`); every
//! structural invariant holds (`Engine::check_invariants`); the incrementally published view
//! equals one built from scratch; a new bed hold stays within its ward's staffed beds; and at
//! the end, a second engine fed the same log gives the same outcomes and state hash.

use ninety_engine::matching::{match_beds, match_specialist, BedQuery, SlotQuery};
use ninety_engine::*;
use serde::{Deserialize, Serialize};
use std::hint::black_box;

/// Log time at which the harness loads its region: ten hours after the epoch, so that the
/// small integers random bytes decode to land before, around and after it.
pub const EPOCH: LogTime = LogTime(36_000_000);
/// Milliseconds per hour.
const HOUR_MS: u64 = 3_600_000;
/// Ops one run may hold: a run stays fast enough to fuzz.
pub const OPS_PER_RUN_MAX: usize = 256;
/// Commands one batch op may hold.
pub const COMMANDS_PER_BATCH_MAX: usize = 64;
/// Items a read may return before the harness stops iterating (reads are lazy iterators).
const READ_ITEMS_MAX: usize = 4_096;

/// One step of a run.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum Op {
    /// Applies a command under request id `id` (small ids repeat: replays and reuse).
    Apply { id: u128, command: Command },
    /// Applies commands together with `apply_batch` (runs of allocations are planned).
    Batch(Vec<(u128, Command)>),
    /// Log time moves forward by this many milliseconds (saturating).
    Advance(u64),
    /// Log time is set to this value: behind the engine (a lagging leader), or anywhere.
    At(u64),
    /// A read with any arguments.
    Read(Read),
    /// Snapshot, restore, and continue on the restored engine.
    Restore,
    /// `Apply`, with the command's ids replaced by ids the engine handed out earlier in the
    /// run (`pick`: 0 is the newest), so that random runs also walk deep lifecycles.
    Aimed {
        id: u128,
        pick: u8,
        command: Command,
    },
    /// Continues on an empty engine (no region): `ImportRegion` can succeed.
    Empty,
}

/// Every read the engine offers, with its arguments (times are absolute log times).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum Read {
    Hospital(HospitalId),
    Doctor(DoctorId),
    Ward(WardId),
    Bed(BedId),
    BedHold(HoldId),
    Counts(WardId),
    PickBed(WardId),
    CheckBedHoldable(BedId),
    CheckPending(HoldId, LogTime),
    Slot(SlotId),
    Seat(HoldId),
    Consult(ConsultId),
    Waitlist(DoctorId),
    /// `SlotBook::doctor_slots` over `[from, to)`.
    DoctorSlots(DoctorId, LogTime, LogTime),
    /// The cluster's slot search: from `max(from, now + 1)` to `to`, at most `limit`.
    FindSlots {
        doctor: Option<DoctorId>,
        from: LogTime,
        to: LogTime,
        channel: Channel,
        limit: u64,
    },
    Blocked(PatientRef, LogTime),
    CheckSchedule(DoctorId, Vec<SlotSpec>, LogTime),
    CheckSlotHoldable(SlotId, PatientRef, Channel, LogTime),
    CheckHeld(HoldId, LogTime, bool),
    CheckCancellable(HoldId, LogTime),
    CheckBooked(HoldId),
    Referral(ReferralId),
    Worklist(Option<HospitalId>),
    ForHold(HoldId),
    CheckReferral(ReferralId, Vec<ReferralState>),
    Reach(HospitalId),
    Travel(HospitalId, HospitalId),
    Graph(HospitalId, HospitalId),
    MatchSpecialist(SlotQuery),
    MatchBeds(BedQuery),
    View(DoctorId, WardId, HospitalId),
    Dedup(RequestId),
}

/// Decodes as many ops as the bytes hold (postcard, one after another), at most
/// `OPS_PER_RUN_MAX`; undecodable rest is ignored.
pub fn ops_from_bytes(mut bytes: &[u8]) -> Vec<Op> {
    let mut ops = Vec::new();
    while !bytes.is_empty() && ops.len() < OPS_PER_RUN_MAX {
        match postcard::take_from_bytes::<Op>(bytes) {
            Ok((op, rest)) => {
                ops.push(op);
                bytes = rest;
            }
            // Skip one byte and try again, so one bad byte does not end the run.
            Err(_) => bytes = &bytes[1..],
        }
    }
    ops
}

/// The harness's schedules: every doctor gets an in-person and (if remote) two remote slots
/// an hour apart, a full-day slot next day, with quotas and overbooking.
pub fn schedules() -> Vec<(DoctorId, Vec<SlotSpec>)> {
    let spec = |h: u64, mode, capacity, overbook, referral_quota| SlotSpec {
        start: EPOCH.plus_ms(h * HOUR_MS),
        duration_minutes: 60,
        mode,
        capacity,
        overbook,
        referral_quota,
    };
    (1..=3)
        .map(|d| {
            let mut specs = vec![
                spec(1, Mode::InPerson, 2, 1, 1),
                spec(26, Mode::InPerson, 1, 0, 0),
            ];
            if d != 3 {
                specs.push(spec(3, Mode::Remote, 2, 1, 1));
                specs.push(spec(4, Mode::Remote, 1, 0, 1));
            }
            (DoctorId(d), specs)
        })
        .collect()
}

/// One applied entry of the log, for the replay at the end.
struct Entry {
    requests: Vec<Request>,
    at: LogTime,
    batch: bool,
    /// `Op::Empty`: the replica starts over too.
    reset: bool,
    outcomes: Vec<Outcome>,
}

/// Ids the engine handed out in this run, oldest first, for `Op::Aimed`.
#[derive(Default)]
struct Learned {
    bed_holds: Vec<HoldId>,
    seats: Vec<HoldId>,
    beds: Vec<BedId>,
    slots: Vec<SlotId>,
    referrals: Vec<ReferralId>,
    consults: Vec<ConsultId>,
}

impl Learned {
    fn learn(&mut self, outcome: &Outcome) {
        let Ok(reply) = outcome else { return };
        match reply {
            Reply::BedHeld { hold, bed, .. } | Reply::BedAllocated { hold, bed, .. } => {
                self.bed_holds.push(*hold);
                self.beds.push(*bed);
            }
            Reply::HoldConfirmed { bed, .. } => self.beds.push(*bed),
            Reply::SlotHeld { hold, slot, .. } | Reply::SlotAllocated { hold, slot, .. } => {
                self.seats.push(*hold);
                self.slots.push(*slot);
            }
            Reply::ConsultHeld { consult, seats, .. } => {
                self.consults.push(*consult);
                self.seats.extend(seats);
            }
            Reply::ReferralCreated { referral, .. } => self.referrals.push(*referral),
            Reply::SchedulePublished { first, count } | Reply::TemplateSet { first, count, .. } => {
                self.slots.extend(
                    (0..u64::from(*count).min(8)).map(|i| SlotId(first.0.saturating_add(i))),
                );
            }
            Reply::Ticked { offers, .. }
            | Reply::SlotReleased { offers, .. }
            | Reply::BookingCancelled { offers, .. }
            | Reply::ConsultReleased { offers, .. } => {
                self.seats.extend(offers.iter().map(|o| o.hold))
            }
            _ => {}
        }
    }
}

/// The `pick`-th newest of `list` (wrapping), if the list has any.
fn nth<T: Copy>(list: &[T], pick: usize) -> Option<T> {
    let len = list.len();
    (len > 0).then(|| list[len - 1 - pick % len])
}

/// Replaces `x` by the `pick`-th newest learned id, if there is one.
fn aim<T: Copy>(x: &mut T, list: &[T], pick: usize) {
    if let Some(v) = nth(list, pick) {
        *x = v;
    }
}

/// The command with its ids aimed at what the engine handed out (see `Op::Aimed`).
fn aimed(command: &Command, l: &Learned, pick: u8) -> Command {
    use Command::*;
    let p = usize::from(pick);
    let mut c = command.clone();
    match &mut c {
        ConfirmHold { hold } | ReleaseHold { hold } => aim(hold, &l.bed_holds, p),
        BookSlot { hold } | ReleaseSlot { hold } | CancelSeat { hold } => aim(hold, &l.seats, p),
        CancelBooking { booking } | MarkNoShow { booking } => aim(booking, &l.seats, p),
        BlockBed { bed, .. } | UnblockBed { bed } | MarkBedClean { bed } | Discharge { bed } => {
            aim(bed, &l.beds, p)
        }
        HoldBed {
            target: BedTarget::Bed(bed),
            ..
        } => aim(bed, &l.beds, p),
        HoldSlot { slot, .. } | HoldSlotFor { slot, .. } | AmendSlot { slot, .. } => {
            aim(slot, &l.slots, p)
        }
        HoldJointConsult { slots, .. } | WithdrawSlots { slots, .. } => {
            for (i, s) in slots.iter_mut().enumerate() {
                aim(s, &l.slots, p + i);
            }
        }
        BookJointConsult { consult }
        | ReleaseJointConsult { consult }
        | CancelJointConsult { consult } => aim(consult, &l.consults, p),
        MatchReferral {
            referral,
            slot_hold,
            bed_hold,
        } => {
            aim(referral, &l.referrals, p);
            slot_hold.iter_mut().for_each(|h| aim(h, &l.seats, p));
            bed_hold.iter_mut().for_each(|h| aim(h, &l.bed_holds, p));
        }
        TriageReferral { referral, .. }
        | ReportNoCapacity { referral, .. }
        | AcceptReferral { referral }
        | StartTransit { referral }
        | AdmitReferral { referral }
        | CompleteReferral { referral }
        | RejectReferral { referral, .. }
        | CancelReferral { referral, .. }
        | HoldBedForReferral { referral, .. }
        | TriageReferralNoted { referral, .. }
        | CompleteReferralWith { referral, .. }
        | AllocateBedForReferral { referral, .. }
        | HoldRemoteBed { referral, .. }
        | RecordRemote { referral, .. } => aim(referral, &l.referrals, p),
        _ => {}
    }
    c
}

/// An engine under test with its log time, view reader and log.
pub struct Harness {
    pub engine: Engine,
    view: ViewReader,
    pub at: LogTime,
    log: Vec<Entry>,
    /// Steps taken (ops that did something).
    pub steps: u64,
    /// Per command variant, (accepted, refused), when kept.
    pub stats: Option<std::collections::BTreeMap<String, (u64, u64)>>,
    /// Per command variant, refusals `Engine::decided` knew before apply.
    pub prechecked: std::collections::BTreeMap<String, u64>,
    learned: Learned,
}

impl Default for Harness {
    fn default() -> Harness {
        Harness::new()
    }
}

impl Harness {
    /// The fixture region (`fixture::region_file`) with the harness's schedules at `EPOCH`.
    pub fn new() -> Harness {
        let mut engine = fresh();
        let view = engine.view_reader();
        Harness {
            engine,
            view,
            at: EPOCH,
            log: Vec::new(),
            steps: 0,
            stats: None,
            prechecked: Default::default(),
            learned: Learned::default(),
        }
    }

    /// Runs ops and then the end-of-run replay; the first broken oracle is the error.
    pub fn run(&mut self, ops: &[Op]) -> Result<(), String> {
        for (i, op) in ops.iter().enumerate() {
            self.step(op).map_err(|e| format!("op {i} {op:?}: {e}"))?;
        }
        self.replay()
    }

    /// Applies one op and checks the oracle.
    pub fn step(&mut self, op: &Op) -> Result<(), String> {
        self.steps += 1;
        let changed = match op {
            Op::Apply { id, command } => self.apply(RequestId(*id), command)?,
            Op::Batch(items) => self.batch(items)?,
            Op::Advance(ms) => {
                self.at = self.at.plus_ms(*ms);
                false
            }
            Op::At(ms) => {
                self.at = LogTime(*ms);
                false
            }
            Op::Read(r) => {
                read(&self.engine, &self.view.load(), r);
                false
            }
            Op::Restore => self.restore().map(|()| true)?,
            Op::Aimed { id, pick, command } => {
                let command = aimed(command, &self.learned, *pick);
                self.apply(RequestId(*id), &command)?
            }
            Op::Empty => {
                self.engine = Engine::new();
                self.view = self.engine.view_reader();
                self.learned = Learned::default();
                self.log.push(Entry {
                    requests: Vec::new(),
                    at: self.at,
                    batch: false,
                    reset: true,
                    outcomes: Vec::new(),
                });
                true
            }
        };
        // The invariants and the view are functions of the state: an unchanged state hash
        // (a refusal, a replay) was checked already.
        if changed {
            self.engine.check_invariants()?;
            check_view(&mut self.engine, &self.view)?;
        }
        Ok(())
    }

    /// Applies one request and checks it; whether the state changed.
    fn apply(&mut self, id: RequestId, command: &Command) -> Result<bool, String> {
        let request = Request {
            id,
            command: command.clone(),
        };
        let known = self.engine.dedup().get(id).is_some();
        let decided = self
            .engine
            .decided(RequestKey::Client(id), command, self.at);
        let before = self.engine.state_hash();
        let outcome = self.engine.apply(&request, self.at);
        self.check_decided(command, known, decided, &outcome)?;
        self.engine.publish_view();
        let after = self.engine.state_hash();
        if outcome.is_err() && before != after {
            return Err(format!("refused ({outcome:?}) but the state changed"));
        }
        if known && before != after {
            return Err(format!(
                "a remembered request id changed the state: {outcome:?}"
            ));
        }
        check_new_bed_hold(&self.engine, &outcome)?;
        self.count(&request.command, &outcome);
        self.learned.learn(&outcome);
        self.log.push(Entry {
            requests: vec![request],
            at: self.at,
            batch: false,
            reset: false,
            outcomes: vec![outcome],
        });
        Ok(before != after)
    }

    /// What `decided` said before a single apply is what apply answered, and a refusal of
    /// a covered command of a new request id was known before.
    fn check_decided(
        &mut self,
        command: &Command,
        known: bool,
        decided: Option<Outcome>,
        outcome: &Outcome,
    ) -> Result<(), String> {
        match (decided, outcome) {
            (Some(d), _) if d != *outcome => Err(format!(
                "decided {d:?} before apply, which answered {outcome:?}"
            )),
            (Some(Err(_)), _) if !known => {
                *self.prechecked.entry(variant_name(command)).or_default() += 1;
                Ok(())
            }
            (None, Err(r)) if known || super::fixture::prechecked(command) => Err(format!(
                "apply refused ({r:?}) what decided left to the log"
            )),
            _ => Ok(()),
        }
    }

    /// Applies requests as one batch and checks them; whether the state changed.
    fn batch(&mut self, items: &[(u128, Command)]) -> Result<bool, String> {
        let requests: Vec<Request> = items
            .iter()
            .take(COMMANDS_PER_BATCH_MAX)
            .map(|(id, command)| Request {
                id: RequestId(*id),
                command: command.clone(),
            })
            .collect();
        let before = self.engine.state_hash();
        let outcomes = self.engine.apply_batch(&requests, self.at);
        let changed = before != self.engine.state_hash();
        if outcomes.iter().all(Result::is_err) && changed {
            return Err(format!(
                "every item refused ({outcomes:?}) but the state changed"
            ));
        }
        if outcomes.len() != requests.len() {
            return Err(format!(
                "{} outcomes for {} requests",
                outcomes.len(),
                requests.len()
            ));
        }
        for (r, o) in requests.iter().zip(&outcomes) {
            check_new_bed_hold(&self.engine, o)?;
            self.count(&r.command, o);
            self.learned.learn(o);
        }
        self.log.push(Entry {
            requests,
            at: self.at,
            batch: true,
            reset: false,
            outcomes,
        });
        Ok(changed)
    }

    /// Counts an outcome per command variant, if stats are kept.
    fn count(&mut self, command: &Command, outcome: &Outcome) {
        if let Some(stats) = self.stats.as_mut() {
            let entry = stats.entry(variant_name(command)).or_default();
            if outcome.is_ok() {
                entry.0 += 1;
            } else {
                entry.1 += 1;
            }
        }
    }

    fn restore(&mut self) -> Result<(), String> {
        let bytes = self.engine.snapshot().map_err(|e| e.to_string())?;
        let restored = Engine::restore(&bytes).map_err(|e| e.to_string())?;
        if restored.state_hash() != self.engine.state_hash() || restored != self.engine {
            return Err("the restored engine differs from the snapshotted one".into());
        }
        self.engine = restored;
        self.view = self.engine.view_reader();
        Ok(())
    }

    /// A second engine fed the same log gives the same outcomes and the same state.
    pub fn replay(&self) -> Result<(), String> {
        let mut twin = fresh();
        for (i, e) in self.log.iter().enumerate() {
            if e.reset {
                twin = Engine::new();
                continue;
            }
            let outcomes = if e.batch {
                twin.apply_batch(&e.requests, e.at)
            } else {
                e.requests.iter().map(|r| twin.apply(r, e.at)).collect()
            };
            if outcomes != e.outcomes {
                return Err(format!(
                    "replay of entry {i} answered {outcomes:?}, first run {:?}",
                    e.outcomes
                ));
            }
        }
        if twin.state_hash() != self.engine.state_hash() {
            return Err("a replica fed the same log ended in another state".into());
        }
        Ok(())
    }
}

/// The name of a command's variant.
pub fn variant_name(command: &Command) -> String {
    let text = format!("{command:?}");
    let name = text.split(|c: char| !c.is_alphanumeric()).next();
    name.unwrap_or("").to_string()
}

/// The fixture engine the harness starts from (loaded once; each run takes a copy).
fn fresh() -> Engine {
    static LOADED: std::sync::OnceLock<Engine> = std::sync::OnceLock::new();
    let loaded = LOADED.get_or_init(|| {
        let file = super::fixture::region_file();
        load(&file, &schedules(), EPOCH).unwrap_or_else(|e| panic!("the harness region loads: {e}"))
    });
    loaded.clone()
}

/// A bed hold the command just placed keeps its ward within its staffed beds.
fn check_new_bed_hold(e: &Engine, outcome: &Outcome) -> Result<(), String> {
    let ward = match outcome {
        Ok(Reply::BedHeld { ward, .. } | Reply::BedAllocated { ward, .. }) => *ward,
        _ => return Ok(()),
    };
    let c = e.beds().counts(ward).ok_or("a hold in an unknown ward")?;
    if c.held + c.occupied > c.staffed {
        return Err(format!(
            "a new hold put ward {ward} over its staffed beds: {c:?}"
        ));
    }
    Ok(())
}

/// The published view equals a view built from scratch on a copy of the engine.
fn check_view(e: &mut Engine, reader: &ViewReader) -> Result<(), String> {
    let view = reader.load();
    let mut copy = e.clone();
    let fresh = copy.view_reader().load();
    for d in e.doctors().map(|d| d.id) {
        if view.doctor(d) != fresh.doctor(d) {
            return Err(format!(
                "view of {d} {:?}, rebuilt {:?}",
                view.doctor(d),
                fresh.doctor(d)
            ));
        }
    }
    for w in e.beds().wards().map(|w| w.id) {
        if view.ward(w) != fresh.ward(w) {
            return Err(format!(
                "view of {w} {:?}, rebuilt {:?}",
                view.ward(w),
                fresh.ward(w)
            ));
        }
    }
    // A hospital whose last doctor or ward moved away keeps an all-zero load entry in the
    // incremental view where a rebuild has none: the same answer.
    let load = |v: &AvailabilityView, h| v.hospital_load(h).copied().unwrap_or_default();
    for h in e.hospitals().map(|h| h.id) {
        if load(&view, h) != load(&fresh, h) {
            return Err(format!(
                "load of {h} {:?}, rebuilt {:?}",
                view.hospital_load(h),
                fresh.hospital_load(h)
            ));
        }
    }
    Ok(())
}

/// Runs one read; its answer only has to exist (and not panic).
pub fn read(e: &Engine, view: &AvailabilityView, r: &Read) {
    let (beds, slots, refs) = (e.beds(), e.slots(), e.referrals());
    let n = |it: &mut dyn Iterator<Item = ()>| it.take(READ_ITEMS_MAX).count();
    match r {
        Read::Hospital(h) => seen(e.hospital(*h)),
        Read::Doctor(d) => seen(e.doctor(*d)),
        Read::Ward(w) => seen(beds.ward(*w)),
        Read::Bed(b) => seen(beds.bed(*b)),
        Read::BedHold(h) => seen(beds.hold(*h)),
        Read::Counts(w) => seen((beds.counts(*w), beds.admissible(*w), beds.in_use(*w))),
        Read::PickBed(w) => seen(beds.pick_bed(*w)),
        Read::CheckBedHoldable(b) => seen(beds.check_holdable(*b)),
        Read::CheckPending(h, t) => seen(beds.check_pending(*h, *t)),
        Read::Slot(s) => seen(
            slots
                .slot(*s)
                .map(|s| (s.end(), s.open_seats(Channel::Public))),
        ),
        Read::Seat(h) => seen(slots.seat(*h)),
        Read::Consult(c) => seen(slots.consult(*c)),
        Read::Waitlist(d) => seen(n(&mut slots.waitlist(*d).map(|_| ()))),
        Read::DoctorSlots(d, from, to) => {
            seen(n(&mut slots.doctor_slots(*d, *from, *to).map(|_| ())))
        }
        Read::FindSlots {
            doctor,
            from,
            to,
            channel,
            limit,
        } => {
            let from = (*from).max(e.now().plus_ms(1));
            let limit = usize::try_from(*limit)
                .unwrap_or(usize::MAX)
                .min(READ_ITEMS_MAX);
            for d in doctor.map_or_else(|| e.doctors().map(|d| d.id).collect(), |d| vec![d]) {
                let open = slots
                    .doctor_slots(d, from, *to)
                    .filter(|s| s.open_seats(*channel) > 0);
                black_box(open.take(limit).count());
            }
        }
        Read::Blocked(p, t) => seen(slots.blocked(*p, *t)),
        Read::CheckSchedule(d, specs, t) => seen(slots.check_schedule(*d, specs, *t)),
        Read::CheckSlotHoldable(s, p, c, t) => seen(slots.check_holdable(*s, *p, *c, *t)),
        Read::CheckHeld(h, t, alone) => seen(slots.check_held(*h, *t, *alone)),
        Read::CheckCancellable(h, t) => seen(slots.check_cancellable(*h, *t, e.policy())),
        Read::CheckBooked(h) => seen(slots.check_booked(*h)),
        Read::Referral(id) => seen(refs.get(*id)),
        Read::Worklist(h) => seen(refs.worklist(*h)),
        Read::ForHold(h) => seen(refs.for_hold(*h)),
        Read::CheckReferral(id, allowed) => seen(refs.check(*id, allowed, "read")),
        Read::Reach(h) => seen(e.graph().reach(*h)),
        Read::Travel(a, b) => seen((
            e.graph().travel_minutes(*a, *b),
            e.graph().travel_within_reach(*a, *b),
        )),
        Read::Graph(a, b) => seen((e.graph().referral_kind(*a, *b), e.graph().allied(*a, *b))),
        Read::MatchSpecialist(q) => seen(match_specialist(view, q)),
        Read::MatchBeds(q) => seen(match_beds(view, q)),
        Read::View(d, w, h) => seen((view.doctor(*d), view.ward(*w), view.hospital_load(*h))),
        Read::Dedup(id) => seen(e.dedup().get(*id)),
    }
}

/// Keeps a read's answer alive so the optimizer cannot skip the read.
fn seen<T>(answer: T) {
    black_box(answer);
}
