//! Wiring: adapters into use cases, use cases into routers and consumers.

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context;
use axum::Router;
use shared::adapters::log_provider::LogProvider;
use shared::adapters::sqlite::{DbOptions, QueueSettings, SqliteStore, Synchronous};
use shared::adapters::webhook::WebhookProvider;
use shared::api::ApiDoc;
use shared::events::EventFactory;
use shared::http::{AuthConfig, Authenticator};
use shared::messaging::EventHandler;
use shared::ports::{
    Clock, IdGenerator, NotificationLog, NotificationProvider, ReadModelStore, SystemClock, UuidV7Ids,
};
use tokio::net::TcpListener;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;

use crate::config::{Config, SyncMode};
use crate::health::HealthState;
use crate::secret::{self, SecretSource};
use crate::workers;

/// Everything the runner serves and runs, built but not yet started.
pub struct App {
    pub router: Router,
    pub openapi: utoipa::openapi::OpenApi,
    pub store: SqliteStore,
    consumers: Vec<Arc<dyn EventHandler>>,
    config: Config,
}

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
        let provider: Arc<dyn NotificationProvider> = match &config.notify_url {
            Some(url) => Arc::new(WebhookProvider::new(url, config.notify_timeout).context("ORDERLY_NOTIFY_URL")?),
            None => Arc::new(LogProvider),
        };
        let clock: Arc<dyn Clock> = Arc::new(SystemClock);
        let ids: Arc<dyn IdGenerator> = Arc::new(UuidV7Ids);
        let shared_store = Arc::new(store.clone());

        let intake = Arc::new(order_intake::OrderIntake::new(
            shared_store.clone(),
            shared_store.clone(),
            clock.clone(),
            ids.clone(),
        ));
        let catalog = Arc::new(inventory::Catalog::new(
            shared_store.clone(),
            EventFactory::new(inventory::FUNCTION, ids.clone(), clock.clone()),
            clock.clone(),
        ));
        let consumers: Vec<Arc<dyn EventHandler>> = vec![
            Arc::new(order_intake::saga::SagaReplies::new(intake.clone(), shared_store.clone())),
            Arc::new(inventory::Reservations::new(
                shared_store.clone(),
                shared_store.clone(),
                EventFactory::new(inventory::FUNCTION, ids.clone(), clock.clone()),
                clock.clone(),
            )),
            Arc::new(notification::Notifier::new(shared_store.clone(), provider.clone(), clock.clone())),
            Arc::new(analytics::Projector::new(shared_store.clone())),
        ];

        let health_state = HealthState { store: store.clone(), provider: provider.name() };
        let api = OpenApiRouter::with_openapi(ApiDoc::openapi())
            .merge(order_intake::http::router(intake))
            .merge(inventory::http::router(catalog))
            .merge(notification::http::router(shared_store.clone() as Arc<dyn NotificationLog>))
            .merge(analytics::http::router(shared_store.clone() as Arc<dyn ReadModelStore>))
            .merge(shared::hosts::health::router(Arc::new(health_state)));
        let (router, openapi) =
            shared::hosts::api_router(api, authenticator).context("rendering the OpenAPI document")?;
        Ok(Self { router, openapi, store, consumers, config })
    }
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

        let server_shutdown = shutdown.clone();
        let router = app.router.clone();
        tasks.spawn(async move {
            let serve =
                axum::serve(listener, router).with_graceful_shutdown(async move { server_shutdown.cancelled().await });
            if let Err(error) = serve.await {
                tracing::error!(%error, "the HTTP server stopped");
            }
        });
        for handler in app.consumers {
            tasks.spawn(workers::consume(app.store.clone(), handler, app.config.queues.clone(), shutdown.clone()));
        }
        tasks.spawn(workers::relay(app.store.clone(), shutdown.clone()));
        tasks.spawn(workers::housekeeping(app.store.clone(), shutdown.clone()));
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
