use async_trait::async_trait;
use chrono::{DateTime, Utc};
use rusqlite::{OptionalExtension, params};

use super::db::unavailable;
use super::{SqliteStore, insert_processed, is_constraint_violation, millis, timestamp};
use crate::stored_order;
use orderly_core::domain::{Order, OrderId};
use orderly_core::events::Envelope;
use orderly_core::ports::{IdempotencyClaim, OrderStore, PlaceOutcome, ProcessedEvent, StoreError};

#[async_trait]
impl OrderStore for SqliteStore {
    async fn place(
        &self,
        order: &Order,
        claim: Option<&IdempotencyClaim>,
        outbox: &[Envelope],
        now: DateTime<Utc>,
    ) -> Result<PlaceOutcome, StoreError> {
        let body = stored_order::to_json(order)?;
        let events = self.event_rows(outbox);
        let (order, claim) = (order.clone(), claim.cloned());
        self.db
            .write(move |conn, effects| {
                if let Some(claim) = &claim {
                    let existing: Option<(String, String, i64)> = conn
                        .prepare_cached(
                            "SELECT request_hash, response, expires_at FROM idempotency_keys WHERE customer_id = ?1 AND key = ?2",
                        )
                        .and_then(|mut s| {
                            s.query_row(params![claim.customer_id.as_str(), claim.key], |r| {
                                Ok((r.get(0)?, r.get(1)?, r.get(2)?))
                            })
                            .optional()
                        })
                        .map_err(unavailable)?;
                    match existing {
                        Some((hash, response, expires_at)) if expires_at > millis(now) => {
                            return if hash == claim.request_hash {
                                Ok(PlaceOutcome::Replayed(stored_order::from_json(&response)?))
                            } else {
                                Ok(PlaceOutcome::KeyReused)
                            };
                        }
                        Some(_) => {
                            conn.execute(
                                "DELETE FROM idempotency_keys WHERE customer_id = ?1 AND key = ?2",
                                params![claim.customer_id.as_str(), claim.key],
                            )
                            .map_err(unavailable)?;
                        }
                        None => {}
                    }
                    conn.prepare_cached(
                        "INSERT INTO idempotency_keys (customer_id, key, request_hash, order_id, response, expires_at)
                         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                    )
                    .and_then(|mut s| {
                        s.execute(params![
                            claim.customer_id.as_str(),
                            claim.key,
                            claim.request_hash,
                            order.id().to_string(),
                            body,
                            millis(claim.expires_at)
                        ])
                    })
                    .map_err(unavailable)?;
                }
                conn.prepare_cached(
                    "INSERT INTO orders (id, customer_id, status, version, body, created_at, updated_at)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                )
                .and_then(|mut s| {
                    s.execute(params![
                        order.id().to_string(),
                        order.customer_id().as_str(),
                        order.status().as_str(),
                        order.version(),
                        body,
                        timestamp(order.created_at()),
                        timestamp(order.updated_at())
                    ])
                })
                .map_err(|e| if is_constraint_violation(&e) { StoreError::Conflict } else { unavailable(e) })?;
                events.write(conn, effects)?;
                Ok(PlaceOutcome::Placed)
            })
            .await
    }

    async fn replay(&self, claim: &IdempotencyClaim, now: DateTime<Utc>) -> Result<Option<PlaceOutcome>, StoreError> {
        let (customer, key, request_hash) = (claim.customer_id.clone(), claim.key.clone(), claim.request_hash.clone());
        self.db
            .read(move |conn| {
                let existing: Option<(String, String)> = conn
                    .prepare_cached(
                        "SELECT request_hash, response FROM idempotency_keys
                         WHERE customer_id = ?1 AND key = ?2 AND expires_at > ?3",
                    )
                    .and_then(|mut s| {
                        s.query_row(params![customer.as_str(), key, millis(now)], |r| Ok((r.get(0)?, r.get(1)?)))
                            .optional()
                    })
                    .map_err(unavailable)?;
                existing
                    .map(|(hash, response)| {
                        Ok(if hash == request_hash {
                            PlaceOutcome::Replayed(stored_order::from_json(&response)?)
                        } else {
                            PlaceOutcome::KeyReused
                        })
                    })
                    .transpose()
            })
            .await
    }

    async fn get(&self, id: OrderId) -> Result<Option<Order>, StoreError> {
        self.db
            .read(move |conn| {
                let body: Option<String> = conn
                    .prepare_cached("SELECT body FROM orders WHERE id = ?1")
                    .and_then(|mut s| s.query_row(params![id.to_string()], |r| r.get(0)).optional())
                    .map_err(unavailable)?;
                body.map(|b| stored_order::from_json(&b)).transpose()
            })
            .await
    }

    async fn save_transition(
        &self,
        order: &Order,
        outbox: &[Envelope],
        processed: Option<&ProcessedEvent>,
    ) -> Result<(), StoreError> {
        let body = stored_order::to_json(order)?;
        let events = self.event_rows(outbox);
        let (order, processed, now) = (order.clone(), processed.cloned(), self.clock.now());
        self.db
            .write(move |conn, effects| {
                if let Some(mark) = &processed {
                    insert_processed(conn, mark, now)?;
                }
                let updated = conn
                    .prepare_cached(
                        "UPDATE orders SET status = ?1, version = ?2, body = ?3, updated_at = ?4
                         WHERE id = ?5 AND version = ?6",
                    )
                    .and_then(|mut s| {
                        s.execute(params![
                            order.status().as_str(),
                            order.version(),
                            body,
                            timestamp(order.updated_at()),
                            order.id().to_string(),
                            order.version().saturating_sub(1)
                        ])
                    })
                    .map_err(unavailable)?;
                if updated != 1 {
                    return Err(StoreError::Conflict);
                }
                events.write(conn, effects)
            })
            .await
    }

    async fn publish(&self, outbox: &[Envelope], processed: &ProcessedEvent) -> Result<(), StoreError> {
        let events = self.event_rows(outbox);
        let (mark, now) = (processed.clone(), self.clock.now());
        self.db
            .write(move |conn, effects| {
                insert_processed(conn, &mark, now)?;
                events.write(conn, effects)
            })
            .await
    }
}
