//! The port contract suites against the DynamoDB and SQS adapters, on an AWS
//! emulator at `ORDERLY_AWS_ENDPOINT` (e.g. `http://127.0.0.1:4566`;
//! `scripts/aws-emulator.sh start` runs one). Every case gets its own tables
//! or queues under a fresh name prefix.
//!
//! Without `ORDERLY_AWS_ENDPOINT` every case is skipped with a message,
//! except under CI (`CI` set), where a missing emulator is a failure.

use std::collections::BTreeMap;
use std::sync::OnceLock;

use aws_config::BehaviorVersion;
use aws_sdk_dynamodb::config::Credentials;
use aws_sdk_sqs::types::QueueAttributeName;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use orderly_adapters::dynamo::faults::{FaultCounts, FaultShares, FaultyHttpClient};
use orderly_adapters::dynamo::{
    DynamoAnalytics, DynamoConfig, DynamoInventory, DynamoNotifications, DynamoOrders, DynamoResilience, OutboxMode,
    RetryPolicy, TableKind, create_table, enable_ttl, events_in_stream_image,
};
use orderly_adapters::sqs::{QueueUrls, SqsConfig, SqsQueues};
use orderly_contract::MAX_RECEIVES;
use orderly_core::domain::{Order, OrderId};
use orderly_core::events::Envelope;
use orderly_core::events::routing::Consumer;
use orderly_core::messaging::StreamedEvents;
use orderly_core::ports::{
    IdempotencyClaim, OrderStore, Outbox, OutboxEntry, PlaceOutcome, ProcessedEvent, QueueError, StoreError,
};

/// The adapter under test, on names no other case uses.
pub struct Fresh<T>(T);

impl<T> std::ops::Deref for Fresh<T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.0
    }
}

fn endpoint() -> Option<String> {
    match std::env::var("ORDERLY_AWS_ENDPOINT") {
        Ok(url) if !url.is_empty() => Some(url),
        _ if std::env::var_os("CI").is_some() => {
            panic!("CI must run the AWS contract suites: ORDERLY_AWS_ENDPOINT is not set")
        }
        _ => None,
    }
}

async fn sdk_config(endpoint: &str) -> aws_config::SdkConfig {
    aws_config::defaults(BehaviorVersion::latest())
        .endpoint_url(endpoint)
        .region(aws_config::Region::new("us-east-1"))
        .credentials_provider(Credentials::new("test", "test", None, None, "contract-tests"))
        .load()
        .await
}

fn prefix() -> String {
    static RUN: OnceLock<String> = OnceLock::new();
    let run = RUN.get_or_init(|| format!("{:x}", chrono::Utc::now().timestamp_millis()));
    format!("ct-{run}-{}", &uuid::Uuid::new_v4().simple().to_string()[..8])
}

/// A fresh table of `kind` and its adapter's config, or `None` (skip).
async fn fresh_table(kind: TableKind) -> Option<(aws_sdk_dynamodb::Client, DynamoConfig)> {
    let Some(endpoint) = endpoint() else {
        eprintln!("skipped: set ORDERLY_AWS_ENDPOINT to run the DynamoDB contract suites");
        return None;
    };
    let client = aws_sdk_dynamodb::Client::new(&sdk_config(&endpoint).await);
    let config = DynamoConfig::with_prefix(&prefix());
    let name = config.table(kind);
    create_table(&client, name, kind).await.expect("create table");
    enable_ttl(&client, name).await.expect("enable TTL");
    Some((client, config))
}

macro_rules! skip_without_emulator {
    ($fresh:expr) => {
        match $fresh {
            Some(store) => store,
            None => return,
        }
    };
}

pub async fn orders() -> Option<Fresh<DynamoOrders>> {
    let (client, config) = fresh_table(TableKind::Orders).await?;
    Some(Fresh(DynamoOrders::new(client, &config)))
}

pub async fn inventory() -> Option<Fresh<DynamoInventory>> {
    let (client, config) = fresh_table(TableKind::Inventory).await?;
    Some(Fresh(DynamoInventory::new(client, &config)))
}

/// A DynamoDB client whose calls fail at `shares` (dynamo::faults), with
/// the retry budget a deployment would give it, and a table for it.
async fn faulty_table(
    kind: TableKind,
    shares: FaultShares,
) -> Option<(aws_sdk_dynamodb::Client, DynamoConfig, Arc<FaultCounts>)> {
    faulty_table_at_most(kind, shares, u64::MAX).await
}

/// [`faulty_table`], injecting no more than `faults` faults in all.
async fn faulty_table_at_most(
    kind: TableKind,
    shares: FaultShares,
    faults: u64,
) -> Option<(aws_sdk_dynamodb::Client, DynamoConfig, Arc<FaultCounts>)> {
    let (_, config) = fresh_table(kind).await?;
    let sdk = sdk_config(&endpoint()?).await;
    let faulty = FaultyHttpClient::new(aws_smithy_http_client::Builder::new().build_http(), shares).at_most(faults);
    let counts = faulty.counts();
    let retry = RetryPolicy { retries: 10, base: std::time::Duration::from_millis(2) };
    let settings = orderly_core::settings::Settings::defaults();
    let aws = orderly_core::settings::AwsSettings {
        store_retries: retry.retries,
        store_retry_base: retry.base,
        ..settings.aws
    };
    let client = aws_sdk_dynamodb::Client::from_conf(
        aws_sdk_dynamodb::config::Builder::from(&sdk)
            .http_client(faulty)
            .retry_config(orderly_adapters::aws_backend::dynamo_retry_config(&aws))
            .build(),
    );
    Some((client, DynamoConfig { retry, ..config }, counts))
}

/// Conflicts and throttling on a tenth of the calls each.
const FAULTS: FaultShares = FaultShares { conflict: 0.1, throttle: 0.1, timeout_after_commit: 0.0 };

