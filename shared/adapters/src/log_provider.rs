//! The default notification provider when no webhook is configured: the
//! notification is "delivered" to the log, and the notification log records
//! it as sent. Nothing is lost and a newcomer sees the flow work.

use async_trait::async_trait;

use orderly_core::ports::{Notification, NotificationProvider, ProviderError};

#[derive(Debug, Default, Clone, Copy)]
pub struct LogProvider;

#[async_trait]
impl NotificationProvider for LogProvider {
    fn name(&self) -> &'static str {
        "log"
    }

    async fn send(&self, notification: &Notification) -> Result<(), ProviderError> {
        tracing::info!(
            notification_id = %notification.id,
            order_id = %notification.order_id,
            customer_id = %notification.customer_id,
            kind = %notification.kind,
            "notification recorded (no webhook configured)"
        );
        Ok(())
    }
}
