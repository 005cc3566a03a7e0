//! The client workload: closed-loop clients that hold, confirm and release beds, discharge
//! and clean them, hold, book, release and cancel slot seats, hold, book and release joint
//! consultations, allocate beds and slots (`AllocateBed`, `AllocateSlot`: the engine
//! chooses and holds), send the capacity and region commands of hospital systems and
//! operators ([`capacity`]: block, unblock and add beds, staffed beds, ward, doctor and
//! hospital records, roads, referral paths, the policy, lifting a no-show block, a bed held
//! for a referral, cancelling a joint consultation), send the rolling-schedule commands
//! ([`schedules`]: amend and withdraw slots, weekly templates, publications with
//! overbooking), carry referrals on through the lifecycle ([`referrals`]: match, no capacity
//! on a matched referral, reject, cancel), and read through ReadIndex (a bed hold,
//! a seat, a ward's counts, a page of wards, a referral, a worklist page, a consultation, a
//! patient's bookings or waitlist entries).
//! A referral-channel seat needs a triaged referral of the patient, so a client that wants
//! one first requests and triages a referral (`referral_seat`) and then names it; a few
//! referral-channel asks name none, to keep the refusal in the history.
//! Each client remembers what it holds (from acknowledged replies) so its next operation
//! usually acts on something real; stale references are fine, the engine refuses them and
//! the refusal is part of the checked history.

mod capacity;
mod referrals;
mod remote;
mod schedules;

pub use remote::RemoteDest;

use crate::region::RegionInfo;
use crate::rng::Rng;
use ninety_cluster::engine_sm::Query;
use ninety_engine::matching::{BedQuery, Origin, SlotQuery};
use ninety_engine::read::{WaitlistQuery, WardPageQuery, WorklistQuery};
use ninety_engine::{
    BedId, BedTarget, Channel, Command, ConsultId, HoldId, LogTime, Mode, PatientRef, ReferralId,
    Rejection, Reply, Request, RequestId, SlotId, Specialty, Urgency,
};

/// Bed holds and seats a client remembers for its reads (most recent last).
const RECENT_MAX: usize = 4;
/// Referrals a client keeps per state (requested, triaged), oldest dropped first.
const REFERRALS_KEPT_MAX: usize = 4;
/// Of the referral-channel asks, how many in a thousand name no referral (always refused).
const REFERRAL_MISSING_PER_MILLE: u64 = 100;
/// Slots a client remembers having published, newest kept.
const PUBLISHED_KEPT_MAX: usize = 8;
/// Of the seat holds, how many in a thousand go to a slot the client published.
const PUBLISHED_SEAT_PER_MILLE: u64 = 250;

/// One client operation: a command for the log, or a linearizable read.
#[derive(Debug, Clone)]
pub enum ClientOp {
    Write(Command),
    Read(Query),
}

/// What one client currently owns, as far as its acknowledged replies tell.
#[derive(Debug, Default, Clone)]
pub struct Owned {
    pub bed_holds: Vec<HoldId>,
    pub occupied: Vec<BedId>,
    pub to_clean: Vec<BedId>,
    /// Beds this client blocked (`BlockBed`) and has not unblocked.
    pub blocked: Vec<BedId>,
    pub slot_holds: Vec<HoldId>,
    pub bookings: Vec<HoldId>,
    pub consults: Vec<ConsultId>,
    pub booked_consults: Vec<ConsultId>,
    /// Bed holds this client created or changed lately (read back by `Query::Hold`).
    pub recent_bed_holds: Vec<HoldId>,
    /// Seats this client created or changed lately (read back by `Query::Seat`).
    pub recent_seats: Vec<HoldId>,
    /// Referrals this client requested and has not triaged yet, with their patient.
    pub requested: Vec<(PatientRef, ReferralId)>,
    /// Triaged referrals this client may name for a referral-channel seat.
    pub triaged: Vec<(PatientRef, ReferralId)>,
    /// Seats and beds this client held for a triaged referral (to match it with).
    pub referral_seats: Vec<(ReferralId, HoldId)>,
    pub referral_beds: Vec<(ReferralId, HoldId)>,
    /// Referrals this client matched (`MatchReferral`).
    pub matched: Vec<(PatientRef, ReferralId)>,
    /// Referrals this client rejected or cancelled.
    pub closed: Vec<ReferralId>,
    /// Slots this client published (`PublishSchedule`, `SetWeeklyTemplate`), newest last.
    pub published: Vec<SlotId>,
    /// Referrals this client asked another region for a bed for (`HoldRemoteBed`).
    pub remote: Vec<(PatientRef, ReferralId)>,
}

