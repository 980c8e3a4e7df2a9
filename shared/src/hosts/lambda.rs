//! The AWS Lambda host: what every function's binary shares.
//!
//! One binary per function serves every trigger the function has, telling
//! them apart by the event's shape:
//!
//! - **API Gateway HTTP API (payload 2.0)**: through `lambda_http` into the
//!   function's own axum router, behind the same edge as every host
//!   ([`super::api_router`]). The JWT key is fetched on the first HTTP
//!   request (SSM), not at start, so a cold start makes no network call.
//! - **SQS** (`aws:sqs`): [`process_batch`] per message, the messages of one
//!   FIFO group in order and the rest of a group held back once one fails;
//!   failures go back with a backoff ([`SqsQueues::retry_later`]: visibility,
//!   or the DLQ with the error on the last attempt) and are reported in the
//!   `SqsBatchResponse` (ReportBatchItemFailures), so one bad record never
//!   fails or blocks its batch.
//! - **DynamoDB Streams** (`aws:dynamodb`): the outbox relay. A new outbox
//!   item in the function's table is published to the consumer queues, then
//!   removed; a failed publish is reported so the stream retries it.
//! - **`{"orderly":"sweep-outbox"}`** (a schedule): [`Relay`] over whatever is
//!   still in the outbox, the safety net behind the stream.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use aws_lambda_events::sqs::{SqsBatchResponse, SqsEvent, SqsMessage};
use aws_sdk_dynamodb::Client as DynamoClient;
use aws_sdk_sqs::Client as SqsClient;
use aws_sdk_ssm::Client as SsmClient;
use lambda_http::request::LambdaRequest;
use lambda_runtime::{Context, LambdaEvent, service_fn};
use serde_json::{Value, json};
use tokio::sync::OnceCell;
use utoipa_axum::router::OpenApiRouter;

use crate::adapters::dynamo::{DynamoConfig, TableKind, outbox_entry_from_stream_image};
use crate::adapters::log_provider::LogProvider;
use crate::adapters::sqs::{QueueUrls, SqsConfig, SqsQueues};
use crate::adapters::webhook::WebhookProvider;
use crate::events::routing::Consumer;
use crate::http::{AuthConfig, Authenticator};
use crate::messaging::{Backoff, EventHandler, Outcome, Relay, process_batch};
use crate::ports::{
    Clock, EventPublisher, IdGenerator, MessageQueue, Notification, NotificationProvider, Outbox, ProviderError,
    ReceivedMessage, SystemClock, UuidV7Ids,
};

pub use lambda_runtime::Error;

/// The payload of the scheduled outbox sweep.
pub const SWEEP_EVENT: &str = "sweep-outbox";

