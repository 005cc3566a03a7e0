//! Snapshot intake: how a node receives a snapshot another node streams to it
//! (`Peer.InstallSnapshot`), bounded and validated before Raft ever sees it.
//!
//! This module owns the intake limits ([`IntakeLimits`]: declared size, concurrent streams,
//! stall and whole-stream timeouts) and the checks a received snapshot must pass. The peer
//! service only hands it the stream, its per-chunk sender check and its stamp check, then
//! steps what comes out. In order:
//!
//! 1. The first chunk arrives within [`SNAPSHOT_CHUNK_IDLE_TIMEOUT`]; every chunk passes the
//!    sender check, and the Raft message in the first one is a `MsgSnapshot` whose `from`
//!    and `to` are the chunk's (so the sender check covers the message too).
//! 2. The stream's stamp (the first chunk's `cluster_id` and `incarnation`) passes the
//!    stamp check, the one `Send` and `Forward` pass (`PeerGate::check_stamp`): a snapshot
//!    from another cluster, or from an incarnation of the sender other than the member
//!    registry's record (a node that lost its data), is refused `FAILED_PRECONDITION`
//!    before a permit is taken or any data kept. Every later chunk states the same stamp.
//! 3. Its declared `total_bytes` is at most `snapshot_bytes_max`, or the stream is refused
//!    `RESOURCE_EXHAUSTED` before anything more is read.
//! 4. A stream permit is free (at most `snapshot_streams_max` streams at once), or the
//!    stream is refused `RESOURCE_EXHAUSTED` at once: extra streams are never queued.
//! 5. Chunks arrive in order, none more than [`SNAPSHOT_CHUNK_IDLE_TIMEOUT`] after the last
//!    and all within [`SNAPSHOT_STREAM_TIMEOUT`] (else `DEADLINE_EXCEEDED`). Memory grows
//!    with the bytes that arrived (at most twice them), never with the size a sender
//!    declares.
//! 6. The bytes match the declared size and SHA-256 (else `DATA_LOSS`).
//! 7. Off the async runtime (`spawn_blocking`): the metadata is plausible, the envelope
//!    (`node::payload`) decodes, the engine snapshot's magic, format version and checksum
//!    are right, it decodes into an engine, and that engine's invariants hold
//!    (`Engine::check_invariants`). A bad one is refused `INVALID_ARGUMENT` (or `DATA_LOSS`
//!    for a checksum) and the node keeps running.
//!
//! Only then is the `MsgSnapshot` stepped. The node's restore of it (`node::apply`) runs
//! the very decoding of step 7, so a snapshot Raft takes is one the node can restore: a
//! restore failure there stays fatal because Raft has already moved to the snapshot.
//!
//! The permit is taken after the first chunk, so a stream that never sends one holds no
//! permit (it is cut after the idle timeout); the price is that tonic decodes each stream's
//! first chunk (at most the peer server's message limit) before the stream is counted.

use super::config::{FileConfig, PEERS_MAX};
use super::transport::{SNAPSHOT_CHUNK_BYTES, SNAPSHOT_TIMEOUT};
use crate::eraftpb::{Message, MessageType};
use crate::node::payload;
use ninety_engine::snapshot::SnapshotError;
use ninety_engine::Engine;
use ninety_proto::peer::v1::SnapshotChunk;
use protobuf::Message as _;
use sha2::{Digest, Sha256};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;
use tokio_stream::{Stream, StreamExt};
use tonic::Status;

/// Largest snapshot a node accepts by default, in bytes (`snapshot_bytes_max`). The engine
/// state of the GBA region with a day of schedules is about 11 MB: this leaves room for
/// a national region while keeping what one stream may make a node hold bounded.
pub const SNAPSHOT_BYTES_MAX: u64 = 1024 * 1024 * 1024;
/// Largest `snapshot_bytes_max` a config may set, in bytes.
pub const SNAPSHOT_BYTES_SETTING_MAX: u64 = 1024 * 1024 * 1024 * 1024;
/// Snapshot streams received at once by default (`snapshot_streams_max`): a new member and
/// one lagging follower's worth; a leader sends each follower one snapshot at a time.
pub const SNAPSHOT_STREAMS_MAX: usize = 2;
/// Largest `snapshot_streams_max` a config may set: one per possible peer.
pub const SNAPSHOT_STREAMS_SETTING_MAX: usize = PEERS_MAX;
/// A stream whose next chunk does not arrive within this is cut (`DEADLINE_EXCEEDED`).
pub const SNAPSHOT_CHUNK_IDLE_TIMEOUT: Duration = Duration::from_secs(15);
/// A whole stream must arrive within this: the sender gives up after the same time.
pub const SNAPSHOT_STREAM_TIMEOUT: Duration = SNAPSHOT_TIMEOUT;

