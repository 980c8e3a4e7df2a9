//! Circuit-breaker state and rate-limit buckets in DynamoDB, so that every
//! instance of a function (Lambda or Spin) sees one breaker and one bucket
//! per principal. Both are conditional writes: no lock, no transaction, one
//! item each. The breaker is compare-and-set on a version; a bucket is one
//! conditional arithmetic update on its arrival time, so a request costs one
//! round trip, not a read and a write.
//!
//! | item | pk | sk | notes |
//! |---|---|---|---|
//! | breaker | `BREAKER#<name>` | `#` | `state` (JSON), `version` |
//! | bucket | `BUCKET#<key>` | `#` | `tat` (ms, see `rate_limit::ArrivalTime`); `ttl` once it would be full again |
//!
//! They live in the table of the function that owns them (the provider's
//! breaker in notification's table; each HTTP function's buckets in its own
//! table), hence a table name rather than a [`super::TableKind`].

use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::error::SdkError;
use aws_sdk_dynamodb::operation::update_item::UpdateItemError;
use aws_sdk_dynamodb::types::{AttributeValue, ReturnValue, ReturnValuesOnConditionCheckFailure};
use chrono::{DateTime, Utc};

use super::write::{WriteError, put, write_put};
use super::{Item, ONLY, Table, from_json, get_n, get_s, key, n, s, sdk_unavailable, to_json};
use orderly_core::ports::{BreakerStore, RateLimiter, StoreError};
use orderly_core::resilience::breaker::BreakerState;
use orderly_core::resilience::rate_limit::{ArrivalTime, Bucket, Decision};

/// Both resilience ports on one table.
#[derive(Debug, Clone)]
pub struct DynamoResilience {
    table: Table,
}

impl DynamoResilience {
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        // Nothing here is a processed mark; the TTL setting is unused.
        Self {
            table: Table {
                client,
                name: table.into(),
                processed_ttl: Duration::ZERO,
                retry: Default::default(),
                carries_events: false,
            },
        }
    }

    /// Puts `item` if the stored item is at `expected` (`0`: absent).
    async fn compare_and_set(&self, mut item: Item, expected: u64) -> Result<(), StoreError> {
        item.insert("version".into(), n(expected + 1));
        let (condition, values) = if expected == 0 {
            ("attribute_not_exists(pk)", vec![])
        } else {
            ("version = :expected", vec![(":expected", n(expected))])
        };
        match self.table.write_all(vec![write_put(put(&self.table.name, item, Some(condition), &values))]).await {
            Ok(()) => Ok(()),
            Err(WriteError::Conditions(_)) => Err(StoreError::Conflict),
            Err(WriteError::Store(error)) => Err(error),
        }
    }
}

fn version(item: &Item) -> Result<u64, StoreError> {
    u64::try_from(get_n(item, "version")?).map_err(|_| StoreError::Corrupt("negative version".into()))
}

fn breaker_key(name: &str) -> Item {
    key(format!("BREAKER#{name}"), ONLY)
}

fn bucket_key(name: &str) -> Item {
    key(format!("BUCKET#{name}"), ONLY)
}

#[async_trait]
impl BreakerStore for DynamoResilience {
    async fn load(&self, name: &str) -> Result<(BreakerState, u64), StoreError> {
        match self.table.get(breaker_key(name)).await? {
            None => Ok((BreakerState::default(), 0)),
            Some(item) => Ok((from_json(get_s(&item, "state")?)?, version(&item)?)),
        }
    }

    async fn save(&self, name: &str, state: &BreakerState, expected: u64) -> Result<(), StoreError> {
        let mut item = breaker_key(name);
        item.insert("state".into(), s(to_json(state)?));
        self.compare_and_set(item, expected).await
    }
}

/// The arrival time of a stored bucket item, if it has one (items written
/// before buckets kept one hold `tokens` instead and count as idle).
fn arrival_time(item: &Item) -> Result<Option<f64>, StoreError> {
    match item.get("tat") {
        None => Ok(None),
        Some(AttributeValue::N(raw)) => raw
            .parse()
            .map(Some)
            .map_err(|_| StoreError::Corrupt(format!("bucket arrival time is not a number: {raw}"))),
        Some(_) => Err(StoreError::Corrupt("bucket arrival time is not a number".into())),
    }
}

