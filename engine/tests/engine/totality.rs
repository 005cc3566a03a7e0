//! Totality: no input panics `apply` or a read, a refused command changes nothing, and the
//! engine's invariants hold after every step (the oracle of `harness.rs`).
//!
//! Two generators feed the same harness: random bytes decoded by postcard into ops (every
//! `Command` variant and every field value, with no knowledge of the region), and a
//! structured generator whose numbers are unconstrained (`any::<u64>()`, `u64::MAX`, 0) but
//! mixed with the fixture's ids and times, so that commands also succeed and reach deep
//! states. The regression tests below are inputs that once panicked. The cargo-fuzz target
//! (`engine/fuzz`) runs the same harness for hours: `docs/fuzzing.md`.

use super::harness::{self, Harness, Op, Read, EPOCH};
use ninety_engine::matching::{BedQuery, Bounds, MatchPolicy, Origin, SlotQuery};
use ninety_engine::region_file::RegionFile;
use ninety_engine::*;
use proptest::prelude::*;
use serde::de::DeserializeOwned;

const DAY_MS: u64 = 86_400_000;

/// A unit-only enum value: postcard encodes the variant index as one byte, so the variants
/// are the bytes that decode, from 0 up.
fn variant<T: DeserializeOwned + std::fmt::Debug>() -> impl Strategy<Value = T> + Clone {
    let decode = |b: u8| postcard::from_bytes::<T>(&[b]).ok();
    let count = (0u8..64).take_while(|b| decode(*b).is_some()).count() as u8;
    (0..count.max(1)).prop_filter_map("not a variant", decode)
}

fn small_or_any_u32() -> impl Strategy<Value = u32> + Clone {
    prop_oneof![12 => 1u32..5, 3 => 0u32..12, 1 => Just(u32::MAX), 1 => any::<u32>()]
}

fn small_or_any_u64() -> impl Strategy<Value = u64> + Clone {
    prop_oneof![12 => 1u64..8, 3 => 0u64..32, 1 => Just(u64::MAX), 1 => any::<u64>()]
}

/// Times before, around and long after the fixture's epoch, the ends of time, anything.
pub(super) fn time() -> impl Strategy<Value = LogTime> + Clone {
    let epoch = EPOCH.0;
    prop_oneof![
        1 => Just(0u64),
        1 => Just(u64::MAX),
        1 => 0u64..2_000,
        6 => 0..(epoch + 30 * 3_600_000),
        2 => 0..(epoch + 9 * DAY_MS),
        1 => any::<u64>(),
    ]
    .prop_map(LogTime)
}

/// Durations: zero, tiny, the policy's ranges, huge.
fn ms() -> impl Strategy<Value = u64> + Clone {
    prop_oneof![
        1 => Just(0u64),
        1 => Just(u64::MAX),
        2 => 0u64..5_000,
        6 => 0u64..(8 * DAY_MS),
        1 => any::<u64>(),
    ]
}

/// A search window: unset (both 0), ordered and a day or two long, or any two times.
fn window() -> impl Strategy<Value = (LogTime, LogTime)> + Clone {
    prop_oneof![
        2 => Just((LogTime(0), LogTime(0))),
        3 => (time(), 0u64..(2 * DAY_MS)).prop_map(|(t, d)| (t, t.plus_ms(d))),
        1 => (time(), time()),
    ]
}

/// Clock moves: mostly minutes to hours, sometimes days, sometimes anything.
fn clock_step() -> impl Strategy<Value = u64> + Clone {
    prop_oneof![6 => 0u64..600_000, 2 => 0u64..(3 * 3_600_000), 1 => 0u64..(8 * DAY_MS), 1 => any::<u64>()]
}

fn patient() -> impl Strategy<Value = PatientRef> + Clone {
    prop_oneof![8 => 0u128..2, 4 => 0u128..6, 1 => any::<u128>()].prop_map(PatientRef)
}

fn text() -> impl Strategy<Value = String> + Clone {
    prop_oneof![4 => "[a-z]{0,8}", 1 => Just("x".repeat(300))]
}

fn hospital_id() -> impl Strategy<Value = HospitalId> + Clone {
    small_or_any_u32().prop_map(HospitalId)
}

fn ward_id() -> impl Strategy<Value = WardId> + Clone {
    small_or_any_u32().prop_map(WardId)
}

fn doctor_id() -> impl Strategy<Value = DoctorId> + Clone {
    small_or_any_u32().prop_map(DoctorId)
}

/// Ids the engine hands out (holds, referrals, consultations, slots): a run's first ones
/// most often, so that later commands name what earlier ones created.
fn engine_id() -> impl Strategy<Value = u64> + Clone {
    prop_oneof![10 => 1u64..4, 4 => 1u64..12, 1 => Just(0u64), 1 => Just(u64::MAX), 1 => any::<u64>()]
}

fn hold_id() -> impl Strategy<Value = HoldId> + Clone {
    engine_id().prop_map(HoldId)
}

fn referral_id() -> impl Strategy<Value = ReferralId> + Clone {
    engine_id().prop_map(ReferralId)
}

fn slot_id() -> impl Strategy<Value = SlotId> + Clone {
    engine_id().prop_map(SlotId)
}

