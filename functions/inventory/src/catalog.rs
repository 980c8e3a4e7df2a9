//! Catalog use cases: create/update products, restock, read.

use std::sync::Arc;

use shared::domain::{Product, ProductDraft, RestockQuantity, Sku};
use shared::events::{Event, EventFactory, ProductChanged};
use shared::ports::{InventoryStore, StoreError};

use crate::MAX_CONFLICT_RETRIES;

#[derive(Debug, thiserror::Error)]
pub enum CatalogError {
    #[error("product not found")]
    NotFound,
    #[error(transparent)]
    Overflow(#[from] shared::domain::StockOverflow),
    #[error(transparent)]
    Store(#[from] StoreError),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PutOutcome {
    Created(Product),
    Updated(Product),
}

pub struct Catalog {
    store: Arc<dyn InventoryStore>,
    events: EventFactory,
    clock: Arc<dyn shared::ports::Clock>,
}

impl Catalog {
    pub fn new(store: Arc<dyn InventoryStore>, events: EventFactory, clock: Arc<dyn shared::ports::Clock>) -> Self {
        Self { store, events, clock }
    }

    /// Creates the product or updates its name and price. Every change
    /// publishes `product.changed.v1` (caches drop the SKU on it).
    pub async fn put(
        &self,
        sku: Sku,
        draft: ProductDraft,
        traceparent: Option<String>,
    ) -> Result<PutOutcome, CatalogError> {
        for _ in 0..MAX_CONFLICT_RETRIES {
            let now = self.clock.now();
            let (product, expected, outcome): (Product, Option<u64>, fn(Product) -> PutOutcome) =
                match self.store.product(&sku).await? {
                    None => (Product::create(sku.clone(), draft.clone(), now), None, PutOutcome::Created),
                    Some(current) => (current.update(draft.clone(), now), Some(current.version), PutOutcome::Updated),
                };
            let event = self.changed(&product, traceparent.clone());
            match self.store.save_product(&product, expected, &[event]).await {
                Ok(()) => return Ok(outcome(product)),
                Err(StoreError::Conflict) => continue,
                Err(other) => return Err(other.into()),
            }
        }
        Err(StoreError::Unavailable("too much contention on this product".into()).into())
    }

    pub async fn restock(
        &self,
        sku: &Sku,
        quantity: RestockQuantity,
        traceparent: Option<String>,
    ) -> Result<Product, CatalogError> {
        for _ in 0..MAX_CONFLICT_RETRIES {
            let current = self.store.product(sku).await?.ok_or(CatalogError::NotFound)?;
            let restocked = current.restock(quantity, self.clock.now())?;
            let event = self.changed(&restocked, traceparent.clone());
            match self.store.save_product(&restocked, Some(current.version), &[event]).await {
                Ok(()) => return Ok(restocked),
                // Orders moved stock meanwhile: add to the new figure.
                Err(StoreError::Conflict) => continue,
                Err(other) => return Err(other.into()),
            }
        }
        Err(StoreError::Unavailable("too much contention on this product".into()).into())
    }

    pub async fn get(&self, sku: &Sku) -> Result<Product, CatalogError> {
        self.store.product(sku).await?.ok_or(CatalogError::NotFound)
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

    fn changed(&self, product: &Product, traceparent: Option<String>) -> shared::events::Envelope {
        self.events.envelope(Event::ProductChanged(ProductChanged { product: product.clone() }), traceparent)
    }
}
