//! Online backup and restore (`ninety cluster backup` / `restore`, `Admin.Backup`): a
//! backup taken from a live cluster under load, restored into a fresh 3-node cluster, holds
//! the backup's state at the backup's index (the state hash the source node computed for
//! its snapshot, the one the CLI computes from the file, and the restored node's own); the
//! restored cluster is a new cluster (another cluster id) that elects a leader and serves
//! reads of what was backed up and new writes; a damaged file is refused by name.
//!
//! The restored cluster runs `--insecure` (plain text on loopback): the restore writes its
//! configs, and the harness's certificates are the source cluster's.

use crate::harness::*;
use ninety_proto::v1 as pb;
use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Runs the `ninety` CLI; returns its exit code, stdout and stderr.
fn cli(args: &[String]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_ninety"))
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run ninety");
    let text = |b: Vec<u8>| String::from_utf8_lossy(&b).into_owned();
    (
        out.status.code().unwrap_or(-1),
        text(out.stdout),
        text(out.stderr),
    )
}

fn json(stdout: &str) -> serde_json::Value {
    serde_json::from_str(stdout).unwrap_or_else(|e| panic!("not JSON ({e}): {stdout}"))
}

/// Holds and confirms one bed on the source cluster; returns the hold id.
async fn confirmed_hold(p: &Procs, leader: u64, ward: u32) -> u64 {
    let mut beds = p.beds(leader);
    let hold = beds
        .hold_bed(pb::HoldBedRequest {
            request_id: "0bac0000000000000000000000000001".into(),
            ward_id: ward,
            patient_ref: "a665a45920422f9d417e4867efdc4fb8".into(),
            ttl_ms: 600_000,
            ..Default::default()
        })
        .await
        .expect("hold")
        .into_inner()
        .hold
        .expect("a hold");
    beds.confirm_hold(pb::ConfirmHoldRequest {
        request_id: "0bac0000000000000000000000000002".into(),
        hold_id: hold.hold_id,
    })
    .await
    .expect("confirm");
    hold.hold_id
}

/// `ninety cluster restore` of `file` into `dir` with the ports of `p`; its JSON answer or
/// (code, stdout + stderr) on failure.
fn restore(file: &Path, dir: &Path, p: &Procs) -> Result<serde_json::Value, (i32, String)> {
    let list = |m: &BTreeMap<u64, u16>| {
        m.values()
            .map(|port| format!("127.0.0.1:{port}"))
            .collect::<Vec<_>>()
            .join(",")
    };
    let args: Vec<String> = [
        "cluster",
        "restore",
        "--json",
        "--insecure",
        "--region",
        "test",
        "--nodes-count",
        "3",
    ]
    .iter()
    .map(|s| s.to_string())
    .chain([
        "--from".into(),
        file.display().to_string(),
        "--dir".into(),
        dir.display().to_string(),
        "--addrs".into(),
        list(&p.ports),
        "--peer-addrs".into(),
        list(&p.peer_ports),
    ])
    .collect();
    let (code, out, err) = cli(&args);
    if code != 0 {
        return Err((code, format!("{out}{err}")));
    }
    Ok(json(&out))
}

/// Starts node `id` of a restored cluster from the config `restore` wrote.
fn start_restored(p: &mut Procs, id: u64) {
    let log = std::fs::File::create(p.dir.path().join(format!("n{id}.log"))).expect("log");
    let child = Command::new(env!("CARGO_BIN_EXE_ninety"))
        .args(["node", "--config"])
        .arg(p.dir.path().join(format!("node{id}.toml")))
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("spawn ninety");
    p.children.insert(id, child);
}

