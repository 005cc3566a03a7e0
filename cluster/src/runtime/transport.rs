//! The tonic [`Transport`]: Raft messages to peers over `ninety.peer.v1.Peer`.
//!
//! One outbound task per peer, fed by a bounded queue. `send` never blocks the node task:
//! when a peer's queue is full, or its address is unknown, or fault injection cuts it off,
//! the batch is dropped and the peer reported unreachable (raft-rs then probes it instead of
//! pipelining), and Raft retransmits what matters. Batches to one peer go out one at a
//! time, in order, over one HTTP/2 channel. Snapshots are streamed in chunks by the same
//! task and their result reported back as `PeerEvent::SnapshotStatus`.
//!
//! Also here: the [`PeerBook`] (node id → its peer and client addresses, and how to dial
//! them; one pooled channel per peer, shared by this transport and by followers forwarding
//! client writes) and the [`Faults`] switch. Only peer addresses are ever dialled here; client
//! addresses are for leader hints. With `[tls]` every peer is dialled over `https://` with
//! mutual TLS (`security::tls::NodeTls::peer_client`): the peer's certificate must be
//! signed by the cluster CA and name the address dialled, and this node presents its own.

use super::config::NodeAddrs;
use super::driver::{NodeHandle, PeerEvent};
use crate::eraftpb::Message;
use crate::Transport;
use arc_swap::ArcSwap;
use ninety_proto::peer::v1::{peer_client::PeerClient, RaftBatch, SnapshotChunk};
use protobuf::Message as _;
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;
use tonic::transport::{Channel, ClientTlsConfig, Endpoint};

/// Batches queued per peer before new ones are dropped: a few seconds of heartbeats and
/// appends; a peer that falls further behind is probed and caught up by Raft instead.
pub const PEER_QUEUE_MAX: usize = 256;
/// Queued batches are merged into one peer RPC up to this many bytes of messages: the peer
/// task sends one call at a time (Raft's order kept), so under load what queued during a
/// call goes in the next one instead of one call each. Well under
/// `GRPC_MESSAGE_BYTES_MAX`, which a single oversized append may still need on its own.
pub const PEER_BATCH_BYTES_MAX: usize = 4 * 1024 * 1024;
/// One peer RPC (a batch) must finish within this, or the peer is reported unreachable.
pub const PEER_RPC_TIMEOUT: Duration = Duration::from_secs(2);
/// Connecting to a peer must finish within this.
pub const PEER_CONNECT_TIMEOUT: Duration = Duration::from_millis(500);
/// A snapshot stream must finish within this.
pub const SNAPSHOT_TIMEOUT: Duration = Duration::from_secs(60);
/// Snapshot data per chunk: well under gRPC's default 4 MiB message limit.
pub const SNAPSHOT_CHUNK_BYTES: usize = 1024 * 1024;
/// Largest gRPC message a node sends or accepts from peers or clients: room for a large
/// region import or a Raft append carrying one (a single entry may exceed
/// `MAX_SIZE_PER_MSG_BYTES`; raft-rs always sends at least one entry).
pub const GRPC_MESSAGE_BYTES_MAX: usize = 64 * 1024 * 1024;

/// Node id → its two addresses, shared by the transport and the API layer, and the TLS
/// every peer is dialled with.
#[derive(Debug, Default)]
pub struct PeerBook {
    addrs: ArcSwap<BTreeMap<u64, NodeAddrs>>,
    /// `None`: plain text (no `[tls]`).
    tls: Option<ClientTlsConfig>,
    /// Who this node is, stated in every peer call it makes (set once at start).
    stamp: std::sync::OnceLock<Stamp>,
    /// One lazily connecting channel per peer (and the address it dials): HTTP/2
    /// multiplexes every call to that peer over one connection, which reconnects by itself.
    pooled: std::sync::Mutex<HashMap<u64, (String, PeerClient<Channel>)>>,
    /// Peers whose last call from this node failed (cleared by the next that succeeds): a
    /// leader hint never names one of them (`server::Cluster::unavailable`).
    unreachable: std::sync::Mutex<BTreeSet<u64>>,
}