fn remember(v: &mut Vec<HoldId>, h: HoldId) {
    v.retain(|x| *x != h);
    if v.len() >= RECENT_MAX {
        v.remove(0);
    }
    v.push(h);
}

fn take<T: Copy>(rng: &mut Rng, v: &[T]) -> Option<T> {
    rng.pick(v).copied()
}

fn remove<T: PartialEq>(v: &mut Vec<T>, x: &T) {
    v.retain(|y| y != x);
}

fn urgency(rng: &mut Rng) -> Urgency {
    match rng.below(4) {
        0 => Urgency::P1,
        1 => Urgency::P2,
        2 => Urgency::P3,
        _ => Urgency::P4,
    }
}

/// Draws the next operation for a client: about 9% reads, 6% allocations, 7% capacity and
/// region commands, 3% schedule commands, 3% referral steps, the rest the other writes.
pub fn next_op(rng: &mut Rng, region: &RegionInfo, owned: &Owned, patient: u128) -> ClientOp {
    let roll = rng.below(138);
    let p = PatientRef(patient);
    match roll {
        0..=99 => ClientOp::Write(next_command(rng, region, owned, patient, roll)),
        100..=107 => ClientOp::Write(allocation(rng, region, owned, patient, roll < 104)),
        108..=117 => ClientOp::Write(capacity::command(rng, region, owned, p)),
        118..=129 => ClientOp::Read(next_read(rng, region, owned, p)),
        130..=133 => ClientOp::Write(schedules::command(rng, region, owned)),
        _ => ClientOp::Write(referrals::command(rng, region, owned, p)),
    }
}

/// Of the origin region's operations in a multi-region run, how many in a thousand are
/// cross-region referral commands ([`remote`]).
const REMOTE_PER_MILLE: u64 = 100;

/// [`next_op`] in the origin region of a multi-region run: some operations are cross-region
/// referral commands for `dest` ([`remote`]).
pub fn next_op_with_remote(
    rng: &mut Rng,
    region: &RegionInfo,
    dest: &RemoteDest,
    owned: &Owned,
    patient: u128,
) -> ClientOp {
    if rng.chance(REMOTE_PER_MILLE) {
        return ClientOp::Write(remote::command(
            rng,
            region,
            dest,
            owned,
            PatientRef(patient),
        ));
    }
    next_op(rng, region, owned, patient)
}

/// An allocation: the engine picks the ward (any of the region's, they are all Cardiology)
/// or the slot (any doctor's, in the published window) and holds it in one command.
fn allocation(
    rng: &mut Rng,
    region: &RegionInfo,
    owned: &Owned,
    patient: u128,
    bed: bool,
) -> Command {
    let patient = PatientRef(patient);
    let origin = Origin::Hospital(
        rng.pick(&region.hospitals)
            .copied()
            .unwrap_or(ninety_engine::HospitalId(1)),
    );
    if bed {
        return Command::AllocateBed {
            query: BedQuery {
                origin,
                needs: Default::default(),
                specialty: rng.chance(500).then_some(Specialty::Cardiology),
                isolation: false,
                urgency: urgency(rng),
                limit: 1,
                bounds: ninety_engine::matching::Bounds::NONE,
            },
            ttl_ms: rng.range(500, 20_000),
            patient,
        };
    }
    let (from, to) = region.slot_window;
    let (channel, patient, referral) = if rng.chance(300) {
        match referral_seat(rng, region, owned, patient) {
            Ok((patient, referral)) => (Channel::Referral, patient, referral),
            Err(first) => return first,
        }
    } else {
        (Channel::Public, patient, None)
    };
    Command::AllocateSlot {
        query: SlotQuery {
            origin,
            specialty: Specialty::Cardiology,
            urgency: urgency(rng),
            language: None,
            mode: if rng.chance(500) {
                Mode::Remote
            } else {
                Mode::InPerson
            },
            earliest: from,
            latest: LogTime(to.0),
            channel,
            limit: 1,
            bounds: ninety_engine::matching::Bounds::NONE,
        },
        patient,
        referral,
    }
}

