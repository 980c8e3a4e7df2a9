//! notification on DynamoDB + SQS, as Lambda and Spin run it: the
//! notification log API and the notifier (its queue), behind the provider's
//! circuit breaker whose state every instance shares in this function's table.

use std::sync::Arc;

use shared::adapters::dynamo::{DynamoNotifications, TableKind};
use shared::hosts::aws::{Function, Host};
use shared::ports::NotificationLog;

use crate::{FUNCTION, Notifier};

pub fn wire(host: &Host) -> Function {
    let log: Arc<dyn NotificationLog> = Arc::new(DynamoNotifications::new(host.dynamo.clone(), host.tables()));
    Function::new(FUNCTION)
        .http(crate::http::router(log.clone()), TableKind::Notifications)
        .consumer(Arc::new(Notifier::new(log, host.breaker(), host.clock())))
}

#[cfg(feature = "spin")]
shared::spin_entry_points!(wire);
