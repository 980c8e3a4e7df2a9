//! `orderly load`: a realistic mix of customers against any Orderly base URL
//! (the local runner or a deployed stack), then a consistency check.
//!
//! Virtual users browse the catalog, look at products, place orders (1–3
//! lines), look at and sometimes cancel their own orders; an admin restocks
//! now and then. Every run uses its own SKUs and customer ids, so its figures
//! and its checks are about its own orders only:
//!
//! - every order that got a 202 exists and reached a final state;
//! - for each SKU: available = initial + restocked − units of confirmed orders
//!   (counted over every order of the run, including any whose 202 was lost
//!   to a crash; a restock whose answer was lost after it was sent may or may
//!   not have been applied — it has no idempotency key — so it widens the
//!   expected value to a range);
//! - the analytics summary moved by exactly this run's orders, by status and
//!   by units per SKU;
//! - every order's payment fits its status (a confirmed order is authorized,
//!   awaiting an offline payment or paid; a cancelled card order's hold is
//!   voided), and, given the test gateway's URL (`--gateway-url`), the
//!   gateway agrees: every card order authorized exactly once for its total,
//!   and no money held for an order that is not sold (voided or declined).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use hdrhistogram::Histogram;
use indicatif::{ProgressBar, ProgressStyle};
use rand::Rng;
use reqwest::{Method, StatusCode};
use serde::Serialize;
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

fn duration(raw: &str) -> Result<Duration, String> {
    humantime::parse_duration(raw).map_err(|e| e.to_string())
}

/// What the virtual users do.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum Profile {
    /// Customers browse, order 1–3 lines, cancel; an admin restocks.
    #[default]
    Mixed,
    /// One SKU with `--initial-stock` units, `--buyers` single-unit orders at
    /// once, then the exactly-S check (see `flash_sale`).
    FlashSale,
}

