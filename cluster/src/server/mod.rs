//! The client-facing gRPC API (`ninety.v1`): shared plumbing for the services.
//!
//! [`Cluster`] is what every service holds: the node handle, the peer book and the write
//! and read paths. Writes are proposed to the local node; **a follower forwards** the encoded
//! command to the leader over `Peer.Forward` and relays the leader's answer, so a client may
//! call any node. Forwarding uses the node's pooled channel to the leader's peer address
//! (`PeerBook::pooled`, the one Raft traffic to it uses): concurrent forwarded writes share
//! one HTTP/2 connection instead of each opening one (256 of them after a leader move once
//! failed half their connects within the 500 ms connect timeout). When no leader is known (or it is
//! unreachable) the call fails with `UNAVAILABLE` and, when known, the leader in the
//! response metadata (`x-ninety-leader-id`, and `x-ninety-leader-addr`: the leader's client
//! address, the peer listener serves no client API). `UNAVAILABLE` and `DEADLINE_EXCEEDED`
//! mean the outcome is unknown: retry with the same request id, which never applies twice.
//!
//! **Deadlines.** A client's `grpc-timeout` is honoured: a write or read that cannot finish
//! within it answers `DEADLINE_EXCEEDED` (for a write: outcome unknown, retry with the same
//! request id) instead of waiting for the server's own limits ([`WRITE_TIMEOUT`],
//! [`READ_TIMEOUT`], which answer `UNAVAILABLE`). tonic 0.14's server enforces
//! `grpc-timeout` on its own by dropping the handler and answering `CANCELLED` ("Timeout
//! expired"); to answer `DEADLINE_EXCEEDED` instead, the handlers stop at
//! [`DEADLINE_SHARE`] of the client's budget ([`Deadline`]), before tonic's timer fires. A
//! tonic client also runs its own timer for the same header, so a reply lost in transit can
//! still surface as `CANCELLED` there: treat both as "outcome unknown". Streams: a
//! `grpc-timeout` bounds the whole stream (tonic), each op has the server's limits.
//!
//! **Back-pressure.** A full node command or proposal queue answers `RESOURCE_EXHAUSTED`
//! (nothing was proposed; retry later). The proposal queue bound is `max_pending_proposals`
//! in the node's TOML (every batch item counts; a batch is admitted whole or refused whole),
//! the command queue bound `max_queued_commands` (a batch takes one slot).
//!
//! **Refusals.** A request that does not decode is `INVALID_ARGUMENT`, never `INTERNAL`
//! ([`decode`]: the servers' codec and a layer for tonic's framing errors). Every field is
//! parsed in [`convert`], enums included (an unknown value, `consistency` among them, is
//! refused naming the field). An engine refusal names the field as the client sent it
//! ([`wire_field`]: `slots.0.start_ms`, not the engine's `slots[0].start`), and no refusal
//! echoes a huge value: quoted values are cut at [`convert::ECHO_CHARS_MAX`] characters and
//! whole messages at [`REFUSAL_MESSAGE_CHARS_MAX`], in [`rejection_pb`], the one place
//! where a `Rejection` becomes wire text.
//!
//! **Batches and streams** (`HoldBeds`, `ResolveHolds`, `BedHolds.Stream`) answer per item:
//! an engine refusal or an invalid item is that item's `Rejection` (`field` prefixed with
//! the item, `items.3.ttl_ms`); an item whose outcome the node could not learn (no leader,
//! full queue, server timeout) gets `REJECTION_CODE_UNAVAILABLE`: retry it with the same
//! request id. The whole call fails only for an invalid envelope, or with
//! `DEADLINE_EXCEEDED` when the client's deadline cut it short.
//!
//! Request ids (`docs/api.md`, "Request ids"): `request_id` is a 128-bit key, given as
//! exactly 32 lowercase hex digits or a UUID in the 8-4-4-4-12 form; any other text of 1 to
//! 128 bytes is hashed with SHA-256 under a versioned domain tag
//! (`ninety_engine::RequestId::from_text`). All 128 bits are the client's: the node's own
//! requests (ticks, the region bootstrap) are keyed apart (`ninety_engine::RequestKey`).
//! A replayed answer's `log_index` is the entry that first applied the request.

