//! Durable local queues with SQS semantics, in the same SQLite file.
//!
//! - A received message is invisible for the visibility timeout and comes
//!   back unless acknowledged — so a consumer that dies mid-message loses
//!   nothing.
//! - Each receive counts; a message received more than `max_receives` times
//!   moves to the queue's dead-letter table instead of being delivered.
//! - Messages with the same group (the event subject: an order id or a SKU)
//!   are delivered one at a time, in order, like an SQS FIFO message group;
//!   other groups are not held up by a slow or poisoned one.
//! - Consumers are woken by the writer after a commit that enqueued for them,
//!   so idle consumers sleep instead of polling.

use std::time::Duration;

use async_trait::async_trait;
use rusqlite::{Connection, params};
use uuid::Uuid;

use super::db::{Effects, unavailable};
use super::{EventWriter, SqliteStore, from_millis, millis};
use orderly_core::events::Envelope;
use orderly_core::events::routing::subscribers;
use orderly_core::ports::{
    DeadLetter, EventPublisher, MessageQueue, Outbox, OutboxEntry, PublishError, QueueAdmin, QueueError, QueueStats,
    ReceivedMessage, StoreError,
};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QueueSettings {
    /// Receives after which a message is dead-lettered (SQS maxReceiveCount).
    pub max_receives: u32,
}

impl Default for QueueSettings {
    fn default() -> Self {
        Self { max_receives: 5 }
    }
}

fn queue_error(error: StoreError) -> QueueError {
    QueueError::Unavailable(error.to_string())
}

/// Enqueues one message, in the caller's transaction. A relay that publishes
/// the same event twice enqueues it twice: consumers deduplicate by event id,
/// as they must for any at-least-once queue.
fn enqueue(conn: &Connection, queue: &str, envelope: &Envelope, body: &str, now_ms: i64) -> Result<(), StoreError> {
    conn.prepare_cached(
        "INSERT INTO queue_messages (queue, message_id, grp, body, sent_at, visible_at) VALUES (?1, ?2, ?3, ?4, ?5, ?5)",
    )
    .and_then(|mut s| s.execute(params![queue, format!("{}@{queue}", envelope.id), envelope.subject, body, now_ms]))
    .map(|_| ())
    .map_err(unavailable)
}

/// A receipt names the row it was issued for, so acknowledging is a
/// primary-key lookup, and a random part that changes with every delivery.
fn new_receipt(seq: i64) -> String {
    format!("{seq}.{}", Uuid::new_v4().simple())
}

fn receipt_row(receipt: &str) -> i64 {
    receipt.split_once('.').and_then(|(seq, _)| seq.parse().ok()).unwrap_or(-1)
}

/// Enqueues each event for every consumer that subscribes to its type, in
/// the caller's transaction, and wakes those consumers after the commit.
pub(crate) fn enqueue_for_subscribers(
    conn: &Connection,
    events: &[Envelope],
    now_ms: i64,
    effects: &mut Effects,
) -> Result<(), StoreError> {
    for envelope in events {
        let body = envelope.to_json();
        for consumer in subscribers(&envelope.event_type) {
            enqueue(conn, consumer.queue(), envelope, &body, now_ms)?;
            if !effects.queues.iter().any(|q| q == consumer.queue()) {
                effects.queues.push(consumer.queue().to_owned());
            }
        }
    }
    Ok(())
}

#[async_trait]
impl EventPublisher for SqliteStore {
    async fn publish(&self, events: &[Envelope]) -> Result<(), PublishError> {
        let (events, now) = (events.to_vec(), millis(self.clock.now()));
        self.db
            .write(move |conn, effects| enqueue_for_subscribers(conn, &events, now, effects))
            .await
            .map_err(|e| PublishError(e.to_string()))
    }
}

#[async_trait]
impl Outbox for SqliteStore {
    async fn pending(&self, after: Option<&str>, limit: usize) -> Result<Vec<OutboxEntry>, QueueError> {
        let after: i64 = after.and_then(|a| a.parse().ok()).unwrap_or(0);
        self.db
            .read(move |conn| {
                let mut stmt = conn
                    .prepare_cached("SELECT position, body FROM outbox WHERE position > ?1 ORDER BY position LIMIT ?2")
                    .map_err(unavailable)?;
                let rows = stmt
                    .query_map(params![after, limit as i64], |r| Ok((r.get::<_, i64>(0)?, r.get::<_, String>(1)?)))
                    .map_err(unavailable)?;
                let mut entries = Vec::new();
                for row in rows {
                    let (position, body) = row.map_err(unavailable)?;
                    let envelope = Envelope::from_json(&body).map_err(|e| StoreError::Corrupt(e.to_string()))?;
                    entries.push(OutboxEntry { position: position.to_string(), envelope });
                }
                Ok(entries)
            })
            .await
            .map_err(queue_error)
    }

