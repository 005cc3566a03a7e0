//! Linearizable reads via ReadIndex: queued reads share one request context per poll; an
//! issued context that gets no `ReadState` within the timeout is re-issued under a fresh
//! context (raft drops ReadIndex silently without a leader or before the leader committed
//! in its term), up to a bounded number of attempts.

use super::proposals::Failure;
use super::RequestId;
use crate::error::RequestError;
use std::collections::BTreeMap;

type Query = (RequestId, Vec<u8>);

#[derive(Debug)]
struct Issued {
    reads: Vec<Query>,
    issued_tick: u64,
    attempt: u32,
}

/// All reads of this node: queued, issued (awaiting a read index), and ready (awaiting apply).
#[derive(Debug)]
pub struct Reads {
    node_id: u64,
    next_seq: u64,
    queued: Vec<Query>,
    issued: BTreeMap<Vec<u8>, Issued>,
    waiting_apply: Vec<(u64, Query)>,
    /// Reads admitted and not yet answered or failed (bounded by `limit`).
    in_use: usize,
    limit: usize,
    timeout_ticks: u64,
    attempts_max: u32,
}

impl Reads {
    pub fn new(node_id: u64, limit: usize, timeout_ticks: u64, attempts_max: u32) -> Self {
        Reads {
            node_id,
            next_seq: 0,
            queued: Vec::new(),
            issued: BTreeMap::new(),
            waiting_apply: Vec::new(),
            in_use: 0,
            limit,
            timeout_ticks,
            attempts_max,
        }
    }

    pub fn enqueue(&mut self, id: RequestId, query: Vec<u8>) -> Result<(), RequestError> {
        if self.in_use >= self.limit {
            return Err(RequestError::Busy {
                queue: "read queue",
            });
        }
        self.in_use += 1;
        self.queued.push((id, query));
        Ok(())
    }

    /// A context unique across the cluster: the leader dedups contexts, and followers
    /// forward theirs, so it carries this node's id.
    fn new_ctx(&mut self) -> Vec<u8> {
        self.next_seq += 1;
        let mut ctx = self.node_id.to_be_bytes().to_vec();
        ctx.extend_from_slice(&self.next_seq.to_be_bytes());
        ctx
    }

    /// Moves all queued reads under one new context, returned for `RawNode::read_index`.
    pub fn issue_queued(&mut self, tick: u64) -> Option<Vec<u8>> {
        if self.queued.is_empty() {
            return None;
        }
        let reads = std::mem::take(&mut self.queued);
        Some(self.issue(reads, tick, 1))
    }

    fn issue(&mut self, reads: Vec<Query>, tick: u64, attempt: u32) -> Vec<u8> {
        let ctx = self.new_ctx();
        let issued = Issued {
            reads,
            issued_tick: tick,
            attempt,
        };
        self.issued.insert(ctx.clone(), issued);
        ctx
    }

    /// Raft answered `ctx` with read index `index`. Unknown contexts (timed out) are ignored.
    pub fn on_read_state(&mut self, ctx: &[u8], index: u64) {
        if let Some(issued) = self.issued.remove(ctx) {
            self.waiting_apply
                .extend(issued.reads.into_iter().map(|q| (index, q)));
        }
    }

    /// Re-issues timed-out contexts (returned) and fails those out of attempts.
    pub fn on_tick(&mut self, tick: u64, failed: &mut Vec<Failure>) -> Vec<Vec<u8>> {
        let expired: Vec<Vec<u8>> = self
            .issued
            .iter()
            .filter(|(_, i)| tick.saturating_sub(i.issued_tick) >= self.timeout_ticks)
            .map(|(ctx, _)| ctx.clone())
            .collect();
        let mut reissued = Vec::new();
        for ctx in expired {
            let Some(old) = self.issued.remove(&ctx) else {
                continue;
            };
            if old.attempt >= self.attempts_max {
                let err = RequestError::ReadTimeout {
                    attempts: old.attempt,
                };
                self.in_use -= old.reads.len();
                failed.extend(old.reads.into_iter().map(|(id, _)| (id, err.clone())));
            } else {
                reissued.push(self.issue(old.reads, tick, old.attempt + 1));
            }
        }
        reissued
    }

    /// Reads whose read index is applied: safe to answer now.
    pub fn take_ready(&mut self, applied: u64) -> Vec<(u64, Query)> {
        let (ready, waiting) = std::mem::take(&mut self.waiting_apply)
            .into_iter()
            .partition(|(index, _)| *index <= applied);
        self.waiting_apply = waiting;
        self.in_use -= ready.len();
        ready
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timeout_retries_then_fails() {
        let mut r = Reads::new(1, 10, 5, 2);
        r.enqueue(7, b"q".to_vec()).unwrap();
        let ctx1 = r.issue_queued(0).unwrap();
        let mut failed = vec![];
        assert!(r.on_tick(4, &mut failed).is_empty());
        let again = r.on_tick(5, &mut failed);
        assert_eq!(again.len(), 1);
        assert_ne!(again[0], ctx1);
        r.on_read_state(&ctx1, 3); // stale context: ignored
        assert!(r.take_ready(100).is_empty());
        assert!(r.on_tick(10, &mut failed).is_empty());
        assert_eq!(failed, vec![(7, RequestError::ReadTimeout { attempts: 2 })]);
    }

    #[test]
    fn ready_only_after_apply() {
        let mut r = Reads::new(1, 1, 5, 2);
        r.enqueue(1, vec![]).unwrap();
        assert!(r.enqueue(2, vec![]).is_err());
        let ctx = r.issue_queued(0).unwrap();
        r.on_read_state(&ctx, 9);
        assert!(r.take_ready(8).is_empty());
        assert_eq!(r.take_ready(9).len(), 1);
        assert!(
            r.enqueue(2, vec![]).is_ok(),
            "answered reads free their slot"
        );
    }
}
