//! The availability view: an immutable picture of free slots per doctor, free beds per ward
//! and load per doctor and hospital, published after each applied batch for lock-free
//! queries (`Engine::view_reader`, then `ViewReader::load`).
//!
//! Publication is copy-on-write over shards: doctors in chunks of `DOCTORS_PER_SHARD`, wards
//! in chunks of `WARDS_PER_SHARD`, each chunk an `Arc`, each doctor inside a chunk an `Arc`.
//! Apply only marks what a command touched (`Live::dirty_*`); publishing rebuilds the touched
//! doctors and wards, clones only the chunks that hold them (`Arc::make_mut`: a chunk no
//! published view still shares is edited in place) and swaps the new root in through
//! `sync::Publisher`. Untouched chunks are shared with the previous view, so a publish costs
//! the touched shards plus a root of a few hundred `Arc`s, not a copy of the region.
//!
//! The view is derived, never replicated: it is not in snapshots or the state hash, and
//! allocation inside apply reads the authoritative state, not the view.

use crate::command::{Command, Reply};
use crate::engine::Engine;
use crate::ids::*;
use crate::limits::EXPIRIES_PER_TICK_MAX;
use crate::matching::{MatchPolicy, RegionIndex, Source};
use crate::region::{Channel, Mode, Specialty};
use crate::slots::Slot;
use crate::sync::{Publisher, Reader};
use crate::time::{LogTime, MS_PER_DAY};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc as StdArc;

/// Doctors per copy-on-write shard of the view.
pub const DOCTORS_PER_SHARD: u32 = 64;
/// Wards per copy-on-write shard of the view.
pub const WARDS_PER_SHARD: u32 = 64;

/// A slot with a seat open in at least one channel.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct FreeSlot {
    pub slot: SlotId,
    pub start: LogTime,
    pub mode: Mode,
    pub open_public: u16,
    pub open_referral: u16,
}

/// Seats and taken (held + booked) seats of one doctor on one day.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub struct DayLoad {
    /// Days since the epoch (UTC).
    pub day: u64,
    pub seats: u32,
    pub taken: u32,
}

impl DayLoad {
    pub fn permille(&self) -> u32 {
        (u64::from(self.taken) * 1_000 / u64::from(self.seats.max(1))).min(1_000) as u32
    }
}

/// One doctor's availability.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct DoctorAvail {
    pub hospital: HospitalId,
    /// Slots with an open seat, by start.
    pub free: Vec<FreeSlot>,
    /// Load per day, by day.
    pub days: Vec<DayLoad>,
}

/// One ward's beds.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct WardAvail {
    pub hospital: HospitalId,
    pub admissible: u32,
    pub in_use: u32,
    pub staffed: u32,
}

/// Load of one hospital: seats and beds, summed over its doctors and wards.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub struct HospitalLoad {
    pub seats: u64,
    pub taken: u64,
    pub beds_staffed: u64,
    pub beds_in_use: u64,
    pub beds_admissible: u64,
}

type DoctorChunk = BTreeMap<DoctorId, StdArc<DoctorAvail>>;
type WardChunk = BTreeMap<WardId, WardAvail>;
/// One hospital's doctors per (specialty, mode), by first open slot: `(start, doctor)`.
type OpenChunk = BTreeMap<(Specialty, Mode), StdArc<Vec<(LogTime, DoctorId)>>>;

/// The published picture. Cheap to clone (a root of `Arc`s).
#[derive(Clone, Debug, Default)]
pub struct AvailabilityView {
    /// Requests applied when the view was published.
    pub version: u64,
    /// The position in the publisher's log the view reflects (in a cluster: the Raft
    /// applied index), as given to `Engine::publish_view_at`; 0 when never given. A reader
    /// that needs everything up to index `i` waits for a view with `log_index >= i`.
    pub log_index: u64,
    pub now: LogTime,
    pub policy: MatchPolicy,
    pub region: StdArc<RegionIndex>,
    /// Bed holds pending (placed, not yet confirmed, released or expired): for operators'
    /// metrics, read at scrape time off the node task.
    pub bed_holds_pending: u64,
    /// Request keys the dedup table remembers (same purpose).
    pub dedup_entries: u64,
    doctors: BTreeMap<u32, StdArc<DoctorChunk>>,
    wards: BTreeMap<u32, StdArc<WardChunk>>,
    hospitals: StdArc<BTreeMap<HospitalId, HospitalLoad>>,
    /// Per hospital, per (specialty, mode): the doctors `RegionIndex::doctors_at` names,
    /// ordered by their first free slot in that mode after `now` at their last rebuild (a
    /// lower bound for every later search, whose window starts after `now`). Copy-on-write
    /// like the shards: a touched doctor clones its hospital's chunk (a few dozen `Arc`s)
    /// and its lists.
    first_open: StdArc<BTreeMap<HospitalId, StdArc<OpenChunk>>>,
}

