//! `ninety cluster ...`: write a new cluster's configs (with its CA, node certificates and
//! operator token unless `--insecure`), show its status, change its membership and
//! leadership, take snapshots; `cert` and `token` issue credentials (see `security`).

use super::security::{self, InitMaterial};
use super::table::{self, Table};
use super::{commit_json, emit, request_id, short, with_id, Failure, Global};
use anyhow::Context;
use clap::{Args, Subcommand};
use ninety_client::{pb, Client, Config};
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

#[derive(Args, Debug)]
pub struct ClusterArgs {
    #[command(flatten)]
    pub g: Global,
    #[command(subcommand)]
    pub cmd: ClusterCmd,
}

#[derive(Subcommand, Debug)]
pub enum ClusterCmd {
    /// Writes the config files of a new cluster (node1.toml ... nodeN.toml, founding voters
    /// with init = true) with a new CA, node certificates and an operator token (unless
    /// --insecure), and prints how to start and call it. Nothing is contacted.
    Init(InitArgs),
    /// Issues a certificate from an existing CA: a node's (a new node, a rotation) or a
    /// client service's.
    Cert(security::CertArgs),
    /// Makes a bearer token: writes it to a 0600 file and prints the [[auth.tokens]] stanza
    /// for the node configs.
    Token(security::TokenArgs),
    /// Every member: role, leader, term, commit and applied index, replication progress;
    /// and any node given with --nodes that says it was removed.
    Status {
        /// Also show each node's state hash (computed off the node's Raft task, but it
        /// encodes the whole state: about 0.8 s with 8 M beds).
        #[arg(long)]
        hash: bool,
    },
    /// Adds a node as a learner, waits until it has caught up and promotes it to voter
    /// (`--learner`: stop after adding). Start the node first, with init = false.
    AddMember {
        /// The new node's Raft id (never reuse the id of a node whose data was lost).
        #[arg(long)]
        id: u64,
        /// Its client address (host:port), as in its config's `listen`.
        #[arg(long)]
        addr: String,
        /// Its peer address (host:port), as in its config's `peer_listen`.
        #[arg(long)]
        peer_addr: String,
        /// Only add it as a learner (promote later with promote-member).
        #[arg(long)]
        learner: bool,
        /// How long to wait for the learner to catch up before promoting it.
        #[arg(long, default_value = "5m", value_parser = super::parse_duration_ms)]
        catch_up: u64,
        /// Idempotency key of the AddMember call; default: a fresh one, printed.
        #[arg(long)]
        request_id: Option<String>,
    },
    /// Makes a caught-up learner a voter.
    PromoteMember {
        #[arg(long)]
        id: u64,
        #[arg(long)]
        request_id: Option<String>,
    },
    /// Removes a member (voter or learner) from the cluster. Removing the leader moves
    /// leadership to the most caught-up other voter first.
    RemoveMember {
        #[arg(long)]
        id: u64,
        #[arg(long)]
        request_id: Option<String>,
    },
    /// Hands leadership to another voter (default: the most up-to-date one).
    TransferLeader {
        /// The voter to lead next; 0 for any.
        #[arg(long, default_value_t = 0)]
        to: u64,
        #[arg(long)]
        request_id: Option<String>,
    },
    /// Makes nodes take a snapshot and compact their logs now (Admin.SnapshotNow): every
    /// member, or only `--id`.
    Snapshot {
        /// Only this member.
        #[arg(long)]
        id: Option<u64>,
    },
    /// Saves a consistent copy of the live cluster's state to a file (Admin.Backup from the
    /// first node of --nodes that answers): checked end to end (SHA-256, and the state
    /// decoded and hashed) before the file is written.
    Backup(super::backup::BackupArgs),
    /// Makes a NEW cluster from a backup file: writes its configs as `cluster init` does
    /// (same flags; a new cluster id and credentials) and each founding node's data
    /// directory holding the backup's state at the backup's index. Start the nodes as
    /// printed; nothing is contacted.
    Restore(super::backup::RestoreArgs),
}

/// A node's two addresses, as `cluster init` and `add-member` take them.
#[derive(Clone, Debug, Default)]
pub struct MemberAddrs {
    /// Its `listen`: clients.
    pub client: String,
    /// Its `peer_listen`: the other nodes.
    pub peer: String,
}

#[derive(Args, Debug)]
pub struct InitArgs {
    /// Instead of writing configs: check this node config and say what its next start
    /// will do (bootstrap, wait to be added, or resume from its data).
    #[arg(long, conflicts_with_all = ["addrs", "peer_addrs", "data_root", "spare_ids", "force", "insecure"])]
    pub config: Option<PathBuf>,
    /// Nodes in the new cluster (founding voters): 1, 3 or 5 make sense.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u64).range(1..=9))]
    pub nodes_count: u64,
    /// Directory for the config files; data directories default to DIR/nodeN.
    #[arg(long, default_value = ".")]
    pub dir: PathBuf,
    /// Host every node listens on (loopback: a local cluster).
    #[arg(long, default_value = "127.0.0.1")]
    pub host: String,
    /// Client port of node 1; node N serves clients on base-port + N - 1.
    #[arg(long, default_value_t = 7001)]
    pub base_port: u16,
    /// Peer port of node 1; node N serves the other nodes on peer-base-port + N - 1.
    /// Default: base-port + 100.
    #[arg(long)]
    pub peer_base_port: Option<u16>,
    /// Explicit client addresses instead of host/base-port, one per node (multi-host
    /// clusters); needs --peer-addrs.
    #[arg(long, value_delimiter = ',', requires = "peer_addrs")]
    pub addrs: Vec<String>,
    /// Explicit peer addresses, one per node, in the order of --addrs.
    #[arg(long, value_delimiter = ',', requires = "addrs")]
    pub peer_addrs: Vec<String>,
    /// Where each node keeps its data: DATA_ROOT/N (default DIR/nodeN).
    #[arg(long)]
    pub data_root: Option<PathBuf>,
    /// The region loaded through the log on first start: a built-in region or the path of a
    /// region JSON file (docs/region-format.md). Built in, each with one clinic day of
    /// schedules: gba (the Guangdong–Hong Kong–Macao Greater Bay Area's 90-minute circle,
    /// 79 hospitals), yunnan (Kunming and remote prefectures up to ~700 km away), asean
    /// (Nanning and partner hospitals in eight ASEAN capitals); and test (three hospitals,
    /// for tests). The national region is too large for one bootstrap: make it a file with
    /// `ninety region generate --preset national`.
    #[arg(long, default_value = "gba")]
    pub region: String,
    /// Several regions on every node, each its own Raft group (`[[regions]]` in the
    /// configs, docs/operations.md "Several regions"): built-in regions (provinces
    /// included), comma separated, the first the default. Replaces --region.
    #[arg(long, value_delimiter = ',', value_name = "REGION[,REGION...]")]
    pub regions: Vec<String>,
    /// Extra ids to list in the address book for nodes added later (e.g. 4,5).
    #[arg(long, value_delimiter = ',')]
    pub spare_ids: Vec<u64>,
    /// Overwrite existing config files and credentials (a new CA: every node needs its new
    /// certificate, every client the new ca.pem and token).
    #[arg(long)]
    pub force: bool,
    /// No TLS and no credentials: the configs say `insecure = true` and every caller is
    /// anonymous with every role. For development on loopback only.
    #[arg(long)]
    pub insecure: bool,
    /// Also write compose.yaml for Docker Compose: one container per node (image
    /// --image), named nodeN on the compose network, each listening on --base-port and
    /// --peer-base-port inside its container, with a volume for its data and a health
    /// check; client ports published on the host's 127.0.0.1 at base-port + N - 1. TLS
    /// and tokens as without --compose (the node's files mounted read-only), unless
    /// --insecure. Needs a built-in --region (docs/operations.md, "Run in containers").
    #[arg(long, conflicts_with_all = ["addrs", "peer_addrs", "data_root", "spare_ids"])]
    pub compose: bool,
    /// The image compose.yaml runs (built by docker/build-image.sh).
    #[arg(long, default_value = "ninety:latest", requires = "compose")]
    pub image: String,
}

