//! A delivery batch through the projector, on the real SQLite store: a round
//! of events is written at once, and duplicates within a batch, across
//! batches and in concurrent batches still count once. A big batch from a
//! standard queue — out of order, with copies, more than one write's worth —
//! ends in the same read models as every event delivered alone and in order.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use analytics::Projector;
use async_trait::async_trait;
use chrono::Utc;
use orderly_adapters::sqlite::{DbOptions, QueueSettings, SqliteStore};
use orderly_contract::fixtures::{now, order_for};
use orderly_core::domain::{CustomerId, Order, OrderId, OrderStatus, Sku};
use orderly_core::events::{Event, EventMeta, InventoryReserved, OrderChanged, ReservedLine};
use orderly_core::messaging::{MessageOutcome, Outcome, process_batch};
use orderly_core::ports::{Applied, Counter, MAX_APPLY_ITEMS, OrderView, ReadModelStore, ReceivedMessage, StoreError};
use uuid::Uuid;

/// The real store, counting the writes (`apply` calls) that reach it, the
/// events of each, and the items of the largest (a view or a mark per
/// event, one per counter). A `race` set is a delivery another projector
/// applies just before the next write of several events reaches the store.
struct CountingStore {
    inner: Arc<SqliteStore>,
    writes: AtomicUsize,
    largest: AtomicUsize,
    sizes: Mutex<Vec<usize>>,
    race: Mutex<Option<ReceivedMessage>>,
}

#[async_trait]
impl ReadModelStore for CountingStore {
    async fn order_view(&self, id: OrderId) -> Result<Option<OrderView>, StoreError> {
        self.inner.order_view(id).await
    }

