//! Simulated disks and [`SimStore`], a `RaftStore` over them.
//!
//! A [`Disk`] is an append-only journal of checksummed records with a durable part and a
//! pending part (written, not yet synced). [`SimStore`] keeps the live view in a
//! `MemStore` (the reference store semantics) and journals every mutation: calls the
//! `RaftStore` contract says are durable sync the journal before they return; `set_commit`
//! is not synced. On a crash the pending part is lost, and the write in flight may be torn
//! (its header sector reached the disk, its body only partly). While a node is down, a
//! durable record may be corrupted (a latent sector error). On restart the journal is
//! replayed: a torn *tail* (valid header, short body) was never acknowledged and is
//! dropped; any other checksum failure is corruption and [`SimStore::open`] refuses to
//! start the node, so garbage is never applied.
//!
//! Record layout: `len: u32 | body_sum: u64 | header_sum: u64 | body[len]`, where the
//! header checksum covers `len` and `body_sum`. Body: a tag byte then the operation.

use crate::rng::Rng;
use ninety_cluster::eraftpb::{ConfState, Entry, HardState, Snapshot};
use ninety_cluster::storage::MemStore;
use ninety_cluster::{Durability, Error, RaftStore};
use raft::{GetEntriesContext, RaftState};
use std::cell::RefCell;
use std::rc::Rc;

const HEADER: usize = 4 + 8 + 8;

/// A 64-bit FNV-1a-style checksum with a final avalanche (collisions are negligible here).
pub fn checksum(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for chunk in bytes.chunks(8) {
        let mut w = [0u8; 8];
        w[..chunk.len()].copy_from_slice(chunk);
        h ^= u64::from_le_bytes(w);
        h = h.wrapping_mul(0x0100_0000_01b3).rotate_left(29);
    }
    h ^= bytes.len() as u64;
    h = (h ^ (h >> 33)).wrapping_mul(0xff51_afd7_ed55_8ccd);
    h ^ (h >> 33)
}

/// One node's disk: durable and pending journal records.
#[derive(Debug, Default)]
pub struct Disk {
    durable: Vec<Vec<u8>>,
    pending: Vec<Vec<u8>>,
    /// Bug switch: `persist` leaves its record pending (flushed only in the background).
    pub ack_before_durable: bool,
    /// Records ever written, for statistics.
    pub writes: u64,
    /// Whether a corruption was injected since the last successful open.
    pub corrupted: bool,
}

/// A disk shared between the simulator (which crashes and corrupts it) and the store.
pub type DiskHandle = Rc<RefCell<Disk>>;

impl Disk {
    /// A new, empty disk.
    pub fn new_handle(ack_before_durable: bool) -> DiskHandle {
        Rc::new(RefCell::new(Disk {
            ack_before_durable,
            ..Default::default()
        }))
    }

    fn write(&mut self, body: Vec<u8>) {
        let mut rec = Vec::with_capacity(HEADER + body.len());
        rec.extend_from_slice(&(body.len() as u32).to_le_bytes());
        rec.extend_from_slice(&checksum(&body).to_le_bytes());
        let head_sum = checksum(&rec);
        rec.extend_from_slice(&head_sum.to_le_bytes());
        rec.extend_from_slice(&body);
        self.pending.push(rec);
        self.writes += 1;
    }

    /// Makes every pending record durable (fsync).
    pub fn sync(&mut self) {
        self.durable.append(&mut self.pending);
    }

    /// Writes a snapshot file durably (the snapshot writer's own file: temporary file,
    /// fsync, rename), without syncing the journal's pending records, which belong to
    /// other files (the Raft log).
    pub fn write_snapshot_file(&mut self, snapshot: &Snapshot) -> Result<(), Error> {
        let mut body = vec![OP_SNAPSHOT_FILE];
        put_bytes(&mut body, &encode(snapshot)?);
        let pending = std::mem::take(&mut self.pending);
        self.write(body);
        self.sync();
        self.pending = pending;
        Ok(())
    }