// A sender chunk must fit in the default limit, or no snapshot could ever be received.
const _: () = assert!(SNAPSHOT_CHUNK_BYTES as u64 <= SNAPSHOT_BYTES_MAX);
// An idle chunk must be cut before the whole stream's deadline makes the idle limit moot.
const _: () =
    assert!(SNAPSHOT_CHUNK_IDLE_TIMEOUT.as_millis() < SNAPSHOT_STREAM_TIMEOUT.as_millis());

/// The limits one node applies to the snapshots it receives.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IntakeLimits {
    /// Largest declared (and received) snapshot, in bytes.
    pub bytes_max: u64,
    /// Streams received at once.
    pub streams_max: usize,
    /// Longest wait for the next chunk.
    pub chunk_idle: Duration,
    /// Longest time for a whole stream.
    pub stream_timeout: Duration,
}

impl Default for IntakeLimits {
    fn default() -> Self {
        IntakeLimits {
            bytes_max: SNAPSHOT_BYTES_MAX,
            streams_max: SNAPSHOT_STREAMS_MAX,
            chunk_idle: SNAPSHOT_CHUNK_IDLE_TIMEOUT,
            stream_timeout: SNAPSHOT_STREAM_TIMEOUT,
        }
    }
}

impl IntakeLimits {
    /// The defaults with the config's overrides (already checked by `FileConfig::check`).
    pub fn from_config(cfg: &FileConfig) -> IntakeLimits {
        let d = IntakeLimits::default();
        IntakeLimits {
            bytes_max: cfg.snapshot_bytes_max.unwrap_or(d.bytes_max).max(1),
            streams_max: cfg.snapshot_streams_max.unwrap_or(d.streams_max).max(1),
            ..d
        }
    }
}

/// One node's snapshot intake: its limits and its stream permits. Cheap to clone (the
/// permits are shared).
#[derive(Clone, Debug)]
pub struct SnapshotIntake {
    limits: IntakeLimits,
    streams: Arc<Semaphore>,
}

/// A snapshot that passed every check, ready to step. Holds its stream permit until
/// dropped, so a stream counts against the limit until the node has taken the snapshot.
#[derive(Debug)]
pub struct Received {
    /// The `MsgSnapshot` with its data in place.
    pub message: Message,
    /// Bytes received.
    pub bytes: u64,
    /// The stream's permit: drop it once the node has the snapshot.
    pub permit: OwnedSemaphorePermit,
}

impl SnapshotIntake {
    pub fn new(limits: IntakeLimits) -> SnapshotIntake {
        SnapshotIntake {
            limits,
            streams: Arc::new(Semaphore::new(limits.streams_max)),
        }
    }

    pub fn limits(&self) -> IntakeLimits {
        self.limits
    }

