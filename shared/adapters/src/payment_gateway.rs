//! The card payment gateway over HTTP: the protocol of `docs/contract.md` §6.
//!
//! | call | request | answer |
//! |---|---|---|
//! | authorize | `POST {base}/authorizations` `{"reference","amount_minor","currency"}` | 201 `{"id","status":"authorized"\|"declined","reason"}` |
//! | capture | `POST {base}/authorizations/{id}/capture` | 200 `{"status":"captured"}` |
//! | void | `POST {base}/authorizations/{id}/void` | 200 `{"status":"voided"}` |
//! | void by reference | `POST {base}/authorizations/void-by-reference` `{"reference"}` | 200 |
//!
//! Every call carries an `Idempotency-Key` derived from the order and the
//! step (`<order id>` for the authorization, `<order id>:capture`, ...), so
//! a call repeated after a lost answer or a redelivered event is the same
//! call to the gateway: one order is never authorized twice.
//!
//! What the answers mean, as the protocol says: timeouts, connection
//! errors, 5xx and 429 are failures (the circuit breaker counts them, and
//! the saga falls back to offline payment); any other 4xx is a definite
//! answer ([`GatewayError::Refused`], or a decline for an authorization).
//!
//! One implementation for every host: only the [`HttpTransport`] differs
//! (reqwest natively, wasi:http inside a component), as for the webhook.

use std::time::{Duration, Instant};

use async_trait::async_trait;
use http::{Method, Request, StatusCode, Uri, header};
use serde::Deserialize;
use serde_json::json;

use crate::webhook::{HttpTransport, TransportError};
use orderly_core::domain::{AuthorizationId, Money, OrderId};
use orderly_core::ports::{Authorization, GatewayError, PaymentGateway};

/// The gateway's name in logs and metrics.
pub const NAME: &str = "http-gateway";

#[derive(Debug, thiserror::Error)]
#[error("the payment gateway URL is not an absolute http(s) URL")]
pub struct InvalidGatewayUrl;

/// The gateway at `base`, over any transport.
#[derive(Debug, Clone)]
pub struct HttpGateway<T> {
    base: String,
    timeout: Duration,
    transport: T,
}

impl<T: HttpTransport> HttpGateway<T> {
    pub fn new(base: &str, timeout: Duration, transport: T) -> Result<Self, InvalidGatewayUrl> {
        let uri: Uri = base.parse().map_err(|_| InvalidGatewayUrl)?;
        if !matches!(uri.scheme_str(), Some("http" | "https")) || uri.host().is_none_or(str::is_empty) {
            return Err(InvalidGatewayUrl);
        }
        Ok(Self { base: base.trim_end_matches('/').to_owned(), timeout, transport })
    }

    /// POSTs `body` to `{base}{path}` and returns the answer's status and body.
    ///
    /// A request that fails before any answer, other than by timing out (a
    /// pooled keep-alive connection the gateway had just closed, say), is
    /// sent once more within what is left of the deadline: its
    /// `Idempotency-Key` makes the repeat the same call at the gateway.
    async fn post(
        &self,
        path: &str,
        idempotency_key: String,
        body: serde_json::Value,
    ) -> Result<(StatusCode, Vec<u8>), GatewayError> {
        let request = || {
            Request::builder()
                .method(Method::POST)
                .uri(format!("{}{path}", self.base))
                .header(header::CONTENT_TYPE, "application/json")
                .header(header::ACCEPT, "application/json")
                .header("idempotency-key", idempotency_key.as_str())
                .body(body.to_string().into_bytes())
                .map_err(|_| GatewayError::InvalidAnswer("invalid request".into()))
        };
        let started = Instant::now();
        let mut sent = self.transport.send(request()?, self.timeout).await;
        if let Err(TransportError::Connect | TransportError::Request) = sent {
            let left = self.timeout.saturating_sub(started.elapsed());
            if !left.is_zero() {
                sent = self.transport.send(request()?, left).await;
            }
        }
        let response = sent.map_err(|error| match error {
            TransportError::Timeout => GatewayError::Timeout,
            other => GatewayError::Unreachable(other.to_string()),
        })?;
        let status = response.status();
        // 408: a proxy gave up reading the request, so the gateway did nothing
        // (a timeout, which the protocol counts as a failure, not a "no").
        if status.is_server_error() || status == StatusCode::TOO_MANY_REQUESTS || status == StatusCode::REQUEST_TIMEOUT
        {
            return Err(GatewayError::Failed(status.as_u16()));
        }
        Ok((status, response.into_body()))
    }

