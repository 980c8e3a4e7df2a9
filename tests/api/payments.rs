//! Payments and fulfilment (docs/contract.md §6): the saga settles every
//! reserved order's payment, by card through the gateway or offline, and
//! never waits on a sick gateway.

use std::time::Duration;

use chrono::Utc;
use orderly_core::domain::{Currency, CustomerId, Money, Order, OrderId, OrderLine, PaymentMethod, Quantity, Sku};
use orderly_core::events::{Event, EventMeta, InventoryReserved, ReservedLine};
use orderly_core::ports::OrderStore;
use reqwest::StatusCode;
use serde_json::{Value, json};
use uuid::Uuid;

use crate::helpers::{TestApp, eventually, problem, spawn_app_with_gateway, spawn_local_app, token};

/// Places an order for one unit of `sku` and waits for it to settle.
async fn settled_order(app: &TestApp, customer: &str, sku: &str, want: &str) -> Value {
    let id = app.accepted_order(customer, &[(sku, 1)]).await;
    app.settled(customer, &id, want).await
}

async fn fulfil(app: &TestApp, id: &str, step: &str) -> reqwest::Response {
    if step == "payment" {
        app.post_json(&format!("/api/v1/orders/{id}/payment"), Some(&app.admin), &json!({"status": "paid"})).await
    } else {
        app.post_empty(&format!("/api/v1/orders/{id}/{step}"), Some(&app.admin)).await
    }
}

/// Takes a fulfilment step that must succeed. A 503 is retried after its
/// `Retry-After`, as the contract tells clients to (captures are
/// idempotent): the remote stacks give the gateway 1 s, which a loaded CI
/// machine can overrun.
async fn fulfilled(app: &TestApp, id: &str, step: &str) -> Value {
    let mut response = fulfil(app, id, step).await;
    for _ in 0..2 {
        if response.status() != StatusCode::SERVICE_UNAVAILABLE {
            break;
        }
        let retry_after = response.headers().get("retry-after").and_then(|v| v.to_str().ok()?.parse().ok());
        tokio::time::sleep(Duration::from_secs(retry_after.unwrap_or(1).min(5))).await;
        response = fulfil(app, id, step).await;
    }
    assert_eq!(response.status(), StatusCode::OK, "{step}");
    response.json().await.unwrap()
}

#[tokio::test]
async fn without_a_gateway_an_order_is_confirmed_with_offline_instructions_naming_it() {
    let Some(app) = spawn_local_app("the remote stacks are deployed with a gateway").await else { return };
    app.put_product("TEA", "12.50", 5).await;
    let alice = token("alice", false);
    let order = settled_order(&app, &alice, "TEA", "confirmed").await;
    let id = order["id"].as_str().unwrap();
    assert_eq!(order["payment"]["method"], "offline");
    assert_eq!(order["payment"]["status"], "awaiting_offline");
    let instructions = order["payment"]["instructions"].as_str().unwrap();
    assert!(instructions.contains(id), "the instructions name the order: {instructions}");
    assert!(instructions.contains("12.50"), "{instructions}");

    // Recorded paid, it ships and is delivered.
    assert_eq!(fulfilled(&app, id, "payment").await["payment"]["status"], "paid");
    let shipped = fulfilled(&app, id, "ship").await;
    assert_eq!((shipped["status"].as_str(), shipped["payment"]["status"].as_str()), (Some("shipped"), Some("paid")));
    assert_eq!(fulfilled(&app, id, "deliver").await["status"], "delivered");
}

#[tokio::test]
async fn a_card_order_is_authorized_then_captured_at_shipment_and_delivered() {
    let Some((app, gateway)) = spawn_app_with_gateway(|_| {}).await else { return };
    app.put_product("TEA", "12.50", 5).await;
    let alice = token("alice", false);
    let order = settled_order(&app, &alice, "TEA", "confirmed").await;
    let id = order["id"].as_str().unwrap();
    assert_eq!(order["payment"], json!({"method": "card", "status": "authorized", "instructions": null}));
    let held = gateway.held(id).await.expect("an authorization at the gateway");
    assert_eq!((held["amount_minor"].as_i64(), held["currency"].as_str()), (Some(1250), Some("EUR")));
    assert_eq!(held["idempotency_keys"], json!([id]), "keyed by the order");

    let shipped = fulfilled(&app, id, "ship").await;
    assert_eq!(
        (shipped["status"].as_str(), shipped["payment"]["status"].as_str()),
        (Some("shipped"), Some("captured"))
    );
    assert_eq!(gateway.held(id).await.unwrap()["status"], "captured");
    assert_eq!(fulfilled(&app, id, "deliver").await["status"], "delivered");
    assert_eq!(app.order(&alice, id).await["payment"]["status"], "captured");

    // Revenue counts what is sold now: shipped and delivered included.
    let summary = eventually("analytics to see the delivery", || async {
        let summary = app.summary().await;
        (summary["orders_by_status"]["delivered"] == 1).then_some(summary)
    })
    .await;
    assert_eq!(summary["revenue"]["EUR"], "12.50");
}

