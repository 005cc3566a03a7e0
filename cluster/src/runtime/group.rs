//! One region group of a node process: today's per-node machinery, once per region.
//!
//! A group is its own Raft group end to end: its identity and snapshots in its data
//! directory (`runtime::regions::GroupSpec::data_dir`), its raft-engine group in the node's
//! one engine (`storage::open_engine`: one per process), its queue to the node's one
//! persistence worker (`runtime::persist`), its snapshot writer, its node task with its
//! own bounded command and peer queues, its change feed, its peer book (whose stamp names
//! the region in every peer call) and peer gate (its members and incarnations), its
//! outbound peer tasks. Nothing but the listeners, the fault switch, the auth layer, the
//! audit log, the raft-engine and the persistence worker (one batch, one `fdatasync` per
//! round for every region's queued writes, at most `persist::GROUP_ROUND_BYTES_MAX` of a
//! region per round) is shared between groups, so a region whose queues are full answers
//! `RESOURCE_EXHAUSTED` to its own callers and delays another region by one bounded round
//! at most.
//!
//! [`open`] runs before the peer listener serves (it makes the group's handle and gate);
//! [`start_empty`] asks the peers how to start an empty store; [`run`] starts the node
//! task; [`client_routes`] builds the group's client services.

use super::config::FileConfig;
use super::regions::GroupSpec;
use super::transport::{Faults, GrpcTransport, PeerBook, Stamp, GRPC_MESSAGE_BYTES_MAX};
use super::{
    data_format, driver, identity, peer_service, persist, poison, raft_log, snapshot_intake,
    startup,
};
use crate::engine_sm::EngineMachine;
use crate::error::Error;
use crate::node::{self, NodeConfig};
use crate::server::region_router::StoppedRegions;
use crate::server::Cluster;
use crate::storage::{LogStore, LogStoreOptions, SharedEngine};
use ninety_engine::Command;
use std::sync::Arc;
use tokio::sync::{oneshot, Notify};

/// A group whose store is open, before its node task runs.
pub struct Opened {
    pub spec: GroupSpec,
    pub me: identity::Identity,
    pub store: LogStore,
    pub handle: driver::NodeHandle,
    pub inbox: driver::Inbox,
    pub book: Arc<PeerBook>,
    pub gate: Arc<peer_service::PeerGate>,
    /// A founding node's bootstrap commands for the region.
    pub bootstrap: Option<Vec<Command>>,
}

/// The node's one raft-engine when it hosts `[[regions]]` (`data_dir/raft-log/`, the data
/// directory stamped or migrated by `data_format`); `None` for a node with one region,
/// whose store opens its own in `data_dir` as before.
pub fn open_shared_engine(cfg: &FileConfig) -> Result<Option<SharedEngine>, Error> {
    if cfg.regions.is_empty() {
        return Ok(None);
    }
    let dir = &cfg.data_dir;
    std::fs::create_dir_all(dir)
        .map_err(|e| Error::Storage(format!("data_dir = {}: {e}", dir.display())))?;
    let layout = data_format::prepare(dir)?;
    crate::storage::open_engine(&layout.raft_log, &LogStoreOptions::default()).map(Some)
}

/// Establishes the group's identity, opens (or creates, or migrates) its store (in the
/// node's shared `engine` when it hosts several regions) and makes its queues, peer book
/// and peer gate.
pub fn open(
    cfg: &FileConfig,
    spec: GroupSpec,
    bootstrap: Option<Vec<Command>>,
    tls: Option<&crate::security::tls::NodeTls>,
    engine: Option<&SharedEngine>,
) -> Result<Opened, Error> {
    let me = identity::establish(&spec.data_dir, cfg.cluster_id.as_deref(), cfg.id)?;
    let store = match engine {
        None => open_store(&spec)?,
        Some(engine) => LogStore::open_in(
            engine.clone(),
            data_format::Layout::of(&cfg.data_dir).raft_log,
            data_format::Layout::of(&spec.data_dir).snapshots,
            &LogStoreOptions {
                group_id: spec.group_id,
                ..LogStoreOptions::default()
            },
        )?,
    };
    let command_queue_max = cfg.max_queued_commands.unwrap_or(driver::COMMAND_QUEUE_MAX);
    let (handle, inbox) = driver::channels(cfg.id, command_queue_max);
    let book = Arc::new(PeerBook::with_tls(
        cfg.peer_map()?,
        tls.map(|t| t.peer_client()),
    ));
    book.set_stamp(Stamp {
        cluster_id: me.cluster_id.clone(),
        incarnation: me.incarnation,
        region: spec.wire.clone(),
    });
    let gate = Arc::new(peer_service::PeerGate::new(
        cfg.id,
        tls.is_some(),
        book.clone(),
    ));
    Ok(Opened {
        spec,
        me,
        store,
        handle,
        inbox,
        book,
        gate,
        bootstrap,
    })
}

