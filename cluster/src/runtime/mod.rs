//! The tokio runtime of a real node: opens the Raft store (`storage::LogStore`), starts the node task
//! ([`driver`]), the tonic transport ([`transport`]), two gRPC servers and, on a founding
//! node, the region bootstrap; then runs until shutdown.
//!
//! **Two listeners.** The client server on `listen` serves `ninety.v1`, health and
//! reflection; the peer server on `peer_listen` serves `ninety.peer.v1` only. Neither
//! serves the other's services (a call there is `UNIMPLEMENTED`), so the peer protocol,
//! which can step Raft messages and forward any engine command, can be fenced off at the
//! network while the client port is open.
//!
//! **TLS.** With `[tls]` both listeners serve TLS (`security::tls`): the peer listener
//! requires a client certificate from the cluster CA, the client listener accepts one;
//! peers are dialled with mutual TLS. Without it, both listeners must be loopback unless
//! `insecure = true` (checked by `config`). Peer calls are authorised by the peer
//! service's `PeerGate`, fed with the membership by the node task.
//!
//! **Callers.** Every call on the client listener passes `security::auth::AuthLayer`
//! first: no credential or an unknown one is `UNAUTHENTICATED`, a method outside the
//! caller's roles `PERMISSION_DENIED`, before any handler runs; audited calls and refusals
//! go to the audit log (`security::audit`), whose writer is drained at shutdown.
//!
//! Shutdown (SIGTERM or ctrl-c, mini-redis style): a `watch` signal stops both servers from
//! accepting; in-flight calls finish (the node task keeps running for them), then the node
//! task is stopped and the store dropped. Nothing is lost by a hard kill either: every
//! acknowledged write was durable on a quorum before it was acknowledged.

pub mod config;
pub mod data_format;
pub mod driver;
pub mod events;
pub mod identity;
pub mod peer_service;
pub mod persist;
pub mod poison;
pub mod raft_log;
pub mod snapshot_intake;
pub mod snapshot_writer;
pub mod startup;
pub mod transport;

use crate::engine_sm::EngineMachine;
use crate::error::Error;
use crate::io::Clock;
use crate::metrics::grpc::{GrpcMetrics, GrpcMetricsLayer};
use crate::node::{self, NodeConfig};
use crate::server::{
    admin::AdminService, beds::BedHoldsService, capacity::CapacityService,
    matching::MatchingService, referrals::ReferralsService, scheduling::SchedulingService,
    watch::WatchService, Cluster, Deadline, READ_TIMEOUT, WRITE_TIMEOUT,
};
use crate::storage::{LogStore, LogStoreOptions};
use config::FileConfig;
use ninety_engine::read::{Answer, Query};
use ninety_engine::{generate, Command, Outcome, RegionFile, Rejection};
use ninety_proto::peer::v1::peer_server::PeerServer;
use ninety_proto::v1::{
    admin_server::AdminServer, bed_holds_server::BedHoldsServer, capacity_server::CapacityServer,
    matching_server::MatchingServer, referrals_server::ReferralsServer,
    scheduling_server::SchedulingServer, watch_server::WatchServer,
};
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use transport::{Faults, GrpcTransport, PeerBook, GRPC_MESSAGE_BYTES_MAX};

/// Bootstrap commands proposed concurrently (below the node's proposal queue limit).
const BOOTSTRAP_WINDOW: usize = 256;
/// Largest proposal batch of a real node, bytes: one region import is a single command and
/// must fit in one entry.
const PROPOSAL_BATCH_BYTES_MAX: usize = GRPC_MESSAGE_BYTES_MAX / 4;

/// The region named by the config: a built-in preset with one clinic day of schedules
/// ("gba", "yunnan", "asean", or a province such as "hainan"), "test", or a JSON file (no schedules: publish them through the
/// API); plus its bootstrap commands. "national" is not built in for a node: 290,000 doctors'
/// schedules are too large for one bootstrap; generate a file with `ninety region generate`.
pub fn load_region(spec: &str) -> Result<(RegionFile, Vec<Command>), Error> {
    load_region_with(spec, generate::HORIZON_DAYS_DEFAULT)
}

