//! The Ready loop and everything it applies: committed entries (batches, conf changes) and
//! received snapshots (local snapshots: `snapshots`).
//!
//! Order per Ready, as raft-rs documents it for asynchronous writes: send `messages` (a
//! leader's: before its own write) → install the snapshot → apply committed entries (never
//! past what this node holds durably: raft-rs bounds them by its persisted index) → hand
//! entries + hard state to the store (one atomic write, possibly queued for the
//! persistence worker) → `advance_append_async` → send `persisted_messages` once the write
//! is durable (at once, or when `Input::Persisted` reports it: `persist`) →
//! `advance_apply`. raft-rs's `on_persist_ready` (the leader's own copy counts towards the
//! quorum from here) runs when the write is durable. "Send" is the driver's transport,
//! called during the poll (`Node::poll_sending`).

use super::guard::{self, ApplyPanic, POISON_COMMANDS_NAMED_MAX};
use super::members::{ChangeContext, Registry};
use super::payload;
use super::proposals::Waiter;
use super::{Node, Reply};
use crate::error::{Error, RequestError};
use crate::io::{RaftStore, Transport};
use crate::state_machine::{ApplyContext, StateMachine};
use protobuf::Message as PbMessage;
use raft::eraftpb::{ConfChange, ConfChangeSingle, ConfChangeV2, Entry, EntryType, Snapshot};
use raft::Ready;

/// Loads a snapshot envelope into `sm`; returns the log time and the member registry it
/// carries. A panic of the state machine's `restore` is a restore error (fatal, naming the
/// panic), not a crash.
pub(super) fn restore_state<M: StateMachine>(
    sm: &mut M,
    data: &[u8],
) -> Result<(u64, Registry), Error> {
    let env = payload::decode_snapshot_envelope(data).map_err(Error::Restore)?;
    guard::catch(|| sm.restore(env.state))
        .map_err(|m| Error::Restore(format!("the state machine panicked: {m}")))?
        .map_err(Error::Restore)?;
    Ok((env.log_time_ms, env.registry))
}

impl<S: RaftStore, M: StateMachine> Node<S, M> {
    pub(super) fn run_ready_loop(&mut self, transport: &mut dyn Transport) -> Result<(), Error> {
        while self.raw.has_ready() {
            let rd = self.raw.ready();
            self.handle_ready(rd, transport)?;
        }
        // Derived state (the engine's published view) is a function of the log too: a panic
        // here would repeat on every replay, so it is a poisoned entry like one in `apply`.
        let (sm, index) = (&mut self.sm, self.applied_index);
        if let Err(message) = guard::catch(|| sm.applied_up_to(index)) {
            return Err(self.poison(ApplyPanic {
                index,
                term: self.applied_term,
                during: "publishing derived state after".into(),
                command_count: 0,
                commands: Vec::new(),
                message,
            }));
        }
        Ok(())
    }

    /// Stops the node for good on a state machine panic: remembers it (every later poll
    /// returns it) and returns the fatal error.
    fn poison(&mut self, panic: ApplyPanic) -> Error {
        let panic = Box::new(panic);
        self.poisoned = Some(panic.clone());
        Error::ApplyPanicked(panic)
    }

    /// One Ready. Only a leader's Ready has `messages` (raft-rs puts a follower's or
    /// candidate's in `persisted_messages`): they leave before the write, so the followers
    /// write while this node does. The write is handed to the store, which may queue it for
    /// the persistence worker (`RaftStore::write_async`): then the Ready's
    /// `persisted_messages` wait in the node until `Input::Persisted` reports it durable,
    /// and the node goes on (raft-rs `advance_append_async`) — see `persist`.
    fn handle_ready(&mut self, mut rd: Ready, transport: &mut dyn Transport) -> Result<(), Error> {
        super::send_all(transport, rd.take_messages());
        // A received snapshot is installed synchronously, after every queued write (the
        // store orders it behind them); so is the rest of its Ready.
        let installed = !rd.snapshot().is_empty();
        if installed {
            self.install_snapshot(rd.snapshot())?;
        }
        self.apply_entries(rd.take_committed_entries())?;
        for rs in rd.take_read_states() {
            self.reads.on_read_state(&rs.request_ctx, rs.index);
        }
        let number = rd.number();
        let written = self.write_ready(&rd, installed)?;
        let held = rd.take_persisted_messages();
        self.raw.advance_append_async(rd);
        self.ready_written(number, written, held, transport);
        self.raw.advance_apply();
        Ok(())
    }

    fn install_snapshot(&mut self, snap: &Snapshot) -> Result<(), Error> {
        let meta = snap.get_metadata();
        (self.applied_log_time_ms, self.members) = restore_state(&mut self.sm, snap.get_data())?;
        self.raw.mut_store().apply_snapshot(snap)?;
        self.applied_index = meta.index;
        self.applied_term = meta.term;
        self.snapshot_index = meta.index;
        self.log_bytes_since_snapshot = 0;
        self.conf_state = meta.get_conf_state().clone();
        self.snapshot_conf = self.conf_state.clone();
        let mut failed = Vec::new();
        self.proposals.fail_up_to(meta.index, &mut failed);
        self.out.fail(failed);
        Ok(())
    }

