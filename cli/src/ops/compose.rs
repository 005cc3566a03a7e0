//! `ninety cluster init --compose`: a region of containers. The node configs name the
//! other nodes by their service names on the compose network (`node2:7101`), every node
//! listens on the same ports inside its own container, and compose.yaml runs the image
//! (`docker/Dockerfile`, built by `docker/build-image.sh`) once per node, with a named
//! volume for its data, a health check (`ninety health`) and its client port published on
//! the host's loopback only. The peer ports are never published: only the nodes reach them.

use super::cluster::{InitArgs, MemberAddrs, Written};
use super::security::InitMaterial;
use super::{emit, Failure, Global};
use anyhow::Context;
use serde_json::json;
use std::path::{Path, PathBuf};

/// Where the configs are mounted in every container (read-only).
pub const CONFIG_DIR: &str = "/etc/ninety";
/// Every node's data directory inside its container: its named volume.
pub const DATA_DIR: &str = "/data";
/// The binary's path in the image.
pub const BINARY: &str = "/usr/local/bin/ninety";
/// Health check cadence, seconds: a node is marked unhealthy after this many failures.
const HEALTH_INTERVAL_S: u32 = 2;
const HEALTH_RETRIES: u32 = 15;

/// The ports every node listens on inside its container: --base-port and
/// --peer-base-port (default base-port + 100).
fn ports(a: &InitArgs) -> Result<(u16, u16), Failure> {
    let peer = match a.peer_base_port {
        Some(p) => p,
        None => a.base_port.checked_add(100).ok_or_else(|| {
            Failure::Usage("--base-port: the peer port (base-port + 100) is out of range".into())
        })?,
    };
    if peer == a.base_port {
        return Err(Failure::Usage(
            "--peer-base-port: must differ from --base-port (clients and peers are served on \
             two listeners)"
                .into(),
        ));
    }
    Ok((a.base_port, peer))
}

/// The address book: node N is `nodeN` on the compose network.
pub fn book(a: &InitArgs) -> Result<Vec<(u64, MemberAddrs)>, Failure> {
    let (client, peer) = ports(a)?;
    // Host ports base-port .. base-port + N - 1 must exist.
    u16::try_from(u64::from(a.base_port) + a.nodes_count - 1)
        .map_err(|_| Failure::Usage("--base-port: the published ports are out of range".into()))?;
    Ok((1..=a.nodes_count)
        .map(|id| {
            let addrs = MemberAddrs {
                client: format!("node{id}:{client}"),
                peer: format!("node{id}:{peer}"),
            };
            (id, addrs)
        })
        .collect())
}

/// What every node binds inside its container (all interfaces: the compose network).
pub fn binds(a: &InitArgs) -> MemberAddrs {
    let peer = a
        .peer_base_port
        .unwrap_or_else(|| a.base_port.saturating_add(100));
    MemberAddrs {
        client: format!("0.0.0.0:{}", a.base_port),
        peer: format!("0.0.0.0:{peer}"),
    }
}

/// The host port node `id`'s client port is published on.
fn host_port(a: &InitArgs, id: u64) -> u64 {
    u64::from(a.base_port) + id - 1
}

/// Node `id`'s client address as the host reaches it (its certificate names it too).
pub fn published(a: &InitArgs, id: u64) -> String {
    format!("127.0.0.1:{}", host_port(a, id))
}

/// Where a TLS file `cluster init` wrote is mounted inside every container.
pub fn tls_path(host: &Path) -> PathBuf {
    let name = host.file_name().map(PathBuf::from).unwrap_or_default();
    Path::new(CONFIG_DIR).join(TLS_SUBDIR).join(name)
}

/// The TLS files' directory under [`CONFIG_DIR`], and beside compose.yaml on the host.
const TLS_SUBDIR: &str = "tls";

/// What a secure region's containers need: the group that may read the node keys.
pub struct ComposeTls {
    /// The keys' group on the host: the containers' user joins it (`group_add`) to read
    /// its key, mounted read-only; the keys are 0640, the CA key is never mounted.
    pub key_gid: u32,
}

/// Lets the containers read their node keys: 0640, and the group they join. The CA key
/// stays 0600 and on the host.
#[cfg(unix)]
fn share_keys(material: &InitMaterial) -> Result<ComposeTls, Failure> {
    use std::os::unix::fs::{MetadataExt as _, PermissionsExt as _};
    let mut gid = 0;
    for node in &material.nodes {
        std::fs::set_permissions(&node.key, std::fs::Permissions::from_mode(0o640))
            .with_context(|| format!("sharing {} with its container", node.key.display()))?;
        gid = std::fs::metadata(&node.key)
            .with_context(|| format!("reading {}", node.key.display()))?
            .gid();
    }
    Ok(ComposeTls { key_gid: gid })
}

