//! One helper to spawn the runner and talk to it like a client would.
//!
//! The same tests also run against another host's stack: set
//! `ORDERLY_TEST_BASE_URL` to its base URL and `ORDERLY_TEST_JWT_SECRET` to
//! the HS256 secret it verifies tokens with (and, to start each test from an
//! empty stack, `ORDERLY_TEST_RESET_URL`, a URL that empties it when POSTed:
//! the Spin harness serves one; or, for the AWS host's stack on an
//! emulator, `ORDERLY_TEST_AWS_ENDPOINT` + `ORDERLY_TEST_STAGE`, whose tables
//! and queues the tests empty themselves), and run them one at a time
//! (`--test-threads=1`). Tests that need the runner in-process (its store, or
//! a configuration of their own) call [`spawn_local_app`], which skips them
//! there and says why.

use std::io::Write;
use std::time::Duration;

use orderly::Runner;
use orderly_core::settings::Settings;
use reqwest::{Response, StatusCode};
use serde_json::{Value, json};

pub const SECRET: &str = "test-secret-test-secret-test-secret-0123456789";

/// The browser origin every stack under test allows (`ORDERLY_CORS_ORIGINS`
/// in scripts/spin-test.sh and scripts/aws-e2e.sh).
pub const CORS_ORIGIN: &str = "https://shop.example";

pub struct TestApp {
    pub address: String,
    pub client: reqwest::Client,
    runner: Option<Runner>,
    pub admin: String,
    _dir: Option<tempfile::TempDir>,
}

/// The base URL of another host's stack under test, if any.
pub fn remote_base_url() -> Option<String> {
    std::env::var("ORDERLY_TEST_BASE_URL").ok().filter(|v| !v.is_empty()).map(|v| v.trim_end_matches('/').to_owned())
}

/// The HS256 secret the API under test verifies tokens with.
pub fn secret() -> String {
    match remote_base_url() {
        Some(_) => std::env::var("ORDERLY_TEST_JWT_SECRET").unwrap_or_else(|_| SECRET.to_owned()),
        None => SECRET.to_owned(),
    }
}

/// Queue timings scaled down so retries and dead-lettering take milliseconds.
pub fn fast_config(dir: &std::path::Path) -> Settings {
    let mut config = orderly::config::for_data_dir(dir);
    config.jwt_secret = Some(SECRET.into());
    config.edge.cors_origins = vec![CORS_ORIGIN.into()];
    config.queues.max_receives = 3;
    config.queues.retry_base = Duration::from_millis(20);
    config.queues.retry_max = Duration::from_millis(200);
    config.queues.idle_poll = Duration::from_millis(200);
    config.queues.visibility_timeout = Duration::from_secs(5);
    config
}

/// The API under test: a fresh runner, or the remote stack, emptied.
pub async fn spawn_app() -> TestApp {
    if let Some(stack) = remote::Stack::from_env() {
        return stack.fresh().await;
    }
    let Some(address) = remote_base_url() else {
        return spawn_runner(|_| {}).await;
    };
    let client = reqwest::Client::builder().timeout(Duration::from_secs(60)).build().unwrap();
    if let Ok(reset) = std::env::var("ORDERLY_TEST_RESET_URL") {
        // The reset first waits (a minute at most) for the previous test to settle.
        let response = client.post(&reset).timeout(Duration::from_secs(180)).send().await.expect("reset the stack");
        assert!(response.status().is_success(), "reset the stack: {}", response.text().await.unwrap_or_default());
    }
    TestApp { address, client, runner: None, admin: token("admin", true), _dir: None }
}

/// A runner for a test that reaches into it (its store, its sockets) or
/// configures it; against a remote stack the test is skipped, saying why.
pub async fn spawn_local_app_with(reason: &str, configure: impl FnOnce(&mut Settings)) -> Option<TestApp> {
    if remote_base_url().is_some() {
        // Past the test harness's capture, so that a passing run says it too.
        let _ = writeln!(std::io::stderr(), "skipped against a remote stack: {reason}");
        return None;
    }
    Some(spawn_runner(configure).await)
}

pub async fn spawn_local_app(reason: &str) -> Option<TestApp> {
    spawn_local_app_with(reason, |_| {}).await
}

async fn spawn_runner(configure: impl FnOnce(&mut Settings)) -> TestApp {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut config = fast_config(dir.path());
    configure(&mut config);
    let runner = Runner::start(config).await.expect("runner starts");
    TestApp {
        address: format!("http://{}", runner.addr()),
        client: reqwest::Client::builder().timeout(Duration::from_secs(30)).build().unwrap(),
        runner: Some(runner),
        admin: token("admin", true),
        _dir: Some(dir),
    }
}

/// The card payment gateway the API under test talks to (`orderly gateway`):
/// in process beside a runner configured for it, or the remote stack's
/// (`ORDERLY_TEST_GATEWAY_URL`, reset for each test).
pub struct Gateway {
    pub url: String,
    client: reqwest::Client,
    _local: Option<orderly::gateway::TestGateway>,
}

impl Gateway {
    /// `approve`, `decline`, `fail`, `hang` or `commit-then-hang`.
    pub async fn set_mode(&self, mode: &str) {
        let response =
            self.client.put(format!("{}/_gateway/mode", self.url)).json(&json!({"mode": mode})).send().await.unwrap();
        assert!(response.status().is_success(), "set the gateway's mode");
    }