#[tokio::test]
async fn a_declined_card_rejects_the_order_and_gives_its_stock_back() {
    let Some((app, gateway)) = spawn_app_with_gateway(|_| {}).await else { return };
    app.put_product("TEA", "3.00", 4).await;
    gateway.set_mode("decline").await;
    let alice = token("alice", false);
    let id = app.accepted_order(&alice, &[("TEA", 3)]).await;
    let order = app.settled(&alice, &id, "rejected").await;
    assert_eq!(order["payment"]["status"], "declined");
    eventually("the reserved stock to come back", || async {
        (app.product("TEA").await["available"] == 4).then_some(())
    })
    .await;
}

#[tokio::test]
async fn a_failing_gateway_confirms_every_order_offline_and_its_breaker_opens_within_its_threshold() {
    let Some((app, gateway)) = spawn_app_with_gateway(|config| {
        config.payment.breaker_cool_down = Duration::from_secs(60);
        config.payment.breaker_threshold = 3;
    })
    .await
    else {
        return;
    };
    app.put_product("TEA", "1.00", 1000).await;
    gateway.set_mode("fail").await;
    let customers: Vec<String> = (0..8).map(|i| token(&format!("buyer-{i}"), false)).collect();
    let mut ids = Vec::new();
    // 40 orders in about two seconds, from eight customers.
    for round in 0..5 {
        let placed = futures::future::join_all(customers.iter().map(|c| app.accepted_order(c, &[("TEA", 1)]))).await;
        ids.extend(placed.into_iter().zip(customers.iter().cloned()));
        if round < 4 {
            tokio::time::sleep(Duration::from_millis(400)).await;
        }
    }
    for (id, customer) in &ids {
        let order = app.settled(customer, id, "confirmed").await;
        assert_eq!(order["payment"]["method"], "offline", "{order}");
        assert!(order["payment"]["instructions"].as_str().unwrap().contains(id.as_str()));
    }
    let book: Value =
        reqwest::get(format!("{}/_gateway/authorizations", gateway.url)).await.unwrap().json().await.unwrap();
    assert!(book["authorizations"].as_array().unwrap().is_empty(), "a failing gateway held nothing");
    // The breaker opened after 3 failures: at most the 8 calls in flight when
    // it did reached the gateway, not all 40 (a remote stack's breaker cools
    // down after 2 s: a probe or two more).
    let calls = book["failed_authorizations"].as_u64().unwrap();
    assert!((3..=3 + 8 + 2).contains(&calls), "{calls} calls reached the failing gateway");
    let health = app.health().await;
    assert_ne!(health["payment_breaker"]["state"], "closed", "{health}");
}

#[tokio::test]
async fn a_recovering_gateway_closes_its_breaker_and_new_orders_are_paid_by_card_again() {
    let Some((app, gateway)) = spawn_app_with_gateway(|_| {}).await else { return };
    app.put_product("TEA", "1.00", 1000).await;
    let alice = token("alice", false);
    gateway.set_mode("fail").await;
    eventually("the gateway's breaker to open", || async {
        settled_order(&app, &alice, "TEA", "confirmed").await;
        (app.health().await["payment_breaker"]["state"] == "open").then_some(())
    })
    .await;
    gateway.set_mode("approve").await;
    // After the cool-down a probe goes through, succeeds and closes the breaker.
    let order = eventually("an order paid by card again", || async {
        let order = settled_order(&app, &alice, "TEA", "confirmed").await;
        (order["payment"]["method"] == "card").then_some(order)
    })
    .await;
    assert_eq!(order["payment"]["status"], "authorized");
    assert_eq!(app.health().await["payment_breaker"]["state"], "closed");
}

#[tokio::test]
async fn an_authorization_whose_answer_was_lost_is_voided_by_reference() {
    let Some((app, gateway)) = spawn_app_with_gateway(|_| {}).await else { return };
    app.put_product("TEA", "7.00", 5).await;
    gateway.set_mode("commit-then-hang").await;
    let alice = token("alice", false);
    let order = settled_order(&app, &alice, "TEA", "confirmed").await;
    let id = order["id"].as_str().unwrap().to_owned();
    assert_eq!(order["payment"]["method"], "offline", "the customer was not kept waiting");
    // The gateway committed a hold it never told us about: it is released.
    let held = eventually("the lost hold to be voided", || async {
        gateway.held(&id).await.filter(|held| held["status"] == "voided")
    })
    .await;
    assert_eq!(held["authorize_calls"], 1);
}

