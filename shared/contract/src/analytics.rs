//! `ReadModelStore`.

use super::fixtures::*;
use orderly_core::domain::OrderStatus;
use orderly_core::ports::{Counter, ReadModelStore, StoreError};

pub async fn writes_a_view_and_counters_together<S: ReadModelStore>(store: &S) {
    let order = order_for("alice", &[("A", 1)]);
    let pending = Counter::OrdersByStatus(OrderStatus::Pending);
    store.apply(Some(&order), None, &[(pending.clone(), 1)], &mark("analytics")).await.unwrap();
    assert_eq!(store.order_view(order.id()).await.unwrap(), Some(order.clone()));
    let confirmed = order.confirm_offline("Pay by bank transfer".into(), now()).unwrap();
    let deltas = [(pending.clone(), -1), (Counter::OrdersByStatus(OrderStatus::Confirmed), 1)];
    store.apply(Some(&confirmed), Some(order.version()), &deltas, &mark("analytics")).await.unwrap();
    let counters = store.counters().await.unwrap();
    assert!(counters.contains(&(pending, 0)));
    assert!(counters.contains(&(Counter::OrdersByStatus(OrderStatus::Confirmed), 1)));
}

pub async fn a_stale_view_version_is_a_conflict<S: ReadModelStore>(store: &S) {
    let order = order_for("alice", &[("A", 1)]);
    store.apply(Some(&order), None, &[], &mark("analytics")).await.unwrap();
    let delta = [(Counter::Events("x".into()), 1)];
    assert_eq!(store.apply(Some(&order), None, &delta, &mark("analytics")).await, Err(StoreError::Conflict));
    let confirmed = order.confirm_offline("Pay by bank transfer".into(), now()).unwrap();
    assert_eq!(store.apply(Some(&confirmed), Some(7), &delta, &mark("analytics")).await, Err(StoreError::Conflict));
    assert!(
        !store.counters().await.unwrap().iter().any(|(c, _)| *c == Counter::Events("x".into())),
        "counters roll back too"
    );
}

pub async fn a_processed_event_applies_once<S: ReadModelStore>(store: &S) {
    let seen = mark("analytics");
    let delta = [(Counter::Events("order.placed.v1".into()), 1)];
    store.apply(None, None, &delta, &seen).await.unwrap();
    assert_eq!(store.apply(None, None, &delta, &seen).await, Err(StoreError::AlreadyProcessed));
    assert_eq!(store.counters().await.unwrap(), vec![(Counter::Events("order.placed.v1".into()), 1)]);
}

pub async fn lists_a_customers_orders_newest_first<S: ReadModelStore>(store: &S) {
    let mut alices = Vec::new();
    for _ in 0..3 {
        let order = order_for("alice", &[("A", 1)]);
        store.apply(Some(&order), None, &[], &mark("analytics")).await.unwrap();
        alices.push(order.id());
    }
    let bobs = order_for("bob", &[("A", 1)]);
    store.apply(Some(&bobs), None, &[], &mark("analytics")).await.unwrap();
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
