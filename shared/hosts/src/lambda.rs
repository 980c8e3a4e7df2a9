//! The AWS Lambda host: how Lambda's triggers reach a function.
//!
//! A function's wiring is the one every host runs (its crate's `wire`, see
//! [`orderly_core::composition`]), here over the [`AwsBackend`]; its Lambda binary
//! is one line, [`run`]`(wire)`. One
//! binary serves every trigger the function has, telling them apart by the
//! event's shape:
//!
//! - **API Gateway HTTP API (payload 2.0)**: through `lambda_http` into the
//!   function's axum router, behind the same edge as every host
//!   ([`orderly_core::edge::api_router`]: problem+json, JWT, rate limits in DynamoDB).
//!   The JWT keys are read on an instance's first HTTP request (SSM, or the
//!   JWKS URL), not at start, so a cold start makes no network call, and
//!   read again after their max age (`secret_max_age`, `jwks_max_age`): a
//!   rotated secret reaches warm instances too. So is the webhook URL from
//!   SSM.
//! - **SQS** (`aws:sqs`): [`process_batch`] over the batch (the messages of
//!   one FIFO group in order, the rest of a group held back once one fails);
//!   a failure comes back after a backoff ([`SqsQueues::retry_later`]:
//!   visibility, or the DLQ with the error on the last attempt), a held-back
//!   message at once, and both are reported in the `SqsBatchResponse`
//!   (ReportBatchItemFailures), so one bad record never fails or blocks its
//!   batch.
//! - **DynamoDB Streams** (`aws:dynamodb`): the outbox relay
//!   ([`relay_streamed`]). The events a write left on the item it changed
//!   (`outbox = stream`), or a new outbox item, are published to the consumer
//!   queues, and the outbox item removed; what fails to publish stays in the
//!   outbox (carried events are kept there) for the sweep.
//! - **`{"orderly":"sweep-outbox"}`** (a schedule): [`Relay`] over whatever is
//!   still in the outbox, the safety net behind the stream.
//!
//! After each invocation the metrics the shared code records (requests,
//! latency, breaker state, cache hits, rate-limit rejections, messages) are
//! written as one CloudWatch EMF line, and the AWS requests it sent are
//! logged by operation: the cost of a code path is read off its logs.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use aws_lambda_events::sqs::{SqsBatchResponse, SqsEvent, SqsMessage};
use aws_sdk_ssm::Client as SsmClient;
use lambda_http::request::LambdaRequest;
use lambda_runtime::{Context, LambdaEvent, service_fn};
use serde_json::{Value, json};
use tokio::sync::OnceCell;

use orderly_adapters::aws_backend::AwsBackend;
use orderly_adapters::dynamo::events_in_stream_image;
use orderly_adapters::http_client::{self, ClientOptions, UrlFetcher};
use orderly_adapters::log_provider::LogProvider;
use orderly_adapters::payment_gateway::{self, HttpGateway};
use orderly_adapters::sqs::{DeliveryAttributes, SqsQueues};
use orderly_adapters::webhook::{self, Reqwest, WebhookProvider};
use orderly_core::composition::{self, Backend, Function, KeySource};
use orderly_core::domain::{AuthorizationId, Money, OrderId};
use orderly_core::http::{Authenticator, ClientIp, KeyKind};
use orderly_core::messaging::{Outcome, process_batch, relay_streamed, schedule_retry};
use orderly_core::ports::{
    Authorization, Clock, FetchError, GatewayError, Notification, NotificationProvider, PaymentGateway, ProviderError,
    ReceivedMessage, SecretFetcher, SystemClock,
};
use orderly_core::secrets::Refreshing;
use orderly_core::settings::{Environment, Settings};

pub use lambda_runtime::Error;

/// The payload of the scheduled outbox sweep.
pub const SWEEP_EVENT: &str = "sweep-outbox";

/// The part of a sweep's invocation left for its last round trips and its log.
const SWEEP_MARGIN: Duration = Duration::from_secs(2);

/// How long one JWKS download may take.
const JWKS_FETCH_TIMEOUT: Duration = Duration::from_secs(5);