    async fn remove(&self, positions: &[String]) -> Result<(), QueueError> {
        let positions: Vec<i64> = positions.iter().filter_map(|p| p.parse().ok()).collect();
        self.db
            .write(move |conn, _| {
                let mut delete = conn.prepare_cached("DELETE FROM outbox WHERE position = ?1").map_err(unavailable)?;
                for position in positions {
                    delete.execute(params![position]).map_err(unavailable)?;
                }
                Ok(())
            })
            .await
            .map_err(queue_error)
    }

    async fn keep(&self, events: &[Envelope]) -> Result<(), QueueError> {
        let writer = EventWriter { at_commit: false, now_ms: millis(self.clock.now()) };
        let events = events.to_vec();
        self.db.write(move |conn, effects| writer.write(conn, &events, effects)).await.map_err(queue_error)
    }
}

/// Receives up to `max` messages of `queue`, in the caller's transaction:
/// the head of each group that is visible, made invisible until
/// `invisible_until`; those received too often go to the dead letters.
fn receive_in(
    conn: &Connection,
    queue: &str,
    max: usize,
    now: i64,
    invisible_until: i64,
    max_receives: i64,
) -> Result<Vec<ReceivedMessage>, StoreError> {
    // Only the head of each group is eligible: strict order per
    // subject, no head-of-line blocking across subjects.
    let candidates: Vec<(i64, String, String, i64, i64, Option<String>)> = {
        let mut stmt = conn
            .prepare_cached(
                "SELECT m.seq, m.message_id, m.body, m.sent_at, m.receive_count, m.grp FROM queue_messages m
                 WHERE m.queue = ?1 AND m.visible_at <= ?2
                   AND (m.grp IS NULL OR NOT EXISTS (
                       SELECT 1 FROM queue_messages h
                       WHERE h.queue = m.queue AND h.grp = m.grp AND h.seq < m.seq))
                 ORDER BY m.visible_at, m.seq LIMIT ?3",
            )
            .map_err(unavailable)?;
        let rows = stmt
            .query_map(params![queue, now, max as i64], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?, r.get(5)?))
            })
            .map_err(unavailable)?;
        rows.collect::<Result<_, _>>().map_err(unavailable)?
    };
    let mut received = Vec::with_capacity(candidates.len());
    for (seq, message_id, body, sent_at, receive_count, group) in candidates {
        if receive_count >= max_receives {
            conn.prepare_cached(
                "INSERT INTO dead_letters (queue, message_id, grp, body, sent_at, receive_count, last_error, dead_at)
                 SELECT queue, message_id, grp, body, sent_at, receive_count, last_error, ?2
                 FROM queue_messages WHERE seq = ?1",
            )
            .and_then(|mut s| s.execute(params![seq, now]))
            .map_err(unavailable)?;
            conn.prepare_cached("DELETE FROM queue_messages WHERE seq = ?1")
                .and_then(|mut s| s.execute(params![seq]))
                .map_err(unavailable)?;
            tracing::warn!(queue = %queue, %message_id, receive_count, "message moved to the dead-letter queue");
            continue;
        }
        let receipt = new_receipt(seq);
        conn.prepare_cached(
            "UPDATE queue_messages SET receive_count = receive_count + 1, visible_at = ?2, receipt = ?3
             WHERE seq = ?1",
        )
        .and_then(|mut s| s.execute(params![seq, invisible_until, receipt]))
        .map_err(unavailable)?;
        received.push(ReceivedMessage {
            message_id,
            receipt,
            body,
            receive_count: (receive_count + 1) as u32,
            group,
            sent_at: from_millis(sent_at),
        });
    }
    Ok(received)
}

