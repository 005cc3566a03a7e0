//! `ninety.v1.BedHolds`: the unary bed-hold calls, the batches (`HoldBeds`,
//! `ResolveHolds`) and the bidirectional `Stream`.
//!
//! A `CHANNEL_REFERRAL` hold must name its referral (`referral_id`): an existing referral
//! of the same patient waiting for capacity (the engine's `HoldBedForReferral`, refused
//! naming `referral_id` otherwise). Urgency is accepted and not stored; holds report
//! urgency, channel and referral as unspecified.
//!
//! Batches: every item is validated, and the valid ones are proposed together
//! ([`Cluster::write_many`]: one node command, admitted all or none by the pending-proposal
//! bound, so a batch that does not fit gets `REJECTION_CODE_UNAVAILABLE` on every item and
//! nothing is proposed); the node's group commit puts them in as few Raft entries as the
//! batch limits allow; results come back in the items' order. On a follower the items are
//! forwarded to the leader one by one. The batch's own `request_id` is validated but not
//! deduplicated: a retry of the batch replays each item through the item's request id.
//!
//! Stream: each `BedOp` is answered by one `BedOpResult` with its `seq`, in completion
//! order. The write ops that have arrived together are proposed together, like a batch.
//! At most [`STREAM_IN_FLIGHT_MAX`] ops are in flight per stream; past that the
//! server stops reading (HTTP/2 flow control pushes back on the client). A `seq` that is
//! still pending is refused (`seq`); an op without a body is refused (`op`).

use super::convert::{self, Field};
use super::{invalid, local, Cluster, Deadline, READ_TIMEOUT, WRITE_TIMEOUT};
use ninety_engine::read::{Answer, Query, WardInfo};
use ninety_engine::BedHold;
use ninety_engine::{
    BedId, BedTarget, Channel, Command, HoldId, HoldState, HospitalId, ReferralId, Rejection,
    Request, WardId,
};
use ninety_proto::v1 as pb;
use ninety_proto::v1::bed_holds_server::BedHolds;
use std::collections::HashSet;
use std::pin::Pin;
use std::sync::Arc;
use tokio_stream::Stream;
use tonic::{Request as GrpcRequest, Response, Status, Streaming};

/// Items in one `HoldBeds` or `ResolveHolds` call.
pub const BATCH_ITEMS_MAX: usize = 1024;
/// Ops in flight on one `Stream`.
pub const STREAM_IN_FLIGHT_MAX: usize = 1024;

/// The BedHolds service.
pub struct BedHoldsService {
    pub cluster: Arc<Cluster>,
}

fn hold_state(s: &HoldState) -> pb::HoldState {
    match s {
        HoldState::Pending => pb::HoldState::Active,
        HoldState::Confirmed { .. } => pb::HoldState::Confirmed,
        HoldState::Released { .. } => pb::HoldState::Released,
        HoldState::Expired { .. } => pb::HoldState::Expired,
    }
}

/// The wire form of one ward's availability: `free` is the admissible count and `blocked`
/// includes the unstaffed free beds (`ninety_engine::read::WardInfo`), so the counts add
/// up to the ward's physical beds.
pub(super) fn ward_pb(w: &WardInfo) -> pb::WardAvailability {
    let c = &w.counts;
    pb::WardAvailability {
        hospital_id: w.hospital.0,
        ward_id: w.ward.0,
        specialty: convert::specialty_name(w.specialty),
        total_beds: c.physical,
        free_beds: c.free,
        held_beds: c.held,
        occupied_beds: c.occupied,
        blocked_beds: c.blocked,
        to_clean_beds: c.to_clean,
        staffed_beds: c.staffed,
        blocked: Some(pb::BlockedBeds {
            isolation: w.blocked.isolation,
            maintenance: w.blocked.maintenance,
            no_staff: w.blocked.no_staff,
            unstaffed: w.blocked.unstaffed,
        }),
    }
}

