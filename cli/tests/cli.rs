//! The operator commands of the `ninety` binary against a real 3-node cluster: `cluster
//! status` (table and `--json`), `hold` / `confirm` / `release` / `hold-status` with their
//! JSON fields and request-id replay, refusals (non-zero exit, gRPC code, the rejection's
//! field), `cluster snapshot`, and the offline commands `region generate` and `cluster init`
//! (secure by default: CA, node certificates, operator token), `cluster cert`, `cluster
//! token`, and the credential flags (`--cacert`, `--cert`, `--key`, `--token-file`).

#[allow(dead_code)]
#[path = "cluster/harness.rs"]
mod harness;

use serde_json::Value;
use std::process::{Command, Output};
use std::time::Duration;

/// The environment variables that give the CLI credentials: a test sets them itself.
const CREDENTIAL_ENVS: [&str; 5] = [
    "NINETY_CACERT",
    "NINETY_CERT",
    "NINETY_KEY",
    "NINETY_TOKEN",
    "NINETY_TOKEN_FILE",
];

fn ninety(args: &[&str]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_ninety"));
    for v in CREDENTIAL_ENVS {
        cmd.env_remove(v);
    }
    cmd.args(args)
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

/// [`ninety`] with credential flags (`Procs::client_args`) appended: they are global.
fn ninety_as(creds: &[String], args: &[&str]) -> Output {
    let mut all: Vec<&str> = args.to_vec();
    all.extend(creds.iter().map(String::as_str));
    ninety(&all)
}

/// [`json_ok`] with credential flags appended.
fn json_ok_as(creds: &[String], args: &[&str]) -> Value {
    let mut all: Vec<&str> = args.to_vec();
    all.extend(creds.iter().map(String::as_str));
    json_ok(&all)
}

const PATIENT: &str = "00112233445566778899aabbccddeeff";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operator_commands_against_a_three_node_cluster() {
    let _serial = harness::SERIAL.lock().await;
    let mut procs = harness::Procs::start(&[1, 2, 3], &[1, 2, 3], harness::Opts::default());
    // The harness's client certificate (TLS, every role).
    let creds = procs.client_args();
    tokio::time::timeout(Duration::from_secs(60), async {
        procs.wait_ready(Duration::from_secs(30)).await;
        let wards = harness::ward_ids(&procs, 1).await;
        let nodes = [1, 2, 3].map(|id| procs.addr(id)).join(",");
        let n = nodes.as_str();

        // cluster status: a table naming every member and one leader ...
        let o = ninety_as(&creds, &["cluster", "status", "--nodes", n]);
        assert!(o.status.success(), "{}", text(&o));
        let out = String::from_utf8_lossy(&o.stdout);
        assert!(out.starts_with("leader: "), "{out}");
        for id in [1, 2, 3] {
            assert!(out.contains(&procs.addr(id)), "{out}");
        }
        assert_eq!(out.matches(" leader ").count(), 1, "{out}");
        // ... and the same as JSON.
        let s = json_ok_as(&creds, &["cluster", "status", "--nodes", n, "--json"]);
        let members = s["members"].as_array().expect("members");
        assert_eq!(members.len(), 3, "{s}");
        assert_eq!(members.iter().filter(|m| m["leader"] == true).count(), 1);
        assert!(members
            .iter()
            .all(|m| m["role"] == "MEMBER_ROLE_VOTER" && m["reachable"] == true));
        assert!(s["leader_id"].as_u64().unwrap() >= 1);

        // hold → confirm, with the JSON fields an operator reads.
        let ward = wards[0].to_string();
        let h = json_ok_as(
            &creds,
            &[
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
            ],
        );
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
        let again = json_ok_as(
            &creds,
            &[
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
            ],
        );
        assert_eq!(again["hold"]["hold_id"].as_u64(), Some(hold_id));
        assert_eq!(again["commit"]["replayed"], true);
        let id = hold_id.to_string();
        let c = json_ok_as(&creds, &["confirm", &id, "--nodes", n, "--json"]);
        assert_eq!(c["hold"]["state"], "HOLD_STATE_CONFIRMED");
        assert!(
            c["commit"]["log_index"].as_u64().unwrap() > h["commit"]["log_index"].as_u64().unwrap()
        );

        // hold → release (human table), then hold-status.
        let o = ninety_as(
            &creds,
            &["hold", "--nodes", n, "--ward", &ward, "--patient", PATIENT],
        );
        assert!(o.status.success(), "{}", text(&o));
        let out = String::from_utf8_lossy(&o.stdout).to_string();
        assert!(out.contains("state       active"), "{out}");
        let second = out
            .lines()
            .find_map(|l| l.strip_prefix("hold "))
            .map(|v| v.trim().to_string())
            .expect("the table names the hold");
        let r = json_ok_as(
            &creds,
            &[
                "release", &second, "--nodes", n, "--json", "--reason", "test",
            ],
        );
        assert_eq!(r["hold"]["state"], "HOLD_STATE_RELEASED");
        let st = json_ok_as(&creds, &["hold-status", &second, "--nodes", n, "--json"]);
        assert_eq!(st["hold"]["state"], "HOLD_STATE_RELEASED");

        // A domain refusal: non-zero, the gRPC code and the rejection.
        let o = ninety_as(&creds, &["release", &second, "--nodes", n]);
        assert_eq!(o.status.code(), Some(1), "{}", text(&o));
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(
            err.contains("FAILED_PRECONDITION") && err.contains("ALREADY_RESOLVED"),
            "{err}"
        );

        // A bad argument: non-zero, and the field is named (table and JSON).
        let o = ninety_as(
            &creds,
            &[
                "hold",
                "--nodes",
                n,
                "--ward",
                &ward,
                "--patient",
                "not-a-reference",
            ],
        );
        assert_eq!(o.status.code(), Some(1), "{}", text(&o));
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(
            err.contains("INVALID_ARGUMENT") && err.contains("field:     patient_ref"),
            "{err}"
        );
        let o = ninety_as(
            &creds,
            &[
                "hold",
                "--nodes",
                n,
                "--json",
                "--ward",
                &ward,
                "--patient",
                "nope",
            ],
        );
        assert_eq!(o.status.code(), Some(1), "{}", text(&o));
        let e: Value = serde_json::from_slice(&o.stdout).expect("error JSON");
        assert_eq!(e["error"]["code"], "INVALID_ARGUMENT");
        assert_eq!(e["error"]["rejection"]["field"], "patient_ref");
        // Caught before any call: a duration that is not one.
        let o = ninety_as(
            &creds,
            &[
                "hold",
                "--nodes",
                n,
                "--ward",
                &ward,
                "--patient",
                PATIENT,
                "--ttl",
                "soon",
            ],
        );
        assert_eq!(o.status.code(), Some(2), "{}", text(&o));
        assert!(
            String::from_utf8_lossy(&o.stderr).contains("--ttl"),
            "{}",
            text(&o)
        );

        // Ward counts reflect the confirmed hold.
        let w = json_ok_as(
            &creds,
            &[
                "wards",
                "--nodes",
                n,
                "--json",
                "--hospital",
                "1",
                "--ward",
                &ward,
            ],
        );
        assert_eq!(w["wards"][0]["occupied_beds"].as_u64(), Some(1), "{w}");

        // Every member snapshots.
        let snap = json_ok_as(&creds, &["cluster", "snapshot", "--nodes", n, "--json"]);
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
        let t = json_ok_as(
            &creds,
            &[
                "cluster",
                "transfer-leader",
                "--nodes",
                n,
                "--json",
                "--to",
                &to.to_string(),
            ],
        );
        assert_eq!(t["leader_id"].as_u64(), Some(to), "{t}");
        assert_eq!(t["transferred"], true);

        // A wiped node rejoins: remove it, start it empty, add it (learner, caught up, promoted).
        let victim = [1u64, 2, 3].into_iter().find(|id| *id != to).unwrap();
        procs.kill(victim);
        std::fs::remove_dir_all(procs.data_dir(victim)).expect("wipe the data dir");
        let r = json_ok_as(
            &creds,
            &[
                "cluster",
                "remove-member",
                "--nodes",
                n,
                "--json",
                "--id",
                &victim.to_string(),
            ],
        );
        assert_eq!(r["members"].as_array().map(Vec::len), Some(2), "{r}");
        procs.spawn(victim, false);
        let a = json_ok_as(
            &creds,
            &[
                "cluster",
                "add-member",
                "--nodes",
                n,
                "--json",
                "--id",
                &victim.to_string(),
                "--addr",
                &procs.addr(victim),
                "--peer-addr",
                &procs.peer_addr(victim),
                "--catch-up",
                "30s",
            ],
        );
        let members = a["members"].as_array().expect("members");
        assert_eq!(members.len(), 3, "{a}");
        assert!(
            members.iter().all(|m| m["role"] == "MEMBER_ROLE_VOTER"),
            "{a}"
        );
        let s = json_ok_as(&creds, &["cluster", "status", "--nodes", n, "--json"]);
        let back = s["members"]
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["node_id"].as_u64() == Some(victim))
            .cloned();
        assert!(back.is_some_and(|m| m["reachable"] == true), "{s}");

        // An unreachable cluster: a clear failure, not a hang.
        let o = ninety_as(
            &creds,
            &[
                "cluster",
                "status",
                "--nodes",
                "127.0.0.1:1",
                "--timeout",
                "2",
            ],
        );
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

/// `cluster init --regions` writes `[[regions]]` (the first the default) that nodes
/// accept; a region that is not built in, or one listed twice, is refused before anything
/// is written.
#[test]
fn cluster_init_with_regions_writes_one_table_per_region() {
    let dir = tempfile::tempdir().expect("temp dir");
    let d = dir.path().to_str().unwrap();
    let init = |regions: &str| {
        let args = [
            "cluster",
            "init",
            "--insecure",
            "--dir",
            d,
            "--regions",
            regions,
        ];
        ninety(&args)
    };
    for (bad, says) in [
        ("gba,mars", "\"mars\" is not a built-in"),
        ("gba,gba", "twice"),
    ] {
        let o = init(bad);
        assert_eq!(o.status.code(), Some(2), "{}", text(&o));
        assert!(text(&o).contains(says), "{}", text(&o));
        assert!(!dir.path().join("node1.toml").exists());
    }
    let o = init("yunnan,gba,test");
    assert!(o.status.success(), "{}", text(&o));
    let config = std::fs::read_to_string(dir.path().join("node2.toml")).expect("written");
    let cfg = ninety_cluster::runtime::config::FileConfig::parse(&config).expect("accepted");
    let ids: Vec<&str> = cfg.regions.iter().map(|r| r.id.as_str()).collect();
    assert_eq!(ids, ["yunnan", "gba", "test"]);
    let groups = ninety_cluster::runtime::regions::groups(&cfg).expect("groups");
    assert_eq!(groups[0].id, "yunnan", "the first is the default");
    assert!(groups[2].data_dir.ends_with("regions/test"));
}

/// `--region` must be a region id: refused (exit 2) before any call.
#[test]
fn a_region_that_is_no_region_id_is_refused_before_any_call() {
    let args = ["cluster", "status", "--region", "Not A Region"];
    let o = ninety(&[&args[..], &["--nodes", "127.0.0.1:9"]].concat());
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(
        text(&o).contains("--region: region: \"Not A Region\""),
        "{}",
        text(&o)
    );
}

// needs the server side of issue 12 (FileConfig accepts [tls] and [auth]).
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
        assert_eq!(cfg.peer_listen().unwrap().port(), 7200 + id as u16);
        assert_eq!(cfg.peer_map().unwrap()[&4].peer, "127.0.0.1:7204");
        assert!(cfg.data_dir.is_absolute());
        // Secure by default: the config names this node's certificate and the CA.
        let tls = dir.path().join("tls");
        for f in [
            "ca.pem",
            &format!("node-{id}.pem"),
            &format!("node-{id}.key"),
        ] {
            let want = format!("{:?}", tls.join(f).display().to_string());
            assert!(text.contains(&want), "node {id} names {want}:\n{text}");
        }
        assert!(text.contains("[[auth.tokens]]\nname = \"operator\"\nroles = [\"operator\"]"));
        assert!(text.contains("[[auth.tokens]]\nname = \"hospital\"\nroles = [\"hospital\"]"));
        assert!(!text.contains("insecure = true"), "{text}");
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
    // ... and names its credentials.
    let cert = dir.path().join("tls/node-1.pem");
    assert_eq!(
        c["security"]["tls"]["cert"],
        cert.display().to_string(),
        "{c}"
    );
    assert_eq!(
        c["security"]["tokens"],
        serde_json::json!(["operator", "hospital"]),
        "{c}"
    );
    assert_eq!(c["security"]["insecure"], false, "{c}");
    // A key others may read is warned about.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let key = dir.path().join("tls/node-1.key");
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).unwrap();
        let c = json_ok(&[
            "cluster",
            "init",
            "--config",
            node1.to_str().unwrap(),
            "--json",
        ]);
        assert!(c["warnings"].to_string().contains("chmod 600"), "{c}");
    }
    // Existing configs are not overwritten without --force.
    let o = ninety(&["cluster", "init", "--dir", d]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(String::from_utf8_lossy(&o.stderr).contains("--force"));
    json_ok(&["cluster", "init", "--dir", d, "--force", "--json"]);
    // Client and peer ports never overlap, and explicit client addresses need peer ones.
    let fresh = tempfile::tempdir().expect("temp dir");
    let f = fresh.path().to_str().unwrap();
    for (args, want) in [
        (&["--peer-base-port", "7002"][..], "used twice"),
        (
            &["--addrs", "127.0.0.1:1,127.0.0.1:2,127.0.0.1:3"],
            "--peer-addrs",
        ),
        (&["--base-port", "65500"], "--base-port"),
    ] {
        let o = ninety(&[&["cluster", "init", "--dir", f][..], args].concat());
        assert_eq!(o.status.code(), Some(2), "{args:?}: {}", text(&o));
        assert!(
            String::from_utf8_lossy(&o.stderr).contains(want),
            "{args:?}: {}",
            text(&o)
        );
        assert!(!fresh.path().join("node1.toml").exists(), "{args:?}");
    }
}

/// Runs `ninety` with `args`, killing it after `within` (a command that should have refused
/// at once but serves instead must not hang the test): (exit code, stderr).
fn ninety_within(args: &[&str], env: &[(&str, &str)], within: Duration) -> (Option<i32>, String) {
    let dir = tempfile::tempdir().expect("temp dir");
    let err_path = dir.path().join("stderr");
    let err = std::fs::File::create(&err_path).expect("stderr file");
    let mut child = Command::new(env!("CARGO_BIN_EXE_ninety"))
        .args(args)
        .envs(env.iter().copied())
        .env("RUST_LOG", "warn")
        .env_remove(ninety_cluster::node::POISON_TEST_ENV)
        .stdout(std::process::Stdio::null())
        .stderr(err)
        .spawn()
        .expect("runs the ninety binary");
    let deadline = std::time::Instant::now() + within;
    let code = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break status.code();
        }
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    (code, std::fs::read_to_string(&err_path).unwrap_or_default())
}

