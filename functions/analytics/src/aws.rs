//! analytics on DynamoDB + SQS, as Lambda and Spin run it: the summary API
//! and the projector (its queue) over the read models in its table.
//! `GET /api/v1/orders` is analytics' route on Lambda (API Gateway routes by
//! method); on Spin, which routes by path only, order-intake's component
//! serves it (see `order_intake::aws`).

use std::sync::Arc;

use shared::adapters::dynamo::{DynamoAnalytics, TableKind};
use shared::hosts::aws::{Function, Host};
use shared::ports::ReadModelStore;

use crate::{FUNCTION, Projector};

pub fn wire(host: &Host) -> Function {
    let views: Arc<dyn ReadModelStore> = Arc::new(DynamoAnalytics::new(host.dynamo.clone(), host.tables()));
    Function::new(FUNCTION)
        .http(crate::http::router(views.clone()), TableKind::Analytics)
        .consumer(Arc::new(Projector::new(views)))
}

#[cfg(feature = "spin")]
shared::spin_entry_points!(wire);
