//! Membership changes: validation against the current configuration and the single-step
//! `ConfChangeV2` for each. One change at a time, so no joint consensus is needed: adding a
//! learner, promoting it, or removing one member each keeps majorities overlapping.
//!
//! **The leader never removes itself.** raft-rs 0.7 lets a leader apply its own removal and
//! then stay leader of a group it is not in (`Raft::post_conf_change` returns early for that
//! case, "TODO: step down"): it drops every proposal, yet keeps sending heartbeats, so the
//! remaining voters never time out and never elect anyone else; check-quorum does not end it
//! either, since the followers keep answering. The cluster stalls until that process stops.
//! So removing the proposing leader is refused here, naming `transfer-leader`; the Admin API
//! moves leadership first and sends the removal to the new leader (`server::admin`), and a
//! node that applies a configuration without itself anyway steps down (`Node::removed`).

use crate::error::RequestError;
use raft::eraftpb::{
    ConfChangeSingle, ConfChangeTransition, ConfChangeType, ConfChangeV2, ConfState,
};

/// One membership change, requested by an operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MembershipChange {
    /// Adds a non-voting member that receives the log (to catch up before voting).
    AddLearner(u64),
    /// Turns a caught-up learner into a voter.
    PromoteVoter(u64),
    /// Removes a voter or learner.
    Remove(u64),
}

/// Whether configuration `cs` names node `id` in any role (voter, learner, outgoing voter,
/// learner to be).
pub fn names(cs: &ConfState, id: u64) -> bool {
    [
        &cs.voters,
        &cs.learners,
        &cs.voters_outgoing,
        &cs.learners_next,
    ]
    .into_iter()
    .any(|ids| ids.contains(&id))
}

/// Whether node `id`, whose applied configuration is `cs`, was removed from the cluster.
/// A node only ever receives a configuration as a member (the founders' bootstrap names
/// them; a joining node's first snapshot names it, or raft-rs ignores it), so a known
/// configuration that does not name the node means it was a member and was removed. An
/// empty one is a node still waiting to be added.
pub fn is_removed(cs: &ConfState, id: u64) -> bool {
    let known = !(cs.voters.is_empty()
        && cs.learners.is_empty()
        && cs.voters_outgoing.is_empty()
        && cs.learners_next.is_empty());
    known && !names(cs, id)
}

fn reject(msg: String) -> RequestError {
    RequestError::ConfChangeRejected(msg)
}

/// The refusal of a change that would remove the proposing leader `id`.
pub fn leader_removal_refused(id: u64) -> RequestError {
    reject(format!(
        "{id} is the leader: move leadership first (`ninety cluster transfer-leader`, \
         Admin.TransferLeader), then remove it from the new leader; Admin.RemoveMember and \
         `ninety cluster remove-member` do both"
    ))
}

/// Checks `change` against `conf`, as proposed by the leader `leader`, and builds the conf
/// change to propose.
pub fn build(
    change: MembershipChange,
    conf: &ConfState,
    leader: u64,
) -> Result<ConfChangeV2, RequestError> {
    let is_voter = |id: u64| conf.voters.contains(&id);
    let is_learner = |id: u64| conf.learners.contains(&id);
    let (ty, id) = match change {
        MembershipChange::AddLearner(id) if is_voter(id) || is_learner(id) => {
            return Err(reject(format!("{id} is already a member")))
        }
        MembershipChange::AddLearner(id) => (ConfChangeType::AddLearnerNode, id),
        MembershipChange::PromoteVoter(id) if !is_learner(id) => {
            return Err(reject(format!("{id} is not a learner")))
        }
        MembershipChange::PromoteVoter(id) => (ConfChangeType::AddNode, id),
        MembershipChange::Remove(id) if is_voter(id) && conf.voters.len() == 1 => {
            return Err(reject(format!("{id} is the last voter")))
        }
        MembershipChange::Remove(id) if !is_voter(id) && !is_learner(id) => {
            return Err(reject(format!("{id} is not a member")))
        }
        MembershipChange::Remove(id) if id == leader => return Err(leader_removal_refused(id)),
        MembershipChange::Remove(id) => (ConfChangeType::RemoveNode, id),
    };
    if id == 0 {
        return Err(reject("node id 0 is invalid".into()));
    }
    let single = ConfChangeSingle {
        change_type: ty,
        node_id: id,
        ..Default::default()
    };
    Ok(ConfChangeV2 {
        // Auto with one change: raft applies it directly, without a joint configuration.
        transition: ConfChangeTransition::Auto,
        changes: vec![single].into(),
        ..Default::default()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validation() {
        let conf = ConfState {
            voters: vec![1, 2],
            learners: vec![3],
            ..Default::default()
        };
        let build = |change| build(change, &conf, 1);
        assert!(build(MembershipChange::AddLearner(2)).is_err());
        assert!(build(MembershipChange::AddLearner(4)).is_ok());
        assert!(build(MembershipChange::PromoteVoter(2)).is_err());
        assert!(build(MembershipChange::PromoteVoter(3)).is_ok());
        assert!(build(MembershipChange::Remove(9)).is_err());
        assert!(build(MembershipChange::Remove(3)).is_ok());
        assert!(build(MembershipChange::Remove(2)).is_ok());
        let single = ConfState {
            voters: vec![1],
            ..Default::default()
        };
        assert!(super::build(MembershipChange::Remove(1), &single, 1).is_err());
    }

    #[test]
    fn a_node_is_removed_once_a_known_configuration_leaves_it_out() {
        let conf = |voters: Vec<u64>, learners: Vec<u64>| ConfState {
            voters,
            learners,
            ..Default::default()
        };
        assert!(!is_removed(&ConfState::default(), 4), "waiting to be added");
        assert!(!is_removed(&conf(vec![1, 2], vec![4]), 4), "a learner");
        assert!(!is_removed(&conf(vec![1, 4], vec![]), 4), "a voter");
        assert!(is_removed(&conf(vec![1, 2, 3], vec![]), 4), "removed");
        let leaving = ConfState {
            voters: vec![1, 2],
            voters_outgoing: vec![1, 2, 4],
            ..Default::default()
        };
        assert!(!is_removed(&leaving, 4), "still an outgoing voter");
    }

    /// The stall of issue 13: a leader that applies its own removal keeps leading a group
    /// it is not in. Refused, naming the way out.
    #[test]
    fn the_leader_is_never_removed_by_itself() {
        let conf = ConfState {
            voters: vec![1, 2, 3],
            ..Default::default()
        };
        let Err(RequestError::ConfChangeRejected(why)) =
            build(MembershipChange::Remove(2), &conf, 2)
        else {
            panic!("removing the leader itself was accepted");
        };
        assert!(why.contains("transfer-leader"), "{why}");
        assert!(build(MembershipChange::Remove(2), &conf, 1).is_ok());
    }
}
