//! Analytics' table: order views, counters, processed marks.
//!
//! | item | pk | sk | notes |
//! |---|---|---|---|
//! | order view | `VIEW#<order id>` | `#` | `version`, `doc`, `events` (the ids of the events that wrote it: their processed marks); `gsi1pk = CUSTOMER#<customer>`, `gsi1sk = <order id>` |
//! | counter | `COUNTER#<shard>` | counter key | `value` (added to with `ADD`) |
//! | processed mark | `PROCESSED#<consumer>#<event id>` | `#` | `ttl`; only for events that write no view |
//!
//! Every event moves a few counters; they are spread over `counter_shards`
//! partitions by event id so that no single partition takes every write, and
//! summed on read. Order ids are UUIDv7, so the GSI's sort key gives "newest
//! first" directly.

use std::collections::{BTreeMap, HashMap};

use async_trait::async_trait;
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::types::{AttributeValue, Update};
use uuid::Uuid;

use super::super::codec::counters;
use super::write::{mark_put, processed_events_for, put, write_put, write_update};
use super::{Direction, DynamoConfig, Item, ONLY, Table, get_n, get_s, key, n, s, sdk_unavailable, shard_of};
use crate::stored_order;
use orderly_core::domain::{CustomerId, Order, OrderId};
use orderly_core::ports::{Applied, Counter, OrderView, ReadModelStore, StoreError};

#[derive(Debug, Clone)]
pub struct DynamoAnalytics {
    table: Table,
    shards: u32,
}

fn view_key(id: OrderId) -> Item {
    key(format!("VIEW#{id}"), ONLY)
}

impl DynamoAnalytics {
    pub fn new(client: Client, config: &DynamoConfig) -> Self {
        Self { table: Table::new(client, &config.analytics_table, config), shards: config.counter_shards.max(1) }
    }
}

#[async_trait]
impl ReadModelStore for DynamoAnalytics {
    async fn order_view(&self, id: OrderId) -> Result<Option<OrderView>, StoreError> {
        let Some(item) = self.table.get(view_key(id)).await? else { return Ok(None) };
        let order = stored_order::from_json(get_s(&item, "doc")?)?;
        // Views written before events were kept on them have none.
        let events = match item.get("events") {
            None => Vec::new(),
            Some(AttributeValue::Ss(ids)) => ids
                .iter()
                .map(|id| Uuid::parse_str(id).map_err(|_| StoreError::Corrupt(format!("view event id {id}"))))
                .collect::<Result<_, _>>()?,
            Some(_) => return Err(StoreError::Corrupt("view events are not a string set".into())),
        };
        Ok(Some(OrderView { order, events }))
    }

    async fn apply(&self, events: &[Applied<'_>], deltas: &[(Counter, i64)]) -> Result<(), StoreError> {
        let Some(first) = events.first() else { return Ok(()) };
        // Marks first (for the events that write no view: a view is its
        // events' mark), so that a failed condition at 0..marks is a duplicate.
        let mut writes: Vec<_> =
            events.iter().filter(|e| e.view.is_none()).map(|e| mark_put(&self.table, e.processed)).collect();
        let marks = writes.len();
        for event in events {
            let Some(order) = event.view else { continue };
            let mut item = view_key(order.id());
            if !event.view_events.is_empty() {
                let ids = event.view_events.iter().map(Uuid::to_string).collect();
                item.insert("events".into(), AttributeValue::Ss(ids));
            }
            item.insert("version".into(), n(order.version()));
            item.insert("doc".into(), s(stored_order::to_json(order)?));
            item.insert("gsi1pk".into(), s(format!("CUSTOMER#{}", order.customer_id())));
            item.insert("gsi1sk".into(), s(order.id().to_string()));
            let view_put = match event.expected_version {
                None => put(&self.table.name, item, Some("attribute_not_exists(pk)"), &[]),
                Some(version) => put(&self.table.name, item, Some("version = :expected"), &[(":expected", n(version))]),
            };
            writes.push(write_put(view_put));
        }
        let mut merged: BTreeMap<String, i64> = BTreeMap::new();
        for (counter, delta) in deltas {
            *merged.entry(counter.key()).or_insert(0) += delta;
        }
        let shard = shard_of(&first.processed.event_id.to_string(), self.shards);
        for (counter, delta) in merged.into_iter().filter(|(_, delta)| *delta != 0) {
            let update = Update::builder()
                .table_name(&self.table.name)
                .set_key(Some(key(format!("COUNTER#{shard}"), counter)))
                .update_expression("ADD #value :delta")
                .expression_attribute_names("#value", "value")
                .expression_attribute_values(":delta", n(delta))
                .build()
                .map_err(|e| StoreError::Unavailable(e.to_string()))?;
            writes.push(write_update(update));
        }
        self.table.write_all(writes).await.map_err(|e| e.into_store_error_marks(0..marks))
    }

    async fn counters(&self) -> Result<Vec<(Counter, i64)>, StoreError> {
        let mut totals: HashMap<String, i64> = HashMap::new();
        for shard in 0..self.shards {
            let items = self
                .table
                .client
                .query()
                .table_name(&self.table.name)
                .key_condition_expression("pk = :shard")
                .expression_attribute_values(":shard", s(format!("COUNTER#{shard}")))
                .consistent_read(true)
                .into_paginator()
                .items()
                .send()
                .try_collect()
                .await
                .map_err(sdk_unavailable)?;
            for item in items {
                *totals.entry(get_s(&item, "sk")?.to_owned()).or_insert(0) += get_n(&item, "value")?;
            }
        }
        let mut totals: Vec<(String, i64)> = totals.into_iter().collect();
        totals.sort();
        Ok(counters(totals))
    }

    async fn customer_orders(
        &self,
        customer: &CustomerId,
        before: Option<OrderId>,
        limit: usize,
    ) -> Result<Vec<Order>, StoreError> {
        let partition = format!("CUSTOMER#{customer}");
        let page =
            self.table.gsi1_page(partition, Direction::Descending, before.map(|id| id.to_string()), limit).await?;
        page.iter().map(|item| stored_order::from_json(get_s(item, "doc")?)).collect()
    }
}

processed_events_for!(DynamoAnalytics);
