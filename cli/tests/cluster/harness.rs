//! Multi-process test harness: real `ninety` processes on loopback, temp dirs, free ports,
//! gRPC clients, a bounded concurrent workload and the checks shared by the tests.
//!
//! Every child is killed (SIGKILL) when its [`Procs`] is dropped, on success or panic.
//!
//! Security is on by default, as for an operator: [`Procs::start`] makes a cluster CA, a
//! certificate for every node id and a client certificate "harness", and every node config
//! gets `[tls]`. Channels connect over TLS (the client listener with the "harness"
//! certificate, the peer listener with node 1's); `Opts.insecure` runs the old plain-text
//! way, and a test that sets it says why.

use ninety_cluster::security::certs::{Ca, Pem};
use ninety_engine::generate::SplitMix64;
use ninety_proto::peer::v1::{peer_client::PeerClient, StatusRequest};
use ninety_proto::v1 as pb;
use ninety_proto::v1::{admin_client::AdminClient, bed_holds_client::BedHoldsClient};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex as StdMutex};
use std::time::{Duration, Instant};
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Identity};

/// Tests share 2 cores: running the clusters one at a time keeps elections and timeouts
/// meaningful.
pub static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Staffed beds per ward of the "test" region (see `runtime::test_region`).
pub const STAFFED_BEDS: u32 = 10;

/// Ports handed to nodes come from here, below Linux's ephemeral range (32768-60999 by
/// default): a port the OS picks for an outgoing connection can then never take a node's
/// port while that node is down for a restart (a port-0 bind could, and did).
const NODE_PORTS: std::ops::Range<u16> = 20_000..32_000;

/// A free port of [`NODE_PORTS`], never the same twice in this process.
pub fn free_port() -> u16 {
    static HANDED_OUT: StdMutex<Option<(SplitMix64, std::collections::BTreeSet<u16>)>> =
        StdMutex::new(None);
    let mut guard = HANDED_OUT.lock().unwrap_or_else(|e| e.into_inner());
    let (rng, taken) = guard.get_or_insert_with(|| {
        let seed = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64)
            ^ u64::from(std::process::id());
        (SplitMix64::new(seed), Default::default())
    });
    let span = u64::from(NODE_PORTS.end - NODE_PORTS.start);
    for _ in 0..10_000 {
        let port = NODE_PORTS.start + (rng.next_u64() % span) as u16;
        if taken.contains(&port) {
            continue;
        }
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            taken.insert(port);
            return port;
        }
    }
    panic!("no free port in {NODE_PORTS:?}");
}

/// Options for the nodes' config files.
#[derive(Clone, Default)]
pub struct Opts {
    pub fault_injection: bool,
    pub snapshot_interval_entries: Option<u64>,
    pub log_retain_entries: Option<u64>,
    /// The region the founding nodes load: "test" (the default) or "gba".
    pub region: Option<&'static str>,
    /// `schedule_horizon_days` of the nodes (default: the node's, 14).
    pub schedule_horizon_days: Option<u16>,
    /// No `[tls]`, `insecure = true`: plain text, claimed peer ids taken on trust. A test
    /// that sets it says why.
    pub insecure: bool,
    /// TOML tables appended at the end of every node config (e.g. `[[auth.certs]]`).
    pub extra_toml: String,
    /// Node id → TOML appended to that node's config instead of `extra_toml` (e.g. a node
    /// hosting other regions than the rest).
    pub node_toml: BTreeMap<u64, String>,
    /// Give every node a `metrics_listen` (ports in [`Procs::metrics_ports`]).
    pub metrics: bool,
    /// `RUST_LOG` of the nodes (default `warn`).
    pub rust_log: Option<&'static str>,
    /// `--log-format` of the nodes (default: none given).
    pub log_format: Option<&'static str>,
    /// Environment variables of the node processes (e.g. the `poison-test` switch).
    pub env: Vec<(&'static str, &'static str)>,
}

/// The cluster's certificates, as written into the temp dir (`tls/`).
pub struct Tls {
    pub ca: Ca,
    /// Node id → its certificate and key.
    pub nodes: BTreeMap<u64, Pem>,
    /// The client certificate "harness" (CN = harness).
    pub client: Pem,
    pub dir: PathBuf,
}

