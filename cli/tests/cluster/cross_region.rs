//! Cross-region referrals through the real binary (issue 17, item 3): three nodes each host
//! the four regions of the `south` layout, as `regions.rs` starts them. A referral recorded
//! in gba holds a bed in yunnan through the origin leader's driver
//! (`runtime::remote_driver`), and is accepted (confirmed on both) or cancelled (released
//! on both); then the same with a kill -9 at each step: of gba's leader right after
//! `HoldRemoteBed` is acknowledged, of yunnan's leader while the bed is being held, of
//! gba's leader right after `AcceptReferral`; and gba's leader dying at a crash point
//! (`runtime::crash_point`) between yunnan's answer and its record, at the hold, confirm
//! and release steps. Each must end confirmed on both or released on both, with exactly
//! one hold in yunnan for the attempt. The killed node is restarted; waits are generous
//! and nothing is timed.

use crate::harness::*;
use crate::regions::{first_ward, regions_toml, REGIONS};
use ninety_client::Client;
use ninety_proto::peer::v1::{Role, StatusRequest};
use ninety_proto::v1 as pb;
use std::time::{Duration, Instant};

/// How long a step of a scenario may take to show (elections and restarts included).
const STEP_WAIT: Duration = Duration::from_secs(40);
/// The hold's TTL in yunnan: far longer than any scenario, so no hold lapses by itself.
const TTL_MS: u64 = 2 * 3_600_000;
/// How long a region may take to load through its log.
const REGION_LOAD_WAIT: Duration = Duration::from_secs(60);

fn start() -> Procs {
    Procs::start(
        &[1, 2, 3],
        &[1, 2, 3],
        Opts {
            schedule_horizon_days: Some(0),
            // For the crash points (`CRASH_AT`); no `FAULTS` file is ever written here.
            fault_injection: true,
            extra_toml: regions_toml(&REGIONS),
            ..Opts::default()
        },
    )
}

/// A client of every node for `region`.
fn client(p: &Procs, region: &str) -> Client {
    p.client_of(&[1, 2, 3], Duration::from_secs(30))
        .with_region(region)
        .expect("region id")
}

fn patient(n: u64) -> String {
    format!("{:032x}", 0xc405_5000_u64 + n)
}

