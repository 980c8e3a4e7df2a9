//! The Spin stack's test harness (`cargo run --example spin-harness`): what
//! `spin up` would do around the HTTP components that CI runs under
//! `wasmtime serve` and jco.
//!
//! - `setup`: creates the tables and queues (on the emulator) and prints the
//!   `ORDERLY_*` settings the components and this harness read, as
//!   `export KEY=VALUE` lines.
//! - `serve --listen ADDR --manifest spin.toml --component NAME=ADDR ...`:
//!   - a front on ADDR that routes each request to the HTTP component that
//!     `spin.toml`'s `[[trigger.http]]` routes give it, the way Spin's router
//!     does (exact routes before wildcards, the longest wildcard first), and
//!     sets `spin-client-addr` as Spin does;
//!   - one queue loop per function with the delete-or-leave semantics of
//!     spin-trigger-sqs, calling the same `spin::handle_message` as the
//!     function's queue component — natively, since the SQS trigger only
//!     exists in Spin;
//!   - the outbox relays of order-intake and inventory (`Function::relay`,
//!     what their cron components run), every 100 ms instead of every second;
//!   - `POST /__harness/reset`: waits for the stack to settle, then empties
//!     every table and queue, so each API test starts from nothing (tests
//!     call it through `ORDERLY_TEST_RESET_URL`).
//!   - with `--no-triggers`, the front alone (the benchmark's setting).
//! - `serve ... --component NAME=ADDR... --lambda FUNCTION=URL...`: the same
//!   front, here in front of `cargo lambda watch` (scripts/dev.sh lambda;
//!   a component's ADDR is then `host:port/lambda-url/<function>-lambda`),
//!   and Lambda's triggers delivered through its invoke API at URL instead
//!   of natively: each queue loop sends what it receives as an `aws:sqs`
//!   event and deletes what the answer's `batchItemFailures` does not name
//!   (an event source mapping with ReportBatchItemFailures); the outbox
//!   relays are the functions' `sweep-outbox` event every 250 ms (their
//!   scheduled trigger: the same relay the DynamoDB Stream trigger feeds,
//!   since the emulator's streams only reach Lambdas it runs itself).
//! - `serve --listen ADDR --spin ADDR`: the same front and reset in front of
//!   a real `spin up` (scripts/spin-up-test.sh), forwarding every request to
//!   Spin's own router; no queue loops or relays, since Spin's trigger
//!   plugins run the queue and cron components.
//! - `token --sub SUB [--admin]`: an hour's token signed with
//!   `ORDERLY_JWT_SECRET`, as `orderly token` mints it (scripts/dev.sh's
//!   smoke order, without building the runner too).
//! - `bench --hello URL --inventory URL --intake URL --requests N --json FILE`:
//!   per-request latency of `GET /api/v1/products/{sku}` and `POST
//!   /api/v1/orders` against the components, side by side with a hello-world
//!   component under the same host, and the same requests through the same
//!   router natively in this process against the same emulator (the
//!   emulator's own share), sequential, interleaved round by round. With
//!   `--baseline URL`, the same GET against another build of the inventory
//!   component (an older one, say) in the same rounds, so that old and new
//!   are compared within one run.

#[path = "../support/aws_stack.rs"]
mod aws_stack;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use aws_config::BehaviorVersion;
use aws_sdk_sqs::types::QueueAttributeName;
use axum::body::Body;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use orderly_adapters::aws_backend::AwsBackend;
use orderly_adapters::dynamo::{TableKind, create_table, enable_ttl};
use orderly_adapters::log_provider::LogProvider;
use orderly_adapters::webhook::WebhookProvider;
use orderly_core::composition::{Backend, Function};
use orderly_core::events::routing::Consumer;
use orderly_core::ports::{MessageQueue, NotificationProvider};
use orderly_core::settings::{ConfigSource, Environment, Settings, queue_key};
use orderly_hosts::spin::{QueueAction, handle_message};

/// How long a received message stays invisible (the queues' own default is
/// the same): a left message comes back this much later.
const VISIBILITY: Duration = Duration::from_secs(2);

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("setup") => setup(&args[1..]).await,
        Some("serve") => serve(&args[1..]).await,
        Some("bench") => bench(&args[1..]).await,
        Some("token") => token(&args[1..]),
        _ => bail!(
            "usage: spin-harness setup --stage NAME --max-receives N | serve --listen ADDR --manifest FILE (--component NAME=ADDR... [--lambda FUNCTION=URL...] | --spin ADDR) | bench ... | token --sub SUB [--admin]"
        ),
    }
}