    /// Receives and validates one snapshot stream; see the module doc for the order of the
    /// checks. `sender` is called with every chunk's `(from_node, to_node)`, and `stamp`
    /// with the first chunk's `(from_node, cluster_id, incarnation)`; their refusals are
    /// returned unchanged.
    pub async fn receive<S>(
        &self,
        stream: S,
        sender: impl Fn(u64, u64) -> Result<(), Status>,
        stamp: impl Fn(u64, &str, u64) -> Result<(), Status>,
    ) -> Result<Received, Status>
    where
        S: Stream<Item = Result<SnapshotChunk, Status>>,
    {
        let deadline = Instant::now() + self.limits.stream_timeout;
        tokio::pin!(stream);
        let Some(first) = self.next_chunk(&mut stream, deadline).await? else {
            return Err(Status::aborted(
                "snapshot stream ended before its first chunk",
            ));
        };
        sender(first.from_node, first.to_node)?;
        let head = parse_head(&first, &sender)?;
        stamp(first.from_node, &first.cluster_id, first.incarnation)?;
        let stated = (first.cluster_id.clone(), first.incarnation);
        self.check_declared(first.total_bytes)?;
        let permit = self.streams.clone().try_acquire_owned().map_err(|_| {
            Status::resource_exhausted(format!(
                "snapshot_streams_max: {} snapshot streams are being received already; \
                 retry later",
                self.limits.streams_max
            ))
        })?;
        let declared = first.total_bytes;
        let mut data = Vec::new();
        let mut chunk = first;
        loop {
            if append(&mut data, &chunk, declared)? {
                break;
            }
            chunk = match self.next_chunk(&mut stream, deadline).await? {
                Some(c) => c,
                None => return Err(Status::aborted("snapshot stream ended early")),
            };
            sender(chunk.from_node, chunk.to_node)?;
            if (chunk.from_node, chunk.to_node) != (head.from, head.to) {
                return Err(Status::invalid_argument(
                    "from_node, to_node: changed within the snapshot stream",
                ));
            }
            if (&chunk.cluster_id, chunk.incarnation) != (&stated.0, stated.1) {
                return Err(Status::invalid_argument(
                    "cluster_id, incarnation: changed within the snapshot stream",
                ));
            }
        }
        let bytes = data.len() as u64;
        let message = validate_off_runtime(head, data).await?;
        Ok(Received {
            message,
            bytes,
            permit,
        })
    }

    /// The next chunk, within the idle limit and the stream's deadline.
    async fn next_chunk<S>(
        &self,
        stream: &mut std::pin::Pin<&mut S>,
        deadline: Instant,
    ) -> Result<Option<SnapshotChunk>, Status>
    where
        S: Stream<Item = Result<SnapshotChunk, Status>>,
    {
        let idle_until = (Instant::now() + self.limits.chunk_idle).min(deadline);
        match tokio::time::timeout_at(idle_until, stream.next()).await {
            Ok(None) => Ok(None),
            Ok(Some(chunk)) => chunk.map(Some),
            Err(_) if idle_until == deadline => Err(Status::deadline_exceeded(format!(
                "snapshot stream not complete within {} ms",
                self.limits.stream_timeout.as_millis()
            ))),
            Err(_) => Err(Status::deadline_exceeded(format!(
                "snapshot stream stalled: no chunk for {} ms",
                self.limits.chunk_idle.as_millis()
            ))),
        }
    }

    fn check_declared(&self, total_bytes: u64) -> Result<(), Status> {
        if total_bytes > self.limits.bytes_max {
            return Err(Status::resource_exhausted(format!(
                "total_bytes: a snapshot of {total_bytes} bytes is above snapshot_bytes_max \
                 ({} bytes)",
                self.limits.bytes_max
            )));
        }
        Ok(())
    }
}

/// The Raft message of the first chunk: a `MsgSnapshot` between the chunk's nodes. The
/// message's own `from`/`to` go through the sender check too, so a member's chunks carrying
/// another node's snapshot are refused (and counted) as that check refuses them.
fn parse_head(
    first: &SnapshotChunk,
    sender: &impl Fn(u64, u64) -> Result<(), Status>,
) -> Result<Message, Status> {
    let m = Message::parse_from_bytes(&first.raft_message)
        .map_err(|e| Status::invalid_argument(format!("raft_message: {e}")))?;
    if m.get_msg_type() != MessageType::MsgSnapshot {
        return Err(Status::invalid_argument("raft_message: not a MsgSnapshot"));
    }
    sender(m.from, m.to)?;
    if (m.from, m.to) != (first.from_node, first.to_node) {
        return Err(Status::invalid_argument(format!(
            "raft_message: from {} to {} is not the chunk's from_node {} to_node {}",
            m.from, m.to, first.from_node, first.to_node
        )));
    }
    Ok(m)
}

