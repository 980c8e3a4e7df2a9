//! inventory, wired from any backend: the catalog API, reservations (its
//! queue) and its outbox. The one composition every host runs.

use std::sync::Arc;

use orderly_core::composition::{Backend, Function};
use orderly_core::events::EventFactory;
use orderly_core::events::routing::Consumer;
use orderly_core::http::CachePolicy;

use crate::{Catalog, FUNCTION, InventoryConsumer, Reservations};

/// The catalog: cache-aside through the backend's cache when it has one
/// (the runner; a Spin instance lives for one request, so it has none).
pub fn catalog(backend: &Arc<dyn Backend>) -> Arc<Catalog> {
    let events = EventFactory::new(FUNCTION, backend.ids(), backend.clock());
    let catalog = Catalog::new(backend.inventory(), events, backend.clock());
    Arc::new(match backend.cache() {
        Some(cache) => catalog.with_cache(cache),
        None => catalog,
    })
}

pub fn wire(backend: &Arc<dyn Backend>) -> Function {
    let catalog = catalog(backend);
    let events = EventFactory::new(FUNCTION, backend.ids(), backend.clock());
    let reservations =
        Reservations::new(backend.inventory(), backend.processed(Consumer::Inventory), events, backend.clock());
    Function::new(FUNCTION, Consumer::Inventory)
        .routes(crate::http::router(catalog.clone(), CachePolicy { max_age: backend.settings().edge.catalog_max_age }))
        .consumer(Arc::new(InventoryConsumer::new(reservations, catalog)))
        .outbox(backend.inventory_outbox())
}

#[cfg(feature = "spin")]
orderly_hosts::spin_entry_points!(wire);
