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
//! - A receive finds its messages on a read connection and only claims them
//!   in the writer, each on the condition that it is still what the read
//!   saw; a receive that finds nothing and acknowledges nothing never
//!   reaches the writer.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use rusqlite::{Connection, params};
use uuid::Uuid;

use super::db::{Effects, unavailable};
use super::{EventRows, SqliteStore, from_millis, millis};
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

/// One message for one subscriber's queue, ready to insert. A relay that
/// publishes the same event twice enqueues it twice: consumers deduplicate
/// by event id, as they must for any at-least-once queue.
pub(crate) struct QueuedMessage {
    queue: &'static str,
    message_id: String,
    group: String,
    body: Arc<str>,
}

impl QueuedMessage {
    /// A message per event for every consumer that subscribes to its type.
    pub fn for_subscribers(events: &[Envelope]) -> Vec<Self> {
        let mut messages = Vec::with_capacity(events.len() * 2);
        for envelope in events {
            let body: Arc<str> = envelope.to_json().into();
            for consumer in subscribers(&envelope.event_type) {
                let queue = consumer.queue();
                messages.push(Self {
                    queue,
                    message_id: format!("{}@{queue}", envelope.id),
                    group: envelope.subject.clone(),
                    body: body.clone(),
                });
            }
        }
        messages
    }
}

/// `?1` the queue, `?2` the message id, `?3` its group, `?4` the body, `?5`
/// now (sent and visible).
const INSERT_MESSAGE_SQL: &str =
    "INSERT INTO queue_messages (queue, message_id, grp, body, sent_at, visible_at) VALUES (?1, ?2, ?3, ?4, ?5, ?5)";

/// Inserts `messages`, in the caller's transaction, and wakes their
/// consumers after the commit.
pub(crate) fn enqueue_all(
    conn: &Connection,
    messages: &[QueuedMessage],
    now_ms: i64,
    effects: &mut Effects,
) -> Result<(), StoreError> {
    if messages.is_empty() {
        return Ok(());
    }
    let mut insert = conn.prepare_cached(INSERT_MESSAGE_SQL).map_err(unavailable)?;
    for message in messages {
        insert
            .execute(params![message.queue, message.message_id, message.group, &*message.body, now_ms])
            .map_err(unavailable)?;
        effects.wake(message.queue);
    }
    Ok(())
}

/// A receipt names the row it was issued for, so acknowledging is a
/// primary-key lookup, and a random part that changes with every delivery.
fn new_receipt(seq: i64) -> String {
    format!("{seq}.{}", Uuid::new_v4().simple())
}

fn receipt_row(receipt: &str) -> i64 {
    receipt.split_once('.').and_then(|(seq, _)| seq.parse().ok()).unwrap_or(-1)
}

#[async_trait]
impl EventPublisher for SqliteStore {
    async fn publish(&self, events: &[Envelope]) -> Result<(), PublishError> {
        let (messages, now) = (QueuedMessage::for_subscribers(events), millis(self.clock.now()));
        self.db
            .write(move |conn, effects| enqueue_all(conn, &messages, now, effects))
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
        let rows = EventRows::new(events, false, millis(self.clock.now()));
        self.db.write(move |conn, effects| rows.write(conn, effects)).await.map_err(queue_error)
    }
}

/// A message a receive may take: visible, and the head of its group once
/// the messages acknowledged with the receive are gone, as a reader saw it.
struct Candidate {
    seq: i64,
    message_id: String,
    body: String,
    sent_at: i64,
    receive_count: i64,
    group: Option<String>,
}

/// `?1` the queue, `?2` now, `?3` how many, `?4` the acknowledged rows (a
/// JSON array).
const CANDIDATES_SQL: &str = "SELECT m.seq, m.message_id, m.body, m.sent_at, m.receive_count, m.grp
    FROM queue_messages m
    WHERE m.queue = ?1 AND m.visible_at <= ?2
      AND (m.grp IS NULL OR NOT EXISTS (
          SELECT 1 FROM queue_messages h
          WHERE h.queue = m.queue AND h.grp = m.grp AND h.seq < m.seq
            AND h.seq NOT IN (SELECT value FROM json_each(?4))))
    ORDER BY m.visible_at, m.seq LIMIT ?3";

