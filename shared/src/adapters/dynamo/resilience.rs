//! Circuit-breaker state and rate-limit buckets in DynamoDB, so that every
//! instance of a function (Lambda or Spin) sees one breaker and one bucket
//! per principal. Both are compare-and-set with conditional writes: no lock,
//! no transaction, one item each.
//!
//! | item | pk | sk | notes |
//! |---|---|---|---|
//! | breaker | `BREAKER#<name>` | `#` | `state` (JSON), `version` |
//! | bucket | `BUCKET#<key>` | `#` | `tokens`, `updated_at_ms`, `version`; `ttl` once it would be full again |
//!
//! They live in the table of the function that owns them (the provider's
//! breaker in notification's table; each HTTP function's buckets in its own
//! table), hence a table name rather than a [`super::TableKind`].

use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::types::AttributeValue;
use chrono::{DateTime, Utc};

use super::write::{WriteError, put, write_put};
use super::{Item, ONLY, Table, from_json, get_n, get_s, key, n, s, to_json};
use crate::ports::{BreakerStore, RateLimiter, StoreError};
use crate::resilience::breaker::BreakerState;
use crate::resilience::rate_limit::{self, Bucket, BucketState, Decision};

/// A hot bucket's compare-and-set loses to a concurrent instance at most
/// this often before the call reports the store as unavailable.
const CAS_ATTEMPTS: u32 = 64;

/// Both resilience ports on one table.
#[derive(Debug, Clone)]
pub struct DynamoResilience {
    table: Table,
}

impl DynamoResilience {
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        // Nothing here is a processed mark; the TTL setting is unused.
        Self { table: Table { client, name: table.into(), processed_ttl: Duration::ZERO } }
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

fn bucket_state(item: &Item) -> Result<BucketState, StoreError> {
    let tokens = match item.get("tokens") {
        Some(AttributeValue::N(raw)) => {
            raw.parse().map_err(|_| StoreError::Corrupt(format!("bucket tokens are not a number: {raw}")))?
        }
        _ => return Err(StoreError::Corrupt("bucket lacks tokens".into())),
    };
    Ok(BucketState { tokens, updated_at_ms: get_n(item, "updated_at_ms")? })
}

#[async_trait]
impl RateLimiter for DynamoResilience {
    /// Read, decide with `rate_limit::take`, write back only if nobody wrote
    /// in between (else read again). A refusal writes nothing: refilling is
    /// linear, so the stored state already implies the same answer later.
    async fn take(&self, name: &str, bucket: &Bucket, now: DateTime<Utc>) -> Result<Decision, StoreError> {
        let now_ms = now.timestamp_millis();
        for attempt in 0..CAS_ATTEMPTS {
            let stored = self.table.get(bucket_key(name)).await?;
            let (state, expected) = match &stored {
                None => (None, 0),
                Some(item) => (Some(bucket_state(item)?), version(item)?),
            };
            let (next, decision) = rate_limit::take(state, bucket, now_ms);
            if !decision.allowed {
                return Ok(decision);
            }
            let mut item = bucket_key(name);
            item.insert("tokens".into(), n(next.tokens));
            item.insert("updated_at_ms".into(), n(next.updated_at_ms));
            // Once full again the item says nothing a missing one does not.
            let full_in = decision.reset_after.as_secs() as i64 + 60;
            item.insert(super::TTL.into(), n(now.timestamp() + full_in));
            match self.compare_and_set(item, expected).await {
                Ok(()) => return Ok(decision),
                Err(StoreError::Conflict) => self.table.pause(attempt.min(3)).await,
                Err(error) => return Err(error),
            }
        }
        Err(StoreError::Unavailable(format!("rate-limit bucket still contended after {CAS_ATTEMPTS} attempts")))
    }
}
