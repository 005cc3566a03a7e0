//! Byte formats this crate writes into Raft: the command batch of a normal entry and the
//! snapshot envelope. Versioned by a leading tag byte so a later format can coexist.
//!
//! Batch v2: `[2] [log_time_ms: u64 LE] [count: u32 LE] ([len: u32 LE] [command bytes])*`.
//! The layout is v1's; the tag changed with the command bytes (data format 2: commands say
//! who issued them, `engine_sm::LogCommand`), so a node never applies a format-1 entry it
//! would misread: it stops on it as a corrupt entry instead.
//! System entry: `[3] [postcard members::SystemEntry]`: written by the cluster itself (the
//! member registry), never by a client; a build that does not know the tag stops on it.
//! Snapshot v1: `[1] [log_time_ms: u64 LE] [state machine snapshot bytes]` (read only: an
//! empty member registry).
//! Snapshot v2: `[2] [log_time_ms: u64 LE] [registry_len: u32 LE] [members::Registry]
//! [state machine snapshot bytes]`.

use super::members::{Registry, SystemEntry};

const BATCH_V2: u8 = 2;
const SYSTEM_V1: u8 = 3;
const SNAPSHOT_V1: u8 = 1;
const SNAPSHOT_V2: u8 = 2;

/// Bytes a batch adds besides its commands: tag, time and count, plus 4 per command.
pub const BATCH_HEADER_BYTES: usize = 1 + 8 + 4;
pub const BATCH_PER_COMMAND_BYTES: usize = 4;

/// A decoded batch borrowing the entry's bytes.
#[derive(Debug, PartialEq, Eq)]
pub struct Batch<'a> {
    pub log_time_ms: u64,
    pub commands: Vec<&'a [u8]>,
}

pub fn encode_batch<'a>(
    log_time_ms: u64,
    commands: impl ExactSizeIterator<Item = &'a [u8]>,
) -> Vec<u8> {
    let mut out = Vec::with_capacity(BATCH_HEADER_BYTES);
    out.push(BATCH_V2);
    out.extend_from_slice(&log_time_ms.to_le_bytes());
    out.extend_from_slice(&(commands.len() as u32).to_le_bytes());
    for c in commands {
        out.extend_from_slice(&(c.len() as u32).to_le_bytes());
        out.extend_from_slice(c);
    }
    out
}

/// A cursor that fails instead of panicking on truncated input.
struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], String> {
        if self.0.len() < n {
            return Err(format!("truncated: need {n} bytes, have {}", self.0.len()));
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Ok(head)
    }

    fn u8(&mut self) -> Result<u8, String> {
        Ok(self.take(1)?[0])
    }

    fn u32(&mut self) -> Result<u32, String> {
        let b: [u8; 4] = self.take(4)?.try_into().map_err(|_| "u32")?;
        Ok(u32::from_le_bytes(b))
    }

    fn u64(&mut self) -> Result<u64, String> {
        let b: [u8; 8] = self.take(8)?.try_into().map_err(|_| "u64")?;
        Ok(u64::from_le_bytes(b))
    }
}

pub fn decode_batch(data: &[u8]) -> Result<Batch<'_>, String> {
    let mut r = Reader(data);
    let tag = r.u8()?;
    if tag != BATCH_V2 {
        return Err(format!("unknown batch format {tag}"));
    }
    let log_time_ms = r.u64()?;
    let count = r.u32()? as usize;
    // Each command needs at least its 4-byte length: reject absurd counts before allocating.
    if count > data.len() / BATCH_PER_COMMAND_BYTES {
        return Err(format!("command count {count} exceeds entry size"));
    }
    let mut commands = Vec::with_capacity(count);
    for _ in 0..count {
        let len = r.u32()? as usize;
        commands.push(r.take(len)?);
    }
    if !r.0.is_empty() {
        return Err(format!("{} trailing bytes", r.0.len()));
    }
    Ok(Batch {
        log_time_ms,
        commands,
    })
}

/// A snapshot envelope with an empty member registry (tests, tools).
pub fn encode_snapshot(log_time_ms: u64, state: &[u8]) -> Vec<u8> {
    encode_snapshot_with(log_time_ms, &Registry::default(), state)
}

