//! Inventory's queue entry point: order events drive reservations; product
//! and stock events invalidate the catalog cache, so that a change made by
//! any instance is seen by every cache that receives the event.

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
        match &event {
            Event::ProductChanged(e) => self.catalog.forget(&e.product.sku).await,
            Event::InventoryReserved(e) => {
                for line in &e.lines {
                    self.catalog.forget(&line.sku).await;
                }
            }
            Event::InventoryReleased(e) => {
                for line in &e.lines {
                    self.catalog.forget(&line.sku).await;
                }
            }
            _ => return self.reservations.handle(event, delivery).await,
        }
        Ok(())
    }
}