fn flag<'a>(args: &'a [String], name: &str) -> Option<&'a str> {
    args.iter().position(|a| a == name).and_then(|i| args.get(i + 1)).map(String::as_str)
}

async fn sdk_config() -> anyhow::Result<aws_config::SdkConfig> {
    let source = Environment;
    let endpoint = source.get("aws_endpoint_url").context("ORDERLY_AWS_ENDPOINT_URL is not set")?;
    let credentials = aws_sdk_dynamodb::config::Credentials::new(
        source.get("aws_access_key_id").unwrap_or_else(|| "test".into()),
        source.get("aws_secret_access_key").unwrap_or_else(|| "test".into()),
        None,
        None,
        "spin-harness",
    );
    Ok(aws_config::defaults(BehaviorVersion::latest())
        .endpoint_url(endpoint)
        .region(aws_config::Region::new(source.get("aws_region").unwrap_or_else(|| "us-east-1".into())))
        .credentials_provider(credentials)
        .load()
        .await)
}

fn token(args: &[String]) -> anyhow::Result<()> {
    let sub = flag(args, "--sub").context("--sub SUB")?;
    let secret = Environment.get("jwt_secret").context("ORDERLY_JWT_SECRET is not set")?;
    let admin = args.iter().any(|a| a == "--admin");
    println!("{}", orderly_core::http::mint_hs256(secret.as_bytes(), sub, admin, Duration::from_secs(3600)));
    Ok(())
}

/// Tables and FIFO queues (+ DLQs redriven after `--max-receives`) named
/// `orderly-<stage>-...`; prints their settings.
async fn setup(args: &[String]) -> anyhow::Result<()> {
    let stage = flag(args, "--stage").unwrap_or("spin");
    let max_receives: u32 = flag(args, "--max-receives").unwrap_or("3").parse()?;
    let config = sdk_config().await?;
    let dynamo = aws_sdk_dynamodb::Client::new(&config);
    let sqs = aws_sdk_sqs::Client::new(&config);
    let mut settings = BTreeMap::new();
    for (kind, name) in [
        (TableKind::Orders, "orders"),
        (TableKind::Inventory, "inventory"),
        (TableKind::Notifications, "notifications"),
        (TableKind::Analytics, "analytics"),
    ] {
        let table = format!("orderly-{stage}-{name}");
        let exists = dynamo.describe_table().table_name(&table).send().await.is_ok();
        if !exists {
            create_table(&dynamo, &table, kind).await?;
            enable_ttl(&dynamo, &table).await?;
        }
        settings.insert(format!("table_{name}"), table);
    }
    for consumer in Consumer::ALL {
        let create = |name: String, redrive: Option<String>| {
            let mut request = sqs
                .create_queue()
                .queue_name(name)
                .attributes(QueueAttributeName::FifoQueue, "true")
                .attributes(QueueAttributeName::VisibilityTimeout, VISIBILITY.as_secs().to_string());
            if let Some(redrive) = redrive {
                request = request.attributes(QueueAttributeName::RedrivePolicy, redrive);
            }
            request.send()
        };
        let dlq = create(format!("orderly-{stage}-{}.fifo", consumer.dead_letter_queue()), None).await?;
        let dlq_url = dlq.queue_url.context("DLQ URL")?;
        let arn = sqs
            .get_queue_attributes()
            .queue_url(&dlq_url)
            .attribute_names(QueueAttributeName::QueueArn)
            .send()
            .await?
            .attributes
            .and_then(|mut a| a.remove(&QueueAttributeName::QueueArn))
            .context("DLQ ARN")?;
        let redrive = serde_json::json!({"deadLetterTargetArn": arn, "maxReceiveCount": max_receives}).to_string();
        let queue = create(format!("orderly-{stage}-{}.fifo", consumer.queue()), Some(redrive)).await?;
        settings.insert(queue_key("queue", consumer), queue.queue_url.context("queue URL")?);
        settings.insert(queue_key("dlq", consumer), dlq_url);
    }
    settings.insert("max_receives".into(), max_receives.to_string());
    for (key, value) in settings {
        println!("export ORDERLY_{}={value}", key.to_ascii_uppercase());
    }
    Ok(())
}

