//! # Inventory
//!
//! Owns the catalog, stock and reservations. Its half of the order saga is
//! in [`reservations`]: on `order.placed.v1` it reserves every line of the
//! order at once or none of them, and replies with `inventory.reserved.v1` or
//! `inventory.rejected.v1`; on `order.cancelled.v1` it gives the stock back.
//!
//! Stock can never go negative or be sold twice, whatever the interleaving:
//! the decision is taken on a snapshot, and the store commits it only if
//! every line still fits (see `orderly_core::domain::ReservationDecision`).

pub mod catalog;
pub mod consumer;
pub mod http;
pub mod wiring;

pub use wiring::wire;
pub mod reservations;

pub use catalog::{Catalog, CatalogError, PutOutcome};
pub use consumer::InventoryConsumer;
pub use reservations::Reservations;

/// The `source` of events this function emits, and its consumer name.
pub const FUNCTION: &str = "inventory";
