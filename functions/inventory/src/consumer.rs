//! Inventory's queue entry point: order events drive reservations, and
//! product events invalidate the catalog cache, so that a change made by
//! another instance reaches this one's cache.
//!
//! Stock moves are invalidated here, right after the reservation or release
//! that moved them commits: only the instance that moved the stock has the
//! entry to drop in time for its next read, and it has the order's SKUs in
//! hand. (Inventory used to subscribe to its own `inventory.reserved.v1` and
//! `inventory.released.v1` for this: one more queue message per order on
//! every host, for a cache only the runner keeps.)

use std::sync::Arc;

use async_trait::async_trait;
use orderly_core::events::Event;
use orderly_core::events::routing::Consumer;
use orderly_core::messaging::{Delivery, EventHandler, HandlerError};

use crate::{Catalog, Reservations};

pub struct InventoryConsumer {
    reservations: Reservations,
    catalog: Arc<Catalog>,
}

impl InventoryConsumer {
    pub fn new(reservations: Reservations, catalog: Arc<Catalog>) -> Self {
        Self { reservations, catalog }
    }
}

#[async_trait]
impl EventHandler for InventoryConsumer {
    fn consumer(&self) -> Consumer {
        Consumer::Inventory
    }

    async fn handle(&self, event: Event, delivery: &Delivery<'_>) -> Result<(), HandlerError> {
        let moved: Vec<_> = match &event {
            Event::ProductChanged(e) => {
                self.catalog.forget(&e.product.sku).await;
                return Ok(());
            }
            Event::OrderPlaced(e) | Event::OrderCancelled(e) | Event::OrderRejected(e) => {
                e.order.items.iter().map(|line| line.sku.clone()).collect()
            }
            _ => Vec::new(),
        };
        self.reservations.handle(event, delivery).await?;
        for sku in &moved {
            self.catalog.forget(sku).await;
        }
        Ok(())
    }
}