pub async fn faulty_inventory() -> Option<Fresh<DynamoInventory>> {
    let (client, config, _) = faulty_table(TableKind::Inventory, FAULTS).await?;
    Some(Fresh(DynamoInventory::new(client, &DynamoConfig { stock_shards: 4, ..config })))
}

pub async fn faulty_orders() -> Option<Fresh<DynamoOrders>> {
    let (client, config, _) = faulty_table(TableKind::Orders, FAULTS).await?;
    Some(Fresh(DynamoOrders::new(client, &config)))
}

/// The orders table with `outbox = stream` behind the fault layer; its
/// stream read back by a client without faults.
pub async fn faulty_streamed_orders() -> Option<Fresh<Streamed<DynamoOrders>>> {
    let (client, config, _) = faulty_table(TableKind::Orders, FAULTS).await?;
    let plain = aws_sdk_dynamodb::Client::new(&sdk_config(&endpoint()?).await);
    Some(stream_mode_orders(client, plain, config).await)
}

pub async fn faulty_analytics() -> Option<Fresh<DynamoAnalytics>> {
    let (client, config, _) = faulty_table(TableKind::Analytics, FAULTS).await?;
    Some(Fresh(DynamoAnalytics::new(client, &config)))
}

/// A table's stream, read from its start as the Lambda relay is handed it:
/// the events its writes left (`dynamo::events_in_stream_image`, the
/// relay's own reading). Serves as the outbox of a store with `outbox =
/// stream`: an event is pending until removed.
pub struct StreamTap {
    streams: aws_sdk_dynamodbstreams::Client,
    dynamo: aws_sdk_dynamodb::Client,
    table: String,
    removed: std::sync::Mutex<std::collections::HashSet<String>>,
}

impl StreamTap {
    async fn new(dynamo: aws_sdk_dynamodb::Client, table: &str) -> Self {
        let sdk = sdk_config(&endpoint().expect("an emulator")).await;
        let streams = aws_sdk_dynamodbstreams::Client::new(&sdk);
        Self { streams, dynamo, table: table.to_owned(), removed: Default::default() }
    }

    /// Every event in the stream so far, in order, each with its position:
    /// the outbox item's key, or the record's sequence number and index.
    pub async fn events(&self) -> Vec<OutboxEntry> {
        use aws_sdk_dynamodbstreams::types::{AttributeValue, OperationType, ShardIteratorType};
        let table = self.dynamo.describe_table().table_name(&self.table).send().await.expect("describe table");
        let arn = table.table.and_then(|t| t.latest_stream_arn).expect("the table has a stream");
        let stream = self.streams.describe_stream().stream_arn(&arn).send().await.expect("describe stream");
        let shards = stream.stream_description.and_then(|d| d.shards).unwrap_or_default();
        let mut records = Vec::new();
        for shard in shards {
            let mut iterator = self
                .streams
                .get_shard_iterator()
                .stream_arn(&arn)
                .shard_id(shard.shard_id.expect("a shard id"))
                .shard_iterator_type(ShardIteratorType::TrimHorizon)
                .send()
                .await
                .expect("shard iterator")
                .shard_iterator;
            while let Some(at) = iterator {
                let page = self.streams.get_records().shard_iterator(at).send().await.expect("records");
                let fetched = page.records.unwrap_or_default();
                iterator = if fetched.is_empty() { None } else { page.next_shard_iterator };
                records.extend(fetched);
            }
        }
        let sequence = |r: &aws_sdk_dynamodbstreams::types::Record| {
            r.dynamodb.as_ref().and_then(|d| d.sequence_number.clone()).unwrap_or_default()
        };
        records.sort_by_key(|r| (sequence(r).len(), sequence(r)));
        let mut entries = Vec::new();
        for record in records {
            if !matches!(record.event_name, Some(OperationType::Insert | OperationType::Modify)) {
                continue;
            }
            let seq = sequence(&record);
            let image: serde_json::Map<String, serde_json::Value> = record
                .dynamodb
                .and_then(|d| d.new_image)
                .unwrap_or_default()
                .into_iter()
                .filter_map(|(name, value)| match value {
                    AttributeValue::S(text) => Some((name, serde_json::json!({ "S": text }))),
                    _ => None,
                })
                .collect();
            match events_in_stream_image(&serde_json::Value::Object(image)) {
                Some(Ok(StreamedEvents::Entry(entry))) => entries.push(entry),
                Some(Ok(StreamedEvents::Carried(events))) => entries.extend(
                    events
                        .into_iter()
                        .enumerate()
                        .map(|(i, envelope)| OutboxEntry { position: format!("stream/{seq}/{i}"), envelope }),
                ),
                Some(Err(error)) => panic!("a stream image the relay cannot read: {error}"),
                None => {}
            }
        }
        entries
    }
}

/// A store with `outbox = stream`, its outbox read from its table's stream.
pub struct Streamed<S> {
    store: S,
    tap: StreamTap,
}

impl<S> std::ops::Deref for Streamed<S> {
    type Target = S;
    fn deref(&self) -> &S {
        &self.store
    }
}

#[async_trait::async_trait]
impl<S: Outbox> Outbox for Streamed<S> {
    async fn pending(&self, after: Option<&str>, limit: usize) -> Result<Vec<OutboxEntry>, QueueError> {
        let events = self.tap.events().await;
        let start = after.and_then(|after| events.iter().position(|e| e.position == after)).map_or(0, |at| at + 1);
        let removed = self.tap.removed.lock().unwrap().clone();
        Ok(events.into_iter().skip(start).filter(|e| !removed.contains(&e.position)).take(limit).collect())
    }

    async fn remove(&self, positions: &[String]) -> Result<(), QueueError> {
        let items: Vec<String> = positions.iter().filter(|p| !p.starts_with("stream/")).cloned().collect();
        self.store.remove(&items).await?;
        self.tap.removed.lock().unwrap().extend(positions.iter().cloned());
        Ok(())
    }

