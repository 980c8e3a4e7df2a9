use async_trait::async_trait;
use rusqlite::{OptionalExtension, params};

use super::super::codec::counters;
use super::db::unavailable;
use super::{SqliteStore, insert_processed, is_constraint_violation};
use crate::stored_order;
use orderly_core::domain::{CustomerId, Order, OrderId};
use orderly_core::ports::{Applied, Counter, OrderView, ReadModelStore, StoreError};

#[async_trait]
impl ReadModelStore for SqliteStore {
    async fn order_view(&self, id: OrderId) -> Result<Option<OrderView>, StoreError> {
        self.db
            .read(move |conn| {
                let row: Option<(String, String)> = conn
                    .prepare_cached("SELECT body, events FROM order_views WHERE order_id = ?1")
                    .and_then(|mut s| s.query_row(params![id.to_string()], |r| Ok((r.get(0)?, r.get(1)?))).optional())
                    .map_err(unavailable)?;
                let Some((body, events)) = row else { return Ok(None) };
                let events = serde_json::from_str(&events)
                    .map_err(|e| StoreError::Corrupt(format!("view events of {id}: {e}")))?;
                Ok(Some(OrderView { order: stored_order::from_json(&body)?, events }))
            })
            .await
    }

    async fn apply(&self, events: &[Applied<'_>], deltas: &[(Counter, i64)]) -> Result<(), StoreError> {
        let mut owned = Vec::with_capacity(events.len());
        for event in events {
            let view = event
                .view
                .map(|v| {
                    let events =
                        serde_json::to_string(event.view_events).map_err(|e| StoreError::Corrupt(e.to_string()))?;
                    Ok::<_, StoreError>((v.clone(), stored_order::to_json(v)?, events))
                })
                .transpose()?;
            owned.push((view, event.expected_version, event.processed.clone()));
        }
        let deltas: Vec<(String, i64)> = deltas.iter().map(|(c, d)| (c.key(), *d)).collect();
        let now = self.clock.now();
        self.db
            .write(move |conn, _| {
                for (view, expected_version, mark) in &owned {
                    // A view is its events' mark; other events get their own.
                    match view {
                        Some((view, body, events)) => write_view(conn, view, body, events, *expected_version)?,
                        None => insert_processed(conn, mark, now)?,
                    }
                }
                let mut add = conn
                    .prepare_cached(
                        "INSERT INTO counters (key, value) VALUES (?1, ?2)
                         ON CONFLICT (key) DO UPDATE SET value = value + excluded.value",
                    )
                    .map_err(unavailable)?;
                for (key, delta) in &deltas {
                    add.execute(params![key, delta]).map_err(unavailable)?;
                }
                Ok(())
            })
            .await
    }

    async fn counters(&self) -> Result<Vec<(Counter, i64)>, StoreError> {
        // A scan of every counter: off the async worker (see `read_blocking`).
        self.db
            .read_blocking(|conn| {
                let mut stmt =
                    conn.prepare_cached("SELECT key, value FROM counters ORDER BY key").map_err(unavailable)?;
                let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?))).map_err(unavailable)?;
                Ok(counters(rows.collect::<Result<Vec<_>, _>>().map_err(unavailable)?))
            })
            .await
    }

    async fn customer_orders(
        &self,
        customer: &CustomerId,
        before: Option<OrderId>,
        limit: usize,
    ) -> Result<Vec<Order>, StoreError> {
        let customer = customer.to_string();
        self.db
            .read(move |conn| {
                let mut stmt = conn.prepare_cached(&customer_orders_sql(before.is_some())).map_err(unavailable)?;
                let rows = stmt
                    .query_map(params![customer, before.map(|b| b.to_string()), limit as i64], |r| {
                        r.get::<_, String>(0)
                    })
                    .map_err(unavailable)?;
                rows.map(|r| stored_order::from_json(&r.map_err(unavailable)?)).collect()
            })
            .await
    }
}

/// `customer_orders`' statement: `?1` the customer, `?2` the order to page
/// before, `?3` the limit. A statement per case: with `?2 IS NULL OR
/// order_id < ?2` SQLite searches the index by customer alone, so each page
/// would walk past every newer order of the customer again.
fn customer_orders_sql(paged: bool) -> String {
    let before = if paged { "order_id < ?2" } else { "?2 IS NULL" };
    format!("SELECT body FROM order_views WHERE customer_id = ?1 AND {before} ORDER BY order_id DESC LIMIT ?3")
}

/// Writes `view` if the stored one is at `expected_version` (`None`: absent).
fn write_view(
    conn: &rusqlite::Connection,
    view: &Order,
    body: &str,
    events: &str,
    expected_version: Option<u32>,
) -> Result<(), StoreError> {
    let (id, customer) = (view.id().to_string(), view.customer_id().as_str());
    let written = match expected_version {
        None => conn
            .prepare_cached(
                "INSERT INTO order_views (order_id, customer_id, version, body, events) VALUES (?1, ?2, ?3, ?4, ?5)",
            )
            .and_then(|mut s| s.execute(params![id, customer, view.version(), body, events]))
            .map_err(|e| if is_constraint_violation(&e) { StoreError::Conflict } else { unavailable(e) })?,
        Some(expected) => conn
            .prepare_cached(
                "UPDATE order_views SET version = ?2, body = ?3, events = ?4 WHERE order_id = ?1 AND version = ?5",
            )
            .and_then(|mut s| s.execute(params![id, view.version(), body, events, expected]))
            .map_err(unavailable)?,
    };
    if written == 1 { Ok(()) } else { Err(StoreError::Conflict) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_page_of_a_customers_orders_starts_in_the_index_where_the_last_one_ended() {
        let (store, _dir) = SqliteStore::for_tests();
        let plan = store.query_plan(customer_orders_sql(true)).await;
        assert!(plan.iter().any(|step| step.contains("(customer_id=? AND order_id<?)")), "{plan:?}");
    }
}
