//! Cache-aside in the catalog use case, on the real SQLite store and the real
//! in-process cache.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use chrono::Utc;
use inventory::Catalog;
use orderly_adapters::memory_cache::MemoryCache;
use orderly_adapters::sqlite::{DbOptions, QueueSettings, SqliteStore};
use orderly_core::domain::{
    Currency, Money, OrderId, Product, ProductDraft, ProductName, Reservation, ReservationState, RestockQuantity, Sku,
    StockLevel,
};
use orderly_core::events::{Envelope, EventFactory};
use orderly_core::ports::{
    Cache, CacheError, Clock, FillTicket, InventoryStore, Lookup, ProcessedEvent, ReservationChange, StockMove,
    StoreError, SystemClock, UuidV7Ids,
};
use uuid::Uuid;

/// The real store, counting how often the catalog reads a product from it.
struct CountingStore {
    inner: SqliteStore,
    product_reads: AtomicUsize,
    /// A write that lands right after the next product read (a racing
    /// admin or reservation on another instance), and its event's
    /// invalidation of the cache.
    racing_write: std::sync::Mutex<Option<Product>>,
    /// Units a reservation takes right after the next product read.
    racing_take: std::sync::Mutex<Option<u32>>,
    cache: Arc<dyn Cache>,
}

#[async_trait]
impl InventoryStore for CountingStore {
    async fn product(&self, sku: &Sku) -> Result<Option<Product>, StoreError> {
        self.product_reads.fetch_add(1, Ordering::SeqCst);
        let read = self.inner.product(sku).await;
        let racing = self.racing_write.lock().unwrap().take();
        if let Some(racing) = racing {
            self.inner.save_product(&racing, Some(racing.version - 1), &[]).await.unwrap();
            // As the consumer of its product.changed.v1 would (Catalog::forget).
            self.cache.invalidate(&format!("product:{sku}")).await.ok();
        }
        let take = self.racing_take.lock().unwrap().take();
        if let Some(units) = take {
            let order_id = OrderId::from_uuid(Uuid::now_v7());
            let change = ReservationChange {
                reservation: Reservation {
                    order_id,
                    state: ReservationState::Reserved,
                    lines: vec![(sku.clone(), units)],
                    updated_at: Utc::now(),
                },
                expected: None,
                stock: StockMove::Take(vec![(sku.clone(), units)]),
            };
            let mark = ProcessedEvent { consumer: "inventory", event_id: Uuid::now_v7() };
            self.inner.apply_reservation(&change, &[], &mark).await.unwrap();
        }
        read
    }
    async fn products(&self, after: Option<&Sku>, limit: usize) -> Result<Vec<Product>, StoreError> {
        self.inner.products(after, limit).await
    }
    async fn available(&self, skus: &[Sku]) -> Result<HashMap<Sku, i64>, StoreError> {
        self.inner.available(skus).await
    }
    async fn save_product(&self, p: &Product, expected: Option<u64>, outbox: &[Envelope]) -> Result<(), StoreError> {
        self.inner.save_product(p, expected, outbox).await
    }
    async fn restock(&self, p: &Product, expected: u64, units: u32, outbox: &[Envelope]) -> Result<(), StoreError> {
        self.inner.restock(p, expected, units, outbox).await
    }
    async fn reservation(&self, order_id: OrderId) -> Result<Option<Reservation>, StoreError> {
        self.inner.reservation(order_id).await
    }
    async fn apply_reservation(
        &self,
        c: &ReservationChange,
        o: &[Envelope],
        p: &ProcessedEvent,
    ) -> Result<(), StoreError> {
        self.inner.apply_reservation(c, o, p).await
    }
}

/// A cache whose backend is down.
struct BrokenCache;

#[async_trait]
impl Cache for BrokenCache {
    async fn get(&self, _: &str) -> Result<Lookup, CacheError> {
        Err(CacheError("connection refused".into()))
    }
    async fn fill(&self, _: &str, _: String, _: FillTicket) -> Result<(), CacheError> {
        Err(CacheError("connection refused".into()))
    }
    async fn invalidate(&self, _: &str) -> Result<(), CacheError> {
        Err(CacheError("connection refused".into()))
    }
    fn ttl(&self) -> Duration {
        Duration::from_secs(5)
    }
}

