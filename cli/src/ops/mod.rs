//! Operator commands: `ninety cluster ...`, `ninety region ...` and the spot checks
//! (`hold`, `confirm`, `release`, `hold-status`, `wards`, `match`, `book`).
//!
//! Every command talks to the cluster through `ninety_client::Client` (leader hints,
//! retries with the same request id), prints a small table or, with `--json`, one JSON
//! document on stdout, and exits non-zero on any refusal or failure. A refusal prints the
//! gRPC code and the attached `Rejection` (code, field, message). Mutating commands take
//! `--request-id` (default: a fresh one, printed) so an operator can retry an action whose
//! outcome is unknown without applying it twice.
//!
//! Nodes: `--nodes ADDR[,ADDR...]`, else the environment variable `NINETY_NODES`, else
//! `127.0.0.1:7001` (the sample config's first node). Credentials: `--cacert`, `--cert`,
//! `--key`, `--token-file` (see `credentials`).

use clap::{Args, Subcommand};
use ninety_client::{pb, Client, Config};
use serde_json::{json, Value};
use std::process::ExitCode;
use std::time::Duration;
use tonic::{Code, Status};

pub mod backup;
pub mod capacity;
pub mod cluster;
pub mod compose;
pub mod credentials;
pub mod health;
pub mod referral;
pub mod region;
pub mod security;
pub mod spot;
pub mod table;

/// The default node when neither `--nodes` nor `NINETY_NODES` is given.
pub const DEFAULT_NODES: &str = "127.0.0.1:7001";
/// The environment variable naming the nodes.
pub const NODES_ENV: &str = "NINETY_NODES";

/// Options shared by every operator command.
#[derive(Args, Clone, Debug, Default)]
pub struct Global {
    /// Node addresses (host:port), comma separated. Default: $NINETY_NODES, else
    /// 127.0.0.1:7001.
    #[arg(
        long,
        global = true,
        value_delimiter = ',',
        value_name = "ADDR[,ADDR...]"
    )]
    pub nodes: Vec<String>,
    /// Print one JSON document instead of tables.
    #[arg(long, global = true)]
    pub json: bool,
    /// Longest a call may take over all its retries, seconds.
    #[arg(long, global = true, default_value_t = 20, value_name = "SECONDS")]
    pub timeout: u64,
    /// The region every call names (the `ninety-region` header), for nodes hosting
    /// several regions. Default: each node's default (first) region.
    #[arg(long, global = true, value_name = "REGION")]
    pub region: Option<String>,
    #[command(flatten)]
    pub creds: credentials::Credentials,
}

impl Global {
    /// The node addresses to use.
    pub fn addrs(&self) -> Vec<String> {
        let given: Vec<String> = self
            .nodes
            .iter()
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty())
            .collect();
        if !given.is_empty() {
            return given;
        }
        let env: Vec<String> = std::env::var(NODES_ENV)
            .unwrap_or_default()
            .split(',')
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty())
            .collect();
        if !env.is_empty() {
            return env;
        }
        vec![DEFAULT_NODES.to_string()]
    }

    /// The client settings of an interactive tool, with the credentials the flags name.
    pub fn config(&self) -> Result<Config, Failure> {
        let total = Duration::from_secs(self.timeout.max(1));
        let creds = self.creds.resolve()?;
        Ok(Config {
            total_timeout: total,
            attempt_timeout: Duration::from_secs(6).min(total),
            tls: creds.tls,
            token: creds.token,
            ..Config::default()
        })
    }

    /// A client of the nodes, with the retry policy of an interactive tool.
    pub fn client(&self) -> Result<Client, Failure> {
        let config = self.config()?;
        let addrs = self.addrs();
        if config.token.is_some() && config.tls.is_none() {
            let remote = addrs.iter().find(|a| !credentials::is_loopback(a));
            if let Some(a) = remote {
                eprintln!(
                    "warning: sending the token to {a} in plain text: give the cluster CA \
                     (--cacert) to use TLS"
                );
            }
        }
        self.client_of(&addrs, config)
    }

    /// A client of `addrs` with `config`, naming `--region` in every call.
    pub fn client_of(&self, addrs: &[String], config: Config) -> Result<Client, Failure> {
        let client = Client::new(addrs, config).map_err(|e| Failure::Usage(e.to_string()))?;
        match &self.region {
            Some(region) => client
                .with_region(region)
                .map_err(|e| Failure::Usage(format!("--region: {e}"))),
            None => Ok(client),
        }
    }
}

