//! Bad requests from outside, through the real gRPC API of one 3-node GBA cluster (issue 11,
//! items 4 and 5): bytes that do not decode (hand-made HTTP/2 gRPC bodies, not the
//! project's client), a garbage frame on `BedHolds.Stream`, unknown enum values, fields
//! named as the client sent them, huge values not echoed back, and the Admin refusals.
//! Each must be `INVALID_ARGUMENT` (or the documented code), never `INTERNAL`, and the
//! cluster must come out of it whole: every node alive, the leader unchanged, the replicas
//! converged.
//!
//! Run: `cargo test -p ninety --test cluster validation`.

use crate::harness::*;
use bytes::Bytes;
use http_body_util::{BodyExt as _, Full};
use ninety_proto::v1 as pb;
use ninety_proto::v1::{
    matching_client::MatchingClient, referrals_client::ReferralsClient,
    scheduling_client::SchedulingClient,
};
use prost::Message as _;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use tonic::codegen::Service as _;
use tonic::{Code, Status};

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

fn rid(tag: &str) -> String {
    format!("validation-{tag}-{}", ninety_client::new_request_id())
}

fn patient(n: u64) -> String {
    format!("{:032x}", 0xfa11_0000_u64 + n)
}

/// The refusal's code and the field its `Rejection` names.
fn refused<T: std::fmt::Debug>(what: &str, r: Result<T, Status>) -> (Code, String) {
    let s = r.expect_err(what);
    let field = ninety_client::rejection(&s).unwrap_or_default().field;
    (s.code(), field)
}

/// The field a stock decoder finds: `google.rpc.BadRequest`'s first `FieldViolation`, read
/// with `tonic-types` alone (no ninety types), as grpcurl or any gRPC library would.
fn stock_field(s: &Status) -> Option<String> {
    use tonic_types::StatusExt as _;
    let bad = s.get_details_bad_request()?;
    bad.field_violations.first().map(|v| v.field.clone())
}

/// Asserts `INVALID_ARGUMENT` naming `field`, in the `Rejection` and in the standard
/// `BadRequest` both.
fn invalid<T: std::fmt::Debug>(what: &str, r: Result<T, Status>, field: &str) {
    let s = r.expect_err(what);
    assert_eq!(
        stock_field(&s).as_deref(),
        Some(field),
        "{what}: BadRequest of {s:?}"
    );
    assert_eq!(
        refused(what, Err::<(), _>(s)),
        (Code::InvalidArgument, field.to_string()),
        "{what}"
    );
}

/// One gRPC frame: flag byte, big-endian length, message.
fn frame(flag: u8, message: &[u8]) -> Vec<u8> {
    let mut out = vec![flag];
    out.extend((message.len() as u32).to_be_bytes());
    out.extend(message);
    out
}

/// What a raw call got back: the status and the messages before it.
struct Raw {
    status: Status,
    messages: Vec<Vec<u8>>,
}

/// Posts `body` (already framed, byte for byte) to `path` on node `id` over HTTP/2 and
/// reads the whole answer, the way any gRPC client in any language would see it.
async fn raw_call(p: &Procs, id: u64, path: &str, body: Vec<u8>) -> Raw {
    let mut channel = p.channel(id);
    std::future::poll_fn(|cx| channel.poll_ready(cx))
        .await
        .expect("channel ready");
    let request = http::Request::builder()
        .method("POST")
        .uri(path)
        .header("content-type", "application/grpc")
        .header("te", "trailers")
        .body(tonic::body::Body::new(Full::new(Bytes::from(body))))
        .expect("request");
    let answer = channel.call(request).await.expect("an HTTP answer");
    let (parts, body) = answer.into_parts();
    let collected = body.collect().await.expect("the whole body");
    let trailers = collected.trailers().cloned().unwrap_or_default();
    let data = collected.to_bytes();
    let status = Status::from_header_map(&parts.headers)
        .or_else(|| Status::from_header_map(&trailers))
        .expect("a grpc-status");
    let mut messages = Vec::new();
    let mut rest = &data[..];
    while rest.len() >= 5 {
        let len = u32::from_be_bytes([rest[1], rest[2], rest[3], rest[4]]) as usize;
        messages.push(rest[5..5 + len].to_vec());
        rest = &rest[5 + len..];
    }
    Raw { status, messages }
}

