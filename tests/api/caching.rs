//! Contract §8 on every host: HTTP caching of catalog reads (ETag, 304,
//! `Cache-Control`, `Vary`), optimistic concurrency (`If-Match`, 412),
//! compression and CORS.

use std::io::Read;

use reqwest::StatusCode;
use reqwest::header::HeaderMap;
use serde_json::{Value, json};

use crate::helpers::*;

const V2: &str = "application/vnd.orderly.v2+json";

fn header<'a>(headers: &'a HeaderMap, name: &str) -> &'a str {
    headers.get(name).and_then(|v| v.to_str().ok()).unwrap_or_else(|| panic!("no {name} header in {headers:?}"))
}

/// Every token of every `Vary` line, lowercased.
fn vary(headers: &HeaderMap) -> Vec<String> {
    headers
        .get_all("vary")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|v| v.trim().to_ascii_lowercase())
        .collect()
}

/// `public, max-age=N` with N at most the contract's 5 s; returns N.
fn public_max_age(headers: &HeaderMap) -> u64 {
    let cache_control = header(headers, "cache-control");
    let age = cache_control
        .strip_prefix("public, max-age=")
        .and_then(|n| n.parse::<u64>().ok())
        .unwrap_or_else(|| panic!("not public with a max-age: {cache_control}"));
    assert!(age <= 5, "max-age {age} s is more than 5 s");
    age
}

async fn get_with(app: &TestApp, path: &str, headers: &[(&str, &str)]) -> reqwest::Response {
    let mut request = app.client.get(app.url(path));
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    request.send().await.expect("GET")
}

async fn etag_of(app: &TestApp, path: &str, accept: &str) -> String {
    let response = get_with(app, path, &[("accept", accept)]).await;
    assert_eq!(response.status(), StatusCode::OK, "GET {path}");
    header(response.headers(), "etag").to_owned()
}

async fn put_with_if_match(app: &TestApp, sku: &str, price: &str, if_match: &str) -> reqwest::Response {
    app.client
        .put(app.url(&format!("/api/v1/products/{sku}")))
        .bearer_auth(&app.admin)
        .header("if-match", if_match)
        .json(&json!({"name": "Green tea", "price": price, "currency": "EUR"}))
        .send()
        .await
        .expect("PUT")
}

#[tokio::test]
async fn catalog_reads_carry_an_etag_per_representation_a_public_max_age_and_vary_accept() {
    let app = spawn_app().await;
    app.put_product("TEA", "12.50", 5).await;
    for path in ["/api/v1/products/TEA", "/api/v1/products", "/api/v1/products?limit=1"] {
        let v1 = get_with(&app, path, &[]).await;
        assert_eq!(v1.status(), StatusCode::OK, "{path}");
        public_max_age(v1.headers());
        assert!(vary(v1.headers()).contains(&"accept".to_owned()), "{path}: Vary {:?}", vary(v1.headers()));
        let v1_tag = header(v1.headers(), "etag").to_owned();
        assert!(v1_tag.starts_with('"') && v1_tag.ends_with('"'), "a strong tag: {v1_tag}");

        let v2 = get_with(&app, path, &[("accept", V2)]).await;
        assert_eq!(v2.status(), StatusCode::OK);
        public_max_age(v2.headers());
        assert!(vary(v2.headers()).contains(&"accept".to_owned()));
        assert_ne!(header(v2.headers(), "etag"), v1_tag, "{path}: v1 and v2 are different representations");
        // The same representation twice: the same tag.
        assert_eq!(etag_of(&app, path, "application/json").await, v1_tag, "{path}");
    }
}

