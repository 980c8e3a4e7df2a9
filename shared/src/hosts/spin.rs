//! The Spin host: what every function's component shares.
//!
//! A function crate's `spin` module is a few lines of wiring — DynamoDB and
//! SQS adapters into its use cases, returned as a [`Component`] — plus one
//! entry point per trigger, each a call into this module:
//!
//! - **HTTP** (`#[http_component]`, WASI 0.2): [`serve`] runs the function's
//!   axum router behind the shared edge ([`super::api_router`]: problem+json,
//!   JWT, rate limits in DynamoDB). The same build runs on Spin and under any
//!   wasi:http host (`wasmtime serve`, jco), which is how CI runs it.
//! - **SQS** (the spin-trigger-sqs plugin: one message per call, answered
//!   delete or leave): [`Component::handle_message`], a one-message
//!   [`process_batch`].
//! - **Cron** (the spin-trigger-cron plugin): [`Component::relay`], the
//!   outbox [`Relay`] until the outbox is empty.
//!
//! Settings come through the [`ConfigSource`] port: process environment
//! (`ORDERLY_*`, what `wasmtime serve --env` and tests give) or, in the
//! `spin-variables` build, Spin variables — the only `fermyon:spin` import,
//! kept out of the build that runs under wasmtime. The wiring compiles
//! natively too, so tests drive a component's queue and relay core off-wasm
//! with native SDK clients (see `tests/spin/harness.rs`).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_dynamodb::Client as DynamoClient;
use aws_sdk_sqs::Client as SqsClient;
use chrono::{DateTime, Utc};
use utoipa_axum::router::OpenApiRouter;

use super::health::HealthProbe;
use crate::adapters::dynamo::{DynamoConfig, DynamoResilience, TableKind};
use crate::adapters::sqs::{QueueUrls, SqsConfig, SqsQueues};
use crate::events::routing::Consumer;
use crate::http::{AuthConfig, RateLimitLayer, RateLimitPolicy};
use crate::messaging::{EventHandler, Outcome, Relay, RelayError, process_batch};
use crate::ports::{Clock, IdGenerator, NotificationProvider, Outbox, QueueAdmin, SystemClock, UuidV7Ids};
use crate::resilience::breaker::{BreakerPolicy, CircuitBreaker};
use crate::resilience::rate_limit::Bucket;

/// The name under which the provider's breaker state is shared (as on every host).
pub const PROVIDER_BREAKER: &str = "notification-provider";

/// Where settings come from. Keys are `snake_case` (`table_orders`): a Spin
/// variable of that name, or the environment variable `ORDERLY_TABLE_ORDERS`.
pub trait ConfigSource {
    /// The value, or `None` when unset or empty.
    fn get(&self, key: &str) -> Option<String>;
}

/// `ORDERLY_<KEY>` from the process environment (`wasi:cli/environment`
/// inside a component).
#[derive(Debug, Clone, Copy, Default)]
pub struct Environment;

impl ConfigSource for Environment {
    fn get(&self, key: &str) -> Option<String> {
        std::env::var(format!("ORDERLY_{}", key.to_ascii_uppercase())).ok().filter(|v| !v.is_empty())
    }
}

/// Spin variables (declared per component in `spin.toml`).
#[cfg(all(feature = "spin-variables", target_arch = "wasm32"))]
#[derive(Debug, Clone, Copy, Default)]
pub struct SpinVariables;

#[cfg(all(feature = "spin-variables", target_arch = "wasm32"))]
impl ConfigSource for SpinVariables {
    fn get(&self, key: &str) -> Option<String> {
        spin_sdk::variables::get(key).ok().filter(|v| !v.is_empty())
    }
}

/// The source this build reads: Spin variables in the `spin-variables`
/// build, else the environment.
pub fn config_source() -> Box<dyn ConfigSource> {
    #[cfg(all(feature = "spin-variables", target_arch = "wasm32"))]
    return Box::new(SpinVariables);
    #[cfg(not(all(feature = "spin-variables", target_arch = "wasm32")))]
    Box::new(Environment)
}