    /// A crash: pending records are lost; with `torn`, the first of them is left torn.
    pub fn crash(&mut self, rng: &mut Rng, torn: bool) {
        let pending = std::mem::take(&mut self.pending);
        if let (true, Some(first)) = (torn, pending.into_iter().next()) {
            let body_len = first.len() - HEADER;
            if body_len > 0 {
                let keep = HEADER + rng.below(body_len as u64) as usize;
                self.durable.push(first[..keep].to_vec());
            }
        }
    }

    /// Records written and not synced yet.
    pub fn pending_len(&self) -> usize {
        self.pending.len()
    }

    /// A crash in the middle of an fsync: the first `reached` pending records made it to
    /// the disk, the rest are lost (the first of them left torn with `torn`).
    pub fn crash_in_sync(&mut self, reached: usize, rng: &mut Rng, torn: bool) {
        let reached = reached.min(self.pending.len());
        let rest = self.pending.split_off(reached);
        self.sync();
        self.pending = rest;
        self.crash(rng, torn);
    }

    /// Records durable so far: a crash point for [`Disk::crash_at`].
    pub fn durable_len(&self) -> usize {
        self.durable.len()
    }

    /// A crash at an earlier moment, when only the first `len` durable records had reached
    /// the disk (a process killed in the middle of its write): the later ones are lost with
    /// the pending ones, the first of them left torn with `torn`.
    pub fn crash_at(&mut self, len: usize, rng: &mut Rng, torn: bool) {
        let mut lost = self.durable.split_off(len.min(self.durable.len()));
        lost.append(&mut self.pending);
        self.pending = lost;
        self.crash(rng, torn);
    }

    /// Flips one bit of a random durable record; returns whether it did. A torn tail left
    /// by the last crash is not a durable record (it was never acknowledged, and recovery
    /// rightly drops it), so it is never the one flipped: a flip there would be dropped with
    /// it and the restart would be reported as starting on a corrupted disk.
    pub fn corrupt(&mut self, rng: &mut Rng) -> bool {
        let torn_tail = self
            .durable
            .last()
            .and_then(|last| header(last).map(|(len, _)| last.len() < HEADER + len))
            .unwrap_or(false);
        let complete = self.durable.len() - usize::from(torn_tail);
        if complete == 0 {
            return false;
        }
        let i = rng.below(complete as u64) as usize;
        let rec = &mut self.durable[i];
        let at = rng.below(rec.len() as u64) as usize;
        rec[at] ^= 1 << rng.below(8);
        self.corrupted = true;
        true
    }

    /// Durable records, verified. A torn last record is dropped (it was never
    /// acknowledged); any other bad record is an error.
    fn verified(&mut self) -> Result<Vec<&[u8]>, Error> {
        let n = self.durable.len();
        if let Some(last) = self.durable.last() {
            if let Some((len, _)) = header(last) {
                if last.len() < HEADER + len {
                    self.durable.truncate(n - 1);
                }
            }
        }
        let mut out = Vec::with_capacity(self.durable.len());
        for (i, rec) in self.durable.iter().enumerate() {
            let (len, body_sum) =
                header(rec).ok_or_else(|| Error::Storage(format!("record {i}: corrupt header")))?;
            let body = rec
                .get(HEADER..HEADER + len)
                .filter(|_| rec.len() == HEADER + len)
                .ok_or_else(|| Error::Storage(format!("record {i}: torn in the middle")))?;
            if checksum(body) != body_sum {
                return Err(Error::Storage(format!(
                    "record {i}: body checksum mismatch"
                )));
            }
            out.push(body);
        }
        Ok(out)
    }
}

/// Parses and checks a record header: (body length, body checksum).
fn header(rec: &[u8]) -> Option<(usize, u64)> {
    let h = rec.get(..HEADER)?;
    let sum = u64::from_le_bytes(h[12..20].try_into().ok()?);
    if checksum(&h[..12]) != sum {
        return None;
    }
    let len = u32::from_le_bytes(h[..4].try_into().ok()?) as usize;
    let body_sum = u64::from_le_bytes(h[4..12].try_into().ok()?);
    Some((len, body_sum))
}

