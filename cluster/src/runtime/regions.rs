//! Which regions a node hosts: the `[[regions]]` tables of its config, checked, and the
//! list of groups the runtime starts (one Raft group per region, `runtime::group`).
//!
//! A config without `[[regions]]` hosts one region exactly as before regions existed: the
//! region `region` names, its Raft log, snapshots and identity in `data_dir` itself, and an
//! empty region tag on the wire (a peer's default region). With `[[regions]]`, the node's
//! one raft-engine is `data_dir/raft-log/` (each region its own raft-engine group,
//! [`region_group_id`]; one engine per process, see `storage::open_engine`), each region
//! has its own subdirectory `data_dir/regions/<id>/` (snapshots, `IDENTITY`, a recorded
//! panic in apply) and every peer call names it. The first region listed is the
//! node's default: a client call without the `ninety-region` header goes there.
//!
//! Placement is fixed by the configs in this step (docs/design/regions.md, step 1): each
//! node lists the regions it hosts with the same founding voters on every node.

use super::config::FileConfig;
use crate::error::Error;
use serde::Deserialize;
use std::collections::BTreeSet;
use std::path::PathBuf;

/// Most regions one node hosts (each is a Raft group with its own tasks and threads).
pub const REGIONS_PER_NODE_MAX: usize = 64;
/// Longest region id, characters.
pub const REGION_ID_CHARS_MAX: usize = 32;
/// The subdirectory of `data_dir` holding one directory per region.
pub const REGIONS_DIR: &str = "regions";
/// The id of a node's only region when its `region` is not a valid region id (a path to a
/// region file).
pub const DEFAULT_REGION_ID: &str = "default";

/// One `[[regions]]` table.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct RegionConfig {
    /// The region's id: 1 to [`REGION_ID_CHARS_MAX`] lowercase letters, digits, `-` or
    /// `_`; what clients name in the `ninety-region` header and peers in `region`.
    pub id: String,
    /// What a founding node loads: a built-in preset ("gba", "yunnan", "asean"), "test",
    /// or a region JSON file; default: the id itself.
    pub spec: Option<String>,
    /// The region's founding voters; empty means the node's `initial_voters` (or every
    /// node of `[peers]`).
    #[serde(default)]
    pub voters: Vec<u64>,
}

/// One region group as the runtime starts it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupSpec {
    /// The region's id (the `ninety-region` header's value).
    pub id: String,
    /// The region's tag in peer calls: its id, or empty for a config without `[[regions]]`.
    pub wire: String,
    /// What a founding node loads (see [`RegionConfig::spec`]).
    pub spec: String,
    /// The founding voters.
    pub voters: Vec<u64>,
    /// Where the group's snapshots and identity live (and its Raft log, for a node with
    /// one region).
    pub data_dir: PathBuf,
    /// The group's id in the node's raft-engine.
    pub group_id: u64,
}

/// The raft-engine group of region `id` on a node with `[[regions]]`: a 64-bit FNV-1a hash
/// of the id, so it never depends on the order of the config (checked unique at load),
/// and never the id of a node with one region (`storage::RAFT_GROUP_ID`).
pub fn region_group_id(id: &str) -> u64 {
    const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
    const FNV_PRIME: u64 = 0x0100_0000_01b3;
    let hash = id.bytes().fold(FNV_OFFSET, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(FNV_PRIME)
    });
    match hash {
        0 | crate::storage::RAFT_GROUP_ID => hash ^ (1 << 63),
        h => h,
    }
}

fn invalid(field: &str, why: impl std::fmt::Display) -> Error {
    Error::Config(format!("{field}: {why}"))
}

/// Whether `id` is a valid region id.
pub fn is_region_id(id: &str) -> bool {
    let ok = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_';
    !id.is_empty() && id.len() <= REGION_ID_CHARS_MAX && id.chars().all(ok)
}

