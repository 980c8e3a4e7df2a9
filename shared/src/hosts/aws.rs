//! The wiring both AWS-backed hosts share: Lambda and Spin run the same
//! functions on the same DynamoDB tables and SQS queues, so what a function
//! is made of is written once, here and in each function crate's `aws`
//! module (`wire(&Host) -> Function`).
//!
//! - [`Settings`] come through the [`ConfigSource`] port: the process
//!   environment (`ORDERLY_*`: Lambda, `wasmtime serve --env`, tests) or
//!   Spin variables. Reading them makes no call.
//! - [`Host`] holds the SDK clients, built by the host that runs the
//!   function (aws-config on Lambda, wasi:http inside a component), and
//!   hands out what every function needs: queues, clock, ids, the provider
//!   behind a circuit breaker whose state all instances share in DynamoDB,
//!   rate limits whose buckets live in DynamoDB, the health probe.
//! - [`Function`] is what one function serves: routes, a queue handler, an
//!   outbox. The hosts differ only in how a trigger reaches it
//!   (`super::lambda`, `super::spin`).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_dynamodb::Client as DynamoClient;
use aws_sdk_sqs::Client as SqsClient;
use utoipa_axum::router::OpenApiRouter;

use super::health::HealthProbe;
use crate::adapters::dynamo::{DynamoConfig, DynamoResilience, TableKind, ping};
use crate::adapters::sqs::{QueueUrls, SqsConfig, SqsQueues};
use crate::events::routing::Consumer;
use crate::http::{AuthConfig, RateLimitLayer, RateLimitPolicy};
use crate::messaging::{Backoff, EventHandler, Relay, RelayError};
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
    /// Static credentials (a Spin component has no other source); unset on
    /// Lambda, whose role's credentials the SDK finds in the environment.
    pub access_key_id: Option<String>,
    pub secret_access_key: Option<String>,
    pub session_token: Option<String>,
}

impl AwsSettings {
    /// The static credentials these settings carry, if both halves are set.
    pub fn credentials(&self) -> Option<aws_sdk_dynamodb::config::Credentials> {
        let (id, secret) = (self.access_key_id.as_ref()?, self.secret_access_key.as_ref()?);
        Some(aws_sdk_dynamodb::config::Credentials::new(
            id,
            secret,
            self.session_token.clone(),
            None,
            "orderly-settings",
        ))
    }
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
    /// When a failed message comes back (Lambda sets its visibility; a Spin
    /// queue trigger leaves it to the queue's visibility timeout).
    pub backoff: Backoff,
    pub auth: AuthSettings,
    /// Notification webhook (it carries the provider's key: a secret)...
    pub notify_url: Option<String>,
    /// ... or the name of the SSM SecureString holding it (Lambda), read on
    /// the first send.
    pub notify_url_parameter: Option<String>,
    pub notify_timeout: Duration,
    pub breaker: BreakerPolicy,
    /// `None`: rate limiting is off.
    pub rate_limits: Option<RateLimitPolicy>,
}

#[derive(Clone, Default)]
pub struct AuthSettings {
    /// HS256 secret (development, or a shared secret)...
    pub jwt_secret: Option<String>,
    /// ... or the name of the SSM SecureString holding it (Lambda), read by
    /// an instance's first HTTP request, not at its cold start.
    pub jwt_secret_parameter: Option<String>,
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
            .field("jwt_secret_parameter", &self.jwt_secret_parameter)
            .field("jwks_url", &self.jwks_url)
            .field("audience", &self.audience)
            .field("issuer", &self.issuer)
            .finish_non_exhaustive()
    }
}

impl Settings {
    pub fn load(source: &dyn ConfigSource) -> Result<Self, SettingError> {
        let aws = AwsSettings {
            region: source.get("aws_region").unwrap_or_else(|| "us-east-1".into()),
            endpoint_url: source.get("aws_endpoint_url"),
            access_key_id: source.get("aws_access_key_id"),
            secret_access_key: source.get("aws_secret_access_key"),
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
                *tables.table_mut(kind) = name;
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
            backoff: Backoff {
                base: millis(source, "retry_base_ms", 1000)?,
                max: millis(source, "retry_max_ms", 60_000)?,
            },
            auth: AuthSettings {
                jwt_secret: source.get("jwt_secret"),
                jwt_secret_parameter: source.get("jwt_secret_parameter"),
                jwks: source.get("jwks"),
                jwks_url: source.get("jwks_url"),
                audience: source.get("jwt_audience"),
                issuer: source.get("jwt_issuer"),
            },
            notify_url: source.get("notify_url"),
            notify_url_parameter: source.get("notify_url_parameter"),
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

/// What a function is wired from: settings, SDK clients built by whoever
/// runs it (wasi:http inside a Spin component, hyper on Lambda and in native
/// tests), and the notification provider that fits that host.
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
        Arc::new(AwsHealth { host: self.clone(), breaker: self.breaker() })
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

struct AwsHealth {
    host: Host,
    breaker: Arc<CircuitBreaker>,
}

#[async_trait]
impl HealthProbe for AwsHealth {
    async fn store_ok(&self) -> bool {
        let pings = TableKind::ALL.map(|kind| ping(&self.host.dynamo, self.host.tables().table(kind)));
        futures::future::join_all(pings).await.iter().all(Result::is_ok)
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

/// What one function serves, whichever host runs it: its routes, its
/// queue's handler, the outbox in its table.
pub struct Function {
    name: &'static str,
    http: Option<(OpenApiRouter, TableKind)>,
    consumer: Option<Arc<dyn EventHandler>>,
    outbox: Option<Arc<dyn Outbox>>,
}

impl Function {
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

    /// Its queue's handler, if it consumes one.
    pub fn handler(&self) -> Option<&Arc<dyn EventHandler>> {
        self.consumer.as_ref()
    }

    /// The outbox in its table, if it has one.
    pub fn outbox_store(&self) -> Option<&Arc<dyn Outbox>> {
        self.outbox.as_ref()
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
    pub fn router(&self, host: &Host, authenticator: Arc<crate::http::Authenticator>) -> Result<axum::Router, String> {
        let (api, kind) = self.http.clone().ok_or_else(|| format!("{} serves no HTTP routes", self.name))?;
        let (router, _) = super::api_router(api, authenticator, host.rate_limits(kind)).map_err(|e| e.to_string())?;
        Ok(router)
    }
}
