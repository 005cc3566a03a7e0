//! `ninety demo` starts three nodes, loads the GBA region, serves a burst, finds every
//! replica equal, and stops, leaving no node running and no data behind. The demo's
//! peak-hour replay is skipped here (`--no-replay`) to keep the test short on a debug
//! build; `replay.rs` replays a short trace end to end.

use std::process::Command;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn demo_starts_serves_and_stops_cleanly() {
    super::bounded(async {
        let out = tokio::task::spawn_blocking(|| {
            Command::new(env!("CARGO_BIN_EXE_ninety"))
                .args(["demo", "--holds", "200", "--clients", "4", "--no-replay"])
                .env("RUST_LOG", "warn")
                .output()
                .expect("runs the ninety binary")
        })
        .await
        .expect("the demo task finishes");
        let stdout = String::from_utf8_lossy(&out.stdout);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "demo failed:\n{stdout}\n{stderr}");
        for line in [
            "leader elected",
            "region loaded",
            "burst:",
            "every replica holds the same state",
            "all nodes stopped",
        ] {
            assert!(stdout.contains(line), "missing {line:?} in:\n{stdout}");
        }
        let dir = stdout
            .lines()
            .find_map(|l| l.strip_prefix("data and logs in "))
            .expect("the demo names its data directory");
        assert!(
            !std::path::Path::new(dir.trim()).exists(),
            "the demo left {dir} behind"
        );
        // No node of this demo is left running: their configs lived in that directory.
        let ps = Command::new("ps")
            .args(["-eo", "args"])
            .output()
            .expect("ps runs");
        let ps = String::from_utf8_lossy(&ps.stdout);
        assert!(
            !ps.contains(dir.trim()),
            "a demo node is still running:\n{ps}"
        );
    })
    .await;
}