impl Tls {
    fn make(dir: PathBuf, ids: &[u64]) -> Tls {
        std::fs::create_dir_all(&dir).expect("tls dir");
        let ca = Ca::new("harness").expect("CA");
        let hosts = vec!["127.0.0.1".to_string()];
        let nodes: BTreeMap<u64, Pem> = ids
            .iter()
            .map(|id| (*id, ca.node_cert(*id, &hosts).expect("node cert")))
            .collect();
        let client = ca.client_cert("harness").expect("client cert");
        let write = |name: &str, text: &str| std::fs::write(dir.join(name), text).expect(name);
        write("ca.pem", &ca.pem.cert);
        for (id, pem) in &nodes {
            write(&format!("node-{id}.pem"), &pem.cert);
            write(&format!("node-{id}.key"), &pem.key);
        }
        write("harness.pem", &client.cert);
        write("harness.key", &client.key);
        Tls {
            ca,
            nodes,
            client,
            dir,
        }
    }

    /// Node `id`'s `[tls]` table.
    fn table(&self, id: u64) -> String {
        let f = |name: String| self.dir.join(name).display().to_string();
        format!(
            "[tls]\nca = {:?}\ncert = {:?}\nkey = {:?}\n",
            f("ca.pem".into()),
            f(format!("node-{id}.pem")),
            f(format!("node-{id}.key")),
        )
    }
}

/// The `[[auth.certs]]` entry of the harness's client certificate (CN = harness): every
/// role, so the existing suites run with authentication on.
pub const HARNESS_CALLER: &str = "[[auth.certs]]\nname = \"harness\"\n\
     roles = [\"reader\", \"platform\", \"referral\", \"operator\", \"hospital\"]\n";

/// A set of node processes.
pub struct Procs {
    pub dir: tempfile::TempDir,
    /// Client ports (`listen`).
    pub ports: BTreeMap<u64, u16>,
    /// Peer ports (`peer_listen`).
    pub peer_ports: BTreeMap<u64, u16>,
    /// Metrics ports (`metrics_listen`), when `opts.metrics`.
    pub metrics_ports: BTreeMap<u64, u16>,
    pub children: BTreeMap<u64, Child>,
    pub voters: Vec<u64>,
    pub opts: Opts,
    /// `None` when `opts.insecure`.
    pub tls: Option<Tls>,
    /// The cluster id every node's config names.
    pub cluster_id: String,
}