/// What a node states about itself in every peer call: its cluster id and incarnation
/// (`runtime::identity`). Empty / 0 when unknown (tests building a bare book).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Stamp {
    pub cluster_id: String,
    pub incarnation: u64,
    /// The region (Raft group) this book's calls belong to; empty for a node's only,
    /// unnamed region (`runtime::regions`).
    pub region: String,
}

impl PeerBook {
    /// A book dialling in plain text.
    pub fn new(addrs: BTreeMap<u64, NodeAddrs>) -> Self {
        PeerBook {
            addrs: ArcSwap::from_pointee(addrs),
            tls: None,
            pooled: Default::default(),
            stamp: Default::default(),
            unreachable: Default::default(),
        }
    }

    /// A book dialling every peer with `tls` (mutual TLS).
    pub fn with_tls(addrs: BTreeMap<u64, NodeAddrs>, tls: Option<ClientTlsConfig>) -> Self {
        PeerBook {
            addrs: ArcSwap::from_pointee(addrs),
            tls,
            pooled: Default::default(),
            stamp: Default::default(),
            unreachable: Default::default(),
        }
    }

    /// Sets who this node is (once, at start; a second call is ignored).
    pub fn set_stamp(&self, stamp: Stamp) {
        let _ = self.stamp.set(stamp);
    }

    /// Who this node says it is in its peer calls.
    pub fn stamp(&self) -> Stamp {
        self.stamp.get().cloned().unwrap_or_default()
    }

    /// A lazily connecting client for the peer address `addr`, over TLS when configured.
    pub fn dial(&self, addr: &str) -> Result<PeerClient<Channel>, tonic::transport::Error> {
        peer_client(addr, self.tls.as_ref())
    }

    /// The pooled client of peer `id` (see the field `pooled`), made on first use and again
    /// when its address changed: `None` when the address is unknown, `Err` when it cannot
    /// be dialled. Cheap to clone; calls through clones share the connection.
    pub fn pooled(&self, id: u64) -> Option<Result<PeerClient<Channel>, tonic::transport::Error>> {
        let addr = self.peer(id)?;
        let mut pool = self.pooled.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((at, client)) = pool.get(&id) {
            if *at == addr {
                return Some(Ok(client.clone()));
            }
        }
        let client = match self.dial(&addr) {
            Ok(c) => c,
            Err(e) => return Some(Err(e)),
        };
        pool.insert(id, (addr, client.clone()));
        Some(Ok(client))
    }

    /// Records whether the last call to peer `id` got through.
    pub fn note_reachable(&self, id: u64, reachable: bool) {
        let mut set = self.unreachable.lock().unwrap_or_else(|p| p.into_inner());
        if reachable {
            set.remove(&id);
        } else {
            set.insert(id);
        }
    }

    /// Whether the last call this node made to peer `id` failed.
    pub fn is_unreachable(&self, id: u64) -> bool {
        let set = self.unreachable.lock().unwrap_or_else(|p| p.into_inner());
        set.contains(&id)
    }

    /// The node's peer address (its `peer_listen`): what Raft and forwarding dial.
    pub fn peer(&self, id: u64) -> Option<String> {
        self.addrs.load().get(&id).map(|a| a.peer.clone())
    }

    /// The node's client address (its `listen`): what a leader hint names.
    pub fn client(&self, id: u64) -> Option<String> {
        self.addrs.load().get(&id).map(|a| a.client.clone())
    }

    /// Records (or changes) a node's addresses, e.g. from `Admin.AddMember`; returns what
    /// the book held for it before, for [`PeerBook::restore`].
    pub fn set(&self, id: u64, addr: NodeAddrs) -> Option<NodeAddrs> {
        let before = self.addrs.rcu(|m| {
            let mut m = BTreeMap::clone(m);
            m.insert(id, addr.clone());
            m
        });
        before.get(&id).cloned()
    }

    /// Puts back what [`PeerBook::set`] returned: a refused change leaves the book as it was.
    pub fn restore(&self, id: u64, before: Option<NodeAddrs>) {
        self.addrs.rcu(|m| {
            let mut m = BTreeMap::clone(m);
            match &before {
                Some(a) => m.insert(id, a.clone()),
                None => m.remove(&id),
            };
            m
        });
    }
}

