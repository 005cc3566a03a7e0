//! The cluster bench's `single` mode, for any store: closed-loop clients, each holding a bed
//! on the next ward (wards in turn, from its own offset, as `cluster_bench`'s `client_task`
//! does), then confirming it (`confirm_percent` of holds; the bed stays occupied) or
//! releasing it, every call with its own request id. This module owns the loop, the
//! tallies and the report; `postgres` and `etcd` own what a hold and a resolve are.

use hdrhistogram::Histogram;
use ninety_engine::generate::{self, Preset};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The histograms' largest value, µs (two minutes; a call slower than that is recorded as
/// two minutes).
const LATENCY_MAX_US: u64 = 120_000_000;

/// A ward of the GBA region with its staffed beds (what a hold may take).
#[derive(Clone, Copy, Debug)]
pub struct Ward {
    pub id: u32,
    pub staffed_beds: u32,
}

/// The staffed wards of the GBA region, as `ninety_engine::generate` makes it for the
/// cluster bench (same seed, so the same ward ids and bed counts).
pub fn gba_wards() -> Vec<Ward> {
    generate::region(Preset::Gba, generate::DEFAULT_SEED)
        .wards
        .iter()
        .filter(|w| w.ward.staffed_beds > 0)
        .map(|w| Ward {
            id: w.ward.id.0,
            staffed_beds: w.ward.staffed_beds,
        })
        .collect()
}

/// A granted hold, as the store names it.
#[derive(Clone, Debug)]
pub struct Hold {
    /// The store's handle for the hold (a PostgreSQL hold id, an etcd bed value).
    pub token: String,
}

/// What a hold call returned.
pub enum HoldOutcome {
    Granted(Hold),
    /// No free bed in the ward (ninety's `NO_CAPACITY`).
    NoCapacity,
}

/// One client's connection to a store. `retries` counts extra round trips a call needed
/// (etcd's compare failures), so the report can show them.
pub trait Session: Send + 'static {
    fn hold(
        &mut self,
        request_id: String,
        ward: u32,
        patient: String,
        ttl_ms: u64,
    ) -> impl Future<Output = anyhow::Result<HoldOutcome>> + Send;
    fn resolve(
        &mut self,
        request_id: String,
        hold: Hold,
        confirm: bool,
    ) -> impl Future<Output = anyhow::Result<bool>> + Send;
    fn retries(&self) -> u64;
}

/// The loop's settings, shared by every client of a row.
pub struct Shape {
    pub wards: Vec<Ward>,
    pub ttl_ms: u64,
    pub confirm_percent: u64,
    pub warmup: Duration,
    pub seconds: Duration,
}

/// What the clients of one row measured.
pub struct Tally {
    /// Every call (holds, confirms, releases), µs: `cluster_bench`'s histogram.
    pub calls_hist: Histogram<u64>,
    /// Granted holds only, µs: the figure the goals name.
    pub holds_hist: Histogram<u64>,
    pub calls: u64,
    /// Calls that succeeded (granted holds, accepted resolves): `cluster_bench`'s `ops`.
    pub ops: u64,
    pub holds: u64,
    pub retries: u64,
    pub errors: BTreeMap<String, u64>,
}

impl Tally {
    fn new() -> Tally {
        let hist =
            || Histogram::new_with_bounds(1, LATENCY_MAX_US, 3).expect("valid histogram bounds");
        Tally {
            calls_hist: hist(),
            holds_hist: hist(),
            calls: 0,
            ops: 0,
            holds: 0,
            retries: 0,
            errors: BTreeMap::new(),
        }
    }

    fn merge(&mut self, o: Tally) {
        let _ = self.calls_hist.add(&o.calls_hist);
        let _ = self.holds_hist.add(&o.holds_hist);
        self.calls += o.calls;
        self.ops += o.ops;
        self.holds += o.holds;
        self.retries += o.retries;
        for (k, v) in o.errors {
            *self.errors.entry(k).or_default() += v;
        }
    }

    fn error(&mut self, what: String) {
        *self.errors.entry(what).or_default() += 1;
    }
}

fn micros(since: Instant) -> u64 {
    (since.elapsed().as_micros() as u64).clamp(1, LATENCY_MAX_US)
}

