use std::time::{Duration, Instant};

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

/// What a cache lookup found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Lookup {
    Hit(String),
    /// Not cached: read the store, then [`Cache::fill`] with this ticket.
    Miss(FillTicket),
}

/// Permission to fill a key after a miss, dated by the adapter.
///
/// Cache-aside has a classic race: a reader misses, reads the store, and
/// before it writes the entry back a change commits and its invalidation
/// runs; the reader's late fill then puts the old state back for a whole
/// TTL. The ticket closes it: a fill whose ticket was issued before an
/// invalidation of that key is dropped (memcached's "leases").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FillTicket {
    generation: u64,
    issued: Instant,
}

impl FillTicket {
    /// A ticket at the adapter's invalidation `generation`, issued now.
    pub fn new(generation: u64) -> Self {
        Self { generation, issued: Instant::now() }
    }

    pub fn generation(&self) -> u64 {
        self.generation
    }

    pub fn age(&self) -> Duration {
        self.issued.elapsed()
    }
}

/// A cache for cache-aside reads. Entries expire after the adapter's TTL;
/// callers also invalidate on change. A failing cache must never fail a read:
/// callers fall back to the store.
#[async_trait]
pub trait Cache: Send + Sync {
    async fn get(&self, key: &str) -> Result<Lookup, CacheError>;
    /// Stores `value` read after the miss that issued `ticket`, unless the
    /// key was invalidated since (then the value may be older than the
    /// change that invalidated it, and nothing is stored).
    async fn fill(&self, key: &str, value: String, ticket: FillTicket) -> Result<(), CacheError>;
    async fn invalidate(&self, key: &str) -> Result<(), CacheError>;
    /// How long an entry may live: the staleness bound when an invalidation is missed.
    fn ttl(&self) -> Duration;
}
