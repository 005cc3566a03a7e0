//! A node that lost its data directory is refused, never silently re-founded (issue 13,
//! item 1), through real processes:
//!
//! (a) The Jepsen-style sequence: node 2 is down while nodes 1 and 3 acknowledge holds;
//! 1 and 3 are killed, 3's data directory is wiped, 2 and 3 restart (3 unchanged, with
//! `init = true`). Node 3 exits non-zero naming the procedure; node 2 alone elects nobody.
//! Node 1 returns: every acknowledged hold is there and no hold id is handed out twice.
//! Then the documented procedure brings node 3 back: remove, add as a learner, start it
//! with `--join`, let it catch up, promote.
//! (b) A wipe alone (the others up): refused with the same message.

use crate::harness::*;
use ninety_proto::peer::v1::{Role, StatusRequest};
use ninety_proto::v1 as pb;
use std::time::{Duration, Instant};

/// Holds acknowledged while node 2 is down: a hundred or so, counted rather than timed, so
/// that the confirmed ones (15%, permanently occupied) leave beds free in the test region's
/// 60 for the holds after the recovery whatever the machine's pace. (The flake this test
/// was ignored for: a 2 s timed load placed 100-600 holds depending on the machine's pace,
/// and once 60 were confirmed every bed was occupied and the recovered pair refused every
/// hold, `FAILED_PRECONDITION`, "no hold after recovery". Reproduced with a longer load:
/// 403 holds, 60 confirmed, 0 beds free, the same failure.)
const FIRST_HOLDS: usize = 100;
const LOAD_CLIENTS: usize = 6;
/// One slice of the counted load.
const LOAD_SLICE: Duration = Duration::from_millis(100);

/// Runs the workload on `ids` in short slices until `holds` holds are acknowledged (or 30
/// s passed); every slice draws its own request ids.
async fn counted_workload(p: &Procs, ids: &[u64], wards: &[u32], holds: usize) -> Ledger {
    let all: Ledger = Default::default();
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut slice = 0u64;
    while all.lock().unwrap().len() < holds && Instant::now() < deadline {
        let until = Instant::now() + LOAD_SLICE;
        // Seeds 2^16 apart: the workload XORs the task number into the seed.
        let seed = 0x5eed + (slice << 16);
        let part = workload_seeded(p.channels(ids), wards.to_vec(), LOAD_CLIENTS, until, seed);
        let part = part.await;
        all.lock().unwrap().extend(part.lock().unwrap().iter());
        slice += 1;
    }
    all
}

/// Beds that could be held now in the test region (hospitals 1-3), as node `id` sees them
/// (a linearizable read: `id` answers after a ReadIndex round).
async fn free_beds(p: &Procs, id: u64) -> u32 {
    let mut free = 0;
    for hospital in 1..=3 {
        let r = p
            .beds(id)
            .ward_availability(pb::WardAvailabilityRequest {
                hospital_id: hospital,
                ward_ids: vec![],
                consistency: 0,
            })
            .await
            .expect("ward availability");
        free += r
            .into_inner()
            .wards
            .iter()
            .map(|w| w.free_beds)
            .sum::<u32>();
    }
    free
}