/// A setting that is wrong or missing.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("setting {key}: {problem}")]
pub struct SettingError {
    pub key: String,
    pub problem: String,
}

fn parsed<T: std::str::FromStr>(source: &dyn ConfigSource, key: &str, default: T) -> Result<T, SettingError> {
    match source.get(key) {
        None => Ok(default),
        Some(raw) => {
            raw.trim().parse().map_err(|_| SettingError { key: key.into(), problem: format!("cannot parse {raw:?}") })
        }
    }
}

fn millis(source: &dyn ConfigSource, key: &str, default: u64) -> Result<Duration, SettingError> {
    parsed(source, key, default).map(Duration::from_millis)
}

fn bucket(source: &dyn ConfigSource, key: &str, default: Bucket) -> Result<Bucket, SettingError> {
    source
        .get(key)
        .map_or(Ok(default), |raw| Bucket::parse(&raw).map_err(|problem| SettingError { key: key.into(), problem }))
}

fn switch(source: &dyn ConfigSource, key: &str) -> Result<bool, SettingError> {
    match source.get(key).as_deref().map(str::trim) {
        None | Some("on" | "true") => Ok(true),
        Some("off" | "false") => Ok(false),
        Some(other) => Err(SettingError { key: key.into(), problem: format!("{other:?} is not on or off") }),
    }
}

/// `queue_url_order_intake`, `dlq_url_inventory`, ...
pub fn queue_key(kind: &str, consumer: Consumer) -> String {
    format!("{kind}_url_{}", consumer.queue().replace('-', "_"))
}

/// How the components reach AWS (or an emulator).
#[derive(Clone, PartialEq, Eq)]
pub struct AwsSettings {
    pub region: String,
    /// `http://127.0.0.1:4566` for an emulator; unset for AWS itself.
    pub endpoint_url: Option<String>,
    pub access_key_id: String,
    pub secret_access_key: String,
    pub session_token: Option<String>,
}

impl std::fmt::Debug for AwsSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AwsSettings")
            .field("region", &self.region)
            .field("endpoint_url", &self.endpoint_url)
            .field("access_key_id", &self.access_key_id)
            .finish_non_exhaustive()
    }
}

/// Everything a component is configured with. Reading it makes no call.
#[derive(Debug, Clone)]
pub struct Settings {
    pub aws: AwsSettings,
    pub tables: DynamoConfig,
    pub queues: SqsConfig,
    pub auth: AuthSettings,
    /// Notification webhook (it carries the provider's key: a secret).
    pub notify_url: Option<String>,
    pub notify_timeout: Duration,
    pub breaker: BreakerPolicy,
    /// `None`: rate limiting is off.
    pub rate_limits: Option<RateLimitPolicy>,
}

#[derive(Clone, Default)]
pub struct AuthSettings {
    /// HS256 secret (development, or a shared secret).
    pub jwt_secret: Option<String>,
    /// RS256: the identity provider's JWKS, inline (no call per request)...
    pub jwks: Option<String>,
    /// ... or fetched from this URL by every new instance.
    pub jwks_url: Option<String>,
    pub audience: Option<String>,
    pub issuer: Option<String>,
}

impl std::fmt::Debug for AuthSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuthSettings")
            .field("jwt_secret", &self.jwt_secret.as_ref().map(|_| "<secret>"))
            .field("jwks_url", &self.jwks_url)
            .field("audience", &self.audience)
            .field("issuer", &self.issuer)
            .finish_non_exhaustive()
    }
}