pub async fn run(a: ClusterArgs) -> Result<(), Failure> {
    let g = &a.g;
    match a.cmd {
        ClusterCmd::Init(i) => init(g, i),
        ClusterCmd::Cert(c) => security::cert(g, c),
        ClusterCmd::Token(t) => security::token(g, t),
        ClusterCmd::Status { hash } => status(g, hash).await,
        ClusterCmd::AddMember {
            id,
            addr,
            peer_addr,
            learner,
            catch_up,
            request_id: rid,
        } => {
            let addrs = MemberAddrs {
                client: addr,
                peer: peer_addr,
            };
            add_member(g, id, addrs, learner, catch_up, rid).await
        }
        ClusterCmd::PromoteMember {
            id,
            request_id: rid,
        } => {
            let client = g.client()?;
            let rid = request_id(&rid);
            let promote = pb::PromoteMemberRequest {
                request_id: rid.clone(),
                node_id: id,
            };
            let r = one_change_at_a_time(|| client.promote_member(promote.clone()))
                .await
                .map_err(with_id(&rid))?;
            print_membership(g, &format!("node {id} promoted to voter"), &r, &rid);
            Ok(())
        }
        ClusterCmd::RemoveMember {
            id,
            request_id: rid,
        } => remove_member(g, id, rid).await,
        ClusterCmd::TransferLeader {
            to,
            request_id: rid,
        } => {
            let client = g.client()?;
            let rid = request_id(&rid);
            let r = client
                .transfer_leader(pb::TransferLeaderRequest {
                    request_id: rid.clone(),
                    to_node_id: to,
                })
                .await
                .map_err(with_id(&rid))?;
            let moved = to == 0 || r.leader_id == to;
            let human = table::record(&[
                ("leader", r.leader_id.to_string()),
                ("term", r.term.to_string()),
                (
                    "transferred",
                    if moved {
                        "yes"
                    } else {
                        "not (yet): check cluster status"
                    }
                    .into(),
                ),
                ("request id", rid.clone()),
            ]);
            emit(
                g,
                json!({ "request_id": rid, "leader_id": r.leader_id, "term": r.term, "transferred": moved }),
                human,
            );
            Ok(())
        }
        ClusterCmd::Snapshot { id } => snapshot(g, id).await,
        ClusterCmd::Backup(b) => super::backup::backup(g, b).await,
        ClusterCmd::Restore(r) => super::backup::restore(g, r),
    }
}

/// `cluster init --config FILE`: what the node's next start will do.
fn check_config(g: &Global, path: &Path) -> Result<(), Failure> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let cfg = ninety_cluster::runtime::config::FileConfig::parse(&text)
        .map_err(|e| Failure::Usage(format!("{}: {e}", path.display())))?;
    let voters = cfg
        .voters()
        .map_err(|e| Failure::Usage(format!("{}: {e}", path.display())))?;
    let peers = cfg
        .peer_map()
        .map_err(|e| Failure::Usage(format!("{}: {e}", path.display())))?;
    let peer_listen = cfg
        .peer_listen()
        .map_err(|e| Failure::Usage(format!("{}: {e}", path.display())))?;
    let has_data = std::fs::read_dir(&cfg.data_dir)
        .map(|mut d| d.next().is_some())
        .unwrap_or(false);
    let mut warnings = Vec::new();
    if cfg.cluster_id.is_none() && !has_data {
        warnings.push(
            "no cluster_id: an empty data directory is refused without one (add the \
             cluster's `cluster_id = \"...\"`)"
                .to_string(),
        );
    }
    let (action, what) = if has_data {
        (
            "resume",
            "resumes from its data directory (init is ignored once data exists)".to_string(),
        )
    } else if cfg.init && !cfg.join {
        if !voters.contains(&cfg.id) {
            warnings.push(format!(
                "init = true but id {} is not among the founding voters {voters:?}",
                cfg.id
            ));
        }
        for v in &voters {
            if !peers.contains_key(v) {
                warnings.push(format!("founding voter {v} has no address in [peers]"));
            }
        }
        (
            "bootstrap",
            format!(
                "bootstraps a NEW cluster with voters {voters:?} once a majority of them answer \
                 and none has data (it refuses if the cluster knows this node: it lost its \
                 data); its first leader loads region {:?} (start every founding node with the \
                 same voters)",
                cfg.region
            ),
        )
    } else {
        (
            "join",
            format!(
                "starts empty and waits to be added: ninety cluster add-member --id {} --addr {} \
                 --peer-addr {}",
                cfg.id, cfg.listen, peer_listen
            ),
        )
    };
    let (sec_lines, sec_json, sec_warnings) = security::describe_config(&text);
    let mut pairs = vec![
        ("config", path.display().to_string()),
        ("id", cfg.id.to_string()),
        ("listen", cfg.listen.to_string()),
        ("peer_listen", peer_listen.to_string()),
        ("data_dir", cfg.data_dir.display().to_string()),
        ("data", if has_data { "present" } else { "empty" }.into()),
        ("init", cfg.init.to_string()),
        ("region", cfg.region.clone()),
        ("peers", peers.len().to_string()),
        ("next start", what.clone()),
    ];
    pairs.extend(sec_lines);
    let mut human = table::record(&pairs);
    warnings.extend(sec_warnings);
    for w in &warnings {
        human.push_str(&format!("warning: {w}\n"));
    }
    emit(
        g,
        json!({
            "config": path,
            "id": cfg.id,
            "listen": cfg.listen.to_string(),
            "peer_listen": peer_listen.to_string(),
            "data_dir": cfg.data_dir,
            "has_data": has_data,
            "init": cfg.init,
            "voters": voters,
            "region": cfg.region,
            "action": action,
            "next_start": what,
            "security": sec_json,
            "warnings": warnings,
        }),
        human,
    );
    Ok(())
}

