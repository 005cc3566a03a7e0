//! Integration tests of the sans-I/O node core: an in-process, single-threaded cluster whose
//! messages travel through in-memory queues, with partitions as dropped messages.

mod harness {
    use ninety_cluster::eraftpb::Message;
    use ninety_cluster::node::{bootstrap, Input, Node, NodeConfig, Reply, SnapshotJob};
    use ninety_cluster::test_support::{discard_logger, KvMachine, ManualClock};
    use ninety_cluster::{RaftStore, RequestError, RequestId, StateMachine};
    use std::collections::{BTreeMap, BTreeSet, VecDeque};

    pub type Outcome = Result<Reply, RequestError>;

    pub struct Cluster<S: RaftStore> {
        pub nodes: BTreeMap<u64, Node<S, KvMachine>>,
        pub clock: ManualClock,
        queue: VecDeque<(Message, bool)>,
        /// Nodes cut off from everyone.
        pub cut: BTreeSet<u64>,
        pub outcomes: BTreeMap<RequestId, Outcome>,
        next_id: RequestId,
        pub snapshots_sent: usize,
        /// Nodes whose poll failed (fatal: they are not polled again), with the error.
        pub fatal: BTreeMap<u64, ninety_cluster::Error>,
        /// The state machine new nodes start with (a "fixed build" disables its panics).
        pub machine: KvMachine,
        /// Snapshot jobs handed out (`NodeConfig::background_snapshots`), not written yet.
        pub jobs: Vec<(u64, SnapshotJob)>,
        /// Write every job at the start of the next round (a writer that keeps up).
        pub auto_write: bool,
    }

    pub fn config(id: u64) -> NodeConfig {
        NodeConfig::new(id)
    }

    impl<S: RaftStore> Cluster<S> {
        /// A founding cluster over the given stores (bootstrapped if fresh).
        pub fn new(stores: Vec<(u64, S)>, cfg: impl Fn(u64) -> NodeConfig) -> Self {
            Self::with_machine(stores, cfg, KvMachine::default())
        }

        /// A founding cluster whose nodes start with `machine`.
        pub fn with_machine(
            stores: Vec<(u64, S)>,
            cfg: impl Fn(u64) -> NodeConfig,
            machine: KvMachine,
        ) -> Self {
            let voters: Vec<u64> = stores.iter().map(|(id, _)| *id).collect();
            let mut c = Cluster {
                nodes: BTreeMap::new(),
                clock: ManualClock::new(1_000_000),
                queue: VecDeque::new(),
                cut: BTreeSet::new(),
                outcomes: BTreeMap::new(),
                next_id: 1,
                snapshots_sent: 0,
                fatal: BTreeMap::new(),
                machine,
                jobs: Vec::new(),
                auto_write: false,
            };
            for (id, mut store) in stores {
                if store.last_index().unwrap() == 0 && !store.initial_state().unwrap().initialized()
                {
                    bootstrap(&mut store, &voters, &KvMachine::default()).unwrap();
                }
                c.add_node(id, store, cfg(id));
            }
            c
        }

        pub fn add_node(&mut self, id: u64, store: S, cfg: NodeConfig) {
            let node = Node::new(cfg, store, self.machine.clone(), &discard_logger()).unwrap();
            self.nodes.insert(id, node);
        }

        fn poll(&mut self, id: u64) {
            let Some(node) = self
                .nodes
                .get_mut(&id)
                .filter(|_| !self.fatal.contains_key(&id))
            else {
                return;
            };
            let out = match node.poll(&self.clock) {
                Ok(out) => out,
                Err(e) => {
                    self.fatal.insert(id, e);
                    return;
                }
            };
            self.queue
                .extend(out.messages.into_iter().map(|m| (m, false)));
            self.snapshots_sent += out.snapshots.len();
            self.queue
                .extend(out.snapshots.into_iter().map(|m| (m, true)));
            if let Some(job) = out.snapshot {
                assert!(
                    self.jobs.iter().all(|(n, _)| *n != id),
                    "a second snapshot job while one is in flight"
                );
                self.jobs.push((id, job));
            }
            for c in out.completions {
                assert!(
                    self.outcomes.insert(c.id, c.result).is_none(),
                    "completed twice"
                );
            }
        }

        fn deliver(&mut self, m: Message, is_snapshot: bool) {
            let (from, to) = (m.from, m.to);
            let dropped = self.cut.contains(&from) || self.cut.contains(&to);
            if let Some(node) = self.nodes.get_mut(&to).filter(|_| !dropped) {
                node.step(Input::Message(m));
            }
            if is_snapshot {
                // The transport reports every snapshot stream's result to the sender.
                let delivered = !dropped && self.nodes.contains_key(&to);
                if let Some(leader) = self.nodes.get_mut(&from) {
                    leader.step(Input::SnapshotStatus {
                        peer: to,
                        delivered,
                    });
                }
            }
        }

        /// The snapshot writer: encodes every pending job and reports it written (the
        /// node records it at its next poll).
        pub fn write_jobs(&mut self) {
            for (id, job) in std::mem::take(&mut self.jobs) {
                let snapshot = job.encode();
                if let Some(node) = self.nodes.get_mut(&id) {
                    node.step(Input::SnapshotWritten { snapshot });
                }
            }
        }

        /// Polls every node and delivers messages until the network is quiet.
        pub fn settle(&mut self) {
            for _ in 0..1000 {
                if !self.round() {
                    return;
                }
            }
            panic!("cluster did not settle");
        }

        /// One round: polls every node, then delivers what they sent; false when nothing
        /// was sent.
        pub fn round(&mut self) -> bool {
            if self.auto_write {
                self.write_jobs();
            }
            let ids: Vec<u64> = self.nodes.keys().copied().collect();
            for id in ids {
                self.poll(id);
            }
            if self.queue.is_empty() {
                return false;
            }
            while let Some((m, snap)) = self.queue.pop_front() {
                self.deliver(m, snap);
            }
            true
        }

        /// Advances the clock by one tick interval on every node, then settles.
        pub fn tick(&mut self, n: usize) {
            for _ in 0..n {
                self.clock.advance(100);
                for node in self.nodes.values_mut() {
                    node.step(Input::Tick);
                }
                self.settle();
            }
        }

        pub fn leader(&self) -> Option<u64> {
            let leaders: Vec<u64> = self
                .nodes
                .iter()
                .filter(|(id, n)| n.is_leader() && !self.cut.contains(id))
                .map(|(id, _)| *id)
                .collect();
            (leaders.len() == 1).then(|| leaders[0])
        }

        /// Ticks until exactly one reachable leader exists.
        pub fn elect(&mut self) -> u64 {
            for _ in 0..200 {
                if let Some(l) = self.leader() {
                    return l;
                }
                self.tick(1);
            }
            panic!("no leader elected");
        }

        pub fn input(&mut self, node: u64, make: impl FnOnce(RequestId) -> Input) -> RequestId {
            let id = self.next_id;
            self.next_id += 1;
            self.nodes.get_mut(&node).unwrap().step(make(id));
            id
        }

        pub fn propose(&mut self, node: u64, cmd: &str) -> RequestId {
            self.input(node, |id| Input::Propose {
                id,
                command: cmd.as_bytes().to_vec(),
            })
        }

        /// Steps one `ProposeMany` of `cmds`; returns the items' ids in order.
        pub fn propose_many(&mut self, node: u64, cmds: &[&str]) -> Vec<RequestId> {
            let ids: Vec<RequestId> = (0..cmds.len() as u64).map(|i| self.next_id + i).collect();
            self.next_id += cmds.len() as u64;
            let items = ids
                .iter()
                .zip(cmds)
                .map(|(id, c)| (*id, c.as_bytes().to_vec()))
                .collect();
            self.nodes
                .get_mut(&node)
                .unwrap()
                .step(Input::ProposeMany { items });
            ids
        }

        pub fn read(&mut self, node: u64, key: &str) -> RequestId {
            self.input(node, |id| Input::Read {
                id,
                query: key.as_bytes().to_vec(),
            })
        }

