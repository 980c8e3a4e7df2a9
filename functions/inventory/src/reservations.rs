//! Inventory's half of the order saga.
//!
//! | event | stored reservation | effect |
//! |---|---|---|
//! | `order.placed.v1` | none | reserve all lines or none; reply reserved/rejected |
//! | `order.placed.v1` | any | nothing (already decided, or cancelled first) |
//! | `order.cancelled.v1` | reserved | release the stock; `inventory.released.v1` |
//! | `order.cancelled.v1` | none | remember the cancellation, so a late `order.placed.v1` reserves nothing |
//! | `order.cancelled.v1` | rejected/released/cancelled | nothing |
//! | `order.rejected.v1` | as `order.cancelled.v1` | a declined payment rejects a reserved order: release it |
//!
//! Every change is committed with the event's processed mark and conditioned
//! on the reservation state it was decided from, so duplicates and races
//! between deliveries change nothing twice.

use std::sync::Arc;

use async_trait::async_trait;
use orderly_core::domain::{Order, OrderId, Reservation, ReservationDecision, ReservationState};
use orderly_core::events::routing::Consumer;
use orderly_core::events::{
    Envelope, Event, EventFactory, InventoryRejected, InventoryReleased, InventoryReserved, ReservedLine,
};
use orderly_core::messaging::{Delivery, EventHandler, HandlerError};
use orderly_core::ports::{
    Clock, InventoryStore, ProcessedEvent, ProcessedEvents, ReservationChange, StockMove, already_processed_is_done,
};
use orderly_core::resilience::conflict::retry_on_conflict;

use crate::FUNCTION;

pub struct Reservations {
    store: Arc<dyn InventoryStore>,
    processed: Arc<dyn ProcessedEvents>,
    events: EventFactory,
    clock: Arc<dyn Clock>,
}

impl Reservations {
    pub fn new(
        store: Arc<dyn InventoryStore>,
        processed: Arc<dyn ProcessedEvents>,
        events: EventFactory,
        clock: Arc<dyn Clock>,
    ) -> Self {
        Self { store, processed, events, clock }
    }

    async fn on_placed(&self, order: &Order, delivery: &Delivery<'_>) -> Result<(), HandlerError> {
        let mark = ProcessedEvent { consumer: FUNCTION, event_id: delivery.envelope.id };
        let units = order.units_by_sku();
        let skus: Vec<_> = units.iter().map(|(sku, _)| sku.clone()).collect();
        // A lost race means stock moved under this order: decide again.
        retry_on_conflict(|| async {
            if self.store.reservation(order.id()).await?.is_some() {
                return self.finish_without_change(&mark).await;
            }
            let available = self.store.available(&skus).await?;
            let now = self.clock.now();
            let (state, stock, reply) = match ReservationDecision::decide(&units, &available) {
                ReservationDecision::Reserve(reserve) => (
                    ReservationState::Reserved,
                    StockMove::Take(reserve.clone()),
                    Event::InventoryReserved(InventoryReserved {
                        order_id: order.id(),
                        lines: ReservedLine::lines(&reserve),
                    }),
                ),
                ReservationDecision::Reject(shortfalls) => (
                    ReservationState::Rejected,
                    StockMove::None,
                    Event::InventoryRejected(InventoryRejected {
                        order_id: order.id(),
                        shortfalls: shortfalls.iter().map(Into::into).collect(),
                    }),
                ),
            };
            let change = ReservationChange {
                reservation: Reservation { order_id: order.id(), state, lines: units.clone(), updated_at: now },
                expected: None,
                stock,
            };
            self.commit(&change, Some(reply), &mark, delivery).await
        })
        .await
    }

    async fn on_cancelled(&self, order_id: OrderId, delivery: &Delivery<'_>) -> Result<(), HandlerError> {
        let mark = ProcessedEvent { consumer: FUNCTION, event_id: delivery.envelope.id };
        retry_on_conflict(|| async {
            let now = self.clock.now();
            let stored = self.store.reservation(order_id).await?;
            let (change, reply) = match stored {
                None => (
                    ReservationChange {
                        reservation: Reservation {
                            order_id,
                            state: ReservationState::Cancelled,
                            lines: Vec::new(),
                            updated_at: now,
                        },
                        expected: None,
                        stock: StockMove::None,
                    },
                    None,
                ),
                Some(reservation) if reservation.state == ReservationState::Reserved => (
                    ReservationChange {
                        reservation: Reservation {
                            state: ReservationState::Released,
                            updated_at: now,
                            ..reservation.clone()
                        },
                        expected: Some(ReservationState::Reserved),
                        stock: StockMove::Return(reservation.lines.clone()),
                    },
                    Some(Event::InventoryReleased(InventoryReleased {
                        order_id,
                        lines: ReservedLine::lines(&reservation.lines),
                    })),
                ),
                Some(_) => return self.finish_without_change(&mark).await,
            };
            self.commit(&change, reply, &mark, delivery).await
        })
        .await
    }

    async fn commit(
        &self,
        change: &ReservationChange,
        reply: Option<Event>,
        mark: &ProcessedEvent,
        delivery: &Delivery<'_>,
    ) -> Result<(), HandlerError> {
        let outbox: Vec<Envelope> =
            reply.into_iter().map(|event| self.events.envelope(event, Some(delivery.trace().to_header()))).collect();
        Ok(already_processed_is_done(self.store.apply_reservation(change, &outbox, mark).await)?)
    }

    async fn finish_without_change(&self, mark: &ProcessedEvent) -> Result<(), HandlerError> {
        self.processed.mark_processed(mark).await?;
        Ok(())
    }
}

#[async_trait]
impl EventHandler for Reservations {
    fn consumer(&self) -> Consumer {
        Consumer::Inventory
    }

    async fn handle(&self, event: Event, delivery: &Delivery<'_>) -> Result<(), HandlerError> {
        match event {
            Event::OrderPlaced(placed) => self.on_placed(&Order::try_from(&placed.order)?, delivery).await,
            Event::OrderCancelled(cancelled) => self.on_cancelled(cancelled.order.id, delivery).await,
            // A rejection for want of stock finds the reservation rejected
            // and changes nothing; one for a declined payment releases it.
            Event::OrderRejected(rejected) => self.on_cancelled(rejected.order.id, delivery).await,
            _ => Ok(()),
        }
    }
}
