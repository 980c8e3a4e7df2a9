//! The Spin host: how Spin's triggers reach a function.
//!
//! A function's wiring is the one every host runs (its crate's `wire`,
//! returning a [`Function`], see [`orderly_core::composition`]), here over the
//! [`orderly_adapters::aws_backend::AwsBackend`]; a component adds one entry
//! point per trigger, each a call into this module:
//!
//! - **HTTP** (`#[http_component]`, WASI 0.2): [`serve`] runs the function's
//!   axum router behind the shared edge ([`orderly_core::edge::api_router`]: problem+json,
//!   JWT, rate limits in DynamoDB). The same build runs on Spin and under any
//!   wasi:http host (`wasmtime serve`, jco), which is how CI runs it.
//! - **SQS** (the spin-trigger-sqs plugin: one message per call, answered
//!   delete or leave): [`handle_message`], a one-message [`process_batch`].
//! - **Cron** (the spin-trigger-cron plugin): [`Function::relay`], the
//!   outbox relay until the outbox is empty.
//!
//! Settings come through the [`ConfigSource`] port: process environment
//! (`ORDERLY_*`, what `wasmtime serve --env` and tests give) or, in the
//! `spin-variables` build, Spin variables — the only `fermyon:spin` import,
//! kept out of the build that runs under wasmtime. The wiring compiles
//! natively too, so tests drive a component's queue and relay core off-wasm
//! with native SDK clients (see `tests/spin/harness.rs`).

use orderly_adapters::sqs::{DeliveryAttributes, SqsQueues};
use orderly_core::composition::Function;
use orderly_core::messaging::{Outcome, process_batch};
use orderly_core::ports::ReceivedMessage;
use orderly_core::settings::{ConfigSource, OutboxMode, Settings};

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
    Box::new(orderly_core::settings::Environment)
}

/// The settings a component runs with. Its relay is a cron trigger that
/// polls outbox items, and no Spin trigger reads a table's stream, so
/// `outbox = stream` would leave every event where nothing relays it: refused.
pub fn settings(source: &dyn ConfigSource) -> Result<Settings, String> {
    let settings = Settings::load(source).map_err(|e| e.to_string())?;
    if settings.aws.outbox == OutboxMode::Stream {
        return Err("setting outbox: a Spin component relays outbox items from its cron trigger and no Spin \
                    trigger reads a table's stream, so `stream` would strand every event; use `items`"
            .into());
    }
    Ok(settings)
}

