//! The runner's host glue: the embedded backend (SQLite + local queues), the
//! four functions wired from it by their own crates (the same composition
//! Lambda and Spin run), and what only this host does: the HTTP server, the
//! consumer and relay loops, metrics and the dashboard.

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context;
use axum::Router;
use axum::response::Response;
use orderly_adapters::http_client::{self, ClientOptions, UrlFetcher};
use orderly_adapters::log_provider::LogProvider;
use orderly_adapters::memory_cache::MemoryCache;
use orderly_adapters::sqlite::{DbOptions, QueueSettings, SqliteBackend, SqliteStore, Synchronous};
use orderly_adapters::webhook::WebhookProvider;
use orderly_core::composition::{self, Backend, Function, KeySource};
use orderly_core::http::ApiRoutes;
use orderly_core::http::{Authenticator, BodyTimedOut, ClientIp, KeyConfig, KeyKind};
use orderly_core::messaging::EventHandler;
use orderly_core::ports::{Cache, NotificationProvider, SystemClock};
use orderly_core::resilience::breaker::CircuitBreaker;
use orderly_core::settings::{Settings, SqliteSync};
use tokio::net::TcpListener;
use tokio::task::JoinSet;
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;
use tower_http::catch_panic::CatchPanicLayer;

use crate::config::database_path;
use crate::secret::{self, SecretSource};
use crate::workers;

/// How long one JWKS download may take.
const JWKS_FETCH_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

/// Everything the runner serves and runs, built but not yet started.
pub struct App {
    pub router: Router,
    pub store: SqliteStore,
    pub breaker: Arc<CircuitBreaker>,
    consumers: Vec<Arc<dyn EventHandler>>,
    settings: Settings,
}

/// Opens the embedded store in the data directory.
pub fn open_store(settings: &Settings) -> anyhow::Result<SqliteStore> {
    std::fs::create_dir_all(&settings.data_dir)
        .with_context(|| format!("creating the data directory {}", settings.data_dir.display()))?;
    let options = DbOptions {
        synchronous: match settings.sqlite_sync {
            SqliteSync::Normal => Synchronous::Normal,
            SqliteSync::Full => Synchronous::Full,
        },
        ..DbOptions::default()
    };
    let path = database_path(&settings.data_dir);
    // The queues share the file: events go to them in the writing transaction.
    SqliteStore::open(&path, options, QueueSettings { max_receives: settings.queues.max_receives })
        .map(SqliteStore::publishing_at_commit)
        .with_context(|| format!("opening {}", path.display()))
}

impl App {
    pub async fn build(settings: Settings) -> anyhow::Result<Self> {
        let store = open_store(&settings)?;
        let authenticator = authenticator(&settings)?;
        let provider: Arc<dyn NotificationProvider> = match &settings.notify_url {
            Some(url) => Arc::new(
                WebhookProvider::with_tls(
                    url,
                    settings.notify_timeout,
                    settings.notify_allow_private,
                    &settings.outbound_tls,
                )
                .context("ORDERLY_NOTIFY_URL")?
                .signed(settings.webhook_secret.as_deref())?,
            ),
            None => Arc::new(LogProvider),
        };
        let resilience = &settings.resilience;
        let cache = resilience
            .cache
            .then(|| Arc::new(MemoryCache::new(resilience.cache_entries, resilience.cache_ttl)) as Arc<dyn Cache>);
        let gateway = orderly_adapters::payment_gateway::from_settings(&settings).map_err(anyhow::Error::msg)?;
        let backend: Arc<dyn Backend> = Arc::new(
            SqliteBackend::new(settings.clone(), store.clone(), provider, cache).with_payment_gateway(gateway),
        );

        let functions: Vec<Function> = vec![
            order_intake::wire(&backend),
            inventory::wire(&backend),
            notification::wire(&backend),
            analytics::wire(&backend),
        ];
        let consumers = functions.iter().filter_map(Function::handler).cloned().collect();
        let metrics = crate::observability::prometheus();
        let api = order_intake::front_door(&backend)
            .api()
            .unwrap_or_default()
            .route("/metrics", axum::routing::get(move || std::future::ready(metrics.render())))
            .merge(ApiRoutes::undocumented(crate::dashboard::routes()));
        // One database: every function's rate-limit buckets live in it.
        let limits = composition::rate_limits(backend.as_ref(), orderly_core::events::routing::Consumer::OrderIntake);
        let router = orderly_core::edge::api_router(api, authenticator, limits, &settings.edge);
        let router = server_layers(router, &settings);
        let breaker = composition::breaker(backend.as_ref());
        Ok(Self { router, store, breaker, consumers, settings })
    }
}

