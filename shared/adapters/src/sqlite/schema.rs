//! The schema, as an append-only list of migrations. `PRAGMA user_version`
//! records how many have run; a database from a newer build is refused
//! rather than misread.

use rusqlite::Connection;

use super::db::unavailable;
use orderly_core::ports::StoreError;

const MIGRATIONS: &[&str] = &[
    // 1: every capability's tables. Each function owns its own tables; they
    // share a file only because the local runner is one process.
    r#"
    -- order intake
    CREATE TABLE orders (
        id          TEXT PRIMARY KEY,
        customer_id TEXT NOT NULL,
        status      TEXT NOT NULL,
        version     INTEGER NOT NULL,
        body        TEXT NOT NULL,
        created_at  TEXT NOT NULL,
        updated_at  TEXT NOT NULL
    );
    CREATE TABLE idempotency_keys (
        customer_id  TEXT NOT NULL,
        key          TEXT NOT NULL,
        request_hash TEXT NOT NULL,
        order_id     TEXT NOT NULL,
        response     TEXT NOT NULL,
        expires_at   INTEGER NOT NULL,
        PRIMARY KEY (customer_id, key)
    ) WITHOUT ROWID;
    CREATE INDEX idempotency_keys_expiry ON idempotency_keys (expires_at);

    -- inventory
    CREATE TABLE products (
        sku         TEXT PRIMARY KEY,
        name        TEXT NOT NULL,
        price_minor INTEGER NOT NULL CHECK (price_minor >= 0),
        currency    TEXT NOT NULL,
        available   INTEGER NOT NULL CHECK (available >= 0),
        reserved    INTEGER NOT NULL CHECK (reserved >= 0),
        version     INTEGER NOT NULL,
        updated_at  TEXT NOT NULL
    ) WITHOUT ROWID;
    CREATE TABLE reservations (
        order_id   TEXT PRIMARY KEY,
        state      TEXT NOT NULL,
        lines      TEXT NOT NULL,
        updated_at TEXT NOT NULL
    ) WITHOUT ROWID;

    -- notification
    CREATE TABLE notifications (
        id          TEXT PRIMARY KEY,
        order_id    TEXT NOT NULL,
        customer_id TEXT NOT NULL,
        kind        TEXT NOT NULL,
        state       TEXT NOT NULL,
        attempts    INTEGER NOT NULL,
        last_error  TEXT,
        provider    TEXT NOT NULL,
        created_at  TEXT NOT NULL,
        updated_at  TEXT NOT NULL
    );
    CREATE INDEX notifications_by_order ON notifications (order_id, created_at);

    -- analytics (read models)
    CREATE TABLE order_views (
        order_id    TEXT PRIMARY KEY,
        customer_id TEXT NOT NULL,
        version     INTEGER NOT NULL,
        body        TEXT NOT NULL
    ) WITHOUT ROWID;
    CREATE INDEX order_views_by_customer ON order_views (customer_id, order_id);
    CREATE TABLE counters (
        key   TEXT PRIMARY KEY,
        value INTEGER NOT NULL
    ) WITHOUT ROWID;

    -- messaging: outbox, consumer queues, dead letters, processed events
    CREATE TABLE outbox (
        position   INTEGER PRIMARY KEY AUTOINCREMENT,
        event_id   TEXT NOT NULL,
        body       TEXT NOT NULL,
        created_at INTEGER NOT NULL
    );
    CREATE TABLE queue_messages (
        seq           INTEGER PRIMARY KEY AUTOINCREMENT,
        queue         TEXT NOT NULL,
        message_id    TEXT NOT NULL,
        grp           TEXT,
        body          TEXT NOT NULL,
        sent_at       INTEGER NOT NULL,
        visible_at    INTEGER NOT NULL,
        receive_count INTEGER NOT NULL DEFAULT 0,
        receipt       TEXT,
        last_error    TEXT
    );
    CREATE INDEX queue_messages_ready ON queue_messages (queue, visible_at, seq);
    CREATE INDEX queue_messages_group ON queue_messages (queue, grp, seq);
    CREATE TABLE dead_letters (
        seq           INTEGER PRIMARY KEY AUTOINCREMENT,
        queue         TEXT NOT NULL,
        message_id    TEXT NOT NULL,
        grp           TEXT,
        body          TEXT NOT NULL,
        sent_at       INTEGER NOT NULL,
        receive_count INTEGER NOT NULL,
        last_error    TEXT,
        dead_at       INTEGER NOT NULL
    );
    CREATE INDEX dead_letters_by_queue ON dead_letters (queue, seq);
    CREATE TABLE processed_events (
        consumer     TEXT NOT NULL,
        event_id     TEXT NOT NULL,
        processed_at INTEGER NOT NULL,
        PRIMARY KEY (consumer, event_id)
    ) WITHOUT ROWID;
    CREATE INDEX processed_events_age ON processed_events (processed_at);
    "#,
    // 2: shared resilience state: circuit breakers and rate-limit buckets.
    r#"
    CREATE TABLE breakers (
        name    TEXT PRIMARY KEY,
        state   TEXT NOT NULL,
        version INTEGER NOT NULL
    ) WITHOUT ROWID;
    CREATE TABLE rate_buckets (
        key        TEXT PRIMARY KEY,
        tokens     REAL NOT NULL,
        updated_at INTEGER NOT NULL
    ) WITHOUT ROWID;
    CREATE INDEX rate_buckets_age ON rate_buckets (updated_at);
    "#,
    // 3: an order view keeps the ids of the events that wrote it (a JSON
    // array): they are those events' processed marks.
    r#"
    ALTER TABLE order_views ADD COLUMN events TEXT NOT NULL DEFAULT '[]';
    "#,
];

pub fn migrate(conn: &mut Connection) -> Result<(), StoreError> {
    let applied: usize =
        conn.query_row("PRAGMA user_version", [], |r| r.get::<_, i64>(0)).map_err(unavailable)? as usize;
    if applied > MIGRATIONS.len() {
        return Err(StoreError::Corrupt(format!(
            "the database is at schema version {applied}, newer than this build ({})",
            MIGRATIONS.len()
        )));
    }
    for (index, sql) in MIGRATIONS.iter().enumerate().skip(applied) {
        let tx = conn.transaction().map_err(unavailable)?;
        tx.execute_batch(sql).map_err(unavailable)?;
        tx.pragma_update(None, "user_version", (index + 1) as i64).map_err(unavailable)?;
        tx.commit().map_err(unavailable)?;
        tracing::info!(version = index + 1, "database schema migrated");
    }
    Ok(())
}
