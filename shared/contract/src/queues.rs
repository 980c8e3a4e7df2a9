//! `EventPublisher` + `MessageQueue` + `QueueAdmin`: SQS semantics.

use std::time::Duration;

use super::fixtures::*;
use super::{MAX_RECEIVES, eventually};
use orderly_core::events::{Envelope, Event, EventMeta, OrderChanged};
use orderly_core::ports::{EventPublisher, MessageQueue, QueueAdmin, ReceivedMessage};

/// A visibility timeout or delay the tests wait out.
const SHORT: Duration = Duration::from_millis(300);
/// One a message must still be hidden at the next call, however slow the
/// machine (or the emulator) answers: a check made within `SHORT` would be a
/// race against the clock.
const HIDDEN: Duration = Duration::from_secs(3);
const LONG: Duration = Duration::from_secs(30);
const DEADLINE: Duration = Duration::from_secs(30);

fn cancelled_event(order: &orderly_core::domain::Order) -> Envelope {
    let cancelled = order.cancel(now()).unwrap();
    Event::OrderCancelled(OrderChanged::new(&cancelled)).into_envelope(EventMeta {
        id: uuid::Uuid::now_v7(),
        source: "contract",
        time: now(),
        traceparent: None,
    })
}

async fn receive_one<S: MessageQueue>(store: &S, queue: &str, visibility: Duration) -> ReceivedMessage {
    eventually("a message", DEADLINE, || async {
        let mut batch = store.receive(queue, 1, visibility).await.unwrap();
        batch.pop()
    })
    .await
}

pub async fn fans_out_to_every_subscriber<S: MessageQueue + EventPublisher>(store: &S) {
    let order = order_for("alice", &[("A", 1)]);
    let placed = placed_event(&order);
    let cancelled = cancelled_event(&order);
    store.publish(&[placed.clone(), cancelled.clone()]).await.unwrap();
    let bodies = |batch: Vec<ReceivedMessage>| -> Vec<Envelope> {
        batch.into_iter().map(|m| Envelope::from_json(&m.body).unwrap()).collect()
    };
    // Each queue holds the subject's events in order; take them one by one.
    let mut inventory = Vec::new();
    for _ in 0..2 {
        let message = receive_one(store, "inventory", LONG).await;
        store.ack("inventory", std::slice::from_ref(&message.receipt)).await.unwrap();
        inventory.extend(bodies(vec![message]));
    }
    assert_eq!(inventory, [placed.clone(), cancelled.clone()]);
    let notification = receive_one(store, "notification", LONG).await;
    assert_eq!(Envelope::from_json(&notification.body).unwrap(), cancelled);
    // Analytics takes every event, in any order (on AWS its queue is standard).
    let mut analytics = Vec::new();
    for _ in 0..2 {
        let message = receive_one(store, "analytics", LONG).await;
        store.ack("analytics", std::slice::from_ref(&message.receipt)).await.unwrap();
        analytics.extend(bodies(vec![message]));
    }
    analytics.sort_by_key(|e| e.event_type.clone());
    assert_eq!(analytics, [cancelled.clone(), placed.clone()]);
    assert!(store.receive("order-intake", 10, LONG).await.unwrap().is_empty());
}

pub async fn an_unacknowledged_message_comes_back_after_the_visibility_timeout<S: MessageQueue + EventPublisher>(
    store: &S,
) {
    store.publish(&[placed_event(&order_for("alice", &[("A", 1)]))]).await.unwrap();
    let first = receive_one(store, "inventory", HIDDEN).await;
    assert_eq!(first.receive_count, 1);
    assert!(store.receive("inventory", 10, SHORT).await.unwrap().is_empty(), "invisible while in flight");
    let again = receive_one(store, "inventory", SHORT).await;
    assert_eq!(again.message_id, first.message_id);
    assert_eq!(again.receive_count, 2);
    assert_ne!(again.receipt, first.receipt);
}

pub async fn an_acknowledged_message_is_gone<S: MessageQueue + EventPublisher + QueueAdmin>(store: &S) {
    store.publish(&[placed_event(&order_for("alice", &[("A", 1)]))]).await.unwrap();
    let message = receive_one(store, "inventory", SHORT).await;
    store.ack("inventory", &[message.receipt]).await.unwrap();
    assert_eq!(store.stats("inventory").await.unwrap().depth, 0);
    tokio::time::sleep(SHORT * 2).await;
    assert!(store.receive("inventory", 10, SHORT).await.unwrap().is_empty());
}

pub async fn a_stale_receipt_acknowledges_nothing<S: MessageQueue + EventPublisher + QueueAdmin>(store: &S) {
    store.publish(&[placed_event(&order_for("alice", &[("A", 1)]))]).await.unwrap();
    let first = receive_one(store, "inventory", SHORT).await;
    let second = receive_one(store, "inventory", LONG).await;
    store.ack("inventory", &[first.receipt]).await.unwrap();
    assert_eq!(store.stats("inventory").await.unwrap().depth, 1, "the old receipt must not delete the redelivery");
    store.ack("inventory", &[second.receipt]).await.unwrap();
    assert_eq!(store.stats("inventory").await.unwrap().depth, 0);
}

