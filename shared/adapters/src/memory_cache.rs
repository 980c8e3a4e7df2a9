//! An in-process cache (moka): the local runner's catalog cache. Bounded in
//! entries, every entry expires after the TTL.

use std::time::Duration;

use async_trait::async_trait;

use orderly_core::ports::{Cache, CacheError};

#[derive(Clone)]
pub struct MemoryCache {
    entries: moka::future::Cache<String, String>,
    ttl: Duration,
}

impl MemoryCache {
    pub fn new(max_entries: u64, ttl: Duration) -> Self {
        Self { entries: moka::future::Cache::builder().max_capacity(max_entries).time_to_live(ttl).build(), ttl }
    }
}

#[async_trait]
impl Cache for MemoryCache {
    async fn get(&self, key: &str) -> Result<Option<String>, CacheError> {
        Ok(self.entries.get(key).await)
    }

    async fn put(&self, key: &str, value: String) -> Result<(), CacheError> {
        self.entries.insert(key.to_owned(), value).await;
        Ok(())
    }

    async fn invalidate(&self, key: &str) -> Result<(), CacheError> {
        self.entries.invalidate(key).await;
        Ok(())
    }

    fn ttl(&self) -> Duration {
        self.ttl
    }
}