fn hospital() -> impl Strategy<Value = Hospital> + Clone {
    let coord = prop_oneof![3 => -90_000_000i32..90_000_000, 1 => any::<i32>()];
    (
        hospital_id(),
        text(),
        (coord.clone(), coord),
        variant::<Tier>(),
        prop::collection::vec(variant::<Language>(), 0..3),
        prop::collection::vec(small_or_any_u32().prop_map(AllianceId), 0..3),
    )
        .prop_map(
            |(id, name, (lat, lon), tier, languages, alliances)| Hospital {
                id,
                name: name.clone(),
                city: name,
                lat_micro_deg: lat,
                lon_micro_deg: lon,
                tier,
                languages,
                alliances,
            },
        )
}

fn ward() -> impl Strategy<Value = Ward> + Clone {
    (
        small_or_any_u32().prop_map(WardId),
        hospital_id(),
        (
            variant::<Specialty>(),
            variant::<WardKind>(),
            variant::<SexPolicy>(),
        ),
        prop::collection::vec(variant::<Equipment>(), 0..3),
        small_or_any_u32(),
    )
        .prop_map(
            |(id, hospital, (specialty, kind, sex), equipment, staffed)| Ward {
                id,
                hospital,
                name: "w".into(),
                specialty,
                kind,
                sex,
                equipment,
                staffed_beds: staffed,
            },
        )
}

fn doctor() -> impl Strategy<Value = Doctor> + Clone {
    (
        doctor_id(),
        hospital_id(),
        prop::collection::vec(variant::<Specialty>(), 0..3),
        prop::collection::vec(text(), 0..2),
        variant::<Title>(),
        any::<bool>(),
    )
        .prop_map(|(id, hospital, specialties, subs, title, remote)| Doctor {
            id,
            hospital,
            specialties,
            sub_specialties: subs,
            title,
            languages: vec![Language::Mandarin],
            remote,
        })
}

fn policy() -> impl Strategy<Value = Policy> + Clone {
    (
        small_or_any_u32(),
        (ms(), ms(), ms(), ms()),
        (
            small_or_any_u32(),
            small_or_any_u32(),
            small_or_any_u32(),
            small_or_any_u32(),
        ),
    )
        .prop_map(
            |(reach, (hold, referral, retention, dedup), (cancel, limit, window, block))| Policy {
                reach_minutes: reach.saturating_mul(30),
                slot_hold_ttl_ms: hold,
                cancel_deadline_minutes: cancel,
                no_show_limit: limit,
                no_show_window_days: window,
                no_show_block_days: block,
                referral_ttl_ms: referral,
                resolved_retention_ms: retention,
                dedup_window_ms: dedup,
            },
        )
}

fn seat_limits() -> impl Strategy<Value = SeatLimits> + Clone {
    let small16 = prop_oneof![4 => 0u16..8, 1 => any::<u16>()];
    (small16.clone(), small16.clone(), small16).prop_map(|(capacity, overbook, referral_quota)| {
        SeatLimits {
            capacity,
            overbook,
            referral_quota,
        }
    })
}

/// Weekly templates: mostly small and valid-ish (a few slots on some weekdays, a horizon
/// of a few days), sometimes anything.
fn weekly_template() -> impl Strategy<Value = WeeklyTemplate> + Clone {
    let slot = (
        prop_oneof![4 => 1u8..=0x7F, 1 => any::<u8>()],
        prop_oneof![4 => 0u16..1_500, 1 => any::<u16>()],
        prop_oneof![4 => 0u16..120, 1 => any::<u16>()],
        variant::<Mode>(),
        seat_limits(),
    )
        .prop_map(
            |(weekdays, minute_of_day, duration_minutes, mode, s)| TemplateSlot {
                weekdays,
                minute_of_day,
                duration_minutes,
                mode,
                capacity: s.capacity,
                overbook: s.overbook,
                referral_quota: s.referral_quota,
            },
        );
    let horizon = prop_oneof![4 => 0u16..40, 1 => any::<u16>()];
    (prop::collection::vec(slot, 0..4), horizon).prop_map(|(slots, horizon_days)| WeeklyTemplate {
        slots,
        horizon_days,
    })
}

fn slot_spec() -> impl Strategy<Value = SlotSpec> + Clone {
    let small16 = prop_oneof![4 => 0u16..8, 1 => any::<u16>()];
    (
        time(),
        prop_oneof![3 => 0u16..120, 1 => any::<u16>()],
        variant::<Mode>(),
        (small16.clone(), small16.clone(), small16),
    )
        .prop_map(
            |(start, duration_minutes, mode, (capacity, overbook, referral_quota))| SlotSpec {
                start,
                duration_minutes,
                mode,
                capacity,
                overbook,
                referral_quota,
            },
        )
}

fn origin() -> impl Strategy<Value = Origin> + Clone {
    prop_oneof![
        3 => hospital_id().prop_map(Origin::Hospital),
        1 => (any::<i32>(), any::<i32>()).prop_map(|(a, b)| Origin::Point { lat_micro_deg: a, lon_micro_deg: b }),
    ]
}

/// Travel and tier limits: mostly none, sometimes tight, sometimes absurd.
fn bounds() -> impl Strategy<Value = Bounds> + Clone {
    (
        proptest::option::of(prop_oneof![3 => 0u32..200, 1 => any::<u32>()]),
        proptest::option::of(variant::<Tier>()),
    )
        .prop_map(|(max_travel_minutes, min_tier)| Bounds {
            max_travel_minutes,
            min_tier,
        })
}