pub mod admin;
pub mod beds;
pub mod bookings;
pub mod capacity;
pub mod convert;
pub mod decode;
pub mod matching;
pub mod referrals;
pub mod region_router;
pub mod schedules;
pub mod scheduling;
pub mod wards;
pub mod watch;

use crate::engine_sm::{self, Applied};
use crate::node::Reply;
use crate::runtime::driver::NodeHandle;
use crate::runtime::transport::{Faults, PeerBook};
use crate::RequestError;
use ninety_engine::read::Answer;
use ninety_engine::{Rejection, RejectionKind, Request, RequestId};
use ninety_proto::peer::v1::{ForwardOutcome, ForwardRequest};
use ninety_proto::v1 as pb;
use std::sync::Arc;
use std::time::Duration;
use tonic::Status;

/// How long a write waits for its outcome before answering `UNAVAILABLE` (outcome unknown).
pub const WRITE_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a linearizable read waits (ReadIndex retries itself within this).
pub const READ_TIMEOUT: Duration = Duration::from_secs(5);

/// Share of a client's `grpc-timeout` a handler may use before it answers
/// `DEADLINE_EXCEEDED` itself (the rest is left so the answer beats tonic's own timer).
pub const DEADLINE_SHARE: (u32, u32) = (9, 10);

/// When a call must be answered by: the server's own limit, or earlier when the client sent
/// a `grpc-timeout`.
#[derive(Clone, Copy, Debug)]
pub struct Deadline {
    at: tokio::time::Instant,
    /// Whether the client's deadline (not the server's limit) is the binding one.
    client: bool,
}

impl Deadline {
    /// The server's own limit, `limit` from now.
    pub fn server(limit: Duration) -> Deadline {
        Deadline {
            at: tokio::time::Instant::now() + limit,
            client: false,
        }
    }

    /// The earlier of `limit` and the request's `grpc-timeout` (scaled by
    /// [`DEADLINE_SHARE`]).
    pub fn of<T>(request: &tonic::Request<T>, limit: Duration) -> Deadline {
        let header = request
            .metadata()
            .get("grpc-timeout")
            .and_then(|v| v.to_str().ok())
            .and_then(parse_grpc_timeout);
        let share = header.map(|t| t * DEADLINE_SHARE.0 / DEADLINE_SHARE.1);
        match share {
            Some(t) if t < limit => Deadline {
                at: tokio::time::Instant::now() + t,
                client: true,
            },
            _ => Deadline::server(limit),
        }
    }

    /// Time left.
    pub fn remaining(&self) -> Duration {
        self.at
            .saturating_duration_since(tokio::time::Instant::now())
    }

    /// The status when the deadline passed before an answer: `DEADLINE_EXCEEDED` for the
    /// client's deadline, `UNAVAILABLE` for the server's own limit.
    pub fn expired(&self, what: &str) -> Status {
        let msg = format!(
            "{what} did not finish in time; outcome unknown, retry with the same request id"
        );
        if self.client {
            Status::deadline_exceeded(msg)
        } else {
            Status::unavailable(msg)
        }
    }

    /// Runs `f` until the deadline.
    pub async fn run<F: std::future::Future>(&self, what: &str, f: F) -> Result<F::Output, Status> {
        tokio::time::timeout_at(self.at, f)
            .await
            .map_err(|_| self.expired(what))
    }
}

/// Parses a `grpc-timeout` value: 1 to 8 digits and a unit (H, M, S, m, u, n).
pub fn parse_grpc_timeout(v: &str) -> Option<Duration> {
    if v.len() < 2 || v.len() > 9 {
        return None;
    }
    let (digits, unit) = v.split_at(v.len() - 1);
    let n: u64 = digits.parse().ok()?;
    Some(match unit {
        "H" => Duration::from_secs(n.saturating_mul(3600)),
        "M" => Duration::from_secs(n.saturating_mul(60)),
        "S" => Duration::from_secs(n),
        "m" => Duration::from_millis(n),
        "u" => Duration::from_micros(n),
        "n" => Duration::from_nanos(n),
        _ => return None,
    })
}

/// Parses a client request id (see the module doc).
pub fn request_id(text: &str) -> Result<RequestId, Status> {
    parse_request_id(&convert::Field::top(), "request_id", text).map_err(|r| rejection_status(&r))
}

