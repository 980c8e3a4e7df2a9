//! Conditional writes: one item with a plain conditional request (1 write
//! unit), several with one `TransactWriteItems` (all or nothing). Failed
//! conditions come back by position, so each adapter can say which rule was
//! broken (`AlreadyProcessed` for the processed mark, `Conflict` otherwise).

use std::time::Duration;

use aws_sdk_dynamodb::error::SdkError;
use aws_sdk_dynamodb::operation::delete_item::DeleteItemError;
use aws_sdk_dynamodb::operation::put_item::PutItemError;
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::operation::update_item::UpdateItemError;
use aws_sdk_dynamodb::types::{AttributeValue, Put, TransactWriteItem, Update};
use aws_smithy_async::rt::sleep::AsyncSleep;
use chrono::Utc;

use super::{Item, Table, expiry, processed_key, sdk_unavailable, unavailable};
use orderly_core::ports::{ProcessedEvent, StoreError};

/// The `ClientRequestToken` of one `TransactWriteItems` call: a UUID v4 from
/// the operating system's entropy (`wasi:random` inside a component).
///
/// DynamoDB keeps a token for 10 minutes: the same token with another
/// payload fails (`IdempotentParameterMismatchException`), and with the same
/// payload it is acknowledged *without being applied*. The SDK's own token
/// comes from `fastrand`, which a wasm32-wasip2 component seeds from the
/// clock; a fresh instance per request made concurrent instances send the
/// same tokens for different transactions. Our idempotency lives in the
/// data (processed marks, claims, conditions in the same transaction), so
/// the token's only job is the one the SDK gives it: its retries of one
/// call reuse it (serialization happens once per call), and our own retry
/// of a cancelled transaction, which applied nothing, is a new call with a
/// new token. A token derived from the operation would add nothing the
/// conditions do not already give, and would turn a legitimate repeat within
/// the 10 minutes (release, then reserve the same lines again) into a no-op.
fn request_token() -> String {
    uuid::Uuid::new_v4().to_string()
}

#[derive(Debug)]
pub(crate) enum WriteError {
    /// These positions' conditions failed, with the item as it was (when the
    /// write asked for it).
    Conditions(Vec<(usize, Option<Item>)>),
    Store(StoreError),
}

impl WriteError {
    /// `AlreadyProcessed` when the processed mark at `mark` was the problem,
    /// else `Conflict` (a failed condition) or the store's own error.
    pub fn into_store_error(self, mark: Option<usize>) -> StoreError {
        self.into_store_error_marks(mark.map_or(0..0, |m| m..m + 1))
    }

    /// The same, with processed marks at the positions `marks`.
    pub fn into_store_error_marks(self, marks: std::ops::Range<usize>) -> StoreError {
        match self {
            Self::Conditions(failed) if failed.iter().any(|(i, _)| marks.contains(i)) => StoreError::AlreadyProcessed,
            Self::Conditions(_) => StoreError::Conflict,
            Self::Store(error) => error,
        }
    }
}

/// Builds a conditional put.
pub(crate) fn put(table: &str, item: Item, condition: Option<&str>, values: &[(&str, AttributeValue)]) -> Put {
    let mut put = Put::builder().table_name(table).set_item(Some(item));
    if let Some(condition) = condition {
        put = put.condition_expression(condition);
    }
    for (name, value) in values {
        put = put.expression_attribute_values(*name, value.clone());
    }
    put.build().expect("table name and item are set")
}

pub(crate) fn write_put(put: Put) -> TransactWriteItem {
    TransactWriteItem::builder().put(put).build()
}

pub(crate) fn write_update(update: Update) -> TransactWriteItem {
    TransactWriteItem::builder().update(update).build()
}

