//! The cross-region referral driver (`docs/protocol.md`, "Cross-region referral"): the
//! runtime half of the saga whose memory is the origin region's replicated state
//! (`ninety_engine::remote`).
//!
//! One task per node process. Every [`REMOTE_DRIVE_INTERVAL`], for every region group of
//! the node that this node currently **leads** (the origin O), it asks O's state for the
//! steps owed to other regions (`Query::RemoteWork`, at most [`REMOTE_STEPS_PER_ROUND`]),
//! sends each to its destination D and records D's answer in O with
//! `Command::RecordRemote` through the ordinary write path (replicated, deduplicated).
//!
//! **Sending.** A step is the engine's [`RemoteStep::request`]: its request id is derived
//! from (origin, referral, attempt, step), so a repeat by this or any later leader of O is
//! answered by D's dedup table (and the hold step by D's step-keyed grants). When this node
//! hosts a replica of D the request goes to D's group in process through the same path a
//! client write takes (`Cluster::write`: proposed here or forwarded to D's leader). A
//! region this node does not host is not served: the placement of regions lives in each
//! node's own `[[regions]]` tables, so a node knows no other node that hosts a region it
//! does not (forwarding over the peer channel to such a node is the next step); the step is
//! recorded `Stuck("region D is not served by this deployment")` at once.
//!
//! **Failures.** A transport failure (D has no leader, is unreachable, a timeout) is not
//! an answer: the step is retried with a doubling backoff from [`REMOTE_BACKOFF_MIN`] to
//! [`REMOTE_BACKOFF_MAX`]; once it has failed for [`REMOTE_STUCK_AFTER`] the driver
//! records `RemoteOutcome::Stuck{reason}` once (the referral shows why on the worklist)
//! and keeps retrying. Every call has a deadline ([`REMOTE_STEP_TIMEOUT`]), so a round is
//! bounded and the node tasks are never waited on beyond it.
//!
//! **Leadership.** The role is checked at every round: a node that lost leadership stops
//! driving that group; the new leader's driver finds the same work in the state. A record
//! proposed by a node that just lost leadership is forwarded or refused; either way
//! harmless (a repeated or stale record changes nothing in the engine).

use crate::runtime::crash_point::CrashPoints;
use crate::server::{Cluster, Deadline};
use ninety_engine::read::{Answer, Query};
use ninety_engine::remote::{step_request_id, RemoteOutcome, RemoteStep};
use ninety_engine::{Command, Outcome, ReferralId, Request};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;

/// How often the driver looks for work in the groups this node leads.
pub const REMOTE_DRIVE_INTERVAL: Duration = Duration::from_millis(250);
/// Most steps one group's round sends (concurrently).
pub const REMOTE_STEPS_PER_ROUND: u32 = 32;
/// How long one call (a step to D, a record in O, the work read) may take.
pub const REMOTE_STEP_TIMEOUT: Duration = Duration::from_secs(5);
/// First wait before retrying a step that failed in transport.
pub const REMOTE_BACKOFF_MIN: Duration = Duration::from_millis(250);
/// Longest wait between retries of a failing step.
pub const REMOTE_BACKOFF_MAX: Duration = Duration::from_secs(5);
/// How long a step may fail in transport before the driver records it `Stuck`.
pub const REMOTE_STUCK_AFTER: Duration = Duration::from_secs(60);
/// Longest reason the driver records (the engine's text limit).
const REASON_BYTES_MAX: usize = ninety_engine::limits::TEXT_BYTES_MAX;

/// The reason recorded for a destination no group of this node serves.
pub fn not_served(region: &str) -> String {
    format!("region {region} is not served by this deployment")
}

