//! Multi-process tests of the replicated node: real `ninety` processes on loopback, killed
//! with SIGKILL, wiped, partitioned and reconfigured under concurrent client load.
//!
//! One test binary, one module per scenario; the clusters run one at a time (`SERIAL`) and
//! every test is bounded by `TEST_TIMEOUT`.

mod api;
mod auth;
mod backup;
mod capacity;
mod constraints;
mod containers;
mod cross_region;
mod demo;
mod harness;
mod hostile;
mod kill_leader;
mod listeners;
mod logs;
mod membership;
mod metrics;
mod partition;
mod peer_security;
mod reads;
mod region_changes;
mod regions;
mod replay;
mod request_ids;
mod retry;
mod schedules;
mod snapshot;
mod snapshot_intake;
mod validation;
mod watch;
mod wiped_node;

use std::time::Duration;

/// No scenario may take longer than this.
pub const TEST_TIMEOUT: Duration = Duration::from_secs(100);

/// Runs one scenario alone, within `TEST_TIMEOUT`.
pub async fn bounded<F: std::future::Future<Output = ()>>(scenario: F) {
    let _serial = harness::SERIAL.lock().await;
    let started = std::time::Instant::now();
    tokio::time::timeout(TEST_TIMEOUT, scenario)
        .await
        .expect("scenario timed out");
    eprintln!("scenario took {:.1} s", started.elapsed().as_secs_f64());
}