    async fn keep(&self, events: &[Envelope]) -> Result<(), QueueError> {
        self.store.keep(events).await
    }
}

#[async_trait::async_trait]
impl<S: OrderStore> OrderStore for Streamed<S> {
    async fn place(
        &self,
        order: &Order,
        claim: Option<&IdempotencyClaim>,
        outbox: &[Envelope],
        now: DateTime<Utc>,
    ) -> Result<PlaceOutcome, StoreError> {
        self.store.place(order, claim, outbox, now).await
    }

    async fn replay(&self, claim: &IdempotencyClaim, now: DateTime<Utc>) -> Result<Option<PlaceOutcome>, StoreError> {
        self.store.replay(claim, now).await
    }

    async fn get(&self, id: OrderId) -> Result<Option<Order>, StoreError> {
        self.store.get(id).await
    }

    async fn save_transition(
        &self,
        order: &Order,
        outbox: &[Envelope],
        processed: Option<&ProcessedEvent>,
    ) -> Result<(), StoreError> {
        self.store.save_transition(order, outbox, processed).await
    }

    async fn publish(&self, outbox: &[Envelope], processed: &ProcessedEvent) -> Result<(), StoreError> {
        self.store.publish(outbox, processed).await
    }
}

pub async fn streamed_orders() -> Option<Fresh<Streamed<DynamoOrders>>> {
    let (client, config) = fresh_table(TableKind::Orders).await?;
    Some(stream_mode_orders(client.clone(), client, config).await)
}

/// The orders store writing through `client` with `outbox = stream`, its
/// table's stream read through `tap_client`.
async fn stream_mode_orders(
    client: aws_sdk_dynamodb::Client,
    tap_client: aws_sdk_dynamodb::Client,
    config: DynamoConfig,
) -> Fresh<Streamed<DynamoOrders>> {
    let tap = StreamTap::new(tap_client, &config.orders_table).await;
    let store = DynamoOrders::new(client, &DynamoConfig { outbox: OutboxMode::Stream, ..config });
    Fresh(Streamed { store, tap })
}

/// Inventory with `outbox = stream` and four stock items per product (the
/// product item is one of them), and its table's stream.
pub async fn streamed_inventory_and_tap() -> Option<(DynamoInventory, StreamTap)> {
    let (client, config) = fresh_table(TableKind::Inventory).await?;
    let tap = StreamTap::new(client.clone(), &config.inventory_table).await;
    let config = DynamoConfig { outbox: OutboxMode::Stream, stock_shards: 4, ..config };
    Some((DynamoInventory::new(client, &config), tap))
}

pub async fn streamed_inventory() -> Option<Fresh<DynamoInventory>> {
    Some(Fresh(streamed_inventory_and_tap().await?.0))
}

/// Stock spread over four items per product.
pub async fn sharded_inventory() -> Option<Fresh<DynamoInventory>> {
    let (client, config) = fresh_table(TableKind::Inventory).await?;
    Some(Fresh(DynamoInventory::new(client, &DynamoConfig { stock_shards: 4, ..config })))
}

pub async fn notifications() -> Option<Fresh<DynamoNotifications>> {
    let (client, config) = fresh_table(TableKind::Notifications).await?;
    Some(Fresh(DynamoNotifications::new(client, &config)))
}

pub async fn analytics() -> Option<Fresh<DynamoAnalytics>> {
    let (client, config) = fresh_table(TableKind::Analytics).await?;
    Some(Fresh(DynamoAnalytics::new(client, &config)))
}

/// Breaker state and rate-limit buckets live in the owning function's table
/// (here a fresh notifications table).
pub async fn resilience() -> Option<Fresh<DynamoResilience>> {
    let (client, config) = fresh_table(TableKind::Notifications).await?;
    Some(Fresh(DynamoResilience::new(client, config.notifications_table)))
}

/// One queue + DLQ per consumer, redriven after `MAX_RECEIVES`, as
/// template.yaml makes them: FIFO, but standard for a consumer that needs no
/// order (analytics).
pub async fn queues() -> Option<Fresh<SqsQueues>> {
    let Some(endpoint) = endpoint() else {
        eprintln!("skipped: set ORDERLY_AWS_ENDPOINT to run the SQS contract suite");
        return None;
    };
    let client = aws_sdk_sqs::Client::new(&sdk_config(&endpoint).await);
    let prefix = prefix();
    let mut queues = BTreeMap::new();
    for consumer in Consumer::ALL {
        let fifo = |name: &str| {
            let create = client.create_queue();
            if consumer.needs_order() {
                create.queue_name(format!("{prefix}-{name}.fifo")).attributes(QueueAttributeName::FifoQueue, "true")
            } else {
                create.queue_name(format!("{prefix}-{name}"))
            }
        };
        let dlq = fifo(consumer.dead_letter_queue()).send().await.expect("create DLQ");
        let dead_letter_url = dlq.queue_url.expect("DLQ URL");
        let arn = client
            .get_queue_attributes()
            .queue_url(&dead_letter_url)
            .attribute_names(QueueAttributeName::QueueArn)
            .send()
            .await
            .expect("DLQ attributes")
            .attributes
            .and_then(|mut a| a.remove(&QueueAttributeName::QueueArn))
            .expect("DLQ ARN");
        let redrive = serde_json::json!({"deadLetterTargetArn": arn, "maxReceiveCount": MAX_RECEIVES}).to_string();
        let main =
            fifo(consumer.queue()).attributes(QueueAttributeName::RedrivePolicy, redrive).send().await.expect("queue");
        queues.insert(
            consumer.queue().to_owned(),
            QueueUrls { url: main.queue_url.expect("queue URL"), dead_letter_url },
        );
    }
    Some(Fresh(SqsQueues::new(client, SqsConfig { queues, max_receives: MAX_RECEIVES })))
}

