//! The analytics consumer: applies every event to the read models.

use std::sync::Arc;

use async_trait::async_trait;
use orderly_core::domain::Order;
use orderly_core::events::Event;
use orderly_core::events::routing::Consumer;
use orderly_core::messaging::{Delivery, EventHandler, HandlerError};
use orderly_core::ports::{Counter, ProcessedEvent, ReadModelStore, already_processed_is_done};
use orderly_core::resilience::conflict::retry_on_conflict;

use crate::FUNCTION;
use crate::projection::project;

pub struct Projector {
    store: Arc<dyn ReadModelStore>,
}

impl Projector {
    pub fn new(store: Arc<dyn ReadModelStore>) -> Self {
        Self { store }
    }

    async fn project_order(
        &self,
        order: &Order,
        seen: (Counter, i64),
        mark: &ProcessedEvent,
    ) -> Result<(), HandlerError> {
        retry_on_conflict(|| async {
            let current = self.store.order_view(order.id()).await?;
            let (view, mut deltas) = match project(current.as_ref(), order) {
                Some(deltas) => (Some(order), deltas),
                // Older than what we have: only count that it was seen.
                None => (None, Vec::new()),
            };
            deltas.push(seen.clone());
            let expected = current.as_ref().map(|c| c.version());
            Ok(already_processed_is_done(self.store.apply(view, expected, &deltas, mark).await)?)
        })
        .await
    }
}

#[async_trait]
impl EventHandler for Projector {
    fn consumer(&self) -> Consumer {
        Consumer::Analytics
    }

    async fn handle(&self, event: Event, delivery: &Delivery<'_>) -> Result<(), HandlerError> {
        let mark = ProcessedEvent { consumer: FUNCTION, event_id: delivery.envelope.id };
        let seen = (Counter::Events(delivery.envelope.event_type.clone()), 1);
        match event {
            Event::OrderPlaced(e)
            | Event::OrderConfirmed(e)
            | Event::OrderRejected(e)
            | Event::OrderCancelled(e)
            | Event::OrderPaid(e)
            | Event::OrderShipped(e)
            | Event::OrderDelivered(e) => self.project_order(&Order::try_from(&e.order)?, seen, &mark).await,
            _ => Ok(already_processed_is_done(self.store.apply(None, None, &[seen], &mark).await)?),
        }
    }
}
