//! The node's configuration file (`node.toml`), see `cluster/node.sample.toml`.
//!
//! A node has two listeners: `listen` serves clients (`ninety.v1`, health, reflection) and
//! `peer_listen` serves the other nodes (`ninety.peer.v1`), so the peer protocol is never
//! reachable on the client address. The address book `[peers]` gives every node's two
//! addresses: `peer` (dialled for Raft and for forwarded writes) and `client` (the leader
//! hint sent to clients). A config from before the split (no `peer_listen`, or a plain
//! string in `[peers]`) is refused with the migration in the message, never given a default
//! that would serve peers on the client port.
//!
//! **Safe defaults.** `[tls]` (three PEM files, read at start by `security::tls`) turns on
//! TLS for both listeners and for dialling peers. Without it both listeners must be
//! loopback addresses; `insecure = true` is the explicit, documented opt-out.

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
    /// Address the client API (`ninety.v1`, health, reflection) listens on.
    pub listen: SocketAddr,
    /// Address the peer service (`ninety.peer.v1`) listens on; required, and never the
    /// same socket as `listen`. `None` only while parsing: [`FileConfig::check`] refuses it.
    #[serde(default)]
    pub peer_listen: Option<SocketAddr>,
    /// Where the Raft log, hard state and snapshots live (`raft-log/`, `snapshots/`:
    /// `runtime::data_format`).
    pub data_dir: PathBuf,
    /// The address book: node id (as a string key) → `{ peer = "host:port", client =
    /// "host:port" }`, this node included. It may list nodes that are not (yet) members;
    /// membership comes from the Raft log. Kept as TOML values so that an entry in the old
    /// one-address form gets a message naming the migration (see [`FileConfig::peer_map`]).
    #[serde(default)]
    pub peers: BTreeMap<String, toml::Value>,
    /// The region to load on a fresh cluster: a built-in preset with one clinic day of
    /// slots ("gba", "yunnan", "asean", a province such as "hainan"), "test" (three
    /// hospitals, for tests) or a path to a region JSON file.
    #[serde(default = "default_region")]
    pub region: String,
    /// Days of slots a built-in region keeps published ahead, rolled forward each UTC
    /// midnight by the doctors' weekly templates (`ninety_engine::generate::templates`);
    /// 0: only the first clinic day, no templates. Default
    /// `generate::HORIZON_DAYS_DEFAULT` (14), at most `limits::HORIZON_DAYS_MAX` (31).
    pub schedule_horizon_days: Option<u16>,
    /// True on the founding nodes of a new cluster: an empty store is bootstrapped with
    /// `initial_voters`, and the first leader loads `region` through the log.
    #[serde(default)]
    pub init: bool,
    /// The founding voters; empty means every id in `peers`.
    #[serde(default)]
    pub initial_voters: Vec<u64>,
    /// The cluster's id (`ninety cluster init` draws it: 128 bits in hex), the same on
    /// every node; stamped into the data directory's `IDENTITY` file and carried in peer
    /// traffic. Required for a new data directory; an existing one supplies it.
    pub cluster_id: Option<String>,
    /// Start on an empty data directory as a new member: never bootstrap (whatever
    /// `init` says), wait for the leader to add this node (`ninety node --join`).
    #[serde(default)]
    pub join: bool,
    /// Enables the `FAULTS` file switch (tests only; see `runtime::transport::Faults`).
    #[serde(default)]
    pub fault_injection: bool,
    /// Snapshot every this many applied entries (default `SNAPSHOT_INTERVAL_ENTRIES_DEFAULT`;
    /// a snapshot also comes after `SNAPSHOT_LOG_BYTES_MAX` bytes of entries, whichever is
    /// first).
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
    /// Overrides `feed::WATCH_EVENTS_RETAINED`: change-feed events the node keeps in memory
    /// for watchers that resume (`Watch` with a `start_index`); older starts are refused.
    pub watch_events_retained: Option<usize>,
    // Snapshot intake limits (issue 12): see `runtime::snapshot_intake`.
    /// Overrides `runtime::snapshot_intake::SNAPSHOT_BYTES_MAX`: a received snapshot
    /// declaring more bytes is refused on its first chunk.
    pub snapshot_bytes_max: Option<u64>,
    /// Overrides `runtime::snapshot_intake::SNAPSHOT_STREAMS_MAX`: snapshot streams received
    /// at once; one more is refused at once.
    pub snapshot_streams_max: Option<usize>,
    /// The explicit opt-out of the safe defaults: without `[tls]`, `listen` and
    /// `peer_listen` may then be non-loopback addresses (plain text on the network).
    #[serde(default)]
    pub insecure: bool,
    /// TLS on both listeners and when dialling peers; `None` = plain text, which is allowed
    /// on loopback addresses only unless `insecure = true`.
    pub tls: Option<TlsFiles>,
    /// The callers' credentials (`[[auth.tokens]]`, `[[auth.certs]]`).
    #[serde(default)]
    pub auth: AuthConfig,
    /// Where the audit log goes (JSON lines); default `<data_dir>/audit.jsonl`.
    pub audit_log: Option<PathBuf>,
    /// Where Prometheus scrapes `GET /metrics` (plain HTTP, no authentication: a loopback
    /// or management address). Absent: no metrics listener (`crate::metrics`).
    pub metrics_listen: Option<SocketAddr>,
    /// The log's format on stderr: "text" (the default) or "json" (one object a line);
    /// `ninety node --log-format` overrides it.
    pub log_format: Option<LogFormat>,
}

