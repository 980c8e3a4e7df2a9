//! `OrderStore` (+ the outbox its writes feed).

use chrono::Duration;

use super::fixtures::*;
use orderly_core::domain::{Order, OrderStatus};
use orderly_core::ports::{OrderStore, Outbox, PlaceOutcome, StoreError};

pub async fn places_an_order_and_reads_it_back<S: OrderStore>(store: &S) {
    let order = order_for("alice", &[("A", 2)]);
    assert_eq!(store.place(&order, None, &[], now()).await.unwrap(), PlaceOutcome::Placed);
    assert_eq!(store.get(order.id()).await.unwrap(), Some(order));
}

pub async fn an_unknown_order_is_none<S: OrderStore>(store: &S) {
    assert_eq!(store.get(order_for("alice", &[("A", 1)]).id()).await.unwrap(), None);
}

pub async fn replays_a_live_idempotency_key_for_the_same_request<S: OrderStore>(store: &S) {
    let first = order_for("alice", &[("A", 1)]);
    let second = order_for("alice", &[("A", 1)]);
    let key = claim("alice", "key-1", "hash-1");
    assert_eq!(store.place(&first, Some(&key), &[], now()).await.unwrap(), PlaceOutcome::Placed);
    assert_eq!(store.place(&second, Some(&key), &[], now()).await.unwrap(), PlaceOutcome::Replayed(first));
    assert_eq!(store.get(second.id()).await.unwrap(), None, "a replay writes nothing");
}

pub async fn a_replay_answers_the_order_as_first_placed_after_it_moved_on<S: OrderStore>(store: &S) {
    let first = order_for("alice", &[("A", 1)]);
    let key = claim("alice", "key-1", "hash-1");
    store.place(&first, Some(&key), &[], now()).await.unwrap();
    store
        .save_transition(&first.confirm_offline("Pay by bank transfer".into(), now()).unwrap(), &[], None)
        .await
        .unwrap();
    let again = order_for("alice", &[("A", 1)]);
    assert_eq!(store.place(&again, Some(&key), &[], now()).await.unwrap(), PlaceOutcome::Replayed(first));
}

/// A retry read before its request is priced again: the first answer for
/// the same request, `KeyReused` for another, nothing for a key that is
/// unknown, another customer's, or expired. Nothing is written.
pub async fn a_live_key_is_answered_without_placing_anything<S: OrderStore>(store: &S) {
    let first = order_for("alice", &[("A", 1)]);
    let key = claim("alice", "key-1", "hash-1");
    assert_eq!(store.replay(&key, now()).await.unwrap(), None, "nothing claimed yet");
    store.place(&first, Some(&key), &[], now()).await.unwrap();
    assert_eq!(store.replay(&key, now()).await.unwrap(), Some(PlaceOutcome::Replayed(first)));
    let other_request = claim("alice", "key-1", "hash-2");
    assert_eq!(store.replay(&other_request, now()).await.unwrap(), Some(PlaceOutcome::KeyReused));
    assert_eq!(store.replay(&claim("bob", "key-1", "hash-1"), now()).await.unwrap(), None);
    assert_eq!(store.replay(&key, now() + Duration::hours(25)).await.unwrap(), None, "expired");
}

pub async fn refuses_a_live_key_for_a_different_request<S: OrderStore>(store: &S) {
    let first = order_for("alice", &[("A", 1)]);
    let other = order_for("alice", &[("A", 9)]);
    store.place(&first, Some(&claim("alice", "key-1", "hash-1")), &[], now()).await.unwrap();
    let outcome = store.place(&other, Some(&claim("alice", "key-1", "hash-2")), &[], now()).await.unwrap();
    assert_eq!(outcome, PlaceOutcome::KeyReused);
    assert_eq!(store.get(other.id()).await.unwrap(), None);
}

pub async fn scopes_keys_to_the_customer<S: OrderStore>(store: &S) {
    let alices = order_for("alice", &[("A", 1)]);
    let bobs = order_for("bob", &[("A", 1)]);
    store.place(&alices, Some(&claim("alice", "same", "h")), &[], now()).await.unwrap();
    assert_eq!(store.place(&bobs, Some(&claim("bob", "same", "h")), &[], now()).await.unwrap(), PlaceOutcome::Placed);
}

