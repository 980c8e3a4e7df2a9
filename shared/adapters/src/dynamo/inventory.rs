//! Inventory's table: products, their stock shards, reservations, outbox, marks.
//!
//! | item | pk | sk | notes |
//! |---|---|---|---|
//! | product, and its stock shard 0 | `PRODUCT#<sku>` | `#` | `name`, `price_minor`, `currency`, `available`, `reserved`, `version`, `updated_at`, `stock_shards` (absent: 1); `gsi1pk = PRODUCTS`, `gsi1sk = <sku>` |
//! | stock shard 1.. | `STOCK#<sku>#<i>` | `#` | `sku`, `stock_shard`, `available`, `reserved`, `updated_at` |
//! | reservation | `RESERVATION#<order id>` | `#` | `state`, `doc`, `taken` (the shards its stock came from), `events` (the ids of the events that wrote it: their processed marks, see `write::inline_mark`) |
//! | outbox event | `OUTBOX#<shard>` | UUIDv7 | `body`; with `outbox = stream`, only what a relay failed to publish (the events ride on the item a write changes first, as `outbox`: see `outbox.rs`) |
//! | processed mark | `PROCESSED#<consumer>#<event id>` | `#` | `ttl`; only for events that change no reservation (and, until their TTL, from before marks lived on it) |
//!
//! # Why stock is sharded
//!
//! One item takes at most 1,000 write units a second, and a transactional
//! write costs 2 per item: a SKU whose stock is one item tops out near 500
//! reservations a second, and concurrent transactions on that item cancel
//! each other (`TransactionConflict`). So a product's stock may be spread over
//! `stock_shards` items, each its own partition:
//!
//! - `available` is the sum of the shards (one `BatchGetItem`);
//! - a reservation takes each line from one shard that has enough, picked at
//!   random so that concurrent takes land on different items, or combines
//!   shards when none has enough. Each shard's update is conditioned on its
//!   own stock and they all go in one transaction with the reservation, so
//!   nothing oversells and a multi-line order stays all-or-nothing;
//! - the reservation records where it took from (`taken`) and a release
//!   returns exactly there;
//! - a restock adds to every shard evenly.
//!
//! A SKU gets hot on its own, so its count may grow on its own: when a
//! reservation had to fight for it (its transaction lost a race, or a shard
//! it planned on was drained meanwhile), the SKU doubles its items, up to
//! `stock_shards_max`. Each old shard hands half its units to a new one, in
//! one transaction conditioned on the count it read and on every shard still
//! holding what it hands over, so the total never moves and two instances
//! cannot both grow it. It is best effort: a growth that loses a race is
//! dropped, and the next contention tries again.
//!
//! The plan uses the shard figures of this instance's latest read (the saga
//! reads availability right before it reserves); a stale plan only fails a
//! condition, and the saga reads and decides again.
//!
//! Shard 0 is the product item itself, so products written before sharding
//! keep working: their stock is all in shard 0, a release without `taken`
//! returns there, and their next restock grows them to the configured count
//! (a count never shrinks: that would hide stock). Stock moves by `ADD` under
//! conditions and never touches `version`, which guards catalog writes only:
//! a reservation on shard 3 never contends with an admin's price change.
//! The catalog GSI projects keys only, so stock updates never write to it.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::types::{AttributeValue, KeysAndAttributes, TransactWriteItem, Update};

use super::super::codec::{ProductFields, price};
use super::outbox::{OutboxItems, OutboxMode, outbox_for};
use super::write::{WriteError, inline_mark, processed_events_for, put, write_put, write_update};
use super::{
    Direction, DynamoConfig, Item, ONLY, Table, from_json, get_n, get_s, key, n, s, sdk_unavailable, timestamp, to_json,
};
use orderly_core::domain::{Money, OrderId, Product, Reservation, Sku};
use orderly_core::events::Envelope;
use orderly_core::ports::{InventoryStore, PriceList, ProcessedEvent, ReservationChange, StockMove, StoreError};

const CATALOG: &str = "PRODUCTS";

use orderly_core::settings::MAX_STOCK_SHARDS;

/// What availability reads of product and shard items.
const AVAILABILITY: &str = "sku, available, stock_shards, stock_shard";

/// The product item's stock count is still `:read_count`, the one the
/// writer read (absent means 1; bind `:one` too): growth and restocks change
/// it only from what they read.
const COUNT_IS: &str = "(stock_shards = :read_count OR (attribute_not_exists(stock_shards) AND :read_count = :one))";

/// Fresh plans a take makes when shards it planned on were drained
/// meanwhile but the SKU's total still covers it, before `Conflict`.
const REPLANS: u32 = 4;

/// Most items one `TransactWriteItems` may hold.
const MAX_TRANSACTION_ITEMS: usize = 100;

/// Units taken from each shard of one SKU, as recorded on the reservation.
type Taken = Vec<(Sku, u32, i64)>;

/// The product item's attribute naming the last catalog write or restock
/// that changed it. A write whose answer was lost (a timeout after it
/// committed) is sent again by the SDK; that copy fails its own version
/// condition, and without this id the caller could not tell "someone else
/// changed the product" (re-read and write again) from "my write went
/// through" (done) — a restock would add its units twice.
const WRITE_ID: &str = "write_id";

