//! Request ids through the real API (issue 11, item 3): a retry reports the log index that
//! first applied it; hex, UUID and text ids follow `docs/api.md` ("Request ids"); a
//! `patient_ref` with a sign is refused; a node refuses a data directory of format 1.

use crate::harness::*;
use ninety_proto::v1 as pb;
use std::time::{Duration, Instant};

const HEX_ID: &str = "0123456789abcdef0123456789abcdef";
const UUID_ID: &str = "01234567-89ab-cdef-0123-456789abcdef";
const PATIENT: &str = "00000000000000000000000000000abc";

fn hold(request_id: &str, ward_id: u32, patient_ref: &str) -> pb::HoldBedRequest {
    pb::HoldBedRequest {
        request_id: request_id.into(),
        ward_id,
        patient_ref: patient_ref.into(),
        ttl_ms: 600_000,
        ..Default::default()
    }
}

fn commit(r: &pb::BedHoldResponse) -> pb::CommitInfo {
    r.commit.expect("commit info")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retry_reports_the_first_log_index_and_ids_follow_the_rules() {
    crate::bounded(async {
        let p = Procs::start(&[1, 2, 3], &[1, 2, 3], Opts::default());
        let leader = p.wait_ready(Duration::from_secs(20)).await;
        let follower = [1, 2, 3].into_iter().find(|id| *id != leader).unwrap_or(1);
        let wards = ward_ids(&p, leader).await;
        let first = p
            .beds(leader)
            .hold_bed(hold(HEX_ID, wards[0], PATIENT))
            .await
            .expect("hold")
            .into_inner();
        assert!(!commit(&first).replayed);
        // Let the log move on (ticks, another write) so the retry lands on a later entry.
        let other = p
            .beds(leader)
            .hold_bed(hold("other-write", wards[1], PATIENT))
            .await
            .expect("other hold")
            .into_inner();
        assert!(commit(&other).log_index > commit(&first).log_index);

        // The UUID form of the same number is the same id; the retry goes through a follower.
        let again = p
            .beds(follower)
            .hold_bed(hold(UUID_ID, wards[0], PATIENT))
            .await
            .expect("retry")
            .into_inner();
        assert!(commit(&again).replayed);
        assert_eq!(
            commit(&again).log_index,
            commit(&first).log_index,
            "a replay reports the entry that first applied the request"
        );
        assert_eq!(again.hold, first.hold);

        // A sign or an uppercase digit is not another spelling of the hex id: a new request.
        for text in [format!("+{}", &HEX_ID[1..]), HEX_ID.to_uppercase()] {
            let fresh = p
                .beds(leader)
                .hold_bed(hold(&text, wards[0], PATIENT))
                .await
                .expect("a new request")
                .into_inner();
            assert!(!commit(&fresh).replayed, "{text}");
            let (a, b) = (fresh.hold.expect("hold"), first.hold.clone().expect("hold"));
            assert_ne!(a.hold_id, b.hold_id, "{text}");
        }

        // Ids the demo once saw collide are two ids.
        for text in ["demo-1-602-release", "demo-1-689-release"] {
            let r = p.beds(leader).hold_bed(hold(text, wards[2], PATIENT)).await;
            assert!(r.is_ok(), "{text}: {r:?}");
        }

        refusals(&p, leader, wards[0]).await;
        p.converge(&[1, 2, 3], Duration::from_secs(20)).await;
        assert_eq!(p.live(), vec![1, 2, 3], "every node alive");
    })
    .await;
}

/// Refused ids and patient refs: `INVALID_ARGUMENT` naming the field, nothing applied.
async fn refusals(p: &Procs, leader: u64, ward: u32) {
    let plus_patient = format!("+{}", &PATIENT[1..]);
    let long_id = "x".repeat(129);
    let cases = [
        (hold("", ward, PATIENT), "request_id"),
        (hold(&long_id, ward, PATIENT), "request_id"),
        (hold("bad-patient-1", ward, &plus_patient), "patient_ref"),
        (
            hold("bad-patient-2", ward, &PATIENT.to_uppercase()),
            "patient_ref",
        ),
    ];
    for (request, field) in cases {
        let err = p
            .beds(leader)
            .hold_bed(request.clone())
            .await
            .expect_err("refused");
        assert_eq!(
            err.code(),
            tonic::Code::InvalidArgument,
            "{request:?}: {err}"
        );
        let detail = ninety_client::rejection(&err).expect("details");
        assert_eq!(detail.field, field, "{request:?}");
    }
}

/// A data directory written before format 2 (data, no `FORMAT` stamp) is refused: the node
/// exits non-zero naming both formats and the procedure, and writes nothing into it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_refuses_a_format_1_data_directory() {
    crate::bounded(async {
        let mut p = Procs::start(&[1], &[], Opts::default());
        p.voters = vec![1];
        let raft = p.data_dir(1).join("raft");
        std::fs::create_dir_all(&raft).expect("old data dir");
        p.spawn(1, true);
        let deadline = Instant::now() + Duration::from_secs(20);
        let status = loop {
            let child = p.children.get_mut(&1).expect("child");
            if let Some(status) = child.try_wait().expect("wait") {
                break status;
            }
            assert!(
                Instant::now() < deadline,
                "node did not refuse: {}",
                p.log(1)
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        assert!(!status.success(), "{}", p.log(1));
        let log = p.log(1);
        assert!(log.contains("data format 1"), "{log}");
        assert!(log.contains("reads data format 3"), "{log}");
        assert!(log.contains("Upgrading from format 1"), "{log}");
        assert!(!p.data_dir(1).join("FORMAT").exists());
        let entries: Vec<_> = std::fs::read_dir(&raft).expect("raft dir").collect();
        assert!(entries.is_empty(), "the old directory was written to");
    })
    .await;
}
