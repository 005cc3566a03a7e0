//! The versioned command vocabulary and the replies.
//!
//! A `Request` is what the Raft log carries: a request id and a command. Commands are
//! serialized with postcard, whose enum encoding is the variant's position: **variants are
//! only ever appended, never reordered or removed**, and `COMMAND_FORMAT_VERSION` is raised
//! when a variant's fields change. Replies are remembered in the dedup table and returned to
//! the proposer.

use crate::beds::BlockReason;
use crate::graph::ReferralKind;
use crate::ids::*;
use crate::referrals::ReferralState;
use crate::region::{Alliance, Channel, Doctor, Hospital, Policy, Specialty, Urgency, Ward};
use crate::region_file::RegionFile;
use crate::slots::{SlotSpec, WaitlistOffer};
use crate::time::LogTime;
use serde::{Deserialize, Serialize};

/// Version of the command encoding carried in the Raft log. 2: request ids keep all 128
/// client bits and the log says who issued a request (`RequestKey`); nodes refuse data
/// directories of version 1 (see `docs/operations.md`, "Upgrading from format 1"). 3: the
/// queries of `AllocateSlot` and `AllocateBed` carry travel and tier bounds (and beds their
/// needs); it moves with snapshot format 3, which already needs a new cluster.
pub const COMMAND_FORMAT_VERSION: u16 = 3;

/// A request as the log carries it.
#[derive(Clone, PartialEq, Eq, Hash, Debug, Serialize, Deserialize)]
pub struct Request {
    pub id: RequestId,
    pub command: Command,
}

/// Which bed a hold asks for.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BedTarget {
    /// Any admissible bed of the ward (the engine takes the lowest-numbered free bed).
    Ward(WardId),
    /// This bed.
    Bed(BedId),
    /// This bed, which the client says is in this ward: refused (naming `bed_id`) when the
    /// bed is in another ward, so a client's mix-up never holds a bed of the wrong ward.
    BedInWard { ward: WardId, bed: BedId },
}