/// Deeply nested groups of an unknown field: prost's recursion limit, not a stack overflow.
fn deep_nesting() -> Vec<u8> {
    let mut out = vec![0x7b; 200]; // field 15, start group
    out.extend(vec![0x7c; 200]); // field 15, end group
    out
}

/// Each malformed body, unary, on the leader and on a follower: `INVALID_ARGUMENT`, with
/// the field path where prost knows it.
async fn undecodable_requests(p: &Procs, leader: u64, follower: u64) {
    let hold = "/ninety.v1.BedHolds/HoldBed";
    let cases: Vec<(&str, &str, Vec<u8>, &str)> = vec![
        (
            "invalid UTF-8",
            hold,
            frame(0, &[0x22, 0x01, 0xff]),
            "patient_ref",
        ),
        ("wire type 7", hold, frame(0, &[0x0f]), ""),
        ("field number 0", hold, frame(0, &[0x02, 0x00]), ""),
        (
            "truncated body",
            hold,
            frame(0, &[0x22, 0x05, b'a']),
            "patient_ref",
        ),
        ("garbage", hold, frame(0, &[0xff; 12]), ""),
        ("deep nesting", hold, frame(0, &deep_nesting()), ""),
        (
            "invalid UTF-8 in a batch item",
            "/ninety.v1.BedHolds/HoldBeds",
            frame(0, &[0x12, 0x03, 0x22, 0x01, 0xff]),
            "items.patient_ref",
        ),
        (
            "wire type 7, another service",
            "/ninety.v1.Scheduling/FindSlots",
            frame(0, &[0x0f]),
            "",
        ),
        (
            "garbage to Admin",
            "/ninety.v1.Admin/ImportRegion",
            frame(0, &[0x12, 0x7f]),
            "region_json",
        ),
        // The framing around the message (tonic's checks, before any handler).
        ("frame cut short", hold, vec![0, 0, 0, 0, 50, 1, 2, 3], ""),
        ("no message", hold, Vec::new(), ""),
        ("compression flag 2", hold, frame(2, &[]), ""),
        ("compressed, no encoding", hold, frame(1, &[0x08, 0x01]), ""),
    ];
    for node in [leader, follower] {
        for (what, path, body, field) in &cases {
            let raw = raw_call(p, node, path, body.clone()).await;
            let s = &raw.status;
            assert_eq!(s.code(), Code::InvalidArgument, "{what} on n{node}: {s:?}");
            let r = ninety_client::rejection(s).unwrap_or_default();
            eprintln!("{what}: field {:?}: {}", r.field, s.message());
            assert_eq!(r.field, *field, "{what}: {s:?}");
            assert_eq!(stock_field(s).as_deref(), Some(*field), "{what}: {s:?}");
        }
    }
}

/// A `BedOp` frame.
fn op_frame(seq: u64, op: pb::bed_op::Op) -> Vec<u8> {
    frame(0, &pb::BedOp { seq, op: Some(op) }.encode_to_vec())
}

/// A garbage frame (and a frame cut short) after two accepted ops: both ops are answered,
/// then the stream ends with `INVALID_ARGUMENT`. The get asks for an unknown consistency
/// and is refused naming it.
async fn broken_streams(p: &Procs, node: u64) {
    for (n, tail) in [(0, frame(0, &[0x0f])), (1, vec![0, 0, 0, 0, 40, 8])] {
        let mut body = op_frame(
            1,
            pb::bed_op::Op::Hold(pb::HoldBedRequest {
                request_id: rid("stream-hold"),
                ward_id: 2,
                patient_ref: patient(100 + n),
                ttl_ms: 60_000,
                ..Default::default()
            }),
        );
        body.extend(op_frame(
            2,
            pb::bed_op::Op::Get(pb::GetHoldRequest {
                hold_id: 1,
                consistency: 99,
            }),
        ));
        body.extend(tail);
        let raw = raw_call(p, node, "/ninety.v1.BedHolds/Stream", body).await;
        assert_eq!(raw.status.code(), Code::InvalidArgument, "{:?}", raw.status);
        let mut results: Vec<pb::BedOpResult> = raw
            .messages
            .iter()
            .map(|m| pb::BedOpResult::decode(&m[..]).expect("a BedOpResult"))
            .collect();
        results.sort_by_key(|r| r.seq);
        let seqs: Vec<u64> = results.iter().map(|r| r.seq).collect();
        assert_eq!(seqs, [1, 2], "every accepted op answered: {results:?}");
        let outcome = |i: usize| results[i].result.clone().and_then(|r| r.outcome);
        assert!(
            matches!(outcome(0), Some(pb::bed_hold_result::Outcome::Hold(_))),
            "{results:?}"
        );
        let Some(pb::bed_hold_result::Outcome::Rejection(r)) = outcome(1) else {
            panic!("the get with consistency 99 was not refused: {results:?}")
        };
        assert_eq!(r.field, "consistency");
    }
}

