//! `ninety-sim`: simulation of ninety clusters and their traffic.
//!
//! Will own the deterministic fault simulator (one seed decides the network, the disks, the
//! clocks, the crashes and the workload) and the peak-day traffic generator, trace format and
//! open-loop replayer. Today it holds nothing but this promise; see the open issues.
//!
//! Must not do real I/O inside a simulated run: time, network and disks are simulated.
