use reqwest::StatusCode;

use crate::helpers::{eventually, problem, spawn_app, token};

#[tokio::test]
async fn an_order_is_accepted_pending_and_then_confirmed() {
    let app = spawn_app().await;
    app.put_product("TEA", "12.50", 5).await;
    let alice = token("alice", false);

    let response = app.place_order(&alice, &[("TEA", 2)]).await;
    assert_eq!(response.status(), StatusCode::ACCEPTED);
    let location = response.headers()["location"].to_str().unwrap().to_owned();
    let order: serde_json::Value = response.json().await.unwrap();
    assert_eq!(order["status"], "pending");
    assert_eq!(order["customer_id"], "alice");
    assert_eq!(order["total"], "25.00");
    assert_eq!(order["currency"], "EUR");
    assert_eq!(order["items"][0]["unit_price"], "12.50");
    let id = order["id"].as_str().unwrap();
    assert_eq!(location, format!("/api/v1/orders/{id}"));

    let confirmed = app.settled(&alice, id, "confirmed").await;
    assert_eq!(confirmed["total"], "25.00");
    let tea = app.product("TEA").await;
    assert_eq!(tea["available"], 3);
}

#[tokio::test]
async fn an_order_that_does_not_fit_is_rejected_with_nothing_reserved() {
    let app = spawn_app().await;
    app.put_product("A", "1.00", 5).await;
    app.put_product("B", "1.00", 1).await;
    let alice = token("alice", false);

    // Accepted although B has too little: stock is never checked at intake.
    let id = app.accepted_order(&alice, &[("A", 2), ("B", 3)]).await;
    app.settled(&alice, &id, "rejected").await;
    assert_eq!(app.product("A").await["available"], 5, "no line of a rejected order is reserved");
    assert_eq!(app.product("B").await["available"], 1);
}

#[tokio::test]
async fn cancelling_a_confirmed_order_releases_its_stock() {
    let app = spawn_app().await;
    app.put_product("TEA", "3.00", 4).await;
    let alice = token("alice", false);
    let id = app.accepted_order(&alice, &[("TEA", 3)]).await;
    app.settled(&alice, &id, "confirmed").await;
    assert_eq!(app.product("TEA").await["available"], 1);

    let response = app.post_json(&format!("/api/v1/orders/{id}/cancel"), Some(&alice), &serde_json::json!({})).await;
    assert_eq!(response.status(), StatusCode::ACCEPTED);
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["status"], "cancelled");
    eventually("stock to be released", || async { (app.product("TEA").await["available"] == 4).then_some(()) }).await;

    // Cancelled is final.
    let again = app.post_json(&format!("/api/v1/orders/{id}/cancel"), Some(&alice), &serde_json::json!({})).await;
    problem(again, StatusCode::CONFLICT).await;
}

#[tokio::test]
async fn a_rejected_order_cannot_be_cancelled() {
    let app = spawn_app().await;
    app.put_product("TEA", "3.00", 0).await;
    let alice = token("alice", false);
    let id = app.accepted_order(&alice, &[("TEA", 1)]).await;
    app.settled(&alice, &id, "rejected").await;
    let response =
        app.client.post(app.url(&format!("/api/v1/orders/{id}/cancel"))).bearer_auth(&alice).send().await.unwrap();
    problem(response, StatusCode::CONFLICT).await;
}

#[tokio::test]
async fn a_cancel_racing_the_saga_never_leaks_stock() {
    let app = spawn_app().await;
    app.put_product("TEA", "1.00", 100).await;
    let alice = token("alice", false);
    let mut ids = Vec::new();
    for _ in 0..20 {
        let id = app.accepted_order(&alice, &[("TEA", 2)]).await;
        // Cancel at once: sometimes before inventory reserved, sometimes after.
        let response =
            app.client.post(app.url(&format!("/api/v1/orders/{id}/cancel"))).bearer_auth(&alice).send().await.unwrap();
        assert!(matches!(response.status(), StatusCode::ACCEPTED | StatusCode::CONFLICT));
        ids.push(id);
    }
    for id in &ids {
        app.settled(&alice, id, "cancelled").await;
    }
    // A release follows its order's cancellation through the outbox relay
    // (every second on Spin), which no queue depth shows yet: wait for the
    // stock itself. A leaked reservation never comes back, and times out.
    eventually("every reservation of a cancelled order to be released", || async {
        (app.product("TEA").await["available"] == 100).then_some(())
    })
    .await;
}

