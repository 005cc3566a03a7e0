//! (c) Under load, add a 4th node (learner, then voter) and remove another: no
//! acknowledged write is lost, and the remaining three agree.

use crate::harness::*;
use ninety_proto::peer::v1::StatusRequest;
use ninety_proto::v1 as pb;
use std::time::{Duration, Instant};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn add_and_remove_members_under_load() {
    crate::bounded(async {
        let mut p = Procs::start(&[1, 2, 3, 4], &[1, 2, 3], Opts::default());
        let leader = p.wait_ready(Duration::from_secs(20)).await;
        let wards = ward_ids(&p, leader).await;
        let nodes = p.channels(&[1, 2, 3, 4]);
        let until = Instant::now() + Duration::from_secs(10);
        let load = tokio::spawn(workload(nodes, wards, 12, until));
        tokio::time::sleep(Duration::from_secs(1)).await;

        p.spawn(4, false);
        let (addr4, client4) = (p.peer_addr(4), p.addr(4));
        on_leader(&p, &[1, 2, 3], |l| {
            let (mut a, addr, client) = (p.admin(l), addr4.clone(), client4.clone());
            async move {
                a.add_member(pb::AddMemberRequest {
                    request_id: "add-4".into(),
                    node_id: 4,
                    address: addr,
                    client_address: client,
                })
                .await
            }
        })
        .await;
        // Wait for the learner to catch up before it may vote.
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let l = p.leader_among(&[1, 2, 3]).await.unwrap_or(leader);
            let lead = p.status(l).await.map_or(0, |s| s.commit_index);
            let four = p
                .peer(4)
                .status(StatusRequest { from_node: 0 })
                .await
                .map_or(0, |s| s.into_inner().applied_index);
            if lead > 0 && four + 3 >= lead {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "learner 4 did not catch up: {four}/{lead}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        on_leader(&p, &[1, 2, 3, 4], |l| {
            let mut a = p.admin(l);
            async move {
                a.promote_member(pb::PromoteMemberRequest {
                    request_id: "promote-4".into(),
                    node_id: 4,
                })
                .await
            }
        })
        .await;
        let current = p.leader_among(&[1, 2, 3, 4]).await.unwrap_or(leader);
        let victim = [1, 2, 3].into_iter().find(|id| *id != current).unwrap_or(1);
        let members = on_leader(&p, &[1, 2, 3, 4], |l| {
            let mut a = p.admin(l);
            async move {
                a.remove_member(pb::RemoveMemberRequest {
                    request_id: format!("remove-{victim}"),
                    node_id: victim,
                })
                .await
            }
        })
        .await
        .into_inner();
        let voters: Vec<u64> = members.members.iter().map(|m| m.node_id).collect();
        assert!(
            !voters.contains(&victim) && voters.contains(&4),
            "{voters:?}"
        );
        p.kill(victim);

        let ledger = load.await.expect("workload");
        eprintln!("membership: {}", summary(&ledger));
        let remaining: Vec<u64> = [1, 2, 3, 4]
            .into_iter()
            .filter(|id| *id != victim)
            .collect();
        p.converge(&remaining, Duration::from_secs(20)).await;
        for id in &remaining {
            check_ledger(&p, *id, &ledger).await;
            p.check_capacity(*id).await;
        }
    })
    .await;
}

/// A refused `AddMember` (node 1 is already a voter) changes nothing: the leader's address
/// book still dials node 1 where it listens, so node 1 keeps up with the writes that follow.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_add_member_leaves_the_address_book_alone() {
    crate::bounded(async {
        let p = Procs::start(&[1, 2, 3], &[1, 2, 3], Opts::default());
        let leader = p.wait_ready(Duration::from_secs(20)).await;
        let member = if leader == 1 { 2 } else { 1 };
        let bogus = format!("127.0.0.1:{}", free_port());
        let refused = p
            .admin(leader)
            .add_member(pb::AddMemberRequest {
                request_id: "re-add-a-member".into(),
                node_id: member,
                address: bogus.clone(),
                client_address: format!("127.0.0.1:{}", free_port()),
            })
            .await
            .expect_err("a voter cannot be added again");
        assert_eq!(
            refused.code(),
            tonic::Code::FailedPrecondition,
            "{refused:?}"
        );
        // Writes after the refusal reach every node, the re-added id's included.
        let wards = ward_ids(&p, leader).await;
        let until = Instant::now() + Duration::from_secs(2);
        let ledger = workload(p.channels(&[leader]), wards, 2, until).await;
        assert!(!ledger.lock().unwrap().is_empty(), "no write committed");
        p.converge(&[1, 2, 3], Duration::from_secs(15)).await;
        for id in [1, 2, 3] {
            check_ledger(&p, id, &ledger).await;
        }
    })
    .await;
}
