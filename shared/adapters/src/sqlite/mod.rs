//! The embedded default: every store port and the queues in one SQLite file.
//!
//! Each capability's tables are its own (see `schema.rs`); they share a file
//! only because the local runner is one process. The same ports are served by
//! DynamoDB/SQS on AWS, and both pass the same contract suites.

mod analytics;
mod backend;
mod db;
mod inventory;
mod notifications;
mod orders;
mod queue;
mod resilience;
mod schema;

use std::path::Path;
use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use rusqlite::{Connection, params};
use tokio::sync::Notify;

pub use backend::SqliteBackend;
pub use db::{Database, DbOptions, Synchronous};
pub use queue::QueueSettings;

pub(crate) use super::codec::{from_json, parse_timestamp, timestamp, to_json};

use orderly_core::events::Envelope;
use orderly_core::ports::{Clock, ProcessedEvent, ProcessedEvents, StoreError, SystemClock, already_processed_is_done};

/// Every port, on one SQLite database.
#[derive(Clone)]
pub struct SqliteStore {
    db: Database,
    queues: QueueSettings,
    clock: Arc<dyn Clock>,
    publish_at_commit: bool,
}

impl std::fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteStore")
            .field("db", &self.db)
            .field("queues", &self.queues)
            .field("publish_at_commit", &self.publish_at_commit)
            .finish()
    }
}

impl SqliteStore {
    pub fn open(path: &Path, options: DbOptions, queues: QueueSettings) -> Result<Self, StoreError> {
        Ok(Self { db: Database::open(path, options)?, queues, clock: Arc::new(SystemClock), publish_at_commit: false })
    }

    /// Writes each event straight into its subscribers' queues, in the
    /// transaction of the state change it reports, instead of into the
    /// outbox for the relay to move.
    ///
    /// An outbox exists because a state change and a send to a queue cannot
    /// commit together when they live in different systems. Here they live
    /// in the same file, so the write *is* the send: nothing can be lost
    /// between them, nothing is sent twice, and the relay's read, fan-out
    /// and removal (three trips through the one writer per batch, and two
    /// statements per event) disappear. The runner uses this; the port
    /// contract suites run the default, the outbox that every other adapter
    /// has, so the relay stays proven (and drains rows an older runner left).
    pub fn publishing_at_commit(mut self) -> Self {
        self.publish_at_commit = true;
        self
    }

    /// The rows `events` become in a write of this store: queue messages
    /// or outbox items (see [`Self::publishing_at_commit`]).
    pub(crate) fn event_rows(&self, events: &[Envelope]) -> EventRows {
        EventRows::new(events, self.publish_at_commit, millis(self.clock.now()))
    }

    /// Replaces the clock (tests stand at "25 hours later" with it).
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    pub fn database(&self) -> &Database {
        &self.db
    }

    /// Wakes when `queue` receives a message.
    pub fn queue_waker(&self, queue: &str) -> Arc<Notify> {
        self.db.wakers().get(queue)
    }

    /// Wakes when an event is written to the outbox.
    pub fn outbox_waker(&self) -> Arc<Notify> {
        self.db.wakers().get(db::OUTBOX_WAKER)
    }

    /// Is the database answering? For /health.
    pub async fn ping(&self) -> Result<(), StoreError> {
        self.db.read(|conn| conn.query_row("SELECT 1", [], |_| Ok(())).map_err(db::unavailable)).await
    }

    /// Deletes idempotency keys past their 24 h, idle rate-limit buckets and
    /// processed-event marks older than `keep_processed` (longer than any message can live in a
    /// queue, so a redelivery can never outlive its mark). Returns rows removed.
    ///
    /// In jobs of at most [`PURGE_CHUNK`] rows: a job holds the one writer,
    /// and ten minutes of a busy shop's expired keys and marks are millions
    /// of rows, which one `DELETE` would remove while every write waited.
    pub async fn purge_expired(&self, keep_processed: chrono::Duration) -> Result<usize, StoreError> {
        let now = self.clock.now();
        let expired = [
            (
                "DELETE FROM idempotency_keys WHERE (customer_id, key) IN
                 (SELECT customer_id, key FROM idempotency_keys WHERE expires_at <= ?1 LIMIT ?2)",
                millis(now),
            ),
            (
                "DELETE FROM processed_events WHERE (consumer, event_id) IN
                 (SELECT consumer, event_id FROM processed_events WHERE processed_at < ?1 LIMIT ?2)",
                millis(now - keep_processed),
            ),
            // An hour idle refills any bucket: the row says nothing anymore.
            (
                "DELETE FROM rate_buckets WHERE key IN (SELECT key FROM rate_buckets WHERE updated_at < ?1 LIMIT ?2)",
                millis(now) - 3_600_000,
            ),
        ];
        let mut removed = 0;
        for (delete, horizon) in expired {
            loop {
                let chunk = self
                    .db
                    .write(move |conn, _| {
                        conn.prepare_cached(delete)
                            .and_then(|mut s| s.execute(params![horizon, PURGE_CHUNK as i64]))
                            .map_err(db::unavailable)
                    })
                    .await?;
                removed += chunk;
                if chunk < PURGE_CHUNK {
                    break;
                }
            }
        }
        Ok(removed)
    }
}

