//! The read model: every question a client may ask of the region ([`Query`]) and its
//! [`Answer`], evaluated on the authoritative state (`Engine::query`, what a linearizable
//! read runs after its ReadIndex round) or, for matching and reach, on a published
//! [`AvailabilityView`](crate::view::AvailabilityView) off the apply path.
//!
//! One module per domain: [`beds`] (holds, ward availability, pages of wards), [`slots`] (slots, seats,
//! bookings of a patient, joint consultations, waitlists), [`referrals`] (referral records,
//! their API stage, worklists) and [`matching`] (ranked specialists with their filters, the
//! reach of a hospital). The cluster only carries these types as bytes: no read rule lives
//! outside this module (a tidy test keeps domain reads out of `cluster/src`).
//!
//! Reads are total: an unknown id answers `None`, never a panic; every list is bounded by a
//! limit in [`crate::limits`] or by the caller's `limit`.

pub mod beds;
pub mod matching;
pub mod referrals;
pub mod slots;

pub use beds::{BlockedBeds, WardInfo, WardPage, WardPageQuery};
pub use matching::{MatchAsk, MatchInfo, Reach};
pub use referrals::{ReasonKind, ReferralInfo, ReferralStage, StepInfo, WorklistQuery};
pub use slots::{
    ConsultInfo, PatientBookings, SeatInfo, SlotInfo, SlotSearch, WaitlistInfo, WaitlistQuery,
};

use crate::beds::BedHold;
use crate::command::Reply;
use crate::engine::Engine;
use crate::error::Rejection;
use crate::ids::*;
use crate::matching::SlotQuery;
use crate::view::AvailabilityView;
use serde::{Deserialize, Serialize};

/// A read-only question. Variants are only appended (postcard encodes the position).
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
    /// One slot hold or booking.
    Seat(HoldId),
    /// Slots with a seat open to the channel, earliest first.
    FindSlots(SlotSearch),
    /// One referral.
    Referral(ReferralId),
    /// A page of a hospital's (or the region's) referrals.
    Worklist(WorklistQuery),
    /// Ranked specialists on the published availability view; `any_mode` searches both
    /// modes (the query's mode is then ignored) and merges by score.
    Match { query: SlotQuery, any_mode: bool },
    /// A patient's slot holds and bookings and bed holds, newest first.
    PatientBookings { patient: PatientRef, limit: usize },
    /// One joint consultation.
    Consult(ConsultId),
    /// Waitlist entries and open waitlist offers of a doctor or a patient.
    Waitlist(WaitlistQuery),
    /// Hospitals within `minutes` of `from` on the road graph, nearest first.
    Reach { from: HospitalId, minutes: u32 },
    /// A page of ward records with their availability, of a hospital or the region.
    WardPage(WardPageQuery),
    /// The steps the cluster's driver owes other regions (`Engine::remote_work`), at
    /// most `max`.
    RemoteWork { max: u32 },
}

/// The answer to a [`Query`], variant for variant.
// A referral (with its cross-region part) is the largest answer; answers are decoded once
// and moved, never stored in bulk, so boxing it would buy nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum Answer {
    Hold(Option<(BedHold, HospitalId)>),
    /// `Err` names what is unknown: the hospital, or a ward not of that hospital.
    Wards(Result<Vec<WardInfo>, Rejection>),
    Summary {
        state_hash: [u8; 32],
        log_time_ms: u64,
        hospitals: u32,
        wards: u32,
    },
    /// The query bytes did not decode.
    Invalid(String),
    Seat(Option<SeatInfo>),
    Slots(Vec<SlotInfo>),
    Referral(Option<ReferralInfo>),
    /// `None` when the hospital is unknown; the id to page on when more follow.
    Worklist(Option<(Vec<ReferralInfo>, Option<ReferralId>)>),
    Match(Result<Vec<MatchInfo>, Rejection>),
    PatientBookings(PatientBookings),
    Consult(Option<ConsultInfo>),
    /// `None` when the doctor is unknown.
    Waitlist(Option<WaitlistInfo>),
    /// `None` when the hospital is unknown.
    Reach(Option<Vec<Reach>>),
    /// `None` when the hospital is unknown.
    WardPage(Option<WardPage>),
    /// Oldest referral first.
    RemoteWork(Vec<crate::remote::RemoteStep>),
}

