//! The tokio runtime of a real node: for each region it hosts (one, or `[[regions]]`:
//! [`regions`]) a group ([`group`]): its Raft store (`storage::LogStore`), node task
//! ([`driver`]), tonic transport ([`transport`]) and, on a founding node, the region
//! bootstrap; then two gRPC servers that route each call to its region's group (the peer
//! listener by the calls' `region`, [`peer_router`]; the client listener by the
//! `ninety-region` header, `server::region_router`); then runs until shutdown.
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
pub mod crash_point;
pub mod data_format;
pub mod driver;
pub mod events;
pub mod group;
pub mod identity;
pub mod peer_router;
pub mod peer_service;
pub mod persist;
pub mod poison;
pub mod raft_log;
pub mod regions;
pub mod remote_driver;
pub mod snapshot_intake;
pub mod snapshot_writer;
pub mod startup;
pub mod transport;

use crate::error::Error;
use crate::io::Clock;
use crate::metrics::grpc::{GrpcMetrics, GrpcMetricsLayer};
use crate::node;
use crate::server::matching::{OtherRegion, Regions};
use crate::server::region_router::{RegionRouter, StoppedRegions};
use crate::server::{
    admin::AdminService, beds::BedHoldsService, capacity::CapacityService,
    matching::MatchingService, referrals::ReferralsService, scheduling::SchedulingService,
    watch::WatchService, Cluster, Deadline, READ_TIMEOUT, WRITE_TIMEOUT,
};
use config::FileConfig;
use ninety_engine::read::{Answer, Query};
use ninety_engine::{generate, Command, Outcome, RegionFile, Rejection};
use ninety_proto::peer::v1::peer_server::PeerServer;
use ninety_proto::v1::{
    admin_server::AdminServer, bed_holds_server::BedHoldsServer, capacity_server::CapacityServer,
    matching_server::MatchingServer, referrals_server::ReferralsServer,
    scheduling_server::SchedulingServer, watch_server::WatchServer,
};
use peer_router::PeerRouter;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use transport::{Faults, GRPC_MESSAGE_BYTES_MAX};

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
/// that bad input can fail (the config, a recorded panic in apply, the regions, both
/// listen ports) runs here first, so a refused start leaves nothing behind.
struct Preflight {
    /// The client listener (`listen`).
    incoming: tonic::transport::server::TcpIncoming,
    /// The peer listener (`peer_listen`).
    peer_incoming: tonic::transport::server::TcpIncoming,
    /// The region groups to run, the default first, with a founding node's bootstrap
    /// commands for each.
    groups: Vec<(regions::GroupSpec, Option<Vec<Command>>)>,
    /// Every region the config lists, in its order (the default first), those stopped
    /// included.
    hosted: Vec<String>,
    /// Regions left stopped (a panic in apply recorded, on a node with `[[regions]]`).
    stopped: StoppedRegions,
    /// The `[tls]` files, read and checked.
    tls: Option<crate::security::tls::NodeTls>,
    /// The metrics listener (`metrics_listen`), when configured.
    metrics: Option<tokio::net::TcpListener>,
}

/// The groups a node runs: every region of its config but those whose data directory
/// records a panic in apply (`runtime::poison`). With one region such a record refuses the
/// start; with `[[regions]]` only that region stays stopped (its calls answer why) while
/// the others serve, unless every region is stopped.
fn unpoisoned_groups(
    cfg: &FileConfig,
) -> Result<(Vec<regions::GroupSpec>, Vec<String>, StoppedRegions), Error> {
    let specs = regions::groups(cfg)?;
    let hosted = specs.iter().map(|s| s.id.clone()).collect();
    let stopped = StoppedRegions::default();
    let mut first_refusal = None;
    let mut kept = Vec::with_capacity(specs.len());
    for spec in specs {
        match poison::check(&spec.data_dir) {
            Ok(()) => kept.push(spec),
            Err(e) if !spec.wire.is_empty() => {
                tracing::error!(region = %spec.id, "{e}; the node serves its other regions");
                stopped.stop(&spec.id, e.to_string());
                first_refusal.get_or_insert(e);
            }
            Err(e) => return Err(e),
        }
    }
    match first_refusal {
        Some(e) if kept.is_empty() => Err(e),
        _ => Ok((kept, hosted, stopped)),
    }
}

