//! Crash safety: the runner is killed with SIGKILL (kill -9) while clients
//! are placing orders, and restarted on the same data directory, several
//! times. Afterwards every order that got a 202 must exist and be settled,
//! stock must add up exactly, and the read models must equal the orders:
//! nothing lost, nothing applied twice.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rand::Rng;
use reqwest::StatusCode;
use serde_json::{Value, json};
use support::{DEADLINE, Launch, RunnerProcess, free_port, token};
use tokio_util::sync::CancellationToken;

mod support;

const SKUS: [&str; 3] = ["A", "B", "C"];
const INITIAL_STOCK: i64 = 150;
const CUSTOMERS: usize = 6;

/// Places orders until told to stop; records the id of every 202.
async fn place_orders(
    client: reqwest::Client,
    base: String,
    who: usize,
    accepted: Arc<Mutex<Vec<(usize, String)>>>,
    stop: CancellationToken,
) {
    let token = token(&format!("crash-{who}"), false);
    loop {
        let items: Vec<Value> = {
            let mut rng = rand::rng();
            let lines = rng.random_range(1..=2);
            (0..lines)
                .map(|i| json!({"sku": SKUS[(who + i) % SKUS.len()], "quantity": rng.random_range(1..=3)}))
                .collect()
        };
        let send =
            client.post(format!("{base}/api/v1/orders")).bearer_auth(&token).json(&json!({"items": items})).send();
        tokio::select! {
            _ = stop.cancelled() => return,
            result = send => match result {
                Ok(response) if response.status() == StatusCode::ACCEPTED => {
                    if let Ok(body) = response.json::<Value>().await {
                        accepted.lock().unwrap().push((who, body["id"].as_str().unwrap().to_owned()));
                    }
                }
                // The process is being killed or restarting: try again.
                _ => tokio::time::sleep(Duration::from_millis(5)).await,
            }
        }
    }
}

async fn get_json(client: &reqwest::Client, url: String, token: &str) -> Value {
    client.get(url).bearer_auth(token).send().await.unwrap().json().await.unwrap()
}