fn slot_query() -> impl Strategy<Value = SlotQuery> + Clone {
    (
        origin(),
        (
            variant::<Specialty>(),
            variant::<Urgency>(),
            proptest::option::of(variant::<Language>()),
        ),
        (variant::<Mode>(), variant::<Channel>()),
        window(),
        (prop_oneof![3 => 0u16..60, 1 => any::<u16>()], bounds()),
    )
        .prop_map(
            |(
                origin,
                (specialty, urgency, language),
                (mode, channel),
                (earliest, latest),
                (limit, bounds),
            )| SlotQuery {
                origin,
                specialty,
                urgency,
                language,
                mode,
                earliest,
                latest,
                channel,
                limit,
                bounds,
            },
        )
}

fn bed_query() -> impl Strategy<Value = BedQuery> + Clone {
    (
        origin(),
        (
            proptest::option::of(variant::<WardKind>()),
            proptest::option::of(variant::<Sex>()),
        ),
        prop::collection::vec(variant::<Equipment>(), 0..10),
        (
            proptest::option::of(variant::<Specialty>()),
            any::<bool>(),
            variant::<Urgency>(),
        ),
        (prop_oneof![3 => 0u16..60, 1 => any::<u16>()], bounds()),
    )
        .prop_map(
            |(origin, (kind, sex), equipment, (specialty, isolation, urgency), (limit, bounds))| {
                BedQuery {
                    origin,
                    needs: BedNeeds {
                        kind,
                        sex,
                        equipment,
                    },
                    specialty,
                    isolation,
                    urgency,
                    limit,
                    bounds,
                }
            },
        )
}

fn match_policy() -> impl Strategy<Value = MatchPolicy> + Clone {
    (
        prop::collection::vec(prop_oneof![3 => 0u64..5_000, 1 => any::<u64>()], 7),
        any::<u16>(),
    )
        .prop_map(|(w, k)| MatchPolicy {
            urgent_cost_per_minute: w[0],
            urgent_load_cost: w[1],
            routine_travel_cost_per_minute: w[2],
            routine_wait_cost_per_minute: w[3],
            routine_tier_step_cost: w[4],
            routine_non_alliance_cost: w[5],
            routine_load_cost: w[6],
            candidates_per_request: k % 80,
        })
}

/// The fixture's region file, or one with random records added (often refused).
fn region_file() -> impl Strategy<Value = RegionFile> + Clone {
    prop_oneof![3 => Just(super::fixture::region_file()), 1 => mutated_region_file()]
}

fn mutated_region_file() -> impl Strategy<Value = RegionFile> + Clone {
    (
        prop::collection::vec(hospital(), 0..4),
        prop::collection::vec(ward(), 0..3),
        prop::collection::vec(doctor(), 0..3),
        policy(),
    )
        .prop_map(|(hospitals, wards, doctors, policy)| {
            let mut f = super::fixture::region_file();
            f.hospitals.extend(hospitals);
            f.wards.extend(
                wards
                    .into_iter()
                    .map(|ward| region_file::WardEntry { ward, beds: 2 }),
            );
            f.doctors.extend(doctors);
            f.policy = policy;
            f
        })
}