/// Node `id`'s port: `base + id - 1`, or a usage error naming `flag`.
fn nth_port(flag: &str, base: u16, id: u64) -> Result<u16, Failure> {
    id.checked_sub(1)
        .and_then(|k| u64::from(base).checked_add(k))
        .and_then(|p| u16::try_from(p).ok())
        .ok_or_else(|| Failure::Usage(format!("{flag}: node {id}'s port is out of range")))
}

/// Every node's addresses (the founding nodes, then the spare ids), as the address book
/// lists them; a port used twice (a client port that is also a peer port) is refused.
fn init_book(a: &InitArgs) -> Result<Vec<(u64, MemberAddrs)>, Failure> {
    let n = a.nodes_count;
    let peer_base = match a.peer_base_port {
        Some(p) => p,
        None => a.base_port.checked_add(100).ok_or_else(|| {
            Failure::Usage("--base-port: the peer ports (base-port + 100) are out of range".into())
        })?,
    };
    let at = |id: u64| -> Result<MemberAddrs, Failure> {
        Ok(MemberAddrs {
            client: format!("{}:{}", a.host, nth_port("--base-port", a.base_port, id)?),
            peer: format!(
                "{}:{}",
                a.host,
                nth_port("--peer-base-port", peer_base, id)?
            ),
        })
    };
    let mut book = Vec::new();
    if a.addrs.is_empty() {
        for id in 1..=n {
            book.push((id, at(id)?));
        }
    } else {
        for (flag, list) in [("--addrs", &a.addrs), ("--peer-addrs", &a.peer_addrs)] {
            if list.len() as u64 != n {
                return Err(Failure::Usage(format!(
                    "{flag} lists {} addresses for {n} nodes (--nodes-count)",
                    list.len()
                )));
            }
        }
        for (i, (client, peer)) in a.addrs.iter().zip(&a.peer_addrs).enumerate() {
            let (client, peer) = (client.clone(), peer.clone());
            book.push((i as u64 + 1, MemberAddrs { client, peer }));
        }
    }
    for (_, m) in &book {
        for addr in [&m.client, &m.peer] {
            addr.parse::<std::net::SocketAddr>().map_err(|_| {
                Failure::Usage(format!(
                    "{addr:?} is not an IP:port a node can listen on (a node's `listen` and \
                     `peer_listen` must be socket addresses)"
                ))
            })?;
        }
    }
    for spare in &a.spare_ids {
        if *spare <= n || *spare == 0 {
            return Err(Failure::Usage(format!(
                "--spare-ids: {spare} is not a new node's id (founding nodes are 1 to {n})"
            )));
        }
        book.push((*spare, at(*spare)?));
    }
    let mut seen = std::collections::BTreeSet::new();
    for addr in book.iter().flat_map(|(_, m)| [&m.client, &m.peer]) {
        if !seen.insert(addr) {
            return Err(Failure::Usage(format!(
                "address {addr} is used twice: every node needs its own client and peer \
                 ports (--base-port, --peer-base-port, --addrs, --peer-addrs)"
            )));
        }
    }
    Ok(book)
}

/// The security part of one node's config: `insecure = true`, or the files `cluster init`
/// generated for it.
enum NodeSecurity<'a> {
    Insecure,
    Secure {
        material: &'a InitMaterial,
        node: &'a security::NodeTls,
    },
}

/// What every node of a new cluster shares: its region and its cluster id; for a cluster
/// restored from a backup, the backup it holds; in containers, what every node binds.
pub struct ClusterFacts<'a> {
    pub region: &'a str,
    /// `--regions`: the `[[regions]]` of every config (empty: one region, `region`).
    pub regions: &'a [String],
    pub cluster_id: &'a str,
    /// "cluster C at index I": the data directories hold this backup (no bootstrap).
    pub restored_from: Option<&'a str>,
    /// The addresses every node listens on inside its own container (`--compose`), where
    /// the book's addresses are the containers' names.
    pub binds: Option<&'a MemberAddrs>,
}

/// The commented-out metrics and log settings of a node's config: metrics are off until
/// an operator picks the address (plain HTTP without authentication); the suggestion is the
/// client port + 2000 on loopback.
fn observability_toml(client: &str) -> String {
    let port = client
        .parse::<std::net::SocketAddr>()
        .ok()
        .and_then(|a| a.port().checked_add(2000));
    let metrics = port.map_or_else(
        || "# metrics_listen = \"127.0.0.1:9001\"\n".to_string(),
        |p| format!("# metrics_listen = \"127.0.0.1:{p}\"\n"),
    );
    format!(
        "# Prometheus metrics at GET /metrics (plain HTTP, no authentication: loopback or a\n\
         # management network only; docs/operations.md, \"Watch\"). Off unless set.\n\
         {metrics}\
         # The log on stderr: \"text\" (default) or \"json\" (one object a line).\n\
         # log_format = \"json\"\n"
    )
}

