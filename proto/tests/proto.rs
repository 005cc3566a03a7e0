//! The generated code encodes and decodes, and the descriptor set describes every service.

use ninety_proto::peer::v1 as peer;
use ninety_proto::v1;
use prost::Message;
use prost_types::FileDescriptorSet;

#[test]
fn raft_batch_round_trips() {
    let batch = peer::RaftBatch {
        from_node: 1,
        to_node: 3,
        messages: vec![vec![0x08, 0x03], Vec::new(), vec![0xff; 300]],
        cluster_id: "c0ffee".into(),
        incarnation: u64::MAX,
        region: "yunnan".into(),
    };
    let bytes = batch.encode_to_vec();
    assert_eq!(peer::RaftBatch::decode(bytes.as_slice()).unwrap(), batch);
}

#[test]
fn snapshot_chunk_round_trips() {
    let chunk = peer::SnapshotChunk {
        from_node: 2,
        to_node: 5,
        raft_message: vec![1, 2, 3],
        data: vec![7; 1024],
        offset: 4096,
        last: true,
        total_bytes: 5120,
        data_sha256: vec![0xab; 32],
        cluster_id: "c0ffee".into(),
        incarnation: 7,
        region: "gba".into(),
    };
    let bytes = chunk.encode_to_vec();
    assert_eq!(
        peer::SnapshotChunk::decode(bytes.as_slice()).unwrap(),
        chunk
    );
}

#[test]
fn hold_bed_request_round_trips_with_enums() {
    let request = v1::HoldBedRequest {
        request_id: "6f1c2b0e-8d5a-4e7f-9a3b-2c1d0e9f8a7b".to_owned(),
        ward_id: 12,
        bed_id: 0,
        patient_ref: "0123456789abcdef0123456789abcdef".to_owned(),
        ttl_ms: 15 * 60 * 1000,
        urgency: v1::Urgency::P2 as i32,
        channel: v1::Channel::Referral as i32,
        referral_id: 42,
    };
    let bytes = request.encode_to_vec();
    let decoded = v1::HoldBedRequest::decode(bytes.as_slice()).unwrap();
    assert_eq!(decoded, request);
    assert_eq!(decoded.urgency(), v1::Urgency::P2);
    assert_eq!(decoded.channel(), v1::Channel::Referral);
    // proto3: every enum starts at an UNSPECIFIED zero, which is also the default.
    assert_eq!(
        v1::HoldBedRequest::default().urgency(),
        v1::Urgency::Unspecified
    );
    assert_eq!(v1::Tier::Unspecified as i32, 0);
    assert_eq!(v1::ReferralState::Unspecified as i32, 0);
}

#[test]
fn oneof_result_round_trips() {
    let results = v1::BedHoldResults {
        results: vec![
            v1::BedHoldResult {
                outcome: Some(v1::bed_hold_result::Outcome::Hold(v1::BedHold {
                    hold_id: 7,
                    state: v1::HoldState::Active as i32,
                    ..Default::default()
                })),
                commit: Some(v1::CommitInfo {
                    log_index: 99,
                    log_time_ms: 1_700_000_000_000,
                    replayed: false,
                }),
            },
            v1::BedHoldResult {
                outcome: Some(v1::bed_hold_result::Outcome::Rejection(v1::Rejection {
                    code: v1::RejectionCode::NoCapacity as i32,
                    message: "no free bed in ward W12".to_owned(),
                    ..Default::default()
                })),
                commit: None,
            },
        ],
    };
    let bytes = results.encode_to_vec();
    assert_eq!(
        v1::BedHoldResults::decode(bytes.as_slice()).unwrap(),
        results
    );
}

fn descriptor_set() -> FileDescriptorSet {
    FileDescriptorSet::decode(ninety_proto::FILE_DESCRIPTOR_SET).expect("descriptor set decodes")
}

