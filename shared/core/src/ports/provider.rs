use async_trait::async_trait;
use serde::Serialize;
use uuid::Uuid;

/// What is sent to a customer: small and self-contained, so that a webhook
/// receiver needs nothing else.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Notification {
    /// Stable across retries: receivers deduplicate on it.
    pub id: Uuid,
    pub kind: String,
    pub order_id: String,
    pub customer_id: String,
    pub status: String,
    pub total: String,
    pub currency: String,
    pub message: String,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProviderError {
    #[error("the provider did not answer in time")]
    Timeout,
    #[error("the provider answered {0}")]
    Rejected(u16),
    #[error("the provider is unreachable: {0}")]
    Unreachable(String),
    /// Not called: the circuit breaker is open.
    #[error("the circuit breaker is open (provider failing); not called")]
    CircuitOpen { retry_after: std::time::Duration },
}

/// Sends notifications: a webhook, an email API, or the log itself.
#[async_trait]
pub trait NotificationProvider: Send + Sync {
    /// A short name for the log and metrics (`webhook`, `log`).
    fn name(&self) -> &'static str;

    async fn send(&self, notification: &Notification) -> Result<(), ProviderError>;

    /// `Some(d)` when calls are known to be refused for `d` (an open circuit
    /// breaker); consumers pause instead of taking messages to defer them.
    async fn unavailable_for(&self) -> Option<std::time::Duration> {
        None
    }
}
