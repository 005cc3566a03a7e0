//! `ninety demo`: a local cluster on the built-in GBA region, with traffic.
//!
//! Starts three `ninety node` child processes on loopback (data in a temporary directory),
//! waits for a leader and for the region to load through the Raft log, sends a short burst of
//! bed holds, confirms and releases from concurrent clients, checks that every replica holds
//! the same state, prints a summary and where to point a client, and stops everything.
//! Ctrl-C at any point stops the children and leaves nothing running.
//!
//! With `--layout south` the same processes host the layout's regions (`[[regions]]` in
//! their configs, `ninety_engine::layout`), each its own Raft group: every region is
//! loaded, gets its own burst (all at once, calls naming it in the `ninety-region` header),
//! its own summary and its own replica check.
//!
//! The nodes run with `insecure = true` on loopback (no TLS, every caller anonymous with
//! every role), and the demo says so: `ninety cluster init` is the way to a secure cluster.

use anyhow::{bail, Context};
use ninety_engine::generate::{self, Preset};
use ninety_proto::v1::admin_client::AdminClient;
use ninety_proto::v1::bed_holds_client::BedHoldsClient;
use ninety_proto::v1::{
    ClusterStatusRequest, ConfirmHoldRequest, HoldBedRequest, ReleaseHoldRequest,
    WardAvailabilityRequest,
};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use tonic::transport::Channel;

/// How long the cluster may take to elect a leader.
const LEADER_WAIT_MS: u64 = 30_000;
/// How long the region (79 hospitals, ~300,000 slots) may take to load through the log.
const REGION_WAIT_MS: u64 = 300_000;
/// How long replicas may take to reach the same applied index after the burst.
const CONVERGE_WAIT_MS: u64 = 20_000;
/// How long a node may take to stop after SIGTERM before it is killed.
const STOP_WAIT_MS: u64 = 10_000;
/// With `--base-port B`, node N serves peers on `B + PEER_PORT_OFFSET + N - 1` (clients on
/// `B + N - 1`), as `ninety cluster init` lays out ports.
pub const PEER_PORT_OFFSET: u16 = 100;
/// The line the demo prints about its security: it runs insecure, on loopback only.
pub const INSECURE_NOTICE: &str = "insecure demo on loopback: no TLS, no credentials, every \
     caller has every role; for a secure cluster (CA, node certificates, operator token) use \
     `ninety cluster init`";
/// Bed holds last ten minutes: long enough for the burst, short enough to lapse after.
const HOLD_TTL_MS: u64 = 10 * 60_000;
/// Most regions of a `--layout` a local demo runs (each region is a Raft group with its own
/// threads in every node process).
pub const LAYOUT_REGIONS_MAX: usize = 8;
/// The metadata header naming a call's region (`server::region_router`).
const REGION_HEADER: &str = "ninety-region";

/// What the demo does.
#[derive(Clone, Debug)]
pub struct Options {
    pub nodes: usize,
    pub clients: usize,
    pub holds: usize,
    pub keep_running: bool,
    pub keep_data: bool,
    /// Serve clients on `127.0.0.1:base_port` and up (peers on `base_port +
    /// PEER_PORT_OFFSET` and up) instead of free ephemeral ports.
    pub base_port: Option<u16>,
    /// Run the short GBA peak-hour replay after the burst and write its report.
    pub replay: bool,
    /// The regions every node hosts (`--layout`); empty: the GBA region alone, as a
    /// node without `[[regions]]`.
    pub regions: Vec<String>,
}

/// The regions of layout `name` for the demo, or why not (names the flag).
pub fn layout_regions(name: &str) -> Result<Vec<String>, String> {
    let plans = ninety_engine::layout::layout(name)
        .ok_or_else(|| format!("--layout {name}: unknown layout (south or china)"))?;
    if plans.len() > LAYOUT_REGIONS_MAX {
        return Err(format!(
            "--layout {name}: {} regions are more than a local demo runs (at most \
             {LAYOUT_REGIONS_MAX}); use --layout south",
            plans.len()
        ));
    }
    Ok(plans.into_iter().map(|p| p.id).collect())
}

/// One region the demo drives: its id in the `ninety-region` header (`None`: the nodes'
/// only region, no header) and the preset it is built from.
#[derive(Clone, Debug)]
struct Target {
    header: Option<tonic::metadata::AsciiMetadataValue>,
    preset: Preset,
}