/// The patient and referral of a referral-channel seat: a triaged referral this client
/// holds (its patient, not `patient`), or, about one ask in ten, none (refused). `Err` is
/// the command to send first when the client has no triaged referral: triage a requested
/// one, else request one for `patient`.
fn referral_seat(
    rng: &mut Rng,
    region: &RegionInfo,
    owned: &Owned,
    patient: PatientRef,
) -> Result<(PatientRef, Option<ReferralId>), Command> {
    if rng.chance(REFERRAL_MISSING_PER_MILLE) {
        return Ok((patient, None));
    }
    if let Some((p, r)) = take(rng, &owned.triaged) {
        return Ok((p, Some(r)));
    }
    if let Some((_, referral)) = take(rng, &owned.requested) {
        return Err(Command::TriageReferral {
            referral,
            specialty: Specialty::Cardiology,
            urgency: urgency(rng),
        });
    }
    let from = rng
        .pick(&region.hospitals)
        .copied()
        .unwrap_or(ninety_engine::HospitalId(1));
    Err(Command::RequestReferral {
        from,
        to: None,
        patient,
    })
}

/// A read: mostly something this client just wrote (so a stale replica is exposed), else
/// one of the reads of lists (a page of wards, a worklist page, the patient's bookings or
/// waitlist entries) or a ward's counts (which every bed hold changes).
fn next_read(rng: &mut Rng, region: &RegionInfo, owned: &Owned, patient: PatientRef) -> Query {
    let roll = rng.below(20);
    let hospital = |rng: &mut Rng| take(rng, &region.hospitals).filter(|_| !rng.chance(300));
    let referral = take(rng, &owned.triaged).or_else(|| take(rng, &owned.requested));
    let consult = take(rng, &owned.consults).or_else(|| take(rng, &owned.booked_consults));
    match roll {
        0..=7 => {
            if let Some(h) = rng.pick(&owned.recent_bed_holds) {
                return Query::Hold(*h);
            }
        }
        8..=11 => {
            if let Some(h) = rng.pick(&owned.recent_seats) {
                return Query::Seat(*h);
            }
        }
        12 | 13 => {
            return Query::WardPage(WardPageQuery {
                hospital: hospital(rng),
                after: take(rng, &region.wards)
                    .filter(|_| rng.chance(300))
                    .unwrap_or(ninety_engine::WardId(0)),
                limit: rng.range(1, 4) as usize,
            })
        }
        14 => {
            if let Some((_, r)) = referral {
                return Query::Referral(r);
            }
        }
        15 => {
            return Query::Worklist(WorklistQuery {
                hospital: hospital(rng),
                incoming: true,
                outgoing: true,
                stages: Vec::new(),
                reasons: Vec::new(),
                urgencies: Vec::new(),
                after: ReferralId(0),
                limit: rng.range(1, 5) as usize,
            })
        }
        16 => {
            if let Some(c) = consult {
                return Query::Consult(c);
            }
        }
        17 => return Query::PatientBookings { patient, limit: 8 },
        18 => return Query::Waitlist(WaitlistQuery::Patient(patient)),
        _ => {}
    }
    let i = rng.below(region.wards.len().max(1) as u64) as usize;
    match (region.wards.get(i), region.ward_hospitals.get(i)) {
        (Some(w), Some(h)) => Query::Wards {
            hospital: *h,
            wards: vec![*w],
        },
        _ => Query::Summary,
    }
}