/// [`load_region`] with a built-in region's schedule horizon in days (0: the first clinic
/// day only). After the first day's schedules, each doctor's weekly template
/// (`generate::templates`) is set from that day on, so the region keeps `horizon_days` of
/// slots published; the first day keeps the slot ids it always had.
pub fn load_region_with(
    spec: &str,
    horizon_days: u16,
) -> Result<(RegionFile, Vec<Command>), Error> {
    // Built-in: gba, yunnan, asean and the provinces (`generate::PROVINCES`), not national.
    let preset = generate::Preset::bootable(spec);
    let file = match (spec, preset) {
        (_, Some(p)) => generate::region(p, generate::DEFAULT_SEED),
        ("test", _) => test_region(),
        (path, None) => {
            let bad = |e: &dyn std::fmt::Display| Error::Config(format!("region file {path}: {e}"));
            let text = std::fs::read_to_string(path).map_err(|e| bad(&e))?;
            let file = RegionFile::from_json(&text).map_err(|e| bad(&e))?;
            // Loaded into a scratch engine through the very commands the log will carry, so
            // a file the engine would refuse (an unknown hospital, a bad policy) stops the
            // node before it serves an empty region.
            let now = ninety_engine::LogTime(driver::SystemClock.now_ms());
            ninety_engine::load(&file, &[], now).map_err(|e| bad(&e))?;
            file
        }
    };
    let first_day = next_clinic_day(std::time::SystemTime::now());
    let schedules = if preset.is_some() {
        generate::schedules(&file, first_day, 1)
    } else {
        Vec::new()
    };
    let mut commands = ninety_engine::bootstrap_commands(&file, &schedules);
    if preset.is_some() && horizon_days > 0 {
        let templates = generate::templates(&file, horizon_days);
        commands.extend(templates.into_iter().map(|(doctor, template)| {
            Command::SetWeeklyTemplate {
                doctor,
                template,
                from: first_day,
            }
        }));
    }
    Ok((file, commands))
}

/// The built-in schedules cover one clinic day: the next one starting at 00:00 UTC (08:00
/// in the GBA), so a freshly started cluster always has future slots to book. The founding
/// node reads its clock here, outside the engine; the slots' times then travel in the log.
pub fn next_clinic_day(now: std::time::SystemTime) -> ninety_engine::LogTime {
    const MS_PER_DAY: u64 = 24 * 60 * 60 * 1000;
    let now_ms = now
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64);
    ninety_engine::LogTime((now_ms / MS_PER_DAY + 1) * MS_PER_DAY)
}

/// A test-sized region: the first three hospitals of the GBA preset, two wards each with
/// 12 physical and 10 staffed beds, no doctors: small enough that capacity runs out under
/// test load, so "no ward over capacity" is actually exercised.
pub fn test_region() -> RegionFile {
    let mut f = generate::region(generate::Preset::Gba, generate::DEFAULT_SEED);
    f.name = "test".into();
    f.hospitals.truncate(3);
    f.alliances.clear();
    for h in &mut f.hospitals {
        h.alliances.clear();
    }
    let keep: Vec<_> = f.hospitals.iter().map(|h| h.id).collect();
    let mut per_hospital = std::collections::BTreeMap::new();
    f.wards.retain(|w| {
        let n = per_hospital.entry(w.ward.hospital).or_insert(0);
        *n += 1;
        keep.contains(&w.ward.hospital) && *n <= 2
    });
    for w in &mut f.wards {
        w.beds = 12;
        w.ward.staffed_beds = 10;
    }
    f.doctors.clear();
    f.roads
        .retain(|r| keep.contains(&r.a) && keep.contains(&r.b));
    f.referral_paths
        .retain(|p| keep.contains(&p.from) && keep.contains(&p.to));
    f
}

