//! The saga's replies, as seen by order intake: inventory tells whether the
//! order's stock was reserved, and the order moves to `confirmed` or
//! `rejected`. A reply for an order that was cancelled meanwhile changes
//! nothing here — inventory releases that stock when it sees the
//! cancellation — so no interleaving of cancel and reply can leak stock.

use std::sync::Arc;

use async_trait::async_trait;
use orderly_core::domain::OrderId;
use orderly_core::events::routing::Consumer;
use orderly_core::events::{Event, OrderChanged};
use orderly_core::messaging::{Delivery, EventHandler, HandlerError};
use orderly_core::ports::{ProcessedEvent, ProcessedEvents, already_processed_is_done};
use orderly_core::resilience::conflict::retry_on_conflict;

use crate::{FUNCTION, OrderIntake};

pub struct SagaReplies {
    intake: Arc<OrderIntake>,
    processed: Arc<dyn ProcessedEvents>,
}

enum Verdict {
    Confirm,
    Reject(String),
}

impl SagaReplies {
    pub fn new(intake: Arc<OrderIntake>, processed: Arc<dyn ProcessedEvents>) -> Self {
        Self { intake, processed }
    }

    async fn settle(&self, order_id: OrderId, verdict: Verdict, delivery: &Delivery<'_>) -> Result<(), HandlerError> {
        let mark = ProcessedEvent { consumer: FUNCTION, event_id: delivery.envelope.id };
        retry_on_conflict(|| async {
            let Some(order) = self.intake.orders().get(order_id).await? else {
                return Err(HandlerError::Retry(format!("order {order_id} is not known here")));
            };
            let now = self.intake.clock().now();
            let next = match &verdict {
                Verdict::Confirm => {
                    order.confirm(now).map(|next| (Event::OrderConfirmed(OrderChanged::new(&next)), next))
                }
                Verdict::Reject(reason) => order
                    .reject(now)
                    .map(|next| (Event::OrderRejected(OrderChanged::rejected(&next, reason.clone())), next)),
            };
            let Ok((event, next)) = next else {
                // Already settled or cancelled: the reply has nothing to change.
                self.processed.mark_processed(&mark).await?;
                return Ok(());
            };
            let envelope = self.intake.event(event, Some(delivery.trace().to_header()));
            Ok(already_processed_is_done(self.intake.orders().save_transition(&next, &[envelope], Some(&mark)).await)?)
        })
        .await
    }
}

#[async_trait]
impl EventHandler for SagaReplies {
    fn consumer(&self) -> Consumer {
        Consumer::OrderIntake
    }

    async fn handle(&self, event: Event, delivery: &Delivery<'_>) -> Result<(), HandlerError> {
        match event {
            Event::InventoryReserved(reply) => self.settle(reply.order_id, Verdict::Confirm, delivery).await,
            Event::InventoryRejected(reply) => {
                let reason = reply
                    .shortfalls
                    .iter()
                    .map(|s| format!("{}: requested {}, available {}", s.sku, s.requested, s.available))
                    .collect::<Vec<_>>()
                    .join("; ");
                self.settle(reply.order_id, Verdict::Reject(format!("not enough stock ({reason})")), delivery).await
            }
            // Not subscribed to anything else; a stray event is harmless.
            _ => Ok(()),
        }
    }
}