const OP_INIT: u8 = 0;
const OP_PERSIST: u8 = 1;
const OP_COMMIT: u8 = 2;
const OP_APPLY_SNAPSHOT: u8 = 3;
const OP_SAVE_SNAPSHOT: u8 = 4;
const OP_COMPACT: u8 = 5;
/// A snapshot file written by the snapshot writer (`sim::snapshot`): ignored at replay
/// unless an [`OP_RECORD_SNAPSHOT`] after it names it (a crash in between leaves an orphan).
const OP_SNAPSHOT_FILE: u8 = 6;
const OP_RECORD_SNAPSHOT: u8 = 7;

fn put_bytes(out: &mut Vec<u8>, b: &[u8]) {
    out.extend_from_slice(&(b.len() as u32).to_le_bytes());
    out.extend_from_slice(b);
}

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], Error> {
        if self.0.len() < n {
            return Err(Error::Storage("record body truncated".into()));
        }
        let (a, b) = self.0.split_at(n);
        self.0 = b;
        Ok(a)
    }
    fn u32(&mut self) -> Result<u32, Error> {
        let b = self.take(4)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }
    fn u64(&mut self) -> Result<u64, Error> {
        let lo = u64::from(self.u32()?);
        let hi = u64::from(self.u32()?);
        Ok(lo | (hi << 32))
    }
    fn bytes(&mut self) -> Result<&'a [u8], Error> {
        let n = self.u32()? as usize;
        self.take(n)
    }
}

fn pb<M: protobuf::Message>(b: &[u8]) -> Result<M, Error> {
    M::parse_from_bytes(b).map_err(|e| Error::Storage(format!("record decode: {e}")))
}

/// A Raft store on a simulated disk.
pub struct SimStore {
    mem: MemStore,
    disk: DiskHandle,
}

impl SimStore {
    /// Opens the store on `disk`, replaying its journal. Refuses (returns `Err`) when a
    /// durable record is corrupt.
    pub fn open(disk: DiskHandle) -> Result<SimStore, Error> {
        let mut mem = MemStore::new();
        {
            let mut d = disk.borrow_mut();
            let mut files = SnapshotFiles::default();
            for body in d.verified()? {
                replay(&mut mem, &mut files, body)?;
            }
            d.corrupted = false;
        }
        Ok(SimStore { mem, disk })
    }

    fn journal(&self, body: Vec<u8>, sync: bool) {
        let mut d = self.disk.borrow_mut();
        d.write(body);
        if sync {
            d.sync();
        }
    }
}

/// The journal record of a `persist` (or a queued write) of `entries` and `hard_state`.
fn persist_record(entries: &[Entry], hard_state: Option<&HardState>) -> Result<Vec<u8>, Error> {
    let mut body = vec![OP_PERSIST];
    body.extend_from_slice(&(entries.len() as u32).to_le_bytes());
    for e in entries {
        put_bytes(&mut body, &encode(e)?);
    }
    match hard_state {
        None => body.push(0),
        Some(hs) => {
            body.push(1);
            put_bytes(&mut body, &encode(hs)?);
        }
    }
    Ok(body)
}

/// Snapshot files met in the journal, by (index, term), until a record names one.
type SnapshotFiles = std::collections::BTreeMap<(u64, u64), Snapshot>;