/// The wire form of a hold.
pub fn to_pb(hold: &BedHold, hospital: HospitalId) -> pb::BedHold {
    pb::BedHold {
        hold_id: hold.id.0,
        hospital_id: hospital.0,
        ward_id: hold.ward.0,
        bed_id: hold.bed.0,
        patient_ref: hold.patient.to_string(),
        state: hold_state(&hold.state) as i32,
        urgency: pb::Urgency::Unspecified as i32,
        channel: pb::Channel::Unspecified as i32,
        referral_id: 0,
        created_ms: hold.created_at.0,
        expires_ms: hold.expires_at.0,
        resolved_ms: hold.state.resolved_at().map_or(0, |t| t.0),
    }
}

impl BedHoldsService {
    async fn mutate(
        cluster: &Cluster,
        request: Request,
        deadline: Deadline,
    ) -> Result<pb::BedHoldResponse, Status> {
        response(cluster.write(&request, deadline).await)
    }

    async fn get(
        cluster: &Cluster,
        r: &pb::GetHoldRequest,
        at: &Field,
        deadline: Deadline,
    ) -> Result<pb::GetHoldResponse, Status> {
        let hold_id = at
            .id("hold_id", r.hold_id)
            .map_err(|e| super::rejection_status(&e))?;
        let local = at
            .local("consistency", r.consistency)
            .map_err(|e| super::rejection_status(&e))?;
        let query = Query::Hold(HoldId(hold_id));
        let (result, index) = cluster.read(&query, local, deadline).await?;
        match result {
            Answer::Hold(Some((hold, hospital))) => Ok(pb::GetHoldResponse {
                hold: Some(to_pb(&hold, hospital)),
                applied_index: index,
            }),
            Answer::Hold(None) => Err(super::rejection_status(&Rejection::UnknownHold(HoldId(
                hold_id,
            )))),
            _ => Err(Status::internal("unexpected query result")),
        }
    }
}

/// The answer to a bed-hold write: the hold and where it committed, or the engine's
/// rejection as a status.
fn response(written: Result<super::Written, Status>) -> Result<pb::BedHoldResponse, Status> {
    let written = written?;
    if let Err(r) = &written.applied.outcome {
        return Err(super::rejection_status(r));
    }
    let hold = written
        .applied
        .hold
        .as_ref()
        .map(|(h, hosp)| to_pb(h, *hosp));
    Ok(pb::BedHoldResponse {
        hold,
        commit: Some(written.commit()),
    })
}

/// The engine request of a `HoldBedRequest` (fields named under `at`).
pub fn hold_request(r: &pb::HoldBedRequest, at: &Field) -> Result<Request, Rejection> {
    let id = super::parse_request_id(at, "request_id", &r.request_id)?;
    let patient = at.patient("patient_ref", &r.patient_ref)?;
    let target = match (r.ward_id, r.bed_id) {
        (0, b) if b != 0 => BedTarget::Bed(BedId(b)),
        // The engine refuses a bed of another ward, naming `bed_id`.
        (w, b) if b != 0 => BedTarget::BedInWard {
            ward: WardId(w),
            bed: BedId(b),
        },
        (0, _) => return Err(at.invalid("ward_id", "must name a ward (or give bed_id)")),
        (w, _) => BedTarget::Ward(WardId(w)),
    };
    // Accepted and not stored (module doc), but still checked.
    at.opt_urgency("urgency", r.urgency)?;
    let channel = at.channel_or("channel", r.channel, Some(Channel::Public))?;
    let command = match channel {
        Channel::Referral => Command::HoldBedForReferral {
            target,
            patient,
            ttl_ms: r.ttl_ms,
            referral: ReferralId(at.id("referral_id", r.referral_id)?),
        },
        Channel::Public => Command::HoldBed {
            target,
            patient,
            ttl_ms: r.ttl_ms,
        },
    };
    Ok(Request { id, command })
}