/// Waits until node `via`'s member registry records an incarnation for each of `ids` (a
/// node learns what is recorded for it through Status; here the harness asks as each).
async fn wait_registered(p: &Procs, via: u64, ids: &[u64]) {
    let deadline = Instant::now() + Duration::from_secs(20);
    for &id in ids {
        loop {
            let mut peer = p.peer_as(via, p.node_pem(id));
            let status = peer
                .status(StatusRequest {
                    from_node: id,
                    region: String::new(),
                })
                .await;
            if status.is_ok_and(|s| s.into_inner().asker_incarnation.is_some()) {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "node {id} was never registered on node {via}\n{}",
                p.logs(&[1, 2, 3])
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

/// Waits for node `id`'s process to exit by itself; returns its exit code.
async fn exit_code(p: &mut Procs, id: u64, within: Duration) -> Option<i32> {
    let deadline = Instant::now() + within;
    loop {
        let child = p.children.get_mut(&id).expect("node started");
        if let Some(status) = child.try_wait().expect("wait") {
            p.children.remove(&id);
            return status.code();
        }
        assert!(
            Instant::now() < deadline,
            "node {id} did not refuse to start\n{}",
            p.logs(&[id])
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Asserts node `id` exited non-zero with the replacement procedure in its log.
async fn assert_refused(p: &mut Procs, id: u64) {
    let code = exit_code(p, id, Duration::from_secs(20)).await;
    let log = p.log(id);
    assert!(code.is_some_and(|c| c != 0), "exit {code:?}\n{log}");
    for needle in [
        &format!("node {id}"),
        "remove-member",
        "--learner",
        "--join",
        "Replacing a node that lost its data",
    ] {
        assert!(
            log.contains(needle),
            "{needle:?} not in the refusal:\n{log}"
        );
    }
    assert!(
        !log.contains("bootstrapped a new cluster"),
        "the wiped node bootstrapped:\n{log}"
    );
}

fn wipe(p: &Procs, id: u64) {
    std::fs::remove_dir_all(p.data_dir(id)).expect("wipe data dir");
}

/// Node 2, alone with a refused node 3, never becomes leader.
async fn assert_no_leader(p: &Procs, id: u64, for_how_long: Duration) {
    let until = Instant::now() + for_how_long;
    while Instant::now() < until {
        let st = p
            .peer(id)
            .status(StatusRequest {
                from_node: 0,
                region: String::new(),
            })
            .await;
        if let Ok(st) = st {
            assert_ne!(
                st.into_inner().role,
                Role::Leader as i32,
                "node {id} became leader without a quorum\n{}",
                p.logs(&[2, 3])
            );
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wiped_node_restarted_as_itself_is_refused_and_nothing_acknowledged_is_lost() {
    crate::bounded(async {
        let mut p = Procs::start(&[1, 2, 3], &[1, 2, 3], Opts::default());
        let leader = p.wait_ready(Duration::from_secs(20)).await;
        let wards = ward_ids(&p, leader).await;
        // Node 2 must know node 3's registration: it is the stale node 3 will ask.
        for via in [1, 2, 3] {
            wait_registered(&p, via, &[1, 2, 3]).await;
        }

        p.kill(2);
        let started = Instant::now();
        let first = counted_workload(&p, &[1, 3], &wards, FIRST_HOLDS).await;
        let took = started.elapsed();
        eprintln!("while node 2 was down, in {took:?}: {}", summary(&first));
        assert!(!first.lock().unwrap().is_empty(), "no hold acknowledged");
        let free = free_beds(&p, p.leader_among(&[1, 3]).await.unwrap_or(1)).await;
        eprintln!("beds free after it: {free} of 60");
        assert!(
            free > 0,
            "the first load left no bed free: {}",
            summary(&first)
        );
        p.kill(1);
        p.kill(3);
        wipe(&p, 3);

        p.spawn(2, true);
        p.spawn(3, true);
        assert_refused(&mut p, 3).await;
        assert_no_leader(&p, 2, Duration::from_secs(3)).await;

        p.spawn(1, true);
        p.wait_ready(Duration::from_secs(20)).await;
        // Node 2 catches up from node 1 first; under load that can take a few seconds, so
        // the cluster gets up to five 2-second rounds to acknowledge a hold.
        let mut round = 0;
        let second = loop {
            let until = Instant::now() + Duration::from_secs(2);
            let seed = 0xa11ce + (round << 16);
            let held = workload_seeded(p.channels(&[1, 2]), wards.clone(), 4, until, seed).await;
            round += 1;
            if !held.lock().unwrap().is_empty() || round == 5 {
                break held;
            }
        };
        assert!(!second.lock().unwrap().is_empty(), "no hold after recovery");
        p.converge(&[1, 2], Duration::from_secs(20)).await;
        for id in [1, 2] {
            check_ledger(&p, id, &first).await;
        }
        let reused: Vec<u64> = {
            let (a, b) = (first.lock().unwrap(), second.lock().unwrap());
            b.keys().filter(|k| a.contains_key(k)).copied().collect()
        };
        assert!(reused.is_empty(), "hold ids handed out twice: {reused:?}");

        replace_node_3(&mut p).await;
        p.converge(&[1, 2, 3], Duration::from_secs(30)).await;
        check_ledger(&p, 3, &first).await;
        check_ledger(&p, 3, &second).await;
    })
    .await;
}

/// The documented procedure: remove 3, add it back as a learner, start it empty with
/// `--join`, wait for it to catch up, promote it.
async fn replace_node_3(p: &mut Procs) {
    let among = [1, 2];
    on_leader(p, &among, |l| {
        let mut a = p.admin(l);
        async move {
            a.remove_member(pb::RemoveMemberRequest {
                request_id: "replace-3-remove".into(),
                node_id: 3,
            })
            .await
        }
    })
    .await;
    let (peer3, client3) = (p.peer_addr(3), p.addr(3));
    on_leader(p, &among, |l| {
        let (mut a, peer, client) = (p.admin(l), peer3.clone(), client3.clone());
        async move {
            a.add_member(pb::AddMemberRequest {
                request_id: "replace-3-add".into(),
                node_id: 3,
                address: peer,
                client_address: client,
            })
            .await
        }
    })
    .await;
    wipe(p, 3);
    p.spawn_with(3, true, &["--join"]);
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let l = p.leader_among(&among).await.unwrap_or(1);
        let lead = p.status(l).await.map_or(0, |s| s.commit_index);
        let three = p
            .peer(3)
            .status(StatusRequest {
                from_node: 0,
                region: String::new(),
            })
            .await
            .map_or(0, |s| s.into_inner().applied_index);
        if lead > 0 && three + 3 >= lead {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "node 3 did not catch up: {three}/{lead}\n{}",
            p.logs(&[3])
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    on_leader(p, &[1, 2, 3], |l| {
        let mut a = p.admin(l);
        async move {
            a.promote_member(pb::PromoteMemberRequest {
                request_id: "replace-3-promote".into(),
                node_id: 3,
            })
            .await
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wiped_node_is_refused_while_the_others_run() {
    crate::bounded(async {
        let mut p = Procs::start(&[1, 2, 3], &[1, 2, 3], Opts::default());
        let leader = p.wait_ready(Duration::from_secs(20)).await;
        wait_registered(&p, leader, &[1, 2, 3]).await;
        let victim = [1, 2, 3].into_iter().find(|id| *id != leader).unwrap_or(3);
        p.kill(victim);
        wipe(&p, victim);
        p.spawn(victim, true);
        assert_refused(&mut p, victim).await;
        // The others go on.
        let others: Vec<u64> = [1, 2, 3].into_iter().filter(|id| *id != victim).collect();
        let wards = ward_ids(&p, leader).await;
        let until = Instant::now() + Duration::from_secs(1);
        let ledger = workload(p.channels(&others), wards, 2, until).await;
        assert!(!ledger.lock().unwrap().is_empty(), "the cluster stopped");
    })
    .await;
}
