use std::sync::Arc;

use async_trait::async_trait;
use orderly_core::domain::{Order, OrderStatus};
use orderly_core::events::routing::Consumer;
use orderly_core::events::{Event, EventType};
use orderly_core::messaging::{Delivery, EventHandler, HandlerError, jitter};
use orderly_core::ports::{
    Clock, Notification, NotificationLog, NotificationProvider, NotificationRecord, NotificationState, ProviderError,
};

/// More notifications than one order can cause (one per status it is told
/// of, each kept once however often its event is delivered).
const TOLD_PER_ORDER_AT_MOST: usize = 16;

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

    /// A status of this order that follows the one `kind` announces and
    /// that the log already holds a notification of (sent, or still being
    /// tried), if any. Events of one order can arrive out of order: a
    /// redrive from the dead-letter queue, or an event the AWS stream relay
    /// kept for its sweep while later ones went ahead. Told late,
    /// "confirmed" after "cancelled" would contradict what the customer
    /// knows. Reading the log first is enough because one order's events
    /// are handled one at a time (its queue is FIFO, grouped by order, on
    /// every host). A status that no told status can follow costs no read.
    async fn later_status_in_log(&self, order: &Order, kind: &str) -> Result<Option<OrderStatus>, HandlerError> {
        let Some(announced) = EventType::parse(kind).and_then(EventType::announced_status) else {
            return Ok(None);
        };
        // Every event notification subscribes to is told (see `handle`).
        let told = EventType::ALL.into_iter().filter(|kind| Consumer::Notification.subscribes_to(kind.as_str()));
        if !told.filter_map(EventType::announced_status).any(|later| announced.leads_to(later)) {
            return Ok(None);
        }
        let logged = self.log.list(Some(order.id()), TOLD_PER_ORDER_AT_MOST).await?;
        Ok(logged
            .iter()
            // One that failed for good told the customer nothing: an
            // earlier status redriven after it is still news.
            .filter(|record| record.state != NotificationState::Failed)
            .filter_map(|record| EventType::parse(&record.kind)?.announced_status())
            .find(|later| announced.leads_to(*later)))
    }

    async fn notify(&self, order: &Order, message: String, delivery: &Delivery<'_>) -> Result<(), HandlerError> {
        let id = delivery.envelope.id;
        let existing = self.log.get(id).await?;
        if existing.as_ref().is_some_and(|r| r.state == NotificationState::Sent) {
            return Ok(());
        }
        if let Some(later) = self.later_status_in_log(order, &delivery.envelope.event_type).await? {
            tracing::info!(order_id = %order.id(), kind = %delivery.envelope.event_type, %later,
                "notification skipped: the customer is told of a later status");
            metrics::counter!("orderly_notifications_superseded_total").increment(1);
            // An earlier attempt's record says why nothing more will happen.
            if let Some(record) = existing {
                let why = format!("superseded: the order's `{later}` notification came first");
                self.log
                    .save(&NotificationRecord { last_error: Some(why), updated_at: self.clock.now(), ..record })
                    .await?;
            }
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

#[cfg(test)]
mod tests {
    use std::sync::Mutex;
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

    use chrono::Utc;
    use orderly_adapters::sqlite::{DbOptions, QueueSettings, SqliteStore};
    use orderly_core::domain::{Currency, CustomerId, Money, OrderId, OrderLine, Quantity, Sku};
    use orderly_core::events::{Envelope, EventMeta, OrderChanged};
    use orderly_core::ports::{StoreError, SystemClock};
    use orderly_core::trace::TraceContext;
    use uuid::Uuid;

    use super::*;

    /// A provider that records what it sent, and can fail the next call.
    #[derive(Default)]
    struct Recording {
        sent: Mutex<Vec<String>>,
        fail_next: AtomicBool,
    }

    impl Recording {
        fn sent(&self) -> Vec<String> {
            self.sent.lock().unwrap().clone()
        }
    }

    #[async_trait]
    impl NotificationProvider for Recording {
        fn name(&self) -> &'static str {
            "recording"
        }

        async fn send(&self, notification: &Notification) -> Result<(), ProviderError> {
            if self.fail_next.swap(false, Ordering::SeqCst) {
                return Err(ProviderError::Rejected(503));
            }
            self.sent.lock().unwrap().push(notification.kind.clone());
            Ok(())
        }
    }

    /// The real log, counting its per-order reads.
    struct CountingLog {
        inner: SqliteStore,
        lists: AtomicUsize,
    }

    #[async_trait]
    impl NotificationLog for CountingLog {
        async fn get(&self, id: Uuid) -> Result<Option<NotificationRecord>, StoreError> {
            self.inner.get(id).await
        }
        async fn save(&self, record: &NotificationRecord) -> Result<(), StoreError> {
            self.inner.save(record).await
        }
        async fn list(&self, order_id: Option<OrderId>, limit: usize) -> Result<Vec<NotificationRecord>, StoreError> {
            self.lists.fetch_add(1, Ordering::SeqCst);
            self.inner.list(order_id, limit).await
        }
    }

    /// What a test works with; `_dir` holds the database's directory, so
    /// bind it for as long as the test runs.
    struct Setup {
        notifier: Notifier,
        provider: Arc<Recording>,
        log: Arc<CountingLog>,
        _dir: tempfile::TempDir,
    }

    fn setup() -> Setup {
        let dir = tempfile::tempdir().unwrap();
        let inner =
            SqliteStore::open(&dir.path().join("db.sqlite"), DbOptions::default(), QueueSettings::default()).unwrap();
        let log = Arc::new(CountingLog { inner, lists: AtomicUsize::new(0) });
        let provider = Arc::new(Recording::default());
        let notifier = Notifier::new(log.clone(), provider.clone(), Arc::new(SystemClock));
        Setup { notifier, provider, log, _dir: dir }
    }

    fn confirmed_order() -> Order {
        let line = OrderLine {
            sku: Sku::parse("TEA").unwrap(),
            quantity: Quantity::parse(1).unwrap(),
            unit_price: Money::from_minor(400, Currency::parse("EUR").unwrap()).unwrap(),
        };
        Order::place(OrderId::from_uuid(Uuid::now_v7()), CustomerId::parse("alice").unwrap(), vec![line], Utc::now())
            .unwrap()
            .confirm_offline("Pay by transfer".into(), Utc::now())
            .unwrap()
    }

    fn envelope(event: Event) -> Envelope {
        event.into_envelope(EventMeta { id: Uuid::now_v7(), source: "test", time: Utc::now(), traceparent: None })
    }

    async fn deliver_envelope(notifier: &Notifier, envelope: &Envelope) -> Result<(), HandlerError> {
        deliver_attempt(notifier, envelope, 1).await
    }

    /// Delivers `envelope` as attempt `attempt` of 5.
    async fn deliver_attempt(notifier: &Notifier, envelope: &Envelope, attempt: u32) -> Result<(), HandlerError> {
        let delivery = Delivery {
            envelope,
            attempt,
            max_attempts: 5,
            trace: TraceContext::new_root(),
            span: tracing::Span::none(),
        };
        notifier.handle(envelope.decode().unwrap().unwrap(), &delivery).await
    }

    async fn deliver(notifier: &Notifier, event: Event) {
        deliver_envelope(notifier, &envelope(event)).await.unwrap();
    }

    #[tokio::test]
    async fn a_confirmation_arriving_after_the_cancellation_is_not_told() {
        let Setup { notifier, provider, _dir, .. } = setup();
        let confirmed = confirmed_order();
        let cancelled = confirmed.cancel(Utc::now()).unwrap();
        deliver(&notifier, Event::OrderCancelled(OrderChanged::new(&cancelled))).await;
        deliver(&notifier, Event::OrderConfirmed(OrderChanged::new(&confirmed))).await;
        assert_eq!(provider.sent(), ["order.cancelled.v1"]);
        let logged = notifier.log().list(Some(confirmed.id()), 10).await.unwrap();
        assert_eq!(logged.iter().map(|r| r.kind.as_str()).collect::<Vec<_>>(), ["order.cancelled.v1"]);
    }

    #[tokio::test]
    async fn a_deferred_confirmation_redelivered_after_the_cancellation_is_dropped_and_says_why() {
        let Setup { notifier, provider, _dir, .. } = setup();
        let confirmed = confirmed_order();
        let confirmation = envelope(Event::OrderConfirmed(OrderChanged::new(&confirmed)));
        provider.fail_next.store(true, Ordering::SeqCst);
        assert!(deliver_envelope(&notifier, &confirmation).await.is_err(), "the provider failed: retry");
        deliver(&notifier, Event::OrderCancelled(OrderChanged::new(&confirmed.cancel(Utc::now()).unwrap()))).await;

        deliver_envelope(&notifier, &confirmation).await.unwrap();
        assert_eq!(provider.sent(), ["order.cancelled.v1"]);
        let record = notifier.log().get(confirmation.id).await.unwrap().unwrap();
        assert_eq!(record.state, NotificationState::Deferred);
        assert_eq!(record.last_error.as_deref(), Some("superseded: the order's `cancelled` notification came first"));
    }

    #[tokio::test]
    async fn a_later_status_that_failed_for_good_does_not_silence_an_earlier_one() {
        let Setup { notifier, provider, _dir, .. } = setup();
        let confirmed = confirmed_order();
        let cancellation = envelope(Event::OrderCancelled(OrderChanged::new(&confirmed.cancel(Utc::now()).unwrap())));
        provider.fail_next.store(true, Ordering::SeqCst);
        assert!(deliver_attempt(&notifier, &cancellation, 5).await.is_err(), "its last attempt failed");
        assert_eq!(notifier.log().get(cancellation.id).await.unwrap().unwrap().state, NotificationState::Failed);

        // The operator redrives both, in their order.
        deliver(&notifier, Event::OrderConfirmed(OrderChanged::new(&confirmed))).await;
        deliver_envelope(&notifier, &cancellation).await.unwrap();
        assert_eq!(provider.sent(), ["order.confirmed.v1", "order.cancelled.v1"]);
    }

    #[tokio::test]
    async fn statuses_told_in_their_order_are_all_told_and_a_shipment_reads_no_log() {
        let Setup { notifier, provider, log, _dir } = setup();
        let confirmed = confirmed_order();
        let shipped = confirmed.record_offline_payment(Utc::now()).unwrap().ship(Utc::now()).unwrap();
        deliver(&notifier, Event::OrderConfirmed(OrderChanged::new(&confirmed))).await;
        assert_eq!(log.lists.load(Ordering::SeqCst), 1, "a confirmation may be out of date: read");
        deliver(&notifier, Event::OrderShipped(OrderChanged::new(&shipped))).await;
        // A second order's cancellation says nothing about the first's.
        let other = confirmed_order().cancel(Utc::now()).unwrap();
        deliver(&notifier, Event::OrderCancelled(OrderChanged::new(&other))).await;
        assert_eq!(provider.sent(), ["order.confirmed.v1", "order.shipped.v1", "order.cancelled.v1"]);
        assert_eq!(log.lists.load(Ordering::SeqCst), 1, "only delivery follows shipment, and it is not told");
    }
}
