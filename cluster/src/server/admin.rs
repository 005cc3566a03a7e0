//! `ninety.v1.Admin`: region import, status, membership, leadership and snapshots.
//!
//! Membership changes and leadership transfers must be sent to the leader (they are not
//! forwarded): another node answers `UNAVAILABLE` with the leader in the metadata. They are
//! one at a time and idempotent by effect (adding a member twice is refused as already
//! done), not by request id: Raft conf changes do not pass through the engine's dedup table.
//! `node_id` 0 is refused (`INVALID_ARGUMENT`, `node_id`); `TransferLeader`'s `to_node_id`
//! 0 means "the most up-to-date other voter". `AddMember` takes the new node's two
//! addresses, `address` (its peer listener) and `client_address` (its client listener),
//! each `host:port` ([`check_member_address`]) and different from each other; a `Member`
//! reports both.
//!
//! **Removing the leader.** The node core refuses a leader's own removal
//! (`node::membership`: raft-rs would keep it leading a group it is not in). So
//! `RemoveMember` for the answering leader first moves leadership: to the voter with the
//! highest match index among those recently active, waiting up to [`LEADER_MOVE_WAIT`] for
//! it to lead; then it answers `UNAVAILABLE` naming the new leader in the metadata and
//! saying that leadership moved, and the same request sent there removes the old leader
//! (`ninety_client` follows the hint by itself). Nothing was removed by the first answer.
//!
//! **Status.** `ClusterStatus` answers from the summary the node task publishes after every
//! poll (`driver::Summary`), without a trip to the node task; the state hash only when the
//! request sets `with_state_hash`, digested off the node task from a copy made on it
//! (`driver` module doc).
//!
//! `ImportRegion` is checked completely before anything is proposed (the region file's own
//! validation, fields named `region_json.<path in the file>`, and a cluster that already
//! holds a region is refused with `REGION_ALREADY_LOADED`), so a refused import never adds
//! a log entry. A retry of an import that succeeded is therefore refused as already loaded
//! rather than replayed.
//!
//! `SnapshotNow` is **node-local**: the answering node remembers the answers to its last
//! [`SNAPSHOT_ANSWERS_MAX`] request ids (in memory, lost at restart), so a retry with the
//! same id returns the first answer without another snapshot; a new id within
//! [`SNAPSHOT_INTERVAL_MIN`] of the node's last `SnapshotNow` snapshot is refused with
//! `FAILED_PRECONDITION` naming when to retry.
//!
//! **Rate limits** on the calls that cost disk or CPU. `SnapshotNow` encodes and fsyncs
//! the whole state: one per [`SNAPSHOT_INTERVAL_MIN`] per node (above). `ImportRegion`
//! parses and validates a region file of up to 64 MiB before anything else, and a valid
//! one becomes one huge log entry: a node runs one import at a time, and the bytes it
//! accepts come from a budget ([`ImportBudget`]: [`IMPORT_BUDGET_BYTES_MAX`], refilled at
//! [`IMPORT_BUDGET_BYTES_PER_S`], every call charged at least [`IMPORT_CHARGE_BYTES_MIN`]);
//! past it, or while another import runs, the call is refused `RESOURCE_EXHAUSTED` before
//! any parsing, the message saying when to retry. The other calls need no limit: the
//! membership changes and `TransferLeader` are single Raft conf changes, one at a time by
//! Raft's own rule, and refused while one is pending; `ClusterStatus` reads the published
//! summary, and with the hash is one trip to the node task, bounded by the node's command
//! queue (`max_queued_commands`) and by `driver::HASHES_INFLIGHT_MAX`.
//! All of them need the `operator` role (`security::roles`), and are audited.
//!
//! **Backup** streams the answering node's newest stored snapshot file, read off the
//! async runtime by a blocking task (the node task never encodes or reads for it), in
//! [`BACKUP_CHUNK_BYTES`] chunks: a header (cluster id, node, index, term, size) first, a
//! SHA-256 of the bytes last; the file's own CRC-32 is checked as it is read, and a
//! mismatch ends the stream with `DATA_LOSS`. The open file stays readable if the node
//! deletes it for a newer snapshot meanwhile. With `fresh` the node first takes a snapshot
//! as `SnapshotNow` does (sharing its once-per-[`SNAPSHOT_INTERVAL_MIN`] limit: within it,
//! the last one is sent). At most [`BACKUPS_INFLIGHT_MAX`] streams per node; more are
//! refused `RESOURCE_EXHAUSTED`. What the bytes are and how a new cluster is made from
//! them: `crate::backup`.

