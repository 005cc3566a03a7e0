//! The replicated state machine contract.
//!
//! The node core owns the log; a [`StateMachine`] owns the state derived from it. Every
//! replica feeds the same committed batches in the same order, so `apply` must be a pure
//! function of (state, context, commands): no clocks, no randomness, no I/O. Time reaches
//! the machine only as [`ApplyContext::log_time_ms`], which the leader wrote into the log.

/// Where a committed batch sits in the log, and the log time it carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ApplyContext {
    /// Raft index of the entry holding the batch.
    pub index: u64,
    /// Raft term of that entry.
    pub term: u64,
    /// Leader wall-clock time written into the entry, already clamped by the node to be
    /// monotonic (never lower than any earlier entry's time).
    pub log_time_ms: u64,
}

/// A deterministic state machine replicated through Raft.
pub trait StateMachine {
    /// Applies one committed batch of client commands and returns exactly one outcome per
    /// command, in the same order. `commands` may be empty: a log-time tick, so the machine
    /// can run time-driven rules (expiries) at `ctx.log_time_ms`.
    fn apply(&mut self, ctx: &ApplyContext, commands: &[&[u8]]) -> Vec<Vec<u8>>;

    /// Called by the node after each run of applied entries (and after a snapshot install),
    /// before it answers reads or hands out write outcomes: everything up to `index` is
    /// applied. A machine with derived read state (a published view) refreshes it here,
    /// once per run instead of once per entry. Must not change the replicated state.
    fn applied_up_to(&mut self, index: u64) {
        let _ = index;
    }

    /// Answers a read-only query against the current state (used after ReadIndex).
    fn query(&self, query: &[u8]) -> Vec<u8>;

    /// When applying `command` now would change nothing and its answer is already decided
    /// by the state — a retry of a request the machine remembers (its first answer), or a
    /// command it would refuse (refusals change nothing and are not remembered) — that
    /// answer, the bytes `apply` would return for it as the next entry stamped at the
    /// state's log time; else `None`. The node then answers it after a ReadIndex instead
    /// of a log entry (`docs/protocol.md`, "Commands answered as reads"), asking again at
    /// the read: it must answer `None` whenever applying might change anything. Must not
    /// change the state. The default: never (every command goes through the log).
    fn replay(&self, command: &[u8]) -> Option<Vec<u8>> {
        let _ = command;
        None
    }

    /// Serializes the whole state; `restore` of these bytes must give an equal state.
    fn snapshot(&self) -> Vec<u8>;

    /// An immutable image of the state now, to encode elsewhere: the node takes one on its
    /// own thread and a snapshot writer encodes it (`node::snapshots`). It must be cheap
    /// (the node waits for it) and encode to what `snapshot` returns now. The default
    /// encodes at once (fine for small machines; the engine shares its big maps instead).
    fn image(&self) -> Box<dyn StateImage> {
        Box::new(EncodedImage {
            bytes: self.snapshot(),
            hash: self.state_hash(),
        })
    }

    /// Replaces the whole state with a snapshot produced by `snapshot`.
    fn restore(&mut self, data: &[u8]) -> Result<(), String>;

    /// A digest of the whole state, equal on replicas that applied the same log prefix.
    fn state_hash(&self) -> [u8; 32];

    /// Names one command for an operator (the engine: its request id and kind), for the
    /// fatal error of an entry whose apply panicked. Must not panic on any bytes.
    fn describe(&self, command: &[u8]) -> String {
        format!("a command of {} bytes", command.len())
    }
}

/// An immutable copy of a [`StateMachine`]'s state ([`StateMachine::image`]), encoded on
/// another thread.
pub trait StateImage: Send {
    /// What `StateMachine::snapshot` returned when the image was taken.
    fn snapshot(&self) -> Vec<u8>;
    /// What `StateMachine::state_hash` returned when the image was taken.
    fn state_hash(&self) -> [u8; 32];
}

/// The default image: the state already encoded.
struct EncodedImage {
    bytes: Vec<u8>,
    hash: [u8; 32],
}

impl StateImage for EncodedImage {
    fn snapshot(&self) -> Vec<u8> {
        self.bytes.clone()
    }

    fn state_hash(&self) -> [u8; 32] {
        self.hash
    }
}
