use reqwest::StatusCode;
use serde_json::json;

use crate::helpers::{problem, spawn_app};

#[tokio::test]
async fn an_admin_creates_updates_and_restocks_a_product() {
    let app = spawn_app().await;
    let created = app.put_product("TEA-1", "12.50", 7).await;
    assert_eq!(created.status(), StatusCode::CREATED);
    let body: serde_json::Value = created.json().await.unwrap();
    assert_eq!(body["sku"], "TEA-1");
    assert_eq!(body["price"], "12.50");
    assert_eq!(body["currency"], "EUR");
    assert_eq!(body["available"], 7);
    assert!(body["updated_at"].is_string());

    // An update changes name and price; stock moves only by restock and orders.
    let updated = app.put_product("TEA-1", "13", 999).await;
    assert_eq!(updated.status(), StatusCode::OK);
    let body: serde_json::Value = updated.json().await.unwrap();
    assert_eq!((body["price"].as_str(), body["available"].as_i64()), (Some("13.00"), Some(7)));

    let restocked = app.post_json("/api/v1/products/TEA-1/restock", Some(&app.admin), &json!({"quantity": 3})).await;
    assert_eq!(restocked.status(), StatusCode::OK);
    assert_eq!(restocked.json::<serde_json::Value>().await.unwrap()["available"], 10);
    assert_eq!(app.product("TEA-1").await["available"], 10);
}

#[tokio::test]
async fn restocking_checks_the_quantity_and_the_product() {
    let app = spawn_app().await;
    app.put_product("TEA", "1.00", 1).await;
    for quantity in [json!(0), json!(1_000_001), json!(-3), json!("5"), json!(2.5)] {
        let response =
            app.post_json("/api/v1/products/TEA/restock", Some(&app.admin), &json!({"quantity": quantity})).await;
        let problem = problem(response, StatusCode::UNPROCESSABLE_ENTITY).await;
        assert_eq!(problem["errors"][0]["field"], "quantity");
    }
    let missing = app.post_json("/api/v1/products/NOPE/restock", Some(&app.admin), &json!({"quantity": 1})).await;
    problem(missing, StatusCode::NOT_FOUND).await;
}

#[tokio::test]
async fn invalid_products_are_refused_naming_the_field() {
    let app = spawn_app().await;
    let cases = [
        ("lower", json!({"name": "Tea", "price": "1.00", "currency": "EUR"}), "sku"),
        ("TEA", json!({"name": "", "price": "1.00", "currency": "EUR"}), "name"),
        ("TEA", json!({"name": "Tea", "price": "1.001", "currency": "EUR"}), "price"),
        ("TEA", json!({"name": "Tea", "price": 1.5, "currency": "EUR"}), "price"),
        ("TEA", json!({"name": "Tea", "price": "-1", "currency": "EUR"}), "price"),
        ("TEA", json!({"name": "Tea", "price": "1.00", "currency": "euro"}), "currency"),
        ("TEA", json!({"name": "Tea", "price": "1.00", "currency": "EUR", "stock": -1}), "stock"),
        ("TEA", json!({"price": "1.00", "currency": "EUR"}), "name"),
    ];
    for (sku, body, field) in cases {
        let response = app
            .client
            .put(app.url(&format!("/api/v1/products/{sku}")))
            .bearer_auth(&app.admin)
            .json(&body)
            .send()
            .await
            .unwrap();
        let problem = problem(response, StatusCode::UNPROCESSABLE_ENTITY).await;
        assert_eq!(problem["errors"][0]["field"], field, "{body}");
    }
    let extra = json!({"name": "Tea", "price": "1.00", "currency": "EUR", "available": 5});
    let response =
        app.client.put(app.url("/api/v1/products/TEA")).bearer_auth(&app.admin).json(&extra).send().await.unwrap();
    problem(response, StatusCode::BAD_REQUEST).await;
    problem(app.get("/api/v1/products/TEA", None).await, StatusCode::NOT_FOUND).await;
}

#[tokio::test]
async fn the_catalog_is_listed_by_sku_a_page_at_a_time() {
    let app = spawn_app().await;
    for sku in ["D", "B", "A", "C", "E"] {
        app.put_product(sku, "1.00", 1).await;
    }
    let mut seen = Vec::new();
    let mut path = "/api/v1/products?limit=2".to_owned();
    loop {
        let page: serde_json::Value = app.get(&path, None).await.json().await.unwrap();
        seen.extend(page["items"].as_array().unwrap().iter().map(|p| p["sku"].as_str().unwrap().to_owned()));
        match page["next_cursor"].as_str() {
            Some(cursor) => path = format!("/api/v1/products?limit=2&cursor={cursor}"),
            None => break,
        }
    }
    assert_eq!(seen, ["A", "B", "C", "D", "E"]);
    for bad in ["limit=0", "limit=101", "limit=x", "cursor=forged", "color=red"] {
        problem(app.get(&format!("/api/v1/products?{bad}"), None).await, StatusCode::BAD_REQUEST).await;
    }
}