fn setup(cache: Arc<dyn Cache>) -> (Catalog, Arc<CountingStore>, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let inner = SqliteStore::open(&dir.path().join("db"), DbOptions::default(), QueueSettings::default()).unwrap();
    let store = Arc::new(CountingStore {
        inner,
        product_reads: AtomicUsize::new(0),
        racing_write: std::sync::Mutex::new(None),
        racing_take: std::sync::Mutex::new(None),
        cache: cache.clone(),
    });
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let events = EventFactory::new("test", Arc::new(UuidV7Ids), clock.clone());
    (Catalog::new(store.clone(), events, clock).with_cache(cache), store, dir)
}

fn draft(price: &str) -> ProductDraft {
    ProductDraft {
        name: ProductName::parse("Tea").unwrap(),
        price: Money::parse_decimal(price, Currency::parse("EUR").unwrap()).unwrap(),
        initial_stock: Some(StockLevel::parse(5).unwrap()),
    }
}

#[tokio::test]
async fn a_second_read_is_served_from_the_cache_until_the_product_changes() {
    let (catalog, store, _dir) = setup(Arc::new(MemoryCache::new(100, Duration::from_secs(60))));
    let sku = Sku::parse("TEA").unwrap();
    catalog.put(sku.clone(), draft("1.00"), None, None).await.unwrap();
    let reads_after_put = store.product_reads.load(Ordering::SeqCst);

    assert_eq!(catalog.get(&sku).await.unwrap().price.to_decimal_string(), "1.00");
    assert_eq!(catalog.get(&sku).await.unwrap().price.to_decimal_string(), "1.00");
    assert_eq!(store.product_reads.load(Ordering::SeqCst) - reads_after_put, 1, "one miss, then a hit");

    catalog.put(sku.clone(), draft("2.00"), None, None).await.unwrap();
    assert_eq!(catalog.get(&sku).await.unwrap().price.to_decimal_string(), "2.00");

    let before = store.product_reads.load(Ordering::SeqCst);
    catalog.forget(&sku).await;
    catalog.get(&sku).await.unwrap();
    assert_eq!(store.product_reads.load(Ordering::SeqCst) - before, 1, "an invalidated entry is read again");
}

#[tokio::test]
async fn a_failing_cache_degrades_to_the_store_not_to_an_error() {
    let (catalog, store, _dir) = setup(Arc::new(BrokenCache));
    let sku = Sku::parse("TEA").unwrap();
    catalog.put(sku.clone(), draft("1.00"), None, None).await.unwrap();
    for _ in 0..3 {
        assert_eq!(catalog.get(&sku).await.unwrap().sku, sku);
    }
    assert!(store.product_reads.load(Ordering::SeqCst) >= 3, "every read went to the store");
}

#[tokio::test]
async fn a_conditional_update_of_a_changed_or_missing_product_is_stale_and_changes_nothing() {
    let (catalog, store, _dir) = setup(Arc::new(MemoryCache::new(100, Duration::from_secs(60))));
    let sku = Sku::parse("TEA").unwrap();
    let refuse = |_: &Product| false;
    let missing = catalog.put(sku.clone(), draft("1.00"), Some(&refuse), None).await;
    assert!(matches!(missing, Err(inventory::CatalogError::Stale)), "{missing:?}");
    assert_eq!(store.inner.product(&sku).await.unwrap(), None, "If-Match never creates");

    catalog.put(sku.clone(), draft("1.00"), None, None).await.unwrap();
    let stale = catalog.put(sku.clone(), draft("2.00"), Some(&refuse), None).await;
    assert!(matches!(stale, Err(inventory::CatalogError::Stale)), "{stale:?}");
    assert_eq!(store.inner.product(&sku).await.unwrap().unwrap().price.to_decimal_string(), "1.00");

    let accept = |p: &Product| p.version == 1;
    catalog.put(sku.clone(), draft("3.00"), Some(&accept), None).await.unwrap();
    assert_eq!(store.inner.product(&sku).await.unwrap().unwrap().version, 2);
}