#[cfg(not(unix))]
fn share_keys(_: &InitMaterial) -> Result<ComposeTls, Failure> {
    Ok(ComposeTls { key_gid: 0 })
}

/// One service's TLS mounts and group, or nothing for an insecure region.
fn tls_lines(id: u64, tls: Option<&ComposeTls>) -> (String, String) {
    let Some(tls) = tls else {
        return (String::new(), String::new());
    };
    let dir = format!("{CONFIG_DIR}/{TLS_SUBDIR}");
    let mounts = [
        "ca.pem".to_string(),
        format!("node-{id}.pem"),
        format!("node-{id}.key"),
    ]
    .iter()
    .map(|f| format!("\x20     - \"./{TLS_SUBDIR}/{f}:{dir}/{f}:ro\"\n"))
    .collect();
    let group = format!("\x20   group_add:\n\x20     - \"{}\"\n", tls.key_gid);
    (mounts, group)
}

/// compose.yaml's text (compose file format 2.4: Debian's docker-compose 1.29 and Compose
/// v2 both read it).
pub fn compose_yaml(a: &InitArgs, ids: &[u64], tls: Option<&ComposeTls>) -> String {
    let mut y = format!(
        "# A {n}-node ninety region, written by `ninety cluster init --compose`.\n\
         # Build the image first: docker/build-image.sh PATH/TO/ninety {image}\n\
         # Then: docker-compose -f compose.yaml up -d   (docker compose ... with Compose v2)\n\
         # Clients reach node N on 127.0.0.1:{base}+N-1 of this host; the nodes reach each\n\
         # other as nodeN on the compose network. Peer ports are not published.\n\
         version: \"2.4\"\n\
         services:\n",
        n = ids.len(),
        image = a.image,
        base = a.base_port,
    );
    let cacert = match tls {
        Some(_) => format!(", \"--cacert\", \"{CONFIG_DIR}/{TLS_SUBDIR}/ca.pem\""),
        None => String::new(),
    };
    for id in ids {
        let (mounts, group) = tls_lines(*id, tls);
        y.push_str(&format!(
            "  node{id}:\n\
             \x20   image: {image:?}\n\
             \x20   command: [\"node\", \"--config\", \"{CONFIG_DIR}/node{id}.toml\"]\n\
             \x20   hostname: node{id}\n\
             \x20   environment:\n\
             \x20     RUST_LOG: \"info\"\n\
             \x20   volumes:\n\
             \x20     - \"./node{id}.toml:{CONFIG_DIR}/node{id}.toml:ro\"\n\
             \x20     - \"node{id}-data:{DATA_DIR}\"\n\
             {mounts}\
             {group}\
             \x20   ports:\n\
             \x20     - \"127.0.0.1:{host}:{port}\"\n\
             \x20   healthcheck:\n\
             \x20     test: [\"CMD\", \"{BINARY}\", \"health\", \"--nodes\", \"127.0.0.1:{port}\", \"--timeout\", \"2\"{cacert}]\n\
             \x20     interval: {HEALTH_INTERVAL_S}s\n\
             \x20     timeout: 3s\n\
             \x20     retries: {HEALTH_RETRIES}\n\
             \x20     start_period: 5s\n\
             \x20   restart: unless-stopped\n\
             \x20   stop_grace_period: 10s\n",
            image = a.image,
            host = host_port(a, *id),
            port = a.base_port,
        ));
    }
    y.push_str("volumes:\n");
    for id in ids {
        y.push_str(&format!("  node{id}-data: {{}}\n"));
    }
    y
}

/// Writes `dir/compose.yaml`; with TLS material, lets the containers read their keys.
pub fn write(
    a: &InitArgs,
    dir: &Path,
    ids: &[u64],
    material: Option<&InitMaterial>,
) -> Result<PathBuf, Failure> {
    let path = dir.join("compose.yaml");
    if path.exists() && !a.force {
        return Err(Failure::Usage(format!(
            "{} exists (use --force to overwrite)",
            path.display()
        )));
    }
    let tls = material.map(share_keys).transpose()?;
    std::fs::write(&path, compose_yaml(a, ids, tls.as_ref()))
        .with_context(|| format!("writing {}", path.display()))?;
    Ok(path)
}

