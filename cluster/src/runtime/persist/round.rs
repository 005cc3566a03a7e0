//! The worker's loop: rounds of every group's queued writes, merged into one raft-engine
//! `LogBatch` and written with one fdatasync, then each group's mark advanced and its node
//! task told.

use super::{Report, GROUP_ROUND_BYTES_MAX};
use crate::error::Error;
use crate::storage::{DurableMark, LogWriter, QueuedWrite, WriteSink};
use raft_engine::LogBatch;
use std::collections::{BTreeMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{mpsc, Arc};
use tokio::sync::mpsc::UnboundedSender;

/// Where a round is written: the node's raft-engine ([`LogWriter`]); a probe in tests.
pub(super) trait Disk: Send + 'static {
    /// Writes `batch`; with `sync`, fdatasyncs the log (every earlier write with it).
    fn write(&self, batch: &mut LogBatch, sync: bool) -> Result<(), Error>;
}

impl Disk for LogWriter {
    fn write(&self, batch: &mut LogBatch, sync: bool) -> Result<(), Error> {
        LogWriter::write(self, batch, sync)
    }
}

/// The worker's limits.
#[derive(Clone, Copy, Debug)]
pub(super) struct Limits {
    /// See [`GROUP_ROUND_BYTES_MAX`].
    pub group_round_bytes_max: usize,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            group_round_bytes_max: GROUP_ROUND_BYTES_MAX,
        }
    }
}

/// What the worker tells besides the groups' reports.
pub(super) struct Observers {
    /// Each fdatasync's duration (`metrics::node`).
    pub fsync: Option<crate::metrics::NodeCounters>,
    /// The count of synced rounds.
    pub syncs: Arc<AtomicU64>,
}

/// The worker's ends of one group: its mark, its node task's reports, its end signal.
pub(super) struct GroupEnds {
    pub mark: Arc<DurableMark>,
    pub reports: UnboundedSender<Report>,
    /// Never sent on: dropped when the group is retired, which ends `Finished::wait`.
    pub _retired: mpsc::Sender<()>,
}

/// What the worker's queue carries, each group's jobs in the group's order.
pub(super) enum Job {
    /// A new group, `slot` naming it in its later jobs.
    Join { slot: usize, ends: GroupEnds },
    /// A write of the group's store.
    Write { slot: usize, write: QueuedWrite },
    /// The group's store is gone: retire it once its queued writes are written.
    Leave { slot: usize },
}

/// A store's sink (`storage::WriteSink`): its writes go to the worker's queue, tagged with
/// its group's slot; dropped, it tells the worker the group leaves.
pub(super) struct GroupSink {
    slot: usize,
    jobs: mpsc::Sender<Job>,
}

impl GroupSink {
    pub(super) fn new(slot: usize, jobs: mpsc::Sender<Job>) -> GroupSink {
        GroupSink { slot, jobs }
    }
}

impl WriteSink for GroupSink {
    fn send(&self, write: QueuedWrite) -> Result<(), Error> {
        let slot = self.slot;
        self.jobs
            .send(Job::Write { slot, write })
            .map_err(|_| Error::Storage("persistence worker stopped".into()))
    }
}

impl Drop for GroupSink {
    fn drop(&mut self) {
        // A stopped worker has nothing left to retire.
        let _ = self.jobs.send(Job::Leave { slot: self.slot });
    }
}

/// One group as the worker holds it: its ends and its writes not taken yet, oldest first.
struct Group {
    ends: GroupEnds,
    queue: VecDeque<QueuedWrite>,
    leaving: bool,
}

/// The newest Ready number and write count of one group's writes in a round.
#[derive(Clone, Copy, Default)]
struct Newest {
    number: u64,
    seq: u64,
}

