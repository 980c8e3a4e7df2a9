//! Metrics for the local runner: the `metrics` facade (used throughout the
//! core) rendered as Prometheus text at `GET /metrics`, plus gauges sampled
//! from the store (queue depth and age, dead letters, breaker state).

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use shared::adapters::sqlite::SqliteStore;
use shared::events::routing::Consumer;
use shared::ports::QueueAdmin;
use shared::resilience::breaker::{BreakerState, CircuitBreaker};
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
            metrics::gauge!("orderly_breaker_state", "breaker" => crate::app::PROVIDER_BREAKER).set(value);
        }
    }
}
