//! Ports: the only doors between the core and the world.
//!
//! Each store trait is narrow and owned by one capability (order intake writes
//! orders, inventory writes stock, ...), after aws-samples/serverless-rust-demo.
//! Every write that a consumer makes *because of an event* takes the event's
//! [`ProcessedEvent`] mark and commits it atomically with the state change:
//! that, not luck, is what makes redelivery harmless.
//!
//! Each trait has one contract suite (the `orderly-contract` crate) that every adapter
//! (SQLite today; DynamoDB/SQS next) must pass unchanged.

mod analytics;
mod clock;
mod inventory;
mod messaging;
mod notifications;
mod orders;
mod payments;
mod provider;
mod resilience;
mod secrets;

pub use analytics::{Applied, Counter, MAX_APPLY_ITEMS, OrderView, ReadModelStore};
pub use clock::{Clock, IdGenerator, NoDeadlines, SystemClock, Timer, UuidV7Ids, within};
pub use inventory::{InventoryStore, PriceList, ReservationChange, StockMove};
pub use messaging::{
    DeadLetter, EventPublisher, MessageQueue, Outbox, OutboxEntry, PublishError, QueueAdmin, QueueError, QueueStats,
    ReceivedMessage,
};
pub use notifications::{NotificationLog, NotificationRecord, NotificationState};
pub use orders::{IdempotencyClaim, OrderStore, PlaceOutcome};
pub use payments::{Authorization, GatewayError, PaymentGateway};
pub use provider::{Notification, NotificationProvider, ProviderError};
pub use resilience::{BreakerStore, Cache, CacheError, FillTicket, Lookup, RateLimiter};
pub use secrets::{FetchError, SecretFetcher};

use uuid::Uuid;

/// Failures every store port can report. Only `Unavailable` is worth a retry
/// of the same call; `Conflict` means "read again and decide again" (see
/// `resilience::conflict`), and `Contended` that this went on too long.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StoreError {
    #[error("the record changed since it was read")]
    Conflict,
    /// Every one of `attempts` rounds of read, decide, write lost its race.
    #[error("the record kept changing: gave up after {attempts} conflicting writes")]
    Contended { attempts: u32 },
    #[error("this event was already processed")]
    AlreadyProcessed,
    #[error("the store is unavailable: {0}")]
    Unavailable(String),
    #[error("the store holds data this build cannot read: {0}")]
    Corrupt(String),
}

/// "Consumer X has applied event Y", written in the same atomic write as the
/// effect of Y. A second write with the same mark fails with
/// [`StoreError::AlreadyProcessed`] and changes nothing. An event changes
/// one aggregate (its subject: an order, a reservation), so a store may keep
/// the mark on that aggregate's record rather than as a record of its own
/// (the DynamoDB adapters do: one item fewer per transaction).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProcessedEvent {
    pub consumer: &'static str,
    pub event_id: Uuid,
}

/// A write that carried a processed mark, as its consumer reads it:
/// `AlreadyProcessed` says an earlier delivery of the same event committed
/// the effect already, which is success (a duplicate made harmless).
pub fn already_processed_is_done(written: Result<(), StoreError>) -> Result<(), StoreError> {
    match written {
        Err(StoreError::AlreadyProcessed) => Ok(()),
        other => other,
    }
}

/// For consumers whose event needs no state change: remember it was seen.
#[async_trait::async_trait]
pub trait ProcessedEvents: Send + Sync {
    async fn is_processed(&self, mark: &ProcessedEvent) -> Result<bool, StoreError>;
    async fn mark_processed(&self, mark: &ProcessedEvent) -> Result<(), StoreError>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_duplicate_of_an_applied_event_is_success_and_other_errors_stay() {
        assert_eq!(already_processed_is_done(Err(StoreError::AlreadyProcessed)), Ok(()));
        assert_eq!(already_processed_is_done(Ok(())), Ok(()));
        assert_eq!(already_processed_is_done(Err(StoreError::Conflict)), Err(StoreError::Conflict));
    }
}
