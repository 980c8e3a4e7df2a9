//! `ReadModelStore`.

use super::fixtures::*;
use futures::future::join_all;
use orderly_core::domain::{Order, OrderStatus};
use orderly_core::ports::{Applied, Counter, MAX_APPLY_ITEMS, ProcessedEvent, ReadModelStore, StoreError};

/// `processed`'s part of an apply: its view (kept with just its own id), or
/// its mark.
fn applied<'a>(view: Option<&'a Order>, expected_version: Option<u32>, processed: &'a ProcessedEvent) -> Applied<'a> {
    Applied { view, expected_version, view_events: std::slice::from_ref(&processed.event_id), processed }
}

fn count(counters: &[(Counter, i64)], counter: &Counter) -> i64 {
    counters.iter().find(|(c, _)| c == counter).map_or(0, |(_, v)| *v)
}

pub async fn writes_a_view_and_counters_together<S: ReadModelStore>(store: &S) {
    let order = order_for("alice", &[("A", 1)]);
    let pending = Counter::OrdersByStatus(OrderStatus::Pending);
    store.apply(&[applied(Some(&order), None, &mark("analytics"))], &[(pending.clone(), 1)]).await.unwrap();
    assert_eq!(store.order_view(order.id()).await.unwrap().map(|v| v.order), Some(order.clone()));
    let confirmed = order.confirm_offline("Pay by bank transfer".into(), now()).unwrap();
    let deltas = [(pending.clone(), -1), (Counter::OrdersByStatus(OrderStatus::Confirmed), 1)];
    store.apply(&[applied(Some(&confirmed), Some(order.version()), &mark("analytics"))], &deltas).await.unwrap();
    let counters = store.counters().await.unwrap();
    assert!(counters.contains(&(pending, 0)));
    assert!(counters.contains(&(Counter::OrdersByStatus(OrderStatus::Confirmed), 1)));
}

pub async fn a_stale_view_version_is_a_conflict<S: ReadModelStore>(store: &S) {
    let order = order_for("alice", &[("A", 1)]);
    store.apply(&[applied(Some(&order), None, &mark("analytics"))], &[]).await.unwrap();
    let delta = [(Counter::Events("x".into()), 1)];
    assert_eq!(
        store.apply(&[applied(Some(&order), None, &mark("analytics"))], &delta).await,
        Err(StoreError::Conflict)
    );
    let confirmed = order.confirm_offline("Pay by bank transfer".into(), now()).unwrap();
    assert_eq!(
        store.apply(&[applied(Some(&confirmed), Some(7), &mark("analytics"))], &delta).await,
        Err(StoreError::Conflict)
    );
    assert!(
        !store.counters().await.unwrap().iter().any(|(c, _)| *c == Counter::Events("x".into())),
        "counters roll back too"
    );
}

pub async fn a_processed_event_applies_once<S: ReadModelStore>(store: &S) {
    let seen = mark("analytics");
    let delta = [(Counter::Events("order.placed.v1".into()), 1)];
    store.apply(&[applied(None, None, &seen)], &delta).await.unwrap();
    assert_eq!(store.apply(&[applied(None, None, &seen)], &delta).await, Err(StoreError::AlreadyProcessed));
    assert_eq!(store.counters().await.unwrap(), vec![(Counter::Events("order.placed.v1".into()), 1)]);
}

pub async fn lists_a_customers_orders_newest_first<S: ReadModelStore>(store: &S) {
    let mut alices = Vec::new();
    for _ in 0..3 {
        let order = order_for("alice", &[("A", 1)]);
        store.apply(&[applied(Some(&order), None, &mark("analytics"))], &[]).await.unwrap();
        alices.push(order.id());
    }
    let bobs = order_for("bob", &[("A", 1)]);
    store.apply(&[applied(Some(&bobs), None, &mark("analytics"))], &[]).await.unwrap();
    let page: Vec<_> =
        store.customer_orders(&customer("alice"), None, 2).await.unwrap().into_iter().map(|o| o.id()).collect();
    assert_eq!(page, [alices[2], alices[1]]);
    let rest: Vec<_> = store
        .customer_orders(&customer("alice"), Some(alices[1]), 2)
        .await
        .unwrap()
        .into_iter()
        .map(|o| o.id())
        .collect();
    assert_eq!(rest, [alices[0]]);
}

