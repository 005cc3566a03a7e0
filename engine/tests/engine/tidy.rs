//! Tidy checks on the workspace's source, run by `cargo test`:
//! - every Rust source file opens with a `//!` doc saying what it owns;
//! - the engine reads no clock, uses no randomness, does no I/O and pulls in no runtime;
//! - no fix-me markers and no unfinished-code macros on main;
//! - the read model stays in the engine: `cluster/src` calls no domain accessor of the
//!   engine (it carries `ninety_engine::read` queries and answers as bytes);
//! - `cluster/src` reaches the engine through its adapter surface only: the root's command,
//!   reply, id and event types, a short list of modules (read, matching's query types,
//!   limits, snapshot, ...) and, on an `Engine`, apply, query, view and snapshot calls.

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
            // The gRPC method of the same name (`Matching.MatchBeds`) is the adapter.
            let code = code.replace("fn match_beds(", "");
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
            // The gRPC method of the same name (`Matching.MatchBeds`) is the adapter.
            let code = code.replace("fn match_beds(", "");
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

/// `cluster/src` outside its tests, comments stripped, whitespace removed (so a call split
/// over lines reads as one), per file.
fn cluster_code() -> Vec<(PathBuf, String)> {
    sources("cluster/src")
        .into_iter()
        .map(|(path, text)| {
            let code = text.split("#[cfg(test)]").next().unwrap_or("");
            let code: String = code
                .lines()
                .map(|l| l.split("//").next().unwrap_or(""))
                .collect::<Vec<_>>()
                .concat()
                .chars()
                .filter(|c| !c.is_whitespace())
                .collect();
            (path, code)
        })
        .collect()
}

fn is_ident(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_'
}

/// The identifier at the start of `s`.
fn ident(s: &str) -> &str {
    &s[..s.find(|c| !is_ident(c)).unwrap_or(s.len())]
}

/// The engine modules `code` names (`ninety_engine::m::...`, also inside `use` groups).
fn engine_modules(code: &str) -> Vec<String> {
    let mut out = Vec::new();
    for (at, _) in code.match_indices("ninety_engine::") {
        let rest = &code[at + "ninety_engine::".len()..];
        let scope = match rest.strip_prefix('{') {
            // A `use` group: every `m::` directly inside it (nested groups included).
            Some(group) => {
                let mut depth = 1;
                let end = group
                    .char_indices()
                    .find(|&(_, c)| {
                        depth += match c {
                            '{' => 1,
                            '}' => -1,
                            _ => 0,
                        };
                        depth == 0
                    })
                    .map_or(group.len(), |(i, _)| i);
                &group[..end]
            }
            None => rest,
        };
        // The items of a group, split at its top-level commas (a nested group belongs to
        // the module before it); a path is one item.
        let mut items = Vec::new();
        if rest.starts_with('{') {
            let (mut depth, mut from) = (0, 0);
            for (i, c) in scope.char_indices() {
                match c {
                    '{' => depth += 1,
                    '}' => depth -= 1,
                    ',' if depth == 0 => {
                        items.push(&scope[from..i]);
                        from = i + 1;
                    }
                    _ => {}
                }
            }
            items.push(&scope[from..]);
        } else {
            items.push(scope);
        }
        for item in items {
            let name = ident(item);
            if name.starts_with(|c: char| c.is_ascii_lowercase())
                && item[name.len()..].starts_with("::")
            {
                out.push(name.to_string());
            }
        }
    }
    out
}

#[test]
fn the_cluster_reaches_the_engine_through_its_adapter_surface_only() {
    // What cluster/src may name of the engine beyond its root (the command, reply, id and
    // event types, `Engine`, `Query`/`Answer`, the view): the read model, the query and
    // bound types of matching, limits, snapshot formats, the lock-free view's `Arc`, the
    // built-in regions, time units, the referral text rules the API checks first, and the
    // cross-region saga's steps and answers that the runtime driver carries between
    // regions (`remote`: the rules stay in the engine, the driver only moves them).
    let modules = [
        "read",
        "matching",
        "limits",
        "snapshot",
        "sync",
        "generate",
        "time",
        "referrals",
        "remote",
    ];
    // What the adapter (engine_sm) and snapshot intake may call on an `Engine`: apply,
    // query and view, snapshots, and what an answer to a write carries.
    let methods = [
        "new",
        "restore",
        "apply_as",
        "decided",
        "query",
        "record",
        "bed_hold",
        "dedup",
        "now",
        "events",
        "clear_events",
        "publish_view_at",
        "view_reader",
        "snapshot",
        "image",
        "state_hash",
        "check_invariants",
    ];
    let mut hits = Vec::new();
    for (path, code) in cluster_code() {
        if !code.contains("ninety_engine::") {
            continue;
        }
        for m in engine_modules(&code) {
            if !modules.contains(&m.as_str()) {
                hits.push(format!("{}: ninety_engine::{m}", path.display()));
            }
        }
        // Calls on an engine, in the files that name the `Engine` type.
        let names_engine = code.match_indices("Engine").any(|(i, _)| {
            let before = code[..i].chars().next_back();
            let after = code[i + "Engine".len()..].chars().next();
            !before.is_some_and(is_ident) && !after.is_some_and(is_ident)
        });
        if !names_engine {
            continue;
        }
        for receiver in ["engine.", "Engine::"] {
            for (at, _) in code.match_indices(receiver) {
                let before = code[..at].chars().next_back();
                if before.is_some_and(|c| is_ident(c) || c == ':') {
                    continue;
                }
                let rest = &code[at + receiver.len()..];
                let name = ident(rest);
                if rest[name.len()..].starts_with('(') && !methods.contains(&name) {
                    hits.push(format!("{}: {receiver}{name}(", path.display()));
                }
            }
        }
    }
    assert!(
        hits.is_empty(),
        "cluster/src reaches past the engine's apply/query/view surface (domain rules \
         belong in ninety_engine):\n{}",
        hits.join("\n")
    );
}

#[test]
fn engine_modules_are_found_in_paths_and_use_groups() {
    let code = "usefoo::{a::b};useninety_engine::read::{Answer,Query};\
                useninety_engine::{beds::{BedHold,x::Y},Command,graph::Kind};\
                letv:ninety_engine::sync::Arc<ninety_engine::AvailabilityView>;";
    assert_eq!(engine_modules(code), ["read", "beds", "graph", "sync"]);
}
