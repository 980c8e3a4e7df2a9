//! Keys that rotate while the runner runs (contract §9): HS256 secrets
//! during a rotation window, and a JWKS at a local "identity provider" that
//! swaps its keys mid-test; and webhooks signed the Standard Webhooks way,
//! checked by an independent verifier as a receiver would.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use reqwest::StatusCode;
use serde_json::json;

use orderly_core::http::identity_provider::{rsa_jwk, sign as sign_jwt};

use crate::helpers::{SECRET, spawn_local_app_with};
use crate::support::eventually;

const PREVIOUS: &str = "the-previous-secret-the-previous-secret-0123456789";

fn now() -> u64 {
    jsonwebtoken::get_current_timestamp()
}

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures").join(name)
}

fn rsa_key(name: &str) -> EncodingKey {
    EncodingKey::from_rsa_pem(&std::fs::read(fixture(name)).unwrap()).unwrap()
}

/// The JWKS of `(kid, private key file)` pairs (their public halves).
fn jwks(keys: &[(&str, &str)]) -> String {
    let keys = keys
        .iter()
        .map(|(kid, file)| {
            let mut jwk = rsa_jwk(&rsa_key(file));
            jwk.common.key_id = Some((*kid).to_owned());
            jwk
        })
        .collect();
    serde_json::to_string(&JwkSet { keys }).unwrap()
}

fn rs256(kid: &str, file: &str) -> String {
    let mut header = Header::new(Algorithm::RS256);
    header.kid = Some(kid.into());
    sign_jwt(&header, &json!({"sub": "alice", "exp": now() + 600}), &rsa_key(file))
}

/// An identity provider's JWKS endpoint whose document the test swaps.
struct IdentityProvider {
    url: String,
    document: Arc<Mutex<String>>,
}

