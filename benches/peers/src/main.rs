//! `peers_bench`: ninety's cluster-bench `single` workload (hold a bed on the next ward,
//! then release it, or confirm one hold in a hundred; closed loop; N clients) against
//! PostgreSQL or a 3-member etcd, for the side-by-side figures of issue 13.
//!
//! ```sh
//! benches/peers/setup.sh start
//! peers_bench postgres --url postgres://postgres@127.0.0.1:61200/postgres --clients 1,16,64,256
//! peers_bench etcd --endpoints http://127.0.0.1:61101,http://127.0.0.1:61102,http://127.0.0.1:61103
//! ```
//!
//! `benches/peers/run.sh` runs both and ninety's `cluster_bench` and prints one table.
//! Every row uses the GBA region's staffed wards and beds (`ninety_engine::generate`), the
//! same as `cluster_bench`, loaded fresh once per run; the rows of a run share that state
//! (confirmed beds stay occupied), as `cluster_bench`'s rows share one cluster.

mod etcd;
mod postgres;
mod workload;

use clap::{Parser, Subcommand};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use workload::{Row, Shape};

#[derive(Parser, Debug)]
#[command(about = "PostgreSQL and etcd doing ninety's cluster-bench single hold workload")]
struct Args {
    #[command(subcommand)]
    peer: Peer,
    /// Concurrencies to run, comma separated.
    #[arg(
        long,
        global = true,
        value_delimiter = ',',
        default_value = "1,16,64,256"
    )]
    clients: Vec<usize>,
    /// Measured seconds per row.
    #[arg(long, global = true, default_value_t = 10)]
    seconds: u64,
    /// Unmeasured seconds before each row.
    #[arg(long, global = true, default_value_t = 2)]
    warmup: u64,
    /// Percent of holds confirmed (the rest released); confirmed beds stay occupied.
    #[arg(long, global = true, default_value_t = 1)]
    confirm_percent: u64,
    /// Hold on the first this many staffed wards only (0: every one), as
    /// `cluster_bench --wards`: a few wards make the contended mix.
    #[arg(long, global = true, default_value_t = 0)]
    wards: usize,
    /// Hold ttl, ms (PostgreSQL stores the expiry; etcd has no expiry, see the README).
    #[arg(long, global = true, default_value_t = 60_000)]
    ttl_ms: u64,
    /// Write the rows as JSON here.
    #[arg(long, global = true)]
    json: Option<PathBuf>,
}

#[derive(Subcommand, Debug)]
enum Peer {
    /// A PostgreSQL server: one connection per client.
    Postgres {
        #[arg(long, default_value = "postgres://postgres@127.0.0.1:61200/postgres")]
        url: String,
    },
    /// A 3-member etcd cluster: every call to the leader, over `--connections` shared gRPC
    /// connections (as `cluster_bench` shares 4 HTTP/2 connections to ninety's leader).
    Etcd {
        #[arg(
            long,
            value_delimiter = ',',
            default_value = "http://127.0.0.1:61101,http://127.0.0.1:61102,http://127.0.0.1:61103"
        )]
        endpoints: Vec<String>,
        #[arg(long, default_value_t = 4)]
        connections: usize,
    },
}

fn shape(args: &Args) -> Arc<Shape> {
    let mut wards = workload::gba_wards();
    if args.wards > 0 {
        wards.truncate(args.wards);
    }
    Arc::new(Shape {
        wards,
        ttl_ms: args.ttl_ms,
        confirm_percent: args.confirm_percent.min(100),
        warmup: Duration::from_secs(args.warmup),
        seconds: Duration::from_secs(args.seconds.max(1)),
    })
}

async fn run_postgres(args: &Args, url: &str) -> anyhow::Result<Vec<Row>> {
    let shape = shape(args);
    postgres::load(url, &shape.wards).await?;
    let mut rows = Vec::new();
    for &c in &args.clients {
        let mut sessions = Vec::with_capacity(c);
        for _ in 0..c.max(1) {
            sessions.push(postgres::PgSession::open(url).await?);
        }
        let row = workload::run_row("postgres", sessions, shape.clone()).await;
        row.print();
        rows.push(row);
    }
    Ok(rows)
}

async fn run_etcd(args: &Args, endpoints: &[String], conns: usize) -> anyhow::Result<Vec<Row>> {
    let shape = shape(args);
    let leader = etcd::leader(endpoints).await?;
    eprintln!("etcd leader {leader}");
    etcd::load(&leader, &shape.wards).await?;
    let beds = Arc::new(shape.wards.iter().map(|w| (w.id, w.staffed_beds)).collect());
    let mut rows = Vec::new();
    for &c in &args.clients {
        let mut pool = Vec::new();
        for _ in 0..conns.clamp(1, c.max(1)) {
            pool.push(etcd_client::Client::connect([&leader], None).await?);
        }
        let sessions = (0..c.max(1))
            .map(|i| etcd::EtcdSession::new(pool[i % pool.len()].clone(), &beds, i * 7))
            .collect();
        let row = workload::run_row("etcd", sessions, shape.clone()).await;
        row.print();
        rows.push(row);
    }
    Ok(rows)
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    println!(
        "peers bench: {} s per row after {} s warm-up, confirm {}%, load average {}",
        args.seconds,
        args.warmup,
        args.confirm_percent,
        workload::loadavg()
    );
    workload::print_header();
    let rows = rt.block_on(async {
        match &args.peer {
            Peer::Postgres { url } => run_postgres(&args, url).await,
            Peer::Etcd {
                endpoints,
                connections,
            } => run_etcd(&args, endpoints, *connections).await,
        }
    })?;
    println!("load average at the end: {}", workload::loadavg());
    if let Some(path) = &args.json {
        let v: Vec<_> = rows.iter().map(Row::json).collect();
        std::fs::write(path, serde_json::to_string_pretty(&v)?)
            .map_err(|e| anyhow::anyhow!("--json {}: {e}", path.display()))?;
    }
    Ok(())
}