/// One step of one attempt, as the retries are keyed: origin, referral, attempt, step name.
type StepKey = (String, ReferralId, u32, &'static str);

/// Retry state of a step that failed in transport.
#[derive(Debug, Clone)]
struct Retry {
    first_failure: Instant,
    next_try: Instant,
    backoff: Duration,
    stuck_recorded: bool,
}

/// What became of one step this round.
enum Sent {
    /// D answered and the answer is recorded in O (or O refused the record: final).
    Recorded,
    /// D answered but the record in O did not get through: retry soon.
    NotRecorded(String),
    /// D could not be reached (or gave no answer in time).
    Failed(String),
    /// No group of this node serves D.
    NotServed,
}

/// The driver: the node's groups by region id, and the steps failing in transport.
pub struct RemoteDriver {
    groups: BTreeMap<String, Arc<Cluster>>,
    retries: HashMap<StepKey, Retry>,
    /// Test crash points (`remote-answered-<step>`, `runtime::crash_point`).
    crash: CrashPoints,
}

/// Starts the driver over the node's groups (region id, group); it stops when `stopping`
/// turns true.
pub fn spawn(
    groups: Vec<(String, Arc<Cluster>)>,
    crash: CrashPoints,
    stopping: tokio::sync::watch::Receiver<bool>,
) -> tokio::task::JoinHandle<()> {
    let mut driver = RemoteDriver::new(groups);
    driver.crash = crash;
    tokio::spawn(driver.run(stopping))
}

impl RemoteDriver {
    /// A driver over `groups` (region id, group).
    pub fn new(groups: Vec<(String, Arc<Cluster>)>) -> RemoteDriver {
        RemoteDriver {
            groups: groups.into_iter().collect(),
            retries: HashMap::new(),
            crash: CrashPoints::off(),
        }
    }

    /// Runs rounds until `stopping` turns true (a round in flight is dropped).
    pub async fn run(mut self, mut stopping: tokio::sync::watch::Receiver<bool>) {
        let mut tick = tokio::time::interval(REMOTE_DRIVE_INTERVAL);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = stopping.wait_for(|s| *s) => return,
                _ = tick.tick() => {}
            }
            tokio::select! {
                _ = stopping.wait_for(|s| *s) => return,
                _ = self.round() => {}
            }
        }
    }

    /// One round: every group this node leads, its due steps sent and recorded.
    pub async fn round(&mut self) {
        let mut live = HashSet::new();
        let led: Vec<(String, Arc<Cluster>)> = self
            .groups
            .iter()
            .filter(|(_, c)| c.handle.summary().role == raft::StateRole::Leader)
            .map(|(id, c)| (id.clone(), c.clone()))
            .collect();
        for (origin, cluster) in led {
            let Ok(work) = remote_work(&cluster).await else {
                continue;
            };
            let now = Instant::now();
            let due: Vec<RemoteStep> = work
                .into_iter()
                .filter(|s| {
                    let k = key(&origin, s);
                    live.insert(k.clone());
                    self.retries.get(&k).is_none_or(|r| now >= r.next_try)
                })
                .collect();
            let sends = due.iter().map(|s| self.drive(&origin, &cluster, s));
            let results = futures_util::future::join_all(sends).await;
            for (step, sent) in due.iter().zip(results) {
                self.settle(&origin, &cluster, step, sent).await;
            }
        }
        // A step no longer owed (answered, or this node no longer leads) is forgotten.
        self.retries.retain(|k, _| live.contains(k));
    }

    /// Sends one step to its destination and records the answer in the origin.
    async fn drive(&self, origin: &str, cluster: &Cluster, step: &RemoteStep) -> Sent {
        let Some(dest) = self.groups.get(&step.region) else {
            return Sent::NotServed;
        };
        let answer = match send(dest, origin, step).await {
            Ok(answer) => answer,
            Err(why) => return Sent::Failed(why),
        };
        // D answered; O has not recorded it: the crash the saga's row 2 is about.
        self.crash
            .hit(&format!("remote-answered-{}", step.step_name()));
        let outcome = capped(step.outcome(&answer));
        match record(cluster, origin, step, outcome).await {
            Ok(()) => Sent::Recorded,
            Err(why) => Sent::NotRecorded(why),
        }
    }

    /// Updates the step's retry state after a round; records `Stuck` when it is due.
    async fn settle(&mut self, origin: &str, cluster: &Cluster, step: &RemoteStep, sent: Sent) {
        let k = key(origin, step);
        let now = Instant::now();
        let (why, stuck_now) = match sent {
            Sent::Recorded => {
                self.retries.remove(&k);
                return;
            }
            Sent::NotRecorded(why) => (why, false),
            Sent::Failed(why) => (why, false),
            Sent::NotServed => (not_served(&step.region), true),
        };
        let r = self.retries.entry(k).or_insert(Retry {
            first_failure: now,
            next_try: now,
            backoff: REMOTE_BACKOFF_MIN / 2,
            stuck_recorded: false,
        });
        r.backoff = (r.backoff * 2).min(REMOTE_BACKOFF_MAX);
        r.next_try = now + r.backoff;
        let due = stuck_now || now.duration_since(r.first_failure) >= REMOTE_STUCK_AFTER;
        if !due || r.stuck_recorded {
            tracing::debug!(referral = step.referral.0, region = %step.region, %why, "cross-region step not done; retrying");
            return;
        }
        tracing::warn!(referral = step.referral.0, region = %step.region, %why, "cross-region step stuck");
        let stuck = RemoteOutcome::Stuck { reason: cap(&why) };
        r.stuck_recorded = record(cluster, origin, step, stuck).await.is_ok();
    }
}