fn confirm_request(r: &pb::ConfirmHoldRequest, at: &Field) -> Result<Request, Rejection> {
    let id = super::parse_request_id(at, "request_id", &r.request_id)?;
    let hold = HoldId(at.id("hold_id", r.hold_id)?);
    Ok(Request {
        id,
        command: Command::ConfirmHold { hold },
    })
}

fn release_request(r: &pb::ReleaseHoldRequest, at: &Field) -> Result<Request, Rejection> {
    let id = super::parse_request_id(at, "request_id", &r.request_id)?;
    let hold = HoldId(at.id("hold_id", r.hold_id)?);
    at.text("reason", &r.reason)?;
    Ok(Request {
        id,
        command: Command::ReleaseHold { hold },
    })
}

fn resolution_request(r: &pb::HoldResolution, at: &Field) -> Result<Request, Rejection> {
    let id = super::parse_request_id(at, "request_id", &r.request_id)?;
    let hold = HoldId(at.id("hold_id", r.hold_id)?);
    at.text("reason", &r.reason)?;
    let command = match pb::HoldAction::try_from(r.action) {
        Ok(pb::HoldAction::Confirm) => Command::ConfirmHold { hold },
        Ok(pb::HoldAction::Release) => Command::ReleaseHold { hold },
        _ => return Err(at.invalid("action", "must be CONFIRM or RELEASE")),
    };
    Ok(Request { id, command })
}

/// A unary answer as a per-item result.
fn item_result(answer: Result<pb::BedHoldResponse, Status>) -> pb::BedHoldResult {
    match answer {
        Ok(r) => pb::BedHoldResult {
            outcome: r.hold.map(pb::bed_hold_result::Outcome::Hold),
            commit: r.commit,
        },
        Err(s) => pb::BedHoldResult {
            outcome: Some(pb::bed_hold_result::Outcome::Rejection(
                super::status_rejection(&s),
            )),
            commit: None,
        },
    }
}

fn rejected(r: &Rejection) -> pb::BedHoldResult {
    pb::BedHoldResult {
        outcome: Some(pb::bed_hold_result::Outcome::Rejection(
            super::rejection_pb(r),
        )),
        commit: None,
    }
}

/// Proposes every valid item together (one node command: admitted all or none by the
/// pending-proposal bound) and answers in the items' order. The whole call fails only when
/// the client's deadline cut it short.
async fn run_batch(
    cluster: &Arc<Cluster>,
    items: Vec<Result<Request, Rejection>>,
    deadline: Deadline,
) -> Result<pb::BedHoldResults, Status> {
    let mut results: Vec<Option<pb::BedHoldResult>> = vec![None; items.len()];
    let mut slots = Vec::new();
    let mut requests = Vec::new();
    for (i, item) in items.into_iter().enumerate() {
        match item {
            Err(r) => results[i] = Some(rejected(&r)),
            Ok(request) => {
                slots.push(i);
                requests.push(request);
            }
        }
    }
    let written = cluster.write_many(&requests, deadline).await;
    for (i, w) in slots.into_iter().zip(written) {
        let answer = response(w);
        if let Err(s) = &answer {
            if s.code() == tonic::Code::DeadlineExceeded {
                return Err(deadline.expired("batch"));
            }
        }
        let mut result = item_result(answer);
        // The engine names fields as in a single request: name them inside the item.
        if let Some(pb::bed_hold_result::Outcome::Rejection(r)) = &mut result.outcome {
            if !r.field.is_empty() {
                r.field = Field::item("items", i).name(&r.field);
            }
        }
        if let Some(slot) = results.get_mut(i) {
            *slot = Some(result);
        }
    }
    let results = results
        .into_iter()
        .map(|r| r.unwrap_or_else(|| item_result(Err(Status::internal("item not answered")))))
        .collect();
    Ok(pb::BedHoldResults { results })
}

fn check_batch(request_id: &str, len: usize) -> Result<(), Status> {
    super::request_id(request_id)?;
    if len == 0 || len > BATCH_ITEMS_MAX {
        return Err(invalid(
            "items",
            &format!("must hold 1 to {BATCH_ITEMS_MAX} items"),
        ));
    }
    Ok(())
}