    /// A step whose success is any 2xx (capture, void, void by reference);
    /// a 4xx is the gateway's "no". Anything else (a redirect, say, since
    /// redirects are not followed) is no answer of the protocol: a void
    /// taken for done on a 3xx would leave the hold in place.
    async fn step(&self, path: &str, idempotency_key: String, body: serde_json::Value) -> Result<(), GatewayError> {
        let (status, _) = self.post(path, idempotency_key, body).await?;
        if status.is_success() {
            Ok(())
        } else if status.is_client_error() {
            Err(GatewayError::Refused(status.as_u16()))
        } else {
            Err(GatewayError::InvalidAnswer(format!("status {status}")))
        }
    }
}

#[derive(Deserialize)]
struct AuthorizationAnswer {
    id: Option<String>,
    status: String,
    #[serde(default)]
    reason: Option<String>,
}

#[async_trait]
impl<T: HttpTransport> PaymentGateway for HttpGateway<T> {
    fn name(&self) -> &'static str {
        NAME
    }

    async fn authorize(&self, order: OrderId, amount: Money) -> Result<Authorization, GatewayError> {
        let body = json!({
            "reference": order.to_string(),
            "amount_minor": amount.amount_minor(),
            "currency": amount.currency().to_string(),
        });
        let (status, body) = self.post("/authorizations", order.to_string(), body).await?;
        if status.is_client_error() {
            // A definite "no" to this authorization.
            return Ok(Authorization::Declined(format!("the gateway refused the authorization ({status})")));
        }
        if !status.is_success() {
            return Err(GatewayError::InvalidAnswer(format!("status {status}")));
        }
        let answer: AuthorizationAnswer =
            serde_json::from_slice(&body).map_err(|e| GatewayError::InvalidAnswer(e.to_string()))?;
        match answer.status.as_str() {
            "authorized" => answer
                .id
                .as_deref()
                .and_then(AuthorizationId::parse)
                .map(Authorization::Authorized)
                .ok_or_else(|| GatewayError::InvalidAnswer("an authorization without a usable id".into())),
            "declined" => Ok(Authorization::Declined(answer.reason.unwrap_or_else(|| "card declined".into()))),
            other => Err(GatewayError::InvalidAnswer(format!("authorization status {other:?}"))),
        }
    }

    async fn capture(&self, order: OrderId, authorization: &AuthorizationId) -> Result<(), GatewayError> {
        self.step(&format!("/authorizations/{authorization}/capture"), format!("{order}:capture"), json!({})).await
    }

    async fn void(&self, order: OrderId, authorization: &AuthorizationId) -> Result<(), GatewayError> {
        self.step(&format!("/authorizations/{authorization}/void"), format!("{order}:void"), json!({})).await
    }

    async fn void_by_reference(&self, order: OrderId) -> Result<(), GatewayError> {
        let body = json!({ "reference": order.to_string() });
        self.step("/authorizations/void-by-reference", format!("{order}:void-by-reference"), body).await
    }
}

/// The gateway over reqwest (native hosts), presenting `tls`'s client
/// certificate on HTTPS. The URL is the operator's, as trusted as the rest
/// of the settings: no SSRF guard (a gateway in the same network, or a
/// local test gateway, is normal).
#[cfg(feature = "webhook")]
pub fn native(
    base: &str,
    timeout: Duration,
    tls: &orderly_core::settings::OutboundTls,
) -> Result<HttpGateway<crate::webhook::Reqwest>, String> {
    let options = crate::http_client::ClientOptions { tls: tls.clone(), outward_only: false };
    let client = crate::http_client::client(&options).map_err(|e| e.to_string())?;
    HttpGateway::new(base, timeout, crate::webhook::Reqwest::new(client)).map_err(|e| e.to_string())
}

