//! Prometheus metrics: a 3-node cluster with `metrics_listen` takes holds; `/metrics` is
//! scraped before and after, parsed with an OpenMetrics parser (`openmetrics-parser`, not
//! regexes), and the Raft, gRPC, storage, engine and process metrics are there and move.

use crate::harness::*;
use ninety_proto::v1 as pb;
use std::collections::BTreeMap;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// One sample: its name (as exposed: `_total`, `_count`, `_bucket` included) and labels.
type Key = (String, BTreeMap<String, String>);

/// A parsed scrape: every sample's value.
pub(crate) struct Scrape(pub(crate) BTreeMap<Key, f64>);

impl Scrape {
    /// The value of the one sample named `name` whose labels include `labels`.
    pub(crate) fn get(&self, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        let mut found = self.0.iter().filter(|((n, l), _)| {
            n == name
                && labels
                    .iter()
                    .all(|(k, v)| l.get(*k).map(String::as_str) == Some(*v))
        });
        let first = found.next().map(|(_, v)| *v);
        assert!(
            found.next().is_none(),
            "{name} {labels:?}: more than one sample"
        );
        first
    }

    pub(crate) fn value(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        self.get(name, labels)
            .unwrap_or_else(|| panic!("no sample {name} {labels:?} in the scrape"))
    }

    /// The sum of every sample named `name`.
    fn sum(&self, name: &str) -> f64 {
        self.0
            .iter()
            .filter(|((n, _), _)| n == name)
            .map(|(_, v)| v)
            .sum()
    }
}