/// Answers one stream read op (never fails: a failure is the op's rejection).
async fn stream_get(cluster: Arc<Cluster>, r: pb::GetHoldRequest) -> pb::BedHoldResult {
    let answer = BedHoldsService::get(&cluster, &r, &Field::top(), Deadline::server(READ_TIMEOUT))
        .await
        .map(|g| pb::BedHoldResponse {
            hold: g.hold,
            commit: None,
        });
    item_result(answer)
}

/// Answers a group of stream write ops with one `write_many` (never fails: a failure is
/// the op's rejection); results in the group's order.
async fn stream_writes(
    cluster: Arc<Cluster>,
    ops: Vec<(u64, Request)>,
) -> Vec<(u64, pb::BedHoldResult)> {
    let deadline = Deadline::server(WRITE_TIMEOUT);
    let (seqs, requests): (Vec<u64>, Vec<Request>) = ops.into_iter().unzip();
    let written = cluster.write_many(&requests, deadline).await;
    seqs.into_iter()
        .zip(written)
        .map(|(seq, w)| (seq, item_result(response(w))))
        .collect()
}

/// What to do with one op read from the stream.
enum StreamOp {
    Answer(pb::BedHoldResult),
    Get(pb::GetHoldRequest),
    Write(Request),
}

fn classify(op: pb::bed_op::Op) -> StreamOp {
    let at = Field::top();
    let request = match &op {
        pb::bed_op::Op::Hold(r) => hold_request(r, &at),
        pb::bed_op::Op::Confirm(r) => confirm_request(r, &at),
        pb::bed_op::Op::Release(r) => release_request(r, &at),
        pb::bed_op::Op::Get(r) => return StreamOp::Get(*r),
    };
    match request {
        Err(r) => StreamOp::Answer(rejected(&r)),
        Ok(request) => StreamOp::Write(request),
    }
}

/// The status a stream ends with when the client's side broke (a frame that does not
/// decode, a truncated frame): the client's fault, so `INVALID_ARGUMENT` (the request
/// codec already answers that for a message that does not decode; tonic's framing errors
/// arrive as `INTERNAL`).
fn inbound_error(s: Status) -> Status {
    if super::decode::is_framing_error(&s) {
        return super::decode::framing_status(&s);
    }
    s
}

/// One stream's ops in flight and whether its inbound side is still open.
struct StreamState {
    cluster: Arc<Cluster>,
    set: tokio::task::JoinSet<Vec<(u64, pb::BedHoldResult)>>,
    pending: HashSet<u64>,
    open: bool,
    /// Why the inbound side broke, sent once every accepted op is answered.
    broken: Option<Status>,
}

impl StreamState {
    /// Takes `first` and whatever else is ready now, up to the in-flight bound: reads are
    /// spawned one by one, the writes together (one `write_many`); returns the answers
    /// known at once (refused ops).
    fn take(
        &mut self,
        first: Result<Option<pb::BedOp>, Status>,
        inbound: &mut Streaming<pb::BedOp>,
    ) -> Vec<(u64, pb::BedHoldResult)> {
        use futures_util::FutureExt as _;
        let mut msg = Some(first);
        let mut writes = Vec::new();
        let mut answers = Vec::new();
        while let Some(m) = msg.take() {
            let op = match m {
                Ok(Some(op)) => op,
                Ok(None) => {
                    self.open = false;
                    break;
                }
                Err(s) => {
                    self.broken = Some(inbound_error(s));
                    self.open = false;
                    break;
                }
            };
            let seq = op.seq;
            let refuse = |field: &str, why: &str| (seq, rejected(&Rejection::invalid(field, why)));
            match op.op {
                _ if self.pending.contains(&seq) => {
                    answers.push(refuse("seq", "already pending on this stream"))
                }
                None => answers.push(refuse("op", "must be set")),
                Some(body) => match classify(body) {
                    StreamOp::Answer(r) => answers.push((seq, r)),
                    StreamOp::Get(r) => {
                        self.pending.insert(seq);
                        let c = self.cluster.clone();
                        self.set
                            .spawn(async move { vec![(seq, stream_get(c, r).await)] });
                    }
                    StreamOp::Write(request) => {
                        self.pending.insert(seq);
                        writes.push((seq, request));
                    }
                },
            }
            if self.pending.len() < STREAM_IN_FLIGHT_MAX {
                msg = inbound.message().now_or_never();
            }
        }
        if !writes.is_empty() {
            self.set.spawn(stream_writes(self.cluster.clone(), writes));
        }
        answers
    }
}