#[tokio::test]
async fn a_cancel_that_wins_the_race_with_an_authorization_voids_the_late_hold() {
    let Some((app, gateway)) = spawn_app_with_gateway(|config| {
        config.payment.timeout = Duration::from_secs(5);
    })
    .await
    else {
        return;
    };
    app.put_product("TEA", "6.00", 5).await;
    gateway.set_mode("slow").await;
    let alice = token("alice", false);
    let id = app.accepted_order(&alice, &[("TEA", 1)]).await;
    // The gateway holds the money but has not answered yet: cancel now.
    eventually("the authorization to reach the gateway", || async { gateway.held(&id).await }).await;
    let response = app.post_empty(&format!("/api/v1/orders/{id}/cancel"), Some(&alice)).await;
    assert_eq!(response.status(), StatusCode::ACCEPTED);
    let held = eventually("the late hold to be voided", || async {
        gateway.held(&id).await.filter(|held| held["status"] == "voided")
    })
    .await;
    assert_eq!(held["voids"], 1);
    let order = eventually("the order to record the void", || async {
        let order = app.order(&alice, &id).await;
        (order["payment"]["status"] == "voided").then_some(order)
    })
    .await;
    assert_eq!(order["status"], "cancelled");
    eventually("the stock to come back", || async { (app.product("TEA").await["available"] == 5).then_some(()) }).await;
}

#[tokio::test]
async fn a_redelivered_reservation_authorizes_the_order_once() {
    let Some((app, gateway)) = spawn_app_with_gateway(|_| {}).await else { return };
    let Some(runner) = app.runner_if_local() else {
        let _ = std::io::Write::write_all(&mut std::io::stderr(), b"skipped: it writes to the runner's queues\n");
        return;
    };
    app.put_product("TEA", "2.50", 10).await;
    let store = runner.store();
    // An order nobody reserved yet, then inventory's reply delivered three
    // times (twice the same message, once a second copy of it).
    let line = OrderLine {
        sku: Sku::parse("TEA").unwrap(),
        quantity: Quantity::parse(2).unwrap(),
        unit_price: Money::from_minor(250, Currency::parse("EUR").unwrap()).unwrap(),
    };
    let order =
        Order::place(OrderId::from_uuid(Uuid::now_v7()), CustomerId::parse("alice").unwrap(), vec![line], Utc::now())
            .unwrap()
            .paid_by(PaymentMethod::Card);
    store.place(&order, None, &[], Utc::now()).await.unwrap();
    let reserved = |id| {
        Event::InventoryReserved(InventoryReserved {
            order_id: order.id(),
            lines: vec![ReservedLine { sku: Sku::parse("TEA").unwrap(), quantity: 2 }],
        })
        .into_envelope(EventMeta { id, source: "inventory", time: Utc::now(), traceparent: None })
    };
    let first = reserved(Uuid::now_v7());
    for envelope in [&first, &first, &reserved(Uuid::now_v7())] {
        store.send_raw("order-intake", Some(&envelope.subject), &envelope.to_json()).await.unwrap();
    }
    let alice = token("alice", false);
    let id = order.id().to_string();
    assert_eq!(app.settled(&alice, &id, "confirmed").await["payment"]["status"], "authorized");
    app.drained().await;
    let authorizations = gateway.authorizations().await;
    assert_eq!(authorizations.as_object().unwrap().len(), 1, "one authorization: {authorizations}");
    let keys = authorizations[&id]["idempotency_keys"].as_array().unwrap();
    assert!(keys.iter().all(|k| k == &json!(id)), "every call carried the order's key: {keys:?}");
}

#[tokio::test]
async fn cancelling_a_confirmed_card_order_voids_its_hold_and_a_shipped_order_cannot_be_cancelled() {
    let Some((app, gateway)) = spawn_app_with_gateway(|_| {}).await else { return };
    app.put_product("TEA", "4.00", 10).await;
    let alice = token("alice", false);
    let first = settled_order(&app, &alice, "TEA", "confirmed").await;
    let first = first["id"].as_str().unwrap();
    let response = app.post_empty(&format!("/api/v1/orders/{first}/cancel"), Some(&alice)).await;
    assert_eq!(response.status(), StatusCode::ACCEPTED);
    let cancelled: Value = response.json().await.unwrap();
    assert_eq!(
        (cancelled["status"].as_str(), cancelled["payment"]["status"].as_str()),
        (Some("cancelled"), Some("voided"))
    );
    eventually("the hold to be voided at the gateway", || async {
        gateway.held(first).await.filter(|held| held["status"] == "voided")
    })
    .await;

    let second = settled_order(&app, &alice, "TEA", "confirmed").await;
    let second = second["id"].as_str().unwrap();
    fulfilled(&app, second, "ship").await;
    let refused = app.post_empty(&format!("/api/v1/orders/{second}/cancel"), Some(&alice)).await;
    problem(refused, StatusCode::CONFLICT).await;
    assert_eq!(gateway.held(second).await.unwrap()["status"], "captured");
}

