//! The AWS backend: each function's data in its own DynamoDB table, one SQS
//! FIFO queue (and dead-letter queue) per consumer. Lambda and Spin both
//! wire the functions from it; they differ only in how they build the SDK
//! clients (aws-config on Lambda, wasi:http inside a component) and the
//! notification provider. The SQS client may be handed over unbuilt
//! ([`Deferred`]): a component that serves one request would otherwise build
//! it for nothing on every read.

use std::sync::Arc;

use async_trait::async_trait;
use aws_sdk_dynamodb::Client as DynamoClient;
use aws_sdk_sqs::Client as SqsClient;

use crate::deferred::Deferred;
use crate::dynamo::{
    DynamoAnalytics, DynamoConfig, DynamoInventory, DynamoNotifications, DynamoOrders, DynamoResilience, RetryPolicy,
    TableKind, ping,
};
use crate::sqs::{SqsConfig, SqsQueues};
use orderly_core::composition::Backend;
use orderly_core::events::routing::Consumer;
use orderly_core::ports::{
    BreakerStore, EventPublisher, InventoryStore, NoDeadlines, NotificationLog, NotificationProvider, OrderStore,
    Outbox, PaymentGateway, PriceList, ProcessedEvents, QueueAdmin, RateLimiter, ReadModelStore, Timer,
};
use orderly_core::settings::Settings;

/// The table that holds `owner`'s data.
pub fn table_of(owner: Consumer) -> TableKind {
    match owner {
        Consumer::OrderIntake => TableKind::Orders,
        Consumer::Inventory => TableKind::Inventory,
        Consumer::Notification => TableKind::Notifications,
        Consumer::Analytics => TableKind::Analytics,
    }
}

#[derive(Clone)]
pub struct AwsBackend {
    settings: Settings,
    tables: DynamoConfig,
    dynamo: DynamoClient,
    queues: Arc<SqsQueues>,
    provider: Arc<dyn NotificationProvider>,
    payment_gateway: Option<Arc<dyn PaymentGateway>>,
    timer: Arc<dyn Timer>,
}

impl AwsBackend {
    /// Builds requests only; makes no call. `sqs`: a client, or a
    /// [`Deferred`] one, built when a queue is first used.
    pub fn new(
        settings: Settings,
        dynamo: DynamoClient,
        sqs: impl Into<Deferred<SqsClient>>,
        provider: Arc<dyn NotificationProvider>,
    ) -> Self {
        let tables = DynamoConfig {
            stock_shards: settings.aws.stock_shards,
            stock_shards_max: settings.aws.stock_shards_max,
            outbox: settings.aws.outbox,
            retry: RetryPolicy { retries: settings.aws.store_retries, base: settings.aws.store_retry_base },
            ..DynamoConfig::from_settings(&settings.aws.tables)
        };
        let queues = SqsConfig { queues: settings.aws.queues.clone(), max_receives: settings.queues.max_receives };
        let queues = Arc::new(SqsQueues::new(sqs, queues));
        Self { settings, tables, dynamo, queues, provider, payment_gateway: None, timer: Arc::new(NoDeadlines) }
    }

    /// With the host runtime's timer (without one, no deadlines are enforced).
    pub fn with_timer(mut self, timer: Arc<dyn Timer>) -> Self {
        self.timer = timer;
        self
    }

    /// With the card payment gateway the host built from the settings
    /// (without one, payments are offline).
    pub fn with_payment_gateway(mut self, gateway: Option<Arc<dyn PaymentGateway>>) -> Self {
        self.payment_gateway = gateway;
        self
    }

    pub fn tables(&self) -> &DynamoConfig {
        &self.tables
    }

    pub fn dynamo(&self) -> &DynamoClient {
        &self.dynamo
    }

    /// The SQS client (built now if it was deferred).
    pub fn sqs(&self) -> &SqsClient {
        self.queues.client()
    }

    /// Publisher, consumer side and admin of the queues the settings name.
    pub fn queues(&self) -> Arc<SqsQueues> {
        self.queues.clone()
    }

    fn orders_table(&self) -> Arc<DynamoOrders> {
        Arc::new(DynamoOrders::new(self.dynamo.clone(), &self.tables))
    }

    fn inventory_table(&self) -> Arc<DynamoInventory> {
        Arc::new(DynamoInventory::new(self.dynamo.clone(), &self.tables))
    }

    fn resilience_table(&self, owner: Consumer) -> Arc<DynamoResilience> {
        Arc::new(DynamoResilience::new(self.dynamo.clone(), self.tables.table(table_of(owner)).to_owned()))
    }
}

#[async_trait]
impl Backend for AwsBackend {
    fn settings(&self) -> &Settings {
        &self.settings
    }

    fn orders(&self) -> Arc<dyn OrderStore> {
        self.orders_table()
    }

    fn prices(&self) -> Arc<dyn PriceList> {
        self.inventory_table()
    }

    fn inventory(&self) -> Arc<dyn InventoryStore> {
        self.inventory_table()
    }

    fn notifications(&self) -> Arc<dyn NotificationLog> {
        Arc::new(DynamoNotifications::new(self.dynamo.clone(), &self.tables))
    }

