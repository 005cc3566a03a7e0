//! `ninety demo` starts three nodes, loads the GBA region, serves a burst, finds every
//! replica equal, and stops, leaving no node running and no data behind. The demo's
//! peak-hour replay is skipped here (`--no-replay`) to keep the test short on a debug
//! build; `replay.rs` replays a short trace end to end. `ninety demo --layout south` does
//! the same with the four regions of the `south` layout on the same three processes.

use std::process::Command;

/// Runs `ninety demo ARGS` to its end; its standard output, once it exited successfully.
async fn demo(args: &[&str]) -> String {
    let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
    let out = tokio::task::spawn_blocking(move || {
        Command::new(env!("CARGO_BIN_EXE_ninety"))
            .arg("demo")
            .args(&args)
            .env("RUST_LOG", "warn")
            .output()
            .expect("runs the ninety binary")
    })
    .await
    .expect("the demo task finishes");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "demo failed:\n{stdout}\n{stderr}");
    stdout
}

/// Every line of `lines` is in the demo's output.
fn assert_printed(stdout: &str, lines: &[String]) {
    for line in lines {
        assert!(stdout.contains(line), "missing {line:?} in:\n{stdout}");
    }
}

/// The demo removed its data directory and left no node running.
fn assert_stopped(stdout: &str) {
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
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn demo_starts_serves_and_stops_cleanly() {
    super::bounded(async {
        let stdout = demo(&["--holds", "200", "--clients", "4", "--no-replay"]).await;
        let lines = [
            "leader elected",
            "region loaded",
            "burst:",
            "every replica holds the same state",
            "all nodes stopped",
        ];
        assert_printed(&stdout, &lines.map(String::from));
        assert_stopped(&stdout);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn demo_of_the_south_layout_serves_every_region() {
    super::bounded(async {
        let args = ["--layout", "south", "--holds", "60", "--clients", "2"];
        let stdout = demo(&[&args[..], &["--no-replay"]].concat()).await;
        let mut lines = vec![
            "loading 4 regions (gba, yunnan, asean, hainan)".to_string(),
            "all nodes stopped".into(),
        ];
        for region in ["gba", "yunnan", "asean", "hainan"] {
            lines.push(format!("region {region} loaded"));
            lines.push(format!("burst in {region}: "));
            lines.push(format!("every replica of {region} holds the same state"));
        }
        assert_printed(&stdout, &lines);
        // Each region's table of answers has its row of granted holds.
        let granted = stdout
            .lines()
            .filter(|l| l.starts_with("hold ") && l.split_whitespace().nth(1) == Some("OK"))
            .count();
        assert_eq!(granted, 4, "{stdout}");
        assert_stopped(&stdout);
    })
    .await;
}
