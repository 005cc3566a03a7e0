//! The reads a platform needs, end to end through the real binary on a secure 3-node GBA
//! cluster (issue 14, item 3): ward availability with to-clean, blocked-by-reason and
//! staffed beds and NOT_FOUND for unknown wards; a booking by id; a patient's bookings and
//! bed holds; a joint consultation by id and its cancellation once booked; waitlists by doctor and by patient; the reach of
//! a hospital; the region-wide worklist filtered by reason, with the referral's reason.
//!
//! Run: `cargo test -p ninety --test cluster reads`.

use crate::harness::*;
use ninety_engine::generate;
use ninety_proto::v1 as pb;
use ninety_proto::v1::{referrals_client::ReferralsClient, scheduling_client::SchedulingClient};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tonic::transport::Channel;
use tonic::Code;

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

fn rid(tag: &str) -> String {
    format!("reads-{tag}-{}", ninety_client::new_request_id())
}

fn patient(n: u64) -> String {
    format!("{:032x}", 0x4ead_0000_u64 + n)
}

/// Asserts the refusal's code and the field its `Rejection` names.
fn refused<T: std::fmt::Debug>(r: Result<T, tonic::Status>, code: Code, field: &str) {
    let s = r.expect_err("expected a refusal");
    assert_eq!(s.code(), code, "{s:?}");
    let named = ninety_client::rejection(&s).unwrap_or_default().field;
    assert_eq!(named, field, "{s:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_platform_reads_answer_through_the_api() {
    crate::bounded(async {
        let region = generate::region(generate::Preset::Gba, generate::DEFAULT_SEED);
        let opts = Opts {
            region: Some("gba"),
            ..Opts::default()
        };
        let p = Procs::start(&[1, 2, 3], &[1, 2, 3], opts);
        let leader = p.wait_ready(Duration::from_secs(30)).await;
        wards(&p, leader, &region).await;
        list_wards(&p, leader, &region).await;
        bookings(&p, leader, &region).await;
        referrals(&p, leader, &region).await;
    })
    .await;
}

/// Ward availability: a hospital's wards, the counts adding up with to-clean apart, the
/// staffed beds, and NOT_FOUND for an unknown hospital or a ward not of that hospital.
async fn wards(p: &Procs, node: u64, region: &ninety_engine::RegionFile) {
    let mut beds = p.beds(node);
    let entry = &region.wards[0];
    let hospital = entry.ward.hospital.0;
    let ask = |hospital_id, ward_ids| pb::WardAvailabilityRequest {
        hospital_id,
        ward_ids,
        consistency: 0,
    };
    let all = beds
        .ward_availability(ask(hospital, vec![]))
        .await
        .expect("ward availability")
        .into_inner();
    let expected = region
        .wards
        .iter()
        .filter(|w| w.ward.hospital.0 == hospital)
        .count();
    assert_eq!(all.wards.len(), expected);
    let w = all
        .wards
        .iter()
        .find(|w| w.ward_id == entry.ward.id.0)
        .expect("the ward");
    assert_eq!(w.total_beds, entry.beds);
    assert_eq!(w.staffed_beds, entry.ward.staffed_beds);
    let by_reason = w.blocked.expect("blocked by reason");
    assert_eq!(
        by_reason.isolation + by_reason.maintenance + by_reason.no_staff + by_reason.unstaffed,
        w.blocked_beds
    );
    assert_eq!(
        w.free_beds + w.held_beds + w.occupied_beds + w.to_clean_beds + w.blocked_beds,
        w.total_beds
    );
    let other = region
        .wards
        .iter()
        .find(|w| w.ward.hospital.0 != hospital)
        .expect("another hospital's ward");
    let r = beds
        .ward_availability(ask(hospital, vec![other.ward.id.0]))
        .await;
    assert_eq!(r.expect_err("not its ward").code(), Code::NotFound);
    let r = beds.ward_availability(ask(9_999_999, vec![])).await;
    assert_eq!(r.expect_err("unknown hospital").code(), Code::NotFound);
}

/// `ListWards`: the region's wards page by page (every ward once, by id, records as in
/// the region file), a hospital's, NOT_FOUND for an unknown hospital, a bad `limit`
/// refused naming it.
async fn list_wards(p: &Procs, node: u64, region: &ninety_engine::RegionFile) {
    let mut beds = p.beds(node);
    let ask = |hospital_id, after_ward_id, limit| pb::ListWardsRequest {
        hospital_id,
        after_ward_id,
        limit,
        consistency: 0,
    };
    let mut seen = Vec::new();
    let mut after = 0;
    loop {
        let page = beds
            .list_wards(ask(0, after, 7))
            .await
            .expect("a page of the region's wards")
            .into_inner();
        assert!(page.wards.len() <= 7);
        for listed in &page.wards {
            let (ward, counts) = (listed.ward.as_ref(), listed.availability.as_ref());
            let (ward, counts) = (ward.expect("record"), counts.expect("counts"));
            assert_eq!(ward.ward_id, counts.ward_id);
            seen.push((ward.ward_id, ward.hospital_id, ward.name.clone()));
        }
        if page.next_after_ward_id == 0 {
            break;
        }
        after = page.next_after_ward_id;
    }
    let mut expected: Vec<_> = region
        .wards
        .iter()
        .map(|w| (w.ward.id.0, w.ward.hospital.0, w.ward.name.clone()))
        .collect();
    expected.sort();
    assert_eq!(seen, expected, "every ward once, by id");
    let hospital = region.wards[0].ward.hospital.0;
    let theirs = beds
        .list_wards(ask(hospital, 0, 0))
        .await
        .expect("a hospital's wards")
        .into_inner();
    let count = expected.iter().filter(|w| w.1 == hospital).count();
    assert_eq!(theirs.wards.len(), count);
    assert_eq!(theirs.next_after_ward_id, 0);
    let r = beds.list_wards(ask(9_999_999, 0, 0)).await;
    refused(r, Code::NotFound, "");
    refused(
        beds.list_wards(ask(0, 0, 501)).await,
        Code::InvalidArgument,
        "limit",
    );
}

/// Publishes one remote slot at `t` for `doctor`; returns its id.
async fn publish(sched: &mut SchedulingClient<Channel>, doctor: u32, t: u64) -> u64 {
    let spec = pb::SlotSpec {
        start_ms: t,
        duration_minutes: 60,
        mode: pb::Mode::Remote as i32,
        capacity: 3,
        referral_reserved: 0,
        cancel_before_minutes: 0,
        overbook: 0,
    };
    let r = sched
        .publish_schedule(pb::PublishScheduleRequest {
            request_id: rid("pub"),
            doctor_id: doctor,
            slots: vec![spec],
        })
        .await
        .expect("publish")
        .into_inner();
    r.slots[0].slot_id
}

/// A booking by id, a patient's bookings and bed holds, a joint consultation by id, and
/// waitlists by doctor and by patient.
async fn bookings(p: &Procs, node: u64, region: &ninety_engine::RegionFile) {
    let mut sched = SchedulingClient::new(p.channel(node));
    let remote: Vec<&ninety_engine::Doctor> =
        region.doctors.iter().filter(|d| d.remote).take(2).collect();
    let (a, b) = (remote[0].id.0, remote[1].id.0);
    let minute = 60_000;
    let t = (now_ms() / minute + 4 * 24 * 60) * minute;
    let slot_a = publish(&mut sched, a, t).await;
    publish(&mut sched, b, t).await;
    let held = sched
        .hold_slot(pb::HoldSlotRequest {
            request_id: rid("hold"),
            slot_id: slot_a,
            patient_ref: patient(1),
            channel: pb::Channel::Public as i32,
            ..Default::default()
        })
        .await
        .expect("hold slot")
        .into_inner();
    let seat = held.booking.expect("booking").hold_id;
    sched
        .book_slot(pb::BookSlotRequest {
            request_id: rid("book"),
            hold_id: seat,
        })
        .await
        .expect("book");
    let bed = p
        .beds(node)
        .hold_bed(pb::HoldBedRequest {
            request_id: rid("bed"),
            ward_id: region.wards[0].ward.id.0,
            patient_ref: patient(1),
            ttl_ms: 600_000,
            ..Default::default()
        })
        .await
        .expect("hold bed")
        .into_inner()
        .hold
        .expect("bed hold");

    let got = sched
        .get_booking(pb::GetBookingRequest {
            hold_id: seat,
            consistency: 0,
        })
        .await
        .expect("get booking")
        .into_inner();
    let booking = got.booking.expect("booking");
    assert_eq!(booking.state, pb::BookingState::Booked as i32);
    assert_eq!(
        (booking.slot_id, booking.patient_ref.clone()),
        (slot_a, patient(1))
    );
    let r = sched
        .get_booking(pb::GetBookingRequest {
            hold_id: 987_654_321,
            consistency: 0,
        })
        .await;
    refused(r, Code::NotFound, "");

    let mine = sched
        .list_patient_bookings(pb::ListPatientBookingsRequest {
            patient_ref: patient(1),
            limit: 0,
            consistency: 0,
        })
        .await
        .expect("list patient bookings")
        .into_inner();
    assert_eq!(
        mine.bookings.iter().map(|b| b.hold_id).collect::<Vec<_>>(),
        [seat]
    );
    assert_eq!(
        mine.bed_holds.iter().map(|h| h.hold_id).collect::<Vec<_>>(),
        [bed.hold_id]
    );
    assert!(!mine.truncated);
    let r = sched
        .list_patient_bookings(pb::ListPatientBookingsRequest {
            patient_ref: "not-a-ref".into(),
            limit: 0,
            consistency: 0,
        })
        .await;
    refused(r, Code::InvalidArgument, "patient_ref");
    let r = sched
        .list_patient_bookings(pb::ListPatientBookingsRequest {
            patient_ref: patient(1),
            limit: 100_000,
            consistency: 0,
        })
        .await;
    refused(r, Code::InvalidArgument, "limit");

    let consult = sched
        .hold_joint_consult(pb::HoldJointConsultRequest {
            request_id: rid("joint"),
            patient_ref: patient(2),
            doctor_ids: vec![a, b],
            window: Some(pb::TimeRange {
                start_ms: t,
                end_ms: t + 60 * minute,
            }),
            duration_minutes: 30,
            ttl_ms: 120_000,
            requesting_hospital_id: 0,
        })
        .await
        .expect("hold joint consult")
        .into_inner()
        .consult
        .expect("consult");
    let read = sched
        .get_joint_consult(pb::GetJointConsultRequest {
            consult_id: consult.consult_id,
            consistency: 0,
        })
        .await
        .expect("get joint consult")
        .into_inner()
        .consult
        .expect("consult");
    assert_eq!(read, consult);
    cancel_joint_consult(&mut sched, consult.consult_id).await;
    let r = sched
        .get_joint_consult(pb::GetJointConsultRequest {
            consult_id: 55_555,
            consistency: 0,
        })
        .await;
    refused(r, Code::NotFound, "");

    waitlists(&mut sched, a).await;
}

/// A booked joint consultation is cancelled whole; a second cancel is refused.
async fn cancel_joint_consult(sched: &mut SchedulingClient<Channel>, consult_id: u64) {
    sched
        .book_joint_consult(pb::BookJointConsultRequest {
            request_id: rid("book-joint"),
            consult_id,
        })
        .await
        .expect("book joint consult");
    let cancel = |tag| pb::CancelJointConsultRequest {
        request_id: rid(tag),
        consult_id,
        reason: "patient-recovered".into(),
    };
    let cancelled = sched
        .cancel_joint_consult(cancel("cancel-joint"))
        .await
        .expect("cancel joint consult")
        .into_inner()
        .consult
        .expect("consult");
    assert_eq!(cancelled.state, pb::ConsultState::Released as i32);
    let r = sched.cancel_joint_consult(cancel("cancel-again")).await;
    refused(r, Code::FailedPrecondition, "");
}

async fn waitlists(sched: &mut SchedulingClient<Channel>, doctor: u32) {
    for n in [3, 4] {
        sched
            .join_waitlist(pb::JoinWaitlistRequest {
                request_id: rid("wait"),
                doctor_id: doctor,
                patient_ref: patient(n),
                channel: pb::Channel::Public as i32,
                ..Default::default()
            })
            .await
            .expect("join waitlist");
    }
    let ask = |doctor_id, patient_ref: String| pb::ListWaitlistRequest {
        doctor_id,
        patient_ref,
        consistency: 0,
    };
    let queue = sched
        .list_waitlist(ask(doctor, String::new()))
        .await
        .expect("doctor's waitlist")
        .into_inner();
    let order: Vec<(String, u32)> = queue
        .entries
        .iter()
        .map(|e| (e.patient_ref.clone(), e.position))
        .collect();
    assert_eq!(order, [(patient(3), 1), (patient(4), 2)]);
    let theirs = sched
        .list_waitlist(ask(0, patient(4)))
        .await
        .expect("patient's waitlist")
        .into_inner();
    assert_eq!(theirs.entries.len(), 1);
    assert_eq!(
        (theirs.entries[0].doctor_id, theirs.entries[0].position),
        (doctor, 2)
    );
    let r = sched.list_waitlist(ask(doctor, patient(4))).await;
    refused(r, Code::InvalidArgument, "patient_ref");
    let r = sched.list_waitlist(ask(9_999_999, String::new())).await;
    refused(r, Code::NotFound, "");
}

/// Reach from a hospital, and the region-wide worklist filtered by reason, with the
/// referral's reason.
async fn referrals(p: &Procs, node: u64, region: &ninety_engine::RegionFile) {
    let mut refs = ReferralsClient::new(p.channel(node));
    let from = region.hospitals[0].id.0;
    let reach = refs
        .reach(pb::ReachRequest {
            from_hospital_id: from,
            max_travel_minutes: 90,
            consistency: 0,
        })
        .await
        .expect("reach")
        .into_inner();
    assert_eq!(reach.hospitals[0].hospital_id, from);
    assert_eq!(reach.hospitals[0].travel_minutes, 0);
    let minutes: Vec<u32> = reach.hospitals.iter().map(|h| h.travel_minutes).collect();
    assert!(minutes.windows(2).all(|w| w[0] <= w[1]), "{minutes:?}");
    assert!(minutes.iter().all(|m| *m <= 90), "{minutes:?}");
    let r = refs
        .reach(pb::ReachRequest {
            from_hospital_id: from,
            max_travel_minutes: 0,
            consistency: 0,
        })
        .await;
    refused(r, Code::InvalidArgument, "max_travel_minutes");

    let created = refs
        .request_referral(pb::RequestReferralRequest {
            request_id: rid("referral"),
            patient_ref: patient(5),
            from_hospital_id: from,
            ..Default::default()
        })
        .await
        .expect("request referral")
        .into_inner()
        .referral
        .expect("referral");
    assert_eq!(created.reason, "awaiting_triage");
    let list = |reasons: Vec<String>| pb::WorklistRequest {
        hospital_id: 0,
        reasons,
        limit: 500,
        ..Default::default()
    };
    let page = refs
        .worklist(list(vec!["awaiting_triage".into()]))
        .await
        .expect("region worklist")
        .into_inner();
    assert!(page
        .referrals
        .iter()
        .any(|r| r.referral_id == created.referral_id));
    assert!(page.referrals.iter().all(|r| r.reason == "awaiting_triage"));
    let page = refs
        .worklist(list(vec!["no_capacity".into()]))
        .await
        .expect("region worklist")
        .into_inner();
    assert!(page
        .referrals
        .iter()
        .all(|r| r.referral_id != created.referral_id));
    let r = refs.worklist(list(vec!["bogus".into()])).await;
    refused(r, Code::InvalidArgument, "reasons.0");
}
