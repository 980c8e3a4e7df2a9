//! A notification provider that POSTs each notification as JSON to a webhook.
//!
//! One sender for every host: [`Webhook`] builds the request, sends it
//! through an [`HttpTransport`] and reads the answer; only the transport
//! differs (reqwest natively, [`WebhookProvider`]; wasi:http inside a Spin
//! component). The rules, written once here:
//!
//! - `POST` of the notification as `application/json`, with an
//!   `Idempotency-Key` header carrying the notification's id: retries are
//!   not done here but by redelivery, so a retried notification keeps its id
//!   and the receiver can deduplicate.
//! - Every call has a timeout covering the whole exchange, from connecting
//!   to the response's status: a hung provider must cost one bounded wait,
//!   not a stuck consumer. A redirect is not followed (the operator chose
//!   this URL, not the receiver).
//! - Signed (Standard Webhooks, [`orderly_core::signing`]) when a secret is
//!   set: `webhook-id` (the notification's id, as the idempotency key),
//!   `webhook-timestamp` (this attempt's time) and `webhook-signature`, so a
//!   receiver can verify each delivery and refuse replays by their age.
//! - A 2xx took it; any other status is [`ProviderError::Rejected`] (whether
//!   it counts against the provider, as 429 and 5xx do, is the circuit
//!   breaker's call). Errors never carry the URL: it may hold a token.
//!
//! SSRF (the native transport): unless allowed, the webhook may not reach
//! loopback, private, link-local, CGNAT, multicast or unspecified addresses —
//! checked for IP literals when configured, and for every DNS answer at
//! connection time (so a name that later resolves inward, DNS rebinding, is
//! refused too). Inside a component the host decides which addresses may be
//! reached (`allowed_outbound_hosts` in `spin.toml`).

use std::net::IpAddr;
use std::time::Duration;

use async_trait::async_trait;
use http::{Method, Request, StatusCode, Uri, header};

use orderly_core::ports::{Notification, NotificationProvider, ProviderError};
use orderly_core::signing::WebhookSecret;

/// The provider's name in logs, metrics and the notification log.
pub const NAME: &str = "webhook";

/// Addresses a webhook must not reach unless explicitly allowed.
pub fn is_internal(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            let [a, b, ..] = v4.octets();
            v4.is_loopback()
                || v4.is_private()
                || v4.is_link_local()
                || v4.is_unspecified()
                || v4.is_broadcast()
                || v4.is_multicast()
                || v4.is_documentation()
                || (a == 100 && (64..128).contains(&b)) // CGNAT 100.64/10
                || (a == 198 && (18..20).contains(&b)) // benchmarking 198.18/15
                || a >= 240 // reserved 240/4
                || a == 0
        }
        IpAddr::V6(v6) => {
            let segments = v6.segments();
            let first = segments[0];
            // An IPv4 address carried inside an IPv6 one reaches that IPv4
            // host: judge it as that host.
            let embedded =
                |high: u16, low: u16| IpAddr::V4(std::net::Ipv4Addr::from((u32::from(high) << 16) | u32::from(low)));
            v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                || (first & 0xfe00) == 0xfc00 // unique local fc00::/7
                || (first & 0xffc0) == 0xfe80 // link-local fe80::/10
                || (first & 0xffc0) == 0xfec0 // site-local fec0::/10 (deprecated, still routed in places)
                || v6.to_ipv4_mapped().is_some_and(|v4| is_internal(IpAddr::V4(v4)))
                // IPv4-compatible ::a.b.c.d
                || (segments[..6].iter().all(|&s| s == 0) && is_internal(embedded(segments[6], segments[7])))
                // NAT64 64:ff9b::/96 (reaches 169.254.169.254 on a NAT64 network)
                || (segments[..6] == [0x64, 0xff9b, 0, 0, 0, 0] && is_internal(embedded(segments[6], segments[7])))
                // 6to4 2002::/16 carries its IPv4 address in the next 32 bits
                || (first == 0x2002 && is_internal(embedded(segments[1], segments[2])))
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum WebhookConfigError {
    #[error("the webhook URL is not a valid http(s) URL")]
    InvalidUrl,
    #[error("ORDERLY_WEBHOOK_SECRET: {0}")]
    Secret(String),
    #[error("the webhook URL points at an internal address; set ORDERLY_NOTIFY_ALLOW_PRIVATE=true if that is intended")]
    InternalAddress,
    #[error("could not build the HTTP client: {0}")]
    Client(String),
}

/// Why a request got no answer; never with the URL.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TransportError {
    #[error("no answer in time")]
    Timeout,
    #[error("connection failed")]
    Connect,
    #[error("request failed")]
    Request,
}

