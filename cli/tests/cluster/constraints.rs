//! Constraints honoured end to end (issue 14, item 5), through the real binary on a
//! 3-node cluster: an island of three hospitals is built with the Capacity API (a primary
//! origin, a secondary hospital 20 minutes away, a tertiary one 60 minutes away), then
//! * language, travel and tier bounds change which doctors `MatchSpecialist` ranks and which
//!   slot `AllocateSlot` holds;
//! * sex, isolation, equipment, travel and tier change which ward `AllocateBed` holds, and
//!   an allocation that nothing meets is refused, never bent;
//! * the referral channel of `AllocateBed` needs an existing referral;
//! * a referral keeps its destination, direction, reason code, note and outcome, and
//!   `GetReferral` returns its history: every step with its log index, time, actor, reason
//!   and code;
//! * every new field refuses bad input with `INVALID_ARGUMENT` naming the field as sent.
//!
//! Run: `cargo test -p ninety --test cluster constraints`.

use crate::harness::*;
use ninety_client::Client;
use ninety_proto::v1 as pb;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tonic::{Code, Status};

/// The island's hospitals: the origin (primary), a near secondary, a far tertiary.
const ORIGIN: u32 = 9_101;
const NEAR: u32 = 9_102;
const FAR: u32 = 9_103;
/// Wards: the near hospital's female-only cardiology ward with monitors; the far
/// hospital's mixed cardiology ward with monitors and ventilators; the far hospital's
/// isolation ward.
const NEAR_FEMALE: u32 = 9_201;
const FAR_VENTILATED: u32 = 9_202;
const FAR_ISOLATION: u32 = 9_203;
/// Doctors: at the near hospital speaking zh; at the far hospital speaking zh and en.
const NEAR_DOCTOR: u32 = 9_301;
const FAR_DOCTOR: u32 = 9_302;

fn id(tag: &str) -> String {
    format!("constraints-{tag}-{}", ninety_client::new_request_id())
}