/// The processed mark as a put that fails if the mark exists.
pub(crate) fn mark_put(table: &Table, mark: &ProcessedEvent) -> TransactWriteItem {
    let now = Utc::now();
    let mut item = processed_key(mark);
    item.insert(super::TTL.into(), super::n(expiry(now, table.processed_ttl)));
    item.insert("at".into(), super::s(super::timestamp(now)));
    write_put(put(&table.name, item, Some("attribute_not_exists(pk)"), &[]))
}

/// Processed marks kept on the item an event changed, as a string set
/// `events` of event ids, instead of an item of their own.
///
/// An event of the saga changes one aggregate (an order, a reservation), and
/// that item's write is already conditioned on the state it was decided
/// from. Recording the event's id on the item, under the same condition and
/// `NOT contains(events, id)`, makes a second write of the same event fail
/// exactly as a separate mark's `attribute_not_exists` did, and saves the
/// mark's item: 2 write units per transaction. Bounded: an order or a
/// reservation is moved by a handful of events in its life.
///
/// A failed condition is then told apart with the item as it was (returned
/// by the failed write, else read): its id among `events` is a duplicate
/// (`AlreadyProcessed`); so is a mark item of the old form, written before
/// marks lived on the items (they expire with their TTL); else it is a
/// `Conflict`, to be decided again from a fresh read.
pub(crate) mod inline_mark {
    use aws_sdk_dynamodb::types::builders::UpdateBuilder;
    use aws_sdk_dynamodb::types::{AttributeValue, ReturnValuesOnConditionCheckFailure};

    use super::super::{Item, Table};
    use orderly_core::ports::{ProcessedEvent, StoreError};

    /// The clause of an update expression that records the event.
    pub const ADD: &str = "ADD #events :event";
    /// The condition that the event is not recorded yet (true on an item
    /// without `events`).
    pub const NOT_SEEN: &str = "NOT contains(#events, :event_id)";

    /// The names and values [`ADD`] and [`NOT_SEEN`] use, and the item
    /// back on a failed condition.
    pub fn bind(update: UpdateBuilder, mark: &ProcessedEvent) -> UpdateBuilder {
        let id = mark.event_id.to_string();
        update
            .expression_attribute_names("#events", "events")
            .expression_attribute_values(":event", AttributeValue::Ss(vec![id.clone()]))
            .expression_attribute_values(":event_id", AttributeValue::S(id))
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
    }

    fn recorded(item: &Item, mark: &ProcessedEvent) -> bool {
        let id = mark.event_id.to_string();
        matches!(item.get("events"), Some(AttributeValue::Ss(ids)) if ids.contains(&id))
    }

    /// What a failed condition on the item at `key` means for `mark`.
    pub async fn failure(
        table: &Table,
        mark: &ProcessedEvent,
        key: Item,
        returned: Option<Item>,
    ) -> Result<StoreError, StoreError> {
        let item = match returned {
            Some(item) => Some(item),
            None => table.get(key).await?,
        };
        if item.is_some_and(|item| recorded(&item, mark)) || table.is_processed(mark).await? {
            return Ok(StoreError::AlreadyProcessed);
        }
        Ok(StoreError::Conflict)
    }
}

impl Table {
    /// Writes every item or none.
    pub async fn write_all(&self, writes: Vec<TransactWriteItem>) -> Result<(), WriteError> {
        self.write_all_counting_races(writes).await.map(|_| ())
    }

    /// `write_all`, also saying how many times the transaction lost a race
    /// with another one (`TransactionConflict`) before it went through: how
    /// hot its items are.
    pub async fn write_all_counting_races(&self, mut writes: Vec<TransactWriteItem>) -> Result<u32, WriteError> {
        if self.carries_events {
            super::outbox::clear_carried(&mut writes);
        }
        match writes.len() {
            0 => Ok(0),
            1 => self.write_one(writes.pop().expect("one write")).await.map(|()| 0),
            _ => self.transact(writes).await,
        }
    }