impl IdentityProvider {
    async fn start(document: String) -> Self {
        let document = Arc::new(Mutex::new(document));
        let served = document.clone();
        let app = axum::Router::new().route(
            "/.well-known/jwks.json",
            axum::routing::get(move || std::future::ready(served.lock().unwrap().clone())),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/.well-known/jwks.json", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        Self { url, document }
    }

    fn serve(&self, document: String) {
        *self.document.lock().unwrap() = document;
    }
}

#[tokio::test]
async fn tokens_of_the_current_and_the_previous_hs256_secret_are_both_accepted() {
    let Some(app) = spawn_local_app_with("it configures the runner's secrets", |config| {
        config.jwt_previous_secrets = vec![PREVIOUS.into()];
    })
    .await
    else {
        return;
    };
    let mint =
        |secret: &str| orderly_core::http::mint_hs256(secret.as_bytes(), "alice", false, Duration::from_secs(60));
    assert_eq!(app.get("/api/v1/orders", Some(&mint(SECRET))).await.status(), StatusCode::OK, "current");
    assert_eq!(app.get("/api/v1/orders", Some(&mint(PREVIOUS))).await.status(), StatusCode::OK, "previous");
    let stranger = mint("a-secret-that-was-never-configured-0123456789");
    assert_eq!(app.get("/api/v1/orders", Some(&stranger)).await.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn a_key_rotated_in_at_the_identity_provider_is_accepted_within_the_refetch_interval_without_a_restart() {
    let idp = IdentityProvider::start(jwks(&[("old", "rsa-private.pem")])).await;
    let refetch_interval = Duration::from_millis(500);
    let Some(app) = spawn_local_app_with("it points the runner at a JWKS server of its own", |config| {
        config.jwt_secret = None;
        config.jwks_url = Some(idp.url.clone());
        config.jwks_refetch_interval = refetch_interval;
        // Long: only the unknown kid can make the runner fetch again.
        config.jwks_max_age = Duration::from_secs(3600);
    })
    .await
    else {
        return;
    };
    let old = rs256("old", "rsa-private.pem");
    assert_eq!(app.get("/api/v1/orders", Some(&old)).await.status(), StatusCode::OK);

    idp.serve(jwks(&[("old", "rsa-private.pem"), ("new", "rsa-other-private.pem")]));
    let new = rs256("new", "rsa-other-private.pem");
    let rotated = Instant::now();
    eventually("a token with the new kid is accepted", || async {
        (app.get("/api/v1/orders", Some(&new)).await.status() == StatusCode::OK).then_some(())
    })
    .await;
    // At most one refetch interval (plus the requests' own time) after the
    // identity provider added the key.
    assert!(rotated.elapsed() < refetch_interval + Duration::from_secs(2), "took {:?}", rotated.elapsed());
    assert_eq!(app.get("/api/v1/orders", Some(&old)).await.status(), StatusCode::OK, "the old key is still published");
}

#[tokio::test]
async fn a_key_removed_at_the_identity_provider_is_refused_once_the_cached_jwks_expires() {
    let idp = IdentityProvider::start(jwks(&[("a", "rsa-private.pem"), ("b", "rsa-other-private.pem")])).await;
    let max_age = Duration::from_secs(2);
    let Some(app) = spawn_local_app_with("it points the runner at a JWKS server of its own", |config| {
        config.jwt_secret = None;
        config.jwks_url = Some(idp.url.clone());
        config.jwks_max_age = max_age;
    })
    .await
    else {
        return;
    };
    let (a, b) = (rs256("a", "rsa-private.pem"), rs256("b", "rsa-other-private.pem"));
    assert_eq!(app.get("/api/v1/orders", Some(&a)).await.status(), StatusCode::OK);
    idp.serve(jwks(&[("b", "rsa-other-private.pem")]));
    let removed = Instant::now();
    eventually("the removed key is refused", || async {
        (app.get("/api/v1/orders", Some(&a)).await.status() == StatusCode::UNAUTHORIZED).then_some(())
    })
    .await;
    assert!(removed.elapsed() < max_age + Duration::from_secs(2), "took {:?}", removed.elapsed());
    assert_eq!(app.get("/api/v1/orders", Some(&b)).await.status(), StatusCode::OK, "the remaining key still works");
}

/// A webhook receiver that keeps each delivery's headers and raw body.
struct Receiver {
    url: String,
    deliveries: Arc<Mutex<Vec<(axum::http::HeaderMap, bytes::Bytes)>>>,
}

impl Receiver {
    async fn start() -> Self {
        let deliveries: Arc<Mutex<Vec<_>>> = Arc::default();
        let kept = deliveries.clone();
        let app = axum::Router::new().route(
            "/hook",
            axum::routing::post(move |headers: axum::http::HeaderMap, body: bytes::Bytes| {
                kept.lock().unwrap().push((headers, body));
                std::future::ready(axum::http::StatusCode::NO_CONTENT)
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/hook", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        Self { url, deliveries }
    }
}

/// A `webhook-*` header map as `http` 1 (the verifier's) spells it.
fn headers(pairs: &[(&str, String)]) -> axum::http::HeaderMap {
    pairs.iter().map(|(name, value)| (name.parse().unwrap(), value.parse().unwrap())).collect()
}

#[tokio::test]
async fn every_notification_is_signed_so_a_receiver_verifies_it_and_refuses_tampered_or_replayed_ones() {
    const WEBHOOK_SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    let receiver = Receiver::start().await;
    let Some(app) = spawn_local_app_with("it points the runner at a webhook of its own", |config| {
        config.notify_url = Some(receiver.url.clone());
        config.notify_allow_private = true;
        config.webhook_secret = Some(WEBHOOK_SECRET.into());
    })
    .await
    else {
        return;
    };
    assert!(app.put_product("SIGNED-1", "3.00", 5).await.status().is_success());
    let alice = crate::helpers::token("alice", false);
    app.accepted_order(&alice, &[("SIGNED-1", 1)]).await;
    let (received, body) =
        eventually("a delivery", || async { receiver.deliveries.lock().unwrap().first().cloned() }).await;

    // The receiver's side: the Standard Webhooks reference verifier.
    let verifier = standardwebhooks::Webhook::new(WEBHOOK_SECRET).unwrap();
    let header = |name: &str| received.get(name).and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
    let (id, timestamp, signature) = (header("webhook-id"), header("webhook-timestamp"), header("webhook-signature"));
    let delivered = headers(&[
        ("webhook-id", id.clone()),
        ("webhook-timestamp", timestamp.clone()),
        ("webhook-signature", signature.clone()),
    ]);
    verifier.verify(&body, &delivered).expect("a genuine delivery verifies");
    let notification: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(id, notification["id"].as_str().unwrap(), "webhook-id is the notification's id (stable across retries)");
    assert_eq!(header("idempotency-key"), id);

    // Tampered: one byte of the body changed.
    let mut tampered = body.to_vec();
    tampered[body.len() / 2] ^= 1;
    assert!(verifier.verify(&tampered, &delivered).is_err(), "a tampered body is refused");
    // Replayed: the same delivery, correctly signed, but ten minutes old.
    let signer = orderly_core::signing::WebhookSecret::parse(WEBHOOK_SECRET).unwrap();
    let old = chrono::Utc::now().timestamp() - 600;
    let replayed = headers(&[
        ("webhook-id", id.clone()),
        ("webhook-timestamp", old.to_string()),
        ("webhook-signature", signer.sign(&id, old, &body)),
    ]);
    assert!(verifier.verify(&body, &replayed).is_err(), "an old delivery (a replay) is refused");
    // And our signer agrees with the verifier on a fresh one.
    let fresh = chrono::Utc::now().timestamp();
    let resigned = headers(&[
        ("webhook-id", id.clone()),
        ("webhook-timestamp", fresh.to_string()),
        ("webhook-signature", signer.sign(&id, fresh, &body)),
    ]);
    verifier.verify(&body, &resigned).expect("signed now, it verifies");
}
