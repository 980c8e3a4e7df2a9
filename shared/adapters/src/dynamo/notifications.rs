//! Notification's table: the notification log and processed marks.
//!
//! | item | pk | sk | notes |
//! |---|---|---|---|
//! | notification | `NOTIFICATION#<id>` | `#` | every field; `gsi1pk = ORDER#<order id>`, `gsi1sk = <created_at>#<id>` |
//! | processed mark | `PROCESSED#<consumer>#<event id>` | `#` | `ttl` |
//!
//! "By order, oldest first" is a query of the GSI. "All, oldest first" is an
//! admin listing without a natural partition: it scans (see docs/aws.md).

use async_trait::async_trait;
use aws_sdk_dynamodb::Client;
use uuid::Uuid;

use super::write::{processed_events_for, put, write_put};
use super::{
    DynamoConfig, GSI1, Item, ONLY, Table, get_n, get_s, key, n, parse_timestamp, s, sdk_unavailable, timestamp,
};
use orderly_core::domain::{CustomerId, OrderId};
use orderly_core::ports::{NotificationLog, NotificationRecord, NotificationState, StoreError};

#[derive(Debug, Clone)]
pub struct DynamoNotifications {
    table: Table,
}

fn notification_key(id: Uuid) -> Item {
    key(format!("NOTIFICATION#{id}"), ONLY)
}

fn record_from_item(item: &Item) -> Result<NotificationRecord, StoreError> {
    let corrupt = |what: &str| StoreError::Corrupt(format!("notification: bad {what}"));
    Ok(NotificationRecord {
        id: Uuid::parse_str(get_s(item, "id")?).map_err(|_| corrupt("id"))?,
        order_id: OrderId::parse(get_s(item, "order_id")?).ok_or_else(|| corrupt("order id"))?,
        customer_id: CustomerId::parse(get_s(item, "customer_id")?).map_err(|_| corrupt("customer id"))?,
        kind: get_s(item, "kind")?.to_owned(),
        state: NotificationState::parse(get_s(item, "state")?).ok_or_else(|| corrupt("state"))?,
        attempts: u32::try_from(get_n(item, "attempts")?).map_err(|_| corrupt("attempts"))?,
        last_error: get_s(item, "last_error").ok().map(str::to_owned),
        provider: get_s(item, "provider")?.to_owned(),
        created_at: parse_timestamp(get_s(item, "created_at")?)?,
        updated_at: parse_timestamp(get_s(item, "updated_at")?)?,
    })
}

impl DynamoNotifications {
    pub fn new(client: Client, config: &DynamoConfig) -> Self {
        Self { table: Table { client, name: config.notifications_table.clone(), processed_ttl: config.processed_ttl } }
    }
}

#[async_trait]
impl NotificationLog for DynamoNotifications {
    async fn get(&self, id: Uuid) -> Result<Option<NotificationRecord>, StoreError> {
        self.table.get(notification_key(id)).await?.as_ref().map(record_from_item).transpose()
    }

    async fn save(&self, record: &NotificationRecord) -> Result<(), StoreError> {
        let created = timestamp(record.created_at);
        let mut item = notification_key(record.id);
        item.insert("id".into(), s(record.id.to_string()));
        item.insert("order_id".into(), s(record.order_id.to_string()));
        item.insert("customer_id".into(), s(record.customer_id.to_string()));
        item.insert("kind".into(), s(record.kind.clone()));
        item.insert("state".into(), s(record.state.as_str()));
        item.insert("attempts".into(), n(record.attempts));
        if let Some(error) = &record.last_error {
            item.insert("last_error".into(), s(error.clone()));
        }
        item.insert("provider".into(), s(record.provider.clone()));
        item.insert("created_at".into(), s(created.clone()));
        item.insert("updated_at".into(), s(timestamp(record.updated_at)));
        item.insert("gsi1pk".into(), s(format!("ORDER#{}", record.order_id)));
        item.insert("gsi1sk".into(), s(format!("{created}#{}", record.id)));
        self.table
            .write_all(vec![write_put(put(&self.table.name, item, None, &[]))])
            .await
            .map_err(|e| e.into_store_error(None))
    }

    async fn list(&self, order_id: Option<OrderId>, limit: usize) -> Result<Vec<NotificationRecord>, StoreError> {
        let client = &self.table.client;
        let mut items = Vec::new();
        match order_id {
            Some(order_id) => {
                let mut start = None;
                loop {
                    let page = client
                        .query()
                        .table_name(&self.table.name)
                        .index_name(GSI1)
                        .key_condition_expression("gsi1pk = :order")
                        .expression_attribute_values(":order", s(format!("ORDER#{order_id}")))
                        .limit(limit.clamp(1, 1000) as i32)
                        .set_exclusive_start_key(start)
                        .send()
                        .await
                        .map_err(sdk_unavailable)?;
                    items.extend(page.items.unwrap_or_default());
                    start = page.last_evaluated_key;
                    if start.is_none() || items.len() >= limit {
                        break;
                    }
                }
            }
            None => {
                let mut start = None;
                loop {
                    let page = client
                        .scan()
                        .table_name(&self.table.name)
                        .filter_expression("begins_with(pk, :notification)")
                        .expression_attribute_values(":notification", s("NOTIFICATION#"))
                        .set_exclusive_start_key(start)
                        .send()
                        .await
                        .map_err(sdk_unavailable)?;
                    items.extend(page.items.unwrap_or_default());
                    start = page.last_evaluated_key;
                    if start.is_none() {
                        break;
                    }
                }
            }
        }
        let mut records = items.iter().map(record_from_item).collect::<Result<Vec<_>, _>>()?;
        records.sort_by_key(|r| (r.created_at, r.id));
        records.truncate(limit);
        Ok(records)
    }
}

processed_events_for!(DynamoNotifications);