/// The live node that leads `region`, as its own status says.
async fn leader_of(p: &Procs, region: &str) -> u64 {
    let deadline = Instant::now() + STEP_WAIT;
    loop {
        for id in p.live() {
            let s = p
                .peer_as(id, p.node_pem(id))
                .status(StatusRequest {
                    from_node: id,
                    region: region.into(),
                })
                .await;
            if s.is_ok_and(|s| s.get_ref().role == Role::Leader as i32) {
                return id;
            }
        }
        assert!(Instant::now() < deadline, "no leader of {region}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Kills `id` with SIGKILL and starts it again on its data directory.
async fn kill_and_restart(p: &mut Procs, id: u64) {
    p.kill(id);
    tokio::time::sleep(Duration::from_millis(500)).await;
    p.spawn(id, true);
}

/// A triaged referral of patient `n` in gba, holding nothing.
async fn triaged(gba: &Client, n: u64) -> u64 {
    let r = gba
        .request_referral(pb::RequestReferralRequest {
            request_id: ninety_client::new_request_id(),
            patient_ref: patient(n),
            from_hospital_id: 1,
            ..Default::default()
        })
        .await
        .expect("request a referral");
    let id = r.referral.expect("referral").referral_id;
    gba.triage_referral(pb::TriageReferralRequest {
        request_id: ninety_client::new_request_id(),
        referral_id: id,
        urgency: pb::Urgency::P2 as i32,
        specialty: "cardiology".into(),
        ..Default::default()
    })
    .await
    .expect("triage");
    id
}

/// Asks yunnan's `ward` for a bed for `referral`; returns the acknowledged referral.
async fn hold_remote(gba: &Client, referral: u64, ward: u32) -> pb::Referral {
    let r = gba
        .hold_remote_bed(pb::HoldRemoteBedRequest {
            request_id: ninety_client::new_request_id(),
            referral_id: referral,
            region: "yunnan".into(),
            ward_id: ward,
            ttl_ms: TTL_MS,
        })
        .await
        .expect("HoldRemoteBed");
    r.referral.expect("referral")
}

/// Waits until gba's referral satisfies `done` (read linearizably); returns it.
async fn wait_referral(
    p: &Procs,
    gba: &Client,
    id: u64,
    what: &str,
    done: impl Fn(&pb::Referral) -> bool,
) -> pb::Referral {
    let deadline = Instant::now() + STEP_WAIT;
    let mut last = None;
    loop {
        let r = gba
            .get_referral(pb::GetReferralRequest {
                referral_id: id,
                ..Default::default()
            })
            .await;
        if let Some(r) = r.ok().and_then(|r| r.referral) {
            if done(&r) {
                return r;
            }
            last = Some(r);
        }
        assert!(
            Instant::now() < deadline,
            "referral {id} never {what}: {last:#?}\n{}",
            p.logs(&[1, 2, 3])
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn stage(r: &pb::Referral) -> pb::RemoteBedStage {
    r.remote
        .as_ref()
        .and_then(|b| pb::RemoteBedStage::try_from(b.stage).ok())
        .unwrap_or_default()
}

fn state(r: &pb::Referral) -> pb::ReferralState {
    pb::ReferralState::try_from(r.state).unwrap_or_default()
}

/// Patient `n`'s bed holds in yunnan (a linearizable read).
async fn yunnan_holds(yunnan: &Client, n: u64) -> Vec<pb::BedHold> {
    let r = yunnan
        .list_patient_bookings(pb::ListPatientBookingsRequest {
            patient_ref: patient(n),
            ..Default::default()
        })
        .await
        .expect("patient's holds in yunnan");
    r.bed_holds
}

/// The end state on both sides: gba's referral `id` final in `want` (confirmed: accepted;
/// released: `closed`), and exactly one hold of patient `n` in yunnan, in `hold_state`.
async fn check_both(
    p: &Procs,
    id: u64,
    n: u64,
    want: pb::RemoteBedStage,
    referral_state: pb::ReferralState,
    hold_state: pb::HoldState,
) {
    let (gba, yunnan) = (client(p, "gba"), client(p, "yunnan"));
    let r = wait_referral(p, &gba, id, want.as_str_name(), |r| {
        stage(r) == want && state(r) == referral_state
    })
    .await;
    let remote = r.remote.expect("remote part");
    assert_eq!(remote.attempt, 1);
    assert_eq!(remote.region, "yunnan");
    let holds = yunnan_holds(&yunnan, n).await;
    assert_eq!(
        holds.len(),
        1,
        "one hold in yunnan for the attempt: {holds:#?}"
    );
    assert_eq!(holds[0].hold_id, remote.hold_id, "{holds:#?}");
    assert_eq!(
        pb::HoldState::try_from(holds[0].state).unwrap_or_default(),
        hold_state,
        "{holds:#?}"
    );
}

/// Accepts gba's referral `id` (its bed in yunnan is then confirmed by the driver).
async fn accept(gba: &Client, id: u64) {
    gba.accept_referral(pb::AcceptReferralRequest {
        request_id: ninety_client::new_request_id(),
        referral_id: id,
        ..Default::default()
    })
    .await
    .expect("accept");
}

/// Referral `id` of patient `n` ends accepted, its bed confirmed on both sides.
async fn confirmed_on_both(p: &Procs, id: u64, n: u64) {
    check_both(
        p,
        id,
        n,
        pb::RemoteBedStage::Confirmed,
        pb::ReferralState::Accepted,
        pb::HoldState::Confirmed,
    )
    .await;
}

/// Loads the cluster and returns gba's and yunnan's clients and yunnan's ward.
async fn ready(p: &Procs) -> (Client, u32) {
    let gba = client(p, "gba");
    first_ward(&gba, p, REGION_LOAD_WAIT).await;
    let ward = first_ward(&client(p, "yunnan"), p, REGION_LOAD_WAIT).await;
    (gba, ward)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cross_region_referral_is_confirmed_on_both_sides() {
    crate::bounded(async {
        let p = start();
        let (gba, ward) = ready(&p).await;
        let yunnan = client(&p, "yunnan");
        let before = held_beds(&yunnan, ward).await;
        let id = triaged(&gba, 1).await;
        let acked = hold_remote(&gba, id, ward).await;
        assert_eq!(stage(&acked), pb::RemoteBedStage::Holding, "{acked:#?}");
        let held = wait_referral(&p, &gba, id, "held", |r| {
            stage(r) == pb::RemoteBedStage::Held
        })
        .await;
        assert_eq!(state(&held), pb::ReferralState::Matched, "{held:#?}");
        // The bed is held in yunnan: its ward availability shows it.
        assert_eq!(held_beds(&yunnan, ward).await, before + 1);
        accept(&gba, id).await;
        confirmed_on_both(&p, id, 1).await;
        check_bad_asks_refused(&gba).await;
    })
    .await;
}

/// Held beds of yunnan's `ward`.
async fn held_beds(yunnan: &Client, ward: u32) -> u32 {
    let r = yunnan
        .ward_availability(pb::WardAvailabilityRequest {
            hospital_id: 1,
            ward_ids: vec![ward],
            ..Default::default()
        })
        .await
        .expect("yunnan's ward");
    r.wards.first().map_or(0, |w| w.held_beds)
}

/// A bad HoldRemoteBed is refused naming the field as sent, before the log.
async fn check_bad_asks_refused(gba: &Client) {
    let bad = |region: &str, ward_id: u32, ttl_ms: u64| pb::HoldRemoteBedRequest {
        request_id: ninety_client::new_request_id(),
        referral_id: 1,
        region: region.into(),
        ward_id,
        ttl_ms,
    };
    for (req, field) in [
        (bad("Yunnan", 1, TTL_MS), "region"),
        (bad("yunnan", 0, TTL_MS), "ward_id"),
        (bad("yunnan", 1, 1), "ttl_ms"),
    ] {
        let e = gba.hold_remote_bed(req).await.expect_err(field);
        assert_eq!(e.code(), tonic::Code::InvalidArgument, "{e:?}");
        let r = ninety_client::rejection(&e).expect("rejection");
        assert_eq!(r.field, field, "{e:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_of_gba_leader_after_hold_remote_bed_and_after_accept() {
    crate::bounded(async {
        let mut p = start();
        let (gba, ward) = ready(&p).await;
        // Killed right after HoldRemoteBed is acknowledged: the new leader drives it.
        let id = triaged(&gba, 2).await;
        hold_remote(&gba, id, ward).await;
        let victim = leader_of(&p, "gba").await;
        kill_and_restart(&mut p, victim).await;
        wait_referral(&p, &gba, id, "held", |r| {
            stage(r) == pb::RemoteBedStage::Held
        })
        .await;
        // Killed right after AcceptReferral: the confirm step is driven by the next leader.
        accept(&gba, id).await;
        let victim = leader_of(&p, "gba").await;
        kill_and_restart(&mut p, victim).await;
        confirmed_on_both(&p, id, 2).await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_of_yunnan_leader_while_holding() {
    crate::bounded(async {
        let mut p = start();
        let (gba, ward) = ready(&p).await;
        let id = triaged(&gba, 3).await;
        hold_remote(&gba, id, ward).await;
        let victim = leader_of(&p, "yunnan").await;
        kill_and_restart(&mut p, victim).await;
        wait_referral(&p, &gba, id, "held", |r| {
            stage(r) == pb::RemoteBedStage::Held
        })
        .await;
        accept(&gba, id).await;
        confirmed_on_both(&p, id, 3).await;
    })
    .await;
}

/// Arms crash point `point` on node `id`: it aborts there once (`runtime::crash_point`).
fn arm(p: &Procs, id: u64, point: &str) {
    std::fs::write(p.data_dir(id).join("CRASH_AT"), point).expect("arm the crash point");
}

/// Waits until node `id` died at its armed crash point, then starts it again.
async fn crashed_then_restart(p: &mut Procs, id: u64, point: &str) {
    let deadline = Instant::now() + STEP_WAIT;
    loop {
        let child = p.children.get_mut(&id).expect("a running node");
        if child.try_wait().expect("wait on the node").is_some() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "node {id} never reached {point}\n{}",
            p.logs(&[1, 2, 3])
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        p.log(id).contains("crash point reached"),
        "node {id} died, but not at {point}:\n{}",
        p.log(id)
    );
    p.children.remove(&id);
    p.spawn(id, true);
}

/// Row 2 of the protocol's failure table at each step: gba's leader dies after yunnan
/// answered the step and before the answer is recorded in gba (a crash point, not a timed
/// kill). The next leader repeats the step under the same id; yunnan's answer is the first
/// one, and each referral ends with exactly one hold in yunnan.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crash_between_the_answer_and_its_record_at_every_step() {
    crate::bounded(async {
        let mut p = start();
        let (gba, ward) = ready(&p).await;
        let id = triaged(&gba, 5).await;
        for (point, act) in [
            ("remote-answered-hold", "hold"),
            ("remote-answered-confirm", "accept"),
        ] {
            let victim = leader_of(&p, "gba").await;
            arm(&p, victim, point);
            if act == "hold" {
                hold_remote(&gba, id, ward).await;
            } else {
                accept(&gba, id).await;
            }
            crashed_then_restart(&mut p, victim, point).await;
            if act == "hold" {
                wait_referral(&p, &gba, id, "held", |r| {
                    stage(r) == pb::RemoteBedStage::Held
                })
                .await;
            }
        }
        confirmed_on_both(&p, id, 5).await;
        // Released: cancelled while held, the leader dies after yunnan let the bed go.
        let id = triaged(&gba, 6).await;
        hold_remote(&gba, id, ward).await;
        wait_referral(&p, &gba, id, "held", |r| {
            stage(r) == pb::RemoteBedStage::Held
        })
        .await;
        let victim = leader_of(&p, "gba").await;
        arm(&p, victim, "remote-answered-release");
        gba.cancel_referral(pb::CancelReferralRequest {
            request_id: ninety_client::new_request_id(),
            referral_id: id,
            reason: "patient-recovered".into(),
        })
        .await
        .expect("cancel");
        crashed_then_restart(&mut p, victim, "remote-answered-release").await;
        check_both(
            &p,
            id,
            6,
            pb::RemoteBedStage::Released,
            pb::ReferralState::Cancelled,
            pb::HoldState::Released,
        )
        .await;
    })
    .await;
}