/// The CloudWatch namespace of the functions' EMF metrics.
pub const METRICS_NAMESPACE: &str = "Orderly";

/// Counts the AWS requests a function sends (every attempt, retries
/// included), by `service.operation`; logged with each invocation.
#[derive(Debug, Clone, Default)]
pub struct RequestCounter(Arc<std::sync::Mutex<BTreeMap<String, u64>>>);

impl RequestCounter {
    /// The counts since the last call.
    pub fn take(&self) -> BTreeMap<String, u64> {
        std::mem::take(&mut *self.0.lock().unwrap_or_else(|e| e.into_inner()))
    }
}

impl aws_sdk_dynamodb::config::Intercept for RequestCounter {
    fn name(&self) -> &'static str {
        "orderly-request-counter"
    }

    fn read_before_transmit(
        &self,
        _context: &aws_sdk_dynamodb::config::interceptors::BeforeTransmitInterceptorContextRef<'_>,
        _components: &aws_sdk_dynamodb::config::RuntimeComponents,
        cfg: &mut aws_sdk_dynamodb::config::ConfigBag,
    ) -> Result<(), aws_sdk_dynamodb::error::BoxError> {
        if let Some(operation) = cfg.load::<aws_smithy_runtime_api::client::orchestrator::Metadata>() {
            let key = format!("{}.{}", operation.service(), operation.name());
            *self.0.lock().unwrap_or_else(|e| e.into_inner()).entry(key).or_default() += 1;
        }
        Ok(())
    }
}

/// Starts a function: logging, its settings (a bad one fails the init, not
/// a request), a single-threaded runtime, then the Lambda runtime loop. The
/// SDK clients, the metrics recorder and `wire` wait for the first event:
/// building the HTTPS client (its TLS roots) is most of what a cold start
/// would otherwise spend before asking for work, and nothing here waits on
/// the network.
pub fn run(wire: fn(&Arc<dyn Backend>) -> Function) -> Result<(), Error> {
    init_logging();
    let settings = Settings::load(&Environment)?;
    orderly_core::messaging::keep_handled_lines(settings.handled_log_share);
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    runtime.block_on(async move {
        let lambda = Arc::new(OnceCell::<LambdaHost>::new());
        lambda_runtime::run(service_fn(move |event: LambdaEvent<Value>| {
            let (lambda, settings) = (lambda.clone(), settings.clone());
            async move {
                // Boxed: the SDK's futures are deep.
                let lambda = lambda.get_or_try_init(|| Box::pin(LambdaHost::new(settings, wire))).await?;
                Box::pin(lambda.handle(event)).await
            }
        }))
        .await
    })
}

fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("ORDERLY_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    // Lambda adds its own timestamp to each line.
    let _ = tracing_subscriber::fmt()
        .json()
        .with_env_filter(filter)
        .with_current_span(false)
        .without_time()
        .with_target(false)
        .try_init();
}

/// What kind of event this is, by its shape.
#[derive(Debug, PartialEq, Eq)]
pub enum Trigger {
    Http,
    Sqs,
    Stream,
    Sweep,
    Unknown,
}

pub fn trigger(payload: &Value) -> Trigger {
    let source =
        payload.get("Records").and_then(|r| r.get(0)).and_then(|r| r.get("eventSource")).and_then(Value::as_str);
    match source {
        Some("aws:sqs") => Trigger::Sqs,
        Some("aws:dynamodb") => Trigger::Stream,
        _ if payload.get("orderly").and_then(Value::as_str) == Some(SWEEP_EVENT) => Trigger::Sweep,
        _ if payload.get("requestContext").is_some() => Trigger::Http,
        _ => Trigger::Unknown,
    }
}

/// One function's instance: its backend, its parts, the clients only Lambda
/// uses (SSM), and the router, built by the first HTTP request.
struct LambdaHost {
    backend: Arc<AwsBackend>,
    function: Function,
    ssm: SsmClient,
    requests: RequestCounter,
    metrics: Option<&'static metrics_cloudwatch_embedded::Collector>,
    router: OnceCell<axum::Router>,
}