/// Parses a request id as field `field` of `at` (see the module doc).
pub fn parse_request_id(
    at: &convert::Field,
    field: &str,
    text: &str,
) -> Result<RequestId, Rejection> {
    // Every request id passes here: the audit log records them as the client sent them.
    crate::security::audit::note_request_id(text);
    RequestId::from_text(text).map_err(|e| at.invalid(field, e.to_string()))
}

/// `INVALID_ARGUMENT` naming the field, with a machine-readable Rejection in the details.
pub fn invalid(field: &str, reason: &str) -> Status {
    rejection_status(&Rejection::invalid(field, reason))
}

fn rejection_code(r: &Rejection) -> pb::RejectionCode {
    use pb::RejectionCode as C;
    match r {
        Rejection::Invalid { .. } => C::InvalidArgument,
        Rejection::RequestIdReused(_) => C::RequestIdReused,
        Rejection::NoCapacity(_) => C::NoCapacity,
        Rejection::Expired { .. } => C::Expired,
        Rejection::AlreadyResolved { .. } => C::AlreadyResolved,
        Rejection::InvalidTransition { .. } => C::InvalidTransition,
        Rejection::BookingBlocked { .. } => C::BookingBlocked,
        Rejection::CancellationTooLate { .. } => C::CancellationTooLate,
        Rejection::NotAdmissible(_) => C::NotAdmissible,
        Rejection::RegionAlreadyLoaded => C::RegionAlreadyLoaded,
        _ => C::NotFound,
    }
}

/// The per-item form of a failed call: the Rejection in the status details, or for a
/// node-level failure (unknown outcome, busy) `REJECTION_CODE_UNAVAILABLE`.
pub fn status_rejection(s: &Status) -> pb::Rejection {
    if let Some(r) = ninety_proto::status::rejection(s) {
        return r;
    }
    let code = match s.code() {
        tonic::Code::InvalidArgument => pb::RejectionCode::InvalidArgument,
        tonic::Code::NotFound => pb::RejectionCode::NotFound,
        _ => pb::RejectionCode::Unavailable,
    };
    pb::Rejection {
        code: code as i32,
        field: String::new(),
        message: refusal_text(&format!("{:?}: {}", s.code(), s.message())),
        at_ms: 0,
    }
}

/// Longest refusal message sent back, in characters: a refusal never echoes a huge value
/// (a 1 MB field in the message would exceed the client's metadata limit and turn the
/// answer into `RESOURCE_EXHAUSTED`). Values quoted in a message are capped earlier, at
/// [`convert::ECHO_CHARS_MAX`]; this is the backstop for the whole text.
pub const REFUSAL_MESSAGE_CHARS_MAX: usize = 512;

/// The engine's names for request fields and their names on the wire, where they differ
/// (one path segment each; list indexes and batch prefixes are kept).
const WIRE_FIELD_NAMES: &[(&str, &str)] = &[
    ("start", "start_ms"),
    ("referral_quota", "referral_reserved"),
    ("patient", "patient_ref"),
    ("doctors", "doctor_ids"),
    ("hold", "hold_id"),
    ("booking", "hold_id"),
    ("slot_hold", "slot_hold_id"),
    ("bed_hold", "bed_hold_id"),
    ("from", "from_hospital_id"),
    ("to", "to_hospital_id"),
    ("origin", "from_hospital_id"),
    ("earliest", "window.start_ms"),
    ("latest", "window.end_ms"),
];

/// Whole engine field names that name a record where the wire names its id.
const WIRE_RECORD_FIELDS: &[(&str, &str)] = &[
    ("bed", "bed_id"),
    ("ward", "ward_id"),
    ("slot", "slot_id"),
    ("referral", "referral_id"),
    ("doctor", "doctor_id"),
    ("hospital", "hospital_id"),
];

/// An engine field name as the client sent it: list elements with dots (`slots.3.start_ms`,
/// as common.proto says; the engine writes `slots[3].start`), a record's name as its id's
/// ([`WIRE_RECORD_FIELDS`]), and each segment renamed by [`WIRE_FIELD_NAMES`]. Paths inside
/// `region_json` are the region file's own names and are not renamed.
pub fn wire_field(engine: &str) -> String {
    let dotted = engine.replace('[', ".").replace(']', "");
    if dotted.starts_with("region_json") {
        return dotted;
    }
    if let Some((_, wire)) = WIRE_RECORD_FIELDS.iter().find(|(e, _)| *e == dotted) {
        return (*wire).to_string();
    }
    dotted
        .split('.')
        .map(|seg| {
            WIRE_FIELD_NAMES
                .iter()
                .find(|(from, _)| *from == seg)
                .map_or(seg, |(_, to)| to)
        })
        .collect::<Vec<_>>()
        .join(".")
}