impl Settings {
    pub fn load(source: &dyn ConfigSource) -> Result<Self, SettingError> {
        let required =
            |key: &str| source.get(key).ok_or_else(|| SettingError { key: key.into(), problem: "is not set".into() });
        let aws = AwsSettings {
            region: source.get("aws_region").unwrap_or_else(|| "us-east-1".into()),
            endpoint_url: source.get("aws_endpoint_url"),
            access_key_id: required("aws_access_key_id")?,
            secret_access_key: required("aws_secret_access_key")?,
            session_token: source.get("aws_session_token"),
        };
        let mut tables = DynamoConfig::with_prefix("orderly");
        for (kind, key) in [
            (TableKind::Orders, "table_orders"),
            (TableKind::Inventory, "table_inventory"),
            (TableKind::Notifications, "table_notifications"),
            (TableKind::Analytics, "table_analytics"),
        ] {
            if let Some(name) = source.get(key) {
                *table_mut(&mut tables, kind) = name;
            }
        }
        let mut queues = BTreeMap::new();
        for consumer in Consumer::ALL {
            // A component names only the queues it uses.
            if let (Some(url), Some(dead_letter_url)) =
                (source.get(&queue_key("queue", consumer)), source.get(&queue_key("dlq", consumer)))
            {
                queues.insert(consumer.queue().to_owned(), QueueUrls { url, dead_letter_url });
            }
        }
        let defaults = RateLimitPolicy::default();
        let rate_limits = if switch(source, "rate_limit")? {
            Some(RateLimitPolicy {
                anonymous_read: bucket(source, "rate_limit_anon_read", defaults.anonymous_read)?,
                anonymous_write: bucket(source, "rate_limit_anon_write", defaults.anonymous_write)?,
                authenticated_read: bucket(source, "rate_limit_auth_read", defaults.authenticated_read)?,
                authenticated_write: bucket(source, "rate_limit_auth_write", defaults.authenticated_write)?,
                routes: RateLimitPolicy::parse_routes(&source.get("rate_limit_routes").unwrap_or_default())
                    .map_err(|problem| SettingError { key: "rate_limit_routes".into(), problem })?,
                fail_open: source.get("rate_limit_fail").as_deref() != Some("closed"),
                ..defaults
            })
        } else {
            None
        };
        Ok(Self {
            aws,
            tables,
            queues: SqsConfig { queues, max_receives: parsed(source, "max_receives", 5)? },
            auth: AuthSettings {
                jwt_secret: source.get("jwt_secret"),
                jwks: source.get("jwks"),
                jwks_url: source.get("jwks_url"),
                audience: source.get("jwt_audience"),
                issuer: source.get("jwt_issuer"),
            },
            notify_url: source.get("notify_url"),
            notify_timeout: millis(source, "notify_timeout_ms", 2000)?,
            breaker: BreakerPolicy {
                failure_threshold: parsed(source, "breaker_threshold", 5u32)?.max(1),
                cool_down: millis(source, "breaker_cool_down_ms", 30_000)?,
                half_open_probes: parsed(source, "breaker_probes", 1u32)?.max(1),
            },
            rate_limits,
        })
    }
}

fn table_mut(tables: &mut DynamoConfig, kind: TableKind) -> &mut String {
    match kind {
        TableKind::Orders => &mut tables.orders_table,
        TableKind::Inventory => &mut tables.inventory_table,
        TableKind::Notifications => &mut tables.notifications_table,
        TableKind::Analytics => &mut tables.analytics_table,
    }
}

/// What a component is wired from: settings, SDK clients built by whoever
/// runs it (wasi:http inside a component, hyper in native tests), and the
/// notification provider that fits that host.
#[derive(Clone)]
pub struct Host {
    pub settings: Settings,
    pub dynamo: DynamoClient,
    pub sqs: SqsClient,
    provider: Arc<dyn NotificationProvider>,
    queues: Arc<SqsQueues>,
}

impl Host {
    pub fn new(
        settings: Settings,
        dynamo: DynamoClient,
        sqs: SqsClient,
        provider: Arc<dyn NotificationProvider>,
    ) -> Self {
        let queues = Arc::new(SqsQueues::new(sqs.clone(), settings.queues.clone()));
        Self { settings, dynamo, sqs, provider, queues }
    }

    pub fn tables(&self) -> &DynamoConfig {
        &self.settings.tables
    }

    /// Publisher, consumer side and admin of the queues this component names.
    pub fn queues(&self) -> Arc<SqsQueues> {
        self.queues.clone()
    }

    pub fn clock(&self) -> Arc<dyn Clock> {
        Arc::new(SystemClock)
    }

    pub fn ids(&self) -> Arc<dyn IdGenerator> {
        Arc::new(UuidV7Ids)
    }