/// Fault injection for tests: the set of peers this node is cut off from.
///
/// Only active when the node config sets `fault_injection = true`. The switch is the file
/// `FAULTS` in the node's data directory, re-read every tick: the peer ids listed in it
/// (separated by commas or whitespace) are cut off in both directions: nothing is sent to
/// them (including forwarded client requests) and every peer RPC from them is refused
/// with `UNAVAILABLE`. Removing the file (or emptying it) heals the partition.
#[derive(Debug)]
pub struct Faults {
    file: Option<PathBuf>,
    blocked: ArcSwap<BTreeSet<u64>>,
}

impl Faults {
    /// `file` is `None` when fault injection is disabled.
    pub fn new(file: Option<PathBuf>) -> Self {
        let f = Faults {
            file,
            blocked: ArcSwap::from_pointee(BTreeSet::new()),
        };
        f.reload();
        f
    }

    pub fn is_blocked(&self, peer: u64) -> bool {
        self.blocked.load().contains(&peer)
    }

    /// Re-reads the switch file (a missing file means no faults).
    pub fn reload(&self) {
        let Some(file) = &self.file else { return };
        let text = std::fs::read_to_string(file).unwrap_or_default();
        let set: BTreeSet<u64> = text
            .split(|c: char| c == ',' || c.is_whitespace())
            .filter_map(|s| s.trim().parse().ok())
            .collect();
        if **self.blocked.load() != set {
            tracing::warn!(blocked = ?set, "fault injection: peer set changed");
            self.blocked.store(Arc::new(set));
        }
    }
}

/// A lazily connecting client for `addr`, with the node's limits; over TLS with `tls`.
pub fn peer_client(
    addr: &str,
    tls: Option<&ClientTlsConfig>,
) -> Result<PeerClient<Channel>, tonic::transport::Error> {
    let scheme = if tls.is_some() { "https" } else { "http" };
    let mut endpoint = Endpoint::from_shared(format!("{scheme}://{addr}"))?
        .connect_timeout(PEER_CONNECT_TIMEOUT)
        .tcp_nodelay(true);
    if let Some(tls) = tls {
        endpoint = endpoint.tls_config(tls.clone())?;
    }
    let channel = endpoint.connect_lazy();
    Ok(PeerClient::new(channel)
        .max_decoding_message_size(GRPC_MESSAGE_BYTES_MAX)
        .max_encoding_message_size(GRPC_MESSAGE_BYTES_MAX))
}

enum Outbound {
    Batch(Vec<Vec<u8>>),
    Snapshot(Message),
}

struct Link {
    addr: String,
    tx: mpsc::Sender<Outbound>,
}

/// The transport the node task dispatches into.
pub struct GrpcTransport {
    me: u64,
    book: Arc<PeerBook>,
    faults: Arc<Faults>,
    handle: NodeHandle,
    links: HashMap<u64, Link>,
    unreachable: Vec<u64>,
}

impl GrpcTransport {
    pub fn new(me: u64, book: Arc<PeerBook>, faults: Arc<Faults>, handle: NodeHandle) -> Self {
        GrpcTransport {
            me,
            book,
            faults,
            handle,
            links: HashMap::new(),
            unreachable: Vec::new(),
        }
    }

    /// Peers that could not be handed a message since the last call.
    pub fn take_unreachable(&mut self) -> Vec<u64> {
        let mut v = std::mem::take(&mut self.unreachable);
        v.sort_unstable();
        v.dedup();
        v
    }