pub async fn reuses_an_expired_key_for_a_new_order<S: OrderStore>(store: &S) {
    let first = order_for("alice", &[("A", 1)]);
    let later = order_for("alice", &[("A", 1)]);
    let key = claim("alice", "key-1", "hash-1");
    store.place(&first, Some(&key), &[], now()).await.unwrap();
    let after_expiry = now() + Duration::hours(25);
    let renewed = orderly_core::ports::IdempotencyClaim { expires_at: after_expiry + Duration::hours(24), ..key };
    assert_eq!(store.place(&later, Some(&renewed), &[], after_expiry).await.unwrap(), PlaceOutcome::Placed);
    assert!(store.get(later.id()).await.unwrap().is_some());
}

pub async fn a_transition_needs_the_version_it_was_read_at<S: OrderStore>(store: &S) {
    let order = order_for("alice", &[("A", 1)]);
    store.place(&order, None, &[], now()).await.unwrap();
    let confirmed = order.confirm_offline("Pay by bank transfer".into(), now()).unwrap();
    let cancelled_from_stale = order.cancel(now()).unwrap();
    store.save_transition(&confirmed, &[], None).await.unwrap();
    assert_eq!(store.save_transition(&cancelled_from_stale, &[], None).await, Err(StoreError::Conflict));
    assert_eq!(store.get(order.id()).await.unwrap().unwrap().status(), OrderStatus::Confirmed);
}

pub async fn a_processed_mark_makes_the_second_transition_a_no_op<S: OrderStore>(store: &S) {
    let order = order_for("alice", &[("A", 1)]);
    store.place(&order, None, &[], now()).await.unwrap();
    let mark = mark("order-intake");
    let confirmed = order.confirm_offline("Pay by bank transfer".into(), now()).unwrap();
    store.save_transition(&confirmed, &[], Some(&mark)).await.unwrap();
    let cancelled = confirmed.cancel(now()).unwrap();
    assert_eq!(store.save_transition(&cancelled, &[], Some(&mark)).await, Err(StoreError::AlreadyProcessed));
    assert_eq!(store.get(order.id()).await.unwrap().unwrap().status(), OrderStatus::Confirmed);
}

/// A placed order, and its confirmation (not saved).
async fn placed_and_confirmed<S: OrderStore>(store: &S) -> (Order, Order) {
    let order = order_for("alice", &[("A", 1)]);
    store.place(&order, None, &[], now()).await.unwrap();
    let confirmed = order.confirm_offline("Pay by bank transfer".into(), now()).unwrap();
    (order, confirmed)
}

/// The mark outlives the state it was decided from: the same event, decided
/// again after the order moved on without it, still writes nothing.
pub async fn a_late_redelivery_after_a_later_transition_changes_nothing<S: OrderStore + Outbox>(store: &S) {
    let (order, confirmed) = placed_and_confirmed(store).await;
    let seen = mark("order-intake");
    store.save_transition(&confirmed, &[], Some(&seen)).await.unwrap();
    let paid = confirmed.record_offline_payment(now()).unwrap();
    store.save_transition(&paid, &[], None).await.unwrap();
    let shipped = paid.ship(now()).unwrap();
    let late = placed_event(&shipped);
    assert_eq!(store.save_transition(&shipped, &[late], Some(&seen)).await, Err(StoreError::AlreadyProcessed));
    assert_eq!(store.get(order.id()).await.unwrap(), Some(paid));
    assert!(store.pending(None, 10).await.unwrap().is_empty(), "a duplicate publishes nothing");
}

