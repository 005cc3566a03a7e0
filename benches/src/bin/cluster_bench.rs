//! The cluster benchmark: three real `ninety node` processes on loopback (fsync on, the GBA
//! region), closed-loop clients at several concurrencies doing the hold → confirm/release mix
//! with single unary calls (`BedHolds.HoldBed`, `ConfirmHold`, `ReleaseHold`), with batched
//! calls (`HoldBeds` + `ResolveHolds`, `--batch` items each), and an empty RPC
//! (`grpc.health.v1.Health/Check`) that shows this machine's per-call limit.
//!
//! ```sh
//! cargo build --release -p ninety
//! cargo run --release -p ninety-benches --bin cluster_bench -- \
//!     [--clients 1,16,64,256] [--seconds 10] [--mode single|batch|empty|all] [--batch 64] \
//!     [--json out.json] [--ninety-bin target/release/ninety] [--security tls|insecure]
//! ```
//!
//! The `ninety` binary is found next to this one (the same target directory) unless
//! `--ninety-bin` names it. Every call goes through `ninety_client::Client`, sent straight to
//! the leader. Prints ops/s and p50/p99/p999 latency per row (hdrhistogram) and, with
//! `--json`, writes every figure plus the machine (cores, CPU, load average) to a file. The
//! node processes are stopped on every exit path (a Drop guard; Ctrl-C included).
//!
//! Watch fan-out (issue 14): `--watchers 0,100` runs every row once per number of change-feed
//! watchers. Each watcher is its own `Watch.Watch` stream (every kind, from now on) opened
//! before the row's warm-up on a follower (`--watch-on leader` to load the leader instead),
//! over `--watch-connections` shared HTTP/2 connections. The row then also reports the events
//! delivered per second to all watchers and to each, the age of an event when it arrives
//! (receive time minus the entry's log time: leader's stamp, same machine) at p50/p99, and
//! the watchers cut (`RESOURCE_EXHAUSTED`: more than 4,096 events behind; each resumes where
//! it was, or from now if the node no longer keeps that index). Compare the rows with 0 and
//! 100 watchers for the cost: write ops/s and the nodes' CPU seconds. For the figure
//! "events/s to 100 watchers" of docs/performance.md:
//!
//! ```sh
//! cargo run --release -p ninety-benches --bin cluster_bench -- \
//!     --mode batch --clients 16 --watchers 0,100 --seconds 20 --json watch.json
//! ```
//!
//! Several regions (issue 17): `--regions N` has the three nodes serve the first N regions of
//! the `south` layout, then of `china` (`ninety_benches::regions`; three replicas each,
//! leaders spread over the nodes), and spreads each row's clients evenly over the regions,
//! each region's clients on their own connections to its leader, naming it in the
//! `ninety-region` header (`Client::with_region`), holding beds in its wards. For the
//! figures "Regions on one machine" of docs/performance.md:
//!
//! ```sh
//! for n in 1 2 4 8; do
//!   cargo run --release -p ninety-benches --bin cluster_bench -- --regions $n \
//!       --mode single --clients 64 --node-option 'schedule_horizon_days = 0' --json r$n.json
//! done
//! ```
//!
//! Security (issue 12): `--security tls` (the default) makes a CA, node certificates and a
//! bearer token (roles referral and reader) in the bench dir, and every call goes over TLS
//! with the token; `--security insecure` starts the nodes with `insecure = true` (plain
//! HTTP/2, anonymous callers with every role). The health check is public in both.

use clap::Parser;
use hdrhistogram::Histogram;
use ninety_client::{pb, Client, ClientTls, Config};
use ninety_cluster::security::certs::{self, Ca};
use ninety_engine::generate::Preset;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tonic_health::pb::health_client::HealthClient;
use tonic_health::pb::HealthCheckRequest;

#[derive(Parser, Debug, Clone)]
#[command(about = "Cluster benchmark: 3 ninety nodes on loopback, closed-loop clients")]
struct Args {
    /// Concurrencies to run, comma separated.
    #[arg(long, value_delimiter = ',', default_value = "1,16,64,256")]
    clients: Vec<usize>,
    /// Measured seconds per row.
    #[arg(long, default_value_t = 10)]
    seconds: u64,
    /// Unmeasured seconds before each row.
    #[arg(long, default_value_t = 2)]
    warmup: u64,
    /// single, batch, empty or all.
    #[arg(long, default_value = "all")]
    mode: String,
    /// Items per batched call.
    #[arg(long, default_value_t = 64)]
    batch: usize,
    /// Percent of holds confirmed (the rest released); confirmed beds stay occupied.
    #[arg(long, default_value_t = 1)]
    confirm_percent: u64,
    /// Hold on the first this many staffed wards only (0: every one). A few wards make the
    /// contended mix (clients race for the same beds; `benches/peers` has the same flag).
    #[arg(long, default_value_t = 0)]
    wards: usize,
    /// HTTP/2 connections to the leader, shared by the clients (at most one per client).
    #[arg(long, default_value_t = 4)]
    connections: usize,
    /// Hold ttl, ms: a hold whose confirm/release failed frees its bed after this.
    #[arg(long, default_value_t = 60_000)]
    ttl_ms: u64,
    /// The nodes' `max_pending_proposals` (0: the node's default, 8192). Every batch item is
    /// one proposal: 256 clients × 64 items need more than the default.
    #[arg(long, default_value_t = 65_536)]
    max_pending_proposals: usize,
    /// A top-level line added to every node's config, as TOML (`key = value`); repeatable.
    /// E.g. `--node-option 'schedule_horizon_days = 1'`.
    #[arg(long)]
    node_option: Vec<String>,
    /// Serve Prometheus metrics on every node (`metrics_listen`) and scrape all three every
    /// this many ms during the run, as a Prometheus server would (0: metrics off, the
    /// nodes' default). For the cost of metrics (issue 15).
    #[arg(long, default_value_t = 0)]
    metrics_scrape_ms: u64,
    /// Numbers of change-feed watchers to run each row with, comma separated (0: none).
    #[arg(long, value_delimiter = ',', default_value = "0")]
    watchers: Vec<usize>,
    /// The node the watchers watch: a follower, or the leader.
    #[arg(long, default_value = "follower", value_parser = ["follower", "leader"])]
    watch_on: String,
    /// HTTP/2 connections the watchers share (at most one per watcher).
    #[arg(long, default_value_t = 4)]
    watch_connections: usize,
    /// Write the figures as JSON here.
    #[arg(long)]
    json: Option<PathBuf>,
    /// The `ninety` binary (default: next to this one).
    #[arg(long)]
    ninety_bin: Option<PathBuf>,
    /// Keep the nodes' data and logs.
    #[arg(long)]
    keep_data: bool,
    /// Serve this many regions (`[[regions]]`: the `south` layout's, then `china`'s) and
    /// spread the clients evenly over them; 0: one region in the node's config
    /// (`region = "gba"`), as before regions.
    #[arg(long, default_value_t = 0)]
    regions: usize,
    /// tls: a CA, node certificates and a bearer token (roles referral, reader) made in the
    /// bench dir, every call over TLS with the token; insecure: `insecure = true` (plain
    /// HTTP/2, anonymous callers).
    #[arg(long, default_value = "tls", value_parser = ["tls", "insecure"])]
    security: String,
}