impl LambdaHost {
    /// Settings from `ORDERLY_*` (set by `template.yaml`); SDK clients from
    /// Lambda's environment (credentials of the function's role, region;
    /// `ORDERLY_AWS_ENDPOINT_URL` points them at an emulator).
    async fn new(settings: Settings, wire: fn(&Arc<dyn Backend>) -> Function) -> Result<Self, Error> {
        let mut loader = aws_config::defaults(aws_config::BehaviorVersion::latest());
        if let Some(url) = &settings.aws.endpoint_url {
            loader = loader.endpoint_url(url);
        }
        // Lambda's own AWS_REGION unless the settings name one.
        if settings.aws.region_set {
            loader = loader.region(aws_config::Region::new(settings.aws.region.clone()));
        }
        if let Some(credentials) = orderly_adapters::aws_backend::credentials(&settings.aws) {
            loader = loader.credentials_provider(credentials);
        }
        let config = loader.load().await;
        let requests = RequestCounter::default();
        let dynamo = aws_sdk_dynamodb::config::Builder::from(&config)
            .interceptor(requests.clone())
            .retry_config(orderly_adapters::aws_backend::dynamo_retry_config(&settings.aws))
            .build();
        let sqs = aws_sdk_sqs::config::Builder::from(&config).interceptor(requests.clone()).build();
        let ssm =
            SsmClient::from_conf(aws_sdk_ssm::config::Builder::from(&config).interceptor(requests.clone()).build());
        let provider: Arc<dyn NotificationProvider> = match LazyWebhook::new(&settings, &ssm, Arc::new(SystemClock)) {
            Some(webhook) => Arc::new(webhook),
            None => Arc::new(LogProvider),
        };
        let gateway = LazyGateway::new(&settings, &ssm, Arc::new(SystemClock))
            .map(|gateway| Arc::new(gateway) as Arc<dyn PaymentGateway>);
        let backend = Arc::new(
            AwsBackend::new(
                settings,
                aws_sdk_dynamodb::Client::from_conf(dynamo),
                aws_sdk_sqs::Client::from_conf(sqs),
                provider,
            )
            .with_payment_gateway(gateway)
            .with_timer(Arc::new(orderly_adapters::TokioTimer)),
        );
        let function = wire(&(backend.clone() as Arc<dyn Backend>));
        let metrics = metrics_cloudwatch_embedded::Builder::new()
            // Each metric's labels (function, route, consumer, ...) become
            // its dimensions; a builder-wide one may not repeat a label.
            .cloudwatch_namespace(METRICS_NAMESPACE)
            .init()
            .map_err(|error| tracing::warn!(%error, "EMF metrics are off"))
            .ok();
        Ok(Self { backend, function, ssm, requests, metrics, router: OnceCell::new() })
    }

    async fn handle(&self, event: LambdaEvent<Value>) -> Result<Value, Error> {
        let (payload, context) = event.into_parts();
        let trigger = trigger(&payload);
        let records = payload.get("Records").and_then(Value::as_array).map_or(0, Vec::len);
        let result = match trigger {
            Trigger::Http => self.http(payload, context).await,
            Trigger::Sqs => match serde_json::from_value(payload) {
                Ok(event) => serde_json::to_value(self.sqs(event).await).map_err(Error::from),
                Err(error) => Err(error.into()),
            },
            Trigger::Stream => Ok(self.stream(&payload).await),
            Trigger::Sweep => self.sweep(&context).await,
            Trigger::Unknown => Err(format!("{}: an event of unknown shape", self.function.name()).into()),
        };
        let requests = self.requests.take();
        tracing::info!(
            function = self.function.name(),
            trigger = ?trigger,
            records,
            aws_requests = %serde_json::to_string(&requests).unwrap_or_default(),
            "invocation"
        );
        record_memory(self.function.name());
        if let Some(metrics) = self.metrics
            && let Err(error) = metrics.flush(std::io::stdout())
        {
            tracing::warn!(%error, "EMF metrics not written");
        }
        result
    }

