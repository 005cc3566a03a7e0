//! `ninety referral`: the cross-region part of a referral: `hold-remote` asks another
//! region for a bed (Referrals.HoldRemoteBed), `show` reads a referral with its remote
//! part (Referrals.GetReferral). The global `--region` names the referral's own region
//! (the origin); `hold-remote --region-of-bed` names the destination.

use super::table;
use super::{commit_json, emit, parse_duration_ms, request_id, with_id, Failure, Global};
use clap::{Args, Subcommand};
use ninety_client::pb;
use serde_json::{json, Value};

#[derive(Args, Debug)]
pub struct ReferralArgs {
    #[command(subcommand)]
    pub cmd: ReferralCmd,
}

impl ReferralArgs {
    /// Whether the answer is printed as JSON (`--json`).
    pub fn json(&self) -> bool {
        match &self.cmd {
            ReferralCmd::HoldRemote(a) => a.g.json,
            ReferralCmd::Show(a) => a.g.json,
        }
    }
}

#[derive(Subcommand, Debug)]
pub enum ReferralCmd {
    /// Holds a bed in another region for a triaged referral (Referrals.HoldRemoteBed).
    HoldRemote(HoldRemoteArgs),
    /// Shows one referral with its bed in another region (Referrals.GetReferral).
    Show(ShowArgs),
}

#[derive(Args, Debug)]
pub struct HoldRemoteArgs {
    #[command(flatten)]
    pub g: Global,
    /// The referral (in the region `--region` names).
    #[arg(long)]
    pub referral: u64,
    /// The destination region holding the bed (its id, e.g. yunnan).
    #[arg(long = "to-region", value_name = "REGION")]
    pub to_region: String,
    /// The ward in the destination region.
    #[arg(long)]
    pub ward: u32,
    /// How long the destination holds the bed (15m, 2h, 500ms).
    #[arg(long, default_value = "2h", value_parser = parse_duration_ms)]
    pub ttl: u64,
    /// Idempotency key (32 hex digits or a UUID); default: a fresh one, printed.
    #[arg(long)]
    pub request_id: Option<String>,
}

#[derive(Args, Debug)]
pub struct ShowArgs {
    #[command(flatten)]
    pub g: Global,
    /// The referral.
    pub referral: u64,
}

/// Runs one `ninety referral` command.
pub async fn run(a: ReferralArgs) -> Result<(), Failure> {
    match a.cmd {
        ReferralCmd::HoldRemote(a) => hold_remote(a).await,
        ReferralCmd::Show(a) => show(a).await,
    }
}

async fn hold_remote(a: HoldRemoteArgs) -> Result<(), Failure> {
    let client = a.g.client()?;
    let id = request_id(&a.request_id);
    let r = client
        .hold_remote_bed(pb::HoldRemoteBedRequest {
            request_id: id.clone(),
            referral_id: a.referral,
            region: a.to_region.clone(),
            ward_id: a.ward,
            ttl_ms: a.ttl,
        })
        .await
        .map_err(with_id(&id))?;
    let referral = r.referral.clone().unwrap_or_default();
    let value = json!({
        "request_id": id,
        "referral": referral_json(&referral),
        "commit": commit_json(&r.commit),
    });
    let mut rows = referral_rows(&referral);
    rows.extend(super::spot::commit_rows(&r.commit, &id));
    emit(&a.g, value, table::record(&rows));
    Ok(())
}

async fn show(a: ShowArgs) -> Result<(), Failure> {
    let client = a.g.client()?;
    let r = client
        .get_referral(pb::GetReferralRequest {
            referral_id: a.referral,
            ..Default::default()
        })
        .await?;
    let referral = r.referral.unwrap_or_default();
    let value = json!({ "referral": referral_json(&referral) });
    emit(&a.g, value, table::record(&referral_rows(&referral)));
    Ok(())
}

/// A remote stage's short name.
fn stage_name(stage: i32) -> String {
    pb::RemoteBedStage::try_from(stage)
        .map(|s| {
            s.as_str_name()
                .trim_start_matches("REMOTE_BED_STAGE_")
                .to_lowercase()
        })
        .unwrap_or_else(|_| stage.to_string())
}

fn referral_json(r: &pb::Referral) -> Value {
    let state = pb::ReferralState::try_from(r.state)
        .map(|s| s.as_str_name().to_string())
        .unwrap_or_default();
    let remote = r.remote.as_ref().map(|b| {
        json!({
            "region": b.region,
            "ward_id": b.ward_id,
            "attempt": b.attempt,
            "stage": stage_name(b.stage),
            "hold_id": b.hold_id,
            "since_ms": b.since_ms,
            "stuck_reason": b.stuck_reason,
        })
    });
    json!({
        "referral_id": r.referral_id,
        "state": state,
        "reason": r.reason,
        "reason_note": r.reason_note,
        "remote": remote,
    })
}

fn referral_rows(r: &pb::Referral) -> Vec<(&'static str, String)> {
    let state = pb::ReferralState::try_from(r.state)
        .map(|s| s.as_str_name().to_string())
        .unwrap_or_default();
    let mut rows = vec![
        ("referral", r.referral_id.to_string()),
        ("state", state),
        ("reason", format!("{} {}", r.reason, r.reason_note)),
    ];
    if let Some(b) = &r.remote {
        rows.push(("remote region", b.region.clone()));
        rows.push(("remote ward", b.ward_id.to_string()));
        rows.push(("attempt", b.attempt.to_string()));
        rows.push(("remote stage", stage_name(b.stage)));
        rows.push(("remote hold", b.hold_id.to_string()));
        if !b.stuck_reason.is_empty() {
            rows.push(("stuck", b.stuck_reason.clone()));
        }
    }
    rows
}
