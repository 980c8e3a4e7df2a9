//! analytics on Spin: the summary API (HTTP trigger) and the projector (its
//! SQS queue, spin-trigger-sqs) over the read models in DynamoDB.
//! `GET /api/v1/orders` is served by order-intake's component on Spin (Spin
//! routes by path, not method; see `order_intake::spin`).

use std::sync::Arc;

use shared::adapters::dynamo::{DynamoAnalytics, TableKind};
use shared::hosts::spin::{Component, Host};
use shared::ports::ReadModelStore;

use crate::{FUNCTION, Projector};

pub fn component(host: &Host) -> Component {
    let views: Arc<dyn ReadModelStore> = Arc::new(DynamoAnalytics::new(host.dynamo.clone(), host.tables()));
    Component::new(FUNCTION)
        .http(crate::http::router(views.clone()), TableKind::Analytics)
        .consumer(Arc::new(Projector::new(views)))
}

shared::spin_entry_points!(component);