/// The snapshot envelope: log time, the member registry and the state machine's bytes.
pub fn encode_snapshot_with(log_time_ms: u64, registry: &Registry, state: &[u8]) -> Vec<u8> {
    let members = registry.encode();
    let mut out = Vec::with_capacity(13 + members.len() + state.len());
    out.push(SNAPSHOT_V2);
    out.extend_from_slice(&log_time_ms.to_le_bytes());
    out.extend_from_slice(&(members.len() as u32).to_le_bytes());
    out.extend_from_slice(&members);
    out.extend_from_slice(state);
    out
}

/// A decoded snapshot envelope borrowing the state machine's bytes.
#[derive(Debug, PartialEq, Eq)]
pub struct SnapshotEnvelope<'a> {
    pub log_time_ms: u64,
    pub registry: Registry,
    pub state: &'a [u8],
}

/// Decodes either snapshot version (v1: an empty registry).
pub fn decode_snapshot_envelope(data: &[u8]) -> Result<SnapshotEnvelope<'_>, String> {
    let mut r = Reader(data);
    let tag = r.u8()?;
    let log_time_ms = match tag {
        SNAPSHOT_V1 | SNAPSHOT_V2 => r.u64()?,
        _ => return Err(format!("unknown snapshot format {tag}")),
    };
    let registry = if tag == SNAPSHOT_V2 {
        let len = r.u32()? as usize;
        Registry::decode(r.take(len)?)?
    } else {
        Registry::default()
    };
    Ok(SnapshotEnvelope {
        log_time_ms,
        registry,
        state: r.0,
    })
}

/// Returns (log time, state machine bytes); the registry is checked and left out.
pub fn decode_snapshot(data: &[u8]) -> Result<(u64, &[u8]), String> {
    let env = decode_snapshot_envelope(data)?;
    Ok((env.log_time_ms, env.state))
}

/// A system entry's bytes in the log.
pub fn encode_system(entry: &SystemEntry) -> Vec<u8> {
    let mut out = vec![SYSTEM_V1];
    out.extend_from_slice(&entry.encode());
    out
}

/// Whether a normal entry's data is a system entry (not a command batch).
pub fn is_system(data: &[u8]) -> bool {
    data.first() == Some(&SYSTEM_V1)
}

pub fn decode_system(data: &[u8]) -> Result<SystemEntry, String> {
    match data.split_first() {
        Some((&SYSTEM_V1, rest)) => SystemEntry::decode(rest),
        Some((tag, _)) => Err(format!("unknown system entry format {tag}")),
        None => Err("empty system entry".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batch_round_trip_and_garbage() {
        let cmds: Vec<&[u8]> = vec![b"a", b"", b"hello"];
        let enc = encode_batch(42, cmds.iter().copied());
        let dec = decode_batch(&enc).unwrap();
        assert_eq!(
            dec,
            Batch {
                log_time_ms: 42,
                commands: cmds
            }
        );
        assert!(decode_batch(&enc[..enc.len() - 1]).is_err());
        assert!(decode_batch(&[1, 0, 0, 0, 0, 0, 0, 0, 0, 255, 255, 255, 255]).is_err());
        assert!(decode_batch(&[]).is_err());
        let snap = encode_snapshot(7, b"xyz");
        assert_eq!(decode_snapshot(&snap).unwrap(), (7, &b"xyz"[..]));
    }

    #[test]
    fn snapshot_v1_still_decodes_and_v2_carries_the_registry() {
        let mut v1 = vec![SNAPSHOT_V1];
        v1.extend_from_slice(&9u64.to_le_bytes());
        v1.extend_from_slice(b"state");
        let env = decode_snapshot_envelope(&v1).unwrap();
        assert_eq!((env.log_time_ms, env.state), (9, &b"state"[..]));
        assert_eq!(env.registry, Registry::default());
        let mut reg = Registry::default();
        reg.apply(&SystemEntry::RegisterIncarnation {
            node: 2,
            incarnation: 5,
        });
        let v2 = encode_snapshot_with(11, &reg, b"s");
        let env = decode_snapshot_envelope(&v2).unwrap();
        assert_eq!(
            (env.log_time_ms, env.state, env.registry),
            (11, &b"s"[..], reg)
        );
        assert!(decode_snapshot_envelope(&v2[..12]).is_err());
        let sys = SystemEntry::RegisterIncarnation {
            node: 1,
            incarnation: 2,
        };
        let bytes = encode_system(&sys);
        assert!(is_system(&bytes) && !is_system(&encode_batch(1, std::iter::empty())));
        assert_eq!(decode_system(&bytes).unwrap(), sys);
        assert!(decode_system(&[3, 0xff]).is_err());
    }
}
