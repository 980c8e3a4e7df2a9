use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::{ProcessedEvent, StoreError};
use crate::domain::{CustomerId, Order, OrderId};
use crate::events::Envelope;

/// An `Idempotency-Key` claimed by one customer for one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdempotencyClaim {
    pub customer_id: CustomerId,
    pub key: String,
    /// Hash of the parsed request: "same key, different body" is detectable.
    pub request_hash: String,
    pub expires_at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum PlaceOutcome {
    /// The order, its key and its events were committed together.
    Placed,
    /// The key was already used for this very request: here is the order as
    /// it was first answered. Nothing was written.
    Replayed(Order),
    /// The key was already used for a different request. Nothing was written.
    KeyReused,
}

/// Orders and idempotency keys, owned by order intake.
#[async_trait]
pub trait OrderStore: Send + Sync {
    /// Writes the order, the idempotency claim (if any) and its outbox events
    /// in one atomic write. A live claim with the same key short-circuits to
    /// `Replayed` or `KeyReused`; an expired one is replaced.
    async fn place(
        &self,
        order: &Order,
        claim: Option<&IdempotencyClaim>,
        outbox: &[Envelope],
        now: DateTime<Utc>,
    ) -> Result<PlaceOutcome, StoreError>;

    /// What [`Self::place`] would answer for a live claim of `claim`'s key
    /// (`Replayed` or `KeyReused`), or `None` when there is none; writes
    /// nothing. For a request that can no longer be placed as it was (the
    /// catalog changed since): its retry still gets the first answer.
    async fn replay(&self, claim: &IdempotencyClaim, now: DateTime<Utc>) -> Result<Option<PlaceOutcome>, StoreError>;

    async fn get(&self, id: OrderId) -> Result<Option<Order>, StoreError>;

    /// Saves a transitioned order if the stored one is still at
    /// `order.version - 1` (else `Conflict`), with its events and, when the
    /// change was caused by an event, that event's processed mark:
    /// `AlreadyProcessed`, and nothing written, when that event has moved
    /// this order before (whatever moved it since). A mark is about the
    /// order its event concerns; a store may keep it on the order itself.
    async fn save_transition(
        &self,
        order: &Order,
        outbox: &[Envelope],
        processed: Option<&ProcessedEvent>,
    ) -> Result<(), StoreError>;

    /// Writes events that change no order (a void owed again) with the
    /// processed mark of the event that caused them, in one atomic write:
    /// `AlreadyProcessed`, and nothing written, when that mark exists.
    async fn publish(&self, outbox: &[Envelope], processed: &ProcessedEvent) -> Result<(), StoreError>;
}
