//! What operators reconstruct a fault from: the node task compares each [`Summary`] it
//! publishes with the previous one and logs, at INFO with the term and the indexes, every
//! leader change (an election won here included), membership change and advance of the
//! snapshot point, and counts them for the metrics (`metrics::node`). Comparing published
//! summaries keeps this out of the Raft core: a change is seen once, after the poll that
//! made it.

use super::driver::Summary;
use crate::metrics::NodeCounters;
use raft::StateRole;

/// Logs and counts what changed from `before` to `after`.
pub fn changes(before: &Summary, after: &Summary, counters: &NodeCounters) {
    // The first summary replaces the placeholder published before the node started.
    let first = before.term == 0 && before.applied_index == 0 && before.voters.is_empty();
    if !first {
        // Entries a snapshot installed were not applied one by one: not counted.
        let from = before
            .applied_index
            .max(after.snapshot_index.min(after.applied_index));
        counters
            .entries_applied
            .inc_by(after.applied_index.saturating_sub(from));
    }
    if after.leader_id != before.leader_id {
        leader_changed(before, after, counters, first);
    } else if after.term > before.term && !first {
        tracing::info!(
            term = after.term,
            previous_term = before.term,
            role = ?after.role,
            commit_index = after.commit_index,
            "term advanced: an election is under way"
        );
    }
    if (after.voters != before.voters || after.learners != before.learners) && !first {
        tracing::info!(
            term = after.term,
            applied_index = after.applied_index,
            voters = ?after.voters,
            learners = ?after.learners,
            previous_voters = ?before.voters,
            previous_learners = ?before.learners,
            "membership changed"
        );
    }
    if after.snapshot_index > before.snapshot_index {
        if !first {
            counters.snapshots.inc();
        }
        tracing::info!(
            term = after.term,
            snapshot_index = after.snapshot_index,
            applied_index = after.applied_index,
            "snapshot point advanced"
        );
    }
}

fn leader_changed(before: &Summary, after: &Summary, counters: &NodeCounters, first: bool) {
    if !first || after.leader_id != 0 {
        counters.leader_changes.inc();
    }
    if after.role == StateRole::Leader && after.leader_id == after.id {
        counters.elections_won.inc();
        tracing::info!(
            term = after.term,
            leader = after.leader_id,
            previous_leader = before.leader_id,
            commit_index = after.commit_index,
            last_index = after.last_index,
            "this node was elected leader"
        );
    } else if after.leader_id == 0 {
        tracing::info!(
            term = after.term,
            previous_leader = before.leader_id,
            commit_index = after.commit_index,
            "no leader known"
        );
    } else {
        tracing::info!(
            term = after.term,
            leader = after.leader_id,
            previous_leader = before.leader_id,
            commit_index = after.commit_index,
            "leader changed"
        );
    }
}
