//! inventory on Lambda: the catalog API (HTTP API), reservations (its SQS
//! queue) and the relay of its outbox (its table's stream).

use std::sync::Arc;

use inventory::{Catalog, Reservations};
use shared::adapters::dynamo::DynamoInventory;
use shared::events::EventFactory;
use shared::hosts::lambda::{Error, Function, run};

fn main() -> Result<(), Error> {
    run(|aws| {
        let store = Arc::new(DynamoInventory::new(aws.dynamo.clone(), aws.tables()));
        let events = || EventFactory::new(inventory::FUNCTION, aws.ids(), aws.clock());
        let catalog = Arc::new(Catalog::new(store.clone(), events(), aws.clock()));
        Function::new(inventory::FUNCTION)
            .http(inventory::http::router(catalog))
            .consumer(Arc::new(Reservations::new(store.clone(), store.clone(), events(), aws.clock())))
            .outbox(store)
    })
}
