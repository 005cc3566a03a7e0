//! The `Engine`: one region's whole state, and `apply`.
//!
//! `apply(request, at)` is the only way state changes. It is deterministic: it reads no
//! clock (time is `at`, from the Raft log), uses no randomness, does no I/O and never panics
//! on any input. A refused command changes nothing. A repeated request id returns the first
//! reply (see `dedup`). `decided` tells, without applying, the answers that change nothing:
//! replays and refusals (`apply::precheck`).

use crate::beds::BedBook;
use crate::command::{Command, Outcome, Reply, Request};
use crate::dedup::{DedupEntry, DedupTable, Fingerprint};
use crate::error::Rejection;
use crate::events::Event;
use crate::graph::ReferralGraph;
use crate::ids::*;
use crate::referrals::ReferralBook;
use crate::region::{Alliance, Doctor, Hospital, Policy};
use crate::slots::{SeatAsk, SlotBook};
use crate::time::LogTime;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Counters from which the engine assigns ids; part of the replicated state.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub struct Counters {
    pub next_bed: u32,
    pub next_slot: u64,
    pub next_hold: u64,
    pub next_referral: u64,
    pub next_consult: u64,
    /// Requests applied successfully (including deduplicated repeats: no).
    pub applied: u64,
}

impl Default for Counters {
    fn default() -> Counters {
        Counters {
            next_bed: 1,
            next_slot: 1,
            next_hold: 1,
            next_referral: 1,
            next_consult: 1,
            applied: 0,
        }
    }
}

/// What the dedup table says about a request key.
enum Seen {
    /// Applied before with the same command: the first reply.
    Replay(Reply),
    /// Not remembered: apply it, then remember it by this fingerprint.
    New(Fingerprint),
}

/// The state of one region.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Engine {
    pub(crate) name: String,
    pub(crate) policy: Policy,
    pub(crate) now: LogTime,
    pub(crate) counters: Counters,
    pub(crate) hospitals: BTreeMap<HospitalId, Hospital>,
    pub(crate) alliances: BTreeMap<AllianceId, Alliance>,
    pub(crate) doctors: BTreeMap<DoctorId, Doctor>,
    pub(crate) graph: ReferralGraph,
    pub(crate) beds: BedBook,
    pub(crate) slots: SlotBook,
    pub(crate) referrals: ReferralBook,
    pub(crate) dedup: DedupTable,
    pub(crate) match_policy: crate::matching::MatchPolicy,
    /// Cross-region beds of this region's referrals. Last of the serialized fields: a
    /// format-3 snapshot is read by appending an empty book (`snapshot::restore`).
    pub(crate) remote: crate::remote::RemoteBook,
    /// Derived matching state and the view publisher; not replicated (see `view`).
    #[serde(skip)]
    pub(crate) live: crate::view::Live,
    /// The change feed's events of the last applied command; not state (see `events`).
    #[serde(skip)]
    pub(crate) emitted: crate::events::Pending,
}

impl Engine {
    /// An empty engine with the default policy.
    pub fn new() -> Engine {
        Engine::default()
    }

    /// Applies one client request at log time `at`, outside any log (remembered at index 0;
    /// the cluster uses [`Engine::apply_as`] with the entry's index).
    pub fn apply(&mut self, request: &Request, at: LogTime) -> Outcome {
        self.apply_as(RequestKey::Client(request.id), &request.command, at, 0)
    }

    /// Applies `command` as request `key` at log time `at`, from log entry `index` (0 when
    /// not applied from a log). A remembered key with the same command returns its first
    /// reply and changes nothing (`dedup().get(key)` tells the index that applied it); with a
    /// different command it is refused. Ticks are never remembered: each log index is
    /// applied once.
    pub fn apply_as(
        &mut self,
        key: RequestKey,
        command: &Command,
        at: LogTime,
        index: u64,
    ) -> Outcome {
        self.clear_events();
        // Time never runs backwards, even if a new leader's clock is behind.
        let now = self.now.max(at);
        let fingerprint = match key {
            RequestKey::Tick(_) => None,
            _ => match self.seen(key, command)? {
                Seen::Replay(reply) => return Ok(reply),
                Seen::New(fingerprint) => Some(fingerprint),
            },
        };
        let touches = self.touches_before(command, now);
        self.referrals.applying = crate::referrals::Applying(index);
        let reply = match self.execute(command, now) {
            Ok(reply) => reply,
            Err(refusal) => {
                // Handlers check before they change anything; a refusal emits nothing.
                self.clear_events();
                return Err(refusal);
            }
        };
        self.collect_events();
        self.note_applied(command, &reply, touches);
        self.now = now;
        self.counters.applied += 1;
        if let Some(fingerprint) = fingerprint {
            self.dedup.insert(DedupEntry {
                request: key,
                at: now,
                index,
                fingerprint,
                reply: reply.clone(),
            });
        }
        Ok(reply)
    }