/// Finds up to `max` candidates of `queue` on a read connection, off the
/// writer. Only the head of each group is eligible (strict order per
/// subject, no head-of-line blocking across subjects); `acked` are the rows
/// the same receive acknowledges, so the next message of their groups is
/// eligible at once. Walking past visible messages that wait behind their
/// group's head is most of a receive's work, and the writer, which every
/// write waits on, need not do it: [`claim_in`] checks each candidate again.
fn candidates_in(
    conn: &Connection,
    queue: &str,
    max: usize,
    now: i64,
    acked: &[i64],
) -> Result<Vec<Candidate>, StoreError> {
    let acked = serde_json::to_string(acked).map_err(|e| StoreError::Corrupt(e.to_string()))?;
    let mut stmt = conn.prepare_cached(CANDIDATES_SQL).map_err(unavailable)?;
    let rows = stmt
        .query_map(params![queue, now, max as i64, acked], |r| {
            Ok(Candidate {
                seq: r.get(0)?,
                message_id: r.get(1)?,
                body: r.get(2)?,
                sent_at: r.get(3)?,
                receive_count: r.get(4)?,
                group: r.get(5)?,
            })
        })
        .map_err(unavailable)?;
    rows.collect::<Result<_, _>>().map_err(unavailable)
}

/// The condition under which a candidate is still what its read saw: still
/// visible, received no more often since (nobody took it meanwhile), and
/// the head of its group now (an acknowledgement the read counted on may
/// not have matched its receipt). `?1` the row, `?2` now, `?3` the count.
/// (A macro, so that the statements below are whole constants: the writer
/// formats no SQL per message.)
macro_rules! still_a_candidate {
    () => {
        "seq = ?1 AND visible_at <= ?2 AND receive_count = ?3
    AND (grp IS NULL OR NOT EXISTS (
        SELECT 1 FROM queue_messages h
        WHERE h.queue = queue_messages.queue AND h.grp = queue_messages.grp AND h.seq < queue_messages.seq))"
    };
}

/// Moves a candidate received `max_receives` times to the dead letters;
/// `?1`–`?3` as in `still_a_candidate!`, `?2` is also its `dead_at`.
const DEAD_LETTER_SQL: &str = concat!(
    "INSERT INTO dead_letters (queue, message_id, grp, body, sent_at, receive_count, last_error, dead_at)
     SELECT queue, message_id, grp, body, sent_at, receive_count, last_error, ?2
     FROM queue_messages WHERE ",
    still_a_candidate!()
);

/// Takes a candidate until `?4` with the receipt `?5`.
const CLAIM_SQL: &str = concat!(
    "UPDATE queue_messages SET receive_count = receive_count + 1, visible_at = ?4, receipt = ?5 WHERE ",
    still_a_candidate!()
);

