use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use reqwest::StatusCode;
use serde_json::json;

// Signed as an identity provider (or an attacker) would, HS512 included.
use orderly_core::http::identity_provider::sign as sign_jwt;

use crate::helpers::{problem, secret, spawn_app, token};

fn now() -> u64 {
    jsonwebtoken::get_current_timestamp()
}

fn signed(header: Header, claims: serde_json::Value, secret: &[u8]) -> String {
    sign_jwt(&header, &claims, &EncodingKey::from_secret(secret))
}

#[tokio::test]
async fn orders_need_a_valid_unexpired_token_signed_with_our_key_and_algorithm() {
    let app = spawn_app().await;
    let unsigned = format!(
        "{}.{}.",
        URL_SAFE_NO_PAD.encode(br#"{"alg":"none","typ":"JWT"}"#),
        URL_SAFE_NO_PAD.encode(json!({"sub": "alice", "exp": now() + 600}).to_string())
    );
    let cases = [
        ("no token", None),
        ("expired", Some(signed(Header::default(), json!({"sub": "alice", "exp": now() - 30}), secret().as_bytes()))),
        (
            "bad signature",
            Some(signed(
                Header::default(),
                json!({"sub": "alice", "exp": now() + 600}),
                b"not-our-secret-not-our-secret-not-our-secret",
            )),
        ),
        ("alg none", Some(unsigned)),
        ("missing exp", Some(signed(Header::default(), json!({"sub": "alice"}), secret().as_bytes()))),
        (
            "wrong algorithm",
            Some(signed(
                Header::new(Algorithm::HS512),
                json!({"sub": "alice", "exp": now() + 600}),
                secret().as_bytes(),
            )),
        ),
        (
            "not yet valid",
            Some(signed(
                Header::default(),
                json!({"sub": "alice", "exp": now() + 600, "nbf": now() + 300}),
                secret().as_bytes(),
            )),
        ),
        ("garbage", Some("not.a.jwt".to_owned())),
    ];
    for (case, token) in cases {
        let mut request = app.client.get(app.url("/api/v1/orders"));
        if let Some(token) = &token {
            request = request.bearer_auth(token);
        }
        let response = request.send().await.unwrap();
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED, "{case}");
        assert_eq!(response.headers()["www-authenticate"], "Bearer", "{case}");
        problem(response, StatusCode::UNAUTHORIZED).await;
    }
    let basic = app.client.get(app.url("/api/v1/orders")).basic_auth("alice", Some("pw")).send().await.unwrap();
    problem(basic, StatusCode::UNAUTHORIZED).await;
}

#[tokio::test]
async fn admin_endpoints_refuse_customers_with_403() {
    let app = spawn_app().await;
    let alice = token("alice", false);
    for path in ["/api/v1/analytics/summary", "/api/v1/notifications"] {
        problem(app.get(path, Some(&alice)).await, StatusCode::FORBIDDEN).await;
        problem(app.get(path, None).await, StatusCode::UNAUTHORIZED).await;
    }
    let put = app
        .client
        .put(app.url("/api/v1/products/TEA"))
        .bearer_auth(&alice)
        .json(&json!({"name": "Tea", "price": "1.00", "currency": "EUR"}))
        .send()
        .await
        .unwrap();
    problem(put, StatusCode::FORBIDDEN).await;
    let restock = app.post_json("/api/v1/products/TEA/restock", Some(&alice), &json!({"quantity": 5})).await;
    problem(restock, StatusCode::FORBIDDEN).await;
}

#[tokio::test]
async fn a_token_minted_for_a_short_life_stops_working_when_it_expires() {
    let app = spawn_app().await;
    // Long enough for the first request to arrive in time on a loaded
    // machine or a remote stack (`exp` has whole seconds, so a 1 s token
    // may have as little as 1 s); short enough to watch it expire.
    let short = orderly_core::http::mint_hs256(secret().as_bytes(), "alice", false, Duration::from_secs(5));
    assert_eq!(app.get("/api/v1/orders", Some(&short)).await.status(), StatusCode::OK);
    crate::helpers::eventually("the token to expire", || async {
        (app.get("/api/v1/orders", Some(&short)).await.status() == StatusCode::UNAUTHORIZED).then_some(())
    })
    .await;
}
