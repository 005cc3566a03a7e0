//! `ninety capacity`: a hospital's bed state changes through the Capacity service
//! (discharge, clean, block, unblock), one call each, printed as a small table or JSON.

use super::table;
use super::{commit_json, emit, request_id, short, with_id, Failure, Global};
use clap::{Args, Subcommand, ValueEnum};
use ninety_client::pb;
use serde_json::json;

/// Why a bed is taken out of service.
#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum ReasonArg {
    Isolation,
    Maintenance,
    NoStaff,
}

impl ReasonArg {
    fn pb(self) -> pb::BlockReason {
        match self {
            ReasonArg::Isolation => pb::BlockReason::Isolation,
            ReasonArg::Maintenance => pb::BlockReason::Maintenance,
            ReasonArg::NoStaff => pb::BlockReason::NoStaff,
        }
    }
}

#[derive(Args, Debug)]
pub struct CapacityArgs {
    #[command(subcommand)]
    pub cmd: CapacityCmd,
}

impl CapacityArgs {
    /// Whether the answer is printed as JSON (`--json`).
    pub fn json(&self) -> bool {
        match &self.cmd {
            CapacityCmd::Discharge(b) | CapacityCmd::Clean(b) | CapacityCmd::Unblock(b) => b.g.json,
            CapacityCmd::Block(b) => b.bed.g.json,
        }
    }
}

/// One bed and the request's idempotency key.
#[derive(Args, Debug)]
pub struct BedArgs {
    #[command(flatten)]
    pub g: Global,
    /// The bed.
    #[arg(long)]
    pub bed: u32,
    /// Idempotency key (32 hex digits or a UUID); default: a fresh one, printed.
    #[arg(long)]
    pub request_id: Option<String>,
}

#[derive(Args, Debug)]
pub struct BlockArgs {
    #[command(flatten)]
    pub bed: BedArgs,
    #[arg(long, value_enum)]
    pub reason: ReasonArg,
}

#[derive(Subcommand, Debug)]
pub enum CapacityCmd {
    /// The patient in an occupied bed leaves; the bed goes to cleaning (Capacity.Discharge).
    Discharge(BedArgs),
    /// A bed was cleaned and is free again (Capacity.MarkBedClean).
    Clean(BedArgs),
    /// Takes a bed out of service (Capacity.BlockBed).
    Block(BlockArgs),
    /// Returns a blocked bed to service (Capacity.UnblockBed).
    Unblock(BedArgs),
}

/// Runs one `ninety capacity` command.
pub async fn run(a: CapacityArgs) -> Result<(), Failure> {
    match a.cmd {
        CapacityCmd::Discharge(b) => {
            bed_call(&b, |c, request_id, bed_id| async move {
                c.discharge(pb::DischargeRequest { request_id, bed_id })
                    .await
            })
            .await
        }
        CapacityCmd::Clean(b) => {
            bed_call(&b, |c, request_id, bed_id| async move {
                c.mark_bed_clean(pb::MarkBedCleanRequest { request_id, bed_id })
                    .await
            })
            .await
        }
        CapacityCmd::Block(b) => {
            let reason = b.reason.pb() as i32;
            bed_call(&b.bed, |c, request_id, bed_id| async move {
                let req = pb::BlockBedRequest {
                    request_id,
                    bed_id,
                    reason,
                };
                c.block_bed(req).await
            })
            .await
        }
        CapacityCmd::Unblock(b) => {
            bed_call(&b, |c, request_id, bed_id| async move {
                c.unblock_bed(pb::UnblockBedRequest { request_id, bed_id })
                    .await
            })
            .await
        }
    }
}

/// One bed call: the client, the request id, the call, the answer printed.
async fn bed_call<F, Fut>(b: &BedArgs, call: F) -> Result<(), Failure>
where
    F: FnOnce(ninety_client::Client, String, u32) -> Fut,
    Fut: std::future::Future<Output = Result<pb::BedChangeResponse, tonic::Status>>,
{
    let client = b.g.client()?;
    let id = request_id(&b.request_id);
    let r = call(client, id.clone(), b.bed)
        .await
        .map_err(with_id(&id))?;
    let state = short(r.state().as_str_name(), "BED_STATE_");
    let reason = short(r.block_reason().as_str_name(), "BLOCK_REASON_");
    let value = json!({
        "request_id": id,
        "bed_id": r.bed_id,
        "state": state,
        "block_reason": reason,
        "commit": commit_json(&r.commit),
    });
    let mut rows = vec![("bed", r.bed_id.to_string()), ("state", state)];
    if r.state() == pb::BedState::Blocked {
        rows.push(("reason", reason));
    }
    rows.extend(super::spot::commit_rows(&r.commit, &id));
    emit(&b.g, value, table::record(&rows));
    Ok(())
}