    /// The token verifier: inline settings, else the SSM parameter, else the
    /// JWKS URL, both fetched on first use and kept by the shared refresh
    /// policy.
    fn authenticator(&self) -> Result<Arc<Authenticator>, Error> {
        let settings = self.backend.settings();
        let keys = match composition::inline_keys(settings) {
            Some(keys) => keys,
            None => {
                let (fetcher, kind): (Arc<dyn SecretFetcher>, KeyKind) = match composition::key_source(settings) {
                    KeySource::SecretParameter(name) => {
                        (Arc::new(SsmParameter::new(&self.ssm, name)), KeyKind::Hs256Secrets)
                    }
                    KeySource::JwksUrl(url) => {
                        let client = http_client::client(&ClientOptions {
                            tls: settings.outbound_tls.clone(),
                            outward_only: false,
                        })?;
                        (Arc::new(UrlFetcher::new(client, url, JWKS_FETCH_TIMEOUT)), KeyKind::Jwks)
                    }
                    _ => return Err("set ORDERLY_JWT_SECRET_PARAMETER or ORDERLY_JWKS_URL".into()),
                };
                composition::fetched_keys(settings, fetcher, kind, self.backend.clock())
            }
        };
        Ok(composition::authenticator(settings, keys)?)
    }

    async fn http(&self, payload: Value, context: Context) -> Result<Value, Error> {
        let router = self
            .router
            .get_or_try_init(|| async {
                let authenticator = self.authenticator()?;
                let router = self.function.router(self.backend.as_ref(), authenticator).map_err(Error::from)?;
                // A compressed body has Content-Encoding: lambda_http sends it base64 (binary).
                Ok::<_, Error>(crate::edge::served(router).layer(axum::middleware::map_request(with_client_ip)))
            })
            .await?;
        let request: LambdaRequest = serde_json::from_value(payload)?;
        let mut adapter = lambda_http::Adapter::from(router.clone());
        let response = lambda_http::tower::Service::call(&mut adapter, LambdaEvent::new(request, context)).await?;
        Ok(serde_json::to_value(response)?)
    }

    async fn sqs(&self, event: SqsEvent) -> SqsBatchResponse {
        let mut response = SqsBatchResponse::default();
        let Some(handler) = self.function.handler() else {
            tracing::error!(function = self.function.name(), "an SQS event for a function with no consumer");
            response.set_failures(event.records.iter().filter_map(|r| r.message_id.clone()));
            return response;
        };
        let queues = self.backend.queues();
        let queue = handler.consumer().queue();
        let messages: Vec<ReceivedMessage> = event.records.iter().map(delivery).collect();
        let outcomes = process_batch(handler.as_ref(), &messages, queues.config().max_receives).await;
        let backoff = self.backend.settings().backoff();
        // Every message not done goes back to the queue, and is reported so
        // that Lambda does not delete it.
        let failed = futures::future::join_all(messages.iter().zip(outcomes).map(|(message, outcome)| {
            let queues = queues.clone();
            async move {
                match outcome.outcome {
                    Outcome::Done | Outcome::Ignored { .. } => return None,
                    Outcome::Failed { error, retry_after } => {
                        schedule_retry(queues.as_ref(), queue, message, &error, retry_after, backoff).await;
                    }
                    Outcome::HeldBack => {
                        if let Err(error) = queues.release(queue, &message.receipt, Duration::ZERO).await {
                            tracing::debug!(queue, %error, "a held-back message waits for its visibility timeout");
                        }
                    }
                }
                Some(outcome.message_id)
            }
        }))
        .await;
        response.set_failures(failed.into_iter().flatten());
        response
    }