#[tokio::test]
async fn a_current_if_none_match_gets_304_without_a_body_and_a_stale_one_gets_the_product() {
    let app = spawn_app().await;
    app.put_product("TEA", "12.50", 5).await;
    for (path, accept) in [
        ("/api/v1/products/TEA", "application/json"),
        ("/api/v1/products/TEA", V2),
        ("/api/v1/products?limit=10", "application/json"),
    ] {
        let tag = etag_of(&app, path, accept).await;
        let revalidated = get_with(&app, path, &[("accept", accept), ("if-none-match", &tag)]).await;
        assert_eq!(revalidated.status(), StatusCode::NOT_MODIFIED, "{path} {accept}");
        assert_eq!(header(revalidated.headers(), "etag"), tag, "a 304 carries the same tag");
        public_max_age(revalidated.headers());
        assert!(vary(revalidated.headers()).contains(&"accept".to_owned()));
        assert!(revalidated.bytes().await.unwrap().is_empty(), "a 304 has no body");

        // A list of tags, one of them current; and a weak form of it.
        let listed = format!("\"stale\", {tag}");
        let weak = format!("W/{tag}");
        for value in [listed.as_str(), weak.as_str()] {
            let response = get_with(&app, path, &[("accept", accept), ("if-none-match", value)]).await;
            assert_eq!(response.status(), StatusCode::NOT_MODIFIED, "If-None-Match: {value}");
        }
        let other = get_with(&app, path, &[("accept", accept), ("if-none-match", "\"stale\"")]).await;
        assert_eq!(other.status(), StatusCode::OK);
        assert!(!other.bytes().await.unwrap().is_empty());
    }
    // The v1 tag does not revalidate the v2 representation.
    let v1_tag = etag_of(&app, "/api/v1/products/TEA", "application/json").await;
    let v2 = get_with(&app, "/api/v1/products/TEA", &[("accept", V2), ("if-none-match", &v1_tag)]).await;
    assert_eq!(v2.status(), StatusCode::OK);
}

#[tokio::test]
async fn every_change_to_a_product_gives_it_a_new_etag_at_once() {
    let app = spawn_app().await;
    app.put_product("TEA", "12.50", 5).await;
    let path = "/api/v1/products/TEA";
    // Read twice: on the runner the second read is served by its cache.
    let created = etag_of(&app, path, "application/json").await;
    assert_eq!(etag_of(&app, path, "application/json").await, created);
    let list_before = etag_of(&app, "/api/v1/products", "application/json").await;

    assert_eq!(app.put_product("TEA", "13.00", 5).await.status(), StatusCode::OK);
    let updated = etag_of(&app, path, "application/json").await;
    assert_ne!(updated, created, "an update invalidates the tag at once");
    assert_ne!(etag_of(&app, "/api/v1/products", "application/json").await, list_before);
    let stale = get_with(&app, path, &[("if-none-match", &created)]).await;
    assert_eq!(stale.status(), StatusCode::OK, "the old tag no longer revalidates");
    assert_eq!(stale.json::<Value>().await.unwrap()["price"], "13.00");

    let restock = app.post_json(&format!("{path}/restock"), Some(&app.admin), &json!({"quantity": 2})).await;
    assert_eq!(restock.status(), StatusCode::OK);
    let restocked = etag_of(&app, path, "application/json").await;
    assert_ne!(restocked, updated);

    // A reservation moves stock behind the catalog's back (the saga, via
    // events): the tag changes with `available` all the same.
    let alice = token("alice", false);
    let order = app.accepted_order(&alice, &[("TEA", 3)]).await;
    app.settled(&alice, &order, "confirmed").await;
    let reserved = eventually("the reservation to show in the product", || async {
        let response = get_with(&app, path, &[]).await;
        let tag = header(response.headers(), "etag").to_owned();
        let body: Value = response.json().await.unwrap();
        (body["available"] == 4).then_some(tag)
    })
    .await;
    assert_ne!(reserved, restocked, "the tag changed with the stock");
}