/// Takes `candidates`, in the caller's transaction, each only if it is
/// still a candidate: made invisible until `invisible_until`, or, if
/// received `max_receives` times already, moved to the dead letters.
fn claim_in(
    conn: &Connection,
    queue: &str,
    candidates: Vec<Candidate>,
    now: i64,
    invisible_until: i64,
    max_receives: i64,
    effects: &mut Effects,
) -> Result<Vec<ReceivedMessage>, StoreError> {
    let mut received = Vec::with_capacity(candidates.len());
    for candidate in candidates {
        let Candidate { seq, message_id, body, sent_at, receive_count, group } = candidate;
        if receive_count >= max_receives {
            let moved = conn
                .prepare_cached(DEAD_LETTER_SQL)
                .and_then(|mut s| s.execute(params![seq, now, receive_count]))
                .map_err(unavailable)?;
            if moved == 1 {
                conn.prepare_cached("DELETE FROM queue_messages WHERE seq = ?1")
                    .and_then(|mut s| s.execute(params![seq]))
                    .map_err(unavailable)?;
                tracing::warn!(queue = %queue, %message_id, receive_count, "message moved to the dead-letter queue");
                // The next message of its group is eligible now.
                effects.wake(queue);
            }
            continue;
        }
        let receipt = new_receipt(seq);
        let claimed = conn
            .prepare_cached(CLAIM_SQL)
            .and_then(|mut s| s.execute(params![seq, now, receive_count, invisible_until, receipt]))
            .map_err(unavailable)?;
        if claimed == 1 {
            received.push(ReceivedMessage {
                message_id,
                receipt,
                body,
                receive_count: (receive_count + 1) as u32,
                group,
                sent_at: from_millis(sent_at),
            });
        }
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
    effects.wake(queue);
    Ok(())
}

impl SqliteStore {
    /// Acknowledges `done` and receives the next batch in ONE write: a
    /// consumer's loop costs one trip through the writer per batch instead
    /// of two, and a group whose head is acknowledged here can hand out its
    /// next message in the same receive. The messages to take are found
    /// before the write, on a read connection ([`candidates_in`]).
    pub async fn ack_then_receive(
        &self,
        queue: &str,
        mut done: Vec<String>,
        max: usize,
        visibility: Duration,
    ) -> Result<Vec<ReceivedMessage>, QueueError> {
        let max_receives = i64::from(self.queues.max_receives);
        // Another process may claim every message this one found: look
        // again rather than leave this consumer idle while work remains.
        for _ in 0..CLAIM_ROUNDS {
            let now = millis(self.clock.now());
            let invisible_until = now + visibility.as_millis() as i64;
            let acked: Vec<i64> = done.iter().map(|receipt| receipt_row(receipt)).collect();
            let read_queue = queue.to_owned();
            // Inline, like every read: on the blocking pool (a thread
            // wake-up per receive) the saga took twice as long to catch up
            // after the bench's full-speed phase (1.8 s against 0.85 s).
            let found = self.db.read(move |conn| candidates_in(conn, &read_queue, max, now, &acked)).await;
            let candidates = match found {
                Ok(candidates) => candidates,
                // The handled messages are acknowledged all the same.
                Err(error) if !done.is_empty() => {
                    tracing::warn!(%queue, %error, "finding messages failed; acknowledging only");
                    Vec::new()
                }
                Err(error) => return Err(queue_error(error)),
            };
            if candidates.is_empty() && done.is_empty() {
                // Nothing to take or acknowledge: no trip through the writer.
                return Ok(Vec::new());
            }
            let found_some = !candidates.is_empty();
            let (queue, done) = (queue.to_owned(), std::mem::take(&mut done));
            let received = self
                .db
                .write(move |conn, effects| {
                    if !done.is_empty() {
                        ack_in(conn, &queue, &done, effects)?;
                    }
                    claim_in(conn, &queue, candidates, now, invisible_until, max_receives, effects)
                })
                .await
                .map_err(queue_error)?;
            if !received.is_empty() || !found_some {
                return Ok(received);
            }
        }
        Ok(Vec::new())
    }
}

/// Rounds of find-then-claim one receive makes when others claim first.
const CLAIM_ROUNDS: usize = 3;

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
                    effects.wake(&queue);
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
                conn.prepare_cached(INSERT_MESSAGE_SQL)
                    .and_then(|mut s| s.execute(params![queue, id, group, body, now]))
                    .map_err(unavailable)?;
                effects.wake(&queue);
                Ok(())
            })
            .await
            .map_err(queue_error)?;
        Ok(message_id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sqlite::DbOptions;

    const QUEUE: &str = "inventory";
    const VISIBILITY: Duration = Duration::from_secs(30);

    async fn candidates(store: &SqliteStore, acked: Vec<i64>) -> Vec<Candidate> {
        let now = millis(store.clock.now());
        store.db.read(move |conn| candidates_in(conn, QUEUE, 10, now, &acked)).await.unwrap()
    }

    /// Claims `found` as a writer `later_ms` after now would.
    async fn claim(store: &SqliteStore, found: Vec<Candidate>, later_ms: i64) -> Vec<ReceivedMessage> {
        let now = millis(store.clock.now()) + later_ms;
        store.db.write(move |conn, effects| claim_in(conn, QUEUE, found, now, now + 30_000, 5, effects)).await.unwrap()
    }

    #[tokio::test]
    async fn a_message_another_receive_took_since_it_was_found_is_not_claimed_again() {
        let (store, _dir) = SqliteStore::for_tests();
        store.send_raw(QUEUE, Some("order-1"), "{}").await.unwrap();
        let found = candidates(&store, Vec::new()).await;
        assert_eq!(found.len(), 1);
        assert_eq!(store.receive(QUEUE, 10, VISIBILITY).await.unwrap().len(), 1, "taken in between");
        assert!(claim(&store, found, 0).await.is_empty());
    }

    #[tokio::test]
    async fn a_message_received_and_visible_again_since_it_was_found_is_not_claimed_on_the_old_count() {
        let (store, _dir) = SqliteStore::for_tests();
        store.send_raw(QUEUE, Some("order-1"), "{}").await.unwrap();
        let found = candidates(&store, Vec::new()).await;
        // Another receive took it and gave it up at once (visible again).
        assert_eq!(store.receive(QUEUE, 10, Duration::ZERO).await.unwrap().len(), 1);
        assert!(claim(&store, found, 1_000).await.is_empty(), "its receive count moved on");
        assert_eq!(store.receive(QUEUE, 10, VISIBILITY).await.unwrap()[0].receive_count, 2);
    }

    /// Two processes on one database file, as two stores with a writer
    /// each: every message is delivered once, one at a time and in order
    /// per group, whichever process claims it.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn two_stores_on_one_file_deliver_each_message_once_and_in_order_per_group() {
        let (first, dir) = SqliteStore::for_tests();
        let second = SqliteStore::open(&dir.path().join("db"), DbOptions::default(), QueueSettings::default()).unwrap();
        const GROUPS: usize = 8;
        const PER_GROUP: usize = 25;
        for n in 0..PER_GROUP {
            for group in 0..GROUPS {
                first.send_raw(QUEUE, Some(&format!("g{group}")), &format!("{n}")).await.unwrap();
            }
        }
        // Groups held by either process, from its receive until it hands
        // the receipt back; and one clock for both, to check the order.
        let in_flight = Arc::new(std::sync::Mutex::new(std::collections::HashSet::<String>::new()));
        let clock = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let consume = |store: SqliteStore| {
            let (in_flight, clock) = (in_flight.clone(), clock.clone());
            tokio::spawn(async move {
                let (mut seen, mut held) = (Vec::new(), Vec::<(String, String)>::new());
                let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
                let mut idle_rounds = 0;
                while idle_rounds < 20 && tokio::time::Instant::now() < deadline {
                    let mut receipts = Vec::new();
                    for (receipt, group) in held.drain(..) {
                        in_flight.lock().unwrap().remove(&group);
                        receipts.push(receipt);
                    }
                    let batch = store.ack_then_receive(QUEUE, receipts, 5, VISIBILITY).await.unwrap();
                    idle_rounds = if batch.is_empty() { idle_rounds + 1 } else { 0 };
                    for message in batch {
                        let group = message.group.clone().unwrap();
                        assert!(in_flight.lock().unwrap().insert(group.clone()), "two of {group} in flight at once");
                        let at = clock.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                        seen.push((at, group.clone(), message.body.parse::<usize>().unwrap()));
                        held.push((message.receipt, group));
                    }
                    tokio::time::sleep(Duration::from_millis(if idle_rounds > 0 { 5 } else { 0 })).await;
                }
                seen
            })
        };
        let (a, b) = (consume(first.clone()), consume(second));
        let (a, b) = (a.await.unwrap(), b.await.unwrap());
        assert!(!a.is_empty() && !b.is_empty(), "both processes took work: {} and {}", a.len(), b.len());
        let mut all: Vec<_> = a.into_iter().chain(b).collect();
        all.sort_unstable();
        let mut by_group: std::collections::HashMap<String, Vec<usize>> = Default::default();
        for (_, group, n) in all {
            by_group.entry(group).or_default().push(n);
        }
        assert_eq!(by_group.len(), GROUPS);
        for (group, numbers) in by_group {
            assert_eq!(numbers, (0..PER_GROUP).collect::<Vec<_>>(), "{group}: each once, in order");
        }
        assert_eq!(first.receive(QUEUE, 10, VISIBILITY).await.unwrap().len(), 0, "nothing left");
    }

    #[tokio::test]
    async fn the_search_walks_the_ready_index_and_probes_the_group_index() {
        let (store, _dir) = SqliteStore::for_tests();
        let plan = store.query_plan(CANDIDATES_SQL.to_owned()).await;
        assert!(plan.iter().any(|s| s.contains("USING INDEX queue_messages_ready")), "{plan:?}");
        assert!(plan.iter().any(|s| s.contains("queue_messages_group")), "{plan:?}");
        assert!(!plan.iter().any(|s| s.contains("TEMP B-TREE")), "no sort: {plan:?}");
    }

    #[tokio::test]
    async fn the_next_message_of_a_group_is_claimed_only_if_its_head_was_really_acknowledged() {
        let (store, _dir) = SqliteStore::for_tests();
        store.send_raw(QUEUE, Some("order-1"), r#"{"n":1}"#).await.unwrap();
        store.send_raw(QUEUE, Some("order-1"), r#"{"n":2}"#).await.unwrap();
        let head = store.receive(QUEUE, 10, VISIBILITY).await.unwrap();
        assert_eq!(head.len(), 1, "one at a time per group");

        // A receipt for the head's row that is not its receipt (an old
        // delivery's): the read counts on it, the acknowledgement misses.
        let stale = format!("{}.stale", receipt_row(&head[0].receipt));
        assert!(store.ack_then_receive(QUEUE, vec![stale], 10, VISIBILITY).await.unwrap().is_empty());

        let next = store.ack_then_receive(QUEUE, vec![head[0].receipt.clone()], 10, VISIBILITY).await.unwrap();
        assert_eq!(next.iter().map(|m| m.body.as_str()).collect::<Vec<_>>(), [r#"{"n":2}"#]);
    }
}
