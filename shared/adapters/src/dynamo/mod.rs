//! DynamoDB adapters: one table per capability, so that each function's IAM
//! policy names exactly one table it writes (see docs/aws.md for the design).
//!
//! Every table has the same key schema, a string partition key `pk` and a
//! string sort key `sk`, and one sparse GSI (`gsi1pk`/`gsi1sk`) where a second
//! access pattern needs it. Records that only matter for a while carry a `ttl`
//! attribute (epoch seconds) for DynamoDB's TTL: idempotency claims, processed
//! marks. Every write that must be atomic with another (state + outbox item +
//! processed mark, or all stock lines of a reservation) is one
//! `TransactWriteItems`, with conditions instead of locks. A processed mark
//! is an item of its own only where the event changes no item that can
//! carry it: orders, reservations and views keep the ids of the events that
//! wrote them (`write::inline_mark`), one item fewer per transaction. So,
//! with `outbox = stream`, do the events a write reports (`outbox`): a
//! write that changes one order is then one conditional `UpdateItem`.
//!
//! The adapters take an already-built [`Client`]: the host decides how it is
//! built (aws-config on Lambda, a wasi-http client on Spin), so nothing here
//! depends on an HTTP client or an async runtime.

mod analytics;
#[cfg(feature = "faults")]
pub mod faults;
mod inventory;
mod notifications;
mod orders;
mod outbox;
mod resilience;
mod schema;
mod write;

use std::collections::HashMap;
use std::time::Duration;

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::types::AttributeValue;
use chrono::{DateTime, Utc};

pub use analytics::DynamoAnalytics;
pub use inventory::DynamoInventory;
pub use notifications::DynamoNotifications;
pub use orders::DynamoOrders;
pub use outbox::{CARRIED_EVENTS, OUTBOX_PREFIX, OutboxMode, events_in_stream_image};
pub use resilience::DynamoResilience;
pub use schema::{TableKind, create_table, enable_ttl};

pub(crate) use super::codec::{from_json, timestamp, to_json};

use orderly_core::ports::{ProcessedEvent, StoreError};

/// Table names and retention settings, usually read from the environment by
/// the host (`ORDERLY_TABLE_ORDERS`, ...).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DynamoConfig {
    pub orders_table: String,
    pub inventory_table: String,
    pub notifications_table: String,
    pub analytics_table: String,
    /// How long processed-event marks are kept (their TTL). Longer than any
    /// queue's retention, so a redelivery always finds its mark.
    pub processed_ttl: Duration,
    /// Counter items are spread over this many partitions (hot-key relief).
    pub counter_shards: u32,
    /// Outbox items are spread over this many partitions.
    pub outbox_shards: u32,
    /// Where order-intake's and inventory's writes leave their events.
    pub outbox: OutboxMode,
    /// Stock items per product: new products are created with this many, and
    /// a restock grows an older product to it (never shrinks one).
    pub stock_shards: u32,
    /// A SKU whose reservations contend doubles its stock items up to this
    /// many (no growth at `stock_shards` or fewer).
    pub stock_shards_max: u32,
    /// How often a write that lost a race with another transaction
    /// (`TransactionConflict`) is tried again, and the first pause (doubling,
    /// jittered). The SDK retries throttling and timeouts with the same budget
    /// (see `aws_backend::dynamo_retry_config`).
    pub retry: RetryPolicy,
}

/// A retry budget and its backoff.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    pub retries: u32,
    pub base: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self { retries: 6, base: Duration::from_millis(10) }
    }
}

impl DynamoConfig {
    /// Four tables named `<prefix>-orders`, `<prefix>-inventory`, ...
    pub fn with_prefix(prefix: &str) -> Self {
        Self {
            orders_table: format!("{prefix}-orders"),
            inventory_table: format!("{prefix}-inventory"),
            notifications_table: format!("{prefix}-notifications"),
            analytics_table: format!("{prefix}-analytics"),
            processed_ttl: Duration::from_secs(14 * 24 * 3600),
            counter_shards: 4,
            outbox_shards: 4,
            outbox: OutboxMode::Items,
            stock_shards: 1,
            stock_shards_max: 8,
            retry: RetryPolicy::default(),
        }
    }

    /// The tables the settings name (`table_orders`, ...).
    pub fn from_settings(tables: &orderly_core::settings::TableNames) -> Self {
        Self {
            orders_table: tables.orders.clone(),
            inventory_table: tables.inventory.clone(),
            notifications_table: tables.notifications.clone(),
            analytics_table: tables.analytics.clone(),
            ..Self::with_prefix("orderly")
        }
    }

    pub fn table_mut(&mut self, kind: TableKind) -> &mut String {
        match kind {
            TableKind::Orders => &mut self.orders_table,
            TableKind::Inventory => &mut self.inventory_table,
            TableKind::Notifications => &mut self.notifications_table,
            TableKind::Analytics => &mut self.analytics_table,
        }
    }

    pub fn table(&self, kind: TableKind) -> &str {
        match kind {
            TableKind::Orders => &self.orders_table,
            TableKind::Inventory => &self.inventory_table,
            TableKind::Notifications => &self.notifications_table,
            TableKind::Analytics => &self.analytics_table,
        }
    }
}

/// One table and the client that reaches it: what every adapter holds.
#[derive(Debug, Clone)]
pub(crate) struct Table {
    pub client: Client,
    pub name: String,
    pub processed_ttl: Duration,
    pub retry: RetryPolicy,
    /// Its writes leave events on the items they change (`OutboxMode::Stream`),
    /// so an update that carries none removes any it finds.
    pub carries_events: bool,
}

pub(crate) type Item = HashMap<String, AttributeValue>;

