//! Tidy checks on the workspace's source, run by `cargo test`:
//! - every Rust source file opens with a `//!` doc saying what it owns;
//! - the engine reads no clock, uses no randomness, does no I/O and pulls in no runtime;
//! - no fix-me markers and no unfinished-code macros on main;
//! - the read model stays in the engine: `cluster/src` calls no domain accessor of the
//!   engine (it carries `ninety_engine::read` queries and answers as bytes).

use std::path::{Path, PathBuf};

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        let name = entry.file_name().to_string_lossy().to_string();
        if path.is_dir() {
            if !name.starts_with('.') && !name.starts_with("target") {
                rust_files(&path, out);
            }
        } else if name.ends_with(".rs") {
            out.push(path);
        }
    }
}

fn sources(crate_dir: &str) -> Vec<(PathBuf, String)> {
    let mut files = Vec::new();
    rust_files(&workspace().join(crate_dir), &mut files);
    files.sort();
    files
        .into_iter()
        .map(|p| {
            let text = std::fs::read_to_string(&p).unwrap();
            (p, text)
        })
        .collect()
}

#[test]
fn every_module_opens_with_a_doc_comment() {
    let mut missing = Vec::new();
    for krate in ["engine", "cluster", "proto", "simulations", "benches"] {
        for (path, text) in sources(krate) {
            let first = text.lines().find(|l| !l.trim().is_empty()).unwrap_or("");
            let is_bench_or_test_main = path.components().any(|c| c.as_os_str() == "benches");
            if !first.starts_with("//!") && !is_bench_or_test_main {
                missing.push(path.display().to_string());
            }
        }
    }
    assert!(
        missing.is_empty(),
        "files without a //! opening doc:\n{}",
        missing.join("\n")
    );
}

#[test]
fn the_engine_reads_no_clock_uses_no_randomness_and_does_no_io() {
    let forbidden = [
        "Instant::now",
        "SystemTime",
        "std::time::Instant",
        "thread::spawn",
        "tokio",
        "tonic",
        "sled::",
        "raft::",
        "rand::",
        "std::fs",
        "std::net",
        "File::",
        "RandomState",
    ];
    let mut hits = Vec::new();
    for (path, text) in sources("engine/src") {
        for (n, line) in text.lines().enumerate() {
            let code = line.split("//").next().unwrap_or("");
            for word in forbidden {
                if code.contains(word) {
                    hits.push(format!("{}:{}: {word}", path.display(), n + 1));
                }
            }
        }
    }
    assert!(
        hits.is_empty(),
        "the engine must stay pure:\n{}",
        hits.join("\n")
    );
}

#[test]
fn no_fixme_or_stubs_on_main() {
    let mut hits = Vec::new();
    let markers = [
        concat!("FIX", "ME"),
        concat!("todo", "!("),
        concat!("unimplemented", "!("),
    ];
    for krate in ["engine", "cluster", "proto", "simulations", "benches"] {
        for (path, text) in sources(krate) {
            for (n, line) in text.lines().enumerate() {
                if markers.iter().any(|m| line.contains(m)) {
                    hits.push(format!("{}:{}", path.display(), n + 1));
                }
            }
        }
    }
    assert!(
        hits.is_empty(),
        "unfinished work on main:\n{}",
        hits.join("\n")
    );
}

#[test]
fn domain_reads_stay_in_the_engine() {
    // What a read means (which slots, which referrals, how candidates merge) lives in
    // `ninety_engine::read`; the cluster adapts bytes and wire messages. These calls reach
    // into the engine's domain books and rules, so outside tests they belong there.
    let forbidden = [
        ".slots()",
        ".beds()",
        ".referrals()",
        ".doctors()",
        ".doctor(",
        ".hospitals()",
        ".graph()",
        ".policy()",
        ".seats()",
        ".counts(",
        "doctor_slots(",
        "matching::match_specialist",
        "match_beds(",
        "ReferralStage::of",
        "ReasonKind::of",
    ];
    let mut hits = Vec::new();
    for (path, text) in sources("cluster/src") {
        let code = text.split("#[cfg(test)]").next().unwrap_or("");
        for (n, line) in code.lines().enumerate() {
            let code = line.split("//").next().unwrap_or("");
            for word in forbidden {
                if code.contains(word) {
                    hits.push(format!("{}:{}: {word}", path.display(), n + 1));
                }
            }
        }
    }
    assert!(
        hits.is_empty(),
        "domain reads belong in ninety_engine::read, not in cluster/src:\n{}",
        hits.join("\n")
    );
}