use super::convert::echo;
use super::{invalid, Cluster};
use crate::node::{MembershipChange, Reply};
use crate::runtime::driver::Summary;
use crate::runtime::transport::GRPC_MESSAGE_BYTES_MAX;
use crate::storage::{SnapshotFiles, SnapshotId};
use ninety_engine::{Command, RegionFile, Rejection, Request, RequestId};
use ninety_proto::v1 as pb;
use ninety_proto::v1::admin_server::Admin;
use sha2::{Digest, Sha256};
use std::collections::VecDeque;
use std::io::Read;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, OwnedSemaphorePermit, Semaphore};
use tokio_stream::Stream;
use tonic::{Request as GrpcRequest, Response, Status};

/// How long TransferLeader waits for the new leader to show.
pub const TRANSFER_WAIT: Duration = Duration::from_secs(3);
/// How long `RemoveMember` of the leader waits for leadership to move first: two election
/// timeouts (raft-rs aborts a transfer that has not finished within one).
pub const LEADER_MOVE_WAIT: Duration = Duration::from_millis(
    2 * crate::node::config::ELECTION_TICKS as u64 * crate::node::config::TICK_INTERVAL_MS,
);
/// How often a wait for a new leader looks at the published status.
const LEADER_POLL_INTERVAL: Duration = Duration::from_millis(20);
/// Shortest time between two snapshots taken through `SnapshotNow` on one node (a snapshot
/// encodes and fsyncs the whole state: a loop of calls must not turn into a disk storm).
pub const SNAPSHOT_INTERVAL_MIN: Duration = Duration::from_secs(10);
/// `SnapshotNow` answers a node remembers for retries (oldest forgotten first).
pub const SNAPSHOT_ANSWERS_MAX: usize = 64;
/// Longest member address, bytes: a DNS name (at most 253) and `:65535`.
pub const MEMBER_ADDRESS_BYTES_MAX: usize = 253 + 6;
/// Longest label of a DNS name, bytes.
const DNS_LABEL_BYTES_MAX: usize = 63;
/// `ImportRegion` bytes a node accepts in a burst: two imports of the largest message.
pub const IMPORT_BUDGET_BYTES_MAX: u64 = 2 * GRPC_MESSAGE_BYTES_MAX as u64;
/// `ImportRegion` bytes the budget regains per second: one largest import per 10 s.
pub const IMPORT_BUDGET_BYTES_PER_S: u64 = GRPC_MESSAGE_BYTES_MAX as u64 / 10;
/// What the smallest `ImportRegion` call costs, bytes (a loop of tiny calls still pays).
pub const IMPORT_CHARGE_BYTES_MIN: u64 = 64 * 1024;
/// Bytes of snapshot data per `Backup` chunk (well below the clients' 4 MiB message limit).
pub const BACKUP_CHUNK_BYTES: usize = 1024 * 1024;
/// `Backup` streams one node serves at once (each holds a file open and a reader thread).
pub const BACKUPS_INFLIGHT_MAX: usize = 2;
/// Chunks read ahead of a slow `Backup` receiver.
const BACKUP_CHUNKS_QUEUED: usize = 4;
// A full-size import must fit in a full budget, or it could never run.
const _: () = assert!(IMPORT_BUDGET_BYTES_MAX >= GRPC_MESSAGE_BYTES_MAX as u64);
const _: () = assert!(IMPORT_BUDGET_BYTES_PER_S > 0);

/// The token bucket of `ImportRegion` bytes on one node (module doc). Kept in
/// thousandths of a byte, so a refill of `IMPORT_BUDGET_BYTES_PER_S` per second is exact
/// per millisecond and nothing is lost to rounding between calls.
#[derive(Debug)]
pub struct ImportBudget {
    milli_bytes: u128,
    at: tokio::time::Instant,
}

impl ImportBudget {
    const FULL: u128 = IMPORT_BUDGET_BYTES_MAX as u128 * 1000;