fn replay(mem: &mut MemStore, files: &mut SnapshotFiles, body: &[u8]) -> Result<(), Error> {
    let (&tag, rest) = body
        .split_first()
        .ok_or_else(|| Error::Storage("empty record".into()))?;
    let mut r = Reader(rest);
    match tag {
        OP_INIT => mem.initialize(pb(r.bytes()?)?),
        OP_PERSIST => {
            let n = r.u32()?;
            let mut entries = Vec::with_capacity(n as usize);
            for _ in 0..n {
                entries.push(pb::<Entry>(r.bytes()?)?);
            }
            let hs = match r.take(1)?[0] {
                0 => None,
                _ => Some(pb::<HardState>(r.bytes()?)?),
            };
            mem.persist(&entries, hs.as_ref())
        }
        OP_COMMIT => mem.set_commit(r.u64()?),
        OP_APPLY_SNAPSHOT => mem.apply_snapshot(&pb(r.bytes()?)?),
        OP_SAVE_SNAPSHOT => mem.save_snapshot(&pb(r.bytes()?)?),
        OP_COMPACT => mem.compact(r.u64()?),
        OP_SNAPSHOT_FILE => {
            let snap: Snapshot = pb(r.bytes()?)?;
            let meta = snap.get_metadata();
            files.insert((meta.index, meta.term), snap);
            Ok(())
        }
        OP_RECORD_SNAPSHOT => {
            let (index, term) = (r.u64()?, r.u64()?);
            let snap = files.remove(&(index, term)).ok_or_else(|| {
                Error::Storage(format!("snapshot file {index}-{term} to record is missing"))
            })?;
            mem.save_snapshot(&snap)
        }
        other => Err(Error::Storage(format!("unknown record tag {other}"))),
    }
}

fn encode<M: protobuf::Message>(m: &M) -> Result<Vec<u8>, Error> {
    m.write_to_bytes()
        .map_err(|e| Error::Storage(format!("encode: {e}")))
}

impl raft::Storage for SimStore {
    fn initial_state(&self) -> raft::Result<RaftState> {
        self.mem.initial_state()
    }
    fn entries(
        &self,
        low: u64,
        high: u64,
        max_size: impl Into<Option<u64>>,
        context: GetEntriesContext,
    ) -> raft::Result<Vec<Entry>> {
        self.mem.entries(low, high, max_size, context)
    }
    fn term(&self, idx: u64) -> raft::Result<u64> {
        self.mem.term(idx)
    }
    fn first_index(&self) -> raft::Result<u64> {
        self.mem.first_index()
    }
    fn last_index(&self) -> raft::Result<u64> {
        self.mem.last_index()
    }
    fn snapshot(&self, request_index: u64, to: u64) -> raft::Result<Snapshot> {
        self.mem.snapshot(request_index, to)
    }
}

impl RaftStore for SimStore {
    fn initialize(&mut self, conf_state: ConfState) -> Result<(), Error> {
        let mut body = vec![OP_INIT];
        put_bytes(&mut body, &encode(&conf_state)?);
        self.mem.initialize(conf_state)?;
        self.journal(body, true);
        Ok(())
    }

    fn persist(&mut self, entries: &[Entry], hard_state: Option<&HardState>) -> Result<(), Error> {
        let body = persist_record(entries, hard_state)?;
        self.mem.persist(entries, hard_state)?;
        let sync = !self.disk.borrow().ack_before_durable;
        self.journal(body, sync);
        Ok(())
    }

    /// Journalled without a sync: the simulator's persistence worker syncs the disk later
    /// and reports it (`sim::persist`); the disk's order keeps every later write behind it.
    fn write_async(
        &mut self,
        _number: u64,
        entries: &[Entry],
        hard_state: Option<&HardState>,
    ) -> Result<Durability, Error> {
        let body = persist_record(entries, hard_state)?;
        self.mem.persist(entries, hard_state)?;
        self.journal(body, false);
        Ok(Durability::Queued)
    }

    fn set_commit(&mut self, commit: u64) -> Result<(), Error> {
        let mut body = vec![OP_COMMIT];
        body.extend_from_slice(&(commit as u32).to_le_bytes());
        body.extend_from_slice(&((commit >> 32) as u32).to_le_bytes());
        self.mem.set_commit(commit)?;
        self.journal(body, false);
        Ok(())
    }

    fn apply_snapshot(&mut self, snapshot: &Snapshot) -> Result<(), Error> {
        let mut body = vec![OP_APPLY_SNAPSHOT];
        put_bytes(&mut body, &encode(snapshot)?);
        self.mem.apply_snapshot(snapshot)?;
        self.journal(body, true);
        Ok(())
    }

