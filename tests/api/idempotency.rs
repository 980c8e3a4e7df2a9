use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{TestApp, eventually, problem, spawn_app, token};

async fn post_with_key(app: &TestApp, token: &str, key: &str, body: &Value) -> reqwest::Response {
    app.client
        .post(app.url("/api/v1/orders"))
        .bearer_auth(token)
        .header("Idempotency-Key", key)
        .json(body)
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn the_same_key_and_body_return_the_original_answer_and_no_second_order() {
    let app = spawn_app().await;
    app.put_product("TEA", "2.00", 10).await;
    let alice = token("alice", false);
    let body = json!({"items": [{"sku": "TEA", "quantity": 1}]});

    let first = post_with_key(&app, &alice, "checkout-42", &body).await;
    assert_eq!(first.status(), StatusCode::ACCEPTED);
    let first: Value = first.json().await.unwrap();
    app.settled(&alice, first["id"].as_str().unwrap(), "confirmed").await;

    let again = post_with_key(&app, &alice, "checkout-42", &body).await;
    assert_eq!(again.status(), StatusCode::ACCEPTED);
    assert_eq!(again.json::<Value>().await.unwrap(), first, "the original status and body");
    app.drained().await;
    assert_eq!(app.product("TEA").await["available"], 9, "only one order reserved stock");
}

/// The retry comes after the catalog changed so that the same body could
/// no longer be placed (one line now priced in another currency): it still
/// gets the first answer, as the key promises.
#[tokio::test]
async fn a_retry_gets_its_first_answer_even_after_the_catalog_changed_under_it() {
    let app = spawn_app().await;
    app.put_product("TEA", "2.00", 10).await;
    app.put_product("MUG", "8.00", 10).await;
    let alice = token("alice", false);
    let body = json!({"items": [{"sku": "TEA", "quantity": 1}, {"sku": "MUG", "quantity": 1}]});
    let first = post_with_key(&app, &alice, "checkout-77", &body).await;
    assert_eq!(first.status(), StatusCode::ACCEPTED);
    let first: Value = first.json().await.unwrap();

    let repriced = app
        .client
        .put(app.url("/api/v1/products/MUG"))
        .bearer_auth(&app.admin)
        .json(&json!({"name": "Product MUG", "price": "9.00", "currency": "USD"}))
        .send()
        .await
        .unwrap();
    assert_eq!(repriced.status(), StatusCode::OK);
    problem(app.place_order(&alice, &[("TEA", 1), ("MUG", 1)]).await, StatusCode::UNPROCESSABLE_ENTITY).await;

    let again = post_with_key(&app, &alice, "checkout-77", &body).await;
    assert_eq!(again.status(), StatusCode::ACCEPTED);
    assert_eq!(again.headers()["idempotent-replayed"], "true");
    assert_eq!(again.json::<Value>().await.unwrap()["id"], first["id"], "the original order");
}

#[tokio::test]
async fn the_same_key_with_another_body_is_refused() {
    let app = spawn_app().await;
    app.put_product("TEA", "2.00", 10).await;
    let alice = token("alice", false);
    post_with_key(&app, &alice, "k", &json!({"items": [{"sku": "TEA", "quantity": 1}]})).await;
    let other = post_with_key(&app, &alice, "k", &json!({"items": [{"sku": "TEA", "quantity": 2}]})).await;
    problem(other, StatusCode::UNPROCESSABLE_ENTITY).await;
}

#[tokio::test]
async fn keys_belong_to_one_customer() {
    let app = spawn_app().await;
    app.put_product("TEA", "2.00", 10).await;
    let body = json!({"items": [{"sku": "TEA", "quantity": 1}]});
    let alices: Value = post_with_key(&app, &token("alice", false), "shared-key", &body).await.json().await.unwrap();
    let bobs = post_with_key(&app, &token("bob", false), "shared-key", &body).await;
    assert_eq!(bobs.status(), StatusCode::ACCEPTED);
    let bobs: Value = bobs.json().await.unwrap();
    assert_ne!(alices["id"], bobs["id"]);
    assert_eq!(bobs["customer_id"], "bob");
}

#[tokio::test]
async fn concurrent_duplicates_create_one_order() {
    let app = spawn_app().await;
    app.put_product("TEA", "2.00", 100).await;
    let alice = token("alice", false);
    let body = json!({"items": [{"sku": "TEA", "quantity": 1}]});
    let answers = futures::future::join_all((0..25).map(|_| post_with_key(&app, &alice, "double-click", &body))).await;
    let mut ids = Vec::new();
    for answer in answers {
        assert_eq!(answer.status(), StatusCode::ACCEPTED);
        ids.push(answer.json::<Value>().await.unwrap()["id"].as_str().unwrap().to_owned());
    }
    ids.dedup();
    assert_eq!(ids.len(), 1, "every duplicate got the one order");
    // Settled, not drained: the reservation follows the order through the
    // outbox, which no queue depth shows.
    app.settled(&alice, &ids[0], "confirmed").await;
    let listed: Value = eventually("the order list", || async {
        let list: Value = app.get("/api/v1/orders", Some(&alice)).await.json().await.unwrap();
        (!list["items"].as_array()?.is_empty()).then_some(list)
    })
    .await;
    assert_eq!(listed["items"].as_array().unwrap().len(), 1);
    assert_eq!(app.product("TEA").await["available"], 99);
}

#[tokio::test]
async fn malformed_keys_are_refused() {
    let app = spawn_app().await;
    let alice = token("alice", false);
    let body = json!({"items": [{"sku": "TEA", "quantity": 1}]});
    for key in ["", &"k".repeat(256), "has space"] {
        problem(post_with_key(&app, &alice, key, &body).await, StatusCode::BAD_REQUEST).await;
    }
}