/// What the runner serves every route through, outside the API's edge:
/// compression and header folding, the body timeout, the caller's address,
/// and a panic in these layers answered as a 500 (a handler's is answered
/// inside the edge, by `api_router`, with the request id).
pub(crate) fn server_layers(router: Router, settings: &Settings) -> Router {
    orderly_hosts::edge::served(router)
        .layer(axum::middleware::from_fn(report_body_timeouts))
        .layer(tower_http::timeout::RequestBodyTimeoutLayer::new(settings.body_timeout))
        .layer(axum::middleware::from_fn(client_ip))
        .layer(axum::middleware::from_fn(close_after_unread_body))
        .layer(CatchPanicLayer::custom(orderly_core::edge::panic_answer))
}

/// The body timeout's error, as the core knows it ([`BodyTimedOut`]): a
/// body that times out answers 408, one that cannot be read 400.
async fn report_body_timeouts(request: axum::extract::Request, next: axum::middleware::Next) -> Response {
    let request = request.map(|body| {
        axum::body::Body::new(http_body_util::BodyExt::map_err(body, |error| {
            let error = error.into_inner();
            if error.is::<tower_http::timeout::TimeoutError>() {
                Box::new(BodyTimedOut) as axum::BoxError
            } else {
                error
            }
        }))
    });
    next.run(request).await
}

