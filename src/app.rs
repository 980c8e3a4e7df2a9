//! Wiring: adapters into use cases, use cases into routers and consumers.

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context;
use axum::Router;
use axum::response::{IntoResponse, Response};
use shared::adapters::log_provider::LogProvider;
use shared::adapters::memory_cache::MemoryCache;
use shared::adapters::sqlite::{DbOptions, QueueSettings, SqliteStore, Synchronous};
use shared::adapters::webhook::WebhookProvider;
use shared::api::ApiDoc;
use shared::events::EventFactory;
use shared::http::{ApiError, AuthConfig, Authenticator, ClientIp, RateLimitLayer, RateLimitPolicy};
use shared::messaging::EventHandler;
use shared::ports::{
    Cache, Clock, IdGenerator, NotificationLog, NotificationProvider, ReadModelStore, SystemClock, UuidV7Ids,
};
use shared::resilience::breaker::{BreakerPolicy, CircuitBreaker};
use tokio::net::TcpListener;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tower_http::catch_panic::CatchPanicLayer;
use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;

use crate::config::{Config, FailMode, Switch, SyncMode};
use crate::health::HealthState;
use crate::secret::{self, SecretSource};
use crate::workers;

/// Everything the runner serves and runs, built but not yet started.
pub struct App {
    pub router: Router,
    pub openapi: utoipa::openapi::OpenApi,
    pub store: SqliteStore,
    pub breaker: Arc<CircuitBreaker>,
    consumers: Vec<Arc<dyn EventHandler>>,
    config: Config,
}

/// The name under which the provider's breaker state is shared.
pub const PROVIDER_BREAKER: &str = "notification-provider";

