//! The cache contract against the in-process (moka) cache.

use std::time::Duration;

use orderly_shared::adapters::memory_cache::MemoryCache;

fn fresh() -> Box<MemoryCache> {
    Box::new(MemoryCache::new(100, Duration::from_millis(500)))
}

mod cache {
    orderly_shared::cache_contract!(super::fresh());
}