    /// A full budget at `now`.
    pub fn new(now: tokio::time::Instant) -> ImportBudget {
        ImportBudget {
            milli_bytes: Self::FULL,
            at: now,
        }
    }

    /// Takes the charge of a `len`-byte import at `now`, or says how long until it fits.
    pub fn take(&mut self, len: usize, now: tokio::time::Instant) -> Result<(), Duration> {
        let elapsed_ms = now.saturating_duration_since(self.at).as_millis();
        let regained = elapsed_ms.saturating_mul(u128::from(IMPORT_BUDGET_BYTES_PER_S));
        self.milli_bytes = self.milli_bytes.saturating_add(regained).min(Self::FULL);
        // Whole milliseconds only: the fraction counts at the next call.
        self.at += Duration::from_millis(elapsed_ms as u64);
        let charge = (len as u64).clamp(IMPORT_CHARGE_BYTES_MIN, IMPORT_BUDGET_BYTES_MAX);
        let charge = u128::from(charge) * 1000;
        if charge <= self.milli_bytes {
            self.milli_bytes -= charge;
            return Ok(());
        }
        let missing = charge - self.milli_bytes;
        let wait_ms = missing.div_ceil(u128::from(IMPORT_BUDGET_BYTES_PER_S));
        Err(Duration::from_millis(wait_ms as u64))
    }
}

/// The node's recent `SnapshotNow` answers and when it last took one.
#[derive(Default)]
pub struct SnapshotLedger {
    answers: VecDeque<(RequestId, pb::SnapshotNowResponse)>,
    last: Option<tokio::time::Instant>,
}

/// The Admin service.
pub struct AdminService {
    pub cluster: Arc<Cluster>,
    /// Serialises `SnapshotNow` calls and remembers their answers (module doc).
    pub snapshots: tokio::sync::Mutex<SnapshotLedger>,
    /// `ImportRegion`'s byte budget; held for the whole import (one at a time).
    pub imports: tokio::sync::Mutex<ImportBudget>,
    /// The node's snapshot directory, which `Backup` reads (`None`: no backups served).
    pub snapshot_dir: Option<PathBuf>,
    /// `Backup` streams in flight (module doc).
    pub backups: Arc<Semaphore>,
}

impl AdminService {
    pub fn new(cluster: Arc<Cluster>) -> AdminService {
        AdminService {
            cluster,
            snapshots: tokio::sync::Mutex::new(SnapshotLedger::default()),
            imports: tokio::sync::Mutex::new(ImportBudget::new(tokio::time::Instant::now())),
            snapshot_dir: None,
            backups: Arc::new(Semaphore::new(BACKUPS_INFLIGHT_MAX)),
        }
    }

    /// Serves `Backup` from the snapshot files in `dir`.
    pub fn with_snapshot_dir(mut self, dir: PathBuf) -> AdminService {
        self.snapshot_dir = Some(dir);
        self
    }
}

/// Checks a member address: `host:port` with a port of 1 to 65535, the host an IPv4
/// address, an IPv6 address in brackets or a DNS name, at most
/// [`MEMBER_ADDRESS_BYTES_MAX`] bytes.
pub fn check_member_address(address: &str) -> Result<(), String> {
    if address.is_empty() || address.len() > MEMBER_ADDRESS_BYTES_MAX {
        return Err(format!(
            "must be host:port, 1 to {MEMBER_ADDRESS_BYTES_MAX} bytes"
        ));
    }
    let bad = || {
        format!(
            "must be host:port with a port of 1 to 65535, got {}",
            echo(address)
        )
    };
    if let Ok(addr) = address.parse::<std::net::SocketAddr>() {
        return if addr.port() == 0 { Err(bad()) } else { Ok(()) };
    }
    let (host, port) = address.rsplit_once(':').ok_or_else(bad)?;
    let port_ok = !port.is_empty()
        && port.len() <= 5
        && port.bytes().all(|b| b.is_ascii_digit())
        && port.parse::<u16>().is_ok_and(|p| p != 0);
    let label_ok = |l: &str| {
        !l.is_empty()
            && l.len() <= DNS_LABEL_BYTES_MAX
            && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
            && !l.starts_with('-')
            && !l.ends_with('-')
    };
    if !port_ok || host.is_empty() || !host.split('.').all(label_ok) {
        return Err(bad());
    }
    Ok(())
}

