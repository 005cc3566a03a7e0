//! Deterministic helpers for tests and the simulator: [`KvMachine`], a key/value state
//! machine, and [`ManualClock`], a clock the test advances by hand.

use crate::io::Clock;
use crate::state_machine::{ApplyContext, StateMachine};
use sha2::{Digest, Sha256};
use std::cell::Cell;
use std::collections::BTreeMap;

/// Key/value machine. Command `key=value` sets and returns the previous value; any command
/// without `=` returns the current value; `id#command` is `command` under request id `id`:
/// applied once, its first answer remembered (under the key `#id`) and returned to every
/// repeat, which [`StateMachine::replay`] answers too; a command or query starting with
/// [`KV_PANIC_PREFIX`] panics, as a buggy state machine would (the poison-pill tests of the
/// node core). Query `key` returns the value. It also records
/// the log time it last saw and how many entries it applied, so tests can check both.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct KvMachine {
    pub data: BTreeMap<Vec<u8>, Vec<u8>>,
    pub log_time_ms: u64,
    pub applied_batches: u64,
    pub last_index: u64,
    /// A "fixed build": commands starting with [`KV_PANIC_PREFIX`] are ordinary reads.
    /// Not part of the state (kept across `restore`, not in the snapshot).
    pub fixed: bool,
}

/// Commands starting with this make [`KvMachine`] panic inside `apply`.
pub const KV_PANIC_PREFIX: &[u8] = b"!panic";

impl KvMachine {
    pub fn get(&self, key: &str) -> Option<&[u8]> {
        self.data.get(key.as_bytes()).map(Vec::as_slice)
    }

    /// The remembered-answer key of an `id#command`, and the command.
    fn request_id(cmd: &[u8]) -> Option<(Vec<u8>, &[u8])> {
        let hash = cmd.iter().position(|b| *b == b'#')?;
        let key = [b"#", &cmd[..hash]].concat();
        Some((key, &cmd[hash + 1..]))
    }

    fn apply_one(&mut self, cmd: &[u8]) -> Vec<u8> {
        if let Some((key, inner)) = Self::request_id(cmd) {
            if let Some(first) = self.data.get(&key) {
                return first.clone();
            }
            let answer = self.apply_one(inner);
            self.data.insert(key, answer.clone());
            return answer;
        }
        if cmd.starts_with(KV_PANIC_PREFIX) && !self.fixed {
            panic!(
                "KvMachine: deliberate panic on {}",
                String::from_utf8_lossy(cmd)
            );
        }
        match cmd.iter().position(|b| *b == b'=') {
            Some(eq) => {
                let (k, v) = (cmd[..eq].to_vec(), cmd[eq + 1..].to_vec());
                self.data.insert(k, v).unwrap_or_default()
            }
            None => self.data.get(cmd).cloned().unwrap_or_default(),
        }
    }
}

impl StateMachine for KvMachine {
    fn apply(&mut self, ctx: &ApplyContext, commands: &[&[u8]]) -> Vec<Vec<u8>> {
        self.log_time_ms = ctx.log_time_ms;
        self.applied_batches += 1;
        self.last_index = ctx.index;
        commands.iter().map(|c| self.apply_one(c)).collect()
    }

    fn query(&self, query: &[u8]) -> Vec<u8> {
        if query.starts_with(KV_PANIC_PREFIX) && !self.fixed {
            panic!(
                "KvMachine: deliberate panic reading {}",
                String::from_utf8_lossy(query)
            );
        }
        self.data.get(query).cloned().unwrap_or_default()
    }

    fn replay(&self, command: &[u8]) -> Option<Vec<u8>> {
        let (key, _) = Self::request_id(command)?;
        self.data.get(&key).cloned()
    }

    fn snapshot(&self) -> Vec<u8> {
        let mut out = Vec::new();
        for n in [self.log_time_ms, self.applied_batches, self.last_index] {
            out.extend_from_slice(&n.to_le_bytes());
        }
        for (k, v) in &self.data {
            for part in [k, v] {
                out.extend_from_slice(&(part.len() as u32).to_le_bytes());
                out.extend_from_slice(part);
            }
        }
        out
    }

    fn restore(&mut self, data: &[u8]) -> Result<(), String> {
        let mut r = Cursor(data);
        let mut restored = KvMachine {
            log_time_ms: r.u64()?,
            applied_batches: r.u64()?,
            last_index: r.u64()?,
            fixed: self.fixed,
            ..Default::default()
        };
        while !r.0.is_empty() {
            let k = r.part()?;
            restored.data.insert(k, r.part()?);
        }
        *self = restored;
        Ok(())
    }

    fn describe(&self, command: &[u8]) -> String {
        format!("command {:?}", String::from_utf8_lossy(command))
    }

    fn state_hash(&self) -> [u8; 32] {
        Sha256::digest(self.snapshot()).into()
    }
}

/// A clock that only moves when told to.
#[derive(Debug, Default)]
pub struct ManualClock(Cell<u64>);

impl ManualClock {
    pub fn new(start_ms: u64) -> Self {
        ManualClock(Cell::new(start_ms))
    }

    pub fn advance(&self, ms: u64) {
        self.0.set(self.0.get() + ms);
    }
}

impl Clock for ManualClock {
    fn now_ms(&self) -> u64 {
        self.0.get()
    }
}

/// Reads the snapshot format of [`KvMachine`], failing on truncation.
struct Cursor<'a>(&'a [u8]);

impl Cursor<'_> {
    fn take(&mut self, n: usize) -> Result<&[u8], String> {
        if self.0.len() < n {
            return Err("truncated kv snapshot".into());
        }
        let (head, tail) = self.0.split_at(n);
        self.0 = tail;
        Ok(head)
    }

    fn u64(&mut self) -> Result<u64, String> {
        let b: [u8; 8] = self.take(8)?.try_into().map_err(|_| "u64")?;
        Ok(u64::from_le_bytes(b))
    }

    fn part(&mut self) -> Result<Vec<u8>, String> {
        let b: [u8; 4] = self.take(4)?.try_into().map_err(|_| "u32")?;
        let len = u32::from_le_bytes(b) as usize;
        Ok(self.take(len)?.to_vec())
    }
}

/// A logger that drops everything (raft-rs requires one).
pub fn discard_logger() -> slog::Logger {
    slog::Logger::root(slog::Discard, slog::o!())
}
