use async_trait::async_trait;
use rusqlite::{OptionalExtension, Row, params};
use uuid::Uuid;

use super::super::codec::NotificationFields;
use super::SqliteStore;
use super::db::unavailable;
use orderly_core::domain::OrderId;
use orderly_core::ports::{NotificationLog, NotificationRecord, StoreError};

const COLUMNS: &str = "id, order_id, customer_id, kind, state, attempts, last_error, provider, created_at, updated_at";

fn record_from_row(row: &Row<'_>) -> rusqlite::Result<Result<NotificationRecord, StoreError>> {
    let fields = NotificationFields {
        id: row.get(0)?,
        order_id: row.get(1)?,
        customer_id: row.get(2)?,
        kind: row.get(3)?,
        state: row.get(4)?,
        attempts: row.get(5)?,
        last_error: row.get(6)?,
        provider: row.get(7)?,
        created_at: row.get(8)?,
        updated_at: row.get(9)?,
    };
    Ok(fields.decode())
}

/// `list`'s statement: `?1` the order id, `?2` the limit. Two statements,
/// not one with `?1 IS NULL OR order_id = ?1`: SQLite plans a statement
/// once, and that plan scans the whole table, where notification reads one
/// order's entries before each confirmation it tells.
fn list_sql(by_order: bool) -> String {
    let filter = if by_order { "order_id = ?1" } else { "?1 IS NULL" };
    format!("SELECT {COLUMNS} FROM notifications WHERE {filter} ORDER BY created_at, id LIMIT ?2")
}

#[async_trait]
impl NotificationLog for SqliteStore {
    async fn get(&self, id: Uuid) -> Result<Option<NotificationRecord>, StoreError> {
        self.db
            .read(move |conn| {
                conn.prepare_cached(&format!("SELECT {COLUMNS} FROM notifications WHERE id = ?1"))
                    .and_then(|mut s| s.query_row(params![id.to_string()], record_from_row).optional())
                    .map_err(unavailable)?
                    .transpose()
            })
            .await
    }

    async fn save(&self, record: &NotificationRecord) -> Result<(), StoreError> {
        let r = NotificationFields::of(record);
        self.db
            .write(move |conn, _| {
                // A sent record stays as it is (see the port).
                conn.prepare_cached(&format!(
                    "INSERT INTO notifications ({COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)
                     ON CONFLICT (id) DO UPDATE SET
                         state = excluded.state, attempts = excluded.attempts, last_error = excluded.last_error,
                         provider = excluded.provider, updated_at = excluded.updated_at
                     WHERE notifications.state <> 'sent'"
                ))
                .and_then(|mut s| {
                    s.execute(params![
                        r.id,
                        r.order_id,
                        r.customer_id,
                        r.kind,
                        r.state,
                        r.attempts,
                        r.last_error,
                        r.provider,
                        r.created_at,
                        r.updated_at
                    ])
                })
                .map(|_| ())
                .map_err(unavailable)
            })
            .await
    }

    async fn list(&self, order_id: Option<OrderId>, limit: usize) -> Result<Vec<NotificationRecord>, StoreError> {
        self.db
            .read(move |conn| {
                let mut stmt = conn.prepare_cached(&list_sql(order_id.is_some())).map_err(unavailable)?;
                let rows = stmt
                    .query_map(params![order_id.map(|o| o.to_string()), limit as i64], record_from_row)
                    .map_err(unavailable)?;
                rows.map(|r| r.map_err(unavailable)?).collect()
            })
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn one_orders_notifications_are_read_through_its_index() {
        let (store, _dir) = SqliteStore::for_tests();
        let plan = store.query_plan(list_sql(true)).await;
        assert!(plan.iter().any(|step| step.contains("USING INDEX notifications_by_order")), "{plan:?}");
    }
}