    async fn stream(&self, payload: &Value) -> Value {
        let records = payload.get("Records").and_then(Value::as_array).cloned().unwrap_or_default();
        let Some(outbox) = self.function.outbox_store() else {
            tracing::error!(function = self.function.name(), "a stream event for a function with no outbox");
            return json!({ "batchItemFailures": [] });
        };
        let mut batch = Vec::new();
        for record in &records {
            if !matches!(record.get("eventName").and_then(Value::as_str), Some("INSERT" | "MODIFY")) {
                continue;
            }
            let image = record.pointer("/dynamodb/NewImage").cloned().unwrap_or_default();
            match events_in_stream_image(&image) {
                Some(Ok(events)) => batch.push(events),
                // Failing the batch would hold the shard back until the record
                // expires (24 h) for a record no retry can read: count it and
                // say which one, so that it can be recovered from the table.
                Some(Err(error)) => {
                    let sequence = record.pointer("/dynamodb/SequenceNumber").and_then(Value::as_str).unwrap_or("?");
                    metrics::counter!("orderly_stream_records_unreadable_total", "function" => self.function.name())
                        .increment(1);
                    tracing::error!(%error, sequence, "a stream record whose events cannot be read: not relayed");
                }
                None => {}
            }
        }
        match relay_streamed(outbox.as_ref(), self.backend.queues().as_ref(), batch).await {
            Ok(0) => {}
            Ok(published) => {
                tracing::info!(function = self.function.name(), events = published, "outbox relay: published")
            }
            Err(error) => {
                // Neither published nor kept: the stream hands the batch over again.
                tracing::warn!(%error, "outbox relay: events neither published nor kept");
                let first = records.first().and_then(|r| r.pointer("/dynamodb/SequenceNumber")).cloned();
                return json!({ "batchItemFailures": [{ "itemIdentifier": first.unwrap_or_default() }] });
            }
        }
        json!({ "batchItemFailures": [] })
    }

    /// The relay every host runs ([`Function::relay`]) over what the stream
    /// left in the outbox, until it is empty or the invocation's time is
    /// nearly spent: a safety net, not a drain of a backlog.
    async fn sweep(&self, context: &Context) -> Result<Value, Error> {
        if self.function.outbox_store().is_none() {
            return Err("this function has no outbox".into());
        }
        let deadline = std::time::UNIX_EPOCH + Duration::from_millis(context.deadline);
        let budget =
            deadline.duration_since(std::time::SystemTime::now()).unwrap_or_default().saturating_sub(SWEEP_MARGIN);
        let published = self.function.relay(self.backend.publisher(), budget).await?;
        if published > 0 {
            tracing::warn!(
                function = self.function.name(),
                published,
                "outbox sweep published events the stream had not"
            );
        }
        Ok(json!({ "published": published }))
    }
}

/// The caller's address from API Gateway's request context (anonymous rate
/// limits key on it); never from a header the caller could set.
async fn with_client_ip(mut request: axum::extract::Request) -> axum::extract::Request {
    use lambda_http::RequestExt;
    let source_ip = match request.request_context_ref() {
        Some(lambda_http::request::RequestContext::ApiGatewayV2(context)) => context.http.source_ip.clone(),
        _ => None,
    };
    if let Some(ip) = source_ip.and_then(|ip| ip.parse().ok()) {
        request.extensions_mut().insert(ClientIp(ip));
    }
    request
}

/// An SSM parameter (a SecureString, decrypted) as a [`SecretFetcher`].
struct SsmParameter {
    ssm: SsmClient,
    name: String,
}

impl SsmParameter {
    fn new(ssm: &SsmClient, name: &str) -> Self {
        Self { ssm: ssm.clone(), name: name.to_owned() }
    }
}

#[async_trait]
impl SecretFetcher for SsmParameter {
    fn describe(&self) -> String {
        format!("SSM parameter {}", self.name)
    }

    async fn fetch(&self) -> Result<String, FetchError> {
        let found = self
            .ssm
            .get_parameter()
            .name(&self.name)
            .with_decryption(true)
            .send()
            .await
            .map_err(|e| FetchError(aws_sdk_ssm::error::DisplayErrorContext(e).to_string()))?;
        found.parameter.and_then(|p| p.value).ok_or_else(|| FetchError("the parameter has no value".into()))
    }
}

/// A value from the settings themselves, as a [`SecretFetcher`].
struct Inline(String);

#[async_trait]
impl SecretFetcher for Inline {
    fn describe(&self) -> String {
        "a setting".into()
    }

