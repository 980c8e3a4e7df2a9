use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::StoreError;
use crate::resilience::breaker::BreakerState;
use crate::resilience::rate_limit::{Bucket, Decision};

/// Where a circuit breaker's state lives, so that every instance of a
/// function sees the same breaker. Writes are compare-and-set on `version`.
#[async_trait]
pub trait BreakerStore: Send + Sync {
    /// The state and its version (a breaker never seen is closed, version 0).
    async fn load(&self, name: &str) -> Result<(BreakerState, u64), StoreError>;

    /// Stores `state` if the stored version is still `expected` (else `Conflict`).
    async fn save(&self, name: &str, state: &BreakerState, expected: u64) -> Result<(), StoreError>;
}

/// Shared token buckets. The adapter applies
/// `resilience::rate_limit::take` atomically (read, decide, write), so two
/// instances hitting one bucket never both spend its last token.
#[async_trait]
pub trait RateLimiter: Send + Sync {
    async fn take(&self, key: &str, bucket: &Bucket, now: DateTime<Utc>) -> Result<Decision, StoreError>;
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("cache unavailable: {0}")]
pub struct CacheError(pub String);

/// A cache for cache-aside reads. Entries expire after the adapter's TTL;
/// callers also invalidate on change. A failing cache must never fail a read:
/// callers fall back to the store.
#[async_trait]
pub trait Cache: Send + Sync {
    async fn get(&self, key: &str) -> Result<Option<String>, CacheError>;
    async fn put(&self, key: &str, value: String) -> Result<(), CacheError>;
    async fn invalidate(&self, key: &str) -> Result<(), CacheError>;
    /// How long an entry may live: the staleness bound when an invalidation is missed.
    fn ttl(&self) -> Duration;
}
