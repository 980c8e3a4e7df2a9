//! OWASP API Top 10 checks that the other files do not already make:
//! unbounded resource consumption (slow or huge requests), algorithm
//! confusion and audience checks in RS256 (JWKS) mode, and SSRF.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use jsonwebtoken::{Algorithm, EncodingKey, Header};
use reqwest::StatusCode;
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use orderly_core::http::identity_provider::sign as sign_jwt;

use crate::helpers::{problem, spawn_local_app_with};

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures").join(name)
}

fn now() -> u64 {
    jsonwebtoken::get_current_timestamp()
}

fn rs256(key_file: &str, claims: serde_json::Value) -> String {
    let mut header = Header::new(Algorithm::RS256);
    header.kid = Some("test-key".into());
    let key = EncodingKey::from_rsa_pem(&std::fs::read(fixture(key_file)).unwrap()).unwrap();
    sign_jwt(&header, &claims, &key)
}

/// Reads until the server answers or closes; returns what it sent.
async fn read_answer(stream: &mut TcpStream, within: Duration) -> Option<String> {
    let mut buffer = vec![0; 4096];
    let mut answer = Vec::new();
    let until = Instant::now() + within;
    loop {
        match tokio::time::timeout_at(until.into(), stream.read(&mut buffer)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return Some(String::from_utf8_lossy(&answer).into_owned()),
            Ok(Ok(n)) => {
                answer.extend_from_slice(&buffer[..n]);
                if answer.windows(4).any(|w| w == b"\r\n\r\n") {
                    return Some(String::from_utf8_lossy(&answer).into_owned());
                }
            }
            Err(_) => return None,
        }
    }
}

#[tokio::test]
async fn a_client_trickling_its_headers_is_cut_off() {
    let Some(app) = spawn_local_app_with("it sets the runner's header timeout and talks to its socket", |config| {
        config.header_timeout = Duration::from_millis(800)
    })
    .await
    else {
        return;
    };
    let mut stream = TcpStream::connect(app.runner().addr()).await.unwrap();
    stream.write_all(b"GET /api/v1/products HTTP/1.1\r\nHost: x\r\n").await.unwrap();
    for _ in 0..3 {
        // A header line now and then, never the blank line that ends them.
        tokio::time::sleep(Duration::from_millis(300)).await;
        let _ = stream.write_all(b"X-Slow: 1\r\n").await;
    }
    let answer = read_answer(&mut stream, Duration::from_secs(5)).await;
    assert!(answer.is_some(), "the server kept a slow-loris connection open for 5 s");
    assert_eq!(app.get("/health", None).await.status(), StatusCode::OK, "and stays up for everyone else");
}

#[tokio::test]
async fn a_client_trickling_its_body_gets_408() {
    let Some(app) = spawn_local_app_with("it sets the runner's body timeout and talks to its socket", |config| {
        config.body_timeout = Duration::from_millis(800)
    })
    .await
    else {
        return;
    };
    // Announces 1,000 bytes and sends ten.
    let answer = post_order_raw(&app, "Content-Length: 1000\r\n\r\n{\"items\":").await;
    assert_problem_answer(&answer, "HTTP/1.1 408");
}