    async fn write_one(&self, write: TransactWriteItem) -> Result<(), WriteError> {
        let failed = |item: Option<Item>| WriteError::Conditions(vec![(0, item)]);
        if let Some(put) = write.put {
            let result = self
                .client
                .put_item()
                .table_name(put.table_name)
                .set_item(Some(put.item))
                .set_condition_expression(put.condition_expression)
                .set_expression_attribute_names(put.expression_attribute_names)
                .set_expression_attribute_values(put.expression_attribute_values)
                .set_return_values_on_condition_check_failure(put.return_values_on_condition_check_failure)
                .send()
                .await;
            return match result {
                Ok(_) => Ok(()),
                Err(SdkError::ServiceError(e)) => match e.into_err() {
                    PutItemError::ConditionalCheckFailedException(e) => Err(failed(e.item)),
                    other => Err(WriteError::Store(sdk_unavailable(other))),
                },
                Err(other) => Err(WriteError::Store(sdk_unavailable(other))),
            };
        }
        if let Some(update) = write.update {
            let result = self
                .client
                .update_item()
                .table_name(update.table_name)
                .set_key(Some(update.key))
                .update_expression(update.update_expression)
                .set_condition_expression(update.condition_expression)
                .set_expression_attribute_names(update.expression_attribute_names)
                .set_expression_attribute_values(update.expression_attribute_values)
                .set_return_values_on_condition_check_failure(update.return_values_on_condition_check_failure)
                .send()
                .await;
            return match result {
                Ok(_) => Ok(()),
                Err(SdkError::ServiceError(e)) => match e.into_err() {
                    UpdateItemError::ConditionalCheckFailedException(e) => Err(failed(e.item)),
                    other => Err(WriteError::Store(sdk_unavailable(other))),
                },
                Err(other) => Err(WriteError::Store(sdk_unavailable(other))),
            };
        }
        if let Some(delete) = write.delete {
            let result = self
                .client
                .delete_item()
                .table_name(delete.table_name)
                .set_key(Some(delete.key))
                .set_condition_expression(delete.condition_expression)
                .set_expression_attribute_names(delete.expression_attribute_names)
                .set_expression_attribute_values(delete.expression_attribute_values)
                .send()
                .await;
            return match result {
                Ok(_) => Ok(()),
                Err(SdkError::ServiceError(e)) => match e.into_err() {
                    DeleteItemError::ConditionalCheckFailedException(e) => Err(failed(e.item)),
                    other => Err(WriteError::Store(sdk_unavailable(other))),
                },
                Err(other) => Err(WriteError::Store(sdk_unavailable(other))),
            };
        }
        // A lone condition check writes nothing: run it as a transaction.
        self.transact(vec![write]).await.map(|_| ())
    }

    async fn transact(&self, writes: Vec<TransactWriteItem>) -> Result<u32, WriteError> {
        let mut attempt = 0;
        loop {
            let result = self
                .client
                .transact_write_items()
                .set_transact_items(Some(writes.clone()))
                .client_request_token(request_token())
                .send()
                .await;
            let error = match result {
                Ok(_) => return Ok(attempt),
                Err(SdkError::ServiceError(e)) => e.into_err(),
                Err(other) => return Err(WriteError::Store(sdk_unavailable(other))),
            };
            let reasons = match error {
                TransactWriteItemsError::TransactionCanceledException(e) => e.cancellation_reasons.unwrap_or_default(),
                TransactWriteItemsError::TransactionInProgressException(_) => Vec::new(),
                other => return Err(WriteError::Store(sdk_unavailable(other))),
            };
            let failed: Vec<(usize, Option<Item>)> = reasons
                .iter()
                .enumerate()
                .filter(|(_, r)| r.code() == Some("ConditionalCheckFailed"))
                .map(|(i, r)| (i, r.item.clone()))
                .collect();
            if !failed.is_empty() {
                return Err(WriteError::Conditions(failed));
            }
            // Lost a race with another transaction (no condition failed):
            // try again shortly, it may well succeed now.
            let raced = reasons.is_empty() || reasons.iter().any(|r| r.code() == Some("TransactionConflict"));
            if !raced || attempt >= self.retry.retries {
                let codes: Vec<_> = reasons.iter().filter_map(|r| r.code()).collect();
                return Err(WriteError::Store(unavailable(format!("transaction cancelled: {codes:?}"))));
            }
            attempt += 1;
            self.pause(attempt).await;
        }
    }