/// `text` cut to [`REFUSAL_MESSAGE_CHARS_MAX`] characters (with "…" when cut).
pub fn refusal_text(text: &str) -> String {
    convert::cap_chars(text, REFUSAL_MESSAGE_CHARS_MAX)
}

/// The wire form of an engine rejection (what `rejection_status` puts in the details).
pub fn rejection_pb(r: &Rejection) -> pb::Rejection {
    let (field, at_ms) = match r {
        Rejection::Invalid { field, .. } => (wire_field(field), 0),
        Rejection::Expired { expired_at, .. } => (String::new(), expired_at.0),
        Rejection::BookingBlocked { until } => (String::new(), until.0),
        Rejection::CancellationTooLate { deadline } => (String::new(), deadline.0),
        _ => (String::new(), 0),
    };
    pb::Rejection {
        code: rejection_code(r) as i32,
        field,
        message: refusal_message(r),
        at_ms,
    }
}

/// A rejection's message: its text with the field named as on the wire, capped.
fn refusal_message(r: &Rejection) -> String {
    match r {
        Rejection::Invalid { field, reason } => {
            refusal_text(&format!("invalid {}: {reason}", wire_field(field)))
        }
        _ => refusal_text(&r.to_string()),
    }
}

/// [`rejection_status`] by value, for `map_err`.
pub(crate) fn bad(r: Rejection) -> Status {
    rejection_status(&r)
}

/// Maps an engine rejection to its gRPC status (code by `Rejection::kind`), with the
/// details in the standard form (`ninety_proto::status`): a `google.rpc.Status` holding the
/// `Rejection`, an `ErrorInfo`, and for `INVALID_ARGUMENT` a `BadRequest` naming the field.
pub fn rejection_status(r: &Rejection) -> Status {
    let code = match r.kind() {
        RejectionKind::InvalidArgument => tonic::Code::InvalidArgument,
        RejectionKind::NotFound => tonic::Code::NotFound,
        RejectionKind::FailedPrecondition => tonic::Code::FailedPrecondition,
    };
    ninety_proto::status::rejection_status(code, &rejection_pb(r))
}

/// How long a client should wait before retrying after a full queue or while no leader is
/// known (`google.rpc.RetryInfo`): about one group-commit round, or one election timeout.
pub const RETRY_BUSY_MS: u64 = 50;
/// See [`RETRY_BUSY_MS`]: an election takes about a second (ten 100 ms ticks).
pub const RETRY_NO_LEADER_MS: u64 = 1_000;

/// A node-level refusal with standard details: `ErrorInfo` (`reason`, domain `ninety.v1`,
/// `metadata`) and, when given, `RetryInfo`.
pub fn node_status(
    code: tonic::Code,
    msg: String,
    reason: &str,
    metadata: std::collections::HashMap<String, String>,
    retry_ms: Option<u64>,
) -> Status {
    use ninety_proto::status::{ErrorDetails, ERROR_DOMAIN};
    let mut details = ErrorDetails::with_error_info(reason, ERROR_DOMAIN, metadata);
    if let Some(ms) = retry_ms {
        details.set_retry_info(Some(Duration::from_millis(ms)));
    }
    let none = Default::default();
    ninety_proto::status::with_details(code, msg, None, details, none)
}

/// The leader to hint and the message: a leader this node cannot reach (its last peer call
/// to it failed, or fault injection cuts it off) is not hinted, and the message says so.
pub fn leader_hint(
    book: &PeerBook,
    faults: &Faults,
    msg: String,
    leader: Option<u64>,
) -> (String, Option<u64>) {
    match leader.filter(|&l| book.is_unreachable(l) || faults.is_blocked(l)) {
        Some(l) => (
            format!("{msg} (leader {l} is unreachable from this node)"),
            None,
        ),
        None => (msg, leader),
    }
}

/// The node-facing context every service shares.
pub struct Cluster {
    pub handle: NodeHandle,
    /// The node's published availability view (matching reads run on it off the node task).
    pub view: engine_sm::ViewCell,
    pub book: Arc<PeerBook>,
    pub faults: Arc<Faults>,
}