    /// Every authorization the gateway holds, by order id.
    pub async fn authorizations(&self) -> Value {
        let book: Value = self
            .client
            .get(format!("{}/_gateway/authorizations", self.url))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let by_order = book["authorizations"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| (a["reference"].as_str().unwrap().to_owned(), a.clone()));
        Value::Object(by_order.collect())
    }

    /// The authorization of `order_id`, if the gateway has one.
    pub async fn held(&self, order_id: &str) -> Option<Value> {
        self.authorizations().await.get(order_id).cloned()
    }
}

/// Payment tests: an app whose orders are paid by card through a gateway
/// the test controls. A runner gets tight gateway settings (a 300 ms
/// timeout, a breaker opening after 3 failures for 1 s) unless `configure`
/// says otherwise; a remote stack has them from its deployment
/// (scripts/spin-test.sh, scripts/aws-e2e.sh), and without a gateway the
/// test is skipped, saying why.
pub async fn spawn_app_with_gateway(configure: impl FnOnce(&mut Settings)) -> Option<(TestApp, Gateway)> {
    let client = reqwest::Client::builder().timeout(Duration::from_secs(10)).build().unwrap();
    if remote_base_url().is_some() {
        let Some(url) = std::env::var("ORDERLY_TEST_GATEWAY_URL").ok().filter(|v| !v.is_empty()) else {
            let _ =
                writeln!(std::io::stderr(), "skipped: the remote stack has no test gateway (ORDERLY_TEST_GATEWAY_URL)");
            return None;
        };
        let app = spawn_app().await;
        let reset = client.post(format!("{url}/_gateway/reset")).send().await.expect("reset the gateway");
        assert!(reset.status().is_success());
        return Some((app, Gateway { url, client, _local: None }));
    }
    let local = orderly::gateway::TestGateway::start().await.expect("a test gateway");
    let url = local.url.clone();
    let app = spawn_runner(|config| {
        config.payment.url = Some(url.clone());
        config.payment.timeout = Duration::from_millis(300);
        config.payment.breaker_threshold = 3;
        config.payment.breaker_cool_down = Duration::from_secs(1);
        configure(config);
    })
    .await;
    Some((app, Gateway { url, client, _local: Some(local) }))
}

pub fn token(sub: &str, admin: bool) -> String {
    orderly_core::http::mint_hs256(secret().as_bytes(), sub, admin, Duration::from_secs(3600))
}

impl TestApp {
    /// The in-process runner, if the API under test is one.
    pub fn runner_if_local(&self) -> Option<&Runner> {
        self.runner.as_ref()
    }

    /// The in-process runner (see [`spawn_local_app`]).
    pub fn runner(&self) -> &Runner {
        self.runner.as_ref().expect("an in-process runner (spawn_local_app)")
    }

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

    /// POSTs an empty JSON object (the fulfilment routes take no body).
    pub async fn post_empty(&self, path: &str, token: Option<&str>) -> Response {
        self.post_json(path, token, &json!({})).await
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
            // In flight counts too: a message being handled has not committed yet.
            queues.values().all(|q| q["depth"] == 0 && q["in_flight"] == 0).then_some(())
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

/// The deployed stack under test, if the tests target one.
#[allow(dead_code)] // used by tests/aws_e2e.rs, which includes this file
pub fn remote_stack() -> Option<remote::Stack> {
    remote::Stack::from_env()
}

/// A deployed stack (the AWS host on an emulator), reached through its HTTP API.
pub mod remote {
    use std::time::Duration;

    use aws_config::BehaviorVersion;

    use super::{TestApp, token};

    pub struct Stack {
        base_url: String,
        endpoint: String,
        stage: String,
    }

    impl Stack {
        /// SDK settings for the emulator the stack runs on.
        pub async fn sdk_config(&self) -> aws_config::SdkConfig {
            aws_config::defaults(BehaviorVersion::latest())
                .endpoint_url(&self.endpoint)
                .region(aws_config::Region::new("us-east-1"))
                .credentials_provider(aws_sdk_dynamodb::config::Credentials::new("test", "test", None, None, "e2e"))
                .load()
                .await
        }

        #[allow(dead_code)] // used by tests/aws_e2e.rs
        pub fn stage(&self) -> &str {
            &self.stage
        }

        /// The emulator's endpoint (its Lambda API too).
        #[allow(dead_code)] // used by tests/aws_e2e.rs
        pub fn endpoint(&self) -> &str {
            &self.endpoint
        }

        pub fn from_env() -> Option<Self> {
            Some(Self {
                base_url: super::remote_base_url()?,
                endpoint: std::env::var("ORDERLY_TEST_AWS_ENDPOINT").ok().filter(|v| !v.is_empty())?,
                stage: std::env::var("ORDERLY_TEST_STAGE").unwrap_or_else(|_| "e2e".into()),
            })
        }

        /// Waits for the previous test's events to settle, then empties
        /// every table and queue, so each test starts from nothing.
        pub async fn fresh(&self) -> TestApp {
            let config = self.sdk_config().await;
            let host = crate::aws_stack::deployed(&config, &self.stage).await.expect("the deployed stack's queues");
            crate::aws_stack::wipe(&host).await.expect("empty the stack");
            TestApp {
                address: self.base_url.clone(),
                client: reqwest::Client::builder().timeout(Duration::from_secs(30)).build().unwrap(),
                runner: None,
                admin: token("admin", true),
                _dir: None,
            }
        }
    }
}
