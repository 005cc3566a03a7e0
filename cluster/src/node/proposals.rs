//! Proposal bookkeeping: the group-commit queue and the proposals in flight, keyed by the
//! (index, term) their entry got when proposed. An entry that commits at that index with
//! another term means our entry was overwritten: it never committed.

use super::RequestId;
use crate::error::RequestError;
use std::collections::BTreeMap;

/// Who waits for the entry at an index.
#[derive(Debug)]
pub enum Waiter {
    /// Client commands of a group-commit batch, in batch order.
    Batch(Vec<RequestId>),
    /// A membership change.
    Conf(RequestId),
}

impl Waiter {
    fn ids(self) -> Vec<RequestId> {
        match self {
            Waiter::Batch(ids) => ids,
            Waiter::Conf(id) => vec![id],
        }
    }

    fn count(&self) -> usize {
        match self {
            Waiter::Batch(ids) => ids.len(),
            Waiter::Conf(_) => 1,
        }
    }
}

#[derive(Debug)]
struct InFlight {
    term: u64,
    waiter: Waiter,
}

/// Queued commands (not yet proposed) plus in-flight entries, bounded in total.
#[derive(Debug, Default)]
pub struct Proposals {
    queued: Vec<(RequestId, Vec<u8>)>,
    in_flight: BTreeMap<u64, InFlight>,
    in_flight_requests: usize,
    limit: usize,
}

/// A failed request, ready to become a completion.
pub type Failure = (RequestId, RequestError);

impl Proposals {
    pub fn new(limit: usize) -> Self {
        Proposals {
            limit,
            ..Default::default()
        }
    }

    fn len(&self) -> usize {
        self.queued.len() + self.in_flight_requests
    }

    /// Admits a request slot, or `Busy` when the bounded queue is full.
    pub fn check_capacity(&self) -> Result<(), RequestError> {
        if self.len() >= self.limit {
            return Err(RequestError::Busy {
                queue: "proposal queue",
            });
        }
        Ok(())
    }

    pub fn enqueue(&mut self, id: RequestId, command: Vec<u8>) -> Result<(), RequestError> {
        self.check_capacity()?;
        self.queued.push((id, command));
        Ok(())
    }

    /// Admits every command of a batch, or none: `Busy` when they would not all fit.
    pub fn enqueue_all(&mut self, items: Vec<(RequestId, Vec<u8>)>) -> Result<(), RequestError> {
        if self.len() + items.len() > self.limit {
            return Err(RequestError::Busy {
                queue: "proposal queue",
            });
        }
        self.queued.extend(items);
        Ok(())
    }

    pub fn has_conf_change(&self) -> bool {
        self.in_flight
            .values()
            .any(|f| matches!(f.waiter, Waiter::Conf(_)))
    }

    /// Splits the queue into batches of at most `count_max` commands and `bytes_max` bytes of
    /// encoded batch (a single larger command was refused at admission).
    pub fn take_batches(
        &mut self,
        count_max: usize,
        bytes_max: usize,
    ) -> Vec<Vec<(RequestId, Vec<u8>)>> {
        use super::payload::{BATCH_HEADER_BYTES, BATCH_PER_COMMAND_BYTES};
        let mut batches: Vec<Vec<(RequestId, Vec<u8>)>> = Vec::new();
        let mut bytes = 0;
        for (id, cmd) in self.queued.drain(..) {
            let size = cmd.len() + BATCH_PER_COMMAND_BYTES;
            let full = batches.last().is_none_or(|b| {
                b.len() >= count_max || BATCH_HEADER_BYTES + bytes + size > bytes_max
            });
            if full {
                batches.push(Vec::new());
                bytes = 0;
            }
            bytes += size;
            if let Some(b) = batches.last_mut() {
                b.push((id, cmd));
            }
        }
        batches
    }

    pub fn register(&mut self, index: u64, term: u64, waiter: Waiter) {
        self.in_flight_requests += waiter.count();
        self.in_flight.insert(index, InFlight { term, waiter });
    }

    fn remove(&mut self, index: u64) -> Option<InFlight> {
        let f = self.in_flight.remove(&index)?;
        self.in_flight_requests -= f.waiter.count();
        Some(f)
    }