        pub fn outcome(&self, id: RequestId) -> &Outcome {
            self.outcomes.get(&id).expect("request not completed")
        }

        pub fn sm(&self, id: u64) -> &KvMachine {
            self.nodes[&id].state_machine()
        }

        /// Asserts every listed node applied the same log prefix and has the same state.
        pub fn assert_converged(&self, ids: &[u64]) {
            let first = self.nodes[&ids[0]].status().applied_index;
            let hash = self.sm(ids[0]).state_hash();
            for id in ids {
                assert_eq!(
                    self.nodes[id].status().applied_index,
                    first,
                    "node {id} applied"
                );
                assert_eq!(self.sm(*id).state_hash(), hash, "node {id} state hash");
            }
        }
    }
}

mod replication {
    use super::harness::{config, Cluster};
    use ninety_cluster::storage::MemStore;
    use ninety_cluster::{Reply, RequestError};

    pub fn mem_cluster() -> Cluster<MemStore> {
        Cluster::new((1..=3).map(|id| (id, MemStore::new())).collect(), config)
    }

    #[test]
    fn elects_commits_and_replicas_agree() {
        let mut c = mem_cluster();
        let leader = c.elect();
        let ids: Vec<_> = (0..100)
            .map(|i| c.propose(leader, &format!("k{i}=v{i}")))
            .collect();
        c.settle();
        let mut indexes = std::collections::BTreeSet::new();
        for id in &ids {
            match c.outcome(*id) {
                Ok(Reply::Applied { index, .. }) => indexes.insert(*index),
                other => panic!("proposal failed: {other:?}"),
            };
        }
        // Group commit: 100 commands stepped before one poll share a single entry.
        assert_eq!(indexes.len(), 1);
        c.tick(30); // heartbeats propagate the commit index; log-time entries get written
        c.assert_converged(&[1, 2, 3]);
        assert_eq!(c.sm(2).get("k42"), Some(&b"v42"[..]));
        assert!(
            c.sm(3).log_time_ms >= 1_000_000,
            "log time reaches the state machine"
        );
    }

    #[test]
    fn a_batch_is_admitted_whole_and_answered_per_item_in_order() {
        let mut c = Cluster::new((1..=3).map(|id| (id, MemStore::new())).collect(), |id| {
            let mut cfg = config(id);
            cfg.proposal_queue_max = 4;
            cfg
        });
        let leader = c.elect();
        let single = c.propose(leader, "a=0");
        // One slot taken: four more do not fit, so none of them is admitted.
        let refused = c.propose_many(leader, &["b=1", "b=2", "b=3", "b=4"]);
        // Three do (each with its own outcome, in order), and nothing is left for one more.
        let admitted = c.propose_many(leader, &["k=a", "k=b", "k"]);
        let late = c.propose(leader, "c=1");
        c.settle();
        for id in &refused {
            let err = c.outcome(*id).clone().unwrap_err();
            assert!(matches!(err, RequestError::Busy { .. }), "{err:?}");
        }
        assert!(matches!(c.outcome(late), Err(RequestError::Busy { .. })));
        assert!(c.outcome(single).is_ok());
        let outcomes: Vec<Vec<u8>> = admitted
            .iter()
            .map(|id| match c.outcome(*id) {
                Ok(Reply::Applied { outcome, .. }) => outcome.clone(),
                other => panic!("item failed: {other:?}"),
            })
            .collect();
        // `k=a` returns the previous value (none), `k=b` returns `a`, `k` reads `b`.
        assert_eq!(outcomes, vec![b"".to_vec(), b"a".to_vec(), b"b".to_vec()]);
        assert_eq!(c.sm(leader).get("b"), None);
        // Room again once they applied; a follower refuses a batch item by item.
        let again = c.propose_many(leader, &["b=5"]);
        let follower = (1..=3).find(|i| *i != leader).unwrap();
        let elsewhere = c.propose_many(follower, &["d=1", "d=2"]);
        c.settle();
        assert!(c.outcome(again[0]).is_ok());
        for id in elsewhere {
            assert_eq!(
                c.outcome(id).clone().unwrap_err(),
                RequestError::NotLeader {
                    leader: Some(leader)
                }
            );
        }
    }

    #[test]
    fn follower_refuses_proposals_with_leader_hint() {
        let mut c = mem_cluster();
        let leader = c.elect();
        let follower = (1..=3).find(|i| *i != leader).unwrap();
        let id = c.propose(follower, "a=1");
        c.settle();
        let err = c.outcome(id).clone().unwrap_err();
        assert!(err.is_retryable());
        assert_eq!(
            err,
            ninety_cluster::RequestError::NotLeader {
                leader: Some(leader)
            }
        );
    }

    #[test]
    fn leader_change_fails_in_flight_proposals_retryably() {
        let mut c = mem_cluster();
        let old = c.elect();
        c.cut.insert(old);
        let lost: Vec<_> = (0..5)
            .map(|i| c.propose(old, &format!("lost{i}=x")))
            .collect();
        c.settle();
        assert!(
            lost.iter().all(|id| !c.outcomes.contains_key(id)),
            "cannot commit yet"
        );
        let new = c.elect();
        assert_ne!(new, old);
        let kept = c.propose(new, "kept=1");
        c.tick(25); // check-quorum makes the cut-off leader step down
        c.cut.clear();
        c.tick(10);
        for id in &lost {
            let err = c.outcome(*id).clone().unwrap_err();
            assert!(err.is_retryable(), "{err:?}");
        }
        assert!(c.outcome(kept).is_ok());
        c.assert_converged(&[1, 2, 3]);
        assert_eq!(
            c.sm(old).get("lost0"),
            None,
            "overwritten entries never apply"
        );
    }
}

mod reads {
    use super::replication::mem_cluster;
    use ninety_cluster::{Reply, RequestError};

    fn read_value(outcome: &Result<Reply, RequestError>) -> Vec<u8> {
        match outcome {
            Ok(Reply::Read { result, .. }) => result.clone(),
            other => panic!("read failed: {other:?}"),
        }
    }

    #[test]
    fn read_index_on_leader_and_follower() {
        let mut c = mem_cluster();
        let leader = c.elect();
        c.propose(leader, "x=42");
        c.settle();
        let follower = (1..=3).find(|i| *i != leader).unwrap();
        let on_leader = c.read(leader, "x");
        let on_follower = c.read(follower, "x");
        c.settle();
        assert_eq!(read_value(c.outcome(on_leader)), b"42");
        assert_eq!(read_value(c.outcome(on_follower)), b"42");
    }

    #[test]
    fn read_retries_after_timeout_then_succeeds() {
        let mut c = mem_cluster();
        let leader = c.elect();
        c.propose(leader, "x=1");
        c.settle();
        let follower = (1..=3).find(|i| *i != leader).unwrap();
        c.cut.insert(follower);
        let id = c.read(follower, "x");
        c.tick(12); // first attempt is lost: past the timeout, it is re-issued
        assert!(!c.outcomes.contains_key(&id));
        c.cut.clear();
        c.tick(12);
        assert_eq!(read_value(c.outcome(id)), b"1");
    }

    /// `Input::ReadIndex` answers the read index alone, never running a query: on the
    /// leader and on a follower it covers every write acknowledged before it; cut off, it
    /// times out like any read (and forgets the request).
    #[test]
    fn a_read_index_alone_covers_acknowledged_writes() {
        use ninety_cluster::node::Input;
        let mut c = mem_cluster();
        let leader = c.elect();
        let write = c.propose(leader, "x=7");
        c.settle();
        let written = match c.outcome(write) {
            Ok(Reply::Applied { index, .. }) => *index,
            other => panic!("write failed: {other:?}"),
        };
        let follower = (1..=3).find(|i| *i != leader).unwrap();
        for node in [leader, follower] {
            let id = c.input(node, |id| Input::ReadIndex { id });
            c.settle();
            match c.outcome(id) {
                Ok(Reply::ReadIndex { index }) => {
                    assert!(*index >= written, "{index} < {written}");
                    assert!(c.nodes[&node].status().applied_index >= *index);
                }
                other => panic!("read index on {node}: {other:?}"),
            }
        }
        c.cut.insert(follower);
        let id = c.input(follower, |id| Input::ReadIndex { id });
        c.tick(40);
        assert_eq!(
            c.outcome(id).clone().unwrap_err(),
            RequestError::ReadTimeout { attempts: 3 }
        );
    }