/// A record after a write, as the API reports it alongside the write's answer.
// As for `Answer`: one record per write, moved, never stored in bulk.
#[allow(clippy::large_enum_variant)]
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Record {
    Seat(SeatInfo),
    Slots(Vec<SlotInfo>),
    Consult(ConsultInfo),
    Referral(ReferralInfo),
}

impl Engine {
    /// Answers `query` on this state; matching and reach read `view` (the view published
    /// for this state, or a later one).
    pub fn query(&self, query: &Query, view: &AvailabilityView) -> Answer {
        match query {
            Query::Hold(id) => Answer::Hold(self.bed_hold(*id)),
            Query::Wards { hospital, wards } => Answer::Wards(self.ward_infos(*hospital, wards)),
            Query::Summary => Answer::Summary {
                state_hash: self.state_hash().0,
                log_time_ms: self.now().0,
                hospitals: self.hospitals().count() as u32,
                wards: self.beds().wards().count() as u32,
            },
            Query::Seat(id) => Answer::Seat(self.seat_info(*id)),
            Query::FindSlots(q) => Answer::Slots(self.find_slots(q)),
            Query::Referral(id) => Answer::Referral(self.referral_info(*id)),
            Query::Worklist(q) => Answer::Worklist(self.worklist(q)),
            Query::Match { query, any_mode } => {
                Answer::Match(matching::specialists(view, &MatchAsk::of(query, *any_mode)))
            }
            Query::PatientBookings { patient, limit } => {
                Answer::PatientBookings(self.patient_bookings(*patient, *limit))
            }
            Query::Consult(id) => Answer::Consult(self.consult_info(*id)),
            Query::Waitlist(q) => Answer::Waitlist(self.waitlist_info(q)),
            Query::Reach { from, minutes } => Answer::Reach(matching::reach(view, *from, *minutes)),
            Query::WardPage(q) => Answer::WardPage(self.ward_page(q)),
            Query::RemoteWork { max } => Answer::RemoteWork(self.remote_work(*max as usize)),
        }
    }

    /// The record a successful reply names, as it stands now.
    pub fn record(&self, reply: &Reply) -> Option<Record> {
        match reply {
            Reply::SlotHeld { hold, .. }
            | Reply::SlotBooked { booking: hold, .. }
            | Reply::SlotReleased { hold, .. }
            | Reply::BookingCancelled { booking: hold, .. }
            | Reply::NoShowRecorded { booking: hold, .. }
            | Reply::SlotAllocated { hold, .. } => self.seat_info(*hold).map(Record::Seat),
            Reply::SchedulePublished { first, count } => {
                let ids = (0..u64::from(*count)).map(|i| SlotId(first.0 + i));
                Some(Record::Slots(self.slot_infos(ids.collect())))
            }
            Reply::TemplateSet { first, count, .. } => {
                let ids = (0..u64::from(*count)).map(|i| SlotId(first.0 + i));
                Some(Record::Slots(self.slot_infos(ids.collect())))
            }
            Reply::SlotAmended { slot, .. } => Some(Record::Slots(self.slot_infos(vec![*slot]))),
            Reply::SlotsWithdrawn { slots, .. } => {
                Some(Record::Slots(self.slot_infos(slots.clone())))
            }
            Reply::ConsultHeld { consult, .. }
            | Reply::ConsultBooked { consult }
            | Reply::ConsultReleased { consult, .. } => {
                self.consult_info(*consult).map(Record::Consult)
            }
            Reply::ReferralCreated { referral, .. }
            | Reply::ReferralUpdated { referral, .. }
            | Reply::RemoteBedRecorded { referral, .. } => {
                self.referral_info(*referral).map(Record::Referral)
            }
            _ => None,
        }
    }
}
