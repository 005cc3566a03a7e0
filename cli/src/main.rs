//! The `ninety` operator binary.
//!
//! `ninety node --config node.toml` runs one replicated node until SIGTERM or ctrl-c (see
//! `cluster/node.sample.toml` for the config). Logs go to stderr, filtered by `RUST_LOG`
//! (default `info`), as text (colour only when stderr is a terminal) or, with
//! `--log-format json` (or a node config's `log_format = "json"`), one JSON object a line.

use anyhow::Context;
use clap::{Parser, Subcommand};
use ninety_cluster::runtime::{
    self,
    config::{FileConfig, LogFormat},
};
use std::io::IsTerminal;

/// mimalloc instead of glibc's malloc: a node allocates and frees small buffers on many
/// threads for every call (HTTP/2 frames, TLS records, protobuf messages, engine records),
/// and glibc's arenas spent ~17 % of a leader's CPU in `malloc`/`free`/`malloc_consolidate`
/// under the cluster bench (docs/performance.md, "The allocator"). Statically linked: the
/// `FROM scratch` image needs no new library.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

mod demo;
mod ops;
mod sim;
mod sim_replay;

#[derive(Parser)]
#[command(
    name = "ninety",
    version = ninety_cluster::metrics::VERSION,
    about = "Replicated scheduling and capacity engine for a health region"
)]
struct Cli {
    /// The log's format on stderr (default: the node config's `log_format`, else text).
    #[arg(long, global = true, value_enum)]
    log_format: Option<LogFormatArg>,
    #[command(subcommand)]
    command: Cmd,
}

/// `--log-format`.
#[derive(Clone, Copy, Debug, clap::ValueEnum)]
enum LogFormatArg {
    Text,
    Json,
}

/// Sets up the log: `RUST_LOG` (default `info`) to stderr in `format`; ANSI colour only
/// when stderr is a terminal, so redirected logs hold no escape codes.
fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.with_ansi(std::io::stderr().is_terminal()).init(),
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .with_span_list(false)
            .init(),
    }
}

/// The log format: `--log-format`, else a node config's `log_format` (an unreadable config
/// is reported by `node` itself), else text.
fn log_format(cli: &Cli) -> LogFormat {
    match (cli.log_format, &cli.command) {
        (Some(LogFormatArg::Json), _) => LogFormat::Json,
        (Some(LogFormatArg::Text), _) => LogFormat::Text,
        (None, Cmd::Node { config, .. }) => std::fs::read_to_string(config)
            .ok()
            .and_then(|text| FileConfig::parse(&text).ok())
            .and_then(|cfg| cfg.log_format)
            .unwrap_or_default(),
        (None, _) => LogFormat::Text,
    }
}

#[derive(Subcommand)]
enum Cmd {
    /// Runs one node of a cluster.
    Node {
        /// Path to the node's TOML config.
        #[arg(long)]
        config: std::path::PathBuf,
        /// Join an existing cluster as a new member on an empty data directory: never
        /// bootstrap, whatever `init` says (same as `join = true` in the config).
        #[arg(long)]
        join: bool,
    },
    /// Starts a local cluster on the built-in GBA region (or on several regions,
    /// `--layout south`), sends traffic, prints a summary.
    Demo {
        /// Nodes to start (3 or 5).
        #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u8).range(1..=5))]
        nodes: u8,
        /// Concurrent clients, 1 to 1024.
        #[arg(long, default_value_t = 16, value_parser = clap::value_parser!(u16).range(1..=DEMO_CLIENTS_MAX))]
        clients: u16,
        /// Bed holds in the burst (each followed by a confirm or a release), 0 to 1000000.
        #[arg(long, default_value_t = 2_000, value_parser = clap::value_parser!(u32).range(0..=DEMO_HOLDS_MAX))]
        holds: u32,
        /// Keep the cluster running after the burst until Ctrl-C.
        #[arg(long)]
        keep_running: bool,
        /// Keep the data directory after stopping.
        #[arg(long)]
        keep_data: bool,
        /// Skip the short GBA peak-hour replay (and its HTML report) after the burst.
        #[arg(long)]
        no_replay: bool,
        /// Serve clients on 127.0.0.1:PORT, PORT+1, ... and peers on PORT+100, PORT+101, ...
        /// (default: free ephemeral ports).
        #[arg(long, value_name = "PORT", value_parser = clap::value_parser!(u16).range(1..))]
        base_port: Option<u16>,
        /// Host a layout of several regions on the same nodes instead of the GBA region
        /// alone: `south` (gba, yunnan, asean, hainan), each region its own Raft group with
        /// its own burst (--holds and --clients per region), summary and replica check.
        #[arg(long, value_name = "NAME")]
        layout: Option<String>,
    },
    /// The simulators: deterministic fault simulation, peak-day traffic.
    Sim {
        #[command(subcommand)]
        cmd: sim::SimCmd,
    },
    /// Operator commands: cluster, region and spot checks (see `ops`).
    #[command(flatten)]
    Ops(Box<ops::OpsCmd>),
}

