use async_trait::async_trait;

use crate::domain::{AuthorizationId, Money, OrderId};

/// What the gateway said to an authorization.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Authorization {
    /// The total is held under this id.
    Authorized(AuthorizationId),
    /// The card was refused, with the gateway's reason.
    Declined(String),
}

/// Why a gateway call has no definite answer. Every variant but `Refused`
/// says the gateway is unwell (it counts for the circuit breaker); an
/// authorization that failed this way may still have been made.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GatewayError {
    #[error("the payment gateway did not answer in time")]
    Timeout,
    #[error("the payment gateway is unreachable: {0}")]
    Unreachable(String),
    /// A 5xx or 429.
    #[error("the payment gateway failed ({0})")]
    Failed(u16),
    /// An answer that is not the protocol's.
    #[error("the payment gateway answered something unexpected: {0}")]
    InvalidAnswer(String),
    /// Any other 4xx: a definite "no" to this request (not a sick gateway).
    #[error("the payment gateway refused the request ({0})")]
    Refused(u16),
    /// Not called: the circuit breaker is open.
    #[error("the payment gateway's circuit breaker is open; not called")]
    CircuitOpen { retry_after: std::time::Duration },
}

impl GatewayError {
    /// Whether the failure says the gateway is unwell (the breaker counts it).
    pub fn is_gateway_failure(&self) -> bool {
        matches!(self, Self::Timeout | Self::Unreachable(_) | Self::Failed(_) | Self::InvalidAnswer(_))
    }

    /// Whether the gateway may have done what it was asked: the answer was
    /// lost or garbled, or a proxy in front of it gave up (502, 504) after
    /// passing the request on. Another 5xx or a 429 says it did nothing, a
    /// refusal is a "no", and an open breaker did not call it.
    pub fn may_have_acted(&self) -> bool {
        matches!(self, Self::Timeout | Self::Unreachable(_) | Self::InvalidAnswer(_) | Self::Failed(502 | 504))
    }
}

/// A card payment gateway (the protocol of `docs/contract.md` §6). Every
/// call is idempotent at the gateway: an authorization is keyed by the
/// order, so a repeated one returns the first answer instead of holding the
/// money twice.
#[async_trait]
pub trait PaymentGateway: Send + Sync {
    /// A short name for logs and metrics.
    fn name(&self) -> &'static str;

    /// Holds `amount` for `order`.
    async fn authorize(&self, order: OrderId, amount: Money) -> Result<Authorization, GatewayError>;

    /// Takes the held money (at shipment).
    async fn capture(&self, order: OrderId, authorization: &AuthorizationId) -> Result<(), GatewayError>;

    /// Releases a hold.
    async fn void(&self, order: OrderId, authorization: &AuthorizationId) -> Result<(), GatewayError>;

    /// Releases whatever the gateway holds for `order`: a hold whose id never
    /// reached us (the authorization's answer was lost).
    async fn void_by_reference(&self, order: OrderId) -> Result<(), GatewayError>;

    /// `Some(d)` when calls are known to be refused for `d` (an open breaker).
    async fn unavailable_for(&self) -> Option<std::time::Duration> {
        None
    }
}
