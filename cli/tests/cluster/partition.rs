//! (e) A minority partition cannot acknowledge anything: the old leader, cut off by the
//! fault-injection switch, fails every write sent to it, and after healing none of those
//! writes exists (re-sending their request ids applies them fresh, not as replays).

use crate::harness::*;
use ninety_proto::v1 as pb;
use std::time::{Duration, Instant};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cut_off_leader_acknowledges_nothing() {
    crate::bounded(async {
        let opts = Opts {
            fault_injection: true,
            ..Opts::default()
        };
        let p = Procs::start(&[1, 2, 3], &[1, 2, 3], opts);
        let old = p.wait_ready(Duration::from_secs(20)).await;
        let wards = ward_ids(&p, old).await;
        let others: Vec<u64> = [1, 2, 3].into_iter().filter(|id| *id != old).collect();
        let faults = p.data_dir(old).join("FAULTS");
        std::fs::write(&faults, format!("{},{}", others[0], others[1])).expect("cut");
        // The switch is re-read every tick (100 ms).
        tokio::time::sleep(Duration::from_millis(400)).await;

        let mut rng = ninety_engine::generate::SplitMix64::new(7);
        let requests: Vec<pb::HoldBedRequest> = (0..8)
            .map(|i| pb::HoldBedRequest {
                request_id: rid(&mut rng),
                ward_id: wards[i % wards.len()],
                patient_ref: format!("{:032x}", 1000 + i),
                ttl_ms: 600_000,
                ..Default::default()
            })
            .collect();
        let mut set = tokio::task::JoinSet::new();
        for r in requests.clone() {
            let mut c = p.beds(old);
            set.spawn(async move { c.hold_bed(r).await });
        }
        // Meanwhile the majority elects a leader and keeps accepting writes.
        let deadline = Instant::now() + Duration::from_secs(15);
        let new = loop {
            if let Some(l) = p.leader_among(&others).await {
                break l;
            }
            assert!(Instant::now() < deadline, "majority elected no leader");
            tokio::time::sleep(Duration::from_millis(100)).await;
        };
        let ok = p
            .beds(new)
            .hold_bed(pb::HoldBedRequest {
                request_id: rid(&mut rng),
                ward_id: wards[0],
                patient_ref: format!("{:032x}", 7),
                ttl_ms: 600_000,
                ..Default::default()
            })
            .await;
        assert!(ok.is_ok(), "majority write failed: {ok:?}");
        while let Some(r) = set.join_next().await {
            let r = r.expect("task");
            assert!(r.is_err(), "the cut-off node acknowledged a write: {r:?}");
        }
        // Also a write arriving after it stepped down.
        let late = p.beds(old).hold_bed(requests[0].clone()).await;
        assert!(late.is_err(), "the cut-off node acknowledged a late write");

        std::fs::remove_file(&faults).expect("heal");
        p.converge(&[1, 2, 3], Duration::from_secs(20)).await;
        for r in requests {
            let leader = p.leader_among(&[1, 2, 3]).await.unwrap_or(new);
            let resp = p.beds(leader).hold_bed(r).await;
            if let Ok(resp) = resp {
                let replayed = resp.into_inner().commit.expect("commit").replayed;
                assert!(
                    !replayed,
                    "a write sent to the cut-off node had been applied"
                );
            }
        }
        p.converge(&[1, 2, 3], Duration::from_secs(20)).await;
    })
    .await;
}