/// The group's peer service (served behind the node's `peer_router`).
pub fn peer_service(
    cfg: &FileConfig,
    group: &Opened,
    faults: &Arc<Faults>,
) -> peer_service::PeerService {
    peer_service::PeerService {
        handle: group.handle.clone(),
        faults: faults.clone(),
        gate: group.gate.clone(),
        intake: snapshot_intake::SnapshotIntake::new(snapshot_intake::IntakeLimits::from_config(
            cfg,
        )),
    }
}

/// Opens the group's store, creating its data directory (or migrating a format-2 one, see
/// `data_format`).
fn open_store(spec: &GroupSpec) -> Result<LogStore, Error> {
    let dir = &spec.data_dir;
    std::fs::create_dir_all(dir)
        .map_err(|e| Error::Storage(format!("data_dir = {}: {e}", dir.display())))?;
    let layout = data_format::prepare(dir)?;
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

/// Decides how a group with an empty store starts (see `runtime::startup`): bootstraps
/// it with the region's founding voters, leaves it empty to be caught up by the leader, or
/// refuses. Raft traffic to the group is refused `UNAVAILABLE` meanwhile.
pub async fn start_empty(cfg: &FileConfig, group: &mut Opened) -> Result<(), Error> {
    if !store_is_empty(&group.store)? {
        return Ok(());
    }
    group.gate.set_starting(true);
    let voters = group.spec.voters.clone();
    let facts = node::startup::StartFacts {
        me: cfg.id,
        incarnation: group.me.incarnation,
        may_bootstrap: cfg.init && !cfg.join,
        voters: voters.clone(),
    };
    // Every node of the address book is asked, as before regions; one that does not host
    // the region answers NOT_FOUND, which counts as no answer.
    let peers: Vec<u64> = cfg
        .peer_map()?
        .into_keys()
        .filter(|p| *p != cfg.id)
        .collect();
    let region = group.spec.id.as_str();
    match startup::decide(&facts, &group.me, &peers, &group.book).await? {
        node::startup::StartDecision::Bootstrap => {
            node::bootstrap(&mut group.store, &voters, &EngineMachine::new())?;
            tracing::info!(region, ?voters, "bootstrapped a new cluster");
        }
        _ => tracing::info!(
            region,
            join = cfg.join,
            "empty data directory: starting without bootstrapping; the leader will send a \
             snapshot once this node is a member"
        ),
    }
    group.gate.set_starting(false);
    Ok(())
}

/// A group whose node task runs.
pub struct Running {
    pub spec: GroupSpec,
    pub cluster: Arc<Cluster>,
    pub feed: crate::feed::Feed,
    pub node_task: tokio::task::JoinHandle<Result<(), Error>>,
    pub stop: oneshot::Sender<()>,
}

/// The node settings of every group of a real node.
fn node_config(cfg: &FileConfig) -> NodeConfig {
    let mut ncfg = NodeConfig::new(cfg.id);
    // One region import is a single command: let a proposal batch carry it.
    ncfg.proposal_batch_bytes_max = super::PROPOSAL_BATCH_BYTES_MAX;
    // The node task's snapshot writer encodes and writes them (`runtime::snapshot_writer`).
    ncfg.background_snapshots = true;
    ncfg.snapshot_interval_entries = cfg
        .snapshot_interval_entries
        .unwrap_or(super::config::SNAPSHOT_INTERVAL_ENTRIES_DEFAULT)
        .max(1);
    ncfg.snapshot_log_bytes_max = super::config::SNAPSHOT_LOG_BYTES_MAX;
    if let Some(n) = cfg.log_retain_entries {
        ncfg.log_retain_entries = n;
    }
    if let Some(n) = cfg.max_pending_proposals {
        ncfg.proposal_queue_max = n.max(1);
    }
    ncfg
}

/// How a group's fatal end reaches the node: `died` is notified when a node task ends on
/// its own (the node then stops serving), except a panic in apply on a node with
/// `[[regions]]`, which stops only that region (`stopped`; the others keep serving).
#[derive(Clone)]
pub struct Fatal {
    pub died: Arc<Notify>,
    pub stopped: StoppedRegions,
}

/// Registers the group with the node's persistence worker `persist` and starts its node
/// task; its fatal end goes to `fatal`.
pub fn run(
    cfg: &FileConfig,
    group: Opened,
    faults: &Arc<Faults>,
    persist: &persist::Shared,
    fatal: Fatal,
) -> Result<Running, Error> {
    let Opened {
        spec,
        me,
        mut store,
        handle,
        inbox,
        book,
        gate,
        ..
    } = group;
    let worker = persist.register(&mut store)?;
    // The change feed: filled by the apply adapter, streamed by the Watch service.
    let feed = crate::feed::Feed::new(
        cfg.watch_events_retained
            .unwrap_or(crate::feed::WATCH_EVENTS_RETAINED),
    );
    let machine = EngineMachine::with_feed(feed.clone());
    let logger = raft_log::logger();
    let mut node = node::Node::new(node_config(cfg), store, machine, &logger)?;
    node.set_incarnation(me.incarnation);
    let view = node.state_machine().view_cell();
    let transport = GrpcTransport::new(cfg.id, book.clone(), faults.clone(), handle.clone());
    let (stop, stop_rx) = oneshot::channel();
    let task = driver::run(
        node,
        worker,
        inbox,
        transport,
        faults.clone(),
        gate,
        stop_rx,
    );
    // Every log line of the group names its region (when the node hosts several).
    let span = region_span(&spec);
    let node_task = tokio::spawn(tracing::Instrument::instrument(
        watch_node_task(task, spec.clone(), fatal),
        span,
    ));
    let cluster = Arc::new(Cluster {
        handle,
        view,
        book,
        faults: faults.clone(),
    });
    Ok(Running {
        spec,
        cluster,
        feed,
        node_task,
        stop,
    })
}

/// The span of a group's tasks: `region{id=...}` on a node with `[[regions]]`, none on a
/// node with one region (its logs read as before).
pub fn region_span(spec: &GroupSpec) -> tracing::Span {
    if spec.wire.is_empty() {
        tracing::Span::none()
    } else {
        tracing::info_span!("region", id = %spec.id)
    }
}

/// Runs a group's node task; on a fatal end logs it and notifies `fatal.died`. A panic in
/// apply is recorded in the group's data directory (`runtime::poison`); on a node with
/// `[[regions]]` it stops only this region: every replica of the region applies the same
/// entry and stops the same way, and the node's other regions, whose logs do not hold it,
/// keep serving.
async fn watch_node_task(
    task: impl std::future::Future<Output = Result<(), Error>>,
    spec: GroupSpec,
    fatal: Fatal,
) -> Result<(), Error> {
    let result = task.await;
    let region = spec.id.as_str();
    match &result {
        Err(Error::ApplyPanicked(p)) => {
            let marker = poison::marker_path(&spec.data_dir);
            let what = format!("{p}. What to do: {}", poison::procedure(&marker));
            tracing::error!(region, "{what}");
            if let Err(e) = poison::record(&spec.data_dir, p) {
                tracing::error!(region, error = %e, "could not record the panic in apply");
            }
            if !spec.wire.is_empty() {
                tracing::error!(
                    region,
                    "region stopped on this node; its other regions keep serving"
                );
                fatal.stopped.stop(region, what);
                return result;
            }
        }
        Err(e) => tracing::error!(region, error = %e, "node stopped on a fatal error"),
        Ok(()) => {}
    }
    fatal.died.notify_one();
    result
}

/// The group's client services (`ninety.v1`, health, reflection), the routes the node's
/// region router sends the group's calls to.
pub fn client_routes(
    group: &Running,
    regions: crate::server::matching::Regions,
    health: tonic_health::pb::health_server::HealthServer<
        impl tonic_health::pb::health_server::Health,
    >,
) -> Result<tonic::service::Routes, Error> {
    use crate::server::{
        admin::AdminService, beds::BedHoldsService, capacity::CapacityService,
        matching::MatchingService, referrals::ReferralsService, scheduling::SchedulingService,
        watch::WatchService,
    };
    use ninety_proto::v1::{
        admin_server::AdminServer, bed_holds_server::BedHoldsServer,
        capacity_server::CapacityServer, matching_server::MatchingServer,
        referrals_server::ReferralsServer, scheduling_server::SchedulingServer,
        watch_server::WatchServer,
    };
    let cluster = &group.cluster;
    let snapshot_dir = data_format::Layout::of(&group.spec.data_dir).snapshots;
    let admin =
        AdminServer::new(AdminService::new(cluster.clone()).with_snapshot_dir(snapshot_dir))
            .max_decoding_message_size(GRPC_MESSAGE_BYTES_MAX);
    let routes = tonic::service::Routes::new(BedHoldsServer::new(BedHoldsService {
        cluster: cluster.clone(),
    }))
    .add_service(admin)
    .add_service(SchedulingServer::new(SchedulingService {
        cluster: cluster.clone(),
    }))
    .add_service(MatchingServer::new(MatchingService {
        cluster: cluster.clone(),
        regions,
    }))
    .add_service(ReferralsServer::new(ReferralsService {
        cluster: cluster.clone(),
    }))
    .add_service(WatchServer::new(WatchService {
        feed: group.feed.clone(),
    }))
    .add_service(CapacityServer::new(CapacityService {
        cluster: cluster.clone(),
    }))
    .add_service(health)
    .add_service(super::client_reflection()?);
    Ok(routes.prepare())
}