    /// What [`Engine::apply_as`] would answer for `command` as request `key` now, when the
    /// dedup table alone decides it: the first reply of a remembered request, or the refusal
    /// of a remembered request id reused for another command. Both change nothing, so a
    /// node may answer them from state at or past a read index, without a log entry.
    /// `None` when the key is not remembered (or is a tick): only the log can answer.
    pub fn replay(&self, key: RequestKey, command: &Command) -> Option<Outcome> {
        if matches!(key, RequestKey::Tick(_)) {
            return None;
        }
        self.dedup.get(key)?;
        match self.seen(key, command) {
            Ok(Seen::Replay(reply)) => Some(Ok(reply)),
            Ok(Seen::New(_)) => None,
            Err(refusal) => Some(Err(refusal)),
        }
    }

    /// What [`Engine::apply_as`] would answer for `command` as request `key` at log time `at`
    /// when that answer changes nothing: a replay of a remembered request
    /// ([`Engine::replay`]), or a refusal ([`Engine::would_refuse`], after the same dedup
    /// check `apply_as` makes first). Refusals are never remembered, so a refused request
    /// stays refused until the state changes, and its answer may be given from state at or
    /// past a read index without a log entry. `None` for ticks and whenever applying might
    /// change the state. Changes nothing.
    pub fn decided(&self, key: RequestKey, command: &Command, at: LogTime) -> Option<Outcome> {
        if matches!(key, RequestKey::Tick(_)) {
            return None;
        }
        match self.seen(key, command) {
            Ok(Seen::Replay(reply)) => Some(Ok(reply)),
            Ok(Seen::New(_)) => self.would_refuse(command, at).map(Err),
            Err(refusal) => Some(Err(refusal)),
        }
    }

    /// Whether `key` was applied before: its first reply, or the command's fingerprint to
    /// remember a new request by; refused when the key was used for another command.
    fn seen(&self, key: RequestKey, command: &Command) -> Result<Seen, Rejection> {
        let fingerprint = Fingerprint::of(command)
            .ok_or_else(|| Rejection::invalid("command", "cannot be encoded"))?;
        let Some(seen) = self.dedup.get(key) else {
            return Ok(Seen::New(fingerprint));
        };
        if seen.fingerprint == fingerprint {
            return Ok(Seen::Replay(seen.reply.clone()));
        }
        Err(match key {
            RequestKey::Client(id) => Rejection::RequestIdReused(id),
            other => Rejection::invalid(
                "request_id",
                format!("{other} was already applied with a different command"),
            ),
        })
    }

    /// Applies requests in log order, each at `at`; one outcome per request. Each run of
    /// consecutive allocation requests is solved together (`matching::allocate`); then the
    /// availability view is published.
    pub fn apply_batch(&mut self, requests: &[Request], at: LogTime) -> Vec<Outcome> {
        let out = self.apply_batch_with_limit(requests, at, crate::matching::ALLOCATION_BATCH_MAX);
        self.publish_view();
        out
    }

