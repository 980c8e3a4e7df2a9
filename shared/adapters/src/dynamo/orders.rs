//! Order intake's table: orders, idempotency claims, outbox, processed marks.
//!
//! | item | pk | sk | notes |
//! |---|---|---|---|
//! | order | `ORDER#<id>` | `#` | `version`, `status`, `doc` (the order as JSON), `events` (the ids of the events that moved it: their processed marks, see `write::inline_mark`) |
//! | idempotency claim | `IDEM#<customer> <key>` | `#` | `order_id`, `answer` (the order as placed), `request_hash`, `expires_at` (ms), `ttl` |
//! | outbox event | `OUTBOX#<shard>` | UUIDv7 | `body`; with `outbox = stream`, only what a relay failed to publish (the events ride on the item a write changes first, as `outbox`: see `outbox.rs`) |
//! | processed mark | `PROCESSED#<consumer>#<event id>` | `#` | `ttl`; only for events that move no order (and, until their TTL, from before marks lived on the order) |

use async_trait::async_trait;
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::types::{ReturnValuesOnConditionCheckFailure, Update};
use chrono::{DateTime, Utc};

use super::outbox::{OutboxItems, OutboxMode, outbox_for};
use super::write::{WriteError, inline_mark, mark_put, processed_events_for, put, write_put, write_update};
use super::{DynamoConfig, Item, ONLY, TTL, Table, get_n, get_s, key, n, s};
use crate::stored_order;
use orderly_core::domain::{Order, OrderId};
use orderly_core::events::Envelope;
use orderly_core::ports::{IdempotencyClaim, OrderStore, PlaceOutcome, ProcessedEvent, StoreError};

#[derive(Debug, Clone)]
pub struct DynamoOrders {
    table: Table,
    outbox: OutboxItems,
}

impl DynamoOrders {
    pub fn new(client: Client, config: &DynamoConfig) -> Self {
        Self {
            table: Table {
                carries_events: config.outbox == OutboxMode::Stream,
                ..Table::new(client, &config.orders_table, config)
            },
            outbox: OutboxItems { shards: config.outbox_shards, mode: config.outbox },
        }
    }

    fn order_item(&self, order: &Order) -> Result<Item, StoreError> {
        let mut item = order_key(order.id());
        item.insert("version".into(), n(order.version()));
        item.insert("customer_id".into(), s(order.customer_id().to_string()));
        item.insert("status".into(), s(order.status().to_string()));
        item.insert("doc".into(), s(stored_order::to_json(order)?));
        Ok(item)
    }

    /// What a live claim that blocked a write means for this request.
    async fn answer_claim(&self, claim: &IdempotencyClaim, stored: Option<Item>) -> Result<PlaceOutcome, StoreError> {
        let stored = match stored {
            Some(item) => item,
            // The store did not hand the item back: read it.
            None => self.table.get(claim_key(claim)).await?.ok_or(StoreError::Conflict)?,
        };
        if get_s(&stored, "request_hash")? != claim.request_hash {
            return Ok(PlaceOutcome::KeyReused);
        }
        // The answer as first given (the order has moved on since, maybe).
        if let Ok(answer) = get_s(&stored, "answer") {
            return Ok(PlaceOutcome::Replayed(stored_order::from_json(answer)?));
        }
        let order_id = OrderId::parse(get_s(&stored, "order_id")?)
            .ok_or_else(|| StoreError::Corrupt("claim with a bad order id".into()))?;
        match self.get(order_id).await? {
            Some(order) => Ok(PlaceOutcome::Replayed(order)),
            None => Err(StoreError::Corrupt(format!("claim points at missing order {order_id}"))),
        }
    }
}

fn order_key(id: OrderId) -> Item {
    key(format!("ORDER#{id}"), ONLY)
}

/// Customer ids and keys are visible ASCII, so a space separates them
/// unambiguously.
fn claim_key(claim: &IdempotencyClaim) -> Item {
    key(format!("IDEM#{} {}", claim.customer_id, claim.key), ONLY)
}

#[async_trait]
impl OrderStore for DynamoOrders {
    async fn place(
        &self,
        order: &Order,
        claim: Option<&IdempotencyClaim>,
        outbox: &[Envelope],
        now: DateTime<Utc>,
    ) -> Result<PlaceOutcome, StoreError> {
        let mut writes =
            vec![write_put(put(&self.table.name, self.order_item(order)?, Some("attribute_not_exists(pk)"), &[]))];
        if let Some(claim) = claim {
            let mut item = claim_key(claim);
            item.insert("order_id".into(), s(order.id().to_string()));
            item.insert("answer".into(), s(stored_order::to_json(order)?));
            item.insert("request_hash".into(), s(claim.request_hash.clone()));
            item.insert("expires_at".into(), n(claim.expires_at.timestamp_millis()));
            // DynamoDB deletes expired items within days, not at once: the
            // condition below, not TTL, is what lets an expired key be reused.
            item.insert(TTL.into(), n(claim.expires_at.timestamp() + 3600));
            let mut claim_put = put(
                &self.table.name,
                item,
                Some("attribute_not_exists(pk) OR expires_at <= :now"),
                &[(":now", n(now.timestamp_millis()))],
            );
            claim_put.return_values_on_condition_check_failure = Some(ReturnValuesOnConditionCheckFailure::AllOld);
            writes.push(write_put(claim_put));
        }
        self.outbox.add_to(&self.table, &mut writes, outbox);
        match self.table.write_all(writes).await {
            Ok(()) => Ok(PlaceOutcome::Placed),
            Err(WriteError::Conditions(failed)) => match (claim, failed.iter().find(|(i, _)| *i == 1)) {
                (Some(claim), Some((_, stored))) => self.answer_claim(claim, stored.clone()).await,
                // The order id itself was taken: ids are fresh UUIDs, so this
                // is a retried write of the very same order.
                _ => Err(StoreError::Conflict),
            },
            Err(WriteError::Store(error)) => Err(error),
        }
    }

