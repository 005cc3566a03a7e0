//! The engine adapter: [`EngineMachine`] makes `ninety_engine::Engine` the replicated
//! [`StateMachine`], and defines the byte formats the Raft log and reads carry for it.
//!
//! * Command bytes: a postcard-encoded [`LogCommand`]: who issued the command
//!   ([`RequestKey`]: a client's request id or the region bootstrap's number) and the
//!   command ([`encode_request`], [`encode_bootstrap`]). Log-time ticks are not commands:
//!   an empty entry is applied as `RequestKey::Tick(index)`.
//! * Outcome bytes: a postcard-encoded [`Applied`]: the engine's [`Outcome`] plus what the
//!   API needs to answer without a second read (log time, whether the answer was a dedup
//!   replay, the bed hold as it stands after the command). Every field is a deterministic
//!   function of the log, so every replica computes the same bytes; only the proposer uses
//!   them.
//! * Query bytes: a postcard-encoded [`Query`], answered by an [`Answer`]. The read model
//!   itself (what each query means) lives in the engine (`ninety_engine::read`): this
//!   module only decodes the bytes and hands the engine its published view.
//!
//! Nothing here panics on bad bytes: an undecodable command becomes a rejection outcome
//! (and changes nothing), an undecodable query becomes [`Answer::Invalid`].

use crate::state_machine::{ApplyContext, StateMachine};
use ninety_engine::read::Record;
use ninety_engine::AvailabilityView;
use ninety_engine::BedHold;
use ninety_engine::{
    BedTarget, Command, Engine, HospitalId, LogTime, Outcome, Rejection, Reply, Request, RequestId,
    RequestKey, ViewReader,
};
use serde::{Deserialize, Serialize};

pub use ninety_engine::read::{Answer, Query};

/// [`Engine::image`] as a [`crate::state_machine::StateImage`].
struct EngineImage(ninety_engine::snapshot::Image);

impl crate::state_machine::StateImage for EngineImage {
    fn snapshot(&self) -> Vec<u8> {
        // As `EngineMachine::snapshot`: postcard's std flavour never fails here.
        self.0.snapshot().unwrap_or_default()
    }

    fn state_hash(&self) -> [u8; 32] {
        self.0.state_hash().0
    }
}

/// One command of a log entry, as the log carries it.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
pub struct LogCommand {
    /// Who issued it: a client's request id or the region bootstrap's number (never a tick:
    /// the adapter refuses one, since ticks come from empty entries only).
    pub key: RequestKey,
    pub command: Command,
}

/// [`LogCommand`]'s encoding without copying the command (postcard encodes `&T` as `T`).
#[derive(Serialize)]
struct LogCommandRef<'a> {
    key: RequestKey,
    command: &'a Command,
}

/// What applying one command produced, as returned to the proposer.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Applied {
    /// Log time the command was applied at (the leader's stamp, clamped monotonic); for an
    /// answer given as a read (`StateMachine::replay`), the log time of the state read.
    pub log_time_ms: u64,
    /// True when the request id had been applied before: the outcome is the stored first
    /// answer and nothing changed now.
    pub replayed: bool,
    /// The log index that first applied the request: this entry's, or for a replay the
    /// entry that applied it first (what the API reports as `log_index`); 0 for a refusal
    /// answered as a read, which no entry carried (the API reports no commit for refusals).
    pub first_index: u64,
    /// The engine's answer.
    pub outcome: Outcome,
    /// For bed-hold commands: the hold after the command, and its ward's hospital.
    pub hold: Option<(BedHold, HospitalId)>,
    /// For scheduling and referral commands: the record after the command.
    pub record: Option<Record>,
}

/// Encodes a client's request for the log. Postcard cannot fail for these in-memory types;
/// the `Result` is kept so callers never need to unwrap.
pub fn encode_request(request: &Request) -> Result<Vec<u8>, String> {
    let c = LogCommandRef {
        key: RequestKey::Client(request.id),
        command: &request.command,
    };
    postcard::to_stdvec(&c).map_err(|e| e.to_string())
}

/// Encodes the `seq`-th region bootstrap command (`ninety_engine::bootstrap_commands`).
pub fn encode_bootstrap(seq: u32, command: &Command) -> Result<Vec<u8>, String> {
    let c = LogCommandRef {
        key: RequestKey::Bootstrap(seq),
        command,
    };
    postcard::to_stdvec(&c).map_err(|e| e.to_string())
}

