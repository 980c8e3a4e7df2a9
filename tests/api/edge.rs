use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{problem, spawn_app, token};

#[tokio::test]
async fn invalid_orders_are_refused_naming_the_field() {
    let app = spawn_app().await;
    app.put_product("EUR-ITEM", "1.00", 5).await;
    app.client
        .put(app.url("/api/v1/products/USD-ITEM"))
        .bearer_auth(&app.admin)
        .json(&json!({"name": "Dollar", "price": "1.00", "currency": "USD"}))
        .send()
        .await
        .unwrap();
    let alice = token("alice", false);
    let line = json!({"sku": "EUR-ITEM", "quantity": 1});
    let cases = [
        (json!({"items": []}), "items"),
        (json!({"items": vec![line.clone(); 51]}), "items"),
        (json!({}), "items"),
        (json!({"items": [{"sku": "EUR-ITEM", "quantity": 0}]}), "items[0].quantity"),
        (json!({"items": [{"sku": "EUR-ITEM", "quantity": 1001}]}), "items[0].quantity"),
        (json!({"items": [line.clone(), {"sku": "EUR-ITEM", "quantity": -1}]}), "items[1].quantity"),
        (json!({"items": [{"sku": "EUR-ITEM", "quantity": "1"}]}), "items[0].quantity"),
        (json!({"items": [{"sku": "eur-item", "quantity": 1}]}), "items[0].sku"),
        (json!({"items": [{"sku": "NOT-SOLD", "quantity": 1}]}), "items[0].sku"),
        (json!({"items": [line.clone(), {"sku": "USD-ITEM", "quantity": 1}]}), "items[1].sku"),
        (json!({"items": [{"quantity": 1}]}), "items[0].sku"),
    ];
    for (body, field) in cases {
        let response = app.post_json("/api/v1/orders", Some(&alice), &body).await;
        let problem = problem(response, StatusCode::UNPROCESSABLE_ENTITY).await;
        assert_eq!(problem["errors"][0]["field"], field, "{body}");
    }
    assert!(
        app.get("/api/v1/orders", Some(&alice)).await.json::<Value>().await.unwrap()["items"]
            .as_array()
            .unwrap()
            .is_empty()
    );
}

#[tokio::test]
async fn a_client_cannot_set_fields_it_does_not_own() {
    let app = spawn_app().await;
    app.put_product("TEA", "1.00", 5).await;
    let alice = token("alice", false);
    for extra in [
        json!({"items": [{"sku": "TEA", "quantity": 1}], "status": "confirmed"}),
        json!({"items": [{"sku": "TEA", "quantity": 1}], "total": "0.01"}),
        json!({"items": [{"sku": "TEA", "quantity": 1}], "customer_id": "bob"}),
        json!({"items": [{"sku": "TEA", "quantity": 1, "unit_price": "0.01"}]}),
    ] {
        let response = app.post_json("/api/v1/orders", Some(&alice), &extra).await;
        problem(response, StatusCode::BAD_REQUEST).await;
    }
}

