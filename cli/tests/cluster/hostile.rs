//! Requests that once took nodes down (issue 11), sent by a plain generated gRPC client (no
//! retries, no client-side checks) to a 3-node GBA cluster. Each must be answered with a
//! clean status; afterwards every process is alive, the leader and term are unchanged, the
//! replicas agree on the state hash, what the region offers is unchanged, and a restart of
//! every node replays the log without dying on any entry.

use crate::harness::*;
use ninety_proto::v1 as pb;
use ninety_proto::v1::{matching_client::MatchingClient, scheduling_client::SchedulingClient};
use std::time::Duration;
use tonic::Code;

/// Windows that are wholly in the past, empty, inverted, or at the ends of `u64`. (`{0, 0}`
/// is not among them: the API reads it as "unset", the next seven days.)
const WINDOWS: [(u64, u64); 7] = [
    (1, 1000),
    (5, 5),
    (1000, 1),
    (0, u64::MAX),
    (u64::MAX, u64::MAX),
    (u64::MAX - 1, 1),
    (1, u64::MAX),
];

/// A status a hostile request may get: anything but a sign that the node broke.
fn clean<T: std::fmt::Debug>(what: &str, r: Result<T, tonic::Status>) {
    if let Err(s) = r {
        let broken = [
            Code::Internal,
            Code::Unavailable,
            Code::Unknown,
            Code::Cancelled,
        ];
        assert!(!broken.contains(&s.code()), "{what}: {s:?}");
    }
}

/// What the region offers, as seen by node `id`: enough to notice any hostile write.
async fn offer(p: &Procs, id: u64) -> String {
    let mut out = String::new();
    let mut beds = p.beds(id);
    for hospital_id in [1, 2, 63] {
        let r = beds
            .ward_availability(pb::WardAvailabilityRequest {
                hospital_id,
                ward_ids: vec![],
                consistency: pb::ReadConsistency::Linearizable as i32,
            })
            .await
            .expect("ward availability")
            .into_inner();
        out += &format!("{:?}\n", r.wards);
    }
    let r = SchedulingClient::new(p.channel(id))
        .find_slots(pb::FindSlotsRequest {
            specialty: "cardiology".into(),
            limit: 50,
            consistency: pb::ReadConsistency::Linearizable as i32,
            ..Default::default()
        })
        .await
        .expect("find slots")
        .into_inner();
    out + &format!("{:?}", r.slots)
}

/// The offer once the region's bootstrap (schedules keep arriving for a few seconds after
/// the first answer) has finished: two reads two seconds apart agree.
async fn settled_offer(p: &Procs, id: u64) -> String {
    let mut last = offer(p, id).await;
    for _ in 0..30 {
        tokio::time::sleep(Duration::from_secs(2)).await;
        let now = offer(p, id).await;
        if now == last {
            return now;
        }
        last = now;
    }
    panic!("the region's offer did not settle in 60 s");
}

