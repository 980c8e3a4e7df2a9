use std::sync::Arc;

use async_trait::async_trait;
use orderly_core::domain::Order;
use orderly_core::events::Event;
use orderly_core::events::routing::Consumer;
use orderly_core::messaging::{Delivery, EventHandler, HandlerError, jitter};
use orderly_core::ports::{
    Clock, Notification, NotificationLog, NotificationProvider, NotificationRecord, NotificationState, ProviderError,
};

pub struct Notifier {
    log: Arc<dyn NotificationLog>,
    provider: Arc<dyn NotificationProvider>,
    clock: Arc<dyn Clock>,
}

impl Notifier {
    pub fn new(log: Arc<dyn NotificationLog>, provider: Arc<dyn NotificationProvider>, clock: Arc<dyn Clock>) -> Self {
        Self { log, provider, clock }
    }

    pub fn log(&self) -> &Arc<dyn NotificationLog> {
        &self.log
    }

    async fn notify(&self, order: &Order, message: String, delivery: &Delivery<'_>) -> Result<(), HandlerError> {
        let id = delivery.envelope.id;
        let existing = self.log.get(id).await?;
        if existing.as_ref().is_some_and(|r| r.state == NotificationState::Sent) {
            return Ok(());
        }
        let notification = Notification {
            id,
            kind: delivery.envelope.event_type.clone(),
            order_id: order.id().to_string(),
            customer_id: order.customer_id().to_string(),
            status: order.status().to_string(),
            total: order.total().to_decimal_string(),
            currency: order.currency().to_string(),
            message,
        };
        let sent = self.provider.send(&notification).await;
        let now = self.clock.now();
        let (state, last_error) = match &sent {
            Ok(()) => (NotificationState::Sent, None),
            // Refused by the open breaker, the provider was not called: that
            // is no attempt, so never the last (see `MessageQueue::defer`).
            Err(refused @ ProviderError::CircuitOpen { .. }) => {
                (NotificationState::Deferred, Some(refused.to_string()))
            }
            Err(_) if delivery.is_last_attempt() => {
                (NotificationState::Failed, sent.as_ref().err().map(ToString::to_string))
            }
            Err(e) => (NotificationState::Deferred, Some(e.to_string())),
        };
        // `attempts` counts calls to the provider; a breaker refusal is none.
        let called = !matches!(sent, Err(ProviderError::CircuitOpen { .. }));
        let record = NotificationRecord {
            id,
            order_id: order.id(),
            customer_id: order.customer_id().clone(),
            kind: notification.kind,
            state,
            attempts: existing.as_ref().map_or(0, |r| r.attempts) + u32::from(called),
            last_error,
            provider: self.provider.name().to_owned(),
            created_at: existing.as_ref().map_or(now, |r| r.created_at),
            updated_at: now,
        };
        self.log.save(&record).await?;
        match sent {
            Ok(()) => Ok(()),
            Err(ProviderError::CircuitOpen { retry_after }) => Err(HandlerError::RetryAfter {
                reason: format!("provider {}: circuit open", self.provider.name()),
                after: jitter(retry_after.max(std::time::Duration::from_millis(100))),
            }),
            Err(e) => Err(HandlerError::Retry(format!("provider {}: {e}", self.provider.name()))),
        }
    }
}

#[async_trait]
impl EventHandler for Notifier {
    fn consumer(&self) -> Consumer {
        Consumer::Notification
    }

    async fn paused_for(&self) -> Option<std::time::Duration> {
        self.provider.unavailable_for().await
    }

    async fn handle(&self, event: Event, delivery: &Delivery<'_>) -> Result<(), HandlerError> {
        match event {
            Event::OrderConfirmed(e) => {
                let order = Order::try_from(&e.order)?;
                let mut message = format!("Your order {} is confirmed. Total: {}.", order.id(), order.total());
                // Offline (no gateway, or a sick one): the customer needs to know how to pay.
                if let Some(instructions) = &order.payment().instructions {
                    message.push(' ');
                    message.push_str(instructions);
                }
                self.notify(&order, message, delivery).await
            }
            Event::OrderRejected(e) => {
                let order = Order::try_from(&e.order)?;
                let why = e.reason.as_deref().unwrap_or("it could not be fulfilled");
                let message =
                    format!("Sorry, your order {} was rejected: {why}. You have not been charged.", order.id());
                self.notify(&order, message, delivery).await
            }
            Event::OrderShipped(e) => {
                let order = Order::try_from(&e.order)?;
                let message = format!("Your order {} is on its way.", order.id());
                self.notify(&order, message, delivery).await
            }
            Event::OrderCancelled(e) => {
                let order = Order::try_from(&e.order)?;
                let message = format!("Your order {} has been cancelled.", order.id());
                self.notify(&order, message, delivery).await
            }
            _ => Ok(()),
        }
    }
}
