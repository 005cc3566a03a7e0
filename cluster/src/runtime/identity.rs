//! Who this data directory belongs to: the `IDENTITY` file.
//!
//! TOML with the cluster id, the node id and the node's incarnation: a random 64-bit
//! number drawn once, when the node first creates its data directory, and written (temp
//! file, fsync, rename, directory fsync) before the Raft store exists. A node that lost its
//! data directory therefore comes back with another incarnation, which the cluster's member
//! registry (`node::members`) tells apart from the one it registered.
//!
//! On every start the file's cluster id and node id must equal the config's; a directory
//! with data but no `IDENTITY` (made by a build before identities) adopts a new incarnation.

use crate::error::Error;
use serde::{Deserialize, Serialize};
use std::io::Write;
use std::path::{Path, PathBuf};

/// The file's name inside the data directory.
pub const IDENTITY_FILE: &str = "IDENTITY";
/// The longest `IDENTITY` file read, in bytes (a few short lines).
const IDENTITY_BYTES_MAX: u64 = 1024;

/// The identity of one node's data directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    pub cluster_id: String,
    pub node_id: u64,
    pub incarnation: u64,
}

/// The file's layout (the incarnation in hex: TOML integers stop at i64).
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct IdentityFile {
    cluster_id: String,
    node_id: u64,
    incarnation: String,
}

fn path_of(data_dir: &Path) -> PathBuf {
    data_dir.join(IDENTITY_FILE)
}

/// Reads or creates the identity of `data_dir` for node `node_id` of cluster
/// `config_cluster_id` (the config's `cluster_id`, if it has one). Creates the directory.
/// Refuses a file naming another cluster or node, and a new directory when the config
/// names no cluster.
pub fn establish(
    data_dir: &Path,
    config_cluster_id: Option<&str>,
    node_id: u64,
) -> Result<Identity, Error> {
    let path = path_of(data_dir);
    if let Some(found) = read(&path)? {
        check_matches(&path, &found, config_cluster_id, node_id)?;
        return Ok(found);
    }
    let Some(cluster_id) = config_cluster_id else {
        return Err(Error::Config(format!(
            "cluster_id: missing, and {} has no {IDENTITY_FILE} file to take it from: add \
             `cluster_id = \"...\"` (the id `ninety cluster init` wrote into every node's \
             config; the same on every node of the cluster) to the node's config",
            data_dir.display()
        )));
    };
    let had_data = std::fs::read_dir(data_dir).is_ok_and(|mut d| d.next().is_some());
    std::fs::create_dir_all(data_dir)
        .map_err(|e| Error::Storage(format!("data_dir = {}: {e}", data_dir.display())))?;
    let identity = Identity {
        cluster_id: cluster_id.to_string(),
        node_id,
        incarnation: random_incarnation()?,
    };
    write(data_dir, &identity)?;
    if had_data {
        tracing::info!(
            incarnation = %format!("{:016x}", identity.incarnation),
            "the data directory had no {IDENTITY_FILE} file (a build before identities): \
             adopted a new incarnation"
        );
    }
    Ok(identity)
}

fn check_matches(
    path: &Path,
    found: &Identity,
    config_cluster_id: Option<&str>,
    node_id: u64,
) -> Result<(), Error> {
    if found.node_id != node_id {
        return Err(Error::Startup(format!(
            "{}: this data directory belongs to node {}, but the config's id is {node_id}: \
             point data_dir at node {node_id}'s directory (or fix id)",
            path.display(),
            found.node_id
        )));
    }
    match config_cluster_id {
        Some(c) if c != found.cluster_id => Err(Error::Startup(format!(
            "{}: this data directory belongs to cluster {}, but the config's cluster_id is \
             {c}: point data_dir at this cluster's directory (or fix cluster_id)",
            path.display(),
            found.cluster_id
        ))),
        _ => Ok(()),
    }
}