/// Deletes the acknowledged messages, in the caller's transaction.
fn ack_in(conn: &Connection, queue: &str, receipts: &[String], effects: &mut Effects) -> Result<(), StoreError> {
    let mut delete = conn
        .prepare_cached("DELETE FROM queue_messages WHERE seq = ?1 AND receipt = ?2 AND queue = ?3")
        .map_err(unavailable)?;
    for receipt in receipts {
        delete.execute(params![receipt_row(receipt), receipt, queue]).map_err(unavailable)?;
    }
    // The next message of an acknowledged group is now eligible.
    effects.queues.push(queue.to_owned());
    Ok(())
}

impl SqliteStore {
    /// Acknowledges `done` and receives the next batch in ONE write: a
    /// consumer's loop costs one trip through the writer per batch instead
    /// of two, and a group whose head is acknowledged here can hand out its
    /// next message in the same receive.
    pub async fn ack_then_receive(
        &self,
        queue: &str,
        done: Vec<String>,
        max: usize,
        visibility: Duration,
    ) -> Result<Vec<ReceivedMessage>, QueueError> {
        let queue = queue.to_owned();
        let now = millis(self.clock.now());
        let invisible_until = now + visibility.as_millis() as i64;
        let max_receives = i64::from(self.queues.max_receives);
        self.db
            .write(move |conn, effects| {
                if !done.is_empty() {
                    ack_in(conn, &queue, &done, effects)?;
                }
                receive_in(conn, &queue, max, now, invisible_until, max_receives)
            })
            .await
            .map_err(queue_error)
    }
}

#[async_trait]
impl MessageQueue for SqliteStore {
    async fn receive(&self, queue: &str, max: usize, visibility: Duration) -> Result<Vec<ReceivedMessage>, QueueError> {
        self.ack_then_receive(queue, Vec::new(), max, visibility).await
    }

    async fn ack(&self, queue: &str, receipts: &[String]) -> Result<(), QueueError> {
        let (queue, receipts) = (queue.to_owned(), receipts.to_vec());
        self.db.write(move |conn, effects| ack_in(conn, &queue, &receipts, effects)).await.map_err(queue_error)
    }

    async fn retry_later(&self, queue: &str, receipt: &str, delay: Duration, reason: &str) -> Result<(), QueueError> {
        self.return_later(queue, receipt, delay, reason, 0).await
    }

    /// Gives the receive back: the message's count is what its handler
    /// actually attempted.
    async fn defer(&self, queue: &str, receipt: &str, delay: Duration, reason: &str) -> Result<(), QueueError> {
        self.return_later(queue, receipt, delay, reason, 1).await
    }
}

impl SqliteStore {
    /// Makes a received message visible again after `delay`, noting why,
    /// with `uncounted` of its receives given back.
    async fn return_later(
        &self,
        queue: &str,
        receipt: &str,
        delay: Duration,
        reason: &str,
        uncounted: i64,
    ) -> Result<(), QueueError> {
        let (queue, receipt) = (queue.to_owned(), receipt.to_owned());
        let reason: String = reason.chars().take(500).collect();
        let visible_at = millis(self.clock.now()) + delay.as_millis() as i64;
        self.db
            .write(move |conn, _| {
                conn.prepare_cached(
                    "UPDATE queue_messages SET visible_at = ?1, last_error = ?2, receive_count = MAX(receive_count - ?6, 0)
                     WHERE seq = ?3 AND receipt = ?4 AND queue = ?5",
                )
                .and_then(|mut s| {
                    s.execute(params![visible_at, reason, receipt_row(&receipt), receipt, queue, uncounted])
                })
                .map(|_| ())
                .map_err(unavailable)
            })
            .await
            .map_err(queue_error)
    }
}

