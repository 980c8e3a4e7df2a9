use serde_json::Value;

use crate::helpers::{TestApp, eventually, spawn_app, spawn_local_app_with, token};
use crate::support::{Mode, Webhook};

async fn notifications_of(app: &TestApp, order_id: &str) -> Vec<Value> {
    let response = app.get(&format!("/api/v1/notifications?order_id={order_id}"), Some(&app.admin)).await;
    assert_eq!(response.status(), reqwest::StatusCode::OK);
    response.json::<Value>().await.unwrap()["items"].as_array().unwrap().clone()
}

#[tokio::test]
async fn without_a_webhook_notifications_are_recorded_as_sent() {
    let app = spawn_app().await;
    app.put_product("TEA", "1.00", 5).await;
    let alice = token("alice", false);
    let id = app.accepted_order(&alice, &[("TEA", 1)]).await;
    let entries = eventually("a notification", || async {
        let items = notifications_of(&app, &id).await;
        (!items.is_empty()).then_some(items)
    })
    .await;
    assert_eq!(entries[0]["order_id"], id.as_str());
    assert_eq!(entries[0]["state"], "sent");
    assert_eq!(entries[0]["attempts"], 1);
    assert_eq!(entries[0]["kind"], "order.confirmed.v1");
}

#[tokio::test]
async fn the_webhook_receives_confirmations_and_cancellations() {
    let webhook = Webhook::start(Mode::Up).await;
    let Some(app) = spawn_local_app_with("it points the runner at a webhook of its own", |config| {
        config.notify_url = Some(webhook.url.clone());
        config.notify_allow_private = true;
    })
    .await
    else {
        return;
    };
    app.put_product("TEA", "4.00", 5).await;
    let alice = token("alice", false);
    let id = app.accepted_order(&alice, &[("TEA", 2)]).await;
    app.settled(&alice, &id, "confirmed").await;
    app.client.post(app.url(&format!("/api/v1/orders/{id}/cancel"))).bearer_auth(&alice).send().await.unwrap();

    let sent = eventually("two webhook calls", || async {
        let got = webhook.received();
        (got.len() >= 2).then_some(got)
    })
    .await;
    assert_eq!(sent[0]["kind"], "order.confirmed.v1");
    assert_eq!(sent[0]["order_id"], id.as_str());
    assert_eq!(sent[0]["total"], "8.00");
    assert_eq!(sent[1]["kind"], "order.cancelled.v1");
    let entries = eventually("both logged as sent", || async {
        let items = notifications_of(&app, &id).await;
        (items.len() == 2 && items.iter().all(|n| n["state"] == "sent")).then_some(items)
    })
    .await;
    assert!(entries.iter().all(|n| n["provider"] == "webhook"));
}

#[tokio::test]
async fn a_failing_webhook_defers_then_fails_into_the_dead_letter_queue_without_touching_the_order() {
    let webhook = Webhook::start(Mode::Failing).await;
    let Some(app) = spawn_local_app_with("it points the runner at a failing webhook of its own", |config| {
        config.notify_url = Some(webhook.url.clone());
        config.notify_allow_private = true;
    })
    .await
    else {
        return;
    };
    app.put_product("TEA", "4.00", 5).await;
    let alice = token("alice", false);
    let id = app.accepted_order(&alice, &[("TEA", 1)]).await;
    app.settled(&alice, &id, "confirmed").await;

    let entry = eventually("the notification to fail", || async {
        let items = notifications_of(&app, &id).await;
        items.into_iter().find(|n| n["state"] == "failed")
    })
    .await;
    assert_eq!(entry["attempts"], 3);
    assert!(entry["last_error"].as_str().unwrap().contains("500"));
    eventually("the notification message to be dead-lettered", || async {
        (app.health().await["queues"]["notification"]["dead_letters"] == 1).then_some(())
    })
    .await;
    assert_eq!(webhook.calls(), 3, "one call per attempt");
    assert_eq!(app.order(&alice, &id).await["status"], "confirmed");
}