/// The bed, ward and slot side of the vocabulary.
fn bed_and_slot_command() -> impl Strategy<Value = Command> + Clone {
    use Command::*;
    let ward_id = small_or_any_u32().prop_map(WardId);
    let bed_id = small_or_any_u32().prop_map(BedId);
    let target = prop_oneof![1 => ward_id.clone().prop_map(BedTarget::Ward), 1 => bed_id.clone().prop_map(BedTarget::Bed)];
    prop_oneof![
        1 => (ward_id.clone(), small_or_any_u32()).prop_map(|(ward, count)| AddBeds { ward, count }),
        1 => (ward_id, small_or_any_u32()).prop_map(|(ward, staffed_beds)| SetStaffedBeds { ward, staffed_beds }),
        1 => (target.clone(), patient(), ms(), referral_id()).prop_map(|(target, patient, ttl_ms, referral)| HoldBedForReferral { target, patient, ttl_ms, referral }),
        1 => patient().prop_map(|patient| UnblockPatient { patient }),
        1 => (bed_id.clone(), variant::<BlockReason>()).prop_map(|(bed, reason)| BlockBed { bed, reason }),
        1 => bed_id.clone().prop_map(|bed| UnblockBed { bed }),
        1 => bed_id.clone().prop_map(|bed| MarkBedClean { bed }),
        1 => bed_id.prop_map(|bed| Discharge { bed }),
        4 => (target, patient(), ms()).prop_map(|(target, patient, ttl_ms)| HoldBed { target, patient, ttl_ms }),
        2 => hold_id().prop_map(|hold| ConfirmHold { hold }),
        2 => hold_id().prop_map(|hold| ReleaseHold { hold }),
        2 => (doctor_id(), prop::collection::vec(slot_spec(), 0..3)).prop_map(|(doctor, slots)| PublishSchedule { doctor, slots }),
        2 => (slot_id(), seat_limits()).prop_map(|(slot, seats)| AmendSlot { slot, seats }),
        2 => (prop::collection::vec(slot_id(), 0..4), any::<bool>()).prop_map(|(slots, cancel_bookings)| WithdrawSlots { slots, cancel_bookings }),
        2 => (doctor_id(), weekly_template(), time()).prop_map(|(doctor, template, from)| SetWeeklyTemplate { doctor, template, from }),
        4 => (slot_id(), patient(), variant::<Channel>(), prop::option::of(referral_id())).prop_map(|(slot, patient, channel, referral)| HoldSlot { slot, patient, channel, referral }),
        2 => (slot_id(), patient(), variant::<Channel>(), ms(), prop::option::of(referral_id())).prop_map(|(slot, patient, channel, ttl_ms, referral)| HoldSlotFor { slot, patient, channel, ttl_ms, referral }),
        2 => hold_id().prop_map(|hold| BookSlot { hold }),
        1 => hold_id().prop_map(|hold| ReleaseSlot { hold }),
        1 => hold_id().prop_map(|booking| CancelBooking { booking }),
        1 => hold_id().prop_map(|booking| MarkNoShow { booking }),
        1 => hold_id().prop_map(|hold| CancelSeat { hold }),
        1 => (doctor_id(), patient(), variant::<Channel>(), prop::option::of(referral_id())).prop_map(|(doctor, patient, channel, referral)| JoinWaitlist { doctor, patient, channel, referral }),
        1 => (doctor_id(), patient()).prop_map(|(doctor, patient)| LeaveWaitlist { doctor, patient }),
        2 => (prop::collection::vec(slot_id(), 2), patient()).prop_map(|(slots, patient)| HoldJointConsult { slots, patient }),
        1 => (prop::collection::vec(slot_id(), 0..10), patient()).prop_map(|(slots, patient)| HoldJointConsult { slots, patient }),
        1 => engine_id().prop_map(|c| BookJointConsult { consult: ConsultId(c) }),
        1 => engine_id().prop_map(|c| ReleaseJointConsult { consult: ConsultId(c) }),
        1 => engine_id().prop_map(|c| CancelJointConsult { consult: ConsultId(c) }),
        2 => (prop::collection::vec(doctor_id(), 2), window(), 0u16..90, patient(), prop_oneof![Just(0u64), ms()]).prop_map(
            |(doctors, (earliest, latest), duration_minutes, patient, ttl_ms)| HoldJointConsultIn { doctors, earliest, latest, duration_minutes, patient, ttl_ms }
        ),
        1 => (prop::collection::vec(doctor_id(), 0..10), window(), any::<u16>(), patient(), ms()).prop_map(
            |(doctors, (earliest, latest), d, patient, ttl_ms)| HoldJointConsultIn { doctors, earliest, latest, duration_minutes: d % 600, patient, ttl_ms }
        ),
    ]
}

/// Ticks, admin, referrals and matching.
fn other_command() -> impl Strategy<Value = Command> + Clone {
    use Command::*;
    prop_oneof![
        3 => Just(Tick),
        1 => region_file().prop_map(|f| ImportRegion(Box::new(f))),
        1 => hospital().prop_map(UpsertHospital),
        1 => (small_or_any_u32(), text(), variant::<AllianceKind>()).prop_map(|(id, name, kind)| UpsertAlliance(Alliance { id: AllianceId(id), name, kind })),
        1 => ward().prop_map(UpsertWard),
        1 => doctor().prop_map(UpsertDoctor),
        1 => (hospital_id(), hospital_id(), proptest::option::of(small_or_any_u32())).prop_map(|(a, b, m)| SetTravel { a, b, travel_minutes: m }),
        1 => (hospital_id(), hospital_id(), proptest::option::of(variant::<ReferralKind>())).prop_map(|(from, to, kind)| SetReferralPath { from, to, kind }),
        1 => policy().prop_map(SetPolicy),
        1 => match_policy().prop_map(SetMatchPolicy),
        2 => (hospital_id(), proptest::option::of(hospital_id()), patient()).prop_map(|(from, to, patient)| RequestReferral { from, to, patient }),
        2 => (referral_id(), variant::<Specialty>(), variant::<Urgency>()).prop_map(|(referral, specialty, urgency)| TriageReferral { referral, specialty, urgency }),
        2 => (referral_id(), proptest::option::of(hold_id()), proptest::option::of(hold_id())).prop_map(|(referral, slot_hold, bed_hold)| MatchReferral { referral, slot_hold, bed_hold }),
        1 => (referral_id(), text()).prop_map(|(referral, reason)| ReportNoCapacity { referral, reason }),
        1 => referral_id().prop_map(|referral| AcceptReferral { referral }),
        1 => referral_id().prop_map(|referral| StartTransit { referral }),
        1 => referral_id().prop_map(|referral| AdmitReferral { referral }),
        1 => referral_id().prop_map(|referral| CompleteReferral { referral }),
        1 => (referral_id(), text()).prop_map(|(referral, reason)| RejectReferral { referral, reason }),
        1 => (referral_id(), text()).prop_map(|(referral, reason)| CancelReferral { referral, reason }),
        4 => (slot_query(), patient(), prop::option::of(referral_id())).prop_map(|(query, patient, referral)| AllocateSlot { query, patient, referral }),
        3 => (bed_query(), ms(), patient()).prop_map(|(query, ttl_ms, patient)| AllocateBed { query, ttl_ms, patient }),
        2 => (bed_query(), ms(), patient(), referral_id()).prop_map(|(query, ttl_ms, patient, referral)| AllocateBedForReferral { query, ttl_ms, patient, referral }),
        2 => (hospital_id(), proptest::option::of(hospital_id()), patient(), proptest::option::of(variant::<ReferralKind>()), (proptest::option::of(code()), proptest::option::of(text()))).prop_map(
            |(from, to, patient, direction, (reason_code, note))| RequestReferralWith { from, to, patient, direction, reason_code, note }
        ),
        2 => (referral_id(), variant::<Specialty>(), variant::<Urgency>(), text()).prop_map(|(referral, specialty, urgency, note)| TriageReferralNoted { referral, specialty, urgency, note }),
        1 => (referral_id(), code()).prop_map(|(referral, outcome)| CompleteReferralWith { referral, outcome }),
        2 => (referral_id(), region_key(), ward_id(), ms()).prop_map(|(referral, region, ward, ttl_ms)| HoldRemoteBed { referral, region, ward, ttl_ms }),
        2 => (referral_id(), small_or_any_u32(), remote_outcome()).prop_map(|(referral, attempt, outcome)| RecordRemote { referral, attempt, outcome }),
        2 => (region_key(), any::<u128>(), ward_id(), patient(), ms()).prop_map(|(origin, step, ward, patient, ttl_ms)| HoldBedForRegion { origin, step: RequestId(step % 4), ward, patient, ttl_ms }),
    ]
}