/// The node processes; SIGTERM then SIGKILL when dropped, so no exit path leaves one running.
struct Nodes {
    children: Vec<Child>,
    addrs: Vec<String>,
    dir: PathBuf,
    keep: bool,
    /// How the bench's clients reach the nodes (TLS and token, or neither).
    client: Config,
    /// The nodes' metrics addresses (`--metrics-scrape-ms`).
    metrics: Vec<String>,
}

impl Drop for Nodes {
    fn drop(&mut self) {
        for c in &mut self.children {
            let _ = Command::new("kill")
                .args(["-TERM", &c.id().to_string()])
                .status();
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        for c in &mut self.children {
            while Instant::now() < deadline {
                if let Ok(Some(_)) = c.try_wait() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = c.kill();
            let _ = c.wait();
        }
        if self.keep {
            eprintln!("data and logs kept in {}", self.dir.display());
        } else {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

impl Nodes {
    fn check_alive(&mut self) -> anyhow::Result<()> {
        for (i, c) in self.children.iter_mut().enumerate() {
            if let Ok(Some(st)) = c.try_wait() {
                self.keep = true;
                anyhow::bail!(
                    "node {} exited ({st}); see {}",
                    i + 1,
                    self.dir.join(format!("node{}.log", i + 1)).display()
                );
            }
        }
        Ok(())
    }

    /// CPU seconds (user + system) each node has used so far.
    fn cpu(&self) -> Vec<f64> {
        self.children
            .iter()
            .map(|c| cpu_seconds(&format!("/proc/{}/stat", c.id())))
            .collect()
    }
}

fn cpu_seconds(stat: &str) -> f64 {
    let Ok(s) = std::fs::read_to_string(stat) else {
        return 0.0;
    };
    // Fields after the command name (which may hold spaces): utime is 14th, stime 15th.
    let rest = s.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    (ticks(11) + ticks(12)) / 100.0
}

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

fn cpu_model() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, v)| v.trim().to_string())
        })
        .unwrap_or_default()
}

fn ninety_bin(args: &Args) -> anyhow::Result<PathBuf> {
    if let Some(p) = &args.ninety_bin {
        anyhow::ensure!(p.exists(), "--ninety-bin {}: no such file", p.display());
        return Ok(p.clone());
    }
    let me = std::env::current_exe()?;
    let dir = me.parent().unwrap_or(Path::new("."));
    let p = dir.join("ninety");
    anyhow::ensure!(
        p.exists(),
        "no ninety binary at {}: run `cargo build --release -p ninety` first (same target dir), or pass --ninety-bin",
        p.display()
    );
    Ok(p)
}

/// What the node configs say about security, and how the bench's clients call the nodes.
struct Security {
    /// Top-level keys of every node config (before `[peers]`).
    keys: String,
    /// Tables of each node's config (after `[peers]`), by node index.
    tables: Vec<String>,
    client: Config,
}

fn client_config(tls: Option<ClientTls>, token: Option<String>) -> Config {
    Config {
        attempt_timeout: Duration::from_secs(10),
        total_timeout: Duration::from_secs(30),
        tls,
        token,
        ..Config::default()
    }
}

fn toml_path(p: &Path) -> String {
    format!("{:?}", p.display().to_string())
}

/// `--security tls`: a CA, a certificate per node (127.0.0.1) and a bearer token with the
/// roles the bench needs (referral for holds, reader for status and availability), written
/// to `dir`; `insecure`: `insecure = true` and nothing else.
fn security(mode: &str, dir: &Path, n: usize) -> anyhow::Result<Security> {
    if mode == "insecure" {
        return Ok(Security {
            keys: "insecure = true\n".into(),
            tables: vec![String::new(); n],
            client: client_config(None, None),
        });
    }
    let err = |e: ninety_cluster::Error| anyhow::anyhow!("bench certificates: {e}");
    let ca = Ca::new("bench").map_err(err)?;
    let ca_path = dir.join("ca.pem");
    std::fs::write(&ca_path, &ca.pem.cert)?;
    let token = certs::new_token().map_err(err)?;
    std::fs::write(dir.join("bench.token"), &token)?;
    let stanza = format!(
        "[[auth.tokens]]\nname = \"bench\"\nroles = [\"referral\", \"reader\"]\nsha256 = \"{}\"\n",
        certs::token_sha256(&token)
    );
    let mut tables = Vec::with_capacity(n);
    for id in 1..=n as u64 {
        let pem = ca.node_cert(id, &["127.0.0.1".to_string()]).map_err(err)?;
        let (cert, key) = (
            dir.join(format!("node{id}.pem")),
            dir.join(format!("node{id}.key")),
        );
        std::fs::write(&cert, &pem.cert)?;
        std::fs::write(&key, &pem.key)?;
        tables.push(format!(
            "\n[tls]\nca = {}\ncert = {}\nkey = {}\n\n{stanza}",
            toml_path(&ca_path),
            toml_path(&cert),
            toml_path(&key)
        ));
    }
    let tls = ClientTls {
        ca_pem: ca.pem.cert.clone(),
        identity: None,
        domain: None,
    };
    Ok(Security {
        keys: String::new(),
        tables,
        client: client_config(Some(tls), Some(token)),
    })
}

