//! Inventory's table: products (with stock), reservations, outbox, marks.
//!
//! | item | pk | sk | notes |
//! |---|---|---|---|
//! | product | `PRODUCT#<sku>` | `#` | `name`, `price_minor`, `currency`, `available`, `reserved`, `version`, `updated_at`; `gsi1pk = PRODUCTS`, `gsi1sk = <sku>` |
//! | reservation | `RESERVATION#<order id>` | `#` | `state`, `doc` |
//! | outbox event | `OUTBOX#<shard>` | UUIDv7 | `body` |
//! | processed mark | `PROCESSED#<consumer>#<event id>` | `#` | `ttl` |
//!
//! Stock moves are `UpdateItem`s conditioned on `available >= :n` (or
//! `reserved >= :n`), all lines of a reservation in one transaction with the
//! reservation, its events and the processed mark: no interleaving oversells.
//! The catalog GSI projects keys only, so stock updates never write to it.

use std::collections::{BTreeMap, HashMap};

use async_trait::async_trait;
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::types::{KeysAndAttributes, Update};

use super::super::codec::{ProductFields, price};
use super::outbox::OutboxItems;
use super::write::{mark_put, processed_events_for, put, write_put, write_update};
use super::{
    Direction, DynamoConfig, Item, ONLY, Table, from_json, get_n, get_s, key, n, s, sdk_unavailable, timestamp, to_json,
};
use orderly_core::domain::{Money, OrderId, Product, Reservation, Sku};
use orderly_core::events::Envelope;
use orderly_core::ports::{
    InventoryStore, Outbox, OutboxEntry, PriceList, ProcessedEvent, QueueError, ReservationChange, StockMove,
    StoreError,
};

const CATALOG: &str = "PRODUCTS";

#[derive(Debug, Clone)]
pub struct DynamoInventory {
    table: Table,
    outbox: OutboxItems,
}

fn product_key(sku: &Sku) -> Item {
    key(format!("PRODUCT#{sku}"), ONLY)
}

fn reservation_key(order_id: OrderId) -> Item {
    key(format!("RESERVATION#{order_id}"), ONLY)
}

fn sku_of(item: &Item, name: &str) -> Result<Sku, StoreError> {
    Sku::parse(get_s(item, name)?).map_err(|e| StoreError::Corrupt(e.to_string()))
}

fn product_from_item(item: &Item) -> Result<Product, StoreError> {
    ProductFields {
        sku: get_s(item, "sku")?.to_owned(),
        name: get_s(item, "name")?.to_owned(),
        price_minor: get_n(item, "price_minor")?,
        currency: get_s(item, "currency")?.to_owned(),
        available: get_n(item, "available")?,
        reserved: get_n(item, "reserved")?,
        version: get_n(item, "version")?,
        updated_at: get_s(item, "updated_at")?.to_owned(),
    }
    .decode()
}

impl DynamoInventory {
    pub fn new(client: Client, config: &DynamoConfig) -> Self {
        Self {
            table: Table { client, name: config.inventory_table.clone(), processed_ttl: config.processed_ttl },
            outbox: OutboxItems { shards: config.outbox_shards },
        }
    }

    /// Reads products by SKU (strongly consistent), at most 100 per request,
    /// retrying keys DynamoDB left unprocessed.
    async fn products_by_sku(&self, skus: &[Sku], projection: Option<&str>) -> Result<Vec<Item>, StoreError> {
        let mut unique: Vec<&Sku> = skus.iter().collect();
        unique.sort();
        unique.dedup();
        let mut found = Vec::with_capacity(unique.len());
        for chunk in unique.chunks(100) {
            let mut keys = KeysAndAttributes::builder()
                .set_keys(Some(chunk.iter().map(|sku| product_key(sku)).collect()))
                .consistent_read(true);
            if let Some(projection) = projection {
                keys = keys.projection_expression(projection);
            }
            let mut request = Some(keys.build().map_err(|e| StoreError::Unavailable(e.to_string()))?);
            let mut attempt = 0;
            while let Some(keys) = request.take() {
                let page = self
                    .table
                    .client
                    .batch_get_item()
                    .request_items(&self.table.name, keys)
                    .send()
                    .await
                    .map_err(sdk_unavailable)?;
                found.extend(page.responses.and_then(|mut r| r.remove(&self.table.name)).unwrap_or_default());
                request = page.unprocessed_keys.and_then(|mut left| left.remove(&self.table.name));
                if request.as_ref().is_some_and(|k| !k.keys.is_empty()) {
                    attempt += 1;
                    if attempt > 8 {
                        return Err(StoreError::Unavailable("product reads were throttled".into()));
                    }
                    self.table.pause(attempt).await;
                } else {
                    request = None;
                }
            }
        }
        Ok(found)
    }
}

/// One update per SKU (a transaction may touch each item once).
fn merged(lines: &[(Sku, u32)]) -> BTreeMap<&Sku, i64> {
    let mut units = BTreeMap::new();
    for (sku, n) in lines {
        *units.entry(sku).or_insert(0) += i64::from(*n);
    }
    units
}

#[async_trait]
impl InventoryStore for DynamoInventory {
    async fn product(&self, sku: &Sku) -> Result<Option<Product>, StoreError> {
        self.table.get(product_key(sku)).await?.as_ref().map(product_from_item).transpose()
    }

