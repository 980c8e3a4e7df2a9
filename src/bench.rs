//! `orderly bench`: how fast is intake, next to the fastest server this
//! machine can run?
//!
//! In one run, with the same client and the same number of connections:
//! 1. a bare hyper "hello" server (a child process) at full speed;
//! 2. a "durable hello" (a child process): the runner's own server stack
//!    (its HTTP server, layers, edge middleware and access log) doing one
//!    SQLite insert per request through the runner's group-commit writer,
//!    with the runner's durability. Intake's floor: a request that must be
//!    durable before it is answered can go no faster than this;
//! 3. intake alone: `POST /api/v1/orders` on a runner that runs no consumer
//!    (`ORDERLY_CONSUMERS=none`), so that the front door is measured against
//!    its floor without the saga's four functions sharing its cores;
//! 4. `POST /api/v1/orders` on the runner as a user starts it (a child
//!    process, durable SQLite, access logs on, every consumer) at full speed
//!    (closed loop), then how long the saga takes to catch up: the maximum
//!    is only sustainable if that is short;
//! 5. the runner at half that rate (open loop, latency measured from the
//!    scheduled send time, so a stall cannot hide itself), then the time from
//!    202 to `confirmed` of every order of that phase, from the order's own
//!    `created_at`/`updated_at`.
//!
//! Beside the rates it reports what each server spent of the CPU per
//! request (Linux): the machine is shared by client and server, so a rate
//! alone cannot say whether a server is slow or merely starved.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use axum::extract::State;
use bytes::Bytes;
use hdrhistogram::Histogram;
use http_body_util::{BodyExt, Full};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo};
use orderly_adapters::sqlite::Database;
use orderly_core::ports::StoreError;
use orderly_core::settings::{Environment, Settings};
use serde::Serialize;
use serde_json::{Value, json};
use tokio::process::Command;
use tokio::sync::Mutex;
use tokio_util::sync::CancellationToken;

pub(crate) type HttpClient = Client<HttpConnector, Full<Bytes>>;

#[derive(Debug, Clone, clap::Args)]
pub struct BenchArgs {
    /// Concurrent clients (connections).
    #[arg(long, default_value_t = 32)]
    pub concurrency: usize,
    /// Length of each measured phase.
    #[arg(long, default_value = "10s", value_parser = |s: &str| humantime::parse_duration(s).map_err(|e| e.to_string()))]
    pub duration: Duration,
    /// Write the figures as JSON here too.
    #[arg(long)]
    pub json: Option<std::path::PathBuf>,
    /// Run the open-loop phases at this many orders/s (`bench`: then half
    /// of it) instead of half (then a quarter) of the measured maximum, so
    /// that two builds can be compared at the same load.
    #[arg(long, value_parser = positive_rate)]
    pub paced_rate: Option<f64>,
}

impl BenchArgs {
    /// The open-loop rate: `--paced-rate`, else half of intake's measured
    /// maximum.
    fn half_load(&self, orders_max: &Phase) -> f64 {
        match self.paced_rate {
            Some(rate) => {
                eprintln!("bench: the open-loop phases run at --paced-rate {rate}, not at half of the maximum");
                rate
            }
            None => orders_max.per_second / 2.0,
        }
    }
}

fn positive_rate(raw: &str) -> Result<f64, String> {
    match raw.parse::<f64>() {
        Ok(rate) if rate.is_finite() && rate >= 1.0 => Ok(rate),
        _ => Err(format!("expected orders per second, at least 1 (got {raw:?})")),
    }
}

#[derive(Debug, Serialize)]
pub struct Latencies {
    pub p50_ms: f64,
    pub p95_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
}

impl Latencies {
    fn of(h: &Histogram<u64>) -> Self {
        let ms = |q: f64| h.value_at_quantile(q) as f64 / 1000.0;
        Self { p50_ms: ms(0.50), p95_ms: ms(0.95), p99_ms: ms(0.99), max_ms: h.max() as f64 / 1000.0 }
    }
}

#[derive(Debug, Serialize)]
pub struct Phase {
    pub requests: u64,
    pub errors: u64,
    pub per_second: f64,
    pub latency: Latencies,
}