/// Runs rounds until every sender of `jobs` is gone and every group retired, or a write
/// fails (then every group's mark fails and every group is told).
pub(super) fn run(disk: &impl Disk, jobs: &mpsc::Receiver<Job>, limits: Limits, obs: &Observers) {
    let mut groups: BTreeMap<usize, Group> = BTreeMap::new();
    loop {
        groups.retain(|_, g| !(g.leaving && g.queue.is_empty()));
        if groups.values().all(|g| g.queue.is_empty()) {
            match jobs.recv() {
                Ok(job) => accept(&mut groups, job),
                Err(_) => return,
            }
        }
        for job in jobs.try_iter() {
            accept(&mut groups, job);
        }
        let round = take(&mut groups, limits);
        if round.is_empty() {
            continue;
        }
        match write(disk, round, obs) {
            Ok(newest) => report(&groups, newest),
            Err(e) => return fail(&groups, &e.to_string()),
        }
    }
}

fn accept(groups: &mut BTreeMap<usize, Group>, job: Job) {
    match job {
        Job::Join { slot, ends } => {
            let queue = VecDeque::new();
            let leaving = false;
            groups.insert(
                slot,
                Group {
                    ends,
                    queue,
                    leaving,
                },
            );
        }
        Job::Write { slot, write } => match groups.get_mut(&slot) {
            Some(g) => g.queue.push_back(write),
            // Cannot happen: a group joins before its store has a sink.
            None => tracing::error!(slot, "a write of a group the worker does not know"),
        },
        Job::Leave { slot } => {
            if let Some(g) = groups.get_mut(&slot) {
                g.leaving = true;
            }
        }
    }
}

/// Takes a round: from every group, in its order, its queued writes up to
/// `limits.group_round_bytes_max` (at least one).
fn take(groups: &mut BTreeMap<usize, Group>, limits: Limits) -> Vec<(usize, QueuedWrite)> {
    let mut round = Vec::new();
    for (&slot, g) in groups.iter_mut() {
        let mut bytes = 0usize;
        while let Some(next) = g.queue.front() {
            let size = next.batch.approximate_size();
            if bytes > 0 && bytes.saturating_add(size) > limits.group_round_bytes_max {
                break;
            }
            bytes = bytes.saturating_add(size);
            if let Some(w) = g.queue.pop_front() {
                round.push((slot, w));
            }
        }
    }
    round
}

/// Writes a round as one batch, with one fdatasync when any of its writes must be synced
/// (a round larger than raft-engine takes in one batch goes out in several, the last one
/// synced); returns each group's newest Ready number and write count in it.
fn write(
    disk: &impl Disk,
    round: Vec<(usize, QueuedWrite)>,
    obs: &Observers,
) -> Result<BTreeMap<usize, Newest>, Error> {
    let sync = round.iter().any(|(_, w)| w.sync);
    let mut newest: BTreeMap<usize, Newest> = BTreeMap::new();
    let mut merged = LogBatch::default();
    for (slot, mut w) in round {
        let n = newest.entry(slot).or_default();
        n.number = n.number.max(w.number);
        n.seq = n.seq.max(w.seq);
        if merged.merge(&mut w.batch).is_err() {
            // Full: what is merged so far goes first, unsynced (the last write syncs it).
            disk.write(&mut std::mem::take(&mut merged), false)?;
            merged
                .merge(&mut w.batch)
                .map_err(|e| Error::Storage(format!("a queued write is too large: {e}")))?;
        }
    }
    let started = std::time::Instant::now();
    disk.write(&mut merged, sync)?;
    if sync {
        obs.syncs.fetch_add(1, Ordering::Relaxed);
        if let Some(m) = &obs.fsync {
            m.observe_fsync(started.elapsed());
        }
    }
    Ok(newest)
}

/// Advances each group's mark to what the round made durable, then tells its node task.
fn report(groups: &BTreeMap<usize, Group>, newest: BTreeMap<usize, Newest>) {
    for (slot, n) in newest {
        if let Some(g) = groups.get(&slot) {
            g.ends.mark.advance(n.seq);
            // The node task may be gone (stopping): the write is durable anyway.
            let _ = g.ends.reports.send(Ok(n.number));
        }
    }
}

/// A write failed: every group's waits and node task fail with it.
fn fail(groups: &BTreeMap<usize, Group>, why: &str) {
    tracing::error!(
        error = why,
        "the persistence worker stopped on a write error"
    );
    for g in groups.values() {
        g.ends.mark.fail(why.to_string());
        let _ = g.ends.reports.send(Err(why.to_string()));
    }
}