    async fn replay(&self, claim: &IdempotencyClaim, now: DateTime<Utc>) -> Result<Option<PlaceOutcome>, StoreError> {
        let Some(stored) = self.table.get(claim_key(claim)).await? else { return Ok(None) };
        if get_n(&stored, "expires_at")? <= now.timestamp_millis() {
            return Ok(None);
        }
        self.answer_claim(claim, Some(stored)).await.map(Some)
    }

    async fn get(&self, id: OrderId) -> Result<Option<Order>, StoreError> {
        self.table.get(order_key(id)).await?.map(|item| stored_order::from_json(get_s(&item, "doc")?)).transpose()
    }

    async fn save_transition(
        &self,
        order: &Order,
        outbox: &[Envelope],
        processed: Option<&ProcessedEvent>,
    ) -> Result<(), StoreError> {
        let previous = order.version().checked_sub(1).ok_or(StoreError::Conflict)?;
        let mut expression = "SET version = :version, #status = :status, doc = :doc".to_owned();
        let mut condition = "version = :previous".to_owned();
        let mut update = Update::builder()
            .table_name(&self.table.name)
            .set_key(Some(order_key(order.id())))
            .expression_attribute_names("#status", "status")
            .expression_attribute_values(":version", n(order.version()))
            .expression_attribute_values(":status", s(order.status().to_string()))
            .expression_attribute_values(":doc", s(stored_order::to_json(order)?))
            .expression_attribute_values(":previous", n(previous));
        // The event's mark lives on the order (see `write::inline_mark`).
        if let Some(mark) = processed {
            update = inline_mark::bind(update, mark);
            expression = format!("{expression} {}", inline_mark::ADD);
            condition = format!("{condition} AND {}", inline_mark::NOT_SEEN);
        }
        let update = update
            .update_expression(expression)
            .condition_expression(condition)
            .build()
            .map_err(|e| StoreError::Unavailable(e.to_string()))?;
        let mut writes = vec![write_update(update)];
        self.outbox.add_to(&self.table, &mut writes, outbox);
        match self.table.write_all(writes).await {
            Ok(()) => Ok(()),
            Err(WriteError::Conditions(failed)) => match (processed, failed.into_iter().find(|(at, _)| *at == 0)) {
                (Some(mark), Some((_, item))) => {
                    Err(inline_mark::failure(&self.table, mark, order_key(order.id()), item).await?)
                }
                _ => Err(StoreError::Conflict),
            },
            Err(WriteError::Store(error)) => Err(error),
        }
    }

    async fn publish(&self, outbox: &[Envelope], processed: &ProcessedEvent) -> Result<(), StoreError> {
        let mut writes = vec![mark_put(&self.table, processed)];
        self.outbox.add_to(&self.table, &mut writes, outbox);
        // The mark is the transaction's first item.
        self.table.write_all(writes).await.map_err(|e| e.into_store_error(Some(0)))
    }
}

outbox_for!(DynamoOrders);

processed_events_for!(DynamoOrders);

#[cfg(test)]
mod tests {
    use orderly_contract::fixtures::{mark, now, order_for, placed_event};

    use super::super::captured;
    use super::*;

    #[tokio::test]
    async fn a_transition_caused_by_an_event_writes_the_order_and_its_events_and_no_mark_item() {
        let (client, request) = captured::client();
        let orders = DynamoOrders::new(client, &DynamoConfig::with_prefix("t"));
        let confirmed = order_for("alice", &[("A", 1)]).confirm_offline("Pay by bank transfer".into(), now()).unwrap();
        let _ = orders.save_transition(&confirmed, &[placed_event(&confirmed)], Some(&mark("order-intake"))).await;
        let items = captured::transact_items(request);
        assert_eq!(items.len(), 2, "the order, which keeps the event's id, and the outbox item: {items:?}");
        let update = &items[0]["Update"];
        assert!(update["UpdateExpression"].as_str().unwrap().ends_with(inline_mark::ADD), "{update}");
        assert!(update["ConditionExpression"].as_str().unwrap().contains(inline_mark::NOT_SEEN), "{update}");
    }

    #[tokio::test]
    async fn with_events_on_items_a_transition_caused_by_an_event_is_one_conditional_update() {
        let (client, request) = captured::client();
        let config = DynamoConfig { outbox: OutboxMode::Stream, ..DynamoConfig::with_prefix("t") };
        let orders = DynamoOrders::new(client, &config);
        let confirmed = order_for("alice", &[("A", 1)]).confirm_offline("Pay by bank transfer".into(), now()).unwrap();
        let event = placed_event(&confirmed);
        let _ = orders.save_transition(&confirmed, std::slice::from_ref(&event), Some(&mark("order-intake"))).await;
        let update = captured::body(request);
        assert!(update.get("TransactItems").is_none(), "one item needs no transaction: {update}");
        let expression = update["UpdateExpression"].as_str().unwrap();
        assert!(expression.starts_with("SET #outbox = :outbox, version = :version"), "{expression}");
        let carried = update["ExpressionAttributeValues"][":outbox"]["S"].as_str().unwrap();
        assert_eq!(serde_json::from_str::<Vec<Envelope>>(carried).unwrap(), [event]);
    }
}