/// The operator commands (flattened into the top-level `ninety` commands).
#[derive(Subcommand)]
pub enum OpsCmd {
    /// Operates the cluster: init (configs and credentials), cert and token (more
    /// credentials), status, membership, leadership, snapshots.
    Cluster(cluster::ClusterArgs),
    /// Regions: generate a region file from a preset, import one into an empty cluster.
    Region(region::RegionArgs),
    /// Holds a bed for a patient (BedHolds.HoldBed).
    Hold(spot::HoldArgs),
    /// Confirms a bed hold: the patient is admitted (BedHolds.ConfirmHold).
    Confirm(spot::ConfirmArgs),
    /// Releases a bed hold (BedHolds.ReleaseHold).
    Release(spot::ReleaseArgs),
    /// Shows one bed hold (BedHolds.GetHold).
    HoldStatus(spot::HoldStatusArgs),
    /// Bed counts of a hospital's wards (BedHolds.WardAvailability).
    Wards(spot::WardsArgs),
    /// Ranks specialists' slots for a need (Matching.MatchSpecialist).
    Match(spot::MatchArgs),
    /// Holds a slot and books it (Scheduling.HoldSlot, then BookSlot).
    Book(spot::BookArgs),
    /// A hospital's bed state changes: discharge, clean, block, unblock (Capacity).
    Capacity(capacity::CapacityArgs),
    /// A referral's bed in another region: hold-remote, show (Referrals).
    Referral(referral::ReferralArgs),
    /// Whether the nodes' client listeners answer the gRPC health check (exit 0 when all
    /// report SERVING): container health checks and probes.
    Health(HealthArgs),
}

/// `ninety health`: only the shared options (--nodes, --cacert, --timeout).
#[derive(Args, Debug)]
pub struct HealthArgs {
    #[command(flatten)]
    pub g: Global,
}

/// Why a command failed.
pub enum Failure {
    /// The cluster answered with an error status.
    Status {
        status: Status,
        /// The request id of the refused or unknown action, so it can be retried.
        request_id: Option<String>,
    },
    /// Bad input caught before calling (a file, a duration).
    Usage(String),
    /// Anything else (I/O).
    Other(anyhow::Error),
}

impl From<anyhow::Error> for Failure {
    fn from(e: anyhow::Error) -> Failure {
        Failure::Other(e)
    }
}

impl From<Status> for Failure {
    fn from(status: Status) -> Failure {
        Failure::Status {
            status,
            request_id: None,
        }
    }
}

/// Attaches the request id of the failed action to a status.
pub fn with_id(request_id: &str) -> impl Fn(Status) -> Failure + '_ {
    move |status| Failure::Status {
        status,
        request_id: Some(request_id.to_string()),
    }
}

/// A gRPC code as its canonical name (`INVALID_ARGUMENT`).
pub fn code_name(code: Code) -> &'static str {
    match code {
        Code::Ok => "OK",
        Code::Cancelled => "CANCELLED",
        Code::Unknown => "UNKNOWN",
        Code::InvalidArgument => "INVALID_ARGUMENT",
        Code::DeadlineExceeded => "DEADLINE_EXCEEDED",
        Code::NotFound => "NOT_FOUND",
        Code::AlreadyExists => "ALREADY_EXISTS",
        Code::PermissionDenied => "PERMISSION_DENIED",
        Code::ResourceExhausted => "RESOURCE_EXHAUSTED",
        Code::FailedPrecondition => "FAILED_PRECONDITION",
        Code::Aborted => "ABORTED",
        Code::OutOfRange => "OUT_OF_RANGE",
        Code::Unimplemented => "UNIMPLEMENTED",
        Code::Internal => "INTERNAL",
        Code::Unavailable => "UNAVAILABLE",
        Code::DataLoss => "DATA_LOSS",
        Code::Unauthenticated => "UNAUTHENTICATED",
    }
}

