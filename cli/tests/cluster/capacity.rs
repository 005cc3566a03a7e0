//! The capacity lifecycle through `ninety.v1.Capacity` on a real node (issue 14, item 1):
//! a bed is admitted, discharged (to clean: it cannot be held), cleaned (held again),
//! blocked and unblocked; a ward gains beds and loses staff; a new ward, doctor and
//! hospital are added and the region's travel, paths and policy set. Every write is sent
//! twice with one request id and the second answer is the first, replayed; bad input is
//! refused naming the field as sent; a caller without the role is `PERMISSION_DENIED`
//! before anything is applied.

use crate::harness::*;
use ninety_client::Client;
use ninety_proto::v1 as pb;
use ninety_proto::v1::capacity_client::CapacityClient;
use std::future::Future;
use std::time::Duration;
use tonic::{Code, Status};

const PATIENT: &str = "c0ffee00c0ffee00c0ffee00c0ffee00";
/// (role, token): each becomes a `<role>-caller` of the node config.
const TOKENS: [(&str, &str); 2] = [
    ("hospital", "tok-hospital-7e1a"),
    ("referral", "tok-referral-7e1a"),
];

fn id(tag: &str) -> String {
    format!("{tag}-{}", ninety_client::new_request_id())
}

fn start() -> Procs {
    let extra_toml = TOKENS
        .iter()
        .map(|(role, token)| {
            let sha = ninety_cluster::security::certs::token_sha256(token);
            format!(
                "[[auth.tokens]]\nname = \"{role}-caller\"\nroles = [\"{role}\"]\nsha256 = \"{sha}\"\n"
            )
        })
        .collect();
    Procs::start(
        &[1],
        &[1],
        Opts {
            extra_toml,
            ..Opts::default()
        },
    )
}

/// A client with the harness's certificate (every role).
fn client(p: &Procs) -> Client {
    p.client_of(&[1], Duration::from_secs(10))
}

/// Sends `request` twice: the second answer is the first, replayed from the same entry.
async fn twice<Req, Resp, F, Fut>(
    request: Req,
    call: F,
    commit: fn(&mut Resp) -> Option<pb::CommitInfo>,
) -> Resp
where
    Req: Clone,
    Resp: PartialEq + std::fmt::Debug,
    F: Fn(Req) -> Fut,
    Fut: Future<Output = Result<Resp, Status>>,
{
    let mut first = call(request.clone()).await.expect("first answer");
    let mut again = call(request).await.expect("retried answer");
    let (a, b) = (
        commit(&mut first).expect("commit"),
        commit(&mut again).expect("commit"),
    );
    assert!(!a.replayed && b.replayed, "{a:?} then {b:?}");
    assert_eq!(a.log_index, b.log_index, "a replay names the first entry");
    assert_eq!(first, again, "the retry answers what the first call did");
    first
}

fn refused<T: std::fmt::Debug>(r: Result<T, Status>, code: Code, field: &str) {
    let s = r.expect_err("refused");
    assert_eq!(s.code(), code, "{s:?}");
    let rejection = ninety_client::rejection(&s).unwrap_or_default();
    assert_eq!(rejection.field, field, "{s:?}");
}

/// Ward counts of `ward` in hospital 1.
async fn counts(c: &Client, ward: u32) -> pb::WardAvailability {
    let r = c
        .ward_availability(pb::WardAvailabilityRequest {
            hospital_id: 1,
            ward_ids: vec![ward],
            consistency: 0,
        })
        .await
        .expect("availability");
    r.wards.into_iter().next().expect("the ward")
}

fn hold(ward_id: u32, bed_id: u32) -> pb::HoldBedRequest {
    pb::HoldBedRequest {
        request_id: id("hold"),
        ward_id,
        bed_id,
        patient_ref: PATIENT.into(),
        ttl_ms: 600_000,
        ..Default::default()
    }
}