/// Sends results in order; `false` when the client went away.
async fn send_all(
    out: &tokio::sync::mpsc::Sender<Result<pb::BedOpResult, Status>>,
    results: Vec<(u64, pb::BedHoldResult)>,
) -> bool {
    for (seq, result) in results {
        let msg = pb::BedOpResult {
            seq,
            result: Some(result),
        };
        if out.send(Ok(msg)).await.is_err() {
            return false;
        }
    }
    true
}

/// Reads ops, runs up to `STREAM_IN_FLIGHT_MAX` at once, and sends each result as it
/// completes; ends when the client has closed its side and every op is answered, or when
/// the client went away. The write ops that have already arrived when one is read are
/// proposed together (one `write_many`). A broken inbound side (a garbage frame) stops the
/// reading; every op accepted before it is still answered, then the stream ends with the
/// error ([`inbound_error`]).
async fn run_stream(
    cluster: Arc<Cluster>,
    mut inbound: Streaming<pb::BedOp>,
    out: tokio::sync::mpsc::Sender<Result<pb::BedOpResult, Status>>,
) {
    let mut st = StreamState {
        cluster,
        set: tokio::task::JoinSet::new(),
        pending: HashSet::new(),
        open: true,
        broken: None,
    };
    loop {
        tokio::select! {
            msg = inbound.message(), if st.open && st.pending.len() < STREAM_IN_FLIGHT_MAX => {
                let answers = st.take(msg, &mut inbound);
                if !send_all(&out, answers).await {
                    return;
                }
            }
            Some(done) = st.set.join_next(), if !st.set.is_empty() => {
                let Ok(results) = done else { continue };
                for (seq, _) in &results {
                    st.pending.remove(seq);
                }
                if !send_all(&out, results).await {
                    return;
                }
            }
            else => {
                if let Some(s) = st.broken.take() {
                    let _ = out.send(Err(s)).await;
                }
                return;
            }
        }
    }
}

type BedOpStream = Pin<Box<dyn Stream<Item = Result<pb::BedOpResult, Status>> + Send + 'static>>;

impl BedHoldsService {
    /// One batch call: the envelope checked, each item mapped by `build` with its field
    /// named `items.N.…`, then proposed together (`run_batch`).
    async fn batch_write<T>(
        &self,
        request_id: &str,
        items: &[T],
        build: fn(&T, &Field) -> Result<Request, Rejection>,
        deadline: Deadline,
    ) -> Result<Response<pb::BedHoldResults>, Status> {
        check_batch(request_id, items.len())?;
        let items = items
            .iter()
            .enumerate()
            .map(|(i, item)| build(item, &Field::item("items", i)))
            .collect();
        run_batch(&self.cluster, items, deadline)
            .await
            .map(Response::new)
    }

    /// One unary bed write: the client's deadline, the request checked and mapped by
    /// `build` (a refusal names the field), then proposed.
    async fn unary_write<R>(
        &self,
        request: GrpcRequest<R>,
        build: fn(&R, &Field) -> Result<Request, Rejection>,
    ) -> Result<Response<pb::BedHoldResponse>, Status> {
        let deadline = Deadline::of(&request, WRITE_TIMEOUT);
        let request = build(request.get_ref(), &Field::top()).map_err(super::bad)?;
        Self::mutate(&self.cluster, request, deadline)
            .await
            .map(Response::new)
    }
}