/// Appends one chunk's data; true when it was the last chunk and the whole snapshot
/// matches the size `declared` on the first chunk (already within the limit) and its
/// SHA-256. Memory is reserved for the bytes that arrived: at most twice them, never past
/// the declared size.
fn append(data: &mut Vec<u8>, chunk: &SnapshotChunk, declared: u64) -> Result<bool, Status> {
    if chunk.total_bytes != declared {
        return Err(Status::invalid_argument(format!(
            "total_bytes: {} where the first chunk declared {declared}",
            chunk.total_bytes
        )));
    }
    if chunk.offset != data.len() as u64 {
        return Err(Status::invalid_argument(format!(
            "offset: {} where {} bytes have arrived (chunks out of order)",
            chunk.offset,
            data.len()
        )));
    }
    let need = data.len() + chunk.data.len();
    if need as u64 > declared {
        return Err(Status::invalid_argument(format!(
            "data: {need} bytes, more than total_bytes {declared}"
        )));
    }
    if need > data.capacity() {
        // Doubling keeps the copies linear in the size; capacity stays within twice what
        // arrived, and never past the declared size.
        let want = need
            .max(data.len().saturating_mul(2))
            .min(usize::try_from(declared).unwrap_or(usize::MAX));
        data.try_reserve_exact(want - data.len()).map_err(|e| {
            Status::resource_exhausted(format!("snapshot of {need} bytes: no memory: {e}"))
        })?;
    }
    data.extend_from_slice(&chunk.data);
    if !chunk.last {
        return Ok(false);
    }
    if data.len() as u64 != declared {
        return Err(Status::data_loss(format!(
            "total_bytes: {declared} declared, {} received",
            data.len()
        )));
    }
    if Sha256::digest(&data[..]).as_slice() != chunk.data_sha256.as_slice() {
        return Err(Status::data_loss("data_sha256: does not match the data"));
    }
    Ok(true)
}

/// Runs [`validate`] on a blocking thread (decoding a large engine takes a while) and puts
/// the data into the message. A panic while decoding is a refusal, not a crash.
async fn validate_off_runtime(mut head: Message, data: Vec<u8>) -> Result<Message, Status> {
    let checked =
        tokio::task::spawn_blocking(move || validate(&head, &data).map(|()| (head, data))).await;
    let (h, data) = match checked {
        Ok(result) => result?,
        Err(e) => {
            return Err(Status::invalid_argument(format!(
                "snapshot: decoding it failed ({e})"
            )))
        }
    };
    head = h;
    head.mut_snapshot().set_data(data.into());
    Ok(head)
}

