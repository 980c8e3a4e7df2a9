//! The transactional outbox in DynamoDB: each event is an item written in the
//! same `TransactWriteItems` as the state change it reports, in the owning
//! function's own table.
//!
//! Items live under `pk = OUTBOX#<shard>` (the shard is a hash of the event's
//! subject, so one hot partition cannot cap the write rate) with a
//! time-ordered `sk` (a UUIDv7 taken at write time). On AWS the table's
//! stream carries each new outbox item to the owning function, which
//! publishes it and then removes it (see `hosts::lambda`); `pending` is what
//! a sweep or an operator uses to find anything left behind.

use aws_sdk_dynamodb::types::{DeleteRequest, TransactWriteItem, WriteRequest};
use uuid::Uuid;

use super::write::{put, write_put};
use super::{Item, PK, SK, Table, from_json, get_s, key, s, sdk_unavailable, shard_of};
use orderly_core::events::Envelope;
use orderly_core::ports::{OutboxEntry, QueueError};

/// Partition-key prefix of outbox items (a stream filter matches on it).
pub const OUTBOX_PREFIX: &str = "OUTBOX#";

#[derive(Debug, Clone)]
pub(crate) struct OutboxItems {
    pub shards: u32,
}

impl OutboxItems {
    /// The puts that add `events` to the outbox, in order.
    pub fn puts(&self, table: &Table, events: &[Envelope]) -> Vec<TransactWriteItem> {
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

/// The outbox entry in a DynamoDB Streams record (`NewImage`, in DynamoDB's
/// JSON), if the record is the insertion of an outbox item.
pub fn outbox_entry_from_stream_image(image: &serde_json::Value) -> Option<Result<OutboxEntry, String>> {
    let attr = |name: &str| image.get(name).and_then(|v| v.get("S")).and_then(|v| v.as_str());
    let pk = attr(PK)?;
    if !pk.starts_with(OUTBOX_PREFIX) {
        return None;
    }
    let (Some(sk), Some(body)) = (attr(SK), attr("body")) else {
        return Some(Err(format!("outbox item {pk} lacks sk or body")));
    };
    Some(
        Envelope::from_json(body)
            .map(|envelope| OutboxEntry { position: format!("{pk}/{sk}"), envelope })
            .map_err(|e| e.to_string()),
    )
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
        let entry = outbox_entry_from_stream_image(&image).unwrap().unwrap();
        assert_eq!((entry.position.as_str(), entry.envelope), ("OUTBOX#2/0193-x", event));
        let order = serde_json::json!({"pk": {"S": "ORDER#1"}, "sk": {"S": "#"}});
        assert!(outbox_entry_from_stream_image(&order).is_none(), "not an outbox item");
        let broken = serde_json::json!({"pk": {"S": "OUTBOX#0"}, "sk": {"S": "1"}, "body": {"S": "nope"}});
        assert!(outbox_entry_from_stream_image(&broken).unwrap().is_err());
    }

    #[test]
    fn shards_are_stable_and_in_range() {
        assert_eq!(shard_of("order-1", 4), shard_of("order-1", 4));
        assert!((0..100).all(|i| shard_of(&format!("o-{i}"), 4) < 4));
        assert_eq!(shard_of("anything", 0), 0);
    }
}