/// Proposes the region's bootstrap commands once this node leads, until the region is
/// loaded. Each is keyed `RequestKey::Bootstrap(n)` (as `ninety_engine::load` applies
/// them), a key no client id can take, so every retry, by this or a later leader, applies
/// it at most once.
async fn bootstrap_region(cluster: Arc<Cluster>, commands: Vec<Command>) {
    let encoded: Result<Vec<Vec<u8>>, String> = (0u32..)
        .zip(&commands)
        .map(|(n, command)| crate::engine_sm::encode_bootstrap(n, command))
        .collect();
    let requests = match encoded {
        Ok(r) => r,
        Err(e) => {
            tracing::error!(error = %e, "region bootstrap could not be encoded");
            return;
        }
    };
    loop {
        tokio::time::sleep(Duration::from_millis(200)).await;
        let st = cluster.handle.summary();
        if st.role != raft::StateRole::Leader {
            // Another founding node may lead and load it; stop once it is there.
            if let Ok((Answer::Summary { hospitals, .. }, _)) = cluster
                .read(&Query::Summary, true, Deadline::server(READ_TIMEOUT))
                .await
            {
                if hospitals > 0 {
                    return;
                }
            }
            continue;
        }
        // Checked through the log so a region loaded long ago (dedup entries expired) is
        // never imported or scheduled twice.
        match cluster
            .read(&Query::Summary, false, Deadline::server(READ_TIMEOUT))
            .await
        {
            Ok((Answer::Summary { hospitals, .. }, _)) if hospitals > 0 => return,
            Ok(_) => {}
            Err(_) => continue,
        }
        match propose_all(&cluster, &requests).await {
            Ok(()) => {
                tracing::info!(commands = requests.len(), "region loaded through the log");
                return;
            }
            Err(Some(r)) => {
                tracing::error!(rejection = %r, "region bootstrap refused by the engine");
                return;
            }
            Err(None) => continue,
        }
    }
}

/// Proposes one encoded bootstrap command on this node (the leader: bootstrap never
/// forwards) and waits for its outcome; `None` when the outcome is unknown.
async fn propose_bootstrap(cluster: &Cluster, bytes: &[u8]) -> Option<Outcome> {
    let deadline = Deadline::server(WRITE_TIMEOUT);
    let answer = deadline
        .run("bootstrap", cluster.handle.propose(bytes.to_vec()))
        .await
        .ok()?;
    match answer {
        Ok(node::Reply::Applied { outcome, .. }) => crate::engine_sm::decode_applied(&outcome)
            .ok()
            .map(|a| a.outcome),
        _ => None,
    }
}

/// `Err(Some)`: the engine refused (final); `Err(None)`: transient, retry everything.
async fn propose_all(
    cluster: &Arc<Cluster>,
    requests: &[Vec<u8>],
) -> Result<(), Option<Rejection>> {
    let (first, rest) = requests.split_first().ok_or(None)?;
    // The import first, alone: schedules need its doctors.
    match propose_bootstrap(cluster, first).await {
        Some(Ok(_) | Err(Rejection::RegionAlreadyLoaded)) => {}
        Some(Err(r)) => return Err(Some(r)),
        None => return Err(None),
    }
    for window in rest.chunks(BOOTSTRAP_WINDOW) {
        // A window runs together so its writes share group commits. They are polled first
        // in order (join_all), and a write submits its proposal on its first poll, so the
        // log holds them in file order: every fresh cluster of a region numbers its slots
        // alike (the API docs' examples rely on it). Spawned tasks would race.
        let writes = window.iter().map(|r| propose_bootstrap(cluster, r));
        for res in futures_util::future::join_all(writes).await {
            match res {
                Some(Ok(_)) => {}
                Some(Err(r)) => return Err(Some(r)),
                None => return Err(None),
            }
        }
    }
    Ok(())
}

/// What a node needs from the world before it touches its data directory. Every check
/// that bad input can fail (the config, a recorded panic in apply, the region, both
/// listen ports) runs here first, so a refused start leaves nothing behind.
struct Preflight {
    /// The client listener (`listen`).
    incoming: tonic::transport::server::TcpIncoming,
    /// The peer listener (`peer_listen`).
    peer_incoming: tonic::transport::server::TcpIncoming,
    /// A founding node's region bootstrap commands.
    bootstrap: Option<Vec<Command>>,
    /// The `[tls]` files, read and checked.
    tls: Option<crate::security::tls::NodeTls>,
    /// The metrics listener (`metrics_listen`), when configured.
    metrics: Option<tokio::net::TcpListener>,
}