/// Checks `[[regions]]`: count, ids (valid, unique), specs, voters (known, unique, this
/// node among them when it founds the cluster). Every error names the entry's field.
pub fn check(cfg: &FileConfig) -> Result<(), Error> {
    let n = cfg.regions.len();
    if n > REGIONS_PER_NODE_MAX {
        return Err(invalid(
            "regions",
            format!("{n} regions, at most {REGIONS_PER_NODE_MAX} per node"),
        ));
    }
    let peers = cfg.peer_map()?;
    let mut ids = BTreeSet::new();
    for (i, r) in cfg.regions.iter().enumerate() {
        let at = format!("regions[{i}]");
        if !is_region_id(&r.id) {
            return Err(invalid(
                &format!("{at}.id"),
                format!(
                    "{}: expected 1 to {REGION_ID_CHARS_MAX} lowercase letters, digits, `-` \
                     or `_`",
                    crate::server::convert::echo(&r.id)
                ),
            ));
        }
        if !ids.insert(r.id.as_str()) {
            return Err(invalid(
                &format!("{at}.id"),
                format!("region {} is listed twice", r.id),
            ));
        }
        let group = region_group_id(&r.id);
        if let Some(other) = cfg.regions[..i]
            .iter()
            .find(|o| region_group_id(&o.id) == group)
        {
            return Err(invalid(
                &format!("{at}.id"),
                format!(
                    "regions {} and {} hash to the same log group: rename one",
                    other.id, r.id
                ),
            ));
        }
        if r.spec.as_deref().is_some_and(|s| s.trim().is_empty()) {
            return Err(invalid(&format!("{at}.spec"), "must not be empty"));
        }
        check_voters(cfg, &at, &r.voters, &peers)?;
    }
    Ok(())
}

/// One region's `voters`.
fn check_voters(
    cfg: &FileConfig,
    at: &str,
    voters: &[u64],
    peers: &std::collections::BTreeMap<u64, super::config::NodeAddrs>,
) -> Result<(), Error> {
    let mut seen = BTreeSet::new();
    for (j, &v) in voters.iter().enumerate() {
        let field = format!("{at}.voters[{j}]");
        if v == 0 || !peers.contains_key(&v) {
            return Err(invalid(
                &field,
                format!("node {v} has no address in [peers]"),
            ));
        }
        if !seen.insert(v) {
            return Err(invalid(&field, format!("node {v} is listed twice")));
        }
    }
    if cfg.init && !voters.is_empty() && !seen.contains(&cfg.id) {
        return Err(invalid(
            &format!("{at}.voters"),
            format!(
                "this node (id {}) founds the cluster (init = true) but is not among the \
                 region's voters {voters:?}",
                cfg.id
            ),
        ));
    }
    Ok(())
}

/// Refuses to start a node whose data directory holds a region its config does not list
/// (`data_dir/regions/<id>/` for an id missing from `[[regions]]`, or any region directory
/// when the config has no `[[regions]]`). Such a replica would be silently left behind: its
/// group would not run, peers would hear "does not host it" from this node (which counts
/// as no replica when a region is added, `runtime::startup`), and listing the region again
/// later would resume a stale log. The error names the directory and the two ways out.
pub fn check_data_dir(cfg: &FileConfig) -> Result<(), Error> {
    let dir = cfg.data_dir.join(REGIONS_DIR);
    let entries = match std::fs::read_dir(&dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(Error::Storage(format!("{}: {e}", dir.display()))),
    };
    let listed: BTreeSet<&str> = cfg.regions.iter().map(|r| r.id.as_str()).collect();
    let mut unlisted: Vec<String> = entries
        .filter_map(|e| e.ok())
        .filter(|e| e.path().is_dir())
        .filter_map(|e| e.file_name().into_string().ok())
        .filter(|id| !listed.contains(id.as_str()))
        .collect();
    unlisted.sort();
    let Some(id) = unlisted.first() else {
        return Ok(());
    };
    Err(Error::Startup(format!(
        "regions: data_dir holds region {id} ({}), which this config does not list in \
         [[regions]]: a node never leaves a region's replica behind unseen. Either list it \
         again (`[[regions]] id = \"{id}\"`), or, once this node's replica of {id} was \
         removed from it (`ninety cluster remove-member --region {id} --id {}`) or the \
         region is gone, delete that directory (docs/operations.md, \"Moving a region's \
         replicas\")",
        dir.join(id).display(),
        cfg.id
    )))
}