/// One client: hold on the next ward, then confirm or release, until `until`; only calls
/// that start at or after `measure_from` count.
async fn client<S: Session>(
    mut s: S,
    shape: Arc<Shape>,
    task: u64,
    nonce: u64,
    (measure_from, until): (Instant, Instant),
) -> Tally {
    let mut t = Tally::new();
    let mut ward = (task as usize * 7919) % shape.wards.len();
    let mut n: u64 = task.wrapping_mul(0x9e37_79b9);
    let mut next_id = 0u64;
    let mut id = || {
        next_id += 1;
        format!("{:016x}{:016x}", nonce ^ (task << 40), next_id)
    };
    while Instant::now() < until {
        let started = Instant::now();
        let measured = started >= measure_from;
        ward = (ward + 1) % shape.wards.len();
        n += 1;
        let patient = format!("{nonce:016x}{n:016x}");
        let r = s
            .hold(id(), shape.wards[ward].id, patient, shape.ttl_ms)
            .await;
        let us = micros(started);
        if measured {
            let _ = t.calls_hist.record(us);
            t.calls += 1;
        }
        let hold = match r {
            Ok(HoldOutcome::Granted(h)) => h,
            Ok(HoldOutcome::NoCapacity) => {
                t.error("hold: NO_CAPACITY".into());
                continue;
            }
            Err(e) => {
                t.error(format!("hold: {e}"));
                continue;
            }
        };
        if measured {
            let _ = t.holds_hist.record(us);
            t.holds += 1;
            t.ops += 1;
        }
        let t1 = Instant::now();
        let r = s.resolve(id(), hold, n % 100 < shape.confirm_percent).await;
        if measured {
            let _ = t.calls_hist.record(micros(t1));
            t.calls += 1;
        }
        match r {
            Ok(true) => t.ops += u64::from(measured),
            Ok(false) => t.error("resolve: refused".into()),
            Err(e) => t.error(format!("resolve: {e}")),
        }
    }
    t.retries = s.retries();
    t
}

/// One row of the report.
pub struct Row {
    pub system: String,
    pub clients: usize,
    pub seconds: f64,
    pub tally: Tally,
    pub load_start: String,
    pub load_end: String,
}

/// Runs `sessions.len()` clients for the warm-up plus the measured seconds.
pub async fn run_row<S: Session>(system: &str, sessions: Vec<S>, shape: Arc<Shape>) -> Row {
    let clients = sessions.len();
    let load_start = loadavg();
    let nonce = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(1);
    let now = Instant::now();
    let window = (now + shape.warmup, now + shape.warmup + shape.seconds);
    let mut set = tokio::task::JoinSet::new();
    for (c, s) in sessions.into_iter().enumerate() {
        set.spawn(client(s, shape.clone(), c as u64, nonce, window));
    }
    let mut tally = Tally::new();
    while let Some(t) = set.join_next().await {
        match t {
            Ok(t) => tally.merge(t),
            Err(e) => tally.error(format!("client task: {e}")),
        }
    }
    Row {
        system: system.to_string(),
        clients,
        seconds: shape.seconds.as_secs_f64(),
        tally,
        load_start,
        load_end: loadavg(),
    }
}

/// The 1-, 5- and 15-minute load averages.
pub fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

impl Row {
    fn q_ms(h: &Histogram<u64>, q: f64) -> f64 {
        h.value_at_quantile(q) as f64 / 1000.0
    }

    /// The row as `cluster_bench --json` names its figures (plus the hold-only ones).
    pub fn json(&self) -> Value {
        let s = self.seconds.max(1e-9);
        let t = &self.tally;
        json!({
            "system": self.system,
            "mode": "single",
            "clients": self.clients,
            "seconds": self.seconds,
            "calls": t.calls,
            "calls_per_s": t.calls as f64 / s,
            "ops": t.ops,
            "ops_per_s": t.ops as f64 / s,
            "holds": t.holds,
            "holds_per_s": t.holds as f64 / s,
            "p50_ms": Self::q_ms(&t.calls_hist, 0.5),
            "p99_ms": Self::q_ms(&t.calls_hist, 0.99),
            "hold_p50_ms": Self::q_ms(&t.holds_hist, 0.5),
            "hold_p99_ms": Self::q_ms(&t.holds_hist, 0.99),
            "hold_p999_ms": Self::q_ms(&t.holds_hist, 0.999),
            "retries": t.retries,
            "errors": t.errors,
            "loadavg_start": self.load_start,
            "loadavg_end": self.load_end,
        })
    }

    pub fn print(&self) {
        let s = self.seconds.max(1e-9);
        let t = &self.tally;
        let errors: Vec<String> = t.errors.iter().map(|(k, v)| format!("{k}×{v}")).collect();
        println!(
            "{:<9} {:>7} {:>9.0} {:>9.0} {:>9.0} {:>8.2} {:>8.2} {:>8.2} {:>8.2} {:>8}  {}",
            self.system,
            self.clients,
            t.calls as f64 / s,
            t.ops as f64 / s,
            t.holds as f64 / s,
            Self::q_ms(&t.holds_hist, 0.5),
            Self::q_ms(&t.holds_hist, 0.99),
            Self::q_ms(&t.calls_hist, 0.5),
            Self::q_ms(&t.calls_hist, 0.99),
            t.retries,
            if errors.is_empty() {
                "-".into()
            } else {
                errors.join(", ")
            }
        );
    }
}

pub fn print_header() {
    println!(
        "{:<9} {:>7} {:>9} {:>9} {:>9} {:>8} {:>8} {:>8} {:>8} {:>8}  errors",
        "system",
        "clients",
        "calls/s",
        "ops/s",
        "holds/s",
        "hold p50",
        "hold p99",
        "call p50",
        "call p99",
        "retries"
    );
}