fn preflight(cfg: &FileConfig) -> Result<Preflight, Error> {
    cfg.check()?;
    poison::check(&cfg.data_dir)?;
    let tls = match &cfg.tls {
        Some(files) => Some(crate::security::tls::NodeTls::load(files, cfg.id)?),
        None => None,
    };
    let bootstrap = if cfg.init {
        let horizon = cfg
            .schedule_horizon_days
            .unwrap_or(generate::HORIZON_DAYS_DEFAULT);
        let (_, commands) = load_region_with(&cfg.region, horizon)?;
        check_command_sizes(&cfg.region, &commands)?;
        Some(commands)
    } else {
        None
    };
    let bind = |field: &str, addr: std::net::SocketAddr| {
        tonic::transport::server::TcpIncoming::bind(addr)
            .map(|i| i.with_nodelay(Some(true)))
            .map_err(|e| Error::Startup(format!("{field} = {addr}: {e}")))
    };
    let incoming = bind("listen", cfg.listen)?;
    let peer_incoming = bind("peer_listen", cfg.peer_listen()?)?;
    let metrics = cfg.metrics_listen.map(bind_metrics).transpose()?;
    Ok(Preflight {
        incoming,
        peer_incoming,
        bootstrap,
        tls,
        metrics,
    })
}

/// Binds `metrics_listen` (called inside the runtime).
fn bind_metrics(addr: std::net::SocketAddr) -> Result<tokio::net::TcpListener, Error> {
    let bad = |e: std::io::Error| Error::Startup(format!("metrics_listen = {addr}: {e}"));
    let listener = std::net::TcpListener::bind(addr).map_err(bad)?;
    listener.set_nonblocking(true).map_err(bad)?;
    tokio::net::TcpListener::from_std(listener).map_err(bad)
}

/// Refuses a region whose bootstrap would never fit in the log: a command over the
/// proposal limit is refused as too large on every attempt, and the node would serve an
/// empty engine for ever.
fn check_command_sizes(region: &str, commands: &[Command]) -> Result<(), Error> {
    let max = PROPOSAL_BATCH_BYTES_MAX
        - node::payload::BATCH_HEADER_BYTES
        - node::payload::BATCH_PER_COMMAND_BYTES;
    for (i, command) in commands.iter().enumerate() {
        // Encoded as the log carries it, with the largest bootstrap number.
        let bytes = crate::engine_sm::encode_bootstrap(u32::MAX, command)
            .map_err(|e| Error::Config(format!("region {region}: command {i}: {e}")))?
            .len();
        if bytes > max {
            return Err(Error::Config(format!(
                "region {region}: bootstrap command {i} is {bytes} bytes, more than one log \
                 entry carries ({max} bytes)"
            )));
        }
    }
    Ok(())
}

/// The builders of the peer and the client server, with TLS when configured.
fn servers(
    tls: Option<&crate::security::tls::NodeTls>,
) -> Result<(tonic::transport::Server, tonic::transport::Server), Error> {
    let (peer, client) = (
        tonic::transport::Server::builder(),
        tonic::transport::Server::builder(),
    );
    let Some(tls) = tls else {
        return Ok((peer, client));
    };
    let bad = |field: &str, e: tonic::transport::Error| {
        Error::Startup(format!(
            "[tls] on {field}: {e} (check tls.cert and tls.key)"
        ))
    };
    let peer = peer
        .tls_config(tls.peer_server())
        .map_err(|e| bad("peer_listen", e))?;
    let client = client
        .tls_config(tls.client_server())
        .map_err(|e| bad("listen", e))?;
    Ok((peer, client))
}