/// The native gateway the settings name, if any (a URL given inline; Lambda
/// reads one from SSM instead).
#[cfg(feature = "webhook")]
pub fn from_settings(
    settings: &orderly_core::settings::Settings,
) -> Result<Option<std::sync::Arc<dyn PaymentGateway>>, String> {
    let payment = &settings.payment;
    let Some(url) = &payment.url else { return Ok(None) };
    let gateway =
        native(url, payment.timeout, &settings.outbound_tls).map_err(|e| format!("setting payment_url: {e}"))?;
    Ok(Some(std::sync::Arc::new(gateway)))
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use orderly_core::domain::Currency;

    use super::*;

    /// Answers every request with `status` and `body` (the first with
    /// `first_fails`, when set), and keeps the requests.
    struct Scripted {
        answer: Result<(u16, &'static str), TransportError>,
        first_fails: Mutex<Option<TransportError>>,
        sent: Mutex<Vec<Request<Vec<u8>>>>,
    }

    impl Scripted {
        fn answering(answer: Result<(u16, &'static str), TransportError>) -> Self {
            Self { answer, first_fails: Mutex::new(None), sent: Mutex::new(Vec::new()) }
        }

        fn failing_once(error: TransportError, then: Result<(u16, &'static str), TransportError>) -> Self {
            Self { first_fails: Mutex::new(Some(error)), ..Self::answering(then) }
        }
    }

    #[async_trait]
    impl HttpTransport for &Scripted {
        async fn send(
            &self,
            request: Request<Vec<u8>>,
            _timeout: Duration,
        ) -> Result<http::Response<Vec<u8>>, TransportError> {
            self.sent.lock().unwrap().push(request);
            if let Some(error) = self.first_fails.lock().unwrap().take() {
                return Err(error);
            }
            self.answer.map(|(status, body)| {
                let mut response = http::Response::new(body.as_bytes().to_vec());
                *response.status_mut() = StatusCode::from_u16(status).unwrap();
                response
            })
        }
    }

    fn order() -> OrderId {
        OrderId::parse("0190a5e4-7d3a-7c4e-9a3b-2f1e0d9c8b7a").unwrap()
    }

    fn amount() -> Money {
        Money::from_minor(2500, Currency::parse("EUR").unwrap()).unwrap()
    }

    fn gateway(transport: &Scripted) -> HttpGateway<&Scripted> {
        HttpGateway::new("https://pay.example.com/v1/", Duration::from_secs(2), transport).unwrap()
    }

    #[tokio::test]
    async fn an_authorization_is_keyed_by_the_order_and_carries_the_total() {
        let transport = Scripted::answering(Ok((201, r#"{"id":"auth_1","status":"authorized"}"#)));
        let answer = gateway(&transport).authorize(order(), amount()).await;
        assert_eq!(answer, Ok(Authorization::Authorized(AuthorizationId::parse("auth_1").unwrap())));
        let sent = transport.sent.lock().unwrap();
        assert_eq!(sent[0].uri(), "https://pay.example.com/v1/authorizations");
        assert_eq!(sent[0].headers()["idempotency-key"], order().to_string());
        let body: serde_json::Value = serde_json::from_slice(sent[0].body()).unwrap();
        assert_eq!(body, json!({"reference": order().to_string(), "amount_minor": 2500, "currency": "EUR"}));
    }

    #[tokio::test]
    async fn a_decline_is_an_answer_with_its_reason() {
        let transport =
            Scripted::answering(Ok((201, r#"{"id":"a","status":"declined","reason":"insufficient funds"}"#)));
        let answer = gateway(&transport).authorize(order(), amount()).await;
        assert_eq!(answer, Ok(Authorization::Declined("insufficient funds".into())));
        let refused = Scripted::answering(Ok((402, "")));
        assert!(matches!(gateway(&refused).authorize(order(), amount()).await, Ok(Authorization::Declined(_))));
        let proxy_gave_up = Scripted::answering(Ok((408, "")));
        assert_eq!(gateway(&proxy_gave_up).authorize(order(), amount()).await, Err(GatewayError::Failed(408)));
    }

    #[tokio::test]
    async fn timeouts_connection_errors_408_5xx_and_429_are_failures_other_4xx_are_answers_and_a_redirect_is_none() {
        for (answer, expected) in [
            (Err(TransportError::Timeout), GatewayError::Timeout),
            (Err(TransportError::Connect), GatewayError::Unreachable("connection failed".into())),
            (Ok((503, "")), GatewayError::Failed(503)),
            (Ok((429, "")), GatewayError::Failed(429)),
            (Ok((408, "")), GatewayError::Failed(408)),
            (Ok((404, "")), GatewayError::Refused(404)),
            (Ok((302, "")), GatewayError::InvalidAnswer("status 302 Found".into())),
        ] {
            let transport = Scripted::answering(answer);
            let error = gateway(&transport).capture(order(), &AuthorizationId::parse("auth_1").unwrap()).await;
            assert_eq!(error, Err(expected.clone()));
            assert_eq!(expected.is_gateway_failure(), !matches!(expected, GatewayError::Refused(_)));
        }
    }

    #[tokio::test]
    async fn a_request_that_fails_before_any_answer_is_sent_once_more_with_the_same_key_and_a_timeout_is_not() {
        let id = AuthorizationId::parse("auth_1").unwrap();
        for error in [TransportError::Request, TransportError::Connect] {
            let transport = Scripted::failing_once(error, Ok((200, r#"{"status":"captured"}"#)));
            assert_eq!(gateway(&transport).capture(order(), &id).await, Ok(()));
            let sent = transport.sent.lock().unwrap();
            assert_eq!(sent.len(), 2);
            assert_eq!(sent[0].headers()["idempotency-key"], sent[1].headers()["idempotency-key"]);
        }
        let failing = Scripted::answering(Err(TransportError::Request));
        assert_eq!(
            gateway(&failing).capture(order(), &id).await,
            Err(GatewayError::Unreachable("request failed".into()))
        );
        assert_eq!(failing.sent.lock().unwrap().len(), 2, "once more, not forever");
        let hanging = Scripted::answering(Err(TransportError::Timeout));
        assert_eq!(gateway(&hanging).capture(order(), &id).await, Err(GatewayError::Timeout));
        assert_eq!(hanging.sent.lock().unwrap().len(), 1, "the deadline is spent: no second try");
    }

    #[tokio::test]
    async fn capture_void_and_void_by_reference_follow_the_protocol() {
        let transport = Scripted::answering(Ok((200, r#"{"status":"ok"}"#)));
        let gateway = gateway(&transport);
        let id = AuthorizationId::parse("auth_1").unwrap();
        gateway.capture(order(), &id).await.unwrap();
        gateway.void(order(), &id).await.unwrap();
        gateway.void_by_reference(order()).await.unwrap();
        let sent = transport.sent.lock().unwrap();
        let calls: Vec<(String, String)> = sent
            .iter()
            .map(|r| (r.uri().path().to_owned(), r.headers()["idempotency-key"].to_str().unwrap().to_owned()))
            .collect();
        let o = order();
        assert_eq!(
            calls,
            [
                ("/v1/authorizations/auth_1/capture".into(), format!("{o}:capture")),
                ("/v1/authorizations/auth_1/void".into(), format!("{o}:void")),
                ("/v1/authorizations/void-by-reference".into(), format!("{o}:void-by-reference")),
            ]
        );
        let body: serde_json::Value = serde_json::from_slice(sent[2].body()).unwrap();
        assert_eq!(body, json!({"reference": o.to_string()}));
    }

    #[tokio::test]
    async fn an_answer_that_is_not_the_protocol_is_a_failure_not_a_decision() {
        for body in
            ["not json", r#"{"status":"authorized"}"#, r#"{"id":"a/b","status":"authorized"}"#, r#"{"status":"maybe"}"#]
        {
            let transport = Scripted::answering(Ok((201, body)));
            let answer = gateway(&transport).authorize(order(), amount()).await;
            assert!(matches!(answer, Err(GatewayError::InvalidAnswer(_))), "{body}: {answer:?}");
        }
    }

    #[test]
    fn only_absolute_http_urls_are_gateways() {
        let transport = Scripted::answering(Ok((200, "")));
        for url in ["ftp://x/", "/relative", "pay.example.com", "not a url"] {
            assert!(HttpGateway::new(url, Duration::from_secs(1), &transport).is_err(), "{url}");
        }
    }
}
