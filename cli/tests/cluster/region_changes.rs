//! Changing the regions of a running deployment (issue 17), through the real binary and
//! the `ninety` CLI, while writers keep holding and releasing beds in the other regions:
//!
//! - **Moving a region's replicas**: 3 nodes × 4 regions; a 4th node process hosting only
//!   `hainan` is added to that region (`cluster add-member --region hainan`: learner, caught
//!   up, promoted), hainan's leadership is put on node 3 and node 3's replica removed
//!   (`cluster remove-member --region hainan`: leadership moves first). Hainan ends on
//!   voters {1, 2, 4}, every replica at one state hash; the other regions saw no failed
//!   write but retryable ones, and every acknowledged write is there afterwards.
//! - **Adding a region**: 3 nodes × 3 regions; `hainan` is added to every node's config and
//!   the nodes restarted one at a time. Each restarted node serves its other regions at
//!   once, the new region is founded and loaded exactly once, and neither a later restart of
//!   every node nor a node whose config drops a region it holds bootstraps or loses
//!   anything (the latter is refused, naming the directory).
//!
//! docs/operations.md, "Adding a region" and "Moving a region's replicas", show the same
//! commands.

use crate::harness::*;
use crate::regions::{client, first_ward, has_hold, hold, regions_toml, REGIONS};
use ninety_client::Client;
use ninety_proto::v1 as pb;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tonic::Code;

/// The region whose replicas move, or which is added.
const MOVED: &str = "hainan";
/// The regions that keep taking writes meanwhile.
const OTHERS: [&str; 3] = ["gba", "yunnan", "asean"];
/// Writers per region, each on its own hospital's first ward.
const WRITERS_PER_REGION: u32 = 2;

/// What a writer knows of a hold it was answered for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Acked {
    /// Held, and its release acknowledged.
    Released,
    /// Held; the release's outcome is unknown (a retryable failure).
    Unsure,
}

/// One acknowledged hold.
#[derive(Debug)]
struct Written {
    region: &'static str,
    hold: u64,
    patient: u64,
    acked: Acked,
}

/// What the writers saw.
#[derive(Debug, Default)]
struct Tally {
    written: Vec<Written>,
    /// Writes that failed with a retryable code (outcome unknown or unchanged).
    retryable: usize,
    /// Every other failure, described.
    failures: Vec<String>,
}

impl Tally {
    /// Counts a failed write: retryable (the client library's codes, and a connection lost
    /// mid-call to a node being restarted: outcome unknown, the same request id may be sent
    /// again) or not.
    fn failed(&mut self, region: &str, op: &str, s: &tonic::Status) {
        let retryable = matches!(
            s.code(),
            Code::Unavailable | Code::DeadlineExceeded | Code::Cancelled | Code::ResourceExhausted
        ) || (s.code() == Code::Unknown && s.message() == "transport error");
        if retryable {
            self.retryable += 1;
        } else {
            self.failures.push(format!("{region} {op}: {s:?}"));
        }
    }

    fn merge(&mut self, other: Tally) {
        self.written.extend(other.written);
        self.retryable += other.retryable;
        self.failures.extend(other.failures);
    }
}

/// Writers holding and releasing beds in some regions until stopped.
struct Writers {
    stop: Arc<AtomicBool>,
    tasks: Vec<tokio::task::JoinHandle<Tally>>,
}

