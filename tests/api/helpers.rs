//! One helper to spawn the runner and talk to it like a client would.
//!
//! The same tests also run against a deployed stack (the AWS host on an
//! emulator, see scripts/aws-e2e.sh): set `ORDERLY_TEST_BASE_URL` to its API
//! (and `ORDERLY_TEST_AWS_ENDPOINT` + `ORDERLY_TEST_STAGE` to its tables and
//! queues, which `spawn_app` empties before each test), and run them one at a
//! time (`--test-threads=1`). The stack must verify tokens with [`SECRET`].
//! Tests that need the runner in-process call [`spawn_local_app`], which
//! skips them there and says why.

use std::time::Duration;

use orderly::Runner;
use orderly::config::Config;
use reqwest::{Response, StatusCode};
use serde_json::{Value, json};

pub const SECRET: &str = "test-secret-test-secret-test-secret-0123456789";
pub const DEADLINE: Duration = Duration::from_secs(15);
/// A deployed stack's hops (stream, queues, cold starts) take longer.
pub const REMOTE_DEADLINE: Duration = Duration::from_secs(60);

pub struct TestApp {
    pub address: String,
    pub client: reqwest::Client,
    runner: Option<Runner>,
    pub admin: String,
    _dir: Option<tempfile::TempDir>,
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

/// The API under test: a fresh local runner, or the deployed stack, emptied.
pub async fn spawn_app() -> TestApp {
    match remote::Stack::from_env() {
        Some(stack) => stack.fresh().await,
        None => spawn_runner(|_| {}).await,
    }
}

/// A runner configured by the test; on a deployed stack the test is skipped
/// (its configuration is the stack's), with `reason`.
pub async fn spawn_local_app_with(reason: &str, configure: impl FnOnce(&mut Config)) -> Option<TestApp> {
    if remote::Stack::from_env().is_some() {
        eprintln!("skipped against a deployed stack: {reason}");
        return None;
    }
    Some(spawn_runner(configure).await)
}

/// A runner for a test that reaches into it (its store, its queues).
pub async fn spawn_local_app(reason: &str) -> Option<TestApp> {
    spawn_local_app_with(reason, |_| {}).await
}

async fn spawn_runner(configure: impl FnOnce(&mut Config)) -> TestApp {
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

pub fn token(sub: &str, admin: bool) -> String {
    shared::http::mint_hs256(SECRET.as_bytes(), sub, admin, Duration::from_secs(3600))
}

impl TestApp {
    /// The runner's store (local runs only: see [`spawn_local_app`]).
    pub fn store(&self) -> &shared::adapters::sqlite::SqliteStore {
        self.runner.as_ref().expect("a local runner (use spawn_local_app)").store()
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

pub async fn eventually<T, F, Fut>(what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = if remote::Stack::from_env().is_some() { REMOTE_DEADLINE } else { DEADLINE };
    let until = tokio::time::Instant::now() + deadline;
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(tokio::time::Instant::now() < until, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// The deployed stack under test, if the tests target one.
#[allow(dead_code)] // used by tests/aws_e2e.rs, which includes this file
pub fn remote_stack() -> Option<remote::Stack> {
    remote::Stack::from_env()
}

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

/// A deployed stack (the AWS host), reached through its HTTP API.
pub mod remote {
    use std::time::Duration;

    use aws_config::BehaviorVersion;
    use aws_sdk_dynamodb::types::{DeleteRequest, WriteRequest};

    use super::{TestApp, token};

    pub struct Stack {
        base_url: String,
        endpoint: Option<String>,
        stage: String,
    }

    impl Stack {
        /// SDK settings for the emulator the stack runs on.
        pub async fn sdk_config(&self) -> Option<aws_config::SdkConfig> {
            let endpoint = self.endpoint.as_ref()?;
            let config = aws_config::defaults(BehaviorVersion::latest())
                .endpoint_url(endpoint)
                .region(aws_config::Region::new("us-east-1"))
                .credentials_provider(aws_sdk_dynamodb::config::Credentials::new("test", "test", None, None, "e2e"))
                .load()
                .await;
            Some(config)
        }

        #[allow(dead_code)] // used by tests/aws_e2e.rs
        pub fn stage(&self) -> &str {
            &self.stage
        }

        pub fn from_env() -> Option<Self> {
            let base_url = std::env::var("ORDERLY_TEST_BASE_URL").ok().filter(|v| !v.is_empty())?;
            Some(Self {
                base_url: base_url.trim_end_matches('/').to_owned(),
                endpoint: std::env::var("ORDERLY_TEST_AWS_ENDPOINT").ok().filter(|v| !v.is_empty()),
                stage: std::env::var("ORDERLY_TEST_STAGE").unwrap_or_else(|_| "e2e".into()),
            })
        }

        /// Waits for the previous test's events to settle, then empties
        /// every table and queue, so each test starts from nothing.
        pub async fn fresh(&self) -> TestApp {
            let app = TestApp {
                address: self.base_url.clone(),
                client: reqwest::Client::builder().timeout(Duration::from_secs(30)).build().unwrap(),
                runner: None,
                admin: token("admin", true),
                _dir: None,
            };
            let Some(config) = self.sdk_config().await else {
                eprintln!("ORDERLY_TEST_AWS_ENDPOINT unset: the stack is not emptied between tests");
                return app;
            };
            let dynamo = aws_sdk_dynamodb::Client::new(&config);
            let sqs = aws_sdk_sqs::Client::new(&config);
            let tables: Vec<String> = ["orders", "inventory", "notifications", "analytics"]
                .iter()
                .map(|t| format!("orderly-{}-{t}", self.stage))
                .collect();
            // Settled: no queue holds anything and no outbox item waits.
            let until = tokio::time::Instant::now() + Duration::from_secs(30);
            while tokio::time::Instant::now() < until {
                let health: serde_json::Value = match app.get("/health", None).await.json().await {
                    Ok(health) => health,
                    Err(_) => break,
                };
                let queues_empty = health["queues"].as_object().is_some_and(|q| q.values().all(|q| q["depth"] == 0));
                let mut outbox_empty = true;
                for table in &tables[..2] {
                    let scan = dynamo
                        .scan()
                        .table_name(table)
                        .filter_expression("begins_with(pk, :outbox)")
                        .expression_attribute_values(
                            ":outbox",
                            aws_sdk_dynamodb::types::AttributeValue::S("OUTBOX#".into()),
                        )
                        .send()
                        .await
                        .expect("scan outbox");
                    outbox_empty &= scan.count == 0;
                }
                if queues_empty && outbox_empty {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            for table in &tables {
                let mut start = None;
                loop {
                    let page = dynamo
                        .scan()
                        .table_name(table)
                        .projection_expression("pk, sk")
                        .set_exclusive_start_key(start)
                        .send()
                        .await
                        .expect("scan table");
                    for chunk in page.items().chunks(25) {
                        let deletes: Vec<WriteRequest> = chunk
                            .iter()
                            .map(|key| {
                                let delete = DeleteRequest::builder().set_key(Some(key.clone())).build().unwrap();
                                WriteRequest::builder().delete_request(delete).build()
                            })
                            .collect();
                        dynamo.batch_write_item().request_items(table, deletes).send().await.expect("delete items");
                    }
                    start = page.last_evaluated_key;
                    if start.is_none() {
                        break;
                    }
                }
            }
            for queue in ["order-intake", "inventory", "notification", "analytics"] {
                for name in
                    [format!("orderly-{}-{queue}.fifo", self.stage), format!("orderly-{}-{queue}-dlq.fifo", self.stage)]
                {
                    let url = sqs.get_queue_url().queue_name(&name).send().await.expect("queue URL").queue_url.unwrap();
                    sqs.purge_queue().queue_url(url).send().await.expect("purge");
                }
            }
            app
        }
    }
}
