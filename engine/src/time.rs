//! Log time: the only clock the engine knows.
//!
//! The Raft leader stamps every log entry with its wall-clock time in milliseconds since the
//! Unix epoch; the engine receives it as `at` in `apply`. The engine keeps its own `now` as
//! the maximum time seen, so a new leader whose clock is behind cannot move time backwards.

use serde::{Deserialize, Serialize};
use std::fmt;

/// Milliseconds in one minute.
pub const MS_PER_MINUTE: u64 = 60_000;
/// Milliseconds in one day.
pub const MS_PER_DAY: u64 = 24 * 60 * MS_PER_MINUTE;

/// A point in log time: milliseconds since the Unix epoch, as stamped by the Raft leader.
#[derive(
    Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug, Default, Serialize, Deserialize,
)]
#[serde(transparent)]
pub struct LogTime(pub u64);

impl LogTime {
    /// The time `ms` milliseconds later, saturating at the end of time.
    pub fn plus_ms(self, ms: u64) -> LogTime {
        LogTime(self.0.saturating_add(ms))
    }

    /// The time `ms` milliseconds earlier, saturating at the epoch.
    pub fn minus_ms(self, ms: u64) -> LogTime {
        LogTime(self.0.saturating_sub(ms))
    }

    /// Whole minutes from `self` until `later` (zero when `later` is not later).
    pub fn minutes_until(self, later: LogTime) -> u64 {
        later.0.saturating_sub(self.0) / MS_PER_MINUTE
    }
}

impl fmt::Display for LogTime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "t{}ms", self.0)
    }
}

/// The ids in a time index `(time, id)` due at or before `until`, earliest first, at most
/// `max`: the one scan behind every expiry and pruning pass.
pub(crate) fn due<K: Copy + Ord>(
    index: &std::collections::BTreeSet<(LogTime, K)>,
    until: LogTime,
    max: usize,
) -> Vec<K> {
    index
        .iter()
        .take_while(|(t, _)| *t <= until)
        .take(max)
        .map(|(_, k)| *k)
        .collect()
}

/// Removes and returns the ids due at or before `until`, earliest first, at most `max`.
pub(crate) fn drain_due<K: Copy + Ord>(
    index: &mut std::collections::BTreeSet<(LogTime, K)>,
    until: LogTime,
    max: usize,
) -> Vec<K> {
    let mut out = Vec::new();
    while out.len() < max {
        match index.first() {
            Some(&(t, k)) if t <= until => {
                index.pop_first();
                out.push(k);
            }
            _ => break,
        }
    }
    out
}