/// Decodes command bytes of a log entry.
pub fn decode_log_command(bytes: &[u8]) -> Result<LogCommand, String> {
    postcard::from_bytes(bytes).map_err(|e| format!("undecodable command: {e}"))
}

/// Decodes outcome bytes produced by [`EngineMachine::apply`].
pub fn decode_applied(bytes: &[u8]) -> Result<Applied, String> {
    postcard::from_bytes(bytes).map_err(|e| format!("undecodable outcome: {e}"))
}

/// Encodes a query.
pub fn encode_query(query: &Query) -> Result<Vec<u8>, String> {
    postcard::to_stdvec(query).map_err(|e| e.to_string())
}

/// Decodes a query answer.
pub fn decode_query_result(bytes: &[u8]) -> Result<Answer, String> {
    postcard::from_bytes(bytes).map_err(|e| format!("undecodable query result: {e}"))
}

/// A shared handle on the engine's published availability view that survives snapshot
/// restores (a restored engine publishes through a new publisher; the cell follows it).
/// Readers load the latest view without touching the node task, and a reader that needs a
/// view at least as new as some applied index waits for its publication
/// ([`ViewCell::wait_for`]: a notification, not polling).
#[derive(Clone)]
pub struct ViewCell(std::sync::Arc<ViewSlot>);

struct ViewSlot {
    reader: std::sync::RwLock<ViewReader>,
    /// The applied index of the latest publication; waiting readers wake when it changes.
    published: tokio::sync::watch::Sender<u64>,
}

impl ViewCell {
    fn new(reader: ViewReader) -> ViewCell {
        ViewCell(std::sync::Arc::new(ViewSlot {
            reader: std::sync::RwLock::new(reader),
            published: tokio::sync::watch::Sender::new(0),
        }))
    }

    fn set(&self, reader: ViewReader) {
        // A poisoned lock only means a reader panicked holding it; the reader is whole.
        *self.0.reader.write().unwrap_or_else(|p| p.into_inner()) = reader;
    }

    /// Tells waiting readers that the view of applied index `index` is published (called
    /// after the engine published it, so a woken reader loads it).
    fn published(&self, index: u64) {
        // Every publication notifies (even at an unchanged index: after a restore the new
        // publisher's first view is tagged by its first publication).
        self.0.published.send_replace(index);
    }

    /// The latest published view; `log_index` says which applied index it reflects.
    pub fn load(&self) -> ninety_engine::sync::Arc<AvailabilityView> {
        self.0
            .reader
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .load()
    }

    /// The latest published view once it reflects applied index `index` or later: at once
    /// when it does already (the node publishes before it answers reads, so normally),
    /// else woken by the publication that reaches it. Never resolves if that publication
    /// never comes: callers bound it with their deadline.
    pub async fn wait_for(&self, index: u64) -> ninety_engine::sync::Arc<AvailabilityView> {
        // Subscribed before the first load: a publication after that load wakes `changed`.
        let mut published = self.0.published.subscribe();
        loop {
            let view = self.load();
            if view.log_index >= index {
                return view;
            }
            if published.changed().await.is_err() {
                // The sender lives in this cell, which `self` holds: unreachable; wait on
                // rather than answer from a view older than the read index.
                std::future::pending::<()>().await;
            }
        }
    }
}

impl std::fmt::Debug for ViewCell {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ViewCell")
    }
}

/// `ninety_engine::Engine` as a Raft state machine.
///
/// **View publication.** The availability view is republished once per run of applied
/// entries, when the node calls [`StateMachine::applied_up_to`] (after its Ready loop,
/// before it answers reads or acknowledges writes), tagged with the applied index. A user
/// that never calls it (a bare adapter in a test or simulator) gets a publication after
/// every `apply`, as before.
pub struct EngineMachine {
    engine: Engine,
    /// The engine's published availability view; matching queries read it without
    /// touching the authoritative state (and, through [`ViewCell`], off the node task).
    view: ViewCell,
    /// The node publishes per run of entries (`applied_up_to` was called once).
    batched_publication: bool,
    /// Entries applied since the last publication.
    unpublished: bool,
    /// The applied index of the last publication.
    published_index: u64,
    /// Where the engine's events go (`feed`); none in bare adapters (tests, simulator).
    feed: Option<crate::feed::Feed>,
}

