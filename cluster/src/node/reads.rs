//! Linearizable reads via ReadIndex: queued reads share one request context per poll; an
//! issued context that gets no `ReadState` within the timeout is re-issued under a fresh
//! context (raft drops ReadIndex silently without a leader or before the leader committed
//! in its term), up to a bounded number of attempts.
//!
//! A read may also wait for the log: a command answered as a read (a retry or a refusal,
//! `Node::try_replay`) is answered only once the leader's log *as it stood when the read
//! was issued* is applied, not just its read index, so that an earlier attempt of the same
//! request already in that log is applied (and remembered, if it succeeded) before the
//! retry is decided.

use super::proposals::Failure;
use super::RequestId;
use crate::error::RequestError;
use std::collections::BTreeMap;

type Query = (RequestId, Vec<u8>);
/// A read and the index it must wait for besides its read index (0: none).
type Floored = (u64, Query);

#[derive(Debug)]
struct Issued {
    reads: Vec<Floored>,
    issued_tick: u64,
    attempt: u32,
}

/// All reads of this node: queued, issued (awaiting a read index), and ready (awaiting apply).
#[derive(Debug)]
pub struct Reads {
    node_id: u64,
    next_seq: u64,
    /// Queued reads, each with whether it waits for the log as it stands at issue.
    queued: Vec<(bool, Query)>,
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
        self.admit(false, (id, query))
    }

    /// Enqueues a read that is answered only once its read index *and* the log's last index
    /// when it is issued (`issue_queued`) are applied: a command answered as a read.
    pub fn enqueue_after_log(&mut self, id: RequestId, query: Vec<u8>) -> Result<(), RequestError> {
        self.admit(true, (id, query))
    }

    fn admit(&mut self, after_log: bool, query: Query) -> Result<(), RequestError> {
        if self.in_use >= self.limit {
            return Err(RequestError::Busy {
                queue: "read queue",
            });
        }
        self.in_use += 1;
        self.queued.push((after_log, query));
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

    /// Moves all queued reads under one new context, returned for `RawNode::read_index`;
    /// `last_index` is the log's last index now (what `enqueue_after_log` reads wait for).
    pub fn issue_queued(&mut self, tick: u64, last_index: u64) -> Option<Vec<u8>> {
        if self.queued.is_empty() {
            return None;
        }
        let reads = std::mem::take(&mut self.queued)
            .into_iter()
            .map(|(after_log, q)| (if after_log { last_index } else { 0 }, q))
            .collect();
        Some(self.issue(reads, tick, 1))
    }

    fn issue(&mut self, reads: Vec<Floored>, tick: u64, attempt: u32) -> Vec<u8> {
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
            self.waiting_apply.extend(
                issued
                    .reads
                    .into_iter()
                    .map(|(floor, q)| (index.max(floor), q)),
            );
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
                failed.extend(old.reads.into_iter().map(|(_, (id, _))| (id, err.clone())));
            } else {
                reissued.push(self.issue(old.reads, tick, old.attempt + 1));
            }
        }
        reissued
    }

    /// Reads whose read index (and floor) is applied: safe to answer now, with the index
    /// each waited for.
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
        let ctx1 = r.issue_queued(0, 0).unwrap();
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

    /// A command answered as a read waits for the log as it stood at issue, a plain read
    /// only for its read index; a re-issued context keeps the floor.
    #[test]
    fn reads_after_the_log_wait_for_its_last_index_at_issue() {
        let mut r = Reads::new(1, 10, 5, 2);
        r.enqueue(1, b"plain".to_vec()).unwrap();
        r.enqueue_after_log(2, b"command".to_vec()).unwrap();
        let first = r.issue_queued(0, 12).unwrap();
        let mut failed = vec![];
        let ctx = r.on_tick(5, &mut failed).pop().expect("re-issued");
        r.on_read_state(&first, 3); // the timed-out context: ignored
        r.on_read_state(&ctx, 9);
        let ids = |ready: Vec<(u64, Query)>| -> Vec<(u64, RequestId)> {
            ready.into_iter().map(|(i, (id, _))| (i, id)).collect()
        };
        assert_eq!(ids(r.take_ready(11)), vec![(9, 1)]);
        assert_eq!(ids(r.take_ready(12)), vec![(12, 2)]);
        assert!(failed.is_empty());
    }

    #[test]
    fn ready_only_after_apply() {
        let mut r = Reads::new(1, 1, 5, 2);
        r.enqueue(1, vec![]).unwrap();
        assert!(r.enqueue(2, vec![]).is_err());
        let ctx = r.issue_queued(0, 0).unwrap();
        r.on_read_state(&ctx, 9);
        assert!(r.take_ready(8).is_empty());
        assert_eq!(r.take_ready(9).len(), 1);
        assert!(
            r.enqueue(2, vec![]).is_ok(),
            "answered reads free their slot"
        );
    }
}