/// A random, nonzero incarnation (0 means "not stated" in peer messages).
fn random_incarnation() -> Result<u64, Error> {
    loop {
        let mut bytes = [0u8; 8];
        getrandom::fill(&mut bytes)
            .map_err(|e| Error::Startup(format!("no randomness for the incarnation: {e}")))?;
        let n = u64::from_le_bytes(bytes);
        if n != 0 {
            return Ok(n);
        }
    }
}

/// A new random cluster id: 128 bits in hex (`ninety cluster init` and local starters).
pub fn random_cluster_id() -> Result<String, Error> {
    let mut bytes = [0u8; 16];
    getrandom::fill(&mut bytes)
        .map_err(|e| Error::Startup(format!("no randomness for the cluster id: {e}")))?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

fn read(path: &Path) -> Result<Option<Identity>, Error> {
    let bad = |why: String| Error::Config(format!("{}: {why}", path.display()));
    let text = match std::fs::File::open(path) {
        Ok(f) => {
            let mut text = String::new();
            std::io::Read::read_to_string(
                &mut std::io::Read::take(f, IDENTITY_BYTES_MAX),
                &mut text,
            )
            .map_err(|e| bad(e.to_string()))?;
            text
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(bad(e.to_string())),
    };
    let file: IdentityFile = toml::from_str(&text).map_err(|e| bad(e.to_string()))?;
    let incarnation = u64::from_str_radix(&file.incarnation, 16)
        .map_err(|_| bad(format!("incarnation {:?} is not hex", file.incarnation)))?;
    Ok(Some(Identity {
        cluster_id: file.cluster_id,
        node_id: file.node_id,
        incarnation,
    }))
}

/// Writes `IDENTITY` durably: a temp file, fsync, rename, directory fsync.
fn write(data_dir: &Path, identity: &Identity) -> Result<(), Error> {
    let path = path_of(data_dir);
    let tmp = data_dir.join(format!("{IDENTITY_FILE}.tmp"));
    let io = |e: std::io::Error| Error::Storage(format!("{}: {e}", path.display()));
    let file = IdentityFile {
        cluster_id: identity.cluster_id.clone(),
        node_id: identity.node_id,
        incarnation: format!("{:016x}", identity.incarnation),
    };
    let text = toml::to_string(&file).map_err(|e| Error::Storage(e.to_string()))?;
    let mut f = std::fs::File::create(&tmp).map_err(io)?;
    f.write_all(text.as_bytes()).map_err(io)?;
    f.sync_all().map_err(io)?;
    std::fs::rename(&tmp, &path).map_err(io)?;
    std::fs::File::open(data_dir)
        .and_then(|d| d.sync_all())
        .map_err(io)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn made_once_then_checked() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("n1");
        let e = establish(&data, None, 1).unwrap_err().to_string();
        assert!(e.contains("cluster_id: missing"), "{e}");
        let first = establish(&data, Some("abc"), 1).unwrap();
        assert_ne!(first.incarnation, 0);
        assert_eq!(establish(&data, Some("abc"), 1).unwrap(), first);
        assert_eq!(
            establish(&data, None, 1).unwrap(),
            first,
            "taken from the file"
        );
        let e = establish(&data, Some("def"), 1).unwrap_err().to_string();
        assert!(e.contains("cluster abc") && e.contains("def"), "{e}");
        let e = establish(&data, Some("abc"), 2).unwrap_err().to_string();
        assert!(e.contains("node 1") && e.contains("id is 2"), "{e}");
        // A wiped directory comes back with another incarnation.
        std::fs::remove_dir_all(&data).unwrap();
        let second = establish(&data, Some("abc"), 1).unwrap();
        assert_ne!(second.incarnation, first.incarnation);
        std::fs::write(path_of(&data), "cluster_id = 1").unwrap();
        assert!(establish(&data, Some("abc"), 1).is_err());
        assert_eq!(random_cluster_id().unwrap().len(), 32);
    }
}
