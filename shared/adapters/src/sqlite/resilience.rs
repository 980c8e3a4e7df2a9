use async_trait::async_trait;
use chrono::{DateTime, Utc};
use rusqlite::{OptionalExtension, params};

use super::db::unavailable;
use super::{SqliteStore, from_json, millis, to_json};
use orderly_core::ports::{BreakerStore, RateLimiter, StoreError};
use orderly_core::resilience::breaker::BreakerState;
use orderly_core::resilience::rate_limit::{self, Bucket, BucketState, Decision};

#[async_trait]
impl BreakerStore for SqliteStore {
    async fn load(&self, name: &str) -> Result<(BreakerState, u64), StoreError> {
        let name = name.to_owned();
        self.db
            .read(move |conn| {
                let row: Option<(String, i64)> = conn
                    .prepare_cached("SELECT state, version FROM breakers WHERE name = ?1")
                    .and_then(|mut s| s.query_row(params![name], |r| Ok((r.get(0)?, r.get(1)?))).optional())
                    .map_err(unavailable)?;
                match row {
                    None => Ok((BreakerState::default(), 0)),
                    Some((state, version)) => Ok((from_json(&state)?, version as u64)),
                }
            })
            .await
    }

    async fn save(&self, name: &str, state: &BreakerState, expected: u64) -> Result<(), StoreError> {
        let (name, state) = (name.to_owned(), to_json(state)?);
        self.db
            .write(move |conn, _| {
                let written = conn
                    .prepare_cached(
                        "INSERT INTO breakers (name, state, version) VALUES (?1, ?2, ?3 + 1)
                         ON CONFLICT (name) DO UPDATE SET state = excluded.state, version = excluded.version
                         WHERE breakers.version = ?3",
                    )
                    .and_then(|mut s| s.execute(params![name, state, expected as i64]))
                    .map_err(unavailable)?;
                // An insert when a row exists at another version writes nothing.
                if written == 1 { Ok(()) } else { Err(StoreError::Conflict) }
            })
            .await
    }
}

#[async_trait]
impl RateLimiter for SqliteStore {
    async fn take(&self, key: &str, bucket: &Bucket, now: DateTime<Utc>) -> Result<Decision, StoreError> {
        let (key, bucket, now) = (key.to_owned(), *bucket, millis(now));
        self.db
            .write(move |conn, _| {
                let stored: Option<(f64, i64)> = conn
                    .prepare_cached("SELECT tokens, updated_at FROM rate_buckets WHERE key = ?1")
                    .and_then(|mut s| s.query_row(params![key], |r| Ok((r.get(0)?, r.get(1)?))).optional())
                    .map_err(unavailable)?;
                let state = stored.map(|(tokens, updated_at_ms)| BucketState { tokens, updated_at_ms });
                let (next, decision) = rate_limit::take(state, &bucket, now);
                conn.prepare_cached(
                    "INSERT INTO rate_buckets (key, tokens, updated_at) VALUES (?1, ?2, ?3)
                     ON CONFLICT (key) DO UPDATE SET tokens = excluded.tokens, updated_at = excluded.updated_at",
                )
                .and_then(|mut s| s.execute(params![key, next.tokens, next.updated_at_ms]))
                .map_err(unavailable)?;
                Ok(decision)
            })
            .await
    }
}