    #[test]
    fn read_times_out_when_isolated() {
        let mut c = mem_cluster();
        let leader = c.elect();
        let follower = (1..=3).find(|i| *i != leader).unwrap();
        c.cut.insert(follower);
        let id = c.read(follower, "x");
        c.tick(40);
        let err = c.outcome(id).clone().unwrap_err();
        assert_eq!(err, RequestError::ReadTimeout { attempts: 3 });
        assert!(err.is_retryable());
    }
}

mod snapshots {
    use super::harness::{config, Cluster};
    use ninety_cluster::node::payload;
    use ninety_cluster::storage::MemStore;
    use ninety_cluster::test_support::KvMachine;
    use ninety_cluster::{RaftStore, StateMachine};
    use raft::Storage;

    #[test]
    fn lagging_follower_catches_up_via_snapshot() {
        lagging_follower_catches_up(false);
    }

    /// The same with snapshots written by a writer (answered from the recorded one).
    #[test]
    fn lagging_follower_catches_up_via_a_snapshot_written_in_the_background() {
        lagging_follower_catches_up(true);
    }

    fn small(id: u64, background: bool) -> ninety_cluster::NodeConfig {
        let mut cfg = config(id);
        cfg.snapshot_interval_entries = 20;
        cfg.log_retain_entries = 5;
        cfg.background_snapshots = background;
        cfg
    }

    /// With `snapshot_log_bytes_max` set, a snapshot comes once the applied entries add up
    /// to that many bytes, long before the count; without it, not until the count.
    #[test]
    fn a_snapshot_comes_by_size_before_the_count() {
        for (bytes_max, want_job) in [(400u64, true), (0, false)] {
            let stores = (1..=3).map(|id| (id, MemStore::new())).collect();
            let mut c = Cluster::new(stores, |id| {
                let mut cfg = small(id, true);
                cfg.snapshot_interval_entries = 1_000_000;
                cfg.snapshot_log_bytes_max = bytes_max;
                cfg
            });
            let leader = c.elect();
            for i in 0..25 {
                c.propose(leader, &format!("key-{i:04}={}", "v".repeat(40)));
                c.settle();
            }
            assert_eq!(
                c.jobs.len(),
                if want_job { 3 } else { 0 },
                "bytes max {bytes_max}: one job per node by size, none by count"
            );
        }
    }

    /// A background snapshot is only an image until written: the store names none and the
    /// log is whole; once reported written it is recorded and the log compacted; the next
    /// job comes only after that.
    #[test]
    fn a_background_snapshot_compacts_only_once_written_and_recorded() {
        let stores = (1..=3).map(|id| (id, MemStore::new())).collect();
        let mut c = Cluster::new(stores, |id| small(id, true));
        let leader = c.elect();
        for i in 0..25 {
            c.propose(leader, &format!("k{i}={i}"));
            c.settle();
        }
        assert_eq!(
            c.jobs.len(),
            3,
            "one job per node, none while one is in flight"
        );
        for id in 1..=3 {
            let node = &c.nodes[&id];
            assert!(node.snapshot_in_flight());
            assert_eq!(
                node.store().applied_index(),
                1,
                "only the bootstrap snapshot"
            );
            assert_eq!(node.store().first_index().unwrap(), 2, "nothing compacted");
        }
        let at: Vec<u64> = c.jobs.iter().map(|(_, j)| j.index).collect();
        c.write_jobs();
        c.tick(1);
        for (id, index) in (1..=3).zip(at) {
            let node = &c.nodes[&id];
            assert!(!node.snapshot_in_flight());
            assert_eq!(node.store().applied_index(), index);
            assert_eq!(node.snapshot_index(), index);
            let first = node.store().first_index().unwrap();
            assert_eq!(first, (index + 1).saturating_sub(5));
            let stored = node.store().stored_snapshot().unwrap().unwrap();
            let env = payload::decode_snapshot_envelope(stored.get_data()).unwrap();
            let mut restored = KvMachine::default();
            restored.restore(env.state).unwrap();
            assert_eq!(restored.get("k10"), Some(&b"10"[..]), "node {id}");
        }
        assert!(c.jobs.is_empty(), "not due yet");
        for i in 25..50 {
            c.propose(leader, &format!("k{i}={i}"));
            c.settle();
        }
        assert_eq!(c.jobs.len(), 3, "the next interval's jobs");
        c.assert_converged(&[1, 2, 3]);
    }

    fn lagging_follower_catches_up(background: bool) {
        let stores = (1..=3).map(|id| (id, MemStore::new())).collect();
        let mut c = Cluster::new(stores, |id| small(id, background));
        c.auto_write = true;
        let leader = c.elect();
        let lagger = (1..=3).find(|i| *i != leader).unwrap();
        c.cut.insert(lagger);
        for i in 0..100 {
            c.propose(leader, &format!("k{i}={i}"));
            c.settle(); // one entry per command
        }
        let lag_last = c.nodes[&lagger].store().last_index().unwrap();
        let leader_first = c.nodes[&leader].store().first_index().unwrap();
        assert!(
            leader_first > lag_last + 1,
            "leader compacted past the lagger"
        );
        c.cut.clear();
        c.tick(20);
        assert!(c.snapshots_sent > 0);
        assert!(c.nodes[&lagger]
            .store()
            .stored_snapshot()
            .unwrap()
            .is_some());
        c.assert_converged(&[1, 2, 3]);
        assert_eq!(c.sm(lagger).get("k99"), Some(&b"99"[..]));
    }
}

mod membership {
    use super::harness::config;
    use super::replication::mem_cluster;
    use ninety_cluster::node::{Input, MembershipChange};
    use ninety_cluster::storage::MemStore;
    use ninety_cluster::{Reply, RequestError};

    fn change(c: &mut super::harness::Cluster<MemStore>, leader: u64, ch: MembershipChange) -> u64 {
        c.input(leader, |id| Input::ChangeMembership {
            id,
            change: ch,
            request: None,
        })
    }

    fn keyed(
        c: &mut super::harness::Cluster<MemStore>,
        leader: u64,
        ch: MembershipChange,
        key: u128,
    ) -> u64 {
        c.input(leader, |id| Input::ChangeMembership {
            id,
            change: ch,
            request: Some(key),
        })
    }

    /// Issue 13: a membership call retried with its `request_id` answers the first answer
    /// without a second change, on the same leader and on a later one; the same id for
    /// another change is refused. (Before, the key was ignored: the retry proposed again
    /// and was refused as "already a member", and the reuse was accepted.)
    #[test]
    fn membership_requests_are_idempotent_by_request_id() {
        let mut c = mem_cluster();
        let leader = c.elect();
        c.add_node(4, MemStore::new(), config(4));
        let first = keyed(&mut c, leader, MembershipChange::AddLearner(4), 7);
        c.settle();
        let Ok(Reply::Membership(cs)) = c.outcome(first).clone() else {
            panic!("add failed: {:?}", c.outcome(first));
        };
        assert_eq!(cs.learners, vec![4]);
        let applied = c.nodes[&leader].status().applied_index;
        let retry = keyed(&mut c, leader, MembershipChange::AddLearner(4), 7);
        c.settle();
        assert_eq!(c.outcome(retry), &Ok(Reply::Membership(cs.clone())));
        assert_eq!(
            c.nodes[&leader].status().applied_index,
            applied,
            "no new entry"
        );

        let next = (1..=3).find(|i| *i != leader).unwrap();
        c.input(leader, |id| Input::TransferLeader { id, to: next });
        c.tick(5);
        assert_eq!(c.leader(), Some(next));
        let applied = c.nodes[&next].status().applied_index;
        let retry = keyed(&mut c, next, MembershipChange::AddLearner(4), 7);
        c.settle();
        assert!(matches!(c.outcome(retry), Ok(Reply::Membership(cs)) if cs.learners == vec![4]));
        assert_eq!(
            c.nodes[&next].status().applied_index,
            applied,
            "no new entry"
        );

        let reused = keyed(&mut c, next, MembershipChange::Remove(4), 7);
        c.settle();
        match c.outcome(reused) {
            Err(RequestError::ConfChangeRejected(why)) => assert!(why.contains("request_id")),
            other => panic!("reused request_id: {other:?}"),
        }
        assert!(c.nodes[&next].status().conf_state.learners.contains(&4));
    }

