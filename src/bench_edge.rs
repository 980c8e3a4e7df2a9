//! `orderly bench-edge`: what HTTP caching and compression buy on the runner
//! (contract §8). A benchmark, not a test: it prints figures.
//!
//! Against the runner as a user runs it (a child process of this binary,
//! durable SQLite, in-process catalog cache on, rate limits off):
//! 1. bytes on the wire of `GET /api/v1/products?limit=100`, identity, gzip
//!    and br (status line, headers and body as hyper received them);
//! 2. one product, a full GET vs a conditional GET answered 304: bytes, and
//!    latency one request at a time;
//! 3. requests per second for `GET /api/v1/products/{sku}` with a warm cache
//!    (every answer a 200 with the body) vs the 304 path (the client holds
//!    the current ETag), `concurrency` clients each.

use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::{Method, Request, StatusCode};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use serde::Serialize;
use serde_json::json;

use crate::bench::{HttpClient, Phase, closed_loop, free_port, wait_for};

#[derive(Debug, Clone, clap::Args)]
pub struct BenchEdgeArgs {
    /// Concurrent clients in the requests-per-second phases.
    #[arg(long, default_value_t = 16)]
    pub concurrency: usize,
    /// Length of each measured phase.
    #[arg(long, default_value = "5s", value_parser = |s: &str| humantime::parse_duration(s).map_err(|e| e.to_string()))]
    pub duration: Duration,
    /// Products in the catalog (the list reads 100 of them).
    #[arg(long, default_value_t = 100)]
    pub products: usize,
}

#[derive(Debug, Serialize)]
pub struct Wire {
    pub status: u16,
    pub header_bytes: usize,
    pub body_bytes: usize,
}

impl Wire {
    fn total(&self) -> usize {
        self.header_bytes + self.body_bytes
    }
}

#[derive(Debug, Serialize)]
pub struct EdgeReport {
    pub list_identity: Wire,
    pub list_gzip: Wire,
    pub list_br: Wire,
    pub product_full: Wire,
    pub product_not_modified: Wire,
    pub full_get_one_at_a_time: Phase,
    pub conditional_get_one_at_a_time: Phase,
    pub full_get_warm_cache: Phase,
    pub conditional_get_304: Phase,
}

struct Runner {
    client: HttpClient,
    base: String,
}

impl Runner {
    /// One request; what arrived: status, header bytes (HTTP/1.1 framing as
    /// sent: status line, `name: value\r\n` each, the blank line), body bytes.
    async fn fetch(&self, path: &str, headers: &[(&str, &str)]) -> anyhow::Result<(Wire, Option<String>)> {
        let mut request = Request::get(format!("{}{path}", self.base));
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let response = self.client.request(request.body(Full::new(Bytes::new()))?).await?;
        let status = response.status();
        let etag = response.headers().get("etag").and_then(|v| v.to_str().ok()).map(str::to_owned);
        let header_bytes = "HTTP/1.1 200 OK\r\n".len()
            + response.headers().iter().map(|(n, v)| n.as_str().len() + 2 + v.len() + 2).sum::<usize>()
            + 2;
        let body = response.into_body().collect().await?.to_bytes();
        Ok((Wire { status: status.as_u16(), header_bytes, body_bytes: body.len() }, etag))
    }
}

