//! The cache contract against the in-process (moka) cache.

use std::time::Duration;

use orderly_adapters::memory_cache::MemoryCache;

/// Short, for the expiry case to be quick; long enough that a read right
/// after a write never finds the entry expired on a slow machine.
fn fresh() -> Box<MemoryCache> {
    Box::new(MemoryCache::new(100, Duration::from_secs(2)))
}

mod cache {
    orderly_contract::cache_contract!(super::fresh());
}