/// Unknown enum values are refused naming the field, on every read call and elsewhere.
async fn unknown_enum_values(p: &Procs, node: u64) {
    let mut beds = p.beds(node);
    let mut sched = SchedulingClient::new(p.channel(node));
    let mut matching = MatchingClient::new(p.channel(node));
    let mut referrals = ReferralsClient::new(p.channel(node));
    for bad in [-1, 3, 99] {
        let r = beds
            .get_hold(pb::GetHoldRequest {
                hold_id: 1,
                consistency: bad,
            })
            .await;
        invalid("GetHold", r, "consistency");
        let r = beds
            .ward_availability(pb::WardAvailabilityRequest {
                hospital_id: 1,
                ward_ids: vec![],
                consistency: bad,
            })
            .await;
        invalid("WardAvailability", r, "consistency");
        let r = sched
            .find_slots(pb::FindSlotsRequest {
                doctor_id: 2,
                consistency: bad,
                ..Default::default()
            })
            .await;
        invalid("FindSlots", r, "consistency");
        let r = matching
            .match_specialist(pb::MatchSpecialistRequest {
                from_hospital_id: 63,
                specialty: "cardiology".into(),
                urgency: pb::Urgency::P2 as i32,
                consistency: bad,
                ..Default::default()
            })
            .await;
        invalid("MatchSpecialist", r, "consistency");
        let r = referrals
            .get_referral(pb::GetReferralRequest {
                referral_id: 1,
                consistency: bad,
            })
            .await;
        invalid("GetReferral", r, "consistency");
        let r = referrals
            .worklist(pb::WorklistRequest {
                hospital_id: 63,
                consistency: bad,
                ..Default::default()
            })
            .await;
        invalid("Worklist", r, "consistency");
    }
    other_enums(p, node).await;
}

/// The other enum fields: urgency, channel, mode, min_tier, direction, action.
async fn other_enums(p: &Procs, node: u64) {
    let mut beds = p.beds(node);
    let mut sched = SchedulingClient::new(p.channel(node));
    let mut matching = MatchingClient::new(p.channel(node));
    let mut referrals = ReferralsClient::new(p.channel(node));
    let hold = |urgency: i32, channel: i32| pb::HoldBedRequest {
        request_id: rid("enum"),
        ward_id: 2,
        patient_ref: patient(200),
        ttl_ms: 60_000,
        urgency,
        channel,
        ..Default::default()
    };
    invalid("urgency", beds.hold_bed(hold(99, 0)).await, "urgency");
    invalid("channel", beds.hold_bed(hold(0, -4)).await, "channel");
    let find = pb::FindSlotsRequest {
        doctor_id: 2,
        mode: 42,
        ..Default::default()
    };
    invalid("mode", sched.find_slots(find).await, "mode");
    let ask = pb::MatchSpecialistRequest {
        from_hospital_id: 63,
        specialty: "cardiology".into(),
        urgency: pb::Urgency::P2 as i32,
        min_tier: 9,
        ..Default::default()
    };
    invalid("min_tier", matching.match_specialist(ask).await, "min_tier");
    let list = pb::WorklistRequest {
        hospital_id: 63,
        direction: 7,
        ..Default::default()
    };
    invalid("direction", referrals.worklist(list).await, "direction");
    let resolve = pb::ResolveHoldsRequest {
        request_id: rid("resolve"),
        items: vec![pb::HoldResolution {
            request_id: rid("resolve-item"),
            hold_id: 1,
            action: 9,
            ..Default::default()
        }],
    };
    let results = beds.resolve_holds(resolve).await.expect("a batch answer");
    let outcome = results.into_inner().results[0].outcome.clone();
    let Some(pb::bed_hold_result::Outcome::Rejection(r)) = outcome else {
        panic!("action 9 accepted: {outcome:?}")
    };
    assert_eq!(r.field, "items.0.action");
}