fn new_write_id() -> String {
    uuid::Uuid::new_v4().to_string()
}

#[derive(Debug, Clone)]
pub struct DynamoInventory {
    table: Table,
    outbox: OutboxItems,
    shards: u32,
    /// Most stock items a contended SKU grows to.
    grow_to: u32,
    /// Each SKU's available units per shard as this instance last read them:
    /// the plan of the next take (see the module docs).
    last_read: Arc<Mutex<HashMap<Sku, Vec<i64>>>>,
}

fn product_key(sku: &Sku) -> Item {
    key(format!("PRODUCT#{sku}"), ONLY)
}

/// Shard 0 is the product item; the others have their own partitions.
fn stock_key(sku: &Sku, shard: u32) -> Item {
    if shard == 0 { product_key(sku) } else { key(format!("STOCK#{sku}#{shard}"), ONLY) }
}

fn reservation_key(order_id: OrderId) -> Item {
    key(format!("RESERVATION#{order_id}"), ONLY)
}

fn sku_of(item: &Item, name: &str) -> Result<Sku, StoreError> {
    Sku::parse(get_s(item, name)?).map_err(|e| StoreError::Corrupt(e.to_string()))
}

/// A count attribute that may be absent (older items): `default` then.
fn get_count(item: &Item, name: &str, default: u32) -> Result<u32, StoreError> {
    if !item.contains_key(name) {
        return Ok(default);
    }
    u32::try_from(get_n(item, name)?).map_err(|_| StoreError::Corrupt(format!("attribute {name} out of range")))
}

/// One stock item as read.
#[derive(Debug, Clone, Default)]
struct Level {
    available: i64,
    reserved: i64,
    updated_at: Option<String>,
}

impl Level {
    fn of(item: &Item) -> Result<Self, StoreError> {
        Ok(Self {
            // A shard created by a restock's ADD has no `reserved` yet.
            available: if item.contains_key("available") { get_n(item, "available")? } else { 0 },
            reserved: if item.contains_key("reserved") { get_n(item, "reserved")? } else { 0 },
            updated_at: item.get("updated_at").and_then(|v| v.as_s().ok()).cloned(),
        })
    }
}

/// A product item and its stock, shard by shard (index = shard).
#[derive(Debug, Clone)]
struct Stocked {
    product: Item,
    levels: Vec<Level>,
}

impl Stocked {
    fn available(&self) -> i64 {
        self.levels.iter().map(|l| l.available).sum()
    }

    fn product(&self) -> Result<Product, StoreError> {
        let item = &self.product;
        // Fixed-width RFC 3339 timestamps (UTC, microseconds) sort as text.
        let updated_at = self
            .levels
            .iter()
            .filter_map(|l| l.updated_at.as_deref())
            .chain([get_s(item, "updated_at")?])
            .max()
            .unwrap_or_default()
            .to_owned();
        ProductFields {
            sku: get_s(item, "sku")?.to_owned(),
            name: get_s(item, "name")?.to_owned(),
            price_minor: get_n(item, "price_minor")?,
            currency: get_s(item, "currency")?.to_owned(),
            available: self.available(),
            reserved: self.levels.iter().map(|l| l.reserved).sum(),
            version: get_n(item, "version")?,
            updated_at,
        }
        .decode()
    }
}

/// Which shards a take of `units` comes from: one shard that holds them all
/// when there is one (the first from `start` on, so concurrent takes spread
/// over the shards), else the fullest shards combined. `None`: the shards do
/// not add up to `units`.
fn plan_take(levels: &[i64], units: i64, start: usize) -> Option<Vec<(u32, i64)>> {
    let count = levels.len();
    if let Some(one) = (0..count).map(|k| (start + k) % count).find(|&i| levels[i] >= units) {
        return Some(vec![(one as u32, units)]);
    }
    let mut fullest: Vec<usize> = (0..count).filter(|&i| levels[i] > 0).collect();
    fullest.sort_by_key(|&i| std::cmp::Reverse(levels[i]));
    let (mut left, mut plan) = (units, Vec::new());
    for shard in fullest {
        let take = left.min(levels[shard]);
        plan.push((shard as u32, take));
        left -= take;
        if left == 0 {
            return Some(plan);
        }
    }
    None
}

/// `units` spread evenly over `count` shards (the remainder to the first
/// ones); shards that get nothing are left out.
fn spread(units: i64, count: u32) -> Vec<(u32, i64)> {
    let count = i64::from(count.max(1));
    (0..count)
        .map(|i| (i as u32, units / count + i64::from(i < units % count)))
        .filter(|(_, share)| *share > 0)
        .collect()
}

impl DynamoInventory {
    /// Writes a catalog change or restock carrying `write_id` on the product
    /// item; a failed condition on an item that already carries it means
    /// this very write went through on an earlier, unanswered try.
    async fn write_product(&self, sku: &Sku, write_id: &str, writes: Vec<TransactWriteItem>) -> Result<(), StoreError> {
        match self.table.write_all(writes).await.map_err(|e| e.into_store_error(None)) {
            Err(StoreError::Conflict) if self.carries_write(sku, write_id).await? => Ok(()),
            result => result,
        }
    }

