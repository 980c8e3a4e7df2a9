//! `GET /health` on the runner: the shared report (`shared::hosts::health`)
//! over the SQLite store, its local queues and the provider's breaker.

use std::sync::Arc;

use async_trait::async_trait;
use shared::adapters::sqlite::SqliteStore;
use shared::hosts::health::HealthProbe;
use shared::ports::QueueAdmin;
use shared::resilience::breaker::CircuitBreaker;

pub use shared::hosts::health::{Health, LAG_THRESHOLD, ProviderHealth, QueueHealth};

#[derive(Clone)]
pub struct HealthState {
    pub store: SqliteStore,
    pub provider: &'static str,
    pub breaker: Arc<CircuitBreaker>,
}

#[async_trait]
impl HealthProbe for HealthState {
    async fn store_ok(&self) -> bool {
        self.store.ping().await.is_ok()
    }

    fn queues(&self) -> &dyn QueueAdmin {
        &self.store
    }

    fn provider(&self) -> &'static str {
        self.provider
    }

    fn breaker(&self) -> &CircuitBreaker {
        &self.breaker
    }
}