/// How the node writes its log (`log_format`, `--log-format`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines (colour only on a terminal).
    #[default]
    Text,
    /// One JSON object per line: timestamp, level, target, message and fields.
    Json,
}

/// The `[tls]` table: PEM files, read at start (see `security::tls`).
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct TlsFiles {
    /// The cluster CA certificate: peers (and client certificates) must be signed by it.
    pub ca: PathBuf,
    /// This node's certificate, naming `urn:ninety:node:<id>`.
    pub cert: PathBuf,
    /// Its private key (PKCS#8 PEM).
    pub key: PathBuf,
}

/// Longest peer address (`host:port`, a DNS name is at most 253 characters).
pub const PEER_ADDRESS_CHARS_MAX: usize = 260;
/// Most entries in `peers` and in `initial_voters`.
pub const PEERS_MAX: usize = 64;
/// A real node's snapshot cadence by count when `snapshot_interval_entries` is not set:
/// etcd's default `--snapshot-count`. At 10,000 a busy node (1,000–2,000 small entries a
/// second at 64 clients) encoded and wrote its whole state (tens of MB) every 5–10 s,
/// ~8 % of the CPU of such a row (docs/performance.md, "Snapshot cadence").
pub const SNAPSHOT_INTERVAL_ENTRIES_DEFAULT: u64 = 100_000;
/// ... and by size: a snapshot once the entries applied since the last one add up to
/// 256 MiB, so the log on disk stays bounded whatever the entries hold (a batched row's
/// entries are ~50 KB: 10,000 of them were ~500 MB of log), and the snapshot writes stay
/// a fraction of the log's (a GBA snapshot is ~60 MB).
pub const SNAPSHOT_LOG_BYTES_MAX: u64 = 256 << 20;
/// Largest `snapshot_interval_entries` and `log_retain_entries`.
pub const LOG_ENTRIES_SETTING_MAX: u64 = 100_000_000;
/// Largest `max_pending_proposals`, `max_queued_commands` and `watch_events_retained` (each
/// queued item or kept event holds memory).
pub const QUEUE_SETTING_MAX: usize = 1_000_000;

/// One node's two addresses, as the address book holds them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeAddrs {
    /// Its `peer_listen`, host:port: Raft messages and forwarded writes go here.
    pub peer: String,
    /// Its `listen`, host:port: where clients reach it (the leader hint).
    pub client: String,
}

