//! analytics on Lambda: the read API (HTTP API) and the projector (its SQS
//! queue).

use std::sync::Arc;

use analytics::Projector;
use shared::adapters::dynamo::DynamoAnalytics;
use shared::hosts::lambda::{Error, Function, run};
use shared::ports::ReadModelStore;

fn main() -> Result<(), Error> {
    run(|aws| {
        let store = Arc::new(DynamoAnalytics::new(aws.dynamo.clone(), aws.tables()));
        Function::new(analytics::FUNCTION)
            .http(analytics::http::router(store.clone() as Arc<dyn ReadModelStore>))
            .consumer(Arc::new(Projector::new(store)))
    })
}
