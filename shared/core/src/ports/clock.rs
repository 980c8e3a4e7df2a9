use chrono::{DateTime, Utc};
use uuid::Uuid;

/// Time, behind a port so that tests can stand at "25 hours later".
pub trait Clock: Send + Sync {
    fn now(&self) -> DateTime<Utc>;
}

#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }
}

/// Waiting, which only a host's runtime can do (tokio natively, wasi:clocks
/// in a component): what lets the core bound a call by a deadline.
#[async_trait::async_trait]
pub trait Timer: Send + Sync {
    async fn sleep(&self, duration: std::time::Duration);
}

/// A timer that never fires: deadlines are not enforced (a host without a
/// runtime timer; its own limits, such as Lambda's timeout, still apply).
#[derive(Debug, Default, Clone, Copy)]
pub struct NoDeadlines;

#[async_trait::async_trait]
impl Timer for NoDeadlines {
    async fn sleep(&self, _duration: std::time::Duration) {
        futures::future::pending::<()>().await;
    }
}

/// Runs `future`, or gives up after `limit` (`None`).
pub async fn within<T>(
    timer: &dyn Timer,
    limit: std::time::Duration,
    future: impl std::future::Future<Output = T>,
) -> Option<T> {
    use futures::future::{Either, select};
    let deadline = timer.sleep(limit);
    futures::pin_mut!(future, deadline);
    match select(future, deadline).await {
        Either::Left((value, _)) => Some(value),
        Either::Right(((), _)) => None,
    }
}

/// Identifiers. UUIDv7 sorts by creation time, which gives "newest first"
/// listings and time-ordered keys without a second index.
pub trait IdGenerator: Send + Sync {
    fn new_id(&self) -> Uuid;
}

#[derive(Debug, Default, Clone, Copy)]
pub struct UuidV7Ids;

impl IdGenerator for UuidV7Ids {
    fn new_id(&self) -> Uuid {
        Uuid::now_v7()
    }
}