/// Engine refusals name the field as the client sent it.
async fn fields_named_as_sent(p: &Procs, node: u64) {
    let mut sched = SchedulingClient::new(p.channel(node));
    let minute = 60_000;
    let future = (now_ms() / minute + 5 * 24 * 60) * minute;
    let publish = |start_ms: u64, referral_reserved: u32| pb::PublishScheduleRequest {
        request_id: rid("publish"),
        doctor_id: 2,
        slots: vec![pb::SlotSpec {
            start_ms,
            duration_minutes: 15,
            mode: pb::Mode::InPerson as i32,
            capacity: 1,
            referral_reserved,
            cancel_before_minutes: 0,
            overbook: 0,
        }],
    };
    let r = sched.publish_schedule(publish(minute, 0)).await;
    invalid("a slot in the past", r, "slots.0.start_ms");
    let r = sched.publish_schedule(publish(future, 5)).await;
    invalid("quota above capacity", r, "slots.0.referral_reserved");
    let r = sched.publish_schedule(publish(0, 0)).await;
    invalid("start 0", r, "slots.0.start_ms");
    let joint = pb::HoldJointConsultRequest {
        request_id: rid("joint"),
        patient_ref: patient(300),
        doctor_ids: vec![2, 3],
        window: Some(pb::TimeRange {
            start_ms: future,
            end_ms: future + 400 * 24 * 3_600_000,
        }),
        duration_minutes: 30,
        ..Default::default()
    };
    invalid(
        "a year-long window",
        sched.hold_joint_consult(joint).await,
        "window",
    );
    let join = || pb::JoinWaitlistRequest {
        request_id: rid("waitlist"),
        doctor_id: 2,
        patient_ref: patient(301),
        channel: pb::Channel::Public as i32,
        ..Default::default()
    };
    sched
        .join_waitlist(join())
        .await
        .expect("join the waitlist");
    invalid(
        "joined twice",
        sched.join_waitlist(join()).await,
        "patient_ref",
    );
}

/// A referral-channel waitlist entry names a triaged referral of the same patient
/// (`JoinWaitlistRequest.referral_id`): none, an unknown one or another patient's is
/// `INVALID_ARGUMENT` naming `referral_id`, an untriaged one `FAILED_PRECONDITION`, and a
/// triaged one is accepted.
async fn referral_waitlist(p: &Procs, node: u64) {
    let mut sched = SchedulingClient::new(p.channel(node));
    let mut referrals = ReferralsClient::new(p.channel(node));
    let referral = referrals
        .request_referral(pb::RequestReferralRequest {
            request_id: rid("referral"),
            patient_ref: patient(310),
            from_hospital_id: 63,
            ..Default::default()
        })
        .await
        .expect("request a referral")
        .into_inner()
        .referral
        .expect("the referral")
        .referral_id;
    let join = |patient_n: u64, referral_id: u64| pb::JoinWaitlistRequest {
        request_id: rid("referral-waitlist"),
        doctor_id: 2,
        patient_ref: patient(patient_n),
        channel: pb::Channel::Referral as i32,
        referral_id,
        ..Default::default()
    };
    let r = sched.join_waitlist(join(310, 0)).await;
    invalid("a referral entry without referral_id", r, "referral_id");
    let r = sched.join_waitlist(join(310, 999_999)).await;
    invalid("an unknown referral", r, "referral_id");
    let r = sched.join_waitlist(join(311, referral)).await;
    invalid("another patient's referral", r, "referral_id");
    let r = sched.join_waitlist(join(310, referral)).await;
    assert_eq!(refused("untriaged", r).0, Code::FailedPrecondition);
    referrals
        .triage_referral(pb::TriageReferralRequest {
            request_id: rid("triage"),
            referral_id: referral,
            urgency: pb::Urgency::P2 as i32,
            specialty: "cardiology".into(),
            note: String::new(),
        })
        .await
        .expect("triage");
    sched
        .join_waitlist(join(310, referral))
        .await
        .expect("a triaged referral's entry");
}