    async fn products(&self, after: Option<&Sku>, limit: usize) -> Result<Vec<Product>, StoreError> {
        let page = self.table.gsi1_page(CATALOG.into(), Direction::Ascending, after.map(Sku::to_string), limit).await?;
        let skus = page.iter().map(|item| sku_of(item, "gsi1sk")).collect::<Result<Vec<_>, _>>()?;
        let mut products =
            self.products_by_sku(&skus, None).await?.iter().map(product_from_item).collect::<Result<Vec<_>, _>>()?;
        products.sort_by(|a, b| a.sku.cmp(&b.sku));
        Ok(products)
    }

    async fn available(&self, skus: &[Sku]) -> Result<HashMap<Sku, i64>, StoreError> {
        self.products_by_sku(skus, Some("sku, available"))
            .await?
            .iter()
            .map(|item| Ok((sku_of(item, "sku")?, get_n(item, "available")?)))
            .collect()
    }

    async fn save_product(
        &self,
        product: &Product,
        expected_version: Option<u64>,
        outbox: &[Envelope],
    ) -> Result<(), StoreError> {
        let fields = ProductFields::of(product)?;
        let mut item = product_key(&product.sku);
        item.insert("sku".into(), s(fields.sku));
        item.insert("name".into(), s(fields.name));
        item.insert("price_minor".into(), n(fields.price_minor));
        item.insert("currency".into(), s(fields.currency));
        item.insert("available".into(), n(fields.available));
        item.insert("reserved".into(), n(fields.reserved));
        item.insert("version".into(), n(fields.version));
        item.insert("updated_at".into(), s(fields.updated_at));
        item.insert("gsi1pk".into(), s(CATALOG));
        item.insert("gsi1sk".into(), s(product.sku.to_string()));
        let product_put = match expected_version {
            None => put(&self.table.name, item, Some("attribute_not_exists(pk)"), &[]),
            Some(version) => put(&self.table.name, item, Some("version = :expected"), &[(":expected", n(version))]),
        };
        let mut writes = vec![write_put(product_put)];
        writes.extend(self.outbox.puts(&self.table, outbox));
        self.table.write_all(writes).await.map_err(|e| e.into_store_error(None))
    }

    async fn reservation(&self, order_id: OrderId) -> Result<Option<Reservation>, StoreError> {
        self.table.get(reservation_key(order_id)).await?.map(|item| from_json(get_s(&item, "doc")?)).transpose()
    }

    async fn apply_reservation(
        &self,
        change: &ReservationChange,
        outbox: &[Envelope],
        processed: &ProcessedEvent,
    ) -> Result<(), StoreError> {
        let reservation = &change.reservation;
        let mut writes = vec![mark_put(&self.table, processed)];
        let mut item = reservation_key(reservation.order_id);
        item.insert("state".into(), s(reservation.state.as_str()));
        item.insert("doc".into(), s(to_json(reservation)?));
        let reservation_put = match change.expected {
            None => put(&self.table.name, item, Some("attribute_not_exists(pk)"), &[]),
            Some(state) => {
                let mut p =
                    put(&self.table.name, item, Some("#state = :expected"), &[(":expected", s(state.as_str()))]);
                p.expression_attribute_names = Some(HashMap::from([("#state".to_owned(), "state".to_owned())]));
                p
            }
        };
        writes.push(write_put(reservation_put));
        let (lines, expression, guard) = match &change.stock {
            StockMove::None => (&[][..], "", ""),
            StockMove::Take(lines) => (
                &lines[..],
                "SET available = available - :n, reserved = reserved + :n, version = version + :one, updated_at = :at",
                "available >= :n",
            ),
            StockMove::Return(lines) => (
                &lines[..],
                "SET available = available + :n, reserved = reserved - :n, version = version + :one, updated_at = :at",
                "reserved >= :n",
            ),
        };
        let at = s(timestamp(reservation.updated_at));
        for (sku, units) in merged(lines) {
            let update = Update::builder()
                .table_name(&self.table.name)
                .set_key(Some(product_key(sku)))
                .update_expression(expression)
                .condition_expression(format!("attribute_exists(pk) AND {guard}"))
                .expression_attribute_values(":n", n(units))
                .expression_attribute_values(":one", n(1))
                .expression_attribute_values(":at", at.clone())
                .build()
                .map_err(|e| StoreError::Unavailable(e.to_string()))?;
            writes.push(write_update(update));
        }
        writes.extend(self.outbox.puts(&self.table, outbox));
        self.table.write_all(writes).await.map_err(|e| e.into_store_error(Some(0)))
    }
}

#[async_trait]
impl PriceList for DynamoInventory {
    async fn prices(&self, skus: &[Sku]) -> Result<HashMap<Sku, Money>, StoreError> {
        self.products_by_sku(skus, Some("sku, price_minor, currency"))
            .await?
            .iter()
            .map(|item| Ok((sku_of(item, "sku")?, price(get_n(item, "price_minor")?, get_s(item, "currency")?)?)))
            .collect()
    }

    async fn names(&self, skus: &[Sku]) -> Result<HashMap<Sku, String>, StoreError> {
        // `name` is a reserved word in projections: read the whole (small) items.
        self.products_by_sku(skus, None)
            .await?
            .iter()
            .map(|item| Ok((sku_of(item, "sku")?, get_s(item, "name")?.to_owned())))
            .collect()
    }
}

#[async_trait]
impl Outbox for DynamoInventory {
    async fn pending(&self, after: Option<&str>, limit: usize) -> Result<Vec<OutboxEntry>, QueueError> {
        self.outbox.pending(&self.table, after, limit).await
    }

    async fn remove(&self, positions: &[String]) -> Result<(), QueueError> {
        self.outbox.remove(&self.table, positions).await
    }
}

processed_events_for!(DynamoInventory);