/// One node's config file text.
fn node_toml(
    id: u64,
    n: u64,
    path: &Path,
    data: &Path,
    cluster: &ClusterFacts<'_>,
    book: &[(u64, MemberAddrs)],
    sec: &NodeSecurity<'_>,
) -> String {
    let me = book
        .iter()
        .find(|(i, _)| *i == id)
        .map(|(_, m)| m.clone())
        .unwrap_or_default();
    let me = cluster.binds.cloned().unwrap_or(me);
    let voters: Vec<u64> = (1..=n).collect();
    let founding = match cluster.restored_from {
        None => "# Founding voter: bootstraps an empty data dir once a majority of the founding\n\
                 # voters answer and none has data; ignored once data exists.\n\
                 init = true\n"
            .to_string(),
        Some(from) => format!(
            "# Restored by `ninety cluster restore` from the backup of {from}: the data dir\n\
             # holds that state, so this node never bootstraps.\n\
             init = false\n"
        ),
    };
    let mut text = format!(
        "# Node {id} of a {n}-node ninety cluster, written by `ninety cluster init`.\n\
         # Start it with: ninety node --config {}\n\
         id = {id}\n\
         # Clients (ninety.v1, health, reflection).\n\
         listen = \"{}\"\n\
         # The other nodes (ninety.peer.v1): keep this port to the cluster's hosts.\n\
         peer_listen = \"{}\"\n\
         data_dir = {}\n\
         region = {}\n\
         # The cluster's id, the same on every node (stamped into data_dir/IDENTITY).\n\
         cluster_id = \"{}\"\n\
         {founding}\
         initial_voters = {voters:?}\n\
         fault_injection = false\n\
         # Audit log of state-changing and Admin calls (default: data_dir/audit.jsonl).\n\
         # audit_log = \"/var/log/ninety/audit.jsonl\"\n",
        path.display(),
        me.client,
        me.peer,
        security::toml_str(&data.display().to_string()),
        security::toml_str(cluster.region),
        cluster.cluster_id,
    );
    text.push_str(&observability_toml(&me.client));
    if let NodeSecurity::Insecure = sec {
        text.push_str(
            "# Written with --insecure: no TLS, and every caller is anonymous with every role.\n\
             # Development on loopback only; `ninety cluster init` without --insecure makes a\n\
             # CA, node certificates and an operator token.\n\
             insecure = true\n",
        );
    }
    text.push_str("\n[peers]\n");
    for (pid, m) in book {
        text.push_str(&format!(
            "\"{pid}\" = {{ peer = \"{}\", client = \"{}\" }}\n",
            m.peer, m.client
        ));
    }
    if let NodeSecurity::Secure { material, node } = sec {
        text.push_str(
            "\n# TLS on both listeners and towards the peers: peers must present a certificate\n\
             # signed by `ca`; clients verify this node with it.\n",
        );
        // In containers the files are mounted under the config directory.
        let seen = |p: &Path| match cluster.binds {
            Some(_) => super::compose::tls_path(p),
            None => p.to_path_buf(),
        };
        text.push_str(&security::tls_stanza(
            &seen(&material.ca_cert),
            &seen(&node.cert),
            &seen(&node.key),
        ));
        text.push_str(&format!(
            "\n# Callers and their roles. The tokens themselves are in {} and {} (only\n\
             # their SHA-256 is here); `ninety cluster token` makes more.\n",
            material.token_file.display(),
            material.hospital_token_file.display()
        ));
        for (name, sha) in [
            (security::OPERATOR, &material.token_sha256),
            (security::HOSPITAL, &material.hospital_token_sha256),
        ] {
            text.push_str(&security::token_stanza(name, &[name.to_string()], sha));
        }
    }
    text.push_str(&regions_toml(cluster.regions));
    text
}

/// The regions a node builds in (`ninety_cluster::runtime::load_region`), as `--region`
/// names them; its help lists each (a test checks).
pub const BUILT_IN_REGIONS: &[&str] = &["gba", "yunnan", "asean", "test"];

/// `--regions`: built-in regions, each once; not for a restored cluster (its backup is one
/// region's).
fn init_regions(regions: &[String], restored: bool) -> Result<Vec<String>, Failure> {
    if restored && !regions.is_empty() {
        return Err(Failure::Usage(
            "--regions: a restored cluster holds the one region of its backup".into(),
        ));
    }
    let mut out: Vec<String> = Vec::with_capacity(regions.len());
    for r in regions.iter().map(|r| r.trim()) {
        let built_in =
            BUILT_IN_REGIONS.contains(&r) || ninety_engine::generate::Preset::bootable(r).is_some();
        if !built_in || !ninety_cluster::runtime::regions::is_region_id(r) {
            return Err(Failure::Usage(format!(
                "--regions: {r:?} is not a built-in region ({} or a province such as \
                 hainan); write other regions' [[regions]] tables by hand",
                BUILT_IN_REGIONS.join(", ")
            )));
        }
        if out.iter().any(|o| o == r) {
            return Err(Failure::Usage(format!("--regions: {r} is listed twice")));
        }
        out.push(r.to_string());
    }
    Ok(out)
}

/// The `[[regions]]` tables of a config (nothing for one region).
fn regions_toml(regions: &[String]) -> String {
    if regions.is_empty() {
        return String::new();
    }
    let mut text = String::from(
        "\n# The regions this node hosts, each its own Raft group in data_dir/regions/<id>/;\n\
         # the first is the default of calls without the `ninety-region` header.\n",
    );
    for r in regions {
        text.push_str(&format!("[[regions]]\nid = \"{r}\"\n"));
    }
    text
}

/// The region as the configs name it: a preset, or the absolute path of a region file.
fn init_region(region: &str) -> Result<String, Failure> {
    // The provinces (`generate::PROVINCES`, e.g. "hainan") are built in too.
    if BUILT_IN_REGIONS.contains(&region)
        || ninety_engine::generate::Preset::bootable(region).is_some()
    {
        return Ok(region.to_string());
    }
    let p = Path::new(region);
    if !p.exists() {
        return Err(Failure::Usage(format!("--region: no file {}", p.display())));
    }
    Ok(absolute(p)?.display().to_string())
}

fn init(g: &Global, a: InitArgs) -> Result<(), Failure> {
    if let Some(path) = &a.config {
        return check_config(g, path);
    }
    let w = write_cluster(&a, None)?;
    print_init(g, &a, &w, None);
    Ok(())
}

/// What `cluster init` (or `restore`) wrote.
pub struct Written {
    /// The config directory.
    pub dir: PathBuf,
    pub region: String,
    pub cluster_id: String,
    /// One JSON object per founding node (id, config, listen, peer_listen, data_dir).
    pub files: Vec<Value>,
    /// Founding node id → its data directory.
    pub data_dirs: Vec<(u64, PathBuf)>,
    pub book: Vec<(u64, MemberAddrs)>,
    pub material: Option<InitMaterial>,
    /// compose.yaml, with `--compose`.
    pub compose: Option<PathBuf>,
}