#[tokio::test]
async fn if_match_updates_only_the_state_the_client_read() {
    let app = spawn_app().await;
    app.put_product("TEA", "12.50", 5).await;
    let read = etag_of(&app, "/api/v1/products/TEA", "application/json").await;

    let updated = put_with_if_match(&app, "TEA", "13.00", &read).await;
    assert_eq!(updated.status(), StatusCode::OK);
    let new_tag = header(updated.headers(), "etag").to_owned();
    assert_ne!(new_tag, read, "the answer names the new state");
    assert_eq!(new_tag, etag_of(&app, "/api/v1/products/TEA", "application/json").await);

    // A second editor still holds the first tag.
    let stale = put_with_if_match(&app, "TEA", "99.00", &read).await;
    let body = problem(stale, StatusCode::PRECONDITION_FAILED).await;
    assert!(body["detail"].as_str().unwrap().contains("If-Match"), "{body}");
    assert_eq!(app.product("TEA").await["price"], "13.00", "a 412 changes nothing");

    // A v2 tag of the current state is as good; `*` means "exists".
    let v2_tag = etag_of(&app, "/api/v1/products/TEA", V2).await;
    assert_eq!(put_with_if_match(&app, "TEA", "14.00", &v2_tag).await.status(), StatusCode::OK);
    assert_eq!(put_with_if_match(&app, "TEA", "15.00", "*").await.status(), StatusCode::OK);
    problem(put_with_if_match(&app, "NEW", "1.00", "*").await, StatusCode::PRECONDITION_FAILED).await;
    assert_eq!(app.get("/api/v1/products/NEW", None).await.status(), StatusCode::NOT_FOUND, "If-Match never creates");
    problem(put_with_if_match(&app, "TEA", "16.00", "not-a-tag").await, StatusCode::PRECONDITION_FAILED).await;

    // Without If-Match a PUT behaves as before.
    assert_eq!(app.put_product("TEA", "17.00", 5).await.status(), StatusCode::OK);
    assert_eq!(app.product("TEA").await["price"], "17.00");
}

#[tokio::test]
async fn personal_and_operational_responses_stay_no_store() {
    let app = spawn_app().await;
    app.put_product("TEA", "12.50", 5).await;
    let alice = token("alice", false);
    let order = app.place_order(&alice, &[("TEA", 1)]).await;
    assert_eq!(header(order.headers(), "cache-control"), "no-store");
    let id = order.json::<Value>().await.unwrap()["id"].as_str().unwrap().to_owned();
    let admin = app.admin.clone();
    for (path, token) in [
        (format!("/api/v1/orders/{id}"), Some(alice.as_str())),
        ("/api/v1/orders".to_owned(), Some(alice.as_str())),
        ("/api/v1/analytics/summary".to_owned(), Some(admin.as_str())),
        (format!("/api/v1/notifications?order_id={id}"), Some(admin.as_str())),
        ("/health".to_owned(), None),
        ("/api/v1/products/MISSING".to_owned(), None),
    ] {
        let response = app.get(&path, token).await;
        assert_eq!(header(response.headers(), "cache-control"), "no-store", "{path}");
        assert!(response.headers().get("etag").is_none(), "{path} has no validator");
    }
    // A write's answer is not cacheable either.
    assert_eq!(header(app.put_product("TEA", "13.00", 5).await.headers(), "cache-control"), "no-store");
}

#[tokio::test]
async fn a_large_list_comes_gzipped_or_brotli_compressed_and_a_small_body_does_not() {
    let app = spawn_app().await;
    for i in 0..30 {
        assert!(app.put_product(&format!("SKU-{i:03}"), "12.50", 5).await.status().is_success());
    }
    let plain = get_with(&app, "/api/v1/products?limit=100", &[]).await;
    assert!(plain.headers().get("content-encoding").is_none());
    let plain: Value = plain.json().await.unwrap();
    assert_eq!(plain["items"].as_array().unwrap().len(), 30);

    for encoding in ["gzip", "br"] {
        let response = get_with(&app, "/api/v1/products?limit=100", &[("accept-encoding", encoding)]).await;
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(header(response.headers(), "content-encoding"), encoding);
        assert!(vary(response.headers()).contains(&"accept-encoding".to_owned()), "{:?}", vary(response.headers()));
        assert!(vary(response.headers()).contains(&"accept".to_owned()));
        let compressed = response.bytes().await.unwrap();
        let mut decoded = Vec::new();
        match encoding {
            "gzip" => flate2::read::GzDecoder::new(&compressed[..]).read_to_end(&mut decoded).unwrap(),
            _ => brotli::Decompressor::new(&compressed[..], 4096).read_to_end(&mut decoded).unwrap(),
        };
        assert!(compressed.len() * 3 < decoded.len(), "{encoding}: {} of {} bytes", compressed.len(), decoded.len());
        assert_eq!(serde_json::from_slice::<Value>(&decoded).unwrap(), plain);
    }

    // One product is well under 1 KiB: not worth compressing.
    let small = get_with(&app, "/api/v1/products/SKU-001", &[("accept-encoding", "gzip")]).await;
    assert_eq!(small.status(), StatusCode::OK);
    assert!(small.headers().get("content-encoding").is_none());
}