/// The retry key of a step.
fn key(origin: &str, s: &RemoteStep) -> StepKey {
    (origin.to_string(), s.referral, s.attempt, s.step_name())
}

/// The steps `cluster`'s state owes other regions (read on this node: it leads).
async fn remote_work(cluster: &Cluster) -> Result<Vec<RemoteStep>, tonic::Status> {
    let query = Query::RemoteWork {
        max: REMOTE_STEPS_PER_ROUND,
    };
    let deadline = Deadline::server(REMOTE_STEP_TIMEOUT);
    match cluster.read(&query, true, deadline).await? {
        (Answer::RemoteWork(steps), _) => Ok(steps),
        _ => Err(tonic::Status::internal("unexpected answer to RemoteWork")),
    }
}

/// Sends `step` of origin `origin` to the destination group `dest` as a client write
/// (proposed there, or forwarded to its leader); `Err` is a transport failure.
async fn send(dest: &Cluster, origin: &str, step: &RemoteStep) -> Result<Outcome, String> {
    let request = step.request(origin);
    let deadline = Deadline::server(REMOTE_STEP_TIMEOUT);
    match dest.write(&request, deadline).await {
        Ok(w) => Ok(w.applied.outcome),
        Err(s) => Err(format!("region {}: {}", step.region, s.message())),
    }
}

/// Records `outcome` for `step` in the origin group `cluster`. The request id is derived
/// from the step and the outcome, so a repeat is answered by the origin's dedup table. An
/// engine refusal is final (logged); `Err` is a transport failure.
async fn record(
    cluster: &Cluster,
    origin: &str,
    step: &RemoteStep,
    outcome: RemoteOutcome,
) -> Result<(), String> {
    let name = format!("record/{}/{outcome:?}", step.step_name());
    let request = Request {
        id: step_request_id(origin, step.referral, step.attempt, &name),
        command: Command::RecordRemote {
            referral: step.referral,
            attempt: step.attempt,
            outcome,
        },
    };
    let deadline = Deadline::server(REMOTE_STEP_TIMEOUT);
    match cluster.write(&request, deadline).await {
        Ok(w) => {
            if let Err(r) = w.applied.outcome {
                tracing::warn!(referral = step.referral.0, rejection = %r, "cross-region answer refused by the origin");
            }
            Ok(())
        }
        Err(s) => Err(format!("recording in region {origin}: {}", s.message())),
    }
}

/// An outcome whose text fits the engine's limit.
fn capped(outcome: RemoteOutcome) -> RemoteOutcome {
    match outcome {
        RemoteOutcome::Refused { reason } => RemoteOutcome::Refused {
            reason: cap(&reason),
        },
        RemoteOutcome::Stuck { reason } => RemoteOutcome::Stuck {
            reason: cap(&reason),
        },
        other => other,
    }
}

/// `text` without control characters, cut to [`REASON_BYTES_MAX`] bytes on a character
/// boundary.
fn cap(text: &str) -> String {
    let mut out = String::new();
    for c in text.chars() {
        let c = if c.is_control() { ' ' } else { c };
        if out.len() + c.len_utf8() > REASON_BYTES_MAX {
            break;
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reasons_fit_the_engine_limit() {
        let long = "é\n".repeat(REASON_BYTES_MAX);
        let c = cap(&long);
        assert!(c.len() <= REASON_BYTES_MAX);
        assert!(!c.contains('\n'));
        assert_eq!(cap("region x: no leader"), "region x: no leader");
    }

    /// The saga's internal commands have no client call: no client service builds one.
    #[test]
    fn no_client_service_proposes_the_internal_commands() {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/src/server");
        let files = std::fs::read_dir(dir).expect("src/server");
        for file in files.flatten() {
            let text = std::fs::read_to_string(file.path()).unwrap_or_default();
            for internal in ["RecordRemote", "HoldBedForRegion"] {
                assert!(
                    !text.contains(&format!("Command::{internal}")),
                    "{} builds Command::{internal}",
                    file.path().display()
                );
            }
        }
    }

    #[test]
    fn the_stuck_bound_and_backoff_are_ordered() {
        assert!(REMOTE_BACKOFF_MIN <= REMOTE_BACKOFF_MAX);
        assert!(REMOTE_BACKOFF_MAX < REMOTE_STUCK_AFTER);
        assert!(not_served("mars").contains("region mars is not served"));
    }
}