/// A membership `node_id`: 0 is never a node.
fn node_id(v: u64) -> Result<u64, Status> {
    if v == 0 {
        return Err(invalid("node_id", "must not be 0"));
    }
    Ok(v)
}

/// A region-file rejection named inside `region_json` (`region_json.hospitals[3].name`).
fn in_region_json(r: Rejection) -> Status {
    match r {
        Rejection::Invalid { field, reason } => {
            let field = match field.as_str() {
                "region" => "region_json".to_string(),
                f => format!("region_json.{f}"),
            };
            invalid(&field, &reason)
        }
        other => super::bad(other),
    }
}

/// The voter leadership should move to when leader `st` must step aside: the most caught-up
/// other voter among those recently active (any other voter when none is).
fn successor(st: &Summary) -> Option<u64> {
    let others = || {
        st.progress
            .iter()
            .filter(|p| p.0 != st.id && st.voters.contains(&p.0))
    };
    others()
        .filter(|p| p.2)
        .max_by_key(|p| p.1)
        .or_else(|| others().max_by_key(|p| p.1))
        .map(|p| p.0)
}

impl AdminService {
    fn members(&self, st: &Summary) -> Vec<pb::Member> {
        let progress = |id: u64| st.progress.iter().find(|p| p.0 == id).copied();
        let member = |id: u64, role: pb::MemberRole| {
            let p = progress(id);
            pb::Member {
                node_id: id,
                address: self.cluster.book.peer(id).unwrap_or_default(),
                client_address: self.cluster.book.client(id).unwrap_or_default(),
                role: role as i32,
                leader: id == st.leader_id,
                match_index: p.map_or(0, |p| p.1),
                reachable: id == st.id || p.is_some_and(|p| p.2),
            }
        };
        let mut out: Vec<pb::Member> = st
            .voters
            .iter()
            .map(|id| member(*id, pb::MemberRole::Voter))
            .collect();
        out.extend(
            st.learners
                .iter()
                .map(|id| member(*id, pb::MemberRole::Learner)),
        );
        out
    }

    /// `RemoveMember` of this node while it leads: moves leadership first (module doc) and
    /// returns the answer that sends the removal to the new leader.
    async fn step_aside(&self, st: &Summary) -> Status {
        let me = st.id;
        let Some(to) = successor(st) else {
            return self
                .cluster
                .request_error(crate::RequestError::ConfChangeRejected(format!(
                    "{me} is the last voter"
                )));
        };
        let h = &self.cluster.handle;
        if let Err(e) = h.transfer_leader(to).await {
            return self.cluster.request_error(e);
        }
        let deadline = tokio::time::Instant::now() + LEADER_MOVE_WAIT;
        loop {
            let now = h.summary();
            if now.leader_id != 0 && now.leader_id != me {
                let msg = format!(
                    "node {me} was the leader: leadership moved to node {} (term {}) first; \
                     send the removal of node {me} there (ninety's client follows this hint)",
                    now.leader_id, now.term
                );
                return self.cluster.unavailable(msg, Some(now.leader_id));
            }
            if tokio::time::Instant::now() >= deadline {
                return Status::unavailable(format!(
                    "node {me} is the leader and leadership did not move to node {to} within \
                     {} ms; nothing was removed: retry",
                    LEADER_MOVE_WAIT.as_millis()
                ));
            }
            tokio::time::sleep(LEADER_POLL_INTERVAL).await;
        }
    }

    /// `Backup`'s `fresh`: a snapshot taken now (its id and state hash), or `None` when
    /// this node took one within [`SNAPSHOT_INTERVAL_MIN`] (the newest stored is recent).
    async fn fresh_snapshot(&self) -> Result<Option<(SnapshotId, Vec<u8>)>, Status> {
        let mut ledger = self.snapshots.lock().await;
        let now = tokio::time::Instant::now();
        if ledger
            .last
            .is_some_and(|t| now.saturating_duration_since(t) < SNAPSHOT_INTERVAL_MIN)
        {
            return Ok(None);
        }
        let s = self
            .cluster
            .handle
            .snapshot_now()
            .await
            .map_err(|e| self.cluster.request_error(e))?;
        ledger.last = Some(now);
        let id = SnapshotId {
            index: s.index,
            term: s.term,
        };
        Ok(Some((id, s.state_hash.to_vec())))
    }

