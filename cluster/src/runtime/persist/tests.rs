//! The shared persistence worker's tests: one fdatasync for several groups' writes, reports
//! that never run ahead of durability, and a flooding group that holds back no other.

use super::round::{Disk, Limits};
use super::*;
use crate::io::{Durability, RaftStore};
use crate::storage::{open_engine, LogStoreOptions, SharedEngine};
use raft::eraftpb::{Entry, HardState};
use raft::{GetEntriesContext, Storage};
use raft_engine::LogBatch;
use std::collections::HashMap;
use std::sync::{Condvar, Mutex};

fn entries(low: u64, high: u64, term: u64) -> Vec<Entry> {
    (low..=high)
        .map(|index| Entry {
            index,
            term,
            data: vec![term as u8; 100].into(),
            ..Default::default()
        })
        .collect()
}

fn open(dir: &std::path::Path) -> LogStore {
    LogStore::open(
        dir.join("log"),
        dir.join("snap"),
        &LogStoreOptions::default(),
    )
    .unwrap()
}

/// Waits for the worker's report of Ready `number`.
fn durable(worker: &mut Worker, number: u64) {
    loop {
        match worker.reports.blocking_recv() {
            Some(Ok(n)) if n >= number => return,
            Some(Ok(_)) => {}
            other => panic!("worker stopped: {other:?}"),
        }
    }
}

/// Queued writes are readable at once (a conflicting suffix replaced too), durable once
/// reported, and every one of them is there after a reopen.
#[test]
fn queued_writes_read_back_at_once_and_survive_a_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = open(dir.path());
    let mut worker = start(&mut store).unwrap();
    let queued = store.write_async(1, &entries(1, 10, 1), None).unwrap();
    assert_eq!(queued, Durability::Queued);
    store.write_async(2, &entries(8, 12, 2), None).unwrap();
    let read = store.entries(1, 13, None, GetEntriesContext::empty(false));
    let terms: Vec<u64> = read.unwrap().iter().map(|e| e.term).collect();
    assert_eq!(terms, [[1; 7].as_slice(), &[2; 5]].concat());
    durable(&mut worker, 2);
    store.on_persisted(2);
    store.write_async(3, &entries(13, 20, 2), None).unwrap();
    store.set_commit(15).unwrap();
    let read = store.entries(5, 21, None, GetEntriesContext::empty(false));
    assert_eq!(read.unwrap().len(), 16);
    drop(store);
    worker.finished.wait();
    let store = open(dir.path());
    assert_eq!(store.last_index().unwrap(), 20);
    assert_eq!(store.term(9).unwrap(), 2);
    assert_eq!(store.initial_state().unwrap().hard_state.commit, 15);
}

/// The node's engine seen by a [`Disk`] that can hold the worker inside a write and
/// records, after each fdatasync, every group's last index then durable.
struct Probe {
    engine: SharedEngine,
    writer: LogWriter,
    groups: Vec<u64>,
    state: Arc<ProbeState>,
}

#[derive(Default)]
struct ProbeState {
    inner: Mutex<ProbeInner>,
    changed: Condvar,
}

#[derive(Default)]
struct ProbeInner {
    paused: bool,
    /// Writes begun.
    entered: u64,
    /// After each fdatasync, in order: group → its last index durable.
    synced: Vec<HashMap<u64, u64>>,
}

impl Disk for Probe {
    fn write(&self, batch: &mut LogBatch, sync: bool) -> Result<(), Error> {
        let mut s = self.state.inner.lock().unwrap();
        s.entered += 1;
        self.state.changed.notify_all();
        while s.paused {
            s = self.state.changed.wait(s).unwrap();
        }
        drop(s);
        self.writer.write(batch, sync)?;
        if sync {
            let lasts = self.groups.iter().map(|&g| {
                let last = self.engine.last_index(g).unwrap_or(0);
                (g, last)
            });
            let lasts = lasts.collect();
            self.state.inner.lock().unwrap().synced.push(lasts);
        }
        Ok(())
    }
}

impl ProbeState {
    fn pause(&self, paused: bool) {
        self.inner.lock().unwrap().paused = paused;
        self.changed.notify_all();
    }

    /// Waits until `n` writes have begun.
    fn wait_entered(&self, n: u64) {
        let mut s = self.inner.lock().unwrap();
        while s.entered < n {
            s = self.changed.wait(s).unwrap();
        }
    }

    /// Group `g`'s last index durable after the newest fdatasync.
    fn durable_last(&self, g: u64) -> u64 {
        let s = self.inner.lock().unwrap();
        s.synced
            .last()
            .and_then(|m| m.get(&g).copied())
            .unwrap_or(0)
    }

    fn synced(&self) -> Vec<HashMap<u64, u64>> {
        self.inner.lock().unwrap().synced.clone()
    }
}

/// Two groups' stores in one engine, behind one worker writing through a [`Probe`].
struct Two {
    shared: Shared,
    probe: Arc<ProbeState>,
    stores: Vec<(LogStore, Worker)>,
    _dir: tempfile::TempDir,
}

const GROUPS: [u64; 2] = [11, 12];