#[derive(Debug, Clone, clap::Args)]
pub struct LoadArgs {
    /// What the load does.
    #[arg(long, value_enum, default_value_t = Profile::Mixed)]
    pub profile: Profile,
    /// Flash sale: how many buyers (one order each).
    #[arg(long, default_value_t = 20_000)]
    pub buyers: usize,
    /// Base URL of the API.
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    pub url: String,
    /// HS256 secret to mint tokens with (the runner's; see `orderly token`).
    #[arg(long, env = "ORDERLY_JWT_SECRET", hide_env_values = true)]
    pub secret: Option<String>,
    /// Or tokens from a file: the first line an admin token, then one customer token per line.
    #[arg(long, conflicts_with = "secret")]
    pub tokens_file: Option<PathBuf>,
    /// How long to generate load.
    #[arg(long, default_value = "10s", value_parser = duration)]
    pub duration: Duration,
    /// Concurrent virtual users.
    #[arg(long, default_value_t = 16)]
    pub concurrency: usize,
    /// Distinct customers (with a secret; with a tokens file, one per token).
    #[arg(long, default_value_t = 20)]
    pub customers: usize,
    /// Products created for the run.
    #[arg(long, default_value_t = 8)]
    pub skus: usize,
    /// Initial stock per product (small numbers exercise rejections); the
    /// flash sale's units.
    #[arg(long, default_value_t = 400)]
    pub initial_stock: u32,
    /// Total requests per second to aim for (default: as fast as answers come).
    #[arg(long)]
    pub rate: Option<f64>,
    /// How long to wait for orders to settle and queues to drain afterwards.
    #[arg(long, default_value = "60s", value_parser = duration)]
    pub settle_timeout: Duration,
    /// The test gateway (`orderly gateway`) the target pays through: its
    /// books are checked against the orders.
    #[arg(long)]
    pub gateway_url: Option<String>,
    /// Write the report as JSON here too.
    #[arg(long)]
    pub json: Option<PathBuf>,
    /// No progress bar (for logs and CI).
    #[arg(long)]
    pub quiet: bool,
    /// Ends the load before `duration` once cancelled; the settle phase and
    /// the checks run as usual. For callers that drive a scenario around the
    /// load (the fault tests): a load that stops on the clock races the
    /// scenario on a slow machine.
    #[arg(skip)]
    pub stop: Option<CancellationToken>,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct RouteFigures {
    pub requests: u64,
    pub per_second: f64,
    pub p50_ms: f64,
    pub p95_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
    pub by_status: BTreeMap<String, u64>,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct Consistency {
    pub orders_accepted: u64,
    pub orders_in_store: u64,
    /// Orders that got a 202 but are missing: must be 0.
    pub accepted_missing: u64,
    pub stuck_pending: u64,
    pub by_status: BTreeMap<String, u64>,
    /// SKUs whose stock does not add up: must be empty.
    pub stock_mismatches: Vec<String>,
    /// Where the analytics summary disagrees with the orders: must be empty.
    pub analytics_mismatches: Vec<String>,
    pub analytics_checked: bool,
    /// Orders whose payment does not fit their status or the gateway's books: must be empty.
    pub payment_mismatches: Vec<String>,
    pub gateway_checked: bool,
    /// Orders by payment method and status (`card/authorized`, ...).
    pub by_payment: BTreeMap<String, u64>,
    pub ok: bool,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct LoadReport {
    pub url: String,
    pub seconds: f64,
    pub requests: u64,
    pub per_second: f64,
    pub routes: BTreeMap<String, RouteFigures>,
    pub errors_by_status: BTreeMap<String, u64>,
    pub accepted_to_final_p50_ms: f64,
    pub accepted_to_final_p95_ms: f64,
    pub accepted_to_final_p99_ms: f64,
    pub accepted_to_final_max_ms: f64,
    pub consistency: Consistency,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub flash_sale: Option<crate::flash_sale::FlashSaleCheck>,
}

#[derive(Default)]
struct Recorder {
    routes: BTreeMap<&'static str, (Histogram<u64>, BTreeMap<String, u64>)>,
}

impl Recorder {
    fn record(&mut self, route: &'static str, status: &str, latency: Duration) {
        let entry = self
            .routes
            .entry(route)
            .or_insert_with(|| (Histogram::new_with_bounds(1, 120_000_000, 3).expect("bounds"), BTreeMap::new()));
        let _ = entry.0.record(latency.as_micros().max(1) as u64);
        *entry.1.entry(status.to_owned()).or_default() += 1;
    }
}

struct Run {
    base: String,
    http: reqwest::Client,
    admin: String,
    customers: Vec<(String, String)>,
    skus: Vec<String>,
    recorder: Mutex<Recorder>,
    accepted: Mutex<Vec<(usize, String)>>,
    restocked: Mutex<BTreeMap<String, i64>>,
    /// Restocks sent whose answer never came: applied or not, unknown.
    restocked_maybe: Mutex<BTreeMap<String, i64>>,
}

/// A request that got no answer; `maybe_applied` unless it never reached
/// the server (no connection).
#[derive(Debug, Clone, Copy)]
struct Unanswered {
    maybe_applied: bool,
}

impl Run {
    async fn call(
        &self,
        route: &'static str,
        method: Method,
        path: &str,
        token: &str,
        body: Option<&Value>,
    ) -> Result<(StatusCode, Value), Unanswered> {
        let mut request = self.http.request(method, format!("{}{path}", self.base)).bearer_auth(token);
        if let Some(body) = body {
            request = request.json(body);
        }
        let started = Instant::now();
        let result = request.send().await;
        let latency = started.elapsed();
        let status = match &result {
            Ok(response) => response.status().as_str().to_owned(),
            Err(error) if error.is_timeout() => "timeout".to_owned(),
            Err(_) => "connection-error".to_owned(),
        };
        self.recorder.lock().unwrap_or_else(|e| e.into_inner()).record(route, &status, latency);
        let response = result.map_err(|error| Unanswered { maybe_applied: !error.is_connect() })?;
        let status = response.status();
        Ok((status, response.json::<Value>().await.unwrap_or(Value::Null)))
    }

    async fn act(&self, user: usize, rng_roll: u32, pick: usize) {
        let (customer, token) = &self.customers[(user + pick) % self.customers.len()];
        let _ = customer;
        let sku = &self.skus[pick % self.skus.len()];
        match rng_roll {
            0..30 => {
                let _ = self.call("GET /api/v1/products", Method::GET, "/api/v1/products?limit=20", token, None).await;
            }
            30..55 => {
                let _ = self
                    .call("GET /api/v1/products/{sku}", Method::GET, &format!("/api/v1/products/{sku}"), token, None)
                    .await;
            }
            55..85 => {
                let lines = 1 + pick % 3;
                let items: Vec<Value> = (0..lines)
                    .map(
                        |i| json!({"sku": self.skus[(pick + i * 3) % self.skus.len()], "quantity": 1 + (pick + i) % 3}),
                    )
                    .collect();
                let body = json!({"items": items});
                if let Ok((StatusCode::ACCEPTED, order)) =
                    self.call("POST /api/v1/orders", Method::POST, "/api/v1/orders", token, Some(&body)).await
                    && let Some(id) = order["id"].as_str()
                {
                    let who = (user + pick) % self.customers.len();
                    self.accepted.lock().unwrap_or_else(|e| e.into_inner()).push((who, id.to_owned()));
                }
            }
            85..98 => {
                let who = (user + pick) % self.customers.len();
                let mine: Vec<String> = {
                    let accepted = self.accepted.lock().unwrap_or_else(|e| e.into_inner());
                    accepted.iter().filter(|(c, _)| *c == who).map(|(_, id)| id.clone()).collect()
                };
                let Some(id) = mine.get(pick % mine.len().max(1)).cloned() else { return };
                if rng_roll < 93 {
                    let _ = self
                        .call("GET /api/v1/orders/{id}", Method::GET, &format!("/api/v1/orders/{id}"), token, None)
                        .await;
                } else {
                    let _ = self
                        .call(
                            "POST /api/v1/orders/{id}/cancel",
                            Method::POST,
                            &format!("/api/v1/orders/{id}/cancel"),
                            token,
                            None,
                        )
                        .await;
                }
            }
            _ => {
                let quantity = 5 + (pick % 20) as i64;
                let path = format!("/api/v1/products/{sku}/restock");
                let answer = self
                    .call(
                        "POST /api/v1/products/{sku}/restock",
                        Method::POST,
                        &path,
                        &self.admin,
                        Some(&json!({"quantity": quantity})),
                    )
                    .await;
                // A restock has no idempotency key: one whose answer was lost
                // after it was sent (the server killed mid-request) may or may
                // not have been applied, and the check allows for both.
                let tally = match answer {
                    Ok((StatusCode::OK, _)) => &self.restocked,
                    Err(Unanswered { maybe_applied: true }) => &self.restocked_maybe,
                    _ => return,
                };
                *tally.lock().unwrap_or_else(|e| e.into_inner()).entry(sku.clone()).or_default() += quantity;
            }
        }
    }

    async fn get(&self, path: &str, token: &str) -> anyhow::Result<Value> {
        get_json(&self.http, &self.base, path, token).await
    }

    /// GET with retries: the settle phase must ride out a restarting server.
    async fn get_patiently(&self, path: &str, token: &str, until: Instant) -> anyhow::Result<Value> {
        get_json_patiently(&self.http, &self.base, path, token, until).await
    }
}

/// `GET {base}{path}` as `token`'s caller: the JSON of a 2xx, else an error.
pub(crate) async fn get_json(http: &reqwest::Client, base: &str, path: &str, token: &str) -> anyhow::Result<Value> {
    let response = http.get(format!("{base}{path}")).bearer_auth(token).send().await?;
    if !response.status().is_success() {
        bail!("GET {path}: {}", response.status());
    }
    Ok(response.json().await?)
}

/// [`get_json`], tried again on a failure until `until`: the checks must
/// ride out a restarting server or one transient error.
pub(crate) async fn get_json_patiently(
    http: &reqwest::Client,
    base: &str,
    path: &str,
    token: &str,
    until: Instant,
) -> anyhow::Result<Value> {
    loop {
        match get_json(http, base, path, token).await {
            Ok(value) => return Ok(value),
            Err(error) if Instant::now() > until => return Err(error),
            Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
}

fn tokens(args: &LoadArgs, run_id: &str) -> anyhow::Result<(String, Vec<(String, String)>)> {
    if let Some(path) = &args.tokens_file {
        let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        let mut lines = text.lines().map(str::trim).filter(|l| !l.is_empty());
        let admin = lines.next().context("the tokens file is empty")?.to_owned();
        let customers: Vec<(String, String)> =
            lines.enumerate().map(|(i, t)| (format!("customer-{i}"), t.to_owned())).collect();
        if customers.is_empty() {
            bail!("the tokens file has no customer tokens after the admin token");
        }
        return Ok((admin, customers));
    }
    let secret = args.secret.as_deref().context("give --secret (or ORDERLY_JWT_SECRET) or --tokens-file")?;
    let mint = |sub: &str, admin: bool| {
        orderly_core::http::mint_hs256(secret.as_bytes(), sub, admin, Duration::from_secs(6 * 3600))
    };
    let customers = (0..args.customers.max(1))
        .map(|i| {
            let sub = format!("load-{run_id}-{i}");
            let token = mint(&sub, false);
            (sub, token)
        })
        .collect();
    Ok((mint(&format!("load-{run_id}-admin"), true), customers))
}

pub async fn run(args: LoadArgs) -> anyhow::Result<LoadReport> {
    if args.profile == Profile::FlashSale {
        let report = crate::flash_sale::run(&args).await?;
        if let Some(path) = &args.json {
            std::fs::write(path, serde_json::to_vec_pretty(&report)?)
                .with_context(|| format!("writing {}", path.display()))?;
        }
        return Ok(report);
    }
    let run_id = format!("{:x}", rand::random::<u32>());
    let (admin, customers) = tokens(&args, &run_id)?;
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .pool_max_idle_per_host(args.concurrency * 2)
        .build()?;
    let skus: Vec<String> = (0..args.skus.max(1)).map(|i| format!("LOAD-{}-{i}", run_id.to_uppercase())).collect();
    let run = Arc::new(Run {
        base: args.url.trim_end_matches('/').to_owned(),
        http,
        admin,
        customers,
        skus,
        recorder: Mutex::default(),
        accepted: Mutex::default(),
        restocked: Mutex::default(),
        restocked_maybe: Mutex::default(),
    });

    for sku in &run.skus {
        let body = json!({"name": format!("Load product {sku}"), "price": "2.50", "currency": "EUR", "stock": args.initial_stock});
        let response = run
            .http
            .put(format!("{}/api/v1/products/{sku}", run.base))
            .bearer_auth(&run.admin)
            .json(&body)
            .send()
            .await
            .with_context(|| format!("reaching {}", run.base))?;
        if response.status() != StatusCode::CREATED {
            bail!("creating {sku} answered {} (is the admin token valid?)", response.status());
        }
    }
    let summary_before = run.get("/api/v1/analytics/summary", &run.admin).await.ok();

    let progress = if args.quiet { ProgressBar::hidden() } else { ProgressBar::new(args.duration.as_secs()) };
    progress.set_style(
        ProgressStyle::with_template("{spinner} [{elapsed_precise}] {bar:30} {pos}/{len}s {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let started = Instant::now();
    let deadline = started + args.duration;
    let stop = args.stop.clone().unwrap_or_default();
    let pause = args.rate.map(|r| Duration::from_secs_f64(args.concurrency as f64 / r.max(0.1)));
    let users: Vec<_> = (0..args.concurrency.max(1))
        .map(|user| {
            let (run, stop) = (run.clone(), stop.clone());
            tokio::spawn(async move {
                while Instant::now() < deadline && !stop.is_cancelled() {
                    let (roll, pick) = {
                        let mut rng = rand::rng();
                        (rng.random_range(0..100u32), rng.random_range(0..10_000usize))
                    };
                    run.act(user, roll, pick).await;
                    if let Some(pause) = pause {
                        tokio::time::sleep(pause).await;
                    }
                }
            })
        })
        .collect();
    while Instant::now() < deadline && !stop.is_cancelled() {
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_millis(250)) => {}
            _ = stop.cancelled() => {}
        }
        let done: u64 = {
            let recorder = run.recorder.lock().unwrap_or_else(|e| e.into_inner());
            recorder.routes.values().map(|(h, _)| h.len()).sum()
        };
        progress.set_position(started.elapsed().as_secs().min(args.duration.as_secs()));
        progress.set_message(format!("{done} requests, {:.0}/s", done as f64 / started.elapsed().as_secs_f64()));
    }
    for user in users {
        let _ = user.await;
    }
    let seconds = started.elapsed().as_secs_f64();
    progress.finish_with_message("settling orders and checking consistency");

    let mut report = LoadReport { url: run.base.clone(), seconds, ..Default::default() };
    {
        let recorder = run.recorder.lock().unwrap_or_else(|e| e.into_inner());
        for (route, (histogram, statuses)) in &recorder.routes {
            let ms = |q: f64| histogram.value_at_quantile(q) as f64 / 1000.0;
            report.requests += histogram.len();
            for (status, count) in statuses {
                let code: u16 = status.parse().unwrap_or(0);
                if code == 0 || code >= 400 {
                    *report.errors_by_status.entry(status.clone()).or_default() += count;
                }
            }
            report.routes.insert(
                route.to_string(),
                RouteFigures {
                    requests: histogram.len(),
                    per_second: histogram.len() as f64 / seconds,
                    p50_ms: ms(0.5),
                    p95_ms: ms(0.95),
                    p99_ms: ms(0.99),
                    max_ms: histogram.max() as f64 / 1000.0,
                    by_status: statuses.clone(),
                },
            );
        }
        report.per_second = report.requests as f64 / seconds;
    }
    settle_and_check(&run, &args, summary_before, &mut report).await?;
    if let Some(path) = &args.json {
        std::fs::write(path, serde_json::to_vec_pretty(&report)?)
            .with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(report)
}

async fn settle_and_check(
    run: &Run,
    args: &LoadArgs,
    summary_before: Option<Value>,
    report: &mut LoadReport,
) -> anyhow::Result<()> {
    let until = Instant::now() + args.settle_timeout;
    // Every order of the run, from each customer's own list (this includes
    // orders whose 202 never reached us because the server died).
    let mut orders: BTreeMap<String, Value> = BTreeMap::new();
    loop {
        orders.clear();
        for (_, token) in &run.customers {
            let mut path = "/api/v1/orders?limit=100".to_owned();
            loop {
                let page = run.get_patiently(&path, token, until).await?;
                for order in page["items"].as_array().into_iter().flatten() {
                    if let Some(id) = order["id"].as_str() {
                        orders.insert(id.to_owned(), order.clone());
                    }
                }
                match page["next_cursor"].as_str() {
                    Some(cursor) => path = format!("/api/v1/orders?limit=100&cursor={cursor}"),
                    None => break,
                }
            }
        }
        let accepted = run.accepted.lock().unwrap_or_else(|e| e.into_inner()).clone();
        let all_listed = accepted.iter().all(|(_, id)| orders.contains_key(id));
        let settled = orders.values().all(|o| o["status"] != "pending");
        if (all_listed && settled && drained(run).await) || Instant::now() > until {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    let accepted = run.accepted.lock().unwrap_or_else(|e| e.into_inner()).clone();
    let consistency = &mut report.consistency;
    consistency.orders_accepted = accepted.len() as u64;
    consistency.orders_in_store = orders.len() as u64;
    consistency.accepted_missing = accepted.iter().filter(|(_, id)| !orders.contains_key(id)).count() as u64;

    let mut confirmed_units: BTreeMap<String, i64> = BTreeMap::new();
    let mut to_final = Histogram::<u64>::new_with_bounds(1, 600_000_000, 3).expect("bounds");
    for order in orders.values() {
        let status = order["status"].as_str().unwrap_or("?").to_owned();
        *consistency.by_status.entry(status.clone()).or_default() += 1;
        if status == "pending" {
            consistency.stuck_pending += 1;
        }
        let payment = &order["payment"];
        let (method, paid) = (payment["method"].as_str().unwrap_or("?"), payment["status"].as_str().unwrap_or("?"));
        *consistency.by_payment.entry(format!("{method}/{paid}")).or_default() += 1;
        if !payment_fits(&status, method, paid) {
            let id = order["id"].as_str().unwrap_or("?");
            consistency.payment_mismatches.push(format!("order {id} is {status} with payment {method}/{paid}"));
        }
        if SOLD.contains(&status.as_str()) {
            for item in order["items"].as_array().into_iter().flatten() {
                let sku = item["sku"].as_str().unwrap_or_default().to_owned();
                *confirmed_units.entry(sku).or_default() += item["quantity"].as_i64().unwrap_or(0);
            }
        }
        if matches!(status.as_str(), "confirmed" | "rejected") {
            let at = |f: &str| chrono::DateTime::parse_from_rfc3339(order[f].as_str().unwrap_or_default());
            if let (Ok(created), Ok(updated)) = (at("created_at"), at("updated_at")) {
                let _ = to_final.record((updated - created).num_microseconds().unwrap_or(0).max(1) as u64);
            }
        }
    }
    let ms = |q: f64| to_final.value_at_quantile(q) as f64 / 1000.0;
    report.accepted_to_final_p50_ms = ms(0.5);
    report.accepted_to_final_p95_ms = ms(0.95);
    report.accepted_to_final_p99_ms = ms(0.99);
    report.accepted_to_final_max_ms = to_final.max() as f64 / 1000.0;

    let restocked = run.restocked.lock().unwrap_or_else(|e| e.into_inner()).clone();
    let restocked_maybe = run.restocked_maybe.lock().unwrap_or_else(|e| e.into_inner()).clone();
    for sku in &run.skus {
        let product = run.get_patiently(&format!("/api/v1/products/{sku}"), &run.admin, until).await?;
        let available = product["available"].as_i64().unwrap_or(-1);
        let expected = i64::from(args.initial_stock) + restocked.get(sku).copied().unwrap_or(0)
            - confirmed_units.get(sku).copied().unwrap_or(0);
        let unknown = restocked_maybe.get(sku).copied().unwrap_or(0);
        if !(expected..=expected + unknown).contains(&available) {
            let range = if unknown > 0 { format!("{expected}..={}", expected + unknown) } else { expected.to_string() };
            consistency.stock_mismatches.push(format!("{sku}: available {available}, expected {range}"));
        }
    }

    if let (Some(before), Ok(after)) =
        (summary_before, run.get_patiently("/api/v1/analytics/summary", &run.admin, until).await)
    {
        consistency.analytics_checked = true;
        for status in ["pending", "confirmed", "rejected", "cancelled", "shipped", "delivered"] {
            let delta = after["orders_by_status"][status].as_i64().unwrap_or(0)
                - before["orders_by_status"][status].as_i64().unwrap_or(0);
            let expected = consistency.by_status.get(status).copied().unwrap_or(0) as i64;
            if delta != expected {
                consistency
                    .analytics_mismatches
                    .push(format!("{status}: analytics moved by {delta}, orders say {expected}"));
            }
        }
        for sku in &run.skus {
            let units = after["units_by_sku"][sku].as_i64().unwrap_or(0);
            let expected = confirmed_units.get(sku).copied().unwrap_or(0);
            if units != expected {
                consistency.analytics_mismatches.push(format!("units of {sku}: analytics {units}, orders {expected}"));
            }
        }
    }
    if let Some(gateway) = &args.gateway_url {
        let book: Value = run.http.get(format!("{gateway}/_gateway/authorizations")).send().await?.json().await?;
        consistency.gateway_checked = true;
        check_gateway(&orders, &book, &mut consistency.payment_mismatches);
    }
    consistency.ok = consistency.accepted_missing == 0
        && consistency.stuck_pending == 0
        && consistency.stock_mismatches.is_empty()
        && consistency.analytics_mismatches.is_empty()
        && consistency.payment_mismatches.is_empty();
    Ok(())
}

/// Statuses whose sale stands: their units count, their money is taken or held.
const SOLD: [&str; 3] = ["confirmed", "shipped", "delivered"];

/// Whether a payment (`method`/`status`) fits an order's status.
fn payment_fits(status: &str, method: &str, payment: &str) -> bool {
    match (status, method, payment) {
        ("pending", _, "pending") => true,
        ("confirmed", "card", "authorized") | ("confirmed", "offline", "awaiting_offline" | "paid") => true,
        ("shipped" | "delivered", "card", "captured") | ("shipped" | "delivered", "offline", "paid") => true,
        ("rejected", _, "pending") | ("rejected", "card", "declined") => true,
        // A card order cancelled before its authorization keeps `pending`
        // in the read model; its late hold is voided in order-intake's.
        ("cancelled", "card", "pending" | "voided")
        | ("cancelled", "offline", "pending" | "awaiting_offline" | "paid") => true,
        _ => false,
    }
}

/// The gateway's books against the orders: each card order that is sold
/// was authorized once, for its total, and no hold outlives an order that
/// is not sold (its void went through).
fn check_gateway(orders: &BTreeMap<String, Value>, book: &Value, mismatches: &mut Vec<String>) {
    for held in book["authorizations"].as_array().into_iter().flatten() {
        let reference = held["reference"].as_str().unwrap_or_default();
        let Some(order) = orders.get(reference) else { continue };
        let status = order["status"].as_str().unwrap_or("?");
        let card = order["payment"]["method"] == "card";
        let hold = held["status"].as_str().unwrap_or("?");
        if held["idempotency_keys"].as_array().into_iter().flatten().any(|key| key != reference) {
            mismatches.push(format!("order {reference}: authorized under another key than its id"));
        }
        if SOLD.contains(&status) && card {
            if !matches!(hold, "authorized" | "captured") {
                mismatches.push(format!("order {reference} is {status} by card, but the gateway's hold is {hold}"));
            }
            // v1 totals are decimal strings with two places: "12.50" is 1250 minor units.
            let total = order["total"].as_str().and_then(|t| t.replace('.', "").parse::<i64>().ok());
            if held["amount_minor"].as_i64() != total {
                mismatches.push(format!(
                    "order {reference}: the gateway held {}, the order is {}",
                    held["amount_minor"], order["total"]
                ));
            }
        } else if hold == "authorized" {
            mismatches.push(format!("order {reference} is {status}, but the gateway still holds its money"));
        }
    }
    for (id, order) in orders {
        let sold_by_card =
            SOLD.contains(&order["status"].as_str().unwrap_or("?")) && order["payment"]["method"] == "card";
        let known =
            book["authorizations"].as_array().into_iter().flatten().any(|held| held["reference"] == id.as_str());
        if sold_by_card && !known {
            mismatches.push(format!("order {id} is paid by card, but the gateway never authorized it"));
        }
    }
}

/// Whether the server reports every queue empty (true when /health is not readable).
async fn drained(run: &Run) -> bool {
    match run.get("/health", &run.admin).await {
        Ok(health) => health["queues"].as_object().is_none_or(|q| q.values().all(|q| q["depth"] == 0)),
        Err(_) => false,
    }
}

pub fn print(report: &LoadReport) {
    println!(
        "load against {}: {} requests in {:.1} s ({:.0}/s)",
        report.url, report.requests, report.seconds, report.per_second
    );
    println!(
        "  {:<36} {:>8} {:>8} {:>8} {:>8} {:>8} {:>8}  statuses",
        "route", "count", "/s", "p50 ms", "p95 ms", "p99 ms", "max ms"
    );
    for (route, f) in &report.routes {
        let statuses: Vec<String> = f.by_status.iter().map(|(s, n)| format!("{s}:{n}")).collect();
        println!(
            "  {:<36} {:>8} {:>8.1} {:>8.2} {:>8.2} {:>8.2} {:>8.1}  {}",
            route,
            f.requests,
            f.per_second,
            f.p50_ms,
            f.p95_ms,
            f.p99_ms,
            f.max_ms,
            statuses.join(" ")
        );
    }
    println!("  errors by status: {:?}", report.errors_by_status);
    println!(
        "  202 -> final state: p50 {:.1} ms, p95 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
        report.accepted_to_final_p50_ms,
        report.accepted_to_final_p95_ms,
        report.accepted_to_final_p99_ms,
        report.accepted_to_final_max_ms
    );
    if let Some(sale) = &report.flash_sale {
        println!(
            "  flash sale of {} ({} units, {} buyers): {} accepted ({:.0}/s), {} confirmed, {} rejected, {} pending, {} refused, available after {}",
            sale.sku,
            sale.units,
            sale.buyers,
            sale.accepted,
            report.per_second,
            sale.confirmed,
            sale.rejected,
            sale.pending,
            sale.refused,
            sale.available_after
        );
        for problem in &sale.problems {
            println!("    ! {problem}");
        }
    }
    let c = &report.consistency;
    println!(
        "  consistency: {} ({} accepted, {} in store, {} missing, {} pending, by status {:?})",
        if c.ok { "OK" } else { "FAILED" },
        c.orders_accepted,
        c.orders_in_store,
        c.accepted_missing,
        c.stuck_pending,
        c.by_status
    );
    println!("  payments: {:?}{}", c.by_payment, if c.gateway_checked { " (checked against the gateway)" } else { "" });
    for problem in c.stock_mismatches.iter().chain(&c.analytics_mismatches).chain(&c.payment_mismatches) {
        println!("    ! {problem}");
    }
    if !c.analytics_checked {
        println!("    (analytics not checked: the summary was not readable with the admin token)");
    }
}