    #[test]
    fn add_learner_promote_remove() {
        let mut c = mem_cluster();
        let leader = c.elect();
        c.propose(leader, "before=1");
        c.settle();
        c.add_node(4, MemStore::new(), config(4));
        let add = change(&mut c, leader, MembershipChange::AddLearner(4));
        let busy = change(&mut c, leader, MembershipChange::AddLearner(5));
        c.tick(5);
        assert!(matches!(c.outcome(add), Ok(Reply::Membership(cs)) if cs.learners == vec![4]));
        assert_eq!(c.outcome(busy), &Err(RequestError::ConfChangeInProgress));
        let dup = change(&mut c, leader, MembershipChange::AddLearner(1));
        c.settle();
        assert!(matches!(
            c.outcome(dup),
            Err(RequestError::ConfChangeRejected(_))
        ));
        c.assert_converged(&[1, 2, 3, 4]);
        assert_eq!(c.sm(4).get("before"), Some(&b"1"[..]));
        // The founders' log starts after the bootstrap snapshot at index 1, so the joiner
        // got a snapshot carrying the founding voters (it once believed it was alone).
        let cs4 = c.nodes[&4].status().conf_state;
        let mut voters4 = cs4.voters.clone();
        voters4.sort_unstable();
        assert_eq!(voters4, vec![1, 2, 3]);
        assert_eq!(cs4.learners, vec![4]);

        let promote = change(&mut c, leader, MembershipChange::PromoteVoter(4));
        c.tick(5);
        assert!(matches!(c.outcome(promote), Ok(Reply::Membership(cs)) if cs.voters.contains(&4)));
        let victim = (1..=3).find(|i| *i != leader).unwrap();
        let remove = change(&mut c, leader, MembershipChange::Remove(victim));
        c.tick(5);
        match c.outcome(remove) {
            Ok(Reply::Membership(cs)) => {
                let mut voters = cs.voters.clone();
                voters.sort_unstable();
                let mut expect: Vec<u64> =
                    [1, 2, 3, 4].into_iter().filter(|i| *i != victim).collect();
                expect.sort_unstable();
                assert_eq!(voters, expect);
            }
            other => panic!("remove failed: {other:?}"),
        }
        c.nodes.remove(&victim);
        let after = c.propose(leader, "after=1");
        c.tick(5);
        assert!(c.outcome(after).is_ok());
        let rest: Vec<u64> = c.nodes.keys().copied().collect();
        c.assert_converged(&rest);
    }

    /// Issue 13: a leader that removed itself kept leading a group it was not in, and the
    /// cluster stalled. The leader refuses; after a transfer the old leader is removed by
    /// the new one, and then stops acting.
    #[test]
    fn the_leader_is_removed_only_after_leadership_moved() {
        let mut c = mem_cluster();
        let old = c.elect();
        let refused = change(&mut c, old, MembershipChange::Remove(old));
        c.settle();
        match c.outcome(refused) {
            Err(RequestError::ConfChangeRejected(why)) => {
                assert!(why.contains("transfer-leader"), "{why}")
            }
            other => panic!("removing the leader itself: {other:?}"),
        }
        let next = (1..=3).find(|i| *i != old).unwrap();
        c.input(old, |id| Input::TransferLeader { id, to: next });
        c.tick(5);
        assert_eq!(c.leader(), Some(next));
        let removed = change(&mut c, next, MembershipChange::Remove(old));
        c.tick(5);
        assert!(matches!(c.outcome(removed), Ok(Reply::Membership(_))));
        assert!(
            c.nodes[&old].removed(),
            "the old leader applied its removal"
        );
        assert_removed_node_stops_acting(&mut c, old);
    }

    /// The removed node refuses clients, never campaigns and never leads again; the
    /// others keep committing.
    fn assert_removed_node_stops_acting(c: &mut super::harness::Cluster<MemStore>, gone: u64) {
        let write = c.propose(gone, "x=1");
        let read = c.read(gone, "x");
        c.input(gone, |_| Input::Campaign);
        c.tick(40);
        assert_eq!(c.outcome(write), &Err(RequestError::Removed { id: gone }));
        assert_eq!(c.outcome(read), &Err(RequestError::Removed { id: gone }));
        assert!(!c.nodes[&gone].is_leader());
        assert!(c.nodes[&gone].status().removed);
        let leader = c.elect();
        assert_ne!(leader, gone);
        let after = c.propose(leader, "after=1");
        c.tick(5);
        assert!(c.outcome(after).is_ok(), "{:?}", c.outcome(after));
    }

    /// The safety net: node `x` leads when it applies its own removal (proposed by a leader
    /// that then crashed, the entry on `x` only). raft-rs alone keeps `x` leading a group it
    /// is not in, heartbeating the others so that they never elect anyone: every write is
    /// dropped. `x` must step down so that the others elect a leader.
    #[test]
    fn a_leader_that_applies_its_own_removal_steps_down() {
        let (l, x) = (1, 2);
        // `x` times out first, the others late and one at a time (equal timeouts would split
        // every vote): `x` is the one that campaigns.
        let cfg = |id: u64| {
            let mut cfg = config(id);
            let min = if id == x { 10 } else { 10 * id as usize };
            (cfg.min_election_ticks, cfg.max_election_ticks) = (min, min + 1);
            cfg
        };
        let mut c =
            super::harness::Cluster::new((1..=5).map(|id| (id, MemStore::new())).collect(), cfg);
        c.input(l, |_| Input::Campaign);
        c.settle();
        assert_eq!(c.leader(), Some(l));
        // The removal reaches `x` only, and its acknowledgement never reaches `l`.
        c.cut.extend([3, 4, 5]);
        change(&mut c, l, MembershipChange::Remove(x));
        c.round();
        c.cut.insert(l);
        c.round();
        c.nodes.remove(&l);
        c.cut.clear();
        // `x` has the longest log and campaigns first: it wins and commits its removal.
        for _ in 0..25 {
            c.tick(1);
            if c.nodes[&x].removed() {
                break;
            }
        }
        assert!(c.nodes[&x].removed(), "{:?}", c.nodes[&x].status());
        assert_removed_node_stops_acting(&mut c, x);
    }

    #[test]
    fn transfer_leadership() {
        let mut c = mem_cluster();
        let leader = c.elect();
        let target = (1..=3).find(|i| *i != leader).unwrap();
        let id = c.input(leader, |id| Input::TransferLeader { id, to: target });
        c.tick(5);
        assert_eq!(c.outcome(id), &Ok(Reply::TransferStarted));
        assert_eq!(c.leader(), Some(target));
    }
}

mod restart {
    use super::harness::{config, Cluster};
    use ninety_cluster::storage::SledStore;
    use ninety_cluster::{RaftStore, StateMachine};

    fn open(dir: &std::path::Path, id: u64) -> SledStore {
        SledStore::open(dir.join(format!("node{id}"))).unwrap()
    }

    #[test]
    fn restart_from_sled_recovers_applied_state() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = |id| {
            let mut cfg = config(id);
            cfg.snapshot_interval_entries = 10;
            cfg.log_retain_entries = 3;
            cfg
        };
        let stores = (1..=3).map(|id| (id, open(dir.path(), id))).collect();
        let mut c = Cluster::new(stores, cfg);
        let leader = c.elect();
        for i in 0..30 {
            c.propose(leader, &format!("k{i}={i}"));
            c.settle();
        }
        c.tick(5);
        c.assert_converged(&[1, 2, 3]);
        let hash = c.sm(1).state_hash();
        drop(c);