    async fn fetch(&self) -> Result<String, FetchError> {
        Ok(self.0.clone())
    }
}

/// Where a secret URL comes from: its SSM parameter, else the inline setting.
fn url_source(ssm: &SsmClient, parameter: &Option<String>, inline: &Option<String>) -> Option<Arc<dyn SecretFetcher>> {
    match (parameter, inline) {
        (Some(name), _) => Some(Arc::new(SsmParameter::new(ssm, name))),
        (None, Some(url)) => Some(Arc::new(Inline(url.clone()))),
        (None, None) => None,
    }
}

/// The webhook provider, built on its first send (its URL, which carries the
/// provider's key, read from SSM then, and again after `secret_max_age`),
/// with the native SSRF guard: what only Lambda adds to the one webhook
/// sender is where its URL comes from.
struct LazyWebhook {
    provider: Refreshing<WebhookProvider>,
}

impl LazyWebhook {
    fn new(settings: &Settings, ssm: &SsmClient, clock: Arc<dyn Clock>) -> Option<Self> {
        let fetcher = url_source(ssm, &settings.notify_url_parameter, &settings.notify_url)?;
        let (timeout, tls, secret) =
            (settings.notify_timeout, settings.outbound_tls.clone(), settings.webhook_secret.clone());
        let allow_private = settings.notify_allow_private;
        let build = move |url: &str| {
            WebhookProvider::with_tls(url.trim(), timeout, allow_private, &tls)
                .and_then(|provider| provider.signed(secret.as_deref()))
                .map_err(|e| e.to_string())
        };
        Some(Self { provider: Refreshing::new(fetcher, build, settings.secret_refresh(), clock) })
    }
}

#[async_trait]
impl NotificationProvider for LazyWebhook {
    fn name(&self) -> &'static str {
        webhook::NAME
    }

    async fn send(&self, notification: &Notification) -> Result<(), ProviderError> {
        let provider = self.provider.get().await.map_err(|e| ProviderError::Unreachable(e.to_string()))?;
        provider.send(notification).await
    }
}

/// The payment gateway, once its URL (a secret: SSM, or inline) is read,
/// and again after `secret_max_age`.
struct LazyGateway {
    gateway: Refreshing<HttpGateway<Reqwest>>,
}

impl LazyGateway {
    fn new(settings: &Settings, ssm: &SsmClient, clock: Arc<dyn Clock>) -> Option<Self> {
        let payment = &settings.payment;
        let fetcher = url_source(ssm, &payment.url_parameter, &payment.url)?;
        let (timeout, tls) = (payment.timeout, settings.outbound_tls.clone());
        let build = move |url: &str| payment_gateway::native(url.trim(), timeout, &tls);
        Some(Self { gateway: Refreshing::new(fetcher, build, settings.secret_refresh(), clock) })
    }

    async fn gateway(&self) -> Result<Arc<HttpGateway<Reqwest>>, GatewayError> {
        self.gateway.get().await.map_err(|e| GatewayError::Unreachable(e.to_string()))
    }
}

#[async_trait]
impl PaymentGateway for LazyGateway {
    fn name(&self) -> &'static str {
        payment_gateway::NAME
    }

    async fn authorize(&self, order: OrderId, amount: Money) -> Result<Authorization, GatewayError> {
        self.gateway().await?.authorize(order, amount).await
    }

    async fn capture(&self, order: OrderId, authorization: &AuthorizationId) -> Result<(), GatewayError> {
        self.gateway().await?.capture(order, authorization).await
    }

    async fn void(&self, order: OrderId, authorization: &AuthorizationId) -> Result<(), GatewayError> {
        self.gateway().await?.void(order, authorization).await
    }

    async fn void_by_reference(&self, order: OrderId) -> Result<(), GatewayError> {
        self.gateway().await?.void_by_reference(order).await
    }
}