/// Everything that can change the state. Append new variants at the end only.
#[derive(Clone, PartialEq, Eq, Hash, Debug, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Command {
    /// Advances log time: expires holds and referrals that are due and prunes old records.
    Tick,
    /// Loads a whole region into an empty engine.
    ImportRegion(Box<RegionFile>),
    UpsertHospital(Hospital),
    UpsertAlliance(Alliance),
    UpsertWard(Ward),
    /// Adds `count` free beds to a ward; the engine assigns their ids.
    AddBeds {
        ward: WardId,
        count: u32,
    },
    BlockBed {
        bed: BedId,
        reason: BlockReason,
    },
    UnblockBed {
        bed: BedId,
    },
    MarkBedClean {
        bed: BedId,
    },
    /// The patient in the bed leaves; the bed goes to cleaning.
    Discharge {
        bed: BedId,
    },
    UpsertDoctor(Doctor),
    /// Sets (or with `None` removes) the road travel time between two hospitals.
    SetTravel {
        a: HospitalId,
        b: HospitalId,
        travel_minutes: Option<u32>,
    },
    /// Sets (or with `None` removes) a typed referral path.
    SetReferralPath {
        from: HospitalId,
        to: HospitalId,
        kind: Option<ReferralKind>,
    },
    SetPolicy(Policy),
    HoldBed {
        target: BedTarget,
        patient: PatientRef,
        ttl_ms: u64,
    },
    /// Admits the patient of a pending bed hold.
    ConfirmHold {
        hold: HoldId,
    },
    ReleaseHold {
        hold: HoldId,
    },
    PublishSchedule {
        doctor: DoctorId,
        slots: Vec<SlotSpec>,
    },
    /// Holds a seat. A referral-channel seat names the referral it serves (see
    /// `Engine::check_referral_seat`); a public one may name none.
    HoldSlot {
        slot: SlotId,
        patient: PatientRef,
        channel: Channel,
        referral: Option<ReferralId>,
    },
    BookSlot {
        hold: HoldId,
    },
    ReleaseSlot {
        hold: HoldId,
    },
    CancelBooking {
        booking: HoldId,
    },
    MarkNoShow {
        booking: HoldId,
    },
    /// Joins a doctor's waitlist; a referral-channel entry names its referral, checked
    /// again when a seat is offered.
    JoinWaitlist {
        doctor: DoctorId,
        patient: PatientRef,
        channel: Channel,
        referral: Option<ReferralId>,
    },
    LeaveWaitlist {
        doctor: DoctorId,
        patient: PatientRef,
    },
    /// Holds one common time across several doctors' remote slots, all or none. Public
    /// seats only: a joint consultation names no referral, so it never takes the referral
    /// quota or overbooking.
    HoldJointConsult {
        slots: Vec<SlotId>,
        patient: PatientRef,
    },
    BookJointConsult {
        consult: ConsultId,
    },
    ReleaseJointConsult {
        consult: ConsultId,
    },
    RequestReferral {
        from: HospitalId,
        to: Option<HospitalId>,
        patient: PatientRef,
    },
    TriageReferral {
        referral: ReferralId,
        specialty: Specialty,
        urgency: Urgency,
    },
    /// Attaches pending holds (for the referral's patient) to a triaged referral.
    MatchReferral {
        referral: ReferralId,
        slot_hold: Option<HoldId>,
        bed_hold: Option<HoldId>,
    },
    /// Records that matching found no capacity; the referral stays on the worklist.
    ReportNoCapacity {
        referral: ReferralId,
        reason: String,
    },
    /// The receiving side accepts; a held slot is booked.
    AcceptReferral {
        referral: ReferralId,
    },
    StartTransit {
        referral: ReferralId,
    },
    /// The patient arrived; a held bed is confirmed.
    AdmitReferral {
        referral: ReferralId,
    },
    CompleteReferral {
        referral: ReferralId,
    },
    RejectReferral {
        referral: ReferralId,
        reason: String,
    },
    CancelReferral {
        referral: ReferralId,
        reason: String,
    },
    /// Sets the region's matching policy (`matching::MatchPolicy`).
    SetMatchPolicy(crate::matching::MatchPolicy),
    /// Chooses the best slot for the query and holds a seat in it, in one command.
    AllocateSlot {
        query: crate::matching::SlotQuery,
        patient: PatientRef,
        /// The referral the seat serves: required for the referral channel.
        referral: Option<ReferralId>,
    },
    /// Chooses the best ward for the query and holds a bed in it, in one command.
    AllocateBed {
        query: crate::matching::BedQuery,
        ttl_ms: u64,
        patient: PatientRef,
    },
    /// `HoldSlot` for `ttl_ms` (`HOLD_TTL_MS_MIN..=HOLD_TTL_MS_MAX`) instead of the policy's
    /// `slot_hold_ttl_ms`.
    HoldSlotFor {
        slot: SlotId,
        patient: PatientRef,
        channel: Channel,
        ttl_ms: u64,
        referral: Option<ReferralId>,
    },
    /// Releases a held seat (`ReleaseSlot`) or cancels a booking (`CancelBooking`),
    /// whichever the seat is: one command, so a retry is the same command.
    CancelSeat {
        hold: HoldId,
    },
    /// `HoldJointConsult` with the slots chosen by apply: the earliest start in
    /// `[earliest, latest)` at which every doctor has a remote slot with an open public
    /// seat covering `duration_minutes`. `ttl_ms` 0 means the policy's `slot_hold_ttl_ms`.
    HoldJointConsultIn {
        doctors: Vec<DoctorId>,
        earliest: LogTime,
        latest: LogTime,
        duration_minutes: u16,
        patient: PatientRef,
        ttl_ms: u64,
    },
    /// Cancels a booked joint consultation (until the region's cancellation deadline before
    /// its start) or releases a held one: every seat is freed together and offered to the
    /// waitlists. Answers `ConsultReleased`.
    CancelJointConsult {
        consult: ConsultId,
    },
    /// Sets a ward's staffed beds (beds staff can run), keeping the rest of the ward record:
    /// one command, so two hospitals' systems editing one ward never lose each other's change.
    SetStaffedBeds {
        ward: WardId,
        staffed_beds: u32,
    },
    /// Lifts a patient's online-booking block after no-shows and forgets the no-shows that
    /// led to it (the next one starts a new count).
    UnblockPatient {
        patient: PatientRef,
    },
    /// `HoldBed` through the referral channel: `referral` must be an existing referral of the
    /// same patient waiting for capacity (`REFERRAL_SEAT_STATES`), as for a referral seat.
    HoldBedForReferral {
        target: BedTarget,
        patient: PatientRef,
        ttl_ms: u64,
        referral: ReferralId,
    },
    /// Sets a doctor's seat numbers on a slot that has not started; refused when they would
    /// no longer cover the seats taken. A raise offers the new seats to the waitlist.
    AmendSlot {
        slot: SlotId,
        seats: crate::slots::SeatLimits,
    },
    /// Withdraws slots that have not started. Slots with held or booked seats are refused
    /// unless `cancel_bookings`: then each such seat ends `SeatState::Withdrawn` (seen on the
    /// change feed and in the patient's bookings), a joint consultation with one loses all
    /// its seats, and a referral whose seat it was goes back to triaged.
    WithdrawSlots {
        slots: Vec<SlotId>,
        cancel_bookings: bool,
    },
    /// Sets (an empty template: stops) a doctor's weekly template. Publishes the days from
    /// `from` (0: today; never before today) that are inside the horizon now; each Tick
    /// rolls the following days in as log time crosses midnight (`horizon`).
    SetWeeklyTemplate {
        doctor: DoctorId,
        template: crate::horizon::WeeklyTemplate,
        from: LogTime,
    },
    /// `RequestReferral` with what the referring hospital states: the direction (with a
    /// destination it must agree with the referral path; without one it is stored,
    /// up-tier when `None`), a clinical reason code (`REFERRAL_CODE_BYTES_MAX`) and a note
    /// (`TEXT_BYTES_MAX`, no identifying numbers).
    RequestReferralWith {
        from: HospitalId,
        to: Option<HospitalId>,
        patient: PatientRef,
        direction: Option<ReferralKind>,
        reason_code: Option<String>,
        note: Option<String>,
    },
    /// `TriageReferral` with triage's note, kept in the referral's history.
    TriageReferralNoted {
        referral: ReferralId,
        specialty: Specialty,
        urgency: Urgency,
        note: String,
    },
    /// `CompleteReferral` with the outcome code ("discharged", "referred-down"), stored on
    /// the referral and in its history.
    CompleteReferralWith {
        referral: ReferralId,
        outcome: String,
    },
    /// `AllocateBed` through the referral channel: `referral` must be an existing referral
    /// of the same patient waiting for capacity, as for `HoldBedForReferral`.
    AllocateBedForReferral {
        query: crate::matching::BedQuery,
        ttl_ms: u64,
        patient: PatientRef,
        referral: ReferralId,
    },
    /// Starts holding a bed for a triaged referral in another region (`remote`): the
    /// cluster's driver asks `region` for a bed of `ward` for `ttl_ms` and records the
    /// answer with `RecordRemote`. Refused while an earlier attempt is unfinished or the
    /// referral holds anything here.
    HoldRemoteBed {
        referral: ReferralId,
        region: String,
        ward: WardId,
        ttl_ms: u64,
    },
    /// Records another region's answer to a step of a cross-region bed (sent by the
    /// cluster's driver, never by clients): an answer to an older attempt or a stage that
    /// moved on changes nothing.
    RecordRemote {
        referral: ReferralId,
        attempt: u32,
        outcome: crate::remote::RemoteOutcome,
    },
    /// `HoldBed{Ward(ward)}` asked by another region's driver for one step (`step`, the
    /// step's derived request id): a repeat of the step answers the hold it made for as
    /// long as the hold is on record, past the dedup window (`remote`).
    HoldBedForRegion {
        origin: String,
        step: RequestId,
        ward: WardId,
        patient: PatientRef,
        ttl_ms: u64,
    },
}