mod order_store {
    orderly_contract::order_store_contract!(skip_without_emulator!(super::orders().await));
}

/// The suite with `outbox = stream`, the events read back from the table's
/// stream as Lambda hands them to the relay.
mod order_store_with_events_on_items {
    orderly_contract::order_store_contract!(skip_without_emulator!(super::streamed_orders().await));
}

/// With `outbox = stream`, each write's events reach the stream once, on
/// the item it changed, and nothing is written to the outbox.
mod stream_images {
    use orderly_contract::fixtures::{mark, now, order_for, placed_event, product, sku};
    use orderly_core::domain::{OrderId, Reservation, ReservationState};
    use orderly_core::ports::{InventoryStore, Outbox, ReservationChange, StockMove};

    use super::*;

    fn event(who: &str) -> Envelope {
        placed_event(&order_for(who, &[("TEA", 1)]))
    }

    /// The product item is also the first of its stock items: the
    /// reservation that takes from it after a restock must not hand the
    /// restock's event over again.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn every_inventory_write_hands_its_events_to_the_stream_once() {
        let Some((store, tap)) = streamed_inventory_and_tap().await else { return };
        let (created, restocked, reserved) = (event("a"), event("b"), event("c"));
        store.save_product(&product("TEA", 4), None, std::slice::from_ref(&created)).await.unwrap();
        let read = store.product(&sku("TEA")).await.unwrap().unwrap();
        let units = orderly_core::domain::RestockQuantity::parse(8).unwrap();
        store
            .restock(&read.restock(units, now()).unwrap(), read.version, 8, std::slice::from_ref(&restocked))
            .await
            .unwrap();
        // As the saga does before it reserves (the take is planned from it).
        assert_eq!(store.available(&[sku("TEA")]).await.unwrap()[&sku("TEA")], 12);
        let order_id = OrderId::from_uuid(uuid::Uuid::now_v7());
        let take = ReservationChange {
            reservation: Reservation {
                order_id,
                state: ReservationState::Reserved,
                lines: vec![(sku("TEA"), 12)],
                updated_at: now(),
            },
            expected: None,
            stock: StockMove::Take(vec![(sku("TEA"), 12)]),
        };
        store.apply_reservation(&take, std::slice::from_ref(&reserved), &mark("inventory")).await.unwrap();
        let handed: Vec<Envelope> = tap.events().await.into_iter().map(|e| e.envelope).collect();
        assert_eq!(handed, [created, restocked, reserved], "each write's events, once, in order");
        assert!(store.pending(None, 10).await.unwrap().is_empty(), "no outbox item was written");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn an_order_write_leaves_its_events_on_the_order_and_no_outbox_item() {
        let Some(store) = streamed_orders().await else { return };
        let order = order_for("alice", &[("A", 1)]);
        let placed = placed_event(&order);
        store.place(&order, None, std::slice::from_ref(&placed), now()).await.unwrap();
        assert!(store.store.pending(None, 10).await.unwrap().is_empty(), "no outbox item was written");
        let handed: Vec<Envelope> = store.tap.events().await.into_iter().map(|e| e.envelope).collect();
        assert_eq!(handed, [placed]);
    }
}

/// Inventory's writes with `outbox = stream` (its events: `stream_images`).
mod inventory_store_with_events_on_items {
    orderly_contract::inventory_store_contract!(skip_without_emulator!(super::streamed_inventory().await));
}

mod inventory_store {
    orderly_contract::inventory_store_contract!(skip_without_emulator!(super::inventory().await));
}

/// The same suite with every product's stock on four items.
mod sharded_inventory_store {
    orderly_contract::inventory_store_contract!(skip_without_emulator!(super::sharded_inventory().await));
}

/// Products written before sharding (stock on the product item only) keep
/// working when the setting goes up, and grow on their next restock.
mod sharding_existing_products {
    use orderly_contract::fixtures::{mark, now, product, sku};
    use orderly_core::domain::{OrderId, Reservation, ReservationState, RestockQuantity};
    use orderly_core::ports::{InventoryStore, ReservationChange, StockMove};

    use super::*;