/// An applied write: where it landed and what the engine said.
pub struct Written {
    pub index: u64,
    pub applied: Applied,
}

impl Written {
    pub fn commit(&self) -> pb::CommitInfo {
        pb::CommitInfo {
            // A replay reports the entry that first applied the request (the proto's
            // meaning), not the entry that replayed it.
            log_index: match self.applied.first_index {
                0 => self.index,
                first => first,
            },
            log_time_ms: self.applied.log_time_ms,
            replayed: self.applied.replayed,
        }
    }
}

impl Cluster {
    /// `UNAVAILABLE` carrying the leader hint in metadata (`x-ninety-leader-id`,
    /// `x-ninety-leader-addr`) and in an `ErrorInfo` (reason `NOT_LEADER`, metadata
    /// `leader_id`, `leader_addr`), with a `RetryInfo`. A leader this node cannot reach (its
    /// last peer call failed, or fault injection cuts it off) is never hinted: a client sent
    /// there would find it down; the message says so and the client tries the other nodes.
    pub fn unavailable(&self, msg: String, leader: Option<u64>) -> Status {
        let (msg, leader) = leader_hint(&self.book, &self.faults, msg, leader);
        let addr = leader.and_then(|l| self.book.client(l));
        let mut info = std::collections::HashMap::new();
        if let Some(l) = leader {
            info.insert("leader_id".to_string(), l.to_string());
        }
        if let Some(a) = &addr {
            info.insert("leader_addr".to_string(), a.clone());
        }
        let reason = if leader.is_some() {
            "NOT_LEADER"
        } else {
            "NO_LEADER"
        };
        let retry_ms = leader.is_none().then_some(RETRY_NO_LEADER_MS);
        let mut s = node_status(tonic::Code::Unavailable, msg, reason, info, retry_ms);
        if let Some(l) = leader {
            if let Ok(v) = l.to_string().parse() {
                s.metadata_mut().insert("x-ninety-leader-id", v);
            }
            // The leader's client address: the peer address serves no client API.
            if let Some(addr) = addr.and_then(|a| a.parse().ok()) {
                s.metadata_mut().insert("x-ninety-leader-addr", addr);
            }
        }
        s
    }

    /// Local reads bypass the node core, which refuses everything else on a removed node
    /// (`node::Node::removed`): they are refused here, from the published summary.
    fn refuse_if_removed(&self) -> Result<(), Status> {
        if self.handle.summary().removed {
            let id = self.handle.id;
            return Err(self.request_error(RequestError::Removed { id }));
        }
        Ok(())
    }

    /// Maps a node-level failure to a status.
    pub fn request_error(&self, e: RequestError) -> Status {
        match e {
            RequestError::Busy { queue } => {
                let info = [("queue".to_string(), queue.to_string())].into();
                let msg = e.to_string();
                let code = tonic::Code::ResourceExhausted;
                node_status(code, msg, "BUSY", info, Some(RETRY_BUSY_MS))
            }
            RequestError::NotLeader { leader } => self.unavailable(e.to_string(), leader),
            RequestError::TooLarge { .. } => Status::invalid_argument(e.to_string()),
            RequestError::ConfChangeRejected(_)
            | RequestError::ConfChangeInProgress
            | RequestError::Removed { .. } => Status::failed_precondition(e.to_string()),
            RequestError::Internal(_) => Status::internal(e.to_string()),
            _ => Status::unavailable(format!("{e}; outcome unknown, retry with the same id")),
        }
    }

    /// Proposes `request` (here, or through the leader) and waits for its applied outcome,
    /// at most until `deadline`.
    pub async fn write(&self, request: &Request, deadline: Deadline) -> Result<Written, Status> {
        let bytes = engine_sm::encode_request(request).map_err(Status::internal)?;
        let answer = deadline
            .run("write", self.handle.propose(bytes.clone()))
            .await?;
        let (index, outcome) = match answer {
            Ok(Reply::Applied { index, outcome }) => (index, outcome),
            Ok(_) => return Err(Status::internal("unexpected reply to a proposal")),
            Err(RequestError::NotLeader {
                leader: Some(leader),
            }) => {
                deadline
                    .run("write", self.forward(leader, request, bytes, deadline))
                    .await??
            }
            Err(e) => return Err(self.request_error(e)),
        };
        let applied = engine_sm::decode_applied(&outcome).map_err(Status::internal)?;
        Ok(Written { index, applied })
    }

