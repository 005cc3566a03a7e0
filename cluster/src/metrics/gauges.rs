//! The gauges read at scrape time from what the node already publishes (module doc of
//! `metrics`): Raft's state from the node task's `Summary`, the queues' depth from their
//! senders, the engine's beds, seats, holds and dedup table from its published view, and
//! the process from `/proc/self`. Nothing here runs on the node task.

use crate::engine_sm::ViewCell;
use crate::runtime::driver::NodeHandle;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::info::Info;
use prometheus_client::registry::Registry;
use std::collections::BTreeMap;

/// Where the gauges are read from.
pub struct Sources {
    /// The node task's handle: its published summary and its queues.
    pub node: NodeHandle,
    /// The engine's published view.
    pub view: ViewCell,
}

type Label1 = [(&'static str, &'static str); 1];
type KindState = [(&'static str, String); 2];

/// The scrape-time gauges (module doc).
pub struct Gauges {
    raft: BTreeMap<&'static str, Gauge>,
    queue_depth: Family<Label1, Gauge>,
    queue_capacity: Family<Label1, Gauge>,
    beds: Family<KindState, Gauge>,
    seats: Family<Label1, Gauge>,
    engine: BTreeMap<&'static str, Gauge>,
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

fn register_all(
    r: &mut Registry,
    list: &[(&'static str, &'static str)],
) -> BTreeMap<&'static str, Gauge> {
    let mut out = BTreeMap::new();
    for &(name, help) in list {
        let g = Gauge::default();
        r.register(name, help, g.clone());
        out.insert(name, g);
    }
    out
}

impl Gauges {
    pub(super) fn new(r: &mut Registry) -> Gauges {
        let build = Info::new([("version", super::VERSION)]);
        r.register("build", "The running version", build);
        let g = Gauges {
            raft: register_all(r, &RAFT),
            queue_depth: Family::default(),
            queue_capacity: Family::default(),
            beds: Family::default(),
            seats: Family::default(),
            engine: register_all(r, &ENGINE),
            process: register_all(r, &PROCESS),
        };
        r.register(
            "queue_depth",
            "Items waiting in a bounded queue of the node task",
            g.queue_depth.clone(),
        );
        r.register(
            "queue_capacity",
            "Capacity of a bounded queue of the node task",
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

    fn set(map: &BTreeMap<&'static str, Gauge>, name: &str, v: u64) {
        if let Some(g) = map.get(name) {
            g.set(i64::try_from(v).unwrap_or(i64::MAX));
        }
    }

    /// Reads every gauge from `s`.
    pub(super) fn refresh(&self, s: &Sources) {
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
            Self::set(&self.raft, name, v);
        }
        for (queue, depth, capacity) in s.node.queue_depths() {
            self.queue_depth
                .get_or_create(&[("queue", queue)])
                .set(depth as i64);
            self.queue_capacity
                .get_or_create(&[("queue", queue)])
                .set(capacity as i64);
        }
        self.refresh_engine(&s.view);
        let (rss, fds) = process_stats();
        Self::set(&self.process, "process_resident_memory_bytes", rss);
        Self::set(&self.process, "process_open_fds", fds);
    }

    /// The engine's gauges from its latest published view: O(wards + hospitals).
    fn refresh_engine(&self, cell: &ViewCell) {
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
        // Ward kinds come and go with the region: drop the series of kinds no longer there.
        self.beds.clear();
        for ((kind, state), n) in beds {
            let labels = [("kind", kind), ("state", state.to_string())];
            self.beds.get_or_create(&labels).set(n as i64);
        }
        let (mut seats, mut taken) = (0u64, 0u64);
        for id in view.region.hospitals.keys() {
            if let Some(load) = view.hospital_load(*id) {
                seats += load.seats;
                taken += load.taken;
            }
        }
        let free = seats.saturating_sub(taken);
        self.seats
            .get_or_create(&[("state", "free")])
            .set(free as i64);
        self.seats
            .get_or_create(&[("state", "taken")])
            .set(taken as i64);
        Self::set(
            &self.engine,
            "engine_bed_holds_pending",
            view.bed_holds_pending,
        );
        Self::set(&self.engine, "engine_dedup_entries", view.dedup_entries);
        Self::set(&self.engine, "engine_requests_applied", view.version);
        Self::set(&self.engine, "engine_view_log_index", view.log_index);
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