impl AvailabilityView {
    /// A doctor's availability.
    pub fn doctor(&self, id: DoctorId) -> Option<&DoctorAvail> {
        self.doctors
            .get(&(id.0 / DOCTORS_PER_SHARD))?
            .get(&id)
            .map(|a| &**a)
    }

    /// A ward's beds.
    pub fn ward(&self, id: WardId) -> Option<&WardAvail> {
        self.wards.get(&(id.0 / WARDS_PER_SHARD))?.get(&id)
    }

    /// A hospital's load.
    pub fn hospital_load(&self, id: HospitalId) -> Option<&HospitalLoad> {
        self.hospitals.get(&id)
    }
}

impl Source for AvailabilityView {
    fn index(&self) -> &RegionIndex {
        &self.region
    }
    fn policy(&self) -> &MatchPolicy {
        &self.policy
    }
    fn now(&self) -> LogTime {
        self.now
    }
    fn open_slots(
        &self,
        doctor: DoctorId,
        (from, to): (LogTime, LogTime),
        mode: Mode,
        channel: Channel,
        f: &mut dyn FnMut(SlotId, LogTime, u16) -> bool,
    ) {
        let Some(d) = self.doctor(doctor) else {
            return;
        };
        let first = d.free.partition_point(|s| s.start < from);
        for s in d.free[first..].iter().take_while(|s| s.start < to) {
            let open = match channel {
                Channel::Public => s.open_public,
                Channel::Referral => s.open_referral,
            };
            if s.mode == mode && open > 0 && !f(s.slot, s.start, open) {
                return;
            }
        }
    }
    fn day_load_permille(&self, doctor: DoctorId, day: u64) -> u32 {
        let Some(d) = self.doctor(doctor) else {
            return 0;
        };
        let i = d.days.partition_point(|x| x.day < day);
        d.days
            .get(i)
            .filter(|x| x.day == day)
            .map_or(0, DayLoad::permille)
    }
    fn ward_beds(&self, ward: WardId) -> (u32, u32, u32) {
        self.ward(ward)
            .map_or((0, 0, 0), |w| (w.admissible, w.in_use, w.staffed))
    }
    fn first_open(
        &self,
        h: HospitalId,
        specialty: Specialty,
        mode: Mode,
    ) -> Option<&[(LogTime, DoctorId)]> {
        let list = self
            .first_open
            .get(&h)
            .and_then(|c| c.get(&(specialty, mode)));
        Some(list.map_or(&[], |l| l.as_slice()))
    }
}

/// A handle for queries: loads the latest published view without locks.
#[derive(Clone)]
pub struct ViewReader(Reader<AvailabilityView>);

impl ViewReader {
    /// The latest view.
    pub fn load(&self) -> crate::sync::Arc<AvailabilityView> {
        self.0.load()
    }
}

/// The engine's derived, unreplicated matching state: the region index, the working view,
/// what changed since the last publication, and the batch plan for the next allocation.
#[derive(Default)]
pub(crate) struct Live {
    pub(crate) index: Option<StdArc<RegionIndex>>,
    working: AvailabilityView,
    dirty_doctors: BTreeSet<DoctorId>,
    dirty_wards: BTreeSet<WardId>,
    all_dirty: bool,
    publisher: Option<Publisher<AvailabilityView>>,
    /// The batch solver's choice for the allocation being applied (see `allocate`).
    pub(crate) plan: Option<crate::matching::allocate::Plan>,
}

impl Clone for Live {
    /// A clone starts afresh: derived state is rebuilt on demand, and a publisher has one
    /// owner.
    fn clone(&self) -> Live {
        Live::default()
    }
}