/// One `[[trigger.http]]` of the manifest.
#[derive(Debug, Clone)]
struct Route {
    /// The path, without a trailing `/...`.
    path: String,
    wildcard: bool,
    component: String,
}

fn routes(manifest: &str) -> anyhow::Result<Vec<Route>> {
    let manifest: toml::Value = toml::from_str(manifest).context("parsing the manifest")?;
    let triggers = manifest.get("trigger").and_then(|t| t.get("http")).and_then(|h| h.as_array());
    let mut routes = Vec::new();
    for trigger in triggers.context("no [[trigger.http]] in the manifest")? {
        let (Some(route), Some(component)) =
            (trigger.get("route").and_then(|r| r.as_str()), trigger.get("component").and_then(|c| c.as_str()))
        else {
            bail!("a [[trigger.http]] without route or component: {trigger}");
        };
        let (path, wildcard) = match route.strip_suffix("/...") {
            Some(prefix) => (prefix.to_owned(), true),
            None => (route.to_owned(), false),
        };
        routes.push(Route { path, wildcard, component: component.to_owned() });
    }
    Ok(routes)
}

/// Spin's choice: an exact route, else the longest wildcard that matches.
fn route_for<'a>(routes: &'a [Route], path: &str) -> Option<&'a Route> {
    routes.iter().find(|r| !r.wildcard && r.path == path).or_else(|| {
        routes
            .iter()
            .filter(|r| r.wildcard && (path == r.path || path.starts_with(&format!("{}/", r.path))))
            .max_by_key(|r| r.path.len())
    })
}

struct Front {
    routes: Vec<Route>,
    components: BTreeMap<String, String>,
    client: reqwest::Client,
    stack: Arc<Stack>,
}

/// What runs beside the HTTP components: queue loops and relays.
struct Stack {
    host: Arc<AwsBackend>,
    components: Vec<Function>,
}

async fn serve(args: &[String]) -> anyhow::Result<()> {
    let listen: SocketAddr = flag(args, "--listen").context("--listen ADDR")?.parse()?;
    let manifest = std::fs::read_to_string(flag(args, "--manifest").unwrap_or("spin.toml"))?;
    let routes = routes(&manifest)?;
    let spin = flag(args, "--spin");
    let mut components = BTreeMap::new();
    if let Some(spin) = spin {
        // Spin routes by itself: every component is Spin's listener.
        for route in &routes {
            components.insert(route.component.clone(), format!("http://{spin}"));
        }
    }
    for pair in args.windows(2).filter(|w| w[0] == "--component").map(|w| &w[1]) {
        let (name, addr) = pair.split_once('=').context("--component NAME=ADDR")?;
        components.insert(name.to_owned(), format!("http://{addr}"));
    }
    for route in &routes {
        if !components.contains_key(&route.component) {
            bail!("the manifest routes {} to {}, which was not given (--component)", route.path, route.component);
        }
    }
    let mut lambdas = BTreeMap::new();
    for pair in args.windows(2).filter(|w| w[0] == "--lambda").map(|w| &w[1]) {
        let (name, url) = pair.split_once('=').context("--lambda FUNCTION=URL")?;
        lambdas.insert(name.to_owned(), url.trim_end_matches('/').to_owned());
    }
    let stack = Arc::new(stack().await?);
    // `--no-triggers`: the front alone (the benchmark: nothing else polls the emulator).
    if spin.is_none() && !args.iter().any(|a| a == "--no-triggers") {
        for component in &stack.components {
            let lambda = lambdas.get(component.name()).map(|url| Lambda::new(url, component.name()));
            if component.queue().is_some() {
                match lambda.clone() {
                    Some(lambda) => tokio::spawn(consume_by_lambda(stack.clone(), component.name(), lambda)),
                    None => tokio::spawn(consume(stack.clone(), component.name())),
                };
            }
            if let Some(lambda) = lambda.filter(|_| component.outbox_store().is_some()) {
                tokio::spawn(sweep_by_lambda(lambda));
            }
        }
        if lambdas.is_empty() {
            tokio::spawn(relay(stack.clone()));
        }
    }
    // A connection left idle past the component server's keep-alive (jco's
    // Node server closes it after 5 s) can be reused just as it closes, and
    // the forwarded request fails before reaching the component (a 502 seen
    // once in a burst under jco): drop idle connections well before that.
    let client = reqwest::Client::builder().pool_idle_timeout(Duration::from_secs(2)).build()?;
    let front = Arc::new(Front { routes, components, client, stack });
    let app =
        axum::Router::new().route("/__harness/reset", axum::routing::post(reset)).fallback(forward).with_state(front);
    let listener = tokio::net::TcpListener::bind(listen).await?;
    eprintln!("spin-harness: front on http://{}", listener.local_addr()?);
    axum::serve(listener, app.into_make_service_with_connect_info::<SocketAddr>()).await?;
    Ok(())
}