    fn apply_entries(&mut self, entries: Vec<Entry>) -> Result<(), Error> {
        for e in &entries {
            self.apply_entry(e)?;
        }
        Ok(())
    }

    fn apply_entry(&mut self, e: &Entry) -> Result<(), Error> {
        let mut failed = Vec::new();
        let waiter = self.proposals.on_committed(e.index, e.term, &mut failed);
        self.out.fail(failed);
        match e.get_entry_type() {
            // An empty normal entry: a new leader's no-op, or a conf change raft refused.
            EntryType::EntryNormal if e.get_data().is_empty() => self.refused(waiter),
            EntryType::EntryNormal if payload::is_system(e.get_data()) => self.apply_system(e)?,
            EntryType::EntryNormal => self.apply_batch(e, waiter)?,
            EntryType::EntryConfChange | EntryType::EntryConfChangeV2 => {
                self.apply_conf_change(e, waiter)?
            }
        }
        self.applied_index = e.index;
        self.applied_term = e.term;
        self.log_bytes_since_snapshot =
            (self.log_bytes_since_snapshot).saturating_add(e.get_data().len() as u64);
        Ok(())
    }

    /// A system entry changes the member registry only (no waiter: the node proposed it
    /// itself; no state machine, no log time).
    fn apply_system(&mut self, e: &Entry) -> Result<(), Error> {
        let entry = payload::decode_system(e.get_data()).map_err(|reason| Error::CorruptEntry {
            index: e.index,
            reason,
        })?;
        self.members.apply(&entry);
        Ok(())
    }

    /// Keeps the member registry in step with an applied conf change: a removed member's
    /// record goes (an id added back starts unregistered), an added one gets a record.
    fn conf_change_members(&mut self, cc: &ConfChangeV2) {
        use raft::eraftpb::ConfChangeType;
        for single in cc.get_changes() {
            match single.get_change_type() {
                ConfChangeType::RemoveNode => self.members.removed(single.node_id),
                ConfChangeType::AddLearnerNode | ConfChangeType::AddNode => {
                    self.members.added(single.node_id, None, None)
                }
            }
        }
    }

    /// Remembers the membership request named in an applied conf change's context, so a
    /// retry with its `request_id` is answered without a second change (on any later
    /// leader too). An undecodable context names no request (the same on every replica).
    fn remember_request(&mut self, e: &Entry) {
        if let Ok(ChangeContext {
            request: Some(request),
        }) = ChangeContext::decode(e.get_context())
        {
            self.members.remember(request);
        }
    }

    fn refused(&mut self, waiter: Option<Waiter>) {
        if let Some(Waiter::Conf(id)) = waiter {
            let err =
                RequestError::ConfChangeRejected("raft refused: another change pending".into());
            self.out.reply(id, Err(err));
        }
    }

    fn apply_batch(&mut self, e: &Entry, waiter: Option<Waiter>) -> Result<(), Error> {
        let corrupt = |reason| Error::CorruptEntry {
            index: e.index,
            reason,
        };
        let batch = payload::decode_batch(e.get_data()).map_err(corrupt)?;
        // Clamped so time never goes back, even across leaders with skewed clocks.
        self.applied_log_time_ms = self.applied_log_time_ms.max(batch.log_time_ms);
        let ctx = ApplyContext {
            index: e.index,
            term: e.term,
            log_time_ms: self.applied_log_time_ms,
        };
        let sm = &mut self.sm;
        let applied = guard::catch(|| {
            #[cfg(feature = "poison-test")]
            guard::poison_test(&*sm, &batch.commands);
            sm.apply(&ctx, &batch.commands)
        });
        let outcomes = match applied {
            Ok(outcomes) => outcomes,
            Err(message) => {
                let commands = batch.commands.iter().take(POISON_COMMANDS_NAMED_MAX);
                let commands = commands.map(|c| guard::bounded(&self.sm.describe(c)));
                let panic = ApplyPanic {
                    index: e.index,
                    term: e.term,
                    during: "applying".into(),
                    command_count: batch.commands.len(),
                    commands: commands.collect(),
                    message,
                };
                return Err(self.poison(panic));
            }
        };
        match waiter {
            Some(Waiter::Batch(ids)) if ids.len() == outcomes.len() => {
                for (id, outcome) in ids.into_iter().zip(outcomes) {
                    let reply = Reply::Applied {
                        index: e.index,
                        outcome,
                    };
                    self.out.reply(id, Ok(reply));
                }
            }
            Some(w) => self.fail_waiter(w, "state machine returned a wrong outcome count"),
            None => {}
        }
        Ok(())
    }