    /// The queue to `to`, (re)starting its task when new or when its address changed.
    fn link(&mut self, to: u64) -> Option<&mpsc::Sender<Outbound>> {
        let addr = self.book.peer(to)?;
        let stale = self
            .links
            .get(&to)
            .is_none_or(|l| l.addr != addr || l.tx.is_closed());
        if stale {
            let client = match self
                .book
                .pooled(to)
                .unwrap_or_else(|| self.book.dial(&addr))
            {
                Ok(c) => c,
                Err(e) => {
                    tracing::warn!(peer = to, %addr, error = %e, "bad peer address");
                    return None;
                }
            };
            let (tx, rx) = mpsc::channel(PEER_QUEUE_MAX);
            let task = PeerTask {
                me: self.me,
                stamp: self.book.stamp(),
                book: self.book.clone(),
                to,
                client,
                faults: self.faults.clone(),
                handle: self.handle.clone(),
            };
            // In the node task's span (its region, when the node hosts several).
            tokio::spawn(tracing::Instrument::in_current_span(task.run(rx)));
            self.links.insert(to, Link { addr, tx });
        }
        self.links.get(&to).map(|l| &l.tx)
    }

    fn enqueue(&mut self, to: u64, item: Outbound) -> bool {
        if self.faults.is_blocked(to) {
            return false;
        }
        match self.link(to) {
            Some(tx) => tx.try_send(item).is_ok(),
            None => false,
        }
    }
}

impl Transport for GrpcTransport {
    fn send(&mut self, to: u64, messages: Vec<Message>) {
        let encoded: Vec<Vec<u8>> = messages
            .iter()
            .filter_map(|m| m.write_to_bytes().ok())
            .collect();
        if !self.enqueue(to, Outbound::Batch(encoded)) {
            self.unreachable.push(to);
        }
    }

    fn send_snapshot(&mut self, to: u64, message: Message) {
        if !self.enqueue(to, Outbound::Snapshot(message)) {
            // Raft must hear that the snapshot failed, or it waits for it forever.
            self.handle.peer_event(PeerEvent::SnapshotStatus {
                peer: to,
                delivered: false,
            });
        }
    }
}

struct PeerTask {
    me: u64,
    stamp: Stamp,
    book: Arc<PeerBook>,
    to: u64,
    client: PeerClient<Channel>,
    faults: Arc<Faults>,
    handle: NodeHandle,
}

impl PeerTask {
    async fn run(mut self, mut rx: mpsc::Receiver<Outbound>) {
        let mut next = None;
        loop {
            let item = match next.take() {
                Some(item) => item,
                None => match rx.recv().await {
                    Some(item) => item,
                    None => break,
                },
            };
            match item {
                Outbound::Batch(mut messages) => {
                    next = coalesce(&mut messages, &mut rx);
                    let sent = self.send_batch(messages).await;
                    self.book.note_reachable(self.to, sent);
                    if !sent {
                        self.handle.peer_event(PeerEvent::Unreachable(self.to));
                    }
                }
                Outbound::Snapshot(m) => {
                    let (index, term) = (m.get_snapshot().get_metadata().index, m.term);
                    let delivered = self.send_snapshot(m).await;
                    if delivered {
                        self.handle.counters().snapshots_sent.inc();
                    }
                    tracing::info!(peer = self.to, delivered, index, term, "snapshot sent");
                    self.handle
                        .peer_event_wait(PeerEvent::SnapshotStatus {
                            peer: self.to,
                            delivered,
                        })
                        .await;
                }
            }
        }
    }

    async fn send_batch(&mut self, messages: Vec<Vec<u8>>) -> bool {
        if self.faults.is_blocked(self.to) {
            return false;
        }
        let batch = RaftBatch {
            from_node: self.me,
            to_node: self.to,
            messages,
            cluster_id: self.stamp.cluster_id.clone(),
            incarnation: self.stamp.incarnation,
            region: self.stamp.region.clone(),
        };
        let mut req = tonic::Request::new(batch);
        req.set_timeout(PEER_RPC_TIMEOUT);
        matches!(
            tokio::time::timeout(PEER_RPC_TIMEOUT, self.client.send(req)).await,
            Ok(Ok(_))
        )
    }

    async fn send_snapshot(&mut self, mut m: Message) -> bool {
        if self.faults.is_blocked(self.to) {
            return false;
        }
        let data = m.mut_snapshot().take_data();
        let Ok(head) = m.write_to_bytes() else {
            return false;
        };
        let chunks = snapshot_chunks(self.me, self.to, &self.stamp, head, &data);
        let stream = tokio_stream::iter(chunks);
        let call = self.client.install_snapshot(stream);
        match tokio::time::timeout(SNAPSHOT_TIMEOUT, call).await {
            Ok(Ok(ack)) => ack.into_inner().accepted,
            _ => false,
        }
    }
}

