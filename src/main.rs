//! `orderly`: the local runner and its developer tools.

use std::time::Duration;

use clap::{Parser, Subcommand};
use orderly::config::SettingsArgs;
use orderly::{Runner, bench, dlq, load, secret};

// A request allocates many small, short-lived buffers (JSON, SQL params,
// log lines); the system allocator was ~15% of CPU under load.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Debug, Parser)]
#[command(
    name = "orderly",
    version,
    about = "Orderly: an event-driven order backend. Without a command, runs all four functions locally."
)]
struct Cli {
    #[command(flatten)]
    settings: SettingsArgs,

    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run all four functions on the embedded store (the default).
    Serve,
    /// Every setting of every host, as the README's Markdown table.
    Settings,
    /// Mint a development token signed with the runner's HS256 secret.
    Token {
        /// The customer id (`sub`).
        #[arg(long)]
        sub: String,
        /// Grant the admin scope.
        #[arg(long)]
        admin: bool,
        /// Lifetime.
        #[arg(long, default_value = "1h", value_parser = |s: &str| humantime::parse_duration(s).map_err(|e| e.to_string()))]
        ttl: Duration,
    },
    /// Check a running runner: GET /health on ORDERLY_ADDR (its loopback when
    /// that is 0.0.0.0); exit 0 when it answers with a success (the
    /// container image's HEALTHCHECK: no shell there).
    Health {
        /// Check this URL instead.
        #[arg(long)]
        url: Option<String>,
        /// How long to wait for the answer.
        #[arg(long, default_value = "3s", value_parser = |s: &str| humantime::parse_duration(s).map_err(|e| e.to_string()))]
        timeout: Duration,
    },
    /// Inspect or redrive dead-letter queues.
    Dlq {
        #[command(subcommand)]
        action: DlqAction,
    },
    /// Drive a realistic mix against a base URL, then check consistency.
    Load(load::LoadArgs),
    /// Benchmark intake against a bare hyper server (starts both itself).
    Bench(bench::BenchArgs),
    /// A card payment gateway speaking the protocol Orderly's payment
    /// adapter speaks (for local runs and tests): point ORDERLY_PAYMENT_URL at it.
    Gateway {
        #[arg(long, default_value = "127.0.0.1:8090")]
        addr: std::net::SocketAddr,
    },
    /// Checkout with the payment gateway healthy, then down, at half load
    /// (or at `--paced-rate`).
    BenchPayments(bench::BenchArgs),
    /// The AWS capacity model: shards, concurrency, quotas and cost per
    /// million orders at 1k/10k/100k orders/s (docs/capacity.md's table).
    Capacity,
    /// Figures of HTTP caching and compression on the runner (starts it itself).
    BenchEdge(orderly::bench_edge::BenchEdgeArgs),
    /// The bare hyper "hello" server that `bench` compares against.
    #[command(hide = true)]
    BenchHello {
        #[arg(long)]
        addr: std::net::SocketAddr,
    },
    /// The "durable hello" that `bench` compares against: the runner's
    /// server, one SQLite insert per request (its settings from the environment).
    #[command(hide = true)]
    BenchDurableHello,
}

#[derive(Debug, Subcommand)]
enum DlqAction {
    /// Dead letters per queue, with the last error of each.
    List {
        #[arg(long)]
        queue: Option<String>,
        #[arg(long, default_value_t = 20)]
        limit: usize,
    },
    /// Move dead letters back to their queue (after fixing the cause).
    Redrive {
        #[arg(long)]
        queue: Option<String>,
        #[arg(long, default_value_t = 1000)]
        limit: usize,
    },
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).expect("SIGTERM handler");
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let settings = cli.settings.settings()?;
    match cli.command.unwrap_or(Command::Serve) {
        Command::Serve => {
            let tracer = orderly::observability::init_telemetry(&settings.log, settings.otlp_endpoint.as_deref())?;
            orderly_core::messaging::keep_handled_lines(settings.handled_log_share);
            let data_dir = settings.data_dir.canonicalize().unwrap_or(settings.data_dir.clone());
            let scheme = if settings.tls.is_some() { "https" } else { "http" };
            let runner = Runner::start(settings).await?;
            // One write: eprintln! may write the pieces separately, and the
            // runner's tasks are already logging to the same file.
            let listening =
                format!("orderly: listening on {scheme}://{}  (data in {})\n", runner.addr(), data_dir.display());
            let _ = std::io::Write::write_all(&mut std::io::stderr(), listening.as_bytes());
            tracing::info!(addr = %runner.addr(), data_dir = %data_dir.display(), "orderly local runner started");
            shutdown_signal().await;
            tracing::info!("shutting down: finishing in-flight requests and batches (a second signal stops at once)");
            tokio::select! {
                _ = runner.stop() => tracing::info!("stopped"),
                // Nothing is lost by stopping now: queued messages and the
                // outbox are in the database, unacknowledged batches come back.
                _ = shutdown_signal() => {
                    tracing::warn!("a second signal: stopping without waiting for in-flight work");
                    std::process::exit(130);
                }
            }
            if let Some(tracer) = tracer {
                // Flush the spans still batched.
                let _ = tracer.shutdown();
            }
        }
        Command::Token { sub, admin, ttl } => {
            let (secret, _) = secret::load_or_create(settings.jwt_secret.as_deref(), &settings.data_dir)?;
            orderly_core::domain::CustomerId::parse(&sub).map_err(|e| anyhow::anyhow!("--sub: {e}"))?;
            println!("{}", orderly_core::http::mint_hs256(&secret, &sub, admin, ttl));
        }
        Command::Health { url, timeout } => {
            let url = url.unwrap_or_else(|| orderly::health_check::health_url(settings.addr, settings.tls.is_some()));
            let checked =
                orderly::health_check::check(&url, timeout, settings.tls.as_ref(), &settings.outbound_tls).await?;
            println!("{checked}");
        }
        Command::Settings => print!("{}", orderly_core::settings::markdown_table()),
        Command::Capacity => print!("{}", orderly::capacity::markdown()),
        Command::Load(args) => {
            let report = load::run(args).await?;
            load::print(&report);
            if !report.consistency.ok {
                anyhow::bail!("the consistency check failed");
            }
        }
        Command::Bench(args) => {
            let report = bench::run(args).await?;
            bench::print(&report);
        }
        Command::BenchEdge(args) => {
            let report = orderly::bench_edge::run(args.clone()).await?;
            orderly::bench_edge::print(&report, &args);
        }
        Command::BenchHello { addr } => bench::serve_hello(addr).await?,
        Command::BenchDurableHello => bench::serve_durable_hello(settings).await?,
        Command::BenchPayments(args) => {
            let report = bench::run_payments(args).await?;
            println!("{}", serde_json::to_string_pretty(&report)?);
        }
        Command::Gateway { addr } => orderly::gateway::serve(addr).await?,
        Command::Dlq { action } => {
            // Opening would create an empty database, and report no dead
            // letters, when run from another directory than the runner's.
            let database = orderly::config::database_path(&settings.data_dir);
            if !database.exists() {
                anyhow::bail!(
                    "no database at {}: run from the runner's directory or set ORDERLY_DATA_DIR",
                    database.display()
                );
            }
            let store = orderly::app::open_store(&settings)?;
            match action {
                DlqAction::List { queue, limit } => dlq::list(&store, queue.as_deref(), limit).await?,
                DlqAction::Redrive { queue, limit } => dlq::redrive(&store, queue.as_deref(), limit).await?,
            }
        }
    }
    Ok(())
}
