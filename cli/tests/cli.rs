//! The operator commands of the `ninety` binary against a real 3-node cluster: `cluster
//! status` (table and `--json`), `hold` / `confirm` / `release` / `hold-status` with their
//! JSON fields and request-id replay, refusals (non-zero exit, gRPC code, the rejection's
//! field), `cluster snapshot`, and the offline commands `region generate` and `cluster init`.

#[allow(dead_code)]
#[path = "cluster/harness.rs"]
mod harness;

use serde_json::Value;
use std::process::{Command, Output};
use std::time::Duration;

fn ninety(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ninety"))
        .args(args)
        .env("RUST_LOG", "warn")
        .env_remove("NINETY_NODES")
        .output()
        .expect("runs the ninety binary")
}

fn text(o: &Output) -> String {
    format!(
        "exit {:?}\nstdout:\n{}\nstderr:\n{}",
        o.status.code(),
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// Runs a command that must succeed and print JSON.
fn json_ok(args: &[&str]) -> Value {
    let o = ninety(args);
    assert!(o.status.success(), "{args:?} failed: {}", text(&o));
    serde_json::from_slice(&o.stdout)
        .unwrap_or_else(|e| panic!("{args:?}: bad JSON ({e}): {}", text(&o)))
}

const PATIENT: &str = "00112233445566778899aabbccddeeff";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operator_commands_against_a_three_node_cluster() {
    let _serial = harness::SERIAL.lock().await;
    let mut procs = harness::Procs::start(&[1, 2, 3], &[1, 2, 3], harness::Opts::default());
    tokio::time::timeout(Duration::from_secs(60), async {
        procs.wait_ready(Duration::from_secs(30)).await;
        let wards = harness::ward_ids(&procs, 1).await;
        let nodes = [1, 2, 3].map(|id| procs.addr(id)).join(",");
        let n = nodes.as_str();

        // cluster status: a table naming every member and one leader ...
        let o = ninety(&["cluster", "status", "--nodes", n]);
        assert!(o.status.success(), "{}", text(&o));
        let out = String::from_utf8_lossy(&o.stdout);
        assert!(out.starts_with("leader: "), "{out}");
        for id in [1, 2, 3] {
            assert!(out.contains(&procs.addr(id)), "{out}");
        }
        assert_eq!(out.matches(" leader ").count(), 1, "{out}");
        // ... and the same as JSON.
        let s = json_ok(&["cluster", "status", "--nodes", n, "--json"]);
        let members = s["members"].as_array().expect("members");
        assert_eq!(members.len(), 3, "{s}");
        assert_eq!(members.iter().filter(|m| m["leader"] == true).count(), 1);
        assert!(members
            .iter()
            .all(|m| m["role"] == "MEMBER_ROLE_VOTER" && m["reachable"] == true));
        assert!(s["leader_id"].as_u64().unwrap() >= 1);

        // hold → confirm, with the JSON fields an operator reads.
        let ward = wards[0].to_string();
        let h = json_ok(&[
            "hold",
            "--nodes",
            n,
            "--json",
            "--ward",
            &ward,
            "--patient",
            PATIENT,
            "--ttl",
            "15m",
        ]);
        let hold_id = h["hold"]["hold_id"].as_u64().expect("hold_id");
        assert!(hold_id > 0);
        assert_eq!(h["hold"]["state"], "HOLD_STATE_ACTIVE");
        assert_eq!(h["hold"]["ward_id"].as_u64(), Some(u64::from(wards[0])));
        let ttl =
            h["hold"]["expires_ms"].as_u64().unwrap() - h["hold"]["created_ms"].as_u64().unwrap();
        assert_eq!(ttl, 15 * 60_000);
        let rid = h["request_id"].as_str().expect("request id").to_string();
        assert_eq!(rid.len(), 32);
        assert_eq!(h["commit"]["replayed"], false);
        // A retry with the printed request id gets the first answer.
        let again = json_ok(&[
            "hold",
            "--nodes",
            n,
            "--json",
            "--ward",
            &ward,
            "--patient",
            PATIENT,
            "--request-id",
            &rid,
        ]);
        assert_eq!(again["hold"]["hold_id"].as_u64(), Some(hold_id));
        assert_eq!(again["commit"]["replayed"], true);
        let id = hold_id.to_string();
        let c = json_ok(&["confirm", &id, "--nodes", n, "--json"]);
        assert_eq!(c["hold"]["state"], "HOLD_STATE_CONFIRMED");
        assert!(
            c["commit"]["log_index"].as_u64().unwrap() > h["commit"]["log_index"].as_u64().unwrap()
        );

        // hold → release (human table), then hold-status.
        let o = ninety(&["hold", "--nodes", n, "--ward", &ward, "--patient", PATIENT]);
        assert!(o.status.success(), "{}", text(&o));
        let out = String::from_utf8_lossy(&o.stdout).to_string();
        assert!(out.contains("state       active"), "{out}");
        let second = out
            .lines()
            .find_map(|l| l.strip_prefix("hold "))
            .map(|v| v.trim().to_string())
            .expect("the table names the hold");
        let r = json_ok(&[
            "release", &second, "--nodes", n, "--json", "--reason", "test",
        ]);
        assert_eq!(r["hold"]["state"], "HOLD_STATE_RELEASED");
        let st = json_ok(&["hold-status", &second, "--nodes", n, "--json"]);
        assert_eq!(st["hold"]["state"], "HOLD_STATE_RELEASED");

        // A domain refusal: non-zero, the gRPC code and the rejection.
        let o = ninety(&["release", &second, "--nodes", n]);
        assert_eq!(o.status.code(), Some(1), "{}", text(&o));
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(
            err.contains("FAILED_PRECONDITION") && err.contains("ALREADY_RESOLVED"),
            "{err}"
        );

        // A bad argument: non-zero, and the field is named (table and JSON).
        let o = ninety(&[
            "hold",
            "--nodes",
            n,
            "--ward",
            &ward,
            "--patient",
            "not-a-reference",
        ]);
        assert_eq!(o.status.code(), Some(1), "{}", text(&o));
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(
            err.contains("INVALID_ARGUMENT") && err.contains("field:     patient_ref"),
            "{err}"
        );
        let o = ninety(&[
            "hold",
            "--nodes",
            n,
            "--json",
            "--ward",
            &ward,
            "--patient",
            "nope",
        ]);
        assert_eq!(o.status.code(), Some(1), "{}", text(&o));
        let e: Value = serde_json::from_slice(&o.stdout).expect("error JSON");
        assert_eq!(e["error"]["code"], "INVALID_ARGUMENT");
        assert_eq!(e["error"]["rejection"]["field"], "patient_ref");
        // Caught before any call: a duration that is not one.
        let o = ninety(&[
            "hold",
            "--nodes",
            n,
            "--ward",
            &ward,
            "--patient",
            PATIENT,
            "--ttl",
            "soon",
        ]);
        assert_eq!(o.status.code(), Some(2), "{}", text(&o));
        assert!(
            String::from_utf8_lossy(&o.stderr).contains("--ttl"),
            "{}",
            text(&o)
        );

        // Ward counts reflect the confirmed hold.
        let w = json_ok(&[
            "wards",
            "--nodes",
            n,
            "--json",
            "--hospital",
            "1",
            "--ward",
            &ward,
        ]);
        assert_eq!(w["wards"][0]["occupied_beds"].as_u64(), Some(1), "{w}");

        // Every member snapshots.
        let snap = json_ok(&["cluster", "snapshot", "--nodes", n, "--json"]);
        let list = snap["snapshots"].as_array().expect("snapshots");
        assert_eq!(list.len(), 3, "{snap}");
        assert!(
            list.iter()
                .all(|s| s["snapshot_index"].as_u64().unwrap_or(0) > 0),
            "{snap}"
        );

        // Leadership moves where asked.
        let leader = s["leader_id"].as_u64().unwrap();
        let to = [1u64, 2, 3].into_iter().find(|id| *id != leader).unwrap();
        let t = json_ok(&[
            "cluster",
            "transfer-leader",
            "--nodes",
            n,
            "--json",
            "--to",
            &to.to_string(),
        ]);
        assert_eq!(t["leader_id"].as_u64(), Some(to), "{t}");
        assert_eq!(t["transferred"], true);

        // A wiped node rejoins: remove it, start it empty, add it (learner, caught up, promoted).
        let victim = [1u64, 2, 3].into_iter().find(|id| *id != to).unwrap();
        procs.kill(victim);
        std::fs::remove_dir_all(procs.data_dir(victim)).expect("wipe the data dir");
        let r = json_ok(&[
            "cluster",
            "remove-member",
            "--nodes",
            n,
            "--json",
            "--id",
            &victim.to_string(),
        ]);
        assert_eq!(r["members"].as_array().map(Vec::len), Some(2), "{r}");
        procs.spawn(victim, false);
        let a = json_ok(&[
            "cluster",
            "add-member",
            "--nodes",
            n,
            "--json",
            "--id",
            &victim.to_string(),
            "--addr",
            &procs.addr(victim),
            "--catch-up",
            "30s",
        ]);
        let members = a["members"].as_array().expect("members");
        assert_eq!(members.len(), 3, "{a}");
        assert!(
            members.iter().all(|m| m["role"] == "MEMBER_ROLE_VOTER"),
            "{a}"
        );
        let s = json_ok(&["cluster", "status", "--nodes", n, "--json"]);
        let back = s["members"]
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["node_id"].as_u64() == Some(victim))
            .cloned();
        assert!(back.is_some_and(|m| m["reachable"] == true), "{s}");

        // An unreachable cluster: a clear failure, not a hang.
        let o = ninety(&[
            "cluster",
            "status",
            "--nodes",
            "127.0.0.1:1",
            "--timeout",
            "2",
        ]);
        assert_ne!(o.status.code(), Some(0), "{}", text(&o));
        assert!(
            String::from_utf8_lossy(&o.stderr).contains("UNAVAILABLE"),
            "{}",
            text(&o)
        );
    })
    .await
    .unwrap_or_else(|_| panic!("timed out; logs:\n{}", procs.logs(&[1, 2, 3])));
}

#[test]
fn region_generate_writes_a_file_the_engine_loads() {
    let dir = tempfile::tempdir().expect("temp dir");
    let out = dir.path().join("regions/gba-7.json");
    let out_s = out.to_str().unwrap();
    let j = json_ok(&[
        "region", "generate", "--preset", "gba", "--seed", "7", "--out", out_s, "--json",
    ]);
    assert_eq!(j["region"]["hospitals"].as_u64(), Some(79), "{j}");
    let written = std::fs::read_to_string(&out).expect("the file was written");
    let region = ninety_engine::RegionFile::from_json(&written).expect("parses");
    region.validate().expect("valid");
    assert_eq!(region.hospitals.len(), 79);
    let at = ninety_engine::generate::DEFAULT_DAY_START;
    let engine = ninety_engine::load(&region, &[], at).expect("the engine loads it");
    assert_eq!(
        engine.beds().wards().count() as u64,
        j["region"]["wards"].as_u64().unwrap()
    );
    // The same seed gives the same file.
    let again = dir.path().join("again.json");
    json_ok(&[
        "region",
        "generate",
        "--seed",
        "7",
        "--out",
        again.to_str().unwrap(),
        "--json",
    ]);
    assert_eq!(std::fs::read_to_string(&again).unwrap(), written);
    // An unknown preset is refused by the argument parser.
    let o = ninety(&["region", "generate", "--preset", "atlantis", "--out", out_s]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
}

#[test]
fn cluster_init_writes_configs_nodes_accept() {
    let dir = tempfile::tempdir().expect("temp dir");
    let d = dir.path().to_str().unwrap();
    let j = json_ok(&[
        "cluster",
        "init",
        "--nodes-count",
        "3",
        "--dir",
        d,
        "--base-port",
        "7101",
        "--spare-ids",
        "4",
        "--json",
    ]);
    assert_eq!(
        j["client_nodes"],
        "127.0.0.1:7101,127.0.0.1:7102,127.0.0.1:7103"
    );
    for id in 1..=3u64 {
        let path = dir.path().join(format!("node{id}.toml"));
        let text = std::fs::read_to_string(&path).expect("config written");
        let cfg =
            ninety_cluster::runtime::config::FileConfig::parse(&text).expect("a node accepts it");
        assert_eq!(cfg.id, id);
        assert!(cfg.init);
        assert_eq!(cfg.voters().unwrap(), vec![1, 2, 3]);
        assert_eq!(
            cfg.peer_map().unwrap().len(),
            4,
            "the spare id is in the address book"
        );
        assert_eq!(cfg.listen.port(), 7100 + id as u16);
        assert!(cfg.data_dir.is_absolute());
    }
    // `--config` says what a node's next start will do.
    let node1 = dir.path().join("node1.toml");
    let c = json_ok(&[
        "cluster",
        "init",
        "--config",
        node1.to_str().unwrap(),
        "--json",
    ]);
    assert_eq!(c["action"], "bootstrap", "{c}");
    assert_eq!(c["warnings"].as_array().map(Vec::len), Some(0), "{c}");
    // Existing configs are not overwritten without --force.
    let o = ninety(&["cluster", "init", "--dir", d]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(String::from_utf8_lossy(&o.stderr).contains("--force"));
    json_ok(&["cluster", "init", "--dir", d, "--force", "--json"]);
}