impl App {
    pub async fn build(config: Config) -> anyhow::Result<Self> {
        std::fs::create_dir_all(&config.data_dir)
            .with_context(|| format!("creating the data directory {}", config.data_dir.display()))?;
        let options = DbOptions {
            synchronous: match config.sqlite_sync {
                SyncMode::Normal => Synchronous::Normal,
                SyncMode::Full => Synchronous::Full,
            },
            ..DbOptions::default()
        };
        let store = SqliteStore::open(
            &config.database_path(),
            options,
            QueueSettings { max_receives: config.queues.max_receives },
        )
        .with_context(|| format!("opening {}", config.database_path().display()))?;

        let authenticator = Authenticator::shared(&auth_config(&config).await?)?;
        let clock: Arc<dyn Clock> = Arc::new(SystemClock);
        let ids: Arc<dyn IdGenerator> = Arc::new(UuidV7Ids);
        let shared_store = Arc::new(store.clone());
        let raw_provider: Arc<dyn NotificationProvider> = match &config.notify_url {
            Some(url) => Arc::new(
                WebhookProvider::new(url, config.notify_timeout, config.notify_allow_private)
                    .context("ORDERLY_NOTIFY_URL")?,
            ),
            None => Arc::new(LogProvider),
        };
        let resilience = &config.resilience;
        let breaker = Arc::new(CircuitBreaker::new(
            PROVIDER_BREAKER,
            raw_provider,
            shared_store.clone(),
            BreakerPolicy {
                failure_threshold: resilience.breaker_threshold.max(1),
                cool_down: resilience.breaker_cool_down,
                half_open_probes: resilience.breaker_probes.max(1),
            },
            clock.clone(),
        ));
        let provider: Arc<dyn NotificationProvider> = breaker.clone();

        let intake = Arc::new(order_intake::OrderIntake::new(
            shared_store.clone(),
            shared_store.clone(),
            clock.clone(),
            ids.clone(),
        ));
        let mut catalog = inventory::Catalog::new(
            shared_store.clone(),
            EventFactory::new(inventory::FUNCTION, ids.clone(), clock.clone()),
            clock.clone(),
        );
        if resilience.cache == Switch::On {
            let cache: Arc<dyn Cache> = Arc::new(MemoryCache::new(resilience.cache_entries, resilience.cache_ttl));
            catalog = catalog.with_cache(cache);
        }
        let catalog = Arc::new(catalog);
        let consumers: Vec<Arc<dyn EventHandler>> = vec![
            Arc::new(order_intake::saga::SagaReplies::new(intake.clone(), shared_store.clone())),
            Arc::new(inventory::InventoryConsumer::new(
                inventory::Reservations::new(
                    shared_store.clone(),
                    shared_store.clone(),
                    EventFactory::new(inventory::FUNCTION, ids.clone(), clock.clone()),
                    clock.clone(),
                ),
                catalog.clone(),
            )),
            Arc::new(notification::Notifier::new(shared_store.clone(), provider.clone(), clock.clone())),
            Arc::new(analytics::Projector::new(shared_store.clone())),
        ];

        let health_state = HealthState { store: store.clone(), provider: provider.name(), breaker: breaker.clone() };
        let metrics = crate::observability::prometheus();
        let api = OpenApiRouter::with_openapi(ApiDoc::openapi())
            .merge(order_intake::http::router(intake))
            .merge(inventory::http::router(catalog))
            .merge(notification::http::router(shared_store.clone() as Arc<dyn NotificationLog>))
            .merge(analytics::http::router(shared_store.clone() as Arc<dyn ReadModelStore>))
            .merge(shared::hosts::health::router(Arc::new(health_state)))
            .route("/metrics", axum::routing::get(move || std::future::ready(metrics.render())))
            .merge(OpenApiRouter::from(crate::dashboard::routes()));
        let limits = match resilience.rate_limit {
            Switch::On => {
                let policy = RateLimitPolicy {
                    anonymous_read: resilience.rate_limit_anon_read,
                    anonymous_write: resilience.rate_limit_anon_write,
                    authenticated_read: resilience.rate_limit_auth_read,
                    authenticated_write: resilience.rate_limit_auth_write,
                    routes: RateLimitPolicy::parse_routes(&resilience.rate_limit_routes)
                        .map_err(|e| anyhow::anyhow!("ORDERLY_RATE_LIMIT_ROUTES: {e}"))?,
                    fail_open: resilience.rate_limit_fail == FailMode::Open,
                    ..RateLimitPolicy::default()
                };
                Some(Arc::new(RateLimitLayer { limiter: shared_store.clone(), policy, clock: clock.clone() }))
            }
            Switch::Off => None,
        };
        let (router, openapi) =
            shared::hosts::api_router(api, authenticator, limits).context("rendering the OpenAPI document")?;
        let router = router
            .layer(tower_http::timeout::RequestBodyTimeoutLayer::new(config.body_timeout))
            .layer(axum::middleware::from_fn(client_ip))
            .layer(CatchPanicLayer::custom(|_| ApiError::Internal("handler panicked".into()).into_response()));
        Ok(Self { router, openapi, store, breaker, consumers, config })
    }
}

/// The caller's address, from the socket, for per-IP limits of anonymous callers.
async fn client_ip(mut request: axum::extract::Request, next: axum::middleware::Next) -> Response {
    if let Some(axum::extract::ConnectInfo(addr)) = request.extensions().get::<axum::extract::ConnectInfo<SocketAddr>>()
    {
        let ip = ClientIp(addr.ip());
        request.extensions_mut().insert(ip);
    }
    next.run(request).await
}

async fn auth_config(config: &Config) -> anyhow::Result<AuthConfig> {
    let mut auth = AuthConfig {
        audience: config.jwt_audience.clone(),
        issuer: config.jwt_issuer.clone(),
        ..AuthConfig::default()
    };
    if let Some(path) = &config.jwks_file {
        auth.jwks_json = Some(std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?);
    } else if let Some(url) = &config.jwks_url {
        let response = reqwest::get(url).await.context("fetching ORDERLY_JWKS_URL")?.error_for_status()?;
        auth.jwks_json = Some(response.text().await.context("reading ORDERLY_JWKS_URL")?);
    } else {
        let (secret, source) = secret::load_or_create(config.jwt_secret.as_deref(), &config.data_dir)?;
        match source {
            SecretSource::Generated(path) => tracing::warn!(
                path = %path.display(),
                "no ORDERLY_JWT_SECRET set: generated a development secret; mint tokens with `orderly token --sub <id>`"
            ),
            SecretSource::File(path) => {
                tracing::info!(path = %path.display(), "using the development JWT secret from the data directory")
            }
            SecretSource::Environment => tracing::info!("using the JWT secret from ORDERLY_JWT_SECRET"),
        }
        auth.hs256_secret = Some(secret);
    }
    Ok(auth)
}