pub async fn several_events_apply_in_one_write<S: ReadModelStore>(store: &S) {
    let (alices, bobs) = (order_for("alice", &[("A", 1)]), order_for("bob", &[("A", 1)]));
    let (a, b, seen) = (mark("analytics"), mark("analytics"), mark("analytics"));
    let pending = Counter::OrdersByStatus(OrderStatus::Pending);
    let events = [applied(Some(&alices), None, &a), applied(Some(&bobs), None, &b), applied(None, None, &seen)];
    // The deltas come summed or not: the store adds them either way.
    let deltas = [(pending.clone(), 1), (pending.clone(), 1), (Counter::Events("x".into()), 3)];
    store.apply(&events, &deltas).await.unwrap();
    assert_eq!(store.order_view(alices.id()).await.unwrap().map(|v| v.order), Some(alices.clone()));
    assert_eq!(store.order_view(bobs.id()).await.unwrap().map(|v| v.order), Some(bobs.clone()));
    let counters = store.counters().await.unwrap();
    assert_eq!(count(&counters, &pending), 2);
    assert_eq!(count(&counters, &Counter::Events("x".into())), 3);
    // Each event is recorded: in its view, or by its mark.
    assert_eq!(store.order_view(alices.id()).await.unwrap().unwrap().events, [a.event_id]);
    assert_eq!(store.order_view(bobs.id()).await.unwrap().unwrap().events, [b.event_id]);
    assert_eq!(store.apply(&[applied(None, None, &seen)], &[]).await, Err(StoreError::AlreadyProcessed));
}

/// The projector fills a write up to [`MAX_APPLY_ITEMS`] items (DynamoDB's
/// most for one transaction): a write that large goes in whole.
pub async fn a_write_of_the_most_items_goes_in_whole<S: ReadModelStore>(store: &S) {
    let skus: Vec<String> = (0..MAX_APPLY_ITEMS / 2).map(|n| format!("SKU-{n}")).collect();
    let orders: Vec<Order> = skus.iter().map(|name| order_for("alice", &[(name, 1)])).collect();
    let marks: Vec<ProcessedEvent> = orders.iter().map(|_| mark("analytics")).collect();
    let events: Vec<Applied<'_>> = orders.iter().zip(&marks).map(|(o, m)| applied(Some(o), None, m)).collect();
    let deltas: Vec<(Counter, i64)> = skus.iter().map(|name| (Counter::UnitsBySku(sku(name)), 1)).collect();
    assert_eq!(events.len() + deltas.len(), MAX_APPLY_ITEMS);
    store.apply(&events, &deltas).await.unwrap();
    let counters = store.counters().await.unwrap();
    for (order, name) in orders.iter().zip(&skus) {
        assert_eq!(store.order_view(order.id()).await.unwrap().map(|v| v.order).as_ref(), Some(order));
        assert_eq!(count(&counters, &Counter::UnitsBySku(sku(name))), 1, "{name}");
    }
}

pub async fn a_duplicate_in_a_batch_writes_nothing<S: ReadModelStore>(store: &S) {
    let second = order_for("bob", &[("A", 1)]);
    let (a, b) = (mark("analytics"), mark("analytics"));
    let x = Counter::Events("x".into());
    store.apply(&[applied(None, None, &a)], &[(x.clone(), 1)]).await.unwrap();
    // `a` again, delivered in a later batch beside a new event.
    let batch = [applied(None, None, &a), applied(Some(&second), None, &b)];
    assert_eq!(store.apply(&batch, &[(x.clone(), 2)]).await, Err(StoreError::AlreadyProcessed));
    assert_eq!(store.order_view(second.id()).await.unwrap(), None, "the new event's view rolled back");
    assert_eq!(count(&store.counters().await.unwrap(), &x), 1, "the counters rolled back");
    // Alone, the new event goes in and the duplicate is told apart.
    store.apply(&[applied(Some(&second), None, &b)], &[(x.clone(), 1)]).await.unwrap();
    assert_eq!(store.apply(&[applied(None, None, &a)], &[(x.clone(), 1)]).await, Err(StoreError::AlreadyProcessed));
    assert_eq!(count(&store.counters().await.unwrap(), &x), 2);
}