/// Draws the next command for a client from `roll` in `0..100`.
fn next_command(
    rng: &mut Rng,
    region: &RegionInfo,
    owned: &Owned,
    patient: u128,
    roll: u64,
) -> Command {
    let patient = PatientRef(patient);
    let pick_slot = |rng: &mut Rng| -> Option<SlotId> {
        if let Some(s) =
            take(rng, &owned.published).filter(|_| rng.chance(PUBLISHED_SEAT_PER_MILLE))
        {
            return Some(s);
        }
        let d = rng.pick(&region.slots)?;
        rng.pick(d).copied()
    };
    let cmd = match roll {
        0..=19 => region
            .wards
            .get(rng.below(region.wards.len() as u64) as usize)
            .map(|w| Command::HoldBed {
                target: BedTarget::Ward(*w),
                patient,
                ttl_ms: rng.range(500, 20_000),
            }),
        20..=27 => take(rng, &owned.bed_holds).map(|hold| Command::ConfirmHold { hold }),
        28..=33 => take(rng, &owned.bed_holds).map(|hold| Command::ReleaseHold { hold }),
        34..=38 => take(rng, &owned.occupied).map(|bed| Command::Discharge { bed }),
        39..=43 => take(rng, &owned.to_clean).map(|bed| Command::MarkBedClean { bed }),
        44..=59 => pick_slot(rng).map(|slot| slot_hold(rng, region, owned, patient, slot)),
        60..=67 => take(rng, &owned.slot_holds).map(|hold| Command::BookSlot { hold }),
        68..=72 => take(rng, &owned.slot_holds).map(|hold| Command::ReleaseSlot { hold }),
        73..=77 => take(rng, &owned.bookings).map(|booking| Command::CancelBooking { booking }),
        78..=85 => {
            let k = take(rng, &region.remote_k);
            let n = region.slots.len() as u64;
            let a = rng.below(n) as usize;
            let b = (a + 1 + rng.below(n.saturating_sub(1).max(1)) as usize) % n.max(1) as usize;
            k.and_then(|k| {
                let sa = *region.slots.get(a)?.get(k)?;
                let sb = *region.slots.get(b)?.get(k)?;
                Some(Command::HoldJointConsult {
                    slots: vec![sa, sb],
                    patient,
                })
            })
        }
        86..=91 => take(rng, &owned.consults).map(|consult| Command::BookJointConsult { consult }),
        92..=95 => {
            take(rng, &owned.consults).map(|consult| Command::ReleaseJointConsult { consult })
        }
        _ => {
            // A bed hold on a specific bed (contends with ward holds on the same beds).
            take(rng, &region.beds).map(|bed| Command::HoldBed {
                target: BedTarget::Bed(bed),
                patient,
                ttl_ms: rng.range(500, 20_000),
            })
        }
    };
    cmd.unwrap_or_else(|| Command::HoldBed {
        target: BedTarget::Ward(
            region
                .wards
                .first()
                .copied()
                .unwrap_or(ninety_engine::WardId(1)),
        ),
        patient,
        ttl_ms: 5_000,
    })
}

/// A seat hold in `slot`: public seven times in ten, else on the referral channel for a
/// triaged referral of the client's (or the command that gets one first).
fn slot_hold(
    rng: &mut Rng,
    region: &RegionInfo,
    owned: &Owned,
    patient: PatientRef,
    slot: ninety_engine::SlotId,
) -> Command {
    if !rng.chance(300) {
        return Command::HoldSlot {
            slot,
            patient,
            channel: Channel::Public,
            referral: None,
        };
    }
    match referral_seat(rng, region, owned, patient) {
        Ok((patient, referral)) => Command::HoldSlot {
            slot,
            patient,
            channel: Channel::Referral,
            referral,
        },
        Err(first) => first,
    }
}

/// Updates what a client owns from the acknowledged outcome of `request`.
pub fn learn(owned: &mut Owned, request: &Request, outcome: &ninety_engine::Outcome) {
    learn_referrals(owned, request, outcome);
    learn_lifecycle(owned, &request.command, outcome);
    learn_published(owned, outcome);
    remote::learn(owned, request, outcome);
    match (&request.command, outcome) {
        (Command::ConfirmHold { hold } | Command::ReleaseHold { hold }, Ok(_)) => {
            remember(&mut owned.recent_bed_holds, *hold)
        }
        (
            Command::BookSlot { hold } | Command::ReleaseSlot { hold },
            Ok(Reply::SlotBooked { .. } | Reply::SlotReleased { .. }),
        ) => remember(&mut owned.recent_seats, *hold),
        _ => {}
    }
    match (&request.command, outcome) {
        (_, Ok(Reply::BedHeld { hold, .. } | Reply::BedAllocated { hold, .. })) => {
            owned.bed_holds.push(*hold);
            remember(&mut owned.recent_bed_holds, *hold);
        }
        (Command::ConfirmHold { hold }, Ok(Reply::HoldConfirmed { bed, .. })) => {
            remove(&mut owned.bed_holds, hold);
            owned.occupied.push(*bed);
        }
        (Command::ConfirmHold { hold } | Command::ReleaseHold { hold }, _) => {
            remove(&mut owned.bed_holds, hold)
        }
        (Command::Discharge { bed }, Ok(_)) => {
            remove(&mut owned.occupied, bed);
            owned.to_clean.push(*bed);
        }
        (Command::Discharge { bed }, Err(_)) => remove(&mut owned.occupied, bed),
        (Command::MarkBedClean { bed }, _) => remove(&mut owned.to_clean, bed),
        (Command::BlockBed { bed, .. }, Ok(_)) => {
            remove(&mut owned.to_clean, bed);
            remove(&mut owned.blocked, bed);
            owned.blocked.push(*bed);
        }
        (Command::UnblockBed { bed }, _) => remove(&mut owned.blocked, bed),
        (Command::CancelJointConsult { consult }, _) => {
            remove(&mut owned.consults, consult);
            remove(&mut owned.booked_consults, consult);
        }
        // A seat held to match a referral with: kept for the match (`learn_lifecycle`).
        (
            Command::HoldSlotFor {
                referral: Some(_), ..
            },
            Ok(Reply::SlotHeld { hold, .. }),
        ) => remember(&mut owned.recent_seats, *hold),
        (_, Ok(Reply::SlotHeld { hold, .. } | Reply::SlotAllocated { hold, .. })) => {
            owned.slot_holds.push(*hold);
            remember(&mut owned.recent_seats, *hold);
        }
        (Command::BookSlot { hold }, Ok(Reply::SlotBooked { booking, .. })) => {
            remove(&mut owned.slot_holds, hold);
            owned.bookings.push(*booking);
        }
        (Command::BookSlot { hold } | Command::ReleaseSlot { hold }, _) => {
            remove(&mut owned.slot_holds, hold)
        }
        (Command::CancelBooking { booking }, _) => remove(&mut owned.bookings, booking),
        (_, Ok(Reply::ConsultHeld { consult, .. })) => owned.consults.push(*consult),
        (Command::BookJointConsult { consult }, Ok(_)) => {
            remove(&mut owned.consults, consult);
            owned.booked_consults.push(*consult);
        }
        (Command::BookJointConsult { consult } | Command::ReleaseJointConsult { consult }, _) => {
            remove(&mut owned.consults, consult)
        }
        _ => {}
    }
}

