//! Prometheus metrics of a node, served as OpenMetrics text on `metrics_listen` (node TOML;
//! off when absent) at `GET /metrics`.
//!
//! **Crate.** `prometheus-client`, the Prometheus project's own Rust client: a typed
//! registry owned by the node (no global state, so the in-process tests' nodes never share
//! one), OpenMetrics text output, counters and gauges on atomics.
//!
//! **Cost.** Three kinds of metric, each kept off the hot path as far as it can be:
//! * hot-path events ([`NodeCounters`], [`grpc::GrpcMetricsLayer`]) are atomic adds (a
//!   histogram observation takes the crate's uncontended lock), done where the event
//!   happens: the node task, the persistence worker, the transport and the gRPC layer;
//! * state (Raft's term, indexes and leader; the engine's beds, seats and holds; the queues'
//!   depth; the process) is read at scrape time from what the node already publishes: the
//!   node task's `Summary`, the engine's published view, the queues' senders and
//!   `/proc/self` ([`gauges`]), so a node nobody scrapes pays nothing for them and the node
//!   task never computes a gauge;
//! * the change feed's counts ([`feed_counts`]) are atomic adds where the feed records
//!   each event (a watcher task reading the feed cost 15–20 % of the batched bench).

pub mod feed_counts;
pub mod gauges;
pub mod grpc;
pub mod http;
pub mod node;

pub use node::NodeCounters;

use prometheus_client::registry::Registry;

/// The node's version, with the git commit it was built from when the build knew it.
pub const VERSION: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (",
    env!("NINETY_GIT_COMMIT"),
    ")"
);

/// Encodes one metric family of the `region`-labelled kind (`metrics::node`,
/// `metrics::feed_counts`): the header once, then each region's series.
pub(crate) fn encode_per_region<'m, M: prometheus_client::encoding::EncodeMetric + 'm>(
    encoder: &mut prometheus_client::encoding::DescriptorEncoder,
    (name, help, kind): (&str, &str, prometheus_client::metrics::MetricType),
    series: impl IntoIterator<Item = (&'m str, &'m M)>,
) -> Result<(), std::fmt::Error> {
    let mut family = encoder.encode_descriptor(name, help, None, kind)?;
    for (region, metric) in series {
        metric.encode(family.encode_family(&[("region", region)])?)?;
    }
    Ok(())
}

/// Everything a scrape reads: the registry of the event metrics and the sources of the
/// scrape-time gauges.
pub struct Metrics {
    registry: Registry,
    gauges: gauges::Gauges,
    /// Every region the node hosts, the default first.
    sources: Vec<gauges::Sources>,
}

impl Metrics {
    /// The registry of every region's event counters, feed counts (`feeds`: region id, its
    /// feed's counts) and scrape-time gauges (read from `sources`, the default region
    /// first), and the gRPC layer's counts.
    pub fn new(
        grpc: &grpc::GrpcMetrics,
        feeds: Vec<(String, feed_counts::FeedCounts)>,
        sources: Vec<gauges::Sources>,
    ) -> Metrics {
        let mut registry = Registry::with_prefix("ninety");
        let counters = sources
            .iter()
            .map(|s| (s.region.clone(), s.node.counters().clone()))
            .collect();
        NodeCounters::register(counters, &mut registry);
        grpc.register(&mut registry);
        feed_counts::FeedCounts::register(feeds, &mut registry);
        let gauges = gauges::Gauges::new(&mut registry);
        Metrics {
            registry,
            gauges,
            sources,
        }
    }

    /// The OpenMetrics text of a scrape: the gauges read now, then everything encoded.
    pub fn scrape(&self) -> String {
        self.gauges.refresh(&self.sources);
        let mut text = String::new();
        // Writing into a String does not fail; an encoding error would be a bug in a
        // metric's labels, answered with what was written so far.
        if let Err(e) = prometheus_client::encoding::text::encode(&mut text, &self.registry) {
            tracing::warn!(error = %e, "metrics encoding failed");
        }
        text
    }
}
