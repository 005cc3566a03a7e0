//! Authentication and roles on the client listener (issue 12, items 3 and 6), against a
//! real node: callers without credentials or with an unknown token are refused
//! `UNAUTHENTICATED` on every `ninety.v1` service and on reflection while health answers;
//! each role reaches exactly its methods (`PERMISSION_DENIED` otherwise, before any work:
//! a refused write is never applied); the audit log records granted writes (a stream's
//! ops' request ids included) and refusals; a node listing no credentials and not
//! `insecure` serves health only.
//!
//! The node runs with TLS (the harness's CA) plus `[[auth.tokens]]`; callers dial without
//! a client certificate, so the token is their only credential.
//! The tokens' hashes are written here as constants, computed outside ninety
//! (`printf tok-reader-5f2c | sha256sum`), so the documented hashing is checked too.

use crate::harness::*;
use ninety_proto::v1 as pb;
use ninety_proto::v1::{
    admin_client::AdminClient, bed_holds_client::BedHoldsClient, matching_client::MatchingClient,
    referrals_client::ReferralsClient, scheduling_client::SchedulingClient,
};
use std::time::{Duration, Instant};
use tonic::Code;
use tonic_health::pb::{health_client::HealthClient, HealthCheckRequest};

/// (role, token, SHA-256 of the token).
const TOKENS: [(&str, &str, &str); 4] = [
    (
        "reader",
        "tok-reader-5f2c",
        "f4e0e4c3501dfd63642cb4648041d1de40270c5bb9fdde68a926381d9167e502",
    ),
    (
        "platform",
        "tok-platform-5f2c",
        "5b253c260157734865c97a05b07100dcc8ed228741c9f8fe2c62338d2a41e432",
    ),
    (
        "referral",
        "tok-referral-5f2c",
        "58e672e52762ebf28fa399085ac6e8050f1d430fca5b9cf90fd1db402173da64",
    ),
    (
        "operator",
        "tok-operator-5f2c",
        "24eddd6664703c2ecc981606448b79d3a9bbfdff9f0a8cef6a1960fb16358376",
    ),
];

/// The token of `role`.
fn token(role: &str) -> &'static str {
    TOKENS.iter().find(|t| t.0 == role).expect("a role").1
}

/// One node with a caller `<role>-caller` per role.
fn start() -> Procs {
    let extra_toml = TOKENS
        .iter()
        .map(|(role, _, sha)| {
            format!(
                "[[auth.tokens]]\nname = \"{role}-caller\"\nroles = [\"{role}\"]\nsha256 = \"{sha}\"\n"
            )
        })
        .collect();
    let opts = Opts {
        extra_toml,
        ..Opts::default()
    };
    Procs::start(&[1], &[1], opts)
}

/// A channel to node 1 that carries no credential of its own: TLS without the harness's
/// client certificate (which may call everything). A token, if any, goes in the request.
fn channel(p: &Procs, _token: Option<&str>) -> tonic::transport::Channel {
    p.channel_with(1, None)
}

/// `msg` with `authorization: Bearer <token>` when a token is given.
fn req<T>(msg: T, token: Option<&str>) -> tonic::Request<T> {
    let mut r = tonic::Request::new(msg);
    if let Some(t) = token {
        let value = format!("Bearer {t}").parse().expect("metadata value");
        r.metadata_mut().insert("authorization", value);
    }
    r
}

fn code<T>(r: Result<T, tonic::Status>) -> Code {
    r.map_or_else(|s| s.code(), |_| Code::Ok)
}

/// Waits until node 1 leads and its region is loaded, asking as the reader.
async fn wait_ready(p: &Procs) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let r = BedHoldsClient::new(p.channel_with(1, None))
            .ward_availability(req(availability(), Some(token("reader"))))
            .await;
        if r.is_ok_and(|r| !r.into_inner().wards.is_empty()) {
            return;
        }
        assert!(Instant::now() < deadline, "not ready:\n{}", p.log(1));
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn availability() -> pb::WardAvailabilityRequest {
    pb::WardAvailabilityRequest {
        hospital_id: 1,
        ward_ids: vec![],
        consistency: 0,
    }
}

/// Held beds of hospital 1, read as the reader.
async fn held_beds(p: &Procs) -> u32 {
    let r = BedHoldsClient::new(p.channel_with(1, None))
        .ward_availability(req(availability(), Some(token("reader"))))
        .await
        .expect("availability")
        .into_inner();
    r.wards.iter().map(|w| w.held_beds).sum()
}

fn hold(request_id: &str, ward_id: u32) -> pb::HoldBedRequest {
    pb::HoldBedRequest {
        request_id: request_id.into(),
        ward_id,
        patient_ref: "f00dfeedf00dfeedf00dfeedf00dfeed".into(),
        ttl_ms: 600_000,
        ..Default::default()
    }
}