/// The outcome-unknown codes: the action may or may not have been applied.
fn outcome_unknown(code: Code) -> bool {
    matches!(
        code,
        Code::Unavailable | Code::DeadlineExceeded | Code::Cancelled | Code::Unknown
    )
}

/// Prints a failure (human-readable on stderr, or JSON on stdout) and returns the exit code:
/// 1 for a refusal or failure the cluster reported, 2 for bad input, 3 when the outcome is
/// unknown (no answer: retry with the same request id).
pub fn report(failure: Failure, json_out: bool) -> ExitCode {
    match failure {
        Failure::Status { status, request_id } => {
            let rej = ninety_client::rejection(&status);
            let unknown = outcome_unknown(status.code());
            if json_out {
                let mut err = json!({
                    "code": code_name(status.code()),
                    "message": status.message(),
                });
                if let Some(r) = &rej {
                    err["rejection"] = json!({
                        "code": r.code().as_str_name(),
                        "field": r.field,
                        "message": r.message,
                        "at_ms": r.at_ms,
                    });
                }
                if let Some(id) = &request_id {
                    err["request_id"] = json!(id);
                    err["outcome_unknown"] = json!(unknown);
                }
                println!("{}", json!({ "error": err }));
            } else {
                eprintln!("error: {}: {}", code_name(status.code()), status.message());
                if let Some(r) = &rej {
                    eprintln!("  rejection: {}", r.code().as_str_name());
                    if !r.field.is_empty() {
                        eprintln!("  field:     {}", r.field);
                    }
                    if !r.message.is_empty() && r.message != status.message() {
                        eprintln!("  message:   {}", r.message);
                    }
                    if r.at_ms != 0 {
                        eprintln!("  at:        {}", table::utc(r.at_ms));
                    }
                }
                if let Some(id) = &request_id {
                    if unknown {
                        eprintln!(
                            "  the outcome is unknown: retry with --request-id {id} (it applies at most once)"
                        );
                    } else {
                        eprintln!("  request id: {id}");
                    }
                }
            }
            if unknown && request_id.is_some() {
                ExitCode::from(3)
            } else {
                ExitCode::from(1)
            }
        }
        Failure::Usage(msg) => {
            if json_out {
                println!(
                    "{}",
                    json!({ "error": { "code": "USAGE", "message": msg } })
                );
            } else {
                eprintln!("error: {msg}");
            }
            ExitCode::from(2)
        }
        Failure::Other(e) => {
            if json_out {
                println!(
                    "{}",
                    json!({ "error": { "code": "FAILED", "message": format!("{e:#}") } })
                );
            } else {
                eprintln!("error: {e:#}");
            }
            ExitCode::from(1)
        }
    }
}

/// Prints a command's result: `value` as JSON with `--json`, else `human`.
pub fn emit(g: &Global, value: Value, human: String) {
    use std::io::Write as _;
    let text = if g.json {
        let mut t = serde_json::to_string_pretty(&value).unwrap_or_default();
        t.push('\n');
        t
    } else {
        human
    };
    // A closed pipe (`| head`) is not an error worth a panic.
    let mut out = std::io::stdout().lock();
    let _ = out.write_all(text.as_bytes()).and_then(|()| out.flush());
}