impl Default for EngineMachine {
    fn default() -> Self {
        let mut engine = Engine::new();
        let view = ViewCell::new(engine.view_reader());
        EngineMachine {
            engine,
            view,
            batched_publication: false,
            unpublished: false,
            published_index: 0,
            feed: None,
        }
    }
}

impl std::fmt::Debug for EngineMachine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EngineMachine")
            .field("engine", &self.engine)
            .finish_non_exhaustive()
    }
}

impl EngineMachine {
    /// An empty engine: the region arrives through the log (`ImportRegion`).
    pub fn new() -> Self {
        EngineMachine::default()
    }

    /// An empty engine whose events go to `feed` (the node's change feed).
    pub fn with_feed(feed: crate::feed::Feed) -> Self {
        EngineMachine {
            feed: Some(feed),
            ..EngineMachine::default()
        }
    }

    /// Hands the events of the command just applied in entry `ctx` to the feed, from
    /// `position` on, and clears them (a command the engine never saw, an undecodable one,
    /// must not repeat its predecessor's); returns the position after them.
    fn publish_events(&mut self, ctx: &ApplyContext, position: u32) -> u32 {
        let next = match &self.feed {
            Some(feed) => {
                let at = self.engine.now().0;
                feed.record(ctx.index, at, position, self.engine.events())
            }
            None => position,
        };
        self.engine.clear_events();
        next
    }

    /// The published availability view, for lock-free matching reads on any task.
    pub fn view_cell(&self) -> ViewCell {
        self.view.clone()
    }

    /// Publishes the view after `apply` unless the node publishes per run of entries.
    fn after_apply(&mut self, index: u64) {
        if self.batched_publication {
            self.unpublished = true;
        } else {
            self.publish_view(index);
        }
    }

    /// Publishes the view as of applied index `index` and wakes the readers waiting for it.
    fn publish_view(&mut self, index: u64) {
        self.engine.publish_view_at(index);
        self.published_index = index;
        self.view.published(index);
    }

    /// The engine, for local (possibly stale) inspection.
    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    fn apply_one(&mut self, bytes: &[u8], at: LogTime, index: u64) -> Applied {
        let refused = |why: String| Applied {
            log_time_ms: at.0,
            replayed: false,
            first_index: index,
            outcome: Err(Rejection::invalid("command", why)),
            hold: None,
            record: None,
        };
        let LogCommand { key, command } = match postcard::from_bytes(bytes) {
            Ok(LogCommand {
                key: RequestKey::Tick(_),
                ..
            }) => return refused("a tick cannot be proposed as a command".into()),
            Ok(c) => c,
            Err(e) => return refused(format!("undecodable: {e}")),
        };
        let first = self.engine.dedup().get(key).map(|r| r.index);
        let outcome = self.engine.apply_as(key, &command, at, index);
        self.applied(&command, outcome, at, first, index)
    }

    /// The [`Applied`] of `command` answered `outcome` at log time `at` (clamped to the
    /// engine's), with the index that first applied its key, if it was remembered before.
    fn applied(
        &self,
        command: &Command,
        outcome: Outcome,
        at: LogTime,
        first: Option<u64>,
        index: u64,
    ) -> Applied {
        let hold_id = match (command, &outcome) {
            (_, Ok(Reply::BedHeld { hold, .. } | Reply::BedAllocated { hold, .. })) => Some(*hold),
            (Command::ConfirmHold { hold } | Command::ReleaseHold { hold }, _) => Some(*hold),
            _ => None,
        };
        let record = outcome.as_ref().ok().and_then(|r| self.engine.record(r));
        Applied {
            log_time_ms: self.engine.now().0.max(at.0),
            replayed: first.is_some(),
            first_index: first.unwrap_or(index),
            outcome,
            hold: hold_id.and_then(|h| self.engine.bed_hold(h)),
            record,
        }
    }