/// What `cluster init --compose` wrote and how to run it.
pub fn print(g: &Global, a: &InitArgs, w: &Written, compose: &Path) {
    let hosts: Vec<String> = w
        .data_dirs
        .iter()
        .map(|(id, _)| published(a, *id))
        .collect();
    let nodes = hosts.join(",");
    let (security, credentials) = match &w.material {
        Some(m) => (
            format!(
                "TLS on every listener (CA {ca}; the node keys are 0640, read by the \
                 containers' group); operator token {token}",
                ca = m.ca_cert.display(),
                token = m.token_file.display(),
            ),
            format!(
                " --cacert {} --token-file {}",
                m.ca_cert.display(),
                m.token_file.display()
            ),
        ),
        None => (
            "insecure: no TLS and no credentials".to_string(),
            String::new(),
        ),
    };
    let human = format!(
        "wrote a {n}-node region in containers (region {region}) to {dir}: node1.toml ... and \
         {compose}\n\
         {security}; the client ports are published on this host's loopback only\n\n\
         build the image, then start the region:\n  \
         docker/build-image.sh target/release/ninety {image}\n  \
         docker-compose -f {compose} up -d\n\n\
         then watch it come up:\n  ninety cluster status --nodes {nodes}{credentials}\n",
        n = a.nodes_count,
        region = w.region,
        dir = w.dir.display(),
        compose = compose.display(),
        image = a.image,
    );
    if w.material.is_none() {
        eprintln!(
            "warning: --insecure: the nodes serve without TLS on the compose network; anyone \
             who reaches a published port acts with every role"
        );
    }
    let mut out = json!({
        "nodes": w.files, "region": w.region, "client_nodes": nodes,
        "insecure": w.material.is_none(), "compose": compose, "image": a.image,
        "cluster_id": w.cluster_id,
    });
    if let Some(m) = &w.material {
        out["tls"] = json!({ "ca": m.ca_cert, "ca_key": m.ca_key });
        out["token_file"] = json!(m.token_file);
        out["hospital_token_file"] = json!(m.hospital_token_file);
    }
    emit(g, out, human);
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        init: InitArgs,
    }

    #[test]
    fn every_node_is_a_service_with_a_volume_a_health_check_and_a_loopback_port() {
        let cli = Cli::parse_from([
            "x",
            "--compose",
            "--insecure",
            "--base-port",
            "17001",
            "--image",
            "ninety:t",
        ]);
        let y = compose_yaml(&cli.init, &[1, 2, 3], None);
        for id in 1..=3u64 {
            assert!(y.contains(&format!("  node{id}:\n")), "{y}");
            assert!(
                y.contains(&format!("127.0.0.1:{}:17001", 17000 + id)),
                "{y}"
            );
            assert!(y.contains(&format!("node{id}-data:{DATA_DIR}")), "{y}");
        }
        assert_eq!(y.matches("healthcheck:").count(), 3);
        assert!(!y.contains("17101"), "peer ports are never published: {y}");
        let Ok(b) = book(&cli.init) else {
            panic!("no book")
        };
        assert_eq!(b[1].1.peer, "node2:17101");
    }

    #[test]
    fn a_secure_region_mounts_each_node_its_own_key_and_checks_health_over_tls() {
        let cli = Cli::parse_from(["x", "--compose"]);
        let y = compose_yaml(&cli.init, &[1, 2, 3], Some(&ComposeTls { key_gid: 1234 }));
        for id in 1..=3u64 {
            let key = format!("\"./tls/node-{id}.key:{CONFIG_DIR}/tls/node-{id}.key:ro\"");
            assert_eq!(y.matches(&key).count(), 1, "{y}");
        }
        assert_eq!(y.matches("./tls/ca.pem:").count(), 3, "{y}");
        assert!(
            !y.contains("ca.key"),
            "the CA key never enters a container: {y}"
        );
        assert_eq!(y.matches("group_add:\n      - \"1234\"").count(), 3, "{y}");
        assert_eq!(
            y.matches(&format!("\"--cacert\", \"{CONFIG_DIR}/tls/ca.pem\"]"))
                .count(),
            3,
            "{y}"
        );
        assert_eq!(
            tls_path(Path::new("/home/op/region1/tls/node-2.key")),
            Path::new("/etc/ninety/tls/node-2.key")
        );
    }

    #[test]
    fn the_example_in_docker_is_what_init_writes() {
        let cli = Cli::parse_from(["x", "--compose", "--insecure"]);
        let example = include_str!("../../../docker/compose.yaml");
        assert_eq!(
            compose_yaml(&cli.init, &[1, 2, 3], None),
            example,
            "regenerate docker/: ninety cluster init --compose --insecure --region test \
             --dir docker --force"
        );
    }
}
