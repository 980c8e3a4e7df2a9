//! The transactional outbox in DynamoDB: each event is written in the same
//! write as the state change it reports, in the owning function's own table,
//! in one of two places ([`OutboxMode`]).
//!
//! - **Outbox items** (`items`): an item per event under `pk =
//!   OUTBOX#<shard>` (the shard is a hash of the event's subject, so one hot
//!   partition cannot cap the write rate) with a time-ordered `sk` (a UUIDv7
//!   taken at write time). A relay polls them with `pending` and deletes
//!   what it published with `remove`: what Spin's cron relay does.
//! - **On the changed item** (`stream`): the events ride on the item the
//!   write changes anyway (the order, the reservation, the product), as its
//!   `outbox` attribute; the table's stream hands the item's new image to the
//!   relay (see `hosts::lambda`), and there is nothing to remove. An outbox
//!   item costs two write units as one more item of its transaction and one
//!   to delete; on the changed item an event costs only the bytes it adds:
//!   about 7 write units less per order (docs/aws.md, "Cost per million
//!   orders"). Every other update of such a table removes `outbox`, so an
//!   image carries only its own write's events.
//!   What the relay fails to publish it [keeps](OutboxItems::keep) as outbox
//!   items, where the scheduled sweep finds them as it finds any.

use aws_sdk_dynamodb::types::{AttributeValue, DeleteRequest, TransactWriteItem, Update, WriteRequest};
use uuid::Uuid;

use super::write::{put, write_put};
use super::{Item, PK, SK, Table, from_json, get_s, key, s, sdk_unavailable, shard_of};
use orderly_core::events::Envelope;
use orderly_core::messaging::StreamedEvents;
use orderly_core::ports::{OutboxEntry, QueueError};
pub use orderly_core::settings::OutboxMode;

/// Partition-key prefix of outbox items (a stream filter matches on it).
pub const OUTBOX_PREFIX: &str = "OUTBOX#";

/// The attribute that carries a write's events on the item it changed (a
/// JSON array of events; a stream filter matches on it).
pub const CARRIED_EVENTS: &str = "outbox";
const CARRIED_NAME: &str = "#outbox";
const CARRIED_VALUE: &str = ":outbox";

/// The most items one `TransactWriteItems` takes.
const MAX_TRANSACTION_ITEMS: usize = 100;

#[derive(Debug, Clone)]
pub(crate) struct OutboxItems {
    pub shards: u32,
    pub mode: OutboxMode,
}

impl OutboxItems {
    /// Adds `events` to `writes`: as outbox items, or on the first item the
    /// write puts or updates.
    pub fn add_to(&self, table: &Table, writes: &mut Vec<TransactWriteItem>, events: &[Envelope]) {
        if events.is_empty() {
            return;
        }
        if self.mode == OutboxMode::Stream
            && let Some(write) = writes.iter_mut().find(|w| w.put.is_some() || w.update.is_some())
        {
            carry(write, events);
            return;
        }
        writes.extend(self.puts(table, events));
    }

    /// Outbox items for `events`, written now (in transactions of at most
    /// 100): what a relay could not publish.
    pub async fn keep(&self, table: &Table, events: &[Envelope]) -> Result<(), QueueError> {
        for chunk in events.chunks(MAX_TRANSACTION_ITEMS) {
            table
                .write_all(self.puts(table, chunk))
                .await
                .map_err(|e| QueueError::Unavailable(e.into_store_error(None).to_string()))?;
        }
        Ok(())
    }

    /// The puts that add `events` to the outbox, in order.
    fn puts(&self, table: &Table, events: &[Envelope]) -> Vec<TransactWriteItem> {
        events
            .iter()
            .map(|event| {
                let shard = shard_of(&event.subject, self.shards);
                let mut item = key(format!("{OUTBOX_PREFIX}{shard}"), Uuid::now_v7().to_string());
                item.insert("body".into(), s(event.to_json()));
                item.insert("event_type".into(), s(event.event_type.clone()));
                write_put(put(&table.name, item, Some("attribute_not_exists(pk)"), &[]))
            })
            .collect()
    }

