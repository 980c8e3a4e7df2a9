//! A delivery batch through the projector, on the real SQLite store: a round
//! of events is written at once, and duplicates within a batch, across
//! batches and in concurrent batches still count once.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use analytics::Projector;
use async_trait::async_trait;
use chrono::Utc;
use orderly_adapters::sqlite::{DbOptions, QueueSettings, SqliteStore};
use orderly_contract::fixtures::{now, order_for};
use orderly_core::domain::{CustomerId, Order, OrderId, OrderStatus};
use orderly_core::events::{Event, EventMeta, OrderChanged};
use orderly_core::messaging::{MessageOutcome, Outcome, process_batch};
use orderly_core::ports::{Applied, Counter, OrderView, ReadModelStore, ReceivedMessage, StoreError};
use uuid::Uuid;

/// The real store, counting the writes (`apply` calls) that reach it.
struct CountingStore {
    inner: SqliteStore,
    writes: AtomicUsize,
}

#[async_trait]
impl ReadModelStore for CountingStore {
    async fn order_view(&self, id: OrderId) -> Result<Option<OrderView>, StoreError> {
        self.inner.order_view(id).await
    }

    async fn apply(&self, events: &[Applied<'_>], deltas: &[(Counter, i64)]) -> Result<(), StoreError> {
        self.writes.fetch_add(1, Ordering::SeqCst);
        self.inner.apply(events, deltas).await
    }

    async fn counters(&self) -> Result<Vec<(Counter, i64)>, StoreError> {
        self.inner.counters().await
    }

    async fn customer_orders(
        &self,
        customer: &CustomerId,
        before: Option<OrderId>,
        limit: usize,
    ) -> Result<Vec<Order>, StoreError> {
        self.inner.customer_orders(customer, before, limit).await
    }
}

fn setup() -> (Projector, Arc<CountingStore>, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let inner = SqliteStore::open(&dir.path().join("db"), DbOptions::default(), QueueSettings::default()).unwrap();
    let store = Arc::new(CountingStore { inner, writes: AtomicUsize::new(0) });
    (Projector::new(store.clone()), store, dir)
}

/// `event` with id `id` as a delivered message: of its subject's FIFO group
/// when `grouped`, else as a standard queue delivers it (no group).
fn message(event: &Event, id: Uuid, grouped: bool) -> ReceivedMessage {
    let envelope = event.clone().into_envelope(EventMeta { id, source: "test", time: now(), traceparent: None });
    ReceivedMessage {
        message_id: Uuid::now_v7().to_string(),
        receipt: Uuid::now_v7().to_string(),
        group: grouped.then(|| envelope.subject.clone()),
        body: envelope.to_json(),
        receive_count: 1,
        sent_at: Utc::now(),
    }
}

fn placed(order: &Order) -> Event {
    Event::OrderPlaced(OrderChanged::new(order))
}

async fn count(store: &CountingStore, counter: Counter) -> i64 {
    store.counters().await.unwrap().into_iter().find(|(c, _)| *c == counter).map_or(0, |(_, v)| v)
}

fn all_done(outcomes: &[MessageOutcome]) -> bool {
    outcomes.iter().all(|o| o.outcome == Outcome::Done)
}

const PENDING: Counter = Counter::OrdersByStatus(OrderStatus::Pending);

fn placed_seen() -> Counter {
    Counter::Events("order.placed.v1".into())
}

#[tokio::test]
async fn a_round_of_ten_orders_is_one_write_and_counts_each_once() {
    let (projector, store, _dir) = setup();
    let orders: Vec<Order> = (0..10).map(|_| order_for("alice", &[("TEA", 1)])).collect();
    let batch: Vec<_> = orders.iter().map(|o| message(&placed(o), Uuid::now_v7(), true)).collect();
    let outcomes = process_batch(&projector, &batch, 5).await;
    assert!(all_done(&outcomes), "{outcomes:?}");
    assert_eq!(store.writes.load(Ordering::SeqCst), 1);
    assert_eq!(count(&store, PENDING).await, 10);
    assert_eq!(count(&store, placed_seen()).await, 10);
    for order in &orders {
        assert_eq!(store.order_view(order.id()).await.unwrap().map(|v| v.order).as_ref(), Some(order));
    }
}

#[tokio::test]
async fn a_redelivery_in_a_later_batch_counts_once_and_its_neighbours_go_in() {
    let (projector, store, _dir) = setup();
    let [a, b, c] = [0, 1, 2].map(|_| order_for("alice", &[("TEA", 1)]));
    let a_id = Uuid::now_v7();
    let first = [message(&placed(&a), a_id, true), message(&placed(&b), Uuid::now_v7(), true)];
    assert!(all_done(&process_batch(&projector, &first, 5).await));
    let second = [message(&placed(&a), a_id, true), message(&placed(&c), Uuid::now_v7(), true)];
    let outcomes = process_batch(&projector, &second, 5).await;
    assert!(all_done(&outcomes), "{outcomes:?}");
    assert_eq!(count(&store, PENDING).await, 3);
    assert_eq!(count(&store, placed_seen()).await, 3);
    assert_eq!(store.order_view(c.id()).await.unwrap().map(|v| v.order).as_ref(), Some(&c));
}

#[tokio::test]
async fn the_same_event_twice_in_one_batch_counts_once() {
    let (projector, store, _dir) = setup();
    let [a, b] = [0, 1].map(|_| order_for("alice", &[("TEA", 1)]));
    let a_id = Uuid::now_v7();
    // Without groups (a standard queue) both copies are in the same round.
    let batch = [
        message(&placed(&a), a_id, false),
        message(&placed(&a), a_id, false),
        message(&placed(&b), Uuid::now_v7(), false),
    ];
    let outcomes = process_batch(&projector, &batch, 5).await;
    assert!(all_done(&outcomes), "{outcomes:?}");
    assert_eq!(count(&store, PENDING).await, 2);
    assert_eq!(count(&store, placed_seen()).await, 2);
}

#[tokio::test]
async fn an_orders_later_event_follows_in_the_next_round() {
    let (projector, store, _dir) = setup();
    let [a, b] = [0, 1].map(|_| order_for("alice", &[("TEA", 1)]));
    let confirmed = a.clone().confirm_offline("Pay by bank transfer".into(), now()).unwrap();
    let batch = [
        message(&placed(&a), Uuid::now_v7(), true),
        message(&placed(&b), Uuid::now_v7(), true),
        message(&Event::OrderConfirmed(OrderChanged::new(&confirmed)), Uuid::now_v7(), true),
    ];
    let outcomes = process_batch(&projector, &batch, 5).await;
    assert!(all_done(&outcomes), "{outcomes:?}");
    assert_eq!(store.writes.load(Ordering::SeqCst), 2, "a and b together, then a's confirmation");
    assert_eq!(count(&store, PENDING).await, 1);
    assert_eq!(count(&store, Counter::OrdersByStatus(OrderStatus::Confirmed)).await, 1);
    assert_eq!(store.order_view(a.id()).await.unwrap().map(|v| v.order), Some(confirmed));
}

#[tokio::test]
async fn an_unreadable_message_fails_alone() {
    let (projector, store, _dir) = setup();
    let [a, b] = [0, 1].map(|_| order_for("alice", &[("TEA", 1)]));
    let mut broken = message(&placed(&a), Uuid::now_v7(), false);
    broken.body = "{not json".into();
    let batch = [message(&placed(&a), Uuid::now_v7(), true), broken, message(&placed(&b), Uuid::now_v7(), true)];
    let outcomes = process_batch(&projector, &batch, 5).await;
    let verdicts: Vec<bool> = outcomes.iter().map(|o| o.outcome == Outcome::Done).collect();
    assert_eq!(verdicts, [true, false, true]);
    assert_eq!(count(&store, PENDING).await, 2);
}

#[tokio::test]
async fn concurrent_batches_with_shared_events_count_each_once() {
    let (projector, store, _dir) = setup();
    let orders: Vec<Order> = (0..6).map(|_| order_for("alice", &[("TEA", 1)])).collect();
    let ids: Vec<Uuid> = orders.iter().map(|_| Uuid::now_v7()).collect();
    let batch = |picks: &[usize]| -> Vec<ReceivedMessage> {
        picks.iter().map(|&i| message(&placed(&orders[i]), ids[i], true)).collect()
    };
    let (x, y, z) = (batch(&[0, 1, 2, 3]), batch(&[3, 4, 0, 5]), batch(&[5, 1, 2]));
    let (ox, oy, oz) = tokio::join!(
        process_batch(&projector, &x, 5),
        process_batch(&projector, &y, 5),
        process_batch(&projector, &z, 5)
    );
    assert!(all_done(&ox) && all_done(&oy) && all_done(&oz), "{ox:?} {oy:?} {oz:?}");
    assert_eq!(count(&store, PENDING).await, 6);
    assert_eq!(count(&store, placed_seen()).await, 6);
}

#[tokio::test]
async fn a_redelivered_event_that_wrote_its_view_is_known_by_the_view_and_writes_nothing() {
    let (projector, store, _dir) = setup();
    let order = order_for("alice", &[("TEA", 1)]);
    let id = Uuid::now_v7();
    assert!(all_done(&process_batch(&projector, &[message(&placed(&order), id, true)], 5).await));
    let again = process_batch(&projector, &[message(&placed(&order), id, true)], 5).await;
    assert!(all_done(&again), "{again:?}");
    assert_eq!(store.writes.load(Ordering::SeqCst), 1, "the redelivery wrote nothing");
    assert_eq!(count(&store, placed_seen()).await, 1);
    assert_eq!(store.order_view(order.id()).await.unwrap().unwrap().events, [id]);
}