impl Writers {
    /// [`WRITERS_PER_REGION`] writers in each of `regions`, through nodes 1-3.
    async fn start(p: &Procs, regions: &[&'static str]) -> Writers {
        let stop = Arc::new(AtomicBool::new(false));
        let mut tasks = Vec::new();
        for (r, &region) in regions.iter().enumerate() {
            let c = client(p, &[1, 2, 3], Some(region));
            for w in 1..=WRITERS_PER_REGION {
                let ward = ward_of(&c, w).await;
                let base = (r as u64 + 1) * 1_000_000 + u64::from(w) * 10_000;
                let run = write(c.clone(), region, ward, base, stop.clone());
                tasks.push(tokio::spawn(run));
            }
        }
        Writers { stop, tasks }
    }

    /// Stops the writers and sums what they saw.
    async fn stop(self) -> Tally {
        self.stop.store(true, Ordering::Relaxed);
        let mut tally = Tally::default();
        for t in self.tasks {
            tally.merge(t.await.expect("writer task"));
        }
        tally
    }
}

/// The first ward of `hospital` in the region `c` names.
async fn ward_of(c: &Client, hospital: u32) -> u32 {
    let r = c
        .ward_availability(pb::WardAvailabilityRequest {
            hospital_id: hospital,
            ..Default::default()
        })
        .await
        .unwrap_or_else(|s| panic!("wards of hospital {hospital} in {:?}: {s:?}", c.region()));
    r.wards.first().map(|w| w.ward_id).expect("a ward")
}

/// Holds a bed in `ward` for a new patient and releases it, again and again until `stop`.
async fn write(
    c: Client,
    region: &'static str,
    ward: u32,
    base: u64,
    stop: Arc<AtomicBool>,
) -> Tally {
    let mut tally = Tally::default();
    let mut patient = base;
    while !stop.load(Ordering::Relaxed) {
        patient += 1;
        let id = match hold(&c, ward, patient).await {
            Ok(id) => id,
            Err(s) => {
                tally.failed(region, "hold", &s);
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let released = c
            .release_hold(pb::ReleaseHoldRequest {
                request_id: ninety_client::new_request_id(),
                hold_id: id,
                reason: "region change test".into(),
            })
            .await;
        let acked = match released {
            Ok(_) => Acked::Released,
            Err(s) => {
                tally.failed(region, "release", &s);
                Acked::Unsure
            }
        };
        tally.written.push(Written {
            region,
            hold: id,
            patient,
            acked,
        });
    }
    tally
}

/// The writers saw no failure but retryable ones, wrote something in every region, and
/// every acknowledged hold is in its region in the acknowledged state (linearizable reads
/// through `nodes`).
async fn check_tally(p: &Procs, tally: &Tally, regions: &[&str], nodes: &[u64]) {
    eprintln!(
        "writers: {} holds acknowledged, {} retryable failures, {} other failures",
        tally.written.len(),
        tally.retryable,
        tally.failures.len()
    );
    assert!(
        tally.failures.is_empty(),
        "failed writes: {:#?}",
        tally.failures
    );
    for &region in regions {
        let c = client(p, nodes, Some(region));
        let mine: Vec<&Written> = tally
            .written
            .iter()
            .filter(|w| w.region == region)
            .collect();
        assert!(!mine.is_empty(), "no write acknowledged in {region}");
        for w in mine {
            let h = c
                .get_hold(pb::GetHoldRequest {
                    hold_id: w.hold,
                    ..Default::default()
                })
                .await
                .unwrap_or_else(|s| panic!("{w:?} missing: {s:?}"))
                .hold
                .unwrap_or_else(|| panic!("{w:?} missing"));
            assert_eq!(h.patient_ref, crate::regions::patient(w.patient), "{w:?}");
            if w.acked == Acked::Released {
                assert_eq!(h.state, pb::HoldState::Released as i32, "{w:?}: {h:?}");
            }
        }
    }
}

/// Runs the `ninety` CLI (in a blocking thread, so the writers keep running) against
/// `nodes` with the harness's credentials; its JSON output.
async fn cli(p: &Procs, args: &[&str], nodes: &[u64]) -> serde_json::Value {
    let addrs: Vec<String> = nodes.iter().map(|i| p.addr(*i)).collect();
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_ninety"));
    cmd.args(args)
        .args(["--json", "--nodes", &addrs.join(",")])
        .args(p.client_args());
    let shown = format!("ninety {}", args.join(" "));
    let out = tokio::task::spawn_blocking(move || cmd.output().expect("run ninety"))
        .await
        .expect("the CLI thread");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{shown}: {}\n{stdout}\n{}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr),
        p.logs(&p.live())
    );
    eprintln!("{shown}: ok");
    serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("{e}: {stdout}"))
}

/// The ids and roles of a membership answer's `members`.
fn members(out: &serde_json::Value) -> Vec<(u64, String)> {
    let list = out["members"].as_array().expect("members");
    list.iter()
        .map(|m| {
            let id = m["node_id"].as_u64().expect("node_id");
            (id, m["role"].as_str().unwrap_or_default().to_string())
        })
        .collect()
}