/// Deliveries of one event racing each other (a redelivery while the first
/// is still being handled): one moves the order, the others are duplicates.
pub async fn concurrent_deliveries_of_one_event_move_the_order_once<S: OrderStore + Outbox>(store: &S) {
    let (order, confirmed) = placed_and_confirmed(store).await;
    let seen = mark("order-intake");
    let event = placed_event(&confirmed);
    let results = futures::future::join_all(
        (0..4).map(|_| store.save_transition(&confirmed, std::slice::from_ref(&event), Some(&seen))),
    )
    .await;
    assert_eq!(results.iter().filter(|r| r.is_ok()).count(), 1, "{results:?}");
    assert!(results.iter().all(|r| matches!(r, Ok(()) | Err(StoreError::AlreadyProcessed))), "{results:?}");
    assert_eq!(store.get(order.id()).await.unwrap(), Some(confirmed));
    assert_eq!(store.pending(None, 10).await.unwrap().len(), 1, "the event is written once");
}

pub async fn writes_the_events_of_a_write_to_the_outbox<S: OrderStore + Outbox>(store: &S) {
    let order = order_for("alice", &[("A", 1)]);
    let event = placed_event(&order);
    store.place(&order, None, std::slice::from_ref(&event), now()).await.unwrap();
    let pending = store.pending(None, 10).await.unwrap();
    assert_eq!(pending.len(), 1);
    assert_eq!(pending[0].envelope, event);
    assert!(store.pending(Some(&pending[0].position), 10).await.unwrap().is_empty(), "nothing after the last");
    let second = order_for("alice", &[("A", 2)]);
    let later = placed_event(&second);
    store.place(&second, None, std::slice::from_ref(&later), now()).await.unwrap();
    let after_first = store.pending(Some(&pending[0].position), 10).await.unwrap();
    assert_eq!(after_first.iter().map(|e| &e.envelope).collect::<Vec<_>>(), [&later], "in the order written");
    store.remove(&[pending[0].position.clone()]).await.unwrap();
    assert_eq!(store.pending(None, 10).await.unwrap().len(), 1);
}

pub async fn events_published_with_a_mark_are_written_once<S: OrderStore + Outbox>(store: &S) {
    let order = order_for("alice", &[("A", 1)]);
    let event = placed_event(&order);
    let mark = mark("order-intake");
    store.publish(std::slice::from_ref(&event), &mark).await.unwrap();
    let pending = store.pending(None, 10).await.unwrap();
    assert_eq!(pending.iter().map(|e| &e.envelope).collect::<Vec<_>>(), [&event]);
    let again = placed_event(&order);
    assert_eq!(store.publish(&[again], &mark).await, Err(StoreError::AlreadyProcessed));
    assert_eq!(store.pending(None, 10).await.unwrap().len(), 1, "a redelivery publishes nothing more");
}

pub async fn a_failed_write_leaves_no_event_behind<S: OrderStore + Outbox>(store: &S) {
    let order = order_for("alice", &[("A", 1)]);
    store.place(&order, None, &[], now()).await.unwrap();
    let stale = order.confirm_offline("Pay by bank transfer".into(), now()).unwrap();
    store.save_transition(&stale, &[], None).await.unwrap();
    let event = placed_event(&stale);
    assert_eq!(store.save_transition(&stale, &[event], None).await, Err(StoreError::Conflict));
    assert!(store.pending(None, 10).await.unwrap().is_empty(), "a rejected write must not publish");
}

/// What a relay fed by a stream could not publish waits in the outbox for
/// the polling relay, in the order kept.
pub async fn kept_events_wait_in_the_outbox<S: OrderStore + Outbox>(store: &S) {
    let events = [placed_event(&order_for("alice", &[("A", 1)])), placed_event(&order_for("bob", &[("B", 2)]))];
    store.keep(&events).await.unwrap();
    let pending = store.pending(None, 10).await.unwrap();
    assert_eq!(pending.iter().map(|e| &e.envelope).collect::<Vec<_>>(), events.iter().collect::<Vec<_>>());
    store.remove(&pending.iter().map(|e| e.position.clone()).collect::<Vec<_>>()).await.unwrap();
    assert!(store.pending(None, 10).await.unwrap().is_empty(), "removed once published");
    store.keep(&[]).await.unwrap();
    assert!(store.pending(None, 10).await.unwrap().is_empty(), "keeping nothing adds nothing");
}
