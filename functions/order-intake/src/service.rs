//! Order intake's use cases, on ports only.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use orderly_core::domain::{
    CancelError, CustomerId, NewOrder, Order, OrderId, PaymentStatus, PaymentStepError, ValidationErrors,
};
use orderly_core::events::{Envelope, Event, EventFactory, OrderChanged, PaymentVoidOwed};
use orderly_core::http::Principal;
use orderly_core::ports::{
    Clock, GatewayError, IdGenerator, IdempotencyClaim, OrderStore, PlaceOutcome, PriceList, StoreError,
};
use orderly_core::resilience::conflict::{MaybeConflict, retry_on_conflict};
use sha2::{Digest, Sha256};

use crate::FUNCTION;
use crate::payments::Payments;

/// An `Idempotency-Key`: 1..=255 visible ASCII characters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdempotencyKey(String);

impl IdempotencyKey {
    pub fn parse(raw: &str) -> Result<Self, String> {
        if !raw.is_empty() && raw.len() <= 255 && raw.bytes().all(|b| b.is_ascii_graphic()) {
            Ok(Self(raw.to_owned()))
        } else {
            Err("Idempotency-Key must be 1 to 255 visible ASCII characters".into())
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum IntakeError {
    #[error(transparent)]
    Invalid(#[from] ValidationErrors),
    #[error("this Idempotency-Key was already used with a different request")]
    KeyReused,
    #[error("order not found")]
    NotFound,
    #[error(transparent)]
    NotCancellable(CancelError),
    /// A fulfilment or payment step that does not apply to the order as it is.
    #[error(transparent)]
    Step(#[from] PaymentStepError),
    /// The gateway did not take a capture: try again later.
    #[error(transparent)]
    Gateway(#[from] GatewayError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl MaybeConflict for IntakeError {
    fn is_conflict(&self) -> bool {
        matches!(self, Self::Store(error) if error.is_conflict())
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum Placed {
    New(Order),
    /// The same request with the same key was answered before: this is that answer.
    Replayed(Order),
}

/// A fulfilment step an admin takes on a confirmed order (`POST
/// /api/v1/orders/{id}/payment`, `/ship`, `/deliver`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fulfilment {
    /// The offline payment arrived.
    RecordPayment,
    /// Captures a card hold, then ships.
    Ship,
    Deliver,
}

pub struct OrderIntake {
    orders: Arc<dyn OrderStore>,
    prices: Arc<dyn PriceList>,
    clock: Arc<dyn Clock>,
    ids: Arc<dyn IdGenerator>,
    events: EventFactory,
    idempotency_ttl: chrono::Duration,
    payments: Payments,
}

impl OrderIntake {
    pub fn new(
        orders: Arc<dyn OrderStore>,
        prices: Arc<dyn PriceList>,
        clock: Arc<dyn Clock>,
        ids: Arc<dyn IdGenerator>,
        payments: Payments,
    ) -> Self {
        let events = EventFactory::new(FUNCTION, ids.clone(), clock.clone());
        Self { orders, prices, clock, ids, events, idempotency_ttl: chrono::Duration::hours(24), payments }
    }

    pub fn with_idempotency_ttl(mut self, ttl: Duration) -> Self {
        self.idempotency_ttl = chrono::Duration::from_std(ttl).unwrap_or(chrono::Duration::hours(24));
        self
    }

    /// Prices the request, then commits the order, its idempotency claim and
    /// its `order.placed.v1` in one write. Stock is deliberately not looked at.
    /// A retry that can no longer be priced still gets its first answer
    /// ([`OrderStore::replay`]).
    pub async fn place(
        &self,
        customer: CustomerId,
        request: NewOrder,
        key: Option<IdempotencyKey>,
        traceparent: Option<String>,
    ) -> Result<Placed, IntakeError> {
        let now = self.clock.now();
        let claim = key.map(|IdempotencyKey(key)| IdempotencyClaim {
            customer_id: customer.clone(),
            key,
            request_hash: fingerprint(&request),
            expires_at: now + self.idempotency_ttl,
        });
        let order = match self.order_of(&customer, &request, now).await {
            Ok(order) => order,
            // A retry must get its first answer even when the request could
            // no longer be placed as it is (a product re-priced in another
            // currency, the price list down): look for it only then, so the
            // common path reads nothing more.
            Err(error) => {
                let replayed = match &claim {
                    Some(claim) => self.orders.replay(claim, now).await.ok().flatten(),
                    None => None,
                };
                return match replayed {
                    Some(PlaceOutcome::Replayed(original)) => Ok(Placed::Replayed(original)),
                    Some(PlaceOutcome::KeyReused) => Err(IntakeError::KeyReused),
                    _ => Err(error),
                };
            }
        };
        let placed = self.event(Event::OrderPlaced(OrderChanged::new(&order)), traceparent);
        match self.orders.place(&order, claim.as_ref(), &[placed], now).await? {
            PlaceOutcome::Placed => Ok(Placed::New(order)),
            PlaceOutcome::Replayed(original) => Ok(Placed::Replayed(original)),
            PlaceOutcome::KeyReused => Err(IntakeError::KeyReused),
        }
    }

    /// A new order for `request` at today's prices.
    async fn order_of(
        &self,
        customer: &CustomerId,
        request: &NewOrder,
        now: DateTime<Utc>,
    ) -> Result<Order, IntakeError> {
        let prices = self.prices.prices(&request.skus()).await?;
        let lines = request.price(&prices)?;
        Ok(Order::place(OrderId::from_uuid(self.ids.new_id()), customer.clone(), lines, now)?
            .paid_by(self.payments.method()))
    }

    /// The order, if the caller may see it. Someone else's order is "not
    /// found", exactly like a missing one: existence is not leaked.
    pub async fn order_for(&self, caller: &Principal, id: OrderId) -> Result<Order, IntakeError> {
        match self.orders.get(id).await? {
            Some(order) if caller.may_access(order.customer_id()) => Ok(order),
            _ => Err(IntakeError::NotFound),
        }
    }

    /// Cancels a pending or confirmed order; inventory releases any stock
    /// when it sees `order.cancelled.v1`, and a card hold is voided (owed
    /// in the same write, see [`crate::payments`]).
    pub async fn cancel(
        &self,
        caller: &Principal,
        id: OrderId,
        traceparent: Option<String>,
    ) -> Result<Order, IntakeError> {
        // A lost race means the saga moved the order meanwhile: look again.
        retry_on_conflict(|| async {
            let order = self.order_for(caller, id).await?;
            let cancelled = order.cancel(self.clock.now()).map_err(IntakeError::NotCancellable)?;
            let mut events = vec![Event::OrderCancelled(OrderChanged::new(&cancelled))];
            if order.payment().status == PaymentStatus::Authorized {
                let authorization = order.payment().authorization.clone();
                events.push(Event::PaymentVoidOwed(PaymentVoidOwed { order_id: id, authorization }));
            }
            let envelopes: Vec<_> = events.into_iter().map(|e| self.event(e, traceparent.clone())).collect();
            self.orders.save_transition(&cancelled, &envelopes, None).await?;
            Ok(cancelled)
        })
        .await
    }

    /// Takes a fulfilment step on an order (an admin's): the transition
    /// decides whether it applies; shipping a card order first captures its
    /// hold at the gateway (idempotently, so a retry captures once).
    pub async fn fulfil(
        &self,
        id: OrderId,
        step: Fulfilment,
        traceparent: Option<String>,
    ) -> Result<Order, IntakeError> {
        retry_on_conflict(|| async {
            let order = self.orders.get(id).await?.ok_or(IntakeError::NotFound)?;
            let now = self.clock.now();
            let (next, event) = match step {
                Fulfilment::RecordPayment => {
                    let next = order.record_offline_payment(now)?;
                    (next.clone(), Event::OrderPaid(OrderChanged::new(&next)))
                }
                Fulfilment::Ship => {
                    let order = match order.payment().status {
                        PaymentStatus::Authorized => self.capture(order, now).await?,
                        _ => order,
                    };
                    let next = order.ship(now)?;
                    (next.clone(), Event::OrderShipped(OrderChanged::new(&next)))
                }
                Fulfilment::Deliver => {
                    let next = order.deliver(now).map_err(PaymentStepError::from)?;
                    (next.clone(), Event::OrderDelivered(OrderChanged::new(&next)))
                }
            };
            self.orders.save_transition(&next, &[self.event(event, traceparent.clone())], None).await?;
            Ok(next)
        })
        .await
    }

    /// Captures a confirmed order's card hold for its shipment, and returns
    /// the order as saved, still `capturing`, for [`Order::ship`] to record
    /// the capture. The start is saved before the gateway is called, so that
    /// a cancel cannot slip in while the money is being taken (see
    /// [`Order::start_capture`]). An order already `capturing` (a shipment
    /// whose outcome was lost) is captured again: the gateway answers a
    /// repeated capture with the first one's outcome.
    async fn capture(&self, order: Order, now: DateTime<Utc>) -> Result<Order, IntakeError> {
        // Already capturing: an earlier attempt's outcome is unknown, and
        // only a capture the gateway confirms settles it.
        let outcome_unknown = order.payment().capturing;
        let capturing = if outcome_unknown {
            order
        } else {
            let capturing = order.start_capture(now)?;
            self.orders.save_transition(&capturing, &[], None).await?;
            capturing
        };
        match self.payments.capture(&capturing).await {
            Ok(()) => Ok(capturing),
            // The money may be taken, by this call or an earlier one: the
            // order stays `capturing` (and not cancellable) until a retried
            // shipment learns the outcome. "Did nothing" (a refusal, a 5xx,
            // an open breaker) speaks for this call only.
            Err(error) if outcome_unknown || error.may_have_acted() => Err(error.into()),
            Err(error) => {
                // Nothing was taken: a cancel may go ahead again. If this
                // write fails, the order stays `capturing` until the next
                // shipment attempt, which is safe.
                let abandoned = capturing.abandon_capture(self.clock.now())?;
                if let Err(store) = self.orders.save_transition(&abandoned, &[], None).await {
                    tracing::warn!(order_id = %abandoned.id(), error = %store, "could not record an abandoned capture");
                }
                Err(error.into())
            }
        }
    }

    pub(crate) fn payments(&self) -> &Payments {
        &self.payments
    }

    pub(crate) fn event(&self, event: Event, traceparent: Option<String>) -> Envelope {
        self.events.envelope(event, traceparent)
    }

    pub(crate) fn orders(&self) -> &Arc<dyn OrderStore> {
        &self.orders
    }

    pub(crate) fn clock(&self) -> &Arc<dyn Clock> {
        &self.clock
    }
}

/// What "the same request" means for idempotency: the parsed lines, so that
/// whitespace or key order in the JSON do not matter but any real change does.
fn fingerprint(request: &NewOrder) -> String {
    let canonical = serde_json::to_vec(request.lines()).unwrap_or_default();
    hex::encode(Sha256::digest(canonical))
}
