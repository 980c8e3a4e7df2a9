//! Catalog use cases: create/update products, restock, read.

use std::sync::Arc;

use orderly_core::domain::{Product, ProductDraft, RestockQuantity, Sku};
use orderly_core::events::{Event, EventFactory, ProductChanged};
use orderly_core::ports::{Cache, InventoryStore, Lookup, StoreError};
use orderly_core::resilience::conflict::{MaybeConflict, retry_on_conflict};

#[derive(Debug, thiserror::Error)]
pub enum CatalogError {
    #[error("product not found")]
    NotFound,
    /// The product is not (or no longer) in the state the caller edited.
    #[error("the product changed since it was read")]
    Stale,
    #[error(transparent)]
    Overflow(#[from] orderly_core::domain::StockOverflow),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl MaybeConflict for CatalogError {
    fn is_conflict(&self) -> bool {
        matches!(self, Self::Store(error) if error.is_conflict())
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PutOutcome {
    Created(Product),
    Updated(Product),
}

pub struct Catalog {
    store: Arc<dyn InventoryStore>,
    events: EventFactory,
    clock: Arc<dyn orderly_core::ports::Clock>,
    cache: Option<Arc<dyn Cache>>,
}

fn cache_key(sku: &Sku) -> String {
    format!("product:{sku}")
}

impl Catalog {
    pub fn new(
        store: Arc<dyn InventoryStore>,
        events: EventFactory,
        clock: Arc<dyn orderly_core::ports::Clock>,
    ) -> Self {
        Self { store, events, clock, cache: None }
    }

    /// Serves single-product reads cache-aside from `cache`.
    pub fn with_cache(mut self, cache: Arc<dyn Cache>) -> Self {
        self.cache = Some(cache);
        self
    }

    /// Drops a SKU from the cache: after local writes, and on
    /// `product.changed.v1` / stock events (see `consumer`). A failing cache
    /// only costs freshness until the TTL, so the error is logged, not raised.
    pub async fn forget(&self, sku: &Sku) {
        if let Some(cache) = &self.cache
            && let Err(error) = cache.invalidate(&cache_key(sku)).await
        {
            tracing::warn!(%sku, %error, "cache invalidation failed; the entry expires with its TTL");
        }
    }

    /// Creates the product or updates its name and price. Every change
    /// publishes `product.changed.v1` (caches drop the SKU on it).
    ///
    /// With a `precondition` (an `If-Match`), only an existing product that
    /// passes it is updated, and only while it is still in the state that
    /// passed: the write is conditional on the version that was checked, so a
    /// change racing in between makes it [`CatalogError::Stale`] (not a
    /// retry, which would overwrite a state the caller never saw).
    pub async fn put(
        &self,
        sku: Sku,
        draft: ProductDraft,
        precondition: Option<&(dyn Fn(&Product) -> bool + Sync)>,
        traceparent: Option<String>,
    ) -> Result<PutOutcome, CatalogError> {
        retry_on_conflict(|| async {
            let now = self.clock.now();
            let current = self.store.product(&sku).await?;
            if let Some(precondition) = precondition
                && !current.as_ref().is_some_and(precondition)
            {
                return Err(CatalogError::Stale);
            }
            let (product, expected, outcome): (Product, Option<u64>, fn(Product) -> PutOutcome) = match current {
                None => (Product::create(sku.clone(), draft.clone(), now), None, PutOutcome::Created),
                Some(current) => (current.update(draft.clone(), now), Some(current.version), PutOutcome::Updated),
            };
            let event = self.changed(&product, traceparent.clone());
            match self.store.save_product(&product, expected, &[event]).await {
                Err(StoreError::Conflict) if precondition.is_some() => return Err(CatalogError::Stale),
                result => result?,
            }
            self.forget(&product.sku).await;
            // A create wrote the stock it answers; an update kept the stock
            // it read, which reservations may have moved since.
            let product = if expected.is_some() { self.with_stock_now(product).await } else { product };
            Ok(outcome(product))
        })
        .await
    }

    pub async fn restock(
        &self,
        sku: &Sku,
        quantity: RestockQuantity,
        traceparent: Option<String>,
    ) -> Result<Product, CatalogError> {
        // A lost race means orders moved stock meanwhile: add to the new figure.
        retry_on_conflict(|| async {
            let current = self.store.product(sku).await?.ok_or(CatalogError::NotFound)?;
            let restocked = current.restock(quantity, self.clock.now())?;
            let event = self.changed(&restocked, traceparent.clone());
            self.store.restock(&restocked, current.version, quantity.get(), &[event]).await?;
            self.forget(sku).await;
            Ok(self.with_stock_now(restocked).await)
        })
        .await
    }

    /// Cache-aside: the cache if it has the product, else the store (and
    /// then the cache, unless the product changed meanwhile: see
    /// [`orderly_core::ports::FillTicket`]). A cache that fails is skipped,
    /// never fatal.
    pub async fn get(&self, sku: &Sku) -> Result<Product, CatalogError> {
        let mut ticket = None;
        if let Some(cache) = &self.cache {
            match cache.get(&cache_key(sku)).await {
                Ok(Lookup::Hit(cached)) => match serde_json::from_str::<Product>(&cached) {
                    Ok(product) => {
                        metrics::counter!("orderly_cache_hits_total", "cache" => "catalog").increment(1);
                        return Ok(product);
                    }
                    Err(_) => self.forget(sku).await,
                },
                Ok(Lookup::Miss(issued)) => ticket = Some(issued),
                Err(error) => {
                    metrics::counter!("orderly_cache_errors_total", "cache" => "catalog").increment(1);
                    tracing::warn!(%sku, %error, "cache unavailable; reading the store");
                }
            }
            metrics::counter!("orderly_cache_misses_total", "cache" => "catalog").increment(1);
        }
        let product = self.store.product(sku).await?.ok_or(CatalogError::NotFound)?;
        if let (Some(cache), Some(ticket)) = (&self.cache, ticket)
            && let Ok(json) = serde_json::to_string(&product)
            && let Err(error) = cache.fill(&cache_key(sku), json, ticket).await
        {
            tracing::warn!(%sku, %error, "cache write failed");
        }
        Ok(product)
    }

    /// A page of products by SKU, and the SKU to continue after (if any).
    pub async fn list(&self, after: Option<&Sku>, limit: usize) -> Result<(Vec<Product>, Option<Sku>), CatalogError> {
        // One extra row tells whether there is a next page.
        let mut products = self.store.products(after, limit + 1).await?;
        let next = if products.len() > limit {
            products.truncate(limit);
            products.last().map(|p| p.sku.clone())
        } else {
            None
        };
        Ok((products, next))
    }

    /// `product` as written, with the stock (available and reserved) as it
    /// stands after the write. A write conditions on the catalog fields'
    /// version, which reservations do not move, so a reservation may have
    /// taken units between the read the write was built from and the write:
    /// "read plus restocked" would answer a figure the store never held. If
    /// the read fails, the write still stands: the figures it was built from
    /// are answered, and the next read corrects them.
    async fn with_stock_now(&self, mut product: Product) -> Product {
        match self.store.product(&product.sku).await {
            Ok(Some(now)) => (product.available, product.reserved) = (now.available, now.reserved),
            Ok(None) => {}
            Err(error) => tracing::warn!(sku = %product.sku, %error, "stock not read back after a catalog write"),
        }
        product
    }

    fn changed(&self, product: &Product, traceparent: Option<String>) -> orderly_core::events::Envelope {
        self.events.envelope(Event::ProductChanged(ProductChanged::new(product)), traceparent)
    }
}
