use std::collections::HashMap;

use async_trait::async_trait;
use rusqlite::{OptionalExtension, Row, params};

use super::super::codec::{ProductFields, price};
use super::db::unavailable;
use super::{SqliteStore, from_json, insert_processed, is_constraint_violation, parse_timestamp, timestamp, to_json};
use orderly_core::domain::{Money, OrderId, Product, Reservation, ReservationState, Sku};
use orderly_core::events::Envelope;
use orderly_core::ports::{InventoryStore, PriceList, ProcessedEvent, ReservationChange, StockMove, StoreError};

const PRODUCT_COLUMNS: &str = "sku, name, price_minor, currency, available, reserved, version, updated_at";

fn product_from_row(row: &Row<'_>) -> rusqlite::Result<Result<Product, StoreError>> {
    let fields = ProductFields {
        sku: row.get(0)?,
        name: row.get(1)?,
        price_minor: row.get(2)?,
        currency: row.get(3)?,
        available: row.get(4)?,
        reserved: row.get(5)?,
        version: row.get(6)?,
        updated_at: row.get(7)?,
    };
    Ok(fields.decode())
}

#[async_trait]
impl InventoryStore for SqliteStore {
    async fn product(&self, sku: &Sku) -> Result<Option<Product>, StoreError> {
        let sku = sku.to_string();
        self.db
            .read(move |conn| {
                conn.prepare_cached(&format!("SELECT {PRODUCT_COLUMNS} FROM products WHERE sku = ?1"))
                    .and_then(|mut s| s.query_row(params![sku], product_from_row).optional())
                    .map_err(unavailable)?
                    .transpose()
            })
            .await
    }

    async fn products(&self, after: Option<&Sku>, limit: usize) -> Result<Vec<Product>, StoreError> {
        let after = after.map(|s| s.to_string()).unwrap_or_default();
        self.db
            .read(move |conn| {
                let mut stmt = conn
                    .prepare_cached(&format!(
                        "SELECT {PRODUCT_COLUMNS} FROM products WHERE sku > ?1 ORDER BY sku LIMIT ?2"
                    ))
                    .map_err(unavailable)?;
                let rows = stmt.query_map(params![after, limit as i64], product_from_row).map_err(unavailable)?;
                rows.map(|r| r.map_err(unavailable)?).collect()
            })
            .await
    }

    async fn available(&self, skus: &[Sku]) -> Result<HashMap<Sku, i64>, StoreError> {
        let skus = skus.to_vec();
        self.db
            .read(move |conn| {
                let mut stmt =
                    conn.prepare_cached("SELECT available FROM products WHERE sku = ?1").map_err(unavailable)?;
                let mut found = HashMap::with_capacity(skus.len());
                for sku in skus {
                    let available: Option<i64> =
                        stmt.query_row(params![sku.as_str()], |r| r.get(0)).optional().map_err(unavailable)?;
                    if let Some(available) = available {
                        found.insert(sku, available);
                    }
                }
                Ok(found)
            })
            .await
    }

    async fn save_product(
        &self,
        product: &Product,
        expected_version: Option<u64>,
        outbox: &[Envelope],
    ) -> Result<(), StoreError> {
        let p = ProductFields::of(product)?;
        let events = self.event_rows(outbox);
        self.db
            .write(move |conn, effects| {
                let fields =
                    params![p.sku, p.name, p.price_minor, p.currency, p.available, p.reserved, p.version, p.updated_at];
                let written = match expected_version {
                    None => conn
                        .prepare_cached(&format!(
                            "INSERT INTO products ({PRODUCT_COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)"
                        ))
                        .and_then(|mut s| s.execute(fields))
                        .map_err(|e| if is_constraint_violation(&e) { StoreError::Conflict } else { unavailable(e) })?,
                    // Catalog fields only (?5 and ?6, the stock, stay unused):
                    // stock moves by adding and taking.
                    Some(expected) => conn
                        .prepare_cached(
                            "UPDATE products SET name = ?2, price_minor = ?3, currency = ?4, version = ?7,
                             updated_at = ?8 WHERE sku = ?1 AND version = ?9",
                        )
                        .and_then(|mut s| {
                            let expected = expected as i64;
                            let mut update = fields.to_vec();
                            update.push(&expected);
                            s.execute(update.as_slice())
                        })
                        .map_err(unavailable)?,
                };
                if written != 1 {
                    return Err(StoreError::Conflict);
                }
                events.write(conn, effects)
            })
            .await
    }

    async fn restock(
        &self,
        restocked: &Product,
        expected_version: u64,
        units: u32,
        outbox: &[Envelope],
    ) -> Result<(), StoreError> {
        let p = ProductFields::of(restocked)?;
        let events = self.event_rows(outbox);
        self.db
            .write(move |conn, effects| {
                let written = conn
                    .prepare_cached(
                        "UPDATE products SET available = available + ?2, version = ?3, updated_at = ?4
                         WHERE sku = ?1 AND version = ?5",
                    )
                    .and_then(|mut s| {
                        s.execute(params![p.sku, i64::from(units), p.version, p.updated_at, expected_version as i64])
                    })
                    .map_err(unavailable)?;
                if written != 1 {
                    return Err(StoreError::Conflict);
                }
                events.write(conn, effects)
            })
            .await
    }