impl PartialEq for Live {
    /// Derived state never makes two engines differ.
    fn eq(&self, _: &Live) -> bool {
        true
    }
}

impl std::fmt::Debug for Live {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Live")
    }
}

impl Engine {
    /// A reader of the published availability view. The first call starts publication:
    /// from then on every `apply_batch` (and `publish_view`) publishes a new view.
    pub fn view_reader(&mut self) -> ViewReader {
        let publisher = match self.live.publisher.take() {
            Some(p) => p,
            None => {
                self.live.all_dirty = true;
                self.refresh_view();
                Publisher::new(crate::sync::Arc::new(self.live.working.clone()))
            }
        };
        let reader = ViewReader(publisher.reader());
        self.live.publisher = Some(publisher);
        reader
    }

    /// Publishes the view now (callers applying one request at a time use this; batches
    /// publish on their own). Does nothing until `view_reader` was called.
    pub fn publish_view(&mut self) {
        let index = self.live.working.log_index;
        self.publish_view_at(index);
    }

    /// Publishes the view now, marked as reflecting log position `log_index` (the caller's
    /// applied index: everything applied so far). Cheap when nothing changed: only the
    /// touched shards are rebuilt. Does nothing until `view_reader` was called.
    pub fn publish_view_at(&mut self, log_index: u64) {
        if self.live.publisher.is_none() {
            return;
        }
        self.live.working.log_index = log_index;
        self.refresh_view();
        let next = crate::sync::Arc::new(self.live.working.clone());
        if let Some(p) = self.live.publisher.as_mut() {
            p.publish(next);
        }
    }

    /// The region index, rebuilt if an admin command changed the region since.
    pub(crate) fn region_index(&mut self) -> StdArc<RegionIndex> {
        if let Some(ix) = &self.live.index {
            return ix.clone();
        }
        let ix = StdArc::new(RegionIndex::build(self));
        self.live.index = Some(ix.clone());
        ix
    }

    /// Rebuilds the working view's touched shards.
    fn refresh_view(&mut self) {
        let region = self.region_index();
        let region_changed =
            self.live.all_dirty || !StdArc::ptr_eq(&region, &self.live.working.region);
        let live = &mut self.live;
        if live.all_dirty {
            live.working = AvailabilityView {
                log_index: live.working.log_index,
                ..AvailabilityView::default()
            };
            live.dirty_doctors = self.doctors.keys().copied().collect();
            live.dirty_wards = self.beds.wards.keys().copied().collect();
            live.all_dirty = false;
        }
        let doctors = std::mem::take(&mut live.dirty_doctors);
        let wards = std::mem::take(&mut live.dirty_wards);
        for d in doctors {
            let avail = self
                .doctors
                .get(&d)
                .map(|doc| doctor_avail(self, d, doc.hospital));
            let shard = self.live.working.doctors.entry(d.0 / DOCTORS_PER_SHARD);
            let chunk = StdArc::make_mut(shard.or_default());
            let new = avail.map(StdArc::new);
            let old = match &new {
                Some(a) => chunk.insert(d, a.clone()),
                None => chunk.remove(&d),
            };
            let hospitals = StdArc::make_mut(&mut self.live.working.hospitals);
            shift_doctor_load(hospitals, old.as_deref(), new.as_deref());
            if !region_changed {
                if let (Some(doc), Some(a)) = (self.doctors.get(&d), new.as_deref()) {
                    for (key, first) in open_groups(doc, a, self.now) {
                        let current = self.live.working.first_open.get(&doc.hospital);
                        let list = current.and_then(|c| c.get(&key));
                        if list.is_some_and(|l| l.binary_search(&(first, d)).is_ok()) {
                            // Most holds leave the first free slot where it was: share.
                            continue;
                        }
                        let index = StdArc::make_mut(&mut self.live.working.first_open);
                        let chunk = StdArc::make_mut(index.entry(doc.hospital).or_default());
                        let list = StdArc::make_mut(chunk.entry(key).or_default());
                        if let Some(i) = list.iter().position(|e| e.1 == d) {
                            list.remove(i);
                        }
                        let at = list.partition_point(|e| *e < (first, d));
                        list.insert(at, (first, d));
                    }
                }
            }
        }
        if region_changed {
            self.rebuild_first_open();
        }
        for w in wards {
            let avail = self.beds.ward(w).map(|ward| WardAvail {
                hospital: ward.hospital,
                admissible: self.beds.admissible(w),
                in_use: self.beds.in_use(w),
                staffed: ward.staffed_beds,
            });
            let shard = self.live.working.wards.entry(w.0 / WARDS_PER_SHARD);
            let chunk = StdArc::make_mut(shard.or_default());
            let old = match avail {
                Some(a) => chunk.insert(w, a),
                None => chunk.remove(&w),
            };
            let hospitals = StdArc::make_mut(&mut self.live.working.hospitals);
            shift_ward_load(hospitals, old.as_ref(), avail.as_ref());
        }
        let v = &mut self.live.working;
        v.region = region;
        v.version = self.counters.applied;
        v.bed_holds_pending = self.beds.expiries.len() as u64;
        v.dedup_entries = self.dedup.len() as u64;
        v.now = self.now;
        v.policy = self.match_policy.clone();
    }
}

