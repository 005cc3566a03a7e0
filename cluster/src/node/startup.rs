//! How a node with an empty Raft store may start, and how a node that lost acknowledged
//! entries is stopped: pure functions, no I/O, for the runtime and the simulator alike.
//!
//! A node whose store is empty either never took part in the cluster (a founding node's
//! first start, a new member) or lost its data directory. Only the cluster can tell which:
//! before bootstrapping (`init = true`) or starting empty, the runtime asks the configured
//! peers' `Status` and [`decide`] reads their answers. A node that lost its data must never
//! vote or bootstrap again under its old id: it could elect a stale leader and lose
//! acknowledged writes (issue 13). The documented way back is [`REPLACE_PROCEDURE`].

use super::BOOTSTRAP_INDEX;
use raft::eraftpb::{Message, MessageType};
use std::collections::BTreeMap;

/// What the operator must do with a node that lost its data (docs/operations.md).
pub const REPLACE_PROCEDURE: &str = "replace it under the documented procedure \
     (docs/operations.md, \"Replacing a node that lost its data\"): on the cluster run \
     `ninety cluster remove-member --id N`, then `ninety cluster add-member --id N --addr \
     HOST:PORT --peer-addr HOST:PEER_PORT --learner` to add it back as a new learner; start it \
     on an empty data directory with `ninety node --config FILE --join` (or `join = true`: \
     start empty, never bootstrap, wait to be added); once it has caught up, `ninety cluster \
     promote-member --id N`";

/// One configured peer's answer to this node's `Status` call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PeerAnswer {
    /// It answered with its state.
    Status(PeerView),
    /// It answered that this node is not a member (it knows nothing of this node).
    NotMember,
}

/// What a peer's `Status` says that matters here.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PeerView {
    /// Its last log index (a snapshot counts: it is at least the snapshot's index).
    pub last_index: u64,
    /// The incarnation its member registry records for the asking node.
    pub recorded_incarnation: Option<u64>,
    /// The voters of its configuration.
    pub voters: Vec<u64>,
    /// It is still deciding how to start itself (empty store, no log).
    pub starting: bool,
}

/// What this node knows before asking.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StartFacts {
    pub me: u64,
    /// This node's incarnation (its IDENTITY file).
    pub incarnation: u64,
    /// `init = true` and not `join`: it may found the cluster.
    pub may_bootstrap: bool,
    /// The founding voters of the config (`initial_voters`).
    pub voters: Vec<u64>,
}

/// What an empty node does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StartDecision {
    /// Bootstrap the founding configuration (the cluster does not exist yet).
    Bootstrap,
    /// Start with an empty store and never bootstrap: wait for a leader's snapshot.
    StartEmpty,
    /// Not enough answers yet: ask again. Names the voters not heard from.
    Wait { waiting_for: Vec<u64> },
    /// Never start: this node lost data the cluster counts on. The message names the node,
    /// the evidence and the procedure.
    Refuse(String),
}

/// Decides how a node with an empty store starts, from the answers of its configured peers
/// so far (a peer missing from `answers` did not answer).
///
/// - A peer records another incarnation for this node, or a peer has a log past the
///   bootstrap index, lists this node as a voter and records an incarnation for it: the
///   node took part and lost its data → [`StartDecision::Refuse`].
/// - A peer has a log past the bootstrap index (the cluster exists) and no record of this
///   node: it never voted or acknowledged anything → [`StartDecision::StartEmpty`].
/// - Not allowed to bootstrap: start empty once any peer answered.
/// - Bootstrap when this node is the only founding voter, or when a majority of the
///   founding voters (itself included) answered and none is past the bootstrap index.
pub fn decide(facts: &StartFacts, answers: &BTreeMap<u64, PeerAnswer>) -> StartDecision {
    let me = facts.me;
    let mut exists = false;
    for (&peer, answer) in answers {
        let PeerAnswer::Status(view) = answer else {
            // It has a configuration without this node: the cluster exists.
            exists = true;
            continue;
        };
        let past_bootstrap = view.last_index > BOOTSTRAP_INDEX;
        exists |= past_bootstrap;
        if let Some(recorded) = view.recorded_incarnation {
            if recorded != facts.incarnation {
                return StartDecision::Refuse(format!(
                    "node {me} has an empty data directory, but node {peer} records it with \
                     incarnation {recorded:016x}, not this one ({:016x}): node {me} lost the \
                     data it had; {REPLACE_PROCEDURE}",
                    facts.incarnation
                ));
            }
            if past_bootstrap && view.voters.contains(&me) {
                return StartDecision::Refuse(format!(
                    "node {me} has an empty store, but it is a registered voter of the \
                     cluster, whose log is past index {} on node {peer}: node {me} lost the \
                     data it had acknowledged; {REPLACE_PROCEDURE}",
                    view.last_index
                ));
            }
        }
    }
    if exists || (!facts.may_bootstrap && !answers.is_empty()) {
        return StartDecision::StartEmpty;
    }
    let silent = |v: &u64| *v != me && !answers.contains_key(v);
    if !facts.may_bootstrap {
        let waiting_for = facts.voters.iter().copied().filter(silent).collect();
        return StartDecision::Wait { waiting_for };
    }
    if facts.voters == [me] {
        return StartDecision::Bootstrap;
    }
    let heard = facts.voters.iter().filter(|v| !silent(v)).count();
    if heard * 2 > facts.voters.len() {
        return StartDecision::Bootstrap;
    }
    StartDecision::Wait {
        waiting_for: facts.voters.iter().copied().filter(silent).collect(),
    }
}

