//! The runner's background loops: one consumer per queue, the outbox relay,
//! and housekeeping. Each sleeps until woken (a commit that concerns it, the
//! earliest pending retry, or a long idle timeout) and stops on shutdown
//! after finishing the batch in hand; unacknowledged messages stay queued.

use std::sync::Arc;
use std::time::Duration;

use orderly_adapters::sqlite::SqliteStore;
use orderly_core::messaging::{Backoff, EventHandler, Outcome, Relay, process_batch, schedule_retry};
use orderly_core::ports::MessageQueue;
use tokio::sync::Notify;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use orderly_core::settings::QueueSettings;

/// Waits for `waker`, `deadline` or shutdown; returns false on shutdown.
async fn idle(waker: &Notify, deadline: Instant, shutdown: &CancellationToken) -> bool {
    tokio::select! {
        _ = waker.notified() => true,
        _ = tokio::time::sleep_until(deadline) => true,
        _ = shutdown.cancelled() => false,
    }
}

/// Runs the loop `start` makes until it ends, starting it again when it
/// panics. No panic is known to be reachable from input; this is the
/// backstop that keeps one bug in a handler from silently stopping its
/// queue for the rest of the process. The batch in hand when it panicked
/// was not acknowledged: it comes back after its visibility timeout, and a
/// message that panics every time is dead-lettered after its receives.
pub async fn supervised<F, Fut>(name: &'static str, shutdown: CancellationToken, start: F)
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    loop {
        match tokio::spawn(start()).await {
            Err(error) if error.is_panic() && !shutdown.is_cancelled() => {
                tracing::error!(task = name, "background task panicked; starting it again in 1 s");
                metrics::counter!("orderly_task_restarts_total", "task" => name).increment(1);
                tokio::select! {
                    _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                    _ = shutdown.cancelled() => return,
                }
            }
            _ => return,
        }
    }
}

pub async fn consume(
    store: SqliteStore,
    handler: Arc<dyn EventHandler>,
    config: QueueSettings,
    shutdown: CancellationToken,
) {
    let queue = handler.consumer().queue();
    let waker = store.queue_waker(queue);
    let backoff = Backoff { base: config.retry_base, max: config.retry_max };
    // The earliest moment a message we failed becomes visible again.
    let mut next_retry: Option<Instant> = None;
    // Handled messages, acknowledged with the next receive (one write).
    let mut done: Vec<String> = Vec::new();
    tracing::info!(consumer = queue, "consumer started");
    while !shutdown.is_cancelled() {
        if let Some(pause) = handler.paused_for().await {
            acknowledge(&store, queue, &mut done).await;
            // Downstream is known to be down: leave the messages queued.
            tracing::debug!(consumer = queue, pause_ms = pause.as_millis() as u64, "consumer paused");
            if !idle(&Notify::new(), Instant::now() + pause.min(config.idle_poll * 5), &shutdown).await {
                break;
            }
            continue;
        }
        let acks = std::mem::take(&mut done);
        let batch = match store
            .ack_then_receive(queue, acks, config.batch_size_for(handler.consumer()), config.visibility_timeout)
            .await
        {
            Ok(batch) => batch,
            Err(error) => {
                tracing::warn!(consumer = queue, %error, "receive failed (with its acknowledgements: those messages will be redelivered); backing off");
                if !idle(&waker, Instant::now() + Duration::from_secs(1), &shutdown).await {
                    break;
                }
                continue;
            }
        };
        if batch.is_empty() {
            let idle_until = Instant::now() + config.idle_poll;
            let deadline = next_retry.filter(|r| *r > Instant::now()).map_or(idle_until, |r| r.min(idle_until));
            next_retry = None;
            if !idle(&waker, deadline, &shutdown).await {
                break;
            }
            continue;
        }
        let outcomes = process_batch(handler.as_ref(), &batch, config.max_receives).await;
        for (outcome, message) in outcomes.iter().zip(&batch) {
            match &outcome.outcome {
                Outcome::Done | Outcome::Ignored { .. } => done.push(outcome.receipt.clone()),
                Outcome::Failed { error, retry_after } => {
                    let delay = schedule_retry(&store, queue, message, error, *retry_after, backoff).await;
                    let at = Instant::now() + delay;
                    next_retry = Some(next_retry.map_or(at, |r| r.min(at)));
                }
                // This queue hands out one message per group at a time, so
                // none is behind a failure; were one, it would come back
                // after its visibility timeout, unacknowledged.
                Outcome::HeldBack => {}
            }
        }
    }
    acknowledge(&store, queue, &mut done).await;
    tracing::info!(consumer = queue, "consumer stopped");
}

/// Acknowledges `done` on its own (before a pause, at shutdown).
async fn acknowledge(store: &SqliteStore, queue: &str, done: &mut Vec<String>) {
    if done.is_empty() {
        return;
    }
    if let Err(error) = store.ack(queue, &std::mem::take(done)).await {
        tracing::warn!(consumer = queue, %error, "acknowledge failed; those messages will be redelivered");
    }
}

pub async fn relay(store: SqliteStore, shutdown: CancellationToken) {
    let mut relay = Relay::new(Arc::new(store.clone()), Arc::new(store.clone()));
    let waker = store.outbox_waker();
    while !shutdown.is_cancelled() {
        match relay.relay_once(512).await {
            Ok(n) if n > 0 => continue,
            Ok(_) => {}
            Err(error) => tracing::warn!(%error, "relay failed; the events stay in the outbox"),
        }
        if !idle(&waker, Instant::now() + Duration::from_secs(1), &shutdown).await {
            break;
        }
    }
}

/// Drops idempotency keys after their 24 h and processed marks after 14 days.
pub async fn housekeeping(store: SqliteStore, shutdown: CancellationToken) {
    let mut every = tokio::time::interval(Duration::from_secs(600));
    loop {
        tokio::select! {
            _ = every.tick() => {}
            _ = shutdown.cancelled() => return,
        }
        match store.purge_expired(chrono::Duration::days(14)).await {
            Ok(0) => {}
            Ok(removed) => tracing::info!(removed, "expired idempotency keys and processed marks removed"),
            Err(error) => tracing::warn!(%error, "housekeeping failed"),
        }
    }
}

#[cfg(test)]
mod supervision_tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    #[tokio::test]
    async fn a_task_that_panics_is_started_again_and_one_that_ends_is_not() {
        let runs = Arc::new(AtomicUsize::new(0));
        let counted = runs.clone();
        let supervising = supervised("test", CancellationToken::new(), move || {
            let runs = counted.clone();
            async move {
                if runs.fetch_add(1, Ordering::SeqCst) == 0 {
                    panic!("a bug in the first run");
                }
            }
        });
        tokio::time::timeout(Duration::from_secs(30), supervising).await.expect("ends once a run ends");
        assert_eq!(runs.load(Ordering::SeqCst), 2);
    }
}