/// Opens the node's store, creating the data directory (or migrating a format-2 one, see
/// `data_format`). An empty store is bootstrapped (or not) by [`start_empty_store`], after
/// the node asked its peers.
fn open_store(cfg: &FileConfig) -> Result<LogStore, Error> {
    std::fs::create_dir_all(&cfg.data_dir)
        .map_err(|e| Error::Storage(format!("data_dir = {}: {e}", cfg.data_dir.display())))?;
    let layout = data_format::prepare(&cfg.data_dir)?;
    LogStore::open(
        &layout.raft_log,
        &layout.snapshots,
        &LogStoreOptions::default(),
    )
}

/// Whether the store holds nothing at all: no hard state, no configuration, no entry.
fn store_is_empty(store: &LogStore) -> Result<bool, Error> {
    use raft::Storage;
    let state = store.initial_state()?;
    Ok(!state.initialized() && state.hard_state == Default::default() && store.last_index()? == 0)
}

/// Decides how a node with an empty store starts (see `runtime::startup`): bootstraps
/// it as a founding node, leaves it empty to be caught up by the leader, or refuses.
async fn start_empty_store(
    cfg: &FileConfig,
    me: &identity::Identity,
    book: &PeerBook,
    store: &mut LogStore,
) -> Result<(), Error> {
    let voters = cfg.voters()?;
    let facts = node::startup::StartFacts {
        me: cfg.id,
        incarnation: me.incarnation,
        may_bootstrap: cfg.init && !cfg.join,
        voters: voters.clone(),
    };
    let peers: Vec<u64> = cfg
        .peer_map()?
        .into_keys()
        .filter(|p| *p != cfg.id)
        .collect();
    match startup::decide(&facts, me, &peers, book).await? {
        node::startup::StartDecision::Bootstrap => {
            node::bootstrap(store, &voters, &EngineMachine::new())?;
            tracing::info!(?voters, "bootstrapped a new cluster");
        }
        _ => tracing::info!(
            join = cfg.join,
            "empty data directory: starting without bootstrapping; the leader will send a \
             snapshot once this node is a member"
        ),
    }
    Ok(())
}

/// Server reflection for the client listener. It advertises what that listener serves:
/// the descriptor set also describes ninety.peer.v1, which is served on the peer listener
/// only.
fn client_reflection() -> Result<
    tonic_reflection::server::v1::ServerReflectionServer<
        impl tonic_reflection::server::v1::ServerReflection,
    >,
    Error,
> {
    use tonic::server::NamedService;
    tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(ninety_proto::FILE_DESCRIPTOR_SET)
        // google.rpc.Status and its details: what refusals carry (ninety_proto::status).
        .register_encoded_file_descriptor_set(ninety_proto::status::STANDARD_DETAILS_DESCRIPTOR_SET)
        .with_service_name(BedHoldsServer::<BedHoldsService>::NAME)
        .with_service_name(SchedulingServer::<SchedulingService>::NAME)
        .with_service_name(MatchingServer::<MatchingService>::NAME)
        .with_service_name(ReferralsServer::<ReferralsService>::NAME)
        .with_service_name(AdminServer::<AdminService>::NAME)
        .with_service_name(WatchServer::<WatchService>::NAME)
        .with_service_name(CapacityServer::<CapacityService>::NAME)
        .with_service_name("grpc.reflection.v1.ServerReflection")
        .build_v1()
        .map_err(|e| Error::Config(format!("reflection: {e}")))
}

/// The client listener's authentication layer and the audit log's writer (opened in the
/// data directory by default, so after the store).
fn client_auth(
    cfg: &FileConfig,
) -> Result<
    (
        crate::security::auth::AuthLayer,
        crate::security::audit::Writer,
    ),
    Error,
> {
    use crate::security::{audit::AuditLog, auth};
    let authenticator = auth::Authenticator::new(&cfg.auth, cfg.insecure)?;
    if authenticator.is_anonymous() {
        tracing::warn!(
            "insecure = true and [auth] lists no credentials: every client is \"anonymous\" \
             with every role"
        );
    } else if cfg.auth.is_empty() {
        tracing::warn!("[auth] lists no credentials: every client call but health is refused");
    }
    let (log, writer) = AuditLog::open(&cfg.audit_log_path())?;
    Ok((auth::AuthLayer::new(Arc::new(authenticator), log), writer))
}

