//! The port contract suites against the SQLite adapter.

use orderly_adapters::sqlite::{DbOptions, QueueSettings, SqliteStore};
use orderly_contract::MAX_RECEIVES;

/// A store on a fresh database; the directory goes when the test ends.
struct Fresh {
    store: SqliteStore,
    _dir: tempfile::TempDir,
}

impl std::ops::Deref for Fresh {
    type Target = SqliteStore;
    fn deref(&self) -> &SqliteStore {
        &self.store
    }
}

fn fresh() -> Fresh {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = SqliteStore::open(
        &dir.path().join("contract.db"),
        DbOptions::default(),
        QueueSettings { max_receives: MAX_RECEIVES },
    )
    .expect("open store");
    Fresh { store, _dir: dir }
}

mod order_store {
    orderly_contract::order_store_contract!(super::fresh());
}

mod inventory_store {
    orderly_contract::inventory_store_contract!(super::fresh());
}

mod notification_log {
    orderly_contract::notification_log_contract!(super::fresh());
}

mod read_model {
    orderly_contract::read_model_contract!(super::fresh());
}

mod queues {
    orderly_contract::queue_contract!(super::fresh());
}

mod breaker_store {
    orderly_contract::breaker_store_contract!(super::fresh());
}

mod rate_limiter {
    orderly_contract::rate_limiter_contract!(super::fresh());
}

/// The runner's consumers acknowledge a batch with their next receive, in
/// one write (`SqliteStore::ack_then_receive`).
mod ack_then_receive {
    use std::time::Duration;

    use orderly_core::ports::{MessageQueue, QueueAdmin};

    const VISIBILITY: Duration = Duration::from_secs(30);

    #[tokio::test]
    async fn acknowledging_a_groups_head_hands_out_its_next_message_in_the_same_receive() {
        let store = super::fresh();
        for body in ["first", "second"] {
            store.send_raw("inventory", Some("order-1"), body).await.unwrap();
        }
        let first = store.receive("inventory", 10, VISIBILITY).await.unwrap();
        assert_eq!(first.iter().map(|m| m.body.as_str()).collect::<Vec<_>>(), ["first"], "one per group");
        let next = store.ack_then_receive("inventory", vec![first[0].receipt.clone()], 10, VISIBILITY).await.unwrap();
        assert_eq!(next.iter().map(|m| m.body.as_str()).collect::<Vec<_>>(), ["second"]);
        let stats = store.stats("inventory").await.unwrap();
        assert_eq!((stats.depth, stats.in_flight), (1, 1), "the first is gone, the second in flight");
    }

    #[tokio::test]
    async fn a_stale_receipt_acknowledges_nothing() {
        let store = super::fresh();
        store.send_raw("inventory", Some("order-1"), "only").await.unwrap();
        let received = store.receive("inventory", 10, VISIBILITY).await.unwrap();
        let stale = format!("{}.not-this-delivery", received[0].receipt.split_once('.').unwrap().0);
        let again = store.ack_then_receive("inventory", vec![stale], 10, VISIBILITY).await.unwrap();
        assert!(again.is_empty(), "the message is still in flight");
        assert_eq!(store.stats("inventory").await.unwrap().depth, 1);
    }
}

/// The runner's queue gives a refused delivery's receive back
/// (`MessageQueue::defer`): however long a dependency's breaker refuses,
/// the message waits instead of reaching the dead letters unattempted.
mod deferred_deliveries {
    use std::time::Duration;

    use orderly_core::ports::{MessageQueue, QueueAdmin};

    #[tokio::test]
    async fn refusals_beyond_the_receives_allowed_do_not_dead_letter() {
        let store = super::fresh();
        store.send_raw("notification", Some("order-1"), "confirmed").await.unwrap();
        for _ in 0..super::MAX_RECEIVES * 2 {
            let received = store.receive("notification", 10, Duration::from_secs(30)).await.unwrap();
            assert_eq!(received.len(), 1, "still queued, not dead-lettered");
            assert_eq!(received[0].receive_count, 1, "no refusal counted");
            store.defer("notification", &received[0].receipt, Duration::ZERO, "circuit open").await.unwrap();
        }
        assert!(store.dead_letters("notification", 10).await.unwrap().is_empty());
        // An attempt that fails still counts.
        let received = store.receive("notification", 10, Duration::from_secs(30)).await.unwrap();
        store.retry_later("notification", &received[0].receipt, Duration::ZERO, "provider failed").await.unwrap();
        let again = store.receive("notification", 10, Duration::from_secs(30)).await.unwrap();
        assert_eq!(again[0].receive_count, 2);
    }
}

/// The runner's housekeeping (`SqliteStore::purge_expired`), in jobs of at
/// most `PURGE_CHUNK` rows.
mod housekeeping {
    use std::sync::Arc;

    use chrono::{DateTime, Duration, Utc};
    use orderly_adapters::sqlite::PURGE_CHUNK;
    use orderly_contract::fixtures::{mark, now, order_for};
    use orderly_core::ports::{Clock, IdempotencyClaim, OrderStore, ProcessedEvents};

    struct At(DateTime<Utc>);

    impl Clock for At {
        fn now(&self) -> DateTime<Utc> {
            self.0
        }
    }