    /// Proposes several requests together (one node command, one admission: all fit in
    /// the pending-proposal bound or all are refused with `RESOURCE_EXHAUSTED`) and waits
    /// for their applied outcomes, at most until `deadline`; answers in the requests'
    /// order. On a follower, the items the node refused as not-leader are forwarded to the
    /// leader one by one, concurrently. Each item keeps its own request id (and dedup).
    pub async fn write_many(
        &self,
        requests: &[Request],
        deadline: Deadline,
    ) -> Vec<Result<Written, Status>> {
        let mut encoded = Vec::with_capacity(requests.len());
        for r in requests {
            match engine_sm::encode_request(r) {
                Ok(b) => encoded.push(b),
                Err(e) => {
                    return requests
                        .iter()
                        .map(|_| Err(Status::internal(e.clone())))
                        .collect()
                }
            }
        }
        let answers = match deadline
            .run("write", self.handle.propose_many(encoded.clone()))
            .await
        {
            Ok(a) => a,
            Err(s) => return requests.iter().map(|_| Err(s.clone())).collect(),
        };
        let items = answers.into_iter().zip(requests.iter().zip(encoded)).map(
            |(answer, (request, bytes))| async move {
                let (index, outcome) = match answer {
                    Ok(Reply::Applied { index, outcome }) => (index, outcome),
                    Ok(_) => return Err(Status::internal("unexpected reply to a proposal")),
                    Err(RequestError::NotLeader {
                        leader: Some(leader),
                    }) => {
                        deadline
                            .run("write", self.forward(leader, request, bytes, deadline))
                            .await??
                    }
                    Err(e) => return Err(self.request_error(e)),
                };
                let applied = engine_sm::decode_applied(&outcome).map_err(Status::internal)?;
                Ok(Written { index, applied })
            },
        );
        futures_util::future::join_all(items).await
    }

    /// Writes and turns an engine rejection into its status.
    pub async fn write_ok(
        &self,
        request: &Request,
        deadline: Deadline,
    ) -> Result<(Written, ninety_engine::Reply), Status> {
        let w = self.write(request, deadline).await?;
        match w.applied.outcome.clone() {
            Ok(reply) => Ok((w, reply)),
            Err(r) => Err(rejection_status(&r)),
        }
    }

    async fn forward(
        &self,
        leader: u64,
        request: &Request,
        payload: Vec<u8>,
        deadline: Deadline,
    ) -> Result<(u64, Vec<u8>), Status> {
        let no_route = |why: &str| self.unavailable(format!("not the leader; {why}"), Some(leader));
        if self.faults.is_blocked(leader) {
            return Err(no_route("leader cut off (fault injection)"));
        }
        // The leader's peer address: `Peer.Forward` is served on the peer listener only.
        let mut client = self
            .book
            .pooled(leader)
            .ok_or_else(|| no_route("leader address unknown"))?
            .map_err(|_| no_route("bad leader address"))?;
        let fwd = ForwardRequest {
            from_node: self.handle.id,
            request_id: request.id.to_string(),
            payload,
            timeout_ms: deadline.remaining().as_millis() as u64,
            cluster_id: self.book.stamp().cluster_id,
            incarnation: self.book.stamp().incarnation,
            region: self.book.stamp().region,
        };
        let mut req = tonic::Request::new(fwd);
        req.set_timeout(deadline.remaining() + Duration::from_secs(1));
        let reply = client
            .forward(req)
            .await
            .map_err(|s| match s.code() {
                tonic::Code::ResourceExhausted | tonic::Code::InvalidArgument => s,
                code => {
                    // The leader did not answer at all: hint no node known to be down.
                    if code == tonic::Code::Unavailable {
                        self.book.note_reachable(leader, false);
                    }
                    no_route(&format!("forwarding failed: {}", s.message()))
                }
            })?
            .into_inner();
        match ForwardOutcome::try_from(reply.outcome) {
            Ok(ForwardOutcome::Applied) => Ok((reply.log_index, reply.result)),
            Ok(ForwardOutcome::NotLeader) => Err(self.unavailable(
                "leader changed; retry with the same request id".into(),
                (reply.leader_id != 0).then_some(reply.leader_id),
            )),
            _ => Err(Status::unavailable(
                "outcome unknown at the leader; retry with the same request id",
            )),
        }
    }