/// A leader's heartbeat carries `min(what this follower acknowledged, commit)`: a commit
/// index past this node's last index means the node lost entries it had acknowledged
/// (raft-rs would panic on it: `to_commit N is out of range [last_index M]`). Returns the
/// reason to stop, naming the procedure; `None` for every other message.
pub fn heartbeat_shows_lost_data(
    me: u64,
    term: u64,
    last_index: u64,
    m: &Message,
) -> Option<String> {
    let is_heartbeat = m.get_msg_type() == MessageType::MsgHeartbeat;
    if !is_heartbeat || m.term < term || m.commit <= last_index {
        return None;
    }
    Some(format!(
        "node {me} lost log entries it had acknowledged: leader {} says entries up to {} are \
         replicated here, but this node's log ends at {last_index} (its data directory was \
         emptied or replaced); {REPLACE_PROCEDURE}",
        m.from, m.commit
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn facts(may_bootstrap: bool) -> StartFacts {
        StartFacts {
            me: 3,
            incarnation: 7,
            may_bootstrap,
            voters: vec![1, 2, 3],
        }
    }

    fn view(last_index: u64, recorded: Option<u64>) -> PeerAnswer {
        PeerAnswer::Status(PeerView {
            last_index,
            recorded_incarnation: recorded,
            voters: vec![1, 2, 3],
            starting: false,
        })
    }

    fn answers(list: &[(u64, PeerAnswer)]) -> BTreeMap<u64, PeerAnswer> {
        list.iter().cloned().collect()
    }

    #[test]
    fn a_wiped_registered_voter_is_refused() {
        // The Jepsen sequence: node 2 (stale) is up, node 3 was registered with another
        // incarnation.
        let d = decide(&facts(true), &answers(&[(2, view(1874, Some(5)))]));
        let StartDecision::Refuse(why) = d else {
            panic!("{d:?}")
        };
        assert!(
            why.contains("node 3") && why.contains("remove-member"),
            "{why}"
        );
        // Same incarnation (only the store was emptied), a voter, the cluster past bootstrap.
        let d = decide(&facts(false), &answers(&[(1, view(50, Some(7)))]));
        assert!(matches!(d, StartDecision::Refuse(_)), "{d:?}");
        // Another incarnation refuses even as a learner or on a young cluster.
        let d = decide(&facts(false), &answers(&[(1, view(1, Some(6)))]));
        assert!(matches!(d, StartDecision::Refuse(_)), "{d:?}");
    }

    #[test]
    fn an_existing_cluster_without_a_record_is_joined_empty() {
        let d = decide(&facts(true), &answers(&[(1, view(40, None))]));
        assert_eq!(d, StartDecision::StartEmpty);
        let d = decide(&facts(false), &answers(&[(1, PeerAnswer::NotMember)]));
        assert_eq!(d, StartDecision::StartEmpty);
        let d = decide(&facts(false), &answers(&[]));
        assert_eq!(
            d,
            StartDecision::Wait {
                waiting_for: vec![1, 2]
            }
        );
    }

    #[test]
    fn bootstrap_needs_a_majority_of_fresh_voters() {
        let d = decide(&facts(true), &answers(&[]));
        assert_eq!(
            d,
            StartDecision::Wait {
                waiting_for: vec![1, 2]
            }
        );
        let d = decide(&facts(true), &answers(&[(1, view(0, None))]));
        assert_eq!(d, StartDecision::Bootstrap);
        let d = decide(
            &facts(true),
            &answers(&[(1, view(1, None)), (2, view(1, None))]),
        );
        assert_eq!(d, StartDecision::Bootstrap);
        let single = StartFacts {
            voters: vec![3],
            ..facts(true)
        };
        assert_eq!(decide(&single, &answers(&[])), StartDecision::Bootstrap);
    }

    #[test]
    fn a_heartbeat_past_the_log_stops_the_node() {
        let mut m = Message::default();
        m.set_msg_type(MessageType::MsgHeartbeat);
        m.from = 2;
        m.term = 5;
        m.commit = 2140;
        let why = heartbeat_shows_lost_data(3, 5, 1, &m).expect("stops");
        assert!(
            why.contains("2140") && why.contains("remove-member"),
            "{why}"
        );
        assert_eq!(heartbeat_shows_lost_data(3, 6, 1, &m), None, "stale term");
        assert_eq!(heartbeat_shows_lost_data(3, 5, 2140, &m), None);
        m.set_msg_type(MessageType::MsgAppend);
        assert_eq!(heartbeat_shows_lost_data(3, 5, 1, &m), None);
    }
}