    /// The provider behind its circuit breaker, whose state every instance
    /// shares in notification's table.
    pub fn breaker(&self) -> Arc<CircuitBreaker> {
        let store = Arc::new(DynamoResilience::new(self.dynamo.clone(), self.tables().notifications_table.clone()));
        Arc::new(CircuitBreaker::new(
            PROVIDER_BREAKER,
            self.provider.clone(),
            store,
            self.settings.breaker,
            self.clock(),
        ))
    }

    /// Rate limits with buckets in `kind`'s table (the serving function's
    /// own), or `None` when they are off.
    pub fn rate_limits(&self, kind: TableKind) -> Option<Arc<RateLimitLayer>> {
        let policy = self.settings.rate_limits.clone()?;
        let limiter = Arc::new(DynamoResilience::new(self.dynamo.clone(), self.tables().table(kind).to_owned()));
        Some(Arc::new(RateLimitLayer { limiter, policy, clock: self.clock() }))
    }

    /// `/health`: every table answers a read, the queues' depths, the breaker.
    pub fn health(&self) -> Arc<dyn HealthProbe> {
        Arc::new(SpinHealth { host: self.clone(), breaker: self.breaker() })
    }

    pub fn auth_config(&self) -> AuthConfig {
        let auth = &self.settings.auth;
        AuthConfig {
            hs256_secret: auth.jwt_secret.clone().map(String::into_bytes),
            jwks_json: auth.jwks.clone(),
            audience: auth.audience.clone(),
            issuer: auth.issuer.clone(),
            ..AuthConfig::default()
        }
    }
}

struct SpinHealth {
    host: Host,
    breaker: Arc<CircuitBreaker>,
}

#[async_trait]
impl HealthProbe for SpinHealth {
    async fn store_ok(&self) -> bool {
        let tables = self.host.tables();
        let reads = TableKind::ALL.map(|kind| {
            self.host
                .dynamo
                .get_item()
                .table_name(tables.table(kind))
                .key("pk", ping_key())
                .key("sk", ping_key())
                .send()
        });
        futures::future::join_all(reads).await.iter().all(Result::is_ok)
    }

    fn queues(&self) -> &dyn QueueAdmin {
        self.host.queues.as_ref()
    }

    fn provider(&self) -> &'static str {
        self.host.provider.name()
    }

    fn breaker(&self) -> &CircuitBreaker {
        &self.breaker
    }
}

fn ping_key() -> aws_sdk_dynamodb::types::AttributeValue {
    aws_sdk_dynamodb::types::AttributeValue::S("HEALTH#".into())
}

/// One queue message as a queue trigger hands it over.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueMessage {
    pub id: String,
    pub body: String,
    /// `ApproximateReceiveCount` (1 on the first delivery).
    pub receive_count: u32,
    /// The FIFO group (`MessageGroupId`), if any.
    pub group: Option<String>,
    pub sent_at: DateTime<Utc>,
}

impl QueueMessage {
    /// From the trigger's attributes (`ApproximateReceiveCount`,
    /// `MessageGroupId`, `SentTimestamp`: ask for them in `spin.toml`).
    pub fn from_attributes<'a>(
        id: Option<String>,
        body: Option<String>,
        attributes: impl IntoIterator<Item = (&'a str, &'a str)>,
    ) -> Self {
        let mut message = Self {
            id: id.unwrap_or_default(),
            body: body.unwrap_or_default(),
            receive_count: 1,
            group: None,
            sent_at: Utc::now(),
        };
        for (name, value) in attributes {
            match name {
                "ApproximateReceiveCount" => message.receive_count = value.parse().unwrap_or(1),
                "MessageGroupId" => message.group = Some(value.to_owned()),
                "SentTimestamp" => {
                    if let Some(at) = value.parse().ok().and_then(DateTime::from_timestamp_millis) {
                        message.sent_at = at;
                    }
                }
                _ => {}
            }
        }
        message
    }
}

/// What the queue trigger does with a message after the call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QueueAction {
    /// Handled, already handled, or of a type this consumer ignores.
    Delete,
    /// Failed: it comes back after the queue's visibility timeout, and SQS's
    /// redrive policy moves it to the dead-letter queue after
    /// `maxReceiveCount` deliveries.
    Leave,
}