#[derive(Debug, Serialize)]
pub struct Report {
    pub cores: usize,
    pub concurrency: usize,
    pub phase_seconds: f64,
    pub durability: &'static str,
    pub hello: Phase,
    pub durable_hello: Phase,
    /// Intake on a runner that runs no consumer.
    pub intake_alone: Phase,
    pub orders_max: Phase,
    /// How long the saga took, after the full-speed phase, to empty every
    /// queue: the backlog intake's maximum left behind it.
    pub saga_catch_up_seconds: f64,
    /// The full-speed phase's orders over its length plus the catch-up: the
    /// rate at which orders are both accepted and carried through the saga.
    pub orders_sustained_per_second: f64,
    /// Intake / bare hyper hello.
    pub ratio: f64,
    /// Intake / durable hello.
    pub ratio_to_durable_hello: f64,
    /// Intake alone / durable hello.
    pub ratio_alone_to_durable_hello: f64,
    /// What each server spent of the CPU per request (user and system,
    /// every thread), in µs; `None` where `/proc` cannot say.
    pub server_cpu_us: ServerCpu,
    pub orders_half_load: Phase,
    pub accepted_to_confirmed: Latencies,
    pub confirmed_orders_measured: u64,
    /// The same at a quarter of the maximum: where the saga is not near its knee.
    pub orders_quarter_load: Phase,
    pub accepted_to_confirmed_quarter: Latencies,
}

#[derive(Debug, Serialize)]
pub struct ServerCpu {
    pub durable_hello_per_request: Option<f64>,
    pub intake_alone_per_order: Option<f64>,
    /// The runner's, from the start of the full-speed phase until the saga
    /// caught up, per order of that phase: an order through all four functions.
    pub runner_per_order_through_the_saga: Option<f64>,
}

/// A child process's CPU time so far (user and system, all threads), from
/// `/proc/<pid>/stat`; `None` off Linux or once it has exited.
fn cpu_time(child: &tokio::process::Child) -> Option<Duration> {
    cpu_time_in_stat(&std::fs::read_to_string(format!("/proc/{}/stat", child.id()?)).ok()?)
}

/// User plus system time from one line of `/proc/<pid>/stat`.
fn cpu_time_in_stat(stat: &str) -> Option<Duration> {
    // `utime` and `stime` (fields 14 and 15) count USER_HZ ticks, which
    // Linux fixes at 100 per second for user space on every architecture.
    const TICKS_PER_SECOND: u64 = 100;
    // The command name (field 2) may hold spaces and parentheses: count
    // from its last ")".
    let mut fields = stat.rsplit_once(')')?.1.split_whitespace().skip(11);
    let user: u64 = fields.next()?.parse().ok()?;
    let system: u64 = fields.next()?.parse().ok()?;
    Some(Duration::from_millis((user + system) * 1000 / TICKS_PER_SECOND))
}

/// CPU µs per request between two readings of [`cpu_time`].
fn cpu_per_request(before: Option<Duration>, after: Option<Duration>, requests: u64) -> Option<f64> {
    let spent = after?.checked_sub(before?)?;
    (requests > 0).then(|| spent.as_secs_f64() * 1e6 / requests as f64)
}

pub(crate) fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 60_000_000, 3).expect("valid histogram bounds")
}

/// The bare hyper server of the comparison (`orderly bench-hello`).
pub async fn serve_hello(addr: SocketAddr) -> anyhow::Result<()> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    loop {
        let (stream, _) = listener.accept().await?;
        tokio::spawn(async move {
            let service = hyper::service::service_fn(|_req| async {
                Ok::<_, Infallible>(Response::new(Full::new(Bytes::from_static(b"hello"))))
            });
            let _ = hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(stream), service).await;
        });
    }
}

/// The durable hello of the comparison (`orderly bench-durable-hello`),
/// with the runner's settings from the environment: `POST /` inserts its
/// body as one row through the group-commit writer and answers 202 after
/// the commit; `GET /` answers 200 (readiness).
pub async fn serve_durable_hello(settings: Settings) -> anyhow::Result<()> {
    use axum::routing::get;

    let _tracer = crate::observability::init_telemetry(&settings.log, None)?;
    let store = crate::app::open_store(&settings)?;
    let db = store.database().clone();
    db.write(|conn, _| {
        conn.execute_batch("CREATE TABLE IF NOT EXISTS bench_hello (id INTEGER PRIMARY KEY, body TEXT NOT NULL)")
            .map_err(|error| StoreError::Unavailable(error.to_string()))
    })
    .await?;
    let hello = axum::Router::new().route("/", get(|| async { "ok" }).post(durable_hello)).with_state(db).layer(
        axum::middleware::from_fn_with_state(
            crate::app::authenticator(&settings)?,
            orderly_core::http::edge_middleware,
        ),
    );
    let router = crate::app::server_layers(hello, &settings);
    let listener = tokio::net::TcpListener::bind(settings.addr).await?;
    crate::app::serve(listener, router, settings.header_timeout, None, CancellationToken::new()).await;
    Ok(())
}