/// Keeps the client's referrals up to date: a created one is requested, a triaged one may
/// be named for seats and referral bed holds until an ask refuses it (it expired, or was
/// matched or closed).
fn learn_referrals(owned: &mut Owned, request: &Request, outcome: &ninety_engine::Outcome) {
    let keep = |v: &mut Vec<(PatientRef, ReferralId)>, x| {
        if v.len() >= REFERRALS_KEPT_MAX {
            v.remove(0);
        }
        v.push(x);
    };
    match (&request.command, outcome) {
        (Command::RequestReferral { patient, .. }, Ok(Reply::ReferralCreated { referral, .. })) => {
            keep(&mut owned.requested, (*patient, *referral))
        }
        (Command::TriageReferral { referral, .. }, outcome) => {
            let found = owned.requested.iter().find(|(_, r)| r == referral).copied();
            owned.requested.retain(|(_, r)| r != referral);
            if let (Some(x), Ok(_)) = (found, outcome) {
                keep(&mut owned.triaged, x);
            }
        }
        (
            Command::HoldSlot {
                referral: Some(r), ..
            }
            | Command::HoldSlotFor {
                referral: Some(r), ..
            }
            | Command::AllocateSlot {
                referral: Some(r), ..
            }
            | Command::HoldBedForReferral { referral: r, .. },
            Err(e),
        ) if refuses_referral(e) => owned.triaged.retain(|(_, x)| x != r),
        _ => {}
    }
}

/// Appends `x` to `v`, dropping the oldest beyond `max`.
fn keep<T>(v: &mut Vec<T>, x: T, max: usize) {
    if v.len() >= max {
        v.remove(0);
    }
    v.push(x);
}