    /// What applying the command bytes `bytes` would answer now, when that answer changes
    /// nothing (`Engine::decided`: a retry of a remembered request, or a refusal): the bytes
    /// `apply` would return for it at the current log time (an entry stamped no later),
    /// except `first_index`, which is 0 for a refusal (no entry applied it). `None` for
    /// anything only the log can answer (accepted, uncovered or undecodable commands).
    fn replay_bytes(&self, bytes: &[u8]) -> Option<Vec<u8>> {
        let LogCommand { key, command } = postcard::from_bytes(bytes).ok()?;
        if !matches!(key, RequestKey::Client(_)) {
            return None;
        }
        let now = self.engine.now();
        let outcome = self.engine.decided(key, &command, now)?;
        let first = self.engine.dedup().get(key).map(|r| r.index);
        let applied = self.applied(&command, outcome, now, first, 0);
        postcard::to_stdvec(&applied).ok()
    }

    fn answer(&self, query: &[u8]) -> Answer {
        match postcard::from_bytes(query) {
            Ok(q) => self.engine.query(&q, &self.view.load()),
            Err(e) => Answer::Invalid(e.to_string()),
        }
    }
}

/// Used only if postcard ever fails to encode an in-memory value (it does not with the
/// std flavour): a fixed marker the API reports as an internal error instead of panicking.
const ENCODE_FAILED: &[u8] = b"";

impl StateMachine for EngineMachine {
    fn apply(&mut self, ctx: &ApplyContext, commands: &[&[u8]]) -> Vec<Vec<u8>> {
        let at = LogTime(ctx.log_time_ms);
        if commands.is_empty() {
            // A log-time tick: run expiries. Its key is the log index, so every replica
            // applies the identical request; ticks are never remembered (each index is
            // applied once).
            let tick = RequestKey::Tick(ctx.index);
            // A tick cannot be refused for a reason a client could act on; its reply only
            // matters to the engine's own bookkeeping.
            let _ = self.engine.apply_as(tick, &Command::Tick, at, ctx.index);
            self.publish_events(ctx, 0);
            self.after_apply(ctx.index);
            return Vec::new();
        }
        let mut position = 0;
        let out = commands
            .iter()
            .map(|c| {
                let applied = self.apply_one(c, at, ctx.index);
                position = self.publish_events(ctx, position);
                postcard::to_stdvec(&applied).unwrap_or_else(|_| ENCODE_FAILED.to_vec())
            })
            .collect();
        self.after_apply(ctx.index);
        out
    }

    fn applied_up_to(&mut self, index: u64) {
        if let Some(feed) = &self.feed {
            feed.applied(index);
        }
        self.batched_publication = true;
        if self.unpublished || index != self.published_index {
            self.publish_view(index);
            self.unpublished = false;
        }
    }

    fn query(&self, query: &[u8]) -> Vec<u8> {
        postcard::to_stdvec(&self.answer(query)).unwrap_or_else(|_| ENCODE_FAILED.to_vec())
    }

    fn replay(&self, command: &[u8]) -> Option<Vec<u8>> {
        self.replay_bytes(command)
    }

    fn snapshot(&self) -> Vec<u8> {
        // `Engine::snapshot` only fails if postcard cannot encode the state, which the std
        // flavour never does; an empty image would then fail `restore` loudly, not silently.
        self.engine.snapshot().unwrap_or_default()
    }

    /// The engine's image: small records copied, the beds' chunks shared (`cow_map`).
    fn image(&self) -> Box<dyn crate::state_machine::StateImage> {
        Box::new(EngineImage(self.engine.image()))
    }

    fn restore(&mut self, data: &[u8]) -> Result<(), String> {
        self.engine = if data.is_empty() {
            // A snapshot of a node that never applied anything (empty store image).
            Engine::new()
        } else {
            Engine::restore(data).map_err(|e| e.to_string())?
        };
        // A new engine publishes through a new publisher; readers take the new one (its
        // first view is tagged when the node reports the snapshot's index).
        self.view.set(self.engine.view_reader());
        self.unpublished = true;
        if let Some(feed) = &self.feed {
            feed.restored();
        }
        Ok(())
    }

    fn state_hash(&self) -> [u8; 32] {
        self.engine.state_hash().0
    }

    fn describe(&self, command: &[u8]) -> String {
        // Entries carry a `LogCommand` (who issued it, then the command), not a `Request`.
        match decode_log_command(command) {
            Ok(c) => {
                let text = crate::node::debug_prefix(&c.command, 64);
                let kind = text.split([' ', '(', '{']).next().unwrap_or_default();
                format!("request {} {kind}", c.key)
            }
            Err(_) => format!("an undecodable command of {} bytes", command.len()),
        }
    }
}