#[test]
fn descriptor_set_lists_every_service_and_rpc() {
    let fds = descriptor_set();
    let mut services: Vec<(String, Vec<String>)> = Vec::new();
    for file in &fds.file {
        for service in &file.service {
            let name = format!("{}.{}", file.package(), service.name());
            let methods = service.method.iter().map(|m| m.name().to_owned()).collect();
            services.push((name, methods));
        }
    }
    let methods_of = |name: &str| -> &Vec<String> {
        &services
            .iter()
            .find(|(n, _)| n == name)
            .unwrap_or_else(|| panic!("service {name} missing from {services:?}"))
            .1
    };
    let expected: &[(&str, &[&str])] = &[
        (
            "ninety.peer.v1.Peer",
            &["Send", "InstallSnapshot", "Forward", "Status"],
        ),
        (
            "ninety.v1.BedHolds",
            &[
                "HoldBed",
                "ConfirmHold",
                "ReleaseHold",
                "GetHold",
                "WardAvailability",
                "ListWards",
                "HoldBeds",
                "ResolveHolds",
                "Stream",
            ],
        ),
        (
            "ninety.v1.Scheduling",
            &[
                "PublishSchedule",
                "FindSlots",
                "HoldSlot",
                "BookSlot",
                "CancelBooking",
                "JoinWaitlist",
                "LeaveWaitlist",
                "HoldJointConsult",
                "BookJointConsult",
                "ReleaseJointConsult",
                "MarkNoShow",
                "GetBooking",
                "ListPatientBookings",
                "GetJointConsult",
                "ListWaitlist",
                "CancelJointConsult",
                "AmendSlot",
                "WithdrawSlots",
                "SetWeeklyTemplate",
            ],
        ),
        (
            "ninety.v1.Matching",
            &[
                "MatchSpecialist",
                "AllocateBed",
                "AllocateSlot",
                "MatchBeds",
            ],
        ),
        (
            "ninety.v1.Referrals",
            &[
                "RequestReferral",
                "TriageReferral",
                "MatchReferral",
                "ReportNoCapacity",
                "AcceptReferral",
                "StartTransit",
                "AdmitReferral",
                "CompleteReferral",
                "RejectReferral",
                "CancelReferral",
                "HoldRemoteBed",
                "GetReferral",
                "Worklist",
                "Reach",
            ],
        ),
        (
            "ninety.v1.Admin",
            &[
                "ImportRegion",
                "ClusterStatus",
                "AddMember",
                "PromoteMember",
                "RemoveMember",
                "TransferLeader",
                "SnapshotNow",
                "Backup",
            ],
        ),
        ("ninety.v1.Watch", &["Watch"]),
        (
            "ninety.v1.Capacity",
            &[
                "Discharge",
                "MarkBedClean",
                "BlockBed",
                "UnblockBed",
                "AddBeds",
                "SetStaffedBeds",
                "UpsertWard",
                "UpsertDoctor",
                "UpsertHospital",
                "SetTravel",
                "SetReferralPath",
                "SetPolicy",
                "UnblockPatient",
            ],
        ),
    ];
    for (service, methods) in expected {
        assert_eq!(methods_of(service), methods, "rpcs of {service}");
    }
    assert_eq!(
        services.len(),
        expected.len(),
        "unexpected services: {services:?}"
    );
}

#[test]
fn streaming_shapes_are_as_documented() {
    let fds = descriptor_set();
    let method = |service: &str, rpc: &str| {
        fds.file
            .iter()
            .flat_map(|f| f.service.iter())
            .filter(|s| s.name() == service)
            .flat_map(|s| s.method.iter())
            .find(|m| m.name() == rpc)
            .unwrap_or_else(|| panic!("{service}.{rpc} missing"))
            .clone()
    };
    let stream = method("BedHolds", "Stream");
    assert!(stream.client_streaming() && stream.server_streaming());
    let install = method("Peer", "InstallSnapshot");
    assert!(install.client_streaming() && !install.server_streaming());
    let send = method("Peer", "Send");
    assert!(!send.client_streaming() && !send.server_streaming());
}

#[test]
fn mutating_requests_start_with_request_id() {
    // Every request message of a mutating rpc has `string request_id = 1`.
    let read_only = [
        "GetHold",
        "WardAvailability",
        "ListWards",
        "FindSlots",
        "MatchSpecialist",
        "MatchBeds",
        "GetReferral",
        "Worklist",
        "ClusterStatus",
        "Stream",
        "GetBooking",
        "ListPatientBookings",
        "GetJointConsult",
        "ListWaitlist",
        "Reach",
        "Watch",
        "Backup",
    ];
    let fds = descriptor_set();
    let messages: Vec<_> = fds
        .file
        .iter()
        .filter(|f| f.package() == "ninety.v1")
        .flat_map(|f| f.message_type.iter())
        .collect();
    let mut checked = 0;
    for file in fds.file.iter().filter(|f| f.package() == "ninety.v1") {
        for method in file.service.iter().flat_map(|s| s.method.iter()) {
            if read_only.contains(&method.name()) {
                continue;
            }
            let input = method.input_type().trim_start_matches(".ninety.v1.");
            let message = messages
                .iter()
                .find(|m| m.name() == input)
                .unwrap_or_else(|| panic!("input {input} of {} missing", method.name()));
            let first = message
                .field
                .iter()
                .find(|f| f.number() == 1)
                .unwrap_or_else(|| panic!("{input} has no field 1"));
            assert_eq!(first.name(), "request_id", "field 1 of {input}");
            assert_eq!(
                first.r#type(),
                prost_types::field_descriptor_proto::Type::String,
                "type of {input}.request_id"
            );
            checked += 1;
        }
    }
    // 67 rpcs in ninety.v1, 16 of them read-only.
    assert_eq!(checked, 51, "mutating rpcs checked");
}

#[test]
fn descriptor_set_keeps_comments_for_reflection() {
    let fds = descriptor_set();
    let common = fds
        .file
        .iter()
        .find(|f| f.name() == "ninety/v1/common.proto")
        .expect("common.proto in the set");
    let info = common.source_code_info.as_ref().expect("source info kept");
    assert!(info
        .location
        .iter()
        .any(|l| l.leading_comments().contains("Clinical urgency")));
}