/// What one function's component serves.
pub struct Component {
    name: &'static str,
    http: Option<(OpenApiRouter, TableKind)>,
    consumer: Option<Arc<dyn EventHandler>>,
    outbox: Option<Arc<dyn Outbox>>,
}

impl Component {
    pub fn new(name: &'static str) -> Self {
        Self { name, http: None, consumer: None, outbox: None }
    }

    pub fn name(&self) -> &'static str {
        self.name
    }

    /// Its routes, rate-limited with buckets in its own table `kind`.
    pub fn http(mut self, router: OpenApiRouter, kind: TableKind) -> Self {
        self.http = Some((router, kind));
        self
    }

    /// Its queue's handler.
    pub fn consumer(mut self, handler: Arc<dyn EventHandler>) -> Self {
        self.consumer = Some(handler);
        self
    }

    /// The outbox in its table.
    pub fn outbox(mut self, outbox: Arc<dyn Outbox>) -> Self {
        self.outbox = Some(outbox);
        self
    }

    /// The consumer's queue name, if it has one.
    pub fn queue(&self) -> Option<&'static str> {
        self.consumer.as_ref().map(|c| c.consumer().queue())
    }

    /// One delivery: handled (or known to be a duplicate, or of an unknown
    /// type) is `Delete`; a failure is `Leave`. Idempotent handlers make a
    /// redelivery after a lost delete harmless.
    pub async fn handle_message(&self, host: &Host, message: &QueueMessage) -> QueueAction {
        let Some(handler) = &self.consumer else {
            tracing::error!(function = self.name, "a queue message for a component with no consumer: left");
            return QueueAction::Leave;
        };
        let received = SqsQueues::delivery(
            &message.id,
            "",
            &message.body,
            message.receive_count,
            message.group.as_deref(),
            message.sent_at,
        );
        let max = host.settings.queues.max_receives;
        let outcomes = process_batch(handler.as_ref(), std::slice::from_ref(&received), max).await;
        match outcomes.first().map(|o| &o.outcome) {
            Some(Outcome::Done | Outcome::Ignored { .. }) => QueueAction::Delete,
            Some(Outcome::Failed { .. }) | None => QueueAction::Leave,
        }
    }

    /// Publishes what waits in the outbox until it is empty (or `budget` is
    /// spent); returns how many events went out. Two relays running at once
    /// publish some events twice: the FIFO queues' deduplication id and the
    /// consumers' processed marks absorb that.
    pub async fn relay(&self, host: &Host, budget: Duration) -> Result<usize, RelayError> {
        let Some(outbox) = &self.outbox else {
            return Ok(0);
        };
        let started = std::time::Instant::now();
        let mut relay = Relay::new(outbox.clone(), host.queues());
        let mut total = 0;
        loop {
            let published = relay.relay_once(100).await?;
            total += published;
            // The empty round is the one that removes the last batch; past
            // the budget that batch stays for the next run to publish again.
            if published == 0 || started.elapsed() > budget {
                return Ok(total);
            }
        }
    }

    /// The served API: the function's routes behind the shared edge.
    pub fn router(self, host: &Host, authenticator: Arc<crate::http::Authenticator>) -> Result<axum::Router, String> {
        let (api, kind) = self.http.ok_or_else(|| format!("{} serves no HTTP routes", self.name))?;
        let (router, _) = super::api_router(api, authenticator, host.rate_limits(kind)).map_err(|e| e.to_string())?;
        Ok(router)
    }
}

#[cfg(target_arch = "wasm32")]
pub use component::{block_on, host, on_cron, on_message, serve};