impl Drop for Procs {
    fn drop(&mut self) {
        for c in self.children.values_mut() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Procs {
    /// Allocates ports for `ids` (the address book) and starts the founding `voters`.
    pub fn start(ids: &[u64], voters: &[u64], opts: Opts) -> Procs {
        let dir = tempfile::tempdir().expect("temp dir");
        let tls = (!opts.insecure).then(|| Tls::make(dir.path().join("tls"), ids));
        let mut p = Procs {
            dir,
            ports: ids.iter().map(|id| (*id, free_port())).collect(),
            peer_ports: ids.iter().map(|id| (*id, free_port())).collect(),
            metrics_ports: ids
                .iter()
                .filter(|_| opts.metrics)
                .map(|id| (*id, free_port()))
                .collect(),
            children: BTreeMap::new(),
            voters: voters.to_vec(),
            opts,
            tls,
            cluster_id: ninety_cluster::runtime::identity::random_cluster_id().expect("cluster id"),
        };
        for id in voters {
            p.spawn(*id, true);
        }
        p
    }

    pub fn data_dir(&self, id: u64) -> PathBuf {
        self.dir.path().join(format!("n{id}"))
    }

    /// Node `id`'s client address.
    pub fn addr(&self, id: u64) -> String {
        format!("127.0.0.1:{}", self.ports[&id])
    }

    /// Node `id`'s peer address.
    pub fn peer_addr(&self, id: u64) -> String {
        format!("127.0.0.1:{}", self.peer_ports[&id])
    }

    /// Node `id`'s config file text.
    pub fn config(&self, id: u64, init: bool) -> String {
        let peers: String = self
            .ports
            .keys()
            .map(|p| {
                format!(
                    "\"{p}\" = {{ peer = \"{}\", client = \"{}\" }}\n",
                    self.peer_addr(*p),
                    self.addr(*p)
                )
            })
            .collect();
        let mut extra = String::new();
        if let Some(n) = self.opts.snapshot_interval_entries {
            extra += &format!("snapshot_interval_entries = {n}\n");
        }
        if let Some(n) = self.opts.log_retain_entries {
            extra += &format!("log_retain_entries = {n}\n");
        }
        if let Some(n) = self.opts.schedule_horizon_days {
            extra += &format!("schedule_horizon_days = {n}\n");
        }
        if self.opts.insecure {
            extra += "insecure = true\n";
        }
        if let Some(port) = self.metrics_ports.get(&id) {
            extra += &format!("metrics_listen = \"127.0.0.1:{port}\"\n");
        }
        // With TLS, the harness's own client certificate may call everything; tests of
        // roles add their own credentials through `extra_toml` and dial without it.
        let tls = self
            .tls
            .as_ref()
            .map(|t| format!("{}{HARNESS_CALLER}", t.table(id)))
            .unwrap_or_default();
        format!(
            "id = {id}\nlisten = \"{}\"\npeer_listen = \"{}\"\ndata_dir = \"{}\"\n\
             region = \"{}\"\ninit = {init}\ninitial_voters = {:?}\nfault_injection = {}\n\
             cluster_id = \"{}\"\n\
             {extra}[peers]\n{peers}{tls}{}\n",
            self.addr(id),
            self.peer_addr(id),
            self.data_dir(id).display(),
            self.opts.region.unwrap_or("test"),
            self.voters,
            self.opts.fault_injection,
            self.cluster_id,
            self.opts
                .node_toml
                .get(&id)
                .unwrap_or(&self.opts.extra_toml),
        )
    }

    /// Writes node `id`'s config and starts it.
    pub fn spawn(&mut self, id: u64, init: bool) {
        self.spawn_with(id, init, &[]);
    }

    /// Writes node `id`'s config and starts it with extra `ninety node` arguments (e.g.
    /// `--join`).
    pub fn spawn_with(&mut self, id: u64, init: bool, args: &[&str]) {
        let config = self.config(id, init);
        let path = self.dir.path().join(format!("n{id}.toml"));
        std::fs::write(&path, config).expect("write config");
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.path().join(format!("n{id}.log")))
            .expect("log file");
        let child = Command::new(env!("CARGO_BIN_EXE_ninety"))
            .args(["node", "--config"])
            .arg(&path)
            .args(args)
            .args(
                self.opts
                    .log_format
                    .map(|f| vec!["--log-format", f])
                    .unwrap_or_default(),
            )
            .env("RUST_LOG", self.opts.rust_log.unwrap_or("warn"))
            .envs(self.opts.env.iter().copied())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("spawn ninety");
        self.children.insert(id, child);
    }

    /// SIGKILL: no graceful anything.
    pub fn kill(&mut self, id: u64) {
        if let Some(mut c) = self.children.remove(&id) {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// SIGTERM, as an operator's restart does (in-flight calls finish, the node stops
    /// cleanly); SIGKILL after 10 s.
    pub fn terminate(&mut self, id: u64) {
        let Some(mut c) = self.children.remove(&id) else {
            return;
        };
        let _ = Command::new("kill")
            .args(["-TERM", &c.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = c.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = c.kill();
        let _ = c.wait();
    }

    pub fn live(&self) -> Vec<u64> {
        self.children.keys().copied().collect()
    }

    /// The node's log, for failure messages.
    pub fn log(&self, id: u64) -> String {
        std::fs::read_to_string(self.dir.path().join(format!("n{id}.log"))).unwrap_or_default()
    }

    /// The tails of the nodes' logs, for failure messages.
    pub fn logs(&self, ids: &[u64]) -> String {
        let mut out = String::new();
        for id in ids {
            let log = self.log(*id);
            let tail = &log[log.len().saturating_sub(3000)..];
            out += &format!("--- log of node {id} ---\n{tail}\n");
        }
        out
    }

    /// A channel to node `id`'s client listener (TLS with the "harness" certificate).
    pub fn channel(&self, id: u64) -> Channel {
        self.channel_with(id, self.tls.as_ref().map(|t| &t.client))
    }

    /// A channel to node `id`'s client listener presenting `identity` (`None`: TLS
    /// without a client certificate). Plain text when the cluster is insecure.
    pub fn channel_with(&self, id: u64, identity: Option<&Pem>) -> Channel {
        self.connect(&self.addr(id), identity)
    }

    /// A channel to node `id`'s peer listener, as node 1 (a member's certificate).
    pub fn peer_channel(&self, id: u64) -> Channel {
        self.connect(&self.peer_addr(id), self.node_pem(1))
    }

    /// Node `id`'s certificate and key (`None` when insecure or not an id of the cluster).
    pub fn node_pem(&self, id: u64) -> Option<&Pem> {
        self.tls.as_ref().and_then(|t| t.nodes.get(&id))
    }

    /// `https://addr` trusting the cluster CA, presenting `identity`; `http://` if insecure.
    pub fn connect(&self, addr: &str, identity: Option<&Pem>) -> Channel {
        let Some(tls) = &self.tls else {
            return channel_to(addr);
        };
        let mut config =
            ClientTlsConfig::new().ca_certificate(Certificate::from_pem(&tls.ca.pem.cert));
        if let Some(id) = identity {
            config = config.identity(Identity::from_pem(&id.cert, &id.key));
        }
        tonic::transport::Endpoint::from_shared(format!("https://{addr}"))
            .expect("endpoint")
            .tls_config(config)
            .expect("tls config")
            .connect_timeout(Duration::from_millis(300))
            .timeout(Duration::from_secs(8))
            .connect_lazy()
    }

    /// The `ninety` client flags that reach this cluster (`--cacert/--cert/--key`, the
    /// "harness" certificate); empty when insecure. Unused until the CLI has those flags.
    #[allow(dead_code)]
    pub fn client_args(&self) -> Vec<String> {
        let Some(tls) = &self.tls else {
            return Vec::new();
        };
        let f = |name: &str| tls.dir.join(name).display().to_string();
        vec![
            "--cacert".into(),
            f("ca.pem"),
            "--cert".into(),
            f("harness.pem"),
            "--key".into(),
            f("harness.key"),
        ]
    }

    /// `ninety_client` TLS settings for the harness's client certificate (every role);
    /// `None` on an insecure cluster.
    pub fn client_tls(&self) -> Option<ninety_client::ClientTls> {
        let tls = self.tls.as_ref()?;
        Some(ninety_client::ClientTls {
            ca_pem: tls.ca.pem.cert.clone(),
            identity: Some((tls.client.cert.clone(), tls.client.key.clone())),
            domain: None,
        })
    }

    /// A `ninety_client` of the client listeners of `ids` with the harness's certificate:
    /// 3 s an attempt, `total` in all.
    pub fn client_of(&self, ids: &[u64], total: Duration) -> ninety_client::Client {
        let addrs: Vec<String> = ids.iter().map(|i| self.addr(*i)).collect();
        let config = ninety_client::Config {
            attempt_timeout: Duration::from_secs(3),
            total_timeout: total,
            tls: self.client_tls(),
            ..ninety_client::Config::default()
        };
        ninety_client::Client::new(&addrs, config).expect("client")
    }

    /// Channels to the client listeners of `ids`, for [`workload`].
    pub fn channels(&self, ids: &[u64]) -> Vec<Channel> {
        ids.iter().map(|id| self.channel(*id)).collect()
    }

    pub fn beds(&self, id: u64) -> BedHoldsClient<Channel> {
        BedHoldsClient::new(self.channel(id))
    }

    pub fn admin(&self, id: u64) -> AdminClient<Channel> {
        AdminClient::new(self.channel(id))
    }

    /// `ninety.peer.v1.Peer` on node `id`'s peer listener (the only place it is served),
    /// as node 1.
    pub fn peer(&self, id: u64) -> PeerClient<Channel> {
        PeerClient::new(self.peer_channel(id))
    }

    /// `ninety.peer.v1.Peer` on node `id`'s peer listener presenting `identity` (`None`:
    /// TLS without a client certificate).
    pub fn peer_as(&self, id: u64, identity: Option<&Pem>) -> PeerClient<Channel> {
        PeerClient::new(self.connect(&self.peer_addr(id), identity))
    }

    pub async fn status(&self, id: u64) -> Option<pb::ClusterStatusResponse> {
        let r = self
            .admin(id)
            .cluster_status(pb::ClusterStatusRequest::default())
            .await;
        r.ok().map(|r| r.into_inner())
    }

    /// The node that says it leads (highest term wins), among `among`.
    pub async fn leader_among(&self, among: &[u64]) -> Option<u64> {
        let mut best: Option<(u64, u64)> = None;
        for id in among {
            if let Some(s) = self.status(*id).await {
                if s.leader_id == *id && best.is_none_or(|b| s.term > b.1) {
                    best = Some((*id, s.term));
                }
            }
        }
        best.map(|b| b.0)
    }

    /// Waits for a leader among the live nodes, and for the region to be loaded.
    pub async fn wait_ready(&self, within: Duration) -> u64 {
        let deadline = Instant::now() + within;
        loop {
            if let Some(l) = self.leader_among(&self.live()).await {
                let r = self
                    .beds(l)
                    .ward_availability(pb::WardAvailabilityRequest {
                        hospital_id: 1,
                        ward_ids: vec![],
                        consistency: 0,
                    })
                    .await;
                if r.is_ok() {
                    return l;
                }
            }
            assert!(
                Instant::now() < deadline,
                "cluster not ready in time; log of n1:\n{}",
                self.log(1)
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Waits until `ids` report the same applied index and returns their (equal) hash.
    /// Log-time ticks advance the index every second, so statuses are sampled together.
    pub async fn converge(&self, ids: &[u64], within: Duration) -> (u64, Vec<u8>) {
        self.converge_region(ids, "", within).await
    }

    /// [`Procs::converge`] for the replicas of `region` (empty: each node's default).
    pub async fn converge_region(
        &self,
        ids: &[u64],
        region: &str,
        within: Duration,
    ) -> (u64, Vec<u8>) {
        let deadline = Instant::now() + within;
        // Asked as the first of `ids`: a member (node 1 may have been removed).
        let me = ids.first().copied().unwrap_or(1);
        loop {
            // Asked at once (not one after the other): under load a status with its hash
            // can take longer than the one second between two ticks.
            let asks: Vec<_> = ids
                .iter()
                .map(|id| {
                    let mut p = self.peer_as(*id, self.node_pem(me));
                    let region = region.to_string();
                    tokio::spawn(async move {
                        p.status(StatusRequest {
                            from_node: me,
                            region,
                        })
                        .await
                    })
                })
                .collect();
            let mut seen = Vec::new();
            for ask in asks {
                if let Ok(Ok(s)) = ask.await {
                    let s = s.into_inner();
                    seen.push((s.applied_index, s.state_hash));
                }
            }
            if seen.len() == ids.len() && seen.iter().all(|s| s.0 == seen[0].0) {
                for s in &seen {
                    assert_eq!(s.1, seen[0].1, "state hashes differ at index {}", s.0);
                }
                return seen.swap_remove(0);
            }
            assert!(
                Instant::now() < deadline,
                "nodes {ids:?} did not converge: {:?}\n{}",
                seen.iter().map(|s| s.0).collect::<Vec<_>>(),
                self.logs(ids)
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Every ward of the test region: held + occupied never exceeds its staffed beds, and
    /// the counts add up.
    pub async fn check_capacity(&self, id: u64) {
        for hospital in 1..=3 {
            let r = self
                .beds(id)
                .ward_availability(pb::WardAvailabilityRequest {
                    hospital_id: hospital,
                    ward_ids: vec![],
                    consistency: pb::ReadConsistency::Local as i32,
                })
                .await
                .expect("ward availability")
                .into_inner();
            for w in r.wards {
                assert!(
                    w.held_beds + w.occupied_beds <= STAFFED_BEDS,
                    "ward over capacity on node {id}: {w:?}"
                );
                assert_eq!(
                    w.free_beds + w.held_beds + w.occupied_beds + w.to_clean_beds + w.blocked_beds,
                    w.total_beds
                );
            }
        }
    }
}

/// A lazily connecting channel with the tests' timeouts.
pub fn channel_to(addr: &str) -> Channel {
    tonic::transport::Endpoint::from_shared(format!("http://{addr}"))
        .expect("endpoint")
        .connect_timeout(Duration::from_millis(300))
        .timeout(Duration::from_secs(8))
        .connect_lazy()
}

/// Ward ids of the test region, read from a node.
pub async fn ward_ids(p: &Procs, id: u64) -> Vec<u32> {
    let mut out = Vec::new();
    for hospital in 1..=3 {
        let r = p
            .beds(id)
            .ward_availability(pb::WardAvailabilityRequest {
                hospital_id: hospital,
                ward_ids: vec![],
                consistency: 0,
            })
            .await
            .expect("ward availability")
            .into_inner();
        out.extend(r.wards.iter().map(|w| w.ward_id));
    }
    out
}

/// What the workload knows happened to a hold.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Known {
    /// Held (acknowledged); no later operation acknowledged or attempted.
    Held,
    Confirmed,
    Released,
    /// A confirm or release was attempted but its outcome is unknown.
    Unsure,
}

/// Acknowledged holds: hold id → what is known.
pub type Ledger = Arc<StdMutex<BTreeMap<u64, Known>>>;

/// A random 32-hex request id.
pub fn rid(rng: &mut SplitMix64) -> String {
    format!("{:016x}{:016x}", rng.next_u64(), rng.next_u64())
}

/// Sends one write, retrying the same request id on other nodes while the outcome is
/// unknown, until `deadline`. `Ok(None)`: refused by the engine (a definite answer).
async fn write_retrying<F, Fut>(
    nodes: &[Channel],
    deadline: Instant,
    mut call: F,
) -> Result<Option<pb::BedHoldResponse>, ()>
where
    F: FnMut(BedHoldsClient<Channel>) -> Fut,
    Fut: std::future::Future<Output = Result<tonic::Response<pb::BedHoldResponse>, tonic::Status>>,
{
    let mut i = 0usize;
    while Instant::now() < deadline {
        let ch = nodes[i % nodes.len()].clone();
        i += 1;
        match call(BedHoldsClient::new(ch)).await {
            Ok(r) => return Ok(Some(r.into_inner())),
            Err(s)
                if matches!(
                    s.code(),
                    tonic::Code::FailedPrecondition
                        | tonic::Code::NotFound
                        | tonic::Code::InvalidArgument
                ) =>
            {
                return Ok(None)
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
    Err(())
}

/// Runs `tasks` clients doing hold → confirm/release cycles against `nodes` (channels from
/// [`Procs::channels`]) until `until`, recording every acknowledged operation in the ledger.
pub async fn workload(
    nodes: Vec<Channel>,
    wards: Vec<u32>,
    tasks: usize,
    until: Instant,
) -> Ledger {
    workload_seeded(nodes, wards, tasks, until, 0x5eed).await
}

/// [`workload`] with request ids drawn from `seed` (two workloads of one test need two
/// seeds, or the second replays the first's request ids and gets its answers back).
pub async fn workload_seeded(
    nodes: Vec<Channel>,
    wards: Vec<u32>,
    tasks: usize,
    until: Instant,
    seed: u64,
) -> Ledger {
    let ledger: Ledger = Arc::default();
    let mut set = tokio::task::JoinSet::new();
    for t in 0..tasks {
        let (nodes, wards, ledger) = (nodes.clone(), wards.clone(), ledger.clone());
        set.spawn(async move {
            let mut rng = SplitMix64::new(seed ^ t as u64);
            let nodes: Vec<Channel> = (0..nodes.len())
                .map(|i| nodes[(i + t) % nodes.len()].clone())
                .collect();
            while Instant::now() < until {
                let ward = wards[rng.below(wards.len() as u64) as usize];
                let req = pb::HoldBedRequest {
                    request_id: rid(&mut rng),
                    ward_id: ward,
                    bed_id: 0,
                    patient_ref: format!("{:032x}", rng.next_u64()),
                    ttl_ms: 600_000,
                    ..Default::default()
                };
                let deadline = Instant::now() + Duration::from_secs(20);
                let held = write_retrying(&nodes, deadline, |mut c| {
                    let req = req.clone();
                    async move { c.hold_bed(req).await }
                })
                .await;
                let Ok(Some(resp)) = held else {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    continue;
                };
                let Some(hold) = resp.hold else { continue };
                ledger.lock().unwrap().insert(hold.hold_id, Known::Held);
                let confirm = rng.chance(15);
                let id = rid(&mut rng);
                ledger.lock().unwrap().insert(hold.hold_id, Known::Unsure);
                let done = if confirm {
                    write_retrying(&nodes, deadline, |mut c| {
                        let r = pb::ConfirmHoldRequest {
                            request_id: id.clone(),
                            hold_id: hold.hold_id,
                        };
                        async move { c.confirm_hold(r).await }
                    })
                    .await
                } else {
                    write_retrying(&nodes, deadline, |mut c| {
                        let r = pb::ReleaseHoldRequest {
                            request_id: id.clone(),
                            hold_id: hold.hold_id,
                            reason: "test".into(),
                        };
                        async move { c.release_hold(r).await }
                    })
                    .await
                };
                if let Ok(Some(_)) = done {
                    let k = if confirm {
                        Known::Confirmed
                    } else {
                        Known::Released
                    };
                    ledger.lock().unwrap().insert(hold.hold_id, k);
                }
            }
        });
    }
    while set.join_next().await.is_some() {}
    ledger
}

/// Every acknowledged hold is on node `id`, in a state consistent with what was
/// acknowledged.
pub async fn check_ledger(p: &Procs, id: u64, ledger: &Ledger) {
    let entries: Vec<(u64, Known)> = ledger
        .lock()
        .unwrap()
        .iter()
        .map(|(k, v)| (*k, *v))
        .collect();
    let mut client = p.beds(id);
    for (hold_id, known) in entries {
        let r = client
            .get_hold(pb::GetHoldRequest {
                hold_id,
                consistency: pb::ReadConsistency::Local as i32,
            })
            .await
            .unwrap_or_else(|s| panic!("hold {hold_id} ({known:?}) missing on node {id}: {s}"))
            .into_inner();
        let state = r.hold.map(|h| h.state).unwrap_or_default();
        let ok = match known {
            Known::Held => state == pb::HoldState::Active as i32,
            Known::Confirmed => state == pb::HoldState::Confirmed as i32,
            Known::Released => state == pb::HoldState::Released as i32,
            Known::Unsure => state != pb::HoldState::Unspecified as i32,
        };
        assert!(
            ok,
            "hold {hold_id} on node {id}: acknowledged {known:?}, found state {state}"
        );
    }
}

/// Counts of the ledger, for the test output.
pub fn summary(ledger: &Ledger) -> String {
    let l = ledger.lock().unwrap();
    let mut by: BTreeMap<String, usize> = BTreeMap::new();
    for k in l.values() {
        *by.entry(format!("{k:?}")).or_default() += 1;
    }
    format!("{} holds acknowledged {by:?}", l.len())
}

/// Runs an admin call on the current leader, retrying across leader changes.
pub async fn on_leader<F, Fut, T>(p: &Procs, among: &[u64], mut call: F) -> T
where
    F: FnMut(u64) -> Fut,
    Fut: std::future::Future<Output = Result<T, tonic::Status>>,
{
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        if let Some(l) = p.leader_among(among).await {
            match call(l).await {
                Ok(v) => return v,
                Err(s) => eprintln!("admin call on {l}: {s}"),
            }
        }
        assert!(
            Instant::now() < deadline,
            "admin call did not succeed in time"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