fn var(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

fn millis(name: &str, default: u64) -> Result<Duration, Error> {
    match var(name) {
        Some(raw) => Ok(Duration::from_millis(raw.parse().map_err(|_| format!("{name} must be milliseconds"))?)),
        None => Ok(Duration::from_millis(default)),
    }
}

/// `ORDERLY_QUEUE_URL_INVENTORY`, ... (the consumer queue name in capitals).
fn queue_variable(kind: &str, consumer: Consumer) -> String {
    format!("ORDERLY_{kind}_URL_{}", consumer.queue().to_uppercase().replace('-', "_"))
}

/// Everything a function is configured with, from its environment (set by
/// `template.yaml`). Reading it makes no network call.
#[derive(Debug, Clone)]
pub struct Settings {
    pub tables: DynamoConfig,
    pub queues: SqsConfig,
    pub backoff: Backoff,
    /// SSM parameter (SecureString) holding the HS256 secret.
    pub jwt_secret_parameter: Option<String>,
    /// The HS256 secret itself: local development only.
    pub jwt_secret: Option<String>,
    /// RS256: the JWKS URL of the identity provider.
    pub jwks_url: Option<String>,
    pub jwt_audience: Option<String>,
    pub jwt_issuer: Option<String>,
    /// SSM parameter (SecureString) with the notification webhook URL (which
    /// carries the provider's key); or the URL itself, for development.
    pub notify_url_parameter: Option<String>,
    pub notify_url: Option<String>,
    pub notify_timeout: Duration,
}

impl Settings {
    pub fn from_env() -> Result<Self, Error> {
        let mut tables = DynamoConfig::with_prefix("orderly");
        for (kind, variable) in [
            (TableKind::Orders, "ORDERLY_TABLE_ORDERS"),
            (TableKind::Inventory, "ORDERLY_TABLE_INVENTORY"),
            (TableKind::Notifications, "ORDERLY_TABLE_NOTIFICATIONS"),
            (TableKind::Analytics, "ORDERLY_TABLE_ANALYTICS"),
        ] {
            if let Some(name) = var(variable) {
                *tables.table_mut(kind) = name;
            }
        }
        let mut queues = BTreeMap::new();
        for consumer in Consumer::ALL {
            // A function names only the queues it uses.
            if let (Some(url), Some(dead_letter_url)) =
                (var(&queue_variable("QUEUE", consumer)), var(&queue_variable("DLQ", consumer)))
            {
                queues.insert(consumer.queue().to_owned(), QueueUrls { url, dead_letter_url });
            }
        }
        let max_receives = match var("ORDERLY_MAX_RECEIVES") {
            Some(raw) => raw.parse().map_err(|_| "ORDERLY_MAX_RECEIVES must be a number")?,
            None => 5,
        };
        Ok(Self {
            tables,
            queues: SqsConfig { queues, max_receives },
            backoff: Backoff {
                base: millis("ORDERLY_RETRY_BASE_MS", 1000)?,
                max: millis("ORDERLY_RETRY_MAX_MS", 60_000)?,
            },
            jwt_secret_parameter: var("ORDERLY_JWT_SECRET_PARAMETER"),
            jwt_secret: var("ORDERLY_JWT_SECRET"),
            jwks_url: var("ORDERLY_JWKS_URL"),
            jwt_audience: var("ORDERLY_JWT_AUDIENCE"),
            jwt_issuer: var("ORDERLY_JWT_ISSUER"),
            notify_url_parameter: var("ORDERLY_NOTIFY_URL_PARAMETER"),
            notify_url: var("ORDERLY_NOTIFY_URL"),
            notify_timeout: millis("ORDERLY_NOTIFY_TIMEOUT_MS", 2000)?,
        })
    }
}

/// Counts the AWS requests a function sends (every attempt, retries
/// included), by `service.operation`; logged with each invocation, so the
/// cost of a code path is read off its logs.
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

/// The SDK clients and settings a function is wired from. Building it reads
/// the environment only (credentials and region from Lambda's variables;
/// `AWS_ENDPOINT_URL` points it at an emulator).
#[derive(Debug, Clone)]
pub struct Aws {
    pub dynamo: DynamoClient,
    pub sqs: SqsClient,
    pub ssm: SsmClient,
    pub settings: Settings,
    pub requests: RequestCounter,
    queues: Arc<SqsQueues>,
}

impl Aws {
    pub async fn from_env() -> Result<Self, Error> {
        let settings = Settings::from_env()?;
        let mut loader = aws_config::defaults(aws_config::BehaviorVersion::latest());
        // Emulators only: Lambda on AWS has no such variable and the SDK
        // finds each service's endpoint itself.
        if let Some(url) = var("ORDERLY_AWS_ENDPOINT_URL") {
            loader = loader.endpoint_url(url);
        }
        let config = loader.load().await;
        let requests = RequestCounter::default();
        let dynamo = aws_sdk_dynamodb::config::Builder::from(&config).interceptor(requests.clone()).build();
        let sqs = aws_sdk_sqs::config::Builder::from(&config).interceptor(requests.clone()).build();
        let ssm = aws_sdk_ssm::config::Builder::from(&config).interceptor(requests.clone()).build();
        let sqs = SqsClient::from_conf(sqs);
        Ok(Self {
            dynamo: DynamoClient::from_conf(dynamo),
            queues: Arc::new(SqsQueues::new(sqs.clone(), settings.queues.clone())),
            sqs,
            ssm: SsmClient::from_conf(ssm),
            settings,
            requests,
        })
    }

    pub fn tables(&self) -> &DynamoConfig {
        &self.settings.tables
    }

    /// Publisher, consumer side and admin of the queues this function names.
    pub fn queues(&self) -> Arc<SqsQueues> {
        self.queues.clone()
    }

    pub fn clock(&self) -> Arc<dyn Clock> {
        Arc::new(SystemClock)
    }

    pub fn ids(&self) -> Arc<dyn IdGenerator> {
        Arc::new(UuidV7Ids)
    }

    /// The webhook when one is configured (its URL read from SSM on the first
    /// send), else the log.
    pub fn notification_provider(&self) -> Arc<dyn NotificationProvider> {
        if self.settings.notify_url_parameter.is_none() && self.settings.notify_url.is_none() {
            return Arc::new(LogProvider);
        }
        Arc::new(LazyWebhook { aws: self.clone(), provider: OnceCell::new() })
    }

    async fn parameter(&self, name: &str) -> Result<String, Error> {
        let found = self.ssm.get_parameter().name(name).with_decryption(true).send().await?;
        found.parameter.and_then(|p| p.value).ok_or_else(|| format!("SSM parameter {name} has no value").into())
    }

    /// The token verifier, from SSM / the JWKS URL: the first HTTP request
    /// pays for this, not the cold start.
    pub async fn authenticator(&self) -> Result<Arc<Authenticator>, Error> {
        let s = &self.settings;
        let mut config =
            AuthConfig { audience: s.jwt_audience.clone(), issuer: s.jwt_issuer.clone(), ..AuthConfig::default() };
        if let Some(url) = &s.jwks_url {
            let response = reqwest::get(url).await?.error_for_status()?;
            config.jwks_json = Some(response.text().await?);
        } else if let Some(parameter) = &s.jwt_secret_parameter {
            config.hs256_secret = Some(self.parameter(parameter).await?.into_bytes());
        } else if let Some(secret) = &s.jwt_secret {
            config.hs256_secret = Some(secret.clone().into_bytes());
        } else {
            return Err("set ORDERLY_JWT_SECRET_PARAMETER or ORDERLY_JWKS_URL".into());
        }
        Ok(Authenticator::shared(&config)?)
    }
}

/// The webhook provider, built on its first use.
struct LazyWebhook {
    aws: Aws,
    provider: OnceCell<WebhookProvider>,
}

#[async_trait]
impl NotificationProvider for LazyWebhook {
    fn name(&self) -> &'static str {
        "webhook"
    }

    async fn send(&self, notification: &Notification) -> Result<(), ProviderError> {
        let provider = self
            .provider
            .get_or_try_init(|| async {
                let settings = &self.aws.settings;
                let url = match (&settings.notify_url_parameter, &settings.notify_url) {
                    (Some(parameter), _) => self.aws.parameter(parameter).await.map_err(|e| e.to_string())?,
                    (None, Some(url)) => url.clone(),
                    (None, None) => return Err("no webhook configured".to_owned()),
                };
                WebhookProvider::new(&url, settings.notify_timeout).map_err(|e| e.to_string())
            })
            .await
            .map_err(ProviderError::Unreachable)?;
        provider.send(notification).await
    }
}

