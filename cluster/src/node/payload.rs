//! Byte formats this crate writes into Raft: the command batch of a normal entry and the
//! snapshot envelope. Versioned by a leading tag byte so a later format can coexist.
//!
//! Batch v2: `[2] [log_time_ms: u64 LE] [count: u32 LE] ([len: u32 LE] [command bytes])*`.
//! The layout is v1's; the tag changed with the command bytes (data format 2: commands say
//! who issued them, `engine_sm::LogCommand`), so a node never applies a format-1 entry it
//! would misread: it stops on it as a corrupt entry instead.
//! Snapshot v1: `[1] [log_time_ms: u64 LE] [state machine snapshot bytes]`.

const BATCH_V2: u8 = 2;
const SNAPSHOT_V1: u8 = 1;

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

pub fn encode_snapshot(log_time_ms: u64, state: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(9 + state.len());
    out.push(SNAPSHOT_V1);
    out.extend_from_slice(&log_time_ms.to_le_bytes());
    out.extend_from_slice(state);
    out
}

/// Returns (log time, state machine bytes).
pub fn decode_snapshot(data: &[u8]) -> Result<(u64, &[u8]), String> {
    let mut r = Reader(data);
    let tag = r.u8()?;
    if tag != SNAPSHOT_V1 {
        return Err(format!("unknown snapshot format {tag}"));
    }
    Ok((r.u64()?, r.0))
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
}