pub async fn retry_later_hides_the_message_for_the_delay<S: MessageQueue + EventPublisher>(store: &S) {
    store.publish(&[placed_event(&order_for("alice", &[("A", 1)]))]).await.unwrap();
    let message = receive_one(store, "inventory", LONG).await;
    store.retry_later("inventory", &message.receipt, HIDDEN, "boom").await.unwrap();
    assert!(store.receive("inventory", 10, LONG).await.unwrap().is_empty(), "hidden for the delay");
    let again = receive_one(store, "inventory", LONG).await;
    assert_eq!((again.message_id, again.receive_count), (message.message_id, 2));
}

pub async fn a_deferred_delivery_comes_back_after_the_delay<S: MessageQueue + EventPublisher>(store: &S) {
    store.publish(&[placed_event(&order_for("alice", &[("A", 1)]))]).await.unwrap();
    let message = receive_one(store, "inventory", LONG).await;
    store.defer("inventory", &message.receipt, HIDDEN, "circuit open").await.unwrap();
    assert!(store.receive("inventory", 10, LONG).await.unwrap().is_empty(), "hidden for the delay");
    let again = receive_one(store, "inventory", LONG).await;
    assert_eq!(again.message_id, message.message_id);
    // Whether the refused delivery counted is the queue's to say (SQS counts
    // every receive); that it never counts twice is not.
    assert!(again.receive_count <= 2, "{}", again.receive_count);
}

pub async fn dead_letters_after_max_receives_and_redrives<S: MessageQueue + EventPublisher + QueueAdmin>(store: &S) {
    store.publish(&[placed_event(&order_for("alice", &[("A", 1)]))]).await.unwrap();
    for attempt in 1..=MAX_RECEIVES {
        let message = receive_one(store, "inventory", LONG).await;
        assert_eq!(message.receive_count, attempt);
        store.retry_later("inventory", &message.receipt, Duration::ZERO, "handler failed").await.unwrap();
    }
    let dead = eventually("the dead letter", DEADLINE, || async {
        let _ = store.receive("inventory", 10, LONG).await.unwrap();
        store.dead_letters("inventory", 10).await.unwrap().pop()
    })
    .await;
    assert_eq!(dead.receive_count, MAX_RECEIVES);
    assert_eq!(dead.last_error.as_deref(), Some("handler failed"));
    let stats = store.stats("inventory").await.unwrap();
    assert_eq!((stats.depth, stats.dead_letters), (0, 1));

    assert_eq!(store.redrive("inventory", 10).await.unwrap(), 1);
    let back = receive_one(store, "inventory", LONG).await;
    assert_eq!(back.receive_count, 1, "a redriven message starts counting again");
    assert_eq!(back.body, dead.body);
    assert_eq!(store.stats("inventory").await.unwrap().dead_letters, 0);
}

pub async fn one_message_per_subject_is_in_flight_at_a_time<S: MessageQueue + EventPublisher>(store: &S) {
    let order = order_for("alice", &[("A", 1)]);
    store.publish(&[placed_event(&order), cancelled_event(&order)]).await.unwrap();
    let batch = store.receive("inventory", 10, LONG).await.unwrap();
    assert_eq!(batch.len(), 1, "the cancellation waits behind the placement");
    assert_eq!(Envelope::from_json(&batch[0].body).unwrap().event_type, "order.placed.v1");
    store.ack("inventory", &[batch[0].receipt.clone()]).await.unwrap();
    let next = receive_one(store, "inventory", LONG).await;
    assert_eq!(Envelope::from_json(&next.body).unwrap().event_type, "order.cancelled.v1");
}

pub async fn a_poisoned_subject_does_not_block_others<S: MessageQueue + EventPublisher>(store: &S) {
    let (poisoned, healthy) = (order_for("alice", &[("A", 1)]), order_for("bob", &[("A", 1)]));
    store.publish(&[placed_event(&poisoned), placed_event(&healthy)]).await.unwrap();
    let batch = store.receive("inventory", 10, LONG).await.unwrap();
    assert_eq!(batch.len(), 2);
    for message in &batch {
        let subject = Envelope::from_json(&message.body).unwrap().subject;
        if subject == poisoned.id().to_string() {
            store.retry_later("inventory", &message.receipt, LONG, "poison").await.unwrap();
        } else {
            store.ack("inventory", std::slice::from_ref(&message.receipt)).await.unwrap();
        }
    }
    store.publish(&[cancelled_event(&healthy)]).await.unwrap();
    let next = receive_one(store, "inventory", LONG).await;
    assert_eq!(Envelope::from_json(&next.body).unwrap().subject, healthy.id().to_string());
}

pub async fn reports_depth_and_age<S: MessageQueue + EventPublisher + QueueAdmin>(store: &S) {
    let empty = store.stats("inventory").await.unwrap();
    assert_eq!((empty.depth, empty.oldest_age, empty.dead_letters), (0, None, 0));
    store
        .publish(&[placed_event(&order_for("a", &[("A", 1)])), placed_event(&order_for("b", &[("A", 1)]))])
        .await
        .unwrap();
    let _in_flight = receive_one(store, "inventory", LONG).await;
    let stats = store.stats("inventory").await.unwrap();
    assert_eq!((stats.depth, stats.in_flight), (2, 1));
    assert!(stats.oldest_age.is_some());
}
