//! Crash tests of the Raft log store (`storage::LogStore`) on a real disk:
//! - `kill_9_during_appends_loses_nothing_acknowledged`: a child process (this test binary
//!   re-executed, running only `child_appends_until_killed`) appends entries, compacts and
//!   snapshots, printing every acknowledged index; the parent kills it with SIGKILL after a
//!   random number of acknowledgements, reopens the store and checks that every acknowledged
//!   entry is there and the log is consistent; four rounds on the same directory.
//!   `kill_9_during_pipelined_appends_loses_nothing_acknowledged`: the same with the writes
//!   queued for the persistence worker, acknowledged when it reports them durable.
//! - `a_torn_tail_loses_only_the_write_in_flight` / `a_corrupted_tail_...`: the newest
//!   raft-engine file is cut (or damaged) inside its last record, the one a crash would have
//!   interrupted (never acknowledged); the store opens and has everything before it.

use ninety_cluster::eraftpb::{Entry, HardState, Snapshot};
use ninety_cluster::storage::{LogStore, LogStoreOptions};
use ninety_cluster::RaftStore;
use raft::{GetEntriesContext, Storage};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// The child reads its directory from this variable; without it its test does nothing.
const CHILD_DIR_ENV: &str = "NINETY_LOG_STORE_CRASH_CHILD";
/// Set: the child queues its writes for a persistence worker (`runtime::persist`) and
/// acknowledges each once the worker reported it durable.
const CHILD_PIPELINED_ENV: &str = "NINETY_LOG_STORE_CRASH_PIPELINED";
/// Most entries one child appends (it is killed long before, normally).
const CHILD_ENTRIES_MAX: u64 = 200_000;
/// The child snapshots and compacts every this many entries.
const CHILD_SNAPSHOT_EVERY_ENTRIES: u64 = 700;
/// Entries kept behind a child's snapshot.
const CHILD_RETAIN_ENTRIES: u64 = 200;
const ROUNDS: usize = 4;

/// Small files so that the child rotates and purges log files while it is killed.
fn options() -> LogStoreOptions {
    LogStoreOptions {
        log_file_bytes: 256 * 1024,
        purge_threshold_bytes: 1024 * 1024,
        ..Default::default()
    }
}

fn open(dir: &Path) -> LogStore {
    LogStore::open(dir.join("raft-log"), dir.join("snapshots"), &options())
        .unwrap_or_else(|e| panic!("reopening {}: {e}", dir.display()))
}

/// Entry `index`'s payload: its index repeated, of a length that varies with it.
fn payload(index: u64) -> Vec<u8> {
    let len = 16 + (index % 7) as usize * 150;
    index
        .to_le_bytes()
        .iter()
        .copied()
        .cycle()
        .take(len)
        .collect()
}

fn entry(index: u64, term: u64) -> Entry {
    Entry {
        index,
        term,
        data: payload(index).into(),
        ..Default::default()
    }
}

/// The child: appends batches of 1..=5 entries, each acknowledged on stdout after
/// `persist` returned, with a snapshot and a compaction now and then.
#[test]
fn child_appends_until_killed() {
    let Some(dir) = std::env::var_os(CHILD_DIR_ENV) else {
        return; // Only meaningful when re-executed by the crash test.
    };
    let mut s = open(Path::new(&dir));
    let mut worker = std::env::var_os(CHILD_PIPELINED_ENV)
        .map(|_| ninety_cluster::runtime::persist::start(&mut s).unwrap());
    // Pipelined: (Ready number, last index) of the writes queued and not reported durable.
    let mut queued = std::collections::VecDeque::new();
    let mut hs = s.initial_state().unwrap().hard_state;
    hs.term += 1;
    let mut next = s.last_index().unwrap() + 1;
    let end = next + CHILD_ENTRIES_MAX;
    while next < end {
        let batch: Vec<Entry> = (next..next + 1 + next % 5)
            .map(|i| entry(i, hs.term))
            .collect();
        let last = batch.last().map_or(next, |e| e.index);
        hs.commit = last;
        match &mut worker {
            None => {
                s.persist(&batch, Some(&hs)).unwrap();
                println!("ACK {last}");
            }
            Some(w) => {
                s.write_async(next, &batch, Some(&hs)).unwrap();
                queued.push_back((next, last));
                while let Ok(report) = w.reports.try_recv() {
                    acknowledge(&mut s, &mut queued, report.unwrap());
                }
            }
        }
        if last / CHILD_SNAPSHOT_EVERY_ENTRIES != (next - 1) / CHILD_SNAPSHOT_EVERY_ENTRIES {
            snapshot_and_compact(&mut s, last, hs.term);
            // The snapshot waited for every queued write.
            acknowledge(&mut s, &mut queued, next);
        }
        next = last + 1;
    }
}

/// Acknowledges the queued writes up to Ready `durable`.
fn acknowledge(
    s: &mut LogStore,
    queued: &mut std::collections::VecDeque<(u64, u64)>,
    durable: u64,
) {
    s.on_persisted(durable);
    while let Some(&(number, last)) = queued.front() {
        if number > durable {
            break;
        }
        queued.pop_front();
        println!("ACK {last}");
    }
}

fn snapshot_and_compact(s: &mut LogStore, last: u64, term: u64) {
    let mut snap = Snapshot::default();
    snap.mut_metadata().index = last;
    snap.mut_metadata().term = term;
    snap.mut_metadata().mut_conf_state().voters = vec![1];
    snap.data = payload(last).into();
    s.save_snapshot(&snap).unwrap();
    s.compact(last.saturating_sub(CHILD_RETAIN_ENTRIES))
        .unwrap();
}