impl From<TransportError> for ProviderError {
    fn from(error: TransportError) -> Self {
        match error {
            TransportError::Timeout => Self::Timeout,
            other => Self::Unreachable(other.to_string()),
        }
    }
}

/// Most of an answer's body a caller reads: the protocols we speak answer
/// small JSON documents.
pub const MAX_ANSWER_BYTES: usize = 64 * 1024;

/// How a host sends one HTTP request: all a webhook or the payment gateway
/// needs from it.
#[async_trait]
pub trait HttpTransport: Send + Sync {
    /// Sends `request` and returns the response (its body cut at
    /// [`MAX_ANSWER_BYTES`]), the whole exchange within `timeout` (else
    /// [`TransportError::Timeout`]), following no redirect.
    async fn send(
        &self,
        request: Request<Vec<u8>>,
        timeout: Duration,
    ) -> Result<http::Response<Vec<u8>>, TransportError>;
}

/// The webhook sender, over any transport.
#[derive(Debug, Clone)]
pub struct Webhook<T> {
    url: Uri,
    timeout: Duration,
    transport: T,
    secret: Option<WebhookSecret>,
}

impl<T: HttpTransport> Webhook<T> {
    /// `url` must be an absolute http(s) URL.
    pub fn with_transport(url: &str, timeout: Duration, transport: T) -> Result<Self, WebhookConfigError> {
        let url: Uri = url.parse().map_err(|_| WebhookConfigError::InvalidUrl)?;
        let http = matches!(url.scheme_str(), Some("http" | "https"));
        if !http || url.host().is_none_or(str::is_empty) {
            return Err(WebhookConfigError::InvalidUrl);
        }
        Ok(Self { url, timeout, transport, secret: None })
    }

    /// Signs every delivery with `secret` (`whsec_<base64>`); `None`: unsigned.
    pub fn signed(mut self, secret: Option<&str>) -> Result<Self, WebhookConfigError> {
        self.secret = secret.map(WebhookSecret::parse).transpose().map_err(WebhookConfigError::Secret)?;
        Ok(self)
    }
}

/// The request that delivers `notification` to `url`, signed at `now`
/// (Unix seconds) when there is a secret.
pub fn request(
    url: &Uri,
    notification: &Notification,
    secret: Option<&WebhookSecret>,
    now: i64,
) -> Result<Request<Vec<u8>>, ProviderError> {
    let body = serde_json::to_vec(notification).map_err(|e| ProviderError::Unreachable(e.to_string()))?;
    let id = notification.id.to_string();
    let mut builder = Request::builder()
        .method(Method::POST)
        .uri(url.clone())
        .header(header::CONTENT_TYPE, "application/json")
        .header("idempotency-key", &id);
    if let Some(secret) = secret {
        for (name, value) in secret.headers(&id, now, &body) {
            builder = builder.header(name, value);
        }
    }
    builder.body(body).map_err(|_| ProviderError::Unreachable("invalid webhook request".into()))
}

/// What the receiver's status means: a 2xx took the notification, anything
/// else rejected it.
pub fn outcome(status: StatusCode) -> Result<(), ProviderError> {
    if status.is_success() { Ok(()) } else { Err(ProviderError::Rejected(status.as_u16())) }
}

#[async_trait]
impl<T: HttpTransport> NotificationProvider for Webhook<T> {
    fn name(&self) -> &'static str {
        NAME
    }

    async fn send(&self, notification: &Notification) -> Result<(), ProviderError> {
        let now = chrono::Utc::now().timestamp();
        let request = request(&self.url, notification, self.secret.as_ref(), now)?;
        let response = self.transport.send(request, self.timeout).await?;
        outcome(response.status())
    }
}

#[cfg(feature = "webhook")]
pub(crate) use native::OutwardOnly;
#[cfg(feature = "webhook")]
pub use native::{Reqwest, WebhookProvider};

/// The native transport (reqwest), with the SSRF guard.
#[cfg(feature = "webhook")]
mod native {
    use std::net::{IpAddr, SocketAddr};
    use std::time::Duration;

    use async_trait::async_trait;
    use http::Request;
    use reqwest::dns::{Addrs, Name, Resolve, Resolving};

    use orderly_core::settings::OutboundTls;

    use super::{HttpTransport, TransportError, Webhook, WebhookConfigError, is_internal};
    use crate::http_client::{ClientOptions, client};

    /// The webhook over reqwest.
    pub type WebhookProvider = Webhook<Reqwest>;

    /// Resolves names with the system resolver, dropping internal addresses.
    pub(crate) struct OutwardOnly;

    impl Resolve for OutwardOnly {
        fn resolve(&self, name: Name) -> Resolving {
            Box::pin(async move {
                let resolved: Vec<SocketAddr> = tokio::net::lookup_host((name.as_str(), 0)).await?.collect();
                let outward: Vec<SocketAddr> = resolved.into_iter().filter(|a| !is_internal(a.ip())).collect();
                if outward.is_empty() {
                    return Err(format!("{} resolves only to internal addresses", name.as_str()).into());
                }
                Ok(Box::new(outward.into_iter()) as Addrs)
            })
        }
    }