/// A region id: mostly valid, sometimes not.
fn region_key() -> impl Strategy<Value = String> + Clone {
    prop_oneof![4 => "[a-z]{1,8}", 1 => text()]
}

/// Another region's answer to a step, as the driver records it.
fn remote_outcome() -> impl Strategy<Value = ninety_engine::remote::RemoteOutcome> + Clone {
    use ninety_engine::remote::RemoteOutcome as O;
    prop_oneof![
        hold_id().prop_map(|hold| O::Held { hold }),
        text().prop_map(|reason| O::Refused { reason }),
        Just(O::Confirmed),
        Just(O::Released),
        text().prop_map(|reason| O::Stuck { reason }),
    ]
}

/// A reason or outcome code: mostly valid ("I21.4", "discharged"), sometimes not.
fn code() -> impl Strategy<Value = String> + Clone {
    prop_oneof![
        3 => "[A-Za-z0-9._:/-]{1,32}",
        1 => text(),
    ]
}

pub(super) fn command() -> impl Strategy<Value = Command> + Clone {
    prop_oneof![bed_and_slot_command(), other_command()]
}

fn read() -> impl Strategy<Value = Read> + Clone {
    prop_oneof![
        1 => (doctor_id(), time(), time()).prop_map(|(d, a, b)| Read::DoctorSlots(d, a, b)),
        1 => (proptest::option::of(doctor_id()), time(), time(), variant::<Channel>(), small_or_any_u64()).prop_map(
            |(doctor, from, to, channel, limit)| Read::FindSlots { doctor, from, to, channel, limit }
        ),
        2 => slot_query().prop_map(Read::MatchSpecialist),
        2 => bed_query().prop_map(Read::MatchBeds),
        1 => (doctor_id(), prop::collection::vec(slot_spec(), 0..4), time()).prop_map(|(d, s, t)| Read::CheckSchedule(d, s, t)),
        1 => (slot_id(), patient(), variant::<Channel>(), time()).prop_map(|(s, p, c, t)| Read::CheckSlotHoldable(s, p, c, t)),
        1 => (hold_id(), time(), any::<bool>()).prop_map(|(h, t, a)| Read::CheckHeld(h, t, a)),
        1 => (hold_id(), time()).prop_map(|(h, t)| Read::CheckCancellable(h, t)),
        1 => (hold_id(), time()).prop_map(|(h, t)| Read::CheckPending(h, t)),
        1 => (patient(), time()).prop_map(|(p, t)| Read::Blocked(p, t)),
        1 => proptest::option::of(hospital_id()).prop_map(Read::Worklist),
        1 => (hospital_id(), hospital_id()).prop_map(|(a, b)| Read::Travel(a, b)),
        1 => (referral_id(), prop::collection::vec(variant::<ReferralState>(), 0..3)).prop_map(|(r, s)| Read::CheckReferral(r, s)),
        1 => small_or_any_u32().prop_map(|w| Read::PickBed(WardId(w))),
    ]
}

/// Request ids: mostly fresh, some repeated (replays and reuse), some anywhere.
fn request_id() -> impl Strategy<Value = u128> + Clone {
    prop_oneof![3 => 1u128..4_000_000, 1 => 1u128..6, 1 => any::<u128>()]
}

fn op() -> impl Strategy<Value = Op> + Clone {
    prop_oneof![
        6 => (request_id(), command()).prop_map(|(id, command)| Op::Apply { id, command }),
        8 => (request_id(), any::<u8>(), command()).prop_map(|(id, pick, command)| Op::Aimed { id, pick: pick % 4, command }),
        1 => prop::collection::vec((request_id(), command()), 0..6).prop_map(Op::Batch),
        2 => prop::collection::vec((request_id(), (slot_query(), patient()).prop_map(|(query, patient)| Command::AllocateSlot { query, patient, referral: None })), 2..6).prop_map(Op::Batch),
        3 => clock_step().prop_map(Op::Advance),
        1 => prop_oneof![3 => EPOCH.0 - 3_600_000..EPOCH.0 + 3_600_000, 1 => any::<u64>()].prop_map(Op::At),
        3 => read().prop_map(Op::Read),
        1 => Just(Op::Restore),
    ]
}