fn patient(n: u64) -> String {
    format!("{:032x}", 0xc057_0000_u64 + n)
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

fn client(p: &Procs) -> Client {
    p.client_of(&[1, 2, 3], Duration::from_secs(15))
}

fn refused<T: std::fmt::Debug>(r: Result<T, Status>, code: Code, field: &str) {
    let s = r.expect_err("refused");
    assert_eq!(s.code(), code, "{s:?}");
    let rejection = ninety_client::rejection(&s).unwrap_or_default();
    assert_eq!(rejection.field, field, "{s:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn constraints_change_the_answer_and_referrals_keep_their_history() {
    crate::bounded(async {
        let p = Procs::start(&[1, 2, 3], &[1, 2, 3], Opts::default());
        p.wait_ready(Duration::from_secs(30)).await;
        let c = client(&p);
        island(&c).await;
        matching(&c).await;
        slot_allocation(&c).await;
        bed_allocation(&c).await;
        referral_history(&c).await;
    })
    .await;
}

async fn hospital(c: &Client, hospital_id: u32, tier: pb::Tier) {
    c.upsert_hospital(pb::UpsertHospitalRequest {
        request_id: id("hospital"),
        hospital: Some(pb::Hospital {
            hospital_id,
            name: format!("H{hospital_id}"),
            city: "Island".into(),
            lat_micro_deg: 22_000_000,
            lon_micro_deg: 113_000_000,
            tier: tier as i32,
            languages: vec!["zh".into()],
            alliance_ids: vec![],
        }),
    })
    .await
    .expect("hospital");
}

async fn ward(c: &Client, ward_id: u32, hospital_id: u32, kind: &str, sex: &str, eq: &[&str]) {
    c.upsert_ward(pb::UpsertWardRequest {
        request_id: id("ward"),
        ward: Some(pb::Ward {
            ward_id,
            hospital_id,
            name: format!("W{ward_id}"),
            specialty: "cardiology".into(),
            kind: kind.into(),
            sex: sex.into(),
            equipment: eq.iter().map(|e| e.to_string()).collect(),
            staffed_beds: 8,
        }),
    })
    .await
    .expect("ward");
    c.add_beds(pb::AddBedsRequest {
        request_id: id("beds"),
        ward_id,
        count: 8,
    })
    .await
    .expect("beds");
}

async fn doctor(c: &Client, doctor_id: u32, hospital_id: u32, languages: &[&str]) {
    c.upsert_doctor(pb::UpsertDoctorRequest {
        request_id: id("doctor"),
        doctor: Some(pb::Doctor {
            doctor_id,
            hospital_id,
            specialties: vec!["cardiology".into()],
            sub_specialties: vec![],
            title: "attending".into(),
            languages: languages.iter().map(|l| l.to_string()).collect(),
            remote: false,
        }),
    })
    .await
    .expect("doctor");
    // Whole minutes, a few hours ahead: inside the default seven-day window.
    let start_ms = (now_ms() / 60_000 + 180) * 60_000;
    c.publish_schedule(pb::PublishScheduleRequest {
        request_id: id("schedule"),
        doctor_id,
        slots: vec![pb::SlotSpec {
            start_ms,
            duration_minutes: 30,
            mode: pb::Mode::InPerson as i32,
            capacity: 4,
            referral_reserved: 0,
            cancel_before_minutes: 0,
            overbook: 0,
        }],
    })
    .await
    .expect("schedule");
}

/// Three hospitals joined only to each other by road, with wards, doctors and slots.
async fn island(c: &Client) {
    hospital(c, ORIGIN, pb::Tier::Primary).await;
    hospital(c, NEAR, pb::Tier::Secondary).await;
    hospital(c, FAR, pb::Tier::Tertiary).await;
    for (b, minutes) in [(NEAR, 20), (FAR, 60)] {
        c.set_travel(pb::SetTravelRequest {
            request_id: id("travel"),
            hospital_a_id: ORIGIN,
            hospital_b_id: b,
            travel_minutes: minutes,
        })
        .await
        .expect("travel");
    }
    c.set_referral_path(pb::SetReferralPathRequest {
        request_id: id("path"),
        from_hospital_id: ORIGIN,
        to_hospital_id: FAR,
        kind: pb::ReferralPathKind::UpTier as i32,
    })
    .await
    .expect("path");
    ward(c, NEAR_FEMALE, NEAR, "general", "female", &["monitor"]).await;
    let eq = ["monitor", "ventilator"];
    ward(c, FAR_VENTILATED, FAR, "general", "mixed", &eq).await;
    ward(c, FAR_ISOLATION, FAR, "isolation", "mixed", &["monitor"]).await;
    doctor(c, NEAR_DOCTOR, NEAR, &["zh"]).await;
    doctor(c, FAR_DOCTOR, FAR, &["zh", "en"]).await;
}

fn search() -> pb::MatchSpecialistRequest {
    pb::MatchSpecialistRequest {
        from_hospital_id: ORIGIN,
        specialty: "cardiology".into(),
        urgency: pb::Urgency::P3 as i32,
        mode: pb::Mode::InPerson as i32,
        limit: 10,
        ..Default::default()
    }
}

async fn doctors_found(c: &Client, r: pb::MatchSpecialistRequest) -> Vec<u32> {
    let found = c.match_specialist(r).await.expect("match");
    let mut ids: Vec<u32> = found.candidates.iter().map(|x| x.doctor_id).collect();
    ids.sort_unstable();
    ids
}

/// Language, travel and tier each change the ranked answer.
async fn matching(c: &Client) {
    assert_eq!(doctors_found(c, search()).await, [NEAR_DOCTOR, FAR_DOCTOR]);
    let english = pb::MatchSpecialistRequest {
        language: "en".into(),
        ..search()
    };
    assert_eq!(doctors_found(c, english).await, [FAR_DOCTOR]);
    let near = pb::MatchSpecialistRequest {
        max_travel_minutes: 30,
        ..search()
    };
    assert_eq!(doctors_found(c, near).await, [NEAR_DOCTOR]);
    let tertiary = pb::MatchSpecialistRequest {
        min_tier: pb::Tier::Tertiary as i32,
        limit: 1,
        ..search()
    };
    assert_eq!(doctors_found(c, tertiary).await, [FAR_DOCTOR]);
    let nobody = pb::MatchSpecialistRequest {
        language: "pt".into(),
        ..search()
    };
    assert_eq!(doctors_found(c, nobody).await, Vec::<u32>::new());
    let bad = pb::MatchSpecialistRequest {
        language: "portuguese".into(),
        ..search()
    };
    refused(
        c.match_specialist(bad).await,
        Code::InvalidArgument,
        "language",
    );
}

fn slot_ask(n: u64) -> pb::AllocateSlotRequest {
    pb::AllocateSlotRequest {
        request_id: id("slot"),
        patient_ref: patient(n),
        from_hospital_id: ORIGIN,
        specialty: "cardiology".into(),
        urgency: pb::Urgency::P3 as i32,
        mode: pb::Mode::InPerson as i32,
        ..Default::default()
    }
}

/// The allocation honours what the search honours.
async fn slot_allocation(c: &Client) {
    let english = pb::AllocateSlotRequest {
        language: "en".into(),
        ..slot_ask(1)
    };
    let chosen = c.allocate_slot(english).await.expect("allocate").chosen;
    assert_eq!(chosen.map(|x| x.doctor_id), Some(FAR_DOCTOR));
    let near = pb::AllocateSlotRequest {
        max_travel_minutes: 30,
        ..slot_ask(2)
    };
    let chosen = c.allocate_slot(near).await.expect("allocate").chosen;
    assert_eq!(chosen.map(|x| x.doctor_id), Some(NEAR_DOCTOR));
    let impossible = pb::AllocateSlotRequest {
        language: "en".into(),
        max_travel_minutes: 30,
        ..slot_ask(3)
    };
    let r = c.allocate_slot(impossible).await;
    assert_eq!(
        r.expect_err("nothing meets both").code(),
        Code::FailedPrecondition
    );
    let referral = pb::AllocateSlotRequest {
        channel: pb::Channel::Referral as i32,
        ..slot_ask(4)
    };
    let r = c.allocate_slot(referral).await;
    refused(r, Code::InvalidArgument, "referral_id");
}

fn bed_ask(n: u64) -> pb::AllocateBedRequest {
    pb::AllocateBedRequest {
        request_id: id("bed"),
        patient_ref: patient(n),
        from_hospital_id: ORIGIN,
        specialty: "cardiology".into(),
        urgency: pb::Urgency::P2 as i32,
        ttl_ms: 600_000,
        ..Default::default()
    }
}

async fn ward_chosen(c: &Client, r: pb::AllocateBedRequest) -> u32 {
    let a = c.allocate_bed(r).await.expect("allocate bed");
    let chosen = a.chosen.map_or(0, |x| x.ward_id);
    assert_eq!(a.hold.map(|h| h.ward_id), Some(chosen));
    chosen
}

/// Sex, equipment, isolation, travel and tier each change the ward chosen.
async fn bed_allocation(c: &Client) {
    let female_near = pb::AllocateBedRequest {
        sex: "female".into(),
        max_travel_minutes: 30,
        ..bed_ask(10)
    };
    assert_eq!(ward_chosen(c, female_near).await, NEAR_FEMALE);
    let male = pb::AllocateBedRequest {
        sex: "male".into(),
        ward_kind: "general".into(),
        ..bed_ask(11)
    };
    assert_eq!(ward_chosen(c, male).await, FAR_VENTILATED);
    let ventilated = pb::AllocateBedRequest {
        equipment: vec!["ventilator".into()],
        ..bed_ask(12)
    };
    assert_eq!(ward_chosen(c, ventilated).await, FAR_VENTILATED);
    let isolated = pb::AllocateBedRequest {
        isolation: true,
        ..bed_ask(13)
    };
    assert_eq!(ward_chosen(c, isolated).await, FAR_ISOLATION);
    let tertiary = pb::AllocateBedRequest {
        min_tier: pb::Tier::Tertiary as i32,
        ward_kind: "general".into(),
        ..bed_ask(14)
    };
    assert_eq!(ward_chosen(c, tertiary).await, FAR_VENTILATED);
    let male_near = pb::AllocateBedRequest {
        sex: "male".into(),
        max_travel_minutes: 30,
        ..bed_ask(15)
    };
    let r = c.allocate_bed(male_near).await;
    assert_eq!(
        r.expect_err("no male bed near").code(),
        Code::FailedPrecondition
    );
    let bad_sex = pb::AllocateBedRequest {
        sex: "other".into(),
        ..bed_ask(16)
    };
    refused(c.allocate_bed(bad_sex).await, Code::InvalidArgument, "sex");
    let bad_kit = pb::AllocateBedRequest {
        equipment: vec!["monitor".into(), "laser".into()],
        ..bed_ask(16)
    };
    refused(
        c.allocate_bed(bad_kit).await,
        Code::InvalidArgument,
        "equipment.1",
    );
    let no_referral = pb::AllocateBedRequest {
        channel: pb::Channel::Referral as i32,
        ..bed_ask(16)
    };
    refused(
        c.allocate_bed(no_referral).await,
        Code::InvalidArgument,
        "referral_id",
    );
    let unknown = pb::AllocateBedRequest {
        channel: pb::Channel::Referral as i32,
        referral_id: 987_654,
        ..bed_ask(16)
    };
    refused(
        c.allocate_bed(unknown).await,
        Code::InvalidArgument,
        "referral_id",
    );
}

/// A referral's destination, direction, codes and outcome are kept, and its history tells
/// each step with its index, actor and reason.
async fn referral_history(c: &Client) {
    let ask = pb::RequestReferralRequest {
        request_id: id("request"),
        patient_ref: patient(20),
        from_hospital_id: ORIGIN,
        to_hospital_id: FAR,
        reason_code: "I21.4".into(),
        note: "bring the ECG strip".into(),
        ..Default::default()
    };
    let down = pb::RequestReferralRequest {
        direction: pb::ReferralDirection::Down as i32,
        ..ask.clone()
    };
    refused(
        c.request_referral(down).await,
        Code::InvalidArgument,
        "direction",
    );
    let phone = pb::RequestReferralRequest {
        note: "call 13800138000".into(),
        ..ask.clone()
    };
    refused(
        c.request_referral(phone).await,
        Code::InvalidArgument,
        "note",
    );
    let prose = pb::RequestReferralRequest {
        reason_code: "chest pain".into(),
        ..ask.clone()
    };
    refused(
        c.request_referral(prose).await,
        Code::InvalidArgument,
        "reason_code",
    );
    let r = c
        .request_referral(ask)
        .await
        .expect("request")
        .referral
        .unwrap();
    assert_eq!(r.to_hospital_id, FAR);
    assert_eq!(r.direction, pb::ReferralDirection::Up as i32);
    assert_eq!(
        (r.reason_code.as_str(), r.note.as_str()),
        ("I21.4", "bring the ECG strip")
    );
    lifecycle(c, r.referral_id).await;
    check_history(c, r.referral_id).await;
}

/// Triage with a note, no capacity with a reason, a referral-channel bed, and the steps to
/// completion with an outcome.
async fn lifecycle(c: &Client, referral_id: u64) {
    c.triage_referral(pb::TriageReferralRequest {
        request_id: id("triage"),
        referral_id,
        urgency: pb::Urgency::P2 as i32,
        specialty: "cardiology".into(),
        note: "stemi-pathway".into(),
    })
    .await
    .expect("triage");
    c.report_no_capacity(pb::ReportNoCapacityRequest {
        request_id: id("none"),
        referral_id,
        hospital_id: 0,
        reason: "no-cath-lab".into(),
    })
    .await
    .expect("no capacity");
    let bed = pb::AllocateBedRequest {
        channel: pb::Channel::Referral as i32,
        referral_id,
        equipment: vec!["ventilator".into()],
        ..bed_ask(20)
    };
    let other = pb::AllocateBedRequest {
        patient_ref: patient(21),
        request_id: id("bed-other"),
        ..bed.clone()
    };
    refused(
        c.allocate_bed(other).await,
        Code::InvalidArgument,
        "referral_id",
    );
    let hold = c
        .allocate_bed(bed)
        .await
        .expect("referral bed")
        .hold
        .unwrap();
    assert_eq!(hold.ward_id, FAR_VENTILATED);
    c.match_referral(pb::MatchReferralRequest {
        request_id: id("match"),
        referral_id,
        bed_hold_id: hold.hold_id,
        ..Default::default()
    })
    .await
    .expect("match");
    arrive(c, referral_id).await;
    let bad_outcome = pb::CompleteReferralRequest {
        request_id: id("complete-bad"),
        referral_id,
        outcome: "went home happy".into(),
    };
    refused(
        c.complete_referral(bad_outcome).await,
        Code::InvalidArgument,
        "outcome",
    );
    c.complete_referral(pb::CompleteReferralRequest {
        request_id: id("complete"),
        referral_id,
        outcome: "discharged".into(),
    })
    .await
    .expect("complete");
}

/// Accepted by the receiving hospital, in transit, admitted.
async fn arrive(c: &Client, referral_id: u64) {
    for step in ["accept", "transit", "admit"] {
        let request_id = id(step);
        let done = match step {
            "accept" => c
                .accept_referral(pb::AcceptReferralRequest {
                    request_id,
                    referral_id,
                    hospital_id: FAR,
                })
                .await
                .map(drop),
            "transit" => c
                .start_transit(pb::StartTransitRequest {
                    request_id,
                    referral_id,
                    eta_ms: 0,
                })
                .await
                .map(drop),
            _ => c
                .admit_referral(pb::AdmitReferralRequest {
                    request_id,
                    referral_id,
                })
                .await
                .map(drop),
        };
        done.expect(step);
    }
}

async fn check_history(c: &Client, referral_id: u64) {
    let got = c
        .get_referral(pb::GetReferralRequest {
            referral_id,
            consistency: 0,
        })
        .await
        .expect("get referral");
    let r = got.referral.expect("the referral");
    assert_eq!(r.outcome, "discharged");
    use pb::ReferralState as S;
    let steps: Vec<(i32, &str, &str, &str)> = r
        .history
        .iter()
        .map(|e| {
            (
                e.state,
                e.actor.as_str(),
                e.reason.as_str(),
                e.note.as_str(),
            )
        })
        .collect();
    let expected = [
        (S::Requested, "referring", "awaiting_triage", "I21.4"),
        (S::Triaged, "triage", "awaiting_match", "stemi-pathway"),
        (S::NoCapacity, "coordinator", "no_capacity", "no-cath-lab"),
        (S::Matched, "coordinator", "awaiting_match", ""),
        (S::Accepted, "receiving", "awaiting_match", ""),
        (S::InTransit, "referring", "awaiting_match", ""),
        (S::Admitted, "receiving", "awaiting_match", ""),
        (S::Completed, "receiving", "awaiting_match", "discharged"),
    ];
    let expected: Vec<(i32, &str, &str, &str)> = expected
        .iter()
        .map(|(s, a, why, note)| (*s as i32, *a, *why, *note))
        .collect();
    assert_eq!(steps, expected);
    let indexes: Vec<u64> = r.history.iter().map(|e| e.log_index).collect();
    assert!(indexes[0] > 0, "{indexes:?}");
    assert!(indexes.windows(2).all(|w| w[0] < w[1]), "{indexes:?}");
    assert!(r.history.windows(2).all(|w| w[0].at_ms <= w[1].at_ms));
    let hospitals: Vec<u32> = r.history.iter().map(|e| e.hospital_id).collect();
    assert_eq!(hospitals, [ORIGIN, 0, 0, 0, FAR, ORIGIN, FAR, FAR]);
}