    /// Runs a query, linearizable (ReadIndex) unless `local`; returns the answer and the
    /// applied index it was read at.
    pub async fn read(
        &self,
        query: &engine_sm::Query,
        local: bool,
        deadline: Deadline,
    ) -> Result<(Answer, u64), Status> {
        let bytes = engine_sm::encode_query(query).map_err(Status::internal)?;
        if local {
            self.refuse_if_removed()?;
        }
        let (index, raw) = if local {
            // One trip to the node task, which answers with its applied index (no status:
            // that computes the state hash, ~100 ms on a GBA day).
            deadline
                .run("read", self.handle.local_query(bytes))
                .await?
                .map_err(|e| self.request_error(e))?
        } else {
            let answer = deadline.run("read", self.handle.read(bytes)).await?;
            match answer {
                Ok(Reply::Read { index, result }) => (index, result),
                Ok(_) => return Err(Status::internal("unexpected reply to a read")),
                Err(e) => return Err(self.request_error(e)),
            }
        };
        let result = engine_sm::decode_query_result(&raw).map_err(Status::internal)?;
        Ok((result, index))
    }
}

impl Cluster {
    /// The published availability view for a read: `LOCAL` takes the latest view as it is;
    /// otherwise a ReadIndex round (`read_index`: no query, the node task only learns the
    /// index) gives the index every write acknowledged before this call is at or below, and
    /// the view is taken once it reflects that index (`ViewCell::wait_for`: the node
    /// publishes before it answers reads, so normally at once; otherwise woken by the
    /// publication). The work on the view then runs on the caller's task, never on the node
    /// task. Returns the view; its `log_index` is the index it was read at.
    pub async fn view_read(
        &self,
        local: bool,
        deadline: Deadline,
    ) -> Result<ninety_engine::sync::Arc<ninety_engine::AvailabilityView>, Status> {
        if local {
            self.refuse_if_removed()?;
            return Ok(self.view.load());
        }
        let index = deadline
            .run("read", self.handle.read_index())
            .await?
            .map_err(|e| self.request_error(e))?;
        deadline.run("read", self.view.wait_for(index)).await
    }
}