/// This instance's peak resident memory as a percentage of the function's
/// configured memory (Lambda's "Max Memory Used" over "Memory Size"), as
/// the EMF metric `orderly_memory_used_percent` the memory alarm watches:
/// a leak or a batch that grew shows here before an out-of-memory kill.
fn record_memory(function: &'static str) {
    let configured_mb = std::env::var("AWS_LAMBDA_FUNCTION_MEMORY_SIZE").ok().and_then(|v| v.parse::<f64>().ok());
    let peak_kb = std::fs::read_to_string("/proc/self/status").ok().as_deref().and_then(peak_resident_kb);
    if let (Some(configured_mb), Some(peak_kb)) = (configured_mb, peak_kb)
        && configured_mb > 0.0
    {
        metrics::gauge!("orderly_memory_used_percent", "function" => function)
            .set(100.0 * peak_kb / 1024.0 / configured_mb);
    }
}

/// `VmHWM` (the resident set's high-water mark) of a `/proc/<pid>/status`.
fn peak_resident_kb(status: &str) -> Option<f64> {
    let line = status.lines().find_map(|line| line.strip_prefix("VmHWM:"))?;
    line.trim().trim_end_matches("kB").trim().parse().ok()
}

/// One SQS record of a Lambda event as a delivery.
fn delivery(record: &SqsMessage) -> ReceivedMessage {
    let attributes = record.attributes.iter().map(|(name, value)| (name.as_str(), value.as_str()));
    SqsQueues::delivery(
        record.message_id.as_deref().unwrap_or_default(),
        record.receipt_handle.as_deref().unwrap_or_default(),
        record.body.as_deref().unwrap_or_default(),
        DeliveryAttributes::parse(attributes),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A secret rotated in SSM reaches a warm instance once its copy is
    /// older than the max age, on the emulator at `ORDERLY_AWS_ENDPOINT`
    /// (skipped without it, outside CI).
    #[tokio::test]
    async fn a_secret_rotated_in_ssm_reaches_a_running_instance_after_its_max_age() {
        let endpoint = match std::env::var("ORDERLY_AWS_ENDPOINT") {
            Ok(url) if !url.is_empty() => url,
            _ if std::env::var_os("CI").is_some() => {
                panic!("CI runs this against the emulator: set ORDERLY_AWS_ENDPOINT")
            }
            _ => return eprintln!("skipped: ORDERLY_AWS_ENDPOINT is not set"),
        };
        let config = aws_config::defaults(aws_config::BehaviorVersion::latest())
            .endpoint_url(endpoint)
            .region(aws_config::Region::new("us-east-1"))
            .credentials_provider(aws_sdk_ssm::config::Credentials::new("test", "test", None, None, "tests"))
            .load()
            .await;
        let ssm = SsmClient::new(&config);
        let name = format!("/orderly/tests/rotated-{:x}", rand::random::<u64>());
        let put = |value: &'static str| {
            let request = ssm.put_parameter().name(&name).value(value).r#type("SecureString".into()).overwrite(true);
            async move { request.send().await.expect("put the parameter") }
        };
        put("first").await;
        let max_age = Duration::from_secs(2);
        let policy = orderly_core::secrets::RefreshPolicy { max_age, min_interval: Duration::from_secs(1) };
        let secret = Refreshing::new(
            Arc::new(SsmParameter::new(&ssm, &name)),
            |text: &str| Ok(text.to_owned()),
            policy,
            Arc::new(SystemClock),
        );
        assert_eq!(*secret.get().await.unwrap(), "first");
        put("second").await;
        let rotated = std::time::Instant::now();
        assert_eq!(*secret.get().await.unwrap(), "first", "within its max age the copy is used");
        while *secret.get().await.unwrap() != "second" {
            assert!(rotated.elapsed() < Duration::from_secs(10), "the rotated value never arrived");
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    #[test]
    fn the_peak_resident_memory_is_read_from_proc_status() {
        let status = "Name:\tbootstrap\nVmPeak:\t  90000 kB\nVmHWM:\t   25600 kB\nVmRSS:\t   20000 kB\n";
        assert_eq!(peak_resident_kb(status), Some(25600.0));
        assert_eq!(peak_resident_kb("Name:\tbootstrap\n"), None);
    }

    #[test]
    fn tells_the_triggers_apart_by_shape() {
        let sqs = json!({"Records": [{"messageId": "1", "eventSource": "aws:sqs", "body": "{}"}]});
        let stream = json!({"Records": [{"eventID": "1", "eventName": "INSERT", "eventSource": "aws:dynamodb"}]});
        let http = json!({"version": "2.0", "rawPath": "/health", "requestContext": {"http": {"method": "GET"}}});
        assert_eq!(trigger(&sqs), Trigger::Sqs);
        assert_eq!(trigger(&stream), Trigger::Stream);
        assert_eq!(trigger(&http), Trigger::Http);
        assert_eq!(trigger(&json!({"orderly": SWEEP_EVENT})), Trigger::Sweep);
        assert_eq!(trigger(&json!({"something": "else"})), Trigger::Unknown);
    }

    #[test]
    fn an_sqs_record_becomes_a_delivery_of_its_group() {
        let record: SqsMessage = serde_json::from_value(json!({
            "messageId": "m-1", "receiptHandle": "h-1", "body": "{\"id\":1}", "eventSource": "aws:sqs",
            "attributes": {"ApproximateReceiveCount": "3", "MessageGroupId": "order-9", "SentTimestamp": "1764201600000"}
        }))
        .unwrap();
        let message = delivery(&record);
        assert_eq!(message.group.as_deref(), Some("order-9"));
        assert_eq!((message.message_id.as_str(), message.receive_count), ("m-1", 3));
        assert_eq!(message.body, "{\"id\":1}");
        assert_eq!(message.sent_at.timestamp_millis(), 1_764_201_600_000);
    }

    #[tokio::test]
    async fn repeated_headers_reach_api_gateway_as_one_line_each() {
        use axum::http::{HeaderValue, header};
        let mut response = axum::response::Response::new(axum::body::Body::empty());
        let headers = response.headers_mut();
        headers.append(header::VARY, HeaderValue::from_static("Accept"));
        headers.append(header::VARY, HeaderValue::from_static("accept-encoding"));
        headers.append(header::SET_COOKIE, HeaderValue::from_static("a=1"));
        headers.append(header::SET_COOKIE, HeaderValue::from_static("b=2"));
        let response = crate::edge::one_line_per_header(response).await;
        let vary: Vec<_> = response.headers().get_all(header::VARY).iter().collect();
        assert_eq!(vary, ["Accept, accept-encoding"]);
        assert_eq!(response.headers().get_all(header::SET_COOKIE).iter().count(), 2, "cookies stay apart");

        // What lambda_http sends to API Gateway (payload 2.0) keeps both.
        let request: lambda_http::request::LambdaRequest = serde_json::from_value(json!({
            "version": "2.0", "routeKey": "$default", "rawPath": "/", "rawQueryString": "",
            "headers": {}, "requestContext": {"http": {"method": "GET", "path": "/", "protocol": "HTTP/1.1",
            "sourceIp": "127.0.0.1", "userAgent": "t"}, "accountId": "1", "apiId": "a", "domainName": "d",
            "domainPrefix": "d", "requestId": "r", "routeKey": "$default", "stage": "$default", "time": "t",
            "timeEpoch": 0}, "isBase64Encoded": false
        }))
        .unwrap();
        let service = lambda_http::service_fn(move |_: lambda_http::Request| {
            let mut response = axum::response::Response::new(axum::body::Body::empty());
            response.headers_mut().append(header::VARY, HeaderValue::from_static("Accept"));
            response.headers_mut().append(header::VARY, HeaderValue::from_static("Origin"));
            async move { Ok::<_, std::convert::Infallible>(crate::edge::one_line_per_header(response).await) }
        });
        let mut adapter = lambda_http::Adapter::from(service);
        let sent = lambda_http::tower::Service::call(
            &mut adapter,
            lambda_runtime::LambdaEvent::new(request, lambda_runtime::Context::default()),
        )
        .await
        .unwrap();
        let sent = serde_json::to_value(sent).unwrap();
        assert_eq!(sent["headers"]["vary"], "Accept, Origin", "{sent}");
    }
}