pub async fn run(args: BenchEdgeArgs) -> anyhow::Result<EdgeReport> {
    let exe = std::env::current_exe().context("locating the orderly binary")?;
    let work = tempfile::tempdir()?;
    let secret = hex::encode(rand::random::<[u8; 32]>());
    let client: HttpClient =
        Client::builder(TokioExecutor::new()).pool_max_idle_per_host(args.concurrency * 2).build_http();
    let port = free_port()?;
    // Figures of the edge, not of the limiter.
    let env = [("ORDERLY_RATE_LIMIT", "off".to_owned()), ("ORDERLY_LOG", "warn".to_owned())];
    let mut child = crate::bench::spawn_with_runner_settings(&exe, None, port, work.path(), &secret, &env)
        .context("starting the runner")?;
    let runner = Arc::new(Runner { client: client.clone(), base: format!("http://127.0.0.1:{port}") });
    wait_for(&client, &format!("{}/health", runner.base)).await?;

    let admin = orderly_core::http::mint_hs256(secret.as_bytes(), "bench-admin", true, Duration::from_secs(3600));
    for i in 0..args.products {
        let body = json!({"name": format!("Loose-leaf tea number {i}, 100 g tin"), "price": "4.20", "currency": "EUR", "stock": 1000});
        let request = Request::builder()
            .method(Method::PUT)
            .uri(format!("{}/api/v1/products/TEA-{i:04}", runner.base))
            .header("authorization", format!("Bearer {admin}"))
            .header("content-type", "application/json")
            .body(Full::new(Bytes::from(serde_json::to_vec(&body)?)))?;
        let response = client.request(request).await?;
        if !response.status().is_success() {
            bail!("creating a product answered {}", response.status());
        }
    }

    let list = "/api/v1/products?limit=100";
    let (list_identity, _) = runner.fetch(list, &[]).await?;
    let (list_gzip, _) = runner.fetch(list, &[("accept-encoding", "gzip")]).await?;
    let (list_br, _) = runner.fetch(list, &[("accept-encoding", "br")]).await?;

    let product = "/api/v1/products/TEA-0042";
    let (product_full, etag) = runner.fetch(product, &[]).await?;
    let etag = etag.context("a catalog read without an ETag")?;
    let (product_not_modified, _) = runner.fetch(product, &[("if-none-match", &etag)]).await?;
    if product_not_modified.status != StatusCode::NOT_MODIFIED.as_u16() {
        bail!("the conditional GET answered {}", product_not_modified.status);
    }

    let phase = |concurrency: usize, conditional: bool| {
        let (runner, etag) = (runner.clone(), etag.clone());
        closed_loop(concurrency, args.duration, move |_, _| {
            let (runner, etag) = (runner.clone(), etag.clone());
            async move {
                let headers: &[(&str, &str)] = if conditional { &[("if-none-match", etag.as_str())] } else { &[] };
                let want = if conditional { 304 } else { 200 };
                matches!(runner.fetch(product, headers).await, Ok((wire, _)) if wire.status == want)
            }
        })
    };
    eprintln!("bench-edge: latency one request at a time ({:?} each)", args.duration);
    let full_get_one_at_a_time = phase(1, false).await;
    let conditional_get_one_at_a_time = phase(1, true).await;
    eprintln!("bench-edge: requests per second, {} clients", args.concurrency);
    let full_get_warm_cache = phase(args.concurrency, false).await;
    let conditional_get_304 = phase(args.concurrency, true).await;
    let _ = child.kill().await;

    Ok(EdgeReport {
        list_identity,
        list_gzip,
        list_br,
        product_full,
        product_not_modified,
        full_get_one_at_a_time,
        conditional_get_one_at_a_time,
        full_get_warm_cache,
        conditional_get_304,
    })
}

pub fn print(report: &EdgeReport, args: &BenchEdgeArgs) {
    let wire = |w: &Wire| format!("{:>6} B ({} B headers + {} B body)", w.total(), w.header_bytes, w.body_bytes);
    let phase = |p: &Phase| {
        format!(
            "{:>8.0} req/s  p50 {:.3} ms  p99 {:.3} ms  errors {}",
            p.per_second, p.latency.p50_ms, p.latency.p99_ms, p.errors
        )
    };
    println!("Orderly edge benchmark: the runner on loopback, {} products", args.products);
    println!("  GET /api/v1/products?limit=100   identity {}", wire(&report.list_identity));
    println!("                                   gzip     {}", wire(&report.list_gzip));
    println!("                                   br       {}", wire(&report.list_br));
    println!("  GET /api/v1/products/{{sku}}       200      {}", wire(&report.product_full));
    println!("                                   304      {}", wire(&report.product_not_modified));
    println!("  one client     full GET (200)    {}", phase(&report.full_get_one_at_a_time));
    println!("                 conditional (304) {}", phase(&report.conditional_get_one_at_a_time));
    println!("  {:>2} clients     full GET (200)    {}", args.concurrency, phase(&report.full_get_warm_cache));
    println!("                 conditional (304) {}", phase(&report.conditional_get_304));
}