/// The race the capture's start guards: a cancel saved while the gateway
/// is taking the money would owe a void that comes too late, and leave a
/// cancelled order charged. The gateway holds the capture's answer while
/// the customer cancels.
#[tokio::test]
async fn a_cancel_while_a_shipment_captures_the_payment_is_refused_and_no_cancelled_order_is_charged() {
    let Some((app, gateway)) = spawn_app_with_gateway(|config| {
        config.payment.timeout = Duration::from_secs(5);
    })
    .await
    else {
        return;
    };
    app.put_product("TEA", "4.00", 10).await;
    let alice = token("alice", false);
    let order = settled_order(&app, &alice, "TEA", "confirmed").await;
    let id = order["id"].as_str().unwrap();
    gateway.set_mode("hold-captures").await;
    let (first_ship, cancel) = tokio::join!(fulfil(&app, id, "ship"), async {
        eventually("the capture to reach the gateway", || async {
            gateway.held(id).await.filter(|held| held["captures"] == 1)
        })
        .await;
        let cancel = app.post_empty(&format!("/api/v1/orders/{id}/cancel"), Some(&alice)).await;
        gateway.set_mode("approve").await;
        cancel
    });
    let refusal = problem(cancel, StatusCode::CONFLICT).await;
    assert!(refusal["detail"].as_str().unwrap().contains("being shipped"), "{refusal}");
    // A remote stack's shorter timeout may have lost the held answer
    // (503): shipping again learns the outcome from the gateway.
    let shipped = match first_ship.status() {
        StatusCode::OK => first_ship.json().await.unwrap(),
        StatusCode::SERVICE_UNAVAILABLE => fulfilled(&app, id, "ship").await,
        other => panic!("the shipment answered {other}"),
    };
    assert_eq!(
        (shipped["status"].as_str(), shipped["payment"]["status"].as_str()),
        (Some("shipped"), Some("captured"))
    );
    let held = gateway.held(id).await.unwrap();
    assert_eq!((held["status"].as_str(), held["voids"].as_u64()), (Some("captured"), Some(0)), "{held}");
    problem(app.post_empty(&format!("/api/v1/orders/{id}/cancel"), Some(&alice)).await, StatusCode::CONFLICT).await;
}

#[tokio::test]
async fn fulfilment_steps_out_of_order_are_conflicts() {
    let Some((app, _gateway)) = spawn_app_with_gateway(|_| {}).await else { return };
    app.put_product("TEA", "4.00", 10).await;
    let alice = token("alice", false);
    let card = settled_order(&app, &alice, "TEA", "confirmed").await;
    let card = card["id"].as_str().unwrap();
    problem(fulfil(&app, card, "payment").await, StatusCode::CONFLICT).await;
    problem(fulfil(&app, card, "deliver").await, StatusCode::CONFLICT).await;
    fulfilled(&app, card, "ship").await;
    problem(fulfil(&app, card, "ship").await, StatusCode::CONFLICT).await;
    let wrong = app
        .post_json(&format!("/api/v1/orders/{card}/payment"), Some(&app.admin), &json!({"status": "refunded"}))
        .await;
    problem(wrong, StatusCode::UNPROCESSABLE_ENTITY).await;
}

#[tokio::test]
async fn customers_are_forbidden_the_fulfilment_routes_and_unknown_orders_are_not_found() {
    let Some((app, _gateway)) = spawn_app_with_gateway(|_| {}).await else { return };
    app.put_product("TEA", "4.00", 10).await;
    let alice = token("alice", false);
    let order = settled_order(&app, &alice, "TEA", "confirmed").await;
    let id = order["id"].as_str().unwrap();
    for step in ["payment", "ship", "deliver"] {
        let path = format!("/api/v1/orders/{id}/{step}");
        problem(app.post_json(&path, Some(&alice), &json!({"status": "paid"})).await, StatusCode::FORBIDDEN).await;
        let unknown = format!("/api/v1/orders/{}/{step}", Uuid::now_v7());
        problem(app.post_json(&unknown, Some(&app.admin), &json!({"status": "paid"})).await, StatusCode::NOT_FOUND)
            .await;
    }
    assert_eq!(app.order(&alice, id).await["status"], "confirmed", "nothing changed");
}