/// Checks a complete snapshot before it is acknowledged: plausible metadata, the envelope,
/// the engine snapshot's magic, version and checksum, its decoding and the engine's
/// invariants. Reads only; nothing of the node is touched.
pub fn validate(head: &Message, data: &[u8]) -> Result<(), Status> {
    let invalid = |why: String| Err(Status::invalid_argument(why));
    let meta = head.get_snapshot().get_metadata();
    if meta.index == 0 || meta.term == 0 {
        return invalid(format!(
            "raft_message.snapshot.metadata: index {} term {} (both must be at least 1)",
            meta.index, meta.term
        ));
    }
    if meta.get_conf_state().voters.is_empty() {
        return invalid("raft_message.snapshot.metadata.conf_state.voters: empty".into());
    }
    let (_log_time, state) = match payload::decode_snapshot(data) {
        Ok(decoded) => decoded,
        Err(e) => return invalid(format!("snapshot envelope: {e}")),
    };
    if state.is_empty() {
        // Every node's snapshot carries an engine image (even a bootstrap's empty engine).
        return invalid("snapshot envelope: no engine image".into());
    }
    let engine = match Engine::restore(state) {
        Ok(engine) => engine,
        Err(e @ SnapshotError::Corrupt) => {
            return Err(Status::data_loss(format!("snapshot engine image: {e}")))
        }
        Err(e) => return invalid(format!("snapshot engine image: {e}")),
    };
    engine
        .check_invariants()
        .or_else(|v| invalid(format!("snapshot engine image breaks an invariant: {v}")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::eraftpb::ConfState;
    use ninety_engine::snapshot::{MAGIC, SNAPSHOT_FORMAT_VERSION};
    use ninety_engine::LogTime;
    use tonic::Code;

    const FROM: u64 = 2;
    const TO: u64 = 1;

    /// A snapshot of the "test" region as a node would send it.
    fn region_engine() -> Engine {
        ninety_engine::load(&super::super::test_region(), &[], LogTime(1_000)).expect("load")
    }

    fn envelope(engine_image: &[u8]) -> Vec<u8> {
        payload::encode_snapshot(1_000, engine_image)
    }

    fn head() -> Vec<u8> {
        let mut m = Message::default();
        m.set_msg_type(MessageType::MsgSnapshot);
        (m.from, m.to, m.term) = (FROM, TO, 3);
        let meta = m.mut_snapshot().mut_metadata();
        (meta.index, meta.term) = (40, 3);
        meta.set_conf_state(ConfState {
            voters: vec![1, 2, 3],
            ..Default::default()
        });
        m.write_to_bytes().expect("encode head")
    }

    /// `data` as the sender splits it, in chunks of `piece` bytes.
    fn chunks(data: &[u8], piece: usize) -> Vec<SnapshotChunk> {
        let pieces: Vec<&[u8]> = data.chunks(piece.max(1)).collect();
        let n = pieces.len();
        let mut offset = 0;
        let mut out = Vec::new();
        for (i, p) in pieces.into_iter().enumerate() {
            let last = i + 1 == n;
            out.push(SnapshotChunk {
                from_node: FROM,
                to_node: TO,
                raft_message: if i == 0 { head() } else { Vec::new() },
                data: p.to_vec(),
                offset,
                last,
                total_bytes: data.len() as u64,
                data_sha256: if last {
                    Sha256::digest(data).to_vec()
                } else {
                    Vec::new()
                },
                ..Default::default()
            });
            offset += p.len() as u64;
        }
        out
    }

    fn intake(streams_max: usize) -> SnapshotIntake {
        SnapshotIntake::new(IntakeLimits {
            bytes_max: 64 * 1024 * 1024,
            streams_max,
            chunk_idle: Duration::from_millis(200),
            stream_timeout: Duration::from_secs(5),
        })
    }

    fn anyone(_: u64, _: u64) -> Result<(), Status> {
        Ok(())
    }

    fn any_stamp(_: u64, _: &str, _: u64) -> Result<(), Status> {
        Ok(())
    }

    async fn receive(intake: &SnapshotIntake, c: Vec<SnapshotChunk>) -> Result<Received, Status> {
        intake
            .receive(tokio_stream::iter(c.into_iter().map(Ok)), anyone, any_stamp)
            .await
    }

    fn refused(r: Result<Received, Status>, code: Code, says: &str) {
        match r {
            Ok(_) => panic!("accepted; expected {code:?} saying {says:?}"),
            Err(s) => assert!(
                s.code() == code && s.message().contains(says),
                "expected {code:?} saying {says:?}, got {s:?}"
            ),
        }
    }

    #[tokio::test]
    async fn a_real_snapshot_is_received_whole_and_the_permit_comes_back() {
        let data = envelope(&region_engine().snapshot().expect("snapshot"));
        let intake = intake(1);
        let got = receive(&intake, chunks(&data, 4096))
            .await
            .expect("accepted");
        assert_eq!(got.bytes, data.len() as u64);
        assert_eq!(got.message.get_snapshot().get_data(), &data[..]);
        assert_eq!(intake.streams.available_permits(), 0, "held until stepped");
        drop(got);
        assert_eq!(intake.streams.available_permits(), 1);
    }

    #[tokio::test]
    async fn a_declared_size_above_the_limit_is_refused_on_the_first_chunk() {
        let mut c = chunks(b"abc", 1);
        c[0].total_bytes = 4 * 1024 * 1024 * 1024;
        c[0].last = false;
        // Only the first chunk exists: the refusal must not wait for more.
        let intake = intake(1);
        let r = intake
            .receive(
                tokio_stream::iter([Ok(c.swap_remove(0))]).chain(tokio_stream::pending()),
                anyone,
                any_stamp,
            )
            .await;
        refused(r, Code::ResourceExhausted, "snapshot_bytes_max");
        assert_eq!(intake.streams.available_permits(), 1);
    }

    #[test]
    fn memory_follows_the_bytes_that_arrived_not_the_declared_size() {
        let mut data = Vec::new();
        let mut c = chunks(&[7u8; 1000], 1000).remove(0);
        (c.total_bytes, c.last) = (SNAPSHOT_BYTES_MAX, false);
        assert!(!append(&mut data, &c, SNAPSHOT_BYTES_MAX).expect("append"));
        assert!(data.capacity() <= 2 * 1000, "capacity {}", data.capacity());
        c.offset = 1000;
        c.data = vec![7u8; 600_000];
        append(&mut data, &c, SNAPSHOT_BYTES_MAX).expect("append");
        assert!(
            data.capacity() <= 2 * data.len(),
            "capacity {} for {}",
            data.capacity(),
            data.len()
        );
        // Many small chunks: capacity doubles, so it changes a logarithmic number of times
        // (the copies stay linear in the size).
        let mut grown = 0;
        for _ in 0..256 {
            let before = data.capacity();
            c.offset = data.len() as u64;
            c.data = vec![7u8; 64 * 1024];
            append(&mut data, &c, SNAPSHOT_BYTES_MAX).expect("append");
            grown += usize::from(data.capacity() != before);
            assert!(data.capacity() <= 2 * data.len());
        }
        assert!(grown <= 8, "capacity changed {grown} times");
    }

    #[tokio::test]
    async fn an_extra_stream_is_refused_at_once_not_queued() {
        let data = envelope(&region_engine().snapshot().expect("snapshot"));
        let intake = intake(1);
        let mut open = chunks(&data, data.len() / 2 + 1);
        open.truncate(1);
        // The first stream holds the only permit: its second chunk never comes.
        let holder = intake.clone();
        let first = tokio::spawn(async move {
            let s = tokio_stream::iter(open.into_iter().map(Ok)).chain(tokio_stream::pending());
            holder.receive(s, anyone, any_stamp).await.map(|r| r.bytes)
        });
        while intake.streams.available_permits() > 0 {
            tokio::task::yield_now().await;
        }
        refused(
            receive(&intake, chunks(&data, 4096)).await,
            Code::ResourceExhausted,
            "snapshot_streams_max",
        );
        // The stalled stream is cut by the idle timeout, and its permit returns.
        let stalled = first.await.expect("join");
        assert_eq!(stalled.unwrap_err().code(), Code::DeadlineExceeded);
        assert!(receive(&intake, chunks(&data, 4096)).await.is_ok());
    }

    #[tokio::test]
    async fn malformed_streams_are_refused() {
        let intake = intake(1);
        let data = envelope(&region_engine().snapshot().expect("snapshot"));
        let mut out_of_order = chunks(&data, 100);
        out_of_order[1].offset += 1;
        refused(
            receive(&intake, out_of_order).await,
            Code::InvalidArgument,
            "offset",
        );
        let mut too_much = chunks(&data, 100);
        too_much.iter_mut().for_each(|c| c.total_bytes = 150);
        refused(
            receive(&intake, too_much).await,
            Code::InvalidArgument,
            "more than",
        );
        let mut grown = chunks(&data, 100);
        grown[1].total_bytes += 1;
        refused(
            receive(&intake, grown).await,
            Code::InvalidArgument,
            "first chunk declared",
        );
        let mut wrong_sum = chunks(&data, 100);
        wrong_sum.last_mut().unwrap().data_sha256[0] ^= 1;
        refused(
            receive(&intake, wrong_sum).await,
            Code::DataLoss,
            "data_sha256",
        );
        let mut not_snapshot = chunks(&data, 100);
        not_snapshot[0].raft_message = Message::default().write_to_bytes().unwrap();
        refused(
            receive(&intake, not_snapshot).await,
            Code::InvalidArgument,
            "not a MsgSnapshot",
        );
        let mut other_from = chunks(&data, 100);
        other_from[0].from_node = 3;
        refused(
            receive(&intake, other_from).await,
            Code::InvalidArgument,
            "raft_message: from 2",
        );
        let mut truncated = chunks(&data, 100);
        truncated.pop();
        refused(
            receive(&intake, truncated).await,
            Code::Aborted,
            "ended early",
        );
        assert_eq!(intake.streams.available_permits(), 1);
    }

    #[tokio::test]
    async fn the_sender_check_runs_on_every_chunk() {
        let intake = intake(1);
        let data = envelope(&region_engine().snapshot().expect("snapshot"));
        let seen = std::sync::atomic::AtomicUsize::new(0);
        let second_refused =
            |_: u64, _: u64| match seen.fetch_add(1, std::sync::atomic::Ordering::SeqCst) {
                0 => Ok(()),
                _ => Err(Status::permission_denied("not a member")),
            };
        let s = tokio_stream::iter(chunks(&data, 100).into_iter().map(Ok));
        let r = intake.receive(s, second_refused, any_stamp).await;
        refused(r, Code::PermissionDenied, "not a member");
    }

    /// The stamp check sees the first chunk's sender, cluster id and incarnation and refuses
    /// before a permit is taken; a stream whose stamp changes midway is refused too.
    #[tokio::test]
    async fn the_stamp_check_runs_before_the_permit_and_the_stamp_cannot_change() {
        let intake = intake(1);
        let data = envelope(&region_engine().snapshot().expect("snapshot"));
        let stamped = |cluster: &str, incarnation: u64| {
            let mut c = chunks(&data, 100);
            for chunk in &mut c {
                (chunk.cluster_id, chunk.incarnation) = (cluster.into(), incarnation);
            }
            c
        };
        let ours = |from: u64, cluster: &str, incarnation: u64| {
            assert_eq!(from, FROM);
            if cluster != "c1" || incarnation != 7 {
                return Err(Status::failed_precondition(format!(
                    "cluster {cluster} incarnation {incarnation}"
                )));
            }
            Ok(())
        };
        let run = |c: Vec<SnapshotChunk>| {
            let s = tokio_stream::iter(c.into_iter().map(Ok));
            intake.receive(s, anyone, ours)
        };
        refused(run(stamped("c2", 7)).await, Code::FailedPrecondition, "c2");
        refused(
            run(stamped("c1", 8)).await,
            Code::FailedPrecondition,
            "incarnation 8",
        );
        assert_eq!(intake.streams.available_permits(), 1);
        let mut changed = stamped("c1", 7);
        changed[2].incarnation = 8;
        refused(run(changed).await, Code::InvalidArgument, "incarnation");
        let got = run(stamped("c1", 7)).await.expect("accepted");
        assert_eq!(got.bytes, data.len() as u64);
    }

    /// A snapshot with a correct SHA-256 over its bytes is still refused when what the bytes
    /// say is wrong: each layer's refusal, named.
    #[test]
    fn each_bad_snapshot_is_refused_before_it_is_acknowledged() {
        let head = Message::parse_from_bytes(&head()).unwrap();
        let image = region_engine().snapshot().expect("snapshot");
        assert!(validate(&head, &envelope(&image)).is_ok());
        let code = |r: Result<(), Status>| r.map_err(|s| (s.code(), s.message().to_string()));
        let cases: Vec<(Vec<u8>, Code, &str)> = vec![
            (b"garbage".to_vec(), Code::InvalidArgument, "envelope"),
            (Vec::new(), Code::InvalidArgument, "envelope"),
            (envelope(b""), Code::InvalidArgument, "no engine image"),
            (
                envelope(b"NOTNINETY-and-more-bytes-than-a-header-and-a-checksum-000"),
                Code::InvalidArgument,
                "bad magic",
            ),
            (
                envelope(&with_version(&image, 1)),
                Code::InvalidArgument,
                "version 1",
            ),
            (envelope(&flip_body(&image)), Code::DataLoss, "checksum"),
            (
                envelope(&resealed(MAGIC, b"\xff\xff\xff\xff")),
                Code::InvalidArgument,
                "does not decode",
            ),
            (
                envelope(&broken_invariant(&image)),
                Code::InvalidArgument,
                "invariant",
            ),
        ];
        for (data, want, says) in cases {
            match code(validate(&head, &data)) {
                Err((got, message)) => {
                    assert!(
                        got == want && message.contains(says),
                        "{says}: {got:?} {message}"
                    )
                }
                Ok(()) => panic!("{says}: accepted"),
            }
        }
        let mut no_voters = head.clone();
        no_voters
            .mut_snapshot()
            .mut_metadata()
            .mut_conf_state()
            .voters
            .clear();
        assert!(code(validate(&no_voters, &envelope(&image))).is_err());
        let mut index_0 = head;
        index_0.mut_snapshot().mut_metadata().index = 0;
        assert!(code(validate(&index_0, &envelope(&image))).is_err());
    }

    /// An engine image with a new checksum over `magic`, the current version and `body`.
    fn resealed(magic: &[u8], body: &[u8]) -> Vec<u8> {
        let mut out = magic.to_vec();
        out.extend_from_slice(&SNAPSHOT_FORMAT_VERSION.to_le_bytes());
        out.extend_from_slice(body);
        let sum = Sha256::digest(&out);
        out.extend_from_slice(&sum);
        out
    }

    fn body(image: &[u8]) -> &[u8] {
        &image[MAGIC.len() + 2..image.len() - 32]
    }

    fn with_version(image: &[u8], version: u16) -> Vec<u8> {
        let mut out = image[..image.len() - 32].to_vec();
        out[MAGIC.len()..MAGIC.len() + 2].copy_from_slice(&version.to_le_bytes());
        let sum = Sha256::digest(&out);
        out.extend_from_slice(&sum);
        out
    }

    fn flip_body(image: &[u8]) -> Vec<u8> {
        let mut out = image.to_vec();
        out[MAGIC.len() + 3] ^= 0x55;
        out
    }

    /// The image of the engine with `counters.next_bed` set back to 1, so its beds' ids are
    /// not below it: it decodes, and breaks an invariant. The counter follows the name,
    /// policy and log time in the encoding (fields in declaration order).
    fn broken_invariant(image: &[u8]) -> Vec<u8> {
        let engine = Engine::restore(image).expect("restore");
        let prefix = [
            postcard::to_stdvec(engine.name()).unwrap(),
            postcard::to_stdvec(engine.policy()).unwrap(),
            postcard::to_stdvec(&engine.now()).unwrap(),
        ]
        .concat();
        let body = body(image);
        assert!(
            body.starts_with(&prefix),
            "the engine's field order changed"
        );
        let next_bed = postcard::to_stdvec(&engine.counters().next_bed).unwrap();
        assert!(engine.counters().next_bed > 1, "the region has beds");
        let rest = &body[prefix.len() + next_bed.len()..];
        resealed(MAGIC, &[&prefix[..], &[1u8], rest].concat())
    }

    /// Mutated engine images, resealed so that every checksum is right, are answered (a
    /// refusal or, rarely, a valid engine) and never panic the validation.
    #[test]
    fn resealed_mutations_never_panic() {
        let head = Message::parse_from_bytes(&head()).unwrap();
        let image = region_engine().snapshot().expect("snapshot");
        let body = body(&image).to_vec();
        let mut rng = ninety_engine::generate::SplitMix64::new(12);
        let (mut refused, mut panicked) = (0, 0);
        for _ in 0..300 {
            let mut b = body.clone();
            for _ in 0..1 + rng.below(4) {
                let at = rng.below(b.len() as u64) as usize;
                b[at] = rng.next_u64() as u8;
            }
            let data = envelope(&resealed(MAGIC, &b));
            match std::panic::catch_unwind(|| validate(&head, &data)) {
                Ok(Ok(())) => {}
                Ok(Err(_)) => refused += 1,
                Err(_) => panicked += 1,
            }
        }
        assert_eq!(
            panicked, 0,
            "{panicked} mutations panicked ({refused} refused)"
        );
        assert!(refused > 0, "no mutation was refused");
    }

    #[test]
    fn config_overrides_reach_the_limits() {
        let text = "id = 1\nlisten = \"127.0.0.1:7001\"\npeer_listen = \"127.0.0.1:7101\"\n\
                    data_dir = \"d\"\nsnapshot_bytes_max = 1000\nsnapshot_streams_max = 5\n";
        let cfg = FileConfig::parse(text).expect("config");
        let limits = IntakeLimits::from_config(&cfg);
        assert_eq!((limits.bytes_max, limits.streams_max), (1000, 5));
        let cfg = FileConfig::parse(&text.replace("snapshot_", "# ")).expect("config");
        assert_eq!(IntakeLimits::from_config(&cfg), IntakeLimits::default());
    }
}
