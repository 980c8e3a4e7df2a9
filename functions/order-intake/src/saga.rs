//! The saga's replies, as seen by order intake: inventory tells whether the
//! order's stock was reserved; if it was, the payment is settled (see
//! [`crate::payments`]) and only then is the order `confirmed` (or
//! `rejected`, when the card is declined: inventory releases the stock when
//! it sees that rejection).
//!
//! A reply for an order that was cancelled meanwhile changes nothing here —
//! inventory releases that stock when it sees the cancellation — except
//! that a hold the gateway made for it is recorded voided, and its void
//! owed, in the same write. So no interleaving of cancel, reply and
//! authorization can leak stock or leave money held.

use std::sync::Arc;

use async_trait::async_trait;
use orderly_core::domain::{Order, OrderId, OrderStatus, PaymentMethod, PaymentStatus};
use orderly_core::events::routing::Consumer;
use orderly_core::events::{Event, OrderChanged, PaymentVoidOwed};
use orderly_core::messaging::{Delivery, EventHandler, HandlerError};
use orderly_core::ports::{ProcessedEvent, ProcessedEvents, already_processed_is_done};
use orderly_core::resilience::conflict::retry_on_conflict;

use crate::payments::{Payments, Settlement};
use crate::{FUNCTION, OrderIntake};

pub struct SagaReplies {
    intake: Arc<OrderIntake>,
    processed: Arc<dyn ProcessedEvents>,
}

enum Verdict {
    /// Stock is reserved and the payment settled.
    Confirm(Settlement),
    /// Stock could not be reserved.
    Reject(String),
}

impl SagaReplies {
    pub fn new(intake: Arc<OrderIntake>, processed: Arc<dyn ProcessedEvents>) -> Self {
        Self { intake, processed }
    }

    fn payments(&self) -> &Payments {
        self.intake.payments()
    }

    async fn on_reserved(&self, order_id: OrderId, delivery: &Delivery<'_>) -> Result<(), HandlerError> {
        let Some(order) = self.intake.orders().get(order_id).await? else {
            return Err(HandlerError::Retry(format!("order {order_id} is not known here")));
        };
        if order.status() != OrderStatus::Pending {
            let payment = order.payment();
            if order.status() == OrderStatus::Cancelled
                && payment.method == PaymentMethod::Card
                && payment.status == PaymentStatus::Pending
            {
                // Cancelled while this reply was being handled: an earlier
                // delivery may have been authorized at the gateway and stopped
                // (a crash) before recording it. Void by reference: a no-op
                // at the gateway when nothing is held.
                let lost = Verdict::Confirm(Settlement::Offline { hold_unknown: true });
                return self.settle(order_id, lost, delivery).await;
            }
            // Settled by an earlier delivery, or cancelled before any payment.
            return self.done(delivery).await;
        }
        // The one call that may wait (at most the gateway's timeout), made
        // once per delivery, outside the retried write below.
        let settlement = self.payments().settle(&order, delivery.attempt > 1).await;
        self.settle(order_id, Verdict::Confirm(settlement), delivery).await
    }

    async fn settle(&self, order_id: OrderId, verdict: Verdict, delivery: &Delivery<'_>) -> Result<(), HandlerError> {
        let mark = ProcessedEvent { consumer: FUNCTION, event_id: delivery.envelope.id };
        retry_on_conflict(|| async {
            let Some(order) = self.intake.orders().get(order_id).await? else {
                return Err(HandlerError::Retry(format!("order {order_id} is not known here")));
            };
            let Some((next, events)) = self.decide(&order, &verdict) else {
                // Already settled or cancelled: the reply has nothing to change.
                self.processed.mark_processed(&mark).await?;
                return Ok(());
            };
            let traceparent = Some(delivery.trace().to_header());
            let envelopes: Vec<_> = events.into_iter().map(|e| self.intake.event(e, traceparent.clone())).collect();
            Ok(already_processed_is_done(self.intake.orders().save_transition(&next, &envelopes, Some(&mark)).await)?)
        })
        .await
    }

