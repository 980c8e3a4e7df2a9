//! # Composition: one wiring per function, on every host
//!
//! A function is assembled the same way wherever it runs. Its crate has one
//! `wire(&Arc<dyn Backend>) -> Function`: use cases over the ports a
//! [`Backend`] hands out, its routes, its queue handler, its outbox. A host
//! only chooses the backend and says how triggers reach the [`Function`]:
//!
//! ```text
//!   ports (traits, here)  ◄── adapters (SQLite + local queues │ DynamoDB + SQS)
//!          ▲                         │ assembled into
//!          │                      Backend
//!   use cases ◄── wire(&backend) ──┘
//!          │
//!       Function ──► hosts: the runner (all four in one process),
//!                           Lambda (one binary per function),
//!                           Spin (one component per function and trigger)
//! ```
//!
//! What every function shares is built here, once: the provider's circuit
//! breaker ([`breaker`]: one name, one policy, state in the backend's store
//! so every instance sees it), the rate limits ([`rate_limits`]) and the
//! health report ([`health`]). The settings they read are the one model of
//! [`crate::settings`].

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;

use crate::events::routing::Consumer;
use crate::health::HealthProbe;
use crate::http::{ApiRoutes, Authenticator, KeyConfig, KeyKind, RateLimitLayer};
use crate::messaging::{EventHandler, Relay, RelayError};
use crate::ports::{
    BreakerStore, Cache, Clock, EventPublisher, IdGenerator, InventoryStore, NotificationLog, NotificationProvider,
    OrderStore, Outbox, PaymentGateway, PriceList, ProcessedEvents, QueueAdmin, RateLimiter, ReadModelStore,
    SecretFetcher, SystemClock, Timer, UuidV7Ids,
};
use crate::resilience::breaker::{CircuitBreaker, Guarded};
use crate::settings::Settings;

/// The name under which the notification provider's breaker state is shared
/// by every instance on every host.
pub const PROVIDER_BREAKER: &str = "notification-provider";

/// The payment gateway's breaker, likewise.
pub const PAYMENT_BREAKER: &str = "payment-gateway";

/// The ports as one storage and messaging technology provides them. Each
/// function's data lives with its owner (`owner`: whose table or schema), so
/// functions stay independently deployable on the AWS hosts; on the runner
/// one SQLite database holds them all. Handing a port out makes no call.
#[async_trait]
pub trait Backend: Send + Sync {
    fn settings(&self) -> &Settings;

    fn clock(&self) -> Arc<dyn Clock> {
        Arc::new(SystemClock)
    }

    fn ids(&self) -> Arc<dyn IdGenerator> {
        Arc::new(UuidV7Ids)
    }

    /// order-intake's orders, idempotency claims and outbox.
    fn orders(&self) -> Arc<dyn OrderStore>;
    /// Prices, read by order-intake from inventory's catalog.
    fn prices(&self) -> Arc<dyn PriceList>;
    /// inventory's products, stock and reservations.
    fn inventory(&self) -> Arc<dyn InventoryStore>;
    /// notification's log.
    fn notifications(&self) -> Arc<dyn NotificationLog>;
    /// analytics' read models.
    fn read_models(&self) -> Arc<dyn ReadModelStore>;
    /// `owner`'s processed-event marks, in its own store (written in the same
    /// atomic write as the effect they mark).
    fn processed(&self, owner: Consumer) -> Arc<dyn ProcessedEvents>;
    /// order-intake's outbox (its events wait there, written with its orders).
    fn order_outbox(&self) -> Arc<dyn Outbox>;
    /// inventory's outbox.
    fn inventory_outbox(&self) -> Arc<dyn Outbox>;
    /// Publishes to every subscriber's queue (the relay's far side).
    fn publisher(&self) -> Arc<dyn EventPublisher>;
    /// Depths and dead letters of the queues, for `/health` and operators.
    fn queue_admin(&self) -> Arc<dyn QueueAdmin>;
    /// The notification provider itself (the composition wraps it in the
    /// shared [`breaker`]).
    fn provider(&self) -> Arc<dyn NotificationProvider>;
    /// Waiting, on this host's runtime (deadlines on calls).
    fn timer(&self) -> Arc<dyn Timer>;
    /// The card payment gateway, when one is configured (the composition
    /// wraps it in its own breaker); `None`: offline payments only.
    fn payment_gateway(&self) -> Option<Arc<dyn PaymentGateway>>;
    /// Where breakers keep their shared state.
    fn breaker_store(&self) -> Arc<dyn BreakerStore>;
    /// Token buckets of the function `owner`, in its own store.
    fn rate_limiter(&self, owner: Consumer) -> Arc<dyn RateLimiter>;
    /// An in-process cache, where instances live long enough for one to pay.
    fn cache(&self) -> Option<Arc<dyn Cache>> {
        None
    }
    /// Whether the store answers at all (for `/health`).
    async fn store_ok(&self) -> bool;
}

