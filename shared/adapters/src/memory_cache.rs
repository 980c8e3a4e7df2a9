//! An in-process cache (moka): the local runner's catalog cache. Bounded in
//! entries, every entry expires after the TTL.
//!
//! Fills are fenced by invalidations (see [`FillTicket`]): every
//! invalidation takes the next number of one counter and remembers it for
//! its key, and a fill is kept only if its key was not invalidated after its
//! ticket was issued. Those marks are forgotten after a TTL, so a ticket
//! older than a TTL fills nothing.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use async_trait::async_trait;

use orderly_core::ports::{Cache, CacheError, FillTicket, Lookup};

#[derive(Clone)]
pub struct MemoryCache {
    entries: moka::future::Cache<String, String>,
    /// The generation of each key's last invalidation, kept for one TTL.
    invalidated: moka::future::Cache<String, u64>,
    generation: std::sync::Arc<AtomicU64>,
    ttl: Duration,
}

impl MemoryCache {
    pub fn new(max_entries: u64, ttl: Duration) -> Self {
        Self {
            entries: moka::future::Cache::builder().max_capacity(max_entries).time_to_live(ttl).build(),
            invalidated: moka::future::Cache::builder().max_capacity(max_entries).time_to_live(ttl).build(),
            generation: Default::default(),
            ttl,
        }
    }

    /// Whether `key` was invalidated after `ticket` was issued (or the
    /// ticket is too old for its mark to be remembered).
    async fn fenced(&self, key: &str, ticket: FillTicket) -> bool {
        ticket.age() >= self.ttl || self.invalidated.get(key).await.is_some_and(|at| at > ticket.generation())
    }
}

#[async_trait]
impl Cache for MemoryCache {
    async fn get(&self, key: &str) -> Result<Lookup, CacheError> {
        Ok(match self.entries.get(key).await {
            Some(value) => Lookup::Hit(value),
            None => Lookup::Miss(FillTicket::new(self.generation.load(Ordering::SeqCst))),
        })
    }

    async fn fill(&self, key: &str, value: String, ticket: FillTicket) -> Result<(), CacheError> {
        if self.fenced(key, ticket).await {
            return Ok(());
        }
        self.entries.insert(key.to_owned(), value).await;
        // An invalidation between the check and the insert marked the key
        // before removing the entry; seeing its mark now, take ours out.
        if self.fenced(key, ticket).await {
            self.entries.invalidate(key).await;
        }
        Ok(())
    }

    async fn invalidate(&self, key: &str) -> Result<(), CacheError> {
        let generation = self.generation.fetch_add(1, Ordering::SeqCst) + 1;
        self.invalidated.insert(key.to_owned(), generation).await;
        self.entries.invalidate(key).await;
        Ok(())
    }

    fn ttl(&self) -> Duration {
        self.ttl
    }
}
