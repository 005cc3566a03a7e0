//! The log store's end of the pipelined write (`docs/storage.md`, "Pipelined writes"): the
//! queue of raft-engine batches handed to the persistence worker (`runtime::persist`), the
//! durable mark the worker advances after each round, and the queued entries, kept in
//! memory so raft-rs can read them before the worker wrote them (raft-rs requires it of
//! `advance_append_async`).

use crate::error::Error;
use raft::eraftpb::Entry;
use raft_engine::LogBatch;
use std::collections::VecDeque;
use std::sync::{Arc, Condvar, Mutex};

/// One write for the worker: a raft-engine batch, from raft-rs Ready `number`.
pub struct QueuedWrite {
    pub number: u64,
    /// The store's count of queued writes, this one included (see [`DurableMark`]).
    pub seq: u64,
    pub batch: LogBatch,
    /// Whether it must be synced (entries, a term or vote); a commit index need not be.
    pub sync: bool,
}

/// The persistence worker's end of one store's queue (`runtime::persist`): it takes the
/// store's writes in order; dropping it tells the worker the store is gone.
pub trait WriteSink: Send + Sync {
    /// Hands `write` to the worker; fails once the worker stopped.
    fn send(&self, write: QueuedWrite) -> Result<(), Error>;
}

/// How much of one store's queue the worker wrote, or why it stopped.
#[derive(Debug, Default)]
struct Written {
    /// The newest [`QueuedWrite::seq`] written (synced when it had to be).
    seq: u64,
    failed: Option<String>,
}

/// What the worker wrote of one store's queue (counted in writes: a commit index goes out
/// under the newest Ready number, so only the count tells that every queued write is
/// written), or why it stopped. Ready numbers go to the node task in the worker's reports.
#[derive(Debug, Default)]
pub struct DurableMark {
    state: Mutex<Written>,
    changed: Condvar,
}

impl DurableMark {
    /// The worker made the first `seq` writes queued durable (written, for a write that
    /// need not be synced).
    pub fn advance(&self, seq: u64) {
        let mut s = self.state.lock().unwrap_or_else(|p| p.into_inner());
        s.seq = s.seq.max(seq);
        self.changed.notify_all();
    }

    /// The worker stopped on a write error: every wait fails with it from now on.
    pub fn fail(&self, why: String) {
        let mut s = self.state.lock().unwrap_or_else(|p| p.into_inner());
        s.failed.get_or_insert(why);
        self.changed.notify_all();
    }

    /// Blocks until the first `seq` queued writes are written.
    fn wait_for(&self, seq: u64) -> Result<(), Error> {
        let mut s = self.state.lock().unwrap_or_else(|p| p.into_inner());
        loop {
            if s.seq >= seq {
                return Ok(());
            }
            if let Some(why) = &s.failed {
                return Err(Error::Storage(format!("persistence worker stopped: {why}")));
            }
            s = self.changed.wait(s).unwrap_or_else(|p| p.into_inner());
        }
    }

    fn written(&self) -> u64 {
        self.state.lock().unwrap_or_else(|p| p.into_inner()).seq
    }
}

/// The queue to the worker and the queued entries not known to be written yet.
pub(super) struct WriteQueue {
    sink: Box<dyn WriteSink>,
    mark: Arc<DurableMark>,
    /// The newest Ready number queued.
    submitted: u64,
    /// How many writes were queued (the last one's [`QueuedWrite::seq`]).
    queued: u64,
    /// (Ready number, first index) of the queued writes that carry entries, oldest first.
    pending: VecDeque<(u64, u64)>,
    /// The newest version of every entry from the lowest first index in `pending` on,
    /// consecutive; raft-engine holds the entries before it.
    overlay: VecDeque<Entry>,
}

impl WriteQueue {
    pub(super) fn new(sink: Box<dyn WriteSink>, mark: Arc<DurableMark>) -> WriteQueue {
        WriteQueue {
            sink,
            mark,
            submitted: 0,
            queued: 0,
            pending: VecDeque::new(),
            overlay: VecDeque::new(),
        }
    }

    /// Hands `batch` (which writes `entries`, maybe none) of Ready `number` to the worker.
    pub(super) fn queue(
        &mut self,
        number: u64,
        batch: LogBatch,
        sync: bool,
        entries: &[Entry],
    ) -> Result<(), Error> {
        let write = QueuedWrite {
            number,
            seq: self.queued + 1,
            batch,
            sync,
        };
        self.sink.send(write)?;
        self.queued += 1;
        self.submitted = self.submitted.max(number);
        if let Some(first) = entries.first() {
            self.pending.push_back((number, first.index));
            let keep = match self.overlay.front() {
                Some(head) if first.index > head.index => (first.index - head.index) as usize,
                _ => 0,
            };
            self.overlay.truncate(keep);
            self.overlay.extend(entries.iter().cloned());
        }
        Ok(())
    }

    /// The newest Ready number queued (a write of no Ready, such as a commit index, goes
    /// out under it).
    pub(super) fn submitted(&self) -> u64 {
        self.submitted
    }

    /// Whether every queued write is written.
    pub(super) fn idle(&self) -> bool {
        self.mark.written() >= self.queued
    }

    /// The first index read from the queued entries instead of raft-engine, if any.
    pub(super) fn overlay_first(&self) -> Option<u64> {
        self.overlay.front().map(|e| e.index)
    }

    /// The queued entries `low..high`, all inside the overlay.
    pub(super) fn read(&self, low: u64, high: u64) -> impl Iterator<Item = &Entry> {
        let first = self.overlay_first().unwrap_or(low);
        let skip = low.saturating_sub(first) as usize;
        self.overlay
            .iter()
            .skip(skip)
            .take(high.saturating_sub(low) as usize)
    }

    /// The writes up to Ready `number` are durable (so in raft-engine): the entries no
    /// queued write changes any more are read from raft-engine again.
    pub(super) fn on_persisted(&mut self, number: u64) {
        while self.pending.front().is_some_and(|(n, _)| *n <= number) {
            self.pending.pop_front();
        }
        match self.pending.iter().map(|(_, first)| *first).min() {
            None => self.overlay.clear(),
            Some(keep_from) => {
                while self.overlay.front().is_some_and(|e| e.index < keep_from) {
                    self.overlay.pop_front();
                }
            }
        }
    }

    /// Waits until every queued write is durable (a write that must be ordered after
    /// them, and is durable itself, comes next).
    pub(super) fn drain(&mut self) -> Result<(), Error> {
        self.mark.wait_for(self.queued)?;
        self.on_persisted(self.submitted);
        Ok(())
    }
}
