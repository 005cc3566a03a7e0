//! The client API end to end through `ninety_client`: every service's happy path on a
//! 3-node GBA cluster, and each error code provoked on purpose (INVALID_ARGUMENT with the
//! field in the Rejection, FAILED_PRECONDITION, NOT_FOUND, DEADLINE_EXCEEDED against a
//! cut-off leader, UNAVAILABLE with two of three nodes dead, RESOURCE_EXHAUSTED with a
//! one-slot proposal queue).

use crate::harness::*;
use ninety_client::Client;
use ninety_engine::generate;
use ninety_proto::v1 as pb;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tonic::Code;

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

fn patient(n: u64) -> String {
    format!("{:032x}", 0xa11_0000_u64 + n)
}

fn id(tag: &str) -> String {
    format!("{tag}-{}", ninety_client::new_request_id())
}

fn client(p: &Procs, ids: &[u64]) -> Client {
    p.client_of(ids, Duration::from_secs(10))
}

fn expect_code<T: std::fmt::Debug>(r: Result<T, tonic::Status>, code: Code) -> pb::Rejection {
    let s = r.expect_err("expected a refusal");
    assert_eq!(s.code(), code, "{s:?}");
    ninety_client::rejection(&s).unwrap_or_default()
}

fn tr(start_ms: u64, end_ms: u64) -> Option<pb::TimeRange> {
    Some(pb::TimeRange { start_ms, end_ms })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_service_and_every_error_code() {
    crate::bounded(async {
        let region = generate::region(generate::Preset::Gba, generate::DEFAULT_SEED);
        let opts = Opts {
            fault_injection: true,
            region: Some("gba"),
            ..Opts::default()
        };
        let p = Procs::start(&[1, 2, 3], &[1, 2, 3], opts);
        let leader = p.wait_ready(Duration::from_secs(30)).await;
        let c = client(&p, &[1, 2, 3]);

        // ---- Scheduling ----
        let remote: Vec<&ninety_engine::Doctor> =
            region.doctors.iter().filter(|d| d.remote).take(2).collect();
        let (a, b) = (remote[0], remote[1]);
        let minute = 60_000;
        let t = (now_ms() / minute + 3 * 24 * 60) * minute;
        let spec = |start_ms: u64, mode: pb::Mode| pb::SlotSpec {
            start_ms,
            duration_minutes: 60,
            mode: mode as i32,
            capacity: 3,
            referral_reserved: 1,
            cancel_before_minutes: 0,
            overbook: 0,
        };
        let published = c
            .publish_schedule(pb::PublishScheduleRequest {
                request_id: id("pub-a"),
                doctor_id: a.id.0,
                slots: vec![spec(t, pb::Mode::Remote)],
            })
            .await
            .expect("publish a");
        assert_eq!(published.slots.len(), 1);
        let slot_t = published.slots[0].slot_id;
        // A slot starting in a few seconds (for MarkNoShow), with a doctor free then; the
        // overlap refusal names the slot field in the dotted form.
        let soon = (now_ms() / 1000 + 6) * 1000;
        let mut slot_soon = None;
        for d in region
            .doctors
            .iter()
            .filter(|d| d.id != a.id && d.id != b.id)
            .take(40)
        {
            let mut short = spec(soon, pb::Mode::InPerson);
            short.duration_minutes = 1;
            match c
                .publish_schedule(pb::PublishScheduleRequest {
                    request_id: id("pub-soon"),
                    doctor_id: d.id.0,
                    slots: vec![short],
                })
                .await
            {
                Ok(r) => {
                    slot_soon = Some(r.slots[0].slot_id);
                    break;
                }
                Err(s) => {
                    let r = ninety_client::rejection(&s).unwrap_or_default();
                    assert_eq!(r.field, "slots.0.start_ms", "{s:?}");
                }
            }
        }
        let slot_soon = slot_soon.expect("a doctor free in the next minute");
        c.publish_schedule(pb::PublishScheduleRequest {
            request_id: id("pub-b"),
            doctor_id: b.id.0,
            slots: vec![spec(t, pb::Mode::Remote)],
        })
        .await
        .expect("publish b");
        let found = c
            .find_slots(pb::FindSlotsRequest {
                doctor_id: a.id.0,
                window: tr(t, t + minute),
                ..Default::default()
            })
            .await
            .expect("find");
        assert_eq!(
            found.slots.iter().map(|s| s.slot_id).collect::<Vec<_>>(),
            [slot_t]
        );

        let hold = |slot_id, n, rid: String| pb::HoldSlotRequest {
            request_id: rid,
            slot_id,
            patient_ref: patient(n),
            ttl_ms: 0,
            channel: pb::Channel::Public as i32,
            referral_id: 0,
        };
        let held = c
            .hold_slot(hold(slot_t, 1, id("hs")))
            .await
            .expect("hold slot");
        let h = held.booking.expect("booking");
        assert_eq!(h.state, pb::BookingState::Held as i32);
        let booked = c
            .book_slot(pb::BookSlotRequest {
                request_id: id("bs"),
                hold_id: h.hold_id,
            })
            .await
            .expect("book");
        assert_eq!(
            booked.booking.unwrap().state,
            pb::BookingState::Booked as i32
        );
        let cancelled = c
            .cancel_booking(pb::CancelBookingRequest {
                request_id: id("cb"),
                hold_id: h.hold_id,
                reason: "patient-request".into(),
            })
            .await
            .expect("cancel");
        assert_eq!(
            cancelled.booking.unwrap().state,
            pb::BookingState::Cancelled as i32
        );
        // A seat for the no-show check, starting in a few seconds.
        let soon_hold = c
            .hold_slot(hold(slot_soon, 2, id("hs2")))
            .await
            .expect("hold soon");
        let soon_id = soon_hold.booking.unwrap().hold_id;
        c.book_slot(pb::BookSlotRequest {
            request_id: id("bs2"),
            hold_id: soon_id,
        })
        .await
        .expect("book soon");
        let joined = c
            .join_waitlist(pb::JoinWaitlistRequest {
                request_id: id("jw"),
                doctor_id: a.id.0,
                patient_ref: patient(3),
                urgency: pb::Urgency::P3 as i32,
                window: None,
                mode: 0,
                channel: pb::Channel::Public as i32,
                referral_id: 0,
            })
            .await
            .expect("join waitlist");
        assert_eq!(joined.position, 1);
        c.leave_waitlist(pb::LeaveWaitlistRequest {
            request_id: id("lw"),
            doctor_id: a.id.0,
            patient_ref: patient(3),
        })
        .await
        .expect("leave waitlist");
        let jc = c
            .hold_joint_consult(pb::HoldJointConsultRequest {
                request_id: id("hj"),
                patient_ref: patient(4),
                doctor_ids: vec![a.id.0, b.id.0],
                window: tr(t, t + 60 * minute),
                duration_minutes: 30,
                ttl_ms: 120_000,
                requesting_hospital_id: a.hospital.0,
            })
            .await
            .expect("hold joint consult")
            .consult
            .expect("consult");
        assert_eq!(jc.doctor_ids, [a.id.0, b.id.0]);
        assert_eq!(jc.start_ms, t);
        let released = c
            .release_joint_consult(pb::ReleaseJointConsultRequest {
                request_id: id("rj"),
                consult_id: jc.consult_id,
                reason: "rescheduled".into(),
            })
            .await
            .expect("release joint");
        assert_eq!(
            released.consult.unwrap().state,
            pb::ConsultState::Released as i32
        );
        let jc = c
            .hold_joint_consult(pb::HoldJointConsultRequest {
                request_id: id("hj2"),
                patient_ref: patient(4),
                doctor_ids: vec![a.id.0, b.id.0],
                window: tr(t, t + 60 * minute),
                duration_minutes: 30,
                ttl_ms: 0,
                requesting_hospital_id: 0,
            })
            .await
            .expect("hold joint consult again")
            .consult
            .expect("consult");
        let booked = c
            .book_joint_consult(pb::BookJointConsultRequest {
                request_id: id("bj"),
                consult_id: jc.consult_id,
            })
            .await
            .expect("book joint");
        assert_eq!(
            booked.consult.unwrap().state,
            pb::ConsultState::Booked as i32
        );

        // ---- Matching ----
        let specialty =
            |s: ninety_engine::Specialty| ninety_cluster::server::convert::specialty_name(s);
        let a_specialty = specialty(a.specialties[0]);
        let matched = c
            .match_specialist(pb::MatchSpecialistRequest {
                from_hospital_id: a.hospital.0,
                specialty: a_specialty.clone(),
                urgency: pb::Urgency::P3 as i32,
                window: tr(t, t + 60 * minute),
                ..Default::default()
            })
            .await
            .expect("match specialist");
        assert!(
            matched.candidates.iter().any(|m| m.slot_id == slot_t),
            "{matched:?}"
        );
        let alloc = c
            .allocate_slot(pb::AllocateSlotRequest {
                request_id: id("as"),
                patient_ref: patient(5),
                from_hospital_id: a.hospital.0,
                specialty: a_specialty.clone(),
                urgency: pb::Urgency::P3 as i32,
                mode: pb::Mode::Remote as i32,
                window: tr(t, t + 60 * minute),
                channel: pb::Channel::Public as i32,
                ..Default::default()
            })
            .await
            .expect("allocate slot");
        assert_eq!(alloc.booking.unwrap().state, pb::BookingState::Held as i32);
        let ward = &region.wards[0].ward;
        let bed = c
            .allocate_bed(pb::AllocateBedRequest {
                request_id: id("ab"),
                patient_ref: patient(6),
                from_hospital_id: ward.hospital.0,
                specialty: specialty(ward.specialty),
                urgency: pb::Urgency::P2 as i32,
                ttl_ms: 60_000,
                ..Default::default()
            })
            .await
            .expect("allocate bed");
        assert_eq!(bed.hold.unwrap().state, pb::HoldState::Active as i32);

        // ---- Referrals ----
        let from = region.hospitals[0].id.0;
        let rr = c
            .request_referral(pb::RequestReferralRequest {
                request_id: id("rr"),
                patient_ref: patient(7),
                from_hospital_id: from,
                ..Default::default()
            })
            .await
            .expect("request referral")
            .referral
            .unwrap();
        assert_eq!(rr.state, pb::ReferralState::Requested as i32);
        let r_id = rr.referral_id;
        c.triage_referral(pb::TriageReferralRequest {
            request_id: id("tr"),
            referral_id: r_id,
            urgency: pb::Urgency::P2 as i32,
            specialty: specialty(ward.specialty),
            note: String::new(),
        })
        .await
        .expect("triage");
        let bed_hold = c
            .hold_bed(pb::HoldBedRequest {
                request_id: id("hb"),
                ward_id: ward.id.0,
                patient_ref: patient(7),
                ttl_ms: 600_000,
                ..Default::default()
            })
            .await
            .expect("hold bed")
            .hold
            .unwrap();
        let m = c
            .match_referral(pb::MatchReferralRequest {
                request_id: id("mr"),
                referral_id: r_id,
                bed_hold_id: bed_hold.hold_id,
                ..Default::default()
            })
            .await
            .expect("match referral")
            .referral
            .unwrap();
        assert_eq!(m.state, pb::ReferralState::Matched as i32);
        assert_eq!(m.to_hospital_id, ward.hospital.0);
        let wl = c
            .worklist(pb::WorklistRequest {
                hospital_id: ward.hospital.0,
                direction: pb::WorklistDirection::Incoming as i32,
                ..Default::default()
            })
            .await
            .expect("worklist");
        assert!(wl.referrals.iter().any(|r| r.referral_id == r_id), "{wl:?}");
        c.accept_referral(pb::AcceptReferralRequest {
            request_id: id("ar"),
            referral_id: r_id,
            hospital_id: ward.hospital.0,
        })
        .await
        .expect("accept");
        c.start_transit(pb::StartTransitRequest {
            request_id: id("st"),
            referral_id: r_id,
            eta_ms: 0,
        })
        .await
        .expect("transit");
        c.admit_referral(pb::AdmitReferralRequest {
            request_id: id("adm"),
            referral_id: r_id,
        })
        .await
        .expect("admit");
        let done = c
            .complete_referral(pb::CompleteReferralRequest {
                request_id: id("cr"),
                referral_id: r_id,
                outcome: "discharged".into(),
            })
            .await
            .expect("complete")
            .referral
            .unwrap();
        assert_eq!(done.state, pb::ReferralState::Completed as i32);
        assert_eq!(done.history.len(), 7);
        let got = c
            .get_referral(pb::GetReferralRequest {
                referral_id: r_id,
                consistency: 0,
            })
            .await
            .expect("get referral");
        assert_eq!(
            got.referral.unwrap().state,
            pb::ReferralState::Completed as i32
        );
        let second = c
            .request_referral(pb::RequestReferralRequest {
                request_id: id("rr2"),
                patient_ref: patient(8),
                from_hospital_id: from,
                ..Default::default()
            })
            .await
            .unwrap()
            .referral
            .unwrap();
        c.reject_referral(pb::RejectReferralRequest {
            request_id: id("rej"),
            referral_id: second.referral_id,
            hospital_id: from,
            reason: "not-indicated".into(),
        })
        .await
        .expect("reject");
        let third = c
            .request_referral(pb::RequestReferralRequest {
                request_id: id("rr3"),
                patient_ref: patient(9),
                from_hospital_id: from,
                ..Default::default()
            })
            .await
            .unwrap()
            .referral
            .unwrap();
        c.cancel_referral(pb::CancelReferralRequest {
            request_id: id("can"),
            referral_id: third.referral_id,
            reason: "withdrawn".into(),
        })
        .await
        .expect("cancel referral");
        // TRIAGED with no capacity reported shows as NO_CAPACITY.
        let fourth = c
            .request_referral(pb::RequestReferralRequest {
                request_id: id("rr4"),
                patient_ref: patient(10),
                from_hospital_id: from,
                ..Default::default()
            })
            .await
            .unwrap()
            .referral
            .unwrap();
        c.triage_referral(pb::TriageReferralRequest {
            request_id: id("tr4"),
            referral_id: fourth.referral_id,
            urgency: pb::Urgency::P3 as i32,
            specialty: "cardiology".into(),
            note: String::new(),
        })
        .await
        .unwrap();
        let nc = c
            .report_no_capacity(pb::ReportNoCapacityRequest {
                request_id: id("nc"),
                referral_id: fourth.referral_id,
                hospital_id: from,
                reason: "icu-full".into(),
            })
            .await
            .expect("no capacity")
            .referral
            .unwrap();
        assert_eq!(nc.state, pb::ReferralState::NoCapacity as i32);
        // Matched again, to a bed held for it; the matched hospital then cannot take the
        // patient after all: the hold goes and the referral is NO_CAPACITY with the reason.
        let held = c
            .hold_bed(pb::HoldBedRequest {
                request_id: id("hb4"),
                ward_id: ward.id.0,
                patient_ref: patient(10),
                ttl_ms: 600_000,
                channel: pb::Channel::Referral as i32,
                referral_id: fourth.referral_id,
                ..Default::default()
            })
            .await
            .expect("referral bed")
            .hold
            .unwrap();
        c.match_referral(pb::MatchReferralRequest {
            request_id: id("mr4"),
            referral_id: fourth.referral_id,
            bed_hold_id: held.hold_id,
            ..Default::default()
        })
        .await
        .expect("match again");
        let nc = c
            .report_no_capacity(pb::ReportNoCapacityRequest {
                request_id: id("nc-matched"),
                referral_id: fourth.referral_id,
                hospital_id: ward.hospital.0,
                reason: "no-staff".into(),
            })
            .await
            .expect("no capacity after the match")
            .referral
            .unwrap();
        assert_eq!(nc.state, pb::ReferralState::NoCapacity as i32);
        assert_eq!(nc.reason_note, "no-staff", "{nc:?}");
        let gone = c
            .get_hold(pb::GetHoldRequest {
                hold_id: held.hold_id,
                consistency: 0,
            })
            .await
            .expect("get hold")
            .hold
            .unwrap();
        assert_eq!(gone.state, pb::HoldState::Released as i32);
        let rejected = c
            .get_referral(pb::GetReferralRequest {
                referral_id: second.referral_id,
                consistency: 0,
            })
            .await
            .expect("get rejected")
            .referral
            .unwrap();
        assert_eq!(rejected.state, pb::ReferralState::Rejected as i32);
        let again = c
            .reject_referral(pb::RejectReferralRequest {
                request_id: id("rej-again"),
                referral_id: second.referral_id,
                hospital_id: from,
                reason: "not-indicated".into(),
            })
            .await;
        expect_code(again, Code::FailedPrecondition);

        // ---- Bed batches and the stream ----
        let wards: Vec<u32> = region.wards.iter().take(4).map(|w| w.ward.id.0).collect();
        let mut items: Vec<pb::HoldBedRequest> = (0..12)
            .map(|i| pb::HoldBedRequest {
                request_id: id("item"),
                ward_id: wards[i % wards.len()],
                patient_ref: patient(100 + i as u64),
                ttl_ms: 600_000,
                ..Default::default()
            })
            .collect();
        items[3].ttl_ms = 1;
        let batch = pb::HoldBedsRequest {
            request_id: id("batch"),
            items: items.clone(),
        };
        let results = c.hold_beds(batch.clone()).await.expect("hold beds").results;
        assert_eq!(results.len(), 12);
        let holds: Vec<u64> = results
            .iter()
            .filter_map(|r| match &r.outcome {
                Some(pb::bed_hold_result::Outcome::Hold(h)) => Some(h.hold_id),
                _ => None,
            })
            .collect();
        assert_eq!(holds.len(), 11, "{results:?}");
        match &results[3].outcome {
            Some(pb::bed_hold_result::Outcome::Rejection(r)) => {
                assert_eq!(r.field, "items.3.ttl_ms");
                assert_eq!(r.code, pb::RejectionCode::InvalidArgument as i32);
            }
            other => panic!("item 3: {other:?}"),
        }
        // A retry of the batch replays every item.
        let again = c.hold_beds(batch).await.expect("retry batch").results;
        assert!(again.iter().filter(|r| r.commit.is_some()).all(|r| r
            .commit
            .as_ref()
            .unwrap()
            .replayed));
        let resolutions = holds
            .iter()
            .enumerate()
            .map(|(i, h)| pb::HoldResolution {
                request_id: id("res"),
                hold_id: *h,
                action: if i % 2 == 0 {
                    pb::HoldAction::Confirm
                } else {
                    pb::HoldAction::Release
                } as i32,
                reason: String::new(),
            })
            .collect();
        let resolved = c
            .resolve_holds(pb::ResolveHoldsRequest {
                request_id: id("resolve"),
                items: resolutions,
            })
            .await
            .expect("resolve holds")
            .results;
        assert!(resolved.iter().all(|r| r.commit.is_some()), "{resolved:?}");

        let ops: Vec<pb::BedOp> = (0..40u64)
            .map(|seq| pb::BedOp {
                seq,
                op: Some(if seq == 39 {
                    pb::bed_op::Op::Get(pb::GetHoldRequest {
                        hold_id: holds[0],
                        consistency: 0,
                    })
                } else {
                    pb::bed_op::Op::Hold(pb::HoldBedRequest {
                        request_id: id("op"),
                        ward_id: wards[seq as usize % wards.len()],
                        patient_ref: patient(200 + seq),
                        ttl_ms: 600_000,
                        ..Default::default()
                    })
                }),
            })
            .collect();
        let mut out = p
            .beds(leader)
            .stream(tokio_stream::iter(ops))
            .await
            .expect("stream")
            .into_inner();
        let mut seqs = std::collections::BTreeSet::new();
        while let Some(r) = out.message().await.expect("stream result") {
            assert!(r.result.is_some_and(|x| x.outcome.is_some()));
            seqs.insert(r.seq);
        }
        assert_eq!(seqs.len(), 40);

        // ---- Error codes ----
        // INVALID_ARGUMENT names the field.
        let mut bad = hold(slot_t, 11, id("bad"));
        bad.patient_ref = "Alice".into();
        let r = expect_code(c.hold_slot(bad).await, Code::InvalidArgument);
        assert_eq!(r.field, "patient_ref");
        // FAILED_PRECONDITION: confirming a released hold.
        let h = c
            .hold_bed(pb::HoldBedRequest {
                request_id: id("fp"),
                ward_id: wards[0],
                patient_ref: patient(12),
                ttl_ms: 60_000,
                ..Default::default()
            })
            .await
            .unwrap()
            .hold
            .unwrap();
        c.release_hold(pb::ReleaseHoldRequest {
            request_id: id("rel"),
            hold_id: h.hold_id,
            reason: String::new(),
        })
        .await
        .unwrap();
        let r = expect_code(
            c.confirm_hold(pb::ConfirmHoldRequest {
                request_id: id("conf"),
                hold_id: h.hold_id,
            })
            .await,
            Code::FailedPrecondition,
        );
        assert_eq!(r.code, pb::RejectionCode::AlreadyResolved as i32);
        // NOT_FOUND.
        let r = expect_code(
            c.get_referral(pb::GetReferralRequest {
                referral_id: 999_999,
                consistency: 0,
            })
            .await,
            Code::NotFound,
        );
        assert_eq!(r.code, pb::RejectionCode::NotFound as i32);
        // The no-show, now that the slot has started.
        let wait = soon.saturating_sub(now_ms()) + 500;
        tokio::time::sleep(Duration::from_millis(wait)).await;
        let ns = c
            .mark_no_show(pb::MarkNoShowRequest {
                request_id: id("ns"),
                hold_id: soon_id,
            })
            .await
            .expect("no-show");
        assert_eq!(ns.booking.unwrap().state, pb::BookingState::NoShow as i32);

        // DEADLINE_EXCEEDED: a leader cut off from both followers cannot commit; a client
        // deadline shorter than the server's own answers DEADLINE_EXCEEDED, not CANCELLED.
        let leader = p.leader_among(&[1, 2, 3]).await.expect("leader");
        let others: Vec<u64> = [1, 2, 3].into_iter().filter(|i| *i != leader).collect();
        let faults = p.data_dir(leader).join("FAULTS");
        std::fs::write(&faults, format!("{},{}", others[0], others[1])).expect("cut");
        tokio::time::sleep(Duration::from_millis(250)).await;
        let mut req = tonic::Request::new(pb::HoldBedRequest {
            request_id: id("dl"),
            ward_id: wards[1],
            patient_ref: patient(13),
            ttl_ms: 60_000,
            ..Default::default()
        });
        req.set_timeout(Duration::from_millis(400));
        let r = p.beds(leader).hold_bed(req).await;
        assert_eq!(r.expect_err("cut-off write").code(), Code::DeadlineExceeded);
        std::fs::remove_file(&faults).expect("heal");
        p.converge(&[1, 2, 3], Duration::from_secs(15)).await;

        // UNAVAILABLE: two of three nodes dead, the survivor cannot commit or forward.
        let mut p = p;
        let leader = p.leader_among(&[1, 2, 3]).await.expect("leader");
        let survivor = [1, 2, 3].into_iter().find(|i| *i != leader).unwrap_or(1);
        for i in [1, 2, 3] {
            if i != survivor {
                p.kill(i);
            }
        }
        let r = p
            .beds(survivor)
            .hold_bed(pb::HoldBedRequest {
                request_id: id("un"),
                ward_id: wards[0],
                patient_ref: patient(14),
                ttl_ms: 60_000,
                ..Default::default()
            })
            .await;
        assert_eq!(r.expect_err("no quorum").code(), Code::Unavailable);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tiny_proposal_queue_answers_resource_exhausted() {
    crate::bounded(async {
        // Its own plain-text config below (loopback, no [tls]), so plain-text channels.
        let insecure = Opts {
            insecure: true,
            ..Opts::default()
        };
        let mut p = Procs::start(&[1], &[], insecure);
        let config = format!(
            "id = 1\nlisten = \"{}\"\npeer_listen = \"{}\"\ndata_dir = \"{}\"\nregion = \"test\"\n\
             init = true\ninitial_voters = [1]\nmax_pending_proposals = 1\ninsecure = true\n\
             cluster_id = \"{}\"\n",
            p.addr(1),
            p.peer_addr(1),
            p.data_dir(1).display(),
            p.cluster_id,
        );
        let path = p.dir.path().join("n1.toml");
        std::fs::write(&path, config).expect("config");
        let child = std::process::Command::new(env!("CARGO_BIN_EXE_ninety"))
            .args(["node", "--config"])
            .arg(&path)
            .env("RUST_LOG", "warn")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("spawn");
        p.children.insert(1, child);
        p.wait_ready(Duration::from_secs(20)).await;
        let wards = ward_ids(&p, 1).await;
        let mut set = tokio::task::JoinSet::new();
        let shared = p.beds(1);
        for i in 0..200u64 {
            let mut beds = shared.clone();
            let ward = wards[i as usize % wards.len()];
            set.spawn(async move {
                beds.hold_bed(pb::HoldBedRequest {
                    request_id: format!("{:032x}", 0xe0_0000 + i),
                    ward_id: ward,
                    patient_ref: patient(300 + i),
                    ttl_ms: 60_000,
                    ..Default::default()
                })
                .await
            });
        }
        let mut exhausted = 0;
        while let Some(r) = set.join_next().await {
            if let Err(s) = r.expect("task") {
                assert_eq!(s.code(), Code::ResourceExhausted, "{s:?}");
                exhausted += 1;
            }
        }
        assert!(exhausted > 0, "no call was refused with RESOURCE_EXHAUSTED");
        // A batch is admitted whole or not at all: two items never fit a bound of one, so
        // both are refused (outcome known: not proposed) and neither is applied.
        let item = |i: u64| pb::HoldBedRequest {
            request_id: format!("{:032x}", 0xe1_0000 + i),
            ward_id: wards[0],
            patient_ref: patient(600 + i),
            ttl_ms: 60_000,
            ..Default::default()
        };
        let batch = pb::HoldBedsRequest {
            request_id: format!("{:032x}", 0xe2_0000),
            items: vec![item(0), item(1)],
        };
        let results = p
            .beds(1)
            .hold_beds(batch)
            .await
            .expect("batch call")
            .into_inner()
            .results;
        assert_eq!(results.len(), 2);
        for r in &results {
            match &r.outcome {
                Some(pb::bed_hold_result::Outcome::Rejection(rej)) => {
                    assert_eq!(rej.code, pb::RejectionCode::Unavailable as i32, "{rej:?}");
                    assert!(rej.message.contains("ResourceExhausted"), "{rej:?}");
                }
                other => panic!("item admitted past the bound: {other:?}"),
            }
        }
        // One item fits.
        let one = pb::HoldBedsRequest {
            request_id: format!("{:032x}", 0xe2_0001),
            items: vec![item(2)],
        };
        let results = p
            .beds(1)
            .hold_beds(one)
            .await
            .expect("batch call")
            .into_inner()
            .results;
        assert!(
            matches!(
                results[0].outcome,
                Some(pb::bed_hold_result::Outcome::Hold(_))
            ),
            "{results:?}"
        );
    })
    .await;
}
