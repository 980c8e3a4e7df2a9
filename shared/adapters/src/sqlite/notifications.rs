use async_trait::async_trait;
use rusqlite::{OptionalExtension, Row, params};
use uuid::Uuid;

use super::db::unavailable;
use super::{SqliteStore, parse_timestamp, timestamp};
use orderly_core::domain::{CustomerId, OrderId};
use orderly_core::ports::{NotificationLog, NotificationRecord, NotificationState, StoreError};

const COLUMNS: &str = "id, order_id, customer_id, kind, state, attempts, last_error, provider, created_at, updated_at";

fn record_from_row(row: &Row<'_>) -> rusqlite::Result<Result<NotificationRecord, StoreError>> {
    let raw: (String, String, String, String, String, i64, Option<String>, String, String, String) = (
        row.get(0)?,
        row.get(1)?,
        row.get(2)?,
        row.get(3)?,
        row.get(4)?,
        row.get(5)?,
        row.get(6)?,
        row.get(7)?,
        row.get(8)?,
        row.get(9)?,
    );
    Ok((|| {
        let (id, order_id, customer_id, kind, state, attempts, last_error, provider, created_at, updated_at) = raw;
        let corrupt = |what: &str| StoreError::Corrupt(format!("notification {id}: bad {what}"));
        Ok(NotificationRecord {
            id: Uuid::try_parse(&id).map_err(|_| corrupt("id"))?,
            order_id: OrderId::parse(&order_id).ok_or_else(|| corrupt("order id"))?,
            customer_id: CustomerId::parse(&customer_id).map_err(|_| corrupt("customer"))?,
            kind,
            state: NotificationState::parse(&state).ok_or_else(|| corrupt("state"))?,
            attempts: attempts as u32,
            last_error,
            provider,
            created_at: parse_timestamp(&created_at)?,
            updated_at: parse_timestamp(&updated_at)?,
        })
    })())
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
        let r = record.clone();
        self.db
            .write(move |conn, _| {
                conn.prepare_cached(&format!(
                    "INSERT OR REPLACE INTO notifications ({COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)"
                ))
                .and_then(|mut s| {
                    s.execute(params![
                        r.id.to_string(),
                        r.order_id.to_string(),
                        r.customer_id.as_str(),
                        r.kind,
                        r.state.as_str(),
                        r.attempts,
                        r.last_error,
                        r.provider,
                        timestamp(r.created_at),
                        timestamp(r.updated_at)
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
                let mut stmt = conn
                    .prepare_cached(&format!(
                        "SELECT {COLUMNS} FROM notifications WHERE (?1 IS NULL OR order_id = ?1)
                         ORDER BY created_at, id LIMIT ?2"
                    ))
                    .map_err(unavailable)?;
                let rows = stmt
                    .query_map(params![order_id.map(|o| o.to_string()), limit as i64], record_from_row)
                    .map_err(unavailable)?;
                rows.map(|r| r.map_err(unavailable)?).collect()
            })
            .await
    }
}