/// Asserts a refusal: a non-zero exit (not a kill, not a panic) whose message names `want`.
fn assert_refused(what: &str, (code, stderr): (Option<i32>, String), want: &str) {
    assert!(
        matches!(code, Some(c) if c != 0),
        "{what}: exit {code:?}\n{stderr}"
    );
    assert!(!stderr.contains("panicked"), "{what}: panicked\n{stderr}");
    assert!(stderr.contains(want), "{what}: no {want:?} in\n{stderr}");
}

#[test]
fn sim_arguments_out_of_range_are_refused_without_side_effects() {
    let dir = tempfile::tempdir().expect("temp dir");
    let out = dir.path().join("t.jsonl");
    let out_s = out.to_str().unwrap();
    let quick = Duration::from_secs(30);
    for (flag, value, want) in [
        ("--start-minute", "99999", "--start-minute"),
        ("--start-minute", "1440", "--start-minute"),
        ("--minutes", "0", "--minutes"),
        ("--minutes", "4294967295", "--minutes"),
        ("--minutes", "1441", "--minutes"),
        ("--scale", "0", "--scale"),
        ("--scale", "NaN", "--scale"),
        ("--scale", "-1", "--scale"),
        ("--scale", "1e9", "--scale"),
        ("--days", "0", "--days"),
        ("--days", "93", "--days"),
    ] {
        let arg = format!("{flag}={value}");
        let r = ninety_within(&["sim", "generate", &arg, "--out", out_s], &[], quick);
        assert_refused(&arg, r, want);
        assert!(!out.exists(), "{arg}: wrote {out_s}");
    }
    // A small valid trace for the replays below.
    let o = ninety(&[
        "sim",
        "generate",
        "--minutes",
        "1",
        "--scale",
        "0.01",
        "--out",
        out_s,
    ]);
    assert!(o.status.success(), "{}", text(&o));
    let report = dir.path().join("report");
    let report_s = report.to_str().unwrap();
    // Nothing listens on the target: every refusal below comes before any connection.
    let replay = |extra: &[&str], trace: &str| {
        let mut args = vec![
            "sim",
            "replay",
            "--trace",
            trace,
            "--target",
            "127.0.0.1:1",
            "--report",
            report_s,
            "--quiet",
        ];
        args.extend_from_slice(extra);
        ninety_within(&args, &[], quick)
    };
    for speed in ["1e-300", "0", "-1", "NaN", "inf", "-inf", "1e300", "0.01"] {
        let arg = format!("--speed={speed}");
        assert_refused(&arg, replay(&[&arg], out_s), "speed");
        assert!(!report.exists(), "{arg}: wrote a report");
    }
    for n in ["0", "18446744073709551615"] {
        let arg = format!("--max-in-flight={n}");
        assert_refused(&arg, replay(&[&arg], out_s), "max-in-flight");
    }
    for (arg, want) in [
        ("--schedule=lively", "schedule"),
        ("--days=0", "--days"),
        ("--day-start=2026-02-30", "day-start"),
        ("--region=atlantis", "atlantis"),
    ] {
        assert_refused(arg, replay(&[arg], out_s), want);
        assert!(!report.exists(), "{arg}: wrote a report");
    }
    // The converter: a CSV without the booking column, and a missing file.
    let csv = dir.path().join("a.csv");
    std::fs::write(&csv, "when,what\n2026-11-02,x\n").unwrap();
    let converted = dir.path().join("c.jsonl");
    let convert = |csv: &str| {
        let args = [
            "sim",
            "convert",
            "--csv",
            csv,
            "--out",
            converted.to_str().unwrap(),
        ];
        ninety_within(&args, &[], quick)
    };
    assert_refused("no booked_at", convert(csv.to_str().unwrap()), "booked_at");
    assert_refused("no file", convert("/nonexistent/a.csv"), "nonexistent");
    assert!(!converted.exists(), "wrote a trace");
    // An event due at u64::MAX ms: refused when the trace is read (it used to hang).
    let text = std::fs::read_to_string(&out).unwrap();
    let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
    let mut e: Value = serde_json::from_str(&lines[1]).unwrap();
    e["at_ms"] = Value::from(u64::MAX);
    lines.truncate(1);
    lines.push(e.to_string());
    let far = dir.path().join("far.jsonl");
    std::fs::write(&far, lines.join("\n") + "\n").unwrap();
    let r = replay(&[], far.to_str().unwrap());
    assert_refused("at_ms = u64::MAX", r.clone(), "trace line 2");
    assert!(r.1.contains("at_ms 18446744073709551615"), "{}", r.1);
    assert!(!report.exists(), "wrote a report");
    // The fault simulator's counts.
    for args in [
        &["sim", "faults", "--seeds", "0"][..],
        &["sim", "faults", "--threads", "0"],
        &["sim", "faults", "--threads", "1000000000"],
        &["sim", "faults", "--ops", "0"],
        &["sim", "faults", "--from", "18446744073709551615"],
    ] {
        let r = ninety_within(args, &[], quick);
        assert_refused(&args.join(" "), r, args[2]);
    }
}