fn preflight(cfg: &FileConfig) -> Result<Preflight, Error> {
    cfg.check()?;
    regions::check_data_dir(cfg)?;
    let (specs, hosted, stopped) = unpoisoned_groups(cfg)?;
    let tls = match &cfg.tls {
        Some(files) => Some(crate::security::tls::NodeTls::load(files, cfg.id)?),
        None => {
            tracing::warn!(
                insecure = cfg.insecure,
                "no [tls]: serving plain text; peer identities are taken on trust"
            );
            None
        }
    };
    let mut groups = Vec::with_capacity(specs.len());
    for spec in specs {
        let bootstrap = if cfg.init {
            let horizon = cfg
                .schedule_horizon_days
                .unwrap_or(generate::HORIZON_DAYS_DEFAULT);
            let (_, commands) = load_region_with(&spec.spec, horizon)?;
            check_command_sizes(&spec.spec, &commands)?;
            Some(commands)
        } else {
            None
        };
        groups.push((spec, bootstrap));
    }
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
        groups,
        hosted,
        stopped,
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

/// Server reflection for the client listener. It advertises what that listener serves:
/// the descriptor set also describes ninety.peer.v1, which is served on the peer listener
/// only.
pub(crate) fn client_reflection() -> Result<
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

/// The metrics endpoint of a node (`crate::metrics`): has each region's change feed
/// (`feeds`: region id, its feed) count its events and serves scrapes on `listener` until
/// the stop signal it is given.
async fn serve_metrics(
    listener: tokio::net::TcpListener,
    sources: Vec<crate::metrics::gauges::Sources>,
    grpc: GrpcMetrics,
    feeds: Vec<(String, crate::feed::Feed)>,
    stop: impl Future<Output = ()>,
) {
    let counts = feeds
        .into_iter()
        .map(|(region, feed)| {
            let counts = crate::metrics::feed_counts::FeedCounts::default();
            feed.count_with(counts.clone());
            (region, counts)
        })
        .collect();
    let metrics = crate::metrics::Metrics::new(&grpc, counts, sources);
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
        groups,
        hosted,
        stopped: stopped_regions,
        tls,
        metrics: metrics_listener,
    } = preflight(&cfg)?;
    let (peer_server, client_server) = servers(tls.as_ref())?;
    let mut opened = open_groups(&cfg, groups, tls.as_ref())?;
    let (auth_layer, audit_writer) = client_auth(&cfg)?;
    let faults = Arc::new(Faults::new(
        cfg.fault_injection.then(|| cfg.data_dir.join("FAULTS")),
    ));
    // One stop signal for both servers; the peer server starts first: an empty node asks
    // its peers how to start while they ask it.
    let (stopping_tx, stopping_rx) = tokio::sync::watch::channel(false);
    let peers_served = serve_peers(
        &cfg,
        &opened,
        &faults,
        peer_server,
        peer_incoming,
        &stopping_rx,
    );
    if let Err(e) = start_empty_groups(&cfg, &mut opened).await {
        let _ = stopping_tx.send(true);
        let _ = peers_served.await;
        return Err(e);
    }
    let died = Arc::new(tokio::sync::Notify::new());
    let fatal = group::Fatal {
        died: died.clone(),
        stopped: stopped_regions.clone(),
    };
    let (running, bootstraps) =
        run_groups(&cfg, opened, &faults, metrics_listener.is_some(), &fatal)?;
    // The servers stop on the shutdown signal, or when a group's node task ends on its own.
    tokio::spawn(async move {
        tokio::select! {
            _ = shutdown => {}
            _ = died.notified() => {}
        }
        let _ = stopping_tx.send(true);
    });
    let grpc_metrics = metrics_listener.as_ref().map(|_| GrpcMetrics::default());
    let metrics_served = spawn_metrics(metrics_listener, &running, &grpc_metrics, &stopping_rx);
    let routes = client_routes(&running, hosted, stopped_regions).await?;
    let remote = remote_driver::spawn(
        running
            .iter()
            .map(|g| (g.spec.id.clone(), g.cluster.clone()))
            .collect(),
        crash_point::CrashPoints::new(
            cfg.fault_injection
                .then(|| cfg.data_dir.join(crash_point::CRASH_FILE)),
        ),
        stopping_rx.clone(),
    );
    let ids: Vec<&str> = running.iter().map(|g| g.spec.id.as_str()).collect();
    let peer_listen = cfg.peer_listen()?;
    tracing::info!(id = cfg.id, listen = %cfg.listen, %peer_listen, regions = ?ids, "serving");
    let clients_served = client_server
        .tcp_nodelay(true)
        .layer(GrpcMetricsLayer(grpc_metrics))
        .layer(auth_layer)
        .layer(crate::server::decode::DecodeErrorsLayer)
        .add_routes(routes)
        .serve_with_incoming_shutdown(incoming, stopped(stopping_rx));
    let (served, peers_served) = tokio::join!(clients_served, peers_served);
    let stopping = Stopping {
        audit_writer,
        metrics_served,
        bootstraps,
        remote,
        running,
    };
    stopping.finish(served, peers_served).await
}

