//! `GET /health`: always answers, and says which dependency is degraded
//! instead of failing whole. 503 only when the store itself is down. Each
//! host says how to reach its store, queues and breaker through
//! [`HealthProbe`].

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::Serialize;
use utoipa::ToSchema;

use crate::events::routing::Consumer;
use crate::http::ApiRoutes;
use crate::ports::QueueAdmin;
use crate::resilience::breaker::{BreakerState, CircuitBreaker};

/// A consumer whose oldest message is older than this is lagging.
pub const LAG_THRESHOLD: Duration = Duration::from_secs(60);

/// What the health report looks at, host by host.
#[async_trait]
pub trait HealthProbe: Send + Sync {
    /// Whether the store answers at all.
    async fn store_ok(&self) -> bool;
    fn queues(&self) -> &dyn QueueAdmin;
    /// The notification provider's name (`webhook`, `log`).
    fn provider(&self) -> &'static str;
    /// The provider's circuit breaker (its state is shared through the store).
    fn breaker(&self) -> &CircuitBreaker;
    /// The payment gateway's breaker, when a gateway is configured.
    fn payment_breaker(&self) -> Option<&CircuitBreaker>;
}

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
    /// The card payment gateway's breaker; absent without a gateway.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub payment_breaker: Option<BreakerHealth>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct BreakerHealth {
    /// `closed`, `open` or `half_open`.
    pub state: &'static str,
    /// While open: when the next probe may go.
    pub retry_in_ms: Option<u64>,
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

/// The `/health` route, documented.
pub fn router(probe: Arc<dyn HealthProbe>) -> ApiRoutes {
    crate::api_routes!(Arc<dyn HealthProbe> => [health]).with_state(probe)
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
pub async fn health(State(probe): State<Arc<dyn HealthProbe>>) -> (StatusCode, Json<Health>) {
    let mut reasons = Vec::new();
    let store_ok = probe.store_ok().await;
    if !store_ok {
        reasons.push("store: not answering".to_owned());
    }
    let stats = futures::future::join_all(Consumer::ALL.map(|c| probe.queues().stats(c.queue()))).await;
    let mut queues = BTreeMap::new();
    for (consumer, stats) in Consumer::ALL.into_iter().zip(stats) {
        let name = consumer.queue();
        let health = match stats {
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
    let breaker = probe.breaker().state().await.unwrap_or_default();
    let retry_in_ms = probe.breaker().open_for().await.map(|d| d.as_millis() as u64);
    if !matches!(breaker, BreakerState::Closed { .. }) {
        reasons.push(format!(
            "notification provider: circuit breaker {}; notifications are deferred, orders are unaffected",
            breaker.name()
        ));
    }
    let payment_breaker = match probe.payment_breaker() {
        None => None,
        Some(breaker) => {
            let state = breaker.state().await.unwrap_or_default();
            if !matches!(state, BreakerState::Closed { .. }) {
                reasons.push(format!(
                    "payment gateway: circuit breaker {}; orders are confirmed with offline payment",
                    state.name()
                ));
            }
            let retry_in_ms = breaker.open_for().await.map(|d| d.as_millis() as u64);
            Some(BreakerHealth { state: state.name(), retry_in_ms })
        }
    };
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
            notification_provider: ProviderHealth { name: probe.provider(), breaker: breaker.name(), retry_in_ms },
            payment_breaker,
        }),
    )
}
