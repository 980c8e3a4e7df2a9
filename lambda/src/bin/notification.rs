//! notification on Lambda: the notification log API (HTTP API) and the
//! notifier (its SQS queue).

use std::sync::Arc;

use notification::Notifier;
use shared::adapters::dynamo::DynamoNotifications;
use shared::hosts::lambda::{Error, Function, run};
use shared::ports::NotificationLog;

fn main() -> Result<(), Error> {
    run(|aws| {
        let log: Arc<dyn NotificationLog> = Arc::new(DynamoNotifications::new(aws.dynamo.clone(), aws.tables()));
        Function::new(notification::FUNCTION)
            .http(notification::http::router(log.clone()))
            .consumer(Arc::new(Notifier::new(log, aws.notification_provider(), aws.clock())))
    })
}