#[tonic::async_trait]
impl BedHolds for BedHoldsService {
    async fn hold_bed(
        &self,
        request: GrpcRequest<pb::HoldBedRequest>,
    ) -> Result<Response<pb::BedHoldResponse>, Status> {
        self.unary_write(request, hold_request).await
    }

    async fn confirm_hold(
        &self,
        request: GrpcRequest<pb::ConfirmHoldRequest>,
    ) -> Result<Response<pb::BedHoldResponse>, Status> {
        self.unary_write(request, confirm_request).await
    }

    async fn release_hold(
        &self,
        request: GrpcRequest<pb::ReleaseHoldRequest>,
    ) -> Result<Response<pb::BedHoldResponse>, Status> {
        self.unary_write(request, release_request).await
    }

    async fn get_hold(
        &self,
        request: GrpcRequest<pb::GetHoldRequest>,
    ) -> Result<Response<pb::GetHoldResponse>, Status> {
        let deadline = Deadline::of(&request, READ_TIMEOUT);
        let r = request.into_inner();
        Self::get(&self.cluster, &r, &Field::top(), deadline)
            .await
            .map(Response::new)
    }

    async fn ward_availability(
        &self,
        request: GrpcRequest<pb::WardAvailabilityRequest>,
    ) -> Result<Response<pb::WardAvailabilityResponse>, Status> {
        let deadline = Deadline::of(&request, READ_TIMEOUT);
        let r = request.into_inner();
        if r.hospital_id == 0 {
            return Err(invalid("hospital_id", "must not be 0"));
        }
        let query = Query::Wards {
            hospital: HospitalId(r.hospital_id),
            wards: r.ward_ids.iter().map(|w| WardId(*w)).collect(),
        };
        let (result, index) = self
            .cluster
            .read(&query, local(r.consistency)?, deadline)
            .await?;
        let Answer::Wards(wards) = result else {
            return Err(Status::internal("unexpected query result"));
        };
        let wards = wards
            .map_err(|e| super::rejection_status(&e))?
            .iter()
            .map(ward_pb)
            .collect();
        Ok(Response::new(pb::WardAvailabilityResponse {
            wards,
            applied_index: index,
        }))
    }

    async fn list_wards(
        &self,
        request: GrpcRequest<pb::ListWardsRequest>,
    ) -> Result<Response<pb::ListWardsResponse>, Status> {
        super::wards::list(&self.cluster, request).await
    }

    async fn hold_beds(
        &self,
        request: GrpcRequest<pb::HoldBedsRequest>,
    ) -> Result<Response<pb::BedHoldResults>, Status> {
        let deadline = Deadline::of(&request, WRITE_TIMEOUT);
        let r = request.get_ref();
        self.batch_write(&r.request_id, &r.items, hold_request, deadline)
            .await
    }

    async fn resolve_holds(
        &self,
        request: GrpcRequest<pb::ResolveHoldsRequest>,
    ) -> Result<Response<pb::BedHoldResults>, Status> {
        let deadline = Deadline::of(&request, WRITE_TIMEOUT);
        let r = request.get_ref();
        self.batch_write(&r.request_id, &r.items, resolution_request, deadline)
            .await
    }

    type StreamStream = BedOpStream;

    async fn stream(
        &self,
        request: GrpcRequest<Streaming<pb::BedOp>>,
    ) -> Result<Response<Self::StreamStream>, Status> {
        let inbound = request.into_inner();
        let (tx, rx) = tokio::sync::mpsc::channel(STREAM_IN_FLIGHT_MAX);
        // The ops' request ids are noted in this call's audit record (security::audit).
        let audited = crate::security::audit::current();
        let run = run_stream(self.cluster.clone(), inbound, tx);
        tokio::spawn(crate::security::audit::scope(audited, run));
        let out = tokio_stream::wrappers::ReceiverStream::new(rx);
        Ok(Response::new(Box::pin(out) as Self::StreamStream))
    }
}