/// Parses a duration: `15m`, `30s`, `2h`, `1d`, `500ms`, or a bare number of milliseconds.
pub fn parse_duration_ms(s: &str) -> Result<u64, String> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let n: u64 = num
        .parse()
        .map_err(|_| format!("{s:?} is not a duration (e.g. 15m, 30s, 2h, 500ms)"))?;
    let mult = match unit.trim() {
        "" | "ms" => 1,
        "s" => 1_000,
        "m" | "min" => 60_000,
        "h" => 3_600_000,
        "d" => 86_400_000,
        other => return Err(format!("unknown duration unit {other:?} (ms, s, m, h, d)")),
    };
    n.checked_mul(mult)
        .ok_or_else(|| format!("{s:?} is too long"))
}

/// The request id to use: the given one, else a fresh one.
pub fn request_id(given: &Option<String>) -> String {
    given.clone().unwrap_or_else(ninety_client::new_request_id)
}

/// A proto enum name without its type prefix, lowercased: `HOLD_STATE_ACTIVE` → `active`.
pub fn short(name: &str, prefix: &str) -> String {
    name.strip_prefix(prefix).unwrap_or(name).to_lowercase()
}

/// The commit info as JSON.
pub fn commit_json(c: &Option<pb::CommitInfo>) -> Value {
    match c {
        Some(c) => json!({
            "log_index": c.log_index,
            "log_time_ms": c.log_time_ms,
            "replayed": c.replayed,
        }),
        None => Value::Null,
    }
}

/// Runs one operator command and returns the process exit code.
pub fn run(cmd: OpsCmd) -> ExitCode {
    let json_out = match &cmd {
        OpsCmd::Cluster(a) => a.g.json,
        OpsCmd::Region(a) => a.g.json,
        OpsCmd::Hold(a) => a.g.json,
        OpsCmd::Confirm(a) => a.g.json,
        OpsCmd::Release(a) => a.g.json,
        OpsCmd::HoldStatus(a) => a.g.json,
        OpsCmd::Wards(a) => a.g.json,
        OpsCmd::Match(a) => a.g.json,
        OpsCmd::Book(a) => a.g.json,
        OpsCmd::Capacity(a) => a.json(),
        OpsCmd::Referral(a) => a.json(),
        OpsCmd::Health(a) => a.g.json,
    };
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => return report(Failure::Other(e.into()), json_out),
    };
    let result = rt.block_on(async move {
        match cmd {
            OpsCmd::Cluster(a) => cluster::run(a).await,
            OpsCmd::Region(a) => region::run(a).await,
            OpsCmd::Hold(a) => spot::hold(a).await,
            OpsCmd::Confirm(a) => spot::confirm(a).await,
            OpsCmd::Release(a) => spot::release(a).await,
            OpsCmd::HoldStatus(a) => spot::hold_status(a).await,
            OpsCmd::Wards(a) => spot::wards(a).await,
            OpsCmd::Match(a) => spot::match_specialist(a).await,
            OpsCmd::Book(a) => spot::book(a).await,
            OpsCmd::Capacity(a) => capacity::run(a).await,
            OpsCmd::Referral(a) => referral::run(a).await,
            OpsCmd::Health(a) => health::run(&a.g).await,
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(f) => report(f, json_out),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration_ms("15m"), Ok(900_000));
        assert_eq!(parse_duration_ms("30s"), Ok(30_000));
        assert_eq!(parse_duration_ms("500ms"), Ok(500));
        assert_eq!(parse_duration_ms("2h"), Ok(7_200_000));
        assert_eq!(parse_duration_ms("1200"), Ok(1_200));
        assert!(parse_duration_ms("soon").is_err());
        assert!(parse_duration_ms("5y").is_err());
    }

    #[test]
    fn enum_names_shorten() {
        assert_eq!(short("HOLD_STATE_ACTIVE", "HOLD_STATE_"), "active");
        assert_eq!(code_name(Code::InvalidArgument), "INVALID_ARGUMENT");
    }
}