async fn stack() -> anyhow::Result<Stack> {
    let settings = Settings::load(&Environment)?;
    let config = sdk_config().await?;
    let provider: Arc<dyn NotificationProvider> = match &settings.notify_url {
        Some(url) => Arc::new(WebhookProvider::new(url, settings.notify_timeout, true)?),
        None => Arc::new(LogProvider),
    };
    let gateway = orderly_adapters::payment_gateway::from_settings(&settings).map_err(anyhow::Error::msg)?;
    let host = Arc::new(
        AwsBackend::new(settings, aws_sdk_dynamodb::Client::new(&config), aws_sdk_sqs::Client::new(&config), provider)
            .with_payment_gateway(gateway)
            .with_timer(Arc::new(orderly_adapters::TokioTimer)),
    );
    let backend: Arc<dyn Backend> = host.clone();
    let components = vec![
        order_intake::front_door(&backend),
        inventory::wire(&backend),
        notification::wire(&backend),
        analytics::wire(&backend),
    ];
    Ok(Stack { host, components })
}

/// Up to 10 messages of `queue`; `None` (after a pause) when there are none
/// or the receive failed.
async fn next_batch(queues: &dyn MessageQueue, queue: &str) -> Option<Vec<orderly_core::ports::ReceivedMessage>> {
    match queues.receive(queue, 10, VISIBILITY).await {
        Ok(messages) if !messages.is_empty() => Some(messages),
        Ok(_) => {
            tokio::time::sleep(Duration::from_millis(50)).await;
            None
        }
        Err(error) => {
            eprintln!("spin-harness: receive from {queue}: {error}");
            tokio::time::sleep(Duration::from_millis(500)).await;
            None
        }
    }
}

/// spin-trigger-sqs, natively: receive, call the component for each
/// message, delete what it answers `Delete`, leave the rest to come back
/// after the visibility timeout (and to the DLQ after `maxReceiveCount`).
async fn consume(stack: Arc<Stack>, name: &'static str) {
    let component = stack.components.iter().find(|c| c.name() == name).expect("a component of the stack");
    let queue = component.queue().expect("a consumer");
    let queues = stack.host.queues();
    loop {
        let Some(messages) = next_batch(queues.as_ref(), queue).await else { continue };
        let handled = futures::future::join_all(messages.iter().map(|received| async {
            (handle_message(component, stack.host.settings(), received).await, received.receipt.clone())
        }))
        .await;
        let delete: Vec<String> =
            handled.into_iter().filter(|(action, _)| *action == QueueAction::Delete).map(|(_, r)| r).collect();
        if let Err(error) = queues.ack(queue, &delete).await {
            eprintln!("spin-harness: delete from {queue}: {error}");
        }
    }
}

/// One function behind a Lambda invoke API (`cargo lambda watch`).
#[derive(Clone)]
struct Lambda {
    invoke: String,
    client: reqwest::Client,
}

impl Lambda {
    fn new(url: &str, function: &str) -> Self {
        Self {
            invoke: format!("{url}/2015-03-31/functions/{function}-lambda/invocations"),
            client: reqwest::Client::new(),
        }
    }

    /// Invokes the function with `event`; its answer, or why there is none.
    async fn invoke(&self, event: &serde_json::Value) -> anyhow::Result<serde_json::Value> {
        let answer = self.client.post(&self.invoke).json(event).send().await?;
        let status = answer.status();
        let body = answer.text().await?;
        if !status.is_success() {
            bail!("{} answered {status}: {body}", self.invoke);
        }
        Ok(serde_json::from_str(&body).unwrap_or(serde_json::Value::Null))
    }
}