/// The groups node `cfg` runs, its default region first.
pub fn groups(cfg: &FileConfig) -> Result<Vec<GroupSpec>, Error> {
    if cfg.regions.is_empty() {
        let id = if is_region_id(&cfg.region) {
            cfg.region.clone()
        } else {
            DEFAULT_REGION_ID.to_string()
        };
        return Ok(vec![GroupSpec {
            id,
            wire: String::new(),
            spec: cfg.region.clone(),
            voters: cfg.voters()?,
            data_dir: cfg.data_dir.clone(),
            group_id: crate::storage::RAFT_GROUP_ID,
        }]);
    }
    let mut out = Vec::with_capacity(cfg.regions.len());
    for r in &cfg.regions {
        let voters = if r.voters.is_empty() {
            cfg.voters()?
        } else {
            r.voters.clone()
        };
        out.push(GroupSpec {
            id: r.id.clone(),
            wire: r.id.clone(),
            spec: r.spec.clone().unwrap_or_else(|| r.id.clone()),
            voters,
            data_dir: cfg.data_dir.join(REGIONS_DIR).join(&r.id),
            group_id: region_group_id(&r.id),
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(regions: &str) -> Result<FileConfig, Error> {
        let peers: String = (1..=3)
            .map(|i| {
                format!(
                    "\"{i}\" = {{ peer = \"127.0.0.1:710{i}\", client = \"127.0.0.1:700{i}\" }}\n"
                )
            })
            .collect();
        FileConfig::parse(&format!(
            "id = 1\nlisten = \"127.0.0.1:7001\"\npeer_listen = \"127.0.0.1:7101\"\n\
             data_dir = \"d\"\ninit = true\n[peers]\n{peers}{regions}"
        ))
    }

    #[test]
    fn without_regions_the_node_hosts_its_one_region_in_data_dir() {
        let cfg = config("").unwrap();
        let g = groups(&cfg).unwrap();
        assert_eq!(g.len(), 1);
        assert_eq!((g[0].id.as_str(), g[0].wire.as_str()), ("gba", ""));
        assert_eq!(g[0].data_dir, PathBuf::from("d"));
        assert_eq!(g[0].voters, vec![1, 2, 3]);
    }

    #[test]
    fn regions_get_their_own_directories_specs_and_voters() {
        let cfg = config(
            "[[regions]]\nid = \"gba\"\n[[regions]]\nid = \"yunnan\"\nspec = \"test\"\n\
             voters = [1, 3]\n",
        )
        .unwrap();
        let g = groups(&cfg).unwrap();
        assert_eq!(g.len(), 2);
        assert_eq!((g[0].spec.as_str(), g[0].wire.as_str()), ("gba", "gba"));
        assert_eq!(g[1].spec, "test");
        assert_eq!(g[1].voters, vec![1, 3]);
        assert_eq!(g[1].data_dir, PathBuf::from("d/regions/yunnan"));
        assert_eq!(g[1].group_id, region_group_id("yunnan"));
        assert_ne!(g[0].group_id, g[1].group_id);
        assert_eq!(
            region_group_id("a"),
            0xaf63_dc4c_8601_ec8c,
            "FNV-1a, stable"
        );
    }

    #[test]
    fn a_region_directory_the_config_does_not_list_is_refused() {
        let tmp = tempfile::tempdir().unwrap();
        let mut cfg = config("[[regions]]\nid = \"gba\"\n[[regions]]\nid = \"yunnan\"\n").unwrap();
        cfg.data_dir = tmp.path().to_path_buf();
        check_data_dir(&cfg).expect("no regions/ yet");
        for id in ["gba", "yunnan"] {
            std::fs::create_dir_all(tmp.path().join(REGIONS_DIR).join(id)).unwrap();
        }
        check_data_dir(&cfg).expect("every region directory is listed");
        cfg.regions.pop();
        let e = check_data_dir(&cfg).unwrap_err().to_string();
        assert!(
            e.contains("holds region yunnan") && e.contains("remove-member --region yunnan --id 1"),
            "{e}"
        );
        cfg.regions.clear();
        let e = check_data_dir(&cfg).unwrap_err().to_string();
        assert!(e.contains("holds region gba"), "{e}");
    }

    #[test]
    fn bad_regions_are_refused_naming_the_field() {
        let cases = [
            ("[[regions]]\nid = \"GBA\"\n", "regions[0].id: \"GBA\""),
            ("[[regions]]\nid = \"\"\n", "regions[0].id"),
            (
                "[[regions]]\nid = \"a\"\n[[regions]]\nid = \"a\"\n",
                "regions[1].id: region a is listed twice",
            ),
            ("[[regions]]\nid = \"a\"\nspec = \" \"\n", "regions[0].spec"),
            (
                "[[regions]]\nid = \"a\"\nvoters = [9]\n",
                "regions[0].voters[0]: node 9",
            ),
            (
                "[[regions]]\nid = \"a\"\nvoters = [1, 1]\n",
                "regions[0].voters[1]: node 1 is listed twice",
            ),
            (
                "[[regions]]\nid = \"a\"\nvoters = [2, 3]\n",
                "regions[0].voters: this node (id 1)",
            ),
            (
                "[[regions]]\nid = \"a\"\nplace = 1\n",
                "unknown field `place`",
            ),
        ];
        for (tables, want) in cases {
            let e = config(tables).unwrap_err().to_string();
            assert!(e.contains(want), "{tables:?}: {e}");
        }
        let many: String = (0..=REGIONS_PER_NODE_MAX)
            .map(|i| format!("[[regions]]\nid = \"r{i}\"\n"))
            .collect();
        let e = config(&many).unwrap_err().to_string();
        assert!(e.contains("at most 64 per node"), "{e}");
    }
}