    /// The order's next state and the events that say so, or `None` when
    /// the verdict changes nothing.
    fn decide(&self, order: &Order, verdict: &Verdict) -> Option<(Order, Vec<Event>)> {
        let now = self.intake.clock().now();
        let owed = |authorization| Event::PaymentVoidOwed(PaymentVoidOwed { order_id: order.id(), authorization });
        if order.status() != OrderStatus::Pending {
            // A cancel won the race with the payment: release what the gateway holds.
            let hold = match verdict {
                Verdict::Confirm(Settlement::Authorized(id)) => Some(Some(id.clone())),
                Verdict::Confirm(Settlement::Offline { hold_unknown: true }) => Some(None),
                _ => None,
            }?;
            let next = order.void_late_authorization(hold.clone(), now).ok()?;
            return Some((next, vec![owed(hold)]));
        }
        match verdict {
            Verdict::Confirm(Settlement::Authorized(id)) => {
                let next = order.confirm_authorized(id.clone(), now).ok()?;
                Some((next.clone(), vec![Event::OrderConfirmed(OrderChanged::new(&next))]))
            }
            Verdict::Confirm(Settlement::Declined(reason)) => {
                let next = order.decline(now).ok()?;
                let reason = format!("the payment was declined ({reason})");
                Some((next.clone(), vec![Event::OrderRejected(OrderChanged::rejected(&next, reason))]))
            }
            Verdict::Confirm(Settlement::Offline { hold_unknown }) => {
                let next = order.confirm_offline(self.payments().instructions(order), now).ok()?;
                let mut events = vec![Event::OrderConfirmed(OrderChanged::new(&next))];
                if *hold_unknown {
                    events.push(owed(None));
                }
                Some((next, events))
            }
            Verdict::Reject(reason) => {
                let next = order.reject(now).ok()?;
                Some((next.clone(), vec![Event::OrderRejected(OrderChanged::rejected(&next, reason.clone()))]))
            }
        }
    }

    /// Releases a hold (idempotent at the gateway: a redelivery voids
    /// nothing twice). A void must not end in the dead-letter queue because
    /// the gateway was sick for longer than one message's delivery attempts:
    /// on the last attempt, a failure owes the void again as a new message,
    /// written with this one's processed mark, whose attempts start afresh.
    async fn void(&self, owed: PaymentVoidOwed, delivery: &Delivery<'_>) -> Result<(), HandlerError> {
        match self.payments().void(&owed).await {
            Err(error) if delivery.is_last_attempt() => {
                tracing::warn!(
                    order_id = %owed.order_id, attempts = delivery.attempt, %error,
                    "the gateway has not taken a void yet: it is owed again as a new message"
                );
                metrics::counter!("orderly_payment_voids_owed_again_total").increment(1);
                let again = self.intake.event(Event::PaymentVoidOwed(owed), Some(delivery.trace().to_header()));
                let mark = ProcessedEvent { consumer: FUNCTION, event_id: delivery.envelope.id };
                Ok(already_processed_is_done(self.intake.orders().publish(&[again], &mark).await)?)
            }
            settled => settled,
        }
    }

    async fn done(&self, delivery: &Delivery<'_>) -> Result<(), HandlerError> {
        let mark = ProcessedEvent { consumer: FUNCTION, event_id: delivery.envelope.id };
        Ok(already_processed_is_done(self.processed.mark_processed(&mark).await)?)
    }
}

#[async_trait]
impl EventHandler for SagaReplies {
    fn consumer(&self) -> Consumer {
        Consumer::OrderIntake
    }

    async fn handle(&self, event: Event, delivery: &Delivery<'_>) -> Result<(), HandlerError> {
        match event {
            Event::InventoryReserved(reply) => self.on_reserved(reply.order_id, delivery).await,
            Event::InventoryRejected(reply) => {
                let reason = reply
                    .shortfalls
                    .iter()
                    .map(|s| format!("{}: requested {}, available {}", s.sku, s.requested, s.available))
                    .collect::<Vec<_>>()
                    .join("; ");
                self.settle(reply.order_id, Verdict::Reject(format!("not enough stock ({reason})")), delivery).await
            }
            Event::PaymentVoidOwed(owed) => self.void(owed, delivery).await,
            // Not subscribed to anything else; a stray event is harmless.
            _ => Ok(()),
        }
    }
}