/// An SQS event source mapping with ReportBatchItemFailures: receive, invoke
/// with the batch, delete what the function did not report; a failed
/// invocation leaves the whole batch to come back after the visibility timeout.
async fn consume_by_lambda(stack: Arc<Stack>, name: &'static str, lambda: Lambda) {
    let component = stack.components.iter().find(|c| c.name() == name).expect("a component of the stack");
    let queue = component.queue().expect("a consumer");
    let queues = stack.host.queues();
    let arn = format!("arn:aws:sqs:us-east-1:000000000000:{queue}");
    loop {
        let Some(messages) = next_batch(queues.as_ref(), queue).await else { continue };
        let records: Vec<serde_json::Value> = messages
            .iter()
            .map(|m| {
                let mut attributes = serde_json::json!({
                    "ApproximateReceiveCount": m.receive_count.to_string(),
                    "SentTimestamp": m.sent_at.timestamp_millis().to_string(),
                });
                if let Some(group) = &m.group {
                    attributes["MessageGroupId"] = group.clone().into();
                }
                serde_json::json!({
                    "messageId": m.message_id, "receiptHandle": m.receipt, "body": m.body,
                    "attributes": attributes, "messageAttributes": {},
                    "eventSource": "aws:sqs", "eventSourceARN": arn, "awsRegion": "us-east-1",
                })
            })
            .collect();
        let answer = match lambda.invoke(&serde_json::json!({ "Records": records })).await {
            Ok(answer) => answer,
            Err(error) => {
                eprintln!("spin-harness: {name}'s batch of {} left on {queue}: {error:#}", messages.len());
                continue;
            }
        };
        let failed: Vec<&str> = answer
            .get("batchItemFailures")
            .and_then(|f| f.as_array())
            .map(|f| f.iter().filter_map(|item| item.get("itemIdentifier").and_then(|i| i.as_str())).collect())
            .unwrap_or_default();
        let delete: Vec<String> =
            messages.iter().filter(|m| !failed.contains(&m.message_id.as_str())).map(|m| m.receipt.clone()).collect();
        if let Err(error) = queues.ack(queue, &delete).await {
            eprintln!("spin-harness: delete from {queue}: {error}");
        }
    }
}