/// Most concurrent demo clients.
const DEMO_CLIENTS_MAX: i64 = 1_024;
/// Most bed holds in the demo's burst.
const DEMO_HOLDS_MAX: i64 = 1_000_000;

/// Resolves on SIGTERM or ctrl-c.
async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {}
        _ = term => {}
    }
    tracing::info!("shutdown requested: finishing in-flight requests");
}

/// `ninety node`: exit 2 when the config cannot be read or is invalid (nothing was
/// touched), 1 when the node refused to start or stopped on a fatal error; every message
/// names the file, field or address.
fn node(config: &std::path::Path, join: bool) -> std::process::ExitCode {
    // Fail-stop: a panic anywhere (a broken Raft invariant, a bug) ends the process instead
    // of leaving a server up around a dead node task. The crash-recovery model covers a
    // stopped node; a half-alive one is worse. (Not for `sim`: the simulator catches a
    // seed's panic and reports it as a violation.) The one panic that unwinds is one inside
    // the state machine's apply: the node core catches it, stops, and the runtime records the
    // entry so no restart replays it blindly (docs/operations.md, "A panic in apply").
    let default_hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        default_hook(info);
        if !ninety_cluster::node::panic_is_caught() {
            std::process::abort();
        }
    }));
    let cfg = std::fs::read_to_string(config)
        .map_err(anyhow::Error::from)
        .and_then(|text| Ok(FileConfig::parse(&text)?));
    let cfg = match cfg {
        Ok(cfg) => FileConfig {
            join: cfg.join || join,
            ..cfg
        },
        Err(e) => {
            eprintln!("error: {}: {e:#}", config.display());
            return std::process::ExitCode::from(2);
        }
    };
    let served = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the tokio runtime")
        .and_then(|rt| Ok(rt.block_on(runtime::serve(cfg, shutdown_signal()))?));
    match served {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: node {}: {e:#}", config.display());
            std::process::ExitCode::FAILURE
        }
    }
}

fn main() -> anyhow::Result<std::process::ExitCode> {
    let cli = Cli::parse();
    init_logging(log_format(&cli));
    match cli.command {
        Cmd::Node { config, join } => return Ok(node(&config, join)),
        Cmd::Demo {
            nodes,
            clients,
            holds,
            keep_running,
            keep_data,
            no_replay,
            base_port,
            layout,
        } => {
            // The last node serves peers on base_port + PEER_PORT_OFFSET + nodes - 1.
            let last = |p: u16| u32::from(p) + u32::from(demo::PEER_PORT_OFFSET) + u32::from(nodes);
            if base_port.is_some_and(|p| last(p) - 1 > 65_535) {
                eprintln!(
                    "error: --base-port: the last of {nodes} nodes' peer port would be above 65535"
                );
                return Ok(std::process::ExitCode::from(2));
            }
            let regions = match layout.as_deref().map(demo::layout_regions) {
                None => Vec::new(),
                Some(Ok(regions)) => regions,
                Some(Err(e)) => {
                    eprintln!("error: {e}");
                    return Ok(std::process::ExitCode::from(2));
                }
            };
            let opts = demo::Options {
                nodes: usize::from(nodes),
                clients: usize::from(clients),
                holds: holds as usize,
                keep_running,
                keep_data,
                replay: !no_replay,
                base_port,
                regions,
            };
            let rt = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()
                .context("starting the tokio runtime")?;
            rt.block_on(demo::run(opts))?;
        }
        Cmd::Sim { cmd } => return Ok(sim::run(cmd)),
        Cmd::Ops(cmd) => return Ok(ops::run(*cmd)),
    }
    Ok(std::process::ExitCode::SUCCESS)
}