    fn save_snapshot(&mut self, snapshot: &Snapshot) -> Result<(), Error> {
        let mut body = vec![OP_SAVE_SNAPSHOT];
        put_bytes(&mut body, &encode(snapshot)?);
        self.mem.save_snapshot(snapshot)?;
        self.journal(body, true);
        Ok(())
    }

    /// The file was written by the simulated writer ([`Disk::write_snapshot_file`]): only
    /// its name is journalled; `snapshot` carries its data for the live view.
    fn record_snapshot(&mut self, snapshot: &Snapshot) -> Result<(), Error> {
        let meta = snapshot.get_metadata();
        let mut body = vec![OP_RECORD_SNAPSHOT];
        for v in [meta.index, meta.term] {
            body.extend_from_slice(&(v as u32).to_le_bytes());
            body.extend_from_slice(&((v >> 32) as u32).to_le_bytes());
        }
        self.mem.save_snapshot(snapshot)?;
        self.journal(body, true);
        Ok(())
    }

    fn compact(&mut self, index: u64) -> Result<(), Error> {
        let mut body = vec![OP_COMPACT];
        body.extend_from_slice(&(index as u32).to_le_bytes());
        body.extend_from_slice(&((index >> 32) as u32).to_le_bytes());
        self.mem.compact(index)?;
        self.journal(body, true);
        Ok(())
    }

    fn stored_snapshot(&self) -> Result<Option<Snapshot>, Error> {
        self.mem.stored_snapshot()
    }

    fn applied_index(&self) -> u64 {
        self.mem.applied_index()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use raft::Storage as _;

    fn entry(index: u64, term: u64) -> Entry {
        Entry {
            index,
            term,
            data: vec![index as u8; 10].into(),
            ..Default::default()
        }
    }

    #[test]
    fn crash_loses_only_unsynced_and_corruption_is_refused() {
        let disk = Disk::new_handle(false);
        let mut s = SimStore::open(disk.clone()).unwrap();
        s.initialize(ConfState {
            voters: vec![1, 2, 3],
            ..Default::default()
        })
        .unwrap();
        s.persist(&[entry(1, 1), entry(2, 1)], None).unwrap();
        s.set_commit(2).unwrap();
        drop(s);
        let mut rng = Rng::new(3);
        disk.borrow_mut().crash(&mut rng, true);
        let s = SimStore::open(disk.clone()).unwrap();
        assert_eq!(s.last_index().unwrap(), 2);
        assert_eq!(s.initial_state().unwrap().conf_state.voters, vec![1, 2, 3]);
        drop(s);
        assert!(disk.borrow_mut().corrupt(&mut rng));
        assert!(SimStore::open(disk).is_err());
    }

    /// The one storage conformance suite every `RaftStore` passes (ninety-cluster's
    /// `storage::conformance`), on SimStore.
    #[test]
    fn conformance_suite() {
        use ninety_cluster::storage::conformance;
        conformance::every_check(|| SimStore::open(Disk::new_handle(false)).unwrap());
        let disk = Disk::new_handle(false);
        conformance::reopen(|| SimStore::open(disk.clone()).unwrap());
    }

    #[test]
    fn every_single_byte_flip_is_detected() {
        let disk = Disk::new_handle(false);
        let mut s = SimStore::open(disk.clone()).unwrap();
        s.persist(&[entry(1, 1)], None).unwrap();
        s.persist(&[entry(2, 1)], None).unwrap();
        drop(s);
        let len = disk.borrow().durable[0].len();
        for at in 0..len {
            disk.borrow_mut().durable[0][at] ^= 0x10;
            assert!(SimStore::open(disk.clone()).is_err(), "flip at {at}");
            disk.borrow_mut().durable[0][at] ^= 0x10;
        }
        assert!(SimStore::open(disk).is_ok());
    }
}
