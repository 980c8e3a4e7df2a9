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
use aws_sdk_dynamodb::types::Put;
use uuid::Uuid;

use super::super::codec::NotificationFields;
use super::write::{processed_events_for, write_put};
use super::{DynamoConfig, GSI1, Item, ONLY, Table, get_n, get_s, key, n, s, sdk_unavailable};
use orderly_core::domain::OrderId;
use orderly_core::ports::{NotificationLog, NotificationRecord, NotificationState, StoreError};

#[derive(Debug, Clone)]
pub struct DynamoNotifications {
    table: Table,
}

fn notification_key(id: Uuid) -> Item {
    key(format!("NOTIFICATION#{id}"), ONLY)
}

fn record_from_item(item: &Item) -> Result<NotificationRecord, StoreError> {
    NotificationFields {
        id: get_s(item, "id")?.to_owned(),
        order_id: get_s(item, "order_id")?.to_owned(),
        customer_id: get_s(item, "customer_id")?.to_owned(),
        kind: get_s(item, "kind")?.to_owned(),
        state: get_s(item, "state")?.to_owned(),
        attempts: get_n(item, "attempts")?,
        last_error: get_s(item, "last_error").ok().map(str::to_owned),
        provider: get_s(item, "provider")?.to_owned(),
        created_at: get_s(item, "created_at")?.to_owned(),
        updated_at: get_s(item, "updated_at")?.to_owned(),
    }
    .decode()
}

impl DynamoNotifications {
    pub fn new(client: Client, config: &DynamoConfig) -> Self {
        Self { table: Table::new(client, &config.notifications_table, config) }
    }
}

#[async_trait]
impl NotificationLog for DynamoNotifications {
    async fn get(&self, id: Uuid) -> Result<Option<NotificationRecord>, StoreError> {
        self.table.get(notification_key(id)).await?.as_ref().map(record_from_item).transpose()
    }

    async fn save(&self, record: &NotificationRecord) -> Result<(), StoreError> {
        let fields = NotificationFields::of(record);
        let mut item = notification_key(record.id);
        item.insert("gsi1pk".into(), s(format!("ORDER#{}", fields.order_id)));
        item.insert("gsi1sk".into(), s(format!("{}#{}", fields.created_at, fields.id)));
        item.insert("id".into(), s(fields.id));
        item.insert("order_id".into(), s(fields.order_id));
        item.insert("customer_id".into(), s(fields.customer_id));
        item.insert("kind".into(), s(fields.kind));
        item.insert("state".into(), s(fields.state));
        item.insert("attempts".into(), n(fields.attempts));
        if let Some(error) = fields.last_error {
            item.insert("last_error".into(), s(error));
        }
        item.insert("provider".into(), s(fields.provider));
        item.insert("created_at".into(), s(fields.created_at));
        item.insert("updated_at".into(), s(fields.updated_at));
        // A sent record stays as it is (see the port): its failed condition
        // is success.
        let put = Put::builder()
            .table_name(&self.table.name)
            .set_item(Some(item))
            .condition_expression("attribute_not_exists(pk) OR #state <> :sent")
            .expression_attribute_names("#state", "state")
            .expression_attribute_values(":sent", s(NotificationState::Sent.as_str()))
            .build()
            .map_err(|e| StoreError::Unavailable(e.to_string()))?;
        match self.table.write_all(vec![write_put(put)]).await.map_err(|e| e.into_store_error(None)) {
            Err(StoreError::Conflict) => Ok(()),
            written => written,
        }
    }

    async fn list(&self, order_id: Option<OrderId>, limit: usize) -> Result<Vec<NotificationRecord>, StoreError> {
        let client = &self.table.client;
        let items = match order_id {
            // Oldest first by the GSI's sort key: the first `limit` are the page.
            Some(order_id) => {
                let mut pages = client
                    .query()
                    .table_name(&self.table.name)
                    .index_name(GSI1)
                    .key_condition_expression("gsi1pk = :order")
                    .expression_attribute_values(":order", s(format!("ORDER#{order_id}")))
                    .into_paginator()
                    .page_size(limit.clamp(1, 1000) as i32)
                    .items()
                    .send();
                let mut items = Vec::new();
                while items.len() < limit
                    && let Some(item) = pages.next().await
                {
                    items.push(item.map_err(sdk_unavailable)?);
                }
                items
            }
            // No partition orders them all: read every one, sort below.
            None => client
                .scan()
                .table_name(&self.table.name)
                .filter_expression("begins_with(pk, :notification)")
                .expression_attribute_values(":notification", s("NOTIFICATION#"))
                .into_paginator()
                .items()
                .send()
                .try_collect()
                .await
                .map_err(sdk_unavailable)?,
        };
        let mut records = items.iter().map(record_from_item).collect::<Result<Vec<_>, _>>()?;
        records.sort_by_key(|r| (r.created_at, r.id));
        records.truncate(limit);
        Ok(records)
    }
}

processed_events_for!(DynamoNotifications);
