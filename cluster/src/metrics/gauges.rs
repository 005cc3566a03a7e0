//! The gauges read at scrape time from what the node already publishes (module doc of
//! `metrics`): Raft's state from each region's node task `Summary`, the queues' depth from
//! their senders, the engine's beds, seats, holds and dedup table from each region's
//! published view, and the process from `/proc/self`. Nothing here runs on a node task.
//!
//! Every gauge but the process's carries a `region` label: a node with `[[regions]]` shows
//! each region it hosts (its own leader, indexes, queues and beds); a node with one region
//! shows that one.

use crate::engine_sm::ViewCell;
use crate::runtime::driver::NodeHandle;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::info::Info;
use prometheus_client::registry::Registry;
use std::collections::BTreeMap;

/// Where one region's gauges are read from.
pub struct Sources {
    /// The region's id (the `region` label).
    pub region: String,
    /// Its node task's handle: its published summary and its queues.
    pub node: NodeHandle,
    /// Its engine's published view.
    pub view: ViewCell,
}

type RegionLabel = [(&'static str, String); 1];
type RegionAnd = [(&'static str, String); 2];
type RegionKindState = [(&'static str, String); 3];

/// The scrape-time gauges (module doc).
pub struct Gauges {
    raft: BTreeMap<&'static str, Family<RegionLabel, Gauge>>,
    queue_depth: Family<RegionAnd, Gauge>,
    queue_capacity: Family<RegionAnd, Gauge>,
    beds: Family<RegionKindState, Gauge>,
    seats: Family<RegionAnd, Gauge>,
    engine: BTreeMap<&'static str, Family<RegionLabel, Gauge>>,
    process: BTreeMap<&'static str, Gauge>,
}

/// Raft's gauges: name, help.
const RAFT: [(&str, &str); 10] = [
    ("raft_term", "The current Raft term"),
    ("raft_leader_id", "The leader this node knows of, 0 if none"),
    ("raft_is_leader", "1 if this node leads"),
    ("raft_commit_index", "Highest log index known committed"),
    (
        "raft_applied_index",
        "Highest log index applied by this node",
    ),
    ("raft_last_index", "Last index in this node's log"),
    (
        "raft_snapshot_index",
        "Index of this node's latest snapshot",
    ),
    (
        "raft_voters",
        "Voters in the configuration this node applied",
    ),
    (
        "raft_learners",
        "Learners in the configuration this node applied",
    ),
    ("raft_removed", "1 if this node applied its own removal"),
];

/// The engine's gauges: name, help.
const ENGINE: [(&str, &str); 4] = [
    (
        "engine_bed_holds_pending",
        "Bed holds placed and not yet confirmed, released or expired",
    ),
    (
        "engine_dedup_entries",
        "Request ids the dedup table remembers",
    ),
    (
        "engine_requests_applied",
        "Requests the engine applied successfully (its counter, restored from snapshots)",
    ),
    (
        "engine_view_log_index",
        "Log index the engine's published view reflects",
    ),
];

/// The process's gauges: name, help.
const PROCESS: [(&str, &str); 2] = [
    ("process_resident_memory_bytes", "Resident set size (VmRSS)"),
    ("process_open_fds", "Open file descriptors"),
];

/// Registers one metric of type `M` per (name, help) of `list`; returns them by name.
fn register_each<M>(
    r: &mut Registry,
    list: &[(&'static str, &'static str)],
) -> BTreeMap<&'static str, M>
where
    M: prometheus_client::registry::Metric + Default + Clone,
{
    let mut out = BTreeMap::new();
    for &(name, help) in list {
        let m = M::default();
        r.register(name, help, m.clone());
        out.insert(name, m);
    }
    out
}

fn gauge_value(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

impl Gauges {
    pub(super) fn new(r: &mut Registry) -> Gauges {
        let build = Info::new([("version", super::VERSION)]);
        r.register("build", "The running version", build);
        let g = Gauges {
            raft: register_each(r, &RAFT),
            queue_depth: Family::default(),
            queue_capacity: Family::default(),
            beds: Family::default(),
            seats: Family::default(),
            engine: register_each(r, &ENGINE),
            process: register_each(r, &PROCESS),
        };
        r.register(
            "queue_depth",
            "Items waiting in a bounded queue of a region's node task",
            g.queue_depth.clone(),
        );
        r.register(
            "queue_capacity",
            "Capacity of a bounded queue of a region's node task",
            g.queue_capacity.clone(),
        );
        r.register(
            "engine_beds",
            "Beds by ward kind: admissible (free and holdable now), in_use (held or occupied), staffed",
            g.beds.clone(),
        );
        r.register(
            "engine_seats",
            "Seats of published slots: free, or taken (held or booked)",
            g.seats.clone(),
        );
        g
    }

    fn set(
        map: &BTreeMap<&'static str, Family<RegionLabel, Gauge>>,
        name: &str,
        region: &str,
        v: u64,
    ) {
        if let Some(g) = map.get(name) {
            g.get_or_create(&[("region", region.to_string())])
                .set(gauge_value(v));
        }
    }

    /// Reads every gauge from `regions`.
    pub(super) fn refresh(&self, regions: &[Sources]) {
        // Ward kinds come and go with a region: every scrape writes the bed series anew.
        self.beds.clear();
        for s in regions {
            self.refresh_raft(s);
            self.refresh_engine(&s.region, &s.view);
        }
        let (rss, fds) = process_stats();
        for (name, v) in [
            ("process_resident_memory_bytes", rss),
            ("process_open_fds", fds),
        ] {
            if let Some(g) = self.process.get(name) {
                g.set(gauge_value(v));
            }
        }
    }

    /// Raft's gauges and the queues of one region's node task.
    fn refresh_raft(&self, s: &Sources) {
        let st = s.node.summary();
        let is_leader = st.role == raft::StateRole::Leader;
        let raft_values = [
            ("raft_term", st.term),
            ("raft_leader_id", st.leader_id),
            ("raft_is_leader", u64::from(is_leader)),
            ("raft_commit_index", st.commit_index),
            ("raft_applied_index", st.applied_index),
            ("raft_last_index", st.last_index),
            ("raft_snapshot_index", st.snapshot_index),
            ("raft_voters", st.voters.len() as u64),
            ("raft_learners", st.learners.len() as u64),
            ("raft_removed", u64::from(st.removed)),
        ];
        for (name, v) in raft_values {
            Self::set(&self.raft, name, &s.region, v);
        }
        for (queue, depth, capacity) in s.node.queue_depths() {
            let labels = [("region", s.region.clone()), ("queue", queue.to_string())];
            self.queue_depth
                .get_or_create(&labels)
                .set(gauge_value(depth as u64));
            self.queue_capacity
                .get_or_create(&labels)
                .set(gauge_value(capacity as u64));
        }
    }

    /// One region's engine gauges from its latest published view: O(wards + hospitals).
    fn refresh_engine(&self, region: &str, cell: &ViewCell) {
        let view = cell.load();
        let mut beds: BTreeMap<(String, &'static str), u64> = BTreeMap::new();
        for (id, ward) in &view.region.wards {
            let Some(avail) = view.ward(*id) else {
                continue;
            };
            let kind = format!("{:?}", ward.kind).to_lowercase();
            for (state, n) in [
                ("admissible", avail.admissible),
                ("in_use", avail.in_use),
                ("staffed", avail.staffed),
            ] {
                *beds.entry((kind.clone(), state)).or_default() += u64::from(n);
            }
        }
        for ((kind, state), n) in beds {
            let labels = [
                ("region", region.to_string()),
                ("kind", kind),
                ("state", state.to_string()),
            ];
            self.beds.get_or_create(&labels).set(gauge_value(n));
        }
        let (mut seats, mut taken) = (0u64, 0u64);
        for id in view.region.hospitals.keys() {
            if let Some(load) = view.hospital_load(*id) {
                seats += load.seats;
                taken += load.taken;
            }
        }
        let free = seats.saturating_sub(taken);
        for (state, n) in [("free", free), ("taken", taken)] {
            self.seats
                .get_or_create(&[("region", region.to_string()), ("state", state.to_string())])
                .set(gauge_value(n));
        }
        let engine_values = [
            ("engine_bed_holds_pending", view.bed_holds_pending),
            ("engine_dedup_entries", view.dedup_entries),
            ("engine_requests_applied", view.version),
            ("engine_view_log_index", view.log_index),
        ];
        for (name, v) in engine_values {
            Self::set(&self.engine, name, region, v);
        }
    }
}

/// Resident set size in bytes and open file descriptors, from `/proc/self` (0 where there
/// is no procfs).
fn process_stats() -> (u64, u64) {
    let rss_kib = std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        })
        .unwrap_or(0);
    let fds = std::fs::read_dir("/proc/self/fd").map_or(0, |d| d.count() as u64);
    (rss_kib * 1024, fds)
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_process_reads_itself() {
        let (rss, fds) = super::process_stats();
        assert!(rss > 0 && fds > 0, "rss {rss} fds {fds}");
    }
}
