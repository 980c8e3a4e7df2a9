//! The embedded backend: every port on one SQLite database, what the local
//! runner wires the four functions from. One database, so one outbox and one
//! set of processed marks serve every function; each function still writes
//! only its own tables.

use std::sync::Arc;

use async_trait::async_trait;

use super::SqliteStore;
use orderly_core::composition::Backend;
use orderly_core::events::routing::Consumer;
use orderly_core::ports::{
    BreakerStore, Cache, EventPublisher, InventoryStore, NotificationLog, NotificationProvider, OrderStore, Outbox,
    PaymentGateway, PriceList, ProcessedEvents, QueueAdmin, RateLimiter, ReadModelStore, Timer,
};
use orderly_core::settings::Settings;

#[derive(Clone)]
pub struct SqliteBackend {
    settings: Settings,
    store: SqliteStore,
    provider: Arc<dyn NotificationProvider>,
    cache: Option<Arc<dyn Cache>>,
    payment_gateway: Option<Arc<dyn PaymentGateway>>,
}

impl SqliteBackend {
    /// `provider`: the notification provider the host built from the
    /// settings; `cache`: the catalog's in-process cache, if any.
    pub fn new(
        settings: Settings,
        store: SqliteStore,
        provider: Arc<dyn NotificationProvider>,
        cache: Option<Arc<dyn Cache>>,
    ) -> Self {
        Self { settings, store, provider, cache, payment_gateway: None }
    }

    /// With the card payment gateway the host built from the settings
    /// (without one, payments are offline).
    pub fn with_payment_gateway(mut self, gateway: Option<Arc<dyn PaymentGateway>>) -> Self {
        self.payment_gateway = gateway;
        self
    }

    pub fn store(&self) -> &SqliteStore {
        &self.store
    }

    fn shared(&self) -> Arc<SqliteStore> {
        Arc::new(self.store.clone())
    }
}

#[async_trait]
impl Backend for SqliteBackend {
    fn settings(&self) -> &Settings {
        &self.settings
    }

    fn orders(&self) -> Arc<dyn OrderStore> {
        self.shared()
    }

    fn prices(&self) -> Arc<dyn PriceList> {
        self.shared()
    }

    fn inventory(&self) -> Arc<dyn InventoryStore> {
        self.shared()
    }

    fn notifications(&self) -> Arc<dyn NotificationLog> {
        self.shared()
    }

    fn read_models(&self) -> Arc<dyn ReadModelStore> {
        self.shared()
    }

    fn processed(&self, _owner: Consumer) -> Arc<dyn ProcessedEvents> {
        self.shared()
    }

    fn order_outbox(&self) -> Arc<dyn Outbox> {
        self.shared()
    }

    fn inventory_outbox(&self) -> Arc<dyn Outbox> {
        self.shared()
    }

    fn publisher(&self) -> Arc<dyn EventPublisher> {
        self.shared()
    }

    fn queue_admin(&self) -> Arc<dyn QueueAdmin> {
        self.shared()
    }

    fn provider(&self) -> Arc<dyn NotificationProvider> {
        self.provider.clone()
    }

    fn timer(&self) -> Arc<dyn Timer> {
        Arc::new(crate::TokioTimer)
    }

    fn payment_gateway(&self) -> Option<Arc<dyn PaymentGateway>> {
        self.payment_gateway.clone()
    }

    fn breaker_store(&self) -> Arc<dyn BreakerStore> {
        self.shared()
    }

    fn rate_limiter(&self, _owner: Consumer) -> Arc<dyn RateLimiter> {
        self.shared()
    }

    fn cache(&self) -> Option<Arc<dyn Cache>> {
        self.cache.clone()
    }

    async fn store_ok(&self) -> bool {
        self.store.ping().await.is_ok()
    }
}