/// The function's scheduled outbox sweep, every 250 ms.
async fn sweep_by_lambda(lambda: Lambda) {
    loop {
        if let Err(error) = lambda.invoke(&serde_json::json!({ "orderly": "sweep-outbox" })).await {
            eprintln!("spin-harness: sweep: {error:#}");
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// The cron components' work, every 100 ms.
async fn relay(stack: Arc<Stack>) {
    loop {
        for component in &stack.components {
            if let Err(error) = component.relay(stack.host.publisher(), Duration::from_secs(5)).await {
                eprintln!("spin-harness: relay of {}: {error}", component.name());
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn forward(
    State(front): State<Arc<Front>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    request: Request,
) -> Response {
    let path = request.uri().path().to_owned();
    let Some(route) = route_for(&front.routes, &path) else {
        return (StatusCode::NOT_FOUND, "no route").into_response();
    };
    let target =
        format!("{}{}", front.components[&route.component], request.uri().path_and_query().map_or("/", |p| p.as_str()));
    let (parts, body) = request.into_parts();
    let Ok(body) = axum::body::to_bytes(body, 16 * 1024 * 1024).await else {
        return (StatusCode::BAD_REQUEST, "unreadable body").into_response();
    };
    let mut headers = parts.headers;
    for hop in ["host", "connection", "content-length", "transfer-encoding", "spin-client-addr"] {
        headers.remove(hop);
    }
    headers.insert(
        HeaderName::from_static("spin-client-addr"),
        HeaderValue::from_str(&peer.to_string()).expect("an address is a header value"),
    );
    let sent = front.client.request(parts.method, target).headers(headers).body(body).send().await;
    let upstream = match sent {
        Ok(upstream) => upstream,
        Err(error) => return (StatusCode::BAD_GATEWAY, format!("{}: {error}", route.component)).into_response(),
    };
    let mut response = Response::builder().status(upstream.status());
    for (name, value) in upstream.headers() {
        if !matches!(name.as_str(), "connection" | "transfer-encoding" | "content-length") {
            response = response.header(name, value);
        }
    }
    let bytes = upstream.bytes().await.unwrap_or_default();
    response.body(Body::from(bytes)).unwrap_or_else(|_| StatusCode::BAD_GATEWAY.into_response())
}

/// Settle, then empty every table and queue.
async fn reset(State(front): State<Arc<Front>>) -> Response {
    match aws_stack::wipe(&front.stack.host).await {
        Ok(()) => StatusCode::NO_CONTENT.into_response(),
        Err(error) => (StatusCode::INTERNAL_SERVER_ERROR, format!("{error:#}")).into_response(),
    }
}

/// Latency samples of one kind of request, in milliseconds.
#[derive(Default)]
struct Samples(Vec<f64>);

impl Samples {
    fn add(&mut self, started: std::time::Instant) {
        self.0.push(started.elapsed().as_secs_f64() * 1000.0);
    }

    fn summary(&self) -> serde_json::Value {
        let mut sorted = self.0.clone();
        sorted.sort_by(f64::total_cmp);
        let at = |q: f64| sorted[((sorted.len() as f64 - 1.0) * q).round() as usize];
        let mean = sorted.iter().sum::<f64>() / sorted.len() as f64;
        serde_json::json!({"n": sorted.len(), "mean_ms": mean, "p50_ms": at(0.5), "p90_ms": at(0.9), "p99_ms": at(0.99)})
    }
}

async fn bench(args: &[String]) -> anyhow::Result<()> {
    use tower::ServiceExt;

    let hello = flag(args, "--hello").context("--hello URL")?.to_owned();
    let inventory = flag(args, "--inventory").context("--inventory URL (the inventory component)")?.to_owned();
    let intake = flag(args, "--intake").context("--intake URL (the order-intake component)")?.to_owned();
    let requests: usize = flag(args, "--requests").unwrap_or("300").parse()?;
    let baseline = flag(args, "--baseline").map(str::to_owned);
    let stack = stack().await?;
    let secret = stack.host.settings().jwt_secret.clone().context("ORDERLY_JWT_SECRET")?;
    let admin = orderly_core::http::mint_hs256(secret.as_bytes(), "bench-admin", true, Duration::from_secs(3600));
    let customer =
        orderly_core::http::mint_hs256(secret.as_bytes(), "bench-customer", false, Duration::from_secs(3600));
    let client = reqwest::Client::new();
    let product = serde_json::json!({"name": "Bench tea", "price": "1.00", "currency": "EUR", "stock": 1_000_000});
    let put =
        client.put(format!("{inventory}/api/v1/products/BENCH")).bearer_auth(&admin).json(&product).send().await?;
    if !put.status().is_success() {
        bail!("creating the product: {}", put.status());
    }
    let order = serde_json::json!({"items": [{"sku": "BENCH", "quantity": 1}]}).to_string();
    // The same routers, natively, in this process: what the emulator costs.
    let authenticator = orderly_core::composition::authenticator(
        stack.host.settings(),
        orderly_core::composition::inline_keys(stack.host.settings()).unwrap_or_default(),
    )
    .map_err(anyhow::Error::msg)?;
    let backend: Arc<dyn Backend> = stack.host.clone();
    let native = |name: &str| {
        let component = match name {
            "inventory" => inventory::wire(&backend),
            _ => order_intake::front_door(&backend),
        };
        component.router(backend.as_ref(), authenticator.clone()).map_err(anyhow::Error::msg)
    };
    let (native_inventory, native_intake) = (native("inventory")?, native("order-intake")?);
    let limiter = orderly_adapters::dynamo::DynamoResilience::new(
        stack.host.dynamo().clone(),
        stack.host.tables().inventory_table.clone(),
    );
    let store = orderly_adapters::dynamo::DynamoInventory::new(stack.host.dynamo().clone(), stack.host.tables());
    let sku = orderly_core::domain::Sku::parse("BENCH").map_err(|e| anyhow::anyhow!("{e}"))?;
    let bucket = orderly_core::resilience::rate_limit::Bucket { per_second: 1e6, burst: 1_000_000 };

    let names = [
        "hello",
        "get_product",
        "post_order",
        "native_get_product",
        "native_post_order",
        "emulator_get_product",
        "emulator_get_product_sequential",
    ];
    let mut samples: BTreeMap<&str, Samples> = names.iter().map(|n| (*n, Samples::default())).collect();
    if baseline.is_some() {
        samples.insert("baseline_get_product", Samples::default());
    }
    let warmup = 20;
    for round in 0..warmup + requests {
        let keep = round >= warmup;
        let mut time = |name: &'static str, started: std::time::Instant| {
            if keep {
                samples.get_mut(name).expect("a named sample").add(started);
            }
        };
        let started = std::time::Instant::now();
        let answer = client.get(&hello).send().await?;
        answer.bytes().await?;
        time("hello", started);

        // This build's component, then the baseline build's, in the same round.
        let builds = std::iter::once(("get_product", &inventory))
            .chain(baseline.as_ref().map(|baseline| ("baseline_get_product", baseline)));
        for (name, base) in builds {
            let started = std::time::Instant::now();
            let answer = client.get(format!("{base}/api/v1/products/BENCH")).send().await?;
            if answer.status() != reqwest::StatusCode::OK {
                bail!("GET product ({name}): {}", answer.status());
            }
            answer.bytes().await?;
            time(name, started);
        }

        let started = std::time::Instant::now();
        let answer = client
            .post(format!("{intake}/api/v1/orders"))
            .bearer_auth(&customer)
            .header("content-type", "application/json")
            .body(order.clone())
            .send()
            .await?;
        if answer.status() != reqwest::StatusCode::ACCEPTED {
            bail!("POST order: {}", answer.status());
        }
        answer.bytes().await?;
        time("post_order", started);

        let started = std::time::Instant::now();
        let request = axum::http::Request::get("/api/v1/products/BENCH").body(Body::empty())?;
        let answer = native_inventory.clone().oneshot(request).await?;
        axum::body::to_bytes(answer.into_body(), usize::MAX).await?;
        time("native_get_product", started);

        let started = std::time::Instant::now();
        let request = axum::http::Request::post("/api/v1/orders")
            .header("authorization", format!("Bearer {customer}"))
            .header("content-type", "application/json")
            .body(Body::from(order.clone()))?;
        let answer = native_intake.clone().oneshot(request).await?;
        axum::body::to_bytes(answer.into_body(), usize::MAX).await?;
        time("native_post_order", started);

        // The read path's own round trips as it makes them: its rate-limit
        // bucket beside the product (a read does not wait for its token).
        let started = std::time::Instant::now();
        let (taken, read) = futures::future::join(
            orderly_core::ports::RateLimiter::take(&limiter, "bench|read", &bucket, chrono::Utc::now()),
            orderly_core::ports::InventoryStore::product(&store, &sku),
        )
        .await;
        taken?;
        read?;
        time("emulator_get_product", started);

        // The same two one after the other, as reads made them before.
        let started = std::time::Instant::now();
        orderly_core::ports::RateLimiter::take(&limiter, "bench|read", &bucket, chrono::Utc::now()).await?;
        orderly_core::ports::InventoryStore::product(&store, &sku).await?;
        time("emulator_get_product_sequential", started);
    }
    let report: serde_json::Map<String, serde_json::Value> =
        samples.iter().map(|(name, s)| ((*name).to_owned(), s.summary())).collect();
    let mean = |name: &str| report[name]["mean_ms"].as_f64().unwrap_or(f64::NAN);
    let p50 = |name: &str| report[name]["p50_ms"].as_f64().unwrap_or(f64::NAN);
    let mut ratios = serde_json::json!({
        "read_p50_raw": p50("get_product") / p50("hello"),
        "read_p50_without_emulator": (p50("get_product") - p50("emulator_get_product")) / p50("hello"),
        "read_mean_without_emulator": (mean("get_product") - mean("emulator_get_product")) / mean("hello"),
        "write_p50_raw": p50("post_order") / p50("hello"),
        "write_p50_without_native_time": (p50("post_order") - p50("native_post_order")) / p50("hello"),
    });
    if baseline.is_some() {
        // Against the emulator's share as this build makes the calls (side
        // by side), and, for a build from before that, one after the other.
        ratios["baseline_read_p50_raw"] = (p50("baseline_get_product") / p50("hello")).into();
        ratios["baseline_read_p50_without_emulator"] =
            ((p50("baseline_get_product") - p50("emulator_get_product")) / p50("hello")).into();
        ratios["baseline_read_p50_without_sequential_emulator"] =
            ((p50("baseline_get_product") - p50("emulator_get_product_sequential")) / p50("hello")).into();
    }
    let host = flag(args, "--host").unwrap_or("unnamed");
    let out = serde_json::json!({"host": host, "requests": requests, "latency": report, "ratios": ratios});
    let text = serde_json::to_string_pretty(&out)?;
    println!("{text}");
    if let Some(path) = flag(args, "--json") {
        std::fs::write(path, text)?;
    }
    Ok(())
}