/// How many acknowledgements to wait for before the kill: varies with the clock, printed.
fn acks_before_kill(round: usize) -> u64 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    let acks = 50 + u64::from(nanos) % 2000;
    eprintln!("round {round}: kill -9 after {acks} acknowledgements");
    acks
}

/// Runs the child until `acks` acknowledgements, kills it; returns the last acknowledged
/// index.
fn run_child_and_kill(dir: &Path, acks: u64, pipelined: bool) -> u64 {
    let mut command = Command::new(std::env::current_exe().unwrap());
    command
        .args([
            "child_appends_until_killed",
            "--exact",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_DIR_ENV, dir);
    if pipelined {
        command.env(CHILD_PIPELINED_ENV, "1");
    }
    let mut child = command
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let mut acked = 0;
    let mut seen = 0;
    for line in BufReader::new(stdout).lines() {
        let line = line.unwrap();
        if let Some(index) = line.strip_prefix("ACK ") {
            acked = index.trim().parse().unwrap();
            seen += 1;
            if seen == acks {
                break;
            }
        }
    }
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    assert!(seen > 0, "the child acknowledged nothing");
    acked
}

/// Every acknowledged entry is present with its payload, terms never go back, the hard
/// state covers the acknowledged index, and the stored snapshot reads back.
fn check_consistent(s: &LogStore, acked: u64) {
    let (first, last) = (s.first_index().unwrap(), s.last_index().unwrap());
    assert!(last >= acked, "acknowledged {acked}, log ends at {last}");
    let hs = s.initial_state().unwrap().hard_state;
    assert!(
        hs.commit >= acked,
        "hard state commit {} < {acked}",
        hs.commit
    );
    let entries = s
        .entries(first, last + 1, None, GetEntriesContext::empty(false))
        .unwrap();
    assert_eq!(entries.len() as u64, last + 1 - first);
    let mut term = s.term(first - 1).unwrap();
    for (e, index) in entries.iter().zip(first..) {
        assert_eq!(e.index, index);
        assert_eq!(e.get_data(), &payload(index)[..], "entry {index}");
        assert!(e.term >= term, "term goes back at {index}");
        term = e.term;
    }
    if let Some(snap) = s.stored_snapshot().unwrap() {
        let index = snap.get_metadata().index;
        assert_eq!(snap.get_data(), &payload(index)[..]);
        assert!(index + 1 >= first && index <= last);
        assert_eq!(s.applied_index(), index);
    }
}

#[test]
fn kill_9_during_appends_loses_nothing_acknowledged() {
    kill_rounds(false);
}

/// The same with the writes queued for a persistence worker (`runtime::persist`), each
/// acknowledged once the worker reported its group durable.
#[test]
fn kill_9_during_pipelined_appends_loses_nothing_acknowledged() {
    kill_rounds(true);
}

fn kill_rounds(pipelined: bool) {
    let dir = tempfile::tempdir().unwrap();
    for round in 0..ROUNDS {
        let acked = run_child_and_kill(dir.path(), acks_before_kill(round), pipelined);
        let s = open(dir.path());
        check_consistent(&s, acked);
        eprintln!(
            "round {round}: acknowledged up to {acked}, reopened log {}..={}",
            s.first_index().unwrap(),
            s.last_index().unwrap()
        );
    }
}

/// The newest raft-engine log file.
fn newest_log_file(dir: &Path) -> PathBuf {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir.join("raft-log"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "raftlog"))
        .collect();
    files.sort();
    files.pop().expect("a log file")
}

/// Writes 300 acknowledged entries, then one large batch (the write in flight); `damage`
/// then cuts or flips the newest file inside that last record; returns the directory.
fn store_with_damaged_tail(damage: impl FnOnce(&Path, u64)) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let mut s = open(dir.path());
    let hs = HardState {
        term: 1,
        commit: 300,
        ..Default::default()
    };
    let acked: Vec<Entry> = (1..=300).map(|i| entry(i, 1)).collect();
    s.persist(&acked, Some(&hs)).unwrap();
    let mut in_flight = entry(301, 1);
    in_flight.data = vec![0xab; 100_000].into();
    s.persist(&[in_flight], None).unwrap();
    drop(s);
    let file = newest_log_file(dir.path());
    let len = std::fs::metadata(&file).unwrap().len();
    damage(&file, len);
    dir
}

#[test]
fn a_torn_tail_loses_only_the_write_in_flight() {
    let dir = store_with_damaged_tail(|file, len| {
        let f = std::fs::OpenOptions::new().write(true).open(file).unwrap();
        f.set_len(len - 40_000).unwrap(); // inside the 100 KB record
    });
    let s = open(dir.path());
    assert_eq!(s.last_index().unwrap(), 300);
    check_consistent(&s, 300);
}

#[test]
fn a_corrupted_tail_loses_only_the_write_in_flight() {
    let dir = store_with_damaged_tail(|file, len| {
        let mut bytes = std::fs::read(file).unwrap();
        bytes[(len - 30_000) as usize] ^= 0x5a; // inside the 100 KB record
        std::fs::write(file, bytes).unwrap();
    });
    let s = open(dir.path());
    assert_eq!(s.last_index().unwrap(), 300);
    check_consistent(&s, 300);
}