impl Target {
    /// The demo's regions: the layout's, or the GBA region alone.
    fn all(opts: &Options) -> anyhow::Result<Vec<Target>> {
        if opts.regions.is_empty() {
            let header = None;
            return Ok(vec![Target {
                header,
                preset: Preset::Gba,
            }]);
        }
        opts.regions
            .iter()
            .map(|id| {
                let preset = Preset::bootable(id).with_context(|| format!("region {id}"))?;
                let header = Some(id.parse().with_context(|| format!("region {id}"))?);
                Ok(Target { header, preset })
            })
            .collect()
    }

    /// `prefix` and the region's id when the demo runs several regions; empty otherwise.
    fn named(&self, prefix: &str) -> String {
        let id = self.header.as_ref().and_then(|h| h.to_str().ok());
        id.map(|id| format!("{prefix}{id}")).unwrap_or_default()
    }

    /// `message` as a request naming the region.
    fn request<T>(&self, message: T) -> tonic::Request<T> {
        let mut r = tonic::Request::new(message);
        if let Some(h) = &self.header {
            r.metadata_mut().insert(REGION_HEADER, h.clone());
        }
        r
    }
}

/// The child processes; killed (SIGTERM, then SIGKILL) when dropped, so no exit path,
/// error or Ctrl-C leaves a node running.
struct Nodes {
    children: Vec<Child>,
    addrs: Vec<String>,
    dir: PathBuf,
    keep_data: bool,
}

impl Nodes {
    /// Fails if a node has exited: it would never answer, and its log says why.
    fn check_alive(&mut self) -> anyhow::Result<()> {
        for (i, child) in self.children.iter_mut().enumerate() {
            if let Ok(Some(status)) = child.try_wait() {
                let log = self.dir.join(format!("node{}.log", i + 1));
                self.keep_data = true;
                bail!("node {} exited ({status}); see {}", i + 1, log.display());
            }
        }
        Ok(())
    }
}

