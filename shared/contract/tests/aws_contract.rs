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
use orderly_adapters::dynamo::{
    DynamoAnalytics, DynamoConfig, DynamoInventory, DynamoNotifications, DynamoOrders, DynamoResilience, TableKind,
    create_table, enable_ttl,
};
use orderly_adapters::sqs::{QueueUrls, SqsConfig, SqsQueues};
use orderly_contract::MAX_RECEIVES;
use orderly_core::events::routing::Consumer;

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

/// One FIFO queue + FIFO DLQ per consumer, redriven after `MAX_RECEIVES`.
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
            client
                .create_queue()
                .queue_name(format!("{prefix}-{name}.fifo"))
                .attributes(QueueAttributeName::FifoQueue, "true")
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

mod notification_log {
    orderly_contract::notification_log_contract!(skip_without_emulator!(super::notifications().await));
}

mod read_model {
    orderly_contract::read_model_contract!(skip_without_emulator!(super::analytics().await));
}

mod queues {
    orderly_contract::queue_contract!(skip_without_emulator!(super::queues().await));
}

mod breaker_store {
    orderly_contract::breaker_store_contract!(skip_without_emulator!(super::resilience().await));
}

mod rate_limiter {
    orderly_contract::rate_limiter_contract!(skip_without_emulator!(super::resilience().await));
}
