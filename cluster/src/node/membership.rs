//! Membership changes: validation against the current configuration and the single-step
//! `ConfChangeV2` for each. One change at a time, so no joint consensus is needed: adding a
//! learner, promoting it, or removing one member each keeps majorities overlapping.

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

fn reject(msg: String) -> RequestError {
    RequestError::ConfChangeRejected(msg)
}

/// Checks `change` against `conf` and builds the conf change to propose.
pub fn build(change: MembershipChange, conf: &ConfState) -> Result<ConfChangeV2, RequestError> {
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
        assert!(build(MembershipChange::AddLearner(2), &conf).is_err());
        assert!(build(MembershipChange::AddLearner(4), &conf).is_ok());
        assert!(build(MembershipChange::PromoteVoter(2), &conf).is_err());
        assert!(build(MembershipChange::PromoteVoter(3), &conf).is_ok());
        assert!(build(MembershipChange::Remove(9), &conf).is_err());
        assert!(build(MembershipChange::Remove(3), &conf).is_ok());
        let single = ConfState {
            voters: vec![1],
            ..Default::default()
        };
        assert!(build(MembershipChange::Remove(1), &single).is_err());
    }
}
