//! The persistence worker: one thread per node process owning the write side of the node's
//! one raft-engine (`LogWriter`), for every region's group, so no node task waits on an
//! fdatasync it could overlap (`docs/protocol.md`, the commit round) and the groups share
//! one fdatasync per round instead of syncing each on its own (`docs/storage.md`,
//! "Pipelined writes").
//!
//! Each group's store queues each Ready's raft-engine batch on its own queue
//! (`RaftStore::write_async`, [`Shared::register`]). The worker takes, from every group,
//! the writes queued so far (at most [`GROUP_ROUND_BYTES_MAX`] of one group per round, so a
//! flooding region delays the others by one bounded round at most), merges them into one
//! `LogBatch` and writes it with one fdatasync ([`round`]); then it advances each group's
//! durable mark and reports to each group's node task the newest Ready number of that
//! group it made durable (`Input::Persisted`). A write error stops the worker: every
//! group's waits and node task fail with it (fatal for the node, like a failed fsync).

mod round;

use crate::error::Error;
use crate::storage::{DurableMark, LogStore, LogWriter};
use round::{Disk, GroupEnds, Job, Limits};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{mpsc, Arc};
use tokio::sync::mpsc::{unbounded_channel, UnboundedReceiver};

/// The most bytes (raft-engine's estimate of the encoded batches) the worker takes from one
/// group's queue per round; a group's first queued write is always taken, however large.
pub const GROUP_ROUND_BYTES_MAX: usize = 4 * 1024 * 1024;

/// What the worker reports to a group after each round that made some of its writes
/// durable: the group's newest durable Ready number, or the error that stopped it.
pub type Report = Result<u64, String>;

/// One group's view of the running worker, as its node task sees it.
pub struct Worker {
    /// The worker's reports to this group, in order.
    pub reports: UnboundedReceiver<Report>,
    /// Waits until the worker is done with the group: see [`Finished::wait`].
    pub finished: Finished,
}

/// The end of a group's part in the worker.
pub struct Finished {
    /// Disconnected once the group's store is gone and its last write done (or the
    /// worker stopped).
    retired: mpsc::Receiver<()>,
    /// The worker's thread, for a worker started for one store alone ([`start`]).
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Finished {
    /// Waits until the worker wrote what the group queued (it does once the group's store,
    /// its queue's only sender, is dropped) or stopped.
    pub fn wait(self) {
        // Nothing is ever sent: the channel only ends.
        let _ = self.retired.recv();
        if let Some(thread) = self.thread {
            if thread.join().is_err() {
                tracing::error!("the persistence worker panicked");
            }
        }
    }
}

/// The node's persistence worker, shared by its groups. Dropping it leaves the thread
/// running until every registered group's store is gone.
pub struct Shared {
    jobs: mpsc::Sender<Job>,
    next_slot: AtomicUsize,
    syncs: Arc<AtomicU64>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Shared {
    /// Starts the worker on `writer` (the node's one raft-engine), observing each
    /// fdatasync's duration in `fsync` (`metrics::node`).
    pub fn start(
        writer: LogWriter,
        fsync: Option<crate::metrics::NodeCounters>,
    ) -> Result<Shared, Error> {
        Shared::start_on(writer, fsync, Limits::default())
    }

    fn start_on(
        disk: impl Disk,
        fsync: Option<crate::metrics::NodeCounters>,
        limits: Limits,
    ) -> Result<Shared, Error> {
        let (jobs, rx) = mpsc::channel();
        let syncs = Arc::new(AtomicU64::new(0));
        let observed = round::Observers {
            fsync,
            syncs: syncs.clone(),
        };
        let thread = std::thread::Builder::new()
            .name("persist".into())
            .spawn(move || round::run(&disk, &rx, limits, &observed))
            .map_err(|e| Error::Storage(format!("cannot start the persistence worker: {e}")))?;
        Ok(Shared {
            jobs,
            next_slot: AtomicUsize::new(0),
            syncs,
            thread: Some(thread),
        })
    }

    /// Pipelines `store`'s writes through the worker, as one more group (`store` must be a
    /// group of the engine the worker writes to).
    pub fn register(&self, store: &mut LogStore) -> Result<Worker, Error> {
        let (sink, mark, worker) = self.join()?;
        store.pipeline(Box::new(sink), mark);
        Ok(worker)
    }

    /// A new group: the sink its writes go to, its durable mark, its [`Worker`].
    fn join(&self) -> Result<(round::GroupSink, Arc<DurableMark>, Worker), Error> {
        let slot = self.next_slot.fetch_add(1, Ordering::Relaxed);
        let mark = Arc::new(DurableMark::default());
        let (report_tx, reports) = unbounded_channel();
        let (retired_tx, retired) = mpsc::channel();
        let ends = GroupEnds {
            mark: mark.clone(),
            reports: report_tx,
            _retired: retired_tx,
        };
        self.jobs
            .send(Job::Join { slot, ends })
            .map_err(|_| Error::Storage("persistence worker stopped".into()))?;
        let sink = round::GroupSink::new(slot, self.jobs.clone());
        let finished = Finished {
            retired,
            thread: None,
        };
        let worker = Worker { reports, finished };
        Ok((sink, mark, worker))
    }

    /// How many rounds the worker synced so far (one fdatasync each).
    pub fn syncs(&self) -> u64 {
        self.syncs.load(Ordering::Relaxed)
    }
}

/// Starts a worker for `store` alone (a tool, a test) and pipelines the store's writes
/// through it; its thread ends, and [`Finished::wait`] joins it, once the store is dropped.
pub fn start(store: &mut LogStore) -> Result<Worker, Error> {
    let mut shared = Shared::start(store.writer(), None)?;
    let mut worker = shared.register(store)?;
    worker.finished.thread = shared.thread.take();
    Ok(worker)
}

#[cfg(test)]
mod tests;