impl Engine {
    /// Rebuilds the first-open index of the working view from its doctors (after the region
    /// changed: doctors may have moved or changed specialties).
    fn rebuild_first_open(&mut self) {
        let mut lists: BTreeMap<HospitalId, BTreeMap<(Specialty, Mode), Vec<_>>> = BTreeMap::new();
        for chunk in self.live.working.doctors.values() {
            for (&d, a) in chunk.iter() {
                let Some(doc) = self.doctors.get(&d) else {
                    continue;
                };
                for (key, first) in open_groups(doc, a, self.now) {
                    let hospital = lists.entry(doc.hospital).or_default();
                    hospital.entry(key).or_default().push((first, d));
                }
            }
        }
        let index = lists
            .into_iter()
            .map(|(h, chunk)| {
                let chunk = chunk
                    .into_iter()
                    .map(|(key, mut list)| {
                        list.sort_unstable();
                        (key, StdArc::new(list))
                    })
                    .collect();
                (h, StdArc::new(chunk))
            })
            .collect();
        self.live.working.first_open = StdArc::new(index);
    }
}

/// The first-open groups a doctor belongs to (as `RegionIndex::doctors_at` lists them) and
/// their first free slot in the group's mode after `now` (`LogTime(u64::MAX)`: none).
fn open_groups(
    doc: &crate::region::Doctor,
    a: &DoctorAvail,
    now: LogTime,
) -> Vec<((Specialty, Mode), LogTime)> {
    let after = a.free.partition_point(|s| s.start <= now);
    let first = |mode: Mode| {
        let found = a.free[after..].iter().find(|s| s.mode == mode);
        found.map_or(LogTime(u64::MAX), |s| s.start)
    };
    let (in_person, remote) = (first(Mode::InPerson), first(Mode::Remote));
    let mut out = Vec::with_capacity(doc.specialties.len() * 2);
    for &s in &doc.specialties {
        out.push(((s, Mode::InPerson), in_person));
        if doc.remote {
            out.push(((s, Mode::Remote), remote));
        }
    }
    out
}

/// Builds one doctor's availability from the authoritative slots.
fn doctor_avail(e: &Engine, d: DoctorId, hospital: HospitalId) -> DoctorAvail {
    let mut a = DoctorAvail {
        hospital,
        free: Vec::new(),
        days: Vec::new(),
    };
    for s in e.slots.doctor_slots(d, LogTime(0), LogTime(u64::MAX)) {
        add_slot(&mut a, s);
    }
    a
}

fn add_slot(a: &mut DoctorAvail, s: &Slot) {
    let (open_public, open_referral) = (
        s.open_seats(Channel::Public),
        s.open_seats(Channel::Referral),
    );
    if open_public > 0 || open_referral > 0 {
        a.free.push(FreeSlot {
            slot: s.id,
            start: s.spec.start,
            mode: s.spec.mode,
            open_public,
            open_referral,
        });
    }
    let day = s.spec.start.0 / MS_PER_DAY;
    if a.days.last().is_none_or(|l| l.day != day) {
        a.days.push(DayLoad {
            day,
            ..DayLoad::default()
        });
    }
    if let Some(l) = a.days.last_mut() {
        l.seats += u32::from(s.spec.capacity);
        l.taken += u32::from(s.taken());
    }
}