/// One representative method per service (Matching twice: its methods need different
/// roles), called with `token`; their codes, named.
async fn call_each(
    p: &Procs,
    token: Option<&str>,
    ward: u32,
    n: &str,
) -> Vec<(&'static str, Code)> {
    let ch = channel(p, token);
    let t = token;
    let mut out = Vec::new();
    let mut beds = BedHoldsClient::new(ch.clone());
    let held = beds
        .hold_bed(req(hold(&format!("hold-{n}"), ward), t))
        .await;
    out.push(("BedHolds/HoldBed", code(held)));
    let read = beds.ward_availability(req(availability(), t)).await;
    out.push(("BedHolds/WardAvailability", code(read)));
    let slot = pb::HoldSlotRequest {
        request_id: format!("slot-{n}"),
        slot_id: 1,
        patient_ref: "f00d".into(),
        ttl_ms: 600_000,
        ..Default::default()
    };
    let mut scheduling = SchedulingClient::new(ch.clone());
    out.push((
        "Scheduling/HoldSlot",
        code(scheduling.hold_slot(req(slot, t)).await),
    ));
    let bed = pb::AllocateBedRequest {
        request_id: format!("alloc-bed-{n}"),
        patient_ref: "f00d".into(),
        from_hospital_id: 1,
        ..Default::default()
    };
    out.push((
        "Matching/AllocateBed",
        code(
            MatchingClient::new(ch.clone())
                .allocate_bed(req(bed, t))
                .await,
        ),
    ));
    let slot = pb::AllocateSlotRequest {
        request_id: format!("alloc-slot-{n}"),
        patient_ref: "f00d".into(),
        from_hospital_id: 1,
        ..Default::default()
    };
    out.push((
        "Matching/AllocateSlot",
        code(
            MatchingClient::new(ch.clone())
                .allocate_slot(req(slot, t))
                .await,
        ),
    ));
    let referral = pb::RequestReferralRequest {
        request_id: format!("referral-{n}"),
        patient_ref: "f00d".into(),
        from_hospital_id: 1,
        ..Default::default()
    };
    out.push((
        "Referrals/RequestReferral",
        code(
            ReferralsClient::new(ch.clone())
                .request_referral(req(referral, t))
                .await,
        ),
    ));
    let snapshot = pb::SnapshotNowRequest {
        request_id: format!("snapshot-{n}"),
    };
    out.push((
        "Admin/SnapshotNow",
        code(
            AdminClient::new(ch.clone())
                .snapshot_now(req(snapshot, t))
                .await,
        ),
    ));
    let mut admin = AdminClient::new(ch);
    let status = admin
        .cluster_status(req(pb::ClusterStatusRequest::default(), t))
        .await;
    out.push(("Admin/ClusterStatus", code(status)));
    out
}

/// Reflection's list of services, as the caller with `token`.
async fn reflection(p: &Procs, token: Option<&str>) -> Code {
    use tonic_reflection::pb::v1::{
        server_reflection_client::ServerReflectionClient,
        server_reflection_request::MessageRequest, ServerReflectionRequest,
    };
    let ask = ServerReflectionRequest {
        host: String::new(),
        message_request: Some(MessageRequest::ListServices(String::new())),
    };
    let call = ServerReflectionClient::new(channel(p, token))
        .server_reflection_info(req(tokio_stream::iter(vec![ask]), token))
        .await;
    match call {
        Err(s) => s.code(),
        Ok(answers) => code(answers.into_inner().message().await),
    }
}