#[tokio::test]
async fn oversized_mistyped_and_malformed_bodies_are_refused() {
    let app = spawn_app().await;
    let alice = token("alice", false);
    let send = |body: Vec<u8>, content_type: &'static str| {
        app.client
            .post(app.url("/api/v1/orders"))
            .bearer_auth(&alice)
            .header("content-type", content_type)
            .body(body)
            .send()
    };
    problem(send(vec![b' '; 64 * 1024 + 1], "application/json").await.unwrap(), StatusCode::PAYLOAD_TOO_LARGE).await;
    problem(send(br#"{"items":[]}"#.to_vec(), "text/plain").await.unwrap(), StatusCode::UNSUPPORTED_MEDIA_TYPE).await;
    let no_type = app.client.post(app.url("/api/v1/orders")).bearer_auth(&alice).body("{}").send().await.unwrap();
    problem(no_type, StatusCode::UNSUPPORTED_MEDIA_TYPE).await;
    for broken in [&b"{"[..], b"not json", b"[1,2]", b"{\"items\":[]}{}"] {
        problem(send(broken.to_vec(), "application/json").await.unwrap(), StatusCode::BAD_REQUEST).await;
    }
    // Deep nesting is refused at the first level that has the wrong shape,
    // long before it could cost stack or memory.
    let deep = format!("{{\"items\":{}{}}}", "[".repeat(5000), "]".repeat(5000));
    let deep =
        problem(send(deep.into_bytes(), "application/json").await.unwrap(), StatusCode::UNPROCESSABLE_ENTITY).await;
    assert!(deep["errors"][0]["field"].as_str().unwrap().starts_with("items[0]"), "{deep}");
    // A line is an object, never the array of its fields in order.
    let positional = send(br#"{"items":[["TEA",1]]}"#.to_vec(), "application/json").await.unwrap();
    let positional = problem(positional, StatusCode::UNPROCESSABLE_ENTITY).await;
    assert_eq!(positional["errors"][0]["field"], "items[0]", "{positional}");
    assert!(positional["errors"][0]["message"].as_str().unwrap().contains("a JSON object"), "{positional}");
    let deep_unknown = format!("{{\"x\":{}{}}}", "[".repeat(5000), "]".repeat(5000));
    problem(send(deep_unknown.into_bytes(), "application/json").await.unwrap(), StatusCode::BAD_REQUEST).await;
    // A route that reads no body refuses an oversized one all the same.
    app.put_product("TEA", "1.00", 5).await;
    let id = app.accepted_order(&alice, &[("TEA", 1)]).await;
    let cancel = app
        .client
        .post(app.url(&format!("/api/v1/orders/{id}/cancel")))
        .bearer_auth(&alice)
        .body(vec![b' '; 64 * 1024 + 1])
        .send()
        .await
        .unwrap();
    if app.runner_if_local().is_some() {
        assert_eq!(cancel.headers()["connection"], "close", "its body was not read: the connection is not reused");
    }
    problem(cancel, StatusCode::PAYLOAD_TOO_LARGE).await;
    assert_ne!(app.order(&alice, &id).await["status"], "cancelled", "nothing was cancelled");
}

#[tokio::test]
async fn v2_is_negotiated_by_accept_and_v1_announces_its_successor() {
    let app = spawn_app().await;
    app.put_product("TEA", "12.50", 5).await;
    let v2 = app
        .client
        .get(app.url("/api/v1/products/TEA"))
        .header("accept", "application/vnd.orderly.v2+json")
        .send()
        .await
        .unwrap();
    assert_eq!(v2.status(), StatusCode::OK);
    assert_eq!(v2.headers()["content-type"], "application/vnd.orderly.v2+json");
    assert!(v2.headers().get("deprecation").is_none());
    let body: Value = v2.json().await.unwrap();
    assert_eq!(body["price"], json!({"amount_minor": 1250, "currency": "EUR"}));
    assert!(body.get("currency").is_none());

    let v1 = app.get("/api/v1/products/TEA", None).await;
    for header in ["deprecation", "sunset", "link"] {
        assert!(v1.headers().get(header).is_some(), "v1 lacks {header}");
    }
    assert!(v1.headers()["link"].to_str().unwrap().contains("successor-version"));
    assert_eq!(v1.json::<Value>().await.unwrap()["price"], "12.50");

    let alice = token("alice", false);
    let order = app
        .client
        .post(app.url("/api/v1/orders"))
        .bearer_auth(&alice)
        .header("accept", "application/vnd.orderly.v2+json")
        .json(&json!({"items": [{"sku": "TEA", "quantity": 2}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(order.status(), StatusCode::ACCEPTED);
    let order: Value = order.json().await.unwrap();
    assert_eq!(order["total"], json!({"amount_minor": 2500, "currency": "EUR"}));
    assert_eq!(order["items"][0]["unit_price"], json!({"amount_minor": 1250, "currency": "EUR"}));

    let v3 = app
        .client
        .get(app.url("/api/v1/products/TEA"))
        .header("accept", "application/vnd.orderly.v3+json")
        .send()
        .await
        .unwrap();
    problem(v3, StatusCode::NOT_ACCEPTABLE).await;
}

#[tokio::test]
async fn an_unknown_version_is_refused_on_routes_with_one_representation_too() {
    let app = spawn_app().await;
    for path in ["/api/v1/analytics/summary", "/api/v1/notifications", "/api/v1/orders", "/api/v1/openapi.json"] {
        let response = app
            .client
            .get(app.url(path))
            .bearer_auth(&app.admin)
            .header("accept", "application/vnd.orderly.v3+json")
            .send()
            .await
            .unwrap();
        assert!(response.headers().contains_key("x-request-id"), "{path}");
        problem(response, StatusCode::NOT_ACCEPTABLE).await;
    }
    let summary = app
        .client
        .get(app.url("/api/v1/analytics/summary"))
        .bearer_auth(&app.admin)
        .header("accept", "application/vnd.orderly.v2+json")
        .send()
        .await
        .unwrap();
    assert_eq!(summary.status(), StatusCode::OK, "a version we serve is not refused");
}

#[tokio::test]
async fn every_response_carries_a_request_id_echoed_or_generated() {
    let app = spawn_app().await;
    let echoed = app.client.get(app.url("/health")).header("x-request-id", "trace-me-123").send().await.unwrap();
    assert_eq!(echoed.headers()["x-request-id"], "trace-me-123");
    let generated = app.get("/api/v1/products/NOPE", None).await;
    assert!(!generated.headers()["x-request-id"].is_empty());
    let unauthorized = app.get("/api/v1/orders", None).await;
    assert!(unauthorized.headers().get("x-request-id").is_some());
    for header in ["x-content-type-options", "x-frame-options", "cache-control", "content-security-policy"] {
        assert!(unauthorized.headers().get(header).is_some(), "missing {header}");
    }
}

#[tokio::test]
async fn unknown_routes_and_methods_answer_with_problems() {
    let app = spawn_app().await;
    problem(app.get("/api/v1/nothing-here", None).await, StatusCode::NOT_FOUND).await;
    problem(app.get("/api/v1/orders/not-a-uuid", Some(&token("alice", false))).await, StatusCode::NOT_FOUND).await;
    let delete = app.client.delete(app.url("/api/v1/products/TEA")).send().await.unwrap();
    problem(delete, StatusCode::METHOD_NOT_ALLOWED).await;
}

#[tokio::test]
async fn health_reports_each_dependency() {
    let app = spawn_app().await;
    let response = app.get("/health", None).await;
    assert_eq!(response.status(), StatusCode::OK);
    let health: Value = response.json().await.unwrap();
    assert_eq!(health["status"], "ok");
    assert_eq!(health["store"], "ok");
    for queue in ["order-intake", "inventory", "notification", "analytics"] {
        assert_eq!(health["queues"][queue]["status"], "ok", "{queue}");
    }
}

#[tokio::test]
async fn the_openapi_document_describes_every_route() {
    let app = spawn_app().await;
    let doc: Value = app.get("/api/v1/openapi.json", None).await.json().await.unwrap();
    assert!(doc["openapi"].as_str().unwrap().starts_with("3.1"));
    let paths = doc["paths"].as_object().unwrap();
    for (path, methods) in [
        ("/health", &["get"][..]),
        ("/api/v1/products", &["get"]),
        ("/api/v1/products/{sku}", &["get", "put"]),
        ("/api/v1/products/{sku}/restock", &["post"]),
        ("/api/v1/orders", &["get", "post"]),
        ("/api/v1/orders/{id}", &["get"]),
        ("/api/v1/orders/{id}/cancel", &["post"]),
        ("/api/v1/analytics/summary", &["get"]),
        ("/api/v1/notifications", &["get"]),
    ] {
        for method in methods {
            assert!(paths.get(path).and_then(|p| p.get(method)).is_some(), "{method} {path} is not documented");
        }
    }
    assert!(doc["components"]["securitySchemes"]["bearer"].is_object());
    // Every route answers the version Accept asks for, or 406.
    let v2 = |path: &str, method: &str, status: &str| {
        doc["paths"][path][method]["responses"][status]["content"]["application/vnd.orderly.v2+json"]["schema"]["$ref"]
            .clone()
    };
    assert_eq!(v2("/api/v1/orders/{id}", "get", "200"), "#/components/schemas/OrderV2");
    assert_eq!(v2("/api/v1/products", "get", "200"), "#/components/schemas/Page_ProductV2");
    assert_eq!(v2("/api/v1/orders", "post", "202"), "#/components/schemas/OrderV2");
    for schema in ["OrderV2", "ProductV2", "Page_OrderV2", "Page_ProductV2"] {
        assert!(doc["components"]["schemas"][schema].is_object(), "{schema} is not in the document");
    }
    assert!(doc["paths"]["/api/v1/products/{sku}"]["get"]["responses"]["406"].is_object());
}

#[tokio::test]
async fn a_path_that_is_not_utf8_is_a_problem() {
    let app = spawn_app().await;
    let alice = token("alice", false);
    for (path, caller) in [
        ("/api/v1/products/%FF", None),
        ("/api/v1/orders/%C3%28", Some(&alice)),
        ("/api/v1/orders/%FF/cancel", Some(&alice)),
    ] {
        let response = match path.ends_with("/cancel") {
            true => app.post_empty(path, caller.map(String::as_str)).await,
            false => app.get(path, caller.map(String::as_str)).await,
        };
        assert!(response.headers().contains_key("x-request-id"), "{path}");
        // The function that owns the route refuses it (400); a gateway that
        // routes by path may not match the segment to that route and hand it
        // to the default route's function instead, which has no such
        // resource (404). Either way a problem, never axum's plain text.
        let status = response.status();
        assert!([StatusCode::BAD_REQUEST, StatusCode::NOT_FOUND].contains(&status), "{path}: {status}");
        problem(response, status).await;
    }
}