    fn claim(key: String, expires_at: DateTime<Utc>) -> IdempotencyClaim {
        IdempotencyClaim {
            customer_id: orderly_core::domain::CustomerId::parse("alice").unwrap(),
            key,
            request_hash: "hash".into(),
            expires_at,
        }
    }

    #[tokio::test]
    async fn expired_keys_and_old_marks_are_all_removed_past_one_chunk_and_live_ones_stay() {
        let store = super::fresh();
        let expired = PURGE_CHUNK * 2 + 7;
        let placed = (0..expired).map(|i| {
            let order = order_for("alice", &[("A", 1)]);
            let claim = claim(format!("old-{i}"), now() - Duration::hours(1));
            let store = &store;
            async move { store.place(&order, Some(&claim), &[], now()).await.unwrap() }
        });
        futures::future::join_all(placed).await;
        let live = claim("live".into(), now() + Duration::hours(23));
        store.place(&order_for("alice", &[("A", 1)]), Some(&live), &[], now()).await.unwrap();
        let past = store.clone().with_clock(Arc::new(At(now() - Duration::days(15))));
        let old_marks = futures::future::join_all((0..PURGE_CHUNK + 1).map(|_| {
            let past = &past;
            async move { past.mark_processed(&mark("inventory")).await.unwrap() }
        }));
        old_marks.await;
        let fresh_mark = mark("inventory");
        store.mark_processed(&fresh_mark).await.unwrap();

        let removed = store.purge_expired(Duration::days(14)).await.unwrap();
        assert_eq!(removed, expired + PURGE_CHUNK + 1);
        assert!(store.is_processed(&fresh_mark).await.unwrap(), "a mark within the 14 days stays");
        let again = store.place(&order_for("alice", &[("A", 1)]), Some(&live), &[], now()).await.unwrap();
        assert!(matches!(again, orderly_core::ports::PlaceOutcome::Replayed(_)), "a live key stays: {again:?}");
        assert_eq!(store.purge_expired(Duration::days(14)).await.unwrap(), 0);
    }
}

/// The runner's store writes events straight into their subscribers' queues
/// in the writing transaction (`SqliteStore::publishing_at_commit`): what
/// the outbox cases above prove through the relay, proven here through the
/// queues.
mod publishing_at_commit {
    use std::time::Duration;

    use orderly_contract::fixtures::{mark, now, order_for, placed_event};
    use orderly_core::events::Envelope;
    use orderly_core::events::routing::subscribers;
    use orderly_core::ports::{MessageQueue, OrderStore, Outbox, StoreError};

    fn fresh() -> super::Fresh {
        let super::Fresh { store, _dir } = super::fresh();
        super::Fresh { store: store.publishing_at_commit(), _dir }
    }

    /// What each of `event`'s subscribers' queues holds, as event ids.
    async fn queued_for(store: &super::Fresh, event: &Envelope) -> Vec<Vec<String>> {
        let mut held = Vec::new();
        for consumer in subscribers(&event.event_type) {
            let messages = store.receive(consumer.queue(), 10, Duration::from_secs(30)).await.unwrap();
            let ids = messages.iter().map(|m| Envelope::from_json(&m.body).unwrap().id.to_string()).collect();
            held.push(ids);
        }
        held
    }

    #[tokio::test]
    async fn a_writes_events_are_in_every_subscribers_queue_when_it_returns_and_the_outbox_stays_empty() {
        let store = fresh();
        let order = order_for("alice", &[("A", 1)]);
        let event = placed_event(&order);
        store.place(&order, None, std::slice::from_ref(&event), now()).await.unwrap();
        let held = queued_for(&store, &event).await;
        assert!(held.len() >= 2, "order.placed fans out to inventory and analytics: {held:?}");
        assert!(held.iter().all(|ids| ids == &[event.id.to_string()]), "{held:?}");
        assert!(store.pending(None, 10).await.unwrap().is_empty());
    }

    #[tokio::test]
    async fn a_rejected_write_enqueues_nothing() {
        let store = fresh();
        let order = order_for("alice", &[("A", 1)]);
        store.place(&order, None, &[], now()).await.unwrap();
        let stale = order.confirm_offline("Pay by bank transfer".into(), now()).unwrap();
        store.save_transition(&stale, &[], None).await.unwrap();
        let event = placed_event(&stale);
        assert_eq!(store.save_transition(&stale, std::slice::from_ref(&event), None).await, Err(StoreError::Conflict));
        assert!(queued_for(&store, &event).await.iter().all(Vec::is_empty));
    }

    #[tokio::test]
    async fn a_redelivered_events_second_publish_enqueues_nothing_more() {
        let store = fresh();
        let order = order_for("alice", &[("A", 1)]);
        let (event, seen) = (placed_event(&order), mark("order-intake"));
        store.publish(std::slice::from_ref(&event), &seen).await.unwrap();
        assert_eq!(store.publish(&[placed_event(&order)], &seen).await, Err(StoreError::AlreadyProcessed));
        let held = queued_for(&store, &event).await;
        assert!(held.iter().all(|ids| ids == &[event.id.to_string()]), "{held:?}");
    }
}
