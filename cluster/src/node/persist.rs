//! The node's side of the pipelined commit round (`docs/protocol.md`): the Readys whose
//! writes were handed to the persistence worker and are not durable yet, and the messages
//! that wait for them (raft-rs `persisted_messages`: a follower's append acknowledgements,
//! votes), which never leave before the write they depend on is durable.

use super::Node;
use crate::error::Error;
use crate::io::{Durability, RaftStore, Transport};
use crate::state_machine::StateMachine;
use raft::eraftpb::Message;
use raft::Ready;
use std::collections::VecDeque;

/// Queued Readys and their waiting messages, oldest first.
#[derive(Debug, Default)]
pub(super) struct Unsynced {
    /// (Ready number, messages that may leave once it and every earlier one is durable).
    waiting: VecDeque<(u64, Vec<Message>)>,
    /// Messages whose Readys became durable, to send at the next poll.
    released: Vec<Message>,
}

impl Unsynced {
    /// Whether no queued write is waiting to be reported durable.
    pub(super) fn is_empty(&self) -> bool {
        self.waiting.is_empty()
    }

    /// Ready `number` was queued: `messages` wait until it is durable.
    pub(super) fn hold(&mut self, number: u64, messages: Vec<Message>) {
        self.waiting.push_back((number, messages));
    }

    /// A Ready that wrote nothing: its `messages` wait for the newest queued write (they
    /// may depend on it), or go at once (returned) when nothing is queued.
    pub(super) fn behind_queued(&mut self, messages: Vec<Message>) -> Vec<Message> {
        match self.waiting.back_mut() {
            Some((_, waiting)) => {
                waiting.extend(messages);
                Vec::new()
            }
            None => messages,
        }
    }

    /// Ready `number` and every earlier one are durable: their messages are released.
    pub(super) fn durable(&mut self, number: u64) {
        while self.waiting.front().is_some_and(|(n, _)| *n <= number) {
            if let Some((_, messages)) = self.waiting.pop_front() {
                self.released.extend(messages);
            }
        }
    }

    /// The released messages, in the order their Readys came.
    pub(super) fn take_released(&mut self) -> Vec<Message> {
        std::mem::take(&mut self.released)
    }
}

impl<S: RaftStore, M: StateMachine> Node<S, M> {
    /// Hands a Ready's entries and hard state to the store: `None` when there is nothing to
    /// write durably (only the commit index moved, which raft-rs says needs no sync: it is
    /// recovered from the leader); synchronously when `sync` (a Ready that installed a
    /// snapshot); otherwise `write_async`, which may queue it.
    pub(super) fn write_ready(
        &mut self,
        rd: &Ready,
        sync: bool,
    ) -> Result<Option<Durability>, Error> {
        let store = self.raw.mut_store();
        if rd.entries().is_empty() && !rd.must_sync() {
            if let Some(hs) = rd.hs() {
                store.set_commit(hs.commit)?;
            }
            return Ok(None);
        }
        if sync {
            store.persist(rd.entries(), rd.hs())?;
            return Ok(Some(Durability::Durable));
        }
        store
            .write_async(rd.number(), rd.entries(), rd.hs())
            .map(Some)
    }

    /// After `advance_append_async` of Ready `number`: its `held` messages leave now when
    /// what they depend on is durable, or wait (a queued write; or nothing written while
    /// an earlier write is queued).
    pub(super) fn ready_written(
        &mut self,
        number: u64,
        written: Option<Durability>,
        held: Vec<Message>,
        transport: &mut dyn Transport,
    ) {
        self.last_ready = number;
        match written {
            Some(Durability::Queued) => {
                self.unsynced.hold(number, held);
                self.out.persist = Some(number);
            }
            // A durable write is ordered after every queued one (`RaftStore::write_async`):
            // they are durable too.
            Some(Durability::Durable) => {
                self.unsynced.hold(number, held);
                self.persisted(number);
            }
            None => {
                let now = self.unsynced.behind_queued(held);
                if self.unsynced.is_empty() {
                    self.raw.on_persist_ready(number);
                }
                super::send_all(transport, now);
            }
        }
        super::send_all(transport, self.unsynced.take_released());
    }

    /// The writes up to Ready `number` are durable (`Input::Persisted`, or a durable write
    /// ordered after them): raft-rs learns it (a leader's own copy now counts towards the
    /// commit quorum; committed entries up to it may apply), and the messages waiting for
    /// them are released (sent at the next poll, or by `ready_written`).
    pub(super) fn persisted(&mut self, number: u64) {
        let number = number.min(self.last_ready);
        self.raw.on_persist_ready(number);
        self.raw.mut_store().on_persisted(number);
        self.unsynced.durable(number);
        if self.unsynced.is_empty() && self.last_ready > number {
            // The Readys after it wrote nothing.
            self.raw.on_persist_ready(self.last_ready);
        }
    }

    /// Sends the messages released by `Input::Persisted` since the last poll.
    pub(super) fn send_released(&mut self, transport: &mut dyn Transport) {
        super::send_all(transport, self.unsynced.take_released());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(to: u64) -> Message {
        Message {
            to,
            ..Default::default()
        }
    }

    #[test]
    fn messages_leave_only_once_their_ready_and_every_earlier_one_is_durable() {
        let mut u = Unsynced::default();
        assert_eq!(u.behind_queued(vec![msg(1)]).len(), 1, "nothing queued");
        u.hold(3, vec![msg(2)]);
        u.hold(5, vec![msg(3)]);
        assert!(
            u.behind_queued(vec![msg(4)]).is_empty(),
            "waits for Ready 5"
        );
        u.durable(4);
        let to: Vec<u64> = u.take_released().iter().map(|m| m.to).collect();
        assert_eq!(to, vec![2]);
        assert!(!u.is_empty());
        u.durable(5);
        let to: Vec<u64> = u.take_released().iter().map(|m| m.to).collect();
        assert_eq!(to, vec![3, 4]);
        assert!(u.is_empty());
    }
}
