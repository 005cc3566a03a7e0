//! (d) A retry with the same request id after a leader change returns the first answer,
//! and reusing an id for a different request is refused.

use crate::harness::*;
use ninety_proto::v1 as pb;
use std::time::{Duration, Instant};

async fn wait_leader(p: &Procs, among: &[u64], not: u64) -> u64 {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        if let Some(l) = p.leader_among(among).await {
            if l != not {
                return l;
            }
        }
        assert!(Instant::now() < deadline, "no new leader");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retry_after_leader_change_returns_first_answer() {
    crate::bounded(async {
        let mut p = Procs::start(&[1, 2, 3], &[1, 2, 3], Opts::default());
        let leader = p.wait_ready(Duration::from_secs(20)).await;
        let wards = ward_ids(&p, leader).await;
        let hold = pb::HoldBedRequest {
            request_id: "3f2c1a9e-8b7d-4c6e-9a5b-1d2e3f4a5b6c".into(),
            ward_id: wards[0],
            patient_ref: "0123456789abcdef0123456789abcdef".into(),
            ttl_ms: 600_000,
            ..Default::default()
        };
        let first = p
            .beds(leader)
            .hold_bed(hold.clone())
            .await
            .expect("hold")
            .into_inner();
        assert!(!first.commit.as_ref().expect("commit").replayed);

        // Hand leadership over, then retry on the third node (forwarded to the new leader).
        let target = [1, 2, 3].into_iter().find(|id| *id != leader).unwrap_or(1);
        p.admin(leader)
            .transfer_leader(pb::TransferLeaderRequest {
                request_id: "transfer".into(),
                to_node_id: target,
            })
            .await
            .expect("transfer");
        let new_leader = wait_leader(&p, &[1, 2, 3], leader).await;
        let third = [1, 2, 3]
            .into_iter()
            .find(|id| *id != new_leader && *id != leader)
            .unwrap_or(leader);
        let again = p
            .beds(third)
            .hold_bed(hold.clone())
            .await
            .expect("retry")
            .into_inner();
        assert!(again.commit.as_ref().expect("commit").replayed);
        let (h1, h2) = (first.hold.expect("hold"), again.hold.expect("hold"));
        assert_eq!(
            (h1.hold_id, h1.bed_id, h1.ward_id),
            (h2.hold_id, h2.bed_id, h2.ward_id)
        );
        assert_eq!(h1.expires_ms, h2.expires_ms);

        // The same id for a different request is refused.
        let mut other = hold.clone();
        other.ward_id = wards[1];
        let err = p.beds(new_leader).hold_bed(other).await.expect_err("reuse");
        assert_eq!(err.code(), tonic::Code::InvalidArgument, "{err}");

        // Confirm, kill the leader, retry the confirmation elsewhere: same answer.
        let confirm = pb::ConfirmHoldRequest {
            request_id: "confirm-once".into(),
            hold_id: h1.hold_id,
        };
        let c1 = p
            .beds(new_leader)
            .confirm_hold(confirm.clone())
            .await
            .expect("confirm");
        let c1 = c1.into_inner();
        p.kill(new_leader);
        let survivors: Vec<u64> = p.live();
        let l3 = wait_leader(&p, &survivors, new_leader).await;
        let c2 = p
            .beds(l3)
            .confirm_hold(confirm)
            .await
            .expect("retry")
            .into_inner();
        assert!(c2.commit.expect("commit").replayed);
        assert!(!c1.commit.expect("commit").replayed);
        assert_eq!(
            c2.hold.expect("hold").state,
            pb::HoldState::Confirmed as i32
        );
        p.spawn(new_leader, true);
        p.converge(&[1, 2, 3], Duration::from_secs(20)).await;
    })
    .await;
}