    async fn change(
        &self,
        change: MembershipChange,
        request: Option<u128>,
    ) -> Result<Response<pb::MembershipResponse>, Status> {
        let answer = self.cluster.handle.change_membership(change, request).await;
        match answer {
            Ok(Reply::Membership(_)) => {}
            Ok(_) => return Err(Status::internal("unexpected reply to a membership change")),
            Err(e) => return Err(self.cluster.request_error(e)),
        }
        let st = self
            .cluster
            .handle
            .current_summary()
            .await
            .map_err(|e| self.cluster.request_error(e))?;
        Ok(Response::new(pb::MembershipResponse {
            members: self.members(&st),
            commit: Some(pb::CommitInfo {
                log_index: st.applied_index,
                log_time_ms: st.applied_log_time_ms,
                replayed: false,
            }),
        }))
    }
}

#[tonic::async_trait]
impl Admin for AdminService {
    async fn import_region(
        &self,
        request: GrpcRequest<pb::ImportRegionRequest>,
    ) -> Result<Response<pb::ImportRegionResponse>, Status> {
        let deadline = super::Deadline::of(&request, super::WRITE_TIMEOUT);
        let r = request.into_inner();
        let id = super::request_id(&r.request_id)?;
        let Ok(mut budget) = self.imports.try_lock() else {
            return Err(Status::resource_exhausted(
                "an ImportRegion is already running on this node; retry when it has finished",
            ));
        };
        if let Err(wait) = budget.take(r.region_json.len(), tokio::time::Instant::now()) {
            return Err(Status::resource_exhausted(format!(
                "ImportRegion rate limit of this node ({IMPORT_BUDGET_BYTES_PER_S} bytes per \
                 second): retry in {} ms",
                wait.as_millis()
            )));
        }
        let text =
            std::str::from_utf8(&r.region_json).map_err(|_| invalid("region_json", "not UTF-8"))?;
        let file = RegionFile::from_json(text).map_err(in_region_json)?;
        file.validate().map_err(in_region_json)?;
        // Checked on the applied state (linearizable) so a refusal never reaches the log.
        let view = self.cluster.view_read(false, deadline).await?;
        if !view.region.hospitals.is_empty() {
            return Err(super::bad(Rejection::RegionAlreadyLoaded));
        }
        let (alliances, edges) = (file.alliances.len() as u32, file.roads.len() as u32);
        let request = Request {
            id,
            command: Command::ImportRegion(Box::new(file)),
        };
        let written = self.cluster.write(&request, deadline).await?;
        let reply = written.applied.outcome.clone().map_err(in_region_json)?;
        let ninety_engine::Reply::RegionImported {
            hospitals,
            wards,
            beds,
            doctors,
        } = reply
        else {
            return Err(Status::internal("unexpected reply to ImportRegion"));
        };
        Ok(Response::new(pb::ImportRegionResponse {
            hospitals,
            wards,
            beds,
            doctors,
            alliances,
            travel_edges: edges,
            commit: Some(written.commit()),
        }))
    }

    async fn cluster_status(
        &self,
        request: GrpcRequest<pb::ClusterStatusRequest>,
    ) -> Result<Response<pb::ClusterStatusResponse>, Status> {
        let (st, state_hash) = if request.get_ref().with_state_hash {
            let full = self
                .cluster
                .handle
                .status()
                .await
                .map_err(|e| self.cluster.request_error(e))?;
            (Arc::new(full.summary), full.state_hash.to_vec())
        } else {
            (self.cluster.handle.summary(), Vec::new())
        };
        Ok(Response::new(pb::ClusterStatusResponse {
            node_id: st.id,
            leader_id: st.leader_id,
            term: st.term,
            commit_index: st.commit_index,
            applied_index: st.applied_index,
            state_hash,
            members: self.members(&st),
            applied_log_time_ms: st.applied_log_time_ms,
            removed: st.removed,
            version: crate::metrics::VERSION.to_string(),
        }))
    }