#[cfg(test)]
impl SqliteStore {
    /// A store on a fresh database in a directory that lives as long as the
    /// returned guard.
    pub(crate) fn for_tests() -> (Self, tempfile::TempDir) {
        let dir = tempfile::tempdir().unwrap();
        let store = Self::open(&dir.path().join("db"), DbOptions::default(), QueueSettings::default()).unwrap();
        (store, dir)
    }

    /// How SQLite would run `sql` (its parameters unbound): one line per step.
    pub(crate) async fn query_plan(&self, sql: String) -> Vec<String> {
        self.db
            .read(move |conn| {
                let mut stmt = conn.prepare(&format!("EXPLAIN QUERY PLAN {sql}")).map_err(db::unavailable)?;
                // Unbound parameters are NULL, which is enough to plan.
                let mut rows = stmt.raw_query();
                let mut steps = Vec::new();
                while let Some(row) = rows.next().map_err(db::unavailable)? {
                    steps.push(row.get::<_, String>(3).map_err(db::unavailable)?);
                }
                Ok(steps)
            })
            .await
            .unwrap()
    }
}

/// Most rows one housekeeping job deletes (see `SqliteStore::purge_expired`).
pub const PURGE_CHUNK: usize = 1_000;

pub(crate) fn millis(at: DateTime<Utc>) -> i64 {
    at.timestamp_millis()
}

pub(crate) fn from_millis(ms: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_millis(ms).unwrap_or_default()
}

fn is_constraint_violation(error: &rusqlite::Error) -> bool {
    matches!(error.sqlite_error_code(), Some(rusqlite::ErrorCode::ConstraintViolation))
}

/// The events a state change reports, as the rows its transaction writes:
/// the subscribers' queue messages (see
/// [`SqliteStore::publishing_at_commit`]) or outbox items. Built, bodies
/// serialised and message ids formatted, before the write goes to the
/// writer: that thread is the one every write waits on, so it runs SQL and
/// little else.
pub(crate) enum EventRows {
    Queued {
        messages: Vec<queue::QueuedMessage>,
        now_ms: i64,
    },
    /// (event id, body, created at)
    Outbox(Vec<(String, String, i64)>),
}

impl EventRows {
    pub fn new(events: &[Envelope], at_commit: bool, now_ms: i64) -> Self {
        if at_commit {
            Self::Queued { messages: queue::QueuedMessage::for_subscribers(events), now_ms }
        } else {
            Self::Outbox(events.iter().map(|e| (e.id.to_string(), e.to_json(), millis(e.time))).collect())
        }
    }

    pub fn write(&self, conn: &Connection, effects: &mut db::Effects) -> Result<(), StoreError> {
        match self {
            Self::Queued { messages, now_ms } => queue::enqueue_all(conn, messages, *now_ms, effects),
            Self::Outbox(items) if items.is_empty() => Ok(()),
            Self::Outbox(items) => {
                let mut insert = conn
                    .prepare_cached("INSERT INTO outbox (event_id, body, created_at) VALUES (?1, ?2, ?3)")
                    .map_err(db::unavailable)?;
                for (id, body, created_at) in items {
                    insert.execute(params![id, body, created_at]).map_err(db::unavailable)?;
                }
                effects.outbox = true;
                Ok(())
            }
        }
    }
}

/// Records a processed mark, in the caller's transaction; a second mark for
/// the same event fails the whole write with `AlreadyProcessed`.
pub(crate) fn insert_processed(conn: &Connection, mark: &ProcessedEvent, now: DateTime<Utc>) -> Result<(), StoreError> {
    conn.prepare_cached("INSERT INTO processed_events (consumer, event_id, processed_at) VALUES (?1, ?2, ?3)")
        .map_err(db::unavailable)?
        .execute(params![mark.consumer, mark.event_id.to_string(), millis(now)])
        .map(|_| ())
        .map_err(|e| if is_constraint_violation(&e) { StoreError::AlreadyProcessed } else { db::unavailable(e) })
}

#[async_trait]
impl ProcessedEvents for SqliteStore {
    async fn is_processed(&self, mark: &ProcessedEvent) -> Result<bool, StoreError> {
        let (consumer, id) = (mark.consumer, mark.event_id.to_string());
        self.db
            .read(move |conn| {
                conn.prepare_cached("SELECT 1 FROM processed_events WHERE consumer = ?1 AND event_id = ?2")
                    .and_then(|mut s| s.exists(params![consumer, id]))
                    .map_err(db::unavailable)
            })
            .await
    }

    async fn mark_processed(&self, mark: &ProcessedEvent) -> Result<(), StoreError> {
        let (mark, now) = (mark.clone(), self.clock.now());
        self.db.write(move |conn, _| already_processed_is_done(insert_processed(conn, &mark, now))).await
    }
}