    async fn carries_write(&self, sku: &Sku, write_id: &str) -> Result<bool, StoreError> {
        let item = self.table.get(product_key(sku)).await?;
        Ok(item.is_some_and(|item| matches!(item.get(WRITE_ID), Some(AttributeValue::S(id)) if id == write_id)))
    }

    pub fn new(client: Client, config: &DynamoConfig) -> Self {
        Self {
            table: Table {
                carries_events: config.outbox == OutboxMode::Stream,
                ..Table::new(client, &config.inventory_table, config)
            },
            outbox: OutboxItems { shards: config.outbox_shards, mode: config.outbox },
            shards: config.stock_shards.clamp(1, MAX_STOCK_SHARDS),
            grow_to: config.stock_shards_max.min(MAX_STOCK_SHARDS),
            last_read: Arc::default(),
        }
    }

    /// Reads items by key (strongly consistent), at most 100 per request,
    /// retrying keys DynamoDB left unprocessed.
    async fn batch_get(&self, keys: Vec<Item>, projection: Option<&str>) -> Result<Vec<Item>, StoreError> {
        let mut found = Vec::with_capacity(keys.len());
        for chunk in keys.chunks(100) {
            let mut keys = KeysAndAttributes::builder().set_keys(Some(chunk.to_vec())).consistent_read(true);
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

    /// Product items only (prices).
    async fn products_by_sku(&self, skus: &[Sku], projection: Option<&str>) -> Result<Vec<Item>, StoreError> {
        let mut unique: Vec<&Sku> = skus.iter().collect();
        unique.sort();
        unique.dedup();
        self.batch_get(unique.into_iter().map(product_key).collect(), projection).await
    }

    /// Products with all their stock shards: the configured count in one
    /// read, and a second read for any product that has more.
    async fn stocked(&self, skus: &[Sku], projection: Option<&str>) -> Result<BTreeMap<Sku, Stocked>, StoreError> {
        let mut unique: Vec<&Sku> = skus.iter().collect();
        unique.sort();
        unique.dedup();
        let keys = unique.iter().flat_map(|sku| (0..self.shards).map(|i| stock_key(sku, i))).collect();
        let mut items = self.batch_get(keys, projection).await?;
        let mut products = BTreeMap::new();
        let mut shards: HashMap<(Sku, u32), Item> = HashMap::new();
        let mut more = Vec::new();
        let mut sort = |items: Vec<Item>, more: &mut Vec<Item>| -> Result<(), StoreError> {
            for item in items {
                let sku = sku_of(&item, "sku")?;
                if item.contains_key("stock_shard") {
                    shards.insert((sku, get_count(&item, "stock_shard", 0)?), item);
                } else {
                    let count = get_count(&item, "stock_shards", 1)?;
                    more.extend((self.shards..count).map(|i| stock_key(&sku, i)));
                    products.insert(sku, item);
                }
            }
            Ok(())
        };
        sort(std::mem::take(&mut items), &mut more)?;
        if !more.is_empty() {
            let extra = self.batch_get(more, projection).await?;
            sort(extra, &mut Vec::new())?;
        }
        let mut stocked = BTreeMap::new();
        for (sku, product) in products {
            let count = get_count(&product, "stock_shards", 1)?.max(1);
            let mut levels = vec![Level::of(&product)?];
            for i in 1..count {
                levels.push(shards.get(&(sku.clone(), i)).map(Level::of).transpose()?.unwrap_or_default());
            }
            stocked.insert(sku, Stocked { product, levels });
        }
        self.remember(&stocked);
        Ok(stocked)
    }

    fn remember(&self, stocked: &BTreeMap<Sku, Stocked>) {
        let Ok(mut last) = self.last_read.lock() else { return };
        // A bound, not a cache policy: a plan without figures takes shard 0
        // and, if that fails, the saga's next read brings them back.
        if last.len() > 10_000 {
            last.clear();
        }
        for (sku, stock) in stocked {
            last.insert(sku.clone(), stock.levels.iter().map(|l| l.available).collect());
        }
    }

    /// The shards each line's units come from: by this instance's latest
    /// read of the SKU, or a fresh one (`fresh`, or never read here).
    /// `Conflict` when a SKU's shards do not add up to its line.
    async fn plan(&self, lines: &BTreeMap<&Sku, i64>, fresh: bool) -> Result<Taken, StoreError> {
        let mut levels: HashMap<Sku, Vec<i64>> = HashMap::new();
        if !fresh && let Ok(last) = self.last_read.lock() {
            levels.extend(lines.keys().filter_map(|sku| Some(((*sku).clone(), last.get(*sku)?.clone()))));
        }
        let unread: Vec<Sku> =
            lines.keys().filter(|sku| !levels.contains_key(**sku)).map(|sku| (*sku).clone()).collect();
        if !unread.is_empty() {
            let stocked = self.stocked(&unread, Some(AVAILABILITY)).await?;
            levels.extend(stocked.into_iter().map(|(sku, s)| (sku, s.levels.iter().map(|l| l.available).collect())));
        }
        let mut taken = Vec::new();
        for (sku, units) in lines {
            let levels = levels.get(*sku).map(Vec::as_slice).unwrap_or(&[]);
            if levels.is_empty() {
                return Err(StoreError::Conflict);
            }
            let start = rand::random_range(0..levels.len());
            let plan = plan_take(levels, *units, start).ok_or(StoreError::Conflict)?;
            taken.extend(plan.into_iter().map(|(shard, n)| ((*sku).clone(), shard, n)));
        }
        Ok(taken)
    }

    /// Where a reserved order's stock came from; all of shard 0 for
    /// reservations made before sharding.
    async fn taken(&self, reservation: &Reservation) -> Result<Taken, StoreError> {
        let stored = self.table.get(reservation_key(reservation.order_id)).await?;
        match stored.as_ref().and_then(|item| item.get("taken")) {
            Some(AttributeValue::S(taken)) => from_json(taken),
            _ => Ok(merged(&reservation.lines).into_iter().map(|(sku, units)| (sku.clone(), 0, units)).collect()),
        }
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

fn built(update: aws_sdk_dynamodb::types::builders::UpdateBuilder) -> Result<TransactWriteItem, StoreError> {
    Ok(write_update(update.build().map_err(|e| StoreError::Unavailable(e.to_string()))?))
}

#[async_trait]
impl InventoryStore for DynamoInventory {
    async fn product(&self, sku: &Sku) -> Result<Option<Product>, StoreError> {
        self.stocked(std::slice::from_ref(sku), None).await?.get(sku).map(Stocked::product).transpose()
    }

    async fn products(&self, after: Option<&Sku>, limit: usize) -> Result<Vec<Product>, StoreError> {
        let page = self.table.gsi1_page(CATALOG.into(), Direction::Ascending, after.map(Sku::to_string), limit).await?;
        let skus = page.iter().map(|item| sku_of(item, "gsi1sk")).collect::<Result<Vec<_>, _>>()?;
        // By SKU already (a BTreeMap).
        self.stocked(&skus, None).await?.values().map(Stocked::product).collect()
    }

    async fn available(&self, skus: &[Sku]) -> Result<HashMap<Sku, i64>, StoreError> {
        let stocked = self.stocked(skus, Some(AVAILABILITY)).await?;
        Ok(stocked.into_iter().map(|(sku, stock)| (sku, stock.available())).collect())
    }

    async fn save_product(
        &self,
        product: &Product,
        expected_version: Option<u64>,
        outbox: &[Envelope],
    ) -> Result<(), StoreError> {
        let fields = ProductFields::of(product)?;
        let at = s(fields.updated_at.clone());
        let write_id = new_write_id();
        let mut writes = Vec::new();
        match expected_version {
            None => {
                let shares: HashMap<u32, i64> = spread(fields.available, self.shards).into_iter().collect();
                let mut item = product_key(&product.sku);
                item.insert("sku".into(), s(fields.sku.clone()));
                item.insert("name".into(), s(fields.name));
                item.insert("price_minor".into(), n(fields.price_minor));
                item.insert("currency".into(), s(fields.currency));
                item.insert("available".into(), n(shares.get(&0).copied().unwrap_or(0)));
                item.insert("reserved".into(), n(fields.reserved));
                item.insert("version".into(), n(fields.version));
                item.insert("updated_at".into(), at.clone());
                item.insert("stock_shards".into(), n(self.shards));
                item.insert(WRITE_ID.into(), s(write_id.clone()));
                item.insert("gsi1pk".into(), s(CATALOG));
                item.insert("gsi1sk".into(), s(product.sku.to_string()));
                writes.push(write_put(put(&self.table.name, item, Some("attribute_not_exists(pk)"), &[])));
                for (&shard, &units) in shares.iter().filter(|(shard, _)| **shard > 0) {
                    let mut item = stock_key(&product.sku, shard);
                    item.insert("sku".into(), s(fields.sku.clone()));
                    item.insert("stock_shard".into(), n(shard));
                    item.insert("available".into(), n(units));
                    item.insert("reserved".into(), n(0));
                    item.insert("updated_at".into(), at.clone());
                    writes.push(write_put(put(&self.table.name, item, None, &[])));
                }
            }
            Some(version) => {
                // Catalog fields only: the stock is the shards' business.
                let update = Update::builder()
                    .table_name(&self.table.name)
                    .set_key(Some(product_key(&product.sku)))
                    .update_expression(
                        "SET #name = :name, price_minor = :price, currency = :currency, version = :version, \
                         updated_at = :at, write_id = :write_id",
                    )
                    .condition_expression("version = :expected")
                    .expression_attribute_names("#name", "name")
                    .expression_attribute_values(":write_id", s(write_id.clone()))
                    .expression_attribute_values(":name", s(fields.name))
                    .expression_attribute_values(":price", n(fields.price_minor))
                    .expression_attribute_values(":currency", s(fields.currency))
                    .expression_attribute_values(":version", n(fields.version))
                    .expression_attribute_values(":at", at)
                    .expression_attribute_values(":expected", n(version));
                writes.push(built(update)?);
            }
        }
        self.outbox.add_to(&self.table, &mut writes, outbox);
        self.write_product(&product.sku, &write_id, writes).await
    }

    async fn restock(
        &self,
        restocked: &Product,
        expected_version: u64,
        units: u32,
        outbox: &[Envelope],
    ) -> Result<(), StoreError> {
        // The count may grow meanwhile (a contended SKU): the write holds
        // only if it is still the one read, so a restock never shrinks it.
        let stored = self.table.get(product_key(&restocked.sku)).await?.ok_or(StoreError::Conflict)?;
        let stored_count = get_count(&stored, "stock_shards", 1)?;
        let count = stored_count.max(self.shards);
        let at = s(timestamp(restocked.updated_at));
        let write_id = new_write_id();
        let shares: HashMap<u32, i64> = spread(i64::from(units), count).into_iter().collect();
        let product = Update::builder()
            .table_name(&self.table.name)
            .set_key(Some(product_key(&restocked.sku)))
            .update_expression(
                "SET version = :version, updated_at = :at, stock_shards = :count, write_id = :write_id \
                 ADD available :units",
            )
            .condition_expression(format!("version = :expected AND {COUNT_IS}"))
            .expression_attribute_values(":write_id", s(write_id.clone()))
            .expression_attribute_values(":version", n(restocked.version))
            .expression_attribute_values(":at", at.clone())
            .expression_attribute_values(":read_count", n(stored_count))
            .expression_attribute_values(":one", n(1))
            .expression_attribute_values(":count", n(count))
            .expression_attribute_values(":units", n(shares.get(&0).copied().unwrap_or(0)))
            .expression_attribute_values(":expected", n(expected_version));
        let mut writes = vec![built(product)?];
        for (&shard, &share) in shares.iter().filter(|(shard, _)| **shard > 0) {
            writes.push(self.add_to_shard(&restocked.sku, shard, share, Some(at.clone()))?);
        }
        self.outbox.add_to(&self.table, &mut writes, outbox);
        self.write_product(&restocked.sku, &write_id, writes).await
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
        let mut taken = match &change.stock {
            StockMove::None => Vec::new(),
            StockMove::Take(lines) => self.plan(&merged(lines), false).await?,
            StockMove::Return(_) => self.taken(&change.reservation).await?,
        };
        let (mut replans, mut gathered) = (0, false);
        loop {
            let writes = self.reservation_writes(change, &taken, outbox, processed)?;
            if writes.len() > MAX_TRANSACTION_ITEMS {
                match &change.stock {
                    StockMove::Take(lines) if !gathered => {
                        gathered = true;
                        self.gather(&taken).await;
                        taken = self.plan(&merged(lines), true).await?;
                        continue;
                    }
                    _ => {
                        return Err(StoreError::Unavailable(format!(
                            "a reservation of {} stock items does not fit one transaction",
                            taken.len()
                        )));
                    }
                }
            }
            let error = match self.table.write_all_counting_races(writes).await {
                Ok(races) => {
                    if matches!(change.stock, StockMove::Take(_)) && races + replans > 0 {
                        self.grow_contended(&taken).await;
                    }
                    return Ok(());
                }
                Err(error) => error,
            };
            // Only shard conditions failed (positions after the mark and the
            // reservation): another take drained a planned shard. The store's
            // promise is about the SKU's total, so plan again from a read.
            let stock_only = matches!(&error, WriteError::Conditions(failed)
                if failed.iter().all(|(at, _)| (STOCK_AT..STOCK_AT + taken.len()).contains(at)));
            match &change.stock {
                StockMove::Take(lines) if stock_only && replans < REPLANS => {
                    replans += 1;
                    taken = self.plan(&merged(lines), true).await?;
                }
                _ => return Err(self.reservation_failure(change, processed, error).await?),
            }
        }
    }
}

impl DynamoInventory {
    /// Grows each SKU of a contended take that is below `grow_to`. The
    /// reservation has committed: nothing here may fail it.
    async fn grow_contended(&self, taken: &Taken) {
        let mut skus: Vec<&Sku> = taken.iter().map(|(sku, _, _)| sku).collect();
        skus.dedup();
        for sku in skus {
            match self.grow(sku).await {
                Ok(Some(count)) => tracing::info!(%sku, count, "a contended SKU now spreads its stock over more items"),
                Ok(None) => {}
                Err(error) => tracing::debug!(%sku, %error, "a contended SKU did not grow this time"),
            }
        }
    }

    /// Doubles `sku`'s stock items (up to `grow_to`): old shard `i` hands
    /// half its units to new shard `count + i`, in one transaction that
    /// holds only if the count and every handed-over unit are still there.
    /// The new count, or `None` when there is nothing to do.
    async fn grow(&self, sku: &Sku) -> Result<Option<u32>, StoreError> {
        let known = self.last_read.lock().ok().and_then(|last| last.get(sku).map(Vec::len));
        if known.is_some_and(|count| count as u32 >= self.grow_to) {
            return Ok(None);
        }
        let stocked = self.stocked(std::slice::from_ref(sku), Some(AVAILABILITY)).await?;
        let Some(stock) = stocked.get(sku) else { return Ok(None) };
        let mut levels: Vec<i64> = stock.levels.iter().map(|l| l.available).collect();
        let Some(moves) = growth(&levels, self.grow_to) else { return Ok(None) };
        let count = levels.len() as u32;
        let target = count + moves.len() as u32;
        let writes = self.growth_writes(sku, count, &moves)?;
        self.table.write_all(writes).await.map_err(|e| e.into_store_error(None))?;
        // Plan the next takes over the new items right away.
        for (from, units) in moves.iter().enumerate() {
            levels[from] -= units;
            levels.push(*units);
        }
        if let Ok(mut last) = self.last_read.lock() {
            last.insert(sku.clone(), levels);
        }
        Ok(Some(target))
    }

    /// The transaction of [`Self::grow`]: each old item hands `moves[i]`
    /// units to new item `count + i`. An old item with nothing to hand over
    /// is left out (shard 0, which carries the count, excepted): it may
    /// never have been written (a product created with fewer units than
    /// items), and a condition on a missing item fails, which would cancel
    /// every growth of the SKU.
    fn growth_writes(&self, sku: &Sku, count: u32, moves: &[i64]) -> Result<Vec<TransactWriteItem>, StoreError> {
        let target = count + moves.len() as u32;
        let mut writes = Vec::with_capacity(moves.len() * 2);
        for (from, units) in moves.iter().copied().enumerate() {
            let from = from as u32;
            if units == 0 && from > 0 {
                continue;
            }
            // Shard 0 is the product item: it carries the count.
            let source = if from == 0 {
                self.units_leaving(sku, from, units)
                    .update_expression("SET stock_shards = :target ADD available :minus")
                    .condition_expression(format!("available >= :units AND {COUNT_IS}"))
                    .expression_attribute_values(":target", n(target))
                    .expression_attribute_values(":read_count", n(count))
                    .expression_attribute_values(":one", n(1))
            } else {
                self.units_moved_out(sku, from, units)
            };
            writes.push(built(source)?);
            // No `updated_at`: the product's visible figures do not change.
            writes.push(self.add_to_shard(sku, count + from, units, None)?);
        }
        Ok(writes)
    }

    /// The update that takes `units` out of stock item `shard` of `sku`, its
    /// values bound (`:units`, `:minus`) for the expression the caller sets.
    fn units_leaving(&self, sku: &Sku, shard: u32, units: i64) -> aws_sdk_dynamodb::types::builders::UpdateBuilder {
        Update::builder()
            .table_name(&self.table.name)
            .set_key(Some(stock_key(sku, shard)))
            .expression_attribute_values(":units", n(units))
            .expression_attribute_values(":minus", n(-units))
    }

    /// `units` moved out of stock item `shard` of `sku` (growth, gather),
    /// only if they are all there.
    fn units_moved_out(&self, sku: &Sku, shard: u32, units: i64) -> aws_sdk_dynamodb::types::builders::UpdateBuilder {
        self.units_leaving(sku, shard, units)
            .update_expression("ADD available :minus")
            .condition_expression("available >= :units")
    }

    /// Adds `units` to stock shard `shard` (1..) of `sku`, creating the item
    /// if it is new; `at` stamps it as changed.
    fn add_to_shard(
        &self,
        sku: &Sku,
        shard: u32,
        units: i64,
        at: Option<AttributeValue>,
    ) -> Result<TransactWriteItem, StoreError> {
        let stamp = if at.is_some() { ", updated_at = :at" } else { "" };
        let update = Update::builder()
            .table_name(&self.table.name)
            .set_key(Some(stock_key(sku, shard)))
            .update_expression(format!(
                "SET sku = :sku, stock_shard = :shard{stamp} ADD available :units, reserved :zero"
            ))
            .expression_attribute_values(":sku", s(sku.to_string()))
            .expression_attribute_values(":shard", n(shard))
            .expression_attribute_values(":units", n(units))
            .expression_attribute_values(":zero", n(0));
        let update = match at {
            Some(at) => update.expression_attribute_values(":at", at),
            None => update,
        };
        built(update)
    }
}

/// What doubling a SKU's stock items moves: `moves[i]` units from shard `i`
/// to shard `count + i`, for as many shards as `grow_to` allows. `None` when
/// the SKU is at its most already, or holds too little to spread.
fn growth(levels: &[i64], grow_to: u32) -> Option<Vec<i64>> {
    let count = levels.len();
    let new = (count * 2).min(grow_to as usize).checked_sub(count).filter(|&n| n > 0)?;
    let moves: Vec<i64> = levels[..new].iter().map(|available| available.max(&0) / 2).collect();
    moves.iter().any(|&units| units > 0).then_some(moves)
}

/// Where a reservation's transaction holds the reservation (and with it the
/// processed mark), and where its stock updates start.
const RESERVATION_AT: usize = 0;
const STOCK_AT: usize = 1;

impl DynamoInventory {
    /// What a refused reservation write means: a duplicate of the event
    /// when the reservation's own condition failed and the event had
    /// written it, else `Conflict` (or the store's error).
    async fn reservation_failure(
        &self,
        change: &ReservationChange,
        processed: &ProcessedEvent,
        error: WriteError,
    ) -> Result<StoreError, StoreError> {
        match error {
            WriteError::Conditions(failed) => match failed.into_iter().find(|(at, _)| *at == RESERVATION_AT) {
                Some((_, item)) => {
                    let key = reservation_key(change.reservation.order_id);
                    inline_mark::failure(&self.table, processed, key, item).await
                }
                None => Ok(StoreError::Conflict),
            },
            WriteError::Store(error) => Ok(error),
        }
    }

    /// The reservation with the event's mark (recording `taken` on a take),
    /// one update per stock item, the events: one transaction.
    fn reservation_writes(
        &self,
        change: &ReservationChange,
        taken: &Taken,
        outbox: &[Envelope],
        processed: &ProcessedEvent,
    ) -> Result<Vec<TransactWriteItem>, StoreError> {
        let reservation = &change.reservation;
        let at = s(timestamp(reservation.updated_at));
        // The event's mark lives on the reservation (see `write::inline_mark`).
        let mut set = format!("SET #state = :state, doc = :doc {}", inline_mark::ADD);
        let mut reservation_update = inline_mark::bind(Update::builder(), processed)
            .table_name(&self.table.name)
            .set_key(Some(reservation_key(reservation.order_id)))
            .expression_attribute_names("#state", "state")
            .expression_attribute_values(":state", s(reservation.state.as_str()))
            .expression_attribute_values(":doc", s(to_json(reservation)?));
        let (expression, guard) = match change.stock {
            StockMove::None => ("", ""),
            StockMove::Take(_) => {
                set = format!("SET #state = :state, doc = :doc, taken = :taken {}", inline_mark::ADD);
                reservation_update = reservation_update.expression_attribute_values(":taken", s(to_json(taken)?));
                ("SET updated_at = :at ADD available :minus, reserved :n", "attribute_exists(pk) AND available >= :n")
            }
            StockMove::Return(_) => {
                ("SET updated_at = :at ADD available :n, reserved :minus", "attribute_exists(pk) AND reserved >= :n")
            }
        };
        // `NOT_SEEN` adds nothing to a create's condition, but every bound
        // value must be used.
        let condition = match change.expected {
            None => format!("attribute_not_exists(pk) AND {}", inline_mark::NOT_SEEN),
            Some(state) => {
                reservation_update = reservation_update.expression_attribute_values(":expected", s(state.as_str()));
                format!("#state = :expected AND {}", inline_mark::NOT_SEEN)
            }
        };
        let mut writes = vec![built(reservation_update.update_expression(set).condition_expression(condition))?];
        debug_assert_eq!((RESERVATION_AT, writes.len()), (0, STOCK_AT));
        for (sku, shard, units) in taken {
            let update = Update::builder()
                .table_name(&self.table.name)
                .set_key(Some(stock_key(sku, *shard)))
                .update_expression(expression)
                .condition_expression(guard)
                .expression_attribute_values(":n", n(units))
                .expression_attribute_values(":minus", n(-units))
                .expression_attribute_values(":at", at.clone());
            writes.push(built(update)?);
        }
        self.outbox.add_to(&self.table, &mut writes, outbox);
        Ok(writes)
    }

    /// Moves the units of each line that combines stock items into one of
    /// its items, so that a take of many such lines fits one transaction
    /// (a transaction holds at most 100 items, and 50 lines that each
    /// combine two or more items need more). Each SKU's moves are one
    /// transaction of their own, so that one drained source (a concurrent
    /// take) leaves only its own SKU ungathered; a move only shifts units
    /// within a SKU, so no total changes. The caller plans again from a
    /// fresh read either way.
    async fn gather(&self, taken: &Taken) {
        let mut by_sku: BTreeMap<&Sku, Vec<(u32, i64)>> = BTreeMap::new();
        for (sku, shard, units) in taken {
            by_sku.entry(sku).or_default().push((*shard, *units));
        }
        let moves = by_sku.into_iter().filter(|(_, plan)| plan.len() > 1).filter_map(|(sku, plan)| {
            let writes = self.gather_writes(sku, &plan).ok()?;
            Some(self.write_gathered(writes))
        });
        futures::future::join_all(moves).await;
    }

    async fn write_gathered(&self, writes: Vec<TransactWriteItem>) {
        if let Err(error) = self.table.write_all(writes).await.map_err(|e| e.into_store_error(None)) {
            tracing::debug!(%error, "stock items were not gathered this time");
        }
    }

    /// The moves of [`Self::gather`] for one SKU: every item of `plan` but
    /// the first (the fullest, see [`plan_take`]) hands it the units the
    /// plan takes from it.
    fn gather_writes(&self, sku: &Sku, plan: &[(u32, i64)]) -> Result<Vec<TransactWriteItem>, StoreError> {
        let (target, _) = plan[0];
        let moved: i64 = plan[1..].iter().map(|(_, units)| units).sum();
        let mut writes = Vec::with_capacity(plan.len());
        for &(shard, units) in &plan[1..] {
            writes.push(built(self.units_moved_out(sku, shard, units))?);
        }
        let into = Update::builder()
            .table_name(&self.table.name)
            .set_key(Some(stock_key(sku, target)))
            .update_expression("ADD available :units")
            .condition_expression("attribute_exists(pk)")
            .expression_attribute_values(":units", n(moved));
        writes.push(built(into)?);
        Ok(writes)
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

outbox_for!(DynamoInventory);

processed_events_for!(DynamoInventory);

#[cfg(test)]
mod tests {
    use orderly_contract::fixtures::{mark, now, order_for, placed_event, sku};
    use orderly_core::domain::ReservationState;

    use super::super::captured;
    use super::*;

    #[tokio::test]
    async fn a_reservation_writes_itself_its_stock_and_its_events_and_no_mark_item() {
        let (client, request) = captured::client();
        let inventory = DynamoInventory::new(client, &DynamoConfig::with_prefix("t"));
        // Figures as a read before would have left them: the take reads nothing.
        inventory.last_read.lock().unwrap().insert(sku("A"), vec![5]);
        let order = order_for("alice", &[("A", 2)]);
        let change = ReservationChange {
            reservation: Reservation {
                order_id: order.id(),
                state: ReservationState::Reserved,
                lines: vec![(sku("A"), 2)],
                updated_at: now(),
            },
            expected: None,
            stock: StockMove::Take(vec![(sku("A"), 2)]),
        };
        let _ = inventory.apply_reservation(&change, &[placed_event(&order)], &mark("inventory")).await;
        let items = captured::transact_items(request);
        assert_eq!(
            items.len(),
            3,
            "the reservation, which keeps the event's id, one stock item, the outbox: {items:?}"
        );
        assert!(items[0]["Update"]["Key"]["pk"]["S"].as_str().unwrap().starts_with("RESERVATION#"));
    }

    #[test]
    fn a_take_comes_from_one_shard_that_has_enough() {
        assert_eq!(plan_take(&[0, 3, 5], 2, 0), Some(vec![(1, 2)]));
        assert_eq!(plan_take(&[4, 3, 5], 4, 1), Some(vec![(2, 4)]), "the first with enough from the start");
        assert_eq!(plan_take(&[4, 3, 5], 4, 0), Some(vec![(0, 4)]));
    }

    #[test]
    fn a_take_no_shard_covers_combines_the_fullest() {
        assert_eq!(plan_take(&[2, 3, 1, 0], 5, 0), Some(vec![(1, 3), (0, 2)]));
        assert_eq!(plan_take(&[2, 2, 2], 6, 2), Some(vec![(0, 2), (1, 2), (2, 2)]));
    }

    #[test]
    fn a_take_the_shards_cannot_cover_has_no_plan() {
        assert_eq!(plan_take(&[2, 3, 1], 7, 0), None);
        assert_eq!(plan_take(&[0], 1, 0), None);
    }

    #[test]
    fn a_contended_sku_doubles_its_items_each_old_one_handing_over_half() {
        assert_eq!(growth(&[40], 8), Some(vec![20]));
        assert_eq!(growth(&[10, 7], 8), Some(vec![5, 3]));
        assert_eq!(growth(&[9, 9, 9, 9, 9], 8), Some(vec![4, 4, 4]), "no more than the most");
    }

    #[test]
    fn growth_leaves_out_the_old_items_with_nothing_to_hand_over() {
        let (client, _) = captured::client();
        let inventory = DynamoInventory::new(client, &DynamoConfig::with_prefix("t"));
        // Four items, the last never written (3 units spread over 4 at creation).
        let moves = growth(&[2, 2, 1, 0], 8).unwrap();
        assert_eq!(moves, vec![1, 1, 0, 0]);
        let writes = inventory.growth_writes(&sku("A"), 4, &moves).unwrap();
        let keys: Vec<String> =
            writes.iter().filter_map(|w| w.update.as_ref()?.key.get("pk")?.as_s().ok().cloned()).collect();
        let expected: Vec<String> =
            [0, 4, 1, 5].iter().map(|&shard| get_s(&stock_key(&sku("A"), shard), "pk").unwrap().to_owned()).collect();
        assert_eq!(keys, expected, "shard 0 (it carries the count) and shard 1, each with its new item");
    }

    #[test]
    fn a_sku_at_its_most_or_with_nothing_to_spread_does_not_grow() {
        assert_eq!(growth(&[5, 5, 5, 5, 5, 5, 5, 5], 8), None);
        assert_eq!(growth(&[5], 1), None, "growth off");
        assert_eq!(growth(&[1, 1], 8), None, "nothing to hand over");
        assert_eq!(growth(&[3, 0], 8), Some(vec![1, 0]));
    }

    #[test]
    fn a_restock_spreads_evenly_and_skips_empty_shares() {
        assert_eq!(spread(10, 4), vec![(0, 3), (1, 3), (2, 2), (3, 2)]);
        assert_eq!(spread(2, 4), vec![(0, 1), (1, 1)]);
        assert_eq!(spread(5, 1), vec![(0, 5)]);
        assert_eq!(spread(0, 3), vec![]);
    }
}