/// A 1 MB value is refused with a short message, not echoed (which turned the answer into
/// `RESOURCE_EXHAUSTED` at the client's metadata limit).
async fn huge_values_not_echoed(p: &Procs, node: u64) {
    let huge = "x".repeat(1 << 20);
    let mut sched = SchedulingClient::new(p.channel(node));
    let mut beds = p.beds(node);
    let find = pb::FindSlotsRequest {
        specialty: huge.clone(),
        ..Default::default()
    };
    let s = sched.find_slots(find).await.expect_err("a 1 MB specialty");
    assert_eq!(s.code(), Code::InvalidArgument, "{}", s.message().len());
    assert!(s.message().len() < 1024, "{} bytes", s.message().len());
    let release = pb::ReleaseHoldRequest {
        request_id: rid("release"),
        hold_id: 1,
        reason: huge.clone(),
    };
    let s = beds.release_hold(release).await.expect_err("a 1 MB reason");
    assert_eq!(s.code(), Code::InvalidArgument);
    assert!(s.message().len() < 1024, "{} bytes", s.message().len());
    let hold = pb::HoldBedRequest {
        request_id: huge,
        ward_id: 2,
        patient_ref: patient(400),
        ttl_ms: 60_000,
        ..Default::default()
    };
    let s = beds.hold_bed(hold).await.expect_err("a 1 MB request id");
    assert_eq!(s.code(), Code::InvalidArgument);
    assert!(s.message().len() < 1024, "{} bytes", s.message().len());
}

/// Membership refusals: node 0 and addresses that are not host:port.
async fn membership_refusals(p: &Procs, leader: u64) {
    let mut admin = p.admin(leader);
    let add = |node_id: u64, address: &str| pb::AddMemberRequest {
        request_id: rid("add"),
        node_id,
        address: address.to_string(),
        client_address: "127.0.0.1:7019".into(),
    };
    let huge = format!("{}:7001", "a".repeat(1 << 20));
    for address in [
        "127.0.0.1:99999",
        "a:b:c",
        "host",
        "127.0.0.1:0",
        huge.as_str(),
    ] {
        let r = admin.add_member(add(9, address)).await;
        invalid(&format!("address {:.40}", address), r, "address");
        let client = pb::AddMemberRequest {
            client_address: address.to_string(),
            ..add(9, "127.0.0.1:7109")
        };
        let r = admin.add_member(client).await;
        invalid(
            &format!("client_address {:.40}", address),
            r,
            "client_address",
        );
    }
    // The two listeners: a peer address is never a client address, and an AddMember
    // from before them (no client_address) is refused naming it.
    for client_address in ["127.0.0.1:7109", ""] {
        let r = admin
            .add_member(pb::AddMemberRequest {
                client_address: client_address.into(),
                ..add(9, "127.0.0.1:7109")
            })
            .await;
        invalid("client_address", r, "client_address");
    }
    invalid(
        "add node 0",
        admin.add_member(add(0, "127.0.0.1:7009")).await,
        "node_id",
    );
    let promote = pb::PromoteMemberRequest {
        request_id: rid("promote"),
        node_id: 0,
    };
    invalid("promote 0", admin.promote_member(promote).await, "node_id");
    let remove = pb::RemoveMemberRequest {
        request_id: rid("remove"),
        node_id: 0,
    };
    invalid("remove 0", admin.remove_member(remove).await, "node_id");
}