/// What a node stops once both servers have ended.
struct Stopping {
    audit_writer: crate::security::audit::Writer,
    metrics_served: Option<tokio::task::JoinHandle<()>>,
    bootstraps: Vec<tokio::task::JoinHandle<()>>,
    /// The cross-region referral driver (`remote_driver`).
    remote: tokio::task::JoinHandle<()>,
    running: Vec<group::Running>,
}

impl Stopping {
    /// Drains the audit log and the metrics server, stops the bootstraps and every group;
    /// the first error of the servers or the groups is the node's.
    async fn finish(
        self,
        served: Result<(), tonic::transport::Error>,
        peers_served: Result<Result<(), tonic::transport::Error>, tokio::task::JoinError>,
    ) -> Result<(), Error> {
        let peers_served =
            peers_served.map_err(|e| Error::Config(format!("peer server task: {e}")))?;
        // The servers (and with them the audit senders) are gone: let the writer drain.
        self.audit_writer.finish().await;
        if let Some(m) = self.metrics_served {
            let _ = m.await;
        }
        // In-flight calls have finished; now the groups may stop.
        for b in self.bootstraps {
            b.abort();
        }
        self.remote.abort();
        let node_result = stop_groups(self.running).await;
        served.map_err(|e| Error::Config(format!("client server: {e}")))?;
        peers_served.map_err(|e| Error::Config(format!("peer server: {e}")))?;
        node_result
    }
}

/// Opens every group's store (in the node's one raft-engine when it hosts several).
fn open_groups(
    cfg: &FileConfig,
    groups: Vec<(regions::GroupSpec, Option<Vec<Command>>)>,
    tls: Option<&crate::security::tls::NodeTls>,
) -> Result<Vec<group::Opened>, Error> {
    let engine = group::open_shared_engine(cfg)?;
    let mut opened = Vec::with_capacity(groups.len());
    for (spec, bootstrap) in groups {
        opened.push(group::open(cfg, spec, bootstrap, tls, engine.as_ref())?);
    }
    Ok(opened)
}

/// The peer server: one listener, every group's peer service behind the region router.
fn serve_peers(
    cfg: &FileConfig,
    opened: &[group::Opened],
    faults: &Arc<Faults>,
    server: tonic::transport::Server,
    incoming: tonic::transport::server::TcpIncoming,
    stopping: &tokio::sync::watch::Receiver<bool>,
) -> tokio::task::JoinHandle<Result<(), tonic::transport::Error>> {
    let groups = opened
        .iter()
        .map(|g| {
            let service = group::peer_service(cfg, g, faults);
            (g.spec.id.clone(), service, group::region_span(&g.spec))
        })
        .collect();
    let peers = PeerServer::new(PeerRouter::new(cfg.id, groups))
        .max_decoding_message_size(GRPC_MESSAGE_BYTES_MAX)
        .max_encoding_message_size(GRPC_MESSAGE_BYTES_MAX);
    tokio::spawn(
        server
            .tcp_nodelay(true)
            .layer(crate::server::decode::DecodeErrorsLayer)
            .add_service(peers)
            .serve_with_incoming_shutdown(incoming, stopped(stopping.clone())),
    )
}

/// Decides, for every group with an empty store at once, how it starts.
async fn start_empty_groups(cfg: &FileConfig, opened: &mut [group::Opened]) -> Result<(), Error> {
    let starts = opened.iter_mut().map(|g| {
        let span = group::region_span(&g.spec);
        tracing::Instrument::instrument(group::start_empty(cfg, g), span)
    });
    futures_util::future::try_join_all(starts).await.map(drop)
}

