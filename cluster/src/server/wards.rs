//! `BedHolds.ListWards`: the wards of one hospital or of the region, page by page, each
//! with its record and its bed counts. A read (any role), linearizable unless `LOCAL`; the
//! page is the engine's (`ninety_engine::read::WardPageQuery`, by ward id, at most
//! `WARDS_PAGE_MAX`).

use super::convert::Field;
use super::{bad, local, Cluster, Deadline, READ_TIMEOUT};
use ninety_engine::limits::WARDS_PAGE_MAX;
use ninety_engine::read::{Answer, Query, WardPageQuery};
use ninety_engine::{HospitalId, Rejection, WardId};
use ninety_proto::v1 as pb;
use tonic::{Request as GrpcRequest, Response, Status};

/// Wards on a page when the request does not say (`limit` 0).
pub const WARDS_PAGE_DEFAULT: usize = 100;

/// The engine's page query for a request; a bad `limit` is refused naming it.
fn page_query(r: &pb::ListWardsRequest) -> Result<WardPageQuery, Rejection> {
    let at = Field::top();
    Ok(WardPageQuery {
        hospital: at.opt_id(r.hospital_id).map(HospitalId),
        after: WardId(r.after_ward_id),
        limit: at.limit("limit", r.limit, WARDS_PAGE_DEFAULT, WARDS_PAGE_MAX)?,
    })
}

/// Answers `ListWards` (module doc).
pub async fn list(
    cluster: &Cluster,
    request: GrpcRequest<pb::ListWardsRequest>,
) -> Result<Response<pb::ListWardsResponse>, Status> {
    let deadline = Deadline::of(&request, READ_TIMEOUT);
    let r = request.into_inner();
    let query = page_query(&r).map_err(bad)?;
    let hospital = query.hospital;
    let (result, index) = cluster
        .read(&Query::WardPage(query), local(r.consistency)?, deadline)
        .await?;
    let Answer::WardPage(page) = result else {
        return Err(Status::internal("unexpected query result"));
    };
    let unknown = || {
        bad(Rejection::UnknownHospital(
            hospital.unwrap_or(HospitalId(0)),
        ))
    };
    let page = page.ok_or_else(unknown)?;
    let wards = page
        .wards
        .iter()
        .map(|(record, info)| pb::ListedWard {
            ward: Some(super::capacity::ward_pb(record)),
            availability: Some(super::beds::ward_pb(info)),
        })
        .collect();
    Ok(Response::new(pb::ListWardsResponse {
        wards,
        next_after_ward_id: page.next_after.map_or(0, |w| w.0),
        applied_index: index,
    }))
}
