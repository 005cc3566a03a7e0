//! The rules of schedules and referrals that span entries: what the log said (published,
//! amended, withdrawn, templates set, referrals moved) against what the engine holds after
//! each entry. Run on every replica after every apply (`machine.rs`; the model is learnt
//! afresh from a restored snapshot) and over the whole history on the checker's replay
//! (`check.rs`):
//!
//! * **withdrawn slots stay empty**: once a slot is withdrawn it stays withdrawn (at the
//!   same log time) and no seat of it is held or booked, and no reply places a seat on it
//!   (`SlotHeld`, `SlotAllocated`, a joint consultation's seats, a waitlist offer), later
//!   in the same entry or after; a slot is withdrawn only by a `WithdrawSlots` that says so,
//!   and every slot such a reply names is withdrawn; a withdrawn slot is never amended;
//! * **seat numbers are what was declared**: a slot's doctor, start, duration and mode never
//!   change; its capacity, overbooking and referral quota are those it was published with
//!   until a successful `AmendSlot` sets exactly the numbers it names; its held and booked
//!   seats never exceed the declared capacity plus overbooking, and its public seats never
//!   exceed the capacity less the referral quota (overbooking and the quota are for
//!   referrals only);
//! * **publications are explained and never doubled**: a new slot is one of the ids a
//!   `SchedulePublished` or `TemplateSet` reply of the entry names (for that doctor; all of
//!   them exist), or was rolled by a tick from the doctor's template on a day the template
//!   had not reached (a day is expanded once); a template's next day never goes back unless
//!   a `SetWeeklyTemplate` of that doctor set it; no doctor has two live slots that overlap;
//! * **closed referrals never move**: a referral that is completed, rejected, cancelled or
//!   expired keeps its state and holds, and no reply moves it again; a rejected, cancelled
//!   or expired referral holds no seat (held or booked) and no pending bed; a matched
//!   referral reported without capacity (`ReportNoCapacity`) let go of the seat and bed it
//!   was matched with.

use ninety_engine::time::{MS_PER_DAY, MS_PER_MINUTE};
use ninety_engine::{
    Command, DoctorId, Engine, HoldId, HoldState, LogTime, Mode, Outcome, ReferralId,
    ReferralState, Reply, SeatLimits, SlotId, SlotSpec,
};
use std::collections::{BTreeMap, BTreeSet};

/// One command of an entry and what it answered.
pub struct Step<'a> {
    pub command: &'a Command,
    pub outcome: &'a Outcome,
    /// Answered from the dedup table: the first answer again, nothing changed.
    pub replayed: bool,
}

/// A slot as last seen.
#[derive(Clone, Debug, PartialEq, Eq)]
struct SlotSeen {
    doctor: DoctorId,
    start: LogTime,
    duration_minutes: u16,
    mode: Mode,
    seats: SeatLimits,
    withdrawn_at: Option<LogTime>,
}

impl SlotSeen {
    fn new(doctor: DoctorId, spec: &SlotSpec, withdrawn_at: Option<LogTime>) -> SlotSeen {
        SlotSeen {
            doctor,
            start: spec.start,
            duration_minutes: spec.duration_minutes,
            mode: spec.mode,
            seats: SeatLimits {
                capacity: spec.capacity,
                overbook: spec.overbook,
                referral_quota: spec.referral_quota,
            },
            withdrawn_at,
        }
    }

    fn end(&self) -> LogTime {
        self.start
            .plus_ms(u64::from(self.duration_minutes) * MS_PER_MINUTE)
    }

    /// Everything but the seat numbers and the withdrawal.
    fn identity(&self) -> (DoctorId, LogTime, u16, Mode) {
        (self.doctor, self.start, self.duration_minutes, self.mode)
    }
}

/// A referral as last seen.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct ReferralSeen {
    state: ReferralState,
    slot_hold: Option<HoldId>,
    bed_hold: Option<HoldId>,
}

/// What the successful, not replayed, answers of one entry said.
#[derive(Default)]
struct Said {
    amended: BTreeMap<SlotId, SeatLimits>,
    withdrawn: BTreeSet<SlotId>,
    /// (doctor, first id, count) of each publication.
    published: Vec<(DoctorId, SlotId, u32)>,
    templates_set: BTreeSet<DoctorId>,
    /// A tick ran (the entry is empty, or a `Tick` command): templates may roll.
    ticked: bool,
    /// Referrals closed by a reply of this entry.
    closed: BTreeSet<ReferralId>,
    reports: BTreeSet<ReferralId>,
}