    fn change(
        order: OrderId,
        state: ReservationState,
        expected: Option<ReservationState>,
        stock: StockMove,
    ) -> ReservationChange {
        ReservationChange {
            reservation: Reservation { order_id: order, state, lines: vec![(sku("OLD"), 3)], updated_at: now() },
            expected,
            stock,
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn an_unsharded_product_keeps_its_stock_and_grows_on_restock() {
        let Some((client, config)) = fresh_table(TableKind::Inventory).await else { return };
        let before = DynamoInventory::new(client.clone(), &config);
        before.save_product(&product("OLD", 5), None, &[]).await.unwrap();
        let order = OrderId::from_uuid(uuid::Uuid::now_v7());
        let three = vec![(sku("OLD"), 3)];
        before
            .apply_reservation(
                &change(order, ReservationState::Reserved, None, StockMove::Take(three.clone())),
                &[],
                &mark("inventory"),
            )
            .await
            .unwrap();

        let after = DynamoInventory::new(client.clone(), &DynamoConfig { stock_shards: 4, ..config.clone() });
        let old = after.product(&sku("OLD")).await.unwrap().unwrap();
        assert_eq!((old.available, old.reserved), (2, 3));
        // Released where it was taken (shard 0: the reservation predates `taken`).
        let released =
            change(order, ReservationState::Released, Some(ReservationState::Reserved), StockMove::Return(three));
        after.apply_reservation(&released, &[], &mark("inventory")).await.unwrap();
        let old = after.product(&sku("OLD")).await.unwrap().unwrap();
        assert_eq!((old.available, old.reserved), (5, 0));

        let quantity = RestockQuantity::parse(8).unwrap();
        after.restock(&old.restock(quantity, now()).unwrap(), old.version, 8, &[]).await.unwrap();
        let shards = client
            .scan()
            .table_name(&config.inventory_table)
            .filter_expression("begins_with(pk, :stock)")
            .expression_attribute_values(":stock", aws_sdk_dynamodb::types::AttributeValue::S("STOCK#OLD#".into()))
            .send()
            .await
            .unwrap()
            .count;
        assert_eq!(shards, 3, "the restock spread over three new stock items");
        assert_eq!(after.available(&[sku("OLD")]).await.unwrap()[&sku("OLD")], 13);
        // The narrower adapter still sees every shard the product has.
        assert_eq!(before.product(&sku("OLD")).await.unwrap().unwrap().available, 13);
    }
}

/// Processed marks written before they lived on the order and reservation
/// items (an item of their own, `PROCESSED#...`) are still honoured: a
/// redelivery of such an event whose write is refused is a duplicate, not a
/// conflict. Here the old form is made as the code before made it: the
/// change without the mark on the item, and the mark's own item.
mod marks_of_the_old_form {
    use orderly_contract::fixtures::{mark, now, order_for, product, sku};
    use orderly_core::domain::{OrderId, Reservation, ReservationState};
    use orderly_core::ports::{InventoryStore, OrderStore, ProcessedEvents, ReservationChange, StockMove, StoreError};

    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn an_order_moved_by_an_event_before_the_upgrade_refuses_its_redelivery() {
        let Some(store) = orders().await else { return };
        let order = order_for("alice", &[("A", 1)]);
        store.place(&order, None, &[], now()).await.unwrap();
        let seen = mark("order-intake");
        let confirmed = order.confirm_offline("Pay by bank transfer".into(), now()).unwrap();
        store.save_transition(&confirmed, &[], None).await.unwrap();
        store.mark_processed(&seen).await.unwrap();
        assert_eq!(store.save_transition(&confirmed, &[], Some(&seen)).await, Err(StoreError::AlreadyProcessed));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_reservation_made_by_an_event_before_the_upgrade_refuses_its_redelivery() {
        let Some(store) = inventory().await else { return };
        store.save_product(&product("A", 5), None, &[]).await.unwrap();
        let order = OrderId::from_uuid(uuid::Uuid::now_v7());
        let take = ReservationChange {
            reservation: Reservation {
                order_id: order,
                state: ReservationState::Reserved,
                lines: vec![(sku("A"), 2)],
                updated_at: now(),
            },
            expected: None,
            stock: StockMove::Take(vec![(sku("A"), 2)]),
        };
        // Written under another id, so the item does not name `seen`.
        store.apply_reservation(&take, &[], &mark("inventory")).await.unwrap();
        let seen = mark("inventory");
        store.mark_processed(&seen).await.unwrap();
        assert_eq!(store.apply_reservation(&take, &[], &seen).await, Err(StoreError::AlreadyProcessed));
        let a = store.product(&sku("A")).await.unwrap().unwrap();
        assert_eq!((a.available, a.reserved), (3, 2));
    }
}

/// A crash between commit and acknowledgement: the write went through but
/// its answer was lost (every call times out after committing), so the
/// message comes back. Its redelivery finds the event's id on the item it
/// wrote and writes nothing.
mod redelivery_after_a_lost_answer {
    use orderly_contract::fixtures::{mark, now, order_for, placed_event, product, sku};
    use orderly_core::domain::{OrderId, Reservation, ReservationState, RestockQuantity};
    use orderly_core::ports::{InventoryStore, OrderStore, Outbox, ReservationChange, StockMove, StoreError};

    use super::*;

    const LOST_ANSWERS: FaultShares = FaultShares { conflict: 0.0, throttle: 0.0, timeout_after_commit: 1.0 };

    async fn plain_client() -> aws_sdk_dynamodb::Client {
        aws_sdk_dynamodb::Client::new(&sdk_config(&endpoint().expect("an emulator")).await)
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_confirmation_whose_answer_was_lost_is_a_duplicate_when_redelivered() {
        let Some((faulty, config, counts)) = faulty_table(TableKind::Orders, LOST_ANSWERS).await else { return };
        let (crashing, store) = (DynamoOrders::new(faulty, &config), DynamoOrders::new(plain_client().await, &config));
        let order = order_for("alice", &[("A", 1)]);
        store.place(&order, None, &[], now()).await.unwrap();
        let seen = mark("order-intake");
        let confirmed = order.confirm_offline("Pay by bank transfer".into(), now()).unwrap();
        let event = placed_event(&confirmed);
        let lost = crashing.save_transition(&confirmed, std::slice::from_ref(&event), Some(&seen)).await;
        assert!(lost.is_err(), "no answer came back: {lost:?}");
        assert!(counts.get(orderly_adapters::dynamo::faults::Fault::TimeoutAfterCommit) > 0);
        assert_eq!(store.get(order.id()).await.unwrap(), Some(confirmed.clone()), "the write went through");
        assert_eq!(
            store.save_transition(&confirmed, std::slice::from_ref(&event), Some(&seen)).await,
            Err(StoreError::AlreadyProcessed)
        );
        assert_eq!(store.pending(None, 10).await.unwrap().len(), 1, "the event is written once");
    }

    /// The SDK sends a write again when its answer is lost; that copy meets
    /// the real answer: its own version condition, failed by the first.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_restock_whose_first_answer_was_lost_adds_its_units_once() {
        let Some((faulty, config, counts)) = faulty_table_at_most(TableKind::Inventory, LOST_ANSWERS, 1).await else {
            return;
        };
        let store = DynamoInventory::new(plain_client().await, &config);
        store.save_product(&product("A", 5), None, &[]).await.unwrap();
        let current = store.product(&sku("A")).await.unwrap().unwrap();
        let quantity = RestockQuantity::parse(3).unwrap();
        let restocked = current.restock(quantity, now()).unwrap();
        let crashing = DynamoInventory::new(faulty, &config);
        assert_eq!(crashing.restock(&restocked, current.version, 3, &[]).await, Ok(()), "it went through once");
        assert_eq!(counts.get(orderly_adapters::dynamo::faults::Fault::TimeoutAfterCommit), 1);
        let after = store.product(&sku("A")).await.unwrap().unwrap();
        assert_eq!((after.available, after.version), (8, restocked.version), "the units were added once");
        // Someone else's write on the same version is still a lost race.
        assert_eq!(store.restock(&restocked, current.version, 3, &[]).await, Err(StoreError::Conflict));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_product_whose_first_answer_was_lost_is_created_once() {
        let Some((faulty, config, counts)) = faulty_table_at_most(TableKind::Inventory, LOST_ANSWERS, 1).await else {
            return;
        };
        let crashing = DynamoInventory::new(faulty, &config);
        assert_eq!(crashing.save_product(&product("B", 5), None, &[]).await, Ok(()), "created, not a conflict");
        assert_eq!(counts.get(orderly_adapters::dynamo::faults::Fault::TimeoutAfterCommit), 1);
        let store = DynamoInventory::new(plain_client().await, &config);
        assert_eq!(store.product(&sku("B")).await.unwrap().map(|b| (b.available, b.version)), Some((5, 1)));
        assert_eq!(store.save_product(&product("B", 5), None, &[]).await, Err(StoreError::Conflict));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_reservation_whose_answer_was_lost_is_a_duplicate_when_redelivered() {
        let Some((faulty, config, _)) = faulty_table(TableKind::Inventory, LOST_ANSWERS).await else { return };
        let store = DynamoInventory::new(plain_client().await, &config);
        store.save_product(&product("A", 5), None, &[]).await.unwrap();
        // Reads stock first: the plain store's read plans the take.
        let crashing = DynamoInventory::new(faulty, &config);
        let take = ReservationChange {
            reservation: Reservation {
                order_id: OrderId::from_uuid(uuid::Uuid::now_v7()),
                state: ReservationState::Reserved,
                lines: vec![(sku("A"), 2)],
                updated_at: now(),
            },
            expected: None,
            stock: StockMove::Take(vec![(sku("A"), 2)]),
        };
        let seen = mark("inventory");
        let lost = crashing.apply_reservation(&take, &[], &seen).await;
        assert!(lost.is_err(), "no answer came back: {lost:?}");
        assert_eq!(store.apply_reservation(&take, &[], &seen).await, Err(StoreError::AlreadyProcessed));
        let a = store.product(&sku("A")).await.unwrap().unwrap();
        assert_eq!((a.available, a.reserved), (3, 2), "the stock moved once");
    }
}

/// The same suites while a tenth of DynamoDB calls lose a race and a tenth
/// are throttled: the adapters' retries hide both.
mod inventory_store_under_faults {
    orderly_contract::inventory_store_contract!(skip_without_emulator!(super::faulty_inventory().await));
}

mod order_store_under_faults {
    orderly_contract::order_store_contract!(skip_without_emulator!(super::faulty_orders().await));
}

mod order_store_with_events_on_items_under_faults {
    orderly_contract::order_store_contract!(skip_without_emulator!(super::faulty_streamed_orders().await));
}

mod read_model_under_faults {
    orderly_contract::read_model_contract!(skip_without_emulator!(super::faulty_analytics().await));
}

mod notification_log {
    orderly_contract::notification_log_contract!(skip_without_emulator!(super::notifications().await));
}

mod read_model {
    orderly_contract::read_model_contract!(skip_without_emulator!(super::analytics().await));
}

mod queues {
    orderly_contract::queue_contract!(skip_without_emulator!(super::queues().await));
}

/// The analytics queue is standard (template.yaml): what the adapter sends
/// it carries no FIFO parameter, one subject's events are handed out
/// together, and a message that fails its last attempt still reaches the
/// standard dead-letter queue with its error.
mod standard_queue {
    use std::time::Duration;

    use orderly_contract::fixtures::{order_for, placed_event};
    use orderly_core::events::Envelope;
    use orderly_core::ports::{EventPublisher, MessageQueue, QueueAdmin};

    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn one_subjects_events_arrive_together_without_a_group_and_dead_letter_with_their_error() {
        let Some(queues) = queues().await else { return };
        assert!(!queues.config().queues["analytics"].url.ends_with(".fifo"));
        let order = order_for("alice", &[("A", 1)]);
        let (placed, again) = (placed_event(&order), placed_event(&order));
        queues.publish(&[placed.clone(), again.clone()]).await.unwrap();
        let mut received = Vec::new();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        while received.len() < 2 && tokio::time::Instant::now() < deadline {
            received.extend(queues.receive("analytics", 10, Duration::from_secs(30)).await.unwrap());
        }
        assert_eq!(received.len(), 2, "nothing holds an order's second event back");
        assert!(received.iter().all(|m| m.group.is_none()), "a standard queue keeps no group");
        let mut ids: Vec<_> = received.iter().map(|m| Envelope::from_json(&m.body).unwrap().id).collect();
        ids.sort();
        let mut sent = vec![placed.id, again.id];
        sent.sort();
        assert_eq!(ids, sent);

        queues.ack("analytics", std::slice::from_ref(&received[0].receipt)).await.unwrap();
        // The other fails every attempt; on its last the adapter moves it.
        let mut attempt = received[1].clone();
        while tokio::time::Instant::now() < deadline {
            queues.retry_later("analytics", &attempt.receipt, Duration::ZERO, "poison").await.unwrap();
            if attempt.receive_count >= MAX_RECEIVES {
                break;
            }
            if let Some(next) = queues.receive("analytics", 1, Duration::from_secs(30)).await.unwrap().pop() {
                attempt = next;
            }
        }
        let dead = queues.dead_letters("analytics", 10).await.unwrap();
        assert_eq!(dead.len(), 1);
        assert_eq!(dead[0].last_error.as_deref(), Some("poison"));
        assert_eq!(queues.stats("analytics").await.unwrap().depth, 0);
    }
}

mod breaker_store {
    orderly_contract::breaker_store_contract!(skip_without_emulator!(super::resilience().await));
}

mod rate_limiter {
    orderly_contract::rate_limiter_contract!(skip_without_emulator!(super::resilience().await));
}

/// The fault layer itself: each fault reaches the SDK as DynamoDB's own.
mod fault_layer {
    use aws_sdk_dynamodb::types::{AttributeValue, Put, TransactWriteItem};

    use super::*;

    async fn client(shares: FaultShares) -> Option<(aws_sdk_dynamodb::Client, String)> {
        let (_, config, _) = faulty_table(TableKind::Inventory, FaultShares::default()).await?;
        let sdk = sdk_config(&endpoint()?).await;
        let faulty = FaultyHttpClient::new(aws_smithy_http_client::Builder::new().build_http(), shares);
        let no_retries = aws_sdk_dynamodb::config::retry::RetryConfig::standard().with_max_attempts(1);
        let client = aws_sdk_dynamodb::Client::from_conf(
            aws_sdk_dynamodb::config::Builder::from(&sdk).http_client(faulty).retry_config(no_retries).build(),
        );
        Some((client, config.inventory_table))
    }

    fn item(pk: &str) -> std::collections::HashMap<String, AttributeValue> {
        [("pk", pk), ("sk", "#")].into_iter().map(|(k, v)| (k.to_owned(), AttributeValue::S(v.to_owned()))).collect()
    }

    #[tokio::test]
    async fn an_injected_conflict_is_a_cancelled_transaction_with_a_conflict_reason() {
        let Some((client, table)) = client(FaultShares { conflict: 1.0, ..Default::default() }).await else { return };
        let put = |pk| {
            TransactWriteItem::builder()
                .put(Put::builder().table_name(&table).set_item(Some(item(pk))).build().unwrap())
                .build()
        };
        let error = client.transact_write_items().transact_items(put("A")).transact_items(put("B")).send().await;
        let error = error.expect_err("a conflict").into_service_error();
        let reasons = match error {
            aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError::TransactionCanceledException(
                e,
            ) => e.cancellation_reasons.unwrap_or_default(),
            other => panic!("expected a cancelled transaction, got {other:?}"),
        };
        assert_eq!(reasons.len(), 2);
        assert_eq!(reasons[0].code(), Some("TransactionConflict"));
    }

    #[tokio::test]
    async fn an_injected_throttle_is_a_throughput_error_and_writes_nothing() {
        let Some((client, table)) = client(FaultShares { throttle: 1.0, ..Default::default() }).await else { return };
        let error = client.put_item().table_name(&table).set_item(Some(item("T"))).send().await.expect_err("throttled");
        let code = aws_sdk_dynamodb::error::ProvideErrorMetadata::code(&error).map(str::to_owned);
        assert!(
            matches!(code.as_deref(), Some("ProvisionedThroughputExceededException" | "ThrottlingException")),
            "{code:?}"
        );
        let (plain, _) = fresh_table(TableKind::Inventory).await.unwrap();
        let found = plain.get_item().table_name(&table).set_key(Some(item("T"))).send().await.unwrap();
        assert!(found.item.is_none());
    }

    #[tokio::test]
    async fn an_injected_timeout_comes_after_the_write_was_made() {
        let Some((client, table)) = client(FaultShares { timeout_after_commit: 1.0, ..Default::default() }).await
        else {
            return;
        };
        let error = client.put_item().table_name(&table).set_item(Some(item("W"))).send().await.expect_err("timeout");
        assert!(
            matches!(
                error,
                aws_sdk_dynamodb::error::SdkError::TimeoutError(_)
                    | aws_sdk_dynamodb::error::SdkError::DispatchFailure(_)
            ),
            "{error:?}"
        );
        let (plain, _) = fresh_table(TableKind::Inventory).await.unwrap();
        let found = plain.get_item().table_name(&table).set_key(Some(item("W"))).send().await.unwrap();
        assert!(found.item.is_some(), "the write went through");
    }
}

/// A flash sale on a four-shard SKU while a share of DynamoDB calls lose a
/// race, are throttled, or time out after their write: exactly the stock is
/// sold and reserved, whatever the share. Prints rounds per buyer and p99
/// (the figures of issue 15).
mod flash_sale_under_faults {
    use orderly_contract::fixtures::sku;
    use orderly_contract::inventory::{flash_sale, stocked_product};
    use orderly_core::ports::InventoryStore;

    use super::*;

    async fn sale_at(share: f64) {
        let Some((client, config, counts)) = faulty_table(TableKind::Inventory, FaultShares::each(share)).await else {
            return;
        };
        let config = DynamoConfig { stock_shards: 4, ..config };
        let store = DynamoInventory::new(client, &config);
        const STOCK: u32 = 40;
        const BUYERS: usize = 150;
        // The shop is stocked without faults: the sale is what is under test.
        let (plain, _) = fresh_table(TableKind::Inventory).await.expect("the emulator");
        let plain = DynamoInventory::new(plain, &config);
        stocked_product(&plain, "FLASH", STOCK).await;
        let sale = flash_sale(&store, "FLASH", BUYERS).await;
        assert_eq!(sale.sold, STOCK as usize, "exactly the stock is sold");
        // And the outcome is read without faults too: a read that keeps
        // being throttled past the retry budget is not what is under test.
        let after = plain.product(&sku("FLASH")).await.unwrap().unwrap();
        assert_eq!((after.available, after.reserved), (0, i64::from(STOCK)), "nothing lost or doubled");
        let mut latencies = sale.latencies.clone();
        latencies.sort();
        let p = |q: f64| latencies[((latencies.len() as f64 * q) as usize).min(latencies.len() - 1)];
        let rounds: u32 = sale.rounds.iter().sum();
        let calls = counts.calls.load(std::sync::atomic::Ordering::Relaxed);
        let injected = counts.injected();
        eprintln!(
            "flash sale, faults {:.0}% each: {BUYERS} buyers, {STOCK} units; rounds/buyer {:.2}; DynamoDB calls/buyer {:.2} ({} injected: {} conflicts, {} throttles, {} timeouts after commit); p50 {:?} p99 {:?}",
            share * 100.0,
            f64::from(rounds) / BUYERS as f64,
            calls as f64 / BUYERS as f64,
            injected,
            counts.get(Fault::Conflict),
            counts.get(Fault::Throttle),
            counts.get(Fault::TimeoutAfterCommit),
            p(0.5),
            p(0.99),
        );
        if share > 0.0 {
            assert!(injected > 0, "faults were injected");
        }
    }

    use orderly_adapters::dynamo::faults::Fault;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn sells_exactly_the_stock_without_faults() {
        sale_at(0.0).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn sells_exactly_the_stock_with_a_tenth_of_calls_failing_each_way() {
        sale_at(0.1).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn sells_exactly_the_stock_with_three_tenths_of_calls_failing_each_way() {
        sale_at(0.3).await;
    }
}

/// A SKU spreads its stock over more items on its own when its reservations
/// contend (lost races, drained items), up to `stock_shards_max`, and the
/// growth never moves its total. (The SQLite adapter has one row per
/// product: nothing to grow.)
mod hot_sku_growth {
    use aws_sdk_dynamodb::types::AttributeValue;
    use orderly_contract::fixtures::sku;
    use orderly_contract::inventory::{flash_sale, stocked_product};
    use orderly_core::ports::InventoryStore;

    use super::*;

    /// The count the product item records (absent: 1).
    async fn stock_items(client: &aws_sdk_dynamodb::Client, config: &DynamoConfig, sku_name: &str) -> u32 {
        let item = client
            .get_item()
            .table_name(config.table(TableKind::Inventory))
            .key("pk", AttributeValue::S(format!("PRODUCT#{sku_name}")))
            .key("sk", AttributeValue::S("#".into()))
            .consistent_read(true)
            .send()
            .await
            .unwrap()
            .item
            .expect("the product item");
        item.get("stock_shards").map_or(1, |n| n.as_n().unwrap().parse().unwrap())
    }

    /// A SKU of 60 units, half of its transactions losing a race, and 90
    /// buyers in two waves.
    async fn contended_sale(
        stock_shards: u32,
        stock_shards_max: u32,
    ) -> Option<(aws_sdk_dynamodb::Client, DynamoConfig, DynamoInventory)> {
        let shares = FaultShares { conflict: 0.5, throttle: 0.0, timeout_after_commit: 0.0 };
        let (client, config, counts) = faulty_table(TableKind::Inventory, shares).await?;
        let config = DynamoConfig { stock_shards, stock_shards_max, ..config };
        let (plain, _) = fresh_table(TableKind::Inventory).await?;
        let plain_store = DynamoInventory::new(plain.clone(), &config);
        stocked_product(&plain_store, "HOT", 60).await;
        // Two waves: the first one's contended takes, the slowest of a burst,
        // commit while there is still stock to spread.
        let store = DynamoInventory::new(client, &config);
        let first = flash_sale(&store, "HOT", 20).await;
        assert_eq!(first.sold, 20);
        let second = flash_sale(&store, "HOT", 70).await;
        assert_eq!(first.sold + second.sold, 60, "exactly the stock is sold");
        assert!(counts.get(orderly_adapters::dynamo::faults::Fault::Conflict) > 0, "races were lost");
        let after = plain_store.product(&sku("HOT")).await.unwrap().unwrap();
        assert_eq!((after.available, after.reserved), (0, 60), "nothing lost or doubled");
        Some((plain, config, plain_store))
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_contended_sku_grows_its_stock_items_and_still_sells_exactly_its_stock() {
        let Some((client, config, store)) = contended_sale(1, 8).await else { return };
        let grown = stock_items(&client, &config, "HOT").await;
        assert!((2..=8).contains(&grown), "a one-item SKU that contended grew to {grown} items");
        // A restock after growth keeps the grown count and spreads over it.
        let read = store.product(&sku("HOT")).await.unwrap().unwrap();
        let units = orderly_core::domain::RestockQuantity::parse(16).unwrap();
        store.restock(&read.restock(units, chrono::Utc::now()).unwrap(), read.version, 16, &[]).await.unwrap();
        assert_eq!(stock_items(&client, &config, "HOT").await, grown);
        let after = store.product(&sku("HOT")).await.unwrap().unwrap();
        assert_eq!((after.available, after.reserved), (16, 60));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn growth_stops_at_stock_shards_max() {
        let Some((client, config, _)) = contended_sale(2, 2).await else { return };
        assert_eq!(stock_items(&client, &config, "HOT").await, 2);
    }

    #[tokio::test]
    async fn a_sku_whose_buyers_come_one_at_a_time_keeps_its_items() {
        let Some((client, config)) = fresh_table(TableKind::Inventory).await else { return };
        let config = DynamoConfig { stock_shards: 1, stock_shards_max: 8, ..config };
        let store = DynamoInventory::new(client.clone(), &config);
        stocked_product(&store, "CALM", 10).await;
        for _ in 0..5 {
            assert_eq!(flash_sale(&store, "CALM", 1).await.sold, 1);
        }
        assert_eq!(stock_items(&client, &config, "CALM").await, 1);
    }
}
