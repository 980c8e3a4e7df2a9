//! `BreakerStore`, `RateLimiter` and `Cache`.

use std::time::Duration;

use chrono::{DateTime, Utc};

use orderly_core::ports::{BreakerStore, Cache, FillTicket, Lookup, RateLimiter, StoreError};
use orderly_core::resilience::breaker::BreakerState;
use orderly_core::resilience::rate_limit::Bucket;

fn at(ms: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_millis(1_800_000_000_000 + ms).expect("time")
}

pub async fn an_unknown_breaker_is_closed<S: BreakerStore>(store: &S) {
    assert_eq!(store.load("never-seen").await.unwrap(), (BreakerState::Closed { failures: 0 }, 0));
}

pub async fn breaker_writes_are_compare_and_set<S: BreakerStore>(store: &S) {
    let open = BreakerState::Open { until: at(10_000) };
    store.save("provider", &BreakerState::Closed { failures: 1 }, 0).await.unwrap();
    let (state, version) = store.load("provider").await.unwrap();
    assert_eq!(state, BreakerState::Closed { failures: 1 });
    store.save("provider", &open, version).await.unwrap();
    assert_eq!(
        store.save("provider", &BreakerState::default(), version).await,
        Err(StoreError::Conflict),
        "stale version"
    );
    assert_eq!(store.load("provider").await.unwrap().0, open);
    assert_eq!(store.load("other").await.unwrap().0, BreakerState::default(), "breakers are independent");
}

pub async fn a_bucket_allows_its_burst_then_refuses<S: RateLimiter>(store: &S) {
    let bucket = Bucket { per_second: 1.0, burst: 3 };
    for remaining in [2, 1, 0] {
        let decision = store.take("alice|write", &bucket, at(0)).await.unwrap();
        assert!(decision.allowed);
        assert_eq!(decision.remaining, remaining);
    }
    let refused = store.take("alice|write", &bucket, at(0)).await.unwrap();
    assert!(!refused.allowed);
    assert_eq!(refused.retry_after, Duration::from_secs(1));
    assert!(store.take("bob|write", &bucket, at(0)).await.unwrap().allowed, "buckets are per key");
    assert!(store.take("alice|write", &bucket, at(1_000)).await.unwrap().allowed, "one token back after a second");
}

pub async fn concurrent_takes_never_exceed_the_burst<S: RateLimiter>(store: &S) {
    let bucket = Bucket { per_second: 0.001, burst: 10 };
    let decisions = futures::future::join_all((0..40).map(|_| store.take("hot", &bucket, at(0)))).await;
    let allowed = decisions.iter().filter(|d| d.as_ref().unwrap().allowed).count();
    assert_eq!(allowed, 10);
}

/// A miss's ticket, for filling the key.
async fn miss<S: Cache>(store: &S, key: &str) -> FillTicket {
    match store.get(key).await.unwrap() {
        Lookup::Miss(ticket) => ticket,
        Lookup::Hit(value) => panic!("{key} is cached as {value:?}"),
    }
}

async fn cached<S: Cache>(store: &S, key: &str) -> Option<String> {
    match store.get(key).await.unwrap() {
        Lookup::Hit(value) => Some(value),
        Lookup::Miss(_) => None,
    }
}

pub async fn caches_and_invalidates<S: Cache>(store: &S) {
    let ticket = miss(store, "k").await;
    store.fill("k", "v1".into(), ticket).await.unwrap();
    assert_eq!(cached(store, "k").await.as_deref(), Some("v1"));
    store.invalidate("k").await.unwrap();
    assert_eq!(cached(store, "k").await, None);
    let ticket = miss(store, "k").await;
    store.fill("k", "v2".into(), ticket).await.unwrap();
    assert_eq!(cached(store, "k").await.as_deref(), Some("v2"), "a miss after an invalidation fills again");
    store.invalidate("never-there").await.unwrap();
}

pub async fn a_fill_read_before_an_invalidation_of_its_key_is_dropped<S: Cache>(store: &S) {
    // A reader misses and reads the old state; a change commits and
    // invalidates; the reader's fill arrives last.
    let late = miss(store, "k").await;
    let other = miss(store, "other").await;
    store.invalidate("k").await.unwrap();
    store.fill("k", "old".into(), late).await.unwrap();
    assert_eq!(cached(store, "k").await, None, "the old state is not put back");
    store.fill("other", "v".into(), other).await.unwrap();
    assert_eq!(cached(store, "other").await.as_deref(), Some("v"), "other keys' fills are not fenced");
    let ticket = miss(store, "k").await;
    store.fill("k", "new".into(), ticket).await.unwrap();
    assert_eq!(cached(store, "k").await.as_deref(), Some("new"), "a read after the change fills");
}

pub async fn entries_expire_after_the_ttl<S: Cache>(store: &S) {
    let ticket = miss(store, "short").await;
    store.fill("short", "lived".into(), ticket).await.unwrap();
    assert_eq!(cached(store, "short").await.as_deref(), Some("lived"));
    let ttl = store.ttl();
    super::eventually("the entry to expire", ttl + Duration::from_secs(5), || async {
        cached(store, "short").await.is_none().then_some(())
    })
    .await;
}
