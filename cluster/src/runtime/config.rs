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

/// Longest peer address (`host:port`, a DNS name is at most 253 characters).
pub const PEER_ADDRESS_CHARS_MAX: usize = 260;
/// Most entries in `peers` and in `initial_voters`.
pub const PEERS_MAX: usize = 64;
/// Largest `snapshot_interval_entries` and `log_retain_entries`.
pub const LOG_ENTRIES_SETTING_MAX: u64 = 100_000_000;
/// Largest `max_pending_proposals` and `max_queued_commands` (each queued item holds memory).
pub const QUEUE_SETTING_MAX: usize = 1_000_000;

fn default_region() -> String {
    "gba".into()
}

fn invalid(field: &str, why: impl std::fmt::Display) -> Error {
    Error::Config(format!("{field}: {why}"))
}

/// Checks a peer address: `host:port` with a non-empty host and a port in 1..=65535.
pub fn check_peer_address(field: &str, addr: &str) -> Result<(), Error> {
    if addr.len() > PEER_ADDRESS_CHARS_MAX {
        return Err(invalid(
            field,
            format!(
                "address of {} bytes, at most {PEER_ADDRESS_CHARS_MAX}",
                addr.len()
            ),
        ));
    }
    let bad = |why: &str| invalid(field, format!("{addr:?} is not host:port ({why})"));
    if let Ok(a) = addr.parse::<SocketAddr>() {
        return if a.port() == 0 {
            Err(bad("port 0"))
        } else {
            Ok(())
        };
    }
    let (host, port) = addr.rsplit_once(':').ok_or_else(|| bad("no port"))?;
    match port.parse::<u16>() {
        Ok(p) if p > 0 => {}
        _ => return Err(bad("the port must be 1 to 65535")),
    }
    let host_ok = !host.is_empty()
        && host
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '-' || c == '_');
    if !host_ok {
        return Err(bad("the host must be a name or an IP address"));
    }
    Ok(())
}

impl FileConfig {
    /// Parses and checks a config file's text: every error names the field.
    pub fn parse(text: &str) -> Result<FileConfig, Error> {
        let cfg: FileConfig = toml::from_str(text).map_err(|e| Error::Config(e.to_string()))?;
        cfg.check()?;
        Ok(cfg)
    }

    /// Checks every field and how they fit together (no file system access).
    pub fn check(&self) -> Result<(), Error> {
        if self.id == 0 {
            return Err(invalid("id", "must not be 0"));
        }
        if self.listen.port() == 0 {
            return Err(invalid("listen", "port 0: peers could not reach this node"));
        }
        if self.data_dir.as_os_str().is_empty() {
            return Err(invalid("data_dir", "must not be empty"));
        }
        if self.region.trim().is_empty() {
            return Err(invalid("region", "must not be empty"));
        }
        let peers = self.peer_map()?;
        if self.initial_voters.len() > PEERS_MAX {
            return Err(invalid("initial_voters", format!("at most {PEERS_MAX}")));
        }
        let mut seen = std::collections::BTreeSet::new();
        for (i, &v) in self.initial_voters.iter().enumerate() {
            let field = format!("initial_voters.{i}");
            if v == 0 {
                return Err(invalid(&field, "node id 0 is invalid"));
            }
            if !seen.insert(v) {
                return Err(invalid(&field, format!("node {v} is listed twice")));
            }
            if !peers.contains_key(&v) {
                return Err(invalid(
                    &field,
                    format!("node {v} has no address in [peers]"),
                ));
            }
        }
        if self.init && !self.voters()?.contains(&self.id) {
            return Err(invalid(
                "initial_voters",
                format!(
                    "this node (id {}) founds the cluster (init = true) but is not among the \
                     initial voters {:?}",
                    self.id,
                    self.voters()?
                ),
            ));
        }
        self.check_tuning()
    }