    /// Dispatches a command. Every handler validates fully before it changes anything.
    fn execute(&mut self, command: &Command, now: LogTime) -> Result<Reply, Rejection> {
        use Command::*;
        match command {
            Tick => Ok(self.tick(now)),
            ImportRegion(file) => self.import_region(file),
            UpsertHospital(h) => self.upsert_hospital(h),
            UpsertAlliance(a) => self.upsert_alliance(a),
            UpsertWard(w) => self.upsert_ward(w),
            AddBeds { ward, count } => self.add_beds(*ward, *count),
            BlockBed { bed, reason } => self.beds.block(*bed, *reason).map(|_| Reply::Done),
            UnblockBed { bed } => self.beds.make_free(*bed, true).map(|_| Reply::Done),
            MarkBedClean { bed } => self.beds.make_free(*bed, false).map(|_| Reply::Done),
            Discharge { bed } => self.beds.discharge(*bed).map(|_| Reply::Done),
            UpsertDoctor(d) => self.upsert_doctor(d),
            SetTravel {
                a,
                b,
                travel_minutes,
            } => self.set_travel(*a, *b, *travel_minutes),
            SetReferralPath { from, to, kind } => self.set_referral_path(*from, *to, *kind),
            SetPolicy(p) => self.set_policy(p),
            HoldBed {
                target,
                patient,
                ttl_ms,
            } => self.hold_bed(*target, *patient, *ttl_ms, now),
            ConfirmHold { hold } => self.confirm_bed(*hold, now),
            ReleaseHold { hold } => self.release_bed(*hold, now),
            PublishSchedule { doctor, slots } => self.publish_schedule(*doctor, slots, now),
            HoldSlot {
                slot,
                patient,
                channel,
                referral,
            } => self.hold_slot_ttl(
                *slot,
                SeatAsk::new(*patient, *channel, *referral),
                None,
                now,
            ),
            BookSlot { hold } => self.book_slot(*hold, now),
            ReleaseSlot { hold } => self.release_slot(*hold, now),
            CancelBooking { booking } => self.cancel_booking(*booking, now),
            MarkNoShow { booking } => self.mark_no_show(*booking, now),
            JoinWaitlist {
                doctor,
                patient,
                channel,
                referral,
            } => self.join_waitlist(*doctor, SeatAsk::new(*patient, *channel, *referral), now),
            LeaveWaitlist { doctor, patient } => self.leave_waitlist(*doctor, *patient),
            HoldJointConsult { slots, patient } => self.hold_joint_consult(slots, *patient, now),
            BookJointConsult { consult } => self.book_joint_consult(*consult, now),
            ReleaseJointConsult { consult } => self.release_joint_consult(*consult, now),
            RequestReferral { from, to, patient } => {
                let stated = crate::apply::referrals::Stated::default();
                self.request_referral(*from, *to, *patient, &stated, now)
            }
            TriageReferral {
                referral,
                specialty,
                urgency,
            } => self.triage_referral(*referral, *specialty, *urgency, None, now),
            MatchReferral {
                referral,
                slot_hold,
                bed_hold,
            } => self.match_referral(*referral, *slot_hold, *bed_hold, now),
            ReportNoCapacity { referral, reason } => {
                self.report_no_capacity(*referral, reason, now)
            }
            AcceptReferral { referral } => self.accept_referral(*referral, now),
            StartTransit { referral } => self.start_transit(*referral, now),
            AdmitReferral { referral } => self.admit_referral(*referral, now),
            CompleteReferral { referral } => self.complete_referral(*referral, None, now),
            RejectReferral { referral, reason } => {
                self.close_referral(*referral, reason, false, now)
            }
            CancelReferral { referral, reason } => {
                self.close_referral(*referral, reason, true, now)
            }
            SetMatchPolicy(p) => self.set_match_policy(p),
            AllocateSlot {
                query,
                patient,
                referral,
            } => self.allocate_slot(query, *patient, *referral, now),
            AllocateBed {
                query,
                ttl_ms,
                patient,
            } => self.allocate_bed(query, *ttl_ms, *patient, now),
            HoldSlotFor {
                slot,
                patient,
                channel,
                ttl_ms,
                referral,
            } => {
                let ask = SeatAsk::new(*patient, *channel, *referral);
                self.hold_slot_ttl(*slot, ask, Some(*ttl_ms), now)
            }
            CancelSeat { hold } => self.cancel_seat(*hold, now),
            HoldJointConsultIn {
                doctors,
                earliest,
                latest,
                duration_minutes,
                patient,
                ttl_ms,
            } => {
                let window = (*earliest, *latest);
                self.hold_joint_consult_in(
                    doctors,
                    window,
                    *duration_minutes,
                    *patient,
                    *ttl_ms,
                    now,
                )
            }
            CancelJointConsult { consult } => self.cancel_joint_consult(*consult, now),
            SetStaffedBeds { ward, staffed_beds } => self.set_staffed_beds(*ward, *staffed_beds),
            UnblockPatient { patient } => Ok(self.unblock_patient(*patient, now)),
            HoldBedForReferral {
                target,
                patient,
                ttl_ms,
                referral,
            } => self.hold_bed_for_referral(*target, *patient, *ttl_ms, *referral, now),
            AmendSlot { slot, seats } => self.amend_slot(*slot, *seats, now),
            WithdrawSlots {
                slots,
                cancel_bookings,
            } => self.withdraw_slots(slots, *cancel_bookings, now),
            SetWeeklyTemplate {
                doctor,
                template,
                from,
            } => self.set_weekly_template(*doctor, template, *from, now),
            RequestReferralWith {
                from,
                to,
                patient,
                direction,
                reason_code,
                note,
            } => {
                let stated = crate::apply::referrals::Stated {
                    direction: *direction,
                    reason_code: reason_code.as_deref(),
                    note: note.as_deref(),
                };
                self.request_referral(*from, *to, *patient, &stated, now)
            }
            TriageReferralNoted {
                referral,
                specialty,
                urgency,
                note,
            } => self.triage_referral(*referral, *specialty, *urgency, Some(note), now),
            CompleteReferralWith { referral, outcome } => {
                self.complete_referral(*referral, Some(outcome), now)
            }
            AllocateBedForReferral {
                query,
                ttl_ms,
                patient,
                referral,
            } => self.allocate_bed_for_referral(query, *ttl_ms, *patient, *referral, now),
            HoldRemoteBed {
                referral,
                region,
                ward,
                ttl_ms,
            } => {
                let ask = crate::apply::remote::RemoteAsk {
                    region,
                    ward: *ward,
                    ttl_ms: *ttl_ms,
                };
                self.hold_remote_bed(*referral, &ask, now)
            }
            RecordRemote {
                referral,
                attempt,
                outcome,
            } => self.record_remote(*referral, *attempt, outcome, now),
            HoldBedForRegion {
                origin,
                step,
                ward,
                patient,
                ttl_ms,
            } => self.hold_bed_for_region(origin, *step, *ward, *patient, *ttl_ms, now),
        }
    }

