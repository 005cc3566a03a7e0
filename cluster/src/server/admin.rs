//! `ninety.v1.Admin`: region import, status, membership, leadership and snapshots.
//!
//! Membership changes and leadership transfers must be sent to the leader (they are not
//! forwarded): another node answers `UNAVAILABLE` with the leader in the metadata. They are
//! one at a time and idempotent by effect (adding a member twice is refused as already
//! done), not by request id: Raft conf changes do not pass through the engine's dedup table.

use super::{invalid, Cluster};
use crate::node::{MembershipChange, Reply};
use ninety_engine::{Command, RegionFile, Request};
use ninety_proto::v1 as pb;
use ninety_proto::v1::admin_server::Admin;
use std::sync::Arc;
use std::time::Duration;
use tonic::{Request as GrpcRequest, Response, Status};

/// How long TransferLeader waits for the new leader to show.
pub const TRANSFER_WAIT: Duration = Duration::from_secs(3);

/// The Admin service.
pub struct AdminService {
    pub cluster: Arc<Cluster>,
}

impl AdminService {
    async fn members(&self) -> Result<Vec<pb::Member>, Status> {
        let st = self
            .cluster
            .handle
            .status()
            .await
            .map_err(|e| self.cluster.request_error(e))?;
        let progress = |id: u64| st.progress.iter().find(|p| p.0 == id).copied();
        let member = |id: u64, role: pb::MemberRole| {
            let p = progress(id);
            pb::Member {
                node_id: id,
                address: self.cluster.book.get(id).unwrap_or_default(),
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
        Ok(out)
    }

    async fn change(
        &self,
        change: MembershipChange,
    ) -> Result<Response<pb::MembershipResponse>, Status> {
        let answer = self.cluster.handle.change_membership(change).await;
        match answer {
            Ok(Reply::Membership(_)) => {}
            Ok(_) => return Err(Status::internal("unexpected reply to a membership change")),
            Err(e) => return Err(self.cluster.request_error(e)),
        }
        let st = self
            .cluster
            .handle
            .status()
            .await
            .map_err(|e| self.cluster.request_error(e))?;
        Ok(Response::new(pb::MembershipResponse {
            members: self.members().await?,
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
        let text =
            std::str::from_utf8(&r.region_json).map_err(|_| invalid("region_json", "not UTF-8"))?;
        let file = RegionFile::from_json(text).map_err(|e| super::rejection_status(&e))?;
        let (alliances, edges) = (file.alliances.len() as u32, file.roads.len() as u32);
        let request = Request {
            id,
            command: Command::ImportRegion(Box::new(file)),
        };
        let (written, reply) = self.cluster.write_ok(&request, deadline).await?;
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
        _request: GrpcRequest<pb::ClusterStatusRequest>,
    ) -> Result<Response<pb::ClusterStatusResponse>, Status> {
        let st = self
            .cluster
            .handle
            .status()
            .await
            .map_err(|e| self.cluster.request_error(e))?;
        Ok(Response::new(pb::ClusterStatusResponse {
            node_id: st.id,
            leader_id: st.leader_id,
            term: st.term,
            commit_index: st.commit_index,
            applied_index: st.applied_index,
            state_hash: st.state_hash.to_vec(),
            members: self.members().await?,
            applied_log_time_ms: st.applied_log_time_ms,
        }))
    }

    async fn add_member(
        &self,
        request: GrpcRequest<pb::AddMemberRequest>,
    ) -> Result<Response<pb::MembershipResponse>, Status> {
        let r = request.into_inner();
        if r.node_id == 0 {
            return Err(invalid("node_id", "must not be 0"));
        }
        if r.address.parse::<std::net::SocketAddr>().is_err() && !r.address.contains(':') {
            return Err(invalid("address", "must be host:port"));
        }
        // Recorded before the change so the leader can reach the learner at once.
        self.cluster.book.set(r.node_id, r.address);
        self.change(MembershipChange::AddLearner(r.node_id)).await
    }

    async fn promote_member(
        &self,
        request: GrpcRequest<pb::PromoteMemberRequest>,
    ) -> Result<Response<pb::MembershipResponse>, Status> {
        let r = request.into_inner();
        self.change(MembershipChange::PromoteVoter(r.node_id)).await
    }

    async fn remove_member(
        &self,
        request: GrpcRequest<pb::RemoveMemberRequest>,
    ) -> Result<Response<pb::MembershipResponse>, Status> {
        let r = request.into_inner();
        self.change(MembershipChange::Remove(r.node_id)).await
    }

    async fn transfer_leader(
        &self,
        request: GrpcRequest<pb::TransferLeaderRequest>,
    ) -> Result<Response<pb::TransferLeaderResponse>, Status> {
        let r = request.into_inner();
        let h = &self.cluster.handle;
        let err = |e| self.cluster.request_error(e);
        let st = h.status().await.map_err(err)?;
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
            let st = h.status().await.map_err(err)?;
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
        _request: GrpcRequest<pb::SnapshotNowRequest>,
    ) -> Result<Response<pb::SnapshotNowResponse>, Status> {
        let s = self
            .cluster
            .handle
            .snapshot_now()
            .await
            .map_err(|e| self.cluster.request_error(e))?;
        Ok(Response::new(pb::SnapshotNowResponse {
            snapshot_index: s.index,
            snapshot_term: s.term,
            state_hash: s.state_hash.to_vec(),
            snapshot_bytes: s.bytes,
        }))
    }
}