/// Which way a page of a GSI1 partition runs from its cursor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Direction {
    /// `gsi1sk` ascending, strictly after the cursor.
    Ascending,
    /// `gsi1sk` descending (newest first for time-ordered keys), strictly
    /// before the cursor.
    Descending,
}

impl Table {
    pub fn new(client: Client, name: &str, config: &DynamoConfig) -> Self {
        Self {
            client,
            name: name.to_owned(),
            processed_ttl: config.processed_ttl,
            retry: config.retry,
            carries_events: false,
        }
    }

    /// One page of the GSI1 partition `partition`: up to `limit` items from
    /// `cursor` (exclusive; `None`: from the start) in `direction`.
    pub async fn gsi1_page(
        &self,
        partition: String,
        direction: Direction,
        cursor: Option<String>,
        limit: usize,
    ) -> Result<Vec<Item>, StoreError> {
        let query = self
            .client
            .query()
            .table_name(&self.name)
            .index_name(GSI1)
            .scan_index_forward(direction == Direction::Ascending)
            .limit(limit.clamp(1, 1000) as i32)
            .expression_attribute_values(":partition", s(partition));
        let query = match (cursor, direction) {
            (None, _) => query.key_condition_expression("gsi1pk = :partition"),
            (Some(cursor), Direction::Ascending) => query
                .key_condition_expression("gsi1pk = :partition AND gsi1sk > :cursor")
                .expression_attribute_values(":cursor", s(cursor)),
            (Some(cursor), Direction::Descending) => query
                .key_condition_expression("gsi1pk = :partition AND gsi1sk < :cursor")
                .expression_attribute_values(":cursor", s(cursor)),
        };
        Ok(query.send().await.map_err(sdk_unavailable)?.items.unwrap_or_default())
    }
}

pub(crate) const PK: &str = "pk";
pub(crate) const SK: &str = "sk";
/// Sort key of items that are alone in their partition.
pub(crate) const ONLY: &str = "#";
pub(crate) const GSI1: &str = "gsi1";
pub(crate) const TTL: &str = "ttl";

pub(crate) fn s(value: impl Into<String>) -> AttributeValue {
    AttributeValue::S(value.into())
}

pub(crate) fn n(value: impl ToString) -> AttributeValue {
    AttributeValue::N(value.to_string())
}

pub(crate) fn key(pk: impl Into<String>, sk: impl Into<String>) -> Item {
    HashMap::from([(PK.to_owned(), s(pk)), (SK.to_owned(), s(sk))])
}

pub(crate) fn get_s<'a>(item: &'a Item, name: &str) -> Result<&'a str, StoreError> {
    match item.get(name) {
        Some(AttributeValue::S(value)) => Ok(value),
        _ => Err(StoreError::Corrupt(format!("item lacks string attribute {name}"))),
    }
}

pub(crate) fn get_n(item: &Item, name: &str) -> Result<i64, StoreError> {
    match item.get(name) {
        Some(AttributeValue::N(value)) => {
            value.parse().map_err(|_| StoreError::Corrupt(format!("attribute {name} is not an integer: {value}")))
        }
        _ => Err(StoreError::Corrupt(format!("item lacks number attribute {name}"))),
    }
}

/// Any SDK failure that is not a condition we asked for: worth a retry later.
pub(crate) fn unavailable(error: impl std::fmt::Display) -> StoreError {
    StoreError::Unavailable(error.to_string())
}

/// Like [`unavailable`], with the operation and the SDK's whole error chain
/// (see [`super::sdk_error_detail`]).
pub(crate) fn sdk_unavailable<E: std::error::Error>(error: E) -> StoreError {
    StoreError::Unavailable(super::sdk_error_detail(&error))
}

pub(crate) fn processed_key(mark: &ProcessedEvent) -> Item {
    key(format!("PROCESSED#{}#{}", mark.consumer, mark.event_id), ONLY)
}

/// Epoch seconds `after` from `now`: the value of a `ttl` attribute.
pub(crate) fn expiry(now: DateTime<Utc>, after: Duration) -> i64 {
    now.timestamp() + after.as_secs() as i64
}

/// Whether `table` answers a read (for health checks).
pub async fn ping(client: &Client, table: &str) -> Result<(), StoreError> {
    client.get_item().table_name(table).set_key(Some(key("HEALTH", ONLY))).send().await.map_err(sdk_unavailable)?;
    Ok(())
}

/// A small, stable hash for spreading keys over shards (FNV-1a).
pub(crate) fn shard_of(key: &str, shards: u32) -> u32 {
    let hash = key.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3));
    (hash % u64::from(shards.max(1))) as u32
}

/// A client whose first request is kept for the test to read, not sent.
#[cfg(test)]
pub(crate) mod captured {
    use aws_sdk_dynamodb::config::{BehaviorVersion, Credentials, Region};
    use aws_sdk_dynamodb::{Client, Config};
    use aws_smithy_http_client::test_util::{CaptureRequestReceiver, capture_request};

    pub fn client() -> (Client, CaptureRequestReceiver) {
        let (http, request) = capture_request(None);
        let config = Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new("us-east-1"))
            .credentials_provider(Credentials::new("key", "secret", None, None, "test"))
            .http_client(http)
            .build();
        (Client::from_conf(config), request)
    }

    /// The JSON body of the captured request.
    pub fn body(request: CaptureRequestReceiver) -> serde_json::Value {
        let body = request.expect_request().body().bytes().expect("an in-memory body").to_vec();
        serde_json::from_slice(&body).expect("a JSON request")
    }

    /// The items of the captured `TransactWriteItems`.
    pub fn transact_items(request: CaptureRequestReceiver) -> Vec<serde_json::Value> {
        body(request)["TransactItems"].as_array().expect("a TransactWriteItems request").clone()
    }
}
