//! `ninety region ...`: write a region file from a built-in preset, import one into an
//! empty cluster (Admin.ImportRegion).

use super::table;
use super::{commit_json, emit, request_id, with_id, Failure, Global};
use anyhow::Context;
use clap::{Args, Subcommand};
use ninety_client::pb;
use ninety_engine::generate::{self, Preset};
use ninety_engine::RegionFile;
use serde_json::json;
use std::path::PathBuf;

#[derive(Args, Debug)]
pub struct RegionArgs {
    #[command(flatten)]
    pub g: Global,
    #[command(subcommand)]
    pub cmd: RegionCmd,
}

#[derive(Subcommand, Debug)]
pub enum RegionCmd {
    /// Loads a region JSON file (docs/region-format.md) into an empty cluster through the
    /// Raft log. A cluster already holding a region refuses (REGION_ALREADY_LOADED).
    Import {
        /// The region file.
        file: PathBuf,
        /// Idempotency key; default: a fresh one, printed.
        #[arg(long)]
        request_id: Option<String>,
    },
    /// Writes a generated region (the same seed gives the same region on every machine).
    Generate {
        /// gba, national, yunnan or asean.
        #[arg(long, default_value = "gba")]
        preset: Preset,
        #[arg(long, default_value_t = generate::DEFAULT_SEED)]
        seed: u64,
        /// Where to write the JSON.
        #[arg(long)]
        out: PathBuf,
    },
}

fn counts(f: &RegionFile) -> serde_json::Value {
    json!({
        "name": f.name,
        "hospitals": f.hospitals.len(),
        "wards": f.wards.len(),
        "beds": f.wards.iter().map(|w| u64::from(w.beds)).sum::<u64>(),
        "doctors": f.doctors.len(),
        "alliances": f.alliances.len(),
        "roads": f.roads.len(),
        "referral_paths": f.referral_paths.len(),
    })
}

pub async fn run(a: RegionArgs) -> Result<(), Failure> {
    let g = &a.g;
    match a.cmd {
        RegionCmd::Generate { preset, seed, out } => {
            let file = generate::region(preset, seed);
            file.validate()
                .map_err(|e| Failure::Other(anyhow::anyhow!("generated region is invalid: {e}")))?;
            let text = file.to_json();
            if let Some(dir) = out.parent().filter(|d| !d.as_os_str().is_empty()) {
                std::fs::create_dir_all(dir)
                    .with_context(|| format!("creating {}", dir.display()))?;
            }
            std::fs::write(&out, &text).with_context(|| format!("writing {}", out.display()))?;
            let c = counts(&file);
            let human = format!(
                "wrote {} ({} bytes): region {:?}, seed {seed}\n{}",
                out.display(),
                text.len(),
                file.name,
                table::record(&[
                    ("hospitals", c["hospitals"].to_string()),
                    ("wards", c["wards"].to_string()),
                    ("beds", c["beds"].to_string()),
                    ("doctors", c["doctors"].to_string()),
                    ("alliances", c["alliances"].to_string()),
                    ("roads", c["roads"].to_string()),
                    ("referral paths", c["referral_paths"].to_string()),
                ])
            );
            emit(
                g,
                json!({ "out": out, "bytes": text.len(), "seed": seed, "region": c }),
                human,
            );
            Ok(())
        }
        RegionCmd::Import {
            file,
            request_id: rid,
        } => {
            let text = std::fs::read_to_string(&file)
                .with_context(|| format!("reading {}", file.display()))?;
            // Checked here first so a bad file is named before anything is sent.
            let region = RegionFile::from_json(&text)
                .and_then(|r| r.validate().map(|()| r))
                .map_err(|e| Failure::Usage(format!("{}: {e}", file.display())))?;
            let client = g.client()?;
            let rid = request_id(&rid);
            let r = client
                .import_region(pb::ImportRegionRequest {
                    request_id: rid.clone(),
                    region_json: text.into_bytes(),
                })
                .await
                .map_err(with_id(&rid))?;
            let human = format!(
                "imported region {:?} from {}\n{}",
                region.name,
                file.display(),
                table::record(&[
                    ("hospitals", r.hospitals.to_string()),
                    ("wards", r.wards.to_string()),
                    ("beds", r.beds.to_string()),
                    ("doctors", r.doctors.to_string()),
                    ("alliances", r.alliances.to_string()),
                    ("travel edges", r.travel_edges.to_string()),
                    (
                        "log index",
                        r.commit
                            .as_ref()
                            .map(|c| c.log_index)
                            .unwrap_or(0)
                            .to_string()
                    ),
                    ("request id", rid.clone()),
                ])
            );
            emit(
                g,
                json!({
                    "request_id": rid,
                    "hospitals": r.hospitals,
                    "wards": r.wards,
                    "beds": r.beds,
                    "doctors": r.doctors,
                    "alliances": r.alliances,
                    "travel_edges": r.travel_edges,
                    "commit": commit_json(&r.commit),
                }),
                human,
            );
            Ok(())
        }
    }
}
