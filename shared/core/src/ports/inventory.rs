use std::collections::HashMap;

use async_trait::async_trait;

use super::{ProcessedEvent, StoreError};
use crate::domain::{Money, OrderId, Product, Reservation, ReservationState, Sku};
use crate::events::Envelope;

/// How a reservation change moves stock. Every move is conditional, so that
/// stock can never go negative whatever races with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StockMove {
    None,
    /// available -= n, reserved += n, only where available >= n for EVERY line.
    Take(Vec<(Sku, u32)>),
    /// available += n, reserved -= n, only where reserved >= n for every line.
    Return(Vec<(Sku, u32)>),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReservationChange {
    pub reservation: Reservation,
    /// The state the stored reservation must still be in (`None`: must not
    /// exist yet). Guards against two deliveries both releasing stock.
    pub expected: Option<ReservationState>,
    pub stock: StockMove,
}

/// Products, stock and reservations, owned by inventory.
#[async_trait]
pub trait InventoryStore: Send + Sync {
    async fn product(&self, sku: &Sku) -> Result<Option<Product>, StoreError>;

    /// Products ordered by SKU, starting after `after`.
    async fn products(&self, after: Option<&Sku>, limit: usize) -> Result<Vec<Product>, StoreError>;

    /// Available units per SKU (summed over its items where the store
    /// shards stock); unknown SKUs are absent.
    async fn available(&self, skus: &[Sku]) -> Result<HashMap<Sku, i64>, StoreError>;

    /// Creates (`expected_version == None`: must not exist, with its initial
    /// stock) or updates the catalog fields (name, price, version,
    /// `updated_at`) of a product whose stored version is still
    /// `expected_version`, with events. An update never writes stock: stock
    /// moves only by [`Self::restock`] and reservations, which add and take
    /// rather than overwrite, so a figure read before a reservation cannot
    /// undo it.
    async fn save_product(
        &self,
        product: &Product,
        expected_version: Option<u64>,
        outbox: &[Envelope],
    ) -> Result<(), StoreError>;

    /// Adds `units` to the available stock of `restocked.sku` and stores
    /// `restocked`'s catalog fields, if the stored version is still
    /// `expected_version` (`Conflict` otherwise), with events. A store that
    /// spreads a product's stock over several items spreads the units too.
    async fn restock(
        &self,
        restocked: &Product,
        expected_version: u64,
        units: u32,
        outbox: &[Envelope],
    ) -> Result<(), StoreError>;

    async fn reservation(&self, order_id: OrderId) -> Result<Option<Reservation>, StoreError>;

    /// Applies a reservation change and its stock move atomically, or nothing
    /// (`Conflict` when a condition failed; `AlreadyProcessed` when the
    /// event of `processed` has changed this reservation before, whatever
    /// changed it since). A mark is about the reservation its event
    /// concerns; a store may keep it on the reservation itself.
    async fn apply_reservation(
        &self,
        change: &ReservationChange,
        outbox: &[Envelope],
        processed: &ProcessedEvent,
    ) -> Result<(), StoreError>;
}

/// The price list order intake reads at checkout: a read-only view of the
/// catalog. Intake freezes these prices into the order; it never reads or
/// checks stock (that is the saga's job).
#[async_trait]
pub trait PriceList: Send + Sync {
    async fn prices(&self, skus: &[Sku]) -> Result<HashMap<Sku, Money>, StoreError>;

    /// The products' display names (analytics names its popular ranking
    /// with them; the catalog is where names live). Unknown SKUs are absent.
    async fn names(&self, skus: &[Sku]) -> Result<HashMap<Sku, String>, StoreError>;
}
