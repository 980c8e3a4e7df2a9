//! inventory on DynamoDB + SQS, as Lambda and Spin run it: the catalog API,
//! reservations (its queue) and the relay of its outbox. On Lambda one
//! binary serves all three triggers; on Spin each is its own component,
//! built from this crate with `--features spin-http|spin-queue|spin-relay`
//! (see spin.toml).

use std::sync::Arc;

use shared::adapters::dynamo::{DynamoInventory, TableKind};
use shared::events::EventFactory;
use shared::hosts::aws::{Function, Host};

use crate::{Catalog, FUNCTION, InventoryConsumer, Reservations};

/// The wiring: DynamoDB adapters into the catalog and reservations. Builds
/// clients' requests only; makes no call.
pub fn wire(host: &Host) -> Function {
    let store = Arc::new(DynamoInventory::new(host.dynamo.clone(), host.tables()));
    let events = || EventFactory::new(FUNCTION, host.ids(), host.clock());
    // No cache: an instance lives for one request or one message (see docs/spin.md).
    let catalog = Arc::new(Catalog::new(store.clone(), events(), host.clock()));
    let reservations = Reservations::new(store.clone(), store.clone(), events(), host.clock());
    Function::new(FUNCTION)
        .http(crate::http::router(catalog.clone()), TableKind::Inventory)
        .consumer(Arc::new(InventoryConsumer::new(reservations, catalog)))
        .outbox(store)
}

#[cfg(feature = "spin")]
shared::spin_entry_points!(wire);
