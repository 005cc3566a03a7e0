//! Logs for operators: nodes started with `--log-format json` write one JSON object per
//! stderr line (raft-rs's own records included, bridged from slog), with no colour codes,
//! and a leader's death leaves an INFO line for the election of its successor, with the term.
//! Also `ninety --version` and the version in `ClusterStatus`.

use crate::harness::*;
use std::time::{Duration, Instant};

/// Every line of node `id`'s log, each parsed as a JSON object (the test fails on one that
/// is not).
fn json_lines(p: &Procs, id: u64) -> Vec<serde_json::Value> {
    let log = p.log(id);
    assert!(
        !log.contains('\u{1b}'),
        "colour codes in a redirected log:\n{log}"
    );
    log.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l)
                .unwrap_or_else(|e| panic!("node {id}: not a JSON line ({e}): {l}"));
            assert!(v.is_object(), "node {id}: not a JSON object: {l}");
            v
        })
        .collect()
}

/// The terms at which node `id` logged its election as leader.
fn elected_terms(p: &Procs, id: u64) -> Vec<u64> {
    json_lines(p, id)
        .iter()
        .filter(|v| v["message"] == "this node was elected leader" && v["level"] == "INFO")
        .filter_map(|v| v["term"].as_u64())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_logs_record_the_election_after_the_leader_dies() {
    crate::bounded(async {
        let opts = Opts {
            rust_log: Some("info"),
            log_format: Some("json"),
            ..Opts::default()
        };
        let mut p = Procs::start(&[1, 2, 3], &[1, 2, 3], opts);
        let first = p.wait_ready(Duration::from_secs(20)).await;
        let term = p.status(first).await.expect("status").term;
        assert!(
            elected_terms(&p, first).contains(&term),
            "no election line for term {term} on node {first}:\n{}",
            p.log(first)
        );
        p.kill(first);
        let survivors: Vec<u64> = p.live();
        let deadline = Instant::now() + Duration::from_secs(20);
        let (next, next_term) = loop {
            if let Some(l) = p.leader_among(&survivors).await {
                let t = p.status(l).await.map_or(0, |s| s.term);
                if t > term {
                    break (l, t);
                }
            }
            assert!(
                Instant::now() < deadline,
                "no new leader\n{}",
                p.logs(&survivors)
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        };
        // The node task logs after the poll that made it leader: give it a moment to land.
        let deadline = Instant::now() + Duration::from_secs(5);
        while !elected_terms(&p, next).contains(&next_term) {
            assert!(
                Instant::now() < deadline,
                "no JSON line for node {next}'s election at term {next_term}:\n{}",
                p.log(next)
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        for id in survivors {
            let lines = json_lines(&p, id);
            // raft-rs's records reach the log through the slog bridge, with their fields.
            assert!(
                lines
                    .iter()
                    .any(|v| v["target"] == "raft" && v["raft"].is_string()),
                "no raft-rs record in node {id}'s log:\n{}",
                p.log(id)
            );
            assert!(
                lines.iter().any(|v| v["message"] == "leader changed"
                    || v["message"] == "this node was elected leader"),
                "node {id} logged no leader change"
            );
        }
        let version = p.status(next).await.expect("status").version;
        assert_eq!(version, ninety_cluster::metrics::VERSION);
    })
    .await;
}

#[test]
fn version_prints_the_version_and_commit() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_ninety"))
        .arg("--version")
        .output()
        .expect("run ninety --version");
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    let want = format!("ninety {}", ninety_cluster::metrics::VERSION);
    assert_eq!(text.trim(), want);
    assert!(
        want.contains(env!("CARGO_PKG_VERSION")) && want.contains(" ("),
        "{want}"
    );
}