/// The metrics endpoint of a node (`crate::metrics`): has the change feed count its events
/// and serves scrapes on `listener` until the stop signal it is given.
async fn serve_metrics(
    listener: tokio::net::TcpListener,
    sources: crate::metrics::gauges::Sources,
    grpc: GrpcMetrics,
    feed: crate::feed::Feed,
    stop: impl Future<Output = ()>,
) {
    let counts = crate::metrics::feed_counts::FeedCounts::default();
    feed.count_with(counts.clone());
    let counters = sources.node.counters().clone();
    let metrics = crate::metrics::Metrics::new(&counters, &grpc, &counts, sources);
    if let Ok(addr) = listener.local_addr() {
        tracing::info!(metrics_listen = %addr, "serving metrics at /metrics");
    }
    crate::metrics::http::serve(listener, Arc::new(metrics), stop).await;
}

/// Starts node `cfg` and serves until `shutdown` completes, then stops gracefully.
pub async fn serve(
    cfg: FileConfig,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), Error> {
    let Preflight {
        incoming,
        peer_incoming,
        bootstrap: bootstrap_commands,
        tls,
        metrics: metrics_listener,
    } = preflight(&cfg)?;
    let (peer_server, client_server) = servers(tls.as_ref())?;
    let me = identity::establish(&cfg.data_dir, cfg.cluster_id.as_deref(), cfg.id)?;
    let mut store = open_store(&cfg)?;
    let (auth_layer, audit_writer) = client_auth(&cfg)?;
    let mut ncfg = NodeConfig::new(cfg.id);
    // One region import is a single command: let a proposal batch carry it.
    ncfg.proposal_batch_bytes_max = PROPOSAL_BATCH_BYTES_MAX;
    // The node task's snapshot writer encodes and writes them (`runtime::snapshot_writer`).
    ncfg.background_snapshots = true;
    ncfg.snapshot_interval_entries = cfg
        .snapshot_interval_entries
        .unwrap_or(config::SNAPSHOT_INTERVAL_ENTRIES_DEFAULT)
        .max(1);
    ncfg.snapshot_log_bytes_max = config::SNAPSHOT_LOG_BYTES_MAX;
    if let Some(n) = cfg.log_retain_entries {
        ncfg.log_retain_entries = n;
    }
    if let Some(n) = cfg.max_pending_proposals {
        ncfg.proposal_queue_max = n.max(1);
    }
    let book = Arc::new(PeerBook::with_tls(
        cfg.peer_map()?,
        tls.as_ref().map(|t| t.peer_client()),
    ));
    book.set_stamp(transport::Stamp {
        cluster_id: me.cluster_id.clone(),
        incarnation: me.incarnation,
    });
    let gate = Arc::new(peer_service::PeerGate::new(
        cfg.id,
        tls.is_some(),
        book.clone(),
    ));
    if tls.is_none() {
        tracing::warn!(
            insecure = cfg.insecure,
            "no [tls]: serving plain text; peer identities are taken on trust"
        );
    }
    let faults = Arc::new(Faults::new(
        cfg.fault_injection.then(|| cfg.data_dir.join("FAULTS")),
    ));
    let command_queue_max = cfg.max_queued_commands.unwrap_or(driver::COMMAND_QUEUE_MAX);
    let (handle, inbox) = driver::channels(cfg.id, command_queue_max);
    // One stop signal for both servers; the peer server starts first: an empty node asks
    // its peers how to start while they ask it.
    let (stopping_tx, stopping_rx) = tokio::sync::watch::channel(false);
    let stopped = |mut rx: tokio::sync::watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|s| *s).await;
    };
    let peer = PeerServer::new(peer_service::PeerService {
        handle: handle.clone(),
        faults: faults.clone(),
        gate: gate.clone(),
        intake: snapshot_intake::SnapshotIntake::new(snapshot_intake::IntakeLimits::from_config(
            &cfg,
        )),
    })
    .max_decoding_message_size(GRPC_MESSAGE_BYTES_MAX)
    .max_encoding_message_size(GRPC_MESSAGE_BYTES_MAX);
    let peers_served = tokio::spawn(
        peer_server
            .tcp_nodelay(true)
            .layer(crate::server::decode::DecodeErrorsLayer)
            .add_service(peer)
            .serve_with_incoming_shutdown(peer_incoming, stopped(stopping_rx.clone())),
    );
    if store_is_empty(&store)? {
        gate.set_starting(true);
        let started = start_empty_store(&cfg, &me, &book, &mut store).await;
        if let Err(e) = started {
            let _ = stopping_tx.send(true);
            let _ = peers_served.await;
            return Err(e);
        }
        gate.set_starting(false);
    }
    let logger = raft_log::logger();
    let fsync_metrics = metrics_listener.as_ref().map(|_| handle.counters().clone());
    let worker = persist::start_observed(&mut store, fsync_metrics)?;
    // The change feed: filled by the apply adapter, streamed by the Watch service.
    let feed = crate::feed::Feed::new(
        cfg.watch_events_retained
            .unwrap_or(crate::feed::WATCH_EVENTS_RETAINED),
    );
    let machine = EngineMachine::with_feed(feed.clone());
    let mut node = node::Node::new(ncfg, store, machine, &logger)?;
    node.set_incarnation(me.incarnation);
    let view = node.state_machine().view_cell();
    let transport = GrpcTransport::new(cfg.id, book.clone(), faults.clone(), handle.clone());
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel();
    let faults_for_node = faults.clone();
    let gate_for_node = gate.clone();
    // When the node task ends on its own (a fatal storage error), the server stops too.
    let (died_tx, died_rx) = tokio::sync::oneshot::channel::<()>();
    let data_dir = cfg.data_dir.clone();
    let node_task = tokio::spawn(async move {
        let result = driver::run(
            node,
            worker,
            inbox,
            transport,
            faults_for_node,
            gate_for_node,
            stop_rx,
        )
        .await;
        match &result {
            Err(Error::ApplyPanicked(p)) => {
                let marker = poison::marker_path(&data_dir);
                tracing::error!("{p}. What to do: {}", poison::procedure(&marker));
                if let Err(e) = poison::record(&data_dir, p) {
                    tracing::error!(error = %e, "could not record the panic in apply");
                }
            }
            Err(e) => tracing::error!(error = %e, "node stopped on a fatal error"),
            Ok(()) => {}
        }
        let _ = died_tx.send(());
        result
    });
    tokio::spawn(async move {
        tokio::select! {
            _ = shutdown => {}
            _ = died_rx => {}
        }
        let _ = stopping_tx.send(true);
    });

    let grpc_metrics = metrics_listener.as_ref().map(|_| GrpcMetrics::default());
    let metrics_served = metrics_listener.map(|listener| {
        let sources = crate::metrics::gauges::Sources {
            node: handle.clone(),
            view: view.clone(),
        };
        tokio::spawn(serve_metrics(
            listener,
            sources,
            grpc_metrics.clone().unwrap_or_default(),
            feed.clone(),
            stopped(stopping_rx.clone()),
        ))
    });
    let cluster = Arc::new(Cluster {
        handle: handle.clone(),
        view,
        book,
        faults: faults.clone(),
    });
    let bootstrap = bootstrap_commands
        .map(|commands| tokio::spawn(bootstrap_region(cluster.clone(), commands)));

    let (reporter, health) = tonic_health::server::health_reporter();
    reporter
        .set_serving::<BedHoldsServer<BedHoldsService>>()
        .await;
    reporter.set_serving::<AdminServer<AdminService>>().await;
    reporter
        .set_serving::<SchedulingServer<SchedulingService>>()
        .await;
    reporter
        .set_serving::<MatchingServer<MatchingService>>()
        .await;
    reporter
        .set_serving::<ReferralsServer<ReferralsService>>()
        .await;
    reporter.set_serving::<WatchServer<WatchService>>().await;
    reporter
        .set_serving::<CapacityServer<CapacityService>>()
        .await;
    let reflection = client_reflection()?;
    let beds = BedHoldsServer::new(BedHoldsService {
        cluster: cluster.clone(),
    });
    let snapshot_dir = data_format::Layout::of(&cfg.data_dir).snapshots;
    let admin =
        AdminServer::new(AdminService::new(cluster.clone()).with_snapshot_dir(snapshot_dir))
            .max_decoding_message_size(GRPC_MESSAGE_BYTES_MAX);
    let scheduling = SchedulingServer::new(SchedulingService {
        cluster: cluster.clone(),
    });
    let matching = MatchingServer::new(MatchingService {
        cluster: cluster.clone(),
    });
    let referrals = ReferralsServer::new(ReferralsService {
        cluster: cluster.clone(),
    });
    let watch = WatchServer::new(WatchService { feed });
    let capacity = CapacityServer::new(CapacityService {
        cluster: cluster.clone(),
    });

    let peer_listen = cfg.peer_listen()?;
    tracing::info!(id = cfg.id, listen = %cfg.listen, %peer_listen, "serving");
    let clients_served = client_server
        .tcp_nodelay(true)
        .layer(GrpcMetricsLayer(grpc_metrics))
        .layer(auth_layer)
        .layer(crate::server::decode::DecodeErrorsLayer)
        .add_service(beds)
        .add_service(admin)
        .add_service(scheduling)
        .add_service(matching)
        .add_service(referrals)
        .add_service(watch)
        .add_service(capacity)
        .add_service(health)
        .add_service(reflection)
        .serve_with_incoming_shutdown(incoming, stopped(stopping_rx));
    let (served, peers_served) = tokio::join!(clients_served, peers_served);
    let peers_served = peers_served.map_err(|e| Error::Config(format!("peer server task: {e}")))?;
    // The servers (and with them the audit senders) are gone: let the writer drain.
    audit_writer.finish().await;
    if let Some(m) = metrics_served {
        let _ = m.await;
    }
    // In-flight calls have finished; now the node may stop.
    if let Some(b) = bootstrap {
        b.abort();
    }
    let _ = stop_tx.send(());
    let node_result = node_task
        .await
        .map_err(|e| Error::Config(format!("node task panicked: {e}")))?;
    served.map_err(|e| Error::Config(format!("client server: {e}")))?;
    peers_served.map_err(|e| Error::Config(format!("peer server: {e}")))?;
    node_result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn built_in_regions_load_with_a_day_of_slots() {
        for spec in ["gba", "yunnan", "asean"] {
            let (file, commands) = load_region(spec).expect(spec);
            assert!(!file.hospitals.is_empty(), "{spec}");
            check_command_sizes(spec, &commands).expect("every bootstrap command fits");
            let published = commands
                .iter()
                .filter(|c| matches!(c, Command::PublishSchedule { .. }))
                .count();
            assert!(published > 0, "{spec}: no schedules");
        }
        let (_, test) = load_region("test").expect("test");
        assert!(test
            .iter()
            .all(|c| !matches!(c, Command::PublishSchedule { .. })));
        assert!(matches!(
            load_region("/nonexistent/region.json"),
            Err(Error::Config(_))
        ));
    }

    #[test]
    fn a_region_file_the_engine_or_the_log_would_refuse_is_refused_at_start() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("region.json");
        let path_s = path.to_str().unwrap();
        let mut region = test_region();
        region.wards[1].ward.hospital = ninety_engine::HospitalId(424_242);
        std::fs::write(&path, region.to_json()).unwrap();
        let e = load_region(path_s).unwrap_err().to_string();
        assert!(e.contains(path_s) && e.contains("wards[1].hospital"), "{e}");
        // An import bigger than one log entry would be refused on every attempt.
        let mut region = test_region();
        region.name = "x".repeat(PROPOSAL_BATCH_BYTES_MAX);
        let commands = ninety_engine::bootstrap_commands(&region, &[]);
        let e = check_command_sizes("big.json", &commands)
            .unwrap_err()
            .to_string();
        assert!(e.contains("big.json: bootstrap command 0"), "{e}");
    }
}