/// How a conditional bucket update ended.
enum BucketUpdate {
    /// Written; the arrival time it left.
    Done(Option<f64>),
    /// The condition failed; the item as it was, when the store says.
    ConditionFailed(Option<Item>),
}

impl DynamoResilience {
    async fn update_bucket(
        &self,
        name: &str,
        update: &str,
        condition: &str,
        values: Vec<(&str, AttributeValue)>,
    ) -> Result<BucketUpdate, StoreError> {
        let mut request = self
            .table
            .client
            .update_item()
            .table_name(&self.table.name)
            .set_key(Some(bucket_key(name)))
            .update_expression(update)
            .condition_expression(condition)
            .expression_attribute_names("#ttl", super::TTL)
            .return_values(ReturnValue::UpdatedNew)
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld);
        for (placeholder, value) in values {
            request = request.expression_attribute_values(placeholder, value);
        }
        match request.send().await {
            Ok(output) => Ok(BucketUpdate::Done(match output.attributes {
                Some(item) => arrival_time(&item)?,
                None => None,
            })),
            Err(SdkError::ServiceError(error)) => match error.into_err() {
                UpdateItemError::ConditionalCheckFailedException(failed) => {
                    Ok(BucketUpdate::ConditionFailed(failed.item))
                }
                other => Err(sdk_unavailable(other)),
            },
            Err(other) => Err(sdk_unavailable(other)),
        }
    }
}

#[async_trait]
impl RateLimiter for DynamoResilience {
    /// One conditional update per allowed take (see [`ArrivalTime`]): first
    /// as an idle bucket (no arrival time, or one in the past: start from
    /// now), else as a busy one (one interval later, if within the burst).
    /// Both are atomic on the item, so concurrent instances never pass more
    /// than the burst. A refusal writes nothing.
    async fn take(&self, name: &str, bucket: &Bucket, now: DateTime<Utc>) -> Result<Decision, StoreError> {
        let gcra = ArrivalTime::new(bucket);
        let now_ms = now.timestamp_millis() as f64;
        // Once full again the item says nothing a missing one does not.
        let latest_full_ms = gcra.latest_allowed(now_ms) + gcra.interval_ms() - now_ms;
        let ttl = n(now.timestamp() + (latest_full_ms / 1000.0).ceil() as i64 + 60);
        let next = gcra.after_take(None, now_ms);
        let idle = self
            .update_bucket(
                name,
                "SET tat = :next, #ttl = :ttl",
                "attribute_not_exists(tat) OR tat <= :now",
                vec![(":next", n(next)), (":now", n(now_ms)), (":ttl", ttl.clone())],
            )
            .await?;
        if let BucketUpdate::Done(_) = idle {
            return Ok(gcra.allowed(next, now_ms));
        }
        let busy = self
            .update_bucket(
                name,
                "SET tat = tat + :interval, #ttl = :ttl",
                "tat > :now AND tat <= :latest",
                vec![
                    (":interval", n(gcra.interval_ms())),
                    (":now", n(now_ms)),
                    (":latest", n(gcra.latest_allowed(now_ms))),
                    (":ttl", ttl),
                ],
            )
            .await?;
        let stored = match busy {
            BucketUpdate::Done(Some(tat)) => return Ok(gcra.allowed(tat, now_ms)),
            BucketUpdate::Done(None) => {
                return Err(StoreError::Corrupt("the bucket update returned no arrival time".into()));
            }
            BucketUpdate::ConditionFailed(Some(item)) => arrival_time(&item)?,
            // A store that does not return the old item: read it.
            BucketUpdate::ConditionFailed(None) => match self.table.get(bucket_key(name)).await? {
                Some(item) => arrival_time(&item)?,
                None => None,
            },
        };
        match stored {
            Some(tat) if tat > gcra.latest_allowed(now_ms) => Ok(gcra.refused(tat, now_ms)),
            // Neither condition held, yet the bucket has room: it changed in
            // between (arrival times only grow, so only a clock far apart
            // from another instance's can do this). Refuse for one interval
            // rather than loop.
            _ => Ok(gcra.refused(gcra.latest_allowed(now_ms) + gcra.interval_ms(), now_ms)),
        }
    }
}