/// Waits until every region of `regions` is loaded; the first ward of each.
async fn loaded(p: &Procs, regions: &[&str], nodes: &[u64]) -> Vec<u32> {
    let mut wards = Vec::new();
    for &region in regions {
        let c = client(p, nodes, Some(region));
        wards.push(first_ward(&c, p, Duration::from_secs(60)).await);
    }
    wards
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_regions_replicas_move_to_a_new_node_while_the_others_take_writes() {
    crate::bounded(async {
        let mut p = Procs::start(
            &[1, 2, 3, 4],
            &[1, 2, 3],
            Opts {
                schedule_horizon_days: Some(0),
                extra_toml: regions_toml(&REGIONS),
                node_toml: [(4, regions_toml(&[MOVED]))].into(),
                rust_log: Some("warn,ninety_cluster::runtime::events=info"),
                ..Opts::default()
            },
        );
        let ids: Vec<&str> = REGIONS.to_vec();
        loaded(&p, &ids, &[1, 2, 3]).await;
        let moved = client(&p, &[1, 2, 3], Some(MOVED));
        let ward = first_ward(&moved, &p, Duration::from_secs(5)).await;
        let before = hold(&moved, ward, 7001).await.expect("a hold in hainan");
        let writers = Writers::start(&p, &OTHERS).await;
        let started = Instant::now();
        move_replica(&mut p).await;
        eprintln!(
            "hainan moved from node 3 to node 4 in {:.1} s under writes",
            started.elapsed().as_secs_f64()
        );
        let after = client(&p, &[4, 1, 2], Some(MOVED));
        let later = hold(&after, ward, 7002)
            .await
            .expect("a hold after the move");
        tokio::time::sleep(Duration::from_secs(1)).await;
        let tally = writers.stop().await;
        check_tally(&p, &tally, &OTHERS, &[1, 2, 3]).await;
        check_moved(&p, &[(before, 7001), (later, 7002)]).await;
        for region in OTHERS {
            p.converge_region(&[1, 2, 3], region, Duration::from_secs(20))
                .await;
        }
    })
    .await;
}

/// Node 4 (hosting only hainan) joins hainan, node 3 leaves it: the documented commands.
async fn move_replica(p: &mut Procs) {
    p.spawn(4, false);
    let (addr4, peer4) = (p.addr(4), p.peer_addr(4));
    let added = cli(
        p,
        &[
            "cluster",
            "add-member",
            "--region",
            MOVED,
            "--id",
            "4",
            "--addr",
            &addr4,
            "--peer-addr",
            &peer4,
            "--catch-up",
            "60s",
        ],
        &[1, 2, 3],
    )
    .await;
    assert!(
        members(&added).contains(&(4, "MEMBER_ROLE_VOTER".into())),
        "{added}"
    );
    // The replica that leaves leads: the removal must move leadership first (issue 13).
    let to3 = &["cluster", "transfer-leader", "--region", MOVED, "--to", "3"];
    let moved = cli(p, to3, &[1, 2, 3]).await;
    eprintln!("hainan's leader before the removal: {}", moved["leader_id"]);
    let removed = cli(
        p,
        &["cluster", "remove-member", "--region", MOVED, "--id", "3"],
        &[1, 2, 3],
    )
    .await;
    let mut voters: Vec<u64> = members(&removed).iter().map(|m| m.0).collect();
    voters.sort_unstable();
    assert_eq!(voters, vec![1, 2, 4], "{removed}");
}

/// Hainan's members are {1, 2, 4}, all voters; its replicas agree; the holds made before
/// and after the move are on node 4; node 3 says it was removed from hainan (and only from
/// hainan: it still serves gba).
async fn check_moved(p: &Procs, holds: &[(u64, u64)]) {
    let out = cli(
        p,
        &["cluster", "status", "--region", MOVED, "--hash"],
        &[1, 2, 4],
    )
    .await;
    eprintln!("cluster status --region hainan: {out}");
    let (index, _) = p
        .converge_region(&[1, 2, 4], MOVED, Duration::from_secs(20))
        .await;
    eprintln!("hainan: nodes 1, 2, 4 agree at index {index}");
    let four = client(p, &[4], Some(MOVED));
    let st = four
        .cluster_status(pb::ClusterStatusRequest::default())
        .await
        .expect("node 4's hainan status");
    let mut voters: Vec<(u64, i32)> = st.members.iter().map(|m| (m.node_id, m.role)).collect();
    voters.sort_unstable();
    let voter = pb::MemberRole::Voter as i32;
    assert_eq!(voters, vec![(1, voter), (2, voter), (4, voter)], "{st:?}");
    for (id, n) in holds {
        assert!(has_hold(&four, *id, *n).await, "hold {id} not on node 4");
    }
    let three = client(p, &[3], Some(MOVED));
    let st3 = three
        .cluster_status(pb::ClusterStatusRequest::default())
        .await;
    assert!(
        st3.as_ref().is_ok_and(|s| s.removed),
        "node 3 in hainan: {st3:?}"
    );
    let gba = client(p, &[3], Some("gba"));
    let st = gba
        .cluster_status(pb::ClusterStatusRequest::default())
        .await;
    assert!(st.is_ok_and(|s| !s.removed), "node 3 still serves gba");
}

/// Log lines of every node naming `region` and containing `what`.
fn log_lines(p: &Procs, region: &str, what: &str) -> usize {
    let tag = format!("region{{id={region}}}");
    [1, 2, 3]
        .iter()
        .map(|id| p.log(*id))
        .map(|log| {
            log.lines()
                .filter(|l| l.contains(&tag) && l.contains(what))
                .count()
        })
        .sum()
}

/// Restarts node `id` (SIGTERM, then its config as `p.opts` now says) and waits until it
/// serves its default region again: a node restarted with a new region must not hold its
/// other regions back while the new one finds its peers.
async fn restart(p: &mut Procs, id: u64) {
    tokio::task::block_in_place(|| p.terminate(id));
    p.spawn(id, true);
    let c = client(p, &[id], Some("gba"));
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let st = c.cluster_status(pb::ClusterStatusRequest::default()).await;
        if st.is_ok_and(|s| s.leader_id != 0) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "node {id} does not serve gba after its restart with a new region\n{}",
            p.logs(&[id])
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_region_is_added_by_restarting_the_nodes_one_at_a_time() {
    crate::bounded(async {
        let three = regions_toml(&OTHERS);
        let mut p = Procs::start(
            &[1, 2, 3],
            &[1, 2, 3],
            Opts {
                schedule_horizon_days: Some(0),
                extra_toml: three.clone(),
                rust_log: Some("warn,ninety_cluster::runtime=info"),
                ..Opts::default()
            },
        );
        loaded(&p, &OTHERS, &[1, 2, 3]).await;
        let writers = Writers::start(&p, &OTHERS).await;
        // The operator's procedure: the new [[regions]] entry in every node's config, then
        // each node restarted in turn once the previous one serves again.
        p.opts.extra_toml = format!("{three}{}", regions_toml(&[MOVED]));
        let started = Instant::now();
        for id in [1, 2, 3] {
            restart(&mut p, id).await;
        }
        let ward = loaded(&p, &[MOVED], &[1, 2, 3]).await[0];
        eprintln!(
            "hainan added and loaded {:.1} s after the first restart",
            started.elapsed().as_secs_f64()
        );
        let hainan = client(&p, &[1, 2, 3], Some(MOVED));
        let held = hold(&hainan, ward, 8001).await.expect("a hold in hainan");
        let tally = writers.stop().await;
        check_tally(&p, &tally, &OTHERS, &[1, 2, 3]).await;
        p.converge_region(&[1, 2, 3], MOVED, Duration::from_secs(20))
            .await;
        let founded = log_lines(&p, MOVED, "bootstrapped a new cluster");
        let loads = log_lines(&p, MOVED, "region loaded through the log");
        // Founded by the first two nodes restarted (the third found it running); loaded by
        // its leader (again only after a leader change mid-load: every load command is
        // keyed, so a second proposal changes nothing).
        eprintln!("hainan founded on {founded} nodes, loaded {loads} time(s)");
        assert!((1..=3).contains(&founded), "{founded} bootstraps of hainan");
        assert!(loads >= 1, "hainan never loaded");
        restart_everything_and_drop_a_region(&mut p, founded).await;
        assert!(has_hold(&hainan, held, 8001).await, "hold {held} lost");
        let reloaded = log_lines(&p, MOVED, "region loaded through the log");
        assert_eq!(reloaded, loads, "a restart loaded hainan again");
        p.converge_region(&[1, 2, 3], MOVED, Duration::from_secs(20))
            .await;
    })
    .await;
}

/// Every node killed and restarted at once (each `init = true`, each with hainan's data):
/// no node bootstraps hainan again. Then node 3 restarted with a config that drops asean,
/// whose replica it holds: refused, naming the directory; with asean listed again it serves.
async fn restart_everything_and_drop_a_region(p: &mut Procs, founded: usize) {
    for id in [1, 2, 3] {
        p.kill(id);
    }
    for id in [1, 2, 3] {
        p.spawn(id, true);
    }
    loaded(p, &[MOVED, "gba"], &[1, 2, 3]).await;
    assert_eq!(
        log_lines(p, MOVED, "bootstrapped a new cluster"),
        founded,
        "a restarted node bootstrapped hainan again"
    );
    let all = p.opts.extra_toml.clone();
    p.opts.extra_toml = all.replace(&regions_toml(&["asean"]), "");
    p.kill(3);
    p.spawn(3, true);
    let status = tokio::task::spawn_blocking({
        let mut child = p.children.remove(&3).expect("node 3");
        move || child.wait().expect("node 3 exits")
    })
    .await
    .expect("wait for node 3");
    assert_eq!(status.code(), Some(1), "{}", p.log(3));
    let log = p.log(3);
    assert!(
        log.contains("holds region asean") && log.contains("regions/asean"),
        "{log}"
    );
    p.opts.extra_toml = all;
    p.spawn(3, true);
    p.converge_region(&[1, 2, 3], "asean", Duration::from_secs(20))
        .await;
}