/// A function's Spin entry points, each compiled only into the component
/// built with its feature (`cargo rustc --crate-type cdylib --target
/// wasm32-wasip2 --features spin-http|spin-queue|spin-relay`):
/// `shared::spin_entry_points!(wire);` with `wire: fn(&Host) -> Component`.
#[macro_export]
macro_rules! spin_entry_points {
    ($wire:ident) => {
        /// The HTTP trigger (WASI 0.2 `incoming-handler`): Spin, `wasmtime serve`, jco.
        #[cfg(all(target_arch = "wasm32", feature = "spin-http"))]
        #[::spin_sdk::http_component]
        fn __orderly_http(request: ::axum::http::Request<Vec<u8>>) -> ::axum::http::Response<Vec<u8>> {
            $crate::hosts::spin::serve(request, $wire)
        }

        #[cfg(all(target_arch = "wasm32", feature = "spin-queue"))]
        $crate::spin_queue_export!($wire);

        #[cfg(all(target_arch = "wasm32", feature = "spin-relay"))]
        $crate::spin_relay_export!($wire);
    };
}

/// The spin-trigger-sqs export (`spin:sqs@3.0.0`, `handle-queue-message`)
/// of a function's queue component: `shared::spin_queue_export!(wire);`
/// with `wire: fn(&Host) -> Component`. One message per call, answered
/// delete or leave (see [`Component::handle_message`]).
#[macro_export]
macro_rules! spin_queue_export {
    ($wire:ident) => {
        // wit-bindgen's generated glue is not ours to lint.
        #[allow(clippy::all)]
        mod __orderly_spin_queue {
            ::spin_sdk::wit_bindgen::generate!({
                inline: r#"
                    package spin:sqs@3.0.0;
                    interface sqs-types {
                        variant message-attribute-value { str(string), binary(list<u8>) }
                        record message-attribute { name: string, data-type: option<string>, value: message-attribute-value }
                        record message { id: option<string>, message-attributes: list<message-attribute>, body: option<string> }
                        variant error { other(string) }
                        enum message-action { delete, leave }
                    }
                    world spin-sqs {
                        use sqs-types.{message, message-action, error};
                        export handle-queue-message: async func(message: message) -> result<message-action, error>;
                    }
                "#,
                world: "spin-sqs",
                runtime_path: "::spin_sdk::wit_bindgen::rt",
            });

            use spin::sqs::sqs_types::MessageAttributeValue;

            struct Queue;

            impl Guest for Queue {
                async fn handle_queue_message(message: Message) -> Result<MessageAction, Error> {
                    let attributes: Vec<(String, String)> = message
                        .message_attributes
                        .into_iter()
                        .filter_map(|a| match a.value {
                            MessageAttributeValue::Str(value) => Some((a.name, value)),
                            MessageAttributeValue::Binary(_) => None,
                        })
                        .collect();
                    let message = $crate::hosts::spin::QueueMessage::from_attributes(
                        message.id,
                        message.body,
                        attributes.iter().map(|(n, v)| (n.as_str(), v.as_str())),
                    );
                    match $crate::hosts::spin::on_message(&message, super::$wire) {
                        Ok($crate::hosts::spin::QueueAction::Delete) => Ok(MessageAction::Delete),
                        Ok($crate::hosts::spin::QueueAction::Leave) => Ok(MessageAction::Leave),
                        Err(error) => Err(Error::Other(error)),
                    }
                }
            }

            export!(Queue);
        }
    };
}

/// The spin-trigger-cron export (`spin:cron@3.0.0`, `handle-cron-event`) of
/// a function's relay component: `shared::spin_relay_export!(wire);`.
#[macro_export]
macro_rules! spin_relay_export {
    ($wire:ident) => {
        #[allow(clippy::all)]
        mod __orderly_spin_relay {
            ::spin_sdk::wit_bindgen::generate!({
                inline: r#"
                    package spin:cron@3.0.0;
                    interface cron-types {
                        record metadata { timestamp: u64 }
                        variant error { other(string) }
                    }
                    world spin-cron {
                        use cron-types.{metadata, error};
                        export handle-cron-event: async func(metadata: metadata) -> result<_, error>;
                    }
                "#,
                world: "spin-cron",
                runtime_path: "::spin_sdk::wit_bindgen::rt",
            });

            struct Relay;

            impl Guest for Relay {
                async fn handle_cron_event(_metadata: Metadata) -> Result<(), Error> {
                    $crate::hosts::spin::on_cron(super::$wire).map_err(Error::Other)
                }
            }

            export!(Relay);
        }
    };
}