fn two_groups(limits: Limits) -> Two {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("log");
    let engine = open_engine(&log, &LogStoreOptions::default()).unwrap();
    let mut stores: Vec<LogStore> = GROUPS
        .iter()
        .map(|&group_id| {
            let snap = dir.path().join(format!("snap-{group_id}"));
            let opts = LogStoreOptions {
                group_id,
                ..LogStoreOptions::default()
            };
            LogStore::open_in(engine.clone(), &log, snap, &opts).unwrap()
        })
        .collect();
    let state = Arc::new(ProbeState::default());
    let probe = Probe {
        engine,
        writer: stores[0].writer(),
        groups: GROUPS.to_vec(),
        state: state.clone(),
    };
    let shared = Shared::start_on(probe, None, limits).unwrap();
    let stores = stores
        .drain(..)
        .map(|mut s| {
            let w = shared.register(&mut s).unwrap();
            (s, w)
        })
        .collect();
    Two {
        shared,
        probe: state,
        stores,
        _dir: dir,
    }
}

/// Two groups' writes queued while the worker is busy are made durable by one fdatasync,
/// and each group is told its own newest Ready number; nothing is reported while the
/// write that carries it has not returned.
#[test]
fn two_groups_queued_together_share_one_fdatasync() {
    let mut two = two_groups(Limits::default());
    let [(a, wa), (b, wb)] = &mut two.stores[..] else {
        panic!("two groups")
    };
    two.probe.pause(true);
    a.write_async(1, &entries(1, 3, 1), None).unwrap();
    two.probe.wait_entered(1);
    a.write_async(2, &entries(4, 6, 1), None).unwrap();
    b.write_async(1, &entries(1, 4, 1), None).unwrap();
    assert!(wa.reports.try_recv().is_err(), "reported inside the write");
    two.probe.pause(false);
    durable(wa, 2);
    durable(wb, 1);
    assert_eq!(
        two.shared.syncs(),
        2,
        "one fdatasync, then one for both groups"
    );
    let synced = two.probe.synced();
    assert_eq!(synced[1][&GROUPS[0]], 6);
    assert_eq!(synced[1][&GROUPS[1]], 4);
    assert!(wb.reports.try_recv().is_err(), "B has one report");
    for (store, worker) in two.stores {
        drop(store);
        worker.finished.wait();
    }
}

/// One group's pace through the worker: Readys of 1..=5 entries with commit indexes in
/// between; every report checked against what the probe saw synced.
fn drive(store: &mut LogStore, worker: &mut Worker, group: u64, probe: &ProbeState) {
    let mut last_of = HashMap::new();
    let mut next = 1;
    let check = |n: u64, last_of: &HashMap<u64, u64>| {
        let durable = probe.durable_last(group);
        assert!(
            last_of[&n] <= durable,
            "Ready {n} reported, {durable} durable"
        );
    };
    for number in 1..=200u64 {
        let batch = entries(next, next + number % 5, 1);
        next += batch.len() as u64;
        last_of.insert(number, next - 1);
        let hs = HardState {
            term: 1,
            ..Default::default()
        };
        store.write_async(number, &batch, Some(&hs)).unwrap();
        store.set_commit(next / 2).unwrap();
        while let Ok(report) = worker.reports.try_recv() {
            let n = report.unwrap();
            check(n, &last_of);
            store.on_persisted(n);
        }
    }
    loop {
        let n = worker.reports.blocking_recv().unwrap().unwrap();
        check(n, &last_of);
        if n == 200 {
            return;
        }
    }
}

/// Two groups writing at once, one write per group per round (the tightest budget): no
/// report ever names a Ready whose entries were not yet synced.
#[test]
fn a_report_never_claims_a_ready_not_yet_durable() {
    let two = two_groups(Limits {
        group_round_bytes_max: 1,
    });
    let probe = two.probe.clone();
    let threads: Vec<_> = two
        .stores
        .into_iter()
        .zip(GROUPS)
        .map(|((mut store, mut worker), group)| {
            let probe = probe.clone();
            std::thread::spawn(move || {
                drive(&mut store, &mut worker, group, &probe);
                drop(store);
                worker.finished.wait();
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
}

/// A group flooding the worker gets its budget of a round, no more: another group's write
/// queued behind the flood is durable in the flood's first round.
#[test]
fn a_flooding_group_does_not_hold_back_another() {
    let mut two = two_groups(Limits {
        group_round_bytes_max: 2_000,
    });
    let [(a, wa), (b, wb)] = &mut two.stores[..] else {
        panic!("two groups")
    };
    two.probe.pause(true);
    a.write_async(1, &entries(1, 1, 1), None).unwrap();
    two.probe.wait_entered(1);
    for number in 2..=21 {
        let first = 2 + (number - 2) * 10;
        a.write_async(number, &entries(first, first + 9, 1), None)
            .unwrap();
    }
    b.write_async(1, &entries(1, 2, 1), None).unwrap();
    two.probe.pause(false);
    durable(wb, 1);
    durable(wa, 21);
    let synced = two.probe.synced();
    assert_eq!(synced[1][&GROUPS[1]], 2, "B in the flood's first round");
    assert!(synced[1][&GROUPS[0]] < 201, "A's flood spread over rounds");
    assert_eq!(synced.last().unwrap()[&GROUPS[0]], 201);
}