/// Writes the configs (and credentials, and compose.yaml) of a new cluster; `restored_from`
/// names the backup its data directories will hold (`restore`). Checks everything before
/// writing anything.
pub fn write_cluster(a: &InitArgs, restored_from: Option<&str>) -> Result<Written, Failure> {
    let n = a.nodes_count;
    let book = if a.compose {
        super::compose::book(a)?
    } else {
        init_book(a)?
    };
    let region = init_region(&a.region)?;
    if a.compose && region.starts_with('/') {
        return Err(Failure::Usage(
            "--compose: --region must be a built-in region (gba, test, yunnan, asean): a \
             region file would have to be mounted into every container"
                .into(),
        ));
    }
    std::fs::create_dir_all(&a.dir).with_context(|| format!("creating {}", a.dir.display()))?;
    let dir = absolute(&a.dir)?;
    let data_root = match &a.data_root {
        Some(d) => absolute(d)?,
        None => dir.clone(),
    };
    let founding = &book[..n as usize];
    let ids: Vec<u64> = founding.iter().map(|(id, _)| *id).collect();
    // Everything is checked before anything is written.
    for id in &ids {
        let path = dir.join(format!("node{id}.toml"));
        if path.exists() && !a.force {
            return Err(Failure::Usage(format!(
                "{} exists (use --force to overwrite)",
                path.display()
            )));
        }
    }
    let tls_dir = dir.join("tls");
    let material = if a.insecure {
        None
    } else {
        security::refuse_existing_ca(&dir, &tls_dir, &ids, a.force)?;
        let addrs: Vec<(u64, Vec<String>)> = founding
            .iter()
            .map(|(id, m)| {
                let mut names = vec![m.client.clone(), m.peer.clone()];
                if a.compose {
                    // The client port published on the host's loopback, and the health
                    // check inside the container: both call 127.0.0.1.
                    names.push(super::compose::published(a, *id));
                }
                (*id, names)
            })
            .collect();
        let name = dir
            .file_name()
            .map_or("cluster".into(), |f| f.to_string_lossy().into_owned());
        Some(security::init_material(&name, &dir, &tls_dir, &addrs)?)
    };
    let cluster_id = ninety_cluster::runtime::identity::random_cluster_id()
        .map_err(|e| Failure::Other(anyhow::anyhow!("{e}")))?;
    let binds = a.compose.then(|| super::compose::binds(a));
    let regions = init_regions(&a.regions, restored_from.is_some())?;
    let facts = ClusterFacts {
        region: &region,
        regions: &regions,
        cluster_id: &cluster_id,
        restored_from,
        binds: binds.as_ref(),
    };
    let places = Places {
        dir: &dir,
        data_root: &data_root,
    };
    let (files, data_dirs) = node_files(a, &places, &facts, &book, material.as_ref())?;
    let compose = if a.compose {
        Some(super::compose::write(a, &dir, &ids, material.as_ref())?)
    } else {
        None
    };
    Ok(Written {
        dir,
        region,
        cluster_id,
        files,
        data_dirs,
        book,
        material,
        compose,
    })
}

/// Where `cluster init` writes: the config directory and the data root.
struct Places<'a> {
    dir: &'a Path,
    data_root: &'a Path,
}

/// Every founding node's JSON description, and node id → its data directory.
type NodeFiles = (Vec<Value>, Vec<(u64, PathBuf)>);

/// Writes every founding node's config; their JSON descriptions and data directories.
fn node_files(
    a: &InitArgs,
    at: &Places<'_>,
    facts: &ClusterFacts<'_>,
    book: &[(u64, MemberAddrs)],
    material: Option<&InitMaterial>,
) -> Result<NodeFiles, Failure> {
    let n = a.nodes_count;
    let mut files = Vec::new();
    let mut data_dirs = Vec::new();
    for (k, (id, addrs)) in book[..n as usize].iter().enumerate() {
        let id = *id;
        let path = at.dir.join(format!("node{id}.toml"));
        let data = if a.compose {
            PathBuf::from(super::compose::DATA_DIR)
        } else if a.data_root.is_some() {
            at.data_root.join(id.to_string())
        } else {
            at.data_root.join(format!("node{id}"))
        };
        let sec = match material {
            Some(m) => NodeSecurity::Secure {
                material: m,
                node: &m.nodes[k],
            },
            None => NodeSecurity::Insecure,
        };
        let shown = match facts.binds {
            Some(_) => PathBuf::from(super::compose::CONFIG_DIR).join(format!("node{id}.toml")),
            None => path.clone(),
        };
        let text = node_toml(id, n, &shown, &data, facts, book, &sec);
        ninety_cluster::runtime::config::FileConfig::parse(&text)
            .map_err(|e| Failure::Other(anyhow::anyhow!("generated config is invalid: {e}")))?;
        std::fs::write(&path, text).with_context(|| format!("writing {}", path.display()))?;
        let mut file = json!({
            "id": id, "config": path, "listen": addrs.client, "peer_listen": addrs.peer,
            "data_dir": data,
        });
        if let NodeSecurity::Secure { node, .. } = sec {
            file["tls_cert"] = json!(node.cert);
            file["tls_key"] = json!(node.key);
        }
        files.push(file);
        data_dirs.push((id, data));
    }
    Ok((files, data_dirs))
}

/// What `cluster init` wrote, and how to start and reach the cluster.
/// `restored`: what a restore put into the data directories (JSON and text), shown first.
pub(super) fn print_init(g: &Global, a: &InitArgs, w: &Written, restored: Option<(Value, String)>) {
    if let Some(compose) = &w.compose {
        return super::compose::print(g, a, w, compose);
    }
    let (dir, region, files, book) = (&w.dir, w.region.as_str(), &w.files, &w.book);
    let material = w.material.as_ref();
    let n = a.nodes_count;
    let nodes: Vec<&str> = book
        .iter()
        .take(n as usize)
        .map(|(_, m)| m.client.as_str())
        .collect();
    let nodes = nodes.join(",");
    let mut human = restored
        .as_ref()
        .map_or(String::new(), |r| format!("{}\n", r.1));
    human += &format!(
        "wrote the configs of a {n}-node cluster (region {region}) to {}\n\
         clients call the `listen` addresses; the `peer_listen` ports are for the nodes \
         only (firewall them to the cluster's hosts)\n",
        dir.display()
    );
    human.push_str(&credentials_text(material));
    human.push_str("\nstart each node (one terminal or service each):\n");
    for f in files {
        human.push_str(&format!(
            "  ninety node --config {}\n",
            f["config"].as_str().unwrap_or_default()
        ));
    }
    let creds = material.map_or(String::new(), |m| {
        format!(
            " --cacert {} --token-file {}",
            m.ca_cert.display(),
            m.token_file.display()
        )
    });
    human.push_str(&format!(
        "\nthen watch it come up (a leader, then the region loaded through the log):\n  \
         ninety cluster status --nodes {nodes}{creds}\nor set them once:\n  export NINETY_NODES={nodes}\n"
    ));
    if let Some(m) = material {
        human.push_str(&format!(
            "  export NINETY_CACERT={} NINETY_TOKEN_FILE={}\n",
            m.ca_cert.display(),
            m.token_file.display()
        ));
    }
    if !a.spare_ids.is_empty() {
        human.push_str(&format!(
            "\nids {:?} are in the address book for later: give such a node a config with init = false,\n\
             start it, then `ninety cluster add-member --id ID --addr HOST:PORT --peer-addr HOST:PEER_PORT`\n",
            a.spare_ids
        ));
    }
    if material.is_none() {
        warn_insecure(book);
    }
    let mut out = json!({
        "nodes": files, "region": region, "client_nodes": nodes, "insecure": material.is_none(),
        "cluster_id": w.cluster_id,
    });
    if let Some((r, _)) = restored {
        out["restored"] = r;
    }
    if let Some(m) = material {
        out["tls"] = json!({ "ca": m.ca_cert, "ca_key": m.ca_key });
        out["token_file"] = json!(m.token_file);
        out["hospital_token_file"] = json!(m.hospital_token_file);
    }
    emit(g, out, human);
}