/// Writes a node config: node 1 of a 3-node address book, founding (`init = true`), with
/// `region` and `extra` lines; returns its path.
fn node_config(
    dir: &std::path::Path,
    listen: &str,
    region: &str,
    extra: &str,
) -> std::path::PathBuf {
    static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    // A free peer port, unless `extra` sets peer_listen itself.
    let peer = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .unwrap()
        .to_string();
    let peer_listen = if extra.contains("peer_listen") {
        String::new()
    } else {
        format!("peer_listen = \"{peer}\"\n")
    };
    let text = format!(
        "id = 1\nlisten = \"{listen}\"\n{peer_listen}data_dir = \"{}\"\nregion = \"{region}\"\n\
         init = true\n{extra}\n[peers]\n\"1\" = {{ peer = \"{peer}\", client = \"{listen}\" }}\n\
         \"2\" = {{ peer = \"127.0.0.1:2\", client = \"127.0.0.1:12\" }}\n\
         \"3\" = {{ peer = \"127.0.0.1:3\", client = \"127.0.0.1:13\" }}\n",
        dir.join("data").display()
    );
    let path = dir.join(format!("node-{n}.toml"));
    std::fs::write(&path, text).unwrap();
    path
}

/// Runs `ninety node --config path` (killed after 30 s if it does not stop by itself).
fn run_node(path: &std::path::Path) -> (Option<i32>, String) {
    let path = path.to_str().unwrap();
    ninety_within(&["node", "--config", path], &[], Duration::from_secs(30))
}