/// How to move a config from one listener to two, quoted by every refusal of an old one.
pub const TWO_LISTENERS_MIGRATION: &str = "a node now serves clients on `listen` and the \
     other nodes on `peer_listen`, a different port: add `peer_listen = \"HOST:PEER_PORT\"` \
     and write each [peers] entry as `\"2\" = { peer = \"HOST:PEER_PORT\", client = \
     \"HOST:PORT\" }` (docs/operations.md, \"Two listeners\")";

fn default_region() -> String {
    "gba".into()
}

fn invalid(field: &str, why: impl std::fmt::Display) -> Error {
    Error::Config(format!("{field}: {why}"))
}

/// Longest `cluster_id`, characters.
pub const CLUSTER_ID_CHARS_MAX: usize = 64;

/// A cluster id: 1 to [`CLUSTER_ID_CHARS_MAX`] ASCII letters, digits, `-` or `_`.
pub fn check_cluster_id(id: &str) -> Result<(), Error> {
    let ok_char = |c: char| c.is_ascii_alphanumeric() || c == '-' || c == '_';
    if id.is_empty() || id.len() > CLUSTER_ID_CHARS_MAX || !id.chars().all(ok_char) {
        return Err(invalid(
            "cluster_id",
            format!(
                "{id:?}: expected 1 to {CLUSTER_ID_CHARS_MAX} letters, digits, `-` or `_`                  (`ninety cluster init` writes 32 hex digits)"
            ),
        ));
    }
    Ok(())
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
            return Err(invalid(
                "listen",
                "port 0: clients could not reach this node",
            ));
        }
        self.peer_listen()?;
        self.check_plain_text()?;
        if self.data_dir.as_os_str().is_empty() {
            return Err(invalid("data_dir", "must not be empty"));
        }
        if self.region.trim().is_empty() {
            return Err(invalid("region", "must not be empty"));
        }
        let horizon_max = ninety_engine::limits::HORIZON_DAYS_MAX;
        if self.schedule_horizon_days.is_some_and(|d| d > horizon_max) {
            return Err(invalid(
                "schedule_horizon_days",
                format!("at most {horizon_max}"),
            ));
        }
        let peers = self.peer_map()?;
        if let Some(id) = &self.cluster_id {
            check_cluster_id(id)?;
        }
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
        self.check_tuning()?;
        self.check_snapshot_limits()?;
        self.check_metrics_listen()?;
        if self
            .audit_log
            .as_ref()
            .is_some_and(|p| p.as_os_str().is_empty())
        {
            return Err(invalid("audit_log", "must not be empty"));
        }
        self.auth.check()
    }

    /// The snapshot intake overrides: at least one stream and one byte, at most the limits
    /// of `runtime::snapshot_intake`.
    fn check_snapshot_limits(&self) -> Result<(), Error> {
        use super::snapshot_intake::{SNAPSHOT_BYTES_SETTING_MAX, SNAPSHOT_STREAMS_SETTING_MAX};
        match self.snapshot_bytes_max {
            Some(0) => return Err(invalid("snapshot_bytes_max", "must be at least 1")),
            Some(n) if n > SNAPSHOT_BYTES_SETTING_MAX => {
                return Err(invalid(
                    "snapshot_bytes_max",
                    format!("{n} bytes is above the limit {SNAPSHOT_BYTES_SETTING_MAX}"),
                ))
            }
            _ => {}
        }
        match self.snapshot_streams_max {
            Some(0) => Err(invalid("snapshot_streams_max", "must be at least 1")),
            Some(n) if n > SNAPSHOT_STREAMS_SETTING_MAX => Err(invalid(
                "snapshot_streams_max",
                format!("{n} is above the limit {SNAPSHOT_STREAMS_SETTING_MAX}"),
            )),
            _ => Ok(()),
        }
    }

    /// `metrics_listen`, when set: not port 0, and not the socket of `listen` or
    /// `peer_listen` (a wildcard address shares its port with every address).
    fn check_metrics_listen(&self) -> Result<(), Error> {
        let Some(m) = self.metrics_listen else {
            return Ok(());
        };
        if m.port() == 0 {
            return Err(invalid(
                "metrics_listen",
                "port 0: Prometheus could not find this node",
            ));
        }
        for (field, other) in [
            ("listen", self.listen),
            ("peer_listen", self.peer_listen()?),
        ] {
            let overlap =
                m.ip() == other.ip() || m.ip().is_unspecified() || other.ip().is_unspecified();
            if m.port() == other.port() && overlap {
                return Err(invalid(
                    "metrics_listen",
                    format!(
                        "{m} is the socket of `{field}` ({other}): metrics need their own port"
                    ),
                ));
            }
        }
        Ok(())
    }

    /// Where the audit log goes.
    pub fn audit_log_path(&self) -> PathBuf {
        self.audit_log
            .clone()
            .unwrap_or_else(|| self.data_dir.join(AUDIT_LOG_FILE))
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
            ("watch_events_retained", self.watch_events_retained),
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

    /// Without `[tls]`, both listeners must be loopback addresses unless `insecure = true`;
    /// `[tls]` names three non-empty paths (their contents are read at start).
    fn check_plain_text(&self) -> Result<(), Error> {
        if let Some(tls) = &self.tls {
            let files = [
                ("tls.ca", &tls.ca),
                ("tls.cert", &tls.cert),
                ("tls.key", &tls.key),
            ];
            for (field, path) in files {
                if path.as_os_str().is_empty() {
                    return Err(invalid(field, "must not be empty: a PEM file"));
                }
            }
            return Ok(());
        }
        if self.insecure {
            return Ok(());
        }
        let peer = self.peer_listen()?;
        for (field, addr) in [("listen", self.listen), ("peer_listen", peer)] {
            if !addr.ip().is_loopback() {
                return Err(invalid(
                    field,
                    format!(
                        "{addr} is not a loopback address and there is no [tls] table: add \
                         [tls] (ca, cert, key; `ninety cluster init` generates them) or set \
                         `insecure = true` to serve plain text on the network"
                    ),
                ));
            }
        }
        Ok(())
    }

    /// The peer listener's address: present, not port 0, and not the client listener's
    /// socket (a wildcard address shares its port with every address).
    pub fn peer_listen(&self) -> Result<SocketAddr, Error> {
        let Some(peer) = self.peer_listen else {
            return Err(invalid(
                "peer_listen",
                format!(
                    "missing (a config from before the two listeners): {TWO_LISTENERS_MIGRATION}"
                ),
            ));
        };
        if peer.port() == 0 {
            return Err(invalid(
                "peer_listen",
                "port 0: peers could not reach this node",
            ));
        }
        let (a, b) = (self.listen, peer);
        let overlap = a.ip() == b.ip() || a.ip().is_unspecified() || b.ip().is_unspecified();
        if a.port() == b.port() && overlap {
            return Err(invalid(
                "peer_listen",
                format!("{peer} is the client address `listen` ({a}): peers need their own port"),
            ));
        }
        Ok(peer)
    }

    /// The address book with numeric ids; this node's own entry defaults to its listeners.
    pub fn peer_map(&self) -> Result<BTreeMap<u64, NodeAddrs>, Error> {
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
            if out.insert(id, node_addrs(&field, v)?).is_some() {
                return Err(invalid(&field, format!("node {id} is listed twice")));
            }
        }
        let peer = self.peer_listen()?;
        out.entry(self.id).or_insert_with(|| NodeAddrs {
            peer: peer.to_string(),
            client: self.listen.to_string(),
        });
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

/// One `[peers]` entry: a table with exactly `peer` and `client`, both host:port.
fn node_addrs(field: &str, v: &toml::Value) -> Result<NodeAddrs, Error> {
    let table = match v {
        toml::Value::Table(t) => t,
        toml::Value::String(_) => {
            return Err(invalid(
                field,
                format!("one address is the old form: {TWO_LISTENERS_MIGRATION}"),
            ))
        }
        other => {
            return Err(invalid(
                field,
                format!(
                    "found a value of type {}, expected {{ peer = \"host:port\", client = \
                     \"host:port\" }}",
                    other.type_str()
                ),
            ))
        }
    };
    if let Some(k) = table
        .keys()
        .find(|k| !matches!(k.as_str(), "peer" | "client"))
    {
        return Err(invalid(
            &format!("{field}.{k}"),
            "unknown key: an entry has `peer` and `client`",
        ));
    }
    let addr = |key: &str| -> Result<String, Error> {
        let f = format!("{field}.{key}");
        let a = match table.get(key) {
            Some(toml::Value::String(a)) => a,
            Some(_) => return Err(invalid(&f, "must be a string, host:port")),
            None => return Err(invalid(&f, "missing: host:port")),
        };
        check_peer_address(&f, a)?;
        Ok(a.clone())
    };
    Ok(NodeAddrs {
        peer: addr("peer")?,
        client: addr("client")?,
    })
}

/// `[auth]`: who may call the client API, and with which roles (`security::roles`).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthConfig {
    /// Bearer tokens, known by their SHA-256.
    #[serde(default)]
    pub tokens: Vec<TokenEntry>,
    /// Client certificates signed by `[tls].ca`, known by their subject CN.
    #[serde(default)]
    pub certs: Vec<CertEntry>,
}

