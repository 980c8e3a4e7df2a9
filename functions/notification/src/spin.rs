//! notification on Spin: the notification log API (HTTP trigger) and the
//! notifier (its SQS queue, spin-trigger-sqs), behind the provider's circuit
//! breaker whose state every instance shares in this function's table.

use std::sync::Arc;

use shared::adapters::dynamo::{DynamoNotifications, TableKind};
use shared::hosts::spin::{Component, Host};
use shared::ports::NotificationLog;

use crate::{FUNCTION, Notifier};

pub fn component(host: &Host) -> Component {
    let log: Arc<dyn NotificationLog> = Arc::new(DynamoNotifications::new(host.dynamo.clone(), host.tables()));
    Component::new(FUNCTION)
        .http(crate::http::router(log.clone()), TableKind::Notifications)
        .consumer(Arc::new(Notifier::new(log, host.breaker(), host.clock())))
}

shared::spin_entry_points!(component);