fn shift_doctor_load(
    map: &mut BTreeMap<HospitalId, HospitalLoad>,
    old: Option<&DoctorAvail>,
    new: Option<&DoctorAvail>,
) {
    let sum = |a: &DoctorAvail| {
        a.days.iter().fold((0u64, 0u64), |(s, t), d| {
            (s + u64::from(d.seats), t + u64::from(d.taken))
        })
    };
    if let Some(o) = old {
        let (s, t) = sum(o);
        let h = map.entry(o.hospital).or_default();
        h.seats = h.seats.saturating_sub(s);
        h.taken = h.taken.saturating_sub(t);
    }
    if let Some(n) = new {
        let (s, t) = sum(n);
        let h = map.entry(n.hospital).or_default();
        h.seats += s;
        h.taken += t;
    }
}

fn shift_ward_load(
    map: &mut BTreeMap<HospitalId, HospitalLoad>,
    old: Option<&WardAvail>,
    new: Option<&WardAvail>,
) {
    if let Some(o) = old {
        let h = map.entry(o.hospital).or_default();
        h.beds_staffed = h.beds_staffed.saturating_sub(u64::from(o.staffed));
        h.beds_in_use = h.beds_in_use.saturating_sub(u64::from(o.in_use));
        h.beds_admissible = h.beds_admissible.saturating_sub(u64::from(o.admissible));
    }
    if let Some(n) = new {
        let h = map.entry(n.hospital).or_default();
        h.beds_staffed += u64::from(n.staffed);
        h.beds_in_use += u64::from(n.in_use);
        h.beds_admissible += u64::from(n.admissible);
    }
}

/// What a command may change in the view, found before it runs (only `Tick` needs this:
/// the holds it expires cannot be told apart afterwards, and with a short
/// `resolved_retention_ms` the same tick prunes them, so they are resolved to their doctors
/// and wards here, while they still exist).
pub(crate) struct Touches {
    doctors: Vec<DoctorId>,
    wards: Vec<WardId>,
}

impl Engine {
    /// Notes the doctors and wards whose holds a command will touch, before it runs.
    pub(crate) fn touches_before(&self, command: &Command, now: LogTime) -> Touches {
        let mut holds = Vec::new();
        // A matched referral reported without capacity lets go of its holds and forgets them.
        if let Command::ReportNoCapacity { referral, .. } = command {
            holds.extend(self.referral_holds(*referral));
        }
        if matches!(command, Command::Tick) {
            holds.extend(self.beds.due(now, EXPIRIES_PER_TICK_MAX));
            holds.extend(self.slots.due(now, EXPIRIES_PER_TICK_MAX));
            for r in self.referrals.due(now, EXPIRIES_PER_TICK_MAX) {
                holds.extend(self.referral_holds(r));
            }
        }
        Touches {
            doctors: holds
                .iter()
                .filter_map(|h| self.slots.seat(*h))
                .map(|s| s.doctor)
                .collect(),
            wards: holds
                .iter()
                .filter_map(|h| self.beds.hold(*h))
                .map(|b| b.ward)
                .collect(),
        }
    }

    fn referral_holds(&self, r: ReferralId) -> Vec<HoldId> {
        self.referrals
            .get(r)
            .map(|x| x.slot_hold.into_iter().chain(x.bed_hold).collect())
            .unwrap_or_default()
    }