    fn read_models(&self) -> Arc<dyn ReadModelStore> {
        Arc::new(DynamoAnalytics::new(self.dynamo.clone(), &self.tables))
    }

    fn processed(&self, owner: Consumer) -> Arc<dyn ProcessedEvents> {
        match owner {
            Consumer::OrderIntake => self.orders_table(),
            Consumer::Inventory => self.inventory_table(),
            Consumer::Notification => Arc::new(DynamoNotifications::new(self.dynamo.clone(), &self.tables)),
            Consumer::Analytics => Arc::new(DynamoAnalytics::new(self.dynamo.clone(), &self.tables)),
        }
    }

    fn order_outbox(&self) -> Arc<dyn Outbox> {
        self.orders_table()
    }

    fn inventory_outbox(&self) -> Arc<dyn Outbox> {
        self.inventory_table()
    }

    fn publisher(&self) -> Arc<dyn EventPublisher> {
        self.queues.clone()
    }

    fn queue_admin(&self) -> Arc<dyn QueueAdmin> {
        self.queues.clone()
    }

    fn provider(&self) -> Arc<dyn NotificationProvider> {
        self.provider.clone()
    }

    fn timer(&self) -> Arc<dyn Timer> {
        self.timer.clone()
    }

    fn payment_gateway(&self) -> Option<Arc<dyn PaymentGateway>> {
        self.payment_gateway.clone()
    }

    /// Breakers live in notification's table, whoever reads them.
    fn breaker_store(&self) -> Arc<dyn BreakerStore> {
        self.resilience_table(Consumer::Notification)
    }

    fn rate_limiter(&self, owner: Consumer) -> Arc<dyn RateLimiter> {
        self.resilience_table(owner)
    }

    async fn store_ok(&self) -> bool {
        let pings = TableKind::ALL.map(|kind| ping(&self.dynamo, self.tables.table(kind)));
        futures::future::join_all(pings).await.iter().all(Result::is_ok)
    }
}

/// The static credentials the settings carry, if both halves are set (a Spin
/// component has no other source; Lambda uses its role's otherwise).
pub fn credentials(aws: &orderly_core::settings::AwsSettings) -> Option<aws_sdk_dynamodb::config::Credentials> {
    let (id, secret) = (aws.access_key_id.as_ref()?, aws.secret_access_key.as_ref()?);
    Some(aws_sdk_dynamodb::config::Credentials::new(id, secret, aws.session_token.clone(), None, "orderly-settings"))
}

/// The DynamoDB client's own retries (throttling, timeouts, 5xx) on the same
/// budget and backoff as the adapters' conflict retries, so one pair of
/// settings bounds how long a call keeps trying before its delivery fails and
/// the message returns to its queue.
pub fn dynamo_retry_config(aws: &orderly_core::settings::AwsSettings) -> aws_sdk_dynamodb::config::retry::RetryConfig {
    aws_sdk_dynamodb::config::retry::RetryConfig::standard()
        .with_max_attempts(aws.store_retries + 1)
        .with_initial_backoff(aws.store_retry_base)
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use aws_sdk_dynamodb::config::{BehaviorVersion, Credentials, Region};
    use aws_smithy_http_client::test_util::capture_request;

    use super::*;
    use crate::log_provider::LogProvider;

    #[test]
    fn handing_out_every_port_builds_no_deferred_sqs_client_until_a_queue_is_used() {
        let (http, _request) = capture_request(None);
        let credentials = Credentials::new("key", "secret", None, None, "test");
        let dynamo = DynamoClient::from_conf(
            aws_sdk_dynamodb::Config::builder()
                .behavior_version(BehaviorVersion::latest())
                .region(Region::new("us-east-1"))
                .credentials_provider(credentials.clone())
                .http_client(http.clone())
                .build(),
        );
        let builds = Arc::new(AtomicUsize::new(0));
        let counted = builds.clone();
        let sqs = Deferred::new(move || {
            counted.fetch_add(1, Ordering::SeqCst);
            SqsClient::from_conf(
                aws_sdk_sqs::Config::builder()
                    .behavior_version(aws_sdk_sqs::config::BehaviorVersion::latest())
                    .region(aws_sdk_sqs::config::Region::new("us-east-1"))
                    .credentials_provider(credentials.clone())
                    .http_client(http.clone())
                    .build(),
            )
        });
        let settings = Settings::load(&BTreeMap::new()).expect("the default settings");
        let backend = Arc::new(AwsBackend::new(settings, dynamo, sqs, Arc::new(LogProvider)));

        // Everything a function's wiring takes, the front door's /health included.
        let _ports = (
            (backend.orders(), backend.prices(), backend.inventory(), backend.notifications()),
            (backend.read_models(), Consumer::ALL.map(|owner| backend.processed(owner))),
            (backend.order_outbox(), backend.inventory_outbox(), backend.publisher(), backend.queue_admin()),
            (backend.breaker_store(), Consumer::ALL.map(|owner| backend.rate_limiter(owner))),
            orderly_core::composition::health(backend.clone()),
        );
        assert_eq!(builds.load(Ordering::SeqCst), 0, "no SQS client before a queue is used");

        let _ = (backend.sqs(), backend.queues().client());
        assert_eq!(builds.load(Ordering::SeqCst), 1, "built once, on first use");
    }
}