/// Node `id`'s status with its state hash, once it answers.
async fn hashed_status(p: &Procs, id: u64) -> pb::ClusterStatusResponse {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let asked = p
            .admin(id)
            .cluster_status(pb::ClusterStatusRequest {
                with_state_hash: true,
            })
            .await;
        if let Ok(s) = asked {
            return s.into_inner();
        }
        assert!(
            Instant::now() < deadline,
            "node {id} never answered:\n{}",
            p.log(id)
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backup_under_load_restores_into_a_new_cluster() {
    crate::bounded(async {
        let p = Procs::start(&[1, 2, 3], &[1, 2, 3], Opts::default());
        let leader = p.wait_ready(Duration::from_secs(20)).await;
        let wards = ward_ids(&p, leader).await;
        let kept = confirmed_hold(&p, leader, wards[0]).await;
        let until = Instant::now() + Duration::from_secs(4);
        let load = tokio::spawn(workload(p.channels(&[1, 2, 3]), wards, 4, until));
        tokio::time::sleep(Duration::from_secs(1)).await;

        let file = p.dir.path().join("region.ninety-backup");
        let mut args: Vec<String> = ["cluster", "backup", "--fresh", "--json", "--out"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        args.push(file.display().to_string());
        args.extend(["--nodes".into(), p.addr(leader)]);
        args.extend(p.client_args());
        let (code, out, err) = tokio::task::spawn_blocking(move || cli(&args))
            .await
            .expect("backup");
        assert_eq!(code, 0, "backup failed: {out}{err}");
        let meta = json(&out);
        let ledger = load.await.expect("load");
        eprintln!("backup: {meta}; load: {}", summary(&ledger));
        let index = meta["snapshot_index"].as_u64().expect("index");
        let hash = meta["state_hash"].as_str().expect("hash").to_string();
        assert_eq!(meta["cluster_id"], p.cluster_id.as_str());
        assert!(index > 1, "a snapshot of the loaded region: {meta}");

        // A damaged copy is refused before anything is written.
        let mut bytes = std::fs::read(&file).expect("read backup");
        let last = bytes.len() - 1;
        bytes[last] ^= 0x40;
        let bad = p.dir.path().join("damaged.ninety-backup");
        std::fs::write(&bad, &bytes).expect("write damaged");
        let scratch = tempfile::tempdir().expect("temp dir");
        let (code, text) = restore(&bad, scratch.path(), &p).expect_err("damaged restored");
        assert_eq!(code, 2, "{text}");
        assert!(text.contains("checksum mismatch"), "{text}");
        assert!(!scratch.path().join("node1.toml").exists());

        let mut r = Procs {
            dir: tempfile::tempdir().expect("temp dir"),
            ports: [1, 2, 3].map(|id| (id, free_port())).into(),
            peer_ports: [1, 2, 3].map(|id| (id, free_port())).into(),
            metrics_ports: BTreeMap::new(),
            children: BTreeMap::new(),
            voters: vec![1, 2, 3],
            opts: Opts {
                insecure: true,
                ..Opts::default()
            },
            tls: None,
            cluster_id: String::new(),
        };
        let restored = restore(&file, r.dir.path(), &r).unwrap_or_else(|e| panic!("{e:?}"));
        r.cluster_id = restored["cluster_id"].as_str().expect("new id").to_string();
        assert_ne!(r.cluster_id, p.cluster_id, "a restore makes a new cluster");
        drop(p);

        // Alone (no quorum, so nothing new is applied), node 1 holds the backup's state
        // at the backup's index.
        start_restored(&mut r, 1);
        let alone = hashed_status(&r, 1).await;
        assert_eq!(alone.applied_index, index, "{alone:?}");
        assert_eq!(hex(&alone.state_hash), hash, "state at the backup's index");

        for id in [2, 3] {
            start_restored(&mut r, id);
        }
        let leader = r.wait_ready(Duration::from_secs(30)).await;
        let got = r
            .beds(leader)
            .get_hold(pb::GetHoldRequest {
                hold_id: kept,
                consistency: pb::ReadConsistency::Linearizable as i32,
            })
            .await
            .expect("the backed-up hold")
            .into_inner();
        let state = got.hold.map(|h| h.state).unwrap_or_default();
        assert_eq!(state, pb::HoldState::Confirmed as i32);
        let wards = ward_ids(&r, leader).await;
        let until = Instant::now() + Duration::from_secs(1);
        let ledger = workload_seeded(r.channels(&[1, 2, 3]), wards, 2, until, 0xbac).await;
        assert!(
            !ledger.lock().unwrap().is_empty(),
            "the restored cluster takes writes"
        );
        let (after, _) = r.converge(&[1, 2, 3], Duration::from_secs(20)).await;
        assert!(after > index);
        for id in [1, 2, 3] {
            check_ledger(&r, id, &ledger).await;
            r.check_capacity(id).await;
        }
    })
    .await;
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