/// Builds the request to hold a bed of a ward (or a given bed).
pub fn hold_bed(id: RequestId, target: BedTarget, patient: u128, ttl_ms: u64) -> Request {
    Request {
        id,
        command: Command::HoldBed {
            target,
            patient: ninety_engine::PatientRef(patient),
            ttl_ms,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ninety_engine::WardId;

    fn ctx(index: u64) -> ApplyContext {
        ApplyContext {
            index,
            term: 1,
            log_time_ms: 1_000_000 + index,
        }
    }

    #[test]
    fn describe_names_a_logged_command_by_request_id_and_kind() {
        let id = RequestId(0x0bad_0bad);
        let request = hold_bed(id, BedTarget::Ward(WardId(1)), 7, 60_000);
        let bytes = encode_request(&request).expect("encode");
        let said = EngineMachine::new().describe(&bytes);
        assert_eq!(said, format!("request {id} HoldBed"));
        let said = EngineMachine::new().describe(b"\xff\xff");
        assert_eq!(said, "an undecodable command of 2 bytes");
    }

    /// A reader waiting for an applied index is woken by the publication that reaches it
    /// (not by earlier ones, and with no polling); an index already published answers at
    /// once.
    #[tokio::test]
    async fn a_reader_waiting_for_an_index_wakes_on_its_publication() {
        let mut m = EngineMachine::new();
        m.apply(&ctx(1), &[]);
        m.applied_up_to(1);
        let cell = m.view_cell();
        assert_eq!(cell.load().log_index, 1);
        let waiting = tokio::spawn({
            let cell = cell.clone();
            async move { cell.wait_for(3).await.log_index }
        });
        for index in 2..=3 {
            tokio::task::yield_now().await;
            assert!(!waiting.is_finished(), "woken before index {index}");
            m.apply(&ctx(index), &[]);
            m.applied_up_to(index);
        }
        let woken = tokio::time::timeout(std::time::Duration::from_secs(5), waiting)
            .await
            .expect("woken by the publication")
            .expect("the reader");
        assert_eq!(woken, 3);
        assert_eq!(cell.wait_for(2).await.log_index, 3, "published already");
    }

    #[test]
    fn garbage_is_a_rejection_and_ticks_are_deterministic() {
        let mut a = EngineMachine::new();
        let out = a.apply(&ctx(1), &[b"\xff\xff\xff"]);
        let applied = decode_applied(&out[0]).unwrap();
        assert!(matches!(applied.outcome, Err(Rejection::Invalid { .. })));
        let mut b = EngineMachine::new();
        b.apply(&ctx(1), &[b"\xff\xff\xff"]);
        assert!(a.apply(&ctx(2), &[]).is_empty());
        b.apply(&ctx(2), &[]);
        assert_eq!(a.state_hash(), b.state_hash());
        let snap = a.snapshot();
        let mut c = EngineMachine::new();
        c.restore(&snap).unwrap();
        assert_eq!(c.state_hash(), a.state_hash());
        let r = decode_query_result(&a.query(b"\xff")).unwrap();
        assert!(matches!(r, Answer::Invalid(_)));
    }

    fn set_policy(reach_minutes: u32) -> Command {
        Command::SetPolicy(ninety_engine::Policy {
            reach_minutes,
            ..Default::default()
        })
    }

    /// A replay reports the index of the entry that first applied the request; ticks are not
    /// remembered; a tick key cannot be proposed; bootstrap keys are not client ids.
    #[test]
    fn replays_report_the_first_index_and_keys_stay_apart() {
        let mut m = EngineMachine::new();
        let request = Request {
            id: RequestId(5),
            command: set_policy(60),
        };
        let bytes = encode_request(&request).unwrap();
        let first = decode_applied(&m.apply(&ctx(3), &[&bytes])[0]).unwrap();
        assert_eq!((first.replayed, first.first_index), (false, 3));
        assert!(m.apply(&ctx(4), &[]).is_empty());
        let again = decode_applied(&m.apply(&ctx(9), &[&bytes])[0]).unwrap();
        assert_eq!((again.replayed, again.first_index), (true, 3));
        assert_eq!(again.outcome, first.outcome);
        assert_eq!(m.engine().dedup().len(), 1, "the tick is not remembered");

        let tick = postcard::to_stdvec(&LogCommandRef {
            key: RequestKey::Tick(10),
            command: &Command::Tick,
        })
        .unwrap();
        let refused = decode_applied(&m.apply(&ctx(10), &[&tick])[0]).unwrap();
        assert!(matches!(refused.outcome, Err(Rejection::Invalid { .. })));

        let boot = encode_bootstrap(5, &set_policy(70)).unwrap();
        let applied = decode_applied(&m.apply(&ctx(11), &[&boot])[0]).unwrap();
        assert_eq!(
            (applied.replayed, applied.outcome),
            (false, Ok(Reply::Done))
        );
        let logged = decode_log_command(&boot).unwrap();
        assert_eq!(logged.key, RequestKey::Bootstrap(5));
    }

    /// The read path's answer to a retry (`replay`) is what applying it again would answer
    /// (at the log time of the state it reads), and nothing else is answered that way: new ids, reused ids refused, ticks, garbage.
    #[test]
    fn replay_answers_remembered_requests_only_and_as_apply_would() {
        let mut m = EngineMachine::new();
        let request = Request {
            id: RequestId(5),
            command: set_policy(60),
        };
        let bytes = encode_request(&request).unwrap();
        assert_eq!(m.replay(&bytes), None, "not applied yet");
        m.apply(&ctx(3), &[&bytes]);
        let read = decode_applied(&m.replay(&bytes).expect("remembered")).unwrap();
        let hash = m.state_hash();
        let applied = decode_applied(&m.apply(&ctx(4), &[&bytes])[0]).unwrap();
        assert_eq!(m.state_hash(), hash, "a replay changes nothing");
        // The same answer, at the log time of the state it was read from (a leader's
        // stamp, for an entry: the only difference).
        assert_eq!(read.log_time_ms, ctx(3).log_time_ms);
        assert_eq!(
            Applied {
                log_time_ms: 0,
                ..read
            },
            Applied {
                log_time_ms: 0,
                ..applied
            }
        );

        let reused = Request {
            id: RequestId(5),
            command: set_policy(61),
        };
        let reused = encode_request(&reused).unwrap();
        let read = decode_applied(&m.replay(&reused).expect("refused")).unwrap();
        assert_eq!(read.outcome, Err(Rejection::RequestIdReused(RequestId(5))));
        let fresh = Request {
            id: RequestId(6),
            command: set_policy(60),
        };
        assert_eq!(m.replay(&encode_request(&fresh).unwrap()), None);
        assert_eq!(m.replay(b"\xff\xff"), None);
        let boot = encode_bootstrap(1, &set_policy(70)).unwrap();
        m.apply(&ctx(5), &[&boot]);
        assert_eq!(m.replay(&boot), None, "only client requests");
    }

    /// A command the engine would refuse is answered on the read path with the bytes
    /// `apply` gives it, but for the log time (the state's) and `first_index` (0: no entry);
    /// a refusal is not remembered, so the same request is decided afresh each time.
    #[test]
    fn refusals_are_answered_as_apply_would_and_change_nothing() {
        let mut m = EngineMachine::new();
        let policy = Request {
            id: RequestId(5),
            command: set_policy(60),
        };
        m.apply(&ctx(3), &[&encode_request(&policy).unwrap()]);
        let hold = hold_bed(RequestId(6), BedTarget::Ward(WardId(9)), 1, 60_000);
        let bytes = encode_request(&hold).unwrap();
        let hash = m.state_hash();
        let read = decode_applied(&m.replay(&bytes).expect("refused")).unwrap();
        let applied = decode_applied(&m.apply(&ctx(4), &[&bytes])[0]).unwrap();
        assert_eq!(m.state_hash(), hash, "a refusal changes nothing");
        assert_eq!(read.outcome, Err(Rejection::UnknownWard(WardId(9))));
        assert_eq!(
            (read.log_time_ms, read.first_index, applied.first_index),
            (ctx(3).log_time_ms, 0, 4)
        );
        let same = |a: Applied| Applied {
            log_time_ms: 0,
            first_index: 0,
            ..a
        };
        assert_eq!(same(read), same(applied));
        assert!(m.replay(&bytes).is_some(), "not remembered: refused again");
        // A command the engine would accept is left to the log.
        let fresh = Request {
            id: RequestId(7),
            command: set_policy(61),
        };
        assert_eq!(m.replay(&encode_request(&fresh).unwrap()), None);
    }
}
