//! Schedules over time through the real binary (issue 14, item 2): a doctor's slots
//! published for three days with an overbooking allowance, one amended, a booked one
//! withdrawn (refused until `cancel_bookings`, then the booking reads WITHDRAWN and the
//! change feed says why), and a weekly template publishing a rolling horizon. Writes are
//! sent twice with one request id (the retry is the first answer); bad input is refused
//! naming the field as sent.

use crate::harness::*;
use ninety_client::Client;
use ninety_proto::v1 as pb;
use std::future::Future;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tonic::{Code, Status};

const PATIENT: &str = "5c4ed0005c4ed0005c4ed0005c4ed000";
const DOCTOR: u32 = 9_101;
const DAY_MS: u64 = 24 * 60 * 60 * 1000;

fn id(tag: &str) -> String {
    format!("{tag}-{}", ninety_client::new_request_id())
}

fn client(p: &Procs) -> Client {
    p.client_of(&[1], Duration::from_secs(10))
}

/// Sends `request` twice: the second answer is the first, replayed.
async fn twice<Req, Resp, F, Fut>(
    request: Req,
    call: F,
    commit: fn(&mut Resp) -> Option<pb::CommitInfo>,
) -> (Resp, pb::CommitInfo)
where
    Req: Clone,
    Resp: PartialEq + std::fmt::Debug,
    F: Fn(Req) -> Fut,
    Fut: Future<Output = Result<Resp, Status>>,
{
    let mut first = call(request.clone()).await.expect("first answer");
    let mut again = call(request).await.expect("retried answer");
    let (a, b) = (commit(&mut first).unwrap(), commit(&mut again).unwrap());
    assert!(!a.replayed && b.replayed, "{a:?} then {b:?}");
    assert_eq!(a.log_index, b.log_index, "a replay names the first entry");
    assert_eq!(first, again, "the retry answers what the first call did");
    (first, a)
}

fn refused<T: std::fmt::Debug>(r: Result<T, Status>, code: Code, field: &str) {
    let s = r.expect_err("refused");
    assert_eq!(s.code(), code, "{s:?}");
    let rejection = ninety_client::rejection(&s).unwrap_or_default();
    assert_eq!(rejection.field, field, "{s:?}");
}

/// The next UTC midnight, Unix ms.
fn tomorrow_ms() -> u64 {
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap();
    (now.as_millis() as u64 / DAY_MS + 1) * DAY_MS
}