    /// The optional numeric overrides: zero and absurd values are refused, not clamped.
    fn check_tuning(&self) -> Result<(), Error> {
        let entries = [
            ("snapshot_interval_entries", self.snapshot_interval_entries),
            ("log_retain_entries", self.log_retain_entries),
        ];
        for (field, v) in entries {
            match v {
                Some(0) if field == "snapshot_interval_entries" => {
                    return Err(invalid(field, "must be at least 1"))
                }
                Some(n) if n > LOG_ENTRIES_SETTING_MAX => {
                    return Err(invalid(
                        field,
                        format!("{n} is above the limit {LOG_ENTRIES_SETTING_MAX}"),
                    ))
                }
                _ => {}
            }
        }
        let queues = [
            ("max_pending_proposals", self.max_pending_proposals),
            ("max_queued_commands", self.max_queued_commands),
        ];
        for (field, v) in queues {
            match v {
                Some(0) => return Err(invalid(field, "must be at least 1")),
                Some(n) if n > QUEUE_SETTING_MAX => {
                    return Err(invalid(
                        field,
                        format!("{n} is above the limit {QUEUE_SETTING_MAX}"),
                    ))
                }
                _ => {}
            }
        }
        Ok(())
    }

    /// The address book with numeric ids; this node's own address defaults to `listen`.
    pub fn peer_map(&self) -> Result<BTreeMap<u64, String>, Error> {
        if self.peers.len() > PEERS_MAX {
            return Err(invalid("peers", format!("at most {PEERS_MAX} entries")));
        }
        let mut out = BTreeMap::new();
        for (k, v) in &self.peers {
            let field = format!("peers.{k}");
            let id: u64 = k
                .parse()
                .map_err(|_| invalid(&field, format!("key {k:?} is not a node id")))?;
            if id == 0 {
                return Err(invalid(&field, "node id 0 is invalid"));
            }
            check_peer_address(&field, v)?;
            if out.insert(id, v.clone()).is_some() {
                return Err(invalid(&field, format!("node {id} is listed twice")));
            }
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

    /// The config's error for `extra` lines after a valid base (node 1 of peers 1..=3).
    fn refusal(extra: &str, peers: &str) -> String {
        let text = format!(
            "id = 1\nlisten = \"127.0.0.1:7001\"\ndata_dir = \"d\"\n{extra}\n[peers]\n{peers}"
        );
        match FileConfig::parse(&text) {
            Ok(_) => panic!("accepted: {text}"),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn refusals_name_the_field() {
        let peers = "\"1\" = \"127.0.0.1:7001\"\n\"2\" = \"127.0.0.1:7002\"\n";
        let cases = [
            (
                "init = true\ninitial_voters = [99]",
                peers,
                "initial_voters.0",
            ),
            (
                "init = true\ninitial_voters = [2]",
                peers,
                "initial_voters: this node",
            ),
            ("initial_voters = [1, 1]", peers, "listed twice"),
            ("initial_voters = [0]", peers, "initial_voters.0: node id 0"),
            ("", "\"2\" = \"127.0.0.1:99999\"\n", "peers.2"),
            ("", "\"2\" = \"a:b:c\"\n", "peers.2"),
            ("", "\"2\" = \"nohost\"\n", "peers.2"),
            ("", "\"0\" = \"127.0.0.1:7\"\n", "peers.0"),
            (
                "snapshot_interval_entries = 0",
                peers,
                "snapshot_interval_entries",
            ),
            (
                "snapshot_interval_entries = 9223372036854775807",
                peers,
                "snapshot_interval_entries",
            ),
            ("max_queued_commands = 0", peers, "max_queued_commands"),
            (
                "max_pending_proposals = 100000000000",
                peers,
                "max_pending_proposals",
            ),
            ("region = \"\"", peers, "region"),
        ];
        for (extra, peers, want) in cases {
            let e = refusal(extra, peers);
            assert!(e.contains(want), "{extra:?}: {e}");
        }
        let long = format!("\"2\" = \"{}:1\"\n", "a".repeat(1 << 20));
        assert!(refusal("", &long).contains("peers.2"));
        let e = FileConfig::parse("id = 1\nlisten = \"127.0.0.1:0\"\ndata_dir = \"d\"")
            .unwrap_err()
            .to_string();
        assert!(e.contains("listen"), "{e}");
        // A joining node (init = false) need not be a founding voter.
        let text = format!(
            "id = 3\nlisten = \"127.0.0.1:7003\"\ndata_dir = \"d\"\ninitial_voters = [1, 2]\n\
             [peers]\n{peers}\"3\" = \"localhost:7003\"\n"
        );
        assert!(FileConfig::parse(&text).is_ok());
    }
}