/// One `[[auth.tokens]]` entry.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokenEntry {
    /// The caller's name in the audit log.
    pub name: String,
    /// Its roles (`reader`, `platform`, `referral`, `operator`).
    pub roles: Vec<String>,
    /// SHA-256 of the token's UTF-8 text, 64 lowercase hex digits.
    pub sha256: String,
}

/// One `[[auth.certs]]` entry.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CertEntry {
    /// The certificate's subject CN, and the caller's name in the audit log.
    pub name: String,
    /// Its roles.
    pub roles: Vec<String>,
}

/// Most entries in `auth.tokens` and in `auth.certs`, each.
pub const AUTH_ENTRIES_MAX: usize = 1024;
/// Longest credential name, bytes (X.509's upper bound for a common name).
pub const CREDENTIAL_NAME_BYTES_MAX: usize = 64;

/// The file name of the default audit log in `data_dir`.
pub const AUDIT_LOG_FILE: &str = "audit.jsonl";

impl AuthConfig {
    /// Whether no credential is configured.
    pub fn is_empty(&self) -> bool {
        self.tokens.is_empty() && self.certs.is_empty()
    }

    /// Checks names (non-empty, unique, printable), roles (known, at least one) and
    /// hashes (64 lowercase hex, unique); every error names the entry's field.
    pub fn check(&self) -> Result<(), Error> {
        let lists = [
            ("auth.tokens", self.tokens.len()),
            ("auth.certs", self.certs.len()),
        ];
        for (field, n) in lists {
            if n > AUTH_ENTRIES_MAX {
                return Err(invalid(
                    field,
                    format!("{n} entries, at most {AUTH_ENTRIES_MAX}"),
                ));
            }
        }
        let mut names = std::collections::BTreeSet::new();
        let mut hashes = std::collections::BTreeSet::new();
        for (i, t) in self.tokens.iter().enumerate() {
            let at = format!("auth.tokens[{i}]");
            check_entry(&at, &t.name, &t.roles, &mut names)?;
            let hex = t.sha256.len() == 64
                && t.sha256
                    .bytes()
                    .all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
            if !hex {
                return Err(invalid(
                    &format!("{at}.sha256"),
                    "must be 64 lowercase hex digits: the SHA-256 of the token's text",
                ));
            }
            if !hashes.insert(t.sha256.as_str()) {
                return Err(invalid(
                    &format!("{at}.sha256"),
                    "the same token is listed twice",
                ));
            }
        }
        let mut names = std::collections::BTreeSet::new();
        for (i, c) in self.certs.iter().enumerate() {
            check_entry(&format!("auth.certs[{i}]"), &c.name, &c.roles, &mut names)?;
        }
        Ok(())
    }
}