async fn health(p: &Procs) -> Code {
    let ask = HealthCheckRequest {
        service: String::new(),
    };
    code(HealthClient::new(channel(p, None)).check(ask).await)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_credentials_every_service_and_reflection_refuse_but_health_answers() {
    crate::bounded(async {
        let p = start();
        wait_ready(&p).await;
        let ward = ward_ids_as_reader(&p).await[0];
        let before = held_beds(&p).await;
        for (rpc, c) in call_each(&p, None, ward, "anon").await {
            assert_eq!(c, Code::Unauthenticated, "{rpc} without credentials");
        }
        assert_eq!(reflection(&p, None).await, Code::Unauthenticated);
        assert_eq!(reflection(&p, Some(token("reader"))).await, Code::Ok);
        assert_eq!(health(&p).await, Code::Ok);
        assert_eq!(held_beds(&p).await, before, "a refused call held a bed");
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_or_malformed_token_is_refused() {
    crate::bounded(async {
        let p = start();
        wait_ready(&p).await;
        let sha_of_operator = TOKENS[3].2;
        for bad in [
            "tok-operator-5f2",
            sha_of_operator,
            "",
            "tok-operator-5f2c-",
        ] {
            let status = AdminClient::new(p.channel_with(1, None))
                .cluster_status(req(pb::ClusterStatusRequest::default(), Some(bad)))
                .await;
            assert_eq!(code(status), Code::Unauthenticated, "token {bad:?}");
        }
        let mut basic = tonic::Request::new(pb::ClusterStatusRequest::default());
        let value = format!("Basic {}", token("operator")).parse().unwrap();
        basic.metadata_mut().insert("authorization", value);
        let status = AdminClient::new(p.channel_with(1, None))
            .cluster_status(basic)
            .await;
        assert_eq!(code(status), Code::Unauthenticated, "Basic scheme");
    })
    .await;
}

/// Ward ids of hospital 1, read as the reader.
async fn ward_ids_as_reader(p: &Procs) -> Vec<u32> {
    let r = BedHoldsClient::new(p.channel_with(1, None))
        .ward_availability(req(availability(), Some(token("reader"))))
        .await
        .expect("availability")
        .into_inner();
    r.wards.iter().map(|w| w.ward_id).collect()
}

/// The methods of [`call_each`] a role may call.
fn allowed(role: &str, rpc: &str) -> bool {
    let reads = ["BedHolds/WardAvailability", "Admin/ClusterStatus"];
    let own: &[&str] = match role {
        "platform" => &["Scheduling/HoldSlot", "Matching/AllocateSlot"],
        "referral" => &[
            "BedHolds/HoldBed",
            "Matching/AllocateBed",
            "Referrals/RequestReferral",
        ],
        "operator" => &["Admin/SnapshotNow"],
        _ => &[],
    };
    reads.contains(&rpc) || own.contains(&rpc)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_role_reaches_exactly_its_methods() {
    crate::bounded(async {
        let p = start();
        wait_ready(&p).await;
        let ward = ward_ids_as_reader(&p).await[0];
        for (role, tok, _) in TOKENS {
            let before = held_beds(&p).await;
            for (rpc, c) in call_each(&p, Some(tok), ward, role).await {
                if allowed(role, rpc) {
                    // Granted: whatever the engine says about these made-up requests, it
                    // is not an authentication or role refusal.
                    let refused = matches!(c, Code::PermissionDenied | Code::Unauthenticated);
                    assert!(!refused, "{role} on {rpc}: {c:?}");
                } else {
                    assert_eq!(c, Code::PermissionDenied, "{role} on {rpc}");
                }
            }
            let after = held_beds(&p).await;
            let held = u32::from(role == "referral");
            assert_eq!(after, before + held, "{role}: held beds");
        }
        // The reader's refused hold was never applied: the same request id is new to the
        // engine when the referral caller sends it.
        let first = BedHoldsClient::new(p.channel_with(1, None))
            .hold_bed(req(hold("hold-reader", ward), Some(token("referral"))))
            .await
            .expect("hold as referral")
            .into_inner();
        let commit = first.commit.expect("commit");
        assert!(
            !commit.replayed,
            "the reader's refused hold had been applied"
        );
    })
    .await;
}

/// The audit log's lines, once `want` of them are there.
async fn audit_lines(p: &Procs, want: usize) -> Vec<serde_json::Value> {
    let path = p.data_dir(1).join("audit.jsonl");
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let text = std::fs::read_to_string(&path).unwrap_or_default();
        let lines: Vec<serde_json::Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).expect("a JSON line"))
            .collect();
        if lines.len() >= want || Instant::now() > deadline {
            assert!(
                !text.contains("f00dfeed"),
                "a patient ref in the audit log:\n{text}"
            );
            return lines;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_audit_log_records_granted_writes_and_refusals() {
    crate::bounded(async {
        let p = start();
        wait_ready(&p).await;
        let ward = ward_ids_as_reader(&p).await[0];
        let mut beds = BedHoldsClient::new(p.channel_with(1, None));
        let granted = beds.hold_bed(req(hold("audit-granted", ward), Some(token("referral"))));
        assert_eq!(code(granted.await), Code::Ok);
        // A granted call the handler refuses: its status code is the line's outcome.
        let refused = beds.hold_bed(req(hold("audit-refused", 0), Some(token("referral"))));
        let refused = refused.await.expect_err("ward 0").code();
        let denied = beds.hold_bed(req(hold("audit-denied", ward), Some(token("reader"))));
        assert_eq!(code(denied.await), Code::PermissionDenied);
        let mut anonymous = BedHoldsClient::new(channel(&p, None));
        let anon = anonymous.hold_bed(req(hold("audit-anon", ward), None));
        assert_eq!(code(anon.await), Code::Unauthenticated);
        // A stream's line notes each op's request id.
        let ops = ["stream-a", "stream-b"].map(|id| pb::BedOp {
            seq: u64::from(id.ends_with('b')),
            op: Some(pb::bed_op::Op::Hold(hold(id, ward))),
        });
        let stream = req(tokio_stream::iter(ops), Some(token("referral")));
        let mut answers = beds.stream(stream).await.expect("stream").into_inner();
        let mut answered = 0;
        while answers.message().await.expect("stream answer").is_some() {
            answered += 1;
        }
        assert_eq!(answered, 2);
        let lines = audit_lines(&p, 5).await;
        let line = lines
            .iter()
            .find(|l| l["request_ids"] == serde_json::json!(["audit-refused"]))
            .unwrap_or_else(|| panic!("no line for audit-refused in {lines:#?}"));
        let name = format!("{refused:?}");
        let want: String = name
            .chars()
            .enumerate()
            .flat_map(|(i, c)| {
                let sep = (i > 0 && c.is_uppercase()).then_some('_');
                sep.into_iter().chain(c.to_uppercase())
            })
            .collect();
        assert_eq!(line["outcome"], want.as_str(), "{line}");
        let streamed = lines
            .iter()
            .find(|l| l["rpc"] == "ninety.v1.BedHolds/Stream")
            .unwrap_or_else(|| panic!("no stream line in {lines:#?}"));
        assert_eq!(
            streamed["request_ids"],
            serde_json::json!(["stream-a", "stream-b"])
        );
        assert_eq!(streamed["request_id_count"], 2);
        let find = |outcome: &str| {
            lines
                .iter()
                .find(|l| l["outcome"] == outcome && l["rpc"] == "ninety.v1.BedHolds/HoldBed")
                .unwrap_or_else(|| panic!("no {outcome} line in {lines:#?}"))
        };
        let ok = find("OK");
        assert_eq!(ok["caller"], "referral-caller");
        assert_eq!(ok["roles"], serde_json::json!(["referral"]));
        assert_eq!(ok["request_ids"], serde_json::json!(["audit-granted"]));
        assert!(ok["peer"]
            .as_str()
            .is_some_and(|a| a.starts_with("127.0.0.1:")));
        assert!(
            ok["time"].as_str().is_some_and(|t| t.ends_with('Z')),
            "{ok}"
        );
        let denied = find("PERMISSION_DENIED");
        assert_eq!(denied["caller"], "reader-caller");
        let anon = find("UNAUTHENTICATED");
        assert_eq!(anon["caller"], serde_json::Value::Null);
        // Reads are not audited.
        assert!(
            lines
                .iter()
                .all(|l| l["rpc"] != "ninety.v1.BedHolds/WardAvailability"),
            "{lines:#?}"
        );
    })
    .await;
}

/// A node whose `[auth]` lists nobody and that is not `insecure` serves health only, and
/// says so at start.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_credentials_listed_and_not_insecure_refuses_all_but_health() {
    crate::bounded(async {
        // Its own plain-text config below (loopback, no [tls], no [auth]): the harness is
        // started insecure so that its channels are plain text too.
        let opts = Opts {
            insecure: true,
            ..Opts::default()
        };
        let mut p = Procs::start(&[1], &[], opts);
        let config = format!(
            "id = 1\nlisten = \"{}\"\npeer_listen = \"{}\"\ndata_dir = \"{}\"\nregion = \"test\"\n\
             init = true\ninitial_voters = [1]\ncluster_id = \"{}\"\n",
            p.addr(1),
            p.peer_addr(1),
            p.data_dir(1).display(),
            p.cluster_id,
        );
        let path = p.dir.path().join("n1.toml");
        std::fs::write(&path, config).expect("config");
        let log = std::fs::File::create(p.dir.path().join("n1.log")).expect("log");
        let child = std::process::Command::new(env!("CARGO_BIN_EXE_ninety"))
            .args(["node", "--config"])
            .arg(&path)
            .env("RUST_LOG", "warn")
            .stdout(std::process::Stdio::null())
            .stderr(log)
            .spawn()
            .expect("spawn");
        p.children.insert(1, child);
        let deadline = Instant::now() + Duration::from_secs(20);
        while health(&p).await != Code::Ok {
            assert!(Instant::now() < deadline, "no health:\n{}", p.log(1));
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let status = AdminClient::new(channel(&p, None))
            .cluster_status(pb::ClusterStatusRequest::default())
            .await;
        assert_eq!(code(status), Code::Unauthenticated);
        // A token means nothing to a node that lists none.
        let status = AdminClient::new(channel(&p, Some(token("operator"))))
            .cluster_status(req(
                pb::ClusterStatusRequest::default(),
                Some(token("operator")),
            ))
            .await;
        assert_eq!(code(status), Code::Unauthenticated);
        assert_eq!(reflection(&p, None).await, Code::Unauthenticated);
        assert!(
            p.log(1).contains("[auth] lists no credentials"),
            "{}",
            p.log(1)
        );
    })
    .await;
}
