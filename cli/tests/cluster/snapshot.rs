//! (b) A node whose data directory was wiped rejoins through a snapshot: the leader has
//! compacted its log (tiny snapshot interval), so only InstallSnapshot can catch it up.
//!
//! A wiped node has lost its vote and its log: to Raft it is a new node (letting it back in
//! as the old voter would break Raft's assumptions, and raft-rs rightly panics when a
//! leader's commit points past an empty log). So the operator procedure is tested: remove
//! the dead member, start the node empty, add it as a learner (caught up by a snapshot),
//! promote it.

use crate::harness::*;
use ninety_proto::peer::v1::StatusRequest;
use ninety_proto::v1 as pb;
use std::time::{Duration, Instant};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wiped_node_rejoins_through_snapshot() {
    crate::bounded(async {
        let opts = Opts {
            snapshot_interval_entries: Some(20),
            log_retain_entries: Some(5),
            ..Opts::default()
        };
        let mut p = Procs::start(&[1, 2, 3], &[1, 2, 3], opts);
        let leader = p.wait_ready(Duration::from_secs(20)).await;
        let wards = ward_ids(&p, leader).await;
        let victim = [1, 2, 3].into_iter().find(|id| *id != leader).unwrap_or(1);
        p.kill(victim);
        std::fs::remove_dir_all(p.data_dir(victim)).expect("wipe data dir");
        let live: Vec<u64> = [1, 2, 3].into_iter().filter(|id| *id != victim).collect();
        let nodes = p.channels(&live);
        let until = Instant::now() + Duration::from_secs(4);
        let ledger = workload(nodes, wards, 8, until).await;
        eprintln!("snapshot: {}", summary(&ledger));
        let leader = p.leader_among(&p.live()).await.expect("a leader");
        let st = p
            .peer(leader)
            .status(StatusRequest {
                from_node: 0,
                region: String::new(),
            })
            .await
            .expect("status")
            .into_inner();
        assert!(st.snapshot_index > 6, "leader has not compacted: {st:?}");
        let others: Vec<u64> = p.live();
        on_leader(&p, &others, |l| {
            let mut a = p.admin(l);
            async move {
                a.remove_member(pb::RemoveMemberRequest {
                    request_id: "remove-wiped".into(),
                    node_id: victim,
                })
                .await
            }
        })
        .await;
        p.spawn(victim, false);
        let (addr, client) = (p.peer_addr(victim), p.addr(victim));
        on_leader(&p, &others, |l| {
            let (mut a, addr, client) = (p.admin(l), addr.clone(), client.clone());
            async move {
                a.add_member(pb::AddMemberRequest {
                    request_id: "re-add".into(),
                    node_id: victim,
                    address: addr,
                    client_address: client,
                })
                .await
            }
        })
        .await;
        p.converge(&[1, 2, 3], Duration::from_secs(30)).await;
        on_leader(&p, &[1, 2, 3], |l| {
            let mut a = p.admin(l);
            async move {
                a.promote_member(pb::PromoteMemberRequest {
                    request_id: "promote".into(),
                    node_id: victim,
                })
                .await
            }
        })
        .await;
        let rejoined = p
            .peer(victim)
            .status(StatusRequest {
                from_node: 0,
                region: String::new(),
            })
            .await
            .expect("status")
            .into_inner();
        assert!(
            rejoined.snapshot_index > 0,
            "no snapshot on the rejoined node"
        );
        for id in [1, 2, 3] {
            check_ledger(&p, id, &ledger).await;
            p.check_capacity(id).await;
        }
    })
    .await;
}
