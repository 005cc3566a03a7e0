//! raft-rs logs through `slog`; this drain forwards its records to `tracing` (target
//! `raft`) at the matching level, so elections, votes and configuration changes reach the
//! node's log in its format, filtered by `RUST_LOG` like the rest (`RUST_LOG=info,raft=debug`
//! for raft-rs's detail). A record is formatted only when `tracing` would keep it.

use std::fmt::Write as _;

/// The `slog::Drain` into `tracing` (module doc).
#[derive(Clone, Copy, Debug, Default)]
pub struct TracingDrain;

/// A logger for raft-rs whose records go to `tracing`.
pub fn logger() -> slog::Logger {
    slog::Logger::root(TracingDrain, slog::o!())
}

/// The record's key-values as `key=value` pairs.
#[derive(Default)]
struct Pairs(String);

impl slog::Serializer for Pairs {
    fn emit_arguments(&mut self, key: slog::Key, val: &std::fmt::Arguments<'_>) -> slog::Result {
        if !self.0.is_empty() {
            self.0.push(' ');
        }
        let _ = write!(self.0, "{key}={val}");
        Ok(())
    }
}

/// Forwards one record at a tracing level given as an identifier.
macro_rules! forward {
    ($level:ident, $record:expr, $values:expr) => {
        if tracing::enabled!(target: "raft", tracing::Level::$level) {
            let mut pairs = Pairs::default();
            let _ = slog::KV::serialize(&$record.kv(), $record, &mut pairs);
            let _ = slog::KV::serialize($values, $record, &mut pairs);
            tracing::event!(
                target: "raft",
                tracing::Level::$level,
                raft = %pairs.0,
                "{}",
                $record.msg()
            );
        }
    };
}

impl slog::Drain for TracingDrain {
    type Ok = ();
    type Err = slog::Never;

    fn log(
        &self,
        record: &slog::Record<'_>,
        values: &slog::OwnedKVList,
    ) -> Result<(), slog::Never> {
        match record.level() {
            slog::Level::Critical | slog::Level::Error => forward!(ERROR, record, values),
            slog::Level::Warning => forward!(WARN, record, values),
            slog::Level::Info => forward!(INFO, record, values),
            slog::Level::Debug => forward!(DEBUG, record, values),
            slog::Level::Trace => forward!(TRACE, record, values),
        }
        Ok(())
    }
}