#[tokio::test]
async fn a_conditional_update_loses_to_a_write_that_lands_after_its_check() {
    let (catalog, store, _dir) = setup(Arc::new(MemoryCache::new(100, Duration::from_secs(60))));
    let sku = Sku::parse("TEA").unwrap();
    catalog.put(sku.clone(), draft("1.00"), None, None).await.unwrap();
    let current = store.inner.product(&sku).await.unwrap().unwrap();
    let racer = current.update(draft("9.99"), current.updated_at);
    *store.racing_write.lock().unwrap() = Some(racer);

    // The check passes on version 1; the racer makes it version 2 before the write.
    let checked_version_1 = |p: &Product| p.version == 1;
    let outcome = catalog.put(sku.clone(), draft("2.00"), Some(&checked_version_1), None).await;
    assert!(matches!(outcome, Err(inventory::CatalogError::Stale)), "{outcome:?}");
    let stored = store.inner.product(&sku).await.unwrap().unwrap();
    assert_eq!((stored.version, stored.price.to_decimal_string().as_str()), (2, "9.99"), "the racer's write stands");
}

#[tokio::test]
async fn a_read_that_races_a_change_does_not_put_the_old_product_back_in_the_cache() {
    let (catalog, store, _dir) = setup(Arc::new(MemoryCache::new(100, Duration::from_secs(3600))));
    let sku = Sku::parse("TEA").unwrap();
    catalog.put(sku.clone(), draft("1.00"), None, None).await.unwrap();
    let current = store.inner.product(&sku).await.unwrap().unwrap();
    *store.racing_write.lock().unwrap() = Some(current.update(draft("2.00"), current.updated_at));

    // The miss reads 1.00; the change and its invalidation land before the fill.
    assert_eq!(catalog.get(&sku).await.unwrap().price.to_decimal_string(), "1.00");
    assert_eq!(
        catalog.get(&sku).await.unwrap().price.to_decimal_string(),
        "2.00",
        "the next read sees the change, not the racing read's fill (the TTL is an hour)"
    );
}

#[tokio::test]
async fn a_restock_and_an_update_answer_the_stock_a_racing_reservation_left() {
    let (catalog, store, _dir) = setup(Arc::new(MemoryCache::new(100, Duration::from_secs(60))));
    let sku = Sku::parse("TEA").unwrap();
    catalog.put(sku.clone(), draft("1.00"), None, None).await.unwrap();

    // 5 in stock; a reservation takes 2 after the restock's read: 5 + 10 - 2.
    *store.racing_take.lock().unwrap() = Some(2);
    let restocked = catalog.restock(&sku, RestockQuantity::parse(10).unwrap(), None).await.unwrap();
    assert_eq!((restocked.available, restocked.reserved), (13, 2), "not the 15 of read plus restocked");

    *store.racing_take.lock().unwrap() = Some(3);
    let updated = match catalog.put(sku.clone(), draft("2.00"), None, None).await.unwrap() {
        inventory::PutOutcome::Updated(product) => product,
        other => panic!("{other:?}"),
    };
    assert_eq!((updated.available, updated.reserved), (10, 5));
    let stored = store.inner.product(&sku).await.unwrap().unwrap();
    assert_eq!((stored.available, stored.reserved), (10, 5));
}

#[tokio::test]
async fn a_create_answers_the_stock_it_wrote_without_reading_it_back() {
    let (catalog, store, _dir) = setup(Arc::new(MemoryCache::new(100, Duration::from_secs(60))));
    let sku = Sku::parse("TEA").unwrap();
    let created = match catalog.put(sku.clone(), draft("1.00"), None, None).await.unwrap() {
        inventory::PutOutcome::Created(product) => product,
        other => panic!("{other:?}"),
    };
    assert_eq!(created.available, 5);
    assert_eq!(store.product_reads.load(Ordering::SeqCst), 1, "the read that found no product, and no other");
}