pub async fn a_moved_view_in_a_batch_writes_nothing<S: ReadModelStore>(store: &S) {
    let (moved, fresh) = (order_for("alice", &[("A", 1)]), order_for("bob", &[("A", 1)]));
    store.apply(&[applied(Some(&moved), None, &mark("analytics"))], &[]).await.unwrap();
    let confirmed = moved.confirm_offline("Pay by bank transfer".into(), now()).unwrap();
    let (a, b) = (mark("analytics"), mark("analytics"));
    let x = Counter::Events("x".into());
    let batch = [applied(Some(&fresh), None, &a), applied(Some(&confirmed), Some(7), &b)];
    assert_eq!(store.apply(&batch, &[(x.clone(), 2)]).await, Err(StoreError::Conflict));
    assert_eq!(store.order_view(fresh.id()).await.unwrap(), None);
    assert_eq!(count(&store.counters().await.unwrap(), &x), 0);
    store.apply(&[applied(Some(&fresh), None, &a)], &[(x.clone(), 1)]).await.unwrap();
}

/// The same two events in eight batches at once (a redelivery racing the
/// first delivery): they count once, whichever batch wins.
pub async fn concurrent_batches_of_the_same_events_count_once<S: ReadModelStore>(store: &S) {
    let (a, b) = (mark("analytics"), mark("analytics"));
    let x = Counter::Events("x".into());
    let batch = [applied(None, None, &a), applied(None, None, &b)];
    let deltas = [(x.clone(), 2)];
    let results = join_all((0..8).map(|_| store.apply(&batch, &deltas))).await;
    let wins = results.iter().filter(|r| r.is_ok()).count();
    assert!(wins <= 1, "{results:?}");
    assert_eq!(count(&store.counters().await.unwrap(), &x), 2 * wins as i64, "{results:?}");
    // Whatever lost its race goes in alone, once.
    for one in [&a, &b] {
        let _ = store.apply(&[applied(None, None, one)], &[(x.clone(), 1)]).await;
    }
    assert_eq!(count(&store.counters().await.unwrap(), &x), 2);
}

/// Distinct batches at once that move the same counters lose nothing.
pub async fn concurrent_batches_move_shared_counters_exactly<S: ReadModelStore>(store: &S) {
    let x = Counter::Events("x".into());
    let marks: Vec<[ProcessedEvent; 3]> =
        (0..8).map(|_| [mark("analytics"), mark("analytics"), mark("analytics")]).collect();
    let results = join_all(marks.iter().map(|batch| {
        let events: Vec<Applied<'_>> = batch.iter().map(|m| applied(None, None, m)).collect();
        let x = x.clone();
        async move { store.apply(&events, &[(x, 3)]).await }
    }))
    .await;
    for (batch, mut result) in marks.iter().zip(results) {
        // A lost race (TransactionConflict) wrote nothing: again, until it
        // goes in or turns out to have gone in (a reply lost after commit).
        let events: Vec<Applied<'_>> = batch.iter().map(|m| applied(None, None, m)).collect();
        for _ in 0..10 {
            if matches!(result, Ok(()) | Err(StoreError::AlreadyProcessed)) {
                break;
            }
            result = store.apply(&events, &[(x.clone(), 3)]).await;
        }
        assert!(matches!(result, Ok(()) | Err(StoreError::AlreadyProcessed)), "{result:?}");
    }
    assert_eq!(count(&store.counters().await.unwrap(), &x), 24);
}

/// The view is the mark of the events that wrote it: they are kept on it,
/// and no mark is written apart (one item less per event).
pub async fn the_events_that_write_a_view_are_kept_on_it<S: ReadModelStore>(store: &S) {
    let order = order_for("alice", &[("A", 1)]);
    let (placed, confirmed) = (mark("analytics"), mark("analytics"));
    let placed_only = [placed.event_id];
    let first = Applied { view: Some(&order), expected_version: None, view_events: &placed_only, processed: &placed };
    store.apply(&[first], &[]).await.unwrap();
    assert_eq!(store.order_view(order.id()).await.unwrap().unwrap().events, placed_only);
    let next = order.confirm_offline("Pay by bank transfer".into(), now()).unwrap();
    let both = [placed.event_id, confirmed.event_id];
    let second = Applied {
        view: Some(&next),
        expected_version: Some(order.version()),
        view_events: &both,
        processed: &confirmed,
    };
    store.apply(&[second], &[]).await.unwrap();
    let view = store.order_view(order.id()).await.unwrap().unwrap();
    assert_eq!((view.order, view.events), (next, both.to_vec()));
    for written in [&placed, &confirmed] {
        store.apply(&[applied(None, None, written)], &[]).await.expect("no mark was written for it");
    }
}
