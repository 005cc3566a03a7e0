//! `ninety cluster backup` and `ninety cluster restore`: an online backup of a live
//! cluster (`Admin.Backup`, streamed from one node and checked end to end before the file
//! is written) and a new cluster made from one. The file format and the data directories
//! a restore writes: `ninety_cluster::backup`; the procedure: docs/operations.md, "Back up
//! and restore".

use super::cluster::{self, InitArgs};
use super::{Failure, Global};
use clap::Args;
use ninety_client::{pb, Client};
use ninety_cluster::backup::{self as file, BackupMeta};
use ninety_proto::v1::admin_client::AdminClient;
use serde_json::json;
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};
use tonic::{Code, Status};

/// The largest `Backup` message accepted, bytes (the server sends 1 MiB of data a chunk).
const BACKUP_MESSAGE_BYTES_MAX: usize = 8 * 1024 * 1024;

#[derive(Args, Debug)]
pub struct BackupArgs {
    /// The file to write (written beside it as FILE.tmp, then renamed).
    #[arg(long)]
    pub out: PathBuf,
    /// Have the node take a snapshot now and send that (unless it took one in the last
    /// 10 s); without it, its newest stored snapshot, which lags by up to the node's
    /// snapshot_interval_entries entries (100,000 by default) or 256 MiB of them.
    #[arg(long)]
    pub fresh: bool,
    /// Overwrite --out if it exists.
    #[arg(long)]
    pub force: bool,
}

#[derive(Args, Debug)]
pub struct RestoreArgs {
    /// The backup file (`ninety cluster backup --out`).
    #[arg(long)]
    pub from: PathBuf,
    /// Where and how the new cluster runs: the flags of `cluster init`.
    #[command(flatten)]
    pub init: InitArgs,
}

/// A backup stream received whole, its SHA-256 checked.
struct Received {
    header: pb::BackupHeader,
    body: Vec<u8>,
}

/// `cluster backup`: from the first node of --nodes that answers.
pub async fn backup(g: &Global, a: BackupArgs) -> Result<(), Failure> {
    if a.out.exists() && !a.force {
        return Err(Failure::Usage(format!(
            "--out: {} exists (use --force to overwrite)",
            a.out.display()
        )));
    }
    let config = g.config()?;
    let mut last = None;
    for addr in g.addrs() {
        let client = Client::new(&[addr.as_str()], config.clone())
            .map_err(|e| Failure::Usage(e.to_string()))?;
        match receive(&client, a.fresh).await {
            Ok(got) => return save(g, &a.out, &addr, got).await,
            Err(s) if matches!(s.code(), Code::Unavailable | Code::DeadlineExceeded) => {
                last = Some(s)
            }
            Err(s) => return Err(s.into()),
        }
    }
    Err(last
        .unwrap_or_else(|| Status::unavailable("no node answered"))
        .into())
}

/// Reads one node's `Backup` stream to its end, checking its shape and SHA-256.
async fn receive(client: &Client, fresh: bool) -> Result<Received, Status> {
    let mut request = tonic::Request::new(pb::BackupRequest { fresh });
    client.authorize(&mut request);
    let mut stream = AdminClient::new(client.channel())
        .max_decoding_message_size(BACKUP_MESSAGE_BYTES_MAX)
        .backup(request)
        .await?
        .into_inner();
    let mut header: Option<pb::BackupHeader> = None;
    let (mut body, mut sha) = (Vec::new(), Sha256::new());
    while let Some(chunk) = stream.message().await? {
        if let Some(h) = chunk.header {
            if header.is_some() || h.snapshot_bytes > file::BACKUP_SNAPSHOT_BYTES_MAX {
                return Err(Status::data_loss("a second or oversized backup header"));
            }
            body.reserve(h.snapshot_bytes as usize);
            header = Some(h);
        }
        let Some(h) = &header else {
            return Err(Status::data_loss(
                "the backup stream did not start with its header",
            ));
        };
        if (body.len() + chunk.data.len()) as u64 > h.snapshot_bytes {
            return Err(Status::data_loss(
                "more bytes than the backup header announced",
            ));
        }
        sha.update(&chunk.data);
        body.extend_from_slice(&chunk.data);
        if chunk.sha256.is_empty() {
            continue;
        }
        let sum = sha.finalize();
        if body.len() as u64 != h.snapshot_bytes || sum.as_slice() != chunk.sha256 {
            return Err(Status::data_loss(format!(
                "checksum mismatch: received {} bytes with SHA-256 {}, the node sent {} bytes \
                 with SHA-256 {}: take the backup again",
                body.len(),
                file::hex(&sum),
                h.snapshot_bytes,
                file::hex(&chunk.sha256)
            )));
        }
        let header = header.unwrap_or_default();
        return Ok(Received { header, body });
    }
    Err(Status::data_loss(
        "the backup stream ended before its last chunk (no SHA-256): the backup is incomplete",
    ))
}

