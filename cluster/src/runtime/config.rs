//! The node's configuration file (`node.toml`), see `cluster/node.sample.toml`.

use crate::error::Error;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;

/// One node's configuration.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    /// Raft node id, never 0, unique in the cluster.
    pub id: u64,
    /// Address the gRPC server (clients and peers) listens on.
    pub listen: SocketAddr,
    /// Where the Raft log, hard state and snapshots live (sled).
    pub data_dir: PathBuf,
    /// The address book: node id (as a string key) → host:port, this node included. It may
    /// list nodes that are not (yet) members; membership comes from the Raft log.
    #[serde(default)]
    pub peers: BTreeMap<String, String>,
    /// The region to load on a fresh cluster: a built-in preset with one clinic day of
    /// slots ("gba", "yunnan", "asean"), "test" (three hospitals, for tests) or a path to a
    /// region JSON file.
    #[serde(default = "default_region")]
    pub region: String,
    /// True on the founding nodes of a new cluster: an empty store is bootstrapped with
    /// `initial_voters`, and the first leader loads `region` through the log.
    #[serde(default)]
    pub init: bool,
    /// The founding voters; empty means every id in `peers`.
    #[serde(default)]
    pub initial_voters: Vec<u64>,
    /// Enables the `FAULTS` file switch (tests only; see `runtime::transport::Faults`).
    #[serde(default)]
    pub fault_injection: bool,
    /// Overrides `node::config::SNAPSHOT_INTERVAL_ENTRIES`.
    pub snapshot_interval_entries: Option<u64>,
    /// Overrides `node::config::LOG_RETAIN_ENTRIES`.
    pub log_retain_entries: Option<u64>,
    /// Overrides `node::config::PROPOSAL_QUEUE_MAX`: client commands queued or in flight
    /// before writes answer `RESOURCE_EXHAUSTED` (tests make it tiny).
    pub max_pending_proposals: Option<usize>,
    /// Overrides `runtime::driver::COMMAND_QUEUE_MAX`: client commands (a proposal, a
    /// batch's proposals, a read, ...) waiting for the node task before calls answer
    /// `RESOURCE_EXHAUSTED`.
    pub max_queued_commands: Option<usize>,
}

fn default_region() -> String {
    "gba".into()
}

impl FileConfig {
    /// Parses and checks a config file's text.
    pub fn parse(text: &str) -> Result<FileConfig, Error> {
        let cfg: FileConfig = toml::from_str(text).map_err(|e| Error::Config(e.to_string()))?;
        if cfg.id == 0 {
            return Err(Error::Config("id must not be 0".into()));
        }
        cfg.peer_map()?;
        Ok(cfg)
    }

    /// The address book with numeric ids; this node's own address defaults to `listen`.
    pub fn peer_map(&self) -> Result<BTreeMap<u64, String>, Error> {
        let mut out = BTreeMap::new();
        for (k, v) in &self.peers {
            let id: u64 = k
                .parse()
                .map_err(|_| Error::Config(format!("peers: key {k:?} is not a node id")))?;
            if id == 0 {
                return Err(Error::Config("peers: node id 0 is invalid".into()));
            }
            out.insert(id, v.clone());
        }
        out.entry(self.id)
            .or_insert_with(|| self.listen.to_string());
        Ok(out)
    }

    /// The voters a fresh cluster starts with.
    pub fn voters(&self) -> Result<Vec<u64>, Error> {
        if self.initial_voters.is_empty() {
            return Ok(self.peer_map()?.keys().copied().collect());
        }
        Ok(self.initial_voters.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sample_config_parses() {
        let cfg = FileConfig::parse(include_str!("../../node.sample.toml")).unwrap();
        assert_eq!(cfg.id, 1);
        assert_eq!(cfg.voters().unwrap(), vec![1, 2, 3]);
        assert_eq!(cfg.peer_map().unwrap().len(), 3);
        assert!(FileConfig::parse("id = 0\nlisten = \"127.0.0.1:1\"\ndata_dir = \"x\"").is_err());
    }
}
