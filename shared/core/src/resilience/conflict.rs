//! Optimistic concurrency: what to do when a conditional write loses its race.
//!
//! No store takes locks. A write is conditioned on what its use case read (a
//! version, a state) and fails with [`StoreError::Conflict`] when another
//! writer got in between. The answer is always the same — read again, decide
//! again, write again — so the loop is written once, here, with one limit
//! for every use case on every host: [`retry_on_conflict`].
//!
//! There is no pause between rounds. Each round re-reads, which is a round
//! trip, and rounds repeat only while other writers keep winning; the core
//! has no timer either (it builds for `wasm32-wasip2` with no runtime). Past
//! the limit the caller gets [`StoreError::Contended`]: an HTTP request
//! answers 503 (try again shortly), a queue delivery fails and comes back
//! after its backoff, which is the pause.

use std::future::Future;

use crate::ports::StoreError;

/// Rounds of read, decide, conditional write before giving up. Reached only
/// under a storm of concurrent writes to one record (an order, a product, the
/// breaker's state): every round that loses does so because another writer
/// won. The largest limit any use case had before, so none gives up sooner.
pub const MAX_CONFLICT_RETRIES: u32 = 32;

/// An error that may say "a conditional write lost its race".
pub trait MaybeConflict {
    fn is_conflict(&self) -> bool;
}

impl MaybeConflict for StoreError {
    fn is_conflict(&self) -> bool {
        matches!(self, Self::Conflict)
    }
}

/// Runs `round` (read, decide, conditional write) until it does not end in a
/// conflict: its success or any other error comes back at once. After
/// [`MAX_CONFLICT_RETRIES`] conflicts in a row: [`StoreError::Contended`].
pub async fn retry_on_conflict<T, E, F, Fut>(mut round: F) -> Result<T, E>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, E>>,
    E: MaybeConflict + From<StoreError>,
{
    for _ in 0..MAX_CONFLICT_RETRIES {
        match round().await {
            Err(error) if error.is_conflict() => continue,
            done => return done,
        }
    }
    Err(StoreError::Contended { attempts: MAX_CONFLICT_RETRIES }.into())
}

#[cfg(test)]
mod tests {
    use std::cell::Cell;

    use super::*;

    #[tokio::test]
    async fn a_round_that_wins_returns_its_result() {
        let rounds = Cell::new(0);
        let result: Result<u32, StoreError> = retry_on_conflict(|| async {
            rounds.set(rounds.get() + 1);
            if rounds.get() < 3 { Err(StoreError::Conflict) } else { Ok(7) }
        })
        .await;
        assert_eq!(result, Ok(7));
        assert_eq!(rounds.get(), 3, "two lost races, then the write that won");
    }

    #[tokio::test]
    async fn gives_up_after_the_limit_with_a_contention_error() {
        let rounds = Cell::new(0);
        let result: Result<(), StoreError> = retry_on_conflict(|| async {
            rounds.set(rounds.get() + 1);
            Err(StoreError::Conflict)
        })
        .await;
        assert_eq!(result, Err(StoreError::Contended { attempts: MAX_CONFLICT_RETRIES }));
        assert_eq!(rounds.get(), MAX_CONFLICT_RETRIES);
    }

    #[tokio::test]
    async fn other_errors_pass_through_at_once() {
        for error in
            [StoreError::Unavailable("down".into()), StoreError::AlreadyProcessed, StoreError::Corrupt("x".into())]
        {
            let rounds = Cell::new(0);
            let result: Result<(), StoreError> = retry_on_conflict(|| async {
                rounds.set(rounds.get() + 1);
                Err(error.clone())
            })
            .await;
            assert_eq!(result, Err(error));
            assert_eq!(rounds.get(), 1);
        }
    }

    #[tokio::test]
    async fn works_with_a_use_case_error_that_wraps_the_store_error() {
        #[derive(Debug, PartialEq)]
        enum UseCaseError {
            NotFound,
            Store(StoreError),
        }
        impl From<StoreError> for UseCaseError {
            fn from(error: StoreError) -> Self {
                Self::Store(error)
            }
        }
        impl MaybeConflict for UseCaseError {
            fn is_conflict(&self) -> bool {
                matches!(self, Self::Store(e) if e.is_conflict())
            }
        }
        let rounds = Cell::new(0);
        let result: Result<(), UseCaseError> = retry_on_conflict(|| async {
            rounds.set(rounds.get() + 1);
            if rounds.get() == 1 { Err(StoreError::Conflict.into()) } else { Err(UseCaseError::NotFound) }
        })
        .await;
        assert_eq!(result, Err(UseCaseError::NotFound));
        let gave_up: Result<(), UseCaseError> =
            retry_on_conflict(|| async { Err(UseCaseError::Store(StoreError::Conflict)) }).await;
        assert_eq!(gave_up, Err(UseCaseError::Store(StoreError::Contended { attempts: MAX_CONFLICT_RETRIES })));
    }
}