impl Command {
    /// Whether the command only administers the region (and may be large).
    pub fn is_admin(&self) -> bool {
        use Command::*;
        matches!(
            self,
            ImportRegion(_)
                | UpsertHospital(_)
                | UpsertAlliance(_)
                | UpsertWard(_)
                | AddBeds { .. }
                | UpsertDoctor(_)
                | SetTravel { .. }
                | SetReferralPath { .. }
                | SetPolicy(_)
                | SetMatchPolicy(_)
        )
    }
}

/// What a successful command did. Remembered for idempotent retries.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Reply {
    Ticked {
        now: LogTime,
        expired_holds: u32,
        expired_referrals: u32,
        offers: Vec<WaitlistOffer>,
    },
    RegionImported {
        hospitals: u32,
        wards: u32,
        beds: u32,
        doctors: u32,
    },
    Done,
    BedsAdded {
        first: BedId,
        count: u32,
    },
    BedHeld {
        hold: HoldId,
        bed: BedId,
        ward: WardId,
        expires_at: LogTime,
    },
    HoldConfirmed {
        hold: HoldId,
        bed: BedId,
    },
    HoldReleased {
        hold: HoldId,
    },
    SchedulePublished {
        first: SlotId,
        count: u32,
    },
    SlotHeld {
        hold: HoldId,
        slot: SlotId,
        expires_at: LogTime,
    },
    SlotBooked {
        booking: HoldId,
        slot: SlotId,
    },
    SlotReleased {
        hold: HoldId,
        offers: Vec<WaitlistOffer>,
    },
    BookingCancelled {
        booking: HoldId,
        offers: Vec<WaitlistOffer>,
    },
    NoShowRecorded {
        booking: HoldId,
        blocked_until: Option<LogTime>,
    },
    Waitlisted {
        position: u32,
    },
    ConsultHeld {
        consult: ConsultId,
        seats: Vec<HoldId>,
        start: LogTime,
        expires_at: LogTime,
    },
    ConsultBooked {
        consult: ConsultId,
    },
    ConsultReleased {
        consult: ConsultId,
        offers: Vec<WaitlistOffer>,
    },
    ReferralCreated {
        referral: ReferralId,
        kind: ReferralKind,
    },
    ReferralUpdated {
        referral: ReferralId,
        state: ReferralState,
    },
    /// What `AllocateSlot` chose and now holds.
    SlotAllocated {
        hold: HoldId,
        slot: SlotId,
        doctor: DoctorId,
        hospital: HospitalId,
        start: LogTime,
        travel_minutes: u32,
        wait_minutes: u32,
        beyond_reach: bool,
        score: u64,
        expires_at: LogTime,
    },
    /// What `AllocateBed` chose and now holds.
    BedAllocated {
        hold: HoldId,
        bed: BedId,
        ward: WardId,
        hospital: HospitalId,
        travel_minutes: u32,
        beyond_reach: bool,
        score: u64,
        expires_at: LogTime,
    },
    /// What `SetStaffedBeds` changed.
    StaffedBedsSet {
        ward: WardId,
        staffed_beds: u32,
        previous: u32,
    },
    /// What `UnblockPatient` lifted: the end of the block, `None` if there was none.
    PatientUnblocked {
        patient: PatientRef,
        blocked_until: Option<LogTime>,
    },
    /// What `AmendSlot` changed; a raise may have offered seats to the waitlist.
    SlotAmended {
        slot: SlotId,
        offers: Vec<WaitlistOffer>,
    },
    /// What `WithdrawSlots` withdrew, the seats that ended with the slots (`Withdrawn`) or
    /// with their joint consultation, and the freed seats of other slots offered on.
    SlotsWithdrawn {
        slots: Vec<SlotId>,
        cancelled: Vec<HoldId>,
        offers: Vec<WaitlistOffer>,
    },
    /// What `SetWeeklyTemplate` published now (ids `first` .. `first + count`, by day and
    /// start) and the start of the first UTC day not yet published.
    TemplateSet {
        doctor: DoctorId,
        first: SlotId,
        count: u32,
        next_day_start: LogTime,
    },
    /// Where a referral's bed in another region stands after `HoldRemoteBed` or
    /// `RecordRemote`.
    RemoteBedRecorded {
        referral: ReferralId,
        attempt: u32,
        stage: crate::remote::RemoteStage,
    },
}

/// The result of applying one request.
pub type Outcome = Result<Reply, crate::error::Rejection>;