    fn fail_waiter(&mut self, waiter: Waiter, why: &str) {
        let ids = match waiter {
            Waiter::Batch(ids) => ids,
            Waiter::Conf(id) => vec![id],
        };
        for id in ids {
            self.out.reply(id, Err(RequestError::Internal(why.into())));
        }
    }

    fn apply_conf_change(&mut self, e: &Entry, waiter: Option<Waiter>) -> Result<(), Error> {
        let cc = decode_conf_change(e)?;
        // Refusal is deterministic (same configuration on every replica): answer, go on.
        let result = match self.raw.apply_conf_change(&cc) {
            Ok(cs) => {
                self.conf_state = cs.clone();
                self.conf_change_members(&cc);
                self.remember_request(e);
                // The commit index is normally not synced (LightReady's `set_commit`) and is
                // re-learnt from a leader after a crash. A configuration is the exception:
                // a node restarts with the configuration of what it knows to be committed,
                // so if every voter of the new configuration forgot that this entry was
                // committed, they would all wait for votes of the old one (whose removed
                // members may be gone for good): no leader, ever (simulator seed 3857).
                // So the commit index covering an applied conf change is made durable
                // before anyone is told the change happened.
                let store = self.raw.mut_store();
                let mut hs = raft::Storage::initial_state(&*store)?.hard_state;
                if hs.commit < e.index {
                    hs.commit = e.index;
                    store.persist(&[], Some(&hs))?;
                }
                Ok(Reply::Membership(cs))
            }
            Err(err) => Err(RequestError::ConfChangeRejected(err.to_string())),
        };
        match waiter {
            Some(Waiter::Conf(id)) => self.out.reply(id, result),
            Some(w) => self.fail_waiter(w, "batch slot holds a conf change"),
            None => {}
        }
        Ok(())
    }
}

/// The registrations and removals in log entries not applied yet (after a restart a node
/// re-applies only up to the commit index it knows, which may lag far behind its log): they
/// are evidence of who took part even before they apply again. Undecodable entries are
/// skipped here (applying them stops the node anyway).
pub(super) fn registry_of_log(entries: &[Entry]) -> Registry {
    use raft::eraftpb::ConfChangeType;
    let mut registry = Registry::default();
    for e in entries {
        match e.get_entry_type() {
            EntryType::EntryNormal if payload::is_system(e.get_data()) => {
                if let Ok(entry) = payload::decode_system(e.get_data()) {
                    registry.apply(&entry);
                }
            }
            EntryType::EntryNormal => {}
            EntryType::EntryConfChange | EntryType::EntryConfChangeV2 => {
                let Ok(cc) = decode_conf_change(e) else {
                    continue;
                };
                for single in cc.get_changes() {
                    if single.get_change_type() == ConfChangeType::RemoveNode {
                        registry.removed(single.node_id);
                    }
                }
            }
        }
    }
    registry
}

fn decode_conf_change(e: &Entry) -> Result<ConfChangeV2, Error> {
    let corrupt = |err: protobuf::ProtobufError| Error::CorruptEntry {
        index: e.index,
        reason: err.to_string(),
    };
    if e.get_entry_type() == EntryType::EntryConfChange {
        // Legacy v1 (never proposed by this crate): the same single change as a v2.
        let cc = ConfChange::parse_from_bytes(e.get_data()).map_err(corrupt)?;
        let single = ConfChangeSingle {
            change_type: cc.change_type,
            node_id: cc.node_id,
            ..Default::default()
        };
        return Ok(ConfChangeV2 {
            changes: vec![single].into(),
            ..Default::default()
        });
    }
    ConfChangeV2::parse_from_bytes(e.get_data()).map_err(corrupt)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::node::members::SystemEntry;
    use raft::eraftpb::{ConfChangeType, ConfChangeV2};

    fn entry(ty: EntryType, data: Vec<u8>) -> Entry {
        let mut e = Entry::default();
        e.set_entry_type(ty);
        e.data = data.into();
        e
    }

    fn register(node: u64, incarnation: u64) -> Entry {
        let sys = SystemEntry::RegisterIncarnation { node, incarnation };
        entry(EntryType::EntryNormal, payload::encode_system(&sys))
    }

    #[test]
    fn the_unapplied_log_tells_who_registered_and_who_was_removed() {
        let remove = ConfChangeV2 {
            changes: vec![ConfChangeSingle {
                change_type: ConfChangeType::RemoveNode,
                node_id: 2,
                ..Default::default()
            }]
            .into(),
            ..Default::default()
        };
        let log = [
            register(2, 5),
            entry(
                EntryType::EntryNormal,
                payload::encode_batch(1, std::iter::empty()),
            ),
            register(3, 7),
            register(3, 8),
            entry(
                EntryType::EntryConfChangeV2,
                remove.write_to_bytes().unwrap(),
            ),
            entry(EntryType::EntryNormal, vec![3, 0xff]),
        ];
        let registry = registry_of_log(&log);
        assert_eq!(
            registry.incarnation(3),
            Some(7),
            "the first registration wins"
        );
        assert_eq!(registry.incarnation(2), None, "removed after it registered");
    }
}