/// Every order of a customer, through the read model, once none is pending.
/// `who`'s orders in the read model once all of `accepted` are there and
/// none is pending. An event in flight at a kill comes back only after its
/// visibility timeout, so an accepted order may reach the read model late.
async fn settled_orders(client: &reqwest::Client, base: &str, who: usize, accepted: &[&str]) -> Vec<Value> {
    let token = token(&format!("crash-{who}"), false);
    let until = tokio::time::Instant::now() + DEADLINE;
    loop {
        let mut orders = Vec::new();
        let mut url = format!("{base}/api/v1/orders?limit=100");
        loop {
            let page = get_json(client, url.clone(), &token).await;
            orders.extend(page["items"].as_array().unwrap().iter().cloned());
            match page["next_cursor"].as_str() {
                Some(cursor) => url = format!("{base}/api/v1/orders?limit=100&cursor={cursor}"),
                None => break,
            }
        }
        let listed = |id: &&str| orders.iter().any(|o| o["id"] == *id);
        if orders.iter().all(|o| o["status"] != "pending") && accepted.iter().all(listed) {
            return orders;
        }
        assert!(tokio::time::Instant::now() < until, "orders of crash-{who} still pending or missing");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn kill_9_during_load_loses_no_accepted_order_and_applies_nothing_twice() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let client = reqwest::Client::builder().timeout(Duration::from_secs(10)).build().unwrap();
    let admin = token("admin", true);

    let mut runner = RunnerProcess::start(Launch::new(dir.path(), port)).await;
    for sku in SKUS {
        let response = client
            .put(format!("{base}/api/v1/products/{sku}"))
            .bearer_auth(&admin)
            .json(&json!({"name": sku, "price": "1.50", "currency": "EUR", "stock": INITIAL_STOCK}))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::CREATED);
    }

    let accepted = Arc::new(Mutex::new(Vec::new()));
    let stop = CancellationToken::new();
    let clients: Vec<_> = (0..CUSTOMERS)
        .map(|who| tokio::spawn(place_orders(client.clone(), base.clone(), who, accepted.clone(), stop.clone())))
        .collect();

    // Let some orders through, then kill mid-stream; after the last restart,
    // let the new generation take orders too before the clients stop.
    let orders_through = |generation: usize| {
        let accepted = accepted.clone();
        async move {
            let before = accepted.lock().unwrap().len();
            let until = tokio::time::Instant::now() + DEADLINE;
            while accepted.lock().unwrap().len() < before + 40 {
                assert!(tokio::time::Instant::now() < until, "no progress in generation {generation}");
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
    };
    for generation in 1..=3 {
        orders_through(generation - 1).await;
        runner.kill_9().await; // SIGKILL
        runner = RunnerProcess::start(Launch { generation, ..Launch::new(dir.path(), port) }).await;
    }
    orders_through(3).await;
    stop.cancel();
    for task in clients {
        task.await.unwrap();
    }

    // 1. Every order that got a 202 exists and is settled.
    let accepted = accepted.lock().unwrap().clone();
    assert!(accepted.len() >= 160, "the load produced {} orders", accepted.len());
    let mut all_orders: BTreeMap<String, Value> = BTreeMap::new();
    for who in 0..CUSTOMERS {
        let theirs: Vec<&str> = accepted.iter().filter(|(w, _)| *w == who).map(|(_, id)| id.as_str()).collect();
        for order in settled_orders(&client, &base, who, &theirs).await {
            all_orders.insert(order["id"].as_str().unwrap().to_owned(), order);
        }
    }
    for (who, id) in &accepted {
        let order =
            get_json(&client, format!("{base}/api/v1/orders/{id}"), &token(&format!("crash-{who}"), false)).await;
        assert!(matches!(order["status"].as_str(), Some("confirmed" | "rejected")), "order {id}: {order}");
        assert!(all_orders.contains_key(id), "accepted order {id} is missing from the read model");
    }

    // 2. Stock adds up exactly: nothing reserved twice, nothing lost.
    let mut confirmed_units: BTreeMap<String, i64> = BTreeMap::new();
    let mut by_status: BTreeMap<String, i64> = BTreeMap::new();
    for order in all_orders.values() {
        *by_status.entry(order["status"].as_str().unwrap().to_owned()).or_default() += 1;
        if order["status"] == "confirmed" {
            for item in order["items"].as_array().unwrap() {
                *confirmed_units.entry(item["sku"].as_str().unwrap().to_owned()).or_default() +=
                    item["quantity"].as_i64().unwrap();
            }
        }
    }
    for sku in SKUS {
        let product: Value =
            client.get(format!("{base}/api/v1/products/{sku}")).send().await.unwrap().json().await.unwrap();
        let reserved = confirmed_units.get(sku).copied().unwrap_or(0);
        assert_eq!(product["available"].as_i64().unwrap(), INITIAL_STOCK - reserved, "stock of {sku}");
    }

    // 3. The read models equal the orders, once every event is applied.
    let until = tokio::time::Instant::now() + DEADLINE;
    let summary = loop {
        let summary = get_json(&client, format!("{base}/api/v1/analytics/summary"), &admin).await;
        let matches = ["confirmed", "rejected", "pending", "cancelled"]
            .iter()
            .all(|s| summary["orders_by_status"][*s].as_i64() == Some(by_status.get(*s).copied().unwrap_or(0)));
        if matches {
            break summary;
        }
        assert!(tokio::time::Instant::now() < until, "analytics never matched {by_status:?}: {summary}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    for (sku, units) in &confirmed_units {
        assert_eq!(summary["units_by_sku"][sku].as_i64(), Some(*units), "analytics units of {sku}");
    }
    assert_eq!(summary["orders_total"].as_i64(), Some(all_orders.len() as i64));

    // 4. One notification per settled order, each sent once. The notifier
    // is a consumer of its own, which may still be behind analytics.
    let until = tokio::time::Instant::now() + DEADLINE;
    let notified: Vec<String> = loop {
        let notifications = get_json(&client, format!("{base}/api/v1/notifications?limit=1000"), &admin).await;
        let notified: Vec<String> = notifications["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|n| n["order_id"].as_str().unwrap().to_owned())
            .collect();
        if notified.len() >= all_orders.len() {
            break notified;
        }
        assert!(
            tokio::time::Instant::now() < until,
            "{} notifications for {} settled orders",
            notified.len(),
            all_orders.len()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let unique: BTreeSet<&str> = notified.iter().map(String::as_str).collect();
    assert_eq!(notified.len(), unique.len(), "an order was notified twice");
    assert_eq!(unique, all_orders.keys().map(String::as_str).collect(), "every settled order is notified");

    println!(
        "crash test: {} orders accepted across 3 kill -9 restarts ({} in store), {:?}, 0 lost, 0 double reservations",
        accepted.len(),
        all_orders.len(),
        by_status
    );
    runner.kill_9().await;
}