    async fn add_member(
        &self,
        request: GrpcRequest<pb::AddMemberRequest>,
    ) -> Result<Response<pb::MembershipResponse>, Status> {
        let r = request.into_inner();
        node_id(r.node_id)?;
        let key = membership_key(&r.request_id)?;
        check_member_address(&r.address).map_err(|why| invalid("address", &why))?;
        check_member_address(&r.client_address).map_err(|why| invalid("client_address", &why))?;
        if r.client_address == r.address {
            return Err(invalid(
                "client_address",
                "is the peer address: a node serves clients on `listen` and peers on \
                 `peer_listen`, two different ports",
            ));
        }
        // Recorded before the change so the leader can reach the learner at once, and put
        // back when the change is refused (a member's id, a change in progress, a full
        // queue): a refused call changes nothing, so the book never dials a member at an
        // address nobody accepted. An outcome that is unknown (UNAVAILABLE, which also
        // answers "not the leader") keeps it: the change may have been applied, and a retry
        // sets the same address again.
        let addrs = crate::runtime::config::NodeAddrs {
            peer: r.address,
            client: r.client_address,
        };
        let before = self.cluster.book.set(r.node_id, addrs);
        let answer = self
            .change(MembershipChange::AddLearner(r.node_id), key)
            .await;
        if let Err(s) = &answer {
            if matches!(
                s.code(),
                tonic::Code::FailedPrecondition
                    | tonic::Code::InvalidArgument
                    | tonic::Code::ResourceExhausted
            ) {
                self.cluster.book.restore(r.node_id, before);
            }
        }
        answer
    }

    async fn promote_member(
        &self,
        request: GrpcRequest<pb::PromoteMemberRequest>,
    ) -> Result<Response<pb::MembershipResponse>, Status> {
        let r = request.into_inner();
        let key = membership_key(&r.request_id)?;
        self.change(MembershipChange::PromoteVoter(node_id(r.node_id)?), key)
            .await
    }

    async fn remove_member(
        &self,
        request: GrpcRequest<pb::RemoveMemberRequest>,
    ) -> Result<Response<pb::MembershipResponse>, Status> {
        let r = request.into_inner();
        let id = node_id(r.node_id)?;
        let key = membership_key(&r.request_id)?;
        let h = &self.cluster.handle;
        if id == h.summary().id {
            // Asked of the node task itself, not the published summary: that one is
            // published after the node task's poll and can still say "follower" just after
            // this node won an election (a `transfer-leader` to it, seen by the others
            // first), and the node core would then refuse the removal of its leader.
            let st = h
                .current_summary()
                .await
                .map_err(|e| self.cluster.request_error(e))?;
            if st.role == raft::StateRole::Leader && !st.removed {
                return Err(self.step_aside(&st).await);
            }
        }
        self.change(MembershipChange::Remove(id), key).await
    }