/// The notification provider's circuit breaker (its state, shared by every
/// instance).
pub fn breaker(backend: &dyn Backend) -> Arc<CircuitBreaker> {
    Arc::new(CircuitBreaker::new(
        PROVIDER_BREAKER,
        backend.breaker_store(),
        backend.settings().breaker_policy(),
        backend.clock(),
    ))
}

/// The notification provider behind its circuit breaker.
pub fn notification_provider(backend: &dyn Backend) -> Arc<dyn NotificationProvider> {
    Arc::new(Guarded::new(breaker(backend), backend.provider()))
}

/// The payment gateway's circuit breaker: its own state and policy, in the
/// same store and machinery as the provider's.
pub fn payment_breaker(backend: &dyn Backend) -> Arc<CircuitBreaker> {
    Arc::new(CircuitBreaker::new(
        PAYMENT_BREAKER,
        backend.breaker_store(),
        backend.settings().payment_breaker_policy(),
        backend.clock(),
    ))
}

/// The payment gateway behind its circuit breaker, if one is configured.
pub fn payment_gateway(backend: &dyn Backend) -> Option<Arc<dyn PaymentGateway>> {
    let gateway = backend.payment_gateway()?;
    Some(Arc::new(Guarded::new(payment_breaker(backend), gateway)))
}

/// The rate limits of `owner`'s routes, or `None` when they are off.
pub fn rate_limits(backend: &dyn Backend, owner: Consumer) -> Option<Arc<RateLimitLayer>> {
    let policy = backend.settings().rate_limit_policy()?;
    Some(Arc::new(RateLimitLayer { limiter: backend.rate_limiter(owner), policy, clock: backend.clock() }))
}

/// The token verifier: the settings' policy (audience, issuer) over the
/// keys the host chose ([`keys`], or keys it fetches itself).
pub fn authenticator(settings: &Settings, keys: KeyConfig) -> Result<Arc<Authenticator>, String> {
    Authenticator::shared(&settings.auth_config(keys)).map_err(|e| e.to_string())
}

