//! Defense in depth around the state machine: a panic inside `apply` is caught and turned
//! into [`ApplyPanic`], a fatal error that names the entry, instead of a crash that a
//! restart replays forever.
//!
//! The engine promises that `apply` never panics; this is for the day it does. Every replica
//! applies the same entry, so every replica hits the same panic: there is no replica to fail
//! over to, and a restarted node replays the entry and panics again. What the node can do is
//! stop cleanly, say exactly which entry (index, term, request ids and kinds) and why, and
//! never go on with a state the panic may have left half-changed. The runtime then records
//! the entry durably and refuses to start on it (`runtime::poison`); the operator procedure
//! is in docs/operations.md ("A panic in apply").

use serde::{Deserialize, Serialize};
use std::cell::Cell;
use std::fmt;
use std::panic::{catch_unwind, AssertUnwindSafe};

/// Commands of a poisoned entry that are named one by one (a batch may hold hundreds).
pub const POISON_COMMANDS_NAMED_MAX: usize = 16;
/// Characters kept of a panic message and of a command's description.
pub const POISON_TEXT_CHARS_MAX: usize = 512;

/// A panic of the state machine while applying a committed entry (or while refreshing its
/// derived state right after).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApplyPanic {
    /// Raft index of the entry.
    pub index: u64,
    /// Raft term of the entry.
    pub term: u64,
    /// What the node was doing: applying the entry, or publishing derived state after it.
    pub during: String,
    /// How many commands the entry carries.
    pub command_count: usize,
    /// The first [`POISON_COMMANDS_NAMED_MAX`] commands as the state machine names them
    /// (request id and kind for the engine).
    pub commands: Vec<String>,
    /// The panic's message.
    pub message: String,
}

impl fmt::Display for ApplyPanic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "FATAL: the state machine panicked {} log entry {} (term {}): {}",
            self.during, self.index, self.term, self.message
        )?;
        if self.command_count > 0 {
            write!(f, "; the entry's {} command(s): ", self.command_count)?;
            write!(f, "{}", self.commands.join(", "))?;
            if self.command_count > self.commands.len() {
                write!(f, ", ...")?;
            }
        }
        Ok(())
    }
}

thread_local! {
    /// True while [`catch`] runs on this thread: a panic there is caught and reported.
    static CAUGHT: Cell<bool> = const { Cell::new(false) };
}

/// Whether a panic on this thread now would be caught by the node (so a fail-stop panic
/// hook must let it unwind instead of aborting the process).
pub fn panic_is_caught() -> bool {
    CAUGHT.with(Cell::get)
}

/// Runs `f`; a panic inside becomes `Err(message)` (bounded). For read paths outside the
/// node core (the driver's local reads), which take the state by shared reference.
pub fn catch_panic<T>(f: impl FnOnce() -> T) -> Result<T, String> {
    catch(f)
}

/// Runs `f`; a panic inside becomes `Err(message)`.
pub(super) fn catch<T>(f: impl FnOnce() -> T) -> Result<T, String> {
    let outer = CAUGHT.with(|c| c.replace(true));
    let result = catch_unwind(AssertUnwindSafe(f));
    CAUGHT.with(|c| c.set(outer));
    result.map_err(|payload| {
        let text = if let Some(s) = payload.downcast_ref::<&str>() {
            (*s).to_string()
        } else if let Some(s) = payload.downcast_ref::<String>() {
            s.clone()
        } else {
            "a panic without a message".to_string()
        };
        bounded(&text)
    })
}

/// `text` cut to [`POISON_TEXT_CHARS_MAX`] characters.
pub fn bounded(text: &str) -> String {
    match text.char_indices().nth(POISON_TEXT_CHARS_MAX) {
        Some((end, _)) => format!("{}...", &text[..end]),
        None => text.to_string(),
    }
}

/// The start of `value`'s `Debug` text, at most `max` bytes, without formatting the rest
/// (a region import's `Debug` is megabytes).
pub fn debug_prefix(value: &impl fmt::Debug, max: usize) -> String {
    struct Bounded {
        out: String,
        max: usize,
    }
    impl fmt::Write for Bounded {
        fn write_str(&mut self, s: &str) -> fmt::Result {
            for c in s.chars() {
                if self.out.len() + c.len_utf8() > self.max {
                    return Err(fmt::Error);
                }
                self.out.push(c);
            }
            Ok(())
        }
    }
    let mut b = Bounded {
        out: String::new(),
        max,
    };
    // An `Err` only says the text was cut at `max`.
    let _ = fmt::write(&mut b, format_args!("{value:?}"));
    b.out
}

/// The request id (32 hex digits) that makes a test build panic inside apply: see
/// [`poison_test`].
pub const POISON_TEST_REQUEST_ID: &str = "0bad0bad0bad0bad0bad0bad0bad0bad";
/// The environment variable that arms [`poison_test`] (a "fixed binary" is the same test
/// build started without it).
pub const POISON_TEST_ENV: &str = "NINETY_POISON_TEST";

/// Test builds only (feature `poison-test`): panics, as a buggy engine would, when
/// [`POISON_TEST_ENV`] is set and a command of the batch has request id
/// [`POISON_TEST_REQUEST_ID`]. The tests of the poison-pill procedure run the real binary
/// with it (cli/tests/cli.rs).
#[cfg(feature = "poison-test")]
pub(super) fn poison_test<M: crate::StateMachine>(sm: &M, commands: &[&[u8]]) {
    if std::env::var_os(POISON_TEST_ENV).is_none() {
        return;
    }
    if commands
        .iter()
        .any(|c| sm.describe(c).contains(POISON_TEST_REQUEST_ID))
    {
        panic!("poison-test: deliberate panic inside apply (request {POISON_TEST_REQUEST_ID})");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn catch_reports_the_message_and_restores_the_flag() {
        assert!(!panic_is_caught());
        let r: Result<(), String> = catch(|| {
            assert!(panic_is_caught());
            panic!("boom {}", 7)
        });
        assert_eq!(r, Err("boom 7".to_string()));
        assert!(!panic_is_caught());
        assert_eq!(catch(|| 5), Ok(5));
    }

    #[test]
    fn texts_are_bounded() {
        let long = "x".repeat(10 * POISON_TEXT_CHARS_MAX);
        assert_eq!(bounded(&long).len(), POISON_TEXT_CHARS_MAX + 3);
        assert_eq!(debug_prefix(&long, 10), "\"xxxxxxxxx");
        assert_eq!(debug_prefix(&Some(1), 64), "Some(1)");
    }
}