    #[derive(Debug, Clone)]
    pub struct Reqwest {
        client: reqwest::Client,
    }

    impl Reqwest {
        /// Over a client of [`crate::http_client::client`].
        pub fn new(client: reqwest::Client) -> Self {
            Self { client }
        }
    }

    impl Webhook<Reqwest> {
        /// `allow_internal`: let the webhook reach internal addresses (a
        /// receiver on the same host or network, as in development and tests).
        pub fn new(url: &str, timeout: Duration, allow_internal: bool) -> Result<Self, WebhookConfigError> {
            Self::with_tls(url, timeout, allow_internal, &OutboundTls::default())
        }

        /// As [`Self::new`], presenting `tls`'s client certificate (and
        /// trusting its CA) on HTTPS.
        pub fn with_tls(
            url: &str,
            timeout: Duration,
            allow_internal: bool,
            tls: &OutboundTls,
        ) -> Result<Self, WebhookConfigError> {
            // Parsed as reqwest will (WHATWG: `http://2130706433/` is 127.0.0.1),
            // so an IP literal is seen for what it is; it is never resolved.
            let parsed = reqwest::Url::parse(url).map_err(|_| WebhookConfigError::InvalidUrl)?;
            let literal = match parsed.host() {
                None => return Err(WebhookConfigError::InvalidUrl),
                Some(url::Host::Ipv4(ip)) => Some(IpAddr::V4(ip)),
                Some(url::Host::Ipv6(ip)) => Some(IpAddr::V6(ip)),
                Some(url::Host::Domain(name)) => {
                    if !allow_internal && (name.eq_ignore_ascii_case("localhost") || name.ends_with(".localhost")) {
                        return Err(WebhookConfigError::InternalAddress);
                    }
                    None
                }
            };
            if !allow_internal && literal.is_some_and(is_internal) {
                return Err(WebhookConfigError::InternalAddress);
            }
            let options = ClientOptions { tls: tls.clone(), outward_only: !allow_internal };
            let client = client(&options).map_err(|e| WebhookConfigError::Client(e.to_string()))?;
            Self::with_transport(parsed.as_str(), timeout, Reqwest { client })
        }
    }