    /// Marks what an applied command changed, so the next publication rebuilds it.
    pub(crate) fn note_applied(&mut self, command: &Command, reply: &Reply, before: Touches) {
        use Command::*;
        if command.is_admin() {
            self.live.index = None;
        }
        self.mark_touched(before);
        let mut holds = Vec::new();
        let mut slots: Vec<SlotId> = Vec::new();
        match command {
            ImportRegion(_) => self.live.all_dirty = true,
            UpsertWard(w) => self.mark_ward(w.id),
            AddBeds { ward, .. } | SetStaffedBeds { ward, .. } => self.mark_ward(*ward),
            UpsertDoctor(d) => self.mark_doctor(d.id),
            BlockBed { bed, .. }
            | UnblockBed { bed }
            | MarkBedClean { bed }
            | Discharge { bed } => {
                if let Some(w) = self.beds.bed(*bed).map(|b| b.ward) {
                    self.mark_ward(w);
                }
            }
            ConfirmHold { hold }
            | ReleaseHold { hold }
            | BookSlot { hold }
            | ReleaseSlot { hold } => holds.push(*hold),
            CancelBooking { booking } | MarkNoShow { booking } => holds.push(*booking),
            HoldSlot { slot, .. } | HoldSlotFor { slot, .. } => slots.push(*slot),
            CancelSeat { hold } => holds.push(*hold),
            PublishSchedule { doctor, .. } | SetWeeklyTemplate { doctor, .. } => {
                self.mark_doctor(*doctor)
            }
            AmendSlot { slot, .. } => slots.push(*slot),
            WithdrawSlots { slots: ids, .. } => slots.extend(ids.iter().copied()),
            BookJointConsult { consult }
            | ReleaseJointConsult { consult }
            | CancelJointConsult { consult } => holds.extend(
                self.slots
                    .consult(*consult)
                    .into_iter()
                    .flat_map(|c| c.seats.clone()),
            ),
            MatchReferral { referral, .. }
            | AcceptReferral { referral }
            | StartTransit { referral }
            | AdmitReferral { referral }
            | CompleteReferral { referral }
            | CompleteReferralWith { referral, .. }
            | RejectReferral { referral, .. }
            | CancelReferral { referral, .. } => holds.extend(self.referral_holds(*referral)),
            Tick
            | UpsertHospital(_)
            | UpsertAlliance(_)
            | SetTravel { .. }
            | SetReferralPath { .. }
            | SetPolicy(_)
            | HoldBed { .. }
            | JoinWaitlist { .. }
            | LeaveWaitlist { .. }
            | HoldJointConsult { .. }
            | RequestReferral { .. }
            | TriageReferral { .. }
            | ReportNoCapacity { .. }
            | SetMatchPolicy(_)
            | AllocateSlot { .. }
            | AllocateBed { .. }
            | HoldJointConsultIn { .. }
            | UnblockPatient { .. }
            | HoldBedForReferral { .. }
            | RequestReferralWith { .. }
            | TriageReferralNoted { .. }
            | AllocateBedForReferral { .. }
            | HoldRemoteBed { .. }
            | RecordRemote { .. }
            | HoldBedForRegion { .. } => {}
        }
        self.note_reply(reply, &mut holds, &mut slots);
        for h in holds {
            if let Some(d) = self.slots.seat(h).map(|s| s.doctor) {
                self.mark_doctor(d);
            }
            if let Some(w) = self.beds.hold(h).map(|b| b.ward) {
                self.mark_ward(w);
            }
        }
        for s in slots {
            if let Some(d) = self.slots.slot(s).map(|s| s.doctor) {
                self.mark_doctor(d);
            }
        }
    }

    /// Holds and slots a reply names (waitlist offers, new holds).
    fn note_reply(&mut self, reply: &Reply, holds: &mut Vec<HoldId>, slots: &mut Vec<SlotId>) {
        match reply {
            Reply::Ticked { offers, .. }
            | Reply::SlotReleased { offers, .. }
            | Reply::BookingCancelled { offers, .. }
            | Reply::ConsultReleased { offers, .. }
            | Reply::SlotAmended { offers, .. } => slots.extend(offers.iter().map(|o| o.slot)),
            Reply::SlotsWithdrawn {
                cancelled, offers, ..
            } => {
                holds.extend(cancelled.iter().copied());
                slots.extend(offers.iter().map(|o| o.slot));
            }
            Reply::BedHeld { ward, .. } => self.mark_ward(*ward),
            Reply::ConsultHeld { seats, .. } => holds.extend(seats.iter().copied()),
            Reply::SlotAllocated { slot, .. } => slots.push(*slot),
            Reply::BedAllocated { ward, .. } => self.mark_ward(*ward),
            _ => {}
        }
    }

    /// Marks what `touches_before` found.
    fn mark_touched(&mut self, touches: Touches) {
        for d in touches.doctors {
            self.mark_doctor(d);
        }
        for w in touches.wards {
            self.mark_ward(w);
        }
    }

    pub(crate) fn mark_doctor(&mut self, d: DoctorId) {
        if self.live.publisher.is_some() {
            self.live.dirty_doctors.insert(d);
        }
    }

    fn mark_ward(&mut self, w: WardId) {
        if self.live.publisher.is_some() {
            self.live.dirty_wards.insert(w);
        }
    }
}
