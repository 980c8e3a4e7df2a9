//! One helper to spawn the runner and talk to it like a client would.

use std::time::Duration;

use orderly::Runner;
use orderly::config::Config;
use reqwest::{Response, StatusCode};
use serde_json::{Value, json};

pub const SECRET: &str = "test-secret-test-secret-test-secret-0123456789";

pub struct TestApp {
    pub address: String,
    pub client: reqwest::Client,
    pub runner: Runner,
    pub admin: String,
    _dir: tempfile::TempDir,
}

/// Queue timings scaled down so retries and dead-lettering take milliseconds.
pub fn fast_config(dir: &std::path::Path) -> Config {
    let mut config = Config::for_data_dir(dir);
    config.jwt_secret = Some(SECRET.into());
    config.queues.max_receives = 3;
    config.queues.retry_base = Duration::from_millis(20);
    config.queues.retry_max = Duration::from_millis(200);
    config.queues.idle_poll = Duration::from_millis(200);
    config.queues.visibility_timeout = Duration::from_secs(5);
    config
}

pub async fn spawn_app() -> TestApp {
    spawn_app_with(|_| {}).await
}

pub async fn spawn_app_with(configure: impl FnOnce(&mut Config)) -> TestApp {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut config = fast_config(dir.path());
    configure(&mut config);
    let runner = Runner::start(config).await.expect("runner starts");
    TestApp {
        address: format!("http://{}", runner.addr()),
        client: reqwest::Client::builder().timeout(Duration::from_secs(30)).build().unwrap(),
        runner,
        admin: token("admin", true),
        _dir: dir,
    }
}

pub fn token(sub: &str, admin: bool) -> String {
    shared::http::mint_hs256(SECRET.as_bytes(), sub, admin, Duration::from_secs(3600))
}

impl TestApp {
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.address)
    }

    pub async fn get(&self, path: &str, token: Option<&str>) -> Response {
        let mut request = self.client.get(self.url(path));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        request.send().await.expect("GET")
    }

    pub async fn post_json(&self, path: &str, token: Option<&str>, body: &Value) -> Response {
        let mut request = self.client.post(self.url(path)).json(body);
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        request.send().await.expect("POST")
    }

    pub async fn put_product(&self, sku: &str, price: &str, stock: u32) -> Response {
        self.client
            .put(self.url(&format!("/api/v1/products/{sku}")))
            .bearer_auth(&self.admin)
            .json(&json!({"name": format!("Product {sku}"), "price": price, "currency": "EUR", "stock": stock}))
            .send()
            .await
            .expect("PUT product")
    }

    pub async fn place_order(&self, token: &str, items: &[(&str, u32)]) -> Response {
        let items: Vec<Value> = items.iter().map(|(sku, q)| json!({"sku": sku, "quantity": q})).collect();
        self.post_json("/api/v1/orders", Some(token), &json!({"items": items})).await
    }

    /// Places an order that must be accepted; returns its id.
    pub async fn accepted_order(&self, token: &str, items: &[(&str, u32)]) -> String {
        let response = self.place_order(token, items).await;
        assert_eq!(response.status(), StatusCode::ACCEPTED);
        let body: Value = response.json().await.unwrap();
        body["id"].as_str().unwrap().to_owned()
    }

    pub async fn order(&self, token: &str, id: &str) -> Value {
        let response = self.get(&format!("/api/v1/orders/{id}"), Some(token)).await;
        assert_eq!(response.status(), StatusCode::OK, "GET order {id}");
        response.json().await.unwrap()
    }

    pub async fn product(&self, sku: &str) -> Value {
        self.get(&format!("/api/v1/products/{sku}"), None).await.json().await.unwrap()
    }

    pub async fn summary(&self) -> Value {
        let response = self.get("/api/v1/analytics/summary", Some(&self.admin)).await;
        assert_eq!(response.status(), StatusCode::OK);
        response.json().await.unwrap()
    }

    pub async fn health(&self) -> Value {
        self.get("/health", None).await.json().await.unwrap()
    }

    /// Polls until the order leaves `pending` (or is `want`), within the deadline.
    pub async fn settled(&self, token: &str, id: &str, want: &str) -> Value {
        eventually(&format!("order {id} to be {want}"), || async {
            let order = self.order(token, id).await;
            (order["status"] == want).then_some(order)
        })
        .await
    }

    /// Polls until every queue is empty and nothing is in flight.
    pub async fn drained(&self) {
        eventually("all queues to drain", || async {
            let health = self.health().await;
            let queues = health["queues"].as_object()?.clone();
            queues.values().all(|q| q["depth"] == 0).then_some(())
        })
        .await
    }
}

pub use crate::support::eventually;

/// Asserts a problem+json response with this status; returns the problem.
pub async fn problem(response: Response, status: StatusCode) -> Value {
    assert_eq!(response.status(), status);
    let content_type = response.headers().get("content-type").unwrap().to_str().unwrap().to_owned();
    assert_eq!(content_type, "application/problem+json");
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["status"], status.as_u16());
    for member in ["type", "title", "detail"] {
        assert!(body[member].is_string(), "problem lacks {member}: {body}");
    }
    body
}