/// One message as the queue trigger hands it over, with its attributes
/// (`ApproximateReceiveCount`, `MessageGroupId`, `SentTimestamp`: ask for
/// them in `spin.toml`). The trigger deletes or leaves it by the answer, so
/// the delivery carries no receipt handle.
pub fn delivery<'a>(
    id: Option<&str>,
    body: Option<&str>,
    attributes: impl IntoIterator<Item = (&'a str, &'a str)>,
) -> ReceivedMessage {
    SqsQueues::delivery(id.unwrap_or_default(), "", body.unwrap_or_default(), DeliveryAttributes::parse(attributes))
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

/// The Spin queue trigger's call, one message at a time: handled (or known
/// to be a duplicate, or of an unknown type) is `Delete`; a failure is
/// `Leave`. Idempotent handlers make a redelivery after a lost delete harmless.
pub async fn handle_message(function: &Function, settings: &Settings, message: &ReceivedMessage) -> QueueAction {
    let Some(handler) = function.handler() else {
        tracing::error!(function = function.name(), "a queue message for a component with no consumer: left");
        return QueueAction::Leave;
    };
    let max = settings.queues.max_receives;
    let outcomes = process_batch(handler.as_ref(), std::slice::from_ref(message), max).await;
    match outcomes.first().map(|o| &o.outcome) {
        Some(Outcome::Done | Outcome::Ignored { .. }) => QueueAction::Delete,
        Some(Outcome::Failed { .. } | Outcome::HeldBack) | None => QueueAction::Leave,
    }
}

#[cfg(target_arch = "wasm32")]
pub use component::{backend, block_on, on_cron, on_message, serve};

/// A function's Spin entry points, each compiled only into the component
/// built with its feature (`cargo rustc --crate-type cdylib --target
/// wasm32-wasip2 --features spin-http|spin-queue|spin-relay`):
/// `orderly_hosts::spin_entry_points!(wire);` with `wire: fn(&Arc<dyn Backend>) -> Function`.
#[macro_export]
macro_rules! spin_entry_points {
    ($wire:ident) => {
        /// The HTTP trigger (WASI 0.2 `incoming-handler`): Spin, `wasmtime serve`, jco.
        #[cfg(all(target_arch = "wasm32", feature = "spin-http"))]
        #[::spin_sdk::http_component]
        fn __orderly_http(request: ::axum::http::Request<Vec<u8>>) -> ::axum::http::Response<Vec<u8>> {
            $crate::spin::serve(request, $wire)
        }

        #[cfg(all(target_arch = "wasm32", feature = "spin-queue"))]
        $crate::spin_queue_export!($wire);

        #[cfg(all(target_arch = "wasm32", feature = "spin-relay"))]
        $crate::spin_relay_export!($wire);
    };
}

/// The spin-trigger-sqs export (`spin:sqs@3.0.0`, `handle-queue-message`)
/// of a function's queue component: `orderly_hosts::spin_queue_export!(wire);`
/// with `wire: fn(&Arc<dyn Backend>) -> Function`. One message per call, answered
/// delete or leave (see [`handle_message`]).
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
                    let message = $crate::spin::delivery(
                        message.id.as_deref(),
                        message.body.as_deref(),
                        attributes.iter().map(|(n, v)| (n.as_str(), v.as_str())),
                    );
                    match $crate::spin::on_message(&message, super::$wire) {
                        Ok($crate::spin::QueueAction::Delete) => Ok(MessageAction::Delete),
                        Ok($crate::spin::QueueAction::Leave) => Ok(MessageAction::Leave),
                        Err(error) => Err(Error::Other(error)),
                    }
                }
            }

            export!(Queue);
        }
    };
}

