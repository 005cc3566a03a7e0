//! (a) SIGKILL the leader mid-load, restart it: every acknowledged operation is on every
//! node, no ward is over capacity, and the state hashes agree at the same applied index.

use crate::harness::*;
use std::time::{Duration, Instant};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_leader_mid_load() {
    crate::bounded(async {
        let mut p = Procs::start(&[1, 2, 3], &[1, 2, 3], Opts::default());
        let leader = p.wait_ready(Duration::from_secs(20)).await;
        let wards = ward_ids(&p, leader).await;
        let nodes = p.channels(&[1, 2, 3]);
        let until = Instant::now() + Duration::from_secs(8);
        let load = tokio::spawn(workload(nodes, wards, 16, until));
        tokio::time::sleep(Duration::from_millis(2500)).await;
        p.kill(leader);
        tokio::time::sleep(Duration::from_secs(2)).await;
        p.spawn(leader, true);
        let ledger = load.await.expect("workload");
        eprintln!("kill_leader: {}", summary(&ledger));
        assert!(
            ledger.lock().unwrap().len() > 20,
            "too little load got through"
        );
        let (index, _) = p.converge(&[1, 2, 3], Duration::from_secs(20)).await;
        eprintln!("converged at index {index}");
        for id in [1, 2, 3] {
            check_ledger(&p, id, &ledger).await;
            p.check_capacity(id).await;
        }
    })
    .await;
}