    pub async fn pending(
        &self,
        table: &Table,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<OutboxEntry>, QueueError> {
        let after_sk = after.map(|p| p.split_once('/').map_or(p, |(_, sk)| sk).to_owned());
        let queries = (0..self.shards.max(1)).map(|shard| {
            let mut query = table
                .client
                .query()
                .table_name(&table.name)
                .consistent_read(true)
                .limit(limit.clamp(1, 1000) as i32)
                .expression_attribute_values(":pk", s(format!("{OUTBOX_PREFIX}{shard}")));
            query = match &after_sk {
                Some(sk) => query
                    .key_condition_expression("pk = :pk AND sk > :after")
                    .expression_attribute_values(":after", s(sk.clone())),
                None => query.key_condition_expression("pk = :pk"),
            };
            query.send()
        });
        let mut entries = Vec::new();
        for result in futures::future::join_all(queries).await {
            let page = result.map_err(|e| QueueError::Unavailable(sdk_unavailable(e).to_string()))?;
            for item in page.items.unwrap_or_default() {
                entries.push(entry(&item).map_err(|e| QueueError::Unavailable(e.to_string()))?);
            }
        }
        entries.sort_by(|a, b| sort_key(&a.0).cmp(sort_key(&b.0)));
        Ok(entries.into_iter().take(limit).map(|(position, envelope)| OutboxEntry { position, envelope }).collect())
    }

    pub async fn remove(&self, table: &Table, positions: &[String]) -> Result<(), QueueError> {
        for chunk in positions.chunks(25) {
            let mut requests: Vec<WriteRequest> = chunk
                .iter()
                .filter_map(|position| position.split_once('/'))
                .map(|(pk, sk)| {
                    let delete = DeleteRequest::builder().set_key(Some(key(pk, sk))).build().expect("key is set");
                    WriteRequest::builder().delete_request(delete).build()
                })
                .collect();
            let mut attempt = 0;
            while !requests.is_empty() {
                let done = table
                    .client
                    .batch_write_item()
                    .request_items(&table.name, requests)
                    .send()
                    .await
                    .map_err(|e| QueueError::Unavailable(sdk_unavailable(e).to_string()))?;
                requests = done.unprocessed_items.and_then(|mut left| left.remove(&table.name)).unwrap_or_default();
                attempt += 1;
                if attempt > 8 {
                    return Err(QueueError::Unavailable("outbox deletes were throttled".into()));
                }
                if !requests.is_empty() {
                    table.pause(attempt).await;
                }
            }
        }
        Ok(())
    }
}

fn sort_key(position: &str) -> &str {
    position.split_once('/').map_or(position, |(_, sk)| sk)
}

/// `<pk>/<sk>`, the opaque position handed to the relay.
fn entry(item: &Item) -> Result<(String, Envelope), orderly_core::ports::StoreError> {
    let position = format!("{}/{}", get_s(item, PK)?, get_s(item, SK)?);
    let envelope = from_json(get_s(item, "body")?)?;
    Ok((position, envelope))
}

/// Puts `events` on the item `write` puts or updates.
fn carry(write: &mut TransactWriteItem, events: &[Envelope]) {
    let bodies: Vec<String> = events.iter().map(Envelope::to_json).collect();
    let value = AttributeValue::S(format!("[{}]", bodies.join(",")));
    if let Some(put) = write.put.as_mut() {
        put.item.insert(CARRIED_EVENTS.into(), value);
    } else if let Some(update) = write.update.as_mut() {
        update.update_expression =
            with_action(&update.update_expression, "SET", &format!("{CARRIED_NAME} = {CARRIED_VALUE}"));
        update.expression_attribute_names.get_or_insert_default().insert(CARRIED_NAME.into(), CARRIED_EVENTS.into());
        update.expression_attribute_values.get_or_insert_default().insert(CARRIED_VALUE.into(), value);
    }
}

/// The [`Outbox`](orderly_core::ports::Outbox) port of an adapter that keeps
/// its events in its own `table` through its `outbox: OutboxItems`.
macro_rules! outbox_for {
    ($adapter:ty) => {
        #[async_trait::async_trait]
        impl orderly_core::ports::Outbox for $adapter {
            async fn pending(
                &self,
                after: Option<&str>,
                limit: usize,
            ) -> Result<Vec<orderly_core::ports::OutboxEntry>, orderly_core::ports::QueueError> {
                self.outbox.pending(&self.table, after, limit).await
            }

            async fn remove(&self, positions: &[String]) -> Result<(), orderly_core::ports::QueueError> {
                self.outbox.remove(&self.table, positions).await
            }

            async fn keep(
                &self,
                events: &[orderly_core::events::Envelope],
            ) -> Result<(), orderly_core::ports::QueueError> {
                self.outbox.keep(&self.table, events).await
            }
        }
    };
}
pub(crate) use outbox_for;

/// Makes every update in `writes` that carries no events remove the events
/// an earlier write left on its item, so that the item's next stream image
/// does not carry them again. (A put replaces the whole item.)
pub(crate) fn clear_carried(writes: &mut [TransactWriteItem]) {
    for update in writes.iter_mut().filter_map(|write| write.update.as_mut()) {
        if !carries_events(update) {
            update.update_expression = with_action(&update.update_expression, "REMOVE", CARRIED_NAME);
            update
                .expression_attribute_names
                .get_or_insert_default()
                .insert(CARRIED_NAME.into(), CARRIED_EVENTS.into());
        }
    }
}

fn carries_events(update: &Update) -> bool {
    update.expression_attribute_values.as_ref().is_some_and(|values| values.contains_key(CARRIED_VALUE))
}

/// `expression` with `part` in its `action` clause (an update expression
/// has at most one clause per action, in any order).
fn with_action(expression: &str, action: &str, part: &str) -> String {
    let clause = format!("{action} ");
    let at = expression.match_indices(&clause).map(|(at, _)| at).find(|&at| at == 0 || expression[..at].ends_with(' '));
    match at {
        Some(at) => {
            let (before, after) = expression.split_at(at + clause.len());
            format!("{before}{part}, {after}")
        }
        None if expression.trim().is_empty() => format!("{action} {part}"),
        None => format!("{expression} {action} {part}"),
    }
}

/// What a DynamoDB Streams record's `NewImage` (in DynamoDB's JSON) hands
/// the relay: `None` for an item that is neither an outbox item nor carries
/// events; an error for one that should but cannot be read.
pub fn events_in_stream_image(image: &serde_json::Value) -> Option<Result<StreamedEvents, String>> {
    let attr = |name: &str| image.get(name).and_then(|v| v.get("S")).and_then(|v| v.as_str());
    let pk = attr(PK)?;
    if let Some(carried) = attr(CARRIED_EVENTS) {
        return Some(carried_events(carried).map(StreamedEvents::Carried).map_err(|e| format!("events on {pk}: {e}")));
    }
    if !pk.starts_with(OUTBOX_PREFIX) {
        return None;
    }
    let (Some(sk), Some(body)) = (attr(SK), attr("body")) else {
        return Some(Err(format!("outbox item {pk} lacks sk or body")));
    };
    Some(
        Envelope::from_json(body)
            .map(|envelope| StreamedEvents::Entry(OutboxEntry { position: format!("{pk}/{sk}"), envelope }))
            .map_err(|e| e.to_string()),
    )
}

fn carried_events(carried: &str) -> Result<Vec<Envelope>, String> {
    serde_json::from_str(carried).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use orderly_contract::fixtures::{order_for, placed_event};

    #[test]
    fn reads_an_outbox_item_from_its_stream_image() {
        let event = placed_event(&order_for("alice", &[("A", 1)]));
        let image = serde_json::json!({
            "pk": {"S": "OUTBOX#2"}, "sk": {"S": "0193-x"}, "body": {"S": event.to_json()}
        });
        let entry = OutboxEntry { position: "OUTBOX#2/0193-x".into(), envelope: event };
        assert_eq!(events_in_stream_image(&image), Some(Ok(StreamedEvents::Entry(entry))));
        let order = serde_json::json!({"pk": {"S": "ORDER#1"}, "sk": {"S": "#"}});
        assert!(events_in_stream_image(&order).is_none(), "neither an outbox item nor carrying events");
        let broken = serde_json::json!({"pk": {"S": "OUTBOX#0"}, "sk": {"S": "1"}, "body": {"S": "nope"}});
        assert!(events_in_stream_image(&broken).unwrap().is_err());
    }

    #[test]
    fn reads_the_events_a_write_left_on_its_item_from_its_stream_image() {
        let order = order_for("alice", &[("A", 1)]);
        let events = vec![placed_event(&order), placed_event(&order_for("bob", &[("B", 2)]))];
        let mut write = write_put(put("t", key("ORDER#1", "#"), None, &[]));
        carry(&mut write, &events);
        let Some(AttributeValue::S(carried)) = write.put.unwrap().item.remove(CARRIED_EVENTS) else {
            panic!("the put carries its events");
        };
        let image = serde_json::json!({"pk": {"S": "ORDER#1"}, "sk": {"S": "#"}, "outbox": {"S": carried}});
        assert_eq!(events_in_stream_image(&image), Some(Ok(StreamedEvents::Carried(events))));
        let broken = serde_json::json!({"pk": {"S": "ORDER#1"}, "outbox": {"S": "[{}]"}});
        assert!(events_in_stream_image(&broken).unwrap().is_err(), "an unreadable event is an error, not nothing");
    }

    fn update(expression: &str) -> TransactWriteItem {
        super::super::write::write_update(
            Update::builder()
                .table_name("t")
                .set_key(Some(key("P", "#")))
                .update_expression(expression)
                .build()
                .unwrap(),
        )
    }

    #[test]
    fn an_update_carries_its_events_in_its_set_clause_and_every_other_update_clears_them() {
        let event = placed_event(&order_for("alice", &[("A", 1)]));
        let mut writes =
            vec![update("ADD available :n SET updated_at = :at"), update("ADD available :n"), update("SET x = :x")];
        carry(&mut writes[0], &[event]);
        clear_carried(&mut writes);
        let expressions: Vec<&str> =
            writes.iter().map(|w| w.update.as_ref().unwrap().update_expression.as_str()).collect();
        assert_eq!(
            expressions,
            [
                "ADD available :n SET #outbox = :outbox, updated_at = :at",
                "ADD available :n REMOVE #outbox",
                "SET x = :x REMOVE #outbox",
            ]
        );
        assert_eq!(with_action("SET a = :a REMOVE b", "REMOVE", "#outbox"), "SET a = :a REMOVE #outbox, b");
        assert_eq!(with_action("SET OFFSET = :a", "SET", "p = :p"), "SET p = :p, OFFSET = :a");
        assert_eq!(with_action("SET RESET = :a", "REMOVE", "#o"), "SET RESET = :a REMOVE #o");
    }

    #[test]
    fn shards_are_stable_and_in_range() {
        assert_eq!(shard_of("order-1", 4), shard_of("order-1", 4));
        assert!((0..100).all(|i| shard_of(&format!("o-{i}"), 4) < 4));
        assert_eq!(shard_of("anything", 0), 0);
    }
}
