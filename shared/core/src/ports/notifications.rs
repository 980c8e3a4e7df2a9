use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::StoreError;
use crate::domain::{CustomerId, OrderId};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum NotificationState {
    /// The provider accepted it.
    Sent,
    /// The last attempt failed; it will be tried again.
    Deferred,
    /// Every attempt failed; the message is in the dead-letter queue.
    Failed,
}

impl NotificationState {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Sent => "sent",
            Self::Deferred => "deferred",
            Self::Failed => "failed",
        }
    }

    pub fn parse(raw: &str) -> Option<Self> {
        [Self::Sent, Self::Deferred, Self::Failed].into_iter().find(|s| s.as_str() == raw)
    }
}

/// One notification, keyed by the id of the event that caused it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotificationRecord {
    pub id: Uuid,
    pub order_id: OrderId,
    pub customer_id: CustomerId,
    /// The event type that caused it, e.g. `order.confirmed.v1`.
    pub kind: String,
    pub state: NotificationState,
    pub attempts: u32,
    pub last_error: Option<String>,
    pub provider: String,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// The notification log, owned by notification.
#[async_trait]
pub trait NotificationLog: Send + Sync {
    async fn get(&self, id: Uuid) -> Result<Option<NotificationRecord>, StoreError>;

    /// Inserts or replaces the record with this id, unless the stored one is
    /// `sent`: then nothing changes, and that is success. Two deliveries of
    /// one event may overlap; the one whose call failed must not record
    /// `deferred` or `failed` over the one that was sent.
    async fn save(&self, record: &NotificationRecord) -> Result<(), StoreError>;

    /// Oldest first; all orders when `order_id` is `None`.
    async fn list(&self, order_id: Option<OrderId>, limit: usize) -> Result<Vec<NotificationRecord>, StoreError>;
}