    #[async_trait]
    impl HttpTransport for Reqwest {
        async fn send(
            &self,
            request: Request<Vec<u8>>,
            timeout: Duration,
        ) -> Result<http::Response<Vec<u8>>, TransportError> {
            let mut request = reqwest::Request::try_from(request).map_err(|_| TransportError::Request)?;
            *request.timeout_mut() = Some(timeout);
            let classify = |e: reqwest::Error| {
                if e.is_timeout() {
                    TransportError::Timeout
                } else if e.is_connect() {
                    TransportError::Connect
                } else {
                    TransportError::Request
                }
            };
            // The timeout set above covers the body too.
            let mut response = self.client.execute(request).await.map_err(classify)?;
            let status = response.status();
            let mut body = Vec::new();
            while let Some(chunk) = response.chunk().await.map_err(classify)? {
                body.extend_from_slice(&chunk);
                if body.len() >= super::MAX_ANSWER_BYTES {
                    body.truncate(super::MAX_ANSWER_BYTES);
                    break;
                }
            }
            let mut answer = http::Response::new(body);
            *answer.status_mut() = status;
            Ok(answer)
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use super::*;

    /// Answers every request with `status` (or `error`) and keeps it.
    struct Recording {
        answer: Result<StatusCode, TransportError>,
        sent: Mutex<Vec<(Request<Vec<u8>>, Duration)>>,
    }

    impl Recording {
        fn answering(answer: Result<StatusCode, TransportError>) -> Self {
            Self { answer, sent: Mutex::new(Vec::new()) }
        }
    }

    #[async_trait]
    impl HttpTransport for &Recording {
        async fn send(
            &self,
            request: Request<Vec<u8>>,
            timeout: Duration,
        ) -> Result<http::Response<Vec<u8>>, TransportError> {
            self.sent.lock().unwrap().push((request, timeout));
            self.answer.map(|status| {
                let mut response = http::Response::new(Vec::new());
                *response.status_mut() = status;
                response
            })
        }
    }

    fn notification() -> Notification {
        Notification {
            id: uuid::Uuid::from_u128(7),
            kind: "order.confirmed.v1".into(),
            order_id: "o-1".into(),
            customer_id: "alice".into(),
            status: "confirmed".into(),
            total: "12.50".into(),
            currency: "EUR".into(),
            message: "Your order o-1 is confirmed.".into(),
        }
    }

    #[tokio::test]
    async fn posts_the_notification_as_json_with_its_id_as_idempotency_key_within_the_timeout() {
        let transport = Recording::answering(Ok(StatusCode::ACCEPTED));
        let webhook =
            Webhook::with_transport("https://hooks.example.com/x?token=s3cret", Duration::from_secs(2), &transport)
                .unwrap();
        assert_eq!(webhook.send(&notification()).await, Ok(()));
        let sent = transport.sent.lock().unwrap();
        let (request, timeout) = &sent[0];
        assert_eq!(*timeout, Duration::from_secs(2));
        assert_eq!(request.method(), Method::POST);
        assert_eq!(request.uri(), "https://hooks.example.com/x?token=s3cret");
        assert_eq!(request.headers()[header::CONTENT_TYPE], "application/json");
        assert_eq!(request.headers()["idempotency-key"], uuid::Uuid::from_u128(7).to_string());
        let body: serde_json::Value = serde_json::from_slice(request.body()).unwrap();
        assert_eq!(body["order_id"], "o-1");
    }

    #[test]
    fn only_a_2xx_status_is_success() {
        assert_eq!(outcome(StatusCode::OK), Ok(()));
        assert_eq!(outcome(StatusCode::NO_CONTENT), Ok(()));
        for status in [301, 400, 404, 429, 500, 503] {
            let status = StatusCode::from_u16(status).unwrap();
            assert_eq!(outcome(status), Err(ProviderError::Rejected(status.as_u16())));
        }
    }

    #[tokio::test]
    async fn transport_failures_become_provider_errors_without_the_url() {
        for (failure, expected) in [
            (TransportError::Timeout, ProviderError::Timeout),
            (TransportError::Connect, ProviderError::Unreachable("connection failed".into())),
            (TransportError::Request, ProviderError::Unreachable("request failed".into())),
        ] {
            let transport = Recording::answering(Err(failure));
            let webhook =
                Webhook::with_transport("https://hooks.example.com/x?token=s3cret", Duration::from_secs(1), &transport)
                    .unwrap();
            let error = webhook.send(&notification()).await.unwrap_err();
            assert_eq!(error, expected);
            assert!(!error.to_string().contains("s3cret"));
        }
    }

    #[test]
    fn only_absolute_http_urls_are_webhooks() {
        let transport = Recording::answering(Ok(StatusCode::OK));
        for url in ["ftp://example.com/x", "/relative", "example.com/x", "http://", "not a url"] {
            assert!(
                matches!(
                    Webhook::with_transport(url, Duration::from_secs(1), &transport),
                    Err(WebhookConfigError::InvalidUrl)
                ),
                "{url}"
            );
        }
    }

    #[test]
    fn internal_addresses_are_recognised() {
        for internal in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "::1",
            "fe80::1",
            "fd00::1",
            "::ffff:127.0.0.1",
            "198.18.0.1",
            "240.0.0.1",
            "fec0::1",
            "::169.254.169.254",
            "64:ff9b::169.254.169.254",
            "64:ff9b::10.0.0.1",
            "2002:a9fe:a9fe::1",
        ] {
            assert!(is_internal(internal.parse().unwrap()), "{internal}");
        }
        for public in ["93.184.216.34", "1.1.1.1", "2606:4700:4700::1111", "64:ff9b::1.1.1.1", "2002:0101:0101::1"] {
            assert!(!is_internal(public.parse().unwrap()), "{public}");
        }
    }
}

#[cfg(all(test, feature = "webhook"))]
mod native_tests {
    use reqwest::dns::{Name, Resolve};

    use super::native::OutwardOnly;
    use super::*;

    #[tokio::test]
    async fn refuses_internal_targets_unless_allowed() {
        for url in [
            "http://127.0.0.1:9/hook",
            "http://169.254.169.254/latest/meta-data",
            "http://localhost/x",
            "http://[::1]/x",
            "http://10.0.0.5/x",
            "http://2130706433/x",
        ] {
            assert!(
                matches!(
                    WebhookProvider::new(url, Duration::from_secs(1), false),
                    Err(WebhookConfigError::InternalAddress)
                ),
                "{url}"
            );
            assert!(WebhookProvider::new(url, Duration::from_secs(1), true).is_ok(), "{url}");
        }
        assert!(WebhookProvider::new("ftp://example.com/x", Duration::from_secs(1), true).is_err());
    }

    #[tokio::test]
    async fn a_name_that_resolves_inward_is_refused_at_send_time() {
        // A name is accepted when configured; what it resolves to is checked
        // when connecting (localtest.me-style names resolve to 127.0.0.1).
        let resolved = OutwardOnly.resolve("localhost".parse::<Name>().unwrap()).await;
        assert!(resolved.is_err());
    }
}