/// Accepts connections until shutdown, then lets open requests finish.
///
/// Not `axum::serve`: that sets no header-read timer, so a client sending
/// its headers a byte at a time (slow loris) could hold a connection forever.
async fn serve(
    listener: TcpListener,
    router: Router,
    header_timeout: std::time::Duration,
    shutdown: CancellationToken,
) {
    use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
    use hyper_util::server::conn::auto::Builder;
    use hyper_util::service::TowerToHyperService;
    use tower::ServiceExt;

    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let mut builder = Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(header_timeout)
        // Headers beyond this are answered 431; tokens are at most 8 KiB.
        .max_buf_size(64 * 1024);
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    tracing::warn!(%error, "accept failed");
                    continue;
                }
            },
            _ = shutdown.cancelled() => break,
        };
        let service = router.clone().map_request(move |mut request: axum::extract::Request<hyper::body::Incoming>| {
            request.extensions_mut().insert(axum::extract::ConnectInfo(peer));
            request
        });
        let connection =
            builder.serve_connection_with_upgrades(TokioIo::new(stream), TowerToHyperService::new(service));
        let connection = graceful.watch(connection.into_owned());
        tokio::spawn(async move {
            let _ = connection.await;
        });
    }
    drop(listener);
    if tokio::time::timeout(std::time::Duration::from_secs(30), graceful.shutdown()).await.is_err() {
        tracing::warn!("some connections were still open after 30 s; closing them");
    }
}

/// A started runner: the server and every background loop.
pub struct Runner {
    addr: SocketAddr,
    store: SqliteStore,
    shutdown: CancellationToken,
    tasks: JoinSet<()>,
}

impl Runner {
    /// Binds, then starts serving and consuming. Returns once it listens.
    pub async fn start(config: Config) -> anyhow::Result<Self> {
        let app = App::build(config).await?;
        let listener =
            TcpListener::bind(app.config.addr).await.with_context(|| format!("binding {}", app.config.addr))?;
        let addr = listener.local_addr()?;
        let shutdown = CancellationToken::new();
        let mut tasks = JoinSet::new();

        // Validate before anything starts.
        for name in &app.config.consumers {
            if shared::events::routing::Consumer::from_queue(name.trim()).is_none() {
                anyhow::bail!("ORDERLY_CONSUMERS: no consumer named {name:?}");
            }
        }
        tasks.spawn(serve(listener, app.router.clone(), app.config.header_timeout, shutdown.clone()));
        for handler in app.consumers {
            if !app.config.consumers.iter().any(|c| c.trim() == handler.consumer().queue()) {
                tracing::warn!(consumer = handler.consumer().queue(), "consumer not started here (ORDERLY_CONSUMERS)");
                continue;
            }
            tasks.spawn(workers::consume(app.store.clone(), handler, app.config.queues.clone(), shutdown.clone()));
        }
        tasks.spawn(workers::relay(app.store.clone(), shutdown.clone()));
        tasks.spawn(workers::housekeeping(app.store.clone(), shutdown.clone()));
        tasks.spawn(crate::observability::gauges(app.store.clone(), app.breaker.clone(), shutdown.clone()));
        Ok(Self { addr, store: app.store, shutdown, tasks })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn store(&self) -> &SqliteStore {
        &self.store
    }

    /// Stops taking requests, lets in-flight requests and batches finish,
    /// and returns when everything has stopped. Queued messages stay queued.
    pub async fn stop(mut self) {
        self.shutdown.cancel();
        while self.tasks.join_next().await.is_some() {}
    }
}