/// Where `cluster init` put the credentials, and what each is for.
fn credentials_text(material: Option<&InitMaterial>) -> String {
    let Some(m) = material else {
        return "\ninsecure: no TLS and no credentials (insecure = true): every caller is \
                anonymous with every role\n"
            .into();
    };
    let tls_dir = m.ca_cert.parent().unwrap_or(Path::new("."));
    format!(
        "\ncredentials (keys and the token are readable by their owner only):\n{}\
         keep ca.key off the nodes: it issues certificates \
         (`ninety cluster cert --ca-dir {}`); more tokens: `ninety cluster token`\n",
        table::record(&[
            (
                "cluster CA",
                format!("{} (every node and client)", m.ca_cert.display())
            ),
            ("CA key", m.ca_key.display().to_string()),
            (
                "node certificates",
                format!("{}/node-ID.pem, node-ID.key", tls_dir.display())
            ),
            (
                "operator token",
                format!("{} (role operator)", m.token_file.display())
            ),
            (
                "hospital token",
                format!(
                    "{} (role hospital: the Capacity service)",
                    m.hospital_token_file.display()
                )
            ),
        ]),
        tls_dir.display()
    )
}

/// `--insecure` is allowed anywhere (an explicit opt-out), but said loudly; more loudly
/// when a node listens beyond loopback.
fn warn_insecure(book: &[(u64, MemberAddrs)]) {
    let exposed: Vec<&str> = book
        .iter()
        .flat_map(|(_, m)| [m.client.as_str(), m.peer.as_str()])
        .filter(|a| {
            a.parse::<std::net::SocketAddr>()
                .is_ok_and(|sa| !sa.ip().is_loopback())
        })
        .collect();
    eprintln!(
        "warning: --insecure: the nodes serve without TLS and anyone who reaches them acts \
         with every role; use it for development on loopback only"
    );
    if !exposed.is_empty() {
        eprintln!(
            "warning: --insecure with addresses beyond loopback ({}): anyone on the network \
             can read and change the cluster's state",
            exposed.join(", ")
        );
    }
}

fn absolute(p: &Path) -> Result<PathBuf, Failure> {
    if p.is_absolute() {
        return Ok(p.to_path_buf());
    }
    let cwd = std::env::current_dir().context("current directory")?;
    Ok(cwd.join(p))
}

/// A client of one node only, with `base`'s credentials and region: one attempt, short
/// timeouts (for per-node status).
fn one_node(base: &Client, addr: &str) -> Result<Client, String> {
    base.sibling(
        &[addr],
        Config {
            attempt_timeout: Duration::from_secs(2),
            total_timeout: Duration::from_secs(2),
            max_attempts: 1,
            connect_timeout: Duration::from_secs(1),
            ..base.config().clone()
        },
    )
    .map_err(|e| e.to_string())
}

async fn status_of(
    base: Client,
    addr: String,
    hash: bool,
) -> Result<pb::ClusterStatusResponse, String> {
    if addr.is_empty() {
        return Err("client address unknown: the answering node's [peers] does not list it".into());
    }
    let c = one_node(&base, &addr)?;
    c.cluster_status(pb::ClusterStatusRequest {
        with_state_hash: hash,
    })
    .await
    .map_err(|s| format!("{}: {}", super::code_name(s.code()), s.message()))
}

fn role_name(r: pb::MemberRole) -> String {
    short(r.as_str_name(), "MEMBER_ROLE_")
}

/// A node's own answer to `cluster status`, or why there is none.
type View = Result<pb::ClusterStatusResponse, String>;

/// `host:port` without a scheme, to compare given addresses with members' ones.
fn bare(addr: &str) -> &str {
    addr.trim()
        .trim_start_matches("http://")
        .trim_start_matches("https://")
}

async fn status(g: &Global, hash: bool) -> Result<(), Failure> {
    let client = g.client()?;
    let base = client.clone();
    let first = client
        .cluster_status(pb::ClusterStatusRequest::default())
        .await?;
    // Every member answers for itself; the leader's answer carries replication progress.
    let asked: Vec<(u64, String)> = first
        .members
        .iter()
        .map(|m| (m.node_id, m.client_address.clone()))
        .collect();
    let views = ask_all(&base, asked, hash).await;
    let leader_id = leader_of(&views).unwrap_or(first.leader_id);
    let leader_view = views
        .iter()
        .find(|(id, _)| *id == leader_id)
        .and_then(|(_, r)| r.as_ref().ok())
        .cloned();
    let members = leader_view
        .as_ref()
        .map(|l| l.members.clone())
        .unwrap_or_else(|| first.members.clone());
    let removed = removed_nodes(&client, &base, &members, hash).await;
    let leader_applied = leader_view.as_ref().map(|l| l.applied_index).unwrap_or(0);
    let mut t = Table::new(&status_columns(hash));
    let mut list = Vec::new();
    for m in &members {
        let view: View = match views.iter().find(|(id, _)| *id == m.node_id) {
            Some((_, r)) => r.clone(),
            None => Err("not asked: a newer member than the first answer knew".into()),
        };
        let (row, json) = member_row(m, &view, leader_id, leader_applied, hash);
        t.row(row);
        list.push(json);
    }
    for (addr, s) in &removed {
        let (row, json) = removed_row(addr, s, hash);
        t.row(row);
        list.push(json);
    }
    let term = leader_view.as_ref().map(|l| l.term).unwrap_or(first.term);
    let log_time = leader_view
        .as_ref()
        .map(|l| l.applied_log_time_ms)
        .unwrap_or(first.applied_log_time_ms);
    let leader_txt = if leader_id == 0 {
        "none (election in progress or no quorum)".to_string()
    } else {
        format!("{leader_id} (term {term})")
    };
    let human = format!(
        "leader: {leader_txt}; {} members; log time {}\n{}",
        members.len(),
        table::utc(log_time),
        t.render()
    );
    let value = json!({
        "leader_id": leader_id,
        "term": term,
        "answered_by": first.node_id,
        "applied_log_time_ms": log_time,
        "members": list,
    });
    emit(g, value, human);
    Ok(())
}

/// The member that says it leads, the highest term winning.
fn leader_of(views: &[(u64, View)]) -> Option<u64> {
    views
        .iter()
        .filter_map(|(id, r)| {
            r.as_ref()
                .ok()
                .filter(|s| s.leader_id == *id)
                .map(|s| (*id, s.term))
        })
        .max_by_key(|(_, term)| *term)
        .map(|(id, _)| id)
}

/// Asks every `(id, client address)` for its own status, concurrently.
async fn ask_all(base: &Client, asked: Vec<(u64, String)>, hash: bool) -> Vec<(u64, View)> {
    let tasks: Vec<_> = asked
        .into_iter()
        .map(|(id, addr)| (id, tokio::spawn(status_of(base.clone(), addr, hash))))
        .collect();
    let mut views = Vec::new();
    for (id, t) in tasks {
        let r = t
            .await
            .unwrap_or_else(|e| Err(format!("status task failed: {e}")));
        views.push((id, r));
    }
    views
}