/// One credential's name and roles.
fn check_entry<'a>(
    at: &str,
    name: &'a str,
    roles: &[String],
    names: &mut std::collections::BTreeSet<&'a str>,
) -> Result<(), Error> {
    let field = format!("{at}.name");
    if name.is_empty() || name.len() > CREDENTIAL_NAME_BYTES_MAX {
        return Err(invalid(
            &field,
            format!("must be 1 to {CREDENTIAL_NAME_BYTES_MAX} bytes"),
        ));
    }
    if name.chars().any(char::is_control) {
        return Err(invalid(&field, "must not contain control characters"));
    }
    if !names.insert(name) {
        return Err(invalid(&field, format!("{name:?} is listed twice")));
    }
    if roles.is_empty() {
        return Err(invalid(
            &format!("{at}.roles"),
            "must name at least one role",
        ));
    }
    for (j, r) in roles.iter().enumerate() {
        if crate::security::roles::Role::parse(r).is_none() {
            return Err(invalid(
                &format!("{at}.roles[{j}]"),
                format!(
                    "unknown role {}: one of reader, platform, referral, operator",
                    crate::server::convert::echo(r)
                ),
            ));
        }
    }
    Ok(())
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
        assert!(cfg.cluster_id.is_some() && !cfg.join);
        assert_eq!(
            cfg.peer_map().unwrap()[&2],
            NodeAddrs {
                peer: "127.0.0.1:7102".into(),
                client: "127.0.0.1:7002".into()
            }
        );
        assert!(FileConfig::parse("id = 0\nlisten = \"127.0.0.1:1\"\ndata_dir = \"x\"").is_err());
    }

    /// A config from before the two listeners is refused with the migration, whichever of
    /// its two old forms comes first.
    #[test]
    fn old_one_listener_configs_are_refused_with_the_migration() {
        let old = "id = 1\nlisten = \"127.0.0.1:7001\"\ndata_dir = \"d\"\n[peers]\n\
                   \"1\" = \"127.0.0.1:7001\"\n\"2\" = \"127.0.0.1:7002\"\n";
        let e = FileConfig::parse(old).unwrap_err().to_string();
        assert!(
            e.contains("peer_listen: missing") && e.contains("peer_listen = "),
            "{e}"
        );
        let half = old.replace("[peers]", "peer_listen = \"127.0.0.1:7101\"\n[peers]");
        let e = FileConfig::parse(&half).unwrap_err().to_string();
        assert!(e.contains("peers.1: one address is the old form"), "{e}");
        assert!(e.contains("{ peer = "), "{e}");
    }

    /// The config's error for `extra` lines after a valid base (node 1 of peers 1..=3).
    fn refusal(extra: &str, peers: &str) -> String {
        let peer_listen = if extra.contains("peer_listen") {
            ""
        } else {
            "peer_listen = \"127.0.0.1:7101\"\n"
        };
        let text = format!(
            "id = 1\nlisten = \"127.0.0.1:7001\"\n{peer_listen}data_dir = \"d\"\n{extra}\n\
             [peers]\n{peers}"
        );
        match FileConfig::parse(&text) {
            Ok(_) => panic!("accepted: {text}"),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn auth_refusals_name_the_entry_and_field() {
        let peers = "\"1\" = { peer = \"127.0.0.1:7101\", client = \"127.0.0.1:7001\" }\n";
        let sha = "a".repeat(64);
        let token = |name: &str, roles: &str, sha: &str| {
            format!("[[auth.tokens]]\nname = \"{name}\"\nroles = {roles}\nsha256 = \"{sha}\"\n")
        };
        let ok = token("ops", "[\"operator\"]", &sha);
        let cases = [
            (token("", "[\"reader\"]", &sha), "auth.tokens[0].name"),
            (
                ok.clone() + &token("ops", "[\"reader\"]", &"b".repeat(64)),
                "auth.tokens[1].name",
            ),
            (
                ok.clone() + &token("two", "[\"reader\"]", &sha),
                "auth.tokens[1].sha256: the same",
            ),
            (
                token("x", "[\"admin\"]", &sha),
                "auth.tokens[0].roles[0]: unknown role",
            ),
            (token("x", "[]", &sha), "auth.tokens[0].roles: must name"),
            (
                ok.clone() + &token("y", "[\"reader\"]", &"A".repeat(64)),
                "auth.tokens[1].sha256",
            ),
            (token("x", "[\"reader\"]", "abc"), "auth.tokens[0].sha256"),
            (
                "[[auth.certs]]\nname = \"svc\"\nroles = [\"referral\", \"nope\"]\n".into(),
                "auth.certs[0].roles[1]",
            ),
            (
                format!(
                    "[[auth.certs]]\nname = \"{}\"\nroles = [\"reader\"]\n",
                    "n".repeat(65)
                ),
                "auth.certs[0].name",
            ),
        ];
        for (tables, want) in cases {
            let text = format!(
                "id = 1\nlisten = \"127.0.0.1:7001\"\npeer_listen = \"127.0.0.1:7101\"\n\
                 data_dir = \"d\"\n[peers]\n{peers}{tables}"
            );
            let e = FileConfig::parse(&text).unwrap_err().to_string();
            assert!(e.contains(want), "{want}: {e}");
        }
        let text = format!(
            "id = 1\nlisten = \"127.0.0.1:7001\"\npeer_listen = \"127.0.0.1:7101\"\n\
             data_dir = \"d\"\naudit_log = \"/var/log/a.jsonl\"\n[peers]\n{peers}{ok}\
             [[auth.certs]]\nname = \"ops\"\nroles = [\"reader\", \"operator\"]\n"
        );
        let cfg = FileConfig::parse(&text).unwrap();
        assert_eq!(cfg.auth.tokens.len(), 1);
        assert_eq!(cfg.audit_log_path(), PathBuf::from("/var/log/a.jsonl"));
        let plain = FileConfig::parse(&text.replace("audit_log = \"/var/log/a.jsonl\"\n", ""));
        assert_eq!(
            plain.unwrap().audit_log_path(),
            PathBuf::from("d/audit.jsonl")
        );
    }

    #[test]
    fn refusals_name_the_field() {
        let entry = |id: u64, peer: &str| {
            format!("\"{id}\" = {{ peer = \"{peer}\", client = \"127.0.0.1:700{id}\" }}\n")
        };
        let peers: &str = &(entry(1, "127.0.0.1:7101") + &entry(2, "127.0.0.1:7102"));
        let (big_port, colons, no_host, zero) = (
            entry(2, "127.0.0.1:99999"),
            entry(2, "a:b:c"),
            entry(2, "nohost"),
            entry(0, "127.0.0.1:7"),
        );
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
            ("cluster_id = \"a b\"", peers, "cluster_id"),
            ("cluster_id = \"\"", peers, "cluster_id"),
            ("initial_voters = [0]", peers, "initial_voters.0: node id 0"),
            ("", &big_port, "peers.2.peer"),
            ("", &colons, "peers.2.peer"),
            ("", &no_host, "peers.2.peer"),
            ("", &zero, "peers.0"),
            (
                "",
                "\"2\" = { peer = \"127.0.0.1:7102\" }\n",
                "peers.2.client: missing",
            ),
            (
                "",
                "\"2\" = { peer = \"a:1\", client = \"a:2\", x = 1 }\n",
                "peers.2.x: unknown key",
            ),
            ("", "\"2\" = 7\n", "peers.2: found a value of type integer"),
            (
                "peer_listen = \"127.0.0.1:7001\"",
                peers,
                "peer_listen: 127.0.0.1:7001 is",
            ),
            (
                "peer_listen = \"0.0.0.0:7001\"",
                peers,
                "peer_listen: 0.0.0.0:7001 is",
            ),
            (
                "peer_listen = \"127.0.0.1:0\"",
                peers,
                "peer_listen: port 0",
            ),
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
            ("snapshot_bytes_max = 0", peers, "snapshot_bytes_max: must"),
            (
                "snapshot_bytes_max = 1099511627777",
                peers,
                "snapshot_bytes_max: 1099511627777 bytes",
            ),
            (
                "snapshot_streams_max = 0",
                peers,
                "snapshot_streams_max: must",
            ),
            (
                "snapshot_streams_max = 65",
                peers,
                "snapshot_streams_max: 65",
            ),
            (
                "metrics_listen = \"127.0.0.1:0\"",
                peers,
                "metrics_listen: port 0",
            ),
            (
                "metrics_listen = \"0.0.0.0:7001\"",
                peers,
                "metrics_listen: 0.0.0.0:7001 is the socket of `listen`",
            ),
            (
                "metrics_listen = \"127.0.0.1:7101\"",
                peers,
                "metrics_listen: 127.0.0.1:7101 is the socket of `peer_listen`",
            ),
            ("log_format = \"xml\"", peers, "unknown variant `xml`"),
        ];
        for (extra, peers, want) in cases {
            let e = refusal(extra, peers);
            assert!(e.contains(want), "{extra:?}: {e}");
        }
        let long = entry(2, &format!("{}:1", "a".repeat(1 << 20)));
        assert!(refusal("", &long).contains("peers.2.peer"));
        let e = FileConfig::parse("id = 1\nlisten = \"127.0.0.1:0\"\ndata_dir = \"d\"")
            .unwrap_err()
            .to_string();
        assert!(e.contains("listen"), "{e}");
        // A joining node (init = false) need not be a founding voter.
        let text = format!(
            "id = 3\nlisten = \"127.0.0.1:7003\"\npeer_listen = \"[::1]:7103\"\ndata_dir = \"d\"\n\
             initial_voters = [1, 2]\n[peers]\n{peers}{}",
            entry(3, "localhost:7103")
        );
        assert!(FileConfig::parse(&text).is_ok());
    }

    /// Safe defaults: plain text only on loopback unless `insecure = true`; `[tls]` names
    /// three files.
    #[test]
    fn plain_text_is_loopback_only_unless_insecure() {
        let base = |listen: &str, peer: &str, extra: &str| {
            format!(
                "id = 1\nlisten = \"{listen}\"\npeer_listen = \"{peer}\"\ndata_dir = \"d\"\n\
                 {extra}\n[peers]\n"
            )
        };
        let refused = |text: String, want: &str| match FileConfig::parse(&text) {
            Ok(_) => panic!("accepted: {text}"),
            Err(e) => {
                let e = e.to_string();
                assert!(e.contains(want) && e.contains("insecure = true"), "{e}");
            }
        };
        refused(
            base("0.0.0.0:7001", "127.0.0.1:7101", ""),
            "listen: 0.0.0.0:7001 is not a loopback address",
        );
        refused(
            base("127.0.0.1:7001", "10.0.0.5:7101", ""),
            "peer_listen: 10.0.0.5:7101 is not a loopback address",
        );
        let cfg = FileConfig::parse(&base("0.0.0.0:7001", "[::]:7101", "insecure = true"));
        assert!(cfg.is_ok_and(|c| c.insecure && c.tls.is_none()));
        assert!(FileConfig::parse(&base("[::1]:7001", "127.0.0.1:7101", "")).is_ok());
        let tls = "[tls]\nca = \"ca.pem\"\ncert = \"n1.pem\"\nkey = \"n1.key\"";
        let cfg = FileConfig::parse(&base("0.0.0.0:7001", "0.0.0.0:7101", tls)).unwrap();
        assert_eq!(cfg.tls.map(|t| t.key), Some(PathBuf::from("n1.key")));
        let e = FileConfig::parse(&base(
            "0.0.0.0:7001",
            "0.0.0.0:7101",
            &tls.replace("ca.pem", ""),
        ))
        .unwrap_err()
        .to_string();
        assert!(e.contains("tls.ca: must not be empty"), "{e}");
        let e = FileConfig::parse(&base("0.0.0.0:7001", "0.0.0.0:7101", "[tls]\nca = \"x\""))
            .unwrap_err()
            .to_string();
        assert!(e.contains("cert"), "{e}");
    }
}