#[async_trait]
impl QueueAdmin for SqliteStore {
    async fn stats(&self, queue: &str) -> Result<QueueStats, QueueError> {
        let queue = queue.to_owned();
        let now = millis(self.clock.now());
        // Counting scans the queue's rows: tens of milliseconds behind a
        // backlog, so off the async worker (see `read_blocking`).
        self.db
            .read_blocking(move |conn| {
                let (depth, in_flight, oldest): (i64, i64, Option<i64>) = conn
                    .prepare_cached(
                        "SELECT COUNT(*), COALESCE(SUM(receive_count > 0 AND visible_at > ?2), 0), MIN(sent_at)
                         FROM queue_messages WHERE queue = ?1",
                    )
                    .and_then(|mut s| s.query_row(params![queue, now], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?))))
                    .map_err(unavailable)?;
                let dead: i64 = conn
                    .prepare_cached("SELECT COUNT(*) FROM dead_letters WHERE queue = ?1")
                    .and_then(|mut s| s.query_row(params![queue], |r| r.get(0)))
                    .map_err(unavailable)?;
                Ok(QueueStats {
                    queue,
                    depth: depth as u64,
                    in_flight: in_flight as u64,
                    oldest_age: oldest.map(|sent| Duration::from_millis((now - sent).max(0) as u64)),
                    dead_letters: dead as u64,
                })
            })
            .await
            .map_err(queue_error)
    }

    async fn dead_letters(&self, queue: &str, limit: usize) -> Result<Vec<DeadLetter>, QueueError> {
        let queue = queue.to_owned();
        self.db
            .read(move |conn| {
                let mut stmt = conn
                    .prepare_cached(
                        "SELECT message_id, body, receive_count, last_error, dead_at FROM dead_letters
                         WHERE queue = ?1 ORDER BY seq LIMIT ?2",
                    )
                    .map_err(unavailable)?;
                let rows = stmt
                    .query_map(params![queue, limit as i64], |r| {
                        Ok(DeadLetter {
                            message_id: r.get(0)?,
                            queue: queue.clone(),
                            body: r.get(1)?,
                            receive_count: r.get::<_, i64>(2)? as u32,
                            last_error: r.get(3)?,
                            dead_at: from_millis(r.get(4)?),
                        })
                    })
                    .map_err(unavailable)?;
                rows.collect::<Result<_, _>>().map_err(unavailable)
            })
            .await
            .map_err(queue_error)
    }

    async fn redrive(&self, queue: &str, limit: usize) -> Result<usize, QueueError> {
        let queue = queue.to_owned();
        let now = millis(self.clock.now());
        self.db
            .write(move |conn, effects| {
                let ids: Vec<i64> = {
                    let mut stmt = conn
                        .prepare_cached("SELECT seq FROM dead_letters WHERE queue = ?1 ORDER BY seq LIMIT ?2")
                        .map_err(unavailable)?;
                    let rows = stmt.query_map(params![queue, limit as i64], |r| r.get(0)).map_err(unavailable)?;
                    rows.collect::<Result<_, _>>().map_err(unavailable)?
                };
                for seq in &ids {
                    // A fresh message id: the original may still be queued if
                    // it was redriven and dead-lettered before.
                    conn.prepare_cached(
                        "INSERT INTO queue_messages (queue, message_id, grp, body, sent_at, visible_at)
                         SELECT queue, message_id || '+' || ?3, grp, body, sent_at, ?2 FROM dead_letters WHERE seq = ?1",
                    )
                    .and_then(|mut s| s.execute(params![seq, now, Uuid::new_v4().simple().to_string()]))
                    .map_err(unavailable)?;
                    conn.prepare_cached("DELETE FROM dead_letters WHERE seq = ?1")
                        .and_then(|mut s| s.execute(params![seq]))
                        .map_err(unavailable)?;
                }
                if !ids.is_empty() {
                    effects.queues.push(queue.clone());
                }
                Ok(ids.len())
            })
            .await
            .map_err(queue_error)
    }
}

impl SqliteStore {
    /// Sends a raw body to a queue, bypassing the outbox: for operators'
    /// tools and tests that need a message no producer would write.
    pub async fn send_raw(&self, queue: &str, group: Option<&str>, body: &str) -> Result<String, QueueError> {
        let (queue, group, body) = (queue.to_owned(), group.map(str::to_owned), body.to_owned());
        let now = millis(self.clock.now());
        let message_id = Uuid::new_v4().to_string();
        let id = message_id.clone();
        self.db
            .write(move |conn, effects| {
                conn.prepare_cached(
                    "INSERT INTO queue_messages (queue, message_id, grp, body, sent_at, visible_at) VALUES (?1, ?2, ?3, ?4, ?5, ?5)",
                )
                .and_then(|mut s| s.execute(params![queue, id, group, body, now]))
                .map_err(unavailable)?;
                effects.queues.push(queue);
                Ok(())
            })
            .await
            .map_err(queue_error)?;
        Ok(message_id)
    }
}