/// What one function's binary serves.
pub struct Function {
    name: &'static str,
    http: Option<OpenApiRouter>,
    consumer: Option<Arc<dyn EventHandler>>,
    outbox: Option<Arc<dyn Outbox>>,
}

impl Function {
    pub fn new(name: &'static str) -> Self {
        Self { name, http: None, consumer: None, outbox: None }
    }

    /// Its routes (API Gateway HTTP API events).
    pub fn http(mut self, router: OpenApiRouter) -> Self {
        self.http = Some(router);
        self
    }

    /// Its queue's handler (SQS events).
    pub fn consumer(mut self, handler: Arc<dyn EventHandler>) -> Self {
        self.consumer = Some(handler);
        self
    }

    /// The outbox in its table (DynamoDB Streams events and the sweep).
    pub fn outbox(mut self, outbox: Arc<dyn Outbox>) -> Self {
        self.outbox = Some(outbox);
        self
    }
}

struct Host {
    aws: Aws,
    function: Function,
    router: OnceCell<axum::Router>,
}

/// Starts the function: logging, a single-threaded runtime, the clients,
/// `build`, then the Lambda runtime loop. Nothing here waits on the network.
pub fn run(build: impl FnOnce(&Aws) -> Function) -> Result<(), Error> {
    init_logging();
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    runtime.block_on(async move {
        // Boxed: the SDK's futures are deep, and this one is only awaited once.
        let aws = Box::pin(Aws::from_env()).await?;
        let function = build(&aws);
        let host = Arc::new(Host { aws, function, router: OnceCell::new() });
        lambda_runtime::run(service_fn(move |event: LambdaEvent<Value>| {
            let host = host.clone();
            async move { Box::pin(host.handle(event)).await }
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

impl Host {
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
            Trigger::Sweep => self.sweep().await,
            Trigger::Unknown => Err(format!("{}: an event of unknown shape", self.function.name).into()),
        };
        let requests = self.aws.requests.take();
        tracing::info!(
            function = self.function.name,
            trigger = ?trigger,
            records,
            aws_requests = %serde_json::to_string(&requests).unwrap_or_default(),
            "invocation"
        );
        result
    }

    async fn http(&self, payload: Value, context: Context) -> Result<Value, Error> {
        let router = self
            .router
            .get_or_try_init(|| async {
                let routes =
                    self.function.http.clone().ok_or_else(|| format!("{} serves no HTTP", self.function.name))?;
                let authenticator = self.aws.authenticator().await?;
                Ok::<_, Error>(super::api_router(routes, authenticator)?.0)
            })
            .await?;
        let request: LambdaRequest = serde_json::from_value(payload)?;
        let mut adapter = lambda_http::Adapter::from(router.clone());
        let response = lambda_http::tower::Service::call(&mut adapter, LambdaEvent::new(request, context)).await?;
        Ok(serde_json::to_value(response)?)
    }

    async fn sqs(&self, event: SqsEvent) -> SqsBatchResponse {
        let mut response = SqsBatchResponse::default();
        let Some(handler) = &self.function.consumer else {
            tracing::error!(function = self.function.name, "an SQS event for a function with no consumer");
            response.set_failures(event.records.iter().filter_map(|r| r.message_id.clone()));
            return response;
        };
        let queues = self.aws.queues();
        let queue = handler.consumer().queue();
        // The records of one FIFO group, in order; groups side by side.
        let mut groups: Vec<(String, Vec<ReceivedMessage>)> = Vec::new();
        for record in &event.records {
            let (group, message) = delivery(record);
            match groups.iter_mut().find(|(g, _)| *g == group) {
                Some((_, messages)) => messages.push(message),
                None => groups.push((group, vec![message])),
            }
        }
        let max = queues.config().max_receives;
        let failed = futures::future::join_all(groups.iter().map(|(_, messages)| {
            let (queues, handler) = (queues.clone(), handler.clone());
            async move {
                let mut failed = Vec::new();
                for message in messages {
                    if !failed.is_empty() {
                        // Held back behind a failure of its group: order first.
                        let _ = queues.release(queue, &message.receipt, Duration::ZERO).await;
                        failed.push(message.message_id.clone());
                        continue;
                    }
                    let outcome = process_batch(handler.as_ref(), std::slice::from_ref(message), max).await;
                    if let Some(Outcome::Failed { error, retry_after }) = outcome.into_iter().next().map(|o| o.outcome) {
                        let delay = retry_after.unwrap_or_else(|| self.aws.settings.backoff.delay(message.receive_count));
                        if let Err(e) = queues.retry_later(queue, &message.receipt, delay, &error).await {
                            tracing::warn!(consumer = queue, error = %e, "could not schedule the retry; the visibility timeout will");
                        }
                        failed.push(message.message_id.clone());
                    }
                }
                failed
            }
        }))
        .await;
        response.set_failures(failed.into_iter().flatten());
        response
    }

    async fn stream(&self, payload: &Value) -> Value {
        let records = payload.get("Records").and_then(Value::as_array).cloned().unwrap_or_default();
        let Some(outbox) = &self.function.outbox else {
            tracing::error!(function = self.function.name, "a stream event for a function with no outbox");
            return json!({ "batchItemFailures": [] });
        };
        let mut entries = Vec::new();
        for record in &records {
            if record.get("eventName").and_then(Value::as_str) != Some("INSERT") {
                continue;
            }
            let image = record.pointer("/dynamodb/NewImage").cloned().unwrap_or_default();
            match outbox_entry_from_stream_image(&image) {
                Some(Ok(entry)) => entries.push(entry),
                Some(Err(error)) => tracing::error!(%error, "an outbox item that is not an event: left in the outbox"),
                None => {}
            }
        }
        if entries.is_empty() {
            return json!({ "batchItemFailures": [] });
        }
        let envelopes: Vec<_> = entries.iter().map(|e| e.envelope.clone()).collect();
        if let Err(error) = self.aws.queues().publish(&envelopes).await {
            // Nothing is checkpointed: the stream delivers the batch again.
            tracing::warn!(%error, events = envelopes.len(), "outbox relay: publish failed");
            let first = records.first().and_then(|r| r.pointer("/dynamodb/SequenceNumber")).cloned();
            return json!({ "batchItemFailures": [{ "itemIdentifier": first.unwrap_or_default() }] });
        }
        tracing::info!(function = self.function.name, events = envelopes.len(), "outbox relay: published");
        let positions: Vec<String> = entries.into_iter().map(|e| e.position).collect();
        if let Err(error) = outbox.remove(&positions).await {
            // Published already; the sweep republishes them and consumers
            // drop the duplicates.
            tracing::warn!(%error, "outbox relay: published events not removed");
        }
        json!({ "batchItemFailures": [] })
    }

    async fn sweep(&self) -> Result<Value, Error> {
        let outbox = self.function.outbox.clone().ok_or("this function has no outbox")?;
        let mut relay = Relay::new(outbox, self.aws.queues());
        let mut published = 0;
        // Bounded: a sweep is a safety net, not a drain of a backlog.
        for _ in 0..20 {
            match relay.relay_once(100).await? {
                0 => break,
                n => published += n,
            }
        }
        if published > 0 {
            tracing::warn!(
                function = self.function.name,
                published,
                "outbox sweep published events the stream had not"
            );
        }
        Ok(json!({ "published": published }))
    }
}

/// One SQS record as a delivery, with its FIFO group ("" on a standard queue).
fn delivery(record: &SqsMessage) -> (String, ReceivedMessage) {
    let attribute = |name: &str| record.attributes.get(name).map(String::as_str);
    let group = attribute("MessageGroupId").unwrap_or("").to_owned();
    let count = attribute("ApproximateReceiveCount").and_then(|c| c.parse().ok()).unwrap_or(1);
    let sent = attribute("SentTimestamp")
        .and_then(|ms| ms.parse().ok())
        .and_then(chrono::DateTime::from_timestamp_millis)
        .unwrap_or_else(chrono::Utc::now);
    let message = SqsQueues::delivery(
        record.message_id.as_deref().unwrap_or_default(),
        record.receipt_handle.as_deref().unwrap_or_default(),
        record.body.as_deref().unwrap_or_default(),
        count,
        Some(&group).filter(|g| !g.is_empty()).map(String::as_str),
        sent,
    );
    (group, message)
}

#[cfg(test)]
mod tests {
    use super::*;

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
        let (group, message) = delivery(&record);
        assert_eq!(group, "order-9");
        assert_eq!((message.message_id.as_str(), message.receive_count), ("m-1", 3));
        assert_eq!(message.body, "{\"id\":1}");
        assert_eq!(message.sent_at.timestamp_millis(), 1_764_201_600_000);
    }
}