#[tokio::test]
async fn fifty_orders_racing_for_the_last_ten_units_reserve_exactly_ten() {
    let app = spawn_app().await;
    app.put_product("LAST", "9.99", 10).await;
    let placements = futures::future::join_all((0..50).map(|i| {
        let app = &app;
        async move {
            let customer = token(&format!("racer-{i}"), false);
            let id = app.accepted_order(&customer, &[("LAST", 1)]).await;
            (customer, id)
        }
    }))
    .await;

    let mut confirmed = 0;
    for (customer, id) in &placements {
        let status = eventually("a final status", || async {
            let order = app.order(customer, id).await;
            let status = order["status"].as_str().unwrap().to_owned();
            (status != "pending").then_some(status)
        })
        .await;
        if status == "confirmed" {
            confirmed += 1;
        } else {
            assert_eq!(status, "rejected");
        }
    }
    assert_eq!(confirmed, 10);
    assert_eq!(app.product("LAST").await["available"], 0);
    // The last outcomes may still sit in the outbox, where no queue depth
    // shows them: wait for the read model to count all fifty.
    let summary = eventually("every order of the race to settle in the read model", || async {
        let summary = app.summary().await;
        let settled = summary["orders_by_status"]["confirmed"].as_u64().unwrap_or(0)
            + summary["orders_by_status"]["rejected"].as_u64().unwrap_or(0);
        (settled == 50).then_some(summary)
    })
    .await;
    assert_eq!(summary["units_by_sku"]["LAST"], 10);
    assert_eq!(summary["orders_by_status"]["confirmed"], 10);
    assert_eq!(summary["orders_by_status"]["rejected"], 40);
}

/// Every order of a burst gets its 202: on the wasm hosts each request is a
/// fresh instance, and instances once sent colliding DynamoDB idempotency
/// tokens, which surfaced here as 503s.
#[tokio::test]
async fn a_burst_of_two_hundred_orders_from_thirty_two_clients_is_all_accepted_and_never_oversold() {
    const CLIENTS: usize = 32;
    const ORDERS: usize = 200;
    const STOCK: u32 = 150;
    let app = spawn_app().await;
    app.put_product("BURST", "2.50", STOCK).await;
    let statuses = futures::future::join_all((0..CLIENTS).map(|client| {
        let app = &app;
        async move {
            let customer = token(&format!("burst-{client}"), false);
            let mut statuses = Vec::new();
            // Client c places orders c, c + 32, c + 64, ... one after another.
            for _ in (client..ORDERS).step_by(CLIENTS) {
                statuses.push(app.place_order(&customer, &[("BURST", 1)]).await.status());
            }
            statuses
        }
    }))
    .await;
    let statuses: Vec<StatusCode> = statuses.into_iter().flatten().collect();
    assert_eq!(statuses.len(), ORDERS);
    let refused: Vec<&StatusCode> = statuses.iter().filter(|s| **s != StatusCode::ACCEPTED).collect();
    assert!(refused.is_empty(), "every order of the burst must be accepted, these were not: {refused:?}");

    let summary = eventually("every order of the burst to settle in the read model", || async {
        let summary = app.summary().await;
        let settled = summary["orders_by_status"]["confirmed"].as_u64().unwrap_or(0)
            + summary["orders_by_status"]["rejected"].as_u64().unwrap_or(0);
        (settled == ORDERS as u64).then_some(summary)
    })
    .await;
    assert_eq!(summary["orders_by_status"]["confirmed"], STOCK);
    assert_eq!(summary["units_by_sku"]["BURST"], STOCK);
    assert_eq!(app.product("BURST").await["available"], 0, "exactly the stock was reserved");
}

#[tokio::test]
async fn another_customers_order_is_not_found_but_an_admin_sees_it() {
    let app = spawn_app().await;
    app.put_product("TEA", "1.00", 5).await;
    let (alice, bob) = (token("alice", false), token("bob", false));
    let id = app.accepted_order(&alice, &[("TEA", 1)]).await;

    let peek = app.get(&format!("/api/v1/orders/{id}"), Some(&bob)).await;
    let missing = app.get("/api/v1/orders/01939c2e-0000-7000-8000-000000000000", Some(&bob)).await;
    let (peek, missing) = (problem(peek, StatusCode::NOT_FOUND).await, problem(missing, StatusCode::NOT_FOUND).await);
    assert_eq!(peek, missing, "another's order must look exactly like a missing one");

    let cancel =
        app.client.post(app.url(&format!("/api/v1/orders/{id}/cancel"))).bearer_auth(&bob).send().await.unwrap();
    problem(cancel, StatusCode::NOT_FOUND).await;
    assert_eq!(app.order(&app.admin, &id).await["customer_id"], "alice");
}

#[tokio::test]
async fn a_customer_lists_only_their_own_orders_newest_first_by_page() {
    let app = spawn_app().await;
    app.put_product("TEA", "1.00", 50).await;
    let (alice, bob) = (token("alice", false), token("bob", false));
    let mut mine = Vec::new();
    for _ in 0..5 {
        mine.push(app.accepted_order(&alice, &[("TEA", 1)]).await);
    }
    app.accepted_order(&bob, &[("TEA", 1)]).await;
    mine.reverse();

    let first: serde_json::Value = eventually("the read model to have all five", || async {
        let page: serde_json::Value = app.get("/api/v1/orders?limit=3", Some(&alice)).await.json().await.unwrap();
        let ids: Vec<&str> = page["items"].as_array()?.iter().filter_map(|o| o["id"].as_str()).collect();
        (ids == mine[..3]).then_some(page.clone())
    })
    .await;
    let cursor = first["next_cursor"].as_str().expect("a next page");
    let second: serde_json::Value =
        app.get(&format!("/api/v1/orders?limit=3&cursor={cursor}"), Some(&alice)).await.json().await.unwrap();
    let ids: Vec<&str> = second["items"].as_array().unwrap().iter().map(|o| o["id"].as_str().unwrap()).collect();
    assert_eq!(ids, mine[3..]);
    assert!(second["next_cursor"].is_null());
}