/// The given nodes (`--nodes`) that are not members and say they were removed.
async fn removed_nodes(
    client: &Client,
    base: &Client,
    members: &[pb::Member],
    hash: bool,
) -> Vec<(String, pb::ClusterStatusResponse)> {
    let others: Vec<(u64, String)> = client
        .addrs()
        .into_iter()
        .filter(|a| !members.iter().any(|m| bare(&m.client_address) == bare(a)))
        .map(|a| (0, a))
        .collect();
    ask_all(base, others.clone(), hash)
        .await
        .into_iter()
        .zip(others)
        .filter_map(|((_, view), (_, addr))| view.ok().filter(|s| s.removed).map(|s| (addr, s)))
        .collect()
}

fn status_columns(hash: bool) -> Vec<&'static str> {
    let mut columns = vec![
        "id", "address", "role", "state", "term", "commit", "applied", "behind", "match",
    ];
    if hash {
        columns.push("state hash");
    }
    columns
}

/// One member's table row and JSON object.
fn member_row(
    m: &pb::Member,
    view: &View,
    leader_id: u64,
    leader_applied: u64,
    hash: bool,
) -> (Vec<String>, Value) {
    let matched = if m.match_index == 0 {
        "-".into()
    } else {
        m.match_index.to_string()
    };
    let base = json!({
        "node_id": m.node_id,
        "address": m.client_address,
        "peer_address": m.address,
        "role": m.role().as_str_name(),
        "match_index": m.match_index,
    });
    let s = match view {
        Ok(s) => s,
        Err(e) => {
            let mut row = vec![m.node_id.to_string(), m.client_address.clone()];
            row.push(role_name(m.role()));
            row.extend(["unreachable", "-", "-", "-", "-"].map(String::from));
            row.push(matched);
            if hash {
                row.push("-".into());
            }
            let more =
                json!({"state": "unreachable", "leader": false, "reachable": false, "error": e});
            return (row, merged(base, more));
        }
    };
    let state = if m.node_id == leader_id {
        "leader"
    } else if m.role() == pb::MemberRole::Learner {
        "learner"
    } else {
        "follower"
    };
    let behind = leader_applied.saturating_sub(s.applied_index);
    let mut row = vec![m.node_id.to_string(), m.client_address.clone()];
    row.push(role_name(m.role()));
    row.push(state.into());
    row.extend([s.term, s.commit_index, s.applied_index, behind].map(|n| n.to_string()));
    row.push(matched);
    let mut more = json!({
        "state": state,
        "leader": m.node_id == leader_id,
        "reachable": true,
        "term": s.term,
        "commit_index": s.commit_index,
        "applied_index": s.applied_index,
        "behind_leader": behind,
        "leader_seen": s.leader_id,
        "applied_log_time_ms": s.applied_log_time_ms,
    });
    if hash {
        row.push(table::short_hex(&s.state_hash));
        more["state_hash"] = json!(table::hex(&s.state_hash));
    }
    (row, merged(base, more))
}

/// The row of a node that was removed from the cluster (it says so itself).
fn removed_row(addr: &str, s: &pb::ClusterStatusResponse, hash: bool) -> (Vec<String>, Value) {
    let mut row = vec![s.node_id.to_string(), bare(addr).to_string()];
    row.extend(["-", "removed"].map(String::from));
    row.extend([s.term, s.commit_index, s.applied_index].map(|n| n.to_string()));
    row.extend(["-", "-"].map(String::from));
    let mut value = json!({
        "node_id": s.node_id,
        "address": bare(addr),
        "state": "removed",
        "leader": false,
        "reachable": true,
        "term": s.term,
        "commit_index": s.commit_index,
        "applied_index": s.applied_index,
    });
    if hash {
        row.push(table::short_hex(&s.state_hash));
        value["state_hash"] = json!(table::hex(&s.state_hash));
    }
    (row, value)
}

/// `base` with the fields of `more` added.
fn merged(mut base: Value, more: Value) -> Value {
    if let (Some(b), Value::Object(m)) = (base.as_object_mut(), more) {
        b.extend(m);
    }
    base
}

fn members_json(ms: &[pb::Member]) -> Value {
    Value::Array(
        ms.iter()
            .map(|m| {
                json!({
                    "node_id": m.node_id,
                    "address": m.client_address,
                    "peer_address": m.address,
                    "role": m.role().as_str_name(),
                    "leader": m.leader,
                    "reachable": m.reachable,
                    "match_index": m.match_index,
                })
            })
            .collect(),
    )
}

fn members_table(ms: &[pb::Member]) -> String {
    let mut t = Table::new(&["id", "address", "role", "leader", "reachable"]);
    for m in ms {
        t.row(vec![
            m.node_id.to_string(),
            m.client_address.clone(),
            role_name(m.role()),
            if m.leader { "yes" } else { "" }.into(),
            if m.reachable { "yes" } else { "no" }.into(),
        ]);
    }
    t.render()
}

fn print_membership(g: &Global, what: &str, r: &pb::MembershipResponse, rid: &str) {
    let log_index = r.commit.as_ref().map(|c| c.log_index).unwrap_or(0);
    let human = format!(
        "{what} (log index {log_index}, request id {rid})\n{}",
        members_table(&r.members)
    );
    emit(
        g,
        json!({ "request_id": rid, "members": members_json(&r.members), "commit": commit_json(&r.commit) }),
        human,
    );
}

/// How long a membership command waits for a change in progress to finish.
const PENDING_CHANGE_WAIT: Duration = Duration::from_secs(15);