/// Where the token keys come from. Every host follows one order, so that
/// the same settings verify the same tokens everywhere: a JWKS (inline,
/// then a URL) before an HS256 secret (inline, then a secrets-store
/// parameter, which only Lambda reads). The runner also reads a JWKS file
/// (`jwks_file`, its own setting) before all of these.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeySource<'a> {
    Jwks(&'a str),
    JwksUrl(&'a str),
    Secret(&'a str),
    SecretParameter(&'a str),
    None,
}

pub fn key_source(settings: &Settings) -> KeySource<'_> {
    if let Some(jwks) = &settings.jwks {
        KeySource::Jwks(jwks)
    } else if let Some(url) = &settings.jwks_url {
        KeySource::JwksUrl(url)
    } else if let Some(secret) = &settings.jwt_secret {
        KeySource::Secret(secret)
    } else if let Some(name) = &settings.jwt_secret_parameter {
        KeySource::SecretParameter(name)
    } else {
        KeySource::None
    }
}

/// The keys when [`key_source`] gives them inline: a JWKS, or HS256
/// (`jwt_secret`, then the previous ones).
pub fn inline_keys(settings: &Settings) -> Option<KeyConfig> {
    match key_source(settings) {
        KeySource::Jwks(jwks) => Some(KeyConfig::Jwks(jwks.to_owned())),
        KeySource::Secret(secret) => Some(KeyConfig::Hs256(settings.hs256_secrets(secret.as_bytes()))),
        _ => None,
    }
}

/// Keys a host fetches (a JWKS URL, a secrets store), kept by the settings'
/// refresh policy for that kind (`jwks_max_age`, `secret_max_age`).
pub fn fetched_keys(
    settings: &Settings,
    fetcher: Arc<dyn SecretFetcher>,
    kind: KeyKind,
    clock: Arc<dyn Clock>,
) -> KeyConfig {
    let policy = match kind {
        KeyKind::Jwks => settings.jwks_refresh(),
        KeyKind::Hs256Secrets => settings.secret_refresh(),
    };
    KeyConfig::Fetched { fetcher, kind, policy, clock }
}

/// `/health` over a backend: its store, its queues, the provider's breaker
/// (whose state every instance reads from the store).
pub fn health(backend: Arc<dyn Backend>) -> Arc<dyn HealthProbe> {
    let breaker = breaker(backend.as_ref());
    let queues = backend.queue_admin();
    let provider = backend.provider().name();
    let payment_breaker = backend.payment_gateway().map(|_| payment_breaker(backend.as_ref()));
    Arc::new(BackendHealth { backend, queues, provider, breaker, payment_breaker })
}

struct BackendHealth {
    backend: Arc<dyn Backend>,
    queues: Arc<dyn QueueAdmin>,
    provider: &'static str,
    breaker: Arc<CircuitBreaker>,
    payment_breaker: Option<Arc<CircuitBreaker>>,
}

#[async_trait]
impl HealthProbe for BackendHealth {
    async fn store_ok(&self) -> bool {
        self.backend.store_ok().await
    }

    fn queues(&self) -> &dyn QueueAdmin {
        self.queues.as_ref()
    }

    fn provider(&self) -> &'static str {
        self.provider
    }

    fn breaker(&self) -> &CircuitBreaker {
        &self.breaker
    }

    fn payment_breaker(&self) -> Option<&CircuitBreaker> {
        self.payment_breaker.as_deref()
    }
}

/// What one function serves, whichever host runs it: its routes, its
/// queue's handler, its outbox.
pub struct Function {
    name: &'static str,
    owner: Consumer,
    routes: Option<ApiRoutes>,
    consumer: Option<Arc<dyn EventHandler>>,
    outbox: Option<Arc<dyn Outbox>>,
}

impl Function {
    /// `owner`: whose store keeps this function's data (and rate-limit buckets).
    pub fn new(name: &'static str, owner: Consumer) -> Self {
        Self { name, owner, routes: None, consumer: None, outbox: None }
    }

    pub fn name(&self) -> &'static str {
        self.name
    }

    pub fn owner(&self) -> Consumer {
        self.owner
    }

    /// Its HTTP routes.
    pub fn routes(mut self, routes: ApiRoutes) -> Self {
        self.routes = Some(routes);
        self
    }

    /// Its queue's handler.
    pub fn consumer(mut self, handler: Arc<dyn EventHandler>) -> Self {
        self.consumer = Some(handler);
        self
    }

    /// Its outbox.
    pub fn outbox(mut self, outbox: Arc<dyn Outbox>) -> Self {
        self.outbox = Some(outbox);
        self
    }

    /// Its routes, if it serves HTTP.
    pub fn api(&self) -> Option<ApiRoutes> {
        self.routes.clone()
    }

    /// The consumer's queue name, if it has one.
    pub fn queue(&self) -> Option<&'static str> {
        self.consumer.as_ref().map(|c| c.consumer().queue())
    }

    /// Its queue's handler, if it consumes one.
    pub fn handler(&self) -> Option<&Arc<dyn EventHandler>> {
        self.consumer.as_ref()
    }

    /// Its outbox, if it has one.
    pub fn outbox_store(&self) -> Option<&Arc<dyn Outbox>> {
        self.outbox.as_ref()
    }

    /// Publishes what waits in the outbox until it is empty (or `budget` is
    /// spent); returns how many events went out. Two relays running at once
    /// publish some events twice: the FIFO queues' deduplication id and the
    /// consumers' processed marks absorb that.
    pub async fn relay(&self, publisher: Arc<dyn EventPublisher>, budget: Duration) -> Result<usize, RelayError> {
        let Some(outbox) = &self.outbox else {
            return Ok(0);
        };
        let started = std::time::Instant::now();
        let mut relay = Relay::new(outbox.clone(), publisher);
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

    /// The served API: the function's routes behind the shared edge, rate
    /// limited with buckets in its own store.
    pub fn router(&self, backend: &dyn Backend, authenticator: Arc<Authenticator>) -> Result<axum::Router, String> {
        let api = self.api().ok_or_else(|| format!("{} serves no HTTP routes", self.name))?;
        Ok(crate::edge::api_router(api, authenticator, rate_limits(backend, self.owner), &backend.settings().edge))
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    fn settings(pairs: &[(&str, &str)]) -> Settings {
        let source: BTreeMap<String, String> = pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect();
        Settings::load(&source).unwrap()
    }

    #[test]
    fn every_host_takes_a_jwks_before_a_secret_and_a_secret_before_its_parameter() {
        let secret = ("jwt_secret", "a-secret-of-at-least-thirty-two-bytes!!");
        let url = ("jwks_url", "https://idp.example/jwks.json");
        assert_eq!(key_source(&settings(&[secret, url])), KeySource::JwksUrl(url.1));
        assert_eq!(key_source(&settings(&[secret, ("jwks", "{\"keys\":[]}")])), KeySource::Jwks("{\"keys\":[]}"));
        assert_eq!(
            key_source(&settings(&[secret, ("jwt_secret_parameter", "/orderly/jwt")])),
            KeySource::Secret(secret.1)
        );
        assert_eq!(
            key_source(&settings(&[("jwt_secret_parameter", "/orderly/jwt")])),
            KeySource::SecretParameter("/orderly/jwt")
        );
        assert_eq!(key_source(&settings(&[])), KeySource::None);
        assert!(inline_keys(&settings(&[secret, url])).is_none(), "the JWKS is fetched, the secret unused");
    }
}