#[test]
fn node_refuses_bad_configs_before_touching_its_data_dir() {
    let dir = tempfile::tempdir().expect("temp dir");
    let d = dir.path();
    let data = d.join("data");
    // Held for the whole test: the port-in-use case.
    let busy = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let busy_addr = busy.local_addr().unwrap().to_string();
    let busy_peer = format!("peer_listen = \"{busy_addr}\"");
    let free = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().to_string()
    };
    // A region file naming a hospital it does not define.
    let mut region = ninety_cluster::runtime::test_region();
    region.wards[0].ward.hospital = ninety_engine::HospitalId(999_999);
    let region_path = d.join("region.json");
    std::fs::write(&region_path, region.to_json()).unwrap();
    let region_file = region_path.to_str().unwrap();
    let cases = [
        (free.as_str(), region_file, "", "wards[0].hospital"),
        (&free, "test", "initial_voters = [99]", "initial_voters.0"),
        (&free, "test", "initial_voters = [2, 3]", "initial_voters"),
        (&busy_addr, "test", "", "listen"),
        (&free, "test", &busy_peer, "peer_listen"),
        (
            &free,
            "test",
            "snapshot_interval_entries = 0",
            "snapshot_interval_entries",
        ),
        (
            &free,
            "test",
            "max_queued_commands = 99999999999",
            "max_queued_commands",
        ),
        (&free, "no/such/region.json", "", "no/such/region.json"),
    ];
    for (listen, region, extra, want) in cases {
        let r = run_node(&node_config(d, listen, region, extra));
        assert_refused(&format!("{region} {extra}"), r, want);
        assert!(!data.exists(), "{extra}: created {}", data.display());
    }
    // An address book entry that is not host:port.
    for bad in ["127.0.0.1:99999", "a:b:c"] {
        let path = node_config(d, &free, "test", "");
        let text = std::fs::read_to_string(&path).unwrap();
        std::fs::write(&path, text.replace("127.0.0.1:2\"", &format!("{bad}\""))).unwrap();
        assert_refused(bad, run_node(&path), "peers.2");
    }
    // Every file error names its path.
    let missing = d.join("missing.toml");
    assert_refused(
        "missing config",
        run_node(&missing),
        missing.to_str().unwrap(),
    );
    let a_file = d.join("a-file");
    std::fs::write(&a_file, "not a directory").unwrap();
    let path = node_config(d, &free, "test", "");
    let text = std::fs::read_to_string(&path).unwrap();
    let under_file = a_file.join("data");
    let text = text.replace(
        &data.display().to_string(),
        &under_file.display().to_string(),
    );
    std::fs::write(&path, text).unwrap();
    assert_refused(
        "data dir under a file",
        run_node(&path),
        under_file.to_str().unwrap(),
    );
    drop(busy);
}