    async fn apply(&self, events: &[Applied<'_>], deltas: &[(Counter, i64)]) -> Result<(), StoreError> {
        self.writes.fetch_add(1, Ordering::SeqCst);
        self.sizes.lock().unwrap().push(events.len());
        let race = if events.len() > 1 { self.race.lock().unwrap().take() } else { None };
        if let Some(race) = race {
            assert!(all_done(&process_batch(&Projector::new(self.inner.clone()), &[race], 5).await));
        }
        let counters: BTreeSet<&Counter> = deltas.iter().map(|(c, _)| c).collect();
        self.largest.fetch_max(events.len() + counters.len(), Ordering::SeqCst);
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
    let store = Arc::new(CountingStore {
        inner: Arc::new(inner),
        writes: AtomicUsize::new(0),
        largest: AtomicUsize::new(0),
        sizes: Mutex::new(Vec::new()),
        race: Mutex::new(None),
    });
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

/// Order `n`'s events, as the saga emits them: placed, reserved, then
/// confirmed; every fifth is cancelled after, every seventh rejected instead.
fn saga(n: usize) -> (OrderId, Vec<(Uuid, Event)>) {
    let (sku, quantity) = (["TEA", "COFFEE", "COCOA", "MATE", "CHAI"][n % 5], 1 + n as u32 % 3);
    let placed = order_for("alice", &[(sku, quantity)]);
    let reserved = Event::InventoryReserved(InventoryReserved {
        order_id: placed.id(),
        lines: vec![ReservedLine { sku: Sku::parse(sku).unwrap(), quantity }],
    });
    let mut events = vec![Event::OrderPlaced(OrderChanged::new(&placed))];
    if n.is_multiple_of(7) {
        events.push(Event::OrderRejected(OrderChanged::new(&placed.reject(now()).unwrap())));
    } else {
        events.push(reserved);
        let confirmed = placed.confirm_offline("Pay by bank transfer".into(), now()).unwrap();
        events.push(Event::OrderConfirmed(OrderChanged::new(&confirmed)));
        if n.is_multiple_of(5) {
            events.push(Event::OrderCancelled(OrderChanged::new(&confirmed.cancel(now()).unwrap())));
        }
    }
    (placed.id(), events.into_iter().map(|e| (Uuid::now_v7(), e)).collect())
}

/// Everything the read models hold: the counters, each view and its events.
async fn read_models(store: &CountingStore, orders: &[OrderId]) -> (Vec<(Counter, i64)>, Vec<(Order, BTreeSet<Uuid>)>) {
    let mut counters = store.counters().await.unwrap();
    counters.retain(|(_, v)| *v != 0);
    counters.sort();
    let mut views = Vec::new();
    for id in orders {
        let view = store.order_view(*id).await.unwrap().expect("every order has its view");
        views.push((view.order, view.events.into_iter().collect()));
    }
    (counters, views)
}

#[tokio::test]
async fn a_big_batch_out_of_order_and_with_copies_ends_like_each_event_alone_in_order() {
    let (orders, sagas): (Vec<OrderId>, Vec<Vec<(Uuid, Event)>>) = (0..60).map(saga).unzip();

    // Each event alone, in the saga's order, from a FIFO queue.
    let (projector, in_order, _dir) = setup();
    for (id, event) in sagas.iter().flatten() {
        assert!(all_done(&process_batch(&projector, &[message(event, *id, true)], 5).await));
    }

    // All of them in one batch from a standard queue: every order's events
    // reversed, orders interleaved, every third event twice.
    let mut shuffled: Vec<(usize, &(Uuid, Event))> = sagas.iter().flat_map(|s| s.iter().rev().enumerate()).collect();
    shuffled.sort_by_key(|(step, (id, _))| (*step, std::cmp::Reverse(id.as_u128() % 97)));
    let mut batch: Vec<ReceivedMessage> = Vec::new();
    for (k, (_, (id, event))) in shuffled.iter().enumerate() {
        batch.push(message(event, *id, false));
        if k.is_multiple_of(3) {
            batch.push(message(event, *id, false));
        }
    }
    let events = sagas.iter().flatten().count();
    assert!(events + 10 > MAX_APPLY_ITEMS, "more than one write's worth: {events} events");
    let (projector, batched, _dir2) = setup();
    let outcomes = process_batch(&projector, &batch, 5).await;
    assert!(all_done(&outcomes), "{outcomes:?}");
    assert_eq!(read_models(&batched, &orders).await, read_models(&in_order, &orders).await);
    let writes = batched.writes.load(Ordering::SeqCst);
    assert!((2..=3).contains(&writes), "{writes} writes: split at the item limit, nothing one at a time");
    assert!(batched.largest.load(Ordering::SeqCst) <= MAX_APPLY_ITEMS);

    // The whole batch again (a redelivery): the marks refuse it, and one at
    // a time every copy is known and dropped.
    assert!(all_done(&process_batch(&projector, &batch, 5).await));
    assert_eq!(read_models(&batched, &orders).await, read_models(&in_order, &orders).await);
}

#[tokio::test]
async fn an_orders_events_in_one_standard_batch_write_its_view_once() {
    let (projector, store, _dir) = setup();
    let order = order_for("alice", &[("TEA", 2)]);
    let confirmed = order.confirm_offline("Pay by bank transfer".into(), now()).unwrap();
    let (placed_id, confirmed_id) = (Uuid::now_v7(), Uuid::now_v7());
    let other = order_for("bob", &[("TEA", 1)]);
    let batch = [
        message(&Event::OrderConfirmed(OrderChanged::new(&confirmed)), confirmed_id, false),
        message(&placed(&other), Uuid::now_v7(), false),
        message(&placed(&order), placed_id, false),
    ];
    let outcomes = process_batch(&projector, &batch, 5).await;
    assert!(all_done(&outcomes), "{outcomes:?}");
    assert_eq!(store.writes.load(Ordering::SeqCst), 1, "both orders, all three events, in one write");
    let view = store.order_view(order.id()).await.unwrap().unwrap();
    assert_eq!(view.order, confirmed);
    assert_eq!(view.events.into_iter().collect::<BTreeSet<_>>(), BTreeSet::from([placed_id, confirmed_id]));
    assert_eq!(count(&store, PENDING).await, 1, "bob's; alice's moved on to confirmed");
    assert_eq!(count(&store, Counter::OrdersByStatus(OrderStatus::Confirmed)).await, 1);
    assert_eq!(count(&store, placed_seen()).await, 2);
}

#[tokio::test]
async fn a_batch_that_loses_a_race_for_a_view_is_planned_again_not_applied_one_by_one() {
    let (projector, store, _dir) = setup();
    let [a, b, c] = [0, 1, 2].map(|_| order_for("alice", &[("TEA", 1)]));
    let confirmed = Event::OrderConfirmed(OrderChanged::new(&a.confirm_offline("Pay".into(), now()).unwrap()));
    let confirmed_id = Uuid::now_v7();
    assert!(all_done(&process_batch(&projector, &[message(&placed(&a), Uuid::now_v7(), false)], 5).await));
    // Another delivery of a's confirmation moves a's view between this
    // batch's read and its write.
    *store.race.lock().unwrap() = Some(message(&confirmed, confirmed_id, false));
    let batch = [
        message(&confirmed, confirmed_id, false),
        message(&placed(&b), Uuid::now_v7(), false),
        message(&placed(&c), Uuid::now_v7(), false),
    ];
    let outcomes = process_batch(&projector, &batch, 5).await;
    assert!(all_done(&outcomes), "{outcomes:?}");
    assert_eq!(*store.sizes.lock().unwrap(), [1, 3, 2], "a alone; the batch, refused; b and c planned again, together");
    assert_eq!(count(&store, PENDING).await, 2);
    assert_eq!(count(&store, Counter::OrdersByStatus(OrderStatus::Confirmed)).await, 1);
    assert_eq!(count(&store, Counter::Events("order.confirmed.v1".into())).await, 1);
}

/// A standard queue delivers out of order: an event older than the view is
/// applied alone as a mark. When its acknowledgement is lost it comes back,
/// here in one batch with a newer event of the same order, whose view
/// write must not count it a second time.
#[tokio::test]
async fn an_old_event_counted_once_is_not_counted_again_when_it_returns_beside_a_newer_one() {
    let (projector, store, _dir) = setup();
    let placed_order = order_for("alice", &[("TEA", 1)]);
    let confirmed = placed_order.confirm_offline("Pay by transfer".into(), now()).unwrap();
    let paid = confirmed.record_offline_payment(now()).unwrap();
    let shipped = paid.ship(now()).unwrap();
    let confirmed_event = Event::OrderConfirmed(OrderChanged::new(&confirmed));
    let confirmed_id = Uuid::now_v7();
    for (event, id) in [
        (placed(&placed_order), Uuid::now_v7()),
        (Event::OrderPaid(OrderChanged::new(&paid)), Uuid::now_v7()),
        (confirmed_event.clone(), confirmed_id),
    ] {
        assert!(all_done(&process_batch(&projector, &[message(&event, id, false)], 5).await));
    }
    let confirmed_seen = Counter::Events("order.confirmed.v1".into());
    assert_eq!(count(&store, confirmed_seen.clone()).await, 1);

    let again = [
        message(&confirmed_event, confirmed_id, false),
        message(&Event::OrderShipped(OrderChanged::new(&shipped)), Uuid::now_v7(), false),
    ];
    let outcomes = process_batch(&projector, &again, 5).await;
    assert!(all_done(&outcomes), "{outcomes:?}");
    assert_eq!(count(&store, confirmed_seen).await, 1, "the redelivery changed nothing");
    assert_eq!(count(&store, Counter::Events("order.shipped.v1".into())).await, 1);
    assert_eq!(count(&store, Counter::OrdersByStatus(OrderStatus::Shipped)).await, 1);
    assert_eq!(count(&store, Counter::OrdersByStatus(OrderStatus::Confirmed)).await, 0);
}