/// The model of one replica (or of the replay): slots, referrals and templates as last
/// seen, plus what the run showed (for the summary).
#[derive(Debug, Default, Clone)]
pub struct Rules {
    slots: BTreeMap<SlotId, SlotSeen>,
    referrals: BTreeMap<ReferralId, ReferralSeen>,
    /// Each doctor's template's next day (days since the epoch).
    templates: BTreeMap<DoctorId, u64>,
    /// Slots a tick rolled from a template.
    pub rolled: BTreeSet<SlotId>,
    /// Slots whose taken seats went beyond their capacity, into overbooking.
    pub overbooked: BTreeSet<SlotId>,
    /// Successful `ReportNoCapacity` on a referral that was MATCHED before the entry.
    pub reported_matched: u64,
}

impl Rules {
    /// Takes the engine's state as it is, unchecked (a fresh engine or a restored snapshot).
    pub fn learn(&mut self, engine: &Engine) {
        let book = engine.slots();
        self.slots = book
            .slots()
            .map(|s| (s.id, SlotSeen::new(s.doctor, &s.spec, s.withdrawn_at)))
            .collect();
        self.referrals = engine
            .referrals()
            .all()
            .map(|r| (r.id, seen_referral(r)))
            .collect();
        self.templates = engine
            .doctors()
            .filter_map(|d| Some((d.id, book.template(d.id)?.next_day)))
            .collect();
    }

