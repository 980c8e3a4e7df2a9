//! `orderly load --profile flash-sale`: one SKU with S units, N ≫ S buyers,
//! each placing one single-unit order as fast as the target takes them,
//! then the check of contract §10:
//!
//! - exactly S orders (units) confirmed — `confirmed` is the final success
//!   state, with or without a payment;
//! - every other accepted order rejected, none pending;
//! - the product's `available` is S − confirmed (0 when N ≥ S);
//! - the analytics summary moved by exactly these orders.
//!
//! Every buyer is its own customer (per-customer rate limits stay out of
//! the way, as they would for a real crowd) and sends its order with an
//! `Idempotency-Key`, so a retry after a 429/503 or a lost answer can never
//! place a second order.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use futures::StreamExt;
use hdrhistogram::Histogram;
use reqwest::StatusCode;
use serde::Serialize;
use serde_json::{Value, json};

use crate::load::{Consistency, LoadArgs, LoadReport, RouteFigures};

/// What the flash sale came to (in the load report).
#[derive(Debug, Clone, Default, Serialize)]
pub struct FlashSaleCheck {
    pub sku: String,
    pub units: u32,
    pub buyers: usize,
    pub accepted: u64,
    pub confirmed: u64,
    pub rejected: u64,
    pub pending: u64,
    pub available_after: i64,
    /// Buyers with no order at all: the target kept refusing, failed, or
    /// its answer was lost and the buyer's own order list shows none. Each
    /// one is a problem: §10 wants every order decided, not turned away.
    pub refused: u64,
    pub problems: Vec<String>,
}

const ROUTE: &str = "POST /api/v1/orders";

struct Sale {
    base: String,
    http: reqwest::Client,
    sku: String,
    latencies: Mutex<(Histogram<u64>, BTreeMap<String, u64>)>,
}

