use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use crate::events::Envelope;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum QueueError {
    #[error("the queue is unavailable: {0}")]
    Unavailable(String),
    #[error("no queue named {0}")]
    UnknownQueue(String),
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("publishing failed: {0}")]
pub struct PublishError(pub String);

/// An event written in the same transaction as the state change it reports,
/// waiting for the relay.
#[derive(Debug, Clone, PartialEq)]
pub struct OutboxEntry {
    /// Opaque position; the relay hands it back to `remove`.
    pub position: String,
    pub envelope: Envelope,
}

/// The transactional outbox: read by the relay, never by business code.
#[async_trait]
pub trait Outbox: Send + Sync {
    /// The oldest waiting events after `after` (a position it returned
    /// before; `None`: from the start), in the order they were written.
    async fn pending(&self, after: Option<&str>, limit: usize) -> Result<Vec<OutboxEntry>, QueueError>;
    async fn remove(&self, positions: &[String]) -> Result<(), QueueError>;
    /// Adds events outside any state change: a relay fed by a stream keeps
    /// here what it could not publish, so that the polling relay (the
    /// sweep) publishes it once the queues are back.
    async fn keep(&self, events: &[Envelope]) -> Result<(), QueueError>;
}

/// Fans events out to every subscribed consumer queue (see
/// `events::routing`), grouped by subject for per-order ordering.
#[async_trait]
pub trait EventPublisher: Send + Sync {
    async fn publish(&self, events: &[Envelope]) -> Result<(), PublishError>;
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReceivedMessage {
    pub message_id: String,
    /// Proof of this delivery; a stale receipt (the message was redelivered
    /// since) acknowledges nothing.
    pub receipt: String,
    pub body: String,
    /// 1 on the first delivery.
    pub receive_count: u32,
    /// Its FIFO group (the event's subject), if the queue keeps groups: see
    /// `messaging::process_batch` for what that promises.
    pub group: Option<String>,
    pub sent_at: DateTime<Utc>,
}

/// The consuming side of a queue with SQS semantics: a received message is
/// invisible for the visibility timeout, then comes back unless acknowledged;
/// after too many receives it moves to the queue's dead-letter queue.
#[async_trait]
pub trait MessageQueue: Send + Sync {
    async fn receive(&self, queue: &str, max: usize, visibility: Duration) -> Result<Vec<ReceivedMessage>, QueueError>;

    async fn ack(&self, queue: &str, receipts: &[String]) -> Result<(), QueueError>;

    /// Makes the message visible again after `delay` (a backoff), noting why.
    async fn retry_later(&self, queue: &str, receipt: &str, delay: Duration, reason: &str) -> Result<(), QueueError>;

    /// Like [`Self::retry_later`], for a delivery its handler could not
    /// attempt: a dependency's open circuit breaker refused it. Where the
    /// queue can, the delivery does not count towards the dead-letter
    /// queue, so that an outage longer than the receives allowed defers a
    /// message instead of dead-lettering it unsent. SQS counts every
    /// receive, so there (the default) it is `retry_later`.
    async fn defer(&self, queue: &str, receipt: &str, delay: Duration, reason: &str) -> Result<(), QueueError> {
        self.retry_later(queue, receipt, delay, reason).await
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueStats {
    pub queue: String,
    /// Messages waiting or in flight.
    pub depth: u64,
    pub in_flight: u64,
    pub oldest_age: Option<Duration>,
    pub dead_letters: u64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeadLetter {
    pub message_id: String,
    pub queue: String,
    pub body: String,
    pub receive_count: u32,
    pub last_error: Option<String>,
    pub dead_at: DateTime<Utc>,
}

/// Operating queues: depths for /health and metrics, the dead letters, and
/// the redrive that moves them back once the cause is fixed.
#[async_trait]
pub trait QueueAdmin: Send + Sync {
    async fn stats(&self, queue: &str) -> Result<QueueStats, QueueError>;
    async fn dead_letters(&self, queue: &str, limit: usize) -> Result<Vec<DeadLetter>, QueueError>;
    /// Moves up to `limit` dead letters back to `queue`; returns how many.
    async fn redrive(&self, queue: &str, limit: usize) -> Result<usize, QueueError>;
}