/// Starts the node's persistence worker and every group's node task, and on a founding node
/// the region bootstraps; the worker's fsyncs (every group's) are `observed` by the
/// metrics (the default group's counters).
fn run_groups(
    cfg: &FileConfig,
    mut opened: Vec<group::Opened>,
    faults: &Arc<Faults>,
    observed: bool,
    fatal: &group::Fatal,
) -> Result<(Vec<group::Running>, Vec<tokio::task::JoinHandle<()>>), Error> {
    let commands: Vec<_> = opened.iter_mut().map(|g| g.bootstrap.take()).collect();
    let Some(first) = opened.first() else {
        return Ok((Vec::new(), Vec::new()));
    };
    let fsync = observed.then(|| first.handle.counters().clone());
    // Every group's store is in the same raft-engine: any store's writer writes for all.
    let shared = persist::Shared::start(first.store.writer(), fsync)?;
    let mut running = Vec::with_capacity(opened.len());
    for g in opened {
        running.push(group::run(cfg, g, faults, &shared, fatal.clone())?);
    }
    let bootstraps = running
        .iter()
        .zip(commands)
        .filter_map(|(g, commands)| {
            let span = group::region_span(&g.spec);
            let load = bootstrap_region(g.cluster.clone(), commands?);
            Some(tokio::spawn(tracing::Instrument::instrument(load, span)))
        })
        .collect();
    Ok((running, bootstraps))
}

/// The metrics server, when `metrics_listen` is set: every region's series.
fn spawn_metrics(
    listener: Option<tokio::net::TcpListener>,
    running: &[group::Running],
    grpc: &Option<GrpcMetrics>,
    stopping: &tokio::sync::watch::Receiver<bool>,
) -> Option<tokio::task::JoinHandle<()>> {
    let listener = listener?;
    let grpc = grpc.clone().unwrap_or_default();
    let stop = stopped(stopping.clone());
    let sources = running
        .iter()
        .map(|g| crate::metrics::gauges::Sources {
            region: g.spec.id.clone(),
            node: g.cluster.handle.clone(),
            view: g.cluster.view.clone(),
        })
        .collect();
    let feeds = running
        .iter()
        .map(|g| (g.spec.id.clone(), g.feed.clone()))
        .collect();
    Some(tokio::spawn(serve_metrics(
        listener, sources, grpc, feeds, stop,
    )))
}

/// Resolves when the stop signal is sent.
async fn stopped(mut rx: tokio::sync::watch::Receiver<bool>) {
    let _ = rx.wait_for(|s| *s).await;
}

/// The client listener's routes: every group's services behind the region router, and
/// the health service reporting them serving.
async fn client_routes(
    running: &[group::Running],
    hosted: Vec<String>,
    stopped: StoppedRegions,
) -> Result<tonic::service::Routes, Error> {
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
    let mut groups = Vec::with_capacity(running.len());
    for g in running {
        let regions = search_regions(g, running);
        groups.push((
            g.spec.id.clone(),
            group::client_routes(g, regions, health.clone())?,
        ));
    }
    Ok(RegionRouter::new(groups)
        .with_stopped(hosted, stopped)
        .into_routes())
}

/// What `g`'s bed searches know of regions: its id and built-in layout, and the node's
/// other groups of built-in layouts (`server::matching::Regions`).
fn search_regions(g: &group::Running, running: &[group::Running]) -> Regions {
    let preset = |spec: &regions::GroupSpec| spec.spec.parse::<generate::Preset>().ok();
    Regions {
        home: g.spec.id.clone(),
        preset: preset(&g.spec),
        others: running
            .iter()
            .filter(|o| o.spec.id != g.spec.id)
            .filter_map(|o| {
                Some(OtherRegion {
                    id: o.spec.id.clone(),
                    preset: preset(&o.spec)?,
                    cluster: o.cluster.clone(),
                })
            })
            .collect(),
    }
}

/// Stops every group's node task and waits for it; the first error is the node's.
async fn stop_groups(running: Vec<group::Running>) -> Result<(), Error> {
    let mut tasks = Vec::with_capacity(running.len());
    for g in running {
        let _ = g.stop.send(());
        tasks.push((g.spec.id, g.node_task));
    }
    let mut result = Ok(());
    for (region, task) in tasks {
        let ended = task
            .await
            .map_err(|e| Error::Config(format!("region {region}: node task panicked: {e}")))
            .and_then(|r| r);
        if result.is_ok() {
            result = ended;
        }
    }
    result
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
