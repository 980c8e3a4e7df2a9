//! A notification provider that POSTs each notification as JSON to a webhook.
//!
//! Every call has a timeout: a hung provider must cost one bounded wait, not
//! a stuck consumer. Retries are not done here but by redelivery, so that a
//! retried notification keeps its id and the receiver can deduplicate.
//!
//! SSRF: unless allowed, the webhook may not reach loopback, private,
//! link-local, CGNAT, multicast or unspecified addresses — checked for IP
//! literals when configured, and for every DNS answer at connection time (so
//! a name that later resolves inward, DNS rebinding, is refused too).

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use reqwest::dns::{Addrs, Name, Resolve, Resolving};

use orderly_core::ports::{Notification, NotificationProvider, ProviderError};

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
                || a == 0
        }
        IpAddr::V6(v6) => {
            let first = v6.segments()[0];
            v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                || (first & 0xfe00) == 0xfc00 // unique local fc00::/7
                || (first & 0xffc0) == 0xfe80 // link-local fe80::/10
                || v6.to_ipv4_mapped().is_some_and(|v4| is_internal(IpAddr::V4(v4)))
        }
    }
}

/// Resolves names with the system resolver, dropping internal addresses.
struct OutwardOnly;

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
pub struct WebhookProvider {
    client: reqwest::Client,
    url: reqwest::Url,
}

#[derive(Debug, thiserror::Error)]
pub enum WebhookConfigError {
    #[error("the webhook URL is not a valid http(s) URL")]
    InvalidUrl,
    #[error("the webhook URL points at an internal address; set ORDERLY_NOTIFY_ALLOW_PRIVATE=true if that is intended")]
    InternalAddress,
    #[error("could not build the HTTP client: {0}")]
    Client(String),
}

impl WebhookProvider {
    /// `allow_internal`: let the webhook reach internal addresses (a receiver
    /// on the same host or network, as in development and tests).
    pub fn new(url: &str, timeout: Duration, allow_internal: bool) -> Result<Self, WebhookConfigError> {
        let url = reqwest::Url::parse(url).map_err(|_| WebhookConfigError::InvalidUrl)?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(WebhookConfigError::InvalidUrl);
        }
        let literal = match url.host() {
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
        let mut builder = reqwest::Client::builder();
        if !allow_internal {
            builder = builder.dns_resolver(Arc::new(OutwardOnly));
        }
        let client = builder
            .timeout(timeout)
            .connect_timeout(timeout)
            // A webhook that redirects elsewhere is not followed: the operator
            // chose this URL, not the receiver.
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| WebhookConfigError::Client(e.to_string()))?;
        Ok(Self { client, url })
    }
}

#[async_trait]
impl NotificationProvider for WebhookProvider {
    fn name(&self) -> &'static str {
        "webhook"
    }

    async fn send(&self, notification: &Notification) -> Result<(), ProviderError> {
        let response = self
            .client
            .post(self.url.clone())
            .header("Idempotency-Key", notification.id.to_string())
            .json(notification)
            .send()
            .await
            .map_err(
                |e| if e.is_timeout() { ProviderError::Timeout } else { ProviderError::Unreachable(kind_of(&e)) },
            )?;
        let status = response.status();
        if status.is_success() { Ok(()) } else { Err(ProviderError::Rejected(status.as_u16())) }
    }
}

/// What went wrong, without the URL (it may hold a token).
fn kind_of(error: &reqwest::Error) -> String {
    if error.is_connect() {
        "connection failed".into()
    } else if error.is_request() {
        "request failed".into()
    } else {
        "transport error".into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
        ] {
            assert!(is_internal(internal.parse().unwrap()), "{internal}");
        }
        for public in ["93.184.216.34", "1.1.1.1", "2606:4700:4700::1111"] {
            assert!(!is_internal(public.parse().unwrap()), "{public}");
        }
    }

    #[tokio::test]
    async fn refuses_internal_targets_unless_allowed() {
        for url in [
            "http://127.0.0.1:9/hook",
            "http://169.254.169.254/latest/meta-data",
            "http://localhost/x",
            "http://[::1]/x",
            "http://10.0.0.5/x",
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
