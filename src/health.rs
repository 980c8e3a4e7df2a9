//! `GET /health`: always answers, and says which dependency is degraded
//! instead of failing whole. 503 only when the store itself is down.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::Serialize;
use shared::adapters::sqlite::SqliteStore;
use shared::events::routing::Consumer;
use shared::ports::QueueAdmin;
use shared::resilience::breaker::{BreakerState, CircuitBreaker};
use utoipa::ToSchema;

/// A consumer whose oldest message is older than this is lagging.
const LAG_THRESHOLD: Duration = Duration::from_secs(60);

#[derive(Debug, Serialize, ToSchema)]
pub struct QueueHealth {
    pub status: &'static str,
    pub depth: u64,
    pub in_flight: u64,
    pub oldest_age_ms: Option<u64>,
    pub dead_letters: u64,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Health {
    /// `ok`, `degraded` or `down`.
    pub status: &'static str,
    /// Why it is not `ok`, one line per dependency.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub reasons: Vec<String>,
    pub store: &'static str,
    pub queues: BTreeMap<&'static str, QueueHealth>,
    pub notification_provider: ProviderHealth,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ProviderHealth {
    /// `log` or `webhook`.
    pub name: &'static str,
    /// The circuit breaker: `closed`, `open` or `half_open`.
    pub breaker: &'static str,
    /// While open: when the next probe may go.
    pub retry_in_ms: Option<u64>,
}

#[derive(Clone)]
pub struct HealthState {
    pub store: SqliteStore,
    pub provider: &'static str,
    pub breaker: Arc<CircuitBreaker>,
}

#[utoipa::path(
    get,
    path = "/health",
    tag = "health",
    responses(
        (status = 200, description = "Up; `status` is `ok` or `degraded`", body = Health),
        (status = 503, description = "The store is down", body = Health),
    )
)]
pub async fn health(State(state): State<HealthState>) -> (StatusCode, Json<Health>) {
    let mut reasons = Vec::new();
    let store_ok = state.store.ping().await.is_ok();
    if !store_ok {
        reasons.push("store: not answering".to_owned());
    }
    let mut queues = BTreeMap::new();
    for consumer in Consumer::ALL {
        let name = consumer.queue();
        let health = match state.store.stats(name).await {
            Ok(stats) => {
                let lagging = stats.oldest_age.is_some_and(|age| age > LAG_THRESHOLD);
                if lagging {
                    reasons.push(format!(
                        "queue {name}: oldest message waiting {}s",
                        stats.oldest_age.unwrap_or_default().as_secs()
                    ));
                }
                QueueHealth {
                    status: if lagging { "lagging" } else { "ok" },
                    depth: stats.depth,
                    in_flight: stats.in_flight,
                    oldest_age_ms: stats.oldest_age.map(|a| a.as_millis() as u64),
                    dead_letters: stats.dead_letters,
                }
            }
            Err(_) => {
                reasons.push(format!("queue {name}: unreadable"));
                QueueHealth { status: "unknown", depth: 0, in_flight: 0, oldest_age_ms: None, dead_letters: 0 }
            }
        };
        queues.insert(name, health);
    }
    let breaker = state.breaker.state().await.unwrap_or_default();
    let retry_in_ms = state.breaker.open_for().await.map(|d| d.as_millis() as u64);
    if !matches!(breaker, BreakerState::Closed { .. }) {
        reasons.push(format!(
            "notification provider: circuit breaker {}; notifications are deferred, orders are unaffected",
            breaker.name()
        ));
    }
    let status = if !store_ok {
        "down"
    } else if reasons.is_empty() {
        "ok"
    } else {
        "degraded"
    };
    let code = if store_ok { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    (
        code,
        Json(Health {
            status,
            reasons,
            store: if store_ok { "ok" } else { "down" },
            queues,
            notification_provider: ProviderHealth { name: state.provider, breaker: breaker.name(), retry_in_ms },
        }),
    )
}