/// Waits until the leader's log grows by ticks only (the GBA bootstrap proposes the day's
/// slots for a while after the cluster answers).
async fn wait_quiet(p: &Procs, leader: u64) {
    let deadline = Instant::now() + Duration::from_secs(40);
    let mut last = p.status(leader).await.expect("status").applied_index;
    loop {
        tokio::time::sleep(Duration::from_millis(1_500)).await;
        let now = p.status(leader).await.expect("status").applied_index;
        if now - last <= 2 {
            return;
        }
        assert!(Instant::now() < deadline, "the log never went quiet");
        last = now;
    }
}

/// Refused imports (a bad file, a valid one on a loaded cluster) never reach the log: 20
/// of them add no more entries than the leader's once-a-second ticks.
async fn imports_checked_before_the_log(p: &Procs, leader: u64) {
    let mut admin = p.admin(leader);
    let good = ninety_cluster::runtime::test_region();
    let mut bad = good.clone();
    bad.format_version = 99;
    wait_quiet(p, leader).await;
    let before = p.status(leader).await.expect("status").applied_index;
    let started = Instant::now();
    for i in 0..10 {
        let import = |file: &ninety_engine::RegionFile, tag: &str| pb::ImportRegionRequest {
            request_id: rid(&format!("import-{tag}-{i}")),
            region_json: file.to_json().into_bytes(),
        };
        let r = admin.import_region(import(&bad, "bad")).await;
        invalid("a bad region file", r, "region_json.format_version");
        let s = admin.import_region(import(&good, "good")).await;
        let s = s.expect_err("an import on a loaded cluster");
        assert_eq!(s.code(), Code::FailedPrecondition, "{s:?}");
        let r = ninety_client::rejection(&s).unwrap_or_default();
        assert_eq!(
            r.code,
            pb::RejectionCode::RegionAlreadyLoaded as i32,
            "{s:?}"
        );
    }
    let after = p.status(leader).await.expect("status").applied_index;
    let ticks = started.elapsed().as_secs() + 2;
    assert!(
        after - before <= ticks,
        "20 refused imports added {} entries in {:?}",
        after - before,
        started.elapsed()
    );
}

/// SnapshotNow: a retry with the same id is the first answer, a new id at once is refused
/// with the time to wait, an empty id is invalid.
async fn snapshot_now(p: &Procs, node: u64) {
    let mut admin = p.admin(node);
    let ask = |request_id: &str| pb::SnapshotNowRequest {
        request_id: request_id.to_string(),
    };
    let id = rid("snapshot");
    let first = admin.snapshot_now(ask(&id)).await.expect("a snapshot");
    let first = first.into_inner();
    // Ticks move the applied index every second; a replay must not take a new snapshot.
    tokio::time::sleep(Duration::from_millis(1_200)).await;
    let again = admin.snapshot_now(ask(&id)).await.expect("the replay");
    assert_eq!(again.into_inner(), first);
    let s = admin
        .snapshot_now(ask(&rid("snapshot-2")))
        .await
        .expect_err("a second snapshot within the interval");
    assert_eq!(s.code(), Code::FailedPrecondition, "{s:?}");
    assert!(s.message().contains("retry in"), "{s:?}");
    invalid(
        "no request id",
        admin.snapshot_now(ask("")).await,
        "request_id",
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_requests_are_refused_cleanly() {
    crate::bounded(async {
        let opts = Opts {
            region: Some("gba"),
            ..Opts::default()
        };
        let p = Procs::start(&[1, 2, 3], &[1, 2, 3], opts);
        let leader = p.wait_ready(Duration::from_secs(40)).await;
        let follower = [1, 2, 3].into_iter().find(|n| *n != leader).unwrap_or(1);
        undecodable_requests(&p, leader, follower).await;
        broken_streams(&p, follower).await;
        unknown_enum_values(&p, follower).await;
        fields_named_as_sent(&p, follower).await;
        referral_waitlist(&p, follower).await;
        huge_values_not_echoed(&p, leader).await;
        membership_refusals(&p, leader).await;
        imports_checked_before_the_log(&p, leader).await;
        snapshot_now(&p, follower).await;
        // Nothing above hurt the cluster.
        assert_eq!(p.live().len(), 3);
        assert_eq!(p.leader_among(&[1, 2, 3]).await, Some(leader));
        p.converge(&[1, 2, 3], Duration::from_secs(15)).await;
    })
    .await;
}