    /// Called for every committed entry in log order. Returns our waiter if the committed
    /// entry is ours; fails (into `failed`) a proposal whose slot went to another term.
    pub fn on_committed(
        &mut self,
        index: u64,
        term: u64,
        failed: &mut Vec<Failure>,
    ) -> Option<Waiter> {
        // Entries below `index` that are still tracked can only have been skipped by a
        // snapshot; their outcome is unknown.
        let stale: Vec<u64> = self.in_flight.range(..index).map(|(i, _)| *i).collect();
        for i in stale {
            self.fail_index(i, RequestError::LeadershipLost, failed);
        }
        let f = self.in_flight.get(&index)?;
        if f.term == term {
            return self.remove(index).map(|f| f.waiter);
        }
        self.fail_index(index, RequestError::Superseded { index, term }, failed);
        None
    }

    fn fail_index(&mut self, index: u64, err: RequestError, failed: &mut Vec<Failure>) {
        if let Some(f) = self.remove(index) {
            failed.extend(f.waiter.ids().into_iter().map(|id| (id, err.clone())));
        }
    }

    /// Fails every in-flight entry up to `index` (a snapshot covered them: outcome unknown).
    pub fn fail_up_to(&mut self, index: u64, failed: &mut Vec<Failure>) {
        let covered: Vec<u64> = self.in_flight.range(..=index).map(|(i, _)| *i).collect();
        for i in covered {
            self.fail_index(i, RequestError::LeadershipLost, failed);
        }
    }

    /// Fails everything: queued commands never reached the log (`queued_err`), in-flight
    /// ones may still commit under the next leader (`LeadershipLost`).
    pub fn fail_all(&mut self, queued_err: &RequestError, failed: &mut Vec<Failure>) {
        failed.extend(
            self.queued
                .drain(..)
                .map(|(id, _)| (id, queued_err.clone())),
        );
        self.fail_up_to(u64::MAX, failed);
    }

    pub fn fail_queued(&mut self, err: &RequestError, failed: &mut Vec<Failure>) {
        failed.extend(self.queued.drain(..).map(|(id, _)| (id, err.clone())));
    }

    pub fn has_queued(&self) -> bool {
        !self.queued.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batches_respect_count_and_bytes() {
        let mut p = Proposals::new(100);
        for id in 0..5 {
            p.enqueue(id, vec![0; 10]).unwrap();
        }
        let b = p.take_batches(2, 1000);
        assert_eq!(b.iter().map(Vec::len).collect::<Vec<_>>(), vec![2, 2, 1]);
        for id in 0..5 {
            p.enqueue(id, vec![0; 10]).unwrap();
        }
        // header 13 + 14 per command: 40 bytes fit 1 command per batch... 2 need 41.
        let b = p.take_batches(10, 40);
        assert_eq!(b.len(), 5);
    }

    #[test]
    fn bounded_and_superseded() {
        let mut p = Proposals::new(2);
        p.enqueue(1, vec![]).unwrap();
        p.enqueue(2, vec![]).unwrap();
        assert!(matches!(
            p.enqueue(3, vec![]),
            Err(RequestError::Busy { .. })
        ));
        p.take_batches(10, 1000);
        p.register(5, 2, Waiter::Batch(vec![1, 2]));
        let mut failed = vec![];
        assert!(p.on_committed(5, 3, &mut failed).is_none());
        assert_eq!(failed.len(), 2);
        assert!(failed.iter().all(|(_, e)| e.is_retryable()));
        assert!(p.enqueue(3, vec![]).is_ok());
    }

    #[test]
    fn a_batch_is_admitted_whole_or_not_at_all() {
        let mut p = Proposals::new(4);
        p.enqueue(1, vec![]).unwrap();
        let three: Vec<_> = (2..5).map(|id| (id, vec![])).collect();
        let four: Vec<_> = (2..6).map(|id| (id, vec![])).collect();
        assert!(matches!(
            p.enqueue_all(four),
            Err(RequestError::Busy { .. })
        ));
        assert_eq!(p.len(), 1);
        p.enqueue_all(three).unwrap();
        assert_eq!(p.len(), 4);
        let b = p.take_batches(10, 1000);
        assert_eq!(
            b[0].iter().map(|(id, _)| *id).collect::<Vec<_>>(),
            vec![1, 2, 3, 4]
        );
    }
}