/// GET `path` on `addr` over plain HTTP/1.1: the status line, headers and body.
async fn http_get(addr: &str, path: &str) -> (String, String) {
    let mut s = tokio::net::TcpStream::connect(addr)
        .await
        .expect("connect metrics");
    let req = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nAccept: */*\r\n\r\n");
    s.write_all(req.as_bytes()).await.expect("send");
    let mut raw = String::new();
    s.read_to_string(&mut raw).await.expect("read");
    let (head, body) = raw.split_once("\r\n\r\n").expect("a response head");
    (head.to_string(), body.to_string())
}

/// Scrapes node `id` and parses the exposition.
pub(crate) async fn scrape(p: &Procs, id: u64) -> Scrape {
    let addr = format!("127.0.0.1:{}", p.metrics_ports[&id]);
    let (head, body) = http_get(&addr, "/metrics").await;
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert!(head.contains("application/openmetrics-text"), "{head}");
    parse(&body)
}

/// Parses an OpenMetrics exposition into its samples (module doc).
fn parse(text: &str) -> Scrape {
    use openmetrics_parser::{MetricNumber, OpenMetricsValue};
    let exposition = openmetrics_parser::openmetrics::parse_openmetrics(text)
        .unwrap_or_else(|e| panic!("the scrape does not parse: {e:?}\n{text}"));
    let mut out = BTreeMap::new();
    for (name, family) in &exposition.families {
        for metric in family.iter_samples() {
            let mut labels: BTreeMap<String, String> = metric
                .get_labelset()
                .unwrap_or_else(|e| panic!("{name}: {e:?}"))
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect();
            let mut put = |suffix: &str, labels: BTreeMap<String, String>, v: f64| {
                out.insert((format!("{name}{suffix}"), labels), v);
            };
            match &metric.value {
                OpenMetricsValue::Counter(c) => put("_total", labels, c.value.as_f64()),
                OpenMetricsValue::Gauge(g) | OpenMetricsValue::Unknown(g) => {
                    put("", labels, g.as_f64())
                }
                OpenMetricsValue::Histogram(h) => {
                    let count = h.count.map_or(0.0, |c| c as f64);
                    put("_count", labels.clone(), count);
                    let sum = h.sum.as_ref().map_or(0.0, MetricNumber::as_f64);
                    put("_sum", labels.clone(), sum);
                    labels.insert("le".into(), "+Inf".into());
                    let inf = h.buckets.last().map_or(0.0, |b| b.count.as_f64());
                    put("_bucket", labels, inf);
                }
                OpenMetricsValue::Info => put("_info", labels, 1.0),
                other => panic!("{name}: unexpected metric type {other:?}"),
            }
        }
    }
    Scrape(out)
}

/// Places `n` bed holds through node `id` and leaves them pending.
async fn pending_holds(p: &Procs, id: u64, wards: &[u32], n: usize) {
    for i in 0..n {
        let req = pb::HoldBedRequest {
            request_id: format!("{:032x}", 0x6d65_7472_6963_7300_u128 + i as u128),
            ward_id: wards[i % wards.len()],
            patient_ref: format!("{:032x}", 0xabc0 + i),
            ttl_ms: 600_000,
            ..Default::default()
        };
        let held = p.beds(id).hold_bed(req).await.expect("hold a bed");
        assert!(held.into_inner().hold.is_some());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_move_under_load_and_parse() {
    crate::bounded(async {
        let opts = Opts {
            metrics: true,
            ..Opts::default()
        };
        let p = Procs::start(&[1, 2, 3], &[1, 2, 3], opts);
        let leader = p.wait_ready(Duration::from_secs(20)).await;
        let follower = [1, 2, 3].into_iter().find(|id| *id != leader).unwrap();
        let wards = ward_ids(&p, leader).await;
        let (l1, f1) = (scrape(&p, leader).await, scrape(&p, follower).await);

        pending_holds(&p, leader, &wards, 3).await;
        let until = Instant::now() + Duration::from_secs(2);
        let ledger = workload(p.channels(&[1, 2, 3]), wards, 4, until).await;
        assert!(
            ledger.lock().unwrap().len() > 5,
            "too little load got through"
        );
        // The followers apply what the leader committed a moment later.
        p.converge(&[1, 2, 3], Duration::from_secs(20)).await;
        let (l2, f2) = (scrape(&p, leader).await, scrape(&p, follower).await);

        let moved = |name: &str, labels: &[(&str, &str)], a: &Scrape, b: &Scrape| {
            let (x, y) = (a.get(name, labels).unwrap_or(0.0), b.value(name, labels));
            assert!(y > x, "{name} {labels:?} did not move: {x} -> {y}");
        };
        for (a, b) in [(&l1, &l2), (&f1, &f2)] {
            moved("ninety_raft_commit_index", &[], a, b);
            moved("ninety_raft_applied_index", &[], a, b);
            moved("ninety_raft_entries_applied_total", &[], a, b);
            moved("ninety_raft_fsync_seconds_count", &[], a, b);
            moved("ninety_engine_bed_holds_placed_total", &[], a, b);
            moved("ninety_engine_requests_applied", &[], a, b);
            // The three holds left pending are still pending.
            assert!(b.value("ninety_engine_bed_holds_pending", &[]) >= 3.0);
            assert_eq!(a.value("ninety_engine_bed_holds_pending", &[]), 0.0);
            assert!(b.value("ninety_engine_dedup_entries", &[]) > 0.0);
            assert!(b.value("ninety_process_resident_memory_bytes", &[]) > 1e6);
            assert!(b.value("ninety_process_open_fds", &[]) > 5.0);
            assert!(b.value("ninety_raft_term", &[]) >= 1.0);
            assert_eq!(b.value("ninety_raft_leader_id", &[]), leader as f64);
            assert_eq!(b.value("ninety_raft_voters", &[]), 3.0);
            assert!(b.sum("ninety_engine_beds") > 0.0, "no bed gauges");
            let cap = b.value("ninety_queue_capacity", &[("queue", "commands")]);
            assert!(cap >= 1.0);
            let build = [("version", ninety_cluster::metrics::VERSION)];
            assert_eq!(b.value("ninety_build_info", &build), 1.0);
        }
        assert_eq!(l2.value("ninety_raft_is_leader", &[]), 1.0);
        assert_eq!(f2.value("ninety_raft_is_leader", &[]), 0.0);
        // Proposals were made on the leader (the workload's, and forwarded ones).
        moved("ninety_raft_commit_round_seconds_count", &[], &l1, &l2);
        let ok_holds = [
            ("service", "BedHolds"),
            ("method", "HoldBed"),
            ("code", "OK"),
        ];
        let served = |s: &Scrape| {
            s.0.iter()
                .filter(|((n, l), _)| {
                    n == "ninety_grpc_requests_total"
                        && ok_holds
                            .iter()
                            .all(|(k, v)| l.get(*k).map(String::as_str) == Some(*v))
                })
                .map(|(_, v)| *v)
                .sum::<f64>()
        };
        assert!(
            served(&l2) > served(&l1),
            "leader's HoldBed OK count did not move"
        );
        assert!(served(&l2) + served(&f2) >= 3.0);
        let latency = [("service", "BedHolds"), ("method", "HoldBed")];
        moved(
            "ninety_grpc_request_duration_seconds_count",
            &latency,
            &l1,
            &l2,
        );
        // Another path is not found; the endpoint keeps serving.
        let addr = format!("127.0.0.1:{}", p.metrics_ports[&leader]);
        let (head, _) = http_get(&addr, "/").await;
        assert!(head.starts_with("HTTP/1.1 404"), "{head}");
        let status = p.status(leader).await.expect("status");
        assert_eq!(status.version, ninety_cluster::metrics::VERSION);
    })
    .await;
}