        let stores = (1..=3).map(|id| (id, open(dir.path(), id))).collect();
        let mut c = Cluster::new(stores, cfg);
        for id in 1..=3 {
            let node = &c.nodes[&id];
            assert!(node.store().applied_index() >= 10, "snapshot was stored");
            // Restored from the stored snapshot before any message arrives.
            assert_eq!(node.status().applied_index, node.store().applied_index());
            assert_eq!(node.state_machine().get("k5"), Some(&b"5"[..]));
        }
        c.settle(); // replays committed entries after the snapshot, from the local log
        assert_eq!(
            c.sm(1).state_hash(),
            hash,
            "replay restores the pre-restart state"
        );
        let leader = c.elect();
        let id = c.propose(leader, "after=restart");
        c.tick(5);
        assert!(c.outcome(id).is_ok());
        c.assert_converged(&[1, 2, 3]);
    }
}

mod poison {
    //! A panic inside the state machine's apply: every replica stops on the entry, names it,
    //! and a restart stops on it again instead of serving a half-applied state; a fixed
    //! build applies it and the cluster goes on with nothing lost.
    use super::harness::{config, Cluster};
    use ninety_cluster::storage::SledStore;
    use ninety_cluster::test_support::KvMachine;
    use ninety_cluster::{Error, Input, StateMachine};

    fn open(dir: &std::path::Path, id: u64) -> SledStore {
        SledStore::open(dir.join(format!("node{id}"))).unwrap()
    }

    fn stores(dir: &std::path::Path) -> Vec<(u64, SledStore)> {
        (1..=3).map(|id| (id, open(dir, id))).collect()
    }

    /// A quorum of nodes stopped, each on the panic of entry `index` naming its command; a
    /// node that did not stop never applied the entry (without a quorum it cannot learn
    /// that the entry committed). Returns the stopped nodes.
    fn assert_poisoned(c: &Cluster<SledStore>, index: u64) -> Vec<u64> {
        assert!(c.fatal.len() >= 2, "only {:?} stopped", c.fatal.keys());
        for id in 1..=3 {
            let Some(e) = c.fatal.get(&id) else {
                assert!(
                    c.nodes[&id].status().applied_index < index,
                    "node {id} applied it"
                );
                assert!(c.nodes[&id].poisoned().is_none());
                continue;
            };
            let Error::ApplyPanicked(p) = e else {
                panic!("node {id}: {e}");
            };
            assert_eq!(p.index, index, "node {id}: {p}");
            assert_eq!(p.command_count, 1);
            assert_eq!(p.commands, vec!["command \"!panic-7\"".to_string()]);
            assert!(p.message.contains("deliberate panic"), "{p}");
            let text = e.to_string();
            assert!(
                text.contains(&format!("log entry {index} (term {})", p.term)),
                "{text}"
            );
            let node = &c.nodes[&id];
            assert!(
                node.status().applied_index < index,
                "node {id} applied past it"
            );
            assert_eq!(node.poisoned(), Some(&**p));
        }
        c.fatal.keys().copied().collect()
    }

    #[test]
    fn a_panic_in_apply_stops_a_quorum_and_every_restart_on_that_entry() {
        let dir = tempfile::tempdir().unwrap();
        let mut c = Cluster::new(stores(dir.path()), config);
        let leader = c.elect();
        let before = c.propose(leader, "a=1");
        c.settle();
        assert!(c.outcome(before).is_ok());
        c.assert_converged(&[1, 2, 3]);
        let index = c.nodes[&leader].last_index() + 1;

        let bad = c.propose(leader, "!panic-7");
        // The leader stops; the other two elect one of them, which commits the entry and
        // stops too.
        c.tick(50);
        let stopped = assert_poisoned(&c, index);
        assert!(stopped.contains(&leader), "{stopped:?}");
        assert!(
            !c.outcomes.contains_key(&bad),
            "a poisoned entry is never answered"
        );
        // A poisoned node stays stopped: polls keep failing, a snapshot is refused.
        let node = c.nodes.get_mut(&leader).unwrap();
        node.step(Input::Tick);
        assert!(matches!(node.poll(&c.clock), Err(Error::ApplyPanicked(_))));
        assert!(matches!(node.snapshot_now(), Err(Error::ApplyPanicked(_))));
        drop(c);

        // Restarted on the same binary: the entry is committed and durable, the replay
        // reaches it and every node stops there again, with the same report.
        let mut c = Cluster::new(stores(dir.path()), config);
        c.tick(50);
        assert_poisoned(&c, index);
        drop(c);

        // A fixed build applies the entry; nothing before it was lost and the replicas agree.
        let fixed = KvMachine {
            fixed: true,
            ..KvMachine::default()
        };
        let mut c = Cluster::with_machine(stores(dir.path()), config, fixed);
        let leader = c.elect();
        let after = c.propose(leader, "b=2");
        c.tick(3);
        assert!(c.fatal.is_empty(), "{:?}", c.fatal);
        assert!(c.outcome(after).is_ok());
        c.assert_converged(&[1, 2, 3]);
        for id in 1..=3 {
            assert!(c.nodes[&id].status().applied_index > index);
            assert_eq!(c.sm(id).get("a"), Some(&b"1"[..]));
            assert_eq!(c.sm(id).get("b"), Some(&b"2"[..]));
        }
        assert_eq!(c.sm(1).state_hash(), c.sm(2).state_hash());
    }
}

mod read_panic {
    use super::replication::mem_cluster;
    use ninety_cluster::{Reply, RequestError};

    #[test]
    fn a_panic_in_a_read_answers_that_read_internal_and_the_node_goes_on() {
        let mut c = mem_cluster();
        let leader = c.elect();
        c.propose(leader, "k=v");
        c.settle();
        let bad = c.read(leader, "!panic-read");
        c.tick(2);
        match c.outcome(bad) {
            Err(RequestError::Internal(m)) => assert!(m.contains("deliberate panic"), "{m}"),
            other => panic!("{other:?}"),
        }
        assert!(c.fatal.is_empty(), "{:?}", c.fatal);
        let good = c.read(leader, "k");
        c.tick(2);
        assert!(matches!(c.outcome(good), Ok(Reply::Read { result, .. }) if result == b"v"));
        let write = c.propose(leader, "k=w");
        c.tick(2);
        assert!(c.outcome(write).is_ok());
        c.assert_converged(&[1, 2, 3]);
    }
}

mod transport {
    use ninety_cluster::eraftpb::{Message, MessageType};
    use ninety_cluster::{Output, Transport};

    #[derive(Default)]
    struct Recorder {
        sent: Vec<(u64, usize)>,
        snapshots: Vec<u64>,
    }

    impl Transport for Recorder {
        fn send(&mut self, to: u64, messages: Vec<Message>) {
            self.sent.push((to, messages.len()));
        }
        fn send_snapshot(&mut self, to: u64, _message: Message) {
            self.snapshots.push(to);
        }
    }

    fn msg(to: u64, ty: MessageType) -> Message {
        let mut m = Message {
            to,
            ..Default::default()
        };
        m.set_msg_type(ty);
        m
    }

    #[test]
    fn dispatch_groups_per_peer_and_separates_snapshots() {
        let mut out = Output {
            messages: vec![
                msg(2, MessageType::MsgAppend),
                msg(3, MessageType::MsgHeartbeat),
                msg(2, MessageType::MsgHeartbeat),
            ],
            snapshots: vec![msg(3, MessageType::MsgSnapshot)],
            ..Default::default()
        };
        let mut t = Recorder::default();
        out.dispatch(&mut t);
        assert_eq!(t.sent, vec![(2, 2), (3, 1)]);
        assert_eq!(t.snapshots, vec![3]);
        assert!(out.messages.is_empty() && out.snapshots.is_empty());
    }
}

mod commit_round {
    //! The commit round (`Node::poll_sending`): a leader hands its appends to the network
    //! before its own write is durable, a follower acknowledges only after its write, and
    //! the leader commits only with a durable quorum.
    use super::harness::{config, Cluster};
    use ninety_cluster::eraftpb::{ConfState, Entry, HardState, Message, MessageType, Snapshot};
    use ninety_cluster::storage::MemStore;
    use ninety_cluster::{Error, Input, RaftStore, Reply, Transport};
    use raft::{GetEntriesContext, RaftState};
    use std::cell::RefCell;
    use std::rc::Rc;