/// A ward of hospital 1 with at least two admissible beds.
async fn roomy_ward(c: &Client) -> u32 {
    let r = c
        .ward_availability(pb::WardAvailabilityRequest {
            hospital_id: 1,
            ward_ids: vec![],
            consistency: 0,
        })
        .await
        .expect("availability");
    r.wards
        .iter()
        .find(|w| w.free_beds >= 2)
        .expect("a ward with free beds")
        .ward_id
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn beds_go_through_discharge_cleaning_and_blocking() {
    crate::bounded(async {
        let p = start();
        p.wait_ready(Duration::from_secs(30)).await;
        let c = client(&p);
        let ward = roomy_ward(&c).await;
        let held = c.hold_bed(hold(ward, 0)).await.expect("hold").hold.unwrap();
        let bed = held.bed_id;
        c.confirm_hold(pb::ConfirmHoldRequest {
            request_id: id("admit"),
            hold_id: held.hold_id,
        })
        .await
        .expect("admit");
        let admitted = counts(&c, ward).await;
        discharge_and_clean(&c, ward, bed, &admitted).await;
        block_and_unblock(&c, ward, bed).await;
        beds_and_staff(&c, ward).await;
    })
    .await;
}

async fn discharge_and_clean(c: &Client, ward: u32, bed: u32, admitted: &pb::WardAvailability) {
    let discharge = pb::DischargeRequest {
        request_id: id("discharge"),
        bed_id: bed,
    };
    let r = twice(discharge, |r| c.discharge(r), |r| r.commit.take()).await;
    assert_eq!((r.bed_id, r.state()), (bed, pb::BedState::ToClean));
    let after = counts(c, ward).await;
    assert_eq!(after.occupied_beds + 1, admitted.occupied_beds);
    let elsewhere = after.total_beds - after.free_beds - after.held_beds - after.occupied_beds;
    assert!(
        elsewhere >= 1,
        "a bed to clean is neither free, held nor occupied: {after:?}"
    );
    let s = c.hold_bed(hold(ward, bed)).await.expect_err("to clean");
    assert_eq!(s.code(), Code::FailedPrecondition, "{s:?}");
    let again = pb::DischargeRequest {
        request_id: id("discharge-again"),
        bed_id: bed,
    };
    refused(c.discharge(again).await, Code::FailedPrecondition, "");
    let clean = pb::MarkBedCleanRequest {
        request_id: id("clean"),
        bed_id: bed,
    };
    let r = twice(clean, |r| c.mark_bed_clean(r), |r| r.commit.take()).await;
    assert_eq!(r.state(), pb::BedState::Free);
    let h = c
        .hold_bed(hold(ward, bed))
        .await
        .expect("held again")
        .hold
        .unwrap();
    assert_eq!(h.bed_id, bed);
    c.release_hold(pb::ReleaseHoldRequest {
        request_id: id("release"),
        hold_id: h.hold_id,
        reason: String::new(),
    })
    .await
    .expect("release");
}

async fn block_and_unblock(c: &Client, ward: u32, bed: u32) {
    let bad = pb::BlockBedRequest {
        request_id: id("block-bad"),
        bed_id: bed,
        reason: 0,
    };
    refused(c.block_bed(bad).await, Code::InvalidArgument, "reason");
    let block = pb::BlockBedRequest {
        request_id: id("block"),
        bed_id: bed,
        reason: pb::BlockReason::Maintenance as i32,
    };
    let r = twice(block, |r| c.block_bed(r), |r| r.commit.take()).await;
    assert_eq!(r.state(), pb::BedState::Blocked);
    assert_eq!(r.block_reason(), pb::BlockReason::Maintenance);
    let s = c.hold_bed(hold(ward, bed)).await.expect_err("blocked");
    assert_eq!(s.code(), Code::FailedPrecondition, "{s:?}");
    let unblock = pb::UnblockBedRequest {
        request_id: id("unblock"),
        bed_id: bed,
    };
    let r = twice(unblock, |r| c.unblock_bed(r), |r| r.commit.take()).await;
    assert_eq!(r.state(), pb::BedState::Free);
    let unknown = pb::DischargeRequest {
        request_id: id("discharge-unknown"),
        bed_id: 999_999,
    };
    refused(c.discharge(unknown).await, Code::NotFound, "");
    let zero = pb::DischargeRequest {
        request_id: id("discharge-zero"),
        bed_id: 0,
    };
    refused(c.discharge(zero).await, Code::InvalidArgument, "bed_id");
}

async fn beds_and_staff(c: &Client, ward: u32) {
    let before = counts(c, ward).await;
    let add = pb::AddBedsRequest {
        request_id: id("add"),
        ward_id: ward,
        count: 2,
    };
    let r = twice(add, |r| c.add_beds(r), |r| r.commit.take()).await;
    assert_eq!(r.bed_ids.len(), 2);
    assert_eq!(r.bed_ids[1], r.bed_ids[0] + 1);
    assert_eq!(counts(c, ward).await.total_beds, before.total_beds + 2);
    let none = pb::AddBedsRequest {
        request_id: id("add-none"),
        ward_id: ward,
        count: 0,
    };
    refused(c.add_beds(none).await, Code::InvalidArgument, "count");
    let close = pb::SetStaffedBedsRequest {
        request_id: id("staff-0"),
        ward_id: ward,
        staffed_beds: 0,
    };
    let r = twice(close, |r| c.set_staffed_beds(r), |r| r.commit.take()).await;
    assert!(r.previous_staffed_beds > 0, "{r:?}");
    let s = c.hold_bed(hold(ward, 0)).await.expect_err("no staff");
    assert_eq!(s.code(), Code::FailedPrecondition, "{s:?}");
    assert_eq!(counts(c, ward).await.free_beds, 0);
    c.set_staffed_beds(pb::SetStaffedBedsRequest {
        request_id: id("staff-back"),
        ward_id: ward,
        staffed_beds: r.previous_staffed_beds,
    })
    .await
    .expect("staff back");
    c.hold_bed(hold(ward, 0))
        .await
        .expect("held with staff back");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn records_and_region_settings_are_kept_and_roles_are_enforced() {
    crate::bounded(async {
        let p = start();
        p.wait_ready(Duration::from_secs(30)).await;
        let c = client(&p);
        records(&c).await;
        region(&c).await;
        roles(&p).await;
    })
    .await;
}

fn new_ward(ward_id: u32, hospital_id: u32, kind: &str) -> pb::UpsertWardRequest {
    pb::UpsertWardRequest {
        request_id: id("ward"),
        ward: Some(pb::Ward {
            ward_id,
            hospital_id,
            name: format!("W{ward_id}"),
            specialty: "cardiology".into(),
            kind: kind.into(),
            sex: "mixed".into(),
            equipment: vec!["monitor".into()],
            staffed_beds: 2,
        }),
    }
}

async fn records(c: &Client) {
    let r = twice(
        new_ward(9_001, 1, "icu"),
        |r| c.upsert_ward(r),
        |r| r.commit.take(),
    )
    .await;
    assert_eq!(r.ward.as_ref().map(|w| w.kind.as_str()), Some("icu"));
    refused(
        c.upsert_ward(new_ward(9_002, 1, "spaceship")).await,
        Code::InvalidArgument,
        "ward.kind",
    );
    refused(
        c.upsert_ward(new_ward(9_003, 999_999, "icu")).await,
        Code::InvalidArgument,
        "ward.hospital_id",
    );
    let added = c
        .add_beds(pb::AddBedsRequest {
            request_id: id("add-new"),
            ward_id: 9_001,
            count: 3,
        })
        .await
        .expect("beds for the new ward");
    let h = c
        .hold_bed(hold(9_001, 0))
        .await
        .expect("hold in the new ward");
    assert_eq!(h.hold.map(|h| h.bed_id), added.bed_ids.first().copied());
    let doctor = pb::UpsertDoctorRequest {
        request_id: id("doctor"),
        doctor: Some(pb::Doctor {
            doctor_id: 9_001,
            hospital_id: 1,
            specialties: vec!["cardiology".into()],
            sub_specialties: vec![],
            title: "chief".into(),
            languages: vec!["zh".into(), "yue".into()],
            remote: true,
        }),
    };
    twice(doctor, |r| c.upsert_doctor(r), |r| r.commit.take()).await;
    let hospital = pb::UpsertHospitalRequest {
        request_id: id("hospital"),
        hospital: Some(pb::Hospital {
            hospital_id: 9_001,
            name: "Hengqin clinic".into(),
            city: "Zhuhai".into(),
            lat_micro_deg: 22_120_000,
            lon_micro_deg: 113_540_000,
            tier: pb::Tier::Primary as i32,
            languages: vec!["zh".into(), "pt".into()],
            alliance_ids: vec![],
        }),
    };
    twice(hospital, |r| c.upsert_hospital(r), |r| r.commit.take()).await;
}

async fn region(c: &Client) {
    let travel = pb::SetTravelRequest {
        request_id: id("travel"),
        hospital_a_id: 9_001,
        hospital_b_id: 1,
        travel_minutes: 25,
    };
    twice(travel, |r| c.set_travel(r), |r| r.commit.take()).await;
    let same = pb::SetTravelRequest {
        request_id: id("travel-same"),
        hospital_a_id: 1,
        hospital_b_id: 1,
        travel_minutes: 25,
    };
    refused(
        c.set_travel(same).await,
        Code::InvalidArgument,
        "hospital_b_id",
    );
    let path = pb::SetReferralPathRequest {
        request_id: id("path"),
        from_hospital_id: 9_001,
        to_hospital_id: 1,
        kind: pb::ReferralPathKind::UpTier as i32,
    };
    let r = twice(path, |r| c.set_referral_path(r), |r| r.commit.take()).await;
    assert_eq!(r.kind(), pb::ReferralPathKind::UpTier);
    let policy = pb::Policy {
        reach_minutes: 90,
        slot_hold_ttl_ms: 600_000,
        cancel_deadline_minutes: 120,
        no_show_limit: 3,
        no_show_window_days: 365,
        no_show_block_days: 30,
        referral_ttl_ms: 3 * 86_400_000,
        resolved_retention_ms: 86_400_000,
        dedup_window_ms: 86_400_000,
    };
    let set = pb::SetPolicyRequest {
        request_id: id("policy"),
        policy: Some(policy),
    };
    twice(set, |r| c.set_policy(r), |r| r.commit.take()).await;
    let bad = pb::SetPolicyRequest {
        request_id: id("policy-bad"),
        policy: Some(pb::Policy {
            no_show_limit: 0,
            ..policy
        }),
    };
    refused(
        c.set_policy(bad).await,
        Code::InvalidArgument,
        "policy.no_show_limit",
    );
    let unblock = pb::UnblockPatientRequest {
        request_id: id("unblock-patient"),
        patient_ref: PATIENT.into(),
    };
    let r = twice(unblock, |r| c.unblock_patient(r), |r| r.commit.take()).await;
    assert_eq!(r.lifted_blocked_until_ms, 0, "the patient was not blocked");
}

/// `msg` with `authorization: Bearer <token>`.
fn with_token<T>(msg: T, token: &str) -> tonic::Request<T> {
    let mut r = tonic::Request::new(msg);
    let value = format!("Bearer {token}").parse().expect("metadata");
    r.metadata_mut().insert("authorization", value);
    r
}

fn code<T>(r: Result<T, Status>) -> Code {
    r.map_or_else(|s| s.code(), |_| Code::Ok)
}

/// Discharge and SetPolicy called with the token of `role`: their codes.
async fn as_role(p: &Procs, role: &str) -> (Code, Code) {
    let token = TOKENS.iter().find(|t| t.0 == role).expect("a role").1;
    let mut capacity = CapacityClient::new(p.channel_with(1, None));
    let discharge = pb::DischargeRequest {
        request_id: id(role),
        bed_id: 999_999,
    };
    let discharge = code(capacity.discharge(with_token(discharge, token)).await);
    let policy = pb::SetPolicyRequest {
        request_id: id(role),
        policy: None,
    };
    let policy = code(capacity.set_policy(with_token(policy, token)).await);
    (discharge, policy)
}

async fn roles(p: &Procs) {
    // The hospital passes the role check (then the engine answers: no such bed) and may
    // not set the region's policy; the referral service may do neither.
    assert_eq!(
        as_role(p, "hospital").await,
        (Code::NotFound, Code::PermissionDenied)
    );
    assert_eq!(
        as_role(p, "referral").await,
        (Code::PermissionDenied, Code::PermissionDenied)
    );
}
