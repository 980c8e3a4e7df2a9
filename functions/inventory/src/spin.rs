//! inventory on Spin: the catalog API (HTTP trigger), reservations (its SQS
//! queue, spin-trigger-sqs) and the relay of its outbox (spin-trigger-cron),
//! on DynamoDB and SQS. Each trigger is its own component, built from this
//! crate with `--features spin-http|spin-queue|spin-relay` (see spin.toml).

use std::sync::Arc;

use shared::adapters::dynamo::{DynamoInventory, TableKind};
use shared::events::EventFactory;
use shared::hosts::spin::{Component, Host};

use crate::{Catalog, FUNCTION, InventoryConsumer, Reservations};

/// The wiring: DynamoDB adapters into the catalog and reservations. Builds
/// clients' requests only; makes no call.
pub fn component(host: &Host) -> Component {
    let store = Arc::new(DynamoInventory::new(host.dynamo.clone(), host.tables()));
    let events = || EventFactory::new(FUNCTION, host.ids(), host.clock());
    // No cache: an instance lives for one request or one message (see docs/spin.md).
    let catalog = Arc::new(Catalog::new(store.clone(), events(), host.clock()));
    let reservations = Reservations::new(store.clone(), store.clone(), events(), host.clock());
    Component::new(FUNCTION)
        .http(crate::http::router(catalog.clone()), TableKind::Inventory)
        .consumer(Arc::new(InventoryConsumer::new(reservations, catalog)))
        .outbox(store)
}

shared::spin_entry_points!(component);
