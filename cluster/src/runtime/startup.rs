//! How a real node with an empty Raft store starts: it asks its configured peers' `Status`
//! over the peer channel, retrying, until `node::startup::decide` can answer (bootstrap,
//! start empty, or refuse naming the procedure). The peer listener already serves while
//! this runs (answering `Status` with `starting = true`), so founding nodes started
//! together hear each other.

use super::identity::Identity;
use super::transport::PeerBook;
use crate::error::Error;
use crate::node::startup::{self, PeerAnswer, PeerView, StartDecision, StartFacts};
use ninety_proto::peer::v1::StatusRequest;
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

/// Between two rounds of questions.
pub const STARTUP_RETRY_INTERVAL: Duration = Duration::from_millis(500);
/// One `Status` call must answer within this.
pub const STARTUP_STATUS_TIMEOUT: Duration = Duration::from_secs(1);
/// While waiting, whom it waits for is logged at most this often.
pub const STARTUP_WAIT_LOG_INTERVAL: Duration = Duration::from_secs(5);

/// Asks the peers until the decision is made. `Err` is a refusal to start: the message
/// names the node, the evidence and what to do.
pub async fn decide(
    facts: &StartFacts,
    me: &Identity,
    peers: &[u64],
    book: &PeerBook,
) -> Result<StartDecision, Error> {
    let mut answers = BTreeMap::new();
    let mut logged: Option<Instant> = None;
    loop {
        let asks = peers.iter().map(|&peer| ask(book, me, peer));
        let replies = futures_util::future::join_all(asks).await;
        for (peer, reply) in peers.iter().zip(replies) {
            if let Some(answer) = reply? {
                answers.insert(*peer, answer);
            }
        }
        match startup::decide(facts, &answers) {
            StartDecision::Refuse(why) => return Err(Error::Startup(why)),
            StartDecision::Wait { waiting_for } => {
                if logged.is_none_or(|t| t.elapsed() >= STARTUP_WAIT_LOG_INTERVAL) {
                    logged = Some(Instant::now());
                    tracing::warn!(
                        ?waiting_for,
                        heard_from = ?answers.keys().collect::<Vec<_>>(),
                        "empty data directory: waiting for peers to answer before starting \
                         (a majority of the founding voters to bootstrap, or any member to \
                         join)"
                    );
                }
                tokio::time::sleep(STARTUP_RETRY_INTERVAL).await;
            }
            decision => return Ok(decision),
        }
    }
}

/// Whether `s` is a running peer's answer that it does not host the asked region
/// (`runtime::peer_router`: `NOT_FOUND` "... does not host it ...").
fn peer_lacks_region(s: &tonic::Status) -> bool {
    s.code() == tonic::Code::NotFound && s.message().contains("does not host it")
}

/// What a running peer that does not host the region knows of it: nothing. It has no log,
/// no vote and no record of the asking node in that region's group, which is exactly the
/// answer of a founding voter that has not started the region yet, so it counts towards
/// the majority a founding node needs to bootstrap. This is what lets a region be added to
/// a running deployment by restarting the nodes one at a time with the new `[[regions]]`
/// entry (docs/operations.md, "Adding a region"): before, the first node restarted waited
/// for ever (every region of it unserved) for a second node to host the new region. A
/// peer that does host it still answers with its log and records, so a node that lost a
/// region's data is refused as before whenever such a peer answers; and a node refuses to
/// start while its data directory holds a region its config does not list
/// (`regions::check_data_dir`), so "does not host it" never hides a replica on disk.
fn no_replica_here() -> PeerAnswer {
    PeerAnswer::Status(PeerView {
        last_index: 0,
        recorded_incarnation: None,
        voters: Vec::new(),
        starting: true,
    })
}

/// One peer's answer; `Ok(None)` when it did not answer (down, unreachable, refused).
async fn ask(book: &PeerBook, me: &Identity, peer: u64) -> Result<Option<PeerAnswer>, Error> {
    let Some(addr) = book.peer(peer) else {
        return Ok(None);
    };
    let Ok(mut client) = book.dial(&addr) else {
        return Ok(None);
    };
    let mut request = tonic::Request::new(StatusRequest {
        from_node: me.node_id,
        region: book.stamp().region,
    });
    request.set_timeout(STARTUP_STATUS_TIMEOUT);
    let reply = tokio::time::timeout(STARTUP_STATUS_TIMEOUT, client.status(request)).await;
    let status = match reply {
        Ok(Ok(r)) => r.into_inner(),
        Ok(Err(s))
            if s.code() == tonic::Code::PermissionDenied
                && s.message().contains("not a member") =>
        {
            return Ok(Some(PeerAnswer::NotMember))
        }
        Ok(Err(s)) if peer_lacks_region(&s) => return Ok(Some(no_replica_here())),
        Ok(Err(_)) | Err(_) => return Ok(None),
    };
    if !status.cluster_id.is_empty() && status.cluster_id != me.cluster_id {
        return Err(Error::Startup(format!(
            "node {peer} (peer address {addr}) belongs to cluster {}, but this node's \
             cluster_id is {}: every node of a cluster has the same cluster_id (fix the \
             config's cluster_id or [peers])",
            status.cluster_id, me.cluster_id
        )));
    }
    Ok(Some(PeerAnswer::Status(PeerView {
        last_index: status
            .last_index
            .max(status.applied_index)
            .max(status.snapshot_index),
        recorded_incarnation: status.asker_incarnation,
        voters: status.voters,
        starting: status.starting,
    })))
}