/// A run: the structured ops, one in eight of them on an empty engine that first imports
/// a region (the fixture's, or a mutated one that may be refused).
pub(super) fn ops() -> impl Strategy<Value = Vec<Op>> {
    (
        prop::bool::weighted(0.125),
        region_file(),
        prop::collection::vec(op(), 1..OPS_PER_CASE_MAX),
        (lifecycle(), any::<prop::sample::Index>()),
    )
        .prop_map(|(empty, file, mut ops, (chain, at))| {
            let import = Op::Apply {
                id: 1 << 100,
                command: Command::ImportRegion(Box::new(file)),
            };
            let start = if empty {
                vec![Op::Empty, import]
            } else {
                Vec::new()
            };
            // The lifecycle lands somewhere in the run; random ops before and after it.
            let at = at.index(ops.len() + 1);
            ops.splice(at..at, chain);
            start.into_iter().chain(ops).collect()
        })
}

/// A lifecycle the random ops rarely complete on their own, cut at a random step: a
/// referral held, matched, accepted, in transit, admitted and completed; or a joint
/// consultation of the two remote doctors held and then booked or released.
fn lifecycle() -> impl Strategy<Value = Vec<Op>> {
    use Command::*;
    let referral = |patient: PatientRef, bed: bool| {
        let hold = if bed {
            HoldBed {
                target: BedTarget::Ward(WardId(1)),
                patient,
                ttl_ms: 3_600_000,
            }
        } else {
            HoldSlot {
                slot: SlotId(1),
                patient,
                channel: Channel::Referral,
                referral: None,
            }
        };
        let r = ReferralId(0);
        let (slot_hold, bed_hold) = if bed {
            (None, Some(HoldId(0)))
        } else {
            (Some(HoldId(0)), None)
        };
        vec![
            RequestReferral {
                from: HospitalId(1),
                to: Some(HospitalId(3)),
                patient,
            },
            TriageReferral {
                referral: r,
                specialty: Specialty::Cardiology,
                urgency: Urgency::P2,
            },
            hold,
            MatchReferral {
                referral: r,
                slot_hold,
                bed_hold,
            },
            AcceptReferral { referral: r },
            StartTransit { referral: r },
            AdmitReferral { referral: r },
            CompleteReferral { referral: r },
        ]
    };
    let joint = |patient: PatientRef, book: bool| {
        let end = if book {
            BookJointConsult {
                consult: ConsultId(0),
            }
        } else {
            ReleaseJointConsult {
                consult: ConsultId(0),
            }
        };
        vec![
            HoldJointConsult {
                slots: vec![SlotId(3), SlotId(7)],
                patient,
            },
            end,
        ]
    };
    (
        patient(),
        any::<bool>(),
        any::<bool>(),
        0usize..9,
        1u128..1 << 20,
    )
        .prop_map(move |(patient, kind, flag, steps, id)| {
            let commands = if kind {
                referral(patient, flag)
            } else {
                joint(patient, flag)
            };
            // `Aimed` with pick 0 names the newest referral, hold and consultation.
            let aimed = |(i, command): (usize, Command)| Op::Aimed {
                id: id + i as u128,
                pick: 0,
                command,
            };
            commands
                .into_iter()
                .take(steps)
                .enumerate()
                .map(aimed)
                .collect()
        })
}

fn run(ops: &[Op]) -> Result<(), TestCaseError> {
    let mut h = Harness::new();
    h.run(ops).map_err(TestCaseError::fail)
}

/// Cases per property in `cargo test`: a few seconds. `NINETY_TOTALITY_CASES` runs more
/// (`docs/fuzzing.md`).
const CASES_DEFAULT: u32 = 128;
/// Ops in one structured case: long enough to chain hold, match, accept, admit.
const OPS_PER_CASE_MAX: usize = 160;
/// Command variants the structured generator must see accepted in `CASES_DEFAULT` runs.
const ACCEPTED_VARIANTS_MIN: usize = 40;