    /// Checks entry `index` (its steps, in order, and the engine after it); pushes what it
    /// breaks to `out` and moves the model on.
    pub fn entry(
        &mut self,
        index: u64,
        engine: &Engine,
        steps: &[Step<'_>],
        out: &mut Vec<String>,
    ) {
        let said = self.replies(index, engine, steps, out);
        self.slots_after(index, engine, &said, out);
        self.publications(index, engine, &said, out);
        self.templates_after(index, engine, &said, out);
        self.referrals_after(index, engine, &said, out);
    }

    fn withdrawn(&self, slot: SlotId, said: &Said) -> bool {
        said.withdrawn.contains(&slot)
            || self
                .slots
                .get(&slot)
                .is_some_and(|s| s.withdrawn_at.is_some())
    }

    /// Walks the entry's answers in order: what they declare, and no seat placed on (or
    /// amendment of) a slot withdrawn before, no move of a referral closed before.
    fn replies(
        &self,
        index: u64,
        engine: &Engine,
        steps: &[Step<'_>],
        out: &mut Vec<String>,
    ) -> Said {
        let mut said = Said {
            ticked: steps.is_empty(),
            ..Said::default()
        };
        for s in steps.iter().filter(|s| !s.replayed) {
            let Ok(reply) = s.outcome else {
                continue;
            };
            match (s.command, reply) {
                (Command::AmendSlot { slot, seats }, Reply::SlotAmended { .. }) => {
                    if self.withdrawn(*slot, &said) {
                        out.push(format!("entry {index}: withdrawn slot {slot} was amended"));
                    }
                    said.amended.insert(*slot, *seats);
                }
                (_, Reply::SlotsWithdrawn { slots, .. }) => said.withdrawn.extend(slots),
                (
                    Command::PublishSchedule { doctor, .. }
                    | Command::SetWeeklyTemplate { doctor, .. },
                    Reply::SchedulePublished { first, count }
                    | Reply::TemplateSet { first, count, .. },
                ) => said.published.push((*doctor, *first, *count)),
                (_, Reply::ReferralUpdated { referral, state }) => {
                    let was = self.referrals.get(referral).map(|r| r.state);
                    if said.closed.contains(referral) || was.is_some_and(ReferralState::is_final) {
                        out.push(format!(
                            "entry {index}: closed referral {referral} moved to {}",
                            state.name()
                        ));
                    }
                    if state.is_final() {
                        said.closed.insert(*referral);
                    }
                }
                (_, Reply::Ticked { .. }) => said.ticked = true,
                _ => {}
            }
            match s.command {
                Command::SetWeeklyTemplate { doctor, .. } => {
                    said.templates_set.insert(*doctor);
                }
                Command::ReportNoCapacity { referral, .. } => {
                    said.reports.insert(*referral);
                }
                _ => {}
            }
            for (hold, slot) in placements(engine, reply) {
                if self.withdrawn(slot, &said) {
                    out.push(format!(
                        "entry {index}: seat {hold} placed on slot {slot} after its withdrawal"
                    ));
                }
            }
        }
        said
    }

    /// Every slot after the entry against the model: identity, declared seat numbers, the
    /// withdrawal, seats within the declared numbers, nothing live on a withdrawn slot, no
    /// overlap among a doctor's live slots.
    fn slots_after(&mut self, index: u64, engine: &Engine, said: &Said, out: &mut Vec<String>) {
        let book = engine.slots();
        let mut live = Vec::new();
        for s in book.slots() {
            let now = SlotSeen::new(s.doctor, &s.spec, s.withdrawn_at);
            let declared = match self.slots.get(&s.id) {
                None => {
                    self.new_slot(index, s.id, &now, said, out);
                    now.seats
                }
                Some(seen) => {
                    check_kept(index, s.id, seen, &now, said, out);
                    said.amended.get(&s.id).copied().unwrap_or(seen.seats)
                }
            };
            if now.seats != declared {
                out.push(format!(
                    "entry {index}: slot {} has seats {:?}, but {declared:?} were declared",
                    s.id, now.seats
                ));
            }
            let (taken, public) = (u32::from(s.taken()), u32::from(s.taken_public));
            let c = u32::from(declared.capacity);
            if taken > c + u32::from(declared.overbook)
                || public > c.saturating_sub(u32::from(declared.referral_quota))
            {
                out.push(format!(
                    "entry {index}: slot {} has {taken} seats taken ({public} public) beyond its \
                     declared {declared:?}",
                    s.id
                ));
            }
            if taken > c {
                self.overbooked.insert(s.id);
            }
            if now.withdrawn_at.is_some() {
                let kept = book.seats_in(s.id).find(|x| x.state.takes_seat());
                if let Some(x) = kept.map(|x| x.id).or((taken > 0).then_some(HoldId(0))) {
                    out.push(format!(
                        "entry {index}: withdrawn slot {} still has seat {x} ({taken} taken)",
                        s.id
                    ));
                }
            } else {
                live.push((now.doctor, now.start, now.end(), s.id));
            }
            self.slots.insert(s.id, now);
        }
        self.slots.retain(|id, _| book.slot(*id).is_some());
        live.sort();
        for w in live.windows(2) {
            if w[0].0 == w[1].0 && w[1].1 < w[0].2 {
                out.push(format!(
                    "entry {index}: doctor {} has live slots {} and {} that overlap",
                    w[0].0, w[0].3, w[1].3
                ));
            }
        }
    }

    /// A slot the model has not seen: published by a reply of this entry, or rolled by a
    /// tick from the doctor's template on a day the template had not reached.
    fn new_slot(
        &mut self,
        index: u64,
        id: SlotId,
        s: &SlotSeen,
        said: &Said,
        out: &mut Vec<String>,
    ) {
        let published = said
            .published
            .iter()
            .any(|&(_, first, count)| id.0 >= first.0 && id.0 < first.0 + u64::from(count));
        if published {
            return;
        }
        let day = s.start.0 / MS_PER_DAY;
        match self.templates.get(&s.doctor) {
            Some(&next) if said.ticked && day >= next => {
                self.rolled.insert(id);
            }
            Some(&next) if said.ticked => out.push(format!(
                "entry {index}: slot {id} rolled for day {day} of doctor {}, whose template \
                 had already published up to day {next}",
                s.doctor
            )),
            _ => out.push(format!(
                "entry {index}: slot {id} of doctor {} appeared without a publication or a \
                 template roll",
                s.doctor
            )),
        }
    }

    /// Every id a publication of the entry names exists, for its doctor.
    fn publications(&self, index: u64, engine: &Engine, said: &Said, out: &mut Vec<String>) {
        for &(doctor, first, count) in &said.published {
            for id in (0..u64::from(count)).map(|i| SlotId(first.0 + i)) {
                let s = engine.slots().slot(id);
                if s.is_none_or(|s| s.doctor != doctor) {
                    out.push(format!(
                        "entry {index}: slot {id}, published for doctor {doctor}, is not theirs"
                    ));
                }
            }
        }
    }

    /// A template's next day moves on only by rolling, or as a `SetWeeklyTemplate` sets it.
    fn templates_after(&mut self, index: u64, engine: &Engine, said: &Said, out: &mut Vec<String>) {
        let book = engine.slots();
        for d in engine.doctors() {
            let next = book.template(d.id).map(|r| r.next_day);
            let before = self.templates.get(&d.id).copied();
            if !said.templates_set.contains(&d.id) {
                let back = matches!((before, next), (Some(b), Some(n)) if n < b);
                if back || before.is_some() != next.is_some() {
                    out.push(format!(
                        "entry {index}: doctor {}'s template went from day {before:?} to \
                         {next:?} without a SetWeeklyTemplate",
                        d.id
                    ));
                }
            }
            match next {
                Some(n) => self.templates.insert(d.id, n),
                None => self.templates.remove(&d.id),
            };
        }
    }

    /// Closed referrals keep their state and holds; a referral closed now (rejected,
    /// cancelled, expired) holds nothing; a matched one reported without capacity let go of
    /// its holds.
    fn referrals_after(&mut self, index: u64, engine: &Engine, said: &Said, out: &mut Vec<String>) {
        for r in engine.referrals().all() {
            let now = seen_referral(r);
            let before = self.referrals.insert(r.id, now);
            if let Some(b) = before.filter(|b| b.state.is_final() && *b != now) {
                out.push(format!(
                    "entry {index}: referral {} moved after it was {}: {b:?} -> {now:?}",
                    r.id,
                    b.state.name()
                ));
            }
            let closing = matches!(
                now.state,
                ReferralState::Rejected | ReferralState::Cancelled | ReferralState::Expired
            );
            if closing && before.is_none_or(|b| !b.state.is_final()) {
                if let Some(h) = still_held(engine, now.slot_hold, now.bed_hold) {
                    out.push(format!(
                        "entry {index}: referral {} is {} but hold {h} is still live",
                        r.id,
                        now.state.name()
                    ));
                }
            }
            let reported = said.reports.contains(&r.id);
            if let Some(b) = before.filter(|b| reported && b.state == ReferralState::Matched) {
                self.reported_matched += 1;
                if let Some(h) = still_held(engine, b.slot_hold, b.bed_hold) {
                    out.push(format!(
                        "entry {index}: matched referral {} reported without capacity kept \
                         hold {h}",
                        r.id
                    ));
                }
            }
        }
        let book = engine.referrals();
        self.referrals.retain(|id, _| book.get(*id).is_some());
    }
}

/// A known slot after the entry: same doctor, time and mode; withdrawn only by a
/// withdrawal of this entry, and for good.
fn check_kept(
    index: u64,
    id: SlotId,
    seen: &SlotSeen,
    now: &SlotSeen,
    said: &Said,
    out: &mut Vec<String>,
) {
    if seen.identity() != now.identity() {
        out.push(format!(
            "entry {index}: slot {id} changed from {:?} to {:?}",
            seen.identity(),
            now.identity()
        ));
    }
    let named = said.withdrawn.contains(&id);
    let ok = match (seen.withdrawn_at, now.withdrawn_at) {
        (Some(a), Some(b)) => a == b && !named,
        (None, Some(_)) => named,
        (None, None) => !named,
        (Some(_), None) => false,
    };
    if !ok {
        out.push(format!(
            "entry {index}: slot {id} withdrawn at {:?}, now {:?}, named by a withdrawal of \
             this entry: {named}",
            seen.withdrawn_at, now.withdrawn_at
        ));
    }
}

fn seen_referral(r: &ninety_engine::referrals::Referral) -> ReferralSeen {
    ReferralSeen {
        state: r.state,
        slot_hold: r.slot_hold,
        bed_hold: r.bed_hold,
    }
}

/// The first of a seat and a bed hold that is still live (a seat held or booked, a bed hold
/// pending).
fn still_held(engine: &Engine, seat: Option<HoldId>, bed: Option<HoldId>) -> Option<HoldId> {
    let seat = seat.filter(|h| {
        engine
            .slots()
            .seat(*h)
            .is_some_and(|s| s.state.takes_seat())
    });
    let bed = bed.filter(|h| {
        engine
            .beds()
            .hold(*h)
            .is_some_and(|b| b.state == HoldState::Pending)
    });
    seat.or(bed)
}

/// The seats a successful reply placed, with their slots: a held or allocated seat, a
/// joint consultation's seats, the seats offered to waitlists.
fn placements(engine: &Engine, reply: &Reply) -> Vec<(HoldId, SlotId)> {
    match reply {
        Reply::SlotHeld { hold, slot, .. } | Reply::SlotAllocated { hold, slot, .. } => {
            vec![(*hold, *slot)]
        }
        Reply::ConsultHeld { seats, .. } => seats
            .iter()
            .filter_map(|h| Some((*h, engine.slots().seat(*h)?.slot)))
            .collect(),
        Reply::Ticked { offers, .. }
        | Reply::SlotReleased { offers, .. }
        | Reply::BookingCancelled { offers, .. }
        | Reply::ConsultReleased { offers, .. }
        | Reply::SlotAmended { offers, .. }
        | Reply::SlotsWithdrawn { offers, .. } => offers.iter().map(|o| (o.hold, o.slot)).collect(),
        _ => Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    //! Each rule can fail: the model is fed an engine that moved without the answers that
    //! explain it (or answers the engine never gave), and must say so.
    use super::*;
    use crate::region;
    use ninety_engine::{
        Channel, HospitalId, PatientRef, Request, RequestId, Specialty, TemplateSlot, Urgency,
        WeeklyTemplate,
    };

    /// Log time of the tests: a minute after the sim's midnight.
    const NOW: LogTime = LogTime(crate::sim::EPOCH_MS + 120_000);

    struct Run {
        engine: Engine,
        seq: u128,
    }

    impl Run {
        fn new() -> Run {
            let first = LogTime(crate::sim::EPOCH_MS + MS_PER_DAY);
            let schedules = region::schedules(first);
            let engine =
                ninety_engine::load(&region::region_file(), &schedules, NOW).expect("region loads");
            Run { engine, seq: 0 }
        }

        fn apply(&mut self, command: Command, at: LogTime) -> (Command, Outcome) {
            self.seq += 1;
            let request = Request {
                id: RequestId(self.seq),
                command,
            };
            let outcome = self.engine.apply(&request, at);
            (request.command, outcome)
        }
    }

    fn check(rules: &mut Rules, engine: &Engine, done: &[(Command, Outcome)]) -> Vec<String> {
        let steps: Vec<Step<'_>> = done
            .iter()
            .map(|(command, outcome)| Step {
                command,
                outcome,
                replayed: false,
            })
            .collect();
        let mut out = Vec::new();
        rules.entry(7, engine, &steps, &mut out);
        out
    }

    fn learnt(engine: &Engine) -> Rules {
        let mut rules = Rules::default();
        rules.learn(engine);
        rules
    }

    /// Something the rules do not look at, to make an entry that is not a tick.
    fn nothing(run: &mut Run) -> (Command, Outcome) {
        let patient = PatientRef(99);
        run.apply(Command::UnblockPatient { patient }, NOW)
    }

    fn hold(slot: SlotId) -> Command {
        Command::HoldSlot {
            slot,
            patient: PatientRef(5),
            channel: Channel::Public,
            referral: None,
        }
    }

    #[test]
    fn a_withdrawal_must_be_said_and_leaves_the_slot_empty() {
        let mut run = Run::new();
        let slot = SlotId(1);
        let held = run.apply(hold(slot), NOW);
        assert!(held.1.is_ok(), "{held:?}");
        let mut rules = learnt(&run.engine);
        let mut silent = rules.clone();
        let withdraw = Command::WithdrawSlots {
            slots: vec![slot],
            cancel_bookings: true,
        };
        let withdrawn = run.apply(withdraw, NOW);
        assert!(check(&mut rules, &run.engine, &[withdrawn]).is_empty());
        let other = nothing(&mut run);
        let v = check(&mut silent, &run.engine, &[other]);
        assert!(v.iter().any(|v| v.contains("withdrawn at")), "{v:?}");
        // A seat on it afterwards, as a (wrong) answer claims.
        let mut placed = held.clone();
        placed.0 = hold(slot);
        let v = check(&mut rules, &run.engine, &[placed]);
        assert!(
            v.iter().any(|v| v.contains("after its withdrawal")),
            "{v:?}"
        );
    }

    #[test]
    fn seat_numbers_change_only_as_an_amendment_says() {
        let mut run = Run::new();
        let mut rules = learnt(&run.engine);
        let mut silent = rules.clone();
        let seats = SeatLimits {
            capacity: 3,
            overbook: 2,
            referral_quota: 1,
        };
        let amended = run.apply(
            Command::AmendSlot {
                slot: SlotId(2),
                seats,
            },
            NOW,
        );
        assert!(amended.1.is_ok(), "{amended:?}");
        assert!(check(&mut rules, &run.engine, &[amended]).is_empty());
        let other = nothing(&mut run);
        let v = check(&mut silent, &run.engine, &[other]);
        assert!(v.iter().any(|v| v.contains("were declared")), "{v:?}");
    }

    #[test]
    fn a_slot_must_be_published_or_rolled() {
        let mut run = Run::new();
        let mut silent = learnt(&run.engine);
        let spec = SlotSpec {
            start: LogTime(crate::sim::EPOCH_MS + 2 * MS_PER_DAY),
            duration_minutes: 15,
            mode: Mode::InPerson,
            capacity: 1,
            overbook: 1,
            referral_quota: 0,
        };
        let doctor = DoctorId(1);
        let publish = Command::PublishSchedule {
            doctor,
            slots: vec![spec],
        };
        let mut rules = silent.clone();
        let published = run.apply(publish, NOW);
        assert!(check(&mut rules, &run.engine, &[published]).is_empty());
        let other = nothing(&mut run);
        let v = check(&mut silent, &run.engine, &[other]);
        assert!(
            v.iter().any(|v| v.contains("without a publication")),
            "{v:?}"
        );
    }

    #[test]
    fn a_template_day_rolls_once() {
        let mut run = Run::new();
        let doctor = DoctorId(3);
        let template = WeeklyTemplate {
            slots: vec![TemplateSlot {
                weekdays: 0x7F,
                minute_of_day: 600,
                duration_minutes: 15,
                mode: Mode::InPerson,
                capacity: 1,
                overbook: 0,
                referral_quota: 0,
            }],
            horizon_days: 2,
        };
        let set = Command::SetWeeklyTemplate {
            doctor,
            template,
            from: LogTime(0),
        };
        let mut rules = learnt(&run.engine);
        let set = run.apply(set, NOW);
        assert!(check(&mut rules, &run.engine, &[set]).is_empty());
        let mut rolled_twice = rules.clone();
        let next = rolled_twice.templates.get(&doctor).copied().unwrap_or(0);
        rolled_twice.templates.insert(doctor, next + 1);
        // The next midnight: the tick (an empty entry) rolls one more day.
        let tick = run.apply(Command::Tick, NOW.plus_ms(MS_PER_DAY));
        assert!(tick.1.is_ok(), "{tick:?}");
        assert!(check(&mut rules, &run.engine, &[]).is_empty());
        assert_eq!(rules.rolled.len(), 1, "{:?}", rules.rolled);
        let v = check(&mut rolled_twice, &run.engine, &[]);
        assert!(v.iter().any(|v| v.contains("already published")), "{v:?}");
    }

    #[test]
    fn a_closed_referral_never_moves() {
        let (mut open, mut closed) = (Run::new(), Run::new());
        let request = Command::RequestReferral {
            from: HospitalId(2),
            to: None,
            patient: PatientRef(8),
        };
        for run in [&mut open, &mut closed] {
            assert!(run.apply(request.clone(), NOW).1.is_ok());
            let referral = ReferralId(1);
            let triage = Command::TriageReferral {
                referral,
                specialty: Specialty::Cardiology,
                urgency: Urgency::P2,
            };
            assert!(run.apply(triage, NOW).1.is_ok());
        }
        let reject = Command::RejectReferral {
            referral: ReferralId(1),
            reason: "no".into(),
        };
        let rejected = closed.apply(reject, NOW);
        let mut rules = learnt(&closed.engine);
        // The same referral, triaged again: it moved after it was rejected.
        let other = nothing(&mut open);
        let v = check(&mut rules.clone(), &open.engine, &[other]);
        assert!(
            v.iter().any(|v| v.contains("after it was rejected")),
            "{v:?}"
        );
        // An answer that moves it again.
        let v = check(&mut rules, &closed.engine, &[rejected]);
        assert!(v.iter().any(|v| v.contains("closed referral")), "{v:?}");
    }
}