async fn preflight(app: &TestApp, origin: &str) -> reqwest::Response {
    app.client
        .request(reqwest::Method::OPTIONS, app.url("/api/v1/products/TEA"))
        .header("origin", origin)
        .header("access-control-request-method", "PUT")
        .header("access-control-request-headers", "authorization, content-type, if-match")
        .send()
        .await
        .expect("OPTIONS")
}

#[tokio::test]
async fn a_preflight_from_an_allowed_origin_is_answered_204_with_the_rules() {
    let app = spawn_app().await;
    let response = preflight(&app, CORS_ORIGIN).await;
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    let headers = response.headers();
    assert_eq!(header(headers, "access-control-allow-origin"), CORS_ORIGIN);
    let methods = header(headers, "access-control-allow-methods").to_ascii_uppercase();
    for method in ["GET", "POST", "PUT"] {
        assert!(methods.contains(method), "methods: {methods}");
    }
    let allowed = header(headers, "access-control-allow-headers").to_ascii_lowercase();
    for name in ["authorization", "content-type", "idempotency-key", "if-match", "if-none-match"] {
        assert!(allowed.contains(name), "allow-headers lacks {name}: {allowed}");
    }
    assert!(header(headers, "access-control-max-age").parse::<u64>().unwrap() > 0);
    assert!(vary(headers).contains(&"origin".to_owned()), "{:?}", vary(headers));

    // The actual request: the browser's script may read the contract's headers.
    let response = get_with(&app, "/api/v1/products", &[("origin", CORS_ORIGIN)]).await;
    assert_eq!(header(response.headers(), "access-control-allow-origin"), CORS_ORIGIN);
    let exposed = header(response.headers(), "access-control-expose-headers").to_ascii_lowercase();
    for name in [
        "location",
        "etag",
        "retry-after",
        "ratelimit-limit",
        "ratelimit-remaining",
        "ratelimit-reset",
        "x-request-id",
        "idempotent-replayed",
        "deprecation",
        "sunset",
        "link",
    ] {
        assert!(exposed.contains(name), "expose-headers lacks {name}: {exposed}");
    }
}

#[tokio::test]
async fn a_disallowed_origin_gets_no_allow_origin() {
    let app = spawn_app().await;
    let response = preflight(&app, "https://evil.example").await;
    assert!(response.headers().get("access-control-allow-origin").is_none(), "{:?}", response.headers());
    let response = get_with(&app, "/api/v1/products", &[("origin", "https://evil.example")]).await;
    assert_eq!(response.status(), StatusCode::OK, "the server answers; the browser withholds it");
    assert!(response.headers().get("access-control-allow-origin").is_none());
}

#[tokio::test]
async fn without_configured_origins_there_are_no_cors_headers() {
    let Some(app) = spawn_local_app_with("configures the runner without CORS origins", |config| {
        config.edge.cors_origins.clear();
    })
    .await
    else {
        return;
    };
    let response = preflight(&app, CORS_ORIGIN).await;
    assert!(response.headers().keys().all(|name| !name.as_str().starts_with("access-control-")));
    let response = get_with(&app, "/api/v1/products", &[("origin", CORS_ORIGIN)]).await;
    assert!(response.headers().keys().all(|name| !name.as_str().starts_with("access-control-")));
}