    /// What happened, in order, across the stores and the network of one test.
    #[derive(Debug, Clone, PartialEq)]
    enum Event {
        /// Node `node` made entries up to `last` durable.
        Write { node: u64, last: u64 },
        /// Node `from` handed a message to the network.
        Send {
            from: u64,
            to: u64,
            kind: MessageType,
            last: u64,
        },
    }

    type Journal = Rc<RefCell<Vec<Event>>>;

    /// A `MemStore` that journals each durable append.
    struct Journaled {
        node: u64,
        mem: MemStore,
        journal: Journal,
    }

    impl raft::Storage for Journaled {
        fn initial_state(&self) -> raft::Result<RaftState> {
            self.mem.initial_state()
        }
        fn entries(
            &self,
            low: u64,
            high: u64,
            max: impl Into<Option<u64>>,
            ctx: GetEntriesContext,
        ) -> raft::Result<Vec<Entry>> {
            self.mem.entries(low, high, max, ctx)
        }
        fn term(&self, idx: u64) -> raft::Result<u64> {
            self.mem.term(idx)
        }
        fn first_index(&self) -> raft::Result<u64> {
            self.mem.first_index()
        }
        fn last_index(&self) -> raft::Result<u64> {
            self.mem.last_index()
        }
        fn snapshot(&self, index: u64, to: u64) -> raft::Result<Snapshot> {
            self.mem.snapshot(index, to)
        }
    }

    impl RaftStore for Journaled {
        fn initialize(&mut self, cs: ConfState) -> Result<(), Error> {
            self.mem.initialize(cs)
        }
        fn persist(&mut self, entries: &[Entry], hs: Option<&HardState>) -> Result<(), Error> {
            self.mem.persist(entries, hs)?;
            if let Some(e) = entries.last() {
                let (node, last) = (self.node, e.index);
                self.journal.borrow_mut().push(Event::Write { node, last });
            }
            Ok(())
        }
        fn set_commit(&mut self, commit: u64) -> Result<(), Error> {
            self.mem.set_commit(commit)
        }
        fn apply_snapshot(&mut self, s: &Snapshot) -> Result<(), Error> {
            self.mem.apply_snapshot(s)
        }
        fn save_snapshot(&mut self, s: &Snapshot) -> Result<(), Error> {
            self.mem.save_snapshot(s)
        }
        fn compact(&mut self, index: u64) -> Result<(), Error> {
            self.mem.compact(index)
        }
        fn stored_snapshot(&self) -> Result<Option<Snapshot>, Error> {
            self.mem.stored_snapshot()
        }
        fn applied_index(&self) -> u64 {
            self.mem.applied_index()
        }
    }

    /// The network of one poll: journals each message and keeps it for delivery.
    struct Net {
        from: u64,
        journal: Journal,
        sent: Vec<Message>,
    }

    impl Transport for Net {
        fn send(&mut self, to: u64, messages: Vec<Message>) {
            for m in messages {
                let last = m.get_entries().last().map_or(m.index, |e| e.index);
                let (from, kind) = (self.from, m.get_msg_type());
                let ev = Event::Send {
                    from,
                    to,
                    kind,
                    last,
                };
                self.journal.borrow_mut().push(ev);
                self.sent.push(m);
            }
        }
        fn send_snapshot(&mut self, to: u64, message: Message) {
            self.send(to, vec![message]);
        }
    }

    fn poll_sending(c: &mut Cluster<Journaled>, id: u64, journal: &Journal) -> Vec<Message> {
        let mut net = Net {
            from: id,
            journal: journal.clone(),
            sent: Vec::new(),
        };
        let node = c.nodes.get_mut(&id).unwrap();
        let out = node.poll_sending(&c.clock, &mut net).unwrap();
        assert!(out.messages.is_empty() && out.snapshots.is_empty());
        for done in out.completions {
            c.outcomes.insert(done.id, done.result);
        }
        net.sent
    }

    fn position(journal: &Journal, want: impl Fn(&Event) -> bool) -> usize {
        let j = journal.borrow();
        j.iter()
            .position(want)
            .unwrap_or_else(|| panic!("not in {j:?}"))
    }

    #[test]
    fn leader_sends_before_its_write_and_followers_ack_after_theirs() {
        let journal: Journal = Rc::default();
        let stores = (1..=3)
            .map(|node| {
                let (mem, journal) = (MemStore::new(), journal.clone());
                let store = Journaled { node, mem, journal };
                (node, store)
            })
            .collect();
        let mut c = Cluster::new(stores, config);
        let leader = c.elect();
        c.settle();
        journal.borrow_mut().clear();
        let id = c.propose(leader, "k=v");
        let index = c.nodes[&leader].last_index() + 1;
        let appends = poll_sending(&mut c, leader, &journal);
        let sent = position(&journal, |e| {
            matches!(e, Event::Send { from, kind: MessageType::MsgAppend, last, .. }
                if *from == leader && *last == index)
        });
        let written = position(&journal, |e| {
            *e == Event::Write {
                node: leader,
                last: index,
            }
        });
        assert!(sent < written, "the leader's append left after its write");
        assert!(
            c.nodes[&leader].status().commit_index < index,
            "no quorum yet"
        );

        // A follower writes, then acknowledges.
        let follower = appends[0].to;
        let to_follower: Vec<Message> = appends.into_iter().filter(|m| m.to == follower).collect();
        for m in to_follower {
            c.nodes.get_mut(&follower).unwrap().step(Input::Message(m));
        }
        let acks = poll_sending(&mut c, follower, &journal);
        let written = position(&journal, |e| {
            *e == Event::Write {
                node: follower,
                last: index,
            }
        });
        let acked = position(&journal, |e| {
            matches!(e, Event::Send { from, kind: MessageType::MsgAppendResponse, .. }
                if *from == follower)
        });
        assert!(
            written < acked,
            "the follower acknowledged before its write"
        );

        // Its acknowledgement and the leader's own durable write are a quorum of three.
        for m in acks {
            c.nodes.get_mut(&leader).unwrap().step(Input::Message(m));
        }
        poll_sending(&mut c, leader, &journal);
        assert_eq!(c.nodes[&leader].status().commit_index, index);
        assert!(matches!(c.outcome(id), Ok(Reply::Applied { index: i, .. }) if *i == index));
    }

