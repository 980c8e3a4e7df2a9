//! Payment, as order intake settles it: the last step of the saga, and the
//! gateway calls that an order's later steps owe.
//!
//! Why here and not in a fifth function: the payment is part of the order
//! (its status decides whether the order may be confirmed, shipped or
//! cancelled, and changes with it in one write), it is settled once per
//! order right where the saga already is, and it scales with orders. A
//! payment function would need its own copy of every order's total and a
//! second round trip through the queues before each confirmation.
//!
//! **Checkout never waits on a sick gateway.** The authorization is one call
//! bounded by `payment_timeout`, behind the gateway's shared circuit breaker:
//!
//! | the gateway | the order | owed afterwards |
//! |---|---|---|
//! | authorized | `confirmed`, payment `authorized` | capture at shipment, or void on cancel |
//! | declined | `rejected`, payment `declined` | (inventory releases the stock) |
//! | timed out, unreachable, garbled, 502/504 (a proxy gave up) | `confirmed`, offline instructions | a void by reference: a hold may exist |
//! | another 5xx, 429 (it did nothing) | `confirmed`, offline instructions | nothing |
//! | breaker open | `confirmed`, offline instructions | nothing: it was not called |
//!
//! Except on a redelivery: an earlier delivery of the same reply may have
//! been authorized and stopped (a crash, a failed write) before recording
//! it, so a redelivery that ends offline owes a void by reference whatever
//! this call's answer (a no-op at the gateway when nothing is held).
//!
//! A hold owed a void travels as `payment.void_owed.v1` through order
//! intake's own queue, written with the change that owes it: the void is
//! retried with backoff (not before the breaker's cool-down while it is
//! open), and when a message's attempts run out the void is owed again as a
//! new message (see `saga`), so a long outage never parks it in a
//! dead-letter queue: it is retried until the gateway answers.
//!
//! **Shipping captures the hold**, and a cancel must not race it: a cancel
//! saved while the capture is in flight would owe a void that the gateway
//! refuses (the money is taken), leaving a cancelled order charged. So the
//! shipment first saves the order as `capturing` (the cancel answers 409
//! meanwhile), then calls the gateway, then saves it `shipped`. A refusal,
//! a 5xx or 429, or an open breaker clear the flag (nothing was taken); a
//! lost answer keeps it until a retried shipment learns the outcome (see
//! `OrderIntake::fulfil`).
//!
//! Every call is idempotent at the gateway (its `Idempotency-Key` is the
//! order's id and the step), so a redelivered `inventory.reserved.v1` that
//! reaches the gateway again gets the first authorization back.

use std::sync::Arc;

use orderly_core::domain::{AuthorizationId, Order, PaymentMethod, offline_instructions};
use orderly_core::events::PaymentVoidOwed;
use orderly_core::messaging::{HandlerError, jitter};
use orderly_core::ports::{Authorization, GatewayError, PaymentGateway};

/// What the saga confirms (or rejects) an order with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Settlement {
    Authorized(AuthorizationId),
    Declined(String),
    /// Pay offline. `hold_unknown`: the authorization's answer was lost, so
    /// a hold may exist at the gateway, to be voided by reference.
    Offline {
        hold_unknown: bool,
    },
}

pub struct Payments {
    gateway: Option<Arc<dyn PaymentGateway>>,
    instructions: String,
}

impl Payments {
    /// `gateway`: behind its breaker (see `composition::payment_gateway`),
    /// or `None` for offline payments only; `instructions`: the offline
    /// template (`{order_id}`, `{amount}`, `{currency}`).
    pub fn new(gateway: Option<Arc<dyn PaymentGateway>>, instructions: String) -> Self {
        Self { gateway, instructions }
    }

    /// How new orders are to be paid.
    pub fn method(&self) -> PaymentMethod {
        if self.gateway.is_some() { PaymentMethod::Card } else { PaymentMethod::Offline }
    }

    pub fn instructions(&self, order: &Order) -> String {
        offline_instructions(&self.instructions, order)
    }

    /// Authorizes the order's total, or says why it is to be paid offline.
    /// `redelivered`: an earlier try of the same step may have authorized.
    pub async fn settle(&self, order: &Order, redelivered: bool) -> Settlement {
        let Some(gateway) = &self.gateway else {
            return Settlement::Offline { hold_unknown: false };
        };
        if order.payment().method == PaymentMethod::Offline {
            // Placed before the gateway was configured.
            return Settlement::Offline { hold_unknown: false };
        }
        let settlement = match gateway.authorize(order.id(), order.total()).await {
            Ok(Authorization::Authorized(id)) => Settlement::Authorized(id),
            Ok(Authorization::Declined(reason)) => Settlement::Declined(reason),
            Err(GatewayError::CircuitOpen { .. }) => Settlement::Offline { hold_unknown: false },
            Err(error) => {
                tracing::warn!(order_id = %order.id(), %error, "payment gateway failed: offline payment instead");
                // A lost or garbled answer may hide a hold.
                Settlement::Offline { hold_unknown: error.may_have_acted() }
            }
        };
        let settlement = match settlement {
            Settlement::Offline { .. } if redelivered => Settlement::Offline { hold_unknown: true },
            settled => settled,
        };
        let outcome = match &settlement {
            Settlement::Authorized(_) => "authorized",
            Settlement::Declined(_) => "declined",
            Settlement::Offline { .. } => "offline",
        };
        metrics::counter!("orderly_payments_total", "outcome" => outcome).increment(1);
        settlement
    }