pub(super) fn cases() -> u32 {
    std::env::var("NINETY_TOTALITY_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(CASES_DEFAULT)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(), max_shrink_iters: 4_000, ..ProptestConfig::default() })]

    /// Random bytes, decoded into ops: every variant and field value, no region knowledge.
    #[test]
    fn random_bytes_never_break_the_engine(bytes in prop::collection::vec(any::<u8>(), 0..4_096)) {
        run(&harness::ops_from_bytes(&bytes))?;
    }

    /// Structured ops with unconstrained numbers mixed with the fixture's ids and times.
    #[test]
    fn any_command_sequence_keeps_the_engine_total(ops in ops()) {
        run(&ops)?;
    }
}

/// An allocation whose window lies wholly in the past once the clock has passed it.
fn past_window_allocation() -> Command {
    Command::AllocateSlot {
        query: SlotQuery {
            origin: Origin::Hospital(HospitalId(1)),
            specialty: Specialty::Cardiology,
            urgency: Urgency::P3,
            language: None,
            mode: Mode::InPerson,
            earliest: LogTime(1),
            latest: LogTime(1_000),
            channel: Channel::Public,
            limit: 3,
            bounds: ninety_engine::matching::Bounds::NONE,
        },
        patient: PatientRef(7),
        referral: None,
    }
}

/// Issue 11: `AllocateSlot` with the window {1, 1000} panicked inside apply (`rank_slots`
/// searched `[now + 1, 1001)`), killing every replica and again on every restart.
#[test]
fn regression_allocation_with_a_window_in_the_past_is_refused() {
    let mut h = Harness::new();
    let before = h.engine.state_hash();
    let outcome = h.engine.apply(
        &Request {
            id: RequestId(9),
            command: past_window_allocation(),
        },
        EPOCH,
    );
    assert!(
        matches!(outcome, Err(Rejection::NoCapacity(_))),
        "{outcome:?}"
    );
    assert_eq!(before, h.engine.state_hash());
    // Through a batch too (the planner ranks the run first).
    let batch = [
        (10, past_window_allocation()),
        (11, past_window_allocation()),
    ];
    run(&[Op::Batch(batch.to_vec())]).unwrap();
}

/// Issue 11: `FindSlots{doctor_id: 2, window: {1, 1000}}` aborted the node serving it: the
/// search ran `doctor_slots(d, now + 1, 1000)`, an inverted `BTreeSet` range.
#[test]
fn regression_slot_search_with_a_window_in_the_past_is_empty() {
    let h = Harness::new();
    let slots = h.engine.slots();
    assert_eq!(
        slots
            .doctor_slots(DoctorId(2), EPOCH.plus_ms(1), LogTime(1_000))
            .count(),
        0
    );
    assert_eq!(
        slots
            .doctor_slots(DoctorId(2), LogTime(u64::MAX), LogTime(0))
            .count(),
        0
    );
    let find = Read::FindSlots {
        doctor: Some(DoctorId(2)),
        from: LogTime(1),
        to: LogTime(1_000),
        channel: Channel::Public,
        limit: 3,
    };
    let query = |earliest, latest| SlotQuery {
        earliest: LogTime(earliest),
        latest: LogTime(latest),
        ..match past_window_allocation() {
            Command::AllocateSlot { query, .. } => query,
            _ => unreachable!("built above"),
        }
    };
    let reads = [
        find,
        Read::MatchSpecialist(query(1, 1_000)),
        Read::MatchSpecialist(query(u64::MAX, u64::MAX)),
    ];
    run(&reads.map(Op::Read)).unwrap();
}

/// A few meaningful lifecycles: bed holds, seats, a referral, a batch of allocations.
fn seed_runs() -> Vec<Vec<Op>> {
    let hold = |id, ward| Op::Apply {
        id,
        command: Command::HoldBed {
            target: BedTarget::Ward(WardId(ward)),
            patient: PatientRef(id),
            ttl_ms: 60_000,
        },
    };
    let seat = |id, slot, channel| Op::Apply {
        id,
        command: Command::HoldSlot {
            slot: SlotId(slot),
            patient: PatientRef(id),
            channel,
            referral: None,
        },
    };
    let refer = Op::Apply {
        id: 20,
        command: Command::RequestReferral {
            from: HospitalId(1),
            to: Some(HospitalId(3)),
            patient: PatientRef(5),
        },
    };
    let triage = Op::Apply {
        id: 21,
        command: Command::TriageReferral {
            referral: ReferralId(1),
            specialty: Specialty::Cardiology,
            urgency: Urgency::P2,
        },
    };
    vec![
        vec![
            hold(1, 1),
            hold(2, 1),
            Op::Apply {
                id: 3,
                command: Command::ConfirmHold { hold: HoldId(1) },
            },
            Op::Advance(120_000),
            Op::Apply {
                id: 4,
                command: Command::Tick,
            },
        ],
        vec![
            seat(1, 1, Channel::Public),
            seat(2, 1, Channel::Referral),
            Op::Apply {
                id: 3,
                command: Command::BookSlot { hold: HoldId(1) },
            },
            Op::Restore,
        ],
        vec![
            refer,
            triage,
            hold(5, 1),
            Op::Apply {
                id: 22,
                command: Command::MatchReferral {
                    referral: ReferralId(1),
                    slot_hold: None,
                    bed_hold: Some(HoldId(1)),
                },
            },
        ],
        vec![
            Op::Batch(vec![
                (1, past_window_allocation()),
                (2, past_window_allocation()),
            ]),
            Op::Read(Read::Worklist(None)),
        ],
    ]
}

/// Writes a few meaningful runs, postcard-encoded, as seeds for the fuzzer when
/// `NINETY_FUZZ_SEED_DIR` is set (`docs/fuzzing.md`); always checks that they run clean.
#[test]
fn fuzz_seed_runs_are_clean() {
    for (i, ops) in seed_runs().iter().enumerate() {
        run(ops).unwrap();
        write_seed(&format!("seed-{i}"), ops);
    }
    // And structured runs, which reach deep states the fuzzer would take long to find.
    if std::env::var_os("NINETY_FUZZ_SEED_DIR").is_some() {
        use proptest::strategy::ValueTree;
        let mut runner = proptest::test_runner::TestRunner::deterministic();
        for i in 0..FUZZ_STRUCTURED_SEEDS {
            let ops = ops().new_tree(&mut runner).unwrap().current();
            write_seed(&format!("structured-{i}"), &ops);
        }
    }
}

/// Structured runs written as fuzz seeds.
const FUZZ_STRUCTURED_SEEDS: usize = 64;

/// Writes a run, postcard-encoded op after op, into `NINETY_FUZZ_SEED_DIR` if it is set.
fn write_seed(name: &str, ops: &[Op]) {
    if let Some(dir) = std::env::var_os("NINETY_FUZZ_SEED_DIR") {
        let bytes: Vec<u8> = ops
            .iter()
            .flat_map(|op| postcard::to_stdvec(op).unwrap())
            .collect();
        std::fs::write(std::path::Path::new(&dir).join(name), bytes).unwrap();
    }
}

/// The structured generator reaches the success path of nearly every command, not only
/// refusals: a search that only ever sees rejections proves little. Prints the table.
#[test]
fn structured_runs_reach_accepted_commands() {
    use proptest::strategy::ValueTree;
    use proptest::test_runner::TestRunner;
    let mut runner = TestRunner::deterministic();
    let strategy = ops();
    let mut stats = std::collections::BTreeMap::new();
    for _ in 0..cases() {
        let ops = strategy.new_tree(&mut runner).unwrap().current();
        let mut h = Harness::new();
        h.stats = Some(stats);
        h.run(&ops).unwrap();
        stats = h.stats.take().unwrap_or_default();
    }
    for (name, (ok, refused)) in &stats {
        println!("{name:>24} accepted {ok:>6} refused {refused:>6}");
    }
    let accepted = stats.values().filter(|(ok, _)| *ok > 0).count();
    assert!(
        accepted >= ACCEPTED_VARIANTS_MIN,
        "only {accepted} command variants were ever accepted"
    );
}

/// A region import is bounded before anything is built: many wards of the largest size
/// would otherwise allocate millions of beds inside apply, on every replica.
#[test]
fn an_oversized_region_import_is_refused_before_it_is_built() {
    use ninety_engine::limits::{BEDS_PER_REGION_MAX, BEDS_PER_WARD_MAX};
    let mut file = super::fixture::region_file();
    let template = file.wards[0].clone();
    let wards = BEDS_PER_REGION_MAX / BEDS_PER_WARD_MAX + 1;
    file.wards = (0..wards)
        .map(|i| region_file::WardEntry {
            ward: Ward {
                id: WardId(i as u32 + 1),
                ..template.ward.clone()
            },
            beds: BEDS_PER_WARD_MAX as u32,
        })
        .collect();
    let mut engine = Engine::new();
    let before = engine.state_hash();
    let outcome = engine.apply(
        &Request {
            id: RequestId(1),
            command: Command::ImportRegion(Box::new(file)),
        },
        EPOCH,
    );
    assert!(
        matches!(&outcome, Err(Rejection::Invalid { field, .. }) if field == "wards"),
        "{outcome:?}"
    );
    assert_eq!(before, engine.state_hash());
}

/// Found by the structured property test: with `resolved_retention_ms` 0 a tick expires a
/// bed hold and prunes it at once; the view's refresh looked the hold up afterwards, found
/// nothing and left the ward showing the bed in use.
#[test]
fn regression_a_tick_that_expires_and_prunes_a_hold_refreshes_the_view() {
    let policy = Policy {
        resolved_retention_ms: 0,
        ..Policy::default()
    };
    let hold = Command::HoldBed {
        target: BedTarget::Bed(BedId(1)),
        patient: PatientRef(0),
        ttl_ms: 1_000,
    };
    let ops = [
        Op::Apply {
            id: 1,
            command: hold,
        },
        Op::Apply {
            id: 2,
            command: Command::SetPolicy(policy),
        },
        Op::Advance(1_000),
        Op::Apply {
            id: 3,
            command: Command::Tick,
        },
    ];
    run(&ops).unwrap();
}

/// Found by review: a slot far in the future waits `u32::MAX` minutes (clamped), and an
/// urgent candidate's explanation added the travel minutes to it without saturating (an overflow
/// panic inside apply in a build with overflow checks).
#[test]
fn regression_a_far_future_slot_is_ranked_without_overflow() {
    let start = LogTime(u64::MAX / 2);
    let publish = Command::PublishSchedule {
        doctor: DoctorId(2),
        slots: vec![SlotSpec {
            start,
            duration_minutes: 30,
            mode: Mode::InPerson,
            capacity: 2,
            overbook: 0,
            referral_quota: 0,
        }],
    };
    let mut allocate = past_window_allocation();
    if let Command::AllocateSlot { query, .. } = &mut allocate {
        query.earliest = start;
        query.latest = start.plus_ms(3_600_000);
        // Urgent explanations add travel and wait.
        query.urgency = Urgency::P1;
    }
    let mut h = Harness::new();
    h.run(&[Op::Apply {
        id: 1,
        command: publish,
    }])
    .unwrap();
    let request = Request {
        id: RequestId(2),
        command: allocate,
    };
    let outcome = h.engine.apply(&request, EPOCH);
    assert!(
        matches!(
            outcome,
            Ok(Reply::SlotAllocated {
                wait_minutes: u32::MAX,
                travel_minutes: 30,
                ..
            })
        ),
        "{outcome:?}"
    );
}

/// Found by review: a record's list fields were unbounded, and the region index and the
/// view build entries per item; a doctor with a million specialties fits in one message.
#[test]
fn a_record_with_a_huge_list_is_refused() {
    let mut doctor = super::fixture::doctor(9, 1, false);
    doctor.specialties = vec![Specialty::Cardiology; 100_000];
    let mut h = Harness::new();
    let before = h.engine.state_hash();
    let request = Request {
        id: RequestId(1),
        command: Command::UpsertDoctor(doctor),
    };
    let outcome = h.engine.apply(&request, EPOCH);
    assert!(
        matches!(&outcome, Err(Rejection::Invalid { field, .. }) if field == "doctor.specialties"),
        "{outcome:?}"
    );
    assert_eq!(before, h.engine.state_hash());
}