    /// A retry of a request the state machine remembers is answered after a ReadIndex with
    /// its first answer, without a log entry (issue 13, item 6).
    #[test]
    fn a_retry_after_commit_is_answered_without_an_entry() {
        let mut c = super::replication::mem_cluster();
        let leader = c.elect();
        let first = c.propose(leader, "r1#k=v");
        c.settle();
        let answer = match c.outcome(first) {
            Ok(Reply::Applied { index, outcome }) if *index > 0 => outcome.clone(),
            other => panic!("{other:?}"),
        };
        c.propose(leader, "k=w");
        c.settle();
        let (last, commit) = (c.nodes[&leader].last_index(), c.nodes[&leader].status());
        let retry = c.propose(leader, "r1#k=v");
        c.settle();
        match c.outcome(retry) {
            Ok(Reply::Applied { index: at, outcome }) => {
                assert_eq!(outcome, &answer, "the first answer");
                assert_eq!(*at, 0, "no entry of its own");
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(
            c.nodes[&leader].last_index(),
            last,
            "no entry for the retry"
        );
        assert_eq!(c.nodes[&leader].status().commit_index, commit.commit_index);
        assert_eq!(
            c.sm(leader).get("k"),
            Some(&b"w"[..]),
            "the retry changed nothing"
        );
        // A new request id goes through the log.
        let fresh = c.propose(leader, "r2#k=x");
        c.settle();
        assert!(c.outcome(fresh).is_ok());
        assert_eq!(c.nodes[&leader].last_index(), last + 1);
    }
}

mod pipelined {
    //! The pipelined commit round: a node's write may be queued for its persistence worker
    //! (`Durability::Queued`) and reported durable later (`Input::Persisted`). With the
    //! worker stalled, the leader still takes and batches proposals and processes
    //! acknowledgements; nothing commits or applies before it is durable on a quorum, and a
    //! stalled follower acknowledges nothing.
    use super::harness::{config, Cluster};
    use ninety_cluster::eraftpb::{ConfState, Entry, HardState, Message, Snapshot};
    use ninety_cluster::storage::MemStore;
    use ninety_cluster::{Durability, Error, Input, RaftStore, Reply, Transport};
    use raft::eraftpb::MessageType;
    use raft::{GetEntriesContext, RaftState, Storage};
    use std::cell::{Cell, RefCell};
    use std::rc::Rc;

    /// What the test sees of one node's disk.
    #[derive(Default)]
    struct Disk {
        /// Queued writes wait for `release`.
        stalled: Cell<bool>,
        /// The last index durable.
        durable_last: Cell<u64>,
        /// (Ready number, last index) of the queued writes.
        queued: RefCell<Vec<(u64, u64)>>,
    }

    /// A `MemStore` whose writes are queued while its disk is stalled.
    struct Stallable {
        mem: MemStore,
        disk: Rc<Disk>,
    }

    impl Storage for Stallable {
        fn initial_state(&self) -> raft::Result<RaftState> {
            self.mem.initial_state()
        }
        fn entries(
            &self,
            low: u64,
            high: u64,
            max: impl Into<Option<u64>>,
            ctx: GetEntriesContext,
        ) -> raft::Result<Vec<Entry>> {
            self.mem.entries(low, high, max, ctx)
        }
        fn term(&self, idx: u64) -> raft::Result<u64> {
            self.mem.term(idx)
        }
        fn first_index(&self) -> raft::Result<u64> {
            self.mem.first_index()
        }
        fn last_index(&self) -> raft::Result<u64> {
            self.mem.last_index()
        }
        fn snapshot(&self, index: u64, to: u64) -> raft::Result<Snapshot> {
            self.mem.snapshot(index, to)
        }
    }

    impl RaftStore for Stallable {
        fn initialize(&mut self, cs: ConfState) -> Result<(), Error> {
            self.mem.initialize(cs)
        }
        /// Durable, and so is everything queued before it (the trait's order).
        fn persist(&mut self, entries: &[Entry], hs: Option<&HardState>) -> Result<(), Error> {
            self.mem.persist(entries, hs)?;
            self.disk.queued.borrow_mut().clear();
            self.disk.durable_last.set(self.mem.last_index().unwrap());
            Ok(())
        }
        fn write_async(
            &mut self,
            number: u64,
            entries: &[Entry],
            hs: Option<&HardState>,
        ) -> Result<Durability, Error> {
            if !self.disk.stalled.get() {
                self.persist(entries, hs)?;
                return Ok(Durability::Durable);
            }
            self.mem.persist(entries, hs)?;
            let last = self.mem.last_index().unwrap();
            self.disk.queued.borrow_mut().push((number, last));
            Ok(Durability::Queued)
        }
        fn set_commit(&mut self, commit: u64) -> Result<(), Error> {
            self.mem.set_commit(commit)
        }
        fn apply_snapshot(&mut self, s: &Snapshot) -> Result<(), Error> {
            self.mem.apply_snapshot(s)
        }
        fn save_snapshot(&mut self, s: &Snapshot) -> Result<(), Error> {
            self.mem.save_snapshot(s)
        }
        fn compact(&mut self, index: u64) -> Result<(), Error> {
            self.mem.compact(index)
        }
        fn stored_snapshot(&self) -> Result<Option<Snapshot>, Error> {
            self.mem.stored_snapshot()
        }
        fn applied_index(&self) -> u64 {
            self.mem.applied_index()
        }
    }

    struct Sent(Vec<Message>);

    impl Transport for Sent {
        fn send(&mut self, _to: u64, messages: Vec<Message>) {
            self.0.extend(messages);
        }
        fn send_snapshot(&mut self, _to: u64, message: Message) {
            self.0.push(message);
        }
    }

    struct Rig {
        c: Cluster<Stallable>,
        disks: Vec<Rc<Disk>>,
        leader: u64,
        /// Append acknowledgements each node sent.
        acks: [usize; 4],
    }

    impl Rig {
        fn disk(&self, id: u64) -> &Disk {
            &self.disks[(id - 1) as usize]
        }

        /// The highest index durable on a quorum (two of three).
        fn durable_on_quorum(&self) -> u64 {
            let mut d: Vec<u64> = self.disks.iter().map(|d| d.durable_last.get()).collect();
            d.sort_unstable();
            d[1]
        }

        /// Polls every node and delivers what it sent, `rounds` times, checking after each
        /// poll that the leader committed and applied only what a quorum holds durably.
        fn pump(&mut self, rounds: usize) {
            for _ in 0..rounds {
                let mut sent = Sent(Vec::new());
                for id in 1..=3 {
                    let node = self.c.nodes.get_mut(&id).unwrap();
                    let out = node.poll_sending(&self.c.clock, &mut sent).unwrap();
                    for done in out.completions {
                        self.c.outcomes.insert(done.id, done.result);
                    }
                    let st = self.c.nodes[&self.leader].status();
                    assert!(
                        st.commit_index <= self.durable_on_quorum(),
                        "committed early"
                    );
                    assert!(st.applied_index <= self.disk(self.leader).durable_last.get());
                }
                for m in sent.0 {
                    if m.get_msg_type() == MessageType::MsgAppendResponse && !m.reject {
                        self.acks[m.from as usize] += 1;
                    }
                    self.c.nodes.get_mut(&m.to).unwrap().step(Input::Message(m));
                }
            }
        }

        /// The stalled worker of node `id` catches up: its queued writes are durable.
        fn release(&mut self, id: u64) {
            let queued = std::mem::take(&mut *self.disk(id).queued.borrow_mut());
            let Some(&(number, last)) = queued.last() else {
                return;
            };
            self.disk(id).durable_last.set(last);
            let node = self.c.nodes.get_mut(&id).unwrap();
            node.step(Input::Persisted { number });
        }

        fn matched(&self, peer: u64) -> u64 {
            let progress = self.c.nodes[&self.leader].progress();
            progress.iter().find(|p| p.0 == peer).unwrap().1
        }
    }

    fn rig() -> Rig {
        let disks: Vec<Rc<Disk>> = (0..3).map(|_| Rc::default()).collect();
        let stores = (1..=3u64)
            .map(|id| {
                let disk = disks[(id - 1) as usize].clone();
                let store = Stallable {
                    mem: MemStore::new(),
                    disk,
                };
                (id, store)
            })
            .collect();
        let mut c = Cluster::new(stores, config);
        let leader = c.elect();
        c.settle();
        Rig {
            c,
            disks,
            leader,
            acks: [0; 4],
        }
    }

    #[test]
    fn a_stalled_write_leaves_the_leader_working_and_commits_nothing_early() {
        let mut r = rig();
        let leader = r.leader;
        let followers: Vec<u64> = (1..=3).filter(|&id| id != leader).collect();
        let (slow, fast) = (followers[0], followers[1]);
        r.disk(leader).stalled.set(true);
        r.disk(slow).stalled.set(true);

        let first = r.c.propose(leader, "a=1");
        let index = r.c.nodes[&leader].last_index() + 1;
        r.pump(4);
        assert!(
            !r.disk(leader).queued.borrow().is_empty(),
            "the write is queued"
        );
        assert!(
            r.matched(fast) >= index,
            "the fast follower's ack was processed"
        );
        assert!(r.matched(slow) < index, "the stalled follower acknowledged");
        assert_eq!(
            r.acks[slow as usize], 0,
            "an ack left before its write was durable"
        );
        assert!(r.c.nodes[&leader].status().commit_index < index);
        assert!(!r.c.outcomes.contains_key(&first));

        // Still stalled: new proposals are taken, batched into one entry and replicated.
        let more = r.c.propose_many(leader, &["b=2", "c=3"]);
        r.pump(4);
        let last = r.c.nodes[&leader].last_index();
        assert_eq!(last, index + 1, "both proposals in one new entry");
        assert_eq!(r.matched(fast), last);
        assert!(r.c.nodes[&leader].status().commit_index < index);

        // The leader's worker catches up: its own copy and the fast follower's are a quorum.
        r.release(leader);
        r.pump(4);
        assert_eq!(r.c.nodes[&leader].status().commit_index, last);
        for id in [first, more[0], more[1]] {
            assert!(matches!(r.c.outcome(id), Ok(Reply::Applied { .. })));
        }
        assert_eq!(r.acks[slow as usize], 0);

        // The slow follower's acknowledgements leave once its writes are durable.
        r.disk(slow).stalled.set(false);
        r.release(slow);
        r.pump(4);
        assert!(r.acks[slow as usize] > 0);
        assert_eq!(r.matched(slow), last);
        r.c.settle();
        r.c.assert_converged(&[1, 2, 3]);
    }
}

/// Commands the engine would refuse are answered as reads: no log entry (issue 13, item 6),
/// on one node with the real `EngineMachine`.
mod refusals {
    use ninety_cluster::engine_sm::{decode_applied, encode_request, Applied, EngineMachine};
    use ninety_cluster::node::{bootstrap, Input, Node, NodeConfig, Reply};
    use ninety_cluster::storage::MemStore;
    use ninety_cluster::test_support::{discard_logger, ManualClock};
    use ninety_cluster::{RequestId, StateMachine};
    use ninety_engine::Reply as EngineReply;
    use ninety_engine::*;
    use std::collections::BTreeMap;

    type Answers = BTreeMap<RequestId, Result<Reply, ninety_cluster::RequestError>>;

    /// A one-voter node, leading, with one hospital and a ward of one staffed bed.
    struct One {
        node: Node<MemStore, EngineMachine>,
        clock: ManualClock,
        answers: Answers,
        next: RequestId,
    }

    impl One {
        fn new() -> One {
            let mut store = MemStore::new();
            bootstrap(&mut store, &[1], &EngineMachine::new()).unwrap();
            let node = Node::new(
                NodeConfig::new(1),
                store,
                EngineMachine::new(),
                &discard_logger(),
            )
            .unwrap();
            let mut one = One {
                node,
                clock: ManualClock::new(1_000_000),
                answers: Answers::new(),
                next: 1,
            };
            one.node.step(Input::Campaign);
            one.settle();
            assert!(one.node.is_leader());
            for command in region() {
                let id = one.propose(&command);
                one.settle();
                assert!(one.outcome(id).outcome.is_ok(), "{command:?}");
            }
            one
        }

        /// Steps a proposal of `command` under a fresh request id (node and engine alike).
        fn propose(&mut self, command: &Command) -> RequestId {
            let id = self.next;
            self.next += 1;
            let request = Request {
                id: ninety_engine::RequestId(u128::from(id)),
                command: command.clone(),
            };
            let command = encode_request(&request).unwrap();
            self.node.step(Input::Propose { id, command });
            id
        }

        fn settle(&mut self) {
            for _ in 0..50 {
                let out = self.node.poll(&self.clock).unwrap();
                for c in out.completions {
                    assert!(self.answers.insert(c.id, c.result).is_none());
                }
            }
        }

        /// The answer to `id`, with the node index it came with.
        fn answer(&self, id: RequestId) -> (u64, Applied) {
            match &self.answers[&id] {
                Ok(Reply::Applied { index, outcome }) => (*index, decode_applied(outcome).unwrap()),
                other => panic!("request {id}: {other:?}"),
            }
        }

        fn outcome(&self, id: RequestId) -> Applied {
            self.answer(id).1
        }

        fn engine(&self) -> &Engine {
            self.node.state_machine().engine()
        }
    }

    fn region() -> Vec<Command> {
        let hospital = Hospital {
            id: HospitalId(1),
            name: "H1".into(),
            city: "Guangzhou".into(),
            lat_micro_deg: 23_000_000,
            lon_micro_deg: 113_000_000,
            tier: Tier::Tertiary,
            languages: vec![Language::Mandarin],
            alliances: vec![],
        };
        let ward = Ward {
            id: WardId(1),
            hospital: HospitalId(1),
            name: "W1".into(),
            specialty: Specialty::Cardiology,
            kind: WardKind::General,
            sex: SexPolicy::Mixed,
            equipment: vec![],
            staffed_beds: 1,
        };
        vec![
            Command::UpsertHospital(hospital),
            Command::UpsertWard(ward),
            Command::AddBeds {
                ward: WardId(1),
                count: 1,
            },
        ]
    }

    fn hold_ward(patient: u128) -> Command {
        Command::HoldBed {
            target: BedTarget::Ward(WardId(1)),
            patient: PatientRef(patient),
            ttl_ms: 60_000,
        }
    }

    /// What `apply` answers for `command` on a copy of the state: the log path's answer.
    fn applied_outcome(engine: &Engine, command: &Command) -> Outcome {
        let request = Request {
            id: ninety_engine::RequestId(u128::MAX),
            command: command.clone(),
        };
        engine.clone().apply(&request, engine.now())
    }

    /// Twenty refused holds of a full ward (and refusals of unknown holds and beds) are
    /// answered with the rejection `apply` gives, and the log does not move.
    #[test]
    fn refused_commands_leave_the_log_where_it_was() {
        let mut one = One::new();
        let held = one.propose(&hold_ward(1));
        one.settle();
        assert!(matches!(
            one.outcome(held).outcome,
            Ok(EngineReply::BedHeld { .. })
        ));
        let (last, commit) = (one.node.last_index(), one.node.status().commit_index);
        let hash = one.node.state_machine().state_hash();
        let refused = [
            hold_ward(2),
            Command::ConfirmHold { hold: HoldId(99) },
            Command::HoldBed {
                target: BedTarget::Bed(BedId(7)),
                patient: PatientRef(2),
                ttl_ms: 60_000,
            },
        ];
        let mut ids = Vec::new();
        for n in 0..20 {
            ids.push((one.propose(&hold_ward(10 + n)), hold_ward(10 + n)));
        }
        for c in &refused {
            ids.push((one.propose(c), c.clone()));
        }
        one.settle();
        for (id, command) in ids {
            let (index, applied) = one.answer(id);
            let expect = applied_outcome(one.engine(), &command);
            assert!(expect.is_err(), "{command:?} is refused: {expect:?}");
            assert_eq!(applied.outcome, expect, "{command:?}");
            assert_eq!((index, applied.first_index), (0, 0), "no entry");
            assert!(!applied.replayed);
            assert_eq!(applied.log_time_ms, one.engine().now().0);
        }
        assert_eq!(one.node.last_index(), last, "no entry for a refusal");
        assert_eq!(one.node.status().commit_index, commit);
        assert_eq!(one.node.state_machine().state_hash(), hash);
    }

    /// A hold refused when it arrives, but accepted by the state at its read (a release
    /// proposed just before it was applied first), goes through the log and is granted.
    #[test]
    fn a_refusal_the_log_lifts_before_the_read_goes_through_the_log() {
        let mut one = One::new();
        let held = one.propose(&hold_ward(1));
        one.settle();
        let Ok(EngineReply::BedHeld { hold, .. }) = one.outcome(held).outcome else {
            panic!("the ward's bed is held");
        };
        let last = one.node.last_index();
        let release = one.propose(&Command::ReleaseHold { hold });
        let retry = one.propose(&hold_ward(2));
        assert_eq!(
            one.engine().would_refuse(&hold_ward(2), one.engine().now()),
            Some(Rejection::NoCapacity("ward 1 has no admissible bed".into())),
            "refused when it arrived"
        );
        one.settle();
        let (release_index, released) = one.answer(release);
        assert!(released.outcome.is_ok(), "{released:?}");
        let (index, granted) = one.answer(retry);
        assert!(
            matches!(granted.outcome, Ok(EngineReply::BedHeld { .. })),
            "{granted:?}"
        );
        assert!(
            index > release_index && release_index > last,
            "{index} {release_index}"
        );
        assert_eq!(granted.first_index, index, "its own entry");
    }
}