async fn durable_hello(State(db): State<Database>, body: Bytes) -> axum::response::Response {
    use axum::response::IntoResponse;

    let body = String::from_utf8_lossy(&body).into_owned();
    let inserted = db
        .write(move |conn, _| {
            conn.execute("INSERT INTO bench_hello (body) VALUES (?1)", [body])
                .map_err(|error| StoreError::Unavailable(error.to_string()))
        })
        .await;
    match inserted {
        Ok(_) => StatusCode::ACCEPTED.into_response(),
        Err(error) => orderly_core::http::ApiError::Internal(error.to_string()).into_response(),
    }
}

pub(crate) fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

pub(crate) async fn wait_for(client: &HttpClient, url: &str) -> anyhow::Result<()> {
    let until = Instant::now() + Duration::from_secs(30);
    loop {
        let request = Request::get(url).body(Full::new(Bytes::new()))?;
        if let Ok(response) = client.request(request).await
            && response.status().is_success()
        {
            return Ok(());
        }
        if Instant::now() > until {
            bail!("{url} did not come up");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

struct Target {
    client: HttpClient,
    base: String,
}

impl Target {
    async fn send(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<&Value>,
    ) -> anyhow::Result<(StatusCode, Bytes)> {
        let mut request = Request::builder().method(method).uri(format!("{}{path}", self.base));
        if let Some(token) = token {
            request = request.header("authorization", format!("Bearer {token}"));
        }
        let body = match body {
            Some(value) => {
                request = request.header("content-type", "application/json");
                Bytes::from(serde_json::to_vec(value)?)
            }
            None => Bytes::new(),
        };
        let response = self.client.request(request.body(Full::new(body))?).await?;
        let status = response.status();
        Ok((status, response.into_body().collect().await?.to_bytes()))
    }
}

/// Closed loop: `concurrency` clients, each sending as fast as answers come.
pub(crate) async fn closed_loop<F, Fut>(concurrency: usize, duration: Duration, request: F) -> Phase
where
    F: Fn(usize, u64) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = bool> + Send,
{
    let request = Arc::new(request);
    let started = Instant::now();
    let deadline = started + duration;
    let workers: Vec<_> = (0..concurrency)
        .map(|worker| {
            let request = request.clone();
            tokio::spawn(async move {
                let (mut h, mut errors, mut n) = (histogram(), 0u64, 0u64);
                while Instant::now() < deadline {
                    let t = Instant::now();
                    let ok = request(worker, n).await;
                    n += 1;
                    if ok {
                        let _ = h.record(t.elapsed().as_micros().max(1) as u64);
                    } else {
                        errors += 1;
                    }
                }
                (h, errors)
            })
        })
        .collect();
    let (mut all, mut errors) = (histogram(), 0);
    for worker in workers {
        if let Ok((h, e)) = worker.await {
            let _ = all.add(&h);
            errors += e;
        }
    }
    let elapsed = started.elapsed().as_secs_f64();
    Phase { requests: all.len(), errors, per_second: all.len() as f64 / elapsed, latency: Latencies::of(&all) }
}

pub async fn run(args: BenchArgs) -> anyhow::Result<Report> {
    let exe = std::env::current_exe().context("locating the orderly binary")?;
    // The servers below inherit this environment, and with it the durability.
    let durability = Settings::load(&Environment).context("the runner's settings")?.sqlite_sync.describe();
    let work = tempfile::tempdir()?;
    let secret = hex::encode(rand::random::<[u8; 32]>());
    let client: HttpClient =
        Client::builder(TokioExecutor::new()).pool_max_idle_per_host(args.concurrency * 2).build_http();

    // 1. The bare hyper server.
    let hello_port = free_port()?;
    let mut hello = Command::new(&exe)
        .args(["bench-hello", "--addr", &format!("127.0.0.1:{hello_port}")])
        .kill_on_drop(true)
        .spawn()
        .context("starting the hello server")?;
    let hello_url = format!("http://127.0.0.1:{hello_port}/");
    wait_for(&client, &hello_url).await?;
    eprintln!("bench: hello server up; measuring {:?} with {} clients", args.duration, args.concurrency);
    let hello_client = client.clone();
    let hello_phase = closed_loop(args.concurrency, args.duration, move |_, _| {
        let (client, url) = (hello_client.clone(), hello_url.clone());
        async move {
            let Ok(request) = Request::get(url.as_str()).body(Full::new(Bytes::new())) else { return false };
            match client.request(request).await {
                Ok(response) => response.into_body().collect().await.is_ok(),
                Err(_) => false,
            }
        }
    })
    .await;
    let _ = hello.kill().await;

    // 2. The durable hello, with the runner's settings.
    let durable_port = free_port()?;
    let durable_dir = work.path().join("durable-hello");
    let mut durable =
        spawn_with_runner_settings(&exe, Some("bench-durable-hello"), durable_port, &durable_dir, &secret, &[])
            .context("starting the durable hello")?;
    let durable_url = format!("http://127.0.0.1:{durable_port}/");
    wait_for(&client, &durable_url).await?;
    eprintln!("bench: durable hello up; POST / at full speed");
    let durable_client = client.clone();
    let durable_cpu = cpu_time(&durable);
    let durable_hello = closed_loop(args.concurrency, args.duration, move |worker, n| {
        let (client, url) = (durable_client.clone(), durable_url.clone());
        // The size of an order's body, for a like-for-like insert.
        let body = order_body(n * 31 + worker as u64).to_string();
        async move {
            let Ok(request) = Request::post(url.as_str()).body(Full::new(Bytes::from(body))) else { return false };
            match client.request(request).await {
                Ok(response) => {
                    response.status() == StatusCode::ACCEPTED && response.into_body().collect().await.is_ok()
                }
                Err(_) => false,
            }
        }
    })
    .await;
    let durable_hello_cpu = cpu_per_request(durable_cpu, cpu_time(&durable), durable_hello.requests);
    let _ = durable.kill().await;

    // 3. Intake alone: the same runner with no consumer, so nothing but
    // intake runs in it (the orders stay queued).
    let alone_dir = work.path().join("intake-alone");
    let alone_env = [("ORDERLY_CONSUMERS", "none".to_owned())];
    let (mut alone, target, tokens) =
        start_runner(&exe, &alone_dir, &secret, &client, args.concurrency, &alone_env).await?;
    eprintln!("bench: runner without consumers up; POST /api/v1/orders at full speed");
    let alone_cpu = cpu_time(&alone);
    let intake_alone = orders_at_full_speed(&target, &tokens, &args).await;
    let intake_alone_cpu = cpu_per_request(alone_cpu, cpu_time(&alone), intake_alone.requests);
    let _ = alone.kill().await;

    // 4. The runner, as a user runs it (release build, durable, logging).
    let (mut runner, target, tokens) = start_runner(&exe, work.path(), &secret, &client, args.concurrency, &[]).await?;

    eprintln!("bench: runner up; POST /api/v1/orders at full speed");
    let runner_cpu = cpu_time(&runner);
    let orders_max = orders_at_full_speed(&target, &tokens, &args).await;
    // Let the saga catch up before the next phase; how long that takes says
    // whether the maximum was sustainable or a backlog in the making.
    let catching_up = Instant::now();
    wait_drained(&target).await;
    let saga_catch_up_seconds = catching_up.elapsed().as_secs_f64();
    let runner_cpu = cpu_per_request(runner_cpu, cpu_time(&runner), orders_max.requests);
    let orders_sustained_per_second =
        orders_max.requests as f64 / (args.duration.as_secs_f64() + saga_catch_up_seconds);

    // 5. Half (then a quarter) of the maximum, open loop, and 202 -> confirmed.
    let half_rate = args.half_load(&orders_max);
    let (half, to_confirmed) = paced(&target, &tokens, half_rate, args.duration).await?;
    let (quarter, to_confirmed_quarter) = paced(&target, &tokens, half_rate / 2.0, args.duration).await?;
    let _ = runner.kill().await;

    let report = Report {
        cores: std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1),
        concurrency: args.concurrency,
        phase_seconds: args.duration.as_secs_f64(),
        durability,
        ratio: orders_max.per_second / hello_phase.per_second.max(1.0),
        ratio_to_durable_hello: orders_max.per_second / durable_hello.per_second.max(1.0),
        ratio_alone_to_durable_hello: intake_alone.per_second / durable_hello.per_second.max(1.0),
        server_cpu_us: ServerCpu {
            durable_hello_per_request: durable_hello_cpu,
            intake_alone_per_order: intake_alone_cpu,
            runner_per_order_through_the_saga: runner_cpu,
        },
        hello: hello_phase,
        durable_hello,
        intake_alone,
        orders_max,
        saga_catch_up_seconds,
        orders_sustained_per_second,
        orders_half_load: half,
        confirmed_orders_measured: to_confirmed.len(),
        accepted_to_confirmed: Latencies::of(&to_confirmed),
        orders_quarter_load: quarter,
        accepted_to_confirmed_quarter: Latencies::of(&to_confirmed_quarter),
    };
    if let Some(path) = &args.json {
        write_json(path, &report)?;
    }
    Ok(report)
}

/// This binary (running `subcommand`, else the runner) on 127.0.0.1:`port`
/// with its data in `dir`/data, `secret` as its JWT secret and `env` on
/// top; its output goes to `dir`/orderly.log.
pub(crate) fn spawn_with_runner_settings(
    exe: &Path,
    subcommand: Option<&str>,
    port: u16,
    dir: &Path,
    secret: &str,
    env: &[(&str, String)],
) -> anyhow::Result<tokio::process::Child> {
    std::fs::create_dir_all(dir)?;
    let log = std::fs::File::create(dir.join("orderly.log"))?;
    Ok(Command::new(exe)
        .args(subcommand)
        .env("ORDERLY_ADDR", format!("127.0.0.1:{port}"))
        .env("ORDERLY_DATA_DIR", dir.join("data"))
        .env("ORDERLY_JWT_SECRET", secret)
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .stdout(log.try_clone()?)
        .stderr(log)
        .kill_on_drop(true)
        .spawn()?)
}

/// Starts the runner (this binary) with its data in `dir` and `env` on top
/// of the benchmark's settings, creates the benchmark's products, and
/// mints a token per client.
async fn start_runner(
    exe: &Path,
    dir: &Path,
    secret: &str,
    client: &HttpClient,
    concurrency: usize,
    env: &[(&str, String)],
) -> anyhow::Result<(tokio::process::Child, Arc<Target>, Arc<Vec<String>>)> {
    let port = free_port()?;
    // The benchmark measures intake, not the limiter: its 64 customers
    // would exceed the default per-customer write limit.
    let env: Vec<(&str, String)> =
        [("ORDERLY_RATE_LIMIT", "off".to_owned())].into_iter().chain(env.iter().cloned()).collect();
    let runner = spawn_with_runner_settings(exe, None, port, dir, secret, &env).context("starting the runner")?;
    let target = Arc::new(Target { client: client.clone(), base: format!("http://127.0.0.1:{port}") });
    wait_for(client, &format!("{}/health", target.base)).await?;
    let admin = orderly_core::http::mint_hs256(secret.as_bytes(), "bench-admin", true, Duration::from_secs(3600));
    for i in 0..SKUS {
        let body =
            json!({"name": format!("Bench item {i}"), "price": "4.20", "currency": "EUR", "stock": 1_000_000_000});
        let (status, _) =
            target.send(Method::PUT, &format!("/api/v1/products/BENCH-{i}"), Some(&admin), Some(&body)).await?;
        if !status.is_success() {
            bail!("creating a product answered {status}");
        }
    }
    let tokens = (0..concurrency.max(64))
        .map(|i| {
            orderly_core::http::mint_hs256(secret.as_bytes(), &format!("bench-{i}"), false, Duration::from_secs(3600))
        })
        .collect();
    Ok((runner, target, Arc::new(tokens)))
}

const SKUS: u64 = 16;

fn order_body(i: u64) -> Value {
    json!({"items": [{"sku": format!("BENCH-{}", i % SKUS), "quantity": 1}]})
}

/// `POST /api/v1/orders` as fast as `args.concurrency` clients can (closed loop).
async fn orders_at_full_speed(target: &Arc<Target>, tokens: &Arc<Vec<String>>, args: &BenchArgs) -> Phase {
    let (t, tk) = (target.clone(), tokens.clone());
    closed_loop(args.concurrency, args.duration, move |worker, n| {
        let (t, tk) = (t.clone(), tk.clone());
        let body = order_body(n * 31 + worker as u64);
        async move {
            matches!(
                t.send(Method::POST, "/api/v1/orders", Some(&tk[worker % tk.len()]), Some(&body)).await,
                Ok((StatusCode::ACCEPTED, _))
            )
        }
    })
    .await
}

/// One open-loop phase at `rate` orders/s, then 202 -> confirmed of its orders.
async fn paced(
    target: &Arc<Target>,
    tokens: &Arc<Vec<String>>,
    rate: f64,
    duration: Duration,
) -> anyhow::Result<(Phase, Histogram<u64>)> {
    let rate = rate.max(1.0);
    eprintln!("bench: {rate:.0} orders/s, open loop");
    let accepted: Arc<Mutex<Vec<(String, String)>>> = Arc::new(Mutex::new(Vec::new()));
    let phase = open_loop(rate, duration, {
        let (t, tk, accepted) = (target.clone(), tokens.clone(), accepted.clone());
        move |n| {
            let (t, tk, accepted) = (t.clone(), tk.clone(), accepted.clone());
            let body = order_body(n);
            async move {
                let token = &tk[n as usize % tk.len()];
                match t.send(Method::POST, "/api/v1/orders", Some(token), Some(&body)).await {
                    Ok((StatusCode::ACCEPTED, bytes)) => {
                        if let Some(id) = serde_json::from_slice::<Value>(&bytes)
                            .ok()
                            .and_then(|o| o["id"].as_str().map(str::to_owned))
                        {
                            accepted.lock().await.push((token.clone(), id));
                        }
                        true
                    }
                    _ => false,
                }
            }
        }
    })
    .await;
    wait_drained(target).await;
    let mut to_confirmed = histogram();
    for (token, id) in accepted.lock().await.iter() {
        let (status, bytes) = target.send(Method::GET, &format!("/api/v1/orders/{id}"), Some(token), None).await?;
        if status != StatusCode::OK {
            continue;
        }
        let order: Value = serde_json::from_slice(&bytes)?;
        if order["status"] != "confirmed" {
            continue;
        }
        let at = |field: &str| chrono::DateTime::parse_from_rfc3339(order[field].as_str().unwrap_or_default());
        if let (Ok(created), Ok(updated)) = (at("created_at"), at("updated_at")) {
            let micros = (updated - created).num_microseconds().unwrap_or(0).max(1) as u64;
            let _ = to_confirmed.record(micros);
        }
    }
    Ok((phase, to_confirmed))
}

fn write_json(path: &Path, report: &impl Serialize) -> anyhow::Result<()> {
    std::fs::write(path, serde_json::to_vec_pretty(report)?).with_context(|| format!("writing {}", path.display()))
}

async fn wait_drained(target: &Target) {
    let until = Instant::now() + Duration::from_secs(120);
    while Instant::now() < until {
        if let Ok((_, bytes)) = target.send(Method::GET, "/health", None, None).await
            && let Ok(health) = serde_json::from_slice::<Value>(&bytes)
        {
            let queues = health["queues"].as_object().cloned().unwrap_or_default();
            if !queues.is_empty() && queues.values().all(|q| q["depth"] == 0) {
                return;
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Open loop at `rate` per second; latency counts from the scheduled time.
async fn open_loop<F, Fut>(rate: f64, duration: Duration, request: F) -> Phase
where
    F: Fn(u64) -> Fut,
    Fut: std::future::Future<Output = bool> + Send + 'static,
{
    let started = Instant::now();
    let total = (rate * duration.as_secs_f64()) as u64;
    let interval = Duration::from_secs_f64(1.0 / rate);
    let mut tasks = tokio::task::JoinSet::new();
    for n in 0..total {
        let scheduled = started + interval.mul_f64(n as f64);
        tokio::time::sleep_until(scheduled.into()).await;
        let call = request(n);
        tasks.spawn(async move { (call.await, scheduled.elapsed()) });
    }
    let (mut h, mut errors) = (histogram(), 0);
    while let Some(result) = tasks.join_next().await {
        match result {
            Ok((true, latency)) => {
                let _ = h.record(latency.as_micros().max(1) as u64);
            }
            _ => errors += 1,
        }
    }
    let elapsed = started.elapsed().as_secs_f64();
    Phase { requests: h.len(), errors, per_second: h.len() as f64 / elapsed, latency: Latencies::of(&h) }
}

pub fn print(report: &Report) {
    let l = |x: &Latencies| {
        format!("p50 {:.2} ms, p95 {:.2} ms, p99 {:.2} ms, max {:.1} ms", x.p50_ms, x.p95_ms, x.p99_ms, x.max_ms)
    };
    println!(
        "Orderly benchmark: {} cores, loopback, {} clients, {:.0} s per phase",
        report.cores, report.concurrency, report.phase_seconds
    );
    println!("  durability                 {}", report.durability);
    println!("  bare hyper hello           {:>9.0} req/s   {}", report.hello.per_second, l(&report.hello.latency));
    println!(
        "  durable hello (1 insert)   {:>9.0} req/s   {}   errors {}",
        report.durable_hello.per_second,
        l(&report.durable_hello.latency),
        report.durable_hello.errors
    );
    println!(
        "  intake alone (no consumer) {:>9.0} req/s   {}   errors {}",
        report.intake_alone.per_second,
        l(&report.intake_alone.latency),
        report.intake_alone.errors
    );
    println!(
        "  POST /api/v1/orders (max)  {:>9.0} req/s   {}   errors {}",
        report.orders_max.per_second,
        l(&report.orders_max.latency),
        report.orders_max.errors
    );
    println!(
        "  saga caught up after       {:>9.2} s      sustained {:.0} orders/s (accepted and through the saga)",
        report.saga_catch_up_seconds, report.orders_sustained_per_second
    );
    println!("  ratio orders / hello       {:>9.3}", report.ratio);
    println!("  ratio orders / durable     {:>9.3}", report.ratio_to_durable_hello);
    println!("  ratio alone / durable      {:>9.3}", report.ratio_alone_to_durable_hello);
    let cpu = |us: Option<f64>| us.map_or("unknown".to_owned(), |us| format!("{us:.0} µs"));
    println!(
        "  server CPU per request     durable hello {}, intake alone {}, an order through the saga {}",
        cpu(report.server_cpu_us.durable_hello_per_request),
        cpu(report.server_cpu_us.intake_alone_per_order),
        cpu(report.server_cpu_us.runner_per_order_through_the_saga)
    );
    println!(
        "  at half load               {:>9.0} req/s   {}   errors {}",
        report.orders_half_load.per_second,
        l(&report.orders_half_load.latency),
        report.orders_half_load.errors
    );
    println!(
        "  202 -> confirmed (half)    {:>9} orders  {}",
        report.confirmed_orders_measured,
        l(&report.accepted_to_confirmed)
    );
    println!(
        "  at quarter load            {:>9.0} req/s   {}   errors {}",
        report.orders_quarter_load.per_second,
        l(&report.orders_quarter_load.latency),
        report.orders_quarter_load.errors
    );
    println!("  202 -> confirmed (quarter)               {}", l(&report.accepted_to_confirmed_quarter));
}

/// `orderly bench-payments`: checkout with the payment gateway healthy and
/// down, side by side in one run, at half of the runner's maximum intake.
#[derive(Debug, Serialize)]
pub struct PaymentReport {
    pub orders_max_per_second: f64,
    pub half_load_per_second: f64,
    /// 202 -> confirmed, card authorized by a healthy gateway.
    pub healthy: Latencies,
    /// 202 -> confirmed, the gateway answering 500: the breaker opens and
    /// orders are confirmed with offline instructions.
    pub gateway_down: Latencies,
    /// Authorization calls the gateway saw per order, healthy.
    pub gateway_calls_per_order: f64,
    /// Calls that reached the failing gateway, in all (the breaker's threshold, about).
    pub calls_to_the_failing_gateway: u64,
}

pub async fn run_payments(args: BenchArgs) -> anyhow::Result<PaymentReport> {
    let exe = std::env::current_exe().context("locating the orderly binary")?;
    let work = tempfile::tempdir()?;
    let secret = hex::encode(rand::random::<[u8; 32]>());
    let client: HttpClient =
        Client::builder(TokioExecutor::new()).pool_max_idle_per_host(args.concurrency * 2).build_http();
    let gateway = crate::gateway::TestGateway::start().await?;
    let env = [("ORDERLY_PAYMENT_URL", gateway.url.clone())];
    let (mut runner, target, tokens) =
        start_runner(&exe, work.path(), &secret, &client, args.concurrency, &env).await?;
    eprintln!("bench: runner up with a payment gateway; POST /api/v1/orders at full speed");
    let orders_max = orders_at_full_speed(&target, &tokens, &args).await;
    wait_drained(&target).await;
    let rate = args.half_load(&orders_max);
    let book = |client: HttpClient, url: String| async move {
        let request = Request::get(format!("{url}/_gateway/authorizations")).body(Full::new(Bytes::new()))?;
        let body = client.request(request).await?.into_body().collect().await?.to_bytes();
        anyhow::Ok(serde_json::from_slice::<Value>(&body)?)
    };
    let calls = |book: &Value| -> u64 {
        book["authorizations"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|a| a["authorize_calls"].as_u64().unwrap_or(0))
            .sum()
    };
    let before = calls(&book(client.clone(), gateway.url.clone()).await?);
    let (healthy, healthy_confirmed) = paced(&target, &tokens, rate, args.duration).await?;
    let after = calls(&book(client.clone(), gateway.url.clone()).await?);

    let request = Request::put(format!("{}/_gateway/mode", gateway.url))
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from_static(br#"{"mode":"fail"}"#)))?;
    client.request(request).await?;
    let (_, down_confirmed) = paced(&target, &tokens, rate, args.duration).await?;
    let failing = book(client.clone(), gateway.url.clone()).await?["failed_authorizations"].as_u64().unwrap_or(0);
    let _ = runner.kill().await;
    let report = PaymentReport {
        orders_max_per_second: orders_max.per_second,
        half_load_per_second: healthy.per_second,
        healthy: Latencies::of(&healthy_confirmed),
        gateway_down: Latencies::of(&down_confirmed),
        gateway_calls_per_order: (after - before) as f64 / healthy_confirmed.len().max(1) as f64,
        calls_to_the_failing_gateway: failing,
    };
    if let Some(path) = &args.json {
        write_json(path, &report)?;
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_open_loop_runs_at_the_paced_rate_when_one_is_given_else_at_half_the_maximum() {
        let orders_max =
            Phase { requests: 24_000, errors: 0, per_second: 3_000.0, latency: Latencies::of(&histogram()) };
        let args = |paced_rate| BenchArgs { concurrency: 32, duration: Duration::from_secs(8), json: None, paced_rate };
        assert_eq!(args(None).half_load(&orders_max), 1_500.0);
        assert_eq!(args(Some(850.0)).half_load(&orders_max), 850.0);
    }

    #[test]
    fn a_paced_rate_is_a_number_of_orders_per_second_of_at_least_one() {
        assert_eq!(positive_rate("850"), Ok(850.0));
        assert_eq!(positive_rate("1.5"), Ok(1.5));
        for bad in ["0", "0.5", "-3", "NaN", "inf", "fast", ""] {
            assert!(positive_rate(bad).is_err(), "{bad:?} was accepted");
        }
    }

    #[test]
    fn a_servers_cpu_time_is_its_user_and_system_ticks_whatever_its_name() {
        // pid (comm) state ppid pgrp session tty tpgid flags minflt cminflt majflt cmajflt utime stime ...
        let stat = "4242 (tokio (rt) x) S 1 4242 4242 0 -1 4194560 900 0 0 0 1234 566 0 0 20 0 9 0";
        assert_eq!(cpu_time_in_stat(stat), Some(Duration::from_millis(18_000)));
        assert_eq!(cpu_time_in_stat("4242 (cut short) S 1"), None);
        assert_eq!(cpu_time_in_stat(""), None);
    }

    #[test]
    fn cpu_per_request_needs_both_readings_and_some_requests() {
        let (before, after) = (Some(Duration::from_millis(100)), Some(Duration::from_millis(300)));
        assert_eq!(cpu_per_request(before, after, 2_000), Some(100.0));
        assert_eq!(cpu_per_request(None, after, 2_000), None);
        assert_eq!(cpu_per_request(before, after, 0), None);
        assert_eq!(cpu_per_request(after, before, 10), None, "a process restarted in between");
    }
}