/// What only exists inside a component: the wasi:http clients and the
/// request handler.
#[cfg(target_arch = "wasm32")]
mod component {
    use std::sync::Arc;

    use async_trait::async_trait;
    use aws_smithy_wasm::wasi::{WasiHttpClientBuilder, WasiSleep};
    use axum::body::Body;
    use axum::http::{HeaderValue, Request, Response, StatusCode, header};
    use axum::response::IntoResponse;
    use http_body_util::BodyExt;
    use tower::ServiceExt;

    use super::{Component, Host, Settings, config_source};
    use crate::adapters::log_provider::LogProvider;
    use crate::http::{ApiError, Authenticator, ClientIp};
    use crate::ports::{Notification, NotificationProvider, ProviderError};

    /// Runs `future` to completion on the wasi:io reactor the SDK's HTTP
    /// client needs (whatever executor called the export).
    pub fn block_on<F: std::future::Future>(future: F) -> F::Output {
        wstd::runtime::block_on(future)
    }

    /// The host of this instance: settings from this build's source, SDK
    /// clients over wasi:http, the webhook (or the log) as provider.
    pub fn host() -> Result<Host, String> {
        let settings = Settings::load(config_source().as_ref()).map_err(|e| e.to_string())?;
        let aws = &settings.aws;
        let credentials = aws_sdk_dynamodb::config::Credentials::new(
            aws.access_key_id.clone(),
            aws.secret_access_key.clone(),
            aws.session_token.clone(),
            None,
            "orderly-settings",
        );
        let http = WasiHttpClientBuilder::new().build();
        let sleep = aws_smithy_async::rt::sleep::SharedAsyncSleep::new(WasiSleep);
        let region = aws_sdk_dynamodb::config::Region::new(aws.region.clone());
        let mut dynamo = aws_sdk_dynamodb::Config::builder()
            .behavior_version(aws_sdk_dynamodb::config::BehaviorVersion::latest())
            .region(region.clone())
            .credentials_provider(credentials.clone())
            .http_client(http.clone())
            .sleep_impl(sleep.clone());
        let mut sqs = aws_sdk_sqs::Config::builder()
            .behavior_version(aws_sdk_sqs::config::BehaviorVersion::latest())
            .region(region)
            .credentials_provider(credentials)
            .http_client(http)
            .sleep_impl(sleep);
        if let Some(endpoint) = &aws.endpoint_url {
            dynamo = dynamo.endpoint_url(endpoint);
            sqs = sqs.endpoint_url(endpoint);
        }
        let provider: Arc<dyn NotificationProvider> = match &settings.notify_url {
            Some(url) => Arc::new(WasiWebhook { url: url.clone(), timeout: settings.notify_timeout }),
            None => Arc::new(LogProvider),
        };
        Ok(Host::new(
            settings,
            aws_sdk_dynamodb::Client::from_conf(dynamo.build()),
            aws_sdk_sqs::Client::from_conf(sqs.build()),
            provider,
        ))
    }

    /// The body of the queue export: wires the component and handles one message.
    pub fn on_message(
        message: &super::QueueMessage,
        wire: fn(&Host) -> Component,
    ) -> Result<super::QueueAction, String> {
        let host = host()?;
        Ok(block_on(wire(&host).handle_message(&host, message)))
    }

    /// The body of the cron export: relays the component's outbox, for at
    /// most half a minute (cron runs again soon after).
    pub fn on_cron(wire: fn(&Host) -> Component) -> Result<(), String> {
        let host = host()?;
        let component = wire(&host);
        let published =
            block_on(component.relay(&host, std::time::Duration::from_secs(30))).map_err(|e| e.to_string())?;
        if published > 0 {
            tracing::info!(function = component.name(), published, "outbox relayed");
        }
        Ok(())
    }

    /// The body of an `#[http_component]`: wires the component, verifies
    /// nothing itself, and answers through the shared edge. A component
    /// that cannot start answers a bare 500 problem (details on stderr).
    pub fn serve(request: axum::http::Request<Vec<u8>>, wire: fn(&Host) -> Component) -> axum::http::Response<Vec<u8>> {
        block_on(async move {
            match answer(request, wire).await {
                Ok(response) => response,
                Err(error) => {
                    eprintln!("orderly: the component could not start: {error}");
                    let response = ApiError::Internal("the service is misconfigured".into()).into_response();
                    collect(response).await
                }
            }
        })
    }

