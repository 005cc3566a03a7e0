//! The persistence worker: a thread owning the log store's write side (`LogWriter`), so
//! the node task never waits on an fdatasync it could overlap (`docs/protocol.md`, the
//! commit round). The store queues each Ready's raft-engine batch (`RaftStore::write_async`);
//! the worker takes every batch queued so far as one group, writes them in order and
//! fdatasyncs once for the group (group commit across Readys), then advances the store's
//! durable mark and reports the newest Ready number of the group to the node task, which
//! steps `Input::Persisted`. A write error stops the worker: the store's waits and the
//! node task fail with it (fatal, like a failed fsync).

use crate::error::Error;
use crate::storage::{DurableMark, LogStore, LogWriter, QueuedWrite};
use std::sync::{mpsc, Arc};
use tokio::sync::mpsc::{unbounded_channel, UnboundedReceiver, UnboundedSender};

/// What the worker reports after each group: the newest durable Ready number, or the
/// error that stopped it.
pub type Report = Result<u64, String>;

/// The running worker, as the node task sees it.
pub struct Worker {
    /// The worker's reports, in order.
    pub reports: UnboundedReceiver<Report>,
    /// The worker's thread: see [`Worker::join_thread`].
    pub thread: std::thread::JoinHandle<()>,
}

impl Worker {
    /// Waits for the worker's thread to finish (it does once the store, its queue's only
    /// sender, is dropped and what was queued is written).
    pub fn join_thread(thread: std::thread::JoinHandle<()>) {
        if thread.join().is_err() {
            tracing::error!("the persistence worker panicked");
        }
    }
}

/// Starts the worker on `store`'s write side and pipelines the store's writes through it.
pub fn start(store: &mut LogStore) -> Result<Worker, Error> {
    start_observed(store, None)
}

/// [`start`], observing each fdatasync's duration in `fsync` (`metrics::node`).
pub fn start_observed(
    store: &mut LogStore,
    fsync: Option<crate::metrics::NodeCounters>,
) -> Result<Worker, Error> {
    let (tx, rx) = mpsc::channel();
    let mark = Arc::new(DurableMark::default());
    let (report_tx, reports) = unbounded_channel();
    let writer = store.writer();
    let worker_mark = mark.clone();
    let thread = std::thread::Builder::new()
        .name("persist".into())
        .spawn(move || run(&writer, &rx, &worker_mark, &report_tx, fsync.as_ref()))
        .map_err(|e| Error::Storage(format!("cannot start the persistence worker: {e}")))?;
    store.pipeline(tx, mark);
    Ok(Worker { reports, thread })
}

fn run(
    writer: &LogWriter,
    queue: &mpsc::Receiver<QueuedWrite>,
    mark: &DurableMark,
    reports: &UnboundedSender<Report>,
    fsync: Option<&crate::metrics::NodeCounters>,
) {
    while let Ok(first) = queue.recv() {
        let mut group = vec![first];
        group.extend(queue.try_iter());
        let synced = group.iter().any(|w| w.sync);
        let started = std::time::Instant::now();
        let written = write_group(writer, group);
        if let (true, Some(m)) = (synced, fsync) {
            m.observe_fsync(started.elapsed());
        }
        match written {
            Ok(number) => {
                mark.advance(number);
                // The node task may be gone (stopping): the write is durable anyway.
                let _ = reports.send(Ok(number));
            }
            Err(e) => {
                mark.fail(e.to_string());
                let _ = reports.send(Err(e.to_string()));
                return;
            }
        }
    }
}

/// Writes one group in order with one fdatasync (on its last non-empty batch, when any
/// batch must be synced); returns its newest Ready number.
fn write_group(writer: &LogWriter, group: Vec<QueuedWrite>) -> Result<u64, Error> {
    let sync = group.iter().any(|w| w.sync);
    let last = group.iter().rposition(|w| !w.batch.is_empty());
    let mut number = 0;
    for (i, mut w) in group.into_iter().enumerate() {
        writer.write(&mut w.batch, sync && Some(i) == last)?;
        number = number.max(w.number);
    }
    Ok(number)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::io::{Durability, RaftStore};
    use crate::storage::LogStoreOptions;
    use raft::eraftpb::Entry;
    use raft::{GetEntriesContext, Storage};

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
        Worker::join_thread(worker.thread);
        let store = open(dir.path());
        assert_eq!(store.last_index().unwrap(), 20);
        assert_eq!(store.term(9).unwrap(), 2);
        assert_eq!(store.initial_state().unwrap().hard_state.commit, 15);
    }
}