    /// A short jittered pause through the client's own sleep (no runtime
    /// assumed here): the policy's base, doubling per attempt (at most 64
    /// times), between half and all of it. No pause when the client has no
    /// sleep.
    pub async fn pause(&self, attempt: u32) {
        if let Some(sleep) = self.client.config().sleep_impl() {
            let ceiling = (self.retry.base.as_micros() as u64).max(1) << attempt.saturating_sub(1).min(6);
            let micros = rand::random_range(ceiling / 2..=ceiling);
            sleep.sleep(Duration::from_micros(micros)).await;
        }
    }

    /// `ProcessedEvents::mark_processed` for every table.
    pub async fn mark_processed(&self, mark: &ProcessedEvent) -> Result<(), StoreError> {
        match self.write_all(vec![mark_put(self, mark)]).await {
            Ok(()) | Err(WriteError::Conditions(_)) => Ok(()),
            Err(WriteError::Store(error)) => Err(error),
        }
    }

    pub async fn is_processed(&self, mark: &ProcessedEvent) -> Result<bool, StoreError> {
        Ok(self.get(processed_key(mark)).await?.is_some())
    }

    /// A strongly consistent read of one item.
    pub async fn get(&self, key: Item) -> Result<Option<Item>, StoreError> {
        let found = self
            .client
            .get_item()
            .table_name(&self.name)
            .set_key(Some(key))
            .consistent_read(true)
            .send()
            .await
            .map_err(sdk_unavailable)?;
        Ok(found.item)
    }
}

/// Every DynamoDB adapter remembers processed events in its own table.
macro_rules! processed_events_for {
    ($adapter:ty) => {
        #[async_trait::async_trait]
        impl orderly_core::ports::ProcessedEvents for $adapter {
            async fn is_processed(&self, mark: &orderly_core::ports::ProcessedEvent) -> Result<bool, StoreError> {
                self.table.is_processed(mark).await
            }

            async fn mark_processed(&self, mark: &orderly_core::ports::ProcessedEvent) -> Result<(), StoreError> {
                self.table.mark_processed(mark).await
            }
        }
    };
}
pub(crate) use processed_events_for;

#[cfg(test)]
mod tests {
    use super::super::captured;
    use super::*;

    /// The `ClientRequestToken` a fresh client sends for a two-item transaction
    /// on `sku`, with fastrand's global generator seeded as a fresh wasm
    /// instance's was: from a clock two concurrent instances read alike.
    async fn token_of_a_fresh_instance(sku: &str) -> String {
        fastrand::seed(7);
        let (client, request) = captured::client();
        let table = Table {
            client,
            name: "t".into(),
            processed_ttl: Duration::from_secs(60),
            retry: Default::default(),
            carries_events: false,
        };
        let line = |n: &str| write_put(put("t", super::super::key(format!("{sku}#{n}"), "#"), None, &[]));
        let _ = table.write_all(vec![line("1"), line("2")]).await;
        captured::body(request)["ClientRequestToken"].as_str().expect("a ClientRequestToken").to_owned()
    }

    #[tokio::test]
    async fn fresh_instances_send_different_tokens_for_different_transactions() {
        let first = token_of_a_fresh_instance("A").await;
        let second = token_of_a_fresh_instance("B").await;
        assert_ne!(first, second, "two instances seeded alike must not share a token");
        assert!(uuid::Uuid::parse_str(&first).is_ok(), "{first}");
    }
}