/// Keeps the referrals matched, reported, rejected and cancelled up to date, with the seats
/// and beds held for them (to match them with).
fn learn_lifecycle(owned: &mut Owned, command: &Command, outcome: &ninety_engine::Outcome) {
    let m = REFERRALS_KEPT_MAX;
    match (command, outcome) {
        (
            Command::HoldSlot {
                referral: Some(r), ..
            }
            | Command::HoldSlotFor {
                referral: Some(r), ..
            }
            | Command::AllocateSlot {
                referral: Some(r), ..
            },
            Ok(Reply::SlotHeld { hold, .. } | Reply::SlotAllocated { hold, .. }),
        ) => keep(&mut owned.referral_seats, (*r, *hold), m),
        (Command::HoldBedForReferral { referral, .. }, Ok(Reply::BedHeld { hold, .. })) => {
            keep(&mut owned.referral_beds, (*referral, *hold), m)
        }
        (Command::MatchReferral { referral, .. }, outcome) => {
            // Used, or stale: either way not to be matched again.
            owned.referral_seats.retain(|(r, _)| r != referral);
            owned.referral_beds.retain(|(r, _)| r != referral);
            if outcome.is_ok() {
                let p = owned.triaged.iter().find(|(_, r)| r == referral);
                let p = p.map_or(PatientRef(0), |(p, _)| *p);
                owned.triaged.retain(|(_, r)| r != referral);
                keep(&mut owned.matched, (p, *referral), m);
            }
        }
        (Command::ReportNoCapacity { referral, .. }, Ok(_)) => {
            if let Some(x) = owned.matched.iter().find(|(_, r)| r == referral).copied() {
                owned.matched.retain(|(_, r)| r != referral);
                keep(&mut owned.triaged, x, m);
            }
        }
        (
            Command::RejectReferral { referral, .. } | Command::CancelReferral { referral, .. },
            Ok(_),
        ) => {
            forget_referral(owned, *referral);
            remove(&mut owned.closed, referral);
            keep(&mut owned.closed, *referral, m);
        }
        (
            Command::ReportNoCapacity { referral, .. }
            | Command::RejectReferral { referral, .. }
            | Command::CancelReferral { referral, .. },
            Err(Rejection::AlreadyResolved { .. } | Rejection::UnknownReferral(_)),
        ) => forget_referral(owned, *referral),
        _ => {}
    }
}

/// A referral closed (by this client or another, or expired): nothing more to do with it.
fn forget_referral(owned: &mut Owned, referral: ReferralId) {
    owned.requested.retain(|(_, r)| *r != referral);
    owned.triaged.retain(|(_, r)| *r != referral);
    owned.matched.retain(|(_, r)| *r != referral);
    owned.referral_seats.retain(|(r, _)| *r != referral);
    owned.referral_beds.retain(|(r, _)| *r != referral);
    owned.remote.retain(|(_, r)| *r != referral);
}

/// Remembers the slots a publication or template created; forgets withdrawn ones.
fn learn_published(owned: &mut Owned, outcome: &ninety_engine::Outcome) {
    match outcome {
        Ok(Reply::SchedulePublished { first, count } | Reply::TemplateSet { first, count, .. }) => {
            for i in 0..u64::from(*count) {
                keep(
                    &mut owned.published,
                    SlotId(first.0 + i),
                    PUBLISHED_KEPT_MAX,
                );
            }
        }
        Ok(Reply::SlotsWithdrawn { slots, .. }) => owned.published.retain(|s| !slots.contains(s)),
        _ => {}
    }
}

/// The name of a schedule or referral-lifecycle command (counted per run), `None` for the
/// others.
pub fn lifecycle_name(command: &Command) -> Option<&'static str> {
    Some(match command {
        Command::AmendSlot { .. } => "AmendSlot",
        Command::WithdrawSlots { .. } => "WithdrawSlots",
        Command::SetWeeklyTemplate { .. } => "SetWeeklyTemplate",
        Command::PublishSchedule { .. } => "PublishSchedule",
        Command::MatchReferral { .. } => "MatchReferral",
        Command::ReportNoCapacity { .. } => "ReportNoCapacity",
        Command::RejectReferral { .. } => "RejectReferral",
        Command::CancelReferral { .. } => "CancelReferral",
        Command::HoldRemoteBed { .. } => "HoldRemoteBed",
        Command::AcceptReferral { .. } => "AcceptReferral",
        _ => return None,
    })
}

/// Whether `command` asks for a referral-channel seat.
pub fn referral_seat_ask(command: &Command) -> bool {
    match command {
        Command::HoldSlot { channel, .. } | Command::HoldSlotFor { channel, .. } => {
            *channel == Channel::Referral
        }
        Command::AllocateSlot { query, .. } => query.channel == Channel::Referral,
        _ => false,
    }
}

/// Whether a seat ask was refused for its referral (rather than, say, a full slot).
pub fn refuses_referral(e: &Rejection) -> bool {
    match e {
        Rejection::Invalid { field, .. } => field == "referral_id",
        Rejection::InvalidTransition { what, .. } => what.starts_with("referral_id"),
        _ => false,
    }
}

/// A client request id: client number (plus one) in the high 64 bits, sequence in the low
/// 64 bits, so no two clients' ids meet (the node's own requests are keyed apart, see
/// `ninety_engine::RequestKey`).
pub fn request_id(client: u64, seq: u64) -> RequestId {
    RequestId((u128::from(client + 1) << 64) | u128::from(seq))
}