async fn send_hostile(p: &Procs, id: u64, n: &mut u64) {
    let mut sched = SchedulingClient::new(p.channel(id));
    let mut matching = MatchingClient::new(p.channel(id));
    for (start_ms, end_ms) in WINDOWS {
        let window = Some(pb::TimeRange { start_ms, end_ms });
        for doctor_id in [0, 2, u32::MAX] {
            let r = sched
                .find_slots(pb::FindSlotsRequest {
                    doctor_id,
                    limit: 3,
                    window,
                    ..Default::default()
                })
                .await;
            clean(&format!("FindSlots {doctor_id} {window:?}"), r);
        }
        *n += 1;
        let r = matching
            .allocate_slot(pb::AllocateSlotRequest {
                request_id: format!("hostile-{n}-slot"),
                patient_ref: format!("{:032x}", 0xbad_0000 + *n),
                from_hospital_id: 63,
                specialty: "cardiology".into(),
                urgency: pb::Urgency::P3 as i32,
                mode: pb::Mode::InPerson as i32,
                window,
                ..Default::default()
            })
            .await;
        clean(&format!("AllocateSlot {window:?}"), r);
        let r = matching
            .match_specialist(pb::MatchSpecialistRequest {
                from_hospital_id: 63,
                specialty: "cardiology".into(),
                urgency: pb::Urgency::P3 as i32,
                mode: pb::Mode::InPerson as i32,
                window,
                limit: u32::MAX,
                ..Default::default()
            })
            .await;
        clean(&format!("MatchSpecialist {window:?}"), r);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_requests_leave_every_node_up_and_the_state_unchanged() {
    crate::bounded(async {
        let opts = Opts {
            region: Some("gba"),
            ..Opts::default()
        };
        let mut p = Procs::start(&[1, 2, 3], &[1, 2, 3], opts);
        let leader = p.wait_ready(Duration::from_secs(30)).await;
        let before = p.status(leader).await.expect("status");
        let offered = settled_offer(&p, leader).await;

        let mut n = 0;
        for id in [1, 2, 3] {
            send_hostile(&p, id, &mut n).await;
        }

        let exited: Vec<(u64, std::process::ExitStatus)> = p
            .children
            .iter_mut()
            .filter_map(|(id, c)| c.try_wait().expect("try_wait").map(|s| (*id, s)))
            .collect();
        assert!(
            exited.is_empty(),
            "exited: {exited:?}\n{}",
            p.logs(&[1, 2, 3])
        );
        let after = p.status(leader).await.expect("status after");
        assert_eq!(
            (after.leader_id, after.term),
            (before.leader_id, before.term)
        );
        p.converge(&[1, 2, 3], Duration::from_secs(10)).await;
        assert_eq!(
            offer(&p, leader).await,
            offered,
            "a hostile request changed the region"
        );

        // Every entry the hostile requests wrote replays on restart.
        for id in [1, 2, 3] {
            p.kill(id);
        }
        for id in [1, 2, 3] {
            p.spawn(id, true);
        }
        let leader = p.wait_ready(Duration::from_secs(30)).await;
        p.converge(&[1, 2, 3], Duration::from_secs(10)).await;
        assert_eq!(
            offer(&p, leader).await,
            offered,
            "the region changed across a restart"
        );
        let logs = p.logs(&[1, 2, 3]);
        assert!(!logs.contains("panicked"), "{logs}");
    })
    .await;
}

fn hold_bed(n: &mut u64, ward_id: u32, bed_id: u32) -> pb::HoldBedRequest {
    *n += 1;
    pb::HoldBedRequest {
        request_id: format!("rules-{n}-hold"),
        ward_id,
        bed_id,
        patient_ref: format!("{:032x}", 0x5eed_0000 + *n),
        ttl_ms: 600_000,
        ..Default::default()
    }
}

fn refused_field<T: std::fmt::Debug>(r: Result<T, tonic::Status>, code: Code) -> String {
    let s = r.expect_err("expected a refusal");
    assert_eq!(s.code(), code, "{s:?}");
    ninety_client::rejection(&s).unwrap_or_default().field
}

/// The engine's rules from issue 11, through the API: a bed must be in the ward named with
/// it, a referral-channel seat needs a referral, and a ward's `free_beds` are exactly the
/// holds it grants.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn engine_rules_hold_through_the_api() {
    crate::bounded(async {
        let opts = Opts {
            region: Some("gba"),
            ..Opts::default()
        };
        let p = Procs::start(&[1, 2, 3], &[1, 2, 3], opts);
        let leader = p.wait_ready(Duration::from_secs(30)).await;
        settled_offer(&p, leader).await;
        let mut beds = p.beds(leader);
        let mut n = 0;
        let wards = beds
            .ward_availability(pb::WardAvailabilityRequest {
                hospital_id: 1,
                ward_ids: vec![],
                consistency: pb::ReadConsistency::Linearizable as i32,
            })
            .await
            .expect("wards")
            .into_inner()
            .wards;
        assert!(wards.len() >= 2, "{wards:?}");

        // A bed of ward A named with ward B.
        let (a, b) = (wards[0].ward_id, wards[1].ward_id);
        let held = beds.hold_bed(hold_bed(&mut n, a, 0)).await.expect("hold");
        let bed = held.into_inner().hold.expect("hold").bed_id;
        let r = beds.hold_bed(hold_bed(&mut n, b, bed)).await;
        assert_eq!(refused_field(r, Code::InvalidArgument), "bed_id");

        // Referral-channel seats: no referral, or one that does not exist.
        let slot = SchedulingClient::new(p.channel(leader))
            .find_slots(pb::FindSlotsRequest {
                limit: 1,
                consistency: pb::ReadConsistency::Linearizable as i32,
                ..Default::default()
            })
            .await
            .expect("find slots")
            .into_inner()
            .slots;
        let slot = slot.first().expect("a free slot");
        for referral_id in [0, 987_654_321] {
            let r = SchedulingClient::new(p.channel(leader))
                .hold_slot(pb::HoldSlotRequest {
                    request_id: format!("rules-seat-{referral_id}"),
                    slot_id: slot.slot_id,
                    patient_ref: format!("{:032x}", 0x5ea7_u64),
                    channel: pb::Channel::Referral as i32,
                    referral_id,
                    ..Default::default()
                })
                .await;
            assert_eq!(refused_field(r, Code::InvalidArgument), "referral_id");
        }

        // Every ward grants exactly `free_beds` more holds, then refuses.
        for w in &wards {
            let free = if w.ward_id == a {
                w.free_beds - 1
            } else {
                w.free_beds
            };
            for _ in 0..free {
                let r = beds.hold_bed(hold_bed(&mut n, w.ward_id, 0)).await;
                assert!(r.is_ok(), "ward {w:?}: {r:?}");
            }
            let r = beds.hold_bed(hold_bed(&mut n, w.ward_id, 0)).await;
            let s = r.expect_err("a hold beyond free_beds");
            assert_eq!(s.code(), Code::FailedPrecondition, "ward {w:?}: {s:?}");
        }
        p.converge(&[1, 2, 3], Duration::from_secs(10)).await;
    })
    .await;
}