/// A fresh directory for the nodes' data, logs and (with TLS) certificates.
fn bench_dir() -> anyhow::Result<PathBuf> {
    let stamp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_millis();
    let dir = std::env::temp_dir().join(format!("ninety-bench-{}-{stamp}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}

/// Three client ports, then three peer ports: a node serves each on its own listener; the
/// three metrics ports after them are `metrics_addrs`.
fn free_addrs() -> anyhow::Result<(Vec<String>, Vec<String>)> {
    let listeners: Vec<std::net::TcpListener> = (0..9)
        .map(|_| std::net::TcpListener::bind("127.0.0.1:0"))
        .collect::<Result<_, _>>()?;
    let mut addrs: Vec<String> = listeners
        .iter()
        .map(|l| l.local_addr().map(|a| a.to_string()))
        .collect::<Result<_, _>>()?;
    drop(listeners);
    let peer_addrs = addrs.split_off(3);
    Ok((addrs, peer_addrs))
}

/// Node `i`'s config file text (`i` from 0).
fn node_toml(
    i: usize,
    args: &Args,
    dir: &Path,
    (addrs, peer_addrs): (&[String], &[String]),
    sec: &Security,
) -> String {
    let id = i + 1;
    let mut extra = if args.max_pending_proposals > 0 {
        format!("max_pending_proposals = {}\n", args.max_pending_proposals)
    } else {
        String::new()
    };
    for line in &args.node_option {
        extra.push_str(line);
        extra.push('\n');
    }
    if args.metrics_scrape_ms > 0 {
        extra.push_str(&format!("metrics_listen = \"{}\"\n", peer_addrs[3 + i]));
    }
    let mut text = format!(
        "id = {id}\nlisten = \"{}\"\npeer_listen = \"{}\"\ndata_dir = {}\n\
         init = true\ncluster_id = \"cluster-bench\"\n{extra}{}\n{}[peers]\n",
        addrs[i],
        peer_addrs[i],
        toml_path(&dir.join(format!("node{id}"))),
        sec.keys,
        regions_keys(args.regions, addrs.len())
    );
    for (j, (a, p)) in addrs.iter().zip(peer_addrs).enumerate() {
        text.push_str(&format!(
            "\"{}\" = {{ peer = \"{p}\", client = \"{a}\" }}\n",
            j + 1
        ));
    }
    text.push_str(&sec.tables[i]);
    text
}

/// What a node config says about its regions: `region = "gba"` (`n` = 0), or the
/// `[[regions]]` tables of `n` regions over `nodes` nodes.
fn regions_keys(n: usize, nodes: usize) -> String {
    let plans = ninety_benches::regions::plans(n).unwrap_or_default();
    if plans.is_empty() {
        return "region = \"gba\"\n".into();
    }
    let ids: Vec<u64> = (1..=nodes as u64).collect();
    ninety_benches::regions::regions_toml(&plans, &ids)
}

fn spawn_node(bin: &Path, dir: &Path, id: usize, text: &str) -> anyhow::Result<Child> {
    let cfg = dir.join(format!("node{id}.toml"));
    std::fs::write(&cfg, text)?;
    let log = std::fs::File::create(dir.join(format!("node{id}.log")))?;
    Ok(Command::new(bin)
        .args(["node", "--config"])
        .arg(&cfg)
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log)
        .spawn()?)
}

fn start(args: &Args) -> anyhow::Result<Nodes> {
    let bin = ninety_bin(args)?;
    let dir = bench_dir()?;
    let (addrs, peer_addrs) = free_addrs()?;
    let sec = security(&args.security, &dir, addrs.len())?;
    let mut nodes = Nodes {
        children: Vec::new(),
        addrs: addrs.clone(),
        dir: dir.clone(),
        keep: args.keep_data,
        client: sec.client.clone(),
        metrics: peer_addrs[3..].to_vec(),
    };
    for i in 0..addrs.len() {
        let text = node_toml(i, args, &dir, (&addrs, &peer_addrs), &sec);
        nodes.children.push(spawn_node(&bin, &dir, i + 1, &text)?);
    }
    eprintln!(
        "3 nodes on {} (binary {}, security {}), data in {}",
        addrs.join(", "),
        bin.display(),
        args.security,
        dir.display()
    );
    Ok(nodes)
}

fn client_of(addrs: &[String], config: &Config) -> anyhow::Result<Client> {
    Ok(Client::new(addrs, config.clone())?)
}

/// Waits for `region`'s leader and its last ward, returns the leader's address.
async fn wait_ready(nodes: &mut Nodes, region: &Served) -> anyhow::Result<String> {
    let deadline = Instant::now() + Duration::from_secs(300);
    let started = Instant::now();
    let last_ward = region.last;
    let client = region.client(&nodes.addrs, &nodes.client)?;
    loop {
        nodes.check_alive()?;
        anyhow::ensure!(
            Instant::now() < deadline,
            "the cluster was not ready in 300 s"
        );
        let Ok(st) = client
            .cluster_status(pb::ClusterStatusRequest::default())
            .await
        else {
            tokio::time::sleep(Duration::from_millis(200)).await;
            continue;
        };
        if st.leader_id == 0 {
            tokio::time::sleep(Duration::from_millis(200)).await;
            continue;
        }
        let leader = nodes.addrs[st.leader_id as usize - 1].clone();
        let r = region
            .client(std::slice::from_ref(&leader), &nodes.client)?
            .ward_availability(pb::WardAvailabilityRequest {
                hospital_id: last_ward.0,
                ward_ids: vec![last_ward.1],
                consistency: 0,
            })
            .await;
        if r.is_ok_and(|r| !r.wards.is_empty()) {
            settle(&client, deadline).await?;
            eprintln!(
                "{}: leader {leader}; the region and its schedules loaded through the log in {:.1} s",
                region.name(),
                started.elapsed().as_secs_f64()
            );
            return Ok(leader);
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// Entries a settled cluster may apply per second without a client (the leader's log-time
/// entries): more means the bootstrap is still loading.
const SETTLED_ENTRIES_PER_SECOND_MAX: u64 = 5;

/// Waits until the bootstrap has finished applying: the wards come first, then every
/// doctor's rolling schedule (14 days of slots for the GBA: seconds of apply), which must
/// not run inside a measured row.
async fn settle(client: &Client, deadline: Instant) -> anyhow::Result<()> {
    let applied = || async {
        client
            .cluster_status(pb::ClusterStatusRequest::default())
            .await
            .map(|s| s.applied_index)
    };
    let mut before = applied().await?;
    loop {
        anyhow::ensure!(
            Instant::now() < deadline,
            "the bootstrap did not settle in 300 s"
        );
        tokio::time::sleep(Duration::from_secs(1)).await;
        let now = applied().await?;
        if now.saturating_sub(before) <= SETTLED_ENTRIES_PER_SECOND_MAX {
            return Ok(());
        }
        before = now;
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Mode {
    Empty,
    Single,
    Batch,
}

impl Mode {
    fn name(self) -> &'static str {
        match self {
            Mode::Empty => "empty",
            Mode::Single => "single",
            Mode::Batch => "batch",
        }
    }
}

/// What one client task measured.
struct Tally {
    /// Latency of every call, µs.
    hist: Histogram<u64>,
    /// Latency of the single mode's granted `HoldBed` calls only, µs (the figure issue 13's
    /// goals and `benches/peers` compare).
    hold_hist: Histogram<u64>,
    calls: u64,
    /// Operations: calls (empty, single) or items (batch).
    ops: u64,
    holds: u64,
    errors: BTreeMap<String, u64>,
    /// Per `SLICE_MS` of the measured window, by completion time: calls completed and the
    /// slowest of them, µs (where in the row a tail comes from: a stall, or spread).
    slices: Vec<[u64; 2]>,
}

/// The width of one slice of a row's timeline (`Tally::slices`), ms.
const SLICE_MS: u128 = 250;

impl Tally {
    fn new() -> Tally {
        Tally {
            hist: Histogram::new_with_bounds(1, 120_000_000, 3).expect("histogram bounds"),
            hold_hist: Histogram::new_with_bounds(1, 120_000_000, 3).expect("histogram bounds"),
            calls: 0,
            ops: 0,
            holds: 0,
            errors: BTreeMap::new(),
            slices: Vec::new(),
        }
    }

    /// Counts a call of `us` µs that completed `since_start` into the measured window.
    fn slice(&mut self, since_start: Duration, us: u64) {
        let i = (since_start.as_millis() / SLICE_MS) as usize;
        if self.slices.len() <= i {
            self.slices.resize(i + 1, [0, 0]);
        }
        self.slices[i][0] += 1;
        self.slices[i][1] = self.slices[i][1].max(us);
    }

    fn merge(&mut self, o: Tally) {
        let _ = self.hist.add(&o.hist);
        let _ = self.hold_hist.add(&o.hold_hist);
        self.calls += o.calls;
        self.ops += o.ops;
        self.holds += o.holds;
        for (k, v) in o.errors {
            *self.errors.entry(k).or_default() += v;
        }
        if self.slices.len() < o.slices.len() {
            self.slices.resize(o.slices.len(), [0, 0]);
        }
        for (a, b) in self.slices.iter_mut().zip(o.slices) {
            a[0] += b[0];
            a[1] = a[1].max(b[1]);
        }
    }

    fn error(&mut self, what: String) {
        *self.errors.entry(what).or_default() += 1;
    }
}

/// Request ids: 32 hex digits, unique across runs (a nonce) and tasks.
struct Ids {
    nonce: u64,
    next: u64,
}

impl Ids {
    fn next(&mut self) -> String {
        self.next += 1;
        format!("{:016x}{:016x}", self.nonce, self.next)
    }
}

struct Shared {
    ttl_ms: u64,
    /// Each region's wards: client task `t` holds beds in region `t mod regions`.
    wards: Vec<Vec<u32>>,
    confirm_percent: u64,
    batch: usize,
    measure_from: Instant,
    until: Instant,
}

fn code(s: &tonic::Status) -> String {
    format!("{:?}", s.code())
}

fn rejection_name(r: &pb::Rejection) -> String {
    r.code()
        .as_str_name()
        .trim_start_matches("REJECTION_CODE_")
        .to_string()
}

async fn client_task(mode: Mode, client: Client, sh: Arc<Shared>, task: u64, nonce: u64) -> Tally {
    let mut t = Tally::new();
    let mut ids = Ids {
        nonce: nonce ^ (task << 40),
        next: 0,
    };
    let wards = &sh.wards[task as usize % sh.wards.len()];
    let mut ward = (task as usize * 7919) % wards.len();
    let mut n: u64 = task.wrapping_mul(0x9e37_79b9);
    let mut next_ward = || {
        ward = (ward + 1) % wards.len();
        wards[ward]
    };
    let hold_req = |ids: &mut Ids, w: u32, n: u64| pb::HoldBedRequest {
        request_id: ids.next(),
        ward_id: w,
        bed_id: 0,
        patient_ref: format!("{:016x}{:016x}", nonce, n),
        ttl_ms: sh.ttl_ms,
        ..Default::default()
    };
    while Instant::now() < sh.until {
        let started = Instant::now();
        let measured = started >= sh.measure_from;
        // Latency of every call; `ops` counts what succeeded (calls, or accepted items).
        let record = |t: &mut Tally, since: Instant, ops: u64| {
            if measured {
                let us = since.elapsed().as_micros().max(1) as u64;
                let _ = t.hist.record(us.min(120_000_000));
                t.slice(sh.measure_from.elapsed(), us);
                t.calls += 1;
                t.ops += ops;
            }
        };
        match mode {
            Mode::Empty => {
                let r = client
                    .call(
                        HealthCheckRequest {
                            service: String::new(),
                        },
                        |ch, req| async move { HealthClient::new(ch).check(req).await },
                    )
                    .await;
                record(&mut t, started, u64::from(r.is_ok()));
                if let Err(s) = r {
                    t.error(code(&s));
                }
            }
            Mode::Single => {
                n += 1;
                let r = client.hold_bed(hold_req(&mut ids, next_ward(), n)).await;
                record(&mut t, started, u64::from(r.is_ok()));
                let hold = match r {
                    Ok(r) => r.hold.map(|h| h.hold_id),
                    Err(s) => {
                        let why = ninety_client::rejection(&s)
                            .map(|r| rejection_name(&r))
                            .unwrap_or_else(|| code(&s));
                        t.error(format!("hold: {why}"));
                        None
                    }
                };
                let Some(hold_id) = hold else { continue };
                if measured {
                    t.holds += 1;
                    let us = started.elapsed().as_micros().max(1) as u64;
                    let _ = t.hold_hist.record(us.min(120_000_000));
                }
                let t1 = Instant::now();
                let r = if n % 100 < sh.confirm_percent {
                    client
                        .confirm_hold(pb::ConfirmHoldRequest {
                            request_id: ids.next(),
                            hold_id,
                        })
                        .await
                } else {
                    client
                        .release_hold(pb::ReleaseHoldRequest {
                            request_id: ids.next(),
                            hold_id,
                            reason: "bench".into(),
                        })
                        .await
                };
                record(&mut t, t1, u64::from(r.is_ok()));
                if let Err(s) = r {
                    t.error(format!("resolve: {}", code(&s)));
                }
            }
            Mode::Batch => {
                let items: Vec<pb::HoldBedRequest> = (0..sh.batch)
                    .map(|_| {
                        n += 1;
                        hold_req(&mut ids, next_ward(), n)
                    })
                    .collect();
                let r = client
                    .hold_beds(pb::HoldBedsRequest {
                        request_id: ids.next(),
                        items,
                    })
                    .await;
                let accepted = r.as_ref().map_or(0, |r| {
                    r.results
                        .iter()
                        .filter(|x| {
                            matches!(x.outcome, Some(pb::bed_hold_result::Outcome::Hold(_)))
                        })
                        .count() as u64
                });
                record(&mut t, started, accepted);
                let results = match r {
                    Ok(r) => r.results,
                    Err(s) => {
                        t.error(format!("hold_beds: {}", code(&s)));
                        if s.code() == tonic::Code::Unimplemented {
                            // Nothing to measure: stop this task early.
                            return t;
                        }
                        continue;
                    }
                };
                let mut resolutions = Vec::with_capacity(results.len());
                for res in results {
                    match res.outcome {
                        Some(pb::bed_hold_result::Outcome::Hold(h)) => {
                            n += 1;
                            let action = if n % 100 < sh.confirm_percent {
                                pb::HoldAction::Confirm
                            } else {
                                pb::HoldAction::Release
                            };
                            resolutions.push(pb::HoldResolution {
                                request_id: ids.next(),
                                hold_id: h.hold_id,
                                action: action as i32,
                                reason: "bench".into(),
                            });
                        }
                        Some(pb::bed_hold_result::Outcome::Rejection(r)) => {
                            t.error(format!("hold item: {}", rejection_name(&r)))
                        }
                        None => t.error("hold item: empty".into()),
                    }
                }
                if measured {
                    t.holds += resolutions.len() as u64;
                }
                if resolutions.is_empty() {
                    continue;
                }
                let t1 = Instant::now();
                let r = client
                    .resolve_holds(pb::ResolveHoldsRequest {
                        request_id: ids.next(),
                        items: resolutions,
                    })
                    .await;
                let accepted = r.as_ref().map_or(0, |r| {
                    r.results
                        .iter()
                        .filter(|x| {
                            matches!(x.outcome, Some(pb::bed_hold_result::Outcome::Hold(_)))
                        })
                        .count() as u64
                });
                record(&mut t, t1, accepted);
                match r {
                    Ok(r) => {
                        for res in r.results {
                            if let Some(pb::bed_hold_result::Outcome::Rejection(r)) = res.outcome {
                                t.error(format!("resolve item: {}", rejection_name(&r)));
                            }
                        }
                    }
                    Err(s) => t.error(format!("resolve_holds: {}", code(&s))),
                }
            }
        }
    }
    t
}

/// What the change-feed watchers of one row measured.
struct WatchTally {
    watchers: usize,
    /// Events received during the measured seconds, by all watchers.
    events: u64,
    /// Receive time minus the event's log time, ms, of every measured event.
    age_ms: Histogram<u64>,
    /// Streams that ended early, by status code (then resumed).
    cuts: BTreeMap<String, u64>,
    /// Resumes that found their index gone (resumed from now: events missed).
    gaps: u64,
}

impl WatchTally {
    fn new(watchers: usize) -> WatchTally {
        WatchTally {
            watchers,
            events: 0,
            age_ms: Histogram::new_with_bounds(1, 3_600_000, 3).expect("histogram bounds"),
            cuts: BTreeMap::new(),
            gaps: 0,
        }
    }

    fn merge(&mut self, o: WatchTally) {
        self.events += o.events;
        let _ = self.age_ms.add(&o.age_ms);
        for (k, v) in o.cuts {
            *self.cuts.entry(k).or_default() += v;
        }
        self.gaps += o.gaps;
    }

    fn json(&self, seconds: f64) -> Value {
        let s = seconds.max(1e-9);
        json!({
            "watchers": self.watchers,
            "events": self.events,
            "events_per_s": self.events as f64 / s,
            "events_per_s_per_watcher": self.events as f64 / s / self.watchers.max(1) as f64,
            "age_p50_ms": self.age_ms.value_at_quantile(0.5),
            "age_p99_ms": self.age_ms.value_at_quantile(0.99),
            "age_max_ms": self.age_ms.max(),
            "cuts": self.cuts,
            "gaps": self.gaps,
        })
    }
}

fn wall_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// How the row steers its watchers: whether events now count (the measured seconds), and
/// when to stop.
struct WatchControl {
    measuring: std::sync::atomic::AtomicBool,
    stop: tokio::sync::watch::Sender<bool>,
}

/// One watcher: watches from now until told to stop, counting what arrives while the row
/// measures; a stream that ends early is resumed after its last event (from now when the
/// node no longer keeps that index). `opened` is told once the first stream is open.
async fn watch_task(
    client: Client,
    ctl: Arc<WatchControl>,
    opened: tokio::sync::mpsc::Sender<()>,
) -> WatchTally {
    use std::sync::atomic::Ordering::Relaxed;
    let mut t = WatchTally::new(1);
    let mut stop = ctl.stop.subscribe();
    let mut resume = pb::WatchRequest::default();
    let mut told = false;
    while !*stop.borrow() {
        let mut stream = match client.watch(resume.clone()).await {
            Ok(s) => s,
            Err(s) if s.code() == tonic::Code::OutOfRange => {
                t.gaps += 1;
                resume = pb::WatchRequest::default();
                continue;
            }
            Err(s) => {
                *t.cuts.entry(format!("open: {}", code(&s))).or_default() += 1;
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        if !told {
            let _ = opened.send(()).await;
            told = true;
        }
        loop {
            let next = tokio::select! {
                _ = stop.changed() => return t,
                next = stream.message() => next,
            };
            match next {
                Ok(Some(e)) => {
                    if ctl.measuring.load(Relaxed) {
                        t.events += 1;
                        let age = wall_ms().saturating_sub(e.log_time_ms).max(1);
                        let _ = t.age_ms.record(age.min(3_600_000));
                    }
                    resume = pb::WatchRequest {
                        start_index: e.log_index,
                        start_position: e.position + 1,
                        ..Default::default()
                    };
                }
                Ok(None) => {
                    *t.cuts.entry("ended".into()).or_default() += 1;
                    break;
                }
                Err(s) => {
                    *t.cuts.entry(code(&s)).or_default() += 1;
                    break;
                }
            }
        }
    }
    t
}

/// Opens `n` watchers on `addr` (sharing `connections` connections) and waits until every
/// one has its stream open (at most 30 s).
async fn start_watchers(
    n: usize,
    addr: &str,
    connections: usize,
    config: &Config,
    ctl: &Arc<WatchControl>,
) -> anyhow::Result<tokio::task::JoinSet<WatchTally>> {
    let mut set = tokio::task::JoinSet::new();
    if n == 0 {
        return Ok(set);
    }
    let pool: Vec<Client> = (0..connections.clamp(1, n))
        .map(|_| client_of(&[addr.to_string()], config))
        .collect::<Result<_, _>>()?;
    let (tx, mut rx) = tokio::sync::mpsc::channel(n);
    for w in 0..n {
        set.spawn(watch_task(
            pool[w % pool.len()].clone(),
            ctl.clone(),
            tx.clone(),
        ));
    }
    drop(tx);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    for _ in 0..n {
        match tokio::time::timeout_at(deadline, rx.recv()).await {
            Ok(Some(())) => {}
            _ => anyhow::bail!("the {n} watchers on {addr} did not all open in 30 s"),
        }
    }
    Ok(set)
}

struct Row {
    mode: Mode,
    clients: usize,
    tally: Tally,
    seconds: f64,
    node_cpu: Vec<f64>,
    bench_cpu: f64,
    load: String,
    watch: WatchTally,
}

impl Row {
    fn q_ms(&self, q: f64) -> f64 {
        self.tally.hist.value_at_quantile(q) as f64 / 1000.0
    }

    fn json(&self, batch: usize) -> Value {
        let s = self.seconds.max(1e-9);
        json!({
            "mode": self.mode.name(),
            "clients": self.clients,
            "batch": if self.mode == Mode::Batch { batch } else { 1 },
            "seconds": self.seconds,
            "calls": self.tally.calls,
            "calls_per_s": self.tally.calls as f64 / s,
            "ops": self.tally.ops,
            "ops_per_s": self.tally.ops as f64 / s,
            "holds": self.tally.holds,
            "holds_per_s": self.tally.holds as f64 / s,
            "p50_ms": self.q_ms(0.5),
            "p99_ms": self.q_ms(0.99),
            "p999_ms": self.q_ms(0.999),
            "hold_p50_ms": self.tally.hold_hist.value_at_quantile(0.5) as f64 / 1000.0,
            "hold_p99_ms": self.tally.hold_hist.value_at_quantile(0.99) as f64 / 1000.0,
            "hold_p999_ms": self.tally.hold_hist.value_at_quantile(0.999) as f64 / 1000.0,
            "max_ms": self.tally.hist.max() as f64 / 1000.0,
            "timeline": {
                "slice_ms": SLICE_MS as u64,
                "calls": self.tally.slices.iter().map(|s| s[0]).collect::<Vec<_>>(),
                "max_ms": self.tally.slices.iter().map(|s| s[1] / 1000).collect::<Vec<_>>(),
            },
            "errors": self.tally.errors,
            "node_cpu_s": self.node_cpu,
            "bench_cpu_s": self.bench_cpu,
            "loadavg": self.load,
            "watch": self.watch.json(self.seconds),
        })
    }
}

/// Where the watchers of a row watch and how many there are.
struct Watching<'a> {
    watchers: usize,
    addr: &'a str,
}

async fn run_row(
    mode: Mode,
    clients: usize,
    args: &Args,
    pools: &[Vec<Client>],
    wards: &[Vec<u32>],
    nodes: &Nodes,
    watching: Watching<'_>,
) -> anyhow::Result<Row> {
    let warm = Duration::from_secs(args.warmup);
    let secs = Duration::from_secs(args.seconds.max(1));
    // The watchers are open before the row starts (opening 100 streams is not measured).
    let ctl = Arc::new(WatchControl {
        measuring: std::sync::atomic::AtomicBool::new(false),
        stop: tokio::sync::watch::Sender::new(false),
    });
    let mut watchers = start_watchers(
        watching.watchers,
        watching.addr,
        args.watch_connections,
        &nodes.client,
        &ctl,
    )
    .await?;
    let now = Instant::now();
    let sh = Arc::new(Shared {
        ttl_ms: args.ttl_ms,
        wards: wards.to_vec(),
        confirm_percent: args.confirm_percent.min(100),
        batch: args.batch.max(1),
        measure_from: now + warm,
        until: now + warm + secs,
    });
    let nonce = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(1);
    let mut set = tokio::task::JoinSet::new();
    for c in 0..clients {
        // Client `c` serves region `c mod regions` (`client_task` holds in its wards).
        let pool = &pools[c % pools.len()];
        let client = pool[(c / pools.len()) % pool.len()].clone();
        set.spawn(client_task(mode, client, sh.clone(), c as u64, nonce));
    }
    tokio::time::sleep_until((now + warm).into()).await;
    ctl.measuring
        .store(true, std::sync::atomic::Ordering::Relaxed);
    let cpu0 = nodes.cpu();
    let me0 = cpu_seconds("/proc/self/stat");
    tokio::time::sleep_until((now + warm + secs).into()).await;
    ctl.measuring
        .store(false, std::sync::atomic::Ordering::Relaxed);
    let cpu1 = nodes.cpu();
    let me1 = cpu_seconds("/proc/self/stat");
    ctl.stop.send_replace(true);
    let mut tally = Tally::new();
    while let Some(t) = set.join_next().await {
        if let Ok(t) = t {
            tally.merge(t);
        }
    }
    let mut watch = WatchTally::new(watching.watchers);
    while let Some(t) = watchers.join_next().await {
        if let Ok(t) = t {
            watch.merge(t);
        }
    }
    Ok(Row {
        mode,
        clients,
        tally,
        seconds: secs.as_secs_f64(),
        node_cpu: cpu0.iter().zip(&cpu1).map(|(a, b)| b - a).collect(),
        bench_cpu: me1 - me0,
        load: loadavg(),
        watch,
    })
}

fn print_header() {
    println!(
        "{:<7} {:>7} {:>8} {:>10} {:>11} {:>11} {:>8} {:>8} {:>8} {:>13} {:>7} {:>11} {:>9} {:>7}  errors",
        "mode",
        "clients",
        "watchers",
        "calls/s",
        "ops/s",
        "holds/s",
        "p50 ms",
        "p99 ms",
        "p999 ms",
        "node cpu s",
        "bench",
        "events/s",
        "age p99",
        "cuts"
    );
}

fn print_row(r: &Row) {
    let s = r.seconds.max(1e-9);
    let errors: Vec<String> = r
        .tally
        .errors
        .iter()
        .map(|(k, v)| format!("{k}×{v}"))
        .collect();
    let cpu: Vec<String> = r.node_cpu.iter().map(|c| format!("{c:.1}")).collect();
    let cuts: u64 = r.watch.cuts.values().sum::<u64>() + r.watch.gaps;
    println!(
        "{:<7} {:>7} {:>8} {:>10.0} {:>11.0} {:>11.0} {:>8.2} {:>8.2} {:>8.2} {:>13} {:>7.1} {:>11.0} {:>9} {:>7}  {}",
        r.mode.name(),
        r.clients,
        r.watch.watchers,
        r.tally.calls as f64 / s,
        r.tally.ops as f64 / s,
        r.tally.holds as f64 / s,
        r.q_ms(0.5),
        r.q_ms(0.99),
        r.q_ms(0.999),
        cpu.join("/"),
        r.bench_cpu,
        r.watch.events as f64 / s,
        r.watch.age_ms.value_at_quantile(0.99),
        cuts,
        if errors.is_empty() {
            "-".into()
        } else {
            errors.join(", ")
        }
    );
}

/// One region the bench's clients write to.
struct Served {
    /// Its id, named in the `ninety-region` header; `None`: the nodes' one region (gba).
    id: Option<String>,
    /// Its staffed wards (at most `--wards` of them, when set).
    wards: Vec<u32>,
    /// The (hospital, ward) of its last ward (loaded last).
    last: (u32, u32),
}

impl Served {
    fn name(&self) -> &str {
        self.id.as_deref().unwrap_or("gba")
    }

    /// A client of `addrs` naming the region.
    fn client(&self, addrs: &[String], config: &Config) -> anyhow::Result<Client> {
        let c = client_of(addrs, config)?;
        Ok(match &self.id {
            Some(id) => c.with_region(id)?,
            None => c,
        })
    }
}

/// The regions the clients write to: the nodes' one region (gba), or `--regions` of them.
fn served(args: &Args) -> anyhow::Result<Vec<Served>> {
    let plans: Vec<(Option<String>, Preset)> = if args.regions == 0 {
        vec![(None, Preset::Gba)]
    } else {
        let max = ninety_benches::regions::BENCH_REGIONS_MAX;
        let plans = ninety_benches::regions::plans(args.regions)
            .ok_or_else(|| anyhow::anyhow!("--regions {}: at most {max}", args.regions))?;
        plans.into_iter().map(|p| (Some(p.id), p.preset)).collect()
    };
    let mut out = Vec::with_capacity(plans.len());
    for (id, preset) in plans {
        let (mut wards, last) = ninety_benches::regions::staffed_wards(preset);
        if args.wards > 0 {
            wards.truncate(args.wards);
        }
        anyhow::ensure!(!wards.is_empty(), "{}: no staffed ward", preset.name());
        out.push(Served { id, wards, last });
    }
    Ok(out)
}

fn modes(mode: &str) -> anyhow::Result<Vec<Mode>> {
    Ok(match mode {
        "all" => vec![Mode::Empty, Mode::Single, Mode::Batch],
        "empty" => vec![Mode::Empty],
        "single" => vec![Mode::Single],
        "batch" => vec![Mode::Batch],
        m => anyhow::bail!("--mode {m:?}: expected single, batch, empty or all"),
    })
}

/// Every figure, the machine and the configuration, as written by `--json`.
fn report(args: &Args, rows: &[Row], load: (String, String)) -> anyhow::Result<Value> {
    Ok(json!({
        "date": std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH)?.as_secs(),
        "security": args.security,
        "machine": {
            "nproc": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0),
            "cpu": cpu_model(),
            "loadavg_start": load.0,
            "loadavg_end": load.1,
        },
        "config": {
            "nodes": 3,
            "fsync": true,
            "region": "gba",
            "security": args.security,
            "seconds": args.seconds,
            "warmup": args.warmup,
            "batch": args.batch,
            "confirm_percent": args.confirm_percent,
            "wards": args.wards,
            "connections": args.connections,
            "regions": args.regions,
            "ttl_ms": args.ttl_ms,
            "max_pending_proposals": args.max_pending_proposals,
            "node_options": args.node_option,
            "metrics_scrape_ms": args.metrics_scrape_ms,
            "watchers": args.watchers,
            "watch_on": args.watch_on,
            "watch_connections": args.watch_connections,
        },
        "rows": rows.iter().map(|r| r.json(args.batch)).collect::<Vec<_>>(),
    }))
}

/// One served region as a row's clients reach it: its node addresses, leader first.
struct Target {
    region: Served,
    order: Vec<String>,
}

/// Waits for every served region's leader and data.
async fn targets(args: &Args, nodes: &mut Nodes) -> anyhow::Result<Vec<Target>> {
    let mut out = Vec::new();
    for region in served(args)? {
        let leader = wait_ready(nodes, &region).await?;
        // The leader first; the others only for failover.
        let mut order = vec![leader.clone()];
        order.extend(nodes.addrs.iter().filter(|a| **a != leader).cloned());
        out.push(Target { region, order });
    }
    Ok(out)
}

/// Each region's connections for a row of `clients` clients: its share of the clients,
/// `--connections` of them at most, each its own `Client` (its own leader).
fn pools(
    args: &Args,
    targets: &[Target],
    clients: usize,
    nodes: &Nodes,
) -> anyhow::Result<Vec<Vec<Client>>> {
    let share = clients.div_ceil(targets.len().max(1));
    let conns = args.connections.clamp(1, share.max(1));
    targets
        .iter()
        .map(|t| {
            (0..conns)
                .map(|_| t.region.client(&t.order, &nodes.client))
                .collect::<anyhow::Result<Vec<Client>>>()
        })
        .collect()
}

async fn bench(args: Args, nodes: &mut Nodes) -> anyhow::Result<Value> {
    let modes = modes(&args.mode)?;
    let targets = targets(&args, nodes).await?;
    let wards: Vec<Vec<u32>> = targets.iter().map(|t| t.region.wards.clone()).collect();
    let load_start = loadavg();
    println!(
        "\ncluster bench: security {}, {} region(s), {} s per row after {} s warm-up, batch {}, confirm {}%, {} connections, max_pending_proposals {}, load average {load_start}",
        args.security, targets.len(), args.seconds, args.warmup, args.batch, args.confirm_percent, args.connections, args.max_pending_proposals
    );
    print_header();
    let scraper = (args.metrics_scrape_ms > 0).then(|| {
        tokio::spawn(scrape(
            nodes.metrics.clone(),
            Duration::from_millis(args.metrics_scrape_ms),
        ))
    });
    // The watchers' node (the first region's): the first follower, or the leader.
    let order = targets.first().map(|t| t.order.clone()).unwrap_or_default();
    let watch_addr = match args.watch_on.as_str() {
        "leader" => order.first(),
        _ => order.get(1).or(order.first()),
    }
    .cloned()
    .unwrap_or_default();
    let mut rows = Vec::new();
    for mode in &modes {
        for &c in &args.clients {
            for &watchers in &args.watchers {
                nodes.check_alive()?;
                let pools = pools(&args, &targets, c.max(1), nodes)?;
                let watching = Watching {
                    watchers,
                    addr: &watch_addr,
                };
                let row = run_row(*mode, c.max(1), &args, &pools, &wards, nodes, watching).await?;
                print_row(&row);
                rows.push(row);
            }
        }
    }
    if let Some(task) = scraper {
        task.abort();
    }
    let load_end = loadavg();
    println!("load average at the end: {load_end}");
    report(&args, &rows, (load_start, load_end))
}

/// Scrapes every node's `/metrics` every `every`, as a Prometheus server would (plain
/// HTTP/1.1, one connection per scrape); says once if a scrape fails.
async fn scrape(addrs: Vec<String>, every: Duration) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut tick = tokio::time::interval(every);
    let mut warned = false;
    loop {
        tick.tick().await;
        for a in &addrs {
            let got = async {
                let mut s = tokio::net::TcpStream::connect(a).await?;
                let req =
                    format!("GET /metrics HTTP/1.1\r\nHost: {a}\r\nConnection: close\r\n\r\n");
                s.write_all(req.as_bytes()).await?;
                let mut body = Vec::new();
                s.read_to_end(&mut body).await?;
                anyhow::ensure!(body.starts_with(b"HTTP/1.1 200"), "not 200");
                anyhow::Ok(())
            };
            if let Err(e) = got.await {
                if !warned {
                    eprintln!("metrics scrape of {a} failed: {e}");
                    warned = true;
                }
            }
        }
    }
}

/// Resolves on Ctrl-C (SIGINT), SIGTERM or SIGHUP, naming it.
async fn stop_signal() -> &'static str {
    use tokio::signal::unix::{signal, SignalKind};
    let wait = |kind| async move {
        match signal(kind) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = wait(SignalKind::interrupt()) => "interrupted (SIGINT)",
        _ = wait(SignalKind::terminate()) => "SIGTERM",
        _ = wait(SignalKind::hangup()) => "SIGHUP",
    }
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let mut nodes = start(&args)?;
    let out = args.json.clone();
    let result = rt.block_on(async {
        tokio::select! {
            r = bench(args, &mut nodes) => r.map(Some),
            sig = stop_signal() => {
                eprintln!("{sig}: stopping the nodes");
                Ok(None)
            }
        }
    });
    // Stop the clients' connections before the nodes.
    drop(rt);
    drop(nodes);
    if let (Ok(Some(v)), Some(path)) = (&result, out) {
        std::fs::write(&path, serde_json::to_string_pretty(v)?)?;
        println!("wrote {}", path.display());
    }
    result.map(|_| ())
}