impl Drop for Nodes {
    fn drop(&mut self) {
        for child in &mut self.children {
            let _ = Command::new("kill")
                .args(["-TERM", &child.id().to_string()])
                .status();
        }
        let deadline = Instant::now() + Duration::from_millis(STOP_WAIT_MS);
        for child in &mut self.children {
            while Instant::now() < deadline {
                if let Ok(Some(_)) = child.try_wait() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
        if !self.keep_data {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

/// Runs the demo until done or Ctrl-C.
pub async fn run(opts: Options) -> anyhow::Result<()> {
    let mut nodes = start(&opts)?;
    let result = tokio::select! {
        r = drive(&opts, &mut nodes) => r,
        _ = tokio::signal::ctrl_c() => {
            println!("\ninterrupted: stopping the nodes");
            Ok(())
        }
    };
    drop(nodes);
    println!("all nodes stopped");
    result
}

fn start(opts: &Options) -> anyhow::Result<Nodes> {
    let exe = std::env::current_exe().context("locating the ninety binary")?;
    let stamp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis())
        .unwrap_or(0);
    let dir = std::env::temp_dir().join(format!("ninety-demo-{}-{stamp}", std::process::id()));
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    // Client addresses, then peer addresses (a node serves each on its own listener).
    let (addrs, peer_addrs) = match opts.base_port {
        Some(base) => {
            let peer_base = base.checked_add(PEER_PORT_OFFSET).with_context(|| {
                format!("--base-port {base}: the peer ports (+{PEER_PORT_OFFSET}) are above 65535")
            })?;
            (
                fixed_addrs(base, opts.nodes)?,
                fixed_addrs(peer_base, opts.nodes)?,
            )
        }
        None => {
            let both = free_addrs(2 * opts.nodes)?;
            let (clients, peers) = both.split_at(opts.nodes);
            (clients.to_vec(), peers.to_vec())
        }
    };
    let mut nodes = Nodes {
        children: Vec::new(),
        addrs: addrs.clone(),
        dir: dir.clone(),
        keep_data: opts.keep_data,
    };
    for (i, addr) in addrs.iter().enumerate() {
        let book = (addrs.as_slice(), peer_addrs.as_slice());
        let config = write_config(&dir, i as u64 + 1, book, &opts.regions)?;
        let log = std::fs::File::create(dir.join(format!("node{}.log", i + 1)))?;
        let child = Command::new(&exe)
            .args(["node", "--config"])
            .arg(&config)
            .env(
                "RUST_LOG",
                std::env::var("RUST_LOG").unwrap_or_else(|_| "info".into()),
            )
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .with_context(|| format!("starting node {}", i + 1))?;
        nodes.children.push(child);
        println!(
            "node {} serving clients on {addr}, peers on {}",
            i + 1,
            peer_addrs[i]
        );
    }
    println!("data and logs in {}", dir.display());
    println!("{INSECURE_NOTICE}");
    Ok(nodes)
}

/// `127.0.0.1:base`, `base + 1`, ...: known addresses for examples and other tools.
fn fixed_addrs(base: u16, n: usize) -> anyhow::Result<Vec<String>> {
    (0..n)
        .map(|i| {
            let port = u16::try_from(usize::from(base) + i)
                .ok()
                .filter(|p| *p > 0)
                .with_context(|| format!("--base-port {base}: port {i} above 65535"))?;
            // Fail early and clearly if something already listens there.
            std::net::TcpListener::bind(("127.0.0.1", port))
                .with_context(|| format!("port {port} is in use (--base-port {base})"))?;
            Ok(format!("127.0.0.1:{port}"))
        })
        .collect()
}

fn free_addrs(n: usize) -> anyhow::Result<Vec<String>> {
    // Bind them all before releasing any, so the ports differ.
    let listeners: Vec<std::net::TcpListener> = (0..n)
        .map(|_| std::net::TcpListener::bind("127.0.0.1:0"))
        .collect::<Result<_, _>>()?;
    listeners
        .iter()
        .map(|l| Ok(l.local_addr()?.to_string()))
        .collect()
}

/// The demo cluster's id: one per demo directory (a temp dir), the same for every node of
/// it; two FNV-1a hashes of the path make its 128 bits.
fn demo_cluster_id(dir: &Path) -> String {
    let fnv = |basis: u64| {
        dir.display().to_string().bytes().fold(basis, |h, b| {
            (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
        })
    };
    format!(
        "{:016x}{:016x}",
        fnv(0xcbf2_9ce4_8422_2325),
        fnv(0x6c62_272e_07bb_0142)
    )
}

/// Node `id`'s config in `dir`: the address book `(client, peer addresses)`, and the
/// `regions` it hosts (none: the GBA region alone).
fn write_config(
    dir: &Path,
    id: u64,
    (addrs, peer_addrs): (&[String], &[String]),
    regions: &[String],
) -> anyhow::Result<PathBuf> {
    // Insecure on loopback: no TLS, and with no [auth] every caller is anonymous with every
    // role, so the demo's own clients need no credentials (`start` says so).
    let mut text = format!(
        "id = {id}\nlisten = \"{}\"\npeer_listen = \"{}\"\ndata_dir = \"{}\"\nregion = \"gba\"\n\
         init = true\ninsecure = true\ncluster_id = \"{}\"\n\n[peers]\n",
        addrs[id as usize - 1],
        peer_addrs[id as usize - 1],
        dir.join(format!("node{id}")).display(),
        demo_cluster_id(dir),
    );
    for (i, (a, p)) in addrs.iter().zip(peer_addrs).enumerate() {
        text.push_str(&format!(
            "\"{}\" = {{ peer = \"{p}\", client = \"{a}\" }}\n",
            i + 1
        ));
    }
    for r in regions {
        text.push_str(&format!("\n[[regions]]\nid = \"{r}\"\n"));
    }
    let path = dir.join(format!("node{id}.toml"));
    std::fs::write(&path, text)?;
    Ok(path)
}

async fn drive(opts: &Options, nodes: &mut Nodes) -> anyhow::Result<()> {
    let targets = Target::all(opts)?;
    let leader = wait_for_leader(nodes, &targets[0]).await?;
    let what = match targets.len() {
        1 => "the GBA region".to_string(),
        n => format!("{n} regions ({})", opts.regions.join(", ")),
    };
    println!("leader elected: {leader}; loading {what} through the log...");
    let t0 = Instant::now();
    let mut wards = Vec::with_capacity(targets.len());
    for t in &targets {
        let region = generate::region(t.preset, generate::DEFAULT_SEED);
        let last = region
            .wards
            .last()
            .map(|w| (w.ward.hospital.0, w.ward.id.0));
        wait_for_region(nodes, t, last.unwrap_or((1, 1))).await?;
        println!(
            "region{} loaded in {:.1} s",
            t.named(" "),
            t0.elapsed().as_secs_f64()
        );
        wards.push(
            region
                .wards
                .iter()
                .map(|w| w.ward.id.0)
                .collect::<Vec<u32>>(),
        );
    }
    let reports = bursts(opts, nodes, &targets, &wards).await?;
    for (t, report) in targets.iter().zip(&reports) {
        report.print(&t.named(" in "));
    }
    for t in &targets {
        check_replicas(&nodes.addrs, t).await?;
    }
    if opts.replay {
        let stamp = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        let dir = std::env::temp_dir().join(format!("ninety-demo-report-{stamp}"));
        match crate::sim_replay::demo_replay(&nodes.addrs, &dir).await {
            Ok(page) => println!("peak-hour report: {}", page.display()),
            Err(e) => println!("peak-hour replay failed: {e}"),
        }
    }
    print_hints(&nodes.addrs[0], &targets, wards[0][0]);
    if opts.keep_running {
        println!("\nthe cluster keeps running; Ctrl-C stops it");
        loop {
            nodes.check_alive()?;
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }
    Ok(())
}

/// Where to point a client: `grpcurl` lines for node `a` (with the region header of the
/// last region when there are several).
fn print_hints(a: &str, targets: &[Target], ward: u32) {
    println!("\npoint a client at any node, e.g.:");
    println!("  grpcurl -plaintext {a} list");
    println!("  grpcurl -plaintext -d '{{}}' {a} ninety.v1.Admin/ClusterStatus");
    println!(
        "  grpcurl -plaintext -d '{{\"request_id\":\"demo-1\",\"ward_id\":{ward},\"patient_ref\":\"{:032x}\",\"ttl_ms\":600000}}' {a} ninety.v1.BedHolds/HoldBed",
        7
    );
    if let Some(last) = targets.last().filter(|_| targets.len() > 1) {
        println!(
            "  grpcurl -plaintext -H '{REGION_HEADER}: {}' -d '{{}}' {a} ninety.v1.Admin/ClusterStatus   (calls without the header go to {})",
            last.named(""),
            targets[0].named("")
        );
    }
}

async fn admin(addr: &str) -> anyhow::Result<AdminClient<Channel>> {
    Ok(AdminClient::connect(format!("http://{addr}")).await?)
}

async fn beds(addr: &str) -> anyhow::Result<BedHoldsClient<Channel>> {
    Ok(BedHoldsClient::connect(format!("http://{addr}")).await?)
}

/// The client address of `target`'s leader, once one is elected.
async fn wait_for_leader(nodes: &mut Nodes, target: &Target) -> anyhow::Result<String> {
    let deadline = Instant::now() + Duration::from_millis(LEADER_WAIT_MS);
    let addrs = nodes.addrs.clone();
    while Instant::now() < deadline {
        nodes.check_alive()?;
        for addr in &addrs {
            let Ok(mut c) = admin(addr).await else {
                continue;
            };
            let ask = target.request(ClusterStatusRequest::default());
            if let Ok(s) = c.cluster_status(ask).await {
                let s = s.into_inner();
                if s.leader_id != 0 {
                    return Ok(addrs
                        .get(s.leader_id as usize - 1)
                        .cloned()
                        .unwrap_or_else(|| addr.clone()));
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    bail!(
        "no leader{} within {LEADER_WAIT_MS} ms; see the node logs",
        target.named(" of ")
    )
}

/// The region is loaded once the last ward of the file is visible (the import is one command).
async fn wait_for_region(
    nodes: &mut Nodes,
    target: &Target,
    (hospital, ward): (u32, u32),
) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_millis(REGION_WAIT_MS);
    let addrs = nodes.addrs.clone();
    while Instant::now() < deadline {
        nodes.check_alive()?;
        for addr in &addrs {
            let Ok(mut c) = beds(addr).await else {
                continue;
            };
            let req = target.request(WardAvailabilityRequest {
                hospital_id: hospital,
                ward_ids: vec![ward],
                ..Default::default()
            });
            if let Ok(r) = c.ward_availability(req).await {
                if !r.into_inner().wards.is_empty() {
                    return Ok(());
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    bail!(
        "the region{} did not load within {REGION_WAIT_MS} ms",
        target.named(" ")
    )
}

/// One burst per region, all at once, each through its region's leader; a report each.
async fn bursts(
    opts: &Options,
    nodes: &mut Nodes,
    targets: &[Target],
    wards: &[Vec<u32>],
) -> anyhow::Result<Vec<Report>> {
    let mut leaders = Vec::with_capacity(targets.len());
    for t in targets {
        leaders.push(wait_for_leader(nodes, t).await?);
    }
    let mut runs = Vec::with_capacity(targets.len());
    for ((t, leader), wards) in targets.iter().zip(leaders).zip(wards) {
        let (opts, wards, t) = (opts.clone(), wards.clone(), t.clone());
        runs.push(tokio::spawn(async move {
            burst(&opts, &leader, &wards, &t).await
        }));
    }
    let mut reports = Vec::with_capacity(runs.len());
    for run in runs {
        reports.push(run.await??);
    }
    Ok(reports)
}

/// What the burst did.
#[derive(Default)]
struct Report {
    latencies_us: BTreeMap<&'static str, Vec<u64>>,
    outcomes: BTreeMap<(&'static str, String), u64>,
    /// One message per refused kind, so a reader sees why.
    samples: BTreeMap<(&'static str, String), String>,
    elapsed: Duration,
}

impl Report {
    fn record(&mut self, op: &'static str, started: Instant, result: &Result<(), tonic::Status>) {
        let us = started.elapsed().as_micros() as u64;
        self.latencies_us.entry(op).or_default().push(us);
        let code = match result {
            Ok(()) => "OK".to_string(),
            Err(s) => format!("{:?}", s.code()),
        };
        if let Err(s) = result {
            self.samples
                .entry((op, code.clone()))
                .or_insert_with(|| s.message().to_string());
        }
        *self.outcomes.entry((op, code)).or_default() += 1;
    }

    fn merge(&mut self, other: Report) {
        for (op, v) in other.latencies_us {
            self.latencies_us.entry(op).or_default().extend(v);
        }
        for (k, n) in other.outcomes {
            *self.outcomes.entry(k).or_default() += n;
        }
        for (k, m) in other.samples {
            self.samples.entry(k).or_insert(m);
        }
    }

    /// Prints the burst's summary; `region` (" in yunnan", or empty) says whose.
    fn print(&self, region: &str) {
        let total: usize = self.latencies_us.values().map(Vec::len).sum();
        if total == 0 {
            println!("\nburst{region}: skipped (--holds 0)");
            return;
        }
        let secs = self.elapsed.as_secs_f64().max(1e-9);
        println!(
            "\nburst{region}: {total} operations in {secs:.2} s = {:.0} ops/s",
            total as f64 / secs
        );
        println!(
            "{:<10} {:>8} {:>10} {:>10} {:>10}",
            "operation", "count", "p50 ms", "p99 ms", "max ms"
        );
        for (op, v) in &self.latencies_us {
            let mut v = v.clone();
            v.sort_unstable();
            let q = |p: f64| v[((v.len() as f64 - 1.0) * p) as usize] as f64 / 1000.0;
            println!(
                "{op:<10} {:>8} {:>10.2} {:>10.2} {:>10.2}",
                v.len(),
                q(0.5),
                q(0.99),
                q(1.0)
            );
        }
        println!("\n{:<10} {:<22} {:>8}", "operation", "answer", "count");
        for ((op, code), n) in &self.outcomes {
            let why = self.samples.get(&(*op, code.clone()));
            let why = why.map(|m| format!("  e.g. {m}")).unwrap_or_default();
            println!("{op:<10} {code:<22} {n:>8}{why}");
        }
    }
}

/// The request id of step `op` of the demo's `n`-th hold in run `run`: text, hashed by the
/// server (SHA-256, `docs/api.md` "Request ids"), so ids of every run, hold and step differ.
fn demo_request_id(run: u128, n: usize, op: &str) -> String {
    format!("demo-{run:x}-{n}-{op}")
}

/// Concurrent clients: each holds a bed in wards taken in turn, then confirms (two in five)
/// or releases it; every call names `target`'s region.
async fn burst(
    opts: &Options,
    leader: &str,
    wards: &[u32],
    target: &Target,
) -> anyhow::Result<Report> {
    let run = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    let per_client = opts.holds.div_ceil(opts.clients.max(1));
    let started = Instant::now();
    let mut tasks = Vec::new();
    for c in 0..opts.clients {
        let client = BurstClient {
            beds: beds(leader).await?,
            target: target.clone(),
            wards: wards.to_vec(),
            run,
        };
        let first = c * per_client;
        tasks.push(tokio::spawn(client.run(first..first + per_client)));
    }
    let mut report = Report::default();
    for t in tasks {
        report.merge(t.await?);
    }
    report.elapsed = started.elapsed();
    Ok(report)
}

/// One client of a burst.
struct BurstClient {
    beds: BedHoldsClient<Channel>,
    target: Target,
    wards: Vec<u32>,
    /// The burst's run number (in its request ids).
    run: u128,
}

impl BurstClient {
    /// Holds `holds` (the demo's hold numbers) one after the other, each confirmed or
    /// released.
    async fn run(mut self, holds: std::ops::Range<usize>) -> Report {
        let mut report = Report::default();
        for n in holds {
            let id = |op: &str| demo_request_id(self.run, n, op);
            let t = Instant::now();
            let held = self
                .beds
                .hold_bed(self.target.request(HoldBedRequest {
                    request_id: id("hold"),
                    ward_id: self.wards[n % self.wards.len()],
                    patient_ref: format!("{:032x}", (self.run << 20) + n as u128),
                    ttl_ms: HOLD_TTL_MS,
                    ..Default::default()
                }))
                .await;
            let hold = held
                .as_ref()
                .ok()
                .and_then(|r| r.get_ref().hold.as_ref())
                .map(|h| h.hold_id);
            report.record("hold", t, &held.map(drop));
            let Some(hold_id) = hold else { continue };
            let t = Instant::now();
            if n % 5 < 2 {
                let confirm = ConfirmHoldRequest {
                    request_id: id("confirm"),
                    hold_id,
                };
                let r = self.beds.confirm_hold(self.target.request(confirm)).await;
                report.record("confirm", t, &r.map(drop));
            } else {
                let release = ReleaseHoldRequest {
                    request_id: id("release"),
                    hold_id,
                    reason: "demo".into(),
                };
                let r = self.beds.release_hold(self.target.request(release)).await;
                report.record("release", t, &r.map(drop));
            }
        }
        report
    }
}

/// One node's (id, applied index, state hash) in `target`'s region.
async fn replica_status(addr: String, target: Target) -> anyhow::Result<(u64, u64, Vec<u8>)> {
    let ask = target.request(ClusterStatusRequest {
        with_state_hash: true,
    });
    let s = admin(&addr).await?.cluster_status(ask).await?.into_inner();
    Ok((s.node_id, s.applied_index, s.state_hash))
}

/// Waits until every node has applied the same index of `target`'s region, then compares
/// state hashes.
async fn check_replicas(addrs: &[String], target: &Target) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_millis(CONVERGE_WAIT_MS);
    loop {
        // Every node asked at once: one after the other, a loaded machine can take longer
        // than the second between two log-time ticks, and the indexes never line up.
        let asks: Vec<_> = addrs
            .iter()
            .map(|addr| tokio::spawn(replica_status(addr.clone(), target.clone())))
            .collect();
        let mut seen = Vec::new();
        for ask in asks {
            seen.push(ask.await??);
        }
        let same_index = seen.windows(2).all(|w| w[0].1 == w[1].1);
        if same_index || Instant::now() >= deadline {
            return report_replicas(&seen, same_index, &target.named(" of "));
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Prints the replicas' (id, applied index, hash) of one region (`of`: " of yunnan", or
/// empty) and whether they agree; an error if they disagree at the same index.
fn report_replicas(seen: &[(u64, u64, Vec<u8>)], same_index: bool, of: &str) -> anyhow::Result<()> {
    println!(
        "\n{:<6} {:>14} {:<18}{of}",
        "node", "applied index", "state hash"
    );
    for (id, index, hash) in seen {
        let h: String = hash.iter().take(8).map(|b| format!("{b:02x}")).collect();
        println!("{id:<6} {index:>14} {h:<18}");
    }
    if same_index && seen.windows(2).all(|w| w[0].2 == w[1].2) {
        println!("every replica{of} holds the same state");
        return Ok(());
    }
    if same_index {
        bail!("replicas{of} at the same index disagree: this is a bug, please report it");
    }
    println!("replicas{of} still catching up after {CONVERGE_WAIT_MS} ms (a follower may lag)");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The demo once reported `hold InvalidArgument … request id … was already used for a
    /// different command`: `demo-<run>-602-release` and `demo-<run>-689-release` hashed to
    /// one id. Every id of a large demo must map to its own 128-bit id.
    #[test]
    fn demo_request_ids_never_collide() {
        let mut seen = std::collections::HashSet::new();
        let runs = [0u128, 0x187a_3c4f_9e2b_1d00, u128::from(u64::MAX)];
        let holds = 20_000;
        for run in runs {
            for n in 0..holds {
                for op in ["hold", "confirm", "release"] {
                    let text = demo_request_id(run, n, op);
                    let id = ninety_engine::RequestId::from_text(&text).expect("valid id");
                    assert!(seen.insert(id), "{text} collides");
                }
            }
        }
        assert_eq!(seen.len(), runs.len() * holds * 3);
    }
}