    /// What the last [`Engine::apply_as`] changed, in a fixed order (bed holds and beds,
    /// then seats, then referrals), each step in the order it happened: a pure function of
    /// the command and the state before it, so every replica emits the same list. Empty
    /// after a refusal or a dedup replay; never part of a snapshot (see `events`).
    pub fn events(&self) -> &[Event] {
        self.emitted.as_slice()
    }

    /// Forgets the last command's events (a consumer has taken them).
    pub fn clear_events(&mut self) {
        self.beds.events.clear();
        self.slots.events.clear();
        self.referrals.events.clear();
        self.emitted.clear();
    }

    /// Moves the books' events into `emitted`, giving seat events their hospital.
    fn collect_events(&mut self) {
        // `emitted` was cleared when the command began: reuse its allocation.
        let mut out = self.emitted.take();
        self.beds.events.drain_into(&mut out);
        let seats_from = out.len();
        self.slots.events.drain_into(&mut out);
        let doctors = &self.doctors;
        for event in &mut out[seats_from..] {
            event.locate_doctor(|d| doctors.get(&d).map_or(HospitalId(0), |d| d.hospital));
        }
        self.referrals.events.drain_into(&mut out);
        self.emitted.replace(out);
    }

    /// Takes the next hold id.
    pub(crate) fn take_hold_id(&mut self) -> HoldId {
        let id = HoldId(self.counters.next_hold);
        self.counters.next_hold += 1;
        id
    }

    // ---- queries ----

    /// The region's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The latest log time applied.
    pub fn now(&self) -> LogTime {
        self.now
    }

    /// The region's policy.
    pub fn policy(&self) -> &Policy {
        &self.policy
    }

    /// The id counters (and the applied-request count).
    pub fn counters(&self) -> Counters {
        self.counters
    }

    /// A hospital record.
    pub fn hospital(&self, id: HospitalId) -> Option<&Hospital> {
        self.hospitals.get(&id)
    }

    /// Every hospital, by id.
    pub fn hospitals(&self) -> impl Iterator<Item = &Hospital> {
        self.hospitals.values()
    }

    /// Every alliance, by id.
    pub fn alliances(&self) -> impl Iterator<Item = &Alliance> {
        self.alliances.values()
    }

    /// A doctor record.
    pub fn doctor(&self, id: DoctorId) -> Option<&Doctor> {
        self.doctors.get(&id)
    }

    /// Every doctor, by id.
    pub fn doctors(&self) -> impl Iterator<Item = &Doctor> {
        self.doctors.values()
    }

    /// The referral graph.
    pub fn graph(&self) -> &ReferralGraph {
        &self.graph
    }

    /// Wards, beds and bed holds.
    pub fn beds(&self) -> &BedBook {
        &self.beds
    }

    /// Slots, seats, waitlists and joint consultations.
    pub fn slots(&self) -> &SlotBook {
        &self.slots
    }

    /// Referrals and the worklist.
    pub fn referrals(&self) -> &ReferralBook {
        &self.referrals
    }

    /// The idempotency table.
    pub fn dedup(&self) -> &DedupTable {
        &self.dedup
    }

    /// Rebuilds every derived index from the canonical records (after a restore).
    pub(crate) fn rebuild_indexes(&mut self) {
        self.beds.rebuild();
        self.slots.rebuild();
        let ids: Vec<HospitalId> = self.hospitals.keys().copied().collect();
        self.graph
            .rebuild(ids.into_iter(), self.policy.reach_minutes);
    }
}