/// Alice's `POST /api/v1/orders` written to the runner's socket as is,
/// `rest` following the JSON content type (more headers, the blank line
/// and the body), and the answer within 5 s.
async fn post_order_raw(app: &crate::helpers::TestApp, rest: &str) -> String {
    let token = crate::helpers::token("alice", false);
    let mut stream = TcpStream::connect(app.runner().addr()).await.unwrap();
    let head = format!(
        "POST /api/v1/orders HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\nContent-Type: application/json\r\n{rest}"
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    read_answer(&mut stream, Duration::from_secs(5)).await.expect("an answer within 5 s")
}

fn assert_problem_answer(answer: &str, status_line: &str) {
    assert!(answer.starts_with(status_line), "{answer}");
    assert!(answer.to_ascii_lowercase().contains("application/problem+json"), "{answer}");
}

#[tokio::test]
async fn a_malformed_chunked_body_is_a_400_problem_not_a_timeout() {
    let Some(app) = spawn_local_app_with("it talks to the runner's socket", |_| {}).await else {
        return;
    };
    // A first chunk, then a chunk-size line that is not hexadecimal.
    let answer = post_order_raw(&app, "Transfer-Encoding: chunked\r\n\r\n5\r\n{\"ite\r\nzz\r\n").await;
    assert_problem_answer(&answer, "HTTP/1.1 400");
}

#[tokio::test]
async fn oversized_headers_are_refused_and_the_server_stays_up() {
    let Some(app) =
        spawn_local_app_with("header limits are the HTTP server's (Spin's, jco's), not the functions'", |_| {}).await
    else {
        return;
    };
    let huge = "x".repeat(100 * 1024);
    let response = app.client.get(app.url("/api/v1/products")).header("x-huge", huge).send().await;
    match response {
        Ok(response) => assert_eq!(response.status(), StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE),
        Err(error) => assert!(error.is_request() || error.is_connect() || error.is_body(), "{error}"),
    }
    let long_token = "a".repeat(20 * 1024);
    let answer = app.get("/api/v1/orders", Some(&long_token)).await;
    problem(answer, StatusCode::UNAUTHORIZED).await;
    assert_eq!(app.get("/health", None).await.status(), StatusCode::OK);
}

#[tokio::test]
async fn in_rs256_mode_only_our_keys_sign_and_hs256_made_with_the_public_key_is_refused() {
    let Some(app) = spawn_local_app_with("it runs the runner in RS256 mode", |config| {
        config.jwt_secret = None;
        config.jwks_file = Some(fixture("jwks.json"));
        config.jwt_audience = Some("orderly-api".into());
    })
    .await
    else {
        return;
    };
    let valid = rs256("rsa-private.pem", json!({"sub": "alice", "exp": now() + 600, "aud": "orderly-api"}));
    assert_eq!(app.get("/api/v1/orders", Some(&valid)).await.status(), StatusCode::OK);

    // Algorithm confusion: an HS256 token whose HMAC key is our public key.
    let public_pem = std::fs::read(fixture("rsa-public.pem")).unwrap();
    let confused = sign_jwt(
        &Header::new(Algorithm::HS256),
        &json!({"sub": "alice", "exp": now() + 600, "aud": "orderly-api"}),
        &EncodingKey::from_secret(&public_pem),
    );
    let stranger = rs256("rsa-other-private.pem", json!({"sub": "alice", "exp": now() + 600, "aud": "orderly-api"}));
    let wrong_audience = rs256("rsa-private.pem", json!({"sub": "alice", "exp": now() + 600, "aud": "someone-else"}));
    let no_audience = rs256("rsa-private.pem", json!({"sub": "alice", "exp": now() + 600}));
    let expired = rs256("rsa-private.pem", json!({"sub": "alice", "exp": now() - 60, "aud": "orderly-api"}));
    for (case, token) in [
        ("HS256 signed with the public key", confused),
        ("another key", stranger),
        ("wrong audience", wrong_audience),
        ("no audience", no_audience),
        ("expired", expired),
    ] {
        let response = app.get("/api/v1/orders", Some(&token)).await;
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED, "{case}");
    }
}

#[tokio::test]
async fn the_webhook_cannot_be_pointed_at_internal_addresses_unless_allowed() {
    for target in [
        "http://169.254.169.254/latest/meta-data/",
        "http://127.0.0.1:9000/hook",
        "http://localhost/hook",
        "http://10.0.0.1/",
    ] {
        let dir = tempfile::tempdir().unwrap();
        let mut config = crate::helpers::fast_config(dir.path());
        config.notify_url = Some(target.into());
        let error = orderly::Runner::start(config).await.err().unwrap_or_else(|| panic!("{target} was accepted"));
        assert!(format!("{error:#}").contains("ORDERLY_NOTIFY_ALLOW_PRIVATE"), "{error:#}");
    }
}