    /// Takes a held total (at shipment).
    pub async fn capture(&self, order: &Order) -> Result<(), GatewayError> {
        let Some(authorization) = &order.payment().authorization else {
            return Ok(());
        };
        let gateway = self.gateway.as_ref().ok_or_else(not_configured)?;
        gateway.capture(order.id(), authorization).await
    }

    /// Releases a hold owed a void; a failure is retried by redelivery.
    pub async fn void(&self, owed: &PaymentVoidOwed) -> Result<(), HandlerError> {
        let Some(gateway) = &self.gateway else {
            // The gateway was unconfigured meanwhile: nobody here can reach it.
            tracing::error!(order_id = %owed.order_id, "a payment hold is owed a void, but no gateway is configured");
            return Err(HandlerError::Retry(not_configured().to_string()));
        };
        let voided = match &owed.authorization {
            Some(authorization) => gateway.void(owed.order_id, authorization).await,
            None => gateway.void_by_reference(owed.order_id).await,
        };
        match voided {
            Ok(()) => {
                metrics::counter!("orderly_payment_voids_total").increment(1);
                Ok(())
            }
            // A definite answer (already captured, unknown hold): nothing more to do.
            Err(GatewayError::Refused(status)) => {
                tracing::warn!(order_id = %owed.order_id, status, "the gateway refused a void");
                Ok(())
            }
            Err(GatewayError::CircuitOpen { retry_after }) => Err(HandlerError::RetryAfter {
                reason: "payment gateway: circuit open".into(),
                after: jitter(retry_after.max(std::time::Duration::from_millis(100))),
            }),
            Err(error) => Err(HandlerError::Retry(format!("payment gateway: {error}"))),
        }
    }
}

fn not_configured() -> GatewayError {
    GatewayError::Unreachable("no payment gateway is configured".into())
}

#[cfg(test)]
mod tests {
    use async_trait::async_trait;
    use orderly_contract::fixtures::order_for;
    use orderly_core::domain::{Money, OrderId};

    use super::*;

    /// A gateway that answers every authorization with `answer`.
    struct Answers(fn() -> Result<Authorization, GatewayError>);

    #[async_trait]
    impl PaymentGateway for Answers {
        fn name(&self) -> &'static str {
            "test"
        }

        async fn authorize(&self, _: OrderId, _: Money) -> Result<Authorization, GatewayError> {
            (self.0)()
        }

        async fn capture(&self, _: OrderId, _: &AuthorizationId) -> Result<(), GatewayError> {
            Ok(())
        }

        async fn void(&self, _: OrderId, _: &AuthorizationId) -> Result<(), GatewayError> {
            Ok(())
        }

        async fn void_by_reference(&self, _: OrderId) -> Result<(), GatewayError> {
            Ok(())
        }
    }

    fn payments(answer: fn() -> Result<Authorization, GatewayError>) -> Payments {
        Payments::new(Some(Arc::new(Answers(answer))), "Pay {amount}".into())
    }

    #[tokio::test]
    async fn a_gateway_that_did_nothing_owes_no_void_on_a_first_delivery() {
        let order = order_for("alice", &[("A", 1)]).paid_by(PaymentMethod::Card);
        for answer in
            [|| Err(GatewayError::Failed(503)), || Err(GatewayError::CircuitOpen { retry_after: Default::default() })]
        {
            assert_eq!(payments(answer).settle(&order, false).await, Settlement::Offline { hold_unknown: false });
        }
    }

    #[tokio::test]
    async fn a_proxy_that_gave_up_may_hide_a_hold() {
        let order = order_for("alice", &[("A", 1)]).paid_by(PaymentMethod::Card);
        for answer in [|| Err(GatewayError::Failed(502)), || Err(GatewayError::Failed(504))] {
            assert_eq!(payments(answer).settle(&order, false).await, Settlement::Offline { hold_unknown: true });
        }
    }

    #[tokio::test]
    async fn a_redelivery_that_ends_offline_owes_a_void_by_reference() {
        let order = order_for("alice", &[("A", 1)]).paid_by(PaymentMethod::Card);
        for answer in
            [|| Err(GatewayError::Failed(503)), || Err(GatewayError::CircuitOpen { retry_after: Default::default() })]
        {
            assert_eq!(payments(answer).settle(&order, true).await, Settlement::Offline { hold_unknown: true });
        }
        let offline = order_for("alice", &[("A", 1)]).paid_by(PaymentMethod::Offline);
        assert_eq!(
            payments(|| Err(GatewayError::Failed(503))).settle(&offline, true).await,
            Settlement::Offline { hold_unknown: false },
            "an order placed to be paid offline never reached the gateway"
        );
    }
}