impl Sale {
    /// One buyer's order, retried with the same key until the target
    /// answers it (or gives a definite 4xx "no"): after a 429 or 503, a
    /// 5xx, or a lost or unreadable answer. Its id once accepted.
    async fn buy(&self, token: &str, key: &str, give_up: Instant) -> Option<String> {
        let body = json!({"items": [{"sku": self.sku, "quantity": 1}]});
        loop {
            let started = Instant::now();
            let sent = self
                .http
                .post(format!("{}/api/v1/orders", self.base))
                .bearer_auth(token)
                .header("Idempotency-Key", key)
                .json(&body)
                .send()
                .await;
            let status = match &sent {
                Ok(response) => response.status().as_str().to_owned(),
                Err(_) => "no-answer".to_owned(),
            };
            {
                let mut recorded = self.latencies.lock().unwrap_or_else(|e| e.into_inner());
                let _ = recorded.0.record(started.elapsed().as_micros().max(1) as u64);
                *recorded.1.entry(status).or_default() += 1;
            }
            match sent {
                Ok(response) if response.status() == StatusCode::ACCEPTED || response.status() == StatusCode::OK => {
                    let order: Value = response.json().await.unwrap_or(Value::Null);
                    if let Some(id) = order["id"].as_str() {
                        return Some(id.to_owned());
                    }
                    // An unreadable answer: the same key gets it again.
                }
                // A definite "no" to this request.
                Ok(response)
                    if response.status().is_client_error()
                        && !matches!(
                            response.status(),
                            StatusCode::TOO_MANY_REQUESTS | StatusCode::REQUEST_TIMEOUT
                        ) =>
                {
                    return None;
                }
                // Later (429, 503), a failure (5xx: the order may be
                // committed), or no answer: the same key again, which places
                // the order once or answers the first placement.
                _ => {}
            }
            if Instant::now() > give_up {
                return None;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// [`Self::get`], tried again on a failure until `until`: one
    /// transient error must not turn a check off.
    async fn get_patiently(&self, path: &str, token: &str, until: Instant) -> anyhow::Result<Value> {
        crate::load::get_json_patiently(&self.http, &self.base, path, token, until).await
    }

    /// The ids of the orders `token`'s customer has (one page: a buyer
    /// places one order).
    async fn orders_of(&self, token: &str, until: Instant) -> anyhow::Result<Vec<String>> {
        let page = self.get_patiently("/api/v1/orders?limit=100", token, until).await?;
        Ok(page["items"].as_array().into_iter().flatten().filter_map(|o| o["id"].as_str().map(str::to_owned)).collect())
    }

    async fn get(&self, path: &str, token: &str) -> anyhow::Result<Value> {
        crate::load::get_json(&self.http, &self.base, path, token).await
    }
}

pub async fn run(args: &LoadArgs) -> anyhow::Result<LoadReport> {
    let secret = args.secret.as_deref().context("the flash sale mints one token per buyer: give --secret")?;
    let run_id = format!("{:x}", rand::random::<u32>());
    let mint = |sub: &str, admin: bool| {
        orderly_core::http::mint_hs256(secret.as_bytes(), sub, admin, Duration::from_secs(6 * 3600))
    };
    let admin = mint(&format!("flash-{run_id}-admin"), true);
    let buyers: Vec<String> = (0..args.buyers.max(1)).map(|i| mint(&format!("flash-{run_id}-{i}"), false)).collect();
    let sale = Sale {
        base: args.url.trim_end_matches('/').to_owned(),
        http: reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .pool_max_idle_per_host(args.concurrency * 2)
            .build()?,
        sku: format!("FLASH-{}", run_id.to_uppercase()),
        latencies: Mutex::new((Histogram::new_with_bounds(1, 120_000_000, 3).expect("bounds"), BTreeMap::new())),
    };
    let units = args.initial_stock;
    let created = sale
        .http
        .put(format!("{}/api/v1/products/{}", sale.base, sale.sku))
        .bearer_auth(&admin)
        .json(&json!({"name": "Flash sale", "price": "9.99", "currency": "EUR", "stock": units}))
        .send()
        .await
        .with_context(|| format!("reaching {}", sale.base))?;
    if created.status() != StatusCode::CREATED {
        bail!("creating {} answered {} (is the secret the target's?)", sale.sku, created.status());
    }
    let summary_before =
        sale.get_patiently("/api/v1/analytics/summary", &admin, Instant::now() + args.settle_timeout).await.ok();

    // The burst: `concurrency` senders take the next buyer until none is left.
    let started = Instant::now();
    let give_up = started + args.duration.max(Duration::from_secs(60));
    let next = AtomicUsize::new(0);
    // Each accepted order's id, beside the buyer who placed it.
    let accepted: Mutex<Vec<(usize, String)>> = Mutex::default();
    futures::future::join_all((0..args.concurrency.max(1)).map(|_| async {
        loop {
            let buyer = next.fetch_add(1, Ordering::Relaxed);
            let Some(token) = buyers.get(buyer) else { break };
            if let Some(id) = sale.buy(token, &format!("flash-{run_id}-{buyer}"), give_up).await {
                accepted.lock().unwrap_or_else(|e| e.into_inner()).push((buyer, id));
            }
        }
    }))
    .await;
    let seconds = started.elapsed().as_secs_f64();
    let mut accepted = accepted.into_inner().unwrap_or_else(|e| e.into_inner());
    let until = Instant::now() + args.settle_timeout;

    // A buyer without an id may still have an order (its answer was a 5xx
    // after the commit, unreadable, or lost): its own list says.
    let answered: std::collections::BTreeSet<usize> = accepted.iter().map(|(buyer, _)| *buyer).collect();
    let unanswered: Vec<usize> = (0..buyers.len()).filter(|b| !answered.contains(b)).collect();
    let (sale_ref, buyers_ref) = (&sale, &buyers);
    let found: Vec<(usize, anyhow::Result<Vec<String>>)> = futures::stream::iter(unanswered)
        .map(|buyer| async move { (buyer, sale_ref.orders_of(&buyers_ref[buyer], until).await) })
        .buffer_unordered(args.concurrency.max(1))
        .collect()
        .await;
    let mut unlisted = 0;
    for (buyer, ids) in found {
        match ids {
            Ok(ids) => accepted.extend(ids.into_iter().map(|id| (buyer, id))),
            Err(_) => unlisted += 1,
        }
    }

    // Settle: every accepted order final, read back one by one by its buyer
    // (one admin reading them all would be held to one caller's rate limit).
    let mut finals: BTreeMap<String, Value> = BTreeMap::new();
    loop {
        let open: Vec<(usize, String)> = accepted.iter().filter(|(_, id)| !finals.contains_key(id)).cloned().collect();
        let (sale, buyers) = (&sale, &buyers);
        let read: Vec<(String, Option<Value>)> = futures::stream::iter(open)
            .map(|(buyer, id)| async move {
                let order = sale.get(&format!("/api/v1/orders/{id}"), &buyers[buyer]).await.ok();
                (id, order)
            })
            .buffer_unordered(args.concurrency.max(1))
            .collect()
            .await;
        for (id, order) in read {
            if let Some(order) = order.filter(|o| o["status"] != "pending") {
                finals.insert(id, order);
            }
        }
        if finals.len() == accepted.len() || Instant::now() > until {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    let with_orders: std::collections::BTreeSet<usize> = accepted.iter().map(|(buyer, _)| *buyer).collect();
    let mut check = FlashSaleCheck {
        sku: sale.sku.clone(),
        units,
        buyers: buyers.len(),
        accepted: accepted.len() as u64,
        refused: (buyers.len() - with_orders.len()) as u64,
        ..Default::default()
    };
    if check.refused > 0 {
        check.problems.push(format!(
            "{} buyers have no order ({unlisted} of them could not even be listed); see the POST statuses",
            check.refused
        ));
    }
    let mut by_status: BTreeMap<String, u64> = BTreeMap::new();
    let mut to_final = Histogram::<u64>::new_with_bounds(1, 600_000_000, 3).expect("bounds");
    for order in finals.values() {
        let status = order["status"].as_str().unwrap_or("?").to_owned();
        *by_status.entry(status.clone()).or_default() += 1;
        let at = |f: &str| chrono::DateTime::parse_from_rfc3339(order[f].as_str().unwrap_or_default());
        if let (Ok(created), Ok(updated)) = (at("created_at"), at("updated_at")) {
            let _ = to_final.record((updated - created).num_microseconds().unwrap_or(0).max(1) as u64);
        }
    }
    check.confirmed = by_status.get("confirmed").copied().unwrap_or(0);
    check.rejected = by_status.get("rejected").copied().unwrap_or(0);
    check.pending = check.accepted - finals.len() as u64;
    *by_status.entry("pending".into()).or_default() += check.pending;
    let expected_confirmed = check.accepted.min(u64::from(units));
    if check.confirmed != expected_confirmed {
        check.problems.push(format!("{} confirmed, expected exactly {expected_confirmed}", check.confirmed));
    }
    if check.rejected != check.accepted - expected_confirmed {
        check.problems.push(format!(
            "{} rejected, expected every other order ({})",
            check.rejected,
            check.accepted - expected_confirmed
        ));
    }
    if check.pending > 0 {
        check.problems.push(format!("{} orders still pending", check.pending));
    }
    // A rejected order's stock (a declined card) comes back after the
    // rejection: wait for it, within the same deadline.
    let expected_available = i64::from(units) - check.confirmed as i64;
    loop {
        let product = sale.get_patiently(&format!("/api/v1/products/{}", sale.sku), &admin, until).await?;
        check.available_after = product["available"].as_i64().unwrap_or(-1);
        if check.available_after == expected_available || Instant::now() > until {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    if check.available_after != expected_available {
        check
            .problems
            .push(format!("available {} after {} confirmed of {units}", check.available_after, check.confirmed));
    }
    let analytics = analytics_problems(&sale, &admin, summary_before, &by_status, check.confirmed, until).await;
    let analytics_checked = analytics.is_some();
    let analytics_mismatches = analytics.unwrap_or_default();
    if !analytics_checked {
        // This tool minted the admin token: an unreadable summary is the
        // target's failure, not a setup one.
        check.problems.push("the analytics summary could not be read".into());
    }

    let (histogram, statuses) = sale.latencies.into_inner().unwrap_or_else(|e| e.into_inner());
    let ms = |h: &Histogram<u64>, q: f64| h.value_at_quantile(q) as f64 / 1000.0;
    let figures = RouteFigures {
        requests: histogram.len(),
        per_second: histogram.len() as f64 / seconds,
        p50_ms: ms(&histogram, 0.5),
        p95_ms: ms(&histogram, 0.95),
        p99_ms: ms(&histogram, 0.99),
        max_ms: histogram.max() as f64 / 1000.0,
        by_status: statuses.clone(),
    };
    let ok = check.problems.is_empty() && analytics_mismatches.is_empty();
    Ok(LoadReport {
        url: sale.base.clone(),
        seconds,
        requests: histogram.len(),
        per_second: check.accepted as f64 / seconds,
        routes: BTreeMap::from([(ROUTE.to_owned(), figures)]),
        errors_by_status: statuses
            .into_iter()
            .filter(|(status, _)| status.parse::<u16>().map_or(true, |code| code >= 400))
            .collect(),
        accepted_to_final_p50_ms: ms(&to_final, 0.5),
        accepted_to_final_p95_ms: ms(&to_final, 0.95),
        accepted_to_final_p99_ms: ms(&to_final, 0.99),
        accepted_to_final_max_ms: to_final.max() as f64 / 1000.0,
        consistency: Consistency {
            orders_accepted: check.accepted,
            orders_in_store: finals.len() as u64,
            accepted_missing: 0,
            stuck_pending: check.pending,
            by_status,
            stock_mismatches: Vec::new(),
            analytics_mismatches,
            analytics_checked,
            ..Consistency { ok, ..Consistency::default() }
        },
        flash_sale: Some(check),
    })
}

/// Waits (until `until`) for the summary to have moved by exactly this
/// sale's orders; the mismatches left, or `None` when it is not readable.
async fn analytics_problems(
    sale: &Sale,
    admin: &str,
    before: Option<Value>,
    by_status: &BTreeMap<String, u64>,
    confirmed: u64,
    until: Instant,
) -> Option<Vec<String>> {
    let before = before?;
    loop {
        let after = sale.get_patiently("/api/v1/analytics/summary", admin, until).await.ok()?;
        let mut problems = Vec::new();
        for status in ["pending", "confirmed", "rejected", "cancelled"] {
            let moved = after["orders_by_status"][status].as_i64().unwrap_or(0)
                - before["orders_by_status"][status].as_i64().unwrap_or(0);
            let expected = by_status.get(status).copied().unwrap_or(0) as i64;
            if moved != expected {
                problems.push(format!("{status}: analytics moved by {moved}, orders say {expected}"));
            }
        }
        let units = after["units_by_sku"][&sale.sku].as_i64().unwrap_or(0);
        if units != confirmed as i64 {
            problems.push(format!("units of {}: analytics {units}, orders {confirmed}", sale.sku));
        }
        if problems.is_empty() || Instant::now() > until {
            return Some(problems);
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