/// The spin-trigger-cron export (`spin:cron@3.0.0`, `handle-cron-event`) of
/// a function's relay component: `orderly_hosts::spin_relay_export!(wire);`.
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
                    $crate::spin::on_cron(super::$wire).map_err(Error::Other)
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
    use axum::http::{Request, Response, StatusCode};
    use axum::response::IntoResponse;
    use http_body_util::BodyExt;
    use tower::ServiceExt;

    use super::config_source;
    use orderly_adapters::aws_backend::AwsBackend;
    use orderly_adapters::deferred::Deferred;
    use orderly_adapters::log_provider::LogProvider;
    use orderly_adapters::payment_gateway::HttpGateway;
    use orderly_adapters::webhook::{HttpTransport, TransportError, Webhook};
    use orderly_core::composition::{self, Backend, Function, KeySource};
    use orderly_core::http::{ApiError, ClientIp, KeyConfig, KeyKind};
    use orderly_core::ports::{FetchError, NotificationProvider, PaymentGateway, SecretFetcher};

    /// Runs `future` to completion on the wasi:io reactor the SDK's HTTP
    /// client needs (whatever executor called the export).
    pub fn block_on<F: std::future::Future>(future: F) -> F::Output {
        wstd::runtime::block_on(future)
    }

    /// JSON log lines on stderr, which Spin keeps per component
    /// (`.spin/logs/`) and wasmtime / jco print: the same request logs as on
    /// the other hosts. Once per instance; an instance serves one call.
    fn init_logging() {
        let _ = tracing_subscriber::fmt()
            .json()
            .with_writer(std::io::stderr)
            .with_max_level(tracing::Level::INFO)
            .with_current_span(false)
            .with_target(false)
            .try_init();
    }

    /// Every request runs in a fresh instance, and fastrand seeds its global
    /// generator from a hash of the clock and the thread id: concurrent
    /// instances start alike. The SDK draws its retry jitter from it (and,
    /// for calls whose token we do not set, idempotency tokens), so each
    /// instance reseeds it from `wasi:random` before any client is built.
    fn seed_fastrand() {
        fastrand::seed(rand::random());
    }

    /// The backend of this instance: settings from this build's source, SDK
    /// clients over wasi:http, the webhook (or the log) as provider. The SQS
    /// client is built only if a queue is used: an HTTP request (one per
    /// instance) sends to none, and building it costs ~0.25 ms.
    pub fn backend() -> Result<Arc<AwsBackend>, String> {
        init_logging();
        seed_fastrand();
        let settings = super::settings(config_source().as_ref())?;
        orderly_core::messaging::keep_handled_lines(settings.handled_log_share);
        let aws = &settings.aws;
        // A component has no credential chain to search: the settings carry them.
        let Some(credentials) = orderly_adapters::aws_backend::credentials(aws) else {
            return Err("setting aws_access_key_id / aws_secret_access_key: not set".into());
        };
        let http = WasiHttpClientBuilder::new().build();
        let sleep = aws_smithy_async::rt::sleep::SharedAsyncSleep::new(WasiSleep);
        let region = aws_sdk_dynamodb::config::Region::new(aws.region.clone());
        let mut dynamo = aws_sdk_dynamodb::Config::builder()
            .behavior_version(aws_sdk_dynamodb::config::BehaviorVersion::latest())
            .region(region.clone())
            .credentials_provider(credentials.clone())
            .http_client(http.clone())
            .sleep_impl(sleep.clone())
            .retry_config(orderly_adapters::aws_backend::dynamo_retry_config(aws));
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
            Some(url) => Arc::new(
                Webhook::with_transport(url, settings.notify_timeout, WasiHttp)
                    .and_then(|webhook| webhook.signed(settings.webhook_secret.as_deref()))
                    .map_err(|e| e.to_string())?,
            ),
            None => Arc::new(LogProvider),
        };
        let gateway = match &settings.payment.url {
            Some(url) => {
                Some(Arc::new(HttpGateway::new(url, settings.payment.timeout, WasiHttp).map_err(|e| e.to_string())?)
                    as Arc<dyn PaymentGateway>)
            }
            None => None,
        };
        Ok(Arc::new(
            AwsBackend::new(
                settings,
                aws_sdk_dynamodb::Client::from_conf(dynamo.build()),
                Deferred::new(move || aws_sdk_sqs::Client::from_conf(sqs.clone().build())),
                provider,
            )
            .with_payment_gateway(gateway)
            .with_timer(Arc::new(WasiTimer)),
        ))
    }

    /// This instance's backend and the function wired from it.
    fn wired(wire: fn(&Arc<dyn Backend>) -> Function) -> Result<(Arc<AwsBackend>, Function), String> {
        let backend = backend()?;
        let function = wire(&(backend.clone() as Arc<dyn Backend>));
        Ok((backend, function))
    }

    /// The body of the queue export: wires the component and handles one message.
    pub fn on_message(
        message: &orderly_core::ports::ReceivedMessage,
        wire: fn(&Arc<dyn Backend>) -> Function,
    ) -> Result<super::QueueAction, String> {
        let (backend, function) = wired(wire)?;
        Ok(block_on(super::handle_message(&function, backend.settings(), message)))
    }

    /// The body of the cron export: relays the component's outbox, for at
    /// most half a minute (cron runs again soon after).
    pub fn on_cron(wire: fn(&Arc<dyn Backend>) -> Function) -> Result<(), String> {
        let (backend, component) = wired(wire)?;
        let published = block_on(component.relay(backend.publisher(), std::time::Duration::from_secs(30)))
            .map_err(|e| e.to_string())?;
        if published > 0 {
            tracing::info!(function = component.name(), published, "outbox relayed");
        }
        Ok(())
    }

    /// The body of an `#[http_component]`: wires the component, verifies
    /// nothing itself, and answers through the shared edge. A component
    /// that cannot start answers a bare 500 problem (details on stderr).
    pub fn serve(
        request: axum::http::Request<Vec<u8>>,
        wire: fn(&Arc<dyn Backend>) -> Function,
    ) -> axum::http::Response<Vec<u8>> {
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

    async fn answer(
        request: Request<Vec<u8>>,
        wire: fn(&Arc<dyn Backend>) -> Function,
    ) -> Result<Response<Vec<u8>>, String> {
        let (backend, function) = wired(wire)?;
        let settings = backend.settings();
        let keys = match (composition::inline_keys(settings), composition::key_source(settings)) {
            (Some(keys), _) => keys,
            (None, KeySource::JwksUrl(url)) => composition::fetched_keys(
                settings,
                Arc::new(WasiFetcher(url.to_owned())),
                KeyKind::Jwks,
                backend.clock(),
            ),
            (None, _) => KeyConfig::None,
        };
        let authenticator = composition::authenticator(settings, keys)?;
        let router = crate::edge::served(function.router(backend.as_ref(), authenticator)?);
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

    /// A document at a URL (the JWKS) over wasi:http. An instance serves
    /// one request, so its copy lives that long: every request verifies
    /// against the identity provider's current keys (a new `kid` at once, a
    /// removed key at once), at the price of one fetch per request.
    struct WasiFetcher(String);

    #[async_trait]
    impl SecretFetcher for WasiFetcher {
        fn describe(&self) -> String {
            self.0.clone()
        }

        async fn fetch(&self) -> Result<String, FetchError> {
            let request = wstd::http::Request::get(&self.0).body(()).map_err(|e| FetchError(e.to_string()))?;
            let response = wstd::http::Client::new().send(request).await.map_err(|e| FetchError(e.to_string()))?;
            if !response.status().is_success() {
                return Err(FetchError(format!("status {}", response.status())));
            }
            response.into_body().str_contents().await.map(str::to_owned).map_err(|e| FetchError(e.to_string()))
        }
    }

    /// Waiting on wasi:clocks.
    struct WasiTimer;

    #[async_trait]
    impl orderly_core::ports::Timer for WasiTimer {
        async fn sleep(&self, duration: std::time::Duration) {
            wstd::task::sleep(wstd::time::Duration::from(duration)).await;
        }
    }

    /// wasi:http as the webhook's transport. The host decides which
    /// addresses may be reached (`allowed_outbound_hosts` in `spin.toml`),
    /// so there is no resolver-level SSRF guard here.
    struct WasiHttp;

    #[async_trait]
    impl HttpTransport for WasiHttp {
        async fn send(
            &self,
            request: axum::http::Request<Vec<u8>>,
            timeout: std::time::Duration,
        ) -> Result<Response<Vec<u8>>, TransportError> {
            // No per-phase timeouts on the client: jco's wasi:http refuses
            // the request options that carry them ("request failed" on
            // every call). The deadline below covers the whole exchange.
            let client = wstd::http::Client::new();
            let exchange = async {
                let response = client.send(request).await.map_err(|_| TransportError::Request)?;
                let status = response.status();
                let mut body = response.into_body();
                let mut bytes = body.contents().await.map_err(|_| TransportError::Request)?.to_vec();
                bytes.truncate(orderly_adapters::webhook::MAX_ANSWER_BYTES);
                let mut answer = Response::new(bytes);
                *answer.status_mut() = status;
                Ok(answer)
            };
            // One deadline for the whole exchange, body included.
            wstd::future::FutureExt::timeout(exchange, wstd::time::Duration::from(timeout))
                .await
                .unwrap_or(Err(TransportError::Timeout))
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    #[test]
    fn a_component_refuses_events_left_for_a_stream_it_cannot_read() {
        let source = |outbox: &str| BTreeMap::from([("outbox".to_owned(), outbox.to_owned())]);
        let refused = settings(&source("stream")).unwrap_err();
        assert!(refused.contains("outbox") && refused.contains("items"), "{refused}");
        assert_eq!(settings(&source("items")).unwrap().aws.outbox, OutboxMode::Items);
        assert_eq!(settings(&BTreeMap::new()).unwrap().aws.outbox, OutboxMode::Items, "the default runs");
    }
}