/// Whether a read asks for local consistency; an unknown value is refused
/// (`INVALID_ARGUMENT` naming `consistency`), never read as the default.
pub fn local(consistency: i32) -> Result<bool, Status> {
    convert::Field::top()
        .local("consistency", consistency)
        .map_err(bad)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn engine_fields_are_named_as_the_client_sent_them() {
        assert_eq!(wire_field("slots[0].start"), "slots.0.start_ms");
        assert_eq!(
            wire_field("slots[2].referral_quota"),
            "slots.2.referral_reserved"
        );
        assert_eq!(wire_field("patient"), "patient_ref");
        assert_eq!(wire_field("doctors[1]"), "doctor_ids.1");
        assert_eq!(wire_field("window"), "window");
        assert_eq!(wire_field("bed"), "bed_id");
        assert_eq!(wire_field("ward.hospital"), "ward.hospital");
        assert_eq!(wire_field("items.3.ttl_ms"), "items.3.ttl_ms");
        assert_eq!(
            wire_field("region_json.roads[1].from"),
            "region_json.roads.1.from"
        );
        let r = rejection_pb(&Rejection::invalid(
            "slots[0].start",
            "must be in the future",
        ));
        assert_eq!(r.field, "slots.0.start_ms");
        assert!(r.message.contains("slots.0.start_ms"), "{}", r.message);
    }

    #[test]
    fn a_refusal_never_echoes_a_huge_value() {
        let huge = "x".repeat(1 << 20);
        let r = convert::Field::top()
            .opt_specialty("specialty", &huge)
            .unwrap_err();
        let s = rejection_status(&r);
        assert!(s.message().len() < 1024, "{}", s.message().len());
        assert!(s.details().len() < 2048);
        let long = Rejection::invalid("note", format!("bad {huge}"));
        let s = rejection_status(&long);
        assert!(s.message().chars().count() <= REFUSAL_MESSAGE_CHARS_MAX + 1);
        assert!(s.message().ends_with('…'));
        let quoted = convert::echo(&"é".repeat(100));
        assert_eq!(quoted.chars().count(), convert::ECHO_CHARS_MAX + 3);
    }

    /// A leader whose last peer call from this node failed is never hinted; it is again
    /// once a call gets through.
    #[test]
    fn a_leader_known_to_be_down_is_not_hinted() {
        use crate::runtime::config::NodeAddrs;
        let addrs = |n: u64| NodeAddrs {
            peer: format!("127.0.0.1:{}", 7100 + n),
            client: format!("127.0.0.1:{}", 7000 + n),
        };
        let book = PeerBook::new((1..=3).map(|n| (n, addrs(n))).collect());
        let faults = Faults::new(None);
        let hint = |leader| leader_hint(&book, &faults, "not the leader".into(), leader);
        assert_eq!(hint(Some(2)), ("not the leader".to_string(), Some(2)));
        book.note_reachable(2, false);
        let (msg, leader) = hint(Some(2));
        assert_eq!(leader, None);
        assert!(msg.contains("leader 2 is unreachable"), "{msg}");
        assert_eq!(
            hint(Some(3)).1,
            Some(3),
            "only the unreachable node is left out"
        );
        book.note_reachable(2, true);
        assert_eq!(hint(Some(2)).1, Some(2));
    }

    /// Refusals carry the standard details: the field in a `BadRequest` (read with
    /// tonic-types alone), the `Rejection` beside it, and an `ErrorInfo` naming the code.
    #[test]
    fn refusals_carry_standard_details() {
        use ninety_proto::status::StatusExt as _;
        let s = rejection_status(&Rejection::invalid("slots[0].start", "in the past"));
        let bad = s.get_details_bad_request().expect("BadRequest");
        assert_eq!(bad.field_violations[0].field, "slots.0.start_ms");
        assert_eq!(status_rejection(&s).field, "slots.0.start_ms");
        let s = rejection_status(&Rejection::UnknownWard(ninety_engine::WardId(7)));
        assert_eq!(s.message(), "unknown ward 7", "plain ids in messages");
        assert!(s.get_details_bad_request().is_none());
        assert_eq!(
            s.get_details_error_info().expect("ErrorInfo").reason,
            "NOT_FOUND"
        );
    }

    /// docs/api.md states these limits; the numbers written there must be the constants.
    #[test]
    fn api_md_states_the_limits_in_force() {
        use ninety_engine::limits::{HOLD_TTL_MS_MAX, HOLD_TTL_MS_MIN, TEXT_BYTES_MAX};
        let doc = include_str!("../../../docs/api.md")
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ");
        let stated = [
            format!("`HOLD_TTL_MS_MIN` = {HOLD_TTL_MS_MIN} ms"),
            format!("`HOLD_TTL_MS_MAX` = {HOLD_TTL_MS_MAX} ms"),
            format!("at most {TEXT_BYTES_MAX} bytes (`TEXT_BYTES_MAX`)"),
            format!("`specialty` at most {} bytes", convert::SPECIALTY_BYTES_MAX),
            format!("at most {} characters of a value", convert::ECHO_CHARS_MAX),
            format!("at most {REFUSAL_MESSAGE_CHARS_MAX} characters"),
            format!("last {} request ids", admin::SNAPSHOT_ANSWERS_MAX),
            format!("within {} s of", admin::SNAPSHOT_INTERVAL_MIN.as_secs()),
            format!("at most {} bytes in all", admin::MEMBER_ADDRESS_BYTES_MAX),
            format!("budget of {} MiB", admin::IMPORT_BUDGET_BYTES_MAX >> 20),
            format!(
                "refilled at {} bytes per second",
                admin::IMPORT_BUDGET_BYTES_PER_S
            ),
            format!("charged at least {} bytes", admin::IMPORT_CHARGE_BYTES_MIN),
            format!(
                "at most {} per line",
                crate::security::audit::REQUEST_IDS_PER_LINE_MAX
            ),
        ];
        for s in stated {
            assert!(doc.contains(&s), "docs/api.md does not say {s:?}");
        }
        assert_eq!(HOLD_TTL_MS_MIN, 1_000, "docs/api.md says 1 second");
        assert_eq!(
            HOLD_TTL_MS_MAX,
            7 * 24 * 3_600_000,
            "docs/api.md says 7 days"
        );
    }
}
