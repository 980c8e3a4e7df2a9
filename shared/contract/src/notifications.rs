//! `NotificationLog`.

use uuid::Uuid;

use super::fixtures::*;
use orderly_core::domain::OrderId;
use orderly_core::ports::{NotificationLog, NotificationRecord, NotificationState};

fn record(order: OrderId, state: NotificationState, attempts: u32) -> NotificationRecord {
    NotificationRecord {
        id: Uuid::now_v7(),
        order_id: order,
        customer_id: customer("alice"),
        kind: "order.confirmed.v1".into(),
        state,
        attempts,
        last_error: None,
        provider: "test".into(),
        created_at: now(),
        updated_at: now(),
    }
}

pub async fn saves_and_replaces_by_id<S: NotificationLog>(store: &S) {
    let order = OrderId::from_uuid(Uuid::now_v7());
    let first =
        NotificationRecord { last_error: Some("timeout".into()), ..record(order, NotificationState::Deferred, 1) };
    store.save(&first).await.unwrap();
    assert_eq!(store.get(first.id).await.unwrap(), Some(first.clone()));
    let sent = NotificationRecord { state: NotificationState::Sent, attempts: 2, last_error: None, ..first.clone() };
    store.save(&sent).await.unwrap();
    assert_eq!(store.get(first.id).await.unwrap(), Some(sent));
    assert_eq!(store.list(Some(order), 10).await.unwrap().len(), 1);
}

/// Two deliveries of one event overlap: one sends, the other's call fails
/// and saves after it. The record still says `sent`.
pub async fn a_sent_notification_stays_sent<S: NotificationLog>(store: &S) {
    let order = OrderId::from_uuid(Uuid::now_v7());
    let sent = record(order, NotificationState::Sent, 1);
    store.save(&sent).await.unwrap();
    for state in [NotificationState::Deferred, NotificationState::Failed] {
        let late = NotificationRecord { state, attempts: 2, last_error: Some("timeout".into()), ..sent.clone() };
        store.save(&late).await.unwrap();
    }
    assert_eq!(store.get(sent.id).await.unwrap(), Some(sent));
}

pub async fn lists_by_order_oldest_first<S: NotificationLog>(store: &S) {
    let (a, b) = (OrderId::from_uuid(Uuid::now_v7()), OrderId::from_uuid(Uuid::now_v7()));
    let first = record(a, NotificationState::Sent, 1);
    let other = record(b, NotificationState::Sent, 1);
    let second = NotificationRecord {
        created_at: first.created_at + chrono::Duration::milliseconds(5),
        ..record(a, NotificationState::Failed, 5)
    };
    for r in [&second, &other, &first] {
        store.save(r).await.unwrap();
    }
    let ids: Vec<_> = store.list(Some(a), 10).await.unwrap().into_iter().map(|r| r.id).collect();
    assert_eq!(ids, [first.id, second.id]);
    assert_eq!(store.list(None, 10).await.unwrap().len(), 3);
}