    async fn answer(request: Request<Vec<u8>>, wire: fn(&Host) -> Component) -> Result<Response<Vec<u8>>, String> {
        let host = host()?;
        let mut auth = host.auth_config();
        if auth.hs256_secret.is_none()
            && auth.jwks_json.is_none()
            && let Some(url) = &host.settings.auth.jwks_url
        {
            auth.jwks_json = Some(fetch(url).await?);
        }
        let authenticator = Authenticator::shared(&auth).map_err(|e| e.to_string())?;
        let router = wire(&host).router(&host, authenticator)?;
        let (mut parts, body) = request.into_parts();
        // Spin puts the caller's address here (anonymous rate limits key on it).
        if let Some(ip) = parts
            .headers
            .get_all("spin-client-addr")
            .iter()
            .next_back()
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<std::net::SocketAddr>().ok())
        {
            parts.extensions.insert(ClientIp(ip.ip()));
        }
        // Spin hands over the full URL; the router matches on the path.
        if parts.uri.authority().is_some()
            && let Some(path) = parts.uri.path_and_query()
        {
            parts.uri = path.as_str().parse().map_err(|e| format!("request URI: {e}"))?;
        }
        let response =
            router.oneshot(Request::from_parts(parts, Body::from(body))).await.unwrap_or_else(|never| match never {});
        Ok(collect(response).await)
    }

    async fn collect(response: axum::response::Response) -> Response<Vec<u8>> {
        let (parts, body) = response.into_parts();
        match body.collect().await {
            Ok(bytes) => Response::from_parts(parts, bytes.to_bytes().to_vec()),
            Err(_) => {
                let mut failed = Response::new(Vec::new());
                *failed.status_mut() = StatusCode::INTERNAL_SERVER_ERROR;
                failed
            }
        }
    }

    async fn fetch(url: &str) -> Result<String, String> {
        let request = wstd::http::Request::get(url).body(()).map_err(|e| e.to_string())?;
        let response = wstd::http::Client::new().send(request).await.map_err(|e| format!("fetching the JWKS: {e}"))?;
        if !response.status().is_success() {
            return Err(format!("fetching the JWKS: {}", response.status()));
        }
        response.into_body().str_contents().await.map(str::to_owned).map_err(|e| e.to_string())
    }

    /// The notification webhook over wasi:http. The host decides which
    /// addresses may be reached (`allowed_outbound_hosts` in `spin.toml`), so
    /// unlike the native webhook there is no resolver-level SSRF guard here.
    struct WasiWebhook {
        url: String,
        timeout: std::time::Duration,
    }

    #[async_trait]
    impl NotificationProvider for WasiWebhook {
        fn name(&self) -> &'static str {
            "webhook"
        }

        async fn send(&self, notification: &Notification) -> Result<(), ProviderError> {
            let body = serde_json::to_vec(notification).map_err(|e| ProviderError::Unreachable(e.to_string()))?;
            let request = wstd::http::Request::post(&self.url)
                .header(header::CONTENT_TYPE, HeaderValue::from_static("application/json"))
                .header("idempotency-key", notification.id.to_string())
                .body(body)
                .map_err(|_| ProviderError::Unreachable("invalid webhook URL".into()))?;
            let mut client = wstd::http::Client::new();
            client.set_connect_timeout(self.timeout);
            client.set_first_byte_timeout(self.timeout);
            let send = client.send(request);
            let response = match wstd::future::FutureExt::timeout(send, wstd::time::Duration::from(self.timeout)).await
            {
                Err(_) => return Err(ProviderError::Timeout),
                // Without the URL: it may hold a token.
                Ok(Err(_)) => return Err(ProviderError::Unreachable("request failed".into())),
                Ok(Ok(response)) => response,
            };
            let status = response.status();
            if status.is_success() { Ok(()) } else { Err(ProviderError::Rejected(status.as_u16())) }
        }
    }
}