    async fn reservation(&self, order_id: OrderId) -> Result<Option<Reservation>, StoreError> {
        self.db
            .read(move |conn| {
                let row: Option<(String, String, String)> = conn
                    .prepare_cached("SELECT state, lines, updated_at FROM reservations WHERE order_id = ?1")
                    .and_then(|mut s| {
                        s.query_row(params![order_id.to_string()], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?))).optional()
                    })
                    .map_err(unavailable)?;
                row.map(|(state, lines, updated_at)| {
                    Ok(Reservation {
                        order_id,
                        state: ReservationState::parse(&state)
                            .ok_or_else(|| StoreError::Corrupt(format!("reservation state {state}")))?,
                        lines: from_json(&lines)?,
                        updated_at: parse_timestamp(&updated_at)?,
                    })
                })
                .transpose()
            })
            .await
    }

    async fn apply_reservation(
        &self,
        change: &ReservationChange,
        outbox: &[Envelope],
        processed: &ProcessedEvent,
    ) -> Result<(), StoreError> {
        let lines = to_json(&change.reservation.lines)?;
        let events = self.event_rows(outbox);
        let (change, mark, now) = (change.clone(), processed.clone(), self.clock.now());
        self.db
            .write(move |conn, effects| {
                insert_processed(conn, &mark, now)?;
                let order_id = change.reservation.order_id.to_string();
                let stored: Option<String> = conn
                    .prepare_cached("SELECT state FROM reservations WHERE order_id = ?1")
                    .and_then(|mut s| s.query_row(params![order_id], |r| r.get(0)).optional())
                    .map_err(unavailable)?;
                if stored.as_deref() != change.expected.map(ReservationState::as_str) {
                    return Err(StoreError::Conflict);
                }
                let updated_at = timestamp(change.reservation.updated_at);
                let (moves, sql) = match &change.stock {
                    StockMove::None => (&[][..], ""),
                    StockMove::Take(lines) => (
                        &lines[..],
                        "UPDATE products SET available = available - ?2, reserved = reserved + ?2,
                         updated_at = ?3 WHERE sku = ?1 AND available >= ?2",
                    ),
                    StockMove::Return(lines) => (
                        &lines[..],
                        "UPDATE products SET available = available + ?2, reserved = reserved - ?2,
                         updated_at = ?3 WHERE sku = ?1 AND reserved >= ?2",
                    ),
                };
                for (sku, units) in moves {
                    let moved = conn
                        .prepare_cached(sql)
                        .and_then(|mut s| s.execute(params![sku.as_str(), i64::from(*units), updated_at]))
                        .map_err(unavailable)?;
                    if moved != 1 {
                        // Someone took the stock since the decision: decide again.
                        return Err(StoreError::Conflict);
                    }
                }
                conn.prepare_cached(
                    "INSERT INTO reservations (order_id, state, lines, updated_at) VALUES (?1, ?2, ?3, ?4)
                     ON CONFLICT (order_id) DO UPDATE SET state = excluded.state, lines = excluded.lines,
                     updated_at = excluded.updated_at",
                )
                .and_then(|mut s| s.execute(params![order_id, change.reservation.state.as_str(), lines, updated_at]))
                .map_err(unavailable)?;
                events.write(conn, effects)
            })
            .await
    }
}

#[async_trait]
impl PriceList for SqliteStore {
    async fn prices(&self, skus: &[Sku]) -> Result<HashMap<Sku, Money>, StoreError> {
        let skus = skus.to_vec();
        self.db
            .read(move |conn| {
                let mut stmt = conn
                    .prepare_cached("SELECT price_minor, currency FROM products WHERE sku = ?1")
                    .map_err(unavailable)?;
                let mut prices = HashMap::with_capacity(skus.len());
                for sku in skus {
                    let row: Option<(i64, String)> = stmt
                        .query_row(params![sku.as_str()], |r| Ok((r.get(0)?, r.get(1)?)))
                        .optional()
                        .map_err(unavailable)?;
                    if let Some((minor, currency)) = row {
                        prices.insert(sku, price(minor, &currency)?);
                    }
                }
                Ok(prices)
            })
            .await
    }

    async fn names(&self, skus: &[Sku]) -> Result<HashMap<Sku, String>, StoreError> {
        let skus = skus.to_vec();
        self.db
            .read(move |conn| {
                let mut stmt = conn.prepare_cached("SELECT name FROM products WHERE sku = ?1").map_err(unavailable)?;
                let mut names = HashMap::with_capacity(skus.len());
                for sku in skus {
                    let name: Option<String> =
                        stmt.query_row(params![sku.as_str()], |r| r.get(0)).optional().map_err(unavailable)?;
                    if let Some(name) = name {
                        names.insert(sku, name);
                    }
                }
                Ok(names)
            })
            .await
    }
}
