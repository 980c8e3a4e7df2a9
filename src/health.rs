//! `GET /health` for the runner: its store is the SQLite database, its
//! queues the local ones. The report itself is `shared::hosts::health`.

use async_trait::async_trait;
use shared::adapters::sqlite::SqliteStore;
use shared::hosts::health::HealthProbe;
use shared::ports::QueueAdmin;

#[derive(Clone)]
pub struct HealthState {
    pub store: SqliteStore,
    pub provider: &'static str,
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
}