    async fn transfer_leader(
        &self,
        request: GrpcRequest<pb::TransferLeaderRequest>,
    ) -> Result<Response<pb::TransferLeaderResponse>, Status> {
        let r = request.into_inner();
        let h = &self.cluster.handle;
        let err = |e| self.cluster.request_error(e);
        let st = h.summary();
        let to = match r.to_node_id {
            0 => st
                .progress
                .iter()
                .filter(|p| p.0 != st.id && st.voters.contains(&p.0))
                .max_by_key(|p| p.1)
                .map(|p| p.0)
                .ok_or_else(|| {
                    self.cluster.request_error(crate::RequestError::NotLeader {
                        leader: (st.leader_id != 0).then_some(st.leader_id),
                    })
                })?,
            n => n,
        };
        h.transfer_leader(to).await.map_err(err)?;
        let deadline = tokio::time::Instant::now() + TRANSFER_WAIT;
        loop {
            let st = h.summary();
            if st.leader_id == to || tokio::time::Instant::now() >= deadline {
                return Ok(Response::new(pb::TransferLeaderResponse {
                    leader_id: st.leader_id,
                    term: st.term,
                }));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    async fn snapshot_now(
        &self,
        request: GrpcRequest<pb::SnapshotNowRequest>,
    ) -> Result<Response<pb::SnapshotNowResponse>, Status> {
        let id = super::request_id(&request.get_ref().request_id)?;
        let mut ledger = self.snapshots.lock().await;
        if let Some((_, first)) = ledger.answers.iter().find(|(k, _)| *k == id) {
            return Ok(Response::new(first.clone()));
        }
        let now = tokio::time::Instant::now();
        if let Some(wait) = ledger
            .last
            .map(|t| SNAPSHOT_INTERVAL_MIN.saturating_sub(now.saturating_duration_since(t)))
            .filter(|w| !w.is_zero())
        {
            return Err(Status::failed_precondition(format!(
                "a snapshot was taken less than {} s ago on this node; retry in {} ms",
                SNAPSHOT_INTERVAL_MIN.as_secs(),
                wait.as_millis()
            )));
        }
        let s = self
            .cluster
            .handle
            .snapshot_now()
            .await
            .map_err(|e| self.cluster.request_error(e))?;
        let answer = pb::SnapshotNowResponse {
            snapshot_index: s.index,
            snapshot_term: s.term,
            state_hash: s.state_hash.to_vec(),
            snapshot_bytes: s.bytes,
        };
        ledger.last = Some(now);
        if ledger.answers.len() >= SNAPSHOT_ANSWERS_MAX {
            ledger.answers.pop_front();
        }
        ledger.answers.push_back((id, answer.clone()));
        Ok(Response::new(answer))
    }

    type BackupStream = BackupChunks;

    async fn backup(
        &self,
        request: GrpcRequest<pb::BackupRequest>,
    ) -> Result<Response<BackupChunks>, Status> {
        let Some(dir) = self.snapshot_dir.clone() else {
            return Err(Status::failed_precondition(
                "this node serves no backups: it has no snapshot directory",
            ));
        };
        let permit = self.backups.clone().try_acquire_owned().map_err(|_| {
            Status::resource_exhausted(format!(
                "{BACKUPS_INFLIGHT_MAX} backups are already streaming from this node; retry \
                 when one has finished"
            ))
        })?;
        let fresh = if request.get_ref().fresh {
            self.fresh_snapshot().await?
        } else {
            None
        };
        let want = fresh.as_ref().map(|f| f.0);
        let snap = tokio::task::spawn_blocking(move || open_snapshot(&dir, want))
            .await
            .map_err(|e| Status::internal(format!("backup reader: {e}")))??;
        let header = pb::BackupHeader {
            cluster_id: self.cluster.book.stamp().cluster_id,
            node_id: self.cluster.handle.summary().id,
            snapshot_index: snap.id.index,
            snapshot_term: snap.id.term,
            snapshot_bytes: snap.bytes,
            state_hash: fresh
                .filter(|f| f.0 == snap.id)
                .map(|f| f.1)
                .unwrap_or_default(),
        };
        let (tx, rx) = mpsc::channel(BACKUP_CHUNKS_QUEUED);
        tokio::task::spawn_blocking(move || send_chunks(snap, header, tx, permit));
        Ok(Response::new(Box::pin(
            tokio_stream::wrappers::ReceiverStream::new(rx),
        )))
    }
}

/// The `Backup` stream.
pub type BackupChunks =
    Pin<Box<dyn Stream<Item = Result<pb::BackupChunk, Status>> + Send + 'static>>;

/// An opened snapshot file, positioned at its body: its id, length and CRC-32.
struct OpenSnapshot {
    id: SnapshotId,
    file: std::fs::File,
    bytes: u64,
    crc: u32,
}

/// Opens snapshot `want`, or else the newest readable one in `dir` (module doc).
fn open_snapshot(dir: &std::path::Path, want: Option<SnapshotId>) -> Result<OpenSnapshot, Status> {
    let files = SnapshotFiles::existing(dir);
    let ids = files
        .list()
        .map_err(|e| Status::unavailable(format!("snapshot directory: {e}")))?;
    let mut failed = None;
    for id in want.into_iter().chain(ids.into_iter().rev()) {
        match files.open_body(id) {
            Ok((file, bytes, crc)) => {
                return Ok(OpenSnapshot {
                    id,
                    file,
                    bytes,
                    crc,
                })
            }
            Err(e) => failed = Some(e),
        }
    }
    Err(match failed {
        None => Status::failed_precondition(
            "this node has stored no snapshot yet: call Backup with fresh = true",
        ),
        Some(e) => Status::data_loss(format!("no readable snapshot file: {e}")),
    })
}

/// Reads `snap` in chunks into `tx`, the header first and the SHA-256 last, checking the
/// file's CRC-32 before the last chunk goes out; holds `_permit` until done.
fn send_chunks(
    mut snap: OpenSnapshot,
    header: pb::BackupHeader,
    tx: mpsc::Sender<Result<pb::BackupChunk, Status>>,
    _permit: OwnedSemaphorePermit,
) {
    let (mut sha, mut crc) = (Sha256::new(), crc32fast::Hasher::new());
    let mut header = Some(header);
    let mut sent = 0u64;
    loop {
        let len = (snap.bytes - sent).min(BACKUP_CHUNK_BYTES as u64) as usize;
        let mut data = vec![0u8; len];
        if let Err(e) = snap.file.read_exact(&mut data) {
            let why = format!("snapshot {}-{}: {e}", snap.id.index, snap.id.term);
            let _ = tx.blocking_send(Err(Status::data_loss(why)));
            return;
        }
        sha.update(&data);
        crc.update(&data);
        sent += len as u64;
        let last = sent == snap.bytes;
        let mut chunk = pb::BackupChunk {
            header: header.take(),
            data,
            sha256: Vec::new(),
        };
        if last {
            if crc.clone().finalize() != snap.crc {
                let _ = tx.blocking_send(Err(Status::data_loss(format!(
                    "snapshot {}-{} is damaged on this node (CRC-32): back up from another node",
                    snap.id.index, snap.id.term
                ))));
                return;
            }
            chunk.sha256 = sha.clone().finalize().to_vec();
        }
        if tx.blocking_send(Ok(chunk)).is_err() || last {
            return;
        }
    }
}

/// The request key of a membership call: none when `request_id` is empty (the call is then
/// not idempotent), else the parsed id (`INVALID_ARGUMENT` naming `request_id` otherwise).
fn membership_key(text: &str) -> Result<Option<u128>, Status> {
    if text.is_empty() {
        return Ok(None);
    }
    Ok(Some(super::request_id(text)?.0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn member_addresses_are_host_and_port() {
        for ok in [
            "127.0.0.1:7001",
            "[::1]:7001",
            "node-3.region.example:65535",
            "localhost:1",
        ] {
            assert_eq!(check_member_address(ok), Ok(()), "{ok}");
        }
        let long = format!("{}:7001", "a".repeat(1 << 20));
        for bad in [
            "",
            "127.0.0.1:99999",
            "127.0.0.1:0",
            "a:b:c",
            "host",
            "host:",
            ":7001",
            "host:+80",
            "-bad-.example:80",
            "a..b:80",
            "::1:80",
            long.as_str(),
        ] {
            assert!(check_member_address(bad).is_err(), "{bad}");
        }
        let Err(why) = check_member_address(&format!("{}:1:2", "x".repeat(100))) else {
            panic!()
        };
        assert!(why.len() < 200, "{why}");
    }

    #[test]
    fn imports_are_limited_by_their_bytes() {
        let t0 = tokio::time::Instant::now();
        let mut b = ImportBudget::new(t0);
        let big = GRPC_MESSAGE_BYTES_MAX;
        assert_eq!(b.take(big, t0), Ok(()));
        assert_eq!(b.take(big, t0), Ok(()));
        let wait = b.take(big, t0).unwrap_err();
        let ten = Duration::from_secs(10);
        assert!(
            wait >= ten && wait < ten + Duration::from_millis(10),
            "{wait:?}: one per 10 s"
        );
        // Half the wait regains half: still refused; after the full wait it runs.
        assert!(b.take(big, t0 + wait / 2).is_err());
        assert_eq!(b.take(big, t0 + wait), Ok(()));
        // Small imports are charged the minimum: a burst of them passes, a loop does not.
        let mut b = ImportBudget::new(t0);
        let burst = (IMPORT_BUDGET_BYTES_MAX / IMPORT_CHARGE_BYTES_MIN) as usize;
        assert!((0..burst).all(|_| b.take(10, t0).is_ok()));
        assert!(b.take(10, t0).is_err());
    }

    #[test]
    fn region_file_fields_are_named_inside_region_json() {
        let s = in_region_json(Rejection::invalid("hospitals[2].name", "empty"));
        assert_eq!(s.code(), tonic::Code::InvalidArgument);
        let r = super::super::status_rejection(&s);
        assert_eq!(r.field, "region_json.hospitals.2.name");
    }
}