/// Appends the batches queued behind `messages` to it, up to [`PEER_BATCH_BYTES_MAX`];
/// returns the item that did not fit (a snapshot, or a batch over the limit), to send next.
fn coalesce(messages: &mut Vec<Vec<u8>>, rx: &mut mpsc::Receiver<Outbound>) -> Option<Outbound> {
    let mut bytes: usize = messages.iter().map(Vec::len).sum();
    while let Ok(item) = rx.try_recv() {
        match item {
            Outbound::Batch(more) => {
                let more_bytes: usize = more.iter().map(Vec::len).sum();
                if bytes.saturating_add(more_bytes) > PEER_BATCH_BYTES_MAX {
                    return Some(Outbound::Batch(more));
                }
                bytes += more_bytes;
                messages.extend(more);
            }
            snapshot => return Some(snapshot),
        }
    }
    None
}

/// Splits a snapshot into the chunk stream `InstallSnapshot` expects (at least one chunk).
fn snapshot_chunks(
    from: u64,
    to: u64,
    stamp: &Stamp,
    head: Vec<u8>,
    data: &[u8],
) -> Vec<SnapshotChunk> {
    let total = data.len() as u64;
    let pieces: Vec<&[u8]> = if data.is_empty() {
        vec![&[][..]]
    } else {
        data.chunks(SNAPSHOT_CHUNK_BYTES).collect()
    };
    let n = pieces.len();
    let mut offset = 0u64;
    let mut out = Vec::with_capacity(n);
    for (i, piece) in pieces.into_iter().enumerate() {
        let last = i + 1 == n;
        out.push(SnapshotChunk {
            from_node: from,
            to_node: to,
            raft_message: if i == 0 { head.clone() } else { Vec::new() },
            data: piece.to_vec(),
            offset,
            last,
            total_bytes: total,
            data_sha256: if last {
                Sha256::digest(data).to_vec()
            } else {
                Vec::new()
            },
            cluster_id: stamp.cluster_id.clone(),
            incarnation: stamp.incarnation,
            region: stamp.region.clone(),
        });
        offset += piece.len() as u64;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn batch(tag: u8, bytes: usize) -> Outbound {
        Outbound::Batch(vec![vec![tag; bytes]])
    }

    #[test]
    fn queued_batches_merge_in_order_up_to_the_byte_limit() {
        let (tx, mut rx) = mpsc::channel(8);
        for (tag, bytes) in [(2, 10), (3, PEER_BATCH_BYTES_MAX - 30), (4, 100), (5, 1)] {
            assert!(tx.try_send(batch(tag, bytes)).is_ok(), "the queue has room");
        }
        let mut first = vec![vec![1u8; 10]];
        let left = coalesce(&mut first, &mut rx);
        let tags: Vec<u8> = first.iter().map(|m| m[0]).collect();
        assert_eq!(
            tags,
            [1, 2, 3],
            "merged in the order queued, under the limit"
        );
        assert!(
            matches!(&left, Some(Outbound::Batch(m)) if m[0][0] == 4),
            "the batch over the limit must be sent next"
        );
        let mut rest = vec![vec![6u8; 1]];
        assert!(coalesce(&mut rest, &mut rx).is_none());
        assert_eq!(rest.len(), 2, "what is still queued joins the next call");
    }

    #[test]
    fn a_snapshot_is_never_merged_and_keeps_its_place() {
        let (tx, mut rx) = mpsc::channel(8);
        assert!(tx.try_send(batch(2, 1)).is_ok());
        assert!(tx.try_send(Outbound::Snapshot(Message::default())).is_ok());
        assert!(tx.try_send(batch(3, 1)).is_ok());
        let mut first = vec![vec![1u8; 1]];
        let left = coalesce(&mut first, &mut rx);
        assert_eq!(first.len(), 2);
        assert!(matches!(left, Some(Outbound::Snapshot(_))));
        assert!(matches!(rx.try_recv(), Ok(Outbound::Batch(_))));
    }
}
