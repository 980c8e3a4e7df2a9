//! A notification provider that POSTs each notification as JSON to a webhook.
//!
//! Every call has a timeout: a hung provider must cost one bounded wait, not
//! a stuck consumer. Retries are not done here but by redelivery, so that a
//! retried notification keeps its id and the receiver can deduplicate.

use std::time::Duration;

use async_trait::async_trait;

use crate::ports::{Notification, NotificationProvider, ProviderError};

#[derive(Debug, Clone)]
pub struct WebhookProvider {
    client: reqwest::Client,
    url: reqwest::Url,
}

#[derive(Debug, thiserror::Error)]
pub enum WebhookConfigError {
    #[error("the webhook URL is not a valid http(s) URL")]
    InvalidUrl,
    #[error("could not build the HTTP client: {0}")]
    Client(String),
}

impl WebhookProvider {
    pub fn new(url: &str, timeout: Duration) -> Result<Self, WebhookConfigError> {
        let url = reqwest::Url::parse(url).map_err(|_| WebhookConfigError::InvalidUrl)?;
        if !matches!(url.scheme(), "http" | "https") || url.host().is_none() {
            return Err(WebhookConfigError::InvalidUrl);
        }
        let client = reqwest::Client::builder()
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
