//! Metrics for the local runner: the `metrics` facade (used throughout the
//! core) rendered as Prometheus text at `GET /metrics`, plus gauges sampled
//! from the store (queue depth and age, dead letters, breaker state).

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use opentelemetry_otlp::WithExportConfig;
use orderly_adapters::sqlite::SqliteStore;
use orderly_core::events::routing::Consumer;
use orderly_core::ports::QueueAdmin;
use orderly_core::resilience::breaker::{BreakerState, CircuitBreaker};
use tokio_util::sync::CancellationToken;

/// The process-wide recorder (installed once, even with several runners in
/// one test process).
pub fn prometheus() -> PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let recorder = PrometheusBuilder::new()
                .set_quantiles(&[0.5, 0.95, 0.99])
                .expect("static quantiles are valid")
                .build_recorder();
            let handle = recorder.handle();
            // Another recorder may already be installed (an embedding app):
            // then this handle renders an empty page rather than failing.
            let _ = metrics::set_global_recorder(recorder);
            handle
        })
        .clone()
}

/// JSON log lines on stdout (one per event, flat fields), and — when an OTLP
/// endpoint is configured — spans exported over OTLP/HTTP. Returns the
/// tracer provider to flush at shutdown.
pub fn init_telemetry(
    filter: &str,
    otlp_endpoint: Option<&str>,
) -> anyhow::Result<Option<opentelemetry_sdk::trace::SdkTracerProvider>> {
    use opentelemetry::trace::TracerProvider as _;
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    use tracing_subscriber::{EnvFilter, Layer};

    // A typo here would silently log at another level than asked for.
    let filter = EnvFilter::try_new(filter)
        .map_err(|e| anyhow::anyhow!("ORDERLY_LOG={filter:?} is not a log filter (e.g. info, orderly=debug): {e}"))?;
    let logs = tracing_subscriber::fmt::layer()
        .json()
        .flatten_event(true)
        .with_current_span(false)
        .with_span_list(false)
        .with_filter(filter);
    let Some(endpoint) = otlp_endpoint else {
        tracing_subscriber::registry().with(logs).init();
        return Ok(None);
    };
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_endpoint(format!("{}/v1/traces", endpoint.trim_end_matches('/')))
        .build()?;
    let provider = opentelemetry_sdk::trace::SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .with_resource(opentelemetry_sdk::Resource::builder().with_service_name("orderly").build())
        .build();
    let spans = tracing_opentelemetry::layer()
        .with_tracer(provider.tracer("orderly"))
        .with_filter(tracing_subscriber::filter::LevelFilter::INFO);
    tracing_subscriber::registry().with(logs).with(spans).init();
    Ok(Some(provider))
}

/// Samples queue and breaker state every two seconds.
pub async fn gauges(store: SqliteStore, breaker: Arc<CircuitBreaker>, shutdown: CancellationToken) {
    let mut every = tokio::time::interval(Duration::from_secs(2));
    loop {
        tokio::select! {
            _ = every.tick() => {}
            _ = shutdown.cancelled() => return,
        }
        for consumer in Consumer::ALL {
            let queue = consumer.queue();
            if let Ok(stats) = store.stats(queue).await {
                metrics::gauge!("orderly_queue_depth", "queue" => queue).set(stats.depth as f64);
                metrics::gauge!("orderly_queue_in_flight", "queue" => queue).set(stats.in_flight as f64);
                metrics::gauge!("orderly_queue_oldest_age_seconds", "queue" => queue)
                    .set(stats.oldest_age.unwrap_or_default().as_secs_f64());
                metrics::gauge!("orderly_dlq_depth", "queue" => queue).set(stats.dead_letters as f64);
            }
        }
        if let Ok(state) = breaker.state().await {
            let value = match state {
                BreakerState::Closed { .. } => 0.0,
                BreakerState::HalfOpen { .. } => 1.0,
                BreakerState::Open { .. } => 2.0,
            };
            metrics::gauge!("orderly_breaker_state", "breaker" => orderly_core::composition::PROVIDER_BREAKER)
                .set(value);
        }
    }
}