/// Decodes and hashes what was received (it must match what the node said), then writes
/// the file and prints what it holds.
async fn save(g: &Global, out: &Path, addr: &str, got: Received) -> Result<(), Failure> {
    let h = got.header;
    let (cluster_id, node_id) = (h.cluster_id.clone(), h.node_id);
    let body = got.body;
    let checked = tokio::task::spawn_blocking(move || {
        file::meta_of(&cluster_id, node_id, &body).map(|m| (m, body))
    })
    .await
    .map_err(|e| Failure::Other(anyhow::anyhow!("{e}")))?;
    let (meta, body) = checked.map_err(|why| {
        Failure::Other(anyhow::anyhow!(
            "the backup from {addr} does not decode: {why}"
        ))
    })?;
    if (meta.snapshot_index, meta.snapshot_term) != (h.snapshot_index, h.snapshot_term) {
        return Err(Failure::Other(anyhow::anyhow!(
            "the backup from {addr} is at index {} term {}, its header said index {} term {}",
            meta.snapshot_index,
            meta.snapshot_term,
            h.snapshot_index,
            h.snapshot_term
        )));
    }
    if !h.state_hash.is_empty() && file::hex(&h.state_hash) != meta.state_hash {
        return Err(Failure::Other(anyhow::anyhow!(
            "state hash mismatch: node {} said {}, the received state hashes to {}",
            h.node_id,
            file::hex(&h.state_hash),
            meta.state_hash
        )));
    }
    file::write_file(out, &meta, &body).map_err(|e| Failure::Other(anyhow::anyhow!(e)))?;
    let mut human = format!("wrote the backup to {}\n", out.display());
    human.push_str(&describe(&meta, Some(addr)));
    super::emit(g, meta_json(&meta, out, Some(addr)), human);
    Ok(())
}

/// A backup's facts as a table.
fn describe(meta: &BackupMeta, from: Option<&str>) -> String {
    let mut rows = vec![
        ("cluster", meta.cluster_id.clone()),
        ("node", meta.node_id.to_string()),
        ("index", meta.snapshot_index.to_string()),
        ("term", meta.snapshot_term.to_string()),
        ("log time", super::table::utc(meta.log_time_ms)),
        ("bytes", meta.snapshot_bytes.to_string()),
        ("sha256", meta.sha256.clone()),
        ("state hash", meta.state_hash.clone()),
    ];
    if let Some(addr) = from {
        rows.insert(2, ("from", addr.to_string()));
    }
    super::table::record(&rows)
}

fn meta_json(meta: &BackupMeta, path: &Path, from: Option<&str>) -> serde_json::Value {
    json!({
        "file": path,
        "from": from,
        "cluster_id": meta.cluster_id,
        "node_id": meta.node_id,
        "snapshot_index": meta.snapshot_index,
        "snapshot_term": meta.snapshot_term,
        "log_time_ms": meta.log_time_ms,
        "snapshot_bytes": meta.snapshot_bytes,
        "sha256": meta.sha256,
        "state_hash": meta.state_hash,
    })
}

/// Where `cluster init` puts node `id`'s data (as `cluster::write_cluster` does).
fn data_dir_of(a: &InitArgs, id: u64) -> PathBuf {
    match &a.data_root {
        Some(root) => root.join(id.to_string()),
        None => a.dir.join(format!("node{id}")),
    }
}

/// `cluster restore`: checks the file, writes the new cluster's configs, seeds every
/// founding node's data directory.
pub fn restore(g: &Global, a: RestoreArgs) -> Result<(), Failure> {
    let i = &a.init;
    if i.config.is_some() || i.compose {
        return Err(Failure::Usage(
            "--config and --compose are not for restore: restore writes a new cluster's \
             configs and data directories on this host"
                .into(),
        ));
    }
    let (meta, body) = file::read_file(&a.from).map_err(Failure::Usage)?;
    for id in 1..=i.nodes_count {
        let data = data_dir_of(i, id);
        if std::fs::read_dir(&data).is_ok_and(|mut d| d.next().is_some()) {
            return Err(Failure::Usage(format!(
                "{} is not empty: a restore makes new data directories (move it away, or \
                 choose another --dir or --data-root)",
                data.display()
            )));
        }
    }
    let from = format!(
        "cluster {} at index {} (term {}, from node {})",
        meta.cluster_id, meta.snapshot_index, meta.snapshot_term, meta.node_id
    );
    let w = cluster::write_cluster(i, Some(&from))?;
    let voters: Vec<u64> = w.data_dirs.iter().map(|(id, _)| *id).collect();
    for (id, dir) in &w.data_dirs {
        ninety_cluster::backup::seed(dir, &w.cluster_id, *id, &voters, &body)
            .map_err(|e| Failure::Other(anyhow::anyhow!("node {id}: {e}")))?;
    }
    let mut restored = meta_json(&meta, &a.from, None);
    restored["new_cluster_id"] = json!(w.cluster_id);
    let human = format!(
        "restored {from} into a NEW cluster {} ({} nodes); every node starts with the \
         backup's state at index {} (state hash {}):\n{}",
        w.cluster_id,
        voters.len(),
        meta.snapshot_index,
        meta.state_hash,
        describe(&meta, None)
    );
    cluster::print_init(g, i, &w, Some((restored, human)));
    Ok(())
}