fn spec(start_ms: u64) -> pb::SlotSpec {
    pb::SlotSpec {
        start_ms,
        duration_minutes: 30,
        mode: pb::Mode::InPerson as i32,
        capacity: 1,
        referral_reserved: 0,
        cancel_before_minutes: 0,
        overbook: 1,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slots_are_published_amended_and_withdrawn_and_a_template_keeps_rolling() {
    crate::bounded(async {
        let p = Procs::start(&[1], &[1], Opts::default());
        p.wait_ready(Duration::from_secs(30)).await;
        let c = client(&p);
        let doctor = pb::UpsertDoctorRequest {
            request_id: id("doctor"),
            doctor: Some(pb::Doctor {
                doctor_id: DOCTOR,
                hospital_id: 1,
                specialties: vec!["cardiology".into()],
                sub_specialties: vec![],
                title: "chief".into(),
                languages: vec!["zh".into()],
                remote: false,
            }),
        };
        c.upsert_doctor(doctor).await.expect("doctor");
        let slots = publish_three_days(&c).await;
        amend(&c, &slots[0]).await;
        withdraw_a_booked_slot(&c, &slots[1]).await;
        template(&c).await;
    })
    .await;
}

async fn publish_three_days(c: &Client) -> Vec<pb::Slot> {
    let day = tomorrow_ms();
    let publish = pb::PublishScheduleRequest {
        request_id: id("publish"),
        doctor_id: DOCTOR,
        slots: (0..3).map(|d| spec(day + d * DAY_MS + 3_600_000)).collect(),
    };
    let (r, _) = twice(publish, |r| c.publish_schedule(r), |r| r.commit.take()).await;
    assert_eq!(r.slots.len(), 3);
    for (d, s) in r.slots.iter().enumerate() {
        assert_eq!(s.start_ms, day + d as u64 * DAY_MS + 3_600_000);
        assert_eq!((s.capacity, s.overbook, s.withdrawn_ms), (1, 1, 0), "{s:?}");
    }
    r.slots
}

async fn amend(c: &Client, slot: &pb::Slot) {
    let amend = pb::AmendSlotRequest {
        request_id: id("amend"),
        slot_id: slot.slot_id,
        capacity: 3,
        overbook: 2,
        referral_reserved: 1,
    };
    let (r, _) = twice(amend, |r| c.amend_slot(r), |r| r.commit.take()).await;
    let s = r.slot.expect("the slot");
    assert_eq!((s.capacity, s.overbook, s.referral_reserved), (3, 2, 1));
    let bad = pb::AmendSlotRequest {
        request_id: id("amend-bad"),
        slot_id: slot.slot_id,
        capacity: 1,
        overbook: 0,
        referral_reserved: 2,
    };
    refused(
        c.amend_slot(bad).await,
        Code::InvalidArgument,
        "referral_reserved",
    );
    let unknown = pb::AmendSlotRequest {
        request_id: id("amend-unknown"),
        slot_id: 987_654,
        capacity: 1,
        overbook: 0,
        referral_reserved: 0,
    };
    refused(c.amend_slot(unknown).await, Code::NotFound, "");
}

async fn withdraw_a_booked_slot(c: &Client, slot: &pb::Slot) {
    let held = c
        .hold_slot(pb::HoldSlotRequest {
            request_id: id("hold"),
            slot_id: slot.slot_id,
            patient_ref: PATIENT.into(),
            ttl_ms: 0,
            channel: pb::Channel::Public as i32,
            referral_id: 0,
        })
        .await
        .expect("hold")
        .booking
        .unwrap();
    c.book_slot(pb::BookSlotRequest {
        request_id: id("book"),
        hold_id: held.hold_id,
    })
    .await
    .expect("book");
    let ask = |cancel_bookings, request_id| pb::WithdrawSlotsRequest {
        request_id,
        slot_ids: vec![slot.slot_id],
        cancel_bookings,
        reason: "doctor_ill".into(),
    };
    refused(
        c.withdraw_slots(ask(false, id("withdraw-keep"))).await,
        Code::FailedPrecondition,
        "",
    );
    let (r, commit) = twice(
        ask(true, id("withdraw")),
        |r| c.withdraw_slots(r),
        |r| r.commit.take(),
    )
    .await;
    assert_eq!(r.cancelled_hold_ids, vec![held.hold_id]);
    assert!(r.slots[0].withdrawn_ms > 0, "{r:?}");
    let booking = c
        .get_booking(pb::GetBookingRequest {
            hold_id: held.hold_id,
            consistency: 0,
        })
        .await
        .expect("read")
        .booking
        .unwrap();
    assert_eq!(booking.state(), pb::BookingState::Withdrawn);
    assert_eq!(
        booking.start_ms, slot.start_ms,
        "the read keeps the slot's time"
    );
    let mine = c
        .list_patient_bookings(pb::ListPatientBookingsRequest {
            patient_ref: PATIENT.into(),
            limit: 0,
            consistency: 0,
        })
        .await
        .expect("list");
    assert_eq!(mine.bookings[0].state(), pb::BookingState::Withdrawn);
    feed_says_withdrawn(c, commit.log_index, held.hold_id).await;
    refused(
        c.withdraw_slots(ask(true, id("withdraw-again"))).await,
        Code::FailedPrecondition,
        "",
    );
    let dup = pb::WithdrawSlotsRequest {
        request_id: id("withdraw-dup"),
        slot_ids: vec![slot.slot_id, 0],
        cancel_bookings: true,
        reason: String::new(),
    };
    refused(
        c.withdraw_slots(dup).await,
        Code::InvalidArgument,
        "slot_ids.1",
    );
}

/// The change feed from the withdrawal's entry carries the booking's end and its reason.
async fn feed_says_withdrawn(c: &Client, index: u64, hold: u64) {
    let mut stream = c
        .watch(pb::WatchRequest {
            start_index: index,
            kinds: vec![pb::EventKind::Seat as i32],
            ..Default::default()
        })
        .await
        .expect("watch");
    let event = tokio::time::timeout(Duration::from_secs(10), stream.message())
        .await
        .expect("an event in time")
        .expect("stream")
        .expect("an event");
    assert_eq!(event.log_index, index);
    assert_eq!(event.hold_id, hold);
    assert_eq!(
        (event.state.as_str(), event.reason.as_str()),
        ("withdrawn", "slot_withdrawn")
    );
}

async fn template(c: &Client) {
    let slot = |minute_of_day| pb::TemplateSlot {
        weekdays: 0x7F,
        minute_of_day,
        duration_minutes: 15,
        mode: pb::Mode::InPerson as i32,
        capacity: 2,
        overbook: 1,
        referral_reserved: 0,
    };
    let set = pb::SetWeeklyTemplateRequest {
        request_id: id("template"),
        doctor_id: DOCTOR,
        // 03:00 and 03:15 UTC: clear of the published slots at 01:00.
        slots: vec![slot(180), slot(195)],
        horizon_days: 4,
        from_ms: tomorrow_ms(),
    };
    let (r, _) = twice(set, |r| c.set_weekly_template(r), |r| r.commit.take()).await;
    // Tomorrow and the two days after it: three days inside a four-day horizon.
    assert_eq!(r.slots.len(), 6, "{r:?}");
    assert_eq!(r.next_day_start_ms, tomorrow_ms() + 3 * DAY_MS);
    assert!(r.slots.iter().all(|s| s.overbook == 1));
    let found = c
        .find_slots(pb::FindSlotsRequest {
            doctor_id: DOCTOR,
            limit: 100,
            ..Default::default()
        })
        .await
        .expect("find");
    // Six from the template, two published ones left (one withdrawn).
    assert_eq!(found.slots.len(), 8, "{found:?}");
    let mut bad = pb::SetWeeklyTemplateRequest {
        request_id: id("template-bad"),
        doctor_id: DOCTOR,
        slots: vec![slot(180), slot(185)],
        horizon_days: 4,
        from_ms: 0,
    };
    refused(
        c.set_weekly_template(bad.clone()).await,
        Code::InvalidArgument,
        "slots.1.minute_of_day",
    );
    bad.slots = vec![slot(180)];
    bad.horizon_days = 40;
    refused(
        c.set_weekly_template(bad).await,
        Code::InvalidArgument,
        "horizon_days",
    );
}