/// Sends a membership change (`call`, the same request each time), again while the leader
/// answers that another change is in progress, for at most [`PENDING_CHANGE_WAIT`]. A
/// leader refuses a change until it has applied every configuration entry of its log: the
/// previous change, or, right after it took over (a `transfer-leader`, or the leadership
/// a removed leader hands on), the entries it had not applied yet. Both pass by
/// themselves, and the request id makes a resent change happen at most once.
async fn one_change_at_a_time<F, Fut>(mut call: F) -> Result<pb::MembershipResponse, tonic::Status>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<pb::MembershipResponse, tonic::Status>>,
{
    let deadline = Instant::now() + PENDING_CHANGE_WAIT;
    loop {
        match call().await {
            Err(s)
                if s.code() == tonic::Code::FailedPrecondition
                    && s.message().contains("membership change is in progress")
                    && Instant::now() < deadline =>
            {
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            answer => return answer,
        }
    }
}

/// `cluster remove-member`. Removing the leader moves leadership first: the leader hands
/// it to the most caught-up other voter and answers with a hint to it, which the client
/// follows with the same request (Admin.RemoveMember); the output says where it went.
async fn remove_member(g: &Global, id: u64, rid: Option<String>) -> Result<(), Failure> {
    let client = g.client()?;
    let rid = request_id(&rid);
    let leader_before = client
        .cluster_status(pb::ClusterStatusRequest::default())
        .await
        .map_or(0, |s| s.leader_id);
    let remove = pb::RemoveMemberRequest {
        request_id: rid.clone(),
        node_id: id,
    };
    let r = one_change_at_a_time(|| client.remove_member(remove.clone()))
        .await
        .map_err(with_id(&rid))?;
    let leader_after = r.members.iter().find(|m| m.leader).map(|m| m.node_id);
    let what = match leader_after {
        Some(new) if leader_before == id => {
            format!("node {id} was the leader: leadership moved to node {new}, then node {id} was removed")
        }
        _ => format!("node {id} removed"),
    };
    print_membership(g, &what, &r, &rid);
    Ok(())
}

async fn add_member(
    g: &Global,
    id: u64,
    addrs: MemberAddrs,
    learner: bool,
    catch_up_ms: u64,
    rid: Option<String>,
) -> Result<(), Failure> {
    let client = g.client()?;
    let rid = request_id(&rid);
    let add = pb::AddMemberRequest {
        request_id: rid.clone(),
        node_id: id,
        address: addrs.peer.clone(),
        client_address: addrs.client.clone(),
    };
    let added = one_change_at_a_time(|| client.add_member(add.clone()))
        .await
        .map_err(with_id(&rid))?;
    if learner {
        print_membership(g, &format!("node {id} added as a learner"), &added, &rid);
        return Ok(());
    }
    if !g.json {
        println!("node {id} added as a learner (request id {rid}); waiting for it to catch up...");
    }
    // Caught up: the new node has applied what the leader had committed when we looked.
    let deadline = Instant::now() + Duration::from_millis(catch_up_ms);
    let target = client
        .cluster_status(pb::ClusterStatusRequest::default())
        .await?
        .commit_index;
    loop {
        if let Ok(s) = status_of(client.clone(), addrs.client.clone(), false).await {
            if s.applied_index >= target {
                break;
            }
        }
        if Instant::now() >= deadline {
            return Err(Failure::Other(anyhow::anyhow!(
                "node {id} did not catch up to index {target} within {} s; it stays a learner \
                 (check it runs and reaches the leader, then `ninety cluster promote-member --id {id}`)",
                catch_up_ms / 1000
            )));
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    let prid = ninety_client::new_request_id();
    let promote = pb::PromoteMemberRequest {
        request_id: prid.clone(),
        node_id: id,
    };
    let promoted = one_change_at_a_time(|| client.promote_member(promote.clone()))
        .await
        .map_err(with_id(&prid))?;
    let human = format!(
        "node {id} caught up (index {target}) and was promoted to voter (request ids: add {rid}, promote {prid})\n{}",
        members_table(&promoted.members)
    );
    emit(
        g,
        json!({
            "request_id": rid,
            "promote_request_id": prid,
            "caught_up_to": target,
            "members": members_json(&promoted.members),
            "commit": commit_json(&promoted.commit),
        }),
        human,
    );
    Ok(())
}

async fn snapshot(g: &Global, only: Option<u64>) -> Result<(), Failure> {
    let client = g.client()?;
    let st = client
        .cluster_status(pb::ClusterStatusRequest::default())
        .await?;
    let targets: Vec<(u64, String)> = st
        .members
        .iter()
        .filter(|m| only.is_none_or(|id| id == m.node_id))
        .map(|m| (m.node_id, m.client_address.clone()))
        .collect();
    if targets.is_empty() {
        return Err(Failure::Usage(format!(
            "--id {}: not a member",
            only.unwrap_or_default()
        )));
    }
    let mut t = Table::new(&[
        "id",
        "address",
        "snapshot index",
        "term",
        "bytes",
        "state hash",
    ]);
    let mut list = Vec::new();
    let mut failed = None;
    for (id, addr) in targets {
        let rid = ninety_client::new_request_id();
        let c = client
            .sibling(
                &[addr.as_str()],
                Config {
                    max_attempts: 1,
                    total_timeout: Duration::from_secs(g.timeout.max(1)),
                    attempt_timeout: Duration::from_secs(g.timeout.max(1)),
                    ..client.config().clone()
                },
            )
            .map_err(|e| Failure::Usage(e.to_string()))?;
        match c
            .snapshot_now(pb::SnapshotNowRequest {
                request_id: rid.clone(),
            })
            .await
        {
            Ok(s) => {
                t.row(vec![
                    id.to_string(),
                    addr.clone(),
                    s.snapshot_index.to_string(),
                    s.snapshot_term.to_string(),
                    s.snapshot_bytes.to_string(),
                    table::short_hex(&s.state_hash),
                ]);
                list.push(json!({
                    "node_id": id,
                    "address": addr,
                    "snapshot_index": s.snapshot_index,
                    "snapshot_term": s.snapshot_term,
                    "snapshot_bytes": s.snapshot_bytes,
                    "state_hash": table::hex(&s.state_hash),
                }));
            }
            Err(s) => {
                let msg = format!("{}: {}", super::code_name(s.code()), s.message());
                t.row(vec![
                    id.to_string(),
                    addr.clone(),
                    "failed".into(),
                    "-".into(),
                    "-".into(),
                    msg.clone(),
                ]);
                list.push(json!({ "node_id": id, "address": addr, "error": msg }));
                failed.get_or_insert(s);
            }
        }
    }
    emit(g, json!({ "snapshots": list }), t.render());
    match failed {
        Some(s) => Err(Failure::Status {
            status: s,
            request_id: None,
        }),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory as _;

    /// `ninety cluster`'s subcommands alone, to render `init --help`.
    #[derive(clap::Parser)]
    #[allow(dead_code)]
    struct Cli {
        #[command(subcommand)]
        cmd: ClusterCmd,
    }

    /// `cluster init --help` names every region a node builds in, and each of them loads.
    #[test]
    fn init_help_lists_every_built_in_region() {
        let mut cmd = Cli::command();
        let init = cmd.find_subcommand_mut("init").expect("init");
        let help = init.render_long_help().to_string();
        for region in BUILT_IN_REGIONS {
            assert!(
                help.contains(region),
                "--help does not name {region}:\n{help}"
            );
            let loaded = ninety_cluster::runtime::load_region(region);
            assert!(loaded.is_ok(), "a node does not build in {region}");
        }
        // Said to be a file, not built in: a node refuses the name.
        assert!(help.contains("national"), "{help}");
        assert!(ninety_cluster::runtime::load_region("national").is_err());
        assert!(init_region("national").is_err());
    }
}