/// A 413 is answered before its body is read: close the connection, so the
/// client does not send its next request after the unread bytes (RFC 9112
/// §9.6). A runner concern: wasi:http forbids the header, and API Gateway
/// owns its connections.
async fn close_after_unread_body(request: axum::extract::Request, next: axum::middleware::Next) -> Response {
    let mut response = next.run(request).await;
    if response.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE {
        response.headers_mut().insert(axum::http::header::CONNECTION, axum::http::HeaderValue::from_static("close"));
    }
    response
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

/// The token verifier: a JWKS file (the runner's own setting), else the
/// keys [`composition::key_source`] names, as on every host: a JWKS (inline,
/// a URL), else the HS256 secrets (the current one generated into the data
/// directory when none is set). The policy is the shared one.
pub(crate) fn authenticator(settings: &Settings) -> anyhow::Result<Arc<Authenticator>> {
    if let Some(path) = &settings.jwks_file {
        let jwks = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        return composition::authenticator(settings, KeyConfig::Jwks(jwks)).map_err(anyhow::Error::msg);
    }
    let keys = match composition::key_source(settings) {
        KeySource::Jwks(jwks) => KeyConfig::Jwks(jwks.to_owned()),
        KeySource::JwksUrl(url) => {
            let options = ClientOptions { tls: settings.outbound_tls.clone(), outward_only: false };
            let fetcher = UrlFetcher::new(http_client::client(&options)?, url, JWKS_FETCH_TIMEOUT);
            composition::fetched_keys(settings, Arc::new(fetcher), KeyKind::Jwks, Arc::new(SystemClock))
        }
        KeySource::Secret(_) | KeySource::SecretParameter(_) | KeySource::None => runner_secret(settings)?,
    };
    composition::authenticator(settings, keys).map_err(anyhow::Error::msg)
}

/// The HS256 secrets: `jwt_secret`, or a development secret generated into
/// the data directory (the runner reads no secrets store).
fn runner_secret(settings: &Settings) -> anyhow::Result<KeyConfig> {
    let (secret, source) = secret::load_or_create(settings.jwt_secret.as_deref(), &settings.data_dir)?;
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
    Ok(KeyConfig::Hs256(settings.hs256_secrets(&secret)))
}

/// Accepts connections until shutdown, then lets open requests finish.
///
/// Not `axum::serve`: that sets no header-read timer, so a client sending
/// its headers a byte at a time (slow loris) could hold a connection forever.
/// With `tls`, each connection's handshake comes first, in its own task and
/// within the same header timeout.
pub(crate) async fn serve(
    listener: TcpListener,
    router: Router,
    header_timeout: std::time::Duration,
    tls: Option<TlsAcceptor>,
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
                // One connection's own trouble: take the next at once.
                Err(error)
                    if matches!(
                        error.kind(),
                        std::io::ErrorKind::ConnectionAborted
                            | std::io::ErrorKind::ConnectionRefused
                            | std::io::ErrorKind::ConnectionReset
                    ) =>
                {
                    continue;
                }
                Err(error) => {
                    // Out of file descriptors (EMFILE), the pending connection
                    // stays queued and the next accept fails at once: pause
                    // instead of spinning a core, as axum::serve does for
                    // these errors.
                    tracing::warn!(%error, "accept failed; pausing for a second");
                    tokio::select! {
                        _ = tokio::time::sleep(std::time::Duration::from_secs(1)) => {}
                        _ = shutdown.cancelled() => break,
                    }
                    continue;
                }
            },
            _ = shutdown.cancelled() => break,
        };
        let service = router.clone().map_request(move |mut request: axum::extract::Request<hyper::body::Incoming>| {
            request.extensions_mut().insert(axum::extract::ConnectInfo(peer));
            request
        });
        let service = TowerToHyperService::new(service);
        let (builder, watcher) = (builder.clone(), graceful.watcher());
        match &tls {
            None => {
                let connection = builder.serve_connection_with_upgrades(TokioIo::new(stream), service).into_owned();
                tokio::spawn(watcher.watch(connection));
            }
            Some(acceptor) => {
                let handshake = acceptor.accept(stream);
                tokio::spawn(async move {
                    let stream = match tokio::time::timeout(header_timeout, handshake).await {
                        Ok(Ok(stream)) => stream,
                        Ok(Err(error)) => return tracing::debug!(%peer, %error, "TLS handshake failed"),
                        Err(_) => return tracing::debug!(%peer, "TLS handshake timed out"),
                    };
                    let connection = builder.serve_connection_with_upgrades(TokioIo::new(stream), service).into_owned();
                    let _ = watcher.watch(connection).await;
                });
            }
        }
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
    pub async fn start(settings: Settings) -> anyhow::Result<Self> {
        let app = App::build(settings).await?;
        let settings = &app.settings;
        let listener = TcpListener::bind(settings.addr).await.with_context(|| format!("binding {}", settings.addr))?;
        let addr = listener.local_addr()?;
        let shutdown = CancellationToken::new();
        let mut tasks = JoinSet::new();

        let tls = settings.tls.as_ref().map(crate::tls::acceptor).transpose()?;
        tasks.spawn(serve(listener, app.router.clone(), settings.header_timeout, tls, shutdown.clone()));
        for handler in app.consumers {
            if !settings.queues.consumers.contains(&handler.consumer()) {
                tracing::warn!(consumer = handler.consumer().queue(), "consumer not started here (ORDERLY_CONSUMERS)");
                continue;
            }
            let (store, queues, stop) = (app.store.clone(), settings.queues.clone(), shutdown.clone());
            tasks.spawn(workers::supervised(handler.consumer().queue(), shutdown.clone(), move || {
                workers::consume(store.clone(), handler.clone(), queues.clone(), stop.clone())
            }));
        }
        let (store, stop) = (app.store.clone(), shutdown.clone());
        tasks
            .spawn(workers::supervised("relay", shutdown.clone(), move || workers::relay(store.clone(), stop.clone())));
        let (store, stop) = (app.store.clone(), shutdown.clone());
        tasks.spawn(workers::supervised("housekeeping", shutdown.clone(), move || {
            workers::housekeeping(store.clone(), stop.clone())
        }));
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