/// Waits until at least `min` children of `procs` exit by themselves, then a grace second,
/// then stops the rest (SIGKILL, as an operator stopping a node for an upgrade would);
/// returns the exit codes of the ones that exited by themselves.
async fn exits(
    procs: &mut harness::Procs,
    min: usize,
    within: Duration,
) -> Vec<(u64, Option<i32>)> {
    let deadline = std::time::Instant::now() + within;
    let mut out: Vec<(u64, Option<i32>)> = Vec::new();
    let mut grace: Option<std::time::Instant> = None;
    loop {
        for (id, child) in procs.children.iter_mut() {
            if out.iter().any(|(i, _)| i == id) {
                continue;
            }
            if let Some(s) = child.try_wait().expect("wait") {
                out.push((*id, s.code()));
            }
        }
        if out.len() == procs.children.len() {
            break;
        }
        if out.len() >= min {
            let until =
                *grace.get_or_insert_with(|| std::time::Instant::now() + Duration::from_secs(1));
            if std::time::Instant::now() > until {
                break;
            }
        }
        assert!(
            std::time::Instant::now() < deadline,
            "only nodes {out:?} stopped after the panic in apply\n{}",
            procs.logs(&[1, 2, 3])
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    for (_, mut child) in std::mem::take(&mut procs.children) {
        let _ = child.kill();
        let _ = child.wait();
    }
    out
}

/// Item 2 of issue 11, against real processes of the test build (feature `poison-test`):
/// a command that panics inside apply stops the replicas that apply it, each with a FATAL
/// line naming the entry's index, term, request id and kind, and each writes
/// APPLY_PANIC.toml and refuses to start again while it is there. The leader dies first;
/// its successor commits the entry and dies too; the last node, without a quorum, never
/// learns the entry committed and serves nothing. After the operator's procedure (a fixed
/// binary, here the same build without the switch, and the markers removed) the cluster
/// applies the entry, nothing acknowledged before it is lost and the replicas agree.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panic_in_apply_stops_the_nodes_and_is_never_replayed_blindly() {
    use ninety_cluster::node::{POISON_TEST_ENV, POISON_TEST_REQUEST_ID};
    use ninety_cluster::runtime::poison::MARKER_FILE;
    let _serial = harness::SERIAL.lock().await;
    // The switch is inherited by the nodes spawned while it is set (and only by them: the
    // other cluster tests wait for SERIAL).
    std::env::set_var(POISON_TEST_ENV, "1");
    let mut procs = harness::Procs::start(&[1, 2, 3], &[1, 2, 3], harness::Opts::default());
    std::env::remove_var(POISON_TEST_ENV);
    let creds = procs.client_args();
    let ids = [1, 2, 3];
    tokio::time::timeout(Duration::from_secs(150), async {
        let leader = procs.wait_ready(Duration::from_secs(30)).await;
        let wards = harness::ward_ids(&procs, leader).await;
        let nodes = ids.map(|id| procs.addr(id)).join(",");
        let ward = wards[0].to_string();
        let before = json_ok_as(
            &creds,
            &[
                "hold",
                "--nodes",
                &nodes,
                "--json",
                "--ward",
                &ward,
                "--patient",
                PATIENT,
            ],
        );
        let before_id = before["hold"]["hold_id"].as_u64().expect("hold id");

        let poison = ninety_proto::v1::HoldBedRequest {
            request_id: POISON_TEST_REQUEST_ID.into(),
            ward_id: wards[0],
            patient_ref: PATIENT.into(),
            ttl_ms: 600_000,
            ..Default::default()
        };
        let mut beds = procs.beds(leader);
        let sent =
            tokio::time::timeout(Duration::from_secs(10), beds.hold_bed(poison.clone())).await;
        assert!(!matches!(sent, Ok(Ok(_))), "a poisoned entry was answered");
        let stopped = exits(&mut procs, 2, Duration::from_secs(60)).await;
        assert!(stopped.iter().any(|(id, _)| *id == leader), "{stopped:?}");
        for (id, code) in &stopped {
            let log = procs.log(*id);
            assert_eq!(*code, Some(1), "node {id}: exit {code:?}\n{log}");
            for want in [
                "FATAL",
                "log entry",
                "(term",
                POISON_TEST_REQUEST_ID,
                "HoldBed",
                "deliberate panic",
            ] {
                assert!(log.contains(want), "node {id}: no {want:?} in\n{log}");
            }
            let marker = procs.data_dir(*id).join(MARKER_FILE);
            let recorded = std::fs::read_to_string(&marker).expect("the marker is written");
            assert!(recorded.contains(POISON_TEST_REQUEST_ID), "{recorded}");
        }
        // A restart refuses at once, with the record and the procedure, on any build.
        let logged: Vec<usize> = ids.iter().map(|id| procs.log(*id).len()).collect();
        for (id, _) in &stopped {
            procs.spawn(*id, true);
        }
        let refused = exits(&mut procs, stopped.len(), Duration::from_secs(30)).await;
        assert_eq!(refused.len(), stopped.len(), "{refused:?}");
        for (id, code) in refused {
            let log = procs.log(id);
            let new = &log[logged[id as usize - 1]..];
            assert_eq!(code, Some(1), "node {id}: exit {code:?}\n{new}");
            for want in [
                "cannot start",
                MARKER_FILE,
                POISON_TEST_REQUEST_ID,
                "docs/operations.md",
            ] {
                assert!(new.contains(want), "node {id}: no {want:?} in\n{new}");
            }
        }
        // The procedure: a fixed binary on every node, then the markers removed.
        for id in ids {
            let _ = std::fs::remove_file(procs.data_dir(id).join(MARKER_FILE));
            procs.spawn(id, true);
        }
        let leader = procs.wait_ready(Duration::from_secs(30)).await;
        procs.converge(&ids, Duration::from_secs(30)).await;
        // The entry was applied on the way up: a retry of its request gets its answer.
        let replayed = procs
            .beds(leader)
            .hold_bed(poison)
            .await
            .expect("retry")
            .into_inner();
        assert!(replayed.commit.expect("commit").replayed);
        let kept = json_ok_as(
            &creds,
            &[
                "hold-status",
                &before_id.to_string(),
                "--nodes",
                &nodes,
                "--json",
            ],
        );
        assert_eq!(kept["hold"]["state"], "HOLD_STATE_ACTIVE", "{kept}");
    })
    .await
    .unwrap_or_else(|_| panic!("timed out; logs:\n{}", procs.logs(&ids)));
}

#[test]
fn demo_arguments_out_of_range_are_refused_before_anything_starts() {
    let quick = Duration::from_secs(30);
    for (args, want) in [
        (&["demo", "--clients", "0"][..], "--clients"),
        (&["demo", "--clients", "100000"], "--clients"),
        (&["demo", "--holds", "2000000"], "--holds"),
        (&["demo", "--base-port", "0"], "--base-port"),
        (&["demo", "--base-port", "65535"], "--base-port"),
        (&["demo", "--nodes", "0"], "--nodes"),
        (
            &["demo", "--layout", "north"],
            "--layout north: unknown layout",
        ),
        (&["demo", "--layout", "china"], "--layout china: 31 regions"),
    ] {
        let r = ninety_within(args, &[], quick);
        assert_eq!(r.0, Some(2), "{args:?}: {}", r.1);
        assert_refused(&args.join(" "), r, want);
    }
}

/// The Unix mode bits of a file (0o600 for keys and tokens).
#[cfg(unix)]
fn mode(path: &std::path::Path) -> u32 {
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::metadata(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .permissions()
        .mode()
        & 0o777
}

// needs the server side of issue 12 (FileConfig accepts [tls] and [auth]).
#[cfg(unix)]
#[test]
fn cluster_init_writes_credentials_only_their_owner_reads() {
    let dir = tempfile::tempdir().expect("temp dir");
    let d = dir.path().to_str().unwrap();
    let o = ninety(&[
        "cluster",
        "init",
        "--nodes-count",
        "3",
        "--dir",
        d,
        "--json",
    ]);
    if !o.status.success() && String::from_utf8_lossy(&o.stdout).contains("unknown field") {
        // needs the server side of issue 12: until then FileConfig refuses [tls] / [auth].
        panic!(
            "the node config does not know [tls]/[auth] yet: {}",
            text(&o)
        );
    }
    assert!(o.status.success(), "{}", text(&o));
    let j: Value = serde_json::from_slice(&o.stdout).expect("JSON");
    assert_eq!(j["insecure"], false, "{j}");
    let tls = dir.path().join("tls");
    let token = dir.path().join("operator.token");
    assert_eq!(j["tls"]["ca"], tls.join("ca.pem").display().to_string());
    assert_eq!(j["token_file"], token.display().to_string());
    for private in ["ca.key", "node-1.key", "node-2.key", "node-3.key"] {
        assert_eq!(mode(&tls.join(private)), 0o600, "{private}");
    }
    assert_eq!(mode(&token), 0o600, "operator.token");
    for public in ["ca.pem", "node-1.pem", "node-2.pem", "node-3.pem"] {
        let pem = std::fs::read_to_string(tls.join(public)).expect(public);
        assert!(pem.starts_with("-----BEGIN CERTIFICATE-----"), "{public}");
    }
    for (k, node) in j["nodes"].as_array().expect("nodes").iter().enumerate() {
        let key = tls.join(format!("node-{}.key", k + 1));
        assert_eq!(node["tls_key"], key.display().to_string(), "{node}");
    }
    // The token is 64 hex digits; the configs hold its SHA-256 only.
    let t = std::fs::read_to_string(&token).expect("token");
    let t = t.trim();
    assert_eq!(t.len(), 64, "{t}");
    let sha = ninety_cluster::security::certs::token_sha256(t);
    let config = std::fs::read_to_string(dir.path().join("node2.toml")).expect("config");
    assert!(config.contains(&format!("sha256 = \"{sha}\"")), "{config}");
    assert!(!config.contains(t), "the token itself is not in a config");
    // The CA loads back and issues more (what `cluster cert` does).
    let ca = ninety_cluster::security::certs::Ca::from_pem(
        &std::fs::read_to_string(tls.join("ca.pem")).unwrap(),
        &std::fs::read_to_string(tls.join("ca.key")).unwrap(),
    )
    .expect("the CA loads");
    ca.client_cert("probe").expect("and issues");
    // An existing CA is never replaced without --force, even when the configs are gone.
    for id in 1..=3 {
        std::fs::remove_file(dir.path().join(format!("node{id}.toml"))).unwrap();
    }
    let before = std::fs::read_to_string(tls.join("ca.pem")).unwrap();
    let o = ninety(&["cluster", "init", "--dir", d]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("ca.pem") && err.contains("--force"), "{err}");
    assert!(!dir.path().join("node1.toml").exists(), "nothing written");
    json_ok(&["cluster", "init", "--dir", d, "--force", "--json"]);
    let after = std::fs::read_to_string(tls.join("ca.pem")).unwrap();
    assert_ne!(before, after, "--force makes a new CA");
    assert_eq!(
        mode(&tls.join("ca.key")),
        0o600,
        "still private after --force"
    );
}

// needs the server side of issue 12 (FileConfig accepts `insecure`).
#[test]
fn cluster_init_insecure_writes_no_credentials_and_says_so() {
    let dir = tempfile::tempdir().expect("temp dir");
    let d = dir.path().to_str().unwrap();
    let o = ninety(&["cluster", "init", "--dir", d, "--insecure", "--json"]);
    assert!(o.status.success(), "{}", text(&o));
    let j: Value = serde_json::from_slice(&o.stdout).expect("JSON");
    assert_eq!(j["insecure"], true, "{j}");
    assert!(String::from_utf8_lossy(&o.stderr).contains("warning: --insecure"));
    assert!(!dir.path().join("tls").exists());
    assert!(!dir.path().join("operator.token").exists());
    for id in 1..=3 {
        let text = std::fs::read_to_string(dir.path().join(format!("node{id}.toml"))).unwrap();
        assert!(text.contains("\ninsecure = true\n"), "{text}");
        assert!(
            !text.contains("[tls]") && !text.contains("[[auth"),
            "{text}"
        );
        ninety_cluster::runtime::config::FileConfig::parse(&text).expect("a node accepts it");
    }
    // Beyond loopback it is still allowed (an explicit opt-out), but warned about loudly.
    let wide = tempfile::tempdir().expect("temp dir");
    let o = ninety(&[
        "cluster",
        "init",
        "--dir",
        wide.path().to_str().unwrap(),
        "--host",
        "0.0.0.0",
        "--insecure",
    ]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("beyond loopback"),
        "{}",
        text(&o)
    );
}

#[cfg(unix)]
#[test]
fn cluster_cert_and_token_issue_credentials() {
    let dir = tempfile::tempdir().expect("temp dir");
    let tls = dir.path().join("tls");
    std::fs::create_dir_all(&tls).unwrap();
    let ca = ninety_cluster::security::certs::Ca::new("test").expect("CA");
    std::fs::write(tls.join("ca.pem"), &ca.pem.cert).unwrap();
    std::fs::write(tls.join("ca.key"), &ca.pem.key).unwrap();
    let t = tls.to_str().unwrap();
    // A node certificate: the stanza names its files (absolute) for the node's [tls].
    let n = json_ok(&[
        "cluster", "cert", "--ca-dir", t, "--node", "4", "--host", "10.0.0.4", "--json",
    ]);
    assert_eq!(n["cert"], tls.join("node-4.pem").display().to_string());
    assert_eq!(mode(&tls.join("node-4.key")), 0o600);
    assert!(
        n["stanza"].as_str().unwrap().starts_with("[tls]\nca = "),
        "{n}"
    );
    // Issuing it again is refused without --force (a rotation says so).
    let o = ninety(&["cluster", "cert", "--ca-dir", t, "--node", "4"]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(String::from_utf8_lossy(&o.stderr).contains("--force"));
    json_ok(&[
        "cluster", "cert", "--ca-dir", t, "--node", "4", "--force", "--json",
    ]);
    // A client certificate and its [[auth.certs]] stanza.
    let out = dir.path().join("clients");
    let c = json_ok(&[
        "cluster",
        "cert",
        "--ca-dir",
        t,
        "--client",
        "referral-svc",
        "--role",
        "referral",
        "--out",
        out.to_str().unwrap(),
        "--json",
    ]);
    assert_eq!(
        c["stanza"],
        "[[auth.certs]]\nname = \"referral-svc\"\nroles = [\"referral\"]\n"
    );
    assert_eq!(mode(&out.join("referral-svc.key")), 0o600);
    // A token: written 0600, its stanza carries the SHA-256 of the file's token.
    let tok = dir.path().join("alice.token");
    let j = json_ok(&[
        "cluster",
        "token",
        "--name",
        "ops-alice",
        "--role",
        "operator",
        "--role",
        "reader",
        "--out",
        tok.to_str().unwrap(),
        "--json",
    ]);
    assert_eq!(mode(&tok), 0o600);
    let token = std::fs::read_to_string(&tok).unwrap();
    let sha = ninety_cluster::security::certs::token_sha256(token.trim());
    let stanza = j["stanza"].as_str().expect("stanza");
    assert_eq!(
        stanza,
        format!(
            "[[auth.tokens]]\nname = \"ops-alice\"\nroles = [\"operator\", \"reader\"]\nsha256 = \"{sha}\"\n"
        )
    );
    let parsed: toml::Value = toml::from_str(stanza).expect("the stanza is TOML");
    assert_eq!(
        parsed["auth"]["tokens"][0]["sha256"].as_str(),
        Some(sha.as_str())
    );
    // Bad input names the flag; nothing is written.
    let no_ca = dir.path().join("none");
    for (args, want) in [
        (
            vec!["cluster", "token", "--name", "x", "--role", "admin"],
            "--role",
        ),
        (
            vec![
                "cluster",
                "token",
                "--name",
                "two words",
                "--role",
                "reader",
            ],
            "--name",
        ),
        (
            vec![
                "cluster",
                "cert",
                "--ca-dir",
                no_ca.to_str().unwrap(),
                "--node",
                "1",
            ],
            "--ca-dir",
        ),
        (
            vec!["cluster", "cert", "--ca-dir", t, "--node", "0"],
            "--node",
        ),
        (
            vec!["cluster", "cert", "--ca-dir", t, "--client", "a/b"],
            "--client",
        ),
        (vec!["cluster", "cert", "--ca-dir", t], "--node"),
    ] {
        let o = ninety(&args);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {}", text(&o));
        assert!(
            String::from_utf8_lossy(&o.stderr).contains(want),
            "{args:?}: {}",
            text(&o)
        );
    }
    assert!(!dir.path().join("x.token").exists());
}

#[test]
fn credential_flags_are_checked_before_calling() {
    let dir = tempfile::tempdir().expect("temp dir");
    let empty = dir.path().join("empty.token");
    std::fs::write(&empty, "\n").unwrap();
    let missing = dir.path().join("missing.pem");
    let (e, m) = (empty.to_str().unwrap(), missing.to_str().unwrap());
    let not_pem = dir.path().join("ca.txt");
    std::fs::write(&not_pem, "hello").unwrap();
    let n = not_pem.to_str().unwrap();
    let status = ["cluster", "status", "--nodes", "127.0.0.1:1"];
    for (extra, env, want) in [
        (vec!["--cert", m], vec![], "--cert needs --key"),
        (vec!["--key", m], vec![], "--key needs --cert"),
        (vec!["--cacert", m], vec![], "--cacert"),
        (vec!["--token-file", e], vec![], "empty"),
        (vec!["--token-file", m], vec![], "--token-file"),
        (vec!["--cacert", n], vec![], "--cacert"),
        (vec![], vec![("NINETY_TOKEN", "two words")], "token"),
        (vec![], vec![("NINETY_CERT", m)], "--cert needs --key"),
        (vec![], vec![("NINETY_CACERT", m)], m),
    ] {
        let args = [&status[..], &extra].concat();
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_ninety"));
        for v in CREDENTIAL_ENVS {
            cmd.env_remove(v);
        }
        let o = cmd
            .args(&args)
            .envs(env.iter().copied())
            .env("RUST_LOG", "warn")
            .env_remove("NINETY_NODES")
            .output()
            .expect("runs");
        assert_eq!(o.status.code(), Some(2), "{args:?} {env:?}: {}", text(&o));
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(
            err.contains(want),
            "{args:?} {env:?}: no {want:?} in {}",
            text(&o)
        );
    }
    // The replayer takes the same flags.
    let o = ninety(&[
        "sim",
        "replay",
        "--trace",
        m,
        "--target",
        "127.0.0.1:1",
        "--cert",
        m,
    ]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("--cert needs --key"),
        "{}",
        text(&o)
    );
}

/// Kills the node processes of a test when it ends, however it ends.
struct Nodes(Vec<std::process::Child>);

impl Drop for Nodes {
    fn drop(&mut self) {
        for c in &mut self.0 {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

// needs the server side of issue 12 (TLS listeners, tokens and roles).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_secure_init_cluster_answers_only_with_the_ca_and_the_token() {
    let _serial = harness::SERIAL.lock().await;
    let dir = tempfile::tempdir().expect("temp dir");
    let d = dir.path().to_str().unwrap();
    let ports: Vec<String> = (0..6)
        .map(|_| format!("127.0.0.1:{}", harness::free_port()))
        .collect();
    let (addrs, peers) = (ports[..3].join(","), ports[3..].join(","));
    json_ok(&[
        "cluster",
        "init",
        "--dir",
        d,
        "--addrs",
        &addrs,
        "--peer-addrs",
        &peers,
        "--region",
        "test",
        "--json",
    ]);
    let mut nodes = Nodes(Vec::new());
    for id in 1..=3 {
        let log = std::fs::File::create(dir.path().join(format!("node{id}.log"))).unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_ninety"))
            .args(["node", "--config"])
            .arg(dir.path().join(format!("node{id}.toml")))
            .env("RUST_LOG", "warn")
            .stdout(std::process::Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start a node");
        nodes.0.push(child);
    }
    let logs = || {
        (1..=3)
            .map(|id| {
                std::fs::read_to_string(dir.path().join(format!("node{id}.log")))
                    .unwrap_or_default()
            })
            .collect::<Vec<_>>()
            .join("\n---\n")
    };
    let ca = dir.path().join("tls/ca.pem");
    let token = dir.path().join("operator.token");
    let (ca, token) = (ca.to_str().unwrap(), token.to_str().unwrap());
    let base = [
        "cluster",
        "status",
        "--nodes",
        &addrs,
        "--json",
        "--timeout",
        "5",
    ];
    // With the CA and the operator token: a leader among three reachable members.
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    let status = loop {
        let o = ninety(&[&base[..], &["--cacert", ca, "--token-file", token]].concat());
        if o.status.success() {
            let s: Value = serde_json::from_slice(&o.stdout).expect("JSON");
            let up = s["members"]
                .as_array()
                .is_some_and(|m| m.len() == 3 && m.iter().all(|m| m["reachable"] == true));
            if up && s["leader_id"].as_u64().unwrap_or(0) > 0 {
                break s;
            }
        }
        for c in &mut nodes.0 {
            if let Ok(Some(exit)) = c.try_wait() {
                panic!("a node exited ({exit}): {}\n{}", text(&o), logs());
            }
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no healthy cluster: {}\n{}",
            text(&o),
            logs()
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    assert_eq!(status["members"].as_array().unwrap().len(), 3, "{status}");
    // Without the token: UNAUTHENTICATED, before any work.
    let o = ninety(&[&base[..], &["--cacert", ca]].concat());
    assert!(!o.status.success(), "{}", text(&o));
    assert!(
        String::from_utf8_lossy(&o.stdout).contains("UNAUTHENTICATED"),
        "{}",
        text(&o)
    );
    // Without the CA the client speaks plain HTTP/2 to a TLS listener: no connection.
    let o = ninety(&[&base[..], &["--token-file", token]].concat());
    assert!(!o.status.success(), "{}", text(&o));
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(!out.contains("\"members\""), "{}", text(&o));
    assert!(
        // tonic reports the TLS listener's answer to plain HTTP/2 as a protocol error.
        out.contains("UNAVAILABLE") || out.contains("UNKNOWN") || out.contains("h2 protocol"),
        "{}",
        text(&o)
    );
}

/// A TLS server made from `cluster init`-style certificates (rcgen, through
/// `ninety_cluster::security::certs`) answering gRPC health, which records the
/// `authorization` metadata of every call: (address, seen values, shutdown sender).
async fn tls_health_server(
    ca: &ninety_cluster::security::certs::Ca,
    require_client_cert: bool,
) -> (
    String,
    std::sync::Arc<std::sync::Mutex<Vec<String>>>,
    tokio::sync::oneshot::Sender<()>,
) {
    use tonic::transport::{Certificate, Identity, Server, ServerTlsConfig};
    let node = ca.node_cert(1, &[]).expect("node certificate");
    let tls = ServerTlsConfig::new()
        .identity(Identity::from_pem(&node.cert, &node.key))
        .client_ca_root(Certificate::from_pem(&ca.pem.cert))
        .client_auth_optional(!require_client_cert);
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let record = seen.clone();
    let (_reporter, health) = tonic_health::server::health_reporter();
    let health = tonic::service::interceptor::InterceptedService::new(
        health,
        move |req: tonic::Request<()>| {
            let auth = req.metadata().get("authorization");
            let auth = auth
                .and_then(|v| v.to_str().ok())
                .unwrap_or("-")
                .to_string();
            record.lock().unwrap().push(auth);
            Ok(req)
        },
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().unwrap().to_string();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let incoming = tokio_stream::wrappers::TcpListenerStream::new(listener);
    tokio::spawn(
        Server::builder()
            .tls_config(tls)
            .expect("server TLS")
            .add_service(health)
            .serve_with_incoming_shutdown(incoming, async {
                let _ = stopped.await;
            }),
    );
    (addr, seen, stop)
}

async fn health_check(client: &ninety_client::Client) -> Result<(), tonic::Status> {
    use tonic_health::pb::{health_client::HealthClient, HealthCheckRequest};
    client
        .call(HealthCheckRequest::default(), |ch, req| async move {
            HealthClient::new(ch).check(req).await
        })
        .await
        .map(|_| ())
}

/// The client's half of issue 12 against a real rustls server: https with the cluster CA,
/// the token on the call, a client certificate when the server demands one, and no
/// connection without the CA (or with another cluster's CA).
#[tokio::test]
async fn the_client_speaks_tls_with_the_cluster_ca_and_sends_the_token() {
    use ninety_client::{Client, ClientTls, Config};
    use ninety_cluster::security::certs::Ca;
    let ca = Ca::new("test").expect("CA");
    let (addr, seen, _stop) = tls_health_server(&ca, false).await;
    let quick = |tls: Option<ClientTls>, token: Option<&str>| Config {
        tls,
        token: token.map(str::to_string),
        max_attempts: 1,
        total_timeout: Duration::from_secs(5),
        ..Config::default()
    };
    let with_ca = |identity| ClientTls {
        ca_pem: ca.pem.cert.clone(),
        identity,
        domain: None,
    };
    let c = Client::new(&[addr.as_str()], quick(Some(with_ca(None)), Some("t0ken"))).unwrap();
    health_check(&c).await.expect("TLS call with the CA");
    assert_eq!(*seen.lock().unwrap(), vec!["Bearer t0ken".to_string()]);
    // Plain HTTP/2 to a TLS listener: no answer.
    let plain = Client::new(&[addr.as_str()], quick(None, Some("t0ken"))).unwrap();
    assert!(health_check(&plain).await.is_err());
    // Another cluster's CA does not verify this node.
    let other = Ca::new("other").expect("CA");
    let wrong = ClientTls {
        ca_pem: other.pem.cert.clone(),
        identity: None,
        domain: None,
    };
    let c = Client::new(&[addr.as_str()], quick(Some(wrong), None)).unwrap();
    assert!(
        health_check(&c).await.is_err(),
        "another CA must not verify"
    );
    assert_eq!(seen.lock().unwrap().len(), 1, "refused before any call");
    // A server that requires a client certificate gets one signed by its CA.
    let (addr, _seen, _stop2) = tls_health_server(&ca, true).await;
    let no_cert = Client::new(&[addr.as_str()], quick(Some(with_ca(None)), None)).unwrap();
    assert!(health_check(&no_cert).await.is_err(), "mTLS without a cert");
    let pem = ca.client_cert("svc").expect("client cert");
    let id = Some((pem.cert, pem.key));
    let c = Client::new(&[addr.as_str()], quick(Some(with_ca(id)), None)).unwrap();
    health_check(&c)
        .await
        .expect("mTLS with a client certificate");
}
